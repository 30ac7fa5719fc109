//! webntpd as JavaScript sees it: the clock page in headless Chromium and Firefox
//! (tests/browser/clock-page.mjs: Debian's `chromium` driven by npm's playwright-core, Debian's
//! `firefox-esr` driven by npm's puppeteer-core over WebDriver BiDi), and NICT's JSONP read by
//! node the ways scripts in the field read it (tests/browser/nict-idioms.mjs).
//!
//! These tests drive node (20 or newer), Chromium at /usr/bin/chromium, Firefox ESR at
//! /usr/bin/firefox-esr, and playwright-core and puppeteer-core (`npm ci` in tests/browser).
//! Without them they fail when `CI` is set, naming what to install, and otherwise say why they
//! were skipped and pass: `.ci/run` installs all of them. Screenshots of the page go to
//! target/browser/.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// This directory: the scripts, and the npm project that holds the browser drivers.
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

/// `node` on PATH, version 20 or newer (what playwright-core asks for).
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
        "node 20 or newer",
        major.is_some_and(|m| m >= 20),
        "install node 20 or newer and npm",
    )
}

/// A browser the clock page is tested in, and what tells it apart.
struct Browser {
    /// As people call it.
    name: &'static str,
    /// clock-page.mjs's name for it, which also picks the driver.
    driver: &'static str,
    /// Debian's package, and the program it installs.
    package: &'static str,
    executable: &'static str,
    /// The npm package that drives it.
    module: &'static str,
    /// Before the name of each screenshot.
    prefix: &'static str,
    /// What the browser itself logs to the console when a WebSocket is refused.
    refused_websocket: &'static str,
}

const CHROMIUM: Browser = Browser {
    name: "Chromium",
    driver: "chromium",
    package: "chromium",
    executable: "/usr/bin/chromium",
    module: "playwright-core",
    prefix: "",
    refused_websocket: "WebSocket connection to",
};

/// playwright-core drives only Playwright's own patched Firefox, which cannot be had here;
/// puppeteer-core drives a stock Firefox over WebDriver BiDi (Debian 12 has 153 ESR).
const FIREFOX: Browser = Browser {
    name: "Firefox",
    driver: "firefox",
    package: "firefox-esr",
    executable: "/usr/bin/firefox-esr",
    module: "puppeteer-core",
    prefix: "firefox-",
    // "Firefox can't establish a connection to the server at ws://…" (a curly apostrophe),
    // which WebDriver BiDi passes on as a JavaScript error.
    refused_websocket: "establish a connection to the server at ws://",
};

impl Browser {
    /// node, the browser and its driver.
    fn available(&self) -> bool {
        have_node()
            && have(
                self.name,
                Path::new(self.executable).exists(),
                &format!("apt-get install {}", self.package),
            )
            && have(
                self.module,
                scripts()
                    .join("node_modules")
                    .join(self.module)
                    .join("package.json")
                    .exists(),
                "run `npm ci` in tests/browser",
            )
    }
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

/// One scenario's report from clock-page.mjs.
struct Seen<'a>(&'a serde_json::Value);

impl Seen<'_> {
    fn num(&self, key: &str) -> f64 {
        self.0[key]
            .as_f64()
            .unwrap_or_else(|| panic!("no number `{key}` in {:#}", self.0))
    }

    fn text(&self, key: &str) -> &str {
        self.0[key].as_str().unwrap_or("")
    }

    /// The page's offset is `truth` within `tolerance` ms, and within the bound it states.
    fn offset_is(&self, truth: f64, tolerance: f64) {
        let (offset, error) = (self.num("offsetMs"), self.num("errorMs"));
        let name = self.text("name");
        assert!(
            (offset - truth).abs() <= tolerance,
            "{name}: the page says {offset:+.3} ms, the truth is {truth:+.3} ms: {:#}",
            self.0
        );
        // The bound is honest: the truth lies within it (a tenth of a millisecond spared for
        // the server's and the browser's own rounding).
        assert!(
            (offset - truth).abs() <= error + 0.1,
            "{name}: the truth {truth:+.3} ms is outside the page's {offset:+.3} ± {error:.3} ms"
        );
    }
}

