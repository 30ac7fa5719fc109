//! The WebNTP client: measure one server's offset and delay with a burst of exchanges, over
//! the transports below; connections, TLS, proxies and the socket-edge timestamps `t1`/`t4`
//! are [`crate::net`]'s, the maths [`crate::sync`]'s.
//!
//! - `http`: `GET url?<t1>` on a kept-alive HTTP/1.1 connection, and Time over HTTPS
//!   (`HEAD /.well-known/time`, `X-HTTPSTIME`).
//! - `ws`: one WebSocket per burst, one message per exchange.
//! - [`ntp`]: `ntp://host[:port]`, one NTP client request per exchange (for checking an NTP
//!   server, such as webntpd's own).
//! - [`date`]: the offset from an ordinary web server's `Date:` header, by bisecting its
//!   second boundary.
//!
//! Every transport implements [`Transport`]: one exchange in, an [`Exchange`]'s timestamps
//! out, validated. [`measure`] runs a burst over one and keeps the minimum-delay sample
//! ([`crate::sync::burst`]). The first exchange on every new connection is a warm-up and is not
//! used: it pays for cold paths, and on TLS 1.3 the server's session tickets arrive just
//! after the handshake and would be mistaken for the first reply byte.

pub mod date;
mod http;
pub mod ntp;
mod ws;

use std::future::Future;
use std::time::Duration;

use crate::clock::SharedClock;
use crate::sync::burst::{self, BurstError, Estimate};
use crate::sync::exchange::{self, Exchange, Sample, SampleError};
use crate::sync::leap::LeapInfo;
use crate::sync::Timestamp;
use crate::wire::reply::ReplyError;

use crate::net::connect::{ConnectError, ConnectOptions, Scheme, Target};
use crate::net::http1::Http1Error;
use crate::net::stamp;

/// Most samples a burst may take.
pub const MAX_SAMPLES: usize = 64;

/// How to talk to a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Mode {
    /// From the URL: http(s) -> [`Mode::Json`], ws(s) -> [`Mode::Ws`].
    #[default]
    Auto,
    /// `GET url?<t1>`, the WebNTP JSON reply.
    Json,
    /// WebSocket messages.
    Ws,
    /// Time over HTTPS: `HEAD /.well-known/time`, `X-HTTPSTIME`.
    Toh,
    /// Any web server's `Date:` header, bisecting its second boundary with timed `HEAD`
    /// requests: milliseconds at best, for when nothing better answers.
    Date,
}

impl Mode {
    /// The mode a server at a URL of `scheme` is measured in: `Auto` resolved (http and https
    /// to JSON, ws and wss to WebSocket), any other mode as it is.
    pub fn resolve(self, scheme: Scheme) -> Mode {
        match (self, scheme) {
            (Mode::Auto, Scheme::Http | Scheme::Https) => Mode::Json,
            (Mode::Auto, Scheme::Ws | Scheme::Wss) => Mode::Ws,
            (m, _) => m,
        }
    }

    /// Its name in the configuration and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Auto => "auto",
            Mode::Json => "json",
            Mode::Ws => "ws",
            Mode::Toh => "toh",
            Mode::Date => "date",
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Mode::Auto),
            "json" | "http" => Ok(Mode::Json),
            "ws" | "websocket" => Ok(Mode::Ws),
            "toh" => Ok(Mode::Toh),
            "date" => Ok(Mode::Date),
            _ => Err(format!("`{s}`: expected auto, json, ws, toh or date")),
        }
    }
}

/// Everything a burst can be told.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Exchanges per burst (1 to [`MAX_SAMPLES`], default 8).
    pub samples: usize,
    /// The longest one exchange may take, from sending to the whole reply (default 5 s).
    pub sample_timeout: Duration,
    /// Pause between exchanges: drawn uniformly from this range (default 10-40 ms).
    pub spacing: (Duration, Duration),
    /// How to talk to the server.
    pub mode: Mode,
    /// Connection settings: timeouts, proxy, extra trusted CAs.
    pub connect: ConnectOptions,
    /// Largest reply body accepted, in bytes (default 4 KiB; a WebNTP reply is ~200).
    pub max_body: usize,
    /// Use the server's receive time `rt` when it sends one (default). Off: `st` only, as
    /// go-webntp estimates, for comparing the two.
    pub use_rt: bool,
    /// A server time before this is refused ([`crate::sync::sanity::floor`]; the daemon raises it
    /// to its leap-seconds list's date).
    pub floor: Timestamp,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            samples: 8,
            sample_timeout: Duration::from_secs(5),
            spacing: (Duration::from_millis(10), Duration::from_millis(40)),
            mode: Mode::Auto,
            connect: ConnectOptions::default(),
            max_body: 4096,
            use_rt: true,
            floor: crate::sync::sanity::floor(),
        }
    }
}

