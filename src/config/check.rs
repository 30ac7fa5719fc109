//! From the file's tables to a validated [`Config`]: the schema as serde reads it (strict:
//! unknown keys are errors), then every check that needs more than one value at a time, each
//! error or warning placed at the key it is about.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use toml::de::DeValue;

use crate::client::{Mode, MAX_SAMPLES};
use crate::net::connect::{Proxy, ProxySetting, Target};
use crate::refclock::{shm, OutputConfig};

use super::locate::{self, Doc};
use super::read::{Dropped, Reader, MAX_ERRORS, TOP_LEVEL};
use super::value::{self, show};
use super::{
    BurstSettings, Config, ConfigError, Diagnostic, Loaded, LogConfig, Poll, SanityConfig,
    SelectionConfig, ServerSettings, SourceConfig, StatusConfig,
};

/// The whole file, as written: each table and entry read on its own by [`Reader`], so that
/// one error does not hide the others.
#[derive(Default)]
struct File {
    /// Each `[[source]]` that could be read, with its index in the file.
    source: Vec<(usize, SourceFile)>,
    /// Each `[[output]]` that could be read, with its index in the file.
    output: Vec<(usize, OutputFile)>,
    server: Option<ServerSettings>,
    selection: SelectionConfig,
    sanity: SanityConfig,
    log: LogConfig,
    status: StatusConfig,
    /// What is written, read or not: `[[source]]` entries, `[[output]]` entries, `[server]`.
    written: (usize, usize, bool),
}

impl File {
    fn read(reader: &mut Reader<'_, '_>) -> File {
        let mut root = reader.doc.root().into_inner();
        let _ = reader.unknown_keys("", &mut root, &TOP_LEVEL);
        let mut file = File::default();
        // In file order, so that the errors kept when reading stops are the first ones.
        let mut tables: Vec<_> = root.into_iter().collect();
        tables.sort_by_key(|(key, _)| key.span().start);
        for (key, value) in tables {
            match key.get_ref().as_ref() {
                "source" => (file.source, file.written.0) = entries(reader, "source", value),
                "output" => (file.output, file.written.1) = entries(reader, "output", value),
                "server" => {
                    file.written.2 = true;
                    file.server = reader.read("server", value);
                }
                "selection" => file.selection = reader.read("selection", value).unwrap_or_default(),
                "sanity" => file.sanity = reader.read("sanity", value).unwrap_or_default(),
                "log" => file.log = reader.read("log", value).unwrap_or_default(),
                "status" => file.status = reader.read("status", value).unwrap_or_default(),
                _ => {} // Reported as unknown.
            }
        }
        file
    }
}

/// The entries of a list of tables (`[[source]]`) that can be read, each with its index, and
/// how many are written.
fn entries<'a, T: serde::de::DeserializeOwned>(
    reader: &mut Reader<'_, 'a>,
    at: &str,
    value: toml::Spanned<DeValue<'a>>,
) -> (Vec<(usize, T)>, usize) {
    if !matches!(value.get_ref(), DeValue::Array(_)) {
        // `[source]` with one bracket: serde's message, with the hint to write two.
        return (
            reader
                .read::<Vec<T>>(at, value)
                .map(|v| v.into_iter().enumerate().collect())
                .unwrap_or_default(),
            1,
        );
    }
    let DeValue::Array(items) = value.into_inner() else {
        return (Vec::new(), 0);
    };
    let written = items.len();
    let read = items
        .into_iter()
        .enumerate()
        .filter_map(|(i, item)| Some((i, reader.read(&format!("{at}.{i}"), item)?)))
        .collect();
    (read, written)
}

/// A `[[source]]` as written; defaults are filled in by [`Check::source`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceFile {
    url: String,
    #[serde(default, deserialize_with = "mode")]
    mode: Mode,
    samples: Option<i64>,
    #[serde(default, deserialize_with = "value::opt_duration")]
    poll: Option<Duration>,
    #[serde(default, deserialize_with = "value::opt_duration")]
    poll_min: Option<Duration>,
    #[serde(default, deserialize_with = "value::opt_duration")]
    poll_max: Option<Duration>,
    #[serde(default, deserialize_with = "value::opt_duration")]
    timeout: Option<Duration>,
    proxy: Option<String>,
    #[serde(default, deserialize_with = "value::string_list")]
    cacert: Vec<String>,
    weight: Option<f64>,
    #[serde(default)]
    noselect: bool,
    rt: Option<bool>,
}

