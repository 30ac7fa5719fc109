//! The end-to-end tests, one module per subject, in one test binary: one link instead of one
//! per file, and one `common` (see `common/mod.rs`) without a blanket `allow(dead_code)`.
//! Every test drives the real server, client, daemon or binary over real sockets and real
//! peers. Two suites are binaries of their own because they must not share the machine with
//! the others: `tests/server_faults.rs` (a server's latency under attack, against a baseline
//! measured in the same run) and `tests/boot.rs` (builds the release .deb and boots systemd).
#![forbid(unsafe_code)]

mod browser;
mod cli;
mod client;
mod common;
mod config;
mod daemon;
mod docs;
mod faults;
mod files;
mod fuzz;
mod http;
mod limits;
mod metrics;
mod ntp;
mod packaging;
mod park;
mod peers;
mod query;
mod refclock;
mod skew;
mod tls;
mod websocket;