/// Why an exchange (or a whole burst) failed. Wrapped with the server's URL in
/// [`MeasureError`].
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Could not connect.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// Something took too long.
    #[error("{what} timed out after {after:?}")]
    Timeout {
        /// What.
        what: &'static str,
        /// The limit.
        after: Duration,
    },
    /// The server answered with a status other than success.
    #[error("HTTP status {status} (expected 200)")]
    Status {
        /// The status code.
        status: u16,
    },
    /// The reply body was over the limit.
    #[error("reply body larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// The reply did not parse.
    #[error(transparent)]
    Reply(#[from] ReplyError),
    /// A Time over HTTPS reply without `X-HTTPSTIME`.
    #[error("no X-HTTPSTIME header in the reply (the server does not speak Time over HTTPS)")]
    NoHttpsTime,
    /// The server echoed another timestamp than the one sent.
    #[error("reply echoes it={got}, but we sent {sent}: a cache, a proxy or a replay answered")]
    Echo {
        /// What we sent.
        sent: Timestamp,
        /// What came back.
        got: Timestamp,
    },
    /// The timestamps make no sense.
    #[error(transparent)]
    Sample(#[from] SampleError),
    /// The server's time is before this build was made.
    #[error(transparent)]
    BeforeFloor(#[from] crate::sync::sanity::BeforeFloor),
    /// The burst's samples contradict each other.
    #[error(transparent)]
    Burst(BurstError),
    /// HTTP-level failure.
    #[error("HTTP: {0}")]
    Http(String),
    /// NTP-level failure.
    #[error("NTP: {0}")]
    Ntp(String),
    /// WebSocket-level failure.
    #[error("WebSocket: {0}")]
    Ws(String),
    /// The connection ended before the reply.
    #[error("the server closed the connection{0}")]
    Closed(String),
    /// The stamping wrapper saw no request or no reply bytes (a bug, or a proxy that
    /// answered without forwarding).
    #[error("no send/receive timestamps for the exchange")]
    NoStamps,
}

impl ClientError {
    /// What kind of failure this is, in one word: the `reason` label of
    /// `webntpd_source_failures_total` (connect, timeout, http_status, closed, protocol,
    /// bad_sample).
    pub fn reason(&self) -> &'static str {
        match self {
            ClientError::Connect(_) => "connect",
            ClientError::Timeout { .. } => "timeout",
            ClientError::Status { .. } => "http_status",
            ClientError::Closed(_) => "closed",
            ClientError::TooLarge { .. }
            | ClientError::Reply(_)
            | ClientError::NoHttpsTime
            | ClientError::Echo { .. }
            | ClientError::Http(_)
            | ClientError::Ws(_)
            | ClientError::Ntp(_)
            | ClientError::NoStamps => "protocol",
            ClientError::Sample(_) | ClientError::BeforeFloor(_) | ClientError::Burst(_) => {
                "bad_sample"
            }
        }
    }
}

impl From<Http1Error> for ClientError {
    fn from(e: Http1Error) -> Self {
        match e {
            Http1Error::Closed(when) => ClientError::Closed(format!(" {when}")),
            Http1Error::TooLarge { limit } => ClientError::TooLarge { limit },
            Http1Error::Http(what) => ClientError::Http(what),
        }
    }
}

/// A burst that produced nothing, with the server it was for.
#[derive(Debug, thiserror::Error)]
#[error("{url}: {error}")]
pub struct MeasureError {
    /// The server's URL.
    pub url: String,
    /// The last error seen.
    pub error: ClientError,
}

/// One validated exchange, as a transport returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The timestamps.
    pub exchange: Exchange,
    /// Leap second information, when the server sent it.
    pub leap: Option<LeapInfo>,
}

/// A way of doing one exchange with a server.
pub trait Transport: Send {
    /// One request/reply exchange, validated, with timestamps from the socket edge.
    /// Reconnects if the connection was closed since the last exchange.
    fn exchange(&mut self) -> impl Future<Output = Result<Reply, ClientError>> + Send;
}

