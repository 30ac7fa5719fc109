//! Timestamps taken at the socket edge.
//!
//! `StampedIo` wraps the TCP stream *below* TLS and the HTTP/WebSocket code. Once
//! [`Stamps::arm`]ed for an exchange, it records `t1` immediately before the first write
//! that hands request bytes to the kernel, and `t4` as soon as a read after that returns
//! reply bytes, before anything parses or decrypts them. go-webntp stamps before encoding
//! the request and after decoding the reply, which is where its 20-35 us bias comes from.
//!
//! Both the realtime clock (for the offset) and the monotonic clock (for the round trip) are
//! read at each edge. On a TCP socket `t4` is then moved back by the age of the reply's bytes
//! as the kernel stamped them ([`crate::net::rxstamp`]), so the time this task took to wake up is
//! not counted: the server does the same for `rt`, and the two wake-ups, which differ, no
//! longer skew the offset.

use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;

use crate::clock::SharedClock;
use crate::net::observe::{Observed, Observer};
use crate::net::rxstamp::RxStamp;
use crate::sync::Timestamp;

/// One edge: both clocks read together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edge {
    /// Realtime.
    pub real: Timestamp,
    /// Monotonic nanoseconds.
    pub mono_ns: i64,
}

#[derive(Debug, Default)]
struct State {
    armed: bool,
    t1: Option<Edge>,
    t4: Option<Edge>,
}

/// The stamps of the exchange in progress, shared by a `StampedIo` and its owner.
#[derive(Debug, Default)]
pub struct Stamps {
    state: Mutex<State>,
}

impl Stamps {
    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        // The lock is never held across anything that can panic.
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut state)
    }

    /// Start a new exchange: forget earlier stamps and catch the next write and reply.
    pub fn arm(&self) {
        self.with(|s| {
            *s = State {
                armed: true,
                t1: None,
                t4: None,
            }
        });
    }

    /// The exchange's `(t1, t4)`, if both were seen; disarms.
    pub fn take(&self) -> Option<(Edge, Edge)> {
        self.with(|s| {
            s.armed = false;
            Some((s.t1.take()?, s.t4.take()?))
        })
    }
}

/// A stream that stamps the edges of each armed exchange.
pub(crate) type StampedIo<T> = Observed<T, StampObserver>;

/// Wrap `inner`; the returned [`Stamps`] are shared with the caller. `rx`, when given, holds
/// the kernel's receive stamp of each read from `inner`.
pub(crate) fn stamped<T>(
    inner: T,
    clock: SharedClock,
    rx: Option<Arc<RxStamp>>,
) -> (StampedIo<T>, Arc<Stamps>) {
    let stamps = Arc::new(Stamps::default());
    let observer = StampObserver {
        stamps: stamps.clone(),
        clock,
        rx,
    };
    (Observed { inner, observer }, stamps)
}

/// Takes the clocks at the edges of an armed exchange.
pub(crate) struct StampObserver {
    stamps: Arc<Stamps>,
    clock: SharedClock,
    rx: Option<Arc<RxStamp>>,
}

impl StampObserver {
    fn edge(&self) -> Edge {
        Edge {
            real: self.clock.realtime(),
            mono_ns: self.clock.monotonic_ns(),
        }
    }
}

impl Observer for StampObserver {
    /// The clocks, read before the write when it may carry the request's first bytes.
    type Before = Option<Edge>;

    fn before_write(&self) -> Option<Edge> {
        let wants = self.stamps.with(|s| s.armed && s.t1.is_none());
        wants.then(|| self.edge())
    }

    fn written(&self, before: Option<Edge>, result: &Poll<io::Result<usize>>) {
        // Kept only if this write actually moved bytes.
        if let (Some(edge), Poll::Ready(Ok(n))) = (before, result) {
            if *n > 0 {
                self.stamps.with(|s| {
                    if s.armed && s.t1.is_none() {
                        s.t1 = Some(edge);
                    }
                });
            }
        }
    }

