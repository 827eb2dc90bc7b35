//! Per-thread, per-identity connection pools. Connections never cross identities.
//!
//! Exclusive connections (HTTP/1.1) are checked out and back in; multiplexed ones (HTTP/2)
//! stay in the pool and workers get forked handles, up to `cap` connections per identity.
//!
//! A replay that keeps its capture's connection boundaries uses [`Lanes`] instead: one
//! connection per captured connection, its requests sent in captured order.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::time::Instant;

use tokio::sync::Notify;

use crate::conformance::Outcome;
use crate::proto::Protocol;

struct IdPool<C> {
    idle: Vec<C>,
    shared: Vec<C>,
    connecting: usize,
}

/// The pools of one generator thread.
pub(crate) struct Pools<P: Protocol> {
    pools: Vec<RefCell<IdPool<P::Conn>>>,
    ready: Vec<Rc<Notify>>,
    cap: usize,
    multiplexed_hint: bool,
}

/// A checked-out connection; `shared` ones are handles to a pooled multiplexed connection.
pub(crate) struct Lease<C> {
    pub(crate) conn: C,
    shared: bool,
}

impl<C> Lease<C> {
    /// A connection outside any pool (a lane's).
    pub(crate) fn own(conn: C) -> Self {
        Lease { conn, shared: false }
    }
}

/// Which connection a request goes on.
pub(crate) enum Via<C> {
    /// The identity's pool.
    Pool,
    /// Its lane's connection, held exclusively (`None`: the lane has none open: open one).
    Held(Option<C>),
    /// A handle to its lane's multiplexed connection, sent alongside the lane's others.
    Shared(C),
}

/// One captured connection being replayed on this thread.
struct Lane<C> {
    /// Its connection, while no worker holds it.
    conn: Option<C>,
    /// A worker holds the lane: it sends the lane's requests one after another.
    held: bool,
    /// Requests that came while it was held, in captured order.
    queue: VecDeque<Box<super::Fed>>,
    /// Last sent on.
    used: Instant,
}

/// Lanes by (lane, identity).
type LaneMap<C> = HashMap<(u64, usize), Lane<C>>;

/// The lanes of one generator thread: a captured connection's requests go in captured order
/// on one connection of their own (a multiplexed one carries them side by side, as it did).
pub(crate) struct Lanes<P: Protocol> {
    map: RefCell<LaneMap<P::Conn>>,
}

impl<P: Protocol> Default for Lanes<P> {
    fn default() -> Self {
        Lanes { map: RefCell::new(HashMap::new()) }
    }
}

/// Requests a lane holds queued before the workers bringing more wait (as if in flight): a
/// captured connection the gateway answers slowly cannot pull the capture into memory.
pub(crate) const LANE_BACKLOG: usize = 256;

/// Idle lanes kept per thread with their connections (the least recently used beyond are
/// closed: a captured connection idle that long is most likely over).
const LANES_KEPT: usize = 1024;

impl<P: Protocol> Lanes<P> {
    /// How to send `fed`, of lane `lane`: `None` when another worker holds the lane — the
    /// request is queued, and that worker sends it in turn. With `Via::Held`, the caller
    /// holds the lane until [`Lanes::release`] returns `None`. A lane is also keyed by the
    /// request's identity: its connection never carries another identity's requests.
    pub(crate) fn take(&self, lane: u64, fed: Box<super::Fed>) -> Option<(Box<super::Fed>, Via<P::Conn>)> {
        let mut map = self.map.borrow_mut();
        let l = map.entry((lane, fed.request.identity)).or_insert_with(|| Lane {
            conn: None,
            held: false,
            queue: VecDeque::new(),
            used: Instant::now(),
        });
        l.used = Instant::now();
        if let Some(h) = l.conn.as_ref().filter(|c| P::is_open(c)).and_then(P::fork) {
            return Some((fed, Via::Shared(h)));
        }
        if l.held {
            l.queue.push_back(fed);
            return None;
        }
        l.held = true;
        Some((fed, Via::Held(l.conn.take())))
    }

    /// Requests queued on lane `lane` of `identity`.
    pub(crate) fn backlog(&self, lane: u64, identity: usize) -> usize {
        self.map.borrow().get(&(lane, identity)).map_or(0, |l| l.queue.len())
    }

    /// Hands lane `lane` back by its holder, with its connection (`None`: lost); returns
    /// the lane's next queued request for the holder to send, or `None` (the lane is free).
    pub(crate) fn release(
        &self,
        lane: u64,
        identity: usize,
        conn: Option<P::Conn>,
    ) -> Option<(Box<super::Fed>, Via<P::Conn>)> {
        let mut map = self.map.borrow_mut();
        let l = map.get_mut(&(lane, identity))?;
        l.used = Instant::now();
        l.conn = conn.filter(P::is_open);
        if let Some(fed) = l.queue.pop_front() {
            let via = match l.conn.as_ref().and_then(P::fork) {
                Some(h) => Via::Shared(h),
                None => Via::Held(l.conn.take()),
            };
            return Some((fed, via));
        }
        l.held = false;
        if map.len() > LANES_KEPT {
            evict(&mut map);
        }
        None
    }
}

