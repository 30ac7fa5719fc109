//! Pure time-keeping: everything webntpd decides about time, with no tokio, no sockets, no
//! files and no clock reads. Callers pass timestamps in and get decisions out; the daemon,
//! the client and `webntpd query` do the I/O around it (the ntpd-rs way), so every rule here
//! is tested with plain values.
//!
//! - [`time`]: the time type, integer nanoseconds since the Unix epoch.
//! - [`exchange`]: offset and delay from one exchange's four timestamps.
//! - [`burst`]: the burst filter: the exchange to believe and the error bound it may claim.
//! - [`filter`]: a source's clock filter over its last bursts, with popcorn-spike holding.
//! - [`select`]: NTP's intersection across sources, and their combination.
//! - [`decide`]: the daemon's step after a burst: verdicts, the combined offset, the sample
//!   to write.
//! - [`sanity`]: what is never written: the build-date floor, the panic threshold, the
//!   startup step.
//! - [`leap`]: the leap-second data a server reports and the leap indicator written.
//! - [`refsample`]: the sample a reference clock is handed, and its precision.
//! - [`serve`]: what the NTP server serves, and with what error: from the daemon's combined
//!   offset (added to a free clock, not to a disciplined one) or from the kernel's state.
//! - [`date`]: the offset from a web server's `Date:` header, by bisecting its second
//!   boundary.

pub mod burst;
pub mod date;
pub mod decide;
pub mod exchange;
pub mod filter;
pub mod leap;
pub mod refsample;
pub mod sanity;
pub mod select;
pub mod serve;
pub mod time;

pub use time::Timestamp;
