//! The oracle upstream: an origin gauntlet controls, put behind the gateway, so a leak is
//! proven by what *arrived*, not guessed from status codes.
//!
//! It decodes each request's tag (`x-gauntlet-tag: <run>.<check>.<seq>` or the
//! `gauntlet_tag` query parameter), counts arrivals per (phase, check), and checks the
//! upstream expectations: the identity header the gateway must inject, headers that must
//! not arrive (client-forged identity), and duplicates. Counters are a fixed array of atomics:
//! no per-request storage, bounded memory under any load; a missing or garbage tag is counted
//! as `untagged`, a tag from another run as `foreign`. Answers 200 with a small JSON body over
//! HTTP/1.1 and HTTP/2 (h2c, or TLS when given a config).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use serde::Serialize;
use tokio::net::TcpListener;

use crate::conformance::{HeaderFindings, Problem};
use crate::proto::{TAG_HEADER, TAG_PARAM};
use crate::scenario::Scenario;

/// Accept tags from any run (a standalone oracle serving many runs).
pub const ANY_RUN: &str = "*";

/// What the upstream must see for one check.
#[derive(Debug, Clone, Default)]
pub struct Rule {
    /// Check id.
    pub id: String,
    /// Deny-class: any arrival is a leak.
    pub deny_class: bool,
    /// Headers that must arrive exactly once with this value.
    pub require: Vec<(HeaderName, String)>,
    /// The identity header the gateway injects, and the principal it must carry for each
    /// member of the check's identity (one entry unless the identity is a pool).
    pub identity: Option<(HeaderName, Vec<String>)>,
    /// Headers that must not arrive at all.
    pub absent: Vec<HeaderName>,
    /// Headers whose client-sent value must not arrive (the gateway may set its own).
    pub stripped: Vec<(HeaderName, String)>,
}

/// Rules for one run.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Run id the tags must carry.
    pub run: String,
    /// Number of phases (the tag's sequence number carries the phase).
    pub phases: usize,
    /// Number of network conditions (the tag carries the one in force at the send).
    pub conditions: usize,
    /// One rule per check, in scenario order.
    pub checks: Vec<Rule>,
}

impl Rules {
    /// Rules from a scenario: its checks' `upstream` expectations plus, for allow-class
    /// checks, the profile's identity header carrying the identity's principal. `conditions`:
    /// how many network conditions the run's plan labels requests with.
    pub fn from_scenario(s: &Scenario, run: &str, conditions: usize) -> Self {
        let checks = s
            .checks
            .iter()
            .enumerate()
            .map(|(ci, c)| {
                let require: Vec<(HeaderName, String)> = c.upstream.headers.clone();
                let deny_class = c.expect.is_deny_class();
                let id = &s.identities[c.identity];
                let identity = match (deny_class, &s.profile.identity_header) {
                    (false, Some(h)) if !require.iter().any(|(n, _)| n == h) => {
                        Some((h.clone(), (0..s.members_of(ci)).map(|m| id.principal_of(m)).collect()))
                    }
                    _ => None,
                };
                // A header the client forges that the gateway must replace with the verified
                // identity: its forged value must not arrive.
                let mut stripped = c.upstream.stripped.clone();
                for (n, v) in &c.request.headers {
                    let required =
                        require.iter().any(|(r, _)| r == n) || identity.as_ref().is_some_and(|(h, _)| h == n);
                    if required && !stripped.iter().any(|(x, _)| x == n) {
                        if let Ok(v) = v.to_str() {
                            stripped.push((n.clone(), v.to_string()));
                        }
                    }
                }
                Rule { id: c.id.clone(), deny_class, require, identity, absent: c.upstream.absent.clone(), stripped }
            })
            .collect();
        Rules { run: run.to_string(), phases: s.phases.len(), conditions, checks }
    }
}

/// What one arrival was found to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finding {
    /// As expected.
    Clean,
    /// A deny-class request arrived.
    Leak,
    /// A forged, duplicated or wrong identity header arrived.
    Spoofed,
    /// The identity header the gateway must inject is missing.
    Missing,
    /// No valid tag.
    Untagged,
    /// A valid tag from another run.
    Foreign,
}

/// Counters of one (phase, check).
pub type CheckCounts = crate::conformance::UpstreamCounts;

