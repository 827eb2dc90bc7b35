//! The oracle on its own: HTTP/2 over TLS and h2c, tags from any run, counters per check.

use std::sync::Arc;

use gauntlet::oracle::{self, Oracle, Rules};

use super::common;

async fn run_against_oracle(tls: bool) -> oracle::Report {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (scheme, ca) = if tls {
        ("https", format!(", ca: \"{}\", server_name: localhost", common::cert("ca.pem")))
    } else {
        ("http", String::new())
    };
    let (d, p) = common::scenario_file(&format!(
        "gauntlet: 1\nname: oracle\ntarget: {{ url: \"{scheme}://{addr}\", protocol: h2{ca} }}\n\
         profile: {{ identity_header: x-forwarded-user }}\n\
         identities: {{ anon: {{ headers: {{ x-forwarded-user: anon }} }}, forger: {{ headers: {{ x-forwarded-user: admin }} }} }}\n\
         checks:\n\
         - {{ id: OK, identity: anon, request: {{ path: /a }}, expect: allow }}\n\
         - {{ id: FORGED, identity: forger, request: {{ path: /b }}, expect: allow }}\n\
         phases: [ {{ name: p, requests: 20, users: 2 }} ]\n"
    ));
    let s = common::load(&p);
    let config = tls.then(|| {
        let t = common::tls_setup(false);
        gauntlet::tls::server_config(t.chain, t.key, None, false, &[b"h2", b"http/1.1"]).unwrap()
    });
    let running = oracle::spawn(
        listener,
        Arc::new(Oracle::new(Rules::from_scenario(&s, oracle::ANY_RUN, gauntlet::plan::build(&s).conditions.len()))),
        config,
    )
    .unwrap();
    let out = common::run(s, &d.path().join("out")).await;
    assert_eq!(out.summary.unwrap().requests.completed, 20);
    running.stop().await.report()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oracle_serves_h2_over_tls_and_h2c_and_judges_identity_headers() {
    for tls in [true, false] {
        let r = run_against_oracle(tls).await;
        assert_eq!((r.received, r.untagged, r.foreign), (20, 0, 0), "tls={tls}");
        let ok = r.cells[0][0];
        let forged = r.cells[0][1];
        assert_eq!(ok.arrivals + forged.arrivals, 20);
        assert_eq!((ok.spoofed, ok.missing), (0, 0), "tls={tls}");
        assert_eq!(forged.spoofed, forged.arrivals, "tls={tls}");
    }
}

/// A gateway may send a request's body after its head (Caddy does under load). The oracle reads
/// the whole body before it answers: answering first left the body unread, so hyper closed the
/// kept-alive connection and the gateway's next request on it failed (Caddy: 502 "server
/// closed idle connection", a false failure of the gateway caused by gauntlet's upstream).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oracle_reads_a_late_request_body_and_keeps_the_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let rules = Rules { run: oracle::ANY_RUN.into(), phases: 1, conditions: 1, checks: Vec::new() };
    let running = oracle::spawn(listener, Arc::new(Oracle::new(rules)), None).unwrap();
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"POST /a HTTP/1.1\r\nhost: o\r\ncontent-length: 21\r\n\r\n").await.unwrap();
    // No answer before the body: the oracle is reading it.
    let mut buf = vec![0u8; 4096];
    let early = tokio::time::timeout(std::time::Duration::from_millis(300), tcp.read(&mut buf)).await;
    assert!(early.is_err(), "the oracle answered before the request body arrived");
    tcp.write_all(b"{\"item\":1,\"qty\":2}  \n").await.unwrap();
    tcp.write_all(b"GET /b HTTP/1.1\r\nhost: o\r\n\r\n").await.unwrap();
    let mut got = Vec::new();
    let read_two = async {
        while String::from_utf8_lossy(&got).matches("HTTP/1.1 200").count() < 2 {
            let n = tcp.read(&mut buf).await.unwrap();
            assert!(n > 0, "the oracle closed the connection: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), read_two).await.expect("both answers");
    assert_eq!(running.stop().await.report().received, 2);
}
