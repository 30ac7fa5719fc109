//! The daemon end to end: `webntpd run` polling real `webntpd serve` processes (one with its
//! clock shifted by libfaketime), read through `webntpd status --json`, fed samples checked
//! on a chrony-style SOCK socket of the test's own, signalled like systemd would.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{binary, ChildServer, Daemon};
use nix::sys::signal::Signal;
use serde_json::Value;

/// libfaketime (Debian's `faketime`; `.ci/run` installs it).
fn libfaketime() -> &'static str {
    let path = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
    assert!(
        Path::new(path).exists(),
        "this test shifts a server's clock with libfaketime: apt-get install faketime \
         (or run .ci/run, which does)"
    );
    path
}

/// `webntpd serve` on `listen` (127.0.0.1:0 for any port), its clock shifted by `shift`
/// seconds if given.
fn server(listen: &str, shift: Option<&str>) -> ChildServer {
    let mut cmd = Command::new(binary());
    cmd.args(["serve", "--listen", listen])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(shift) = shift {
        cmd.env("LD_PRELOAD", libfaketime())
            .env("FAKETIME", shift)
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
            .env("FAKETIME_NO_CACHE", "1");
    }
    ChildServer::spawn(cmd, 1)
}

fn source(url: &str, extra: &str) -> String {
    format!(
        "[[source]]\nurl = \"{url}\"\npoll = \"2s\"\npoll_min = \"2s\"\npoll_max = \"8s\"\n\
         samples = 2\ntimeout = \"300ms\"\n{extra}\n"
    )
}

fn sources(status: &Value) -> &Vec<Value> {
    status["sources"].as_array().unwrap()
}

fn state_of<'a>(status: &'a Value, url: &str) -> &'a Value {
    crate::common::source_status(status, url)
}

fn status_socket(dir: &Path) -> String {
    format!(
        "[status]\nsocket = \"{}\"\n",
        dir.join("status.sock").display()
    )
}

