//! `gauntlet probe`: one request of one check, shown whole — what a lab runs first when a check
//! fails on its gateway. The request is the one a run sends (same identity, credentials, path,
//! headers and tag), the oracle (when the scenario has one) keeps what arrived, and the verdict
//! is classified exactly as in a run.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use crate::conformance::{Expect, Outcome, Verdict, Violation, classify};
use crate::oracle::{self, Arrival, Finding, Oracle, Rules};
use crate::plan;
use crate::proto::probe::{self as wire, Exchange, Speak};
use crate::proto::{self, Connector, Tag};
use crate::scenario::{ProtocolKind, Scenario};

/// How long the oracle is given to see the request after the answer.
const SETTLE: Duration = Duration::from_millis(300);

/// Why a probe could not be made.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The scenario has no such check (bad usage).
    #[error("{0}")]
    UnknownCheck(String),
    /// Something the probe needs could not be set up.
    #[error("{0}")]
    Setup(String),
}

/// What one probe found.
#[derive(Debug)]
pub struct Report {
    /// Check id.
    pub check: String,
    /// Its title.
    pub title: String,
    /// Identity name.
    pub identity: String,
    /// The expectation, in words.
    pub expect: String,
    /// Target URL.
    pub target: String,
    /// What was sent and answered.
    pub exchange: Exchange,
    /// The oracle's address and what reached it, when the scenario has an oracle.
    pub upstream: Option<(std::net::SocketAddr, Vec<Arrival>)>,
    /// The client-side verdict.
    pub verdict: Verdict,
    /// The whole verdict in words (client side and upstream).
    pub judgement: String,
    /// Whether the gateway behaved as the check expects.
    pub conforming: bool,
}

fn describe_expect(e: &Expect) -> String {
    match e {
        Expect::Allow { success, .. } => format!("allow ({})", success.describe()),
        Expect::Deny { statuses } => {
            format!("deny ({})", statuses.iter().map(u16::to_string).collect::<Vec<_>>().join(", "))
        }
        Expect::TlsReject => "tls_reject (the handshake is refused)".into(),
        Expect::Limit(l) => format!("limit ({} per {:?}, then 429)", l.requests, l.per),
    }
}

fn answer_of(o: &Outcome) -> String {
    match o {
        Outcome::Answered { status } => status.to_string(),
        Outcome::TlsRejected => "a TLS refusal".into(),
        Outcome::TimedOut => "no answer in time".into(),
        Outcome::KeptOpen => "a session kept open".into(),
        Outcome::Broken { kind, cause, at } => {
            let why = cause.as_deref().unwrap_or("connection broke");
            match at {
                crate::conformance::Broke::Fresh => {
                    format!("the new TLS connection was closed before any answer ({}: {why})", kind.name())
                }
                _ => format!("no answer ({}: {why})", kind.name()),
            }
        }
    }
}

/// Sends one request of `check_id` and judges it. `protocol` replaces the target's;
/// `oracle_listener` replaces binding the scenario's `oracle.listen`.
pub async fn probe(
    s: &Scenario,
    check_id: &str,
    protocol: Option<ProtocolKind>,
    oracle_listener: Option<tokio::net::TcpListener>,
) -> Result<Report, Error> {
    let Some(ci) = s.checks.iter().position(|c| c.id == check_id) else {
        let ids: Vec<&str> = s.checks.iter().map(|c| c.id.as_str()).collect();
        let hint = crate::scenario::units::suggest(check_id, ids.iter().copied())
            .map(|x| format!(" (did you mean `{x}`?)"))
            .unwrap_or_else(|| format!(" (checks: {})", ids.join(", ")));
        return Err(Error::UnknownCheck(format!("no check `{check_id}` in {}{hint}", s.name)));
    };
    let check = &s.checks[ci];
    let kind = protocol.unwrap_or(s.target.protocol);
    let ws = Arc::new(proto::ws::Stats::default());
    let requests = super::run::credentials(s).and_then(|c| super::run::prepare(s, &c, &ws)).map_err(Error::Setup)?;
    let req = &requests[ci][0];
    let run_id = format!("{:08x}", rand::random::<u32>());
    let seq = proto::seq(0, 0, 0);
    let tag_text = format!("{run_id}.{}.{seq}", check.id);
    let tag = Tag { text: &tag_text, seq };
    let listener = match (oracle_listener, s.oracle) {
        (Some(l), _) => Some(l),
        (None, Some(spec)) => Some(
            tokio::net::TcpListener::bind(spec.listen)
                .await
                .map_err(|e| Error::Setup(format!("cannot listen for the oracle on {}: {e}", spec.listen)))?,
        ),
        (None, None) => None,
    };
    let conditions = plan::build(s).conditions.len();
    let oracle = match listener {
        Some(l) => Some(
            oracle::spawn(l, Arc::new(Oracle::capturing(Rules::from_scenario(s, &run_id, conditions))), None)
                .map_err(|e| Error::Setup(format!("cannot start the oracle: {e}")))?,
        ),
        None => None,
    };
    let exchange = match kind {
        ProtocolKind::H3 => {
            let h3 = proto::h3::Http3::new(&s.target, &s.identities)
                .await
                .map_err(|e| Error::Setup(format!("cannot prepare HTTP/3 to {}: {e}", s.target.url)))?;
            wire::exchange_h3(&h3, req, tag, s.target.timeout).await
        }
        _ => {
            let (alpn, speak) = match kind {
                ProtocolKind::H1 => (proto::h1::ALPN, Speak::H1),
                ProtocolKind::H2 => (proto::h2::ALPN, Speak::H2),
                _ => (proto::auto::ALPN, Speak::Auto),
            };
            let connector = Connector::new(&s.target, &s.identities, alpn)
                .await
                .map_err(|e| Error::Setup(format!("cannot prepare connections to {}: {e}", s.target.url)))?;
            wire::exchange(&connector, speak, req, tag, s.target.timeout).await
        }
    };
    let upstream = match oracle {
        Some(o) => {
            tokio::time::sleep(SETTLE).await;
            let addr = o.addr;
            let seen = o.stop().await.captured(ci);
            Some((addr, seen))
        }
        None => None,
    };
    let verdict = classify(&check.expect, &exchange.outcome);
    let (judgement, conforming) = judge(check, &exchange.outcome, verdict, upstream.as_ref().map(|u| &u.1[..]));
    Ok(Report {
        check: check.id.clone(),
        title: check.title.clone(),
        identity: s.identities[check.identity].name.clone(),
        expect: describe_expect(&check.expect),
        target: s.target.url.clone(),
        exchange,
        upstream,
        verdict,
        judgement,
        conforming,
    })
}