/// A snapshot of the oracle's counters.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// All requests received.
    pub received: u64,
    /// Requests without a valid tag.
    pub untagged: u64,
    /// Requests tagged by another run.
    pub foreign: u64,
    /// By phase, then check (all conditions).
    pub cells: Vec<Vec<CheckCounts>>,
    /// Every (phase, condition, check) that saw an arrival.
    pub by_condition: Vec<ConditionCell>,
    /// What was wrong with the headers, per check.
    pub headers: Vec<HeaderFindings>,
}

/// Counters of one (phase, network condition, check).
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct ConditionCell {
    /// Phase index.
    pub phase: usize,
    /// Condition index (into the plan's conditions).
    pub condition: usize,
    /// Check index.
    pub check: usize,
    /// Counters.
    #[serde(flatten)]
    pub counts: CheckCounts,
}

/// The oracle's state.
#[derive(Debug)]
pub struct Oracle {
    rules: Rules,
    /// Check id → index, for one lookup per arrival.
    index: std::collections::HashMap<String, usize>,
    // [phase][condition][check][0..4] = arrivals, leaks, spoofed, missing
    counts: Vec<AtomicU64>,
    received: AtomicU64,
    untagged: AtomicU64,
    foreign: AtomicU64,
    /// Per check; locked only when an arrival has a header problem.
    headers: Vec<Mutex<HeaderFindings>>,
    /// `gauntlet probe`: the last arrivals, whole.
    capture: Option<Mutex<std::collections::VecDeque<Arrival>>>,
}

/// One arrival as an oracle in capture mode keeps it.
#[derive(Debug, Clone)]
pub struct Arrival {
    /// Check index.
    pub check: usize,
    /// Headers as they arrived (credential values redacted).
    pub headers: Vec<(String, String)>,
    /// What it was found to be.
    pub finding: Finding,
    /// Each header problem, in words.
    pub problems: Vec<String>,
}

/// Arrivals an oracle in capture mode keeps.
const CAPTURED: usize = 16;

impl Oracle {
    /// An oracle judging by `rules`.
    pub fn new(rules: Rules) -> Self {
        let n = rules.phases.max(1) * rules.conditions.max(1) * rules.checks.len() * 4;
        Oracle {
            index: rules.checks.iter().enumerate().map(|(i, r)| (r.id.clone(), i)).collect(),
            headers: rules.checks.iter().map(|_| Mutex::new(HeaderFindings::default())).collect(),
            rules,
            counts: (0..n).map(|_| AtomicU64::new(0)).collect(),
            received: AtomicU64::new(0),
            untagged: AtomicU64::new(0),
            foreign: AtomicU64::new(0),
            capture: None,
        }
    }

    /// An oracle that also keeps the last few arrivals whole (headers as they arrived,
    /// credential values redacted): for `gauntlet probe`, never for load.
    pub fn capturing(rules: Rules) -> Self {
        Oracle { capture: Some(Mutex::new(std::collections::VecDeque::new())), ..Oracle::new(rules) }
    }

    /// The captured arrivals of check `check`, oldest first.
    pub fn captured(&self, check: usize) -> Vec<Arrival> {
        let Some(c) = &self.capture else { return Vec::new() };
        c.lock().unwrap_or_else(|p| p.into_inner()).iter().filter(|a| a.check == check).cloned().collect()
    }

    /// Judges and counts one request.
    pub fn observe(&self, path_and_query: &str, headers: &HeaderMap) -> Finding {
        self.received.fetch_add(1, Ordering::Relaxed);
        let tag = headers.get(TAG_HEADER).and_then(|v| v.to_str().ok()).or_else(|| query_tag(path_and_query));
        let Some((run, check, phase, condition, member)) = tag.and_then(|t| self.decode(t)) else {
            self.untagged.fetch_add(1, Ordering::Relaxed);
            return Finding::Untagged;
        };
        if self.rules.run != ANY_RUN && run != self.rules.run {
            self.foreign.fetch_add(1, Ordering::Relaxed);
            return Finding::Foreign;
        }
        let rule = &self.rules.checks[check];
        if let Some(c) = &self.capture {
            let shown = headers
                .iter()
                .map(|(n, v)| (n.as_str().to_string(), crate::proto::probe::shown(n.as_str(), v.as_bytes())))
                .collect();
            let mut problems = Vec::new();
            let finding = judge(rule, member, headers, |p, n, _| problems.push(format!("{n}: {}", p.describe())));
            let mut c = c.lock().unwrap_or_else(|p| p.into_inner());
            if c.len() >= CAPTURED {
                c.pop_front();
            }
            c.push_back(Arrival { check, headers: shown, finding, problems });
        }
        let base = self.base(phase, condition, check);
        self.counts[base].fetch_add(1, Ordering::Relaxed);
        let mut lock = None;
        let finding = judge(rule, member, headers, |problem, name, value| {
            let f = lock.get_or_insert_with(|| self.headers[check].lock().unwrap_or_else(|p| p.into_inner()));
            f.note(problem, name, value);
        });
        drop(lock);
        let slot = match finding {
            Finding::Leak => 1,
            Finding::Spoofed => 2,
            Finding::Missing => 3,
            _ => return finding,
        };
        self.counts[base + slot].fetch_add(1, Ordering::Relaxed);
        finding
    }

