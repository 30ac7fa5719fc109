//! What every answer is made of, whoever routes it: header constants rendered once for the
//! fast path ([`Fixed`]), the request as routing reads it ([`Head`], for hyper's requests and
//! the fast path's), the reply before encoding ([`Reply`]), CORS ([`Cors`]), the `Date`
//! header from the server's clock, the RFC 9112 `Host` rule, and error replies. Routing
//! (`service`), the WebSocket handshake (`ws`) and the clock page (`page`) build on it.

use std::borrow::Cow;
use std::net::SocketAddr;

use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};

use super::activity::InFlight;
use super::body::ReplyBody;
use super::{OriginPolicy, Shared};
use crate::sync::Timestamp;
use crate::wire::reply::error_body;
use crate::wire::HTTPSTIME_HEADER;

/// A header whose name and value never change, with its HTTP/1 line rendered at compile
/// time, so the fast path writes it with one copy.
pub(crate) struct Fixed {
    pub(crate) name: HeaderName,
    pub(crate) value: HeaderValue,
    pub(crate) line: &'static [u8],
}

macro_rules! fixed {
    ($name:literal, $value:literal) => {
        Fixed {
            name: HeaderName::from_static($name),
            value: HeaderValue::from_static($value),
            line: concat!($name, ": ", $value, "\r\n").as_bytes(),
        }
    };
}
pub(crate) use fixed;

pub(crate) static NO_CACHE: Fixed = fixed!("cache-control", "no-cache, no-store");
pub(crate) static JSON: Fixed = fixed!("content-type", "application/json; charset=utf-8");
pub(crate) static JAVASCRIPT: Fixed =
    fixed!("content-type", "application/javascript; charset=utf-8");
pub(crate) static HTML: Fixed = fixed!("content-type", "text/html; charset=utf-8");
pub(crate) static NOSNIFF: Fixed = fixed!("x-content-type-options", "nosniff");
pub(crate) static ANY_ORIGIN: Fixed = fixed!("access-control-allow-origin", "*");
pub(crate) static ALLOW: Fixed = fixed!("allow", "GET, HEAD, OPTIONS");
pub(crate) static ALLOWED_METHODS: Fixed =
    fixed!("access-control-allow-methods", "GET, HEAD, OPTIONS");
pub(crate) static EXPOSED: Fixed = fixed!("access-control-expose-headers", "X-HTTPSTIME, Date");
pub(crate) static PREFLIGHT_MAX_AGE: Fixed = fixed!("access-control-max-age", "86400");
pub(crate) static VARY_ORIGIN: Fixed = fixed!("vary", "Origin");
pub(crate) static X_HTTPSTIME: HeaderName = HeaderName::from_static(HTTPSTIME_HEADER);

/// What routing needs to know of a request. Implemented for hyper's [`Request`] and for the
/// fast path's parsed head, so both answer through the same code.
pub(crate) trait Head {
    fn method(&self) -> &Method;
    fn version(&self) -> Version;
    fn path(&self) -> &str;
    fn query(&self) -> Option<&str>;
    /// The first value of header `name`.
    fn header(&self, name: &HeaderName) -> Option<&[u8]>;
    /// How many times header `name` appears.
    fn header_count(&self, name: &HeaderName) -> usize;
    /// Whether any header `name` (a comma-separated list) lists `token`, ignoring case.
    fn lists(&self, name: &HeaderName, token: &str) -> bool;
    /// The authority of the request target (HTTP/2's `:authority`), if it has one.
    fn authority(&self) -> Option<&str>;
}

impl<B> Head for Request<B> {
    fn method(&self) -> &Method {
        self.method()
    }
    fn version(&self) -> Version {
        self.version()
    }
    fn path(&self) -> &str {
        self.uri().path()
    }
    fn query(&self) -> Option<&str> {
        self.uri().query()
    }
    fn header(&self, name: &HeaderName) -> Option<&[u8]> {
        self.headers().get(name).map(HeaderValue::as_bytes)
    }
    fn header_count(&self, name: &HeaderName) -> usize {
        self.headers().get_all(name).iter().count()
    }
    fn lists(&self, name: &HeaderName, token: &str) -> bool {
        self.headers()
            .get_all(name)
            .iter()
            .any(|v| lists(v.as_bytes(), token))
    }
    fn authority(&self) -> Option<&str> {
        self.uri().authority().map(|a| a.as_str())
    }
}

