//! What a reference-clock output is handed: one measured offset with the local time it was
//! measured at, the leap-second warning and the precision. Pure: no I/O, no clock reads,
//! integer nanoseconds until a writer encodes the fields.

use crate::leap::LeapInfo;
use crate::sample::Estimate;
use crate::wire::Timestamp;

const NANOS_PER_SEC: i128 = 1_000_000_000;
const SECS_PER_DAY: i64 = 86_400;

/// The NTP leap indicator, as SHM's `leap` and SOCK's `leap` fields carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leap {
    /// No leap second at the end of this UTC day.
    NoWarning = 0,
    /// The last minute of this UTC day has 61 seconds.
    InsertSecond = 1,
    /// The last minute of this UTC day has 59 seconds.
    DeleteSecond = 2,
    /// Alarm: not synchronised. chronyd drops such samples and ntpd never selects the
    /// source, so a segment that has not had a measurement yet carries it.
    Unsynchronised = 3,
}

impl Leap {
    /// The value written to the reader.
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// One measurement, as handed to every output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefSample {
    /// Local realtime when the measurement was taken: the reader's "receive" timestamp.
    pub receive: Timestamp,
    /// Reference time minus local time, in nanoseconds (positive: the local clock is behind).
    pub offset_ns: i64,
    /// The leap-second warning for the UTC day the sample falls in.
    pub leap: Leap,
    /// The sample's precision as a power of two in seconds (-10 is about 1 ms).
    pub precision: i32,
}

impl RefSample {
    /// The sample for a burst's estimate: received when the chosen reply arrived, with the
    /// estimate's offset, a precision covering its error bound, and the leap warning from the
    /// server's leap data (none when the server sent none).
    pub fn from_estimate(estimate: &Estimate, leap: Option<LeapInfo>) -> Self {
        let receive = estimate.best.at;
        let clock = receive.add_nanos(i128::from(estimate.offset_ns));
        RefSample {
            receive,
            offset_ns: estimate.offset_ns,
            leap: leap_warning(leap, clock),
            precision: precision_log2(estimate.error_bound_ns()),
        }
    }

    /// The reference ("true") time at the moment of `receive`: the reader's "clock"
    /// timestamp.
    pub fn clock(&self) -> Timestamp {
        self.receive.add_nanos(i128::from(self.offset_ns))
    }
}

/// The leap warning at `now` (reference time): [`Leap::InsertSecond`] or
/// [`Leap::DeleteSecond`] only during the UTC day that ends with the announced event, as NTP
/// does; [`Leap::NoWarning`] at any other time, for an event that is not at midnight UTC (no
/// leap second can be), and without leap data.
pub fn leap_warning(info: Option<LeapInfo>, now: Timestamp) -> Leap {
    let Some(info) = info else {
        return Leap::NoWarning;
    };
    let event = info.next_unix;
    let now = now.unix_seconds();
    let last_day = event.rem_euclid(SECS_PER_DAY) == 0
        && now < event
        && now >= event.saturating_sub(SECS_PER_DAY);
    match info.step {
        1 if last_day => Leap::InsertSecond,
        -1 if last_day => Leap::DeleteSecond,
        _ => Leap::NoWarning,
    }
}

/// Smallest precision written, about 1 ns.
pub const MIN_PRECISION: i32 = -30;

/// The precision for an error bound: `ceil(log2(error in seconds))`, the smallest power of two
/// seconds that covers the bound, at least [`MIN_PRECISION`]. A 17.5 µs bound gives -15
/// (30.5 µs); 1 s gives 0. Integer arithmetic only.
pub fn precision_log2(error_ns: i64) -> i32 {
    let error = u128::from(error_ns.max(1).unsigned_abs());
    let second = NANOS_PER_SEC as u128;
    if error > second {
        let mut p = 0;
        while second << p < error {
            p += 1;
        }
        return p;
    }
    // The largest k with error * 2^k <= 1 s: then 2^-k s >= error > 2^-(k+1) s.
    let mut k = 0;
    while k < -MIN_PRECISION && error << (k + 1) <= second {
        k += 1;
    }
    -k
}

