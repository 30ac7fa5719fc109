//! The `leap-seconds.list` format (IETF/tzdata/IERS): parsing, strict verification
//! (structure, ordering, +-1 steps and the `#h` SHA-1) and the lookup the WebNTP server
//! answers every request with ([`LeapList::info_at`], go-webntp's semantics). Pure: no I/O,
//! no clock reads.
//!
//! # The format
//! - `#$ <NTP seconds>`: when the list was last updated.
//! - `#@ <NTP seconds>`: when the list expires.
//! - `#h <five hex words>`: SHA-1 over the `#$` value, the `#@` value and the first two numbers
//!   of every data line, in file order, as decimal text with whitespace and comments removed.
//! - `<NTP seconds> <TAI-UTC> [# comment]`: a data line. The first one (1972-01-01, 10 s) is a
//!   baseline; each later one is an event where TAI-UTC steps by exactly +1 or -1 second.
//! - Any other line starting with `#` is a comment; blank lines are ignored.
//!
//! NTP seconds count from 1900-01-01; Unix seconds = NTP seconds - 2208988800.

use std::fmt;

use sha1::{Digest, Sha1};

use crate::sync::leap::LeapInfo;
use crate::wire::NTP_UNIX_OFFSET_SECS;

/// Longest excerpt of an offending line quoted in an error message, in characters.
const MAX_QUOTE_CHARS: usize = 60;

/// One data line of the list: from `ntp` on, TAI-UTC is `tai_utc` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeapEntry {
    /// The instant, in NTP seconds (since 1900-01-01 00:00:00 UTC).
    pub ntp: u64,
    /// TAI-UTC in seconds from that instant on.
    pub tai_utc: i32,
}

impl LeapEntry {
    /// The instant in Unix seconds.
    pub fn unix(&self) -> i64 {
        ntp_to_unix(self.ntp)
    }
}

/// The five 32-bit words of a SHA-1, as written on a `#h` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashWords(pub [u32; 5]);

impl fmt::Display for HashWords {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e] = self.0;
        write!(f, "{a:08x} {b:08x} {c:08x} {d:08x} {e:08x}")
    }
}

/// Why a text is not a valid `leap-seconds.list`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeapError {
    /// The bytes are not UTF-8 text.
    #[error("line {line}: not UTF-8 text; this is not a leap-seconds.list")]
    NotText {
        /// 1-based line of the first invalid byte.
        line: usize,
    },
    /// Nothing but white space.
    #[error("the file is empty; expected a leap-seconds.list")]
    Empty,
    /// A line that does not have the expected shape.
    #[error("line {line}: expected {expected}, found `{found}`")]
    Syntax {
        /// 1-based line number.
        line: usize,
        /// What the line should look like.
        expected: &'static str,
        /// The offending text (shortened, control characters escaped).
        found: String,
    },
    /// A `#$`, `#@` or `#h` line that appears twice.
    #[error("line {line}: second {what} line (the first is line {first}); a list has exactly one")]
    Duplicate {
        /// 1-based line of the repetition.
        line: usize,
        /// The first occurrence.
        first: usize,
        /// Which line, e.g. "`#$` (last update)".
        what: &'static str,
    },
    /// A `#$`, `#@` or `#h` line that is absent.
    #[error("no {what} line; the file is truncated or is not a leap-seconds.list")]
    Missing {
        /// Which line, e.g. "`#h` (SHA-1 hash)".
        what: &'static str,
    },
    /// No data lines at all.
    #[error(
        "no data lines (`<NTP seconds> <TAI-UTC>`); the file is truncated or is not a \
         leap-seconds.list"
    )]
    NoData,
    /// The `#h` hash does not match the data.
    #[error(
        "hash mismatch: file says {stated}, data hashes to {computed}; the file is corrupt or \
         was edited"
    )]
    HashMismatch {
        /// The hash on the `#h` line.
        stated: HashWords,
        /// The hash of the data actually in the file.
        computed: HashWords,
    },
    /// A data line whose time is not after the previous one's.
    #[error(
        "line {line}: time {ntp} is not after the previous data line's {prev_ntp} (line \
         {prev_line}); times must strictly increase"
    )]
    NotIncreasing {
        /// 1-based line number.
        line: usize,
        /// Its time, NTP seconds.
        ntp: u64,
        /// The previous data line.
        prev_line: usize,
        /// The previous data line's time.
        prev_ntp: u64,
    },
    /// A data line whose TAI-UTC does not differ from the previous by exactly one second.
    #[error(
        "line {line}: TAI-UTC goes from {from} to {to}; a leap second changes it by exactly +1 \
         or -1"
    )]
    BadStep {
        /// 1-based line number.
        line: usize,
        /// The previous data line's TAI-UTC.
        from: i32,
        /// This line's TAI-UTC.
        to: i32,
    },
    /// The expiry is not after the last update.
    #[error(
        "line {line}: expiry {expires} (`#@` {expires_ntp}) is not after the last update \
         {updated} (`#$` {updated_ntp})"
    )]
    ExpiryNotAfterUpdate {
        /// 1-based line of the `#@` line.
        line: usize,
        /// `#@` in NTP seconds.
        expires_ntp: u64,
        /// `#$` in NTP seconds.
        updated_ntp: u64,
        /// `#@` as a UTC date.
        expires: String,
        /// `#$` as a UTC date.
        updated: String,
    },
}

