//! The `[[output]]` tables: what each may say (`type`; `unit`, `perm` for shm; `path` for
//! sock; `listen`, `stratum`, `clock`, `allow`, `deny`, the rate limit and `max_age` for ntp)
//! and every check on them, into the one output type [`OutputConfig`].

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use toml::de::DeValue;

use super::Check;
use crate::config::locate;
use crate::config::server::{ServerSettings, DEFAULT_NTP_STRATUM};
use crate::config::value::{self, DurationOrOff};
use crate::net::ntp::access::{is_loopback, Cidr};
use crate::net::ntp::Admission;
use crate::refclock::{shm, NtpConfig, OutputConfig};
use crate::server::ListenAddr;
use crate::sync::serve::ClockSetting;

/// An `[[output]]` as written: the keys of every type, sorted out by [`Check::output`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OutputFile {
    #[serde(rename = "type")]
    kind: String,
    unit: Option<i64>,
    perm: Option<Perm>,
    path: Option<PathBuf>,
    #[serde(default, deserialize_with = "value::opt_list_from_str")]
    listen: Option<Vec<ListenAddr>>,
    stratum: Option<i64>,
    #[serde(default, deserialize_with = "value::opt_from_str")]
    clock: Option<ClockSetting>,
    #[serde(default, deserialize_with = "value::opt_list_from_str")]
    allow: Option<Vec<Cidr>>,
    #[serde(default, deserialize_with = "value::opt_list_from_str")]
    deny: Option<Vec<Cidr>>,
    #[serde(default, deserialize_with = "value::opt_from_str")]
    rate_interval: Option<DurationOrOff>,
    rate_burst: Option<i64>,
    rate_clients: Option<i64>,
    kod: Option<bool>,
    #[serde(default, deserialize_with = "value::opt_duration")]
    max_age: Option<Duration>,
}

/// The keys each output type takes, besides `type`.
const KEYS: [(&str, &[&str]); 3] = [
    ("shm", &["unit", "perm"]),
    ("sock", &["path"]),
    ("ntp", &NTP_KEYS),
];

const NTP_KEYS: [&str; 10] = [
    "listen",
    "stratum",
    "clock",
    "allow",
    "deny",
    "rate_interval",
    "rate_burst",
    "rate_clients",
    "kod",
    "max_age",
];

/// The ntp output's defaults: answer on loopback's port 123, as stratum 3, ...
pub const NTP_DEFAULT_LISTEN: &str = "127.0.0.1:123";
/// ... a client may send 16 requests at once, then one a second ...
pub const NTP_DEFAULT_RATE_INTERVAL: Duration = Duration::from_secs(1);
/// ... (the burst) ...
pub const NTP_DEFAULT_RATE_BURST: u32 = 16;
/// ... in a table of this many clients ...
pub const NTP_DEFAULT_RATE_CLIENTS: usize = 8192;
/// ... and an update older than an hour makes it unsynchronised.
pub const NTP_DEFAULT_MAX_AGE: Duration = Duration::from_secs(3600);
/// The stratum served unless `stratum` says otherwise: see docs/operating.md.
pub const NTP_DEFAULT_STRATUM: u8 = 3;
/// Most entries in `allow` and in `deny` (each is compared per request).
pub const MAX_ACCESS_ENTRIES: usize = 256;

/// `perm` as written: `"0600"` or an integer (`0o600`).
enum Perm {
    Text(String),
    Number(i64),
}

impl<'de> Deserialize<'de> for Perm {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Perm;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("octal permissions, such as \"0600\" or 0o600")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Perm, E> {
                Ok(Perm::Text(s.to_owned()))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Perm, E> {
                Ok(Perm::Number(n))
            }
        }
        d.deserialize_any(V)
    }
}

/// The output types, for messages.
const OUTPUT_TYPES: [&str; 3] = ["shm", "sock", "ntp"];

