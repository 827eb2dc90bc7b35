//! HTTPS captures: TLS connections decrypted by `tshark` (Debian package `tshark`) with a key
//! log (`SSLKEYLOGFILE`) or the decryption secrets a pcapng embeds, then read like clear
//! ones. tshark lists the connections that start a TLS handshake, then follows each one's
//! decrypted bytes (`-z follow,tls,yaml`, timestamps kept) in batches; the bytes go through
//! the same HTTP reader as clear traffic. Streamed: tshark's output is read line by line on a
//! thread of its own (stopped, with tshark, when the reader goes away) and its exchanges handed
//! on in time order as soon as no later-starting connection can precede them: memory holds the
//! exchanges of connections open across a batch boundary and 8 bytes per decrypted frame,
//! never the capture's bytes.
//! Without tshark, the error says how to get it.

use std::collections::{BinaryHeap, HashMap};
use std::io::{BufRead as _, BufReader, Read as _};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;

use base64::Engine as _;

use super::http1::Http1;
use super::tcp::{Side, Sink};
use super::{Error, Piece, Waiting};
use std::cmp::Reverse;

/// Connections followed per tshark run (each run reads the whole capture).
const BATCH: usize = 200;
/// Decrypted connections read at most (each is followed by tshark; beyond, they are counted).
pub const MAX_CONNECTIONS: usize = 20_000;
/// Packets of a followed connection held until it is known which connection it is.
const UNPLACED_MAX: usize = 1024;

/// Whether `tshark` can be run.
pub fn available() -> bool {
    Command::new("tshark").arg("--version").output().is_ok_and(|o| o.status.success())
}

/// What to do when tshark is missing.
pub const MISSING: &str =
    "decrypting TLS needs tshark (the Debian package `tshark`: apt-get install tshark), which is not installed";

/// Runs tshark with `args`, handing each line of its output to `each` as it comes (`each`
/// returns false to stop it early: tshark is killed). Its error output is kept (bounded) for
/// the message when it fails.
fn tshark(args: &[String], path: &Path, mut each: impl FnMut(&str) -> bool) -> Result<(), Error> {
    let fail = |msg: String| Error { path: path.to_path_buf(), offset: None, msg };
    let mut child = Command::new("tshark")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("{MISSING} ({e})")))?;
    let mut stderr = child.stderr.take().expect("piped");
    let errors = std::thread::spawn(move || {
        let mut kept = Vec::new();
        let _ = (&mut stderr).take(64 << 10).read_to_end(&mut kept);
        // Whatever else it says is read and dropped, so tshark never blocks on it.
        let _ = std::io::copy(&mut stderr, &mut std::io::sink());
        String::from_utf8_lossy(&kept).into_owned()
    });
    let mut stdout = BufReader::with_capacity(64 << 10, child.stdout.take().expect("piped"));
    let mut line = Vec::new();
    let mut stopped = false;
    loop {
        line.clear();
        match stdout.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {
                let text = String::from_utf8_lossy(&line);
                if !each(text.trim_end_matches(['\n', '\r'])) {
                    stopped = true;
                    let _ = child.kill();
                    break;
                }
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(format!("reading tshark's output: {e}")));
            }
        }
    }
    drop(stdout);
    let status = child.wait().map_err(|e| fail(format!("tshark: {e}")))?;
    let err = errors.join().unwrap_or_default();
    if !status.success() && !stopped {
        let line = err.lines().find(|l| !l.contains("Running as user")).unwrap_or("").trim().to_string();
        return Err(fail(format!("tshark could not read it: {}", crate::input::printable(&line))));
    }
    Ok(())
}

/// A TLS connection: tshark's stream number, client, server, when its handshake started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Conn {
    stream: u64,
    client: SocketAddr,
    server: SocketAddr,
    start_ns: u64,
}

/// tshark's `seconds.fraction` as nanoseconds.
fn ns(ts: &str) -> Option<u64> {
    let (s, f) = ts.trim().split_once('.').unwrap_or((ts.trim(), ""));
    let frac: String = f.chars().chain(std::iter::repeat('0')).take(9).collect();
    s.parse::<u64>().ok()?.checked_mul(1_000_000_000)?.checked_add(frac.parse::<u64>().ok()?)
}

