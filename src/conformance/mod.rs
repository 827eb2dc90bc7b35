//! Zero-trust verdicts: what a check expects, the violation taxonomy, and the classification
//! of one outcome against one expectation.
//!
//! Pure logic: no IO, no clock. The oracle's findings (`spoofed_header`, `missing_identity`,
//! upstream arrivals of deny-class requests) enter through the same [`Violation`] kinds, joined
//! by [`upstream_found`]; the run's verdict is decided in `crate::judge`.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

/// A set of HTTP statuses: exact codes and whole classes (`2xx`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statuses(Vec<(u16, u16)>);

impl Statuses {
    /// Every 2xx status: the default success of an allow check.
    pub fn success() -> Self {
        Statuses(vec![(200, 299)])
    }

    /// Exactly these codes.
    pub fn of(codes: &[u16]) -> Self {
        Statuses(codes.iter().map(|c| (*c, *c)).collect())
    }

    /// Parses `200`, `204` or `2xx` entries; `None` on anything else.
    pub fn parse<'a>(items: impl IntoIterator<Item = &'a str>) -> Option<Self> {
        let mut out = Vec::new();
        for it in items {
            let it = it.trim();
            if let Some(class) = it.strip_suffix("xx").or_else(|| it.strip_suffix("XX")) {
                let d: u16 = class.parse().ok().filter(|d| (1..=5).contains(d))?;
                out.push((d * 100, d * 100 + 99));
            } else {
                let c: u16 = it.parse().ok().filter(|c| (100..=599).contains(c))?;
                out.push((c, c));
            }
        }
        (!out.is_empty()).then_some(Statuses(out))
    }

    /// Whether `s` is in the set.
    pub fn contains(&self, s: u16) -> bool {
        self.0.iter().any(|(a, b)| (*a..=*b).contains(&s))
    }

    /// `2xx`, `200, 204`: as a person would write it.
    pub fn describe(&self) -> String {
        self.0
            .iter()
            .map(|(a, b)| if a == b { a.to_string() } else { format!("{}xx", a / 100) })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The statuses every allow-class check treats as a refusal (a false deny), besides the
/// target profile's own deny statuses: the gateway said no.
pub const REFUSALS: [u16; 3] = [401, 403, 429];

/// How a replayed request's answer compares with the recorded one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayClass {
    /// The same status.
    Match,
    /// Another status of the same kind (both let through, or both refused), or the same
    /// status with another body (once the declared noisy fields are masked).
    Drift,
    /// Let through in the recording and refused now (401/403), or the other way round: a
    /// policy change, or a violation.
    VerdictFlip,
}

