//! Request routing: which reply each method and path gets.
//!
//! | request | reply |
//! |---|---|
//! | WebSocket upgrade, any path | 101, then [`ws`](super::ws) (dispatched by `conn`) |
//! | `HEAD`, any path | 204 with `X-HTTPSTIME` (Time over HTTPS) |
//! | `GET`/`HEAD` of the clock page (`/clock`) and `/clock/leap` | [`page`](super::page) |
//! | `OPTIONS`, any path | 204 CORS preflight |
//! | `GET /cgi-bin/ntp`, `/cgi-bin/jst` | NICT's HTML page with NTP / POSIX seconds |
//! | `GET /cgi-bin/time?ZONE` | NICT's HTML page with the time in ZONE (default Asia/Tokyo) |
//! | `GET /cgi-bin/json?TS` | NICT's JSON object (three decimals, one field per line) |
//! | `GET /cgi-bin/jsont?TS` | the same as JSONP, callback `jsont` unless `callback=` says otherwise |
//! | `GET` any other path `?TS` | the WebNTP JSON reply (JSONP with `callback=NAME`) |
//! | anything else | 405 |
//!
//! The receive time `rt` is read first, as soon as the request head is parsed (by hyper or by
//! the [`fast`](super::fast) path), and moved back to when the kernel received the bytes
//! ([`crate::net::rxstamp`]).
//! Bad input gets 400 with a short JSON error (never an empty 200, never reflected script),
//! and so does a request whose `Host` breaks RFC 9112 section 3.2 ([`check_host`]). What a reply
//! is made of is [`super::reply`]'s; this module only decides which.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, StatusCode};

use super::activity::{Activity, InFlight};
use super::body::ReplyBody;
use super::reply::{
    bad_request, check_host, date_header, error, server_id, Cors, Head, Reply, ALLOW,
    ALLOWED_METHODS, EXPOSED, HTML, JAVASCRIPT, JSON, NOSNIFF, NO_CACHE, PREFLIGHT_MAX_AGE,
    X_HTTPSTIME,
};
use super::stats::{Kind, Reject};
use super::Shared;
use crate::sync::Timestamp;
use crate::wire::nict;
use crate::wire::reply::{parse_query, ReplyFields, ReplyTemplate};

/// Zone of `/cgi-bin/time` without a query: NICT's service answered in Japan Standard Time.
pub const DEFAULT_TIME_ZONE: &str = "Asia/Tokyo";

/// Answer one plain HTTP request (not an upgrade). Never fails: every problem becomes an
/// HTTP error response.
pub(crate) fn handle<H: Head>(
    req: &H,
    peer: SocketAddr,
    shared: &Arc<Shared>,
    activity: &Arc<Activity>,
) -> Reply {
    let rt = activity.rx.received(&*shared.clock);
    let busy = activity.begin_request();
    let cors = Cors::new(&shared.origins, req);
    if let Err(reason) = check_host(req) {
        shared.stats.rejected(Reject::Host);
        let mut reply = bad_request(peer, reason, busy, &cors);
        reply.insert(header::DATE, date_header(rt));
        return reply;
    }
    // The clock page's two paths, if it is served: two string comparisons for the rest.
    let page = shared.page.as_ref().filter(|p| p.owns(req.path()));
    let mut reply = match (req.method(), page) {
        (&Method::GET | &Method::HEAD, Some(page)) => {
            shared.stats.request(Kind::Page);
            page.answer(req, shared, busy, &cors, activity.tls)
        }
        (&Method::GET, _) => get(req, rt, peer, shared, busy, &cors),
        (&Method::HEAD, _) => {
            let kind = match req.path() {
                "/.well-known/time" => Kind::Toh,
                _ => Kind::Head,
            };
            shared.stats.request(kind);
            head(rt, shared, busy, &cors)
        }
        (&Method::OPTIONS, _) => {
            shared.stats.request(Kind::Preflight);
            preflight(req, busy, &cors)
        }
        _ => {
            shared.stats.rejected(Reject::Method);
            let mut reply = error(
                StatusCode::METHOD_NOT_ALLOWED,
                &format!(
                    "method {} not allowed; use GET, HEAD or OPTIONS",
                    req.method()
                ),
                busy,
                &cors,
            );
            reply.fixed(&ALLOW);
            reply
        }
    };
    reply.insert(header::DATE, date_header(rt));
    reply
}

