//! Server URLs: the schemes webntpd speaks, and where a URL says to connect.

use super::*;

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
    pub(super) fn proxy_env_var(self) -> &'static str {
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

    /// Whether the host is this machine: `localhost`, `*.localhost`, 127.0.0.0/8 or `::1`.
    pub fn is_loopback(&self) -> bool {
        super::proxy::is_loopback_host(&self.host)
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
pub(super) fn bracket_host(host: &str) -> Cow<'_, str> {
    if host.contains(':') {
        Cow::Owned(format!("[{host}]"))
    } else {
        Cow::Borrowed(host)
    }
}

/// Catches mistakes for which `http::Uri` gives vague errors. `rest` follows `scheme://`.
pub(super) fn precheck_authority(rest: &str) -> Result<(), &'static str> {
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
pub(super) struct AuthorityParts<'a> {
    pub(super) userinfo: Option<&'a str>,
    /// Without brackets.
    pub(super) host: &'a str,
    pub(super) port: Option<u16>,
}

/// Splits an authority already checked for valid characters by `http::Uri`.
pub(super) fn split_authority(authority: &str) -> Result<AuthorityParts<'_>, &'static str> {
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

pub(super) fn parse_port(s: &str) -> Option<u16> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u16>().ok().filter(|&p| p != 0)
}

/// Replaces the user name and password of a URL with `***`, for messages and logs.
pub(super) fn redact_userinfo(url: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[start..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}***{}", &url[..start], &rest[at..]),
        None => url.to_owned(),
    }
}
