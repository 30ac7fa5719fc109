//! Per-client rate limiting for the NTP server, in a table of fixed size. Pure: the time is
//! passed in (monotonic nanoseconds), nothing is read or logged here.
//!
//! Each client address has a token bucket kept as one number, the time its bucket will be
//! full again (the generic cell rate algorithm): a client may send `burst` requests at once,
//! then one per `interval` on average; the rest are refused. A refused client is sent at
//! most one Kiss-o'-Death per `interval` when `kod` is on (RFC 5905's RATE: a well-behaved
//! client backs off), and nothing else, so a flood from a spoofed address is answered with
//! at most one small datagram per interval.
//!
//! # Bounded
//! The table holds `capacity` clients in sets of [`WAYS`]; an address hashes (with a key
//! drawn at start, so nobody can aim at one set) to one set, and a new client takes the
//! entry of that set whose bucket is fullest (the one idle longest). A client whose bucket
//! is full is indistinguishable from one never seen, so evicting it changes nothing; only
//! when a set holds four busy clients does a fifth evict one of them, which then starts
//! afresh: an address-spraying attacker can at worst weaken the limit for the few clients
//! sharing a set, never grow the table. Per request: one hash and four comparisons.

use std::hash::BuildHasher;
use std::net::IpAddr;

use super::access::key;

/// Entries per set.
pub const WAYS: usize = 4;

/// The limit one client is held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// The average interval a client may send at, in nanoseconds (more than 0).
    pub interval_ns: i64,
    /// Requests a client may send at once (at least 1).
    pub burst: u32,
    /// Send a Kiss-o'-Death (RATE) to a limited client, at most one per interval.
    pub kod: bool,
}

/// What to do with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Answer it.
    Pass,
    /// Answer it with a Kiss-o'-Death RATE instead.
    Kiss,
    /// Drop it.
    Limited,
}

/// The clients' buckets, at most `capacity` of them.
pub struct RateTable {
    limit: RateLimit,
    /// The addresses ([`key`]), 0 for a free entry (`::` never sends).
    keys: Vec<u128>,
    /// When each bucket is full again ("theoretical arrival time"), monotonic ns.
    full_at: Vec<i64>,
    /// When each client was last sent a Kiss-o'-Death, monotonic ns.
    kissed_at: Vec<i64>,
    hasher: std::collections::hash_map::RandomState,
}

