//! The leap-seconds.list parser (src/leap/mod.rs `LeapList::parse_bytes`) and the lookup the
//! server answers every request with (`info_at`, `LeapStore::info`).
//!
//! The SHA-1 in `#h` stops almost every mutated file before the checks after it, so for half
//! of the inputs (first byte odd) a hash mismatch is repaired: the `#h` line is replaced with
//! the computed hash and the text parsed again, which must then not report a mismatch.
//! Checked for every list that parses: the invariants `LeapList` promises (entries, strictly
//! increasing, +-1 steps, expiry after update), and `info_at` / `tai_utc_at` at instants
//! around every entry and at extremes: `next` is an entry's time (or 0 with no event), `step`
//! is that event's change and `leap` TAI-UTC before it, and the store answers the same.

#![no_main]

use libfuzzer_sys::fuzz_target;
use webntpd::leap::{LeapError, LeapList, LeapStore};
use webntpd::sync::Timestamp;

fn repaired(text: &str, words: [u32; 5]) -> String {
    let mut out: String = text
        .split_inclusive('\n')
        .filter(|l| !l.trim_start_matches([' ', '\t']).starts_with("#h"))
        .collect();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&format!(
        "#h {:08x} {:08x} {:08x} {:08x} {:08x}\n",
        words[0], words[1], words[2], words[3], words[4]
    ));
    out
}

fn check(list: &LeapList) {
    let e = list.entries();
    assert!(!e.is_empty());
    for w in e.windows(2) {
        assert!(w[1].ntp > w[0].ntp);
        assert_eq!((i64::from(w[1].tai_utc) - i64::from(w[0].tai_utc)).abs(), 1);
    }
    assert!(list.expires_unix() > list.updated_unix());
    let mut instants = vec![
        i64::MIN,
        i64::MAX,
        0,
        -1,
        list.updated_unix(),
        list.expires_unix(),
    ];
    for entry in e {
        let u = entry.unix();
        instants.extend([u.saturating_sub(1), u, u.saturating_add(1)]);
    }
    let store = LeapStore::from_list(list.clone());
    for now in instants {
        let info = list.info_at(now);
        let _ = list.is_expired(now);
        let tai = list.tai_utc_at(now);
        if e.len() == 1 {
            assert_eq!((info.leap, info.next_unix, info.step), (e[0].tai_utc, 0, 0));
            assert_eq!(tai, e[0].tai_utc);
        } else {
            let i = match e.iter().skip(1).position(|x| x.unix() == info.next_unix) {
                Some(p) => p + 1,
                None => panic!("next {} is no event of {e:?}", info.next_unix),
            };
            assert_eq!(info.leap, e[i - 1].tai_utc);
            assert_eq!(info.step, e[i].tai_utc - e[i - 1].tai_utc);
            // The first event after now, or the last one.
            let first_after = e.iter().skip(1).position(|x| x.unix() > now);
            assert_eq!(Some(i - 1), first_after.or(Some(e.len() - 2)));
            // TAI-UTC now: the last entry at or before now (the baseline before any).
            let last_at = e
                .iter()
                .skip(1)
                .rposition(|x| x.unix() <= now)
                .map_or(0, |p| p + 1);
            assert_eq!(tai, e[last_at].tai_utc);
        }
        let at = Timestamp::from_secs(now);
        assert_eq!(store.info(at), list.info_at(at.unix_seconds()));
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, bytes)) = data.split_first() else {
        return;
    };
    match LeapList::parse_bytes(bytes) {
        Ok(list) => check(&list),
        Err(LeapError::HashMismatch { computed, .. }) if mode & 1 == 1 => {
            let Ok(text) = std::str::from_utf8(bytes) else {
                panic!("a hash was computed over text that is not UTF-8");
            };
            let fixed = repaired(text, computed.0);
            match LeapList::parse(&fixed) {
                Ok(list) => check(&list),
                Err(e @ LeapError::HashMismatch { .. }) => {
                    panic!("repaired hash still mismatches: {e}\n{fixed}")
                }
                Err(e) => {
                    let _ = e.to_string();
                }
            }
        }
        Err(e) => {
            // Every message formats (dates outside years 1970-9999 included).
            let _ = e.to_string();
        }
    }
});
