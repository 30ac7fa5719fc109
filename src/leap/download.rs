//! Downloading a list: one bounded GET over the network layer the WebNTP client uses (the
//! system's trust store, proxies from the environment, every address of the name).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::header::{HeaderValue, ACCEPT, HOST, LOCATION, USER_AGENT};
use hyper::{Request, StatusCode};

use super::refresh::RefreshError;
use super::store::MAX_LIST_BYTES;
use crate::net;
use crate::net::connect::{ConnectError, ConnectOptions, Scheme, Target};
use crate::net::http1::{Http1, Http1Error};

fn invalid_url(url: &str, reason: String) -> RefreshError {
    RefreshError::InvalidUrl {
        url: url.to_owned(),
        reason,
    }
}

/// Check a [`super::LeapConfig::url`]: an http:// or https:// URL the refresh can fetch.
pub fn parse_list_url(url: &str) -> Result<Target, RefreshError> {
    let invalid = |reason| invalid_url(url, reason);
    let target = Target::parse(url).map_err(|e| invalid(e.to_string()))?;
    if !matches!(target.scheme, Scheme::Http | Scheme::Https) {
        return Err(invalid(
            "only http:// and https:// URLs are supported".into(),
        ));
    }
    Ok(target)
}

/// GET `url` and return its complete body, within `timeout`.
pub(super) async fn fetch(url: &str, timeout: Duration) -> Result<Vec<u8>, RefreshError> {
    let target = parse_list_url(url)?;
    let invalid = |reason| invalid_url(url, reason);
    let request = Request::get(target.path_and_query.as_str())
        .header(
            HOST,
            HeaderValue::from_str(&target.authority()).map_err(|e| invalid(e.to_string()))?,
        )
        .header(
            USER_AGENT,
            HeaderValue::from_static(concat!("webntpd/", env!("CARGO_PKG_VERSION"))),
        )
        .header(ACCEPT, HeaderValue::from_static("text/plain, */*"))
        .body(Empty::<Bytes>::new())
        .map_err(|e| invalid(format!("{e}")))?;

    match tokio::time::timeout(timeout, exchange(&target, request, url)).await {
        Ok(result) => result,
        Err(_) => Err(RefreshError::Timeout {
            url: url.to_owned(),
            timeout,
        }),
    }
}

/// A connection failure as a refresh error: TLS that could not be set up at all (no root
/// certificates) is [`RefreshError::Tls`], everything else a failed request.
fn connect_error(url: &str, e: ConnectError) -> RefreshError {
    match e {
        ConnectError::TlsConfig { .. } => RefreshError::Tls {
            url: url.to_owned(),
            reason: e.to_string(),
        },
        e => RefreshError::Request {
            url: url.to_owned(),
            reason: e.to_string(),
        },
    }
}

/// Connect to `target` the way the WebNTP client does (the system's trust store, proxies from
/// the environment, every address of the name), send `request` on an HTTP/1.1 connection and
/// read the whole body, bounded by [`MAX_LIST_BYTES`] ([`Http1::request`], the client's own).
async fn exchange(
    target: &Target,
    request: Request<Empty<Bytes>>,
    url: &str,
) -> Result<Vec<u8>, RefreshError> {
    let io = net::open(target, &ConnectOptions::default())
        .await
        .map_err(|e| connect_error(url, e))?;
    let failed = |e: Http1Error| match e {
        Http1Error::TooLarge { limit } => RefreshError::TooLarge {
            url: url.to_owned(),
            limit,
        },
        Http1Error::Closed(when) if when.contains("body") => RefreshError::Body {
            url: url.to_owned(),
            reason: format!("the server closed the connection {when}"),
        },
        e => RefreshError::Request {
            url: url.to_owned(),
            reason: e.to_string(),
        },
    };
    let mut http = Http1::handshake(io).await.map_err(failed)?;
    let response = http
        .request(request, MAX_LIST_BYTES)
        .await
        .map_err(failed)?;
    if response.status != StatusCode::OK {
        let location = response
            .headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(super::list::quote);
        return Err(RefreshError::Status {
            url: url.to_owned(),
            status: response.status,
            location,
        });
    }
    Ok(response.body.to_vec())
}
