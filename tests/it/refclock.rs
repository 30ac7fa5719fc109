//! Reference-clock outputs against readers nobody here wrote: chronyd (`refclock SHM` and
//! `refclock SOCK`), ntpsec's ntpd (`refclock shm`), gpsd's `ntpshmmon`, and C code built from
//! `tests/refclock/shmtool.c` with the system's compiler (the struct as C lays it out, a
//! reader running chrony's and ntpd's protocols against our writer, another writer, segments
//! of the wrong size or owner).
//!
//! The real readers are fed through the whole pipeline: `webntpd serve` with its clock
//! shifted +250 ms by libfaketime -> `webntpd query --shm/--sock` -> the reader, which must
//! report that offset. `query` writes once, so a test runs it in a loop for readers that want
//! several samples.
//!
//! # Isolation
//! System V segments belong to the whole machine (other programs here use unit 2), so every
//! test that touches SHM runs in IPC and network namespaces of its own: it re-runs itself —
//! this test binary, filtered to that one test — under `unshare --ipc --net`, with
//! `WEBNTPD_TEST_NAMESPACE` naming the test; inside, [`in_own_namespace`] brings up loopback
//! and returns true, and the body runs. Everything the body starts (webntpd, chronyd, ntpd,
//! ntpshmmon, shmtool) inherits the namespaces: segments vanish with them, and ntpd can have
//! 127.0.0.1:123 to itself. Tests in separate namespaces run in parallel.
//!
//! # Peers
//! chrony, gpsd (`ntpshmmon`), python3-ntp (`ntpq`'s library), util-linux (`unshare`,
//! `setpriv`), libcap2-bin (`capsh`), iproute2 (`ip`), gcc; ntpsec's `ntpd` and `ntpq`
//! unpacked with `dpkg -x` (the package conflicts with chrony's) into `target/peers/ntpsec`,
//! or the directory `WEBNTPD_NTPSEC_DIR` names. `.ci/run` installs them all; a missing one
//! fails its test with the command that installs it. No reader may touch the clock: chronyd
//! runs with `-x`, and chronyd and ntpd run under `capsh --drop=cap_sys_time`.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::common::*;
use webntpd::clock::{Clock, SystemClock};
use webntpd::refclock::{shm, ShmWriter};
use webntpd::sync::leap::Leap;
use webntpd::sync::refsample::RefSample;
use webntpd::sync::Timestamp;

/// The offset every shifted server is given, as libfaketime reads it and in nanoseconds.
const SHIFT: &str = "+0.25";
const SHIFT_NS: i128 = 250_000_000;

// ---------------------------------------------------------------------------------------
// Namespaces, programs, processes.

const NS_ENV: &str = "WEBNTPD_TEST_NAMESPACE";

/// Run the calling test in IPC and network namespaces of its own (see the module comment).
/// In the process cargo started: re-run the test under `unshare`, fail if it failed, and
/// return false (the caller returns). Inside the namespaces: return true.
pub(crate) fn in_own_namespace() -> bool {
    let name = std::thread::current()
        .name()
        .expect("the test harness names each test's thread after the test")
        .to_string();
    if std::env::var(NS_ENV).as_deref() == Ok(name.as_str()) {
        let up = Command::new(program("ip", "iproute2"))
            .args(["link", "set", "lo", "up"])
            .status()
            .expect("ip runs");
        assert!(
            up.success(),
            "cannot bring loopback up in the new namespace"
        );
        return true;
    }
    let out = Command::new(program("unshare", "util-linux"))
        .args(["--ipc", "--net", "--"])
        .arg(std::env::current_exe().expect("the test binary's path"))
        .args([name.as_str(), "--exact", "--nocapture", "--test-threads=1"])
        .env(NS_ENV, &name)
        .output()
        .expect("unshare runs (it needs root)");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    print!("{stdout}");
    eprint!("{stderr}");
    assert!(
        out.status.success() && stdout.contains("test result: ok. 1 passed"),
        "{name} failed inside its namespace ({})",
        out.status
    );
    false
}

pub(crate) fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The program `name` from PATH or the sbin directories, or a failing test that says which
/// package has it.
pub(crate) fn program(name: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "this test drives `{name}`: install it with `apt-get install {package}` (or \
                 run .ci/run, which does)"
            )
        })
}

/// ntpsec's `ntpd` and `ntpq`, unpacked rather than installed (see the module comment).
fn ntpsec() -> (PathBuf, PathBuf) {
    let dir = ntpsec_dir();
    let (ntpd, ntpq) = (dir.join("usr/sbin/ntpd"), dir.join("usr/bin/ntpq"));
    assert!(
        ntpd.is_file() && ntpq.is_file(),
        "this test drives ntpsec's ntpd, unpacked into {dir}: `apt-get download ntpsec && \
         dpkg -x ntpsec_*.deb {dir}` (installing it would remove chrony), or set \
         WEBNTPD_NTPSEC_DIR; .ci/run does this",
        dir = dir.display()
    );
    let lib = Command::new("/usr/bin/python3")
        .args(["-c", "import ntp"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        lib,
        "ntpq needs ntpsec's Python library: apt-get install python3-ntp (or run .ci/run)"
    );
    (ntpd, ntpq)
}

/// Where ntpsec is unpacked (see the module comment).
pub(crate) fn ntpsec_dir() -> PathBuf {
    std::env::var_os("WEBNTPD_NTPSEC_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/peers/ntpsec"))
}