/// An `[[output]]` as written: the keys of every type, sorted out by [`Check::output`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OutputFile {
    #[serde(rename = "type")]
    kind: String,
    unit: Option<i64>,
    perm: Option<Perm>,
    path: Option<PathBuf>,
}

/// `perm` as written: `"0600"` or an integer (`0o600`).
enum Perm {
    Text(String),
    Number(i64),
}

impl<'de> Deserialize<'de> for Perm {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Perm;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("octal permissions, such as \"0600\" or 0o600")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Perm, E> {
                Ok(Perm::Text(s.to_owned()))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Perm, E> {
                Ok(Perm::Number(n))
            }
        }
        d.deserialize_any(V)
    }
}

/// serde: a `mode`, with the nearest one suggested for a misspelling.
fn mode<'de, D: Deserializer<'de>>(d: D) -> Result<Mode, D::Error> {
    const MODES: [&str; 5] = ["auto", "json", "ws", "toh", "date"];
    let s = String::deserialize(d)?;
    s.parse().map_err(|_: String| {
        de::Error::custom(format!(
            "unknown mode `{s}`, {}",
            locate::suggest(&s, &MODES)
        ))
    })
}

/// The output types, for messages.
const OUTPUT_TYPES: [&str; 2] = ["shm", "sock"];

/// Where a message is, to sort them in file order.
fn order(d: &Diagnostic) -> Option<(usize, usize)> {
    d.location.map(|l| (l.line, l.column))
}

/// Parse and check `text`; with `files`, also the files it names.
pub(super) fn run(text: &str, path: &Path, files: bool) -> Result<Loaded, ConfigError> {
    let doc = Doc::parse(text).map_err(|(message, location)| ConfigError::Invalid {
        errors: vec![Diagnostic {
            path: path.to_path_buf(),
            location,
            message,
        }],
        warnings: Vec::new(),
    })?;
    let mut reader = Reader {
        doc: &doc,
        path,
        errors: Vec::new(),
        dropped: Dropped::default(),
    };
    let file = File::read(&mut reader);
    if reader.full() {
        // The semantic checks would only add errors that are not printed.
        let mut errors = reader.errors;
        errors.sort_by_key(order);
        errors.truncate(MAX_ERRORS);
        errors.push(Diagnostic {
            path: path.to_path_buf(),
            location: None,
            message: format!(
                "more errors not shown (webntpd stops reading at {MAX_ERRORS}): fix these first"
            ),
        });
        return Err(ConfigError::Invalid {
            errors,
            warnings: Vec::new(),
        });
    }
    let Reader {
        errors, dropped, ..
    } = reader;
    let mut check = Check {
        doc: &doc,
        path,
        errors,
        warnings: Vec::new(),
        dropped,
    };
    let config = check.config(file);
    // The files are opened only for a configuration otherwise right: then every entry was
    // read, and the indexes of `config`'s entries are the file's.
    if files && check.errors.is_empty() {
        check.files(&config);
    }
    let Check {
        mut errors,
        mut warnings,
        ..
    } = check;
    errors.sort_by_key(order);
    warnings.sort_by_key(order);
    cap(&mut errors, path, "errors not shown: fix these first");
    cap(&mut warnings, path, "warnings not shown");
    if errors.is_empty() {
        Ok(Loaded { config, warnings })
    } else {
        Err(ConfigError::Invalid { errors, warnings })
    }
}

/// Keep the first [`MAX_ERRORS`] of `list`, and say how many more there were.
fn cap(list: &mut Vec<Diagnostic>, path: &Path, more_what: &str) {
    if list.len() > MAX_ERRORS {
        let more = list.len() - MAX_ERRORS;
        list.truncate(MAX_ERRORS);
        list.push(Diagnostic {
            path: path.to_path_buf(),
            location: None,
            message: format!("{more} more {more_what}"),
        });
    }
}

