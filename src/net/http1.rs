//! One bounded HTTP/1.1 request: send it on an open connection (kept for the next), read the
//! response head and the whole body up to a limit, and say in the cause's words what went
//! wrong. The WebNTP client's HTTP transports and the leap-seconds refresh both use it; the
//! caller bounds the time.

use bytes::{Bytes, BytesMut};
use http::header::CONTENT_LENGTH;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

use super::Io;

/// An HTTP/1.1 connection; its driver task ends when this is dropped.
pub struct Http1 {
    sender: SendRequest<Empty<Bytes>>,
    driver: tokio::task::JoinHandle<()>,
}

impl Drop for Http1 {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// A response with its whole body.
#[derive(Debug)]
pub struct Response {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body, at most the limit asked for.
    pub body: Bytes,
}

/// Why a request got no whole response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Http1Error {
    /// The server closed the connection before or while replying.
    #[error("the server closed the connection {0}")]
    Closed(&'static str),
    /// The body is (or says it will be) larger than the limit.
    #[error("reply body larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// Anything else HTTP-level, with its innermost cause.
    #[error("{0}")]
    Http(String),
}

impl Http1 {
    /// Speak HTTP/1.1 on `io`.
    pub async fn handshake(io: Box<dyn Io>) -> Result<Self, Http1Error> {
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| error("handshake", &e))?;
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Http1 { sender, driver })
    }

    /// Whether the connection is gone (the server closed it since).
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    /// Wait until a request can be sent now: the moment to take a send timestamp.
    pub async fn ready(&mut self) -> Result<(), Http1Error> {
        self.sender
            .ready()
            .await
            .map_err(|_| Http1Error::Closed("before the request was sent"))
    }

    /// Send `req` and read the response, its body bounded by `max_body` bytes (refused at
    /// once when its `Content-Length` says more).
    pub async fn request(
        &mut self,
        req: Request<Empty<Bytes>>,
        max_body: usize,
    ) -> Result<Response, Http1Error> {
        let resp = self
            .sender
            .send_request(req)
            .await
            .map_err(|e| error("request", &e))?;
        let (parts, mut body) = resp.into_parts();
        let declared = parts
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > max_body as u64) {
            return Err(Http1Error::TooLarge { limit: max_body });
        }
        let capacity = declared.map_or(512, |n| usize::try_from(n).unwrap_or(max_body));
        let mut bytes = BytesMut::with_capacity(capacity.min(max_body));
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| error("reading the reply's body", &e))?;
            if let Ok(data) = frame.into_data() {
                if bytes.len() + data.len() > max_body {
                    return Err(Http1Error::TooLarge { limit: max_body });
                }
                bytes.extend_from_slice(&data);
            }
        }
        Ok(Response {
            status: parts.status,
            headers: parts.headers,
            body: bytes.freeze(),
        })
    }
}

/// What a hyper error means, in the words of the cause rather than hyper's: a connection
/// closed before or during the reply is [`Http1Error::Closed`], anything else names its
/// innermost cause.
fn error(during: &str, e: &hyper::Error) -> Http1Error {
    let mut cause = String::new();
    let mut inner: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(err) = inner {
        cause = err.to_string();
        inner = err.source();
    }
    if e.is_incomplete_message() || e.is_closed() || e.is_canceled() {
        return Http1Error::Closed("before it finished replying");
    }
    if cause.contains("end of file before message length reached") {
        return Http1Error::Closed(
            "in the middle of the reply's body (shorter than its Content-Length)",
        );
    }
    if cause.is_empty() {
        Http1Error::Http(format!("{during}: {e}"))
    } else {
        Http1Error::Http(format!("{during}: {e}: {cause}"))
    }
}