/// What every scenario must show: a page that measured, said nothing in the console, asked
/// no one but its server and peers, measured again when the tab came back, and switched to
/// Japanese without overflowing a phone's width. `allowed_console` names console lines that
/// are expected (a refused WebSocket is logged by the browser itself).
fn check_page(s: &serde_json::Value, allowed_console: &str) {
    let seen = Seen(s);
    let name = seen.text("name");
    assert!(
        s["error"].is_null(),
        "{name}: the script failed: {}",
        seen.text("error")
    );
    assert_eq!(seen.text("state"), "done", "{name}: {s:#}");
    // A bound is printed rounded up: never as zero.
    let verdict = seen.text("verdict");
    assert!(
        verdict.contains("±0.") && !verdict.contains("±0.000 s"),
        "{name}: {verdict}"
    );
    let unexpected: Vec<&serde_json::Value> = s["consoleErrors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| {
            allowed_console.is_empty() || !l.as_str().unwrap_or("").contains(allowed_console)
        })
        .collect();
    assert!(unexpected.is_empty(), "{name}: console: {unexpected:#?}");
    assert_eq!(s["foreignRequests"], serde_json::json!([]), "{name}");
    let headers = &s["headers"];
    let csp = headers["content-security-policy"].as_str().unwrap_or("");
    assert!(
        csp.starts_with("default-src 'none'; script-src 'sha256-"),
        "{name}: {csp}"
    );
    assert_eq!(
        headers["content-type"], "text/html; charset=utf-8",
        "{name}"
    );
    assert!(
        s["remeasured"]["runs"].as_f64().unwrap_or(0.0) >= 2.0,
        "{name}: {s:#}"
    );
    assert_eq!(s["remeasured"]["state"], "done", "{name}");
    assert_eq!(s["ja"]["lang"], "ja", "{name}");
    assert!(
        s["ja"]["verdict"]
            .as_str()
            .unwrap_or("")
            .contains("このコンピュータの時計は"),
        "{name}: {}",
        s["ja"]["verdict"]
    );
    assert_eq!(s["phoneOverflow"], false, "{name}: wider than a phone");
    assert_eq!(s["sampleRows"], 8, "{name}: every sample in the table");
    let leap = seen.text("leap");
    let expected = if Path::new("/usr/share/zoneinfo/leap-seconds.list").exists() {
        "2016-12-31 23:59:60 UTC"
    } else {
        "no leap-second list"
    };
    assert!(leap.contains(expected), "{name}: leap: {leap}");
}

/// The page in Chromium, then in Firefox, against real servers: one on this machine's clock,
/// whose truth is 0; one whose clock libfaketime moves 250 ms ahead, so that this browser is
/// 0.250 s behind it; the first asking the second as its peer; and one that refuses the
/// page's WebSocket (its `--allow-origin` names another origin), which the page gets round
/// over HTTP. The shifted one is also opened by a name that is not loopback's (resolved to
/// 127.0.0.1 inside the browser), as a page on a plain-HTTP server is: no secure context, so
/// no cross-origin isolation and a coarser timer, and nothing in the console about it.
/// Firefox must not reach beyond loopback at all: clock-page.mjs reports what tried.
#[test]
fn the_clock_page_shows_the_true_offset_in_chromium_and_firefox() {
    // Each checked before anything starts, so that CI names what is missing at once.
    let browsers: Vec<&Browser> = [&CHROMIUM, &FIREFOX]
        .into_iter()
        .filter(|b| b.available())
        .collect();
    if browsers.is_empty() {
        return;
    }
    let shifted = ChildServer::start_shifted("+0.25");
    let peer = format!("http://{}/", shifted.authority());
    let local = ChildServer::start(&["--clock-peer", &peer]);
    let no_ws = ChildServer::start(&["--allow-origin", "http://elsewhere.invalid"]);
    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target directory")
        .join("browser");
    std::fs::create_dir_all(&artifacts).unwrap();
    let scenario = |name: &str, srv: &ChildServer, peers: &[&str]| {
        let mut authority = srv.authority();
        if name == "plain-name" {
            authority = authority.replace("127.0.0.1", "clock.test");
        }
        serde_json::json!({
            "name": name,
            "url": format!("http://{authority}/clock"),
            "peers": peers,
            "screenshots": true,
        })
    };
    let scenarios = serde_json::json!([
        scenario("local", &local, &[&peer]),
        scenario("shifted", &shifted, &[]),
        scenario("http-fallback", &no_ws, &[]),
        scenario("plain-name", &shifted, &[]),
    ]);
    for browser in browsers {
        let config = serde_json::json!({
            "browser": browser.driver,
            "executable": browser.executable,
            "artifacts": artifacts,
            "prefix": browser.prefix,
            "aliases": ["clock.test"],
            "scenarios": scenarios,
        });
        let started = Instant::now();
        let report = node_json(
            "clock-page.mjs",
            &[&config.to_string()],
            &[],
            Duration::from_secs(120),
        );
        eprintln!(
            "{} ({}) in {:.1} s; screenshots in {}",
            report["browser"],
            browser.executable,
            started.elapsed().as_secs_f64(),
            artifacts.display()
        );
        check_browser(browser, &report, &shifted);
    }
}