    fn base(&self, phase: usize, condition: usize, check: usize) -> usize {
        ((phase * self.rules.conditions.max(1) + condition) * self.rules.checks.len() + check) * 4
    }

    /// `(run, check index, phase, condition, pool member)` from a tag
    /// (`run.check.seq[.member]`), if it is well formed and names a known check.
    fn decode<'t>(&self, tag: &'t str) -> Option<(&'t str, usize, usize, usize, usize)> {
        let mut parts = tag.split('.');
        let (run, check, seq) = (parts.next()?, parts.next()?, parts.next()?);
        let member = match parts.next() {
            Some(m) => m.parse().ok()?,
            None => 0,
        };
        if parts.next().is_some() || run.is_empty() {
            return None;
        }
        let (phase, condition) = crate::proto::unseq(seq.parse().ok()?);
        if phase >= self.rules.phases.max(1) || condition >= self.rules.conditions.max(1) {
            return None;
        }
        let idx = *self.index.get(check)?;
        Some((run, idx, phase, condition, member))
    }

    fn counts_at(&self, b: usize) -> CheckCounts {
        let get = |i: usize| self.counts[i].load(Ordering::Relaxed);
        CheckCounts { arrivals: get(b), leaks: get(b + 1), spoofed: get(b + 2), missing: get(b + 3) }
    }

    fn header_findings(&self) -> Vec<HeaderFindings> {
        self.headers.iter().map(|h| h.lock().unwrap_or_else(|p| p.into_inner()).clone()).collect()
    }

    /// Current counters.
    pub fn report(&self) -> Report {
        let n = self.rules.checks.len();
        let mut cells = vec![vec![CheckCounts::default(); n]; self.rules.phases.max(1)];
        let mut by_condition = Vec::new();
        for (phase, row) in cells.iter_mut().enumerate() {
            for condition in 0..self.rules.conditions.max(1) {
                for (check, sum) in row.iter_mut().enumerate() {
                    let counts = self.counts_at(self.base(phase, condition, check));
                    if counts.arrivals == 0 {
                        continue;
                    }
                    sum.arrivals += counts.arrivals;
                    sum.leaks += counts.leaks;
                    sum.spoofed += counts.spoofed;
                    sum.missing += counts.missing;
                    by_condition.push(ConditionCell { phase, condition, check, counts });
                }
            }
        }
        Report {
            received: self.received.load(Ordering::Relaxed),
            untagged: self.untagged.load(Ordering::Relaxed),
            foreign: self.foreign.load(Ordering::Relaxed),
            cells,
            by_condition,
            headers: self.header_findings(),
        }
    }
}

impl crate::metrics::Upstream for Oracle {
    fn findings(&self) -> Vec<CheckCounts> {
        (0..self.rules.checks.len())
            .map(|c| {
                let mut sum = CheckCounts::default();
                for p in 0..self.rules.phases.max(1) {
                    for k in 0..self.rules.conditions.max(1) {
                        let x = self.counts_at(self.base(p, k, c));
                        sum.arrivals += x.arrivals;
                        sum.leaks += x.leaks;
                        sum.spoofed += x.spoofed;
                        sum.missing += x.missing;
                    }
                }
                sum
            })
            .collect()
    }

    fn header_notes(&self) -> Vec<Vec<(String, u64)>> {
        self.header_findings()
            .into_iter()
            .map(|h| {
                let mut v: Vec<(String, u64)> = h
                    .kept
                    .iter()
                    .map(|f| {
                        let sample = f.sample.as_deref().map(|s| format!(" (`{s}`)")).unwrap_or_default();
                        (format!("{}: {}{sample}", f.header, f.problem.describe()), f.count)
                    })
                    .collect();
                if h.other > 0 {
                    v.push(("other header problems".to_string(), h.other));
                }
                v
            })
            .collect()
    }
}

