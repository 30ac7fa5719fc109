//! The HTTP side of the server on real sockets: exact reply bytes, rounding, JSONP, NICT
//! paths, Time over HTTPS, CORS, methods, HTTP/2.

use std::sync::Arc;

use crate::common::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use webntpd::leap::store::LeapStore;
use webntpd::server::{OriginPolicy, ServerConfig};

/// The instant every test in this file freezes the server clock at.
const NOW: &str = "1795270670.615101";

async fn frozen(config: ServerConfig) -> TestServer {
    start_with(config, frozen_clock(NOW), Arc::new(LeapStore::empty())).await
}

#[tokio::test]
async fn json_reply_is_byte_exact() {
    let srv = frozen(config()).await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let r = exchange(
        &mut s,
        "GET /?1489217288.328757 HTTP/1.1\r\nHost: 127.0.0.1:18080\r\n\r\n",
        false,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.text(),
        "{\"id\":\"127.0.0.1:18080\",\"it\":1489217288.328757,\"st\":1795270670.615101,\
         \"time\":1795270670.615101,\"leap\":0,\"next\":0.000000,\"step\":0,\
         \"rt\":1795270670.615101}\n"
    );
    assert_eq!(
        r.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(r.header("cache-control"), Some("no-cache, no-store"));
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        r.header("content-length"),
        Some(r.body.len().to_string().as_str())
    );
    // From the server's clock, like st.
    assert_eq!(r.header("date"), Some("Sat, 21 Nov 2026 14:17:50 GMT"));
    srv.stop_within(std::time::Duration::from_secs(2)).await;
}

#[tokio::test]
async fn echoed_timestamps_round_with_carry() {
    let srv = frozen(config()).await;
    let table = [
        ("1489217288.9999996", "1489217289.000000"),
        ("1489217288.9999994", "1489217288.999999"),
        ("1489217288.3287575", "1489217288.328758"),
        ("1489217288", "1489217288.000000"),
        ("1489217288.1", "1489217288.100000"),
        ("-1.25", "-1.250000"),
        ("%2B1.25", "1.250000"),
        ("1.5e9", "1500000000.000000"),
        ("1489217288328757e-6", "1489217288.328757"),
        ("1232963971.248", "1232963971.248000"),
        ("", "0.000000"),
    ];
    for (query, want) in table {
        let r = get(srv.addr, &format!("/?{query}")).await;
        assert_eq!(r.status, 200, "?{query}");
        let body = r.text();
        assert!(
            body.contains(&format!("\"it\":{want},")),
            "?{query} should echo {want}: {body}"
        );
    }
    // No query at all.
    let r = get(srv.addr, "/").await;
    assert!(r.text().contains("\"it\":0.000000,"), "{}", r.text());
}

#[tokio::test]
async fn bad_timestamps_get_400_with_a_json_reason() {
    let srv = frozen(config()).await;
    for query in [
        "NaN", "inf", "1.2.3", "abc", "1e", "0x10", "1&2", "%ff", "1e400",
    ] {
        let r = get(srv.addr, &format!("/?{query}")).await;
        assert_eq!(r.status, 400, "?{query}");
        assert_eq!(
            r.header("content-type"),
            Some("application/json; charset=utf-8")
        );
        let v = r.json();
        let msg = v["error"].as_str().expect("an error string");
        assert!(!msg.is_empty(), "?{query}");
    }
}

#[tokio::test]
async fn head_is_time_over_https() {
    let srv = frozen(config()).await;
    for path in ["/.well-known/time", "/", "/cgi-bin/json", "/anything?x"] {
        let r = request(srv.addr, "HEAD", path, "").await;
        assert_eq!(r.status, 204, "{path}");
        assert_eq!(r.header("x-httpstime"), Some(NOW), "{path}");
        assert_eq!(r.header("cache-control"), Some("no-cache, no-store"));
        assert!(r.header("date").is_some());
        assert!(r.body.is_empty());
    }
}

