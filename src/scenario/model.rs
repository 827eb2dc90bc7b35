//! The validated scenario: typed, resolved, every referenced file already read.
//! Nothing past this point parses YAML or opens input files.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::auth::JwtSpec;
use crate::conformance::{Expect, Severity};

/// A scenario ready to plan and run.
#[derive(Debug)]
pub struct Scenario {
    /// Scenario name (also the results folder suffix).
    pub name: String,
    /// Who issues the report, for which product, against which standard (a lab's run).
    pub certification: Option<Certification>,
    /// Free text.
    pub description: String,
    /// Seed for everything random in a run.
    pub seed: u64,
    /// Where traffic goes.
    pub target: Target,
    /// How the check pack maps onto this gateway.
    pub profile: Profile,
    /// The in-process upstream oracle, when the scenario runs one.
    pub oracle: Option<OracleSpec>,
    /// Identities, indexed by checks.
    pub identities: Vec<Identity>,
    /// Checks, in file order.
    pub checks: Vec<Check>,
    /// Load phases, run in order.
    pub phases: Vec<Phase>,
    /// Pass/fail rules on the results.
    pub thresholds: Vec<crate::scenario::Threshold>,
    /// The share of requests that may go without an answer before the run fails
    /// (`error_budget:`, default 1 %).
    pub error_budget: f64,
    /// Impairment links in front of what the gateway depends on.
    pub dependencies: Vec<Dependency>,
    /// Timed conditions, in start order (they never overlap).
    pub events: Vec<Event>,
    /// How the client link is impaired.
    pub backend: Backend,
    /// Every source file (main first), for provenance.
    pub sources: Vec<PathBuf>,
    /// What validation found suspicious but not wrong (e.g. a limit check sent too slowly to
    /// be judged), with positions.
    pub warnings: Vec<crate::scenario::Problem>,
    /// What validation reports for information: overrides of an included file's identities
    /// and checks.
    pub notes: Vec<crate::scenario::Problem>,
    /// sha256 over every source file's bytes, in order (hex).
    pub sha256: String,
    /// The merged scenario as YAML, with file paths made absolute: re-runnable as it is.
    pub resolved_yaml: String,
}

impl Scenario {
    /// Where each identity's credentials start among all credentials (identities in order,
    /// each pool member one credential): credential `slots()[i] + m` is member `m` of
    /// identity `i`. The last entry is the number of credentials.
    pub fn slots(&self) -> Vec<usize> {
        let mut out = Vec::with_capacity(self.identities.len() + 1);
        let mut n = 0;
        for id in &self.identities {
            out.push(n);
            n += id.members();
        }
        out.push(n);
        out
    }

    /// How many credentials a check's requests round-robin over: its identity's pool, except
    /// for `limit` checks, which drive one credential above its limit.
    pub fn members_of(&self, check: usize) -> usize {
        let c = &self.checks[check];
        if matches!(c.expect, crate::conformance::Expect::Limit(_)) { 1 } else { self.identities[c.identity].members() }
    }
}

/// `oracle:` resolved.
#[derive(Debug, Clone, Copy)]
pub struct OracleSpec {
    /// Address to listen on (the gateway's upstream).
    pub listen: std::net::SocketAddr,
}

/// Which HTTP version to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolKind {
    /// HTTP/1.1 with a keep-alive pool.
    H1,
    /// HTTP/2, multiplexed.
    H2,
    /// Whatever ALPN negotiates (h2 preferred); HTTP/1.1 on plain `http://`.
    Auto,
    /// HTTP/3 over QUIC (quinn + h3).
    H3,
}

impl ProtocolKind {
    /// The name used in YAML and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            ProtocolKind::H1 => "h1",
            ProtocolKind::H2 => "h2",
            ProtocolKind::Auto => "auto",
            ProtocolKind::H3 => "h3",
        }
    }
}

/// Where the request tag travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagMode {
    /// `x-gauntlet-tag` request header.
    Header,
    /// `gauntlet_tag` query parameter (for gateways that strip unknown headers).
    Query,
    /// No tag at all.
    Off,
}