/// A verified leap second list.
///
/// Only [`LeapList::parse`] builds one, so every instance has a matching hash, at least one
/// data line, strictly increasing times, +-1 steps and an expiry after its last update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeapList {
    updated_ntp: u64,
    expires_ntp: u64,
    entries: Vec<LeapEntry>,
}

/// Names of the three special lines, for messages.
const WHAT_UPDATED: &str = "`#$` (last update)";
const WHAT_EXPIRES: &str = "`#@` (expiry)";
const WHAT_HASH: &str = "`#h` (SHA-1 hash)";

/// What a data line must look like, for messages.
const EXPECT_DATA: &str = "`<NTP seconds> <TAI-UTC>`";

impl LeapList {
    /// Parse and verify a `leap-seconds.list` held in memory as bytes.
    ///
    /// The same as [`LeapList::parse`], after checking the bytes are UTF-8.
    pub fn parse_bytes(bytes: &[u8]) -> Result<LeapList, LeapError> {
        match std::str::from_utf8(bytes) {
            Ok(text) => LeapList::parse(text),
            Err(e) => {
                let before = bytes.get(..e.valid_up_to()).unwrap_or_default();
                let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
                Err(LeapError::NotText { line })
            }
        }
    }

    /// Parse and verify a `leap-seconds.list`.
    ///
    /// Accepts LF or CRLF line ends, a missing final newline, blank lines and a leading
    /// byte-order mark. Refuses anything not strictly valid, naming the line and the problem.
    pub fn parse(text: &str) -> Result<LeapList, LeapError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        if text.trim().is_empty() {
            return Err(LeapError::Empty);
        }

        // (line number, token text, value) for the three special lines.
        let mut updated: Option<(usize, &str, u64)> = None;
        let mut expires: Option<(usize, &str, u64)> = None;
        let mut hash: Option<(usize, HashWords)> = None;
        // (line number, NTP token, TAI-UTC token, entry)
        let mut data: Vec<(usize, &str, &str, LeapEntry)> = Vec::new();

        for (index, raw) in text.split('\n').enumerate() {
            let line_no = index + 1;
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            let line = line.trim_start_matches([' ', '\t']);
            if line.trim_end_matches([' ', '\t']).is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix('#') {
                if let Some(value) = special(rest, '$') {
                    let (token, v) = parse_single_ntp(line_no, value, line)?;
                    set_once(&mut updated, (line_no, token, v), WHAT_UPDATED, |u| u.0)?;
                } else if let Some(value) = special(rest, '@') {
                    let (token, v) = parse_single_ntp(line_no, value, line)?;
                    set_once(&mut expires, (line_no, token, v), WHAT_EXPIRES, |u| u.0)?;
                } else if let Some(value) = special(rest, 'h') {
                    let words = parse_hash(line_no, value, line)?;
                    set_once(&mut hash, (line_no, words), WHAT_HASH, |h| h.0)?;
                }
                // Any other `#` line is a comment.
                continue;
            }
            let content = line.split('#').next().unwrap_or_default();
            let mut fields = content.split([' ', '\t']).filter(|f| !f.is_empty());
            let (Some(ntp_text), Some(tai_text), None) =
                (fields.next(), fields.next(), fields.next())
            else {
                return Err(syntax(line_no, EXPECT_DATA, line));
            };
            let (Some(ntp), Some(tai_utc)) = (parse_ntp(ntp_text), parse_tai(tai_text)) else {
                return Err(syntax(line_no, EXPECT_DATA, line));
            };
            data.push((line_no, ntp_text, tai_text, LeapEntry { ntp, tai_utc }));
        }