#[tokio::test]
async fn jsonp_with_callback_and_nict_jsont() {
    let srv = frozen(config()).await;
    let r = get(srv.addr, "/?callback=app.onTime&1.5").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/javascript; charset=utf-8")
    );
    let body = r.text();
    assert!(body.starts_with("app.onTime({\"id\":"), "{body}");
    assert!(body.ends_with("});\n"), "{body}");
    assert!(body.contains("\"it\":1.500000,"), "{body}");

    // NICT's path keeps NICT's layout with another callback; cache busters (jQuery's `_=`)
    // are ignored.
    let r = get(
        srv.addr,
        "/cgi-bin/jsont?callback=jQuery1_2&_=1489217288328",
    )
    .await;
    assert!(
        r.text().starts_with("jQuery1_2( { \"id\": "),
        "{}",
        r.text()
    );
    assert!(r.text().ends_with(" } )"), "{}", r.text());
}

/// tests/data/leap-seconds.list without the leap seconds after NTP second `last`, with its
/// `#h` hash computed again.
fn leap_list_until(last: u64) -> webntpd::leap::LeapList {
    use sha1::{Digest, Sha1};
    let full = include_str!("../data/leap-seconds.list");
    let value = |tag: &str| {
        let line = full.lines().find(|l| l.starts_with(tag)).unwrap();
        line[tag.len()..].trim().to_string()
    };
    let (updated, expires) = (value("#$"), value("#@"));
    let data: Vec<(u64, i32)> = full
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let mut f = l.split_whitespace();
            (
                f.next().unwrap().parse().unwrap(),
                f.next().unwrap().parse().unwrap(),
            )
        })
        .filter(|(ntp, _)| *ntp <= last)
        .collect();
    let mut sha = Sha1::new();
    sha.update(updated.as_bytes());
    sha.update(expires.as_bytes());
    let mut text = format!("#$ {updated}\n#@ {expires}\n");
    for (ntp, tai) in &data {
        sha.update(ntp.to_string().as_bytes());
        sha.update(tai.to_string().as_bytes());
        text.push_str(&format!("{ntp} {tai}\n"));
    }
    let words: Vec<String> = sha
        .finalize()
        .chunks(4)
        .map(|w| format!("{:x}", u32::from_be_bytes([w[0], w[1], w[2], w[3]])))
        .collect();
    text.push_str(&format!("#h {}\n", words.join(" ")));
    webntpd::leap::LeapList::parse(&text).unwrap()
}

/// What NICT's page documents (shared/reference/seed-nict-http-time-service.txt), checked
/// byte for byte: the JSONP body of `/cgi-bin/jsont?1232963971.248`, the same object on
/// `/cgi-bin/json`, `?` optional, `Access-Control-Allow-Origin: *` on every service.
#[tokio::test]
async fn nict_json_and_jsonp_bodies_are_the_documented_ones() {
    // NICT wrote the example in January 2009, when the list ended with that month's leap
    // second: the tzdata list cut there.
    let list = leap_list_until(3_439_756_800);
    let srv = start_with(
        ServerConfig {
            server_id: Some("ntp-a1.nict.go.jp".into()),
            ..config()
        },
        frozen_clock("1232963971.9204"),
        Arc::new(LeapStore::from_list(list)),
    )
    .await;
    let object = |it: &str| {
        format!(
            "{{ \"id\": \"ntp-a1.nict.go.jp\",\n\"it\": {it},\n\"st\": 1232963971.920,\n\
             \"leap\": 33,\n\"next\": 1230768000,\n\"step\": 1 }}"
        )
    };
    let r = get(srv.addr, "/cgi-bin/jsont?1232963971.248").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), format!("jsont( {} )", object("1232963971.248")));
    assert_eq!(
        r.header("content-type"),
        Some("application/javascript; charset=utf-8")
    );
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    let r = get(srv.addr, "/cgi-bin/json?1232963971.248").await;
    assert_eq!(r.text(), object("1232963971.248"));
    assert_eq!(
        r.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    // "POSIX seconds, in millisecond form": whole seconds and more digits are written with
    // three decimals; without `?...` the client time is 0.
    for (query, it) in [
        ("?1232963971", "1232963971.000"),
        ("?1232963971.2484", "1232963971.248"),
        ("", "0.000"),
    ] {
        let r = get(srv.addr, &format!("/cgi-bin/json{query}")).await;
        assert_eq!(r.text(), object(it), "{query}");
    }
    for path in [
        "/cgi-bin/ntp",
        "/cgi-bin/jst",
        "/cgi-bin/time",
        "/cgi-bin/json",
    ] {
        let r = get(srv.addr, path).await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("access-control-allow-origin"), Some("*"), "{path}");
    }
    // go-webntp's layout stays on every other path.
    let r = get(srv.addr, "/?1232963971.248").await;
    assert!(r
        .text()
        .starts_with("{\"id\":\"ntp-a1.nict.go.jp\",\"it\":1232963971.248000,"));
    srv.stop_within(std::time::Duration::from_secs(2)).await;
}

