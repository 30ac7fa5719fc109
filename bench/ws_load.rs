//! `ws_load`: a WebSocket load generator for webntpd (and any WebNTP server).
//!
//! N connections each run a closed loop: send the current time as a WebNTP timestamp text
//! (`1558915619.944235`), await the reply, record the round trip on the monotonic clock and
//! check that the reply is a JSON object whose `it` echoes what was sent. After `--warmup`
//! (not counted) and `--duration` (counted) every connection stops by itself and the tool
//! prints round trips per second, the latency percentiles and the errors.
//!
//! ```text
//! cargo build --release --example ws_load
//! target/release/examples/ws_load --url ws://127.0.0.1:8080/ --connections 64 --duration 8s
//! ```
//!
//! Latencies are kept exactly (every sample, in microseconds, one `Vec<u32>` per connection),
//! merged and sorted at the end: no histogram buckets, no coordinated-omission correction (each
//! connection waits for its reply before sending again, like the clients of a time server).
//!
//! Only loopback targets are accepted: this is a benchmark tool, not a way to load someone
//! else's server.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{client_async, WebSocketStream};
use webntpd::sync::Timestamp;

/// WebSocket load generator for WebNTP servers (loopback only).
#[derive(Parser, Debug)]
#[command(name = "ws_load", about, long_about = None)]
struct Args {
    /// Server URL, e.g. ws://127.0.0.1:8080/ (the host must be a loopback address).
    #[arg(long)]
    url: String,

    /// Concurrent connections, each with one request in flight.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    connections: u32,

    /// How long to measure (e.g. 8s, 500ms, 1m).
    #[arg(long, default_value = "8s", value_parser = parse_duration)]
    duration: Duration,

    /// Load before measuring, not counted (e.g. 1s; 0s for none).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    warmup: Duration,

    /// Pause between a reply and the next request on each connection (e.g. 1ms; default none:
    /// a closed loop as fast as the server answers). Paced, the latency is that of a client
    /// that is not spinning, as the 1 ms apart TCP ping-pong of the reference figures.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    interval: Duration,

    /// Give up on a connection whose reply takes longer than this (counted as an error).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    reply_timeout: Duration,

    /// Time allowed for the TCP connect plus the WebSocket handshake.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    connect_timeout: Duration,

