//! Idle connections parked outside the runtime (src/server/park.rs): parked once idle, back
//! on the fast path with correct replies when their client sends again, closed at their
//! keep-alive deadline, when their client goes and when the server stops; and never parked
//! while a request head is half read.

use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

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
