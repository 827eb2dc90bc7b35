//! TCP reassembly: segments in capture order → each connection's two byte streams, in order.
//!
//! Out-of-order segments wait (bounded) until the hole before them fills; retransmits and
//! overlaps are trimmed; a hole that never fills (a segment the capture missed) becomes a
//! counted [`Sink::gap`] so the layer above can resynchronise; flows first seen after their
//! handshake are taken up mid-stream and counted. Nothing is dropped without a count.
//! Sequence numbers wrap: offsets are 64-bit stream positions derived from the distance to
//! the next expected byte, so any window below 2 GiB is handled across the wrap.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

use super::decode::Segment;

/// Out-of-order bytes one direction may hold before the hole in front of them is declared
/// lost.
const MAX_PENDING: usize = 1 << 20;
/// Connections tracked at once; beyond, new connections are counted `flows_over_limit`.
const MAX_FLOWS: usize = 1 << 18;
/// A connection idle this long (capture time) is closed: its FIN or RST was not captured.
const IDLE_NS: u64 = 300 * 1_000_000_000;
/// How often (in segments) idle connections are looked for.
const SWEEP_EVERY: u64 = 1 << 14;

/// Which end sent the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The end that opened the connection (or, caught mid-stream, the one that looks like it).
    Client,
    /// The other end.
    Server,
}

/// What reassembly hands on.
pub trait Sink {
    /// A connection appears (`mid_stream`: its handshake was not captured).
    fn open(&mut self, flow: u64, client: SocketAddr, server: SocketAddr, mid_stream: bool);
    /// In-order bytes of one direction, with the capture time of the segment that completed them.
    fn data(&mut self, flow: u64, side: Side, ts_ns: u64, bytes: &[u8]);
    /// `len` bytes of one direction are missing from the capture.
    fn gap(&mut self, flow: u64, side: Side, len: u64);
    /// The connection is over (FIN both ways, RST, idle, or the end of the capture).
    fn close(&mut self, flow: u64, ts_ns: u64);
}

/// Reassembly counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct TcpStats {
    /// Segments seen.
    pub segments: u64,
    /// Connections seen.
    pub flows: u64,
    /// Connections whose handshake was not captured.
    pub mid_stream: u64,
    /// Segments that arrived ahead of a hole.
    pub out_of_order: u64,
    /// Segments whose bytes had all been seen already.
    pub retransmitted: u64,
    /// Segments that partly repeated bytes already seen (trimmed).
    pub overlapping: u64,
    /// Holes never filled.
    pub gaps: u64,
    /// Bytes in those holes.
    pub missing_bytes: u64,
    /// Connections reset.
    pub resets: u64,
    /// Connections closed for being idle.
    pub idle_closed: u64,
    /// Connections not tracked because [`MAX_FLOWS`] were open.
    pub flows_over_limit: u64,
    /// Segments of untracked connections.
    pub segments_untracked: u64,
}

#[derive(Debug, Default)]
struct Half {
    /// Sequence number of stream offset 0 (set by the SYN, or the first segment mid-stream).
    base: Option<u32>,
    /// Next expected stream offset.
    next: u64,
    /// Out-of-order segments by stream offset.
    pending: BTreeMap<u64, (u64, Vec<u8>)>,
    pending_bytes: usize,
    /// Stream offset of the FIN.
    fin: Option<u64>,
}

impl Half {
    /// The stream offset of `seq`, relative to the next expected byte (negative: before it).
    fn offset(&self, base: u32, seq: u32) -> i64 {
        let next_seq = base.wrapping_add(self.next as u32);
        self.next as i64 + i64::from(seq.wrapping_sub(next_seq) as i32)
    }

    fn done(&self) -> bool {
        self.fin.is_some_and(|f| self.next >= f) && self.pending.is_empty()
    }
}

#[derive(Debug)]
struct Flow {
    id: u64,
    client: SocketAddr,
    halves: [Half; 2],
    last_ns: u64,
}