impl ReplayClass {
    /// Names, by [`ReplayClass::index`].
    pub const NAMES: [&'static str; 3] = ["match", "drift", "verdict_flip"];

    /// Compares a `recorded` status with a `replayed` one.
    pub fn of(recorded: u16, replayed: u16) -> Self {
        let refused = |s: u16| s == 401 || s == 403;
        let through = |s: u16| (200..400).contains(&s);
        if recorded == replayed {
            ReplayClass::Match
        } else if (refused(recorded) && through(replayed)) || (through(recorded) && refused(replayed)) {
            ReplayClass::VerdictFlip
        } else {
            ReplayClass::Drift
        }
    }

    /// Position in counters.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A `limit` expectation: the gateway allows `requests` per `per` to one identity and
/// refuses the rest with 429.
#[derive(Debug, Clone, PartialEq)]
pub struct Limit {
    /// Requests allowed per window.
    pub requests: u32,
    /// The window.
    pub per: Duration,
    /// How far above the limit the allowed rate may go before a window is a bypass (and
    /// below it before it is a false deny), as a fraction (0.1 = 10 %).
    pub tolerance: f64,
    /// Requests the limiter may let through at once beyond the steady rate (a token
    /// bucket's capacity); by default one window's worth.
    pub burst: u32,
    /// The factor above the limit the check must be sent at to be judged.
    pub drive: f64,
    /// Statuses meaning "allowed" (2xx).
    pub success: Statuses,
    /// Statuses meaning "refused, not limited" (a false deny).
    pub refusals: Vec<u16>,
}

/// What a conforming gateway does with a check's request.
#[derive(Debug, Clone, PartialEq)]
pub enum Expect {
    /// Reaches the upstream; the client gets the upstream's answer with a success status.
    Allow {
        /// Statuses that are a success (2xx unless declared).
        success: Statuses,
        /// Statuses that are a refusal (a false deny): the profile's deny statuses and
        /// [`REFUSALS`].
        refusals: Vec<u16>,
    },
    /// The gateway answers itself with one of these statuses; nothing reaches the upstream.
    Deny {
        /// Acceptable deny statuses.
        statuses: Vec<u16>,
    },
    /// The TLS handshake (or the first request on it) is refused.
    TlsReject,
    /// Allowed up to a rate, then 429.
    Limit(Limit),
}

impl Expect {
    /// An allow expectation with the default success (2xx) and refusals ([`REFUSALS`]).
    pub fn allow() -> Self {
        Expect::Allow { success: Statuses::success(), refusals: REFUSALS.to_vec() }
    }

    /// Short name used in reports.
    pub fn kind(&self) -> &'static str {
        match self {
            Expect::Allow { .. } => "allow",
            Expect::Deny { .. } => "deny",
            Expect::TlsReject => "tls_reject",
            Expect::Limit(_) => "limit",
        }
    }

    /// Deny-class checks must never reach the upstream.
    pub fn is_deny_class(&self) -> bool {
        matches!(self, Expect::Deny { .. } | Expect::TlsReject)
    }

    /// Allow-class (allow and limit): legitimate traffic.
    pub fn is_allow(&self) -> bool {
        matches!(self, Expect::Allow { .. })
    }

    /// The statuses that count as this check's expected refusal (for live views).
    pub fn expected_refusals(&self) -> Vec<u16> {
        match self {
            Expect::Deny { statuses } => statuses.clone(),
            Expect::Limit(_) => vec![429],
            _ => Vec::new(),
        }
    }
}

/// Severity, from the catalog rubric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Hygiene.
    Low,
    /// Wrong semantics.
    Medium,
    /// Transport weakness, limiter bypass, lost identity.
    High,
    /// A deny-class request got through.
    Critical,
}

impl Severity {
    /// Parses `critical|high|medium|low`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "critical" => Severity::Critical,
            "high" => Severity::High,
            "medium" => Severity::Medium,
            "low" => Severity::Low,
            _ => return None,
        })
    }

    /// lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
        }
    }
}

/// A policy violation kind (DESIGN §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Violation {
    /// A deny-class request was answered 2xx (or 101) or seen by the upstream.
    Leak,
    /// A handshake that must be refused was accepted and the request served: a 2xx (or
    /// 101) answer to a `tls_reject` check, or its arrival at the upstream.
    TlsAccept,
    /// A client-forged identity header reached the upstream.
    SpoofedHeader,
    /// An allow-class request was refused (the profile's deny statuses, 401, 403, 429, or
    /// a TLS refusal); for `limit` checks, a window where the limiter refused well below the
    /// declared limit.
    FalseDeny,
    /// Denied, but not the expected way: another deny status, or (for a `tls_reject` check)
    /// an HTTP refusal after an accepted handshake instead of a refused handshake.
    WrongStatus,
    /// Allowed, but the upstream did not get the verified identity.
    MissingIdentity,
    /// A `limit` check window in which more requests were allowed than the limit permits.
    LimitBypass,
}

impl Violation {
    /// Every kind, in report order.
    pub const ALL: [Violation; 7] = [
        Violation::Leak,
        Violation::TlsAccept,
        Violation::SpoofedHeader,
        Violation::FalseDeny,
        Violation::WrongStatus,
        Violation::MissingIdentity,
        Violation::LimitBypass,
    ];

