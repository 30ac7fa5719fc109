//! Clocks: the one place webntpd reads the time.
//!
//! Everything that stamps a packet or decides "is this list expired" asks a [`Clock`], never
//! `SystemTime::now()` directly, so tests can run a server whose clock is off by a known amount
//! ([`ShiftedClock`]) and prove the client measures exactly that offset.
//!
//! Time is kept as integer nanoseconds: [`Timestamp`] for the realtime (UTC, POSIX) clock and
//! plain `i64` nanoseconds for the monotonic clock, which only ever appears as a difference.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::sync::Timestamp;

/// A source of realtime and monotonic time.
pub trait Clock: Send + Sync + 'static {
    /// The realtime clock (`CLOCK_REALTIME`): nanoseconds since 1970-01-01 UTC, POSIX seconds
    /// (no leap seconds).
    fn realtime(&self) -> Timestamp;

    /// The monotonic clock, in nanoseconds since an arbitrary fixed point. Only differences
    /// between two readings mean anything; it never jumps when the realtime clock is stepped.
    fn monotonic_ns(&self) -> i64;

    /// The realtime clock as it read when the system's realtime clock read `at`, `age_ns`
    /// nanoseconds of real time ago: for bytes the kernel stamped on arrival
    /// ([`crate::net::rxstamp`]). The system clock answers `at` itself without reading the time
    /// again; a clock that does not follow real time ([`ManualClock`]) answers its current
    /// reading.
    fn realtime_back_to(&self, _at: Timestamp, age_ns: i64) -> Timestamp {
        self.realtime().add_nanos(-i128::from(age_ns))
    }

    /// The monotonic clock as it read `age_ns` nanoseconds of real time ago.
    fn monotonic_ago(&self, age_ns: i64) -> i64 {
        self.monotonic_ns() - age_ns
    }
}

/// The realtime clock minus the monotonic one, in nanoseconds: constant while the clock
/// runs or is slewed (slewing moves both alike), changed by exactly the step when it is
/// stepped. Offsets measured on different sides of a step compare after moving one by the
/// difference of their bases.
pub fn step_base_ns(clock: &dyn Clock) -> i64 {
    let mono = clock.monotonic_ns();
    let real = clock.realtime();
    let base = real.nanos_since(Timestamp::from_nanos(i128::from(mono)));
    i64::try_from(base).unwrap_or(if base < 0 { i64::MIN } else { i64::MAX })
}

/// A shared, dynamically dispatched clock, as handed to servers and clients.
pub type SharedClock = Arc<dyn Clock>;

/// The operating system's clocks.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl SystemClock {
    /// A [`SharedClock`] reading the system clocks.
    pub fn shared() -> SharedClock {
        Arc::new(SystemClock)
    }
}

/// The fixed point the monotonic readings count from (the first reading in this process).
fn monotonic_base() -> Instant {
    static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

impl Clock for SystemClock {
    fn realtime(&self) -> Timestamp {
        // `SystemTime::now` is `clock_gettime(CLOCK_REALTIME)` (a vDSO call, tens of ns).
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => Timestamp::from_nanos(d.as_nanos() as i128),
            // A clock set before 1970: still representable, as a negative timestamp.
            Err(e) => Timestamp::from_nanos(-(e.duration().as_nanos() as i128)),
        }
    }

    fn monotonic_ns(&self) -> i64 {
        let elapsed = Instant::now().saturating_duration_since(monotonic_base());
        i64::try_from(elapsed.as_nanos()).unwrap_or(i64::MAX)
    }

    fn realtime_back_to(&self, at: Timestamp, _age_ns: i64) -> Timestamp {
        at
    }
}

/// A clock that reads another clock's realtime shifted by a fixed number of nanoseconds.
///
/// Used by tests and the benchmark harness to build a server whose time is known to be off by
/// exactly `offset_ns`; the monotonic clock is not shifted.
#[derive(Clone)]
pub struct ShiftedClock {
    inner: SharedClock,
    offset_ns: i64,
}

impl ShiftedClock {
    /// `inner`'s realtime plus `offset_ns` (positive: this clock is ahead).
    pub fn new(inner: SharedClock, offset_ns: i64) -> Self {
        ShiftedClock { inner, offset_ns }
    }

    /// The shift applied to the realtime clock, in nanoseconds.
    pub fn offset_ns(&self) -> i64 {
        self.offset_ns
    }
}

impl Clock for ShiftedClock {
    fn realtime(&self) -> Timestamp {
        self.inner.realtime().add_nanos(i128::from(self.offset_ns))
    }

