//! HTTP/3 over QUIC (quinn + h3): one QUIC connection per identity carries many concurrent
//! request streams; the engine shares it between workers through [`Protocol::fork`].
//!
//! Each generator thread owns one client endpoint (one UDP socket), created on first use on
//! that thread's runtime. TLS is 1.3 with ALPN `h3` and the identity's client certificate;
//! 0-RTT is off. A refused handshake — closed with a QUIC CRYPTO_ERROR (0x100 + TLS alert),
//! at connect or, since a TLS 1.3 server judges the client certificate after its own
//! handshake flight, on the first request — is the `tls_rejected` outcome; the codes seen
//! are kept per run ([`Http3::refusals`]).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Mutex;

use bytes::{Buf, Bytes};

use super::{Answer, Error, Prepared, Protocol, Tag};
use crate::conformance::{Broke, ErrorKind, Outcome};
use crate::scenario::{Identity, Target};
use crate::tls;

thread_local! {
    /// This generator thread's QUIC endpoint.
    static ENDPOINT: RefCell<Option<quinn::Endpoint>> = const { RefCell::new(None) };
}

/// A handle to an HTTP/3 connection.
pub struct Conn {
    send: h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>,
    quic: quinn::Connection,
    served: Rc<Cell<u64>>,
}

/// HTTP/3 to one target.
pub struct Http3 {
    addr: SocketAddr,
    via: Option<SocketAddr>,
    server_name: String,
    configs: Vec<quinn::ClientConfig>,
    refusals: Mutex<BTreeMap<u64, u64>>,
}

impl Http3 {
    /// One QUIC client config per identity.
    pub async fn new(target: &Target, identities: &[Identity]) -> Result<Self, Error> {
        if !target.tls {
            return Err(Error::NotTls);
        }
        let addr = super::conn::resolve(target).await?;
        let configs = identities
            .iter()
            .flat_map(|id| (0..id.members()).map(move |m| (id, m)))
            .map(|(id, m)| {
                let material = id.cert(m).map(|c| (c.chain.as_slice(), &c.key));
                tls::quic::client(&target.ca, material)
                    .map_err(|source| Error::Identity { name: id.name.clone(), source })
            })
            .collect::<Result<_, _>>()?;
        Ok(Http3 {
            addr,
            via: None,
            server_name: target.server_name.clone(),
            configs,
            refusals: Mutex::new(BTreeMap::new()),
        })
    }

    /// The resolved target address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends every datagram through `link` (a UDP impairment link forwarding to the target).
    pub fn via(&mut self, link: SocketAddr) {
        self.via = Some(link);
    }

    /// QUIC close codes of refused handshakes, with counts.
    pub fn refusals(&self) -> BTreeMap<u64, u64> {
        self.refusals.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn endpoint(&self) -> Result<quinn::Endpoint, Outcome> {
        ENDPOINT.with(|e| {
            let mut e = e.borrow_mut();
            if let Some(ep) = e.as_ref() {
                return Ok(ep.clone());
            }
            let bind: SocketAddr = if self.addr.is_ipv4() {
                ([127, 0, 0, 1], 0).into()
            } else {
                (std::net::Ipv6Addr::LOCALHOST, 0).into()
            };
            let bind = if self.addr.ip().is_loopback() { bind } else { SocketAddr::new(unspecified(self.addr), 0) };
            let ep = quinn::Endpoint::client(bind).map_err(|e| {
                Outcome::broken(ErrorKind::Connect, Broke::Other, format!("QUIC endpoint on {bind}: {e}"))
            })?;
            *e = Some(ep.clone());
            Ok(ep)
        })
    }

    /// What a failure on `quic` means: a TLS refusal (CRYPTO_ERROR close) or a broken
    /// connection. `at`: where on the connection (nothing answered on it yet, or stale).
    fn failure(&self, quic: &quinn::Connection, at: Broke, what: &str) -> Outcome {
        let reason = quic.close_reason();
        match crypto_close(reason.as_ref()) {
            Some(code) => {
                *self.refusals.lock().unwrap_or_else(|p| p.into_inner()).entry(code).or_default() += 1;
                if at == Broke::Fresh {
                    Outcome::TlsRejected
                } else {
                    Outcome::broken(ErrorKind::Tls, at, format!("QUIC closed with {}", describe_code(code)))
                }
            }
            None => {
                let at = if reason.is_some() { at } else { Broke::Other };
                let why = reason.map_or_else(|| what.to_string(), |r| format!("{what}: {r}"));
                Outcome::broken(ErrorKind::Reset, at, why)
            }
        }
    }
}

fn unspecified(a: SocketAddr) -> std::net::IpAddr {
    if a.is_ipv4() { std::net::Ipv4Addr::UNSPECIFIED.into() } else { std::net::Ipv6Addr::UNSPECIFIED.into() }
}

/// The QUIC error code when `e` is a CRYPTO_ERROR (0x100–0x1ff: a TLS alert).
fn crypto_close(e: Option<&quinn::ConnectionError>) -> Option<u64> {
    let code = match e? {
        quinn::ConnectionError::ConnectionClosed(c) => u64::from(c.error_code),
        quinn::ConnectionError::TransportError(t) => u64::from(t.code),
        _ => return None,
    };
    (0x100..0x200).contains(&code).then_some(code)
}

/// The TLS alert inside a QUIC CRYPTO_ERROR code, named when it is a common refusal.
pub fn describe_code(code: u64) -> String {
    let alert = code.wrapping_sub(0x100);
    let name = match alert {
        40 => "handshake_failure",
        42 => "bad_certificate",
        43 => "unsupported_certificate",
        45 => "certificate_expired",
        46 => "certificate_unknown",
        48 => "unknown_ca",
        49 => "access_denied",
        51 => "decrypt_error",
        116 => "certificate_required",
        120 => "no_application_protocol",
        _ => "tls alert",
    };
    format!("0x{code:x} ({name} {alert})")
}

impl Protocol for Http3 {
    type Conn = Conn;
    const NAME: &'static str = "h3";