#[tokio::test]
async fn hostile_callbacks_are_refused_never_reflected() {
    let srv = frozen(config()).await;
    for cb in [
        "alert(1)//",
        "%3Cscript%3E",
        "a;alert(1)",
        "x%0Aalert(1)",
        "1abc",
        "",
        "a..b",
        "%E2%80%A8",
    ] {
        let r = get(srv.addr, &format!("/?callback={cb}")).await;
        assert_eq!(r.status, 400, "callback={cb}");
        assert_eq!(
            r.header("content-type"),
            Some("application/json; charset=utf-8")
        );
        let body = r.text();
        assert!(
            !body.contains("<script>") && !body.contains("alert("),
            "{body}"
        );
    }
    let long = "a".repeat(65);
    assert_eq!(
        get(srv.addr, &format!("/?callback={long}")).await.status,
        400
    );
}

#[tokio::test]
async fn nict_paths() {
    let srv = frozen(config().clone()).await;
    let host = srv.addr.to_string();
    let r = get(srv.addr, "/cgi-bin/json?1.5").await;
    assert_eq!(
        r.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert!(r.text().starts_with("{ \"id\": "));

    let page = |value: &str| {
        format!("<HTML>\n<HEAD><TITLE>{host}</TITLE></HEAD>\n<BODY>\n{value}\n</BODY>\n</HTML>\n")
    };
    let r = get(srv.addr, "/cgi-bin/jst").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(r.text(), page("1795270670.615"));
    assert_eq!(
        get(srv.addr, "/cgi-bin/ntp").await.text(),
        page("4004259470.615")
    );
    // 1795270670 = 2026-11-21 14:17:50 UTC
    assert_eq!(
        get(srv.addr, "/cgi-bin/time?Europe/Paris").await.text(),
        page("Sat Nov 21 15:17:50 2026 CET")
    );
    assert_eq!(
        get(srv.addr, "/cgi-bin/time").await.text(),
        page("Sat Nov 21 23:17:50 2026 JST")
    );
    assert_eq!(
        get(srv.addr, "/cgi-bin/time?America%2FNew_York")
            .await
            .text(),
        page("Sat Nov 21 09:17:50 2026 EST")
    );
    for bad in [
        "Mars/Olympus",
        "../../etc/passwd",
        "%3Cscript%3E",
        "Asia//Tokyo",
    ] {
        let r = get(srv.addr, &format!("/cgi-bin/time?{bad}")).await;
        assert_eq!(r.status, 400, "{bad}");
        assert!(!r.text().contains("<script>"));
    }
}

#[tokio::test]
async fn cors_preflight_and_origin_policy() {
    let srv = frozen(config()).await;
    let r = request(
        srv.addr,
        "OPTIONS",
        "/",
        "Origin: https://a.example\r\nAccess-Control-Request-Method: GET\r\n\
         Access-Control-Request-Headers: x-custom\r\n",
    )
    .await;
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        r.header("access-control-allow-methods"),
        Some("GET, HEAD, OPTIONS")
    );
    assert_eq!(r.header("access-control-allow-headers"), Some("x-custom"));
    assert!(r.header("access-control-max-age").is_some());
    assert!(r
        .header("access-control-expose-headers")
        .is_some_and(|v| v.contains("X-HTTPSTIME")));

    let listed = frozen(ServerConfig {
        origins: OriginPolicy::List(vec!["https://good.example".into()]),
        ..config()
    })
    .await;
    let r = request(
        listed.addr,
        "GET",
        "/?1",
        "Origin: https://good.example\r\n",
    )
    .await;
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://good.example")
    );
    assert_eq!(r.header("vary"), Some("Origin"));
    let r = request(
        listed.addr,
        "GET",
        "/?1",
        "Origin: https://evil.example\r\n",
    )
    .await;
    assert_eq!(
        r.status, 200,
        "non-browser semantics: the reply is still served"
    );
    assert_eq!(r.header("access-control-allow-origin"), None);
    assert_eq!(r.header("vary"), Some("Origin"));
}

