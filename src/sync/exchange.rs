//! Offset and delay from one exchange's four timestamps. Pure: no I/O, no clock reads,
//! integer nanoseconds throughout.
//!
//! The client stamps `t1` just before its request bytes go to the socket and `t4` when the
//! first byte of the reply arrives; a webntpd server reports `rt` (request received) and `st`
//! (reply sent). With all four, as NTP does:
//!
//! ```text
//! offset = ((rt - t1) + (st - t4)) / 2
//! delay  = (t4 - t1) - (st - rt)
//! ```
//!
//! With `st` only (go-webntp, Time over HTTPS) the server's processing time counts as path
//! delay: `offset = st - (t1 + t4) / 2`, `delay = t4 - t1`. `t4 - t1` is taken on the
//! monotonic clock, so a step of the system clock during the exchange cannot corrupt the
//! delay; the offsets use the realtime readings.
//!

use super::time::Timestamp;

/// Server times are sent with microsecond resolution: allow this much rounding slack when
/// checking them against our own nanosecond measurements.
pub const SERVER_ROUNDING_NS: i64 = 1_000;

/// How far a kernel receive stamp's clock may be from the program's and the stamp still be
/// used: 3 us. The network layer uses kernel stamps only while it proves the two clocks this
/// close (`crate::net::rxstamp`); the error bounds here allow for it.
pub const KERNEL_STAMP_AGREEMENT_NS: i64 = 3_000;

/// What the four timestamps of an exchange may be off by, beyond the path's asymmetry, as
/// it goes into the offset: the server's microsecond rounding of `rt` and `st` (0.5 us, with
/// room: [`SERVER_ROUNDING_NS`]) and, at each end, a kernel receive stamp taken on a clock
/// proven within [`KERNEL_STAMP_AGREEMENT_NS`] of the program's (half of it each on the
/// offset). 4 us; every error bound includes it.
pub const TIMESTAMP_SLACK_NS: i64 = SERVER_ROUNDING_NS + KERNEL_STAMP_AGREEMENT_NS;

/// The fastest either clock may be slewed between two exchanges of a burst: chrony's default
/// `maxslewrate`, 83,333 ppm (1/12 s per second), the fastest of the common time daemons
/// (ntpd and the kernel stop at 500 ppm). Honest exchanges taken while a clock is slewed that
/// fast drift apart by up to this much of the time between them.
pub const MAX_SLEW_PPM: i64 = 83_333;

/// Offsets beyond this (a century) are not a clock error but nonsense.
const MAX_OFFSET_NS: i128 = 100 * 366 * 86_400 * 1_000_000_000;

/// The timestamps of one request/reply exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exchange {
    /// Local realtime just before the request left.
    pub t1: Timestamp,
    /// Local realtime when the first byte of the reply arrived.
    pub t4: Timestamp,
    /// `t4 - t1` measured on the monotonic clock, in nanoseconds.
    pub round_trip_ns: i64,
    /// Server time when it received the request (webntpd's `rt`), if sent.
    pub rt: Option<Timestamp>,
    /// Server time when it sent the reply (`st`, or Time over HTTPS' `X-HTTPSTIME`).
    pub st: Timestamp,
}

/// What one exchange measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Server clock minus local clock, in nanoseconds (positive: the local clock is behind).
    pub offset_ns: i64,
    /// Network round trip without the server's processing time, in nanoseconds.
    pub delay_ns: i64,
    /// The server's processing time `st - rt` (0 without `rt`), in nanoseconds.
    pub server_ns: i64,
    /// Local realtime when the reply arrived (the sample's time).
    pub at: Timestamp,
}

/// Why an exchange gives no sample.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SampleError {
    /// The round trip is negative: the monotonic readings are wrong.
    #[error("negative round trip ({0} ns)")]
    NegativeRoundTrip(i64),
    /// `rt` after `st`: the server's clock went backwards while answering.
    #[error("server receive time {rt} is after its send time {st}")]
    ServerTimesReversed {
        /// `rt` as sent.
        rt: Timestamp,
        /// `st` as sent.
        st: Timestamp,
    },
    /// The server claims to have held the request longer than the whole round trip.
    #[error(
        "server says it took {server_ns} ns to answer, longer than the whole round trip of \
         {round_trip_ns} ns: its rt/st are not to be trusted"
    )]
    ProcessingLongerThanRoundTrip {
        /// `st - rt`.
        server_ns: i64,
        /// `t4 - t1`.
        round_trip_ns: i64,
    },
    /// An offset beyond a century.
    #[error("offset of {0} s is not plausible")]
    Implausible(i128),
}

/// Compute one exchange's offset and delay, refusing what cannot be right.
pub fn compute(x: &Exchange) -> Result<Sample, SampleError> {
    if x.round_trip_ns < 0 {
        return Err(SampleError::NegativeRoundTrip(x.round_trip_ns));
    }
    let (offset, server_ns) = match x.rt {
        Some(rt) => {
            let server = x.st.nanos_since(rt);
            if server < -i128::from(SERVER_ROUNDING_NS) {
                return Err(SampleError::ServerTimesReversed { rt, st: x.st });
            }
            let server = server.max(0);
            if server > i128::from(x.round_trip_ns) + i128::from(2 * SERVER_ROUNDING_NS) {
                return Err(SampleError::ProcessingLongerThanRoundTrip {
                    server_ns: i64::try_from(server).unwrap_or(i64::MAX),
                    round_trip_ns: x.round_trip_ns,
                });
            }
            // ((rt - t1) + (st - t4)) / 2, rounded to nearest.
            let sum = rt.nanos_since(x.t1) + x.st.nanos_since(x.t4);
            (div2_round(sum), server)
        }
        None => {
            // st - (t1 + t4) / 2 = ((st - t1) + (st - t4)) / 2
            let sum = x.st.nanos_since(x.t1) + x.st.nanos_since(x.t4);
            (div2_round(sum), 0)
        }
    };
    if offset.abs() > MAX_OFFSET_NS {
        return Err(SampleError::Implausible(offset / 1_000_000_000));
    }
    // The server's microsecond rounding can make the processing time exceed the round trip
    // by a hair on a fast path: that is a zero delay, not a negative one.
    let delay = (i128::from(x.round_trip_ns) - server_ns).max(0);
    Ok(Sample {
        offset_ns: offset as i64,
        delay_ns: delay as i64,
        server_ns: server_ns as i64,
        at: x.t4,
    })
}

