//! The sanity rules: what webntpd refuses to believe, and what it refuses to pass on, however
//! many sources say it. Pure: no I/O, no clock reads.
//!
//! A sample written to SHM or SOCK moves the clock: chrony's common `makestep 1 3` steps it
//! on any of its first three updates, ntpd takes SHM within its panic gate. The rules, each
//! borrowed from a time daemon that learnt it the hard way:
//!
//! - **The floor** (systemd-timesyncd's build-time epoch). No time before this build of
//!   webntpd was made can be now: [`floor`] is the release date compiled in, or
//!   `SOURCE_DATE_EPOCH` at build time when later (reproducible builds set it), raised to the
//!   leap-seconds list's own date when the daemon has a list. A server time before it is
//!   refused at the exchange ([`check_server_time`]), whatever else agrees; a server clock
//!   stuck at 1970 or set 50 years back never gets past the burst.
//! - **The panic threshold** (ntpd's panic gate, 1000 s; ntpd-rs's single-step limit). No
//!   combined offset larger than [`Policy::panic_ns`] is ever written: a clock that far off is
//!   not something to fix quietly from a web server. The first sample after start may be
//!   allowed past it ([`Policy::allow_startup_step`], ntpd's `-g`, ntpd-rs's startup limit,
//!   for a host without a battery-backed clock); that is logged as a warning. Unlike
//!   ntpd-rs, whose startup limit lets any forward step through by default, webntpd refuses
//!   a first step beyond the threshold unless allowed: a single lying server claiming a date
//!   73 years ahead is exactly what it is there to stop.
//! - **Bursts that contradict themselves** are refused in [`super::burst::filter`]; the
//!   stated error covers every near-minimum exchange.
//! - **Popcorn spikes** (ntpd's spike suppressor and stepout): a source whose new burst does
//!   not overlap what its filter holds is held, not used, until the next burst confirms the
//!   jump ([`super::filter::ClockFilter::offer`]). Steps of the local clock itself (which
//!   move every source's offset at once) are taken out first, so they are not jumps.
//! - **One source** decides alone: `webntpd check-config` and `webntpd status` warn.
//!
//! What ntpd-rs's accumulated-step limit bounds, the total its own steps have moved the clock,
//! webntpd cannot see: it does not step the clock, the reader does, and whether the reader
//! applied a sample (or slewed it, or ignored it) is not visible from here. The reader's own
//! limit is the place for it (chrony's `maxchange`, ntpd's panic gate); with the rules above
//! every jump must be confirmed and stay under the panic threshold.

use super::refsample::RefSample;
use super::time::Timestamp;

/// The date this release was made, 2026-12-01 00:00:00 UTC: no earlier time can be now.
pub const RELEASE_FLOOR_UNIX: i64 = 1_796_083_200;

/// ntpd's panic threshold, 1000 s: the default bound on any offset written.
pub const DEFAULT_PANIC_NS: i64 = 1_000 * 1_000_000_000;

/// The floor compiled in: the release date, or `SOURCE_DATE_EPOCH` at build time if later.
pub fn floor() -> Timestamp {
    let built = option_env!("SOURCE_DATE_EPOCH")
        .and_then(|s| s.trim().parse::<i64>().ok())
        .unwrap_or(0);
    Timestamp::from_secs(RELEASE_FLOOR_UNIX.max(built))
}

/// A time as people read it: `2026-12-01 00:00:00 UTC`.
pub fn utc(t: Timestamp) -> String {
    jiff::Timestamp::from_second(t.unix_seconds()).map_or_else(
        |_| format!("{} (Unix seconds)", t.unix_seconds()),
        |t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

/// Why a server's answer is not believed, whatever the other sources say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the server says it is {}, before this build of webntpd was made ({}): its clock is wrong",
    utc(*server_time),
    utc(*floor)
)]
pub struct BeforeFloor {
    /// The server's time.
    pub server_time: Timestamp,
    /// The floor.
    pub floor: Timestamp,
}

/// Refuse a server time before `floor`.
pub fn check_server_time(server_time: Timestamp, floor: Timestamp) -> Result<(), BeforeFloor> {
    if server_time < floor {
        return Err(BeforeFloor { server_time, floor });
    }
    Ok(())
}

