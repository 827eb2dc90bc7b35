//! Crafted captures for tests and fixtures: pcap and pcapng writers, and scripted TCP
//! connections over Ethernet/IPv4, IPv6, raw IP or Linux cooked framing whose segments can be
//! reordered, repeated, overlapped, cut or left out — the cases real captures have and
//! recorded ones rarely show on demand.

use std::net::{IpAddr, SocketAddr};

use etherparse::PacketBuilder;

use super::decode::link;

/// A capture being written (`pcap` with µs timestamps, or `pcapng`).
#[derive(Debug, Clone)]
pub struct Writer {
    out: Vec<u8>,
    ng: bool,
    /// The link type of every frame.
    pub linktype: i32,
}

impl Writer {
    /// A libpcap file.
    pub fn pcap(linktype: i32) -> Self {
        let mut out = Vec::new();
        out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        out.extend_from_slice(&2u16.to_le_bytes());
        out.extend_from_slice(&4u16.to_le_bytes());
        out.extend_from_slice(&0i32.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&65535u32.to_le_bytes());
        out.extend_from_slice(&(linktype as u32).to_le_bytes());
        Writer { out, ng: false, linktype }
    }

    /// A pcapng file with one interface (µs timestamps).
    pub fn pcapng(linktype: i32) -> Self {
        let mut out = Vec::new();
        // Section header block: type, length, byte-order magic, version 1.0, section length -1.
        let shb_len = 28u32;
        out.extend_from_slice(&0x0a0d_0d0au32.to_le_bytes());
        out.extend_from_slice(&shb_len.to_le_bytes());
        out.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes());
        out.extend_from_slice(&1u16.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&(-1i64).to_le_bytes());
        out.extend_from_slice(&shb_len.to_le_bytes());
        // Interface description block: link type, reserved, snap length, no options.
        let idb_len = 20u32;
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&idb_len.to_le_bytes());
        out.extend_from_slice(&(linktype as u16).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&idb_len.to_le_bytes());
        Writer { out, ng: true, linktype }
    }

    /// Writes one frame captured at `ts_us`, keeping at most `snap` bytes of it.
    pub fn frame_cut(&mut self, ts_us: u64, data: &[u8], snap: usize) {
        let cap = &data[..data.len().min(snap)];
        if self.ng {
            let pad = (4 - cap.len() % 4) % 4;
            let len = (32 + cap.len() + pad) as u32;
            self.out.extend_from_slice(&6u32.to_le_bytes());
            self.out.extend_from_slice(&len.to_le_bytes());
            self.out.extend_from_slice(&0u32.to_le_bytes());
            self.out.extend_from_slice(&((ts_us >> 32) as u32).to_le_bytes());
            self.out.extend_from_slice(&(ts_us as u32).to_le_bytes());
            self.out.extend_from_slice(&(cap.len() as u32).to_le_bytes());
            self.out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            self.out.extend_from_slice(cap);
            self.out.extend(std::iter::repeat_n(0u8, pad));
            self.out.extend_from_slice(&len.to_le_bytes());
        } else {
            self.out.extend_from_slice(&((ts_us / 1_000_000) as u32).to_le_bytes());
            self.out.extend_from_slice(&((ts_us % 1_000_000) as u32).to_le_bytes());
            self.out.extend_from_slice(&(cap.len() as u32).to_le_bytes());
            self.out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            self.out.extend_from_slice(cap);
        }
    }

    /// Writes one whole frame.
    pub fn frame(&mut self, ts_us: u64, data: &[u8]) {
        self.frame_cut(ts_us, data, usize::MAX);
    }

    /// The file's bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.out
    }
}

/// TCP flags of a crafted segment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags {
    /// SYN.
    pub syn: bool,
    /// ACK (with the peer's next sequence number).
    pub ack: bool,
    /// FIN.
    pub fin: bool,
    /// RST.
    pub rst: bool,
}

