//! HTTP/2, hand-framed: many concurrent streams per connection, shared between workers
//! through [`Protocol::fork`].
//!
//! There is no connection task and no channel: a connection is one `Rc<RefCell<Inner>>`,
//! and whichever exchange on it is waiting reads the socket, dispatches every frame to the
//! stream it belongs to and wakes that stream's exchange (the last one to find nothing to
//! read is the *reader*; leaving, it wakes another, so someone always reads while a stream is
//! open). Requests are written as whole frames into one buffer and flushed by the exchange
//! that queued them (or the next one). The fixed part of a request's header block is
//! encoded once per check ([`Prepared::h2_block`]); per request only `:path` (when the tag
//! rides in the query), the varying headers and the tag are encoded. Nothing is entered in
//! the server's HPACK table (every field is a literal "without indexing", secrets and the
//! tag "never indexed"), so the encoder has no state; responses are decoded by
//! [`super::hpack`]. hyper's client cost about twice the user CPU per request (see
//! ARCHITECTURE.md, "Why h2 is hand-framed").
//!
//! What a client must do is done: SETTINGS both ways (and acknowledged), PING answered,
//! flow control both ways (request bodies wait for window; received data is returned in
//! WINDOW_UPDATEs), the server's MAX_CONCURRENT_STREAMS and MAX_FRAME_SIZE respected,
//! GOAWAY (streams above its last id are "the connection went away", as is a
//! REFUSED_STREAM), RST_STREAM, 1xx answers skipped, trailers read, CONTINUATION, padding
//! and priority flags, unknown frame types ignored; a stream given up (a timeout) is reset
//! with CANCEL. A malformed frame is a connection error that fails every open stream.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::poll_fn;
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::conn::{Connector, Stream};
use super::{Answer, Keeper, Prepared, Protocol, Tag, Tagging, failure};
use crate::conformance::{Broke, ErrorKind, Outcome};

/// ALPN offered by [`Http2`].
pub const ALPN: &[&[u8]] = &[b"h2"];

/// The client connection preface.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const PRIORITY: u8 = 0x2;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PUSH_PROMISE: u8 = 0x5;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const WINDOW_UPDATE: u8 = 0x8;
const CONTINUATION: u8 = 0x9;

const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY_FLAG: u8 = 0x20;

/// Error codes (RFC 9113 §7).
const NO_ERROR: u32 = 0x0;
const PROTOCOL_ERROR: u32 = 0x1;
const FLOW_CONTROL_ERROR: u32 = 0x3;
const FRAME_SIZE_ERROR: u32 = 0x6;
const REFUSED_STREAM: u32 = 0x7;
const CANCEL: u32 = 0x8;
const COMPRESSION_ERROR: u32 = 0x9;
const ENHANCE_YOUR_CALM: u32 = 0xb;
/// Most bytes queued for the server (acknowledgements it asks for without reading them).
const MAX_QUEUED: usize = 1 << 20;

/// The largest frame payload we accept (the protocol's default; we announce no other).
const MAX_FRAME: usize = 16_384;
/// Our stream receive window (announced in SETTINGS) and connection window.
const STREAM_WINDOW: u32 = 1 << 20;
const CONN_WINDOW: u32 = 4 << 20;
/// The default window a peer starts with.
const DEFAULT_WINDOW: i64 = 65_535;
/// A response header block larger than this is refused.
const MAX_BLOCK: usize = 256 * 1024;
/// The most a header list may decode to (names, values and 32 bytes per field).
const MAX_LIST: usize = 1 << 20;
/// Largest flow-control window (2^31 − 1).
const MAX_WINDOW: i64 = (1 << 31) - 1;
/// Bytes read from the socket at once.
const READ_CHUNK: usize = 64 * 1024;

/// Names a request must not carry over HTTP/2 (RFC 9113 §8.2.2).
const CONNECTION_SPECIFIC: &[&str] = &["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"];

/// A handle to an HTTP/2 connection (every fork shares it).
pub struct Conn {
    inner: Rc<RefCell<Inner>>,
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

/// Why a connection can carry nothing more.
#[derive(Debug, Clone)]
enum Dead {
    /// The server closed it, reset it, or sent GOAWAY: streams it never answered "went away".
    Gone(String),
    /// An I/O or TLS error: classified from the error.
    Io(Rc<io::Error>),
    /// It broke the protocol (or we could not decode it).
    Protocol(String),
}

/// How one stream ended, when not with a whole answer.
#[derive(Debug, Clone)]
enum Failed {
    /// The connection died under it.
    Conn(Dead),
    /// The server refused it unprocessed (REFUSED_STREAM, or above a GOAWAY's last id).
    Refused(String),
    /// The server reset it.
    Reset(u32),
    /// The answer broke the protocol.
    Protocol(String),
}

/// Hashes a stream id as itself (spread by a multiply): ids are ours, small and odd, so
/// SipHash's keyed mixing buys nothing here and cost a few per cent of an HTTP/2 request's
/// user time; a server's frame can only look up an id, never add one.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u32(&mut self, id: u32) {
        // The table takes its bucket from the low bits and its tag from the top ones.
        let h = u64::from(id).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 = h ^ (h >> 32);
    }
}

/// The open streams of a connection, by id.
type Streams = HashMap<u32, Slot, BuildHasherDefault<IdHasher>>;

/// One open stream.
struct Slot {
    status: Option<u16>,
    /// Response headers, kept for a probe.
    headers: Option<http::HeaderMap>,
    keeper: Keeper,
    alt: u16,
    done: bool,
    failed: Option<Failed>,
    waker: Option<Waker>,
    /// Received bytes not yet returned in a WINDOW_UPDATE.
    unacked: u32,
    /// What we may still send on it.
    send_window: i64,
    /// Request body still to send (its window or the connection's was short).
    pending: bytes::Bytes,
    /// The answer's `content-length`, and the body bytes received (checked at its end).
    length: Option<u64>,
    received: u64,
    /// A HEAD request (its answer has no body whatever its length says).
    head: bool,
}

/// A header block being received (HEADERS, then CONTINUATION frames).
struct Block {
    stream: u32,
    end_stream: bool,
    bytes: Vec<u8>,
}

struct Inner {
    io: Stream,
    tls: bool,
    rbuf: Vec<u8>,
    start: usize,
    end: usize,
    wbuf: Vec<u8>,
    wpos: usize,
    /// Written into the stream but not flushed (TLS buffers).
    unflushed: bool,
    decoder: super::hpack::Decoder,
    block: Option<Block>,
    streams: Streams,
    next_id: u32,
    /// The server's SETTINGS.
    max_streams: usize,
    max_frame: usize,
    initial_window: i64,
    /// What we may still send on the connection.
    conn_window: i64,
    /// Received bytes not yet returned on the connection.
    conn_unacked: u32,
    /// A GOAWAY's last stream id.
    goaway: Option<u32>,
    dead: Option<Dead>,
    /// Answers completed on this connection (a failure before any is a refusal, after one a
    /// stale connection).
    served: u64,
    /// The stream whose exchange last waited for bytes (its task is woken by the socket).
    reader: u32,
    /// Exchanges waiting for a free stream.
    waiting: Vec<Waker>,
    /// A request's header block and a varying header's value, as they are encoded (kept
    /// between requests, so opening a stream allocates nothing).
    scratch: (Vec<u8>, Vec<u8>),
    /// The server's preface (a SETTINGS frame) has come.
    preface: bool,
    /// Writes into the stream (what batching saves is seen in tests).
    #[cfg(test)]
    writes: usize,
}

