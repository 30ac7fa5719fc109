//! The Debian package under a real, booted systemd, as an administrator would use it.
//!
//! `packaging/build-release.sh` and `cargo deb --no-build` build the package as
//! packaging/README.md does (in `target/deb`, its own target directory, so they do not wait
//! for the lock of the `cargo test` running this), lintian checks it, and systemd boots
//! with `systemd-nspawn -b` on an overlay of this machine's root: inside `unshare -m`, a tmpfs
//! holds the overlay's upper and work directories, so nothing the container does reaches the
//! host's files, and the mounts vanish with the namespace when nspawn exits. The container
//! has its own IPC namespace (its SHM segments are not the host's; checked), a private
//! network (loopback only) and no CAP_SYS_TIME (checked): nothing in it can set the clock.
//! Services the host image enables (chrony, postgresql, timers...) are masked in the overlay.
//!
//! Inside: `dpkg -i` the package (the daemon enabled and started, the server unit only
//! installed); the server unit, shifted +0.25 s by libfaketime through a drop-in, is the
//! source; chronyd (`-x`, no CAP_SYS_TIME) reads `refclock SHM` and `refclock SOCK`; then the
//! unit's readiness, STATUS=, journal fields, reload (good and broken), a broken
//! configuration, the watchdog, the daemon as a dynamic user feeding chronyd through an SHM
//! unit it creates, an upgrade that keeps the edited conffile, stop, and a purge that leaves
//! no file, user or segment behind.
//!
//! Runs as root with `systemd-nspawn` (package systemd-container), `cargo deb` (`cargo
//! install --locked cargo-deb`), lintian and libfaketime; otherwise it says why it is skipped,
//! and fails naming what is missing when `CI=true`. `.ci/run` installs all of them.
#![forbid(unsafe_code)]

// The shared helpers of tests/it; this binary uses only some of them.
#[allow(dead_code)]
#[path = "it/common/mod.rs"]
mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn found(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether the test can run: true, or (false after saying why) when something is missing;
/// a failure naming it under `CI=true`.
fn prerequisites(test: &str, needs: &[(&str, bool, &str)]) -> bool {
    let missing: Vec<String> = needs
        .iter()
        .filter(|(_, ok, _)| !ok)
        .map(|(what, _, how)| format!("{what} ({how})"))
        .collect();
    if missing.is_empty() {
        return true;
    }
    let message = format!("{test}: missing {}", missing.join(", "));
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{message}; .ci/run installs them");
    }
    println!("skipped: {message}");
    false
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn cargo_deb() -> (&'static str, bool, &'static str) {
    (
        "cargo-deb",
        Command::new(env!("CARGO"))
            .args(["deb", "--version"])
            .output()
            .is_ok_and(|o| o.status.success()),
        "cargo install --locked cargo-deb",
    )
}

/// The package, and the same one as version -2 (for the upgrade).
struct Debs {
    deb: PathBuf,
    upgrade: PathBuf,
}

/// The release build and `cargo deb`, once per test process, in `target/deb`.
fn debs() -> &'static Debs {
    static DEBS: OnceLock<Debs> = OnceLock::new();
    DEBS.get_or_init(|| {
        let target = repo().join("target/deb");
        // Not cargo-deb's own target/deb/debian, which it uses while building.
        let out = target.join("packages");
        let _ = fs::remove_dir_all(&out);
        let started = Instant::now();
        // What cargo set for this test process (CARGO_PKG_*, its jobserver, library paths)
        // is not for this build: with it, build scripts would see another environment than
        // at the command line and build everything again.
        let run = |mut cmd: Command, what: &str| {
            for (name, _) in std::env::vars_os() {
                let name = name.to_string_lossy();
                if (name.starts_with("CARGO_") && name != "CARGO_HOME")
                    || name.starts_with("__CARGO")
                    || name.starts_with("RUSTC")
                    || name.starts_with("RUSTDOC")
                    || ["MAKEFLAGS", "MFLAGS", "LD_LIBRARY_PATH", "OUT_DIR", "CARGO"]
                        .contains(&name.as_ref())
                {
                    cmd.env_remove(name.as_ref());
                }
            }
            let out = cmd
                .env("CARGO_TARGET_DIR", &target)
                .current_dir(repo())
                .output()
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert!(
                out.status.success(),
                "{what} failed: {}{}",
                text(&out.stdout),
                text(&out.stderr)
            );
        };
        // The binary as it ships (static glibc), as packaging/README.md builds it.
        run(
            Command::new(repo().join("packaging/build-release.sh")),
            "packaging/build-release.sh",
        );
        let deb = |extra: &[&str], dir: &Path| -> PathBuf {
            fs::create_dir_all(dir).unwrap();
            let mut cmd = Command::new(env!("CARGO"));
            cmd.args(["deb", "--locked", "--quiet", "--no-build", "--output"])
                .arg(dir)
                .args(extra);
            run(cmd, &format!("cargo deb {extra:?}"));
            let made: Vec<PathBuf> = fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "deb"))
                .collect();
            assert_eq!(made.len(), 1, "one .deb in {}: {made:?}", dir.display());
            made[0].clone()
        };
        let debs = Debs {
            deb: deb(&[], &out),
            upgrade: deb(&["--deb-revision", "2"], &out.join("upgrade")),
        };
        println!(
            "cargo deb: {} ({} bytes) in {:.0?}",
            debs.deb.display(),
            fs::metadata(&debs.deb).unwrap().len(),
            started.elapsed()
        );
        debs
    })
}

