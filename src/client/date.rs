//! Date mode: the local clock's offset from any web server's `Date:` response header.
//!
//! This module owns the whole of Date mode except the HTTP request itself:
//!
//! - [`DateEstimator`], a sans-IO, deterministic estimator that turns timed probes into a
//!   guaranteed interval for the offset and says when to send the next probe;
//! - [`measure`], the driver that paces probes through a [`DateProber`] (the HTTP client,
//!   implemented elsewhere) and sleeps between them, its only I/O;
//! - [`parse_date_header`], which reads the header's value.
//!
//! # The geometry
//!
//! Write `L` for the local realtime clock, `S` for the server's clock and `θ = S − L` for the
//! offset we want, assumed constant for now (see *Drift* below). A probe is a request that
//! left at local time `t1` and whose reply arrived at `t4`. The server read its clock at some
//! unknown local instant `s ∈ [t1, t4]` and sent `D = ⌊s + θ⌋` (whole seconds, truncated, as
//! every common server formats its clock). So `D ≤ s + θ < D + 1`, that is
//! `D − s ≤ θ < D + 1 − s`, and since `s` may be anywhere in `[t1, t4]`:
//!
//! ```text
//!     θ ∈ [D − t4, D + 1 − t1)          width: 1 s + (t4 − t1)
//! ```
//!
//! Nothing here assumes a symmetric path: unlike NTP's midpoint estimate this interval is
//! certain under the model, and path asymmetry only changes how fast it narrows. Each probe
//! yields such an interval; the estimator keeps their intersection.
//!
//! **Bisection.** Let the held interval be `[lo, hi)`, of width `W`, with midpoint `M`. Pick a
//! whole server second `N` and send at `t1 = N − M − ρ/2`, where `ρ` is the typical round trip
//! seen so far and `ρ/2` our guess of when, after sending, the server reads its clock. If `θ`
//! were `M`, the server would read its clock exactly as it ticks over to `N`: the target
//! fraction of a second is 0, the boundary itself. With actual up-delay `u` (`s = t1 + u`) and
//! round trip `r`, `D = N` iff `θ ≥ N − s`, so the probe compares `θ` against `M + ρ/2 − u`,
//! and its two outcomes are
//!
//! ```text
//!     D = N:      low  := N − t4 = M + ρ/2 − r    ->  [M + ρ/2 − r, hi)   width W/2 + r − ρ/2
//!     D = N − 1:  high := N − t1 = M + ρ/2        ->  [lo, M + ρ/2)       width W/2 + ρ/2
//! ```
//!
//! (the probe's other bound lies a whole second further out, beyond the held interval). When
//! the round trip is as predicted (`r = ρ`) both halves have width `W/2 + r/2`, so the excess
//! over the round trip halves with every probe: `W_k − r = (W_0 − r) / 2^k`. The first probe,
//! sent at any time, gives `W_0 = 1 s + r`; eleven aimed probes then leave `r + 0.5 ms`.
//! Jittery or asymmetric delays only move the tested point away from `M` and unbalance the
//! halves; the interval stays correct.
//!
//! **The limit is the round trip.** Once `W ≤ r`, both cuts of an aimed probe,
//! `M + ρ/2 − r` and `M + ρ/2`, fall outside `[lo, hi)`: no probe slower than the interval is
//! wide can narrow it, just as NTP's error bound cannot beat half the round-trip delay. The
//! estimator detects this empirically: a probe that narrows the interval by less than an
//! eighth is a *stall*, and [`STALL_LIMIT`] stalls in a row end the measurement.
//!
//! **Drift.** `θ` is not quite constant: both clocks have frequency errors. Before each
//! intersection the held interval is widened by `φ · Δt`, with `Δt` the time since the
//! previous probe and `φ` the frequency tolerance ([`DEFAULT_FREQUENCY_TOLERANCE_PPM`], RFC
//! 5905's PHI), so the final interval bounds `θ` at the time of the last probe.
//!
//! **Steps.** If the local realtime clock is stepped while measuring, earlier probes are in
//! another frame. [`measure`] watches `realtime − monotonic` (which, on Linux, slewing does
//! not change) and moves the held interval by any change it sees
//! ([`DateEstimator::local_clock_stepped`]); a probe straddling a step is widened by the step.
//!
//! **Where the model breaks.** A server that rounds its `Date` instead of truncating it is off
//! by up to half a second, undetectably. A cache or proxy serving a stored response with an
//! old `Date` (seconds or more out of date) yields an interval that misses the others:
//! [`DateEstimator::add`] reports it as [`DateError::Inconsistent`] rather than averaging it
//! in; staleness smaller than the interval's width at that point goes unnoticed.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, UNIX_EPOCH};

use crate::clock::Clock;
use crate::wire::Timestamp;

const NANOS_PER_SEC: i128 = 1_000_000_000;

/// The fraction of a server second, in nanoseconds, at which an aimed probe should find the
/// server reading its clock: 0, the boundary itself, which splits the held interval at its
/// midpoint (see the module documentation).
pub const TARGET_FRACTION_NS: i128 = 0;

/// Consecutive probes that narrow the interval by less than an eighth before the estimator
/// declares that no further progress is possible.
pub const STALL_LIMIT: usize = 3;

/// Default bound on how fast the offset between the two clocks may wander, in parts per
/// million: RFC 5905's PHI (15 ppm).
pub const DEFAULT_FREQUENCY_TOLERANCE_PPM: u32 = 15;

/// Round trips remembered for predicting the next one.
const ROUND_TRIP_WINDOW: usize = 8;

/// Longest piece of a peer's header value quoted in an error message, in characters.
const MAX_QUOTED_CHARS: usize = 64;

