//! Protocol by negotiation: offers `h2` and `http/1.1` and speaks what ALPN picks
//! (HTTP/1.1 on plain http, where there is no ALPN) — and follows `Alt-Svc`: once a response
//! announces a same-host HTTP/3 alternative (`h3=":PORT"`), TCP connections are retired and
//! new ones are QUIC, as a browser would upgrade.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};

use super::conn::Connector;
use super::{Answer, Prepared, Protocol, Tag, h1, h2, h3};
use crate::conformance::{Broke, ErrorKind, Outcome};

/// ALPN offered by [`Auto`].
pub const ALPN: &[&[u8]] = &[b"h2", b"http/1.1"];

/// A connection of whichever version was negotiated.
pub enum Conn {
    /// HTTP/1.1.
    H1(h1::Conn, Arc<AtomicU16>),
    /// HTTP/2.
    H2(h2::Conn, Arc<AtomicU16>),
    /// HTTP/3, after an `Alt-Svc` announcement.
    H3(h3::Conn),
}

/// Negotiated HTTP version.
pub struct Auto {
    connector: Connector,
    /// HTTP/3 to the target's host, when the target is https.
    h3: Option<h3::Http3>,
    /// The announced HTTP/3 port (0: none yet).
    alt: Arc<AtomicU16>,
}

impl Auto {
    /// Uses `connector`, which must offer [`ALPN`]; `h3` follows `Alt-Svc` when given.
    pub fn new(connector: Connector, h3: Option<h3::Http3>) -> Self {
        Auto { connector, h3, alt: Arc::new(AtomicU16::new(0)) }
    }

    /// Whether connections now go over HTTP/3.
    pub fn follows_h3(&self) -> bool {
        self.alt.load(Ordering::Relaxed) != 0
    }

    fn learn(&self, port: u16) {
        if port != 0 && self.h3.is_some() {
            self.alt.store(port, Ordering::Relaxed);
        }
    }
}

impl Protocol for Auto {
    type Conn = Conn;
    const NAME: &'static str = "auto";

    /// QUIC refusals seen after following `Alt-Svc`, and whether it was followed.
    fn extras(&self) -> crate::proto::Extras {
        let quic_refusals = self.h3.as_ref().map(|h| h.extras().quic_refusals).unwrap_or_default();
        crate::proto::Extras { quic_refusals, followed_h3: self.follows_h3() }
    }

    async fn connect(&self, identity: usize) -> Result<Conn, Outcome> {
        let port = self.alt.load(Ordering::Relaxed);
        if let (Some(h3), true) = (&self.h3, port != 0) {
            let to = SocketAddr::new(h3.addr().ip(), port);
            return h3.connect_to(identity, to).await.map(Conn::H3);
        }
        let (stream, alpn) = self.connector.dial(identity).await?;
        if alpn.as_deref() == Some(b"h2".as_slice()) {
            h2::handshake(stream).await.map(|c| Conn::H2(c, self.alt.clone()))
        } else {
            Ok(Conn::H1(h1::handshake(stream), self.alt.clone()))
        }
    }

    async fn exchange(&self, conn: &mut Conn, req: &Prepared, tag: Tag<'_>) -> Result<Answer, Outcome> {
        match conn {
            Conn::H1(c, _) => {
                let answer = h1::exchange(c, req, tag).await?;
                self.learn(c.alt_h3);
                Ok(answer)
            }
            Conn::H2(c, _) => {
                let (answer, alt) = h2::exchange_alt(c, req, tag).await?;
                self.learn(alt);
                Ok(answer)
            }
            Conn::H3(c) => match &self.h3 {
                Some(h3) => h3.exchange(c, req, tag).await,
                None => Err(Outcome::broken(ErrorKind::Protocol, Broke::Other, "an HTTP/3 connection without HTTP/3")),
            },
        }
    }

    fn fork(conn: &Conn) -> Option<Conn> {
        match conn {
            Conn::H1(..) => None,
            Conn::H2(c, alt) => Some(Conn::H2(h2::fork(c), alt.clone())),
            Conn::H3(c) => <h3::Http3 as Protocol>::fork(c).map(Conn::H3),
        }
    }

    fn revalidate(conn: &mut Conn) -> bool {
        match conn {
            Conn::H1(c, alt) => alt.load(Ordering::Relaxed) == 0 && h1::revalidate(c),
            _ => Self::is_open(conn),
        }
    }

    fn is_open(conn: &Conn) -> bool {
        match conn {
            // Once HTTP/3 is announced, TCP connections retire so new ones go over QUIC.
            Conn::H1(c, alt) => alt.load(Ordering::Relaxed) == 0 && <h1::Http1 as Protocol>::is_open(c),
            Conn::H2(c, alt) => alt.load(Ordering::Relaxed) == 0 && h2::is_open(c),
            Conn::H3(c) => <h3::Http3 as Protocol>::is_open(c),
        }
    }
}
