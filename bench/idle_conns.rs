//! `idle_conns`: holds many idle client connections open against a WebNTP server, to measure
//! what an idle client costs the server (`bench/run memory`, BENCHMARKS.md "Memory at scale").
//!
//! Each connection does what a real idle client does, then stays open and silent:
//!
//! - `http`: one `GET /?<ts>` on a kept-alive connection, its reply read to the end;
//! - `ws`: the WebSocket handshake, one timestamp message and its reply.
//!
//! It is driven by commands on stdin, one per line, each answered by one JSON line on stdout
//! (progress goes to stderr):
//!
//! ```text
//! open N     open N more connections, at most --batch at a time; answers when all are open
//!            (or failed: it stops launching after 100 failures)
//! probe K    K new connections one after another, 10 ms apart, each one GET and its reply:
//!            the latency a new client sees (connect to last byte), min/p50/p90/max
//! check      of the connections held, how many the server has closed (a non-blocking peek)
//! close      check, then close every held connection (FIN, as a client going away)
//! ```
//!
//! The end of stdin closes everything and exits; so does `--max-seconds`, whatever happens.
//!
//! ```text
//! cargo build --release --example idle_conns
//! (echo 'open 10000'; sleep 30; echo close) |
//!     target/release/examples/idle_conns --addr 127.0.0.1:8080 --mode http
//! ```
//!
//! Lean, so as not to weigh on the machine it measures: one thread (a current-thread tokio
//! runtime), and a held connection is nothing but its socket (a `std::net::TcpStream`, taken
//! out of tokio's reactor once its exchange is done): the client's RSS is a few MB for any N
//! (it reports it). Only the connections being opened have a task and a buffer.
//!
//! Ports: one client address reaches one server address and port from at most as many ports
//! as `net.ipv4.ip_local_port_range` holds (28,232 by default). The connections are therefore
//! bound to source addresses 127.0.0.2, 127.0.0.3, ... (`--per-source` connections each; every
//! 127/8 address is on Linux's loopback) with `IP_BIND_ADDRESS_NO_PORT`, so that the kernel
//! picks the port at `connect` by the whole 4-tuple rather than reserving it at `bind`. The
//! count carries on across `open` commands, so a second round uses fresh addresses and never
//! meets the first round's TIME_WAIT sockets. Probes connect from the default address.
//!
//! The open-files limit: the soft limit is raised to the hard one at start (the harness raises
//! the hard one when it may); N connections need N descriptors and a few.
//!
//! Only loopback targets are accepted: this is a benchmark tool, not a way to load someone
//! else's server.

use std::io::{BufRead, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use clap::{Parser, ValueEnum};
use serde_json::{json, Value};
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;

/// Holds N idle HTTP or WebSocket connections to a WebNTP server (loopback only), driven by
/// commands on stdin: open N, probe K, check, close.
#[derive(Parser, Debug)]
#[command(name = "idle_conns", about, long_about = None)]
struct Args {
    /// The server, IPv4 loopback: e.g. 127.0.0.1:8080.
    #[arg(long)]
    addr: SocketAddrV4,

    /// What each connection does before it goes idle.
    #[arg(long, value_enum)]
    mode: Mode,

    /// The timestamp each connection sends (digits and a dot; the reply must echo it as `it`).
    /// Default: the current time, six decimals.
    #[arg(long, value_parser = parse_query)]
    query: Option<String>,

    /// Connections being opened at once (each a connect and one exchange).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=4096))]
    batch: u32,

    /// Connections bound to one source address before moving on to the next.
    #[arg(long, default_value_t = 16_000, value_parser = clap::value_parser!(u32).range(1..=60_000))]
    per_source: u32,

    /// The first source address (127/8); the next ones follow it.
    #[arg(long, default_value = "127.0.0.2")]
    first_source: Ipv4Addr,

    /// Time allowed for one connection's connect and exchange (e.g. 10s, 500ms).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    timeout: Duration,

    /// Close everything and exit after this many seconds, whatever happens.
    #[arg(long, default_value_t = 900)]
    max_seconds: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// One GET /?<ts> on a kept-alive connection.
    Http,
    /// WebSocket handshake, one timestamp message and its reply.
    Ws,
}

/// Stop launching connections after this many failures in one `open`: a healthy server fails
/// none, and a broken one should not be hammered for the rest of N.
const FAILURE_LIMIT: u32 = 100;

/// Largest response head or WebSocket message accepted.
const MAX_READ: usize = 64 * 1024;

/// The GUID of RFC 6455's `Sec-WebSocket-Accept`.
const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

fn parse_query(s: &str) -> Result<String, String> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        Ok(s.to_string())
    } else {
        Err(format!(
            "`{s}`: expected a timestamp such as 1489217288.328757"
        ))
    }
}