impl Inner {
    fn frame_head(&mut self, len: usize, kind: u8, flags: u8, stream: u32) {
        let l = len as u32;
        self.wbuf.extend_from_slice(&[(l >> 16) as u8, (l >> 8) as u8, l as u8, kind, flags]);
        self.wbuf.extend_from_slice(&stream.to_be_bytes());
    }

    fn rst(&mut self, stream: u32, code: u32) {
        self.frame_head(4, RST_STREAM, 0, stream);
        self.wbuf.extend_from_slice(&code.to_be_bytes());
    }

    fn window_update(&mut self, stream: u32, n: u32) {
        self.frame_head(4, WINDOW_UPDATE, 0, stream);
        self.wbuf.extend_from_slice(&(n & 0x7fff_ffff).to_be_bytes());
    }

    /// Writes out what is queued; `Ready(Ok)` once all of it is in the socket.
    fn poll_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.wpos < self.wbuf.len() {
            match Pin::new(&mut self.io).poll_write(cx, &self.wbuf[self.wpos..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    self.wpos += n;
                    self.unflushed = true;
                    #[cfg(test)]
                    {
                        self.writes += 1;
                    }
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        self.wbuf.clear();
        self.wpos = 0;
        if self.unflushed {
            match Pin::new(&mut self.io).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.unflushed = false,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Reads once into the buffer: `Ready(Ok(0))` at EOF.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.rbuf.len() - self.end < MAX_FRAME + 9 {
            self.rbuf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let mut buf = ReadBuf::new(&mut self.rbuf[self.end..]);
        match Pin::new(&mut self.io).poll_read(cx, &mut buf) {
            Poll::Ready(Ok(())) => {
                let n = buf.filled().len();
                self.end += n;
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// The connection is over: every open stream fails with `why`.
    fn kill(&mut self, why: Dead) {
        if self.dead.is_some() {
            return;
        }
        for s in self.streams.values_mut() {
            if !s.done && s.failed.is_none() {
                s.failed = Some(Failed::Conn(why.clone()));
                if let Some(w) = s.waker.take() {
                    w.wake();
                }
            }
        }
        self.dead = Some(why);
        self.wake_waiting();
    }

    fn wake_waiting(&mut self) {
        for w in self.waiting.drain(..) {
            w.wake();
        }
    }

    fn finish(&mut self, id: u32, f: impl FnOnce(&mut Slot)) {
        if let Some(s) = self.streams.get_mut(&id) {
            f(s);
            if let Some(w) = s.waker.take() {
                w.wake();
            }
        }
    }

    /// Parses and handles every whole frame in the buffer.
    fn frames(&mut self) {
        while self.dead.is_none() {
            if self.wbuf.len() > MAX_QUEUED {
                return self.protocol(
                    ENHANCE_YOUR_CALM,
                    "the server sends frames to answer (PING, SETTINGS) faster than it reads the answers".into(),
                );
            }
            let b = &self.rbuf[self.start..self.end];
            if b.len() < 9 {
                return;
            }
            let len = (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2]);
            if !self.preface && (b[3] != SETTINGS || b[4] & ACK != 0 || len > MAX_FRAME) {
                let what =
                    if b.starts_with(b"HTTP/") { "it answered in HTTP/1" } else { "its first frame is not SETTINGS" };
                return self.protocol(PROTOCOL_ERROR, format!("not HTTP/2: {what}"));
            }
            if len > MAX_FRAME {
                return self.protocol(FRAME_SIZE_ERROR, format!("a frame of {len} bytes, above the 16,384 announced"));
            }
            if b.len() < 9 + len {
                return;
            }
            let (kind, flags) = (b[3], b[4]);
            let stream = u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & 0x7fff_ffff;
            let (from, to) = (self.start + 9, self.start + 9 + len);
            self.start = to;
            self.preface = true;
            // The payload is copied out only where it must outlive the buffer (header blocks).
            self.frame(kind, flags, stream, from, to);
        }
    }

    /// A connection error of ours: GOAWAY to the server, every stream failed.
    fn protocol(&mut self, code: u32, why: String) {
        // The last stream the server opened: none (push is off).
        self.frame_head(8, GOAWAY, 0, 0);
        self.wbuf.extend_from_slice(&0u32.to_be_bytes());
        self.wbuf.extend_from_slice(&code.to_be_bytes());
        self.kill(Dead::Protocol(why));
    }

    fn frame(&mut self, kind: u8, flags: u8, stream: u32, from: usize, to: usize) {
        if self.block.is_some() && kind != CONTINUATION {
            return self.protocol(PROTOCOL_ERROR, "a header block interrupted by another frame".into());
        }
        match kind {
            DATA => self.data(flags, stream, from, to),
            HEADERS => {
                let Some((a, b)) = self.unpad(flags, from, to, flags & PRIORITY_FLAG != 0) else { return };
                if stream == 0 {
                    return self.protocol(PROTOCOL_ERROR, "HEADERS on stream 0".into());
                }
                let bytes = self.rbuf[a..b].to_vec();
                self.block = Some(Block { stream, end_stream: flags & END_STREAM != 0, bytes });
                if flags & END_HEADERS != 0 {
                    self.end_block();
                }
            }
            CONTINUATION => {
                let Some(mut block) = self.block.take().filter(|b| b.stream == stream) else {
                    return self.protocol(PROTOCOL_ERROR, "CONTINUATION without a header block".into());
                };
                if block.bytes.len() + (to - from) > MAX_BLOCK {
                    return self.protocol(PROTOCOL_ERROR, "a response header block above 256 KiB".into());
                }
                block.bytes.extend_from_slice(&self.rbuf[from..to]);
                self.block = Some(block);
                if flags & END_HEADERS != 0 {
                    self.end_block();
                }
            }
            PRIORITY => {}
            RST_STREAM => {
                if to - from != 4 || stream == 0 {
                    return self.protocol(FRAME_SIZE_ERROR, "a malformed RST_STREAM".into());
                }
                let code = self.u32_at(from);
                self.finish(stream, |s| {
                    if !s.done {
                        s.failed = Some(if code == REFUSED_STREAM {
                            Failed::Refused("the server refused the stream (REFUSED_STREAM)".into())
                        } else {
                            Failed::Reset(code)
                        });
                    }
                });
            }
            SETTINGS => self.settings(flags, stream, from, to),
            PUSH_PROMISE => {
                // We announced ENABLE_PUSH = 0.
                self.protocol(PROTOCOL_ERROR, "a PUSH_PROMISE although push was disabled".into());
            }
            PING => {
                if to - from != 8 || stream != 0 {
                    return self.protocol(FRAME_SIZE_ERROR, "a malformed PING".into());
                }
                if flags & ACK == 0 {
                    let payload: [u8; 8] = self.rbuf[from..to].try_into().unwrap_or_default();
                    self.frame_head(8, PING, ACK, 0);
                    self.wbuf.extend_from_slice(&payload);
                }
            }
            GOAWAY => {
                if to - from < 8 || stream != 0 {
                    return self.protocol(FRAME_SIZE_ERROR, "a malformed GOAWAY".into());
                }
                let last = self.u32_at(from) & 0x7fff_ffff;
                let code = self.u32_at(from + 4);
                self.goaway = Some(self.goaway.map_or(last, |l| l.min(last)));
                let why = format!("the server sent GOAWAY ({})", reason(code));
                for (&id, s) in self.streams.iter_mut() {
                    if id > last && !s.done && s.failed.is_none() {
                        s.failed = Some(Failed::Refused(why.clone()));
                        if let Some(w) = s.waker.take() {
                            w.wake();
                        }
                    }
                }
                self.wake_waiting();
            }
            WINDOW_UPDATE => {
                if to - from != 4 {
                    return self.protocol(FRAME_SIZE_ERROR, "a malformed WINDOW_UPDATE".into());
                }
                let n = i64::from(self.u32_at(from) & 0x7fff_ffff);
                if n == 0 {
                    return self.protocol(PROTOCOL_ERROR, "a WINDOW_UPDATE of 0".into());
                }
                if stream == 0 {
                    self.conn_window += n;
                    if self.conn_window > MAX_WINDOW {
                        return self.protocol(FLOW_CONTROL_ERROR, "the connection window above 2^31 − 1".into());
                    }
                    let ids: Vec<u32> =
                        self.streams.iter().filter(|(_, s)| !s.pending.is_empty()).map(|(&id, _)| id).collect();
                    for id in ids {
                        self.send_body(id);
                    }
                } else if let Some(s) = self.streams.get_mut(&stream) {
                    s.send_window += n;
                    if s.send_window > MAX_WINDOW {
                        return self.protocol(FLOW_CONTROL_ERROR, "a stream window above 2^31 − 1".into());
                    }
                    self.send_body(stream);
                }
            }
            _ => {}
        }
    }

    fn u32_at(&self, at: usize) -> u32 {
        u32::from_be_bytes([self.rbuf[at], self.rbuf[at + 1], self.rbuf[at + 2], self.rbuf[at + 3]])
    }

    /// The payload without its padding (and priority fields), or `None` after a protocol error.
    fn unpad(&mut self, flags: u8, from: usize, to: usize, priority: bool) -> Option<(usize, usize)> {
        let (mut a, mut b) = (from, to);
        if flags & PADDED != 0 {
            let Some(&pad) = self.rbuf.get(a).filter(|_| a < b) else {
                self.protocol(PROTOCOL_ERROR, "a padded frame without its pad length".into());
                return None;
            };
            a += 1;
            if usize::from(pad) > b - a {
                self.protocol(PROTOCOL_ERROR, "padding longer than the frame".into());
                return None;
            }
            b -= usize::from(pad);
        }
        if priority {
            if b - a < 5 {
                self.protocol(PROTOCOL_ERROR, "a HEADERS frame too short for its priority".into());
                return None;
            }
            a += 5;
        }
        Some((a, b))
    }

    fn data(&mut self, flags: u8, stream: u32, from: usize, to: usize) {
        let len = (to - from) as u32;
        // Flow control counts the whole payload, padding too.
        self.conn_unacked += len;
        if self.conn_unacked >= CONN_WINDOW / 2 {
            let n = std::mem::take(&mut self.conn_unacked);
            self.window_update(0, n);
        }
        let Some((a, b)) = self.unpad(flags, from, to, false) else { return };
        let end = flags & END_STREAM != 0;
        let Some(s) = self.streams.get_mut(&stream) else { return };
        if s.status.is_none() {
            s.failed = Some(Failed::Protocol("DATA before the response headers".into()));
            if let Some(w) = s.waker.take() {
                w.wake();
            }
            return;
        }
        s.keeper.add(&self.rbuf[a..b]);
        s.received += (b - a) as u64;
        s.unacked += len;
        let update = if !end && s.unacked >= STREAM_WINDOW / 2 { Some(std::mem::take(&mut s.unacked)) } else { None };
        if end {
            match s.length {
                Some(l) if !s.head && !matches!(s.status, Some(204 | 304)) && l != s.received => {
                    s.failed =
                        Some(Failed::Protocol(format!("a body of {} bytes, its content-length says {l}", s.received)))
                }
                _ => s.done = true,
            }
            if let Some(w) = s.waker.take() {
                w.wake();
            }
        }
        if let Some(n) = update {
            self.window_update(stream, n);
        }
    }

    fn end_block(&mut self) {
        let Some(block) = self.block.take() else { return };
        let keep = self.streams.get(&block.stream).is_some_and(|s| s.headers.is_some());
        let mut status: Option<Result<u16, ()>> = None;
        let mut alt = 0u16;
        let mut kept = http::HeaderMap::new();
        let mut bad_name = false;
        let mut length: Option<Option<u64>> = None;
        // The decoded size (RFC 9113 §6.5.2's measure): a small block can decode to gigabytes
        // by repeating one large table entry.
        let mut decoded = 0usize;
        let r = self.decoder.decode(&block.bytes, |name, value| {
            decoded = decoded.saturating_add(name.len() + value.len() + 32);
            if decoded > MAX_LIST {
                return;
            }
            if name == b":status" {
                status = Some(std::str::from_utf8(value).ok().and_then(|v| v.parse::<u16>().ok()).ok_or(()));
            } else if name.first() == Some(&b':') {
                bad_name = true;
            } else {
                if name == b"alt-svc" {
                    alt = super::alt_svc_h3(value);
                }
                if name == b"content-length" {
                    let v = std::str::from_utf8(value).ok().and_then(|v| v.parse::<u64>().ok());
                    length = Some(match length {
                        Some(Some(l)) if Some(l) != v => None,
                        Some(None) => None,
                        _ => v,
                    });
                }
                if name.iter().any(u8::is_ascii_uppercase) || CONNECTION_SPECIFIC.iter().any(|c| c.as_bytes() == name) {
                    bad_name = true;
                }
                if keep {
                    if let (Ok(n), Ok(v)) = (http::HeaderName::from_bytes(name), http::HeaderValue::from_bytes(value)) {
                        kept.append(n, v);
                    }
                }
            }
        });
        if let Err(e) = r {
            return self.protocol(COMPRESSION_ERROR, format!("a header block that does not decode: {e}"));
        }
        if decoded > MAX_LIST {
            return self.protocol(
                PROTOCOL_ERROR,
                format!("a header list of {} bytes decoded, above 1 MiB (an HPACK bomb)", decoded),
            );
        }
        let end = block.end_stream;
        self.finish(block.stream, |s| {
            if s.done || s.failed.is_some() {
                return;
            }
            match (s.status, status) {
                (None, Some(Ok(code))) if (100..200).contains(&code) && code != 101 => {
                    // An interim answer; the final one follows.
                    if end {
                        s.failed = Some(Failed::Protocol(format!("an interim {code} answer that ends the stream")));
                    }
                    return;
                }
                (None, Some(Ok(code))) if (200..600).contains(&code) && !bad_name => {
                    if length == Some(None) {
                        s.failed = Some(Failed::Protocol("a content-length that is not one number".into()));
                        return;
                    }
                    s.length = length.flatten();
                    s.status = Some(code);
                    s.alt = alt;
                    if let Some(h) = &mut s.headers {
                        *h = kept;
                    }
                }
                (None, _) => {
                    s.failed = Some(Failed::Protocol("a response without a valid :status".into()));
                    return;
                }
                // Trailers: they must end the stream.
                (Some(_), _) if !end => {
                    s.failed = Some(Failed::Protocol("trailers that do not end the stream".into()));
                    return;
                }
                (Some(_), _) => {}
            }
            if end {
                match s.length {
                    Some(l) if !s.head && !matches!(s.status, Some(204 | 304)) && l != s.received => {
                        s.failed = Some(Failed::Protocol(format!(
                            "a body of {} bytes, its content-length says {l}",
                            s.received
                        )))
                    }
                    _ => s.done = true,
                }
            }
        });
    }

    fn settings(&mut self, flags: u8, stream: u32, from: usize, to: usize) {
        if stream != 0 || (to - from) % 6 != 0 || (flags & ACK != 0 && to > from) {
            return self.protocol(FRAME_SIZE_ERROR, "a malformed SETTINGS frame".into());
        }
        if flags & ACK != 0 {
            return;
        }
        let mut at = from;
        while at < to {
            let id = u16::from_be_bytes([self.rbuf[at], self.rbuf[at + 1]]);
            let v = self.u32_at(at + 2);
            at += 6;
            match id {
                // MAX_CONCURRENT_STREAMS
                0x3 => self.max_streams = v as usize,
                // INITIAL_WINDOW_SIZE: every open stream's send window moves by the change.
                0x4 => {
                    if i64::from(v) > MAX_WINDOW {
                        return self.protocol(FLOW_CONTROL_ERROR, "an initial window above 2^31 − 1".into());
                    }
                    let delta = i64::from(v) - self.initial_window;
                    self.initial_window = i64::from(v);
                    for s in self.streams.values_mut() {
                        s.send_window += delta;
                    }
                }
                // MAX_FRAME_SIZE
                0x5 => {
                    if !(16_384..=16_777_215).contains(&v) {
                        return self.protocol(PROTOCOL_ERROR, format!("a MAX_FRAME_SIZE of {v}"));
                    }
                    self.max_frame = v as usize;
                }
                _ => {}
            }
        }
        self.frame_head(0, SETTINGS, ACK, 0);
        // A larger initial window lets waiting bodies go on.
        let ids: Vec<u32> = self.streams.iter().filter(|(_, s)| !s.pending.is_empty()).map(|(&id, _)| id).collect();
        for id in ids {
            self.send_body(id);
        }
        self.wake_waiting();
    }

    /// Sends as much of a stream's pending body as the windows allow.
    fn send_body(&mut self, id: u32) {
        loop {
            let Some(s) = self.streams.get_mut(&id) else { return };
            if s.pending.is_empty() {
                return;
            }
            let room = s.send_window.min(self.conn_window).min(self.max_frame as i64);
            if room <= 0 {
                return;
            }
            let n = (room as usize).min(s.pending.len());
            let chunk = s.pending.split_to(n);
            s.send_window -= n as i64;
            let last = s.pending.is_empty();
            self.conn_window -= n as i64;
            self.frame_head(n, DATA, if last { END_STREAM } else { 0 }, id);
            self.wbuf.extend_from_slice(&chunk);
        }
    }

    /// Opens a stream for `req`: its frames are queued.
    fn open(&mut self, req: &Prepared, fixed: &[u8], tag: Tag<'_>, keep_headers: bool) -> Result<u32, Outcome> {
        let id = self.next_id;
        if id > 0x7fff_ffff {
            return Err(Outcome::broken(ErrorKind::Protocol, Broke::Other, "stream ids ran out on this connection"));
        }
        self.next_id += 2;
        // Pseudo-headers first (RFC 9113 §8.3): the fixed block's start, `:path`, then the
        // regular headers.
        let (pseudo, regular) = fixed.split_at(usize::from(fixed[0]) + 1);
        let (mut block, mut value) = std::mem::take(&mut self.scratch);
        block.clear();
        block.extend_from_slice(&pseudo[1..]);
        // :path (name index 4), literal without indexing.
        let path = req.path.as_str();
        match req.tagging {
            Tagging::Query => {
                let sep: &[u8] = if req.path.query().is_some() { b"&" } else { b"?" };
                let parts: [&[u8]; 5] = [path.as_bytes(), sep, super::TAG_PARAM.as_bytes(), b"=", tag.text.as_bytes()];
                literal_indexed_name(&mut block, 4, &parts, false);
            }
            _ => literal_indexed_name(&mut block, 4, &[path.as_bytes()], false),
        }
        block.extend_from_slice(regular);
        for (name, v) in &req.varying {
            value.clear();
            v.render(tag.seq, &mut value);
            literal_new_name(
                &mut block,
                name.as_str().as_bytes(),
                &value,
                crate::conformance::is_secret_name(name.as_str()),
            );
        }
        if req.tagging == Tagging::Header {
            literal_new_name(&mut block, super::TAG_HEADER.as_bytes(), tag.text.as_bytes(), true);
        }
        let body = req.body.clone();
        let end = body.is_empty();
        // HEADERS, then CONTINUATION frames when the block is larger than a frame.
        let mut rest = &block[..];
        let mut first = true;
        loop {
            let n = rest.len().min(self.max_frame);
            let last = n == rest.len();
            let flags = if last { END_HEADERS } else { 0 } | if first && end { END_STREAM } else { 0 };
            self.frame_head(n, if first { HEADERS } else { CONTINUATION }, flags, id);
            self.wbuf.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            first = false;
            if last {
                break;
            }
        }
        self.scratch = (block, value);
        self.streams.insert(
            id,
            Slot {
                status: None,
                headers: keep_headers.then(http::HeaderMap::new),
                keeper: Keeper::new(req.keep_body),
                alt: 0,
                done: false,
                failed: None,
                waker: None,
                unacked: 0,
                send_window: self.initial_window,
                pending: body,
                length: None,
                received: 0,
                head: req.method == http::Method::HEAD,
            },
        );
        self.send_body(id);
        Ok(id)
    }

    /// Output is waiting to be written (or, under TLS, flushed).
    fn queued(&self) -> bool {
        self.wpos < self.wbuf.len() || self.unflushed
    }

    /// Another stream's answer is in and its exchange woken but not yet back: that exchange
    /// writes what is queued on its way out (with its user's next request in the same
    /// write, which is how a batch of answers becomes one write of requests) or hands the
    /// writing over in [`Inner::hand_over`].
    fn flush_coming(&self) -> bool {
        self.streams.values().any(|s| s.waker.is_none() && (s.done || s.failed.is_some()))
    }

    /// Someone must go on reading and writing once `id`'s exchange leaves: wakes another
    /// stream's exchange if `id` was the reader or output is queued.
    fn hand_over(&mut self, id: u32) {
        let owed = self.queued() && !self.flush_coming();
        if self.reader == id || owed {
            if let Some(w) = self.streams.values_mut().find_map(|s| s.waker.take()) {
                w.wake();
                return;
            }
        }
        // Nobody is left to write it (the connection's last stream): what is queued (an
        // acknowledgement, a reset) goes now; a full socket keeps it for the next exchange.
        if owed {
            self.flush(&mut Context::from_waker(Waker::noop()));
        }
    }

    /// Writes what is queued; a write error kills the connection and drops the output.
    fn flush(&mut self, cx: &mut Context<'_>) {
        if let Poll::Ready(Err(e)) = self.poll_out(cx) {
            self.kill(Dead::Io(Rc::new(e)));
            self.wbuf.clear();
            self.wpos = 0;
            self.unflushed = false;
        }
    }

    /// Closes stream `id` on its exchange's way out (answered, failed or given up).
    fn close(&mut self, id: u32) {
        if let Some(s) = self.streams.remove(&id) {
            let ours = matches!(s.failed, None | Some(Failed::Protocol(_)));
            if self.dead.is_none() && ours && (!s.done || !s.pending.is_empty()) {
                self.rst(id, if s.failed.is_some() { PROTOCOL_ERROR } else { CANCEL });
            }
        }
        self.hand_over(id);
        self.wake_waiting();
    }
}

/// An HPACK integer with an `n`-bit prefix whose high bits are `first`.
pub(super) fn integer(out: &mut Vec<u8>, first: u8, n: u8, mut v: usize) {
    let max = (1usize << n) - 1;
    if v < max {
        out.push(first | v as u8);
        return;
    }
    out.push(first | max as u8);
    v -= max;
    while v >= 128 {
        out.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.push(v as u8);
}

/// A literal field with a static-table name, its value the concatenation of `parts`;
/// "never indexed" when `secret`, else "without indexing".
fn literal_indexed_name(out: &mut Vec<u8>, index: usize, parts: &[&[u8]], secret: bool) {
    integer(out, if secret { 0x10 } else { 0x00 }, 4, index);
    let len = parts.iter().map(|p| p.len()).sum();
    integer(out, 0, 7, len);
    for p in parts {
        out.extend_from_slice(p);
    }
}

/// A literal field with a literal name (lower case), never or not indexed.
fn literal_new_name(out: &mut Vec<u8>, name: &[u8], value: &[u8], secret: bool) {
    out.push(if secret { 0x10 } else { 0x00 });
    integer(out, 0, 7, name.len());
    out.extend_from_slice(name);
    integer(out, 0, 7, value.len());
    out.extend_from_slice(value);
}

/// The fixed part of a request's HPACK block: one byte giving the length of the pseudo-header
/// part (`:method`, `:scheme`, `:authority`; `:path` goes after it per request), that part,
/// then the check's and identity's headers (a `content-length` added when a body needs one);
/// or why it cannot go over HTTP/2.
pub(crate) fn fixed_block(
    method: &http::Method,
    tls: bool,
    authority: &str,
    headers: &http::HeaderMap,
    body: &bytes::Bytes,
) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(128);
    out.push(0);
    match *method {
        http::Method::GET => out.push(0x80 | 2),
        http::Method::POST => out.push(0x80 | 3),
        ref m => literal_indexed_name(&mut out, 2, &[m.as_str().as_bytes()], false),
    }
    out.push(0x80 | if tls { 7 } else { 6 });
    literal_indexed_name(&mut out, 1, &[authority.as_bytes()], false);
    out[0] = u8::try_from(out.len() - 1).map_err(|_| "a target authority longer than 240 bytes".to_string())?;
    for (name, value) in headers {
        let n = name.as_str();
        if CONNECTION_SPECIFIC.contains(&n) || (n == "te" && value.as_bytes() != b"trailers") {
            return Err(format!("the header `{n}` is connection-specific: HTTP/2 forbids it (RFC 9113 §8.2.2)"));
        }
        let secret = value.is_sensitive() || crate::conformance::is_secret_name(n);
        literal_new_name(&mut out, n.as_bytes(), value.as_bytes(), secret);
    }
    let needs = !body.is_empty() || matches!(*method, http::Method::POST | http::Method::PUT | http::Method::PATCH);
    if needs && !headers.contains_key(http::header::CONTENT_LENGTH) {
        literal_new_name(&mut out, b"content-length", itoa::Buffer::new().format(body.len()).as_bytes(), false);
    }
    Ok(out)
}

/// An error code's name.
fn reason(code: u32) -> String {
    let name = match code {
        NO_ERROR => "NO_ERROR",
        PROTOCOL_ERROR => "PROTOCOL_ERROR",
        0x2 => "INTERNAL_ERROR",
        FLOW_CONTROL_ERROR => "FLOW_CONTROL_ERROR",
        0x4 => "SETTINGS_TIMEOUT",
        0x5 => "STREAM_CLOSED",
        FRAME_SIZE_ERROR => "FRAME_SIZE_ERROR",
        REFUSED_STREAM => "REFUSED_STREAM",
        CANCEL => "CANCEL",
        COMPRESSION_ERROR => "COMPRESSION_ERROR",
        0xa => "CONNECT_ERROR",
        ENHANCE_YOUR_CALM => "ENHANCE_YOUR_CALM",
        0xc => "INADEQUATE_SECURITY",
        0xd => "HTTP_1_1_REQUIRED",
        c => return format!("error code {c:#x}"),
    };
    name.to_string()
}

/// Opens HTTP/2 on `stream`: our preface and SETTINGS are queued; the server's (its first
/// frame) are read and acknowledged with the first answer.
pub(crate) async fn handshake(stream: Stream) -> Result<Conn, Outcome> {
    let tls = stream.is_tls();
    let mut inner = Inner {
        io: stream,
        tls,
        rbuf: vec![0; READ_CHUNK],
        start: 0,
        end: 0,
        wbuf: Vec::with_capacity(4096),
        wpos: 0,
        unflushed: false,
        decoder: super::hpack::Decoder::new(),
        block: None,
        streams: Streams::default(),
        next_id: 1,
        max_streams: 100,
        max_frame: MAX_FRAME,
        initial_window: DEFAULT_WINDOW,
        conn_window: DEFAULT_WINDOW,
        conn_unacked: 0,
        goaway: None,
        dead: None,
        served: 0,
        reader: 0,
        waiting: Vec::new(),
        scratch: (Vec::with_capacity(256), Vec::with_capacity(64)),
        preface: false,
        #[cfg(test)]
        writes: 0,
    };
    inner.wbuf.extend_from_slice(PREFACE);
    // SETTINGS: ENABLE_PUSH 0, INITIAL_WINDOW_SIZE.
    inner.frame_head(12, SETTINGS, 0, 0);
    inner.wbuf.extend_from_slice(&[0, 2, 0, 0, 0, 0]);
    inner.wbuf.extend_from_slice(&[0, 4]);
    inner.wbuf.extend_from_slice(&STREAM_WINDOW.to_be_bytes());
    inner.window_update(0, CONN_WINDOW - DEFAULT_WINDOW as u32);
    // Queued, not written: the first request goes out in the same write. The server's
    // SETTINGS are read with the first answer (as hyper did), so a gateway that closes a new
    // connection (a refused client certificate) is seen in the exchange, where a fresh
    // connection's close is classified (and an idempotent request retried).
    Ok(Conn { inner: Rc::new(RefCell::new(inner)) })
}

fn dead_outcome(d: &Dead, unanswered: Broke) -> Outcome {
    match d {
        Dead::Gone(why) => Outcome::broken(ErrorKind::Reset, unanswered, why),
        Dead::Io(e) => failure(e.as_ref(), unanswered),
        Dead::Protocol(why) => Outcome::broken(ErrorKind::Protocol, Broke::Other, why),
    }
}

/// The answer of one exchange: status, kept body, announced HTTP/3 port, kept headers.
struct Got {
    answer: Answer,
    alt: u16,
    headers: Option<http::HeaderMap>,
}

/// Closes the stream when the exchange ends, however it ends (a timeout drops it).
struct Open<'a> {
    inner: &'a Rc<RefCell<Inner>>,
    id: u32,
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        if let Ok(mut g) = self.inner.try_borrow_mut() {
            g.close(self.id);
        }
    }
}

async fn run(c: &Conn, req: &Prepared, tag: Tag<'_>, keep_headers: bool) -> Result<Got, Outcome> {
    let fixed = req.h2_block.as_deref().map_err(|why| Outcome::broken(ErrorKind::Protocol, Broke::Other, why))?;
    // A free stream.
    let id = poll_fn(|cx| {
        let mut guard = c.inner.borrow_mut();
        let g = &mut *guard;
        if let Some(d) = &g.dead {
            let o = match d {
                Dead::Gone(why) => gone(g.served, g.tls, why),
                d => dead_outcome(d, unanswered(g.served, g.tls)),
            };
            return Poll::Ready(Err(o));
        }
        if g.goaway.is_some() {
            return Poll::Ready(Err(gone(g.served, g.tls, "it sent GOAWAY")));
        }
        if g.streams.len() >= g.max_streams.max(1) {
            g.waiting.push(cx.waker().clone());
            return Poll::Pending;
        }
        Poll::Ready(g.open(req, fixed, tag, keep_headers))
    })
    .await?;
    let _open = Open { inner: &c.inner, id };
    poll_fn(|cx| {
        let mut guard = c.inner.borrow_mut();
        let g = &mut *guard;
        loop {
            // Written even on a dead connection (our GOAWAY); an error then changes nothing.
            // Left for later while another answered exchange is about to run (see
            // `flush_coming`).
            if g.queued() && !g.flush_coming() {
                g.flush(cx);
            }
            let Some(s) = g.streams.get_mut(&id) else {
                return Poll::Ready(Err(Outcome::broken(ErrorKind::Protocol, Broke::Other, "the stream was lost")));
            };
            if let Some(f) = s.failed.clone() {
                let at = if s.status.is_some() { Broke::Other } else { unanswered(g.served, g.tls) };
                return Poll::Ready(Err(match f {
                    Failed::Conn(Dead::Gone(why)) if s.status.is_none() => gone(g.served, g.tls, &why),
                    Failed::Conn(Dead::Gone(why)) => {
                        Outcome::broken(ErrorKind::Reset, Broke::Other, format!("{why} in the middle of the response"))
                    }
                    Failed::Conn(Dead::Io(e)) => failure(e.as_ref(), at),
                    Failed::Conn(Dead::Protocol(why)) | Failed::Protocol(why) => {
                        Outcome::broken(ErrorKind::Protocol, Broke::Other, why)
                    }
                    Failed::Refused(why) if s.status.is_none() => gone(g.served, g.tls, &why),
                    // Refused (or cut by GOAWAY) after its status came: a broken answer, not
                    // a request the server never took.
                    Failed::Refused(why) => {
                        Outcome::broken(ErrorKind::Reset, Broke::Other, format!("{why} in the middle of the response"))
                    }
                    Failed::Reset(code) => Outcome::broken(
                        ErrorKind::Reset,
                        Broke::Other,
                        format!("the server reset the stream ({})", reason(code)),
                    ),
                }));
            }
            if s.done {
                let got = Got {
                    answer: Answer { status: s.status.unwrap_or(0), body: std::mem::take(&mut s.keeper).take() },
                    alt: s.alt,
                    headers: s.headers.take(),
                };
                g.served += 1;
                return Poll::Ready(Ok(got));
            }
            match &s.waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => s.waker = Some(cx.waker().clone()),
            }
            if g.dead.is_some() {
                continue;
            }
            match g.poll_fill(cx) {
                Poll::Ready(Ok(0)) => {
                    g.frames();
                    g.kill(Dead::Gone("the connection closed".into()));
                }
                Poll::Ready(Ok(_)) => g.frames(),
                Poll::Ready(Err(e)) => g.kill(Dead::Io(Rc::new(e))),
                Poll::Pending => {
                    g.reader = id;
                    return Poll::Pending;
                }
            }
        }
    })
    .await
}

/// A stream the server never answered because the connection went away (or it refused
/// the stream): a refusal on a connection that answered nothing yet, a stale connection on
/// one that had answered.
fn gone(served: u64, tls: bool, why: &str) -> Outcome {
    let which = if served == 0 { "new" } else { "kept-alive" };
    Outcome::broken(
        ErrorKind::Reset,
        unanswered(served, tls),
        format!("the server closed the {which} connection without answering ({why})"),
    )
}

/// How a connection error before any answer byte is classified.
fn unanswered(served: u64, tls: bool) -> Broke {
    match (served, tls) {
        (0, true) => Broke::Fresh,
        (0, false) => Broke::Other,
        _ => Broke::Stale,
    }
}

pub(crate) async fn exchange(c: &mut Conn, req: &Prepared, tag: Tag<'_>) -> Result<Answer, Outcome> {
    run(c, req, tag, false).await.map(|g| g.answer)
}

/// [`exchange`], also returning the HTTP/3 port an `Alt-Svc` header announced (0: none).
pub(crate) async fn exchange_alt(c: &mut Conn, req: &Prepared, tag: Tag<'_>) -> Result<(Answer, u16), Outcome> {
    run(c, req, tag, false).await.map(|g| (g.answer, g.alt))
}

/// [`exchange`], keeping the response headers (a probe shows them).
pub(crate) async fn exchange_keeping(
    c: &mut Conn,
    req: &Prepared,
    tag: Tag<'_>,
) -> Result<(Answer, http::HeaderMap), Outcome> {
    run(c, req, tag, true).await.map(|g| (g.answer, g.headers.unwrap_or_default()))
}

pub(crate) fn fork(c: &Conn) -> Conn {
    Conn { inner: c.inner.clone() }
}

/// Whether the connection can carry another stream. An idle one is read first (without
/// waiting), so a GOAWAY or close that came while nobody was reading is seen.
pub(crate) fn is_open(c: &Conn) -> bool {
    let Ok(mut g) = c.inner.try_borrow_mut() else { return true };
    if g.dead.is_none() && g.streams.is_empty() {
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            match g.poll_fill(&mut cx) {
                Poll::Ready(Ok(0)) => {
                    g.frames();
                    g.kill(Dead::Gone("the connection closed".into()));
                    break;
                }
                Poll::Ready(Ok(_)) => g.frames(),
                Poll::Ready(Err(e)) => {
                    g.kill(Dead::Io(Rc::new(e)));
                    break;
                }
                Poll::Pending => break,
            }
            if g.dead.is_some() {
                break;
            }
        }
        // Acknowledgements (PING, SETTINGS) and window updates it asked for, without waiting.
        if g.dead.is_none() {
            g.flush(&mut cx);
        }
    }
    g.dead.is_none() && g.goaway.is_none() && g.next_id <= 0x7fff_ffff
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// A GET of `path` to `gw.test` over h2c.
    fn get(path: &str, tagging: Tagging) -> Prepared {
        let endpoint =
            super::super::Endpoint { tls: false, authority: http::uri::Authority::from_static("gw.test"), tagging };
        Prepared::new(0, http::Method::GET, path, http::HeaderMap::new(), bytes::Bytes::new(), &endpoint).unwrap()
    }

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let l = payload.len() as u32;
        let mut f = vec![(l >> 16) as u8, (l >> 8) as u8, l as u8, kind, flags];
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    /// A raw server on 127.0.0.1 that, once the client's first bytes arrive, writes `reply`
    /// (then keeps reading until the client goes); the answer of one GET over it.
    async fn against(reply: Vec<u8>, keep_body: bool) -> Result<Answer, Outcome> {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = vec![0u8; 65536];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(&reply).await;
            while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
        });
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut req = get("/x", Tagging::Header);
        req.keep_body = keep_body;
        let mut c = handshake(Stream::Plain(tcp)).await?;
        let tag = Tag { text: "run.C.1", seq: 1 };
        let r = tokio::time::timeout(std::time::Duration::from_secs(10), exchange(&mut c, &req, tag))
            .await
            .expect("no hang");
        drop(c);
        server.abort();
        r
    }

