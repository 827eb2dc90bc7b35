//! Runs a plan through one protocol: generator threads, workers, pacing, cancellation.
//!
//! Thread-per-core: each generator thread runs its own single-threaded tokio runtime with
//! its workers, connection pools and [`Recorder`], so the hot path shares nothing but one
//! atomic claim counter per phase. Open loop: a worker claims request *i*, sleeps until its
//! intended time, sends; latency is measured from the intended time, so a stalled gateway
//! (or a busy generator) shows up as latency, never as silently skipped sends.
//! Knows nothing about protocols beyond the [`Protocol`] trait, and nothing about YAML.

mod pool;

use std::cell::{Cell, RefCell};
use std::fmt::Write as _;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::conformance::{Broke, Expect, Outcome, ReplayClass, Verdict, classify_under};
use crate::metrics::{Cell as MetricCell, Delta, Dims, Key, Progress, Recorder, Sample, TICK};
use crate::plan::{Pace, Plan, Shard};
use crate::proto::{Prepared, Protocol, Tag};
use crate::timeline::Timeline;

use pool::{Lanes, Pools, Via};

/// How long in-flight requests may finish after a stop before they are abandoned.
pub const GRACE: Duration = Duration::from_secs(2);

/// tokio's timer has millisecond granularity and rounds up; waking this much early keeps
/// sends on schedule instead of adding up to a millisecond of lag to every request.
const TIMER_SLACK: Duration = Duration::from_millis(1);

/// How long past its duration a duration-bounded open-loop phase may still send requests
/// its schedule held (stragglers of a briefly descheduled generator); after that, every
/// request it did not send is counted `unsent` and the phase fails its rate.
pub const SEND_GRACE: Duration = Duration::from_millis(250);

/// What `next` is set to when a phase stops taking claims: every later claim is past any
/// schedule.
const CLOSED: u64 = u64::MAX / 2;

/// A phase's requests taken one at a time from outside the plan (a replayed capture), in
/// send order, each with its intended offset from the phase start.
pub trait Feed: Send + Sync + std::fmt::Debug {
    /// The next request for generator thread `shard` of `shards`. Requests of one lane
    /// ([`Fed::lane`]) always go to the same thread (its connection lives there), in order.
    fn next(&self, shard: usize, shards: usize) -> Next;
    /// The digest of a replayed answer's body, to compare with [`Recorded::body`] (noisy
    /// fields masked as the recorded body's were).
    fn digest(&self, body: &[u8]) -> u64;
}

/// What a [`Feed`] hands out.
#[derive(Debug)]
pub enum Next {
    /// Send this.
    Send(Box<Fed>),
    /// Nothing ready yet (the source is behind): ask again shortly.
    Wait,
    /// The feed is over.
    Done,
}

/// One fed request.
#[derive(Debug)]
pub struct Fed {
    /// Its index in the phase (in its tag's sequence field).
    pub index: u64,
    /// Intended send time, from the phase start.
    pub offset: Duration,
    /// The check counting it.
    pub check: usize,
    /// The request.
    pub request: Prepared,
    /// The recorded answer, when there is one.
    pub recorded: Option<Recorded>,
    /// The captured connection it belongs to, when the replay keeps connection boundaries:
    /// requests of one lane go in order on one connection of their own.
    pub lane: Option<u64>,
}

/// A recorded answer, to compare the replayed one with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    /// Its status.
    pub status: u16,
    /// Its body's digest ([`Feed::digest`]); `None`: bodies are not compared.
    pub body: Option<u64>,
}

/// How long a worker waits before asking a feed that had nothing ready again.
const FEED_POLL: Duration = Duration::from_millis(1);

