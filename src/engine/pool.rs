//! Per-thread, per-identity connection pools. Connections never cross identities.
//!
//! Exclusive connections (HTTP/1.1) are checked out and back in; multiplexed ones (HTTP/2)
//! stay in the pool and workers get forked handles, up to `cap` connections per identity.

use std::cell::RefCell;
use std::rc::Rc;

use tokio::sync::Notify;

use crate::conformance::Outcome;
use crate::proto::Protocol;

struct IdPool<C> {
    idle: Vec<C>,
    shared: Vec<C>,
    rr: usize,
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

impl<P: Protocol> Pools<P> {
    /// `cap`: multiplexed connections per identity on this thread.
    pub(crate) fn new(identities: usize, cap: usize, multiplexed_hint: bool) -> Self {
        Pools {
            pools: (0..identities)
                .map(|_| RefCell::new(IdPool { idle: Vec::new(), shared: Vec::new(), rr: 0, connecting: 0 }))
                .collect(),
            ready: (0..identities).map(|_| Rc::new(Notify::new())).collect(),
            cap: cap.max(1),
            multiplexed_hint,
        }
    }

    /// A connection for `id`: a pooled one, a handle to a shared one, or a new one.
    pub(crate) async fn checkout(&self, proto: &P, id: usize) -> Result<Lease<P::Conn>, Outcome> {
        loop {
            let wait = {
                let mut p = self.pools[id].borrow_mut();
                p.shared.retain(P::is_open);
                if !p.shared.is_empty() && p.shared.len() + p.connecting >= self.cap {
                    p.rr = (p.rr + 1) % p.shared.len();
                    let i = p.rr;
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
