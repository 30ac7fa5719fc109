//! HTTP transports: the WebNTP JSON reply (`GET url?<t1>`), Time over HTTPS
//! (`HEAD /.well-known/time`, `X-HTTPSTIME`) and the `Date:` header of any web server
//! (`HEAD url`), over one kept-alive HTTP/1.1 connection.
//!
//! Each is a small type over one [`Kept`] connection, which is reused across a burst: when the
//! server has closed it (keep-alive timeout, restart), the next request opens a new one,
//! warming it up first, and a request that found it closed just then is sent once more.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request};
use http_body_util::Empty;

use super::date::{parse_date_header, DateError, DateProbe, DateProber, ProbeFuture};
use super::{
    bounded, connect_bounded, exchange_from, request_stamp, ClientError, ClientOptions, Reply,
    Transport,
};
use crate::clock::SharedClock;
use crate::net::connect::Target;
use crate::net::http1::Http1;
use crate::net::open_stamped;
use crate::net::stamp::Stamps;
use crate::sync::Timestamp;
use crate::wire::reply::parse_reply;
use crate::wire::HTTPSTIME_HEADER;

/// What one kind of HTTP exchange sends.
#[derive(Debug, Clone, Copy)]
struct Ask {
    /// `HEAD`, not `GET`.
    head: bool,
    /// Time over HTTPS: `/` means `/.well-known/time`.
    well_known: bool,
    /// Ask for JSON and append `?<t1>` (`&<t1>` after a query).
    json: bool,
}

const JSON: Ask = Ask {
    head: false,
    well_known: false,
    json: true,
};
const TOH: Ask = Ask {
    head: true,
    well_known: true,
    json: false,
};
const DATE: Ask = Ask {
    head: true,
    well_known: false,
    json: false,
};

struct Conn {
    http: Http1,
    stamps: Arc<Stamps>,
}

/// One server's kept-alive, timestamped HTTP/1.1 connection.
pub(crate) struct Kept {
    target: Target,
    opts: ClientOptions,
    clock: SharedClock,
    conn: Option<Conn>,
    user_agent: HeaderValue,
}

impl Kept {
    pub(crate) fn new(target: Target, opts: ClientOptions, clock: SharedClock) -> Self {
        Kept {
            target,
            opts,
            clock,
            conn: None,
            user_agent: HeaderValue::from_static(concat!("webntpd/", env!("CARGO_PKG_VERSION"))),
        }
    }

    async fn connect(&self) -> Result<Conn, ClientError> {
        let (io, stamps) = open_stamped(&self.target, &self.opts.connect, &self.clock).await?;
        let http = Http1::handshake(io).await?;
        Ok(Conn { http, stamps })
    }

    /// The request target: the URL's path and query (`/.well-known/time` for Time over HTTPS
    /// when the URL names none), plus the client's timestamp when one is sent.
    fn path(&self, ask: Ask, sent: Option<Timestamp>) -> String {
        let p = &self.target.path_and_query;
        match sent {
            _ if ask.well_known && (p == "/" || p.is_empty()) => "/.well-known/time".to_string(),
            Some(t) => {
                let sep = if p.contains('?') { '&' } else { '?' };
                format!("{p}{sep}{t}")
            }
            None => p.clone(),
        }
    }

    /// Send one request on an open connection and read the whole reply, with the edges.
    async fn raw(
        &self,
        conn: &mut Conn,
        ask: Ask,
        sent: Option<Timestamp>,
    ) -> Result<Raw, ClientError> {
        let mut req = Request::new(Empty::<Bytes>::new());
        *req.method_mut() = if ask.head { Method::HEAD } else { Method::GET };
        *req.uri_mut() = self
            .path(ask, sent)
            .parse()
            .map_err(|e| ClientError::Http(format!("request target: {e}")))?;
        let h = req.headers_mut();
        if let Ok(host) = HeaderValue::from_str(&self.target.authority()) {
            h.insert(header::HOST, host);
        }
        h.insert(header::USER_AGENT, self.user_agent.clone());
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        if ask.json {
            h.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        }
        let limit = self.opts.max_body;
        let work = async {
            conn.http.ready().await?;
            conn.stamps.arm();
            Ok::<_, ClientError>(conn.http.request(req, limit).await?)
        };
        let resp = bounded("exchange", self.opts.sample_timeout, work).await?;
        Ok(Raw {
            status: resp.status,
            headers: resp.headers,
            body: resp.body,
            edges: conn.stamps.take(),
        })
    }

