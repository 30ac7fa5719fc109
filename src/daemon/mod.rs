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

use std::path::Path;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::clock::{SharedClock, SystemClock};
use crate::config::{Config, SourceConfig};
use crate::exit;
use crate::refclock::{self, Output, OutputConfig};
use crate::server::RunningServer;
use crate::sync::decide::{decide, Rules, SourceView, Verdict};
use crate::sync::filter::Offer;
use crate::sync::leap::Leap;
use crate::sync::refsample::RefSample;
use crate::sync::sanity::{Gate, Passed, Policy};
use crate::sync::Timestamp;
use signals::{SignalEvent, Signals};
use source::{Report, SourceState};
use status::{Combined, LeapStatus, OutputStatus, SourceStatus, Status, StatusServer};

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
        let output = Output::open(config)?;
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
    selected_leap: Option<crate::sync::leap::LeapInfo>,
    indicator: Leap,
    /// The sanity rules' last word before anything is written.
    gate: Gate,
    /// The combined offset and error last logged at info ([`Daemon::log_combined`]).
    logged_combined: Option<(i64, i64)>,
    /// Why the last combined offset was not written (the rule and the message), while that
    /// lasts.
    write_refused: Option<(&'static str, String)>,
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
            gate: Gate::new(Policy::default()),
            logged_combined: None,
            write_refused: None,
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
                    SignalEvent::Reload => self.reload(),
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

    fn on_report(&mut self, report: Report) {
        let Some(i) = self.sources.iter().position(|s| s.id == report.id) else {
            return; // A source removed by a reload, finishing its last burst.
        };
        let src = &mut self.sources[i];
        match &report.result {
            Ok(m) => {
                let e = &m.estimate;
                // Every burst at debug; at info only when the source starts answering.
                let answering_again = src.polls == 0 || src.last_error.is_some();
                let fields = (
                    e.offset_ns,
                    e.delay_ns,
                    e.jitter_ns,
                    e.error_bound_ns(),
                    e.kept,
                );
                let text = format!(
                    "offset {:+.6} s, delay {:.6} s, error {:.6} s",
                    e.offset_ns as f64 / 1e9,
                    e.delay_ns as f64 / 1e9,
                    e.error_bound_ns() as f64 / 1e9
                );
                if answering_again {
                    source_event!(info, src, {
                        offset_ns = fields.0, delay_ns = fields.1, jitter_ns = fields.2,
                        error_ns = fields.3, samples_kept = fields.4,
                    }, "reachable: {text}");
                } else {
                    source_event!(debug, src, {
                        offset_ns = fields.0, delay_ns = fields.1, jitter_ns = fields.2,
                        error_ns = fields.3, samples_kept = fields.4,
                    }, "{text}");
                }
            }
            Err(e) => {
                let message = e.error.to_string();
                let repeat = src
                    .last_error
                    .as_deref()
                    .is_some_and(|last| source::same_trouble(last, &message));
                if repeat {
                    source_event!(debug, src, "{message}");
                } else {
                    source_event!(
                        warn,
                        src,
                        "burst failed: {message}; retrying in {}",
                        humantime::format_duration(std::time::Duration::from_millis(
                            report.next_poll.as_millis() as u64
                        ))
                    );
                }
            }
        }
        let error_ns = report
            .result
            .as_ref()
            .map_or(0, |m| m.estimate.error_bound_ns());
        let partial_before = src.partial_error.take();
        let was_held = src.filter.held().is_some();
        let offer = src.record(report);
        let src = &self.sources[i];
        match (&partial_before, &src.partial_error) {
            (_, Some(now))
                if !partial_before
                    .as_deref()
                    .is_some_and(|before| source::same_trouble(before, now)) =>
            {
                source_event!(warn, src, "{now}")
            }
            (Some(_), None) if offer.is_some() => {
                source_event!(info, src, "every exchange of the last burst worked")
            }
            _ => {}
        }
        let secs = |ns: i64| ns as f64 / 1e9;
        match offer {
            Some(Offer::Held { jump_ns }) if !was_held => source_event!(
                warn,
                src,
                "offset jumped by {:+.6} s, beyond its error of {:.6} s: not used until the \
                 next burst confirms or undoes the jump",
                secs(jump_ns),
                secs(error_ns)
            ),
            Some(Offer::Held { jump_ns }) => source_event!(
                warn,
                src,
                "offset jumped again, by {:+.6} s: still not used",
                secs(jump_ns)
            ),
            Some(Offer::Confirmed { jump_ns }) => source_event!(
                warn,
                src,
                "the next burst confirms the jump of {:+.6} s: its new offset is used",
                secs(jump_ns)
            ),
            Some(Offer::SpikeDropped { jump_ns }) => source_event!(
                info,
                src,
                "back where it was: the jump of {:+.6} s was a spike and is dropped",
                secs(jump_ns)
            ),
            Some(Offer::Accepted) | None => {}
        }
        let fresh = matches!(
            offer,
            Some(Offer::Accepted | Offer::SpikeDropped { .. } | Offer::Confirmed { .. })
        );
        self.select_and_write(fresh.then_some(i));
        self.publish();
    }

    /// Select among the sources. `fresh` is the source whose burst just succeeded (and was
    /// taken into its filter), if one did: the result is written to the outputs only when
    /// that source is among the survivors, so the outputs get new information, never an old
    /// estimate re-stamped (a falseticker's, a `noselect` source's or a held jump's burst
    /// changes nothing that is written); and only when the sanity gate lets it through.
    fn select_and_write(&mut self, fresh: Option<usize>) {
        let now_mono = self.clock.monotonic_ns();
        let now_base = crate::clock::step_base_ns(self.clock.as_ref());
        let before: Vec<Verdict> = self.sources.iter().map(|s| s.verdict).collect();
        let views: Vec<SourceView> = self
            .sources
            .iter()
            .map(|s| SourceView {
                filtered: s.filtered(now_mono, now_base),
                polled: s.polls > 0,
                held: s.filter.held().is_some(),
                noselect: s.config.noselect,
                weight: s.config.weight,
            })
            .collect();
        let rules = Rules {
            min_sources: self.config.selection.min_sources,
            max_error_ns: i64::try_from(self.config.selection.max_error.as_nanos()).ok(),
        };
        let now = self.clock.realtime();
        let decision = decide(&views, fresh, &rules, now);
        for (s, v) in self.sources.iter_mut().zip(&decision.verdicts) {
            s.verdict = *v;
        }
        match decision.combination {
            Ok(c) => {
                self.selection_error = None;
                self.selected_leap = c.leap;
                if let Some(sample) = c.sample {
                    if self.pass_gate(&sample) {
                        self.write_outputs(&sample);
                        self.log_combined(c.offset_ns, c.error_ns, c.survivors);
                        self.combined = Some(Combined {
                            offset: c.offset_ns as f64 / 1e9,
                            error: c.error_ns as f64 / 1e9,
                            survivors: c.survivors,
                            best: self.sources[c.best].config.url.clone(),
                            at: now.as_secs_f64(),
                        });
                    }
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
                // Log the next combined offset whatever it is.
                self.logged_combined = None;
                self.selection_error = Some(message);
            }
        }
        self.log_verdict_changes(&before);
    }

    /// One line when a source becomes selected, a falseticker or unreachable, and when it
    /// agrees with the majority again.
    fn log_verdict_changes(&self, before: &[Verdict]) {
        for (s, was) in self.sources.iter().zip(before) {
            match (was, &s.verdict) {
                (was, now) if was == now => {}
                (_, Verdict::Falseticker) => {
                    source_event!(
                        warn,
                        s,
                        "falseticker: its offset disagrees with the majority"
                    )
                }
                (Verdict::Falseticker, Verdict::Selected) => {
                    source_event!(info, s, "agrees with the majority again: selected")
                }
                (_, Verdict::Selected) => source_event!(info, s, "selected"),
                // The failure itself was logged when it began.
                (_, Verdict::Unreachable) => {
                    source_event!(warn, s, "unreachable: none of its last 8 bursts worked")
                }
                _ => {}
            }
        }
    }

    /// Log the combined offset just written when it is the first, or has moved beyond what
    /// both estimates' error bounds allow (and at least [`COMBINED_LOG_STEP_NS`]).
    fn log_combined(&mut self, offset_ns: i64, error_ns: i64, survivors: usize) {
        let moved = self.logged_combined.is_none_or(|(o, e)| {
            offset_ns.abs_diff(o) > (e.saturating_add(error_ns)).max(COMBINED_LOG_STEP_NS) as u64
        });
        if moved {
            tracing::info!(
                offset_ns,
                error_ns,
                survivors,
                "combined offset {:+.6} s, error {:.6} s, from {survivors} source(s): written",
                offset_ns as f64 / 1e9,
                error_ns as f64 / 1e9
            );
            self.logged_combined = Some((offset_ns, error_ns));
        }
    }

    /// The sanity gate: whether `sample` may be written, logging a refusal once per change
    /// and a startup step beyond the panic threshold loudly.
    fn pass_gate(&mut self, sample: &RefSample) -> bool {
        match self.gate.check(sample) {
            Ok(passed) => {
                if passed == Passed::StartupStep {
                    tracing::warn!(
                        "writing a first offset of {:+.6} s, beyond the panic threshold of {} s, \
                         because [sanity] allow_startup_step is set: the clock will be stepped",
                        sample.offset_ns as f64 / 1e9,
                        self.gate.policy().panic_ns / 1_000_000_000
                    );
                }
                if self.write_refused.take().is_some() {
                    tracing::info!(
                        "the combined offset is within the sanity bounds again: writing"
                    );
                }
                true
            }
            Err(refusal) => {
                let message = refusal.to_string();
                if self.write_refused.as_ref().map(|(rule, _)| *rule) != Some(refusal.rule()) {
                    tracing::error!("combined offset refused: {message}");
                }
                self.write_refused = Some((refusal.rule(), message));
                false
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
        self.gate.set_policy(self.policy());
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

    /// What is risky about the running configuration, for `webntpd status`.
    fn warnings(&self) -> Vec<String> {
        let selectable = self.sources.iter().filter(|s| !s.config.noselect).count();
        let mut w = Vec::new();
        if selectable == 1 && !self.outputs.is_empty() {
            w.push(
                "one source decides alone: nothing checks it, so a server that is wrong (within \
                 the sanity rules) sets this clock; add two more [[source]] lines"
                    .to_string(),
            );
        }
        if let Some(e) = self.list_expires() {
            if e <= self.clock.realtime().unix_seconds() {
                w.push(format!(
                    "the server's leap-seconds list expired on {}: it is still right about \
                     past leap seconds but cannot announce a new one; update tzdata, or set \
                     [server] leap_seconds_url",
                    crate::sync::sanity::utc(Timestamp::from_secs(e))
                ));
            }
        }
        w
    }

    /// The built-in server's leap-seconds list expiry (Unix seconds), if it has a list.
    fn list_expires(&self) -> Option<i64> {
        self.server
            .as_ref()
            .and_then(|s| s.leap().current())
            .map(|l| l.expires_unix())
    }

    /// A combined offset was written, and the last selection neither failed nor was
    /// refused by the sanity rules.
    fn synchronised(&self) -> bool {
        self.combined.is_some() && self.selection_error.is_none() && self.write_refused.is_none()
    }

    /// One line for systemd's STATUS=.
    fn status_line(&self) -> String {
        let reachable = self.sources.iter().filter(|s| s.reach != 0).count();
        let head = format!("{reachable}/{} sources reachable", self.sources.len());
        if let Some((_, refused)) = &self.write_refused {
            return format!("{head}, nothing written: {refused}");
        }
        match (&self.combined, &self.selection_error) {
            (_, Some(e)) => format!("{head}, no offset: {e}"),
            (Some(c), None) => format!("{head}, offset {:+.6} s via {}", c.offset, c.best),
            (None, None) => format!("{head}, waiting for the first measurements"),
        }
    }

    /// Publish the status to the socket and to systemd.
    fn publish(&self) {
        let now_mono = self.clock.monotonic_ns();
        let now_base = crate::clock::step_base_ns(self.clock.as_ref());
        let secs = |ns: i64| ns as f64 / 1e9;
        let sources = self
            .sources
            .iter()
            .map(|s| {
                let filtered = (s.reach != 0)
                    .then(|| s.filter.best(now_mono, now_base))
                    .flatten();
                let last = s.last.as_ref();
                SourceStatus {
                    url: s.config.url.clone(),
                    mode: mode_name(&s.config).to_string(),
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
                    partial_error: s.partial_error.clone(),
                    held: s.filter.held().zip(filtered).map(|(h, f)| {
                        format!(
                            "its last burst jumped {:+.6} s away from what its filter holds; not \
                             used until the next burst confirms or undoes it",
                            secs(
                                h.offset_ns.saturating_add(h.base_ns - now_base)
                                    - f.burst.offset_ns
                            )
                        )
                    }),
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
        let list_expires = self.list_expires();
        let list_expired = list_expires.is_some_and(|e| e <= self.clock.realtime().unix_seconds());
        let status = Status {
            version: env!("CARGO_PKG_VERSION").to_string(),
            pid: std::process::id(),
            config: self.config.path.clone(),
            sources,
            combined: self.combined.clone(),
            synchronised: self.synchronised(),
            selection_error: self.selection_error.clone(),
            write_refused: self.write_refused.as_ref().map(|(_, m)| m.clone()),
            warnings: self.warnings(),
            outputs,
            server,
            leap: LeapStatus {
                indicator: leap_name(self.indicator).to_string(),
                tai_utc: self.selected_leap.map(|l| l.leap),
                next_event: self.selected_leap.map(|l| l.next_unix),
                step: self.selected_leap.map(|l| l.step),
                list_expires,
                list_expired,
            },
        };
        self.status_tx.send_replace(Arc::new(status));
        notify::status(&self.status_line());
    }
}

/// The mode a source is polled in, `auto` resolved from the URL's scheme.
fn mode_name(c: &SourceConfig) -> &'static str {
    c.burst.mode.resolve(c.target.scheme).as_str()
}

fn leap_name(l: Leap) -> &'static str {
    match l {
        Leap::NoWarning => "none",
        Leap::InsertSecond => "insert",
        Leap::DeleteSecond => "delete",
        Leap::Unsynchronised => "unsynchronised",
    }
}

/// `webntpd status`: fetch the daemon's status from `socket` and print it; the exit code:
/// 0 when the daemon is synchronised, [`exit::TEMPFAIL`] (75) when it answers but is not,
/// [`exit::UNAVAILABLE`] (69) when nothing answers. With `wait_sync`, first wait until it is
/// synchronised, checking every second, at most that long (`Duration::ZERO`: no limit); a
/// daemon that does not answer yet (still starting) is waited for too.
pub async fn status_command(
    socket: &Path,
    json: bool,
    wait_sync: Option<std::time::Duration>,
    out: &mut dyn std::io::Write,
    err: &mut dyn std::io::Write,
) -> u8 {
    let started = tokio::time::Instant::now();
    let mut fetched = status::fetch(socket).await;
    if let Some(limit) = wait_sync {
        let within = |e: std::time::Duration| limit.is_zero() || e < limit;
        while !matches!(&fetched, Ok((_, s)) if s.synchronised) && within(started.elapsed()) {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            fetched = status::fetch(socket).await;
        }
    }
    match fetched {
        Ok((raw, status)) => {
            let text = if json { raw } else { status::render(&status) };
            if out.write_all(text.as_bytes()).is_err() {
                return exit::OSERR;
            }
            if status.synchronised {
                return exit::OK;
            }
            let why = status
                .write_refused
                .as_deref()
                .or(status.selection_error.as_deref())
                .unwrap_or("no combined offset written yet");
            match wait_sync {
                Some(limit) => {
                    let _ = writeln!(
                        err,
                        "webntpd status: not synchronised within {}: {why}",
                        humantime::format_duration(limit)
                    );
                }
                None => {
                    let _ = writeln!(err, "webntpd status: not synchronised: {why}");
                }
            }
            exit::TEMPFAIL
        }
        Err(e) => {
            let _ = writeln!(err, "webntpd status: {e}");
            e.exit_code()
        }
    }
}

