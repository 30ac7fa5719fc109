//! HTTP transports: the WebNTP JSON reply (`GET url?<t1>`), Time over HTTPS
//! (`HEAD /.well-known/time`, `X-HTTPSTIME`) and the `Date:` header of any web server
//! (`HEAD url`), over one kept-alive HTTP/1.1 connection.
//!
//! The connection is reused across a burst; when the server has closed it (keep-alive
//! timeout, restart), the next exchange opens a new one, warming it up first.

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

/// Which HTTP exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavour {
    /// `GET url?<t1>`, JSON reply.
    Json,
    /// `HEAD /.well-known/time`, `X-HTTPSTIME`.
    TimeOverHttps,
    /// `HEAD url`, only the `Date:` header (any web server; see `client::date`).
    Date,
}

struct Conn {
    http: Http1,
    stamps: Arc<Stamps>,
}

/// An HTTP(S) WebNTP or Time-over-HTTPS server.
pub(crate) struct HttpTransport {
    target: Target,
    opts: ClientOptions,
    clock: SharedClock,
    flavour: Flavour,
    conn: Option<Conn>,
    user_agent: HeaderValue,
}

impl HttpTransport {
    pub(crate) fn new(
        target: Target,
        opts: ClientOptions,
        clock: SharedClock,
        flavour: Flavour,
    ) -> Self {
        HttpTransport {
            target,
            opts,
            clock,
            flavour,
            conn: None,
            user_agent: HeaderValue::from_static(concat!("webntpd/", env!("CARGO_PKG_VERSION"))),
        }
    }

    async fn connect(&self) -> Result<Conn, ClientError> {
        let (io, stamps) = open_stamped(&self.target, &self.opts.connect, &self.clock).await?;
        let http = Http1::handshake(io).await?;
        Ok(Conn { http, stamps })
    }

    /// The request target: the URL's path and query, plus `?<t1>` for JSON.
    fn path(&self, sent: Option<Timestamp>) -> String {
        match (self.flavour, sent) {
            (Flavour::TimeOverHttps, _) => {
                let p = &self.target.path_and_query;
                if p == "/" || p.is_empty() {
                    "/.well-known/time".to_string()
                } else {
                    p.clone()
                }
            }
            (Flavour::Json, Some(t)) => {
                let p = &self.target.path_and_query;
                let sep = if p.contains('?') { '&' } else { '?' };
                format!("{p}{sep}{t}")
            }
            (Flavour::Json, None) | (Flavour::Date, _) => self.target.path_and_query.clone(),
        }
    }

    /// Send one request on an open connection and read the whole reply, with the edges.
    async fn raw(&mut self, conn: &mut Conn, sent: Option<Timestamp>) -> Result<Raw, ClientError> {
        let method = match self.flavour {
            Flavour::Json => Method::GET,
            Flavour::TimeOverHttps | Flavour::Date => Method::HEAD,
        };
        let mut req = Request::new(Empty::<Bytes>::new());
        *req.method_mut() = method;
        *req.uri_mut() = self
            .path(sent)
            .parse()
            .map_err(|e| ClientError::Http(format!("request target: {e}")))?;
        let h = req.headers_mut();
        if let Ok(host) = HeaderValue::from_str(&self.target.authority()) {
            h.insert(header::HOST, host);
        }
        h.insert(header::USER_AGENT, self.user_agent.clone());
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        if self.flavour == Flavour::Json {
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

    /// One WebNTP or Time-over-HTTPS exchange on an open connection.
    async fn once(&mut self, conn: &mut Conn) -> Result<Reply, ClientError> {
        let sent = (self.flavour == Flavour::Json).then(|| request_stamp(&self.clock));
        let raw = self.raw(conn, sent).await?;
        match self.flavour {
            Flavour::Json => {
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
            }
            // Date mode has no single exchange: client::date bisects with `date_probe`.
            Flavour::Date => Err(ClientError::Http(
                "Date mode is measured by bisection, not by single exchanges".into(),
            )),
            Flavour::TimeOverHttps => {
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
            }
        }
    }

    /// The kept connection, or a new one, warmed up.
    async fn conn(&mut self) -> Result<Conn, ClientError> {
        if let Some(conn) = self.conn.take() {
            if !conn.http.is_closed() {
                return Ok(conn);
            }
        }
        let mut conn = connect_bounded(&self.opts, self.connect()).await?;
        // Warm-up (see the module comment of `client`).
        self.raw(&mut conn, None).await?;
        Ok(conn)
    }

    /// One `HEAD` for the `Date:` header, timed at the socket edge.
    pub(crate) async fn date_probe(&mut self) -> Result<DateProbe, ClientError> {
        let mut conn = self.conn().await?;
        let raw = self.raw(&mut conn, None).await?;
        let date = raw
            .headers
            .get(header::DATE)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ClientError::Http("reply has no Date header".into()))?;
        let date_secs = parse_date_header(date).map_err(|e| ClientError::Http(e.to_string()))?;
        let (t1, t4) = raw.edges.ok_or(ClientError::NoStamps)?;
        self.conn = Some(conn);
        Ok(DateProbe {
            t1: t1.real,
            t4: t4.real,
            date_secs,
        })
    }
}

/// A reply as it came, before interpretation.
struct Raw {
    status: http::StatusCode,
    headers: http::HeaderMap,
    body: Bytes,
    edges: Option<(crate::net::stamp::Edge, crate::net::stamp::Edge)>,
}

/// [`HttpTransport`] as the prober of a Date-header measurement.
pub(crate) struct DateAdapter(pub(crate) HttpTransport);

impl DateProber for DateAdapter {
    fn probe(&mut self) -> ProbeFuture<'_> {
        Box::pin(async move {
            self.0
                .date_probe()
                .await
                .map_err(|e| DateError::Probe(Box::new(e)))
        })
    }
}

impl Transport for HttpTransport {
    async fn exchange(&mut self) -> Result<Reply, ClientError> {
        let reused = self.conn.as_ref().is_some_and(|c| !c.http.is_closed());
        let mut conn = self.conn().await?;
        match self.once(&mut conn).await {
            Ok(reply) => {
                self.conn = Some(conn);
                Ok(reply)
            }
            // A kept connection the server closed just now: one fresh try.
            Err(ClientError::Closed(_) | ClientError::Http(_))
                if reused && conn.http.is_closed() =>
            {
                tracing::debug!(
                    "{}: kept connection closed; reconnecting",
                    self.target.authority()
                );
                drop(conn);
                let mut conn = self.conn().await?;
                let reply = self.once(&mut conn).await?;
                self.conn = Some(conn);
                Ok(reply)
            }
            Err(e) => Err(e),
        }
    }
}