#[tokio::test]
async fn other_methods_get_405() {
    let srv = frozen(config()).await;
    for m in ["POST", "PUT", "DELETE", "PATCH"] {
        let r = request(srv.addr, m, "/?1", "Content-Length: 0\r\n").await;
        assert_eq!(r.status, 405, "{m}");
        assert_eq!(r.header("allow"), Some("GET, HEAD, OPTIONS"));
        assert!(r.json()["error"].as_str().is_some());
    }
}

#[tokio::test]
async fn id_is_configured_or_the_escaped_host_header() {
    let srv = frozen(ServerConfig {
        server_id: Some("ntp.example".into()),
        ..config()
    })
    .await;
    assert!(get(srv.addr, "/")
        .await
        .text()
        .starts_with("{\"id\":\"ntp.example\","));

    let srv = frozen(config()).await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    // `&` and `'` may be in a Host (RFC 3986 sub-delims) and are escaped in the JSON...
    let r = exchange(&mut s, "GET / HTTP/1.1\r\nHost: a&b'c\r\n\r\n", false).await;
    assert!(
        r.text().starts_with("{\"id\":\"a\\u0026b'c\","),
        "{}",
        r.text()
    );
    // ...while `<`, `>` and `"` cannot be in one: 400, never reflected.
    let r = exchange(&mut s, "GET / HTTP/1.1\r\nHost: a<b>&\"c\r\n\r\n", false).await;
    assert_eq!(r.status, 400);
    assert!(!r.text().contains("<b>"), "{}", r.text());
    // HTTP/1.0 without a Host header: empty id, as go-webntp.
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let r = exchange(&mut s, "GET /?1 HTTP/1.0\r\n\r\n", false).await;
    assert!(r.text().starts_with("{\"id\":\"\","), "{}", r.text());
}

/// The status of each raw request on `addr`, in order: the first on the fast path, the
/// second through hyper (a body sends it there), each on a new connection.
async fn status_on_both_paths(addr: std::net::SocketAddr, head: &str) -> (u16, u16) {
    let on = |req: String| async move {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let r = exchange(&mut s, &req, false).await;
        assert!(
            r.status != 400 || r.json()["error"].as_str().is_some(),
            "a 400 says why in JSON"
        );
        r.status
    };
    let fast = on(format!("{head}\r\n")).await;
    let hyper = on(format!("{head}Content-Length: 2\r\n\r\nhi")).await;
    (fast, hyper)
}

#[tokio::test]
async fn http11_without_host_or_with_two_gets_400_on_both_paths() {
    // RFC 9112 section 3.2.
    let srv = frozen(config()).await;
    let cases = [
        ("GET /?1 HTTP/1.1\r\n", 400),
        ("GET /?1 HTTP/1.1\r\nHost: a\r\nHost: a\r\n", 400),
        ("GET /?1 HTTP/1.1\r\nHost: a\r\nhost: b\r\n", 400),
        ("GET /?1 HTTP/1.1\r\nHost: a b\r\n", 400),
        ("GET /?1 HTTP/1.0\r\nHost: a\r\nHost: b\r\n", 400),
        // HTTP/1.0 may omit it; an empty Host is a valid one.
        ("GET /?1 HTTP/1.0\r\n", 200),
        ("GET /?1 HTTP/1.1\r\nHost:\r\n", 200),
        ("GET /?1 HTTP/1.1\r\nHost: [::1]:8080\r\n", 200),
    ];
    for (head, want) in cases {
        assert_eq!(
            status_on_both_paths(srv.addr, head).await,
            (want, want),
            "{head:?}"
        );
    }
    // Other methods too, before routing: 400, not 405 or 204.
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    for method in ["POST", "HEAD", "OPTIONS"] {
        let r = exchange(
            &mut s,
            &format!("{method} / HTTP/1.1\r\n\r\n"),
            method == "HEAD",
        )
        .await;
        assert_eq!(r.status, 400, "{method}");
    }
    // The connection is still good.
    let r = exchange(&mut s, "GET /?5 HTTP/1.1\r\nHost: h\r\n\r\n", false).await;
    assert!(r.text().contains("\"it\":5.000000,"));
}

