//! The WebNTP server: listeners, the accept loop, and graceful shutdown.
//!
//! One task accepts on each listener; each accepted connection gets its own task (`conn`),
//! which speaks HTTP/1.1 or HTTP/2 through hyper, hands WebSocket upgrades to `ws`, and routes
//! requests in `service`. [`slots`] bounds the number of open connections: a slot is taken
//! *before* `accept()`, so at the limit new clients wait in the kernel's backlog instead of
//! costing us memory (and the server logs that it is full, once). Listeners ask the kernel
//! for the largest backlog it allows ([`LISTEN_BACKLOG`]), so a burst of connects waits
//! there instead of being dropped.
//!
//! Shutdown (mini-redis / hickory style): cancelling the token given to [`Server::run`] stops
//! the accept loops, asks every HTTP connection to finish its in-flight request and close,
//! and closes every WebSocket with 1001 "going away". `run` returns when all connection tasks
//! have finished, or after `shutdown_timeout` with the stragglers aborted.

pub(crate) mod activity;
mod body;
pub(crate) mod conn;
pub(crate) mod fast;
mod flood;
pub mod ntp;
pub mod page;
mod park;
pub(crate) mod reply;
mod running;
pub(crate) mod service;
pub(crate) mod slots;
pub mod stats;
mod tls;
pub(crate) mod ws;

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::SharedClock;
use crate::leap::store::LeapStore;

pub use running::RunningServer;
pub use stats::{ServerCounters, ServerMetrics};
pub use tls::{load_config as load_tls_config, TlsError, TlsFiles};

/// Which browser origins may use the server (CORS on HTTP, `Origin` on WebSocket upgrades).
///
/// Requests without an `Origin` header (every non-browser client) are never affected.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum OriginPolicy {
    /// Any origin: `Access-Control-Allow-Origin: *`, every WebSocket upgrade accepted. The
    /// default: the time is public data, and NICT's service sent `*` on everything.
    #[default]
    Any,
    /// Only these origins (exact `scheme://host[:port]` strings): HTTP replies carry
    /// `Access-Control-Allow-Origin: <origin>` for them and no CORS header for others;
    /// WebSocket upgrades from other origins get 403.
    List(Vec<String>),
}

impl OriginPolicy {
    /// Whether a request with this `Origin` header value may use the server.
    pub fn allows(&self, origin: &str) -> bool {
        match self {
            OriginPolicy::Any => true,
            OriginPolicy::List(list) => list.iter().any(|o| o.eq_ignore_ascii_case(origin)),
        }
    }
}

/// Resource limits; every one has a default fit for a public server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Time allowed from the first byte of a request (or from accepting the connection, for
    /// the first request) until its head is complete; also bounds the TLS handshake. Stops
    /// slowloris clients. Default 10 s.
    pub header_read_timeout: Duration,
    /// An HTTP connection with no request in progress and nothing received for this long is
    /// closed. Default 30 s.
    pub keepalive_timeout: Duration,
    /// Largest request head (request line plus headers) in bytes; larger gets 431.
    /// Default and minimum 8192 (hyper's smallest buffer).
    pub max_header_bytes: usize,
    /// Most connections open at once (HTTP and WebSocket together); more wait in the listen
    /// backlog, and reaching it is logged (once, see `slots`). Default 10000.
    pub max_connections: usize,
    /// A WebSocket that sends nothing for this long is closed (1000, "idle timeout").
    /// Default 60 s, as go-webntp.
    pub ws_idle_timeout: Duration,
    /// Largest WebSocket message in bytes; larger closes with 1009. Default 1024, as go-webntp.
    pub ws_max_message: usize,
    /// Concurrent streams per HTTP/2 connection. Default 100.
    pub h2_max_concurrent_streams: u32,
    /// How long shutdown waits for in-flight requests before closing connections anyway.
    /// Default 5 s.
    pub shutdown_timeout: Duration,
    /// A plain HTTP/1 connection or WebSocket with nothing to do for this long is parked
    /// outside the runtime until its client sends again (see `park`), if its idle timeout
    /// (keep-alive, or WebSocket idle) is at least twice as long. Zero: never. Default 1 s.
    pub park_after: Duration,
}