/// Each entry that `check` accepts, with its index in the file (which messages need).
fn valid_entries<T, U>(
    entries: Vec<(usize, T)>,
    mut check: impl FnMut(usize, T) -> Option<U>,
) -> Vec<(usize, U)> {
    entries
        .into_iter()
        .filter_map(|(i, e)| Some((i, check(i, e)?)))
        .collect()
}

/// Collects errors and warnings, each placed at a key path such as `source.2.poll`.
struct Check<'c, 'a> {
    doc: &'c Doc<'a>,
    path: &'c Path,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    /// What [`Reader`] left out: checks that combine such a key with others are skipped.
    dropped: Dropped,
}

impl Check<'_, '_> {
    fn diagnostic(&self, at: &str, message: String) -> Diagnostic {
        Diagnostic {
            path: self.path.to_path_buf(),
            location: self.doc.locate(at),
            message,
        }
    }

    fn error(&mut self, at: &str, message: String) {
        let d = self.diagnostic(at, message);
        self.errors.push(d);
    }

    fn warn(&mut self, at: &str, message: String) {
        let d = self.diagnostic(at, message);
        self.warnings.push(d);
    }

    /// The line `at` is written on, to point from one entry to another.
    fn line(&self, at: &str) -> String {
        self.doc
            .locate(at)
            .map_or_else(String::new, |l| format!(" on line {}", l.line))
    }

    fn written(&self, at: &str) -> bool {
        self.doc.get(at).is_some()
    }

    fn config(&mut self, file: File) -> Config {
        let (written_sources, written_outputs, written_server) = file.written;
        let has_sources = written_sources > 0;
        // Known only when every entry was read, with its `noselect`.
        let counted = file.source.len() == written_sources
            && !file
                .source
                .iter()
                .any(|(i, _)| self.dropped.contains(&format!("source.{i}.noselect")));
        let selectable = counted.then(|| file.source.iter().filter(|(_, s)| !s.noselect).count());
        let sources = valid_entries(file.source, |i, s| self.source(i, s));
        self.duplicate_sources(&sources);
        let outputs = valid_entries(file.output, |i, o| self.output(i, o));
        self.duplicate_outputs(&outputs);
        if let Some(server) = &file.server {
            self.server(server);
        }
        if has_sources {
            self.selection(&file.selection, selectable, written_outputs > 0);
        }
        self.sanity(&file.sanity);
        if !file.status.socket.is_absolute() {
            self.error(
                "status.socket",
                format!(
                    "status socket {} is a relative path: write an absolute one, e.g. {}",
                    file.status.socket.display(),
                    super::DEFAULT_STATUS_SOCKET
                ),
            );
        }
        self.purpose(has_sources, written_server, written_outputs > 0);
        Config {
            path: self.path.to_path_buf(),
            sources: sources.into_iter().map(|(_, s)| s).collect(),
            outputs: outputs.into_iter().map(|(_, o)| o).collect(),
            server: file.server,
            selection: file.selection,
            sanity: file.sanity,
            log: file.log,
            status: file.status,
        }
    }

    /// Whether the file asks for anything to be done at all.
    fn purpose(&mut self, sources: bool, server: bool, outputs: bool) {
        if !sources && !server {
            self.error(
                "",
                "nothing to do: no [[source]] to poll and no [server] to run; add at least one \
                 (config/webntpd.toml in webntpd's sources shows both)"
                    .to_owned(),
            );
        } else if !sources && outputs {
            self.warn(
                "output",
                "[[output]] without any [[source]]: nothing will ever be written to it; add a \
                 [[source]] or remove the output"
                    .to_owned(),
            );
        } else if sources && !outputs && !server {
            self.warn(
                "source",
                "no [[output]]: the measurements are only shown by `webntpd status`; add an \
                 [[output]] (shm or sock) to feed ntpd or chrony"
                    .to_owned(),
            );
        }
    }