/// A datagram socket standing in for chronyd's `refclock SOCK`: the samples we are sent.
fn sock_reader(path: &Path) -> UnixDatagram {
    let sock = UnixDatagram::bind(path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    sock
}

/// One 40-byte sock_sample: (offset seconds, leap, magic ok).
fn read_sock_sample(sock: &UnixDatagram) -> (f64, i32, bool) {
    let mut buf = [0u8; 64];
    let n = sock
        .recv(&mut buf)
        .expect("a sample arrives on the SOCK socket");
    assert_eq!(n, 40, "sock_sample is 40 bytes");
    let offset = f64::from_ne_bytes(buf[16..24].try_into().unwrap());
    let leap = i32::from_ne_bytes(buf[28..32].try_into().unwrap());
    let magic = i32::from_ne_bytes(buf[36..40].try_into().unwrap());
    (offset, leap, magic == 0x534f_434b)
}

#[test]
fn a_shifted_server_is_a_falseticker_and_an_outage_backs_off_then_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let a = server("127.0.0.1:0", None);
    let mut b = server("127.0.0.1:0", None);
    let c = server("127.0.0.1:0", None);
    let shifted = server("127.0.0.1:0", Some("+0.5"));
    let url = |s: &ChildServer| format!("http://{}/", s.authority());
    let (ua, uc, us) = (url(&a), url(&c), url(&shifted));
    let ub_ws = format!("ws://{}/", b.authority());
    let sock_path = dir.path().join("chrony.sock");
    let chrony = sock_reader(&sock_path);
    let config = format!(
        "{}{}{}{}[[output]]\ntype = \"sock\"\npath = \"{}\"\n\n[selection]\nmin_sources = 2\n\n{}",
        source(&ua, ""),
        source(&ub_ws, ""),
        source(&uc, "mode = \"toh\""),
        source(&us, ""),
        sock_path.display(),
        status_socket(dir.path())
    );
    let daemon = Daemon::start(dir.path(), &config, &[]);

    let status = daemon.wait_for(
        Duration::from_secs(20),
        "every source measured twice",
        |s| sources(s).iter().all(|x| x["polls"].as_u64() >= Some(2)) && !s["combined"].is_null(),
    );
    assert_eq!(state_of(&status, &us)["state"], "falseticker", "{status:#}");
    for u in [&ua, &ub_ws, &uc] {
        assert_eq!(state_of(&status, u)["state"], "selected", "{status:#}");
    }
    let shifted_offset = state_of(&status, &us)["offset"].as_f64().unwrap();
    assert!(
        (shifted_offset - 0.5).abs() < 0.01,
        "the shifted server is measured at +0.5 s: {shifted_offset}"
    );
    let combined = status["combined"]["offset"].as_f64().unwrap();
    assert!(combined.abs() < 0.001, "combined offset {combined}");
    assert_eq!(status["combined"]["survivors"], 3);

    // chronyd's socket got the combined offset, not the falseticker's.
    let (offset, leap, magic) = read_sock_sample(&chrony);
    assert!(magic);
    assert!(offset.abs() < 0.001, "SOCK offset {offset}");
    assert!((0..=2).contains(&leap), "leap {leap}");

    // Take b away: the daemon goes on, shows the error and backs off.
    let b_addr = b.authority();
    drop(std::mem::replace(&mut b, server("127.0.0.1:0", None)));
    let status = daemon.wait_for(Duration::from_secs(20), "b's outage backs off", |s| {
        let b = state_of(s, &ub_ws);
        b["last_error"].is_string() && b["poll"].as_f64() > Some(3.5)
    });
    assert!(
        !status["combined"].is_null(),
        "a and c still agree: {status:#}"
    );
    let err = state_of(&status, &ub_ws)["last_error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(err.contains("connect") || err.contains("refused"), "{err}");

    // Bring it back on the same port: it recovers and the normal interval returns.
    let _b_again = server(&b_addr, None);
    daemon.wait_for(Duration::from_secs(20), "b recovers", |s| {
        let b = state_of(s, &ub_ws);
        b["last_error"].is_null() && b["poll"].as_f64() < Some(2.5) && b["state"] == "selected"
    });
    assert!(
        daemon.log_text().contains("falseticker"),
        "{}",
        daemon.log_text()
    );
}

#[test]
fn sighup_applies_a_changed_config_and_refuses_a_broken_one() {
    let dir = tempfile::tempdir().unwrap();
    let a = server("127.0.0.1:0", None);
    let b = server("127.0.0.1:0", None);
    let ua = format!("http://{}/", a.authority());
    let ub = format!("http://{}/", b.authority());
    let base = status_socket(dir.path());
    let mut daemon = Daemon::start(dir.path(), &format!("{}{base}", source(&ua, "")), &[]);
    daemon.wait_for(Duration::from_secs(10), "a polled", |s| {
        state_of(s, &ua)["polls"].as_u64() >= Some(2)
    });

    // Add b; a is unchanged and keeps its history.
    let polls_before = daemon
        .status()
        .map(|s| state_of(&s, &ua)["polls"].as_u64().unwrap());
    std::fs::write(
        &daemon.config,
        format!("{}{}{base}", source(&ua, ""), source(&ub, "")),
    )
    .unwrap();
    daemon.signal(Signal::SIGHUP);
    let status = daemon.wait_for(Duration::from_secs(10), "b added and polled", |s| {
        sources(s).len() == 2 && state_of(s, &ub)["polls"].as_u64() >= Some(1)
    });
    assert!(
        state_of(&status, &ua)["polls"].as_u64() >= polls_before,
        "a kept its state: {status:#}"
    );

    // A broken file is refused; the daemon goes on with both sources.
    std::fs::write(
        &daemon.config,
        format!("{}urll = 1\n{base}", source(&ua, "")),
    )
    .unwrap();
    daemon.signal(Signal::SIGHUP);
    std::thread::sleep(Duration::from_millis(500));
    let status = daemon.status().expect("still answering");
    assert_eq!(sources(&status).len(), 2, "{status:#}");
    let log = daemon.log_text();
    assert!(log.contains("configuration not reloaded"), "{log}");
    assert!(log.contains("urll"), "the error names the bad key: {log}");

    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(5)), 0);
    assert!(
        !dir.path().join("status.sock").exists(),
        "the status socket is removed on exit"
    );
}

