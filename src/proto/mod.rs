//! The `Protocol` seam: one implementation per wire protocol, all driven by the same engine.
//!
//! A protocol knows how to open a connection *as one identity* and how to carry one
//! exchange on it; it knows nothing about rates, phases or verdicts. Failures come back as
//! [`Outcome`]s (data), never as errors that stop a run.

pub mod auto;
mod conn;
pub mod h1;
pub mod h2;
pub mod h3;
mod hpack;
pub mod probe;
pub mod ws;

use std::future::Future;

use bytes::Bytes;
use http::header::{HOST, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, Method, Request, Uri};
use http_body_util::Full;

pub use conn::{Connector, Error};

use crate::conformance::{Broke, ErrorKind, Outcome};
use crate::scenario::Varying;

/// The tag header name.
pub const TAG_HEADER: &str = "x-gauntlet-tag";
/// The tag query parameter name.
pub const TAG_PARAM: &str = "gauntlet_tag";

/// Bits of a tag's sequence number that carry the request index.
const SEQ_INDEX_BITS: u32 = 36;
/// Most network conditions a tag can name.
pub const MAX_CONDITIONS: usize = 1 << 12;

/// The sequence field of a tag: phase (16 bits), network condition (12 bits) and the
/// request's index in its phase (36 bits), so the oracle can attribute an arrival to the
/// phase and the condition it was sent under.
pub fn seq(phase: usize, condition: u16, i: u64) -> u64 {
    ((phase as u64) << 48)
        | ((u64::from(condition) & (MAX_CONDITIONS as u64 - 1)) << SEQ_INDEX_BITS)
        | (i & ((1 << SEQ_INDEX_BITS) - 1))
}

/// `(phase, condition)` of a sequence field made by [`seq`].
pub fn unseq(seq: u64) -> (usize, usize) {
    ((seq >> 48) as usize, ((seq >> SEQ_INDEX_BITS) as usize) & (MAX_CONDITIONS - 1))
}

/// The port of a same-host HTTP/3 alternative in an `Alt-Svc` value (`h3=":8443"; ma=3600`),
/// 0 when there is none.
pub fn alt_svc_h3(value: &[u8]) -> u16 {
    let v = String::from_utf8_lossy(value);
    v.split(',')
        .filter_map(|alt| alt.trim().strip_prefix("h3=\":"))
        .find_map(|rest| rest.split('"').next().and_then(|p| p.parse::<u16>().ok()))
        .unwrap_or(0)
}

/// The tag of one request: its text (`<run>.<check>.<seq>`) and the sequence number, which
/// also seeds per-request header values (`{seq}`, `{seq:ipv4}`).
#[derive(Debug, Clone, Copy)]
pub struct Tag<'a> {
    /// As sent.
    pub text: &'a str,
    /// The sequence field ([`seq`]).
    pub seq: u64,
}

/// The ALPN protocols a run over `kind` offers.
pub fn alpn(kind: crate::scenario::ProtocolKind) -> &'static [&'static [u8]] {
    use crate::scenario::ProtocolKind;
    match kind {
        ProtocolKind::H1 => h1::ALPN,
        ProtocolKind::H2 => h2::ALPN,
        ProtocolKind::Auto => auto::ALPN,
        ProtocolKind::H3 => crate::tls::quic::ALPN,
    }
}

/// What only some protocols report about a run, read once it is over (the summary shows it
/// without knowing which protocol ran).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extras {
    /// Refused QUIC handshakes, by described close code.
    pub quic_refusals: std::collections::BTreeMap<String, u64>,
    /// Whether an `auto` run followed an `Alt-Svc` announcement to HTTP/3.
    pub followed_h3: bool,
}

/// Most body bytes kept for a request that asks for its answer's body ([`Prepared::keep_body`]).
pub const KEPT_BODY: usize = 1 << 20;

/// What came back for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The status.
    pub status: u16,
    /// The whole body, when the request asked for it ([`Prepared::keep_body`]) and it was at
    /// most [`KEPT_BODY`] bytes long; `None` otherwise.
    pub body: Option<Vec<u8>>,
}

impl Answer {
    /// An answer whose body was not kept.
    pub fn status(status: u16) -> Self {
        Answer { status, body: None }
    }
}

/// Collects an answer's body for [`Answer::body`]: up to [`KEPT_BODY`] bytes, or nothing
/// once it is longer.
#[derive(Debug, Default)]
pub(crate) struct Keeper(Option<Vec<u8>>);

impl Keeper {
    /// Keeps the body when `keep`.
    pub(crate) fn new(keep: bool) -> Self {
        Keeper(keep.then(Vec::new))
    }

