//! The WebSocket side of the server, in-process, driven by a Rust client (tokio-tungstenite)
//! and by raw HTTP/1.1 handshakes where the exact handshake bytes matter: subprotocol
//! negotiation, replies in order, frame types, ping/pong, the close codes (1009 oversize,
//! 1007 not a timestamp, 1000 idle, 1001 shutdown), the origin policy and version checks.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{
    Control as OpCtl, Data as OpData, OpCode,
};
use tokio_tungstenite::tungstenite::protocol::frame::{Frame, FrameHeader};
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{client_async, WebSocketStream};
use webntpd::leap::store::LeapStore;
use webntpd::server::{Limits, OriginPolicy, ServerConfig};
use webntpd::sync::Timestamp;

type Ws = WebSocketStream<TcpStream>;

const SUBPROTOCOL: &str = "webntp.shogo82148.com";

/// RFC 6455's sample key and the accept value it must produce.
const SAMPLE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const SAMPLE_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// Where the frozen clock stands, and how the server writes it.
const FROZEN: &str = "1700000000.5";
const FROZEN_MICROS: &str = "1700000000.500000";

/// Every wait on the network is bounded by this.
const WAIT: Duration = Duration::from_secs(5);

async fn frozen(config: ServerConfig) -> TestServer {
    start_with(config, frozen_clock(FROZEN), Arc::new(LeapStore::empty())).await
}

/// Connect with tungstenite to `ws://addr{path}`, offering `protocols` (a header value)
/// when given; returns the stream and the handshake response.
async fn connect(
    addr: SocketAddr,
    path: &str,
    protocols: Option<&str>,
) -> (
    Ws,
    tokio_tungstenite::tungstenite::handshake::client::Response,
) {
    let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
    if let Some(p) = protocols {
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", HeaderValue::from_str(p).unwrap());
    }
    let tcp = TcpStream::connect(addr).await.unwrap();
    tokio::time::timeout(WAIT, client_async(req, tcp))
        .await
        .expect("handshake within 5 s")
        .expect("handshake succeeds")
}

async fn ws(addr: SocketAddr) -> Ws {
    connect(addr, "/", None).await.0
}

/// A hand-written upgrade request for `path` with `extra` header lines (each ending in
/// `\r\n`); returns the socket (ready for WebSocket frames if the answer was 101) and the
/// parsed response.
async fn raw_upgrade(addr: SocketAddr, path: &str, extra: &str) -> (TcpStream, RawResponse) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Key: {SAMPLE_KEY}\r\n{extra}\r\n"
    );
    let r = exchange(&mut s, &req, false).await;
    (s, r)
}

/// The version header every valid raw upgrade carries.
const V13: &str = "Sec-WebSocket-Version: 13\r\n";

/// Continue as a WebSocket client on a socket that got 101 from `raw_upgrade`.
async fn after_raw(s: TcpStream) -> Ws {
    WebSocketStream::from_raw_socket(s, Role::Client, None).await
}

/// The next message, within 5 s; fails if the connection ends instead.
async fn next(ws: &mut Ws) -> Message {
    match tokio::time::timeout(WAIT, ws.next())
        .await
        .expect("a message within 5 s")
    {
        Some(Ok(m)) => m,
        other => panic!("expected a message, the connection ended: {other:?}"),
    }
}

/// The next message, which must be a text reply.
async fn reply(ws: &mut Ws) -> String {
    match next(ws).await {
        Message::Text(t) => t.as_str().to_string(),
        other => panic!("expected a text reply, got {other:?}"),
    }
}

/// Send one text message and return its reply.
async fn ask(ws: &mut Ws, text: &str) -> String {
    ws.send(Message::text(text)).await.unwrap();
    reply(ws).await
}

/// Read until the server's close frame; fails on any data message first, or if the
/// connection ends without a close frame. Returns (code, reason).
async fn expect_close(ws: &mut Ws) -> (u16, String) {
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a close frame within 5 s")
        {
            Some(Ok(Message::Close(Some(f)))) => return (u16::from(f.code), f.reason.to_string()),
            Some(Ok(Message::Close(None))) => panic!("close frame without a status code"),
            Some(Ok(Message::Pong(_))) => continue,
            Some(Ok(other)) => panic!("expected a close frame, got {other:?}"),
            other => panic!("the connection ended without a close frame: {other:?}"),
        }
    }
}

/// After the close frame: the connection must end (the client's close reply is sent by
/// tungstenite while polling).
async fn expect_end(ws: &mut Ws) {
    match tokio::time::timeout(WAIT, ws.next())
        .await
        .expect("the connection ends within 5 s")
    {
        None | Some(Err(_)) => {}
        Some(Ok(m)) => panic!("a message after the close frame: {m:?}"),
    }
}