impl RateTable {
    /// A table for `capacity` clients (rounded up to a multiple of [`WAYS`], at least one
    /// set). Its memory is zeroed pages the kernel maps only as clients fill them.
    pub fn new(limit: RateLimit, capacity: usize) -> RateTable {
        let n = capacity.max(1).div_ceil(WAYS) * WAYS;
        RateTable {
            limit: RateLimit {
                interval_ns: limit.interval_ns.max(1),
                burst: limit.burst.max(1),
                ..limit
            },
            keys: vec![0; n],
            full_at: vec![0; n],
            kissed_at: vec![0; n],
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    /// Clients the table can hold.
    pub fn capacity(&self) -> usize {
        self.keys.len()
    }

    /// The entry for `k`: found in its set, or taken from the set's idlest entry.
    fn entry(&mut self, k: u128, now_ns: i64) -> usize {
        let sets = self.keys.len() / WAYS;
        let first = (self.hasher.hash_one(k) % sets as u64) as usize * WAYS;
        let set = first..first + WAYS;
        if let Some(i) = set.clone().find(|&i| self.keys[i] == k) {
            return i;
        }
        // A free entry has full_at 0, the smallest there is; otherwise the fullest bucket.
        let i = set
            .min_by_key(|&i| {
                if self.keys[i] == 0 {
                    i64::MIN
                } else {
                    self.full_at[i]
                }
            })
            .unwrap_or(first);
        self.keys[i] = k;
        self.full_at[i] = now_ns;
        self.kissed_at[i] = i64::MIN;
        i
    }

    /// A request from `ip` at monotonic time `now_ns`: whether to answer it.
    pub fn check(&mut self, ip: IpAddr, now_ns: i64) -> Verdict {
        let i = self.entry(key(ip), now_ns);
        let RateLimit {
            interval_ns,
            burst,
            kod,
        } = self.limit;
        let full_at = self.full_at[i].max(now_ns);
        let tolerance = interval_ns.saturating_mul(i64::from(burst) - 1);
        if full_at - now_ns <= tolerance {
            self.full_at[i] = full_at.saturating_add(interval_ns);
            return Verdict::Pass;
        }
        if kod && now_ns.saturating_sub(self.kissed_at[i]) >= interval_ns {
            self.kissed_at[i] = now_ns;
            return Verdict::Kiss;
        }
        Verdict::Limited
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn limit(kod: bool) -> RateLimit {
        RateLimit {
            interval_ns: S,
            burst: 4,
            kod,
        }
    }

    #[test]
    fn a_burst_then_one_per_interval() {
        let mut t = RateTable::new(limit(false), 64);
        let a = ip("192.0.2.1");
        let now = 100 * S;
        for _ in 0..4 {
            assert_eq!(t.check(a, now), Verdict::Pass);
        }
        assert_eq!(t.check(a, now), Verdict::Limited);
        assert_eq!(t.check(a, now + S / 2), Verdict::Limited);
        assert_eq!(t.check(a, now + S), Verdict::Pass, "one more per interval");
        assert_eq!(t.check(a, now + S), Verdict::Limited);
        // Another client is not affected.
        assert_eq!(t.check(ip("192.0.2.2"), now), Verdict::Pass);
        // After 4 idle intervals the whole burst is back.
        let later = now + 6 * S;
        for _ in 0..4 {
            assert_eq!(t.check(a, later), Verdict::Pass);
        }
        assert_eq!(t.check(a, later), Verdict::Limited);
    }

    #[test]
    fn a_steady_client_within_the_limit_is_never_refused() {
        let mut t = RateTable::new(limit(false), 8);
        let a = ip("2001:db8::1");
        for i in 0..1_000 {
            assert_eq!(t.check(a, i * S), Verdict::Pass, "request {i}");
        }
    }

    #[test]
    fn a_flooding_client_gets_one_kiss_per_interval() {
        let mut t = RateTable::new(limit(true), 64);
        let a = ip("198.51.100.7");
        let mut kisses = 0;
        let mut passed = 0;
        // 1000 requests a second for 10 s.
        for ms in 0..10_000 {
            match t.check(a, ms * 1_000_000) {
                Verdict::Pass => passed += 1,
                Verdict::Kiss => kisses += 1,
                Verdict::Limited => {}
            }
        }
        assert_eq!(passed, 4 + 9, "the burst, then one a second");
        assert_eq!(kisses, 10, "one Kiss-o'-Death a second");
    }

    #[test]
    fn the_table_never_grows_and_busy_clients_keep_their_buckets() {
        let mut t = RateTable::new(limit(false), 16);
        assert_eq!(t.capacity(), 16);
        let busy = ip("192.0.2.1");
        for _ in 0..4 {
            t.check(busy, 0);
        }
        // 10,000 other addresses, once each, in the same second.
        for i in 0..10_000u32 {
            let other = IpAddr::V4(std::net::Ipv4Addr::from(0x0A00_0000 + i));
            assert_eq!(
                t.check(other, S / 2),
                Verdict::Pass,
                "a new client is answered"
            );
        }
        assert_eq!(t.capacity(), 16, "no entry added");
        // The busy client was either kept (and is limited) or evicted (and starts afresh):
        // both are within what the table promises; most often its set kept it.
        let v = t.check(busy, S / 2);
        assert!(matches!(v, Verdict::Limited | Verdict::Pass));
    }

    #[test]
    fn an_idle_entry_is_the_one_replaced() {
        // One set of four: three busy clients and one idle; a new client replaces the idle.
        let mut t = RateTable::new(limit(false), WAYS);
        let busy = ["192.0.2.1", "192.0.2.2", "192.0.2.3"].map(ip);
        for b in busy {
            for _ in 0..4 {
                t.check(b, 10 * S);
            }
        }
        t.check(ip("192.0.2.4"), 0); // idle since
        t.check(ip("192.0.2.5"), 10 * S);
        for b in busy {
            assert_eq!(t.check(b, 10 * S), Verdict::Limited, "{b} kept its bucket");
        }
    }

    #[test]
    fn ipv4_and_its_mapped_form_share_a_bucket() {
        let mut t = RateTable::new(
            RateLimit {
                burst: 1,
                ..limit(false)
            },
            64,
        );
        assert_eq!(t.check(ip("192.0.2.9"), 0), Verdict::Pass);
        assert_eq!(t.check(ip("::ffff:192.0.2.9"), 0), Verdict::Limited);
    }
}
