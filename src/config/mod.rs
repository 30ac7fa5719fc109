//! The daemon's configuration file, `/etc/webntpd.toml`: its schema, reading it, and checking
//! it, so that `webntpd run` and `webntpd check-config` see exactly the same thing.
//!
//! [`Config::parse`] turns the text into a validated [`Config`] plus warnings, or into errors;
//! [`Config::load`] reads the file first and also checks the files it names (TLS certificate
//! and key, extra CA certificates, the leap-seconds list). Every message names the file, the
//! line and column, the key and its table, and says what to change.
//!
//! - `server`: the `[server]` table, shared with `webntpd serve`'s flags ([`ServerSettings`]).
//! - `value`: durations and origins, written the same way in the file and on the command line.
//! - `read`: from the parsed document to the file's tables, each table and entry on its own,
//!   so that every unknown key and every wrong value is reported in one run.
//! - `check`: from the file's tables to the validated types, with every semantic check.
//! - `locate`: byte offsets to lines and columns, key paths to places in the file.
//!
//! The file, with every key (`config/webntpd.toml` has the same, commented):
//!
//! ```toml
//! [[source]]                      # one per server polled; any number
//! url = "https://time.example.org/"
//! mode = "auto"                   # auto, json, ws, toh, date
//! samples = 8                     # exchanges per burst, 1-64
//! poll = "64s"                    # time between bursts while the source answers
//! poll_min = "64s"                # first retry after a failed burst (default: poll)
//! poll_max = "1024s"              # longest backoff (default: 16 x poll)
//! timeout = "5s"                  # per exchange, connection, TLS handshake
//! proxy = "http://proxy:3128"     # or "none"; unset: https_proxy/http_proxy/no_proxy
//! cacert = ["/etc/ssl/private-ca.pem"]
//! weight = 1.0
//! noselect = false
//! rt = true
//!
//! [[output]]
//! type = "shm"                    # ntpd/ntpsec/chrony shared memory
//! unit = 2
//! perm = "0600"
//!
//! [[output]]
//! type = "sock"                   # chrony's SOCK refclock
//! path = "/run/chrony.webntp.sock"
//!
//! [server]                        # the keys of `webntpd serve`'s flags
//! listen = [":8080"]
//!
//! [selection]
//! min_sources = 1
//! max_error = "1s"
//!
//! [sanity]
//! panic_threshold = "1000s"       # no larger offset is ever written
//! allow_startup_step = false      # true: the first sample may exceed it
//!
//! [log]
//! level = "info"                  # error, warn, info, debug, trace
//! target = "auto"                 # auto, journald, stderr
//!
//! [status]
//! socket = "/run/webntpd/status.sock"
//!
//! [metrics]                       # Prometheus/OpenMetrics endpoint; off without this table
//! listen = "127.0.0.1:9975"       # one address: GET /metrics
//! ```

mod check;
mod locate;
mod read;
mod server;
mod value;

#[cfg(test)]
mod tests;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::client::{ClientOptions, Mode};
use crate::files::ReadError;
use crate::net::connect::{ConnectError, ConnectOptions, ProxySetting, Target};
use crate::refclock::OutputConfig;

pub use locate::Location;
pub use server::{ServerSettings, DEFAULT_LISTEN, MAX_CONNECTIONS, MAX_HEADER_BYTES};
pub use value::{parse_duration, parse_origin};

/// Where the daemon looks for its configuration unless told otherwise (`-c PATH`).
pub const DEFAULT_PATH: &str = "/etc/webntpd.toml";

/// Where the status socket is unless `[status] socket` says otherwise.
pub const DEFAULT_STATUS_SOCKET: &str = "/run/webntpd/status.sock";

/// A validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file it was read from (or the name given to [`Config::parse`]).
    pub path: PathBuf,
    /// The servers to poll, in file order.
    pub sources: Vec<SourceConfig>,
    /// Where the combined estimate goes, in file order.
    pub outputs: Vec<OutputConfig>,
    /// The WebNTP server to run, if there is a `[server]` table.
    pub server: Option<ServerSettings>,
    /// How sources are combined.
    pub selection: SelectionConfig,
    /// What is never written.
    pub sanity: SanityConfig,
    /// Logging.
    pub log: LogConfig,
    /// The status socket.
    pub status: StatusConfig,
    /// The metrics endpoint, if there is a `[metrics]` table.
    pub metrics: Option<MetricsConfig>,
}

/// A configuration that passed every check, and what deserves a second look.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// Things that work but are probably not what was meant, or are risky.
    pub warnings: Vec<Diagnostic>,
}