    fn read(&self, _data: &[u8]) {
        let wants = self
            .stamps
            .with(|s| s.armed && s.t1.is_some() && s.t4.is_none());
        if wants {
            let edge = match self.rx.as_ref().and_then(|rx| rx.arrival()) {
                Some((at, age)) => Edge {
                    real: self.clock.realtime_back_to(at, age),
                    mono_ns: self.clock.monotonic_ago(age),
                },
                None => self.edge(),
            };
            self.stamps.with(|s| s.t4 = Some(edge));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn stamps_the_first_write_and_the_first_reply_byte_of_an_armed_exchange() {
        let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_000)));
        let (client, mut server) = tokio::io::duplex(64);
        let (mut io, stamps) = stamped(client, clock.clone(), None);

        // Not armed: nothing recorded.
        io.write_all(b"warm").await.unwrap();
        assert_eq!(stamps.take(), None);

        stamps.arm();
        clock.advance(10);
        io.write_all(b"GET").await.unwrap(); // t1 at 1000 s + 10 ns
        clock.advance(5);
        io.write_all(b" more").await.unwrap(); // not t1
        let mut buf = [0u8; 8];
        server.read_exact(&mut buf).await.unwrap();
        server.write_all(b"reply").await.unwrap();
        clock.advance(100);
        let n = io.read(&mut buf).await.unwrap(); // t4 at + 115 ns
        assert!(n > 0);
        clock.advance(7);
        server.write_all(b"x").await.unwrap();
        let _ = io.read(&mut buf).await.unwrap(); // not t4
        let (t1, t4) = stamps.take().unwrap();
        assert_eq!(t1.real.as_nanos(), 1_000_000_000_010);
        assert_eq!(t4.real.as_nanos(), 1_000_000_000_115);
        assert_eq!(t4.mono_ns - t1.mono_ns, 105);
        // Taking disarms.
        assert_eq!(stamps.take(), None);
    }

    #[tokio::test]
    async fn on_tcp_t4_is_when_the_reply_arrived_not_when_it_was_read() {
        use crate::clock::{Clock, SystemClock};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        let (client, rx) = crate::net::rxstamp::RxStamped::new(client);
        let (mut io, stamps) = stamped(client, SystemClock::shared(), Some(rx));
        // Packet stamping is switched on in a deferred work item: give it a moment.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;

        stamps.arm();
        io.write_all(b"ask").await.unwrap();
        let mut buf = [0u8; 8];
        server.read_exact(&mut buf[..3]).await.unwrap();
        let replied = SystemClock.realtime();
        server.write_all(b"reply").await.unwrap();
        // Busy for 25 ms: the reply waits in the socket (well inside the 100 ms stamps are
        // trusted for, even on a loaded machine).
        std::thread::sleep(std::time::Duration::from_millis(25));
        assert!(io.read(&mut buf).await.unwrap() > 0);
        let (t1, t4) = stamps.take().unwrap();
        let late = t4.real.nanos_since(replied);
        assert!(
            (0..10_000_000).contains(&late),
            "t4 is the reply's arrival, {late} ns after it was sent"
        );
        let round_trip = t4.mono_ns - t1.mono_ns;
        assert!(
            (0..20_000_000).contains(&round_trip),
            "the round trip leaves out the 25 ms the reply waited: {round_trip} ns"
        );
    }

    #[tokio::test]
    async fn bytes_read_before_the_request_left_are_not_the_reply() {
        let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1)));
        let (client, mut server) = tokio::io::duplex(64);
        let (mut io, stamps) = stamped(client, clock.clone(), None);
        stamps.arm();
        server.write_all(b"early").await.unwrap();
        let mut buf = [0u8; 8];
        let _ = io.read(&mut buf).await.unwrap();
        assert_eq!(stamps.take(), None, "no t1 yet, so no t4");
    }
}