/// One header of a [`Reply`].
pub(crate) enum Header {
    Fixed(&'static Fixed),
    Dynamic(HeaderName, HeaderValue),
}

impl Header {
    /// Append the header's HTTP/1 line to `out`.
    pub(crate) fn write_line(&self, out: &mut Vec<u8>) {
        match self {
            Header::Fixed(f) => out.extend_from_slice(f.line),
            Header::Dynamic(name, value) => {
                out.extend_from_slice(name.as_str().as_bytes());
                out.extend_from_slice(b": ");
                out.extend_from_slice(value.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
        }
    }

    fn into_pair(self) -> (HeaderName, HeaderValue) {
        match self {
            Header::Fixed(f) => (f.name.clone(), f.value.clone()),
            Header::Dynamic(name, value) => (name, value),
        }
    }
}

/// A response before it is encoded: by hyper ([`Reply::into_response`]) or by the fast path.
/// Headers are kept in a plain list in the order they were added; routing never adds one
/// name twice.
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: Vec<Header>,
    pub(crate) body: ReplyBody,
}

impl Reply {
    pub(crate) fn new(status: StatusCode, body: ReplyBody) -> Self {
        Reply {
            status,
            headers: Vec::with_capacity(8),
            body,
        }
    }

    pub(crate) fn insert(&mut self, name: HeaderName, value: HeaderValue) {
        self.headers.push(Header::Dynamic(name, value));
    }

    pub(crate) fn fixed(&mut self, header: &'static Fixed) {
        self.headers.push(Header::Fixed(header));
    }

    /// The reply as hyper's response.
    pub(crate) fn into_response(self) -> Response<ReplyBody> {
        let mut resp = Response::new(self.body);
        *resp.status_mut() = self.status;
        let h = resp.headers_mut();
        h.reserve(self.headers.len());
        for header in self.headers {
            let (name, value) = header.into_pair();
            h.insert(name, value);
        }
        resp
    }
}

/// The CORS answer for one request, from the server's policy and the request's `Origin`.
pub(crate) struct Cors {
    allow: Option<Header>,
    vary: bool,
}

impl Cors {
    /// The answer to `req` (whose `Origin` header is read only for an allow-list).
    pub(crate) fn new<H: Head>(policy: &OriginPolicy, req: &H) -> Self {
        match policy {
            OriginPolicy::Any => Cors {
                allow: Some(Header::Fixed(&ANY_ORIGIN)),
                vary: false,
            },
            OriginPolicy::List(_) => Cors {
                allow: req
                    .header(&header::ORIGIN)
                    .filter(|o| std::str::from_utf8(o).is_ok_and(|o| policy.allows(o)))
                    .and_then(|o| HeaderValue::from_bytes(o).ok())
                    .map(|v| Header::Dynamic(header::ACCESS_CONTROL_ALLOW_ORIGIN, v)),
                vary: true,
            },
        }
    }

    pub(crate) fn apply(&self, reply: &mut Reply) {
        match &self.allow {
            Some(Header::Fixed(f)) => reply.fixed(f),
            Some(Header::Dynamic(name, value)) => reply.insert(name.clone(), value.clone()),
            None => {}
        }
        if self.vary {
            reply.fixed(&VARY_ORIGIN);
        }
    }
}

/// The `Date` header for `now`, from the server's own clock (not the system's, as hyper's
/// would be), so Date-header clients of a shifted test server see the shift too. Formatted
/// once per second per thread.
pub(crate) fn date_header(now: Timestamp) -> HeaderValue {
    thread_local! {
        static CACHE: std::cell::RefCell<(i64, HeaderValue)> =
            const { std::cell::RefCell::new((i64::MIN, HeaderValue::from_static(""))) };
    }
    let secs = now.unix_seconds();
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != secs {
            let when = u64::try_from(secs)
                .ok()
                .and_then(|s| std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_secs(s)))
                .unwrap_or(std::time::UNIX_EPOCH);
            let text = httpdate::fmt_http_date(when);
            if let Ok(v) = HeaderValue::from_str(&text) {
                *c = (secs, v);
            }
        }
        c.1.clone()
    })
}

