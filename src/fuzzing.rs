//! Entry points for the fuzz targets in `fuzz/` (see fuzz/README.md): thin wrappers that
//! reach code the public API does not expose. Not an API: anything here may change.

use crate::wire::TimestampError;

/// The timestamp parser's two paths on the same input: the 64-bit fast path (`None` when it
/// does not take the input) and the general parser, which must agree wherever both answer.
pub fn timestamp_parsers(text: &[u8]) -> (Option<i128>, Result<i128, TimestampError>) {
    (
        crate::wire::timestamp::parse_plain(text),
        crate::wire::timestamp::parse_general(text),
    )
}

/// A WebNTP server without sockets, on a clock that stands still: routes single requests
/// ([`Server::handle`]) and serves whole connections on in-memory streams, through the fast
/// path ([`Server::serve_fast`]) or hyper with WebSocket upgrades ([`Server::serve_http`]).
pub struct Server {
    clock: std::sync::Arc<crate::clock::ManualClock>,
    leap: std::sync::Arc<crate::leap::LeapStore>,
    server_id: Option<String>,
}

/// A response as the server made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header names (lower case) and values, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body; a WebNTP reply is stamped with the clock's time as it is taken.
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }
}

/// The peer every in-memory connection claims to come from.
const PEER: std::net::SocketAddr =
    std::net::SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 1);

impl Server {
    /// A server whose clock reads `now`, reporting leap seconds from `leap`, with the
    /// configured `server_id` (else the Host header) and the default limits and origin policy.
    pub fn new(
        now: crate::sync::Timestamp,
        leap: std::sync::Arc<crate::leap::LeapStore>,
        server_id: Option<String>,
    ) -> Server {
        Server {
            clock: std::sync::Arc::new(crate::clock::ManualClock::new(now)),
            leap,
            server_id,
        }
    }

    /// The server's clock (to move it between requests).
    pub fn clock(&self) -> &crate::clock::ManualClock {
        &self.clock
    }

    /// State for one connection's worth of serving; fresh each time, so that waiting for its
    /// tasks waits for this connection's only.
    fn shared(&self) -> std::sync::Arc<crate::server::Shared> {
        std::sync::Arc::new(crate::server::Shared {
            clock: self.clock.clone(),
            leap: self.leap.clone(),
            server_id: self.server_id.clone(),
            origins: crate::server::OriginPolicy::Any,
            limits: crate::server::Limits::default(),
            page: None,
            shutdown: tokio_util::sync::CancellationToken::new(),
            tasks: tokio_util::task::TaskTracker::new(),
            stats: std::sync::Arc::default(),
            park: None,
        })
    }

    /// A connection's activity record, holding a slot of a one-connection limit.
    fn activity() -> std::io::Result<std::sync::Arc<crate::server::activity::Activity>> {
        let slot = crate::server::slots::Slots::new(1, 1)
            .try_take()
            .ok_or_else(|| std::io::Error::other("no free connection slot"))?;
        Ok(std::sync::Arc::new(crate::server::activity::Activity::new(
            slot,
            std::sync::Arc::default(),
            false,
        )))
    }

    /// Route one plain HTTP request (not a WebSocket upgrade) as every connection does, and
    /// take its body at once.
    pub fn handle(&self, req: &http::Request<()>) -> std::io::Result<Response> {
        let shared = self.shared();
        let reply = crate::server::service::handle(req, PEER, &shared, &Self::activity()?);
        let resp = reply.into_response();
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
            .collect();
        let body = resp
            .into_body()
            .take_data()
            .map_or_else(Vec::new, |b| b.to_vec());
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    /// Serve a plain connection on `io` with the fast path, as a real connection starts (and
    /// a WebSocket session after a handshake it accepts): `None` when it ended there, else the
    /// bytes it read and hands to hyper.
    pub async fn serve_fast<S>(&self, io: &mut S) -> std::io::Result<Option<Vec<u8>>>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
    {
        use crate::server::fast::Outcome;
        let shared = self.shared();
        let activity = Self::activity()?;
        match crate::server::fast::serve(io, PEER, &shared, &activity).await? {
            Outcome::Done => Ok(None),
            Outcome::Fallback(read) => Ok(Some(read)),
            Outcome::WebSocket(early, session) => {
                let client = crate::server::ws::session::Client {
                    peer: PEER,
                    activity,
                    shared,
                    session,
                };
                crate::server::ws::session::run(io, early, &client, false).await;
                Ok(None)
            }
        }
    }

    /// Serve a connection on `io` with hyper (HTTP/1.1, HTTP/2, WebSocket upgrades), and wait
    /// until every WebSocket session it started has ended.
    pub async fn serve_http<S>(&self, io: S) -> std::io::Result<()>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let shared = self.shared();
        crate::server::conn::serve_http(io, PEER, Self::activity()?, shared.clone()).await;
        shared.tasks.close();
        shared.tasks.wait().await;
        Ok(())
    }
}

/// The fast path's split of a request target into path and query; `None` where it leaves
/// the request to hyper.
pub fn fast_split_target(target: &str) -> Option<(&str, Option<&str>)> {
    crate::server::fast::split_target(target)
}

