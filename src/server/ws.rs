//! WebSocket: the upgrade handshake and the per-connection session.
//!
//! Any path upgrades. The handshake is held to RFC 6455 section 4.2.1: a `GET` naming
//! `websocket` in `Upgrade` must be HTTP/1.1, list `upgrade` in `Connection` and carry exactly
//! one `Sec-WebSocket-Key` that is the base64 of 16 bytes, or it gets 400 with the reason in
//! JSON; a `Sec-WebSocket-Version` other than 13 gets 426 (with the version we speak).
//! The subprotocol `webntp.shogo82148.com` is echoed when the client offers
//! it; a client offering none is accepted too. Each text or binary message holding one
//! timestamp gets one text reply, the same JSON object as over HTTP (with `rt`), in order, as
//! many per connection as the client likes.
//!
//! Where go-webntp drops the TCP connection without a word, this session closes with a reason:
//! 1009 for a message over the size limit, 1007 for one that is not a timestamp (or not
//! UTF-8), 1002 for a protocol violation, 1008 for a message in more than 128 fragments, 1000
//! after the idle timeout, 1001 when the server shuts down.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::time::error::Elapsed;
use tokio_tungstenite::tungstenite::error::Error as WsError;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::activity::InFlight;
use super::body::ReplyBody;
use super::flood::{is_flood, Guard, WsFragments};
use super::reply::{self, error, server_id, Cors};
use super::stats::{Kind, Reject};
use super::Shared;
use crate::net::rxstamp::RxStamp;
use crate::sync::Timestamp;
use crate::wire::reply::{ReplyFields, ReplyTemplate};
use crate::wire::WS_SUBPROTOCOL;

/// After sending a close frame, how long to wait for the client's close before hanging up.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

static WEBSOCKET: HeaderValue = HeaderValue::from_static("websocket");
static UPGRADE: HeaderValue = HeaderValue::from_static("Upgrade");
static SUBPROTOCOL: HeaderValue = HeaderValue::from_static(WS_SUBPROTOCOL);
static VERSION_13: HeaderValue = HeaderValue::from_static("13");

/// Whether any `name` header (comma-separated) lists `token`, ignoring case.
fn lists(headers: &http::HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .any(|v| reply::lists(v.as_bytes(), token))
}

/// A `GET` with `Upgrade: websocket`: a WebSocket handshake, valid or not ([`accept`]
/// checks the rest).
pub(crate) fn is_upgrade_request<B>(req: &Request<B>) -> bool {
    req.method() == http::Method::GET && lists(req.headers(), header::UPGRADE, "websocket")
}

/// Why a handshake is not one RFC 6455 section 4.2.1 allows (the version aside, which gets
/// its own status), or `None`.
fn handshake_problem<B>(req: &Request<B>) -> Option<&'static str> {
    let headers = req.headers();
    if req.version() != http::Version::HTTP_11 {
        return Some("a WebSocket handshake must be an HTTP/1.1 request (RFC 6455 section 4.1)");
    }
    if !lists(headers, header::CONNECTION, "upgrade") {
        return Some(
            "WebSocket handshake without `Connection: Upgrade` (a proxy on the way may have \
             dropped it)",
        );
    }
    let mut keys = headers.get_all(header::SEC_WEBSOCKET_KEY).iter();
    match (keys.next(), keys.next()) {
        (Some(key), None) if is_valid_key(key.as_bytes()) => None,
        (Some(_), None) => Some(
            "invalid Sec-WebSocket-Key: it must be the base64 of 16 random bytes (24 \
             characters, RFC 6455 section 4.1)",
        ),
        (None, _) => Some("WebSocket handshake without a Sec-WebSocket-Key"),
        (Some(_), Some(_)) => Some("more than one Sec-WebSocket-Key"),
    }
}

/// A `Sec-WebSocket-Key`: base64 (with padding, no stray bits) of exactly 16 bytes.
fn is_valid_key(key: &[u8]) -> bool {
    use base64::Engine;
    key.len() == 24
        && base64::engine::general_purpose::STANDARD
            .decode(key)
            .is_ok_and(|k| k.len() == 16)
}