    /// Adds body bytes.
    pub(crate) fn add(&mut self, bytes: &[u8]) {
        if let Some(b) = &mut self.0 {
            if b.len() + bytes.len() > KEPT_BODY {
                self.0 = None;
            } else {
                b.extend_from_slice(bytes);
            }
        }
    }

    /// The body kept.
    pub(crate) fn take(self) -> Option<Vec<u8>> {
        self.0
    }
}

/// One protocol. The engine is generic over it; `app` picks the implementation.
pub trait Protocol: Send + Sync + 'static {
    /// Per-connection state.
    type Conn: 'static;
    /// Name for reports.
    const NAME: &'static str;
    /// Opens a connection as identity `identity` (TLS and client certificate pre-built).
    fn connect(&self, identity: usize) -> impl Future<Output = Result<Self::Conn, Outcome>>;
    /// Carries one request; returns the answer once its whole body has arrived.
    fn exchange(
        &self,
        conn: &mut Self::Conn,
        req: &Prepared,
        tag: Tag<'_>,
    ) -> impl Future<Output = Result<Answer, Outcome>>;
    /// For multiplexed connections: another handle to the same connection.
    fn fork(conn: &Self::Conn) -> Option<Self::Conn>;
    /// Whether the connection can carry another exchange.
    fn is_open(conn: &Self::Conn) -> bool;
    /// Whether a pooled connection, idle since its last exchange, is still usable: like
    /// [`Protocol::is_open`], but a protocol may also look (without blocking) whether the
    /// peer closed it meanwhile (a gateway's keep-alive timeout), so it is not reused.
    fn revalidate(conn: &mut Self::Conn) -> bool {
        Self::is_open(conn)
    }
    /// What this protocol alone reports about the run so far (default: nothing).
    fn extras(&self) -> Extras {
        Extras::default()
    }
}

/// Where the tag goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tagging {
    /// As `x-gauntlet-tag`.
    Header,
    /// As `?gauntlet_tag=`.
    Query,
    /// Not at all.
    Off,
}

/// Where prepared requests go and how they are tagged.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// `https`.
    pub tls: bool,
    /// `host:port` for `Host` / `:authority`.
    pub authority: Authority,
    /// Tag placement.
    pub tagging: Tagging,
}

/// A request template, built once per check at run start (tokens already minted).
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Identity index: which connections may carry it.
    pub identity: usize,
    /// Method.
    pub method: Method,
    /// Path and query exactly as sent.
    pub path: PathAndQuery,
    /// All headers except the tag (and, for h2, `host`).
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
    /// Headers whose value changes per request (rendered from the tag's sequence number).
    pub varying: Vec<(HeaderName, Varying)>,
    /// Tag placement.
    pub tagging: Tagging,
    /// A WebSocket session instead of a plain exchange (HTTP/1.1 only).
    pub websocket: Option<std::sync::Arc<(crate::scenario::WebSocket, std::sync::Arc<ws::Stats>)>>,
    /// The answer's body comes back in [`Answer::body`] (a replayed request compared with
    /// its recorded answer); otherwise it is read and dropped.
    pub keep_body: bool,
    scheme: Scheme,
    authority: Authority,
    origin_uri: Uri,
    absolute_uri: Uri,
    host: Option<HeaderValue>,
    h1_head: Vec<u8>,
    /// The fixed part of its HTTP/2 header block ([`h2::fixed_block`]), or why it cannot go
    /// over HTTP/2.
    pub(crate) h2_block: Result<Vec<u8>, String>,
}

impl Prepared {
    /// Builds a template. `headers` is everything the check and identity contribute.
    pub fn new(
        identity: usize,
        method: Method,
        path: &str,
        headers: HeaderMap,
        body: Bytes,
        endpoint: &Endpoint,
    ) -> Result<Self, http::Error> {
        let path: PathAndQuery = path.parse()?;
        let scheme = if endpoint.tls { Scheme::HTTPS } else { Scheme::HTTP };
        let authority = endpoint.authority.clone();
        let origin_uri = Uri::builder().path_and_query(path.clone()).build()?;
        let absolute_uri =
            Uri::builder().scheme(scheme.clone()).authority(authority.clone()).path_and_query(path.clone()).build()?;
        let tagging = endpoint.tagging;
        let host = HeaderValue::from_str(authority.as_str()).ok();
        let h1_head = h1_head(&method, &headers, &body, authority.as_str());
        let h2_block = h2::fixed_block(&method, endpoint.tls, authority.as_str(), &headers, &body);
        Ok(Prepared {
            identity,
            method,
            path,
            headers,
            body,
            varying: Vec::new(),
            tagging,
            websocket: None,
            keep_body: false,
            scheme,
            authority,
            origin_uri,
            absolute_uri,
            host,
            h1_head,
            h2_block,
        })
    }