/// Starts reading the decrypted HTTP exchanges of every TLS connection in `capture`
/// (`keylog`: the key log; `None`: the pcapng's own secrets) on a thread that sends them to
/// `to` in time order, then [`Piece::Decrypted`] with the counts. The connections are listed
/// here, so a missing tshark or an unreadable file is an error at once.
pub(super) fn start(
    capture: &Path,
    keylog: Option<&Path>,
    to: SyncSender<Piece>,
    cancel: Arc<AtomicBool>,
) -> Result<(), Error> {
    let mut base: Vec<String> = vec!["-n".into(), "-r".into(), capture.to_string_lossy().into_owned()];
    if let Some(k) = keylog {
        base.extend(["-o".into(), format!("tls.keylog_file:{}", k.display())]);
    }
    // tshark picks a connection's protocol by port, the lower first: a client port that is
    // some protocol's registered port hides the TLS in it. gauntlet's own reading knows which
    // connections start a TLS handshake, and so their servers' ports: they are read as TLS.
    let (ports, seen) = tls_ports(capture)?;
    for p in ports {
        base.extend(["-d".into(), format!("tcp.port=={p},tls")]);
    }
    let mut conns = list(&base, capture)?;
    conns.2 = seen;
    let path = capture.to_path_buf();
    std::thread::Builder::new()
        .name("gauntlet-tshark".into())
        .spawn(move || {
            let piece = match follow(&base, &path, conns, &to, &cancel) {
                Ok(Some(d)) => Piece::Decrypted(d),
                Ok(None) => return,
                Err(e) => Piece::Failed(e),
            };
            let _ = to.send(piece);
        })
        .map(drop)
        .map_err(|e| Error { path: capture.to_path_buf(), offset: None, msg: format!("cannot start reading it: {e}") })
}

/// Every connection that starts a handshake (its ClientHello), in the order they start, and
/// how many there were beyond [`MAX_CONNECTIONS`].
fn list(base: &[String], capture: &Path) -> Result<(Vec<Conn>, u64, u64), Error> {
    let mut args = base.to_vec();
    args.extend(
        [
            "-Y",
            "tls.handshake.type == 1",
            "-T",
            "fields",
            "-e",
            "tcp.stream",
            "-e",
            "ip.src",
            "-e",
            "ipv6.src",
            "-e",
            "tcp.srcport",
            "-e",
            "ip.dst",
            "-e",
            "ipv6.dst",
            "-e",
            "tcp.dstport",
            "-e",
            "frame.time_epoch",
        ]
        .map(String::from),
    );
    let mut conns: Vec<Conn> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut over = 0u64;
    tshark(&args, capture, |line| {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 8 {
            return true;
        }
        let ip = |a: &str, b: &str| if a.is_empty() { b.parse().ok() } else { a.parse().ok() };
        let (Ok(stream), Some(sip), Ok(sp), Some(dip), Ok(dp)) =
            (f[0].parse::<u64>(), ip(f[1], f[2]), f[3].parse::<u16>(), ip(f[4], f[5]), f[6].parse::<u16>())
        else {
            return true;
        };
        if seen.insert(stream) {
            if conns.len() < MAX_CONNECTIONS {
                let start_ns = ns(f[7]).unwrap_or(0);
                conns.push(Conn {
                    stream,
                    client: SocketAddr::new(sip, sp),
                    server: SocketAddr::new(dip, dp),
                    start_ns,
                });
            } else {
                over += 1;
            }
        }
        true
    })?;
    Ok((conns, over, 0))
}

/// The server ports of the capture's TLS connections, and how many there are, by gauntlet's
/// own (clear) reading of it.
fn tls_ports(capture: &Path) -> Result<(std::collections::BTreeSet<u16>, u64), Error> {
    let mut clear = super::Reader::open(capture)?;
    while clear.next_exchange()?.is_some() {}
    Ok((std::mem::take(&mut clear.http.tls_ports), clear.http.stats.tls_flows))
}

