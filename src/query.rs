//! `webntpd query`: measure servers once and report, as text (go-webntp's lines, so users
//! recognise them) or as one JSON object per server for scripts; and, with `--shm`/`--sock`,
//! hand the result to ntpd, ntpsec or chrony once, as go-webntp's `-shm` did.
//!
//! What is written follows the daemon's rules: with several servers, the one combined
//! offset of those that agree (NTP's selection, [`crate::sync::select`]), never the answer of a
//! server the others outvote; nothing when no majority agrees; and nothing the sanity gate
//! refuses ([`crate::sync::sanity`]).

use std::io::Write;

use futures_util::future::join_all;
use serde_json::json;

use crate::client::{measure, ClientOptions, MeasureError, Measurement};
use crate::clock::SharedClock;
use crate::exit;
use crate::refclock::{Output, OutputConfig};
use crate::sync::refsample::RefSample;
use crate::sync::sanity::{Gate, Passed, Policy};
use crate::sync::select::{self, Candidate, SelectError};
use crate::sync::serve::Reference;
use crate::sync::Timestamp;

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

/// What the answers come to: the server shown as the best, and the sample for the outputs.
struct Choice<'a> {
    /// The answering server with the smallest error bound among those that agree (among
    /// all that answered, when none agree).
    best: &'a Measurement,
    /// Its result or the servers' combined one; `Err` when the servers disagree.
    sample: Result<Reference, SelectError>,
    /// The servers the others outvoted.
    falsetickers: Vec<&'a Measurement>,
}

/// Select among the servers that answered, as the daemon does: one answers for itself;
/// several are combined when a majority agrees (each claims the true offset lies within its
/// error bound), and the outvoted are named.
fn choose<'a>(answered: &[&'a Measurement], clock: &SharedClock) -> Option<Choice<'a>> {
    let by_error = |m: &&&Measurement| m.estimate.error_bound_ns();
    let overall = *answered.iter().min_by_key(by_error)?;
    // What the outputs are handed: `sample` with its error bound and the best one's delay.
    let reference = |sample, error_ns, best: &Measurement| Reference {
        sample,
        error_ns,
        delay_ns: best.estimate.delay_ns,
        leap: best.leap,
        mono_ns: clock.monotonic_ns(),
        base_ns: crate::clock::step_base_ns(clock.as_ref()),
    };
    if answered.len() == 1 {
        let e = &overall.estimate;
        return Some(Choice {
            best: overall,
            sample: Ok(reference(
                RefSample::from_estimate(e, overall.leap),
                e.error_bound_ns(),
                overall,
            )),
            falsetickers: Vec::new(),
        });
    }
    let candidates: Vec<Candidate> = answered
        .iter()
        .map(|m| Candidate {
            offset_ns: m.estimate.offset_ns,
            distance_ns: m.estimate.error_bound_ns(),
            weight: 1.0,
            leap: m.leap,
        })
        .collect();
    match select::select(&candidates, 1, None) {
        Ok(sel) => {
            let now = clock.realtime();
            let best = sel
                .survivors
                .iter()
                .map(|&i| answered[i])
                .min_by_key(|m| m.estimate.error_bound_ns())
                .unwrap_or(overall);
            Some(Choice {
                best,
                sample: Ok(reference(
                    RefSample::measured(now, sel.offset_ns, sel.error_ns, sel.leap),
                    sel.error_ns,
                    best,
                )),
                falsetickers: sel.falsetickers.iter().map(|&i| answered[i]).collect(),
            })
        }
        Err(e) => Some(Choice {
            best: overall,
            sample: Err(e),
            falsetickers: Vec::new(),
        }),
    }
}

