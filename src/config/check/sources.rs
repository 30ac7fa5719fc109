//! The `[[source]]` tables: what each may say, and every check on one source and on the
//! sources together (the URL, its scheme and host, the proxy, the poll bounds against how
//! long a burst can take, duplicates).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::de::{self, Deserializer};
use serde::Deserialize;

use super::Check;
use crate::client::{Mode, MAX_SAMPLES};
use crate::config::locate;
use crate::config::value::{self, show};
use crate::config::{BurstSettings, Poll, SourceConfig};
use crate::net::connect::{Proxy, ProxySetting, Target};

/// A `[[source]]` as written; defaults are filled in by [`Check::source`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SourceFile {
    pub(super) url: String,
    #[serde(default, deserialize_with = "mode")]
    mode: Mode,
    samples: Option<i64>,
    #[serde(default, deserialize_with = "value::opt_duration")]
    poll: Option<Duration>,
    #[serde(default, deserialize_with = "value::opt_duration")]
    poll_min: Option<Duration>,
    #[serde(default, deserialize_with = "value::opt_duration")]
    poll_max: Option<Duration>,
    #[serde(default, deserialize_with = "value::opt_duration")]
    timeout: Option<Duration>,
    proxy: Option<String>,
    #[serde(default, deserialize_with = "value::string_list")]
    cacert: Vec<String>,
    weight: Option<f64>,
    #[serde(default)]
    pub(super) noselect: bool,
    rt: Option<bool>,
}

/// serde: a `mode`, with the nearest one suggested for a misspelling.
fn mode<'de, D: Deserializer<'de>>(d: D) -> Result<Mode, D::Error> {
    const MODES: [&str; 5] = ["auto", "json", "ws", "toh", "date"];
    let s = String::deserialize(d)?;
    s.parse().map_err(|_: String| {
        de::Error::custom(format!(
            "unknown mode `{s}`, {}",
            locate::suggest(&s, &MODES)
        ))
    })
}

impl Check<'_, '_> {
    pub(super) fn source(&mut self, i: usize, s: SourceFile) -> Option<SourceConfig> {
        let at = |key: &str| format!("source.{i}.{key}");
        let target = match Target::parse(&s.url) {
            Ok(t) => Some(t),
            Err(e) => {
                self.error(&at("url"), e.to_string());
                None
            }
        };
        let samples = match s.samples {
            None => 8,
            Some(n) if (1..=MAX_SAMPLES as i64).contains(&n) => n as usize,
            Some(n) => {
                self.error(
                    &at("samples"),
                    format!("samples = {n}: a burst takes 1 to {MAX_SAMPLES} samples (default 8)"),
                );
                8
            }
        };
        if s.mode == Mode::Date && s.samples.is_some() {
            self.warn(
                &at("samples"),
                "samples does not apply to mode = \"date\", which probes as often as its \
                 bisection needs (at most 12 times); remove it"
                    .to_owned(),
            );
        }
        let proxy = self.proxy(&at("proxy"), s.proxy.as_deref());
        let weight = s.weight.unwrap_or(1.0);
        if !(weight.is_finite() && weight > 0.0) {
            self.error(
                &at("weight"),
                format!(
                    "weight = {weight}: must be a number above 0; to measure a source without \
                     using it, write noselect = true"
                ),
            );
        }
        let burst = BurstSettings {
            mode: s.mode,
            samples,
            timeout: s.timeout.unwrap_or(BurstSettings::default().timeout),
            proxy,
            cacert: s.cacert.iter().map(PathBuf::from).collect(),
            rt: s.rt.unwrap_or(true),
        };
        let poll = self.poll(i, &s, &burst);
        if let Some(t) = &target {
            if let Some(reserved) = reserved_name(&t.host) {
                self.warn(
                    &at("url"),
                    format!(
                        "{} names {reserved}, a name reserved for examples and tests (RFC 2606, \
                         RFC 6761): it cannot be a real server, so this source will never \
                         answer; replace it with the URL of a WebNTP server you use",
                        s.url
                    ),
                );
            }
            if !t.scheme.is_tls() && !t.is_loopback() {
                self.warn(
                    &at("url"),
                    format!(
                        "{} is not encrypted: anyone on the path can shift this clock by \
                         rewriting or delaying replies; use https:// or wss:// if the server \
                         offers it",
                        s.url
                    ),
                );
            }
        }
        Some(SourceConfig {
            url: s.url,
            target: target?,
            poll,
            weight,
            noselect: s.noselect,
            burst,
        })
    }

    fn proxy(&mut self, at: &str, proxy: Option<&str>) -> ProxySetting {
        match proxy {
            None | Some("env") => ProxySetting::FromEnv,
            Some("none" | "direct") => ProxySetting::Off,
            Some(url) => {
                if let Err(e) = Proxy::parse(url, "configuration") {
                    self.error(
                        at,
                        format!(
                            "{e}; write proxy = \"http://HOST:PORT\", or \"none\" to connect \
                             directly"
                        ),
                    );
                }
                ProxySetting::Url(url.to_owned())
            }
        }
    }

