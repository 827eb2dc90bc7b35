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
use super::{Answer, Keeper, Prepared, Protocol, Tag, failure};
use crate::conformance::{Broke, ErrorKind, Outcome};

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
    /// When the last exchange ended (for the idle check before reuse).
    idle_since: std::time::Instant,
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
        idle_since: std::time::Instant::now(),
        alt_h3: 0,
    }
}

/// The most interim (1xx) answers read before one final answer: a server that keeps sending
/// them is not going to answer.
const MAX_INTERIM: u32 = 100;

fn io_failure(e: &io::Error, at: Broke) -> Outcome {
    failure(e, at)
}

fn protocol(why: &str) -> Outcome {
    Outcome::broken(ErrorKind::Protocol, Broke::Other, why)
}

fn truncated(what: &str) -> Outcome {
    Outcome::broken(ErrorKind::Reset, Broke::Other, format!("the connection closed {what}"))
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
    ///
    /// `unanswered`: how a close before any response byte is classified (a fresh connection's
    /// refusal, a stale kept-alive connection, or neither).
    async fn head(&mut self, head_request: bool, unanswered: Broke) -> Result<Head, Outcome> {
        let mut got = self.end > self.start;
        let mut interim = 0;
        loop {
            match parse_head(&self.rbuf[self.start..self.end], head_request)? {
                Some((n, None)) => {
                    self.start += n;
                    interim += 1;
                    if interim > MAX_INTERIM {
                        return Err(protocol("more than 100 interim (1xx) answers to one request"));
                    }
                }
                Some((n, Some(head))) => {
                    self.start += n;
                    return Ok(head);
                }
                None => {
                    if self.end - self.start >= MAX_HEAD {
                        return Err(protocol("response head larger than 64 KiB"));
                    }
                    let at = if got { Broke::Other } else { unanswered };
                    match self.fill().await {
                        Ok(0) => {
                            let what = match at {
                                Broke::Stale => "closed the kept-alive connection without answering",
                                Broke::Fresh => "closed the new connection before answering",
                                Broke::Other if got => "closed the connection in the middle of the response head",
                                Broke::Other => "closed the connection without answering",
                            };
                            return Err(Outcome::broken(ErrorKind::Reset, at, format!("the server {what}")));
                        }
                        Ok(_) => got = true,
                        Err(e) => return Err(io_failure(&e, at)),
                    }
                }
            }
        }
    }

    /// Discards exactly `n` body bytes.
    /// Reads `n` body bytes, handing them to `kept`.
    async fn skip(&mut self, mut n: u64, kept: &mut Keeper) -> Result<(), Outcome> {
        loop {
            let have = (self.end - self.start) as u64;
            if have >= n {
                kept.add(&self.rbuf[self.start..self.start + n as usize]);
                self.start += n as usize;
                return Ok(());
            }
            n -= have;
            kept.add(&self.rbuf[self.start..self.end]);
            self.start = self.end;
            match self.fill().await {
                Ok(0) => return Err(truncated(&format!("with {n} body bytes still to come"))),
                Ok(_) => {}
                Err(e) => return Err(io_failure(&e, Broke::Other)),
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
                return Err(protocol("chunk line longer than 64 KiB"));
            }
            match self.fill().await {
                Ok(0) => return Err(truncated("in the middle of a chunked body")),
                Ok(_) => {}
                Err(e) => return Err(io_failure(&e, Broke::Other)),
            }
        }
    }

    async fn chunked(&mut self, kept: &mut Keeper) -> Result<(), Outcome> {
        loop {
            let (a, b) = self.line().await?;
            let line = &self.rbuf[a..b];
            let size = chunk_size(line).ok_or_else(|| protocol("a chunk size that is not a hex number"))?;
            if size == 0 {
                // Trailer section, up to an empty line.
                loop {
                    let (a, b) = self.line().await?;
                    if a == b {
                        return Ok(());
                    }
                }
            }
            self.skip(size, kept).await?;
            let (a, b) = self.line().await?;
            if a != b {
                return Err(protocol("chunk data longer than its size"));
            }
        }
    }

    async fn until_close(&mut self, kept: &mut Keeper) -> Result<(), Outcome> {
        loop {
            kept.add(&self.rbuf[self.start..self.end]);
            self.start = self.end;
            match self.fill().await {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(io_failure(&e, Broke::Other)),
            }
        }
    }
}

