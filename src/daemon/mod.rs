//! The daemon (`webntpd run`): a supervisor that polls every configured source on its
//! schedule, keeps a clock filter per source, selects the sources that agree, and feeds the
//! combined offset to the reference-clock outputs; optionally serves WebNTP too.
//!
//! ```text
//!  source task ─┐ Report           ┌─> SHM / SOCK outputs
//!  source task ─┼──> supervisor ───┼─> status socket (watch channel)
//!  source task ─┘                  └─> sd_notify STATUS / WATCHDOG
//! ```
//!
//! The supervisor owns all state and runs one loop: burst reports, signals (SIGHUP reloads,
//! SIGTERM/SIGINT stop) and the systemd watchdog tick. Because WATCHDOG=1 is sent from that
//! same loop, a stuck supervisor stops pinging and systemd restarts it. Every decision about
//! time is [`crate::sync`]'s; the daemon does the I/O around it:
//!
//! - this file: start-up, the loop, shutdown, the state it owns;
//! - `report`: what a burst's report changes (filter, decision, gate, outputs, log lines);
//! - `reload`: SIGHUP;
//! - `publish`: the status document and systemd's STATUS= line;
//! - [`source`]: one source's polling task and the state kept about it;
//! - [`status`]: the status socket, and `webntpd status` on the other end of it;
//! - [`notify`], [`signals`]: systemd notifications and the signals answered.

pub mod notify;
pub mod signals;
pub mod source;
pub mod status;

use std::path::Path;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::clock::{SharedClock, SystemClock};
use crate::config::{Config, SourceConfig};
use crate::exit;
use crate::refclock::{self, Output, OutputConfig};
use crate::server::RunningServer;
use crate::sync::leap::Leap;
use crate::sync::sanity::{Gate, Policy};
use crate::sync::Timestamp;
use signals::{SignalEvent, Signals};
use source::{Report, SourceState};
use status::{Combined, Status, StatusServer, StatusSource};

/// Reports a source task may queue before it waits for the supervisor.
const REPORT_QUEUE: usize = 64;

/// The combined offset is logged (at info) when it is first written, and again when it has
/// moved by more than both estimates' error bounds together, and at least this much: 1 ms.
const COMBINED_LOG_STEP_NS: i64 = 1_000_000;

/// A log event about one source: "URL (mode): ..." as the text, and the URL and the mode as
/// structured fields (SOURCE_URL and SOURCE_MODE in the journal), so the `json` and `toh`
/// sources of one server can be told apart. Extra fields go in braces before the message.
macro_rules! source_event {
    ($level:ident, $src:expr, { $($field:tt)* }, $($message:tt)+) => {{
        let src: &SourceState = $src;
        let (url, mode) = (src.config.url.as_str(), mode_name(&src.config));
        tracing::$level!(
            source_url = %url,
            source_mode = %mode,
            $($field)*
            "{url} ({mode}): {}",
            format_args!($($message)+)
        )
    }};
    ($level:ident, $src:expr, $($message:tt)+) => {
        source_event!($level, $src, {}, $($message)+)
    };
}

mod publish;
mod reload;
mod report;

use publish::mode_name;

/// Run the daemon with the configuration at `path` until SIGTERM or SIGINT; the exit code.
/// `log_level`, when given (the command line's `--log-level`), overrides `[log] level`.
pub async fn run(path: &Path, log_level: Option<&str>) -> u8 {
    let loaded = match Config::load(path) {
        Ok(l) => l,
        Err(e) => {
            crate::logging::init_stderr("info");
            tracing::error!("{e}");
            return e.exit_code();
        }
    };
    let config = loaded.config;
    crate::logging::init(
        log_level.unwrap_or(config.log.level.as_str()),
        config.log.target,
    );
    for w in &loaded.warnings {
        tracing::warn!("{}", w.as_warning());
    }
    let mut signals = match Signals::new() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot install signal handlers: {e}");
            return exit::OSERR;
        }
    };
    let mut daemon = match Daemon::start(config, SystemClock::shared()).await {
        Ok(d) => d,
        Err((message, code)) => {
            tracing::error!("{message}");
            return code;
        }
    };
    let code = daemon.supervise(&mut signals).await;
    daemon.stop().await;
    code
}