    /// The snake_case name used in YAML, thresholds and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Violation::Leak => "leak",
            Violation::TlsAccept => "tls_accept",
            Violation::SpoofedHeader => "spoofed_header",
            Violation::FalseDeny => "false_deny",
            Violation::WrongStatus => "wrong_status",
            Violation::MissingIdentity => "missing_identity",
            Violation::LimitBypass => "limit_bypass",
        }
    }

    /// Position in [`Violation::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Severity of this failure mode.
    pub fn severity(self) -> Severity {
        match self {
            Violation::Leak | Violation::SpoofedHeader | Violation::TlsAccept => Severity::Critical,
            Violation::FalseDeny | Violation::MissingIdentity | Violation::LimitBypass => Severity::High,
            Violation::WrongStatus => Severity::Medium,
        }
    }

    /// Parses a snake_case name.
    pub fn parse(s: &str) -> Option<Self> {
        Violation::ALL.into_iter().find(|v| v.name() == s)
    }
}

/// Why a request got no answer: counted apart from violations, against the error budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    /// TCP connect failed (refused, unreachable), or the peer closed before speaking TLS.
    Connect,
    /// TLS failed locally (the gateway's certificate does not verify, a bad record).
    Tls,
    /// The connection was reset or closed mid-exchange.
    Reset,
    /// The request timed out.
    Timeout,
    /// Malformed HTTP (or a protocol switch nobody asked for).
    Protocol,
}

impl ErrorKind {
    /// Every kind, in report order.
    pub const ALL: [ErrorKind; 5] =
        [ErrorKind::Connect, ErrorKind::Tls, ErrorKind::Reset, ErrorKind::Timeout, ErrorKind::Protocol];

    /// snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Tls => "tls",
            ErrorKind::Reset => "reset",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Protocol => "protocol",
        }
    }

    /// Position in [`ErrorKind::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Where on its connection a failed exchange broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broke {
    /// The first exchange on a newly opened TLS connection, before any response byte: where
    /// a server that verifies client certificates after the handshake (TLS 1.3) refuses.
    Fresh,
    /// A kept-alive connection that had served before, closed by the peer before any
    /// response byte: the request may never have been read (a retry candidate).
    Stale,
    /// Anywhere else (mid-response, on plain TCP, after a partial answer).
    Other,
}

/// What one request became, as seen by the client.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// An HTTP answer.
    Answered {
        /// Status code.
        status: u16,
    },
    /// The TLS handshake was refused: the peer sent a TLS alert, or closed during the
    /// handshake after it had spoken TLS (a peer that closes before any ServerHello did not
    /// refuse anything: that is a [`ErrorKind::Connect`] error).
    TlsRejected,
    /// The connection closed or reset before an answer.
    Broken {
        /// What broke.
        kind: ErrorKind,
        /// Where.
        at: Broke,
        /// What was seen, in words (bounded copies are kept per check and kind).
        cause: Option<Arc<str>>,
    },
    /// No answer within the timeout.
    TimedOut,
    /// A WebSocket session the gateway had to end (its credentials expired during it) was
    /// still open when gauntlet closed it: access outlived authorization.
    KeptOpen,
}

impl Outcome {
    /// A broken exchange with a cause.
    pub fn broken(kind: ErrorKind, at: Broke, cause: impl std::fmt::Display) -> Self {
        Outcome::Broken { kind, at, cause: Some(Arc::from(cause.to_string())) }
    }

    /// The error kind when this is a failure without an answer.
    pub fn error_kind(&self) -> Option<ErrorKind> {
        match self {
            Outcome::Broken { kind, .. } => Some(*kind),
            Outcome::TimedOut => Some(ErrorKind::Timeout),
            _ => None,
        }
    }