    /// `poll`, `poll_min`, `poll_max` with their defaults, in order, and longer than a burst.
    fn poll(&mut self, i: usize, s: &SourceFile, burst: &BurstSettings) -> Poll {
        let interval = s.poll.unwrap_or(Duration::from_secs(64));
        let min = s.poll_min.unwrap_or(interval);
        let max = s.poll_max.unwrap_or(interval * 16);
        let keys = ["poll", "poll_min", "poll_max", "samples", "timeout", "mode"];
        if self.dropped.any(&format!("source.{i}"), &keys) {
            // A wrong value among them is reported; a default in its place proves nothing.
            return Poll { interval, min, max };
        }
        // Name a key the user wrote, so the message points at something they can change.
        let (min_key, max_key) = (
            if s.poll_min.is_some() {
                "poll_min"
            } else {
                "poll"
            },
            if s.poll_max.is_some() {
                "poll_max"
            } else {
                "poll"
            },
        );
        let at = |key: &str| format!("source.{i}.{key}");
        let shown = |d: Duration, written: bool| {
            format!("{}{}", show(d), if written { "" } else { ", the default" })
        };
        let (min_written, max_written) = (s.poll_min.is_some(), s.poll_max.is_some());
        if min_written && min > max {
            self.error(
                &at(min_key),
                format!(
                    "poll_min ({}) is longer than poll_max ({}): after a failure the wait \
                     starts at poll_min and doubles up to poll_max; lower poll_min or raise \
                     poll_max",
                    shown(min, min_written),
                    shown(max, max_written)
                ),
            );
        } else if interval > max {
            self.error(
                &at(max_key),
                format!(
                    "poll ({}) is longer than poll_max ({}): poll_max is the longest wait; \
                     raise poll_max or lower poll",
                    shown(interval, s.poll.is_some()),
                    show(max)
                ),
            );
        } else if interval < min {
            self.error(
                &at(min_key),
                format!(
                    "poll_min ({}) is longer than poll ({}): poll_min is the shortest wait; \
                     lower poll_min or raise poll",
                    show(min),
                    shown(interval, s.poll.is_some())
                ),
            );
        }
        let longest = burst.longest();
        if min <= max && min <= interval && interval <= max && min < longest {
            let (how, lower) = if burst.mode == Mode::Date {
                let how = format!(
                    "mode = \"date\", up to 12 probes with timeout {}",
                    show(burst.timeout)
                );
                (how, "timeout")
            } else {
                let how = format!(
                    "{} samples, timeout {}: connection, TLS, warm-up and each sample may take \
                     that long",
                    burst.samples,
                    show(burst.timeout)
                );
                (how, "samples or timeout")
            };
            let at_least = Duration::from_secs(longest.as_secs() + 1);
            self.error(
                &at(min_key),
                format!(
                    "{min_key} ({}) is shorter than a burst can take ({}; {how}): raise \
                     {min_key} to at least {}, or lower {lower}",
                    show(min),
                    show(longest),
                    show(at_least)
                ),
            );
        }
        Poll { interval, min, max }
    }

    /// Two `[[source]]` entries that would measure the same server the same way.
    pub(super) fn duplicate_sources(&mut self, sources: &[(usize, SourceConfig)]) {
        let mut seen = HashMap::new();
        for (i, s) in sources {
            if self.dropped.contains(&format!("source.{i}.mode")) {
                continue;
            }
            let t = &s.target;
            let mode = match (s.burst.mode, t.scheme.as_str()) {
                (Mode::Auto, "ws" | "wss") => Mode::Ws,
                (Mode::Auto, _) => Mode::Json,
                (m, _) => m,
            };
            let key = (
                mode,
                t.scheme.is_tls(),
                t.host.clone(),
                t.port,
                t.path_and_query.clone(),
            );
            if let Some(first) = seen.insert(key, (*i, &s.url)) {
                let line = self.line(&format!("source.{}", first.0));
                self.error(
                    &format!("source.{i}.url"),
                    format!(
                        "{} is the same server, measured the same way, as the [[source]]{line} \
                         ({}): list each once",
                        s.url, first.1
                    ),
                );
            }
        }
    }
}

/// The reserved name `host` is or lies under (RFC 2606 and RFC 6761: the `example`, `test`
/// and `invalid` top-level domains and `example.com`, `.net`, `.org`), if any: a URL with one
/// is a placeholder nobody filled in. (`localhost` is reserved too, but means this host.)
pub fn reserved_name(host: &str) -> Option<&'static str> {
    const RESERVED: [&str; 6] = [
        "example.com",
        "example.net",
        "example.org",
        "example",
        "test",
        "invalid",
    ];
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    RESERVED
        .into_iter()
        .find(|r| host == *r || host.ends_with(&format!(".{r}")))
}
