//! One captured exchange → what is sent, as whom, counted by which check — or why it is not
//! replayed. A captured request never goes out with its captured credentials: they are
//! stripped, and the mapped identity's own are added.

use std::str::FromStr;

use bytes::Bytes;
use http::header::HeaderName;
use http::{HeaderMap, HeaderValue, Method};

use crate::capture::Exchange;
use crate::proto::{Endpoint, Prepared};
use crate::scenario::{Mapping, Replay, ReplayMatch, Scenario};

/// Why a captured request is not replayed.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Unreplayable {
    /// No `identities:` mapping matches it and there is no `unmapped:` identity.
    NoIdentity,
    /// No policy rule matches, and no answer was recorded to take the verdict from.
    NoVerdictUnanswered,
    /// No policy rule matches, and the recorded answer (5xx, 429, 1xx) states no verdict.
    NoVerdictInAnswer,
    /// Its body was longer than what the capture reader keeps.
    BodyTooLong,
    /// A WebSocket session, on a target that does not speak HTTP/1.1 (sessions run over it).
    WebSocket,
    /// Its method, path or a header cannot be sent as HTTP.
    NotSendable,
    /// It matches a policy rule outside the profile's declared scope (not judged on this gateway).
    OutOfScope,
}

impl Unreplayable {
    /// Every reason, in report order.
    pub const ALL: [Unreplayable; 7] = [
        Unreplayable::NoIdentity,
        Unreplayable::NoVerdictUnanswered,
        Unreplayable::NoVerdictInAnswer,
        Unreplayable::BodyTooLong,
        Unreplayable::WebSocket,
        Unreplayable::NotSendable,
        Unreplayable::OutOfScope,
    ];

    /// In words, with what to do.
    pub fn describe(self) -> &'static str {
        match self {
            Unreplayable::NoIdentity => "no `identities:` mapping matches (add one, or `unmapped: IDENTITY`)",
            Unreplayable::NoVerdictUnanswered => {
                "no policy rule matches and the capture holds no answer to take the verdict from (add a `policy:` rule)"
            }
            Unreplayable::NoVerdictInAnswer => {
                "no policy rule matches and the recorded answer (5xx, 429, 1xx) states no verdict (add a `policy:` rule)"
            }
            Unreplayable::BodyTooLong => "its body was longer than 1 MiB and was not kept whole",
            Unreplayable::WebSocket => {
                "a WebSocket session, and the target's protocol is not h1 (sessions run over HTTP/1.1)"
            }
            Unreplayable::NotSendable => "its method, path or a header cannot be sent",
            Unreplayable::OutOfScope => {
                "it matches a policy rule that needs a feature the profile does not claim (not judged here)"
            }
        }
    }

    /// Position in counters.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// The outcome of looking at one exchange.
#[derive(Debug)]
pub enum Decision {
    /// Not selected by `only:` (counted, not a problem).
    Filtered,
    /// Selected but not replayable.
    Skip(Unreplayable),
    /// Send it.
    Send(Box<Outgoing>),
}

/// A request to replay.
#[derive(Debug)]
pub struct Outgoing {
    /// The check counting it.
    pub check: usize,
    /// Index into `Scenario::identities` it is sent as.
    pub identity: usize,
    /// Method.
    pub method: Method,
    /// Path and query (rewritten).
    pub path: String,
    /// Headers (captured minus credentials and hop-by-hop, rewritten, plus the identity's).
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
    /// Host to send (`None`: the target's).
    pub authority: Option<http::uri::Authority>,
    /// The recorded status.
    pub recorded: Option<u16>,
    /// A WebSocket session to hold after the upgrade: the client's captured messages at their
    /// captured pace.
    pub websocket: Option<crate::scenario::WebSocket>,
    /// Captured claims to re-mint the identity's token with (empty: its own token).
    pub claims: serde_json::Map<String, serde_json::Value>,
}

/// Headers never replayed as captured: hop-by-hop, framing (the body is re-framed), the
/// host (the target's, unless `rewrite.host` says), and credentials.
const DROPPED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
    "host",
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-api-key",
    "x-gauntlet-tag",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-extensions",
    "sec-websocket-accept",
];

/// Claims of a bearer JWT, read without verifying it (only to map it to an identity).
pub(super) fn bearer_claims(x: &Exchange) -> Option<serde_json::Map<String, serde_json::Value>> {
    use base64::Engine as _;
    let auth = x.request.header("authorization")?;
    let auth = std::str::from_utf8(auth).ok()?.trim();
    let (scheme, token) = auth.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let payload = token.trim().split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        serde_json::Value::Object(m) => Some(m),
        _ => None,
    }
}

