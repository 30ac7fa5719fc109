//! The command line: help, version, and the sysexits codes docs/operating.md promises.

use std::process::{Command, Output};
use std::time::Duration;

use crate::common::{binary, ChildServer};

fn run(args: &[&str]) -> Output {
    Command::new(binary())
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

/// `webntpd serve` with a TLS listener on port 0 and these certificate and key files.
fn serve_tls(cert: &str, key: &str) -> Output {
    run(&[
        "serve",
        "--tls-listen",
        "127.0.0.1:0",
        "--tls-cert",
        cert,
        "--tls-key",
        key,
    ])
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn version_and_help_exit_0() {
    let v = run(&["--version"]);
    assert_eq!(v.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&v.stdout).trim(),
        format!("webntpd {}", env!("CARGO_PKG_VERSION"))
    );
    let h = run(&["serve", "--help"]);
    assert_eq!(h.status.code(), Some(0));
    let text = String::from_utf8_lossy(&h.stdout);
    for flag in [
        "--listen",
        "--tls-listen",
        "--allow-origin",
        "--clock-page",
        "--clock-peer",
        "--leap-seconds",
        "--max-connections",
    ] {
        assert!(text.contains(flag), "{flag} in serve --help");
    }
}

#[test]
fn usage_errors_exit_64_and_say_what_is_wrong() {
    let o = run(&["serve", "--lisen", "127.0.0.1:0"]);
    assert_eq!(o.status.code(), Some(64));
    assert!(
        stderr(&o).contains("--listen"),
        "suggests the right flag: {}",
        stderr(&o)
    );
    let o = run(&["serve", "--listen", "8080"]);
    assert_eq!(o.status.code(), Some(64));
    assert!(stderr(&o).contains("IP:PORT"), "{}", stderr(&o));
    let o = run(&["serve", "--keepalive-timeout", "soon"]);
    assert_eq!(o.status.code(), Some(64));
    assert!(stderr(&o).contains("10s"), "{}", stderr(&o));
    let o = run(&["serve", "--allow-origin", "https://a.example/path"]);
    assert_eq!(o.status.code(), Some(64));
    let o = run(&["serve", "--max-header-bytes", "100"]);
    assert_eq!(o.status.code(), Some(64));
}

#[test]
fn a_port_in_use_exits_69() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = holder.local_addr().unwrap().to_string();
    let o = run(&["serve", "--listen", &addr]);
    assert_eq!(o.status.code(), Some(69), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&addr) && stderr(&o).contains("another process"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn tls_configuration_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let m = missing.to_str().unwrap();
    let o = serve_tls(m, m);
    assert_eq!(o.status.code(), Some(66), "{}", stderr(&o));
    assert!(stderr(&o).contains("missing.pem"), "{}", stderr(&o));

    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    let j = junk.to_str().unwrap();
    let o = serve_tls(j, j);
    assert_eq!(o.status.code(), Some(78), "{}", stderr(&o));
    assert!(stderr(&o).contains("junk.pem"), "{}", stderr(&o));

    // A certificate without a TLS listener is a mistake, not something to ignore.
    let o = run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        j,
        "--tls-key",
        j,
    ]);
    assert_eq!(o.status.code(), Some(78), "{}", stderr(&o));
    assert!(stderr(&o).contains("--tls-listen"), "{}", stderr(&o));
    let o = run(&["serve", "--tls-listen", "127.0.0.1:0"]);
    assert_eq!(o.status.code(), Some(78), "{}", stderr(&o));
}

#[test]
fn sigterm_stops_the_server_with_0() {
    let mut srv = ChildServer::start(&[]);
    srv.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(srv.wait_exit(Duration::from_secs(5)), 0);
    let log = srv.log_text();
    assert!(
        log.contains("SIGTERM") && log.contains("server stopped"),
        "{log}"
    );
}

#[test]
fn a_rust_log_that_does_not_parse_is_reported_and_the_level_used_instead() {
    // A serve that fails at once (a certificate that does not exist) still logs first.
    let o = Command::new(binary())
        .args([
            "--log-level",
            "warn",
            "serve",
            "--tls-listen",
            "127.0.0.1:0",
            "--tls-cert",
            "/nonexistent/cert.pem",
            "--tls-key",
            "/nonexistent/key.pem",
        ])
        .env("RUST_LOG", "=[bad")
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(
        err.contains("RUST_LOG=\"=[bad\" is not a log filter") && err.contains("\"warn\""),
        "{err}"
    );
    assert_ne!(o.status.code(), Some(0));
}
