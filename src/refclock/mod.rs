//! Reference-clock outputs: how a measured offset reaches the daemon that disciplines the
//! system clock.
//!
//! - [`sample`]: the [`RefSample`] every output is handed (receive time, offset, leap warning,
//!   precision), made from a burst's estimate. Pure.
//! - [`shm`]: the SHM refclock of ntpd, ntpsec and chrony (System V shared memory; its `sys`
//!   submodule holds the project's only unsafe code).
//! - [`sock`]: chrony's SOCK refclock (a datagram to a Unix socket).

pub mod sample;
pub mod shm;
pub mod sock;

pub use sample::{leap_warning, precision_log2, Leap, RefSample};
pub use shm::{ShmError, ShmWriter};
pub use sock::{SockError, SockFailure, SockWriter};