/// Answer an upgrade request: 101 and a session task, or the reason it is refused.
pub(crate) fn accept<B>(
    mut req: Request<B>,
    peer: SocketAddr,
    shared: &Arc<Shared>,
    rx: Arc<RxStamp>,
    busy: InFlight,
    cors: Cors,
) -> Response<ReplyBody> {
    if let Some(reason) = handshake_problem(&req) {
        tracing::debug!(target: "webntpd::server", "{peer}: WebSocket handshake refused: {reason}");
        shared.stats.rejected(Reject::Handshake);
        return error(StatusCode::BAD_REQUEST, reason, busy, &cors).into_response();
    }
    let headers = req.headers();
    if let Some(origin) = headers.get(header::ORIGIN) {
        let allowed = origin.to_str().is_ok_and(|o| shared.origins.allows(o));
        if !allowed {
            tracing::debug!(target: "webntpd::server", "{peer}: WebSocket from origin {origin:?} refused by the origin policy");
            shared.stats.rejected(Reject::Origin);
            return error(
                StatusCode::FORBIDDEN,
                "origin not allowed by this server's origin policy",
                busy,
                &cors,
            )
            .into_response();
        }
    }
    if headers.get(header::SEC_WEBSOCKET_VERSION) != Some(&VERSION_13) {
        shared.stats.rejected(Reject::Handshake);
        let mut reply = error(
            StatusCode::UPGRADE_REQUIRED,
            "unsupported WebSocket version; this server speaks version 13 (RFC 6455)",
            busy,
            &cors,
        );
        reply.insert(header::SEC_WEBSOCKET_VERSION, VERSION_13.clone());
        return reply.into_response();
    }
    // Checked by `handshake_problem`: exactly one, valid.
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .map_or(&[][..], HeaderValue::as_bytes);
    let accept_key = derive_accept_key(key);
    let subprotocol = lists(headers, header::SEC_WEBSOCKET_PROTOCOL, WS_SUBPROTOCOL);
    let id = server_id(shared, &req).into_owned();

    let on_upgrade = hyper::upgrade::on(&mut req);
    let client = Client {
        peer,
        id,
        rx,
        shared: shared.clone(),
    };
    shared.tasks.spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(e) => {
                tracing::debug!(target: "webntpd::server", "{peer}: WebSocket upgrade failed: {e}");
                return;
            }
        };
        // A message in more fragments than any client needs is refused (see `flood`).
        let io = Guard::new(TokioIo::new(upgraded), WsFragments::new());
        let config = crate::net::ws_config(
            client.shared.limits.ws_max_message,
            crate::net::WS_SERVER_READ_BUFFER,
        );
        let ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
        session(ws, &client).await;
    });

    let mut resp = Response::new(ReplyBody::empty(busy));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::UPGRADE, WEBSOCKET.clone());
    h.insert(header::CONNECTION, UPGRADE.clone());
    if let Ok(v) = HeaderValue::from_str(&accept_key) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    if subprotocol {
        h.insert(header::SEC_WEBSOCKET_PROTOCOL, SUBPROTOCOL.clone());
    }
    resp
}

type Ws = WebSocketStream<Guard<TokioIo<Upgraded>, WsFragments>>;

/// Who a WebSocket session serves: kept once in its task, which the session borrows.
struct Client {
    peer: SocketAddr,
    /// The reply's `id`.
    id: String,
    rx: Arc<RxStamp>,
    shared: Arc<Shared>,
}

