//! A network simulator for the accuracy benchmarks: a TCP proxy on loopback that holds each
//! direction's bytes for a delay drawn per chunk, so a client measuring a server through it
//! sees a path with a known shape (this machine's kernel has no netem).
//!
//! ```text
//! netsim --upstream 127.0.0.1:8080 --out 20ms --out-jitter 5ms --back 5ms \
//!        [--spike-prob 0.01 --spike 200ms] [--seed 1] [--max-seconds 600]
//! ```
//!
//! Prints `listening on 127.0.0.1:PORT`, then proxies every connection to `--upstream`.
//! `out` is client -> server, `back` server -> client. Each chunk read from one side is
//! delivered to the other after `mean ± jitter` (uniform), plus `spike` with probability
//! `spike-prob`; chunks of one direction are delivered in order (TCP delivers bytes in order,
//! so a late chunk holds back those behind it, as on a real path). Loopback only; stops by
//! itself after `--max-seconds`.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

#[derive(Parser, Debug, Clone)]
#[command(about = "A delaying TCP proxy for loopback benchmarks")]
struct Args {
    /// Where to forward connections (a loopback address).
    #[arg(long)]
    upstream: SocketAddr,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Mean delay client -> server.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "20ms")]
    out: Duration,
    /// Uniform jitter around --out (the delay is out ± out-jitter).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0ms")]
    out_jitter: Duration,
    /// Mean delay server -> client.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "20ms")]
    back: Duration,
    /// Uniform jitter around --back.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0ms")]
    back_jitter: Duration,
    /// Probability (0-1) that a chunk gets --spike on top, in either direction.
    #[arg(long, default_value_t = 0.0)]
    spike_prob: f64,
    /// Extra delay of a spike.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "200ms")]
    spike: Duration,
    /// Seed of the delay generator (runs are repeatable for a given traffic pattern).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Exit after this many seconds whatever happens.
    #[arg(long, default_value_t = 600)]
    max_seconds: u64,
}

/// How one direction delays its chunks.
#[derive(Debug, Clone, Copy)]
struct Shape {
    mean: Duration,
    jitter: Duration,
    spike_prob: f64,
    spike: Duration,
}

/// xorshift64*: small, deterministic, good enough to draw delays.
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn delay(&mut self, s: &Shape) -> Duration {
        let jitter = s.jitter.as_secs_f64() * (2.0 * self.next_f64() - 1.0);
        let mut d = (s.mean.as_secs_f64() + jitter).max(0.0);
        if s.spike_prob > 0.0 && self.next_f64() < s.spike_prob {
            d += s.spike.as_secs_f64();
        }
        Duration::from_secs_f64(d)
    }
}

/// Copy `from` to `to`, each chunk held for a drawn delay, in order.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    shape: Shape,
    seed: u64,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reader = tokio::spawn(async move {
        let mut rng = Rng(seed | 1);
        let mut last = Instant::now();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    // In order: never deliver before the chunk ahead of this one.
                    let at = (Instant::now() + rng.delay(&shape)).max(last);
                    last = at;
                    if tx.send((at, buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
            }
        }
    });
    while let Some((at, bytes)) = rx.recv().await {
        tokio::time::sleep_until(at).await;
        if to.write_all(&bytes).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
    reader.abort();
}

async fn serve(args: Args) -> Result<(), String> {
    if !args.upstream.ip().is_loopback() || !args.listen.ip().is_loopback() {
        return Err("netsim only proxies between loopback addresses".into());
    }
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("bind {}: {e}", args.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    println!("listening on {addr}");
    let out = Shape {
        mean: args.out,
        jitter: args.out_jitter,
        spike_prob: args.spike_prob,
        spike: args.spike,
    };
    let back = Shape {
        mean: args.back,
        jitter: args.back_jitter,
        ..out
    };
    let mut seed = args.seed;
    loop {
        let (client, _) = listener
            .accept()
            .await
            .map_err(|e| format!("accept: {e}"))?;
        let Ok(server) = TcpStream::connect(args.upstream).await else {
            eprintln!(
                "netsim: upstream {} refused; dropping a client",
                args.upstream
            );
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let (cr, cw) = client.into_split();
        let (sr, sw) = server.into_split();
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        tokio::spawn(pipe(cr, sw, out, seed));
        tokio::spawn(pipe(sr, cw, back, seed ^ 0x9E37_79B9_7F4A_7C15));
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("netsim: {e}");
            return ExitCode::FAILURE;
        }
    };
    let limit = Duration::from_secs(args.max_seconds);
    let result = runtime.block_on(async {
        match tokio::time::timeout(limit, serve(args)).await {
            Ok(r) => r,
            Err(_) => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("netsim: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_in_their_band_and_spikes_are_rare() {
        let shape = Shape {
            mean: Duration::from_millis(20),
            jitter: Duration::from_millis(5),
            spike_prob: 0.01,
            spike: Duration::from_millis(200),
        };
        let mut rng = Rng(7);
        let mut spikes = 0;
        for _ in 0..100_000 {
            let d = rng.delay(&shape);
            if d > Duration::from_millis(100) {
                spikes += 1;
                assert!(d >= Duration::from_millis(215) && d <= Duration::from_millis(225));
            } else {
                assert!(
                    d >= Duration::from_millis(15) && d <= Duration::from_millis(25),
                    "{d:?}"
                );
            }
        }
        // 1% of 100000, with a generous margin.
        assert!((700..1300).contains(&spikes), "{spikes}");
    }
}
