//! HTTP/1.x out of reassembled streams: requests and their recorded responses, paired in
//! order per connection (keep-alive and pipelining), bodies framed by `Content-Length`,
//! chunked encoding or the close; WebSocket upgrades become one exchange marked as a
//! session. Connections that are TLS, h2c or not HTTP at all are counted as such.
//!
//! A hole in a stream (a [`Sink::gap`]) drops the message it cut and resynchronises on the
//! next message start; after a hole in the *responses*, later responses of that connection
//! are not paired at all (they could be paired with the wrong request): their requests are
//! handed on without a recorded answer and counted. Nothing is dropped without a count.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

use super::tcp::{Side, Sink};

/// The largest message head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Headers per message.
const MAX_HEADERS: usize = 128;
/// Request body bytes kept (a longer body makes the request unreplayable, counted).
pub const MAX_REQUEST_BODY: usize = 1 << 20;
/// Response body bytes kept for display (the whole body is hashed and counted).
pub(super) const RESPONSE_PREFIX: usize = 4096;
/// Requests of one connection waiting for their responses.
const MAX_PIPELINE: usize = 256;

/// A recorded request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Method.
    pub method: String,
    /// Request target as sent (origin form, or absolute form through a proxy).
    pub target: String,
    /// Minor version (`HTTP/1.x`).
    pub minor: u8,
    /// Headers in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Body (at most [`MAX_REQUEST_BODY`]).
    pub body: Vec<u8>,
    /// The body was longer than what is kept.
    pub body_truncated: bool,
}

impl Request {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_slice())
    }

    /// The host: the `Host` header, or the authority of an absolute-form target.
    pub fn host(&self) -> Option<String> {
        if let Some(h) = self.header("host") {
            return Some(String::from_utf8_lossy(h).into_owned());
        }
        let rest = self.target.split_once("://")?.1;
        Some(rest.split('/').next().unwrap_or(rest).to_string())
    }

    /// The path and query (origin form).
    pub fn path(&self) -> &str {
        match self.target.split_once("://") {
            Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
            None => &self.target,
        }
    }
}

/// A recorded response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status.
    pub status: u16,
    /// Headers in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Whole body length.
    pub body_len: u64,
    /// FNV-1a of the whole body.
    pub body_hash: u64,
    /// The body's first bytes.
    pub body_prefix: Vec<u8>,
    /// When its head was captured (ns since the epoch).
    pub ts_ns: u64,
}

/// One request and, when captured, its response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    /// Connection number (order of first sight).
    pub conn: u64,
    /// Index of the request in its connection.
    pub index: u32,
    /// When the request's first byte was captured (ns since the epoch).
    pub ts_ns: u64,
    /// Client end.
    pub client: SocketAddr,
    /// Server end.
    pub server: SocketAddr,
    /// The request.
    pub request: Request,
    /// The response, when it was captured and could be paired.
    pub response: Option<Response>,
    /// The request upgraded the connection to a WebSocket session.
    pub websocket: bool,
    /// What the client sent in that session.
    pub session: Option<WsSession>,
    /// The subject of the client certificate its connection presented, when the capture
    /// shows it (a decrypted TLS connection).
    pub client_cert: Option<String>,
}

/// The client side of a captured WebSocket session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WsSession {
    /// Its first text messages (at most [`WS_KEPT`], each cut at [`WS_MESSAGE_MAX`] bytes).
    pub messages: Vec<String>,
    /// Data frames the client sent (text and binary).
    pub frames: u64,
    /// When the session opened (the 101) and when its last client frame was captured.
    pub opened_ns: u64,
    /// See `opened_ns`.
    pub last_ns: u64,
}

/// Client messages kept per session.
pub const WS_KEPT: usize = 64;
/// Bytes kept per message.
pub const WS_MESSAGE_MAX: usize = 4096;

