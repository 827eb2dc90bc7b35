//! An in-process HTTPS target for tests and the interim demo: hyper (HTTP/1.1 and HTTP/2)
//! behind rustls, optionally requiring client certificates, answering by path-prefix rules,
//! with a one-shot stall to prove coordinated-omission handling.
//!
//! It is a *calibration target*, not a gateway: it has no JWT or RBAC logic. Binds
//! 127.0.0.1:0 and reports its address; stops when told to.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::tls;

/// TLS settings of the target.
#[derive(Debug)]
pub struct TlsSetup {
    /// Server chain.
    pub chain: Vec<CertificateDer<'static>>,
    /// Server key.
    pub key: PrivateKeyDer<'static>,
    /// Verify client certificates against these CAs.
    pub client_ca: Option<Vec<CertificateDer<'static>>>,
    /// Refuse handshakes without a valid client certificate.
    pub require_client_cert: bool,
}

/// What the target does.
#[derive(Debug, Default)]
pub struct Config {
    /// TLS, or plain HTTP when `None`.
    pub tls: Option<TlsSetup>,
    /// Path prefix → status, first match wins; anything else is 200.
    pub rules: Vec<(String, u16)>,
    /// When request number `.0` (1-based) arrives, every response is held until `.1` has
    /// passed since then.
    pub stall: Option<(u64, Duration)>,
    /// Forward every request (with its headers) to this HTTP upstream before answering by
    /// the rules: a gateway that denies *after* forwarding.
    pub forward_to: Option<SocketAddr>,
    /// Header edits made before forwarding: `(name, Some(value))` replaces (or adds) the
    /// header, `(name, None)` removes it — the hygiene (or lack of it) of a gateway.
    pub forward_headers: Vec<(String, Option<String>)>,
}

/// A running target.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Requests answered so far.
    pub requests: Arc<AtomicU64>,
    server: crate::serve::Server,
}

impl Running {
    /// Stops accepting and waits for the accept loop to end.
    pub async fn stop(self) {
        self.server.stop().await;
    }
}

struct State {
    forward_to: Option<SocketAddr>,
    forward_headers: Vec<(http::HeaderName, Option<http::HeaderValue>)>,
    client: hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    rules: Vec<(String, u16)>,
    stall: Option<(u64, Duration)>,
    stalled_until: Mutex<Option<Instant>>,
    requests: Arc<AtomicU64>,
}

/// Starts the target on 127.0.0.1:0.
pub async fn spawn(cfg: Config) -> Result<Running, Box<dyn std::error::Error + Send + Sync>> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let acceptor = match cfg.tls {
        Some(t) => Some(tokio_rustls::TlsAcceptor::from(tls::server_config(
            t.chain,
            t.key,
            t.client_ca.as_deref(),
            t.require_client_cert,
            &[b"h2", b"http/1.1"],
        )?)),
        None => None,
    };
    let requests = Arc::new(AtomicU64::new(0));
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http();
    let mut forward_headers = Vec::new();
    for (n, v) in &cfg.forward_headers {
        let name = http::HeaderName::from_bytes(n.as_bytes())?;
        let value = v.as_deref().map(http::HeaderValue::from_str).transpose()?;
        forward_headers.push((name, value));
    }
    let state = Arc::new(State {
        forward_to: cfg.forward_to,
        forward_headers,
        client,
        rules: cfg.rules,
        stall: cfg.stall,
        stalled_until: Mutex::new(None),
        requests: requests.clone(),
    });
    let server =
        crate::serve::spawn(listener, move |tcp, stop| connection(tcp, acceptor.clone(), state.clone(), stop))?;
    Ok(Running { addr: server.addr, requests, server })
}

async fn connection(
    tcp: TcpStream,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    state: Arc<State>,
    stop: CancellationToken,
) {
    let svc = service_fn(move |req| handle(state.clone(), req));
    crate::serve::http(tcp, acceptor.as_ref(), svc, &stop).await;
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let n = state.requests.fetch_add(1, Ordering::AcqRel) + 1;
    let hold = {
        let mut until = state.stalled_until.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, d)) = state.stall {
            if n == at {
                *until = Some(Instant::now() + d);
            }
        }
        until.filter(|u| *u > Instant::now())
    };
    if let Some(u) = hold {
        tokio::time::sleep_until(u.into()).await;
    }
    let path = req.uri().path().to_string();
    if let Some(up) = state.forward_to {
        let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
        if let Ok(uri) = format!("http://{up}{pq}").parse::<http::Uri>() {
            let mut fwd = Request::new(Full::new(Bytes::new()));
            *fwd.uri_mut() = uri;
            *fwd.headers_mut() = req.headers().clone();
            fwd.headers_mut().remove(http::header::HOST);
            for (name, value) in &state.forward_headers {
                match value {
                    Some(v) => {
                        fwd.headers_mut().insert(name.clone(), v.clone());
                    }
                    None => {
                        fwd.headers_mut().remove(name);
                    }
                }
            }
            let _ = state.client.request(fwd).await;
        }
    }
    let status = state.rules.iter().find(|(p, _)| path.starts_with(p.as_str())).map_or(200, |(_, s)| *s);
    let body = if status == 200 { "{\"ok\":true}" } else { "{\"denied\":true}" };
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    Ok(resp)
}
