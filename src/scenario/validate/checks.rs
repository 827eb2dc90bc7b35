//! `checks:` — requests, expectations and route expansion.

use super::*;

/// `{limit: {requests, per, tolerance, burst, drive}}` (requests and per default to the
/// profile's `rate_limit`).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimitExpect {
    pub(super) requests: Option<u32>,
    pub(super) per: Option<String>,
    pub(super) tolerance: Option<Value>,
    pub(super) burst: Option<u32>,
    pub(super) drive: Option<f64>,
}

pub(super) fn limit_expect(cx: &mut Ctx<'_>, o: &Origin, raw: &RawLimitExpect, profile: &Profile) -> Option<Expect> {
    let (requests, per) = match (raw.requests, &raw.per, profile.rate_limit) {
        (Some(requests), Some(per), _) => {
            rate_limit(cx, o, "expect.limit", &RawRateLimit { requests, per: per.clone() })?
        }
        (None, None, Some(rl)) => rl,
        (Some(requests), None, Some((_, per))) => (requests, per),
        (None, Some(per), Some((requests, _))) => {
            rate_limit(cx, o, "expect.limit", &RawRateLimit { requests, per: per.clone() })?
        }
        _ => {
            cx.at(
                o,
                "expect",
                "`limit` needs `{limit: {requests: N, per: 1s}}` or a `rate_limit` in the target profile",
            );
            return None;
        }
    };
    let tolerance = match &raw.tolerance {
        None => 0.1,
        Some(v) => match fraction(v, 1.0) {
            Ok(t) => t,
            Err(e) => {
                cx.at(o, "expect.limit.tolerance", e);
                return None;
            }
        },
    };
    let drive = raw.drive.unwrap_or(1.2);
    if !drive.is_finite() || drive <= 1.0 + tolerance || drive > 100.0 {
        cx.at(
            o,
            "expect.limit.drive",
            format!("`drive: {drive}` must be above 1 + tolerance ({:.2}) and at most 100: a limiter is only tested by sending faster than it allows", 1.0 + tolerance),
        );
        return None;
    }
    Some(Expect::Limit(crate::conformance::Limit {
        requests,
        per,
        tolerance,
        burst: raw.burst.unwrap_or(requests),
        drive,
        success: Statuses::success(),
        refusals: refusals(profile),
    }))
}

pub(super) fn expect(cx: &mut Ctx<'_>, o: &Origin, v: Option<&Value>, profile: &Profile) -> Option<Expect> {
    const KINDS: [&str; 4] = ["allow", "deny", "tls_reject", "limit"];
    let bad = |cx: &mut Ctx<'_>, what: &str| {
        let hint = units::suggest(what, KINDS).map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default();
        cx.at(
            o,
            "expect",
            format!("`{what}` is not an expectation{hint}: use `allow`, `{{allow: [200, 204]}}`, `deny`, `{{deny: [401, 403]}}`, `tls_reject` or `limit`"),
        );
    };
    match v {
        None => {
            cx.at(o, "", "missing `expect:` (allow, deny, tls_reject or limit)");
            None
        }
        Some(Value::String(s)) => match s.as_str() {
            "allow" => Some(Expect::Allow { success: Statuses::success(), refusals: refusals(profile) }),
            "deny" => Some(Expect::Deny { statuses: profile.deny_status.clone() }),
            "tls_reject" => Some(Expect::TlsReject),
            "limit" => limit_expect(cx, o, &RawLimitExpect::default(), profile),
            other => {
                bad(cx, other);
                None
            }
        },
        Some(Value::Mapping(map)) if map.len() == 1 => {
            let (k, val) = map.iter().next()?;
            match k.as_str() {
                Some("deny") => match serde_yaml::from_value::<Vec<u16>>(val.clone()) {
                    Ok(s) if !s.is_empty() && s.iter().all(|c| (100..=599).contains(c)) => {
                        Some(Expect::Deny { statuses: s })
                    }
                    _ => {
                        cx.at(o, "expect.deny", "give the deny statuses as a list, e.g. `{deny: [401, 403]}`");
                        None
                    }
                },
                Some("allow") => {
                    let items: Option<Vec<String>> = val.as_sequence().map(|seq| {
                        seq.iter()
                            .map(|x| match x {
                                Value::Number(n) => n.to_string(),
                                Value::String(s) => s.clone(),
                                _ => String::new(),
                            })
                            .collect()
                    });
                    match items.as_ref().and_then(|i| Statuses::parse(i.iter().map(String::as_str))) {
                        Some(success) => Some(Expect::Allow { success, refusals: refusals(profile) }),
                        None => {
                            cx.at(
                                o,
                                "expect.allow",
                                "give the success statuses as a list of codes or classes, e.g. `{allow: [200, 204]}` or `{allow: [2xx, 302]}`",
                            );
                            None
                        }
                    }
                }
                Some("limit") => match serde_yaml::from_value::<RawLimitExpect>(val.clone()) {
                    Ok(rl) => limit_expect(cx, o, &rl, profile),
                    Err(e) => {
                        cx.at(
                            o,
                            "expect.limit",
                            format!(
                                "{e}: write e.g. `{{limit: {{requests: 50, per: 1s, tolerance: 10%, drive: 1.2}}}}`"
                            ),
                        );
                        None
                    }
                },
                Some(other) => {
                    bad(cx, other);
                    None
                }
                None => {
                    bad(cx, "?");
                    None
                }
            }
        }
        Some(_) => {
            bad(cx, "?");
            None
        }
    }
}