/// Follows `conns` batch by batch and sends their exchanges to `to` in time order; `None`
/// when the reader went away (nothing more to do).
fn follow(
    base: &[String],
    capture: &Path,
    (conns, over, seen): (Vec<Conn>, u64, u64),
    to: &SyncSender<Piece>,
    cancel: &AtomicBool,
) -> Result<Option<super::Decrypted>, Error> {
    let gone = || cancel.load(Ordering::Relaxed);
    let frames = frames(base, capture)?;
    let certs = client_certs(base, capture, &conns)?;
    let batches: Vec<&[Conn]> = conns.chunks(BATCH).collect();
    // The earliest handshake of the batches after each one: no exchange of theirs can come
    // before it, so everything earlier may go.
    let mut later = vec![u64::MAX; batches.len() + 1];
    for i in (0..batches.len()).rev() {
        later[i] = later[i + 1].min(batches[i].iter().map(|c| c.start_ns).min().unwrap_or(u64::MAX));
    }
    let mut http = Http1::new();
    let (mut pending, mut seq, mut unplaced) = (BinaryHeap::new(), 0u64, 0u64);
    for (i, batch) in batches.iter().enumerate() {
        if gone() {
            return Ok(None);
        }
        let mut args = base.to_vec();
        args.push("-q".into());
        for c in *batch {
            args.extend(["-z".into(), format!("follow,tls,yaml,{}", c.stream)]);
        }
        let mut doc = Follow::new(batch, &frames);
        tshark(&args, capture, |line| {
            doc.line(line, &mut http);
            !gone()
        })?;
        if gone() {
            return Ok(None);
        }
        unplaced += doc.finish(&mut http);
        for mut x in http.out.drain(..) {
            x.client_cert = certs.get(&x.client).cloned();
            seq += 1;
            pending.push(Reverse(Waiting(x.ts_ns, seq, Box::new(x))));
        }
        while pending.peek().is_some_and(|w: &Reverse<Waiting>| w.0.0 < later[i + 1]) {
            let Reverse(Waiting(_, _, x)) = pending.pop().expect("peeked");
            if to.send(Piece::Exchange(x)).is_err() {
                return Ok(None);
            }
        }
    }
    Ok(Some(super::Decrypted { connections: conns.len() as u64, over_limit: over, http: http.stats, unplaced, seen }))
}

/// Which connection each frame of decrypted application data belongs to, by frame number
/// (tshark prints the followed connections of one run in an order of its own, so each one
/// is known by its frames). Eight bytes a frame.
fn frames(base: &[String], capture: &Path) -> Result<Vec<(u32, u32)>, Error> {
    let mut args = base.to_vec();
    args.extend(["-Y", "tls.app_data", "-T", "fields", "-e", "frame.number", "-e", "tcp.stream"].map(String::from));
    let mut out = Vec::new();
    tshark(&args, capture, |line| {
        if let Some((f, st)) = line.split_once('\t') {
            if let (Ok(f), Ok(st)) = (f.trim().parse::<u32>(), st.trim().parse::<u32>()) {
                out.push((f, st));
            }
        }
        true
    })?;
    out.sort_unstable();
    Ok(out)
}

/// The subject of the certificate each connection's client presented (a Certificate
/// handshake message from the client's end: in clear in TLS 1.2, decrypted in TLS 1.3), by
/// client address.
fn client_certs(base: &[String], capture: &Path, conns: &[Conn]) -> Result<HashMap<SocketAddr, String>, Error> {
    let mut args = base.to_vec();
    args.extend(
        [
            "-Y",
            "tls.handshake.type == 11",
            "-T",
            "fields",
            "-E",
            "occurrence=f",
            "-e",
            "tcp.stream",
            "-e",
            "tcp.srcport",
            "-e",
            "tls.handshake.certificate",
        ]
        .map(String::from),
    );
    let by_stream: HashMap<u64, &Conn> = conns.iter().map(|c| (c.stream, c)).collect();
    let mut out = HashMap::new();
    tshark(&args, capture, |line| {
        let f: Vec<&str> = line.split('\t').collect();
        let [stream, port, cert, ..] = f[..] else { return true };
        let (Ok(stream), Ok(port)) = (stream.parse::<u64>(), port.parse::<u16>()) else { return true };
        let Some(c) = by_stream.get(&stream).filter(|c| c.client.port() == port) else { return true };
        if let Some(subject) = hex(cert).and_then(|der| crate::tls::pki::subject_text(&der)) {
            out.insert(c.client, subject);
        }
        true
    })?;
    Ok(out)
}

/// Bytes from tshark's hex (with or without `:` separators).
fn hex(s: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = s.bytes().filter(|b| *b != b':').collect();
    if digits.is_empty() || digits.len() % 2 != 0 {
        return None;
    }
    digits.chunks(2).map(|p| std::str::from_utf8(p).ok().and_then(|h| u8::from_str_radix(h, 16).ok())).collect()
}

