//! One client connection: TLS handshake, the idle and header-read timeouts, and hyper
//! (HTTP/1.1 or HTTP/2, detected from the first bytes or from ALPN) with upgrades.
//!
//! The timeouts are enforced here rather than by hyper's `header_read_timeout`, because hyper
//! does not run it while detecting the protocol, and on HTTP/1 it also restarts after every
//! response, which would tie the keep-alive idle time to the header time. Instead the socket
//! is wrapped in [`Tracked`], which notes when bytes arrive, and the service marks requests
//! in and out ([`InFlight`]); one timer per connection (`watchdog`) sleeps until the next
//! deadline those facts imply:
//!
//! - a request head has started (or the connection is new) and is not complete after
//!   `header_read_timeout`: the connection is dropped (slowloris);
//! - no request in progress and nothing received for `keepalive_timeout`: the connection is
//!   closed gracefully;
//! - a response in progress but no byte read or written for `keepalive_timeout`: the client
//!   has stopped reading (its socket buffer is full); the connection is dropped.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::slots::Slot;
use super::tls::TlsReloader;
use super::{service, Limits, Shared};
use crate::observe::{Observed, Observer};
use crate::rxstamp::{RxStamp, RxStamped};

/// "No request head in progress."
const NONE: u64 = u64::MAX;

/// What is known about a connection's traffic, shared by its socket wrapper, its service and
/// its watchdog. Times are milliseconds since the connection was accepted.
pub(crate) struct Activity {
    accepted: Instant,
    /// Requests whose response hyper has not finished with.
    in_flight: AtomicU32,
    /// When bytes last arrived.
    last_read: AtomicU64,
    /// When bytes were last written.
    last_write: AtomicU64,
    /// The last write found the socket full (the client is not reading fast enough).
    write_blocked: AtomicBool,
    /// When the first byte of a request head not yet complete arrived; [`NONE`] if none.
    head_since: AtomicU64,
    /// When the last response was finished.
    last_done: AtomicU64,
    /// HTTP/2: idle is measured from the last finished request only (pings are not requests).
    h2: AtomicBool,
    /// Total bytes read, to spot the HTTP/2 preface on the first read.
    bytes_read: AtomicU64,
    /// The kernel's receive stamp of the last bytes read: `rt` is when they arrived, not when
    /// this task woke up to read them.
    pub(crate) rx: Arc<RxStamp>,
    /// The connection is TLS: pages served on it are in a secure context.
    pub(crate) tls: bool,
    /// This connection's slot under `max_connections`; released when the socket is dropped,
    /// which for an upgraded WebSocket is when the WebSocket session ends.
    _slot: Slot,
}

impl Activity {
    pub(crate) fn new(slot: Slot, rx: Arc<RxStamp>, tls: bool) -> Self {
        Activity {
            accepted: Instant::now(),
            in_flight: AtomicU32::new(0),
            last_read: AtomicU64::new(0),
            last_write: AtomicU64::new(0),
            write_blocked: AtomicBool::new(false),
            // The first request's head must arrive within the header timeout of the accept.
            head_since: AtomicU64::new(0),
            last_done: AtomicU64::new(0),
            h2: AtomicBool::new(false),
            bytes_read: AtomicU64::new(0),
            rx,
            tls,
            _slot: slot,
        }
    }

    fn now_ms(&self) -> u64 {
        self.accepted.elapsed().as_millis() as u64
    }

