//! Telling systemd what the daemon is doing (sd_notify): READY, STATUS, WATCHDOG, RELOADING,
//! STOPPING. Without `NOTIFY_SOCKET` (not started by systemd) every call does nothing.
//! A failed notification is logged at debug level: systemd going away must not stop the
//! daemon.

use std::time::Duration;

use sd_notify::NotifyState;

fn send(states: &[NotifyState<'_>]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!("sd_notify {states:?}: {e}");
    }
}

/// Start-up (or a reload) is complete.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// The one-line status `systemctl status` shows.
pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

/// The supervisor's loop is alive.
pub fn watchdog() {
    send(&[NotifyState::Watchdog]);
}

/// A reload began (systemd >= 253 wants the monotonic time with it).
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[
            NotifyState::Reloading,
            now,
            NotifyState::Status("reloading the configuration"),
        ]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

/// Shutdown began.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// How often to send WATCHDOG=1: half of `WatchdogSec=`, if systemd asked for it.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled().map(|d| d / 2)
}