    fn source(&mut self, i: usize, s: SourceFile) -> Option<SourceConfig> {
        let at = |key: &str| format!("source.{i}.{key}");
        let target = match Target::parse(&s.url) {
            Ok(t) => Some(t),
            Err(e) => {
                self.error(&at("url"), e.to_string());
                None
            }
        };
        let samples = match s.samples {
            None => 8,
            Some(n) if (1..=MAX_SAMPLES as i64).contains(&n) => n as usize,
            Some(n) => {
                self.error(
                    &at("samples"),
                    format!("samples = {n}: a burst takes 1 to {MAX_SAMPLES} samples (default 8)"),
                );
                8
            }
        };
        if s.mode == Mode::Date && s.samples.is_some() {
            self.warn(
                &at("samples"),
                "samples does not apply to mode = \"date\", which probes as often as its \
                 bisection needs (at most 12 times); remove it"
                    .to_owned(),
            );
        }
        let proxy = self.proxy(&at("proxy"), s.proxy.as_deref());
        let weight = s.weight.unwrap_or(1.0);
        if !(weight.is_finite() && weight > 0.0) {
            self.error(
                &at("weight"),
                format!(
                    "weight = {weight}: must be a number above 0; to measure a source without \
                     using it, write noselect = true"
                ),
            );
        }
        let burst = BurstSettings {
            mode: s.mode,
            samples,
            timeout: s.timeout.unwrap_or(BurstSettings::default().timeout),
            proxy,
            cacert: s.cacert.iter().map(PathBuf::from).collect(),
            rt: s.rt.unwrap_or(true),
        };
        let poll = self.poll(i, &s, &burst);
        if let Some(t) = &target {
            if let Some(reserved) = reserved_name(&t.host) {
                self.warn(
                    &at("url"),
                    format!(
                        "{} names {reserved}, a name reserved for examples and tests (RFC 2606, \
                         RFC 6761): it cannot be a real server, so this source will never \
                         answer; replace it with the URL of a WebNTP server you use",
                        s.url
                    ),
                );
            }
            if !t.scheme.is_tls() && !t.is_loopback() {
                self.warn(
                    &at("url"),
                    format!(
                        "{} is not encrypted: anyone on the path can shift this clock by \
                         rewriting or delaying replies; use https:// or wss:// if the server \
                         offers it",
                        s.url
                    ),
                );
            }
        }
        Some(SourceConfig {
            url: s.url,
            target: target?,
            poll,
            weight,
            noselect: s.noselect,
            burst,
        })
    }

    fn proxy(&mut self, at: &str, proxy: Option<&str>) -> ProxySetting {
        match proxy {
            None | Some("env") => ProxySetting::FromEnv,
            Some("none" | "direct") => ProxySetting::Off,
            Some(url) => {
                if let Err(e) = Proxy::parse(url, "configuration") {
                    self.error(
                        at,
                        format!(
                            "{e}; write proxy = \"http://HOST:PORT\", or \"none\" to connect \
                             directly"
                        ),
                    );
                }
                ProxySetting::Url(url.to_owned())
            }
        }
    }

