//! Shared pieces of the end-to-end tests: a server started in-process on 127.0.0.1:0 with a
//! clock the test controls, the real binary started as a child process, and a raw HTTP/1.1
//! exchange over a plain socket so tests can assert exact bytes.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use webntpd::clock::{ManualClock, SharedClock, SystemClock};
use webntpd::leap::store::LeapStore;
use webntpd::server::{Limits, ListenAddr, Server, ServerConfig};
use webntpd::sync::Timestamp;

/// A server running inside the test's runtime.
pub struct TestServer {
    /// The plain HTTP address.
    pub addr: SocketAddr,
    /// Every bound address with whether it is TLS.
    pub addrs: Vec<(SocketAddr, bool)>,
    /// Cancel to shut the server down.
    pub shutdown: CancellationToken,
    /// Finishes when the server has shut down.
    pub task: tokio::task::JoinHandle<()>,
    /// Its counters (connections, parked, requests...).
    pub metrics: webntpd::server::ServerMetrics,
}

impl TestServer {
    /// Shut down and wait, failing the test if it takes longer than `within`.
    pub async fn stop_within(self, within: Duration) {
        self.shutdown.cancel();
        tokio::time::timeout(within, self.task)
            .await
            .expect("server shut down in time")
            .expect("server task did not panic");
    }
}

/// A loopback listener on port 0.
pub fn any_port() -> ListenAddr {
    ListenAddr("127.0.0.1:0".parse().unwrap())
}

/// A config listening on 127.0.0.1:0 with default limits.
pub fn config() -> ServerConfig {
    ServerConfig {
        listen: vec![any_port()],
        ..ServerConfig::default()
    }
}

/// Start a server with `config`, `clock` and `leap`.
pub async fn start_with(
    config: ServerConfig,
    clock: SharedClock,
    leap: Arc<LeapStore>,
) -> TestServer {
    let server = Server::bind(config, clock, leap)
        .await
        .expect("server binds");
    let addrs = server.local_addrs();
    let addr = addrs
        .iter()
        .find(|(_, tls)| !tls)
        .or(addrs.first())
        .map(|(a, _)| *a)
        .expect("a listener");
    let shutdown = CancellationToken::new();
    let metrics = server.metrics();
    let task = tokio::spawn(server.run(shutdown.clone()));
    TestServer {
        addr,
        addrs,
        shutdown,
        task,
        metrics,
    }
}

/// Start a server on the system clock without leap data.
pub async fn start(config: ServerConfig) -> TestServer {
    start_with(config, SystemClock::shared(), Arc::new(LeapStore::empty())).await
}

/// A clock standing still at `secs` (a decimal timestamp string).
pub fn frozen_clock(secs: &str) -> Arc<ManualClock> {
    Arc::new(ManualClock::new(Timestamp::parse(secs).unwrap()))
}

/// Limits with short timeouts, for tests of the timeouts.
pub fn quick_limits() -> Limits {
    Limits {
        header_read_timeout: Duration::from_millis(400),
        keepalive_timeout: Duration::from_millis(600),
        ws_idle_timeout: Duration::from_millis(600),
        shutdown_timeout: Duration::from_secs(2),
        ..Limits::default()
    }
}

