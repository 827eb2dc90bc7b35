//! Zero-trust verdicts: what a check expects, the violation taxonomy, and the classification
//! of one outcome against one expectation.
//!
//! Pure logic: no IO, no clock. The oracle's findings (`spoofed_header`, `missing_identity`,
//! upstream arrivals of deny-class requests) enter through the same [`Violation`] kinds.

use std::time::Duration;

use serde::Serialize;

/// What a conforming gateway does with a check's request.
#[derive(Debug, Clone, PartialEq)]
pub enum Expect {
    /// Reaches the upstream; the client gets the upstream's answer.
    Allow,
    /// The gateway answers itself with one of these statuses; nothing reaches the upstream.
    Deny {
        /// Acceptable deny statuses.
        statuses: Vec<u16>,
    },
    /// The TLS handshake (or the first request on it) is refused.
    TlsReject,
    /// Allowed up to a rate, then 429.
    Limit {
        /// Requests allowed per window.
        requests: u32,
        /// The window.
        per: Duration,
    },
}

impl Expect {
    /// Short name used in reports.
    pub fn kind(&self) -> &'static str {
        match self {
            Expect::Allow => "allow",
            Expect::Deny { .. } => "deny",
            Expect::TlsReject => "tls_reject",
            Expect::Limit { .. } => "limit",
        }
    }

    /// Deny-class checks must never reach the upstream.
    pub fn is_deny_class(&self) -> bool {
        matches!(self, Expect::Deny { .. } | Expect::TlsReject)
    }
}

/// Severity, from the catalog rubric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
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
}

/// A policy violation kind (DESIGN §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Violation {
    /// A deny-class request was answered 2xx or seen by the upstream.
    Leak,
    /// A handshake that must be refused was accepted and served.
    TlsAccept,
    /// A client-forged identity header reached the upstream.
    SpoofedHeader,
    /// An allow-class request was refused.
    FalseDeny,
    /// Denied, but not with an expected status.
    WrongStatus,
    /// Allowed, but the upstream did not get the verified identity.
    MissingIdentity,
    /// A `limit` check exceeded its rate and was never answered 429.
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
            Violation::Leak | Violation::SpoofedHeader => Severity::Critical,
            Violation::TlsAccept | Violation::FalseDeny | Violation::MissingIdentity | Violation::LimitBypass => {
                Severity::High
            }
            Violation::WrongStatus => Severity::Medium,
        }
    }

    /// Parses a snake_case name.
    pub fn parse(s: &str) -> Option<Self> {
        Violation::ALL.into_iter().find(|v| v.name() == s)
    }
}

/// A transport-level failure kind: counted apart from violations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// TCP connect failed (refused, unreachable).
    Connect,
    /// TLS failed on a check that did not expect a refusal.
    Tls,
    /// The connection was reset or closed mid-exchange.
    Reset,
    /// The request timed out.
    Timeout,
    /// Malformed HTTP.
    Protocol,
    /// An allow-class request answered with a status that is neither success nor denial.
    Status,
}

impl ErrorKind {
    /// Every kind, in report order.
    pub const ALL: [ErrorKind; 6] = [
        ErrorKind::Connect,
        ErrorKind::Tls,
        ErrorKind::Reset,
        ErrorKind::Timeout,
        ErrorKind::Protocol,
        ErrorKind::Status,
    ];

    /// snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Tls => "tls",
            ErrorKind::Reset => "reset",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Status => "status",
        }
    }

    /// Position in [`ErrorKind::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// What one request became, as seen by the client.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// An HTTP answer.
    Answered {
        /// Status code.
        status: u16,
    },
    /// The TLS handshake was refused (alert, or the connection closed during it).
    TlsRejected,
    /// The connection closed or reset before an answer. `fresh` is true when this was the
    /// first exchange on a newly opened TLS connection (where a server that verifies client
    /// certificates after the handshake reports its refusal).
    Broken {
        /// What broke.
        kind: ErrorKind,
        /// First exchange on a new connection.
        fresh: bool,
    },
    /// No answer within the timeout.
    TimedOut,
    /// A WebSocket session the gateway had to end (its credentials expired during it) was
    /// still open when gauntlet closed it: access outlived authorization.
    KeptOpen,
}

/// The verdict on one outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Conforming: allowed and answered.
    Pass,
    /// Conforming: denied the way the check expects (includes TLS refusals).
    Denied,
    /// Conforming: a `limit` check answered 429.
    Limited,
    /// Conforming: refused with a declared outage status while a dependency was down.
    OutageDenied,
    /// A policy violation.
    Violation(Violation),
    /// No verdict possible: a transport error.
    Error(ErrorKind),
}

