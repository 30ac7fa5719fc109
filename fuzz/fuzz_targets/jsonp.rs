//! JSONP and NICT query handling: what the server's routing (src/server/service.rs) does with
//! a GET's path, query string and Host header, with the query and callback parsing of
//! src/wire/reply.rs and the NICT pages of src/wire/nict.rs.
//!
//! Checked, on a server whose clock stands at a time taken from the input:
//! - WebNTP paths: 200 exactly when `parse_query` accepts the query, else 400 with a JSON
//!   `{"error": ...}` body; a 200 is JSONP (JavaScript content type) exactly when a callback
//!   was given or the path is `/cgi-bin/jsont`, and its object parses back with `it` as
//!   asked, `st` (and `rt`) the clock's time, `id` the Host header and the leap data; on
//!   `/cgi-bin/json` and `/cgi-bin/jsont` in NICT's layout (`cb( {...} )`, three decimals,
//!   one field per line, no `rt`), elsewhere go-webntp's (`cb({...});`, six decimals);
//! - `/cgi-bin/ntp` and `/cgi-bin/jst`: NICT's page with the clock's NTP / POSIX seconds;
//! - `/cgi-bin/time`: NICT's page with `human_time` of the decoded zone, or 400;
//! - every body is safe in HTML and in a script: no raw `<`, `>`, `&`, U+2028 or U+2029 in a
//!   JSON or JSONP body, none of `<`, `>` in a NICT page's title or value.

#![no_main]

use std::sync::{Arc, OnceLock};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use webntpd::fuzzing::{Response, Server};
use webntpd::leap::{LeapList, LeapStore};
use webntpd::sync::Timestamp;
use webntpd::wire::nict;
use webntpd::wire::reply::{parse_query, parse_reply};
use webntpd::wire::timestamp::is_wire_form;

const PATHS: [&str; 7] = [
    "/",
    "/cgi-bin/jsont",
    "/cgi-bin/json",
    "/cgi-bin/ntp",
    "/cgi-bin/jst",
    "/cgi-bin/time",
    "/any/other",
];

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    path: u8,
    query: &'a str,
    host: Option<&'a [u8]>,
    /// Seconds from 2000-01-01 (to 2136).
    now_s: u32,
    now_ns: u32,
}

fn leap() -> Arc<LeapStore> {
    static STORE: OnceLock<Arc<LeapStore>> = OnceLock::new();
    STORE
        .get_or_init(|| {
            let text = include_str!("../../tests/data/leap-seconds.list");
            match LeapList::parse(text) {
                Ok(list) => Arc::new(LeapStore::from_list(list)),
                Err(e) => panic!("the test leap list does not parse: {e}"),
            }
        })
        .clone()
}

fn text(resp: &Response) -> &str {
    match std::str::from_utf8(&resp.body) {
        Ok(t) => t,
        Err(e) => panic!("body is not UTF-8 ({e}): {resp:?}"),
    }
}

/// RFC 3986: unreserved, sub-delims, `%` (pct-encoded), `:` (the port), `[` `]` (IPv6
/// literals) — written out here rather than taken from the server's own check.
fn host_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%:[]".contains(&b)
}

fn script_safe(body: &str) {
    for c in ['<', '>', '&', '\u{2028}', '\u{2029}'] {
        assert!(!body.contains(c), "raw {c:?} in {body:?}");
    }
}

/// The value line and title of a NICT page, checked for shape.
fn nict_page(resp: &Response) -> (String, String) {
    assert_eq!(resp.status, 200);
    let body = text(resp);
    let inner = body
        .strip_prefix("<HTML>\n<HEAD><TITLE>")
        .and_then(|b| b.strip_suffix("\n</BODY>\n</HTML>\n"));
    let Some((title, value)) = inner.and_then(|b| b.split_once("</TITLE></HEAD>\n<BODY>\n")) else {
        panic!("not NICT's page: {body:?}");
    };
    for part in [title, value] {
        assert!(!part.contains(['<', '>']), "markup in {part:?}");
    }
    (title.to_string(), value.to_string())
}

