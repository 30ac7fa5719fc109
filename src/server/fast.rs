//! The plain HTTP/1.x fast path: simple requests answered without hyper.
//!
//! Nearly every request a time server gets is the same: `GET /?<ts>` (or `HEAD`, or a CORS
//! `OPTIONS`) without a body, on a kept-alive connection. For those, hyper's generality costs
//! about as much CPU as the kernel's TCP work (BENCHMARKS.md). This loop parses request heads
//! with httparse (hyper's own parser), routes them through the same [`service::handle`] as
//! every other request (without building an `http::Request` or a `HeaderMap`: routing reads
//! the parsed head through [`Head`]), and writes all replies to a batch of pipelined requests
//! at once. Each
//! reply's `st` is read as the reply is serialized, after its head; with a single request that
//! is immediately before the write, in a pipelined batch a few microseconds before it.
//!
//! A WebSocket handshake (`GET` with `Upgrade: websocket`) is answered here too
//! ([`ws::handshake`]); after a 101 the connection is the WebSocket session's
//! ([`Outcome::WebSocket`]).
//!
//! Anything else hands the connection to hyper, bytes already read included ([`Prefixed`]):
//! a request with a body, `Transfer-Encoding` or `Expect`, another upgrade, another
//! method, a request target that is not a path (absolute-form, `*`) or that `http` refuses,
//! HTTP/2's preface, a head too large (hyper answers 431) or one that does not parse (hyper
//! answers 400). So hyper still decides every case that needs judgement.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::header::HeaderName;
use http::{Method, StatusCode, Version};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

use super::activity::Activity;
use super::body::ReplyBody;
use super::reply::{self, lists, Head};
use super::service;
use super::ws::{self, Handshake};
use super::Shared;

/// Most header lines in a request the fast path takes (hyper's default is 100).
const MAX_HEADERS: usize = 64;

/// How the fast path ended.
pub(crate) enum Outcome {
    /// The connection is finished (closed by the client, `Connection: close`, shutdown).
    Done,
    /// Hand the connection to hyper; these bytes were read and not consumed.
    Fallback(Vec<u8>),
    /// A WebSocket handshake was accepted (101 written): the session starts with these bytes.
    WebSocket(Vec<u8>, ws::Session),
}

/// One simple request, parsed: what routing reads of it.
struct Simple<'h, 'b> {
    method: Method,
    version: Version,
    path: &'b str,
    query: Option<&'b str>,
    headers: &'h [httparse::Header<'b>],
    keep_alive: bool,
    /// A WebSocket handshake (valid or not: [`ws::handshake`] judges).
    upgrade: bool,
}

/// Split an origin-form request target into path and query, if it uses only characters
/// RFC 3986 allows unescaped in a path and query (no fragment, no space, nothing beyond
/// ASCII). Anything else goes to hyper, whose `http::Uri` then decides: for every target
/// accepted here it splits at the first `?` just the same.
pub(crate) fn split_target(target: &str) -> Option<(&str, Option<&str>)> {
    let plain = target.starts_with('/')
        && target
            .bytes()
            .all(|b| reply::is_pchar(b) || b == b'/' || b == b'?');
    if !plain {
        return None;
    }
    Some(match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    })
}

impl Head for Simple<'_, '_> {
    fn method(&self) -> &Method {
        &self.method
    }
    fn version(&self) -> Version {
        self.version
    }
    fn path(&self) -> &str {
        self.path
    }
    fn query(&self) -> Option<&str> {
        self.query
    }
    fn header(&self, name: &HeaderName) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name.as_str()))
            .map(|h| h.value)
    }
    fn header_count(&self, name: &HeaderName) -> usize {
        self.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name.as_str()))
            .count()
    }
    fn lists(&self, name: &HeaderName, token: &str) -> bool {
        self.headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case(name.as_str()) && lists(h.value, token))
    }
    fn authority(&self) -> Option<&str> {
        None
    }
}

