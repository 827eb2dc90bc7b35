//! HTTP/2 over hyper: many concurrent streams per connection. The engine shares one
//! connection between workers through [`Protocol::fork`].

use std::cell::Cell;
use std::rc::Rc;

use hyper_util::rt::{TokioExecutor, TokioIo};

use super::conn::{Connector, Stream};
use super::{Answer, Keeper, Prepared, Protocol, Tag, failure};
use crate::conformance::{Broke, Outcome};

/// ALPN offered by [`Http2`].
pub const ALPN: &[&[u8]] = &[b"h2"];

/// A handle to an HTTP/2 connection.
pub struct Conn {
    pub(crate) sender: hyper::client::conn::http2::SendRequest<http_body_util::Full<bytes::Bytes>>,
    served: Rc<Cell<u64>>,
    tls: bool,
}

/// HTTP/2 (over TLS with ALPN `h2`, or prior knowledge on plain http).
pub struct Http2 {
    connector: Connector,
}

impl Http2 {
    /// Uses `connector`, which must offer [`ALPN`].
    pub fn new(connector: Connector) -> Self {
        Http2 { connector }
    }
}

pub(crate) async fn handshake(stream: Stream) -> Result<Conn, Outcome> {
    let tls = stream.is_tls();
    let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .initial_stream_window_size(1 << 20)
        .initial_connection_window_size(4 << 20)
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|e| failure(&e, if tls { Broke::Fresh } else { Broke::Other }))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(Conn { sender, served: Rc::new(Cell::new(0)), tls })
}

pub(crate) async fn exchange(c: &mut Conn, req: &Prepared, tag: Tag<'_>) -> Result<Answer, Outcome> {
    exchange_alt(c, req, tag).await.map(|(answer, _)| answer)
}

/// Whether `err` says the connection went away (GOAWAY, a refused stream, EOF, reset)
/// rather than that the server answered this stream with an error.
fn connection_gone(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(h) = e.downcast_ref::<h2::Error>() {
            if h.is_go_away() || h.reason() == Some(h2::Reason::REFUSED_STREAM) || h.is_io() {
                return true;
            }
        }
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            if h.is_canceled() || h.is_incomplete_message() {
                return true;
            }
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            if matches!(io.kind(), UnexpectedEof | ConnectionReset | BrokenPipe | ConnectionAborted) {
                return true;
            }
        }
        cur = e.source();
    }
    false
}

/// [`exchange`], also returning the HTTP/3 port an `Alt-Svc` header announced (0: none).
pub(crate) async fn exchange_alt(c: &mut Conn, req: &Prepared, tag: Tag<'_>) -> Result<(Answer, u16), Outcome> {
    // Before any response header: on a connection that has answered nothing yet, a refusal
    // (see h1); on one that has, a stale connection the server closed.
    let unanswered = match (c.served.get(), c.tls) {
        (0, true) => Broke::Fresh,
        (0, false) => Broke::Other,
        _ => Broke::Stale,
    };
    let before_answer = |e: &hyper::Error| {
        let at = if connection_gone(e) { unanswered } else { Broke::Other };
        match (failure(e, at), at) {
            (Outcome::Broken { kind, at, .. }, Broke::Stale | Broke::Fresh) => {
                let which = if at == Broke::Stale { "kept-alive" } else { "new" };
                Outcome::broken(
                    kind,
                    at,
                    format!("the server closed the {which} connection without answering ({})", super::describe(e)),
                )
            }
            (o, _) => o,
        }
    };
    c.sender.ready().await.map_err(|e| before_answer(&e))?;
    let resp = c.sender.send_request(req.request(tag, true)).await.map_err(|e| before_answer(&e))?;
    let status = resp.status().as_u16();
    let alt = resp.headers().get(http::header::ALT_SVC).map_or(0, |v| super::alt_svc_h3(v.as_bytes()));
    let body = drain(resp.into_body(), Keeper::new(req.keep_body)).await.map_err(|e| failure(&e, Broke::Other))?;
    c.served.set(c.served.get() + 1);
    Ok((Answer { status, body }, alt))
}

/// Reads a body to its end, handing it to `kept`.
async fn drain(mut body: hyper::body::Incoming, mut kept: Keeper) -> Result<Option<Vec<u8>>, hyper::Error> {
    use http_body_util::BodyExt;
    while let Some(frame) = body.frame().await {
        if let Some(d) = frame?.data_ref() {
            kept.add(d);
        }
    }
    Ok(kept.take())
}

pub(crate) fn fork(c: &Conn) -> Conn {
    Conn { sender: c.sender.clone(), served: c.served.clone(), tls: c.tls }
}

pub(crate) fn is_open(c: &Conn) -> bool {
    !c.sender.is_closed()
}

impl Protocol for Http2 {
    type Conn = Conn;
    const NAME: &'static str = "h2";

    async fn connect(&self, identity: usize) -> Result<Conn, Outcome> {
        let (stream, _) = self.connector.dial(identity).await?;
        handshake(stream).await
    }

    async fn exchange(&self, conn: &mut Conn, req: &Prepared, tag: Tag<'_>) -> Result<Answer, Outcome> {
        exchange(conn, req, tag).await
    }

    fn fork(conn: &Conn) -> Option<Conn> {
        Some(fork(conn))
    }

    fn is_open(conn: &Conn) -> bool {
        is_open(conn)
    }
}