impl Check<'_, '_> {
    pub(super) fn output(&mut self, i: usize, o: OutputFile) -> Option<OutputConfig> {
        let at = |key: &str| format!("output.{i}.{key}");
        // Keys of another type than this one's.
        if let Some((_, own)) = KEYS.iter().find(|(kind, _)| *kind == o.kind) {
            let mut takes: Vec<String> = own.iter().map(|k| format!("`{k}`")).collect();
            let last = takes.pop().unwrap_or_default();
            let takes = match takes.len() {
                0 => last,
                _ => format!("{} and {last}", takes.join(", ")),
            };
            let misplaced: Vec<&str> = KEYS
                .iter()
                .filter(|(kind, _)| *kind != o.kind)
                .flat_map(|(_, keys)| keys.iter().copied())
                .filter(|k| self.written(&at(k)))
                .collect();
            for key in misplaced {
                self.error(
                    &at(key),
                    format!(
                        "`{key}` does not apply to type = \"{}\", which takes {takes}",
                        o.kind
                    ),
                );
            }
        }
        match o.kind.as_str() {
            "ntp" => self.ntp_output(i, o).map(OutputConfig::Ntp),
            "shm" => {
                let Some(unit) = o.unit else {
                    if self.dropped.contains(&at("unit")) {
                        return None; // Its wrong value is reported.
                    }
                    self.error(
                        &at("type"),
                        "missing key `unit` in this shm [[output]]: add unit = 2 (chrony: \
                         `refclock SHM 2`, ntpd: `server 127.127.28.2`)"
                            .to_owned(),
                    );
                    return None;
                };
                let Ok(unit) = u8::try_from(unit) else {
                    self.error(
                        &at("unit"),
                        format!("unit = {unit}: SHM units are 0 to 255"),
                    );
                    return None;
                };
                let perm = o.perm.and_then(|p| self.perm(&at("perm"), p));
                if !self.dropped.contains(&at("perm")) {
                    self.shm_warnings(i, unit, perm);
                }
                Some(OutputConfig::Shm { unit, perm })
            }
            "sock" => {
                let Some(path) = o.path else {
                    if self.dropped.contains(&at("path")) {
                        return None; // Its wrong value is reported.
                    }
                    self.error(
                        &at("type"),
                        "missing key `path` in this sock [[output]]: add the socket of chrony's \
                         `refclock SOCK PATH`, e.g. path = \"/run/chrony.webntp.sock\""
                            .to_owned(),
                    );
                    return None;
                };
                if !path.is_absolute() {
                    self.error(
                        &at("path"),
                        format!(
                            "{} is a relative path: write the absolute path chrony's `refclock \
                             SOCK` line names",
                            path.display()
                        ),
                    );
                }
                Some(OutputConfig::Sock { path })
            }
            other => {
                self.error(
                    &at("type"),
                    format!(
                        "unknown output type `{other}`, {}",
                        locate::suggest(other, &OUTPUT_TYPES)
                    ),
                );
                None
            }
        }
    }

    /// An ntp output's keys, each checked, with the defaults for those not written.
    fn ntp_output(&mut self, i: usize, o: OutputFile) -> Option<NtpConfig> {
        let at = |key: &str| format!("output.{i}.{key}");
        let listen: Vec<_> = match o.listen {
            Some(l) => l.into_iter().map(|a| a.0).collect(),
            None => vec![NTP_DEFAULT_LISTEN.parse().ok()?],
        };
        if listen.is_empty() && !self.dropped.contains(&at("listen")) {
            self.error(
                &at("listen"),
                format!("listen is empty: give at least one address, e.g. listen = [\"{NTP_DEFAULT_LISTEN}\"]"),
            );
        }
        for (j, a) in listen.iter().enumerate() {
            if listen[..j].contains(a) {
                self.error(
                    &format!("output.{i}.listen.{j}"),
                    format!("{a} is listed twice in listen: each address can be bound once"),
                );
            }
        }
        let stratum = self.in_range(
            &at("stratum"),
            o.stratum,
            1..=15,
            NTP_DEFAULT_STRATUM,
            format_args!(
                "a synchronised server's stratum is 1 to 15 (16 means unsynchronised, which \
                 webntpd says by itself); the default is {NTP_DEFAULT_STRATUM}"
            ),
        );
        if stratum == 1 {
            self.warn(
                &at("stratum"),
                "stratum = 1 claims a reference clock attached to this host, and makes clients \
                 prefer this server over real stratum-2 servers; webntpd's time comes from \
                 servers over the network: use 2 (if they are stratum 1) or more"
                    .to_owned(),
            );
        }
        let (allow, deny) = (o.allow.unwrap_or_default(), o.deny.unwrap_or_default());
        for (key, list) in [("allow", &allow), ("deny", &deny)] {
            if list.len() > MAX_ACCESS_ENTRIES {
                self.error(
                    &at(key),
                    format!(
                        "{} entries in {key}: at most {MAX_ACCESS_ENTRIES} (each is compared \
                         per request); use wider blocks",
                        list.len()
                    ),
                );
            }
        }
        let rate_interval = o
            .rate_interval
            .map_or(NTP_DEFAULT_RATE_INTERVAL, |DurationOrOff(d)| d);
        let rate_burst = self.in_range(
            &at("rate_burst"),
            o.rate_burst,
            1..=1024,
            NTP_DEFAULT_RATE_BURST,
            format_args!("must be 1 to 1024 requests"),
        );
        let rate_clients = self.in_range(
            &at("rate_clients"),
            o.rate_clients,
            16..=1_048_576,
            NTP_DEFAULT_RATE_CLIENTS,
            format_args!("the rate-limit table holds 16 to 1048576 clients (32 bytes each)"),
        );
        let kod = o.kod.unwrap_or(false);
        if kod && rate_interval.is_zero() {
            self.warn(
                &at("kod"),
                "kod = true but rate_interval = \"off\": no client is ever rate-limited, so \
                 no Kiss-o'-Death is sent"
                    .to_owned(),
            );
        }
        let max_age = o.max_age.unwrap_or(NTP_DEFAULT_MAX_AGE);
        if max_age < Duration::from_secs(1) {
            self.error(
                &at("max_age"),
                "max_age must be 1s or more: the daemon updates at most once per burst".to_owned(),
            );
        }
        let open: Vec<_> = listen.iter().filter(|a| !is_loopback(a.ip())).collect();
        // An `allow` that did not parse has its own error: no second word about it.
        let no_allow = allow.is_empty() && !self.dropped.contains(&at("allow"));
        if let (Some(first), true) = (open.first(), no_allow) {
            self.warn(
                &at("listen"),
                format!(
                    "{first} answers every address that can reach it: add allow = [...] with \
                     the networks to serve (e.g. allow = [\"192.168.0.0/16\"]), and keep the \
                     rate limit on"
                ),
            );
        }
        Some(NtpConfig {
            listen,
            stratum,
            clock: o.clock.unwrap_or_default(),
            admission: Admission {
                allow,
                deny,
                rate_interval,
                rate_burst,
                rate_clients,
                kod,
            },
            max_age,
            // Known once every output is read (see `duplicate_outputs`).
            feeds_time_daemon: false,
        })
    }

