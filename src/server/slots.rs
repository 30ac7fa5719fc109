//! The connection cap (`max_connections`): one slot per open connection, taken *before*
//! `accept()`, and the two log lines that say when the server is full and when it accepts
//! again.
//!
//! At the cap nobody is accepted: new clients wait in the kernel's listen backlog, costing
//! the server nothing, until a connection closes. Waiting is invisible to the clients and
//! would be to the operator, so the change of state is logged, once each way:
//!
//! - **full**: an accept loop wants a slot and none is free (warn, with the cap and what to
//!   raise);
//! - **accepting again**: every accept loop holds a slot and finds its backlog empty (nobody
//!   is waiting any more) and at least [`Slots::recover_at`] slots are free (info, with how
//!   long the server was full and how many clients waited).
//!
//! The margin of free slots is the hysteresis that keeps a server hovering at its cap from
//! logging once per connection: it has to drain by 1 % of the cap (at least one slot) before
//! it counts as not full.

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};
use tokio::time::Instant;

/// The slots of one server, shared by its accept loops and its connections.
pub(crate) struct Slots {
    sem: Arc<Semaphore>,
    /// `max_connections`.
    cap: usize,
    /// How many accept loops share the slots (one per listener).
    loops: usize,
    /// Accept loops holding a slot while `accept()` waits for a client: their backlog is
    /// empty.
    idle_loops: AtomicUsize,
    /// `full_since` is set; read without the lock on every connection's close.
    full: AtomicBool,
    /// When the server became full; `None` while it is not.
    full_since: Mutex<Option<Instant>>,
    /// Clients accepted from a non-empty backlog while full: they waited for a slot.
    waited: AtomicU64,
    /// Times the server became full, and clients that waited, since it started (metrics).
    full_total: AtomicU64,
    waited_total: AtomicU64,
}

/// One connection's slot; freed (and the recovery checked) when dropped.
pub(crate) struct Slot {
    permit: Option<OwnedSemaphorePermit>,
    slots: Arc<Slots>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        drop(self.permit.take());
        if self.slots.full.load(Ordering::Acquire) {
            self.slots.check_recovered();
        }
    }
}

/// Counts its accept loop as idle (holding a slot, backlog empty) while alive.
struct Idle<'a>(&'a Slots);