    /// The cause text of a broken exchange.
    pub fn cause(&self) -> Option<&str> {
        match self {
            Outcome::Broken { cause, .. } => cause.as_deref(),
            _ => None,
        }
    }
}

/// The verdict on one outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Conforming: allowed and answered with a success status.
    Pass,
    /// Conforming: denied the way the check expects (includes TLS refusals).
    Denied,
    /// Conforming: a `limit` check answered 429.
    Limited,
    /// Conforming: refused with a declared outage status while a dependency was down.
    OutageDenied,
    /// Answered, but with a status the expectation names neither as success nor as a
    /// refusal (a 404, 302 or 503 on an allow check): the check cannot pass.
    Unexpected,
    /// A policy violation.
    Violation(Violation),
    /// No answer: a transport error or a timeout.
    Error(ErrorKind),
}

/// Classifies one client-side outcome against a check's expectation.
pub fn classify(expect: &Expect, outcome: &Outcome) -> Verdict {
    use Verdict::*;
    // 101 only reaches here for a WebSocket upgrade (a 101 to a plain request is a protocol
    // error in `proto`): access, like a 2xx.
    let access = |s: u16| (200..300).contains(&s) || s == 101;
    match (expect, outcome) {
        (_, Outcome::TimedOut) => Error(ErrorKind::Timeout),
        (_, Outcome::KeptOpen) => Violation(self::Violation::Leak),
        (Expect::TlsReject, Outcome::TlsRejected) => Denied,
        (Expect::TlsReject, Outcome::Broken { at: Broke::Fresh, .. }) => Denied,
        // Served: a bad handshake got through to the service.
        (Expect::TlsReject, Outcome::Answered { status }) if access(*status) => Violation(self::Violation::TlsAccept),
        // Refused, but after the handshake (nginx answers 400 to a bad client certificate):
        // the right decision at the wrong layer.
        (Expect::TlsReject, Outcome::Answered { .. }) => Violation(self::Violation::WrongStatus),
        (Expect::Deny { .. }, Outcome::TlsRejected) => Denied,
        (Expect::Deny { .. }, Outcome::Answered { status }) if access(*status) => Violation(self::Violation::Leak),
        (Expect::Deny { statuses }, Outcome::Answered { status }) => {
            if statuses.contains(status) {
                Denied
            } else {
                Violation(self::Violation::WrongStatus)
            }
        }
        (Expect::Allow { .. } | Expect::Limit(_), Outcome::TlsRejected) => Violation(self::Violation::FalseDeny),
        (Expect::Limit(_), Outcome::Answered { status: 429 }) => Limited,
        (
            Expect::Allow { success, refusals } | Expect::Limit(self::Limit { success, refusals, .. }),
            Outcome::Answered { status },
        ) => {
            if success.contains(*status) {
                Pass
            } else if refusals.contains(status) {
                Violation(self::Violation::FalseDeny)
            } else {
                Unexpected
            }
        }
        (_, Outcome::Broken { kind, .. }) => Error(*kind),
    }
}

/// Classifies under a condition that may declare an outage: a refusal with one of the
/// `outage` statuses — which would otherwise be a false deny, a wrong status or an
/// unexpected status — is an expected outage denial. A success is judged as always: an
/// outage never excuses a leak.
pub fn classify_under(expect: &Expect, outcome: &Outcome, outage: Option<&[u16]>) -> Verdict {
    let v = classify(expect, outcome);
    match (outage, outcome, v) {
        (
            Some(statuses),
            Outcome::Answered { status },
            Verdict::Violation(Violation::FalseDeny | Violation::WrongStatus) | Verdict::Unexpected,
        ) if statuses.contains(status) => Verdict::OutageDenied,
        _ => v,
    }
}

