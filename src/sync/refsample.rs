//! What a reference-clock output is handed: one measured offset with the local time it was
//! measured at, the leap-second warning and the precision. Pure: no I/O, no clock reads,
//! integer nanoseconds until a writer (`crate::refclock`) encodes the fields.

use super::burst::Estimate;
use super::leap::{leap_warning, Leap, LeapInfo};
use super::time::Timestamp;

const NANOS_PER_SEC: i128 = 1_000_000_000;

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
        Self::measured(
            estimate.best.at,
            estimate.offset_ns,
            estimate.error_bound_ns(),
            leap,
        )
    }

    /// The sample for an offset measured (or combined) at local time `receive` with an error
    /// bound of `error_ns`: the precision covering the bound, and the leap warning from
    /// `leap` judged on the reference time.
    pub fn measured(
        receive: Timestamp,
        offset_ns: i64,
        error_ns: i64,
        leap: Option<LeapInfo>,
    ) -> Self {
        RefSample {
            receive,
            offset_ns,
            leap: leap_warning(leap, receive.add_nanos(i128::from(offset_ns))),
            precision: precision_log2(error_ns),
        }
    }

    /// The reference ("true") time at the moment of `receive`: the reader's "clock"
    /// timestamp.
    pub fn clock(&self) -> Timestamp {
        self.receive.add_nanos(i128::from(self.offset_ns))
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
    use crate::sync::burst::filter;
    use crate::sync::exchange::Sample;
    use crate::sync::leap::examples::{info, EVENT};

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
