//! Reference-clock outputs: how a measured offset reaches the daemon that disciplines the
//! system clock.
//!
//! - [`sample`]: the [`RefSample`] every output is handed (receive time, offset, leap warning,
//!   precision), made from a burst's estimate. Pure.

pub mod sample;

pub use sample::{leap_warning, precision_log2, Leap, RefSample};