/// Whole seconds (rounded down) and the nanoseconds past them, as `timespec` splits a time.
pub fn split(t: Timestamp) -> (i64, u32) {
    let ns = t.as_nanos();
    let secs = ns.div_euclid(NANOS_PER_SEC);
    // rem_euclid is in 0..10^9.
    let nanos = ns.rem_euclid(NANOS_PER_SEC) as u32;
    (i64::try_from(secs).unwrap_or(i64::MAX), nanos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{filter, Sample};

    /// 2016-12-31 00:00:00 UTC, the start of the day that ended with the last leap second.
    const DEC_31_2016: i64 = 1_483_142_400;
    const EVENT: i64 = 1_483_228_800;

    fn info(step: i32, next_unix: i64) -> Option<LeapInfo> {
        Some(LeapInfo {
            leap: 36,
            next_unix,
            step,
        })
    }

    #[test]
    fn the_warning_is_given_only_on_the_last_day() {
        let at = |secs: i64| Timestamp::from_secs(secs);
        let cases = [
            (DEC_31_2016 - 1, Leap::NoWarning),
            (DEC_31_2016, Leap::InsertSecond),
            (EVENT - 1, Leap::InsertSecond),
            (EVENT, Leap::NoWarning),
            (EVENT + 1, Leap::NoWarning),
        ];
        for (now, want) in cases {
            assert_eq!(leap_warning(info(1, EVENT), at(now)), want, "at {now}");
        }
        // The last nanosecond of the day still warns.
        let last_ns = Timestamp::from_secs(EVENT).add_nanos(-1);
        assert_eq!(leap_warning(info(1, EVENT), last_ns), Leap::InsertSecond);
        assert_eq!(
            leap_warning(info(-1, EVENT), at(EVENT - 10)),
            Leap::DeleteSecond
        );
        // No step, no data, or an event that is not at midnight: no warning.
        assert_eq!(
            leap_warning(info(0, EVENT), at(EVENT - 10)),
            Leap::NoWarning
        );
        assert_eq!(leap_warning(None, at(EVENT - 10)), Leap::NoWarning);
        assert_eq!(
            leap_warning(info(1, EVENT + 3600), at(EVENT)),
            Leap::NoWarning
        );
        // A server without a list sends all zeros.
        assert_eq!(leap_warning(Some(LeapInfo::NONE), at(-10)), Leap::NoWarning);
    }

    #[test]
    fn precision_is_the_power_of_two_covering_the_bound() {
        let cases = [
            (17_558, -15),
            (30_517, -15),
            (30_518, -14),
            (1_000, -19),
            (999_999, -9),
            (1_000_000, -9),
            (1_000_001, -9),
            (2_000_000, -8),
            (500_000_000, -1),
            (500_000_001, 0),
            (1_000_000_000, 0),
            (1_000_000_001, 1),
            (3_000_000_000, 2),
            (1, -29),
            (0, -29),
            (-5, -29),
        ];
        for (error_ns, want) in cases {
            assert_eq!(precision_log2(error_ns), want, "error {error_ns} ns");
            // And the definition: 2^p s covers the bound, 2^(p-1) s does not.
            let bound = error_ns.max(1) as f64 / 1e9;
            assert!(2f64.powi(want) >= bound, "{error_ns}");
            assert!(
                2f64.powi(want - 1) < bound || want == MIN_PRECISION,
                "{error_ns}"
            );
        }
        assert_eq!(precision_log2(i64::MAX), 34);
    }

    #[test]
    fn split_rounds_down() {
        let t = |ns: i128| Timestamp::from_nanos(ns);
        assert_eq!(
            split(t(1_795_270_670_123_456_789)),
            (1_795_270_670, 123_456_789)
        );
        assert_eq!(split(t(0)), (0, 0));
        assert_eq!(split(t(-1)), (-1, 999_999_999));
    }

    #[test]
    fn a_sample_from_an_estimate() {
        let at = Timestamp::from_secs(EVENT - 100).add_nanos(5);
        let best = Sample {
            offset_ns: 250_000_000,
            delay_ns: 40_000,
            server_ns: 0,
            at,
        };
        let e = filter(&[best]).unwrap();
        let s = RefSample::from_estimate(&e, info(1, EVENT));
        assert_eq!(s.receive, at);
        assert_eq!(s.offset_ns, 250_000_000);
        assert_eq!(s.clock(), at.add_nanos(250_000_000));
        assert_eq!(s.leap, Leap::InsertSecond);
        // 20 us + 4 us of timestamp slack: 2^-15 s = 30.5 us.
        assert_eq!(s.precision, -15);
        // The leap day is judged on the reference time: 100 s before the event locally but
        // 200 s after it on the reference clock, no warning.
        let late = Sample {
            offset_ns: 300_000_000_000,
            ..best
        };
        let e = filter(&[late]).unwrap();
        assert_eq!(
            RefSample::from_estimate(&e, info(1, EVENT)).leap,
            Leap::NoWarning
        );
        assert_eq!(RefSample::from_estimate(&e, None).leap, Leap::NoWarning);
    }
}