/// Why a Date-mode measurement failed.
#[derive(Debug, thiserror::Error)]
pub enum DateError {
    /// A probe whose reply arrived before its request left: the prober's timestamps are wrong
    /// (or the local clock was stepped back during the request).
    #[error("probe reply arrived at {t4} before its request left at {t1}")]
    ReplyBeforeRequest {
        /// Local realtime when the request left.
        t1: Timestamp,
        /// Local realtime when the reply arrived.
        t4: Timestamp,
    },
    /// A probe whose offset interval does not meet the one held from earlier probes: the
    /// server's clock jumped, a cache served a stale `Date`, or the requests reached
    /// different servers. Either way this server cannot be trusted for this measurement.
    #[error(
        "inconsistent Date probes: this probe puts the offset in {probe} \
         but earlier probes put it in {held}"
    )]
    Inconsistent {
        /// The interval held from earlier probes (widened for drift).
        held: OffsetInterval,
        /// The interval this probe alone gives.
        probe: OffsetInterval,
    },
    /// Timestamps so far from 1970 that the arithmetic would overflow.
    #[error("probe timestamps out of range")]
    OutOfRange,
    /// A `Date:` header value that is not an HTTP-date.
    #[error("not an HTTP date: {value:?}")]
    BadHeader {
        /// The value received (at most 64 characters of it).
        value: String,
    },
    /// The prober could not complete a probe (connection refused, timeout, no `Date:` ...).
    #[error("Date probe failed: {0}")]
    Probe(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// [`measure`] was asked for zero probes.
    #[error("no probes allowed (max_probes is 0)")]
    NoProbes,
}

/// Nanoseconds shown as signed seconds with nine decimals, for messages.
struct Secs(i128);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "+" };
        let abs = self.0.unsigned_abs();
        let per_sec = NANOS_PER_SEC.unsigned_abs();
        write!(f, "{sign}{}.{:09} s", abs / per_sec, abs % per_sec)
    }
}

/// An interval for the offset `server − local`, in nanoseconds: `low_ns ≤ offset < high_ns`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OffsetInterval {
    /// Inclusive lower bound.
    pub low_ns: i128,
    /// Exclusive upper bound.
    pub high_ns: i128,
}

impl OffsetInterval {
    /// The middle of the interval (rounded towards negative infinity).
    pub fn midpoint(&self) -> i128 {
        self.low_ns + self.width().div_euclid(2)
    }

    /// `high − low`, in nanoseconds (saturating; never negative for an interval the
    /// estimator holds).
    pub fn width(&self) -> i128 {
        self.high_ns.saturating_sub(self.low_ns)
    }

    /// Whether `offset_ns` lies in `[low, high)`.
    pub fn contains(&self, offset_ns: i128) -> bool {
        self.low_ns <= offset_ns && offset_ns < self.high_ns
    }

    /// The interval grown by `by_ns` on both sides (saturating).
    fn widened(self, by_ns: i128) -> Self {
        OffsetInterval {
            low_ns: self.low_ns.saturating_sub(by_ns),
            high_ns: self.high_ns.saturating_add(by_ns),
        }
    }
}

impl fmt::Display for OffsetInterval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}, {})", Secs(self.low_ns), Secs(self.high_ns))
    }
}

/// One timed request: when it left, when its reply came back, and the reply's `Date:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateProbe {
    /// Local realtime just before the request left (its last byte was written).
    pub t1: Timestamp,
    /// Local realtime when the reply (its header block) arrived.
    pub t4: Timestamp,
    /// The reply's `Date:` header, in Unix seconds (see [`parse_date_header`]).
    pub date_secs: i64,
}

impl DateProbe {
    /// The interval this probe alone gives: `[D − t4, D + 1 s − t1)`.
    fn interval(&self) -> Result<OffsetInterval, DateError> {
        if self.t4 < self.t1 {
            return Err(DateError::ReplyBeforeRequest {
                t1: self.t1,
                t4: self.t4,
            });
        }
        // An i64 number of seconds times 10^9 always fits an i128.
        let d = i128::from(self.date_secs) * NANOS_PER_SEC;
        let low_ns = d
            .checked_sub(self.t4.as_nanos())
            .ok_or(DateError::OutOfRange)?;
        let high_ns = (d + NANOS_PER_SEC)
            .checked_sub(self.t1.as_nanos())
            .ok_or(DateError::OutOfRange)?;
        Ok(OffsetInterval { low_ns, high_ns })
    }

    fn round_trip_ns(&self) -> i128 {
        self.t4.nanos_since(self.t1)
    }
}

/// The sans-IO Date-mode estimator: intersects probe intervals and aims the next probe at the
/// server's second boundary so that each probe halves the interval. See the module
/// documentation for the derivation.
#[derive(Debug, Clone)]
pub struct DateEstimator {
    interval: Option<OffsetInterval>,
    frequency_tolerance_ppm: u32,
    /// The last accepted probe's request time, in the current local frame.
    last_t1: Option<Timestamp>,
    /// The most recent round trips, for predicting the next.
    round_trips: VecDeque<i128>,
    min_round_trip_ns: Option<i128>,
    probes: usize,
    stalled: usize,
}

impl Default for DateEstimator {
    fn default() -> Self {
        Self::new()
    }
}

impl DateEstimator {
    /// An estimator that knows nothing yet, with the default frequency tolerance.
    pub fn new() -> Self {
        DateEstimator {
            interval: None,
            frequency_tolerance_ppm: DEFAULT_FREQUENCY_TOLERANCE_PPM,
            last_t1: None,
            round_trips: VecDeque::with_capacity(ROUND_TRIP_WINDOW),
            min_round_trip_ns: None,
            probes: 0,
            stalled: 0,
        }
    }

    /// Use `ppm` as the bound on how fast the offset may wander between probes (0: assume
    /// both clocks run at exactly the same rate).
    pub fn with_frequency_tolerance_ppm(mut self, ppm: u32) -> Self {
        self.frequency_tolerance_ppm = ppm;
        self
    }

