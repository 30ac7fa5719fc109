//! The `webntpd` command line: parse arguments, then call into the library.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use webntpd::clock::{SharedClock, SystemClock};
use webntpd::exit;
use webntpd::leap::store::{LeapConfig, LeapStore};
use webntpd::refclock::OutputConfig;
use webntpd::server::{Limits, ListenAddr, OriginPolicy, Server, ServerConfig, TlsFiles};

/// Time over HTTP: a WebNTP server (go-webntp and NICT compatible, Time over HTTPS).
#[derive(Parser, Debug)]
#[command(name = "webntpd", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,

    /// Log level: error, warn, info, debug or trace. RUST_LOG, when set, overrides it
    /// (e.g. RUST_LOG=webntpd=debug).
    #[arg(long, global = true, default_value = "info", value_name = "LEVEL")]
    log_level: String,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve WebNTP over HTTP(S) and WebSocket until SIGTERM or SIGINT.
    ///
    /// SIGHUP reloads the TLS certificate and the leap-seconds file.
    Serve(Box<ServeArgs>),
    /// Measure the local clock against WebNTP servers once and print the offsets.
    ///
    /// Exits 0 if at least one server answered, 69 if none did. With --shm or --sock the best
    /// result is also handed to ntpd/ntpsec/chrony, once.
    Query(QueryArgs),
}

#[derive(Args, Debug)]
struct QueryArgs {
    /// Servers: http://, https://, ws:// or wss:// URLs of WebNTP servers.
    #[arg(required = true, value_name = "URL")]
    urls: Vec<String>,

    /// Samples per server; the one with the smallest delay is kept.
    #[arg(short = 'n', long, default_value_t = 8, value_name = "N",
          value_parser = clap::value_parser!(u8).range(1..=64))]
    samples: u8,

    /// One JSON object per server on stdout (offset, delay, jitter in seconds).
    #[arg(long)]
    json: bool,

    /// Longest a single exchange, a connection or a TLS handshake may take (e.g. 2s, 500ms).
    #[arg(long, default_value = "5s", value_name = "DURATION", value_parser = parse_timeout)]
    timeout: Duration,

    /// auto (from the URL), json, ws, toh (Time over HTTPS: HEAD /.well-known/time), or date
    /// (any web server's Date: header, bisected to milliseconds).
    #[arg(long, default_value = "auto", value_name = "MODE")]
    mode: webntpd::client::Mode,

    /// Connect through this HTTP proxy (CONNECT). Default: https_proxy/http_proxy/no_proxy.
    #[arg(long, value_name = "URL", conflicts_with = "no_proxy")]
    proxy: Option<String>,

    /// Ignore proxy environment variables: connect directly.
    #[arg(long)]
    no_proxy: bool,

    /// Also trust the CA certificates in this PEM file (besides the system's). Repeatable.
    #[arg(long, value_name = "FILE")]
    cacert: Vec<PathBuf>,

    /// Ignore the server's receive time (rt) and estimate from st alone, as go-webntp does:
    /// to see what the four-timestamp method buys.
    #[arg(long)]
    no_rt: bool,

    /// Write the best result once to SHM unit UNIT (0-255, key 0x4E545030+UNIT) for ntpd
    /// (server 127.127.28.UNIT), ntpsec (refclock shm unit UNIT) or chrony (refclock SHM
    /// UNIT). Repeatable.
    #[arg(long, value_name = "UNIT")]
    shm: Vec<u8>,

    /// Permissions for an SHM segment webntpd creates (octal). Default 0600 for units 0-1,
    /// 0666 from 2 up: any local user can then write to it.
    #[arg(long, value_name = "MODE", requires = "shm", value_parser = parse_perm)]
    shm_perm: Option<u32>,

    /// Send the best result once to chronyd's SOCK refclock socket at PATH (refclock SOCK
    /// PATH). Repeatable.
    #[arg(long, value_name = "PATH")]
    sock: Vec<PathBuf>,
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// Serve plain HTTP and ws:// on ADDR (IP:PORT, [IPv6]:PORT or :PORT for every address).
    /// Repeatable. Default 127.0.0.1:8080 when no --listen or --tls-listen is given.
    #[arg(long, value_name = "ADDR")]
    listen: Vec<ListenAddr>,

    /// Serve HTTPS and wss:// on ADDR (needs --tls-cert and --tls-key). Repeatable.
    #[arg(long, value_name = "ADDR")]
    tls_listen: Vec<ListenAddr>,

    /// PEM certificate chain for --tls-listen, leaf first.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,

    /// PEM private key for --tls-listen.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,

    /// The `id` field of every reply. Default: the request's Host header, as go-webntp.
    #[arg(long, value_name = "ID")]
    id: Option<String>,

    /// Browser origin allowed to use the server (CORS and WebSocket Origin), e.g.
    /// https://clock.example.org. Repeatable. Default `*`: any origin.
    #[arg(long, value_name = "ORIGIN", value_parser = parse_origin)]
    allow_origin: Vec<String>,

    /// leap-seconds.list to report leap seconds from.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "/usr/share/zoneinfo/leap-seconds.list"
    )]
    leap_seconds: PathBuf,

    /// Refresh the leap-seconds list from URL (off by default: the server reaches the
    /// internet only when told to).
    #[arg(long, value_name = "URL")]
    leap_seconds_url: Option<String>,

    /// Where refreshed leap-seconds lists are kept.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "/var/lib/webntpd/leap-seconds.list"
    )]
    leap_seconds_cache: PathBuf,

    /// How often to refresh the leap-seconds list (with --leap-seconds-url).
    #[arg(long, value_name = "DURATION", default_value = "1d", value_parser = parse_duration)]
    leap_seconds_refresh: Duration,

    /// Time allowed for a request head (and a TLS handshake) to arrive.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    header_read_timeout: Duration,

    /// Close an HTTP connection idle for this long.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    keepalive_timeout: Duration,

    /// Largest request head in bytes (minimum 8192); larger gets 431.
    #[arg(long, value_name = "BYTES", default_value_t = 8192,
          value_parser = clap::value_parser!(u32).range(8192..=1_048_576))]
    max_header_bytes: u32,

    /// Most connections open at once; more wait to be accepted.
    #[arg(long, value_name = "N", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_connections: u32,

    /// Close a WebSocket that sends nothing for this long.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    ws_idle_timeout: Duration,

    /// How long shutdown waits for in-flight requests.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    shutdown_timeout: Duration,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("`{s}`: {e} (expected e.g. 500ms, 10s, 5m, 1d)"))?;
    if d.is_zero() {
        return Err(format!("`{s}`: must be longer than zero"));
    }
    Ok(d)
}

