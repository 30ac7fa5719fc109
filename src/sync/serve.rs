//! What the NTP server serves, and with what error: the rules, as pure functions. No I/O,
//! no clock reads; integer nanoseconds. The packet itself is [`crate::wire::ntp`]'s.
//!
//! webntpd does not set the clock, so the time it serves is the local clock plus whatever it
//! knows about that clock's error. Two sources of that knowledge:
//!
//! - **The daemon's combined offset** ([`from_reference`]): after each burst the daemon hands
//!   the NTP output a [`Reference`]: the combined offset of the sources that agree, its error
//!   bound, the best source's delay and the leap data. How it is served depends on who keeps
//!   the local clock ([`Discipline`]):
//!   - [`Discipline::Free`], nobody disciplines it: the served time is the local clock *plus*
//!     the offset, held until the next update. Root dispersion grows with the age of the
//!     update at NTP's frequency tolerance [`PHI_PPM`] (15 ppm), as NTP's own does.
//!   - [`Discipline::Disciplined`], chrony or ntpd disciplines it (typically from webntpd's
//!     own SHM or SOCK output): adding the offset as well would count a correction twice
//!     while the clock slews towards it, so the served time is the local clock as it is, and
//!     the part of the offset the discipline may not have removed yet, `|offset|`, goes into
//!     the root dispersion instead.
//!
//!   In both, a step of the local clock since the update (the realtime clock minus the
//!   monotonic one, [`crate::clock::step_base_ns`]) is taken out of the offset first.
//!   Root delay is the best source's round trip, and root dispersion the combined error
//!   bound less half that delay (the bound already covers it), so that a client's root
//!   distance, `delay / 2 + dispersion`, is exactly the daemon's error bound, aged. Without
//!   an update, or with one older than [`Rules::max_age_ns`], the server says it is
//!   unsynchronised: leap indicator 3 and stratum 16, as chrony and ntpd answer then.
//! - **The kernel** ([`from_kernel`], `webntpd serve`): the local clock as it is, with the
//!   error the discipline daemon told the kernel (`adjtimex`'s `maxerror`, which the kernel
//!   grows by 500 ppm), unsynchronised when the kernel says nobody vouches for the clock.

use super::leap::{leap_warning, Leap, LeapInfo};
use super::refsample::RefSample;
use super::time::Timestamp;

/// How fast the error of a held offset grows: NTP's frequency tolerance, 15 ppm (15 us per
/// second of age), as the clock filter ages a burst ([`super::filter::PHI_PPM`]).
pub const PHI_PPM: i64 = super::filter::PHI_PPM;

/// The kernel's `maxerror` at and above which it calls the clock unsynchronised: 16 s
/// (`NTP_PHASE_LIMIT`). It sets that when nobody has vouched for the clock, and adds
/// 500 us every second to what a discipline daemon last set.
pub const KERNEL_UNSYNC_MAXERROR_NS: i64 = 16_000_000_000;

/// The stratum served while unsynchronised: 16, "unsynchronised" in NTP.
pub const STRATUM_UNSYNCHRONISED: u8 = 16;

/// Who keeps the local clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discipline {
    /// Nobody: it runs free, so webntpd's offset is added to it.
    Free,
    /// A time daemon steers it (from webntpd's own output, or from other sources): it is
    /// served as it is.
    Disciplined,
}

impl Discipline {
    /// The word the configuration and `webntpd status` use.
    pub fn as_str(self) -> &'static str {
        match self {
            Discipline::Free => "free",
            Discipline::Disciplined => "disciplined",
        }
    }
}

/// What the configuration says about who keeps the local clock (`clock` in an ntp
/// `[[output]]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClockSetting {
    /// Find out: see [`resolve`].
    #[default]
    Auto,
    /// Nobody disciplines it.
    Free,
    /// A time daemon disciplines it.
    Disciplined,
}