/// The reassembler.
#[derive(Debug, Default)]
pub struct Reassembler {
    /// Keyed by (lower address, higher address).
    flows: HashMap<(SocketAddr, SocketAddr), Flow>,
    next_id: u64,
    /// Counts so far.
    pub stats: TcpStats,
    last_ns: u64,
}

fn key(a: SocketAddr, b: SocketAddr) -> (SocketAddr, SocketAddr) {
    if a <= b { (a, b) } else { (b, a) }
}

/// Whether `p` starts like an HTTP request (or an h2 preface): the client speaks first.
fn looks_like_request(p: &[u8]) -> bool {
    const METHODS: &[&[u8]] =
        &[b"GET ", b"POST ", b"PUT ", b"HEAD ", b"DELETE ", b"PATCH ", b"OPTIONS ", b"CONNECT ", b"TRACE ", b"PRI "];
    METHODS.iter().any(|m| p.starts_with(m)) || p.first() == Some(&0x16)
}

impl Reassembler {
    /// A new reassembler.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one segment captured at `ts_ns`.
    pub fn segment(&mut self, s: &Segment<'_>, ts_ns: u64, sink: &mut impl Sink) {
        self.stats.segments += 1;
        self.last_ns = self.last_ns.max(ts_ns);
        if self.stats.segments % SWEEP_EVERY == 0 {
            self.sweep(sink);
        }
        let k = key(s.src, s.dst);
        if !self.flows.contains_key(&k) {
            // A bare ACK, FIN or RST of a connection not (or no longer) tracked opens nothing.
            if !s.syn && s.payload.is_empty() {
                return;
            }
            if self.flows.len() >= MAX_FLOWS {
                self.stats.flows_over_limit += 1;
                return;
            }
            let client = match (s.syn, s.ack) {
                (true, false) => s.src,
                (true, true) => s.dst,
                _ if looks_like_request(s.payload) => s.src,
                _ if s.payload.starts_with(b"HTTP/") => s.dst,
                // Caught mid-stream with nothing telling: the lower port is the server's.
                _ => {
                    if s.dst.port() <= s.src.port() {
                        s.src
                    } else {
                        s.dst
                    }
                }
            };
            let server = if client == s.src { s.dst } else { s.src };
            let id = self.next_id;
            self.next_id += 1;
            self.stats.flows += 1;
            let mid_stream = !s.syn;
            if mid_stream {
                self.stats.mid_stream += 1;
            }
            sink.open(id, client, server, mid_stream);
            self.flows.insert(k, Flow { id, client, halves: [Half::default(), Half::default()], last_ns: ts_ns });
        }
        let Some(flow) = self.flows.get_mut(&k) else { return };
        flow.last_ns = flow.last_ns.max(ts_ns);
        let (id, side) = (flow.id, if s.src == flow.client { Side::Client } else { Side::Server });
        if s.rst {
            self.stats.resets += 1;
            self.close(k, ts_ns, sink);
            return;
        }
        let half = &mut flow.halves[side as usize];
        if s.syn {
            match half.base {
                None => half.base = Some(s.seq.wrapping_add(1)),
                // A retransmitted SYN.
                Some(b) if b == s.seq.wrapping_add(1) => {}
                // A new connection on the same addresses: the old one is over.
                Some(_) => {
                    self.close(k, ts_ns, sink);
                    self.segment(s, ts_ns, sink);
                    self.stats.segments -= 1;
                    return;
                }
            }
        }
        let base = *half.base.get_or_insert(s.seq);
        // Data starts after the SYN's sequence number.
        let seq = if s.syn { s.seq.wrapping_add(1) } else { s.seq };
        let off = half.offset(base, seq);
        let len = s.payload.len() as i64;
        if s.fin {
            let at = u64::try_from(off + len).unwrap_or(0);
            half.fin = Some(half.fin.map_or(at, |f| f.min(at)));
        }
        if len > 0 {
            let stats = &mut self.stats;
            let end = off + len;
            if end <= half.next as i64 {
                stats.retransmitted += 1;
            } else if off <= half.next as i64 {
                let skip = (half.next as i64 - off) as usize;
                if skip > 0 {
                    stats.overlapping += 1;
                }
                sink.data(id, side, ts_ns, &s.payload[skip..]);
                half.next = end as u64;
                drain(half, id, side, ts_ns, stats, sink);
            } else {
                stats.out_of_order += 1;
                let off = off as u64;
                let keep = match half.pending.get(&off) {
                    Some((_, have)) if have.len() >= s.payload.len() => {
                        stats.retransmitted += 1;
                        false
                    }
                    _ => true,
                };
                if keep {
                    if let Some((_, old)) = half.pending.insert(off, (ts_ns, s.payload.to_vec())) {
                        half.pending_bytes -= old.len();
                    }
                    half.pending_bytes += s.payload.len();
                }
                // Too much waiting on one hole: the hole was not captured.
                while half.pending_bytes > MAX_PENDING {
                    skip_hole(half, id, side, stats, sink);
                    drain(half, id, side, ts_ns, stats, sink);
                }
            }
        }
        if flow.halves.iter().all(Half::done) {
            self.close(k, ts_ns, sink);
        }
    }

