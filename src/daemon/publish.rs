//! What the daemon tells the world about itself: the status document for the status socket
//! and `webntpd status` (with its warnings and sync state), and systemd's STATUS= line.

use std::sync::Arc;

use super::status::{LeapStatus, NtpStatus, OutputStatus, SourceStatus, Status};
use super::{notify, Daemon};
use crate::config::SourceConfig;
use crate::refclock::{NtpOutput, Output};
use crate::sync::leap::Leap;
use crate::sync::Timestamp;

impl Daemon {
    /// What is risky about the running configuration, for `webntpd status`.
    pub(super) fn warnings(&self) -> Vec<String> {
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
    pub(super) fn list_expires(&self) -> Option<i64> {
        self.server
            .as_ref()
            .and_then(|s| s.leap().current())
            .map(|l| l.expires_unix())
    }

    /// A combined offset was written, and the last selection neither failed nor was
    /// refused by the sanity rules.
    pub(super) fn synchronised(&self) -> bool {
        self.combined.is_some() && self.selection_error.is_none() && self.write_refused.is_none()
    }

    /// One line for systemd's STATUS=.
    pub(super) fn status_line(&self) -> String {
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
    pub(super) fn publish(&self) {
        let now_mono = self.clock.monotonic_ns();
        let now_base = crate::clock::step_base_ns(self.clock.as_ref());
        let secs = |ns: i64| ns as f64 / 1e9;
        let now_real = self.clock.realtime().as_secs_f64();
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
                    last_success: last.map(|(_, at)| now_real - secs(now_mono - at)),
                    failures: s
                        .failures
                        .iter()
                        .map(|(reason, n)| ((*reason).to_owned(), *n))
                        .collect(),
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
                failures: o.failures,
                ntp: match &o.output {
                    Output::Ntp(n) => Some(ntp_status(n)),
                    _ => None,
                },
            })
            .collect();
        let server = self
            .server
            .as_ref()
            .map_or_else(Vec::new, |s| s.addr_list());
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
            reloads: self.reloads.clone(),
            // Read when the status is asked for (`StatusSource`).
            server_counters: None,
        };
        self.status_tx.send_replace(Arc::new(status));
        notify::status(&self.status_line());
    }
}

/// What an NTP output answers now, and its counters.
fn ntp_status(n: &NtpOutput) -> NtpStatus {
    let served = n.serving();
    let (clock, why) = n.discipline();
    let counts = n.counts();
    let secs = |ns: i64| ns as f64 / 1e9;
    NtpStatus {
        listen: n
            .local_addrs()
            .iter()
            .map(|a| format!("udp://{a}"))
            .collect(),
        clock: clock.as_str().to_string(),
        clock_reason: why.describe().to_string(),
        synchronised: served.is_synchronised(),
        unsynchronised: served.unsynchronised.map(|u| u.describe().to_string()),
        stratum: served.stratum,
        reference_id: String::from_utf8_lossy(&served.reference_id).into_owned(),
        root_delay: secs(served.root_delay_ns),
        root_dispersion: secs(served.root_dispersion_ns),
        offset: secs(served.offset_ns),
        served: counts.served,
        served_unsynchronised: counts.unsynchronised,
        kisses: counts.kisses,
        dropped: crate::wire::ntp::Dropped::ALL
            .iter()
            .zip(counts.dropped)
            .map(|(d, c)| (d.as_str().to_string(), c))
            .collect(),
        send_errors: counts.send_errors,
    }
}

/// The mode a source is polled in, `auto` resolved from the URL's scheme.
pub(super) fn mode_name(c: &SourceConfig) -> &'static str {
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
