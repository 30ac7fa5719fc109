//! What ships besides the binary: the systemd unit, the settings file, the install script.

mod common;

use std::path::Path;
use std::process::Command;

use common::binary;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `systemd-analyze verify` exits 0 even on unknown keys and bad values, so any word on
/// stderr counts as a failure.
fn assert_unit_verifies(unit: &Path) {
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(unit)
        .output()
        .expect("systemd-analyze runs (package systemd)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify {}: {stderr}",
        unit.display()
    );
}

/// Fail with its stderr unless `cmd` succeeds.
fn assert_succeeds(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn install_script_installs_and_keeps_local_settings() {
    let dest = tempfile::tempdir().unwrap();
    let run = || {
        assert_succeeds(
            Command::new("sh")
                .arg(repo().join("packaging/install.sh"))
                .env("DESTDIR", dest.path())
                .env("BIN", binary()),
        )
    };
    run();
    let d = dest.path();
    for f in [
        "usr/bin/webntpd",
        "lib/systemd/system/webntpd-server.service",
        "lib/systemd/system/webntpd.service",
        "etc/default/webntpd-server",
        "etc/webntpd.toml",
        "usr/share/doc/webntpd/README.md",
    ] {
        assert!(d.join(f).is_file(), "{f} installed");
    }
    let out = Command::new(d.join("usr/bin/webntpd"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("webntpd "));

    // An administrator's edits survive a reinstall.
    let settings = d.join("etc/default/webntpd-server");
    std::fs::write(&settings, "WEBNTPD_SERVE_ARGS=--listen=:9999\n").unwrap();
    run();
    assert_eq!(
        std::fs::read_to_string(&settings).unwrap(),
        "WEBNTPD_SERVE_ARGS=--listen=:9999\n"
    );

    // The installed units point at the installed binary, and systemd accepts them.
    for (unit, exec) in [
        (
            "webntpd-server.service",
            "ExecStart=/usr/bin/webntpd serve $WEBNTPD_SERVE_ARGS",
        ),
        (
            "webntpd.service",
            "ExecStart=/usr/bin/webntpd run -c /etc/webntpd.toml",
        ),
    ] {
        let text = std::fs::read_to_string(d.join("lib/systemd/system").join(unit)).unwrap();
        assert!(text.contains(exec), "{unit}: {exec}");
        let check = d.join(unit);
        std::fs::write(
            &check,
            text.replace("/usr/bin/webntpd", &binary().to_string_lossy()),
        )
        .unwrap();
        assert_unit_verifies(&check);
    }
    // The installed configuration is the documented example, and it is valid.
    assert_succeeds(
        Command::new(binary())
            .args(["check-config", "-c"])
            .arg(d.join("etc/webntpd.toml")),
    );
}

#[test]
fn the_daemon_unit_is_a_notify_service_with_a_watchdog() {
    let unit = std::fs::read_to_string(repo().join("systemd/webntpd.service")).unwrap();
    for line in [
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "RuntimeDirectory=webntpd",
    ] {
        assert!(unit.lines().any(|l| l.starts_with(line)), "{line}");
    }
    // SHM readers share the host's IPC namespace: the unit must not hide it.
    assert!(!unit.contains("PrivateIPC=yes"));
}

#[test]
fn install_script_without_a_build_says_how_to_build() {
    let dest = tempfile::tempdir().unwrap();
    let out = Command::new("sh")
        .arg(repo().join("packaging/install.sh"))
        .env("DESTDIR", dest.path())
        .env("BIN", dest.path().join("nope"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(66));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cargo build --release"));
}

#[test]
fn every_flag_the_settings_file_documents_exists() {
    let settings = std::fs::read_to_string(repo().join("config/webntpd-server.default")).unwrap();
    let help = Command::new(binary())
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    let mut seen = 0;
    for word in settings.split(|c: char| c.is_whitespace() || c == '"' || c == '=') {
        if let Some(flag) = word.strip_prefix("--") {
            let flag: String = flag
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            if flag.is_empty() {
                continue;
            }
            seen += 1;
            assert!(
                help.contains(&format!("--{flag}")),
                "--{flag} is documented but not a flag"
            );
        }
    }
    assert!(seen >= 10, "found only {seen} flags in the settings file");
}
