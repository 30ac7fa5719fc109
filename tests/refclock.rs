//! The SHM writer against C: `tests/refclock/shmtool.c`, built with the system's compiler,
//! prints `struct shmTime` as C lays it out and reads the segment with chrony's and ntpd's
//! protocols while the writer writes as fast as it can.
//!
//! # Isolation
//! System V segments belong to the whole machine (other programs here use unit 2), so every
//! test that touches SHM runs in IPC and network namespaces of its own: it re-runs itself —
//! this test binary, filtered to that one test — under `unshare --ipc --net`, with
//! `WEBNTPD_TEST_NAMESPACE` naming the test; inside, [`in_own_namespace`] brings up loopback
//! and returns true, and the body runs. Everything the body starts inherits the namespaces,
//! and segments vanish with them. Tests in separate namespaces run in parallel.
//!
//! # Peers
//! gcc, util-linux (`unshare`) and iproute2 (`ip`); `.ci/run` installs them, and a missing one
//! fails its test with the command that installs it. The tests need root (for `unshare`).
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use webntpd::refclock::{shm, Leap, RefSample, ShmWriter};
use webntpd::wire::Timestamp;

// ---------------------------------------------------------------------------------------
// Namespaces and programs.

const NS_ENV: &str = "WEBNTPD_TEST_NAMESPACE";

/// Run the calling test in IPC and network namespaces of its own (see the module comment).
/// In the process cargo started: re-run the test under `unshare`, fail if it failed, and
/// return false (the caller returns). Inside the namespaces: return true.
fn in_own_namespace() -> bool {
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

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The program `name` from PATH or the sbin directories, or a failing test that says which
/// package has it.
fn program(name: &str, package: &str) -> PathBuf {
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
                writer.write(&stress_sample(BASE, i));
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
