//! The configuration parser (src/config/mod.rs `Config::parse`): text in, a validated
//! configuration and warnings, or every error, out. Touches no file.
//!
//! Checked: no panic on any text; every diagnostic formats, names the path given and, when it
//! has a place, a line within the text (or just past its end) and a column from 1; an accepted
//! configuration summarises; parsing is deterministic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use webntpd::config::{Config, ConfigError, Diagnostic};

const PATH: &str = "/fuzz/webntpd.toml";

fn check_diagnostic(d: &Diagnostic, lines: usize) {
    assert_eq!(d.path.to_str(), Some(PATH));
    if let Some(l) = d.location {
        assert!(
            l.line >= 1 && l.line <= lines + 1,
            "line {} of {lines}: {d}",
            l.line
        );
        assert!(l.column >= 1, "column {}: {d}", l.column);
    }
    let shown = d.to_string();
    assert!(shown.starts_with(PATH), "{shown}");
    let _ = d.as_warning();
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lines = text.split('\n').count();
    let first = Config::parse(text, PATH);
    match &first {
        Ok(loaded) => {
            let _ = loaded.config.summary();
            for w in &loaded.warnings {
                check_diagnostic(w, lines);
            }
        }
        Err(ConfigError::Invalid { errors, warnings }) => {
            assert!(!errors.is_empty(), "invalid without an error");
            for d in errors.iter().chain(warnings) {
                check_diagnostic(d, lines);
            }
        }
        Err(e @ ConfigError::Read { .. }) => panic!("parse read a file: {e}"),
    }
    let _ = first.as_ref().map_err(ToString::to_string);
    // Deterministic: the same text, the same answer.
    let again = Config::parse(text, PATH);
    match (&first, &again) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a.config, b.config);
            assert_eq!(a.warnings, b.warnings);
        }
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        _ => panic!("two parses of the same text disagree"),
    }
});