/// `target:` resolved.
#[derive(Debug, Clone)]
pub struct Target {
    /// The URL as written.
    pub url: String,
    /// `true` for `https://`.
    pub tls: bool,
    /// Host part of the URL (name or IP literal, without brackets).
    pub host: String,
    /// Port (defaulted from the scheme).
    pub port: u16,
    /// The `authority` to send (`host:port` as in the URL).
    pub authority: http::uri::Authority,
    /// Path prefix from the URL, without trailing slash (often empty).
    pub base_path: String,
    /// PEM bundle of trust anchors for the gateway's certificate.
    pub ca: Vec<CertificateDer<'static>>,
    /// Name used for SNI and certificate verification.
    pub server_name: String,
    /// Protocol to speak.
    pub protocol: ProtocolKind,
    /// h2: connections per identity. h1: ignored (one connection per in-flight request).
    pub connections: u32,
    /// Most requests in flight at once (the number of workers).
    pub max_in_flight: u32,
    /// Per-request timeout (connect + exchange).
    pub timeout: Duration,
    /// Generator threads (0 = one per core).
    pub threads: u32,
    /// Protocol parity: run the scenario once per protocol listed and compare verdicts
    /// (empty: one run over `protocol`).
    pub parity: Vec<ProtocolKind>,
}

/// `profile:` resolved — one gateway's conventions.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    /// Profile name.
    pub name: String,
    /// Implementation under test, for reports.
    pub implementation: Implementation,
    /// Route name → path prefix.
    pub routes: Vec<(String, String)>,
    /// Header the gateway injects with the verified identity.
    pub identity_header: Option<HeaderName>,
    /// Statuses the gateway denies with.
    pub deny_status: Vec<u16>,
    /// Where the request tag goes.
    pub tag: Option<TagMode>,
    /// The gateway's declared per-identity rate limit: (requests, window).
    pub rate_limit: Option<(u32, Duration)>,
    /// What the gateway claims to enforce ([`FEATURES`]); `None`: everything a check can test.
    /// A check requiring a feature outside the claim is not sent, and `skipped`.
    pub features: Option<Vec<String>>,
    /// The gateway's declared limit per client credential over all traffic: (requests,
    /// window). `validate` warns when legitimate traffic of one credential would exceed it.
    pub client_rate_limit: Option<(u32, Duration)>,
    /// Headers the gateway sets itself towards the upstream (`forwarding.injects`; the
    /// identity header among them): a client's value must not arrive, the gateway's may.
    pub injects: Vec<HeaderName>,
    /// Client-sent headers the gateway removes (`forwarding.strips`): a check that sends one
    /// proves it — the header must not arrive at all.
    pub strips: Vec<HeaderName>,
}

/// The implementation under test (Gateway API conformance report fields).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Implementation {
    /// Organization.
    pub organization: String,
    /// Project.
    pub project: String,
    /// Project URL.
    pub url: String,
    /// Version tested.
    pub version: String,
    /// Contacts.
    pub contact: Vec<String>,
}

/// `certification:` — what a certification report must name (every field required).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Certification {
    /// The accredited lab issuing the report.
    pub lab: String,
    /// Its accreditation number.
    pub lab_id: String,
    /// The report's own identifier.
    pub report_id: String,
    /// The product under test.
    pub product: Product,
    /// The standard tested against.
    pub standard: Standard,
}

/// The product a certification report is about.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Product {
    /// Product class (e.g. "cloud security gateway with zero-trust policy enforcement").
    pub class: String,
    /// Vendor.
    pub vendor: String,
    /// Model.
    pub model: String,
    /// Version tested.
    pub version: String,
}

/// The standard a certification report tests against.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Standard {
    /// Its name.
    pub name: String,
    /// Its edition.
    pub edition: String,
}

/// What a target profile can claim a gateway enforces, and checks can require.
pub const FEATURES: &[&str] = &[
    "mtls",
    "jwt",
    "rbac",
    "method-rbac",
    "path-normalisation",
    "header-hygiene",
    "rate-limit",
    "default-deny",
    "websocket",
    "fail-closed",
];