/// A timeout: a duration (`2s`, `500ms`) or plain seconds (`2`, `0.5`).
fn parse_timeout(s: &str) -> Result<Duration, String> {
    if let Ok(secs) = s.parse::<f64>() {
        if secs.is_finite() && secs > 0.0 && secs <= 3600.0 {
            return Ok(Duration::from_secs_f64(secs));
        }
        return Err(format!("`{s}`: must be between 0 and 3600 seconds"));
    }
    parse_duration(s)
}

/// Octal permission bits, e.g. 0600 or 666.
fn parse_perm(s: &str) -> Result<u32, String> {
    match u32::from_str_radix(s, 8) {
        Ok(mode) if mode <= 0o777 => Ok(mode),
        _ => Err(format!(
            "`{s}`: expected octal permission bits from 0 to 0777, e.g. 0600 or 0666"
        )),
    }
}

fn parse_origin(s: &str) -> Result<String, String> {
    if s == "*" {
        return Ok(s.to_string());
    }
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .ok_or_else(|| {
            format!("`{s}`: an origin is scheme://host[:port], e.g. https://example.org")
        })?;
    if rest.is_empty() || rest.contains('/') || rest.chars().any(|c| c.is_whitespace()) {
        return Err(format!(
            "`{s}`: an origin is scheme://host[:port] with no path, e.g. https://example.org"
        ));
    }
    Ok(s.to_string())
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    init_logging(&cli.log_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return ExitCode::from(exit::OSERR);
        }
    };
    let code = match cli.command {
        Command::Serve(args) => runtime.block_on(serve(*args)),
        Command::Query(args) => runtime.block_on(query(args)),
    };
    // Do not wait for stragglers past the shutdown timeout: they were given their chance.
    runtime.shutdown_timeout(Duration::from_millis(100));
    ExitCode::from(code)
}

fn init_logging(level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .init();
}