        let (_, updated_text, updated_ntp) =
            updated.ok_or(LeapError::Missing { what: WHAT_UPDATED })?;
        let (expires_line, expires_text, expires_ntp) =
            expires.ok_or(LeapError::Missing { what: WHAT_EXPIRES })?;
        let (_, stated) = hash.ok_or(LeapError::Missing { what: WHAT_HASH })?;
        if data.is_empty() {
            return Err(LeapError::NoData);
        }

        // The hash first: if the data was damaged, say so rather than report a symptom.
        let mut sha = Sha1::new();
        sha.update(updated_text.as_bytes());
        sha.update(expires_text.as_bytes());
        for (_, ntp_text, tai_text, _) in &data {
            sha.update(ntp_text.as_bytes());
            sha.update(tai_text.as_bytes());
        }
        let computed = digest_words(&sha.finalize());
        if computed != stated {
            return Err(LeapError::HashMismatch { stated, computed });
        }

        for pair in data.windows(2) {
            let [(prev_line, _, _, prev), (line, _, _, cur)] = pair else {
                continue;
            };
            if cur.ntp <= prev.ntp {
                return Err(LeapError::NotIncreasing {
                    line: *line,
                    ntp: cur.ntp,
                    prev_line: *prev_line,
                    prev_ntp: prev.ntp,
                });
            }
            let step = i64::from(cur.tai_utc) - i64::from(prev.tai_utc);
            if step != 1 && step != -1 {
                return Err(LeapError::BadStep {
                    line: *line,
                    from: prev.tai_utc,
                    to: cur.tai_utc,
                });
            }
        }

        if expires_ntp <= updated_ntp {
            return Err(LeapError::ExpiryNotAfterUpdate {
                line: expires_line,
                expires_ntp,
                updated_ntp,
                expires: format_unix_date(ntp_to_unix(expires_ntp)),
                updated: format_unix_date(ntp_to_unix(updated_ntp)),
            });
        }

        Ok(LeapList {
            updated_ntp,
            expires_ntp,
            entries: data.into_iter().map(|(_, _, _, e)| e).collect(),
        })
    }

    /// When the list was last updated (`#$`), in Unix seconds.
    pub fn updated_unix(&self) -> i64 {
        ntp_to_unix(self.updated_ntp)
    }

    /// When the list expires (`#@`), in Unix seconds.
    pub fn expires_unix(&self) -> i64 {
        ntp_to_unix(self.expires_ntp)
    }

    /// Whether the list has expired at `now_unix` (now at or after the expiry).
    ///
    /// An expired list is still right about every event it lists; it may miss one announced
    /// after it was published.
    pub fn is_expired(&self, now_unix: i64) -> bool {
        now_unix >= self.expires_unix()
    }

    /// The data lines, in order: the baseline first, then the events.
    pub fn entries(&self) -> &[LeapEntry] {
        &self.entries
    }

    /// TAI-UTC in effect at `now_unix` (the baseline's value before the first event).
    pub fn tai_utc_at(&self, now_unix: i64) -> i32 {
        let events = self.entries.get(1..).unwrap_or_default();
        let past = events.partition_point(|e| e.unix() <= now_unix);
        // `past` events are at or before now; entry `past` is the last of them (or the
        // baseline when none is).
        self.entries.get(past).map_or(0, |e| e.tai_utc)
    }

    /// What the server reports at `now_unix` (go-webntp's semantics).
    ///
    /// The first event strictly after now, or, when none is scheduled, the last event; an
    /// event at exactly now is already past. `leap` is TAI-UTC before that event and `step`
    /// its change. A list with only the baseline reports its TAI-UTC with `next_unix` and
    /// `step` 0. A binary search; allocates nothing.
    pub fn info_at(&self, now_unix: i64) -> LeapInfo {
        let Some(baseline) = self.entries.first() else {
            return LeapInfo::NONE;
        };
        let events = self.entries.get(1..).unwrap_or_default();
        if events.is_empty() {
            return LeapInfo {
                leap: baseline.tai_utc,
                next_unix: 0,
                step: 0,
            };
        }
        let past = events.partition_point(|e| e.unix() <= now_unix);
        // The reported event is entries[i], i >= 1; entries[i - 1] is the line before it.
        let i = past.min(events.len() - 1) + 1;
        match (self.entries.get(i - 1), self.entries.get(i)) {
            (Some(before), Some(event)) => LeapInfo {
                leap: before.tai_utc,
                next_unix: event.unix(),
                step: event.tai_utc.saturating_sub(before.tai_utc),
            },
            _ => LeapInfo::NONE,
        }
    }
}

