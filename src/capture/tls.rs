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
    let mut http = Http1::new();
    for batch in conns.chunks(BATCH) {
        let mut args = base.clone();
        args.push("-q");
        let specs: Vec<String> = batch.iter().map(|c| format!("follow,tls,yaml,{}", c.stream)).collect();
        for s in &specs {
            args.extend(["-z", s]);
        }
        let text = tshark(&args, capture)?;
        feed(&text, batch, &mut http);
    }
    let mut out: Vec<Exchange> = http.out.drain(..).collect();
    out.sort_by_key(|x| x.ts_ns);
    Ok((out, super::Decrypted { connections: conns.len() as u64, over_limit: over, http: http.stats }))
}

/// Feeds tshark's `follow,tls,yaml` output for `conns` (in the same order) into `http`: one
/// `peers:`/`packets:` document per connection; the client is the peer that speaks first.
fn feed(text: &str, conns: &[Conn], http: &mut Http1) {
    let mut docs = text.split("\npeers:").map(|d| d.trim_start_matches("peers:"));
    // Whatever comes before the first document (a banner line) is not one.
    if !text.trim_start().starts_with("peers:") {
        docs.next();
    }
    for (doc, c) in docs.zip(conns) {
        let flow = u64::MAX / 2 + c.stream;
        http.open(flow, c.client, c.server, false);
        let mut client_peer: Option<String> = None;
        let mut last_ts = 0;
        for pkt in doc.split("\n  - packet:").skip(1) {
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
        let c = Conn { stream: 0, client: "10.0.0.1:5000".parse().unwrap(), server: "10.0.0.2:443".parse().unwrap() };
        let mut http = Http1::new();
        feed(&text, &[c], &mut http);
        let x = http.out.pop_front().expect("an exchange");
        assert_eq!((x.request.path(), x.response.map(|r| r.status), x.ts_ns), ("/x", Some(204), 100_500_000_000));
    }
}