/// A parsed HTTP/1.1 response.
#[derive(Debug)]
pub struct RawResponse {
    /// Status code.
    pub status: u16,
    /// Header lines as (lower-case name, value), in order.
    pub headers: Vec<(String, String)>,
    /// The body (by Content-Length; empty for HEAD/204).
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first header called `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("UTF-8 body")
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

/// Send `request` (raw bytes) on `stream` and read one response. `head_only`: the request
/// was HEAD, so no body follows whatever Content-Length says.
pub async fn exchange(stream: &mut TcpStream, request: &str, head_only: bool) -> RawResponse {
    stream.write_all(request.as_bytes()).await.unwrap();
    read_response(stream, head_only).await
}

/// Read one HTTP/1.1 response from `stream`.
pub async fn read_response(stream: &mut TcpStream, head_only: bool) -> RawResponse {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
            .await
            .expect("response within 5 s")
            .unwrap();
        assert!(
            n > 0,
            "connection closed before a full response head: {buf:?}"
        );
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.trim().to_ascii_lowercase(), v.trim().to_string())
        })
        .collect();
    let len: usize = if head_only || status == 204 || status == 101 {
        0
    } else {
        headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map(|(_, v)| v.parse().unwrap())
            .expect("Content-Length on every body")
    };
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed mid-body");
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(len);
    RawResponse {
        status,
        headers,
        body,
    }
}

/// One GET on a new connection.
pub async fn get(addr: SocketAddr, target: &str) -> RawResponse {
    request(addr, "GET", target, "").await
}

/// One request with extra header lines (each ending in `\r\n`) on a new connection.
pub async fn request(addr: SocketAddr, method: &str, target: &str, extra: &str) -> RawResponse {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\n{extra}\r\n");
    exchange(&mut s, &req, method == "HEAD").await
}

/// Read from `stream` until EOF or error, failing if that takes longer than `within`;
/// returns what was read.
pub async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Vec<u8> {
    let mut all = Vec::new();
    tokio::time::timeout(within, async {
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => all.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await
    .expect("the server closed the connection in time");
    all
}

/// The built `webntpd` binary.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_webntpd"))
}

/// The real binary running `webntpd serve ARGS` with `--listen 127.0.0.1:0` (unless ARGS
/// has a listener), killed on drop.
pub struct ChildServer {
    /// The process.
    pub child: Child,
    /// Every `scheme://addr/` it reported listening on, in order.
    pub urls: Vec<String>,
    /// Lines logged to stderr after start-up (collected in the background).
    pub log: Arc<std::sync::Mutex<Vec<String>>>,
}