/// Everything the engine needs besides the protocol.
#[derive(Debug, Clone)]
pub struct Job {
    /// The schedule.
    pub plan: Arc<Plan>,
    /// Prepared requests per check, one per credential it round-robins over.
    pub requests: Arc<Vec<Vec<Prepared>>>,
    /// One expectation per check.
    pub expects: Arc<Vec<Expect>>,
    /// Check ids (for tags).
    pub check_ids: Arc<Vec<String>>,
    /// Run id (for tags).
    pub run_id: String,
    /// Number of credentials (identities, each pool member counted).
    pub identities: usize,
    /// Generator threads.
    pub threads: usize,
    /// Most requests in flight in open-loop phases.
    pub max_in_flight: usize,
    /// Multiplexed connections per identity (whole generator).
    pub connections: usize,
    /// Hint that connections are multiplexed (h2), so workers wait for the first one.
    pub multiplexed: bool,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Counter dimensions.
    pub dims: Dims,
    /// While set, no new request is sent and the phase clock stands still.
    pub pause: Arc<AtomicBool>,
    /// The network timeline: told when each phase starts, read for the condition in force
    /// at each send, told of allow-class successes (recovery time).
    pub timeline: Arc<Timeline>,
    /// Per phase: the feed of a replay phase (`None` for synthetic phases).
    pub feeds: Arc<Vec<Option<Arc<dyn Feed>>>>,
    /// The part of every phase's schedule this generator sends ([`Shard::WHOLE`]: all of it).
    pub shard: Shard,
}

/// How the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finish {
    /// Stopped by the stop token before the plan completed.
    pub interrupted: bool,
}

struct PhaseState {
    /// The next request index to claim ([`CLOSED`] once the phase stopped sending).
    next: AtomicU64,
    completed: AtomicU64,
    all_done: Notify,
    /// Time this phase spent paused (ns): its schedule and deadline move by this much.
    shift_ns: AtomicU64,
    /// A replay phase's feed said it is over.
    feed_done: AtomicBool,
}

impl PhaseState {
    fn shift(&self) -> Duration {
        Duration::from_nanos(self.shift_ns.load(Ordering::Acquire))
    }
}

/// How often a paused generator looks at the pause switch again.
const PAUSE_POLL: Duration = Duration::from_millis(50);

struct Shared {
    phases: Vec<PhaseState>,
    started: Notify,
    progress: Arc<Progress>,
    stop: CancellationToken,
    hard: CancellationToken,
    paused: Arc<AtomicBool>,
}

impl Shared {
    /// Waits until phase `i` has a start instant; `None` if the run stopped first.
    async fn phase_start(&self, i: usize) -> Option<Instant> {
        loop {
            let notified = self.started.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(t) = self.progress.started(i) {
                return Some(t);
            }
            if self.stop.is_cancelled() {
                return None;
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = self.stop.cancelled() => return None,
            }
        }
    }
}

/// Runs the whole plan. Deltas go to `deltas` every tick; `stop` ends the run early.
pub async fn run<P: Protocol>(
    proto: Arc<P>,
    job: Job,
    progress: Arc<Progress>,
    deltas: mpsc::UnboundedSender<Delta>,
    stop: CancellationToken,
) -> Finish {
    let job = Arc::new(job);
    let shared = Arc::new(Shared {
        phases: job
            .plan
            .phases
            .iter()
            .map(|_| PhaseState {
                next: AtomicU64::new(0),
                completed: AtomicU64::new(0),
                all_done: Notify::new(),
                shift_ns: AtomicU64::new(0),
                feed_done: AtomicBool::new(false),
            })
            .collect(),
        started: Notify::new(),
        progress: progress.clone(),
        stop: stop.clone(),
        hard: CancellationToken::new(),
        paused: job.pause.clone(),
    });
    let users_max =
        job.plan.phases.iter().filter_map(|p| p.users()).map(|u| job.shard.share(u64::from(u))).max().unwrap_or(0)
            as usize;
    let workers = job.max_in_flight.max(users_max).max(1);
    let threads = job.threads.clamp(1, workers);

    let mut done = Vec::new();
    for t in 0..threads {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (proto, job, shared, deltas) = (proto.clone(), job.clone(), shared.clone(), deltas.clone());
        let ids: Vec<usize> = (t..workers).step_by(threads).collect();
        let spawned = std::thread::Builder::new().name(format!("gauntlet-gen-{t}")).spawn(move || {
            generator_thread(proto, job, shared, deltas, ids, (t, threads));
            let _ = tx.send(());
        });
        if spawned.is_ok() {
            done.push(rx);
        }
    }
    let unsent_tx = deltas.clone();
    drop(deltas);

    let (mut interrupted, cutoffs) = coordinate(&job, &shared, unsent_tx).await;
    let grace = |hard: CancellationToken| {
        tokio::spawn(async move {
            tokio::time::sleep(GRACE).await;
            hard.cancel();
        })
    };
    if interrupted {
        grace(shared.hard.clone());
    }
    // The last requests in flight after the schedule ended: a stop now gets the same grace
    // (not the requests' whole timeout).
    let drain = async {
        for rx in done {
            let _ = rx.await;
        }
    };
    tokio::pin!(drain);
    let mut drained = false;
    if !interrupted {
        tokio::select! {
            _ = &mut drain => drained = true,
            _ = stop.cancelled() => {
                interrupted = true;
                grace(shared.hard.clone());
            }
        }
    }
    if !drained {
        drain.await;
    }
    for c in cutoffs {
        let _ = c.await;
    }
    Finish { interrupted }
}