/// Closes the least recently used idle lanes, down to three quarters of [`LANES_KEPT`].
fn evict<C>(map: &mut LaneMap<C>) {
    let mut idle: Vec<(Instant, (u64, usize))> =
        map.iter().filter(|(_, l)| !l.held && l.queue.is_empty()).map(|(k, l)| (l.used, *k)).collect();
    idle.sort_unstable();
    let excess = map.len().saturating_sub(LANES_KEPT * 3 / 4);
    for (_, k) in idle.into_iter().take(excess) {
        map.remove(&k);
    }
}

impl<P: Protocol> Pools<P> {
    /// `cap`: multiplexed connections per identity on this thread.
    pub(crate) fn new(identities: usize, cap: usize, multiplexed_hint: bool) -> Self {
        Pools {
            pools: (0..identities)
                .map(|_| RefCell::new(IdPool { idle: Vec::new(), shared: Vec::new(), connecting: 0 }))
                .collect(),
            ready: (0..identities).map(|_| Rc::new(Notify::new())).collect(),
            cap: cap.max(1),
            multiplexed_hint,
        }
    }

    /// A connection for `id`: a pooled one, a handle to a shared one, or a new one. A worker
    /// (its `seat`) keeps to one shared connection while the set stays the same, so the
    /// requests its neighbours send after a batch of answers on that connection go out in
    /// one write (round-robin spread them over every connection, one write each).
    pub(crate) async fn checkout(&self, proto: &P, id: usize, seat: usize) -> Result<Lease<P::Conn>, Outcome> {
        loop {
            let wait = {
                let mut p = self.pools[id].borrow_mut();
                p.shared.retain(P::is_open);
                if !p.shared.is_empty() && p.shared.len() + p.connecting >= self.cap {
                    let i = seat % p.shared.len();
                    if let Some(conn) = P::fork(&p.shared[i]) {
                        return Ok(Lease { conn, shared: true });
                    }
                }
                while let Some(mut conn) = p.idle.pop() {
                    if P::revalidate(&mut conn) {
                        return Ok(Lease { conn, shared: false });
                    }
                }
                if self.multiplexed_hint && p.shared.is_empty() && p.connecting >= self.cap {
                    Some(self.ready[id].clone())
                } else {
                    p.connecting += 1;
                    None
                }
            };
            if let Some(ready) = wait {
                let notified = ready.notified();
                notified.await;
                continue;
            }
            let r = proto.connect(id).await;
            let mut p = self.pools[id].borrow_mut();
            p.connecting -= 1;
            self.ready[id].notify_waiters();
            return r.map(|conn| match P::fork(&conn) {
                Some(handle) => {
                    p.shared.push(handle);
                    Lease { conn, shared: true }
                }
                None => Lease { conn, shared: false },
            });
        }
    }

    /// A brand-new connection for `id` (never a pooled one): the retry after a stale one.
    pub(crate) async fn connect_new(&self, proto: &P, id: usize) -> Result<Lease<P::Conn>, Outcome> {
        self.pools[id].borrow_mut().connecting += 1;
        let r = proto.connect(id).await;
        let mut p = self.pools[id].borrow_mut();
        p.connecting -= 1;
        self.ready[id].notify_waiters();
        r.map(|conn| match P::fork(&conn) {
            Some(handle) => {
                p.shared.push(handle);
                Lease { conn, shared: true }
            }
            None => Lease { conn, shared: false },
        })
    }

    /// Returns an exclusive connection that is still usable.
    pub(crate) fn checkin(&self, id: usize, lease: Lease<P::Conn>) {
        if !lease.shared && P::is_open(&lease.conn) {
            self.pools[id].borrow_mut().idle.push(lease.conn);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::proto::{Answer, Prepared, Tag};

    /// Multiplexed connections that are numbers, counted as they open.
    struct Numbered(AtomicUsize);

    impl Protocol for Numbered {
        type Conn = usize;
        const NAME: &'static str = "numbered";
        async fn connect(&self, _: usize) -> Result<usize, Outcome> {
            Ok(self.0.fetch_add(1, Ordering::Relaxed))
        }
        async fn exchange(&self, _: &mut usize, _: &Prepared, _: Tag<'_>) -> Result<Answer, Outcome> {
            unreachable!("the pool never sends")
        }
        fn fork(conn: &usize) -> Option<usize> {
            Some(*conn)
        }
        fn is_open(_: &usize) -> bool {
            true
        }
    }

    #[tokio::test]
    async fn seats_keep_to_one_shared_connection_and_fill_every_one() {
        let (proto, pools) = (Numbered(AtomicUsize::new(0)), Pools::<Numbered>::new(1, 4, true));
        // The first four open the connections; then seat s always gets connection s mod 4.
        let mut opened = Vec::new();
        for seat in 0..4 {
            opened.push(pools.checkout(&proto, 0, seat).await.unwrap().conn);
        }
        assert_eq!(opened, [0, 1, 2, 3]);
        let mut per = [0; 4];
        for round in 0..3 {
            for seat in 0..8 {
                let conn = pools.checkout(&proto, 0, seat).await.unwrap().conn;
                assert_eq!(conn, seat % 4, "seat {seat}, round {round}");
                per[conn] += 1;
            }
        }
        assert_eq!(per, [6; 4]);
        assert_eq!(proto.0.load(Ordering::Relaxed), 4);
    }
}
