//! A small NTP load generator for `bench/run ntp`: client requests (mode 3, version 4) to one
//! server over UDP, from `--threads` sockets, each keeping `--window` requests in flight,
//! for `--seconds` (at most 60) or `--max` replies (at most 100 million), whichever comes
//! first. Every reply is checked (48 bytes, mode 4, a stratum of 1-15, the origin one of
//! ours); a request unanswered for 50 ms counts as lost and is sent again. Prints one JSON
//! line: replies, lost, bad, seconds, replies_per_second.
//!
//!     ntp_load --server 127.0.0.1:PORT [--seconds 5] [--threads 2] [--window 16]

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use webntpd::wire::ntp::{client_request, Header};

const MAX_SECONDS: f64 = 60.0;
const MAX_REPLIES: u64 = 100_000_000;
const LOST_AFTER: Duration = Duration::from_millis(50);

struct Args {
    server: SocketAddr,
    seconds: f64,
    threads: usize,
    window: usize,
    max: u64,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        server: "127.0.0.1:123".parse().map_err(|_| "default")?,
        seconds: 5.0,
        threads: 2,
        window: 16,
        max: MAX_REPLIES,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let bad = |what: &str| format!("{flag} {value}: expected {what}");
        match flag.as_str() {
            "--server" => args.server = value.parse().map_err(|_| bad("IP:PORT"))?,
            "--seconds" => args.seconds = value.parse().map_err(|_| bad("seconds"))?,
            "--threads" => args.threads = value.parse().map_err(|_| bad("a count"))?,
            "--window" => args.window = value.parse().map_err(|_| bad("a count"))?,
            "--max" => args.max = value.parse().map_err(|_| bad("a count"))?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if !(args.seconds > 0.0 && args.seconds <= MAX_SECONDS) {
        return Err(format!(
            "--seconds must be above 0 and at most {MAX_SECONDS}"
        ));
    }
    if !(1..=64).contains(&args.threads) || !(1..=1024).contains(&args.window) {
        return Err("--threads 1-64, --window 1-1024".into());
    }
    args.max = args.max.min(MAX_REPLIES);
    Ok(args)
}

#[derive(Default)]
struct Totals {
    replies: AtomicU64,
    lost: AtomicU64,
    bad: AtomicU64,
}

/// One socket's closed loop until `stop`.
fn run(args: &Args, totals: &Totals, stop: &AtomicBool, seed: u64) -> std::io::Result<()> {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.connect(args.server)?;
    socket.set_read_timeout(Some(LOST_AFTER))?;
    let mut next = seed << 32;
    let mut send = |socket: &UdpSocket| -> std::io::Result<()> {
        next += 1;
        socket.send(&client_request(next)).map(|_| ())
    };
    for _ in 0..args.window {
        send(&socket)?;
    }
    let mut buf = [0u8; 128];
    while !stop.load(Ordering::Relaxed) {
        match socket.recv(&mut buf) {
            Ok(n) => {
                let ok = n == 48
                    && Header::parse(&buf[..n]).is_some_and(|h| {
                        h.mode == 4 && (1..16).contains(&h.stratum) && h.origin >> 32 == seed
                    });
                let counter = if ok { &totals.replies } else { &totals.bad };
                if counter.fetch_add(1, Ordering::Relaxed) + 1 >= args.max {
                    stop.store(true, Ordering::Relaxed);
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                // The whole window is presumed lost: refill it.
                totals.lost.fetch_add(args.window as u64, Ordering::Relaxed);
                for _ in 1..args.window {
                    send(&socket)?;
                }
            }
            Err(e) => return Err(e),
        }
        send(&socket)?;
    }
    Ok(())
}

fn main() {
    let args = match parse() {
        Ok(a) => Arc::new(a),
        Err(e) => {
            eprintln!("ntp_load: {e}");
            std::process::exit(64);
        }
    };
    let totals = Arc::new(Totals::default());
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let workers: Vec<_> = (0..args.threads)
        .map(|i| {
            let (args, totals, stop) = (args.clone(), totals.clone(), stop.clone());
            std::thread::spawn(move || run(&args, &totals, &stop, i as u64 + 1))
        })
        .collect();
    let limit = Duration::from_secs_f64(args.seconds);
    while start.elapsed() < limit && !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Ordering::Relaxed);
    let seconds = start.elapsed().as_secs_f64();
    for w in workers {
        match w.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                eprintln!("ntp_load: {}: {e}", args.server);
                std::process::exit(69);
            }
            Err(_) => std::process::exit(70),
        }
    }
    let replies = totals.replies.load(Ordering::Relaxed);
    println!(
        "{{\"replies\":{replies},\"lost\":{},\"bad\":{},\"seconds\":{seconds:.3},\"replies_per_second\":{:.0}}}",
        totals.lost.load(Ordering::Relaxed),
        totals.bad.load(Ordering::Relaxed),
        replies as f64 / seconds
    );
}