/// Serve one WebSocket until the client leaves, misbehaves, idles or the server stops.
///
/// Every idle WebSocket is this future and the task around it, so it takes the stream by value
/// and the rest by reference: an `async fn` keeps its arguments for its whole life, next to
/// whatever they were moved into (issue 18).
async fn session(mut ws: Ws, client: &Client) {
    let (peer, shared) = (client.peer, &client.shared);
    let idle = shared.limits.ws_idle_timeout;
    let _open = shared.stats.websocket();
    loop {
        let next = tokio::select! {
            _ = shared.shutdown.cancelled() => {
                close(&mut ws, CloseCode::Away, "server shutting down").await;
                return;
            }
            next = tokio::time::timeout(idle, ws.next()) => next,
        };
        let reply = match respond(next, client) {
            Turn::Reply(reply) => reply,
            Turn::Skip => continue,
            Turn::Flush => {
                // The pong is queued by tungstenite; send it now.
                if ws.flush().await.is_err() {
                    return;
                }
                continue;
            }
            Turn::End => return,
            Turn::Close(code, reason) => {
                // Every close but the idle timeout's refuses what the client sent.
                if code != CloseCode::Normal {
                    shared.stats.rejected(Reject::WsMessage);
                }
                close(&mut ws, code, &reason).await;
                return;
            }
        };
        // A client that stops reading blocks the send; it gets the idle timeout too.
        match tokio::time::timeout(idle, ws.send(Message::text(reply))).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!(target: "webntpd::server", "{peer}: WebSocket send failed: {e}");
                return;
            }
            Err(_) => {
                tracing::debug!(target: "webntpd::server", "{peer}: WebSocket client not reading its replies for {idle:?}; dropped");
                return;
            }
        }
    }
}

/// What the session does next.
enum Turn {
    /// Send this reply.
    Reply(String),
    /// Nothing to send (a pong, or a close tungstenite answers).
    Skip,
    /// Send what tungstenite queued (the pong to a ping).
    Flush,
    /// The connection is gone.
    End,
    /// Close with this code and reason.
    Close(CloseCode, String),
}

/// What to do about what the stream gave: the reply to a message, or why the session ends.
/// Not async, so that none of it (the message, the reply's pieces, an error) is part of the
/// session's state while it waits.
fn respond(next: Result<Option<Result<Message, WsError>>, Elapsed>, client: &Client) -> Turn {
    let Client {
        peer,
        id,
        rx,
        shared,
    } = client;
    let limit = shared.limits.ws_max_message;
    let msg = match next {
        Err(_) => return Turn::Close(CloseCode::Normal, "idle timeout".into()),
        Ok(None) => return Turn::End,
        Ok(Some(Err(WsError::Capacity(e)))) => {
            tracing::debug!(target: "webntpd::server", "{peer}: WebSocket message refused: {e}");
            return Turn::Close(
                CloseCode::Size,
                format!("message larger than {limit} bytes"),
            );
        }
        Ok(Some(Err(WsError::Utf8(_)))) => {
            tracing::debug!(target: "webntpd::server", "{peer}: WebSocket text message is not UTF-8");
            return Turn::Close(CloseCode::Invalid, "text message is not UTF-8".into());
        }
        Ok(Some(Err(WsError::Io(e)))) if is_flood(&e) => {
            tracing::debug!(target: "webntpd::server", "{peer}: WebSocket refused: {e}");
            return Turn::Close(CloseCode::Policy, e.to_string());
        }
        Ok(Some(Err(WsError::Protocol(e)))) => {
            tracing::debug!(target: "webntpd::server", "{peer}: WebSocket protocol error: {e}");
            return Turn::Close(CloseCode::Protocol, format!("protocol error: {e}"));
        }
        Ok(Some(Err(e))) => {
            tracing::debug!(target: "webntpd::server", "{peer}: WebSocket ended: {e}");
            return Turn::End;
        }
        Ok(Some(Ok(msg))) => msg,
    };
    // When the message's bytes arrived, not when this task got to them.
    let rt = rx.received(&*shared.clock);
    let text = match &msg {
        Message::Text(t) => t.as_str(),
        Message::Binary(b) => match std::str::from_utf8(b) {
            Ok(s) => s,
            Err(_) => {
                return Turn::Close(
                    CloseCode::Invalid,
                    "binary message is not UTF-8 text".into(),
                )
            }
        },
        Message::Ping(_) => return Turn::Flush,
        // A close is answered by tungstenite; the stream then ends.
        Message::Pong(_) | Message::Close(_) | Message::Frame(_) => return Turn::Skip,
    };
    let it = match Timestamp::parse(text.trim_ascii()) {
        Ok(it) => it,
        Err(e) => {
            tracing::debug!(target: "webntpd::server", "{peer}: WebSocket message is not a timestamp: {e}");
            return Turn::Close(CloseCode::Invalid, format!("invalid timestamp: {e}"));
        }
    };
    let fields = ReplyFields {
        id,
        it,
        it_text: Some(text.trim_ascii()),
        rt,
        leap: shared.leap.info(rt),
    };
    let template = ReplyTemplate::new(&fields, rt, None);
    let st = shared.clock.realtime();
    shared.stats.request(Kind::Ws);
    shared.stats.replied(rt, st);
    let (bytes, _) = template.stamp(st);
    match String::from_utf8(bytes) {
        Ok(s) => Turn::Reply(s),
        // The reply is built from UTF-8 pieces only; this cannot happen.
        Err(_) => Turn::End,
    }
}