fuzz_target!(|input: Input<'_>| {
    let path = PATHS[usize::from(input.path) % PATHS.len()];
    let uri = if input.query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", input.query)
    };
    // What hyper would refuse never reaches routing.
    let Ok(req) = http::Request::get(&uri).body(()) else {
        return;
    };
    let raw_query = req.uri().query().unwrap_or("").to_owned();
    let mut req = req;
    let mut host_text = String::new();
    if let Some(h) = input
        .host
        .and_then(|h| http::HeaderValue::from_bytes(h).ok())
    {
        host_text = String::from_utf8_lossy(h.as_bytes()).into_owned();
        req.headers_mut().insert(http::header::HOST, h);
    }
    let now = Timestamp::from_secs(946_684_800 + i64::from(input.now_s))
        .add_nanos(i128::from(input.now_ns % 1_000_000_000));
    let leap = leap();
    let server = Server::new(now, leap.clone(), None);
    let resp = match server.handle(&req) {
        Ok(r) => r,
        Err(e) => panic!("no response: {e}"),
    };
    assert!(resp.header("date").is_some());

    // RFC 9112 section 3.2, before routing: an HTTP/1.1 request (as this one is) without a
    // Host, or with one that is not RFC 3986's `host [":" port]`, gets 400 (found by fuzzing
    // when that rule was added and this target did not know it).
    let host_ok = input
        .host
        .and_then(|h| http::HeaderValue::from_bytes(h).ok())
        .is_some_and(|h| h.as_bytes().iter().all(|&b| host_byte(b)));
    if !host_ok {
        assert_eq!(resp.status, 400, "{resp:?}");
        assert!(text(&resp).contains("Host"), "{resp:?}");
        return;
    }

    match path {
        "/cgi-bin/ntp" => {
            let (_, value) = nict_page(&resp);
            assert_eq!(value, nict::ntp_seconds(now));
        }
        "/cgi-bin/jst" => {
            let (_, value) = nict_page(&resp);
            assert_eq!(value, nict::posix_seconds(now));
        }
        "/cgi-bin/time" => {
            let zone = percent_encoding::percent_decode_str(&raw_query).decode_utf8_lossy();
            let zone = if zone.is_empty() {
                "Asia/Tokyo".into()
            } else {
                zone
            };
            match nict::human_time(now, &zone) {
                Ok(want) => assert_eq!(nict_page(&resp).1, want),
                Err(_) => {
                    assert_eq!(resp.status, 400, "{resp:?}");
                    script_safe(text(&resp));
                }
            }
        }
        _ => {
            let body = text(&resp).to_string();
            script_safe(&body);
            match parse_query(&raw_query) {
                Err(_) => {
                    assert_eq!(resp.status, 400, "{resp:?}");
                    let v: serde_json::Value = match serde_json::from_str(&body) {
                        Ok(v) => v,
                        Err(e) => panic!("error body is not JSON ({e}): {body:?}"),
                    };
                    assert!(
                        v.get("error").and_then(|e| e.as_str()).is_some(),
                        "{body:?}"
                    );
                    assert_eq!(resp.header("x-content-type-options"), Some(&b"nosniff"[..]));
                }
                Ok(q) => {
                    assert_eq!(resp.status, 200, "{resp:?}");
                    let nict_layout = path.starts_with("/cgi-bin/json");
                    let callback = q
                        .callback
                        .clone()
                        .or((path == "/cgi-bin/jsont").then(|| "jsont".to_string()));
                    let (open, close) = if nict_layout {
                        ("( ", " )")
                    } else {
                        ("(", ");\n")
                    };
                    let object = match &callback {
                        Some(cb) => {
                            assert_eq!(
                                resp.header("content-type"),
                                Some(&b"application/javascript; charset=utf-8"[..])
                            );
                            match body
                                .strip_prefix(cb.as_str())
                                .and_then(|b| b.strip_prefix(open))
                                .and_then(|b| b.strip_suffix(close))
                            {
                                Some(o) => o.to_string(),
                                None => panic!("not `{cb}{open}...{close}`: {body:?}"),
                            }
                        }
                        None => {
                            assert_eq!(
                                resp.header("content-type"),
                                Some(&b"application/json; charset=utf-8"[..])
                            );
                            body.clone()
                        }
                    };
                    let r = match parse_reply(object.as_bytes()) {
                        Ok(r) => r,
                        Err(e) => panic!("reply does not parse ({e}): {body:?}"),
                    };
                    assert_eq!(r.id.as_deref(), Some(host_text.as_str()));
                    assert_eq!(r.leap, Some(leap.info(now)));
                    if nict_layout {
                        assert_eq!(object.lines().count(), 6, "{body:?}");
                        let millis = |t: Timestamp| Timestamp::parse(&t.to_millis_string()).ok();
                        assert_eq!(Some(r.it), millis(q.it));
                        assert_eq!(Some(r.st), millis(now));
                        assert_eq!(r.rt, None);
                        return;
                    }
                    let micros = |t: Timestamp| Timestamp::parse(&t.to_micros_string()).ok();
                    if is_wire_form(&raw_query) {
                        assert_eq!(r.it.to_micros_string(), raw_query);
                    } else {
                        assert_eq!(Some(r.it), micros(q.it));
                    }
                    assert_eq!(Some(r.st), micros(now));
                    assert_eq!(r.rt, micros(now));
                }
            }
        }
    }
});