// ---------------------------------------------------------------------------------------
// lintian

/// The overrides shipped in the package, as `tag [context]` lines; each must come after a
/// comment saying why.
fn overrides() -> Vec<String> {
    let file = fs::read_to_string(repo().join("packaging/debian/lintian-overrides")).unwrap();
    let mut reason = false;
    let mut lines = Vec::new();
    for line in file.lines() {
        if line.starts_with('#') {
            reason = true;
        } else if line.trim().is_empty() {
            continue;
        } else {
            assert!(
                reason,
                "packaging/debian/lintian-overrides: `{line}` has no comment above it saying why"
            );
            lines.push(line.to_owned());
            reason = false;
        }
    }
    lines
}

#[test]
fn lintian_finds_nothing_beyond_the_documented_overrides() {
    if !prerequisites(
        "lintian on the .deb",
        &[
            cargo_deb(),
            ("lintian", found("lintian"), "apt-get install lintian"),
        ],
    ) {
        return;
    }
    let overridden = overrides();
    let out = Command::new("lintian")
        .args([
            "--display-info",
            "--pedantic",
            "--show-overrides",
            "--tag-display-limit",
            "0",
        ])
        .arg(&debs().deb)
        .output()
        .expect("lintian runs");
    let report = text(&out.stdout);
    println!("lintian:\n{report}{}", text(&out.stderr));
    let mut used = BTreeSet::new();
    for line in report.lines() {
        let (kind, rest) = line.split_once(": ").unwrap_or(("", line));
        // Errors, warnings, and overrides that match nothing or match wrongly.
        let bad = matches!(kind, "E" | "W")
            || rest.contains("unused-override")
            || rest.contains("mismatched-override");
        assert!(
            !bad,
            "lintian: {line}\nfix it, or override it with a reason in \
             packaging/debian/lintian-overrides\n{report}"
        );
        if kind == "O" {
            if let Some(tag) = rest.split_whitespace().nth(1) {
                used.insert(tag.to_owned());
            }
        }
    }
    for o in &overridden {
        let tag = o.split_whitespace().nth(1).unwrap_or_default();
        assert!(
            used.contains(tag),
            "the override `{o}` matched nothing: remove it\n{report}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// The container.

/// systemd booted by systemd-nspawn on a throw-away overlay of `/`; powered off on drop.
struct Container {
    nspawn: Child,
    /// The container's PID 1, as the host sees it.
    leader: u32,
    /// The host directory the overlay's tmpfs is mounted on (inside nspawn's mount
    /// namespace only).
    dir: tempfile::TempDir,
    console: PathBuf,
}

/// Runs inside `unshare -m`: the overlay, the masks, then nspawn. `$1` is the directory.
const BOOT: &str = r#"set -eu
D=$1
mount -t tmpfs -o mode=0700 webntpd-boot "$D"
mkdir "$D/upper" "$D/work" "$D/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$D/upper,workdir=$D/work" "$D/root"
M=$D/root
# Whatever this image starts at boot (time daemons, databases, timers that run apt) stays off.
for w in "$M"/etc/systemd/system/*.wants/* ; do
    n=${w##*/}
    case "$n" in *.target|'*') continue ;; esac
    rm -f "$M/etc/systemd/system/$n"; ln -s /dev/null "$M/etc/systemd/system/$n"
done
for n in chrony.service chronyd.service htpdate.service ntpsec.service ntp.service \
         openntpd.service systemd-timesyncd.service gpsd.service gpsd.socket \
         postgresql.service apt-daily.timer apt-daily-upgrade.timer; do
    rm -f "$M/etc/systemd/system/$n"; ln -s /dev/null "$M/etc/systemd/system/$n"
done
# Container images forbid starting services from maintainer scripts; a real system does not.
rm -f "$M/usr/sbin/policy-rc.d"
exec systemd-nspawn --quiet -D "$M" -b --register=no --keep-unit --private-network
"#;

impl Container {
    fn boot() -> Container {
        let dir = tempfile::Builder::new()
            .prefix("webntpd-boot.")
            .tempdir()
            .unwrap();
        let console = dir.path().with_extension("console");
        let log = fs::File::create(&console).unwrap();
        let nspawn = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", BOOT, "sh"])
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("unshare runs");
        let mut c = Container {
            leader: 0,
            nspawn,
            dir,
            console,
        };
        // nspawn's child in the container's PID namespace is its systemd.
        let pid = c.nspawn.id();
        c.leader = c.wait(Duration::from_secs(30), "the container's systemd", || {
            let children = fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
            children
                .split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok())
                .find(|p| {
                    fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c == "systemd\n")
                })
        });
        let state = c.wait(Duration::from_secs(90), "the boot to finish", || {
            let out = c.run("systemctl is-system-running --wait");
            let state = text(&out.stdout).trim().to_owned();
            matches!(state.as_str(), "running" | "degraded").then_some(state)
        });
        if state == "degraded" {
            println!(
                "booted, degraded:\n{}",
                c.ok("systemctl --failed --no-legend")
            );
        }
        c
    }

    /// Poll `check` every 200 ms until it returns something, failing after `within` with
    /// the end of the console.
    fn wait<T>(&self, within: Duration, what: &str, check: impl FnMut() -> Option<T>) -> T {
        common::wait_for(within, what, || self.console_tail(), check)
    }

    fn console_tail(&self) -> String {
        let all = fs::read_to_string(&self.console).unwrap_or_default();
        let lines: Vec<&str> = all.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Run `script` with `sh -c` inside the container, at most 2 minutes.
    fn run(&self, script: &str) -> Output {
        Command::new("timeout")
            .args([
                "120",
                "nsenter",
                "-t",
                &self.leader.to_string(),
                "-a",
                "-r",
                "-w",
            ])
            .args(["sh", "-c", script])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LANG", "C.UTF-8")
            .env("SYSTEMD_COLORS", "0")
            .env("SYSTEMD_PAGER", "")
            .stdin(Stdio::null())
            .output()
            .expect("nsenter runs")
    }

    /// `script`'s stdout, failing the test when it fails.
    fn ok(&self, script: &str) -> String {
        let out = self.run(script);
        assert!(
            out.status.success(),
            "in the container: {script}\n{}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// A unit's property.
    fn prop(&self, unit: &str, name: &str) -> String {
        self.ok(&format!("systemctl show -P {name} {unit}"))
            .trim()
            .to_owned()
    }

    /// Copy a host file into the container.
    fn copy_in(&self, from: &Path, to: &str) {
        let dest = PathBuf::from(format!("/proc/{}/root{to}", self.leader));
        fs::create_dir_all(dest.parent().unwrap()).unwrap();
        fs::copy(from, &dest).unwrap();
    }

    /// The overlay's upper directory: every file the container wrote.
    fn upper(&self) -> PathBuf {
        PathBuf::from(format!(
            "/proc/{}/root{}/upper",
            self.nspawn.id(),
            self.dir.path().display()
        ))
    }

    /// Until `unit` is active, failing after `within` with its status.
    fn wait_active(&self, unit: &str, within: Duration) {
        self.wait(within, &format!("{unit} active"), || {
            (self.prop(unit, "ActiveState") == "active").then_some(())
        });
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        // SIGTERM asks nspawn to power the container off; its mount namespace, the overlay
        // and the tmpfs go with it.
        let pid = nix::unistd::Pid::from_raw(self.nspawn.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(_)) = self.nspawn.try_wait() {
                let _ = fs::remove_file(&self.console);
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.nspawn.kill();
        let _ = self.nspawn.wait();
    }
}

// ---------------------------------------------------------------------------------------
// The boot test.

const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
/// Where the boot test puts its dynamically linked webntpd, the shifted source.
const SHIFTED_SERVER: &str = "/usr/local/lib/webntpd-boot-test/webntpd";

/// The daemon's configuration in the test: the shifted server, SHM unit 2 (root only) and
/// chronyd's SOCK socket; bursts every 2 s; per-burst lines (debug) in the journal.
const CONFIG: &str = r#"[[source]]
url = "http://127.0.0.1:8123/"
poll = "2s"
samples = 2
timeout = "300ms"

[[output]]
type = "shm"
unit = 2
perm = "0600"

[[output]]
type = "sock"
path = "/run/chrony.webntp.sock"

[log]
level = "debug"
"#;

/// A second source, for the reload: the same server over WebSocket.
const SECOND_SOURCE: &str = r#"
[[source]]
url = "ws://127.0.0.1:8123/"
poll = "2s"
samples = 2
timeout = "300ms"
"#;

/// chronyd reading both outputs, never selecting them (the offsets stay as measured), never
/// touching the clock (-x, and the unit takes CAP_SYS_TIME away).
const CHRONY_CONF: &str = "\
refclock SHM 2 refid WSHM poll 1 filter 1 delay 0.01 precision 1e-3 noselect
refclock SOCK /run/chrony.webntp.sock refid WSCK poll 1 filter 1 delay 0.01 precision 1e-3 noselect
port 0
bindcmdaddress 127.0.0.1
pidfile /run/chrony-test.pid
";

/// `chronyc -c sources` of the chronyd with its command port on `port`: refid -> last
/// sample's offset (s; negative: the local clock is behind the source). Empty until chronyd
/// answers.
fn chrony_offsets(c: &Container, port: u16) -> Vec<(String, f64)> {
    c.run(&format!("chronyc -h 127.0.0.1 -p {port} -c sources"))
        .stdout
        .split(|&b| b == b'\n')
        .filter_map(|l| {
            let l = text(l);
            let f: Vec<&str> = l.split(',').collect();
            Some((f.get(2)?.to_string(), f.get(8)?.parse().ok()?))
        })
        .collect()
}

/// The SHM segments in the container: `ipcs -m` lines with an NTP key.
fn ntp_segments(c: &Container) -> Vec<String> {
    c.ok("ipcs -m")
        .lines()
        .filter(|l| l.starts_with("0x4e5450") || l.starts_with("0x4e5451"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_package_installs_runs_upgrades_and_purges_under_a_booted_systemd() {
    if !prerequisites(
        "the boot test",
        &[
            ("root", is_root(), "run the tests as root"),
            (
                "systemd-nspawn",
                found("systemd-nspawn"),
                "apt-get install systemd-container",
            ),
            cargo_deb(),
            (
                "libfaketime",
                Path::new(LIBFAKETIME).exists(),
                "apt-get install faketime",
            ),
            ("chronyd", found("chronyd"), "apt-get install chrony"),
            (
                "unshare, nsenter",
                found("nsenter"),
                "apt-get install util-linux",
            ),
        ],
    ) {
        return;
    }
    let started = Instant::now();
    let debs = debs();
    let files = package_files(&debs.deb);
    let built = started.elapsed();

    let phase = |what: &str| println!("{:>5.1}s {what}", started.elapsed().as_secs_f64());
    let c = Container::boot();
    let booted = started.elapsed();
    phase("booted");
    // Isolation: the container's SysV IPC is not the host's; it cannot set the clock.
    let host_ipc = fs::read_link("/proc/self/ns/ipc").unwrap();
    let its_ipc = fs::read_link(format!("/proc/{}/ns/ipc", c.leader)).unwrap();
    assert_ne!(
        host_ipc, its_ipc,
        "the container shares the host's IPC namespace"
    );
    let status = fs::read_to_string(format!("/proc/{}/status", c.leader)).unwrap();
    let bounding = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap();
    assert_eq!(bounding & (1 << 25), 0, "the container has CAP_SYS_TIME");
    assert!(
        !c.run("dpkg -s webntpd").status.success(),
        "webntpd is installed on this machine already: the test needs a machine without it"
    );

    phase("installing");
    // Install: the daemon enabled and started, the server only installed. The shipped
    // configuration names placeholders: the daemon runs unsynchronised (or, should
    // check-config ever refuse placeholders, stays failed with 78 rather than looping).
    c.copy_in(&debs.deb, "/var/tmp/boot-test/webntpd.deb");
    c.copy_in(&debs.upgrade, "/var/tmp/boot-test/webntpd-upgrade.deb");
    c.ok("dpkg -i /var/tmp/boot-test/webntpd.deb");
    assert_eq!(c.ok("systemctl is-enabled webntpd").trim(), "enabled");
    assert_eq!(
        c.run("systemctl is-enabled webntpd-server").stdout,
        b"disabled\n"
    );
    assert_eq!(c.prop("webntpd-server", "ActiveState"), "inactive");
    c.wait(
        Duration::from_secs(20),
        "webntpd started on install",
        || match c.prop("webntpd", "ActiveState").as_str() {
            "active" => Some(()),
            "failed" if c.prop("webntpd", "ExecMainStatus") == "78" => Some(()),
            _ => None,
        },
    );
    assert!(c
        .ok("man -w webntpd webntpd.toml")
        .contains("webntpd.toml.5"));
    for completion in [
        "/usr/share/bash-completion/completions/webntpd",
        "/usr/share/zsh/vendor-completions/_webntpd",
        "/usr/share/fish/vendor_completions.d/webntpd.fish",
    ] {
        c.ok(&format!("test -s {completion}"));
    }

    phase("the source");
    // The source: webntpd-server (a dynamic user, the shipped unit) with its clock shifted
    // +0.25 s by a drop-in, on loopback. libfaketime works through LD_PRELOAD, which the
    // shipped binary (static glibc: packaging/build-release.sh) does not read; the drop-in
    // runs this test's own build of webntpd instead, linked dynamically, under the unit's
    // settings as shipped.
    c.copy_in(Path::new(env!("CARGO_BIN_EXE_webntpd")), SHIFTED_SERVER);
    c.ok(&format!(
        "mkdir -p /etc/systemd/system/webntpd-server.service.d && \
         printf '[Service]\\nExecStart=\\nExecStart={SHIFTED_SERVER} serve $WEBNTPD_SERVE_ARGS\\n\
         Environment=LD_PRELOAD={LIBFAKETIME} FAKETIME=+0.25 \
         FAKETIME_DONT_FAKE_MONOTONIC=1\\n' \
           > /etc/systemd/system/webntpd-server.service.d/shift.conf && \
         echo 'WEBNTPD_SERVE_ARGS=--listen=127.0.0.1:8123' > /etc/default/webntpd-server && \
         systemctl daemon-reload && systemctl start webntpd-server"
    ));
    assert_eq!(
        c.prop("webntpd-server", "StatusText"),
        "serving on http://127.0.0.1:8123"
    );
    let server_pid = c.prop("webntpd-server", "MainPID");
    let uid = c.ok(&format!("stat -c %u /proc/{server_pid}"));
    assert_ne!(
        uid.trim(),
        "0",
        "the server runs as a dynamic user, not root"
    );

    // The daemon on the test configuration: the edited conffile, kept through the upgrade.
    write(&c, "/etc/webntpd.toml", CONFIG);
    c.ok("webntpd check-config && systemctl restart webntpd");
    c.wait_active("webntpd", Duration::from_secs(20));
    assert_eq!(c.prop("webntpd", "Type"), "notify");
    let synchronised = |what: &str| {
        c.wait(Duration::from_secs(30), what, || {
            let s = c.prop("webntpd", "StatusText");
            s.contains("offset +0.2").then_some(s)
        })
    };
    let status_text = synchronised("STATUS= with the shifted server's offset");
    let status = c.ok("webntpd status");
    assert!(
        status.contains("http://127.0.0.1:8123/") && status.contains("SHM unit 2"),
        "webntpd status:\n{status}"
    );
    assert!(
        c.ok("systemctl status --no-pager webntpd")
            .contains(&format!("Status: \"{status_text}")),
        "systemctl status shows STATUS="
    );

    phase("chronyd");
    // chronyd, reading SHM unit 2 (which the daemon created, root only) and SOCK.
    write(&c, "/etc/chrony/boot-test.conf", CHRONY_CONF);
    c.ok("systemd-run --unit=chrony-test -p ProtectClock=yes \
          -p CapabilityBoundingSet=~CAP_SYS_TIME \
          /usr/sbin/chronyd -x -d -f /etc/chrony/boot-test.conf");
    let offsets = c.wait(Duration::from_secs(30), "chronyd's samples", || {
        let o = chrony_offsets(&c, 323);
        (o.iter()
            .filter(|(_, off)| (off + 0.25).abs() < 0.005)
            .count()
            == 2)
            .then_some(o)
    });
    println!("chronyc sources: {offsets:?}");
    let segments = ntp_segments(&c);
    assert_eq!(segments.len(), 1, "{segments:?}");
    assert!(segments[0].starts_with("0x4e545032"), "{segments:?}");

    // Structured journal fields.
    let journal = c.ok("journalctl -u webntpd -o json --no-pager");
    assert!(
        journal
            .lines()
            .any(|l| l.contains("\"SOURCE_URL\":\"http://127.0.0.1:8123/\"")
                && l.contains("\"OFFSET_NS\":\"2")),
        "no journal entry with SOURCE_URL and OFFSET_NS"
    );

    phase("reload");
    // Reload: a good file applies, a broken one fails the reload and the old one stays.
    let pid = c.prop("webntpd", "MainPID");
    write(&c, "/etc/webntpd.toml", &format!("{CONFIG}{SECOND_SOURCE}"));
    c.ok("systemctl reload webntpd");
    let sources = |c: &Container| {
        let out = c.run("webntpd status --json");
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .ok()
            .and_then(|s| s["sources"].as_array().map(Vec::len))
    };
    c.wait(
        Duration::from_secs(10),
        "two sources after the reload",
        || (sources(&c) == Some(2)).then_some(()),
    );
    write(
        &c,
        "/etc/webntpd.toml",
        &format!("{CONFIG}{SECOND_SOURCE}bogus_key = 1\n"),
    );
    let refused = c.run("systemctl reload webntpd");
    assert!(!refused.status.success(), "a broken file was reloaded");
    assert_eq!(c.prop("webntpd", "MainPID"), pid);
    assert_eq!(c.prop("webntpd", "ActiveState"), "active");
    assert_eq!(sources(&c), Some(2));
    assert!(c
        .ok("journalctl -u webntpd --no-pager")
        .contains("unknown key `bogus_key`"));

    phase("broken file at start");
    // A broken file at start: failed with 78, and no restart loop.
    let restarts = c.prop("webntpd", "NRestarts");
    assert!(!c.run("systemctl restart webntpd").status.success());
    c.wait(Duration::from_secs(10), "webntpd failed", || {
        (c.prop("webntpd", "ActiveState") == "failed").then_some(())
    });
    assert_eq!(c.prop("webntpd", "ExecMainStatus"), "78");
    std::thread::sleep(Duration::from_secs(7)); // RestartSec=5s, and then some
    assert_eq!(c.prop("webntpd", "ActiveState"), "failed");
    assert_eq!(
        c.prop("webntpd", "NRestarts"),
        restarts,
        "restarted on a broken file"
    );

    phase("watchdog");
    // The watchdog: a stopped daemon is killed and restarted (a short WatchdogSec= through
    // a drop-in keeps this quick).
    write(
        &c,
        "/etc/systemd/system/webntpd.service.d/boot-test.conf",
        "[Service]\nWatchdogSec=2s\nTimeoutAbortSec=2s\nRestartSec=1s\nLimitCORE=0\n",
    );
    write(&c, "/etc/webntpd.toml", CONFIG);
    c.ok("systemctl daemon-reload && systemctl reset-failed webntpd && systemctl start webntpd");
    c.wait_active("webntpd", Duration::from_secs(20));
    let (pid, restarts) = (c.prop("webntpd", "MainPID"), c.prop("webntpd", "NRestarts"));
    c.ok(&format!("kill -STOP {pid}"));
    c.wait(Duration::from_secs(30), "a watchdog restart", || {
        let now = c.prop("webntpd", "MainPID");
        (now != pid && now != "0" && c.prop("webntpd", "ActiveState") == "active").then_some(())
    });
    assert_ne!(c.prop("webntpd", "NRestarts"), restarts);
    assert!(c
        .ok("journalctl -u webntpd --no-pager")
        .contains("Watchdog timeout"));
    // The new daemon took the killed one's segment over, and chronyd still reads it.
    synchronised("STATUS= after the watchdog restart");
    assert_eq!(ntp_segments(&c).len(), 1);

    phase("non-root");
    // Without root: the daemon as a dynamic user (a drop-in) writes an SHM unit it creates
    // (its own, 0600); chronyd, root, started after it, reads it.
    write(
        &c,
        "/etc/systemd/system/webntpd.service.d/non-root.conf",
        "[Service]\nDynamicUser=yes\n",
    );
    write(
        &c,
        "/etc/webntpd.toml",
        &CONFIG.replace("unit = 2", "unit = 3").replace(
            "[[output]]\ntype = \"sock\"\npath = \"/run/chrony.webntp.sock\"\n",
            "",
        ),
    );
    c.ok("systemctl daemon-reload && systemctl restart webntpd");
    c.wait_active("webntpd", Duration::from_secs(20));
    let pid = c.prop("webntpd", "MainPID");
    let uid = c.ok(&format!("stat -c %u /proc/{pid}")).trim().to_owned();
    assert_ne!(uid, "0", "DynamicUser=yes");
    synchronised("STATUS= as a dynamic user");
    // /proc/sysvipc/shm: key (decimal) ... uid in the 8th column.
    let owner = c
        .ok("cat /proc/sysvipc/shm")
        .lines()
        .find(|l| l.split_whitespace().next() == Some(&0x4e54_5033u32.to_string()))
        .and_then(|l| l.split_whitespace().nth(7).map(str::to_owned));
    assert_eq!(
        owner.as_deref(),
        Some(uid.as_str()),
        "unit 3 is the daemon's"
    );
    write(
        &c,
        "/etc/chrony/boot-test-3.conf",
        "refclock SHM 3 refid WSH3 poll 1 filter 1 delay 0.01 precision 1e-3 noselect\n\
         port 0\nbindcmdaddress 127.0.0.1\ncmdport 324\npidfile /run/chrony-test-3.pid\n",
    );
    c.ok("systemd-run --unit=chrony-test-3 -p ProtectClock=yes \
          -p CapabilityBoundingSet=~CAP_SYS_TIME \
          /usr/sbin/chronyd -x -d -f /etc/chrony/boot-test-3.conf");
    c.wait(
        Duration::from_secs(30),
        "chronyd reading the dynamic user's unit",
        || {
            chrony_offsets(&c, 324)
                .iter()
                .any(|(_, off)| (off + 0.25).abs() < 0.005)
                .then_some(())
        },
    );
    c.ok(
        "systemctl stop chrony-test-3 && rm /etc/systemd/system/webntpd.service.d/non-root.conf \
          /etc/chrony/boot-test-3.conf && systemctl daemon-reload",
    );
    write(&c, "/etc/webntpd.toml", CONFIG);
    c.ok("systemctl restart webntpd");
    c.wait_active("webntpd", Duration::from_secs(20));
    synchronised("STATUS= as root again");
    // Stopped with no reader attached, the dynamic user's segment went with it.
    let segments = ntp_segments(&c);
    assert_eq!(segments.len(), 1, "{segments:?}");

    phase("upgrade");
    // Upgrade: the edited /etc/webntpd.toml stays, the daemon is restarted.
    let pid = c.prop("webntpd", "MainPID");
    // As the README says to: apt, with the file's path.
    c.ok("DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
          /var/tmp/boot-test/webntpd-upgrade.deb");
    assert_eq!(
        c.ok("dpkg-query -W -f '${Version}' webntpd"),
        debs.upgrade
            .file_name()
            .unwrap()
            .to_string_lossy()
            .split('_')
            .nth(1)
            .unwrap()
    );
    assert_eq!(
        c.ok("cat /etc/webntpd.toml"),
        CONFIG,
        "the upgrade replaced the edited file"
    );
    c.wait_active("webntpd", Duration::from_secs(20));
    assert_ne!(
        c.prop("webntpd", "MainPID"),
        pid,
        "not restarted by the upgrade"
    );
    synchronised("STATUS= after the upgrade");

    phase("stop");
    // A clean stop; chronyd is still attached, so the segment stays (it is chronyd's now).
    c.ok("systemctl stop webntpd");
    assert_eq!(c.prop("webntpd", "Result"), "success");
    assert_eq!(c.prop("webntpd", "ExecMainStatus"), "0");
    let segments = ntp_segments(&c);
    assert_eq!(segments.len(), 1, "{segments:?}");

    phase("purge");
    // Purge, once chronyd is gone: the running daemon is stopped and removes its segment;
    // nothing of the package is left.
    c.ok("systemctl stop chrony-test && systemctl start webntpd");
    c.wait_active("webntpd", Duration::from_secs(20));
    c.ok(&format!(
        "rm -r /etc/systemd/system/webntpd.service.d /etc/systemd/system/webntpd-server.service.d \
          /etc/chrony/boot-test.conf {} && systemctl daemon-reload",
        Path::new(SHIFTED_SERVER).parent().unwrap().display()
    ));
    c.ok("DEBIAN_FRONTEND=noninteractive apt-get purge -y -q webntpd");
    assert!(!c.run("dpkg -s webntpd").status.success());
    assert_eq!(ntp_segments(&c), Vec::<String>::new(), "a segment is left");
    for user in ["webntpd", "webntpd-server"] {
        assert!(
            !c.run(&format!("getent passwd {user}")).status.success(),
            "user {user} is left"
        );
    }
    for path in files.iter().map(String::as_str).chain([
        "/var/lib/webntpd",
        "/var/lib/webntpd-server",
        "/var/lib/private/webntpd-server",
        "/var/lib/private/webntpd",
        "/run/webntpd",
        "/etc/systemd/system/multi-user.target.wants/webntpd.service",
    ]) {
        assert!(
            !c.run(&format!("test -e {path} || test -L {path}"))
                .status
                .success(),
            "{path} is left after the purge"
        );
    }
    // Nothing written anywhere whose name says webntpd, but for the copies of the package.
    c.ok("rm -r /var/tmp/boot-test");
    let left = named_webntpd(&c.upper());
    assert!(left.is_empty(), "left after the purge: {left:?}");
    assert!(
        c.run("systemctl list-units --all --plain --no-legend 'webntpd*'")
            .stdout
            .is_empty(),
        "units left"
    );
    println!(
        "boot test: package built in {built:.0?}, booted at {booted:.0?}, done in {:.0?}",
        started.elapsed()
    );
}

/// Write `contents` to `path` inside the container.
fn write(c: &Container, path: &str, contents: &str) {
    let dest = PathBuf::from(format!("/proc/{}/root{path}", c.leader));
    fs::create_dir_all(dest.parent().unwrap()).unwrap();
    fs::write(dest, contents).unwrap();
}

/// The files (not directories) the package installs, as absolute paths.
fn package_files(deb: &Path) -> Vec<String> {
    let out = Command::new("dpkg-deb")
        .arg("-c")
        .arg(deb)
        .output()
        .unwrap();
    assert!(out.status.success());
    text(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('d'))
        .filter_map(|l| l.split_whitespace().last())
        .map(|p| p.trim_start_matches('.').to_owned())
        .collect()
}

/// Everything under `dir` whose name contains "webntpd".
fn named_webntpd(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if e.file_name().to_string_lossy().contains("webntpd") {
                found.push(path.clone());
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path);
            }
        }
    }
    found
}
