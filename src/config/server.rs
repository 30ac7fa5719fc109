//! The server's settings, written once for both places they come from: `webntpd serve`'s
//! flags (clap) and the `[server]` table of the configuration file (serde). A flag
//! `--max-connections` is the key `max_connections`, with the same default; one conversion
//! turns either into the [`ServerConfig`] and [`LeapConfig`] the server and the leap store take.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::leap::store::LeapConfig;
use crate::net::ntp::access::Cidr;
use crate::net::ntp::Admission;
use crate::server::ntp::{NtpClock, NtpServeConfig};
use crate::server::page::{parse_peer, PagePath};
use crate::server::{Limits, ListenAddr, OriginPolicy, ServerConfig, TlsFiles, MIN_HEADER_BYTES};

use super::value::{self, parse_duration, parse_origin};

/// Largest `max_header_bytes` accepted.
pub const MAX_HEADER_BYTES: u32 = 1_048_576;
/// Largest `max_connections` accepted.
pub const MAX_CONNECTIONS: u32 = 1_000_000;

/// Where and how to serve WebNTP: `webntpd serve`'s flags, and the `[server]` table.
#[derive(clap::Args, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Serve plain HTTP and ws:// on ADDR (IP:PORT, [IPv6]:PORT or :PORT for every address).
    /// Repeatable. Default 127.0.0.1:8080 when no --listen or --tls-listen is given.
    #[arg(long, value_name = "ADDR")]
    #[serde(deserialize_with = "value::list_from_str")]
    pub listen: Vec<ListenAddr>,

    /// Serve HTTPS and wss:// on ADDR (needs --tls-cert and --tls-key). Repeatable.
    #[arg(long, value_name = "ADDR")]
    #[serde(deserialize_with = "value::list_from_str")]
    pub tls_listen: Vec<ListenAddr>,

    /// PEM certificate chain for --tls-listen, leaf first.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for --tls-listen.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// The `id` field of every reply. Default: the request's Host header, as go-webntp.
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,

    /// Browser origin allowed to use the server (CORS and WebSocket Origin), e.g.
    /// https://clock.example.org. Repeatable. Default `*`: any origin.
    #[arg(long, value_name = "ORIGIN", value_parser = parse_origin)]
    #[serde(deserialize_with = "value::string_list")]
    pub allow_origin: Vec<String>,

    /// Serve the clock page for browsers at PATH, and its leap-second state at PATH/leap;
    /// `off`: no page, every path answers WebNTP JSON as go-webntp.
    #[arg(long, value_name = "PATH", default_value = crate::server::page::DEFAULT_PATH)]
    #[serde(deserialize_with = "value::from_str")]
    pub clock_page: PagePath,

    /// Another WebNTP server the clock page also asks and compares (http://, https://, ws://
    /// or wss:// URL; it must let this server's origin in). Repeatable, at most 8.
    #[arg(long, value_name = "URL", value_parser = parse_peer)]
    #[serde(deserialize_with = "value::string_list")]
    pub clock_peer: Vec<String>,

    /// leap-seconds.list to report leap seconds from.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "/usr/share/zoneinfo/leap-seconds.list"
    )]
    pub leap_seconds: PathBuf,

    /// Refresh the leap-seconds list from URL (off by default: the server reaches the
    /// internet only when told to).
    #[arg(long, value_name = "URL")]
    pub leap_seconds_url: Option<String>,

    /// Where refreshed leap-seconds lists are kept. Default: leap-seconds.list in the unit's
    /// StateDirectory under systemd ($STATE_DIRECTORY: /var/lib/webntpd for webntpd.service,
    /// /var/lib/webntpd-server for webntpd-server.service), else in /var/lib/webntpd.
    #[arg(long, value_name = "FILE")]
    pub leap_seconds_cache: Option<PathBuf>,

    /// How often to refresh the leap-seconds list (with --leap-seconds-url).
    #[arg(long, value_name = "DURATION", default_value = "1d", value_parser = parse_duration)]
    #[serde(deserialize_with = "value::duration")]
    pub leap_seconds_refresh: Duration,

    /// Time allowed for a request head (and a TLS handshake) to arrive.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    #[serde(deserialize_with = "value::duration")]
    pub header_read_timeout: Duration,

    /// Close an HTTP connection idle for this long.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    #[serde(deserialize_with = "value::duration")]
    pub keepalive_timeout: Duration,

    /// Largest request head in bytes (minimum 8192); larger gets 431.
    #[arg(long, value_name = "BYTES", default_value_t = 8192,
          value_parser = clap::value_parser!(u32).range(8192..=MAX_HEADER_BYTES as i64))]
    pub max_header_bytes: u32,

    /// Most connections open at once; more wait to be accepted.
    #[arg(long, value_name = "N", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(1..=MAX_CONNECTIONS as i64))]
    pub max_connections: u32,

    /// Close a WebSocket that sends nothing for this long.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    #[serde(deserialize_with = "value::duration")]
    pub ws_idle_timeout: Duration,

    /// How long shutdown waits for in-flight requests.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    #[serde(deserialize_with = "value::duration")]
    pub shutdown_timeout: Duration,

    /// Also serve NTP (RFC 5905, v3 and v4 client requests) on UDP ADDR (IP:PORT,
    /// [IPv6]:PORT or :PORT), from the local clock as the HTTP side. Repeatable; off unless
    /// given.
    #[arg(long, value_name = "ADDR", help_heading = "NTP")]
    #[serde(deserialize_with = "value::list_from_str")]
    pub ntp: Vec<ListenAddr>,

    /// Whose word the NTP time rests on: `kernel` (answer as synchronised only while the
    /// kernel says a time daemon vouches for the clock, with its maximum error) or `local`
    /// (always, as chrony's `local stratum`).
    #[arg(
        long,
        value_name = "CLOCK",
        default_value = "kernel",
        help_heading = "NTP"
    )]
    #[serde(deserialize_with = "value::from_str")]
    pub ntp_clock: NtpClock,

    /// The stratum NTP replies state while synchronised (1-15).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_NTP_STRATUM, help_heading = "NTP",
          value_parser = clap::value_parser!(u8).range(1..=15))]
    pub ntp_stratum: u8,

    /// Answer NTP only from this address block (CIDR or address). Repeatable; default: all.
    #[arg(long, value_name = "CIDR", help_heading = "NTP")]
    #[serde(deserialize_with = "value::list_from_str")]
    pub ntp_allow: Vec<Cidr>,

    /// Never answer NTP from this address block (CIDR or address). Repeatable.
    #[arg(long, value_name = "CIDR", help_heading = "NTP")]
    #[serde(deserialize_with = "value::list_from_str")]
    pub ntp_deny: Vec<Cidr>,

    /// A client's average NTP request interval beyond its burst; `off`: no rate limit.
    #[arg(long, value_name = "DURATION", default_value = "1s", help_heading = "NTP",
          value_parser = value::parse_duration_or_off)]
    #[serde(deserialize_with = "value::duration_or_off")]
    pub ntp_rate_interval: Duration,

    /// NTP requests a client may send at once before the rate limit applies (1-1024).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_NTP_RATE_BURST, help_heading = "NTP",
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub ntp_rate_burst: u32,

    /// Answer a rate-limited NTP client with a Kiss-o'-Death RATE (at most one per interval)
    /// instead of silence.
    #[arg(long, help_heading = "NTP")]
    pub ntp_kod: bool,
}