/// The request, if it is one the fast path takes.
fn simple<'h, 'b>(req: &'h httparse::Request<'h, 'b>) -> Option<Simple<'h, 'b>> {
    let method = match req.method? {
        "GET" => Method::GET,
        "HEAD" => Method::HEAD,
        "OPTIONS" => Method::OPTIONS,
        _ => return None,
    };
    let version = match req.version? {
        1 => Version::HTTP_11,
        0 => Version::HTTP_10,
        _ => return None,
    };
    let (path, query) = split_target(req.path?)?;
    let mut keep_alive = version == Version::HTTP_11;
    let (mut upgrade, mut connection_upgrade) = (false, false);
    for h in req.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("upgrade") {
            // A WebSocket handshake is answered here; other upgrades (h2c) are hyper's.
            if method == Method::GET && lists(h.value, "websocket") {
                upgrade = true;
                continue;
            }
            return None;
        }
        if ["transfer-encoding", "expect"]
            .iter()
            .any(|n| name.eq_ignore_ascii_case(n))
        {
            // Bodies are hyper's to frame.
            return None;
        }
        if name.eq_ignore_ascii_case("content-length") && h.value.trim_ascii() != b"0" {
            return None;
        }
        if name.eq_ignore_ascii_case("connection") {
            connection_upgrade |= lists(h.value, "upgrade");
            if lists(h.value, "close") {
                keep_alive = false;
            } else if lists(h.value, "keep-alive") {
                keep_alive = true;
            }
        }
    }
    if connection_upgrade && !upgrade {
        // An upgrade to something else (or to nothing named): hyper's.
        return None;
    }
    Some(Simple {
        method,
        version,
        path,
        query,
        headers: req.headers,
        keep_alive,
        upgrade,
    })
}

/// Append the response head for `status` and `headers` to `out`.
fn write_head(
    out: &mut Vec<u8>,
    version: Version,
    status: StatusCode,
    headers: &[reply::Header],
    body_len: usize,
    connection: Option<&'static [u8]>,
) {
    out.extend_from_slice(if version == Version::HTTP_10 {
        b"HTTP/1.0 "
    } else {
        b"HTTP/1.1 "
    });
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for header in headers {
        header.write_line(out);
    }
    // 204, 304 and 1xx carry no body and no length (RFC 9110 8.6).
    if !matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED)
        && !status.is_informational()
    {
        out.extend_from_slice(b"content-length: ");
        crate::wire::timestamp::write_u64(body_len as u64, out);
        out.extend_from_slice(b"\r\n");
    }
    if let Some(c) = connection {
        out.extend_from_slice(b"connection: ");
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// The most bytes of requests the fast path holds at once: the smallest `max_header_bytes`
/// allowed. A head that does not fit goes to hyper, which applies the configured limit (and
/// answers 431 past it).
const SCRATCH_BYTES: usize = super::MIN_HEADER_BYTES;

/// Each runtime thread's buffers for the fast path: requests are read into `input`, replies
/// built in `out`, and the replies' in-flight marks kept in `bodies` until the write. They are
/// borrowed only within one poll (never across an `.await`) and left empty, so an idle
/// connection holds none of them, as nginx's do not: the buffers a connection kept between
/// requests were 2 of its 3.6 KiB (issue 18, BENCHMARKS.md).
struct Scratch {
    input: Vec<u8>,
    out: Vec<u8>,
    bodies: Vec<ReplyBody>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = const {
        RefCell::new(Scratch {
            input: Vec::new(),
            out: Vec::new(),
            bodies: Vec::new(),
        })
    };
}

/// One connection on the fast path, as [`turn`] sees it.
struct Conn<'a, S> {
    io: &'a mut S,
    /// The start of a request head not complete yet: on the heap only while incomplete.
    carry: Vec<u8>,
    peer: SocketAddr,
    shared: &'a Arc<Shared>,
    activity: &'a Arc<Activity>,
}

/// What a [`turn`] leaves to do: replies the socket did not take at once, then what next.
struct Step {
    /// Replies not written yet: usually none (the socket takes them whole), so boxed, out of
    /// the connection's state while it waits.
    unsent: Option<Box<Unsent>>,
    then: Then,
}

struct Unsent {
    bytes: Vec<u8>,
    /// Their in-flight marks, ended once they are written.
    _bodies: Vec<ReplyBody>,
}

enum Then {
    /// Read the next requests.
    Read,
    /// The connection is finished.
    Done,
    /// Hand the connection to hyper with these bytes.
    Fallback(Vec<u8>),
    /// Hand the connection to the WebSocket session with these bytes.
    WebSocket(Vec<u8>, ws::Session),
}

