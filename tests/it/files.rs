//! Files that are not what they should be: a FIFO, a device, a directory, a huge file, a file
//! that is not UTF-8, named as the configuration, the leap-seconds list or a TLS file. The
//! real binary, every wait bounded: each must fail fast with a clear message and the right
//! exit code, or, while running, be refused while the daemon or server goes on answering.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::binary;
use nix::sys::signal::Signal;
use serde_json::Value;
use webntpd::files::show_bytes;

/// How long a command that must fail fast may take. Generous for a loaded machine: a
/// regression blocks forever (FIFO) or for minutes (/dev/zero), not for seconds.
const FAST: Duration = Duration::from_secs(5);

/// `mkfifo PATH`: a FIFO nobody writes to, so a blocking open of it never returns.
fn mkfifo(path: &Path) {
    let ok = Command::new("mkfifo")
        .arg(path)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "mkfifo {}", path.display());
}

/// A sparse file of `len` bytes (no disk used).
fn sparse(path: &Path, len: u64) {
    std::fs::File::create(path).unwrap().set_len(len).unwrap();
}

/// Run `webntpd ARGS` to its end, killing it and failing after `within`: (exit code,
/// stderr, how long it took).
fn run_bounded(args: &[&str], within: Duration) -> (i32, String, Duration) {
    let start = Instant::now();
    let mut child = Command::new(binary())
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("JOURNAL_STREAM")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let Some(code) = crate::common::wait_exit_within(&mut child, within) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("webntpd {args:?} still running after {within:?}: it blocked");
    };
    let mut err = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut err);
    (code, err, start.elapsed())
}

/// A running `webntpd` with its stderr collected, killed on drop.
struct Proc {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    fn start(args: &[&str]) -> Proc {
        let mut child = Command::new(binary())
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("JOURNAL_STREAM")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = crate::common::collect_stderr(&mut child);
        Proc { child, log }
    }

    fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Wait until a line after the first `skip` lines contains every one of `parts`; that
    /// line. Fails after `within`, or if the process exits.
    fn wait_line(&mut self, skip: usize, parts: &[&str], within: Duration) -> String {
        let start = Instant::now();
        loop {
            let found = {
                let log = self.log.lock().unwrap();
                log.iter()
                    .skip(skip)
                    .find(|l| parts.iter().all(|p| l.contains(p)))
                    .cloned()
            };
            if let Some(line) = found {
                return line;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "exited ({status}) before logging {parts:?}:\n{}",
                    self.log_text()
                );
            }
            assert!(
                start.elapsed() < within,
                "no line with {parts:?} within {within:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn lines(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    fn signal(&self, sig: Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), sig).unwrap();
    }

    fn wait_exit(&mut self, within: Duration) -> i32 {
        crate::common::wait_exit_within(&mut self.child, within)
            .unwrap_or_else(|| panic!("did not exit within {within:?}:\n{}", self.log_text()))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `webntpd serve --listen 127.0.0.1:0 ARGS`, once it listens (within [`FAST`]: the leap
/// list is loaded before the listeners open, so a blocking read fails here): the process
/// and its `host:port`.
fn serve(args: &[&str]) -> (Proc, String) {
    let mut all = vec!["serve", "--listen", "127.0.0.1:0"];
    all.extend_from_slice(args);
    let mut p = Proc::start(&all);
    let line = p.wait_line(0, &["listening on http://"], FAST);
    let addr = line
        .split("listening on http://")
        .nth(1)
        .unwrap()
        .trim()
        .trim_end_matches('/')
        .to_string();
    (p, addr)
}

/// One GET / on a new connection, every step bounded: the reply's JSON.
fn get_json(addr: &str) -> Value {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(FAST)).unwrap();
    s.set_write_timeout(Some(FAST)).unwrap();
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).expect("a whole reply in time");
    let reply = String::from_utf8(reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200 "), "{reply}");
    let body = reply.split("\r\n\r\n").nth(1).unwrap();
    serde_json::from_str(body).unwrap()
}

fn test_list() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/leap-seconds.list")
}

/// What is put where a regular file should be, while webntpd runs.
#[derive(Debug, Clone, Copy)]
enum Bad {
    /// A FIFO nobody writes to.
    Fifo,
    /// A symlink to `/dev/zero`, which never ends.
    DevZero,
    /// A sparse file of 2 GiB.
    Huge,
    /// A regular file of this many bytes (a limit + 1).
    Bytes(u64),
}

impl Bad {
    fn put(self, path: &Path) {
        let _ = std::fs::remove_file(path);
        match self {
            Bad::Fifo => mkfifo(path),
            Bad::DevZero => std::os::unix::fs::symlink("/dev/zero", path).unwrap(),
            Bad::Huge => sparse(path, 2 << 30),
            Bad::Bytes(n) => std::fs::write(path, vec![b'#'; n as usize]).unwrap(),
        }
    }

    /// What the refusal says, for a kind of file webntpd reads at most `limit` bytes of.
    fn says(self, limit: u64) -> String {
        let over = |n: u64| format!("is {n} bytes, more than the {}", show_bytes(limit));
        match self {
            Bad::Fifo => "is a FIFO (named pipe), not a regular file".to_owned(),
            Bad::DevZero => "is a character device, not a regular file".to_owned(),
            Bad::Huge => over(2 << 30),
            Bad::Bytes(n) => over(n),
        }
    }

    /// Each, the regular file one byte over `limit`.
    fn all(limit: u64) -> [Bad; 4] {
        [Bad::Fifo, Bad::DevZero, Bad::Huge, Bad::Bytes(limit + 1)]
    }
}

// ---------------------------------------------------------------------------------------------
// Failing fast
// ---------------------------------------------------------------------------------------------

#[test]
fn run_with_dev_zero_as_its_config_fails_at_once_with_66() {
    let (code, err, took) = run_bounded(&["run", "-c", "/dev/zero"], FAST);
    assert_eq!(code, 66, "{err}");
    assert!(
        err.contains("/dev/zero is a character device, not a regular file"),
        "{err}"
    );
    assert!(took < FAST, "{took:?}");
}

#[test]
fn check_config_refuses_what_is_not_a_regular_file_with_66() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("webntpd.toml");
    mkfifo(&fifo);
    let link = dir.path().join("link.toml");
    std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
    let d = dir.path().display().to_string();
    let cases = [
        (fifo.display().to_string(), "is a FIFO (named pipe)"),
        ("/dev/zero".to_string(), "is a character device"),
        (link.display().to_string(), "is a character device"),
        (d.clone(), "is a directory"),
    ];
    for (path, what) in cases {
        let (code, err, _) = run_bounded(&["check-config", "-c", &path], FAST);
        assert_eq!(code, 66, "{path}: {err}");
        assert!(
            err.starts_with(&format!("{path} {what}, not a regular file")),
            "{err}"
        );
        assert!(err.contains("point it at a regular file"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    // status -c reads the same file to find the socket: refused as fast, with the same code.
    let (code, err, _) = run_bounded(&["status", "-c", &fifo.display().to_string()], FAST);
    assert_eq!(code, 66, "{err}");
    assert!(err.contains("is a FIFO (named pipe)"), "{err}");
}

#[test]
fn check_config_refuses_a_file_over_1_mib_with_78_at_two_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let huge = dir.path().join("huge.toml");
    sparse(&huge, 2 << 30);
    let (code, err, _) = run_bounded(&["check-config", "-c", huge.to_str().unwrap()], FAST);
    assert_eq!(code, 78, "{err}");
    assert!(
        err.contains(
            "is 2147483648 bytes, more than the 1 MiB webntpd reads from a configuration file"
        ),
        "{err}"
    );
    // Just over the limit, all of it comments: still refused; just at it, read.
    let over = dir.path().join("over.toml");
    let head = "[server]\nlisten = \"127.0.0.1:0\"\n";
    let pad = |n: usize| format!("{head}{}\n", "#".repeat(n - head.len() - 1));
    std::fs::write(&over, pad((1 << 20) + 1)).unwrap();
    let (code, err, _) = run_bounded(&["check-config", "-c", over.to_str().unwrap()], FAST);
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("is 1048577 bytes"), "{err}");
    std::fs::write(&over, pad(1 << 20)).unwrap();
    let (code, err, _) = run_bounded(&["check-config", "-c", over.to_str().unwrap()], FAST);
    assert_eq!(code, 0, "exactly 1 MiB is read: {err}");
}

#[test]
fn a_megabyte_of_errors_is_checked_fast_and_printed_as_the_first_hundred() {
    // Placing each message by scanning the file from its start made this take minutes: a
    // megabyte of unknown keys, and of wrong values, each one an error.
    let dir = tempfile::tempdir().unwrap();
    // Fill a file up to 1 MiB with `line(0)`, `line(1)`...
    let fill = |name: &str, head: &str, line: &dyn Fn(usize) -> String| {
        let mut text = head.to_owned();
        for i in 0.. {
            let l = line(i);
            if text.len() + l.len() > 1 << 20 {
                break;
            }
            text.push_str(&l);
        }
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let keys = fill("keys.toml", "[server]\n", &|i| format!("k{i} = 1\n"));
    let values = fill("values.toml", "", &|i| {
        format!("[[source]]\nurl = \"https://s{i}.example/\"\nsamples = 0\n")
    });
    for path in [&keys, &values] {
        let (code, err, took) = run_bounded(&["check-config", "-c", path.to_str().unwrap()], FAST);
        assert_eq!(code, 78, "{err}");
        let errors: Vec<&str> = err.lines().filter(|l| !l.contains("warning:")).collect();
        assert_eq!(errors.len(), 101, "{}: {took:?}", path.display());
        assert!(
            errors[0].contains(" line 2, column 1: ") || errors[0].contains(" line 3, column 11: "),
            "{}",
            errors[0]
        );
        assert!(
            errors[100].contains("more errors not shown"),
            "{}",
            errors[100]
        );
    }
}

#[test]
fn check_config_names_the_line_and_column_of_a_byte_that_is_not_utf8() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("webntpd.toml");
    let mut bytes = b"[server]\nlisten = \"127.0.0.1:0\"\n# abcdX\n".to_vec();
    bytes[38] = 0xff; // the X: line 3, column 7
    std::fs::write(&path, &bytes).unwrap();
    let (code, err, _) = run_bounded(&["check-config", "-c", path.to_str().unwrap()], FAST);
    assert_eq!(code, 78, "{err}");
    assert_eq!(
        err,
        format!(
            "{} line 3, column 7: not UTF-8 (byte 0xff): save the file as UTF-8\n",
            path.display()
        )
    );
    // `run` says the same, with the same code.
    let (code, err, _) = run_bounded(&["run", "-c", path.to_str().unwrap()], FAST);
    assert_eq!(code, 78, "{err}");
    assert!(
        err.contains("line 3, column 7: not UTF-8 (byte 0xff)"),
        "{err}"
    );
}

#[test]
fn check_config_does_not_block_on_the_files_the_configuration_names() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    let f = fifo.display();
    let path = dir.path().join("webntpd.toml");
    std::fs::write(
        &path,
        format!(
            "[[source]]\nurl = \"https://a.example/\"\ncacert = \"{f}\"\n\n[server]\n\
             tls_listen = \"127.0.0.1:0\"\ntls_cert = \"{f}\"\ntls_key = \"{f}\"\n\
             leap_seconds = \"/dev/zero\"\n"
        ),
    )
    .unwrap();
    let (code, err, _) = run_bounded(&["check-config", "-c", path.to_str().unwrap()], FAST);
    assert_eq!(code, 78, "{err}");
    let p = path.display();
    for (line, column, what) in [
        (3, 10, format!("{f} is a FIFO")),
        (7, 12, format!("{f} is a FIFO")),
        (
            9,
            16,
            "warning: /dev/zero is a character device".to_string(),
        ),
    ] {
        let start = format!("{p} line {line}, column {column}: ");
        assert!(
            err.lines()
                .any(|l| l.starts_with(&start) && l.contains(&what)),
            "`{start}...{what}` in:\n{err}"
        );
    }
}

#[test]
fn serve_refuses_a_tls_certificate_that_is_a_fifo_with_66() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("cert.pem");
    mkfifo(&fifo);
    let f = fifo.to_str().unwrap();
    let args = [
        "serve",
        "--tls-listen",
        "127.0.0.1:0",
        "--tls-cert",
        f,
        "--tls-key",
        f,
    ];
    let (code, err, _) = run_bounded(&args, FAST);
    assert_eq!(code, 66, "{err}");
    assert!(err.contains("is a FIFO (named pipe)"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// While running
// ---------------------------------------------------------------------------------------------

/// `webntpd status --json --socket SOCKET`, parsed, within [`FAST`].
fn status(socket: &Path) -> Value {
    let out = Command::new(binary())
        .args(["status", "--json", "--socket"])
        .arg(socket)
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    // 0 synchronised, 75 answering but not synchronised: both print the status.
    assert!(matches!(out.status.code(), Some(0 | 75)), "status answers");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn polls(status: &Value) -> u64 {
    status["sources"][0]["polls"].as_u64().unwrap()
}

/// Wait until the daemon's only source has more than `after` polls; its polls.
fn polled_past(socket: &Path, after: u64, within: Duration) -> u64 {
    let start = Instant::now();
    loop {
        let n = polls(&status(socket));
        if n > after {
            return n;
        }
        assert!(
            start.elapsed() < within,
            "no poll past {after} in {within:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn sighup_with_the_config_replaced_by_a_fifo_a_device_or_a_huge_file_is_refused_and_polling_goes_on(
) {
    let dir = tempfile::tempdir().unwrap();
    let (_server, addr) = serve(&[]);
    let socket = dir.path().join("status.sock");
    let config = dir.path().join("webntpd.toml");
    std::fs::write(
        &config,
        format!(
            "[[source]]\nurl = \"http://{addr}/\"\npoll = \"2s\"\npoll_min = \"2s\"\n\
             poll_max = \"8s\"\nsamples = 2\ntimeout = \"300ms\"\n\n[status]\nsocket = \"{}\"\n",
            socket.display()
        ),
    )
    .unwrap();
    let mut daemon = Proc::start(&["run", "-c", config.to_str().unwrap()]);
    daemon.wait_line(0, &["webntpd", "running"], FAST);
    let mut seen = polled_past(&socket, 0, Duration::from_secs(10));

    let limit = webntpd::files::CONFIG.bytes;
    for bad in Bad::all(limit) {
        bad.put(&config);
        let skip = daemon.lines();
        let sent = Instant::now();
        daemon.signal(Signal::SIGHUP);
        daemon.wait_line(
            skip,
            &["configuration not reloaded", &bad.says(limit)],
            FAST,
        );
        assert!(
            sent.elapsed() < FAST,
            "{bad:?}: refused in {:?}",
            sent.elapsed()
        );
        // Fresh measurements after the refusal: the supervisor did not block.
        seen = polled_past(&socket, seen, Duration::from_secs(10));
        let s = status(&socket);
        assert!(
            s["sources"][0]["age"].as_f64().unwrap() < 5.0,
            "{bad:?}: fresh data: {s:#}"
        );
    }
    // SIGTERM still stops it promptly.
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(3)), 0);
}

#[test]
fn serve_with_a_fifo_as_leap_list_starts_serves_and_survives_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("leap-seconds.list");
    mkfifo(&fifo);
    let cache = dir.path().join("cache.list");
    let (mut server, addr) = serve(&[
        "--leap-seconds",
        fifo.to_str().unwrap(),
        "--leap-seconds-cache",
        cache.to_str().unwrap(),
    ]);
    server.wait_line(
        0,
        &[
            "is a FIFO (named pipe)",
            "serving no leap second information",
        ],
        FAST,
    );
    assert_eq!(get_json(&addr)["leap"], 0);
    for _ in 0..2 {
        let skip = server.lines();
        server.signal(Signal::SIGHUP);
        server.wait_line(skip, &["leap second list reload failed", "is a FIFO"], FAST);
        assert_eq!(get_json(&addr)["leap"], 0);
    }
    server.signal(Signal::SIGTERM);
    assert_eq!(server.wait_exit(FAST), 0);
}

#[test]
fn a_leap_list_replaced_by_a_fifo_a_device_or_a_huge_file_keeps_the_list_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let leap = dir.path().join("leap-seconds.list");
    std::fs::copy(test_list(), &leap).unwrap();
    let cache = dir.path().join("cache.list");
    let (mut server, addr) = serve(&[
        "--leap-seconds",
        leap.to_str().unwrap(),
        "--leap-seconds-cache",
        cache.to_str().unwrap(),
    ]);
    server.wait_line(0, &["leap second list: using"], FAST);
    let before = get_json(&addr);
    assert_eq!(
        (&before["leap"], &before["step"]),
        (&36.into(), &1.into()),
        "{before}"
    );
    let limit = webntpd::leap::store::MAX_LIST_BYTES as u64;
    for bad in Bad::all(limit) {
        bad.put(&leap);
        let skip = server.lines();
        server.signal(Signal::SIGHUP);
        let says = bad.says(limit);
        server.wait_line(
            skip,
            &[
                "leap second list reload failed",
                &says,
                "keeping the list in use",
            ],
            FAST,
        );
        let now = get_json(&addr);
        assert_eq!(
            (&now["leap"], &now["next"], &now["step"]),
            (&before["leap"], &before["next"], &before["step"]),
            "{bad:?}"
        );
    }
    // A good list again is taken up again.
    std::fs::remove_file(&leap).unwrap();
    std::fs::copy(test_list(), &leap).unwrap();
    let skip = server.lines();
    server.signal(Signal::SIGHUP);
    server.wait_line(skip, &["leap second list: using"], FAST);
    server.signal(Signal::SIGTERM);
    assert_eq!(server.wait_exit(FAST), 0);
}

#[test]
fn a_tls_certificate_replaced_by_a_fifo_is_refused_at_sighup_and_serving_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let pki = crate::common::make_pki(dir.path(), "files");
    let (_, cert, key) = pki.paths();
    let (mut server, addr) = serve(&[
        "--tls-listen",
        "127.0.0.1:0",
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
    ]);
    Bad::Fifo.put(Path::new(&cert));
    let skip = server.lines();
    server.signal(Signal::SIGHUP);
    server.wait_line(skip, &["TLS certificate not reloaded", "is a FIFO"], FAST);
    get_json(&addr);
    server.signal(Signal::SIGTERM);
    assert_eq!(server.wait_exit(FAST), 0);
}