/// The stratum of `webntpd serve --ntp` replies: a host synced from stratum-2 servers.
pub const DEFAULT_NTP_STRATUM: u8 = 3;
/// Requests an NTP client may send at once (as the ntp output's `rate_burst`).
pub const DEFAULT_NTP_RATE_BURST: u32 = 16;

/// Where refreshed leap-seconds lists are kept when no `leap_seconds_cache` is given:
/// `leap-seconds.list` in the first directory of `state_directory` (systemd's
/// `$STATE_DIRECTORY`, a colon-separated list, set from the unit's `StateDirectory=`), so
/// the daemon's and the server's units each keep their own; else in `/var/lib/webntpd`.
pub fn default_leap_cache(state_directory: Option<std::ffi::OsString>) -> PathBuf {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let first = state_directory.and_then(|dirs| {
        let first = dirs.as_bytes().split(|&b| b == b':').next()?.to_vec();
        (first.first() == Some(&b'/')).then(|| PathBuf::from(std::ffi::OsString::from_vec(first)))
    });
    first
        .unwrap_or_else(|| PathBuf::from("/var/lib/webntpd"))
        .join("leap-seconds.list")
}

/// The listener used when none is given.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

impl Default for ServerSettings {
    /// The same defaults as `webntpd serve` with no flags (a unit test keeps them equal).
    fn default() -> Self {
        let limits = Limits::default();
        let leap = LeapConfig::default();
        ServerSettings {
            listen: Vec::new(),
            tls_listen: Vec::new(),
            tls_cert: None,
            tls_key: None,
            id: None,
            allow_origin: Vec::new(),
            clock_page: PagePath::default(),
            clock_peer: Vec::new(),
            leap_seconds: leap.file,
            leap_seconds_url: leap.url,
            leap_seconds_cache: None,
            leap_seconds_refresh: leap.refresh_interval,
            header_read_timeout: limits.header_read_timeout,
            keepalive_timeout: limits.keepalive_timeout,
            max_header_bytes: MIN_HEADER_BYTES as u32,
            max_connections: limits.max_connections as u32,
            ws_idle_timeout: limits.ws_idle_timeout,
            shutdown_timeout: limits.shutdown_timeout,
            ntp: Vec::new(),
            ntp_clock: NtpClock::default(),
            ntp_stratum: DEFAULT_NTP_STRATUM,
            ntp_allow: Vec::new(),
            ntp_deny: Vec::new(),
            ntp_rate_interval: Duration::from_secs(1),
            ntp_rate_burst: DEFAULT_NTP_RATE_BURST,
            ntp_kod: false,
        }
    }
}