    /// `[server]`'s NTP keys: the ranges serde cannot say, each address bound once (by
    /// `[server]` or an ntp output), and a warning for an open address without `ntp_allow`.
    pub(super) fn server_ntp(&mut self, s: &ServerSettings, outputs: &[(usize, OutputConfig)]) {
        if !(1..=15).contains(&s.ntp_stratum) {
            self.error(
                "server.ntp_stratum",
                format!(
                    "ntp_stratum = {}: a synchronised server's stratum is 1 to 15; the default \
                     is {DEFAULT_NTP_STRATUM}",
                    s.ntp_stratum
                ),
            );
        }
        if !(1..=1024).contains(&s.ntp_rate_burst) {
            self.error(
                "server.ntp_rate_burst",
                format!(
                    "ntp_rate_burst = {}: must be 1 to 1024 requests",
                    s.ntp_rate_burst
                ),
            );
        }
        let mut seen: HashMap<SocketAddr, String> = HashMap::new();
        for (i, o) in outputs {
            if let OutputConfig::Ntp(n) = o {
                for a in &n.listen {
                    seen.insert(
                        *a,
                        format!("the ntp [[output]]{}", self.line(&format!("output.{i}"))),
                    );
                }
            }
        }
        for (j, a) in s.ntp.iter().enumerate() {
            if let Some(first) = seen.insert(a.0, "ntp".to_owned()) {
                self.error(
                    &format!("server.ntp.{j}"),
                    format!("{a} is already served by {first}: each address can be bound once"),
                );
            }
        }
        let open = s.ntp.iter().find(|a| !is_loopback(a.0.ip()));
        let no_allow = s.ntp_allow.is_empty() && !self.dropped.contains("server.ntp_allow");
        if let (Some(first), true) = (open, no_allow) {
            self.warn(
                "server.ntp",
                format!(
                    "{first} answers NTP to every address that can reach it: add ntp_allow = \
                     [...] with the networks to serve (e.g. ntp_allow = [\"192.168.0.0/16\"])"
                ),
            );
        }
    }

    /// An integer key: `default` when not written; when written outside `range`, an error
    /// (`KEY = N: why`) and `default`.
    fn in_range<T: TryFrom<i64> + Copy>(
        &mut self,
        at: &str,
        value: Option<i64>,
        range: std::ops::RangeInclusive<i64>,
        default: T,
        why: fmt::Arguments<'_>,
    ) -> T {
        match value {
            None => default,
            Some(n) if range.contains(&n) => T::try_from(n).unwrap_or(default),
            Some(n) => {
                let key = at.rsplit('.').next().unwrap_or(at);
                self.error(at, format!("{key} = {n}: {why}"));
                default
            }
        }
    }

