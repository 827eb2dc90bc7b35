//! Merged raw documents → a typed [`Scenario`], collecting every problem with its place.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_yaml::Value;
use sha2::{Digest, Sha256};

use crate::auth::{self, Claim, Corrupt, JwtSpec};
use crate::conformance::{Expect, Severity, Statuses};
use crate::scenario::load::{Merged, Origin, Source};
use crate::scenario::model::*;
use crate::scenario::raw::{RawDoc, RawIdentity, RawNetwork, RawRateLimit, RawToken};
use crate::scenario::{Problem, Threshold, threshold, units};

/// CLI overrides, applied to raw fields before validation so there is one validation path.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// Replaces `target.url`.
    pub target_url: Option<String>,
    /// Replaces `target.ca` (relative to the working directory).
    pub target_ca: Option<PathBuf>,
    /// Replaces every phase's `duration` (and drops its `requests` bound).
    pub duration: Option<String>,
}

struct Ctx<'a> {
    sources: &'a [Source],
    problems: Vec<Problem>,
    /// What would not stop a run but likely spoils it (printed by `validate` and `run`).
    warnings: Vec<Problem>,
}

impl Ctx<'_> {
    fn problem_at(&self, o: &Origin, sub: &str, msg: impl Into<String>) -> Problem {
        let path = join(&o.path, sub);
        let pos = self.sources[o.file].locator.value(&path);
        Problem { file: self.sources[o.file].path.clone(), pos, msg: format!("{path}: {}", msg.into()) }
    }

    fn at(&mut self, o: &Origin, sub: &str, msg: impl Into<String>) {
        let p = self.problem_at(o, sub, msg);
        self.problems.push(p);
    }

    fn warn(&mut self, o: &Origin, sub: &str, msg: impl Into<String>) {
        let p = self.problem_at(o, sub, msg);
        self.warnings.push(p);
    }

    fn file(&self, o: &Origin, rel: &str) -> PathBuf {
        let p = Path::new(rel);
        if p.is_absolute() { p.to_path_buf() } else { self.sources[o.file].dir().join(p) }
    }

    fn read(&mut self, o: &Origin, sub: &str, rel: &str) -> Option<(PathBuf, Vec<u8>)> {
        let path = self.file(o, rel);
        match std::fs::read(&path) {
            Ok(b) => Some((path, b)),
            Err(e) => {
                let hint =
                    if rel.contains("certs/") { " (run `gauntlet certs init` to create the test PKI)" } else { "" };
                self.at(o, sub, format!("cannot read `{}`: {e}{hint}", path.display()));
                None
            }
        }
    }
}