/// Who a request is sent as.
#[derive(Debug)]
pub struct Identity {
    /// Name in the scenario.
    pub name: String,
    /// The principal a gateway should derive from it (defaults to the name); in a pool,
    /// `{n}` stands for the member's number (1, 2, …).
    pub principal: String,
    /// Client certificate chain and key, for mutual TLS.
    pub client_cert: Option<ClientCert>,
    /// A pool of client certificates (each member its own connections; requests of a check
    /// round-robin over them). Empty: the identity is one credential.
    pub pool: Vec<ClientCert>,
    /// Bearer credential.
    pub token: Option<Token>,
    /// Extra static headers.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Identities of one group share their client certificates (a role and its token
    /// variants): a per-credential rate limit counts them together.
    pub group: String,
}

impl Identity {
    /// How many credentials the identity has (1 unless it is a pool).
    pub fn members(&self) -> usize {
        self.pool.len().max(1)
    }

    /// The client certificate of member `m`.
    pub fn cert(&self, m: usize) -> Option<&ClientCert> {
        if self.pool.is_empty() { self.client_cert.as_ref() } else { self.pool.get(m) }
    }

    /// The number `{n}` stands for in member `m`'s principal and token (1-based), when a pool.
    pub fn number(&self, m: usize) -> Option<u32> {
        (!self.pool.is_empty()).then_some(m as u32 + 1)
    }

    /// The principal of member `m`.
    pub fn principal_of(&self, m: usize) -> String {
        match self.number(m) {
            Some(n) => self.principal.replace("{n}", &n.to_string()),
            None => self.principal.clone(),
        }
    }
}

/// A client certificate with its key, already parsed.
#[derive(Debug)]
pub struct ClientCert {
    /// Leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// Private key.
    pub key: PrivateKeyDer<'static>,
}

/// A bearer credential and where it goes.
#[derive(Debug)]
pub struct Token {
    /// Header carrying it (default `authorization`).
    pub header: HeaderName,
    /// Scheme prefix (default `Bearer`; empty for none).
    pub scheme: String,
    /// Static or minted value.
    pub source: TokenSource,
}

/// Where a token's value comes from.
#[derive(Debug)]
pub enum TokenSource {
    /// A fixed string.
    Static(String),
    /// Minted at run start from a template.
    Jwt(JwtSpec),
}

/// One probe and its expected verdict.
#[derive(Debug)]
pub struct Check {
    /// Stable id (letters, digits, `-`, `_`).
    pub id: String,
    /// One line.
    pub title: String,
    /// Maximum severity.
    pub severity: Severity,
    /// Where the requirement comes from.
    pub reference: String,
    /// Free tags, usable in phase mixes as `tag:NAME`.
    pub tags: Vec<String>,
    /// Features of the gateway this check tests ([`FEATURES`]).
    pub requires: Vec<String>,
    /// Why the check is outside the profile's declared scope (not sent, `skipped`), if it is.
    pub out_of_scope: Option<String>,
    /// Index into `Scenario::identities`.
    pub identity: usize,
    /// What to send.
    pub request: Request,
    /// What a conforming gateway does.
    pub expect: Expect,
    /// What the upstream must (not) see.
    pub upstream: UpstreamExpect,
    /// Generated for a replay phase: it counts one class of replayed requests (never in a mix).
    pub replay: bool,
}

/// A request template.
#[derive(Debug, Clone)]
pub struct Request {
    /// Method.
    pub method: Method,
    /// Path and query, exactly as sent.
    pub path: String,
    /// Headers from the check (identity headers are added at send time).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Body.
    pub body: Bytes,
    /// Headers whose value changes per request (`{seq}`, `{seq:ipv4}`, `{seq:hex}`).
    pub varying: Vec<(HeaderName, Varying)>,
    /// A WebSocket upgrade followed by a session, instead of a plain request.
    pub websocket: Option<WebSocket>,
}

/// A header value rendered per request from its sequence number: `prefix{VAR}suffix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Varying {
    /// Text before the variable.
    pub prefix: String,
    /// The variable.
    pub var: SeqVar,
    /// Text after it.
    pub suffix: String,
}

/// What a [`Varying`] header renders per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqVar {
    /// `{seq}`: the request's sequence number, in decimal.
    Seq,
    /// `{seq:hex}`: the same, in hex.
    Hex,
    /// `{seq:ipv4}`: a distinct address in 10.0.0.0/8 per request (up to 2^24 in a phase).
    Ipv4,
}

