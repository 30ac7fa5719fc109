//! webntpd as JavaScript sees it: NICT's JSONP read by node the ways scripts in the field
//! read it (tests/browser/nict-idioms.mjs).
//!
//! These tests drive node (18 or newer). Without it they fail when `CI` is set, naming what
//! to install, and otherwise say why they were skipped and pass: `.ci/run` installs it.

mod common;

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;

/// This directory: the scripts, and the npm project that holds playwright-core.
fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// Whether a tool this file needs is there. When it is not: under CI a failure naming the
/// fix, else a note on stderr and `false` (the test then returns, passing).
fn have(what: &str, ok: bool, fix: &str) -> bool {
    if ok {
        return true;
    }
    let message = format!("{what} is missing: {fix} (or run .ci/run, which does)");
    assert!(std::env::var_os("CI").is_none(), "{message}");
    eprintln!("skipped: {message}");
    false
}

/// `node` on PATH, version 18 or newer (global fetch, ES modules).
fn have_node() -> bool {
    let major = Command::new("node")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| {
            let v = String::from_utf8_lossy(&o.stdout).into_owned();
            v.trim()
                .trim_start_matches('v')
                .split('.')
                .next()?
                .parse::<u32>()
                .ok()
        });
    have(
        "node 18 or newer",
        major.is_some_and(|m| m >= 18),
        "apt-get install nodejs npm",
    )
}

/// Run `node SCRIPT ARGS` in tests/browser in a process group of its own, killing the whole
/// group (a browser included) if it has not finished `within`.
fn node(script: &str, args: &[&str], env: &[(&str, &str)], within: Duration) -> Output {
    let mut child = Command::new("node")
        .arg(script)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(scripts())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("node starts");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut all = Vec::new();
            let _ = pipe.read_to_end(&mut all);
            all
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let code = wait_exit_within(&mut child, within);
    if code.is_none() {
        let group = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = child.wait();
    }
    let output = Output {
        status: child.wait().expect("node was waited for"),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    };
    assert!(
        code.is_some(),
        "node {script} did not finish within {within:?}; it said:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Run a script that prints one JSON line last, failing with what it said unless it exits 0.
fn node_json(
    script: &str,
    args: &[&str],
    env: &[(&str, &str)],
    within: Duration,
) -> serde_json::Value {
    let out = node(script, args, env, within);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "node {script} failed ({}):\n{stderr}\n{stdout}",
        out.status
    );
    let last = stdout.lines().last().unwrap_or("");
    serde_json::from_str(last).unwrap_or_else(|e| {
        panic!("node {script}: last line is not JSON ({e}):\n{stdout}\n{stderr}")
    })
}

#[test]
fn nict_jsonp_works_with_the_idioms_scripts_in_the_field_use() {
    if !have_node() {
        return;
    }
    let srv = ChildServer::start(&[]);
    let base = format!("http://{}", srv.authority());
    let v = node_json("nict-idioms.mjs", &[&base], &[], Duration::from_secs(30));
    assert_eq!(v["read"]["it"], 1232963971.248, "{v}");
    assert_eq!(v["read"]["id"], srv.authority().as_str(), "{v}");
    let body = v["body"].as_str().unwrap();
    assert!(
        body.starts_with("jsont( { \"id\": ") && body.ends_with(" } )"),
        "{body}"
    );
}