#[tokio::test]
async fn keep_alive_and_pipelining() {
    let srv = frozen(config()).await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    for i in 0..3 {
        let r = exchange(
            &mut s,
            &format!("GET /?{i} HTTP/1.1\r\nHost: h\r\n\r\n"),
            false,
        )
        .await;
        assert!(r.text().contains(&format!("\"it\":{i}.000000,")));
    }
    // Two requests in one write: two replies, in order.
    s.write_all(b"GET /?7 HTTP/1.1\r\nHost: h\r\n\r\nHEAD / HTTP/1.1\r\nHost: h\r\n\r\n")
        .await
        .unwrap();
    let mut seen = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while !String::from_utf8_lossy(&seen).contains("x-httpstime") {
            let mut chunk = [0u8; 4096];
            let n = tokio::io::AsyncReadExt::read(&mut s, &mut chunk)
                .await
                .unwrap();
            assert!(n > 0, "closed early");
            seen.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .expect("both pipelined replies within 5 s");
    let text = String::from_utf8(seen).unwrap();
    let first = text.find("\"it\":7.000000,").expect("first reply");
    let second = text.find("HTTP/1.1 204").expect("second reply");
    assert!(first < second, "{text}");
}

#[tokio::test]
async fn http2_prior_knowledge() {
    use http_body_util::BodyExt;
    let srv = frozen(config()).await;
    let stream = TcpStream::connect(srv.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    for i in 0..3 {
        let req = http::Request::get(format!("http://h2.example/?{i}.5"))
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.version(), http::Version::HTTP_2);
        assert!(resp.headers().contains_key("date"));
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(
            text.starts_with("{\"id\":\"h2.example\",")
                && text.contains(&format!("\"it\":{i}.500000,")),
            "{text}"
        );
    }
}

#[tokio::test]
async fn leap_fields_follow_the_list_with_go_webntp_semantics() {
    use webntpd::leap::LeapList;
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/leap-seconds.list"
    ))
    .unwrap();
    let list = LeapList::parse(&text).unwrap();
    // (server time, leap, next, step)
    let table = [
        // Today: none scheduled, so the last event (2017-01-01) with TAI-UTC 36 before it.
        (NOW, "\"leap\":36,\"next\":1483228800.000000,\"step\":1,"),
        // The last second before 2015-07-01: that event is next.
        (
            "1435708799.999999",
            "\"leap\":35,\"next\":1435708800.000000,\"step\":1,",
        ),
        // At the event it is past: the next one is 2017-01-01.
        (
            "1435708800",
            "\"leap\":36,\"next\":1483228800.000000,\"step\":1,",
        ),
        (
            "1483228799.5",
            "\"leap\":36,\"next\":1483228800.000000,\"step\":1,",
        ),
        (
            "1483228800",
            "\"leap\":36,\"next\":1483228800.000000,\"step\":1,",
        ),
    ];
    for (now, want) in table {
        let srv = start_with(
            config(),
            frozen_clock(now),
            Arc::new(LeapStore::from_list(list.clone())),
        )
        .await;
        let body = get(srv.addr, "/?1").await.text();
        assert!(body.contains(want), "at {now}: {body}");
    }
}