fn query_tag(pq: &str) -> Option<&str> {
    let q = pq.split_once('?')?.1;
    q.split('&').find_map(|kv| kv.strip_prefix(TAG_PARAM).and_then(|r| r.strip_prefix('=')))
}

/// Whether `forged` arrived in `value`: the whole value, or one element of a comma list.
fn carries(value: &[u8], forged: &str) -> bool {
    let f = forged.trim().as_bytes();
    value.trim_ascii() == f || value.split(|b| *b == b',').any(|part| part.trim_ascii() == f)
}

/// Applies a rule to one arrival's headers, calling `note` for every problem found. The
/// finding: a deny-class arrival is a leak; otherwise any forged, duplicated, wrong or
/// forbidden header makes it spoofed; otherwise a missing identity header makes it missing.
pub fn judge(
    rule: &Rule,
    member: usize,
    headers: &HeaderMap,
    mut note: impl FnMut(Problem, &HeaderName, Option<&[u8]>),
) -> Finding {
    if rule.deny_class {
        return Finding::Leak;
    }
    let (mut spoofed, mut missing) = (false, false);
    let mut report = |p: Problem, n: &HeaderName, v: Option<&[u8]>| {
        if p.is_spoof() {
            spoofed = true;
        } else {
            missing = true;
        }
        note(p, n, v);
    };
    for h in &rule.absent {
        if let Some(v) = headers.get(h) {
            report(Problem::Present, h, Some(v.as_bytes()));
        }
    }
    for (h, forged) in &rule.stripped {
        if let Some(v) = headers.get_all(h).iter().find(|v| carries(v.as_bytes(), forged)) {
            report(Problem::Forged, h, Some(v.as_bytes()));
        }
    }
    // By reference: no allocation per arrival.
    let identity = rule
        .identity
        .as_ref()
        .and_then(|(h, principals)| principals.get(member).or_else(|| principals.first()).map(|p| (h, p)));
    for (name, want) in rule.require.iter().map(|(n, w)| (n, w)).chain(identity) {
        let mut values = headers.get_all(name).iter();
        match (values.next(), values.next()) {
            (None, _) => report(Problem::Absent, name, None),
            (Some(v), Some(_)) => report(Problem::Duplicated, name, Some(v.as_bytes())),
            (Some(v), None) if v.is_empty() => report(Problem::Absent, name, None),
            (Some(v), None) if v.as_bytes() != want.as_bytes() => {
                let forged = rule.stripped.iter().any(|(h, f)| h == name && carries(v.as_bytes(), f));
                // A forged value was already reported by the stripped rule.
                if !forged {
                    report(Problem::WrongPrincipal, name, Some(v.as_bytes()));
                }
            }
            _ => {}
        }
    }
    if spoofed {
        Finding::Spoofed
    } else if missing {
        Finding::Missing
    } else {
        Finding::Clean
    }
}

/// A running oracle server.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its state.
    pub oracle: Arc<Oracle>,
    server: crate::serve::Server,
}

impl Running {
    /// Stops serving; returns the state for a last report.
    pub async fn stop(self) -> Arc<Oracle> {
        self.server.stop().await;
        self.oracle
    }
}

