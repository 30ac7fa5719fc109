//! Opening connections to WebNTP servers: parsing server URLs, TCP connects (direct or through
//! an HTTP `CONNECT` proxy, chosen like curl does from `https_proxy`, `no_proxy`, ...), and the
//! TLS handshake.
//!
//! The client keeps one connection per server for a burst of samples. The TCP step
//! ([`open_tcp`]) and the TLS step ([`tls_handshake`]) are separate because the caller wraps
//! the raw socket in its own timestamping stream before TLS. Certificate verification is
//! always on; the only knob is [`ConnectOptions::extra_roots`], trusted in addition to the
//! system store.
//!
//! Every error names the server (`host:port`), the proxy when one is involved, what failed,
//! and where possible what to do about it.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use rustls::{CertificateError, RootCertStore};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest proxy response head to `CONNECT` that is accepted.
const MAX_PROXY_RESPONSE_HEAD: usize = 8 * 1024;

/// Port used when a proxy URL has none. curl uses 1080 too (not 80), so a proxy setting that
/// works with curl works here.
pub const DEFAULT_PROXY_PORT: u16 = 1080;

/// Longest proxy status line quoted in an error message.
const MAX_QUOTED_STATUS: usize = 200;

mod proxy;
mod tls;
mod url;

#[cfg(test)]
mod tests;

pub use proxy::*;
pub use tls::*;
pub use url::*;

/// How to connect and verify.
#[derive(Clone)]
pub struct ConnectOptions {
    /// Bound on name resolution, on each TCP connect attempt (per address), and on the proxy's
    /// answer to `CONNECT`. Default 5 s.
    pub connect_timeout: Duration,
    /// Bound on the TLS handshake. Default 5 s.
    pub tls_timeout: Duration,
    /// Which proxy to use. Default: from the environment, like curl.
    pub proxy: ProxySetting,
    /// CA certificates trusted in addition to the system store (private CAs, tests).
    pub extra_roots: Vec<CertificateDer<'static>>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            connect_timeout: Duration::from_secs(5),
            tls_timeout: Duration::from_secs(5),
            proxy: ProxySetting::FromEnv,
            extra_roots: Vec::new(),
        }
    }
}

