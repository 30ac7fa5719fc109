//! Tests of connection setup, on loopback only.

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
async fn spawn_proxy(behaviour: ProxyBehaviour) -> (SocketAddr, mpsc::UnboundedReceiver<String>) {
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
                                let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
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
        b"HTTP/1.1 407 Denied\r\nProxy-Authenticate: NTLM\r\nProxy-Authenticate: Negotiate\r\n\r\n"
            .to_vec(),
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
        e.contains("no trusted CA") && e.contains("no such file") && e.contains("SSL_CERT_FILE"),
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
