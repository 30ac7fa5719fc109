//! One client connection: TLS handshake, the idle and header-read timeouts, and hyper
//! (HTTP/1.1 or HTTP/2, detected from the first bytes or from ALPN) with upgrades.
//!
//! The timeouts are enforced here rather than by hyper's `header_read_timeout`, because hyper
//! does not run it while detecting the protocol, and on HTTP/1 it also restarts after every
//! response, which would tie the keep-alive idle time to the header time. Instead the socket
//! is wrapped in [`Tracked`], which notes when bytes arrive, and the service marks requests
//! in and out ([`super::activity::InFlight`]); one timer per connection (`watchdog`) sleeps until the next
//! deadline those facts imply:
//!
//! - a request head has started (or the connection is new) and is not complete after
//!   `header_read_timeout`: the connection is dropped (slowloris);
//! - no request in progress and nothing received for `keepalive_timeout`: the connection is
//!   closed gracefully;
//! - a response in progress but no byte read or written for `keepalive_timeout`: the client
//!   has stopped reading (its socket buffer is full); the connection is dropped.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::Either;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;

use http::{Request, Response};

use super::activity::{watchdog, Activity, Expiry, Tracked};
use super::body::ReplyBody;
use super::park::Parked;
use super::slots::Slot;
use super::stats::Reject;
use super::tls::TlsReloader;
use super::{fast, service, ws, Limits, Shared};
use crate::net::observe::Observed;
use crate::net::rxstamp::RxStamped;

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

/// Serve one accepted TCP connection to the end: the connection's task.
///
/// Not an `async fn`: one would keep its arguments in the task next to the future they are
/// moved into (about 180 bytes for every idle connection, issue 18); set up here, the task
/// is only the future that serves.
pub(crate) fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<Arc<TlsReloader>>,
    slot: Slot,
    shared: Arc<Shared>,
) -> impl Future<Output = ()> + Send {
    // Replies are one small write each: send them now, not after Nagle's delay.
    let _ = stream.set_nodelay(true);
    let (stream, rx) = RxStamped::new(stream);
    let activity = Arc::new(Activity::new(slot, rx, tls.is_some()));
    let io: Tracked<RxStamped> = Observed {
        inner: stream,
        observer: activity.clone(),
    };
    match tls {
        None => Either::Left(serve_plain(io, peer, activity, shared)),
        // Boxed, as hyper is below: TLS state a plain connection should not carry.
        Some(tls) => Either::Right(Box::pin(serve_tls(io, peer, tls, activity, shared))),
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
            shared.stats.rejected(Reject::Tls);
            tracing::debug!(target: "webntpd::server", "{peer}: TLS handshake failed: {e}");
        }
        Err(_) => {
            shared.stats.rejected(Reject::HeaderTimeout);
            tracing::debug!(target: "webntpd::server", "{peer}: TLS handshake not done within {:?}; closed", shared.limits.header_read_timeout);
        }
    }
}

/// A plain connection: the fast path first (see `fast`), hyper for whatever it hands over;
/// parked (see `park`) when idle.
async fn serve_plain(
    mut io: Tracked<RxStamped>,
    peer: SocketAddr,
    activity: Arc<Activity>,
    shared: Arc<Shared>,
) {
    let parking = shared.parking(shared.limits.keepalive_timeout);
    let outcome = {
        let fast = fast::serve(&mut io, peer, &shared, &activity);
        tokio::pin!(fast);
        tokio::select! {
            // The fast path first: a resumed connection's bytes are read before its watchdog
            // (whose park deadline has passed) could park it again unread (see `resume`).
            biased;
            r = &mut fast => Next::Fast(r),
            expiry = watchdog(&activity, &shared.limits, parking) => {
                if expiry == Expiry::Park {
                    // The fast path is waiting for a request with nothing read (no head in
                    // progress) and nothing unwritten (no request in flight): dropping it
                    // loses nothing.
                    Next::Park
                } else {
                    let limit = match expiry {
                        Expiry::HeaderTimeout => {
                            shared.stats.rejected(Reject::HeaderTimeout);
                            shared.limits.header_read_timeout
                        }
                        Expiry::Stalled => {
                            shared.stats.rejected(Reject::Stalled);
                            shared.limits.keepalive_timeout
                        }
                        Expiry::Idle | Expiry::Park => shared.limits.keepalive_timeout,
                    };
                    tracing::debug!(target: "webntpd::server", "{peer}: {expiry:?} after {limit:?}; closed");
                    return;
                }
            }
        }
    };
    match outcome {
        Next::Park => park(io, peer, activity, None, &shared),
        Next::Fast(Ok(fast::Outcome::WebSocket(early, session))) => {
            // Boxed, as hyper is below: a WebSocket's state is not every connection's.
            Box::pin(websocket(io, early, peer, activity, session, shared)).await;
        }
        Next::Fast(Ok(fast::Outcome::Fallback(read))) => {
            let io = fast::Prefixed::new(read, io);
            // Boxed: hyper's connection state is several KiB, which a connection the fast
            // path serves to the end (nearly all) should not carry.
            Box::pin(serve_http(io, peer, activity, shared)).await;
        }
        Next::Fast(Ok(fast::Outcome::Done)) => {}
        Next::Fast(Err(e)) => {
            tracing::debug!(target: "webntpd::server", "{peer}: connection ended: {e}");
        }
    }
}

/// What ends a plain connection's fast path.
enum Next {
    Fast(std::io::Result<fast::Outcome>),
    Park,
}