/// One packet of a followed connection, as tshark's yaml gives it.
#[derive(Debug, Default)]
struct Packet {
    frame: Option<u64>,
    peer: Option<String>,
    ts_ns: Option<u64>,
    data: String,
    in_data: bool,
}

/// One followed connection's document.
#[derive(Debug, Default)]
struct Doc {
    conn: Option<Conn>,
    /// The peer that spoke first: the client.
    client_peer: Option<String>,
    /// Packets read before it was known which connection this is.
    waiting: Vec<(String, u64, Vec<u8>)>,
    last_ts: u64,
    packets: u64,
}

/// Reads tshark's `follow,tls,yaml` output line by line into the HTTP reader: one
/// `peers:`/`packets:` document per connection, known by its frames; the client is the peer
/// that speaks first. A document whose frames name none of the batch's connections is
/// counted (`unplaced`), not read.
struct Follow<'a> {
    conns: &'a [Conn],
    frames: &'a [(u32, u32)],
    doc: Option<Doc>,
    packet: Option<Packet>,
    unplaced: u64,
}

impl<'a> Follow<'a> {
    fn new(conns: &'a [Conn], frames: &'a [(u32, u32)]) -> Self {
        Follow { conns, frames, doc: None, packet: None, unplaced: 0 }
    }

    fn line(&mut self, l: &str, http: &mut Http1) {
        if l.starts_with("peers:") {
            self.end_doc(http);
            self.doc = Some(Doc::default());
            return;
        }
        // Whatever comes before the first document (a banner line) is not one.
        if self.doc.is_none() {
            return;
        }
        if let Some(n) = l.strip_prefix("  - packet:") {
            self.end_packet(http);
            self.packet = Some(Packet { frame: n.trim().parse().ok(), ..Packet::default() });
            return;
        }
        // The `peers:` list of a document is not read: tshark leaves the client's address out.
        let Some(p) = self.packet.as_mut() else { return };
        if p.in_data {
            if l.starts_with("      ") {
                p.data.push_str(l.trim());
                return;
            }
            p.in_data = false;
        }
        let t = l.trim();
        if let Some(v) = t.strip_prefix("peer:") {
            p.peer = Some(v.trim().to_string());
        } else if let Some(v) = t.strip_prefix("timestamp:") {
            p.ts_ns = ns(v);
        } else if t.starts_with("data: !!binary") {
            p.in_data = true;
        }
    }

    fn end_packet(&mut self, http: &mut Http1) {
        let (Some(p), Some(doc)) = (self.packet.take(), self.doc.as_mut()) else { return };
        let Some(peer) = p.peer else { return };
        let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(p.data.as_bytes()) else { return };
        let ts_ns = p.ts_ns.unwrap_or(doc.last_ts);
        doc.packets += 1;
        if doc.conn.is_none() {
            let stream = p.frame.and_then(|f| u32::try_from(f).ok()).and_then(|f| {
                let i = self.frames.binary_search_by_key(&f, |(fr, _)| *fr).ok()?;
                Some(u64::from(self.frames[i].1))
            });
            if let Some(c) = stream.and_then(|st| self.conns.iter().find(|c| c.stream == st)) {
                doc.conn = Some(*c);
                http.open(flow(c), c.client, c.server, false);
                for (peer, ts, bytes) in std::mem::take(&mut doc.waiting) {
                    Self::data(doc, c, &peer, ts, &bytes, http);
                }
            }
        }
        match doc.conn {
            Some(c) => Self::data(doc, &c, &peer, ts_ns, &bytes, http),
            None if doc.waiting.len() < UNPLACED_MAX => doc.waiting.push((peer, ts_ns, bytes)),
            None => {}
        }
    }

    fn data(doc: &mut Doc, c: &Conn, peer: &str, ts_ns: u64, bytes: &[u8], http: &mut Http1) {
        let client = doc.client_peer.get_or_insert_with(|| peer.to_string());
        let side = if client == peer { Side::Client } else { Side::Server };
        doc.last_ts = ts_ns;
        http.data(flow(c), side, ts_ns, bytes);
    }