#[test]
fn sigterm_during_a_hung_burst_stops_promptly() {
    let dir = tempfile::tempdir().unwrap();
    // Accepts connections and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", silent.local_addr().unwrap());
    let config = format!(
        "[[source]]\nurl = \"{url}\"\ntimeout = \"5s\"\n\n{}",
        status_socket(dir.path())
    );
    let mut daemon = Daemon::start(dir.path(), &config, &[]);
    daemon.wait_for(Duration::from_secs(5), "status served", |_| true);
    // The first burst starts within a second and then hangs for up to 5 s per exchange.
    std::thread::sleep(Duration::from_millis(1500));
    let start = Instant::now();
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(3)), 0);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn a_config_error_exits_78_naming_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start(
        dir.path(),
        "[[source]]\nurl = \"http://127.0.0.1:1/\"\npol = \"1s\"\n",
        &[],
    );
    assert_eq!(daemon.wait_exit(Duration::from_secs(5)), 78);
    let log = daemon.log_text();
    assert!(log.contains("line 3"), "{log}");
    assert!(log.contains("`poll`"), "suggests the right key: {log}");
}

#[test]
fn systemd_hears_ready_status_watchdog_reloading_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let a = server("127.0.0.1:0", None);
    let ua = format!("http://{}/", a.authority());
    let notify_path = dir.path().join("notify.sock");
    let systemd = UnixDatagram::bind(&notify_path).unwrap();
    systemd
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let config = format!("{}{}", source(&ua, ""), status_socket(dir.path()));
    let notify = notify_path.to_str().unwrap();
    let mut daemon = Daemon::start(
        dir.path(),
        &config,
        &[("NOTIFY_SOCKET", notify), ("WATCHDOG_USEC", "400000")],
    );
    let mut heard: Vec<String> = Vec::new();
    let mut listen = |until: &dyn Fn(&[String]) -> bool, within: Duration| {
        let start = Instant::now();
        let mut buf = [0u8; 4096];
        while start.elapsed() < within && !until(&heard) {
            if let Ok(n) = systemd.recv(&mut buf) {
                heard.extend(
                    String::from_utf8_lossy(&buf[..n])
                        .lines()
                        .map(str::to_string),
                );
            }
        }
        heard.clone()
    };
    let has = |h: &[String], p: &str| h.iter().any(|l| l.starts_with(p));
    let got = listen(
        &|h| has(h, "READY=1") && h.iter().filter(|l| *l == "WATCHDOG=1").count() >= 3,
        Duration::from_secs(5),
    );
    assert!(has(&got, "READY=1"), "{got:?}");
    assert!(
        got.iter().filter(|l| *l == "WATCHDOG=1").count() >= 3,
        "watchdog pings every WATCHDOG_USEC/2: {got:?}"
    );
    let got = listen(
        &|h| h.iter().any(|l| l.contains("sources reachable, offset")),
        Duration::from_secs(8),
    );
    assert!(
        got.iter()
            .any(|l| l.starts_with("STATUS=1/1 sources reachable, offset")),
        "{got:?}"
    );

    daemon.signal(Signal::SIGHUP);
    let got = listen(&|h| has(h, "MONOTONIC_USEC="), Duration::from_secs(3));
    assert!(has(&got, "RELOADING=1"), "{got:?}");
    assert!(has(&got, "MONOTONIC_USEC="), "{got:?}");

    daemon.signal(Signal::SIGTERM);
    let got = listen(&|h| has(h, "STOPPING=1"), Duration::from_secs(3));
    assert!(has(&got, "STOPPING=1"), "{got:?}");
    assert_eq!(daemon.wait_exit(Duration::from_secs(5)), 0);
}

