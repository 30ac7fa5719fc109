//! Date mode's estimator: the local clock's offset from a web server's `Date:` header,
//! bisecting the server's second boundary with timed probes. Sans-IO and deterministic: it
//! takes probes (when a request left, when its reply came back, the `Date:` it carried) and
//! says what interval holds the offset and when to send the next probe. The HTTP requests and
//! the pacing are `crate::client::date`'s.
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
//! another frame. The driver (`crate::client::date::measure`) watches `realtime − monotonic` (which, on Linux, slewing does
//! not change) and moves the held interval by any change it sees
//! ([`DateEstimator::local_clock_stepped`]); a probe straddling a step is widened by the step.
//!
//! **Where the model breaks.** A server that rounds its `Date` instead of truncating it is off
//! by up to half a second, undetectably. A cache or proxy serving a stored response with an
//! old `Date` (seconds or more out of date) yields an interval that misses the others:
//! [`DateEstimator::add`] reports it as [`EstimateError::Inconsistent`] rather than averaging it
//! in; staleness smaller than the interval's width at that point goes unnoticed.

use std::collections::VecDeque;
use std::fmt;

use super::time::Timestamp;

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

/// Why a probe cannot be taken into the estimate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EstimateError {
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
}

/// Nanoseconds shown as signed seconds with nine decimals, for messages.
pub(crate) struct Secs(pub(crate) i128);

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
    /// The reply's `Date:` header, in Unix seconds.
    pub date_secs: i64,
}

impl DateProbe {
    /// The interval this probe alone gives: `[D − t4, D + 1 s − t1)`.
    fn interval(&self) -> Result<OffsetInterval, EstimateError> {
        if self.t4 < self.t1 {
            return Err(EstimateError::ReplyBeforeRequest {
                t1: self.t1,
                t4: self.t4,
            });
        }
        // An i64 number of seconds times 10^9 always fits an i128.
        let d = i128::from(self.date_secs) * NANOS_PER_SEC;
        let low_ns = d
            .checked_sub(self.t4.as_nanos())
            .ok_or(EstimateError::OutOfRange)?;
        let high_ns = (d + NANOS_PER_SEC)
            .checked_sub(self.t1.as_nanos())
            .ok_or(EstimateError::OutOfRange)?;
        Ok(OffsetInterval { low_ns, high_ns })
    }

    /// `t4 - t1`, in nanoseconds.
    pub fn round_trip_ns(&self) -> i128 {
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
    /// intervals do not meet ([`EstimateError::Inconsistent`], naming both).
    pub fn add(&mut self, probe: &DateProbe) -> Result<(), EstimateError> {
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
                    return Err(EstimateError::Inconsistent { held, probe: fresh });
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
pub(crate) fn ceil_div(a: i128, b: i128) -> i128 {
    a / b + i128::from(a % b != 0)
}

/// Simulated networks for the tests here and the driver's.
#[cfg(test)]
pub(crate) mod sim {
    /// Where simulations start: Sat, 21 Nov 2026 15:50:02.123 GMT.
    pub(crate) const START: i128 = 1_795_276_202_123_456_789;

    /// Deterministic xorshift64 PRNG.
    pub(crate) struct XorShift(pub(crate) u64);

    impl XorShift {
        pub(crate) fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        /// Uniform in `[lo, hi]`.
        pub(crate) fn range(&mut self, lo: i128, hi: i128) -> i128 {
            lo + (self.next() as i128).rem_euclid(hi - lo + 1)
        }
    }

    /// One-way network delays: `up` and `down` ranges in nanoseconds.
    pub(crate) struct Net {
        pub(crate) up: (i128, i128),
        pub(crate) down: (i128, i128),
        pub(crate) rng: XorShift,
    }

    impl Net {
        pub(crate) fn fixed(up: i128, down: i128) -> Self {
            Net {
                up: (up, up),
                down: (down, down),
                rng: XorShift(1),
            }
        }

        pub(crate) fn jittery(up: (i128, i128), down: (i128, i128), seed: u64) -> Self {
            Net {
                up,
                down,
                rng: XorShift(seed | 1),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::sim::{Net, XorShift, START};
    use super::*;

    const MS: i128 = 1_000_000;
    const S: i128 = NANOS_PER_SEC;

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
            EstimateError::Inconsistent { held, probe } => {
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
        assert!(matches!(err, EstimateError::ReplyBeforeRequest { .. }));
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
        assert!(matches!(err, EstimateError::OutOfRange));
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
            Err(EstimateError::Inconsistent { .. })
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
}
