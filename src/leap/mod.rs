//! Leap seconds: the `leap-seconds.list` file and what the server reports from it.
//!
//! - [`list`]: the format: parsing, verification, the lookup each reply makes. Pure.
//! - [`store`]: the list in use, loaded from disk and swapped without a lock.
//! - [`refresh`]: the optional periodic refresh, its cache, and the expiry watch.
//! - [`download`]: one bounded GET of a list.
//!
//! What a server reports ([`crate::sync::leap::LeapInfo`]) and the leap indicator written to
//! a reference clock are time-keeping's, in [`crate::sync::leap`].

pub mod download;
pub mod list;
pub mod refresh;
pub mod store;

pub use list::{LeapEntry, LeapError, LeapList};
pub use refresh::{RefreshError, RefreshOutcome};
pub use store::{LeapConfig, LeapLoadError, LeapSource, LeapStore, MAX_LIST_BYTES};

#[cfg(test)]
pub(crate) use list::test_util;