/// Classifies one client-side outcome against a check's expectation.
pub fn classify(expect: &Expect, outcome: &Outcome) -> Verdict {
    use Verdict::*;
    // 101 is a WebSocket upgrade granted: access, like a 2xx.
    let success = |s: u16| (200..300).contains(&s) || s == 101;
    match (expect, outcome) {
        (_, Outcome::TimedOut) => Error(ErrorKind::Timeout),
        (_, Outcome::KeptOpen) => Violation(self::Violation::Leak),
        (Expect::TlsReject, Outcome::TlsRejected) => Denied,
        (Expect::TlsReject, Outcome::Broken { fresh: true, .. }) => Denied,
        (Expect::TlsReject, Outcome::Answered { status }) if success(*status) => Violation(self::Violation::Leak),
        (Expect::TlsReject, Outcome::Answered { .. }) => Violation(self::Violation::TlsAccept),
        (Expect::Deny { .. }, Outcome::TlsRejected) => Denied,
        (Expect::Deny { .. }, Outcome::Answered { status }) if success(*status) => Violation(self::Violation::Leak),
        (Expect::Deny { statuses }, Outcome::Answered { status }) => {
            if statuses.contains(status) {
                Denied
            } else {
                Violation(self::Violation::WrongStatus)
            }
        }
        (Expect::Allow | Expect::Limit { .. }, Outcome::TlsRejected) => Violation(self::Violation::FalseDeny),
        (Expect::Limit { .. }, Outcome::Answered { status: 429 }) => Limited,
        (Expect::Allow | Expect::Limit { .. }, Outcome::Answered { status }) => match status {
            s if success(*s) => Pass,
            401 | 403 | 429 => Violation(self::Violation::FalseDeny),
            _ => Error(ErrorKind::Status),
        },
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
            Verdict::Violation(Violation::FalseDeny | Violation::WrongStatus) | Verdict::Error(ErrorKind::Status),
        ) if statuses.contains(status) => Verdict::OutageDenied,
        _ => v,
    }
}

/// Decides `limit_bypass` for one `limit` check in one phase: more requests were sent than
/// the declared limit allows over the phase (one full window of burst included, 10 % slack)
/// and not one was answered 429.
pub fn limit_bypassed(requests: u32, per: Duration, sent: u64, elapsed: Duration, limited: u64) -> bool {
    if limited > 0 || per.is_zero() {
        return false;
    }
    let allowed = f64::from(requests) * (elapsed.as_secs_f64() / per.as_secs_f64() + 1.0);
    sent as f64 > allowed * 1.1 + 1.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deny() -> Expect {
        Expect::Deny { statuses: vec![401, 403] }
    }

    #[test]
    fn deny_class_success_is_a_leak() {
        assert_eq!(classify(&deny(), &Outcome::Answered { status: 200 }), Verdict::Violation(Violation::Leak));
        assert_eq!(
            classify(&Expect::TlsReject, &Outcome::Answered { status: 204 }),
            Verdict::Violation(Violation::Leak)
        );
    }

    #[test]
    fn deny_statuses_are_checked() {
        assert_eq!(classify(&deny(), &Outcome::Answered { status: 403 }), Verdict::Denied);
        assert_eq!(classify(&deny(), &Outcome::Answered { status: 502 }), Verdict::Violation(Violation::WrongStatus));
        assert_eq!(classify(&deny(), &Outcome::TlsRejected), Verdict::Denied);
    }

    #[test]
    fn tls_reject_accepts_refusal_on_first_exchange_only() {
        let fresh = Outcome::Broken { kind: ErrorKind::Reset, fresh: true };
        let reused = Outcome::Broken { kind: ErrorKind::Reset, fresh: false };
        assert_eq!(classify(&Expect::TlsReject, &fresh), Verdict::Denied);
        assert_eq!(classify(&Expect::TlsReject, &reused), Verdict::Error(ErrorKind::Reset));
        assert_eq!(
            classify(&Expect::TlsReject, &Outcome::Answered { status: 403 }),
            Verdict::Violation(Violation::TlsAccept)
        );
    }

    #[test]
    fn allow_refusals_are_false_denies_and_5xx_are_errors() {
        assert_eq!(
            classify(&Expect::Allow, &Outcome::Answered { status: 403 }),
            Verdict::Violation(Violation::FalseDeny)
        );
        assert_eq!(classify(&Expect::Allow, &Outcome::TlsRejected), Verdict::Violation(Violation::FalseDeny));
        assert_eq!(classify(&Expect::Allow, &Outcome::Answered { status: 503 }), Verdict::Error(ErrorKind::Status));
        assert_eq!(classify(&Expect::Allow, &Outcome::TimedOut), Verdict::Error(ErrorKind::Timeout));
    }

    #[test]
    fn outage_statuses_excuse_refusals_never_successes() {
        let outage = Some(&[503u16, 403][..]);
        let a = |st| Outcome::Answered { status: st };
        assert_eq!(classify_under(&Expect::Allow, &a(503), outage), Verdict::OutageDenied);
        assert_eq!(classify_under(&Expect::Allow, &a(403), outage), Verdict::OutageDenied);
        assert_eq!(classify_under(&Expect::Allow, &a(401), outage), Verdict::Violation(Violation::FalseDeny));
        assert_eq!(classify_under(&deny(), &a(503), outage), Verdict::OutageDenied);
        assert_eq!(classify_under(&deny(), &a(200), outage), Verdict::Violation(Violation::Leak));
        assert_eq!(classify_under(&deny(), &a(403), outage), Verdict::Denied);
        assert_eq!(classify_under(&Expect::Allow, &a(503), None), Verdict::Error(ErrorKind::Status));
    }

    #[test]
    fn limit_checks_accept_429_and_detect_bypass() {
        let lim = Expect::Limit { requests: 10, per: Duration::from_secs(1) };
        assert_eq!(classify(&lim, &Outcome::Answered { status: 429 }), Verdict::Limited);
        assert!(limit_bypassed(10, Duration::from_secs(1), 100, Duration::from_secs(5), 0));
        assert!(!limit_bypassed(10, Duration::from_secs(1), 100, Duration::from_secs(5), 3));
        assert!(!limit_bypassed(10, Duration::from_secs(1), 60, Duration::from_secs(5), 0));
        // A burst far above the limit in a short phase is a bypass too.
        assert!(limit_bypassed(5, Duration::from_secs(1), 40, Duration::from_millis(500), 0));
        assert!(!limit_bypassed(5, Duration::from_secs(1), 6, Duration::from_millis(500), 0));
    }
}