impl fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("connect_timeout", &self.connect_timeout)
            .field("tls_timeout", &self.tls_timeout)
            .field("proxy", &self.proxy)
            .field("extra_roots", &self.extra_roots.len())
            .finish()
    }
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Why a connection could not be set up. `target` fields are the server's `host:port`;
/// `proxy` fields describe the proxy as `host:port (from origin)`, never with credentials.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The server URL does not parse.
    #[error("invalid server URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL, credentials replaced by `***`.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The server URL's scheme is not one of http, https, ws, wss.
    #[error("unsupported scheme {scheme:?} in server URL {url:?}: use http://, https://, ws:// or wss://")]
    UnsupportedScheme {
        /// The URL, credentials replaced by `***`.
        url: String,
        /// The scheme found.
        scheme: String,
    },
    /// A proxy URL does not parse or is not `http://`.
    #[error("invalid proxy URL {url:?} (from {origin}): {reason}")]
    InvalidProxy {
        /// The URL, credentials replaced by `***`.
        url: String,
        /// Environment variable name, or "configuration".
        origin: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Name resolution of the server (or of the proxy) failed or timed out.
    #[error("{target}: cannot resolve {}: {source}{hint}", resolve_what(.proxy))]
    Resolve {
        /// The server.
        target: String,
        /// The proxy whose name failed, if it was the proxy's.
        proxy: Option<String>,
        /// The resolver's error.
        source: io::Error,
        /// Advice, empty or starting with a space.
        hint: &'static str,
    },
    /// The name resolved, but to no address.
    #[error("{target}: {} resolved to no addresses", resolve_what(.proxy))]
    NoAddresses {
        /// The server.
        target: String,
        /// The proxy whose name it was, if it was the proxy's.
        proxy: Option<String>,
    },
    /// Every address of the server (or proxy) refused, failed or timed out.
    #[error("{target}: cannot connect to {}: {attempts}{hint}", connect_what(.proxy))]
    Connect {
        /// The server.
        target: String,
        /// The proxy that could not be reached, if it was the proxy.
        proxy: Option<String>,
        /// Each address tried, with its error.
        attempts: ConnectAttempts,
        /// Advice, empty or starting with a space.
        hint: &'static str,
    },
    /// A socket option could not be set.
    #[error("{target}: cannot set up the socket: {source}")]
    Socket {
        /// The server.
        target: String,
        /// The OS error.
        source: io::Error,
    },
    /// Reading or writing the `CONNECT` exchange failed.
    #[error("{target}: proxy {proxy}: connection failed during CONNECT: {source}")]
    ProxyIo {
        /// The server.
        target: String,
        /// The proxy.
        proxy: String,
        /// The I/O error.
        source: io::Error,
    },
    /// The proxy did not answer `CONNECT` in time.
    #[error("{target}: proxy {proxy} did not answer CONNECT within {timeout:?}")]
    ProxyTimeout {
        /// The server.
        target: String,
        /// The proxy.
        proxy: String,
        /// The bound that expired.
        timeout: Duration,
    },
    /// The proxy's answer is not valid HTTP or not usable.
    #[error("{target}: proxy {proxy}: {detail}")]
    ProxyProtocol {
        /// The server.
        target: String,
        /// The proxy.
        proxy: String,
        /// What was wrong.
        detail: String,
    },
    /// The proxy answered 407.
    #[error("{target}: proxy {proxy} answered {status_line:?}: {detail}")]
    ProxyAuth {
        /// The server.
        target: String,
        /// The proxy.
        proxy: String,
        /// The proxy's status line, quoted.
        status_line: String,
        /// Whether credentials were sent (then they were rejected).
        had_credentials: bool,
        /// What to do.
        detail: String,
    },
    /// The proxy answered `CONNECT` with a status other than 2xx and 407.
    #[error("{target}: proxy {proxy} refused the tunnel, answering {status_line:?}{hint}")]
    ProxyRefused {
        /// The server.
        target: String,
        /// The proxy.
        proxy: String,
        /// The HTTP status code.
        status: u16,
        /// The proxy's status line, quoted.
        status_line: String,
        /// Advice, empty or starting with a space.
        hint: &'static str,
    },
    /// The host cannot be used as a TLS server name.
    #[error("{target}: the host cannot be used as a TLS server name: {reason}")]
    TlsName {
        /// The server.
        target: String,
        /// Why.
        reason: String,
    },
    /// The TLS handshake failed (certificate, protocol, or connection).
    #[error("{target}: TLS handshake failed: {source}{hint}")]
    Tls {
        /// The server.
        target: String,
        /// The error; a `rustls::Error` inside for TLS failures.
        source: io::Error,
        /// Advice, empty or starting with a space.
        hint: &'static str,
    },
    /// The TLS handshake did not finish in time.
    #[error(
        "{target}: TLS handshake did not complete within {timeout:?} (is this port speaking TLS?)"
    )]
    TlsTimeout {
        /// The server.
        target: String,
        /// The bound that expired.
        timeout: Duration,
    },
    /// The TLS client configuration cannot be built (no trust roots, bad extra CA).
    #[error("TLS setup: {reason}")]
    TlsConfig {
        /// Why.
        reason: String,
    },
}

fn resolve_what(proxy: &Option<String>) -> String {
    match proxy {
        Some(p) => format!("the host name of proxy {p}"),
        None => "the host name".to_owned(),
    }
}

fn connect_what(proxy: &Option<String>) -> String {
    match proxy {
        Some(p) => format!("proxy {p}"),
        None => "the server".to_owned(),
    }
}

/// Advice for a direct connection that failed: maybe a proxy is needed.
fn direct_hint(scheme: Scheme, proxy: Option<&Proxy>) -> &'static str {
    match (proxy, scheme.proxy_env_var()) {
        (Some(_), _) => "",
        (None, "https_proxy") => {
            " (if this host reaches the Internet only through a proxy, set https_proxy=http://PROXY:PORT)"
        }
        (None, _) => {
            " (if this host reaches the Internet only through a proxy, set http_proxy=http://PROXY:PORT)"
        }
    }
}

/// The addresses tried for one connection, each with its error.
#[derive(Debug)]
pub struct ConnectAttempts(pub Vec<(SocketAddr, io::Error)>);

impl fmt::Display for ConnectAttempts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (addr, err)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{addr}: {err}")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// TCP
// ---------------------------------------------------------------------------------------------