/// Close from the client side (1000) and check the server answers and hangs up.
async fn bye(mut ws: Ws) {
    ws.send(Message::Close(Some(CloseFrame {
        code: 1000.into(),
        reason: "bye".into(),
    })))
    .await
    .unwrap();
    let (code, _) = expect_close(&mut ws).await;
    assert_eq!(code, 1000);
    expect_end(&mut ws).await;
}

/// A reply checked for shape (valid JSON, the eight fields in go-webntp's order, six-decimal
/// timestamps, st == time, rt <= st); returns (id, it, st, rt) as text.
fn check_reply(reply: &str) -> (String, String, String, String) {
    let v: serde_json::Value = serde_json::from_str(reply).expect("the reply is JSON");
    assert!(v.is_object(), "{reply}");
    let f = fields(reply);
    let names: Vec<&str> = f.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        ["id", "it", "st", "time", "leap", "next", "step", "rt"],
        "{reply}"
    );
    let get = |name: &str| f.iter().find(|(k, _)| k == name).unwrap().1.clone();
    for name in ["it", "st", "time", "next", "rt"] {
        let val = get(name);
        let frac = val.split_once('.').map(|(_, f)| f).unwrap_or("");
        assert!(
            frac.len() == 6 && frac.bytes().all(|b| b.is_ascii_digit()),
            "{name} has exactly six decimals: {reply}"
        );
    }
    assert_eq!(get("st"), get("time"), "st == time: {reply}");
    let st = Timestamp::parse(&get("st")).unwrap();
    let rt = Timestamp::parse(&get("rt")).unwrap();
    assert!(rt <= st, "rt <= st: {reply}");
    let id = v["id"].as_str().expect("id is a string").to_string();
    (id, get("it"), get("st"), get("rt"))
}

/// The whole reply the frozen-clock server must send for `it` (already in six-decimal form).
fn frozen_reply(id: &str, it: &str) -> String {
    format!(
        "{{\"id\":\"{id}\",\"it\":{it},\"st\":{FROZEN_MICROS},\"time\":{FROZEN_MICROS},\
         \"leap\":0,\"next\":0.000000,\"step\":0,\"rt\":{FROZEN_MICROS}}}\n"
    )
}

/// One exchange on `ws` (the server's clock frozen at NOW) checked against the exact reply,
/// then a clean close.
async fn answers_then_bye(mut ws: Ws, addr: std::net::SocketAddr, sent: &str, it: &str) {
    assert_eq!(
        ask(&mut ws, sent).await,
        frozen_reply(&addr.to_string(), it)
    );
    bye(ws).await;
}

// ---------------------------------------------------------------------------------------
// Handshake: subprotocol, accept key, paths, origin policy, version.

