//! The daemon's step after each burst, as a pure function: from every source's clock filter
//! to a verdict per source, the combined offset, and the sample to write, if any.
//!
//! The rules, each tested here with plain values:
//! - a source no burst has finished for is *pending*; one whose filter holds a jump is
//!   *held*; one without a usable burst among its last eight is *unreachable*; the rest are
//!   *candidates*, and selection ([`super::select`]) makes the agreeing ones *selected* and
//!   the others *falsetickers* (`noselect` sources are measured but never offered to it);
//! - something is written only when the burst that just finished (`fresh`) came from a
//!   source among the survivors: the outputs get new information, never an old estimate
//!   stamped with a new time. A falseticker's, a `noselect` source's, a held jump's or a
//!   failed burst changes nothing that is written;
//! - the sample carries the combined offset, stamped `now`, with a precision covering the
//!   combined error and the leap warning most survivors agree on.
//!
//! What is then let through is the sanity gate's call ([`super::sanity::Gate`]), which keeps
//! state across calls; the daemon asks it.

use super::filter::Filtered;
use super::leap::LeapInfo;
use super::refsample::RefSample;
use super::select::{self, Candidate, SelectError};
use super::time::Timestamp;

/// What the last decision said about a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No burst has finished yet.
    Pending,
    /// Among the sources combined into the output.
    Selected,
    /// Measured but not combined: `noselect`, a distance above `max_error`, or selection
    /// failed as a whole.
    Candidate,
    /// Rejected: its interval does not agree with the majority.
    Falseticker,
    /// Its last burst jumped away from what its filter holds: not used until the next burst
    /// confirms or undoes the jump.
    Held,
    /// None of the last eight bursts worked.
    Unreachable,
}

impl Verdict {
    /// The word `webntpd status` shows.
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Pending => "pending",
            Verdict::Selected => "selected",
            Verdict::Candidate => "candidate",
            Verdict::Falseticker => "falseticker",
            Verdict::Held => "held",
            Verdict::Unreachable => "unreachable",
        }
    }
}

/// One source as the decision sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SourceView {
    /// Its clock filter's answer now (see [`super::filter::ClockFilter::best`]); `None` when
    /// none of its last eight bursts worked or its filter holds a jump.
    pub filtered: Option<Filtered>,
    /// At least one of its bursts has finished, well or not.
    pub polled: bool,
    /// Its filter holds a jump, waiting for the next burst.
    pub held: bool,
    /// Measured, shown, never combined.
    pub noselect: bool,
    /// Its weight in the combination (positive).
    pub weight: f64,
}

/// The `[selection]` settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// Survivors needed before anything is combined (at least 1).
    pub min_sources: usize,
    /// Sources whose distance is above this are left out before selecting.
    pub max_error_ns: Option<i64>,
}

/// The sources that agree, combined.
#[derive(Debug, Clone, PartialEq)]
pub struct Combination {
    /// The combined offset (server minus local clock), in nanoseconds.
    pub offset_ns: i64,
    /// A bound on its error, in nanoseconds.
    pub error_ns: i64,
    /// How many sources were combined.
    pub survivors: usize,
    /// The index (into the views) of the survivor with the smallest distance.
    pub best: usize,
    /// The leap information most survivors agree on.
    pub leap: Option<LeapInfo>,
    /// What to write: the combination stamped `now`, only when the fresh burst's source is
    /// a survivor.
    pub sample: Option<RefSample>,
}

/// Everything the daemon does after a burst, decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// One per source, in the order given.
    pub verdicts: Vec<Verdict>,
    /// The combination, or why there is none.
    pub combination: Result<Combination, SelectError>,
}

