//! Across bursts and across sources: each source's clock filter over its last bursts, NTP's
//! intersection algorithm that separates truechimers from falsetickers, and the combination
//! of the survivors into one offset. Pure: no I/O, no clock reads; integer nanoseconds.
//!
//! # A source's clock filter
//! A burst (see [`crate::sample`]) gives an offset with an error bound: half its delay plus
//! its jitter and the server's rounding. The filter keeps a source's last [`FILTER_LEN`]
//! bursts and picks the one with the smallest error bound *now*: a burst's bound grows with
//! its age at NTP's frequency tolerance [`PHI_PPM`] (15 ppm), because the local clock may
//! have drifted (or been steered) since. So an old burst wins only when the newer ones were
//! much worse, which is how NTP's filter shrugs off a congested poll. The spread of the
//! bursts' offsets around the chosen one is the source's jitter, added to its bound.
//!
//! Offsets are server minus local clock, so a step of the local clock (by chrony acting on
//! webntpd's own output, say) moves every later offset by as much. Each burst notes the local
//! realtime clock minus the monotonic one, which changes only when the clock is stepped
//! (slewing moves both clocks alike), and the filter compares offsets as of one such base.
//!
//! # Popcorn spikes
//! A new burst whose interval does not reach what the filter holds (its chosen offset +- its
//! distance, widened by [`MAX_DRIFT_PPM`] of the time since: a clock nobody disciplines
//! drifts, and the reader may be correcting it) is a jump. It is [held](Offer::Held), not
//! used, until the next burst: if that one agrees with the held burst the jump is real and
//! the filter starts again from the two ([`Offer::Confirmed`]); if it agrees with the filter
//! the held burst was a spike and is dropped; otherwise the newer one is held instead.
//!
//! # Selection
//! Each source is an interval `offset +- distance` that contains the true time if the source
//! is honest. Marzullo's algorithm, as ntpd 4.2.8 and ntpsec run NTP's clock select: find
//! the smallest number `f` of sources to give up on such that the intervals of the other
//! `n - f` share a common part, with `f` below half of `n`. The true time lies in that part;
//! a source whose interval reaches it is a truechimer, even when its offset (the midpoint)
//! lies outside, since a source's best estimate need not be inside the part its interval
//! shares with the others. The rest are falsetickers. (RFC 5905's version also required all
//! but `f` midpoints inside the common part; ntpd dropped that, since it casts out honest
//! sources as soon as their intervals are tight: two honest sources 7 us apart with 5 us
//! bounds overlap, yet neither midpoint lies in the other's interval.) The survivors are
//! averaged, each weighted by its `weight` over its distance.

use crate::leap::LeapInfo;

/// Bursts a source's filter keeps.
pub const FILTER_LEN: usize = 8;

/// How fast a source's offset may drift between bursts without being a jump: 500 ppm, the
/// most ntpd or the kernel will correct a clock's frequency by (a quartz clock nobody
/// disciplines is typically within 100 ppm).
pub const MAX_DRIFT_PPM: i64 = 500;

/// How fast an old measurement's error bound grows: NTP's frequency tolerance, 15 ppm
/// (15 us per second of age).
pub const PHI_PPM: i64 = 15;

/// One burst's result, as a source's filter keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Burst {
    /// Server minus local clock, in nanoseconds.
    pub offset_ns: i64,
    /// Round-trip delay of the chosen exchange, in nanoseconds.
    pub delay_ns: i64,
    /// The burst's error bound (half the delay, its jitter, rounding), in nanoseconds.
    pub error_ns: i64,
    /// Monotonic time of the measurement, in nanoseconds (see [`crate::clock::Clock`]).
    pub mono_ns: i64,
    /// The local realtime clock minus the monotonic one at the measurement, in nanoseconds:
    /// it changes only when the local clock is stepped.
    pub base_ns: i64,
    /// The server's leap second information, if it sent any.
    pub leap: Option<LeapInfo>,
}

