//! What is known about one connection's traffic, shared by its socket wrapper, the code
//! that answers its requests and its watchdog: when bytes last moved, whether a request is
//! in progress ([`InFlight`]), and the deadline those facts imply (see `conn` for the
//! timeouts this enforces). Everything else in the server builds on this; it depends on none
//! of it.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio::time::Instant;

use super::slots::Slot;
use super::Limits;
use crate::net::observe::{Observed, Observer};
use crate::net::rxstamp::RxStamp;

/// "No request head in progress."
const NONE: u64 = u64::MAX;

/// What is known about a connection's traffic, shared by its socket wrapper, its service and
/// its watchdog. Times are milliseconds since the connection was accepted.
pub(crate) struct Activity {
    pub(crate) accepted: Instant,
    /// Requests whose response hyper has not finished with.
    in_flight: AtomicU32,
    /// When bytes last arrived.
    last_read: AtomicU64,
    /// When bytes were last written.
    last_write: AtomicU64,
    /// The last write found the socket full (the client is not reading fast enough).
    write_blocked: AtomicBool,
    /// When the first byte of a request head not yet complete arrived; [`NONE`] if none.
    head_since: AtomicU64,
    /// When the last response was finished.
    last_done: AtomicU64,
    /// HTTP/2: idle is measured from the last finished request only (pings are not requests).
    pub(crate) h2: AtomicBool,
    /// Total bytes read, to spot the HTTP/2 preface on the first read.
    bytes_read: AtomicU64,
    /// The kernel's receive stamp of the last bytes read: `rt` is when they arrived, not when
    /// this task woke up to read them.
    pub(crate) rx: Arc<RxStamp>,
    /// The connection is TLS: pages served on it are in a secure context.
    pub(crate) tls: bool,
    /// This connection's slot under `max_connections`; released when the socket is dropped,
    /// which for an upgraded WebSocket is when the WebSocket session ends.
    _slot: Slot,
}

impl Activity {
    pub(crate) fn new(slot: Slot, rx: Arc<RxStamp>, tls: bool) -> Self {
        Activity {
            accepted: Instant::now(),
            in_flight: AtomicU32::new(0),
            last_read: AtomicU64::new(0),
            last_write: AtomicU64::new(0),
            write_blocked: AtomicBool::new(false),
            // The first request's head must arrive within the header timeout of the accept.
            head_since: AtomicU64::new(0),
            last_done: AtomicU64::new(0),
            h2: AtomicBool::new(false),
            bytes_read: AtomicU64::new(0),
            rx,
            tls,
            _slot: slot,
        }
    }

    pub(crate) fn now_ms(&self) -> u64 {
        self.accepted.elapsed().as_millis() as u64
    }