/// Stops a duration-bounded open-loop phase from sending at `cutoff` (its end plus
/// [`SEND_GRACE`]) and counts what its schedule held but nobody claimed as `unsent`, per
/// check, under the condition in force then. Claimed requests a worker finds past the
/// cutoff are counted by that worker.
async fn cut_off(job: Arc<Job>, shared: Arc<Shared>, i: usize, cutoff: Instant, deltas: mpsc::UnboundedSender<Delta>) {
    tokio::select! {
        _ = tokio::time::sleep_until(cutoff.into()) => {}
        _ = shared.stop.cancelled() => return,
    }
    let phase = &job.plan.phases[i];
    let claim = shared.phases[i].next.swap(CLOSED, Ordering::AcqRel).min(CLOSED);
    let claimed = job.shard.global(claim);
    let Some(planned) = phase.scheduled() else { return };
    if claimed >= planned {
        return;
    }
    let condition = job.timeline.condition();
    let mut d = Delta::default();
    for (check, n) in phase.checks_in_shard(claimed, planned, job.shard) {
        let mut cell = MetricCell::default();
        cell.counts.unsent = n;
        let key = Key { phase: i as u16, condition, check: check as u16 };
        d.cells.push((job.dims.index(key), cell));
    }
    let _ = deltas.send(d);
}

/// Starts each phase at the right instant and ends it; returns true if stopped early, and
/// the tasks that stop duration-bounded phases from sending past their grace.
async fn coordinate(
    job: &Arc<Job>,
    shared: &Arc<Shared>,
    deltas: mpsc::UnboundedSender<Delta>,
) -> (bool, Vec<tokio::task::JoinHandle<()>>) {
    let mut cutoffs = Vec::new();
    let mut start = shared.progress.run_start;
    for (i, phase) in job.plan.phases.iter().enumerate() {
        job.timeline.enter_phase(i);
        start = shared.progress.start(i, start);
        shared.started.notify_waiters();
        let deadline = phase.nominal_end().map(|d| start + d);
        let all_done = async {
            match (phase.pace, phase.requests) {
                // A replay phase is over once its feed is and every request it fed completed.
                (Pace::Replay, _) => loop {
                    let st = &shared.phases[i];
                    let notified = st.all_done.notified();
                    tokio::pin!(notified);
                    notified.as_mut().enable();
                    if st.feed_done.load(Ordering::Acquire)
                        && st.completed.load(Ordering::Acquire) >= st.next.load(Ordering::Acquire)
                    {
                        return;
                    }
                    notified.await;
                },
                (Pace::Closed { .. }, Some(n)) => loop {
                    let n = job.shard.share(n);
                    let notified = shared.phases[i].all_done.notified();
                    tokio::pin!(notified);
                    notified.as_mut().enable();
                    if shared.phases[i].completed.load(Ordering::Acquire) >= n {
                        return;
                    }
                    notified.await;
                },
                _ => std::future::pending::<()>().await,
            }
        };
        let state = &shared.phases[i];
        // Sleeps to the deadline, moved on by every pause while it lasts.
        let sleep = async {
            let Some(d) = deadline else { return std::future::pending::<Instant>().await };
            let mut paused_at: Option<Instant> = None;
            loop {
                let now = Instant::now();
                match (shared.paused.load(Ordering::Acquire), paused_at) {
                    (true, None) => paused_at = Some(now),
                    (false, Some(p)) => {
                        let ns = u64::try_from(now.duration_since(p).as_nanos()).unwrap_or(u64::MAX);
                        state.shift_ns.fetch_add(ns, Ordering::AcqRel);
                        paused_at = None;
                    }
                    _ => {}
                }
                let end = d + state.shift();
                if paused_at.is_none() && now >= end {
                    return end;
                }
                tokio::time::sleep_until(end.min(now + PAUSE_POLL).into()).await;
            }
        };
        let end = tokio::select! {
            end = sleep => end,
            _ = all_done => Instant::now(),
            _ = shared.stop.cancelled() => {
                shared.progress.end(i, Instant::now());
                return (true, cutoffs);
            }
        };
        shared.progress.end(i, end);
        if phase.cut_at_duration() {
            let (job, shared, deltas) = (job.clone(), shared.clone(), deltas.clone());
            cutoffs.push(tokio::spawn(cut_off(job, shared, i, end + SEND_GRACE, deltas)));
        }
        start = end;
    }
    (false, cutoffs)
}