/// Decide after a burst. `fresh` is the index of the source whose burst just succeeded and
/// was taken into its filter (a held or failed burst is not fresh); `now` is the local time
/// to stamp a sample with.
pub fn decide(
    sources: &[SourceView],
    fresh: Option<usize>,
    rules: &Rules,
    now: Timestamp,
) -> Decision {
    let mut verdicts: Vec<Verdict> = sources
        .iter()
        .map(|s| match (s.polled, s.held, s.filtered) {
            (false, _, _) => Verdict::Pending,
            (true, true, _) => Verdict::Held,
            (true, false, None) => Verdict::Unreachable,
            (true, false, Some(_)) => Verdict::Candidate,
        })
        .collect();
    // The sources offered to selection, and where each came from.
    let (index, candidates): (Vec<usize>, Vec<Candidate>) = sources
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.noselect && !s.held)
        .filter_map(|(i, s)| {
            let f = s.filtered?;
            Some((
                i,
                Candidate {
                    offset_ns: f.burst.offset_ns,
                    distance_ns: f.distance_ns,
                    weight: s.weight,
                    leap: f.burst.leap,
                },
            ))
        })
        .unzip();
    let combination =
        select::select(&candidates, rules.min_sources, rules.max_error_ns).map(|sel| {
            for &c in &sel.survivors {
                verdicts[index[c]] = Verdict::Selected;
            }
            for &c in &sel.falsetickers {
                verdicts[index[c]] = Verdict::Falseticker;
            }
            // Left out for their error bound: measured, not combined (already candidates).
            let best = sel
                .survivors
                .iter()
                .min_by_key(|&&c| candidates[c].distance_ns)
                .map_or(0, |&c| index[c]);
            let fresh_survived =
                fresh.is_some_and(|f| sel.survivors.iter().any(|&c| index[c] == f));
            Combination {
                offset_ns: sel.offset_ns,
                error_ns: sel.error_ns,
                survivors: sel.survivors.len(),
                best,
                leap: sel.leap,
                sample: fresh_survived
                    .then(|| RefSample::measured(now, sel.offset_ns, sel.error_ns, sel.leap)),
            }
        });
    Decision {
        verdicts,
        combination,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::filter::Burst;

    const MS: i64 = 1_000_000;
    const NOW: Timestamp = Timestamp::from_nanos(1_796_083_200_000_000_000);

    /// A source whose filter says `offset_ms` +- `distance_ms`.
    fn source(offset_ms: i64, distance_ms: i64) -> SourceView {
        SourceView {
            filtered: Some(Filtered {
                burst: Burst {
                    offset_ns: offset_ms * MS,
                    delay_ns: distance_ms * MS,
                    error_ns: distance_ms * MS,
                    mono_ns: 0,
                    base_ns: 0,
                    leap: None,
                },
                jitter_ns: 0,
                distance_ns: distance_ms * MS,
            }),
            polled: true,
            held: false,
            noselect: false,
            weight: 1.0,
        }
    }

    const RULES: Rules = Rules {
        min_sources: 1,
        max_error_ns: None,
    };

    fn sample_of(d: &Decision) -> Option<RefSample> {
        d.combination.as_ref().ok().and_then(|c| c.sample)
    }

    #[test]
    fn a_fresh_burst_of_a_survivor_writes_the_combination_stamped_now() {
        let views = [source(1, 10), source(3, 10), source(2, 10)];
        let d = decide(&views, Some(1), &RULES, NOW);
        assert_eq!(d.verdicts, vec![Verdict::Selected; 3]);
        let c = d.combination.as_ref().unwrap();
        assert_eq!(c.survivors, 3);
        let s = sample_of(&d).expect("written");
        assert_eq!((s.receive, s.offset_ns), (NOW, c.offset_ns));
        assert!((MS..=3 * MS).contains(&s.offset_ns), "{}", s.offset_ns);
    }

    #[test]
    fn a_falsetickers_burst_writes_nothing_though_the_others_still_combine() {
        let views = [source(0, 5), source(1, 5), source(500, 5), source(-1, 5)];
        let d = decide(&views, Some(2), &RULES, NOW);
        assert_eq!(d.verdicts[2], Verdict::Falseticker);
        assert_eq!(d.combination.as_ref().unwrap().survivors, 3);
        assert_eq!(sample_of(&d), None, "the falseticker's burst is not news");
        // The next burst of a survivor is.
        let d = decide(&views, Some(0), &RULES, NOW);
        assert!(sample_of(&d).unwrap().offset_ns.abs() <= MS);
    }

    #[test]
    fn a_noselect_source_is_measured_never_combined_and_writes_nothing() {
        let mut views = [source(0, 5), source(900, 5)];
        views[1].noselect = true;
        let d = decide(&views, Some(1), &RULES, NOW);
        assert_eq!(d.verdicts, vec![Verdict::Selected, Verdict::Candidate]);
        assert_eq!(d.combination.as_ref().unwrap().offset_ns, 0);
        assert_eq!(sample_of(&d), None);
    }

    #[test]
    fn pending_held_and_unreachable_sources_are_not_offered() {
        let mut views = [source(0, 5), source(0, 5), source(0, 5), source(7, 5)];
        views[0].polled = false;
        views[0].filtered = None;
        views[1].held = true;
        views[2].filtered = None; // none of its last eight bursts worked
        let d = decide(&views, Some(3), &RULES, NOW);
        assert_eq!(
            d.verdicts,
            vec![
                Verdict::Pending,
                Verdict::Held,
                Verdict::Unreachable,
                Verdict::Selected
            ]
        );
        let c = d.combination.unwrap();
        assert_eq!((c.survivors, c.best, c.offset_ns), (1, 3, 7 * MS));
    }

    #[test]
    fn stale_sources_alone_combine_but_write_nothing() {
        // Every burst since the last selection failed: nothing is fresh, so the combination
        // from the filters is shown but nothing is written.
        let views = [source(0, 5), source(1, 5), source(2, 5)];
        let d = decide(&views, None, &RULES, NOW);
        assert!(d.combination.is_ok());
        assert_eq!(sample_of(&d), None);
    }

    #[test]
    fn fewer_survivors_than_min_sources_write_nothing_and_say_why() {
        let views = [source(0, 5), source(300, 5), source(600, 5)];
        let rules = Rules {
            min_sources: 2,
            ..RULES
        };
        let d = decide(&views, Some(0), &rules, NOW);
        assert!(
            matches!(
                d.combination,
                Err(SelectError::NoMajority { candidates: 3 })
            ),
            "{:?}",
            d.combination
        );
        let views = [source(0, 5), source(1, 5), source(600, 5)];
        let rules = Rules {
            min_sources: 3,
            ..RULES
        };
        let d = decide(&views, Some(0), &rules, NOW);
        assert_eq!(
            d.combination,
            Err(SelectError::TooFew {
                agreeing: 2,
                needed: 3
            })
        );
        // Selection failed as a whole: nobody is selected, nobody is called a liar.
        assert_eq!(d.verdicts, vec![Verdict::Candidate; 3]);
        assert_eq!(sample_of(&d), None);
    }

    #[test]
    fn max_error_leaves_uncertain_sources_as_candidates() {
        let views = [source(0, 5), source(0, 2_000)];
        let rules = Rules {
            max_error_ns: Some(1_000 * MS),
            ..RULES
        };
        let d = decide(&views, Some(1), &rules, NOW);
        assert_eq!(d.verdicts, vec![Verdict::Selected, Verdict::Candidate]);
        assert_eq!(sample_of(&d), None, "its burst is not among the survivors");
    }

    #[test]
    fn no_sources_no_combination() {
        let d = decide(&[], None, &RULES, NOW);
        assert_eq!(d.combination, Err(SelectError::NoCandidates));
        assert!(d.verdicts.is_empty());
    }
}