/// What a source's filter says now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Filtered {
    /// The chosen burst, its offset moved to the local clock as it is now (after any step).
    pub burst: Burst,
    /// RMS difference between the bursts' offsets and the chosen one, in nanoseconds.
    pub jitter_ns: i64,
    /// The chosen burst's error bound, aged to now, plus the jitter: the source's distance.
    pub distance_ns: i64,
}

/// A source's last [`FILTER_LEN`] bursts, newest last, and a burst held as a possible spike.
#[derive(Debug, Clone, Default)]
pub struct ClockFilter {
    bursts: std::collections::VecDeque<Burst>,
    held: Option<Burst>,
}

/// What became of a burst offered to a [`ClockFilter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// Taken in: the first, or consistent with what the filter holds.
    Accepted,
    /// Taken in; the burst held before it was a spike and is dropped.
    SpikeDropped {
        /// How far the spike was from the filter, in nanoseconds.
        jump_ns: i64,
    },
    /// Not taken: it jumps `jump_ns` away from what the filter holds. Held until the next.
    Held {
        /// The jump, in nanoseconds (new minus old offset).
        jump_ns: i64,
    },
    /// The held burst and this one agree: the jump is real, and the filter now holds only
    /// the two.
    Confirmed {
        /// The jump, in nanoseconds.
        jump_ns: i64,
    },
}

/// `burst`'s offset as it would read on the local clock with base `base_ns`.
fn rebased(burst: &Burst, base_ns: i64) -> Burst {
    Burst {
        offset_ns: burst
            .offset_ns
            .saturating_add(burst.base_ns.saturating_sub(base_ns)),
        base_ns,
        ..*burst
    }
}

/// How far `ns` of elapsed time lets an offset drift.
fn drift_ns(ns: i64) -> i64 {
    ns.saturating_abs().saturating_mul(MAX_DRIFT_PPM) / 1_000_000
}

impl ClockFilter {
    fn push(&mut self, burst: Burst) {
        if self.bursts.len() == FILTER_LEN {
            self.bursts.pop_front();
        }
        self.bursts.push_back(burst);
    }

    /// Offer a new burst: taken in, or held as a possible spike (see the module comment).
    pub fn offer(&mut self, burst: Burst) -> Offer {
        let Some(now) = self.best(burst.mono_ns, burst.base_ns) else {
            self.push(burst);
            return Offer::Accepted;
        };
        let agrees = |a: &Burst, b: &Burst, b_error: i64| {
            let gap = a.offset_ns.abs_diff(b.offset_ns);
            let allowed = a
                .error_ns
                .saturating_add(b_error)
                .saturating_add(drift_ns(a.mono_ns.saturating_sub(b.mono_ns)));
            gap <= allowed.max(0).unsigned_abs()
        };
        let jump_ns = burst.offset_ns.saturating_sub(now.burst.offset_ns);
        if agrees(&burst, &now.burst, now.distance_ns) {
            let spike = self.held.take();
            self.push(burst);
            return match spike {
                Some(h) => Offer::SpikeDropped {
                    jump_ns: rebased(&h, burst.base_ns)
                        .offset_ns
                        .saturating_sub(now.burst.offset_ns),
                },
                None => Offer::Accepted,
            };
        }
        match self.held.take() {
            Some(h) if agrees(&burst, &rebased(&h, burst.base_ns), h.error_ns) => {
                self.bursts.clear();
                self.push(h);
                self.push(burst);
                Offer::Confirmed { jump_ns }
            }
            _ => {
                self.held = Some(burst);
                Offer::Held { jump_ns }
            }
        }
    }

    /// Forget every burst, held or not (after the source changed, say).
    pub fn clear(&mut self) {
        self.bursts.clear();
        self.held = None;
    }

    /// Bursts held in the filter (not counting one held as a possible spike).
    pub fn len(&self) -> usize {
        self.bursts.len()
    }

    /// Whether no burst is held.
    pub fn is_empty(&self) -> bool {
        self.bursts.is_empty()
    }