fn generator_thread<P: Protocol>(
    proto: Arc<P>,
    job: Arc<Job>,
    shared: Arc<Shared>,
    deltas: mpsc::UnboundedSender<Delta>,
    workers: Vec<usize>,
    (thread, threads): (usize, usize),
) {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
        return;
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let rec = Rc::new(RefCell::new(Recorder::new(job.dims)));
        let cap = job.connections.div_ceil(threads).max(1);
        let pools = Rc::new(Pools::<P>::new(job.identities, cap, job.multiplexed));
        let lanes = Rc::new(Lanes::<P>::default());
        let mut handles = Vec::new();
        let mut states = Vec::new();
        for _ in &workers {
            states.push(Rc::new(Cell::new(State::Idle)));
        }
        let ticker = {
            let (rec, deltas, shared, states) = (rec.clone(), deltas.clone(), shared.clone(), states.clone());
            tokio::task::spawn_local(async move {
                let mut tick = tokio::time::interval(TICK);
                loop {
                    tick.tick().await;
                    let phase = shared.progress.current();
                    if shared.progress.started(phase).is_some() && shared.progress.ended(phase).is_none() {
                        // Every worker busy: the in-flight cap, not the generator, holds sends back.
                        let busy = states.iter().filter(|s| matches!(s.get(), State::InFlight(_))).count();
                        rec.borrow_mut().tick(phase, busy == states.len());
                    }
                    let d = rec.borrow_mut().take();
                    let _ = deltas.send(d);
                }
            })
        };
        for (seat, (w, state)) in workers.into_iter().zip(states.iter()).enumerate() {
            let state = state.clone();
            let ctx = WorkerCtx {
                proto: proto.clone(),
                job: job.clone(),
                shared: shared.clone(),
                rec: rec.clone(),
                pools: pools.clone(),
                lanes: lanes.clone(),
                shard: (thread, threads),
                state: state.clone(),
                seat,
            };
            handles.push(tokio::task::spawn_local(worker(ctx, w)));
        }
        // Cancellation is handled here, once per thread, so the hot path never registers
        // with a shared token: on stop, workers that are not sending are aborted at once;
        // the others get until the hard deadline, then are aborted and counted cancelled.
        let aborts: Vec<_> = handles.iter().map(|h| h.abort_handle()).collect();
        let supervisor = {
            let (shared, rec) = (shared.clone(), rec.clone());
            tokio::task::spawn_local(async move {
                shared.stop.cancelled().await;
                for (a, s) in aborts.iter().zip(&states) {
                    if !matches!(s.get(), State::InFlight(_)) {
                        a.abort();
                    }
                }
                shared.hard.cancelled().await;
                for (a, s) in aborts.iter().zip(&states) {
                    if let State::InFlight(key) = s.get() {
                        if !a.is_finished() {
                            rec.borrow_mut().cancelled(key);
                            a.abort();
                        }
                    }
                }
            })
        };
        for h in handles {
            let _ = h.await;
        }
        supervisor.abort();
        ticker.abort();
        let d = rec.borrow_mut().take();
        let _ = deltas.send(d);
    });
}