/// `tests/refclock/shmtool.c`, compiled once per test process.
fn shmtool() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/refclock/shmtool.c");
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let built = dir.join("shmtool");
        // Tests in other processes build it too: each writes its own file, then renames.
        let tmp = dir.join(format!("shmtool.{}", std::process::id()));
        let out = Command::new(program("gcc", "gcc libc6-dev"))
            .args(["-O2", "-Wall", "-Wextra", "-Werror", "-o"])
            .arg(&tmp)
            .arg(&src)
            .output()
            .expect("gcc runs");
        assert!(
            out.status.success(),
            "compiling {}: {}",
            src.display(),
            text(&out.stderr)
        );
        fs::rename(&tmp, &built).unwrap();
        built
    })
}

/// Run `shmtool ARGS` and return what it printed, failing on failure.
fn run_shmtool(args: &[&str]) -> String {
    let out = Command::new(shmtool()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "shmtool {args:?}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// A reader daemon, killed on drop; its log is kept for failure messages.
struct Peer {
    child: Child,
    log: PathBuf,
}

impl Peer {
    /// Start `command` (a shell command line) without CAP_SYS_TIME, logging to `log`.
    fn start_without_clock_rights(command: &str, log: PathBuf) -> Peer {
        let out = fs::File::create(&log).unwrap();
        let child = Command::new(program("capsh", "libcap2-bin"))
            .args(["--drop=cap_sys_time", "--", "-c", command])
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("capsh runs");
        Peer { child, log }
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------
// webntpd query.

/// `webntpd query ARGS` (a few samples, a short timeout), run to completion.
fn query(args: &[&str]) -> Output {
    query_as(None, args)
}

/// The same as the user `user` (via setpriv) when given.
fn query_as(user: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = match user {
        Some(user) => {
            let mut c = Command::new(program("setpriv", "util-linux"));
            c.args([
                &format!("--reuid={user}"),
                "--regid=nogroup",
                "--clear-groups",
                "--",
            ])
            .arg(binary_for_others());
            c
        }
        None => Command::new(binary()),
    };
    cmd.args(["query", "-n", "4", "--timeout", "2"])
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("http_proxy")
        .env_remove("all_proxy")
        .output()
        .expect("webntpd runs")
}

/// The webntpd binary where any user can run it: where it is, if they can reach it, else a
/// copy in a world-readable temporary directory.
fn binary_for_others() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let reachable = Command::new(program("setpriv", "util-linux"))
            .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
            .arg(binary())
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if reachable {
            return binary();
        }
        let dir = tempfile::Builder::new()
            .prefix("webntpd-bin")
            .tempdir()
            .unwrap()
            .keep();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        let copy = dir.join("webntpd");
        fs::copy(binary(), &copy).unwrap();
        copy
    })
    .clone()
}

/// One sample as `query` reported writing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Written {
    receive: Timestamp,
    clock: Timestamp,
    leap: i32,
    precision: i32,
}

impl Written {
    fn offset_ns(&self) -> i128 {
        self.clock.nanos_since(self.receive)
    }
}

/// The `refclock OUTPUT: receive ..., clock ..., leap L, precision P` lines of a successful
/// query, by output name.
fn written(out: &Output) -> Vec<(String, Written)> {
    assert_eq!(
        out.status.code(),
        Some(0),
        "query failed: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("refclock "))
        .map(|l| {
            let (name, rest) = l.split_once(": ").expect("refclock NAME: ...");
            let f: HashMap<&str, &str> = rest
                .split(", ")
                .filter_map(|kv| kv.split_once(' '))
                .collect();
            let w = Written {
                receive: Timestamp::parse(f["receive"]).unwrap(),
                clock: Timestamp::parse(f["clock"]).unwrap(),
                leap: f["leap"].parse().unwrap(),
                precision: f["precision"].parse().unwrap(),
            };
            (name.to_string(), w)
        })
        .collect()
}

/// Query `url` writing to `outputs`; the sample written (the same for every output).
fn feed(url: &str, outputs: &[&str]) -> Written {
    let mut args = outputs.to_vec();
    args.push(url);
    let lines = written(&query(&args));
    assert!(!lines.is_empty(), "query reported no refclock line");
    assert!(lines.iter().all(|(_, w)| *w == lines[0].1), "{lines:?}");
    lines[0].1
}

/// A server 250 ms ahead and its URL.
fn shifted_server() -> (ChildServer, String) {
    let srv = ChildServer::start_shifted(SHIFT);
    let url = format!("http://{}/", srv.authority());
    (srv, url)
}

/// `offset` (seconds, as a reader reports it) is the injected shift: within 2 ms of it, and
/// within `spread` of the mean of what was written.
fn assert_offset(reader: &str, offset_s: f64, written: &[Written], spread_s: f64) {
    let mean = written.iter().map(|w| w.offset_ns() as f64).sum::<f64>() / written.len() as f64;
    let mean_s = mean / 1e9;
    assert!(
        (offset_s - SHIFT_NS as f64 / 1e9).abs() < 0.002 && (offset_s - mean_s).abs() < spread_s,
        "{reader} reports an offset of {offset_s} s; injected 0.25 s, written {mean_s} s on \
         average ({} samples)",
        written.len()
    );
}

// ---------------------------------------------------------------------------------------
// chronyd.

/// chronyd in `dir`, with `refclocks` lines, serving its command socket in `dir`.
pub(crate) struct Chronyd {
    peer: Peer,
    dir: PathBuf,
}

/// One line of `chronyc -c sourcestats`.
#[derive(Debug, Clone)]
pub(crate) struct SourceStats {
    pub(crate) samples: u32,
    /// Local minus source, in seconds: the negative of the refclock's offset.
    pub(crate) offset_s: f64,
}

impl Chronyd {
    pub(crate) fn start(dir: &Path, refclocks: &[String]) -> Chronyd {
        // chronyd disables its command socket in a directory others may enter.
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).unwrap();
        let d = dir.display();
        let conf = dir.join("chrony.conf");
        fs::write(
            &conf,
            format!(
                "pidfile {d}/chronyd.pid\nport 0\ncmdport 0\nbindcmdaddress {d}/chronyd.sock\n{}\n",
                refclocks.join("\n")
            ),
        )
        .unwrap();
        let chronyd = program("chronyd", "chrony");
        let peer = Peer::start_without_clock_rights(
            &format!(
                "exec {} -x -d -u root -f {}",
                chronyd.display(),
                conf.display()
            ),
            dir.join("chronyd.log"),
        );
        let c = Chronyd {
            peer,
            dir: dir.to_path_buf(),
        };
        wait_for(
            Duration::from_secs(10),
            "chronyd answers chronyc",
            || c.peer.log(),
            || c.sourcestats().map(|_| ()),
        );
        c
    }

    /// What chronyd logged.
    pub(crate) fn log(&self) -> String {
        self.peer.log()
    }

    /// `chronyc -c sourcestats` by source name; `None` while chronyd does not answer.
    pub(crate) fn sourcestats(&self) -> Option<HashMap<String, SourceStats>> {
        let out = Command::new(program("chronyc", "chrony"))
            .arg("-h")
            .arg(self.dir.join("chronyd.sock"))
            .args(["-c", "sourcestats"])
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        // Name,NP,NR,Span,Freq,Skew,Offset,StdDev
        Some(
            text(&out.stdout)
                .lines()
                .filter_map(|l| {
                    let f: Vec<&str> = l.split(',').collect();
                    let stats = SourceStats {
                        samples: f.get(1)?.parse().ok()?,
                        offset_s: f.get(6)?.parse().ok()?,
                    };
                    Some((f[0].to_string(), stats))
                })
                .collect(),
        )
    }

    fn samples(&self, source: &str) -> u32 {
        self.sourcestats()
            .and_then(|s| s.get(source).map(|s| s.samples))
            .unwrap_or(0)
    }
}