/// Whether a header value lists `token` (comma-separated, case-insensitive).
pub(crate) fn lists(value: &[u8], token: &str) -> bool {
    value
        .split(|b| *b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// RFC 9112 section 3.2: an HTTP/1.1 request needs a `Host` header; no request may have
/// more than one, or one whose value is not a host with an optional port (the characters
/// of RFC 3986's `host [":" port]`, the set Go's net/http accepts). HTTP/1.0 may omit it;
/// HTTP/2 names its authority in `:authority` and may omit it too.
pub(crate) fn check_host<H: Head>(req: &H) -> Result<(), &'static str> {
    match req.header_count(&header::HOST) {
        0 if req.version() == Version::HTTP_11 => Err(
            "HTTP/1.1 request without a Host header (RFC 9112 section 3.2); send Host: NAME[:PORT]",
        ),
        0 => Ok(()),
        1 => match req.header(&header::HOST) {
            Some(host) if !host.iter().all(|b| is_host_byte(*b)) => Err(
                "invalid Host header: a host name or [IPv6] address with an optional :PORT \
                 (letters, digits and -._~%!$&'()*+,;=:[])",
            ),
            _ => Ok(()),
        },
        _ => Err("more than one Host header (RFC 9112 section 3.2)"),
    }
}

/// A byte that may appear in a `Host` value: [`is_pchar`] but `@`, plus `[]` of IPv6
/// literals.
fn is_host_byte(b: u8) -> bool {
    (is_pchar(b) && b != b'@') || b == b'[' || b == b']'
}

/// RFC 3986's `pchar` byte by byte: unreserved, sub-delims, `%` of pct-encoding, `:` and `@`.
pub(crate) fn is_pchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'%'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
        )
}

/// The `id` of a reply: the configured server id, else the Host header (HTTP/1.1) or the
/// `:authority` (HTTP/2), else empty, as go-webntp.
pub(crate) fn server_id<'a, H: Head>(shared: &'a Shared, req: &'a H) -> Cow<'a, str> {
    if let Some(id) = &shared.server_id {
        return Cow::Borrowed(id);
    }
    if let Some(host) = req.header(&header::HOST) {
        return String::from_utf8_lossy(host);
    }
    Cow::Borrowed(req.authority().unwrap_or(""))
}

pub(crate) fn bad_request(peer: SocketAddr, reason: &str, busy: InFlight, cors: &Cors) -> Reply {
    tracing::debug!(target: "webntpd::server", "{peer}: 400: {reason}");
    error(StatusCode::BAD_REQUEST, reason, busy, cors)
}

/// An error response with a short JSON body `{"error":"..."}`.
pub(crate) fn error(status: StatusCode, message: &str, busy: InFlight, cors: &Cors) -> Reply {
    let mut reply = Reply::new(status, ReplyBody::fixed(error_body(message), busy));
    reply.fixed(&JSON);
    reply.fixed(&NO_CACHE);
    reply.fixed(&NOSNIFF);
    cors.apply(&mut reply);
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(version: Version, hosts: &[&[u8]]) -> Request<()> {
        let mut b = Request::get("/").version(version);
        for h in hosts {
            b = b.header(header::HOST, HeaderValue::from_bytes(h).unwrap());
        }
        b.body(()).unwrap()
    }

    #[test]
    fn http11_needs_exactly_one_valid_host() {
        for ok in [
            &b"time.example.org"[..],
            b"127.0.0.1:8080",
            b"[::1]:8080",
            b"[fe80::1%25eth0]",
            b"under_score.example",
            b"",
        ] {
            assert_eq!(check_host(&req(Version::HTTP_11, &[ok])), Ok(()), "{ok:?}");
        }
        assert!(
            check_host(&req(Version::HTTP_11, &[])).is_err_and(|e| e.contains("without a Host"))
        );
        assert!(check_host(&req(Version::HTTP_11, &[b"a", b"a"]))
            .is_err_and(|e| e.contains("more than one")));
        for bad in [
            &b"evil\"<script>"[..],
            b"a b",
            b"user@host",
            b"host/path",
            b"\xff\xfe",
            b"h\tx",
        ] {
            assert!(
                check_host(&req(Version::HTTP_11, &[bad])).is_err_and(|e| e.contains("invalid")),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn http10_and_http2_may_omit_host_but_not_repeat_it() {
        for v in [Version::HTTP_10, Version::HTTP_2] {
            assert_eq!(check_host(&req(v, &[])), Ok(()), "{v:?}");
            assert!(check_host(&req(v, &[b"a", b"b"])).is_err(), "{v:?}");
        }
    }
}
