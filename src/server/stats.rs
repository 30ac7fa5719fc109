//! What the server counts for the metrics endpoint ([`crate::metrics`]): requests by kind,
//! refusals by reason, open WebSockets, and how long replies took from the kernel's receive
//! stamp `rt` to the send stamp `st` (the time a client's offset cannot see).
//!
//! Open connections and the connection cap are not counted here: [`super::slots`] already
//! knows them, and [`ServerMetrics`] reads them from there at scrape time.
//!
//! The request path pays one relaxed add per request, and one more plus a sum for the
//! latency of a stamped reply, on counters sharded by thread ([`SHARDS`] cache-line-aligned
//! copies, summed at scrape time), so worker threads never write to the same cache line.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::slots::Slots;
use crate::leap::store::LeapStore;
use crate::sync::Timestamp;

/// What a request asked for: the `kind` label of `webntpd_server_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// GET of the WebNTP JSON reply.
    Json,
    /// The same as JSONP (`callback=`).
    Jsonp,
    /// NICT's paths (`/cgi-bin/json`, `jsont`, `ntp`, `jst`, `time`).
    Nict,
    /// Time over HTTPS: `HEAD /.well-known/time`.
    Toh,
    /// HEAD of any other path (Date-header and `X-HTTPSTIME` clients).
    Head,
    /// One WebSocket message answered.
    Ws,
    /// A CORS preflight (`OPTIONS`).
    Preflight,
    /// The clock page and its leap state.
    Page,
}

impl Kind {
    const ALL: [Kind; 8] = [
        Kind::Json,
        Kind::Jsonp,
        Kind::Nict,
        Kind::Toh,
        Kind::Head,
        Kind::Ws,
        Kind::Preflight,
        Kind::Page,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Kind::Json => "json",
            Kind::Jsonp => "jsonp",
            Kind::Nict => "nict",
            Kind::Toh => "toh",
            Kind::Head => "head",
            Kind::Ws => "ws",
            Kind::Preflight => "preflight",
            Kind::Page => "page",
        }
    }
}

/// Why a request or a connection was refused: the `reason` label of
/// `webntpd_server_rejected_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reject {
    /// 400: no `Host`, several, or a bad one.
    Host,
    /// 400: a query that is not a timestamp, a bad callback or time zone.
    Query,
    /// 405: a method other than GET, HEAD, OPTIONS.
    Method,
    /// 400 or 426: a WebSocket handshake that is not one.
    Handshake,
    /// 403: a WebSocket from an origin the policy refuses.
    Origin,
    /// A request head (or TLS handshake) not complete within `header_read_timeout`.
    HeaderTimeout,
    /// A request head larger than `max_header_bytes` (plain HTTP/1; hyper answers 431).
    HeaderTooLarge,
    /// A client that stopped reading its replies.
    Stalled,
    /// A TLS handshake that failed.
    Tls,
    /// A WebSocket message refused (too large, not text, not a timestamp, a protocol
    /// error, too many fragments).
    WsMessage,
}

impl Reject {
    const ALL: [Reject; 10] = [
        Reject::Host,
        Reject::Query,
        Reject::Method,
        Reject::Handshake,
        Reject::Origin,
        Reject::HeaderTimeout,
        Reject::HeaderTooLarge,
        Reject::Stalled,
        Reject::Tls,
        Reject::WsMessage,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Reject::Host => "host",
            Reject::Query => "query",
            Reject::Method => "method",
            Reject::Handshake => "handshake",
            Reject::Origin => "origin",
            Reject::HeaderTimeout => "header_timeout",
            Reject::HeaderTooLarge => "header_too_large",
            Reject::Stalled => "stalled",
            Reject::Tls => "tls",
            Reject::WsMessage => "ws_message",
        }
    }
}

/// Upper bounds of the reply-latency buckets, in nanoseconds: 10 us to 100 ms (a reply
/// answered at once takes tens of microseconds; milliseconds mean a busy host).
pub const LATENCY_BOUNDS_NS: [u64; 12] = [
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    100_000_000,
];

/// Copies of the per-request counters; a thread always adds to the same one.
pub const SHARDS: usize = 8;

