//! Date mode's driver: paces timed `HEAD` probes through a [`DateProber`] (the HTTP client)
//! and feeds them to [`DateEstimator`] (the pure estimator in [`crate::sync::date`], where
//! the method is explained), sleeping between them: its only I/O. Also reads the header.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, UNIX_EPOCH};

use crate::clock::Clock;
use crate::sync::date::{ceil_div, Secs, DEFAULT_FREQUENCY_TOLERANCE_PPM};
pub use crate::sync::date::{DateEstimator, DateProbe, EstimateError, OffsetInterval};
use crate::sync::Timestamp;

/// Longest piece of a peer's header value quoted in an error message, in characters.
const MAX_QUOTED_CHARS: usize = 64;

/// Why a Date-mode measurement failed.
#[derive(Debug, thiserror::Error)]
pub enum DateError {
    /// A probe the estimator refused (see [`EstimateError`]).
    #[error(transparent)]
    Estimate(#[from] EstimateError),
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
    use crate::sync::date::sim::{Net, START};
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::sync::Arc;

    const MS: i128 = 1_000_000;
    const S: i128 = 1_000_000_000;

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