    fn end_doc(&mut self, http: &mut Http1) {
        self.end_packet(http);
        let Some(doc) = self.doc.take() else { return };
        match doc.conn {
            Some(c) => http.close(flow(&c), doc.last_ts),
            None if doc.packets > 0 => self.unplaced += 1,
            None => {}
        }
    }

    /// Ends the last document; how many documents could not be placed.
    fn finish(&mut self, http: &mut Http1) -> u64 {
        self.end_doc(http);
        self.unplaced
    }
}

/// The reassembly flow id of a decrypted connection (apart from any clear one's).
fn flow(c: &Conn) -> u64 {
    u64::MAX / 2 + c.stream
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(stream: u64, port: u16) -> Conn {
        Conn {
            stream,
            client: format!("10.0.0.1:{port}").parse().unwrap(),
            server: "10.0.0.2:443".parse().unwrap(),
            start_ns: 0,
        }
    }

    fn follow_text(b: impl Fn(&str) -> String) -> String {
        format!(
            "===================================================================\n\
             peers:\n  - peer: 0\n    host: 127.0.0.1\n    port: 443\n  - peer: 1\n    host: \n    port: 0\npackets:\n\
             \x20 - packet: 4\n    peer: 1\n    timestamp: 100.5\n    data: !!binary |\n      {}\n\
             \x20 - packet: 6\n    peer: 0\n    timestamp: 100.75\n    data: !!binary |\n      {}\n\
             peers:\n  - peer: 0\n    host: 127.0.0.1\n    port: 443\npackets:\n\
             \x20 - packet: 9\n    peer: 0\n    timestamp: 101.0\n    data: !!binary |\n      {}\n",
            b("GET /x HTTP/1.1\r\nHost: h\r\n\r\n"),
            b("HTTP/1.1 204 No\r\n\r\n"),
            b("GET /lost HTTP/1.1\r\n\r\n"),
        )
    }

    #[test]
    fn follow_output_becomes_exchanges_line_by_line() {
        let b = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let text = follow_text(b);
        let mut http = Http1::new();
        // The document is known by its frames, whatever order the connections are listed in;
        // the second one's frame names no connection of the batch: counted, not read.
        let frames = [(4, 7), (6, 7), (9, 99)];
        let conns = [conn(3, 4000), conn(7, 5000)];
        let mut f = Follow::new(&conns, &frames);
        for l in text.lines() {
            f.line(l, &mut http);
        }
        assert_eq!(f.finish(&mut http), 1, "the document no frame places");
        let x = http.out.pop_front().expect("an exchange");
        assert_eq!((x.request.path(), x.response.map(|r| r.status), x.ts_ns), ("/x", Some(204), 100_500_000_000));
        assert_eq!(x.client.port(), 5000, "the connection the frames belong to");
        assert!(http.out.is_empty());
    }

    #[test]
    fn a_long_base64_block_over_several_lines_is_one_packet() {
        let body = "GET /long HTTP/1.1\r\nHost: h\r\nX-Pad: ".to_string() + &"a".repeat(300) + "\r\n\r\n";
        let b64 = base64::engine::general_purpose::STANDARD.encode(body);
        let wrapped: String =
            b64.as_bytes().chunks(76).map(|c| format!("      {}\n", std::str::from_utf8(c).unwrap())).collect();
        let text = format!(
            "peers:\npackets:\n  - packet: 4\n    peer: 1\n    timestamp: 5.000000001\n    data: !!binary |\n{wrapped}"
        );
        let mut http = Http1::new();
        let frames = [(4, 3)];
        let conns = [conn(3, 4000)];
        let mut f = Follow::new(&conns, &frames);
        for l in text.lines() {
            f.line(l, &mut http);
        }
        assert_eq!(f.finish(&mut http), 0);
        let x = http.out.pop_front().expect("an exchange");
        assert_eq!((x.request.path(), x.ts_ns), ("/long", 5_000_000_001));
        assert_eq!(x.request.header("x-pad").map(<[u8]>::len), Some(300));
    }

    #[test]
    fn tshark_times_read_as_nanoseconds() {
        assert_eq!(ns("1733150000.123456789"), Some(1_733_150_000_123_456_789));
        assert_eq!(ns("100.5"), Some(100_500_000_000));
        assert_eq!(ns("7"), Some(7_000_000_000));
        assert_eq!(ns("x.1"), None);
        assert_eq!(ns("99999999999999999999.0"), None);
    }
}