/// hyper refuses read buffers smaller than this.
pub const MIN_HEADER_BYTES: usize = 8192;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(30),
            max_header_bytes: MIN_HEADER_BYTES,
            max_connections: 10_000,
            ws_idle_timeout: Duration::from_secs(60),
            ws_max_message: 1024,
            h2_max_concurrent_streams: 100,
            shutdown_timeout: Duration::from_secs(5),
            park_after: Duration::from_secs(1),
        }
    }
}

/// A listening address: `IP:PORT`, `[IPv6]:PORT`, or `:PORT` for every address (IPv6 and
/// IPv4, as Go's `-serve :8080`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenAddr(pub SocketAddr);

impl FromStr for ListenAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(port) = s.strip_prefix(':') {
            let port: u16 = port
                .parse()
                .map_err(|_| format!("`{s}`: expected `:PORT` with PORT 0-65535"))?;
            return Ok(ListenAddr(SocketAddr::new(
                IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                port,
            )));
        }
        s.parse::<SocketAddr>().map(ListenAddr).map_err(|_| {
            format!("`{s}`: expected IP:PORT, [IPv6]:PORT or :PORT (e.g. 127.0.0.1:8080, :8080)")
        })
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Everything the server needs to know. The CLI's `serve` flags and (later) the daemon's
/// `[server]` table both fill this in.
#[derive(Debug, Clone, Default)]
pub struct ServerConfig {
    /// Plain HTTP (and ws://) listeners.
    pub listen: Vec<ListenAddr>,
    /// HTTPS (and wss://) listeners; need `tls`.
    pub listen_tls: Vec<ListenAddr>,
    /// Certificate chain and key for the TLS listeners.
    pub tls: Option<TlsFiles>,
    /// The `id` field of every reply. `None`: the request's Host header, as go-webntp does.
    pub server_id: Option<String>,
    /// Browser origin policy (CORS and WebSocket `Origin`).
    pub origins: OriginPolicy,
    /// Resource limits.
    pub limits: Limits,
    /// Where the clock page for browsers is served (`None`: nowhere, every path answers
    /// WebNTP JSON).
    pub clock_page: Option<String>,
    /// WebNTP URLs the clock page also asks ([`page::parse_peer`]).
    pub clock_peers: Vec<String>,
    /// NTP beside WebNTP, if any.
    pub ntp: Option<ntp::NtpServeConfig>,
}

/// Why the server could not start or reload.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Nothing to listen on.
    #[error("no listen address: give at least one --listen (e.g. --listen 127.0.0.1:8080)")]
    NoListener,
    /// Configuration that contradicts itself.
    #[error("{0}")]
    Config(String),
    /// `bind()` failed.
    #[error("cannot listen on {addr}: {source}{hint}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
        /// What to do about it.
        hint: &'static str,
    },
    /// A certificate or key file could not be used.
    #[error("TLS: {0}")]
    Tls(#[from] tls::TlsError),
    /// An NTP socket could not be bound.
    #[error(transparent)]
    Ntp(#[from] crate::net::ntp::BindError),
}

impl ServerError {
    /// The sysexits code a command should exit with for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            ServerError::NoListener | ServerError::Config(_) => crate::exit::CONFIG,
            ServerError::Bind { source, .. } => match source.kind() {
                io::ErrorKind::PermissionDenied => crate::exit::NOPERM,
                _ => crate::exit::UNAVAILABLE,
            },
            ServerError::Tls(e) => e.exit_code(),
            ServerError::Ntp(e) => e.exit_code(),
        }
    }
}

