//! Prometheus metrics: the exposition of the server's counters and of the daemon's status
//! document ([`Snapshot`]), and the endpoint that serves it ([`MetricsServer`], `[metrics]`
//! and `webntpd serve --metrics`). `webntpd status --format prometheus` prints the same
//! exposition from the status socket, for node-exporter's textfile collector.
//!
//! Nothing here keeps state of its own. The daemon's metrics are read from the status
//! document ([`crate::daemon::status::Status`]) the status socket serves, and the server's
//! from its counters ([`crate::server::stats`]), both at scrape time, so the metrics and
//! `webntpd status` cannot disagree. A new part of the daemon shows up by adding its fields to
//! the status document and a few lines here, as the NTP output did ([`Snapshot::ntp_families`]).
//!
//! The text is written by prometheus-client's encoders (OpenMetrics 1.0, or Prometheus text
//! 0.0.4 for scrapers that do not ask for OpenMetrics) through one [`Collector`]: every
//! family is encoded from the snapshot as it is, with no registry of live metric objects.
//! Names follow Prometheus' conventions: `webntpd_` prefix, base units (seconds, Unix
//! seconds for times), `_total` counters; labels only from the configuration (source URL and
//! mode, output name) and from fixed sets (request kind, refusal and failure reason, state),
//! never from what clients send.

mod listen;

use std::collections::BTreeMap;
use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::info::Info;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::daemon::status::{NtpStatus, OutputStatus, SourceStatus, Status};
use crate::server::ServerCounters;
use crate::wire::ntp::Dropped;

pub use listen::{MetricsError, MetricsServer};

/// The text formats the exposition is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 text (what Prometheus asks for first).
    OpenMetrics,
    /// The Prometheus text format 0.0.4 (node-exporter's textfile collector, older scrapers).
    Prometheus,
}

impl Format {
    /// The `Content-Type` of a reply in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Prometheus => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        }
    }

    /// The format a scraper asks for in its `Accept` header: OpenMetrics when it names it,
    /// else the Prometheus text format.
    pub fn from_accept(accept: Option<&[u8]>) -> Format {
        let asks = accept.is_some_and(|a| {
            a.windows(OPENMETRICS.len())
                .any(|w| w.eq_ignore_ascii_case(OPENMETRICS))
        });
        if asks {
            Format::OpenMetrics
        } else {
            Format::Prometheus
        }
    }
}

const OPENMETRICS: &[u8] = b"application/openmetrics-text";

/// The source states `webntpd_source_state` has a series for, one of them 1.
const SOURCE_STATES: [&str; 7] = [
    "selected",
    "candidate",
    "falseticker",
    "held",
    "unreachable",
    "pending",
    "noselect",
];

/// Everything one scrape shows: the daemon's status document (with the built-in server's
/// counters in it), or a plain server's counters.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    status: Option<Status>,
    server: Option<ServerCounters>,
}

impl Snapshot {
    /// The daemon's status, and its server's counters if it runs one.
    pub fn daemon(mut status: Status) -> Snapshot {
        let server = status.server_counters.take();
        Snapshot {
            status: Some(status),
            server,
        }
    }

    /// `webntpd serve`'s counters.
    pub fn server(counters: ServerCounters) -> Snapshot {
        Snapshot {
            status: None,
            server: Some(counters),
        }
    }

    /// The exposition in `format`.
    pub fn render(self, format: Format) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self));
        let mut out = String::new();
        // Writing to a String cannot fail, and the collector only fails when the writer does.
        let _ = match format {
            Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &registry),
            Format::Prometheus => {
                prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
            }
        };
        out
    }
}

/// One number about a source, if it has one.
type SourceValue = fn(&SourceStatus) -> Option<f64>;

/// A series' labels: names from this module, values from the configuration or fixed sets.
type Labels = Vec<(&'static str, String)>;

/// Writes metric families, one descriptor and its series at a time.
struct Families<'e>(DescriptorEncoder<'e>);

