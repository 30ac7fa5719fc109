//! Request-head parsing on the plain-HTTP fast path (src/server/fast.rs): the bytes a client
//! sends on a new connection, served by `fast::serve` on an in-memory stream, on a server
//! whose clock stands still.
//!
//! Checked: it ends (no hang, no panic); what it writes is a sequence of complete HTTP/1.x
//! responses, each with a `content-length` matching its body (none on 204), no more of them
//! than complete request heads sent; bytes it hands on to hyper are exactly the unanswered
//! end of the input; every 200 WebNTP reply parses with `st` = `rt` = the clock's time; and for
//! every request target the fast path takes, its split into path and query is the one
//! `http::uri::PathAndQuery` (what hyper would build) makes.

#![no_main]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{micros, runtime, NOW};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use webntpd::fuzzing::{fast_split_target, Server};
use webntpd::leap::LeapStore;
use webntpd::wire::reply::parse_reply;

/// What a response must be read against: its request was a HEAD (no body, whatever its
/// content-length says), or asked for NICT's JSON (`st` to the millisecond, no `rt`).
#[derive(Clone, Copy, Default)]
struct Asked {
    head: bool,
    nict: bool,
}

/// Complete request heads in `data`, as httparse reads them one after another.
fn complete_heads(data: &[u8]) -> Vec<Asked> {
    let mut heads = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&data[at..]) {
            Ok(httparse::Status::Complete(len)) => {
                if let Some(target) = req.path {
                    check_target(target);
                }
                let path = req.path.and_then(|p| p.split('?').next()).unwrap_or("");
                heads.push(Asked {
                    head: req.method == Some("HEAD"),
                    // Exactly NICT's two paths: `/cgi-bin/json28` is the default route's JSON,
                    // with `rt` (found by fuzzing).
                    nict: matches!(path, "/cgi-bin/json" | "/cgi-bin/jsont"),
                });
                at += len;
            }
            _ => break,
        }
    }
    heads
}

fn check_target(target: &str) {
    if let Some(split) = fast_split_target(target) {
        match target.parse::<http::uri::PathAndQuery>() {
            Ok(pq) => assert_eq!(split, (pq.path(), pq.query()), "{target:?}"),
            Err(e) => panic!("fast path takes {target:?}, which http refuses: {e}"),
        }
    }
}

/// Check `out` is a sequence of whole responses to the requests `heads` (a HEAD's has no
/// body: found by fuzzing, a HEAD's 400 rightly carries a content-length and no body);
/// return how many.
fn responses(mut out: &[u8], heads: &[Asked]) -> usize {
    let mut n = 0;
    while !out.is_empty() {
        let asked = heads.get(n).copied().unwrap_or_default();
        let head_request = asked.head;
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        let len = match resp.parse(out) {
            Ok(httparse::Status::Complete(len)) => len,
            other => panic!(
                "not a whole response ({other:?}): {:?}",
                String::from_utf8_lossy(out)
            ),
        };
        let code = resp.code.unwrap_or(0);
        let length = resp
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .map(|h| {
                std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.parse::<usize>().ok())
            });
        let body_len = match (code, length) {
            _ if head_request => 0,
            (204 | 304, None) => 0,
            (204 | 304, Some(_)) => panic!("{code} with a content-length"),
            (_, Some(Some(l))) => l,
            (_, other) => panic!("{code} without a valid content-length: {other:?}"),
        };
        let Some(body) = out.get(len..len + body_len) else {
            panic!(
                "body shorter than its content-length: {:?}",
                String::from_utf8_lossy(out)
            );
        };
        let json = resp
            .headers
            .iter()
            .any(|h| h.name == "content-type" && h.value == b"application/json; charset=utf-8");
        if code == 200 && json && !head_request {
            match parse_reply(body) {
                // NICT's layout: three decimals, no rt (found by fuzzing once /cgi-bin/json
                // became NICT's byte for byte).
                Ok(r) if asked.nict => {
                    assert_eq!(r.st.to_millis_string(), NOW.to_millis_string());
                    assert_eq!(r.rt, None);
                }
                Ok(r) => {
                    assert_eq!(Some(r.st), micros(NOW));
                    assert_eq!(r.rt, micros(NOW));
                }
                Err(e) => panic!(
                    "200 reply does not parse ({e}): {:?}",
                    String::from_utf8_lossy(body)
                ),
            }
        }
        out = &out[len + body_len..];
        n += 1;
    }
    n
}

fuzz_target!(|data: &[u8]| {
    let server = Server::new(NOW, Arc::new(LeapStore::empty()), None);
    let heads = complete_heads(data);
    let (out, handed) = runtime().block_on(async {
        let (mut client, mut conn) = tokio::io::duplex(1 << 20);
        let serve = async {
            let r = server.serve_fast(&mut conn).await;
            // What hyper would read next: the fast path stops reading where it gives up (a
            // head that does not parse within its first 1 KiB, say), so the rest of the input
            // is still in the stream (found by fuzzing).
            let mut unread = Vec::new();
            if matches!(r, Ok(Some(_))) {
                let _ = conn.read_to_end(&mut unread).await;
            }
            drop(conn);
            r.map(|handed| {
                handed.map(|mut h| {
                    h.extend_from_slice(&unread);
                    h
                })
            })
        };
        let talk = async {
            let _ = client.write_all(data).await;
            let _ = client.shutdown().await;
            let mut out = Vec::new();
            let _ = client.read_to_end(&mut out).await;
            out
        };
        match tokio::time::timeout(Duration::from_secs(10), async { tokio::join!(serve, talk) })
            .await
        {
            Ok((served, out)) => match served {
                Ok(handed) => (out, handed),
                Err(e) => panic!("fast path failed on an in-memory stream: {e}"),
            },
            Err(_) => panic!("fast path still busy after 10 s"),
        }
    });
    let answered = responses(&out, &heads);
    assert!(
        answered <= heads.len(),
        "{answered} responses to {} requests",
        heads.len()
    );
    if let Some(rest) = handed {
        // The bytes handed over, then those not yet read: exactly the input's end.
        assert!(
            data.ends_with(&rest),
            "handed hyper bytes that are not the input's end"
        );
    }
});