fn claim_matches(v: &serde_json::Value, re: &regex::Regex) -> bool {
    match v {
        serde_json::Value::String(s) => re.is_match(s),
        serde_json::Value::Array(a) => a.iter().any(|e| claim_matches(e, re)),
        serde_json::Value::Number(n) => re.is_match(&n.to_string()),
        serde_json::Value::Bool(b) => re.is_match(if *b { "true" } else { "false" }),
        _ => false,
    }
}

fn in_range(ip: std::net::IpAddr, (net, prefix): (std::net::IpAddr, u8)) -> bool {
    match (ip, net) {
        (std::net::IpAddr::V4(a), std::net::IpAddr::V4(n)) => {
            let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix)) };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (std::net::IpAddr::V6(a), std::net::IpAddr::V6(n)) => {
            let mask = if prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(prefix)) };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

fn header_matches(x: &Exchange, name: &HeaderName, re: &regex::Regex) -> bool {
    x.request
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name.as_str()))
        .any(|(_, v)| re.is_match(&String::from_utf8_lossy(v)))
}

fn selected(f: &ReplayMatch, x: &Exchange) -> bool {
    let host = x.request.host().unwrap_or_default();
    f.host.as_ref().is_none_or(|re| re.is_match(&host))
        && f.path.as_ref().is_none_or(|re| re.is_match(x.request.path()))
        && (f.methods.is_empty() || f.methods.iter().any(|m| m.as_str() == x.request.method))
        && f.headers.iter().all(|(n, re)| header_matches(x, n, re))
}

pub(super) fn carries_credential(x: &Exchange) -> bool {
    ["authorization", "proxy-authorization", "cookie", "x-api-key"].iter().any(|h| x.request.header(h).is_some())
}

fn maps(m: &Mapping, x: &Exchange, claims: &Option<serde_json::Map<String, serde_json::Value>>) -> bool {
    (!m.anonymous || !carries_credential(x))
        && m.source.is_none_or(|r| in_range(x.client.ip(), r))
        && m.cert_subject.as_ref().is_none_or(|re| x.client_cert.as_deref().is_some_and(|s| re.is_match(s)))
        && m.headers.iter().all(|(n, re)| header_matches(x, n, re))
        && m.claims.iter().all(|(k, re)| claims.as_ref().and_then(|c| c.get(k)).is_some_and(|v| claim_matches(v, re)))
}