/// One frame carrying a TCP segment, framed for `linktype`.
pub fn tcp_frame(
    linktype: i32,
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    ack: u32,
    f: Flags,
    payload: &[u8],
) -> Vec<u8> {
    let (mut frame, ip_only) = (Vec::new(), matches!(linktype, link::RAW | link::IPV4 | link::IPV6));
    let step = match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) if ip_only => PacketBuilder::ipv4(s.octets(), d.octets(), 64),
        (IpAddr::V6(s), IpAddr::V6(d)) if ip_only => PacketBuilder::ipv6(s.octets(), d.octets(), 64),
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]).ipv4(s.octets(), d.octets(), 64)
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]).ipv6(s.octets(), d.octets(), 64)
        }
        _ => return frame,
    };
    let mut step = step.tcp(src.port(), dst.port(), seq, 65535);
    if f.syn {
        step = step.syn();
    }
    if f.ack {
        step = step.ack(ack);
    }
    if f.fin {
        step = step.fin();
    }
    if f.rst {
        step = step.rst();
    }
    if step.write_to_vec(&mut frame, payload).is_err() {
        frame.clear();
    }
    match linktype {
        link::LINUX_SLL | link::LINUX_SLL2 => {
            // Replace the Ethernet header by a cooked one carrying the same EtherType.
            let ether_type = [frame[12], frame[13]];
            let ip = frame[14..].to_vec();
            let mut out = Vec::with_capacity(ip.len() + 20);
            if linktype == link::LINUX_SLL {
                out.extend_from_slice(&[0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0]);
                out.extend_from_slice(&ether_type);
            } else {
                out.extend_from_slice(&ether_type);
                out.extend_from_slice(&[0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 6, 2, 0, 0, 0, 0, 1, 0]);
            }
            out.extend_from_slice(&ip);
            out
        }
        link::NULL => {
            let ip = frame[14..].to_vec();
            let family: u32 = if src.is_ipv4() { 2 } else { 30 };
            let mut out = family.to_ne_bytes().to_vec();
            out.extend_from_slice(&ip);
            out
        }
        _ => frame,
    }
}

/// A scripted TCP connection: sequence numbers tracked per direction, every segment written
/// at the writer's clock (µs, advanced by the caller).
#[derive(Debug, Clone)]
pub struct Conn {
    /// Client end.
    pub client: SocketAddr,
    /// Server end.
    pub server: SocketAddr,
    /// Next client sequence number.
    pub cseq: u32,
    /// Next server sequence number.
    pub sseq: u32,
}

impl Conn {
    /// A connection with initial sequence numbers `isn_c` and `isn_s` (not yet opened).
    pub fn new(client: SocketAddr, server: SocketAddr, isn_c: u32, isn_s: u32) -> Self {
        Conn { client, server, cseq: isn_c, sseq: isn_s }
    }

    /// SYN, SYN-ACK, ACK.
    pub fn handshake(&mut self, w: &mut Writer, ts_us: u64) {
        let lt = w.linktype;
        w.frame(
            ts_us,
            &tcp_frame(lt, self.client, self.server, self.cseq, 0, Flags { syn: true, ..Flags::default() }, &[]),
        );
        self.cseq = self.cseq.wrapping_add(1);
        let synack = Flags { syn: true, ack: true, ..Flags::default() };
        w.frame(ts_us, &tcp_frame(lt, self.server, self.client, self.sseq, self.cseq, synack, &[]));
        self.sseq = self.sseq.wrapping_add(1);
        let ack = Flags { ack: true, ..Flags::default() };
        w.frame(ts_us, &tcp_frame(lt, self.client, self.server, self.cseq, self.sseq, ack, &[]));
    }

    /// The frame of `bytes` from the client (`from_client`) or the server at the current
    /// sequence number, advancing it; written by the caller (so it can reorder or drop it).
    pub fn segment(&mut self, lt: i32, from_client: bool, bytes: &[u8]) -> Vec<u8> {
        let ack = Flags { ack: true, ..Flags::default() };
        if from_client {
            let f = tcp_frame(lt, self.client, self.server, self.cseq, self.sseq, ack, bytes);
            self.cseq = self.cseq.wrapping_add(bytes.len() as u32);
            f
        } else {
            let f = tcp_frame(lt, self.server, self.client, self.sseq, self.cseq, ack, bytes);
            self.sseq = self.sseq.wrapping_add(bytes.len() as u32);
            f
        }
    }

    /// Writes `bytes` as one segment.
    pub fn send(&mut self, w: &mut Writer, ts_us: u64, from_client: bool, bytes: &[u8]) {
        let f = self.segment(w.linktype, from_client, bytes);
        w.frame(ts_us, &f);
    }

    /// FIN both ways.
    pub fn close(&mut self, w: &mut Writer, ts_us: u64) {
        let lt = w.linktype;
        let fin = Flags { fin: true, ack: true, ..Flags::default() };
        w.frame(ts_us, &tcp_frame(lt, self.client, self.server, self.cseq, self.sseq, fin, &[]));
        self.cseq = self.cseq.wrapping_add(1);
        w.frame(ts_us, &tcp_frame(lt, self.server, self.client, self.sseq, self.cseq, fin, &[]));
        self.sseq = self.sseq.wrapping_add(1);
    }
}