impl Varying {
    /// Parses a header value with at most one `{seq…}` variable; `Ok(None)` when it has none.
    pub fn parse(value: &str) -> Result<Option<Self>, String> {
        let Some(open) = value.find("{seq") else { return Ok(None) };
        let close = value[open..].find('}').map(|c| open + c).ok_or("an unclosed `{seq`")?;
        let var = match &value[open + 1..close] {
            "seq" => SeqVar::Seq,
            "seq:hex" => SeqVar::Hex,
            "seq:ipv4" => SeqVar::Ipv4,
            other => return Err(format!("`{{{other}}}` is not a variable: use {{seq}}, {{seq:hex}} or {{seq:ipv4}}")),
        };
        let suffix = &value[close + 1..];
        if suffix.contains("{seq") {
            return Err("only one `{seq…}` variable per header".into());
        }
        Ok(Some(Varying { prefix: value[..open].to_string(), var, suffix: suffix.to_string() }))
    }

    /// Appends the value for the request with sequence field `seq` to `out`.
    pub fn render(&self, seq: u64, out: &mut Vec<u8>) {
        use std::io::Write as _;
        out.extend_from_slice(self.prefix.as_bytes());
        let _ = match self.var {
            SeqVar::Seq => write!(out, "{seq}"),
            SeqVar::Hex => write!(out, "{seq:x}"),
            SeqVar::Ipv4 => {
                // The request index (low 36 bits) mixed with the phase, folded into 24 bits.
                let v = (seq ^ (seq >> 40)) & 0xff_ffff;
                write!(out, "10.{}.{}.{}", v >> 16, (v >> 8) & 0xff, v & 0xff)
            }
        };
        out.extend_from_slice(self.suffix.as_bytes());
    }
}

/// `request.websocket:` resolved: upgrade over HTTP/1.1, then send `messages` (cycled) one
/// every `interval` until `hold` has passed, timing each echo.
#[derive(Debug, Clone, PartialEq)]
pub struct WebSocket {
    /// Text messages, sent in order and cycled.
    pub messages: Vec<String>,
    /// Time between messages.
    pub interval: Duration,
    /// How long the session is held open.
    pub hold: Duration,
    /// The gateway must end the session before `hold` (the identity's token expires during
    /// it); a session still open at the end is a leak.
    pub must_close: bool,
}

/// Expectations checked by the oracle upstream.
#[derive(Debug, Clone, Default)]
pub struct UpstreamExpect {
    /// Headers that must arrive with exactly this value.
    pub headers: Vec<(HeaderName, String)>,
    /// Headers that must not arrive at all.
    pub absent: Vec<HeaderName>,
    /// Headers the client sends whose *value* must not arrive (the gateway may set its own):
    /// the header name and the value sent.
    pub stripped: Vec<(HeaderName, String)>,
}

impl UpstreamExpect {
    /// Whether anything here needs the oracle to be verified.
    pub fn is_empty(&self) -> bool {
        self.headers.is_empty() && self.absent.is_empty() && self.stripped.is_empty()
    }
}

/// One load phase.
#[derive(Debug, Clone)]
pub struct Phase {
    /// Name (used in thresholds as `during NAME`).
    pub name: String,
    /// Time bound.
    pub duration: Option<Duration>,
    /// Count bound.
    pub requests: Option<u64>,
    /// Open or closed loop.
    pub load: Load,
    /// Check index and weight (> 0).
    pub mix: Vec<(usize, f64)>,
    /// The client link's condition during the phase (`None`: unimpaired).
    pub network: Option<Network>,
    /// What the phase replays (its load is [`Load::Replay`]).
    pub replay: Option<std::sync::Arc<Replay>>,
}

