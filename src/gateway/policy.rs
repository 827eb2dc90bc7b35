//! The reference gateway's decisions, pure: path normalisation, route lookup, RBAC, and the
//! per-identity rate limiter.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Why a path was refused before any routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// An encoded `/` or `\` (or a raw `\`): ambiguous between gateway and backend.
    EncodedSeparator,
    /// Not a path at all.
    Malformed,
}

/// Normalises a request path for policy matching: reject encoded separators, decode
/// percent-encoded unreserved characters, drop `;params` from segments, merge duplicate
/// slashes, remove dot segments (RFC 3986 §5.2.4), and lowercase when paths are
/// case-insensitive. The query is not part of the result.
pub fn normalize(raw: &str, case_insensitive: bool) -> Result<String, PathError> {
    let path = raw.split(['?', '#']).next().unwrap_or_default();
    if !path.starts_with('/') {
        return Err(PathError::Malformed);
    }
    let lower = path.to_ascii_lowercase();
    if path.contains('\\') || lower.contains("%2f") || lower.contains("%5c") {
        return Err(PathError::EncodedSeparator);
    }
    let decoded = decode_unreserved(path).ok_or(PathError::Malformed)?;
    let mut out: Vec<&str> = Vec::new();
    for seg in decoded.split('/') {
        let seg = seg.split(';').next().unwrap_or_default();
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let mut p = String::with_capacity(decoded.len());
    for s in &out {
        p.push('/');
        p.push_str(s);
    }
    if p.is_empty() || (decoded.ends_with('/') && !out.is_empty()) {
        p.push('/');
    }
    if case_insensitive {
        p.make_ascii_lowercase();
    }
    Ok(p)
}

/// Decodes `%XX` only where XX is an unreserved character; other escapes stay as written.
fn decode_unreserved(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            let v = u8::from_str_radix(hex, 16).ok()?;
            if v.is_ascii_alphanumeric() || matches!(v, b'-' | b'.' | b'_' | b'~') {
                out.push(char::from(v));
            } else {
                out.push_str(&s[i..i + 3]);
            }
            i += 3;
        } else {
            out.push(char::from(b[i]));
            i += 1;
        }
    }
    Some(out)
}

/// One route of the policy.
#[derive(Debug, Clone)]
pub struct Route {
    /// Path prefix (segment-aligned).
    pub prefix: String,
    /// Allowed methods (upper case).
    pub methods: Vec<String>,
    /// Groups (token `groups` claim) or certificate OUs allowed; `*` allows any
    /// authenticated identity.
    pub groups: Vec<String>,
}

/// The index of the longest route whose prefix matches `path` on a segment boundary.
pub fn route(routes: &[Route], path: &str) -> Option<usize> {
    routes
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            let p = r.prefix.trim_end_matches('/');
            p.is_empty() || path == p || path.starts_with(&format!("{p}/"))
        })
        .max_by_key(|(_, r)| r.prefix.len())
        .map(|(i, _)| i)
}

/// Whether `method` from an identity with `groups` (token) and `ou` (certificate) may use `r`.
pub fn allowed(r: &Route, method: &str, groups: &[String], ou: Option<&str>) -> bool {
    let method_ok = r.methods.iter().any(|m| m == method);
    let who_ok = r.groups.iter().any(|g| g == "*" || groups.contains(g) || ou == Some(g.as_str()));
    method_ok && who_ok
}

/// A token-bucket limiter per key.
#[derive(Debug)]
pub struct Limiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl Limiter {
    /// `requests` per `per`, with a burst of one window.
    pub fn new(requests: u32, per: Duration) -> Self {
        let rate = f64::from(requests) / per.as_secs_f64().max(1e-3);
        Limiter { rate, burst: f64::from(requests).max(1.0), buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes one token for `key`; `Err(retry_after)` when none is left.
    pub fn take(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let mut b = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if b.len() > 100_000 {
            b.clear(); // bounded memory against key-rotation floods
        }
        let (tokens, at) = b.entry(key.to_string()).or_insert((self.burst, now));
        *tokens = (*tokens + now.saturating_duration_since(*at).as_secs_f64() * self.rate).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(((1.0 - *tokens) / self.rate).max(1.0)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_defeats_the_classic_bypasses() {
        for p in [
            "//admin",
            "/./admin",
            "/%61dmin",
            "/public/../admin",
            "/admin;x",
            "/public/./../admin",
            "/public/%2e%2e/admin",
            "/admin//",
        ] {
            let n = normalize(p, false).unwrap();
            assert!(n == "/admin" || n == "/admin/", "{p} -> {n}");
        }
        assert_eq!(normalize("/ADMIN", true).unwrap(), "/admin");
        assert_eq!(normalize("/ADMIN", false).unwrap(), "/ADMIN");
        assert_eq!(normalize("/a/b?x=/admin", false).unwrap(), "/a/b");
        assert_eq!(normalize("/../../", false).unwrap(), "/");
        for bad in ["/public%2f..%2fadmin", "/public%5c..%5cadmin", "/public\\..\\admin"] {
            assert_eq!(normalize(bad, false), Err(PathError::EncodedSeparator), "{bad}");
        }
        assert_eq!(normalize("admin", false), Err(PathError::Malformed));
        assert_eq!(normalize("/%zz", false), Err(PathError::Malformed));
        // Reserved escapes are not decoded.
        assert_eq!(normalize("/a%3fb", false).unwrap(), "/a%3fb");
    }

    #[test]
    fn routes_match_on_segment_boundaries_and_rbac_checks_method_and_group() {
        let routes = vec![
            Route { prefix: "/api".into(), methods: vec!["GET".into()], groups: vec!["*".into()] },
            Route { prefix: "/admin".into(), methods: vec!["GET".into()], groups: vec!["admin".into()] },
        ];
        assert_eq!(route(&routes, "/api/x"), Some(0));
        assert!(route(&routes, "/apix").is_none());
        let admin = &routes[route(&routes, "/admin").unwrap()];
        assert!(!allowed(admin, "GET", &["eng".into()], Some("eng")));
        assert!(allowed(admin, "GET", &[], Some("admin")));
        assert!(!allowed(admin, "DELETE", &["admin".into()], None));
    }

    #[test]
    fn limiter_refuses_past_the_burst_and_recovers() {
        let l = Limiter::new(2, Duration::from_secs(1));
        let t = Instant::now();
        assert!(l.take("a", t).is_ok() && l.take("a", t).is_ok());
        assert!(l.take("a", t).is_err());
        assert!(l.take("b", t).is_ok());
        assert!(l.take("a", t + Duration::from_secs(1)).is_ok());
    }
}
