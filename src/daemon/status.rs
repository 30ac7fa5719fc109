//! The status socket and `webntpd status`.
//!
//! The daemon listens on a Unix stream socket (default `/run/webntpd/status.sock`); every
//! connection gets the current [`Status`] as one JSON document, and the connection is closed.
//! Nothing is read from clients: the socket is read-only. `webntpd status` prints it as a
//! table like `chronyc sources`, or passes the JSON through with `--json`.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Largest status document a client accepts.
const MAX_STATUS_BYTES: u64 = 1 << 20;

/// Everything `webntpd status` shows. Offsets and delays in seconds (JSON numbers with
/// nanosecond precision), as `webntpd query --json` gives them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Status {
    pub version: String,
    pub pid: u32,
    pub config: PathBuf,
    pub sources: Vec<SourceStatus>,
    /// The combined estimate last written to the outputs, if any.
    pub combined: Option<Combined>,
    /// Whether the daemon is synchronised: a combined offset was written, and the last
    /// selection succeeded and was not refused by the sanity rules. `webntpd status` exits 0
    /// only then (75 otherwise); `--wait-sync` waits for it.
    #[serde(default)]
    pub synchronised: bool,
    /// Why no estimate could be formed at the last selection, if it failed.
    pub selection_error: Option<String>,
    /// Why the last combined offset was not written (the sanity rules), while that lasts.
    #[serde(default)]
    pub write_refused: Option<String>,
    /// What is risky about the configuration (one source deciding alone, say).
    #[serde(default)]
    pub warnings: Vec<String>,
    pub outputs: Vec<OutputStatus>,
    /// The addresses the built-in server listens on (empty without `[server]`).
    pub server: Vec<String>,
    pub leap: LeapStatus,
    /// SIGHUP reloads since start.
    #[serde(default)]
    pub reloads: ReloadStatus,
    /// The built-in server's counters when the status was asked for (what the metrics show).
    #[serde(default)]
    pub server_counters: Option<crate::server::ServerCounters>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ReloadStatus {
    /// Reloads that applied the new configuration.
    pub ok: u64,
    /// Reloads refused (the running configuration stayed).
    pub failed: u64,
    /// Unix seconds of the last reload, and whether it applied.
    pub last: Option<(f64, bool)>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SourceStatus {
    pub url: String,
    pub mode: String,
    /// selected, candidate, falseticker, unreachable or pending.
    pub state: String,
    /// The reachability register of the last eight bursts, in octal as NTP shows it.
    pub reach: String,
    pub polls: u64,
    /// Seconds until the next burst, as scheduled after the last one.
    pub poll: f64,
    /// The newest burst's offset, delay and jitter, in seconds.
    pub offset: Option<f64>,
    pub delay: Option<f64>,
    pub jitter: Option<f64>,
    /// The distance selection used (error bound of the filter's choice, aged, plus jitter).
    pub distance: Option<f64>,
    /// Seconds since the newest good burst.
    pub age: Option<f64>,
    pub noselect: bool,
    pub last_error: Option<String>,
    /// Exchanges that failed in the last burst that still measured ("2 of 8 exchanges
    /// failed: ...").
    #[serde(default)]
    pub partial_error: Option<String>,
    /// Why the source is held (its offset jumped), while it is.
    #[serde(default)]
    pub held: Option<String>,
    /// Unix seconds when the newest good burst ended.
    #[serde(default)]
    pub last_success: Option<f64>,
    /// Failed bursts by reason (connect, timeout, http_status, closed, protocol, bad_sample).
    #[serde(default)]
    pub failures: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Combined {
    pub offset: f64,
    pub error: f64,
    pub survivors: usize,
    /// The survivor with the smallest distance.
    pub best: String,
    /// Local time (Unix seconds) when it was computed and written.
    pub at: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct OutputStatus {
    pub name: String,
    /// Unix seconds of the last successful write.
    pub last_write: Option<f64>,
    pub writes: u64,
    pub last_error: Option<String>,
    /// Writes that failed.
    #[serde(default)]
    pub failures: u64,
    /// An NTP output's state and counters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ntp: Option<NtpStatus>,
}

/// What an NTP output answers now, and what it has done.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct NtpStatus {
    /// `udp://ADDR` for each socket.
    pub listen: Vec<String>,
    /// `free` (webntpd's offset is added to the local clock) or `disciplined` (a time daemon
    /// steers it: served as it is).
    pub clock: String,
    /// Why it is taken as that.
    pub clock_reason: String,
    /// Whether requests are answered as synchronised now.
    pub synchronised: bool,
    /// Why not, while not.
    pub unsynchronised: Option<String>,
    /// What a reply says now: stratum, reference ID, root delay and dispersion (seconds),
    /// and the offset added to the local clock (seconds).
    pub stratum: u8,
    pub reference_id: String,
    pub root_delay: f64,
    pub root_dispersion: f64,
    pub offset: f64,
    /// Requests answered with the time, of them as unsynchronised, Kiss-o'-Death RATE sent.
    pub served: u64,
    pub served_unsynchronised: u64,
    pub kisses: u64,
    /// Requests dropped, by reason (every reason listed).
    pub dropped: std::collections::BTreeMap<String, u64>,
    /// Replies the kernel refused to send.
    pub send_errors: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LeapStatus {
    /// The leap indicator last written: none, insert, delete or unsynchronised.
    pub indicator: String,
    /// TAI-UTC and the next (or last) event agreed by the selected sources.
    pub tai_utc: Option<i32>,
    pub next_event: Option<i64>,
    pub step: Option<i32>,
    /// The built-in server's leap-seconds list expiry (Unix seconds), if it has one.
    pub list_expires: Option<i64>,
    /// That list is past its expiry (it is still right about past events, but cannot
    /// announce new ones).
    #[serde(default)]
    pub list_expired: bool,
}

/// Where the status comes from: the document the supervisor publishes, with the built-in
/// server's counters read when it is asked for. The status socket and the metrics endpoint
/// both read it, so they cannot disagree.
#[derive(Clone)]
pub struct StatusSource {
    pub status: watch::Receiver<Arc<Status>>,
    pub server: Option<crate::server::ServerMetrics>,
}

impl StatusSource {
    /// The status now.
    pub fn current(&self) -> Status {
        let mut status = Status::clone(&self.status.borrow());
        status.server_counters = self.server.as_ref().map(|s| s.counters());
        status
    }
}

/// Serves [`Status`] on a Unix socket until cancelled, then removes the socket file.
pub struct StatusServer {
    path: PathBuf,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// Why the status socket could not be created.
#[derive(Debug, thiserror::Error)]
#[error("cannot create the status socket {path}: {source}; {hint}")]
pub struct StatusSocketError {
    pub path: String,
    pub source: io::Error,
    pub hint: &'static str,
}

impl StatusServer {
    /// Bind `path` (replacing a stale socket left by a previous run, creating its directory
    /// if missing) and serve `status`.
    pub fn start(path: &Path, status: StatusSource) -> Result<Self, StatusSocketError> {
        let fail = |source: io::Error| StatusSocketError {
            path: path.display().to_string(),
            hint: match source.kind() {
                io::ErrorKind::PermissionDenied => {
                    "run as root, or set [status] socket to a path this user may create \
                     (the systemd unit's RuntimeDirectory=webntpd provides /run/webntpd)"
                }
                io::ErrorKind::AddrInUse => "is another webntpd running with this socket?",
                _ => "check [status] socket in the configuration",
            },
            source,
        };
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() && !dir.exists() {
                std::fs::create_dir_all(dir).map_err(fail)?;
            }
        }
        remove_stale(path).map_err(fail)?;
        let listener = UnixListener::bind(path).map_err(fail)?;
        // Anyone may read the status (the socket accepts no commands).
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666)).map_err(fail)?;
        }
        let cancel = CancellationToken::new();
        let task = tokio::spawn(serve(listener, status, cancel.clone()));
        Ok(StatusServer {
            path: path.to_path_buf(),
            cancel,
            task,
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stop serving and remove the socket file.
    pub async fn stop(self) {
        self.cancel.cancel();
        let _ = self.task.await;
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Remove `path` if it is a socket nobody listens on; refuse if something else is there.
fn remove_stale(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
        Ok(m) if m.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    "a running process answers on it",
                ));
            }
            std::fs::remove_file(path)
        }
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "a file that is not a socket is in the way",
        )),
    }
}

