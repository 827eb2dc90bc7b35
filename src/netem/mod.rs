//! Impairment links in user space: a TCP proxy that degrades the traffic between a client and
//! an upstream on purpose.
//!
//! Units, precisely: `latency` (+ `jitter`) delays **each chunk** read from one side before it
//! is written to the other, in **each direction** — a request/response round trip gains about
//! 2×latency. Chunks keep their order (a chunk is never delivered before the one read before
//! it). `bandwidth` is a token bucket **per connection and direction**. `slice` splits every
//! write into segments of a given size with a delay between them. `reset_after_bytes` /
//! `reset_after` end a connection with a TCP RST (SO_LINGER 0) once that many bytes (both
//! directions) or that much time has passed. `blackhole` accepts and then forwards nothing;
//! `refuse` resets every new connection at once. `limit_bytes` closes a connection gracefully
//! once that many bytes crossed it; `slow_close` holds a close (FIN) for a while before passing
//! it on. Switched on while connections are open,
//! `blackhole` drops every chunk they carry from then on and `refuse` resets them on their
//! next chunk — so a dependency "going down" takes its keep-alive connections with it.
//!
//! What a user-space TCP proxy cannot emulate: real packet loss, reordering and duplication on
//! the wire (the kernel's TCP hides them behind retransmission — use the kernel backend or the
//! UDP link for those), and per-packet timing below the size of a read.

pub mod kernel;
pub mod udp;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

/// How jitter is distributed around the latency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Distribution {
    /// Uniform in [latency − jitter, latency + jitter].
    #[default]
    Uniform,
    /// Normal with mean latency and standard deviation jitter (clamped at 0).
    Normal,
    /// latency plus a Pareto tail (shape 2) whose mean is jitter: rare, long delays.
    Pareto,
}

impl Distribution {
    /// Parses `uniform | normal | pareto`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "uniform" => Distribution::Uniform,
            "normal" => Distribution::Normal,
            "pareto" => Distribution::Pareto,
            _ => return None,
        })
    }
}

/// What a link does to the traffic.
#[derive(Debug, Clone, Default)]
pub struct Impairment {
    /// Added delay per chunk, per direction.
    pub latency: Duration,
    /// Spread of the delay.
    pub jitter: Duration,
    /// Shape of the spread.
    pub distribution: Distribution,
    /// Seed of the delay sampler (each connection and direction derives its own).
    pub seed: u64,
    /// Bytes per second, per connection and direction.
    pub bandwidth: Option<u64>,
    /// Split writes into segments of this many bytes, this far apart.
    pub slice: Option<(usize, Duration)>,
    /// Reset the connection once this many bytes crossed it (both directions).
    pub reset_after_bytes: Option<u64>,
    /// Reset the connection this long after it was accepted.
    pub reset_after: Option<Duration>,
    /// Accept, then forward nothing.
    pub blackhole: bool,
    /// Reset every new connection at once.
    pub refuse: bool,
    /// Close the connection gracefully (FIN both ways) once this many bytes crossed it
    /// (both directions) — a limit on the data a connection may carry.
    pub limit_bytes: Option<u64>,
    /// When one side closes, wait this long before passing the close on (the peer keeps a
    /// half-dead connection meanwhile).
    pub slow_close: Option<Duration>,
    /// Real packet loss, per packet and direction (kernel backend only: a user-space TCP
    /// proxy cannot lose packets).
    pub loss: Option<f64>,
}

impl Impairment {
    /// A one-line human description, e.g. `latency 40ms ± 10ms (normal), 1000000 B/s`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.latency.is_zero() || !self.jitter.is_zero() {
            let d = |x: Duration| humantime::format_duration(x).to_string();
            parts.push(
                format!("latency {} ± {} ({:?})", d(self.latency), d(self.jitter), self.distribution).to_lowercase(),
            );
        }
        if let Some(b) = self.bandwidth {
            parts.push(format!("{b} B/s per connection and direction"));
        }
        if let Some((s, gap)) = self.slice {
            parts.push(format!("slices of {s} B every {}", humantime::format_duration(gap)));
        }
        if let Some(n) = self.reset_after_bytes {
            parts.push(format!("reset after {n} B"));
        }
        if let Some(t) = self.reset_after {
            parts.push(format!("reset after {}", humantime::format_duration(t)));
        }
        if self.blackhole {
            parts.push("blackhole".into());
        }
        if self.refuse {
            parts.push("refuse".into());
        }
        if let Some(n) = self.limit_bytes {
            parts.push(format!("close after {n} B"));
        }
        if let Some(t) = self.slow_close {
            parts.push(format!("close delayed {}", humantime::format_duration(t)));
        }
        if let Some(p) = self.loss {
            parts.push(format!("packet loss {:.2}%", p * 100.0));
        }
        if parts.is_empty() { "no impairment".into() } else { parts.join(", ") }
    }
}

/// Draws per-chunk delays from a seeded generator.
#[derive(Debug)]
pub struct Sampler {
    rng: StdRng,
}