impl ChildServer {
    /// Start it and wait until it has logged every listener it was given.
    pub fn start(args: &[&str]) -> ChildServer {
        let mut cmd = Command::new(binary());
        cmd.arg("serve");
        let has_listener = args
            .iter()
            .any(|a| *a == "--listen" || *a == "--tls-listen");
        if !has_listener {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        cmd.args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        Self::spawn(
            cmd,
            if has_listener {
                args.iter().filter(|a| a.ends_with("listen")).count()
            } else {
                1
            },
        )
    }

    /// Start it on 127.0.0.1:0 with its realtime clock shifted by `offset` (libfaketime's
    /// syntax, e.g. `+0.25` seconds) and the monotonic clock untouched: a server whose error
    /// is known, with no Clock trait involved.
    pub fn start_shifted(offset: &str) -> ChildServer {
        let mut cmd = Command::new(binary());
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .env("LD_PRELOAD", libfaketime())
            .env("FAKETIME", offset)
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
            .env("FAKETIME_NO_CACHE", "1")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        ChildServer::spawn(cmd, 1)
    }

    /// Start it with a TLS listener on 127.0.0.1:0 serving `pki`'s certificate, plus `extra`
    /// arguments (which may add more listeners).
    pub fn start_tls(pki: &Pki, extra: &[&str]) -> ChildServer {
        let (_, cert, key) = pki.paths();
        let mut args = vec![
            "--tls-listen",
            "127.0.0.1:0",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ];
        args.extend_from_slice(extra);
        ChildServer::start(&args)
    }

    /// Start an arbitrary command that logs `listening on URL` lines, expecting `listeners` of them.
    pub fn spawn(mut cmd: Command, listeners: usize) -> ChildServer {
        let mut child = cmd.spawn().expect("webntpd starts");
        let stderr = child.stderr.take().unwrap();
        let mut reader = BufReader::new(stderr);
        let mut urls = Vec::new();
        let mut early = Vec::new();
        while urls.len() < listeners {
            let mut line = String::new();
            let n = reader.read_line(&mut line).unwrap();
            assert!(
                n > 0,
                "webntpd exited before listening; it said: {early:#?}"
            );
            if let Some(i) = line.find("listening on ") {
                urls.push(line[i + "listening on ".len()..].trim().to_string());
            }
            early.push(line);
        }
        let log = Arc::new(std::sync::Mutex::new(early));
        let log2 = log.clone();
        std::thread::spawn(move || {
            for line in reader.lines() {
                match line {
                    Ok(l) => log2.lock().unwrap().push(l),
                    Err(_) => break,
                }
            }
        });
        ChildServer { child, urls, log }
    }

    /// `host:port` of the first listener.
    pub fn authority(&self) -> String {
        self.urls[0]
            .split("://")
            .nth(1)
            .unwrap()
            .trim_end_matches('/')
            .to_string()
    }

    /// Send a signal to the process.
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), sig).unwrap();
    }

    /// Wait for exit, failing after `within`; returns the exit code.
    pub fn wait_exit(&mut self, within: Duration) -> i32 {
        let start = std::time::Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(
                start.elapsed() < within,
                "webntpd did not exit within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything logged so far, one string.
    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Python interpreter that has the `websockets` library (Debian's python3-websockets,
/// installed by `.ci/run`), or a failing test that says how to install it.
pub fn python_with_websockets() -> &'static str {
    let python = "/usr/bin/python3";
    let ok = Command::new(python)
        .args(["-c", "import websockets"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "these tests drive Python's websockets library: install it with \
         `apt-get install python3-websockets` (or run .ci/run, which does)"
    );
    python
}

/// libfaketime, which shifts the realtime clock of a dynamically linked program (Debian's
/// `faketime` package; `.ci/run` installs it).
pub fn libfaketime() -> &'static str {
    let path = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
    assert!(
        std::path::Path::new(path).exists(),
        "this test injects a clock error with libfaketime: apt-get install faketime \
         (or run .ci/run, which does)"
    );
    path
}

/// `curl`, or a failing test that says how to install it.
pub fn curl() -> &'static str {
    let ok = Command::new("curl")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "these tests drive curl: install it with `apt-get install curl` (or run .ci/run)"
    );
    "curl"
}

/// The fields of a compact reply object (with or without its trailing newline), in order,
/// as (name, raw value text), so tests can check field order and number formats exactly.
pub fn fields(reply: &str) -> Vec<(String, String)> {
    let inner = reply
        .trim_end_matches('\n')
        .strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .unwrap_or_else(|| panic!("not a compact JSON object: {reply:?}"));
    inner
        .split(',')
        .map(|kv| {
            let (k, v) = kv.split_once(':').expect("name:value");
            (k.trim_matches('"').to_string(), v.to_string())
        })
        .collect()
}

/// A test CA and a server certificate for `localhost` and 127.0.0.1 (its common name
/// carries `tag`), written as PEM files in `dir`.
pub struct Pki {
    /// The CA certificate, for client trust stores.
    pub ca_der: rustls::pki_types::CertificateDer<'static>,
    /// The CA certificate's PEM file.
    pub ca_pem: PathBuf,
    /// The server's chain and key files.
    pub files: webntpd::server::TlsFiles,
}

impl Pki {
    /// (CA file, certificate file, key file) as strings, for command lines.
    pub fn paths(&self) -> (String, String, String) {
        let s = |p: &PathBuf| p.to_str().unwrap().to_string();
        (s(&self.ca_pem), s(&self.files.cert), s(&self.files.key))
    }
}