/// An open output and what the status shows about it.
struct OutputSlot {
    config: OutputConfig,
    output: Output,
    writes: u64,
    failures: u64,
    last_write: Option<f64>,
    last_error: Option<String>,
}

impl OutputSlot {
    fn open(config: &OutputConfig, clock: &SharedClock) -> Result<Self, refclock::OutputError> {
        let output = Output::open(config, clock)?;
        tracing::info!("output {output} attached");
        Ok(OutputSlot {
            config: config.clone(),
            output,
            writes: 0,
            failures: 0,
            last_write: None,
            last_error: None,
        })
    }
}

/// The running daemon's state, owned by the supervisor loop.
struct Daemon {
    clock: SharedClock,
    config: Config,
    sources: Vec<SourceState>,
    next_id: u64,
    reports_tx: mpsc::Sender<Report>,
    reports: mpsc::Receiver<Report>,
    outputs: Vec<OutputSlot>,
    server: Option<RunningServer>,
    status_tx: watch::Sender<Arc<Status>>,
    status_server: Option<StatusServer>,
    combined: Option<Combined>,
    selection_error: Option<String>,
    selected_leap: Option<crate::sync::leap::LeapInfo>,
    indicator: Leap,
    /// The last combined estimate handed to the outputs, while the daemon is synchronised:
    /// an NTP output opened by a reload starts serving from it.
    last_reference: Option<crate::sync::serve::Reference>,
    /// The sanity rules' last word before anything is written.
    gate: Gate,
    /// The combined offset and error last logged at info ([`Daemon::log_combined`]).
    logged_combined: Option<(i64, i64)>,
    /// Why the last combined offset was not written (the rule and the message), while that
    /// lasts.
    write_refused: Option<(&'static str, String)>,
    /// SIGHUP reloads and how they went.
    reloads: status::ReloadStatus,
    /// The metrics endpoint, with `[metrics]`.
    metrics: Option<crate::metrics::MetricsServer>,
}

impl Daemon {
    /// Attach the outputs, start the server and the status socket, start polling; then tell
    /// systemd we are ready. On failure: the message and the exit code.
    async fn start(config: Config, clock: SharedClock) -> Result<Self, (String, u8)> {
        let mut outputs = Vec::new();
        for c in &config.outputs {
            outputs.push(OutputSlot::open(c, &clock).map_err(|e| (e.to_string(), e.exit_code()))?);
        }
        let server = match &config.server {
            Some(settings) => Some(
                RunningServer::start(
                    settings.server_config(),
                    settings.leap_config(),
                    clock.clone(),
                )
                .await
                .map_err(|e| (e.to_string(), e.exit_code()))?,
            ),
            None => None,
        };
        let (status_tx, status_rx) = watch::channel(Arc::new(Status::default()));
        let (reports_tx, reports) = mpsc::channel(REPORT_QUEUE);
        let mut daemon = Daemon {
            clock,
            config,
            sources: Vec::new(),
            next_id: 0,
            reports_tx,
            reports,
            outputs,
            server,
            status_tx,
            status_server: None,
            combined: None,
            selection_error: None,
            selected_leap: None,
            indicator: Leap::Unsynchronised,
            last_reference: None,
            gate: Gate::new(Policy::default()),
            logged_combined: None,
            write_refused: None,
            reloads: status::ReloadStatus::default(),
            metrics: None,
        };
        daemon.gate.set_policy(daemon.policy());
        for s in daemon.config.sources.clone() {
            daemon.add_source(s);
        }
        tracing::info!(
            "webntpd {} running: {} (config {})",
            env!("CARGO_PKG_VERSION"),
            daemon.config.summary(),
            daemon.config.path.display()
        );
        // The status socket opens once the status lists every source: a `webntpd status`
        // right after start must not report a daemon without sources.
        daemon.publish();
        let source = StatusSource {
            status: status_rx,
            server: daemon.server.as_ref().map(|s| s.metrics().clone()),
        };
        if let Some(m) = &daemon.config.metrics {
            let source = source.clone();
            let render = move || crate::metrics::Snapshot::daemon(source.current());
            daemon.metrics = Some(
                crate::metrics::MetricsServer::start(m.listen, render)
                    .await
                    .map_err(|e| (e.to_string(), e.exit_code()))?,
            );
        }
        let status_server = StatusServer::start(&daemon.config.status.socket, source)
            .map_err(|e| (e.to_string(), exit::CANTCREAT))?;
        daemon.status_server = Some(status_server);
        notify::ready(&daemon.status_line());
        Ok(daemon)
    }

