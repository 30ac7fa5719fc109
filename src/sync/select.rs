//! Selection and combination across sources: NTP's intersection algorithm separates
//! truechimers from falsetickers, and the survivors are averaged into one offset. Pure: no
//! I/O, no clock reads; integer nanoseconds.
//!
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

use super::leap::LeapInfo;

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
