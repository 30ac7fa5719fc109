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

// ---------------------------------------------------------------------------------------------
// Server URLs
// ---------------------------------------------------------------------------------------------

/// URL scheme of a WebNTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `http://`: plain HTTP.
    Http,
    /// `https://`: HTTP over TLS.
    Https,
    /// `ws://`: plain WebSocket.
    Ws,
    /// `wss://`: WebSocket over TLS.
    Wss,
}

impl Scheme {
    /// Whether connections for this scheme use TLS.
    pub fn is_tls(self) -> bool {
        matches!(self, Scheme::Https | Scheme::Wss)
    }

    /// The port used when the URL has none: 443 with TLS, 80 without.
    pub fn default_port(self) -> u16 {
        if self.is_tls() {
            443
        } else {
            80
        }
    }

    /// The scheme as written in URLs, lower case.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
            Scheme::Ws => "ws",
            Scheme::Wss => "wss",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        [Scheme::Http, Scheme::Https, Scheme::Ws, Scheme::Wss]
            .into_iter()
            .find(|s| name.eq_ignore_ascii_case(s.as_str()))
    }

    /// The proxy environment variable curl reads first for this scheme.
    fn proxy_env_var(self) -> &'static str {
        if self.is_tls() {
            "https_proxy"
        } else {
            "http_proxy"
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where to connect, parsed from a server URL (`http`, `https`, `ws` or `wss`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// The URL scheme.
    pub scheme: Scheme,
    /// Host name (lower case) or IP address; IPv6 literals without the brackets.
    pub host: String,
    /// Port, the scheme's default (80/443) when the URL has none.
    pub port: u16,
    /// Path and query of the URL, `/` when the URL has no path. The fragment is dropped.
    pub path_and_query: String,
}

impl Target {
    /// Parses a server URL such as `https://time.example.org/time` or `ws://[::1]:8080/ws`.
    ///
    /// User names and passwords in the URL are rejected (nothing would send them).
    pub fn parse(url: &str) -> Result<Target, ConnectError> {
        let url = url.trim();
        let invalid = |reason: &str| ConnectError::InvalidUrl {
            url: redact_userinfo(url),
            reason: reason.to_owned(),
        };
        let Some((_, rest)) = url.split_once("://") else {
            return Err(invalid(
                "no scheme; write http://, https://, ws:// or wss:// first",
            ));
        };
        precheck_authority(rest).map_err(invalid)?;
        let uri: http::Uri = url.parse().map_err(|e: http::uri::InvalidUri| {
            invalid(&format!("{e} (expected e.g. https://time.example.org/)"))
        })?;
        let scheme_name = uri
            .scheme_str()
            .ok_or_else(|| invalid("no scheme; write http://, https://, ws:// or wss:// first"))?;
        let scheme =
            Scheme::from_name(scheme_name).ok_or_else(|| ConnectError::UnsupportedScheme {
                url: redact_userinfo(url),
                scheme: scheme_name.to_owned(),
            })?;
        let authority = uri.authority().ok_or_else(|| invalid("no host"))?;
        let parts = split_authority(authority.as_str()).map_err(invalid)?;
        if parts.userinfo.is_some() {
            return Err(invalid(
                "a user name or password in a server URL is not supported",
            ));
        }
        let path = match uri.path() {
            "" => "/",
            p => p,
        };
        let path_and_query = match uri.query() {
            Some(q) => format!("{path}?{q}"),
            None => path.to_owned(),
        };
        Ok(Target {
            scheme,
            host: parts.host.to_ascii_lowercase(),
            port: parts.port.unwrap_or(scheme.default_port()),
            path_and_query,
        })
    }

    /// The authority for `Host` headers: `host:port` with IPv6 literals in brackets, the port
    /// left out when it is the scheme's default.
    pub fn authority(&self) -> String {
        if self.port == self.scheme.default_port() {
            bracket_host(&self.host).into_owned()
        } else {
            self.host_port()
        }
    }

    /// `host:port` with IPv6 literals in brackets, always with the port: used for `CONNECT`
    /// and to name the server in messages.
    pub fn host_port(&self) -> String {
        format!("{}:{}", bracket_host(&self.host), self.port)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}{}",
            self.scheme,
            self.authority(),
            self.path_and_query
        )
    }
}

/// Puts brackets around IPv6 literals.
fn bracket_host(host: &str) -> Cow<'_, str> {
    if host.contains(':') {
        Cow::Owned(format!("[{host}]"))
    } else {
        Cow::Borrowed(host)
    }
}

/// Catches mistakes for which `http::Uri` gives vague errors. `rest` follows `scheme://`.
fn precheck_authority(rest: &str) -> Result<(), &'static str> {
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host_port.starts_with('[') {
        if !host_port.contains(']') {
            return Err("'[' without ']' around an IPv6 address");
        }
    } else if host_port.matches(':').count() > 1 {
        return Err("IPv6 addresses must be in brackets, e.g. [2001:db8::1]");
    }
    if host_port.is_empty() || host_port.starts_with(':') {
        return Err("no host");
    }
    Ok(())
}

/// The parts of a URL authority `[userinfo@]host[:port]`.
#[derive(Debug)]
struct AuthorityParts<'a> {
    userinfo: Option<&'a str>,
    /// Without brackets.
    host: &'a str,
    port: Option<u16>,
}

/// Splits an authority already checked for valid characters by `http::Uri`.
fn split_authority(authority: &str) -> Result<AuthorityParts<'_>, &'static str> {
    let (userinfo, host_port) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (host, port) = if let Some(rest) = host_port.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or("'[' without ']' around an IPv6 address")?;
        host.parse::<Ipv6Addr>()
            .map_err(|_| "invalid IPv6 address in brackets")?;
        let port = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or("unexpected characters after ']'")?,
            ),
        };
        (host, port)
    } else {
        match host_port.split_once(':') {
            Some((_, p)) if p.contains(':') => {
                return Err("IPv6 addresses must be in brackets, e.g. [2001:db8::1]")
            }
            Some((h, p)) => (h, Some(p)),
            None => (host_port, None),
        }
    };
    if host.is_empty() {
        return Err("no host");
    }
    let port = match port {
        None | Some("") => None,
        Some(p) => Some(parse_port(p).ok_or("the port must be a number from 1 to 65535")?),
    };
    Ok(AuthorityParts {
        userinfo,
        host,
        port,
    })
}

fn parse_port(s: &str) -> Option<u16> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u16>().ok().filter(|&p| p != 0)
}

/// Replaces the user name and password of a URL with `***`, for messages and logs.
fn redact_userinfo(url: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[start..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}***{}", &url[..start], &rest[at..]),
        None => url.to_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// Options and proxies
// ---------------------------------------------------------------------------------------------

/// Which HTTP proxy to use.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum ProxySetting {
    /// Follow curl's environment variables; see [`ProxySetting::proxy_for`].
    #[default]
    FromEnv,
    /// Connect directly, whatever the environment says.
    Off,
    /// Always use this proxy, `http://[user:password@]host[:port]` (port 1080 if none, as in
    /// curl). Used for every server, loopback included; `no_proxy` does not apply.
    Url(String),
}

impl fmt::Debug for ProxySetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxySetting::FromEnv => f.write_str("FromEnv"),
            ProxySetting::Off => f.write_str("Off"),
            ProxySetting::Url(u) => f.debug_tuple("Url").field(&redact_userinfo(u)).finish(),
        }
    }
}