    /// `poll`, `poll_min`, `poll_max` with their defaults, in order, and longer than a burst.
    fn poll(&mut self, i: usize, s: &SourceFile, burst: &BurstSettings) -> Poll {
        let interval = s.poll.unwrap_or(Duration::from_secs(64));
        let min = s.poll_min.unwrap_or(interval);
        let max = s.poll_max.unwrap_or(interval * 16);
        let keys = ["poll", "poll_min", "poll_max", "samples", "timeout", "mode"];
        if self.dropped.any(&format!("source.{i}"), &keys) {
            // A wrong value among them is reported; a default in its place proves nothing.
            return Poll { interval, min, max };
        }
        // Name a key the user wrote, so the message points at something they can change.
        let (min_key, max_key) = (
            if s.poll_min.is_some() {
                "poll_min"
            } else {
                "poll"
            },
            if s.poll_max.is_some() {
                "poll_max"
            } else {
                "poll"
            },
        );
        let at = |key: &str| format!("source.{i}.{key}");
        let shown = |d: Duration, written: bool| {
            format!("{}{}", show(d), if written { "" } else { ", the default" })
        };
        let (min_written, max_written) = (s.poll_min.is_some(), s.poll_max.is_some());
        if min_written && min > max {
            self.error(
                &at(min_key),
                format!(
                    "poll_min ({}) is longer than poll_max ({}): after a failure the wait \
                     starts at poll_min and doubles up to poll_max; lower poll_min or raise \
                     poll_max",
                    shown(min, min_written),
                    shown(max, max_written)
                ),
            );
        } else if interval > max {
            self.error(
                &at(max_key),
                format!(
                    "poll ({}) is longer than poll_max ({}): poll_max is the longest wait; \
                     raise poll_max or lower poll",
                    shown(interval, s.poll.is_some()),
                    show(max)
                ),
            );
        } else if interval < min {
            self.error(
                &at(min_key),
                format!(
                    "poll_min ({}) is longer than poll ({}): poll_min is the shortest wait; \
                     lower poll_min or raise poll",
                    show(min),
                    shown(interval, s.poll.is_some())
                ),
            );
        }
        let longest = burst.longest();
        if min <= max && min <= interval && interval <= max && min < longest {
            let (how, lower) = if burst.mode == Mode::Date {
                let how = format!(
                    "mode = \"date\", up to 12 probes with timeout {}",
                    show(burst.timeout)
                );
                (how, "timeout")
            } else {
                let how = format!(
                    "{} samples, timeout {}: connection, TLS, warm-up and each sample may take \
                     that long",
                    burst.samples,
                    show(burst.timeout)
                );
                (how, "samples or timeout")
            };
            let at_least = Duration::from_secs(longest.as_secs() + 1);
            self.error(
                &at(min_key),
                format!(
                    "{min_key} ({}) is shorter than a burst can take ({}; {how}): raise \
                     {min_key} to at least {}, or lower {lower}",
                    show(min),
                    show(longest),
                    show(at_least)
                ),
            );
        }
        Poll { interval, min, max }
    }

    /// Two `[[source]]` entries that would measure the same server the same way.
    fn duplicate_sources(&mut self, sources: &[(usize, SourceConfig)]) {
        let mut seen = HashMap::new();
        for (i, s) in sources {
            if self.dropped.contains(&format!("source.{i}.mode")) {
                continue;
            }
            let t = &s.target;
            let mode = match (s.burst.mode, t.scheme.as_str()) {
                (Mode::Auto, "ws" | "wss") => Mode::Ws,
                (Mode::Auto, _) => Mode::Json,
                (m, _) => m,
            };
            let key = (
                mode,
                t.scheme.is_tls(),
                t.host.clone(),
                t.port,
                t.path_and_query.clone(),
            );
            if let Some(first) = seen.insert(key, (*i, &s.url)) {
                let line = self.line(&format!("source.{}", first.0));
                self.error(
                    &format!("source.{i}.url"),
                    format!(
                        "{} is the same server, measured the same way, as the [[source]]{line} \
                         ({}): list each once",
                        s.url, first.1
                    ),
                );
            }
        }
    }