/// What every connection task needs.
struct Target {
    addr: SocketAddrV4,
    mode: Mode,
    query: Option<String>,
    timeout: Duration,
}

impl Target {
    /// The timestamp to send.
    fn timestamp(&self) -> String {
        match &self.query {
            Some(q) => q.clone(),
            None => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default();
                format!("{}.{:06}", now.as_secs(), now.subsec_micros())
            }
        }
    }
}

/// The source address of the connection numbered `index` (0-based, over the process's life).
fn source_addr(first: Ipv4Addr, per_source: u32, index: u64) -> Result<Ipv4Addr, String> {
    let offset = u32::try_from(index / u64::from(per_source.max(1)))
        .map_err(|_| "too many connections".to_string())?;
    let ip = u32::from(first)
        .checked_add(offset)
        .map(Ipv4Addr::from)
        .filter(|ip| ip.is_loopback())
        .ok_or_else(|| {
            format!("connection {index}: no source address left in 127/8 after {first}")
        })?;
    Ok(ip)
}

/// Set `IP_BIND_ADDRESS_NO_PORT`: `bind` takes the address only, `connect` picks the port.
fn bind_address_no_port(sock: &TcpSocket) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let one: libc::c_int = 1;
    // SAFETY: a valid socket descriptor, and a pointer to a c_int of the length given.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            std::ptr::from_ref(&one).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Connect (from `source`, if given), do the mode's exchange, and hand back the bare socket.
async fn open_one(
    target: &Target,
    source: Option<Ipv4Addr>,
    mode: Mode,
    seed: u64,
) -> Result<std::net::TcpStream, String> {
    let sock = TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
    if let Some(ip) = source {
        bind_address_no_port(&sock).map_err(|e| format!("IP_BIND_ADDRESS_NO_PORT: {e}"))?;
        sock.bind(SocketAddr::from((ip, 0)))
            .map_err(|e| format!("bind {ip}: {e}"))?;
    }
    let mut stream = sock
        .connect(SocketAddr::V4(target.addr))
        .await
        .map_err(|e| match source {
            Some(ip) => format!("connect from {ip}: {e}"),
            None => format!("connect: {e}"),
        })?;
    stream
        .set_nodelay(true)
        .map_err(|e| format!("TCP_NODELAY: {e}"))?;
    let ts = target.timestamp();
    match mode {
        Mode::Http => http_get(&mut stream, target.addr, &ts).await?,
        Mode::Ws => ws_exchange(&mut stream, target.addr, &ts, seed).await?,
    }
    stream
        .into_std()
        .map_err(|e| format!("leaving the reactor: {e}"))
}

/// Read more bytes into `buf`; the peer closing is an error here.
async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<(), String> {
    if buf.len() >= MAX_READ {
        return Err(format!("reply longer than {MAX_READ} bytes"));
    }
    buf.reserve(1024);
    match stream.read_buf(buf).await {
        Ok(0) => Err("the server closed the connection".into()),
        Ok(_) => Ok(()),
        Err(e) => Err(format!("read: {e}")),
    }
}

/// A response head: its length in `buf`, status, `Content-Length`, `Sec-WebSocket-Accept`.
struct Head {
    len: usize,
    status: u16,
    content_length: Option<usize>,
    accept: Option<String>,
}