async fn serve(listener: UnixListener, status: StatusSource, cancel: CancellationToken) {
    loop {
        let conn = tokio::select! {
            () = cancel.cancelled() => return,
            c = listener.accept() => c,
        };
        match conn {
            Ok((mut stream, _)) => {
                let doc = serde_json::to_vec_pretty(&status.current()).unwrap_or_default();
                tokio::spawn(async move {
                    // A client that does not read gets a few seconds, then is dropped.
                    let write = async {
                        stream.write_all(&doc).await?;
                        stream.write_all(b"\n").await?;
                        stream.shutdown().await
                    };
                    if let Err(e) = tokio::time::timeout(Duration::from_secs(5), write).await {
                        tracing::debug!("status client too slow: {e}");
                    }
                });
            }
            Err(e) => {
                tracing::warn!("status socket: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Why `webntpd status` could not get the status.
#[derive(Debug, thiserror::Error)]
pub enum StatusClientError {
    #[error(
        "cannot connect to {path}: {source}; is the daemon running (webntpd run, systemctl \
         status webntpd) and is this the socket its configuration names ([status] socket)?"
    )]
    Connect { path: String, source: io::Error },
    #[error("reading the status from {path}: {source}")]
    Read { path: String, source: io::Error },
    #[error("{path} answered something that is not a webntpd status: {source}")]
    Parse {
        path: String,
        source: serde_json::Error,
    },
}

impl StatusClientError {
    /// sysexits code for the command.
    pub fn exit_code(&self) -> u8 {
        match self {
            StatusClientError::Connect { .. } => crate::exit::UNAVAILABLE,
            StatusClientError::Read { .. } => crate::exit::UNAVAILABLE,
            StatusClientError::Parse { .. } => crate::exit::DATAERR,
        }
    }
}

/// Fetch the status from the daemon listening on `path`: the raw JSON and its parse.
pub async fn fetch(path: &Path) -> Result<(String, Status), StatusClientError> {
    let p = || path.display().to_string();
    let mut stream = tokio::time::timeout(Duration::from_secs(5), UnixStream::connect(path))
        .await
        .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "timed out")))
        .map_err(|source| StatusClientError::Connect { path: p(), source })?;
    let mut text = String::new();
    let mut limited = (&mut stream).take(MAX_STATUS_BYTES);
    let read = limited.read_to_string(&mut text);
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "timed out")))
        .map_err(|source| StatusClientError::Read { path: p(), source })?;
    let status = serde_json::from_str(&text)
        .map_err(|source| StatusClientError::Parse { path: p(), source })?;
    Ok((text, status))
}

