//! WebSocket: the upgrade handshake and the per-connection session.
//!
//! Any path upgrades. The subprotocol `webntp.shogo82148.com` is echoed when the client offers
//! it; a client offering none is accepted too. Each text or binary message holding one
//! timestamp gets one text reply, the same JSON object as over HTTP (with `rt`), in order, as
//! many per connection as the client likes.
//!
//! Where go-webntp drops the TCP connection without a word, this session closes with a reason:
//! 1009 for a message over the size limit, 1007 for one that is not a timestamp (or not
//! UTF-8), 1002 for a protocol violation, 1000 after the idle timeout, 1001 when the server
//! shuts down.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::error::Error as WsError;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::body::ReplyBody;
use super::conn::InFlight;
use super::service::{error, server_id, Cors};
use super::Shared;
use crate::rxstamp::RxStamp;
use crate::wire::reply::{ReplyFields, ReplyTemplate};
use crate::wire::{Timestamp, WS_SUBPROTOCOL};

/// After sending a close frame, how long to wait for the client's close before hanging up.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

static WEBSOCKET: HeaderValue = HeaderValue::from_static("websocket");
static UPGRADE: HeaderValue = HeaderValue::from_static("Upgrade");
static SUBPROTOCOL: HeaderValue = HeaderValue::from_static(WS_SUBPROTOCOL);
static VERSION_13: HeaderValue = HeaderValue::from_static("13");

/// Whether `value` (a comma-separated header) contains `token`, ignoring case.
fn has_token(value: Option<&HeaderValue>, token: &str) -> bool {
    value
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

/// A `GET` with `Connection: upgrade` and `Upgrade: websocket`.
pub(crate) fn is_upgrade_request<B>(req: &Request<B>) -> bool {
    req.method() == http::Method::GET
        && has_token(req.headers().get(header::CONNECTION), "upgrade")
        && has_token(req.headers().get(header::UPGRADE), "websocket")
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
    let headers = req.headers();
    if let Some(origin) = headers.get(header::ORIGIN) {
        let allowed = origin.to_str().is_ok_and(|o| shared.origins.allows(o));
        if !allowed {
            tracing::debug!(target: "webntpd::server", "{peer}: WebSocket from origin {origin:?} refused by the origin policy");
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
        let mut reply = error(
            StatusCode::UPGRADE_REQUIRED,
            "unsupported WebSocket version; this server speaks version 13 (RFC 6455)",
            busy,
            &cors,
        );
        reply.insert(header::SEC_WEBSOCKET_VERSION, VERSION_13.clone());
        return reply.into_response();
    }
    let key = match headers.get(header::SEC_WEBSOCKET_KEY) {
        Some(k) if !k.is_empty() && k.len() <= 64 => k,
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "WebSocket upgrade without a valid Sec-WebSocket-Key",
                busy,
                &cors,
            )
            .into_response()
        }
    };
    let accept_key = derive_accept_key(key.as_bytes());
    let subprotocol = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .any(|v| has_token(Some(v), WS_SUBPROTOCOL));
    let id = server_id(shared, &req).into_owned();

    let on_upgrade = hyper::upgrade::on(&mut req);
    let session_shared = shared.clone();
    shared.tasks.spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => session(upgraded, peer, id, rx, session_shared).await,
            Err(e) => {
                tracing::debug!(target: "webntpd::server", "{peer}: WebSocket upgrade failed: {e}")
            }
        }
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

type Ws = WebSocketStream<TokioIo<Upgraded>>;

/// Serve one WebSocket until the client leaves, misbehaves, idles or the server stops.
async fn session(
    upgraded: Upgraded,
    peer: SocketAddr,
    id: String,
    rx: Arc<RxStamp>,
    shared: Arc<Shared>,
) {
    let limit = shared.limits.ws_max_message;
    let config = crate::wire::ws_config(limit);
    let mut ws =
        WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;
    let idle = shared.limits.ws_idle_timeout;
    loop {
        let next = tokio::select! {
            _ = shared.shutdown.cancelled() => {
                close(&mut ws, CloseCode::Away, "server shutting down").await;
                return;
            }
            next = tokio::time::timeout(idle, ws.next()) => next,
        };
        let msg = match next {
            Err(_) => {
                close(&mut ws, CloseCode::Normal, "idle timeout").await;
                return;
            }
            Ok(None) => return,
            Ok(Some(Err(WsError::Capacity(e)))) => {
                tracing::debug!(target: "webntpd::server", "{peer}: WebSocket message refused: {e}");
                let reason = format!("message larger than {limit} bytes");
                close(&mut ws, CloseCode::Size, &reason).await;
                return;
            }
            Ok(Some(Err(WsError::Utf8(_)))) => {
                tracing::debug!(target: "webntpd::server", "{peer}: WebSocket text message is not UTF-8");
                close(&mut ws, CloseCode::Invalid, "text message is not UTF-8").await;
                return;
            }
            Ok(Some(Err(WsError::Protocol(e)))) => {
                tracing::debug!(target: "webntpd::server", "{peer}: WebSocket protocol error: {e}");
                let reason = format!("protocol error: {e}");
                close(&mut ws, CloseCode::Protocol, &reason).await;
                return;
            }
            Ok(Some(Err(e))) => {
                tracing::debug!(target: "webntpd::server", "{peer}: WebSocket ended: {e}");
                return;
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
                    close(
                        &mut ws,
                        CloseCode::Invalid,
                        "binary message is not UTF-8 text",
                    )
                    .await;
                    return;
                }
            },
            Message::Ping(_) => {
                // The pong is queued by tungstenite; send it now.
                if ws.flush().await.is_err() {
                    return;
                }
                continue;
            }
            // A close is answered by tungstenite; the stream then ends.
            Message::Pong(_) | Message::Close(_) | Message::Frame(_) => continue,
        };
        let it = match Timestamp::parse(text.trim_ascii()) {
            Ok(it) => it,
            Err(e) => {
                tracing::debug!(target: "webntpd::server", "{peer}: WebSocket message is not a timestamp: {e}");
                let reason = format!("invalid timestamp: {e}");
                close(&mut ws, CloseCode::Invalid, &reason).await;
                return;
            }
        };
        let fields = ReplyFields {
            id: &id,
            it,
            it_text: Some(text.trim_ascii()),
            rt,
            leap: shared.leap.info(rt),
        };
        let template = ReplyTemplate::new(&fields, rt, None);
        let (bytes, _) = template.stamp(shared.clock.realtime());
        let reply = match String::from_utf8(bytes) {
            Ok(s) => s,
            // The reply is built from UTF-8 pieces only; this cannot happen.
            Err(_) => return,
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

/// Send a close frame, then wait briefly for the client's close so it reads ours before the
/// TCP connection goes away. Bounded: a client that reads nothing cannot hold us here.
async fn close(ws: &mut Ws, code: CloseCode, reason: &str) {
    // Close reasons are limited to 123 bytes by RFC 6455.
    let reason: String = reason.chars().take(120).collect();
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        if ws.close(Some(frame)).await.is_ok() {
            while let Some(Ok(_)) = ws.next().await {}
        }
    })
    .await;
}
