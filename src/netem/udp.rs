//! The UDP impairment link (for QUIC / HTTP/3): a datagram proxy that loses, delays,
//! duplicates and reorders **each datagram**, in each direction independently.
//!
//! Units, precisely: `loss` is a per-datagram probability (Bernoulli), or a two-state
//! Gilbert-Elliott chain stepped once per datagram (bursts: `p` = P(good → bad),
//! `r` = P(bad → good), and a loss probability in each state); `latency` + `jitter` delay each
//! datagram (same samplers as the TCP link); `duplicate` sends a datagram twice with that
//! probability; `reorder` holds a datagram back by `reorder_gap` with that probability, so
//! the ones after it overtake it. Unlike the TCP link, datagrams are *not* kept in order.
//! Flows are keyed by the client's address: each gets its own socket towards the upstream,
//! its own seeded generators per direction, and ends after `IDLE` without traffic.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Impairment, Sampler};

/// A flow without traffic this long is forgotten.
const IDLE: Duration = Duration::from_secs(60);
/// Largest datagram carried.
const MAX_DATAGRAM: usize = 65_535;

/// How datagrams are lost.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Loss {
    /// Each datagram independently with this probability.
    Bernoulli(f64),
    /// Gilbert-Elliott: a good and a bad state, stepped once per datagram.
    GilbertElliott {
        /// P(good → bad) per datagram.
        p: f64,
        /// P(bad → good) per datagram.
        r: f64,
        /// Loss probability in the good state.
        good: f64,
        /// Loss probability in the bad state.
        bad: f64,
    },
}

impl Loss {
    /// The long-run loss ratio.
    pub fn mean(&self) -> f64 {
        match *self {
            Loss::Bernoulli(p) => p,
            Loss::GilbertElliott { p, r, good, bad } => {
                if p + r == 0.0 {
                    good
                } else {
                    (r * good + p * bad) / (p + r)
                }
            }
        }
    }

    /// Parses `2%` / `0.02` (Bernoulli) or `ge:P,R[,BAD[,GOOD]]` (Gilbert-Elliott; BAD
    /// defaults to 100 %, GOOD to 0 %). Probabilities as fractions or percentages.
    pub fn parse(s: &str) -> Result<Loss, String> {
        let prob = |x: &str| -> Result<f64, String> {
            let x = x.trim();
            let v = match x.strip_suffix('%') {
                Some(p) => p.trim().parse::<f64>().map(|v| v / 100.0),
                None => x.parse::<f64>(),
            }
            .map_err(|_| format!("`{x}` is not a probability: write e.g. `2%` or `0.02`"))?;
            if (0.0..=1.0).contains(&v) { Ok(v) } else { Err(format!("`{x}` is not between 0 and 100%")) }
        };
        match s.strip_prefix("ge:") {
            None => Ok(Loss::Bernoulli(prob(s)?)),
            Some(rest) => {
                let parts: Vec<&str> = rest.split(',').collect();
                if !(2..=4).contains(&parts.len()) {
                    return Err(format!("`{s}`: Gilbert-Elliott loss is `ge:P,R[,BAD[,GOOD]]`, e.g. `ge:1%,30%`"));
                }
                Ok(Loss::GilbertElliott {
                    p: prob(parts[0])?,
                    r: prob(parts[1])?,
                    bad: parts.get(2).map_or(Ok(1.0), |x| prob(x))?,
                    good: parts.get(3).map_or(Ok(0.0), |x| prob(x))?,
                })
            }
        }
    }
}

/// What the UDP link does to each datagram.
#[derive(Debug, Clone, Default)]
pub struct UdpImpairment {
    /// Delay and its spread (the TCP link's latency, jitter, distribution and seed).
    pub delay: Impairment,
    /// Loss model.
    pub loss: Option<Loss>,
    /// Probability of sending a datagram twice.
    pub duplicate: f64,
    /// Probability of holding a datagram back by `reorder_gap`.
    pub reorder: f64,
    /// How far a reordered datagram is held back.
    pub reorder_gap: Duration,
}

impl UdpImpairment {
    /// A one-line human description.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        let base = self.delay.describe();
        if base != "no impairment" {
            parts.push(base);
        }
        match self.loss {
            Some(Loss::Bernoulli(p)) => parts.push(format!("loss {:.2}%", p * 100.0)),
            Some(l @ Loss::GilbertElliott { p, r, .. }) => parts.push(format!(
                "bursty loss (Gilbert-Elliott p {:.2}%, r {:.2}%, mean {:.2}%)",
                p * 100.0,
                r * 100.0,
                l.mean() * 100.0
            )),
            None => {}
        }
        if self.duplicate > 0.0 {
            parts.push(format!("duplicate {:.2}%", self.duplicate * 100.0));
        }
        if self.reorder > 0.0 {
            parts.push(format!(
                "reorder {:.2}% (held back {})",
                self.reorder * 100.0,
                humantime::format_duration(self.reorder_gap)
            ));
        }
        if parts.is_empty() { "no impairment".into() } else { parts.join(", ") }
    }
}

