//! Offset and delay from one exchange's timestamps, and the burst filter. Pure: no I/O, no
//! clock reads, integer nanoseconds throughout.
//!
//! # One exchange
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
//! # A burst
//! Of several exchanges the one with the smallest delay suffered the least queueing, and its
//! offset is the best estimate (NTP's clock-filter idea); go-webntp averages instead, which
//! mixes in the delayed ones. The spread of the others around it is the jitter.
//!
//! # What a burst may claim
//! Each exchange says the true offset lies within `offset +- (delay / 2 + slack)`: the path
//! can hide at most half the round trip, and [`TIMESTAMP_SLACK_NS`] covers what the
//! timestamps themselves may be off. A server that answers honestly is consistent with
//! itself, so two exchanges of one burst must agree within their intervals, widened by how
//! far either clock may have been slewed between them ([`MAX_SLEW_PPM`]). A burst in which
//! two exchanges contradict each other is refused ([`BurstError::Inconsistent`]): the server
//! lies on some replies, or its clock jumped, and nothing says which reply is the true one.
//! A burst that passes is stated with an error bound that covers every near-minimum-delay
//! exchange's interval (the hull, seen from the chosen offset), not only the chosen one's:
//! if any of them is right, the true offset is within the bound.

use crate::wire::Timestamp;

/// Server times are sent with microsecond resolution: allow this much rounding slack when
/// checking them against our own nanosecond measurements.
pub const SERVER_ROUNDING_NS: i64 = 1_000;

/// What the four timestamps of an exchange may be off by, beyond the path's asymmetry, as
/// it goes into the offset: the server's microsecond rounding of `rt` and `st` (0.5 us, with
/// room: [`SERVER_ROUNDING_NS`]) and, at each end, a kernel receive stamp taken on a clock
/// proven within [`crate::rxstamp::AGREEMENT_NS`] of the program's (half of it each on the
/// offset). 4 us; every error bound includes it.
pub const TIMESTAMP_SLACK_NS: i64 = SERVER_ROUNDING_NS + crate::rxstamp::AGREEMENT_NS;

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

/// The result of a burst: the minimum-delay sample and how the others spread around it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    /// The chosen sample's offset, in nanoseconds.
    pub offset_ns: i64,
    /// The chosen sample's delay, in nanoseconds.
    pub delay_ns: i64,
    /// RMS difference between the kept samples' offsets and the chosen one, in nanoseconds
    /// (0 with one sample).
    pub jitter_ns: i64,
    /// Samples the burst produced.
    pub samples: usize,
    /// Samples with a delay within twice the minimum (plus a microsecond): the ones the
    /// jitter and the error bound are computed over.
    pub kept: usize,
    /// The chosen sample.
    pub best: Sample,
    /// An honest bound on the offset's error, in nanoseconds; see
    /// [`Estimate::error_bound_ns`].
    pub error_ns: i64,
}

impl Estimate {
    /// An honest bound on the offset's error. For a burst: the farthest any kept sample's
    /// interval (its offset +- half its delay) reaches from the chosen offset, plus
    /// [`TIMESTAMP_SLACK_NS`]; for the chosen sample alone that is half its delay plus the
    /// slack. For a Date-header measurement: half the final interval.
    pub fn error_bound_ns(&self) -> i64 {
        self.error_ns
    }
}

/// Why a burst gives no estimate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BurstError {
    /// No exchange produced a sample.
    #[error("no sample")]
    Empty,
    /// Two exchanges of the burst contradict each other.
    #[error(
        "the server's replies contradict each other: one says {:+.6} s (delay {:.6} s), \
         another {:.3} s later {:+.6} s (delay {:.6} s), more apart than their delays and any \
         clock slewing allow; it lies on some replies or its clock jumped, so none is used",
        first.offset_ns as f64 / 1e9, first.delay_ns as f64 / 1e9,
        second.at.nanos_since(first.at) as f64 / 1e9,
        second.offset_ns as f64 / 1e9, second.delay_ns as f64 / 1e9
    )]
    Inconsistent {
        /// The earlier of the two.
        first: Sample,
        /// The later.
        second: Sample,
    },
}