#[test]
fn status_without_a_daemon_exits_69_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(binary())
        .args(["status", "--socket"])
        .arg(dir.path().join("nobody.sock"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(69));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is the daemon running"), "{err}");
}

#[test]
fn under_journald_bursts_are_logged_with_structured_fields() {
    // A private journald: a mount namespace with tmpfs on /run/systemd and /run/log, where
    // tracing-journald finds its fixed socket path.
    let journald = "/lib/systemd/systemd-journald";
    assert!(
        Path::new(journald).exists(),
        "this test runs systemd-journald: apt-get install systemd (or run .ci/run)"
    );
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("webntpd.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = [\"127.0.0.1:{port}\"]\n\n{}[log]\ntarget = \"journald\"\n\n{}",
            source(&format!("http://127.0.0.1:{port}/"), ""),
            status_socket(dir.path())
        ),
    )
    .unwrap();
    let script = format!(
        "set -e
         mkdir -p /run/systemd /run/log
         mount -t tmpfs tmpfs /run/systemd
         mount -t tmpfs tmpfs /run/log
         {journald} & J=$!
         for i in $(seq 50); do [ -S /run/systemd/journal/socket ] && break; sleep 0.1; done
         {bin} run -c {config} & W=$!
         sleep 3.5
         kill -TERM $W; wait $W
         journalctl -D /run/log/journal -o json --no-pager
         kill $J",
        bin = binary().display(),
        config = config.display()
    );
    let out = Command::new("unshare")
        .args(["-m", "sh", "-c", &script])
        .output()
        .expect("unshare runs (util-linux; as root)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let burst = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|e| e.get("SOURCE_URL").is_some())
        .unwrap_or_else(|| panic!("no entry with SOURCE_URL in:\n{stdout}"));
    assert_eq!(burst["SOURCE_URL"], format!("http://127.0.0.1:{port}/"));
    assert_eq!(burst["SOURCE_MODE"], "json");
    assert_eq!(burst["SYSLOG_IDENTIFIER"], "webntpd");
    // The source starting to answer, at info: priority 6, not tracing-journald's notice (5).
    assert_eq!(burst["PRIORITY"], "6", "{burst}");
    assert!(
        burst["MESSAGE"]
            .as_str()
            .is_some_and(|m| m.contains("(json): reachable: offset")),
        "{burst}"
    );
    for field in ["OFFSET_NS", "DELAY_NS", "ERROR_NS"] {
        let v: i64 = burst[field]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{field} is an integer: {burst}"));
        assert!(v.abs() < 1_000_000_000, "{field} {v}");
    }
}

#[test]
fn a_noselect_source_measuring_again_writes_nothing_new() {
    let dir = tempfile::tempdir().unwrap();
    let a = server("127.0.0.1:0", None);
    let ua = format!("http://{}/", a.authority());
    let ub = format!("ws://{}/", a.authority());
    let sock_path = dir.path().join("chrony.sock");
    let chrony = sock_reader(&sock_path);
    // a: selected, polled once in the first second and then only after a minute; b: noselect,
    // every 2 s.
    let config = format!(
        "[[source]]\nurl = \"{ua}\"\npoll = \"60s\"\nsamples = 2\ntimeout = \"300ms\"\n\n{}\
         [[output]]\ntype = \"sock\"\npath = \"{}\"\n\n{}",
        source(&ub, "noselect = true"),
        sock_path.display(),
        status_socket(dir.path())
    );
    let daemon = Daemon::start(dir.path(), &config, &[]);
    let status = daemon.wait_for(Duration::from_secs(15), "b polled 4 times", |s| {
        state_of(s, &ub)["polls"].as_u64() >= Some(4)
    });
    assert_eq!(state_of(&status, &ua)["polls"], 1, "{status:#}");
    assert_eq!(state_of(&status, &ub)["state"], "candidate", "{status:#}");
    // One sample, from a's one burst; b's bursts changed nothing that is written.
    let (offset, _, magic) = read_sock_sample(&chrony);
    assert!(magic && offset.abs() < 0.001, "{offset}");
    chrony
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 64];
    assert!(
        chrony.recv(&mut buf).is_err(),
        "a second sample arrived without a new measurement from a selected source"
    );
    assert_eq!(status["outputs"][0]["writes"], 1, "{status:#}");
}

