//! WebSocket: the upgrade handshake, and what a session keeps while it lasts.
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
//! [`handshake`] answers both ways a handshake arrives: on a plain connection the fast path
//! writes the 101 itself and the session runs in the connection's own task, on the same
//! socket (and parks with it when idle, see `park`); through hyper (TLS, or a head the fast
//! path leaves to hyper) the session runs on hyper's upgraded stream in a task of its own.
//! Either way the session is [`session::run`], our own frame loop ([`frame`]): it holds no
//! buffer between messages, so an idle WebSocket costs what an idle HTTP connection does
//! (issue 18).
//!
//! Where go-webntp drops the TCP connection without a word, a session closes with a reason:
//! 1009 for a message over the size limit, 1007 for one that is not a timestamp (or not
//! UTF-8), 1002 for a protocol violation, 1008 for a message in more than 128 fragments, 1000
//! after the idle timeout, 1001 when the server shuts down.

pub(crate) mod frame;
pub(crate) mod session;

use std::net::SocketAddr;
use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use super::activity::Activity;
use super::body::ReplyBody;
use super::reply::{check_host, date_header, error, server_id, Cors, Head, Reply};
use super::service;
use super::stats::{Reject, WebSocketOpen};
use super::Shared;
use crate::wire::WS_SUBPROTOCOL;

static WEBSOCKET: HeaderValue = HeaderValue::from_static("websocket");
static UPGRADE: HeaderValue = HeaderValue::from_static("Upgrade");
static SUBPROTOCOL: HeaderValue = HeaderValue::from_static(WS_SUBPROTOCOL);
static VERSION_13: HeaderValue = HeaderValue::from_static("13");

/// A `GET` with `Upgrade: websocket`: a WebSocket handshake, valid or not ([`handshake`]
/// checks the rest).
pub(crate) fn is_upgrade_request<H: Head>(req: &H) -> bool {
    req.method() == http::Method::GET && req.lists(&header::UPGRADE, "websocket")
}

/// Why a handshake is not one RFC 6455 section 4.2.1 allows (the version aside, which gets
/// its own status), or `None`.
fn handshake_problem<H: Head>(req: &H) -> Option<&'static str> {
    if req.version() != http::Version::HTTP_11 {
        return Some("a WebSocket handshake must be an HTTP/1.1 request (RFC 6455 section 4.1)");
    }
    if !req.lists(&header::CONNECTION, "upgrade") {
        return Some(
            "WebSocket handshake without `Connection: Upgrade` (a proxy on the way may have \
             dropped it)",
        );
    }
    match (
        req.header_count(&header::SEC_WEBSOCKET_KEY),
        req.header(&header::SEC_WEBSOCKET_KEY),
    ) {
        (1, Some(key)) if is_valid_key(key) => None,
        (1, _) => Some(
            "invalid Sec-WebSocket-Key: it must be the base64 of 16 random bytes (24 \
             characters, RFC 6455 section 4.1)",
        ),
        (0, _) => Some("WebSocket handshake without a Sec-WebSocket-Key"),
        _ => Some("more than one Sec-WebSocket-Key"),
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

/// What a WebSocket session keeps for its whole life, parked or not: the `id` of its replies
/// and its place in the open-WebSockets gauge.
pub(crate) struct Session {
    /// The reply's `id`.
    pub(crate) id: Box<str>,
    _open: WebSocketOpen,
}

/// The answer to an upgrade request.
pub(crate) enum Handshake {
    /// 101: the session starts after this reply.
    Accepted(Reply, Session),
    /// Anything else (400, 403, 426): the connection stays an HTTP one.
    Refused(Reply),
}

/// Answer an upgrade request ([`is_upgrade_request`]): 101 and the session to run after it,
/// or the reason it is refused.
pub(crate) fn handshake<H: Head>(
    req: &H,
    peer: SocketAddr,
    shared: &Arc<Shared>,
    activity: &Arc<Activity>,
) -> Handshake {
    // A bad Host is refused before anything else, as for every request.
    if check_host(req).is_err() {
        return Handshake::Refused(service::handle(req, peer, shared, activity));
    }
    let rt = shared.clock.realtime();
    let busy = activity.begin_request();
    let cors = Cors::new(&shared.origins, req);
    let refused = |mut reply: Reply| {
        reply.insert(header::DATE, date_header(rt));
        Handshake::Refused(reply)
    };
    if let Some(reason) = handshake_problem(req) {
        tracing::debug!(target: "webntpd::server", "{peer}: WebSocket handshake refused: {reason}");
        shared.stats.rejected(Reject::Handshake);
        return refused(error(StatusCode::BAD_REQUEST, reason, busy, &cors));
    }
    if let Some(origin) = req.header(&header::ORIGIN) {
        let allowed = std::str::from_utf8(origin).is_ok_and(|o| shared.origins.allows(o));
        if !allowed {
            tracing::debug!(target: "webntpd::server", "{peer}: WebSocket from origin {:?} refused by the origin policy", String::from_utf8_lossy(origin));
            shared.stats.rejected(Reject::Origin);
            return refused(error(
                StatusCode::FORBIDDEN,
                "origin not allowed by this server's origin policy",
                busy,
                &cors,
            ));
        }
    }
    if req.header(&header::SEC_WEBSOCKET_VERSION) != Some(VERSION_13.as_bytes()) {
        shared.stats.rejected(Reject::Handshake);
        let mut reply = error(
            StatusCode::UPGRADE_REQUIRED,
            "unsupported WebSocket version; this server speaks version 13 (RFC 6455)",
            busy,
            &cors,
        );
        reply.insert(header::SEC_WEBSOCKET_VERSION, VERSION_13.clone());
        return refused(reply);
    }
    // Checked by `handshake_problem`: exactly one, valid.
    let key = req.header(&header::SEC_WEBSOCKET_KEY).unwrap_or_default();
    let mut reply = Reply::new(StatusCode::SWITCHING_PROTOCOLS, ReplyBody::empty(busy));
    reply.insert(header::UPGRADE, WEBSOCKET.clone());
    reply.insert(header::CONNECTION, UPGRADE.clone());
    if let Ok(v) = HeaderValue::from_str(&derive_accept_key(key)) {
        reply.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    if req.lists(&header::SEC_WEBSOCKET_PROTOCOL, WS_SUBPROTOCOL) {
        reply.insert(header::SEC_WEBSOCKET_PROTOCOL, SUBPROTOCOL.clone());
    }
    reply.insert(header::DATE, date_header(rt));
    let session = Session {
        id: server_id(shared, req).into(),
        _open: shared.stats.websocket(),
    };
    Handshake::Accepted(reply, session)
}

/// Answer an upgrade request that came through hyper: on 101, the session runs on hyper's
/// upgraded stream in a task of its own (never parked: the stream may be TLS, and hyper may
/// hold bytes of it).
pub(crate) fn accept_upgrade<B>(
    mut req: Request<B>,
    peer: SocketAddr,
    shared: &Arc<Shared>,
    activity: &Arc<Activity>,
) -> Reply {
    let (reply, session) = match handshake(&req, peer, shared, activity) {
        Handshake::Refused(reply) => return reply,
        Handshake::Accepted(reply, session) => (reply, session),
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    let client = session::Client {
        peer,
        activity: activity.clone(),
        shared: shared.clone(),
        session,
    };
    shared.tasks.spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(e) => {
                tracing::debug!(target: "webntpd::server", "{peer}: WebSocket upgrade failed: {e}");
                return;
            }
        };
        let mut io = TokioIo::new(upgraded);
        session::run(&mut io, Vec::new(), &client, false).await;
    });
    reply
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
