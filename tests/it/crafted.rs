//! The crafted anomaly captures committed under `tests/captures/crafted/`: TCP the way real
//! captures break it (segments out of order, retransmitted, lost; frames cut at the snap
//! length; a file cut mid-record). Each is made here by `capture::craft` — the test fails
//! when a committed file differs from what it makes (`GAUNTLET_WRITE_CRAFTED=1` rewrites
//! them) — and read back: every anomaly counted, never a silent drop, never a panic.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use gauntlet::capture::craft::{Conn, Writer};
use gauntlet::capture::decode::link;
use gauntlet::capture::{Reader, Stats};

const T0: u64 = 1_700_000_000_000_000;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/captures/crafted")
}

fn conn(n: u16) -> Conn {
    let client: SocketAddr = format!("10.7.0.2:{}", 41000 + n).parse().unwrap();
    Conn::new(client, "10.7.0.1:80".parse().unwrap(), 1000 + u32::from(n), 5000 + u32::from(n))
}

const REQ: &[u8] = b"GET /orders?page=2 HTTP/1.1\r\nHost: shop.example\r\n\r\n";
const RESP: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nhello world!";

/// A request in two segments, the second captured first; then its answer.
fn out_of_order() -> Vec<u8> {
    let mut w = Writer::pcap(link::ETHERNET);
    let mut c = conn(1);
    c.handshake(&mut w, T0);
    let (a, b) = REQ.split_at(20);
    let (s1, s2) = (c.segment(w.linktype, true, a), c.segment(w.linktype, true, b));
    w.frame(T0 + 100, &s2);
    w.frame(T0 + 200, &s1);
    c.send(&mut w, T0 + 1_000, false, RESP);
    c.close(&mut w, T0 + 2_000);
    w.into_bytes()
}

/// A request captured twice (a retransmit), and an answer whose second half is captured
/// again overlapping its first.
fn retransmitted() -> Vec<u8> {
    let mut w = Writer::pcap(link::ETHERNET);
    let mut c = conn(2);
    c.handshake(&mut w, T0);
    let s = c.segment(w.linktype, true, REQ);
    w.frame(T0 + 100, &s);
    w.frame(T0 + 300_000, &s);
    c.send(&mut w, T0 + 301_000, false, RESP);
    c.close(&mut w, T0 + 302_000);
    w.into_bytes()
}

/// Two connections: the first loses a segment of its answer's body (never captured), the
/// second's answer frame is cut at a 60-byte snap length.
fn lost_and_cut() -> Vec<u8> {
    let mut w = Writer::pcap(link::ETHERNET);
    let mut c = conn(3);
    c.handshake(&mut w, T0);
    c.send(&mut w, T0 + 100, true, REQ);
    let (a, rest) = RESP.split_at(30);
    let (b, d) = rest.split_at(10);
    let lt = w.linktype;
    let (s1, _lost, s3) = (c.segment(lt, false, a), c.segment(lt, false, b), c.segment(lt, false, d));
    w.frame(T0 + 1_000, &s1);
    w.frame(T0 + 1_100, &s3);
    c.close(&mut w, T0 + 2_000);
    let mut k = conn(4);
    k.handshake(&mut w, T0 + 3_000);
    k.send(&mut w, T0 + 3_100, true, REQ);
    let cut = k.segment(lt, false, RESP);
    w.frame_cut(T0 + 4_000, &cut, 60);
    k.close(&mut w, T0 + 5_000);
    w.into_bytes()
}

/// A good capture whose file ends in the middle of its last record (a capture stopped hard).
fn cut_file() -> Vec<u8> {
    let mut b = out_of_order();
    b.truncate(b.len() - 7);
    b
}

/// Every crafted capture, by file name.
fn crafted() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("out-of-order.pcap", out_of_order()),
        ("retransmitted.pcap", retransmitted()),
        ("lost-and-cut.pcap", lost_and_cut()),
        ("cut-file.pcap", cut_file()),
    ]
}

#[test]
fn the_committed_crafted_captures_are_what_the_crafting_makes() {
    let write = std::env::var_os("GAUNTLET_WRITE_CRAFTED").is_some();
    for (name, bytes) in crafted() {
        let p = dir().join(name);
        if write {
            std::fs::write(&p, &bytes).unwrap();
        }
        let committed =
            std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e} (GAUNTLET_WRITE_CRAFTED=1 writes it)", p.display()));
        assert!(
            committed == bytes,
            "{} differs from what the test crafts (GAUNTLET_WRITE_CRAFTED=1 rewrites it)",
            p.display()
        );
    }
}

/// One exchange read: its path, recorded status and recorded body length.
type Read = (String, Option<u16>, Option<u64>);

/// Reads a committed capture to its end: the exchanges and the counts, or the error.
fn read(name: &str) -> (Vec<Read>, Stats, Option<String>) {
    let mut r = Reader::open(&dir().join(name)).unwrap();
    let mut xs = Vec::new();
    let err = loop {
        match r.next_exchange() {
            Ok(Some(x)) => xs.push((
                x.request.path().to_string(),
                x.response.as_ref().map(|a| a.status),
                x.response.as_ref().map(|a| a.body_len),
            )),
            Ok(None) => break None,
            Err(e) => break Some(e.to_string()),
        }
    };
    (xs, r.stats(), err)
}

#[test]
fn out_of_order_segments_are_put_back_in_order_and_counted() {
    let (xs, st, err) = read("out-of-order.pcap");
    assert_eq!(err, None);
    assert_eq!(xs, [("/orders?page=2".to_string(), Some(200), Some(12))]);
    assert_eq!((st.tcp.out_of_order, st.tcp.gaps, st.tcp.missing_bytes), (1, 0, 0), "{:?}", st.tcp);
}

#[test]
fn a_retransmitted_segment_is_read_once_and_counted() {
    let (xs, st, err) = read("retransmitted.pcap");
    assert_eq!(err, None);
    assert_eq!(xs, [("/orders?page=2".to_string(), Some(200), Some(12))], "one request, not two");
    assert_eq!(st.tcp.retransmitted, 1, "{:?}", st.tcp);
}

#[test]
fn a_lost_segment_and_a_cut_frame_are_counted_not_read_as_whole() {
    let (xs, st, err) = read("lost-and-cut.pcap");
    assert_eq!(err, None);
    assert!(st.tcp.gaps >= 1 && st.tcp.missing_bytes >= 10, "the lost segment is counted: {:?}", st.tcp);
    assert_eq!(st.frames.truncated, 1, "the frame cut at its snap length: {:?}", st.frames);
    assert_eq!(xs.len(), 2, "both requests are read: {xs:?}");
    assert!(xs.iter().all(|(p, ..)| p == "/orders?page=2"), "{xs:?}");
    // Neither answer is taken as whole: an answer with a hole or cut short is not a recorded
    // 12-byte body.
    assert!(!xs.iter().any(|(_, s, len)| *s == Some(200) && *len == Some(12)), "{xs:?}");
}

#[test]
fn a_file_cut_mid_record_is_an_error_with_its_byte_offset_after_what_was_read() {
    let (xs, _, err) = read("cut-file.pcap");
    let err = err.expect("a cut file is an error, not a silent end");
    assert!(err.contains("byte"), "names the byte offset: {err}");
    assert!(xs.len() <= 1, "{xs:?}");
}