/// Serves `oracle` on `listener`: HTTP/1.1 and h2c, or — with `tls` — HTTP/1.1 and HTTP/2
/// over TLS (ALPN).
pub fn spawn(
    listener: TcpListener,
    oracle: Arc<Oracle>,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> std::io::Result<Running> {
    let state = oracle.clone();
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let server = crate::serve::spawn(listener, move |tcp, stop| {
        let (oracle, acceptor) = (state.clone(), acceptor.clone());
        async move {
            let svc = service_fn(move |mut req: Request<Incoming>| {
                let oracle = oracle.clone();
                async move {
                    let resp = answer(&oracle, &req);
                    if let Some(accept) = websocket_accept(&req) {
                        return Ok::<_, Infallible>(echo(&mut req, accept));
                    }
                    drain(req.into_body()).await;
                    Ok(resp)
                }
            });
            crate::serve::http(tcp, acceptor.as_ref(), svc, &stop).await;
        }
    })?;
    Ok(Running { addr: server.addr, oracle, server })
}

/// Reads a request body to its end, keeping nothing: an upstream that answers before the body
/// has arrived leaves it unread, and hyper then closes the kept-alive connection — the
/// gateway's next request on it fails (a 502 gauntlet caused, not the gateway).
async fn drain(mut body: Incoming) {
    use http_body_util::BodyExt;
    while let Some(Ok(_)) = body.frame().await {}
}

/// The `Sec-WebSocket-Accept` for a WebSocket upgrade request, if it is one.
fn websocket_accept(req: &Request<Incoming>) -> Option<http::HeaderValue> {
    let h = req.headers();
    let upgrade = h.get(http::header::UPGRADE)?.to_str().ok()?;
    if !upgrade.eq_ignore_ascii_case("websocket") {
        return None;
    }
    let key = h.get(http::header::SEC_WEBSOCKET_KEY)?;
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    http::HeaderValue::from_str(&accept).ok()
}

/// Accepts a WebSocket upgrade (already counted like any arrival) and echoes every data
/// message until the client closes.
fn echo(req: &mut Request<Incoming>, accept: http::HeaderValue) -> Response<Full<Bytes>> {
    let on_upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        use futures_util::{SinkExt, StreamExt};
        let Ok(upgraded) = on_upgrade.await else { return };
        let io = hyper_util::rt::TokioIo::new(upgraded);
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            io,
            tokio_tungstenite::tungstenite::protocol::Role::Server,
            Some(crate::proto::ws::config()),
        )
        .await;
        while let Some(Ok(m)) = ws.next().await {
            if (m.is_text() || m.is_binary()) && ws.send(m).await.is_err() {
                break;
            }
        }
    });
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = http::StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(http::header::UPGRADE, http::HeaderValue::from_static("websocket"));
    h.insert(http::header::CONNECTION, http::HeaderValue::from_static("Upgrade"));
    h.insert(http::header::SEC_WEBSOCKET_ACCEPT, accept);
    r
}

