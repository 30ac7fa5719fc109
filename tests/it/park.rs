//! Idle connections parked outside the runtime (src/server/park.rs): parked once idle, back
//! on the fast path with correct replies when their client sends again, closed at their
//! keep-alive deadline, when their client goes and when the server stops; and never parked
//! while a request head is half read. WebSockets likewise: back in their session with
//! correct replies (and pongs), closed with 1000 at their idle timeout and 1001 when the
//! server stops, never parked inside a fragmented message or a half-read frame.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::common::*;
use webntpd::server::{Limits, ServerConfig};

/// Parked after 100 ms of idleness, closed after `keepalive`.
fn parking(keepalive: Duration) -> ServerConfig {
    ServerConfig {
        limits: Limits {
            park_after: Duration::from_millis(100),
            keepalive_timeout: keepalive,
            header_read_timeout: Duration::from_millis(400),
            ..Limits::default()
        },
        ..config()
    }
}

/// Wait (at most 5 s) until `what` of the server's counters holds.
async fn until(srv: &TestServer, what: &str, f: impl Fn(&webntpd::server::ServerCounters) -> bool) {
    let t0 = Instant::now();
    loop {
        let c = srv.metrics.counters();
        if f(&c) {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "{what}: not within 5 s; counters now {c:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

const GET: &str = "GET /?1 HTTP/1.1\r\nHost: h\r\n\r\n";

/// One request on `s`, its reply checked: `rt` is when it was sent (the kernel's receive
/// stamp survives parking), `st` after `rt`.
async fn timed_get(s: &mut TcpStream) {
    let sent = unix_now();
    let r = exchange(s, GET, false).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let reply = r.json();
    let (rt, st) = (reply["rt"].as_f64().unwrap(), reply["st"].as_f64().unwrap());
    assert!(st >= rt, "st {st} before rt {rt}");
    assert!(
        (rt - sent).abs() < 0.005,
        "rt {rt} is not the arrival at {sent} ({:.6} s off)",
        rt - sent
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_parked_and_answered_when_it_sends_again() {
    let srv = start_on_system_clock(parking(Duration::from_secs(30))).await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    for round in 0..3 {
        timed_get(&mut s).await;
        until(&srv, &format!("round {round}: parked"), |c| c.parked == 1).await;
        assert_eq!(
            srv.metrics.counters().connections,
            1,
            "still one connection"
        );
    }
    // Pipelined requests sent to a parked connection are all answered, in order.
    s.write_all(
        format!("{GET}{GET}GET /?2 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let all = read_until_closed(&mut s, Duration::from_secs(5)).await;
    let text = String::from_utf8_lossy(&all);
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 3, "{text}");
    until(&srv, "closed", |c| c.parked == 0 && c.connections == 0).await;
    assert_eq!(srv.metrics.counters().requests.values().sum::<u64>(), 6);
    srv.stop_within(Duration::from_secs(3)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_connection_is_closed_at_its_keep_alive_deadline() {
    let srv = start(parking(Duration::from_millis(800))).await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let r = exchange(&mut s, GET, false).await;
    assert_eq!(r.status, 200);
    let answered = Instant::now();
    until(&srv, "parked", |c| c.parked == 1).await;
    let rest = read_until_closed(&mut s, Duration::from_secs(5)).await;
    assert!(rest.is_empty(), "{rest:?}");
    let idle = answered.elapsed();
    // The deadline is 800 ms after the reply; sweeps run every 250 ms.
    assert!(
        idle >= Duration::from_millis(700) && idle < Duration::from_millis(2000),
        "closed after {idle:?}"
    );
    until(&srv, "freed", |c| c.parked == 0 && c.connections == 0).await;
    srv.stop_within(Duration::from_secs(3)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaving_frees_its_parked_connection_and_shutdown_closes_the_rest() {
    let srv = start(parking(Duration::from_secs(30))).await;
    let mut leaving = TcpStream::connect(srv.addr).await.unwrap();
    let mut staying = TcpStream::connect(srv.addr).await.unwrap();
    for s in [&mut leaving, &mut staying] {
        assert_eq!(exchange(s, GET, false).await.status, 200);
    }
    until(&srv, "both parked", |c| c.parked == 2).await;
    drop(leaving);
    until(&srv, "one left", |c| c.parked == 1 && c.connections == 1).await;
    let requests = srv.metrics.counters().requests.values().sum::<u64>();
    assert_eq!(requests, 2, "the client's close is not a request");
    let metrics = srv.metrics.clone();
    srv.stop_within(Duration::from_secs(3)).await;
    let rest = read_until_closed(&mut staying, Duration::from_secs(3)).await;
    assert!(rest.is_empty(), "{rest:?}");
    assert_eq!(metrics.counters().parked, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_read_request_head_is_never_parked_and_times_out() {
    let srv = start(parking(Duration::from_secs(30))).await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    // A complete request and the start of the next in one write.
    s.write_all(format!("{GET}GET /?1 HTTP/1.1\r\nHo").as_bytes())
        .await
        .unwrap();
    let t0 = Instant::now();
    let got = read_until_closed(&mut s, Duration::from_secs(5)).await;
    let text = String::from_utf8_lossy(&got);
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 1, "{text}");
    // Closed by the 400 ms header timeout, never parked (which would wait 30 s).
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert_eq!(srv.metrics.counters().parked, 0);
    assert_eq!(srv.metrics.counters().rejected["header_timeout"], 1);
    srv.stop_within(Duration::from_secs(3)).await;
}

/// A thousand parked connections, each then sending again: every reply correct, nothing left
/// parked or open once they close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_parked_connections_all_come_back() {
    const N: usize = 1000;
    let srv = start_on_system_clock(parking(Duration::from_secs(30))).await;
    let mut conns = Vec::with_capacity(N);
    for _ in 0..N {
        let mut s = TcpStream::connect(srv.addr).await.unwrap();
        assert_eq!(exchange(&mut s, GET, false).await.status, 200);
        conns.push(s);
    }
    until(&srv, "all parked", |c| c.parked == N as u64).await;
    for s in conns.iter_mut() {
        let r = exchange(s, GET, false).await;
        assert_eq!(r.status, 200);
        let reply = r.json();
        assert!(reply["st"].as_f64().unwrap() >= reply["rt"].as_f64().unwrap());
    }
    assert_eq!(
        srv.metrics.counters().requests.values().sum::<u64>(),
        2 * N as u64
    );
    drop(conns);
    until(&srv, "all gone", |c| c.parked == 0 && c.connections == 0).await;
    srv.stop_within(Duration::from_secs(3)).await;
}

/// Parked after 100 ms of idleness, closed after `idle` without a message.
fn ws_parking(idle: Duration) -> ServerConfig {
    ServerConfig {
        limits: Limits {
            park_after: Duration::from_millis(100),
            ws_idle_timeout: idle,
            header_read_timeout: Duration::from_millis(400),
            ..Limits::default()
        },
        ..config()
    }
}

type Ws = WebSocketStream<TcpStream>;

/// A socket to `srv` upgraded to WebSocket through the fast path's handshake.
async fn upgraded(srv: &TestServer) -> TcpStream {
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let head = format!(
        "GET / HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        srv.addr
    );
    let r = exchange(&mut s, &head, false).await;
    assert_eq!(r.status, 101, "{}", r.text());
    s
}

/// A WebSocket to `srv`.
async fn ws(srv: &TestServer) -> Ws {
    WebSocketStream::from_raw_socket(upgraded(srv).await, Role::Client, None).await
}

/// The next message within 5 s.
async fn next(ws: &mut Ws) -> Option<Message> {
    match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
        Ok(Some(Ok(m))) => Some(m),
        Ok(_) => None,
        Err(_) => panic!("nothing from the server within 5 s"),
    }
}

/// One timestamp sent and its reply checked: `it` echoed, `rt` the arrival (the kernel's
/// receive stamp survives parking), `st` after `rt`.
async fn timed_message(ws: &mut Ws, it: &str) {
    let sent = unix_now();
    ws.send(Message::text(it)).await.unwrap();
    let Some(Message::Text(reply)) = next(ws).await else {
        panic!("no text reply to {it}");
    };
    let reply: serde_json::Value = serde_json::from_str(reply.as_str()).unwrap();
    assert_eq!(reply["it"].to_string(), it, "{reply}");
    let (rt, st) = (reply["rt"].as_f64().unwrap(), reply["st"].as_f64().unwrap());
    assert!(st >= rt, "st {st} before rt {rt}");
    assert!(
        (rt - sent).abs() < 0.005,
        "rt {rt} is not the arrival at {sent} ({:.6} s off)",
        rt - sent
    );
}

/// The server's close frame: (code, reason); then the connection must end.
async fn closed(ws: &mut Ws) -> (u16, String) {
    let got = match next(ws).await {
        Some(Message::Close(Some(f))) => (u16::from(f.code), f.reason.as_str().to_string()),
        other => panic!("expected a close frame, got {other:?}"),
    };
    while let Some(m) = next(ws).await {
        assert!(matches!(m, Message::Close(_)), "after the close: {m:?}");
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_websocket_is_parked_and_answered_when_it_sends_again() {
    let srv = start_on_system_clock(ws_parking(Duration::from_secs(30))).await;
    let mut ws = ws(&srv).await;
    for round in 0..3 {
        timed_message(&mut ws, &format!("170000000{round}.25")).await;
        until(&srv, &format!("round {round}: parked"), |c| c.parked == 1).await;
        let c = srv.metrics.counters();
        assert_eq!((c.connections, c.websockets), (1, 1), "still one WebSocket");
    }
    // A ping to a parked session gets its pong; messages sent together are all answered.
    ws.send(Message::Ping(b"p1".to_vec().into())).await.unwrap();
    assert_eq!(
        next(&mut ws).await,
        Some(Message::Pong(b"p1".to_vec().into()))
    );
    until(&srv, "parked after the ping", |c| c.parked == 1).await;
    for it in ["1.5", "2.5", "3.5"] {
        ws.feed(Message::text(it)).await.unwrap();
    }
    ws.flush().await.unwrap();
    for it in ["1.500000", "2.500000", "3.500000"] {
        let Some(Message::Text(t)) = next(&mut ws).await else {
            panic!("no reply");
        };
        assert!(t.as_str().contains(&format!("\"it\":{it},")), "{t}");
    }
    ws.close(None).await.unwrap();
    while next(&mut ws).await.is_some() {}
    until(&srv, "closed", |c| {
        c.parked == 0 && c.connections == 0 && c.websockets == 0
    })
    .await;
    assert_eq!(srv.metrics.counters().requests["ws"], 6);
    assert!(srv.metrics.counters().parks >= 4);
    srv.stop_within(Duration::from_secs(3)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_websocket_closes_with_1000_at_its_idle_timeout() {
    let srv = start(ws_parking(Duration::from_millis(800))).await;
    let mut ws = ws(&srv).await;
    ws.send(Message::text("1.5")).await.unwrap();
    assert!(matches!(next(&mut ws).await, Some(Message::Text(_))));
    let answered = Instant::now();
    until(&srv, "parked", |c| c.parked == 1).await;
    assert_eq!(closed(&mut ws).await, (1000, "idle timeout".to_string()));
    let idle = answered.elapsed();
    // The deadline is 800 ms after the message; sweeps run every 250 ms.
    assert!(
        idle >= Duration::from_millis(700) && idle < Duration::from_millis(2500),
        "closed after {idle:?}"
    );
    until(&srv, "freed", |c| {
        c.parked == 0 && c.connections == 0 && c.websockets == 0
    })
    .await;
    srv.stop_within(Duration::from_secs(3)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_websockets_get_1001_when_the_server_stops_and_leaving_frees_them() {
    let srv = start(ws_parking(Duration::from_secs(30))).await;
    let mut leaving = ws(&srv).await;
    let mut staying = ws(&srv).await;
    until(&srv, "both parked", |c| c.parked == 2).await;
    leaving.close(None).await.unwrap();
    assert!(matches!(next(&mut leaving).await, Some(Message::Close(_))));
    until(&srv, "one left", |c| c.parked == 1 && c.websockets == 1).await;
    // And one that just goes: its parked socket is closed without a task.
    drop(leaving);
    let gone = ws(&srv).await;
    until(&srv, "parked again", |c| c.parked == 2).await;
    drop(gone);
    until(&srv, "dropped one freed", |c| {
        c.parked == 1 && c.websockets == 1
    })
    .await;
    let metrics = srv.metrics.clone();
    srv.stop_within(Duration::from_secs(3)).await;
    assert_eq!(
        closed(&mut staying).await,
        (1001, "server shutting down".to_string())
    );
    assert_eq!(metrics.counters().parked, 0);
    assert_eq!(metrics.counters().websockets, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_inside_a_fragmented_message_or_frame_is_never_parked() {
    // A masked client frame (short payloads only).
    fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
        const MASK: [u8; 4] = [7, 1, 9, 3];
        let mut f = vec![first, 0x80 | payload.len() as u8];
        f.extend_from_slice(&MASK);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
        f
    }
    let srv = start(ws_parking(Duration::from_secs(30))).await;
    let cases: [(&str, Vec<u8>, Vec<u8>); 2] = [
        ("first fragment", frame(0x01, b"1."), frame(0x80, b"5")),
        (
            "half a frame",
            frame(0x81, b"1.5")[..4].to_vec(),
            frame(0x81, b"1.5")[4..].to_vec(),
        ),
    ];
    for (what, first, rest) in cases {
        let mut s = upgraded(&srv).await;
        s.write_all(&first).await.unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(srv.metrics.counters().parked, 0, "{what}: parked");
        s.write_all(&rest).await.unwrap();
        let mut ws = WebSocketStream::from_raw_socket(s, Role::Client, None).await;
        let Some(Message::Text(t)) = next(&mut ws).await else {
            panic!("{what}: no reply");
        };
        assert!(t.as_str().contains("\"it\":1.500000,"), "{what}: {t}");
        // Then idle: parked.
        until(&srv, what, |c| c.parked == 1).await;
        drop(ws);
        until(&srv, what, |c| c.parked == 0 && c.websockets == 0).await;
    }
    srv.stop_within(Duration::from_secs(3)).await;
}

/// A thousand parked WebSockets, each then sending again: every reply correct, nothing left
/// parked or open once they close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_parked_websockets_all_come_back() {
    const N: usize = 1000;
    let srv = start_on_system_clock(ws_parking(Duration::from_secs(30))).await;
    let mut conns = Vec::with_capacity(N);
    for _ in 0..N {
        conns.push(ws(&srv).await);
    }
    until(&srv, "all parked", |c| c.parked == N as u64).await;
    for ws in conns.iter_mut() {
        ws.send(Message::text("1700000000.5")).await.unwrap();
        let Some(Message::Text(t)) = next(ws).await else {
            panic!("no reply");
        };
        let reply: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
        assert!(reply["st"].as_f64().unwrap() >= reply["rt"].as_f64().unwrap());
    }
    assert_eq!(srv.metrics.counters().requests["ws"], N as u64);
    drop(conns);
    until(&srv, "all gone", |c| {
        c.parked == 0 && c.connections == 0 && c.websockets == 0
    })
    .await;
    srv.stop_within(Duration::from_secs(3)).await;
}