struct WorkerCtx<P: Protocol> {
    proto: Arc<P>,
    job: Arc<Job>,
    shared: Arc<Shared>,
    rec: Rc<RefCell<Recorder>>,
    pools: Rc<Pools<P>>,
    lanes: Rc<Lanes<P>>,
    /// This thread's index and the thread count (a feed's shard).
    shard: (usize, usize),
    state: Rc<Cell<State>>,
    /// This worker's position among its thread's workers (its seat in the thread's pools).
    /// Not its global index: a thread's workers are every `threads`-th one, which would
    /// leave connections of the pool unused.
    seat: usize,
}

/// What a worker is doing, as seen by its thread's supervisor.
#[derive(Debug, Clone, Copy)]
enum State {
    /// Between requests, or waiting for a phase or an intended send time.
    Idle,
    /// A request is on the wire.
    InFlight(Key),
}

async fn worker<P: Protocol>(cx: WorkerCtx<P>, w: usize) {
    let mut tag = String::with_capacity(64);
    // One timer per worker, re-armed per request: cheaper than a new timeout each time.
    let mut deadline = Box::pin(tokio::time::sleep(cx.job.timeout));
    for (pi, phase) in cx.job.plan.phases.iter().enumerate() {
        let Some(start) = cx.shared.phase_start(pi).await else { return };
        let shard = cx.job.shard;
        let limit = phase.users().map_or(cx.job.max_in_flight, |u| shard.share(u64::from(u)) as usize);
        if w >= limit {
            continue;
        }
        let state = &cx.shared.phases[pi];
        if let Some(feed) = cx.job.feeds.get(pi).and_then(Option::as_ref) {
            if !replayed(&cx, pi, start, feed.as_ref(), &mut tag, deadline.as_mut()).await {
                return;
            }
            continue;
        }
        // A duration-bounded open-loop phase stops sending at its end (+ grace, + pauses).
        let cut = if phase.cut_at_duration() { phase.nominal_end() } else { None };
        loop {
            if cx.shared.stop.is_cancelled() {
                return;
            }
            // No "next phase started" check here: an open-loop phase ends when its schedule
            // does (`slot` returns None), so a late worker still sends — late, and measured
            // from the intended time — what the schedule holds; a duration-bounded one stops
            // at its cutoff (`cut` here, and `cut_off` closes the claims). Closed-loop
            // phases end on their deadline or count below.
            while cx.shared.paused.load(Ordering::Acquire) {
                tokio::time::sleep(PAUSE_POLL).await;
            }
            // This generator's next claim, as an index of the global schedule.
            let claim = state.next.fetch_add(1, Ordering::AcqRel);
            if claim >= CLOSED {
                break;
            }
            let i = shard.global(claim);
            let Some(slot) = phase.slot(i) else { break };
            let check = phase.check(i);
            let intended = match slot {
                Some(off) => due(&cx.shared, state, start, off).await,
                None => {
                    let now = Instant::now();
                    if phase.duration.is_some_and(|d| now >= start + d + state.shift()) {
                        break;
                    }
                    now
                }
            };
            // The condition in force at the send labels the request, here and in its tag
            // (so the oracle attributes what arrives to it too).
            let condition = cx.job.timeline.condition();
            let key = Key { phase: pi as u16, condition, check: check as u16 };
            if cut.is_some_and(|end| Instant::now() > start + end + state.shift() + SEND_GRACE) {
                // The phase is over: a claimed request not sent by now is never sent.
                cx.rec.borrow_mut().unsent(key, 1);
                break;
            }
            tag.clear();
            let seq = crate::proto::seq(pi, condition, i);
            let _ = write!(tag, "{}.{}.{seq}", cx.job.run_id, cx.job.check_ids[check]);
            // A pooled check round-robins over its members by its own request count; the tag
            // names the member so the oracle knows which principal must arrive.
            let pool = cx.job.requests[check].len();
            let member = if pool > 1 { (phase.nth(i) % pool as u64) as usize } else { 0 };
            if pool > 1 {
                let _ = write!(tag, ".{member}");
            }
            let req = &cx.job.requests[check][member];
            one(&cx, key, req, None, Via::Pool, intended, Tag { text: &tag, seq }, deadline.as_mut()).await;
            if phase.requests.is_some() && matches!(phase.pace, Pace::Closed { .. }) {
                let n = state.completed.fetch_add(1, Ordering::AcqRel) + 1;
                if phase.requests.is_some_and(|r| n >= shard.share(r)) {
                    state.all_done.notify_waiters();
                }
            }
        }
    }
}