/// One `[[source]]`: a server to poll.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceConfig {
    /// The URL as written.
    pub url: String,
    /// Where it points.
    pub target: Target,
    /// When to poll.
    pub poll: Poll,
    /// Relative weight when sources are combined (default 1), on top of each source's error.
    pub weight: f64,
    /// Measure and report this source, but never use it for the time (default false).
    pub noselect: bool,
    /// How each burst is taken.
    pub burst: BurstSettings,
}

/// When a source is polled. While it answers, a burst every `interval`. After a failed
/// burst, the next one waits `min`; every further failure doubles the wait, up to `max`; the
/// first success returns to `interval`. Always `min <= interval <= max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Poll {
    /// Between bursts while the source answers (`poll`, default 64 s).
    pub interval: Duration,
    /// The first retry after a failed burst (`poll_min`, default `poll`).
    pub min: Duration,
    /// The longest wait while failures go on (`poll_max`, default 16 x `poll`).
    pub max: Duration,
}

/// How one burst is taken: the settings `webntpd query` takes on its command line, and each
/// `[[source]]` in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct BurstSettings {
    /// How to talk to the server (default auto: from the URL's scheme).
    pub mode: Mode,
    /// Exchanges per burst, 1 to [`crate::client::MAX_SAMPLES`] (default 8).
    pub samples: usize,
    /// Bound on each exchange, on the connection and on the TLS handshake (default 5 s).
    pub timeout: Duration,
    /// Which proxy (default: from the environment, as curl).
    pub proxy: ProxySetting,
    /// PEM files of CA certificates trusted besides the system's.
    pub cacert: Vec<PathBuf>,
    /// Use the server's receive time `rt` when it sends one (default true).
    pub rt: bool,
}

impl Default for BurstSettings {
    fn default() -> Self {
        BurstSettings {
            mode: Mode::Auto,
            samples: 8,
            timeout: Duration::from_secs(5),
            proxy: ProxySetting::FromEnv,
            cacert: Vec::new(),
            rt: true,
        }
    }
}

/// Longest pause between two exchanges of a burst (the client draws 10-40 ms).
const MAX_SPACING: Duration = Duration::from_millis(40);
/// Longest a Date-mode probe waits for the server's next second boundary.
const DATE_PROBE_WAIT: Duration = Duration::from_secs(1);

impl BurstSettings {
    /// The client's options. Reads the `cacert` files, so it can fail.
    pub fn client_options(&self) -> Result<ClientOptions, ConnectError> {
        let mut extra_roots = Vec::new();
        for path in &self.cacert {
            extra_roots.append(&mut crate::net::connect::load_pem_roots(path)?);
        }
        Ok(ClientOptions {
            samples: self.samples,
            sample_timeout: self.timeout,
            mode: self.mode,
            use_rt: self.rt,
            connect: ConnectOptions {
                connect_timeout: self.timeout,
                tls_timeout: self.timeout,
                proxy: self.proxy.clone(),
                extra_roots,
            },
            ..ClientOptions::default()
        })
    }

    /// The longest a burst can take when everything times out: the connection, the TLS
    /// handshake, the warm-up exchange and every sample each take `timeout`, plus the pauses
    /// between samples. In Date mode, `samples` does not count: up to 12 probes, each also
    /// waiting up to a second for the server's next second boundary.
    pub fn longest(&self) -> Duration {
        let t = self.timeout;
        if self.mode == Mode::Date {
            let probes = crate::client::date::DateOptions::default().max_probes as u32;
            t * (probes + 2) + DATE_PROBE_WAIT * probes
        } else {
            let n = self.samples as u32;
            t * (n + 3) + MAX_SPACING * n.saturating_sub(1)
        }
    }
}

/// `[selection]`: how measurements from several sources become one.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SelectionConfig {
    /// Fewest sources that must agree (overlapping correctness intervals) before anything is
    /// written to the outputs (default 1).
    pub min_sources: usize,
    /// A source whose error bound is larger than this is not used (default 1 s).
    #[serde(deserialize_with = "value::duration")]
    pub max_error: Duration,
}

impl Default for SelectionConfig {
    fn default() -> Self {
        SelectionConfig {
            min_sources: 1,
            max_error: Duration::from_secs(1),
        }
    }
}

