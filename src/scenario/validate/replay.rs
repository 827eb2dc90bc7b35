//! `phases[].replay:` — a capture replayed as a phase: its file (opened here, so a file that
//! is not a capture is a validation error with its byte offset), pacing, filters, rewrites,
//! identity mappings and policy rules; and the checks that count its requests, one per
//! (policy rule or recorded verdict) × identity sent as, generated here so the judge, the
//! oracle and the reports treat replayed requests like any other.

use std::sync::Arc;

use http::uri::Authority;

use super::*;
use crate::scenario::raw::{RawMatch, RawReplay};

/// Resolves every replay phase of `m` into `phases` (same order) and appends its checks.
pub(super) fn resolve_replays(
    cx: &mut Ctx<'_>,
    m: &Merged,
    profile: &Profile,
    identities: &[Identity],
    checks: &mut Vec<Check>,
    phases: &mut [Phase],
) {
    if phases.len() != m.phases.len() {
        return; // earlier problems: indices would not line up
    }
    for (i, (p, o)) in m.phases.iter().enumerate() {
        let Some(r) = &p.replay else { continue };
        let o = Origin { file: o.file, path: join(&o.path, "replay") };
        if let Some(replay) = resolve(cx, &o, r, &phases[i].name, profile, identities, checks) {
            phases[i].replay = Some(Arc::new(replay));
        }
    }
}

fn regex(cx: &mut Ctx<'_>, o: &Origin, at: &str, s: &str) -> Option<regex::Regex> {
    match regex::Regex::new(s) {
        Ok(r) => Some(r),
        Err(e) => {
            let msg = e.to_string();
            let last = msg.lines().last().unwrap_or("not a valid regular expression").trim().to_string();
            cx.at(o, at, format!("`{s}` is not a valid regular expression ({last})"));
            None
        }
    }
}

fn methods(cx: &mut Ctx<'_>, o: &Origin, at: &str, v: Option<&Vec<String>>) -> Vec<Method> {
    let mut out = Vec::new();
    for (j, m) in v.into_iter().flatten().enumerate() {
        match Method::from_str(&m.to_ascii_uppercase()) {
            Ok(m) => out.push(m),
            Err(_) => cx.at(o, &format!("{at}[{j}]"), format!("`{m}` is not an HTTP method")),
        }
    }
    out
}

fn header_regexes(
    cx: &mut Ctx<'_>,
    o: &Origin,
    at: &str,
    h: &std::collections::BTreeMap<String, String>,
) -> Vec<(HeaderName, regex::Regex)> {
    let mut out = Vec::new();
    for (k, v) in h {
        let at = format!("{at}.{k}");
        match HeaderName::from_str(k) {
            Ok(name) => {
                if let Some(r) = regex(cx, o, &at, v) {
                    out.push((name, r));
                }
            }
            Err(_) => cx.at_key(o, &at, format!("`{k}` is not a header name")),
        }
    }
    out
}

fn filter(cx: &mut Ctx<'_>, o: &Origin, at: &str, f: &RawMatch) -> ReplayMatch {
    ReplayMatch {
        host: f.host.as_deref().and_then(|s| regex(cx, o, &format!("{at}.host"), s)),
        path: f.path.as_deref().and_then(|s| regex(cx, o, &format!("{at}.path"), s)),
        methods: methods(cx, o, &format!("{at}.method"), f.method.as_ref()),
        headers: header_regexes(cx, o, &format!("{at}.header"), &f.header),
    }
}

/// `10.0.0.0/8`, `192.0.2.7`, `fd00::/8`.
fn cidr(s: &str) -> Option<(std::net::IpAddr, u8)> {
    let (a, p) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let addr: std::net::IpAddr = a.trim().parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match p {
        Some(p) => p.trim().parse::<u8>().ok().filter(|p| *p <= max)?,
        None => max,
    };
    Some((addr, prefix))
}

fn identity_index(cx: &mut Ctx<'_>, o: &Origin, at: &str, name: &str, identities: &[Identity]) -> Option<usize> {
    let found = identities.iter().position(|i| i.name == name);
    if found.is_none() {
        let hint = units::suggest(name, identities.iter().map(|i| i.name.as_str()))
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        cx.at(o, at, format!("no identity `{name}`{hint}: map captured requests to an identity of `identities:`"));
    }
    found
}