fn answer(oracle: &Oracle, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
    if pq == "/__gauntlet/oracle" {
        let body = serde_json::to_string(&oracle.report()).unwrap_or_default();
        return Response::new(Full::new(Bytes::from(body)));
    }
    let finding = oracle.observe(pq, req.headers());
    let body = match finding {
        Finding::Clean => &b"{\"oracle\":\"ok\"}"[..],
        Finding::Leak => b"{\"oracle\":\"leak\"}",
        Finding::Spoofed => b"{\"oracle\":\"spoofed_header\"}",
        Finding::Missing => b"{\"oracle\":\"missing_identity\"}",
        Finding::Untagged => b"{\"oracle\":\"untagged\"}",
        Finding::Foreign => b"{\"oracle\":\"foreign\"}",
    };
    let mut resp = Response::new(Full::new(Bytes::from_static(body)));
    resp.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn rules() -> Rules {
        let xfu = HeaderName::from_static("x-forwarded-user");
        Rules {
            run: "r1".into(),
            phases: 2,
            conditions: 2,
            checks: vec![
                Rule {
                    id: "ALLOW".into(),
                    deny_class: false,
                    require: vec![(xfu.clone(), "alice".into())],
                    ..Default::default()
                },
                Rule { id: "DENY".into(), deny_class: true, ..Default::default() },
                Rule {
                    id: "SPOOF".into(),
                    deny_class: false,
                    require: vec![],
                    identity: Some((xfu.clone(), vec!["alice".into()])),
                    absent: vec![HeaderName::from_static("x-forwarded-client-cert")],
                    stripped: vec![
                        (xfu, "admin".into()),
                        (HeaderName::from_static("x-forwarded-groups"), "admins".into()),
                    ],
                },
            ],
        }
    }

    fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, HeaderValue::from_static(v));
        }
        m
    }

    #[test]
    fn decodes_tags_from_header_or_query_and_counts_by_phase() {
        let o = Oracle::new(rules());
        let phase1 = format!("r1.DENY.{}", crate::proto::seq(1, 1, 7));
        assert_eq!(o.observe("/x", &h(&[])), Finding::Untagged);
        let mut hm = h(&[]);
        hm.insert(TAG_HEADER, HeaderValue::from_str(&phase1).unwrap());
        assert_eq!(o.observe("/x", &hm), Finding::Leak);
        assert_eq!(o.observe("/x?a=1&gauntlet_tag=r1.ALLOW.3", &h(&[("x-forwarded-user", "alice")])), Finding::Clean);
        assert_eq!(o.observe("/x?gauntlet_tag=r0.ALLOW.3", &h(&[])), Finding::Foreign);
        for garbage in
            ["r1.NOPE.1", "r1.ALLOW", "r1.ALLOW.x", "r1.ALLOW.1.x", ".ALLOW.1", "r1.ALLOW.999999999999999999"]
        {
            assert_eq!(o.observe(&format!("/?gauntlet_tag={garbage}"), &h(&[])), Finding::Untagged, "{garbage}");
        }
        let r = o.report();
        assert_eq!((r.received, r.untagged, r.foreign), (10, 7, 1));
        assert_eq!(r.cells[1][1], CheckCounts { arrivals: 1, leaks: 1, spoofed: 0, missing: 0 });
        assert_eq!(r.cells[0][0].arrivals, 1);
        assert_eq!(r.headers.len(), 3);
        let leak = ConditionCell {
            phase: 1,
            condition: 1,
            check: 1,
            counts: CheckCounts { arrivals: 1, leaks: 1, spoofed: 0, missing: 0 },
        };
        assert!(r.by_condition.contains(&leak), "{:?}", r.by_condition);
    }

    fn problems(rule: &Rule, pairs: &[(&'static str, &'static str)]) -> (Finding, Vec<(Problem, String)>) {
        let mut seen = Vec::new();
        let f = judge(rule, 0, &h(pairs), |p, n, _| seen.push((p, n.as_str().to_string())));
        (f, seen)
    }

    #[test]
    fn header_rules_find_forged_duplicated_and_missing_identity() {
        let r = rules();
        let xfu = "x-forwarded-user".to_string();
        assert_eq!(problems(&r.checks[0], &[("x-forwarded-user", "alice")]), (Finding::Clean, vec![]));
        assert_eq!(problems(&r.checks[0], &[]), (Finding::Missing, vec![(Problem::Absent, xfu.clone())]));
        assert_eq!(
            problems(&r.checks[0], &[("x-forwarded-user", "admin")]),
            (Finding::Spoofed, vec![(Problem::WrongPrincipal, xfu.clone())])
        );
        assert_eq!(
            problems(&r.checks[0], &[("x-forwarded-user", "alice"), ("x-forwarded-user", "admin")]).1,
            vec![(Problem::Duplicated, xfu.clone())]
        );
        // The client's forged value arriving, alone or in a list, is named as such.
        assert_eq!(
            problems(&r.checks[2], &[("x-forwarded-user", "admin, alice")]),
            (Finding::Spoofed, vec![(Problem::Forged, xfu.clone())])
        );
        assert_eq!(
            problems(
                &r.checks[2],
                &[("x-forwarded-user", "alice"), ("x-forwarded-client-cert", "URI=spiffe://x/admin")]
            ),
            (Finding::Spoofed, vec![(Problem::Present, "x-forwarded-client-cert".to_string())])
        );
        assert_eq!(problems(&r.checks[1], &[("x-forwarded-user", "alice")]).0, Finding::Leak);
    }

    #[test]
    fn each_pool_member_must_arrive_as_itself() {
        let xfu = HeaderName::from_static("x-forwarded-user");
        let rule = Rule {
            id: "POOL".into(),
            identity: Some((xfu.clone(), vec!["alice-1".into(), "alice-2".into()])),
            ..Default::default()
        };
        let one = |m, v: &'static str| judge(&rule, m, &h(&[("x-forwarded-user", v)]), |_, _, _| {});
        assert_eq!(one(1, "alice-2"), Finding::Clean);
        assert_eq!(one(1, "alice-1"), Finding::Spoofed);
        assert_eq!(one(0, "alice-1"), Finding::Clean);
        // A tag names the member: `run.check.seq.member`.
        let o = Oracle::new(Rules { run: "r".into(), phases: 1, conditions: 1, checks: vec![rule.clone()] });
        let mut hm = h(&[("x-forwarded-user", "alice-2")]);
        hm.insert(TAG_HEADER, HeaderValue::from_static("r.POOL.0.1"));
        assert_eq!(o.observe("/", &hm), Finding::Clean);
        hm.insert(TAG_HEADER, HeaderValue::from_static("r.POOL.0.0"));
        assert_eq!(o.observe("/", &hm), Finding::Spoofed);
    }

    #[test]
    fn a_header_the_gateway_sets_itself_is_not_a_spoof() {
        let r = rules();
        // The gateway replaced the forged groups with its own correct value.
        assert_eq!(
            problems(&r.checks[2], &[("x-forwarded-user", "alice"), ("x-forwarded-groups", "eng")]),
            (Finding::Clean, vec![])
        );
        // It appended its value to the forged one: the forged value arrived.
        assert_eq!(
            problems(&r.checks[2], &[("x-forwarded-user", "alice"), ("x-forwarded-groups", "admins, eng")]),
            (Finding::Spoofed, vec![(Problem::Forged, "x-forwarded-groups".to_string())])
        );
    }
}
