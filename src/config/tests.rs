//! Every class of error and warning, with its message and where it points; the defaults; the
//! shipped configurations.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::refclock::OutputConfig;
use crate::server::OriginPolicy;

const PATH: &str = "/etc/webntpd.toml";

/// A source that passes every check, to build on.
const SOURCE: &str = "[[source]]\nurl = \"https://time.example.org/\"\n";

/// Parse, expecting errors: each as (line, column, message).
fn errors(text: &str) -> Vec<(usize, usize, String)> {
    match Config::parse(text, PATH) {
        Ok(loaded) => panic!("expected errors, got {:?}", loaded.config),
        Err(ConfigError::Invalid { errors, .. }) => errors.iter().map(place).collect(),
        Err(e) => panic!("expected Invalid, got {e}"),
    }
}

/// Parse, expecting exactly one error.
fn error(text: &str) -> (usize, usize, String) {
    let mut all = errors(text);
    assert_eq!(all.len(), 1, "one error expected: {all:#?}");
    all.remove(0)
}

/// Parse, expecting exactly one error, at `(line, column)`, whose message contains `parts`.
#[track_caller]
fn fails(text: &str, line: usize, column: usize, parts: &[&str]) {
    assert_at(&error(text), line, column, parts);
}

/// Parse, expecting success. The warning that a URL names a reserved example domain is
/// dropped: these tests write example.org like the documentation does, and that warning has
/// a test of its own ([`placeholder_names_are_warned_about`]).
fn ok(text: &str) -> Loaded {
    match Config::parse(text, PATH) {
        Ok(mut loaded) => {
            loaded.warnings.retain(|w| !is_placeholder_warning(w));
            loaded
        }
        Err(e) => panic!("expected a valid configuration, got:\n{e}"),
    }
}

fn is_placeholder_warning(w: &Diagnostic) -> bool {
    w.message.contains("a name reserved for examples and tests")
}

fn warnings(text: &str) -> Vec<(usize, usize, String)> {
    ok(text).warnings.iter().map(place).collect()
}

fn place(d: &Diagnostic) -> (usize, usize, String) {
    let l = d.location.unwrap_or(Location { line: 0, column: 0 });
    (l.line, l.column, d.message.clone())
}

/// Assert `(line, column)` and that the message contains every one of `parts`.
#[track_caller]
fn assert_at(got: &(usize, usize, String), line: usize, column: usize, parts: &[&str]) {
    assert_eq!((got.0, got.1), (line, column), "place of: {}", got.2);
    for part in parts {
        assert!(got.2.contains(part), "`{part}` in: {}", got.2);
    }
}

// ---------------------------------------------------------------------------------------------
// Syntax, unknown keys, types
// ---------------------------------------------------------------------------------------------

#[test]
fn syntax_errors_say_where() {
    let e = error("[[source]]\nurl = \"https://a.example/\nsamples = 3\n");
    assert_eq!(e.0, 2, "{e:?}");
    assert!(e.2.starts_with("invalid TOML: "), "{}", e.2);
    fails(
        "[server]\nlisten = [\":80\"]\n\n[server]\n",
        4,
        2,
        &["duplicate key", "[[double brackets]]"],
    );
}

#[test]
fn an_unknown_key_names_its_table_and_the_key_meant() {
    let text = format!(
        "{SOURCE}\n[[source]]\nurl = \"https://b.example/\"\n\n# a comment\n\n\n\n[[source]]\n\
         urll = \"https://c.example/\"\n"
    );
    let errors = match Config::parse(&text, PATH) {
        Err(ConfigError::Invalid { errors, .. }) => errors,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        errors[0].to_string(),
        "/etc/webntpd.toml line 12, column 1: unknown key `urll` in [[source]], expected `url`"
    );
    // Case and a transposition are recognised too.
    assert_at(
        &error(&format!("{SOURCE}Samples = 3\n")),
        3,
        1,
        &["unknown key `Samples` in [[source]], expected `samples`"],
    );
    assert_at(
        &error(&format!("{SOURCE}[selection]\nmin_soruces = 2\n")),
        4,
        1,
        &["unknown key `min_soruces` in [selection], expected `min_sources`"],
    );
}

#[test]
fn an_unknown_key_far_from_any_lists_them_all() {
    fails(
        &format!("{SOURCE}[log]\ncolour = true\n"),
        4,
        1,
        &["unknown key `colour` in [log], expected one of `level`, `target`"],
    );
    fails(
        &format!("{SOURCE}verbose = true\n"),
        3,
        1,
        &["unknown key `verbose` in [[source]]", "`url`", "`poll_max`"],
    );
    fails(
        &format!("{SOURCE}[server]\nport = 80\n"),
        4,
        1,
        &["unknown key `port` in [server]", "`listen`"],
    );
    fails(
        &format!("sources = []\n{SOURCE}"),
        1,
        1,
        &["unknown key `sources` in the top level, expected `source`"],
    );
    fails(
        &format!("{SOURCE}[status]\npath = \"/run/x.sock\"\n"),
        4,
        1,
        &["unknown key `path` in [status], expected `socket`"],
    );
}

#[test]
fn unknown_keys_in_inline_and_dotted_tables_are_found() {
    fails(
        "source = [{ url = \"https://a.example/\", sample = 3 }]\n",
        1,
        41,
        &["unknown key `sample` in [[source]], expected `samples`"],
    );
    fails(
        "server.listne = [\":80\"]\n",
        1,
        8,
        &["unknown key `listne` in [server], expected `listen`"],
    );
}

#[test]
fn wrong_types_name_the_key_and_what_was_expected() {
    fails(
        "[[source]]\nurl = 5\n",
        2,
        7,
        &["`url` in [[source]]: invalid type: integer `5`, expected"],
    );
    fails(
        &format!("{SOURCE}timeout = 5\n"),
        3,
        11,
        &[
            "`timeout` in [[source]]",
            "a duration in quotes, such as \"64s\"",
        ],
    );
    fails(
        &format!("{SOURCE}noselect = \"yes\"\n"),
        3,
        12,
        &["`noselect` in [[source]]", "expected a boolean"],
    );
    fails(
        &format!("{SOURCE}[server]\nlisten = [\"127.0.0.1:80\", 81]\n"),
        4,
        27,
        &["`listen` in [server]", "integer `81`"],
    );
    fails(
        &format!("{SOURCE}[selection]\nmin_sources = -1\n"),
        4,
        15,
        &["`min_sources` in [selection]", "-1"],
    );
}

#[test]
fn a_single_bracket_source_says_to_use_two() {
    fails(
        "[source]\nurl = \"https://a.example/\"\n",
        1,
        1,
        &[
            "`source`: invalid type",
            "write [[source]] with two brackets",
        ],
    );
}

#[test]
fn missing_keys_are_named() {
    fails(
        &format!("{SOURCE}\n[[source]]\nsamples = 4\n"),
        4,
        1,
        &["missing key `url` in [[source]]: add `url = ...`"],
    );
}