/// A check id made of `parts`, with anything a check id may not hold replaced by `-`.
fn check_id(parts: &[&str]) -> String {
    parts
        .iter()
        .map(|p| p.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).collect())
        .collect::<Vec<String>>()
        .join("-")
}

/// The expectation of a request the recording let through: a 2xx or 3xx recorded must come
/// back 2xx or 3xx (a gateway answering 404 where production served the page did not let it
/// through); a recorded 4xx that is not a refusal (404, 409, …) may come back as any of those
/// or a 2xx/3xx. A refusal is a false deny either way.
fn recorded_allow(profile: &Profile, client_errors: bool) -> Expect {
    let refusals = refusals(profile);
    // 101: a captured WebSocket upgrade, replayed as one.
    let mut items: Vec<String> = vec!["2xx".into(), "3xx".into(), "101".into()];
    if client_errors {
        items.extend((400..500u16).filter(|s| !refusals.contains(s)).map(|s| s.to_string()));
    }
    let success = Statuses::parse(items.iter().map(String::as_str)).unwrap_or_else(Statuses::success);
    Expect::Allow { success, refusals }
}

#[allow(clippy::too_many_lines)]
fn resolve(
    cx: &mut Ctx<'_>,
    o: &Origin,
    r: &RawReplay,
    phase: &str,
    profile: &Profile,
    identities: &[Identity],
    checks: &mut Vec<Check>,
) -> Option<Replay> {
    let before = cx.problems.len();
    let capture = match &r.capture {
        None => {
            cx.at(o, "", "missing `capture:` (a pcap or pcapng file, relative to this scenario)");
            None
        }
        Some(c) => {
            let path = cx.file(o, c);
            match crate::capture::Reader::open(&path) {
                Ok(_) => Some(path),
                Err(e) => {
                    cx.at(o, "capture", e.to_string());
                    None
                }
            }
        }
    };
    let decrypt = match (&r.keylog, r.decrypt) {
        (None, None | Some(false)) => None,
        (Some(k), _) => {
            let p = cx.file(o, k);
            if !p.is_file() {
                cx.at(o, "keylog", format!("`{}` is not a file (a TLS key log, as SSLKEYLOGFILE writes)", p.display()));
            }
            Some(Some(p))
        }
        (None, Some(true)) => Some(None),
    };
    if decrypt.is_some() && !crate::capture::tls::available() {
        cx.at(o, if r.keylog.is_some() { "keylog" } else { "decrypt" }, crate::capture::tls::MISSING);
    }
    let speed = match &r.speed {
        None => 1.0,
        Some(v) => {
            let parsed = match v {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.trim().trim_end_matches(['x', 'X']).trim().parse::<f64>().ok(),
                _ => None,
            };
            match parsed.filter(|s| s.is_finite() && *s > 0.0 && *s <= 1000.0) {
                Some(s) => s,
                None => {
                    cx.at(o, "speed", "a speed is a number above 0 (at most 1000), e.g. `2x` or `0.5`");
                    1.0
                }
            }
        }
    };
    let max_gap = r.max_gap.as_deref().and_then(|g| match units::duration(g) {
        Ok(d) => Some(d),
        Err(e) => {
            cx.at(o, "max_gap", e);
            None
        }
    });
    let rate_cap = r.rate_cap.as_deref().and_then(|g| match units::rate(g) {
        Ok(d) => Some(d),
        Err(e) => {
            cx.at(o, "rate_cap", e);
            None
        }
    });
    let loops = match r.loops {
        None => 1,
        Some(n @ 1..=10_000) => n,
        Some(_) => {
            cx.at(o, "loop", "play the capture 1 to 10000 times");
            1
        }
    };
    let mut window = (Duration::ZERO, None);
    if let Some(w) = &r.window {
        let get = |cx: &mut Ctx<'_>, k: &str, v: &Option<String>| {
            v.as_deref().and_then(|s| match units::duration(s) {
                Ok(d) => Some(d),
                Err(e) => {
                    cx.at(o, &format!("window.{k}"), e);
                    None
                }
            })
        };
        window.0 = get(cx, "from", &w.from).unwrap_or_default();
        window.1 = get(cx, "to", &w.to);
        if window.1.is_some_and(|t| t <= window.0) {
            cx.at(o, "window.to", "must be after `window.from`");
        }
    }
    let only = r.only.as_ref().map(|f| filter(cx, o, "only", f)).unwrap_or_default();
    let mut rewrite = Rewrite::default();
    if let Some(w) = &r.rewrite {
        rewrite.host = match w.host.as_deref() {
            None => None,
            Some("keep") => Some(None),
            Some(h) => match Authority::from_str(h) {
                Ok(a) => Some(Some(a)),
                Err(_) => {
                    cx.at(o, "rewrite.host", format!("`{h}` is not a host[:port] (or `keep` for the captured one)"));
                    None
                }
            },
        };
        for (j, s) in w.path.iter().enumerate() {
            let at = format!("rewrite.path[{j}]");
            match (&s.from, &s.to) {
                (Some(f), Some(t)) => {
                    if let Some(re) = regex(cx, o, &format!("{at}.from"), f) {
                        rewrite.path.push((re, t.clone()));
                    }
                }
                _ => cx.at(o, &at, "a substitution is `{from: REGEX, to: REPLACEMENT}` (`$1` for a group)"),
            }
        }
        for (k, v) in &w.set_headers {
            let at = format!("rewrite.set_headers.{k}");
            match (HeaderName::from_str(k), HeaderValue::from_str(v)) {
                (Ok(n), Ok(v)) => rewrite.set_headers.push((n, v)),
                (Err(_), _) => cx.at_key(o, &at, format!("`{k}` is not a header name")),
                (_, Err(_)) => cx.at(o, &at, "not a valid header value"),
            }
        }
        for (j, k) in w.remove_headers.iter().enumerate() {
            match HeaderName::from_str(k) {
                Ok(n) => rewrite.remove_headers.push(n),
                Err(_) => cx.at(o, &format!("rewrite.remove_headers[{j}]"), format!("`{k}` is not a header name")),
            }
        }
    }
    let mut mappings = Vec::new();
    for (j, mp) in r.identities.iter().enumerate() {
        let at = format!("identities[{j}]");
        let Some(name) = &mp.identity else {
            cx.at(o, &at, "missing `identity:` (the scenario identity these requests are sent as)");
            continue;
        };
        let Some(identity) = identity_index(cx, o, &format!("{at}.identity"), name, identities) else { continue };
        let mut claims = Vec::new();
        for (k, v) in &mp.claim {
            if let Some(re) = regex(cx, o, &format!("{at}.claim.{k}"), v) {
                claims.push((k.clone(), re));
            }
        }
        let headers = header_regexes(cx, o, &format!("{at}.header"), &mp.header);
        let source = mp.source.as_deref().and_then(|s| {
            let c = cidr(s);
            if c.is_none() {
                cx.at(o, &format!("{at}.source"), format!("`{s}` is not an address or a range like `10.0.0.0/8`"));
            }
            c
        });
        const OWN: [&str; 7] = ["sub", "iss", "aud", "exp", "iat", "nbf", "jti"];
        for (k, c) in mp.keep_claims.iter().enumerate() {
            if OWN.contains(&c.as_str()) {
                cx.at(
                    o,
                    &format!("{at}.keep_claims[{k}]"),
                    format!("`{c}` stays the identity's own (its principal and validity are what the gateway must see); keep claims like `groups` or `scope`"),
                );
            }
        }
        if !mp.keep_claims.is_empty()
            && !matches!(identities[identity].token.as_ref().map(|t| &t.source), Some(TokenSource::Jwt(_)))
        {
            cx.at(
                o,
                &format!("{at}.keep_claims"),
                format!("identity `{name}` has no JWT to re-mint: give it `token: {{ jwt: … }}`"),
            );
        }
        let cert_subject = mp.cert_subject.as_deref().and_then(|s| regex(cx, o, &format!("{at}.cert_subject"), s));
        if cert_subject.is_some() && decrypt.is_none() {
            cx.warn(
                o,
                &format!("{at}.cert_subject"),
                "a client certificate's subject is only visible in a decrypted TLS capture: without `keylog:` (or `decrypt: true`) this mapping matches nothing",
            );
        }
        mappings.push(Mapping {
            identity,
            claims,
            headers,
            source,
            anonymous: mp.anonymous.unwrap_or(false),
            cert_subject,
            keep_claims: mp.keep_claims.clone(),
        });
    }
    let unmapped = match r.unmapped.as_deref() {
        None | Some("unreplayable") => None,
        Some(name) => identity_index(cx, o, "unmapped", name, identities),
    };
    if mappings.is_empty() && unmapped.is_none() && r.identities.is_empty() {
        cx.at(
            o,
            "",
            "no `identities:`: a captured request is never sent with its captured credentials — map them, e.g. \
             `identities: [{identity: user, claim: {sub: \"^alice$\"}}]`, or send everything as one with `unmapped: NAME`",
        );
    }
    let mut senders: Vec<usize> = mappings.iter().map(|m| m.identity).chain(unmapped).collect();
    senders.sort_unstable();
    senders.dedup();
    let mut rules = Vec::new();
    for (j, ru) in r.policy.iter().enumerate() {
        let at = format!("policy[{j}]");
        let name = match &ru.name {
            Some(n) if !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') => {
                n.clone()
            }
            Some(n) => {
                cx.at(
                    o,
                    &format!("{at}.name"),
                    format!("`{n}` is not a valid rule name: use letters, digits, `-`, `_`"),
                );
                continue;
            }
            None => {
                cx.at(o, &at, "missing `name:` (it names the rule's checks in the report)");
                continue;
            }
        };
        if rules.iter().any(|x: &Rule| x.name == name) {
            cx.at(o, &format!("{at}.name"), format!("rule name `{name}` is used twice"));
        }
        let expect = match ru.expect.as_deref() {
            // 101 only answers a replayed WebSocket upgrade.
            Some("allow") => Some(Expect::Allow {
                success: Statuses::parse(["2xx", "101"]).unwrap_or_else(Statuses::success),
                refusals: refusals(profile),
            }),
            Some("deny") => Some(Expect::Deny { statuses: profile.deny_status.clone() }),
            Some(x) => {
                cx.at(o, &format!("{at}.expect"), format!("`{x}`: a replay rule expects `allow` or `deny`"));
                None
            }
            None => {
                cx.at(o, &at, "missing `expect:` (`allow` or `deny`)");
                None
            }
        };
        let path = ru.path.as_deref().and_then(|s| regex(cx, o, &format!("{at}.path"), s));
        let methods = methods(cx, o, &format!("{at}.method"), ru.method.as_ref());
        let mut ids = Vec::new();
        for (k, n) in ru.identity.iter().flatten().enumerate() {
            if let Some(i) = identity_index(cx, o, &format!("{at}.identity[{k}]"), n, identities) {
                if !senders.contains(&i) {
                    cx.warn(
                        o,
                        &format!("{at}.identity[{k}]"),
                        format!("no mapping sends requests as `{n}`: this part of the rule never applies"),
                    );
                }
                ids.push(i);
            }
        }
        known_features(cx, o, &format!("{at}.requires"), &ru.requires);
        let missing = super::checks::unclaimed(&ru.requires, profile);
        let out_of_scope = (!missing.is_empty()).then(|| {
            format!(
                "outside the declared scope: rule `{name}` needs {} that profile `{}` does not claim",
                missing.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", "),
                profile.name
            )
        });
        if let Some(expect) = expect {
            rules.push(Rule { name, path, methods, identities: ids, expect, out_of_scope });
        }
    }
    let keep_connections = match r.connections.as_deref() {
        None | Some("keep") => true,
        Some("spread") => false,
        Some(x) => {
            cx.at(
                o,
                "connections",
                format!("`{x}`: `keep` (a captured connection's requests in order on one connection) or `spread`"),
            );
            true
        }
    };
    let compare = r.compare.as_ref().map(|c| compare(cx, o, c)).unwrap_or_default();
    if cx.problems.len() > before {
        return None;
    }
    // One check per class and sender.
    let mut table = Vec::new();
    let classes: Vec<(String, Expect, String)> = rules
        .iter()
        .map(|r| (r.name.clone(), r.expect.clone(), format!("replayed requests matching policy rule `{}`", r.name)))
        .chain([
            (
                "recorded-allow".to_string(),
                recorded_allow(profile, false),
                "replayed requests the recording served with 2xx/3xx (no rule matches)".to_string(),
            ),
            (
                "recorded-deny".to_string(),
                Expect::Deny { statuses: profile.deny_status.clone() },
                "replayed requests the recording refused with 401/403 (no rule matches)".to_string(),
            ),
            (
                "recorded-other".to_string(),
                recorded_allow(profile, true),
                "replayed requests the recording answered with a 4xx that is not a refusal (no rule matches)"
                    .to_string(),
            ),
        ])
        .collect();
    for (k, (class, expect, title)) in classes.into_iter().enumerate() {
        let mut row = Vec::new();
        for &sid in &senders {
            // A rule for some identities gets no checks for the others (nothing can fall there).
            if rules.get(k).is_some_and(|r| !r.identities.is_empty() && !r.identities.contains(&sid)) {
                row.push(None);
                continue;
            }
            let id = check_id(&["RP", phase, &class, &identities[sid].name]);
            if checks.iter().any(|c| c.id == id) {
                cx.at(
                    o,
                    "",
                    format!("the generated check id `{id}` is already a check's id: rename the phase or rule"),
                );
                return None;
            }
            row.push(Some(checks.len()));
            checks.push(Check {
                id,
                title: format!("{title}, sent as `{}`", identities[sid].name),
                severity: if expect.is_deny_class() { Severity::Critical } else { Severity::Medium },
                reference: format!(
                    "replay of {}",
                    capture.as_ref().map(|p| p.display().to_string()).unwrap_or_default()
                ),
                tags: vec!["replay".to_string()],
                requires: Vec::new(),
                out_of_scope: rules.get(k).and_then(|r| r.out_of_scope.clone()),
                identity: sid,
                request: Request {
                    method: Method::GET,
                    path: "/".to_string(),
                    headers: Vec::new(),
                    body: bytes::Bytes::new(),
                    varying: Vec::new(),
                    websocket: None,
                },
                expect: expect.clone(),
                upstream: UpstreamExpect::default(),
                replay: true,
            });
        }
        table.push(row);
    }
    Some(Replay {
        capture: capture?,
        decrypt,
        speed,
        max_gap,
        rate_cap,
        loops,
        window,
        only,
        rewrite,
        identities: mappings,
        unmapped,
        policy: rules,
        senders,
        checks: table,
        keep_connections,
        compare,
    })
}