/// Reads the client's WebSocket frames (masked, RFC 6455 §5.2).
#[derive(Debug, Default)]
struct WsReader {
    buf: Vec<u8>,
    session: WsSession,
    /// The reading stopped (a frame too large or malformed): frames are no longer counted.
    lost: bool,
}

impl WsReader {
    fn data(&mut self, ts_ns: u64, bytes: &[u8]) {
        if self.lost {
            return;
        }
        self.buf.extend_from_slice(bytes);
        loop {
            let b = &self.buf;
            if b.len() < 2 {
                return;
            }
            let (opcode, masked, len7) = (b[0] & 0x0f, b[1] & 0x80 != 0, u64::from(b[1] & 0x7f));
            let (len, mut at) = match len7 {
                126 if b.len() >= 4 => (u64::from(u16::from_be_bytes([b[2], b[3]])), 4),
                127 if b.len() >= 10 => (u64::from_be_bytes([b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9]]), 10),
                126 | 127 => return,
                n => (n, 2),
            };
            if len > (1 << 20) {
                self.lost = true;
                self.buf.clear();
                return;
            }
            let mask = if masked {
                if b.len() < at + 4 {
                    return;
                }
                at += 4;
                Some([b[at - 4], b[at - 3], b[at - 2], b[at - 1]])
            } else {
                None
            };
            let end = at + len as usize;
            if b.len() < end {
                return;
            }
            let mut payload = b[at..end].to_vec();
            if let Some(m) = mask {
                for (i, x) in payload.iter_mut().enumerate() {
                    *x ^= m[i % 4];
                }
            }
            self.buf.drain(..end);
            if opcode <= 2 {
                self.session.frames += 1;
                self.session.last_ns = ts_ns;
                if opcode == 1 && self.session.messages.len() < WS_KEPT {
                    payload.truncate(WS_MESSAGE_MAX);
                    self.session.messages.push(String::from_utf8_lossy(&payload).into_owned());
                }
            }
        }
    }
}

/// Extraction counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct HttpStats {
    /// Requests extracted.
    pub requests: u64,
    /// Of which with a paired response.
    pub answered: u64,
    /// Requests handed on without a response: none captured before the connection ended.
    pub unanswered: u64,
    /// Requests handed on without a response: a hole in the responses made pairing unsafe.
    pub unpaired_after_gap: u64,
    /// Responses with no request waiting for them.
    pub orphan_responses: u64,
    /// Messages cut by a hole or by the end of the capture.
    pub incomplete: u64,
    /// Bytes skipped while looking for the next message start.
    pub skipped_bytes: u64,
    /// Requests whose body was longer than what is kept.
    pub bodies_truncated: u64,
    /// WebSocket sessions (upgraded connections).
    pub websocket: u64,
    /// Connections that are TLS (decrypt them first: a key log and tshark).
    pub tls_flows: u64,
    /// Connections that speak HTTP/2 in clear (prior knowledge or `Upgrade: h2c`), read as such.
    pub h2c_flows: u64,
    /// Of the requests, those read from HTTP/2 streams.
    pub h2_streams: u64,
    /// h2c connections whose reading stopped early (a hole, a malformed frame: HPACK cannot
    /// resynchronise); what was in flight is handed on without an answer.
    pub h2_broken: u64,
    /// Connections that are not HTTP.
    pub other_flows: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Not known yet (nothing sent yet).
    Unknown,
    Http,
    Upgraded,
    Tls,
    H2c,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    /// Reading a head.
    Head,
    /// `n` more body bytes.
    Length(u64),
    /// Chunked: the next chunk-size line.
    ChunkSize,
    /// Chunked: `n` more bytes of the current chunk, then CRLF.
    ChunkData(u64),
    /// Chunked: the CRLF after a chunk.
    ChunkEnd,
    /// Chunked: trailers up to an empty line.
    Trailers,
    /// Until the connection closes (a response without framing).
    UntilClose,
}