fn signed(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:+.6}"))
}

fn plain(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.6}"))
}

/// Unix seconds as a UTC date and time, for people.
fn utc(unix: i64) -> String {
    jiff::Timestamp::from_second(unix).map_or_else(
        |_| format!("{unix} (Unix seconds)"),
        |t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

/// Unix seconds (with a fraction) as a UTC time to the millisecond, for people.
fn utc_millis(unix: f64) -> String {
    jiff::Timestamp::from_nanosecond((unix * 1e9) as i128).map_or_else(
        |_| format!("{unix:.3} (Unix seconds)"),
        |t| t.strftime("%Y-%m-%d %H:%M:%S%.3f UTC").to_string(),
    )
}

/// `status` as the table `webntpd status` prints.
pub fn render(status: &Status) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "webntpd {} (pid {}), config {}\n\n",
        status.version,
        status.pid,
        status.config.display()
    ));
    out.push_str(&format!(
        "{:<12} {:>5} {:>7} {:>12} {:>10} {:>10} {:>10}  {}\n",
        "State", "Reach", "Poll", "Offset s", "Delay s", "Jitter s", "Error s", "Source"
    ));
    for s in &status.sources {
        let state = if s.noselect && s.state != "unreachable" {
            format!("{} (nosel)", s.state)
        } else {
            s.state.clone()
        };
        out.push_str(&format!(
            "{:<12} {:>5} {:>6.0}s {:>12} {:>10} {:>10} {:>10}  {} ({})\n",
            state,
            s.reach,
            s.poll,
            signed(s.offset),
            plain(s.delay),
            plain(s.jitter),
            plain(s.distance),
            s.url,
            s.mode
        ));
        if let Some(e) = &s.last_error {
            out.push_str(&format!("{:<12} last error: {e}\n", ""));
        }
        if let Some(e) = &s.partial_error {
            out.push_str(&format!("{:<12} last burst: {e}\n", ""));
        }
        if let Some(h) = &s.held {
            out.push_str(&format!("{:<12} held: {h}\n", ""));
        }
    }
    out.push('\n');
    match (&status.combined, &status.selection_error) {
        (_, Some(e)) => out.push_str(&format!("Combined: none: {e}\n")),
        (Some(c), None) => out.push_str(&format!(
            "Combined: offset {:+.6} s, error {:.6} s, {} source(s), best {}\n",
            c.offset, c.error, c.survivors, c.best
        )),
        (None, None) => out.push_str("Combined: none yet\n"),
    }
    out.push_str(if status.synchronised {
        "Synchronised: yes\n"
    } else {
        "Synchronised: no\n"
    });
    if let Some(r) = &status.write_refused {
        out.push_str(&format!("Not written: {r}\n"));
    }
    for o in &status.outputs {
        let last = o.last_write.map_or_else(
            || "never written".to_string(),
            |t| format!("last write {}", utc_millis(t)),
        );
        out.push_str(&format!(
            "Output {}: {} ({} writes)",
            o.name, last, o.writes
        ));
        if let Some(e) = &o.last_error {
            out.push_str(&format!("; last error: {e}"));
        }
        out.push('\n');
        if let Some(n) = &o.ntp {
            out.push_str(&render_ntp(n));
        }
    }
    let l = &status.leap;
    out.push_str(&format!("Leap: indicator {}", l.indicator));
    if let (Some(t), Some(n), Some(s)) = (l.tai_utc, l.next_event, l.step) {
        out.push_str(&format!(
            ", TAI-UTC {t} s before the step of {s:+} s at {}",
            utc(n)
        ));
    }
    match (l.list_expires, l.list_expired) {
        (Some(e), true) => out.push_str(&format!(", leap-seconds list EXPIRED {}", utc(e))),
        (Some(e), false) => out.push_str(&format!(", leap-seconds list expires {}", utc(e))),
        (None, _) => {}
    }
    out.push('\n');
    if !status.server.is_empty() {
        out.push_str(&format!("Serving on {}\n", status.server.join(", ")));
    }
    for w in &status.warnings {
        out.push_str(&format!("Warning: {w}\n"));
    }
    out
}

