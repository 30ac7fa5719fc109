//! Leap seconds as time-keeping sees them: what a WebNTP server reports ([`LeapInfo`]: the
//! `leap`, `next` and `step` of its replies), and the NTP leap indicator a reference-clock
//! sample carries ([`Leap`]), with the rule that turns one into the other. Pure: no I/O, no
//! clock reads. (The `leap-seconds.list` file itself is [`crate::leap`]'s.)

use super::time::Timestamp;

const SECS_PER_DAY: i64 = 86_400;

/// What the server reports about leap seconds at a given instant (go-webntp's `leap`, `next`
/// and `step` fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LeapInfo {
    /// TAI-UTC in seconds before the event `next_unix`.
    pub leap: i32,
    /// The event: the first one after now, or the last one if none is scheduled; 0 if the
    /// list has no events.
    pub next_unix: i64,
    /// How TAI-UTC changes at `next_unix`: +1 (inserted second), -1 (deleted second), or 0.
    pub step: i32,
}

impl LeapInfo {
    /// No leap second information (no list loaded): all zero, as go-webntp sends.
    pub const NONE: LeapInfo = LeapInfo {
        leap: 0,
        next_unix: 0,
        step: 0,
    };
}

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

/// The last leap second as a server reports it, for tests here and elsewhere.
#[cfg(test)]
pub(crate) mod examples {
    use super::LeapInfo;

    /// 2017-01-01 00:00:00 UTC, when the last leap second ended.
    pub(crate) const EVENT: i64 = 1_483_228_800;

    /// A step of `step` at `next_unix`, TAI-UTC 36 s before it.
    pub(crate) fn info(step: i32, next_unix: i64) -> Option<LeapInfo> {
        Some(LeapInfo {
            leap: 36,
            next_unix,
            step,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::examples::{info, EVENT};
    use super::*;

    /// 2016-12-31 00:00:00 UTC, the start of the day that ended with the last leap second.
    const DEC_31_2016: i64 = 1_483_142_400;

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
}
