//! Where log lines go: plain lines on stderr, or journald's native protocol with structured
//! fields (SOURCE_URL, OFFSET_NS, DELAY_NS... from each event's fields) when running under
//! systemd. `RUST_LOG`, when set, overrides the configured level.

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
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
