//! The client against real servers on loopback: webntpd's own (true offset 0, or shifted by
//! a known amount through the Clock trait), and hostile ones that must produce errors, never
//! panics or bogus samples.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use webntpd::client::{measure, ClientError, ClientOptions, Mode};
use webntpd::clock::{SharedClock, ShiftedClock, SystemClock};
use webntpd::leap::{LeapList, LeapStore};

fn opts(samples: usize) -> ClientOptions {
    let mut o = ClientOptions {
        samples,
        sample_timeout: Duration::from_secs(2),
        spacing: (Duration::from_millis(1), Duration::from_millis(3)),
        ..ClientOptions::default()
    };
    o.connect.proxy = webntpd::net::connect::ProxySetting::Off;
    o.connect.connect_timeout = Duration::from_secs(2);
    o
}

fn leap_store() -> Arc<LeapStore> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/leap-seconds.list"
    ))
    .unwrap();
    Arc::new(LeapStore::from_list(LeapList::parse(&text).unwrap()))
}

/// A webntpd server whose clock is `shift_ns` ahead of the system's.
async fn shifted_server(shift_ns: i64) -> TestServer {
    let clock: SharedClock = Arc::new(ShiftedClock::new(SystemClock::shared(), shift_ns));
    start_with(config(), clock, leap_store()).await
}

/// Measure `url` and check the true offset lies within the estimate's error bound, the
/// guarantee NTP's maths gives on any path (|true - estimate| <= delay/2, plus the server's
/// microsecond rounding).
async fn assert_measures(url: &str, mode: Mode, true_offset_ns: i64) {
    let o = ClientOptions { mode, ..opts(8) };
    let m = measure(url, &o, SystemClock::shared())
        .await
        .unwrap_or_else(|e| panic!("{url} ({mode:?}): {e}"));
    let e = m.estimate;
    let err = (e.offset_ns - true_offset_ns).abs();
    assert!(
        err <= e.error_bound_ns(),
        "{url} ({mode:?}): measured {} ns, true {true_offset_ns} ns, error {err} ns > bound {} ns",
        e.offset_ns,
        e.error_bound_ns()
    );
    assert!(e.delay_ns > 0 && e.delay_ns < 1_000_000_000, "{e:?}");
    assert_eq!(e.samples, 8, "{:?}", m.failures);
    assert!(e.kept >= 1 && e.kept <= 8);
    assert!(m.failures.is_empty(), "{:?}", m.failures);
    if mode != Mode::Toh {
        let leap = m.leap.expect("leap fields from a webntpd server");
        assert_eq!(
            (leap.leap, leap.next_unix, leap.step),
            (36, 1_483_228_800, 1)
        );
    }
}

#[tokio::test]
async fn http_ws_and_toh_against_our_server_find_the_true_offset() {
    for shift in [0, 250_000_000, -1_500_000_000] {
        let srv = shifted_server(shift).await;
        let a = srv.addr;
        assert_measures(&format!("http://{a}/"), Mode::Auto, shift).await;
        assert_measures(&format!("ws://{a}/"), Mode::Auto, shift).await;
        assert_measures(&format!("http://{a}/"), Mode::Toh, shift).await;
        // A path and a query of its own are kept, the timestamp appended.
        assert_measures(&format!("http://{a}/api?key=x"), Mode::Json, shift).await;
    }
}

#[tokio::test]
async fn one_connection_serves_a_whole_burst_and_a_closed_one_is_reopened() {
    // The server closes idle keep-alive connections after 600 ms; spacing of 700-800 ms
    // makes every exchange find its connection closed: all must still succeed.
    let srv = start_with(
        webntpd::server::ServerConfig {
            limits: quick_limits(),
            ..config()
        },
        SystemClock::shared(),
        leap_store(),
    )
    .await;
    let o = ClientOptions {
        spacing: (Duration::from_millis(700), Duration::from_millis(800)),
        ..opts(3)
    };
    let m = measure(&format!("http://{}/", srv.addr), &o, SystemClock::shared())
        .await
        .unwrap();
    assert_eq!(m.estimate.samples, 3, "{:?}", m.failures);
}

// ---------------------------------------------------------------------------------------
// Hostile servers: each answers every HTTP request on a connection with `reply(request)`.