/// What a burst measured.
#[derive(Debug, Clone)]
pub struct Measurement {
    /// The server's URL.
    pub url: String,
    /// The minimum-delay sample and its spread.
    pub estimate: Estimate,
    /// Every sample, in order.
    pub samples: Vec<Sample>,
    /// Leap second information from the chosen sample's reply.
    pub leap: Option<LeapInfo>,
    /// Exchanges that failed (the burst went on without them).
    pub failures: Vec<String>,
}

/// The transport for `target` in `mode`: one exchange at a time. (Date mode bisects with
/// probes instead; see [`measure`].)
pub(crate) enum AnyTransport {
    Json(Box<http::JsonTransport>),
    Toh(Box<http::TohTransport>),
    Ws(Box<ws::WsTransport>),
    Ntp(Box<ntp::NtpTransport>),
}

impl AnyTransport {
    async fn exchange(&mut self) -> Result<Reply, ClientError> {
        match self {
            AnyTransport::Json(t) => t.exchange().await,
            AnyTransport::Toh(t) => t.exchange().await,
            AnyTransport::Ws(t) => t.exchange().await,
            AnyTransport::Ntp(t) => t.exchange().await,
        }
    }
}

/// Measure one server: a burst of `opts.samples` exchanges, the minimum-delay one kept.
///
/// Failed exchanges are noted in [`Measurement::failures`] and the burst goes on; it fails
/// only if no exchange succeeded, with the last error.
pub async fn measure(
    url: &str,
    opts: &ClientOptions,
    clock: SharedClock,
) -> Result<Measurement, MeasureError> {
    let fail = |error: ClientError| MeasureError {
        url: url.to_string(),
        error,
    };
    let mut transport = if url.trim().starts_with("ntp://") {
        let (host, port) = ntp::parse_url(url).map_err(|reason| {
            fail(ClientError::Connect(ConnectError::InvalidUrl {
                url: url.to_owned(),
                reason,
            }))
        })?;
        AnyTransport::Ntp(Box::new(ntp::NtpTransport::new(
            host,
            port,
            opts.clone(),
            clock.clone(),
        )))
    } else {
        let target = Target::parse(url).map_err(|e| fail(e.into()))?;
        let kept = |target| http::Kept::new(target, opts.clone(), clock.clone());
        match opts.mode.resolve(target.scheme) {
            Mode::Date => {
                let probes = http::DateProbes(kept(target));
                return measure_date(url, probes, clock, opts.floor)
                    .await
                    .map_err(fail);
            }
            Mode::Toh => AnyTransport::Toh(Box::new(http::TohTransport(kept(target)))),
            Mode::Ws => AnyTransport::Ws(Box::new(ws::WsTransport::new(
                target,
                opts.clone(),
                clock.clone(),
            ))),
            Mode::Json | Mode::Auto => {
                AnyTransport::Json(Box::new(http::JsonTransport(kept(target))))
            }
        }
    };
    let n = opts.samples.clamp(1, MAX_SAMPLES);
    let mut rng = XorShift::seeded(clock.monotonic_ns() as u64 ^ url.len() as u64);
    let mut samples = Vec::with_capacity(n);
    let mut leaps = Vec::with_capacity(n);
    let mut failures = Vec::new();
    let mut last_error = None;
    for i in 0..n {
        if i > 0 {
            tokio::time::sleep(rng.between(opts.spacing.0, opts.spacing.1)).await;
        }
        let result = transport.exchange().await.and_then(|mut r| {
            if !opts.use_rt {
                r.exchange.rt = None;
            }
            let s = exchange::compute(&r.exchange)?;
            crate::sync::sanity::check_server_time(
                s.at.add_nanos(i128::from(s.offset_ns)),
                opts.floor,
            )?;
            Ok((s, r.leap))
        });
        match result {
            Ok((s, leap)) => {
                samples.push(s);
                leaps.push(leap);
            }
            Err(e) => {
                let fatal = matches!(e, ClientError::Connect(_));
                failures.push(e.to_string());
                last_error = Some(e);
                // No point in hammering a server we cannot even reach.
                if fatal {
                    break;
                }
            }
        }
    }
    let estimate = match burst::filter(&samples) {
        Ok(e) => e,
        Err(BurstError::Empty) => return Err(fail(last_error.unwrap_or(ClientError::NoStamps))),
        Err(e) => return Err(fail(ClientError::Burst(e))),
    };
    let leap = samples
        .iter()
        .position(|s| *s == estimate.best)
        .and_then(|i| leaps[i]);
    Ok(Measurement {
        url: url.to_string(),
        estimate,
        samples,
        leap,
        failures,
    })
}

