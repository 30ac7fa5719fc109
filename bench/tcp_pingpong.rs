//! The physical limit of a WebNTP exchange on this machine: the round trip of a 17-byte
//! message over loopback TCP (TCP_NODELAY), one every millisecond, as anchors.md measures it.
//! No WebNTP exchange can have a smaller delay; the benchmark reports client delays as
//! ratios to this, measured in the same run.
//!
//! Usage: `tcp_pingpong [--count N] [--interval-us U]`; prints one JSON object with the
//! round trip's min, median, p90 and p99 in microseconds.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant};

const MESSAGE: [u8; 17] = *b"1489217288.328757";

fn arg(name: &str, default: u64) -> Result<u64, String> {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == name) {
        None => Ok(default),
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{name} needs a whole number")),
    }
}

fn run() -> Result<String, String> {
    let count = arg("--count", 2000)? as usize;
    let interval = Duration::from_micros(arg("--interval-us", 1000)?);
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let echo = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        let mut buf = [0u8; 17];
        loop {
            if s.read_exact(&mut buf).is_err() {
                return Ok(());
            }
            s.write_all(&buf)?;
        }
    });
    let mut s = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    let mut buf = [0u8; 17];
    let mut rtts: Vec<u64> = Vec::with_capacity(count);
    for _ in 0..count {
        let t0 = Instant::now();
        s.write_all(&MESSAGE).map_err(|e| format!("write: {e}"))?;
        s.read_exact(&mut buf).map_err(|e| format!("read: {e}"))?;
        rtts.push(t0.elapsed().as_nanos() as u64);
        std::thread::sleep(interval);
    }
    drop(s);
    let _ = echo.join();
    rtts.sort_unstable();
    let q = |p: f64| {
        rtts[((p * rtts.len() as f64).ceil() as usize).clamp(1, rtts.len()) - 1] as f64 / 1e3
    };
    Ok(format!(
        "{{\"tool\":\"tcp_pingpong\",\"count\":{count},\"interval_us\":{},\"rtt_us\":{{\"min\":{:.1},\"p50\":{:.1},\"p90\":{:.1},\"p99\":{:.1}}}}}",
        interval.as_micros(),
        rtts[0] as f64 / 1e3,
        q(0.5),
        q(0.9),
        q(0.99)
    ))
}

fn main() -> ExitCode {
    match run() {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tcp_pingpong: {e}");
            ExitCode::FAILURE
        }
    }
}