/// What the upstream (the oracle) found of one check: requests that arrived, and of those
/// the deny-class ones, the forged or duplicated identity headers and the missing ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct UpstreamCounts {
    /// Requests that arrived.
    pub arrivals: u64,
    /// Deny-class arrivals.
    pub leaks: u64,
    /// Arrivals with a forged, duplicated or wrong identity header.
    pub spoofed: u64,
    /// Arrivals without the injected identity header.
    pub missing: u64,
}

impl UpstreamCounts {
    /// Adds `o` into `self`.
    pub fn add(&mut self, o: &UpstreamCounts) {
        self.arrivals += o.arrivals;
        self.leaks += o.leaks;
        self.spoofed += o.spoofed;
        self.missing += o.missing;
    }
}

/// What the upstream proved beyond the client's own verdicts (`client`: client-side
/// violation counts by [`Violation::index`]): spoofed and missing identity come only from
/// the upstream; an arrival of a deny-class request is counted once whether the client saw
/// the answer, the upstream saw the request, or both (the larger of the two counts) — as a
/// `leak` for deny checks and as a `tls_accept` for `tls_reject` checks. A request that
/// arrived more than once (a gateway that also fetches its error page with the request, or
/// retries it) is one leak: leaks never exceed the `sent` requests.
pub fn upstream_found(client: &[u64; 7], expect: &Expect, up: &UpstreamCounts, sent: u64) -> [u64; 7] {
    let served = match expect {
        Expect::TlsReject => Violation::TlsAccept,
        _ => Violation::Leak,
    };
    let mut found = [0; 7];
    found[served.index()] = up.leaks.min(sent).saturating_sub(client[served.index()]);
    found[Violation::SpoofedHeader.index()] = up.spoofed;
    found[Violation::MissingIdentity.index()] = up.missing;
    found
}

/// What was wrong with one header of one arrival.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Problem {
    /// The identity header the gateway must inject did not arrive (or arrived empty).
    Absent,
    /// It arrived more than once (the gateway appended instead of replacing).
    Duplicated,
    /// The value the client forged arrived (alone or inside a list).
    Forged,
    /// It arrived with another principal than the verified identity's.
    WrongPrincipal,
    /// A header that must not arrive at all arrived.
    Present,
}

impl Problem {
    /// snake_case name, as in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Problem::Absent => "absent",
            Problem::Duplicated => "duplicated",
            Problem::Forged => "forged",
            Problem::WrongPrincipal => "wrong_principal",
            Problem::Present => "present",
        }
    }

    /// In words.
    pub fn describe(self) -> &'static str {
        match self {
            Problem::Absent => "absent (the gateway did not inject the verified identity)",
            Problem::Duplicated => "duplicated (the gateway appended instead of replacing)",
            Problem::Forged => "the client's forged value arrived",
            Problem::WrongPrincipal => "wrong principal",
            Problem::Present => "must not arrive at all, but did",
        }
    }

    /// Spoofing (critical) rather than a missing identity.
    pub fn is_spoof(self) -> bool {
        !matches!(self, Problem::Absent)
    }
}

/// One (header, problem) of a check, with its count and a sample of what arrived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct HeaderFinding {
    /// Header name.
    pub header: String,
    /// What was wrong.
    pub problem: Problem,
    /// Arrivals with this problem.
    pub count: u64,
    /// What arrived, first seen (values of credential headers are redacted; long values cut).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample: Option<String>,
}

/// Distinct (header, problem) pairs kept per check; further ones are counted in `other`.
const FINDINGS_KEPT: usize = 8;
/// Longest header value kept as a sample.
const SAMPLE_MAX: usize = 96;

/// The header findings of one check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct HeaderFindings {
    /// By (header, problem), first seen first.
    pub kept: Vec<HeaderFinding>,
    /// Problems of pairs not kept.
    pub other: u64,
}