/// `[sanity]`: what is never written, whatever the sources say (see [`crate::sync::sanity`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SanityConfig {
    /// No combined offset larger than this is written (default 1000 s, ntpd's panic gate).
    #[serde(deserialize_with = "value::duration")]
    pub panic_threshold: Duration,
    /// The first sample after start may exceed `panic_threshold` (default false; ntpd's
    /// `-g`), for a host whose clock starts out far off (no battery-backed clock).
    pub allow_startup_step: bool,
}

impl Default for SanityConfig {
    fn default() -> Self {
        SanityConfig {
            panic_threshold: Duration::from_secs(1000),
            allow_startup_step: false,
        }
    }
}

impl SanityConfig {
    /// The policy with `floor` as the earliest possible time.
    pub fn policy(&self, floor: crate::sync::Timestamp) -> crate::sync::sanity::Policy {
        crate::sync::sanity::Policy {
            floor,
            panic_ns: i64::try_from(self.panic_threshold.as_nanos()).unwrap_or(i64::MAX),
            allow_startup_step: self.allow_startup_step,
        }
    }
}

/// `[log]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Least severe messages logged (default info). `RUST_LOG` overrides it.
    pub level: LogLevel,
    /// Where logs go (default auto).
    pub target: LogTarget,
}

/// A log level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// Errors and warnings.
    Warn,
    /// Also what the daemon does (the default).
    #[default]
    Info,
    /// Also every burst.
    Debug,
    /// Everything.
    Trace,
}

impl LogLevel {
    /// The name, as `tracing` filters take it.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

/// Where logs go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogTarget {
    /// journald when running under systemd (`JOURNAL_STREAM` set), stderr otherwise.
    #[default]
    Auto,
    /// journald's native protocol, with structured fields.
    Journald,
    /// Plain lines on stderr.
    Stderr,
}

/// `[status]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatusConfig {
    /// The read-only Unix socket `webntpd status` reads (default
    /// [`DEFAULT_STATUS_SOCKET`]); must be absolute.
    pub socket: PathBuf,
}

impl Default for StatusConfig {
    fn default() -> Self {
        StatusConfig {
            socket: PathBuf::from(DEFAULT_STATUS_SOCKET),
        }
    }
}

/// Where the metrics endpoint listens unless `[metrics] listen` says otherwise.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9975";

/// `[metrics]`: the Prometheus/OpenMetrics endpoint (`GET /metrics`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// The one address it listens on (default [`DEFAULT_METRICS_LISTEN`]: loopback only).
    #[serde(deserialize_with = "value::one_address")]
    pub listen: crate::server::ListenAddr,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: crate::server::ListenAddr(std::net::SocketAddr::from(([127, 0, 0, 1], 9975))),
        }
    }
}

/// A message about one place in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file.
    pub path: PathBuf,
    /// Where in it, when the message is about one place.
    pub location: Option<Location>,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    /// `/etc/webntpd.toml line 12, column 1: unknown key ...`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(l) = self.location {
            write!(f, " line {}, column {}", l.line, l.column)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl Diagnostic {
    /// As a warning is printed: `/etc/webntpd.toml line 3, column 8: warning: ...`.
    pub fn as_warning(&self) -> String {
        Diagnostic {
            message: format!("warning: {}", self.message),
            ..self.clone()
        }
        .to_string()
    }
}

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read: missing, unreadable, not a regular file, too large.
    #[error("{source}{}", read_hint(source))]
    Read {
        /// What went wrong, naming the file.
        source: ReadError,
    },
    /// The file was read but is wrong; every error found, in file order.
    #[error("{}", errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid {
        /// What is wrong, at least one.
        errors: Vec<Diagnostic>,
        /// Warnings found on the way, for completeness.
        warnings: Vec<Diagnostic>,
    },
}

fn read_hint(e: &ReadError) -> &'static str {
    if e.is_not_found() {
        " (create it: config/webntpd.toml in webntpd's sources is a documented example; or \
         name another file with -c PATH)"
    } else {
        ""
    }
}

impl ConfigError {
    /// The sysexits code: 66 (NOINPUT) when the file cannot be read or is not a regular file,
    /// 78 (CONFIG) when it is too large or wrong.
    pub fn exit_code(&self) -> u8 {
        match self {
            ConfigError::Read { source } => source.exit_code(),
            ConfigError::Invalid { .. } => crate::exit::CONFIG,
        }
    }
}

impl Config {
    /// Read and validate the file at `path`, including the files it names: TLS certificate
    /// and key, `cacert` files (errors) and the leap-seconds list (a warning when missing).
    /// The file is read as [`crate::files::read`] reads: a regular file of at most
    /// [`crate::files::CONFIG`] (1 MiB), never blocking on a FIFO or a device.
    pub fn load(path: impl AsRef<Path>) -> Result<Loaded, ConfigError> {
        let path = path.as_ref();
        let bytes = crate::files::read(path, crate::files::CONFIG)
            .map_err(|source| ConfigError::Read { source })?;
        let text = utf8(&bytes, path)?;
        check::run(text, path, true)
    }