    fn add_source(&mut self, config: SourceConfig) {
        self.next_id += 1;
        let cancel = CancellationToken::new();
        let mut state = SourceState::new(self.next_id, config, cancel.clone());
        match state.config.burst.client_options() {
            Ok(mut opts) => {
                opts.floor = self.floor();
                tokio::spawn(source::poll(
                    state.id,
                    state.config.clone(),
                    opts,
                    self.clock.clone(),
                    self.reports_tx.clone(),
                    cancel,
                ));
            }
            Err(e) => {
                // check-config validated the CA files; they may have gone since.
                let message = format!("cannot be polled: {e}; fix it and reload (SIGHUP)");
                tracing::error!("source {}: {message}", state.config.url);
                // No task runs for it: a reload starts it afresh (see `apply`).
                cancel.cancel();
                state.last_error = Some(message);
            }
        }
        self.sources.push(state);
    }

    /// The supervisor loop; returns the exit code when asked to stop.
    async fn supervise(&mut self, signals: &mut Signals) -> u8 {
        let mut watchdog = notify::watchdog_interval().map(|d| {
            tracing::info!("systemd watchdog enabled: pinging every {d:?}");
            tokio::time::interval(d)
        });
        loop {
            let tick = async {
                match watchdog.as_mut() {
                    Some(i) => {
                        i.tick().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                Some(report) = self.reports.recv() => self.on_report(report),
                event = signals.next() => match event {
                    SignalEvent::Shutdown(name) => {
                        tracing::info!("{name} received: shutting down");
                        return exit::OK;
                    }
                    SignalEvent::Reload => self.reload().await,
                },
                () = tick => notify::watchdog(),
            }
        }
    }

    /// No time before this can be now: the build's floor, raised to the date of the
    /// server's leap-seconds list when it has one.
    fn floor(&self) -> Timestamp {
        let list = self
            .server
            .as_ref()
            .and_then(|s| s.leap().current())
            .map_or(i64::MIN, |l| l.updated_unix());
        crate::sync::sanity::floor().max(Timestamp::from_secs(list))
    }

    /// The sanity policy the configuration asks for.
    fn policy(&self) -> Policy {
        self.config.sanity.policy(self.floor())
    }

    /// Clean shutdown: stop polling, drain the server, close the status socket, detach the
    /// outputs.
    async fn stop(&mut self) {
        notify::stopping();
        for s in &self.sources {
            s.cancel.cancel();
        }
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
        if let Some(status) = self.status_server.take() {
            status.stop().await;
        }
        if let Some(metrics) = self.metrics.take() {
            metrics.stop().await;
        }
        for o in self.outputs.drain(..) {
            tracing::info!("output {} detached", o.output);
            if let Output::Ntp(n) = o.output {
                (*n).stop().await;
            }
        }
        tracing::info!("stopped");
    }
}