fn join(base: &str, sub: &str) -> String {
    match (base.is_empty(), sub.is_empty()) {
        (_, true) => base.to_string(),
        (true, false) => sub.to_string(),
        _ if sub.starts_with('[') => format!("{base}{sub}"),
        _ => format!("{base}.{sub}"),
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Validates everything; returns the scenario or every problem found.
pub(crate) fn resolve(sources: &[Source], mut m: Merged, ov: &Overrides) -> Result<Scenario, Vec<Problem>> {
    apply_overrides(&mut m, ov);
    let mut cx = Ctx { sources, problems: Vec::new(), warnings: Vec::new() };
    let root = Origin { file: 0, path: String::new() };

    match &m.gauntlet {
        None => cx.at(&root, "gauntlet", "missing `gauntlet: 1` (the scenario format version) at the top of the file"),
        Some((1, _)) => {}
        Some((v, o)) => cx.at(o, "", format!("format version {v} is not supported; this gauntlet reads version 1")),
    }
    let name = match &m.name {
        Some((n, o)) => {
            if !valid_name(n) {
                cx.at(o, "", format!("`{n}` is not a valid name: use letters, digits, `-`, `_` and `.`"));
            }
            n.clone()
        }
        None => {
            cx.at(&root, "name", "missing `name:` (it names the results folder)");
            String::new()
        }
    };
    let profile = resolve_profile(&mut cx, &m);
    let target = resolve_target(&mut cx, &m);
    let identities = resolve_identities(&mut cx, &m);
    let checks = resolve_checks(&mut cx, &m, &profile, target.as_ref(), &identities);
    let phases = resolve_phases(&mut cx, &m, &checks);
    let thresholds = resolve_thresholds(&mut cx, &m, &phases, &checks);
    let error_budget = match &m.error_budget {
        None => 0.01,
        Some((v, o)) => fraction(v, 1.0).unwrap_or_else(|e| {
            cx.at(
                o,
                "",
                format!("`error_budget`: {e} (the share of requests that may go without an answer, e.g. `1%`)"),
            );
            0.01
        }),
    };
    check_limit_drive(&mut cx, &m, &checks, &phases);
    check_credential_rates(&mut cx, &m, &profile, &identities, &checks, &phases);
    let dependencies = resolve_dependencies(&mut cx, &m);
    let events = resolve_events(&mut cx, &m, &dependencies, &phases);
    let backend = resolve_backend(&mut cx, &m, &phases, &events, target.as_ref());
    let oracle = match &m.oracle {
        None => None,
        Some((o, origin)) => match o.listen.as_deref().map(str::parse::<std::net::SocketAddr>) {
            Some(Ok(listen)) => Some(OracleSpec { listen }),
            Some(Err(_)) => {
                cx.at(origin, "listen", "not an address: write e.g. `127.0.0.1:9000` (port 0 picks a free one)");
                None
            }
            None => {
                cx.at(origin, "", "missing `listen:` (e.g. `127.0.0.1:9000`)");
                None
            }
        },
    };

    if cx.problems.is_empty() {
        let resolved_yaml = resolved_yaml(sources, &m);
        let mut h = Sha256::new();
        for s in sources {
            h.update(&s.bytes);
        }
        let Some(target) = target else { return Err(cx.problems) };
        Ok(Scenario {
            name,
            description: m.description.clone().unwrap_or_default(),
            seed: m.seed.unwrap_or(1),
            target,
            profile,
            oracle,
            identities,
            checks,
            phases,
            thresholds,
            error_budget,
            dependencies,
            events,
            backend,
            sources: sources.iter().map(|s| s.path.clone()).collect(),
            notes: m.overrides.iter().map(|(o, msg)| cx.problem_at(o, "", msg.clone())).collect(),
            warnings: cx.warnings,
            sha256: hex(&h.finalize()),
            resolved_yaml,
        })
    } else {
        Err(cx.problems)
    }
}

/// How long after an outage event ends its statuses are still accepted, unless it says.
const DEFAULT_GRACE: &str = "2s";

fn apply_overrides(m: &mut Merged, ov: &Overrides) {
    if ov.target_url.is_some() || ov.target_ca.is_some() {
        let (t, _) = m.target.get_or_insert_with(|| (Default::default(), Origin { file: 0, path: "target".into() }));
        if let Some(u) = &ov.target_url {
            t.url = Some(u.clone());
        }
        if let Some(ca) = &ov.target_ca {
            let abs = std::path::absolute(ca).unwrap_or_else(|_| ca.clone());
            t.ca = Some(abs.display().to_string());
        }
    }
    if let Some(d) = &ov.duration {
        // Events keep their place in the run: scaled by new length / old length when every
        // phase had a duration.
        let old: Option<Duration> =
            m.phases.iter().map(|(p, _)| p.duration.as_deref().and_then(|s| units::duration(s).ok())).sum();
        let new = units::duration(d).ok().map(|x| x * m.phases.len() as u32);
        if let (Some(old), Some(new)) = (old, new) {
            let f = new.as_secs_f64() / old.as_secs_f64().max(1e-9);
            let scale = |v: &mut Option<String>| {
                if let Some(x) = v.as_deref().and_then(|s| units::duration(s).ok()) {
                    *v = Some(format!("{}ms", (x.as_secs_f64() * f * 1000.0).round() as u64));
                }
            };
            for (e, _) in &mut m.events {
                scale(&mut e.at);
                scale(&mut e.for_);
                if let Some(o) = &mut e.outage {
                    o.grace.get_or_insert_with(|| DEFAULT_GRACE.into());
                    scale(&mut o.grace);
                }
            }
        }
        for (p, _) in &mut m.phases {
            p.duration = Some(d.clone());
            p.requests = None;
        }
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn resolve_profile(cx: &mut Ctx<'_>, m: &Merged) -> Profile {
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
    if let Some(rl) = &p.rate_limit {
        out.rate_limit = rate_limit(cx, o, "rate_limit", rl);
    }
    out
}

fn rate_limit(cx: &mut Ctx<'_>, o: &Origin, sub: &str, rl: &RawRateLimit) -> Option<(u32, Duration)> {
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

fn resolve_target(cx: &mut Ctx<'_>, m: &Merged) -> Option<Target> {
    let Some((t, o)) = &m.target else {
        cx.at(&Origin { file: 0, path: String::new() }, "target", "missing `target:` (at least `url:`)");
        return None;
    };
    let Some(raw_url) = &t.url else {
        cx.at(o, "url", "missing `url:` (e.g. `https://127.0.0.1:8443`)");
        return None;
    };
    let url = match url::Url::parse(raw_url) {
        Ok(u) => u,
        Err(e) => {
            cx.at(o, "url", format!("`{raw_url}` is not a URL ({e}): write e.g. `https://127.0.0.1:8443`"));
            return None;
        }
    };
    let tls = match url.scheme() {
        "https" => true,
        "http" => false,
        s => {
            cx.at(o, "url", format!("scheme `{s}` is not supported: use `https://` or `http://`"));
            return None;
        }
    };
    let Some(host) = url.host() else {
        cx.at(o, "url", format!("`{raw_url}` has no host"));
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
            cx.at(o, "url", format!("`{raw_url}`: bad authority ({e})"));
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

fn headers(
    cx: &mut Ctx<'_>,
    o: &Origin,
    sub: &str,
    raw: &std::collections::BTreeMap<String, String>,
) -> Vec<(HeaderName, HeaderValue)> {
    let mut out = Vec::new();
    for (k, v) in raw {
        let at = join(sub, k);
        match (HeaderName::from_str(k), HeaderValue::from_str(v)) {
            (Ok(n), Ok(val)) => out.push((n, val)),
            (Err(_), _) => cx.at(o, &at, format!("`{k}` is not a valid header name")),
            (_, Err(_)) => cx.at(o, &at, "the value has characters a header cannot carry"),
        }
    }
    out
}

fn resolve_identities(cx: &mut Ctx<'_>, m: &Merged) -> Vec<Identity> {
    let mut out = Vec::new();
    for (name, raw, o) in &m.identities {
        if !valid_name(name) {
            cx.at(o, "", format!("`{name}` is not a valid identity name: use letters, digits, `-`, `_`, `.`"));
        }
        let client_cert = client_cert(cx, o, raw);
        let pool = raw.pool.as_ref().map(|p| pool(cx, o, raw, p)).unwrap_or_default();
        let token = raw.token.as_ref().and_then(|t| token(cx, o, t));
        let headers = headers(cx, o, "headers", &raw.headers);
        out.push(Identity {
            name: name.clone(),
            principal: raw.principal.clone().unwrap_or_else(|| name.clone()),
            client_cert,
            pool,
            token,
            headers,
        });
    }
    out
}

/// Every name in `names` (at `key[i]`) must be one of [`FEATURES`].
fn known_features(cx: &mut Ctx<'_>, o: &Origin, key: &str, names: &[String]) {
    for (i, name) in names.iter().enumerate() {
        if !FEATURES.contains(&name.as_str()) {
            let hint = units::suggest(name, FEATURES.iter().copied())
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_else(|| format!(" (known: {})", FEATURES.join(", ")));
            cx.at(o, &format!("{key}[{i}]"), format!("`{name}` is not a feature{hint}"));
        }
    }
}

/// Most members a pool may have.
const MAX_POOL: u32 = 10_000;

/// `pool:` — exactly one of `members`, `glob` or `mint`; not together with `cert`/`key`.
fn pool(cx: &mut Ctx<'_>, o: &Origin, raw: &RawIdentity, p: &crate::scenario::raw::RawPool) -> Vec<ClientCert> {
    if raw.cert.is_some() || raw.key.is_some() {
        cx.at(o, "pool", "give either `cert`/`key` or a `pool`, not both");
        return Vec::new();
    }
    let given = usize::from(!p.members.is_empty()) + usize::from(p.glob.is_some()) + usize::from(p.mint.is_some());
    if given != 1 {
        cx.at(o, "pool", "a pool is one of `members: [{cert, key}, …]`, `glob: \"dir/alice-*.pem\"` or `mint: {count, ca_cert, ca_key, subject}`");
        return Vec::new();
    }
    let mut out = Vec::new();
    for (i, m) in p.members.iter().enumerate() {
        if let Some(c) =
            cert_and_key(cx, o, &format!("pool.members[{i}].cert"), &m.cert, &format!("pool.members[{i}].key"), &m.key)
        {
            out.push(c);
        }
    }
    if let Some(g) = &p.glob {
        let pattern = cx.file(o, g);
        let (dir, name) = (
            pattern.parent().map(Path::to_path_buf).unwrap_or_default(),
            pattern.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        );
        let mut certs: Vec<PathBuf> = match std::fs::read_dir(&dir) {
            Ok(rd) => rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.file_name().is_some_and(|n| wildcard(&name, &n.to_string_lossy())))
                .collect(),
            Err(e) => {
                cx.at(o, "pool.glob", format!("cannot list `{}`: {e}", dir.display()));
                return Vec::new();
            }
        };
        certs.sort();
        if certs.is_empty() {
            cx.at(o, "pool.glob", format!("`{}` matches no file", pattern.display()));
        }
        for c in certs {
            let key = c.with_extension("key");
            let (cs, ks) = (c.display().to_string(), key.display().to_string());
            if let Some(cc) = cert_and_key(cx, o, "pool.glob", &cs, "pool.glob", &ks) {
                out.push(cc);
            }
        }
    }
    if let Some(m) = &p.mint {
        if m.count == 0 || m.count > MAX_POOL {
            cx.at(o, "pool.mint.count", format!("`{}`: mint between 1 and {MAX_POOL} members", m.count));
            return Vec::new();
        }
        let subject = match crate::tls::pki::parse_subject(&m.subject) {
            Ok(s) => s,
            Err(e) => {
                cx.at(o, "pool.mint.subject", format!("{e}: write e.g. `CN=alice-{{n}},OU=eng`"));
                return Vec::new();
            }
        };
        if !m.subject.contains("{n}") {
            cx.warn(o, "pool.mint.subject", "no `{n}` in the subject: every member gets the same name");
        }
        let (Some((_, ca)), Some((_, key))) =
            (cx.read(o, "pool.mint.ca_cert", &m.ca_cert), cx.read(o, "pool.mint.ca_key", &m.ca_key))
        else {
            return Vec::new();
        };
        match crate::tls::pki::mint_clients(
            &String::from_utf8_lossy(&ca),
            &String::from_utf8_lossy(&key),
            &subject,
            m.count,
        ) {
            Ok(minted) => out.extend(minted.into_iter().map(|(c, k)| ClientCert { chain: vec![c], key: k })),
            Err(e) => cx.at(o, "pool.mint", e),
        }
    }
    out
}

/// `*` matches any run of characters (the only wildcard a pool's glob has).
fn wildcard(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || !name[first.len()..].ends_with(last) || name.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

fn client_cert(cx: &mut Ctx<'_>, o: &Origin, raw: &RawIdentity) -> Option<ClientCert> {
    let (cert, key) = match (&raw.cert, &raw.key) {
        (None, None) => return None,
        (Some(c), Some(k)) => (c, k),
        (Some(_), None) => {
            cx.at(o, "cert", "a client certificate needs its private key: add `key:`");
            return None;
        }
        (None, Some(_)) => {
            cx.at(o, "key", "a private key needs its certificate: add `cert:`");
            return None;
        }
    };
    cert_and_key(cx, o, "cert", cert, "key", key)
}

/// Reads and parses a PEM certificate chain and its key; problems are reported at `csub` and
/// `ksub`.
fn cert_and_key(cx: &mut Ctx<'_>, o: &Origin, csub: &str, cert: &str, ksub: &str, key: &str) -> Option<ClientCert> {
    let (cpath, cbytes) = cx.read(o, csub, cert)?;
    let (kpath, kbytes) = cx.read(o, ksub, key)?;
    let chain: Vec<CertificateDer<'static>> = match CertificateDer::pem_slice_iter(&cbytes).collect() {
        Ok(c) => c,
        Err(e) => {
            cx.at(o, csub, format!("`{}` is not a PEM certificate: {e}", cpath.display()));
            return None;
        }
    };
    if chain.is_empty() {
        cx.at(o, csub, format!("`{}` holds no PEM certificate", cpath.display()));
        return None;
    }
    match PrivateKeyDer::from_pem_slice(&kbytes) {
        Ok(key) => Some(ClientCert { chain, key }),
        Err(e) => {
            cx.at(o, ksub, format!("`{}` is not a PEM private key: {e}", kpath.display()));
            None
        }
    }
}

fn claim(cx: &mut Ctx<'_>, o: &Origin, sub: &str, v: &Value) -> Option<Claim> {
    if let Value::String(s) = v {
        if let Some(r) = units::relative_secs(s) {
            return match r {
                Ok(secs) => Some(Claim::Relative(secs)),
                Err(e) => {
                    cx.at(o, sub, e);
                    None
                }
            };
        }
    }
    match serde_json::to_value(v) {
        Ok(j) => Some(Claim::Json(j)),
        Err(e) => {
            cx.at(o, sub, format!("cannot be a JSON claim: {e}"));
            None
        }
    }
}

fn token(cx: &mut Ctx<'_>, o: &Origin, t: &RawToken) -> Option<Token> {
    let header = match &t.header {
        None => HeaderName::from_static("authorization"),
        Some(h) => match HeaderName::from_str(h) {
            Ok(n) => n,
            Err(_) => {
                cx.at(o, "token.header", format!("`{h}` is not a valid header name"));
                return None;
            }
        },
    };
    let scheme = t.scheme.clone().unwrap_or_else(|| "Bearer".into());
    let source = match (&t.static_value, &t.jwt) {
        (Some(s), None) => TokenSource::Static(s.clone()),
        (None, Some(j)) => {
            let Some(alg) = &j.alg else {
                cx.at(o, "token.jwt", format!("missing `alg:` (one of {})", auth::ALGORITHMS.join(", ")));
                return None;
            };
            if !alg.eq_ignore_ascii_case("none") && !auth::ALGORITHMS.contains(&alg.as_str()) {
                let hint = units::suggest(alg, auth::ALGORITHMS.iter().copied())
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                cx.at(o, "token.jwt.alg", format!("unknown algorithm `{alg}`{hint}"));
                return None;
            }
            let key = match &j.key {
                Some(k) => Some(cx.read(o, "token.jwt.key", k)?.1),
                None => None,
            };
            let mut claims = Vec::new();
            for (k, v) in &j.claims {
                claims.push((k.clone(), claim(cx, o, &format!("token.jwt.claims.{k}"), v)?));
            }
            let mut tamper = Vec::new();
            for (k, v) in &j.tamper {
                tamper.push((k.clone(), claim(cx, o, &format!("token.jwt.tamper.{k}"), v)?));
            }
            let corrupt = match &j.corrupt {
                None => None,
                Some(c) => match Corrupt::parse(c) {
                    Some(c) => Some(c),
                    None => {
                        cx.at(
                            o,
                            "token.jwt.corrupt",
                            format!("`{c}` is not a corruption: use `signature` or `strip_signature`"),
                        );
                        return None;
                    }
                },
            };
            match JwtSpec::new(alg, key.as_deref(), j.kid.clone(), j.typ.clone(), claims, tamper, corrupt) {
                Ok(spec) => TokenSource::Jwt(spec),
                Err(e) => {
                    cx.at(o, "token.jwt.key", e.to_string());
                    return None;
                }
            }
        }
        (Some(_), Some(_)) => {
            cx.at(o, "token", "give either `static:` or `jwt:`, not both");
            return None;
        }
        (None, None) => {
            cx.at(o, "token", "a token needs `static:` or `jwt:`");
            return None;
        }
    };
    Some(Token { header, scheme, source })
}

/// Statuses an allow-class check treats as refusals: the profile's deny statuses and the
/// universal ones.
fn refusals(profile: &Profile) -> Vec<u16> {
    let mut r = profile.deny_status.clone();
    for s in crate::conformance::REFUSALS {
        if !r.contains(&s) {
            r.push(s);
        }
    }
    r
}

/// `{limit: {requests, per, tolerance, burst, drive}}` (requests and per default to the
/// profile's `rate_limit`).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimitExpect {
    requests: Option<u32>,
    per: Option<String>,
    tolerance: Option<Value>,
    burst: Option<u32>,
    drive: Option<f64>,
}

/// A fraction from `10%` or `0.1` (`what` names it in errors); within `0..=max`.
fn fraction(v: &Value, max: f64) -> Result<f64, String> {
    let f = match v {
        Value::Number(n) => n.as_f64().ok_or("not a number")?,
        Value::String(s) => match s.trim().strip_suffix('%') {
            Some(p) => p.trim().parse::<f64>().map_err(|_| format!("`{s}` is not a percentage"))? / 100.0,
            None => s.trim().parse::<f64>().map_err(|_| format!("`{s}` is not a fraction or a percentage"))?,
        },
        _ => return Err("write a percentage (`10%`) or a fraction (`0.1`)".into()),
    };
    if f.is_finite() && (0.0..=max).contains(&f) {
        Ok(f)
    } else {
        Err(format!("must be between 0% and {}%", max * 100.0))
    }
}

fn limit_expect(cx: &mut Ctx<'_>, o: &Origin, raw: &RawLimitExpect, profile: &Profile) -> Option<Expect> {
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

fn expect(cx: &mut Ctx<'_>, o: &Origin, v: Option<&Value>, profile: &Profile) -> Option<Expect> {
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

fn resolve_checks(
    cx: &mut Ctx<'_>,
    m: &Merged,
    profile: &Profile,
    target: Option<&Target>,
    identities: &[Identity],
) -> Vec<Check> {
    let mut out: Vec<Check> = Vec::new();
    if m.checks.is_empty() {
        cx.at(&Origin { file: 0, path: String::new() }, "checks", "no `checks:`: a scenario needs at least one check");
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
        let identity = match &c.identity {
            None => {
                cx.at(o, "", "missing `identity:` (the name of an entry under `identities:`)");
                None
            }
            Some(n) => match names.iter().position(|x| x == n) {
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
            let sent_by_identity = c
                .identity
                .as_ref()
                .and_then(|n| identities.iter().find(|i| &i.name == n))
                .map(|i| i.headers.as_slice())
                .unwrap_or_default();
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
        known_features(cx, o, "requires", &c.requires);
        let out_of_scope = profile.features.as_ref().and_then(|claimed| {
            let missing: Vec<&str> = c.requires.iter().filter(|r| !claimed.contains(r)).map(String::as_str).collect();
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
            });
        }
    }
    out
}

fn request(
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
fn expand_routes(p: &str, profile: &Profile) -> Result<String, String> {
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

fn resolve_phases(cx: &mut Ctx<'_>, m: &Merged, checks: &[Check]) -> Vec<Phase> {
    let mut out: Vec<Phase> = Vec::new();
    if m.phases.is_empty() {
        cx.at(
            &Origin { file: 0, path: String::new() },
            "phases",
            "no `phases:`: add e.g. `- {name: main, duration: 30s, rate: 100/s}`",
        );
    }
    for (p, o) in &m.phases {
        let name = p.name.clone().unwrap_or_else(|| format!("phase{}", out.len() + 1));
        if !valid_name(&name) {
            cx.at(o, "name", format!("`{name}` is not a valid phase name"));
        }
        if out.iter().any(|x| x.name == name) {
            cx.at(o, "name", format!("phase name `{name}` is used twice"));
        }
        let duration = p.duration.as_ref().and_then(|d| match units::duration(d) {
            Ok(d) if !d.is_zero() => Some(d),
            Ok(_) => {
                cx.at(o, "duration", "a phase duration must be greater than zero");
                None
            }
            Err(e) => {
                cx.at(o, "duration", e);
                None
            }
        });
        if p.duration.is_none() && p.requests.is_none() {
            cx.at(o, "", "a phase needs `duration:` and/or `requests:` to end");
        }
        if p.requests == Some(0) {
            cx.at(o, "requests", "must be at least 1");
        }
        let load = match (&p.rate, p.users) {
            (Some(_), Some(_)) => {
                cx.at(o, "users", "give `rate:` (open loop) or `users:` (closed loop), not both");
                None
            }
            (None, None) => {
                cx.at(o, "", "a phase needs `rate:` (e.g. `500/s`) or `users:` (e.g. `10`)");
                None
            }
            (None, Some(0)) => {
                cx.at(o, "users", "must be at least 1");
                None
            }
            (None, Some(u)) => Some(Load::Closed { users: u }),
            (Some(Value::String(s)), None) => match units::rate(s) {
                Ok(r) => Some(Load::Constant(r)),
                Err(e) => {
                    cx.at(o, "rate", e);
                    None
                }
            },
            (Some(Value::Mapping(map)), None) => {
                let get = |k: &str| map.get(k).and_then(Value::as_str).map(units::rate);
                match (get("from"), get("to"), map.len()) {
                    (Some(Ok(from)), Some(Ok(to)), 2) => {
                        if p.duration.is_none() {
                            cx.at(o, "rate", "a ramp needs the phase `duration:` it ramps over");
                        }
                        Some(Load::Ramp { from, to })
                    }
                    (Some(Err(e)), _, _) | (_, Some(Err(e)), _) => {
                        cx.at(o, "rate", e);
                        None
                    }
                    _ => {
                        cx.at(o, "rate", "a ramp is `{from: 100/s, to: 1000/s}`");
                        None
                    }
                }
            }
            (Some(_), None) => {
                cx.at(o, "rate", "a rate is `500/s` or a ramp `{from: 100/s, to: 1000/s}`");
                None
            }
        };
        let mix = mix(cx, o, p.mix.as_ref(), checks);
        if mix.is_empty() && !checks.is_empty() && checks.iter().any(|c| c.out_of_scope.is_some()) {
            cx.at(o, "mix", "every check this phase would send is outside the profile's declared `features`");
        }
        let network = p.network.as_ref().and_then(|n| network(cx, o, &name, n));
        if let Some(load) = load {
            out.push(Phase { name, duration, requests: p.requests, load, mix, network });
        }
    }
    out
}

fn network(cx: &mut Ctx<'_>, o: &Origin, phase: &str, n: &RawNetwork) -> Option<Network> {
    let impairment = impairment(cx, o, "network", n)?;
    Some(Network { name: n.name.clone().unwrap_or_else(|| phase.to_string()), impairment })
}

/// The impairment a `network:` (phase) or `apply:` (event) block describes; `at` is its key.
fn impairment(cx: &mut Ctx<'_>, o: &Origin, at: &str, n: &RawNetwork) -> Option<crate::netem::Impairment> {
    let mut ok = true;
    let mut dur = |cx: &mut Ctx<'_>, key: &str, v: &Option<String>| match v.as_deref().map(units::duration) {
        None => None,
        Some(Ok(d)) => Some(d),
        Some(Err(e)) => {
            cx.at(o, &format!("{at}.{key}"), e);
            ok = false;
            None
        }
    };
    let latency = dur(cx, "latency", &n.latency).unwrap_or_default();
    let jitter = dur(cx, "jitter", &n.jitter).unwrap_or_default();
    let slice_delay = dur(cx, "slice_delay", &n.slice_delay).unwrap_or_default();
    let reset_after = dur(cx, "reset_after", &n.reset_after);
    let slow_close = dur(cx, "slow_close", &n.slow_close);
    let distribution = match n.distribution.as_deref() {
        None => crate::netem::Distribution::Uniform,
        Some(d) => crate::netem::Distribution::parse(d).unwrap_or_else(|| {
            cx.at(
                o,
                &format!("{at}.distribution"),
                format!("`{d}` is not a distribution: use uniform, normal or pareto"),
            );
            ok = false;
            crate::netem::Distribution::Uniform
        }),
    };
    let bandwidth = match n.bandwidth.as_deref().map(crate::netem::parse_bandwidth) {
        None => None,
        Some(Ok(b)) => Some(b),
        Some(Err(e)) => {
            cx.at(o, &format!("{at}.bandwidth"), e);
            ok = false;
            None
        }
    };
    if n.slice == Some(0) {
        cx.at(o, &format!("{at}.slice"), "a slice is at least 1 byte");
        ok = false;
    }
    if n.slice_delay.is_some() && n.slice.is_none() {
        cx.at(o, &format!("{at}.slice_delay"), "`slice_delay:` needs `slice:` (the segment size in bytes)");
        ok = false;
    }
    let loss = match n.loss.as_deref().map(crate::netem::udp::Loss::parse) {
        None => None,
        Some(Ok(crate::netem::udp::Loss::Bernoulli(p))) => Some(p),
        Some(Ok(_)) => {
            cx.at(
                o,
                &format!("{at}.loss"),
                "bursty (`ge:`) loss applies to UDP links only; give a probability, e.g. `2%`",
            );
            ok = false;
            None
        }
        Some(Err(e)) => {
            cx.at(o, &format!("{at}.loss"), e);
            ok = false;
            None
        }
    };
    let impairment = crate::netem::Impairment {
        loss,
        latency,
        jitter,
        distribution,
        seed: n.seed.unwrap_or(1),
        bandwidth,
        slice: n.slice.map(|s| (s, slice_delay)),
        reset_after_bytes: n.reset_after_bytes,
        limit_bytes: n.limit_bytes,
        slow_close,
        reset_after,
        blackhole: n.blackhole.unwrap_or(false),
        refuse: n.refuse.unwrap_or(false),
    };
    ok.then_some(impairment)
}

fn resolve_dependencies(cx: &mut Ctx<'_>, m: &Merged) -> Vec<Dependency> {
    let mut out = Vec::new();
    for (name, d, o) in &m.dependencies {
        if !valid_name(name) || name == CLIENT_LINK {
            cx.at(
                o,
                "",
                format!("`{name}` cannot name a dependency: use letters, digits, `-`, `_`, `.` (not `client`)"),
            );
            continue;
        }
        let listen = match d.listen.as_deref().map(str::parse::<std::net::SocketAddr>) {
            Some(Ok(a)) => Some(a),
            Some(Err(_)) => {
                cx.at(o, "listen", "not an address: write e.g. `127.0.0.1:9101` (where the gateway calls it)");
                None
            }
            None => {
                cx.at(o, "", "missing `listen:` (the address the gateway calls, e.g. `127.0.0.1:9101`)");
                None
            }
        };
        let behind = match (&d.upstream, d.serve.as_deref()) {
            (Some(_), Some(_)) => {
                cx.at(o, "serve", "give `upstream:` (an existing service) or `serve:` (a built-in one), not both");
                None
            }
            (None, None) => {
                cx.at(o, "", "missing `upstream: host:port` or `serve: authz | jwks` (what the link forwards to)");
                None
            }
            (Some(u), None) => {
                if u.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok()) {
                    Some(Behind::Upstream(u.clone()))
                } else {
                    cx.at(o, "upstream", format!("`{u}` is not `host:port`"));
                    None
                }
            }
            (None, Some("authz")) => match &d.policy {
                None => {
                    cx.at(o, "", "`serve: authz` needs `policy:` (a gateway config whose `routes:` it decides by)");
                    None
                }
                Some(p) => {
                    let path = cx.file(o, p);
                    match crate::gateway::Config::load(&path) {
                        Ok(c) => Some(Behind::Authz(c.policy_routes())),
                        Err(e) => {
                            cx.at(o, "policy", e.to_string());
                            None
                        }
                    }
                }
            },
            (None, Some("jwks")) => match &d.file {
                None => {
                    cx.at(o, "", "`serve: jwks` needs `file:` (the JWKS document to serve, e.g. certs/jwks.json)");
                    None
                }
                Some(f) => cx.read(o, "file", f).map(|(_, b)| Behind::Jwks(bytes::Bytes::from(b))),
            },
            (None, Some(other)) => {
                cx.at(o, "serve", format!("`{other}` is not a built-in service: use `authz` or `jwks`"));
                None
            }
        };
        if let (Some(listen), Some(behind)) = (listen, behind) {
            out.push(Dependency { name: name.clone(), listen, behind });
        }
    }
    out
}

fn resolve_backend(
    cx: &mut Ctx<'_>,
    m: &Merged,
    phases: &[Phase],
    events: &[Event],
    target: Option<&Target>,
) -> Backend {
    let backend = match &m.network {
        None => Backend::User,
        Some((n, o)) => match n.backend.as_deref() {
            None | Some("user") => Backend::User,
            Some("kernel") => Backend::Kernel,
            Some(other) => {
                cx.at(o, "backend", format!("`{other}` is not a backend: use `user` (default) or `kernel`"));
                Backend::User
            }
        },
    };
    // Real packet loss needs real packets: the kernel backend, or datagrams (an h3 target's
    // client link is the UDP link); only on the client link.
    let quic = target.is_some_and(|t| t.protocol == ProtocolKind::H3);
    if backend == Backend::Kernel && quic {
        if let Some((_, o)) = &m.network {
            cx.at(
                o,
                "backend",
                "the kernel backend shapes TCP; an h3 target's client link is the UDP link (loss, delay) already",
            );
        }
    }
    for ((_, o), phase) in m.phases.iter().zip(phases) {
        if backend == Backend::User && !quic && phase.network.as_ref().is_some_and(|n| n.impairment.loss.is_some()) {
            cx.at(o, "network.loss", LOSS_NEEDS_KERNEL);
        }
    }
    for (e, o) in &m.events {
        let Some(ev) = events.iter().find(|x| Some(&x.name) == e.name.as_ref()) else { continue };
        if ev.impairment.loss.is_some() {
            if ev.link != CLIENT_LINK {
                cx.at(o, "apply.loss", "packet loss applies to the client link only (the kernel backend)");
            } else if backend == Backend::User && !quic {
                cx.at(o, "apply.loss", LOSS_NEEDS_KERNEL);
            }
        }
    }
    backend
}

const LOSS_NEEDS_KERNEL: &str = "a user-space TCP link cannot lose packets (the kernel retransmits them): set \
                                 `network: { backend: kernel }` (root, with ip, tc and nft) for real packet loss";

fn resolve_events(cx: &mut Ctx<'_>, m: &Merged, deps: &[Dependency], phases: &[Phase]) -> Vec<Event> {
    let mut out: Vec<(Event, Origin)> = Vec::new();
    for (e, o) in &m.events {
        let name = match &e.name {
            Some(n) if valid_name(n) => Some(n.clone()),
            Some(n) => {
                cx.at(o, "name", format!("`{n}` is not a valid name: use letters, digits, `-`, `_` and `.`"));
                None
            }
            None => {
                cx.at(o, "", "missing `name:` (it labels every request sent while the event is in force)");
                None
            }
        };
        if let Some(n) = &name {
            if out.iter().any(|(x, _)| x.name == *n)
                || phases.iter().any(|p| p.network.as_ref().is_some_and(|c| c.name == *n))
                || n == crate::plan::UNIMPAIRED
            {
                cx.at(o, "name", format!("`{n}` already names another condition: every condition needs its own name"));
            }
        }
        let req = |cx: &mut Ctx<'_>, key: &str, v: &Option<String>, zero_ok: bool| match v.as_deref() {
            None => {
                cx.at(o, "", format!("missing `{key}:` (e.g. `{key}: 10s`)"));
                None
            }
            Some(s) => match units::duration(s) {
                Ok(d) if d.is_zero() && !zero_ok => {
                    cx.at(o, key, "must be greater than zero");
                    None
                }
                Ok(d) => Some(d),
                Err(err) => {
                    cx.at(o, key, err);
                    None
                }
            },
        };
        let at = req(cx, "at", &e.at, true);
        let duration = req(cx, "for", &e.for_, false);
        let link = e.link.clone().unwrap_or_else(|| CLIENT_LINK.to_string());
        if link != CLIENT_LINK && !deps.iter().any(|d| d.name == link) {
            let known: Vec<&str> =
                std::iter::once(CLIENT_LINK).chain(m.dependencies.iter().map(|(n, _, _)| n.as_str())).collect();
            let hint = units::suggest(&link, known.iter().copied()).map(|s| format!(" (did you mean `{s}`?)"));
            cx.at(
                o,
                "link",
                format!(
                    "no link `{link}`: use `client` or a name under `dependencies:` ({}){}",
                    known.join(", "),
                    hint.unwrap_or_default()
                ),
            );
        }
        let impairment = match &e.apply {
            None => {
                cx.at(o, "", "missing `apply:` (what the link does, e.g. `{latency: 80ms}` or `{blackhole: true}`)");
                None
            }
            Some(a) => {
                if a.name.is_some() {
                    cx.at(o, "apply.name", "the condition's name is the event's `name:`, not inside `apply:`");
                }
                impairment(cx, o, "apply", a)
            }
        };
        let outage = e.outage.as_ref().and_then(|oa| {
            if oa.status.is_empty() {
                cx.at(o, "outage", "give the statuses a conforming gateway answers, e.g. `{status: [503]}`");
                return None;
            }
            if let Some(bad) = oa.status.iter().find(|s| !(100..=599).contains(*s)) {
                cx.at(o, "outage.status", format!("{bad} is not an HTTP status"));
                return None;
            }
            if let Some(ok) = oa.status.iter().find(|s| (200..300).contains(*s)) {
                cx.at(o, "outage.status", format!("{ok} is a success, not a refusal: an outage never excuses a 2xx"));
                return None;
            }
            let grace = match oa.grace.as_deref().or(Some(DEFAULT_GRACE)).map(units::duration) {
                None => Duration::from_secs(2),
                Some(Ok(g)) => g,
                Some(Err(err)) => {
                    cx.at(o, "outage.grace", err);
                    return None;
                }
            };
            Some(Outage { statuses: oa.status.clone(), grace })
        });
        if let (Some(name), Some(at), Some(duration), Some(impairment)) = (name, at, duration, impairment) {
            out.push((Event { name, at, duration, link, impairment, outage }, o.clone()));
        }
    }
    out.sort_by_key(|(e, _)| e.at);
    for w in out.windows(2) {
        let (a, b) = (&w[0].0, &w[1].0);
        let end = a.at + a.duration + a.outage.as_ref().map_or(Duration::ZERO, |x| x.grace);
        if b.at < end {
            cx.at(
                &w[1].1,
                "at",
                format!(
                    "overlaps event `{}` (in force until {:?}, grace included): events may not overlap, since each \
                     request is labelled with one condition",
                    a.name, end
                ),
            );
        }
    }
    out.into_iter().map(|(e, _)| e).collect()
}

fn mix(cx: &mut Ctx<'_>, o: &Origin, v: Option<&Value>, checks: &[Check]) -> Vec<(usize, f64)> {
    let in_scope = |i: &usize| checks[*i].out_of_scope.is_none();
    let all = || (0..checks.len()).filter(in_scope).map(|i| (i, 1.0)).collect::<Vec<_>>();
    let mut entries: Vec<(String, f64, String)> = Vec::new();
    match v {
        None => return all(),
        Some(Value::String(s)) if s == "all" => return all(),
        Some(Value::Sequence(seq)) => {
            for (i, item) in seq.iter().enumerate() {
                match item.as_str() {
                    Some(s) => entries.push((s.to_string(), 1.0, format!("mix[{i}]"))),
                    None => cx.at(o, &format!("mix[{i}]"), "expected a check id or `tag:NAME`"),
                }
            }
        }
        Some(Value::Mapping(map)) => {
            for (k, w) in map {
                let key = k.as_str().unwrap_or("?").to_string();
                let at = format!("mix.{key}");
                match w.as_f64() {
                    Some(w) if w > 0.0 && w.is_finite() => entries.push((key, w, at)),
                    _ => cx.at(o, &at, "a weight must be a number greater than zero"),
                }
            }
        }
        Some(_) => {
            cx.at(o, "mix", "a mix is `all`, a list of check ids, or a map of check id (or `tag:NAME`) to weight");
            return Vec::new();
        }
    }
    let mut out: Vec<(usize, f64)> = Vec::new();
    for (key, w, at) in entries {
        let members: Vec<usize> = if let Some(tag) = key.strip_prefix("tag:") {
            checks.iter().enumerate().filter(|(_, c)| c.tags.iter().any(|t| t == tag)).map(|(i, _)| i).collect()
        } else {
            checks.iter().position(|c| c.id == key).into_iter().collect()
        };
        if members.is_empty() {
            let hint = units::suggest(&key, checks.iter().map(|c| c.id.as_str()))
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            cx.at(o, &at, format!("`{key}` matches no check{hint}"));
            continue;
        }
        // Checks outside the profile's declared scope are not sent: the entry's weight goes
        // to the others it names (none left: the entry sends nothing).
        let members: Vec<usize> = members.into_iter().filter(in_scope).collect();
        if members.is_empty() {
            continue;
        }
        let share = w / members.len() as f64;
        for i in members {
            match out.iter_mut().find(|(j, _)| *j == i) {
                Some(e) => e.1 += share,
                None => out.push((i, share)),
            }
        }
    }
    out
}

/// A `limit` check is judged only where it is sent faster than its limit: warn about a
/// scenario whose open-loop phases never send it at `drive` × the limit (it would come out
/// inconclusive; closed-loop rates are not known up front and are judged as measured).
fn check_limit_drive(cx: &mut Ctx<'_>, m: &Merged, checks: &[Check], phases: &[Phase]) {
    if checks.len() != m.checks.len() {
        return; // earlier problems already; indices would not line up
    }
    for (ci, c) in checks.iter().enumerate() {
        let Expect::Limit(l) = &c.expect else { continue };
        let limit = f64::from(l.requests) / l.per.as_secs_f64();
        let mut best: Option<(f64, &str)> = None;
        let mut unknown = false;
        for p in phases {
            let total: f64 = p.mix.iter().map(|(_, w)| w).sum();
            let Some((_, w)) = p.mix.iter().find(|(i, _)| *i == ci) else { continue };
            let Some(rate) = peak_rate(p) else {
                unknown = true;
                continue;
            };
            let share = if total > 0.0 { rate * w / total } else { 0.0 };
            if best.is_none_or(|(b, _)| share > b) {
                best = Some((share, p.name.as_str()));
            }
        }
        if let (Some((rate, phase)), false) = (best, unknown) {
            if rate < limit * l.drive * (1.0 - 1e-9) {
                cx.warn(
                    &m.checks[ci].1,
                    "expect",
                    format!(
                        "check {} is sent at most {rate:.1}/s (in phase `{phase}`), but its limit is {limit:.1}/s: \
                         a limiter is tested by sending at `drive` ({}) × the limit = {:.1}/s or more — raise its share \
                         of the mix or the phase rate (as it is, the check will be inconclusive)",
                        c.id,
                        l.drive,
                        limit * l.drive
                    ),
                );
            }
        }
    }
}

/// The highest rate an open-loop phase offers (`None` for closed loop).
fn peak_rate(p: &Phase) -> Option<f64> {
    match p.load {
        Load::Constant(r) => Some(r),
        Load::Ramp { from, to } => Some(from.max(to)),
        Load::Closed { .. } => None,
    }
}

/// Warns when one credential's legitimate traffic (allow and deny checks; `limit` checks
/// exceed on purpose) would exceed the profile's `client_rate_limit` in some open-loop phase:
/// the gateway would answer 429 and a correct gateway would look like it falsely denies.
fn check_credential_rates(
    cx: &mut Ctx<'_>,
    m: &Merged,
    profile: &Profile,
    identities: &[Identity],
    checks: &[Check],
    phases: &[Phase],
) {
    let Some((requests, per)) = profile.client_rate_limit else { return };
    let limit = f64::from(requests) / per.as_secs_f64();
    for (ii, id) in identities.iter().enumerate() {
        let worst = phases
            .iter()
            .filter_map(|p| {
                let total: f64 = p.mix.iter().map(|(_, w)| w).sum();
                let rate = peak_rate(p)?;
                let mine: f64 = p
                    .mix
                    .iter()
                    .filter(|(c, _)| {
                        checks.get(*c).is_some_and(|c| c.identity == ii && !matches!(c.expect, Expect::Limit(_)))
                    })
                    .map(|(_, w)| w)
                    .sum();
                (total > 0.0).then(|| (rate * mine / total / id.members() as f64, p.name.as_str()))
            })
            .max_by(|a, b| a.0.total_cmp(&b.0));
        let Some((rate, phase)) = worst else { continue };
        if rate > limit {
            let Some((_, _, o)) = m.identities.iter().find(|(n, _, _)| *n == id.name) else { continue };
            let need = (rate * id.members() as f64 / limit).ceil() as u64;
            cx.warn(
                o,
                "",
                format!(
                    "identity `{}` sends about {rate:.1}/s per credential in phase `{phase}`, above the profile's \
                     client_rate_limit ({requests} per {per:?}): a correct gateway will answer 429 to legitimate \
                     requests — bind a pool of at least {need} credentials (`pool: {{mint: {{count: {need}, …}}}}`)",
                    id.name
                ),
            );
        }
    }
}

fn resolve_thresholds(cx: &mut Ctx<'_>, m: &Merged, phases: &[Phase], checks: &[Check]) -> Vec<Threshold> {
    let pn: Vec<&str> = phases.iter().map(|p| p.name.as_str()).collect();
    let cn: Vec<&str> = checks.iter().map(|c| c.id.as_str()).collect();
    let mut out = Vec::new();
    for (t, o) in &m.thresholds {
        match threshold::parse(t, &pn, &cn) {
            Ok(th) => out.push(th),
            Err(e) => cx.at(o, "", e),
        }
    }
    out
}

/// The merged scenario as one YAML document, file paths made absolute.
fn resolved_yaml(sources: &[Source], m: &Merged) -> String {
    let abs = |o: &Origin, p: &str| -> String {
        let path = Path::new(p);
        let full = if path.is_absolute() { path.to_path_buf() } else { sources[o.file].dir().join(path) };
        std::path::absolute(&full).unwrap_or(full).display().to_string()
    };
    let mut doc = RawDoc {
        gauntlet: m.gauntlet.as_ref().map(|g| g.0),
        name: m.name.as_ref().map(|n| n.0.clone()),
        description: m.description.clone(),
        seed: m.seed,
        ..Default::default()
    };
    if let Some((t, o)) = &m.target {
        let mut t = t.clone();
        t.ca = t.ca.map(|c| abs(o, &c));
        doc.target = Some(t);
    }
    doc.profile = m.profile.as_ref().map(|p| p.0.clone());
    doc.oracle = m.oracle.as_ref().map(|o| o.0.clone());
    for (name, ident, o) in &m.identities {
        let mut i = ident.clone();
        i.cert = i.cert.map(|c| abs(o, &c));
        i.key = i.key.map(|c| abs(o, &c));
        if let Some(p) = &mut i.pool {
            for m in &mut p.members {
                (m.cert, m.key) = (abs(o, &m.cert), abs(o, &m.key));
            }
            p.glob = p.glob.as_ref().map(|g| abs(o, g));
            if let Some(m) = &mut p.mint {
                (m.ca_cert, m.ca_key) = (abs(o, &m.ca_cert), abs(o, &m.ca_key));
            }
        }
        if let Some(t) = &mut i.token {
            if t.static_value.is_some() {
                t.static_value = Some("REDACTED".into());
            }
            if let Some(j) = &mut t.jwt {
                j.key = j.key.as_ref().map(|k| abs(o, k));
            }
        }
        for (k, v) in i.headers.iter_mut() {
            if is_secret_header(k) {
                *v = "REDACTED".into();
            }
        }
        doc.identities.insert(name.clone(), i);
    }
    doc.checks = m
        .checks
        .iter()
        .map(|(c, _)| {
            let mut c = c.clone();
            if let Some(r) = &mut c.request {
                for (k, v) in r.headers.iter_mut() {
                    if is_secret_header(k) {
                        *v = "REDACTED".into();
                    }
                }
            }
            c
        })
        .collect();
    doc.phases = m.phases.iter().map(|(p, _)| p.clone()).collect();
    doc.thresholds = m.thresholds.iter().map(|(t, _)| t.clone()).collect();
    doc.error_budget = m.error_budget.as_ref().map(|(b, _)| b.clone());
    doc.dependencies = m
        .dependencies
        .iter()
        .map(|(n, d, o)| {
            let mut d = d.clone();
            d.policy = d.policy.map(|p| abs(o, &p));
            d.file = d.file.map(|f| abs(o, &f));
            (n.clone(), d)
        })
        .collect();
    doc.events = m.events.iter().map(|(e, _)| e.clone()).collect();
    doc.network = m.network.as_ref().map(|(n, _)| n.clone());
    let body = serde_yaml::to_string(&doc).unwrap_or_default();
    format!("# Resolved by gauntlet: includes merged, paths absolute, secrets redacted.\n{body}")
}

pub use crate::conformance::is_secret_header;