impl Drop for Idle<'_> {
    fn drop(&mut self) {
        self.0.idle_loops.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Slots {
    /// `cap` slots shared by `loops` accept loops.
    pub(crate) fn new(cap: usize, loops: usize) -> Arc<Slots> {
        Arc::new(Slots {
            sem: Arc::new(Semaphore::new(cap)),
            cap,
            loops,
            idle_loops: AtomicUsize::new(0),
            full: AtomicBool::new(false),
            full_since: Mutex::new(None),
            waited: AtomicU64::new(0),
            full_total: AtomicU64::new(0),
            waited_total: AtomicU64::new(0),
        })
    }

    /// `max_connections`.
    pub(crate) fn cap(&self) -> usize {
        self.cap
    }

    /// Connections open now: slots taken, but those of accept loops still waiting for
    /// their client.
    pub(crate) fn open(&self) -> usize {
        let idle = self.idle_loops.load(Ordering::Acquire);
        self.cap
            .saturating_sub(self.sem.available_permits())
            .saturating_sub(idle)
    }

    /// Times the server became full, and clients that waited for a slot, since it started.
    pub(crate) fn cap_counts(&self) -> (u64, u64) {
        (
            self.full_total.load(Ordering::Relaxed),
            self.waited_total.load(Ordering::Relaxed),
        )
    }

    /// Free slots needed, with nobody waiting, before a full server counts as accepting
    /// again: 1 % of the cap, at least one.
    pub(crate) fn recover_at(cap: usize) -> usize {
        (cap / 100).max(1)
    }

    /// A slot: at once if one is free, else after logging that the server is full and
    /// waiting for a connection to close. `None` once the server is shutting down.
    pub(crate) async fn take(self: &Arc<Self>) -> Option<Slot> {
        let permit = match self.sem.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(TryAcquireError::Closed) => return None,
            Err(TryAcquireError::NoPermits) => {
                self.on_full();
                self.sem.clone().acquire_owned().await.ok()?
            }
        };
        Some(Slot {
            permit: Some(permit),
            slots: self.clone(),
        })
    }

    /// A slot if one is free now, without waiting or logging (for the fuzzing entry points,
    /// which serve one connection at a time).
    pub(crate) fn try_take(self: &Arc<Self>) -> Option<Slot> {
        let permit = self.sem.clone().try_acquire_owned().ok()?;
        Some(Slot {
            permit: Some(permit),
            slots: self.clone(),
        })
    }

    /// Accept one client on `listener` (the caller holds a slot for it), noting whether it
    /// had to wait and when the backlog runs empty.
    pub(crate) async fn accept(
        &self,
        listener: &TcpListener,
    ) -> io::Result<(TcpStream, SocketAddr)> {
        let mut idle: Option<Idle<'_>> = None;
        let accepted = poll_fn(|cx| match listener.poll_accept(cx) {
            Poll::Ready(r) => Poll::Ready(r),
            Poll::Pending => {
                if idle.is_none() {
                    self.idle_loops.fetch_add(1, Ordering::AcqRel);
                    idle = Some(Idle(self));
                    if self.full.load(Ordering::Acquire) {
                        self.check_recovered();
                    }
                }
                Poll::Pending
            }
        })
        .await;
        // Ready on the first poll: the client was already in the backlog.
        if idle.is_none() && accepted.is_ok() && self.full.load(Ordering::Acquire) {
            self.waited.fetch_add(1, Ordering::Relaxed);
            self.waited_total.fetch_add(1, Ordering::Relaxed);
        }
        accepted
    }

    /// No slot free: log it if the server was not full already.
    fn on_full(&self) {
        if self.full.load(Ordering::Acquire) {
            return;
        }
        // Nothing panics while holding the lock; a poisoned one is still consistent.
        let mut since = self
            .full_since
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if since.is_none() {
            *since = Some(Instant::now());
            self.waited.store(0, Ordering::Relaxed);
            self.full_total.fetch_add(1, Ordering::Relaxed);
            self.full.store(true, Ordering::Release);
            tracing::warn!(
                target: "webntpd::server",
                "connection limit reached: {} connections open (max_connections); new clients \
                 wait in the listen backlog until one closes. If this is the normal load, raise \
                 max_connections (--max-connections) and the open-files limit with it \
                 (LimitNOFILE= in the systemd unit)",
                self.cap
            );
        }
    }

    /// Log that the server accepts again, if nobody waits and enough slots are free.
    fn check_recovered(&self) {
        let idle = self.idle_loops.load(Ordering::Acquire);
        if idle < self.loops {
            return;
        }
        // An idle loop's slot is free for the next client.
        let free = self.sem.available_permits() + idle;
        if free < Self::recover_at(self.cap) {
            return;
        }
        // Nothing panics while holding the lock; a poisoned one is still consistent.
        let mut since = self
            .full_since
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(at) = since.take() else {
            return;
        };
        self.full.store(false, Ordering::Release);
        let full_for = Duration::from_millis(at.elapsed().as_millis() as u64);
        tracing::info!(
            target: "webntpd::server",
            "accepting connections again: the server was at its limit of {} connections for \
             {}; {} client(s) waited in the listen backlog for a slot",
            self.cap,
            humantime::format_duration(full_for),
            self.waited.load(Ordering::Relaxed)
        );
    }

    /// Whether the server counts as full (for tests).
    #[cfg(test)]
    fn is_full(&self) -> bool {
        self.full.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_needs_one_percent_of_the_cap_free() {
        assert_eq!(Slots::recover_at(1), 1);
        assert_eq!(Slots::recover_at(99), 1);
        assert_eq!(Slots::recover_at(250), 2);
        assert_eq!(Slots::recover_at(10_000), 100);
    }

    #[tokio::test]
    async fn full_then_accepting_again_once_nobody_waits() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let slots = Slots::new(2, 1);
        let a = slots.take().await.unwrap();
        let b = slots.take().await.unwrap();
        assert!(!slots.is_full());
        // A third slot waits, and the server counts as full.
        let waiter = {
            let slots = slots.clone();
            tokio::spawn(async move { slots.take().await })
        };
        tokio::time::timeout(Duration::from_secs(5), async {
            while !slots.is_full() {
                tokio::task::yield_now().await;
            }
        })
        .await
        .unwrap();
        // A client queues in the backlog meanwhile.
        let _client = TcpStream::connect(addr).await.unwrap();
        drop(a);
        let c = waiter.await.unwrap().unwrap();
        // Still full: the waiting client has not been accepted.
        assert!(slots.is_full());
        let _accepted = slots.accept(&listener).await.unwrap();
        assert_eq!(slots.waited.load(Ordering::Relaxed), 1);
        // That client holds the slot; the loop needs one more and an empty backlog.
        drop(b);
        assert!(slots.is_full(), "not yet idle in accept");
        let _d = c;
        let next = slots.take().await.unwrap();
        let idle_accept = {
            let slots = slots.clone();
            let listener = listener;
            tokio::spawn(async move {
                let _next = next;
                slots.accept(&listener).await.map(|_| ())
            })
        };
        tokio::time::timeout(Duration::from_secs(5), async {
            while slots.is_full() {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("an idle accept loop with a free slot ends the full state");
        idle_accept.abort();
        assert!(idle_accept.await.is_err_and(|e| e.is_cancelled()));
        assert_eq!(
            slots.idle_loops.load(Ordering::Relaxed),
            0,
            "guard released"
        );
    }
}