    /// Tokio worker threads (default: one per CPU).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=256))]
    threads: Option<u32>,

    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Parse `8s`, `500ms`, `250us`, `1m` or a bare number of seconds (`1.5`).
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("`{s}`: expected a duration such as 8s, 500ms or 1m"))?;
    let scale = match unit {
        "" | "s" => 1.0,
        "ms" => 1e-3,
        "us" | "µs" => 1e-6,
        "m" | "min" => 60.0,
        _ => return Err(format!("`{s}`: unknown unit `{unit}` (use us, ms, s or m)")),
    };
    let secs = value * scale;
    if !secs.is_finite() || !(0.0..=86_400.0).contains(&secs) {
        return Err(format!("`{s}`: out of range (0 to 1 day)"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Split a `ws://host[:port]/path` URL into its `host:port` and check it names only loopback
/// addresses. Returns the addresses to connect to.
async fn loopback_target(url: &str) -> Result<Vec<SocketAddr>, String> {
    let rest = url
        .strip_prefix("ws://")
        .ok_or_else(|| format!("`{url}`: only ws:// URLs are supported (no TLS)"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() || authority.contains('@') {
        return Err(format!("`{url}`: expected ws://HOST[:PORT]/PATH"));
    }
    // Add the default port when none is given (an IPv6 literal ends with `]`).
    let host_port = if authority.ends_with(']') || !authority.contains(':') {
        format!("{authority}:80")
    } else {
        authority.to_string()
    };
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(&host_port)
        .await
        .map_err(|e| format!("`{host_port}`: cannot resolve: {e}"))?
        .collect();
    if addrs.is_empty() {
        return Err(format!("`{host_port}`: resolves to no address"));
    }
    if let Some(a) = addrs.iter().find(|a| !a.ip().is_loopback()) {
        return Err(format!(
            "`{host_port}` resolves to {a}, which is not a loopback address; \
             ws_load only loads servers on this machine"
        ));
    }
    Ok(addrs)
}

/// Connect over TCP (first address that answers) and do the WebSocket handshake.
async fn connect(url: &str, addrs: &[SocketAddr]) -> Result<WebSocketStream<TcpStream>, String> {
    let mut last = String::from("no address");
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(tcp) => {
                // Small request/reply messages: never wait for Nagle.
                tcp.set_nodelay(true)
                    .map_err(|e| format!("{addr}: TCP_NODELAY: {e}"))?;
                let (ws, _resp) = client_async(url, tcp)
                    .await
                    .map_err(|e| format!("{addr}: WebSocket handshake: {e}"))?;
                return Ok(ws);
            }
            Err(e) => last = format!("{addr}: {e}"),
        }
    }
    Err(last)
}

/// The current system time as a WebNTP timestamp with six decimals.
fn timestamp_now() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:06}", now.as_secs(), now.subsec_micros())
}

/// What one connection measured.
#[derive(Debug, Default)]
struct ConnStats {
    /// Round trips completed inside the measurement window, in microseconds.
    samples: Vec<u32>,
    /// Every reply received, warmup included (to divide server CPU time by).
    replies: u64,
    /// Replies that were not a JSON object with a numeric `it`.
    bad_replies: u64,
    /// Replies whose `it` differed from the timestamp sent.
    mismatches: u64,
    /// Replies that did not arrive within --reply-timeout (the connection is abandoned).
    timeouts: u64,
    /// Connections closed or broken by the server before the end.
    disconnects: u64,
    /// The first error seen, for the report.
    first_error: Option<String>,
    /// `st - rt` of every measured reply, in microseconds: the time between the server
    /// receiving a message and stamping its reply (what the four-timestamp method removes
    /// from the delay). Empty for servers that send no `rt`.
    server_us: Vec<u32>,
}

impl ConnStats {
    /// Add another connection's counts and samples to these.
    fn merge(&mut self, other: ConnStats) {
        self.samples.extend_from_slice(&other.samples);
        self.server_us.extend_from_slice(&other.server_us);
        self.replies += other.replies;
        self.bad_replies += other.bad_replies;
        self.mismatches += other.mismatches;
        self.timeouts += other.timeouts;
        self.disconnects += other.disconnects;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    fn error(&mut self, msg: String) {
        if self.first_error.is_none() {
            self.first_error = Some(msg);
        }
    }

    fn errors(&self) -> u64 {
        self.bad_replies + self.mismatches + self.timeouts + self.disconnects
    }
}

/// The text of the number after `"name":` in a compact reply.
fn field<'a>(reply: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("\"{name}\":");
    let start = reply.find(&key)? + key.len();
    let rest = &reply[start..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    Some(&rest[..end])
}

/// `st - rt` of a reply in whole microseconds, read exactly (not through a float); `None`
/// when the server sends no `rt` or the values make no sense.
fn server_span_us(reply: &str) -> Option<u32> {
    let st = Timestamp::parse(field(reply, "st")?).ok()?;
    let rt = Timestamp::parse(field(reply, "rt")?).ok()?;
    u32::try_from(st.nanos_since(rt) / 1000).ok()
}

/// Whether a reply is a JSON object whose `it` equals the timestamp sent.
fn check_reply(reply: &str, sent: f64, stats: &mut ConnStats) {
    match serde_json::from_str::<Value>(reply) {
        Ok(v) => match v.get("it").and_then(Value::as_f64) {
            Some(it) if it == sent => {}
            Some(it) => {
                stats.mismatches += 1;
                stats.error(format!("reply `it` {it} differs from the {sent} sent"));
            }
            None => {
                stats.bad_replies += 1;
                stats.error(format!("reply without a numeric `it`: {}", clip(reply)));
            }
        },
        Err(e) => {
            stats.bad_replies += 1;
            stats.error(format!("reply is not JSON ({e}): {}", clip(reply)));
        }
    }
}

/// The first 120 characters of a reply, for error messages.
fn clip(s: &str) -> String {
    s.chars().take(120).collect()
}

/// One connection's closed loop until `end`: send a timestamp, await its reply, repeat.
async fn run_connection(
    mut ws: WebSocketStream<TcpStream>,
    measure_from: Instant,
    end: Instant,
    interval: Duration,
    reply_timeout: Duration,
) -> ConnStats {
    let mut stats = ConnStats {
        samples: Vec::with_capacity(64 * 1024),
        ..ConnStats::default()
    };
    'outer: while Instant::now() < end {
        let text = timestamp_now();
        let sent: f64 = text.parse().unwrap_or(f64::NAN);
        let t0 = Instant::now();
        if let Err(e) = ws.send(Message::text(text)).await {
            stats.disconnects += 1;
            stats.error(format!("send failed: {e}"));
            break;
        }
        // Wait for the reply to this message, skipping control frames.
        loop {
            let next = match tokio::time::timeout(reply_timeout, ws.next()).await {
                Ok(next) => next,
                Err(_) => {
                    stats.timeouts += 1;
                    stats.error(format!("no reply within {reply_timeout:?}"));
                    break 'outer;
                }
            };
            match next {
                Some(Ok(Message::Text(reply))) => {
                    let rtt = t0.elapsed();
                    stats.replies += 1;
                    if t0 >= measure_from {
                        stats
                            .samples
                            .push(u32::try_from(rtt.as_micros()).unwrap_or(u32::MAX));
                    }
                    check_reply(reply.as_str(), sent, &mut stats);
                    if t0 >= measure_from {
                        if let Some(us) = server_span_us(reply.as_str()) {
                            stats.server_us.push(us);
                        }
                    }
                    if !interval.is_zero() {
                        tokio::time::sleep_until((Instant::now() + interval).min(end).into()).await;
                    }
                    break;
                }
                Some(Ok(Message::Binary(_))) => {
                    stats.bad_replies += 1;
                    stats.error("binary reply (expected text)".into());
                    break;
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Ok(Message::Close(frame))) => {
                    stats.disconnects += 1;
                    stats.error(format!("server closed the connection: {frame:?}"));
                    break 'outer;
                }
                Some(Err(e)) => {
                    stats.disconnects += 1;
                    stats.error(format!("receive failed: {e}"));
                    break 'outer;
                }
                None => {
                    stats.disconnects += 1;
                    stats.error("server closed the TCP connection".into());
                    break 'outer;
                }
            }
        }
    }
    // Say goodbye politely, but do not wait long for the server's close.
    let _ = tokio::time::timeout(Duration::from_millis(500), ws.close(None)).await;
    stats
}

/// The value at quantile `q` (0..=1) of sorted samples (nearest rank).
fn quantile(sorted: &[u32], q: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Everything the run measured, merged over the connections.
#[derive(Debug, Default)]
struct Report {
    url: String,
    connections: u32,
    connected: u32,
    connect_failures: Vec<String>,
    warmup: Duration,
    interval: Duration,
    measured: Duration,
    /// Everything the connections counted, merged.
    totals: ConnStats,
}

impl Report {
    fn errors(&self) -> u64 {
        self.totals.errors() + self.connect_failures.len() as u64
    }

    fn rate(&self) -> f64 {
        let secs = self.measured.as_secs_f64();
        if secs > 0.0 {
            self.totals.samples.len() as f64 / secs
        } else {
            0.0
        }
    }

    fn mean_us(&self) -> f64 {
        if self.totals.samples.is_empty() {
            return 0.0;
        }
        let sum: u64 = self.totals.samples.iter().map(|&s| u64::from(s)).sum();
        sum as f64 / self.totals.samples.len() as f64
    }

    fn to_json(&self) -> Value {
        let s = &self.totals.samples;
        json!({
            "tool": "ws_load",
            "url": self.url,
            "connections": self.connections,
            "connected": self.connected,
            "warmup_s": self.warmup.as_secs_f64(),
            "interval_s": self.interval.as_secs_f64(),
            "duration_s": self.measured.as_secs_f64(),
            "round_trips": s.len(),
            "round_trips_incl_warmup": self.totals.replies,
            "round_trips_per_s": (self.rate() * 10.0).round() / 10.0,
            "latency_us": {
                "min": s.first().copied().unwrap_or(0),
                "p50": quantile(s, 0.50),
                "p90": quantile(s, 0.90),
                "p99": quantile(s, 0.99),
                "p999": quantile(s, 0.999),
                "max": s.last().copied().unwrap_or(0),
                "mean": (self.mean_us() * 10.0).round() / 10.0,
            },
            // Flat, distinct names: bench/run reads keys with sed.
            "server_st_rt_p50_us": quantile(&self.totals.server_us, 0.50),
            "server_st_rt_p99_us": quantile(&self.totals.server_us, 0.99),
            "server_st_rt_max_us": self.totals.server_us.last().copied().unwrap_or(0),
            "errors": self.errors(),
            "error_detail": {
                "connect_failures": self.connect_failures.len(),
                "bad_replies": self.totals.bad_replies,
                "mismatches": self.totals.mismatches,
                "timeouts": self.totals.timeouts,
                "disconnects": self.totals.disconnects,
            },
            "first_error": self.totals.first_error.clone()
                .or_else(|| self.connect_failures.first().cloned()),
        })
    }

    fn print_text(&self) {
        let s = &self.totals.samples;
        println!(
            "ws_load {}: {}/{} connections, {:.2} s measured after {:.2} s warmup",
            self.url,
            self.connected,
            self.connections,
            self.measured.as_secs_f64(),
            self.warmup.as_secs_f64()
        );
        println!("  round trips  {} ({:.0}/s)", s.len(), self.rate());
        println!(
            "  latency us   min {}  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  mean {:.1}",
            s.first().copied().unwrap_or(0),
            quantile(s, 0.50),
            quantile(s, 0.90),
            quantile(s, 0.99),
            quantile(s, 0.999),
            s.last().copied().unwrap_or(0),
            self.mean_us()
        );
        let sv = &self.totals.server_us;
        if !sv.is_empty() {
            println!(
                "  server st-rt p50 {} us  p99 {} us  max {} us (receive to stamp, inside the server)",
                quantile(sv, 0.50),
                quantile(sv, 0.99),
                sv.last().copied().unwrap_or(0)
            );
        }
        println!(
            "  errors       {} (connect failures {}, bad replies {}, mismatched it {}, \
             timeouts {}, disconnects {})",
            self.errors(),
            self.connect_failures.len(),
            self.totals.bad_replies,
            self.totals.mismatches,
            self.totals.timeouts,
            self.totals.disconnects
        );
        if let Some(e) = self
            .totals
            .first_error
            .as_ref()
            .or(self.connect_failures.first())
        {
            println!("  first error  {e}");
        }
    }
}

async fn run(args: &Args) -> Result<Report, String> {
    let addrs = loopback_target(&args.url).await?;

    // Open every connection first, so that all of them start loading together.
    let mut connecting = Vec::with_capacity(args.connections as usize);
    for _ in 0..args.connections {
        let url = args.url.clone();
        let addrs = addrs.clone();
        let limit = args.connect_timeout;
        connecting.push(tokio::spawn(async move {
            match tokio::time::timeout(limit, connect(&url, &addrs)).await {
                Ok(r) => r,
                Err(_) => Err(format!("connect + handshake took over {limit:?}")),
            }
        }));
    }
    let mut streams = Vec::new();
    let mut connect_failures = Vec::new();
    for task in connecting {
        match task.await {
            Ok(Ok(ws)) => streams.push(ws),
            Ok(Err(e)) => connect_failures.push(e),
            Err(e) => connect_failures.push(format!("connect task failed: {e}")),
        }
    }
    let mut report = Report {
        url: args.url.clone(),
        connections: args.connections,
        connected: streams.len() as u32,
        connect_failures,
        warmup: args.warmup,
        interval: args.interval,
        ..Report::default()
    };
    if streams.is_empty() {
        // Nothing to load: report the failures now rather than idling through the run.
        return Ok(report);
    }

    let start = Instant::now();
    let measure_from = start + args.warmup;
    let end = measure_from + args.duration;
    let tasks: Vec<_> = streams
        .into_iter()
        .map(|ws| {
            tokio::spawn(run_connection(
                ws,
                measure_from,
                end,
                args.interval,
                args.reply_timeout,
            ))
        })
        .collect();

    for task in tasks {
        match task.await {
            Ok(stats) => report.totals.merge(stats),
            Err(e) => {
                report.totals.disconnects += 1;
                report
                    .totals
                    .first_error
                    .get_or_insert_with(|| format!("connection task failed: {e}"));
            }
        }
    }
    // The window actually measured: from the end of warmup to the end, or to now if every
    // connection was cut short by errors.
    let finished = Instant::now().min(end);
    report.measured = finished.saturating_duration_since(measure_from);
    report.totals.samples.sort_unstable();
    report.totals.server_us.sort_unstable();
    Ok(report)
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(n) = args.threads {
        builder.worker_threads(n as usize);
    }
    let runtime = match builder.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ws_load: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(run(&args));
    runtime.shutdown_timeout(Duration::from_millis(200));
    match result {
        Ok(report) => {
            if args.json {
                println!("{}", report.to_json());
            } else {
                report.print_text();
            }
            // Succeed when something was measured; errors are in the report.
            if report.totals.samples.is_empty() {
                eprintln!("ws_load: no round trip completed");
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("ws_load: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("8s"), Ok(Duration::from_secs(8)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_duration("8 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn server_span_is_st_minus_rt_exactly() {
        let reply =
            "{\"id\":\"h\",\"it\":1.000000,\"st\":1795270670.615101,\"time\":1795270670.615101,\
                     \"leap\":36,\"next\":1483228800.000000,\"step\":1,\"rt\":1795270670.615087}\n";
        assert_eq!(server_span_us(reply), Some(14));
        // go-webntp sends no rt; a server time before its receive time is nonsense.
        assert_eq!(server_span_us("{\"st\":1.5,\"time\":1.5}"), None);
        assert_eq!(server_span_us("{\"st\":1.5,\"rt\":1.6}"), None);
    }

    #[test]
    fn quantiles_nearest_rank() {
        let s: Vec<u32> = (1..=100).collect();
        assert_eq!(quantile(&s, 0.5), 50);
        assert_eq!(quantile(&s, 0.99), 99);
        assert_eq!(quantile(&s, 1.0), 100);
        assert_eq!(quantile(&s, 0.0), 1);
        assert_eq!(quantile(&[], 0.5), 0);
    }

    #[test]
    fn replies_are_checked() {
        let sent: f64 = "1558915619.944235".parse().unwrap_or(f64::NAN);
        let mut st = ConnStats::default();
        check_reply(
            r#"{"id":"x","it":1558915619.944235,"st":1.0,"time":1.0}"#,
            sent,
            &mut st,
        );
        assert_eq!(st.errors(), 0);
        check_reply(r#"{"it":1558915619.944236}"#, sent, &mut st);
        assert_eq!(st.mismatches, 1);
        check_reply(r#"{"st":1.0}"#, sent, &mut st);
        check_reply("not json", sent, &mut st);
        assert_eq!(st.bad_replies, 2);
        assert!(st.first_error.is_some());
    }

    #[test]
    fn timestamps_have_six_decimals() {
        let t = timestamp_now();
        let (secs, frac) = t.split_once('.').unwrap_or(("", ""));
        assert!(secs.len() >= 10 && frac.len() == 6, "{t}");
    }
}