/// Parse a complete response head at the start of `buf`; `None` while it is incomplete.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("bad response head: {e}")),
    };
    let value = |name: &str| {
        resp.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .map(|v| v.trim().to_string())
    };
    let content_length = match value("content-length") {
        Some(v) => Some(v.parse().map_err(|_| format!("bad Content-Length `{v}`"))?),
        None => None,
    };
    Ok(Some(Head {
        len,
        status: resp.code.unwrap_or(0),
        content_length,
        accept: value("sec-websocket-accept"),
    }))
}

/// Read a response head; the bytes after it stay in `buf`.
async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<Head, String> {
    loop {
        if let Some(head) = parse_head(buf)? {
            return Ok(head);
        }
        read_more(stream, buf).await?;
    }
}

/// Whether a reply body echoes the timestamp sent as `it`.
fn check_echo(body: &[u8], ts: &str) -> Result<(), String> {
    let needle = format!("\"it\":{ts}");
    if body.windows(needle.len()).any(|w| w == needle.as_bytes()) {
        Ok(())
    } else {
        let clip: String = String::from_utf8_lossy(body).chars().take(120).collect();
        Err(format!("the reply does not echo {needle}: {clip}"))
    }
}

async fn write(stream: &mut TcpStream, bytes: &[u8]) -> Result<(), String> {
    stream
        .write_all(bytes)
        .await
        .map_err(|e| format!("write: {e}"))
}

/// Send a request and read its response head; what follows the head stays in the buffer.
async fn request(stream: &mut TcpStream, request: &str) -> Result<(Head, Vec<u8>), String> {
    write(stream, request.as_bytes()).await?;
    let mut buf = Vec::with_capacity(1024);
    let head = read_head(stream, &mut buf).await?;
    Ok((head, buf))
}

