//! The command line's definition (clap): every subcommand, flag and help text. `main.rs`
//! parses it and calls into the library; the man page `webntpd(8)` and the shell
//! completions are generated from it (tests/it/docs.rs keeps the shipped ones in step).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::config::{self, ServerSettings};
pub use crate::daemon::status::StatusFormat;
use crate::server::ListenAddr;

/// Time over HTTP: a WebNTP server (go-webntp and NICT compatible, Time over HTTPS).
#[derive(Parser, Debug)]
#[command(name = "webntpd", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Log level: error, warn, info (the default), debug or trace; for `run`, overrides the
    /// configuration's [log] level. RUST_LOG, when set, overrides both
    /// (e.g. RUST_LOG=webntpd=debug).
    #[arg(long, global = true, value_name = "LEVEL")]
    pub log_level: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve WebNTP over HTTP(S) and WebSocket until SIGTERM or SIGINT.
    ///
    /// SIGHUP reloads the TLS certificate and the leap-seconds file.
    Serve(Box<ServeArgs>),
    /// Measure the local clock against WebNTP servers once and print the offsets.
    ///
    /// Exits 0 if at least one server answered, 69 if none did. With --shm or --sock the best
    /// result is also handed to ntpd/ntpsec/chrony, once.
    Query(QueryArgs),
    /// Check a configuration file and exit: 0 if it is usable (warnings are printed), 78 if
    /// it is wrong (every error is printed with its line and column), 66 if it cannot be read.
    CheckConfig(ConfigArg),
    /// Run the daemon in the foreground: poll the configured sources, feed the outputs, serve
    /// if [server] is configured (the systemd unit's ExecStart).
    ///
    /// SIGHUP reloads the configuration (a broken one is refused and the running one stays);
    /// SIGTERM or SIGINT stop it cleanly. Exits 78 on a configuration error.
    Run(ConfigArg),
    /// Show what the running daemon is doing: sources, selection, outputs, leap status.
    ///
    /// Asks the status socket named in the configuration (or --socket). Exits 69 if no daemon
    /// answers.
    Status(StatusArgs),
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub server: ServerSettings,

    /// Serve Prometheus/OpenMetrics metrics (GET /metrics) on ADDR, a listener of its own
    /// (e.g. 127.0.0.1:9975; keep it on loopback or firewall it). Off by default.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<ListenAddr>,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub config: ConfigArg,

    /// Ask this socket instead of the one the configuration names.
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,

    /// Print the status as JSON (offsets and delays in seconds); the same as --format json.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,

    /// How to print the status: a table, JSON, or the Prometheus text format of the metrics
    /// endpoint (for node-exporter's textfile collector).
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<StatusFormat>,

    /// Wait until the daemon is synchronised (it has written a combined offset that the
    /// selection and the sanity rules accepted), at most TIMEOUT (e.g. 2m; without one, as
    /// long as it takes), checking every second; then print the status. Like `chronyc
    /// waitsync`, for scripts and ExecStartPost= of units that need good time.
    #[arg(long, value_name = "TIMEOUT", num_args = 0..=1, require_equals = true,
          default_missing_value = "0", value_parser = parse_wait)]
    pub wait_sync: Option<Duration>,
}

/// `--wait-sync`'s limit: a duration, or `0` (given as a bare `--wait-sync`) for none.
pub fn parse_wait(s: &str) -> Result<Duration, String> {
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    config::parse_duration(s)
}

/// `-c PATH`, for every subcommand that reads the configuration file.
#[derive(Args, Debug)]
pub struct ConfigArg {
    /// The configuration file.
    #[arg(short = 'c', long = "config", value_name = "PATH", default_value = config::DEFAULT_PATH)]
    pub config: PathBuf,
}

#[derive(Args, Debug)]
pub struct QueryArgs {
    /// Servers: http://, https://, ws:// or wss:// URLs of WebNTP servers, or
    /// ntp://HOST[:PORT] for an NTP server (to check a gateway).
    #[arg(required = true, value_name = "URL")]
    pub urls: Vec<String>,

