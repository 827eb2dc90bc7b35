//! Impairment links measured: what each impairment produced, with generous bounds (counts
//! and lower bounds where slowness could only push the figure the safe way).

use std::sync::Arc;
use std::time::{Duration, Instant};

use gauntlet::netem::{self, Impairment};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An echo server; returns its address.
async fn echo() -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

async fn link(imp: Impairment) -> (std::net::SocketAddr, gauntlet::serve::Server) {
    let upstream = echo().await;
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = netem::spawn(l, upstream, Arc::new(netem::Switch::new(imp))).unwrap();
    (server.addr, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_is_added_to_each_chunk_in_each_direction() {
    let (addr, server) = link(Impairment { latency: Duration::from_millis(40), ..Default::default() }).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    let mut rtts = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        s.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).await.unwrap();
        rtts.push(t.elapsed());
    }
    server.stop().await;
    rtts.sort();
    // Every round trip carries both delays; the median is within a generous tolerance.
    assert!(rtts[0] >= Duration::from_millis(80), "min {:?}", rtts[0]);
    // Generous: other tests load the same two cores.
    assert!(rtts[10] < Duration::from_millis(80 + 300), "median {:?}", rtts[10]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bandwidth_is_capped_per_connection() {
    let rate = 1_000_000u64;
    let (addr, server) = link(Impairment { bandwidth: Some(rate), ..Default::default() }).await;
    let s = TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    let total = 600_000usize;
    let t = Instant::now();
    let writer = tokio::spawn(async move {
        wr.write_all(&vec![7u8; total]).await.unwrap();
        wr
    });
    let mut got = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    while got < total {
        got += rd.read(&mut buf).await.unwrap();
    }
    let elapsed = t.elapsed().as_secs_f64();
    let _ = writer.await;
    server.stop().await;
    // Both directions are capped at `rate`, pipelined: the echo takes about total/rate.
    let measured = total as f64 / elapsed;
    assert!(measured <= rate as f64 * 1.1, "measured {measured:.0} B/s over {elapsed:.2}s");
    assert!(measured >= rate as f64 * 0.25, "measured {measured:.0} B/s over {elapsed:.2}s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_after_bytes_sends_a_reset() {
    let (addr, server) = link(Impairment { reset_after_bytes: Some(1000), ..Default::default() }).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut got = 0usize;
    let mut buf = [0u8; 4096];
    let mut outcome = None;
    for _ in 0..50 {
        if let Err(e) = s.write_all(&[1u8; 300]).await {
            let reset = matches!(e.kind(), std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe);
            outcome = Some(if reset { "reset" } else { "error" });
            break;
        }
        match s.read(&mut buf).await {
            Ok(0) => {
                outcome = Some("eof");
                break;
            }
            Ok(n) => got += n,
            Err(e) => {
                outcome = Some(if e.kind() == std::io::ErrorKind::ConnectionReset { "reset" } else { "error" });
                break;
            }
        }
    }
    server.stop().await;
    assert_eq!(outcome, Some("reset"), "got {got} bytes");
    assert!(got < 1000, "less than the limit came back: {got}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuse_resets_and_blackhole_forwards_nothing() {
    let (addr, server) = link(Impairment { refuse: true, ..Default::default() }).await;
    let mut buf = [0u8; 16];
    // The reset may already show at connect, or at the first read.
    if let Ok(mut s) = TcpStream::connect(addr).await {
        let r = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await.unwrap();
        assert!(matches!(r, Ok(0)) || r.is_err(), "refused connection is closed: {r:?}");
    }
    server.stop().await;

    let (addr, server) = link(Impairment { blackhole: true, ..Default::default() }).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"hello?").await.unwrap();
    let r = tokio::time::timeout(Duration::from_millis(300), s.read(&mut buf)).await;
    assert!(r.is_err(), "a blackhole answers nothing and keeps the connection open: {r:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_bytes_closes_gracefully_and_slow_close_holds_the_close() {
    // limit: the echo stops with an orderly EOF once 1000 bytes crossed (both directions).
    let (addr, server) = link(Impairment { limit_bytes: Some(1000), ..Default::default() }).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let (mut got, mut buf, mut eof) = (0usize, [0u8; 4096], false);
    for _ in 0..50 {
        if s.write_all(&[1u8; 300]).await.is_err() {
            break;
        }
        match tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await.unwrap() {
            Ok(0) => {
                eof = true;
                break;
            }
            Ok(n) => got += n,
            Err(e) => panic!("a graceful close, not {e}"),
        }
    }
    server.stop().await;
    assert!(eof && got < 1000, "eof {eof} after {got} bytes echoed");

    // slow close: a server that says "bye" and closes; the close reaches the client ≥ 300 ms later.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = l.local_addr().unwrap();
    tokio::spawn(async move {
        if let Ok((mut c, _)) = l.accept().await {
            let _ = c.write_all(b"bye").await;
        }
    });
    let front = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let imp = Impairment { slow_close: Some(Duration::from_millis(300)), ..Default::default() };
    let server = netem::spawn(front, upstream, Arc::new(netem::Switch::new(imp))).unwrap();
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let mut bye = [0u8; 3];
    s.read_exact(&mut bye).await.unwrap();
    let t = Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await.unwrap();
    assert!(matches!(r, Ok(0)), "{r:?}");
    assert!(t.elapsed() >= Duration::from_millis(250), "close passed on after {:?}", t.elapsed());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blackhole_switched_on_silences_open_connections() {
    let upstream = echo().await;
    let switch = Arc::new(netem::Switch::new(Impairment::default()));
    let server = netem::spawn(TcpListener::bind("127.0.0.1:0").await.unwrap(), upstream, switch.clone()).unwrap();
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let mut buf = [0u8; 4];
    s.write_all(b"ping").await.unwrap();
    s.read_exact(&mut buf).await.unwrap();
    switch.set(Impairment { blackhole: true, ..Default::default() });
    s.write_all(b"ping").await.unwrap();
    let r = tokio::time::timeout(Duration::from_millis(300), s.read(&mut buf)).await;
    assert!(r.is_err(), "nothing comes back through a blackhole: {r:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phase_network_condition_labels_everything_sent_under_it() {
    let target = gauntlet::testkit::spawn(gauntlet::testkit::Config::default()).await.unwrap();
    let (d, p) = super::common::scenario_file(&format!(
        "gauntlet: 1\nname: cond\ntarget: {{ url: \"http://{}\", protocol: h1 }}\nidentities: {{ a: {{}} }}\n\
         checks: [ {{ id: A, identity: a, request: {{ path: / }}, expect: allow }} ]\n\
         phases:\n\
         - {{ name: clear, requests: 40, users: 2 }}\n\
         - {{ name: slow, requests: 40, users: 2, network: {{ name: wan-30ms, latency: 30ms }} }}\n",
        target.addr
    ));
    let out = super::common::run(super::common::load(&p), &d.path().join("out")).await;
    target.stop().await;
    let s = out.summary.unwrap();
    assert_eq!(out.exit.code(), 0, "{:?}", s.reasons);
    let names: Vec<&str> = s.conditions.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["unimpaired", "wan-30ms"]);
    let (clear, wan) = (&s.conditions[0], &s.conditions[1]);
    assert_eq!((clear.requests.completed, wan.requests.completed), (40, 40));
    // Each round trip through the link carries the delay twice.
    assert!(wan.latency_ms.p50 >= 60.0, "wan p50 {}", wan.latency_ms.p50);
}

mod udp {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    use gauntlet::netem::Impairment;
    use gauntlet::netem::udp::{Loss, UdpImpairment, spawn_udp};
    use tokio::net::UdpSocket;

    /// A UDP echo server that also records every sequence number it received, in order.
    async fn echo() -> (std::net::SocketAddr, Arc<std::sync::Mutex<Vec<u32>>>) {
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = s.local_addr().unwrap();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            while let Ok((n, from)) = s.recv_from(&mut buf).await {
                if n >= 4 {
                    log.lock().unwrap().push(u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]));
                }
                let _ = s.send_to(&buf[..n], from).await;
            }
        });
        (addr, seen)
    }

    /// Sends `n` numbered datagrams through a link with `imp`, paced so no socket buffer
    /// overflows; returns what the server received, in arrival order, and the echoes counted.
    async fn through(imp: UdpImpairment, n: u32) -> (Vec<u32>, u64) {
        let (server, seen) = echo().await;
        let link = spawn_udp(UdpSocket::bind("127.0.0.1:0").await.unwrap(), server, imp).unwrap();
        let client = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        client.connect(link.addr).await.unwrap();
        let echoes = Arc::new(AtomicU64::new(0));
        let (c, e) = (client.clone(), echoes.clone());
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            while c.recv(&mut buf).await.is_ok() {
                e.fetch_add(1, Ordering::Relaxed);
            }
        });
        for i in 0..n {
            client.send(&i.to_be_bytes()).await.unwrap();
            if i % 25 == 24 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        // Let delayed datagrams land: wait until nothing new arrives for 300 ms.
        let mut last = (usize::MAX, Instant::now());
        while last.1.elapsed() < Duration::from_millis(300) {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let len = seen.lock().unwrap().len();
            if len != last.0 {
                last = (len, Instant::now());
            }
        }
        reader.abort();
        link.stop().await;
        let got = seen.lock().unwrap().clone();
        (got, echoes.load(Ordering::Relaxed))
    }

    fn within(measured: f64, n: f64, p: f64) -> bool {
        (measured - n * p).abs() <= 5.0 * (n * p * (1.0 - p)).sqrt() + 1.0
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bernoulli_loss_drops_its_share_of_datagrams_each_way() {
        let n = 4000;
        let (got, echoes) = through(UdpImpairment { loss: Some(Loss::Bernoulli(0.1)), ..Default::default() }, n).await;
        let lost_up = f64::from(n) - got.len() as f64;
        assert!(within(lost_up, f64::from(n), 0.1), "lost {lost_up} of {n} (expected ≈ {})", n / 10);
        // The way back loses its own 10 % of what arrived.
        let lost_down = got.len() as f64 - echoes as f64;
        assert!(within(lost_down, got.len() as f64, 0.1), "lost back {lost_down} of {}", got.len());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn duplicates_and_reordering_are_produced_and_nothing_is_lost() {
        let n = 2000;
        let imp = UdpImpairment {
            duplicate: 0.1,
            reorder: 0.2,
            reorder_gap: Duration::from_millis(20),
            ..Default::default()
        };
        let (got, _) = through(imp, n).await;
        let dups = got.len() as f64 - f64::from(n);
        assert!(within(dups, f64::from(n), 0.1), "duplicates {dups}");
        let mut distinct = got.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), n as usize, "every datagram arrived");
        // A held-back datagram arrives after later ones.
        let inversions = got.windows(2).filter(|w| w[1] < w[0]).count();
        assert!(inversions > 50, "only {inversions} out-of-order arrivals");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_datagram_is_delayed_each_way() {
        let (server, _) = echo().await;
        let imp = UdpImpairment {
            delay: Impairment { latency: Duration::from_millis(30), ..Default::default() },
            ..Default::default()
        };
        let link = spawn_udp(UdpSocket::bind("127.0.0.1:0").await.unwrap(), server, imp).unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client.connect(link.addr).await.unwrap();
        let mut rtts = Vec::new();
        for i in 0u32..20 {
            let t = Instant::now();
            client.send(&i.to_be_bytes()).await.unwrap();
            let mut buf = [0u8; 16];
            tokio::time::timeout(Duration::from_secs(5), client.recv(&mut buf)).await.unwrap().unwrap();
            rtts.push(t.elapsed());
        }
        link.stop().await;
        rtts.sort();
        assert!(rtts[0] >= Duration::from_millis(60), "min {:?}", rtts[0]);
        assert!(rtts[10] < Duration::from_millis(60 + 300), "median {:?}", rtts[10]);
    }
}

/// The kernel backend, measured where it can run (root with ip, tc and nft); elsewhere each
/// test says why it did not run.
mod kernel {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    use gauntlet::netem::kernel::{KernelLink, available};
    use gauntlet::netem::{Impairment, Switch};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    fn skip() -> bool {
        match available() {
            Ok(()) => false,
            Err(why) => {
                eprintln!("kernel backend test not run: {why}");
                true
            }
        }
    }

    /// A TCP echo server counting the bytes it received.
    async fn sink() -> (std::net::SocketAddr, Arc<AtomicU64>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let got = Arc::new(AtomicU64::new(0));
        let g = got.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let g = g.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        g.fetch_add(n as u64, Ordering::Relaxed);
                    }
                });
            }
        });
        (addr, got)
    }

    async fn send_and_wait(addr: std::net::SocketAddr, got: &AtomicU64, total: usize, chunk: usize) -> Duration {
        let before = got.load(Ordering::Relaxed);
        let s = TcpStream::connect(addr).await.unwrap();
        s.set_nodelay(true).unwrap();
        // The echo comes back too, so both directions carry data packets.
        let (mut rd, mut s) = s.into_split();
        let drain = tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            while matches!(rd.read(&mut buf).await, Ok(n) if n > 0) {}
        });
        let t = Instant::now();
        let data = vec![7u8; chunk];
        for _ in 0..total / chunk {
            s.write_all(&data).await.unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while got.load(Ordering::Relaxed) - before < total as u64 {
            assert!(
                Instant::now() < deadline,
                "only {} of {total} bytes arrived",
                got.load(Ordering::Relaxed) - before
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let took = t.elapsed();
        drain.abort();
        took
    }

    fn namespaces() -> String {
        let out = std::process::Command::new("ip").args(["netns", "list"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn real_packet_loss_at_its_rate_and_tbf_bandwidth_within_ten_percent() {
        if skip() {
            return;
        }
        let (upstream, got) = sink().await;
        let switch = Arc::new(Switch::new(Impairment { loss: Some(0.05), ..Default::default() }));
        let link = KernelLink::spawn(upstream, switch.clone()).await.unwrap();
        let ns = link.namespace().to_string();
        assert!(namespaces().contains(&ns), "namespace {ns} created: {}", namespaces());
        // 5 % loss each way: every byte still arrives (TCP retransmits), and the drop rule
        // dropped its share of the packets that entered.
        send_and_wait(link.addr, &got, 600 * 512, 512).await;
        let (inbound, outbound) = link.loss_counters();
        for (side, c) in [("towards the target", inbound), ("towards the client", outbound)] {
            let (n, p) = (c.packets as f64, 0.05);
            let bound = 5.0 * (n * p * (1.0 - p)).sqrt() + 1.0;
            assert!(c.packets > 50, "{side}: only {} packets", c.packets);
            assert!((c.dropped as f64 - n * p).abs() <= bound, "{side}: {} of {} dropped", c.dropped, c.packets);
        }
        // Switch to 4 mbit/s without loss: 1 MiB takes about 2 s, within 10 %.
        switch.set(Impairment { bandwidth: Some(500_000), ..Default::default() });
        tokio::time::sleep(Duration::from_millis(200)).await;
        let took = send_and_wait(link.addr, &got, 1 << 20, 16 * 1024).await;
        let rate = f64::from(1 << 20) / took.as_secs_f64();
        eprintln!("kernel link: tbf 500000 B/s measured {rate:.0} B/s; loss {inbound:?} {outbound:?}");
        // tbf never lets more through; a loaded machine can only make it look slower.
        assert!((250_000.0..=550_000.0).contains(&rate), "measured {rate:.0} B/s for 500000 B/s");
        link.stop().await;
        assert!(!namespaces().contains(&ns), "namespace {ns} removed: {}", namespaces());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_scenario_with_packet_loss_completes_every_request_through_the_namespace() {
        if skip() {
            return;
        }
        let target = gauntlet::testkit::spawn(gauntlet::testkit::Config::default()).await.unwrap();
        let (d, p) = super::super::common::scenario_file(&format!(
            "gauntlet: 1\nname: lossy\ntarget: {{ url: \"http://{}\", protocol: h1, timeout: 20s }}\n\
             network: {{ backend: kernel }}\nidentities: {{ a: {{}} }}\n\
             checks: [ {{ id: A, identity: a, request: {{ path: / }}, expect: allow }} ]\n\
             phases:\n\
             - {{ name: clear, requests: 100, users: 2 }}\n\
             - {{ name: lossy, requests: 100, users: 2, network: {{ name: loss-5pct, loss: 5% }} }}\n",
            target.addr
        ));
        let out = super::super::common::run(super::super::common::load(&p), &d.path().join("out")).await;
        target.stop().await;
        let s = out.summary.unwrap();
        assert_eq!(out.exit.code(), 0, "{:?}", s.reasons);
        let lossy = s.conditions.iter().find(|c| c.name == "loss-5pct").unwrap();
        assert_eq!(lossy.requests.completed, 100, "{lossy:?}");
    }
}