    /// The kept connection, or a new one, warmed up with an unused request of the same kind.
    async fn conn(&mut self, ask: Ask) -> Result<Conn, ClientError> {
        if let Some(conn) = self.conn.take() {
            if !conn.http.is_closed() {
                return Ok(conn);
            }
        }
        let mut conn = connect_bounded(&self.opts, self.connect()).await?;
        // Warm-up (see the module comment of `client`).
        self.raw(&mut conn, ask, None).await?;
        Ok(conn)
    }

    /// Send one request of kind `ask` (with the client's timestamp when it is JSON) and read
    /// its reply with `read`.
    async fn once<T>(
        &self,
        conn: &mut Conn,
        ask: Ask,
        read: &impl Fn(Option<Timestamp>, Raw) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        let sent = ask.json.then(|| request_stamp(&self.clock));
        let raw = self.raw(conn, ask, sent).await?;
        read(sent, raw)
    }

    /// One request of kind `ask` (with the client's timestamp when it is JSON), its reply
    /// read by `read`; the connection kept for the next. A kept connection the server closed
    /// just now gets one fresh try.
    async fn request<T>(
        &mut self,
        ask: Ask,
        read: impl Fn(Option<Timestamp>, Raw) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        let reused = self.conn.as_ref().is_some_and(|c| !c.http.is_closed());
        let mut conn = self.conn(ask).await?;
        let result = match self.once(&mut conn, ask, &read).await {
            Err(ClientError::Closed(_) | ClientError::Http(_))
                if reused && conn.http.is_closed() =>
            {
                tracing::debug!(
                    "{}: kept connection closed; reconnecting",
                    self.target.authority()
                );
                drop(conn);
                conn = self.conn(ask).await?;
                self.once(&mut conn, ask, &read).await
            }
            other => other,
        };
        if result.is_ok() {
            self.conn = Some(conn);
        }
        result
    }
}

/// A reply as it came, before interpretation.
struct Raw {
    status: http::StatusCode,
    headers: http::HeaderMap,
    body: Bytes,
    edges: Option<(crate::net::stamp::Edge, crate::net::stamp::Edge)>,
}

/// A WebNTP server's JSON reply: `GET url?<t1>`.
pub(crate) struct JsonTransport(pub(crate) Kept);

impl Transport for JsonTransport {
    async fn exchange(&mut self) -> Result<Reply, ClientError> {
        self.0
            .request(JSON, |sent, raw| {
                if raw.status != http::StatusCode::OK {
                    return Err(ClientError::Status {
                        status: raw.status.as_u16(),
                    });
                }
                let reply = parse_reply(&raw.body)?;
                let exchange = exchange_from(sent, raw.edges, Some(reply.it), reply.rt, reply.st)?;
                Ok(Reply {
                    exchange,
                    leap: reply.leap,
                })
            })
            .await
    }
}

/// Time over HTTPS: `HEAD /.well-known/time`, the server's time in `X-HTTPSTIME`.
pub(crate) struct TohTransport(pub(crate) Kept);

impl Transport for TohTransport {
    async fn exchange(&mut self) -> Result<Reply, ClientError> {
        self.0
            .request(TOH, |_, raw| {
                if !raw.status.is_success() {
                    return Err(ClientError::Status {
                        status: raw.status.as_u16(),
                    });
                }
                let value = raw
                    .headers
                    .get(HTTPSTIME_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .ok_or(ClientError::NoHttpsTime)?;
                let st = Timestamp::parse(value.trim()).map_err(|reason| {
                    ClientError::Reply(crate::wire::reply::ReplyError::Timestamp {
                        field: "X-HTTPSTIME",
                        text: value.chars().take(64).collect(),
                        reason,
                    })
                })?;
                let exchange = exchange_from(None, raw.edges, None, None, st)?;
                Ok(Reply {
                    exchange,
                    leap: None,
                })
            })
            .await
    }
}

/// Any web server's `Date:` header: one timed `HEAD url` per probe of a Date-mode
/// measurement (see [`super::date`]).
pub(crate) struct DateProbes(pub(crate) Kept);

impl DateProbes {
    async fn probe_once(&mut self) -> Result<DateProbe, ClientError> {
        self.0
            .request(DATE, |_, raw| {
                let date = raw
                    .headers
                    .get(header::DATE)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| ClientError::Http("reply has no Date header".into()))?;
                let date_secs =
                    parse_date_header(date).map_err(|e| ClientError::Http(e.to_string()))?;
                let (t1, t4) = raw.edges.ok_or(ClientError::NoStamps)?;
                Ok(DateProbe {
                    t1: t1.real,
                    t4: t4.real,
                    date_secs,
                })
            })
            .await
    }
}

impl DateProber for DateProbes {
    fn probe(&mut self) -> ProbeFuture<'_> {
        Box::pin(async move {
            self.probe_once()
                .await
                .map_err(|e| DateError::Probe(Box::new(e)))
        })
    }
}
