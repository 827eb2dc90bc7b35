//! `target:` and `profile:` — where traffic goes and how a pack maps onto the gateway.

use super::*;

pub(super) fn resolve_profile(cx: &mut Ctx<'_>, m: &Merged) -> Profile {
    let Some((p, o)) = &m.profile else {
        return Profile { name: "default".into(), deny_status: vec![401, 403], ..Default::default() };
    };
    let mut out = Profile { name: p.name.clone().unwrap_or_else(|| "default".into()), ..Default::default() };
    if let Some(i) = &p.implementation {
        out.implementation = Implementation {
            organization: i.organization.clone().unwrap_or_default(),
            project: i.project.clone().unwrap_or_default(),
            url: i.url.clone().unwrap_or_default(),
            version: i.version.clone().unwrap_or_default(),
            contact: i.contact.clone(),
        };
    }
    for (name, prefix) in &p.routes {
        if !prefix.starts_with('/') {
            cx.at(o, &format!("routes.{name}"), format!("route prefix `{prefix}` must start with `/`"));
        }
        out.routes.push((name.clone(), prefix.trim_end_matches('/').to_string()));
    }
    if let Some(h) = &p.identity_header {
        match HeaderName::from_str(h) {
            Ok(n) => out.identity_header = Some(n),
            Err(_) => cx.at(o, "identity_header", format!("`{h}` is not a valid header name")),
        }
    }
    out.deny_status = if p.deny_status.is_empty() { vec![401, 403] } else { p.deny_status.clone() };
    for (i, s) in out.deny_status.iter().enumerate() {
        if !(100..=599).contains(s) {
            cx.at(o, &format!("deny_status[{i}]"), format!("{s} is not an HTTP status"));
        }
    }
    out.tag = match p.tag.as_deref() {
        None | Some("header") => Some(TagMode::Header),
        Some("query") => Some(TagMode::Query),
        Some("off") => Some(TagMode::Off),
        Some(other) => {
            cx.at(o, "tag", format!("`{other}` is not a tag mode: use `header`, `query` or `off`"));
            None
        }
    };
    if let Some(f) = &p.features {
        known_features(cx, o, "features", f);
        out.features = Some(f.clone());
    }
    if let Some(rl) = &p.client_rate_limit {
        out.client_rate_limit = rate_limit(cx, o, "client_rate_limit", rl);
    }
    if let Some(f) = &p.forwarding {
        let names = |cx: &mut Ctx<'_>, key: &str, list: &[String]| -> Vec<HeaderName> {
            let mut v = Vec::new();
            for (i, h) in list.iter().enumerate() {
                match HeaderName::from_str(h) {
                    Ok(n) => v.push(n),
                    Err(_) => cx.at(o, &format!("forwarding.{key}[{i}]"), format!("`{h}` is not a valid header name")),
                }
            }
            v
        };
        out.injects = names(cx, "injects", &f.injects);
        out.strips = names(cx, "strips", &f.strips);
        for (i, h) in out.strips.iter().enumerate() {
            if out.injects.contains(h) || out.identity_header.as_ref() == Some(h) {
                cx.at(
                    o,
                    &format!("forwarding.strips[{i}]"),
                    format!("`{h}` is also injected: a header the gateway sets itself is listed under `injects` only"),
                );
            }
        }
    }
    let hygiene = out.features.as_ref().is_some_and(|f| f.iter().any(|x| x == "header-hygiene"));
    if hygiene && p.forwarding.is_none() {
        cx.warn(
            o,
            "features",
            "`header-hygiene` is claimed but the profile declares no `forwarding: {injects, strips}`: only the \
             checks' own `upstream:` rules test it — declare what the gateway strips so every check that sends \
             such a header proves it",
        );
    }
    if let Some(h) = out.identity_header.clone() {
        if !out.injects.contains(&h) {
            out.injects.push(h);
        }
    }
    if let Some(rl) = &p.rate_limit {
        out.rate_limit = rate_limit(cx, o, "rate_limit", rl);
    }
    out
}

pub(super) fn rate_limit(cx: &mut Ctx<'_>, o: &Origin, sub: &str, rl: &RawRateLimit) -> Option<(u32, Duration)> {
    match units::duration(&rl.per) {
        Ok(d) if !d.is_zero() && rl.requests > 0 => Some((rl.requests, d)),
        Ok(_) => {
            cx.at(o, sub, "a rate limit needs `requests` > 0 and a `per` window > 0");
            None
        }
        Err(e) => {
            cx.at(o, &join(sub, "per"), e);
            None
        }
    }
}