impl Families<'_> {
    fn family<V>(
        &mut self,
        (name, help, unit): (&str, &str, Option<Unit>),
        kind: MetricType,
        series: &[(Labels, V)],
        encode: impl Fn(&mut MetricEncoder<'_>, &V) -> fmt::Result,
    ) -> fmt::Result {
        let mut family = self.0.encode_descriptor(name, help, unit.as_ref(), kind)?;
        for (labels, value) in series {
            encode(&mut family.encode_family(labels)?, value)?;
        }
        Ok(())
    }

    fn gauge(&mut self, what: (&str, &str, Option<Unit>), series: &[(Labels, f64)]) -> fmt::Result {
        self.family(what, MetricType::Gauge, series, |m, v| m.encode_gauge(v))
    }

    fn counter(&mut self, name: &str, help: &str, series: &[(Labels, u64)]) -> fmt::Result {
        self.family((name, help, None), MetricType::Counter, series, |m, v| {
            m.encode_counter::<NoLabelSet, _, u64>(v, None)
        })
    }
}

const SECONDS: Option<Unit> = Some(Unit::Seconds);

/// The labels of an output's series.
fn output(o: &OutputStatus) -> Labels {
    vec![("output", o.name.clone())]
}

/// One series without labels.
fn one<V>(value: V) -> [(Labels, V); 1] {
    [(Vec::new(), value)]
}

/// One series per entry of `counts`, labelled `label`.
fn by<V: Copy>(label: &'static str, counts: &BTreeMap<String, V>) -> Vec<(Labels, V)> {
    counts
        .iter()
        .map(|(k, v)| (vec![(label, k.clone())], *v))
        .collect()
}