/// What `shmtool show UNIT` prints, by field name; `None` when there is no segment.
fn segment(unit: u8) -> Option<HashMap<String, String>> {
    let out = Command::new(shmtool())
        .args(["show", &unit.to_string()])
        .output()
        .unwrap();
    let words: Vec<String> = text(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let fields = words.chunks(2).map(|kv| (kv[0].clone(), kv[1].clone()));
    out.status.success().then(|| fields.collect())
}

/// Whether `seg` holds a sample process `pid` wrote just now (valid, the last 10 s, an
/// offset under 10 ms as client and server share a clock) and is marked as held by it.
fn fresh_sample_by(seg: &HashMap<String, String>, pid: u64) -> bool {
    let at = |k: &str| seg.get(k).and_then(|v| Timestamp::parse(v).ok());
    let (Some(receive), Some(clock)) = (at("receive"), at("clock")) else {
        return false;
    };
    let age_ns = SystemClock.realtime().nanos_since(receive);
    seg["mark"] == "574e5448"
        && seg["holder"] == pid.to_string()
        && seg["mode"] == "1"
        && seg["valid"] == "1"
        && (0..10_000_000_000).contains(&age_ns)
        && clock.nanos_since(receive).abs() < 10_000_000
}

// ---------------------------------------------------------------------------------------
// webntpd run.

/// `webntpd run` on `config` (plus a status socket in `dir`, logging to stderr) without
/// clock rights, once its status answers.
pub(crate) fn start_daemon(dir: &Path, config: &str) -> Daemon {
    let path = Daemon::write_config(dir, config);
    let mut cmd = Command::new(program("capsh", "libcap2-bin"));
    cmd.args(["--drop=cap_sys_time", "--", "-c"])
        .arg(format!(
            "exec {} run -c {}",
            binary().display(),
            path.display()
        ))
        .env_remove("RUST_LOG")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC");
    let daemon = Daemon::spawn(cmd, path);
    daemon.wait_for(Duration::from_secs(10), "the daemon's status", |_| true);
    daemon
}

/// A `[[source]]` polling `url` every 2 s, a burst of 2 samples.
pub(crate) fn quick_source(url: &str) -> String {
    format!("[[source]]\nurl = \"{url}\"\npoll = \"2s\"\nsamples = 2\ntimeout = \"300ms\"\n\n")
}

/// A server, a directory, and a configuration polling that server quickly and writing to
/// SHM unit 2.
fn server_and_unit_2() -> (ChildServer, tempfile::TempDir, String) {
    let srv = ChildServer::start(&[]);
    let url = format!("http://{}/", srv.authority());
    let config = format!(
        "{}[[output]]\ntype = \"shm\"\nunit = 2\n",
        quick_source(&url)
    );
    (srv, tempfile::tempdir().unwrap(), config)
}

/// The status of the daemon's only output, and of its only source.
fn output_and_source(s: &serde_json::Value) -> (&serde_json::Value, &serde_json::Value) {
    (&s["outputs"][0], &s["sources"][0])
}

/// Writes counted and bursts done, from a status.
fn writes_and_polls(s: &serde_json::Value) -> (u64, u64) {
    let (o, src) = output_and_source(s);
    (
        o["writes"].as_u64().unwrap_or(0),
        src["polls"].as_u64().unwrap_or(0),
    )
}

/// While the output fails with `error`: wait for three more bursts, then check that no write
/// was counted, the status still shows `error`, and the log said it exactly once. Returns the
/// writes counted.
fn failing_quietly(daemon: &Daemon, error: &str) -> u64 {
    let s = daemon.wait_for(Duration::from_secs(20), error, |s| {
        output_and_source(s).0["last_error"]
            .as_str()
            .is_some_and(|e| e.contains(error))
    });
    let (writes, polls) = writes_and_polls(&s);
    let later = daemon.wait_for(Duration::from_secs(30), "three more bursts", |s| {
        writes_and_polls(s).1 >= polls + 3
    });
    assert_eq!(writes_and_polls(&later).0, writes, "{later:#}");
    let still = output_and_source(&later).0["last_error"].as_str();
    assert!(still.is_some_and(|e| e.contains(error)), "{later:#}");
    assert_eq!(daemon.lines_with(error), 1, "{}", daemon.log_text());
    writes
}

// ---------------------------------------------------------------------------------------
// The tests.

#[test]
fn shm_time_has_the_c_layout() {
    let printed = run_shmtool(&["layout"]);
    let c: HashMap<&str, usize> = printed
        .lines()
        .map(|l| {
            let (name, n) = l.split_once(' ').unwrap();
            (name, n.parse().unwrap())
        })
        .collect();
    assert_eq!(c["sizeof"], shm::SIZE, "{printed}");
    for (field, offset) in shm::FIELD_OFFSETS {
        assert_eq!(c.get(field), Some(&offset), "{field}: {printed}");
    }
    assert_eq!(c.len(), shm::FIELD_OFFSETS.len() + 1, "{printed}");
    if cfg!(target_pointer_width = "64") {
        assert_eq!(shm::SIZE, 96);
    }
}

/// Sample `i` of the stress test, by the rule in shmtool.c's header: every field follows
/// from `i`, so a copy mixing two samples shows.
fn stress_sample(base: i128, i: i128) -> RefSample {
    const G: i128 = 1_000_000_000;
    RefSample {
        receive: Timestamp::from_nanos((base + i) * G + (i * 999_983) % G),
        offset_ns: ((i * 7_919) % (2 * G) - G) as i64,
        leap: [Leap::NoWarning, Leap::InsertSecond, Leap::DeleteSecond][(i % 3) as usize],
        precision: -1 - (i % 29) as i32,
    }
}

#[test]
fn concurrent_readers_never_accept_a_torn_sample() {
    if !in_own_namespace() {
        return;
    }
    const BASE: i128 = 1_000_000_000;
    const READS: u64 = 4_000_000;
    const MIN_ACCEPTED: u64 = 1_000;
    let mut writer = ShmWriter::open(2, None).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writing = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                writer.write(&stress_sample(BASE, i)).unwrap();
                i += 1;
            }
            i
        })
    };
    let out = Command::new(shmtool())
        .args(["stress", "2", &READS.to_string(), &MIN_ACCEPTED.to_string()])
        .arg(BASE.to_string())
        .output()
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    let samples = writing.join().unwrap();
    let report = text(&out.stdout);
    println!("{samples} samples written; reader: {report}");
    assert!(
        out.status.success(),
        "the reader accepted torn samples: {report}{}",
        text(&out.stderr)
    );
    let words: Vec<&str> = report.split_whitespace().collect();
    let stat = |name: &str| -> u64 {
        let i = words.iter().position(|w| *w == name).unwrap();
        words[i + 1].parse().unwrap()
    };
    assert!(stat("reads") >= READS, "{report}");
    assert_eq!(stat("torn"), 0);
    // Both protocols took plenty of samples while the writer was busy, and reads did overlap
    // writes (a reader without a protocol saw mixed samples), so the test tested something.
    assert!(
        stat("chrony") >= MIN_ACCEPTED && stat("ntpd") >= MIN_ACCEPTED,
        "{report}"
    );
    assert!(stat("naive_torn") > 0, "{report}");
}

