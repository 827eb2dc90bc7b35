//! Replay: a capture as a phase's traffic source. A producer thread streams the capture
//! ([`crate::capture`]), puts its exchanges back in time order within a bounded window,
//! decides each one ([`select`]), paces it ([`Pacer`]: recorded gaps, `max_gap`, `speed`,
//! `rate_cap`, `loop`) and hands it to the engine through a bounded queue — the engine's
//! [`Feed`]. Memory is bounded by the reorder window and the queue, not by the capture.
//! Everything not replayed is counted ([`Counters`]), never dropped silently.

pub mod compare;
pub mod convert;
pub mod select;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{HeaderName, HeaderValue};

use crate::capture::{self, Exchange, Waiting};
use crate::engine::{Fed, Feed, Next, Recorded};
use crate::proto::Endpoint;
use crate::scenario::{Replay, Scenario};

pub use select::{Decision, Unreplayable, decide};

/// Capture time within which out-of-order exchanges are put back in order.
const REORDER_NS: u64 = 10_000_000_000;
/// Exchanges held for reordering at most (beyond, the oldest goes out as it is).
const REORDER_MAX: usize = 65_536;
/// Requests prepared ahead of the engine.
const AHEAD: usize = 1024;

/// Intended offsets from recorded times.
#[derive(Debug, Clone)]
pub struct Pacer {
    speed: f64,
    max_gap: Option<Duration>,
    min_spacing: Duration,
    prev_ts: Option<u64>,
    offset: Duration,
    first: bool,
}

impl Pacer {
    /// Pacing of `r`.
    pub fn new(r: &Replay) -> Self {
        Pacer {
            speed: r.speed,
            max_gap: r.max_gap,
            min_spacing: r.rate_cap.map_or(Duration::ZERO, |c| Duration::from_secs_f64(1.0 / c)),
            prev_ts: None,
            offset: Duration::ZERO,
            first: true,
        }
    }

    /// The offset of a request recorded at `ts_ns` (non-decreasing calls).
    pub fn next(&mut self, ts_ns: u64) -> Duration {
        let gap = match self.prev_ts {
            None => Duration::ZERO,
            Some(p) => Duration::from_nanos(ts_ns.saturating_sub(p)),
        };
        let gap = self.max_gap.map_or(gap, |m| gap.min(m));
        let mut step = Duration::from_secs_f64(gap.as_secs_f64() / self.speed);
        if !self.first {
            step = step.max(self.min_spacing);
        }
        self.first = false;
        self.prev_ts = Some(ts_ns);
        self.offset += step;
        self.offset
    }

    /// The next loop starts after the last request (one spacing later).
    pub fn restart(&mut self) {
        self.prev_ts = None;
        self.offset += self.min_spacing.max(Duration::from_millis(1));
        self.first = true;
    }
}

/// What a replay counted.
#[derive(Debug, Default)]
pub struct Counters {
    /// Requests handed to the engine.
    pub replayed: AtomicU64,
    /// Requests `only:` did not select.
    pub filtered: AtomicU64,
    /// Requests outside `window:`.
    pub outside_window: AtomicU64,
    /// The phase's `duration:` or `requests:` bound was reached before the capture's end.
    pub bounded: AtomicBool,
    /// Recorded bodies were compared (`compare.body`).
    pub bodies: AtomicBool,
    /// Captured connection boundaries were kept (`connections: keep`).
    pub lanes: AtomicBool,
    /// Not replayed, by [`Unreplayable::index`].
    pub unreplayable: [AtomicU64; Unreplayable::ALL.len()],
    /// The capture's own counts (of the first pass).
    pub capture: Mutex<Option<capture::Stats>>,
    /// The capture could not be read to its end.
    pub error: Mutex<Option<String>>,
}

impl Counters {
    /// A plain copy.
    pub fn snapshot(&self) -> Summary {
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Summary {
            replayed: n(&self.replayed),
            filtered: n(&self.filtered),
            outside_window: n(&self.outside_window),
            stopped_at_bound: self.bounded.load(Ordering::Relaxed),
            bodies_compared: self.bodies.load(Ordering::Relaxed),
            connections: if self.lanes.load(Ordering::Relaxed) { "keep" } else { "spread" }.into(),
            unreplayable: Unreplayable::ALL
                .iter()
                .map(|u| (*u, n(&self.unreplayable[u.index()])))
                .filter(|(_, c)| *c > 0)
                .collect(),
            capture: self.capture.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            error: self.error.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        }
    }
}