impl Sampler {
    /// A sampler seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Sampler { rng: StdRng::seed_from_u64(seed) }
    }

    /// The next delay under `imp`.
    pub fn sample(&mut self, imp: &Impairment) -> Duration {
        let (latency, jitter) = (imp.latency.as_secs_f64(), imp.jitter.as_secs_f64());
        if jitter == 0.0 {
            return imp.latency;
        }
        let d = match imp.distribution {
            Distribution::Uniform => latency + self.rng.gen_range(-jitter..=jitter),
            Distribution::Normal => {
                // Box-Muller.
                let (u1, u2): (f64, f64) = (self.rng.gen_range(f64::EPSILON..1.0), self.rng.r#gen());
                latency + jitter * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
            }
            Distribution::Pareto => {
                // Pareto shape 2 shifted to start at 0: mean `jitter`, infinite variance.
                let u: f64 = self.rng.gen_range(f64::EPSILON..1.0);
                latency + jitter * (u.powf(-0.5) - 1.0)
            }
        };
        Duration::from_secs_f64(d.max(0.0))
    }
}

/// The impairment in force, switchable while connections run: per-chunk effects (delay,
/// bandwidth, slicing, byte resets) follow a switch at once; per-connection ones (refuse,
/// blackhole, timed reset) apply to connections accepted after it.
#[derive(Debug, Default)]
pub struct Switch(std::sync::RwLock<Arc<Impairment>>);

impl Switch {
    /// A switch set to `imp`.
    pub fn new(imp: Impairment) -> Self {
        Switch(std::sync::RwLock::new(Arc::new(imp)))
    }
    /// Puts `imp` in force.
    pub fn set(&self, imp: Impairment) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(imp);
    }
    /// The impairment in force.
    pub fn get(&self) -> Arc<Impairment> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Parses a bandwidth: `100kbit`, `8mbit`, `1gbit`, `500kB`, `2MB` (per second); returns bytes/s.
pub fn parse_bandwidth(s: &str) -> Result<u64, String> {
    let t = s.trim().trim_end_matches("/s");
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("`{s}` is not a bandwidth: write e.g. `8mbit` or `1MB`"))?;
    let bytes = match unit.trim().to_ascii_lowercase().as_str() {
        "bit" | "bps" => n / 8.0,
        "kbit" => n * 1e3 / 8.0,
        "mbit" => n * 1e6 / 8.0,
        "gbit" => n * 1e9 / 8.0,
        "b" => n,
        "kb" => n * 1e3,
        "mb" => n * 1e6,
        "gb" => n * 1e9,
        u => return Err(format!("`{s}`: unknown unit `{u}` (use bit, kbit, mbit, gbit, B, kB, MB, GB)")),
    };
    if bytes < 1.0 {
        return Err(format!("`{s}`: a bandwidth must be at least 1 byte per second"));
    }
    Ok(bytes as u64)
}

/// Starts a link on `listener` forwarding to `upstream` under the impairment in `switch`.
pub fn spawn(
    listener: TcpListener,
    upstream: SocketAddr,
    switch: Arc<Switch>,
) -> std::io::Result<crate::serve::Server> {
    let conn_seq = Arc::new(AtomicU64::new(0));
    crate::serve::spawn(listener, move |client, stop| {
        let (switch, n) = (switch.clone(), conn_seq.fetch_add(1, Ordering::Relaxed));
        async move { connection(client, upstream, switch, n, stop).await }
    })
}