pub(super) fn resolve_checks(
    cx: &mut Ctx<'_>,
    m: &Merged,
    profile: &Profile,
    target: Option<&Target>,
    identities: &[Identity],
) -> Vec<Check> {
    let mut out: Vec<Check> = Vec::new();
    // A scenario whose phases all replay captures needs no checks of its own.
    let replays_only = !m.phases.is_empty() && m.phases.iter().all(|(p, _)| p.replay.is_some());
    if m.checks.is_empty() && !replays_only {
        cx.at(
            &Origin { file: 0, path: String::new() },
            "checks",
            "no `checks:`: a scenario needs at least one check (or phases that all `replay:` a capture)",
        );
    }
    let names: Vec<&str> = m.identities.iter().map(|(n, _, _)| n.as_str()).collect();
    for (c, o) in &m.checks {
        let Some(id) = c.id.clone() else {
            cx.at(o, "", "missing `id:`");
            continue;
        };
        if !valid_name(&id) || id.contains('.') {
            cx.at(o, "id", format!("`{id}` is not a valid check id: use letters, digits, `-` and `_`"));
        }
        if out.iter().any(|x| x.id == id) {
            cx.at(o, "id", format!("check id `{id}` is used twice"));
        }
        let identity = match (&c.identity, &c.role) {
            (None, None) => {
                cx.at(
                    o,
                    "",
                    "missing `identity:` (an entry under `identities:`) or `role:` (a role the profile binds)",
                );
                None
            }
            // Derived (or refused, with the problem already reported) by `roles::derive`.
            (None, Some(r)) => {
                let n = super::roles::derived_name(r, c.variant.as_deref(), c.claims_of.as_deref());
                identities.iter().position(|x| x.name == n)
            }
            (Some(_), Some(_)) => None,
            (Some(n), None) => match names.iter().position(|x| x == n) {
                Some(i) => Some(i),
                None => {
                    let hint = units::suggest(n, names.iter().copied())
                        .map(|s| format!(" (did you mean `{s}`?)"))
                        .unwrap_or_else(|| format!(" (defined: {})", names.join(", ")));
                    cx.at(o, "identity", format!("no identity named `{n}`{hint}"));
                    None
                }
            },
        };
        let expect = expect(cx, o, c.expect.as_ref(), profile);
        if matches!(expect, Some(Expect::TlsReject)) && target.is_some_and(|t| !t.tls) {
            cx.at(o, "expect", "`tls_reject` needs an https target");
        }
        let severity = match &c.severity {
            None => {
                if expect.as_ref().is_some_and(Expect::is_deny_class) {
                    Severity::Critical
                } else {
                    Severity::High
                }
            }
            Some(s) => Severity::parse(s).unwrap_or_else(|| {
                cx.at(o, "severity", format!("`{s}` is not a severity: use critical, high, medium or low"));
                Severity::High
            }),
        };
        let request = request(cx, o, c.request.as_ref(), profile, target);
        // A WebSocket upgrade succeeds with 101, not 2xx (unless the check says otherwise).
        let expect = match (expect, &request) {
            (Some(Expect::Allow { success, refusals }), Some(r)) if r.websocket.is_some() => {
                let declared = matches!(&c.expect, Some(Value::Mapping(_)));
                let success = if declared { success } else { Statuses::of(&[101]) };
                Some(Expect::Allow { success, refusals })
            }
            (e, _) => e,
        };
        let mut upstream = UpstreamExpect::default();
        if let Some(u) = &c.upstream {
            for (k, v) in &u.headers {
                match HeaderName::from_str(k) {
                    Ok(n) => upstream.headers.push((n, v.clone())),
                    Err(_) => cx.at(o, &format!("upstream.headers.{k}"), format!("`{k}` is not a valid header name")),
                }
            }
            for (i, k) in u.absent.iter().enumerate() {
                match HeaderName::from_str(k) {
                    Ok(n) => upstream.absent.push(n),
                    Err(_) => cx.at(o, &format!("upstream.absent[{i}]"), format!("`{k}` is not a valid header name")),
                }
            }
            let sent_by_identity =
                identity.and_then(|i| identities.get(i)).map(|i| i.headers.as_slice()).unwrap_or_default();
            for (i, k) in u.stripped.iter().enumerate() {
                let at = format!("upstream.stripped[{i}]");
                let Ok(n) = HeaderName::from_str(k) else {
                    cx.at(o, &at, format!("`{k}` is not a valid header name"));
                    continue;
                };
                let from_check = request.as_ref().and_then(|r| r.headers.iter().find(|(h, _)| *h == n));
                let sent = from_check.or_else(|| sent_by_identity.iter().find(|(h, _)| *h == n));
                match sent.map(|(_, v)| v.to_str()) {
                    Some(Ok(v)) => upstream.stripped.push((n, v.to_string())),
                    Some(Err(_)) => cx.at(o, &at, format!("the value sent for `{k}` is not text")),
                    None => cx.at(
                        o,
                        &at,
                        format!("`{k}` is not sent by this check (with a fixed value): `stripped` names a header the client forges, so put it under `request.headers`, or use `absent` for a header that must not arrive at all"),
                    ),
                }
            }
        }
        // A header the profile says the gateway strips, sent by a check of a gateway that
        // claims header hygiene: the claim is tested — it must not arrive at all.
        let hygiene = profile.features.as_ref().is_none_or(|f| f.iter().any(|x| x == "header-hygiene"));
        if hygiene {
            let sent_by_identity =
                identity.and_then(|i| identities.get(i)).map(|i| i.headers.as_slice()).unwrap_or_default();
            let sent = request.as_ref().map(|r| r.headers.as_slice()).unwrap_or_default();
            for (h, _) in sent.iter().chain(sent_by_identity) {
                if profile.strips.contains(h) && !upstream.absent.contains(h) {
                    upstream.absent.push(h.clone());
                }
            }
        }
        known_features(cx, o, "requires", &c.requires);
        let missing = unclaimed(&c.requires, profile);
        let out_of_scope = profile.features.as_ref().and_then(|_| {
            (!missing.is_empty()).then(|| {
                format!(
                    "outside the gateway's declared scope: profile `{}` does not claim {}",
                    profile.name,
                    missing.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", ")
                )
            })
        });
        if let (Some(identity), Some(expect), Some(request)) = (identity, expect, request) {
            out.push(Check {
                id,
                title: c.title.clone().unwrap_or_default(),
                severity,
                reference: c.reference.clone().unwrap_or_default(),
                tags: c.tags.clone(),
                requires: c.requires.clone(),
                out_of_scope,
                identity,
                request,
                expect,
                upstream,
                replay: false,
            });
        }
    }
    out
}