async fn serve(args: ServeArgs) -> u8 {
    let clock: SharedClock = SystemClock::shared();
    let leap_cfg = LeapConfig {
        file: args.leap_seconds,
        url: args.leap_seconds_url,
        cache: args.leap_seconds_cache,
        refresh_interval: args.leap_seconds_refresh,
        ..LeapConfig::default()
    };
    let leap = Arc::new(LeapStore::load(&leap_cfg, clock.as_ref()));

    let mut listen = args.listen;
    if listen.is_empty() && args.tls_listen.is_empty() {
        listen.push(ListenAddr(
            "127.0.0.1:8080".parse().expect("valid literal address"),
        ));
    }
    let origins = if args.allow_origin.is_empty() || args.allow_origin.iter().any(|o| o == "*") {
        OriginPolicy::Any
    } else {
        OriginPolicy::List(args.allow_origin)
    };
    let tls = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
        _ => None,
    };
    let config = ServerConfig {
        listen,
        listen_tls: args.tls_listen,
        tls,
        server_id: args.id,
        origins,
        limits: Limits {
            header_read_timeout: args.header_read_timeout,
            keepalive_timeout: args.keepalive_timeout,
            max_header_bytes: args.max_header_bytes as usize,
            max_connections: args.max_connections as usize,
            ws_idle_timeout: args.ws_idle_timeout,
            shutdown_timeout: args.shutdown_timeout,
            ..Limits::default()
        },
    };
    if let Some(limit) = webntpd::server::raise_nofile_limit() {
        if limit < config.limits.max_connections as u64 + 64 {
            tracing::warn!(
                "open-files limit is {limit}, below --max-connections {}; raise it \
                 (LimitNOFILE= in the systemd unit, ulimit -n) or lower --max-connections",
                config.limits.max_connections
            );
        }
    }
    let server = match Server::bind(config, clock.clone(), leap.clone()).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}");
            return e.exit_code();
        }
    };

    let shutdown = CancellationToken::new();
    let _refresh = leap
        .clone()
        .spawn_refresh(leap_cfg.clone(), clock.clone(), shutdown.clone());
    let _expiry = leap
        .clone()
        .spawn_expiry_watch(clock.clone(), shutdown.clone());
    let signals = match Signals::new() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot install signal handlers: {e}");
            return exit::OSERR;
        }
    };
    let tls = server.tls_reloader();
    let run = tokio::spawn(server.run(shutdown.clone()));
    signals
        .wait_for_shutdown(|| {
            tracing::info!("SIGHUP: reloading the leap-seconds list and TLS certificate");
            // The store logs the outcome itself (and keeps the old list on failure).
            let _ = leap.reload(&leap_cfg, clock.as_ref());
            if let Some(tls) = &tls {
                if let Err(e) = tls.reload() {
                    tracing::warn!("TLS certificate not reloaded, keeping the old one: {e}");
                }
            }
        })
        .await;
    shutdown.cancel();
    match run.await {
        Ok(()) => exit::OK,
        Err(e) => {
            tracing::error!("server task failed: {e}");
            exit::SOFTWARE
        }
    }
}

async fn query(args: QueryArgs) -> u8 {
    use webntpd::client::connect::{ConnectOptions, ProxySetting};
    use webntpd::client::ClientOptions;
    let mut extra_roots = Vec::new();
    for path in &args.cacert {
        match webntpd::client::connect::load_pem_roots(path) {
            Ok(mut certs) => extra_roots.append(&mut certs),
            Err(e) => {
                tracing::error!("{e}");
                return exit::NOINPUT;
            }
        }
    }
    let proxy = match (args.proxy, args.no_proxy) {
        (Some(url), _) => ProxySetting::Url(url),
        (None, true) => ProxySetting::Off,
        (None, false) => ProxySetting::FromEnv,
    };
    let opts = ClientOptions {
        samples: usize::from(args.samples),
        sample_timeout: args.timeout,
        mode: args.mode,
        use_rt: !args.no_rt,
        connect: ConnectOptions {
            connect_timeout: args.timeout,
            tls_timeout: args.timeout,
            proxy,
            extra_roots,
        },
        ..ClientOptions::default()
    };
    let outputs: Vec<OutputConfig> = args
        .shm
        .iter()
        .map(|&unit| OutputConfig::Shm {
            unit,
            perm: args.shm_perm,
        })
        .chain(
            args.sock
                .into_iter()
                .map(|path| OutputConfig::Sock { path }),
        )
        .collect();
    let clock: SharedClock = SystemClock::shared();
    webntpd::query::run(
        &args.urls,
        &opts,
        args.json,
        &outputs,
        clock,
        &mut std::io::stdout(),
        &mut std::io::stderr(),
    )
    .await
}

/// SIGTERM, SIGINT and SIGHUP.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Run `on_hup` for every SIGHUP; return at the first SIGTERM or SIGINT.
    async fn wait_for_shutdown(mut self, mut on_hup: impl FnMut()) {
        loop {
            tokio::select! {
                _ = self.term.recv() => { tracing::info!("SIGTERM received"); return; }
                _ = self.int.recv() => { tracing::info!("SIGINT received"); return; }
                _ = self.hup.recv() => on_hup(),
            }
        }
    }
}