impl ProxySetting {
    /// The proxy to use for `target`, or `None` to connect directly.
    ///
    /// With [`ProxySetting::FromEnv`] the rules are curl's:
    /// - `https`/`wss` servers use `https_proxy`, then `HTTPS_PROXY`; `http`/`ws` servers use
    ///   `http_proxy` only: upper-case `HTTP_PROXY` is ignored because CGI programs get it
    ///   from the client's `Proxy:` request header (the "httpoxy" problem).
    /// - Then `all_proxy`, then `ALL_PROXY`. An empty variable counts as unset.
    /// - `no_proxy` (or `NO_PROXY` when `no_proxy` is unset): comma-separated entries,
    ///   case-insensitive, whitespace ignored. `*` matches every server. A host name matches
    ///   itself and its subdomains (`example.org`, `.example.org` and `*.example.org` all
    ///   match `example.org` and `a.example.org`). An IP address or CIDR block (`10.0.0.0/8`,
    ///   `::1/128`, `[2001:db8::]/32`) matches servers given by IP address (names are not
    ///   resolved for this). `:port` after an entry restricts it to that port.
    /// - Loopback servers (`localhost`, `*.localhost`, 127.0.0.0/8, `::1`) are never
    ///   proxied.
    ///
    /// Only `http://` proxy URLs are supported (`CONNECT` tunnels, for plain and TLS alike).
    pub fn proxy_for(&self, target: &Target) -> Result<Option<Proxy>, ConnectError> {
        match self {
            ProxySetting::Off => Ok(None),
            ProxySetting::Url(url) => Proxy::parse(url, "configuration").map(Some),
            ProxySetting::FromEnv => proxy_from_env(target, &|name| std::env::var(name).ok()),
        }
    }
}

/// An HTTP proxy to tunnel through with `CONNECT`.
#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    host: String,
    port: u16,
    /// `Basic ...` value for `Proxy-Authorization`, from the URL's user name and password.
    authorization: Option<String>,
    /// Where the setting came from: a variable name, or "configuration".
    origin: String,
}

impl Proxy {
    /// Parses `[http://][user:password@]host[:port]`. The user name and password are
    /// percent-decoded and sent with Basic authentication. `origin` (an environment variable
    /// name, or "configuration") is quoted in errors.
    pub fn parse(url: &str, origin: &str) -> Result<Proxy, ConnectError> {
        let url = url.trim();
        let invalid = |reason: String| ConnectError::InvalidProxy {
            url: redact_userinfo(url),
            origin: origin.to_owned(),
            reason,
        };
        let full: Cow<'_, str> = if url.contains("://") {
            Cow::Borrowed(url)
        } else {
            Cow::Owned(format!("http://{url}"))
        };
        if let Some((_, rest)) = full.split_once("://") {
            precheck_authority(rest).map_err(|r| invalid(r.to_owned()))?;
        }
        let uri: http::Uri = full
            .parse()
            .map_err(|e: http::uri::InvalidUri| invalid(e.to_string()))?;
        match uri.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("http") => {}
            Some(s) => {
                return Err(invalid(format!(
                    "{s}:// proxies are not supported; only http:// proxies (HTTP CONNECT) are"
                )))
            }
            None => return Err(invalid("no scheme".to_owned())),
        }
        let authority = uri
            .authority()
            .ok_or_else(|| invalid("no host".to_owned()))?;
        let parts = split_authority(authority.as_str()).map_err(|r| invalid(r.to_owned()))?;
        let authorization = parts.userinfo.map(|userinfo| {
            let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
            let mut raw: Vec<u8> = percent_encoding::percent_decode_str(user).collect();
            raw.push(b':');
            raw.extend(percent_encoding::percent_decode_str(password));
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(raw)
            )
        });
        Ok(Proxy {
            host: parts.host.to_ascii_lowercase(),
            port: parts.port.unwrap_or(DEFAULT_PROXY_PORT),
            authorization,
            origin: origin.to_owned(),
        })
    }

    /// The proxy's host name or IP address (IPv6 without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Where the setting came from: an environment variable name, or "configuration".
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Whether the proxy URL carried a user name and password.
    pub fn has_credentials(&self) -> bool {
        self.authorization.is_some()
    }

    fn host_port(&self) -> String {
        format!("{}:{}", bracket_host(&self.host), self.port)
    }
}

/// `proxy.corp:3128 (from https_proxy)`; never shows credentials.
impl fmt::Display for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (from {})", self.host_port(), self.origin)
    }
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("credentials", &self.authorization.as_ref().map(|_| "***"))
            .field("origin", &self.origin)
            .finish()
    }
}