/// One thread's counters, on cache lines of their own.
#[repr(align(128))]
#[derive(Default)]
struct Shard {
    requests: [AtomicU64; Kind::ALL.len()],
    /// Replies per latency bucket; the last is +Inf.
    latency: [AtomicU64; LATENCY_BOUNDS_NS.len() + 1],
    latency_sum_ns: AtomicU64,
}

/// The server's own counters, shared by every connection.
#[derive(Default)]
pub(crate) struct ServerStats {
    shards: [Shard; SHARDS],
    rejected: [AtomicU64; Reject::ALL.len()],
    websockets: AtomicUsize,
    parked: AtomicUsize,
    parks: AtomicU64,
}

/// Hands each thread its shard, round robin.
static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

impl ServerStats {
    fn shard(&self) -> &Shard {
        thread_local! {
            static MINE: Cell<usize> = const { Cell::new(usize::MAX) };
        }
        let i = MINE.with(|m| {
            if m.get() == usize::MAX {
                m.set(NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS);
            }
            m.get()
        });
        &self.shards[i % SHARDS]
    }

    /// One request of `kind` answered.
    pub(crate) fn request(&self, kind: Kind) {
        self.shard().requests[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// A reply stamped `st` for a request received at `rt`.
    pub(crate) fn replied(&self, rt: Timestamp, st: Timestamp) {
        let ns = u64::try_from(st.nanos_since(rt)).unwrap_or(0);
        let bucket = LATENCY_BOUNDS_NS
            .iter()
            .position(|b| ns <= *b)
            .unwrap_or(LATENCY_BOUNDS_NS.len());
        let shard = self.shard();
        shard.latency[bucket].fetch_add(1, Ordering::Relaxed);
        shard.latency_sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// A request or connection refused for `reason`.
    pub(crate) fn rejected(&self, reason: Reject) {
        self.rejected[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// A WebSocket session began; it counts as open until the guard is dropped.
    pub(crate) fn websocket(self: &Arc<Self>) -> WebSocketOpen {
        self.websockets.fetch_add(1, Ordering::Relaxed);
        WebSocketOpen(self.clone())
    }

    /// An idle connection was handed to the parking thread.
    pub(crate) fn parked_one(&self) {
        self.parks.fetch_add(1, Ordering::Relaxed);
    }

    /// How many idle connections are parked now (set by the parking thread).
    pub(crate) fn set_parked(&self, n: usize) {
        self.parked.store(n, Ordering::Relaxed);
    }

    fn sum(&self, f: impl Fn(&Shard) -> &AtomicU64) -> u64 {
        self.shards
            .iter()
            .map(|s| f(s).load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }
}

/// Counts one WebSocket as open while alive.
pub(crate) struct WebSocketOpen(Arc<ServerStats>);

impl Drop for WebSocketOpen {
    fn drop(&mut self) {
        self.0.websockets.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A reply-latency histogram: counts per bucket (not cumulative), the last one +Inf.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Latency {
    /// Upper bounds of the buckets but the last, in seconds.
    pub bounds: Vec<f64>,
    /// Replies per bucket; one more than `bounds` (the last is +Inf).
    pub counts: Vec<u64>,
    /// Sum of every latency, in seconds.
    pub sum: f64,
}

/// The server's counters at one moment: what the metrics endpoint shows and the daemon's
/// status document carries (`server_counters`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ServerCounters {
    /// Requests answered, by kind (json, jsonp, nict, toh, head, ws, preflight, page).
    pub requests: BTreeMap<String, u64>,
    /// Requests and connections refused, by reason.
    pub rejected: BTreeMap<String, u64>,
    /// Connections open (HTTP and WebSocket).
    pub connections: u64,
    /// `max_connections`.
    pub max_connections: u64,
    /// WebSockets open.
    pub websockets: u64,
    /// Idle HTTP connections parked outside the runtime (counted in `connections` too).
    #[serde(default)]
    pub parked: u64,
    /// Times an idle connection was parked (once per idle spell).
    #[serde(default)]
    pub parks: u64,
    /// Times every connection slot was taken (new clients waited in the listen backlog).
    pub connection_limit_reached: u64,
    /// Clients that waited in the backlog for a slot.
    pub connections_waited: u64,
    /// From the kernel's receive stamp `rt` to the send stamp `st`.
    pub latency: Latency,
    /// The leap-seconds list's expiry, Unix seconds, if there is a list.
    pub leap_list_expires: Option<i64>,
    /// The last refresh of the list from `leap_seconds_url`: when (Unix seconds) and
    /// whether it worked; `None` before the first or without a URL.
    pub leap_refresh: Option<(f64, bool)>,
}

/// What the metrics endpoint reads of a running server.
#[derive(Clone)]
pub struct ServerMetrics {
    pub(crate) stats: Arc<ServerStats>,
    pub(crate) slots: Arc<Slots>,
    pub(crate) leap: Arc<LeapStore>,
}

impl ServerMetrics {
    /// The counters now.
    pub fn counters(&self) -> ServerCounters {
        let s = &self.stats;
        let requests = Kind::ALL
            .iter()
            .map(|k| (k.as_str().to_owned(), s.sum(|sh| &sh.requests[*k as usize])))
            .collect();
        let rejected = Reject::ALL
            .iter()
            .map(|r| {
                let n = s.rejected[*r as usize].load(Ordering::Relaxed);
                (r.as_str().to_owned(), n)
            })
            .collect();
        let (limit_reached, waited) = self.slots.cap_counts();
        ServerCounters {
            requests,
            rejected,
            connections: self.slots.open() as u64,
            max_connections: self.slots.cap() as u64,
            websockets: s.websockets.load(Ordering::Relaxed) as u64,
            parked: s.parked.load(Ordering::Relaxed) as u64,
            parks: s.parks.load(Ordering::Relaxed),
            connection_limit_reached: limit_reached,
            connections_waited: waited,
            latency: Latency {
                bounds: LATENCY_BOUNDS_NS.iter().map(|b| *b as f64 / 1e9).collect(),
                counts: (0..=LATENCY_BOUNDS_NS.len())
                    .map(|i| s.sum(|sh| &sh.latency[i]))
                    .collect(),
                sum: s.sum(|sh| &sh.latency_sum_ns) as f64 / 1e9,
            },
            leap_list_expires: self.leap.current().map(|l| l.expires_unix()),
            leap_refresh: self.leap.last_refresh(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_land_in_their_buckets_and_shards_add_up() {
        let stats = Arc::new(ServerStats::default());
        let rt = Timestamp::from_secs(1_700_000_000);
        stats.replied(rt, rt.add_nanos(5_000));
        stats.replied(rt, rt.add_nanos(10_000));
        stats.replied(rt, rt.add_nanos(10_001));
        stats.replied(rt, rt.add_nanos(1_000_000_000));
        // A clock stepped back between the two readings counts as no time.
        stats.replied(rt, rt.add_nanos(-7));
        let other = {
            let stats = stats.clone();
            std::thread::spawn(move || {
                stats.request(Kind::Json);
                stats.request(Kind::Ws);
            })
        };
        other.join().unwrap();
        stats.request(Kind::Json);
        stats.rejected(Reject::Origin);
        let ws = stats.websocket();
        let m = ServerMetrics {
            stats: stats.clone(),
            slots: Slots::new(10, 1),
            leap: Arc::new(LeapStore::empty()),
        };
        let c = m.counters();
        assert_eq!(c.latency.counts.len(), c.latency.bounds.len() + 1);
        assert_eq!(c.latency.counts[0], 3);
        assert_eq!(c.latency.counts[1], 1);
        assert_eq!(*c.latency.counts.last().unwrap(), 1);
        assert!(
            (c.latency.sum - 1.000_025_001).abs() < 1e-9,
            "{}",
            c.latency.sum
        );
        assert_eq!(c.requests["json"], 2);
        assert_eq!(c.requests["ws"], 1);
        assert_eq!(c.requests["toh"], 0);
        assert_eq!(c.rejected["origin"], 1);
        assert_eq!(c.websockets, 1);
        drop(ws);
        assert_eq!(m.counters().websockets, 0);
        assert_eq!((c.connections, c.max_connections), (0, 10));
    }
}