/// Measure every server (concurrently), print the results, write the result to the
/// reference-clock `outputs` (see the module comment for what is written), and return the
/// exit code: 0 if at least one server answered and every output took the sample,
/// [`exit::UNAVAILABLE`] if no server answered (nothing is written then), [`exit::DATAERR`]
/// if the servers disagree or the sanity rules (`policy`: the floor, the panic threshold,
/// the startup step) refused the result, or the first failed output's code.
///
/// The outputs are opened before anything is measured, so a segment that cannot be used is
/// reported at once.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    urls: &[String],
    opts: &ClientOptions,
    json_output: bool,
    outputs: &[OutputConfig],
    policy: Policy,
    clock: SharedClock,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let mut open = Vec::with_capacity(outputs.len());
    for config in outputs {
        match Output::open(config, &clock) {
            // One sample, for a reader now or one that attaches within its window: the
            // segment stays when query exits.
            Ok(mut o) => {
                o.keep_on_drop();
                open.push(o)
            }
            Err(e) => {
                let _ = writeln!(err, "webntpd: {e}");
                return e.exit_code();
            }
        }
    }
    if !open.is_empty() && urls.len() == 1 {
        let _ = writeln!(
            err,
            "webntpd: warning: one server decides alone: nothing checks it before its time is \
             written; name two more servers"
        );
    }
    let results = join_all(urls.iter().map(|u| measure(u, opts, clock.clone()))).await;
    let answered: Vec<&Measurement> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    let choice = choose(&answered, &clock);
    let best = choice.as_ref().map(|c| c.best);
    let mut gate = Gate::new(policy);
    let mut refused = None;
    // Written first, while the receive time is fresh (ntpd refuses samples over 5 s old).
    let written = choice.as_ref().map(|c| {
        let reference = match &c.sample {
            Ok(r) => *r,
            Err(e) => {
                refused = Some(e.to_string());
                return (None, Vec::new());
            }
        };
        let results: Vec<_> = if open.is_empty() {
            Vec::new()
        } else {
            let sample = reference.sample;
            match gate.check(&sample) {
                Ok(passed) => {
                    if passed == Passed::StartupStep {
                        let _ = writeln!(
                            err,
                            "webntpd: warning: writing an offset of {:+.6} s, beyond the panic \
                             threshold, because --allow-step was given: the clock will be stepped",
                            sample.offset_ns as f64 / 1e9
                        );
                    }
                    open.iter_mut()
                        .map(|o| (o.to_string(), o.write(&reference)))
                        .collect()
                }
                Err(r) => {
                    refused = Some(r.to_string());
                    Vec::new()
                }
            }
        };
        (Some(reference.sample), results)
    });
    for result in &results {
        if json_output {
            let mut object = json_object(result);
            if let (Some((Some(sample), outs)), Ok(m)) = (&written, result) {
                if best.is_some_and(|b| std::ptr::eq(b, m)) && !outs.is_empty() {
                    object["refclock"] = refclock_json(sample, outs);
                }
            }
            let _ = writeln!(out, "{object}");
        }
        match result {
            Ok(m) => {
                if !json_output {
                    let _ = writeln!(out, "{}", text_line(m));
                }
                for f in &m.failures {
                    let _ = writeln!(err, "webntpd: {}: a sample failed: {f}", m.url);
                }
            }
            Err(e) => {
                let _ = writeln!(err, "webntpd: {e}");
            }
        }
    }
    let (Some(best), Some((sample, outs)), Some(choice)) = (best, written, &choice) else {
        let _ = writeln!(
            err,
            "webntpd: no server gave a usable answer; the local clock was not measured{}",
            if outputs.is_empty() {
                ""
            } else {
                " and nothing was written"
            }
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
    for f in &choice.falsetickers {
        let _ = writeln!(
            err,
            "webntpd: {}: falseticker: its offset disagrees with the majority; not used",
            f.url
        );
    }
    if let Some(r) = refused {
        if outputs.is_empty() {
            let _ = writeln!(err, "webntpd: warning: {r}");
        } else {
            let _ = writeln!(err, "webntpd: nothing written: {r}");
            return exit::DATAERR;
        }
    }
    let Some(sample) = sample else {
        return exit::OK;
    };
    let mut code = exit::OK;
    for (name, result) in &outs {
        match result {
            Ok(()) if !json_output => {
                let _ = writeln!(out, "refclock {name}: {}", refclock_text(&sample));
            }
            Ok(()) => {}
            Err(e) => {
                let _ = writeln!(err, "webntpd: {e}");
                if code == exit::OK {
                    code = e.exit_code();
                }
            }
        }
    }
    code
}

/// `receive S.nnnnnnnnn, clock S.nnnnnnnnn, leap L, precision P`: exactly what a reader gets.
pub fn refclock_text(s: &RefSample) -> String {
    format!(
        "receive {}, clock {}, leap {}, precision {}",
        s.receive.to_nanos_string(),
        s.clock().to_nanos_string(),
        s.leap.code(),
        s.precision
    )
}

/// The sample written and where, for `--json`: times as nine-decimal strings (exact).
fn refclock_json(
    s: &RefSample,
    outs: &[(String, Result<(), crate::refclock::OutputError>)],
) -> serde_json::Value {
    json!({
        "receive": s.receive.to_nanos_string(),
        "clock": s.clock().to_nanos_string(),
        "leap": s.leap.code(),
        "precision": s.precision,
        "written": outs.iter().filter(|(_, r)| r.is_ok()).map(|(n, _)| n).collect::<Vec<_>>(),
    })
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