/// A phase that replays a capture: which requests, how paced, sent as whom, expected what.
#[derive(Debug, Clone)]
pub struct Replay {
    /// The pcap or pcapng file.
    pub capture: PathBuf,
    /// Decrypt its TLS connections with tshark: with this key log (`Some(Some(_))`) or the
    /// secrets the pcapng embeds (`Some(None)`); `None`: TLS connections are counted, not read.
    pub decrypt: Option<Option<PathBuf>>,
    /// Playback speed (2.0: twice the recorded pace).
    pub speed: f64,
    /// Longest idle gap kept (before the speed applies).
    pub max_gap: Option<Duration>,
    /// Highest send rate (requests per second).
    pub rate_cap: Option<f64>,
    /// Times the capture is played.
    pub loops: u32,
    /// Offsets from the capture's first request: requests outside are not replayed.
    pub window: (Duration, Option<Duration>),
    /// Which captured requests are replayed (the rest are counted `filtered`).
    pub only: ReplayMatch,
    /// What is changed before sending.
    pub rewrite: Rewrite,
    /// Captured request → scenario identity, first match wins.
    pub identities: Vec<Mapping>,
    /// The identity unmapped requests are sent as; `None`: they are counted `unreplayable`.
    pub unmapped: Option<usize>,
    /// Expected verdicts, first match wins; no match: the recorded answer decides.
    pub policy: Vec<Rule>,
    /// Identities requests can be sent as (the mappings' and `unmapped`'s, distinct).
    pub senders: Vec<usize>,
    /// `checks[class][sender]`: the check index counting that class of request from that
    /// sender (`None`: a rule that does not apply to that sender); classes are the rules in
    /// order, then [`Replay::RECORDED_ALLOW`], [`Replay::RECORDED_DENY`] and
    /// [`Replay::RECORDED_OTHER`] past them.
    pub checks: Vec<Vec<Option<usize>>>,
    /// Whether a captured connection's requests go in order on one connection of their own
    /// (`connections: keep`, the default) or over the identity's pool (`spread`).
    pub keep_connections: bool,
    /// How answers are compared with the recorded ones.
    pub compare: Compare,
}

/// `replay.compare:`.
#[derive(Debug, Clone, Default)]
pub struct Compare {
    /// Whether bodies are compared: `Some(true)`/`Some(false)` as declared; `None` (`auto`):
    /// when gauntlet's oracle is not the gateway's upstream in the run (it answers in the
    /// application's place, so its bodies are not the recorded application's).
    pub body: Option<bool>,
    /// Parts of a body masked before comparing (timestamps, request ids).
    pub noisy: Vec<Noisy>,
}

/// One noisy part of a body.
#[derive(Debug, Clone)]
pub enum Noisy {
    /// A JSON field, by its path (`*`: every key or element at that level).
    Json(Vec<String>),
    /// Text matching a regex.
    Regex(regex::Regex),
}

impl Replay {
    /// Class offset (after the rules) of requests whose recorded answer let them through.
    pub const RECORDED_ALLOW: usize = 0;
    /// Class offset (after the rules) of requests whose recorded answer was 401 or 403.
    pub const RECORDED_DENY: usize = 1;
    /// Class offset of requests the recording answered with a 4xx that is not a refusal.
    pub const RECORDED_OTHER: usize = 2;
}

/// A request filter: every given part must match.
#[derive(Debug, Clone, Default)]
pub struct ReplayMatch {
    /// The host (`Host` header or absolute target).
    pub host: Option<regex::Regex>,
    /// The path and query.
    pub path: Option<regex::Regex>,
    /// Methods (empty: any).
    pub methods: Vec<Method>,
    /// Header values.
    pub headers: Vec<(HeaderName, regex::Regex)>,
}

/// Changes to a replayed request.
#[derive(Debug, Clone, Default)]
pub struct Rewrite {
    /// `None`: the target's authority; `Some(None)`: keep the captured host; `Some(Some(h))`: `h`.
    pub host: Option<Option<http::uri::Authority>>,
    /// Path substitutions, applied in order.
    pub path: Vec<(regex::Regex, String)>,
    /// Headers set (replacing a captured one of the same name).
    pub set_headers: Vec<(HeaderName, HeaderValue)>,
    /// Headers removed.
    pub remove_headers: Vec<HeaderName>,
}

