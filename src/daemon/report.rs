//! What a burst's report changes: the source's filter and log lines, the decision
//! ([`crate::sync::decide`]), the sanity gate, the outputs and the log of the combined
//! offset. Everything here runs on the supervisor's loop.

use super::source::{self, Report, SourceState};
use super::{mode_name, Daemon, COMBINED_LOG_STEP_NS};
use crate::refclock::Output;
use crate::sync::decide::{decide, Rules, SourceView, Verdict};
use crate::sync::filter::Offer;
use crate::sync::refsample::RefSample;
use crate::sync::sanity::Passed;
use crate::sync::serve::Reference;

use super::status::Combined;

impl Daemon {
    pub(super) fn on_report(&mut self, report: Report) {
        let Some(i) = self.sources.iter().position(|s| s.id == report.id) else {
            return; // A source removed by a reload, finishing its last burst.
        };
        let src = &mut self.sources[i];
        match &report.result {
            Ok(m) => {
                let e = &m.estimate;
                // Every burst at debug; at info only when the source starts answering.
                let answering_again = src.polls == 0 || src.last_error.is_some();
                let fields = (
                    e.offset_ns,
                    e.delay_ns,
                    e.jitter_ns,
                    e.error_bound_ns(),
                    e.kept,
                );
                let text = format!(
                    "offset {:+.6} s, delay {:.6} s, error {:.6} s",
                    e.offset_ns as f64 / 1e9,
                    e.delay_ns as f64 / 1e9,
                    e.error_bound_ns() as f64 / 1e9
                );
                if answering_again {
                    source_event!(info, src, {
                        offset_ns = fields.0, delay_ns = fields.1, jitter_ns = fields.2,
                        error_ns = fields.3, samples_kept = fields.4,
                    }, "reachable: {text}");
                } else {
                    source_event!(debug, src, {
                        offset_ns = fields.0, delay_ns = fields.1, jitter_ns = fields.2,
                        error_ns = fields.3, samples_kept = fields.4,
                    }, "{text}");
                }
            }
            Err(e) => {
                let message = e.error.to_string();
                let repeat = src
                    .last_error
                    .as_deref()
                    .is_some_and(|last| source::same_trouble(last, &message));
                if repeat {
                    source_event!(debug, src, "{message}");
                } else {
                    source_event!(
                        warn,
                        src,
                        "burst failed: {message}; retrying in {}",
                        humantime::format_duration(std::time::Duration::from_millis(
                            report.next_poll.as_millis() as u64
                        ))
                    );
                }
            }
        }
        let error_ns = report
            .result
            .as_ref()
            .map_or(0, |m| m.estimate.error_bound_ns());
        let partial_before = src.partial_error.take();
        let was_held = src.filter.held().is_some();
        let offer = src.record(report);
        let src = &self.sources[i];
        match (&partial_before, &src.partial_error) {
            (_, Some(now))
                if !partial_before
                    .as_deref()
                    .is_some_and(|before| source::same_trouble(before, now)) =>
            {
                source_event!(warn, src, "{now}")
            }
            (Some(_), None) if offer.is_some() => {
                source_event!(info, src, "every exchange of the last burst worked")
            }
            _ => {}
        }
        let secs = |ns: i64| ns as f64 / 1e9;
        match offer {
            Some(Offer::Held { jump_ns }) if !was_held => source_event!(
                warn,
                src,
                "offset jumped by {:+.6} s, beyond its error of {:.6} s: not used until the \
                 next burst confirms or undoes the jump",
                secs(jump_ns),
                secs(error_ns)
            ),
            Some(Offer::Held { jump_ns }) => source_event!(
                warn,
                src,
                "offset jumped again, by {:+.6} s: still not used",
                secs(jump_ns)
            ),
            Some(Offer::Confirmed { jump_ns }) => source_event!(
                warn,
                src,
                "the next burst confirms the jump of {:+.6} s: its new offset is used",
                secs(jump_ns)
            ),
            Some(Offer::SpikeDropped { jump_ns }) => source_event!(
                info,
                src,
                "back where it was: the jump of {:+.6} s was a spike and is dropped",
                secs(jump_ns)
            ),
            Some(Offer::Accepted) | None => {}
        }
        let fresh = matches!(
            offer,
            Some(Offer::Accepted | Offer::SpikeDropped { .. } | Offer::Confirmed { .. })
        );
        self.select_and_write(fresh.then_some(i));
        self.publish();
    }

