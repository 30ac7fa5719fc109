//! The `webntpd` command line: parse arguments, then call into the library.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use webntpd::clock::{SharedClock, SystemClock};
use webntpd::config::{self, BurstSettings, ServerSettings};
use webntpd::daemon::notify;
use webntpd::daemon::signals::{SignalEvent, Signals};
use webntpd::exit;
use webntpd::refclock::OutputConfig;
use webntpd::server::RunningServer;

/// Time over HTTP: a WebNTP server (go-webntp and NICT compatible, Time over HTTPS).
#[derive(Parser, Debug)]
#[command(name = "webntpd", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,

    /// Log level: error, warn, info (the default), debug or trace; for `run`, overrides the
    /// configuration's [log] level. RUST_LOG, when set, overrides both
    /// (e.g. RUST_LOG=webntpd=debug).
    #[arg(long, global = true, value_name = "LEVEL")]
    log_level: Option<String>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve WebNTP over HTTP(S) and WebSocket until SIGTERM or SIGINT.
    ///
    /// SIGHUP reloads the TLS certificate and the leap-seconds file.
    Serve(Box<ServerSettings>),
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
struct StatusArgs {
    #[command(flatten)]
    config: ConfigArg,

    /// Ask this socket instead of the one the configuration names.
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,

    /// Print the status as JSON (offsets and delays in seconds).
    #[arg(long)]
    json: bool,
}

/// `-c PATH`, for every subcommand that reads the configuration file.
#[derive(Args, Debug)]
struct ConfigArg {
    /// The configuration file.
    #[arg(short = 'c', long = "config", value_name = "PATH", default_value = config::DEFAULT_PATH)]
    config: PathBuf,
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

    /// With --shm/--sock: an offset larger than this is not written (ntpd's panic gate).
    #[arg(long, default_value = "1000s", value_name = "DURATION", value_parser = config::parse_duration)]
    panic_threshold: Duration,

    /// With --shm/--sock: write the result even beyond --panic-threshold (ntpd -g), to set a
    /// clock that is far off. A time before this build was made is never written.
    #[arg(long)]
    allow_step: bool,
}

/// A timeout: a duration (`2s`, `500ms`) or plain seconds (`2`, `0.5`).
fn parse_timeout(s: &str) -> Result<Duration, String> {
    if let Ok(secs) = s.parse::<f64>() {
        if secs.is_finite() && secs > 0.0 && secs <= 3600.0 {
            return Ok(Duration::from_secs_f64(secs));
        }
        return Err(format!("`{s}`: must be between 0 and 3600 seconds"));
    }
    config::parse_duration(s)
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
    let level = cli.log_level.as_deref();
    if !matches!(cli.command, Command::Run(_)) {
        webntpd::logging::init_stderr(level.unwrap_or("info"));
    }
    let code = match cli.command {
        Command::Serve(args) => run_async(serve(*args)),
        Command::Query(args) => run_async(query(args)),
        Command::CheckConfig(args) => {
            config::check_command(&args.config, &mut std::io::stdout(), &mut std::io::stderr())
        }
        Command::Run(args) => {
            run_async(async move { webntpd::daemon::run(&args.config, level).await })
        }
        Command::Status(args) => run_async(status(args)),
    };
    ExitCode::from(code)
}

/// Run a command on a multi-threaded runtime.
fn run_async(command: impl std::future::Future<Output = u8>) -> u8 {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return exit::OSERR;
        }
    };
    let code = runtime.block_on(command);
    // Do not wait for stragglers past the shutdown timeout: they were given their chance.
    runtime.shutdown_timeout(Duration::from_millis(100));
    code
}

async fn status(args: StatusArgs) -> u8 {
    let socket = match args.socket {
        Some(p) => p,
        None => match webntpd::daemon::status_socket_of(&args.config.config) {
            Ok(p) => p,
            Err((e, _)) if !args.config.config.exists() => {
                let p = PathBuf::from(config::DEFAULT_STATUS_SOCKET);
                eprintln!(
                    "webntpd status: {e}; asking the default socket {}",
                    p.display()
                );
                p
            }
            Err((e, code)) => {
                eprintln!("webntpd status: {e}");
                return code;
            }
        },
    };
    webntpd::daemon::status_command(
        &socket,
        args.json,
        &mut std::io::stdout(),
        &mut std::io::stderr(),
    )
    .await
}

async fn serve(settings: ServerSettings) -> u8 {
    // Handlers first: a SIGTERM sent as soon as the listeners are announced must not find
    // the default action (death without a clean shutdown) still in place.
    let mut signals = match Signals::new() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot install signal handlers: {e}");
            return exit::OSERR;
        }
    };
    let server = match RunningServer::start(&settings, SystemClock::shared()).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}");
            return e.exit_code();
        }
    };
    // Type=notify under systemd: ready once every listener is bound.
    let serving = format!(
        "serving on {}",
        server
            .local_addrs()
            .iter()
            .map(|(a, tls)| format!("{}://{a}", if *tls { "https" } else { "http" }))
            .collect::<Vec<_>>()
            .join(", ")
    );
    notify::ready(&serving);
    loop {
        match signals.next().await {
            SignalEvent::Shutdown(name) => {
                tracing::info!("{name} received");
                break;
            }
            SignalEvent::Reload => {
                tracing::info!("SIGHUP: reloading the leap-seconds list and TLS certificate");
                notify::reloading();
                server.reload();
                notify::ready(&serving);
            }
        }
    }
    notify::stopping();
    if server.stop().await {
        exit::OK
    } else {
        exit::SOFTWARE
    }
}

async fn query(args: QueryArgs) -> u8 {
    use webntpd::client::connect::ProxySetting;
    let proxy = match (args.proxy, args.no_proxy) {
        (Some(url), _) => ProxySetting::Url(url),
        (None, true) => ProxySetting::Off,
        (None, false) => ProxySetting::FromEnv,
    };
    let burst = BurstSettings {
        mode: args.mode,
        samples: usize::from(args.samples),
        timeout: args.timeout,
        proxy,
        cacert: args.cacert,
        rt: !args.no_rt,
    };
    let opts = match burst.client_options() {
        Ok(opts) => opts,
        Err(e) => {
            tracing::error!("{e}");
            return exit::NOINPUT;
        }
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
    let policy = webntpd::sanity::Policy {
        floor: webntpd::sanity::floor(),
        panic_ns: i64::try_from(args.panic_threshold.as_nanos()).unwrap_or(i64::MAX),
        allow_startup_step: args.allow_step,
    };
    let clock: SharedClock = SystemClock::shared();
    webntpd::query::run(
        &args.urls,
        &opts,
        args.json,
        &outputs,
        policy,
        clock,
        &mut std::io::stdout(),
        &mut std::io::stderr(),
    )
    .await
}