/// What a replay counted, as plain data.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Summary {
    /// Requests sent (handed to the engine).
    pub replayed: u64,
    /// Not selected by `only:`.
    pub filtered: u64,
    /// Outside `window:`.
    pub outside_window: u64,
    /// The phase's `duration:` or `requests:` bound ended the replay before the capture did.
    pub stopped_at_bound: bool,
    /// Answers were compared by body too (noisy fields masked), not only by status.
    pub bodies_compared: bool,
    /// `keep`: each captured connection's requests went in order on one connection of their
    /// own; `spread`: over the identity's pooled connections.
    pub connections: String,
    /// Not replayable, by reason.
    pub unreplayable: BTreeMap<Unreplayable, u64>,
    /// Reading the capture.
    pub capture: Option<capture::Stats>,
    /// Why the capture was not read to its end.
    pub error: Option<String>,
}

/// The engine's side of a replay: a bounded queue filled by the producer thread, read in
/// order and routed to the generator threads — a lane always to the same one.
pub struct ReplayFeed {
    queue: Mutex<Routing>,
    stop: Arc<AtomicBool>,
    compare: crate::scenario::Compare,
    /// What the producer counted.
    pub counters: Arc<Counters>,
}

/// Requests taken from the producer's queue and held for the thread their lane goes to.
struct Routing {
    rx: Receiver<Fed>,
    held: Vec<VecDeque<Fed>>,
    /// The producer is done: once every held request is taken, so is the feed.
    ended: bool,
}

impl std::fmt::Debug for ReplayFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayFeed").finish_non_exhaustive()
    }
}

/// The generator thread lane `lane` goes to, of `shards`.
fn shard_of(lane: u64, shards: usize) -> usize {
    ((lane.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) % shards.max(1) as u64) as usize
}

impl Feed for ReplayFeed {
    fn next(&self, shard: usize, shards: usize) -> Next {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        if q.held.len() < shards {
            q.held.resize_with(shards, VecDeque::new);
        }
        if let Some(f) = q.held.get_mut(shard).and_then(VecDeque::pop_front) {
            return Next::Send(Box::new(f));
        }
        loop {
            if q.ended {
                // Over only when no thread has anything left: a phase ends once its feed is.
                return if q.held.iter().all(VecDeque::is_empty) { Next::Done } else { Next::Wait };
            }
            match q.rx.try_recv() {
                Ok(f) => {
                    let to = f.lane.map_or(shard, |l| shard_of(l, shards));
                    if to == shard {
                        return Next::Send(Box::new(f));
                    }
                    q.held[to].push_back(f);
                    if q.held[to].len() >= AHEAD {
                        // That thread is behind: let it catch up before reading further.
                        return Next::Wait;
                    }
                }
                Err(std::sync::mpsc::TryRecvError::Empty) => return Next::Wait,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => q.ended = true,
            }
        }
    }

    fn digest(&self, body: &[u8]) -> u64 {
        compare::digest(&self.compare, body)
    }
}