/// Opens a TCP connection for `target`: directly, or through a `CONNECT` tunnel when
/// [`ConnectOptions::proxy`] says so. The returned stream talks to the server (through the
/// tunnel if any) and has `TCP_NODELAY` set.
///
/// Addresses are tried in the resolver's order (which follows the OS's preference), each
/// bounded by [`ConnectOptions::connect_timeout`].
pub async fn open_tcp(target: &Target, opts: &ConnectOptions) -> Result<TcpStream, ConnectError> {
    let proxy = opts.proxy.proxy_for(target)?;
    let mut stream = connect_hop(target, proxy.as_ref(), opts.connect_timeout).await?;
    if let Some(proxy) = &proxy {
        let timeout = opts.connect_timeout;
        match tokio::time::timeout(timeout, proxy_connect(&mut stream, target, proxy)).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(ConnectError::ProxyTimeout {
                    target: target.host_port(),
                    proxy: proxy.to_string(),
                    timeout,
                })
            }
        }
        tracing::debug!(server = %target.host_port(), %proxy, "CONNECT tunnel established");
    }
    Ok(stream)
}

/// Resolves and connects to the server, or to the proxy when one is given.
pub(super) async fn connect_hop(
    target: &Target,
    proxy: Option<&Proxy>,
    timeout: Duration,
) -> Result<TcpStream, ConnectError> {
    let (host, port) = match proxy {
        Some(p) => (p.host.as_str(), p.port),
        None => (target.host.as_str(), target.port),
    };
    let resolve_error = |source: io::Error| ConnectError::Resolve {
        target: target.host_port(),
        proxy: proxy.map(ToString::to_string),
        source,
        hint: direct_hint(target.scheme, proxy),
    };
    let addrs: Vec<SocketAddr> =
        match tokio::time::timeout(timeout, tokio::net::lookup_host((host, port))).await {
            Ok(Ok(addrs)) => addrs.collect(),
            Ok(Err(e)) => return Err(resolve_error(e)),
            Err(_) => {
                return Err(resolve_error(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no answer from the resolver within {timeout:?}"),
                )))
            }
        };
    if addrs.is_empty() {
        return Err(ConnectError::NoAddresses {
            target: target.host_port(),
            proxy: proxy.map(ToString::to_string),
        });
    }
    connect_resolved(target, proxy, &addrs, timeout).await
}

/// Connects to the first of `addrs` that accepts and sets `TCP_NODELAY`.
pub(super) async fn connect_resolved(
    target: &Target,
    proxy: Option<&Proxy>,
    addrs: &[SocketAddr],
    timeout: Duration,
) -> Result<TcpStream, ConnectError> {
    let stream = connect_any(addrs, timeout, TcpStream::connect)
        .await
        .map_err(|attempts| {
            // A refusal means the host was reached: a proxy would not help.
            let all_refused = attempts
                .iter()
                .all(|(_, e)| e.kind() == io::ErrorKind::ConnectionRefused);
            ConnectError::Connect {
                target: target.host_port(),
                proxy: proxy.map(ToString::to_string),
                attempts: ConnectAttempts(attempts),
                hint: if all_refused {
                    ""
                } else {
                    direct_hint(target.scheme, proxy)
                },
            }
        })?;
    stream
        .set_nodelay(true)
        .map_err(|source| ConnectError::Socket {
            target: target.host_port(),
            source,
        })?;
    Ok(stream)
}

/// Tries `connect` on each address in order, each bounded by `timeout`, until one succeeds.
/// On failure returns every address with its error. Generic over the connector so the timeout
/// path can be tested deterministically.
pub(super) async fn connect_any<T, F, Fut>(
    addrs: &[SocketAddr],
    timeout: Duration,
    mut connect: F,
) -> Result<T, Vec<(SocketAddr, io::Error)>>
where
    F: FnMut(SocketAddr) -> Fut,
    Fut: Future<Output = io::Result<T>>,
{
    let mut failures = Vec::new();
    for &addr in addrs {
        match tokio::time::timeout(timeout, connect(addr)).await {
            Ok(Ok(stream)) => {
                if !failures.is_empty() {
                    tracing::debug!(%addr, failed = %ConnectAttempts(failures), "connected after earlier addresses failed");
                }
                return Ok(stream);
            }
            Ok(Err(e)) => failures.push((addr, e)),
            Err(_) => failures.push((
                addr,
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no answer within {timeout:?}"),
                ),
            )),
        }
    }
    Err(failures)
}