    /// Validate `text`; `path` names it in messages. Touches no file: the files the
    /// configuration names are checked by [`Config::load`] only.
    pub fn parse(text: &str, path: impl AsRef<Path>) -> Result<Loaded, ConfigError> {
        check::run(text, path.as_ref(), false)
    }

    /// One line for humans: `3 sources, 1 output, server on http://127.0.0.1:8123`.
    pub fn summary(&self) -> String {
        let count = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
        let server = match &self.server {
            Some(s) => format!("server on {}", s.describe_listeners()),
            None => "no server".to_owned(),
        };
        format!(
            "{}, {}, {server}",
            count(self.sources.len(), "source"),
            count(self.outputs.len(), "output")
        )
    }
}

/// `bytes` as text, or an error at the line and column of the first byte that is not UTF-8.
pub(crate) fn utf8<'b>(bytes: &'b [u8], path: &Path) -> Result<&'b str, ConfigError> {
    std::str::from_utf8(bytes).map_err(|e| {
        let good = e.valid_up_to();
        // The prefix is valid UTF-8 by definition; the location counts its characters.
        let before = bytes.get(..good).and_then(|b| std::str::from_utf8(b).ok());
        ConfigError::Invalid {
            errors: vec![Diagnostic {
                path: path.to_path_buf(),
                location: before.map(|b| locate::location(b, good)),
                message: format!(
                    "not UTF-8 (byte 0x{:02x}): save the file as UTF-8",
                    bytes.get(good).copied().unwrap_or_default()
                ),
            }],
            warnings: Vec::new(),
        }
    })
}

/// `webntpd check-config`: validate the file at `path` (and the files it names), print the
/// warnings and errors to `err` and a summary to `out`; return the exit code: 0 when the
/// configuration is usable, 78 when it is wrong, 66 when it cannot be read.
pub fn check_command(path: &Path, out: &mut dyn io::Write, err: &mut dyn io::Write) -> u8 {
    let (result, warnings) = match Config::load(path) {
        Ok(Loaded { config, warnings }) => (Ok(config), warnings),
        Err(ConfigError::Invalid { errors, warnings }) => (
            Err(ConfigError::Invalid {
                errors,
                warnings: Vec::new(),
            }),
            warnings,
        ),
        Err(e) => (Err(e), Vec::new()),
    };
    // Output errors (a closed pipe) cannot be reported anywhere better; the code still tells.
    for w in &warnings {
        let _ = writeln!(err, "{}", w.as_warning());
    }
    match result {
        Ok(config) => {
            let _ = writeln!(out, "{}: OK ({})", path.display(), config.summary());
            crate::exit::OK
        }
        Err(e) => {
            let _ = writeln!(err, "{e}");
            e.exit_code()
        }
    }
}

/// The status socket `webntpd status -c PATH` should ask: `[status] socket` in that file, or
/// the default. Only that key is read, so the status of a daemon still running on an older
/// configuration can be read while the file on disk has an error elsewhere. The file is read
/// as the daemon reads it ([`crate::files::read`]: a regular file of at most 1 MiB, never
/// blocking). On error: the message and the exit code (66 unreadable or not a regular file,
/// 78 too large or not TOML).
pub fn status_socket_of(config: &Path) -> Result<PathBuf, (String, u8)> {
    let fail = |e: ConfigError| (e.to_string(), e.exit_code());
    let bytes = crate::files::read(config, crate::files::CONFIG)
        .map_err(|source| fail(ConfigError::Read { source }))?;
    let text = utf8(&bytes, config).map_err(fail)?;
    let table: toml::Table = toml::from_str(text).map_err(|e| {
        (
            format!(
                "{} is not valid TOML ({}); give the socket with --socket",
                config.display(),
                e.message()
            ),
            crate::exit::CONFIG,
        )
    })?;
    match table.get("status").and_then(|s| s.get("socket")) {
        None => Ok(PathBuf::from(DEFAULT_STATUS_SOCKET)),
        Some(toml::Value::String(p)) => Ok(PathBuf::from(p)),
        Some(_) => Err((
            format!(
                "{}: [status] socket must be a string (a path)",
                config.display()
            ),
            crate::exit::CONFIG,
        )),
    }
}