impl std::str::FromStr for ClockSetting {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(ClockSetting::Auto),
            "free" => Ok(ClockSetting::Free),
            "disciplined" => Ok(ClockSetting::Disciplined),
            _ => Err(format!("`{s}`: expected auto, free or disciplined")),
        }
    }
}

/// Why the clock is taken as free or disciplined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisciplineReason {
    /// `clock = "free"` or `"disciplined"`.
    Configured,
    /// The kernel says a time daemon vouches for the clock.
    KernelSynchronised,
    /// webntpd also feeds a time daemon (an shm or sock output), which steers the clock
    /// from it, or will once it selects it.
    FeedsTimeDaemon,
    /// The kernel says nobody vouches for the clock, and webntpd feeds no time daemon.
    KernelFree,
    /// The kernel cannot be asked (a sandbox refuses `adjtimex`) and webntpd feeds no time
    /// daemon.
    KernelUnknown,
}

impl DisciplineReason {
    /// For `webntpd status` and logs.
    pub fn describe(self) -> &'static str {
        match self {
            DisciplineReason::Configured => "configured",
            DisciplineReason::KernelSynchronised => {
                "the kernel says a time daemon disciplines the clock"
            }
            DisciplineReason::FeedsTimeDaemon => {
                "webntpd feeds a time daemon (shm or sock output) that disciplines the clock"
            }
            DisciplineReason::KernelFree => {
                "the kernel says nobody disciplines the clock and webntpd feeds no time daemon"
            }
            DisciplineReason::KernelUnknown => {
                "webntpd feeds no time daemon, and the kernel cannot be asked (set clock = \
                 \"disciplined\" if one syncs from this server)"
            }
        }
    }
}

/// Who keeps the clock, for `clock = setting`: what is configured; for `auto`, disciplined
/// when the kernel says a time daemon vouches for the clock or when webntpd feeds one
/// (`feeds_time_daemon`: such a daemon steers the clock from webntpd's offset, so adding it
/// again would count it twice), else free. When in doubt a clock is taken as disciplined,
/// which is honest either way: its offset goes into the dispersion.
pub fn resolve(
    setting: ClockSetting,
    feeds_time_daemon: bool,
    kernel: Option<&KernelClock>,
) -> (Discipline, DisciplineReason) {
    match setting {
        ClockSetting::Free => return (Discipline::Free, DisciplineReason::Configured),
        ClockSetting::Disciplined => {
            return (Discipline::Disciplined, DisciplineReason::Configured)
        }
        ClockSetting::Auto => {}
    }
    match kernel {
        Some(k) if k.synchronised() => (
            Discipline::Disciplined,
            DisciplineReason::KernelSynchronised,
        ),
        _ if feeds_time_daemon => (Discipline::Disciplined, DisciplineReason::FeedsTimeDaemon),
        Some(_) => (Discipline::Free, DisciplineReason::KernelFree),
        None => (Discipline::Free, DisciplineReason::KernelUnknown),
    }
}

/// One combined estimate, as the daemon hands it to its outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reference {
    /// The combined offset, stamped with the local time it was computed at, and the leap
    /// warning and precision a reference clock is given.
    pub sample: RefSample,
    /// A bound on the combined offset's error, in nanoseconds.
    pub error_ns: i64,
    /// The round-trip delay of the best source's measurement, in nanoseconds.
    pub delay_ns: i64,
    /// The leap-second data the sources agree on, to judge the leap warning at each request.
    pub leap: Option<LeapInfo>,
    /// The monotonic clock at `sample.receive`, in nanoseconds: the update's age is measured
    /// on it.
    pub mono_ns: i64,
    /// The realtime clock minus the monotonic one at `sample.receive`
    /// ([`crate::clock::step_base_ns`]): a later difference is a step of the clock.
    pub base_ns: i64,
}