/// The per-datagram decisions of one direction of one flow.
#[derive(Debug)]
pub struct Fate {
    rng: StdRng,
    delay: Sampler,
    bad: bool,
}

impl Fate {
    /// Decisions seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Fate { rng: StdRng::seed_from_u64(seed), delay: Sampler::new(seed ^ 0x5bd1_e995), bad: false }
    }

    /// Whether the next datagram is lost (steps the loss chain).
    pub fn lost(&mut self, loss: Option<Loss>) -> bool {
        match loss {
            None => false,
            Some(Loss::Bernoulli(p)) => self.rng.r#gen::<f64>() < p,
            Some(Loss::GilbertElliott { p, r, good, bad }) => {
                let flip = self.rng.r#gen::<f64>();
                self.bad = if self.bad { flip >= r } else { flip < p };
                self.rng.r#gen::<f64>() < if self.bad { bad } else { good }
            }
        }
    }

    /// The fate of the next datagram under `imp`.
    pub fn decide(&mut self, imp: &UdpImpairment) -> Deliveries {
        let mut out = Deliveries::default();
        if self.lost(imp.loss) {
            return out;
        }
        let mut d = self.delay.sample(&imp.delay);
        if imp.reorder > 0.0 && self.rng.r#gen::<f64>() < imp.reorder {
            d += imp.reorder_gap;
        }
        out.push(d);
        if imp.duplicate > 0.0 && self.rng.r#gen::<f64>() < imp.duplicate {
            out.push(d);
        }
        out
    }
}

/// What becomes of one datagram: delivered after each of these delays — none (lost), one,
/// or two (duplicated). Never allocates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Deliveries {
    delays: [Duration; 2],
    len: usize,
}

impl Deliveries {
    fn push(&mut self, d: Duration) {
        if self.len < 2 {
            self.delays[self.len] = d;
            self.len += 1;
        }
    }
    /// The delays.
    pub fn as_slice(&self) -> &[Duration] {
        &self.delays[..self.len]
    }
}

/// Counters of a running UDP link.
#[derive(Debug, Default)]
pub struct UdpStats {
    /// Datagrams read (both directions).
    pub received: AtomicU64,
    /// Datagrams dropped by the loss model.
    pub lost: AtomicU64,
    /// Datagrams written (duplicates included).
    pub sent: AtomicU64,
}

