//! Coordinated omission: a target that stalls every response for 500 ms once. An open-loop
//! run records the stall in every request scheduled during it; a closed loop with one user
//! records it once. Asserted on counts, not on speed.

use std::path::Path;
use std::time::Duration;

use gauntlet::testkit;
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};

use super::common;

/// Sums the `latency` intervals of a results folder's histogram log.
pub fn latency_from_hlog(dir: &Path) -> hdrhistogram::Histogram<u64> {
    let bytes = std::fs::read(dir.join("latency.hlog")).unwrap();
    let mut total = hdrhistogram::Histogram::<u64>::new(3).unwrap();
    let mut de = Deserializer::new();
    for entry in IntervalLogIterator::new(&bytes) {
        if let LogEntry::Interval(h) = entry.unwrap() {
            if h.tag().map(|t| t.as_str()) == Some("latency") {
                let raw =
                    base64::Engine::decode(&base64::engine::general_purpose::STANDARD, h.encoded_histogram()).unwrap();
                let hist: hdrhistogram::Histogram<u64> = de.deserialize(&mut raw.as_slice()).unwrap();
                total.add(&hist).unwrap();
            }
        }
    }
    total
}

async fn slow_count(load: &str) -> (u64, u64) {
    let target = testkit::spawn(testkit::Config {
        tls: None,
        rules: vec![],
        stall: Some((40, Duration::from_millis(500))),
        forward_to: None,
        ..Default::default()
    })
    .await
    .unwrap();
    let yaml = format!(
        "gauntlet: 1\nname: stall\ntarget: {{ url: \"http://{}\", protocol: h1, max_in_flight: 8 }}\n\
         identities: {{ anon: {{}} }}\n\
         checks: [ {{ id: GET, identity: anon, request: {{ path: / }}, expect: allow }} ]\n\
         phases: [ {{ name: p, requests: 240, {load} }} ]\n",
        target.addr
    );
    let (d, p) = common::scenario_file(&yaml);
    let out = common::run(common::load(&p), &d.path().join("out")).await;
    target.stop().await;
    assert_eq!(out.exit.code(), 0);
    let h = latency_from_hlog(&d.path().join("out"));
    assert_eq!(h.len(), 240);
    (h.count_between(100_000, h.max().max(100_000)), h.max())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_counts_the_stall_in_every_request_scheduled_during_it() {
    let (open_slow, open_max) = slow_count("rate: 200/s").await;
    let (closed_slow, closed_max) = slow_count("users: 1").await;
    // The stall is real in both runs…
    assert!(open_max >= 400_000 && closed_max >= 400_000, "{open_max} {closed_max}");
    // …but at 200/s about 100 requests were due during the 500 ms stall; each waited for
    // its end (minus how late it was due). Closed loop, one user: only the one in flight.
    assert!(open_slow >= 40, "open loop saw {open_slow} slow requests");
    assert!(closed_slow * 10 <= open_slow, "closed {closed_slow} vs open {open_slow}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pausing_stops_sending_and_moves_the_schedule() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let target = testkit::spawn(testkit::Config::default()).await.unwrap();
    let (d, p) = common::scenario_file(&format!(
        "gauntlet: 1\nname: pause\ntarget: {{ url: \"http://{}\", protocol: h1 }}\nidentities: {{ a: {{}} }}\n\
         checks: [ {{ id: A, identity: a, request: {{ path: / }}, expect: allow }} ]\n\
         phases: [ {{ name: p, requests: 100, rate: 100/s }} ]\n",
        target.addr
    ));
    let pause = Arc::new(AtomicBool::new(false));
    let opts = gauntlet::app::ExecOptions {
        out: Some(d.path().join("out")),
        quiet: true,
        pause: Some(pause.clone()),
        ..Default::default()
    };
    let run = tokio::spawn(gauntlet::app::execute(common::load(&p), opts));
    // Pause once about a third of the requests went out.
    let counter = target.requests.clone();
    while counter.load(Ordering::Acquire) < 30 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    pause.store(true, Ordering::Release);
    tokio::time::sleep(Duration::from_millis(200)).await; // in-flight requests land
    let during = counter.load(Ordering::Acquire);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(counter.load(Ordering::Acquire), during, "nothing is sent while paused");
    pause.store(false, Ordering::Release);
    let out = tokio::time::timeout(Duration::from_secs(60), run).await.unwrap().unwrap();
    target.stop().await;
    let s = out.summary.unwrap();
    assert_eq!(s.requests.completed, 100, "the whole schedule still runs after the pause");
    assert!(s.duration_s >= 1.0 + 0.8, "the phase clock stood still: {}", s.duration_s);
}