#[test]
fn chronyd_takes_the_injected_offset_over_shm_and_sock() {
    if !in_own_namespace() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("webntp.sock");
    let sock_arg = sock.to_str().unwrap();
    // chronyd first: it creates SHM unit 2 (root's, 0600) and webntpd attaches to it.
    let chronyd = Chronyd::start(
        dir.path(),
        &[
            "refclock SHM 2 refid WSHM poll 0 precision 1e-3 noselect".to_string(),
            format!("refclock SOCK {sock_arg} refid WSCK poll 0 filter 1 precision 1e-3 noselect"),
        ],
    );
    let (_srv, url) = shifted_server();
    // Which is root's only: another user is told who made it and what to do.
    let out = query_as(Some("nobody"), &["--shm", "2", &url]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(77), "{err}");
    assert!(
        err.contains("permission denied; the segment is owned by root (uid 0), mode 0600, created by chronyd (pid ")
            && err.contains("`refclock SHM 2:perm=0666`"),
        "{err}"
    );
    let mut fed = Vec::new();
    wait_for(
        Duration::from_secs(30),
        "chronyd has 3 samples from each refclock",
        || format!("{:?}\n{}", chronyd.sourcestats(), chronyd.peer.log()),
        || {
            fed.push(feed(&url, &["--shm", "2", "--sock", sock_arg]));
            std::thread::sleep(Duration::from_millis(600));
            (chronyd.samples("WSHM") >= 3 && chronyd.samples("WSCK") >= 3).then_some(())
        },
    );
    let stats = chronyd.sourcestats().unwrap();
    for source in ["WSHM", "WSCK"] {
        assert_offset(
            &format!("chronyd's {source}"),
            -stats[source].offset_s,
            &fed,
            200e-6,
        );
    }
}