impl ServerSettings {
    /// The plain listeners: `listen`, or [`DEFAULT_LISTEN`] when neither `listen` nor
    /// `tls_listen` names one.
    pub fn plain_listeners(&self) -> Vec<ListenAddr> {
        if self.listen.is_empty() && self.tls_listen.is_empty() {
            vec![DEFAULT_LISTEN
                .parse()
                .expect("DEFAULT_LISTEN is a valid address")]
        } else {
            self.listen.clone()
        }
    }

    /// What the server takes.
    pub fn server_config(&self) -> ServerConfig {
        let origins = if self.allow_origin.is_empty() || self.allow_origin.iter().any(|o| o == "*")
        {
            OriginPolicy::Any
        } else {
            OriginPolicy::List(self.allow_origin.clone())
        };
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => None,
        };
        ServerConfig {
            listen: self.plain_listeners(),
            listen_tls: self.tls_listen.clone(),
            tls,
            server_id: self.id.clone(),
            origins,
            clock_page: self.clock_page.0.clone(),
            clock_peers: self.clock_peer.clone(),
            ntp: self.ntp_config(),
            limits: Limits {
                header_read_timeout: self.header_read_timeout,
                keepalive_timeout: self.keepalive_timeout,
                max_header_bytes: self.max_header_bytes as usize,
                max_connections: self.max_connections as usize,
                ws_idle_timeout: self.ws_idle_timeout,
                shutdown_timeout: self.shutdown_timeout,
                ..Limits::default()
            },
        }
    }

    /// The NTP side, if `ntp` names an address.
    pub fn ntp_config(&self) -> Option<NtpServeConfig> {
        (!self.ntp.is_empty()).then(|| NtpServeConfig {
            listen: self.ntp.iter().map(|a| a.0).collect(),
            clock: self.ntp_clock,
            stratum: self.ntp_stratum,
            admission: Admission {
                allow: self.ntp_allow.clone(),
                deny: self.ntp_deny.clone(),
                rate_interval: self.ntp_rate_interval,
                rate_burst: self.ntp_rate_burst,
                rate_clients: crate::server::ntp::RATE_CLIENTS,
                kod: self.ntp_kod,
            },
        })
    }

    /// What the leap-seconds store takes.
    pub fn leap_config(&self) -> LeapConfig {
        LeapConfig {
            file: self.leap_seconds.clone(),
            url: self.leap_seconds_url.clone(),
            cache: self
                .leap_seconds_cache
                .clone()
                .unwrap_or_else(|| default_leap_cache(std::env::var_os("STATE_DIRECTORY"))),
            refresh_interval: self.leap_seconds_refresh,
            ..LeapConfig::default()
        }
    }

    /// Every address served, `http://ADDR` and `https://ADDR`, for messages.
    pub fn describe_listeners(&self) -> String {
        let plain = self
            .plain_listeners()
            .into_iter()
            .map(|a| format!("http://{a}"));
        let tls = self.tls_listen.iter().map(|a| format!("https://{a}"));
        let ntp = self.ntp.iter().map(|a| format!("udp://{a} (NTP)"));
        plain.chain(tls).chain(ntp).collect::<Vec<_>>().join(", ")
    }
}
