//! What ships besides the binary: the systemd units, the settings file, the install script,
//! the Debian copyright file.

use std::path::Path;
use std::process::Command;

use crate::common::binary;

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
        "usr/share/doc/webntpd/docs/operating.md",
        "usr/share/doc/webntpd/docs/protocol.md",
        "usr/share/doc/webntpd/docs/architecture.md",
        "usr/share/man/man8/webntpd.8",
        "usr/share/man/man5/webntpd.toml.5",
        "usr/share/bash-completion/completions/webntpd",
        "usr/share/zsh/site-functions/_webntpd",
        "usr/share/fish/vendor_completions.d/webntpd.fish",
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
    let lines: Vec<&str> = unit.lines().collect();
    for line in [
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "RuntimeDirectory=webntpd",
        "StateDirectory=webntpd",
    ] {
        assert!(lines.iter().any(|l| l.starts_with(line)), "{line}");
    }
    // A reload validates before it signals, so a broken file fails `systemctl reload`.
    let check = "ExecReload=/usr/bin/webntpd check-config -c /etc/webntpd.toml";
    let hup = "ExecReload=/bin/kill -HUP $MAINPID";
    let at = |l: &str| lines.iter().position(|x| *x == l);
    assert!(
        matches!((at(check), at(hup)), (Some(c), Some(h)) if c < h),
        "{check} before {hup}"
    );
    // No ExecStartPre: its failure would restart the unit whatever RestartPreventExitStatus
    // says (that looks only at the main process); the daemon validates and exits 78 itself.
    assert!(!unit.contains("ExecStartPre"));
    // SHM readers share the host's IPC namespace: the unit must not hide it.
    assert!(!unit.contains("PrivateIPC=yes"));
}

#[test]
fn both_units_stay_failed_on_configuration_errors_and_keep_their_own_state() {
    let mut states = Vec::new();
    for unit in ["webntpd.service", "webntpd-server.service"] {
        let text = std::fs::read_to_string(repo().join("systemd").join(unit)).unwrap();
        let prevent = text
            .lines()
            .find_map(|l| l.strip_prefix("RestartPreventExitStatus="))
            .unwrap_or_else(|| panic!("{unit}: no RestartPreventExitStatus="));
        for code in ["64", "66", "78"] {
            assert!(
                prevent.split_whitespace().any(|c| c == code),
                "{unit}: {code}"
            );
        }
        let state = text
            .lines()
            .find_map(|l| l.strip_prefix("StateDirectory="))
            .unwrap_or_else(|| panic!("{unit}: no StateDirectory="));
        states.push(state.to_string());
    }
    assert_ne!(
        states[0], states[1],
        "each unit has a state directory of its own"
    );
}

/// `systemd-analyze security --offline=true`'s overall exposure of `unit`.
fn exposure(unit: &Path) -> f64 {
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(unit)
        .output()
        .expect("systemd-analyze runs (package systemd)");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no exposure in: {text}"));
    line.split(':')
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("exposure not a number: {line}"))
}

