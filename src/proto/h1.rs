//! HTTP/1.1 over hyper: one request at a time per connection, kept alive and pooled by the
//! engine.

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use super::conn::{Connector, Stream};
use super::{Prepared, Protocol, failure};
use crate::conformance::Outcome;

/// ALPN offered by [`Http1`].
pub const ALPN: &[&[u8]] = &[b"http/1.1"];

/// An HTTP/1.1 connection.
pub struct Conn {
    sender: hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>,
    served: u64,
    tls: bool,
}

/// HTTP/1.1.
pub struct Http1 {
    connector: Connector,
}

impl Http1 {
    /// Uses `connector`, which must offer [`ALPN`].
    pub fn new(connector: Connector) -> Self {
        Http1 { connector }
    }
}

pub(crate) async fn handshake(stream: Stream) -> Result<Conn, Outcome> {
    let tls = stream.is_tls();
    let (sender, conn) = hyper::client::conn::http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|e| failure(&e, false))?;
    tokio::spawn(async move {
        // The connection ends when the sender is dropped or the peer closes; either is fine.
        let _ = conn.await;
    });
    Ok(Conn { sender, served: 0, tls })
}

pub(crate) async fn exchange(c: &mut Conn, req: &Prepared, tag: &str) -> Result<u16, Outcome> {
    // Fresh: nothing has been served on this TLS connection yet, so a failure now is the
    // gateway refusing the client (TLS 1.3 reports a rejected certificate after the handshake).
    let fresh = c.served == 0 && c.tls;
    c.sender.ready().await.map_err(|e| failure(&e, fresh))?;
    let resp = c.sender.send_request(req.request(tag, false)).await.map_err(|e| failure(&e, fresh))?;
    let status = resp.status().as_u16();
    drain(resp.into_body()).await.map_err(|e| failure(&e, false))?;
    c.served += 1;
    Ok(status)
}

/// Reads a body to its end without keeping it.
pub(crate) async fn drain(mut body: Incoming) -> Result<u64, hyper::Error> {
    let mut n = 0u64;
    while let Some(frame) = body.frame().await {
        if let Some(d) = frame?.data_ref() {
            n += d.len() as u64;
        }
    }
    Ok(n)
}

impl Protocol for Http1 {
    type Conn = Conn;
    const NAME: &'static str = "h1";

    async fn connect(&self, identity: usize) -> Result<Conn, Outcome> {
        let (stream, _) = self.connector.dial(identity).await?;
        handshake(stream).await
    }

    async fn exchange(&self, conn: &mut Conn, req: &Prepared, tag: &str) -> Result<u16, Outcome> {
        exchange(conn, req, tag).await
    }

    fn fork(_: &Conn) -> Option<Conn> {
        None
    }

    fn is_open(conn: &Conn) -> bool {
        !conn.sender.is_closed()
    }
}