#[tokio::test]
async fn fast_path_and_hyper_share_a_connection() {
    // Simple GETs are answered by the fast path; a request with a body goes to hyper with
    // everything already read, and the connection carries on under hyper.
    let srv = frozen(config()).await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let r = exchange(&mut s, "GET /?1 HTTP/1.1\r\nHost: h\r\n\r\n", false).await;
    assert!(r.text().contains("\"it\":1.000000,"));
    // A GET with a body: not the fast path's to frame. The body must not be taken for the
    // next request.
    let r = exchange(
        &mut s,
        "GET /?2 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello",
        false,
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.text().contains("\"it\":2.000000,"), "{}", r.text());
    let r = exchange(&mut s, "GET /?3 HTTP/1.1\r\nHost: h\r\n\r\n", false).await;
    assert!(r.text().contains("\"it\":3.000000,"), "{}", r.text());
    let r = exchange(
        &mut s,
        "POST /?4 HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
        false,
    )
    .await;
    assert_eq!(r.status, 405);
}

#[tokio::test]
async fn connection_close_and_http10_keep_alive() {
    let srv = frozen(config()).await;
    // Connection: close is answered in kind and the server closes.
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let r = exchange(
        &mut s,
        "GET /?1 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        false,
    )
    .await;
    assert_eq!(r.header("connection"), Some("close"));
    assert!(read_until_closed(&mut s, std::time::Duration::from_secs(2))
        .await
        .is_empty());
    // HTTP/1.0 closes by default, stays open when asked.
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let r = exchange(
        &mut s,
        "GET /?1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        false,
    )
    .await;
    assert_eq!(r.header("connection"), Some("keep-alive"));
    let r = exchange(&mut s, "GET /?2 HTTP/1.0\r\n\r\n", false).await;
    assert!(r.text().contains("\"it\":2.000000,"));
    assert_eq!(r.header("connection"), Some("close"));
    assert!(read_until_closed(&mut s, std::time::Duration::from_secs(2))
        .await
        .is_empty());
}

