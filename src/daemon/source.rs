//! One configured source: the task that polls it on its schedule, and the state the
//! supervisor keeps about it (clock filter, reachability, backoff, last error).
//!
//! Each source runs in its own task, so a slow or hung server never delays the others; the
//! task only measures and reports, and the supervisor owns all state.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::client::{self, ClientOptions, MeasureError, Measurement};
use crate::clock::SharedClock;
use crate::config::{Poll, SourceConfig};
use crate::sync::decide::Verdict;
use crate::sync::filter::{Burst, ClockFilter, Filtered, Offer};

/// A burst's outcome, sent by a source's task to the supervisor.
#[derive(Debug)]
pub struct Report {
    /// Which source (its [`SourceState::id`]).
    pub id: u64,
    /// What the burst measured, or why it failed.
    pub result: Result<Measurement, MeasureError>,
    /// Monotonic time when the burst ended, in nanoseconds.
    pub mono_ns: i64,
    /// The local realtime clock minus the monotonic one then (see [`Burst::base_ns`]).
    pub base_ns: i64,
    /// How long the task waits before the next burst.
    pub next_poll: Duration,
}

/// When to poll next: the normal interval after a success; after failures, `poll.min`
/// doubling up to `poll.max`. Every wait is randomised by up to +-1/16 so that sources and
/// daemons started together do not poll in lockstep.
#[derive(Debug, Clone)]
pub struct Schedule {
    poll: Poll,
    failures: u32,
}

impl Schedule {
    pub fn new(poll: Poll) -> Self {
        Schedule { poll, failures: 0 }
    }

    /// The wait before the next burst, given whether the last one succeeded, before
    /// randomisation.
    pub fn after(&mut self, success: bool) -> Duration {
        if success {
            self.failures = 0;
            return self.poll.interval;
        }
        self.failures = self.failures.saturating_add(1);
        let doublings = (self.failures - 1).min(32);
        self.poll
            .min
            .saturating_mul(1u32 << doublings.min(31))
            .min(self.poll.max)
    }

    /// Consecutive failed bursts.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

/// `d` moved by up to +-1/16, from a random `r`.
pub fn randomise(d: Duration, r: u64) -> Duration {
    let nanos = d.as_nanos().min(u128::from(u64::MAX)) as u64;
    let span = nanos / 8;
    if span == 0 {
        return d;
    }
    Duration::from_nanos(nanos - span / 2 + r % span)
}

/// What the supervisor knows about one source.
#[derive(Debug)]
pub struct SourceState {
    /// Unique for the daemon's lifetime: reports from a removed source are recognised.
    pub id: u64,
    pub config: SourceConfig,
    pub filter: ClockFilter,
    /// NTP's reachability register: bit 0 is the last burst, 1 if it produced a sample.
    pub reach: u8,
    /// Bursts finished.
    pub polls: u64,
    /// The newest successful measurement and when it finished (monotonic ns).
    pub last: Option<(Measurement, i64)>,
    /// Why the last burst failed, if it did.
    pub last_error: Option<String>,
    /// What went wrong in the last burst that still measured: some exchanges failed
    /// ("2 of 8 exchanges failed: ..."), if any did.
    pub partial_error: Option<String>,
    /// Failed bursts by [`ClientError::reason`](crate::client::ClientError::reason).
    pub failures: BTreeMap<&'static str, u64>,
    /// The wait before the next burst, as the task reported it.
    pub next_poll: Duration,
    pub verdict: Verdict,
    /// The task polling this source; cancelled when the source is removed.
    pub cancel: CancellationToken,
}

impl SourceState {
    pub fn new(id: u64, config: SourceConfig, cancel: CancellationToken) -> Self {
        let next_poll = config.poll.interval;
        SourceState {
            id,
            config,
            filter: ClockFilter::default(),
            reach: 0,
            polls: 0,
            last: None,
            last_error: None,
            partial_error: None,
            failures: BTreeMap::new(),
            next_poll,
            verdict: Verdict::Pending,
            cancel,
        }
    }

    /// Take a burst's outcome into the filter and the reachability register; for a burst
    /// that measured, what the filter made of it.
    pub fn record(&mut self, report: Report) -> Option<Offer> {
        self.polls += 1;
        self.next_poll = report.next_poll;
        match report.result {
            Ok(m) => {
                self.reach = (self.reach << 1) | 1;
                let offer = self.filter.offer(Burst {
                    offset_ns: m.estimate.offset_ns,
                    delay_ns: m.estimate.delay_ns,
                    error_ns: m.estimate.error_bound_ns(),
                    mono_ns: report.mono_ns,
                    base_ns: report.base_ns,
                    leap: m.leap,
                });
                self.last_error = None;
                self.partial_error = partial_error(&m);
                self.last = Some((m, report.mono_ns));
                Some(offer)
            }
            Err(e) => {
                self.reach <<= 1;
                *self.failures.entry(e.error.reason()).or_default() += 1;
                self.last_error = Some(e.error.to_string());
                self.partial_error = None;
                None
            }
        }
    }