/// What may be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// No time before this can be now.
    pub floor: Timestamp,
    /// The largest offset written, in nanoseconds.
    pub panic_ns: i64,
    /// The first sample written may exceed `panic_ns`.
    pub allow_startup_step: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            floor: floor(),
            panic_ns: DEFAULT_PANIC_NS,
            allow_startup_step: false,
        }
    }
}

/// Why a sample is not written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The offset is beyond the panic threshold.
    Panic {
        /// The offset, in nanoseconds.
        offset_ns: i64,
        /// The threshold.
        panic_ns: i64,
        /// Nothing has been written since start (so `allow_startup_step` would let it pass).
        first: bool,
        /// The local clock reads a time before the floor: it is certainly wrong.
        local_before_floor: bool,
        /// The floor, for the message.
        floor: Timestamp,
    },
    /// The corrected time is before the floor.
    BeforeFloor(BeforeFloor),
}

impl Refusal {
    /// Which rule refused, for telling a new refusal from a repeat of the last (the offsets
    /// in the messages change from burst to burst).
    pub fn rule(&self) -> &'static str {
        match self {
            Refusal::BeforeFloor(_) => "floor",
            Refusal::Panic { first: true, .. } => "panic at start",
            Refusal::Panic { .. } => "panic",
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Refusal::BeforeFloor(e) => e.fmt(f),
            Refusal::Panic {
                offset_ns,
                panic_ns,
                first,
                local_before_floor,
                floor,
            } => {
                write!(
                    f,
                    "offset {:+.6} s is beyond the panic threshold of {} s: not written",
                    offset_ns as f64 / 1e9,
                    panic_ns / 1_000_000_000
                )?;
                if local_before_floor {
                    write!(
                        f,
                        "; this clock reads a time before {}, when this build was made, so it is \
                         wrong: if the host has no battery-backed clock, allow the first step \
                         ([sanity] allow_startup_step = true, or --allow-step)",
                        utc(floor)
                    )
                } else if first {
                    write!(
                        f,
                        "; if this clock is really that far off, set it by hand, or allow the \
                         first step ([sanity] allow_startup_step = true, or --allow-step), or \
                         raise [sanity] panic_threshold"
                    )
                } else {
                    write!(
                        f,
                        "; after samples within it were written, a jump this large is not \
                         something to follow: find out why (a server or this clock was \
                         stepped), then restart webntpd"
                    )
                }
            }
        }
    }
}

/// What [`Gate::check`] let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Passed {
    /// Within every bound.
    Within,
    /// Beyond the panic threshold, let through as the first sample because
    /// `allow_startup_step` is set: the caller logs it as a warning.
    StartupStep,
}

/// The last check before a sample is written: the policy, and whether anything has been
/// written yet.
#[derive(Debug, Clone)]
pub struct Gate {
    policy: Policy,
    written: bool,
}

