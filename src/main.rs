//! The `webntpd` command line: parse arguments, then call into the library.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use webntpd::cli::{Cli, Command, QueryArgs, ServeArgs, StatusArgs, StatusFormat};
use webntpd::clock::{SharedClock, SystemClock};
use webntpd::config::{self, BurstSettings};
use webntpd::daemon::notify;
use webntpd::daemon::signals::{SignalEvent, Signals};
use webntpd::exit;
use webntpd::refclock::OutputConfig;
use webntpd::server::RunningServer;

/// jemalloc, with a background thread that returns freed pages (options in
/// .cargo/config.toml): glibc's malloc keeps what a load freed for the life of the process
/// (BENCHMARKS.md, "Memory at scale").
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
        None => match config::status_socket_of(&args.config.config) {
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
    let format = match (args.format, args.json) {
        (Some(f), _) => f,
        (None, true) => StatusFormat::Json,
        (None, false) => StatusFormat::Table,
    };
    webntpd::daemon::status::status_command(
        &socket,
        format,
        args.wait_sync,
        &mut std::io::stdout(),
        &mut std::io::stderr(),
    )
    .await
}

async fn serve(args: ServeArgs) -> u8 {
    let settings = args.server;
    // Handlers first: a SIGTERM sent as soon as the listeners are announced must not find
    // the default action (death without a clean shutdown) still in place.
    let mut signals = match Signals::new() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot install signal handlers: {e}");
            return exit::OSERR;
        }
    };
    let server = match RunningServer::start(
        settings.server_config(),
        settings.leap_config(),
        SystemClock::shared(),
    )
    .await
    {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}");
            return e.exit_code();
        }
    };
    let metrics = match args.metrics {
        Some(addr) => {
            let counters = server.metrics().clone();
            let render = move || webntpd::metrics::Snapshot::server(counters.counters());
            match webntpd::metrics::MetricsServer::start(addr, render).await {
                Ok(m) => Some(m),
                Err(e) => {
                    tracing::error!("metrics: {e}");
                    server.stop().await;
                    return e.exit_code();
                }
            }
        }
        None => None,
    };
    // Type=notify under systemd: ready once every listener is bound.
    let serving = format!("serving on {}", server.describe_addrs());
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
    if let Some(m) = metrics {
        m.stop().await;
    }
    if server.stop().await {
        exit::OK
    } else {
        exit::SOFTWARE
    }
}

async fn query(args: QueryArgs) -> u8 {
    use webntpd::net::connect::ProxySetting;
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
    let policy = webntpd::sync::sanity::Policy {
        floor: webntpd::sync::sanity::floor(),
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