    /// Ends every connection (the end of the capture): what waits behind a hole is handed on
    /// after a counted gap.
    pub fn finish(&mut self, sink: &mut impl Sink) {
        let keys: Vec<_> = self.flows.keys().copied().collect();
        for k in keys {
            self.close(k, self.last_ns, sink);
        }
    }

    /// Closes connections idle for [`IDLE_NS`].
    fn sweep(&mut self, sink: &mut impl Sink) {
        let now = self.last_ns;
        let idle: Vec<_> =
            self.flows.iter().filter(|(_, f)| now.saturating_sub(f.last_ns) > IDLE_NS).map(|(k, _)| *k).collect();
        for k in idle {
            self.stats.idle_closed += 1;
            self.close(k, now, sink);
        }
    }

    fn close(&mut self, k: (SocketAddr, SocketAddr), ts_ns: u64, sink: &mut impl Sink) {
        let Some(mut flow) = self.flows.remove(&k) else { return };
        for (i, side) in [(0, Side::Client), (1, Side::Server)] {
            let half = &mut flow.halves[i];
            while !half.pending.is_empty() {
                skip_hole(half, flow.id, side, &mut self.stats, sink);
                drain(half, flow.id, side, ts_ns, &mut self.stats, sink);
            }
            // Bytes before a captured FIN that never arrived.
            if let Some(f) = half.fin {
                if f > half.next {
                    self.stats.gaps += 1;
                    self.stats.missing_bytes += f - half.next;
                    sink.gap(flow.id, side, f - half.next);
                    half.next = f;
                }
            }
        }
        sink.close(flow.id, ts_ns);
    }
}

/// Declares the hole before the first waiting segment lost.
fn skip_hole(half: &mut Half, id: u64, side: Side, stats: &mut TcpStats, sink: &mut impl Sink) {
    let Some((&first, _)) = half.pending.first_key_value() else { return };
    if first > half.next {
        stats.gaps += 1;
        stats.missing_bytes += first - half.next;
        sink.gap(id, side, first - half.next);
        half.next = first;
    }
}

/// Hands on waiting segments that are now in order.
fn drain(half: &mut Half, id: u64, side: Side, ts_ns: u64, stats: &mut TcpStats, sink: &mut impl Sink) {
    while let Some(entry) = half.pending.first_entry() {
        let off = *entry.key();
        if off > half.next {
            break;
        }
        let (seg_ts, bytes) = entry.remove();
        half.pending_bytes -= bytes.len();
        let end = off + bytes.len() as u64;
        if end <= half.next {
            stats.retransmitted += 1;
            continue;
        }
        let skip = (half.next - off) as usize;
        if skip > 0 {
            stats.overlapping += 1;
        }
        sink.data(id, side, seg_ts.max(ts_ns), &bytes[skip..]);
        half.next = end;
    }
}
