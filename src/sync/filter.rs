//! A source's clock filter: its last bursts, the one to believe now, and the popcorn-spike
//! rule that holds a jump until the next burst confirms it. Pure: no I/O, no clock reads;
//! integer nanoseconds.
//!
//! A burst (see [`super::burst`]) gives an offset with an error bound: half its delay plus
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

use super::leap::LeapInfo;

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
fn aging_ns(age_ns: i64) -> i64 {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// What only the tests ask of a filter.
    impl ClockFilter {
        fn len(&self) -> usize {
            self.bursts.len()
        }

        fn newest(&self) -> Option<&Burst> {
            self.bursts.back()
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
}
