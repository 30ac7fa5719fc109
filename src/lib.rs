//! webntpd: time over HTTP.
//!
//! A WebNTP server (go-webntp and NICT compatible, plus Time-over-HTTPS), and later the client
//! daemon that measures WebNTP servers and feeds ntpd/chrony through reference clocks.
//!
//! # Layout
//! - [`cli`]: the command line's definition (clap), for `main.rs`, the man page and the
//!   shell completions.
//! - [`client`]: measuring a WebNTP server: transports, socket-edge timestamps, bursts.
//! - [`clock`]: the `Clock` trait, the only place time is read, so tests can shift it.
//! - [`config`]: `/etc/webntpd.toml`: its schema, reading it, and every check on it.
//! - [`wire`]: sans-IO wire formats (timestamps, JSON/JSONP/NICT bodies), pure functions.
//! - [`leap`]: `leap-seconds.list`: parse, verify, look up; and the store that loads and
//!   refreshes it.
//! - [`query`]: `webntpd query`: measure servers once and report (and write the result to
//!   reference clocks).
//! - [`refclock`]: the outputs that hand offsets to ntpd, ntpsec and chrony: SHM and SOCK.
//!   `refclock::shm::sys` holds the only unsafe code; everything else denies it.
//! - [`sync`]: pure time-keeping: the time type, exchange maths, burst and clock filters,
//!   selection, the sanity rules, leap and reference-sample rules. No tokio, no sockets.
//! - [`server`]: the hyper-based WebNTP server: routing, WebSocket, TLS, limits, shutdown.
//! - [`exit`]: sysexits codes shared by every command.
//! - [`files`]: the one reader of every file a user names: regular files only, never
//!   blocking, bounded in size.
//! - `fuzzing`: entry points for the fuzz targets in `fuzz/` into private code; not an API.

#![deny(unsafe_code)]

pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod exit;
pub mod files;
#[doc(hidden)]
pub mod fuzzing;
pub mod leap;
pub mod logging;
pub mod net;
pub mod query;
pub mod refclock;
pub mod server;
pub mod sync;
pub mod wire;
