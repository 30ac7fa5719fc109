//! The generated files in `packaging/` (man pages, shell completions) stay in step with the
//! command line and the configuration reader: each is generated again in memory and
//! compared with the committed one. After changing `src/cli.rs`, a serve flag or the
//! configuration schema, regenerate them with
//!
//! ```text
//! WEBNTPD_REGENERATE=1 cargo test --test it docs::
//! ```
//!
//! and commit the result.

#[path = "docs/generate.rs"]
mod generate;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use webntpd::config::{Config, ConfigError};

const REGENERATE: &str = "WEBNTPD_REGENERATE=1 cargo test --test it docs::";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_generated_files_are_up_to_date() {
    let regenerate = std::env::var_os("WEBNTPD_REGENERATE").is_some_and(|v| v == "1");
    let mut stale = Vec::new();
    for (path, contents) in generate::all() {
        let file = repo().join(path);
        if std::fs::read(&file).ok().as_deref() == Some(contents.as_slice()) {
            continue;
        }
        if regenerate {
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(&file, &contents).unwrap();
            println!("regenerated {path}");
        } else {
            stale.push(path);
        }
    }
    assert!(
        stale.is_empty(),
        "{} out of date with src/cli.rs and the schema in tests/it/docs/generate.rs: run \
         `{REGENERATE}` to regenerate, then commit the result",
        stale.join(", ")
    );
}

/// The keys the reader takes in `table` (`""`: the top level), from its own message about an
/// unknown key: "unknown key `zzqx` in [selection], expected one of `a`, `b`".
fn accepted_keys(table: &str) -> BTreeSet<String> {
    let text = match table {
        "" => "zzqx = 1\n".to_owned(),
        "source" => "[[source]]\nurl = \"https://a.example.net/\"\nzzqx = 1\n".to_owned(),
        "output" => "[[output]]\ntype = \"sock\"\npath = \"/run/x.sock\"\nzzqx = 1\n".to_owned(),
        t => format!("[{t}]\nzzqx = 1\n"),
    };
    let errors = match Config::parse(&text, "keys.toml") {
        Err(ConfigError::Invalid { errors, .. }) => errors,
        other => panic!("[{table}] with an unknown key was not refused: {other:?}"),
    };
    let message = errors
        .iter()
        .map(|e| e.message.clone())
        .find(|m| m.starts_with("unknown key `zzqx`"))
        .unwrap_or_else(|| panic!("no message about the unknown key in [{table}]: {errors:?}"));
    let (_, expected) = message
        .split_once("expected")
        .unwrap_or_else(|| panic!("the message no longer lists the keys: {message}"));
    expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_man_page_documents_exactly_the_keys_the_reader_accepts() {
    let tables: BTreeSet<String> = generate::SCHEMA.iter().map(|t| t.name.to_owned()).collect();
    assert_eq!(
        tables,
        accepted_keys(""),
        "the tables of webntpd.toml(5) (SCHEMA in tests/it/docs/generate.rs) and the reader's"
    );
    for table in generate::SCHEMA {
        let documented: BTreeSet<String> = if table.name == "server" {
            generate::server_keys()
                .into_iter()
                .map(|(k, ..)| k)
                .collect()
        } else {
            table.keys.iter().map(|k| k.name.to_owned()).collect()
        };
        let accepted = accepted_keys(table.name);
        assert_eq!(
            documented, accepted,
            "{}: the keys webntpd.toml(5) documents (left; SCHEMA in tests/it/docs/generate.rs) \
             and those the reader accepts (right) differ: document the new key and run `{}`",
            table.header, REGENERATE
        );
    }
}

#[test]
fn the_example_configuration_shows_every_key() {
    let example = std::fs::read_to_string(repo().join("config/webntpd.toml")).unwrap();
    let shown = |key: &str| {
        example.lines().any(|l| {
            let l = l.trim_start_matches('#').trim_start();
            l.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
    };
    for table in generate::SCHEMA {
        for key in accepted_keys(table.name) {
            assert!(
                shown(&key),
                "config/webntpd.toml does not show `{key}` of {} (as `{key} = ...` or \
                 `#{key} = ...`)",
                table.header
            );
        }
    }
}

#[test]
fn the_man_page_example_is_a_working_configuration() {
    if let Err(e) = Config::parse(generate::EXAMPLE, "webntpd.toml(5)") {
        panic!("the EXAMPLE of webntpd.toml(5) is refused: {e}");
    }
}

#[test]
fn every_subcommand_is_in_the_man_page() {
    let page = generate::webntpd_8();
    for sub in ["serve", "query", "check-config", "run", "status"] {
        assert!(
            page.contains(&format!(".SS \"webntpd {sub}\"")),
            "no section for webntpd {sub}"
        );
    }
    // Every flag of every subcommand.
    use clap::CommandFactory;
    let mut cmd = webntpd::cli::Cli::command();
    cmd.build();
    for sub in cmd.get_subcommands() {
        for arg in sub.get_arguments().filter(|a| !a.is_hide_set()) {
            if let Some(long) = arg.get_long() {
                assert!(
                    page.contains(&format!("\\-\\-{}", long.replace('-', "\\-"))),
                    "--{long} of {} is not in webntpd(8)",
                    sub.get_name()
                );
            }
        }
    }
}

/// groff, as man and lintian run it, finds nothing to warn about.
#[test]
fn the_man_pages_format_without_warnings() {
    if Command::new("groff").arg("--version").output().is_err() {
        println!("skipped: groff is not installed (package groff-base)");
        return;
    }
    for page in ["packaging/man/webntpd.8", "packaging/man/webntpd.toml.5"] {
        let out = Command::new("groff")
            .args(["-man", "-ww", "-z", "-Tutf8", "-t"])
            .arg(repo().join(page))
            .env("LC_ALL", "C.UTF-8")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.trim().is_empty(),
            "{page}: {stderr}"
        );
    }
}