/// How `webntpd status` prints the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusFormat {
    /// A table, like `chronyc sources`.
    Table,
    /// The status document as the socket sends it.
    Json,
    /// The metrics, in the Prometheus text format (node-exporter's textfile collector).
    Prometheus,
}

/// An NTP output's lines under its `Output` line.
fn render_ntp(n: &NtpStatus) -> String {
    let answers = if n.synchronised {
        format!(
            "stratum {}, refid {}, offset {:+.6} s, root delay {:.6} s, root dispersion {:.6} s",
            n.stratum, n.reference_id, n.offset, n.root_delay, n.root_dispersion
        )
    } else {
        format!(
            "unsynchronised (leap 3, stratum 16, refid {}): {}",
            n.reference_id,
            n.unsynchronised.as_deref().unwrap_or("")
        )
    };
    let dropped: u64 = n.dropped.values().sum();
    // In the order of `Dropped::ALL` (the one the docs list them in), then any other.
    let rank = |r: &str| {
        crate::wire::ntp::Dropped::ALL
            .iter()
            .position(|d| d.as_str() == r)
            .unwrap_or(usize::MAX)
    };
    let mut counted: Vec<(&String, &u64)> = n.dropped.iter().filter(|(_, c)| **c > 0).collect();
    counted.sort_by_key(|(r, _)| rank(r));
    let reasons: Vec<String> = counted.iter().map(|(r, c)| format!("{c} {r}")).collect();
    let mut text = format!(
        "  answers {answers}\n  clock {} ({})\n  {} served ({} unsynchronised), {} dropped",
        n.clock, n.clock_reason, n.served, n.served_unsynchronised, dropped
    );
    if !reasons.is_empty() {
        text.push_str(&format!(" ({})", reasons.join(", ")));
    }
    text.push_str(&format!(", {} Kiss-o'-Death", n.kisses));
    if n.send_errors > 0 {
        text.push_str(&format!(", {} not sent", n.send_errors));
    }
    text.push('\n');
    text
}