    /// The filter's answer now, if the source may take part in selection: reachable within
    /// its last eight bursts, and not holding a jump.
    pub fn filtered(&self, now_ns: i64, base_ns: i64) -> Option<Filtered> {
        if self.reach == 0 || self.filter.held().is_some() {
            return None;
        }
        self.filter.best(now_ns, base_ns)
    }
}

/// Whether two failure messages say the same thing, up to the numbers in them (times,
/// offsets, sizes, counts change from burst to burst, and so does an offset's sign): the same
/// trouble is logged once, a new one again.
pub fn same_trouble(a: &str, b: &str) -> bool {
    /// The message without its numbers: digits, and `+`, `-` and `.` next to a digit.
    fn words(m: &str) -> String {
        let c: Vec<char> = m.chars().collect();
        let digit = |i: Option<usize>| i.and_then(|i| c.get(i)).is_some_and(char::is_ascii_digit);
        (0..c.len())
            .filter(|&i| {
                let numeric = c[i].is_ascii_digit()
                    || (matches!(c[i], '+' | '-' | '.')
                        && (digit(i.checked_sub(1)) || digit(Some(i + 1))));
                !numeric
            })
            .map(|i| c[i])
            .collect()
    }
    words(a) == words(b)
}

/// "3 of 8 exchanges failed: <the last failure>" for a burst that measured despite failures.
fn partial_error(m: &crate::client::Measurement) -> Option<String> {
    let last = m.failures.last()?;
    Some(format!(
        "{} of {} exchanges failed: {last}",
        m.failures.len(),
        m.failures.len() + m.estimate.samples
    ))
}

/// Poll one source until `cancel`: a burst, a report, a wait, and again. The first burst
/// starts within a second, at a random moment, so sources do not all start at once.
pub async fn poll(
    id: u64,
    config: SourceConfig,
    opts: ClientOptions,
    clock: SharedClock,
    reports: mpsc::Sender<Report>,
    cancel: CancellationToken,
) {
    let mut rng = client::XorShift::seeded(clock.monotonic_ns() as u64 ^ id.rotate_left(17));
    let mut schedule = Schedule::new(config.poll);
    let mut wait = Duration::from_millis(rng.next() % 1000);
    // However the client's own timeouts behave, a burst never takes longer than this.
    let limit = config.burst.longest() + Duration::from_secs(1);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        let burst = tokio::time::timeout(limit, client::measure(&config.url, &opts, clock.clone()));
        let result = tokio::select! {
            () = cancel.cancelled() => return,
            r = burst => match r {
                Ok(r) => r,
                Err(_) => Err(MeasureError {
                    url: config.url.clone(),
                    error: client::ClientError::Timeout {
                        what: "burst",
                        after: limit,
                    },
                }),
            },
        };
        wait = randomise(schedule.after(result.is_ok()), rng.next());
        let report = Report {
            id,
            result,
            mono_ns: clock.monotonic_ns(),
            base_ns: crate::clock::step_base_ns(clock.as_ref()),
            next_poll: wait,
        };
        if reports.send(report).await.is_err() {
            // The supervisor is gone: nothing left to report to.
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poll(interval: u64, min: u64, max: u64) -> Poll {
        Poll {
            interval: Duration::from_secs(interval),
            min: Duration::from_secs(min),
            max: Duration::from_secs(max),
        }
    }

    #[test]
    fn failures_back_off_exponentially_and_success_recovers() {
        let mut s = Schedule::new(poll(64, 16, 1024));
        assert_eq!(s.after(true), Duration::from_secs(64));
        let waits: Vec<u64> = (0..8).map(|_| s.after(false).as_secs()).collect();
        assert_eq!(waits, [16, 32, 64, 128, 256, 512, 1024, 1024]);
        assert_eq!(s.failures(), 8);
        assert_eq!(s.after(true), Duration::from_secs(64));
        assert_eq!(s.failures(), 0);
        assert_eq!(s.after(false), Duration::from_secs(16));
        // Thousands of failures do not overflow.
        for _ in 0..5000 {
            assert!(s.after(false) <= Duration::from_secs(1024));
        }
    }

    #[test]
    fn the_same_trouble_is_the_same_words_whatever_the_numbers() {
        assert!(same_trouble(
            "the server says it is 1970-01-01 00:00:07 UTC, before 2026-12-01",
            "the server says it is 1970-01-01 00:00:09 UTC, before 2026-12-01"
        ));
        assert!(same_trouble(
            "2 of 5 exchanges failed: exchange timed out after 300ms",
            "1 of 5 exchanges failed: exchange timed out after 300ms"
        ));
        assert!(!same_trouble(
            "HTTP status 404",
            "the server closed the connection"
        ));
        // An offset's sign changes with the numbers (found when a liar's burst said
        // +0.000054 s one time and -0.000001 s the next).
        assert!(same_trouble(
            "one says +1.000412 s, another 0.025 s later -0.000001 s",
            "one says +1.000142 s, another 0.014 s later +0.000054 s"
        ));
        // Hyphens and full stops in words still count.
        assert!(!same_trouble("a non-blocking read.", "a nonblocking read"));
    }

    #[test]
    fn randomising_stays_within_a_sixteenth() {
        let d = Duration::from_secs(64);
        for r in [0, 1, 12345, u64::MAX] {
            let x = randomise(d, r);
            assert!(x >= d - d / 16 && x <= d + d / 16, "{x:?}");
        }
        assert_eq!(randomise(Duration::ZERO, 7), Duration::ZERO);
    }
}