/// State shared by every connection of one server.
pub(crate) struct Shared {
    pub(crate) clock: SharedClock,
    pub(crate) leap: Arc<LeapStore>,
    pub(crate) server_id: Option<String>,
    pub(crate) origins: OriginPolicy,
    pub(crate) limits: Limits,
    /// The clock page, if served.
    pub(crate) page: Option<page::ClockPage>,
    /// Cancelled when the server shuts down.
    pub(crate) shutdown: CancellationToken,
    /// Every connection and WebSocket task, so shutdown can wait for them.
    pub(crate) tasks: TaskTracker,
    /// Requests, refusals and latencies, for the metrics endpoint.
    pub(crate) stats: Arc<stats::ServerStats>,
    /// Where idle connections park; `None` if the epoll set could not be made.
    pub(crate) park: Option<Arc<park::Lot>>,
}

impl Shared {
    /// Idle plain connections whose idle timeout is `idle` (HTTP's keep-alive timeout, or the
    /// WebSocket idle timeout) may be parked now.
    pub(crate) fn parking(&self, idle: Duration) -> bool {
        let l = &self.limits;
        !l.park_after.is_zero()
            && l.park_after.saturating_mul(2) <= idle
            && self.park.as_ref().is_some_and(|p| p.is_open())
    }
}

struct Listener {
    inner: TcpListener,
    tls: Option<Arc<tls::TlsReloader>>,
}

/// A bound, not yet running server.
pub struct Server {
    listeners: Vec<Listener>,
    tls: Option<Arc<tls::TlsReloader>>,
    shared: Arc<Shared>,
    /// The connection cap, shared by the accept loops.
    slots: Arc<slots::Slots>,
    /// The epoll set of the parking thread [`run`](Self::run) starts.
    park_poll: Option<mio::Poll>,
}

impl Server {
    /// Check `config`, load the TLS files and bind every listener. Nothing is served until
    /// [`run`](Self::run).
    pub async fn bind(
        config: ServerConfig,
        clock: SharedClock,
        leap: Arc<LeapStore>,
    ) -> Result<Server, ServerError> {
        if config.listen.is_empty() && config.listen_tls.is_empty() {
            return Err(ServerError::NoListener);
        }
        if config.limits.max_header_bytes < MIN_HEADER_BYTES {
            return Err(ServerError::Config(format!(
                "max header bytes {} is below the minimum {MIN_HEADER_BYTES}",
                config.limits.max_header_bytes
            )));
        }
        if config.limits.max_connections == 0 {
            return Err(ServerError::Config(
                "max connections must be at least 1".to_string(),
            ));
        }
        let tls = match (&config.tls, config.listen_tls.is_empty()) {
            (Some(files), false) => Some(Arc::new(tls::TlsReloader::load(files.clone())?)),
            (None, false) => {
                return Err(ServerError::Config(
                    "--tls-listen needs a certificate: add --tls-cert FILE --tls-key FILE".into(),
                ))
            }
            (Some(_), true) => {
                return Err(ServerError::Config(
                    "--tls-cert/--tls-key given but no TLS listener: add --tls-listen ADDR \
                     (e.g. --tls-listen :443)"
                        .into(),
                ))
            }
            (None, true) => None,
        };
        let page = match &config.clock_page {
            Some(path) => {
                Some(page::ClockPage::new(path, &config.clock_peers).map_err(ServerError::Config)?)
            }
            None => None,
        };
        check_somaxconn();
        let mut listeners = Vec::new();
        for addr in &config.listen {
            listeners.push(Listener {
                inner: bind(addr.0)?,
                tls: None,
            });
        }
        for addr in &config.listen_tls {
            listeners.push(Listener {
                inner: bind(addr.0)?,
                tls: tls.clone(),
            });
        }
        let slots = slots::Slots::new(config.limits.max_connections, listeners.len());
        let (park, park_poll) = match park::Lot::new() {
            Ok((lot, poll)) => (Some(lot), Some(poll)),
            Err(e) => {
                tracing::warn!(target: "webntpd::server", "cannot make the epoll set for idle connections ({e}): they stay tasks, about 1.3 KiB each instead of 0.3");
                (None, None)
            }
        };
        Ok(Server {
            listeners,
            tls,
            slots,
            park_poll,
            shared: Arc::new(Shared {
                clock,
                leap,
                server_id: config.server_id,
                origins: config.origins,
                limits: config.limits,
                page,
                shutdown: CancellationToken::new(),
                tasks: TaskTracker::new(),
                stats: Arc::default(),
                park,
            }),
        })
    }