#[test]
fn bad_values_say_what_is_expected() {
    fails(
        &format!("{SOURCE}poll = \"5 parsecs\"\n"),
        3,
        8,
        &["`poll` in [[source]]", "`5 parsecs`", "e.g. 500ms, 10s"],
    );
    fails(
        &format!("{SOURCE}timeout = \"0s\"\n"),
        3,
        11,
        &["`timeout` in [[source]]", "must be longer than zero"],
    );
    fails(
        &format!("{SOURCE}mode = \"websockets\"\n"),
        3,
        8,
        &["unknown mode `websockets`, expected one of"],
    );
    fails(
        &format!("{SOURCE}mode = \"dat\"\n"),
        3,
        8,
        &["`mode` in [[source]]: unknown mode `dat`, expected `date`"],
    );
    fails(
        &format!("{SOURCE}[log]\nlevel = \"inf\"\n"),
        4,
        9,
        &["`level` in [log]: unknown value `inf`, expected `info`"],
    );
    fails(
        &format!("{SOURCE}[log]\ntarget = \"syslog\"\n"),
        4,
        10,
        &["unknown value `syslog`, expected one of `auto`, `journald`, `stderr`"],
    );
    fails(
        &format!("{SOURCE}[server]\nlisten = \"8080\"\n"),
        4,
        10,
        &["`listen` in [server]", "expected IP:PORT"],
    );
}

// ---------------------------------------------------------------------------------------------
// Every error in one run
// ---------------------------------------------------------------------------------------------

#[test]
fn every_error_is_reported_in_one_run_in_file_order() {
    // An unknown key at the top level no longer hides those in tables; type errors in two
    // tables, unknown keys in an entry and in a table, and a semantic check, all at once.
    let text = "\
verbose = true
[[source]]
url = \"https://a.example/\"
timeout = 5
samples = 65
[[source]]
url = \"https://b.example/\"
sample = 3
mode = \"websockets\"
[[output]]
type = \"shm\"
unit = 300
[server]
listen = [\"127.0.0.1:80\", 81]
port = 80
max_connections = 0
[log]
colour = true
level = 3
";
    let all = errors(text);
    let places: Vec<(usize, usize)> = all.iter().map(|e| (e.0, e.1)).collect();
    assert_eq!(
        places,
        [
            (1, 1),
            (4, 11),
            (5, 11),
            (8, 1),
            (9, 8),
            (12, 8),
            (14, 27),
            (15, 1),
            (16, 19),
            (18, 1),
            (19, 9),
        ],
        "{all:#?}"
    );
    let expected = [
        "unknown key `verbose` in the top level",
        "`timeout` in [[source]]: invalid type: integer `5`",
        "samples = 65: a burst takes 1 to 64 samples",
        "unknown key `sample` in [[source]], expected `samples`",
        "unknown mode `websockets`",
        "unit = 300: SHM units are 0 to 255",
        "`listen` in [server]",
        "unknown key `port` in [server]",
        "max_connections = 0: must be 1 to",
        "unknown key `colour` in [log]",
        "`level` in [log]: wanted string or table",
    ];
    for (got, want) in all.iter().zip(expected) {
        assert!(got.2.contains(want), "`{want}` in: {}", got.2);
    }
}

#[test]
fn several_wrong_values_in_one_entry_are_each_reported() {
    let all = errors(&format!(
        "{SOURCE}timeout = 5\npoll = 64\nnoselect = \"yes\"\nweight = \"heavy\"\n"
    ));
    let keys: Vec<&str> = all
        .iter()
        .map(|e| e.2.split('`').nth(1).unwrap_or(""))
        .collect();
    assert_eq!(keys, ["timeout", "poll", "noselect", "weight"], "{all:#?}");
    assert_eq!(all[0].0, 3);
    assert_eq!(all[3].0, 6);
}

#[test]
fn a_wrong_value_does_not_also_report_what_its_default_would_cause() {
    // poll = 5 is wrong; its default (64 s) against poll_min = 100s would be "poll_min longer
    // than poll", a message about a value the user never wrote.
    fails(
        &format!("{SOURCE}poll = 5\npoll_min = \"100s\"\n"),
        3,
        8,
        &["`poll` in [[source]]", "a duration in quotes"],
    );
    // A wrong url is not also a missing one.
    fails(
        "[[source]]\nurl = 5\n",
        2,
        7,
        &["`url` in [[source]]: invalid type"],
    );
    // Nor a wrong unit a missing one; nor a wrong perm the default's warning.
    let text = format!("{SOURCE}[[output]]\ntype = \"shm\"\nunit = \"two\"\n");
    fails(&text, 5, 8, &["`unit` in [[output]]"]);
    let text = format!("{SOURCE}[[output]]\ntype = \"shm\"\nunit = 2\nperm = true\n");
    let Err(ConfigError::Invalid { errors, warnings }) = Config::parse(&text, PATH) else {
        panic!("perm = true is an error");
    };
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        warnings
            .iter()
            .all(|w| w.message.contains("decides alone") || is_placeholder_warning(w)),
        "{warnings:#?}"
    );
    // A source that cannot be read does not make min_sources unreachable.
    fails(
        &format!("{SOURCE}[[source]]\nurl = 1\n[selection]\nmin_sources = 2\n"),
        4,
        7,
        &["`url` in [[source]]"],
    );
    // A wrong tls_listen is not "no TLS listener".
    fails(
        &format!(
            "{SOURCE}[server]\ntls_listen = 443\ntls_cert = \"/c.pem\"\ntls_key = \"/k.pem\"\n"
        ),
        4,
        14,
        &["`tls_listen` in [server]"],
    );
    // A misspelt required key is one message, not also a missing one.
    fails(
        "[[output]]\ntyp = \"shm\"\nunit = 2\n[[source]]\nurl = \"https://a.example/\"\n",
        2,
        1,
        &["unknown key `typ` in [[output]], expected `type`"],
    );
}

#[test]
fn a_table_that_is_not_a_table_is_one_error_and_the_rest_is_still_read() {
    let all = errors(&format!(
        "server = 5\nlog = \"debug\"\n{SOURCE}samples = 0\n"
    ));
    let places: Vec<(usize, usize)> = all.iter().map(|e| (e.0, e.1)).collect();
    assert_eq!(places, [(1, 10), (2, 7), (5, 11)], "{all:#?}");
    assert!(all[0].2.contains("`server`: invalid type"), "{}", all[0].2);
}

#[test]
fn past_a_hundred_errors_one_line_says_there_are_more() {
    // Found while reading: reading stops, the first hundred in file order are kept.
    let text: String = std::iter::once(SOURCE.to_owned())
        .chain((0..150).map(|i| format!("bad{i} = 1\n")))
        .collect();
    let Err(ConfigError::Invalid { errors, .. }) = Config::parse(&text, PATH) else {
        panic!("150 unknown keys are errors");
    };
    assert_eq!(errors.len(), 101);
    assert_eq!(
        errors[100].to_string(),
        "/etc/webntpd.toml: more errors not shown (webntpd stops reading at 100): fix these \
         first"
    );
    let lines: Vec<_> = errors[..100]
        .iter()
        .map(|e| e.location.map(|l| l.line))
        .collect();
    let expected: Vec<_> = (3..103).map(Some).collect();
    assert_eq!(lines, expected);
    // Found by the checks: all are counted.
    let text: String = (0..150)
        .map(|i| format!("[[source]]\nurl = \"https://s{i}.example/\"\nsamples = 0\n"))
        .collect();
    let Err(ConfigError::Invalid { errors, .. }) = Config::parse(&text, PATH) else {
        panic!("samples = 0 is an error");
    };
    assert_eq!(errors.len(), 101);
    assert_eq!(
        errors[100].to_string(),
        "/etc/webntpd.toml: 50 more errors not shown: fix these first"
    );
    assert_eq!(errors[99].location.map(|l| l.line), Some(3 * 99 + 3));
}