/// The local clock as the kernel describes it (`adjtimex` with no modes: read only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelClock {
    /// `STA_UNSYNC` is set. chrony clears it only with `rtcsync`, so it is not enough alone.
    pub unsync_flag: bool,
    /// The maximum error the discipline daemon last set, grown by the kernel since, in
    /// nanoseconds; [`KERNEL_UNSYNC_MAXERROR_NS`] when nobody set it.
    pub maxerror_ns: i64,
    /// `STA_INS`: a second is inserted at the end of this UTC day.
    pub insert: bool,
    /// `STA_DEL`: a second is deleted at the end of this UTC day.
    pub delete: bool,
}

impl KernelClock {
    /// Whether a time daemon vouches for the clock: it cleared `STA_UNSYNC` (ntpd, timesyncd,
    /// chrony with `rtcsync`), or set a maximum error below the kernel's 16 s (chrony does
    /// at every clock update, with or without `rtcsync`; the kernel grows it by 500 us per
    /// second, so it passes 16 s some hours after the daemon stops).
    pub fn synchronised(&self) -> bool {
        !self.unsync_flag || self.maxerror_ns < KERNEL_UNSYNC_MAXERROR_NS
    }
}

/// The settings of one NTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// The stratum served while synchronised (1-15).
    pub stratum: u8,
    /// The reference ID served while synchronised.
    pub reference_id: [u8; 4],
    /// An update older than this makes the server unsynchronised, in nanoseconds.
    pub max_age_ns: i64,
}

/// Why the server says it is unsynchronised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsynchronised {
    /// No combined offset yet (reference ID `INIT`).
    NoUpdate,
    /// The last one is older than [`Rules::max_age_ns`] (`STAL`).
    Stale,
    /// The daemon's selection failed, or the sanity rules refused its result, after the last
    /// update (`LOST`).
    Lost,
    /// The kernel says nobody vouches for the local clock, or cannot be asked (`UNSY`).
    Kernel,
}

impl Unsynchronised {
    /// The reference ID sent with stratum 16, saying why: ASCII, as ntpd's `INIT`.
    pub fn reference_id(self) -> [u8; 4] {
        *match self {
            Unsynchronised::NoUpdate => b"INIT",
            Unsynchronised::Stale => b"STAL",
            Unsynchronised::Lost => b"LOST",
            Unsynchronised::Kernel => b"UNSY",
        }
    }

    /// For `webntpd status` and logs.
    pub fn describe(self) -> &'static str {
        match self {
            Unsynchronised::NoUpdate => "no combined offset yet",
            Unsynchronised::Stale => "the last combined offset is older than max_age",
            Unsynchronised::Lost => "the daemon's sources no longer give a combined offset",
            Unsynchronised::Kernel => "the kernel says nobody vouches for the local clock",
        }
    }
}

/// What one reply says, before it is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Served {
    /// The leap indicator: [`Leap::Unsynchronised`] when not synchronised.
    pub leap: Leap,
    /// 1-15, or [`STRATUM_UNSYNCHRONISED`].
    pub stratum: u8,
    /// The reference ID.
    pub reference_id: [u8; 4],
    /// When the served time was last updated, on the served time scale (`None`: never).
    pub reference_time: Option<Timestamp>,
    /// Root delay, in nanoseconds.
    pub root_delay_ns: i64,
    /// Root dispersion, in nanoseconds.
    pub root_dispersion_ns: i64,
    /// Added to the local clock's readings to give the served time, in nanoseconds.
    pub offset_ns: i64,
    /// Why it is unsynchronised, when it is.
    pub unsynchronised: Option<Unsynchronised>,
}

impl Served {
    /// An unsynchronised answer: the local clock as it is, leap indicator 3, stratum 16,
    /// the reason as the reference ID.
    pub fn unsynchronised(why: Unsynchronised) -> Served {
        Served {
            leap: Leap::Unsynchronised,
            stratum: STRATUM_UNSYNCHRONISED,
            reference_id: why.reference_id(),
            reference_time: None,
            root_delay_ns: 0,
            root_dispersion_ns: 0,
            offset_ns: 0,
            unsynchronised: Some(why),
        }
    }

