//! `webntpd check-config`: what it prints and the exit codes scripts and unit files rely on.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::binary;

fn check_config(args: &[&str]) -> Output {
    Command::new(binary())
        .arg("check-config")
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

/// A configuration file holding `contents`, in a directory removed on drop.
fn file_with(contents: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("webntpd.toml");
    std::fs::write(&path, contents).unwrap();
    (dir, path)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn shipped(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("config")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn a_valid_file_prints_ok_with_a_summary_and_exits_0() {
    let demo = shipped("demo.toml");
    let o = check_config(&["-c", &demo]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stdout),
        format!("{demo}: OK (3 sources, 1 output, server on http://127.0.0.1:8123)\n")
    );
    assert_eq!(text(&o.stderr), "");
    let example = shipped("webntpd.toml");
    let o = check_config(&["--config", &example]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(text(&o.stdout).starts_with(&format!("{example}: OK (3 sources")));
}

#[test]
fn warnings_are_printed_and_do_not_fail() {
    let (_dir, path) = file_with(
        "[[source]]\nurl = \"https://a.example/\"\n[[output]]\ntype = \"shm\"\nunit = 0\n",
    );
    let o = check_config(&["-c", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(
        err.contains(&format!(
            "{} line 5, column 8: warning: SHM unit 0",
            path.display()
        )),
        "{err}"
    );
    assert!(text(&o.stdout).contains(": OK (1 source, 1 output, no server)"));
}

#[test]
fn errors_are_printed_with_line_and_column_and_exit_78() {
    let (_dir, path) = file_with(
        "[[source]]\nurl = \"https://a.example/\"\npoll = \"10s\"\n\n[[output]]\ntype = \"shm\"\n\
         unit = 2\nperm = \"0600\"\n[[output]]\ntype = \"shm\"\nunit = 2\nperm = \"0600\"\n",
    );
    let o = check_config(&["-c", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(78));
    assert_eq!(text(&o.stdout), "");
    let err = text(&o.stderr);
    // The one source draws warnings too (alone; a placeholder name); the errors follow
    // them, in file order.
    let (warnings, lines): (Vec<&str>, Vec<&str>) =
        err.lines().partition(|l| l.contains(": warning: "));
    assert_eq!(lines.len(), 2, "{err}");
    assert_eq!(warnings.len(), 2, "{err}");
    assert!(
        warnings[0].contains("one selectable source decides alone"),
        "{err}"
    );
    assert!(
        warnings[1].contains("https://a.example/ names example, a name reserved"),
        "{err}"
    );
    let p = path.display();
    assert!(
        lines[0].starts_with(&format!(
            "{p} line 3, column 8: poll (10s) is shorter than a burst"
        )),
        "{err}"
    );
    assert!(
        lines[1].starts_with(&format!(
            "{p} line 11, column 8: SHM unit 2 is already written"
        )),
        "{err}"
    );

    // With an output, so that the file draws no warning besides the error.
    std::fs::write(
        &path,
        "[[source]]\nurll = \"https://a.example/\"\n[[output]]\ntype = \"shm\"\nunit = 2\n\
         perm = \"0600\"\n",
    )
    .unwrap();
    let o = check_config(&["-c", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(78));
    assert_eq!(
        text(&o.stderr),
        format!("{p} line 2, column 1: unknown key `urll` in [[source]], expected `url`\n")
    );
}

#[test]
fn a_missing_file_exits_66_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.toml");
    let o = check_config(&["-c", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(66));
    let err = text(&o.stderr);
    assert!(
        err.starts_with(&format!("cannot read {}: ", path.display())),
        "{err}"
    );
}

#[test]
fn the_default_path_is_etc_webntpd_toml() {
    let o = Command::new(binary())
        .args(["check-config", "--help"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert!(text(&o.stdout).contains("/etc/webntpd.toml"));
}

#[test]
fn every_error_is_printed_in_one_run_in_file_order() {
    // A top-level unknown key first, then errors inside tables: serde alone stops at one.
    let (_dir, path) = file_with(
        "verbose = true\n[[source]]\nurl = \"https://a.example/\"\ntimeout = 5\nurll = 1\n\
         [log]\nlevel = \"inf\"\n[selection]\nmin_sources = 0\n",
    );
    let o = check_config(&["-c", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(78));
    let err = text(&o.stderr);
    let p = path.display();
    let expected = [
        format!("{p} line 1, column 1: unknown key `verbose` in the top level"),
        format!("{p} line 4, column 11: `timeout` in [[source]]: invalid type"),
        format!("{p} line 5, column 1: unknown key `urll` in [[source]], expected `url`"),
        format!("{p} line 7, column 9: `level` in [log]: unknown value `inf`, expected `info`"),
        format!("{p} line 9, column 15: min_sources = 0"),
    ];
    // Warnings come first, as for a file that parses ("no [[output]]" here).
    let lines: Vec<&str> = err.lines().filter(|l| !l.contains(": warning: ")).collect();
    assert_eq!(lines.len(), expected.len(), "{err}");
    for (line, want) in lines.iter().zip(&expected) {
        assert!(line.starts_with(want.as_str()), "`{want}` in:\n{err}");
    }
}
