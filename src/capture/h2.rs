//! HTTP/2 in clear text (h2c, with prior knowledge or after an `Upgrade: h2c`) out of one
//! reassembled connection: a frame reader per direction, HPACK per direction
//! (`loona-hpack`, its table sizes following each side's SETTINGS), streams → requests paired
//! with their responses by stream id. Header blocks of every kind are decoded (pushes too) so
//! the HPACK state never drifts; a hole or a malformed frame ends the reading of the
//! connection (HPACK cannot resynchronise), and what was in flight is handed on unpaired.

use std::collections::BTreeMap;

use super::http1::{FNV_OFFSET, MAX_REQUEST_BODY, RESPONSE_PREFIX, Request, Response, fnv};
use super::tcp::Side;

/// The client connection preface.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Streams open at once (beyond, new ones are counted and not read).
const MAX_STREAMS: usize = 1024;
/// A header block larger than this is malformed here.
const MAX_BLOCK: usize = 256 * 1024;

const DATA: u8 = 0;
const HEADERS: u8 = 1;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const PUSH_PROMISE: u8 = 5;
const CONTINUATION: u8 = 9;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;

#[derive(Debug, Default)]
struct Stream {
    ts_ns: u64,
    request: Option<Request>,
    request_done: bool,
    response: Option<Response>,
    hash: u64,
}

/// A header block being read (HEADERS or PUSH_PROMISE, then CONTINUATION frames).
#[derive(Debug)]
struct Block {
    stream: u32,
    kind: u8,
    end_stream: bool,
    bytes: Vec<u8>,
}

/// A stream's outcome, for the caller to hand on.
#[derive(Debug)]
pub struct Done {
    /// When the request began.
    pub ts_ns: u64,
    /// Its stream id.
    pub stream: u32,
    /// The request.
    pub request: Request,
    /// The response, when it completed.
    pub response: Option<Response>,
}

/// One h2c connection being read.
pub struct H2 {
    bufs: [Vec<u8>; 2],
    /// Client preface bytes still to skip.
    preface: usize,
    decoders: [loona_hpack::Decoder<'static>; 2],
    /// A header block in progress per direction.
    block: [Option<Block>; 2],
    streams: BTreeMap<u32, Stream>,
    /// Reading stopped (a hole or a malformed frame): why.
    pub broken: Option<&'static str>,
    /// Streams not read because [`MAX_STREAMS`] were open.
    pub streams_over_limit: u64,
    /// Server pushes seen (not replayed).
    pub pushes: u64,
}

impl std::fmt::Debug for H2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H2").field("streams", &self.streams.len()).field("broken", &self.broken).finish()
    }
}

impl H2 {
    /// A connection whose client starts with the preface; `upgraded`: the request of an
    /// `Upgrade: h2c` that is stream 1 (its response comes as HTTP/2).
    pub fn new(upgraded: Option<(u64, Request)>) -> Self {
        let mut streams = BTreeMap::new();
        if let Some((ts_ns, request)) = upgraded {
            streams.insert(
                1,
                Stream { ts_ns, request: Some(request), request_done: true, response: None, hash: FNV_OFFSET },
            );
        }
        H2 {
            bufs: [Vec::new(), Vec::new()],
            preface: PREFACE.len(),
            decoders: [loona_hpack::Decoder::new(), loona_hpack::Decoder::new()],
            block: [None, None],
            streams,
            broken: None,
            streams_over_limit: 0,
            pushes: 0,
        }
    }

