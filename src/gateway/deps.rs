//! The services a gateway depends on, as gauntlet runs them behind dependency links: an
//! external **authorization service** and a **key endpoint** (JWKS).
//!
//! Authorization protocol (HTTP/1.1 or h2c, any path): the caller describes the request in
//! headers — `x-authz-subject`, `x-authz-groups` (comma-separated token groups),
//! `x-authz-ou` (certificate OU), `x-authz-method`, `x-authz-path` (normalised) — and gets
//! `200` (allow) or `403` (deny), decided by the same route/RBAC code as the reference
//! gateway's local policy. The key endpoint answers every GET with its JWKS document.
//! Both count what they answered, so a test can prove the gateway asked.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use tokio::net::TcpListener;

use super::policy::{self, Route};

/// Request headers of the authorization protocol.
pub mod header {
    /// The authenticated principal.
    pub const SUBJECT: &str = "x-authz-subject";
    /// Token groups, comma-separated.
    pub const GROUPS: &str = "x-authz-groups";
    /// Certificate OU.
    pub const OU: &str = "x-authz-ou";
    /// Method of the request being authorized.
    pub const METHOD: &str = "x-authz-method";
    /// Normalised path of the request being authorized.
    pub const PATH: &str = "x-authz-path";
}

/// A running dependency service.
pub struct Service {
    /// The server.
    pub server: crate::serve::Server,
    /// Requests answered.
    pub answered: Arc<AtomicU64>,
}

/// Decides one authorization request from its headers.
pub fn decide(routes: &[Route], h: &HeaderMap) -> bool {
    let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if get(header::SUBJECT).is_empty() {
        return false;
    }
    let groups: Vec<String> =
        get(header::GROUPS).split(',').map(str::trim).filter(|g| !g.is_empty()).map(str::to_string).collect();
    let ou = Some(get(header::OU)).filter(|o| !o.is_empty());
    match policy::route(routes, get(header::PATH)) {
        Some(i) => policy::allowed(&routes[i], get(header::METHOD), &groups, ou),
        None => false,
    }
}

/// Serves the authorization protocol on `listener`, deciding with `routes`.
pub fn authz(listener: TcpListener, routes: Arc<Vec<Route>>) -> std::io::Result<Service> {
    let answered = Arc::new(AtomicU64::new(0));
    let count = answered.clone();
    let server = crate::serve::spawn(listener, move |tcp, stop| {
        let (routes, count) = (routes.clone(), count.clone());
        async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                count.fetch_add(1, Ordering::Relaxed);
                let ok = decide(&routes, req.headers());
                let mut r = Response::new(Full::new(Bytes::from_static(if ok { b"allow" } else { b"deny" })));
                *r.status_mut() = if ok { StatusCode::OK } else { StatusCode::FORBIDDEN };
                async move { Ok::<_, Infallible>(r) }
            });
            crate::serve::http(tcp, None, svc, &stop).await;
        }
    })?;
    Ok(Service { server, answered })
}

/// Serves `jwks` (a JWKS document) on every request to `listener`.
pub fn jwks(listener: TcpListener, jwks: Bytes) -> std::io::Result<Service> {
    let answered = Arc::new(AtomicU64::new(0));
    let count = answered.clone();
    let server = crate::serve::spawn(listener, move |tcp, stop| {
        let (jwks, count) = (jwks.clone(), count.clone());
        async move {
            let svc = service_fn(move |_req: Request<Incoming>| {
                count.fetch_add(1, Ordering::Relaxed);
                let mut r = Response::new(Full::new(jwks.clone()));
                r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
                async move { Ok::<_, Infallible>(r) }
            });
            crate::serve::http(tcp, None, svc, &stop).await;
        }
    })?;
    Ok(Service { server, answered })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decides_by_route_method_and_group() {
        let routes = vec![
            Route { prefix: "/api".into(), methods: vec!["GET".into()], groups: vec!["*".into()] },
            Route { prefix: "/admin".into(), methods: vec!["GET".into()], groups: vec!["admin".into()] },
        ];
        let h = |pairs: &[(&str, &str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.insert(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
            }
            m
        };
        let base = [(header::SUBJECT, "bob"), (header::METHOD, "GET")];
        assert!(decide(&routes, &h(&[base[0], base[1], (header::PATH, "/api/x")])));
        assert!(!decide(&routes, &h(&[base[0], base[1], (header::PATH, "/admin")])));
        assert!(decide(&routes, &h(&[base[0], base[1], (header::PATH, "/admin"), (header::GROUPS, "eng, admin")])));
        assert!(decide(&routes, &h(&[base[0], base[1], (header::PATH, "/admin"), (header::OU, "admin")])));
        assert!(!decide(&routes, &h(&[base[0], base[1], (header::PATH, "/nowhere")])));
        assert!(!decide(&routes, &h(&[base[1], (header::PATH, "/api/x")])), "no subject, no access");
    }
}