    /// Refused handshakes by described close code.
    fn extras(&self) -> crate::proto::Extras {
        let quic_refusals = self.refusals().into_iter().map(|(c, n)| (describe_code(c), n)).collect();
        crate::proto::Extras { quic_refusals, followed_h3: false }
    }

    async fn connect(&self, identity: usize) -> Result<Conn, Outcome> {
        self.connect_to(identity, self.via.unwrap_or(self.addr)).await
    }

    async fn exchange(&self, c: &mut Conn, req: &Prepared, tag: Tag<'_>) -> Result<Answer, Outcome> {
        self.exchange_on(c, req, tag).await
    }

    fn fork(conn: &Conn) -> Option<Conn> {
        Some(Conn { send: conn.send.clone(), quic: conn.quic.clone(), served: conn.served.clone() })
    }

    fn is_open(conn: &Conn) -> bool {
        conn.quic.close_reason().is_none()
    }
}

impl Http3 {
    /// Opens a connection as `identity` to `to` (the target, a link, or an `Alt-Svc` port).
    pub async fn connect_to(&self, identity: usize, to: SocketAddr) -> Result<Conn, Outcome> {
        let ep = self.endpoint()?;
        let cfg = self
            .configs
            .get(identity)
            .cloned()
            .ok_or_else(|| Outcome::broken(ErrorKind::Connect, Broke::Other, "no QUIC config for this identity"))?;
        let connecting = ep
            .connect_with(cfg, to, &self.server_name)
            .map_err(|e| Outcome::broken(ErrorKind::Connect, Broke::Other, format!("QUIC connect to {to}: {e}")))?;
        let quic = match connecting.await {
            Ok(c) => c,
            Err(e) => {
                return Err(match crypto_close(Some(&e)) {
                    Some(code) => {
                        *self.refusals.lock().unwrap_or_else(|p| p.into_inner()).entry(code).or_default() += 1;
                        Outcome::TlsRejected
                    }
                    None => Outcome::broken(ErrorKind::Connect, Broke::Other, format!("QUIC handshake with {to}: {e}")),
                });
            }
        };
        let (mut driver, send) = match h3::client::new(h3_quinn::Connection::new(quic.clone())).await {
            Ok(x) => x,
            Err(_) => return Err(self.failure(&quic, Broke::Fresh, "HTTP/3 setup")),
        };
        tokio::spawn(async move {
            let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
        });
        Ok(Conn { send, quic, served: Rc::new(Cell::new(0)) })
    }

    /// Carries one request on `c`.
    pub async fn exchange_on(&self, c: &mut Conn, req: &Prepared, tag: Tag<'_>) -> Result<Answer, Outcome> {
        let keep = if req.keep_body { crate::proto::KEPT_BODY + 1 } else { 0 };
        let (head, body) = self.exchange_keeping(c, req, tag, keep).await?;
        let body = (req.keep_body && body.len() <= crate::proto::KEPT_BODY).then_some(body);
        Ok(Answer { status: head.status.as_u16(), body })
    }

    /// [`Http3::exchange_on`], returning the response head and the first `keep` bytes of the
    /// body (the rest is read and dropped).
    pub(crate) async fn exchange_keeping(
        &self,
        c: &mut Conn,
        req: &Prepared,
        tag: Tag<'_>,
        keep: usize,
    ) -> Result<(http::response::Parts, Vec<u8>), Outcome> {
        let at = if c.served.get() == 0 { Broke::Fresh } else { Broke::Stale };
        let (parts, _) = req.request(tag, true).into_parts();
        let head = http::Request::from_parts(parts, ());
        let result = async {
            let mut stream = c.send.send_request(head).await.ok()?;
            if !req.body.is_empty() {
                stream.send_data(req.body.clone()).await.ok()?;
            }
            stream.finish().await.ok()?;
            let resp = stream.recv_response().await.ok()?;
            let mut body = Vec::new();
            while let Some(mut chunk) = stream.recv_data().await.ok()? {
                let take = chunk.remaining().min(keep.saturating_sub(body.len()));
                if take > 0 {
                    body.extend_from_slice(&chunk.copy_to_bytes(take));
                }
                chunk.advance(chunk.remaining());
            }
            Some((resp.into_parts().0, body))
        }
        .await;
        match result {
            Some(r) => {
                c.served.set(c.served.get() + 1);
                Ok(r)
            }
            None => {
                // Let a closing connection record why before judging.
                let _ = tokio::time::timeout(std::time::Duration::from_millis(50), c.quic.closed()).await;
                Err(self.failure(&c.quic, at, "HTTP/3 request without an answer"))
            }
        }
    }
}