/// A WebSocket session on a plain connection, to its end or until it parks.
async fn websocket(
    mut io: Tracked<RxStamped>,
    early: Vec<u8>,
    peer: SocketAddr,
    activity: Arc<Activity>,
    session: ws::Session,
    shared: Arc<Shared>,
) {
    let client = ws::session::Client {
        peer,
        activity,
        shared,
        session,
    };
    let parking = client.shared.parking(client.shared.limits.ws_idle_timeout);
    if ws::session::run(&mut io, early, &client, parking).await == ws::session::End::Park {
        let ws::session::Client {
            peer,
            activity,
            shared,
            session,
        } = client;
        park(io, peer, activity, Some(session), &shared);
    }
}

/// Hand an idle connection (a WebSocket's if `ws`) to the parking thread; its task then
/// ends.
fn park(
    io: Tracked<RxStamped>,
    peer: SocketAddr,
    activity: Arc<Activity>,
    ws: Option<ws::Session>,
    shared: &Shared,
) {
    let Some(lot) = &shared.park else {
        return;
    };
    let stream = match io.inner.into_inner().into_std() {
        Ok(stream) => stream,
        Err(e) => {
            tracing::debug!(target: "webntpd::server", "{peer}: could not park: {e}; closed");
            return;
        }
    };
    let deadline = match ws {
        None => activity.idle_deadline(&shared.limits),
        Some(_) => activity.last_read_at() + shared.limits.ws_idle_timeout,
    }
    .into_std();
    shared.stats.parked_one();
    // Refused only when the server is stopping: the connection is closed, as it would be (a
    // WebSocket's with a close frame, see `park`).
    if let Err(refused) = lot.park(Parked {
        stream,
        peer,
        activity,
        deadline,
        ws,
    }) {
        super::park::farewell(refused);
    }
}

/// A parked connection whose client sent again (or, for a WebSocket, whose idle timeout
/// passed: `expired`): back on the fast path or in its WebSocket session, with its
/// `Activity`.
pub(crate) async fn resume(parked: Parked, expired: bool, shared: Arc<Shared>) {
    let Parked {
        stream,
        peer,
        activity,
        ws,
        ..
    } = parked;
    match TcpStream::from_std(stream) {
        Ok(stream) => {
            // The parking thread saw bytes; once tokio's reactor has seen them too, the fast
            // path (polled first) reads them before the watchdog, whose park deadline has
            // passed, could park the connection again unread. (Likewise the session.)
            let limit = shared.limits.header_read_timeout;
            let seen = async {
                if expired {
                    Ok(())
                } else {
                    stream.readable().await
                }
            };
            match tokio::time::timeout(limit, seen).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::debug!(target: "webntpd::server", "{peer}: parked connection failed: {e}; closed");
                    return;
                }
                Err(_) => {
                    shared.stats.rejected(Reject::HeaderTimeout);
                    tracing::debug!(target: "webntpd::server", "{peer}: HeaderTimeout after {limit:?}; closed");
                    return;
                }
            }
            let io: Tracked<RxStamped> = Observed {
                inner: RxStamped::resume(stream, activity.rx.clone()),
                observer: activity.clone(),
            };
            match ws {
                None => serve_plain(io, peer, activity, shared).await,
                Some(session) => {
                    Box::pin(websocket(io, Vec::new(), peer, activity, session, shared)).await;
                }
            }
        }
        Err(e) => {
            tracing::debug!(target: "webntpd::server", "{peer}: could not resume a parked connection: {e}; closed");
        }
    }
}

/// Answer hyper's request: a WebSocket upgrade ([`ws::accept`]), or [`service::handle`]. Never fails: every problem
/// becomes an HTTP error response.
fn respond<B>(
    req: Request<B>,
    peer: SocketAddr,
    shared: &Arc<Shared>,
    activity: &Arc<Activity>,
) -> Response<ReplyBody> {
    if ws::is_upgrade_request(&req) {
        ws::accept_upgrade(req, peer, shared, activity).into_response()
    } else {
        service::handle(&req, peer, shared, activity).into_response()
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
        let resp = respond(req, peer, &svc_shared, &svc_activity);
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
            expiry = watchdog(&activity, &shared.limits, false), if !closing => match expiry {
                Expiry::HeaderTimeout => {
                    shared.stats.rejected(Reject::HeaderTimeout);
                    tracing::debug!(target: "webntpd::server", "{peer}: request head not complete within {:?}; closed", shared.limits.header_read_timeout);
                    return;
                }
                Expiry::Stalled => {
                    shared.stats.rejected(Reject::Stalled);
                    tracing::debug!(target: "webntpd::server", "{peer}: not reading its responses for {:?}; closed", shared.limits.keepalive_timeout);
                    return;
                }
                Expiry::Idle | Expiry::Park => {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future an async fn with these arguments returns.
    fn future_size<A, B, C, D, E, F>(_: impl Fn(A, B, C, D, E) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// An idle kept-alive connection is this task and little else (issue 18): a guard against
    /// a change that makes every one of them carry more (hyper's and TLS's state are boxed, a
    /// buffer is never kept between requests). 720 bytes with Rust 1.9x; tokio stores it in a
    /// task cell aligned to 128 bytes, with about 120 bytes of its own.
    #[test]
    fn a_plain_connection_task_stays_small() {
        let size = future_size(serve);
        assert!(size <= 1024, "the connection task is {size} bytes");
    }
}
