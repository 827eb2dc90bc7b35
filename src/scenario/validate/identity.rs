//! `identities:` — credentials: client certificates, pools, tokens.

use super::*;

pub(super) fn resolve_identities(cx: &mut Ctx<'_>, m: &Merged) -> Vec<Identity> {
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
            group: name.clone(),
        });
    }
    out
}

/// Most members a pool may have.
pub(super) const MAX_POOL: u32 = 10_000;

/// `pool:` — exactly one of `members`, `glob` or `mint`; not together with `cert`/`key`.
pub(super) fn pool(
    cx: &mut Ctx<'_>,
    o: &Origin,
    raw: &RawIdentity,
    p: &crate::scenario::raw::RawPool,
) -> Vec<ClientCert> {
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
        let certs = match glob_files(&pattern) {
            Ok(c) => c,
            Err(e) => {
                let dir = pattern.parent().map(Path::to_path_buf).unwrap_or_default();
                cx.at(o, "pool.glob", format!("cannot list `{}`: {e}", dir.display()));
                return Vec::new();
            }
        };
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
pub(super) fn wildcard(pattern: &str, name: &str) -> bool {
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

pub(super) fn client_cert(cx: &mut Ctx<'_>, o: &Origin, raw: &RawIdentity) -> Option<ClientCert> {
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
pub(super) fn cert_and_key(
    cx: &mut Ctx<'_>,
    o: &Origin,
    csub: &str,
    cert: &str,
    ksub: &str,
    key: &str,
) -> Option<ClientCert> {
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
        // The check a run makes when it builds the identity's TLS config, made here so that
        // `validate` refuses what `run` would (a certificate with another identity's key).
        Ok(key) => match crate::tls::client_config(&[], Some((&chain, &key)), &[]) {
            Ok(_) => Some(ClientCert { chain, key }),
            Err(e) => {
                cx.at(
                    o,
                    ksub,
                    format!(
                        "`{}` cannot be used with the certificate `{}`: {e} (is it another identity's key?)",
                        kpath.display(),
                        cpath.display()
                    ),
                );
                None
            }
        },
        Err(e) => {
            cx.at(o, ksub, format!("`{}` is not a PEM private key: {e}", kpath.display()));
            None
        }
    }
}

/// Claims that hold a NumericDate.
const TIME_CLAIMS: &[&str] = &["exp", "nbf", "iat", "auth_time"];

/// One claim: a relative time (`+5m`, `-1h`, `now`) becomes a NumericDate; `{raw: VALUE}`
/// is VALUE exactly as written (a deliberately malformed claim for a negative test); any other
/// value is literal JSON. A time claim's string that is not a relative time, or any string
/// written like one (`+banana`), is an error: it would be minted literally and test something
/// other than what was meant.
pub(super) fn claim(cx: &mut Ctx<'_>, o: &Origin, sub: &str, v: &Value) -> Option<Claim> {
    if let Value::Mapping(m) = v {
        if let (1, Some(raw)) = (m.len(), m.get("raw")) {
            return match serde_json::to_value(raw) {
                Ok(j) => Some(Claim::Json(j)),
                Err(e) => {
                    cx.at(o, sub, format!("cannot be a JSON claim: {e}"));
                    None
                }
            };
        }
    }
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
        let name = sub.rsplit('.').next().unwrap_or(sub);
        let t = s.trim();
        if t.starts_with(['+', '-']) || TIME_CLAIMS.contains(&name) {
            cx.at(
                o,
                sub,
                format!(
                    "`{s}` is not a relative time: write e.g. `+5m`, `-1h` or `now` (or a number of seconds \
                     since the epoch); for a deliberately malformed claim write `{name}: {{ raw: \"{s}\" }}`"
                ),
            );
            return None;
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

pub(super) fn token(cx: &mut Ctx<'_>, o: &Origin, t: &RawToken) -> Option<Token> {
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
    // What a run does with the token before it sends, done here so `validate` refuses what
    // `run` would: mint it once, and check it can be sent as a header value.
    let (value, at) = match &source {
        TokenSource::Static(v) => (v.clone(), "token.static"),
        TokenSource::Jwt(spec) => match spec.mint(0) {
            Ok(t) => (t, "token.jwt"),
            Err(e) => {
                cx.at(o, "token.jwt", format!("cannot be minted: {e}"));
                return None;
            }
        },
    };
    let sent = if scheme.is_empty() { value } else { format!("{scheme} {value}") };
    if http::HeaderValue::from_str(&sent).is_err() {
        cx.at(o, at, "cannot be sent as a header value (a control character or a line break in it?)");
        return None;
    }
    Some(Token { header, scheme, source })
}

/// The files a `pool.glob` pattern (a folder, then a file name with `*` and `?`) matches,
/// in name order; each member's key is the match with the extension `.key`.
pub(crate) fn glob_files(pattern: &Path) -> std::io::Result<Vec<PathBuf>> {
    let dir = pattern.parent().map(Path::to_path_buf).unwrap_or_default();
    let name = pattern.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut certs: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().is_some_and(|n| wildcard(&name, &n.to_string_lossy())))
        .collect();
    certs.sort();
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_glob_has_one_wildcard_that_matches_any_run() {
        assert!(wildcard("alice-*.pem", "alice-1.pem"));
        assert!(wildcard("alice-*.pem", "alice-.pem"));
        assert!(wildcard("*-*.pem", "a-b.pem"));
        assert!(!wildcard("alice-*.pem", "alice-1.key"));
        assert!(!wildcard("alice-*.pem", "bob-1.pem"));
        assert!(!wildcard("ab*ba", "aba"), "prefix and suffix may not overlap");
        assert!(wildcard("exact.pem", "exact.pem") && !wildcard("exact.pem", "exact.pem2"));
    }
}
