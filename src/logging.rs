//! Where log lines go: journald's native protocol with structured fields (SOURCE_URL,
//! SOURCE_MODE, OFFSET_NS, DELAY_NS... from each event's fields) when running under systemd,
//! plain lines on stderr otherwise. `RUST_LOG`, when set, overrides the configured level.
//!
//! Under systemd, stderr is a stream into the journal (`JOURNAL_STREAM` names it). With
//! `target = "auto"` (the default) webntpd then speaks journald's native protocol instead.
//! With `target = "stderr"` it keeps writing lines, but as the journal wants them: no
//! timestamp of its own (the journal stamps every line) and the priority as a `<N>` prefix
//! (syslog's levels, which journald reads), so `journalctl -p warning` still works.
//!
//! Priorities: error 3 (err), warn 4 (warning), info 6 (info), debug and trace 7 (debug).
//! tracing-journald's default maps info to 5 (notice), which would put every routine line
//! above where `journalctl -p info` users expect it.

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LogTarget;

/// `RUST_LOG` when it is set (`debug`, or per target: `webntpd::client=debug,info`), else
/// `level`. A `RUST_LOG` that does not parse is reported on stderr, naming what was used
/// instead. tracing-subscriber's `Targets` does the parsing: its `EnvFilter` would also take
/// span and field filters, at the price of a regex engine in the binary and a regex compiled
/// at every start (BENCHMARKS.md, memory).
fn filter(level: &str) -> Targets {
    let fallback = || {
        level
            .parse::<Targets>()
            .unwrap_or_else(|_| Targets::new().with_default(LevelFilter::INFO))
    };
    match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => spec.parse().unwrap_or_else(|e| {
            eprintln!(
                "webntpd: RUST_LOG={spec:?} is not a log filter ({e}); logging at {level:?} \
                 instead. Examples: RUST_LOG=debug, RUST_LOG=webntpd::client=debug,info"
            );
            fallback()
        }),
        _ => fallback(),
    }
}

/// The syslog priority journald files an event of `level` under.
pub fn priority(level: Level) -> u8 {
    match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// A line for a journal stream: `<priority>` and the event, no timestamp.
struct JournalLine<F>(F);

impl<S, N, F> FormatEvent<S, N> for JournalLine<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        write!(writer, "<{}>", priority(*event.metadata().level()))?;
        self.0.format_event(ctx, writer, event)
    }
}

/// Whether stderr is the journal stream systemd set up: `JOURNAL_STREAM` is `DEV:INODE` of
/// it, and fd 2 is still that file (systemd's own advice, so that a child whose stderr was
/// redirected does not take the variable for its own).
pub fn stderr_is_journal() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = stream
        .to_str()
        .and_then(|s| s.split_once(':'))
        .and_then(|(d, i)| Some((d.parse::<u64>().ok()?, i.parse::<u64>().ok()?)))
    else {
        return false;
    };
    std::fs::metadata("/proc/self/fd/2").is_ok_and(|m| m.dev() == dev && m.ino() == ino)
}

/// Log to stderr at `level` (error, warn, info, debug, trace or a RUST_LOG-style filter):
/// as journal lines when stderr is the journal, else with timestamps.
pub fn init_stderr(level: &str) {
    let plain = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false);
    if stderr_is_journal() {
        let format = tracing_subscriber::fmt::format()
            .without_time()
            .with_level(false)
            .with_target(false)
            .with_ansi(false);
        let _ = tracing_subscriber::registry()
            .with(filter(level))
            .with(plain.event_format(JournalLine(format)))
            .try_init();
    } else {
        let _ = tracing_subscriber::registry()
            .with(filter(level))
            .with(plain)
            .try_init();
    }
}

/// Log at `level` to `target`. `Auto` picks journald when stderr is the journal (see
/// [`stderr_is_journal`]). If journald cannot be reached, lines go to stderr and the first
/// one says why.
pub fn init(level: &str, target: LogTarget) {
    let journald = match target {
        LogTarget::Stderr => false,
        LogTarget::Journald => true,
        LogTarget::Auto => stderr_is_journal(),
    };
    if !journald {
        init_stderr(level);
        return;
    }
    match tracing_journald::layer() {
        Ok(layer) => {
            let priorities = tracing_journald::PriorityMappings {
                info: tracing_journald::Priority::Informational,
                debug: tracing_journald::Priority::Debug,
                ..tracing_journald::PriorityMappings::new()
            };
            let _ = tracing_subscriber::registry()
                .with(filter(level))
                .with(
                    layer
                        .with_syslog_identifier("webntpd".to_string())
                        .with_field_prefix(None)
                        .with_priority_mappings(priorities),
                )
                .try_init();
        }
        Err(e) => {
            init_stderr(level);
            tracing::warn!(
                "cannot log to journald ({e}): logging to stderr instead; set [log] \
                 target = \"stderr\" to silence this"
            );
        }
    }
}