/// What of `requires` the profile does not claim (nothing when it declares no `features`):
/// a check needing any of it is outside the declared scope.
pub(super) fn unclaimed<'a>(requires: &'a [String], profile: &Profile) -> Vec<&'a str> {
    match &profile.features {
        None => Vec::new(),
        Some(claimed) => requires.iter().filter(|r| !claimed.contains(r)).map(String::as_str).collect(),
    }
}

pub(super) fn request(
    cx: &mut Ctx<'_>,
    o: &Origin,
    r: Option<&crate::scenario::raw::RawRequest>,
    profile: &Profile,
    target: Option<&Target>,
) -> Option<Request> {
    let Some(r) = r else {
        cx.at(o, "", "missing `request:` (at least `path:` or `route:`)");
        return None;
    };
    let method = match &r.method {
        None => Method::GET,
        Some(m) => match Method::from_bytes(m.as_bytes()) {
            Ok(m) => m,
            Err(_) => {
                cx.at(o, "request.method", format!("`{m}` is not a valid HTTP method token"));
                return None;
            }
        },
    };
    let mut path = target.map(|t| t.base_path.clone()).unwrap_or_default();
    if let Some(route) = &r.route {
        match profile.routes.iter().find(|(n, _)| n == route) {
            Some((_, prefix)) => path.push_str(prefix),
            None => {
                let names: Vec<&str> = profile.routes.iter().map(|(n, _)| n.as_str()).collect();
                let hint = units::suggest(route, names.iter().copied())
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_else(|| format!(" (the target profile defines: {})", names.join(", ")));
                cx.at(o, "request.route", format!("no route named `{route}` in the target profile{hint}"));
                return None;
            }
        }
    }
    match (&r.path, &r.route) {
        (Some(p), _) => match expand_routes(p, profile) {
            Ok(p) => path.push_str(&p),
            Err(e) => {
                cx.at(o, "request.path", e);
                return None;
            }
        },
        (None, Some(_)) => {}
        (None, None) => {
            cx.at(o, "request", "give `path:` or `route:`");
            return None;
        }
    }
    if path.is_empty() {
        path.push('/');
    }
    if !path.starts_with('/') && path != "*" {
        cx.at(o, "request.path", format!("`{path}` must start with `/`"));
        return None;
    }
    if let Err(e) = http::uri::PathAndQuery::from_str(&path) {
        cx.at(o, "request.path", format!("`{path}` cannot be sent as a request target ({e})"));
        return None;
    }
    let (fixed, varying_raw): (std::collections::BTreeMap<String, String>, Vec<(String, String)>) = {
        let mut fixed = std::collections::BTreeMap::new();
        let mut vary = Vec::new();
        for (k, v) in &r.headers {
            if v.contains("{seq") {
                vary.push((k.clone(), v.clone()));
            } else {
                fixed.insert(k.clone(), v.clone());
            }
        }
        (fixed, vary)
    };
    let headers = headers(cx, o, "request.headers", &fixed);
    let mut varying = Vec::new();
    for (k, v) in &varying_raw {
        let at = join("request.headers", k);
        match (HeaderName::from_str(k), Varying::parse(v)) {
            (Ok(n), Ok(Some(var))) => {
                let mut probe = Vec::new();
                var.render(u64::MAX, &mut probe);
                if HeaderValue::from_bytes(&probe).is_err() {
                    cx.at(o, &at, "the value has characters a header cannot carry");
                } else {
                    varying.push((n, var));
                }
            }
            (Err(_), _) => cx.at(o, &at, format!("`{k}` is not a valid header name")),
            (_, Err(e)) => cx.at(o, &at, e),
            (_, Ok(None)) => {}
        }
    }
    let websocket = match &r.websocket {
        None => None,
        Some(w) => {
            let mut dur = |key: &str, v: &Option<String>, default: Duration| match v.as_deref().map(units::duration) {
                None => Some(default),
                Some(Ok(d)) if !d.is_zero() => Some(d),
                Some(Ok(_)) => {
                    cx.at(o, &format!("request.websocket.{key}"), "must be greater than zero");
                    None
                }
                Some(Err(e)) => {
                    cx.at(o, &format!("request.websocket.{key}"), e);
                    None
                }
            };
            let interval = dur("interval", &w.interval, Duration::from_secs(1));
            let hold = dur("hold", &w.hold, Duration::from_secs(5));
            if method != Method::GET {
                cx.at(o, "request.method", "a WebSocket upgrade is a GET");
            }
            if target.is_some_and(|t| t.protocol != ProtocolKind::H1 || !t.parity.is_empty()) {
                cx.at(o, "request.websocket", "WebSocket sessions run over HTTP/1.1: set the target's `protocol: h1`");
            }
            let messages = if w.messages.is_empty() { vec!["ping".to_string()] } else { w.messages.clone() };
            Some(WebSocket { messages, interval: interval?, hold: hold?, must_close: w.must_close.unwrap_or(false) })
        }
    };
    Some(Request {
        method,
        path,
        headers,
        body: bytes::Bytes::from(r.body.clone().unwrap_or_default()),
        varying,
        websocket,
    })
}

