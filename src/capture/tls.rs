//! HTTPS captures: TLS connections decrypted by `tshark` (Debian package `tshark`) with a key
//! log (`SSLKEYLOGFILE`) or the decryption secrets a pcapng embeds, then read like clear
//! ones. tshark lists the connections that start a TLS handshake, then follows each one's
//! decrypted bytes (`-z follow,tls,yaml`, timestamps kept) in batches; the bytes go through
//! the same HTTP reader as clear traffic. Without tshark, the error says how to get it.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use base64::Engine as _;

use super::Error;
use super::http1::{Exchange, Http1};
use super::tcp::{Side, Sink};

/// Connections followed per tshark run.
const BATCH: usize = 200;
/// Decrypted connections read at most (each is followed by tshark; beyond, they are counted).
pub const MAX_CONNECTIONS: usize = 20_000;

/// Whether `tshark` can be run.
pub fn available() -> bool {
    Command::new("tshark").arg("--version").output().is_ok_and(|o| o.status.success())
}

/// What to do when tshark is missing.
pub const MISSING: &str =
    "decrypting TLS needs tshark (the Debian package `tshark`: apt-get install tshark), which is not installed";

fn tshark(args: &[&str], path: &Path) -> Result<String, Error> {
    let out = Command::new("tshark").args(args).output().map_err(|e| Error {
        path: path.to_path_buf(),
        offset: None,
        msg: format!("{MISSING} ({e})"),
    })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let line = err.lines().find(|l| !l.contains("Running as user")).unwrap_or("").trim().to_string();
        return Err(Error { path: path.to_path_buf(), offset: None, msg: format!("tshark could not read it: {line}") });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A TLS connection: tshark's stream number, client, server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Conn {
    stream: u64,
    client: SocketAddr,
    server: SocketAddr,
}

/// The decrypted HTTP exchanges of every TLS connection in `capture`, in time order, and the
/// reader's counts for them (`keylog`: the key log; `None`: the pcapng's own secrets).
pub fn decrypt(capture: &Path, keylog: Option<&Path>) -> Result<(Vec<Exchange>, super::Decrypted), Error> {
    let file = capture.to_string_lossy().to_string();
    let keys = keylog.map(|k| format!("tls.keylog_file:{}", k.display()));
    let mut base: Vec<&str> = vec!["-n", "-r", &file];
    if let Some(k) = &keys {
        base.extend(["-o", k]);
    }
    // Every connection that starts a handshake (its ClientHello).
    let mut list = base.clone();
    list.extend([
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
    ]);
    let mut conns: Vec<Conn> = Vec::new();
    for line in tshark(&list, capture)?.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 7 {
            continue;
        }
        let ip = |a: &str, b: &str| if a.is_empty() { b.parse().ok() } else { a.parse().ok() };
        let (Ok(stream), Some(sip), Ok(sp), Some(dip), Ok(dp)) =
            (f[0].parse::<u64>(), ip(f[1], f[2]), f[3].parse::<u16>(), ip(f[4], f[5]), f[6].parse::<u16>())
        else {
            continue;
        };
        if !conns.iter().any(|c| c.stream == stream) {
            conns.push(Conn { stream, client: SocketAddr::new(sip, sp), server: SocketAddr::new(dip, dp) });
        }
    }
    let over = conns.len().saturating_sub(MAX_CONNECTIONS) as u64;
    conns.truncate(MAX_CONNECTIONS);
    // Which connection each frame of decrypted application data belongs to: tshark prints
    // the followed connections of one run in an order of its own, so each one is known by
    // its frames.
    let mut frames_args = base.clone();
    frames_args.extend(["-Y", "tls.app_data", "-T", "fields", "-e", "frame.number", "-e", "tcp.stream"]);
    let mut frames = std::collections::HashMap::new();
    for line in tshark(&frames_args, capture)?.lines() {
        if let Some((f, st)) = line.split_once('\t') {
            if let (Ok(f), Ok(st)) = (f.trim().parse::<u64>(), st.trim().parse::<u64>()) {
                frames.insert(f, st);
            }
        }
    }
    let mut http = Http1::new();
    for batch in conns.chunks(BATCH) {
        let mut args = base.clone();
        args.push("-q");
        let specs: Vec<String> = batch.iter().map(|c| format!("follow,tls,yaml,{}", c.stream)).collect();
        for s in &specs {
            args.extend(["-z", s]);
        }
        let text = tshark(&args, capture)?;
        feed(&text, batch, &frames, &mut http);
    }
    let certs = client_certs(&base, capture, &conns)?;
    let mut out: Vec<Exchange> = http.out.drain(..).collect();
    for x in &mut out {
        x.client_cert = certs.get(&x.client).cloned();
    }
    out.sort_by_key(|x| x.ts_ns);
    Ok((out, super::Decrypted { connections: conns.len() as u64, over_limit: over, http: http.stats }))
}

