//! HTTP/1.1: one request at a time per connection, kept alive and pooled by the engine.
//!
//! The exchange runs inline on the worker task: the request head is pre-serialised per
//! check (only the tag varies), the response head is parsed with `httparse`, and the body is
//! framed and discarded here (Content-Length, chunked, or close-delimited; none for HEAD,
//! 1xx, 204 and 304). This avoids a connection task, channels and header maps per request —
//! hyper's client costs about twice the CPU per request (see ARCHITECTURE.md, "Why h1 is
//! hand-framed"). hyper is still the HTTP/2 client and the server of every in-process target.

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::conn::{Connector, Stream};
use super::{Prepared, Protocol, failure};
use crate::conformance::{ErrorKind, Outcome};

/// ALPN offered by [`Http1`].
pub const ALPN: &[&[u8]] = &[b"http/1.1"];

const READ_CHUNK: usize = 16 * 1024;
const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 128;

/// An HTTP/1.1 connection with its buffers.
pub struct Conn {
    io: Stream,
    rbuf: Vec<u8>,
    start: usize,
    end: usize,
    wbuf: Vec<u8>,
    served: u64,
    tls: bool,
    open: bool,
    /// The HTTP/3 port the last response announced (`Alt-Svc`), 0 when none.
    pub(crate) alt_h3: u16,
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

pub(crate) fn handshake(stream: Stream) -> Conn {
    let tls = stream.is_tls();
    Conn {
        io: stream,
        rbuf: vec![0; READ_CHUNK],
        start: 0,
        end: 0,
        wbuf: Vec::with_capacity(1024),
        served: 0,
        tls,
        open: true,
        alt_h3: 0,
    }
}

fn io_failure(e: &io::Error, fresh: bool) -> Outcome {
    failure(e, fresh)
}

fn protocol() -> Outcome {
    Outcome::Broken { kind: ErrorKind::Protocol, fresh: false }
}

/// How the response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

impl Conn {
    /// Reads more bytes into the buffer; `Ok(0)` at EOF.
    async fn fill(&mut self) -> io::Result<usize> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.rbuf.len() {
            if self.start > 0 {
                self.rbuf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                let n = self.rbuf.len();
                self.rbuf.resize(n * 2, 0);
            }
        }
        let n = self.io.read(&mut self.rbuf[self.end..]).await?;
        self.end += n;
        Ok(n)
    }

    fn buffered(&self) -> &[u8] {
        &self.rbuf[self.start..self.end]
    }

    /// Reads and parses one response head: status, body framing, and whether the server
    /// closes the connection after it. Interim (1xx) responses are skipped.
    async fn head(&mut self, head_request: bool, fresh: bool) -> Result<Head, Outcome> {
        loop {
            match parse_head(&self.rbuf[self.start..self.end], head_request)? {
                Some((n, None)) => self.start += n,
                Some((n, Some(head))) => {
                    self.start += n;
                    return Ok(head);
                }
                None => {
                    if self.end - self.start >= MAX_HEAD {
                        return Err(protocol());
                    }
                    match self.fill().await {
                        Ok(0) => return Err(Outcome::Broken { kind: ErrorKind::Reset, fresh }),
                        Ok(_) => {}
                        Err(e) => return Err(io_failure(&e, fresh)),
                    }
                }
            }
        }
    }

    /// Discards exactly `n` body bytes.
    async fn skip(&mut self, mut n: u64) -> Result<(), Outcome> {
        loop {
            let have = (self.end - self.start) as u64;
            if have >= n {
                self.start += n as usize;
                return Ok(());
            }
            n -= have;
            self.start = self.end;
            match self.fill().await {
                Ok(0) => return Err(Outcome::Broken { kind: ErrorKind::Reset, fresh: false }),
                Ok(_) => {}
                Err(e) => return Err(io_failure(&e, false)),
            }
        }
    }

    /// One CRLF-terminated line (without the CRLF), as an owned range into the buffer.
    async fn line(&mut self) -> Result<(usize, usize), Outcome> {
        loop {
            if let Some(i) = self.buffered().windows(2).position(|w| w == b"\r\n") {
                let r = (self.start, self.start + i);
                self.start += i + 2;
                return Ok(r);
            }
            if self.end - self.start >= MAX_HEAD {
                return Err(protocol());
            }
            match self.fill().await {
                Ok(0) => return Err(Outcome::Broken { kind: ErrorKind::Reset, fresh: false }),
                Ok(_) => {}
                Err(e) => return Err(io_failure(&e, false)),
            }
        }
    }