fn flag(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

impl Snapshot {
    fn server_families(c: &ServerCounters, f: &mut Families<'_>) -> fmt::Result {
        f.counter(
            "webntpd_server_requests",
            "Requests answered, by kind (json, jsonp, nict, toh, head, ws message, preflight, page).",
            &by("kind", &c.requests),
        )?;
        f.counter(
            "webntpd_server_rejected",
            "Requests and connections refused, by reason.",
            &by("reason", &c.rejected),
        )?;
        f.gauge(
            (
                "webntpd_server_connections",
                "Connections open (HTTP and WebSocket).",
                None,
            ),
            &one(c.connections as f64),
        )?;
        f.gauge(
            (
                "webntpd_server_connections_max",
                "The connection cap (max_connections).",
                None,
            ),
            &one(c.max_connections as f64),
        )?;
        f.gauge(
            ("webntpd_server_websockets", "WebSockets open.", None),
            &one(c.websockets as f64),
        )?;
        f.gauge(
            (
                "webntpd_server_connections_parked",
                "Idle HTTP connections parked outside the runtime (counted in webntpd_server_connections too).",
                None,
            ),
            &one(c.parked as f64),
        )?;
        f.counter(
            "webntpd_server_parks",
            "Times an idle HTTP connection was parked (once per idle spell).",
            &one(c.parks),
        )?;
        f.counter(
            "webntpd_server_connection_limit_reached",
            "Times every connection slot was taken and new clients waited in the listen backlog.",
            &one(c.connection_limit_reached),
        )?;
        f.counter(
            "webntpd_server_connections_waited",
            "Clients that waited in the listen backlog for a connection slot.",
            &one(c.connections_waited),
        )?;
        let l = &c.latency;
        let buckets: Vec<(f64, u64)> = l
            .bounds
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(l.counts.iter().copied())
            .collect();
        let count = l.counts.iter().sum();
        f.family(
            (
                "webntpd_server_reply_latency",
                "From the kernel's receive stamp (rt) to the send stamp (st) of each stamped reply.",
                SECONDS,
            ),
            MetricType::Histogram,
            &one(()),
            |m, ()| m.encode_histogram::<NoLabelSet>(l.sum, count, &buckets, None),
        )?;
        if let Some(expires) = c.leap_list_expires {
            f.gauge(
                (
                    "webntpd_server_leap_list_expiry_timestamp",
                    "When the leap-seconds list in use expires (Unix time).",
                    SECONDS,
                ),
                &one(expires as f64),
            )?;
        }
        if let Some((at, ok)) = c.leap_refresh {
            f.gauge(
                (
                    "webntpd_server_leap_refresh_timestamp",
                    "When the leap-seconds list was last refreshed from its URL (Unix time).",
                    SECONDS,
                ),
                &one(at),
            )?;
            f.gauge(
                (
                    "webntpd_server_leap_refresh_success",
                    "1 if the last refresh of the leap-seconds list worked, else 0.",
                    None,
                ),
                &one(flag(ok)),
            )?;
        }
        Ok(())
    }

    fn daemon_families(s: &Status, f: &mut Families<'_>) -> fmt::Result {
        let source = |u: &str, m: &str| vec![("url", u.to_owned()), ("mode", m.to_owned())];
        let per_source = |get: SourceValue| {
            s.sources
                .iter()
                .filter_map(|x| Some((source(&x.url, &x.mode), get(x)?)))
                .collect::<Vec<_>>()
        };
        let sources: [(&str, &str, Option<Unit>, SourceValue); 6] = [
            (
                "webntpd_source_offset",
                "The newest burst's offset of the source from the local clock.",
                SECONDS,
                |x| x.offset,
            ),
            (
                "webntpd_source_delay",
                "The newest burst's round-trip delay.",
                SECONDS,
                |x| x.delay,
            ),
            (
                "webntpd_source_jitter",
                "The source's jitter, from its clock filter.",
                SECONDS,
                |x| x.jitter,
            ),
            (
                "webntpd_source_error_bound",
                "The error bound selection uses for the source (its distance).",
                SECONDS,
                |x| x.distance,
            ),
            (
                "webntpd_source_last_success_timestamp",
                "When the source's newest good burst ended (Unix time).",
                SECONDS,
                |x| x.last_success,
            ),
            (
                "webntpd_source_reach",
                "The reachability register of the last eight bursts (0-255; 0: unreachable).",
                None,
                |x| u8::from_str_radix(&x.reach, 8).ok().map(f64::from),
            ),
        ];
        for (name, help, unit, get) in sources {
            f.gauge((name, help, unit), &per_source(get))?;
        }
        let states: Vec<(Labels, f64)> = s
            .sources
            .iter()
            .flat_map(|x| {
                let now = match x.state.as_str() {
                    "unreachable" | "pending" => x.state.as_str(),
                    _ if x.noselect => "noselect",
                    other => other,
                };
                SOURCE_STATES.iter().map(move |state| {
                    let mut labels = source(&x.url, &x.mode);
                    labels.push(("state", (*state).to_owned()));
                    (labels, flag(*state == now))
                })
            })
            .collect();
        f.gauge(
            (
                "webntpd_source_state",
                "1 for the source's state (selected, candidate, falseticker, held, unreachable, \
                 pending, noselect), 0 for the others.",
                None,
            ),
            &states,
        )?;
        let polls: Vec<(Labels, u64)> = s
            .sources
            .iter()
            .map(|x| (source(&x.url, &x.mode), x.polls))
            .collect();
        f.counter("webntpd_source_polls", "Bursts finished.", &polls)?;
        let failures: Vec<(Labels, u64)> = s
            .sources
            .iter()
            .flat_map(|x| {
                x.failures.iter().map(|(reason, n)| {
                    let mut labels = source(&x.url, &x.mode);
                    labels.push(("reason", reason.clone()));
                    (labels, *n)
                })
            })
            .collect();
        f.counter(
            "webntpd_source_failures",
            "Bursts that failed, by reason (connect, timeout, http_status, closed, protocol, \
             bad_sample).",
            &failures,
        )?;

        let combined = s.combined.as_ref();
        let gauges: [(&str, &str, Option<Unit>, Option<f64>); 4] = [
            (
                "webntpd_combined_offset",
                "The combined offset last written to the outputs.",
                SECONDS,
                combined.map(|c| c.offset),
            ),
            (
                "webntpd_combined_error",
                "The combined offset's error bound.",
                SECONDS,
                combined.map(|c| c.error),
            ),
            (
                "webntpd_combined_survivors",
                "Sources combined into the last offset written.",
                None,
                combined.map(|c| c.survivors as f64),
            ),
            (
                "webntpd_combined_timestamp",
                "When the combined offset was last written (Unix time).",
                SECONDS,
                combined.map(|c| c.at),
            ),
        ];
        for (name, help, unit, value) in gauges {
            let series: Vec<_> = value.into_iter().flat_map(one).collect();
            f.gauge((name, help, unit), &series)?;
        }
        f.gauge(
            (
                "webntpd_synchronised",
                "1 when the daemon is synchronised (what `webntpd status` exits 0 for), else 0.",
                None,
            ),
            &one(flag(s.synchronised)),
        )?;

        let writes: Vec<_> = s.outputs.iter().map(|o| (output(o), o.writes)).collect();
        f.counter("webntpd_output_writes", "Samples written.", &writes)?;
        let failed: Vec<_> = s.outputs.iter().map(|o| (output(o), o.failures)).collect();
        f.counter("webntpd_output_failures", "Writes that failed.", &failed)?;
        let last: Vec<_> = s
            .outputs
            .iter()
            .filter_map(|o| Some((output(o), o.last_write?)))
            .collect();
        f.gauge(
            (
                "webntpd_output_last_write_timestamp",
                "When the output was last written (Unix time).",
                SECONDS,
            ),
            &last,
        )?;

        Self::ntp_families(s, f)?;

        let r = &s.reloads;
        let results = [
            (vec![("result", "ok".to_owned())], r.ok),
            (vec![("result", "failed".to_owned())], r.failed),
        ];
        f.counter(
            "webntpd_reloads",
            "Configuration reloads (SIGHUP), by result.",
            &results,
        )?;
        if let Some((at, ok)) = r.last {
            f.gauge(
                (
                    "webntpd_reload_timestamp",
                    "When the configuration was last reloaded (Unix time).",
                    SECONDS,
                ),
                &one(at),
            )?;
            f.gauge(
                (
                    "webntpd_reload_success",
                    "1 if the last reload applied the new configuration, else 0.",
                    None,
                ),
                &one(flag(ok)),
            )?;
        }
        Ok(())
    }
}

/// One of an NTP output's counters, read from its status.
type NtpCount = fn(&NtpStatus) -> u64;

impl Snapshot {
    /// The NTP outputs' families (`[[output]] type = "ntp"`), from their part of the status
    /// document; no series for a daemon without one.
    fn ntp_families(s: &Status, f: &mut Families<'_>) -> fmt::Result {
        let ntp: Vec<(&OutputStatus, &NtpStatus)> = s
            .outputs
            .iter()
            .filter_map(|o| Some((o, o.ntp.as_ref()?)))
            .collect();
        let counters: [(&str, &str, NtpCount); 4] = [
            (
                "webntpd_ntp_served",
                "NTP requests answered with the time (unsynchronised answers included).",
                |n| n.served,
            ),
            (
                "webntpd_ntp_served_unsynchronised",
                "NTP requests answered as unsynchronised (leap 3, stratum 16).",
                |n| n.served_unsynchronised,
            ),
            (
                "webntpd_ntp_kiss_of_death",
                "Kiss-o'-Death RATE replies sent to clients over the rate limit.",
                |n| n.kisses,
            ),
            (
                "webntpd_ntp_send_errors",
                "NTP replies the kernel refused to send.",
                |n| n.send_errors,
            ),
        ];
        for (name, help, value) in counters {
            let series: Vec<_> = ntp.iter().map(|(o, n)| (output(o), value(n))).collect();
            f.counter(name, help, &series)?;
        }
        let dropped: Vec<(Labels, u64)> = ntp
            .iter()
            .flat_map(|(o, n)| {
                n.dropped.iter().map(|(reason, c)| {
                    // The status document names reasons as the table prints them.
                    let label = Dropped::ALL
                        .iter()
                        .find(|d| d.as_str() == reason)
                        .map_or("other", |d| d.label());
                    let mut labels = output(o);
                    labels.push(("reason", label.to_owned()));
                    (labels, *c)
                })
            })
            .collect();
        f.counter(
            "webntpd_ntp_dropped",
            "NTP requests dropped unanswered, by reason (denied, rate_limited, control: modes \
             6 and 7, other_mode, bad_version, too_short, oversize).",
            &dropped,
        )?;
        let synced: Vec<_> = ntp
            .iter()
            .map(|(o, n)| (output(o), flag(n.synchronised)))
            .collect();
        f.gauge(
            (
                "webntpd_ntp_synchronised",
                "1 while the NTP output answers as synchronised, else 0.",
                None,
            ),
            &synced,
        )?;
        let dispersion: Vec<_> = ntp
            .iter()
            .filter(|(_, n)| n.synchronised)
            .map(|(o, n)| (output(o), n.root_dispersion))
            .collect();
        f.gauge(
            (
                "webntpd_ntp_root_dispersion",
                "The root dispersion a reply would carry now (the error bound, aged).",
                SECONDS,
            ),
            &dispersion,
        )
    }
}

impl Collector for Snapshot {
    fn encode(&self, encoder: DescriptorEncoder) -> fmt::Result {
        let mut f = Families(encoder);
        let version = env!("CARGO_PKG_VERSION");
        let info = Info::new(vec![("version", version)]);
        info.encode(f.0.encode_descriptor(
            "webntpd_build",
            "The running webntpd.",
            None,
            info.metric_type(),
        )?)?;
        if let Some(status) = &self.status {
            Snapshot::daemon_families(status, &mut f)?;
        }
        if let Some(server) = &self.server {
            Snapshot::server_families(server, &mut f)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