/// One identity mapping: every given part must match the captured request.
#[derive(Debug, Clone, Default)]
pub struct Mapping {
    /// Index into `Scenario::identities`.
    pub identity: usize,
    /// Claims of the captured bearer JWT.
    pub claims: Vec<(String, regex::Regex)>,
    /// Captured header values.
    pub headers: Vec<(HeaderName, regex::Regex)>,
    /// Client address range.
    pub source: Option<(std::net::IpAddr, u8)>,
    /// Matches requests that carried no credential.
    pub anonymous: bool,
    /// The subject of the client certificate of the captured connection (visible in a
    /// decrypted TLS capture).
    pub cert_subject: Option<regex::Regex>,
    /// Claims of the captured token copied into the identity's token, re-minted per distinct
    /// set (never its subject, issuer, audience or times: those stay the identity's).
    pub keep_claims: Vec<String>,
}

/// An expected verdict for matching replayed requests.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Name (in the check ids).
    pub name: String,
    /// Path regex.
    pub path: Option<regex::Regex>,
    /// Methods (empty: any).
    pub methods: Vec<Method>,
    /// Identities it applies to (empty: any).
    pub identities: Vec<usize>,
    /// The verdict.
    pub expect: Expect,
    /// Why the rule is outside the profile's declared scope (its requests are not sent), if it is.
    pub out_of_scope: Option<String>,
}

/// A named network condition on the client link.
#[derive(Debug, Clone)]
pub struct Network {
    /// Name (labels every counter sent under it).
    pub name: String,
    /// What the link does.
    pub impairment: crate::netem::Impairment,
}

/// Where impairments are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// User-space links (no privileges; no real packet loss).
    #[default]
    User,
    /// The client link through a network namespace: kernel `tbf` bandwidth and nftables
    /// packet loss (root, `ip`, `tc`, `nft`).
    Kernel,
}

/// The link every client request crosses (events name it `link: client`).
pub const CLIENT_LINK: &str = "client";

/// The name of the network condition in force when nothing impairs any link (a phase or an
/// event may not take it).
pub const UNIMPAIRED: &str = "unimpaired";

/// `dependencies.NAME:` resolved: a link listening where the gateway calls a dependency.
#[derive(Debug, Clone)]
pub struct Dependency {
    /// Name (events name it as their `link:`).
    pub name: String,
    /// Where the gateway reaches the dependency (the link's front).
    pub listen: std::net::SocketAddr,
    /// What the link forwards to.
    pub behind: Behind,
}

/// What sits behind a dependency link.
#[derive(Debug, Clone)]
pub enum Behind {
    /// An existing service (`host:port`, resolved at run time).
    Upstream(String),
    /// gauntlet's authorization service deciding with these routes.
    Authz(Vec<crate::gateway::policy::Route>),
    /// gauntlet's key endpoint serving this JWKS document.
    Jwks(Bytes),
}

impl Behind {
    /// `upstream`, `authz` or `jwks`.
    pub fn kind(&self) -> &'static str {
        match self {
            Behind::Upstream(_) => "upstream",
            Behind::Authz(_) => "authz",
            Behind::Jwks(_) => "jwks",
        }
    }
}

/// `events[]:` resolved: a named condition in force on one link for a while.
#[derive(Debug, Clone)]
pub struct Event {
    /// Name (labels every request sent while it is in force).
    pub name: String,
    /// Start, from the start of the run (paused time excluded).
    pub at: Duration,
    /// How long it lasts.
    pub duration: Duration,
    /// `client` or a dependency name.
    pub link: String,
    /// What the link does meanwhile.
    pub impairment: crate::netem::Impairment,
    /// What a conforming gateway answers while it is in force.
    pub outage: Option<Outage>,
}

/// Refusals a conforming gateway gives while a dependency is down.
#[derive(Debug, Clone, PartialEq)]
pub struct Outage {
    /// Statuses counted as expected outage denials, not violations.
    pub statuses: Vec<u16>,
    /// How long after the event ends they are still accepted (the `EVENT:recovery` condition).
    pub grace: Duration,
}

/// How requests are paced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Load {
    /// Constant arrival rate (requests per second).
    Constant(f64),
    /// Linear ramp between two rates over the phase duration.
    Ramp {
        /// Starting rate.
        from: f64,
        /// Final rate.
        to: f64,
    },
    /// N virtual users, each sending as soon as its previous request completes.
    Closed {
        /// Number of users.
        users: u32,
    },
    /// A capture's requests at their recorded pace ([`Phase::replay`]).
    Replay,
}