    /// Whether this answer says the server is synchronised.
    pub fn is_synchronised(&self) -> bool {
        self.leap != Leap::Unsynchronised
    }

    /// The root distance a client computes, `delay / 2 + dispersion`, in nanoseconds.
    pub fn root_distance_ns(&self) -> i64 {
        (self.root_delay_ns / 2).saturating_add(self.root_dispersion_ns)
    }
}

/// How much an error of `ns` grows over `age_ns` at [`PHI_PPM`].
fn aged(age_ns: i64) -> i64 {
    age_ns.max(0).saturating_mul(PHI_PPM) / 1_000_000
}

/// What to serve from the daemon's last `reference` (or its absence, with the reason), at
/// local time `now` (realtime) and `now_mono` (monotonic), the clock kept as `discipline`
/// says. See the module comment for the rules.
pub fn from_reference(
    reference: Result<&Reference, Unsynchronised>,
    discipline: Discipline,
    rules: &Rules,
    now: Timestamp,
    now_mono: i64,
) -> Served {
    let r = match reference {
        Ok(r) => r,
        Err(why) => return Served::unsynchronised(why),
    };
    let age_ns = now_mono.saturating_sub(r.mono_ns);
    if age_ns > rules.max_age_ns {
        return Served::unsynchronised(Unsynchronised::Stale);
    }
    // A step of the local clock since the update moves the offset back by as much.
    let now_base = i64::try_from(now.nanos_since(Timestamp::from_nanos(i128::from(now_mono))))
        .unwrap_or(r.base_ns);
    let residual_ns = r
        .sample
        .offset_ns
        .saturating_add(r.base_ns.saturating_sub(now_base));
    let delay_ns = r.delay_ns.max(0);
    // The bound covers half the delay already: root distance = error bound, aged.
    let mut dispersion_ns = r
        .error_ns
        .saturating_sub(delay_ns / 2)
        .max(0)
        .saturating_add(aged(age_ns));
    let (offset_ns, reference_offset_ns) = match discipline {
        Discipline::Free => (residual_ns, r.sample.offset_ns),
        Discipline::Disciplined => {
            dispersion_ns = dispersion_ns.saturating_add(residual_ns.saturating_abs());
            (0, 0)
        }
    };
    let served_now = now.add_nanos(i128::from(offset_ns));
    Served {
        leap: leap_warning(r.leap, served_now),
        stratum: rules.stratum,
        reference_id: rules.reference_id,
        reference_time: Some(r.sample.receive.add_nanos(i128::from(reference_offset_ns))),
        root_delay_ns: delay_ns,
        root_dispersion_ns: dispersion_ns,
        offset_ns,
        unsynchronised: None,
    }
}

/// What to serve from the local clock as the kernel describes it (`None`: it cannot be
/// asked), at local time `now`, with `leap` the leap-second list's data for then.
/// Synchronised: the stratum and reference ID of `rules`, root dispersion the kernel's
/// maximum error, no root delay, no reference time (nobody says when the clock was last
/// set); the leap warning from `leap`, or from the kernel's own flags without a list.
pub fn from_kernel(
    kernel: Option<&KernelClock>,
    leap: Option<LeapInfo>,
    rules: &Rules,
    now: Timestamp,
) -> Served {
    let Some(k) = kernel.filter(|k| k.synchronised()) else {
        return Served::unsynchronised(Unsynchronised::Kernel);
    };
    let leap = match leap {
        Some(info) => leap_warning(Some(info), now),
        None if k.insert => Leap::InsertSecond,
        None if k.delete => Leap::DeleteSecond,
        None => Leap::NoWarning,
    };
    Served {
        leap,
        stratum: rules.stratum,
        reference_id: rules.reference_id,
        reference_time: None,
        root_delay_ns: 0,
        root_dispersion_ns: k.maxerror_ns.clamp(0, KERNEL_UNSYNC_MAXERROR_NS),
        offset_ns: 0,
        unsynchronised: None,
    }
}

