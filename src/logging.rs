//! Where log lines go: plain lines on stderr, or journald's native protocol with structured
//! fields (SOURCE_URL, OFFSET_NS, DELAY_NS... from each event's fields) when running under
//! systemd. `RUST_LOG`, when set, overrides the configured level.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

use crate::config::LogTarget;

fn filter(level: &str) -> EnvFilter {
    EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"))
}

fn stderr_layer<S>() -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
}

/// Log to stderr at `level` (error, warn, info, debug, trace or a RUST_LOG-style filter).
pub fn init_stderr(level: &str) {
    let _ = tracing_subscriber::registry()
        .with(filter(level))
        .with(stderr_layer())
        .try_init();
}

/// Log at `level` to `target`. `Auto` picks journald when systemd connected our output to
/// the journal (`JOURNAL_STREAM` set). If journald cannot be reached, lines go to stderr and
/// the first one says why.
pub fn init(level: &str, target: LogTarget) {
    let journald = match target {
        LogTarget::Stderr => false,
        LogTarget::Journald => true,
        LogTarget::Auto => std::env::var_os("JOURNAL_STREAM").is_some(),
    };
    if !journald {
        init_stderr(level);
        return;
    }
    match tracing_journald::layer() {
        Ok(layer) => {
            let _ = tracing_subscriber::registry()
                .with(filter(level))
                .with(
                    layer
                        .with_syslog_identifier("webntpd".to_string())
                        .with_field_prefix(None),
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