/// `replay.compare:`.
fn compare(cx: &mut Ctx<'_>, o: &Origin, c: &crate::scenario::raw::RawCompare) -> Compare {
    let body = match &c.body {
        None => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(Value::String(s)) if s == "auto" => None,
        Some(_) => {
            cx.at(o, "compare.body", "`auto` (bodies compared when the run has no oracle upstream), `true` or `false`");
            None
        }
    };
    let mut noisy = Vec::new();
    for (j, n) in c.noisy.iter().enumerate() {
        let at = format!("compare.noisy[{j}]");
        match (&n.json, &n.regex) {
            (Some(p), None) => {
                let parts: Vec<String> = p.split('.').map(str::to_string).collect();
                if parts.iter().any(String::is_empty) {
                    cx.at(
                        o,
                        &format!("{at}.json"),
                        format!("`{p}` is not a field path like `meta.served_at` or `items.*.id`"),
                    );
                } else {
                    noisy.push(Noisy::Json(parts));
                }
            }
            (None, Some(re)) => {
                if let Some(re) = regex(cx, o, &format!("{at}.regex"), re) {
                    noisy.push(Noisy::Regex(re));
                }
            }
            _ => cx.at(
                o,
                &at,
                "a noisy field is `{json: PATH}` (a JSON field, `*` for any key or element) or `{regex: REGEX}`",
            ),
        }
    }
    Compare { body, noisy }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_ids() {
        assert_eq!(cidr("10.0.0.0/8"), Some(("10.0.0.0".parse().unwrap(), 8)));
        assert_eq!(cidr("192.0.2.7"), Some(("192.0.2.7".parse().unwrap(), 32)));
        assert_eq!(cidr("10.0.0.0/33"), None);
        assert_eq!(cidr("fd00::/8"), Some(("fd00::".parse().unwrap(), 8)));
        assert_eq!(check_id(&["RP", "main.v2", "admin-api", "user~alg-none"]), "RP-main-v2-admin-api-user-alg-none");
    }
}