    /// The newest burst taken in.
    pub fn newest(&self) -> Option<&Burst> {
        self.bursts.back()
    }

    /// The burst held as a possible spike, if any.
    pub fn held(&self) -> Option<&Burst> {
        self.held.as_ref()
    }

    /// The burst with the smallest error bound at monotonic time `now_ns`, with the jitter,
    /// its offset moved to the local clock base `base_ns` (see [`Burst::base_ns`]).
    pub fn best(&self, now_ns: i64, base_ns: i64) -> Option<Filtered> {
        let aged = |b: &Burst| b.error_ns.saturating_add(aging_ns(now_ns - b.mono_ns));
        // On equal bounds the newer burst wins (iterating newest first, `min_by_key` keeps
        // the first minimum).
        let burst = rebased(self.bursts.iter().rev().min_by_key(|b| aged(b))?, base_ns);
        let jitter_ns = rms_difference(
            self.bursts.iter().map(|b| rebased(b, base_ns).offset_ns),
            burst.offset_ns,
        );
        Some(Filtered {
            burst,
            jitter_ns,
            distance_ns: aged(&burst).saturating_add(jitter_ns),
        })
    }
}

/// How much an error bound grows over `age_ns` (negative ages, impossible on a monotonic
/// clock, count as none).
pub fn aging_ns(age_ns: i64) -> i64 {
    age_ns.max(0).saturating_mul(PHI_PPM) / 1_000_000
}

/// RMS difference of `values` from `center` (n - 1 in the denominator; 0 for one value).
fn rms_difference(values: impl Iterator<Item = i64>, center: i64) -> i64 {
    let (mut n, mut sum_sq) = (0u128, 0u128);
    for v in values {
        let d = i128::from(v) - i128::from(center);
        sum_sq = sum_sq.saturating_add((d * d) as u128);
        n += 1;
    }
    if n < 2 {
        return 0;
    }
    i64::try_from((sum_sq / (n - 1)).isqrt()).unwrap_or(i64::MAX)
}

/// One source, as selection sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// Server minus local clock, in nanoseconds.
    pub offset_ns: i64,
    /// The source's distance: the true offset is within `offset +- distance` if it is honest.
    pub distance_ns: i64,
    /// The configured weight (1.0 by default; positive).
    pub weight: f64,
    /// The source's leap second information, if any.
    pub leap: Option<LeapInfo>,
}

/// The outcome of a successful selection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// The combined offset, in nanoseconds.
    pub offset_ns: i64,
    /// A bound on the combined offset's error, in nanoseconds: if the survivors are honest,
    /// the true offset is within this of [`Selection::offset_ns`].
    pub error_ns: i64,
    /// Indexes (into the candidates) of the survivors.
    pub survivors: Vec<usize>,
    /// Indexes of the falsetickers.
    pub falsetickers: Vec<usize>,
    /// Indexes of the candidates left out because their distance exceeds the maximum error.
    pub too_uncertain: Vec<usize>,
    /// The leap information most survivors agree on; `None` without a majority.
    pub leap: Option<LeapInfo>,
}

/// Why no offset could be selected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    /// No source has a usable measurement.
    #[error("no source has a usable measurement")]
    NoCandidates,
    /// The sources' intervals do not overlap enough to tell who is right.
    #[error("the {candidates} sources disagree: no majority of them agrees on the time")]
    NoMajority { candidates: usize },
    /// Fewer sources agree than the configuration asks for.
    #[error(
        "{agreeing} source(s) agree, fewer than the {needed} required (selection.min_sources)"
    )]
    TooFew { agreeing: usize, needed: usize },
    /// Every source's error bound is larger than the configuration accepts.
    #[error(
        "all {candidates} measured sources have an error bound above the {} s allowed \
         (selection.max_error)",
        *max_ns as f64 / 1e9
    )]
    TooUncertain { candidates: usize, max_ns: i64 },
}