    /// Bytes of one direction; completed streams go to `out`.
    pub fn data(&mut self, side: Side, ts_ns: u64, mut bytes: &[u8], out: &mut Vec<Done>) {
        if self.broken.is_some() {
            return;
        }
        if side == Side::Client && self.preface > 0 {
            let n = self.preface.min(bytes.len());
            let at = PREFACE.len() - self.preface;
            if bytes[..n] != PREFACE[at..at + n] {
                self.broken = Some("the client preface is not HTTP/2's");
                return;
            }
            self.preface -= n;
            bytes = &bytes[n..];
        }
        let i = side as usize;
        self.bufs[i].extend_from_slice(bytes);
        let mut at = 0;
        while self.broken.is_none() {
            let b = &self.bufs[i][at..];
            if b.len() < 9 {
                break;
            }
            let len = (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2]);
            if b.len() < 9 + len {
                break;
            }
            let (kind, flags) = (b[3], b[4]);
            let stream = u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & 0x7fff_ffff;
            let payload = b[9..9 + len].to_vec();
            at += 9 + len;
            self.frame(side, ts_ns, kind, flags, stream, &payload, out);
        }
        self.bufs[i].drain(..at);
    }

    #[allow(clippy::too_many_arguments)]
    fn frame(&mut self, side: Side, ts_ns: u64, kind: u8, flags: u8, stream: u32, p: &[u8], out: &mut Vec<Done>) {
        let i = side as usize;
        // A header block in progress admits only its CONTINUATION frames.
        if self.block[i].is_some() && kind != CONTINUATION {
            self.broken = Some("a header block was interrupted");
            return;
        }
        match kind {
            DATA => {
                let Some(body) = unpad(flags, p) else {
                    self.broken = Some("a DATA frame's padding is malformed");
                    return;
                };
                if let Some(s) = self.streams.get_mut(&stream) {
                    match side {
                        Side::Client => {
                            if let Some(r) = &mut s.request {
                                let room = MAX_REQUEST_BODY.saturating_sub(r.body.len());
                                r.body.extend_from_slice(&body[..body.len().min(room)]);
                                r.body_truncated |= body.len() > room;
                            }
                        }
                        Side::Server => {
                            s.hash = fnv(s.hash, body);
                            if let Some(r) = &mut s.response {
                                r.body_len += body.len() as u64;
                                let room = RESPONSE_PREFIX.saturating_sub(r.body_prefix.len());
                                r.body_prefix.extend_from_slice(&body[..body.len().min(room)]);
                            }
                        }
                    }
                }
                if flags & END_STREAM != 0 {
                    self.end(side, stream, out);
                }
            }
            HEADERS | PUSH_PROMISE => {
                let Some(mut block) = unpad(flags, p) else {
                    self.broken = Some("a header frame's padding is malformed");
                    return;
                };
                if kind == HEADERS && flags & PRIORITY != 0 {
                    if block.len() < 5 {
                        self.broken = Some("a HEADERS frame's priority is cut short");
                        return;
                    }
                    block = &block[5..];
                }
                if kind == PUSH_PROMISE {
                    self.pushes += 1;
                    if block.len() < 4 {
                        self.broken = Some("a PUSH_PROMISE is cut short");
                        return;
                    }
                    block = &block[4..];
                }
                let pending = Block { stream, kind, end_stream: flags & END_STREAM != 0, bytes: block.to_vec() };
                if flags & END_HEADERS != 0 {
                    self.headers(side, ts_ns, pending, out);
                } else {
                    self.block[i] = Some(pending);
                }
            }
            CONTINUATION => {
                let Some(mut pending) = self.block[i].take() else {
                    self.broken = Some("a CONTINUATION without a header block");
                    return;
                };
                if pending.stream != stream || pending.bytes.len() + p.len() > MAX_BLOCK {
                    self.broken = Some("a header block continues on another stream or grows too large");
                    return;
                }
                pending.bytes.extend_from_slice(p);
                if flags & END_HEADERS != 0 {
                    self.headers(side, ts_ns, pending, out);
                } else {
                    self.block[i] = Some(pending);
                }
            }
            RST_STREAM => {
                if let Some(s) = self.streams.remove(&stream) {
                    if let (Some(request), true) = (s.request, s.request_done) {
                        out.push(Done { ts_ns: s.ts_ns, stream, request, response: None });
                    }
                }
            }
            SETTINGS if flags & ACK == 0 => {
                // HEADER_TABLE_SIZE bounds what the *other* side's encoder may use.
                for setting in p.chunks_exact(6) {
                    if u16::from_be_bytes([setting[0], setting[1]]) == 1 {
                        let size = u32::from_be_bytes([setting[2], setting[3], setting[4], setting[5]]) as usize;
                        self.decoders[1 - i].set_max_table_size(size.min(1 << 20));
                    }
                }
            }
            _ => {}
        }
    }

    fn headers(&mut self, side: Side, ts_ns: u64, b: Block, out: &mut Vec<Done>) {
        let Block { stream, kind, end_stream: end, bytes: block } = b;
        let i = side as usize;
        let mut fields: Vec<(String, Vec<u8>)> = Vec::new();
        let decoded = self.decoders[i].decode_with_cb(&block, |n, v| {
            fields.push((String::from_utf8_lossy(&n).into_owned(), v.into_owned()));
        });
        if decoded.is_err() {
            self.broken = Some("a header block does not decode (HPACK)");
            return;
        }
        if kind == PUSH_PROMISE {
            return;
        }
        let pseudo =
            |name: &str| fields.iter().find(|(n, _)| n == name).map(|(_, v)| String::from_utf8_lossy(v).into_owned());
        let regular = || fields.iter().filter(|(n, _)| !n.starts_with(':')).cloned().collect::<Vec<_>>();
        match side {
            Side::Client => {
                if let Some(s) = self.streams.get_mut(&stream) {
                    // Trailers of a request.
                    if end {
                        s.request_done = true;
                    }
                    return;
                }
                if self.streams.len() >= MAX_STREAMS {
                    self.streams_over_limit += 1;
                    return;
                }
                let mut headers = regular();
                if let Some(a) = pseudo(":authority") {
                    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
                        headers.insert(0, ("host".to_string(), a.into_bytes()));
                    }
                }
                let request = Request {
                    method: pseudo(":method").unwrap_or_else(|| "GET".into()),
                    target: pseudo(":path").unwrap_or_else(|| "/".into()),
                    minor: 1,
                    headers,
                    body: Vec::new(),
                    body_truncated: false,
                };
                self.streams.insert(
                    stream,
                    Stream { ts_ns, request: Some(request), request_done: end, response: None, hash: FNV_OFFSET },
                );
            }
            Side::Server => {
                let Some(s) = self.streams.get_mut(&stream) else { return };
                match pseudo(":status").and_then(|v| v.parse::<u16>().ok()) {
                    // Interim answers (100, 103) answer nothing yet.
                    Some(status) if (100..200).contains(&status) => {}
                    Some(status) if s.response.is_none() => {
                        s.response = Some(Response {
                            status,
                            headers: regular(),
                            body_len: 0,
                            body_hash: FNV_OFFSET,
                            body_prefix: Vec::new(),
                            ts_ns,
                        });
                    }
                    _ => {} // trailers
                }
                if end {
                    self.end(side, stream, out);
                }
            }
        }
    }

    fn end(&mut self, side: Side, stream: u32, out: &mut Vec<Done>) {
        match side {
            Side::Client => {
                if let Some(s) = self.streams.get_mut(&stream) {
                    s.request_done = true;
                }
            }
            Side::Server => {
                if let Some(s) = self.streams.remove(&stream) {
                    let Some(request) = s.request else { return };
                    let response = s.response.map(|mut r| {
                        r.body_hash = s.hash;
                        r
                    });
                    out.push(Done { ts_ns: s.ts_ns, stream, request, response });
                }
            }
        }
    }

    /// The connection is over, or reading it stopped: complete requests without a response
    /// are handed on; the number of requests never completed is returned.
    pub fn finish(&mut self, out: &mut Vec<Done>) -> u64 {
        let mut incomplete = 0;
        for (stream, s) in std::mem::take(&mut self.streams) {
            match (s.request, s.request_done) {
                (Some(request), true) => out.push(Done { ts_ns: s.ts_ns, stream, request, response: None }),
                _ => incomplete += 1,
            }
        }
        incomplete
    }
}

/// A frame's payload without its padding.
fn unpad(flags: u8, p: &[u8]) -> Option<&[u8]> {
    if flags & PADDED == 0 {
        return Some(p);
    }
    let pad = usize::from(*p.first()?);
    let end = p.len().checked_sub(pad)?;
    p.get(1..end)
}
