//! The embedded reference gateway: a small but real zero-trust gateway used as the demo's
//! target and as the calibration target of the tests — with **flaw switches** that each plant
//! one realistic defect, so the check pack can be shown to catch it.
//!
//! Policy per request: mutual TLS against the test CA; exactly one bearer JWT (RS256/ES256
//! from a JWKS, `exp`/`nbf` with leeway, `aud`, `iss`; `alg: none` and HS256 refused); the
//! token's `sub` must equal the certificate's CN; the path is normalised (unreserved
//! escapes decoded, dot segments removed, duplicate slashes merged, `;params` dropped, encoded
//! `/` and `\` refused with 400); RBAC by route prefix, method and group (token `groups` or
//! certificate OU); a per-identity rate limit (429 + `Retry-After`); client-supplied identity
//! headers stripped and `x-forwarded-user` injected; then forwarded over a keep-alive pool.
//! 401 (with `WWW-Authenticate: Bearer`) for authentication failures, 403 for authorization.
//! Shares only `tls` with the rest of gauntlet. Not special-cased anywhere: the engine and
//! the check pack see it as any other gateway.

mod config;
pub mod deps;
pub mod policy;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONNECTION, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

pub use config::{AuthzCfg, Config, Error as ConfigError, RateCfg};
use policy::{Limiter, Route};

use crate::tls;

/// A planted defect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flaw {
    /// Expired tokens are accepted.
    SkipExpCheck,
    /// Routes are matched on the raw path.
    NoPathNormalization,
    /// Client-supplied identity headers are forwarded.
    ForwardSpoofedHeaders,
    /// Any client certificate — or none — completes the handshake.
    AcceptAnyClientCert,
    /// A request without an Authorization header is allowed on its certificate alone.
    IgnoreMissingToken,
    /// The rate limit is keyed on `X-Forwarded-For` when the client sends one (a
    /// client-controlled header), on the identity otherwise: rotating it escapes the limit.
    RateLimitByXff,
    /// When the external authorization call times out, the request is allowed.
    FailOpenOnAuthzTimeout,
    /// Client certificates are verified over TCP but not over QUIC (HTTP/3).
    NoClientCertOverH3,
    /// WebSocket sessions stay open after the token that opened them expired.
    WsOutlivesToken,
    /// An allowed GET's answer is cached by path alone and served to whoever asks next
    /// (authentication and authorization still run; the upstream never sees the request).
    SharedCache,
}

impl Flaw {
    /// Every flaw's name.
    pub const NAMES: &'static [&'static str] = &[
        "skip-exp-check",
        "no-path-normalization",
        "forward-spoofed-headers",
        "accept-any-client-cert",
        "ignore-missing-token",
        "rate-limit-by-xff",
        "fail-open-on-authz-timeout",
        "no-client-cert-over-h3",
        "ws-outlives-token",
        "shared-cache",
    ];

    /// Parses a flaw name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "skip-exp-check" => Flaw::SkipExpCheck,
            "no-path-normalization" => Flaw::NoPathNormalization,
            "forward-spoofed-headers" => Flaw::ForwardSpoofedHeaders,
            "accept-any-client-cert" => Flaw::AcceptAnyClientCert,
            "ignore-missing-token" => Flaw::IgnoreMissingToken,
            "rate-limit-by-xff" => Flaw::RateLimitByXff,
            "fail-open-on-authz-timeout" => Flaw::FailOpenOnAuthzTimeout,
            "no-client-cert-over-h3" => Flaw::NoClientCertOverH3,
            "ws-outlives-token" => Flaw::WsOutlivesToken,
            "shared-cache" => Flaw::SharedCache,
            _ => return None,
        })
    }
}