    fn on_read(&self, data: &[u8]) {
        let now = self.now_ms();
        self.last_read.store(now, Ordering::Relaxed);
        if self
            .bytes_read
            .fetch_add(data.len() as u64, Ordering::Relaxed)
            == 0
            && data.starts_with(b"PRI * HTTP/2.0")
        {
            self.h2.store(true, Ordering::Relaxed);
        }
        if self.in_flight.load(Ordering::Relaxed) == 0 {
            let _ =
                self.head_since
                    .compare_exchange(NONE, now, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    fn on_write(&self, res: &Poll<io::Result<usize>>) {
        match res {
            Poll::Pending => self.write_blocked.store(true, Ordering::Relaxed),
            Poll::Ready(r) => {
                self.write_blocked.store(false, Ordering::Relaxed);
                if matches!(r, Ok(n) if *n > 0) {
                    self.last_write.store(self.now_ms(), Ordering::Relaxed);
                }
            }
        }
    }

    /// A request head is complete and the service has it: the connection is busy until the
    /// returned guard is dropped (by hyper, when the response is written).
    pub(crate) fn begin_request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.head_since.store(NONE, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// The next moment something may expire, and what.
    fn next_deadline(&self, limits: &Limits) -> (u64, Expiry) {
        let ms = |d: Duration| d.as_millis() as u64;
        // hyper drops a response body (and its InFlight guard) once the bytes are in its own
        // write buffer, so a blocked write is the other sign of a response still pending.
        if self.in_flight.load(Ordering::Relaxed) > 0 || self.write_blocked.load(Ordering::Relaxed)
        {
            // Our handlers answer at once, so only a client that does not read can keep a
            // response pending: expire when neither direction has moved for a while.
            let progress = self
                .last_read
                .load(Ordering::Relaxed)
                .max(self.last_write.load(Ordering::Relaxed));
            return (progress + ms(limits.keepalive_timeout), Expiry::Stalled);
        }
        let head_since = self.head_since.load(Ordering::Relaxed);
        let h2 = self.h2.load(Ordering::Relaxed);
        if head_since != NONE && !h2 {
            return (
                head_since + ms(limits.header_read_timeout),
                Expiry::HeaderTimeout,
            );
        }
        let last_done = self.last_done.load(Ordering::Relaxed);
        let since = if h2 {
            last_done
        } else {
            last_done.max(self.last_read.load(Ordering::Relaxed))
        };
        (since + ms(limits.keepalive_timeout), Expiry::Idle)
    }
}

/// Marks one request as in progress on its connection while alive.
pub(crate) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.last_done.store(self.0.now_ms(), Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expiry {
    /// A request head did not complete in time.
    HeaderTimeout,
    /// Nothing to do and nothing received.
    Idle,
    /// A response pending and no I/O in either direction.
    Stalled,
}

/// Sleep until the connection's header or idle deadline passes and return which one; activity
/// in the meantime moves the deadline.
async fn watchdog(activity: &Activity, limits: &Limits) -> Expiry {
    loop {
        let (at, what) = activity.next_deadline(limits);
        tokio::time::sleep_until(activity.accepted + Duration::from_millis(at)).await;
        let (again, what_now) = activity.next_deadline(limits);
        if what_now == what && again <= activity.now_ms() {
            return what;
        }
    }
}

/// A socket that reports its traffic (bytes read and written) to its connection's
/// [`Activity`].
pub(crate) type Tracked<T> = Observed<T, Arc<Activity>>;

impl Observer for Arc<Activity> {
    type Before = ();

    fn before_write(&self) {}

    fn written(&self, (): (), result: &Poll<io::Result<usize>>) {
        self.on_write(result);
    }

    fn read(&self, data: &[u8]) {
        self.on_read(data);
    }
}

/// The hyper connection builder for this server's limits.
pub(crate) fn http_builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .keep_alive(true)
        // Timeouts are enforced by `watchdog`, not hyper (see the module comment).
        .header_read_timeout(None)
        .max_buf_size(limits.max_header_bytes)
        // The service sets Date from the server's Clock.
        .auto_date_header(false);
    b.http2()
        .auto_date_header(false)
        .max_concurrent_streams(limits.h2_max_concurrent_streams)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    b
}

/// Serve one accepted TCP connection to the end.
pub(crate) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<Arc<TlsReloader>>,
    slot: Slot,
    shared: Arc<Shared>,
) {
    // Replies are one small write each: send them now, not after Nagle's delay.
    let _ = stream.set_nodelay(true);
    let (stream, rx) = RxStamped::new(stream);
    let activity = Arc::new(Activity::new(slot, rx, tls.is_some()));
    let io: Tracked<RxStamped> = Observed {
        inner: stream,
        observer: activity.clone(),
    };
    match tls {
        None => serve_plain(io, peer, activity, shared).await,
        // Boxed, as hyper is below: TLS state a plain connection should not carry.
        Some(tls) => Box::pin(serve_tls(io, peer, tls, activity, shared)).await,
    }
}

/// A TLS connection: the handshake (bounded by the header timeout), then hyper.
async fn serve_tls(
    io: Tracked<RxStamped>,
    peer: SocketAddr,
    tls: Arc<TlsReloader>,
    activity: Arc<Activity>,
    shared: Arc<Shared>,
) {
    let handshake =
        tokio::time::timeout(shared.limits.header_read_timeout, tls.acceptor().accept(io));
    let stream = tokio::select! {
        r = handshake => r,
        _ = shared.shutdown.cancelled() => return,
    };
    match stream {
        Ok(Ok(stream)) => {
            if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                activity.h2.store(true, Ordering::Relaxed);
            }
            serve_http(stream, peer, activity, shared).await;
        }
        Ok(Err(e)) => {
            tracing::debug!(target: "webntpd::server", "{peer}: TLS handshake failed: {e}");
        }
        Err(_) => {
            tracing::debug!(target: "webntpd::server", "{peer}: TLS handshake not done within {:?}; closed", shared.limits.header_read_timeout);
        }
    }
}

/// A plain connection: the fast path first (see `fast`), hyper for whatever it hands over.
async fn serve_plain(
    mut io: Tracked<RxStamped>,
    peer: SocketAddr,
    activity: Arc<Activity>,
    shared: Arc<Shared>,
) {
    let outcome = {
        let fast = super::fast::serve(&mut io, peer, &shared, &activity);
        tokio::pin!(fast);
        tokio::select! {
            r = &mut fast => r,
            expiry = watchdog(&activity, &shared.limits) => {
                let limit = match expiry {
                    Expiry::HeaderTimeout => shared.limits.header_read_timeout,
                    Expiry::Idle | Expiry::Stalled => shared.limits.keepalive_timeout,
                };
                tracing::debug!(target: "webntpd::server", "{peer}: {expiry:?} after {limit:?}; closed");
                return;
            }
        }
    };
    match outcome {
        Ok(super::fast::Outcome::Fallback(read)) => {
            let io = super::fast::Prefixed::new(read, io);
            // Boxed: hyper's connection state is several KiB, which a connection the fast
            // path serves to the end (nearly all) should not carry.
            Box::pin(serve_http(io, peer, activity, shared)).await;
        }
        Ok(super::fast::Outcome::Done) => {}
        Err(e) => {
            tracing::debug!(target: "webntpd::server", "{peer}: connection ended: {e}");
        }
    }
}

pub(crate) async fn serve_http<I>(
    io: I,
    peer: SocketAddr,
    activity: Arc<Activity>,
    shared: Arc<Shared>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let builder = http_builder(&shared.limits);
    let svc_shared = shared.clone();
    let svc_activity = activity.clone();
    let svc = hyper::service::service_fn(move |req| {
        let resp = service::respond(req, peer, &svc_shared, &svc_activity);
        std::future::ready(Ok::<_, std::convert::Infallible>(resp))
    });
    // HTTP/2 clients that flood control frames are cut off (see `flood`).
    let io = super::flood::Guard::new(io, super::flood::FrameCounter::new());
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), svc);
    tokio::pin!(conn);
    let mut closing = false;
    // Once a graceful close has begun, the connection gets this long to finish it.
    let close_deadline = tokio::time::sleep(Duration::MAX);
    tokio::pin!(close_deadline);
    loop {
        tokio::select! {
            res = conn.as_mut() => {
                if let Err(e) = res {
                    tracing::debug!(target: "webntpd::server", "{peer}: connection ended: {e}");
                }
                return;
            }
            expiry = watchdog(&activity, &shared.limits), if !closing => match expiry {
                Expiry::HeaderTimeout => {
                    tracing::debug!(target: "webntpd::server", "{peer}: request head not complete within {:?}; closed", shared.limits.header_read_timeout);
                    return;
                }
                Expiry::Stalled => {
                    tracing::debug!(target: "webntpd::server", "{peer}: not reading its responses for {:?}; closed", shared.limits.keepalive_timeout);
                    return;
                }
                Expiry::Idle => {
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                    close_deadline.as_mut().reset(Instant::now() + shared.limits.header_read_timeout);
                }
            },
            _ = shared.shutdown.cancelled(), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
                close_deadline.as_mut().reset(Instant::now() + shared.limits.shutdown_timeout);
            }
            _ = &mut close_deadline, if closing => {
                tracing::debug!(target: "webntpd::server", "{peer}: did not finish closing in time; dropped");
                return;
            }
        }
    }
}
