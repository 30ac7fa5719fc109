//! webntpd: time over HTTP.
//!
//! A WebNTP client daemon that measures WebNTP servers over HTTP(S) and WebSocket and feeds
//! ntpd, ntpsec and chrony through their reference clocks; and a WebNTP server (go-webntp
//! and NICT compatible, plus Time over HTTPS and a clock page for browsers). How the pieces
//! fit, task by task, is in `docs/architecture.md`.
//!
//! # Layout
//! The layers, from the bottom; each uses only those above it in this list.
//! - [`sync`]: pure time-keeping: the time type, exchange maths, burst and clock filters,
//!   selection, the daemon's decision, the sanity rules, leap and reference-sample rules.
//!   No tokio, no sockets, no clock reads.
//! - [`wire`]: text formats: timestamps, the WebNTP JSON/JSONP reply, NICT's pages. Pure.
//! - [`clock`]: the `Clock` trait, the only place time is read, so tests can shift it.
//! - [`exit`]: sysexits codes shared by every command.
//! - [`files`]: the one reader of every file a user names: regular files only, never
//!   blocking, bounded in size.
//! - [`net`]: stream wrappers, kernel receive stamps, the client's socket-edge stamps,
//!   connections (names, proxies, TLS), one bounded HTTP/1 request.
//! - [`leap`]: `leap-seconds.list`: the format, the list in use, its refresh and download.
//! - [`client`]: measuring one WebNTP server with a burst over HTTP, WebSocket, Time over
//!   HTTPS or a `Date:` header.
//! - [`refclock`]: the outputs that hand offsets to ntpd, ntpsec and chrony (SHM and SOCK),
//!   and to NTP clients (an NTP server).
//!   `refclock::shm::sys` and `refclock::timex` hold the only unsafe code; everything else
//!   denies it.
//! - [`server`]: the WebNTP server: listeners, a connection's life, the HTTP/1 fast path,
//!   hyper for the rest, WebSocket, the clock page, TLS, limits, shutdown.
//! - [`metrics`]: the Prometheus exposition of the server's counters and of the daemon's
//!   status document (its type is [`daemon::status`]'s), and the endpoint serving it.
//! - [`config`]: `/etc/webntpd.toml`: its schema, reading it, and every check on it.
//! - [`logging`]: journald or stderr, and the levels.
//! - [`daemon`]: `webntpd run`: the supervisor, source tasks, outputs, status, systemd.
//! - [`query`]: `webntpd query`: measure servers once, report, and write by the daemon's
//!   rules.
//! - [`cli`]: the command line's definition (clap), for `main.rs`, the man page and the
//!   shell completions.
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
pub mod metrics;
pub mod net;
pub mod query;
pub mod refclock;
pub mod server;
pub mod sync;
pub mod wire;