/// Send a close frame, then wait briefly for the client's close so it reads ours before the
/// TCP connection goes away. Bounded: a client that reads nothing cannot hold us here.
///
/// Boxed: a session closes once, and its idle state should not be as large as this path.
fn close<'a>(
    ws: &'a mut Ws,
    code: CloseCode,
    reason: &str,
) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
    // Close reasons are limited to 123 bytes by RFC 6455.
    let reason: String = reason.chars().take(120).collect();
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    Box::pin(async move {
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            if ws.close(Some(frame)).await.is_ok() {
                while let Some(Ok(_)) = ws.next().await {}
            }
        })
        .await;
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_the_base64_of_16_bytes() {
        assert!(is_valid_key(b"dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(is_valid_key(b"AAAAAAAAAAAAAAAAAAAAAA=="));
        for bad in [
            &b"abc"[..],
            b"",
            // 16 bytes without padding, 18 bytes, 15 bytes.
            b"dGhlIHNhbXBsZSBub25jZQ",
            b"dGhlIHNhbXBsZSBub25jZQAA",
            b"dGhlIHNhbXBsZSBub25j",
            // Stray bits in the last character, URL-safe alphabet, a space.
            b"dGhlIHNhbXBsZSBub25jZR==",
            b"dGhlIHNhbXBsZSBub25jZQ-_",
            b"dGhlIHNhbXBsZSBub25j ZQ=",
        ] {
            assert!(!is_valid_key(bad), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    fn upgrade(version: http::Version, extra: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::get("/").version(version);
        for (n, v) in extra {
            b = b.header(*n, *v);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn handshakes_need_http11_connection_upgrade_and_one_key() {
        let key = ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
        let conn = ("connection", "keep-alive, Upgrade");
        let up = ("upgrade", "websocket");
        assert_eq!(
            handshake_problem(&upgrade(http::Version::HTTP_11, &[up, conn, key])),
            None
        );
        type Case<'a> = (http::Version, &'a [(&'a str, &'a str)], &'a str);
        let cases: &[Case<'_>] = &[
            (http::Version::HTTP_10, &[up, conn, key], "HTTP/1.1"),
            (http::Version::HTTP_11, &[up, key], "Connection: Upgrade"),
            (
                http::Version::HTTP_11,
                &[up, ("connection", "close"), key],
                "Connection",
            ),
            (
                http::Version::HTTP_11,
                &[up, conn],
                "without a Sec-WebSocket-Key",
            ),
            (
                http::Version::HTTP_11,
                &[up, conn, key, key],
                "more than one",
            ),
            (
                http::Version::HTTP_11,
                &[up, conn, ("sec-websocket-key", "abc")],
                "base64 of 16",
            ),
        ];
        for (v, headers, want) in cases {
            let got = handshake_problem(&upgrade(*v, headers));
            assert!(
                got.is_some_and(|g| g.contains(want)),
                "{v:?} {headers:?}: {got:?}"
            );
        }
    }
}

#[cfg(test)]
mod size_tests {
    use super::*;

    fn future_size<A, B, F>(_: impl Fn(A, B) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// An idle WebSocket is this future, the task around it and tungstenite's buffers
    /// (issue 18): a guard against a change that makes every one of them carry more (1,456
    /// bytes before the message handling moved out of it, 1,192 after, with Rust 1.9x).
    #[test]
    fn a_websocket_session_stays_small() {
        let size = future_size(session);
        eprintln!(
            "session future: {size} bytes, stream {}",
            std::mem::size_of::<Ws>()
        );
        assert!(size <= 1536, "the WebSocket session is {size} bytes");
    }
}