    /// What the metrics endpoint reads of this server, while it runs and after.
    pub fn metrics(&self) -> ServerMetrics {
        ServerMetrics {
            stats: self.shared.stats.clone(),
            slots: self.slots.clone(),
            leap: self.shared.leap.clone(),
        }
    }

    /// The bound addresses, with whether each serves TLS (useful with port 0).
    pub fn local_addrs(&self) -> Vec<(SocketAddr, bool)> {
        self.listeners
            .iter()
            .filter_map(|l| l.inner.local_addr().ok().map(|a| (a, l.tls.is_some())))
            .collect()
    }

    /// A handle that reloads the TLS certificate and key from their files (for SIGHUP);
    /// `None` without TLS.
    pub fn tls_reloader(&self) -> Option<TlsReloadHandle> {
        self.tls.clone().map(TlsReloadHandle)
    }

    /// Serve until `shutdown` is cancelled, then shut down gracefully (bounded by
    /// `shutdown_timeout`).
    pub async fn run(self, shutdown: CancellationToken) {
        let shared = self.shared;
        let slots = self.slots;
        // Parked connections are closed however `run` ends (returned or dropped).
        let _close_parked = shared.park.clone().map(ClosePark);
        if let (Some(lot), Some(poll)) = (&shared.park, self.park_poll) {
            if let Err(e) = park::start(
                lot.clone(),
                poll,
                shared.clone(),
                tokio::runtime::Handle::current(),
            ) {
                tracing::warn!(target: "webntpd::server", "cannot start the thread for idle connections ({e}): they stay tasks, about 1.3 KiB each instead of 0.3");
            }
        }
        let mut accept_tasks = tokio::task::JoinSet::new();
        for l in self.listeners {
            let addr = l.inner.local_addr().ok();
            let scheme = if l.tls.is_some() { "https" } else { "http" };
            if let Some(addr) = addr {
                tracing::info!(target: "webntpd::server", "listening on {scheme}://{addr}/");
            }
            accept_tasks.spawn(accept_loop(l, shared.clone(), slots.clone()));
        }

        shutdown.cancelled().await;
        tracing::info!(target: "webntpd::server", "shutting down: closing listeners, finishing in-flight requests");
        shared.shutdown.cancel();
        if let Some(lot) = &shared.park {
            lot.close();
        }
        accept_tasks.shutdown().await;
        shared.tasks.close();
        let timeout = shared.limits.shutdown_timeout;
        if tokio::time::timeout(timeout, shared.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                target: "webntpd::server",
                "{} connection(s) still open after {:?}; closing them",
                shared.tasks.len(),
                timeout
            );
        }
        tracing::info!(target: "webntpd::server", "server stopped");
    }
}

/// Closes the parking lot when dropped.
struct ClosePark(Arc<park::Lot>);

impl Drop for ClosePark {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Reloads the TLS certificate and key files of a running server.
#[derive(Clone)]
pub struct TlsReloadHandle(Arc<tls::TlsReloader>);

impl TlsReloadHandle {
    /// Re-read the files; on error the old certificate stays in use.
    pub fn reload(&self) -> Result<(), ServerError> {
        self.0.reload().map_err(ServerError::from)
    }
}

/// What `listen(2)` asks for: as many pending connections as the kernel allows. Linux caps
/// it at `net.core.somaxconn` (4096 since Linux 5.4, 128 before), as for Go's servers; std's
/// and tokio's `bind` ask for 128, which a burst of connects overflows (the clients' final
/// ACKs are dropped and they sit half-open for seconds).
pub const LISTEN_BACKLOG: u32 = i32::MAX as u32;

/// Below this `net.core.somaxconn` a warning says how to raise it.
const SOMAXCONN_WANTED: u32 = 4096;

/// The kernel's cap on listen backlogs, if it can be read.
pub fn somaxconn() -> Option<u32> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open("/proc/sys/net/core/somaxconn")
        .ok()?
        .take(32)
        .read_to_string(&mut text)
        .ok()?;
    text.trim().parse().ok()
}