    /// Select among the sources. `fresh` is the source whose burst just succeeded (and was
    /// taken into its filter), if one did: the result is written to the outputs only when
    /// that source is among the survivors, so the outputs get new information, never an old
    /// estimate re-stamped (a falseticker's, a `noselect` source's or a held jump's burst
    /// changes nothing that is written); and only when the sanity gate lets it through.
    pub(super) fn select_and_write(&mut self, fresh: Option<usize>) {
        let now_mono = self.clock.monotonic_ns();
        let now_base = crate::clock::step_base_ns(self.clock.as_ref());
        let before: Vec<Verdict> = self.sources.iter().map(|s| s.verdict).collect();
        let views: Vec<SourceView> = self
            .sources
            .iter()
            .map(|s| SourceView {
                filtered: s.filtered(now_mono, now_base),
                polled: s.polls > 0,
                held: s.filter.held().is_some(),
                noselect: s.config.noselect,
                weight: s.config.weight,
            })
            .collect();
        let rules = Rules {
            min_sources: self.config.selection.min_sources,
            max_error_ns: i64::try_from(self.config.selection.max_error.as_nanos()).ok(),
        };
        let now = self.clock.realtime();
        let decision = decide(&views, fresh, &rules, now);
        for (s, v) in self.sources.iter_mut().zip(&decision.verdicts) {
            s.verdict = *v;
        }
        match decision.combination {
            Ok(c) => {
                self.selection_error = None;
                self.selected_leap = c.leap;
                if let Some(sample) = c.sample {
                    if self.pass_gate(&sample) {
                        let reference = Reference {
                            sample,
                            error_ns: c.error_ns,
                            delay_ns: views[c.best].filtered.map_or(0, |f| f.burst.delay_ns),
                            leap: c.leap,
                            mono_ns: now_mono,
                            base_ns: now_base,
                        };
                        self.write_outputs(&reference);
                        self.log_combined(c.offset_ns, c.error_ns, c.survivors);
                        self.combined = Some(Combined {
                            offset: c.offset_ns as f64 / 1e9,
                            error: c.error_ns as f64 / 1e9,
                            survivors: c.survivors,
                            best: self.sources[c.best].config.url.clone(),
                            at: now.as_secs_f64(),
                        });
                    }
                }
            }
            Err(e) => {
                let message = e.to_string();
                if self.selection_error.as_deref() != Some(message.as_str()) {
                    if self.sources.iter().any(|s| s.polls == 0) {
                        tracing::info!(
                            "no combined offset yet (sources still starting): {message}"
                        );
                    } else {
                        tracing::warn!("no combined offset, nothing written: {message}");
                    }
                }
                self.lose_ntp();
                // Log the next combined offset whatever it is.
                self.logged_combined = None;
                self.selection_error = Some(message);
            }
        }
        self.log_verdict_changes(&before);
    }

    /// One line when a source becomes selected, a falseticker or unreachable, and when it
    /// agrees with the majority again.
    fn log_verdict_changes(&self, before: &[Verdict]) {
        for (s, was) in self.sources.iter().zip(before) {
            match (was, &s.verdict) {
                (was, now) if was == now => {}
                (_, Verdict::Falseticker) => {
                    source_event!(
                        warn,
                        s,
                        "falseticker: its offset disagrees with the majority"
                    )
                }
                (Verdict::Falseticker, Verdict::Selected) => {
                    source_event!(info, s, "agrees with the majority again: selected")
                }
                (_, Verdict::Selected) => source_event!(info, s, "selected"),
                // The failure itself was logged when it began.
                (_, Verdict::Unreachable) => {
                    source_event!(warn, s, "unreachable: none of its last 8 bursts worked")
                }
                _ => {}
            }
        }
    }

    /// Log the combined offset just written when it is the first, or has moved beyond what
    /// both estimates' error bounds allow (and at least [`COMBINED_LOG_STEP_NS`]).
    fn log_combined(&mut self, offset_ns: i64, error_ns: i64, survivors: usize) {
        let moved = self.logged_combined.is_none_or(|(o, e)| {
            offset_ns.abs_diff(o) > (e.saturating_add(error_ns)).max(COMBINED_LOG_STEP_NS) as u64
        });
        if moved {
            tracing::info!(
                offset_ns,
                error_ns,
                survivors,
                "combined offset {:+.6} s, error {:.6} s, from {survivors} source(s): written",
                offset_ns as f64 / 1e9,
                error_ns as f64 / 1e9
            );
            self.logged_combined = Some((offset_ns, error_ns));
        }
    }

    /// The sanity gate: whether `sample` may be written, logging a refusal once per change
    /// and a startup step beyond the panic threshold loudly.
    fn pass_gate(&mut self, sample: &RefSample) -> bool {
        match self.gate.check(sample) {
            Ok(passed) => {
                if passed == Passed::StartupStep {
                    tracing::warn!(
                        "writing a first offset of {:+.6} s, beyond the panic threshold of {} s, \
                         because [sanity] allow_startup_step is set: the clock will be stepped",
                        sample.offset_ns as f64 / 1e9,
                        self.gate.policy().panic_ns / 1_000_000_000
                    );
                }
                if self.write_refused.take().is_some() {
                    tracing::info!(
                        "the combined offset is within the sanity bounds again: writing"
                    );
                }
                true
            }
            Err(refusal) => {
                self.lose_ntp();
                let message = refusal.to_string();
                if self.write_refused.as_ref().map(|(rule, _)| *rule) != Some(refusal.rule()) {
                    tracing::error!("combined offset refused: {message}");
                }
                self.write_refused = Some((refusal.rule(), message));
                false
            }
        }
    }

    /// The NTP outputs answer as unsynchronised until the next write: the combined offset
    /// they serve is no longer vouched for.
    fn lose_ntp(&mut self) {
        self.last_reference = None;
        for slot in &self.outputs {
            if let Output::Ntp(n) = &slot.output {
                n.lose();
            }
        }
    }

    pub(super) fn write_outputs(&mut self, reference: &Reference) {
        self.indicator = reference.sample.leap;
        self.last_reference = Some(*reference);
        for slot in &mut self.outputs {
            match slot.output.write(reference) {
                Ok(()) => {
                    slot.writes += 1;
                    slot.last_write = Some(reference.sample.receive.as_secs_f64());
                    if slot.last_error.take().is_some() {
                        tracing::info!("output {}: writing again", slot.output);
                    }
                }
                Err(e) => {
                    if e.is_repeat() {
                        tracing::debug!("output {}: {e}", slot.output);
                    } else {
                        tracing::warn!("output {}: {e}", slot.output);
                    }
                    slot.failures += 1;
                    slot.last_error = Some(e.to_string());
                }
            }
        }
    }
}