/// The subject of the certificate each connection's client presented (a Certificate
/// handshake message from the client's end: in clear in TLS 1.2, decrypted in TLS 1.3), by
/// client address.
fn client_certs(
    base: &[&str],
    capture: &Path,
    conns: &[Conn],
) -> Result<std::collections::HashMap<SocketAddr, String>, Error> {
    let mut args = base.to_vec();
    args.extend([
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
    ]);
    let mut out = std::collections::HashMap::new();
    for line in tshark(&args, capture)?.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let [stream, port, cert, ..] = f[..] else { continue };
        let (Ok(stream), Ok(port)) = (stream.parse::<u64>(), port.parse::<u16>()) else { continue };
        let Some(c) = conns.iter().find(|c| c.stream == stream && c.client.port() == port) else { continue };
        if let Some(subject) = hex(cert).and_then(|der| crate::tls::pki::subject_text(&der)) {
            out.insert(c.client, subject);
        }
    }
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

/// Feeds tshark's `follow,tls,yaml` output for `conns` into `http`: one `peers:`/`packets:`
/// document per connection, known by its frames (`frames`: frame number → tshark stream);
/// the client is the peer that speaks first. A document whose frames name none of `conns`
/// is not read.
fn feed(text: &str, conns: &[Conn], frames: &std::collections::HashMap<u64, u64>, http: &mut Http1) {
    let mut docs = text.split("\npeers:").map(|d| d.trim_start_matches("peers:"));
    // Whatever comes before the first document (a banner line) is not one.
    if !text.trim_start().starts_with("peers:") {
        docs.next();
    }
    for doc in docs {
        let mut packets = Vec::new();
        let mut last_ts = 0;
        for pkt in doc.split("\n  - packet:").skip(1) {
            let frame = pkt.lines().next().and_then(|l| l.trim().parse::<u64>().ok());
            let field =
                |name: &str| pkt.lines().find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_string()));
            let (Some(peer), Some(ts)) = (field("peer:"), field("timestamp:")) else { continue };
            let ts_ns = ts
                .split_once('.')
                .and_then(|(s, f)| {
                    let frac: String = f.chars().chain(std::iter::repeat('0')).take(9).collect();
                    Some(s.parse::<u64>().ok()? * 1_000_000_000 + frac.parse::<u64>().ok()?)
                })
                .unwrap_or(last_ts);
            last_ts = ts_ns;
            let b64: String =
                pkt.lines().skip_while(|l| !l.contains("data: !!binary")).skip(1).map(str::trim).collect();
            let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(b64.as_bytes()) else { continue };
            packets.push((frame, peer, ts_ns, bytes));
        }
        let stream = packets.iter().find_map(|(f, ..)| f.and_then(|f| frames.get(&f)));
        let Some(c) = stream.and_then(|st| conns.iter().find(|c| c.stream == *st)) else { continue };
        let flow = u64::MAX / 2 + c.stream;
        http.open(flow, c.client, c.server, false);
        let mut client_peer: Option<String> = None;
        for (_, peer, ts_ns, bytes) in packets {
            let client = client_peer.get_or_insert_with(|| peer.clone());
            let side = if *client == peer { Side::Client } else { Side::Server };
            http.data(flow, side, ts_ns, &bytes);
        }
        http.close(flow, last_ts);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follow_output_becomes_exchanges() {
        let b = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let text = format!(
            "peers:\n  - peer: 0\n    host: 127.0.0.1\n    port: 443\n  - peer: 1\n    host: \n    port: 0\npackets:\n\
             \x20 - packet: 4\n    peer: 1\n    timestamp: 100.5\n    data: !!binary |\n      {}\n\
             \x20 - packet: 6\n    peer: 0\n    timestamp: 100.75\n    data: !!binary |\n      {}\n",
            b("GET /x HTTP/1.1\r\nHost: h\r\n\r\n"),
            b("HTTP/1.1 204 No\r\n\r\n")
        );
        let c = |stream: u64, port: u16| Conn {
            stream,
            client: format!("10.0.0.1:{port}").parse().unwrap(),
            server: "10.0.0.2:443".parse().unwrap(),
        };
        let mut http = Http1::new();
        // The document is known by its frames, whatever order the connections are listed in.
        let frames = [(4, 7), (6, 7)].into_iter().collect();
        feed(&text, &[c(3, 4000), c(7, 5000)], &frames, &mut http);
        let x = http.out.pop_front().expect("an exchange");
        assert_eq!((x.request.path(), x.response.map(|r| r.status), x.ts_ns), ("/x", Some(204), 100_500_000_000));
        assert_eq!(x.client.port(), 5000, "the connection the frames belong to");
    }
}