/// Gateway errors (setup only; request failures are HTTP answers).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A file named by the configuration is unusable.
    #[error("{what} {}: {reason}", .path.display())]
    File {
        /// What it is.
        what: &'static str,
        /// File.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },
    /// Something else in the configuration.
    #[error("gateway config: {0}")]
    Invalid(String),
    /// TLS setup.
    #[error(transparent)]
    Tls(#[from] tls::Error),
    /// Binding.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// Address.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

type Keys = HashMap<String, (DecodingKey, Algorithm)>;

/// The external authorization call.
struct Authz {
    uri: Uri,
    timeout: Duration,
    failure: StatusCode,
}

struct Gateway {
    routes: Vec<Route>,
    /// `None` until a key set was loaded (only possible with `jwks_url`).
    keys: std::sync::RwLock<Option<Arc<Keys>>>,
    authz: Option<Authz>,
    issuer: String,
    audience: String,
    leeway: Duration,
    identity_header: HeaderName,
    strip: Vec<String>,
    case_insensitive: bool,
    limiters: Vec<Option<Limiter>>,
    /// Per client certificate, over every allowed request.
    client_limiter: Option<Limiter>,
    flaws: Vec<Flaw>,
    upstream: Uri,
    client: Client<HttpConnector, Full<Bytes>>,
    /// [`Flaw::SharedCache`]'s answers by path (bounded).
    cache: std::sync::Mutex<HashMap<String, (StatusCode, Bytes)>>,
}

/// The verified client certificate of a connection.
#[derive(Debug, Default, Clone)]
struct Peer {
    cn: Option<String>,
    ou: Option<String>,
    /// The certificate's serial number (hex): what a per-certificate limit is keyed on.
    serial: Option<String>,
}

/// A running gateway: TCP (h1/h2) and, when enabled, QUIC (h3) on the same port number.
pub struct Running {
    /// The TCP address (HTTP/3 listens on the same address over UDP).
    pub addr: std::net::SocketAddr,
    tcp: crate::serve::Server,
    quic: Option<(CancellationToken, tokio::task::JoinHandle<()>)>,
}

impl Running {
    /// Whether HTTP/3 is served too.
    pub fn serves_h3(&self) -> bool {
        self.quic.is_some()
    }

    /// Stops both listeners and waits for their connections.
    pub async fn stop(self) {
        if let Some((stop, task)) = self.quic {
            stop.cancel();
            let _ = task.await;
        }
        self.tcp.stop().await;
    }
}

fn read(what: &'static str, path: &std::path::Path) -> Result<Vec<u8>, Error> {
    crate::input::read(path, crate::input::PEM).map_err(|e| Error::File {
        what,
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Starts the gateway on `listener` (or on `cfg.listen` when `None`), with `extra_flaws`
/// planted on top of the configuration's.
pub async fn spawn(cfg: &Config, listener: Option<TcpListener>, extra_flaws: &[Flaw]) -> Result<Running, Error> {
    let mut flaws: Vec<Flaw> = cfg.flaws.iter().filter_map(|f| Flaw::parse(f)).collect();
    flaws.extend_from_slice(extra_flaws);
    let chain = CertificateDer::pem_slice_iter(&read("server certificate", &cfg.tls.cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::File { what: "server certificate", path: cfg.tls.cert.clone(), reason: e.to_string() })?;
    let key = PrivateKeyDer::from_pem_slice(&read("server key", &cfg.tls.key)?).map_err(|e| Error::File {
        what: "server key",
        path: cfg.tls.key.clone(),
        reason: e.to_string(),
    })?;
    let ca = CertificateDer::pem_slice_iter(&read("client CA", &cfg.tls.client_ca)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::File { what: "client CA", path: cfg.tls.client_ca.clone(), reason: e.to_string() })?;
    let alpn: &[&[u8]] = &[b"h2", b"http/1.1"];
    // Over QUIC, with the h3-only flaw, any client certificate (or none) is accepted.
    let h3_lax = flaws.contains(&Flaw::NoClientCertOverH3) && !flaws.contains(&Flaw::AcceptAnyClientCert);
    let quic_tls = if h3_lax {
        Some(tls::server_config_accepting_any_client(chain.clone(), key.clone_key(), alpn)?)
    } else {
        None
    };
    let server = if flaws.contains(&Flaw::AcceptAnyClientCert) {
        tls::server_config_accepting_any_client(chain, key, alpn)?
    } else {
        tls::server_config(chain, key, Some(&ca), true, alpn)?
    };
    let keys = match &cfg.jwt.jwks {
        Some(path) => Some(Arc::new(jwks(&read("JWKS", path)?).map_err(|reason| Error::File {
            what: "JWKS",
            path: path.clone(),
            reason,
        })?)),
        None => None,
    };
    let key_url: Option<Uri> = match &cfg.jwt.jwks_url {
        Some(u) => Some(u.parse().map_err(|e| Error::Invalid(format!("jwt.jwks_url `{u}`: {e}")))?),
        None => None,
    };
    let refresh = match &cfg.jwt.refresh {
        Some(r) => humantime::parse_duration(r).map_err(|e| Error::Invalid(format!("jwt.refresh `{r}`: {e}")))?,
        None => Duration::from_secs(10),
    };
    let authz = match &cfg.authz {
        Some(a) => Some(Authz {
            uri: a.url.parse().map_err(|e| Error::Invalid(format!("authz.url `{}`: {e}", a.url)))?,
            timeout: match &a.timeout {
                Some(t) => {
                    humantime::parse_duration(t).map_err(|e| Error::Invalid(format!("authz.timeout `{t}`: {e}")))?
                }
                None => Duration::from_millis(250),
            },
            failure: StatusCode::from_u16(a.failure_status.unwrap_or(503))
                .map_err(|e| Error::Invalid(format!("authz.failure_status: {e}")))?,
        }),
        None => None,
    };
    let upstream: Uri =
        cfg.upstream.parse().map_err(|e| Error::Invalid(format!("upstream `{}`: {e}", cfg.upstream)))?;
    let client_limiter = match &cfg.client_rate_limit {
        Some(rl) => {
            let per = humantime::parse_duration(&rl.per)
                .map_err(|e| Error::Invalid(format!("client_rate_limit.per: {e}")))?;
            Some(Limiter::new(rl.requests, per))
        }
        None => None,
    };
    let mut limiters = Vec::new();
    for r in &cfg.routes {
        limiters.push(match &r.rate_limit {
            Some(rl) => {
                let per = humantime::parse_duration(&rl.per)
                    .map_err(|e| Error::Invalid(format!("routes `{}`: rate_limit.per: {e}", r.prefix)))?;
                Some(Limiter::new(rl.requests, per))
            }
            None => None,
        });
    }
    let gw = Arc::new(Gateway {
        routes: cfg.policy_routes(),
        keys: std::sync::RwLock::new(keys),
        authz,
        issuer: cfg.jwt.issuer.clone(),
        audience: cfg.jwt.audience.clone(),
        leeway: cfg.leeway().map_err(Error::Invalid)?,
        identity_header: HeaderName::from_bytes(cfg.identity_header.as_bytes())
            .map_err(|_| Error::Invalid(format!("identity_header `{}`", cfg.identity_header)))?,
        strip: cfg.strip_headers.iter().map(|s| s.to_ascii_lowercase()).collect(),
        case_insensitive: cfg.case_insensitive_paths,
        limiters,
        client_limiter,
        flaws,
        upstream,
        client: Client::builder(TokioExecutor::new()).pool_max_idle_per_host(256).build_http(),
        cache: std::sync::Mutex::new(HashMap::new()),
    });
    if let Some(url) = key_url {
        // Start with keys when the endpoint answers soon; refresh in the background.
        let deadline = Instant::now() + Duration::from_secs(3);
        while gw.key_set().is_none() && Instant::now() < deadline {
            if !gw.fetch_keys(&url).await {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        tokio::spawn(refresh_keys(Arc::downgrade(&gw), url, refresh));
    }
    let listener = match listener {
        Some(l) => l,
        None => {
            TcpListener::bind(&cfg.listen).await.map_err(|source| Error::Listen { addr: cfg.listen.clone(), source })?
        }
    };
    let addr = listener.local_addr().map_err(|source| Error::Listen { addr: cfg.listen.clone(), source })?;
    let quic = if cfg.http3 {
        let qcfg = tls::quic::server(quic_tls.as_deref().unwrap_or(&server))?;
        let ep = quinn::Endpoint::server(qcfg, addr)
            .map_err(|source| Error::Listen { addr: format!("{addr} (UDP, for HTTP/3)"), source })?;
        let stop = CancellationToken::new();
        let task = tokio::spawn(serve_h3(ep, gw.clone(), stop.clone()));
        Some((stop, task))
    } else {
        None
    };
    let alt_svc = quic.as_ref().and_then(|_| HeaderValue::from_str(&format!("h3=\":{}\"; ma=3600", addr.port())).ok());
    let acceptor = tokio_rustls::TlsAcceptor::from(server);
    let tcp = crate::serve::spawn(listener, move |tcp, stop| {
        connection(tcp, acceptor.clone(), gw.clone(), alt_svc.clone(), stop)
    })
    .map_err(|source| Error::Listen { addr: cfg.listen.clone(), source })?;
    Ok(Running { addr, tcp, quic })
}

/// Serves HTTP/3 on `ep` with the same policy code path as TCP, until `stop`.
async fn serve_h3(ep: quinn::Endpoint, gw: Arc<Gateway>, stop: CancellationToken) {
    let conns = tokio_util::task::TaskTracker::new();
    loop {
        let incoming = tokio::select! {
            i = ep.accept() => match i { Some(i) => i, None => break },
            _ = stop.cancelled() => break,
        };
        let (gw, stop) = (gw.clone(), stop.clone());
        conns.spawn(async move {
            // A refused client certificate fails here: the handshake is closed with the alert.
            let Ok(conn) = incoming.await else { return };
            let certs =
                conn.peer_identity().and_then(|id| id.downcast::<Vec<CertificateDer<'static>>>().ok()).map(|b| *b);
            let peer = Arc::new(peer(certs.as_deref()));
            let Ok(mut h3c) = h3::server::Connection::<_, Bytes>::new(h3_quinn::Connection::new(conn)).await else {
                return;
            };
            let streams = tokio_util::task::TaskTracker::new();
            loop {
                let resolver = tokio::select! {
                    r = h3c.accept() => match r { Ok(Some(r)) => r, _ => break },
                    _ = stop.cancelled() => break,
                };
                let (gw, peer) = (gw.clone(), peer.clone());
                streams.spawn(async move {
                    let Ok((req, mut stream)) = resolver.resolve_request().await else { return };
                    let mut body = bytes::BytesMut::new();
                    while let Ok(Some(mut chunk)) = stream.recv_data().await {
                        use bytes::Buf;
                        if body.len() + chunk.remaining() > 1 << 20 {
                            break;
                        }
                        while chunk.has_remaining() {
                            let c = chunk.chunk();
                            body.extend_from_slice(c);
                            let n = c.len();
                            chunk.advance(n);
                        }
                    }
                    let resp = handle(&gw, &peer, req.map(|()| Full::new(body.freeze()))).await;
                    let (parts, body) = resp.into_parts();
                    let bytes = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
                    if stream.send_response(Response::from_parts(parts, ())).await.is_err() {
                        return;
                    }
                    if !bytes.is_empty() && stream.send_data(bytes).await.is_err() {
                        return;
                    }
                    let _ = stream.finish().await;
                });
            }
            streams.close();
            streams.wait().await;
        });
    }
    ep.close(quinn::VarInt::from_u32(0), b"gateway stopping");
    conns.close();
    conns.wait().await;
    ep.wait_idle().await;
}

/// Refreshes the key set every `every` (every 200 ms while none was ever loaded) until the
/// gateway is gone. A failed refresh keeps the last good set.
async fn refresh_keys(gw: std::sync::Weak<Gateway>, url: Uri, every: Duration) {
    loop {
        let wait = match gw.upgrade() {
            Some(g) if g.key_set().is_some() => every,
            Some(_) => Duration::from_millis(200),
            None => return,
        };
        tokio::time::sleep(wait).await;
        let Some(g) = gw.upgrade() else { return };
        g.fetch_keys(&url).await;
    }
}

fn jwks(bytes: &[u8]) -> Result<Keys, String> {
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let mut out = HashMap::new();
    for k in &set.keys {
        let Some(kid) = k.common.key_id.clone() else { continue };
        let alg = match k.common.key_algorithm {
            Some(jsonwebtoken::jwk::KeyAlgorithm::RS256) => Algorithm::RS256,
            Some(jsonwebtoken::jwk::KeyAlgorithm::ES256) => Algorithm::ES256,
            _ => continue,
        };
        out.insert(kid, (DecodingKey::from_jwk(k).map_err(|e| e.to_string())?, alg));
    }
    if out.is_empty() {
        return Err("no RS256 or ES256 key with a `kid`".into());
    }
    Ok(out)
}

async fn connection(
    tcp: TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
    gw: Arc<Gateway>,
    alt_svc: Option<HeaderValue>,
    stop: CancellationToken,
) {
    let Ok(stream) = acceptor.accept(tcp).await else { return };
    let peer = Arc::new(peer(stream.get_ref().1.peer_certificates()));
    let svc = service_fn(move |req| {
        let (gw, peer, alt_svc) = (gw.clone(), peer.clone(), alt_svc.clone());
        async move {
            let mut r = handle(&gw, &peer, req).await;
            if let Some(v) = alt_svc {
                r.headers_mut().insert(http::header::ALT_SVC, v);
            }
            Ok::<_, Infallible>(r)
        }
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
    tokio::select! { _ = conn => {}, _ = stop.cancelled() => {} }
}

fn peer(certs: Option<&[CertificateDer<'_>]>) -> Peer {
    let Some(leaf) = certs.and_then(|c| c.first()) else { return Peer::default() };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(leaf.as_ref()) else { return Peer::default() };
    let subject = cert.subject();
    Peer {
        cn: subject.iter_common_name().next().and_then(|a| a.as_str().ok()).map(str::to_string),
        ou: subject.iter_organizational_unit().next().and_then(|a| a.as_str().ok()).map(str::to_string),
        serial: Some(cert.raw_serial_as_string()),
    }
}

fn reply(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn unauthorized(error: Option<&'static str>) -> Response<Full<Bytes>> {
    let mut r = reply(StatusCode::UNAUTHORIZED, "{\"error\":\"unauthorized\"}");
    let challenge = match error {
        Some("invalid_token") => "Bearer error=\"invalid_token\"",
        Some(_) => "Bearer error=\"invalid_request\"",
        None => "Bearer",
    };
    r.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    r
}

fn forbidden() -> Response<Full<Bytes>> {
    reply(StatusCode::FORBIDDEN, "{\"error\":\"forbidden\"}")
}

#[derive(serde::Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    exp: Option<u64>,
}

impl Gateway {
    fn has(&self, f: Flaw) -> bool {
        self.flaws.contains(&f)
    }

    fn key_set(&self) -> Option<Arc<Keys>> {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Fetches the key set from `url`; true when a valid set was installed.
    async fn fetch_keys(&self, url: &Uri) -> bool {
        let mut req = Request::new(Full::new(Bytes::new()));
        *req.uri_mut() = url.clone();
        let got = tokio::time::timeout(Duration::from_secs(2), async {
            let resp = self.client.request(req).await.ok()?;
            if !resp.status().is_success() {
                return None;
            }
            let body = Limited::new(resp.into_body(), 1 << 20).collect().await.ok()?.to_bytes();
            jwks(&body).ok()
        })
        .await;
        match got {
            Ok(Some(keys)) => {
                *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(keys));
                true
            }
            _ => false,
        }
    }

    /// Asks the authorization service; `Err(true)` on timeout, `Err(false)` on other failures.
    async fn authorize(
        &self,
        a: &Authz,
        principal: &str,
        groups: &[String],
        ou: Option<&str>,
        method: &str,
        path: &str,
    ) -> Result<bool, bool> {
        use deps::header;
        let mut req = Request::new(Full::new(Bytes::new()));
        *req.uri_mut() = a.uri.clone();
        let h = req.headers_mut();
        for (name, value) in [
            (header::SUBJECT, principal),
            (header::GROUPS, &groups.join(",")),
            (header::OU, ou.unwrap_or_default()),
            (header::METHOD, method),
            (header::PATH, path),
        ] {
            h.insert(name, HeaderValue::from_str(value).map_err(|_| false)?);
        }
        match tokio::time::timeout(a.timeout, self.client.request(req)).await {
            Err(_) => Err(true),
            Ok(Err(_)) => Err(false),
            Ok(Ok(resp)) => match resp.status() {
                StatusCode::OK => Ok(true),
                StatusCode::FORBIDDEN => Ok(false),
                _ => Err(false),
            },
        }
    }

    fn verify(&self, keys: &Keys, token: &str) -> Option<Claims> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return None;
        }
        let (key, alg) = keys.get(header.kid.as_deref()?)?;
        if *alg != header.alg {
            return None;
        }
        let mut v = Validation::new(*alg);
        v.set_audience(&[&self.audience]);
        v.set_issuer(&[&self.issuer]);
        v.leeway = self.leeway.as_secs();
        v.validate_nbf = true;
        if self.has(Flaw::SkipExpCheck) {
            v.validate_exp = false;
            v.required_spec_claims = ["sub", "aud", "iss"].iter().map(|s| s.to_string()).collect();
        } else {
            v.required_spec_claims = ["exp", "sub", "aud", "iss"].iter().map(|s| s.to_string()).collect();
        }
        jsonwebtoken::decode::<Claims>(token, key, &v).ok().map(|d| d.claims)
    }

    fn stripped(&self, name: &str) -> bool {
        self.strip.iter().any(|s| match s.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == s,
        })
    }
}

/// The policy, for one request from any transport (h1/h2 bodies from hyper, h3 bodies read
/// beforehand).
async fn handle<B>(gw: &Gateway, peer: &Peer, req: Request<B>) -> Response<Full<Bytes>>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    // 1. The path the policy sees.
    let raw_pq = req.uri().path_and_query().map_or("/", |p| p.as_str()).to_string();
    let query = raw_pq.split_once('?').map(|(_, q)| q.to_string());
    let path = if gw.has(Flaw::NoPathNormalization) {
        raw_pq.split('?').next().unwrap_or("/").to_string()
    } else {
        match policy::normalize(&raw_pq, gw.case_insensitive) {
            Ok(p) => p,
            Err(_) => return reply(StatusCode::BAD_REQUEST, "{\"error\":\"bad path\"}"),
        }
    };
    // 2. Authentication: exactly one bearer token, bound to the certificate.
    let mut auths = req.headers().get_all(AUTHORIZATION).iter();
    let (first, second) = (auths.next(), auths.next());
    if second.is_some() {
        return reply(StatusCode::BAD_REQUEST, "{\"error\":\"invalid_request\"}");
    }
    let claims = match first {
        None if gw.has(Flaw::IgnoreMissingToken) => None,
        None => return unauthorized(None),
        Some(v) => {
            let Some(keys) = gw.key_set() else {
                return reply(StatusCode::SERVICE_UNAVAILABLE, "{\"error\":\"signing keys unavailable\"}");
            };
            let token = v.to_str().ok().and_then(|s| s.strip_prefix("Bearer ")).map(str::trim);
            match token.and_then(|t| gw.verify(&keys, t)) {
                Some(c) => Some(c),
                None => return unauthorized(Some("invalid_token")),
            }
        }
    };
    let principal = match (&claims, &peer.cn) {
        (Some(c), Some(cn)) if c.sub != *cn => return forbidden(),
        (Some(c), _) => c.sub.clone(),
        (None, Some(cn)) => cn.clone(),
        (None, None) => return unauthorized(None),
    };
    // A WebSocket session lives no longer than the token that opened it.
    let session_until = claims.as_ref().and_then(|c| c.exp).filter(|_| !gw.has(Flaw::WsOutlivesToken));
    let groups = claims.map(|c| c.groups).unwrap_or_default();
    // 3. Authorization.
    let Some(ri) = policy::route(&gw.routes, &path) else { return forbidden() };
    let allowed = match &gw.authz {
        None => policy::allowed(&gw.routes[ri], req.method().as_str(), &groups, peer.ou.as_deref()),
        Some(a) => match gw.authorize(a, &principal, &groups, peer.ou.as_deref(), req.method().as_str(), &path).await {
            Ok(decision) => decision,
            Err(true) if gw.has(Flaw::FailOpenOnAuthzTimeout) => true,
            Err(_) => {
                let mut r = reply(a.failure, "{\"error\":\"authorization unavailable\"}");
                r.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("1"));
                return r;
            }
        },
    };
    if !allowed {
        return forbidden();
    }
    // 4. Rate limits: per client certificate over everything allowed, then per identity and
    //    route.
    if let (Some(l), Some(serial)) = (&gw.client_limiter, &peer.serial) {
        if let Err(retry) = l.take(serial, Instant::now()) {
            let mut r = reply(StatusCode::TOO_MANY_REQUESTS, "{\"error\":\"rate limited (client certificate)\"}");
            r.headers_mut().insert(RETRY_AFTER, HeaderValue::from(retry.as_secs().max(1)));
            return r;
        }
    }
    if let Some(l) = &gw.limiters[ri] {
        let xff = req.headers().get("x-forwarded-for").and_then(|v| v.to_str().ok());
        let key = match xff {
            Some(x) if gw.has(Flaw::RateLimitByXff) => x.to_string(),
            _ => principal.clone(),
        };
        if let Err(retry) = l.take(&key, Instant::now()) {
            let mut r = reply(StatusCode::TOO_MANY_REQUESTS, "{\"error\":\"rate limited\"}");
            r.headers_mut().insert(RETRY_AFTER, HeaderValue::from(retry.as_secs().max(1)));
            return r;
        }
    }
    // 5. Headers: drop hop-by-hop and client identity headers, inject the verified identity.
    let (mut parts, body) = req.into_parts();
    let websocket = parts
        .headers
        .get(http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let on_upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
    let mut headers = HeaderMap::with_capacity(parts.headers.len() + 1);
    let listed: Vec<String> = parts
        .headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|s| s.trim().to_ascii_lowercase()))
        .collect();
    for (name, value) in &parts.headers {
        let n = name.as_str();
        let hop =
            matches!(n, "connection" | "keep-alive" | "proxy-connection" | "te" | "transfer-encoding" | "upgrade")
                || listed.iter().any(|l| l == n);
        if hop || (!gw.has(Flaw::ForwardSpoofedHeaders) && gw.stripped(n)) {
            continue;
        }
        headers.append(name.clone(), value.clone());
    }
    match HeaderValue::from_str(&principal) {
        Ok(v) if gw.has(Flaw::ForwardSpoofedHeaders) => {
            headers.append(gw.identity_header.clone(), v);
        }
        Ok(v) => {
            headers.insert(gw.identity_header.clone(), v);
        }
        Err(_) => return forbidden(),
    }
    // 6. Forward.
    let Ok(body) = Limited::new(body, 1 << 20).collect().await.map(|c| c.to_bytes()) else {
        return reply(StatusCode::PAYLOAD_TOO_LARGE, "{\"error\":\"body too large\"}");
    };
    let target = match query {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    if websocket {
        return match on_upgrade {
            Some(up) => proxy_websocket(gw, up, &target, headers, session_until).await,
            None => reply(StatusCode::BAD_REQUEST, "{\"error\":\"websocket needs HTTP/1.1\"}"),
        };
    }
    let uri = match Uri::builder()
        .scheme(gw.upstream.scheme_str().unwrap_or("http"))
        .authority(gw.upstream.authority().map_or("127.0.0.1", |a| a.as_str()))
        .path_and_query(target)
        .build()
    {
        Ok(u) => u,
        Err(_) => return reply(StatusCode::BAD_REQUEST, "{\"error\":\"bad path\"}"),
    };
    // Only with the flaw: the path the answer is cached under.
    let cache_key = (gw.has(Flaw::SharedCache) && parts.method == http::Method::GET).then(|| uri.path().to_string());
    if let Some(key) = &cache_key {
        let hit = gw.cache.lock().ok().and_then(|c| c.get(key).cloned());
        if let Some((status, bytes)) = hit {
            let mut r = Response::new(Full::new(bytes));
            *r.status_mut() = status;
            return r;
        }
    }
    let mut up = Request::new(Full::new(body));
    *up.method_mut() = parts.method;
    *up.uri_mut() = uri;
    headers.remove(http::header::HOST);
    *up.headers_mut() = headers;
    match gw.client.request(up).await {
        Ok(resp) => {
            let status = resp.status();
            let bytes = resp.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
            if let Some(key) = cache_key.filter(|_| status == StatusCode::OK) {
                if let Ok(mut c) = gw.cache.lock() {
                    if c.len() < 1024 {
                        c.insert(key, (status, bytes.clone()));
                    }
                }
            }
            let mut r = Response::new(Full::new(bytes));
            *r.status_mut() = status;
            r
        }
        Err(_) => reply(StatusCode::BAD_GATEWAY, "{\"error\":\"upstream unavailable\"}"),
    }
}

/// Proxies an authorised WebSocket upgrade to the upstream: the upgrade request (already
/// filtered, identity injected) goes out on its own connection; a `101` from upstream is
/// passed back and both upgraded streams are joined.
async fn proxy_websocket(
    gw: &Gateway,
    on_upgrade: hyper::upgrade::OnUpgrade,
    target: &str,
    headers: HeaderMap,
    until: Option<u64>,
) -> Response<Full<Bytes>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let bad_gateway = || reply(StatusCode::BAD_GATEWAY, "{\"error\":\"upstream unavailable\"}");
    let authority = gw.upstream.authority().map_or("127.0.0.1:80", |a| a.as_str()).to_string();
    let Ok(mut up) = TcpStream::connect(&authority).await else { return bad_gateway() };
    let _ = up.set_nodelay(true);
    let mut head =
        format!("GET {target} HTTP/1.1\r\nhost: {authority}\r\nupgrade: websocket\r\nconnection: Upgrade\r\n");
    for (name, value) in &headers {
        if let Ok(v) = value.to_str() {
            head.push_str(&format!("{name}: {v}\r\n"));
        }
    }
    head.push_str("\r\n");
    if up.write_all(head.as_bytes()).await.is_err() {
        return bad_gateway();
    }
    // The upstream's answer head.
    let mut buf = Vec::with_capacity(1024);
    let (status, resp_headers, used) = loop {
        let mut chunk = [0u8; 2048];
        match up.read(&mut chunk).await {
            Ok(0) | Err(_) => return bad_gateway(),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        let mut hs = [httparse::EMPTY_HEADER; 32];
        let mut r = httparse::Response::new(&mut hs);
        match r.parse(&buf) {
            Ok(httparse::Status::Complete(used)) => {
                let mut h = HeaderMap::new();
                for x in r.headers.iter() {
                    if let (Ok(n), Ok(v)) =
                        (HeaderName::from_bytes(x.name.as_bytes()), HeaderValue::from_bytes(x.value))
                    {
                        h.append(n, v);
                    }
                }
                break (r.code.unwrap_or(502), h, used);
            }
            Ok(httparse::Status::Partial) if buf.len() < 16 * 1024 => continue,
            _ => return bad_gateway(),
        }
    };
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    if status != 101 {
        return resp;
    }
    for name in
        [http::header::UPGRADE, CONNECTION, http::header::SEC_WEBSOCKET_ACCEPT, http::header::SEC_WEBSOCKET_PROTOCOL]
    {
        if let Some(v) = resp_headers.get(&name) {
            resp.headers_mut().insert(name, v.clone());
        }
    }
    let early = buf.split_off(used);
    tokio::spawn(async move {
        let Ok(client) = on_upgrade.await else { return };
        let mut client = TokioIo::new(client);
        if !early.is_empty() && client.write_all(&early).await.is_err() {
            return;
        }
        // Cut the session when the token that authorised it expires.
        let expiry = async {
            match until {
                Some(exp) => {
                    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                    tokio::time::sleep(Duration::from_secs(exp).saturating_sub(now)).await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::io::copy_bidirectional(&mut client, &mut up) => {}
            _ = expiry => {}
        }
    });
    resp
}