/// One `GET /?<ts>` and its whole reply, leaving the connection kept alive.
async fn http_get(stream: &mut TcpStream, addr: SocketAddrV4, ts: &str) -> Result<(), String> {
    let get = format!("GET /?{ts} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let (head, mut buf) = request(stream, &get).await?;
    if head.status != 200 {
        return Err(format!("GET answered {}", head.status));
    }
    let len = head
        .content_length
        .ok_or("a reply without Content-Length (not supported)")?;
    while buf.len() < head.len + len {
        read_more(stream, &mut buf).await?;
    }
    if buf.len() > head.len + len {
        return Err("bytes after the reply".into());
    }
    check_echo(&buf[head.len..], ts)
}

/// A `Sec-WebSocket-Key` (16 bytes from the seed and the clock: a benchmark needs no more).
fn ws_key(seed: u64) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64;
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    bytes[8..].copy_from_slice(&nanos.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes());
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The `Sec-WebSocket-Accept` a server must answer to `key`.
fn ws_accept(key: &str) -> String {
    let digest = Sha1::digest(format!("{key}{WS_GUID}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(digest)
}

/// A client's text frame: final, masked with `mask`.
fn masked_text(payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut frame = vec![0x81];
    match payload.len() {
        n @ 0..=125 => frame.push(0x80 | n as u8),
        n @ 126..=0xFFFF => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// A complete server frame at the start of `buf`: (opcode, payload range, bytes used);
/// `None` while it is incomplete.
fn parse_frame(buf: &[u8]) -> Result<Option<(u8, std::ops::Range<usize>, usize)>, String> {
    let (Some(&b0), Some(&b1)) = (buf.first(), buf.get(1)) else {
        return Ok(None);
    };
    if b0 & 0x80 == 0 {
        return Err("a fragmented reply (not supported)".into());
    }
    if b1 & 0x80 != 0 {
        return Err("a masked frame from the server".into());
    }
    let (start, len) = match b1 & 0x7F {
        126 => match buf.get(2..4) {
            Some(b) => (4, u64::from(u16::from_be_bytes([b[0], b[1]]))),
            None => return Ok(None),
        },
        127 => match buf.get(2..10).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
            Some(b) => (10, u64::from_be_bytes(b)),
            None => return Ok(None),
        },
        n => (2, u64::from(n)),
    };
    let len = usize::try_from(len)
        .ok()
        .filter(|&l| l <= MAX_READ)
        .ok_or_else(|| format!("a {len}-byte frame"))?;
    if buf.len() < start + len {
        return Ok(None);
    }
    Ok(Some((b0 & 0x0F, start..start + len, start + len)))
}

/// The WebSocket handshake, one timestamp message and its reply.
async fn ws_exchange(
    stream: &mut TcpStream,
    addr: SocketAddrV4,
    ts: &str,
    seed: u64,
) -> Result<(), String> {
    let key = ws_key(seed);
    let upgrade = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    let (head, mut buf) = request(stream, &upgrade).await?;
    if head.status != 101 {
        return Err(format!("the WebSocket handshake answered {}", head.status));
    }
    if head.accept.as_deref() != Some(ws_accept(&key).as_str()) {
        return Err("a wrong Sec-WebSocket-Accept".into());
    }
    buf.drain(..head.len);
    let mask = (seed as u32).wrapping_mul(0x9E37_79B9).to_le_bytes();
    write(stream, &masked_text(ts.as_bytes(), mask)).await?;
    loop {
        let Some((opcode, payload, used)) = parse_frame(&buf)? else {
            read_more(stream, &mut buf).await?;
            continue;
        };
        match opcode {
            0x1 => {
                check_echo(&buf[payload], ts)?;
                return if used == buf.len() {
                    Ok(())
                } else {
                    Err("bytes after the reply".into())
                };
            }
            0x9 | 0xA => {
                buf.drain(..used);
            }
            0x8 => return Err("the server closed the WebSocket".into()),
            other => return Err(format!("a reply frame with opcode {other}")),
        }
    }
}

/// This process's VmRSS and VmHWM in kB.
fn own_rss_kb() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The connections held, and how many this process has opened in all (for source addresses).
struct Held {
    streams: Vec<std::net::TcpStream>,
    opened: u64,
}

/// `open N`: open N more connections, at most `batch` in flight.
async fn open(args: &Args, target: &Arc<Target>, n: u32, held: &mut Held) -> Value {
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    let (mut launched, mut connected, mut failed) = (0u32, 0u32, 0u32);
    let mut first_error: Option<String> = None;
    let mut last_progress = start;
    held.streams.reserve(n as usize);
    loop {
        while launched < n && failed < FAILURE_LIMIT && tasks.len() < args.batch as usize {
            launched += 1;
            let index = held.opened;
            held.opened += 1;
            let source = match source_addr(args.first_source, args.per_source, index) {
                Ok(ip) => ip,
                Err(e) => {
                    failed += 1;
                    first_error.get_or_insert(e);
                    launched = n; // nothing further can be opened
                    break;
                }
            };
            let target = target.clone();
            tasks.spawn(async move {
                let limit = target.timeout;
                match tokio::time::timeout(
                    limit,
                    open_one(&target, Some(source), target.mode, index),
                )
                .await
                {
                    Ok(r) => r,
                    Err(_) => Err(format!("connect and exchange took over {limit:?}")),
                }
            });
        }
        let Some(done) = tasks.join_next().await else {
            break;
        };
        match done {
            Ok(Ok(stream)) => {
                held.streams.push(stream);
                connected += 1;
            }
            Ok(Err(e)) => {
                failed += 1;
                first_error.get_or_insert(e);
            }
            Err(e) => {
                failed += 1;
                first_error.get_or_insert(format!("connection task failed: {e}"));
            }
        }
        if last_progress.elapsed() >= Duration::from_secs(1) {
            last_progress = Instant::now();
            let secs = start.elapsed().as_secs_f64();
            eprintln!(
                "idle_conns: {connected}/{n} open, {failed} failed, {:.0}/s",
                f64::from(connected) / secs
            );
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let (rss, hwm) = own_rss_kb();
    json!({
        "cmd": "open",
        "requested": n,
        "connected": connected,
        "failed": failed,
        "held": held.streams.len(),
        "seconds": (secs * 1000.0).round() / 1000.0,
        "per_second": if secs > 0.0 { (f64::from(connected) / secs).round() } else { 0.0 },
        "first_error": first_error,
        "client_rss_kb": rss,
        "client_hwm_kb": hwm,
    })
}

/// The value at quantile `q` of sorted samples (nearest rank).
fn quantile(sorted: &[u64], q: f64) -> Option<u64> {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len().max(1)) - 1).copied()
}

/// `probe K`: K new connections, one after another, each one GET: connect to last byte.
async fn probe(target: &Target, k: u32) -> Value {
    let mut samples = Vec::with_capacity(k as usize);
    let mut first_error: Option<String> = None;
    for i in 0..k {
        let t0 = Instant::now();
        let r = tokio::time::timeout(
            target.timeout,
            open_one(target, None, Mode::Http, u64::from(i)),
        )
        .await;
        match r {
            Ok(Ok(stream)) => {
                samples.push(t0.elapsed().as_micros() as u64);
                drop(stream);
            }
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(_) => {
                first_error.get_or_insert(format!("no reply within {:?}", target.timeout));
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut sorted = samples.clone();
    sorted.sort_unstable();
    json!({
        "cmd": "probe",
        "count": k,
        "ok": samples.len(),
        "failed": k as usize - samples.len(),
        "min_us": sorted.first(),
        "p50_us": quantile(&sorted, 0.5),
        "p90_us": quantile(&sorted, 0.9),
        "max_us": sorted.last(),
        "samples_us": samples,
        "first_error": first_error,
    })
}

/// Of the connections held: (still open, closed by the server, with unexpected bytes).
fn check(held: &Held) -> (u64, u64, u64) {
    let (mut open, mut closed, mut data) = (0, 0, 0);
    let mut byte = [0u8; 1];
    for s in &held.streams {
        // The sockets are non-blocking (they came out of tokio).
        match s.peek(&mut byte) {
            Ok(0) => closed += 1,
            Ok(_) => data += 1,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => open += 1,
            Err(_) => closed += 1,
        }
    }
    (open, closed, data)
}

fn check_json(cmd: &str, held: &Held) -> Value {
    let (open, closed, data) = check(held);
    json!({"cmd": cmd, "held": held.streams.len(), "open": open,
           "closed_by_server": closed, "unexpected_data": data})
}

/// `close`: check, then close every held connection.
fn close(held: &mut Held) -> Value {
    let mut reply = check_json("close", held);
    let t0 = Instant::now();
    held.streams = Vec::new();
    let (rss, hwm) = own_rss_kb();
    reply["seconds"] = json!((t0.elapsed().as_secs_f64() * 1000.0).round() / 1000.0);
    reply["client_rss_kb"] = json!(rss);
    reply["client_hwm_kb"] = json!(hwm);
    reply
}

/// Raise the soft open-files limit to the hard one; returns the limit now in force.
fn raise_nofile() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
                hard
            } else {
                soft
            }
        }
        Ok((soft, _)) => soft,
        Err(_) => 0,
    }
}

/// Print one JSON line (a harness that stopped reading is not an error worth dying for).
fn say(v: &Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

fn main() -> ExitCode {
    let args = Args::parse();
    if !args.addr.ip().is_loopback() || !args.first_source.is_loopback() {
        eprintln!("idle_conns: only loopback (127/8) addresses are allowed");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("idle_conns: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let max = Duration::from_secs(args.max_seconds);
    std::thread::spawn(move || {
        std::thread::sleep(max);
        eprintln!("idle_conns: --max-seconds reached: exiting (the connections close with it)");
        std::process::exit(3);
    });
    let target = Arc::new(Target {
        addr: args.addr,
        mode: args.mode,
        query: args.query.clone(),
        timeout: args.timeout,
    });
    let mut held = Held {
        streams: Vec::new(),
        opened: 0,
    };
    say(
        &json!({"cmd": "ready", "addr": args.addr.to_string(), "mode": format!("{:?}", args.mode),
                "nofile": raise_nofile(), "pid": std::process::id()}),
    );
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let mut words = line.split_whitespace();
        let count = |w: Option<&str>| w.and_then(|v| v.parse::<u32>().ok()).filter(|&n| n > 0);
        let reply = match (words.next(), words.next()) {
            (Some("open"), n) => match count(n) {
                Some(n) => runtime.block_on(open(&args, &target, n, &mut held)),
                None => json!({"cmd": "error", "error": "open needs a count"}),
            },
            (Some("probe"), k) => match count(k) {
                Some(k) => runtime.block_on(probe(&target, k)),
                None => json!({"cmd": "error", "error": "probe needs a count"}),
            },
            (Some("check"), _) => check_json("check", &held),
            (Some("close"), _) => close(&mut held),
            (None, _) => continue,
            (Some(other), _) => {
                json!({"cmd": "error", "error": format!("unknown command `{other}`")})
            }
        };
        say(&reply);
    }
    if !held.streams.is_empty() {
        say(&close(&mut held));
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_follow_each_other_and_stay_in_127_8() {
        let first = Ipv4Addr::new(127, 0, 0, 2);
        assert_eq!(source_addr(first, 10, 0), Ok(first));
        assert_eq!(source_addr(first, 10, 9), Ok(first));
        assert_eq!(source_addr(first, 10, 10), Ok(Ipv4Addr::new(127, 0, 0, 3)));
        assert_eq!(source_addr(first, 1, 254), Ok(Ipv4Addr::new(127, 0, 1, 0)));
        assert!(source_addr(Ipv4Addr::new(127, 255, 255, 255), 1, 1).is_err());
    }

    #[test]
    fn accept_key_of_rfc_6455() {
        assert_eq!(
            ws_accept("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        let decoded = base64::engine::general_purpose::STANDARD.decode(ws_key(7));
        assert_eq!(decoded.map(|k| k.len()), Ok(16));
    }

    #[test]
    fn frames() {
        let frame = masked_text(b"1489217288.328757", [1, 2, 3, 4]);
        assert_eq!(&frame[..2], &[0x81, 0x80 | 17]);
        let unmasked: Vec<u8> = frame[6..]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ [1, 2, 3, 4][i % 4])
            .collect();
        assert_eq!(unmasked, b"1489217288.328757");

        let mut reply = vec![0x81, 126, 0, 200];
        reply.extend(std::iter::repeat_n(b'x', 200));
        assert_eq!(parse_frame(&reply[..100]), Ok(None));
        assert_eq!(parse_frame(&reply), Ok(Some((1, 4..204, 204))));
        assert_eq!(parse_frame(&[0x81]), Ok(None));
        assert!(parse_frame(&[0x01, 0x01, b'x']).is_err(), "fragment");
        assert!(
            parse_frame(&[0x81, 0x81, 0, 0, 0, 0, b'x']).is_err(),
            "masked"
        );
    }

    #[test]
    fn heads_and_echoes() {
        let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 17\r\n\r\n{\"it\":1.5,\"st\":2}";
        let head = parse_head(reply).ok().flatten();
        assert_eq!(
            head.as_ref().map(|h| (h.len, h.status, h.content_length)),
            Some((39, 200, Some(17)))
        );
        assert!(matches!(parse_head(&reply[..20]), Ok(None)));
        assert!(check_echo(&reply[39..], "1.5").is_ok());
        assert!(check_echo(&reply[39..], "1.6").is_err());
        assert!(parse_query("1489217288.328757").is_ok());
        assert!(parse_query("1 HTTP/1.1").is_err());
    }

    #[test]
    fn quantiles_nearest_rank() {
        let s: Vec<u64> = (1..=20).collect();
        assert_eq!(quantile(&s, 0.5), Some(10));
        assert_eq!(quantile(&s, 0.9), Some(18));
        assert_eq!(quantile(&[], 0.5), None);
    }
}
