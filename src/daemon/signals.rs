//! The signals a long-running webntpd answers: SIGTERM and SIGINT stop it, SIGHUP reloads.
//! tokio's signal streams deliver them inside the runtime, so the caller's own loop decides
//! what to do (the daemon's supervisor, `webntpd serve`).

use tokio::signal::unix::{signal, Signal, SignalKind};

/// What a received signal asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalEvent {
    /// SIGTERM or SIGINT (named): shut down cleanly.
    Shutdown(&'static str),
    /// SIGHUP: reload the configuration.
    Reload,
}

/// SIGTERM, SIGINT and SIGHUP, installed once.
pub struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    /// Install the handlers (from then on these signals no longer kill the process).
    pub fn new() -> std::io::Result<Self> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// The next signal.
    pub async fn next(&mut self) -> SignalEvent {
        tokio::select! {
            _ = self.term.recv() => SignalEvent::Shutdown("SIGTERM"),
            _ = self.int.recv() => SignalEvent::Shutdown("SIGINT"),
            _ = self.hup.recv() => SignalEvent::Reload,
        }
    }
}