#[test]
fn both_units_are_sandboxed_to_an_exposure_of_at_most_1_5() {
    for unit in ["webntpd.service", "webntpd-server.service"] {
        let e = exposure(&repo().join("systemd").join(unit));
        assert!(e <= 1.5, "{unit}: exposure {e}, the bound is 1.5");
    }
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

/// Whether a crate under `license` (an SPDX expression) is covered by the copyright file's
/// `Files: vendor/*` paragraph, which says MIT: it is MIT, or offers MIT as one choice.
fn covered_by_mit(license: &str) -> bool {
    license == "MIT" || (license.contains("MIT") && !license.contains("AND"))
}

#[test]
fn the_copyright_file_covers_every_crate_linked_in() {
    let copyright = std::fs::read_to_string(repo().join("packaging/debian/copyright")).unwrap();
    let out = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--locked",
            "--offline",
            "-e",
            "normal",
            "--prefix",
            "none",
            "-f",
            "{p}|{l}",
        ])
        .current_dir(repo())
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    let mut crates = 0;
    for line in tree.lines() {
        let Some((package, license)) = line.split_once('|') else {
            continue;
        };
        let name = package.split_whitespace().next().unwrap_or_default();
        let license = license.trim_end_matches(" (*)").trim();
        crates += 1;
        if name == "webntpd" || covered_by_mit(license) {
            continue;
        }
        let paragraph = copyright
            .split("\n\n")
            .find(|p| {
                p.lines().next().is_some_and(|l| {
                    l.starts_with("Files:")
                        && l.split_whitespace()
                            .any(|f| f == format!("vendor/{name}/*"))
                })
            })
            .unwrap_or_else(|| {
                panic!(
                    "packaging/debian/copyright has no `Files: vendor/{name}/*` paragraph for \
                     {name}, which is under {license} (not MIT, nor MIT as a choice)"
                )
            });
        // One licence of each AND term is named, and its text is in the file.
        for term in license.split(" AND ") {
            let choices: Vec<&str> = term
                .split(" OR ")
                .map(|c| c.trim_matches(|c: char| c == '(' || c == ')' || c == ' '))
                .collect();
            assert!(
                choices.iter().any(|id| paragraph.contains(id)
                    && copyright.contains(&format!("\nLicense: {id}\n"))),
                "the copyright paragraph for {name} names none of {choices:?} with a \
                 License: paragraph ({license})"
            );
        }
    }
    assert!(
        crates > 50,
        "only {crates} crates in cargo tree's output:\n{tree}"
    );
    // Crates that build C code of another licence than their own into the binary.
    for (name, files, license) in [(
        "tikv-jemalloc-sys",
        "vendor/tikv-jemalloc-sys/jemalloc/*",
        "BSD-2-Clause",
    )] {
        if !tree.lines().any(|l| l.starts_with(&format!("{name} "))) {
            continue;
        }
        let paragraph = copyright
            .split("\n\n")
            .find(|p| p.starts_with(&format!("Files: {files}")))
            .unwrap_or_else(|| {
                panic!("no `Files: {files}` paragraph for the C code {name} builds")
            });
        assert!(
            paragraph.contains(&format!("License: {license}"))
                && copyright.contains(&format!("\nLicense: {license}\n")),
            "{files}: {license} and its text"
        );
    }
}

/// The .deb's binary links glibc in (packaging/build-release.sh), and glibc loads NSS modules
/// with the system's libc.so.6 at run time: the package pins libc6 to the upstream release of
/// the glibc this machine builds with.
#[test]
fn the_package_pins_libc6_to_the_glibc_it_links_in() {
    let out = Command::new("getconf")
        .arg("GNU_LIBC_VERSION")
        .output()
        .expect("getconf runs");
    let version = String::from_utf8_lossy(&out.stdout);
    let Some(version) = version.trim().strip_prefix("glibc ") else {
        eprintln!("not a glibc system ({version:?}): the pin is not checked");
        return;
    };
    let (major, minor) = version.split_once('.').expect("glibc X.Y");
    let minor: u32 = minor.parse().expect("a glibc minor version");
    let want = format!(
        "depends = \"libc6 (>= {major}.{minor}), libc6 (<< {major}.{})\"",
        minor + 1
    );
    let manifest = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    assert!(
        manifest.lines().any(|l| l.trim() == want),
        "this machine builds with glibc {version}: set `{want}` in [package.metadata.deb] of \
         Cargo.toml (the static binary's NSS modules need that glibc release)"
    );
}

/// Without glibc's static library the release build stops at once, naming the package to
/// install, rather than failing at the link or building another kind of binary.
#[test]
fn the_release_build_without_a_static_glibc_says_what_to_install() {
    let host = Command::new("rustc")
        .arg("-vV")
        .output()
        .expect("rustc runs");
    if !String::from_utf8_lossy(&host.stdout).contains("-linux-gnu") {
        eprintln!("not a glibc host: the script builds the default way there");
        return;
    }
    let out = Command::new(repo().join("packaging/build-release.sh"))
        .env("CC", "false")
        .output()
        .expect("packaging/build-release.sh runs");
    assert_eq!(out.status.code(), Some(69), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("apt-get install libc6-dev"));
}