    /// Intersect the held interval with `probe`'s.
    ///
    /// Fails, leaving the estimator unchanged, if `probe.t4 < probe.t1` or if the two
    /// intervals do not meet ([`DateError::Inconsistent`], naming both).
    pub fn add(&mut self, probe: &DateProbe) -> Result<(), DateError> {
        let fresh = probe.interval()?;
        let round_trip = probe.round_trip_ns();
        let next = match self.interval {
            None => fresh,
            Some(held) => {
                // The offset may have wandered since the last probe: by at most φ·Δt, with Δt
                // measured from the earliest instant the last probe's reading can have been
                // taken to the latest this one's can.
                let elapsed = self
                    .last_t1
                    .map_or(0, |last| probe.t4.nanos_since(last).saturating_abs());
                let drift = ceil_div(
                    elapsed.saturating_mul(i128::from(self.frequency_tolerance_ppm)),
                    1_000_000,
                );
                let held = held.widened(drift);
                let low_ns = held.low_ns.max(fresh.low_ns);
                let high_ns = held.high_ns.min(fresh.high_ns);
                if low_ns >= high_ns {
                    return Err(DateError::Inconsistent { held, probe: fresh });
                }
                OffsetInterval { low_ns, high_ns }
            }
        };

        if let Some(before) = self.interval {
            let before = before.width();
            // Progress means shrinking by at least an eighth; bisection aims for a half.
            if next.width() > before - before / 8 {
                self.stalled += 1;
            } else {
                self.stalled = 0;
            }
        }
        self.interval = Some(next);
        self.last_t1 = Some(probe.t1);
        if self.round_trips.len() == ROUND_TRIP_WINDOW {
            self.round_trips.pop_front();
        }
        self.round_trips.push_back(round_trip);
        self.min_round_trip_ns = Some(
            self.min_round_trip_ns
                .map_or(round_trip, |m| m.min(round_trip)),
        );
        self.probes += 1;
        Ok(())
    }

    /// Tell the estimator that the local realtime clock was stepped by `step_ns` (positive:
    /// forward) since the probes it holds, known to within `uncertainty_ns`.
    ///
    /// The offset `server − local` then moved by `−step_ns`; the held interval follows it and
    /// grows by the uncertainty, so later probes, taken in the new frame, still intersect
    /// correctly.
    pub fn local_clock_stepped(&mut self, step_ns: i128, uncertainty_ns: i128) {
        if let Some(iv) = self.interval {
            self.interval = Some(
                OffsetInterval {
                    low_ns: iv.low_ns.saturating_sub(step_ns),
                    high_ns: iv.high_ns.saturating_sub(step_ns),
                }
                .widened(uncertainty_ns.saturating_abs()),
            );
        }
        self.last_t1 = self.last_t1.map(|t| t.add_nanos(step_ns));
    }

    /// The interval the offset lies in, once at least one probe was added.
    pub fn interval(&self) -> Option<OffsetInterval> {
        self.interval
    }

    /// Probes added so far.
    pub fn probes(&self) -> usize {
        self.probes
    }

    /// The shortest round trip seen, in nanoseconds.
    pub fn min_round_trip_ns(&self) -> Option<i128> {
        self.min_round_trip_ns
    }

    /// The round trip expected for the next probe: the median of the recent ones (0 before
    /// the first probe).
    fn typical_round_trip_ns(&self) -> i128 {
        let mut recent: Vec<i128> = self.round_trips.iter().copied().collect();
        recent.sort_unstable();
        recent.get(recent.len() / 2).copied().unwrap_or(0)
    }

    /// When to send the next probe, in local realtime.
    ///
    /// Before the first probe: `now + min_gap_ns` (any time will do). After it: the first
    /// instant `t ≥ now + min_gap_ns` such that, if the offset were the interval's midpoint
    /// `M`, the server's clock would be [`TARGET_FRACTION_NS`] into a second at `t + ρ/2`,
    /// when (half the typical round trip `ρ` after sending) we expect it to read it. The
    /// result is always less than a second after `now + min_gap_ns`.
    pub fn next_send_time(&self, now: Timestamp, min_gap_ns: i128) -> Timestamp {
        let earliest = now.add_nanos(min_gap_ns.max(0));
        let Some(iv) = self.interval else {
            return earliest;
        };
        let lead = self.typical_round_trip_ns() / 2;
        // The server time we predict it would read if we sent at `earliest`.
        let predicted = earliest
            .as_nanos()
            .saturating_add(lead)
            .saturating_add(iv.midpoint());
        let wait =
            (TARGET_FRACTION_NS - predicted.rem_euclid(NANOS_PER_SEC)).rem_euclid(NANOS_PER_SEC);
        earliest.add_nanos(wait)
    }

    /// Whether further probes are pointless: the interval is at most `resolution_ns` wide, or
    /// [`STALL_LIMIT`] probes in a row barely narrowed it (it is down to about a round trip).
    pub fn done(&self, resolution_ns: i128) -> bool {
        self.interval
            .is_some_and(|iv| iv.width() <= resolution_ns || self.stalled >= STALL_LIMIT)
    }
}

/// `⌈a / b⌉` for `a ≥ 0`, `b > 0`.
fn ceil_div(a: i128, b: i128) -> i128 {
    a / b + i128::from(a % b != 0)
}

/// A boxed probe in flight, as returned by [`DateProber::probe`].
pub type ProbeFuture<'a> = Pin<Box<dyn Future<Output = Result<DateProbe, DateError>> + Send + 'a>>;

/// Something that can time one request to a web server: the HTTP side of Date mode.
///
/// Implementations should reuse a warm (keep-alive) connection, read `t1` from the same
/// [`Clock`] handed to [`measure`] just before writing the request and `t4` as soon as the
/// response head arrives, send requests a cache will not answer (e.g. `HEAD` with
/// `Cache-Control: no-cache`), and enforce their own timeout. The trait is object safe, so a
/// daemon can keep `Box<dyn DateProber>`s for different servers.
pub trait DateProber: Send {
    /// Send one request now and report its timing and `Date:`.
    fn probe(&mut self) -> ProbeFuture<'_>;
}