    fn output(&mut self, i: usize, o: OutputFile) -> Option<OutputConfig> {
        let at = |key: &str| format!("output.{i}.{key}");
        let misplaced = |check: &mut Self, key: &str, kind: &str, takes: &str| {
            check.error(
                &at(key),
                format!("`{key}` does not apply to type = \"{kind}\", which takes {takes}"),
            )
        };
        match o.kind.as_str() {
            "shm" => {
                if o.path.is_some() {
                    misplaced(self, "path", "shm", "`unit` and `perm`");
                }
                let Some(unit) = o.unit else {
                    if self.dropped.contains(&at("unit")) {
                        return None; // Its wrong value is reported.
                    }
                    self.error(
                        &at("type"),
                        "missing key `unit` in this shm [[output]]: add unit = 2 (chrony: \
                         `refclock SHM 2`, ntpd: `server 127.127.28.2`)"
                            .to_owned(),
                    );
                    return None;
                };
                let Ok(unit) = u8::try_from(unit) else {
                    self.error(
                        &at("unit"),
                        format!("unit = {unit}: SHM units are 0 to 255"),
                    );
                    return None;
                };
                let perm = o.perm.and_then(|p| self.perm(&at("perm"), p));
                if !self.dropped.contains(&at("perm")) {
                    self.shm_warnings(i, unit, perm);
                }
                Some(OutputConfig::Shm { unit, perm })
            }
            "sock" => {
                for key in ["unit", "perm"] {
                    if self.written(&at(key)) {
                        misplaced(self, key, "sock", "`path`");
                    }
                }
                let Some(path) = o.path else {
                    if self.dropped.contains(&at("path")) {
                        return None; // Its wrong value is reported.
                    }
                    self.error(
                        &at("type"),
                        "missing key `path` in this sock [[output]]: add the socket of chrony's \
                         `refclock SOCK PATH`, e.g. path = \"/run/chrony.webntp.sock\""
                            .to_owned(),
                    );
                    return None;
                };
                if !path.is_absolute() {
                    self.error(
                        &at("path"),
                        format!(
                            "{} is a relative path: write the absolute path chrony's `refclock \
                             SOCK` line names",
                            path.display()
                        ),
                    );
                }
                Some(OutputConfig::Sock { path })
            }
            other => {
                self.error(
                    &at("type"),
                    format!(
                        "unknown output type `{other}`, {}",
                        locate::suggest(other, &OUTPUT_TYPES)
                    ),
                );
                None
            }
        }
    }

    /// `perm`: octal, owner read and write, nothing above 0777.
    fn perm(&mut self, at: &str, perm: Perm) -> Option<u32> {
        let value = match perm {
            Perm::Text(s) => {
                let digits = s.strip_prefix("0o").unwrap_or(&s);
                match u32::from_str_radix(digits, 8) {
                    Ok(v) if !digits.is_empty() => Some(v),
                    _ => None,
                }
            }
            Perm::Number(n) => {
                let decimal = matches!(
                    self.doc.get(at).map(|v| v.get_ref()),
                    Some(DeValue::Integer(i)) if i.radix() == 10
                );
                if decimal && n > 7 {
                    self.error(
                        at,
                        format!(
                            "perm = {n} is a decimal number: write permissions in octal, \
                             perm = \"0{n}\" or perm = 0o{n}"
                        ),
                    );
                    return None;
                }
                u32::try_from(n).ok()
            }
        };
        match value {
            Some(v) if v <= 0o777 && v & 0o600 == 0o600 => Some(v),
            Some(v) if v <= 0o777 => {
                self.error(
                    at,
                    format!(
                        "perm = \"{v:04o}\" does not let webntpd (the owner) read and write the \
                         segment: use \"0600\", or \"0644\" for readers running as another user"
                    ),
                );
                None
            }
            _ => {
                self.error(
                    at,
                    "perm must be octal permissions from \"0600\" to \"0777\", e.g. perm = \"0600\""
                        .to_owned(),
                );
                None
            }
        }
    }

    fn shm_warnings(&mut self, i: usize, unit: u8, given: Option<u32>) {
        if unit < 2 {
            self.warn(
                &format!("output.{i}.unit"),
                format!(
                    "SHM unit {unit}: ntpd and ntpsec create units 0 and 1 for root only, so \
                     webntpd must run as root to write it; units 2 and up avoid that",
                ),
            );
        }
        let perm = given.unwrap_or_else(|| shm::default_perm(unit));
        if perm & 0o022 != 0 {
            let at = if given.is_some() { "perm" } else { "unit" };
            let why = if given.is_some() {
                ""
            } else {
                ", ntpd's default for units 2 and up"
            };
            self.warn(
                &format!("output.{i}.{at}"),
                format!(
                    "SHM unit {unit} will be writable by other users (mode {perm:04o}{why}): any \
                     local user can then inject time; set perm = \"0600\" when the reader runs \
                     as root (chronyd, ntpd do), or use a sock output",
                ),
            );
        }
    }