    fn settings() -> Vec<u8> {
        // MAX_CONCURRENT_STREAMS 1, MAX_FRAME_SIZE 16384.
        frame(SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 1, 0, 5, 0, 0, 0x40, 0])
    }

    #[tokio::test]
    async fn an_answer_in_continuations_padding_pings_and_trailers_is_read_whole() {
        let mut r = settings();
        r.extend(frame(PING, 0, 0, b"12345678"));
        // HEADERS, padded (2), :status 200 (static 8) without END_HEADERS; CONTINUATION with
        // a Huffman-coded `server: nginx` (RFC 7541's code for "nginx").
        r.extend(frame(HEADERS, PADDED, 1, &[2, 0x88, 0, 0]));
        let mut cont = vec![0x0f, 0x27]; // literal without indexing, name index 54 (server)
        cont.extend_from_slice(&[0x84, 0xaa, 0x63, 0x55, 0xe7]);
        r.extend(frame(CONTINUATION, END_HEADERS, 1, &cont));
        r.extend(frame(DATA, PADDED, 1, &[3, b'h', b'e', b'l', b'l', b'o', 0, 0, 0]));
        // Trailers: `x-done: 1`.
        r.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, &[0x00, 6, b'x', b'-', b'd', b'o', b'n', b'e', 1, b'1']));
        let a = against(r, true).await.expect("answered");
        assert_eq!(a.status, 200);
        assert_eq!(a.body.as_deref(), Some(&b"hello"[..]));
    }

    #[tokio::test]
    async fn an_idle_connection_the_server_sent_goaway_on_is_not_reused() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (said, told) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let _ = s.read(&mut buf).await;
            let mut r = settings();
            r.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, &[0x88]));
            let _ = s.write_all(&r).await;
            // Idle now: the server says goodbye while nobody reads.
            let _ = told.await;
            let _ = s.write_all(&frame(GOAWAY, 0, 0, &[0, 0, 0, 1, 0, 0, 0, 0])).await;
            while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
        });
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut c = handshake(Stream::Plain(tcp)).await.unwrap();
        let req = get("/", Tagging::Header);
        assert_eq!(exchange(&mut c, &req, Tag { text: "r.C.1", seq: 1 }).await.unwrap().status, 200);
        assert!(is_open(&c));
        said.send(()).unwrap();
        // Bounded: the GOAWAY is on its way over loopback.
        let mut open = true;
        for _ in 0..500 {
            open = is_open(&c);
            if !open {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(!open, "a GOAWAY that came while idle closes the connection for reuse");
    }

    /// Answers that come in one read are followed by one write of the requests their
    /// exchanges send next (before, each went out on its own: a write per request).
    #[tokio::test]
    async fn the_next_requests_after_a_batch_of_answers_go_out_in_one_write() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        // Answers streams 1 and 3 in one write once both are asked, then 5 and 7.
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let (mut got, mut at, mut seen, mut answered) = (Vec::new(), PREFACE.len(), 0, 0);
            let mut buf = vec![0u8; 65536];
            while answered < 4 {
                let n = s.read(&mut buf).await.unwrap();
                assert!(n > 0, "the client went away");
                got.extend_from_slice(&buf[..n]);
                while got.len() >= at + 9 {
                    let len = usize::from(got[at]) << 16 | usize::from(got[at + 1]) << 8 | usize::from(got[at + 2]);
                    if got.len() < at + 9 + len {
                        break;
                    }
                    seen += usize::from(got[at + 3] == HEADERS);
                    at += 9 + len;
                }
                if seen >= answered + 2 {
                    let mut r = if answered == 0 { frame(SETTINGS, 0, 0, &[]) } else { Vec::new() };
                    for id in [answered * 2 + 1, answered * 2 + 3] {
                        r.extend(frame(HEADERS, END_HEADERS | END_STREAM, id as u32, &[0x88]));
                    }
                    s.write_all(&r).await.unwrap();
                    answered += 2;
                }
            }
            while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
        });
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let c = handshake(Stream::Plain(tcp)).await.unwrap();
        let req = get("/", Tagging::Header);
        let user = |mut c: Conn, seq: u64| {
            let req = &req;
            async move {
                for k in 0..2 {
                    let tag = Tag { text: "r.C.1", seq: seq + k };
                    assert_eq!(exchange(&mut c, req, tag).await.unwrap().status, 200);
                }
            }
        };
        let both = async { tokio::join!(user(fork(&c), 1), user(fork(&c), 3)) };
        tokio::time::timeout(std::time::Duration::from_secs(10), both).await.expect("no hang");
        // The preface with stream 1, stream 3, then streams 5 and 7 (with the SETTINGS ack).
        assert_eq!(c.inner.borrow().writes, 3);
        drop(c);
        server.abort();
    }

    /// The last stream of a connection leaves nothing queued behind: the SETTINGS ack read
    /// with its answer reaches the server though no other request follows.
    #[tokio::test]
    async fn what_the_last_stream_queued_is_written_as_it_leaves() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let (mut got, mut at, mut answered) = (Vec::new(), PREFACE.len(), false);
            let mut buf = vec![0u8; 65536];
            loop {
                let n = s.read(&mut buf).await.unwrap();
                assert!(n > 0, "the client went away without acknowledging");
                got.extend_from_slice(&buf[..n]);
                while got.len() >= at + 9 {
                    let len = usize::from(got[at]) << 16 | usize::from(got[at + 1]) << 8 | usize::from(got[at + 2]);
                    if got.len() < at + 9 + len {
                        break;
                    }
                    let (kind, flags) = (got[at + 3], got[at + 4]);
                    at += 9 + len;
                    if kind == SETTINGS && flags & ACK != 0 {
                        return;
                    }
                    if kind == HEADERS && !answered {
                        let mut r = frame(SETTINGS, 0, 0, &[]);
                        r.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, &[0x88]));
                        s.write_all(&r).await.unwrap();
                        answered = true;
                    }
                }
            }
        });
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut c = handshake(Stream::Plain(tcp)).await.unwrap();
        let req = get("/", Tagging::Header);
        assert_eq!(exchange(&mut c, &req, Tag { text: "r.C.1", seq: 1 }).await.unwrap().status, 200);
        // The connection stays open and idle: only the exchange's own way out can write.
        tokio::time::timeout(std::time::Duration::from_secs(10), server)
            .await
            .expect("the SETTINGS ack was left queued")
            .unwrap();
        drop(c);
    }

    #[tokio::test]
    async fn hostile_and_broken_servers_are_outcomes_not_hangs() {
        let cause = |o: Outcome| match o {
            Outcome::Broken { kind, cause, .. } => (kind, cause.map(|c| c.to_string()).unwrap_or_default()),
            o => panic!("{o:?}"),
        };
        // GOAWAY before answering: the connection went away.
        let mut r = settings();
        r.extend(frame(GOAWAY, 0, 0, &[0, 0, 0, 0, 0, 0, 0, 0]));
        let (kind, why) = cause(against(r, false).await.expect_err("refused"));
        assert_eq!(kind, ErrorKind::Reset);
        assert!(why.contains("GOAWAY (NO_ERROR)") && why.contains("without answering"), "{why}");
        // The stream refused.
        let mut r = settings();
        r.extend(frame(RST_STREAM, 0, 1, &REFUSED_STREAM.to_be_bytes()));
        assert!(cause(against(r, false).await.unwrap_err()).1.contains("REFUSED_STREAM"));
        // Reset with another code.
        let mut r = settings();
        r.extend(frame(RST_STREAM, 0, 1, &0x2u32.to_be_bytes()));
        assert!(cause(against(r, false).await.unwrap_err()).1.contains("reset the stream (INTERNAL_ERROR)"));
        // The stream refused, or cut by a GOAWAY, after its status came: a broken answer.
        let mut r = settings();
        r.extend(frame(HEADERS, END_HEADERS, 1, &[0x88]));
        r.extend(frame(RST_STREAM, 0, 1, &REFUSED_STREAM.to_be_bytes()));
        let why = cause(against(r, false).await.unwrap_err()).1;
        assert!(why.contains("REFUSED_STREAM") && why.contains("in the middle of the response"), "{why}");
        let mut r = settings();
        r.extend(frame(HEADERS, END_HEADERS, 1, &[0x88]));
        r.extend(frame(GOAWAY, 0, 0, &[0, 0, 0, 0, 0, 0, 0, 0]));
        let why = cause(against(r, false).await.unwrap_err()).1;
        assert!(why.contains("GOAWAY") && why.contains("in the middle of the response"), "{why}");
        // An HPACK bomb: one 4,000-byte table entry, then 300 references to it (1.2 MB).
        let mut block = vec![0x88, 0x40, 1, b'x', 0x7f, 0xa1, 0x1e];
        block.extend(std::iter::repeat_n(b'a', 4000));
        block.extend(std::iter::repeat_n(0x80 | 62, 300));
        let mut r = settings();
        r.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, &block));
        let why = cause(against(r, false).await.unwrap_err()).1;
        assert!(why.contains("above 1 MiB"), "{why}");
        // An HTTP/1 server.
        let (kind, why) = cause(against(b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec(), false).await.unwrap_err());
        assert_eq!(kind, ErrorKind::Protocol);
        assert!(why.contains("not HTTP/2: it answered in HTTP/1"), "{why}");
        // A frame above the 16,384 announced.
        let mut r = settings();
        r.extend(frame(DATA, 0, 1, &vec![0u8; 20_000]));
        assert!(cause(against(r, false).await.unwrap_err()).1.contains("above the 16,384"));
        // DATA before the headers; a block that does not decode; a status that is not one.
        let mut r = settings();
        r.extend(frame(DATA, END_STREAM, 1, b"x"));
        assert!(cause(against(r, false).await.unwrap_err()).1.contains("DATA before the response headers"));
        let mut r = settings();
        r.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, &[0xff, 0xff, 0xff, 0xff, 0x0f]));
        assert!(cause(against(r, false).await.unwrap_err()).1.contains("does not decode"));
        let mut r = settings();
        r.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, &[0x08, 3, b'a', b'b', b'c']));
        assert!(cause(against(r, false).await.unwrap_err()).1.contains("without a valid :status"));
        // A body shorter than its content-length (name index 28), then a WINDOW_UPDATE of 0.
        let mut r = settings();
        r.extend(frame(HEADERS, END_HEADERS, 1, &[0x88, 0x0f, 0x0d, 2, b'1', b'0']));
        r.extend(frame(DATA, END_STREAM, 1, b"abc"));
        let why = cause(against(r, false).await.unwrap_err()).1;
        assert!(why.contains("a body of 3 bytes, its content-length says 10"), "{why}");
        let mut r = settings();
        r.extend(frame(WINDOW_UPDATE, 0, 0, &[0, 0, 0, 0]));
        assert!(cause(against(r, false).await.unwrap_err()).1.contains("WINDOW_UPDATE of 0"));
        // Closed in the middle of the answer.
        let mut r = settings();
        r.extend(frame(HEADERS, END_HEADERS, 1, &[0x88]));
        r.extend(frame(DATA, 0, 1, b"par"));
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(&r).await;
        });
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut c = handshake(Stream::Plain(tcp)).await.unwrap();
        let req = get("/x", Tagging::Query);
        let e = exchange(&mut c, &req, Tag { text: "run.C.2", seq: 2 }).await.unwrap_err();
        assert!(cause(e).1.contains("in the middle of the response"));
        assert!(!is_open(&c));
    }

    #[test]
    fn integers_use_their_prefix_then_continuation_bytes() {
        // RFC 7541 C.1.
        let mut out = Vec::new();
        integer(&mut out, 0, 5, 10);
        assert_eq!(out, [10]);
        out.clear();
        integer(&mut out, 0, 5, 1337);
        assert_eq!(out, [31, 154, 10]);
        out.clear();
        integer(&mut out, 0, 7, 127);
        assert_eq!(out, [127, 0]);
    }

    #[test]
    fn a_fixed_block_decodes_to_the_request() {
        let mut h = http::HeaderMap::new();
        h.insert("x-user", http::HeaderValue::from_static("alice"));
        h.insert("authorization", http::HeaderValue::from_static("Bearer abc"));
        let block = fixed_block(&http::Method::PUT, true, "gw.example:8443", &h, &bytes::Bytes::from_static(b"hi"))
            .expect("encodes");
        let (pseudo, regular) = block.split_at(usize::from(block[0]) + 1);
        let mut all = pseudo[1..].to_vec();
        literal_indexed_name(&mut all, 4, &[b"/a", b"?gauntlet_tag=", b"t1"], false);
        all.extend_from_slice(regular);
        let mut got = Vec::new();
        loona_hpack::Decoder::new()
            .decode_with_cb(&all, |n, v| {
                got.push((String::from_utf8_lossy(&n).into_owned(), String::from_utf8_lossy(&v).into_owned()))
            })
            .expect("decodes");
        let want: Vec<(String, String)> = [
            (":method", "PUT"),
            (":scheme", "https"),
            (":authority", "gw.example:8443"),
            ("x-user", "alice"),
            ("authorization", "Bearer abc"),
            ("content-length", "2"),
            (":path", "/a?gauntlet_tag=t1"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        let pseudo_last = got.iter().rposition(|(n, _)| n.starts_with(':')).unwrap();
        assert!(got[..=pseudo_last].iter().all(|(n, _)| n.starts_with(':')), "pseudo-headers first: {got:?}");
        let mut got_sorted = got.clone();
        got_sorted.sort();
        let mut want_sorted = want.clone();
        want_sorted.sort();
        assert_eq!(got_sorted, want_sorted);
        // The secret goes "never indexed" (0x10), the others "without indexing".
        let at = all.windows(13).position(|w| w == b"authorization").expect("named literally");
        assert_eq!(all[at - 2], 0x10);
        assert!(
            fixed_block(
                &http::Method::GET,
                false,
                "a",
                &{
                    let mut h = http::HeaderMap::new();
                    h.insert("connection", http::HeaderValue::from_static("close"));
                    h
                },
                &bytes::Bytes::new()
            )
            .is_err()
        );
    }
}