/// Decides what becomes of exchange `x` in replay `r` of scenario `s`.
pub fn decide(s: &Scenario, r: &Replay, x: &Exchange) -> Decision {
    if !selected(&r.only, x) {
        return Decision::Filtered;
    }
    if x.websocket && s.target.protocol != crate::scenario::ProtocolKind::H1 {
        return Decision::Skip(Unreplayable::WebSocket);
    }
    if x.request.body_truncated {
        return Decision::Skip(Unreplayable::BodyTooLong);
    }
    let claims = bearer_claims(x);
    let mapping = r.identities.iter().find(|m| maps(m, x, &claims));
    let Some(identity) = mapping.map(|m| m.identity).or(r.unmapped) else {
        return Decision::Skip(Unreplayable::NoIdentity);
    };
    // Captured claims the mapping keeps, for the identity's re-minted token.
    let kept: serde_json::Map<String, serde_json::Value> = match (mapping, &claims) {
        (Some(m), Some(c)) => m.keep_claims.iter().filter_map(|k| c.get(k).map(|v| (k.clone(), v.clone()))).collect(),
        _ => serde_json::Map::new(),
    };
    let Some(sender) = r.senders.iter().position(|&i| i == identity) else {
        return Decision::Skip(Unreplayable::NoIdentity);
    };
    let recorded = x.response.as_ref().map(|a| a.status);
    let path = x.request.path();
    let rule = r.policy.iter().position(|ru| {
        ru.path.as_ref().is_none_or(|re| re.is_match(path))
            && (ru.methods.is_empty() || ru.methods.iter().any(|m| m.as_str() == x.request.method))
            && (ru.identities.is_empty() || ru.identities.contains(&identity))
    });
    let class = match (rule, recorded) {
        (Some(i), _) if r.policy[i].out_of_scope.is_some() => return Decision::Skip(Unreplayable::OutOfScope),
        (Some(i), _) => i,
        (None, None) => return Decision::Skip(Unreplayable::NoVerdictUnanswered),
        (None, Some(st)) => {
            let refused = st == 401 || st == 403 || s.profile.deny_status.contains(&st);
            if refused {
                r.policy.len() + Replay::RECORDED_DENY
            } else if (200..400).contains(&st) || (st == 101 && x.websocket) {
                r.policy.len() + Replay::RECORDED_ALLOW
            } else if (400..500).contains(&st) && st != 429 {
                r.policy.len() + Replay::RECORDED_OTHER
            } else {
                return Decision::Skip(Unreplayable::NoVerdictInAnswer);
            }
        }
    };
    let Some(check) = r.checks.get(class).and_then(|row| row.get(sender)).copied().flatten() else {
        return Decision::Skip(Unreplayable::NoIdentity);
    };
    let Ok(method) = Method::from_str(&x.request.method) else { return Decision::Skip(Unreplayable::NotSendable) };
    let mut path = path.to_string();
    for (re, to) in &r.rewrite.path {
        path = re.replace_all(&path, to.as_str()).into_owned();
    }
    // Headers the mapping read the identity from are the captured identity: not sent.
    let mapped_on = |name: &HeaderName| r.identities.iter().any(|m| m.headers.iter().any(|(n, _)| n == name));
    let identity_header = s.profile.identity_header.as_ref();
    let mut headers = HeaderMap::new();
    for (n, v) in &x.request.headers {
        let lower = n.to_ascii_lowercase();
        if DROPPED.contains(&lower.as_str()) {
            continue;
        }
        let (Ok(name), Ok(value)) = (HeaderName::from_str(&lower), HeaderValue::from_bytes(v)) else {
            return Decision::Skip(Unreplayable::NotSendable);
        };
        if mapped_on(&name) || identity_header == Some(&name) || r.rewrite.remove_headers.contains(&name) {
            continue;
        }
        headers.append(name, value);
    }
    for (n, v) in &r.rewrite.set_headers {
        headers.insert(n.clone(), v.clone());
    }
    let authority = match &r.rewrite.host {
        None => None,
        Some(Some(a)) => Some(a.clone()),
        Some(None) => match x.request.host().map(|h| http::uri::Authority::from_str(&h)) {
            Some(Ok(a)) => Some(a),
            Some(Err(_)) => return Decision::Skip(Unreplayable::NotSendable),
            None => None,
        },
    };
    let body = Bytes::from(x.request.body.clone());
    let websocket = x.websocket.then(|| session(r, x));
    Decision::Send(Box::new(Outgoing {
        check,
        identity,
        method,
        path,
        headers,
        body,
        authority,
        recorded,
        websocket,
        claims: kept,
    }))
}

/// The session to hold for a captured WebSocket exchange: the client's text messages (a
/// neutral one when it sent none), their mean spacing, the session's length — both at the
/// replay's speed, the length capped at a minute.
fn session(r: &Replay, x: &Exchange) -> crate::scenario::WebSocket {
    let s = x.session.clone().unwrap_or_default();
    let span = std::time::Duration::from_nanos(s.last_ns.saturating_sub(s.opened_ns));
    let frames = s.frames.max(1);
    let interval = (span / u32::try_from(frames).unwrap_or(u32::MAX)).max(std::time::Duration::from_millis(10));
    let scale = |d: std::time::Duration| std::time::Duration::from_secs_f64(d.as_secs_f64() / r.speed);
    let messages = if s.messages.is_empty() { vec!["gauntlet-replay".to_string()] } else { s.messages };
    crate::scenario::WebSocket {
        messages,
        interval: scale(interval),
        hold: scale(span.max(std::time::Duration::from_millis(100))).min(std::time::Duration::from_secs(60)),
        must_close: false,
    }
}

/// The request of an [`Outgoing`], as identity slot `slot` with `credentials` (the
/// identity's static headers and minted token) added.
pub fn prepare(
    d: Outgoing,
    slot: usize,
    credentials: &[(HeaderName, HeaderValue)],
    endpoint: &Endpoint,
    ws: &std::sync::Arc<crate::proto::ws::Stats>,
) -> Option<(usize, Prepared, Option<u16>)> {
    let Outgoing { check, method, path, mut headers, body, authority, recorded, websocket, .. } = d;
    for (k, v) in credentials {
        headers.append(k.clone(), v.clone());
    }
    let endpoint = match authority {
        Some(a) => Endpoint { authority: a, ..endpoint.clone() },
        None => endpoint.clone(),
    };
    let p = Prepared::new(slot, method, &path, headers, body, &endpoint).ok()?;
    let p = match websocket {
        Some(spec) => p.with_websocket(spec, ws.clone()),
        None => p,
    };
    Some((check, p, recorded))
}