#[test]
fn chronyd_ignores_a_leap_3_sample() {
    if !in_own_namespace() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let chronyd = Chronyd::start(
        dir.path(),
        &["refclock SHM 2 refid WSHM poll 0 precision 1e-3 noselect".to_string()],
    );
    let mut writer = ShmWriter::open(2, None).unwrap();
    let sample = |leap| RefSample {
        receive: SystemClock.realtime(),
        offset_ns: 250_000_000,
        leap,
        precision: -15,
    };
    // Twelve fresh, valid samples saying "not synchronised" over three of chronyd's polls.
    for _ in 0..12 {
        writer.write(&sample(Leap::Unsynchronised)).unwrap();
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(
        chronyd.samples("WSHM"),
        0,
        "chronyd took a leap-3 sample: {:?}",
        chronyd.sourcestats()
    );
    // The same samples with leap 0 are taken: only the leap indicator was in the way.
    wait_for(
        Duration::from_secs(10),
        "chronyd takes leap-0 samples",
        || format!("{:?}", chronyd.sourcestats()),
        || {
            writer.write(&sample(Leap::NoWarning)).unwrap();
            (chronyd.samples("WSHM") >= 1).then_some(())
        },
    );
}

#[test]
fn ntpsec_takes_the_injected_offset_over_shm() {
    if !in_own_namespace() {
        return;
    }
    let (ntpd, ntpq) = ntpsec();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let conf = dir.path().join("ntp.conf");
    fs::write(
        &conf,
        format!(
            "refclock shm unit 2 refid WNTP minpoll 2 maxpoll 2\n\
             disable ntp\ndisable kernel\n\
             restrict default ignore\nrestrict 127.0.0.1\n\
             interface ignore all\ninterface ignore wildcard\ninterface listen 127.0.0.1\n\
             logfile {d}/ntpd.log\ndriftfile {d}/ntp.drift\nstatsdir {d}/\n"
        ),
    )
    .unwrap();
    let peer = Peer::start_without_clock_rights(
        &format!("exec {} -n -c {}", ntpd.display(), conf.display()),
        dir.path().join("ntpd.out"),
    );
    let (_srv, url) = shifted_server();
    let log = || {
        let ntpd_log = fs::read_to_string(dir.path().join("ntpd.log")).unwrap_or_default();
        format!("{}\n{ntpd_log}", peer.log())
    };
    let peer_vars = || -> Option<HashMap<String, String>> {
        let out = Command::new(&ntpq)
            .args(["-c", "rv &1 reach,offset,precision,leap", "127.0.0.1"])
            .output()
            .ok()?;
        let vars: HashMap<String, String> = text(&out.stdout)
            .trim()
            .split(", ")
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        vars.contains_key("reach").then_some(vars)
    };
    let mut fed = Vec::new();
    let vars = wait_for(
        Duration::from_secs(40),
        "ntpd reaches the SHM refclock",
        || format!("{:?}\n{}", peer_vars(), log()),
        || {
            fed.push(feed(&url, &["--shm", "2"]));
            std::thread::sleep(Duration::from_millis(900));
            peer_vars().filter(|v| v["reach"] != "000" && v["reach"] != "0")
        },
    );
    println!("ntpd after {} samples: {vars:?}", fed.len());
    // ntpq's offset is in milliseconds, ntpd's average over the samples of its poll.
    let offset_ms: f64 = vars["offset"].parse().unwrap();
    assert_offset("ntpd", offset_ms / 1e3, &fed, 200e-6);
    assert_eq!(vars["leap"], "00", "{vars:?}");
    // The peer's precision is the one written with the sample.
    let precision: i32 = vars["precision"].parse().unwrap();
    assert!(
        fed.iter().any(|w| w.precision == precision),
        "ntpd's precision {precision}, written {fed:?}"
    );
}

#[test]
fn ntpshmmon_shows_exactly_what_was_written() {
    if !in_own_namespace() {
        return;
    }
    let (_srv, url) = shifted_server();
    // ntpshmmon watches the segments that exist when it starts.
    let mut fed = vec![feed(&url, &["--shm", "2"])];
    let monitor = Command::new(program("ntpshmmon", "gpsd"))
        .args(["-o", "-n", "4", "-t", "10"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..3 {
        fed.push(feed(&url, &["--shm", "2"]));
        std::thread::sleep(Duration::from_millis(300));
    }
    let out = monitor.wait_with_output().unwrap();
    let printed = text(&out.stdout);
    // sample NTP2 <receive - clock> <receive> <clock> <leap> <precision>
    let samples: Vec<Vec<&str>> = printed
        .lines()
        .filter(|l| l.starts_with("sample NTP2 "))
        .map(|l| l.split_whitespace().skip(2).collect())
        .collect();
    for w in &fed {
        let seen = samples.iter().find(|f| f[1] == w.receive.to_nanos_string());
        let f = seen.unwrap_or_else(|| panic!("ntpshmmon did not show {w:?}:\n{printed}"));
        assert_eq!(f[2], w.clock.to_nanos_string(), "{printed}");
        assert_eq!(
            Timestamp::parse(f[0]).unwrap().as_nanos(),
            -w.offset_ns(),
            "{printed}"
        );
        assert_eq!(f[3].parse::<i32>().unwrap(), w.leap, "{printed}");
        assert_eq!(f[4].parse::<i32>().unwrap(), w.precision, "{printed}");
        // The injected shift, as measured.
        assert!((w.offset_ns() - SHIFT_NS).abs() < 2_000_000, "{w:?}");
    }
}

/// Run `query` against a server that is never reached (the output is checked first), expect
/// exit code `code`, and return stderr.
fn refused(user: Option<&str>, args: &[&str], code: i32) -> String {
    let mut args = args.to_vec();
    args.push("http://127.0.0.1:9/");
    let out = query_as(user, &args);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
    assert!(
        !err.contains("127.0.0.1:9"),
        "{args:?}: measured before checking the output: {err}"
    );
    err
}

#[test]
fn unusable_segments_are_refused_with_the_fix() {
    if !in_own_namespace() {
        return;
    }
    // A reader built for 32-bit time_t made unit 3.
    run_shmtool(&["create", "3", "80", "666"]);
    let err = refused(None, &["--shm", "3"], 69);
    assert!(
        err.contains("SHM unit 3 (key 0x4e545033) is 80 bytes")
            && err.contains(&format!("struct shmTime is {} bytes", shm::SIZE))
            && err.contains("32-bit time_t")
            && err.contains("ipcrm -M 0x4e545033"),
        "{err}"
    );

    // A root-only unit 0, and webntpd running as nobody.
    run_shmtool(&["create", "0", &shm::SIZE.to_string(), "600"]);
    let err = refused(Some("nobody"), &["--shm", "0"], 77);
    assert!(
        err.contains("SHM unit 0 (key 0x4e545030): permission denied")
            && err.contains("owned by root (uid 0), mode 0600")
            && err.contains("refclock SHM 0:perm=0666")
            && err.contains("run webntpd as the segment's owner (root)")
            && err.contains("use a unit of 2 or more")
            && err.contains("--sock"),
        "{err}"
    );

    // Another program writes unit 4 (as gpsd would).
    run_shmtool(&["create", "4", &shm::SIZE.to_string(), "666"]);
    run_shmtool(&["write", "4"]);
    let err = refused(None, &["--shm", "4"], 69);
    assert!(
        err.contains("SHM unit 4 (key 0x4e545034) is already written by another program")
            && err.contains("give webntpd another unit"),
        "{err}"
    );

    // Two outputs of one process on one unit.
    let err = refused(None, &["--shm", "5", "--shm", "5"], 69);
    assert!(
        err.contains("SHM unit 5 (key 0x4e545035) is already written by another output of this"),
        "{err}"
    );
    // In-process too; and a unit is free again once its writer is gone.
    let first = ShmWriter::open(6, None).unwrap();
    let second = ShmWriter::open(6, None).unwrap_err();
    assert!(second.to_string().contains("already written"), "{second}");
    drop(first);
    ShmWriter::open(6, None).unwrap();
}

#[test]
fn sock_failures_name_the_path_and_the_fix() {
    let srv = ChildServer::start(&[]);
    let url = format!("http://{}/", srv.authority());
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.path().join("chrony.sock");
    let p = path.to_str().unwrap();

    // No chronyd: measured, reported, nothing delivered, and a clear error.
    let out = query(&["--sock", p, &url]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(69), "{err}");
    assert!(
        err.contains(&format!("cannot send to chronyd's SOCK refclock {p}"))
            && err.contains(&format!("`refclock SOCK {p}`")),
        "{err}"
    );
    assert!(
        text(&out.stdout).contains("offset"),
        "{}",
        text(&out.stdout)
    );
    assert!(!text(&out.stdout).contains("refclock"));

    // A socket like chronyd's (root's, 0755): another user may not send.
    let listener = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    let out = query_as(Some("nobody"), &["--sock", p, &url]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(77), "{err}");
    assert!(
        err.contains("Permission denied") && err.contains("run webntpd as root"),
        "{err}"
    );

    // Root may: the datagram is chrony's 40 bytes, with the sample query reported.
    let w = feed(&url, &["--sock", p]);
    let mut got = [0u8; 64];
    listener
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let n = listener.recv(&mut got).unwrap();
    assert_eq!(n, webntpd::refclock::sock::SIZE);
    let sent = webntpd::refclock::sock::encode(&RefSample {
        receive: w.receive,
        offset_ns: w.offset_ns() as i64,
        leap: Leap::NoWarning,
        precision: w.precision,
    });
    assert_eq!(&got[..n], &sent[..]);

    // --json puts the same on the chosen server's object.
    let out = query(&["--json", "--sock", p, &url]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = &v["refclock"];
    assert_eq!(
        r["written"],
        serde_json::json!([format!("SOCK {p}")]),
        "{v}"
    );
    let receive = Timestamp::parse(r["receive"].as_str().unwrap()).unwrap();
    let clock = Timestamp::parse(r["clock"].as_str().unwrap()).unwrap();
    let offset_ns = (v["offset"].as_f64().unwrap() * 1e9).round() as i128;
    assert!((clock.nanos_since(receive) - offset_ns).abs() <= 1, "{v}");
    assert_eq!(r["leap"], 0, "{v}");
    assert!(r["precision"].as_i64().unwrap() < 0, "{v}");
    let n = listener.recv(&mut got).unwrap();
    assert_eq!(n, webntpd::refclock::sock::SIZE);
}

#[test]
fn the_daemon_with_the_demo_config_feeds_chronyd_over_shm() {
    if !in_own_namespace() {
        return;
    }
    // config/demo.toml as shipped (serve on 127.0.0.1:8123, poll it three ways, SHM unit 42),
    // with only its status socket moved into this test's directory.
    let dir = tempfile::tempdir().unwrap();
    let demo =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo.toml")).unwrap();
    let status = dir.path().join("status.sock");
    let config = demo.replace(
        "socket = \"/tmp/webntpd-demo.status.sock\"",
        &format!("socket = \"{}\"", status.display()),
    );
    assert_ne!(config, demo, "the demo's [status] socket line moved");
    let daemon = start_daemon(dir.path(), &config);
    // chronyd attaches to the segment the daemon created (root's, 0600: chronyd runs as
    // root). The daemon writes about once a second here (three sources every 4 s), so a
    // filter of 1 takes each poll's latest sample.
    let chronyd = Chronyd::start(
        dir.path(),
        &["refclock SHM 42 refid WNTP poll 1 filter 1 precision 1e-3 noselect".to_string()],
    );
    wait_for(
        Duration::from_secs(40),
        "chronyd has 4 samples from the daemon",
        || format!("{:?}\n{}", chronyd.sourcestats(), daemon.log_text()),
        || (chronyd.samples("WNTP") >= 4).then_some(()),
    );
    // Client and server share one clock: the true offset is 0.
    let offset = -chronyd.sourcestats().unwrap()["WNTP"].offset_s;
    assert!(
        offset.abs() < 0.001,
        "chronyd sees the daemon's offset as {offset} s"
    );
    assert!(
        daemon.log_text().contains("output SHM unit 42 attached"),
        "{}",
        daemon.log_text()
    );
}

#[test]
fn a_zombie_webntpd_does_not_hold_its_unit() {
    if !in_own_namespace() {
        return;
    }
    let (srv, url) = shifted_server();
    run_shmtool(&["create", "2", &shm::SIZE.to_string(), "666"]);
    // A running webntpd's mark is respected (the server is one).
    let live = srv.child.id().to_string();
    run_shmtool(&["mark", "2", &live]);
    let err = refused(None, &["--shm", "2"], 69);
    assert!(
        err.contains(&format!("already written by another webntpd (pid {live})")),
        "{err}"
    );
    // A webntpd that exited and was not reaped by its parent (this test): a zombie, which
    // still answers kill(pid, 0) and still has its name.
    let mut zombie = Command::new(binary())
        .arg("--version")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = zombie.id();
    wait_for(
        Duration::from_secs(10),
        "the child is a zombie",
        || fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default(),
        || {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let state = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .next()?
                .to_string();
            (state == "Z").then_some(())
        },
    );
    assert_eq!(
        fs::read_to_string(format!("/proc/{pid}/comm")).unwrap(),
        "webntpd\n"
    );
    run_shmtool(&["mark", "2", &pid.to_string()]);
    let w = feed(&url, &["--shm", "2"]);
    // Taken over: the sample is in the segment, which query released on exit.
    let seg = segment(2).unwrap();
    assert_eq!(seg["receive"], w.receive.to_nanos_string(), "{seg:?}");
    assert_eq!(seg["clock"], w.clock.to_nanos_string(), "{seg:?}");
    assert_eq!(
        (seg["mark"].as_str(), seg["valid"].as_str()),
        ("574e5452", "1")
    );
    zombie.wait().unwrap();
}

#[test]
fn the_daemon_follows_its_segment_when_it_is_removed_replaced_or_resized() {
    if !in_own_namespace() {
        return;
    }
    let (_srv, dir, config) = server_and_unit_2();
    let daemon = start_daemon(dir.path(), &config);
    let pid = daemon.status().unwrap()["pid"].as_u64().unwrap();
    let fed = |what: &str| {
        wait_for(
            Duration::from_secs(20),
            what,
            || format!("{:?}\n{}", segment(2), daemon.log_text()),
            || segment(2).filter(|seg| fresh_sample_by(seg, pid)),
        )
    };
    let first = fed("the daemon's first sample");
    let before = daemon.wait_for(Duration::from_secs(5), "a write counted", |s| {
        writes_and_polls(s).0 >= 1
    });

    // A reader restarting removes the segment and makes its own (root's, 0600).
    let id = run_shmtool(&["replace", "2", &shm::SIZE.to_string(), "600"]);
    let seg = fed("a sample in the reader's new segment");
    assert_eq!(seg["id"], id.trim());
    assert_ne!(seg["id"], first["id"]);
    assert_eq!(
        daemon.lines_with("was removed (ipcrm, or a reader that made its own) and a new one is at the key; the segment is owned by root (uid 0), mode 0600"),
        1,
        "{}",
        daemon.log_text()
    );
    assert!(daemon.log_text().contains("; attaching the new one"));

    // ipcrm: nothing at the key, so the daemon makes it again (0666: unit 2).
    let rm = Command::new(program("ipcrm", "util-linux"))
        .args(["-M", "0x4e545032"])
        .status()
        .unwrap();
    assert!(rm.success());
    let again = fed("a sample in a segment created again");
    assert_ne!(again["id"], seg["id"]);
    assert_eq!(
        daemon.lines_with("was removed (ipcrm?) and none is at the key; creating it again"),
        1,
        "{}",
        daemon.log_text()
    );
    let s = daemon.status().unwrap();
    assert!(
        writes_and_polls(&s).0 > writes_and_polls(&before).0
            && s["outputs"][0]["last_error"].is_null(),
        "{s:#}"
    );

    // A reader built for 32-bit time_t replaces it with 80 bytes: an error, shown and
    // logged once; no write counted while it lasts.
    run_shmtool(&["replace", "2", "80", "666"]);
    let stuck = failing_quietly(&daemon, "SHM unit 2 (key 0x4e545032) is 80 bytes");
    assert_eq!(segment(2).unwrap()["size"], "80");

    // A right-sized segment back: written again, by itself.
    let id = run_shmtool(&["replace", "2", &shm::SIZE.to_string(), "666"]);
    let seg = fed("a sample once the size is right");
    assert_eq!(seg["id"], id.trim());
    let s = daemon.wait_for(Duration::from_secs(10), "the error cleared", |s| {
        writes_and_polls(s).0 > stuck && output_and_source(s).0["last_error"].is_null()
    });
    assert_eq!(
        daemon.lines_with("output SHM unit 2: writing again"),
        1,
        "{s:#}\n{}",
        daemon.log_text()
    );
}

#[test]
fn the_daemon_reports_chronyds_socket_going_away_once_and_recovers() {
    let srv = ChildServer::start(&[]);
    let url = format!("http://{}/", srv.authority());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chrony.sock");
    let bind = || {
        let l = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        l.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        l
    };
    let received = |l: &std::os::unix::net::UnixDatagram| {
        let mut got = [0u8; 64];
        let n = l.recv(&mut got).expect("a sample arrives");
        assert_eq!(n, webntpd::refclock::sock::SIZE);
        f64::from_ne_bytes(got[16..24].try_into().unwrap())
    };
    let listener = bind();
    let config = format!(
        "{}[[output]]\ntype = \"sock\"\npath = \"{}\"\n",
        quick_source(&url),
        path.display()
    );
    let daemon = start_daemon(dir.path(), &config);
    assert!(received(&listener).abs() < 0.01);

    // chronyd killed: its socket file stays, no one reads it.
    drop(listener);
    failing_quietly(&daemon, "Connection refused");
    assert!(daemon
        .log_text()
        .contains("nothing reads it (chronyd stopped or crashed)"));
    // chronyd stopped cleanly: the file is gone too.
    fs::remove_file(&path).unwrap();
    let stuck = failing_quietly(&daemon, "No such file or directory");
    assert!(daemon
        .log_text()
        .contains(&format!("start it with `refclock SOCK {}`", path.display())));

    // chronyd back: delivered again, by itself.
    let listener = bind();
    assert!(received(&listener).abs() < 0.01);
    let s = daemon.wait_for(Duration::from_secs(10), "the error cleared", |s| {
        writes_and_polls(s).0 > stuck && output_and_source(s).0["last_error"].is_null()
    });
    let again = format!("output SOCK {}: writing again", path.display());
    assert_eq!(daemon.lines_with(&again), 1, "{s:#}\n{}", daemon.log_text());
}

/// A daemon leaves no segment behind: the one it created is removed when it stops cleanly
/// and no reader is attached, also when a previous daemon created it and was killed; one a
/// reader is attached to, or one a reader created, stays.
#[test]
fn the_daemon_removes_the_segment_it_created_unless_a_reader_is_attached() {
    use nix::sys::signal::Signal;
    if !in_own_namespace() {
        return;
    }
    let (_srv, dir, config) = server_and_unit_2();
    let fed = |daemon: &Daemon| {
        let pid = daemon.status().unwrap()["pid"].as_u64().unwrap();
        wait_for(
            Duration::from_secs(20),
            "the daemon's first sample",
            || format!("{:?}\n{}", segment(2), daemon.log_text()),
            || segment(2).filter(|seg| fresh_sample_by(seg, pid)),
        )
    };
    let stop = |mut daemon: Daemon| {
        daemon.signal(Signal::SIGTERM);
        assert_eq!(daemon.wait_exit(Duration::from_secs(10)), 0);
        daemon
    };
    const CREATED: &str = "574e5443";

    // Created by the daemon, no reader: gone after a clean stop.
    let daemon = start_daemon(dir.path(), &config);
    assert_eq!(fed(&daemon)["created"], CREATED);
    let daemon = stop(daemon);
    assert_eq!(segment(2), None, "{}", daemon.log_text());
    assert_eq!(
        daemon.lines_with("removed the segment webntpd created, as no reader is attached"),
        1
    );

    // Killed: the segment stays; the next daemon knows a webntpd made it, and removes it.
    let mut daemon = start_daemon(dir.path(), &config);
    fed(&daemon);
    daemon.signal(Signal::SIGKILL);
    daemon.wait_exit(Duration::from_secs(10));
    assert!(segment(2).is_some());
    let daemon = start_daemon(dir.path(), &config);
    assert_eq!(fed(&daemon)["created"], CREATED);
    stop(daemon);
    assert_eq!(segment(2), None);

    // A reader attached (ntpshmmon attaches the segments there when it starts): it stays,
    // released, and the reader still attached to it.
    let daemon = start_daemon(dir.path(), &config);
    let first = fed(&daemon);
    let mut monitor = Command::new(program("ntpshmmon", "gpsd"))
        .args(["-n", "100000", "-t", "60"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(
        Duration::from_secs(10),
        "ntpshmmon attached",
        || format!("{:?}", segment(2)),
        // The daemon and the monitor.
        || segment(2).filter(|seg| seg["attached"] == "2"),
    );
    stop(daemon);
    let seg = segment(2).expect("the segment a reader is attached to stays");
    assert_eq!(
        (
            seg["id"].as_str(),
            seg["attached"].as_str(),
            seg["mark"].as_str()
        ),
        (first["id"].as_str(), "1", "574e5452")
    );
    monitor.kill().unwrap();
    monitor.wait().unwrap();

    // A reader's own segment (chronyd makes every unit 0600) stays, attached or not.
    let id = run_shmtool(&["replace", "2", &shm::SIZE.to_string(), "600"]);
    let daemon = start_daemon(dir.path(), &config);
    assert_eq!(fed(&daemon)["created"], "0");
    stop(daemon);
    assert_eq!(
        segment(2).expect("the reader's segment stays")["id"],
        id.trim()
    );
}