    fn monotonic_ns(&self) -> i64 {
        self.inner.monotonic_ns()
    }

    fn realtime_back_to(&self, at: Timestamp, age_ns: i64) -> Timestamp {
        self.inner
            .realtime_back_to(at, age_ns)
            .add_nanos(i128::from(self.offset_ns))
    }

    fn monotonic_ago(&self, age_ns: i64) -> i64 {
        self.inner.monotonic_ago(age_ns)
    }
}

/// A clock that stands still until told to move: for tests of time-dependent logic.
#[derive(Debug, Default)]
pub struct ManualClock {
    realtime_ns: std::sync::atomic::AtomicI64,
    monotonic_ns: std::sync::atomic::AtomicI64,
}

impl ManualClock {
    /// A clock reading `realtime` and monotonic 0.
    pub fn new(realtime: Timestamp) -> Self {
        let c = ManualClock::default();
        c.set_realtime(realtime);
        c
    }

    /// Set the realtime clock (clamped to the `i64` nanosecond range, years 1677-2262).
    pub fn set_realtime(&self, t: Timestamp) {
        let ns = i64::try_from(t.as_nanos()).unwrap_or(if t.as_nanos() < 0 {
            i64::MIN
        } else {
            i64::MAX
        });
        self.realtime_ns
            .store(ns, std::sync::atomic::Ordering::SeqCst);
    }

    /// Move both clocks forward by `ns` nanoseconds.
    pub fn advance(&self, ns: i64) {
        use std::sync::atomic::Ordering::SeqCst;
        self.realtime_ns.fetch_add(ns, SeqCst);
        self.monotonic_ns.fetch_add(ns, SeqCst);
    }
}

impl Clock for ManualClock {
    fn realtime(&self) -> Timestamp {
        Timestamp::from_nanos(i128::from(
            self.realtime_ns.load(std::sync::atomic::Ordering::SeqCst),
        ))
    }

    fn monotonic_ns(&self) -> i64 {
        self.monotonic_ns.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Stands still: real time passing does not move it, backwards either.
    fn realtime_back_to(&self, _at: Timestamp, _age_ns: i64) -> Timestamp {
        self.realtime()
    }

    fn monotonic_ago(&self, _age_ns: i64) -> i64 {
        self.monotonic_ns()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_clock_is_after_2020_and_monotonic_does_not_go_back() {
        let c = SystemClock;
        assert!(c.realtime().unix_seconds() > 1_577_836_800);
        let a = c.monotonic_ns();
        let b = c.monotonic_ns();
        assert!(b >= a);
    }

    #[test]
    fn shifted_clock_adds_its_offset() {
        let base = Arc::new(ManualClock::new(Timestamp::from_nanos(1_000_000_000_000)));
        let shifted = ShiftedClock::new(base.clone(), 250_000_000);
        assert_eq!(shifted.realtime().as_nanos(), 1_000_250_000_000);
        base.advance(5);
        assert_eq!(shifted.realtime().as_nanos(), 1_000_250_000_005);
        assert_eq!(shifted.monotonic_ns(), 5);
    }

    #[test]
    fn looking_back_follows_real_time_except_on_a_manual_clock() {
        let manual = Arc::new(ManualClock::new(Timestamp::from_nanos(1_000)));
        let at = Timestamp::from_nanos(500);
        assert_eq!(manual.realtime_back_to(at, 300).as_nanos(), 1_000);
        assert_eq!(manual.monotonic_ago(300), 0);
        // A shifted system clock keeps its shift when looking back.
        let shifted = ShiftedClock::new(SystemClock::shared(), 250_000_000);
        let before = SystemClock.realtime().as_nanos();
        let at = Timestamp::from_nanos(before - 1_000_000);
        let ago = shifted.realtime_back_to(at, 1_000_000).as_nanos();
        assert_eq!(ago, before + 249_000_000);
        // A clock known only by its readings looks back by the age.
        struct Reading(Timestamp);
        impl Clock for Reading {
            fn realtime(&self) -> Timestamp {
                self.0
            }
            fn monotonic_ns(&self) -> i64 {
                0
            }
        }
        let r = Reading(Timestamp::from_nanos(10_000));
        assert_eq!(r.realtime_back_to(at, 4_000).as_nanos(), 6_000);
        let mono = SystemClock.monotonic_ns();
        assert!(shifted.monotonic_ago(1_000_000) <= mono);
    }
}
