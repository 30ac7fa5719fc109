//! `webntpd query`: measure servers once and report, as text (go-webntp's lines, so users
//! recognise them) or as one JSON object per server for scripts.

use std::io::Write;

use futures_util::future::join_all;
use serde_json::json;

use crate::client::{measure, ClientOptions, MeasureError, Measurement};
use crate::clock::SharedClock;
use crate::exit;
use crate::wire::Timestamp;

/// Seconds with six decimals and a sign only when negative, as go-webntp prints them.
fn secs6(ns: i64) -> String {
    Timestamp::from_nanos(i128::from(ns)).to_micros_string()
}

/// Nanoseconds as JSON seconds (a number; nanosecond precision for any sane offset).
fn json_secs(ns: i64) -> serde_json::Value {
    json!(ns as f64 / 1e9)
}

/// The text line for one server: go-webntp's, plus jitter, samples kept and the error bound
/// (the true offset lies within offset +- error).
pub fn text_line(m: &Measurement) -> String {
    let e = &m.estimate;
    format!(
        "server {}, offset {}, delay {}, jitter {}, samples {}/{}, error {}",
        m.url,
        secs6(e.offset_ns),
        secs6(e.delay_ns),
        secs6(e.jitter_ns),
        e.kept,
        e.samples + m.failures.len(),
        secs6(e.error_bound_ns())
    )
}

/// The JSON object for one server's result.
pub fn json_object(result: &Result<Measurement, MeasureError>) -> serde_json::Value {
    match result {
        Ok(m) => {
            let e = &m.estimate;
            json!({
                "url": m.url,
                "offset": json_secs(e.offset_ns),
                "delay": json_secs(e.delay_ns),
                "jitter": json_secs(e.jitter_ns),
                "error_bound": json_secs(e.error_bound_ns()),
                "samples": e.samples,
                "kept": e.kept,
                "failed": m.failures.len(),
                "leap": m.leap.map(|l| l.leap),
                "next": m.leap.map(|l| l.next_unix),
                "step": m.leap.map(|l| l.step),
                "failures": m.failures,
                "error": null,
            })
        }
        Err(e) => json!({
            "url": e.url,
            "offset": null,
            "delay": null,
            "jitter": null,
            "error": e.error.to_string(),
        }),
    }
}

/// The local time corrected by `offset_ns`, in the system time zone.
fn corrected_time(now: Timestamp, offset_ns: i64) -> String {
    let t = now.add_nanos(i128::from(offset_ns));
    match jiff::Timestamp::from_nanosecond(t.as_nanos()) {
        Ok(ts) => ts
            .to_zoned(jiff::tz::TimeZone::system())
            .strftime("%Y-%m-%d %H:%M:%S.%f %z %Z")
            .to_string(),
        Err(_) => t.to_string(),
    }
}

/// Measure every server (concurrently), print the results, and return the exit code: 0 if
/// at least one server answered, [`exit::UNAVAILABLE`] if none did.
pub async fn run(
    urls: &[String],
    opts: &ClientOptions,
    json_output: bool,
    clock: SharedClock,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let results = join_all(urls.iter().map(|u| measure(u, opts, clock.clone()))).await;
    let mut best: Option<&Measurement> = None;
    for result in &results {
        if json_output {
            let _ = writeln!(out, "{}", json_object(result));
        }
        match result {
            Ok(m) => {
                if !json_output {
                    let _ = writeln!(out, "{}", text_line(m));
                }
                for f in &m.failures {
                    let _ = writeln!(err, "webntpd: {}: a sample failed: {f}", m.url);
                }
                let better =
                    best.is_none_or(|b| m.estimate.error_bound_ns() < b.estimate.error_bound_ns());
                if better {
                    best = Some(m);
                }
            }
            Err(e) => {
                let _ = writeln!(err, "webntpd: {e}");
            }
        }
    }
    let Some(best) = best else {
        let _ = writeln!(
            err,
            "webntpd: no server answered; the local clock was not measured"
        );
        return exit::UNAVAILABLE;
    };
    if !json_output {
        let _ = writeln!(
            out,
            "{}, server {}, offset {}",
            corrected_time(clock.realtime(), best.estimate.offset_ns),
            best.url,
            secs6(best.estimate.offset_ns)
        );
    }
    exit::OK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_printed_like_go_webntp() {
        assert_eq!(secs6(-66_123), "-0.000066");
        assert_eq!(secs6(1_453_000), "0.001453");
        assert_eq!(secs6(0), "0.000000");
        assert_eq!(secs6(250_000_400), "0.250000");
    }
}