/// Date mode: bisect the server's second boundary; the result as a one-sample estimate whose
/// error bound is the bisection's half-interval.
async fn measure_date(
    url: &str,
    mut prober: http::DateProbes,
    clock: SharedClock,
    floor: Timestamp,
) -> Result<Measurement, ClientError> {
    let result = date::measure(&mut prober, clock.as_ref(), &date::DateOptions::default())
        .await
        .map_err(|e| match e {
            date::DateError::Probe(inner) => match inner.downcast::<ClientError>() {
                Ok(client) => *client,
                Err(other) => ClientError::Http(other.to_string()),
            },
            other => ClientError::Http(format!("Date mode: {other}")),
        })?;
    let clamp = |v: i128| i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX });
    let best = Sample {
        offset_ns: clamp(result.offset_ns),
        delay_ns: clamp(result.min_round_trip_ns),
        server_ns: 0,
        at: result.measured_at,
    };
    crate::sync::sanity::check_server_time(best.at.add_nanos(i128::from(best.offset_ns)), floor)?;
    Ok(Measurement {
        url: url.to_string(),
        estimate: Estimate {
            offset_ns: best.offset_ns,
            delay_ns: best.delay_ns,
            jitter_ns: 0,
            samples: result.probes,
            kept: result.probes,
            best,
            error_ns: clamp(result.error_ns),
        },
        samples: vec![best],
        leap: None,
        failures: Vec::new(),
    })
}

/// Run `work` within `limit`; past it, a [`ClientError::Timeout`] naming `what`.
pub(crate) async fn bounded<T>(
    what: &'static str,
    limit: Duration,
    work: impl Future<Output = Result<T, ClientError>>,
) -> Result<T, ClientError> {
    tokio::time::timeout(limit, work)
        .await
        .map_err(|_| ClientError::Timeout { what, after: limit })?
}

/// Run `connecting` (TCP, TLS and the protocol's handshake) within the connect and TLS
/// timeouts together.
pub(crate) async fn connect_bounded<T>(
    opts: &ClientOptions,
    connecting: impl Future<Output = Result<T, ClientError>>,
) -> Result<T, ClientError> {
    let limit = opts.connect.connect_timeout + opts.connect.tls_timeout;
    bounded("connect", limit, connecting).await
}

/// A tiny PRNG for spacing exchanges and polls apart: not for anything secret.
pub(crate) struct XorShift(u64);

impl XorShift {
    pub(crate) fn seeded(seed: u64) -> Self {
        XorShift(seed | 1)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn between(&mut self, low: Duration, high: Duration) -> Duration {
        let (lo, hi) = (low.as_nanos() as u64, high.as_nanos() as u64);
        if hi <= lo {
            return low;
        }
        Duration::from_nanos(lo + self.next() % (hi - lo))
    }
}

/// The client's own timestamp for a request, rounded to the microsecond the server echoes.
pub(crate) fn request_stamp(clock: &SharedClock) -> Timestamp {
    let ns = clock.realtime().as_nanos();
    Timestamp::from_nanos(ns - ns.rem_euclid(1_000))
}

/// Check the echo and build the exchange from the edges and the server's times.
pub(crate) fn exchange_from(
    sent: Option<Timestamp>,
    edges: Option<(stamp::Edge, stamp::Edge)>,
    parsed_it: Option<Timestamp>,
    rt: Option<Timestamp>,
    st: Timestamp,
) -> Result<Exchange, ClientError> {
    if let (Some(sent), Some(got)) = (sent, parsed_it) {
        if sent != got {
            return Err(ClientError::Echo { sent, got });
        }
    }
    let (t1, t4) = edges.ok_or(ClientError::NoStamps)?;
    Ok(Exchange {
        t1: t1.real,
        t4: t4.real,
        round_trip_ns: t4.mono_ns - t1.mono_ns,
        rt,
        st,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spacing_stays_in_range() {
        let mut r = XorShift::seeded(42);
        for _ in 0..1000 {
            let d = r.between(Duration::from_millis(10), Duration::from_millis(40));
            assert!(d >= Duration::from_millis(10) && d < Duration::from_millis(40));
        }
        assert_eq!(
            r.between(Duration::from_millis(5), Duration::from_millis(5)),
            Duration::from_millis(5)
        );
    }

    #[test]
    fn modes_parse() {
        assert_eq!("toh".parse::<Mode>(), Ok(Mode::Toh));
        assert!("udp".parse::<Mode>().is_err());
    }
}