/// Expands `{route:NAME}` (the profile's prefix for NAME) in a raw path, with optional
/// transforms: `{route:NAME|upper}` (upper case) and `{route:NAME|pct1}` (first character
/// after the slash percent-encoded). This keeps bypass probes such as `//admin` or
/// `/public/../admin` written against route names, so one pack fits any gateway.
pub(super) fn expand_routes(p: &str, profile: &Profile) -> Result<String, String> {
    let mut out = String::with_capacity(p.len());
    let mut rest = p;
    while let Some(i) = rest.find("{route:") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 7..];
        let end = after.find('}').ok_or_else(|| format!("`{p}`: `{{route:` is not closed"))?;
        let (name, op) = match after[..end].split_once('|') {
            Some((n, o)) => (n, Some(o)),
            None => (&after[..end], None),
        };
        let prefix = profile.routes.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()).ok_or_else(|| {
            let names: Vec<&str> = profile.routes.iter().map(|(n, _)| n.as_str()).collect();
            let hint = units::suggest(name, names.iter().copied())
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            format!("no route named `{name}` in the target profile{hint}")
        })?;
        let v = match op {
            None => prefix,
            Some("upper") => prefix.to_ascii_uppercase(),
            Some("pct1") => match prefix.as_bytes().get(1) {
                Some(c) => format!("/%{:02x}{}", c, &prefix[2..]),
                None => prefix,
            },
            Some(other) => return Err(format!("unknown route transform `{other}` (use `upper` or `pct1`)")),
        };
        out.push_str(&v);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile() -> Profile {
        Profile {
            routes: vec![("admin".into(), "/admin".into()), ("public".into(), "/pub".into())],
            ..Default::default()
        }
    }

    #[test]
    fn route_templates_expand_against_the_profile() {
        let p = profile();
        assert_eq!(expand_routes("{route:public}/..{route:admin}/users", &p).unwrap(), "/pub/../admin/users");
        assert_eq!(expand_routes("{route:admin|upper}/x", &p).unwrap(), "/ADMIN/x");
        let enc = expand_routes("{route:admin|pct1}", &p).unwrap();
        assert!(enc.starts_with("/%") && enc.len() == "/admin".len() + 2, "{enc}");
        let err = expand_routes("{route:admn}", &p).unwrap_err();
        assert!(err.contains("admn"), "{err}");
    }

    #[test]
    fn refusals_add_the_universal_ones_to_the_profile_statuses_once() {
        let p = Profile { deny_status: vec![302, 403], ..Default::default() };
        let r = refusals(&p);
        assert!(r.starts_with(&[302, 403]) && r.contains(&401) && r.contains(&429));
        assert_eq!(r.iter().filter(|s| **s == 403).count(), 1);
    }
}