/// `v / 2` rounded half away from zero.
fn div2_round(v: i128) -> i128 {
    if v >= 0 {
        (v + 1) / 2
    } else {
        (v - 1) / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(ns: i128) -> Timestamp {
        Timestamp::from_nanos(ns)
    }

    const BASE: i128 = 1_795_270_670_000_000_000;

    /// An exchange over a path with the given one-way delays and server processing time, to
    /// a server whose clock is `offset` ahead.
    fn exchange(offset: i128, out: i128, back: i128, processing: i128, with_rt: bool) -> Exchange {
        let t1 = BASE;
        let rt = t1 + out + offset;
        let st = rt + processing;
        let t4 = t1 + out + processing + back;
        Exchange {
            t1: ts(t1),
            t4: ts(t4),
            round_trip_ns: (t4 - t1) as i64,
            rt: with_rt.then(|| ts(rt)),
            st: ts(st),
        }
    }

    #[test]
    fn four_timestamps_remove_server_processing() {
        // Symmetric 100 us each way, the server takes 40 us and is 250 ms ahead.
        let s = compute(&exchange(250_000_000, 100_000, 100_000, 40_000, true)).unwrap();
        assert_eq!(s.offset_ns, 250_000_000);
        assert_eq!(s.delay_ns, 200_000);
        assert_eq!(s.server_ns, 40_000);
        // Without rt the same exchange counts the processing as delay, and because st is
        // stamped after it, the offset is off by half the processing time.
        let s = compute(&exchange(250_000_000, 100_000, 100_000, 40_000, false)).unwrap();
        assert_eq!(s.offset_ns, 250_000_000 + 20_000);
        assert_eq!(s.delay_ns, 240_000);
    }

    #[test]
    fn asymmetry_biases_by_half_the_difference_and_no_more() {
        // 300 us out, 100 us back: the estimate is off by (300 - 100) / 2 = 100 us, the
        // theoretical floor, and within half the delay.
        let s = compute(&exchange(-5_000_000, 300_000, 100_000, 10_000, true)).unwrap();
        assert_eq!(s.offset_ns, -5_000_000 + 100_000);
        assert!((s.offset_ns + 5_000_000).abs() <= s.delay_ns / 2);
    }

    #[test]
    fn a_server_whose_processing_time_grows_does_not_bias_the_offset() {
        // With rt the offset stays exact however long the server holds the request, and the
        // delay stays the network's; with st only the delay grows and, as the server stamps
        // st late, the offset too.
        for processing in [0, 1_000, 50_000, 2_000_000, 40_000_000] {
            let s = compute(&exchange(1_000_000, 80_000, 80_000, processing, true)).unwrap();
            assert_eq!(s.offset_ns, 1_000_000, "processing {processing}");
            assert_eq!(s.delay_ns, 160_000, "processing {processing}");
            let s = compute(&exchange(1_000_000, 80_000, 80_000, processing, false)).unwrap();
            assert_eq!(s.delay_ns as i128, 160_000 + processing);
        }
    }

    #[test]
    fn refuses_what_cannot_be_right() {
        let mut x = exchange(0, 100_000, 100_000, 10_000, true);
        x.round_trip_ns = -1;
        assert_eq!(compute(&x), Err(SampleError::NegativeRoundTrip(-1)));

        let mut x = exchange(0, 100_000, 100_000, 10_000, true);
        let st = x.st;
        x.rt = Some(st.add_nanos(5_000));
        assert!(matches!(
            compute(&x),
            Err(SampleError::ServerTimesReversed { .. })
        ));

        let mut x = exchange(0, 100_000, 100_000, 10_000, true);
        x.rt = Some(x.st.add_nanos(-1_000_000));
        assert!(matches!(
            compute(&x),
            Err(SampleError::ProcessingLongerThanRoundTrip { .. })
        ));

        let x = exchange(200 * 366 * 86_400 * 1_000_000_000, 1, 1, 0, true);
        assert!(matches!(compute(&x), Err(SampleError::Implausible(_))));
    }

    #[test]
    fn microsecond_rounding_of_server_times_is_tolerated() {
        // A 20 us round trip where the server's rounded rt/st claim 21 us of processing.
        let x = Exchange {
            t1: ts(BASE),
            t4: ts(BASE + 20_000),
            round_trip_ns: 20_000,
            rt: Some(ts(BASE)),
            st: ts(BASE + 21_000),
        };
        let s = compute(&x).unwrap();
        assert_eq!(s.delay_ns, 0);
        // Server st a rounding step before rt.
        let x = Exchange {
            rt: Some(ts(BASE + 1_000)),
            st: ts(BASE + 500),
            ..x
        };
        assert_eq!(compute(&x).unwrap().server_ns, 0);
    }
}