    /// The `host[:port]` it is sent to (`Host` / `:authority`).
    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// Adds headers whose value is rendered per request.
    pub fn with_varying(mut self, varying: Vec<(HeaderName, Varying)>) -> Self {
        self.varying = varying;
        self
    }

    /// Whether a request with this method may be sent again when the first attempt died on
    /// a stale kept-alive connection before any response byte (RFC 9110 §9.2.2).
    pub fn idempotent(&self) -> bool {
        matches!(
            self.method,
            Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
        )
    }

    /// Makes this request a WebSocket upgrade followed by a session under `spec`.
    pub fn with_websocket(mut self, spec: crate::scenario::WebSocket, stats: std::sync::Arc<ws::Stats>) -> Self {
        ws::upgrade_headers(&mut self.headers);
        self.h1_head = h1_head(&self.method, &self.headers, &self.body, self.authority.as_str());
        self.websocket = Some(std::sync::Arc::new((spec, stats)));
        self
    }

    /// Extra time the exchange may take beyond the request timeout (a WebSocket session's
    /// `hold`).
    pub fn extra_time(&self) -> std::time::Duration {
        self.websocket.as_ref().map_or(std::time::Duration::ZERO, |w| w.0.hold)
    }

    /// Serialises the HTTP/1.1 request for one exchange into `out`.
    pub(crate) fn write_h1(&self, out: &mut Vec<u8>, tag: Tag<'_>) {
        let (seq, tag) = (tag.seq, tag.text);
        out.extend_from_slice(self.method.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.path.as_str().as_bytes());
        if self.tagging == Tagging::Query {
            out.push(if self.path.query().is_some() { b'&' } else { b'?' });
            out.extend_from_slice(TAG_PARAM.as_bytes());
            out.push(b'=');
            out.extend_from_slice(tag.as_bytes());
        }
        out.extend_from_slice(b" HTTP/1.1\r\n");
        out.extend_from_slice(&self.h1_head);
        for (name, v) in &self.varying {
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            v.render(seq, out);
            out.extend_from_slice(b"\r\n");
        }
        if self.tagging == Tagging::Header {
            out.extend_from_slice(TAG_HEADER.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(tag.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
    }

    /// The hyper request for one exchange. `absolute` for h2 (`:scheme`/`:authority`).
    pub(crate) fn request(&self, tag: Tag<'_>, absolute: bool) -> Request<Full<Bytes>> {
        let (seq, tag) = (tag.seq, tag.text);
        let uri = match self.tagging {
            Tagging::Query => {
                let sep = if self.path.query().is_some() { '&' } else { '?' };
                let pq = format!("{}{sep}{TAG_PARAM}={tag}", self.path.as_str());
                let b = Uri::builder().path_and_query(pq);
                let b = if absolute { b.scheme(self.scheme.clone()).authority(self.authority.clone()) } else { b };
                b.build().unwrap_or_else(|_| self.origin_uri.clone())
            }
            _ if absolute => self.absolute_uri.clone(),
            _ => self.origin_uri.clone(),
        };
        let mut req = Request::new(Full::new(self.body.clone()));
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = uri;
        let h = req.headers_mut();
        h.clone_from(&self.headers);
        if !absolute && !h.contains_key(HOST) {
            if let Some(v) = &self.host {
                h.insert(HOST, v.clone());
            }
        }
        for (name, v) in &self.varying {
            let mut buf = Vec::with_capacity(32);
            v.render(seq, &mut buf);
            if let Ok(v) = HeaderValue::from_bytes(&buf) {
                h.append(name.clone(), v);
            }
        }
        if self.tagging == Tagging::Header {
            if let Ok(mut v) = HeaderValue::from_str(tag) {
                // Unique per request: HPACK must never index it. Indexed, every tag went into
                // the dynamic table, evicting the constant headers, after a value search
                // along every earlier tag (2-4 % of an h2 generator's CPU); the server paid
                // the same to decode it.
                v.set_sensitive(true);
                h.insert(HeaderName::from_static(TAG_HEADER), v);
            }
        }
        req
    }
}

/// The fixed part of an HTTP/1.1 request head: `host` (unless the check sets one), the
/// check's and identity's headers in order, and `content-length` when a body needs one and
/// the check did not frame it itself.
fn h1_head(method: &Method, headers: &HeaderMap, body: &Bytes, authority: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    if !headers.contains_key(HOST) {
        out.extend_from_slice(b"host: ");
        out.extend_from_slice(authority.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let framed =
        headers.contains_key(http::header::CONTENT_LENGTH) || headers.contains_key(http::header::TRANSFER_ENCODING);
    let needs = !body.is_empty() || matches!(*method, Method::POST | Method::PUT | Method::PATCH);
    if needs && !framed {
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The longest cause text kept for one error.
const CAUSE_MAX: usize = 240;

/// An error and its sources as one line (`a: b: c`, repeats dropped), bounded in length.
pub(crate) fn describe(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = String::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        let t = e.to_string();
        if !t.is_empty() && !out.contains(&t) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&t);
        }
        cur = e.source();
    }
    crate::conformance::truncate(&mut out, CAUSE_MAX);
    out
}

/// Classifies a failed exchange from its error chain. `at`: where on the connection it broke
/// if it was a close or reset (a refusal, a stale kept-alive connection, or anything else).
pub(crate) fn failure(err: &(dyn std::error::Error + 'static), at: Broke) -> Outcome {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    let mut kind = ErrorKind::Reset;
    // An alert is a refusal only before the answer began: after its first byte it breaks an
    // answer the server had started to give (`Broke::Other` on a TLS connection).
    let refusal = |o: Outcome| match o {
        Outcome::TlsRejected if at == Broke::Other => Outcome::broken(
            ErrorKind::Tls,
            Broke::Other,
            format!("a TLS alert in the middle of the response: {}", describe(err)),
        ),
        o => o,
    };
    while let Some(e) = cur {
        if let Some(t) = e.downcast_ref::<rustls::Error>() {
            return refusal(tls_failure(t));
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Some(t) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                return refusal(tls_failure(t));
            }
            if io.kind() == std::io::ErrorKind::TimedOut {
                return Outcome::TimedOut;
            }
        }
        // h2 flattens I/O errors to their text, losing the rustls type: recognise the alert
        // by rustls's own wording.
        if e.to_string().contains("received fatal alert") {
            return refusal(Outcome::TlsRejected);
        }
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            if h.is_parse() || h.is_parse_status() || h.is_user() {
                kind = ErrorKind::Protocol;
            }
        }
        cur = e.source();
    }
    let at = if kind == ErrorKind::Protocol { Broke::Other } else { at };
    Outcome::broken(kind, at, describe(err))
}

/// A TLS error: an alert from the peer is a refusal; anything else is a local TLS error
/// (for example the gateway's certificate does not verify against the configured CA).
pub(crate) fn tls_failure(e: &rustls::Error) -> Outcome {
    match e {
        rustls::Error::AlertReceived(_) => Outcome::TlsRejected,
        _ => Outcome::broken(ErrorKind::Tls, Broke::Other, e),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn error_chains_become_one_bounded_line() {
        let inner = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        let outer = std::io::Error::other(inner);
        assert_eq!(super::describe(&outer), "reset by peer");
        let long = std::io::Error::other("é".repeat(400));
        let d = super::describe(&long);
        assert!(d.len() <= super::CAUSE_MAX + 3 && d.ends_with('…'));
    }

    /// A fatal alert before any answer byte is the gateway refusing the client; after the
    /// answer began, it is a broken answer (never counted as a refusal).
    #[test]
    fn a_tls_alert_is_a_refusal_only_before_the_answer_began() {
        use super::{Broke, ErrorKind, Outcome, failure};
        let alert = || std::io::Error::other(rustls::Error::AlertReceived(rustls::AlertDescription::BadCertificate));
        let text = || std::io::Error::other("received fatal alert: BadCertificate");
        for e in [alert(), text()] {
            assert_eq!(failure(&e, Broke::Fresh), Outcome::TlsRejected);
            assert_eq!(failure(&e, Broke::Stale), Outcome::TlsRejected);
            match failure(&e, Broke::Other) {
                Outcome::Broken { kind: ErrorKind::Tls, at: Broke::Other, cause } => {
                    assert!(cause.is_some_and(|c| c.contains("in the middle of the response")))
                }
                o => panic!("{o:?}"),
            }
        }
    }

    #[test]
    fn alt_svc_names_a_same_host_h3_port() {
        assert_eq!(super::alt_svc_h3(br#"h3=":8443"; ma=3600"#), 8443);
        assert_eq!(super::alt_svc_h3(br#"h2=":443", h3=":4433""#), 4433);
        assert_eq!(super::alt_svc_h3(br#"h3="other.example:443""#), 0);
        assert_eq!(super::alt_svc_h3(b"clear"), 0);
    }
}