/// NTP seconds (era 0 and on, as the list counts) to Unix seconds.
fn ntp_to_unix(ntp: u64) -> i64 {
    // parse_ntp keeps every value within i64, so this cannot saturate for a parsed list.
    i64::try_from(ntp)
        .unwrap_or(i64::MAX)
        .saturating_sub(NTP_UNIX_OFFSET_SECS)
}

/// `2026-06-28T00:00:00Z` for messages; `Unix time <n>` outside years 1970-9999 (which
/// `humantime` cannot format: it returns a formatting error there, and `to_string` panics).
pub(crate) fn format_unix_date(unix: i64) -> String {
    const YEAR_10000: u64 = 253_402_300_800;
    match u64::try_from(unix) {
        Ok(secs) if secs < YEAR_10000 => {
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
            humantime::format_rfc3339_seconds(t).to_string()
        }
        _ => format!("Unix time {unix}"),
    }
}

/// If `rest` (a `#` line without its `#`) is the special line `marker`, its value text.
fn special(rest: &str, marker: char) -> Option<&str> {
    let value = rest.strip_prefix(marker)?;
    // `#$3960835200` is accepted too; `#hello` is a comment, not a hash line.
    match value.chars().next() {
        None | Some(' ' | '\t') => Some(value),
        Some(_) if marker != 'h' => Some(value),
        Some(_) => None,
    }
}

/// Record the first occurrence of a special line; refuse a second one.
fn set_once<T>(
    slot: &mut Option<T>,
    value: T,
    what: &'static str,
    line_of: impl Fn(&T) -> usize,
) -> Result<(), LeapError> {
    if let Some(first) = slot {
        return Err(LeapError::Duplicate {
            line: line_of(&value),
            first: line_of(first),
            what,
        });
    }
    *slot = Some(value);
    Ok(())
}

/// The value of a `#$` or `#@` line: exactly one number of NTP seconds.
fn parse_single_ntp<'a>(
    line_no: usize,
    value: &'a str,
    line: &str,
) -> Result<(&'a str, u64), LeapError> {
    let mut fields = value.split([' ', '\t']).filter(|f| !f.is_empty());
    match (fields.next(), fields.next()) {
        (Some(token), None) => match parse_ntp(token) {
            Some(v) => Ok((token, v)),
            None => Err(syntax(line_no, "one number of NTP seconds", line)),
        },
        _ => Err(syntax(line_no, "one number of NTP seconds", line)),
    }
}

/// The value of a `#h` line: five hexadecimal 32-bit words.
fn parse_hash(line_no: usize, value: &str, line: &str) -> Result<HashWords, LeapError> {
    const EXPECT: &str = "`#h` and five hexadecimal 32-bit words";
    let mut words = [0u32; 5];
    let mut fields = value.split([' ', '\t']).filter(|f| !f.is_empty());
    for word in &mut words {
        let parsed = fields.next().and_then(|f| {
            let hex = f.len() <= 8 && f.bytes().all(|b| b.is_ascii_hexdigit());
            if hex {
                u32::from_str_radix(f, 16).ok()
            } else {
                None
            }
        });
        *word = parsed.ok_or_else(|| syntax(line_no, EXPECT, line))?;
    }
    if fields.next().is_some() {
        return Err(syntax(line_no, EXPECT, line));
    }
    Ok(HashWords(words))
}

/// Unsigned decimal NTP seconds that fit an `i64` (so Unix conversion cannot overflow).
fn parse_ntp(token: &str) -> Option<u64> {
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    token
        .parse::<i64>()
        .ok()
        .and_then(|v| u64::try_from(v).ok())
}

/// Decimal TAI-UTC seconds, optionally negative.
fn parse_tai(token: &str) -> Option<i32> {
    let digits = token.strip_prefix('-').unwrap_or(token);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    token.parse().ok()
}

/// The SHA-1 digest as five big-endian 32-bit words.
fn digest_words(digest: &[u8]) -> HashWords {
    let mut words = [0u32; 5];
    for (word, chunk) in words.iter_mut().zip(digest.chunks_exact(4)) {
        *word = chunk.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b));
    }
    HashWords(words)
}