#[tokio::test]
async fn subprotocol_is_echoed_when_offered() {
    let srv = frozen(config()).await;
    let (ws, resp) = connect(srv.addr, "/", Some(SUBPROTOCOL)).await;
    assert_eq!(resp.status(), 101);
    assert_eq!(
        resp.headers()
            .get("sec-websocket-protocol")
            .map(|v| v.to_str().unwrap()),
        Some(SUBPROTOCOL)
    );
    answers_then_bye(ws, srv.addr, "1558915619.944235", "1558915619.944235").await;
    srv.stop_within(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn subprotocol_is_echoed_when_offered_among_others() {
    let srv = frozen(config()).await;
    // In one header, after another protocol.
    let (_, r) = raw_upgrade(
        srv.addr,
        "/",
        &format!("{V13}Sec-WebSocket-Protocol: chat, {SUBPROTOCOL}\r\n"),
    )
    .await;
    assert_eq!(r.status, 101);
    assert_eq!(r.header("sec-websocket-protocol"), Some(SUBPROTOCOL));
    // In a second header of its own.
    let (s, r) = raw_upgrade(
        srv.addr,
        "/",
        &format!("{V13}Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: {SUBPROTOCOL}\r\n"),
    )
    .await;
    assert_eq!(r.status, 101);
    assert_eq!(r.header("sec-websocket-protocol"), Some(SUBPROTOCOL));
    let ws = after_raw(s).await;
    answers_then_bye(ws, srv.addr, "1.5", "1.500000").await;
    srv.stop_within(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn no_subprotocol_is_returned_when_ours_is_not_offered() {
    let srv = frozen(config()).await;
    // Offering none: accepted, no Sec-WebSocket-Protocol in the answer.
    let (ws, resp) = connect(srv.addr, "/", None).await;
    assert_eq!(resp.status(), 101);
    assert!(resp.headers().get("sec-websocket-protocol").is_none());
    answers_then_bye(ws, srv.addr, "1558915619.944235", "1558915619.944235").await;
    // Offering only others: accepted (the server does not insist), none echoed.
    let (s, r) = raw_upgrade(
        srv.addr,
        "/",
        &format!("{V13}Sec-WebSocket-Protocol: chat, superchat\r\n"),
    )
    .await;
    assert_eq!(r.status, 101);
    assert_eq!(r.header("sec-websocket-protocol"), None);
    let ws = after_raw(s).await;
    answers_then_bye(ws, srv.addr, "2", "2.000000").await;
    srv.stop_within(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn handshake_answer_is_rfc6455() {
    let srv = frozen(config()).await;
    let (_, r) = raw_upgrade(srv.addr, "/", V13).await;
    assert_eq!(r.status, 101);
    assert_eq!(r.header("sec-websocket-accept"), Some(SAMPLE_ACCEPT));
    assert!(r
        .header("upgrade")
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket")));
    assert!(r
        .header("connection")
        .is_some_and(|v| v.eq_ignore_ascii_case("upgrade")));
    srv.stop_within(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn browser_style_handshake_headers_are_accepted() {
    // Firefox sends `Connection: keep-alive, Upgrade`; tokens are case-insensitive.
    let srv = frozen(config()).await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let req = format!(
        "GET /ws HTTP/1.1\r\nHost: {}\r\nConnection: keep-alive, Upgrade\r\nUpgrade: WebSocket\r\n\
         Sec-WebSocket-Key: {SAMPLE_KEY}\r\n{V13}Origin: https://page.example\r\n\r\n",
        srv.addr
    );
    let r = exchange(&mut s, &req, false).await;
    assert_eq!(r.status, 101);
    assert_eq!(r.header("sec-websocket-accept"), Some(SAMPLE_ACCEPT));
    let ws = after_raw(s).await;
    answers_then_bye(ws, srv.addr, "1.5", "1.500000").await;
    srv.stop_within(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn upgrade_after_a_request_on_the_same_connection() {
    let srv = frozen(config()).await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let r = exchange(
        &mut s,
        &format!("GET /?1.5 HTTP/1.1\r\nHost: {}\r\n\r\n", srv.addr),
        false,
    )
    .await;
    assert_eq!(r.status, 200);
    let req = format!(
        "GET / HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Key: {SAMPLE_KEY}\r\n{V13}\r\n",
        srv.addr
    );
    let r = exchange(&mut s, &req, false).await;
    assert_eq!(r.status, 101);
    let ws = after_raw(s).await;
    answers_then_bye(ws, srv.addr, "2.5", "2.500000").await;
    srv.stop_within(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn reply_id_from_a_hostile_host_header_is_escaped_json() {
    let srv = frozen(config()).await;
    // `&` and `'` are allowed in a Host; `<`, `>` and `"` are not (400, below).
    let host = "evil&'x";
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let req = format!(
        "GET / HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Key: {SAMPLE_KEY}\r\n{V13}\r\n"
    );
    let r = exchange(&mut s, &req, false).await;
    assert_eq!(r.status, 101);
    let mut ws = after_raw(s).await;
    let text = ask(&mut ws, "1.5").await;
    assert_eq!(text, frozen_reply("evil\\u0026'x", "1.500000"));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["id"].as_str(), Some(host));
    bye(ws).await;
    srv.stop_within(Duration::from_secs(2)).await;
}

/// Send a hand-written handshake (`head` ends with the header lines, without the blank
/// line) and return the response, which must not be 101.
async fn refused(addr: SocketAddr, head: &str) -> RawResponse {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let r = exchange(&mut s, &format!("{head}\r\n"), false).await;
    assert_ne!(r.status, 101, "{head:?}");
    assert_eq!(r.header("sec-websocket-accept"), None, "{head:?}");
    r
}

#[tokio::test]
async fn invalid_handshakes_get_400_with_a_reason() {
    // RFC 6455 section 4.2.1: the key is the base64 of 16 bytes, the request HTTP/1.1 with
    // Host, `Connection: Upgrade` and `Upgrade: websocket`.
    let srv = frozen(config()).await;
    let addr = srv.addr;
    let base = "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n";
    let cases = [
        (
            format!("GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\n{base}Sec-WebSocket-Key: abc\r\n"),
            "Sec-WebSocket-Key",
        ),
        (
            // 16 bytes but no padding; 18 bytes; stray bits.
            format!("GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\n{base}Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ\r\n"),
            "Sec-WebSocket-Key",
        ),
        (
            format!("GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\n{base}Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQAA\r\n"),
            "Sec-WebSocket-Key",
        ),
        (
            format!("GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\n{base}Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR==\r\n"),
            "Sec-WebSocket-Key",
        ),
        (
            format!("GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\n{base}Sec-WebSocket-Key: {SAMPLE_KEY}\r\nSec-WebSocket-Key: {SAMPLE_KEY}\r\n"),
            "more than one",
        ),
        (
            format!("GET / HTTP/1.1\r\nHost: h\r\n{base}Sec-WebSocket-Key: {SAMPLE_KEY}\r\n"),
            "Connection: Upgrade",
        ),
        (
            format!("GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n{base}Sec-WebSocket-Key: {SAMPLE_KEY}\r\n"),
            "Connection: Upgrade",
        ),
        (
            format!("GET / HTTP/1.0\r\nHost: h\r\nConnection: Upgrade\r\n{base}Sec-WebSocket-Key: {SAMPLE_KEY}\r\n"),
            "HTTP/1.1",
        ),
        (
            format!("GET / HTTP/1.1\r\nConnection: Upgrade\r\n{base}Sec-WebSocket-Key: {SAMPLE_KEY}\r\n"),
            "Host",
        ),
    ];
    for (head, reason) in &cases {
        let r = refused(addr, head).await;
        assert_eq!(r.status, 400, "{head:?}");
        let error = r.json()["error"].as_str().unwrap_or_default().to_string();
        assert!(error.contains(reason), "{head:?}: {error}");
    }
    // The same handshake with a valid key is accepted.
    let (_, r) = raw_upgrade(addr, "/", V13).await;
    assert_eq!(r.status, 101);
    srv.stop_within(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn upgrade_without_a_key_is_refused() {
    let srv = frozen(config()).await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let req = format!(
        "GET / HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n{V13}\r\n",
        srv.addr
    );
    let r = exchange(&mut s, &req, false).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.header("sec-websocket-accept"), None);
    srv.stop_within(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn upgrade_works_on_any_path() {
    let srv = frozen(config()).await;
    for path in [
        "/",
        "/any/path",
        "/cgi-bin/jsont",
        "/.well-known/time",
        "/x?1.5",
    ] {
        let (mut ws, resp) = connect(srv.addr, path, Some(SUBPROTOCOL)).await;
        assert_eq!(resp.status(), 101, "{path}");
        assert_eq!(
            ask(&mut ws, "1558915619.944235").await,
            frozen_reply(&srv.addr.to_string(), "1558915619.944235"),
            "{path}"
        );
    }
    srv.stop_within(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn origin_allow_list_refuses_other_origins_with_403() {
    let srv = frozen(ServerConfig {
        origins: OriginPolicy::List(vec!["https://good.example".into()]),
        ..config()
    })
    .await;
    let (_, r) = raw_upgrade(
        srv.addr,
        "/",
        &format!("{V13}Origin: https://evil.example\r\n"),
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.header("upgrade"), None);
    assert_eq!(r.header("sec-websocket-accept"), None);
    let err = r.json();
    assert!(
        err["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{err}"
    );
    // Not a prefix match either.
    let (_, r) = raw_upgrade(
        srv.addr,
        "/",
        &format!("{V13}Origin: https://good.example.evil\r\n"),
    )
    .await;
    assert_eq!(r.status, 403);

    // The listed origin, and no Origin at all (not a browser), are accepted and served.
    for extra in [
        format!("{V13}Origin: https://good.example\r\n"),
        V13.to_string(),
    ] {
        let (s, r) = raw_upgrade(srv.addr, "/", &extra).await;
        assert_eq!(r.status, 101, "{extra}");
        assert_eq!(r.header("sec-websocket-accept"), Some(SAMPLE_ACCEPT));
        answers_then_bye(after_raw(s).await, srv.addr, "1.5", "1.500000").await;
    }
    srv.stop_within(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn default_origin_policy_accepts_any_origin() {
    let srv = frozen(config()).await;
    for origin in ["https://evil.example", "null", "http://localhost:3000"] {
        let (s, r) = raw_upgrade(srv.addr, "/", &format!("{V13}Origin: {origin}\r\n")).await;
        assert_eq!(r.status, 101, "{origin}");
        answers_then_bye(after_raw(s).await, srv.addr, "1.5", "1.500000").await;
    }
    srv.stop_within(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn other_websocket_versions_get_426() {
    let srv = frozen(config()).await;
    let (_, r) = raw_upgrade(srv.addr, "/", "Sec-WebSocket-Version: 8\r\n").await;
    assert_eq!(r.status, 426);
    assert_eq!(r.header("sec-websocket-version"), Some("13"));
    assert_eq!(r.header("sec-websocket-accept"), None);
    srv.stop_within(Duration::from_secs(2)).await;
}

// ---------------------------------------------------------------------------------------
// Messages and replies.

#[tokio::test]
async fn hundred_messages_frozen_clock_replies_are_exact_and_in_order() {
    let srv = frozen(ServerConfig {
        server_id: Some("ws.example".into()),
        ..config()
    })
    .await;
    let (mut ws, _) = connect(srv.addr, "/", Some(SUBPROTOCOL)).await;
    let sent: Vec<String> = (0..100u64)
        .map(|i| format!("{}.{:06}", 1_558_915_619 + i, (i * 7919) % 1_000_000))
        .collect();
    // All sent before any reply is read: the replies must still come one each, in order.
    for (i, ts) in sent.iter().enumerate() {
        let msg = if i % 3 == 0 {
            Message::binary(ts.clone().into_bytes())
        } else {
            Message::text(ts.clone())
        };
        ws.feed(msg).await.unwrap();
    }
    ws.flush().await.unwrap();
    for ts in &sent {
        assert_eq!(reply(&mut ws).await, frozen_reply("ws.example", ts));
    }
    // A hand-written one, so the expected text does not come only from a helper.
    assert_eq!(
        ask(&mut ws, "1558915619.944235").await,
        "{\"id\":\"ws.example\",\"it\":1558915619.944235,\"st\":1700000000.500000,\
         \"time\":1700000000.500000,\"leap\":0,\"next\":0.000000,\"step\":0,\
         \"rt\":1700000000.500000}\n"
    );
    bye(ws).await;
    srv.stop_within(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn hundred_messages_system_clock_echo_it_in_order_with_rt_not_after_st() {
    let srv = start(config()).await;
    let (mut ws, _) = connect(srv.addr, "/", Some(SUBPROTOCOL)).await;
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let mut last_st = Timestamp::ZERO;
    for i in 0..100u64 {
        let ts = format!("{}.{:06}", 1_489_217_288 + i, 999_999 - i);
        let r = ask(&mut ws, &ts).await;
        let (id, it, st, rt) = check_reply(&r);
        assert_eq!(id, srv.addr.to_string(), "id is the Host header");
        assert_eq!(it, ts, "it echoes message {i}");
        let st = Timestamp::parse(&st).unwrap();
        let rt = Timestamp::parse(&rt).unwrap();
        assert!(st >= last_st, "st does not go back: {r}");
        assert!(
            rt.as_secs_f64() >= before - 1.0,
            "rt is the server's clock: {r}"
        );
        last_st = st;
    }
    let after = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        last_st.as_secs_f64() <= after + 1.0,
        "st is the server's clock"
    );
    bye(ws).await;
    srv.stop_within(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn binary_messages_get_text_replies() {
    let srv = frozen(config()).await;
    let mut ws = ws(srv.addr).await;
    let id = srv.addr.to_string();
    ws.send(Message::binary(b"1558915619.944235".to_vec()))
        .await
        .unwrap();
    assert_eq!(reply(&mut ws).await, frozen_reply(&id, "1558915619.944235"));
    ws.send(Message::binary(b" 42 ".to_vec())).await.unwrap();
    assert_eq!(reply(&mut ws).await, frozen_reply(&id, "42.000000"));
    bye(ws).await;
    srv.stop_within(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn padding_is_ignored_and_it_rounds_with_carry() {
    let srv = frozen(config()).await;
    let mut ws = ws(srv.addr).await;
    let id = srv.addr.to_string();
    let table = [
        (" \t1558915619.944235\r\n ", "1558915619.944235"),
        ("\n1558915619.944235", "1558915619.944235"),
        ("1489217288.9999996", "1489217289.000000"),
        ("1489217288.9999994", "1489217288.999999"),
        ("1489217288.3287575", "1489217288.328758"),
        ("1489217288", "1489217288.000000"),
        ("0", "0.000000"),
    ];
    for (sent, it) in table {
        assert_eq!(ask(&mut ws, sent).await, frozen_reply(&id, it), "{sent:?}");
    }
    bye(ws).await;
    srv.stop_within(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn ping_gets_pong_with_the_same_payload() {
    let srv = frozen(config()).await;
    let mut ws = ws(srv.addr).await;
    for payload in [
        b"webntp-ping-1".to_vec(),
        Vec::new(),
        vec![0u8, 255, 1, 254],
    ] {
        ws.send(Message::Ping(payload.clone().into()))
            .await
            .unwrap();
        match next(&mut ws).await {
            Message::Pong(p) => assert_eq!(p.as_ref(), &payload[..]),
            other => panic!("expected a pong, got {other:?}"),
        }
    }
    // The connection still answers timestamps afterwards.
    answers_then_bye(ws, srv.addr, "1.5", "1.500000").await;
    srv.stop_within(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn client_close_is_answered_with_a_close() {
    let srv = frozen(config()).await;
    let mut ws = ws(srv.addr).await;
    ask(&mut ws, "1.5").await;
    ws.send(Message::Close(Some(CloseFrame {
        code: 1000.into(),
        reason: "bye".into(),
    })))
    .await
    .unwrap();
    let (code, _) = expect_close(&mut ws).await;
    assert_eq!(code, 1000);
    expect_end(&mut ws).await;
    srv.stop_within(Duration::from_secs(2)).await;
}

// ---------------------------------------------------------------------------------------
// Close codes.

#[tokio::test]
async fn message_of_exactly_1024_bytes_is_accepted() {
    let srv = frozen(config()).await;
    let mut ws = ws(srv.addr).await;
    let ts = "1558915619.944235";
    let padded = format!("{ts}{}", " ".repeat(1024 - ts.len()));
    assert_eq!(padded.len(), 1024);
    assert_eq!(
        ask(&mut ws, &padded).await,
        frozen_reply(&srv.addr.to_string(), ts)
    );
    bye(ws).await;
    srv.stop_within(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn message_over_1024_bytes_closes_with_1009() {
    let srv = frozen(config()).await;
    let cases: Vec<Message> = vec![
        Message::text(format!("1558915619.944235{}", " ".repeat(1025 - 17))),
        Message::text("9".repeat(2000)),
        Message::binary(vec![b' '; 4096]),
    ];
    for msg in cases {
        let what = format!("{} bytes", msg.len());
        let mut ws = ws(srv.addr).await;
        ask(&mut ws, "1.5").await;
        ws.send(msg).await.unwrap();
        let (code, reason) = expect_close(&mut ws).await;
        assert_eq!(code, 1009, "{what}: {reason}");
        assert!(!reason.is_empty(), "{what}");
    }
    srv.stop_within(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn fragmented_message_over_1024_bytes_closes_with_1009() {
    let srv = frozen(config()).await;
    let mut ws = ws(srv.addr).await;
    // Three frames of 400 bytes: each under the limit, the message over it.
    let part = vec![b' '; 400];
    ws.feed(Message::Frame(Frame::message(
        part.clone(),
        OpCode::Data(OpData::Text),
        false,
    )))
    .await
    .unwrap();
    ws.feed(Message::Frame(Frame::message(
        part.clone(),
        OpCode::Data(OpData::Continue),
        false,
    )))
    .await
    .unwrap();
    ws.feed(Message::Frame(Frame::message(
        part,
        OpCode::Data(OpData::Continue),
        true,
    )))
    .await
    .unwrap();
    ws.flush().await.unwrap();
    let (code, _) = expect_close(&mut ws).await;
    assert_eq!(code, 1009);
    srv.stop_within(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn fragmented_message_under_the_limit_is_answered() {
    let srv = frozen(config()).await;
    let mut ws = ws(srv.addr).await;
    for (data, op, fin) in [
        (&b"15589"[..], OpData::Text, false),
        (&b"15619.94"[..], OpData::Continue, false),
        (&b"4235"[..], OpData::Continue, true),
    ] {
        ws.feed(Message::Frame(Frame::message(
            data.to_vec(),
            OpCode::Data(op),
            fin,
        )))
        .await
        .unwrap();
    }
    ws.flush().await.unwrap();
    assert_eq!(
        reply(&mut ws).await,
        frozen_reply(&srv.addr.to_string(), "1558915619.944235")
    );
    bye(ws).await;
    srv.stop_within(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn message_that_is_not_a_timestamp_closes_with_1007() {
    let srv = frozen(config()).await;
    let inputs = [
        "hello",
        "NaN",
        "1.2.3",
        "",
        "   ",
        "inf",
        "0x10",
        "1558915619.944235 1558915619.944235",
        "{\"it\":1558915619.944235}",
        "1e999",
    ];
    for input in inputs {
        let mut ws = ws(srv.addr).await;
        // A good message first: the session is live, and the close is for the bad one.
        ask(&mut ws, "1.5").await;
        ws.send(Message::text(input)).await.unwrap();
        let (code, reason) = expect_close(&mut ws).await;
        assert_eq!(code, 1007, "{input:?}: {reason}");
        assert!(!reason.is_empty(), "{input:?}: a reason is given");
        assert!(reason.len() <= 123, "{input:?}: reason fits a close frame");
        expect_end(&mut ws).await;
    }
    srv.stop_within(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn binary_message_that_is_not_utf8_closes_with_1007() {
    let srv = frozen(config()).await;
    for bytes in [vec![0xffu8, 0xfe, 0x31], b"1558915619.9\xc3".to_vec()] {
        let mut ws = ws(srv.addr).await;
        ws.send(Message::binary(bytes.clone())).await.unwrap();
        let (code, reason) = expect_close(&mut ws).await;
        assert_eq!(code, 1007, "{bytes:?}: {reason}");
        assert!(!reason.is_empty());
    }
    srv.stop_within(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn text_message_that_is_not_utf8_closes_with_1007() {
    let srv = frozen(config()).await;
    let mut ws = ws(srv.addr).await;
    ask(&mut ws, "1.5").await;
    // A text frame with bytes that are not UTF-8 (tungstenite's Message::Text cannot hold
    // them, so the frame is built by hand).
    ws.send(Message::Frame(Frame::message(
        b"1558915619.9\xff".to_vec(),
        OpCode::Data(OpData::Text),
        true,
    )))
    .await
    .unwrap();
    let (code, reason) = expect_close(&mut ws).await;
    assert_eq!(code, 1007, "{reason}");
    assert!(!reason.is_empty());
    expect_end(&mut ws).await;
    srv.stop_within(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn protocol_violation_closes_with_1002() {
    let srv = frozen(config()).await;
    let frame = |opcode: OpCode, is_final: bool, rsv1: bool, payload: &[u8]| {
        Frame::from_payload(
            FrameHeader {
                is_final,
                rsv1,
                opcode,
                ..FrameHeader::default()
            },
            payload.to_vec().into(),
        )
    };
    let cases = [
        (
            "continuation without a start",
            frame(OpCode::Data(OpData::Continue), true, false, b"1.5"),
        ),
        (
            "reserved data opcode",
            frame(OpCode::Data(OpData::Reserved(3)), true, false, b"1.5"),
        ),
        (
            "fragmented ping",
            frame(OpCode::Control(OpCtl::Ping), false, false, b"x"),
        ),
        (
            "reserved bit without an extension",
            frame(OpCode::Data(OpData::Text), true, true, b"1.5"),
        ),
    ];
    for (what, frame) in cases {
        let mut ws = ws(srv.addr).await;
        ask(&mut ws, "1.5").await;
        ws.send(Message::Frame(frame)).await.unwrap();
        let (code, reason) = expect_close(&mut ws).await;
        assert_eq!(code, 1002, "{what}: {reason}");
        assert!(!reason.is_empty(), "{what}");
        expect_end(&mut ws).await;
    }
    srv.stop_within(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn idle_connection_closes_with_1000_after_the_idle_timeout() {
    let limits = quick_limits();
    let idle = limits.ws_idle_timeout;
    assert_eq!(idle, Duration::from_millis(600));
    let srv = frozen(ServerConfig { limits, ..config() }).await;
    let mut ws = ws(srv.addr).await;
    // Messages every 100 ms for 1.2 s, twice the idle time: each one restarts the clock. (At
    // 200 ms apart a loaded CI machine once stalled the test long enough to hit the timeout.)
    for _ in 0..12 {
        ask(&mut ws, "1.5").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Taken before the last message goes out: the server's idle clock starts after it has
    // answered, so the close cannot come sooner than 600 ms after this.
    let quiet_since = Instant::now();
    ask(&mut ws, "1.5").await;
    let (code, reason) = expect_close(&mut ws).await;
    let waited = quiet_since.elapsed();
    assert_eq!(code, 1000);
    assert_eq!(reason, "idle timeout");
    assert!(
        waited >= Duration::from_millis(600),
        "closed after {waited:?}, before the 600 ms idle timeout"
    );
    assert!(
        waited < Duration::from_secs(3),
        "closed after {waited:?}, long after the 600 ms idle timeout"
    );
    expect_end(&mut ws).await;
    srv.stop_within(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn idle_timeout_applies_to_a_connection_that_never_sends() {
    let srv = frozen(ServerConfig {
        limits: quick_limits(),
        ..config()
    })
    .await;
    let t0 = Instant::now();
    let mut ws = ws(srv.addr).await;
    let (code, reason) = expect_close(&mut ws).await;
    let waited = t0.elapsed();
    assert_eq!((code, reason.as_str()), (1000, "idle timeout"));
    expect_end(&mut ws).await;
    assert!(
        waited >= Duration::from_millis(600) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    srv.stop_within(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn shutdown_closes_every_websocket_with_1001_promptly() {
    let srv = frozen(config()).await;
    let addr = srv.addr;
    let mut clients = Vec::new();
    for _ in 0..10 {
        let mut ws = ws(addr).await;
        ask(&mut ws, "1.5").await;
        clients.push(ws);
    }
    // Each client reads (and so answers the close) in its own task.
    let readers: Vec<_> = clients
        .into_iter()
        .map(|mut ws| {
            tokio::spawn(async move {
                let close = expect_close(&mut ws).await;
                expect_end(&mut ws).await;
                close
            })
        })
        .collect();
    let t0 = Instant::now();
    srv.stop_within(Duration::from_secs(2)).await;
    let took = t0.elapsed();
    for r in readers {
        let (code, reason) = r.await.unwrap();
        assert_eq!(code, 1001, "{reason}");
        assert!(!reason.is_empty());
    }
    assert!(took < Duration::from_secs(2), "{took:?}");
    // The listener is gone.
    assert!(TcpStream::connect(addr).await.is_err(), "still accepting");
}

#[tokio::test]
async fn shutdown_does_not_wait_for_shutdown_timeout_on_a_silent_client() {
    // The client never reads, so it never answers the close frame: the server must give up
    // on it after its short close grace, not after the (here 10 s) shutdown timeout.
    let srv = frozen(ServerConfig {
        limits: Limits {
            shutdown_timeout: Duration::from_secs(10),
            ..Limits::default()
        },
        ..config()
    })
    .await;
    let mut ws = ws(srv.addr).await;
    ask(&mut ws, "1.5").await;
    let t0 = Instant::now();
    srv.stop_within(Duration::from_secs(5)).await;
    assert!(t0.elapsed() < Duration::from_secs(5));
    // What it sent is still there to read.
    let (code, _) = expect_close(&mut ws).await;
    assert_eq!(code, 1001);
}

#[tokio::test]
async fn a_client_that_never_reads_its_replies_is_dropped() {
    let srv = frozen(ServerConfig {
        limits: quick_limits(),
        ..config()
    })
    .await;
    let (ws, _) = connect(srv.addr, "/", None).await;
    let (mut sink, _stream) = ws.split();
    // Send timestamps without ever reading the replies: once the socket buffers are full the
    // server's sends block, then it stops reading ours. After its idle timeout (600 ms) it
    // must drop the connection, which our sends then see.
    let sender = tokio::spawn(async move {
        loop {
            sink.send(Message::text("1558915619.944235")).await?;
        }
        #[allow(unreachable_code)]
        Ok::<_, tokio_tungstenite::tungstenite::Error>(())
    });
    let result = tokio::time::timeout(Duration::from_secs(10), sender)
        .await
        .expect("the server dropped the non-reading client within 10 s")
        .unwrap();
    assert!(result.is_err());
    srv.stop_within(Duration::from_secs(2)).await;
}

/// As over HTTP: a message's `rt` is when it reached the host, not when the session read it
/// (here the server's only thread is kept busy after the message has gone out).
#[tokio::test]
async fn rt_is_when_the_message_arrived_not_when_the_session_read_it() {
    let srv = start_on_system_clock(config()).await;
    let mut ws = ws(srv.addr).await;
    ask(&mut ws, "1").await;
    // Packet stamping is switched on in a deferred work item: give it a moment.
    tokio::time::sleep(Duration::from_millis(50)).await;

    let sent = unix_now();
    ws.send(Message::text("1")).await.unwrap();
    std::thread::sleep(Duration::from_secs_f64(BUSY_SECS));
    let reply = serde_json::from_str(&reply(&mut ws).await).unwrap();
    assert_rt_is_the_arrival(&reply, sent);
    srv.stop_within(WAIT).await;
}

/// A masked client frame: `first` (FIN and opcode), then `payload`.
fn masked_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    const MASK: [u8; 4] = [7, 1, 9, 3];
    assert!(payload.len() < 126, "short frames only");
    let mut f = vec![first, 0x80 | payload.len() as u8];
    f.extend_from_slice(&MASK);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    f
}

#[tokio::test]
async fn messages_before_a_fragment_flood_are_answered_then_1008() {
    // Three timestamps and a message in 10,000 fragments, in one write: the server reads
    // them together, answers the three, then closes with 1008 (the flood is refused).
    let srv = frozen(config()).await;
    let (mut s, r) = raw_upgrade(srv.addr, "/", V13).await;
    assert_eq!(r.status, 101);
    let mut bytes: Vec<u8> = ["1.5", "2.5", "3.5"]
        .iter()
        .flat_map(|t| masked_frame(0x81, t.as_bytes()))
        .collect();
    bytes.extend(masked_frame(0x01, b""));
    for _ in 0..10_000 {
        bytes.extend(masked_frame(0x00, b""));
    }
    // The server may close before it has read everything.
    let _ = tokio::io::AsyncWriteExt::write_all(&mut s, &bytes).await;
    let mut ws = after_raw(s).await;
    for it in ["1.500000", "2.500000", "3.500000"] {
        let text = reply(&mut ws).await;
        assert!(text.contains(&format!("\"it\":{it},")), "{text}");
    }
    let (code, reason) = expect_close(&mut ws).await;
    assert_eq!(code, 1008, "{reason}");
    assert!(reason.contains("128 fragments"), "{reason}");
}