/// A chunk-size line (`1a;ext=v`): hex digits only, no sign, no space inside, at most 15
/// digits (so the size fits in 60 bits).
fn chunk_size(line: &[u8]) -> Option<u64> {
    let digits = line.split(|c| *c == b';').next().unwrap_or_default();
    let digits = digits.strip_suffix(b" ").unwrap_or(digits).trim_ascii_end();
    if digits.is_empty() || digits.len() > 15 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
}

/// A Content-Length value: ASCII digits only (no sign, no space inside), at most 19 digits.
fn content_length(v: &[u8]) -> Option<u64> {
    let v = v.trim_ascii();
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// A parsed final response head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Head {
    status: u16,
    framing: Framing,
    /// The server closes the connection after this response.
    close: bool,
    /// The HTTP/3 port an `Alt-Svc: h3=":PORT"` header announced (0: none).
    alt_h3: u16,
    /// `Sec-WebSocket-Accept`, when present and of the right length.
    ws_accept: Option<[u8; 28]>,
}

/// Parses a response head at the start of `buf`. `None`: incomplete. `Some((n, None))`: an
/// interim response of `n` bytes to skip. `Some((n, Some(head)))`: the final head.
///
/// Strict where a lax reading would let a hostile server desynchronise the connection
/// (RFC 9112 §6.3): a Content-Length that is not plain digits, differing duplicate lengths,
/// and a Content-Length together with Transfer-Encoding are protocol errors (the connection
/// is not reused).
///
/// Synchronous on purpose: the header array stays on the stack instead of inflating (and
/// being copied with) every exchange future.
fn parse_head(buf: &[u8], head_request: bool) -> Result<Option<(usize, Option<Head>)>, Outcome> {
    let mut headers = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let n = match httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut resp, buf, &mut headers) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(protocol(&format!("malformed response head ({e})"))),
    };
    let status = resp.code.unwrap_or(0);
    if (100..200).contains(&status) && status != 101 {
        return Ok(Some((n, None))); // 100 Continue, 103 Early Hints
    }
    let http10 = resp.version == Some(0);
    let mut length: Option<u64> = None;
    let mut transfer_encoding = false;
    let mut chunked = false;
    let mut close = http10;
    let mut alt_h3 = 0;
    let mut ws_accept = None;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            match (content_length(h.value), length) {
                (Some(v), None) => length = Some(v),
                (Some(v), Some(l)) if v == l => {}
                (Some(_), Some(_)) => return Err(protocol("two different Content-Length headers")),
                (None, _) => return Err(protocol("a Content-Length that is not a plain number")),
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = true;
            chunked = h
                .value
                .rsplit(|b| *b == b',')
                .next()
                .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if h.name.eq_ignore_ascii_case("alt-svc") {
            alt_h3 = super::alt_svc_h3(h.value);
        } else if h.name.eq_ignore_ascii_case("sec-websocket-accept") {
            ws_accept = <[u8; 28]>::try_from(h.value.trim_ascii()).ok();
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
    let no_body = head_request || status == 204 || status == 304 || status == 101;
    if transfer_encoding && length.is_some() && !no_body {
        return Err(protocol("both Content-Length and Transfer-Encoding (a request smuggling vector)"));
    }
    let framing = if no_body {
        Framing::None
    } else if chunked {
        Framing::Chunked
    } else if transfer_encoding {
        Framing::UntilClose // a transfer coding other than chunked last: read until close
    } else if let Some(l) = length {
        Framing::Length(l)
    } else {
        Framing::UntilClose
    };
    Ok(Some((n, Some(Head { status, framing, close: close || status == 101, alt_h3, ws_accept }))))
}

pub(crate) async fn exchange(c: &mut Conn, req: &Prepared, tag: Tag<'_>) -> Result<Answer, Outcome> {
    // A close before any response byte means: on a new TLS connection, the gateway refusing
    // the client (TLS 1.3 reports a rejected certificate after the handshake); on a
    // connection that served before, a stale kept-alive connection the server closed.
    let unanswered = match (c.served, c.tls) {
        (0, true) => Broke::Fresh,
        (0, false) => Broke::Other,
        _ => Broke::Stale,
    };
    c.open = false; // until the exchange completes cleanly
    c.wbuf.clear();
    req.write_h1(&mut c.wbuf, tag);
    let ws_key = req.websocket.as_ref().map(|_| {
        let key = super::ws::new_key();
        c.wbuf.truncate(c.wbuf.len() - 2 - req.body.len());
        c.wbuf.extend_from_slice(b"sec-websocket-key: ");
        c.wbuf.extend_from_slice(key.as_bytes());
        c.wbuf.extend_from_slice(b"\r\n\r\n");
        c.wbuf.extend_from_slice(&req.body);
        key
    });
    if let Err(e) = c.io.write_all(&c.wbuf).await {
        return Err(io_failure(&e, unanswered));
    }
    if let Err(e) = c.io.flush().await {
        return Err(io_failure(&e, unanswered));
    }
    let head = c.head(req.method == http::Method::HEAD, unanswered).await?;
    c.alt_h3 = head.alt_h3;
    if head.status == 101 {
        let (Some(w), Some(key)) = (&req.websocket, ws_key) else {
            return Err(protocol("101 Switching Protocols to a request that did not ask to upgrade"));
        };
        let want = super::ws::accept_for(&key);
        if head.ws_accept.as_ref().map(|a| &a[..]) != Some(want.as_bytes()) {
            return Err(protocol("101 without the Sec-WebSocket-Accept that matches the key sent"));
        }
        // Upgraded: the connection now carries the session and is never reused.
        c.served += 1;
        return match super::ws::session(&mut c.io, &w.0, &w.1).await {
            super::ws::End::Held if w.0.must_close => Err(Outcome::KeptOpen),
            super::ws::End::EchoLost => Err(Outcome::broken(
                ErrorKind::Timeout,
                Broke::Other,
                "WebSocket: an echo did not come back in time (the session did not carry its messages)",
            )),
            _ => Ok(Answer::status(head.status)),
        };
    }
    let mut kept = Keeper::new(req.keep_body);
    match head.framing {
        Framing::None => {}
        Framing::Length(n) => c.skip(n, &mut kept).await?,
        Framing::Chunked => c.chunked(&mut kept).await?,
        Framing::UntilClose => c.until_close(&mut kept).await?,
    }
    c.served += 1;
    // Bytes after a whole answer were asked for by nobody (no request is pipelined): an
    // answer sent ahead, or a desynchronised server. Read as the next request's answer they
    // would give it another's status, so the connection ends here.
    c.open = !head.close && head.framing != Framing::UntilClose && c.start == c.end;
    c.idle_since = std::time::Instant::now();
    Ok(Answer { status: head.status, body: kept.take() })
}

impl Protocol for Http1 {
    type Conn = Conn;
    const NAME: &'static str = "h1";

    async fn connect(&self, identity: usize) -> Result<Conn, Outcome> {
        let (stream, _) = self.connector.dial(identity).await?;
        Ok(handshake(stream))
    }

    async fn exchange(&self, conn: &mut Conn, req: &Prepared, tag: Tag<'_>) -> Result<Answer, Outcome> {
        exchange(conn, req, tag).await
    }

    fn fork(_: &Conn) -> Option<Conn> {
        None
    }

    fn is_open(conn: &Conn) -> bool {
        conn.open
    }

    fn revalidate(conn: &mut Conn) -> bool {
        revalidate(conn)
    }
}

/// How long a connection may sit idle before it is checked for a close before reuse: below
/// any keep-alive timeout a gateway sets, above a busy pool's turnaround (so a hot
/// connection costs nothing extra).
const IDLE_CHECK_AFTER: std::time::Duration = std::time::Duration::from_millis(500);

/// Before reusing an idle connection, looks once (without blocking) whether the server closed
/// it meanwhile — its keep-alive timeout sends a close_notify and a FIN that nobody reads
/// while the connection sits in the pool. A closed (or unexpectedly talking) connection is
/// dropped, so no request is ever sent on it.
pub(crate) fn revalidate(c: &mut Conn) -> bool {
    if !c.open || c.idle_since.elapsed() < IDLE_CHECK_AFTER {
        return c.open;
    }
    let mut probe = [0u8; 1];
    let mut buf = tokio::io::ReadBuf::new(&mut probe);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let alive = matches!(
        tokio::io::AsyncRead::poll_read(std::pin::Pin::new(&mut c.io), &mut cx, &mut buf),
        std::task::Poll::Pending
    );
    c.open = alive;
    alive
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
            let tag = format!("run.C.{i}");
            let r = exchange(&mut c, &req, Tag { text: &tag, seq: i as u64 }).await.map(|a| a.status);
            let stop = r.is_err() || !c.open;
            out.push(r);
            if stop {
                break;
            }
        }
        drop(c);
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

    /// An answer followed by bytes nobody asked for (a second, unsolicited answer): the next
    /// request does not take them as its own answer — the connection is not reused.
    #[tokio::test]
    async fn bytes_after_a_whole_answer_end_the_connection() {
        let (out, seen) = script(
            vec![
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
                b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            ],
            http::Method::GET,
        )
        .await;
        assert_eq!(out, vec![Ok(200)]);
        assert_eq!(seen.iter().filter(|r| !r.is_empty()).count(), 1, "{seen:?}");
    }

    /// A server that answers with interim responses only is a protocol error, not a wait.
    #[tokio::test]
    async fn endless_interim_answers_are_a_protocol_error() {
        let flood: &'static [u8] = b"HTTP/1.1 100 Continue\r\n\r\n".repeat(150).leak();
        let (out, _) = script(vec![flood], http::Method::GET).await;
        match &out[..] {
            [Err(Outcome::Broken { kind: ErrorKind::Protocol, cause, .. })] => {
                assert!(cause.as_ref().is_some_and(|c| c.to_string().contains("more than 100 interim")), "{cause:?}")
            }
            o => panic!("{o:?}"),
        }
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
            assert_eq!(out.len(), 1);
            assert_eq!(out[0].as_ref().err().and_then(Outcome::error_kind), Some(ErrorKind::Protocol), "{out:?}");
        }
    }

    #[tokio::test]
    async fn a_truncated_body_is_a_reset() {
        let (out, _) = script(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort"], http::Method::GET).await;
        assert!(matches!(out[..], [Err(Outcome::Broken { kind: ErrorKind::Reset, at: Broke::Other, .. })]), "{out:?}");
    }

    #[tokio::test]
    async fn lax_framing_is_refused() {
        for bad in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5 5\r\n\r\nhello",
            b"HTTP/1.1 200 OK\r\nContent-Length: 0x5\r\n\r\nhello",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n+a\r\n0123456789\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        ] {
            let (out, _) = script(vec![bad], http::Method::GET).await;
            assert_eq!(out.len(), 1);
            assert_eq!(
                out[0].as_ref().err().and_then(Outcome::error_kind),
                Some(ErrorKind::Protocol),
                "{:?}: {out:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[tokio::test]
    async fn a_close_on_a_kept_alive_connection_before_any_byte_is_stale() {
        let (out, _) = script(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", b""], http::Method::GET).await;
        assert_eq!(out[0], Ok(200));
        assert!(matches!(out[1], Err(Outcome::Broken { at: Broke::Stale, .. })), "{out:?}");
        // A partial head before the close is not stale: the server answered something.
        let (out, _) =
            script(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", b"HTTP/1.1 20"], http::Method::GET).await;
        assert!(matches!(out[1], Err(Outcome::Broken { at: Broke::Other, .. })), "{out:?}");
    }

    #[tokio::test]
    async fn an_idle_connection_the_server_closed_is_not_reused() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let _ = s.read(&mut buf).await.unwrap();
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").await.unwrap();
            // The gateway's keep-alive timeout: it closes the idle connection.
            s.shutdown().await.ok();
        });
        let mut c = handshake(Stream::Plain(TcpStream::connect(addr).await.unwrap()));
        let ep = Endpoint { tls: false, authority: "gw.test:80".parse().unwrap(), tagging: Tagging::Header };
        let req = Prepared::new(0, http::Method::GET, "/", http::HeaderMap::new(), bytes::Bytes::new(), &ep).unwrap();
        assert_eq!(exchange(&mut c, &req, Tag { text: "r.C.0", seq: 0 }).await.map(|a| a.status), Ok(200));
        server.await.unwrap();
        // Once idle past the threshold, the close is seen and the connection is not reused.
        tokio::time::sleep(IDLE_CHECK_AFTER + std::time::Duration::from_millis(100)).await;
        assert!(!revalidate(&mut c));
        assert!(!c.open);
    }

    #[test]
    fn chunk_sizes_and_lengths_are_plain_numbers() {
        assert_eq!(chunk_size(b"1a"), Some(26));
        assert_eq!(chunk_size(b"1A;ext=1"), Some(26));
        assert_eq!(chunk_size(b"0"), Some(0));
        for bad in [&b"+a"[..], b"-1", b"", b"1 a", b"g", b"1234567890abcdef0"] {
            assert_eq!(chunk_size(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(content_length(b" 42 "), Some(42));
        for bad in [&b"+5"[..], b"-5", b"", b"4 2", b"5,5", b"99999999999999999999"] {
            assert_eq!(content_length(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            /// Any bytes: an answer, a need for more, or a protocol error — never a panic, and a
            /// complete head never claims more bytes than it was given.
            #[test]
            fn parse_head_never_panics(buf in proptest::collection::vec(any::<u8>(), 0..512), head in any::<bool>()) {
                if let Ok(Some((n, _))) = parse_head(&buf, head) {
                    prop_assert!(n <= buf.len());
                }
            }

            /// A Content-Length that is not plain digits is refused (optional whitespace around
            /// it is fine, inside it is not).
            #[test]
            fn signed_or_garbled_lengths_are_refused(n in 0u32..100_000, lead in "[+\\-x,;]", mid in "[+\\-x ,;]") {
                let variants = [format!("{lead}{n}"), format!("{n}{mid}{n}")];
                for v in variants {
                    let r = format!("HTTP/1.1 200 OK\r\nContent-Length: {v}\r\n\r\n");
                    let parsed = parse_head(r.as_bytes(), false);
                    prop_assert!(parsed.is_err(), "{v:?} was accepted: {parsed:?}");
                }
            }

            /// Well-formed heads give the framing they declare.
            #[test]
            fn well_formed_heads_frame_as_declared(status in 200u16..600, len in 0u64..1_000_000, chunked in any::<bool>(), close in any::<bool>()) {
                let framing = if chunked { "Transfer-Encoding: chunked".to_string() } else { format!("Content-Length: {len}") };
                let conn = if close { "Connection: close\r\n" } else { "" };
                let r = format!("HTTP/1.1 {status} X\r\n{framing}\r\n{conn}\r\n");
                let (n, head) = parse_head(r.as_bytes(), false).unwrap().unwrap();
                let head = head.unwrap();
                prop_assert_eq!(n, r.len());
                prop_assert_eq!(head.status, status);
                prop_assert_eq!(head.close, close);
                let want = match (status, chunked) {
                    (204 | 304, _) => Framing::None,
                    (_, true) => Framing::Chunked,
                    _ => Framing::Length(len),
                };
                prop_assert_eq!(head.framing, want);
            }
        }
    }
}