#[test]
fn serve_tells_systemd_when_it_is_ready_reloading_and_stopping() {
    // webntpd-server.service is Type=notify: READY=1 once every listener is bound, with
    // the addresses as STATUS; RELOADING=1 and READY=1 again around SIGHUP; STOPPING=1.
    let dir = tempfile::tempdir().unwrap();
    let notify_path = dir.path().join("notify.sock");
    let systemd = UnixDatagram::bind(&notify_path).unwrap();
    systemd
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut cmd = Command::new(binary());
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .env("NOTIFY_SOCKET", &notify_path)
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut srv = ChildServer::spawn(cmd, 1);
    let mut heard: Vec<String> = Vec::new();
    let mut listen = |until: &dyn Fn(&[String]) -> bool| {
        let start = Instant::now();
        let mut buf = [0u8; 4096];
        while start.elapsed() < Duration::from_secs(5) && !until(&heard) {
            if let Ok(n) = systemd.recv(&mut buf) {
                heard.extend(
                    String::from_utf8_lossy(&buf[..n])
                        .lines()
                        .map(str::to_string),
                );
            }
        }
        heard.clone()
    };
    let count = |h: &[String], l: &str| h.iter().filter(|x| *x == l).count();
    let got = listen(&|h| count(h, "READY=1") == 1);
    assert_eq!(count(&got, "READY=1"), 1, "{got:?}");
    let status = format!("STATUS=serving on {}", srv.urls[0].trim_end_matches('/'));
    assert!(got.contains(&status), "{status} in {got:?}");

    srv.signal(Signal::SIGHUP);
    let got = listen(&|h| count(h, "READY=1") == 2);
    assert!(got.contains(&"RELOADING=1".to_string()), "{got:?}");
    assert_eq!(
        count(&got, "READY=1"),
        2,
        "ready again after the reload: {got:?}"
    );

    srv.signal(Signal::SIGTERM);
    let got = listen(&|h| count(h, "STOPPING=1") == 1);
    assert_eq!(count(&got, "STOPPING=1"), 1, "{got:?}");
    assert_eq!(srv.wait_exit(Duration::from_secs(5)), 0);
}