/// `webntpd status`: fetch the daemon's status from `socket` and print it; the exit code:
/// 0 when the daemon is synchronised, [`crate::exit::TEMPFAIL`] (75) when it answers but is not,
/// [`crate::exit::UNAVAILABLE`] (69) when nothing answers. With `wait_sync`, first wait until it is
/// synchronised, checking every second, at most that long (`Duration::ZERO`: no limit); a
/// daemon that does not answer yet (still starting) is waited for too.
pub async fn status_command(
    socket: &Path,
    format: StatusFormat,
    wait_sync: Option<std::time::Duration>,
    out: &mut dyn std::io::Write,
    err: &mut dyn std::io::Write,
) -> u8 {
    let started = tokio::time::Instant::now();
    let mut fetched = fetch(socket).await;
    if let Some(limit) = wait_sync {
        let within = |e: std::time::Duration| limit.is_zero() || e < limit;
        while !matches!(&fetched, Ok((_, s)) if s.synchronised) && within(started.elapsed()) {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            fetched = fetch(socket).await;
        }
    }
    match fetched {
        Ok((raw, status)) => {
            let text = match format {
                StatusFormat::Table => render(&status),
                StatusFormat::Json => raw,
                StatusFormat::Prometheus => crate::metrics::Snapshot::daemon(status.clone())
                    .render(crate::metrics::Format::Prometheus),
            };
            if out.write_all(text.as_bytes()).is_err() {
                return crate::exit::OSERR;
            }
            if status.synchronised {
                return crate::exit::OK;
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
            crate::exit::TEMPFAIL
        }
        Err(e) => {
            let _ = writeln!(err, "webntpd status: {e}");
            e.exit_code()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_shows_every_source_and_the_reason_when_nothing_combined() {
        let status = Status {
            version: "0.1.0".into(),
            pid: 42,
            config: "/etc/webntpd.toml".into(),
            sources: vec![
                SourceStatus {
                    url: "https://a.example/".into(),
                    mode: "json".into(),
                    state: "selected".into(),
                    reach: "377".into(),
                    poll: 64.0,
                    offset: Some(0.000412),
                    delay: Some(0.0021),
                    jitter: Some(0.00001),
                    distance: Some(0.0011),
                    ..Default::default()
                },
                SourceStatus {
                    url: "wss://b.example/".into(),
                    mode: "ws".into(),
                    state: "unreachable".into(),
                    reach: "0".into(),
                    last_error: Some("connect timed out after 5s".into()),
                    ..Default::default()
                },
            ],
            selection_error: Some("1 source(s) agree, fewer than the 2 required".into()),
            ..Default::default()
        };
        let text = render(&status);
        assert!(text.contains("selected"), "{text}");
        assert!(text.contains("+0.000412"), "{text}");
        assert!(text.contains("last error: connect timed out"), "{text}");
        assert!(text.contains("Combined: none: 1 source(s) agree"), "{text}");
        let mut leap = status.clone();
        leap.leap = LeapStatus {
            indicator: "none".into(),
            tai_utc: Some(36),
            next_event: Some(1_483_228_800),
            step: Some(1),
            list_expires: Some(1_782_604_800),
            list_expired: false,
        };
        let text = render(&leap);
        assert!(
            text.contains("TAI-UTC 36 s before the step of +1 s at 2017-01-01 00:00:00 UTC"),
            "{text}"
        );
        assert!(text.contains("expires 2026-06-28 00:00:00 UTC"), "{text}");
        assert!(text.contains("Synchronised: no"), "{text}");
        leap.leap.list_expired = true;
        assert!(
            render(&leap).contains("list EXPIRED 2026-06-28 00:00:00 UTC"),
            "{}",
            render(&leap)
        );
        // The JSON round-trips.
        let json = serde_json::to_string(&status).unwrap();
        assert_eq!(serde_json::from_str::<Status>(&json).unwrap(), status);
    }

    #[test]
    fn render_shows_what_an_ntp_output_answers_and_drops() {
        let mut n = NtpStatus {
            listen: vec!["udp://127.0.0.1:123".into()],
            clock: "free".into(),
            clock_reason: "configured".into(),
            synchronised: true,
            stratum: 3,
            reference_id: "WNTP".into(),
            root_delay: 0.000412,
            root_dispersion: 0.000254,
            offset: 0.1,
            served: 1234,
            served_unsynchronised: 3,
            kisses: 1,
            dropped: [
                ("rate-limited".to_string(), 12),
                ("mode 6/7".to_string(), 0),
            ]
            .into_iter()
            .collect(),
            ..Default::default()
        };
        let status = Status {
            outputs: vec![OutputStatus {
                name: "NTP udp://127.0.0.1:123".into(),
                ntp: Some(n.clone()),
                ..Default::default()
            }],
            ..Default::default()
        };
        let text = render(&status);
        assert!(
            text.contains(
                "answers stratum 3, refid WNTP, offset +0.100000 s, root delay 0.000412 s"
            ),
            "{text}"
        );
        assert!(text.contains("clock free (configured)"), "{text}");
        assert!(
            text.contains(
                "1234 served (3 unsynchronised), 12 dropped (12 rate-limited), 1 Kiss-o'-Death"
            ),
            "{text}"
        );
        n.synchronised = false;
        n.reference_id = "INIT".into();
        n.unsynchronised = Some("no combined offset yet".into());
        let text = render_ntp(&n);
        assert!(
            text.contains("answers unsynchronised (leap 3, stratum 16, refid INIT): no combined"),
            "{text}"
        );
        let json = serde_json::to_string(&status).unwrap();
        assert_eq!(serde_json::from_str::<Status>(&json).unwrap(), status);
    }
}