/// A running UDP link.
pub struct UdpLink {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its counters.
    pub stats: Arc<UdpStats>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl UdpLink {
    /// Stops the link and its flows.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// Where a UDP link reads its impairment.
#[derive(Debug, Clone)]
enum Source {
    Fixed(Arc<UdpImpairment>),
    /// A run's switchable condition (the TCP impairment read per datagram: delay and jitter,
    /// `loss`, and `blackhole`/`refuse` as total loss).
    Switched(Arc<super::Switch>),
}

impl UdpImpairment {
    /// The datagram reading of a link condition.
    pub fn from_condition(imp: &Impairment) -> Self {
        let loss = if imp.blackhole || imp.refuse { Some(1.0) } else { imp.loss };
        UdpImpairment { delay: imp.clone(), loss: loss.map(Loss::Bernoulli), ..Default::default() }
    }
}

/// Per-flow view of a [`Source`], converted only when the condition changes.
struct Current {
    source: Source,
    seen: Option<Arc<Impairment>>,
    imp: Arc<UdpImpairment>,
}

impl Current {
    fn new(source: Source) -> Self {
        let imp = match &source {
            Source::Fixed(i) => i.clone(),
            Source::Switched(_) => Arc::new(UdpImpairment::default()),
        };
        Current { source, seen: None, imp }
    }

    fn get(&mut self) -> Arc<UdpImpairment> {
        if let Source::Switched(sw) = &self.source {
            let now = sw.get();
            if self.seen.as_ref().is_none_or(|s| !Arc::ptr_eq(s, &now)) {
                self.imp = Arc::new(UdpImpairment::from_condition(&now));
                self.seen = Some(now);
            }
        }
        self.imp.clone()
    }
}

/// Starts a UDP link on `socket` forwarding every client's datagrams to `upstream`.
pub fn spawn_udp(socket: UdpSocket, upstream: SocketAddr, imp: UdpImpairment) -> std::io::Result<UdpLink> {
    spawn_source(socket, upstream, Source::Fixed(Arc::new(imp)))
}

/// Starts a UDP link whose impairment follows `switch` (a run's client link condition).
pub fn spawn_switched(socket: UdpSocket, upstream: SocketAddr, switch: Arc<super::Switch>) -> std::io::Result<UdpLink> {
    spawn_source(socket, upstream, Source::Switched(switch))
}

fn spawn_source(socket: UdpSocket, upstream: SocketAddr, source: Source) -> std::io::Result<UdpLink> {
    let addr = socket.local_addr()?;
    let stop = CancellationToken::new();
    let stats = Arc::new(UdpStats::default());
    let task = tokio::spawn(serve(Arc::new(socket), upstream, source, stats.clone(), stop.clone()));
    Ok(UdpLink { addr, stats, stop, task })
}

async fn serve(
    front: Arc<UdpSocket>,
    upstream: SocketAddr,
    source: Source,
    stats: Arc<UdpStats>,
    stop: CancellationToken,
) {
    let mut flows: HashMap<SocketAddr, (mpsc::Sender<Bytes>, Arc<AtomicU64>)> = HashMap::new();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut n_flows = 0u64;
    let epoch = Instant::now();
    // The front socket's writer: datagrams towards clients, in due order.
    let (to_clients, back) = mpsc::channel::<(Instant, SocketAddr, Bytes)>(4096);
    tokio::spawn(deliver(back, front.clone(), stats.clone(), stop.clone()));
    loop {
        let (n, from) = tokio::select! {
            r = front.recv_from(&mut buf) => match r { Ok(x) => x, Err(_) => continue },
            _ = stop.cancelled() => return,
        };
        let now_ms = u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        if flows.len() > 1024 {
            let idle = u64::try_from(IDLE.as_millis()).unwrap_or(u64::MAX);
            flows.retain(|_, (tx, seen)| !tx.is_closed() && now_ms - seen.load(Ordering::Relaxed).min(now_ms) < idle);
        }
        let datagram = Bytes::copy_from_slice(&buf[..n]);
        let entry = match flows.get(&from) {
            Some((tx, _)) if !tx.is_closed() => flows.get(&from),
            _ => {
                let Ok(back) = UdpSocket::bind(if upstream.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }).await else {
                    continue;
                };
                if back.connect(upstream).await.is_err() {
                    continue;
                }
                let (tx, rx) = mpsc::channel::<Bytes>(4096);
                let seen = Arc::new(AtomicU64::new(now_ms));
                let seed = Current::new(source.clone())
                    .get()
                    .delay
                    .seed
                    .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                    .wrapping_add(n_flows * 2);
                n_flows += 1;
                tokio::spawn(flow(
                    Arc::new(back),
                    rx,
                    from,
                    to_clients.clone(),
                    source.clone(),
                    stats.clone(),
                    seed,
                    stop.clone(),
                ));
                flows.insert(from, (tx, seen));
                flows.get(&from)
            }
        };
        if let Some((tx, seen)) = entry {
            seen.store(now_ms, Ordering::Relaxed);
            let _ = tx.try_send(datagram);
        }
    }
}

/// One client flow: client → upstream through its own socket, replies back to the front.
#[allow(clippy::too_many_arguments)]
async fn flow(
    back: Arc<UdpSocket>,
    mut from_client: mpsc::Receiver<Bytes>,
    client: SocketAddr,
    to_clients: mpsc::Sender<(Instant, SocketAddr, Bytes)>,
    source: Source,
    stats: Arc<UdpStats>,
    seed: u64,
    stop: CancellationToken,
) {
    let (mut up_fate, mut down_fate) = (Fate::new(seed), Fate::new(seed + 1));
    let mut current = Current::new(source);
    let mut queue: BinaryHeap<Reverse<(Instant, u64, Bytes)>> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut last = Instant::now();
    loop {
        let next_due = queue.peek().map(|Reverse((t, _, _))| *t);
        tokio::select! {
            d = from_client.recv() => {
                let Some(d) = d else { return };
                last = Instant::now();
                stats.received.fetch_add(1, Ordering::Relaxed);
                let fate = up_fate.decide(&current.get());
                if fate.as_slice().is_empty() {
                    stats.lost.fetch_add(1, Ordering::Relaxed);
                }
                for delay in fate.as_slice() {
                    seq += 1;
                    queue.push(Reverse((last + *delay, seq, d.clone())));
                }
            }
            r = back.recv(&mut buf) => {
                let Ok(n) = r else { continue };
                last = Instant::now();
                stats.received.fetch_add(1, Ordering::Relaxed);
                let fate = down_fate.decide(&current.get());
                if fate.as_slice().is_empty() {
                    stats.lost.fetch_add(1, Ordering::Relaxed);
                }
                let d = Bytes::copy_from_slice(&buf[..n]);
                for delay in fate.as_slice() {
                    if to_clients.send((last + *delay, client, d.clone())).await.is_err() {
                        return;
                    }
                }
            }
            _ = sleep_until(next_due) => {
                let now = Instant::now();
                while let Some(Reverse((t, _, _))) = queue.peek() {
                    if *t > now {
                        break;
                    }
                    let Some(Reverse((_, _, d))) = queue.pop() else { break };
                    if back.send(&d).await.is_ok() {
                        stats.sent.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            _ = tokio::time::sleep_until((last + IDLE).into()), if queue.is_empty() => return,
            _ = stop.cancelled() => return,
        }
    }
}

/// Writes datagrams towards clients on the front socket when they are due.
async fn deliver(
    mut rx: mpsc::Receiver<(Instant, SocketAddr, Bytes)>,
    front: Arc<UdpSocket>,
    stats: Arc<UdpStats>,
    stop: CancellationToken,
) {
    let mut queue: BinaryHeap<Reverse<(Instant, u64, SocketAddr, Bytes)>> = BinaryHeap::new();
    let mut seq = 0u64;
    loop {
        let next_due = queue.peek().map(|Reverse((t, ..))| *t);
        tokio::select! {
            m = rx.recv() => {
                let Some((due, to, d)) = m else { return };
                seq += 1;
                queue.push(Reverse((due, seq, to, d)));
            }
            _ = sleep_until(next_due) => {
                let now = Instant::now();
                while let Some(Reverse((t, ..))) = queue.peek() {
                    if *t > now {
                        break;
                    }
                    let Some(Reverse((_, _, to, d))) = queue.pop() else { break };
                    if front.send_to(&d, to).await.is_ok() {
                        stats.sent.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            _ = stop.cancelled() => return,
        }
    }
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Loss ratio over `n` datagrams and the mean length of loss bursts.
    fn run(loss: Loss, n: usize) -> (f64, f64) {
        let mut f = Fate::new(42);
        let (mut lost, mut bursts, mut in_burst) = (0usize, 0usize, false);
        for _ in 0..n {
            let l = f.lost(Some(loss));
            lost += usize::from(l);
            if l && !in_burst {
                bursts += 1;
            }
            in_burst = l;
        }
        (lost as f64 / n as f64, if bursts == 0 { 0.0 } else { lost as f64 / bursts as f64 })
    }

    #[test]
    fn bernoulli_loss_is_within_a_binomial_bound() {
        let n = 100_000;
        for p in [0.01, 0.02, 0.1, 0.3] {
            let (ratio, burst) = run(Loss::Bernoulli(p), n);
            let sigma = (p * (1.0 - p) / n as f64).sqrt();
            assert!((ratio - p).abs() < 5.0 * sigma, "p {p}: measured {ratio}");
            // Independent losses: bursts average 1 / (1 − p).
            assert!((burst - 1.0 / (1.0 - p)).abs() < 0.1, "p {p}: burst {burst}");
        }
    }

    #[test]
    fn gilbert_elliott_loss_has_its_mean_and_comes_in_bursts() {
        let ge = Loss::GilbertElliott { p: 0.01, r: 0.25, good: 0.0, bad: 1.0 };
        let n = 400_000;
        let (ratio, burst) = run(ge, n);
        // Correlated losses: the bound is looser than a binomial one.
        assert!((ratio - ge.mean()).abs() < 0.2 * ge.mean(), "mean {} measured {ratio}", ge.mean());
        // Bad-state sojourns last 1 / r = 4 datagrams on average.
        assert!((burst - 4.0).abs() < 0.5, "burst {burst}");
    }

    #[test]
    fn loss_specs_parse() {
        assert_eq!(Loss::parse("2%"), Ok(Loss::Bernoulli(0.02)));
        assert_eq!(Loss::parse("0.5"), Ok(Loss::Bernoulli(0.5)));
        assert_eq!(Loss::parse("ge:1%,30%"), Ok(Loss::GilbertElliott { p: 0.01, r: 0.3, good: 0.0, bad: 1.0 }));
        assert!(Loss::parse("150%").is_err());
        assert!(Loss::parse("ge:1%").is_err());
        assert!(Loss::parse("lots").is_err());
    }

    #[test]
    fn duplicates_and_reorders_have_their_rates() {
        let imp =
            UdpImpairment { duplicate: 0.1, reorder: 0.2, reorder_gap: Duration::from_millis(7), ..Default::default() };
        let mut f = Fate::new(9);
        let n = 50_000;
        let (mut dup, mut held) = (0, 0);
        for _ in 0..n {
            let d = f.decide(&imp);
            dup += usize::from(d.as_slice().len() == 2);
            held += usize::from(d.as_slice()[0] == Duration::from_millis(7));
        }
        let bound = |p: f64| 5.0 * (p * (1.0 - p) / n as f64).sqrt();
        assert!((dup as f64 / n as f64 - 0.1).abs() < bound(0.1), "dup {dup}");
        assert!((held as f64 / n as f64 - 0.2).abs() < bound(0.2), "held {held}");
    }
}