fn syntax(line: usize, expected: &'static str, found: &str) -> LeapError {
    LeapError::Syntax {
        line,
        expected,
        found: quote(found),
    }
}

/// A short, printable excerpt of untrusted text for an error message.
pub(super) fn quote(text: &str) -> String {
    let text = text.trim_end_matches([' ', '\t']);
    let mut out: String = text
        .chars()
        .take(MAX_QUOTE_CHARS)
        .flat_map(char::escape_debug)
        .collect();
    if text.chars().nth(MAX_QUOTE_CHARS).is_some() {
        out.push_str("...");
    }
    out
}

/// Helpers shared by this module's tests and the store's.
#[cfg(test)]
pub(crate) mod test_util {
    use super::*;

    /// The Debian/tzdata list shipped as a fixture (`tests/data/leap-seconds.list`).
    pub const DEBIAN_LIST: &str = include_str!("../../tests/data/leap-seconds.list");

    /// A well-formed list with the correct `#h` hash for the given data.
    pub fn make_list(updated_ntp: u64, expires_ntp: u64, data: &[(u64, i32)]) -> String {
        let lines: Vec<String> = data.iter().map(|(n, t)| format!("{n}\t{t}")).collect();
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        make_list_raw(&updated_ntp.to_string(), &expires_ntp.to_string(), &refs)
    }

    /// A list from raw value texts (data lines as `<ntp> <tai>`), with the correct hash.
    pub fn make_list_raw(updated: &str, expires: &str, data: &[&str]) -> String {
        let mut sha = Sha1::new();
        sha.update(updated.as_bytes());
        sha.update(expires.as_bytes());
        for line in data {
            for field in line.split_whitespace().take(2) {
                sha.update(field.as_bytes());
            }
        }
        let hash = digest_words(&sha.finalize());
        let mut out = format!("# synthetic test list\n#$\t{updated}\n#@\t{expires}\n#\n");
        for line in data {
            out.push_str(line);
            out.push_str("\t# event\n");
        }
        out.push_str(&format!("#h\t{hash}\n"));
        out
    }