    /// One writer per SHM unit and per SOCK path.
    fn duplicate_outputs(&mut self, outputs: &[(usize, OutputConfig)]) {
        let mut units = HashMap::new();
        let mut paths = HashMap::new();
        for (i, o) in outputs {
            let (first, what, key) = match o {
                OutputConfig::Shm { unit, .. } => {
                    (units.insert(*unit, *i), format!("SHM unit {unit}"), "unit")
                }
                OutputConfig::Sock { path } => (
                    paths.insert(path.clone(), *i),
                    format!("socket {}", path.display()),
                    "path",
                ),
            };
            if let Some(first) = first {
                let line = self.line(&format!("output.{first}"));
                self.error(
                    &format!("output.{i}.{key}"),
                    format!(
                        "{what} is already written by the [[output]]{line}: each needs its own \
                         {key}; pick another or remove one"
                    ),
                );
            }
        }
    }

    fn server(&mut self, s: &ServerSettings) {
        let tls_keys = ["tls_cert", "tls_key", "tls_listen"];
        match (&s.tls_cert, &s.tls_key) {
            _ if self.dropped.any("server", &tls_keys) => {}
            (Some(_), None) => self.error(
                "server.tls_cert",
                "tls_cert without tls_key: add tls_key = \"/path/to/key.pem\"".to_owned(),
            ),
            (None, Some(_)) => self.error(
                "server.tls_key",
                "tls_key without tls_cert: add tls_cert = \"/path/to/fullchain.pem\"".to_owned(),
            ),
            (None, None) if !s.tls_listen.is_empty() => self.error(
                "server.tls_listen",
                "tls_listen needs a certificate: add tls_cert and tls_key".to_owned(),
            ),
            (Some(_), Some(_)) if s.tls_listen.is_empty() => self.error(
                "server.tls_cert",
                "tls_cert and tls_key but no TLS listener: add tls_listen = [\":443\"] or remove \
                 them"
                    .to_owned(),
            ),
            _ => {}
        }
        let mut seen = HashMap::new();
        let listeners = s.listen.iter().enumerate().map(|(i, a)| (a, "listen", i));
        let tls = s
            .tls_listen
            .iter()
            .enumerate()
            .map(|(i, a)| (a, "tls_listen", i));
        for (addr, key, i) in listeners.chain(tls) {
            if let Some(first) = seen.insert(addr.0, key) {
                self.error(
                    &format!("server.{key}.{i}"),
                    format!("{addr} is already in {first}: each address can be bound once"),
                );
            }
        }
        for (i, origin) in s.allow_origin.iter().enumerate() {
            if let Err(e) = super::parse_origin(origin) {
                self.error(&format!("server.allow_origin.{i}"), e);
            }
        }
        for (i, url) in s.clock_peer.iter().enumerate() {
            if let Err(e) = crate::server::page::parse_peer(url) {
                self.error(&format!("server.clock_peer.{i}"), e);
            }
        }
        let max_peers = crate::server::page::MAX_PEERS;
        if s.clock_peer.len() > max_peers {
            self.error(
                "server.clock_peer",
                format!(
                    "{} clock peers: the page asks at most {max_peers}; keep the nearest",
                    s.clock_peer.len()
                ),
            );
        }
        if s.clock_page.0.is_none() && !s.clock_peer.is_empty() {
            self.warn(
                "server.clock_peer",
                "clock_peer is set but clock_page = \"off\": no page asks them".to_owned(),
            );
        }
        let min_header = crate::server::MIN_HEADER_BYTES;
        if !(min_header..=super::MAX_HEADER_BYTES as usize).contains(&(s.max_header_bytes as usize))
        {
            self.error(
                "server.max_header_bytes",
                format!(
                    "max_header_bytes = {}: must be {min_header} to {}",
                    s.max_header_bytes,
                    super::MAX_HEADER_BYTES
                ),
            );
        }
        if !(1..=super::MAX_CONNECTIONS).contains(&s.max_connections) {
            self.error(
                "server.max_connections",
                format!(
                    "max_connections = {}: must be 1 to {}",
                    s.max_connections,
                    super::MAX_CONNECTIONS
                ),
            );
        }
        if let Some(url) = &s.leap_seconds_url {
            if let Err(e) = crate::leap::store::parse_list_url(url) {
                self.error("server.leap_seconds_url", e.to_string());
            }
        }
    }

