//! Protocol by negotiation: offers `h2` and `http/1.1` and speaks what ALPN picks
//! (HTTP/1.1 on plain http, where there is no ALPN).

use super::conn::Connector;
use super::{Prepared, Protocol, h1, h2};
use crate::conformance::Outcome;

/// ALPN offered by [`Auto`].
pub const ALPN: &[&[u8]] = &[b"h2", b"http/1.1"];

/// A connection of whichever version was negotiated.
pub enum Conn {
    /// HTTP/1.1.
    H1(h1::Conn),
    /// HTTP/2.
    H2(h2::Conn),
}

/// Negotiated HTTP version.
pub struct Auto {
    connector: Connector,
}

impl Auto {
    /// Uses `connector`, which must offer [`ALPN`].
    pub fn new(connector: Connector) -> Self {
        Auto { connector }
    }
}

impl Protocol for Auto {
    type Conn = Conn;
    const NAME: &'static str = "auto";

    async fn connect(&self, identity: usize) -> Result<Conn, Outcome> {
        let (stream, alpn) = self.connector.dial(identity).await?;
        if alpn.as_deref() == Some(b"h2".as_slice()) {
            h2::handshake(stream).await.map(Conn::H2)
        } else {
            Ok(Conn::H1(h1::handshake(stream)))
        }
    }

    async fn exchange(&self, conn: &mut Conn, req: &Prepared, tag: &str) -> Result<u16, Outcome> {
        match conn {
            Conn::H1(c) => h1::exchange(c, req, tag).await,
            Conn::H2(c) => h2::exchange(c, req, tag).await,
        }
    }

    fn fork(conn: &Conn) -> Option<Conn> {
        match conn {
            Conn::H1(_) => None,
            Conn::H2(c) => Some(Conn::H2(h2::fork(c))),
        }
    }

    fn is_open(conn: &Conn) -> bool {
        match conn {
            Conn::H1(c) => <h1::Http1 as Protocol>::is_open(c),
            Conn::H2(c) => h2::is_open(c),
        }
    }
}
