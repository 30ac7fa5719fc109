//! The daemon (`webntpd run`): a supervisor that polls every configured source on its
//! schedule, keeps a clock filter per source, selects the sources that agree, and feeds the
//! combined offset to the reference-clock outputs; optionally serves WebNTP too.
//!
//! ```text
//!  source task ─┐ Report           ┌─> SHM / SOCK outputs
//!  source task ─┼──> supervisor ───┼─> status socket (watch channel)
//!  source task ─┘    (this file)   └─> sd_notify STATUS / WATCHDOG
//! ```
//!
//! The supervisor owns all state and runs one loop: burst reports, signals (SIGHUP reloads,
//! SIGTERM/SIGINT stop) and the systemd watchdog tick. Because WATCHDOG=1 is sent from that
//! same loop, a stuck supervisor stops pinging and systemd restarts it.

pub mod notify;
pub mod signals;
pub mod source;
pub mod status;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::clock::{SharedClock, SystemClock};
use crate::config::{Config, OutputConfig, SourceConfig};
use crate::exit;
use crate::refclock::{self, leap_warning, precision_log2, Leap, Output, RefSample};
use crate::select::{self, Candidate};
use crate::server::RunningServer;
use signals::{SignalEvent, Signals};
use source::{Report, SourceState, Verdict};
use status::{Combined, LeapStatus, OutputStatus, SourceStatus, Status, StatusServer};

/// Reports a source task may queue before it waits for the supervisor.
const REPORT_QUEUE: usize = 64;

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
    last_write: Option<f64>,
    last_error: Option<String>,
}