    async fn chunked(&mut self) -> Result<(), Outcome> {
        loop {
            let (a, b) = self.line().await?;
            let line = &self.rbuf[a..b];
            let size_part = line.split(|c| *c == b';').next().unwrap_or_default().trim_ascii();
            let size = std::str::from_utf8(size_part)
                .ok()
                .filter(|s| !s.is_empty())
                .and_then(|s| u64::from_str_radix(s, 16).ok())
                .ok_or_else(protocol)?;
            if size == 0 {
                // Trailer section, up to an empty line.
                loop {
                    let (a, b) = self.line().await?;
                    if a == b {
                        return Ok(());
                    }
                }
            }
            self.skip(size).await?;
            let (a, b) = self.line().await?;
            if a != b {
                return Err(protocol());
            }
        }
    }

    async fn until_close(&mut self) -> Result<(), Outcome> {
        loop {
            self.start = self.end;
            match self.fill().await {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(io_failure(&e, false)),
            }
        }
    }
}

/// Parses a response head at the start of `buf`. `None`: incomplete. `Some((n, None))`: an
/// interim response of `n` bytes to skip. `Some((n, Some(head)))`: the final head.
///
/// Synchronous on purpose: the header array stays on the stack instead of inflating (and
/// being copied with) every exchange future.
#[allow(clippy::type_complexity)]
/// A parsed response head: status, body framing, whether the server closes after it, and the
/// HTTP/3 port an `Alt-Svc: h3=":PORT"` header announced (0: none).
type Head = (u16, Framing, bool, u16);

fn parse_head(buf: &[u8], head_request: bool) -> Result<Option<(usize, Option<Head>)>, Outcome> {
    let mut headers = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let n = match httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut resp, buf, &mut headers) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(protocol()),
    };
    let status = resp.code.unwrap_or(0);
    if (100..200).contains(&status) && status != 101 {
        return Ok(Some((n, None))); // 100 Continue, 103 Early Hints
    }
    let http10 = resp.version == Some(0);
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut close = http10;
    let mut alt = 0;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let v = std::str::from_utf8(h.value).ok().and_then(|s| s.trim().parse::<u64>().ok());
            match (v, length) {
                (Some(v), None) => length = Some(v),
                (Some(v), Some(l)) if v == l => {}
                _ => return Err(protocol()),
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = h
                .value
                .rsplit(|b| *b == b',')
                .next()
                .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if h.name.eq_ignore_ascii_case("alt-svc") {
            alt = super::alt_svc_h3(h.value);
        } else if h.name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|b| *b == b',') {
                let t = token.trim_ascii();
                if t.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if t.eq_ignore_ascii_case(b"keep-alive") && http10 {
                    close = false;
                }
            }
        }
    }
    let framing = if head_request || status == 204 || status == 304 || status == 101 {
        Framing::None
    } else if chunked {
        Framing::Chunked
    } else if let Some(l) = length {
        Framing::Length(l)
    } else {
        Framing::UntilClose
    };
    Ok(Some((n, Some((status, framing, close || status == 101, alt)))))
}

pub(crate) async fn exchange(c: &mut Conn, req: &Prepared, tag: &str) -> Result<u16, Outcome> {
    // Fresh: nothing has been served on this TLS connection yet, so a failure now is the
    // gateway refusing the client (TLS 1.3 reports a rejected certificate after the handshake).
    let fresh = c.served == 0 && c.tls;
    c.open = false; // until the exchange completes cleanly
    c.wbuf.clear();
    req.write_h1(&mut c.wbuf, tag);
    if let Err(e) = c.io.write_all(&c.wbuf).await {
        return Err(io_failure(&e, fresh));
    }
    if let Err(e) = c.io.flush().await {
        return Err(io_failure(&e, fresh));
    }
    let (status, framing, close, alt) = c.head(req.method == http::Method::HEAD, fresh).await?;
    c.alt_h3 = alt;
    if let (101, Some(w)) = (status, &req.websocket) {
        // Upgraded: the connection now carries the session and is never reused.
        c.served += 1;
        let end = super::ws::session(&mut c.io, &w.0, &w.1).await;
        if w.0.must_close && end == super::ws::End::Held {
            return Err(Outcome::KeptOpen);
        }
        return Ok(status);
    }
    match framing {
        Framing::None => {}
        Framing::Length(n) => c.skip(n).await?,
        Framing::Chunked => c.chunked().await?,
        Framing::UntilClose => c.until_close().await?,
    }
    c.served += 1;
    c.open = !close && framing != Framing::UntilClose;
    Ok(status)
}