/// Serve simple requests on `io` until the connection ends or needs hyper.
///
/// Not an `async fn`, which would keep its arguments next to the [`Conn`] made of them in
/// every idle connection's task.
pub(crate) fn serve<'a, S>(
    io: &'a mut S,
    peer: SocketAddr,
    shared: &'a Arc<Shared>,
    activity: &'a Arc<Activity>,
) -> impl Future<Output = io::Result<Outcome>> + 'a
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    run(Conn {
        io,
        carry: Vec::new(),
        peer,
        shared,
        activity,
    })
}

async fn run<S>(mut conn: Conn<'_, S>) -> io::Result<Outcome>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // Registered once per connection, not once per read.
    let shared = conn.shared;
    let shutdown = shared.shutdown.cancelled();
    tokio::pin!(shutdown);
    loop {
        let step = tokio::select! {
            r = std::future::poll_fn(|cx| turn(cx, &mut conn)) => r?,
            // Between requests: nothing to finish.
            () = &mut shutdown => return Ok(Outcome::Done),
        };
        if let Some(unsent) = step.unsent {
            conn.io.write_all(&unsent.bytes).await?;
            drop(unsent);
        }
        match step.then {
            Then::Read => {}
            Then::Done => return Ok(Outcome::Done),
            Then::Fallback(read) => return Ok(Outcome::Fallback(read)),
            Then::WebSocket(read, session) => return Ok(Outcome::WebSocket(read, session)),
        }
    }
}

/// Read what has arrived into this thread's [`Scratch`], answer every complete request and
/// write the replies, until the socket has nothing more to read (pending) or something is left
/// for [`serve`] to do. The scratch is left empty whatever happens.
fn turn<S>(cx: &mut Context<'_>, conn: &mut Conn<'_, S>) -> Poll<io::Result<Step>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    SCRATCH.with_borrow_mut(|s| {
        if s.input.len() < SCRATCH_BYTES {
            s.input.resize(SCRATCH_BYTES, 0);
        }
        loop {
            let r = answer(cx, conn, s);
            s.out.clear();
            s.bodies.clear();
            match r {
                Poll::Ready(Ok(Step {
                    then: Then::Read,
                    unsent: None,
                })) => {}
                other => return other,
            }
        }
    })
}

/// One read and its replies (see [`turn`]).
fn answer<S>(
    cx: &mut Context<'_>,
    conn: &mut Conn<'_, S>,
    s: &mut Scratch,
) -> Poll<io::Result<Step>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Conn {
        io,
        carry,
        peer,
        shared,
        activity,
    } = conn;
    let (peer, shared, activity) = (*peer, *shared, *activity);
    let kept = carry.len();
    s.input[..kept].copy_from_slice(carry);
    let mut rb = ReadBuf::new(&mut s.input[kept..]);
    // Pending: nothing more to read now, and `carry` still holds what was.
    ready!(Pin::new(&mut *io).poll_read(cx, &mut rb))?;
    let n = rb.filled().len();
    let done = |then| Poll::Ready(Ok(Step { unsent: None, then }));
    if n == 0 {
        return done(Then::Done);
    }
    let have = kept + n;
    *carry = Vec::new();
    let buf = &s.input[..have];

    let mut start = 0;
    let mut close = false;
    let mut fallback = false;
    let mut upgraded = None;
    while start < have && !close {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        let len = match req.parse(&buf[start..]) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => break,
            Err(_) => {
                fallback = true;
                break;
            }
        };
        let Some(simple) = simple(&req) else {
            fallback = true;
            break;
        };
        let version = simple.version;
        let (mut reply, session) = if simple.upgrade {
            match ws::handshake(&simple, peer, shared, activity) {
                Handshake::Accepted(reply, session) => (reply, Some(session)),
                Handshake::Refused(reply) => (reply, None),
            }
        } else {
            (service::handle(&simple, peer, shared, activity), None)
        };
        let connection: Option<&'static [u8]> = match (version, simple.keep_alive) {
            // A 101 names its own (`Connection: Upgrade`).
            _ if session.is_some() => None,
            (_, false) => Some(b"close"),
            (Version::HTTP_10, true) => Some(b"keep-alive"),
            _ => None,
        };
        let body_len = http_body::Body::size_hint(&reply.body).exact().unwrap_or(0) as usize;
        write_head(
            &mut s.out,
            version,
            reply.status,
            &reply.headers,
            body_len,
            connection,
        );
        // The last moment before the write: `st` is read here. A reply to HEAD has the
        // length of its body but not the body (RFC 9110 9.3.2), errors included.
        if let Some(data) = reply.body.take_data() {
            if simple.method != Method::HEAD {
                s.out.extend_from_slice(&data);
            }
        }
        s.bodies.push(reply.body);
        start += len;
        if session.is_some() {
            // What follows is the WebSocket's.
            upgraded = session;
            break;
        }
        close = !simple.keep_alive;
    }
    if start == 0 && have == SCRATCH_BYTES && !fallback {
        // A head larger than the scratch: hyper reads the rest of it, up to the configured
        // limit (431 past it). The scratch is the smallest limit allowed, so with that limit
        // (the default) hyper's answer is already known: count the refusal here.
        if shared.limits.max_header_bytes <= SCRATCH_BYTES {
            shared.stats.rejected(super::stats::Reject::HeaderTooLarge);
        }
        fallback = true;
    }
    let then = if let Some(session) = upgraded {
        Then::WebSocket(buf[start..].to_vec(), session)
    } else if close {
        Then::Done
    } else if fallback {
        // Not ours to judge.
        Then::Fallback(buf[start..].to_vec())
    } else {
        carry.extend_from_slice(&buf[start..]);
        if !carry.is_empty() {
            // A head begun after complete ones: it has the header timeout too, and it keeps
            // the connection from being parked.
            activity.head_pending();
        }
        Then::Read
    };
    let written = write_now(cx, io, &s.out)?;
    Poll::Ready(Ok(Step {
        unsent: (written < s.out.len()).then(|| {
            Box::new(Unsent {
                bytes: s.out[written..].to_vec(),
                _bodies: std::mem::take(&mut s.bodies),
            })
        }),
        then,
    }))
}