/// Select the truechimers among `candidates` and combine them. Candidates whose distance is
/// above `max_error_ns` (when given) are left out first; at least `min_sources` must survive.
pub fn select(
    candidates: &[Candidate],
    min_sources: usize,
    max_error_ns: Option<i64>,
) -> Result<Selection, SelectError> {
    if candidates.is_empty() {
        return Err(SelectError::NoCandidates);
    }
    let (usable, too_uncertain): (Vec<usize>, Vec<usize>) = (0..candidates.len())
        .partition(|&i| max_error_ns.is_none_or(|max| candidates[i].distance_ns <= max));
    if usable.is_empty() {
        return Err(SelectError::TooUncertain {
            candidates: candidates.len(),
            max_ns: max_error_ns.unwrap_or(0),
        });
    }
    let pool: Vec<Candidate> = usable.iter().map(|&i| candidates[i]).collect();
    let n = pool.len();
    let (low, high) = intersection(&pool).ok_or(SelectError::NoMajority { candidates: n })?;
    let (survivors, falsetickers): (Vec<usize>, Vec<usize>) =
        usable.iter().copied().partition(|&i| {
            let c = &candidates[i];
            let d = c.distance_ns.max(0);
            c.offset_ns.saturating_sub(d) <= high && c.offset_ns.saturating_add(d) >= low
        });
    if survivors.len() < min_sources.max(1) {
        return Err(SelectError::TooFew {
            agreeing: survivors.len(),
            needed: min_sources.max(1),
        });
    }

    // Weighted mean, weight / distance, in fixed point: the weight in 1/1024ths (at most
    // 2^31), shifted by 2^30, so every product with an offset fits an i128 with room for
    // thousands of sources.
    let (mut num, mut den) = (0i128, 0i128);
    for &i in &survivors {
        let c = &candidates[i];
        let weight = (c.weight * 1024.0).round().clamp(1.0, 2_147_483_648.0) as i128;
        let w = ((weight << 30) / i128::from(c.distance_ns.max(1))).max(1);
        num += w * i128::from(c.offset_ns);
        den += w;
    }
    let offset_ns = i64::try_from(num / den).unwrap_or(candidates[survivors[0]].offset_ns);
    // If the survivors are honest, the true offset is within each one's interval: the
    // tightest of those, seen from the combined offset, bounds the error.
    let error_ns = survivors
        .iter()
        .map(|&i| {
            let c = &candidates[i];
            c.distance_ns
                .saturating_add(c.offset_ns.saturating_sub(offset_ns).saturating_abs())
        })
        .min()
        .unwrap_or(i64::MAX);
    let leap = leap_majority(survivors.iter().map(|&i| candidates[i].leap));
    Ok(Selection {
        offset_ns,
        error_ns,
        survivors,
        falsetickers,
        too_uncertain,
        leap,
    })
}

/// NTP's intersection: the smallest interval `[low, high]` that the intervals of more than
/// half of the candidates share, or `None` if no majority agrees.
fn intersection(candidates: &[Candidate]) -> Option<(i64, i64)> {
    let n = candidates.len();
    // (value, kind): -1 lower end, +1 upper end. Sorting by (value, kind) puts lower ends
    // first among equal values, so intervals that only touch still overlap.
    let mut ends: Vec<(i64, i8)> = Vec::with_capacity(2 * n);
    for c in candidates {
        let d = c.distance_ns.max(0);
        ends.push((c.offset_ns.saturating_sub(d), -1));
        ends.push((c.offset_ns.saturating_add(d), 1));
    }
    ends.sort_unstable();
    // Give up on `allow` sources, one more each round, while they are a minority.
    let mut allow = 0;
    while 2 * allow < n {
        let need = (n - allow) as i64;
        let mut chime = 0i64;
        let low = ends.iter().find_map(|&(v, kind)| {
            chime -= i64::from(kind);
            (chime >= need).then_some(v)
        });
        let mut chime = 0i64;
        let high = ends.iter().rev().find_map(|&(v, kind)| {
            chime += i64::from(kind);
            (chime >= need).then_some(v)
        });
        if let (Some(low), Some(high)) = (low, high) {
            if low <= high {
                return Some((low, high));
            }
        }
        allow += 1;
    }
    None
}