/// How [`measure`] paces and ends a measurement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateOptions {
    /// Most probes to send (default 12).
    pub max_probes: usize,
    /// Stop once the interval is this narrow (default 2 ms).
    pub resolution: Duration,
    /// Least time between one probe's reply and the next request (default 50 ms).
    pub min_gap: Duration,
    /// Bound on how fast the offset may wander, in ppm (default
    /// [`DEFAULT_FREQUENCY_TOLERANCE_PPM`]).
    pub frequency_tolerance_ppm: u32,
}

impl Default for DateOptions {
    fn default() -> Self {
        DateOptions {
            max_probes: 12,
            resolution: Duration::from_millis(2),
            min_gap: Duration::from_millis(50),
            frequency_tolerance_ppm: DEFAULT_FREQUENCY_TOLERANCE_PPM,
        }
    }
}

/// What a Date-mode measurement found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateResult {
    /// The offset `server − local`, in nanoseconds: the final interval's midpoint.
    pub offset_ns: i128,
    /// Half the final interval's width, rounded up: the true offset is within
    /// `offset_ns ± error_ns`, given the model (a truncated `Date`, clocks within the
    /// frequency tolerance).
    pub error_ns: i128,
    /// Probes sent.
    pub probes: usize,
    /// The shortest round trip seen, in nanoseconds.
    pub min_round_trip_ns: i128,
    /// Local realtime (in the clock's current frame) of the last probe, to which the offset
    /// refers: the middle of its request and reply.
    pub measured_at: Timestamp,
}

/// The local clock's frame: `realtime − monotonic`, read between two monotonic readings.
#[derive(Debug, Clone, Copy)]
struct Frame {
    offset_ns: i128,
    uncertainty_ns: i128,
}

impl Frame {
    fn read(clock: &dyn Clock) -> Self {
        let m1 = i128::from(clock.monotonic_ns());
        let r = clock.realtime().as_nanos();
        let m2 = i128::from(clock.monotonic_ns());
        Frame {
            offset_ns: r.saturating_sub(m1 + (m2 - m1) / 2),
            uncertainty_ns: ceil_div((m2 - m1).max(0), 2),
        }
    }

    /// How far the realtime clock was stepped between `earlier` and `self`, and to within
    /// how much.
    fn step_since(&self, earlier: &Frame) -> (i128, i128) {
        (
            self.offset_ns.saturating_sub(earlier.offset_ns),
            self.uncertainty_ns.saturating_add(earlier.uncertainty_ns),
        )
    }
}

/// Steps smaller than this are followed silently; larger ones are also logged.
const STEP_LOG_THRESHOLD_NS: i128 = 1_000_000;

fn duration_ns(d: Duration) -> i128 {
    i128::try_from(d.as_nanos()).unwrap_or(i128::MAX)
}

/// Measure the offset of `prober`'s server from `clock` in Date mode.
///
/// Sends the first probe at once, then sleeps until [`DateEstimator::next_send_time`] before
/// each further one, until the estimator is [done](DateEstimator::done) or
/// `opts.max_probes` were sent. Nothing depends on the local clock being close to right: the
/// aim comes from the measured interval, wherever it lies.
///
/// The delay is computed from `clock`'s realtime and slept with `tokio::time::sleep`, that is
/// on the monotonic clock: a realtime step cannot make it sleep for hours, and tests drive it
/// with tokio's paused time. Steps of the realtime clock seen between probes (a change in
/// `realtime − monotonic`) are followed, see [`DateEstimator::local_clock_stepped`].
///
/// Fails on the first probe error or inconsistent probe: a server whose `Date` contradicts
/// itself should not be trusted for this round. Must run inside a Tokio runtime with the time
/// driver enabled.
pub async fn measure<P>(
    prober: &mut P,
    clock: &dyn Clock,
    opts: &DateOptions,
) -> Result<DateResult, DateError>
where
    P: DateProber + ?Sized,
{
    if opts.max_probes == 0 {
        return Err(DateError::NoProbes);
    }
    let resolution_ns = duration_ns(opts.resolution);
    let min_gap_ns = duration_ns(opts.min_gap);
    let mut estimator =
        DateEstimator::new().with_frequency_tolerance_ppm(opts.frequency_tolerance_ppm);
    let mut reference = Frame::read(clock);
    let mut last = None;

    for sent in 0..opts.max_probes {
        if sent > 0 {
            let now = clock.realtime();
            let at = estimator.next_send_time(now, min_gap_ns);
            let delay = u64::try_from(at.nanos_since(now)).unwrap_or(0);
            if delay > 0 {
                tokio::time::sleep(Duration::from_nanos(delay)).await;
            }
        }

        let before = Frame::read(clock);
        let mut probe = prober.probe().await?;
        let after = Frame::read(clock);

        // Follow any step since the last probe into the current frame.
        let (step, uncertainty) = after.step_since(&reference);
        if step.saturating_abs() > STEP_LOG_THRESHOLD_NS {
            tracing::warn!(step = %Secs(step), "local clock stepped during Date measurement");
        }
        estimator.local_clock_stepped(step, uncertainty);
        reference = after;
        // A step during this probe leaves t1 and t4 in either frame: widen them by it.
        let (during, during_uncertainty) = after.step_since(&before);
        let slack = during.saturating_abs().saturating_add(during_uncertainty);
        if during.saturating_abs() > during_uncertainty {
            probe.t1 = probe.t1.add_nanos(-slack);
            probe.t4 = probe.t4.add_nanos(slack);
        }

        estimator.add(&probe)?;
        last = Some(probe);
        if let Some(iv) = estimator.interval() {
            tracing::debug!(
                probe = sent + 1,
                date = probe.date_secs,
                round_trip = %Secs(probe.round_trip_ns()),
                interval = %iv,
                "Date probe"
            );
        }
        if estimator.done(resolution_ns) {
            break;
        }
    }

    match (estimator.interval(), last, estimator.min_round_trip_ns()) {
        (Some(iv), Some(last), Some(min_round_trip_ns)) => {
            let width = iv.width();
            Ok(DateResult {
                offset_ns: iv.midpoint(),
                error_ns: ceil_div(width, 2),
                probes: estimator.probes(),
                min_round_trip_ns,
                measured_at: last.t1.add_nanos(last.round_trip_ns() / 2),
            })
        }
        // Unreachable: max_probes > 0 and every path out of the loop added a probe.
        _ => Err(DateError::NoProbes),
    }
}