/// What the page showed in one browser, against the servers of the test above.
fn check_browser(browser: &Browser, report: &serde_json::Value, shifted: &ChildServer) {
    let mut scenarios = report["scenarios"].as_array().expect("scenarios").clone();
    for s in scenarios.iter_mut() {
        s["name"] = format!("{} {}", browser.name, s["name"].as_str().unwrap_or("?")).into();
        eprintln!(
            "{}: offset {:+.3} ± {:.3} ms, round trip {:.3} ms over {}, timer {:.3} ms; \"{}\"",
            s["name"].as_str().unwrap_or("?"),
            s["offsetMs"].as_f64().unwrap_or(f64::NAN),
            s["errorMs"].as_f64().unwrap_or(f64::NAN),
            s["delayMs"].as_f64().unwrap_or(f64::NAN),
            s["via"].as_str().unwrap_or("?"),
            s["resolutionMs"].as_f64().unwrap_or(f64::NAN),
            s["verdict"].as_str().unwrap_or("?"),
        );
    }
    assert_eq!(
        report["leftLoopback"],
        serde_json::json!([]),
        "{}: connections beyond loopback",
        browser.name
    );
    let [local_seen, shifted_seen, fallback_seen, plain_seen] = &scenarios[..] else {
        panic!("four scenarios expected: {report:#}");
    };

    check_page(local_seen, "");
    let seen = Seen(local_seen);
    seen.offset_is(0.0, 5.0);
    assert_eq!(local_seen["crossOriginIsolated"], true, "{local_seen:#}");
    assert_eq!(seen.text("via"), "WebSocket");
    assert!(
        local_seen["headers"]["content-security-policy"]
            .as_str()
            .unwrap()
            .contains(&format!(
                "connect-src 'self' http://{0} ws://{0};",
                shifted.authority()
            )),
        "{local_seen:#}"
    );
    // The peer: 250 ms ahead, and flagged as disagreeing with this server.
    let rows = local_seen["servers"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{local_seen:#}");
    let peer_row = &rows[1];
    let peer_ms = peer_row["ms"].as_f64().expect("the peer answered");
    assert!(
        (peer_ms - 250.0).abs() <= 5.0,
        "{}: peer at {peer_ms} ms: {peer_row:#}",
        browser.name
    );
    assert_eq!(peer_row["agrees"], false, "{peer_row:#}");

    check_page(shifted_seen, "");
    let seen = Seen(shifted_seen);
    seen.offset_is(250.0, 5.0);
    let verdict = seen.text("verdict");
    assert!(
        verdict.starts_with("Your clock is 0.2") && verdict.contains(" s behind, ±0.0"),
        "{}: {verdict}",
        browser.name
    );
    assert!(
        shifted_seen["ja"]["verdict"]
            .as_str()
            .unwrap()
            .contains("秒遅れています"),
        "{}: {}",
        browser.name,
        shifted_seen["ja"]["verdict"]
    );

    check_page(fallback_seen, browser.refused_websocket);
    let seen = Seen(fallback_seen);
    seen.offset_is(0.0, 5.0);
    assert_eq!(seen.text("via"), "HTTP", "{fallback_seen:#}");
    assert!(
        seen.text("viaText").contains("WebSocket failed"),
        "{fallback_seen:#}"
    );

    check_page(plain_seen, "");
    let seen = Seen(plain_seen);
    seen.offset_is(250.0, 5.0);
    assert_eq!(plain_seen["crossOriginIsolated"], false, "{plain_seen:#}");
    assert!(
        seen.num("resolutionMs") >= 0.05,
        "a coarser timer outside a secure context: {plain_seen:#}"
    );
}
