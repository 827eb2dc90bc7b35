//! Link-layer frames → TCP segments (`etherparse`): Ethernet (with VLAN tags), Linux cooked
//! capture v1 and v2, raw IP, BSD loopback (`NULL`/`LOOP`), IPv4 and IPv6. Anything else is a
//! [`Skip`] with its reason, counted by the caller — never silently dropped.

use std::net::{IpAddr, SocketAddr};

use etherparse::{EtherType, NetSlice, SlicedPacket, TransportSlice};

/// Link types read (tcpdump.org numbering).
pub mod link {
    /// BSD loopback, host byte order family.
    pub const NULL: i32 = 0;
    /// Ethernet.
    pub const ETHERNET: i32 = 1;
    /// Raw IP (OpenBSD's number).
    pub const RAW_OPENBSD: i32 = 12;
    /// Raw IP (the historical number on some systems).
    pub const RAW_14: i32 = 14;
    /// Raw IP.
    pub const RAW: i32 = 101;
    /// OpenBSD loopback, network byte order family.
    pub const LOOP: i32 = 108;
    /// Linux cooked capture (`tcpdump -i any`).
    pub const LINUX_SLL: i32 = 113;
    /// Raw IPv4.
    pub const IPV4: i32 = 228;
    /// Raw IPv6.
    pub const IPV6: i32 = 229;
    /// Linux cooked capture v2.
    pub const LINUX_SLL2: i32 = 276;
}

/// One TCP segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment<'a> {
    /// Sender.
    pub src: SocketAddr,
    /// Receiver.
    pub dst: SocketAddr,
    /// Sequence number.
    pub seq: u32,
    /// SYN.
    pub syn: bool,
    /// ACK.
    pub ack: bool,
    /// FIN.
    pub fin: bool,
    /// RST.
    pub rst: bool,
    /// Payload.
    pub payload: &'a [u8],
}

/// Why a frame carries no usable TCP segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// A link type this reader does not know.
    Linktype(i32),
    /// Not IP, or IP but not TCP (ARP, UDP, ICMP, …).
    NotTcp,
    /// A fragment of a fragmented IP packet (not reassembled).
    Fragment,
    /// The bytes do not decode.
    Malformed(String),
}

/// Decodes a frame of `linktype`.
pub fn segment(linktype: i32, data: &[u8]) -> Result<Segment<'_>, Skip> {
    let sliced = match linktype {
        link::ETHERNET => SlicedPacket::from_ethernet(data),
        link::LINUX_SLL => SlicedPacket::from_linux_sll(data),
        link::LINUX_SLL2 => {
            // 20-byte header: protocol type (EtherType) first.
            if data.len() < 20 {
                return Err(Skip::Malformed("a Linux cooked v2 header is cut short".into()));
            }
            SlicedPacket::from_ether_type(EtherType(u16::from_be_bytes([data[0], data[1]])), &data[20..])
        }
        link::RAW | link::RAW_OPENBSD | link::RAW_14 | link::IPV4 | link::IPV6 => SlicedPacket::from_ip(data),
        link::NULL | link::LOOP => {
            if data.len() < 4 {
                return Err(Skip::Malformed("a loopback header is cut short".into()));
            }
            let b = [data[0], data[1], data[2], data[3]];
            let family = if linktype == link::LOOP { u32::from_be_bytes(b) } else { u32::from_ne_bytes(b) };
            // AF_INET is 2 everywhere; AF_INET6 is 24, 28 or 30 depending on the BSD. A
            // capture written on a host of the other byte order shows them swapped.
            let family = if family > 0xffff { family.swap_bytes() } else { family };
            match family {
                2 | 24 | 28 | 30 => SlicedPacket::from_ip(&data[4..]),
                _ => return Err(Skip::NotTcp),
            }
        }
        other => return Err(Skip::Linktype(other)),
    }
    .map_err(|e| Skip::Malformed(e.to_string()))?;
    let (src, dst) = match &sliced.net {
        Some(NetSlice::Ipv4(ip)) => {
            if ip.is_payload_fragmented() {
                return Err(Skip::Fragment);
            }
            let h = ip.header();
            (IpAddr::V4(h.source_addr()), IpAddr::V4(h.destination_addr()))
        }
        Some(NetSlice::Ipv6(ip)) => {
            if ip.is_payload_fragmented() {
                return Err(Skip::Fragment);
            }
            let h = ip.header();
            (IpAddr::V6(h.source_addr()), IpAddr::V6(h.destination_addr()))
        }
        _ => return Err(Skip::NotTcp),
    };
    let Some(TransportSlice::Tcp(tcp)) = &sliced.transport else { return Err(Skip::NotTcp) };
    Ok(Segment {
        src: SocketAddr::new(src, tcp.source_port()),
        dst: SocketAddr::new(dst, tcp.destination_port()),
        seq: tcp.sequence_number(),
        syn: tcp.syn(),
        ack: tcp.ack(),
        fin: tcp.fin(),
        rst: tcp.rst(),
        payload: tcp.payload(),
    })
}