#[test]
fn lines_and_columns_from_the_line_index_are_those_counted_from_the_start() {
    let text = "a = 1\n\nb = \"é€\" # x\n\n[t]\nc = 2";
    let doc = locate::Doc::parse(text).unwrap();
    for offset in 0..=text.len() + 2 {
        assert_eq!(
            doc.location(offset),
            locate::location(text, offset),
            "offset {offset}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Sources
// ---------------------------------------------------------------------------------------------

#[test]
fn defaults() {
    let loaded = ok(SOURCE);
    assert!(loaded.warnings.len() == 1, "{:?}", loaded.warnings); // no output
    let c = loaded.config;
    assert_eq!(c.path, Path::new(PATH));
    let s = &c.sources[0];
    assert_eq!(s.target.host, "time.example.org");
    assert_eq!(
        s.poll,
        Poll {
            interval: Duration::from_secs(64),
            min: Duration::from_secs(64),
            max: Duration::from_secs(1024),
        }
    );
    assert_eq!(s.burst, BurstSettings::default());
    assert_eq!((s.weight, s.noselect), (1.0, false));
    assert!(c.outputs.is_empty() && c.server.is_none());
    assert_eq!(c.selection, SelectionConfig::default());
    assert_eq!(c.log, LogConfig::default());
    assert_eq!(c.status.socket, Path::new(DEFAULT_STATUS_SOCKET));
    assert_eq!(c.metrics, None);
    assert_eq!(c.summary(), "1 source, 0 outputs, no server");
}

#[test]
fn every_source_key_is_read() {
    let c = ok(r#"
        [[source]]
        url = "wss://time.example.org/ws"
        mode = "ws"
        samples = 16
        poll = "128s"
        poll_min = "100s"
        poll_max = "1h"
        timeout = "2s"
        proxy = "http://user:pw@proxy.example.org:3128"
        cacert = "/etc/ca.pem"
        weight = 2
        noselect = true
        rt = false

        [[source]]
        url = "https://a.example/"
        proxy = "none"

        [[output]]
        type = "sock"
        path = "/run/chrony.webntp.sock"
    "#)
    .config;
    let s = &c.sources[0];
    assert_eq!(
        s.poll,
        Poll {
            interval: Duration::from_secs(128),
            min: Duration::from_secs(100),
            max: Duration::from_secs(3600),
        }
    );
    assert_eq!(
        s.burst,
        BurstSettings {
            mode: Mode::Ws,
            samples: 16,
            timeout: Duration::from_secs(2),
            proxy: ProxySetting::Url("http://user:pw@proxy.example.org:3128".into()),
            cacert: vec![PathBuf::from("/etc/ca.pem")],
            rt: false,
        }
    );
    assert_eq!((s.weight, s.noselect), (2.0, true));
    assert_eq!(c.sources[1].burst.proxy, ProxySetting::Off);
    let opts = c.sources[1].burst.client_options().unwrap();
    assert_eq!((opts.samples, opts.use_rt), (8, true));
    assert_eq!(opts.connect.connect_timeout, Duration::from_secs(5));
}

#[test]
fn source_urls_must_parse_and_use_a_supported_scheme() {
    fails(
        "[[source]]\nurl = \"time.example.org\"\n",
        2,
        7,
        &["invalid server URL", "no scheme"],
    );
    fails(
        "[[source]]\nurl = \"ftp://time.example.org/\"\n",
        2,
        7,
        &[
            "unsupported scheme \"ftp\"",
            "use http://, https://, ws:// or wss://",
        ],
    );
    fails(
        "[[source]]\nurl = \"https://\"\n",
        2,
        7,
        &["invalid server URL"],
    );
}

#[test]
fn samples_and_weight_must_be_in_range() {
    fails(
        &format!("{SOURCE}samples = 65\n"),
        3,
        11,
        &["samples = 65: a burst takes 1 to 64 samples"],
    );
    fails(&format!("{SOURCE}samples = 0\n"), 3, 11, &["samples = 0"]);
    fails(
        &format!("{SOURCE}weight = 0\n"),
        3,
        10,
        &["weight = 0: must be a number above 0", "noselect = true"],
    );
    fails(
        &format!("{SOURCE}weight = -1.5\n"),
        3,
        10,
        &["weight = -1.5"],
    );
}

#[test]
fn poll_bounds_must_be_in_order() {
    fails(
        &format!("{SOURCE}poll = \"64s\"\npoll_min = \"20m\"\npoll_max = \"10m\"\n"),
        4,
        12,
        &[
            "poll_min (20m) is longer than poll_max (10m)",
            "lower poll_min or raise poll_max",
        ],
    );
    // poll_max below the default poll.
    fails(
        &format!("{SOURCE}poll_max = \"60s\"\n"),
        3,
        12,
        &[
            "poll (1m 4s, the default) is longer than poll_max (1m)",
            "raise poll_max",
        ],
    );
    fails(
        &format!("{SOURCE}poll = \"2m\"\npoll_min = \"3m\"\n"),
        4,
        12,
        &["poll_min (3m) is longer than poll (2m)"],
    );
    // A poll_min above the default poll_max (16 x poll) says where that number comes from.
    fails(
        &format!("{SOURCE}poll_min = \"1d\"\n"),
        3,
        12,
        &["poll_max (17m 4s, the default)"],
    );
}

#[test]
fn a_poll_shorter_than_a_burst_is_an_error() {
    // 8 samples, 5 s: (8 + 3) x 5 s plus 7 pauses of 40 ms.
    fails(
        &format!("{SOURCE}poll = \"30s\"\n"),
        3,
        8,
        &[
            "poll (30s) is shorter than a burst can take (55s 280ms; 8 samples, timeout 5s",
            "raise poll to at least 56s, or lower samples or timeout",
        ],
    );
    // The error names poll_min when that is what is short.
    fails(
        &format!("{SOURCE}poll_min = \"10s\"\n"),
        3,
        12,
        &["poll_min (10s) is shorter than a burst"],
    );
    // Fewer samples and a shorter timeout make a short poll fine.
    ok(&format!(
        "{SOURCE}poll = \"4s\"\nsamples = 4\ntimeout = \"500ms\"\n"
    ));
    // Date mode: 12 probes, each up to a timeout and a second.
    fails(
        &format!("{SOURCE}mode = \"date\"\n"),
        1,
        1,
        &[
            "poll (1m 4s) is shorter",
            "mode = \"date\"",
            "lower timeout",
        ],
    );
    ok(&format!("{SOURCE}mode = \"date\"\ntimeout = \"2s\"\n"));
}

#[test]
fn proxies_must_parse() {
    fails(
        &format!("{SOURCE}proxy = \"https://proxy.example.org\"\n"),
        3,
        9,
        &[
            "invalid proxy URL",
            "only http:// proxies",
            "write proxy = \"http://HOST:PORT\"",
        ],
    );
    fails(
        &format!("{SOURCE}proxy = \"http://proxy:99999\"\n"),
        3,
        9,
        &["invalid proxy URL"],
    );
    for (written, setting) in [
        ("none", ProxySetting::Off),
        ("direct", ProxySetting::Off),
        ("env", ProxySetting::FromEnv),
    ] {
        let c = ok(&format!("{SOURCE}proxy = \"{written}\"\n")).config;
        assert_eq!(c.sources[0].burst.proxy, setting, "{written}");
    }
}

#[test]
fn the_same_server_twice_is_an_error() {
    fails(
        &format!("{SOURCE}\n[[source]]\nurl = \"HTTPS://Time.Example.org:443/\"\n"),
        5,
        7,
        &["is the same server, measured the same way, as the [[source]] on line 1"],
    );
    // ws mode over an http URL is the same as the ws URL.
    fails(
        "[[source]]\nurl = \"wss://a.example/\"\n[[source]]\nurl = \"https://a.example/\"\n\
         mode = \"ws\"\n",
        4,
        7,
        &["same server"],
    );
    // The same URL measured another way is another source.
    let c = ok(&format!(
        "{SOURCE}[[source]]\nurl = \"https://time.example.org/\"\nmode = \"toh\"\n"
    ));
    assert_eq!(c.config.sources.len(), 2);
}

#[test]
fn source_warnings() {
    let w = warnings(
        "[[source]]\nurl = \"http://time.example.org/\"\n[[source]]\n\
         url = \"https://b.example/\"\nmode = \"date\"\nsamples = 4\ntimeout = \"2s\"\n\
         [[output]]\ntype = \"sock\"\npath = \"/run/c.sock\"\n",
    );
    assert_eq!(w.len(), 3, "{w:#?}");
    assert_at(
        &w[0],
        1,
        1,
        &["two selectable sources cannot outvote each other"],
    );
    assert_at(
        &w[1],
        2,
        7,
        &["http://time.example.org/ is not encrypted", "https://"],
    );
    assert_at(&w[2], 6, 11, &["samples does not apply to mode = \"date\""]);
    // Loopback needs no encryption; one source feeding an output decides alone.
    let w = warnings("[[source]]\nurl = \"ws://127.0.0.1:8123/\"\n[[output]]\ntype = \"sock\"\npath = \"/run/c.sock\"\n");
    assert_eq!(w.len(), 1, "{w:?}");
    assert_at(
        &w[0],
        1,
        1,
        &["one selectable source decides alone", "[[source]]"],
    );
    // Without an output it moves no clock: no warning.
    let w = warnings("[[source]]\nurl = \"ws://127.0.0.1:8123/\"\n[server]\n");
    assert!(w.is_empty(), "{w:?}");
}

#[test]
fn sanity_bounds_are_checked() {
    let three: String = (1..=3)
        .map(|i| format!("[[source]]\nurl = \"https://t{i}.example/\"\n"))
        .collect();
    let c = ok(&three).config;
    assert_eq!(c.sanity, SanityConfig::default());
    assert_eq!(c.sanity.panic_threshold, Duration::from_secs(1000));
    let c = ok(&format!(
        "{three}[sanity]\npanic_threshold = \"1h\"\nallow_startup_step = true\n"
    ));
    assert_eq!(c.config.sanity.panic_threshold, Duration::from_secs(3600));
    assert!(c.config.sanity.allow_startup_step);
    assert!(
        c.warnings
            .iter()
            .any(|w| w.message.contains("allow_startup_step = true")),
        "{:#?}",
        c.warnings
    );
    fails(
        &format!("{three}[sanity]\npanic_threshold = \"500ms\"\n"),
        8,
        19,
        &["panic_threshold", "1s or more"],
    );
    fails(
        &format!("{three}[sanity]\npanic = \"1h\"\n"),
        8,
        1,
        &["unknown key `panic` in [sanity]", "panic_threshold"],
    );
}

// ---------------------------------------------------------------------------------------------
// Outputs
// ---------------------------------------------------------------------------------------------

#[test]
fn outputs_are_read() {
    let c = ok(&format!(
        "{SOURCE}[[output]]\ntype = \"shm\"\nunit = 2\nperm = 0o600\n\
         [[output]]\ntype = \"shm\"\nunit = 3\nperm = \"0640\"\n\
         [[output]]\ntype = \"sock\"\npath = \"/run/chrony.webntp.sock\"\n"
    ))
    .config;
    assert_eq!(
        c.outputs,
        vec![
            OutputConfig::Shm {
                unit: 2,
                perm: Some(0o600)
            },
            OutputConfig::Shm {
                unit: 3,
                perm: Some(0o640)
            },
            OutputConfig::Sock {
                path: "/run/chrony.webntp.sock".into()
            },
        ]
    );
    let default_perm = crate::refclock::shm::default_perm;
    assert_eq!(
        (default_perm(0), default_perm(1), default_perm(2)),
        (0o600, 0o600, 0o666)
    );
}

#[test]
fn a_unit_or_a_socket_used_twice_is_an_error() {
    fails(
        &format!(
            "{SOURCE}[[output]]\ntype = \"shm\"\nunit = 2\nperm = \"0600\"\n\
         [[output]]\ntype = \"shm\"\nunit = 2\nperm = \"0600\"\n"
        ),
        9,
        8,
        &[
            "SHM unit 2 is already written by the [[output]] on line 3",
            "pick another",
        ],
    );
    fails(
        &format!(
            "{SOURCE}[[output]]\ntype = \"sock\"\npath = \"/run/a.sock\"\n\
         [[output]]\ntype = \"sock\"\npath = \"/run/a.sock\"\n"
        ),
        8,
        8,
        &["socket /run/a.sock is already written by the [[output]] on line 3"],
    );
}

#[test]
fn output_keys_must_fit_their_type() {
    let shm = |rest: &str| error(&format!("{SOURCE}[[output]]\ntype = \"shm\"\n{rest}"));
    assert_at(
        &shm(""),
        4,
        8,
        &["missing key `unit` in this shm [[output]]: add unit = 2"],
    );
    assert_at(
        &shm("unit = 256\n"),
        5,
        8,
        &["unit = 256: SHM units are 0 to 255"],
    );
    assert_at(&shm("unit = -1\n"), 5, 8, &["unit = -1"]);
    assert_at(
        &shm("unit = 2\nperm = \"0600\"\npath = \"/x\"\n"),
        7,
        8,
        &["`path` does not apply to type = \"shm\", which takes `unit` and `perm`"],
    );
    assert_at(
        &shm("unit = 2\nperm = 600\n"),
        6,
        8,
        &[
            "perm = 600 is a decimal number",
            "perm = \"0600\" or perm = 0o600",
        ],
    );
    assert_at(
        &shm("unit = 2\nperm = \"rw-------\"\n"),
        6,
        8,
        &["octal permissions"],
    );
    assert_at(
        &shm("unit = 2\nperm = \"01600\"\n"),
        6,
        8,
        &["from \"0600\" to \"0777\""],
    );
    assert_at(
        &shm("unit = 2\nperm = \"0444\"\n"),
        6,
        8,
        &["perm = \"0444\" does not let webntpd (the owner) read and write"],
    );
    let sock = |rest: &str| error(&format!("{SOURCE}[[output]]\ntype = \"sock\"\n{rest}"));
    assert_at(
        &sock(""),
        4,
        8,
        &["missing key `path` in this sock [[output]]"],
    );
    assert_at(
        &sock("path = \"chrony.sock\"\n"),
        5,
        8,
        &["chrony.sock is a relative path"],
    );
    assert_at(
        &sock("path = \"/run/c.sock\"\nunit = 2\n"),
        6,
        8,
        &["`unit` does not apply to type = \"sock\", which takes `path`"],
    );
    fails(
        &format!("{SOURCE}[[output]]\ntype = \"shmem\"\nunit = 2\n"),
        4,
        8,
        &["unknown output type `shmem`, expected `shm`"],
    );
    fails(
        &format!("{SOURCE}[[output]]\ntype = \"ptp\"\n"),
        4,
        8,
        &["unknown output type `ptp`, expected one of `shm`, `sock`, `ntp`"],
    );
    fails(
        &format!("{SOURCE}[[output]]\nunit = 2\n"),
        3,
        1,
        &["missing key `type` in [[output]]"],
    );
}

#[test]
fn output_warnings() {
    let out = |rest: &str| {
        warnings(&format!(
            "{SOURCE}[[source]]\nurl = \"https://b.example/\"\n[[source]]\nurl = \"https://c.example/\"\n\
             [[output]]\ntype = \"shm\"\n{rest}"
        ))
    };
    let w = out("unit = 0\n");
    assert_eq!(w.len(), 1, "{w:?}");
    assert_at(
        &w[0],
        9,
        8,
        &["SHM unit 0: ntpd and ntpsec create units 0 and 1 for root only"],
    );
    let w = out("unit = 2\nperm = \"0666\"\n");
    assert_eq!(w.len(), 1, "{w:?}");
    assert_at(
        &w[0],
        10,
        8,
        &[
            "writable by other users (mode 0666)",
            "any local user can then inject time",
        ],
    );
    let w = out("unit = 2\n");
    assert_at(
        &w[0],
        9,
        8,
        &[
            "mode 0666, ntpd's default for units 2 and up",
            "perm = \"0600\"",
        ],
    );
    assert!(out("unit = 2\nperm = \"0644\"\n").is_empty());
}

// ---------------------------------------------------------------------------------------------
// Selection, purpose, status
// ---------------------------------------------------------------------------------------------

#[test]
fn min_sources_must_be_reachable() {
    fails(
        &format!(
            "{SOURCE}[[source]]\nurl = \"https://b.example/\"\nnoselect = true\n\
         [selection]\nmin_sources = 2\n"
        ),
        7,
        15,
        &["min_sources = 2 but only 1 source can be selected (noselect ones do not count)"],
    );
    fails(
        &format!("{SOURCE}[selection]\nmin_sources = 0\n"),
        4,
        15,
        &["min_sources = 0"],
    );
    // A source with an error of its own still counts: one error, not two.
    fails(
        &format!(
            "{SOURCE}[[source]]\nurl = \"gopher://b.example/\"\n[selection]\nmin_sources = 2\n"
        ),
        4,
        7,
        &["unsupported scheme"],
    );
}

#[test]
fn a_file_must_ask_for_something() {
    let e = error("# nothing\n[log]\nlevel = \"debug\"\n");
    assert_eq!((e.0, e.1), (0, 0), "not about one place");
    assert!(
        e.2.starts_with("nothing to do: no [[source]] to poll and no [server]"),
        "{}",
        e.2
    );
    let rendered = match Config::parse("", PATH) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("an empty file is not a configuration"),
    };
    assert!(
        rendered.starts_with("/etc/webntpd.toml: nothing to do"),
        "{rendered}"
    );
    // A server alone is fine; outputs without sources get a warning.
    let w = warnings("[server]\n[[output]]\ntype = \"sock\"\npath = \"/run/c.sock\"\n");
    assert_eq!(w.len(), 1, "{w:?}");
    assert_at(&w[0], 2, 1, &["[[output]] without any [[source]]"]);
    let w = warnings(SOURCE);
    assert_at(&w[0], 1, 1, &["no [[output]]", "webntpd status"]);
}

#[test]
fn the_status_socket_must_be_absolute() {
    fails(
        &format!("{SOURCE}[status]\nsocket = \"status.sock\"\n"),
        4,
        10,
        &["status socket status.sock is a relative path"],
    );
}

#[test]
fn metrics_are_off_without_their_table_and_on_loopback_with_it() {
    let c = ok(&format!("{SOURCE}[metrics]\n")).config;
    assert_eq!(
        c.metrics.map(|m| m.listen.to_string()),
        Some(DEFAULT_METRICS_LISTEN.to_owned())
    );
    let c = ok(&format!("{SOURCE}[metrics]\nlisten = \"[::1]:9100\"\n")).config;
    assert_eq!(
        c.metrics.map(|m| m.listen.to_string()),
        Some("[::1]:9100".to_owned())
    );
}

#[test]
fn metrics_listen_is_one_address_of_its_own() {
    fails(
        &format!("{SOURCE}[metrics]\nlisten = [\"127.0.0.1:9975\"]\n"),
        4,
        10,
        &[
            "`listen` in [metrics]",
            "one address in quotes",
            "not a list",
        ],
    );
    fails(
        &format!("{SOURCE}[metrics]\nlisten = \"localhost:9975\"\n"),
        4,
        10,
        &["expected IP:PORT", "127.0.0.1:8080"],
    );
    fails(
        &format!("{SOURCE}[metrics]\nlisten = \"127.0.0.1:9975\"\nport = 1\n"),
        5,
        1,
        &["unknown key `port` in [metrics]", "listen"],
    );
    fails(
        "[server]\nlisten = [\":8080\"]\n[metrics]\nlisten = \"127.0.0.1:8080\"\n",
        4,
        10,
        &[
            "also the server's listen [::]:8080",
            "a port of their own",
            "9975",
        ],
    );
    let w = warnings(&format!("{SOURCE}[metrics]\nlisten = \"0.0.0.0:9975\"\n"));
    assert!(
        w.iter()
            .any(|(l, c, m)| (*l, *c) == (4, 10) && m.contains("not a loopback address")),
        "{w:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------------

#[test]
fn server_keys_map_onto_the_server_and_leap_configs() {
    let c = ok(r#"
        [server]
        listen = ["127.0.0.1:8123", "[::1]:8123"]
        tls_listen = ":8443"
        tls_cert = "/etc/webntpd/cert.pem"
        tls_key = "/etc/webntpd/key.pem"
        id = "time.example.org"
        allow_origin = ["https://a.example", "http://b.example:8080"]
        clock_page = "/time"
        clock_peer = "wss://b.example:8443/"
        leap_seconds = "/etc/leap.list"
        leap_seconds_url = "https://data.iana.org/time-zones/tzdb/leap-seconds.list"
        leap_seconds_cache = "/var/cache/leap.list"
        leap_seconds_refresh = "12h"
        header_read_timeout = "3s"
        keepalive_timeout = "4s"
        max_header_bytes = 16384
        max_connections = 500
        ws_idle_timeout = "5s"
        shutdown_timeout = "6s"
    "#)
    .config;
    let s = c.server.clone().unwrap();
    let server = s.server_config();
    assert_eq!(server.listen.len(), 2);
    assert_eq!(server.listen_tls[0].to_string(), "[::]:8443");
    assert_eq!(server.tls.unwrap().key, Path::new("/etc/webntpd/key.pem"));
    assert_eq!(server.server_id.as_deref(), Some("time.example.org"));
    assert_eq!(
        server.origins,
        OriginPolicy::List(vec![
            "https://a.example".into(),
            "http://b.example:8080".into()
        ])
    );
    assert_eq!(server.clock_page.as_deref(), Some("/time"));
    assert_eq!(server.clock_peers, ["wss://b.example:8443/"]);
    let l = server.limits;
    assert_eq!(
        (
            l.header_read_timeout,
            l.keepalive_timeout,
            l.ws_idle_timeout,
            l.shutdown_timeout
        ),
        (
            Duration::from_secs(3),
            Duration::from_secs(4),
            Duration::from_secs(5),
            Duration::from_secs(6)
        )
    );
    assert_eq!((l.max_header_bytes, l.max_connections), (16384, 500));
    let leap = s.leap_config();
    assert_eq!(leap.file, Path::new("/etc/leap.list"));
    assert_eq!(leap.cache, Path::new("/var/cache/leap.list"));
    assert_eq!(leap.refresh_interval, Duration::from_secs(12 * 3600));
    assert!(leap.url.is_some());
    assert_eq!(
        c.summary(),
        "0 sources, 0 outputs, server on http://127.0.0.1:8123, http://[::1]:8123, \
         https://[::]:8443"
    );
}

#[test]
fn an_empty_server_table_serves_on_the_default_address() {
    let c = ok("[server]\n").config;
    let s = c.server.unwrap();
    assert_eq!(s, ServerSettings::default());
    let server = s.server_config();
    assert_eq!(server.listen[0].to_string(), DEFAULT_LISTEN);
    assert_eq!(server.origins, OriginPolicy::Any);
    assert_eq!(server.limits, crate::server::Limits::default());
    assert_eq!(s.leap_config(), crate::leap::store::LeapConfig::default());
}

/// `webntpd serve` with no flags and an empty `[server]` table mean the same.
#[test]
fn the_flags_defaults_are_the_tables_defaults() {
    use clap::Parser;
    #[derive(Parser)]
    struct Serve {
        #[command(flatten)]
        settings: ServerSettings,
    }
    assert_eq!(
        Serve::parse_from(["serve"]).settings,
        ServerSettings::default()
    );
}

#[test]
fn server_errors() {
    let e = |rest: &str| error(&format!("[server]\n{rest}"));
    assert_at(
        &e("tls_listen = [\":443\"]\ntls_cert = \"/c.pem\"\n"),
        3,
        12,
        &["tls_cert without tls_key: add tls_key"],
    );
    assert_at(
        &e("tls_listen = [\":443\"]\ntls_key = \"/k.pem\"\n"),
        3,
        11,
        &["tls_key without tls_cert"],
    );
    assert_at(
        &e("tls_listen = [\":443\"]\n"),
        2,
        14,
        &["tls_listen needs a certificate: add tls_cert and tls_key"],
    );
    assert_at(
        &e("tls_cert = \"/c.pem\"\ntls_key = \"/k.pem\"\n"),
        2,
        12,
        &["no TLS listener: add tls_listen"],
    );
    assert_at(
        &e("listen = [\":80\"]\ntls_listen = [\":80\"]\ntls_cert = \"/c\"\ntls_key = \"/k\"\n"),
        3,
        15,
        &["[::]:80 is already in listen"],
    );
    assert_at(
        &e("allow_origin = [\"*\", \"example.org\"]\n"),
        2,
        22,
        &["`example.org`: an origin is scheme://host[:port]"],
    );
    assert_at(
        &e("max_header_bytes = 100\n"),
        2,
        20,
        &["max_header_bytes = 100: must be 8192 to 1048576"],
    );
    assert_at(
        &e("max_connections = 0\n"),
        2,
        19,
        &["max_connections = 0: must be 1 to 1000000"],
    );
    assert_at(
        &e("clock_page = \"/cgi-bin/clock\"\n"),
        2,
        14,
        &["`/cgi-bin/clock`: that path belongs to NICT's endpoints"],
    );
    assert_at(
        &e("clock_page = \"clock\"\n"),
        2,
        14,
        &["`clock`: expected `off` or a path such as /clock"],
    );
    assert_at(
        &e("clock_peer = [\"https://a.example/\", \"https://b.example/?x\"]\n"),
        2,
        37,
        &["clock peer `https://b.example/?x`: no query"],
    );
    let nine: Vec<String> = (0..9)
        .map(|i| format!("\"http://p{i}.example/\""))
        .collect();
    assert_at(
        &e(&format!("clock_peer = [{}]\n", nine.join(", "))),
        2,
        14,
        &["9 clock peers: the page asks at most 8"],
    );
    assert_eq!(
        warnings("[server]\nclock_page = \"off\"\nclock_peer = \"http://a.example/\"\n"),
        [(
            3,
            14,
            "clock_peer is set but clock_page = \"off\": no page asks them".to_string()
        )]
    );
    assert_at(
        &e("leap_seconds_url = \"ftp://example.org/leap-seconds.list\"\n"),
        2,
        20,
        &[
            "invalid leap-seconds.list URL",
            "unsupported scheme \"ftp\"",
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Reading files
// ---------------------------------------------------------------------------------------------

#[test]
fn a_missing_file_is_a_read_error_naming_it() {
    let e = Config::load("/nonexistent/webntpd.toml").unwrap_err();
    assert_eq!(e.exit_code(), crate::exit::NOINPUT);
    let text = e.to_string();
    assert!(
        text.starts_with("cannot read /nonexistent/webntpd.toml: "),
        "{text}"
    );
    assert!(text.contains("-c PATH"), "{text}");
}

#[test]
fn a_file_that_is_not_utf8_names_the_line_and_column_of_the_first_bad_byte() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("webntpd.toml");
    // Columns count characters: each "é" is two bytes, one column.
    let mut bytes = format!("{SOURCE}# é=é?").into_bytes();
    let at = bytes.len() - 1;
    bytes[at] = 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let e = Config::load(&path).unwrap_err();
    assert_eq!(e.exit_code(), crate::exit::CONFIG);
    assert_eq!(
        e.to_string(),
        format!(
            "{} line 3, column 6: not UTF-8 (byte 0xff): save the file as UTF-8",
            path.display()
        )
    );
    // The first bad byte on the first line, and a truncated sequence at the very end.
    std::fs::write(&path, b"\xfe\n").unwrap();
    assert!(Config::load(&path)
        .unwrap_err()
        .to_string()
        .ends_with(" line 1, column 1: not UTF-8 (byte 0xfe): save the file as UTF-8"));
    std::fs::write(&path, b"# ok\n\xc3").unwrap();
    assert!(Config::load(&path)
        .unwrap_err()
        .to_string()
        .contains(" line 2, column 1: not UTF-8 (byte 0xc3)"));
}

#[test]
fn what_is_not_a_regular_file_is_refused_with_66_and_a_huge_file_with_78() {
    let dir = tempfile::tempdir().unwrap();
    for (path, what) in [
        (Path::new("/dev/zero"), "a character device"),
        (dir.path(), "a directory"),
    ] {
        let e = Config::load(path).unwrap_err();
        assert_eq!(e.exit_code(), crate::exit::NOINPUT, "{e}");
        assert!(e.to_string().contains(what), "{e}");
    }
    let huge = dir.path().join("huge.toml");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(2 << 30)
        .unwrap();
    let e = Config::load(&huge).unwrap_err();
    assert_eq!(e.exit_code(), crate::exit::CONFIG, "{e}");
    assert!(
        e.to_string().contains(
            "is 2147483648 bytes, more than the 1 MiB webntpd reads from a configuration file"
        ),
        "{e}"
    );
}

#[test]
fn load_checks_the_files_the_configuration_names() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("webntpd.toml");
    let missing = dir.path().join("missing.pem");
    std::fs::write(
        &path,
        format!(
            "{SOURCE}cacert = [\"{}\"]\n[server]\nleap_seconds = \"{}\"\n",
            missing.display(),
            missing.display()
        ),
    )
    .unwrap();
    // parse() touches no file.
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(Config::parse(&text, &path).is_ok());
    let Err(e @ ConfigError::Invalid { .. }) = Config::load(&path) else {
        panic!("a missing cacert file is an error");
    };
    assert_eq!(e.exit_code(), crate::exit::CONFIG);
    let ConfigError::Invalid {
        errors,
        mut warnings,
    } = e
    else {
        unreachable!()
    };
    warnings.retain(|w| !is_placeholder_warning(w));
    assert_at(&place(&errors[0]), 3, 11, &["missing.pem"]);
    assert_at(
        &place(&warnings[0]),
        5,
        16,
        &["replies will carry no leap-second information"],
    );
}

#[test]
fn check_command_prints_warnings_and_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("webntpd.toml");
    std::fs::write(
        &path,
        "[server]\nlisten = \":8123\"\nleap_seconds = \"/nonexistent\"\n",
    )
    .unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    assert_eq!(check_command(&path, &mut out, &mut err), 0);
    let (out, err) = (
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    );
    assert_eq!(
        out,
        format!(
            "{}: OK (0 sources, 0 outputs, server on http://[::]:8123)\n",
            path.display()
        )
    );
    assert!(
        err.starts_with(&format!(
            "{} line 3, column 16: warning: cannot read",
            path.display()
        )),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// The shipped configurations
// ---------------------------------------------------------------------------------------------

fn shipped() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_shipped_configuration_is_valid_and_quiet() {
    let files = shipped();
    assert!(files.len() >= 2, "{files:?}");
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let loaded = match Config::parse(&text, &path) {
            Ok(l) => l,
            Err(e) => panic!("{e}"),
        };
        // The installed example names placeholder servers, and says so until edited.
        let (placeholders, others): (Vec<_>, Vec<_>) = loaded
            .warnings
            .iter()
            .partition(|w| is_placeholder_warning(w));
        assert!(others.is_empty(), "{others:#?}");
        if path.ends_with("webntpd.toml") {
            assert_eq!(placeholders.len(), 3, "one per example source");
        }
    }
}

/// The production example with every commented-out option switched on is valid too: the
/// comments show keys and values that work.
#[test]
fn the_example_with_every_option_uncommented_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/webntpd.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut uncommented = 0;
    let all: String = text
        .lines()
        .map(|line| match line.strip_prefix('#') {
            Some(rest)
                if rest.starts_with('[')
                    || rest.split_once(" = ").is_some_and(|(k, _)| {
                        k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                    }) =>
            {
                uncommented += 1;
                format!("{rest}\n")
            }
            _ => format!("{line}\n"),
        })
        .collect();
    let loaded = match Config::parse(&all, "webntpd.toml, uncommented") {
        Ok(l) => l,
        Err(e) => panic!("{e}\n---\n{all}"),
    };
    assert!(uncommented > 30, "{uncommented} lines uncommented");
    let c = loaded.config;
    assert_eq!(c.outputs.len(), 3);
    assert!(c.server.is_some());
    assert!(
        loaded.warnings.iter().all(is_placeholder_warning),
        "{:#?}",
        loaded.warnings
    );
}

#[test]
fn the_demo_polls_its_own_server_on_loopback() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let c = Config::parse(&text, &path).unwrap().config;
    let server = c.server.as_ref().unwrap().server_config();
    assert!(server.listen.iter().all(|a| a.0.ip().is_loopback()));
    assert!(server.listen_tls.is_empty());
    assert!(c.sources.len() >= 3);
    let modes: Vec<Mode> = c.sources.iter().map(|s| s.burst.mode).collect();
    assert!(modes.contains(&Mode::Toh), "{modes:?}");
    for s in &c.sources {
        assert!(s.target.is_loopback(), "{}", s.url);
        assert!(
            server.listen.iter().any(|a| a.0.port() == s.target.port),
            "{} polls the demo's own server",
            s.url
        );
    }
    assert!(c.sources.iter().any(|s| s.target.scheme.as_str() == "ws"));
    assert!(matches!(
        c.outputs[..],
        [OutputConfig::Shm {
            unit: 42,
            perm: Some(0o600)
        }]
    ));
}

#[test]
fn suggestions_are_near_misses_only() {
    use super::locate::closest;
    let modes = ["auto", "json", "ws", "toh", "date"];
    let outputs = ["shm", "sock"];
    let log = ["level", "target"];
    for (written, among, meant) in [
        ("urll", &["url", "mode", "samples"][..], Some("url")),
        ("Samples", &["url", "mode", "samples"][..], Some("samples")),
        (
            "pollmax",
            &["poll", "poll_min", "poll_max"][..],
            Some("poll_max"),
        ),
        ("dat", &modes[..], Some("date")),
        ("JSON", &modes[..], Some("json")),
        ("shmem", &outputs[..], Some("shm")),
        ("socket", &outputs[..], Some("sock")),
        ("websockets", &modes[..], None),
        ("ntp", &outputs[..], None),
        ("colour", &log[..], None),
        (
            "verbose",
            &["url", "mode", "samples", "weight", "rt"][..],
            None,
        ),
    ] {
        assert_eq!(closest(written, among), meant, "{written}");
    }
}

#[test]
fn the_leap_cache_defaults_to_the_units_state_directory() {
    use super::server::default_leap_cache;
    use std::ffi::OsString;
    let of = |v: Option<&str>| default_leap_cache(v.map(OsString::from));
    assert_eq!(of(None), Path::new("/var/lib/webntpd/leap-seconds.list"));
    assert_eq!(
        of(Some("/var/lib/webntpd-server")),
        Path::new("/var/lib/webntpd-server/leap-seconds.list")
    );
    // Several StateDirectory= entries: the first; nonsense: the fallback.
    assert_eq!(
        of(Some("/var/lib/a:/var/lib/b")),
        Path::new("/var/lib/a/leap-seconds.list")
    );
    assert_eq!(
        of(Some("")),
        Path::new("/var/lib/webntpd/leap-seconds.list")
    );
    assert_eq!(
        of(Some("relative")),
        Path::new("/var/lib/webntpd/leap-seconds.list")
    );
}

#[test]
fn placeholder_names_are_warned_about() {
    let loaded = Config::parse(
        "[[source]]\nurl = \"https://time.example.org/\"\n[[source]]\n\
         url = \"wss://ntp.nict.go.jp/\"\n[[source]]\nurl = \"https://b.test:8443/\"\n",
        PATH,
    )
    .unwrap();
    let w: Vec<_> = loaded
        .warnings
        .iter()
        .filter(|w| is_placeholder_warning(w))
        .map(place)
        .collect();
    assert_eq!(w.len(), 2, "{w:#?}");
    assert_at(
        &w[0],
        2,
        7,
        &["https://time.example.org/ names example.org", "RFC 2606"],
    );
    assert_at(
        &w[1],
        6,
        7,
        &["https://b.test:8443/ names test", "will never answer"],
    );
}

#[test]
fn reserved_example_names_are_placeholders() {
    use super::check::sources::reserved_name;
    for (host, reserved) in [
        ("time.example.org", Some("example.org")),
        ("EXAMPLE.COM.", Some("example.com")),
        ("a.example", Some("example")),
        ("webntp.test", Some("test")),
        ("x.invalid", Some("invalid")),
        ("example.org.uk", None),
        ("notexample.org", None),
        ("ntp.nict.go.jp", None),
        ("localhost", None),
        ("127.0.0.1", None),
    ] {
        assert_eq!(reserved_name(host), reserved, "{host}");
    }
}

/// The ntp output in `rest` (after its `type` line, on line 5), with three sources.
fn ntp(rest: &str) -> String {
    format!(
        "{SOURCE}[[output]]\ntype = \"ntp\"\n{rest}[[source]]\nurl = \"https://b.example/\"\n\
         [[source]]\nurl = \"https://c.example/\"\n"
    )
}

fn ntp_config(text: &str) -> crate::refclock::NtpConfig {
    match ok(text).config.outputs.into_iter().next() {
        Some(OutputConfig::Ntp(n)) => n,
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_ntp_output_takes_loopback_port_123_and_safe_defaults() {
    let loaded = ok(&ntp(""));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let n = ntp_config(&ntp(""));
    assert_eq!(n.listen, vec!["127.0.0.1:123".parse().unwrap()]);
    assert_eq!(n.stratum, 3);
    assert_eq!(n.clock, crate::sync::serve::ClockSetting::Auto);
    let a = &n.admission;
    assert!(a.allow.is_empty() && a.deny.is_empty());
    assert_eq!(
        (a.rate_interval, a.rate_burst, a.rate_clients, a.kod),
        (Duration::from_secs(1), 16, 8192, false)
    );
    assert_eq!(n.max_age, Duration::from_secs(3600));
    assert!(!n.feeds_time_daemon);
    let n = ntp_config(&ntp(
        "listen = [\"127.0.0.1:10123\", \"[::1]:10123\"]\nstratum = 2\nclock = \"free\"\n\
         allow = [\"127.0.0.0/8\", \"::1\"]\ndeny = \"127.0.0.2\"\nrate_interval = \"off\"\n\
         rate_burst = 4\nrate_clients = 64\nmax_age = \"10m\"\n",
    ));
    assert_eq!(n.listen.len(), 2);
    assert_eq!(
        (n.stratum, n.clock),
        (2, crate::sync::serve::ClockSetting::Free)
    );
    let a = &n.admission;
    assert_eq!((a.allow.len(), a.deny.len()), (2, 1));
    assert!(a.rate_interval.is_zero() && n.policy().rate.is_none());
    assert_eq!((a.rate_burst, a.rate_clients), (4, 64));
    assert_eq!(n.max_age, Duration::from_secs(600));
    // Beside an SHM or SOCK output, the clock is known to be fed to a time daemon.
    let fed = format!(
        "{}[[output]]\ntype = \"sock\"\npath = \"/run/c.sock\"\n",
        ntp("")
    );
    assert!(ntp_config(&fed).feeds_time_daemon);
}

#[test]
fn ntp_output_errors_name_the_key_and_the_fix() {
    let cases: [(&str, usize, usize, &str); 10] = [
        (
            "stratum = 16\n",
            5,
            11,
            "stratum = 16: a synchronised server's stratum is 1 to 15",
        ),
        ("stratum = 0\n", 5, 11, "stratum = 0"),
        (
            "clock = \"kernel\"\n",
            5,
            9,
            "expected auto, free or disciplined",
        ),
        (
            "allow = [\"192.168.1.5/24\"]\n",
            5,
            10,
            "write 192.168.1.0/24",
        ),
        (
            "deny = [\"lan\"]\n",
            5,
            9,
            "expected an address or an address block",
        ),
        ("listen = [\"123\"]\n", 5, 11, "expected IP:PORT"),
        ("listen = []\n", 5, 10, "listen is empty"),
        (
            "rate_burst = 0\n",
            5,
            14,
            "rate_burst = 0: must be 1 to 1024",
        ),
        ("rate_interval = \"0s\"\n", 5, 17, "or \"off\""),
        (
            "unit = 2\n",
            5,
            8,
            "`unit` does not apply to type = \"ntp\", which takes `listen`",
        ),
    ];
    for (rest, line, column, message) in cases {
        assert_at(&error(&ntp(rest)), line, column, &[message]);
    }
    // An address served twice, in one output or by two.
    fails(
        &ntp("listen = [\"127.0.0.1:10123\", \"127.0.0.1:10123\"]\n"),
        5,
        30,
        &["127.0.0.1:10123 is listed twice"],
    );
    let two = format!(
        "{}[[output]]\ntype = \"ntp\"\nlisten = \"127.0.0.1:123\"\n",
        ntp("")
    );
    assert_at(
        &error(&two),
        11,
        10,
        &["127.0.0.1:123 is already served by the ntp [[output]] on line 3"],
    );
    // And the other types refuse the ntp keys.
    fails(
        &format!("{SOURCE}[[output]]\ntype = \"sock\"\npath = \"/run/c.sock\"\nstratum = 2\n"),
        6,
        11,
        &["`stratum` does not apply to type = \"sock\""],
    );
}

#[test]
fn ntp_output_warnings() {
    let w = warnings(&ntp("listen = \":123\"\n"));
    assert_eq!(w.len(), 1, "{w:?}");
    assert_at(
        &w[0],
        5,
        10,
        &["[::]:123 answers every address", "allow = ["],
    );
    assert!(warnings(&ntp("listen = \":123\"\nallow = \"192.168.0.0/16\"\n")).is_empty());
    // An allow that does not parse is an error, and not also "answers every address".
    let bad = ntp("listen = \":123\"\nallow = \"192.168.0.0/33\"\n");
    let Err(ConfigError::Invalid {
        errors,
        warnings: said,
    }) = Config::parse(&bad, PATH)
    else {
        panic!("{bad} should not load");
    };
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        !said.iter().any(|w| w.message.contains("every address")),
        "{said:?}"
    );
    let w = warnings(&ntp("stratum = 1\n"));
    assert_at(&w[0], 5, 11, &["stratum = 1 claims a reference clock"]);
    let w = warnings(&ntp("kod = true\nrate_interval = \"off\"\n"));
    assert_at(&w[0], 5, 7, &["no Kiss-o'-Death is sent"]);
}

#[test]
fn the_servers_ntp_keys() {
    let c = ok(&format!(
        "{SOURCE}[server]\nntp = [\"127.0.0.1:10123\"]\nntp_clock = \"local\"\nntp_stratum = 4\n\
         ntp_allow = \"10.0.0.0/8\"\nntp_rate_interval = \"off\"\nntp_kod = true\n"
    ))
    .config;
    let n = c.server.unwrap().ntp_config().unwrap();
    assert_eq!(n.listen, vec!["127.0.0.1:10123".parse().unwrap()]);
    assert_eq!(
        (n.clock, n.stratum),
        (crate::server::ntp::NtpClock::Local, 4)
    );
    let a = &n.admission;
    assert!(a.rate_interval.is_zero() && a.kod && a.allow.len() == 1);
    // Off unless an address is given.
    let c = ok(&format!("{SOURCE}[server]\n")).config;
    assert!(c.server.unwrap().ntp_config().is_none());
    fails(
        &format!("{SOURCE}[server]\nntp = \":123\"\nntp_stratum = 16\n"),
        5,
        15,
        &["ntp_stratum = 16: a synchronised server's stratum is 1 to 15"],
    );
    fails(
        &format!("{SOURCE}[server]\nntp_clock = \"kernle\"\n"),
        4,
        13,
        &["expected kernel or local"],
    );
    // One socket per address, whether [server] or an output binds it.
    let both = format!("{}[server]\nntp = \"127.0.0.1:123\"\n", ntp(""));
    assert_at(
        &error(&both),
        10,
        7,
        &["127.0.0.1:123 is already served by the ntp [[output]] on line 3"],
    );
    let w = warnings(&format!("{SOURCE}[server]\nntp = \":123\"\n"));
    assert_at(
        &w[0],
        4,
        7,
        &["answers NTP to every address", "ntp_allow = ["],
    );
}