impl HeaderFindings {
    /// Adds `o` (another oracle's findings of the same check) into `self`, keeping at most
    /// as many pairs as one oracle keeps.
    pub fn add(&mut self, o: &HeaderFindings) {
        for f in &o.kept {
            let room = self.kept.len() < FINDINGS_KEPT;
            match self.kept.iter_mut().find(|x| x.problem == f.problem && x.header == f.header) {
                Some(x) => x.count += f.count,
                None if room => self.kept.push(f.clone()),
                None => self.other += f.count,
            }
        }
        self.other += o.other;
    }

    /// Counts one problem of header `name`, keeping `value` as the sample when it is new.
    pub fn note(&mut self, problem: Problem, name: &http::HeaderName, value: Option<&[u8]>) {
        if let Some(f) = self.kept.iter_mut().find(|f| f.problem == problem && f.header == name.as_str()) {
            f.count += 1;
            return;
        }
        if self.kept.len() >= FINDINGS_KEPT {
            self.other += 1;
            return;
        }
        let sample = value.map(|v| {
            if is_secret_header(name.as_str()) {
                "REDACTED".to_string()
            } else {
                let mut t: String = String::from_utf8_lossy(v).chars().filter(|c| !c.is_control()).collect();
                truncate(&mut t, SAMPLE_MAX);
                t
            }
        });
        self.kept.push(HeaderFinding { header: name.as_str().to_string(), problem, count: 1, sample });
    }
}

/// Cuts `s` to at most `max` bytes (at a character boundary), marking the cut with `…`.
pub fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
}

/// Header names whose values are credentials and never written to results.
pub fn is_secret_header(name: &str) -> bool {
    is_secret_name(name)
}

/// Words that make a header or query parameter name a secret's (`x-client-secret`,
/// `x-password`, `x-session-id`, `access_token`, `x-api-key`, `authorization`, `set-cookie`,
/// `x-credential`…): redaction goes by this rule, not by a list of names.
const SECRET_WORDS: &[&str] =
    &["secret", "password", "passwd", "token", "session", "key", "auth", "cookie", "credential"];

/// Whether `name` (a header or query parameter) names a secret, by [`SECRET_WORDS`].
pub fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|w| n.contains(w))
}

/// `url` with any `user:password@` in its authority replaced by `REDACTED@`
/// (`https://u:p@gw:443/x` → `https://REDACTED@gw:443/x`); anything else unchanged.
pub fn redact_userinfo(url: &str) -> std::borrow::Cow<'_, str> {
    let Some((scheme, rest)) = url.split_once("://") else { return std::borrow::Cow::Borrowed(url) };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => std::borrow::Cow::Owned(format!("{scheme}://REDACTED@{}", &rest[at + 1..])),
        None => std::borrow::Cow::Borrowed(url),
    }
}