    /// `perm`: octal, owner read and write, nothing above 0777.
    fn perm(&mut self, at: &str, perm: Perm) -> Option<u32> {
        let value = match perm {
            Perm::Text(s) => {
                let digits = s.strip_prefix("0o").unwrap_or(&s);
                match u32::from_str_radix(digits, 8) {
                    Ok(v) if !digits.is_empty() => Some(v),
                    _ => None,
                }
            }
            Perm::Number(n) => {
                let decimal = matches!(
                    self.doc.get(at).map(|v| v.get_ref()),
                    Some(DeValue::Integer(i)) if i.radix() == 10
                );
                if decimal && n > 7 {
                    self.error(
                        at,
                        format!(
                            "perm = {n} is a decimal number: write permissions in octal, \
                             perm = \"0{n}\" or perm = 0o{n}"
                        ),
                    );
                    return None;
                }
                u32::try_from(n).ok()
            }
        };
        match value {
            Some(v) if v <= 0o777 && v & 0o600 == 0o600 => Some(v),
            Some(v) if v <= 0o777 => {
                self.error(
                    at,
                    format!(
                        "perm = \"{v:04o}\" does not let webntpd (the owner) read and write the \
                         segment: use \"0600\", or \"0644\" for readers running as another user"
                    ),
                );
                None
            }
            _ => {
                self.error(
                    at,
                    "perm must be octal permissions from \"0600\" to \"0777\", e.g. perm = \"0600\""
                        .to_owned(),
                );
                None
            }
        }
    }

    fn shm_warnings(&mut self, i: usize, unit: u8, given: Option<u32>) {
        if unit < 2 {
            self.warn(
                &format!("output.{i}.unit"),
                format!(
                    "SHM unit {unit}: ntpd and ntpsec create units 0 and 1 for root only, so \
                     webntpd must run as root to write it; units 2 and up avoid that",
                ),
            );
        }
        let perm = given.unwrap_or_else(|| shm::default_perm(unit));
        if perm & 0o022 != 0 {
            let at = if given.is_some() { "perm" } else { "unit" };
            let why = if given.is_some() {
                ""
            } else {
                ", ntpd's default for units 2 and up"
            };
            self.warn(
                &format!("output.{i}.{at}"),
                format!(
                    "SHM unit {unit} will be writable by other users (mode {perm:04o}{why}): any \
                     local user can then inject time; set perm = \"0600\" when the reader runs \
                     as root (chronyd, ntpd do), or use a sock output",
                ),
            );
        }
    }

    /// One writer per SHM unit and per SOCK path, one NTP server per address; and whether
    /// the NTP servers' clock is fed to a time daemon.
    pub(super) fn duplicate_outputs(&mut self, outputs: &mut [(usize, OutputConfig)]) {
        let feeds = outputs.iter().any(|(_, o)| o.feeds_time_daemon());
        let mut addrs = HashMap::new();
        for (i, o) in outputs.iter_mut() {
            let OutputConfig::Ntp(n) = o else { continue };
            n.feeds_time_daemon = feeds;
            for (j, a) in n.listen.iter().enumerate() {
                match addrs.insert(*a, *i) {
                    Some(first) if first != *i => {
                        let line = self.line(&format!("output.{first}"));
                        self.error(
                            &format!("output.{i}.listen.{j}"),
                            format!(
                                "{a} is already served by the ntp [[output]]{line}: each \
                                 address can be bound once"
                            ),
                        );
                    }
                    _ => {}
                }
            }
        }
        let mut units = HashMap::new();
        let mut paths = HashMap::new();
        for (i, o) in outputs.iter() {
            let (first, what, key) = match o {
                OutputConfig::Ntp(_) => continue,
                OutputConfig::Shm { unit, .. } => {
                    (units.insert(*unit, *i), format!("SHM unit {unit}"), "unit")
                }
                OutputConfig::Sock { path } => (
                    paths.insert(path.clone(), *i),
                    format!("socket {}", path.display()),
                    "path",
                ),
            };
            if let Some(first) = first {
                let line = self.line(&format!("output.{first}"));
                self.error(
                    &format!("output.{i}.{key}"),
                    format!(
                        "{what} is already written by the [[output]]{line}: each needs its own \
                         {key}; pick another or remove one"
                    ),
                );
            }
        }
    }
}