/// The values the SHM writer stores for `sample`, by their `struct shmTime` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShmFields {
    /// `clockTimeStampSec`.
    pub clock_sec: i64,
    /// `clockTimeStampUSec`.
    pub clock_usec: i64,
    /// `clockTimeStampNSec`.
    pub clock_nsec: u64,
    /// `receiveTimeStampSec`.
    pub receive_sec: i64,
    /// `receiveTimeStampUSec`.
    pub receive_usec: i64,
    /// `receiveTimeStampNSec`.
    pub receive_nsec: u64,
    /// `leap`.
    pub leap: i64,
    /// `precision`.
    pub precision: i64,
}

/// What [`crate::refclock::ShmWriter::write`] stores for `sample`, without a segment.
// `time_t` is `i64` here, `i32` on 32-bit targets.
#[allow(clippy::useless_conversion)]
pub fn shm_fields(sample: &crate::sync::refsample::RefSample) -> ShmFields {
    let f = crate::refclock::shm::Fields::of(sample);
    ShmFields {
        clock_sec: f.clock_sec.into(),
        clock_usec: f.clock_usec.into(),
        clock_nsec: f.clock_nsec.into(),
        receive_sec: f.receive_sec.into(),
        receive_usec: f.receive_usec.into(),
        receive_nsec: f.receive_nsec.into(),
        leap: f.leap.into(),
        precision: f.precision.into(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::leap::LeapStore;
    use crate::sync::Timestamp;
    use crate::wire::reply::parse_reply;

    const NOW: Timestamp = Timestamp::from_nanos(1_795_270_670_615_087_123);

    fn server() -> Server {
        Server::new(NOW, Arc::new(LeapStore::empty()), None)
    }

    #[test]
    fn handle_routes_like_a_connection() {
        let req = http::Request::get("/?1489217288.328757")
            .header("host", "h")
            .body(())
            .unwrap();
        let resp = server().handle(&req).unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(
            resp.header("content-type"),
            Some(&b"application/json; charset=utf-8"[..])
        );
        let r = parse_reply(&resp.body).unwrap();
        assert_eq!(r.st.to_micros_string(), "1795270670.615087");
        assert_eq!(r.id.as_deref(), Some("h"));
        let req = http::Request::get("/?NaN").body(()).unwrap();
        assert_eq!(server().handle(&req).unwrap().status, 400);
    }

    #[tokio::test]
    async fn serve_fast_answers_then_hands_the_rest_to_hyper() {
        let (mut client, mut conn) = tokio::io::duplex(1 << 16);
        let input = b"GET /?1 HTTP/1.1\r\nHost: h\r\n\r\nPOST / HTTP/1.1\r\n\r\n";
        client.write_all(input).await.unwrap();
        client.shutdown().await.unwrap();
        let handed = server().serve_fast(&mut conn).await.unwrap();
        assert_eq!(handed.as_deref(), Some(&b"POST / HTTP/1.1\r\n\r\n"[..]));
        drop(conn);
        let mut out = String::new();
        client.read_to_string(&mut out).await.unwrap();
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(out.contains("\"it\":1.000000,"), "{out}");
    }

    #[tokio::test]
    async fn serve_http_runs_a_websocket_session_to_its_end() {
        let (mut client, conn) = tokio::io::duplex(1 << 16);
        let server = server();
        let serve = server.serve_http(conn);
        let talk = async {
            client
                .write_all(
                    b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                      Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
                )
                .await
                .unwrap();
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                let mut b = [0u8; 1];
                client.read_exact(&mut b).await.unwrap();
                head.push(b[0]);
            }
            assert!(head.starts_with(b"HTTP/1.1 101 "));
            // One masked text frame, "1.5".
            let key = [1u8, 2, 3, 4];
            let mut frame = vec![0x81, 0x80 | 3];
            frame.extend_from_slice(&key);
            frame.extend(b"1.5".iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
            client.write_all(&frame).await.unwrap();
            client.shutdown().await.unwrap();
            let mut out = Vec::new();
            client.read_to_end(&mut out).await.unwrap();
            out
        };
        let (served, out) = tokio::join!(serve, talk);
        served.unwrap();
        assert_eq!(out[0], 0x81, "a text reply first: {out:?}");
        // A reply is 126 to 65535 bytes: a 16-bit length.
        assert_eq!(out[1], 126);
        let len = usize::from(u16::from_be_bytes([out[2], out[3]]));
        let r = parse_reply(&out[4..4 + len]).unwrap();
        assert_eq!(r.it.as_nanos(), 1_500_000_000);
    }

    #[test]
    fn shm_fields_split_receive_and_clock() {
        let s = crate::sync::refsample::RefSample {
            receive: Timestamp::from_nanos(1_795_270_670_999_999_999),
            offset_ns: 2,
            leap: crate::sync::leap::Leap::NoWarning,
            precision: -20,
        };
        let f = shm_fields(&s);
        assert_eq!(
            (f.receive_sec, f.receive_usec, f.receive_nsec),
            (1_795_270_670, 999_999, 999_999_999)
        );
        assert_eq!(
            (f.clock_sec, f.clock_usec, f.clock_nsec),
            (1_795_270_671, 0, 1)
        );
        assert_eq!(fast_split_target("/a?b?c"), Some(("/a", Some("b?c"))));
    }
}