/// `path` with the value of every secret query parameter replaced by `REDACTED`
/// (`/cb?access_token=abc&x=1` → `/cb?access_token=REDACTED&x=1`).
pub fn redact_query(path: &str) -> std::borrow::Cow<'_, str> {
    let Some((base, query)) = path.split_once('?') else { return std::borrow::Cow::Borrowed(path) };
    let (query, fragment) = match query.split_once('#') {
        Some((q, f)) => (q, Some(f)),
        None => (query, None),
    };
    let mut changed = false;
    let parts: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if !v.is_empty() && is_secret_name(k) => {
                changed = true;
                format!("{k}=REDACTED")
            }
            _ => kv.to_string(),
        })
        .collect();
    if !changed {
        return std::borrow::Cow::Borrowed(path);
    }
    let mut out = format!("{base}?{}", parts.join("&"));
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deny() -> Expect {
        Expect::Deny { statuses: vec![401, 403] }
    }

    fn a(status: u16) -> Outcome {
        Outcome::Answered { status }
    }

    fn broken(kind: ErrorKind, at: Broke) -> Outcome {
        Outcome::Broken { kind, at, cause: None }
    }

    #[test]
    fn secrets_are_found_by_rule_in_header_and_query_names() {
        for n in [
            "Authorization",
            "x-client-secret",
            "x-password",
            "x-passwd",
            "x-session-id",
            "access_token",
            "x-api-key",
            "set-cookie",
            "x-credential",
            "proxy-authorization",
        ] {
            assert!(is_secret_name(n), "{n}");
        }
        for n in ["x-forwarded-user", "content-type", "x-request-id", "accept"] {
            assert!(!is_secret_name(n), "{n}");
        }
        assert_eq!(redact_query("/cb?access_token=abc&x=1#f"), "/cb?access_token=REDACTED&x=1#f");
        assert_eq!(redact_query("/a?x=1"), "/a?x=1");
        assert_eq!(redact_query("/a"), "/a");
        assert_eq!(redact_userinfo("https://u:p@gw:443/x?a=b@c"), "https://REDACTED@gw:443/x?a=b@c");
        assert_eq!(redact_userinfo("https://gw/x@y"), "https://gw/x@y");
    }

    #[test]
    fn deny_class_success_is_a_leak_and_a_served_bad_handshake_is_tls_accept() {
        assert_eq!(classify(&deny(), &a(200)), Verdict::Violation(Violation::Leak));
        assert_eq!(classify(&Expect::TlsReject, &a(204)), Verdict::Violation(Violation::TlsAccept));
        // Refused after the handshake, not served: the wrong layer, not a served request.
        assert_eq!(classify(&Expect::TlsReject, &a(400)), Verdict::Violation(Violation::WrongStatus));
    }

    #[test]
    fn deny_statuses_are_checked() {
        assert_eq!(classify(&deny(), &a(403)), Verdict::Denied);
        assert_eq!(classify(&deny(), &a(502)), Verdict::Violation(Violation::WrongStatus));
        assert_eq!(classify(&deny(), &Outcome::TlsRejected), Verdict::Denied);
    }

    #[test]
    fn tls_reject_accepts_refusal_on_first_exchange_only() {
        assert_eq!(classify(&Expect::TlsReject, &broken(ErrorKind::Reset, Broke::Fresh)), Verdict::Denied);
        assert_eq!(
            classify(&Expect::TlsReject, &broken(ErrorKind::Reset, Broke::Other)),
            Verdict::Error(ErrorKind::Reset)
        );
        // A peer that closed before speaking TLS refused nothing.
        assert_eq!(
            classify(&Expect::TlsReject, &broken(ErrorKind::Connect, Broke::Other)),
            Verdict::Error(ErrorKind::Connect)
        );
    }

    #[test]
    fn allow_passes_only_on_its_success_statuses() {
        let allow = Expect::allow();
        assert_eq!(classify(&allow, &a(200)), Verdict::Pass);
        assert_eq!(classify(&allow, &a(403)), Verdict::Violation(Violation::FalseDeny));
        assert_eq!(classify(&allow, &Outcome::TlsRejected), Verdict::Violation(Violation::FalseDeny));
        for s in [404, 500, 302, 503, 101] {
            assert_eq!(classify(&allow, &a(s)), Verdict::Unexpected, "{s}");
        }
        assert_eq!(classify(&allow, &Outcome::TimedOut), Verdict::Error(ErrorKind::Timeout));
        let declared = Expect::Allow { success: Statuses::of(&[204]), refusals: vec![302, 407, 401, 403, 429] };
        assert_eq!(classify(&declared, &a(200)), Verdict::Unexpected);
        assert_eq!(classify(&declared, &a(204)), Verdict::Pass);
        // The profile's deny statuses are refusals too.
        assert_eq!(classify(&declared, &a(302)), Verdict::Violation(Violation::FalseDeny));
        assert_eq!(classify(&declared, &a(407)), Verdict::Violation(Violation::FalseDeny));
    }

    #[test]
    fn statuses_parse_codes_and_classes() {
        let s = Statuses::parse(["2xx", "302"]).unwrap();
        assert!(s.contains(299) && s.contains(302) && !s.contains(301) && !s.contains(404));
        assert_eq!(s.describe(), "2xx, 302");
        assert!(Statuses::parse(["6xx"]).is_none());
        assert!(Statuses::parse(["99"]).is_none());
        assert!(Statuses::parse(Vec::<&str>::new()).is_none());
    }

    #[test]
    fn outage_statuses_excuse_refusals_never_successes() {
        let outage = Some(&[503u16, 403][..]);
        let allow = Expect::allow();
        assert_eq!(classify_under(&allow, &a(503), outage), Verdict::OutageDenied);
        assert_eq!(classify_under(&allow, &a(403), outage), Verdict::OutageDenied);
        assert_eq!(classify_under(&allow, &a(401), outage), Verdict::Violation(Violation::FalseDeny));
        assert_eq!(classify_under(&deny(), &a(503), outage), Verdict::OutageDenied);
        assert_eq!(classify_under(&deny(), &a(200), outage), Verdict::Violation(Violation::Leak));
        assert_eq!(classify_under(&deny(), &a(403), outage), Verdict::Denied);
        assert_eq!(classify_under(&allow, &a(503), None), Verdict::Unexpected);
    }

    #[test]
    fn limit_checks_accept_429() {
        let lim = Expect::Limit(Limit {
            requests: 10,
            per: Duration::from_secs(1),
            tolerance: 0.1,
            burst: 10,
            drive: 1.2,
            success: Statuses::success(),
            refusals: REFUSALS.to_vec(),
        });
        assert_eq!(classify(&lim, &a(429)), Verdict::Limited);
        assert_eq!(classify(&lim, &a(200)), Verdict::Pass);
        assert_eq!(classify(&lim, &a(403)), Verdict::Violation(Violation::FalseDeny));
        assert_eq!(classify(&lim, &a(500)), Verdict::Unexpected);
    }

    #[test]
    fn upstream_findings_join_once() {
        let mut v = [0u64; 7];
        v[Violation::Leak.index()] = 2;
        let up = UpstreamCounts { arrivals: 3, leaks: 3, spoofed: 1, missing: 2 };
        let f = upstream_found(&v, &deny(), &up, 10);
        assert_eq!((v[0] + f[0], f[2], f[5]), (3, 1, 2));
        let t = upstream_found(&[0; 7], &Expect::TlsReject, &up, 10);
        assert_eq!((t[Violation::Leak.index()], t[Violation::TlsAccept.index()]), (0, 3));
        // Two arrivals of each of 2 requests (the request, and the error page the gateway
        // fetched with it) are 2 leaks, not 4.
        let twice = UpstreamCounts { arrivals: 4, leaks: 4, spoofed: 0, missing: 0 };
        assert_eq!(upstream_found(&[0; 7], &deny(), &twice, 2)[Violation::Leak.index()], 2);
    }

    #[test]
    fn findings_are_bounded_and_credential_values_redacted() {
        let mut f = HeaderFindings::default();
        for i in 0..20 {
            let n = http::HeaderName::from_bytes(format!("x-h{i}").as_bytes()).unwrap();
            f.note(Problem::Present, &n, Some(b"v"));
        }
        assert_eq!((f.kept.len(), f.other), (FINDINGS_KEPT, 20 - FINDINGS_KEPT as u64));
        let mut g = HeaderFindings::default();
        g.note(Problem::Present, &http::header::AUTHORIZATION, Some(b"Bearer secret"));
        g.note(Problem::Forged, &http::HeaderName::from_static("x-a"), Some("x".repeat(500).as_bytes()));
        assert_eq!(g.kept[0].sample.as_deref(), Some("REDACTED"));
        assert!(g.kept[1].sample.as_ref().unwrap().len() <= SAMPLE_MAX + 3);
    }
}