/// The leap information more than half of those that sent any agree on.
fn leap_majority(leaps: impl Iterator<Item = Option<LeapInfo>>) -> Option<LeapInfo> {
    let reported: Vec<LeapInfo> = leaps.flatten().collect();
    reported
        .iter()
        .find(|l| 2 * reported.iter().filter(|m| m == l).count() > reported.len())
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000_000;

    fn cand(offset_ms: i64, distance_ms: i64) -> Candidate {
        Candidate {
            offset_ns: offset_ms * MS,
            distance_ns: distance_ms * MS,
            weight: 1.0,
            leap: None,
        }
    }

    fn burst(offset_ns: i64, error_ns: i64, mono_s: i64) -> Burst {
        Burst {
            offset_ns,
            delay_ns: 2 * error_ns,
            error_ns,
            mono_ns: mono_s * 1_000_000_000,
            base_ns: 0,
            leap: None,
        }
    }

    #[test]
    fn three_agree_and_the_shifted_one_is_a_falseticker() {
        let c = [cand(1, 10), cand(-2, 10), cand(500, 10), cand(0, 10)];
        let s = select(&c, 1, None).unwrap();
        assert_eq!(s.survivors, vec![0, 1, 3]);
        assert_eq!(s.falsetickers, vec![2]);
        assert!(s.offset_ns.abs() < 2 * MS, "{}", s.offset_ns);
        assert!(
            s.error_ns >= 10 * MS && s.error_ns <= 13 * MS,
            "{}",
            s.error_ns
        );
    }

    #[test]
    fn one_source_is_its_own_majority() {
        let s = select(&[cand(7, 3)], 1, None).unwrap();
        assert_eq!(s.offset_ns, 7 * MS);
        assert_eq!(s.error_ns, 3 * MS);
        assert_eq!(
            select(&[cand(7, 3)], 2, None),
            Err(SelectError::TooFew {
                agreeing: 1,
                needed: 2
            })
        );
    }

    #[test]
    fn two_that_disagree_give_no_majority() {
        assert_eq!(
            select(&[cand(0, 5), cand(100, 5)], 1, None),
            Err(SelectError::NoMajority { candidates: 2 })
        );
        // Overlapping intervals: both survive, averaged, though neither midpoint lies in
        // the common part [5, 10] (ntpd 4.2.8's rule; RFC 5905's would refuse both).
        let s = select(&[cand(0, 10), cand(15, 10)], 1, None).unwrap();
        assert_eq!(s.survivors, vec![0, 1]);
        assert_eq!(s.offset_ns, 15 * MS / 2);
        let s = select(&[cand(0, 10), cand(8, 10)], 1, None).unwrap();
        assert_eq!(s.survivors, vec![0, 1]);
        assert_eq!(s.offset_ns, 4 * MS);
    }

    #[test]
    fn tight_honest_sources_survive_though_their_midpoints_miss_the_common_part() {
        // As the daemon's test saw it (in us, here ms): three honest sources, the tightest
        // [-7, 3], a biased one at +7 whose interval still reaches the truth, and one 500 off.
        let c = [cand(-2, 5), cand(2, 15), cand(7, 23), cand(500, 13)];
        let s = select(&c, 2, None).unwrap();
        assert_eq!(s.survivors, vec![0, 1, 2]);
        assert_eq!(s.falsetickers, vec![3]);
    }

    #[test]
    fn an_even_split_has_no_majority() {
        let c = [cand(0, 1), cand(1, 1), cand(300, 1), cand(301, 1)];
        assert_eq!(
            select(&c, 1, None),
            Err(SelectError::NoMajority { candidates: 4 })
        );
    }

    #[test]
    fn precise_sources_weigh_more() {
        let s = select(&[cand(0, 10), cand(6, 6)], 1, None).unwrap();
        // Weights 1/10 and 1/6: (0 x 3 + 6 x 5) / 8 ms.
        assert!((s.offset_ns - 30 * MS / 8).abs() < 1_000, "{}", s.offset_ns);
        let mut heavy = [cand(0, 10), cand(6, 6)];
        heavy[0].weight = 10.0 / 6.0;
        let s = select(&heavy, 1, None).unwrap();
        // Equal weights: the midpoint.
        assert!((s.offset_ns - 3 * MS).abs() < 1_000, "{}", s.offset_ns);
    }

    #[test]
    fn max_error_leaves_uncertain_sources_out() {
        assert_eq!(
            select(&[cand(0, 50)], 1, Some(10 * MS)),
            Err(SelectError::TooUncertain {
                candidates: 1,
                max_ns: 10 * MS
            })
        );
        // The uncertain one would have disagreed; left out, it cannot spoil the majority.
        let s = select(&[cand(0, 5), cand(300, 50), cand(1, 5)], 1, Some(10 * MS)).unwrap();
        assert_eq!(s.survivors, vec![0, 2]);
        assert_eq!(s.too_uncertain, vec![1]);
        assert!(s.falsetickers.is_empty());
        assert_eq!(select(&[], 1, None), Err(SelectError::NoCandidates));
    }

    #[test]
    fn leap_information_follows_the_majority() {
        let soon = LeapInfo {
            leap: 37,
            next_unix: 1_814_400_000,
            step: 1,
        };
        let none = LeapInfo {
            leap: 37,
            next_unix: 1_483_228_800,
            step: 1,
        };
        let mut c = [cand(0, 5), cand(1, 5), cand(2, 5)];
        c[0].leap = Some(soon);
        c[1].leap = Some(none);
        c[2].leap = Some(none);
        assert_eq!(select(&c, 1, None).unwrap().leap, Some(none));
        // One each way and one silent: no majority, no leap information.
        c[2].leap = None;
        assert_eq!(select(&c, 1, None).unwrap().leap, None);
    }

    #[test]
    fn the_filter_prefers_a_fresh_burst_unless_it_is_much_worse() {
        let mut f = ClockFilter::default();
        assert!(f.best(0, 0).is_none());
        f.push(burst(1_000, 100_000, 0));
        f.push(burst(2_000, 300_000, 64));
        // At 64 s the first burst has aged by 64 s x 15 ppm = 960 us: the second wins.
        assert_eq!(
            f.best(64 * 1_000_000_000, 0).unwrap().burst.offset_ns,
            2_000
        );
        // A much worse new burst (a congested poll) loses to the older good one.
        f.push(burst(9_000, 5_000_000, 128));
        let b = f.best(128 * 1_000_000_000, 0).unwrap();
        assert_eq!(b.burst.offset_ns, 2_000);
        // Distance: its bound, aged 64 s, plus the jitter of the three offsets around it.
        let jitter = (((1_000i64 - 2_000).pow(2) + (9_000i64 - 2_000).pow(2)) / 2).isqrt();
        assert_eq!(b.jitter_ns, jitter);
        assert_eq!(b.distance_ns, 300_000 + 960_000 + jitter);
    }

    #[test]
    fn the_filter_keeps_the_last_eight() {
        let mut f = ClockFilter::default();
        for i in 0..20 {
            assert_eq!(f.offer(burst(i, 1_000, i)), Offer::Accepted);
        }
        assert_eq!(f.len(), FILTER_LEN);
        assert_eq!(f.newest().unwrap().offset_ns, 19);
        // Equal bounds: the newest wins, as aging favours it.
        assert_eq!(f.best(19_000_000_000, 0).unwrap().burst.offset_ns, 19);
        f.clear();
        assert!(f.is_empty());
    }

    const S: i64 = 1_000_000_000;

    /// A filter fed `n` bursts 64 s apart, 10 us bounds, offsets from `offset(i)`.
    fn fed(n: i64, offset: impl Fn(i64) -> i64) -> ClockFilter {
        let mut f = ClockFilter::default();
        for i in 0..n {
            assert_eq!(
                f.offer(burst(offset(i), 10_000, 64 * i)),
                Offer::Accepted,
                "{i}"
            );
        }
        f
    }

    #[test]
    fn a_spike_is_held_and_dropped_when_the_next_burst_agrees_with_the_filter() {
        let mut f = fed(4, |_| 0);
        let mut t = 192;
        // At every magnitude the tests inject: 64 s of drift allowance is 32 ms.
        for jump in [S, 250_000_000, 50_000_000, -50_000_000] {
            t += 64;
            assert_eq!(
                f.offer(burst(jump, 10_000, t)),
                Offer::Held { jump_ns: jump }
            );
            assert_eq!(f.held().map(|b| b.offset_ns), Some(jump));
            // The filter still says what it said.
            assert_eq!(f.best(t * S, 0).unwrap().burst.offset_ns, 0);
            t += 64;
            assert_eq!(
                f.offer(burst(0, 10_000, t)),
                Offer::SpikeDropped { jump_ns: jump }
            );
            assert!(f.held().is_none());
        }
    }

    #[test]
    fn a_jump_the_next_burst_confirms_restarts_the_filter() {
        let mut f = fed(5, |_| 0);
        assert_eq!(f.offer(burst(S, 10_000, 320)), Offer::Held { jump_ns: S });
        assert_eq!(
            f.offer(burst(S + 20_000, 10_000, 384)),
            Offer::Confirmed {
                jump_ns: S + 20_000
            }
        );
        assert_eq!(f.len(), 2);
        assert!(f.held().is_none());
        assert_eq!(f.best(384 * S, 0).unwrap().burst.offset_ns, S + 20_000);
        // Two jumps that disagree with each other and with the filter: the newer is held.
        assert_eq!(
            f.offer(burst(-S, 10_000, 448)),
            Offer::Held {
                jump_ns: -2 * S - 20_000
            }
        );
        assert!(matches!(
            f.offer(burst(3 * S, 10_000, 512)),
            Offer::Held { .. }
        ));
        assert_eq!(f.held().map(|b| b.offset_ns), Some(3 * S));
    }

    #[test]
    fn a_step_of_the_local_clock_is_not_a_jump() {
        let mut f = fed(3, |_| 2 * S);
        // The reader stepped the local clock 2 s forward: every offset drops by 2 s, and the
        // local realtime clock is 2 s further from the monotonic one.
        let after = Burst {
            base_ns: 2 * S,
            ..burst(0, 10_000, 192)
        };
        assert_eq!(f.offer(after), Offer::Accepted);
        let now = f.best(192 * S, 2 * S).unwrap();
        assert_eq!(now.burst.offset_ns, 0);
        assert_eq!(
            now.jitter_ns, 0,
            "the old bursts, moved to the new base, agree"
        );
    }

    #[test]
    fn a_clock_nobody_disciplines_drifts_without_jumping() {
        // 100 ppm: 6.4 ms per 64 s poll, far beyond the 10 us bounds.
        let f = fed(8, |i| i * 6_400_000);
        assert!(f.held().is_none());
        // Beyond 500 ppm it is a jump.
        let mut f = fed(3, |_| 0);
        assert!(matches!(
            f.offer(burst(40_000_000, 10_000, 192)),
            Offer::Held { .. }
        ));
    }

    #[test]
    fn selection_never_panics_on_extreme_values() {
        let extremes = [i64::MIN, -1, 0, 1, i64::MAX];
        for &o in &extremes {
            for &d in &extremes {
                let c = Candidate {
                    offset_ns: o,
                    distance_ns: d,
                    weight: f64::MAX,
                    leap: None,
                };
                let _ = select(&[c, c, cand(0, 1)], 1, Some(0));
            }
        }
    }
}