/// Make a [`Pki`] in `dir`.
pub fn make_pki(dir: &std::path::Path, tag: &str) -> Pki {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, format!("webntpd test CA {tag}"));
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let mut leaf =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    leaf.distinguished_name
        .push(DnType::CommonName, format!("localhost {tag}"));
    leaf.is_ca = IsCa::NoCa;
    leaf.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_key = KeyPair::generate().unwrap();
    let leaf_cert = leaf.signed_by(&leaf_key, &ca_cert, &ca_key).unwrap();
    let write = |name: String, text: String| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    Pki {
        ca_der: ca_cert.der().clone(),
        ca_pem: write(format!("{tag}-ca.pem"), ca_cert.pem()),
        files: webntpd::server::TlsFiles {
            cert: write(format!("{tag}.crt"), leaf_cert.pem()),
            key: write(format!("{tag}.key"), leaf_key.serialize_pem()),
        },
    }
}

/// A minimal HTTP CONNECT proxy on 127.0.0.1:0 that tunnels to loopback targets only and
/// counts the tunnels it opened.
pub async fn start_connect_proxy() -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tunnels = Arc::new(AtomicUsize::new(0));
    let count = tunnels.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                while !head.ends_with(b"\r\n\r\n") {
                    let mut b = [0u8; 1];
                    match client.read(&mut b).await {
                        Ok(1) => head.push(b[0]),
                        _ => return,
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let target = head
                    .strip_prefix("CONNECT ")
                    .and_then(|r| r.split_whitespace().next())
                    .and_then(|t| t.parse::<SocketAddr>().ok())
                    .filter(|a| a.ip().is_loopback());
                let Some(target) = target else {
                    let _ = client.write_all(b"HTTP/1.1 403 Forbidden\r\n\r\n").await;
                    return;
                };
                let Ok(mut upstream) = TcpStream::connect(target).await else {
                    let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                    return;
                };
                count.fetch_add(1, Ordering::SeqCst);
                let _ = client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await;
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    (addr, tunnels)
}

/// A server on the system's clocks (no leap list), for tests of real timing.
pub async fn start_on_system_clock(config: ServerConfig) -> TestServer {
    start_with(config, SystemClock::shared(), Arc::new(LeapStore::empty())).await
}

/// How long the tests of `rt` keep the server's only thread busy after sending, in seconds.
pub const BUSY_SECS: f64 = 0.025;

/// Check a reply to a request sent at `sent` while the server was kept busy for
/// [`BUSY_SECS`]: `st` after the busy spell, `rt` at the request's arrival, long before it.
pub fn assert_rt_is_the_arrival(reply: &serde_json::Value, sent: f64) {
    let (rt, st) = (reply["rt"].as_f64().unwrap(), reply["st"].as_f64().unwrap());
    assert!(
        st - sent >= BUSY_SECS - 0.001,
        "st {st} comes after the busy spell that began at {sent}"
    );
    assert!(
        (rt - sent).abs() < BUSY_SECS / 2.0,
        "rt {rt} is the arrival, within {} s of the sending at {sent} (st - sent = {:.6} s)",
        BUSY_SECS / 2.0,
        st - sent
    );
}

/// The system's realtime clock, in seconds since 1970.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A running `webntpd run`, killed on drop, its stderr collected; its status read with
/// `webntpd status --json -c CONFIG`.
pub struct Daemon {
    /// The process (for a daemon started through a wrapper such as capsh, the wrapper,
    /// which `exec`s it).
    pub child: Child,
    log: Arc<std::sync::Mutex<Vec<String>>>,
    /// The configuration file.
    pub config: PathBuf,
}

impl Daemon {
    /// Write `config` to `DIR/webntpd.toml`, adding a status socket in `dir` and logging to
    /// stderr unless it says otherwise; the path.
    pub fn write_config(dir: &std::path::Path, config: &str) -> PathBuf {
        let mut config = config.to_string();
        if !config.contains("[status]") {
            let socket = dir.join("status.sock");
            config.push_str(&format!("\n[status]\nsocket = \"{}\"\n", socket.display()));
        }
        if !config.contains("[log]") {
            config.push_str("\n[log]\ntarget = \"stderr\"\n");
        }
        let path = dir.join("webntpd.toml");
        std::fs::write(&path, config).unwrap();
        path
    }

    /// `webntpd run -c PATH`, with no systemd or RUST_LOG in its environment.
    pub fn command(config: &std::path::Path) -> Command {
        let mut cmd = Command::new(binary());
        cmd.args(["run", "-c"])
            .arg(config)
            .env_remove("RUST_LOG")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("JOURNAL_STREAM");
        cmd
    }

    /// Start `webntpd run` on `config` (see [`Daemon::write_config`]) with `env` added.
    pub fn start(dir: &std::path::Path, config: &str, env: &[(&str, &str)]) -> Daemon {
        let path = Self::write_config(dir, config);
        let mut cmd = Self::command(&path);
        cmd.envs(env.iter().copied());
        Self::spawn(cmd, path)
    }

    /// Spawn `cmd`, which runs the daemon on `config`, collecting its stderr.
    pub fn spawn(mut cmd: Command, config: PathBuf) -> Daemon {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("webntpd run starts");
        let log = collect_stderr(&mut child);
        Daemon { child, log, config }
    }

    /// Everything logged so far.
    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// How many lines of the log contain `what`.
    pub fn lines_with(&self, what: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(what))
            .count()
    }

    /// Send `sig`.
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), sig).unwrap();
    }

    /// `webntpd status --json -c CONFIG`, parsed; `None` while the daemon does not answer.
    pub fn status(&self) -> Option<serde_json::Value> {
        let out = Command::new(binary())
            .args(["status", "--json", "-c"])
            .arg(&self.config)
            .output()
            .ok()?;
        // 0: synchronised; 75: answering but not synchronised. Both print the status.
        if !matches!(out.status.code(), Some(0 | 75)) {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    /// Poll the status every 200 ms until `done` holds, failing after `within` with the last
    /// status and the log; the status then.
    pub fn wait_for(
        &self,
        within: Duration,
        what: &str,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let start = std::time::Instant::now();
        let mut last = None;
        while start.elapsed() < within {
            if let Some(s) = self.status() {
                if done(&s) {
                    return s;
                }
                last = Some(s);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "{what}: not within {within:?}; last status: {last:#?}\nlog:\n{}",
            self.log_text()
        );
    }

    /// Wait for exit, failing after `within`; the exit code.
    pub fn wait_exit(&mut self, within: Duration) -> i32 {
        let code = wait_exit_within(&mut self.child, within);
        code.unwrap_or_else(|| {
            panic!(
                "webntpd run did not exit within {within:?}; log:\n{}",
                self.log_text()
            )
        })
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The status entry of the source polling `url`.
pub fn source_status<'a>(status: &'a serde_json::Value, url: &str) -> &'a serde_json::Value {
    status["sources"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["url"] == url))
        .unwrap_or_else(|| panic!("{url} not in {status:#}"))
}

/// Wait for `child` to exit, polling every 20 ms; its exit code (-1 for a signal), or `None`
/// once `within` has passed with it still running.
pub fn wait_exit_within(child: &mut Child, within: Duration) -> Option<i32> {
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status.code().unwrap_or(-1));
        }
        if start.elapsed() >= within {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The lines `child`'s piped stderr writes, collected by a thread of their own until it
/// closes.
pub fn collect_stderr(child: &mut Child) -> Arc<std::sync::Mutex<Vec<String>>> {
    let stderr = child.stderr.take().expect("stderr is piped");
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            match line {
                Ok(l) => sink.lock().unwrap().push(l),
                Err(_) => break,
            }
        }
    });
    log
}

/// Call `check` every 200 ms until it returns a value, failing with `what` and the result of
/// `context()` after `within`.
pub fn wait_for<T>(
    within: Duration,
    what: &str,
    context: impl Fn() -> String,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            start.elapsed() < within,
            "{what} within {within:?}; {}",
            context()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