/// Sleeps until a request intended `off` after the phase's `start` is due, and returns that
/// instant. The intended time moves with every pause of the phase.
async fn due(shared: &Shared, state: &PhaseState, start: Instant, off: Duration) -> Instant {
    loop {
        let at = start + off + state.shift();
        let wake = at.checked_sub(TIMER_SLACK).unwrap_or(at);
        let now = Instant::now();
        // Paused, or due later than the next look at the pause switch.
        if shared.paused.load(Ordering::Acquire) || wake > now + PAUSE_POLL {
            tokio::time::sleep(PAUSE_POLL).await;
        } else if wake > now {
            tokio::time::sleep_until(wake.into()).await;
        } else {
            return at;
        }
    }
}

/// Sends a replay phase's fed requests, each at its intended time (from the recorded pace:
/// latency counts from it, so a slow gateway cannot slow the replay down unseen), until
/// the feed is over or the phase's `duration:` bound passes. A request of a lane goes on
/// the lane's connection: when another worker holds the lane, it is queued there and that
/// worker sends it after the lane's earlier ones. False when the run stopped.
async fn replayed<P: Protocol>(
    cx: &WorkerCtx<P>,
    pi: usize,
    start: Instant,
    feed: &dyn Feed,
    tag: &mut String,
    mut deadline: std::pin::Pin<&mut tokio::time::Sleep>,
) -> bool {
    let state = &cx.shared.phases[pi];
    loop {
        if cx.shared.stop.is_cancelled() {
            return false;
        }
        while cx.shared.paused.load(Ordering::Acquire) {
            tokio::time::sleep(PAUSE_POLL).await;
        }
        // Claimed before taken, so `completed >= next` never holds while a request is out.
        state.next.fetch_add(1, Ordering::AcqRel);
        let fed = match feed.next(cx.shard.0, cx.shard.1) {
            Next::Send(f) => f,
            Next::Wait => {
                state.next.fetch_sub(1, Ordering::AcqRel);
                tokio::time::sleep(FEED_POLL).await;
                continue;
            }
            Next::Done => {
                state.next.fetch_sub(1, Ordering::AcqRel);
                state.feed_done.store(true, Ordering::Release);
                if state.completed.load(Ordering::Acquire) >= state.next.load(Ordering::Acquire) {
                    state.all_done.notify_waiters();
                }
                return true;
            }
        };
        let Some(lane) = fed.lane else {
            let _ = send_fed(cx, pi, start, feed, &fed, Via::Pool, tag, deadline.as_mut()).await;
            continue;
        };
        let identity = fed.request.identity;
        let Some((mut fed, mut via)) = cx.lanes.take(lane, fed) else {
            // Queued behind the lane's holder. A long backlog holds this worker back, as an
            // in-flight request would, so memory stays bounded by the workers.
            while cx.lanes.backlog(lane, identity) >= pool::LANE_BACKLOG && !cx.shared.stop.is_cancelled() {
                tokio::time::sleep(FEED_POLL).await;
            }
            continue;
        };
        // Taken without holding the lane (a handle to its multiplexed connection): just this
        // one. Holding it: this and every request queued on it meanwhile, until released.
        let holder = matches!(via, Via::Held(_));
        loop {
            let conn = send_fed(cx, pi, start, feed, &fed, via, tag, deadline.as_mut()).await;
            if !holder {
                break;
            }
            match cx.lanes.release(lane, identity, conn) {
                Some((next, v)) => (fed, via) = (next, v),
                None => break,
            }
        }
    }
}