#[test]
fn status_exits_75_until_synchronised_and_wait_sync_waits_for_it() {
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on yet.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("http://{addr}/");
    let config = format!("{}{}", source(&url, ""), status_socket(dir.path()));
    let daemon = Daemon::start(dir.path(), &config, &[]);
    let status = |extra: &[&str]| {
        let out = Command::new(binary())
            .args(["status", "-c"])
            .arg(&daemon.config)
            .args(extra)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    daemon.wait_for(Duration::from_secs(10), "the source failed", |s| {
        !state_of(s, &url)["last_error"].is_null()
    });
    let (code, out, err) = status(&[]);
    assert_eq!(code, Some(75), "answering but not synchronised: {out}{err}");
    assert!(out.contains("Synchronised: no"), "{out}");
    assert!(err.contains("not synchronised"), "{err}");

    // A bounded wait gives up after its time, with the same code.
    let start = Instant::now();
    let (code, _, err) = status(&["--wait-sync=1500ms"]);
    assert_eq!(code, Some(75), "{err}");
    assert!(start.elapsed() >= Duration::from_millis(1500), "waited");
    assert!(err.contains("not synchronised within 1s 500ms"), "{err}");

    // Waiting without a limit returns once the server is up and its time written.
    let waiter = {
        let config = daemon.config.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            let out = Command::new(binary())
                .args(["status", "--wait-sync", "-c"])
                .arg(config)
                .output()
                .unwrap();
            (out.status.code(), start.elapsed(), out.stdout)
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let _up = server(&addr.to_string(), None);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !waiter.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        waiter.is_finished(),
        "--wait-sync returned once synchronised"
    );
    let (code, took, stdout) = waiter.join().unwrap();
    assert_eq!(code, Some(0), "{}", String::from_utf8_lossy(&stdout));
    assert!(took >= Duration::from_millis(500), "it waited: {took:?}");
    assert!(String::from_utf8_lossy(&stdout).contains("Synchronised: yes"));
    let (code, out, _) = status(&["--json"]);
    assert_eq!(code, Some(0), "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["synchronised"], true, "{v:#}");
}

#[test]
fn at_info_the_log_says_what_changed_not_every_burst() {
    // Four bursts of a steady source: one line that it answers, one that it is selected,
    // one for the combined offset; the bursts themselves only at debug.
    let dir = tempfile::tempdir().unwrap();
    let a = server("127.0.0.1:0", None);
    let url = format!("http://{}/", a.authority());
    let config = format!("{}{}", source(&url, ""), status_socket(dir.path()));
    let daemon = Daemon::start(dir.path(), &config, &[]);
    daemon.wait_for(Duration::from_secs(20), "four bursts", |s| {
        state_of(s, &url)["polls"].as_u64() >= Some(4)
    });
    let log = daemon.log_text();
    let about = |words: &str| log.lines().filter(|l| l.contains(words)).count();
    assert_eq!(
        about(&format!("{url} (json): reachable: offset")),
        1,
        "{log}"
    );
    assert_eq!(about(&format!("{url} (json): selected")), 1, "{log}");
    assert_eq!(about("combined offset"), 1, "{log}");
    assert_eq!(
        log.lines()
            .filter(|l| l.contains(" INFO ") && l.contains("delay"))
            .count(),
        1,
        "only the first burst at info: {log}"
    );

    // At debug, every burst.
    let dir = tempfile::tempdir().unwrap();
    let config = format!("{}{}", source(&url, ""), status_socket(dir.path()));
    let daemon = Daemon::start(dir.path(), &config, &[("RUST_LOG", "debug")]);
    daemon.wait_for(Duration::from_secs(20), "three bursts", |s| {
        state_of(s, &url)["polls"].as_u64() >= Some(3)
    });
    assert!(
        daemon
            .log_text()
            .lines()
            .filter(|l| l.contains(&format!("{url} (json): offset")))
            .count()
            >= 2,
        "{}",
        daemon.log_text()
    );
}

#[test]
fn on_a_journal_stream_lines_carry_their_priority_and_no_timestamp() {
    // systemd's journal stream: JOURNAL_STREAM names stderr's device and inode. With
    // target = "stderr", lines are `<6>...`, as journald reads priorities, and carry no
    // timestamp of their own (the journal stamps them).
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let a = server("127.0.0.1:0", None);
    let url = format!("http://{}/", a.authority());
    let config = Daemon::write_config(
        dir.path(),
        &format!("{}{}", source(&url, ""), status_socket(dir.path())),
    );
    let stream = dir.path().join("journal-stream");
    let file = std::fs::File::create(&stream).unwrap();
    let meta = file.metadata().unwrap();
    let mut cmd = Daemon::command(&config);
    cmd.env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .stdin(Stdio::null())
        .stderr(file);
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let text = loop {
        let text = std::fs::read_to_string(&stream).unwrap();
        if text.contains("combined offset") || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(text.contains("combined offset"), "{text}");
    for line in text.lines() {
        assert!(
            ["<3>", "<4>", "<6>", "<7>"]
                .iter()
                .any(|p| line.starts_with(p)),
            "a priority prefix: {line}"
        );
        assert!(
            !line.contains(" INFO ") && !line.contains("Z "),
            "no timestamp: {line}"
        );
    }
    assert!(
        text.contains(&format!("<6>{url} (json): reachable")),
        "{text}"
    );
}
