//! The time type: a point in time as integer nanoseconds since the Unix epoch, and its
//! arithmetic. Every time webntpd measures, compares or writes is one of these until it is
//! displayed; its text forms (what peers send and receive) are in [`crate::wire::timestamp`].

/// Nanoseconds in a second.
const NANOS_PER_SEC: i128 = 1_000_000_000;

/// A point in time as signed nanoseconds since 1970-01-01 00:00:00 UTC (POSIX time).
///
/// `i128` so that any timestamp a client may send (and expect echoed) is representable; the
/// system clock's own readings fit easily.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(i128);

impl Timestamp {
    /// The epoch, 1970-01-01 00:00:00 UTC; what go-webntp echoes for a request without a
    /// timestamp.
    pub const ZERO: Timestamp = Timestamp(0);

    /// From nanoseconds since the epoch.
    pub const fn from_nanos(ns: i128) -> Self {
        Timestamp(ns)
    }

    /// From whole seconds since the epoch.
    pub const fn from_secs(secs: i64) -> Self {
        Timestamp(secs as i128 * NANOS_PER_SEC)
    }

    /// Nanoseconds since the epoch.
    pub const fn as_nanos(self) -> i128 {
        self.0
    }

    /// Whole seconds since the epoch, rounded towards negative infinity, saturating at the
    /// `i64` range.
    pub fn unix_seconds(self) -> i64 {
        let s = self.0.div_euclid(NANOS_PER_SEC);
        i64::try_from(s).unwrap_or(if s < 0 { i64::MIN } else { i64::MAX })
    }

    /// This timestamp moved by `ns` nanoseconds (saturating).
    pub fn add_nanos(self, ns: i128) -> Self {
        Timestamp(self.0.saturating_add(ns))
    }

    /// `self - earlier` in nanoseconds.
    pub fn nanos_since(self, earlier: Timestamp) -> i128 {
        self.0.saturating_sub(earlier.0)
    }

    /// Seconds as a float, for display only.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }
}