/// Sends one fed request at its intended time and counts it completed; returns the
/// connection it went on when that was its lane's and is still open.
#[allow(clippy::too_many_arguments)]
async fn send_fed<P: Protocol>(
    cx: &WorkerCtx<P>,
    pi: usize,
    start: Instant,
    feed: &dyn Feed,
    fed: &Fed,
    via: Via<P::Conn>,
    tag: &mut String,
    deadline: std::pin::Pin<&mut tokio::time::Sleep>,
) -> Option<P::Conn> {
    let phase = &cx.job.plan.phases[pi];
    let state = &cx.shared.phases[pi];
    // A stop aborts a worker waiting here (the thread's supervisor), as in `worker`.
    let intended = due(&cx.shared, state, start, fed.offset).await;
    let condition = cx.job.timeline.condition();
    let key = Key { phase: pi as u16, condition, check: fed.check as u16 };
    let conn = if phase.duration.is_some_and(|d| fed.offset >= d) {
        // Past the phase's time bound: not sent, counted.
        cx.rec.borrow_mut().unsent(key, 1);
        match via {
            Via::Held(c) => c,
            Via::Shared(c) => Some(c),
            Via::Pool => None,
        }
    } else {
        tag.clear();
        let seq = crate::proto::seq(pi, condition, fed.index);
        let _ = write!(tag, "{}.{}.{seq}", cx.job.run_id, cx.job.check_ids[fed.check]);
        let compare = fed.recorded.map(|r| (r, feed));
        one(cx, key, &fed.request, compare, via, intended, Tag { text: tag, seq }, deadline).await
    };
    let n = state.completed.fetch_add(1, Ordering::AcqRel) + 1;
    if state.feed_done.load(Ordering::Acquire) && n >= state.next.load(Ordering::Acquire) {
        state.all_done.notify_waiters();
    }
    conn
}

/// A failure of the one retry says so in its cause: the gateway lost the request twice.
fn on_retry(o: Outcome) -> Outcome {
    match o {
        Outcome::Broken { kind, at, cause } => Outcome::Broken {
            kind,
            at,
            cause: Some(std::sync::Arc::from(format!(
                "{} — on the retry, after the first connection closed without answering",
                cause.as_deref().unwrap_or("no answer")
            ))),
        },
        other => other,
    }
}

/// Sends one request on `via` and records what became of it (compared with `recorded`, a
/// replayed request's recorded answer); returns the connection it went on, when that was
/// a lane's (not the pool's) and it is still open.
#[allow(clippy::too_many_arguments)]
async fn one<P: Protocol>(
    cx: &WorkerCtx<P>,
    key: Key,
    req: &Prepared,
    recorded: Option<(Recorded, &dyn Feed)>,
    via: Via<P::Conn>,
    intended: Instant,
    tag: Tag<'_>,
    mut deadline: std::pin::Pin<&mut tokio::time::Sleep>,
) -> Option<P::Conn> {
    let expect = &cx.job.expects[usize::from(key.check)];
    let sent = Instant::now();
    let mut retried = false;
    let mut kept: Option<P::Conn> = None;
    let attempt = async {
        let pooled = matches!(via, Via::Pool);
        let mut lease = match via {
            Via::Pool => cx.pools.checkout(&cx.proto, req.identity, cx.seat).await?,
            Via::Held(held) => match held.and_then(|mut c| P::revalidate(&mut c).then_some(c)) {
                Some(c) => pool::Lease::own(c),
                None => pool::Lease::own(cx.proto.connect(req.identity).await?),
            },
            Via::Shared(c) => pool::Lease::own(c),
        };
        let mut r = cx.proto.exchange(&mut lease.conn, req, tag).await;
        // The server closed the connection before any response byte of this request: on a
        // kept-alive one, it was most likely never read (or lost by the gateway). An
        // idempotent request is sent once more on a new connection (as browsers and curl
        // do), and counted; anything else is not retried. On a new connection the same holds
        // — except for `tls_reject` checks, where that close is the refusal being tested.
        let retry = match &r {
            Err(Outcome::Broken { at: Broke::Stale, .. }) => true,
            Err(Outcome::Broken { at: Broke::Fresh, .. }) => *expect != Expect::TlsReject,
            _ => false,
        };
        if retry && req.idempotent() {
            retried = true;
            lease = if pooled {
                cx.pools.connect_new(&cx.proto, req.identity).await?
            } else {
                pool::Lease::own(cx.proto.connect(req.identity).await?)
            };
            r = cx.proto.exchange(&mut lease.conn, req, tag).await.map_err(on_retry);
        }
        if r.is_ok() {
            if pooled {
                cx.pools.checkin(req.identity, lease);
            } else if P::is_open(&lease.conn) {
                kept = Some(lease.conn);
            }
        }
        r
    };
    cx.state.set(State::InFlight(key));
    deadline.as_mut().reset((sent + cx.job.timeout + req.extra_time()).into());
    let mut body = None;
    let outcome = match before(deadline.as_mut(), attempt).await {
        None => Outcome::TimedOut,
        Some(Ok(answer)) => {
            body = answer.body;
            Outcome::Answered { status: answer.status }
        }
        Some(Err(o)) => o,
    };
    cx.state.set(State::Idle);
    let done = Instant::now();
    // A declared outage excuses a refusal when it was in force at the send or at the answer:
    // a request in flight as a dependency fails is refused by that failure. The request is
    // still counted under the condition of its send.
    let plan = &cx.job.plan;
    let outage =
        plan.outage(usize::from(key.condition)).or_else(|| plan.outage(usize::from(cx.job.timeline.condition())));
    let verdict = classify_under(expect, &outcome, outage);
    if verdict == Verdict::Pass && expect.is_allow() {
        cx.job.timeline.allow_succeeded(sent, done);
    }
    let run_start = cx.shared.progress.run_start;
    let window = match expect {
        Expect::Limit(l) => {
            let per = l.per.as_secs_f64().max(1e-3);
            Some((sent.saturating_duration_since(run_start).as_secs_f64() / per) as u32)
        }
        _ => None,
    };
    let sample = Sample {
        key,
        verdict,
        status: match outcome {
            Outcome::Answered { status } => Some(status),
            Outcome::KeptOpen => Some(101),
            _ => None,
        },
        tls_rejected: outcome == Outcome::TlsRejected,
        tls_closed: verdict == Verdict::Denied && matches!(outcome, Outcome::Broken { .. }),
        // A send released early by the timer slack is measured from when it left.
        latency_us: micros(done.saturating_duration_since(intended.min(sent))),
        service_us: micros(done.saturating_duration_since(sent)),
        lag_us: micros(sent.saturating_duration_since(intended)),
        at_us: micros(done.saturating_duration_since(run_start)),
        window,
        cause: outcome.cause(),
        stale_retry: retried,
        replay: match (recorded, &outcome) {
            (Some((rec, feed)), Outcome::Answered { status }) => Some(compared(rec, *status, body.as_deref(), feed)),
            (Some((rec, _)), Outcome::KeptOpen) => Some(ReplayClass::of(rec.status, 101)),
            _ => None,
        },
    };
    cx.rec.borrow_mut().record(&sample);
    kept
}