impl OutputSlot {
    fn open(config: &OutputConfig) -> Result<Self, refclock::OutputError> {
        let output = Output::open(&config.refclock())?;
        tracing::info!("output {output} attached");
        Ok(OutputSlot {
            config: config.clone(),
            output,
            writes: 0,
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
    selected_leap: Option<crate::leap::LeapInfo>,
    indicator: Leap,
}

impl Daemon {
    /// Attach the outputs, start the server and the status socket, start polling; then tell
    /// systemd we are ready. On failure: the message and the exit code.
    async fn start(config: Config, clock: SharedClock) -> Result<Self, (String, u8)> {
        let mut outputs = Vec::new();
        for c in &config.outputs {
            outputs.push(OutputSlot::open(c).map_err(|e| (e.to_string(), e.exit_code()))?);
        }
        let server = match &config.server {
            Some(settings) => Some(
                RunningServer::start(settings, clock.clone())
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
        };
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
        let status_server = StatusServer::start(&daemon.config.status.socket, status_rx)
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
            Ok(opts) => {
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
                    SignalEvent::Reload => self.reload(),
                },
                () = tick => notify::watchdog(),
            }
        }
    }

    fn on_report(&mut self, report: Report) {
        let Some(i) = self.sources.iter().position(|s| s.id == report.id) else {
            return; // A source removed by a reload, finishing its last burst.
        };
        let success = report.result.is_ok();
        let src = &mut self.sources[i];
        match &report.result {
            Ok(m) => tracing::info!(
                source_url = %src.config.url,
                offset_ns = m.estimate.offset_ns,
                delay_ns = m.estimate.delay_ns,
                jitter_ns = m.estimate.jitter_ns,
                error_ns = m.estimate.error_bound_ns(),
                samples_kept = m.estimate.kept,
                "{}: offset {:+.6} s, delay {:.6} s",
                src.config.url,
                m.estimate.offset_ns as f64 / 1e9,
                m.estimate.delay_ns as f64 / 1e9,
            ),
            Err(e) => {
                let message = e.error.to_string();
                let repeat = src.last_error.as_deref() == Some(message.as_str());
                if repeat {
                    tracing::debug!(source_url = %src.config.url, "{}: {message}", src.config.url);
                } else {
                    tracing::warn!(
                        source_url = %src.config.url,
                        "{}: burst failed: {message}; retrying in {:?}",
                        src.config.url,
                        report.next_poll
                    );
                }
            }
        }
        src.record(report);
        self.select_and_write(success.then_some(i));
        self.publish();
    }

    /// Select among the sources. `fresh` is the source whose burst just succeeded, if one
    /// did: the result is written to the outputs only when that source is among the
    /// survivors, so the outputs get new information, never an old estimate re-stamped
    /// (a falseticker's or a `noselect` source's burst changes nothing that is written).
    fn select_and_write(&mut self, fresh: Option<usize>) {
        let now_mono = self.clock.monotonic_ns();
        let mut candidates = Vec::new();
        let mut index = Vec::new();
        for (i, s) in self.sources.iter_mut().enumerate() {
            let filtered = s.filtered(now_mono);
            s.verdict = match (&filtered, s.polls) {
                (_, 0) => Verdict::Pending,
                (None, _) => Verdict::Unreachable,
                (Some(_), _) => Verdict::Candidate,
            };
            if let (Some(f), false) = (filtered, s.config.noselect) {
                candidates.push(Candidate {
                    offset_ns: f.burst.offset_ns,
                    distance_ns: f.distance_ns,
                    weight: s.config.weight,
                    leap: f.burst.leap,
                });
                index.push(i);
            }
        }
        let max_error = i64::try_from(self.config.selection.max_error.as_nanos()).ok();
        match select::select(&candidates, self.config.selection.min_sources, max_error) {
            Ok(sel) => {
                for &c in &sel.survivors {
                    self.sources[index[c]].verdict = Verdict::Selected;
                }
                // Left out for their error bound: measured, not combined.
                for &c in &sel.too_uncertain {
                    self.sources[index[c]].verdict = Verdict::Candidate;
                }
                for &c in &sel.falsetickers {
                    let s = &mut self.sources[index[c]];
                    if s.verdict != Verdict::Falseticker {
                        tracing::warn!(
                            source_url = %s.config.url,
                            "{}: falseticker: its offset disagrees with the majority",
                            s.config.url
                        );
                    }
                    s.verdict = Verdict::Falseticker;
                }
                self.selection_error = None;
                self.selected_leap = sel.leap;
                let best = sel
                    .survivors
                    .iter()
                    .min_by_key(|&&c| candidates[c].distance_ns)
                    .map(|&c| self.sources[index[c]].config.url.clone())
                    .unwrap_or_default();
                let fresh = fresh.is_some_and(|f| sel.survivors.iter().any(|&c| index[c] == f));
                if fresh {
                    let now = self.clock.realtime();
                    let sample = RefSample {
                        receive: now,
                        offset_ns: sel.offset_ns,
                        leap: leap_warning(sel.leap, now.add_nanos(i128::from(sel.offset_ns))),
                        precision: precision_log2(sel.error_ns),
                    };
                    self.write_outputs(&sample);
                    self.combined = Some(Combined {
                        offset: sel.offset_ns as f64 / 1e9,
                        error: sel.error_ns as f64 / 1e9,
                        survivors: sel.survivors.len(),
                        best,
                        at: now.as_secs_f64(),
                    });
                }
            }
            Err(e) => {
                let message = e.to_string();
                if self.selection_error.as_deref() != Some(message.as_str()) {
                    if self.sources.iter().any(|s| s.polls == 0) {
                        tracing::info!(
                            "no combined offset yet (sources still starting): {message}"
                        );
                    } else {
                        tracing::warn!("no combined offset, nothing written: {message}");
                    }
                }
                self.selection_error = Some(message);
            }
        }
    }

    fn write_outputs(&mut self, sample: &RefSample) {
        self.indicator = sample.leap;
        for slot in &mut self.outputs {
            match slot.output.write(sample) {
                Ok(()) => {
                    slot.writes += 1;
                    slot.last_write = Some(sample.receive.as_secs_f64());
                    if slot.last_error.take().is_some() {
                        tracing::info!("output {}: writing again", slot.output);
                    }
                }
                Err(e) => {
                    if e.is_repeat() {
                        tracing::debug!("output {}: {e}", slot.output);
                    } else {
                        tracing::warn!("output {}: {e}", slot.output);
                    }
                    slot.last_error = Some(e.to_string());
                }
            }
        }
    }

    /// SIGHUP: load the configuration again. A configuration that does not load, or whose
    /// outputs cannot be attached, is refused and the running one stays. Sources whose
    /// settings did not change keep their filter and reachability.
    fn reload(&mut self) {
        notify::reloading();
        tracing::info!("SIGHUP: reloading {}", self.config.path.display());
        match Config::load(&self.config.path) {
            Err(e) => tracing::error!("configuration not reloaded, the running one stays: {e}"),
            Ok(loaded) => {
                for w in &loaded.warnings {
                    tracing::warn!("{}", w.as_warning());
                }
                if let Err(e) = self.apply(loaded.config) {
                    tracing::error!("configuration not reloaded, the running one stays: {e}");
                }
            }
        }
        self.select_and_write(None);
        self.publish();
        notify::ready(&self.status_line());
    }

    fn apply(&mut self, new: Config) -> Result<(), String> {
        // Outputs first: the only part that can still fail. Keep open ones that did not change.
        let mut old_outputs = std::mem::take(&mut self.outputs);
        let mut outputs = Vec::new();
        for c in &new.outputs {
            match old_outputs.iter().position(|o| &o.config == c) {
                Some(i) => outputs.push(old_outputs.swap_remove(i)),
                None => match OutputSlot::open(c) {
                    Ok(slot) => outputs.push(slot),
                    Err(e) => {
                        // Put everything back as it was.
                        old_outputs.extend(outputs);
                        self.outputs = old_outputs;
                        return Err(e.to_string());
                    }
                },
            }
        }
        for o in &old_outputs {
            tracing::info!("output {} detached", o.output);
        }
        drop(old_outputs);
        self.outputs = outputs;

        // Sources: keep the unchanged, stop the removed, start the new.
        let mut old = std::mem::take(&mut self.sources);
        for c in &new.sources {
            // A source whose task could not start (cancelled from birth) is started again.
            match old
                .iter()
                .position(|s| &s.config == c && !s.cancel.is_cancelled())
            {
                Some(i) => self.sources.push(old.remove(i)),
                None => {
                    tracing::info!("source {} added", c.url);
                    self.add_source(c.clone());
                }
            }
        }
        for s in old {
            tracing::info!("source {} removed", s.config.url);
            s.cancel.cancel();
        }

        if new.server != self.config.server {
            tracing::warn!(
                "[server] changed: restart webntpd to apply it (systemctl restart webntpd); \
                 the server keeps its old settings"
            );
        } else if let Some(server) = &self.server {
            server.reload();
        }
        if new.status != self.config.status {
            tracing::warn!("[status] changed: restart webntpd to apply it");
        }
        if new.log != self.config.log {
            tracing::warn!("[log] changed: restart webntpd to apply it");
        }
        let (server, status, log) = (
            self.config.server.clone(),
            self.config.status.clone(),
            self.config.log,
        );
        self.config = Config {
            server,
            status,
            log,
            ..new
        };
        tracing::info!("configuration reloaded: {}", self.config.summary());
        Ok(())
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
        for o in self.outputs.drain(..) {
            tracing::info!("output {} detached", o.output);
        }
        tracing::info!("stopped");
    }

    /// One line for systemd's STATUS=.
    fn status_line(&self) -> String {
        let reachable = self.sources.iter().filter(|s| s.reach != 0).count();
        let head = format!("{reachable}/{} sources reachable", self.sources.len());
        match (&self.combined, &self.selection_error) {
            (_, Some(e)) => format!("{head}, no offset: {e}"),
            (Some(c), None) => format!("{head}, offset {:+.6} s via {}", c.offset, c.best),
            (None, None) => format!("{head}, waiting for the first measurements"),
        }
    }

    /// Publish the status to the socket and to systemd.
    fn publish(&self) {
        let now_mono = self.clock.monotonic_ns();
        let secs = |ns: i64| ns as f64 / 1e9;
        let sources = self
            .sources
            .iter()
            .map(|s| {
                let filtered = s.filtered(now_mono);
                let last = s.last.as_ref();
                SourceStatus {
                    url: s.config.url.clone(),
                    mode: mode_name(&s.config),
                    state: s.verdict.as_str().to_string(),
                    reach: format!("{:o}", s.reach),
                    polls: s.polls,
                    poll: s.next_poll.as_secs_f64(),
                    offset: last.map(|(m, _)| secs(m.estimate.offset_ns)),
                    delay: last.map(|(m, _)| secs(m.estimate.delay_ns)),
                    jitter: filtered.map(|f| secs(f.jitter_ns)),
                    distance: filtered.map(|f| secs(f.distance_ns)),
                    age: last.map(|(_, at)| secs(now_mono - at)),
                    noselect: s.config.noselect,
                    last_error: s.last_error.clone(),
                }
            })
            .collect();
        let outputs = self
            .outputs
            .iter()
            .map(|o| OutputStatus {
                name: o.output.to_string(),
                last_write: o.last_write,
                writes: o.writes,
                last_error: o.last_error.clone(),
            })
            .collect();
        let server = self.server.as_ref().map_or_else(Vec::new, |s| {
            s.local_addrs()
                .iter()
                .map(|(a, tls)| format!("{}://{a}", if *tls { "https" } else { "http" }))
                .collect()
        });
        let list_expires = self
            .server
            .as_ref()
            .and_then(|s| s.leap().current())
            .map(|l| l.expires_unix());
        let status = Status {
            version: env!("CARGO_PKG_VERSION").to_string(),
            pid: std::process::id(),
            config: self.config.path.clone(),
            sources,
            combined: self.combined.clone(),
            selection_error: self.selection_error.clone(),
            outputs,
            server,
            leap: LeapStatus {
                indicator: leap_name(self.indicator).to_string(),
                tai_utc: self.selected_leap.map(|l| l.leap),
                next_event: self.selected_leap.map(|l| l.next_unix),
                step: self.selected_leap.map(|l| l.step),
                list_expires,
            },
        };
        self.status_tx.send_replace(Arc::new(status));
        notify::status(&self.status_line());
    }
}

/// The mode a source is polled in, `auto` resolved from the URL's scheme.
fn mode_name(c: &SourceConfig) -> String {
    match c.burst.mode {
        crate::client::Mode::Auto if c.url.starts_with("ws") => "ws".to_string(),
        crate::client::Mode::Auto => "json".to_string(),
        m => format!("{m:?}").to_lowercase(),
    }
}

fn leap_name(l: Leap) -> &'static str {
    match l {
        Leap::NoWarning => "none",
        Leap::InsertSecond => "insert",
        Leap::DeleteSecond => "delete",
        Leap::Unsynchronised => "unsynchronised",
    }
}

/// `webntpd status`: fetch the daemon's status from `socket` and print it; the exit code.
pub async fn status_command(
    socket: &Path,
    json: bool,
    out: &mut dyn std::io::Write,
    err: &mut dyn std::io::Write,
) -> u8 {
    match status::fetch(socket).await {
        Ok((raw, status)) => {
            let text = if json { raw } else { status::render(&status) };
            if out.write_all(text.as_bytes()).is_err() {
                return exit::OSERR;
            }
            exit::OK
        }
        Err(e) => {
            let _ = writeln!(err, "webntpd status: {e}");
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
    let fail = |e: crate::config::ConfigError| (e.to_string(), e.exit_code());
    let bytes = crate::files::read(config, crate::files::CONFIG)
        .map_err(|source| fail(crate::config::ConfigError::Read { source }))?;
    let text = crate::config::utf8(&bytes, config).map_err(fail)?;
    let table: toml::Table = toml::from_str(text).map_err(|e| {
        (
            format!(
                "{} is not valid TOML ({}); give the socket with --socket",
                config.display(),
                e.message()
            ),
            exit::CONFIG,
        )
    })?;
    match table.get("status").and_then(|s| s.get("socket")) {
        None => Ok(PathBuf::from(crate::config::DEFAULT_STATUS_SOCKET)),
        Some(toml::Value::String(p)) => Ok(PathBuf::from(p)),
        Some(_) => Err((
            format!(
                "{}: [status] socket must be a string (a path)",
                config.display()
            ),
            exit::CONFIG,
        )),
    }
}