pub(super) fn resolve_target(cx: &mut Ctx<'_>, m: &Merged) -> Option<Target> {
    let Some((t, o)) = &m.target else {
        cx.at(&Origin { file: 0, path: String::new() }, "target", "missing `target:` (at least `url:`)");
        return None;
    };
    let Some(raw_url) = &t.url else {
        cx.at(o, "url", "missing `url:` (e.g. `https://127.0.0.1:8443`)");
        return None;
    };
    let shown = crate::conformance::redact_userinfo(raw_url);
    let url = match url::Url::parse(raw_url) {
        Ok(u) => u,
        Err(e) => {
            cx.at(o, "url", format!("`{shown}` is not a URL ({e}): write e.g. `https://127.0.0.1:8443`"));
            return None;
        }
    };
    if !url.username().is_empty() || url.password().is_some() {
        // Never echoed: the message shows the URL without them.
        cx.at(
            o,
            "url",
            format!(
                "`{shown}`: credentials in the URL (`user:password@`) are refused — they would be \
                 written into the results and sent as nobody in particular; every request is \
                 sent as an identity: give it `headers: {{ authorization: \"Basic …\" }}` or a \
                 `token:` under `identities:`"
            ),
        );
        return None;
    }
    let tls = match url.scheme() {
        "https" => true,
        "http" => false,
        s => {
            cx.at(o, "url", format!("scheme `{s}` is not supported: use `https://` or `http://`"));
            return None;
        }
    };
    let Some(host) = url.host() else {
        cx.at(o, "url", format!("`{shown}` has no host"));
        return None;
    };
    let host_plain = match &host {
        url::Host::Ipv6(a) => a.to_string(),
        h => h.to_string(),
    };
    let port = url.port_or_known_default().unwrap_or(if tls { 443 } else { 80 });
    let auth_str = match &host {
        url::Host::Ipv6(a) => format!("[{a}]:{port}"),
        h => format!("{h}:{port}"),
    };
    let authority = match http::uri::Authority::from_str(&auth_str) {
        Ok(a) => a,
        Err(e) => {
            cx.at(o, "url", format!("`{shown}`: bad authority ({e})"));
            return None;
        }
    };
    let mut ca = Vec::new();
    if let Some(rel) = &t.ca {
        if let Some((path, bytes)) = cx.read(o, "ca", rel) {
            let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&bytes).collect();
            match certs {
                Ok(c) if !c.is_empty() => ca = c,
                Ok(_) => cx.at(o, "ca", format!("`{}` holds no PEM certificate", path.display())),
                Err(e) => cx.at(o, "ca", format!("`{}` is not a PEM certificate bundle: {e}", path.display())),
            }
        }
    } else if tls {
        cx.at(o, "ca", "an https target needs `ca:`, the PEM file of the CA that signed the gateway's certificate");
    }
    let parse_protocol = |cx: &mut Ctx<'_>, key: &str, p: Option<&str>| match p {
        None | Some("auto") => ProtocolKind::Auto,
        Some("h1") | Some("http1") => ProtocolKind::H1,
        Some("h2") | Some("http2") => ProtocolKind::H2,
        Some("h3") | Some("http3") => {
            if !tls {
                cx.at(o, key, "HTTP/3 runs over QUIC, which is always encrypted: use an https:// url");
            }
            ProtocolKind::H3
        }
        Some(p) => {
            cx.at(o, key, format!("`{p}` is not a protocol: use `h1`, `h2`, `h3` or `auto`"));
            ProtocolKind::Auto
        }
    };
    let protocol = parse_protocol(cx, "protocol", t.protocol.as_deref());
    let parity: Vec<ProtocolKind> =
        t.parity.iter().enumerate().map(|(i, p)| parse_protocol(cx, &format!("parity[{i}]"), Some(p))).collect();
    if parity.len() == 1 {
        cx.at(o, "parity", "parity compares protocols: list at least two, e.g. `[h1, h2, h3]`");
    }
    if let Some(dup) = parity.iter().enumerate().find(|(i, p)| parity[..*i].contains(p)) {
        cx.at(o, "parity", format!("`{}` is listed twice", dup.1.as_str()));
    }
    let timeout = match &t.timeout {
        None => Duration::from_secs(10),
        Some(s) => match units::duration(s) {
            Ok(d) if !d.is_zero() => d,
            Ok(_) => {
                cx.at(o, "timeout", "a timeout must be greater than zero");
                Duration::from_secs(10)
            }
            Err(e) => {
                cx.at(o, "timeout", e);
                Duration::from_secs(10)
            }
        },
    };
    let connections = t.connections.unwrap_or(2);
    let max_in_flight = t.max_in_flight.unwrap_or(64);
    if connections == 0 {
        cx.at(o, "connections", "must be at least 1");
    }
    if max_in_flight == 0 {
        cx.at(o, "max_in_flight", "must be at least 1");
    }
    for (key, v) in [("connections", connections), ("max_in_flight", max_in_flight)] {
        if v > units::MAX_CONCURRENCY {
            cx.at(o, key, format!("{v} is over the {} one gauntlet process holds", units::MAX_CONCURRENCY));
        }
    }
    if let Some(n) = t.threads.filter(|n| *n > units::MAX_THREADS) {
        cx.at(
            o,
            "threads",
            format!("{n} threads is over {}: leave `threads:` out (one per core) or give a few", units::MAX_THREADS),
        );
    }
    Some(Target {
        url: raw_url.clone(),
        tls,
        server_name: t.server_name.clone().unwrap_or_else(|| host_plain.clone()),
        host: host_plain,
        port,
        authority,
        base_path: url.path().trim_end_matches('/').to_string(),
        ca,
        protocol,
        connections: connections.max(1),
        max_in_flight: max_in_flight.max(1),
        timeout,
        threads: t.threads.unwrap_or(0),
        parity,
    })
}

/// Statuses an allow-class check treats as refusals: the profile's deny statuses and the
/// universal ones.
pub(super) fn refusals(profile: &Profile) -> Vec<u16> {
    let mut r = profile.deny_status.clone();
    for s in crate::conformance::REFUSALS {
        if !r.contains(&s) {
            r.push(s);
        }
    }
    r
}