async fn fake_http<F>(reply: F) -> SocketAddr
where
    F: Fn(&str) -> Option<Vec<u8>> + Send + Sync + 'static,
{
    fake_http_closing(reply, false).await
}

/// As [`fake_http`]; with `close`, the connection is closed after each reply is written.
async fn fake_http_closing<F>(reply: F, close: bool) -> SocketAddr
where
    F: Fn(&str) -> Option<Vec<u8>> + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let reply = Arc::new(reply);
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let reply = reply.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let mut chunk = [0u8; 2048];
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end + 4]).into_owned();
                        buf.drain(..end + 4);
                        match reply(&head) {
                            Some(bytes) => {
                                if s.write_all(&bytes).await.is_err() || close {
                                    return;
                                }
                            }
                            None => {
                                // Hang: keep the connection, say nothing.
                                tokio::time::sleep(Duration::from_secs(30)).await;
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

/// The `it` a request carries (`GET /?<it> HTTP/1.1`).
fn query_of(head: &str) -> String {
    head.split_whitespace()
        .nth(1)
        .and_then(|t| t.split_once('?'))
        .map(|(_, q)| q.to_string())
        .unwrap_or_default()
}

fn http_ok(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn now_text() -> String {
    webntpd::sync::Timestamp::from_nanos(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i128,
    )
    .to_micros_string()
}

async fn expect_error(addr: SocketAddr, what: &str) -> ClientError {
    let url = format!("http://{addr}/");
    let o = ClientOptions {
        sample_timeout: Duration::from_millis(400),
        ..opts(3)
    };
    match measure(&url, &o, SystemClock::shared()).await {
        Ok(m) => panic!("{what}: a hostile server produced a measurement: {m:?}"),
        Err(e) => {
            assert_eq!(e.url, url);
            assert!(e.to_string().starts_with(&url), "{what}: {e}");
            e.error
        }
    }
}

#[tokio::test]
async fn hostile_servers_give_errors_never_samples() {
    // Refused: nothing listens.
    let closed = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let e = expect_error(closed, "refused").await;
    assert!(matches!(e, ClientError::Connect(_)), "{e}");

    let hang = fake_http(|_| None).await;
    let e = expect_error(hang, "hang").await;
    assert!(matches!(e, ClientError::Timeout { .. }), "{e}");

    let status = fake_http(|_| {
        Some(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n".to_vec())
    })
    .await;
    let e = expect_error(status, "500").await;
    assert!(matches!(e, ClientError::Status { status: 500 }), "{e}");

    let garbage = fake_http(|_| Some(http_ok("hello, I am not JSON"))).await;
    let e = expect_error(garbage, "garbage").await;
    assert!(matches!(e, ClientError::Reply(_)), "{e}");

    let wrong_it = fake_http(|_| {
        let now = now_text();
        Some(http_ok(&format!(
            "{{\"it\":1.000000,\"st\":{now},\"rt\":{now}}}"
        )))
    })
    .await;
    let e = expect_error(wrong_it, "wrong it").await;
    assert!(matches!(e, ClientError::Echo { .. }), "{e}");

    let nan = fake_http(|h| Some(http_ok(&format!("{{\"it\":{},\"st\":NaN}}", query_of(h))))).await;
    let e = expect_error(nan, "NaN").await;
    assert!(matches!(e, ClientError::Reply(_)), "{e}");
    assert!(e.to_string().contains("in field `st`, at `NaN}`"), "{e}");

    let huge = fake_http(|_| {
        let body = " ".repeat(1 << 20);
        Some(http_ok(&body))
    })
    .await;
    let e = expect_error(huge, "huge body").await;
    assert!(matches!(e, ClientError::TooLarge { .. }), "{e}");

    let slow = fake_http(|_| {
        // Promise a body and never finish it.
        Some(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"it\":".to_vec())
    })
    .await;
    let e = expect_error(slow, "slow body").await;
    assert!(matches!(e, ClientError::Timeout { .. }), "{e}");

    // Closed after reading the request, and in the middle of a body: said in those words,
    // not in hyper's.
    let closed = fake_http_closing(|_| Some(Vec::new()), true).await;
    let e = expect_error(closed, "closed").await;
    assert_eq!(
        e.to_string(),
        "the server closed the connection before it finished replying"
    );
    let cut = fake_http_closing(
        |_| Some(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"it\":".to_vec()),
        true,
    )
    .await;
    let e = expect_error(cut, "cut body").await;
    assert_eq!(
        e.to_string(),
        "the server closed the connection in the middle of the reply's body (shorter than \
         its Content-Length)"
    );

    // A server whose rt/st say it held the request for an hour.
    let liar = fake_http(|h| {
        let it = query_of(h);
        let now = now_text();
        Some(http_ok(&format!(
            "{{\"it\":{it},\"st\":{now},\"rt\":1.000000}}"
        )))
    })
    .await;
    let e = expect_error(liar, "liar").await;
    assert!(matches!(e, ClientError::Sample(_)), "{e}");
}

#[tokio::test]
async fn a_websocket_closing_mid_burst_is_an_error_not_a_panic() {
    // A WebSocket server that answers the warm-up exchange and then closes.
    let srv = shifted_server(0).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let upstream = srv.addr;
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            // Relay the handshake and the first exchange, then cut the connection.
            let mut up = tokio::net::TcpStream::connect(upstream).await.unwrap();
            tokio::spawn(async move {
                let (mut a, mut b) = (s.split(), up.split());
                let mut budget = 2; // handshake + first message each way
                let (mut up_buf, mut down_buf) = ([0u8; 4096], [0u8; 4096]);
                while budget > 0 {
                    tokio::select! {
                        r = a.0.read(&mut up_buf) => match r {
                            Ok(n) if n > 0 => { let _ = b.1.write_all(&up_buf[..n]).await; }
                            _ => return,
                        },
                        r = b.0.read(&mut down_buf) => match r {
                            Ok(n) if n > 0 => {
                                let _ = a.1.write_all(&down_buf[..n]).await;
                                budget -= 1;
                            }
                            _ => return,
                        },
                    }
                }
            });
        }
    });
    let o = opts(4);
    let r = measure(&format!("ws://{addr}/"), &o, SystemClock::shared()).await;
    let e = r.expect_err("a server that closes mid-burst gives no sample");
    assert!(e.to_string().contains(&addr.to_string()), "{e}");
}

#[tokio::test]
async fn a_websocket_server_that_selects_no_subprotocol_is_still_measured() {
    // RFC 6455 lets a server select none of the offered subprotocols; go-webntp's own
    // client accepts that, and so must we (tungstenite alone would refuse the handshake).
    use futures_util::{SinkExt, StreamExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let offered = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = offered.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
                #[allow(clippy::result_large_err)] // tungstenite's callback type
                let note = |req: &Request, resp: Response| {
                    seen.lock()
                        .unwrap()
                        .push(req.headers().contains_key("sec-websocket-protocol"));
                    Ok(resp)
                };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(s, note).await else {
                    return;
                };
                while let Some(Ok(m)) = ws.next().await {
                    let it = m.into_text().unwrap_or_default();
                    let now = now_text();
                    let reply = format!("{{\"it\":{},\"st\":{now}}}", it.trim());
                    if ws.send(reply.into()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let m = measure(&format!("ws://{addr}/"), &opts(4), SystemClock::shared())
        .await
        .expect("measured without a subprotocol");
    assert!(m.estimate.offset_ns.abs() <= m.estimate.error_bound_ns() + 1_000);
    // Offered once, refused, then one connection without the offer for the whole burst.
    assert_eq!(*offered.lock().unwrap(), vec![true, false]);
}

#[tokio::test]
async fn a_name_that_does_not_resolve_is_an_error_naming_it() {
    let r = measure(
        "http://nonexistent.invalid/",
        &opts(2),
        SystemClock::shared(),
    )
    .await;
    let e = r.expect_err("no such host");
    assert!(e.to_string().contains("nonexistent.invalid"), "{e}");
}

#[tokio::test]
async fn date_mode_bisects_an_ordinary_servers_date_header() {
    // The server's Date header comes from its (shifted) clock, whole seconds only; the
    // client must still place the true offset inside its reported interval, and narrow it
    // to milliseconds on loopback.
    for shift in [250_000_000, -1_700_000_000] {
        let srv = shifted_server(shift).await;
        let o = ClientOptions {
            mode: Mode::Date,
            ..opts(8)
        };
        let m = measure(&format!("http://{}/", srv.addr), &o, SystemClock::shared())
            .await
            .unwrap();
        let e = m.estimate;
        let err = (e.offset_ns - shift).abs();
        assert!(
            err <= e.error_bound_ns(),
            "shift {shift}: measured {} +- {} ns",
            e.offset_ns,
            e.error_bound_ns()
        );
        assert!(
            e.error_bound_ns() < 20_000_000,
            "only +-{} ns",
            e.error_bound_ns()
        );
        assert!(e.samples >= 2);
    }
}

#[tokio::test]
async fn https_and_wss_with_a_test_ca_and_refused_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path(), "client");
    let srv = start_with(
        webntpd::server::ServerConfig {
            listen: vec![],
            listen_tls: vec![any_port()],
            tls: Some(pki.files.clone()),
            ..config()
        },
        Arc::new(ShiftedClock::new(SystemClock::shared(), 40_000_000)),
        leap_store(),
    )
    .await;
    let port = srv.addrs[0].0.port();
    let mut o = opts(4);
    o.connect.extra_roots = vec![pki.ca_der.clone()];
    for url in [
        format!("https://localhost:{port}/"),
        format!("wss://localhost:{port}/"),
        format!("https://127.0.0.1:{port}/"),
    ] {
        let m = measure(&url, &o, SystemClock::shared())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let err = (m.estimate.offset_ns - 40_000_000).abs();
        assert!(
            err <= m.estimate.error_bound_ns(),
            "{url}: {:?}",
            m.estimate
        );
    }
    // Without the test CA the certificate is refused, and the error says why.
    let e = measure(
        &format!("https://localhost:{port}/"),
        &opts(2),
        SystemClock::shared(),
    )
    .await
    .expect_err("an unknown CA must be refused");
    assert!(e.to_string().contains("certificate"), "{e}");
}

#[tokio::test]
async fn through_a_connect_proxy() {
    let srv = shifted_server(-30_000_000).await;
    let (proxy, tunnels) = start_connect_proxy().await;
    let mut o = opts(4);
    o.connect.proxy = webntpd::net::connect::ProxySetting::Url(format!("http://{proxy}"));
    for url in [
        format!("http://{}/", srv.addr),
        format!("ws://{}/", srv.addr),
    ] {
        let m = measure(&url, &o, SystemClock::shared())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let err = (m.estimate.offset_ns + 30_000_000).abs();
        assert!(
            err <= m.estimate.error_bound_ns(),
            "{url}: {:?}",
            m.estimate
        );
    }
    assert!(
        tunnels.load(std::sync::atomic::Ordering::SeqCst) >= 2,
        "the traffic went through the proxy"
    );
}

#[tokio::test]
async fn ipv6_and_a_name_with_several_addresses() {
    // A server on the IPv6 loopback.
    let v6 = start_with(
        webntpd::server::ServerConfig {
            listen: vec![webntpd::server::ListenAddr("[::1]:0".parse().unwrap())],
            ..config()
        },
        SystemClock::shared(),
        leap_store(),
    )
    .await;
    for url in [format!("http://{}/", v6.addr), format!("ws://{}/", v6.addr)] {
        assert!(url.contains("[::1]"), "{url}");
        assert_measures(&url, Mode::Auto, 0).await;
    }
    // By name. Where /etc/hosts also lists ::1 for localhost, the client meets a refused
    // address before the right one; the fall-through itself is unit-tested in
    // client::connect with an explicit address list.
    let v4 = shifted_server(0).await;
    assert_measures(
        &format!("http://localhost:{}/", v4.addr.port()),
        Mode::Auto,
        0,
    )
    .await;
}

#[tokio::test]
async fn without_rt_the_servers_processing_counts_as_delay() {
    let srv = shifted_server(0).await;
    let url = format!("http://{}/", srv.addr);
    let with_rt = measure(&url, &opts(8), SystemClock::shared())
        .await
        .unwrap();
    let o = ClientOptions {
        use_rt: false,
        ..opts(8)
    };
    let without = measure(&url, &o, SystemClock::shared()).await.unwrap();
    // st-only samples carry no server time; both estimators keep the true offset (0) inside
    // their error bound.
    assert!(without.samples.iter().all(|s| s.server_ns == 0));
    for m in [&with_rt, &without] {
        assert!(
            m.estimate.offset_ns.abs() <= m.estimate.error_bound_ns(),
            "{:?}",
            m.estimate
        );
    }
}