    /// `selectable`: how many sources may be selected, when every `[[source]]` could be read.
    fn sanity(&mut self, sanity: &SanityConfig) {
        if self.dropped.contains("sanity") || self.dropped.contains("sanity.panic_threshold") {
            return;
        }
        if sanity.panic_threshold < Duration::from_secs(1) {
            self.error(
                "sanity.panic_threshold",
                format!(
                    "panic_threshold = \"{}\" would refuse ordinary corrections: it bounds how \
                     far off a clock webntpd will correct at all (ntpd uses 1000s); use 1s or \
                     more",
                    show(sanity.panic_threshold)
                ),
            );
        }
        if sanity.allow_startup_step && !self.dropped.contains("sanity.allow_startup_step") {
            self.warn(
                "sanity.allow_startup_step",
                format!(
                    "allow_startup_step = true: the first sample after start is written however \
                     far off it is (past {}, the panic threshold), so one wrong or lying source \
                     at start can set this clock to any time after this build; keep it for \
                     hosts whose clock starts out wrong",
                    show(sanity.panic_threshold)
                ),
            );
        }
    }

    fn selection(&mut self, sel: &SelectionConfig, selectable: Option<usize>, outputs: bool) {
        if self.dropped.contains("selection") || self.dropped.contains("selection.min_sources") {
            return;
        }
        if sel.min_sources == 0 {
            self.error(
                "selection.min_sources",
                "min_sources = 0 would write a time that no source vouches for: use 1 or more"
                    .to_owned(),
            );
            return;
        }
        let Some(selectable) = selectable else {
            return;
        };
        if sel.min_sources > selectable {
            self.error(
                "selection.min_sources",
                format!(
                    "min_sources = {} but only {selectable} source{} can be selected (noselect \
                     ones do not count): add sources or lower min_sources",
                    sel.min_sources,
                    if selectable == 1 { "" } else { "s" }
                ),
            );
        } else if selectable == 2 {
            self.warn(
                "source",
                "two selectable sources cannot outvote each other: when they disagree, neither \
                 can be trusted; a third source lets the majority win"
                    .to_owned(),
            );
        } else if selectable == 1 && outputs {
            self.warn(
                "source",
                "one selectable source decides alone: nothing checks it, so a server that is \
                 wrong or lies (within the [sanity] rules) sets this clock; add two more \
                 [[source]] servers, run by others, so the majority can outvote one"
                    .to_owned(),
            );
        }
    }

    /// The files the configuration names: they must be there when the daemon starts.
    fn files(&mut self, config: &Config) {
        for (i, s) in config.sources.iter().enumerate() {
            for (j, file) in s.burst.cacert.iter().enumerate() {
                if let Err(e) = crate::net::connect::load_pem_roots(file) {
                    self.error(&format!("source.{i}.cacert.{j}"), e.to_string());
                }
            }
        }
        let Some(server) = &config.server else {
            return;
        };
        if let Some(files) = server.server_config().tls {
            if let Err(e) = crate::server::load_tls_config(&files) {
                self.error("server.tls_cert", e.to_string());
            }
        }
        if let Err(e) = crate::leap::store::read_list(&server.leap_seconds) {
            self.warn(
                "server.leap_seconds",
                format!(
                    "{e}; replies will carry no leap-second information until a valid list is \
                     there (install tzdata, or set leap_seconds)"
                ),
            );
        }
    }
}

/// The reserved name `host` is or lies under (RFC 2606 and RFC 6761: the `example`, `test`
/// and `invalid` top-level domains and `example.com`, `.net`, `.org`), if any: a URL with one
/// is a placeholder nobody filled in. (`localhost` is reserved too, but means this host.)
pub fn reserved_name(host: &str) -> Option<&'static str> {
    const RESERVED: [&str; 6] = [
        "example.com",
        "example.net",
        "example.org",
        "example",
        "test",
        "invalid",
    ];
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    RESERVED
        .into_iter()
        .find(|r| host == *r || host.ends_with(&format!(".{r}")))
}
