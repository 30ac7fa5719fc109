//! From the file's tables to a validated [`Config`]: the schema as serde reads it (strict:
//! unknown keys are errors), then every check that needs more than one value at a time, each
//! error or warning placed at the key it is about. The `[[source]]` and `[[output]]` tables
//! are `sources`' and `outputs`'; the rest is here.

mod outputs;
pub(super) mod sources;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use toml::de::DeValue;

use super::locate::Doc;
use super::read::{Dropped, Reader, MAX_ERRORS, TOP_LEVEL};
use super::value::show;
use super::{
    Config, ConfigError, Diagnostic, Loaded, LogConfig, MetricsConfig, SanityConfig,
    SelectionConfig, ServerSettings, StatusConfig,
};
use outputs::OutputFile;
use sources::SourceFile;

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
    metrics: Option<MetricsConfig>,
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
                "metrics" => file.metrics = reader.read("metrics", value),
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

/// Whether two listening addresses with the same port would clash: the same IP, or either
/// is every address (`0.0.0.0`, `[::]`).
fn overlaps(a: std::net::SocketAddr, b: std::net::SocketAddr) -> bool {
    a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified()
}

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
        let mut outputs = valid_entries(file.output, |i, o| self.output(i, o));
        self.duplicate_outputs(&mut outputs);
        if let Some(server) = &file.server {
            self.server(server);
            self.server_ntp(server, &outputs);
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
        if let Some(metrics) = &file.metrics {
            self.metrics(metrics, file.server.as_ref());
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
            metrics: file.metrics,
        }
    }

    /// `[metrics]`: an address of its own, and a warning when anyone may read it.
    fn metrics(&mut self, m: &MetricsConfig, server: Option<&ServerSettings>) {
        if self.dropped.contains("metrics.listen") {
            return;
        }
        let taken = server.and_then(|s| {
            let plain = s.listen.iter().map(|a| (a, "listen"));
            plain
                .chain(s.tls_listen.iter().map(|a| (a, "tls_listen")))
                // Port 0 is any free port: never the same one twice.
                .find(|(a, _)| {
                    a.0.port() == m.listen.0.port() && a.0.port() != 0 && overlaps(a.0, m.listen.0)
                })
        });
        if let Some((addr, key)) = taken {
            self.error(
                "metrics.listen",
                format!(
                    "metrics listen = \"{}\" is also the server's {key} {addr}: the metrics need \
                     a port of their own; use another, e.g. listen = \"{}\"",
                    m.listen,
                    super::DEFAULT_METRICS_LISTEN
                ),
            );
        } else if !m.listen.0.ip().is_loopback() {
            self.warn(
                "metrics.listen",
                format!(
                    "metrics listen = \"{}\" is not a loopback address: anyone who can reach it \
                     reads the source URLs and the server's counters; keep it on 127.0.0.1 \
                     (Prometheus on this host) or firewall the port",
                    m.listen
                ),
            );
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
            if let Err(e) = crate::leap::download::parse_list_url(url) {
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