/// Parse a `Date:` header value into Unix seconds.
///
/// Accepts IMF-fixdate (`Sat, 21 Nov 2026 15:50:02 GMT`) and, as RFC 9110 requires of
/// recipients, the obsolete RFC 850 and asctime forms; surrounding white space is ignored. The
/// weekday must match the date. Anything else is refused with (the start of) the value quoted.
pub fn parse_date_header(value: &str) -> Result<i64, DateError> {
    let bad = || DateError::BadHeader {
        value: value.chars().take(MAX_QUOTED_CHARS).collect(),
    };
    let t = httpdate::parse_http_date(value).map_err(|_| bad())?;
    // httpdate only produces years 1970-9999, so this is never before the epoch.
    let secs = t.duration_since(UNIX_EPOCH).map_err(|_| bad())?.as_secs();
    i64::try_from(secs).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::sync::Arc;

    const MS: i128 = 1_000_000;
    const S: i128 = NANOS_PER_SEC;

    /// Deterministic xorshift64 PRNG.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        /// Uniform in `[lo, hi]`.
        fn range(&mut self, lo: i128, hi: i128) -> i128 {
            lo + (self.next() as i128).rem_euclid(hi - lo + 1)
        }
    }

    /// One-way network delays: `up` and `down` ranges in nanoseconds.
    struct Net {
        up: (i128, i128),
        down: (i128, i128),
        rng: XorShift,
    }

    impl Net {
        fn fixed(up: i128, down: i128) -> Self {
            Net {
                up: (up, up),
                down: (down, down),
                rng: XorShift(1),
            }
        }

        fn jittery(up: (i128, i128), down: (i128, i128), seed: u64) -> Self {
            Net {
                up,
                down,
                rng: XorShift(seed | 1),
            }
        }
    }

    /// The date a server `offset` ahead of local time `s` sends.
    fn server_date(s: i128, offset: i128) -> i64 {
        i64::try_from((s + offset).div_euclid(S)).unwrap()
    }

    struct Outcome {
        interval: OffsetInterval,
        probes: usize,
        max_round_trip: i128,
    }

    /// Drive an estimator with virtual time against a server `offset` ahead of the local
    /// clock, starting at local time `start`; checks after every probe that the interval
    /// holds the true offset.
    fn simulate(offset: i128, start: i128, net: &mut Net, max_probes: usize) -> Outcome {
        let mut est = DateEstimator::new();
        let mut now = Timestamp::from_nanos(start);
        let mut max_round_trip = 0;
        for _ in 0..max_probes {
            let t1 = est.next_send_time(now, 50 * MS);
            assert!(t1.nanos_since(now) >= 50 * MS);
            assert!(t1.nanos_since(now) < 50 * MS + S);
            let up = net.rng.range(net.up.0, net.up.1);
            let down = net.rng.range(net.down.0, net.down.1);
            let s = t1.as_nanos() + up;
            let t4 = Timestamp::from_nanos(s + down);
            let probe = DateProbe {
                t1,
                t4,
                date_secs: server_date(s, offset),
            };
            est.add(&probe).unwrap();
            max_round_trip = max_round_trip.max(up + down);
            now = t4;
            let iv = est.interval().unwrap();
            assert!(iv.contains(offset), "offset {} outside {iv}", Secs(offset));
            if est.done(2 * MS) {
                break;
            }
        }
        Outcome {
            interval: est.interval().unwrap(),
            probes: est.probes(),
            max_round_trip,
        }
    }

    const START: i128 = 1_795_276_202_123_456_789; // Sat, 21 Nov 2026 15:50:02.123 GMT

    #[test]
    fn fixed_symmetric_delay_converges_to_the_round_trip() {
        for offset in [312_700_000, -900_000_000, 2 * 3600 * S + 500_000_000, 0] {
            let o = simulate(offset, START, &mut Net::fixed(MS, MS), 12);
            let half = ceil_div(o.interval.width(), 2);
            eprintln!(
                "fixed 1 ms each way, offset {}: {} probes, half-width {} ns",
                Secs(offset),
                o.probes,
                half
            );
            assert!(o.probes <= 12);
            // Round trip 2 ms: the width tends to 2 ms + 1 s / 2^11.
            assert!(half <= 2 * MS, "half-width {half} ns");
        }
    }

    #[test]
    fn fixed_asymmetric_delay_stays_honest() {
        // 0.5 ms up, 3.5 ms down: NTP would be off by 1.5 ms without knowing it.
        for offset in [312_700_000, -900_000_000, 2 * 3600 * S + 500_000_000, 0] {
            let o = simulate(offset, START, &mut Net::fixed(MS / 2, 7 * MS / 2), 12);
            let half = ceil_div(o.interval.width(), 2);
            eprintln!(
                "fixed 0.5/3.5 ms, offset {}: {} probes, half-width {} ns",
                Secs(offset),
                o.probes,
                half
            );
            // 2 ms + the 1.5 ms one-way asymmetry.
            assert!(half <= 2 * MS + 3 * MS / 2, "half-width {half} ns");
        }
    }

    #[test]
    fn jittery_delay_keeps_the_offset_inside_and_narrows_to_a_few_round_trips() {
        for (i, offset) in [312_700_000, -900_000_000, 2 * 3600 * S + 500_000_000, 0]
            .into_iter()
            .enumerate()
        {
            let mut net = Net::jittery((MS, 5 * MS), (MS, 5 * MS), 0x5eed + i as u64);
            let o = simulate(offset, START, &mut net, 12);
            let half = ceil_div(o.interval.width(), 2);
            eprintln!(
                "jitter 1-5 ms each way, offset {}: {} probes, half-width {} ns, max rtt {} ns",
                Secs(offset),
                o.probes,
                half,
                o.max_round_trip
            );
            assert!(half <= o.max_round_trip, "half-width {half} ns");
        }
    }

    #[test]
    fn property_true_offset_always_inside() {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let mut worst_excess = i128::MIN;
        let mut total_half = 0;
        for seed in 0..200u64 {
            // Offsets up to +-3 h at nanosecond resolution; local clocks from before 1970
            // to 2100.
            let offset = rng.range(-3 * 3600 * S, 3 * 3600 * S);
            let start = rng.range(-10 * S, 4_102_444_800 * S);
            let (up, down) = match seed % 3 {
                0 => ((MS, MS), (MS, MS)),
                1 => ((MS, 5 * MS), (MS, 5 * MS)),
                // Asymmetric: a slow uplink.
                _ => ((5 * MS, 40 * MS), (MS, 3 * MS)),
            };
            let mut net = Net::jittery(up, down, seed.wrapping_mul(0x2545_F491_4F6C_DD1D));
            let o = simulate(offset, start, &mut net, 12);
            let half = ceil_div(o.interval.width(), 2);
            assert!(o.interval.contains(offset));
            assert!(
                half <= o.max_round_trip,
                "seed {seed}: half-width {half} ns"
            );
            worst_excess = worst_excess.max(half - o.max_round_trip / 2);
            total_half += half;
        }
        eprintln!(
            "200 runs: mean half-width {} ns, worst half-width minus max rtt/2 {} ns",
            total_half / 200,
            worst_excess
        );
    }

    #[test]
    fn slow_round_trips_stop_early_on_stalls() {
        // 150 ms each way: the interval cannot get much below 300 ms.
        let o = simulate(312_700_000, START, &mut Net::fixed(150 * MS, 150 * MS), 12);
        assert!(o.probes < 12, "{} probes", o.probes);
        assert!(o.interval.width() < 320 * MS);
    }

    #[test]
    fn first_probe_gives_one_second_plus_the_round_trip() {
        let mut est = DateEstimator::new();
        assert!(est.interval().is_none());
        assert!(!est.done(i128::MAX));
        let now = Timestamp::from_nanos(START);
        assert_eq!(
            est.next_send_time(now, 50 * MS),
            now.add_nanos(50 * MS),
            "no interval yet: any time"
        );
        let t1 = Timestamp::from_secs(1000).add_nanos(250 * MS);
        let t4 = t1.add_nanos(4 * MS);
        est.add(&DateProbe {
            t1,
            t4,
            date_secs: 990,
        })
        .unwrap();
        let iv = est.interval().unwrap();
        // [990 - 1000.254, 991 - 1000.25) = [-10.254, -9.25)
        assert_eq!(iv.low_ns, -10_254 * MS);
        assert_eq!(iv.high_ns, -9_250 * MS);
        assert_eq!(iv.width(), S + 4 * MS);
        assert_eq!(iv.midpoint(), -9_752 * MS);
    }

    #[test]
    fn next_send_time_aims_the_servers_read_at_its_second_boundary() {
        let mut est = DateEstimator::new();
        let t1 = Timestamp::from_secs(1000);
        est.add(&DateProbe {
            t1,
            t4: t1.add_nanos(10 * MS),
            date_secs: 1000,
        })
        .unwrap();
        let m = est.interval().unwrap().midpoint(); // (1 s + 10 ms) / 2 - 10 ms = 495 ms
        assert_eq!(m, 495 * MS);
        let now = t1.add_nanos(10 * MS);
        let at = est.next_send_time(now, 50 * MS);
        assert!(at >= now.add_nanos(50 * MS));
        assert!(at < now.add_nanos(50 * MS + S));
        // At send + rtt/2 the predicted server time is a whole second.
        assert_eq!((at.as_nanos() + 5 * MS + m).rem_euclid(S), 0);
        // Local 1000.500: predicted server 1000.500 + 0.005 + 0.495 = 1001.000.
        assert_eq!(at, Timestamp::from_nanos(1000 * S + 500 * MS));
    }

    #[test]
    fn a_date_that_jumps_back_is_inconsistent() {
        let mut est = DateEstimator::new();
        let t1 = Timestamp::from_secs(1000);
        est.add(&DateProbe {
            t1,
            t4: t1.add_nanos(2 * MS),
            date_secs: 1000,
        })
        .unwrap();
        let before = est.interval();
        let t1 = Timestamp::from_secs(1010).add_nanos(500 * MS);
        let err = est
            .add(&DateProbe {
                t1,
                t4: t1.add_nanos(2 * MS),
                date_secs: 1005,
            })
            .unwrap_err();
        match &err {
            DateError::Inconsistent { held, probe } => {
                assert!(held.contains(0));
                assert_eq!(probe.low_ns, -5_502 * MS);
                assert_eq!(probe.high_ns, -4_500 * MS);
            }
            other => panic!("unexpected {other}"),
        }
        let text = err.to_string();
        assert!(text.contains("[-5.502000000 s, -4.500000000 s)"), "{text}");
        assert!(text.contains("[-0.002"), "{text}");
        assert_eq!(est.interval(), before, "a refused probe changes nothing");
        assert_eq!(est.probes(), 1);
    }

    #[test]
    fn reply_before_request_is_refused() {
        let mut est = DateEstimator::new();
        let t1 = Timestamp::from_secs(1000);
        let err = est
            .add(&DateProbe {
                t1,
                t4: t1.add_nanos(-1),
                date_secs: 1000,
            })
            .unwrap_err();
        assert!(matches!(err, DateError::ReplyBeforeRequest { .. }));
        assert!(est.interval().is_none());
    }

    #[test]
    fn absurd_timestamps_are_refused_without_overflow() {
        let mut est = DateEstimator::new();
        let err = est
            .add(&DateProbe {
                t1: Timestamp::from_nanos(i128::MIN),
                t4: Timestamp::from_nanos(i128::MIN + 1),
                date_secs: i64::MAX,
            })
            .unwrap_err();
        assert!(matches!(err, DateError::OutOfRange));
        // next_send_time saturates instead of overflowing.
        let mut est = DateEstimator::new();
        est.add(&DateProbe {
            t1: Timestamp::from_secs(0),
            t4: Timestamp::from_secs(0),
            date_secs: 0,
        })
        .unwrap();
        let _ = est.next_send_time(Timestamp::from_nanos(i128::MAX - 5), i128::MAX);
        let _ = est.next_send_time(Timestamp::from_nanos(i128::MIN + 5), 0);
        est.local_clock_stepped(i128::MIN, i128::MIN);
        let _ = est.next_send_time(Timestamp::from_nanos(i128::MIN), 0);
        let _ = est.interval().unwrap().midpoint();
    }

    #[test]
    fn drift_allowance_grows_with_the_time_between_probes() {
        // The offset moves by 10 ms over about 1000 s (10 ppm): accepted within 15 ppm,
        // refused at 0 ppm.
        let first = DateProbe {
            t1: Timestamp::from_secs(1000),
            t4: Timestamp::from_secs(1000),
            date_secs: 1000,
        }; // [0, 1 s)
        let later = DateProbe {
            t1: Timestamp::from_nanos(1999 * S - 10 * MS),
            t4: Timestamp::from_nanos(1999 * S - 10 * MS),
            date_secs: 2000,
        }; // [1.01 s, 2.01 s): 10 ms beyond the first interval
        let mut strict = DateEstimator::new().with_frequency_tolerance_ppm(0);
        strict.add(&first).unwrap();
        let mut tolerant = strict.clone().with_frequency_tolerance_ppm(15);
        assert!(matches!(
            strict.add(&later),
            Err(DateError::Inconsistent { .. })
        ));
        tolerant.add(&later).unwrap();
        let iv = tolerant.interval().unwrap();
        // Widened by 15 ppm of 998.99 s = 14.98485 ms: [1.01 s, 1.01498485 s).
        assert_eq!(iv.low_ns, 1_010 * MS);
        assert_eq!(iv.high_ns, S + 14_984_850);
    }

    #[test]
    fn a_local_step_moves_the_held_interval() {
        let mut est = DateEstimator::new();
        let t1 = Timestamp::from_secs(1000);
        est.add(&DateProbe {
            t1,
            t4: t1,
            date_secs: 1000,
        })
        .unwrap(); // [0, 1 s)
        est.local_clock_stepped(3 * S, 10);
        let iv = est.interval().unwrap();
        assert_eq!(iv.low_ns, -3 * S - 10);
        assert_eq!(iv.high_ns, -2 * S + 10);
    }

    // ----- measure(), over tokio's paused time -----

    /// A clock whose realtime and monotonic readings both follow tokio's (paused, virtual)
    /// time, so the sleeps in `measure` and the network delays of the fake prober move it; the
    /// realtime clock can also be stepped.
    struct TokioClock {
        start: tokio::time::Instant,
        base_ns: i128,
        step_ns: AtomicI64,
    }

    impl TokioClock {
        fn new(base_ns: i128) -> Self {
            TokioClock {
                start: tokio::time::Instant::now(),
                base_ns,
                step_ns: AtomicI64::new(0),
            }
        }

        fn step(&self, ns: i64) {
            self.step_ns.fetch_add(ns, Ordering::SeqCst);
        }
    }

    impl Clock for TokioClock {
        fn realtime(&self) -> Timestamp {
            Timestamp::from_nanos(
                self.base_ns
                    + i128::from(self.monotonic_ns())
                    + i128::from(self.step_ns.load(Ordering::SeqCst)),
            )
        }

        fn monotonic_ns(&self) -> i64 {
            i64::try_from(self.start.elapsed().as_nanos()).unwrap()
        }
    }

    /// A server `offset_ns` ahead of the *unstepped* local clock, over a jittery network.
    struct FakeProber {
        clock: Arc<TokioClock>,
        offset_ns: i128,
        net: Net,
        sent: usize,
        /// Step the local clock by this much just before the probe with this index.
        step_before: Option<(usize, i64)>,
        /// Step the local clock by this much between t1 and t4 of the probe with this index.
        step_during: Option<(usize, i64)>,
        fail_at: Option<usize>,
    }

    impl FakeProber {
        fn new(clock: Arc<TokioClock>, offset_ns: i128, net: Net) -> Self {
            FakeProber {
                clock,
                offset_ns,
                net,
                sent: 0,
                step_before: None,
                step_during: None,
                fail_at: None,
            }
        }

        fn true_time(&self) -> i128 {
            self.clock.base_ns + i128::from(self.clock.monotonic_ns()) + self.offset_ns
        }
    }

    impl DateProber for FakeProber {
        fn probe(&mut self) -> ProbeFuture<'_> {
            Box::pin(async move {
                let n = self.sent;
                self.sent += 1;
                if self.fail_at == Some(n) {
                    return Err(DateError::Probe("connection reset".into()));
                }
                if let Some((at, by)) = self.step_before {
                    if at == n {
                        self.clock.step(by);
                    }
                }
                let up = self.net.rng.range(self.net.up.0, self.net.up.1);
                let down = self.net.rng.range(self.net.down.0, self.net.down.1);
                let t1 = self.clock.realtime();
                tokio::time::sleep(Duration::from_nanos(up as u64)).await;
                let date_secs = i64::try_from(self.true_time().div_euclid(S)).unwrap();
                if let Some((at, by)) = self.step_during {
                    if at == n {
                        self.clock.step(by);
                    }
                }
                tokio::time::sleep(Duration::from_nanos(down as u64)).await;
                let t4 = self.clock.realtime();
                Ok(DateProbe { t1, t4, date_secs })
            })
        }
    }

    fn assert_contains(r: &DateResult, offset: i128) {
        assert!(
            (r.offset_ns - offset).abs() <= r.error_ns,
            "true offset {} not within {} +- {} ns",
            Secs(offset),
            Secs(r.offset_ns),
            r.error_ns
        );
    }

    #[tokio::test(start_paused = true)]
    async fn measure_finds_the_offset_with_paused_time() {
        for (i, offset) in [312_700_000i128, -900_000_000, 2 * 3600 * S + 500_000_000, 0]
            .into_iter()
            .enumerate()
        {
            let clock = Arc::new(TokioClock::new(START));
            let net = Net::jittery((MS, 5 * MS), (MS, 5 * MS), 77 + i as u64);
            let mut prober = FakeProber::new(clock.clone(), offset, net);
            let began = tokio::time::Instant::now();
            let r = measure(&mut prober, clock.as_ref(), &DateOptions::default())
                .await
                .unwrap();
            assert_contains(&r, offset);
            assert!(r.probes <= 12 && r.probes == prober.sent);
            assert!(r.error_ns <= 10 * MS, "error {} ns", r.error_ns);
            assert!(r.min_round_trip_ns >= 2 * MS);
            // One probe per server second at most, plus the gaps.
            assert!(began.elapsed() < Duration::from_secs(13));
            eprintln!(
                "measure, offset {}: {} +- {} ns after {} probes in {:?}",
                Secs(offset),
                Secs(r.offset_ns),
                r.error_ns,
                r.probes,
                began.elapsed()
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn measure_works_with_a_local_clock_hours_off_and_before_a_boundary() {
        // Local clock 5 h 17 min behind a right server, starting just before a local second.
        let offset = (5 * 3600 + 17 * 60) * S + 999_999_999;
        let clock = Arc::new(TokioClock::new(START - START.rem_euclid(S) + S - 1));
        let mut prober = FakeProber::new(clock.clone(), offset, Net::fixed(MS, MS));
        let r = measure(&mut prober, clock.as_ref(), &DateOptions::default())
            .await
            .unwrap();
        assert_contains(&r, offset);
        assert!(r.error_ns <= 2 * MS, "error {} ns", r.error_ns);
    }

    #[tokio::test(start_paused = true)]
    async fn measure_follows_local_clock_steps() {
        let offset = 312_700_000;
        let clock = Arc::new(TokioClock::new(START));
        let mut prober = FakeProber::new(clock.clone(), offset, Net::fixed(MS, 2 * MS));
        // +0.7 s between probes, then -0.25 s in the middle of a probe.
        prober.step_before = Some((3, 700_000_000));
        prober.step_during = Some((5, -250_000_000));
        let r = measure(&mut prober, clock.as_ref(), &DateOptions::default())
            .await
            .unwrap();
        // Relative to the stepped clock, the server is 0.45 s less ahead.
        assert_contains(&r, offset - 700_000_000 + 250_000_000);
        assert!(r.error_ns < 10 * MS, "error {} ns", r.error_ns);
    }

    #[tokio::test(start_paused = true)]
    async fn measure_reports_probe_errors_and_bad_options() {
        let clock = Arc::new(TokioClock::new(START));
        let mut prober = FakeProber::new(clock.clone(), 0, Net::fixed(MS, MS));
        prober.fail_at = Some(2);
        let err = measure(&mut prober, clock.as_ref(), &DateOptions::default())
            .await
            .unwrap_err();
        assert!(matches!(err, DateError::Probe(_)), "{err}");

        let opts = DateOptions {
            max_probes: 0,
            ..DateOptions::default()
        };
        let err = measure(&mut prober, clock.as_ref(), &opts)
            .await
            .unwrap_err();
        assert!(matches!(err, DateError::NoProbes));
    }

    #[tokio::test(start_paused = true)]
    async fn measure_takes_a_boxed_dyn_prober() {
        let clock = Arc::new(TokioClock::new(START));
        let mut prober: Box<dyn DateProber> = Box::new(FakeProber::new(
            clock.clone(),
            -900_000_000,
            Net::fixed(MS, MS),
        ));
        let opts = DateOptions {
            max_probes: 1,
            ..DateOptions::default()
        };
        let r = measure(prober.as_mut(), clock.as_ref(), &opts)
            .await
            .unwrap();
        assert_eq!(r.probes, 1);
        assert_eq!(r.error_ns, (S + 2 * MS) / 2);
        assert_contains(&r, -900_000_000);
    }

    // ----- parse_date_header -----

    #[test]
    fn parses_http_dates() {
        assert_eq!(
            parse_date_header("Sat, 21 Nov 2026 15:50:02 GMT").unwrap(),
            1_795_276_202
        );
        assert_eq!(
            parse_date_header("  Thu, 01 Jan 1970 00:00:00 GMT ").unwrap(),
            0
        );
        // The obsolete forms recipients must accept (RFC 9110, 5.6.7).
        assert_eq!(
            parse_date_header("Sat Nov 21 15:50:02 2026").unwrap(),
            1_795_276_202
        );
        assert_eq!(
            parse_date_header("Sunday, 06-Nov-94 08:49:37 GMT").unwrap(),
            784_111_777
        );
        // What a server formats is what we parse back.
        let st = UNIX_EPOCH + Duration::from_secs(1_795_276_202);
        assert_eq!(
            parse_date_header(&httpdate::fmt_http_date(st)).unwrap(),
            1_795_276_202
        );
    }

    #[test]
    fn refuses_garbage_quoting_it() {
        for bad in [
            "",
            "garbage",
            "1795276202",
            "Fri, 21 Nov 2026 15:50:02 GMT", // wrong weekday
            "Sat, 21 Nov 2026 24:00:00 GMT",
            "Sat, 21 Nov 2026 15:50:02 CET",
            "Sat, 21 Nov 2026 15:50:02.5 GMT",
            "Sät, 21 Nov 2026 15:50:02 GMT",
        ] {
            let err = parse_date_header(bad).unwrap_err();
            assert!(
                err.to_string().contains(&format!("{bad:?}")),
                "{bad:?}: {err}"
            );
        }
        let long = "x".repeat(1000);
        let err = parse_date_header(&long).unwrap_err().to_string();
        assert!(err.len() < 100, "{err}");
    }
}