    fn on_read(&self, data: &[u8]) {
        let now = self.now_ms();
        self.last_read.store(now, Ordering::Relaxed);
        if self
            .bytes_read
            .fetch_add(data.len() as u64, Ordering::Relaxed)
            == 0
            && data.starts_with(b"PRI * HTTP/2.0")
        {
            self.h2.store(true, Ordering::Relaxed);
        }
        if self.in_flight.load(Ordering::Relaxed) == 0 {
            let _ =
                self.head_since
                    .compare_exchange(NONE, now, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    fn on_write(&self, res: &Poll<io::Result<usize>>) {
        match res {
            Poll::Pending => self.write_blocked.store(true, Ordering::Relaxed),
            Poll::Ready(r) => {
                self.write_blocked.store(false, Ordering::Relaxed);
                if matches!(r, Ok(n) if *n > 0) {
                    self.last_write.store(self.now_ms(), Ordering::Relaxed);
                }
            }
        }
    }

    /// A request head is complete and the service has it: the connection is busy until the
    /// returned guard is dropped (by hyper, when the response is written).
    pub(crate) fn begin_request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.head_since.store(NONE, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// The fast path holds the start of a request head it has not been able to parse yet
    /// (pipelined after complete ones): the header timeout runs from now, if not already.
    pub(crate) fn head_pending(&self) {
        let _ = self.head_since.compare_exchange(
            NONE,
            self.now_ms(),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// Since when an idle connection has been idle, in milliseconds: its last finished
    /// request or, on HTTP/1, its last bytes read (HTTP/2 pings are not requests).
    fn idle_since(&self, h2: bool) -> u64 {
        let last_done = self.last_done.load(Ordering::Relaxed);
        if h2 {
            last_done
        } else {
            last_done.max(self.last_read.load(Ordering::Relaxed))
        }
    }

    /// When bytes last arrived (the accept, if none have).
    pub(crate) fn last_read_at(&self) -> Instant {
        self.accepted + Duration::from_millis(self.last_read.load(Ordering::Relaxed))
    }

    /// When an idle HTTP/1 connection is closed if nothing arrives (its keep-alive deadline).
    pub(crate) fn idle_deadline(&self, limits: &Limits) -> Instant {
        self.accepted + Duration::from_millis(self.idle_since(false)) + limits.keepalive_timeout
    }

    /// The next moment something may expire, and what. With `park`, an idle connection is
    /// parked (see `park`) `park_after` into its idle time.
    fn next_deadline(&self, limits: &Limits, park: bool) -> (u64, Expiry) {
        let ms = |d: Duration| d.as_millis() as u64;
        // hyper drops a response body (and its InFlight guard) once the bytes are in its own
        // write buffer, so a blocked write is the other sign of a response still pending.
        if self.in_flight.load(Ordering::Relaxed) > 0 || self.write_blocked.load(Ordering::Relaxed)
        {
            // Our handlers answer at once, so only a client that does not read can keep a
            // response pending: expire when neither direction has moved for a while.
            let progress = self
                .last_read
                .load(Ordering::Relaxed)
                .max(self.last_write.load(Ordering::Relaxed));
            return (progress + ms(limits.keepalive_timeout), Expiry::Stalled);
        }
        let head_since = self.head_since.load(Ordering::Relaxed);
        let h2 = self.h2.load(Ordering::Relaxed);
        if head_since != NONE && !h2 {
            return (
                head_since + ms(limits.header_read_timeout),
                Expiry::HeaderTimeout,
            );
        }
        let since = self.idle_since(h2);
        let idle = since + ms(limits.keepalive_timeout);
        if park && !h2 && since + ms(limits.park_after) < idle {
            return (since + ms(limits.park_after), Expiry::Park);
        }
        (idle, Expiry::Idle)
    }
}

/// Marks one request as in progress on its connection while alive.
pub(crate) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.last_done.store(self.0.now_ms(), Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expiry {
    /// A request head did not complete in time.
    HeaderTimeout,
    /// Nothing to do and nothing received.
    Idle,
    /// A response pending and no I/O in either direction.
    Stalled,
    /// Idle long enough to be parked (nothing in progress, nothing held).
    Park,
}

/// Sleep until the connection's header or idle deadline passes (or, with `park`, its time to
/// park) and return which one; activity in the meantime moves the deadline.
pub(crate) async fn watchdog(activity: &Activity, limits: &Limits, park: bool) -> Expiry {
    loop {
        let (at, what) = activity.next_deadline(limits, park);
        let mut until = activity.accepted + Duration::from_millis(at);
        if park {
            // A request finishing moves the time to park before the deadline slept on (the
            // header timeout of a new connection, say): look again after `park_after`.
            until = until.min(Instant::now() + limits.park_after);
        }
        tokio::time::sleep_until(until).await;
        let (again, what_now) = activity.next_deadline(limits, park);
        if what_now == what && again <= activity.now_ms() {
            return what;
        }
    }
}

/// A socket that reports its traffic (bytes read and written) to its connection's
/// [`Activity`].
pub(crate) type Tracked<T> = Observed<T, Arc<Activity>>;

impl Observer for Arc<Activity> {
    type Before = ();

    fn before_write(&self) {}

    fn written(&self, (): (), result: &Poll<io::Result<usize>>) {
        self.on_write(result);
    }

    fn read(&self, data: &[u8]) {
        self.on_read(data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::slots::Slots;

    fn activity() -> Arc<Activity> {
        let slot = Slots::new(1, 1).try_take().expect("a free slot");
        Arc::new(Activity::new(slot, Arc::default(), false))
    }

    fn limits(keepalive_ms: u64, park_after_ms: u64) -> Limits {
        Limits {
            keepalive_timeout: Duration::from_millis(keepalive_ms),
            park_after: Duration::from_millis(park_after_ms),
            ..Limits::default()
        }
    }

    /// One request read and answered.
    fn one_request(a: &Arc<Activity>) {
        a.on_read(b"GET / HTTP/1.1\r\n\r\n");
        drop(a.begin_request());
    }

    #[test]
    fn an_idle_connection_parks_park_after_into_its_idle_time() {
        let a = activity();
        let l = limits(30_000, 1_000);
        one_request(&a);
        let (at, what) = a.next_deadline(&l, true);
        assert_eq!(what, Expiry::Park);
        let since = a.last_done.load(Ordering::Relaxed);
        assert_eq!(at, since + 1_000);
        // Without parking, the same moment gives the keep-alive deadline.
        assert_eq!(a.next_deadline(&l, false), (since + 30_000, Expiry::Idle));
    }

    #[test]
    fn what_is_in_progress_is_never_parked() {
        let l = limits(30_000, 1_000);
        // A new connection: its first head has the header timeout.
        let a = activity();
        assert_eq!(a.next_deadline(&l, true).1, Expiry::HeaderTimeout);
        // A request in flight.
        let a = activity();
        a.on_read(b"GET / HTTP/1.1\r\n\r\n");
        let busy = a.begin_request();
        assert_eq!(a.next_deadline(&l, true).1, Expiry::Stalled);
        drop(busy);
        // A head begun after complete ones (the fast path's carry).
        a.head_pending();
        assert_eq!(a.next_deadline(&l, true).1, Expiry::HeaderTimeout);
        // HTTP/2 is hyper's: never parked.
        let a = activity();
        one_request(&a);
        a.h2.store(true, Ordering::Relaxed);
        assert_eq!(a.next_deadline(&l, true).1, Expiry::Idle);
    }

    #[test]
    fn no_park_when_the_keep_alive_deadline_comes_first() {
        let a = activity();
        one_request(&a);
        assert_eq!(a.next_deadline(&limits(1_000, 1_000), true).1, Expiry::Idle);
        assert_eq!(a.next_deadline(&limits(1_001, 1_000), true).1, Expiry::Park);
    }
}