    /// Samples per server; the one with the smallest delay is kept.
    #[arg(short = 'n', long, default_value_t = 8, value_name = "N",
          value_parser = clap::value_parser!(u8).range(1..=64))]
    pub samples: u8,

    /// One JSON object per server on stdout (offset, delay, jitter in seconds).
    #[arg(long)]
    pub json: bool,

    /// Longest a single exchange, a connection or a TLS handshake may take (e.g. 2s, 500ms).
    #[arg(long, default_value = "5s", value_name = "DURATION", value_parser = parse_timeout)]
    pub timeout: Duration,

    /// auto (from the URL), json, ws, toh (Time over HTTPS: HEAD /.well-known/time), or date
    /// (any web server's Date: header, bisected to milliseconds).
    #[arg(long, default_value = "auto", value_name = "MODE")]
    pub mode: crate::client::Mode,

    /// Connect through this HTTP proxy (CONNECT). Default: https_proxy/http_proxy/no_proxy.
    #[arg(long, value_name = "URL", conflicts_with = "no_proxy")]
    pub proxy: Option<String>,

    /// Ignore proxy environment variables: connect directly.
    #[arg(long)]
    pub no_proxy: bool,

    /// Also trust the CA certificates in this PEM file (besides the system's). Repeatable.
    #[arg(long, value_name = "FILE")]
    pub cacert: Vec<PathBuf>,

    /// Ignore the server's receive time (rt) and estimate from st alone, as go-webntp does:
    /// to see what the four-timestamp method buys.
    #[arg(long)]
    pub no_rt: bool,

    /// Write the best result once to SHM unit UNIT (0-255, key 0x4E545030+UNIT) for ntpd
    /// (server 127.127.28.UNIT), ntpsec (refclock shm unit UNIT) or chrony (refclock SHM
    /// UNIT). Repeatable.
    #[arg(long, value_name = "UNIT")]
    pub shm: Vec<u8>,

    /// Permissions for an SHM segment webntpd creates (octal). Default 0600 for units 0-1,
    /// 0666 from 2 up: any local user can then write to it.
    #[arg(long, value_name = "MODE", requires = "shm", value_parser = parse_perm)]
    pub shm_perm: Option<u32>,

    /// Send the best result once to chronyd's SOCK refclock socket at PATH (refclock SOCK
    /// PATH). Repeatable.
    #[arg(long, value_name = "PATH")]
    pub sock: Vec<PathBuf>,

    /// With --shm/--sock: an offset larger than this is not written (ntpd's panic gate).
    #[arg(long, default_value = "1000s", value_name = "DURATION", value_parser = config::parse_duration)]
    pub panic_threshold: Duration,

    /// With --shm/--sock: write the result even beyond --panic-threshold (ntpd -g), to set a
    /// clock that is far off. A time before this build was made is never written.
    #[arg(long)]
    pub allow_step: bool,
}

/// A timeout: a duration (`2s`, `500ms`) or plain seconds (`2`, `0.5`).
pub fn parse_timeout(s: &str) -> Result<Duration, String> {
    if let Ok(secs) = s.parse::<f64>() {
        if secs.is_finite() && secs > 0.0 && secs <= 3600.0 {
            return Ok(Duration::from_secs_f64(secs));
        }
        return Err(format!("`{s}`: must be between 0 and 3600 seconds"));
    }
    config::parse_duration(s)
}

/// Octal permission bits, e.g. 0600 or 666.
pub fn parse_perm(s: &str) -> Result<u32, String> {
    match u32::from_str_radix(s, 8) {
        Ok(mode) if mode <= 0o777 => Ok(mode),
        _ => Err(format!(
            "`{s}`: expected octal permission bits from 0 to 0777, e.g. 0600 or 0666"
        )),
    }
}
