//! A process whose clock is not the kernel's: libfaketime shifts a program's realtime clock
//! but not the kernel's receive stamps, so a webntpd that mixed the two would put the shift
//! into `rt` (as a server) or `t4` (as a client). At every magnitude from 0.1 ms to 1 s,
//! ahead and behind, each side must measure and be measured exactly as if it used no kernel
//! stamps at all: the true offset inside the error bound, no exchange refused.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::common::*;
use serde_json::Value;

/// The skews tried, in libfaketime's syntax (seconds): 0.1 ms to 1 s, both ways, and none.
const SKEWS: [&str; 9] = [
    "+0.0001", "-0.0001", "+0.001", "+0.005", "-0.005", "+0.05", "+0.25", "-1", "+0",
];

fn seconds(skew: &str) -> f64 {
    skew.parse().unwrap()
}

/// `webntpd query --json -n 8 URL`, its clock shifted by `shift` when given.
fn query(url: &str, shift: Option<&str>) -> Output {
    let mut cmd = Command::new(binary());
    cmd.args(["query", "--json", "-n", "8", "--no-proxy", url])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    if let Some(shift) = shift {
        cmd.env("LD_PRELOAD", libfaketime())
            .env("FAKETIME", shift)
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
    }
    cmd.output().unwrap()
}

/// The one server's result of a query, checked: it answered, no exchange failed, and the
/// measured offset is `want` seconds within the stated error bound.
fn assert_measured(out: &Output, what: &str, want: f64) -> Value {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{what}: {stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["failed"], 0,
        "{what}: an exchange was refused: {v}\n{stderr}"
    );
    let (offset, bound) = (
        v["offset"].as_f64().unwrap(),
        v["error_bound"].as_f64().unwrap(),
    );
    assert!(
        (offset - want).abs() <= bound,
        "{what}: measured {offset:+.9} s +- {bound:.9} s, the truth is {want:+} s"
    );
    v
}

#[test]
fn a_server_on_a_faked_clock_is_measured_exactly_at_every_skew() {
    std::thread::scope(|scope| {
        for skew in SKEWS {
            scope.spawn(move || {
                let srv = ChildServer::start_shifted(skew);
                for scheme in ["http", "ws"] {
                    let url = format!("{scheme}://{}/", srv.authority());
                    let out = query(&url, None);
                    assert_measured(
                        &out,
                        &format!("server at {skew} s, {scheme}"),
                        seconds(skew),
                    );
                }
                if seconds(skew).abs() >= 0.0001 {
                    assert!(
                        srv.log_text().contains("off the kernel's"),
                        "the server at {skew} s says its clock is not the kernel's: {}",
                        srv.log_text()
                    );
                }
            });
        }
    });
}

#[test]
fn a_client_on_a_faked_clock_measures_exactly_at_every_skew() {
    let srv = ChildServer::start(&[]);
    std::thread::scope(|scope| {
        for skew in SKEWS {
            let srv = &srv;
            scope.spawn(move || {
                for scheme in ["http", "ws"] {
                    let url = format!("{scheme}://{}/", srv.authority());
                    let out = query(&url, Some(skew));
                    // The server is right; the client's clock is `skew` ahead of it.
                    assert_measured(
                        &out,
                        &format!("client at {skew} s, {scheme}"),
                        -seconds(skew),
                    );
                }
            });
        }
    });
}

#[test]
fn a_skew_that_appears_while_running_stops_the_stamps_within_seconds() {
    // libfaketime reads the shift from a file, re-read every second: the server starts on
    // the kernel's clock and is moved 5 ms ahead while it runs.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("faketime");
    std::fs::write(&file, "+0\n").unwrap();
    let mut cmd = Command::new(binary());
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .env("LD_PRELOAD", libfaketime())
        .env("FAKETIME_TIMESTAMP_FILE", &file)
        .env("FAKETIME_CACHE_DURATION", "1")
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let srv = ChildServer::spawn(cmd, 1);
    let url = format!("http://{}/", srv.authority());
    assert_measured(&query(&url, None), "before the change", 0.0);

    std::fs::write(&file, "+0.005\n").unwrap();
    // One second for libfaketime to see the file, one for the next calibration, and room.
    std::thread::sleep(Duration::from_millis(3_000));
    assert_measured(&query(&url, None), "5 ms ahead", 0.005);
    assert!(
        srv.log_text().contains("off the kernel's"),
        "the change is logged: {}",
        srv.log_text()
    );

    std::fs::write(&file, "+0\n").unwrap();
    std::thread::sleep(Duration::from_millis(3_000));
    assert_measured(&query(&url, None), "back on the kernel's clock", 0.0);
    assert!(
        srv.log_text().contains("agrees with the kernel's again"),
        "{}",
        srv.log_text()
    );
}
