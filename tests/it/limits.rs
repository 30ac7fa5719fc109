//! Resource limits and shutdown on real sockets: header-read timeout (slowloris), keep-alive
//! idle timeout, header size, connection cap, graceful shutdown, garbage input.
//!
//! Timeouts here are short (hundreds of ms) and the bounds generous, because CI machines are
//! shared: each test checks that a limit acts, and that it does not act too early.

use std::time::{Duration, Instant};

use crate::common::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use webntpd::server::{Limits, ServerConfig};

fn quick() -> ServerConfig {
    ServerConfig {
        limits: quick_limits(),
        ..config()
    }
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_header_timeout() {
    let srv = start(quick()).await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let t0 = Instant::now();
    let got = read_until_closed(&mut s, Duration::from_secs(5)).await;
    let took = t0.elapsed();
    assert!(got.is_empty());
    assert!(
        took >= Duration::from_millis(300),
        "closed too early: {took:?}"
    );
}

#[tokio::test]
async fn a_slowloris_trickle_does_not_keep_the_connection() {
    let srv = start(quick()).await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let t0 = Instant::now();
    // One byte every 50 ms, never finishing the head: bytes keep arriving, but the head
    // timeout (400 ms) counts from the first one.
    let head = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut closed_at = None;
    for b in head.iter() {
        if s.write_all(&[*b]).await.is_err() {
            closed_at = Some(t0.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let closed_at = match closed_at {
        Some(t) => t,
        None => {
            read_until_closed(&mut s, Duration::from_secs(3)).await;
            t0.elapsed()
        }
    };
    assert!(
        closed_at < Duration::from_millis(head.len() as u64 * 50),
        "the trickle was allowed to finish ({closed_at:?})"
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_and_activity_keeps_it() {
    let srv = start(quick()).await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    // Requests every 200 ms for 1.5 s, longer than the 600 ms idle timeout: all answered on
    // the same connection.
    let t0 = Instant::now();
    let mut last_reply = t0;
    while t0.elapsed() < Duration::from_millis(1500) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let r = exchange(&mut s, "GET /?1 HTTP/1.1\r\nHost: h\r\n\r\n", false).await;
        assert_eq!(r.status, 200);
        last_reply = Instant::now();
    }
    // Then silence: closed about 600 ms after the last reply.
    let t1 = last_reply;
    let rest = read_until_closed(&mut s, Duration::from_secs(5)).await;
    assert!(rest.is_empty());
    let idle = t1.elapsed();
    assert!(
        idle >= Duration::from_millis(400),
        "closed too early: {idle:?}"
    );
}

#[tokio::test]
async fn an_oversized_request_head_gets_431() {
    let srv = start(config()).await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let big = "a".repeat(12_000);
    let req = format!("GET / HTTP/1.1\r\nHost: h\r\nX-Big: {big}\r\n\r\n");
    // The server may answer and close before reading it all; ignore write errors.
    let _ = s.write_all(req.as_bytes()).await;
    let got = read_until_closed(&mut s, Duration::from_secs(5)).await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 431"), "{text}");
}

/// A request head of exactly `len` bytes.
fn head_of(len: usize, it: usize) -> String {
    let start = format!("GET /?{it} HTTP/1.1\r\nHost: h\r\nX-Pad: ");
    let end = "\r\n\r\n";
    let pad = len - start.len() - end.len();
    format!("{start}{}{end}", "p".repeat(pad))
}

#[tokio::test]
async fn every_head_size_up_to_the_limit_is_answered_and_one_byte_more_gets_431() {
    // The fast path reads into an 8 KiB scratch and carries an incomplete head over to the
    // next read: every size up to the limit (8192), and heads split over several reads, must
    // still be answered.
    let srv = start(config()).await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    for (i, len) in [200, 1023, 1024, 1025, 2048, 2049, 4096, 5000, 8191, 8192]
        .into_iter()
        .enumerate()
    {
        let head = head_of(len, i);
        assert_eq!(head.len(), len);
        // In two writes, the second after the server has read the first.
        let (a, b) = head.split_at(len / 2);
        s.write_all(a.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        let r = exchange(&mut s, b, false).await;
        assert_eq!(r.status, 200, "a head of {len} bytes");
        assert!(r.text().contains(&format!("\"it\":{i}.000000,")), "{len}");
    }
    // Pipelined in one write: a small head, a large one, and one that closes.
    let three = format!(
        "{}{}GET /?22 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        head_of(300, 20),
        head_of(6000, 21)
    );
    s.write_all(three.as_bytes()).await.unwrap();
    let got = read_until_closed(&mut s, Duration::from_secs(5)).await;
    let text = String::from_utf8_lossy(&got);
    let at: Vec<_> = [20, 21, 22]
        .iter()
        .map(|it| text.find(&format!("\"it\":{it}.000000,")))
        .collect();
    assert!(
        at.windows(2)
            .all(|w| matches!(w, [Some(a), Some(b)] if a < b)),
        "three replies in order: {text}"
    );
    head_over_the_limit_gets_431(srv.addr, 8193).await;
}

/// A new connection sending a head of `len` bytes gets 431.
async fn head_over_the_limit_gets_431(addr: std::net::SocketAddr, len: usize) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    // The server may answer and close before reading it all; ignore write errors.
    let _ = s.write_all(head_of(len, 0).as_bytes()).await;
    let got = read_until_closed(&mut s, Duration::from_secs(5)).await;
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("HTTP/1.1 431"),
        "a head of {len} bytes: {text}"
    );
}

#[tokio::test]
async fn heads_past_the_fast_paths_scratch_are_answered_up_to_a_raised_limit() {
    // The fast path holds at most 8 KiB of requests at a time (a per-thread scratch, nothing
    // per connection); a larger head goes to hyper, which applies max_header_bytes.
    let srv = start(ServerConfig {
        limits: Limits {
            max_header_bytes: 16384,
            ..Limits::default()
        },
        ..config()
    })
    .await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    for (i, len) in [200, 8193, 12000, 16384].into_iter().enumerate() {
        let r = exchange(&mut s, &head_of(len, i), false).await;
        assert_eq!(r.status, 200, "a head of {len} bytes");
        assert!(r.text().contains(&format!("\"it\":{i}.000000,")), "{len}");
    }
    head_over_the_limit_gets_431(srv.addr, 16385).await;
}

#[tokio::test]
async fn a_pipelined_batch_larger_than_the_scratch_is_answered_in_order() {
    // 60 heads of 300 bytes in one write: more than one 8 KiB read, so heads are cut at the
    // scratch's end and carried over to the next read.
    let srv = start(config()).await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let mut batch: String = (0..59).map(|i| head_of(300, i)).collect();
    batch.push_str("GET /?59 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    s.write_all(batch.as_bytes()).await.unwrap();
    let got = read_until_closed(&mut s, Duration::from_secs(5)).await;
    let text = String::from_utf8_lossy(&got);
    let mut from = 0;
    for i in 0..60 {
        let at = text[from..]
            .find(&format!("\"it\":{i}.000000,"))
            .unwrap_or_else(|| panic!("reply {i} missing or out of order: {text}"));
        from += at + 1;
    }
    assert_eq!(text.matches("HTTP/1.1 200").count(), 60, "{text}");
}

#[tokio::test]
async fn the_connection_cap_makes_new_clients_wait() {
    let srv = start(ServerConfig {
        limits: Limits {
            max_connections: 2,
            ..Limits::default()
        },
        ..config()
    })
    .await;
    let mut a = TcpStream::connect(srv.addr).await.unwrap();
    let _b = TcpStream::connect(srv.addr).await.unwrap();
    // Make sure both were accepted (a answers).
    assert_eq!(
        exchange(&mut a, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", false)
            .await
            .status,
        200
    );
    // A third connects (the kernel's backlog) but is not served while the two are open.
    let mut c = TcpStream::connect(srv.addr).await.unwrap();
    c.write_all(b"GET /?3 HTTP/1.1\r\nHost: h\r\n\r\n")
        .await
        .unwrap();
    let waited =
        tokio::time::timeout(Duration::from_millis(500), read_response(&mut c, false)).await;
    assert!(
        waited.is_err(),
        "a third connection was served past the cap of 2"
    );
    // One leaves: the third is served.
    drop(a);
    let r = tokio::time::timeout(Duration::from_secs(5), read_response(&mut c, false))
        .await
        .expect("served once a slot is free");
    assert!(r.text().contains("\"it\":3.000000,"));
}

#[tokio::test]
async fn graceful_shutdown_closes_connections_and_releases_the_port() {
    let srv = start(config()).await;
    let addr = srv.addr;
    let mut idle = TcpStream::connect(addr).await.unwrap();
    assert_eq!(
        exchange(&mut idle, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", false)
            .await
            .status,
        200
    );
    let t0 = Instant::now();
    srv.stop_within(Duration::from_secs(2)).await;
    assert!(t0.elapsed() < Duration::from_secs(2));
    // The idle keep-alive connection was closed...
    read_until_closed(&mut idle, Duration::from_secs(2)).await;
    // ...and the port is free again: a new server binds exactly it.
    let again = start(ServerConfig {
        listen: vec![webntpd::server::ListenAddr(addr)],
        ..ServerConfig::default()
    })
    .await;
    assert_eq!(get(again.addr, "/").await.status, 200);
}

#[tokio::test]
async fn garbage_never_takes_the_server_down() {
    let srv = start(quick()).await;
    let inputs: &[&[u8]] = &[
        b"\x00\x01\x02\x03\r\n\r\n",
        b"GARBAGE\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: \xff\xfe\r\n\r\n",
        b"GET http://absolute.example/?1 HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET /?\xff HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00",
        b"\x16\x03\x01\x00\x05hello",
    ];
    for input in inputs {
        let mut s = TcpStream::connect(srv.addr).await.unwrap();
        let _ = s.write_all(input).await;
        let _ = read_until_closed(&mut s, Duration::from_secs(5)).await;
    }
    // Still serving.
    let r = get(srv.addr, "/?42").await;
    assert!(r.text().contains("\"it\":42.000000,"));
    srv.stop_within(Duration::from_secs(3)).await;
}

#[tokio::test]
async fn a_client_that_never_reads_its_replies_is_cut_off() {
    let srv = start(quick()).await;
    let s = TcpStream::connect(srv.addr).await.unwrap();
    let (_read_half, mut write_half) = s.into_split();
    // Pipeline far more requests than the socket buffers hold replies for, and never read:
    // the server's writes block, then its reads (back-pressure). Without a stall limit this
    // connection would hold its slot forever.
    let writer = tokio::spawn(async move {
        let req = b"GET /?1 HTTP/1.1\r\nHost: h\r\n\r\n".repeat(1000);
        // Keeps writing until the server cuts it off (bounded by the timeout below).
        loop {
            write_half.write_all(&req).await?;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        #[allow(unreachable_code)]
        Ok::<_, std::io::Error>(())
    });
    let t0 = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(10), writer)
        .await
        .expect("the stalled connection was closed within 10 s")
        .unwrap();
    assert!(
        result.is_err(),
        "the server closed the connection (the writer sees a reset)"
    );
    assert!(
        t0.elapsed() >= Duration::from_millis(400),
        "{:?}",
        t0.elapsed()
    );
}