impl Protocol for Http1 {
    type Conn = Conn;
    const NAME: &'static str = "h1";

    async fn connect(&self, identity: usize) -> Result<Conn, Outcome> {
        let (stream, _) = self.connector.dial(identity).await?;
        Ok(handshake(stream))
    }

    async fn exchange(&self, conn: &mut Conn, req: &Prepared, tag: &str) -> Result<u16, Outcome> {
        exchange(conn, req, tag).await
    }

    fn fork(_: &Conn) -> Option<Conn> {
        None
    }

    fn is_open(conn: &Conn) -> bool {
        conn.open
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Endpoint, Tagging};
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    /// Serves `responses` (raw bytes, one per request read) on a fresh loopback socket and
    /// runs one exchange per response; returns each status or outcome and the requests seen.
    async fn script(responses: Vec<&'static [u8]>, method: http::Method) -> (Vec<Result<u16, Outcome>>, Vec<String>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let n = responses.len();
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut seen = Vec::new();
            for r in responses {
                let mut buf = vec![0u8; 4096];
                let k = s.read(&mut buf).await.unwrap();
                seen.push(String::from_utf8_lossy(&buf[..k]).into_owned());
                s.write_all(r).await.unwrap();
            }
            s.shutdown().await.ok();
            seen
        });
        let tcp = TcpStream::connect(addr).await.unwrap();
        let mut c = handshake(Stream::Plain(tcp));
        let ep = Endpoint { tls: false, authority: "gw.test:80".parse().unwrap(), tagging: Tagging::Header };
        let req = Prepared::new(0, method, "/a?b=1", http::HeaderMap::new(), bytes::Bytes::new(), &ep).unwrap();
        let mut out = Vec::new();
        for i in 0..n {
            let r = exchange(&mut c, &req, &format!("run.C.{i}")).await;
            let stop = r.is_err() || !c.open;
            out.push(r);
            if stop {
                break;
            }
        }
        (out, server.await.unwrap())
    }

    #[tokio::test]
    async fn keeps_alive_across_length_chunked_and_interim_responses() {
        let (out, seen) = script(
            vec![
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\nnope\r\n0\r\nX-Trailer: 1\r\n\r\n",
                b"HTTP/1.1 204 No Content\r\n\r\n",
                b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            ],
            http::Method::GET,
        )
        .await;
        assert_eq!(out, vec![Ok(200), Ok(403), Ok(204), Ok(401)]);
        assert!(seen[0].starts_with("GET /a?b=1 HTTP/1.1\r\nhost: gw.test:80\r\n"), "{}", seen[0]);
        assert!(seen[1].contains("x-gauntlet-tag: run.C.1\r\n"));
        assert!(seen[0].ends_with("\r\n\r\n"));
    }

    #[tokio::test]
    async fn close_delimited_bodies_end_the_connection() {
        let (out, _) = script(vec![b"HTTP/1.1 200 OK\r\n\r\nuntil the end"], http::Method::GET).await;
        assert_eq!(out, vec![Ok(200)]);
    }

    #[tokio::test]
    async fn head_responses_have_no_body_even_with_a_length() {
        let (out, _) = script(
            vec![b"HTTP/1.1 200 OK\r\nContent-Length: 999\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n"],
            http::Method::HEAD,
        )
        .await;
        assert_eq!(out, vec![Ok(200), Ok(200)]);
    }

    #[tokio::test]
    async fn malformed_responses_are_protocol_errors() {
        for bad in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello"[..],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"NOT HTTP\r\n\r\n",
        ] {
            let (out, _) = script(vec![bad], http::Method::GET).await;
            assert_eq!(out, vec![Err(Outcome::Broken { kind: ErrorKind::Protocol, fresh: false })]);
        }
    }

    #[tokio::test]
    async fn a_truncated_body_is_a_reset() {
        let (out, _) = script(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort"], http::Method::GET).await;
        assert_eq!(out, vec![Err(Outcome::Broken { kind: ErrorKind::Reset, fresh: false })]);
    }
}