impl Drop for ReplayFeed {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// Credentials per identity member (`[identity][member]`): static headers and the minted
/// token, as a run sends them.
pub type Credentials = Vec<Vec<Vec<(HeaderName, HeaderValue)>>>;

/// What answers behind the gateway during a replay.
#[derive(Debug, Clone, Copy, Default)]
pub struct Upstream {
    /// gauntlet's oracle, in the recorded application's place: its bodies are not the
    /// application's, so `compare.body: auto` compares statuses only.
    pub oracle: bool,
}

/// Starts the producer of phase `phase` of `s` (a replay phase).
pub fn start(
    s: Arc<Scenario>,
    phase: usize,
    credentials: Arc<Credentials>,
    endpoint: Endpoint,
    ws: Arc<crate::proto::ws::Stats>,
    upstream: Upstream,
) -> Arc<ReplayFeed> {
    let (tx, rx) = std::sync::mpsc::sync_channel(AHEAD);
    let counters = Arc::new(Counters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let compare = s.phases.get(phase).and_then(|p| p.replay.as_ref()).map(|r| r.compare.clone()).unwrap_or_default();
    let feed = Arc::new(ReplayFeed {
        queue: Mutex::new(Routing { rx, held: Vec::new(), ended: false }),
        stop: stop.clone(),
        compare,
        counters,
    });
    let c = feed.counters.clone();
    let spawned = std::thread::Builder::new().name(format!("gauntlet-replay-{phase}")).spawn(move || {
        let Some(p) = s.phases.get(phase) else { return };
        if let Err(e) = produce(&s, p, upstream, &credentials, &endpoint, &ws, &tx, &c, &stop) {
            *c.error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
        }
    });
    if let Err(e) = spawned {
        *feed.counters.error.lock().unwrap_or_else(|p| p.into_inner()) = Some(format!("cannot start the replay: {e}"));
    }
    feed
}

/// Exchanges of a capture in time order (within [`REORDER_NS`] of capture time).
struct Ordered {
    reader: capture::Reader,
    heap: BinaryHeap<Reverse<Waiting>>,
    seq: u64,
    newest: u64,
    ended: bool,
}

impl Ordered {
    /// Opens `path`; `decrypt`: also its TLS connections, with a key log (`Some(Some(_))`)
    /// or the pcapng's own secrets (`Some(None)`).
    fn open(path: &Path, decrypt: Option<Option<&Path>>) -> Result<Self, capture::Error> {
        let mut reader = capture::Reader::open(path)?;
        if let Some(keylog) = decrypt {
            reader = reader.decrypting(keylog)?;
        }
        Ok(Ordered { reader, heap: BinaryHeap::new(), seq: 0, newest: 0, ended: false })
    }

    fn next(&mut self) -> Result<Option<Exchange>, capture::Error> {
        loop {
            if let Some(Reverse(Waiting(ts, _, _))) = self.heap.peek() {
                if self.ended || self.newest.saturating_sub(*ts) > REORDER_NS || self.heap.len() >= REORDER_MAX {
                    return Ok(self.heap.pop().map(|Reverse(Waiting(_, _, x))| *x));
                }
            } else if self.ended {
                return Ok(None);
            }
            match self.reader.next_exchange()? {
                Some(x) => {
                    self.newest = self.newest.max(x.ts_ns);
                    self.seq += 1;
                    self.heap.push(Reverse(Waiting(x.ts_ns, self.seq, Box::new(x))));
                }
                None => self.ended = true,
            }
        }
    }
}

/// Walks phase `r` of `s`: its capture in time order (every loop), windowed, decided, paced,
/// each sendable request prepared as credential `credentials` — and handed to `send` until
/// it returns false (stop), the phase's `duration`/`requests` bound is reached, or the
/// capture ends. Everything not sent is counted in `c`.
#[allow(clippy::too_many_arguments)]
fn walk(
    s: &Scenario,
    phase: &crate::scenario::Phase,
    upstream: Upstream,
    credentials: &Credentials,
    endpoint: &Endpoint,
    ws: &Arc<crate::proto::ws::Stats>,
    c: &Counters,
    mut send: impl FnMut(Fed, &Exchange) -> bool,
) -> Result<(), String> {
    let Some(r) = phase.replay.as_deref() else { return Err(format!("phase `{}` does not replay", phase.name)) };
    let slots = s.slots();
    let (max_offset, max_requests) = (phase.duration, phase.requests);
    let mut pacer = Pacer::new(r);
    let mut index = 0u64;
    let mut first_ts: Option<u64> = None;
    let mut reminted = Reminted::default();
    // An oracle upstream answers in the application's place: its bodies are not comparable.
    let bodies = r.compare.body.unwrap_or(!upstream.oracle);
    c.bodies.store(bodies, Ordering::Relaxed);
    c.lanes.store(r.keep_connections, Ordering::Relaxed);
    for pass in 0..r.loops {
        let mut ordered =
            Ordered::open(&r.capture, r.decrypt.as_ref().map(|k| k.as_deref())).map_err(|e| e.to_string())?;
        if pass > 0 {
            pacer.restart();
        }
        while let Some(x) = ordered.next().map_err(|e| format!("{e} ({index} requests replayed before it)"))? {
            let first = *first_ts.get_or_insert(x.ts_ns);
            let rel = Duration::from_nanos(x.ts_ns.saturating_sub(first));
            if rel < r.window.0 || r.window.1.is_some_and(|to| rel >= to) {
                c.outside_window.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let d = match decide(s, r, &x) {
                Decision::Filtered => {
                    c.filtered.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                Decision::Skip(u) => {
                    c.unreplayable[u.index()].fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                Decision::Send(d) => d,
            };
            let identity = d.identity;
            let members = credentials.get(identity).map_or(1, |m| m.len().max(1));
            let member = (index % members as u64) as usize;
            let mut creds = credentials.get(identity).and_then(|m| m.get(member)).cloned().unwrap_or_default();
            if !d.claims.is_empty() {
                match reminted.token(s, identity, member, &d.claims) {
                    Ok((name, value)) => {
                        creds.retain(|(n, _)| *n != name);
                        creds.push((name, value));
                    }
                    Err(e) => return Err(e),
                }
            }
            let slot = slots.get(identity).copied().unwrap_or(0) + member;
            let Some((check, mut request, status)) = select::prepare(*d, slot, &creds, endpoint, ws) else {
                c.unreplayable[Unreplayable::NotSendable.index()].fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let body = x.response.as_ref().filter(|_| bodies).and_then(|a| compare::recorded(&r.compare, a));
            request.keep_body = body.is_some();
            let recorded = status.map(|status| Recorded { status, body });
            // One lane per captured connection, loop and identity member: its requests go in
            // order on one connection of their own.
            let lane = r.keep_connections.then(|| lane(pass, x.conn, slot));
            let offset = pacer.next(x.ts_ns);
            // The phase's own bounds end the replay: nothing past them is read or sent.
            if max_offset.is_some_and(|d| offset >= d) || max_requests.is_some_and(|n| index >= n) {
                c.bounded.store(true, Ordering::Relaxed);
                return Ok(());
            }
            let step = Fed { index, offset, check, request, recorded, lane };
            index += 1;
            if !send(step, &x) {
                return Ok(());
            }
            c.replayed.fetch_add(1, Ordering::Relaxed);
        }
        if pass == 0 {
            *c.capture.lock().unwrap_or_else(|p| p.into_inner()) = Some(ordered.reader.stats());
        }
    }
    Ok(())
}

/// The lane of captured connection `conn` in pass `pass`, sent as identity slot `slot` (the
/// engine also keys lanes by identity, so a collision never mixes identities).
fn lane(pass: u32, conn: u64, slot: usize) -> u64 {
    (u64::from(pass) << 48) ^ ((slot as u64) << 36) ^ conn
}

/// Tokens re-minted with captured claims, one per (identity, member, claims), bounded.
#[derive(Default)]
struct Reminted {
    cache: std::collections::HashMap<(usize, usize, String), (HeaderName, HeaderValue)>,
}

impl Reminted {
    const MAX: usize = 4096;

    fn token(
        &mut self,
        s: &Scenario,
        identity: usize,
        member: usize,
        claims: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(HeaderName, HeaderValue), String> {
        let key = (identity, member, serde_json::Value::Object(claims.clone()).to_string());
        if let Some(t) = self.cache.get(&key) {
            return Ok(t.clone());
        }
        let id = &s.identities[identity];
        let Some(t) = &id.token else { return Err(format!("identity `{}` has no token to re-mint", id.name)) };
        let crate::scenario::TokenSource::Jwt(spec) = &t.source else {
            return Err(format!("identity `{}` has no JWT to re-mint", id.name));
        };
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        let raw = spec.mint_with(now, id.number(member), claims).map_err(|e| format!("identity `{}`: {e}", id.name))?;
        let value = if t.scheme.is_empty() { raw } else { format!("{} {raw}", t.scheme) };
        let hv = HeaderValue::from_str(&value)
            .map_err(|_| format!("identity `{}`: a re-minted token cannot be sent as a header", id.name))?;
        if self.cache.len() >= Self::MAX {
            self.cache.clear();
        }
        self.cache.insert(key, (t.header.clone(), hv.clone()));
        Ok((t.header.clone(), hv))
    }
}

#[allow(clippy::too_many_arguments)]
fn produce(
    s: &Scenario,
    phase: &crate::scenario::Phase,
    upstream: Upstream,
    credentials: &Credentials,
    endpoint: &Endpoint,
    ws: &Arc<crate::proto::ws::Stats>,
    tx: &SyncSender<Fed>,
    c: &Counters,
    stop: &AtomicBool,
) -> Result<(), String> {
    walk(s, phase, upstream, credentials, endpoint, ws, c, |mut fed, _| {
        // Bounded: wait for the engine, looking at the stop flag.
        loop {
            if stop.load(Ordering::Acquire) {
                return false;
            }
            match tx.try_send(fed) {
                Ok(()) => return true,
                Err(TrySendError::Full(f)) => {
                    fed = f;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(TrySendError::Disconnected(_)) => return false,
            }
        }
    })
}

/// What a replay phase would send, worked out without sending (`run --dry-run`).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DryRun {
    /// The phase.
    pub phase: String,
    /// Requests it would send.
    pub requests: u64,
    /// Its length at the chosen pace (the last request's intended offset).
    pub duration_s: f64,
    /// Requests per second of replay time.
    pub per_second: Vec<u64>,
    /// Requests per check (`RP-…`) that would count them.
    pub by_check: BTreeMap<String, u64>,
    /// Hosts and routes sent, most frequent first (at most 20 each).
    pub hosts: Vec<(String, u64)>,
    /// `METHOD path` (query cut).
    pub routes: Vec<(String, u64)>,
    /// What would not be sent, and the capture's counts.
    pub source: Summary,
}

/// Works out replay phase `phase` of `s` without sending anything.
pub fn dry_run(s: &Scenario, phase: usize) -> Result<DryRun, String> {
    let p = s.phases.get(phase).ok_or("no such phase")?;
    if p.replay.is_none() {
        return Err("not a replay phase".into());
    }
    // Credentials are not minted for a dry run: what is sent is counted, not signed.
    let credentials: Credentials = s.identities.iter().map(|i| vec![Vec::new(); i.members()]).collect();
    let endpoint =
        Endpoint { tls: s.target.tls, authority: s.target.authority.clone(), tagging: crate::proto::Tagging::Off };
    let c = Counters::default();
    let mut out = DryRun { phase: p.name.clone(), ..Default::default() };
    let (mut per_second, mut hosts, mut routes) =
        (BTreeMap::new(), BTreeMap::<String, u64>::new(), BTreeMap::<String, u64>::new());
    let mut last = Duration::ZERO;
    let ws = Arc::new(crate::proto::ws::Stats::default());
    let upstream = Upstream { oracle: s.oracle.is_some() };
    let walked = walk(s, p, upstream, &credentials, &endpoint, &ws, &c, |step, x| {
        out.requests += 1;
        last = last.max(step.offset);
        *per_second.entry(step.offset.as_secs()).or_insert(0u64) += 1;
        *out.by_check.entry(s.checks[step.check].id.clone()).or_default() += 1;
        let host = step.request.authority().to_string();
        if hosts.len() < MAX_ROUTES || hosts.contains_key(&host) {
            *hosts.entry(host).or_default() += 1;
        }
        let path = step.request.path.path().to_string();
        let route = format!("{} {path}", x.request.method);
        if routes.len() < MAX_ROUTES || routes.contains_key(&route) {
            *routes.entry(route).or_default() += 1;
        }
        true
    });
    if let Err(e) = walked {
        *c.error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
    }
    out.duration_s = last.as_secs_f64();
    let secs = per_second.keys().next_back().map_or(0, |l| l + 1);
    out.per_second = (0..secs).map(|s| per_second.get(&s).copied().unwrap_or(0)).collect();
    out.hosts = top(hosts);
    out.routes = top(routes);
    out.source = c.snapshot();
    Ok(out)
}

fn top(m: BTreeMap<String, u64>) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = m.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.truncate(20);
    v
}

impl DryRun {
    /// For humans.
    pub fn text(&self) -> String {
        use std::fmt::Write as _;
        let mut o = String::new();
        let peak = self.per_second.iter().copied().max().unwrap_or(0);
        let _ = writeln!(
            o,
            "replay phase `{}`: would send {} requests over {:.1}s (peak {peak} in one second)",
            self.phase, self.requests, self.duration_s
        );
        o.push_str(&rate_profile(&self.per_second));
        let _ = writeln!(o, "  to: {}", join_counts(&self.hosts));
        let _ = writeln!(o, "  routes: {}", join_counts(&self.routes));
        for (id, n) in &self.by_check {
            let _ = writeln!(o, "  {n:>8}  {id}");
        }
        let r = &self.source;
        let _ = writeln!(o, "  not sent: {} filtered, {} outside the window", r.filtered, r.outside_window);
        for (u, n) in &r.unreplayable {
            let _ = writeln!(o, "  {n:>8}  unreplayable: {}", u.describe());
        }
        if r.stopped_at_bound {
            let _ = writeln!(o, "  the phase's duration/requests bound ends the replay before the capture's end");
        }
        if let Some(e) = &r.error {
            let _ = writeln!(o, "  capture error: {e}");
        }
        if let Some(c) = &r.capture {
            o.push_str(&stats_text(c));
        }
        o
    }
}

/// A capture's profile without sending anything (`gauntlet replay inspect`, `--dry-run`).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Profile {
    /// Requests found.
    pub requests: u64,
    /// Recorded span from the first to the last request.
    pub span_s: f64,
    /// Requests per recorded second (index: seconds from the first request).
    pub per_second: Vec<u64>,
    /// Hosts, most frequent first (at most 20).
    pub hosts: Vec<(String, u64)>,
    /// `METHOD path` (query cut), most frequent first (at most 20).
    pub routes: Vec<(String, u64)>,
    /// Recorded statuses (0: no answer captured).
    pub statuses: BTreeMap<u16, u64>,
    /// Distinct routes seen.
    pub distinct_routes: u64,
    /// Subjects of the client certificates the capture shows (decrypted TLS connections),
    /// by requests, most frequent first (at most 20): what `cert_subject:` mappings match.
    pub client_certs: Vec<(String, u64)>,
    /// Reading the capture.
    pub capture: capture::Stats,
}

/// Routes kept while profiling (beyond, new ones are only counted).
const MAX_ROUTES: usize = 100_000;

/// Profiles the capture at `path`.
pub fn inspect(path: &Path, decrypt: Option<Option<&Path>>) -> Result<Profile, capture::Error> {
    let mut ordered = Ordered::open(path, decrypt)?;
    let mut p = Profile::default();
    let mut hosts: BTreeMap<String, u64> = BTreeMap::new();
    let mut routes: BTreeMap<String, u64> = BTreeMap::new();
    let (mut first, mut last) = (None, 0u64);
    let mut per_second: BTreeMap<u64, u64> = BTreeMap::new();
    let mut certs: BTreeMap<String, u64> = BTreeMap::new();
    while let Some(x) = ordered.next()? {
        p.requests += 1;
        if let Some(c) = &x.client_cert {
            if certs.len() < MAX_ROUTES || certs.contains_key(c) {
                *certs.entry(c.clone()).or_default() += 1;
            }
        }
        let f = *first.get_or_insert(x.ts_ns);
        last = last.max(x.ts_ns);
        *per_second.entry(x.ts_ns.saturating_sub(f) / 1_000_000_000).or_default() += 1;
        let host = x.request.host().unwrap_or_else(|| "(none)".into());
        if hosts.len() < MAX_ROUTES || hosts.contains_key(&host) {
            *hosts.entry(host).or_default() += 1;
        }
        let path = x.request.path();
        let route = format!("{} {}", x.request.method, path.split('?').next().unwrap_or(path));
        if routes.len() < MAX_ROUTES || routes.contains_key(&route) {
            *routes.entry(route).or_default() += 1;
        }
        *p.statuses.entry(x.response.as_ref().map_or(0, |r| r.status)).or_default() += 1;
    }
    p.span_s = first.map_or(0.0, |f| (last - f) as f64 / 1e9);
    let secs = per_second.keys().next_back().map_or(0, |l| l + 1);
    p.per_second = (0..secs).map(|s| per_second.get(&s).copied().unwrap_or(0)).collect();
    p.distinct_routes = routes.len() as u64;
    p.hosts = top(hosts);
    p.routes = top(routes);
    p.client_certs = top(certs);
    p.capture = ordered.reader.stats();
    Ok(p)
}

impl Profile {
    /// For humans.
    pub fn text(&self, path: &Path) -> String {
        use std::fmt::Write as _;
        let mut o = String::new();
        let _ = writeln!(o, "capture: {}", path.display());
        let peak = self.per_second.iter().copied().max().unwrap_or(0);
        // Over at least a second: a shorter capture's mean is not a rate it ever reached.
        let mean = self.requests as f64 / self.span_s.max(1.0);
        let _ = writeln!(
            o,
            "  {} requests over {:.1}s (mean {mean:.1}/s, peak {peak}/s in one recorded second)",
            self.requests, self.span_s
        );
        o.push_str(&rate_profile(&self.per_second));
        let _ = writeln!(o, "  hosts: {}", join_counts(&self.hosts));
        let _ = writeln!(o, "  routes ({} distinct): {}", self.distinct_routes, join_counts(&self.routes));
        if !self.client_certs.is_empty() {
            let _ = writeln!(o, "  client certificates: {}", join_counts(&self.client_certs));
        }
        let st: Vec<String> = self
            .statuses
            .iter()
            .map(|(s, n)| if *s == 0 { format!("no answer {n}") } else { format!("{s} {n}") })
            .collect();
        let _ = writeln!(o, "  recorded answers: {}", st.join(", "));
        o.push_str(&stats_text(&self.capture));
        o
    }
}

/// Requests per second folded into at most ten buckets, as one line (empty when none).
fn rate_profile(per_second: &[u64]) -> String {
    if per_second.is_empty() {
        return String::new();
    }
    let per = per_second.len().div_ceil(10.min(per_second.len()));
    let line: Vec<String> = per_second.chunks(per).map(|c| c.iter().sum::<u64>().to_string()).collect();
    format!("  rate profile ({per}s buckets): {}\n", line.join(" "))
}

fn join_counts(v: &[(String, u64)]) -> String {
    v.iter().take(8).map(|(k, n)| format!("{k} ×{n}")).collect::<Vec<_>>().join(", ")
}

/// The capture's counts in words: everything that did not become an exchange, with why.
pub fn stats_text(s: &capture::Stats) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let (f, t, h) = (&s.frames, &s.tcp, &s.http);
    let _ = writeln!(
        o,
        "  read in clear: {} frames ({} bytes), {} TCP connections ({} caught mid-stream, {} h2c), {} requests ({} answered, {} over HTTP/2)",
        f.frames, f.bytes, t.flows, t.mid_stream, h.h2c_flows, h.requests, h.answered, h.h2_streams
    );
    let mut notes: Vec<String> = Vec::new();
    let mut note = |n: u64, what: &str| {
        if n > 0 {
            notes.push(format!("{n} {what}"));
        }
    };
    note(f.not_tcp, "frames not TCP");
    note(f.fragments, "IP fragments (not reassembled)");
    note(f.malformed, "frames that do not decode");
    note(f.truncated, "frames cut by the snap length");
    note(f.out_of_time_order, "records out of time order (sorted)");
    note(t.out_of_order, "segments out of order (reordered)");
    note(t.retransmitted, "retransmitted segments (dropped as repeats)");
    note(t.overlapping, "overlapping segments (trimmed)");
    note(t.gaps, "holes in streams");
    note(t.missing_bytes, "bytes missing from the capture");
    note(t.flows_over_limit, "connections over the tracking limit (not read)");
    note(h.incomplete, "messages cut by a hole or the end of the capture");
    note(h.unanswered, "requests without a captured answer");
    note(h.unpaired_after_gap, "requests left unpaired after a hole in the answers");
    note(h.orphan_responses, "answers without a request");
    note(h.skipped_bytes, "bytes skipped resynchronising");
    note(h.bodies_truncated, "request bodies over 1 MiB");
    note(h.websocket, "WebSocket sessions");
    note(h.h2_broken, "h2c connections whose reading stopped early (a hole or a malformed frame)");
    note(h.other_flows, "connections that are not HTTP");
    if let Some((n, why)) = &s.har_unread {
        notes.push(format!("{n} HAR entries that cannot be read (first: {why})"));
    }
    for (l, n) in &f.unknown_linktypes {
        notes.push(format!("{n} frames of link type {l} (not read)"));
    }
    if let Some(d) = &s.decrypted {
        let _ = writeln!(
            o,
            "  decrypted (tshark): {} TLS connections, {} requests ({} answered){}",
            d.connections,
            d.http.requests,
            d.http.answered,
            if d.over_limit > 0 {
                format!(", {} connections over the limit not read", d.over_limit)
            } else {
                String::new()
            }
        );
        let missed = d.seen.saturating_sub(d.connections + d.over_limit);
        if missed > 0 {
            notes.push(format!("{missed} TLS connections tshark did not find (not decrypted)"));
        }
        if d.unplaced > 0 {
            notes.push(format!(
                "{} decrypted connections tshark printed that could not be placed (not read)",
                d.unplaced
            ));
        }
    } else if h.tls_flows > 0 {
        let how = if f.decryption_secrets > 0 {
            "the capture embeds TLS secrets: add `decrypt: true` (or --decrypt) to read them with tshark"
        } else {
            "record with SSLKEYLOGFILE and give the key log as `keylog:` (or --keylog) to read them with tshark"
        };
        notes.push(format!("{} TLS connections (encrypted, not read: {how})", h.tls_flows));
    }
    if !notes.is_empty() {
        let _ = writeln!(o, "  not replayed as read: {}", notes.join("; "));
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replay(speed: f64, max_gap: Option<Duration>, rate_cap: Option<f64>) -> Replay {
        Replay {
            capture: "x".into(),
            decrypt: None,
            speed,
            max_gap,
            rate_cap,
            loops: 1,
            window: (Duration::ZERO, None),
            only: Default::default(),
            rewrite: Default::default(),
            identities: Vec::new(),
            unmapped: None,
            policy: Vec::new(),
            senders: Vec::new(),
            checks: Vec::new(),
            keep_connections: true,
            compare: Default::default(),
        }
    }

    fn fed(index: u64, lane: Option<u64>) -> Fed {
        let ep = Endpoint { tls: false, authority: "h:80".parse().unwrap(), tagging: crate::proto::Tagging::Off };
        let request =
            crate::proto::Prepared::new(0, http::Method::GET, "/", Default::default(), Default::default(), &ep)
                .unwrap();
        Fed { index, offset: Duration::ZERO, check: 0, request, recorded: None, lane }
    }

    fn take(f: &ReplayFeed, shard: usize) -> Option<u64> {
        match f.next(shard, 2) {
            Next::Send(x) => Some(x.index),
            Next::Wait => None,
            Next::Done => Some(u64::MAX),
        }
    }

    #[test]
    fn a_lane_always_goes_to_one_thread_in_order_and_the_feed_ends_only_when_every_thread_is_done() {
        let (tx, rx) = std::sync::mpsc::sync_channel(16);
        let feed = ReplayFeed {
            queue: Mutex::new(Routing { rx, held: Vec::new(), ended: false }),
            stop: Arc::new(AtomicBool::new(false)),
            compare: Default::default(),
            counters: Arc::default(),
        };
        let (a, b) = (0u64, (1..64).find(|l| shard_of(*l, 2) != shard_of(0, 2)).unwrap());
        let (sa, sb) = (shard_of(a, 2), shard_of(b, 2));
        for (i, lane) in [(0, a), (1, b), (2, a), (3, b)] {
            tx.send(fed(i, Some(lane))).unwrap();
        }
        tx.send(fed(4, None)).unwrap();
        drop(tx);
        // Thread `sa` reads past lane b's requests (held for thread `sb`) and gets its own.
        assert_eq!(take(&feed, sa), Some(0));
        assert_eq!(take(&feed, sa), Some(2));
        assert_eq!(take(&feed, sa), Some(4), "a request without a lane goes to whoever asks");
        // Lane b's requests wait for their thread: the feed is not over while they do.
        assert_eq!(take(&feed, sa), None, "not done while thread {sb} has requests left");
        assert_eq!(take(&feed, sb), Some(1));
        assert_eq!(take(&feed, sb), Some(3));
        assert_eq!(take(&feed, sa), Some(u64::MAX));
        assert_eq!(take(&feed, sb), Some(u64::MAX));
    }

    #[test]
    fn pacing_keeps_recorded_gaps_scaled_capped_and_spaced() {
        let ms = |m: u64| m * 1_000_000;
        let mut p = Pacer::new(&replay(1.0, None, None));
        let got: Vec<u128> = [0, 10, 10, 510].iter().map(|t| p.next(ms(*t)).as_millis()).collect();
        assert_eq!(got, [0, 10, 10, 510]);
        let mut p = Pacer::new(&replay(2.0, Some(Duration::from_millis(100)), None));
        let got: Vec<u128> = [0, 10, 510].iter().map(|t| p.next(ms(*t)).as_millis()).collect();
        assert_eq!(got, [0, 5, 55], "max_gap caps the idle gap before speed halves it");
        let mut p = Pacer::new(&replay(1.0, None, Some(100.0)));
        let got: Vec<u128> = [0, 0, 0, 100].iter().map(|t| p.next(ms(*t)).as_millis()).collect();
        assert_eq!(got, [0, 10, 20, 120], "rate_cap spaces simultaneous requests");
        p.restart();
        assert_eq!(p.next(ms(5000)).as_millis(), 130, "a loop starts one spacing after the last request");
    }
}