#[derive(Debug)]
struct Stream {
    buf: Vec<u8>,
    body: Body,
    /// Looking for the next message start (after a hole, or mid-stream).
    resync: bool,
    /// Time the current message began.
    ts_ns: u64,
}

impl Stream {
    fn new(resync: bool) -> Self {
        Stream { buf: Vec::new(), body: Body::Head, resync, ts_ns: 0 }
    }

    fn in_message(&self) -> bool {
        self.body != Body::Head || !self.buf.is_empty()
    }
}

#[derive(Debug)]
struct Partial {
    request: Option<(u64, Request)>,
    response: Option<Response>,
    body_len: u64,
    hash: u64,
}

#[derive(Debug)]
struct Conn {
    client: SocketAddr,
    server: SocketAddr,
    kind: Kind,
    streams: [Stream; 2],
    /// The message being read in each direction.
    partial: Partial,
    /// Requests waiting for their response: (time, request, index).
    waiting: VecDeque<(u64, Request, u32)>,
    next_index: u32,
    /// A hole in the responses: no more pairing.
    desynced: bool,
    /// The upgrade request sent, waiting for `101`.
    upgrade: Option<Upgrade>,
    /// The HTTP/2 reader of an h2c connection.
    h2: Option<Box<super::h2::H2>>,
    /// A WebSocket session's exchange, held until the session ends, and its client frames.
    ws: Option<Box<(Exchange, WsReader)>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Upgrade {
    WebSocket,
    H2c,
}

/// The HTTP/1 extractor: a [`Sink`] for reassembled streams, a queue of [`Exchange`]s.
#[derive(Debug, Default)]
pub struct Http1 {
    conns: HashMap<u64, Conn>,
    /// Exchanges ready to be taken.
    pub out: VecDeque<Exchange>,
    /// Counts so far.
    pub stats: HttpStats,
    /// The server ports TLS connections went to (at most [`TLS_PORTS`]): tshark is told
    /// to read them as TLS, whatever protocol it would guess from a client's port.
    pub tls_ports: std::collections::BTreeSet<u16>,
}

/// Server ports of TLS connections remembered at most.
pub const TLS_PORTS: usize = 256;

pub(super) const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// The digest [`Response::body_hash`] holds, of a whole body (FNV-1a).
pub fn body_hash(bytes: &[u8]) -> u64 {
    fnv(FNV_OFFSET, bytes)
}

pub(super) fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Where a plausible message start begins in `buf` (a request line or a status line at the
/// start of a line).
fn message_start(buf: &[u8], side: Side) -> Option<usize> {
    let starts = |p: &[u8]| match side {
        Side::Client => {
            const M: &[&[u8]] =
                &[b"GET ", b"POST ", b"PUT ", b"HEAD ", b"DELETE ", b"PATCH ", b"OPTIONS ", b"CONNECT ", b"TRACE "];
            M.iter().any(|m| p.starts_with(m))
        }
        Side::Server => p.starts_with(b"HTTP/1."),
    };
    (0..buf.len()).find(|&i| (i == 0 || buf[i - 1] == b'\n') && starts(&buf[i..]))
}

fn owned_headers(h: &[httparse::Header<'_>]) -> Vec<(String, Vec<u8>)> {
    h.iter().map(|h| (h.name.to_string(), h.value.to_vec())).collect()
}

fn header<'a>(h: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a [u8]> {
    h.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_slice())
}

fn has_token(h: &[(String, Vec<u8>)], name: &str, token: &str) -> bool {
    h.iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .any(|(_, v)| String::from_utf8_lossy(v).split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

/// Body framing from headers: chunked wins over a length (RFC 9112 §6.3).
fn framing(h: &[(String, Vec<u8>)]) -> Result<Option<u64>, ()> {
    if has_token(h, "transfer-encoding", "chunked") {
        return Ok(None);
    }
    match header(h, "content-length") {
        Some(v) => std::str::from_utf8(v).ok().and_then(|s| s.trim().parse().ok()).map(Some).ok_or(()),
        None => Ok(Some(0)),
    }
}

impl Http1 {
    /// A new extractor.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds an h2c connection's reader; hands on what completed.
    fn h2_data(&mut self, id: u64, c: &mut Conn, side: Side, ts_ns: u64, bytes: &[u8]) {
        let Some(mut h2) = c.h2.take() else { return };
        let was_broken = h2.broken.is_some();
        let mut done = Vec::new();
        if !bytes.is_empty() {
            h2.data(side, ts_ns, bytes, &mut done);
        }
        self.h2_emit(id, c, done, false);
        if h2.broken.is_some() && !was_broken {
            self.h2_stop(id, c, &mut h2, true);
        }
        c.h2 = Some(h2);
    }

    fn h2_emit(&mut self, id: u64, c: &mut Conn, done: Vec<super::h2::Done>, after_gap: bool) {
        for d in done {
            self.stats.h2_streams += 1;
            if d.response.is_none() {
                if after_gap {
                    self.stats.unpaired_after_gap += 1;
                } else {
                    self.stats.unanswered += 1;
                }
            }
            let index = c.next_index;
            c.next_index += 1;
            self.emit(id, c, d.ts_ns, d.request, index, d.response);
        }
    }

    /// Reading an h2c connection stopped (`broken`: early) or it ended.
    fn h2_stop(&mut self, id: u64, c: &mut Conn, h2: &mut super::h2::H2, broken: bool) {
        let mut done = Vec::new();
        let incomplete = h2.finish(&mut done);
        self.stats.incomplete += incomplete;
        if broken {
            self.stats.h2_broken += 1;
        }
        self.h2_emit(id, c, done, broken);
    }

    fn emit(&mut self, conn: u64, c: &Conn, ts_ns: u64, request: Request, index: u32, response: Option<Response>) {
        self.stats.requests += 1;
        if response.is_some() {
            self.stats.answered += 1;
        }
        if request.body_truncated {
            self.stats.bodies_truncated += 1;
        }
        let websocket = response.as_ref().is_some_and(|r| r.status == 101) && c.upgrade == Some(Upgrade::WebSocket);
        self.out.push_back(Exchange {
            conn,
            index,
            ts_ns,
            client: c.client,
            server: c.server,
            request,
            response,
            websocket,
            session: None,
            client_cert: None,
        });
    }

    /// Reads what `side` of `conn` has buffered, message by message.
    fn pump(&mut self, id: u64, c: &mut Conn, side: Side) {
        loop {
            if matches!(c.kind, Kind::Upgraded | Kind::Tls | Kind::H2c | Kind::Other) {
                c.streams[side as usize].buf.clear();
                return;
            }
            let s = &mut c.streams[side as usize];
            if s.resync {
                match message_start(&s.buf, side) {
                    Some(i) => {
                        self.stats.skipped_bytes += i as u64;
                        s.buf.drain(..i);
                        s.resync = false;
                    }
                    None => {
                        // Keep a possible partial method or status prefix at the end.
                        let keep = s.buf.len().min(8);
                        let drop = s.buf.len() - keep;
                        self.stats.skipped_bytes += drop as u64;
                        s.buf.drain(..drop);
                        return;
                    }
                }
            }
            let progressed = match s.body {
                Body::Head => self.head(id, c, side),
                _ => self.body(id, c, side),
            };
            if !progressed {
                return;
            }
        }
    }

    /// Parses a head; false when more bytes are needed.
    fn head(&mut self, id: u64, c: &mut Conn, side: Side) -> bool {
        let s = &mut c.streams[side as usize];
        if s.buf.is_empty() {
            return false;
        }
        let mut hs = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let parsed = match side {
            Side::Client => {
                let mut r = httparse::Request::new(&mut hs);
                match r.parse(&s.buf) {
                    Ok(httparse::Status::Complete(n)) => Ok(Some((
                        n,
                        Head::Request(Request {
                            method: r.method.unwrap_or("GET").to_string(),
                            target: r.path.unwrap_or("/").to_string(),
                            minor: r.version.unwrap_or(1),
                            headers: owned_headers(r.headers),
                            body: Vec::new(),
                            body_truncated: false,
                        }),
                    ))),
                    Ok(httparse::Status::Partial) => Ok(None),
                    Err(e) => Err(e),
                }
            }
            Side::Server => {
                let mut r = httparse::Response::new(&mut hs);
                match r.parse(&s.buf) {
                    Ok(httparse::Status::Complete(n)) => Ok(Some((
                        n,
                        Head::Response(Response {
                            status: r.code.unwrap_or(0),
                            headers: owned_headers(r.headers),
                            body_len: 0,
                            body_hash: FNV_OFFSET,
                            body_prefix: Vec::new(),
                            ts_ns: s.ts_ns,
                        }),
                    ))),
                    Ok(httparse::Status::Partial) => Ok(None),
                    Err(e) => Err(e),
                }
            }
        };
        let (n, head) = match parsed {
            Ok(Some(x)) => x,
            Ok(None) if s.buf.len() <= MAX_HEAD => return false,
            // Too long a head, or not HTTP where a message should start.
            Ok(None) | Err(_) => {
                if c.kind == Kind::Unknown {
                    c.kind = Kind::Other;
                    self.stats.other_flows += 1;
                    return false;
                }
                self.stats.incomplete += 1;
                s.resync = true;
                s.buf.drain(..1);
                return true;
            }
        };
        s.buf.drain(..n);
        c.kind = Kind::Http;
        match head {
            Head::Request(r) => {
                let framing = framing(&r.headers);
                if has_token(&r.headers, "upgrade", "websocket") {
                    c.upgrade = Some(Upgrade::WebSocket);
                } else if has_token(&r.headers, "upgrade", "h2c") {
                    c.upgrade = Some(Upgrade::H2c);
                }
                let s = &mut c.streams[side as usize];
                s.body = match framing {
                    Ok(Some(0)) => Body::Head,
                    Ok(Some(n)) => Body::Length(n),
                    Ok(None) => Body::ChunkSize,
                    Err(()) => {
                        // An unreadable length: the message cannot be framed.
                        self.stats.incomplete += 1;
                        s.resync = true;
                        return true;
                    }
                };
                let ts = s.ts_ns;
                c.partial.request = Some((ts, r));
                if c.streams[side as usize].body == Body::Head {
                    self.request_done(id, c);
                }
            }
            Head::Response(r) => {
                let method_head = c.waiting.front().is_some_and(|(_, q, _)| q.method == "HEAD");
                let no_body = method_head || (100..200).contains(&r.status) || r.status == 204 || r.status == 304;
                let framing = framing(&r.headers);
                let s = &mut c.streams[side as usize];
                s.body = if no_body {
                    Body::Head
                } else {
                    match framing {
                        Ok(Some(0)) if header(&r.headers, "content-length").is_none() => Body::UntilClose,
                        Ok(Some(0)) => Body::Head,
                        Ok(Some(n)) => Body::Length(n),
                        Ok(None) => Body::ChunkSize,
                        Err(()) => Body::UntilClose,
                    }
                };
                c.partial.body_len = 0;
                c.partial.hash = FNV_OFFSET;
                c.partial.response = Some(r);
                if c.streams[side as usize].body == Body::Head {
                    self.response_done(id, c);
                }
            }
        }
        true
    }

    /// Reads body bytes; false when more are needed.
    fn body(&mut self, id: u64, c: &mut Conn, side: Side) -> bool {
        let s = &mut c.streams[side as usize];
        if s.buf.is_empty() {
            return false;
        }
        let take = |c: &mut Conn, n: usize| {
            let s = &mut c.streams[side as usize];
            let bytes: Vec<u8> = s.buf.drain(..n).collect();
            match side {
                Side::Client => {
                    if let Some((_, r)) = &mut c.partial.request {
                        let room = MAX_REQUEST_BODY.saturating_sub(r.body.len());
                        r.body.extend_from_slice(&bytes[..bytes.len().min(room)]);
                        r.body_truncated |= bytes.len() > room;
                    }
                }
                Side::Server => {
                    c.partial.body_len += bytes.len() as u64;
                    c.partial.hash = fnv(c.partial.hash, &bytes);
                    if let Some(r) = &mut c.partial.response {
                        let room = RESPONSE_PREFIX.saturating_sub(r.body_prefix.len());
                        r.body_prefix.extend_from_slice(&bytes[..bytes.len().min(room)]);
                    }
                }
            }
        };
        match s.body {
            Body::Head => true,
            Body::Length(left) => {
                let n = (left.min(s.buf.len() as u64)) as usize;
                s.body = if left == n as u64 { Body::Head } else { Body::Length(left - n as u64) };
                let done = s.body == Body::Head;
                take(c, n);
                if done {
                    self.done(id, c, side);
                }
                true
            }
            Body::ChunkData(left) => {
                let n = (left.min(s.buf.len() as u64)) as usize;
                s.body = if left == n as u64 { Body::ChunkEnd } else { Body::ChunkData(left - n as u64) };
                take(c, n);
                true
            }
            Body::ChunkEnd => {
                if s.buf.len() < 2 {
                    return false;
                }
                if &s.buf[..2] != b"\r\n" {
                    self.stats.incomplete += 1;
                    s.resync = true;
                    s.body = Body::Head;
                    self.abandon(c, side);
                    return true;
                }
                s.buf.drain(..2);
                s.body = Body::ChunkSize;
                true
            }
            Body::ChunkSize => match httparse::parse_chunk_size(&s.buf) {
                Ok(httparse::Status::Complete((n, size))) => {
                    s.buf.drain(..n);
                    s.body = if size == 0 { Body::Trailers } else { Body::ChunkData(size) };
                    true
                }
                Ok(httparse::Status::Partial) if s.buf.len() < 1024 => false,
                _ => {
                    self.stats.incomplete += 1;
                    s.resync = true;
                    s.body = Body::Head;
                    self.abandon(c, side);
                    true
                }
            },
            Body::Trailers => {
                // No trailers: an empty line; else up to the first empty line.
                let end = if s.buf.starts_with(b"\r\n") {
                    Some(2)
                } else {
                    s.buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
                };
                match end {
                    Some(n) => {
                        s.buf.drain(..n);
                        s.body = Body::Head;
                        self.done(id, c, side);
                        true
                    }
                    None if s.buf.len() > MAX_HEAD => {
                        self.stats.incomplete += 1;
                        s.resync = true;
                        s.body = Body::Head;
                        self.abandon(c, side);
                        true
                    }
                    None => false,
                }
            }
            Body::UntilClose => {
                let n = s.buf.len();
                take(c, n);
                false
            }
        }
    }

    fn done(&mut self, id: u64, c: &mut Conn, side: Side) {
        match side {
            Side::Client => self.request_done(id, c),
            Side::Server => self.response_done(id, c),
        }
    }

    /// Drops the message being read on `side` (cut by a hole or unframeable).
    fn abandon(&mut self, c: &mut Conn, side: Side) {
        match side {
            Side::Client => c.partial.request = None,
            Side::Server => {
                if c.partial.response.take().is_some() {
                    // Its request can no longer be paired safely.
                    c.desynced = true;
                }
            }
        }
    }

    fn request_done(&mut self, id: u64, c: &mut Conn) {
        let Some((ts, r)) = c.partial.request.take() else { return };
        let index = c.next_index;
        c.next_index += 1;
        if c.desynced {
            self.stats.unpaired_after_gap += 1;
            self.emit(id, c, ts, r, index, None);
            return;
        }
        if c.waiting.len() >= MAX_PIPELINE {
            if let Some((t, q, i)) = c.waiting.pop_front() {
                self.stats.unanswered += 1;
                self.emit(id, c, t, q, i, None);
            }
        }
        c.waiting.push_back((ts, r, index));
    }

    fn response_done(&mut self, id: u64, c: &mut Conn) {
        let Some(mut r) = c.partial.response.take() else { return };
        r.body_len = c.partial.body_len;
        r.body_hash = c.partial.hash;
        // Interim responses (100 Continue, 103 Early Hints) answer nothing yet.
        if (100..200).contains(&r.status) && r.status != 101 {
            return;
        }
        if c.desynced {
            return;
        }
        let Some((ts, q, index)) = c.waiting.pop_front() else {
            self.stats.orphan_responses += 1;
            return;
        };
        if r.status == 101 && c.upgrade == Some(Upgrade::H2c) {
            // The upgrade request is stream 1: its answer comes as HTTP/2, after the 101.
            self.stats.h2c_flows += 1;
            c.kind = Kind::H2c;
            c.next_index = index;
            c.h2 = Some(Box::new(super::h2::H2::new(Some((ts, q)))));
            // What each side sent past the switch is HTTP/2 already.
            for side in [Side::Server, Side::Client] {
                let rest = std::mem::take(&mut c.streams[side as usize].buf);
                self.h2_data(id, c, side, ts, &rest);
            }
            return;
        }
        let upgraded = r.status == 101;
        let opened = r.ts_ns;
        self.emit(id, c, ts, q, index, Some(r));
        if upgraded {
            self.stats.websocket += 1;
            c.kind = Kind::Upgraded;
            // The session's exchange waits for the session: what the client sent in it.
            if let Some(x) = self.out.pop_back() {
                let reader = WsReader {
                    session: WsSession { opened_ns: opened, last_ns: opened, ..Default::default() },
                    ..Default::default()
                };
                c.ws = Some(Box::new((x, reader)));
                let rest = std::mem::take(&mut c.streams[Side::Client as usize].buf);
                if let Some(ws) = &mut c.ws {
                    ws.1.data(opened, &rest);
                }
            }
        }
    }
}

enum Head {
    Request(Request),
    Response(Response),
}

impl Sink for Http1 {
    fn open(&mut self, flow: u64, client: SocketAddr, server: SocketAddr, mid_stream: bool) {
        self.conns.insert(
            flow,
            Conn {
                client,
                server,
                kind: if mid_stream { Kind::Http } else { Kind::Unknown },
                streams: [Stream::new(mid_stream), Stream::new(mid_stream)],
                partial: Partial { request: None, response: None, body_len: 0, hash: FNV_OFFSET },
                waiting: VecDeque::new(),
                next_index: 0,
                desynced: false,
                upgrade: None,
                h2: None,
                ws: None,
            },
        );
    }

    fn data(&mut self, flow: u64, side: Side, ts_ns: u64, bytes: &[u8]) {
        let Some(mut c) = self.conns.remove(&flow) else { return };
        if let (Some(ws), Side::Client) = (&mut c.ws, side) {
            ws.1.data(ts_ns, bytes);
        }
        let mut bytes = bytes;
        let held;
        if c.kind == Kind::Unknown && side == Side::Client {
            let buf = &mut c.streams[Side::Client as usize].buf;
            let seen = buf.len() + bytes.len();
            let preface = super::h2::PREFACE;
            let probe_len = seen.min(preface.len());
            let mut probe = buf.clone();
            probe.extend_from_slice(&bytes[..probe_len.saturating_sub(buf.len()).min(bytes.len())]);
            if bytes.first() == Some(&0x16) && buf.is_empty() {
                c.kind = Kind::Tls;
                self.stats.tls_flows += 1;
                if self.tls_ports.len() < TLS_PORTS {
                    self.tls_ports.insert(c.server.port());
                }
            } else if probe.len() < preface.len() && preface.starts_with(&probe) {
                // Perhaps the HTTP/2 preface, cut by segmentation: wait for more.
                buf.extend_from_slice(bytes);
                self.conns.insert(flow, c);
                return;
            } else if probe.starts_with(preface) {
                c.kind = Kind::H2c;
                self.stats.h2c_flows += 1;
                c.h2 = Some(Box::new(super::h2::H2::new(None)));
                let mut all = std::mem::take(buf);
                all.extend_from_slice(bytes);
                held = all;
                bytes = &held;
            }
        }
        if c.kind == Kind::H2c {
            self.h2_data(flow, &mut c, side, ts_ns, bytes);
            self.conns.insert(flow, c);
            return;
        }
        if !matches!(c.kind, Kind::Upgraded | Kind::Tls | Kind::H2c | Kind::Other) {
            let s = &mut c.streams[side as usize];
            if !s.in_message() {
                s.ts_ns = ts_ns;
            }
            s.buf.extend_from_slice(bytes);
            self.pump(flow, &mut c, side);
            let s = &mut c.streams[side as usize];
            if s.body == Body::Head && s.buf.is_empty() {
                s.ts_ns = ts_ns;
            }
        }
        self.conns.insert(flow, c);
    }

    fn gap(&mut self, flow: u64, side: Side, _len: u64) {
        let Some(mut c) = self.conns.remove(&flow) else { return };
        if let Some(mut h2) = c.h2.take() {
            if h2.broken.is_none() {
                h2.broken = Some("a hole in the capture");
                self.h2_stop(flow, &mut c, &mut h2, true);
            }
            c.h2 = Some(h2);
            self.conns.insert(flow, c);
            return;
        }
        let s = &mut c.streams[side as usize];
        if s.in_message() && !matches!(c.kind, Kind::Upgraded | Kind::Tls | Kind::H2c | Kind::Other) {
            self.stats.incomplete += 1;
        }
        s.buf.clear();
        s.body = Body::Head;
        s.resync = true;
        match side {
            Side::Client => c.partial.request = None,
            Side::Server => {
                c.partial.response = None;
                c.desynced = true;
            }
        }
        if side == Side::Server {
            // Waiting requests: their responses may have been in the hole.
            while let Some((t, q, i)) = c.waiting.pop_front() {
                self.stats.unpaired_after_gap += 1;
                self.emit(flow, &c, t, q, i, None);
            }
        }
        self.conns.insert(flow, c);
    }

    fn close(&mut self, flow: u64, _ts_ns: u64) {
        let Some(mut c) = self.conns.remove(&flow) else { return };
        if let Some(ws) = c.ws.take() {
            let (mut x, reader) = *ws;
            x.session = Some(reader.session);
            self.out.push_back(x);
        }
        if let Some(mut h2) = c.h2.take() {
            self.h2_stop(flow, &mut c, &mut h2, false);
        }
        // A response read until the close is complete now.
        if c.streams[Side::Server as usize].body == Body::UntilClose {
            c.streams[Side::Server as usize].body = Body::Head;
            self.response_done(flow, &mut c);
        }
        let live = !matches!(c.kind, Kind::Upgraded | Kind::Tls | Kind::H2c | Kind::Other);
        for side in [Side::Client, Side::Server] {
            if live && c.streams[side as usize].in_message() && !c.streams[side as usize].resync {
                self.stats.incomplete += 1;
            }
        }
        while let Some((t, q, i)) = c.waiting.pop_front() {
            self.stats.unanswered += 1;
            self.emit(flow, &c, t, q, i, None);
        }
    }
}