/// The verdict in words, the client's and the upstream's view together.
fn judge(
    check: &crate::scenario::Check,
    outcome: &Outcome,
    verdict: Verdict,
    upstream: Option<&[Arrival]>,
) -> (String, bool) {
    let answer = answer_of(outcome);
    let arrived = upstream.map(<[Arrival]>::len);
    if check.expect.is_deny_class() && arrived.is_some_and(|n| n > 0) {
        let kind = if check.expect == Expect::TlsReject { Violation::TlsAccept } else { Violation::Leak };
        return (format!("FAIL: {} — the request reached the upstream (the client saw {answer})", kind.name()), false);
    }
    let (mut text, mut ok) = match verdict {
        Verdict::Pass => (format!("PASS: allowed, answered {answer}"), true),
        Verdict::Denied => (format!("PASS: denied as expected ({answer})"), true),
        Verdict::Limited => ("PASS: limited (429)".to_string(), true),
        Verdict::OutageDenied => (format!("PASS: an expected outage denial ({answer})"), true),
        Verdict::Unexpected => {
            (format!("FAIL: answered {answer}, which `expect: {}` does not allow", check.expect.kind()), false)
        }
        Verdict::Violation(v) => (format!("FAIL: {} — the client saw {answer}", v.name()), false),
        Verdict::Error(k) => (format!("NO VERDICT: {} — {answer}", k.name()), false),
    };
    if ok && check.expect.is_allow() {
        match upstream {
            Some([]) => {
                text = format!(
                    "INCONCLUSIVE: answered {answer}, but nothing arrived at the oracle — is it the gateway's upstream, and is x-gauntlet-tag forwarded?"
                );
                ok = false;
            }
            Some(seen) => {
                if let Some(bad) = seen.iter().find(|a| matches!(a.finding, Finding::Spoofed | Finding::Missing)) {
                    let kind = if bad.finding == Finding::Spoofed { "spoofed_header" } else { "missing_identity" };
                    text = format!("FAIL: {kind} — {}", bad.problems.join("; "));
                    ok = false;
                }
            }
            None => {}
        }
    }
    (text, ok)
}

impl Report {
    /// The report as printed.
    pub fn text(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "probe {} — {}", self.check, self.title);
        let _ = writeln!(
            o,
            "  identity {} · expect {} · {} over {} · {:.1} ms",
            self.identity,
            self.expect,
            self.target,
            self.exchange.protocol,
            self.exchange.elapsed.as_secs_f64() * 1000.0
        );
        o.push_str("sent:\n");
        for l in &self.exchange.request {
            let _ = writeln!(o, "  > {l}");
        }
        o.push_str("answer:\n");
        match &self.exchange.outcome {
            Outcome::Answered { status } => {
                let _ = writeln!(o, "  < {status}");
                for (n, v) in &self.exchange.headers {
                    let _ = writeln!(o, "  < {n}: {v}");
                }
                if !self.exchange.body.is_empty() {
                    let body = String::from_utf8_lossy(&self.exchange.body);
                    let body: String =
                        body.chars().map(|c| if c.is_control() && c != '\n' { '.' } else { c }).collect();
                    for l in body.lines().take(12) {
                        let _ = writeln!(o, "  < | {l}");
                    }
                }
            }
            other => {
                let _ = writeln!(o, "  {}", answer_of(other));
            }
        }
        match &self.upstream {
            None => o.push_str(
                "upstream: no oracle in this scenario (add `oracle: {listen: ADDR}` and point the gateway there)\n",
            ),
            Some((addr, seen)) if seen.is_empty() => {
                let _ = writeln!(o, "upstream (oracle on {addr}): nothing arrived");
            }
            Some((addr, seen)) => {
                let _ = writeln!(o, "upstream (oracle on {addr}): arrived with");
                for a in seen.iter().take(2) {
                    for (n, v) in &a.headers {
                        let _ = writeln!(o, "  | {n}: {v}");
                    }
                    for p in &a.problems {
                        let _ = writeln!(o, "  ! {p}");
                    }
                }
            }
        }
        let _ = writeln!(o, "verdict: {}", self.judgement);
        o
    }
}