/// What to serve from the local clock taken as right, as chrony's `local stratum N` does
/// (`webntpd serve --ntp-clock local`): the operator vouches for it. Root dispersion is
/// the kernel's maximum error when a discipline daemon set one, else none.
pub fn from_local(
    kernel: Option<&KernelClock>,
    leap: Option<LeapInfo>,
    rules: &Rules,
    now: Timestamp,
) -> Served {
    let vouched = kernel.filter(|k| k.synchronised());
    Served {
        leap: leap_warning(leap, now),
        stratum: rules.stratum,
        reference_id: rules.reference_id,
        reference_time: None,
        root_delay_ns: 0,
        root_dispersion_ns: vouched.map_or(0, |k| k.maxerror_ns.max(0)),
        offset_ns: 0,
        unsynchronised: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::leap::examples::{info, EVENT};

    const MS: i64 = 1_000_000;
    const S: i64 = 1_000_000_000;
    const RULES: Rules = Rules {
        stratum: 3,
        reference_id: *b"WNTP",
        max_age_ns: 3600 * S,
    };

    /// An update at local realtime `at` (monotonic 1000 s), +100 ms, error 2 ms, delay 1 ms.
    fn reference(at: Timestamp) -> Reference {
        let mono_ns = 1_000 * S;
        Reference {
            sample: RefSample::measured(at, 100 * MS, 2 * MS, None),
            error_ns: 2 * MS,
            delay_ns: MS,
            leap: None,
            mono_ns,
            base_ns: i64::try_from(at.as_nanos()).unwrap() - mono_ns,
        }
    }

    /// `secs` after the update, on both clocks.
    fn later(r: &Reference, secs: i64) -> (Timestamp, i64) {
        (
            r.sample.receive.add_nanos(i128::from(secs * S)),
            r.mono_ns + secs * S,
        )
    }

    const AT: Timestamp = Timestamp::from_secs(1_796_083_200);

    #[test]
    fn a_free_clock_is_served_with_the_offset_added_and_the_dispersion_growing() {
        let r = reference(AT);
        let (now, mono) = later(&r, 0);
        let s = from_reference(Ok(&r), Discipline::Free, &RULES, now, mono);
        assert_eq!(s.offset_ns, 100 * MS);
        assert_eq!((s.stratum, s.reference_id), (3, *b"WNTP"));
        assert_eq!(s.leap, Leap::NoWarning);
        assert_eq!(s.root_delay_ns, MS);
        // 2 ms of error, of which 0.5 ms is half the delay.
        assert_eq!(s.root_dispersion_ns, 2 * MS - MS / 2);
        assert_eq!(
            s.root_distance_ns(),
            2 * MS,
            "root distance = the error bound"
        );
        assert_eq!(s.reference_time, Some(AT.add_nanos(i128::from(100 * MS))));
        assert!(s.is_synchronised());
        // 100 s later: 15 ppm of 100 s = 1.5 ms more; the offset is held.
        let (now, mono) = later(&r, 100);
        let s = from_reference(Ok(&r), Discipline::Free, &RULES, now, mono);
        assert_eq!(s.offset_ns, 100 * MS);
        assert_eq!(s.root_dispersion_ns, 2 * MS - MS / 2 + 1_500_000);
        assert_eq!(s.reference_time, Some(AT.add_nanos(i128::from(100 * MS))));
    }

    #[test]
    fn a_disciplined_clock_is_served_as_it_is_with_the_offset_in_the_dispersion() {
        let r = reference(AT);
        let (now, mono) = later(&r, 10);
        let s = from_reference(Ok(&r), Discipline::Disciplined, &RULES, now, mono);
        assert_eq!(s.offset_ns, 0, "never added twice");
        assert_eq!(
            s.root_dispersion_ns,
            2 * MS - MS / 2 + 150_000 + 100 * MS,
            "what the discipline may not have removed yet"
        );
        assert_eq!(s.reference_time, Some(AT));
        // The time daemon stepped the clock by the offset: nothing left to allow for.
        let stepped = now.add_nanos(i128::from(100 * MS));
        let s = from_reference(Ok(&r), Discipline::Disciplined, &RULES, stepped, mono);
        assert_eq!(s.root_dispersion_ns, 2 * MS - MS / 2 + 150_000);
    }

    #[test]
    fn a_step_of_the_local_clock_is_taken_out_of_a_held_offset() {
        let r = reference(AT);
        let (now, mono) = later(&r, 5);
        // Someone set the clock 30 ms ahead: it now needs 30 ms less.
        let now = now.add_nanos(i128::from(30 * MS));
        let s = from_reference(Ok(&r), Discipline::Free, &RULES, now, mono);
        assert_eq!(s.offset_ns, 70 * MS);
    }

    #[test]
    fn without_a_fresh_update_the_server_is_unsynchronised_and_says_why() {
        let r = reference(AT);
        for (why, id) in [
            (Unsynchronised::NoUpdate, b"INIT"),
            (Unsynchronised::Lost, b"LOST"),
        ] {
            let s = from_reference(Err(why), Discipline::Free, &RULES, AT, 0);
            assert_eq!(s.leap, Leap::Unsynchronised);
            assert_eq!(s.stratum, 16);
            assert_eq!(&s.reference_id, id);
            assert_eq!((s.offset_ns, s.reference_time), (0, None));
            assert!(!s.is_synchronised());
        }
        let (now, mono) = later(&r, 3600);
        assert!(from_reference(Ok(&r), Discipline::Free, &RULES, now, mono).is_synchronised());
        let (now, mono) = later(&r, 3601);
        let s = from_reference(Ok(&r), Discipline::Free, &RULES, now, mono);
        assert_eq!(s, Served::unsynchronised(Unsynchronised::Stale));
        assert_eq!(&s.reference_id, b"STAL");
    }

    #[test]
    fn the_leap_warning_is_judged_on_the_served_time_at_each_request() {
        let mut r = reference(Timestamp::from_secs(EVENT - 86_400 - 1));
        r.leap = info(1, EVENT);
        let (now, mono) = later(&r, 0);
        // Local 1 s before the last day, served +100 ms: still the day before.
        let s = from_reference(Ok(&r), Discipline::Free, &RULES, now, mono);
        assert_eq!(s.leap, Leap::NoWarning);
        let (now, mono) = later(&r, 1);
        let s = from_reference(Ok(&r), Discipline::Free, &RULES, now, mono);
        assert_eq!(s.leap, Leap::InsertSecond);
        // Disciplined: the local clock is what is served, 0.9 s into the day is not yet it.
        let (now, mono) = (now.add_nanos(-i128::from(95 * MS)), mono - 95 * MS);
        let s = from_reference(Ok(&r), Discipline::Disciplined, &RULES, now, mono);
        assert_eq!(s.leap, Leap::NoWarning);
    }

    #[test]
    fn a_delay_larger_than_twice_the_error_never_makes_the_dispersion_negative() {
        let mut r = reference(AT);
        r.delay_ns = 10 * MS;
        let s = from_reference(Ok(&r), Discipline::Free, &RULES, AT, r.mono_ns);
        assert_eq!(s.root_dispersion_ns, 0);
        assert!(s.root_distance_ns() >= r.error_ns);
        r.delay_ns = -5;
        let s = from_reference(Ok(&r), Discipline::Free, &RULES, AT, r.mono_ns);
        assert_eq!(s.root_delay_ns, 0);
    }

    const UNSYNCED: KernelClock = KernelClock {
        unsync_flag: true,
        maxerror_ns: KERNEL_UNSYNC_MAXERROR_NS,
        insert: false,
        delete: false,
    };

    #[test]
    fn the_kernel_vouches_for_the_clock_when_a_daemon_set_its_error_or_cleared_unsync() {
        assert!(!UNSYNCED.synchronised());
        // chrony without rtcsync: STA_UNSYNC stays, the maximum error is set.
        let chrony = KernelClock {
            maxerror_ns: 1_500_000,
            ..UNSYNCED
        };
        assert!(chrony.synchronised());
        let ntpd = KernelClock {
            unsync_flag: false,
            ..UNSYNCED
        };
        assert!(ntpd.synchronised());
    }

    #[test]
    fn who_keeps_the_clock() {
        use ClockSetting::*;
        use DisciplineReason::*;
        let synced = KernelClock {
            maxerror_ns: MS,
            ..UNSYNCED
        };
        for feeds in [false, true] {
            for k in [None, Some(&UNSYNCED), Some(&synced)] {
                assert_eq!(resolve(Free, feeds, k), (Discipline::Free, Configured));
                assert_eq!(
                    resolve(Disciplined, feeds, k),
                    (Discipline::Disciplined, Configured)
                );
            }
            assert_eq!(
                resolve(Auto, feeds, Some(&synced)),
                (Discipline::Disciplined, KernelSynchronised)
            );
        }
        assert_eq!(
            resolve(Auto, true, Some(&UNSYNCED)),
            (Discipline::Disciplined, FeedsTimeDaemon)
        );
        assert_eq!(
            resolve(Auto, true, None),
            (Discipline::Disciplined, FeedsTimeDaemon)
        );
        assert_eq!(
            resolve(Auto, false, Some(&UNSYNCED)),
            (Discipline::Free, KernelFree)
        );
        assert_eq!(
            resolve(Auto, false, None),
            (Discipline::Free, KernelUnknown)
        );
        assert_eq!("disciplined".parse(), Ok(Disciplined));
        assert!("maybe".parse::<ClockSetting>().is_err());
    }

    #[test]
    fn the_kernels_clock_is_served_with_its_maximum_error() {
        let k = KernelClock {
            maxerror_ns: 1_500_000,
            insert: true,
            ..UNSYNCED
        };
        let s = from_kernel(Some(&k), None, &RULES, AT);
        assert_eq!(s.offset_ns, 0);
        assert_eq!((s.root_delay_ns, s.root_dispersion_ns), (0, 1_500_000));
        assert_eq!(
            s.leap,
            Leap::InsertSecond,
            "the kernel's flag without a list"
        );
        // With a list, the list decides (no event today).
        let s = from_kernel(Some(&k), info(1, EVENT), &RULES, AT);
        assert_eq!(s.leap, Leap::NoWarning);
        assert_eq!(
            from_kernel(Some(&UNSYNCED), None, &RULES, AT),
            Served::unsynchronised(Unsynchronised::Kernel)
        );
        assert_eq!(
            from_kernel(None, None, &RULES, AT),
            Served::unsynchronised(Unsynchronised::Kernel)
        );
    }

    #[test]
    fn a_local_clock_is_vouched_for_by_the_operator() {
        let s = from_local(None, None, &RULES, AT);
        assert!(s.is_synchronised());
        assert_eq!((s.stratum, s.root_dispersion_ns), (3, 0));
        let k = KernelClock {
            maxerror_ns: 4 * MS,
            ..UNSYNCED
        };
        assert_eq!(
            from_local(Some(&k), None, &RULES, AT).root_dispersion_ns,
            4 * MS
        );
        assert_eq!(
            from_local(Some(&UNSYNCED), None, &RULES, AT).root_dispersion_ns,
            0
        );
    }
}