/// The server's `rt` is when the request reached the host (the kernel's receive stamp), not
/// when the server got round to reading it: here the server's only thread is kept busy for
/// a while after the request has gone out.
#[tokio::test]
async fn rt_is_when_the_request_arrived_not_when_the_server_read_it() {
    let srv = start_on_system_clock(config()).await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let request = "GET /?1 HTTP/1.1\r\nHost: t\r\n\r\n";
    // The first request lets the server accept the connection; the kernel switches packet
    // stamping on in a deferred work item, so give it a moment.
    assert_eq!(exchange(&mut s, request, false).await.status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;

    let sent = unix_now();
    s.write_all(request.as_bytes()).await.unwrap();
    // This test and the server share one thread: it cannot read the request until this ends.
    std::thread::sleep(std::time::Duration::from_secs_f64(BUSY_SECS));
    assert_rt_is_the_arrival(&read_response(&mut s, false).await.json(), sent);
    srv.stop_within(std::time::Duration::from_secs(2)).await;
}

#[tokio::test]
async fn an_every_address_listener_is_dual_stack_and_a_taken_port_says_so() {
    // `:PORT` binds [::] and, as with std's bind (bindv6only = 0), takes IPv4 too.
    let srv = frozen(ServerConfig {
        listen: vec![":0".parse().unwrap()],
        ..ServerConfig::default()
    })
    .await;
    let port = srv.addr.port();
    for ip in ["127.0.0.1", "[::1]"] {
        let addr: std::net::SocketAddr = format!("{ip}:{port}").parse().unwrap();
        assert!(
            get(addr, "/?1").await.text().contains("\"it\":1.000000,"),
            "{ip}"
        );
    }
    // A second server on the same port is refused with the hint (SO_REUSEADDR does not
    // let two listeners share it).
    let again = webntpd::server::Server::bind(
        ServerConfig {
            listen: vec![webntpd::server::ListenAddr(srv.addr)],
            ..ServerConfig::default()
        },
        frozen_clock(NOW),
        Arc::new(LeapStore::empty()),
    )
    .await;
    let e = again.err().expect("the port is taken");
    assert_eq!(e.exit_code(), webntpd::exit::UNAVAILABLE);
    assert!(
        e.to_string().contains("another process is listening there"),
        "{e}"
    );
}

/// The clock page: served with its policy and entity tag on both paths of the server (the
/// fast path, and hyper, which a chunked request goes through), `HEAD` with its length and
/// no body, `304` for a browser that has it, its leap-second state beside it; every other
/// path as before.
#[tokio::test]
async fn the_clock_page_and_its_leap_state() {
    let list = webntpd::leap::LeapList::parse(include_str!("../data/leap-seconds.list")).unwrap();
    let srv = start_with(
        ServerConfig {
            clock_page: Some("/clock".into()),
            clock_peers: vec!["https://time.example.org/".into()],
            ..config()
        },
        frozen_clock(NOW),
        Arc::new(LeapStore::from_list(list)),
    )
    .await;
    let page = get(srv.addr, "/clock").await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(page.header("cache-control"), Some("no-cache"));
    assert_eq!(
        page.header("cross-origin-opener-policy"),
        Some("same-origin")
    );
    let csp = page.header("content-security-policy").unwrap();
    assert!(
        csp.contains("connect-src 'self' https://time.example.org wss://time.example.org;"),
        "{csp}"
    );
    let html = page.text();
    assert!(html.starts_with("<!doctype html>"), "{html:.40}");
    assert!(html.contains("data-peers=\"https://time.example.org/\""));
    let etag = page.header("etag").unwrap().to_string();
    // Cross-origin isolation only where browsers allow it (TLS, or a loopback name): else
    // Chromium ignores it and logs an error.
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let r = exchange(
        &mut s,
        "GET /clock HTTP/1.1\r\nHost: time.example.org\r\n\r\n",
        false,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("cross-origin-opener-policy"), None);
    assert_eq!(r.header("cross-origin-embedder-policy"), None);

    let head = request(srv.addr, "HEAD", "/clock", "").await;
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-length"),
        Some(html.len().to_string().as_str())
    );
    assert_eq!(head.header("etag"), Some(etag.as_str()));

    let chunked = "Transfer-Encoding: chunked\r\n";
    for extra in ["", chunked] {
        let mut s = TcpStream::connect(srv.addr).await.unwrap();
        let body = if extra.is_empty() { "" } else { "0\r\n\r\n" };
        let req = format!(
            "GET /clock HTTP/1.1\r\nHost: {}\r\nIf-None-Match: {etag}\r\n{extra}\r\n{body}",
            srv.addr
        );
        let r = exchange(&mut s, &req, true).await;
        assert_eq!(r.status, 304, "{extra:?}");
        assert_eq!(r.header("content-length"), None, "{extra:?}");
        assert_eq!(r.header("etag"), Some(etag.as_str()), "{extra:?}");
        // Still in step on the same connection.
        let next = format!("GET /?1.5 HTTP/1.1\r\nHost: {}\r\n\r\n", srv.addr);
        assert!(exchange(&mut s, &next, false)
            .await
            .text()
            .contains("\"it\":1.500000,"));
        let page = exchange(
            &mut s,
            &format!("GET /clock HTTP/1.1\r\nHost: h\r\n{extra}\r\n{body}"),
            false,
        )
        .await;
        assert_eq!(page.text(), html, "{extra:?}");
    }

    let leap = get(srv.addr, "/clock/leap").await;
    assert_eq!(
        leap.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(leap.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        leap.json(),
        serde_json::json!({
            "leap": 36, "next": 1_483_228_800_i64, "step": 1, "tai_utc": 37,
            "list": {"updated": 1_751_846_400_i64, "expires": 1_782_604_800_i64, "expired": true},
        })
    );
    // Everything else is as it was.
    for path in ["/clock/", "/clock/x", "/clocks", "/Clock"] {
        let r = get(srv.addr, &format!("{path}?1.5")).await;
        assert!(r.text().starts_with("{\"id\":"), "{path}: {}", r.text());
    }
    assert_eq!(request(srv.addr, "HEAD", "/", "").await.status, 204);
    assert_eq!(request(srv.addr, "POST", "/clock", "").await.status, 405);
    srv.stop_within(std::time::Duration::from_secs(2)).await;

    // `off` (no page): every path answers WebNTP JSON, as go-webntp's.
    let srv = frozen(config()).await;
    let r = get(srv.addr, "/clock?1.5").await;
    assert!(r.text().starts_with("{\"id\":"), "{}", r.text());
    srv.stop_within(std::time::Duration::from_secs(2)).await;
}