/// Runs `f` until `deadline`: `None` when the deadline came first. The deadline is polled
/// first: a server flooding bytes keeps an exchange busy until tokio's budget for the poll is
/// spent, and a timer polled after that would never fire (a 5 s run took 78 s against an
/// endless flood of interim answers).
async fn before<F: std::future::Future>(deadline: std::pin::Pin<&mut tokio::time::Sleep>, f: F) -> Option<F::Output> {
    tokio::select! {
        biased;
        _ = deadline => None,
        r = f => Some(r),
    }
}

/// How a replayed answer compares with the recorded one: by status, then (the same status,
/// both bodies comparable) by body digest.
fn compared(rec: Recorded, status: u16, body: Option<&[u8]>, feed: &dyn Feed) -> ReplayClass {
    match ReplayClass::of(rec.status, status) {
        ReplayClass::Match => match (rec.body, body) {
            (Some(want), Some(got)) if feed.digest(got) != want => ReplayClass::Drift,
            _ => ReplayClass::Match,
        },
        other => other,
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    /// An exchange that always has work (it spends tokio's whole budget on every poll, as a
    /// read of a flooding server does) still ends at its deadline.
    #[tokio::test]
    async fn a_busy_exchange_ends_at_its_deadline() {
        let deadline = std::pin::pin!(tokio::time::sleep(std::time::Duration::from_millis(20)));
        let busy = async {
            for _ in 0..u64::MAX {
                tokio::task::consume_budget().await;
            }
        };
        // The outer bound polls its own timer past the budget; it only fires if `before` hangs.
        let r = tokio::time::timeout(std::time::Duration::from_secs(20), super::before(deadline, busy)).await;
        assert!(matches!(r, Ok(None)), "the deadline ended the exchange");
    }
}
