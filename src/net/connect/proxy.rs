//! HTTP proxies: which one to use (curl's environment rules) and the `CONNECT` tunnel.

use super::*;

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
    pub(super) host: String,
    pub(super) port: u16,
    /// `Basic ...` value for `Proxy-Authorization`, from the URL's user name and password.
    pub(super) authorization: Option<String>,
    /// Where the setting came from: a variable name, or "configuration".
    pub(super) origin: String,
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
pub(super) fn proxy_from_env(
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
pub(super) fn first_set<'n>(
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
pub(crate) fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost"
        || host.ends_with(".localhost")
        || host
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

/// Whether a `no_proxy` list says `target` should be reached directly.
pub(super) fn no_proxy_matches(list: &str, target: &Target) -> bool {
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
pub(super) struct NoProxyEntry {
    pattern: NoProxyPattern,
    /// Only this port, if given.
    port: Option<u16>,
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum NoProxyPattern {
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

pub(super) fn ip_in_net(ip: IpAddr, net: IpAddr, len: u8) -> bool {
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

// ---------------------------------------------------------------------------------------------
// HTTP CONNECT
// ---------------------------------------------------------------------------------------------

/// Asks the proxy on `stream` for a tunnel to `target` and checks its answer. On success the
/// stream is positioned at the first byte from the server.
pub(super) async fn proxy_connect<S>(
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
pub(super) fn find_head_end(buf: &[u8]) -> Option<usize> {
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
pub(super) fn quote_start(bytes: &[u8]) -> String {
    let line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    String::from_utf8_lossy(line)
        .trim_end_matches('\r')
        .chars()
        .take(MAX_QUOTED_STATUS)
        .collect()
}

/// The parts of a proxy's response head that matter here.
#[derive(Debug)]
pub(super) struct ResponseHead {
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

pub(super) fn auth_error(target: String, proxy: &Proxy, head: ResponseHead) -> ConnectError {
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

pub(super) fn refused_hint(status: u16, target_port: u16) -> &'static str {
    match status {
        403 | 405 if target_port != 443 => {
            " (many proxies allow CONNECT only to port 443: try an https:// or wss:// server URL)"
        }
        403 => " (the proxy's policy does not allow this destination)",
        502..=504 => " (the proxy could not reach the server)",
        _ => "",
    }
}