/// [`ProxySetting::FromEnv`] with the environment lookup injected (tests must not touch the
/// process environment).
fn proxy_from_env(
    target: &Target,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Proxy>, ConnectError> {
    if is_loopback_host(&target.host) {
        return Ok(None);
    }
    if let Some((name, list)) = first_set(env, &["no_proxy", "NO_PROXY"]) {
        if no_proxy_matches(&list, target) {
            tracing::debug!(server = %target.host_port(), "{name} matches: connecting directly");
            return Ok(None);
        }
    }
    // Upper-case HTTP_PROXY is deliberately not read (httpoxy), like curl.
    let names: &[&str] = if target.scheme.is_tls() {
        &["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"]
    } else {
        &["http_proxy", "all_proxy", "ALL_PROXY"]
    };
    match first_set(env, names) {
        Some((name, url)) => Proxy::parse(&url, name).map(Some),
        None => Ok(None),
    }
}

/// The first variable of `names` that is set and not blank.
fn first_set<'n>(
    env: &dyn Fn(&str) -> Option<String>,
    names: &[&'n str],
) -> Option<(&'n str, String)> {
    names.iter().find_map(|&name| {
        env(name)
            .filter(|v| !v.trim().is_empty())
            .map(|v| (name, v))
    })
}

/// `localhost`, `*.localhost` (RFC 6761), 127.0.0.0/8 and `::1` (also IPv4-mapped).
fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost"
        || host.ends_with(".localhost")
        || host
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

/// Whether a `no_proxy` list says `target` should be reached directly.
fn no_proxy_matches(list: &str, target: &Target) -> bool {
    let host = target.host.trim_end_matches('.').to_ascii_lowercase();
    let ip = host.parse::<IpAddr>().ok().map(|ip| ip.to_canonical());
    list.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .any(|entry| match NoProxyEntry::parse(entry) {
            Some(e) => e.matches(&host, ip, target.port),
            None => {
                tracing::debug!(entry, "ignoring no_proxy entry that does not parse");
                false
            }
        })
}

/// One `no_proxy` entry.
#[derive(Debug, PartialEq, Eq)]
struct NoProxyEntry {
    pattern: NoProxyPattern,
    /// Only this port, if given.
    port: Option<u16>,
}

#[derive(Debug, PartialEq, Eq)]
enum NoProxyPattern {
    /// `*`
    Any,
    /// A domain and its subdomains, lower case, without leading or trailing dots.
    Domain(String),
    /// An address and prefix length (32/128 for a single address).
    Net(IpAddr, u8),
}

impl NoProxyEntry {
    fn parse(entry: &str) -> Option<Self> {
        let entry = entry.to_ascii_lowercase();
        if entry == "*" {
            return Some(NoProxyEntry {
                pattern: NoProxyPattern::Any,
                port: None,
            });
        }
        let (addr, port) = if let Some(rest) = entry.strip_prefix('[') {
            // `[v6]`, `[v6]:port`, `[v6/len]`, `[v6]/len`.
            let (inside, after) = rest.split_once(']')?;
            match after {
                "" => (inside.to_owned(), None),
                _ if after.starts_with('/') => (format!("{inside}{after}"), None),
                _ => (
                    inside.to_owned(),
                    Some(parse_port(after.strip_prefix(':')?)?),
                ),
            }
        } else if entry.matches(':').count() == 1 {
            let (addr, port) = entry.split_once(':')?;
            (addr.to_owned(), Some(parse_port(port)?))
        } else {
            // No colon, or a bare IPv6 address (which cannot carry a port).
            (entry.clone(), None)
        };
        let pattern = if let Some((ip, len)) = addr.split_once('/') {
            let ip = ip.parse::<IpAddr>().ok()?.to_canonical();
            let len = len.parse::<u8>().ok()?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            if len > max {
                return None;
            }
            NoProxyPattern::Net(ip, len)
        } else if let Ok(ip) = addr.parse::<IpAddr>() {
            let ip = ip.to_canonical();
            NoProxyPattern::Net(ip, if ip.is_ipv4() { 32 } else { 128 })
        } else {
            let domain = addr.strip_prefix("*.").unwrap_or(&addr);
            let domain = domain.trim_start_matches('.').trim_end_matches('.');
            if domain.is_empty() || domain.contains(['*', '/', '[', ']']) {
                return None;
            }
            NoProxyPattern::Domain(domain.to_owned())
        };
        Some(NoProxyEntry { pattern, port })
    }

    /// `host` lower case without trailing dot; `ip` is its address if it is an IP literal.
    fn matches(&self, host: &str, ip: Option<IpAddr>, port: u16) -> bool {
        let host_matches = match &self.pattern {
            NoProxyPattern::Any => return true,
            NoProxyPattern::Domain(d) => {
                host == d
                    || host
                        .strip_suffix(d.as_str())
                        .is_some_and(|prefix| prefix.ends_with('.'))
            }
            NoProxyPattern::Net(net, len) => ip.is_some_and(|ip| ip_in_net(ip, *net, *len)),
        };
        host_matches && self.port.is_none_or(|p| p == port)
    }
}

fn ip_in_net(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

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
async fn connect_hop(
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
async fn connect_resolved(
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
async fn connect_any<T, F, Fut>(
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

// ---------------------------------------------------------------------------------------------
// HTTP CONNECT
// ---------------------------------------------------------------------------------------------

/// Asks the proxy on `stream` for a tunnel to `target` and checks its answer. On success the
/// stream is positioned at the first byte from the server.
async fn proxy_connect<S>(
    stream: &mut S,
    target: &Target,
    proxy: &Proxy,
) -> Result<(), ConnectError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let host_port = target.host_port();
    let mut request = format!(
        "CONNECT {host_port} HTTP/1.1\r\nHost: {host_port}\r\nUser-Agent: webntpd/{}\r\n",
        env!("CARGO_PKG_VERSION")
    );
    if let Some(auth) = &proxy.authorization {
        request.push_str("Proxy-Authorization: ");
        request.push_str(auth);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");

    let io_error = |source: io::Error| ConnectError::ProxyIo {
        target: host_port.clone(),
        proxy: proxy.to_string(),
        source,
    };
    let protocol_error = |detail: String| ConnectError::ProxyProtocol {
        target: host_port.clone(),
        proxy: proxy.to_string(),
        detail,
    };
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(io_error)?;
    stream.flush().await.map_err(io_error)?;

    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    loop {
        if let Some(end) = find_head_end(&buf) {
            let head = ResponseHead::parse(&buf[..end]).ok_or_else(|| {
                protocol_error(format!(
                    "answered CONNECT with something that is not an HTTP response: {:?}",
                    quote_start(&buf[..end])
                ))
            })?;
            match head.status {
                // Interim responses: the real answer follows.
                100..=199 if head.status != 101 => {
                    buf.drain(..end);
                    continue;
                }
                200..=299 => {
                    let extra = buf.len() - end;
                    if extra > 0 {
                        return Err(protocol_error(format!(
                            "sent {extra} unexpected bytes after its {:?} answer to CONNECT; \
                             not using the tunnel",
                            head.status_line
                        )));
                    }
                    return Ok(());
                }
                407 => return Err(auth_error(host_port, proxy, head)),
                status => {
                    return Err(ConnectError::ProxyRefused {
                        hint: refused_hint(status, target.port),
                        target: host_port,
                        proxy: proxy.to_string(),
                        status,
                        status_line: head.status_line,
                    })
                }
            }
        }
        if buf.len() >= MAX_PROXY_RESPONSE_HEAD {
            return Err(protocol_error(format!(
                "answer to CONNECT has no end of header within {MAX_PROXY_RESPONSE_HEAD} bytes"
            )));
        }
        let mut chunk = [0u8; 1024];
        let want = chunk.len().min(MAX_PROXY_RESPONSE_HEAD - buf.len());
        let n = stream.read(&mut chunk[..want]).await.map_err(io_error)?;
        if n == 0 {
            return Err(protocol_error(if buf.is_empty() {
                "closed the connection without answering CONNECT".to_owned()
            } else {
                format!(
                    "closed the connection in the middle of its answer to CONNECT: {:?}",
                    quote_start(&buf)
                )
            }));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Index just past the blank line ending an HTTP head (`\r\n\r\n`, or bare `\n\n`).
fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.iter().enumerate().find_map(|(i, &b)| {
        if b != b'\n' {
            return None;
        }
        match (buf.get(i + 1), buf.get(i + 2)) {
            (Some(b'\n'), _) => Some(i + 2),
            (Some(b'\r'), Some(b'\n')) => Some(i + 3),
            _ => None,
        }
    })
}

/// The first line of `bytes`, lossily decoded and shortened, for quoting in messages.
fn quote_start(bytes: &[u8]) -> String {
    let line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    String::from_utf8_lossy(line)
        .trim_end_matches('\r')
        .chars()
        .take(MAX_QUOTED_STATUS)
        .collect()
}

/// The parts of a proxy's response head that matter here.
#[derive(Debug)]
struct ResponseHead {
    status: u16,
    /// The first line, shortened for messages.
    status_line: String,
    /// Schemes offered in `Proxy-Authenticate` headers (`Basic`, `NTLM`, ...).
    auth_schemes: Vec<String>,
}

impl ResponseHead {
    fn parse(head: &[u8]) -> Option<Self> {
        let text = String::from_utf8_lossy(head);
        let mut lines = text.lines();
        let status_line = lines.next()?.trim_end_matches('\r');
        let mut parts = status_line.splitn(3, ' ');
        if !parts.next()?.starts_with("HTTP/1.") {
            return None;
        }
        let code = parts.next()?;
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let status = code.parse().ok()?;
        let mut auth_schemes: Vec<String> = Vec::new();
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            if name.trim().eq_ignore_ascii_case("proxy-authenticate") {
                if let Some(scheme) = value.split_whitespace().next() {
                    let scheme = scheme.trim_end_matches(',');
                    if !auth_schemes.iter().any(|s| s.eq_ignore_ascii_case(scheme)) {
                        auth_schemes.push(scheme.to_owned());
                    }
                }
            }
        }
        Some(ResponseHead {
            status,
            status_line: status_line.chars().take(MAX_QUOTED_STATUS).collect(),
            auth_schemes,
        })
    }
}

fn auth_error(target: String, proxy: &Proxy, head: ResponseHead) -> ConnectError {
    let mut detail = if proxy.has_credentials() {
        "it did not accept the user name and password from the proxy URL; check them".to_owned()
    } else {
        format!(
            "it requires authentication; put the credentials in the proxy URL: \
             http://USER:PASSWORD@{} (percent-encode special characters)",
            proxy.host_port()
        )
    };
    let offers_basic = head
        .auth_schemes
        .iter()
        .any(|s| s.eq_ignore_ascii_case("basic"));
    if !head.auth_schemes.is_empty() && !offers_basic {
        detail.push_str(&format!(
            "; note that it offers only {} authentication, and only Basic is supported",
            head.auth_schemes.join(", ")
        ));
    }
    ConnectError::ProxyAuth {
        target,
        proxy: proxy.to_string(),
        status_line: head.status_line,
        had_credentials: proxy.has_credentials(),
        detail,
    }
}

fn refused_hint(status: u16, target_port: u16) -> &'static str {
    match status {
        403 | 405 if target_port != 443 => {
            " (many proxies allow CONNECT only to port 443: try an https:// or wss:// server URL)"
        }
        403 => " (the proxy's policy does not allow this destination)",
        502..=504 => " (the proxy could not reach the server)",
        _ => "",
    }
}

// ---------------------------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------------------------

/// The system trust store, loaded once: loading it can take a noticeable time. A failure to
/// load it is remembered until the process restarts.
struct NativeRoots {
    store: RootCertStore,
    /// Why the store is empty or incomplete, if it is.
    problem: Option<String>,
}

fn native_roots() -> &'static NativeRoots {
    static NATIVE_ROOTS: OnceLock<NativeRoots> = OnceLock::new();
    NATIVE_ROOTS.get_or_init(|| {
        let loaded = rustls_native_certs::load_native_certs();
        let mut store = RootCertStore::empty();
        let (added, ignored) = store.add_parsable_certificates(loaded.certs);
        let problem = if loaded.errors.is_empty() {
            None
        } else {
            Some(
                loaded
                    .errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        };
        if let Some(problem) = &problem {
            if added > 0 {
                tracing::warn!(
                    added,
                    "parts of the system trust store could not be loaded: {problem}"
                );
            }
        }
        if ignored > 0 {
            tracing::debug!(
                ignored,
                "ignored unparsable certificates in the system trust store"
            );
        }
        tracing::debug!(added, "loaded the system trust store");
        NativeRoots { store, problem }
    })
}

/// Builds a TLS client configuration: the system trust store plus
/// [`ConnectOptions::extra_roots`], safe default protocol versions (TLS 1.2 and 1.3), the
/// given ALPN protocols. Callers that reconnect often may build it once and use
/// [`tls_handshake_with_config`] (which also lets TLS sessions be resumed).
pub fn tls_config(
    opts: &ConnectOptions,
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ClientConfig>, ConnectError> {
    build_tls_config(native_roots(), &opts.extra_roots, alpn)
}

fn build_tls_config(
    native: &NativeRoots,
    extra_roots: &[CertificateDer<'static>],
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ClientConfig>, ConnectError> {
    let mut roots = native.store.clone();
    for (i, cert) in extra_roots.iter().enumerate() {
        roots
            .add(cert.clone())
            .map_err(|e| ConnectError::TlsConfig {
                reason: format!("extra CA certificate #{} is not usable: {e}", i + 1),
            })?;
    }
    if roots.is_empty() {
        return Err(ConnectError::TlsConfig {
            reason: format!(
                "no trusted CA certificates: the system trust store {}; install the \
                 ca-certificates package or point SSL_CERT_FILE at a PEM bundle",
                match &native.problem {
                    Some(p) => format!("could not be loaded ({p})"),
                    None => "is empty".to_owned(),
                }
            ),
        });
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConnectError::TlsConfig {
            reason: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// Reads CA certificates from a PEM file, for [`ConnectOptions::extra_roots`]. Blocking: call
/// it while loading the configuration.
pub fn load_pem_roots(path: &Path) -> Result<Vec<CertificateDer<'static>>, ConnectError> {
    let error = |reason: String| ConnectError::TlsConfig {
        reason: format!("CA file {}: {reason}", path.display()),
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(e.to_string()))?;
    if certs.is_empty() {
        return Err(error(
            "contains no PEM certificates (-----BEGIN CERTIFICATE-----)".to_owned(),
        ));
    }
    Ok(certs)
}

/// Runs a TLS handshake for `target` over `stream` (a raw or wrapped TCP stream, possibly a
/// proxy tunnel), with a configuration from [`tls_config`] and bounded by
/// [`ConnectOptions::tls_timeout`].
pub async fn tls_handshake<S>(
    stream: S,
    target: &Target,
    opts: &ConnectOptions,
    alpn: &[&[u8]],
) -> Result<tokio_rustls::client::TlsStream<S>, ConnectError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let config = tls_config(opts, alpn)?;
    tls_handshake_with_config(stream, target, config, opts.tls_timeout).await
}

/// [`tls_handshake`] with a prepared configuration. The server name (SNI) is the target's
/// host; an IP address is sent no SNI and is checked against the certificate's IP addresses.
/// Certificates are always verified.
pub async fn tls_handshake_with_config<S>(
    stream: S,
    target: &Target,
    config: Arc<rustls::ClientConfig>,
    timeout: Duration,
) -> Result<tokio_rustls::client::TlsStream<S>, ConnectError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let name = ServerName::try_from(target.host.clone()).map_err(|e| ConnectError::TlsName {
        target: target.host_port(),
        reason: e.to_string(),
    })?;
    let connector = tokio_rustls::TlsConnector::from(config);
    match tokio::time::timeout(timeout, connector.connect(name, stream)).await {
        Ok(Ok(tls)) => Ok(tls),
        Ok(Err(source)) => Err(ConnectError::Tls {
            target: target.host_port(),
            hint: tls_hint(&source),
            source,
        }),
        Err(_) => Err(ConnectError::TlsTimeout {
            target: target.host_port(),
            timeout,
        }),
    }
}

/// Advice for a failed handshake, empty or starting with a space.
fn tls_hint(err: &io::Error) -> &'static str {
    let Some(tls) = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    else {
        return match err.kind() {
            io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset => {
                " (the connection was closed during the handshake: is this port speaking TLS?)"
            }
            _ => "",
        };
    };
    match tls {
        rustls::Error::InvalidCertificate(cert) => match cert {
            CertificateError::UnknownIssuer => {
                " (the certificate is not signed by a CA in the system trust store: if the \
                 server uses a private CA, add it to the trust store or the extra CA \
                 certificates; a proxy that intercepts TLS causes this too)"
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                " (the certificate is not issued for the host in the server URL: use a name \
                 the certificate covers)"
            }
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => {
                " (the certificate is outside its validity period, or this machine's clock is \
                 far off: certificates cannot be checked against a wrong clock; set the clock \
                 roughly first, e.g. from an http:// server)"
            }
            _ => "",
        },
        rustls::Error::InvalidMessage(_) => {
            " (the server did not answer with TLS: should the URL be http:// or ws://?)"
        }
        rustls::Error::NoApplicationProtocol => {
            " (the server supports none of the requested ALPN protocols)"
        }
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;

    // ---- URL parsing ------------------------------------------------------------------------

    #[test]
    fn parses_schemes_ports_and_paths() {
        let t = Target::parse("http://example.org").unwrap();
        assert_eq!(
            (t.scheme, t.host.as_str(), t.port, t.path_and_query.as_str()),
            (Scheme::Http, "example.org", 80, "/")
        );
        assert_eq!(t.authority(), "example.org");
        assert_eq!(t.host_port(), "example.org:80");

        let t = Target::parse(" HTTPS://Time.Example.ORG:8443/api/ms?x=1&y=2#frag ").unwrap();
        assert_eq!(t.scheme, Scheme::Https);
        assert_eq!(t.host, "time.example.org");
        assert_eq!(t.port, 8443);
        assert_eq!(t.path_and_query, "/api/ms?x=1&y=2");
        assert_eq!(t.authority(), "time.example.org:8443");
        assert_eq!(
            t.to_string(),
            "https://time.example.org:8443/api/ms?x=1&y=2"
        );

        let t = Target::parse("ws://h?q").unwrap();
        assert_eq!(
            (t.scheme, t.port, t.path_and_query.as_str()),
            (Scheme::Ws, 80, "/?q")
        );

        let t = Target::parse("wss://h:443/ws").unwrap();
        assert_eq!((t.scheme, t.port), (Scheme::Wss, 443));
        assert_eq!(t.authority(), "h");
        assert!(t.scheme.is_tls() && Scheme::Https.is_tls());
        assert!(!Scheme::Http.is_tls() && !Scheme::Ws.is_tls());
    }

    #[test]
    fn parses_ipv6_literals() {
        let t = Target::parse("ws://[::1]:8080/ws").unwrap();
        assert_eq!(t.host, "::1");
        assert_eq!(t.port, 8080);
        assert_eq!(t.authority(), "[::1]:8080");
        let t = Target::parse("https://[2001:DB8::1]").unwrap();
        assert_eq!(t.host, "2001:db8::1");
        assert_eq!(t.authority(), "[2001:db8::1]");
        assert_eq!(t.host_port(), "[2001:db8::1]:443");
    }

    #[test]
    fn rejects_bad_urls() {
        let err = |url: &str| Target::parse(url).unwrap_err().to_string();
        assert!(
            err("http://").contains("invalid server URL"),
            "{}",
            err("http://")
        );
        assert!(err("http:///path").contains("invalid server URL"));
        assert!(err("example.org/time").contains("no scheme"));
        let e = err("ftp://example.org/");
        assert!(
            e.contains("unsupported scheme \"ftp\"") && e.contains("https://"),
            "{e}"
        );
        assert!(err("http://example.org:0/").contains("port"));
        assert!(err("http://example.org:99999/").contains("invalid server URL"));
        assert!(err("http://[::1/").contains("without ']'"));
        assert!(err("http://::1/").contains("brackets"));
        assert!(
            err("http://[zz::1]/").contains("IPv6"),
            "{}",
            err("http://[zz::1]/")
        );
        let e = err("https://user:hunter2@example.org/");
        assert!(e.contains("password") && !e.contains("hunter2"), "{e}");
    }

    #[test]
    fn redacts_credentials() {
        assert_eq!(redact_userinfo("http://u:p@h:1/x@y"), "http://***@h:1/x@y");
        assert_eq!(redact_userinfo("u:p@h:1"), "***@h:1");
        assert_eq!(redact_userinfo("http://h:1/"), "http://h:1/");
    }

    // ---- Proxy URLs and environment rules -----------------------------------------------------

    #[test]
    fn parses_proxy_urls() {
        let p = Proxy::parse("http://us%40er:p%3Ass@Proxy.Corp:3128/", "https_proxy").unwrap();
        assert_eq!(
            (p.host(), p.port(), p.origin()),
            ("proxy.corp", 3128, "https_proxy")
        );
        let expected = base64::engine::general_purpose::STANDARD.encode("us@er:p:ss");
        assert_eq!(
            p.authorization.as_deref(),
            Some(format!("Basic {expected}").as_str())
        );
        assert_eq!(p.to_string(), "proxy.corp:3128 (from https_proxy)");
        assert!(!format!("{p:?}").contains(&expected));

        let p = Proxy::parse("proxy.corp", "all_proxy").unwrap();
        assert_eq!(
            (p.host(), p.port(), p.has_credentials()),
            ("proxy.corp", 1080, false)
        );
        let p = Proxy::parse("http://[::1]:8080", "configuration").unwrap();
        assert_eq!((p.host(), p.port()), ("::1", 8080));
        assert_eq!(p.to_string(), "[::1]:8080 (from configuration)");

        for (url, needle) in [
            ("socks5://proxy:1080", "only http:// proxies"),
            ("https://proxy:443", "only http:// proxies"),
            ("http://[bad", "invalid proxy URL"),
            ("http://:3128", "no host"),
        ] {
            let e = Proxy::parse(url, "https_proxy").unwrap_err().to_string();
            assert!(
                e.contains(needle) && e.contains("https_proxy"),
                "{url}: {e}"
            );
        }
        let e = Proxy::parse("http://u:secret@[bad", "https_proxy")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("secret"), "{e}");
    }

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    /// The proxy `host:port` chosen for `url` under the environment `vars`, or "direct".
    fn chosen(url: &str, vars: &[(&str, &str)]) -> String {
        let target = Target::parse(url).unwrap();
        match proxy_from_env(&target, &env_of(vars)).unwrap() {
            Some(p) => format!("{}:{} {}", p.host(), p.port(), p.origin()),
            None => "direct".to_owned(),
        }
    }

    #[test]
    fn env_proxy_variables() {
        /// (server URL, environment, expected choice)
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
        let cases: &[Case] = &[
            ("https://t.org/", &[], "direct"),
            (
                "https://t.org/",
                &[("https_proxy", "p1:3128")],
                "p1:3128 https_proxy",
            ),
            (
                "wss://t.org/",
                &[("https_proxy", "p1:3128")],
                "p1:3128 https_proxy",
            ),
            (
                "https://t.org/",
                &[("HTTPS_PROXY", "p2")],
                "p2:1080 HTTPS_PROXY",
            ),
            (
                "https://t.org/",
                &[("https_proxy", "lower:1"), ("HTTPS_PROXY", "upper:2")],
                "lower:1 https_proxy",
            ),
            ("https://t.org/", &[("http_proxy", "p:1")], "direct"),
            ("http://t.org/", &[("http_proxy", "p:1")], "p:1 http_proxy"),
            ("ws://t.org/", &[("http_proxy", "p:1")], "p:1 http_proxy"),
            ("ws://t.org/", &[("https_proxy", "p:1")], "direct"),
            // Upper-case HTTP_PROXY is ignored (httpoxy), even with nothing else set.
            ("http://t.org/", &[("HTTP_PROXY", "evil:1")], "direct"),
            (
                "http://t.org/",
                &[("HTTP_PROXY", "evil:1"), ("all_proxy", "a:2")],
                "a:2 all_proxy",
            ),
            ("http://t.org/", &[("ALL_PROXY", "A:3")], "a:3 ALL_PROXY"),
            (
                "http://t.org/",
                &[("all_proxy", "a:2"), ("ALL_PROXY", "b:3")],
                "a:2 all_proxy",
            ),
            (
                "https://t.org/",
                &[("https_proxy", "s:1"), ("all_proxy", "a:2")],
                "s:1 https_proxy",
            ),
            // Empty counts as unset.
            (
                "https://t.org/",
                &[("https_proxy", " "), ("all_proxy", "a:2")],
                "a:2 all_proxy",
            ),
        ];
        for (url, vars, want) in cases {
            assert_eq!(chosen(url, vars), *want, "{url} with {vars:?}");
        }
    }

    #[test]
    fn env_no_proxy_and_loopback() {
        let via = |url: &str, no_proxy: &str| {
            chosen(url, &[("all_proxy", "p:1"), ("no_proxy", no_proxy)]) != "direct"
        };
        // Loopback is never proxied from the environment.
        for url in [
            "http://127.0.0.1:8080/",
            "http://127.8.9.10/",
            "http://[::1]/",
            "http://localhost/",
            "http://LOCALHOST./",
            "http://a.localhost/",
        ] {
            assert!(!via(url, ""), "{url}");
        }
        // (url, no_proxy, proxied?)
        let cases = [
            ("http://t.org/", "", true),
            ("http://t.org/", "*", false),
            ("http://t.org/", "other.org, *", false),
            ("http://example.org/", "example.org", false),
            ("http://a.b.example.org/", "example.org", false),
            ("http://badexample.org/", "example.org", true),
            ("http://example.org/", ".example.org", false),
            ("http://a.example.org/", ".example.org", false),
            ("http://a.example.org/", "*.example.org", false),
            ("http://a.example.org/", "EXAMPLE.ORG", false),
            ("http://a.example.org./", "example.org.", false),
            ("http://a.example.org/", "  foo.com ,  example.org  ", false),
            ("http://example.org:8443/", "example.org:8443", false),
            ("http://example.org/", "example.org:8443", true),
            ("http://10.1.2.3/", "10.0.0.0/8", false),
            ("http://11.1.2.3/", "10.0.0.0/8", true),
            ("http://10.1.2.3:81/", "10.0.0.0/8:81", false),
            ("http://10.1.2.3/", "10.0.0.0/8:81", true),
            ("http://192.168.1.5/", "192.168.1.5", false),
            ("http://192.168.1.6/", "192.168.1.5", true),
            ("http://192.168.1.6/", "0.0.0.0/0", false),
            ("http://[2001:db8::5]/", "2001:db8::/32", false),
            ("http://[2001:db9::5]/", "2001:db8::/32", true),
            ("http://[2001:db8::1]/", "[2001:db8::1]", false),
            ("http://[2001:db8::1]:8080/", "[2001:db8::1]:8080", false),
            ("http://[2001:db8::1]/", "[2001:db8::1]:8080", true),
            ("http://[2001:db8::1]/", "[2001:db8::]/64", false),
            // Names are not resolved to match CIDR entries.
            ("http://t.org/", "10.0.0.0/8", true),
            // Bad entries are ignored.
            ("http://10.1.2.3/", "10.0.0.0/99, [::1, x:notaport", true),
        ];
        for (url, no_proxy, proxied) in cases {
            assert_eq!(
                via(url, no_proxy),
                proxied,
                "{url} with no_proxy={no_proxy:?}"
            );
        }
        // no_proxy wins over NO_PROXY; NO_PROXY is used when no_proxy is unset.
        let env = [
            ("all_proxy", "p:1"),
            ("no_proxy", "other.org"),
            ("NO_PROXY", "t.org"),
        ];
        assert_eq!(chosen("http://t.org/", &env), "p:1 all_proxy");
        let env = [("all_proxy", "p:1"), ("NO_PROXY", "t.org")];
        assert_eq!(chosen("http://t.org/", &env), "direct");
    }

    #[test]
    fn env_proxy_errors_name_the_variable() {
        let target = Target::parse("https://t.org/").unwrap();
        let env = env_of(&[("https_proxy", "socks5://p:1080")]);
        let e = proxy_from_env(&target, &env).unwrap_err().to_string();
        assert!(
            e.contains("https_proxy") && e.contains("only http://"),
            "{e}"
        );
        let env = env_of(&[("ALL_PROXY", "http://p:notaport")]);
        let e = proxy_from_env(&target, &env).unwrap_err().to_string();
        assert!(e.contains("ALL_PROXY"), "{e}");
        // A bypassed server does not care about a broken proxy variable.
        let env = env_of(&[("https_proxy", "socks5://p:1080"), ("no_proxy", "t.org")]);
        assert!(proxy_from_env(&target, &env).unwrap().is_none());
    }

    // ---- TCP --------------------------------------------------------------------------------

    fn opts_direct() -> ConnectOptions {
        ConnectOptions {
            proxy: ProxySetting::Off,
            connect_timeout: Duration::from_secs(5),
            ..ConnectOptions::default()
        }
    }

    /// An echo server on 127.0.0.1.
    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = sock.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    /// A loopback port with nothing listening.
    async fn closed_port() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    }

    async fn assert_echoes<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) {
        stream.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        stream.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
    }

    #[tokio::test]
    async fn open_tcp_direct() {
        let addr = echo_server().await;
        let target = Target::parse(&format!("http://{addr}/")).unwrap();
        let mut stream = open_tcp(&target, &opts_direct()).await.unwrap();
        assert!(stream.nodelay().unwrap());
        assert_echoes(&mut stream).await;
    }

    #[tokio::test]
    async fn falls_back_to_next_address() {
        let closed = closed_port().await;
        let open = echo_server().await;
        let target = Target::parse("http://t.org/").unwrap();
        let mut stream = connect_resolved(&target, None, &[closed, open], Duration::from_secs(5))
            .await
            .unwrap();
        assert_echoes(&mut stream).await;

        let closed2 = closed_port().await;
        let e = connect_resolved(&target, None, &[closed, closed2], Duration::from_secs(5))
            .await
            .unwrap_err();
        let ConnectError::Connect { attempts, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(attempts.0.len(), 2);
        assert!(attempts
            .0
            .iter()
            .all(|(_, err)| err.kind() == io::ErrorKind::ConnectionRefused));
        let msg = e.to_string();
        assert!(
            msg.starts_with("t.org:80: cannot connect to the server: "),
            "{msg}"
        );
        assert!(
            msg.contains(&closed.to_string()) && msg.contains(&closed2.to_string()),
            "{msg}"
        );
        assert!(!msg.contains("http_proxy="), "{msg}");
    }

    #[tokio::test]
    async fn unresolvable_name() {
        let target = Target::parse("https://nonexistent.invalid/").unwrap();
        let e = open_tcp(&target, &opts_direct()).await.unwrap_err();
        assert!(
            matches!(e, ConnectError::Resolve { proxy: None, .. }),
            "{e:?}"
        );
        let msg = e.to_string();
        assert!(
            msg.starts_with("nonexistent.invalid:443: cannot resolve the host name: "),
            "{msg}"
        );
        assert!(msg.contains("https_proxy="), "{msg}");
    }

    /// Every attempt times out: the connector never completes, time is paused, so the timeout
    /// path runs deterministically without any network.
    #[tokio::test(start_paused = true)]
    async fn connect_timeout_per_address() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
        let start = tokio::time::Instant::now();
        let result: Result<(), _> = connect_any(&[a, b], Duration::from_millis(300), |_| {
            std::future::pending::<io::Result<()>>()
        })
        .await;
        let failures = result.unwrap_err();
        assert_eq!(start.elapsed(), Duration::from_millis(600));
        assert_eq!(failures.len(), 2);
        assert_eq!(failures[0].0, a);
        assert_eq!(failures[0].1.kind(), io::ErrorKind::TimedOut);
        assert!(failures[1].1.to_string().contains("300ms"));

        // A timeout on the first address moves on to the second.
        let got = connect_any(&[a, b], Duration::from_millis(300), |addr| async move {
            if addr == a {
                std::future::pending().await
            } else {
                Ok(addr.port())
            }
        })
        .await
        .unwrap();
        assert_eq!(got, 2);
    }

    /// A real socket that never completes the handshake: a listener with backlog 0 whose
    /// accept queue is already full drops further SYNs (Linux behaviour).
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn connect_timeout_on_full_backlog() {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(0).unwrap();
        let addr = listener.local_addr().unwrap();
        // Fill the accept queue; never accept.
        let mut fillers = Vec::new();
        for _ in 0..4 {
            match tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr)).await {
                Ok(Ok(s)) => fillers.push(s),
                _ => break,
            }
        }
        let target = Target::parse(&format!("http://{addr}/")).unwrap();
        let opts = ConnectOptions {
            connect_timeout: Duration::from_millis(200),
            ..opts_direct()
        };
        let e = open_tcp(&target, &opts).await.unwrap_err();
        let ConnectError::Connect { attempts, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(attempts.0[0].1.kind(), io::ErrorKind::TimedOut, "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("{addr}: no answer within 200ms")),
            "{msg}"
        );
        assert!(msg.ends_with("set http_proxy=http://PROXY:PORT)"), "{msg}");
        drop(listener);
    }

    // ---- Proxy --------------------------------------------------------------------------------

    enum ProxyBehaviour {
        /// Open the tunnel (loopback targets only); demand this `Proxy-Authorization` if set.
        Tunnel { auth: Option<String> },
        /// Answer with these bytes and keep the connection open.
        Reply(Vec<u8>),
        /// Read the request, never answer.
        Silent,
    }

    /// A tiny CONNECT proxy. Each request head it reads is sent on the channel.
    async fn spawn_proxy(
        behaviour: ProxyBehaviour,
    ) -> (SocketAddr, mpsc::UnboundedReceiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        let behaviour = Arc::new(behaviour);
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let tx = tx.clone();
                let behaviour = Arc::clone(&behaviour);
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        if client.read(&mut byte).await.unwrap_or(0) == 0 {
                            return;
                        }
                        head.push(byte[0]);
                    }
                    let head = String::from_utf8(head).unwrap();
                    let _ = tx.send(head.clone());
                    match &*behaviour {
                        ProxyBehaviour::Tunnel { auth } => {
                            if let Some(auth) = auth {
                                if !head.contains(&format!("\r\nProxy-Authorization: {auth}\r\n")) {
                                    let _ = client
                                        .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"t\"\r\nContent-Length: 0\r\n\r\n")
                                        .await;
                                    return;
                                }
                            }
                            let dest = head
                                .strip_prefix("CONNECT ")
                                .and_then(|r| r.split(' ').next())
                                .unwrap()
                                .to_owned();
                            assert!(dest.starts_with("127.0.0.1:"), "{dest}");
                            let mut upstream = match TcpStream::connect(&dest).await {
                                Ok(s) => s,
                                Err(_) => {
                                    let _ =
                                        client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                                    return;
                                }
                            };
                            client
                                .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                                .await
                                .unwrap();
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                        }
                        ProxyBehaviour::Reply(bytes) => {
                            let _ = client.write_all(bytes).await;
                            let mut sink = Vec::new();
                            let _ = client.read_to_end(&mut sink).await;
                        }
                        ProxyBehaviour::Silent => {
                            let mut sink = Vec::new();
                            let _ = client.read_to_end(&mut sink).await;
                        }
                    }
                });
            }
        });
        (addr, rx)
    }

    fn opts_proxy(proxy_url: String) -> ConnectOptions {
        ConnectOptions {
            proxy: ProxySetting::Url(proxy_url),
            connect_timeout: Duration::from_secs(5),
            ..ConnectOptions::default()
        }
    }

    #[tokio::test]
    async fn tunnels_through_proxy() {
        let echo = echo_server().await;
        let (proxy, mut heads) = spawn_proxy(ProxyBehaviour::Tunnel { auth: None }).await;
        let target = Target::parse(&format!("ws://{echo}/ws")).unwrap();
        let mut stream = open_tcp(&target, &opts_proxy(format!("http://{proxy}")))
            .await
            .unwrap();
        assert_echoes(&mut stream).await;
        let head = heads.recv().await.unwrap();
        assert!(
            head.starts_with(&format!("CONNECT {echo} HTTP/1.1\r\nHost: {echo}\r\n")),
            "{head}"
        );
        assert!(!head.contains("Proxy-Authorization"), "{head}");
    }

    #[tokio::test]
    async fn tunnels_with_basic_auth() {
        let echo = echo_server().await;
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("al ice:s3:cr@t")
        );
        let (proxy, _heads) = spawn_proxy(ProxyBehaviour::Tunnel {
            auth: Some(expected),
        })
        .await;
        let target = Target::parse(&format!("http://{echo}/")).unwrap();
        let url = format!("http://al%20ice:s3%3Acr%40t@{proxy}/");
        let mut stream = open_tcp(&target, &opts_proxy(url)).await.unwrap();
        assert_echoes(&mut stream).await;

        // Wrong password: 407 with credentials.
        let url = format!("http://alice:wrong@{proxy}/");
        let e = open_tcp(&target, &opts_proxy(url)).await.unwrap_err();
        assert!(
            matches!(
                e,
                ConnectError::ProxyAuth {
                    had_credentials: true,
                    ..
                }
            ),
            "{e:?}"
        );
        let msg = e.to_string();
        assert!(
            msg.contains("did not accept the user name and password"),
            "{msg}"
        );
        assert!(!msg.contains("wrong"), "{msg}");

        // No credentials: 407 saying how to give them.
        let e = open_tcp(&target, &opts_proxy(format!("http://{proxy}")))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.starts_with(&format!("{echo}: proxy {proxy} (from configuration) answered \"HTTP/1.1 407 Proxy Authentication Required\"")), "{e}");
        assert!(
            e.contains("requires authentication") && e.contains("USER:PASSWORD@"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn proxy_offering_only_ntlm() {
        let (proxy, _) = spawn_proxy(ProxyBehaviour::Reply(
            b"HTTP/1.1 407 Denied\r\nProxy-Authenticate: NTLM\r\nProxy-Authenticate: Negotiate\r\n\r\n".to_vec(),
        ))
        .await;
        let target = Target::parse("https://127.0.0.1:9/").unwrap();
        let e = open_tcp(&target, &opts_proxy(format!("http://{proxy}")))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("offers only NTLM, Negotiate") && e.contains("only Basic"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn proxy_refusals_and_bad_answers() {
        let target = Target::parse("http://127.0.0.1:9/").unwrap();
        let cases: Vec<(&[u8], &str)> = vec![
            (b"HTTP/1.1 502 Bad Gateway\r\n\r\n", "refused the tunnel, answering \"HTTP/1.1 502 Bad Gateway\" (the proxy could not reach the server)"),
            (b"HTTP/1.0 403 Forbidden\r\nContent-Length: 5\r\n\r\nnope!", "only to port 443"),
            (b"HTTP/1.1 200 OK\r\n\r\nHELLO", "5 unexpected bytes"),
            (b"SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP response: \"SSH-2.0-OpenSSH\""),
            (b"HTTP/1.1 200 OK\r\n", "did not answer CONNECT within"),
        ];
        for (reply, needle) in cases {
            let (proxy, _) = spawn_proxy(ProxyBehaviour::Reply(reply.to_vec())).await;
            let opts = ConnectOptions {
                connect_timeout: Duration::from_millis(500),
                ..opts_proxy(format!("http://{proxy}"))
            };
            let e = open_tcp(&target, &opts).await.unwrap_err().to_string();
            assert!(e.starts_with("127.0.0.1:9: proxy "), "{e}");
            assert!(e.contains(needle), "{needle:?} not in {e}");
        }
        let (proxy, _) = spawn_proxy(ProxyBehaviour::Reply(
            b"HTTP/1.1 502 Bad Gateway\r\n\r\n".to_vec(),
        ))
        .await;
        let e = open_tcp(&target, &opts_proxy(format!("http://{proxy}")))
            .await
            .unwrap_err();
        assert!(
            matches!(e, ConnectError::ProxyRefused { status: 502, .. }),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn proxy_interim_response_oversize_and_silence() {
        let echo_target = Target::parse("http://127.0.0.1:9/").unwrap();
        // 100 Continue then 200: accepted.
        let (proxy, _) = spawn_proxy(ProxyBehaviour::Reply(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n".to_vec(),
        ))
        .await;
        open_tcp(&echo_target, &opts_proxy(format!("http://{proxy}")))
            .await
            .unwrap();
        // Endless header.
        let mut big = b"HTTP/1.1 200 OK\r\n".to_vec();
        big.extend(std::iter::repeat_n(b'x', 9000));
        let (proxy, _) = spawn_proxy(ProxyBehaviour::Reply(big)).await;
        let e = open_tcp(&echo_target, &opts_proxy(format!("http://{proxy}")))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("within 8192 bytes"), "{e}");
        // No answer at all.
        let (proxy, _) = spawn_proxy(ProxyBehaviour::Silent).await;
        let opts = ConnectOptions {
            connect_timeout: Duration::from_millis(200),
            ..opts_proxy(format!("http://{proxy}"))
        };
        let e = open_tcp(&echo_target, &opts).await.unwrap_err();
        assert!(matches!(e, ConnectError::ProxyTimeout { .. }), "{e:?}");
    }

    #[tokio::test]
    async fn unreachable_proxy_is_named() {
        let closed = closed_port().await;
        let target = Target::parse("https://time.example.org/").unwrap();
        let e = open_tcp(&target, &opts_proxy(format!("http://{closed}")))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!("time.example.org:443: cannot connect to proxy {closed} (from configuration): {closed}: ")),
            "{e}"
        );
        assert!(!e.contains("https_proxy="), "{e}");
    }

    #[tokio::test]
    async fn proxy_response_parsing_in_memory() {
        // A proxy that answers with a bare-LF head and extra bytes arriving later is fine:
        // the later bytes stay in the stream.
        let (mut client, mut server) = tokio::io::duplex(4096);
        let target = Target::parse("https://t.org/").unwrap();
        let proxy = Proxy::parse("http://p:1", "configuration").unwrap();
        let server_task = tokio::spawn(async move {
            let mut buf = vec![0u8; 1024];
            let n = server.read(&mut buf).await.unwrap();
            assert!(buf[..n].starts_with(b"CONNECT t.org:443 HTTP/1.1\r\nHost: t.org:443\r\n"));
            server.write_all(b"HTTP/1.1 200 OK\n\n").await.unwrap();
            server
        });
        proxy_connect(&mut client, &target, &proxy).await.unwrap();
        let mut server = server_task.await.unwrap();
        server.write_all(b"later").await.unwrap();
        let mut buf = [0u8; 5];
        client.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"later");
    }

    // ---- TLS --------------------------------------------------------------------------------

    struct TestPki {
        ca: CertificateDer<'static>,
        ca_pem: String,
        server: Arc<rustls::ServerConfig>,
    }

    fn make_ca(name: &str) -> (rcgen::Certificate, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        (params.self_signed(&key).unwrap(), key)
    }

    /// A CA and a server config presenting a `localhost`/127.0.0.1 certificate it signed.
    fn test_pki(expired: bool) -> TestPki {
        let (ca, ca_key) = make_ca("webntpd test CA");
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .unwrap();
        if expired {
            params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        }
        let leaf = params.signed_by(&key, &ca, &ca_key).unwrap();
        let key_der = rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
        let mut server = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone(), ca.der().clone()], key_der)
        .unwrap();
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        TestPki {
            ca: ca.der().clone(),
            ca_pem: ca.pem(),
            server: Arc::new(server),
        }
    }

    /// A TLS server on 127.0.0.1 that sends "hello" after the handshake.
    async fn tls_server(config: Arc<rustls::ServerConfig>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(mut tls) = acceptor.accept(sock).await {
                        let _ = tls.write_all(b"hello").await;
                        let _ = tls.flush().await;
                        let mut sink = [0u8; 16];
                        let _ = tls.read(&mut sink).await;
                    }
                });
            }
        });
        addr
    }

    fn opts_tls(roots: Vec<CertificateDer<'static>>) -> ConnectOptions {
        ConnectOptions {
            extra_roots: roots,
            tls_timeout: Duration::from_secs(5),
            ..opts_direct()
        }
    }

    /// Connects to `addr` and runs the handshake as if for `url`.
    async fn handshake(
        addr: SocketAddr,
        url: &str,
        opts: &ConnectOptions,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, ConnectError> {
        let target = Target::parse(url).unwrap();
        let tcp = TcpStream::connect(addr).await.unwrap();
        tls_handshake(tcp, &target, opts, &[b"http/1.1"]).await
    }

    #[tokio::test]
    async fn tls_succeeds_with_extra_root() {
        let pki = test_pki(false);
        let addr = tls_server(pki.server.clone()).await;
        let opts = opts_tls(vec![pki.ca.clone()]);
        for host in ["localhost", "127.0.0.1"] {
            let url = format!("https://{host}:{}/", addr.port());
            let mut tls = handshake(addr, &url, &opts).await.unwrap();
            assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
            let mut buf = [0u8; 5];
            tls.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"hello");
        }
    }

    #[tokio::test]
    async fn tls_through_proxy() {
        let pki = test_pki(false);
        let addr = tls_server(pki.server.clone()).await;
        let (proxy, mut heads) = spawn_proxy(ProxyBehaviour::Tunnel { auth: None }).await;
        let target = Target::parse(&format!("wss://127.0.0.1:{}/ws", addr.port())).unwrap();
        let opts = ConnectOptions {
            proxy: ProxySetting::Url(format!("http://{proxy}")),
            ..opts_tls(vec![pki.ca.clone()])
        };
        let tcp = open_tcp(&target, &opts).await.unwrap();
        let mut tls = tls_handshake(tcp, &target, &opts, &[]).await.unwrap();
        let mut buf = [0u8; 5];
        tls.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hello");
        assert!(heads
            .recv()
            .await
            .unwrap()
            .starts_with(&format!("CONNECT {addr} ")));
    }

    #[tokio::test]
    async fn tls_unknown_issuer() {
        let pki = test_pki(false);
        let addr = tls_server(pki.server.clone()).await;
        // A root store with an unrelated CA only, so the result does not depend on the
        // machine's trust store.
        let (other_ca, _) = make_ca("some other CA");
        let native = NativeRoots {
            store: RootCertStore::empty(),
            problem: None,
        };
        let config = build_tls_config(&native, &[other_ca.der().clone()], &[]).unwrap();
        let target = Target::parse(&format!("https://localhost:{}/", addr.port())).unwrap();
        let tcp = TcpStream::connect(addr).await.unwrap();
        let e = tls_handshake_with_config(tcp, &target, config, Duration::from_secs(5))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!(
                "localhost:{}: TLS handshake failed: invalid peer certificate: UnknownIssuer (",
                addr.port()
            )),
            "{e}"
        );
        assert!(e.contains("trust store"), "{e}");
        // The same through the public API: whatever the system store holds, it is not this CA.
        let e = handshake(addr, &target.to_string(), &opts_tls(vec![]))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("UnknownIssuer") || e.contains("TLS setup"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn tls_wrong_name() {
        let pki = test_pki(false);
        let addr = tls_server(pki.server.clone()).await;
        let opts = opts_tls(vec![pki.ca.clone()]);
        let url = format!("https://wrong.example:{}/", addr.port());
        let e = handshake(addr, &url, &opts).await.unwrap_err();
        assert!(matches!(e, ConnectError::Tls { .. }), "{e:?}");
        let e = e.to_string();
        assert!(
            e.starts_with(&format!(
                "wrong.example:{}: TLS handshake failed: ",
                addr.port()
            )),
            "{e}"
        );
        assert!(
            e.contains("not valid for name") && e.contains("not issued for the host"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn tls_expired_certificate_mentions_clock() {
        let pki = test_pki(true);
        let addr = tls_server(pki.server.clone()).await;
        let url = format!("https://localhost:{}/", addr.port());
        let e = handshake(addr, &url, &opts_tls(vec![pki.ca.clone()]))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("expired") && e.contains("clock"), "{e}");
    }

    #[tokio::test]
    async fn tls_to_plain_server_and_timeout() {
        let pki = test_pki(false);
        // A plain HTTP server.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let plain = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 512];
                    let _ = sock.read(&mut buf).await;
                    let _ = sock
                        .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                        .await;
                    let _ = sock.read(&mut buf).await;
                });
            }
        });
        let url = format!("https://localhost:{}/", plain.port());
        let e = handshake(plain, &url, &opts_tls(vec![pki.ca.clone()]))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("did not answer with TLS"), "{e}");

        // A server that accepts and says nothing.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mute = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((sock, _)) = listener.accept().await {
                held.push(sock);
            }
        });
        let opts = ConnectOptions {
            tls_timeout: Duration::from_millis(200),
            ..opts_tls(vec![pki.ca.clone()])
        };
        let e = handshake(mute, &format!("https://localhost:{}/", mute.port()), &opts)
            .await
            .unwrap_err();
        assert!(matches!(e, ConnectError::TlsTimeout { .. }), "{e:?}");
    }

    #[test]
    fn tls_config_errors() {
        let empty = NativeRoots {
            store: RootCertStore::empty(),
            problem: Some("no such file".to_owned()),
        };
        let e = build_tls_config(&empty, &[], &[]).unwrap_err().to_string();
        assert!(
            e.contains("no trusted CA")
                && e.contains("no such file")
                && e.contains("SSL_CERT_FILE"),
            "{e}"
        );
        let junk = CertificateDer::from(vec![1u8, 2, 3]);
        let e = build_tls_config(&empty, &[junk], &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("extra CA certificate #1"), "{e}");
    }

    #[test]
    fn loads_pem_roots() {
        let pki = test_pki(false);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, &pki.ca_pem).unwrap();
        assert_eq!(load_pem_roots(&path).unwrap(), vec![pki.ca.clone()]);
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "nothing here\n").unwrap();
        let e = load_pem_roots(&empty).unwrap_err().to_string();
        assert!(
            e.contains("empty.pem") && e.contains("no PEM certificates"),
            "{e}"
        );
        let e = load_pem_roots(&dir.path().join("missing.pem"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.pem"), "{e}");
    }
}