impl Gate {
    /// A gate that has let nothing through yet.
    pub fn new(policy: Policy) -> Gate {
        Gate {
            policy,
            written: false,
        }
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Take a new policy (a reload); what was written stays written.
    pub fn set_policy(&mut self, policy: Policy) {
        self.policy = policy;
    }

    /// May `sample` be written? When it may, the gate counts it as written.
    pub fn check(&mut self, sample: &RefSample) -> Result<Passed, Refusal> {
        let p = &self.policy;
        check_server_time(sample.clock(), p.floor).map_err(Refusal::BeforeFloor)?;
        let beyond = sample.offset_ns.unsigned_abs() > p.panic_ns.unsigned_abs();
        let passed = match (beyond, self.written, p.allow_startup_step) {
            (false, _, _) => Passed::Within,
            (true, false, true) => Passed::StartupStep,
            (true, first, _) => {
                return Err(Refusal::Panic {
                    offset_ns: sample.offset_ns,
                    panic_ns: p.panic_ns,
                    first: !first,
                    local_before_floor: sample.receive < p.floor,
                    floor: p.floor,
                })
            }
        };
        self.written = true;
        Ok(passed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::leap::Leap;

    const NOW: i64 = RELEASE_FLOOR_UNIX + 3 * 86_400;
    const YEAR_NS: i64 = 365 * 86_400 * 1_000_000_000;

    fn at(receive_unix: i64, offset_ns: i64) -> RefSample {
        RefSample {
            receive: Timestamp::from_secs(receive_unix),
            offset_ns,
            leap: Leap::NoWarning,
            precision: -14,
        }
    }

    #[test]
    fn the_floor_is_this_release_or_later() {
        assert!(floor().unix_seconds() >= RELEASE_FLOOR_UNIX);
        assert_eq!(
            utc(Timestamp::from_secs(RELEASE_FLOOR_UNIX)),
            "2026-12-01 00:00:00 UTC"
        );
        let f = Timestamp::from_secs(RELEASE_FLOOR_UNIX);
        assert!(check_server_time(f, f).is_ok());
        let e = check_server_time(Timestamp::from_secs(0), f).unwrap_err();
        assert!(e.to_string().contains("1970-01-01 00:00:00 UTC"), "{e}");
    }

    #[test]
    fn what_the_issue_saw_written_is_refused() {
        // One source claiming now - 50 years, now + 73 years, a clock frozen at 1970.
        let mut gate = Gate::new(Policy::default());
        let cases = [
            at(NOW, -50 * YEAR_NS),
            at(NOW, 73 * YEAR_NS),
            at(NOW, -(NOW * 1_000_000_000)),
        ];
        for s in cases {
            assert!(gate.check(&s).is_err(), "{s:?}");
        }
        assert!(matches!(
            gate.check(&cases[0]),
            Err(Refusal::BeforeFloor(_))
        ));
        assert!(matches!(
            gate.check(&cases[1]),
            Err(Refusal::Panic { first: true, .. })
        ));
    }

    #[test]
    fn the_panic_threshold_holds_after_start_and_the_startup_step_is_the_first_only() {
        let policy = Policy {
            floor: Timestamp::from_secs(RELEASE_FLOOR_UNIX),
            ..Policy::default()
        };
        let mut gate = Gate::new(policy);
        let hour = 3_600 * 1_000_000_000;
        // Within: fine, and it counts as written.
        assert_eq!(
            gate.check(&at(NOW, 999 * 1_000_000_000)),
            Ok(Passed::Within)
        );
        let e = gate.check(&at(NOW, hour)).unwrap_err();
        assert!(matches!(e, Refusal::Panic { first: false, .. }));
        assert!(e.to_string().contains("restart webntpd"), "{e}");

        // With the startup step allowed: the first sample only, however far.
        let mut gate = Gate::new(Policy {
            allow_startup_step: true,
            ..policy
        });
        assert_eq!(gate.check(&at(NOW, -hour)), Ok(Passed::StartupStep));
        assert!(gate.check(&at(NOW, -hour)).is_err());
        assert_eq!(gate.check(&at(NOW, 5)), Ok(Passed::Within));
        // The floor is never waived.
        let mut gate = Gate::new(Policy {
            allow_startup_step: true,
            ..policy
        });
        assert!(matches!(
            gate.check(&at(NOW, -10 * YEAR_NS)),
            Err(Refusal::BeforeFloor(_))
        ));
    }

    #[test]
    fn a_local_clock_before_the_floor_is_named_in_the_refusal() {
        let mut gate = Gate::new(Policy::default());
        // A host booting in 1970 without a battery-backed clock.
        let e = gate
            .check(&at(0, NOW * 1_000_000_000))
            .expect_err("beyond the panic threshold");
        assert!(matches!(
            e,
            Refusal::Panic {
                local_before_floor: true,
                ..
            }
        ));
        assert!(e.to_string().contains("battery-backed"), "{e}");
        let mut gate = Gate::new(Policy {
            allow_startup_step: true,
            ..Policy::default()
        });
        assert_eq!(
            gate.check(&at(0, NOW * 1_000_000_000)),
            Ok(Passed::StartupStep)
        );
    }

    #[test]
    fn extremes_do_not_overflow() {
        let mut gate = Gate::new(Policy::default());
        for o in [i64::MIN, i64::MAX, 0] {
            let _ = gate.check(&at(NOW, o));
            let _ = gate.check(&at(i64::MIN / 1_000_000_000, o));
        }
    }
}