/// Half a sample's interval: half its delay plus the timestamps' slack.
fn half_width(s: &Sample) -> i128 {
    i128::from(s.delay_ns / 2) + i128::from(TIMESTAMP_SLACK_NS)
}

/// Whether two samples of one burst can both be honest: their intervals, widened by the
/// most either clock can have been slewed in between, overlap.
fn consistent(a: &Sample, b: &Sample) -> bool {
    let apart = a.at.nanos_since(b.at).abs();
    let slew = apart.saturating_mul(i128::from(MAX_SLEW_PPM)) / 1_000_000;
    let gap = (i128::from(a.offset_ns) - i128::from(b.offset_ns)).abs();
    gap <= half_width(a) + half_width(b) + slew
}

/// Pick the minimum-delay sample of a burst, after checking that no two samples contradict
/// each other.
pub fn filter(samples: &[Sample]) -> Result<Estimate, BurstError> {
    let best = *samples
        .iter()
        .min_by_key(|s| (s.delay_ns, s.offset_ns.unsigned_abs()))
        .ok_or(BurstError::Empty)?;
    for (i, a) in samples.iter().enumerate() {
        if let Some(b) = samples[i + 1..].iter().find(|b| !consistent(a, b)) {
            let (first, second) = if b.at < a.at { (*b, *a) } else { (*a, *b) };
            return Err(BurstError::Inconsistent { first, second });
        }
    }
    let limit = best.delay_ns.saturating_mul(2).saturating_add(1_000);
    let kept: Vec<&Sample> = samples.iter().filter(|s| s.delay_ns <= limit).collect();
    let sum_sq: u128 = kept
        .iter()
        .map(|s| {
            let d = i128::from(s.offset_ns) - i128::from(best.offset_ns);
            (d * d) as u128
        })
        .sum();
    let jitter = if kept.len() > 1 {
        (sum_sq / (kept.len() as u128 - 1)).isqrt()
    } else {
        0
    };
    let jitter_ns = i64::try_from(jitter).unwrap_or(i64::MAX);
    // The hull of the kept samples' intervals, seen from the chosen offset.
    let reach = kept
        .iter()
        .map(|s| (i128::from(s.offset_ns) - i128::from(best.offset_ns)).abs() + half_width(s))
        .max()
        .unwrap_or_else(|| half_width(&best));
    Ok(Estimate {
        offset_ns: best.offset_ns,
        delay_ns: best.delay_ns,
        jitter_ns,
        samples: samples.len(),
        kept: kept.len(),
        best,
        error_ns: i64::try_from(reach).unwrap_or(i64::MAX),
    })
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

    /// A sample taken `at_ms` into the burst.
    fn sample_at(offset_ns: i64, delay_ns: i64, at_ms: i128) -> Sample {
        Sample {
            offset_ns,
            delay_ns,
            server_ns: 0,
            at: ts(BASE + at_ms * 1_000_000),
        }
    }

    fn sample(offset_ns: i64, delay_ns: i64) -> Sample {
        sample_at(offset_ns, delay_ns, 0)
    }

    #[test]
    fn the_burst_keeps_the_minimum_delay_sample() {
        let burst = [
            sample_at(900, 400_000, 0),
            sample_at(40, 100_000, 25),
            sample_at(-60, 150_000, 50),
            // A spike: its interval (+-1 ms) still reaches the others'; not kept.
            sample_at(1_000_000, 2_000_000, 75),
            sample_at(140, 120_000, 100),
        ];
        let e = filter(&burst).unwrap();
        assert_eq!(e.offset_ns, 40);
        assert_eq!(e.delay_ns, 100_000);
        assert_eq!(e.samples, 5);
        assert_eq!(e.kept, 3);
        // RMS of (0, -100, 100) over n - 1 = 2: sqrt(20000 / 2) = 100.
        assert_eq!(e.jitter_ns, 100);
        // The hull of the kept: the one at -60 reaches 100 + 75 us from the chosen offset.
        assert_eq!(e.error_bound_ns(), 100 + 75_000 + TIMESTAMP_SLACK_NS);
        assert_eq!(filter(&[]), Err(BurstError::Empty));
        let one = filter(&[sample(7, 1_000)]).unwrap();
        assert_eq!(one.jitter_ns, 0);
        assert_eq!(one.error_bound_ns(), 500 + TIMESTAMP_SLACK_NS);
    }

    #[test]
    fn a_server_that_lies_on_every_other_reply_is_refused_at_every_magnitude() {
        // Loopback-like delays (20 us), exchanges 25 ms apart, every other reply shifted.
        for shift in [1_000_000_000i64, 250_000_000, 5_000_000, -5_000_000] {
            let burst: Vec<Sample> = (0..8)
                .map(|i| sample_at(if i % 2 == 1 { shift } else { 0 }, 20_000, 25 * i as i128))
                .collect();
            assert!(
                matches!(filter(&burst), Err(BurstError::Inconsistent { .. })),
                "shift {shift} ns: {:?}",
                filter(&burst)
            );
        }
        // Below what the exchanges can tell apart (25 ms of slewing allows 2.1 ms), a lie is
        // not refused, but the error bound covers it, whichever reply is chosen.
        for shift in [1_000_000i64, 50_000, -300_000] {
            let burst: Vec<Sample> = (0..8)
                .map(|i| sample_at(if i % 2 == 1 { shift } else { 0 }, 20_000, 25 * i as i128))
                .collect();
            let e = filter(&burst).unwrap();
            let truth = 0i64;
            assert!(
                (e.offset_ns - truth).abs() <= e.error_bound_ns(),
                "shift {shift}: offset {} +- {}",
                e.offset_ns,
                e.error_bound_ns()
            );
            assert!(e.error_bound_ns() >= shift.abs(), "shift {shift}: {e:?}");
        }
    }

    #[test]
    fn honest_exchanges_while_a_clock_is_slewed_fast_are_consistent() {
        // chrony slewing at its maximum: 1/12 s per second, on a 1 ms path.
        let burst: Vec<Sample> = (0..8)
            .map(|i| sample_at(-(30 * i as i64) * 1_000_000 / 12, 1_000_000, 30 * i as i128))
            .collect();
        assert!(filter(&burst).is_ok(), "{:?}", filter(&burst));
        // One reply 3 ms off in 30 ms is not slewing.
        let mut burst = burst;
        burst[4].offset_ns += 3_000_000;
        assert!(matches!(
            filter(&burst),
            Err(BurstError::Inconsistent { .. })
        ));
    }

    #[test]
    fn the_contradiction_is_named_in_order() {
        let burst = [
            sample_at(1_000_000_000, 30_000, 40),
            sample_at(0, 30_000, 10),
        ];
        let Err(e @ BurstError::Inconsistent { first, second }) = filter(&burst) else {
            panic!("not refused");
        };
        assert_eq!((first.offset_ns, second.offset_ns), (0, 1_000_000_000));
        let text = e.to_string();
        assert!(
            text.contains("+0.000000 s") && text.contains("+1.000000 s"),
            "{text}"
        );
        assert!(text.contains("0.030 s later"), "{text}");
    }

    #[test]
    fn extreme_samples_do_not_overflow() {
        let burst = [
            sample_at(i64::MAX, i64::MAX, 0),
            sample_at(i64::MIN, 0, 1),
            sample_at(0, i64::MAX, i128::from(i64::MAX)),
        ];
        let _ = filter(&burst);
        let e = filter(&[sample(i64::MAX, i64::MAX)]).unwrap();
        assert!(e.error_bound_ns() > 0);
    }
}