/// Write as much of `out` as the socket takes now; the rest is written by the caller's
/// `.await` (the fast path's and the WebSocket session's).
pub(crate) fn write_now<S: AsyncWrite + Unpin>(
    cx: &mut Context<'_>,
    io: &mut S,
    out: &[u8],
) -> io::Result<usize> {
    let mut written = 0;
    while written < out.len() {
        match Pin::new(&mut *io).poll_write(cx, &out[written..]) {
            Poll::Ready(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
            Poll::Ready(Ok(n)) => written += n,
            Poll::Ready(Err(e)) => return Err(e),
            Poll::Pending => break,
        }
    }
    Ok(written)
}

/// A stream that first yields `prefix`, then reads from `inner`: hands hyper a connection
/// together with the bytes the fast path had already read.
pub(crate) struct Prefixed<T> {
    prefix: Vec<u8>,
    pos: usize,
    inner: T,
}

impl<T> Prefixed<T> {
    pub(crate) fn new(prefix: Vec<u8>, inner: T) -> Self {
        Prefixed {
            prefix,
            pos: 0,
            inner,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Prefixed<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pos < this.prefix.len() {
            let n = (this.prefix.len() - this.pos).min(buf.remaining());
            buf.put_slice(&this.prefix[this.pos..this.pos + n]);
            this.pos += n;
            if this.pos == this.prefix.len() {
                // Read: not kept for the life of the connection (an upgraded WebSocket's).
                this.prefix = Vec::new();
                this.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Prefixed<T> {
    crate::net::observe::forward_writes!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::HeaderValue;
    use tokio::io::AsyncReadExt;

    /// What the fast path decides for `head`: `None` means "hyper's", else keep-alive.
    fn decide(head: &str) -> Option<bool> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(head.as_bytes()) {
            Ok(httparse::Status::Complete(_)) => simple(&req).map(|s| s.keep_alive),
            _ => None,
        }
    }

    #[test]
    fn takes_only_body_less_get_head_options() {
        assert_eq!(decide("GET /?1 HTTP/1.1\r\nHost: h\r\n\r\n"), Some(true));
        assert_eq!(decide("HEAD / HTTP/1.1\r\n\r\n"), Some(true));
        assert_eq!(decide("OPTIONS / HTTP/1.1\r\n\r\n"), Some(true));
        assert_eq!(
            decide("GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
            Some(true)
        );
        for other in ["POST", "PUT", "DELETE", "PATCH", "CONNECT", "TRACE", "get"] {
            assert_eq!(
                decide(&format!("{other} / HTTP/1.1\r\n\r\n")),
                None,
                "{other}"
            );
        }
    }

    #[test]
    fn anything_that_frames_a_body_or_upgrades_goes_to_hyper() {
        for h in [
            "Content-Length: 5",
            "Content-Length: 0, 5",
            "content-length: -1",
            "Transfer-Encoding: chunked",
            "TRANSFER-ENCODING: identity",
            "Expect: 100-continue",
            "Upgrade: h2c",
            "Upgrade: h2c, foo",
            "Connection: keep-alive, Upgrade",
        ] {
            assert_eq!(
                decide(&format!("GET / HTTP/1.1\r\n{h}\r\n\r\n")),
                None,
                "{h}"
            );
        }
        // WebSocket handshakes are answered here, on GET only.
        assert_eq!(
            decide("GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"),
            Some(true)
        );
        assert_eq!(
            decide("GET / HTTP/1.0\r\nUpgrade: WebSocket\r\n\r\n"),
            Some(false)
        );
        assert_eq!(
            decide("POST / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n"),
            None
        );
        assert_eq!(
            decide("HEAD / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n"),
            None
        );
        // A second Content-Length that disagrees with a first "0".
        assert_eq!(
            decide("GET / HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 7\r\n\r\n"),
            None
        );
        // Targets that are not a path: hyper's.
        assert_eq!(decide("GET http://h/?1 HTTP/1.1\r\n\r\n"), None);
        assert_eq!(decide("OPTIONS * HTTP/1.1\r\n\r\n"), None);
        // Not HTTP/1.x, or not parseable: hyper answers (HTTP/2, 400).
        assert_eq!(decide("PRI * HTTP/2.0\r\n\r\n"), None);
        assert_eq!(decide("GET / HTTP/1.1\r\nbad header\r\n\r\n"), None);
    }

    #[test]
    fn targets_split_exactly_as_http_does_or_go_to_hyper() {
        for t in [
            "/",
            "/?1489217288.328757",
            "/cgi-bin/jsont?1489217288.328757&callback=a.b_$c",
            "/a/b?x=1&y=%20z?again",
            "/?",
            "/~user/(x)*+,;=:@!'",
        ] {
            let uri: http::uri::PathAndQuery = t.parse().unwrap();
            assert_eq!(split_target(t), Some((uri.path(), uri.query())), "{t}");
        }
        for t in [
            "*",
            "http://h/?1",
            "/a#frag",
            "/a b",
            "/\"q\"",
            "/{x}",
            "/caf\u{e9}",
            "/a\\b",
            "/^",
            "/`",
            "/|",
            "",
        ] {
            assert_eq!(split_target(t), None, "{t:?}");
        }
    }

    #[test]
    fn keep_alive_follows_the_version_and_connection() {
        assert_eq!(
            decide("GET / HTTP/1.1\r\nConnection: close\r\n\r\n"),
            Some(false)
        );
        assert_eq!(
            decide("GET / HTTP/1.1\r\nConnection: Close\r\n\r\n"),
            Some(false)
        );
        assert_eq!(decide("GET / HTTP/1.0\r\n\r\n"), Some(false));
        assert_eq!(
            decide("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"),
            Some(true)
        );
    }

    #[test]
    fn heads_carry_status_length_and_connection() {
        let mut out = Vec::new();
        let h = [reply::Header::Dynamic(
            HeaderName::from_static("x-a"),
            HeaderValue::from_static("1"),
        )];
        write_head(&mut out, Version::HTTP_11, StatusCode::OK, &h, 12, None);
        assert_eq!(
            out,
            b"HTTP/1.1 200 OK\r\nx-a: 1\r\ncontent-length: 12\r\n\r\n"
        );
        out.clear();
        write_head(
            &mut out,
            Version::HTTP_10,
            StatusCode::NO_CONTENT,
            &h,
            0,
            Some(b"close"),
        );
        assert_eq!(
            out,
            b"HTTP/1.0 204 No Content\r\nx-a: 1\r\nconnection: close\r\n\r\n"
        );
    }

    #[tokio::test]
    async fn prefixed_replays_then_reads_on() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut p = Prefixed::new(b"GET /".to_vec(), a);
        b.write_all(b" HTTP/1.1").await.unwrap();
        drop(b);
        let mut all = String::new();
        p.read_to_string(&mut all).await.unwrap();
        assert_eq!(all, "GET / HTTP/1.1");
    }
}