fn get<H: Head>(
    req: &H,
    rt: Timestamp,
    peer: SocketAddr,
    shared: &Arc<Shared>,
    busy: InFlight,
    cors: &Cors,
) -> Reply {
    let raw_query = req.query().unwrap_or("");
    match req.path() {
        "/cgi-bin/ntp" => {
            shared.stats.request(Kind::Nict);
            let id = server_id(shared, req);
            let value = nict::ntp_seconds(shared.clock.realtime());
            page(nict::html_page(&id, &value), busy, cors)
        }
        "/cgi-bin/jst" => {
            shared.stats.request(Kind::Nict);
            let id = server_id(shared, req);
            let value = nict::posix_seconds(shared.clock.realtime());
            page(nict::html_page(&id, &value), busy, cors)
        }
        "/cgi-bin/time" => {
            let zone = percent_encoding::percent_decode_str(raw_query).decode_utf8_lossy();
            let zone = if zone.is_empty() {
                DEFAULT_TIME_ZONE
            } else {
                &zone
            };
            match nict::human_time(shared.clock.realtime(), zone) {
                Ok(value) => {
                    shared.stats.request(Kind::Nict);
                    page(nict::html_page(&server_id(shared, req), &value), busy, cors)
                }
                Err(e) => {
                    shared.stats.rejected(Reject::Query);
                    bad_request(peer, &e.to_string(), busy, cors)
                }
            }
        }
        // NICT's own layout of the object, byte for byte (see `nict::reply_template`).
        "/cgi-bin/json" => webntp(req, rt, peer, shared, busy, cors, Layout::Nict(None)),
        "/cgi-bin/jsont" => webntp(
            req,
            rt,
            peer,
            shared,
            busy,
            cors,
            Layout::Nict(Some("jsont")),
        ),
        _ => webntp(req, rt, peer, shared, busy, cors, Layout::WebNtp),
    }
}

/// How a WebNTP reply is laid out.
enum Layout {
    /// go-webntp's compact object plus `rt`; JSONP as `cb({...});` when asked.
    WebNtp,
    /// NICT's documented object; JSONP as `cb( {...} )`, with this callback unless the query
    /// names one.
    Nict(Option<&'static str>),
}

/// The WebNTP reply to a GET: JSON, or JSONP when a callback is asked for.
fn webntp<H: Head>(
    req: &H,
    rt: Timestamp,
    peer: SocketAddr,
    shared: &Arc<Shared>,
    busy: InFlight,
    cors: &Cors,
    layout: Layout,
) -> Reply {
    let raw_query = req.query().unwrap_or("");
    let query = match parse_query(raw_query) {
        Ok(q) => q,
        Err(e) => {
            shared.stats.rejected(Reject::Query);
            return bad_request(peer, &e.to_string(), busy, cors);
        }
    };
    let callback = match (&query.callback, &layout) {
        (Some(cb), _) => Some(cb.as_str()),
        (None, Layout::Nict(cb)) => *cb,
        (None, Layout::WebNtp) => None,
    };
    shared.stats.request(match (&layout, callback) {
        (Layout::Nict(_), _) => Kind::Nict,
        (Layout::WebNtp, Some(_)) => Kind::Jsonp,
        (Layout::WebNtp, None) => Kind::Json,
    });
    let id = server_id(shared, req);
    let fields = ReplyFields {
        id: &id,
        it: query.it,
        // A bare timestamp in wire form is echoed as sent (the value is the same).
        it_text: Some(raw_query),
        rt,
        leap: shared.leap.info(rt),
    };
    let template = match layout {
        Layout::WebNtp => ReplyTemplate::new(&fields, rt, callback),
        Layout::Nict(_) => nict::reply_template(&fields, rt, callback),
    };
    let content_type = if callback.is_some() {
        &JAVASCRIPT
    } else {
        &JSON
    };
    let mut reply = Reply::new(
        StatusCode::OK,
        ReplyBody::stamped(template, rt, shared.clone(), busy),
    );
    reply.fixed(content_type);
    reply.fixed(&NO_CACHE);
    reply.fixed(&NOSNIFF);
    cors.apply(&mut reply);
    reply
}

fn head(rt: Timestamp, shared: &Arc<Shared>, busy: InFlight, cors: &Cors) -> Reply {
    let now = shared.clock.realtime();
    shared.stats.replied(rt, now);
    let mut reply = Reply::new(StatusCode::NO_CONTENT, ReplyBody::empty(busy));
    let mut stamp = Vec::with_capacity(24);
    now.write_micros(&mut stamp);
    if let Ok(v) = HeaderValue::from_maybe_shared(Bytes::from(stamp)) {
        reply.insert(X_HTTPSTIME.clone(), v);
    }
    reply.fixed(&NO_CACHE);
    reply.fixed(&EXPOSED);
    cors.apply(&mut reply);
    reply
}

fn preflight<H: Head>(req: &H, busy: InFlight, cors: &Cors) -> Reply {
    let mut reply = Reply::new(StatusCode::NO_CONTENT, ReplyBody::empty(busy));
    reply.fixed(&ALLOWED_METHODS);
    if let Some(asked) = req
        .header(&header::ACCESS_CONTROL_REQUEST_HEADERS)
        .and_then(|v| HeaderValue::from_bytes(v).ok())
    {
        reply.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked);
    }
    reply.fixed(&PREFLIGHT_MAX_AGE);
    reply.fixed(&EXPOSED);
    reply.fixed(&NO_CACHE);
    cors.apply(&mut reply);
    reply
}

fn page(html: Vec<u8>, busy: InFlight, cors: &Cors) -> Reply {
    let mut reply = Reply::new(StatusCode::OK, ReplyBody::fixed(html, busy));
    reply.fixed(&HTML);
    reply.fixed(&NO_CACHE);
    cors.apply(&mut reply);
    reply
}