    /// The Unix time of a UTC midnight, from the NTP seconds used in lists.
    pub const fn ntp(unix: i64) -> u64 {
        (unix + NTP_UNIX_OFFSET_SECS) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::test_util::*;
    use super::*;

    const JUL_2015: i64 = 1_435_708_800;
    const JAN_2017: i64 = 1_483_228_800;
    /// 2026-11-21 00:00:00 UTC.
    const TODAY: i64 = 1_795_305_600;

    fn debian() -> LeapList {
        LeapList::parse(DEBIAN_LIST).unwrap()
    }

    #[test]
    fn parses_and_verifies_the_debian_list() {
        let list = debian();
        assert_eq!(list.updated_unix(), 3_960_835_200 - NTP_UNIX_OFFSET_SECS);
        assert_eq!(list.expires_unix(), 3_991_593_600 - NTP_UNIX_OFFSET_SECS);
        assert_eq!(
            format_unix_date(list.expires_unix()),
            "2026-06-28T00:00:00Z"
        );
        assert_eq!(list.entries().len(), 28);
        assert_eq!(
            list.entries()[0],
            LeapEntry {
                ntp: 2_272_060_800,
                tai_utc: 10
            }
        );
        let last = list.entries().last().unwrap();
        assert_eq!(
            (last.ntp, last.tai_utc, last.unix()),
            (3_692_217_600, 37, JAN_2017)
        );
        assert!(list.is_expired(TODAY));
        assert!(!list.is_expired(list.expires_unix() - 1));
        assert!(list.is_expired(list.expires_unix()));
    }

    #[test]
    fn go_webntp_semantics_around_2015_and_2017() {
        let list = debian();
        let at = |t| list.info_at(t);
        let info = |leap, next_unix, step| LeapInfo {
            leap,
            next_unix,
            step,
        };
        assert_eq!(at(JUL_2015 - 1), info(35, JUL_2015, 1));
        assert_eq!(at(JUL_2015), info(36, JAN_2017, 1));
        assert_eq!(at(JAN_2017 - 1), info(36, JAN_2017, 1));
        assert_eq!(at(JAN_2017), info(36, JAN_2017, 1));
        assert_eq!(at(TODAY), info(36, JAN_2017, 1));
        assert_eq!(at(i64::MAX), info(36, JAN_2017, 1));
        // Before the first event (and before 1972): the first event, from the baseline.
        assert_eq!(at(0), info(10, 78_796_800, 1));
        assert_eq!(at(i64::MIN), info(10, 78_796_800, 1));

        assert_eq!(list.tai_utc_at(JUL_2015 - 1), 35);
        assert_eq!(list.tai_utc_at(JUL_2015), 36);
        assert_eq!(list.tai_utc_at(TODAY), 37);
        assert_eq!(list.tai_utc_at(0), 10);
    }

    #[test]
    fn negative_step() {
        let text = make_list(
            ntp(1_700_000_000),
            ntp(1_800_000_000),
            &[
                (ntp(63_072_000), 10),
                (ntp(1_000_000_000), 11),
                (ntp(1_900_000_000), 10),
            ],
        );
        let list = LeapList::parse(&text).unwrap();
        let info = |leap, next_unix, step| LeapInfo {
            leap,
            next_unix,
            step,
        };
        assert_eq!(list.info_at(1_000_000_000), info(11, 1_900_000_000, -1));
        assert_eq!(list.info_at(1_899_999_999), info(11, 1_900_000_000, -1));
        assert_eq!(list.info_at(1_900_000_000), info(11, 1_900_000_000, -1));
        assert_eq!(list.tai_utc_at(1_900_000_000), 10);
    }

    #[test]
    fn baseline_only() {
        let text = make_list(
            ntp(1_700_000_000),
            ntp(1_800_000_000),
            &[(ntp(63_072_000), 10)],
        );
        let list = LeapList::parse(&text).unwrap();
        let expect = LeapInfo {
            leap: 10,
            next_unix: 0,
            step: 0,
        };
        assert_eq!(list.info_at(0), expect);
        assert_eq!(list.info_at(TODAY), expect);
        assert_eq!(LeapInfo::NONE, LeapInfo::default());
    }

    #[test]
    fn accepts_crlf_missing_final_newline_blank_lines_and_bom() {
        let crlf = DEBIAN_LIST.replace('\n', "\r\n");
        assert_eq!(LeapList::parse(&crlf).unwrap(), debian());
        let trimmed = DEBIAN_LIST.trim_end();
        assert_eq!(LeapList::parse(trimmed).unwrap(), debian());
        let blanks = DEBIAN_LIST.replace("\n#\n", "\n\n  \t\n#\n");
        assert_eq!(LeapList::parse(&blanks).unwrap(), debian());
        let bom = format!("\u{feff}{DEBIAN_LIST}");
        assert_eq!(LeapList::parse(&bom).unwrap(), debian());
    }

    #[test]
    fn hash_words_without_leading_zeros() {
        // Find data whose hash has a word below 0x10000000, then write it unpadded.
        for expires in 0..200u64 {
            let text = make_list(100, 1000 + expires, &[(50, 10)]);
            let hash_line = text.lines().find(|l| l.starts_with("#h")).unwrap();
            let words: Vec<&str> = hash_line[2..].split_whitespace().collect();
            if words.iter().any(|w| w.starts_with('0')) {
                let unpadded: Vec<String> = words
                    .iter()
                    .map(|w| format!("{:x}", u32::from_str_radix(w, 16).unwrap()))
                    .collect();
                let text = text.replace(hash_line, &format!("#h {}", unpadded.join(" ")));
                assert!(LeapList::parse(&text).is_ok(), "{text}");
                return;
            }
        }
        panic!("no hash with a leading zero found");
    }

    fn err(text: &str) -> String {
        LeapList::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn rejects_html_naming_the_line() {
        let html = "\n<!DOCTYPE html>\n<html><body>Not found</body></html>\n";
        assert_eq!(
            err(html),
            "line 2: expected `<NTP seconds> <TAI-UTC>`, found `<!DOCTYPE html>`"
        );
        let mut with_html = DEBIAN_LIST.lines().take(13).collect::<Vec<_>>().join("\n");
        with_html.push_str("\n<html>\n");
        assert_eq!(
            err(&with_html),
            "line 14: expected `<NTP seconds> <TAI-UTC>`, found `<html>`"
        );
    }

    #[test]
    fn rejects_empty_and_truncated() {
        assert_eq!(LeapList::parse(""), Err(LeapError::Empty));
        assert_eq!(LeapList::parse(" \r\n\n"), Err(LeapError::Empty));
        // Cut before the `#h` line.
        let cut = &DEBIAN_LIST[..DEBIAN_LIST.find("#h").unwrap()];
        assert_eq!(
            err(cut),
            "no `#h` (SHA-1 hash) line; the file is truncated or is not a leap-seconds.list"
        );
        // Cut in the middle of the last data line, hash line lost.
        let mid = &DEBIAN_LIST[..DEBIAN_LIST.find("3692217600").unwrap() + 5];
        assert_eq!(
            err(mid),
            "line 113: expected `<NTP seconds> <TAI-UTC>`, found `36922`"
        );
        let only_comments = "# nothing\n#\n";
        assert!(matches!(
            LeapList::parse(only_comments),
            Err(LeapError::Missing { .. })
        ));
    }

    #[test]
    fn rejects_non_utf8() {
        assert_eq!(
            LeapList::parse_bytes(b"#$ 1\n#@ 2\n\xff\xfe\n"),
            Err(LeapError::NotText { line: 3 })
        );
        assert_eq!(LeapList::parse_bytes(DEBIAN_LIST.as_bytes()), Ok(debian()));
    }

    #[test]
    fn hash_mismatch_message() {
        let edited = DEBIAN_LIST.replace("3692217600      37", "3692217601      37");
        let e = LeapList::parse(&edited).unwrap_err();
        let LeapError::HashMismatch { stated, .. } = e else {
            panic!("{e}")
        };
        assert_eq!(
            stated.to_string(),
            "49db2447 571e5e1b 2f002a53 9c8da8e4 39b8e49e"
        );
        assert!(e.to_string().starts_with(
            "hash mismatch: file says 49db2447 571e5e1b 2f002a53 9c8da8e4 39b8e49e, data hashes to "
        ));
        assert!(e
            .to_string()
            .ends_with("; the file is corrupt or was edited"));
        // Whitespace and comments are not hashed.
        let reformatted = DEBIAN_LIST
            .replace(
                "3692217600      37      # 1 Jan 2017",
                "  3692217600\t37\t#x",
            )
            .replace("#$\t", "#$ ");
        assert_eq!(LeapList::parse(&reformatted).unwrap(), debian());
    }

    /// Valid structure and hash, one thing wrong at a time.
    #[test]
    fn one_fault_at_a_time() {
        let base = [(ntp(63_072_000), 10), (ntp(78_796_800), 11)];
        let ok = make_list(ntp(1_700_000_000), ntp(1_800_000_000), &base);
        assert!(LeapList::parse(&ok).is_ok());

        let same_time = make_list(
            ntp(1_700_000_000),
            ntp(1_800_000_000),
            &[base[0], (base[0].0, 11)],
        );
        assert!(matches!(
            LeapList::parse(&same_time),
            Err(LeapError::NotIncreasing {
                line: 6,
                prev_line: 5,
                ..
            })
        ));
        let backwards = make_list(
            ntp(1_700_000_000),
            ntp(1_800_000_000),
            &[base[1], (base[0].0, 12)],
        );
        assert!(matches!(
            LeapList::parse(&backwards),
            Err(LeapError::NotIncreasing { .. })
        ));
        let two = make_list(
            ntp(1_700_000_000),
            ntp(1_800_000_000),
            &[base[0], (base[1].0, 12)],
        );
        assert_eq!(
            err(&two),
            "line 6: TAI-UTC goes from 10 to 12; a leap second changes it by exactly +1 or -1"
        );
        let zero = make_list(
            ntp(1_700_000_000),
            ntp(1_800_000_000),
            &[base[0], (base[1].0, 10)],
        );
        assert!(matches!(
            LeapList::parse(&zero),
            Err(LeapError::BadStep { .. })
        ));
        let expiry = make_list(ntp(1_700_000_000), ntp(1_700_000_000), &base);
        assert!(matches!(
            LeapList::parse(&expiry),
            Err(LeapError::ExpiryNotAfterUpdate { line: 3, .. })
        ));
        let no_data = make_list(ntp(1_700_000_000), ntp(1_800_000_000), &[]);
        assert_eq!(LeapList::parse(&no_data), Err(LeapError::NoData));

        let dup_updated = ok.replace("#\n", "#$\t3908988800\n");
        assert_eq!(
            err(&dup_updated),
            "line 4: second `#$` (last update) line (the first is line 2); a list has exactly one"
        );
        let dup_expires = format!("{ok}#@ 1\n");
        assert!(matches!(
            LeapList::parse(&dup_expires),
            Err(LeapError::Duplicate {
                what: WHAT_EXPIRES,
                ..
            })
        ));
        let dup_hash = format!("{ok}{}\n", ok.lines().last().unwrap());
        assert!(matches!(
            LeapList::parse(&dup_hash),
            Err(LeapError::Duplicate {
                what: WHAT_HASH,
                ..
            })
        ));
        let no_updated: String = ok
            .lines()
            .filter(|l| !l.starts_with("#$"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(
            LeapList::parse(&no_updated),
            Err(LeapError::Missing { what: WHAT_UPDATED })
        );
        let no_expires: String = ok
            .lines()
            .filter(|l| !l.starts_with("#@"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(
            LeapList::parse(&no_expires),
            Err(LeapError::Missing { what: WHAT_EXPIRES })
        );
    }

    #[test]
    fn rejects_malformed_lines() {
        let cases = [
            make_list_raw("+3908988800", "4000000000", &["2272060800 10"]),
            make_list_raw("3908988800 1", "4000000000", &["2272060800 10"]),
            make_list_raw("3908988800", "x", &["2272060800 10"]),
            make_list_raw("3908988800", "4000000000", &["2272060800"]),
            make_list_raw("3908988800", "4000000000", &["2272060800 10 11"]),
            make_list_raw("3908988800", "4000000000", &["2272060800 +10"]),
            make_list_raw("3908988800", "4000000000", &["2272060800 1e1"]),
            make_list_raw("3908988800", "4000000000", &["-2272060800 10"]),
            make_list_raw("3908988800", "4000000000", &["99999999999999999999 10"]),
            make_list_raw("3908988800", "4000000000", &["2272060800 99999999999"]),
        ];
        for text in &cases {
            assert!(
                matches!(LeapList::parse(text), Err(LeapError::Syntax { .. })),
                "{text}: {:?}",
                LeapList::parse(text)
            );
        }
        let bad_hash = [
            "#h 1 2 3 4",
            "#h 1 2 3 4 5 6",
            "#h 1 2 3 4 123456789",
            "#h 1 2 3 4 g",
            "#h",
        ];
        for h in bad_hash {
            let text = DEBIAN_LIST.replace("#h\t49db2447 571e5e1b 2f002a53 9c8da8e4 39b8e49e", h);
            assert!(
                matches!(LeapList::parse(&text), Err(LeapError::Syntax { .. })),
                "{h}"
            );
        }
        // `#hello` is a comment, not a second hash line.
        let comment = format!("#hello\n{DEBIAN_LIST}");
        assert!(LeapList::parse(&comment).is_ok());
    }

    #[test]
    fn quotes_are_short_and_escaped() {
        let long = format!("#$ 1\n\x1b[31m{}\n", "x".repeat(500));
        let msg = err(&long);
        assert!(msg.contains("\\u{1b}[31m"), "{msg}");
        assert!(msg.ends_with("...`"), "{msg}");
        assert!(msg.len() < 200, "{msg}");
    }

    #[test]
    fn dates_outside_the_calendar_do_not_panic() {
        assert_eq!(format_unix_date(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_unix_date(253_402_300_799), "9999-12-31T23:59:59Z");
        assert_eq!(format_unix_date(253_402_300_800), "Unix time 253402300800");
        assert_eq!(format_unix_date(-1), "Unix time -1");
        assert_eq!(
            format_unix_date(i64::MAX),
            format!("Unix time {}", i64::MAX)
        );
        // A list reaching far into the future still parses, and its messages format.
        let far = make_list(u64::MAX / 4, u64::MAX / 2, &[(50, 10)]);
        let list = LeapList::parse(&far).unwrap();
        assert!(!list.is_expired(i64::MAX / 4));
        let backwards = make_list(u64::MAX / 2, 1, &[(50, 10)]);
        assert!(err(&backwards).contains("Unix time"), "{}", err(&backwards));
    }

    #[test]
    fn ntp_values_beyond_i64_are_refused() {
        assert_eq!(parse_ntp("9223372036854775807"), Some(i64::MAX as u64));
        assert_eq!(parse_ntp("9223372036854775808"), None);
        assert_eq!(ntp_to_unix(0), -NTP_UNIX_OFFSET_SECS);
    }
}