/// Warn once if the kernel caps listen backlogs low enough for a burst of connects to
/// overflow them.
fn check_somaxconn() {
    if let Some(max) = somaxconn().filter(|m| *m < SOMAXCONN_WANTED) {
        tracing::warn!(
            target: "webntpd::server",
            "the kernel limits listen backlogs to {max} (net.core.somaxconn): more clients \
             connecting at once than that are dropped and retry seconds later; raise it with \
             `sysctl -w net.core.somaxconn={SOMAXCONN_WANTED}` (and in /etc/sysctl.d/)"
        );
    }
}

/// Bind and listen on `addr` as std's `TcpListener::bind` does (`SO_REUSEADDR`; `[::]` is
/// dual-stack unless the system says otherwise), with the backlog of [`LISTEN_BACKLOG`].
pub(crate) fn bind(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    let listen = || {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(LISTEN_BACKLOG)
    };
    listen().map_err(|source| {
        let hint = match source.kind() {
            io::ErrorKind::AddrInUse => {
                "; another process is listening there: stop it or choose another port"
            }
            io::ErrorKind::PermissionDenied => {
                "; ports below 1024 need root or CAP_NET_BIND_SERVICE (AmbientCapabilities= in \
                 the systemd unit)"
            }
            io::ErrorKind::AddrNotAvailable => {
                "; this machine has no such address: check the IP (use :PORT for every address)"
            }
            _ => "",
        };
        ServerError::Bind { addr, source, hint }
    })
}

async fn accept_loop(listener: Listener, shared: Arc<Shared>, slots: Arc<slots::Slots>) {
    let mut backoff = Duration::from_millis(5);
    loop {
        // Take a connection slot before accepting: at the limit, clients wait in the backlog.
        let Some(slot) = slots.take().await else {
            return;
        };
        match slots.accept(&listener.inner).await {
            Ok((stream, peer)) => {
                backoff = Duration::from_millis(5);
                let shared2 = shared.clone();
                let tls = listener.tls.clone();
                shared
                    .tasks
                    .spawn(conn::serve(stream, peer, tls, slot, shared2));
            }
            Err(e) => {
                // EMFILE/ENFILE/ENOBUFS and friends: transient, back off instead of spinning.
                tracing::warn!(target: "webntpd::server", "accept failed: {e}; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// Raise the soft open-files limit to the hard limit (Go does this at start-up too), so
/// `max_connections` is not silently capped by a 1024 default. Returns the new soft limit.
pub fn raise_nofile_limit() -> Option<u64> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return Some(hard);
    }
    Some(soft)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        assert_eq!(
            "127.0.0.1:8080".parse::<ListenAddr>().unwrap().0,
            "127.0.0.1:8080".parse().unwrap()
        );
        assert_eq!(
            ":8080".parse::<ListenAddr>().unwrap().0,
            "[::]:8080".parse().unwrap()
        );
        assert_eq!(
            "[::1]:0".parse::<ListenAddr>().unwrap().0,
            "[::1]:0".parse().unwrap()
        );
        for bad in ["8080", "localhost:80", ":99999", "1.2.3.4", ""] {
            assert!(bad.parse::<ListenAddr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn origin_policy() {
        assert!(OriginPolicy::Any.allows("https://evil.example"));
        let p = OriginPolicy::List(vec!["https://a.example".into()]);
        assert!(p.allows("https://a.example"));
        assert!(p.allows("HTTPS://A.EXAMPLE"));
        assert!(!p.allows("https://b.example"));
        assert!(!p.allows("https://a.example.evil"));
    }
}