async fn connection(client: TcpStream, upstream: SocketAddr, switch: Arc<Switch>, n: u64, stop: CancellationToken) {
    let imp = switch.get();
    if imp.refuse {
        let _ = client.set_zero_linger();
        return;
    }
    if imp.blackhole {
        // Hold the connection open and swallow what the client sends.
        let mut client = client;
        let mut sink = [0u8; 4096];
        loop {
            tokio::select! {
                r = client.read(&mut sink) => if matches!(r, Ok(0) | Err(_)) { return },
                _ = stop.cancelled() => return,
            }
        }
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        let _ = client.set_zero_linger();
        return;
    };
    let _ = server.set_nodelay(true);
    if imp.reset_after_bytes.is_some() || imp.reset_after.is_some() {
        // Closing these sockets must send RST, and the halves are held by the pumps until
        // they are dropped: arm SO_LINGER 0 now. (A connection that ends before its reset
        // is due therefore also ends with RST.)
        let _ = client.set_zero_linger();
        let _ = server.set_zero_linger();
    }
    // Borrowed halves: dropping them does not shut the write side down (an owned write half
    // sends FIN on drop), so a reset is a bare RST, never FIN-then-RST.
    let (mut client, mut server) = (client, server);
    let (crd, cwr) = client.split();
    let (srd, swr) = server.split();
    let moved = Arc::new(AtomicU64::new(0));
    let reset = Arc::new(Notify::new());
    let seed = imp.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(n * 2);
    let closed = Arc::new(Notify::new());
    let up = pump(crd, swr, switch.clone(), Sampler::new(seed), moved.clone(), reset.clone(), closed.clone());
    let down = pump(srd, cwr, switch, Sampler::new(seed + 1), moved, reset.clone(), closed.clone());
    let deadline = async {
        match imp.reset_after {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(up, down, deadline);
    let (mut up_done, mut down_done) = (false, false);
    // Returning drops both pumps and with them the sockets: a reset when one is due.
    while !(up_done && down_done) {
        tokio::select! {
            _ = &mut up, if !up_done => up_done = true,
            _ = &mut down, if !down_done => down_done = true,
            _ = reset.notified() => return,
            _ = closed.notified() => {
                // Graceful end of allowance: the other direction is shut down too.
                return;
            }
            _ = &mut deadline => return,
            _ = stop.cancelled() => return,
        }
    }
}

/// Moves bytes one way with the impairments until EOF or a reset is due.
async fn pump(
    mut rd: ReadHalf<'_>,
    mut wr: WriteHalf<'_>,
    switch: Arc<Switch>,
    mut sampler: Sampler,
    moved: Arc<AtomicU64>,
    reset: Arc<Notify>,
    closed: Arc<Notify>,
) {
    let (tx, mut rx) = mpsc::channel::<(Instant, bytes::Bytes)>(256);
    let reader = async {
        let mut last_due = Instant::now();
        // One growing buffer; each chunk is split off it, so a read neither allocates nor
        // zeroes a fresh buffer.
        let mut buf = bytes::BytesMut::with_capacity(64 * 1024);
        loop {
            if buf.capacity() - buf.len() < 4096 {
                buf.reserve(64 * 1024);
            }
            match rd.read_buf(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let chunk = buf.split().freeze();
            let due = (Instant::now() + sampler.sample(&switch.get())).max(last_due);
            last_due = due;
            if tx.send((due, chunk)).await.is_err() {
                break;
            }
        }
        drop(tx);
    };
    let writer = async {
        let mut next_free = Instant::now();
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due.into()).await;
            let imp = switch.get();
            if imp.refuse {
                // Switched to refusing: established connections are reset too.
                let _ = wr.as_ref().set_zero_linger();
                reset.notify_one();
                return;
            }
            if imp.blackhole {
                // Switched to a blackhole: what crosses an established connection vanishes.
                continue;
            }
            let step = imp.slice.map_or(chunk.len(), |(s, _)| s.max(1));
            for seg in chunk.chunks(step) {
                if let Some(bw) = imp.bandwidth {
                    tokio::time::sleep_until(next_free.max(Instant::now()).into()).await;
                    next_free = next_free.max(Instant::now()) + Duration::from_secs_f64(seg.len() as f64 / bw as f64);
                }
                if wr.write_all(seg).await.is_err() {
                    return;
                }
                let total = moved.fetch_add(seg.len() as u64, Ordering::AcqRel) + seg.len() as u64;
                if imp.reset_after_bytes.is_some_and(|limit| total >= limit) {
                    reset.notify_one();
                    return;
                }
                if imp.limit_bytes.is_some_and(|limit| total >= limit) {
                    // Out of allowance: a graceful close, both ways.
                    let _ = wr.shutdown().await;
                    closed.notify_one();
                    return;
                }
                if let Some((_, gap)) = imp.slice {
                    tokio::time::sleep(gap).await;
                }
            }
        }
        if let Some(t) = switch.get().slow_close {
            tokio::time::sleep(t).await;
        }
        let _ = wr.shutdown().await;
    };
    tokio::join!(reader, writer);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mean(imp: &Impairment) -> (f64, f64) {
        let mut s = Sampler::new(7);
        let xs: Vec<f64> = (0..20_000).map(|_| s.sample(imp).as_secs_f64() * 1000.0).collect();
        (xs.iter().sum::<f64>() / xs.len() as f64, xs.iter().cloned().fold(f64::MAX, f64::min))
    }

    #[test]
    fn samplers_have_the_configured_centre_and_shape() {
        let base =
            Impairment { latency: Duration::from_millis(50), jitter: Duration::from_millis(10), ..Default::default() };
        let (m, min) = mean(&base);
        assert!((m - 50.0).abs() < 0.5 && min >= 40.0, "uniform mean {m} min {min}");
        let (m, _) = mean(&Impairment { distribution: Distribution::Normal, ..base.clone() });
        assert!((m - 50.0).abs() < 0.5, "normal mean {m}");
        let (m, min) = mean(&Impairment { distribution: Distribution::Pareto, ..base.clone() });
        // Infinite variance: the sample mean converges slowly, so the bound is loose.
        assert!(min >= 50.0 && (m - 60.0).abs() < 5.0, "pareto mean {m} min {min}");
        // Same seed, same delays.
        let (mut a, mut b) = (Sampler::new(3), Sampler::new(3));
        assert!((0..100).all(|_| a.sample(&base) == b.sample(&base)));
    }

    #[test]
    fn bandwidths_parse_in_bits_or_bytes() {
        assert_eq!(parse_bandwidth("8mbit"), Ok(1_000_000));
        assert_eq!(parse_bandwidth("500kB"), Ok(500_000));
        assert_eq!(parse_bandwidth("1MB/s"), Ok(1_000_000));
        assert!(parse_bandwidth("fast").is_err());
        assert!(parse_bandwidth("3 parsecs").is_err());
    }
}
