//! WebNTP timestamps as text: POSIX seconds in decimal, read into and written from the
//! integer-nanosecond [`Timestamp`] of [`crate::sync::time`].
//!
//! On the wire a timestamp is a bare number, `1489217288.328757`: seconds, a dot and exactly
//! six fraction digits (NICT's endpoints use three). Formatting rounds half away from zero
//! and carries into the seconds (`1489217288.9999996` -> `1489217289.000000`), which go-webntp
//! gets wrong. Parsing is strict and exact: it reads decimal text straight into nanoseconds
//! with integer arithmetic, so `1489217288.328757` is exactly 1489217288328757000 ns, never a
//! float approximation.

use std::fmt;

use crate::sync::Timestamp;

const NANOS_PER_SEC: i128 = 1_000_000_000;

/// Largest magnitude accepted from a peer: 10^18 seconds, far beyond any clock but small
/// enough that every intermediate value fits an `i128`.
const MAX_ABS_SECONDS: i128 = 1_000_000_000_000_000_000;

/// Longest timestamp text accepted from a peer, in bytes.
pub const MAX_TIMESTAMP_TEXT: usize = 64;

/// Largest exponent magnitude kept while parsing: beyond it, every mantissa of at most 64
/// characters is out of range (or rounds to zero), and the scale arithmetic stays small.
const MAX_EXPONENT: i64 = 1_000_000;

/// Significant digits kept while parsing; further digits are below a nanosecond by then
/// (or the number is out of range anyway).
const MAX_SIGNIFICANT_DIGITS: usize = 36;

/// Why a timestamp text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    /// Nothing to parse.
    #[error("empty timestamp")]
    Empty,
    /// Longer than [`MAX_TIMESTAMP_TEXT`].
    #[error("timestamp longer than {MAX_TIMESTAMP_TEXT} characters")]
    TooLong,
    /// Not a decimal number (`NaN`, `inf`, `1.2.3`, hex, garbage...).
    #[error("not a decimal number of seconds (expected e.g. 1489217288.328757)")]
    Syntax,
    /// A number, but beyond +-10^18 seconds.
    #[error("timestamp out of range (more than 10^18 seconds from 1970)")]
    OutOfRange,
}

/// The text forms of a [`Timestamp`]: what a peer sends and what webntpd writes.
impl Timestamp {
    /// Parse a WebNTP timestamp as clients send it.
    ///
    /// Accepted: an optional sign, digits, an optional `.` with any number of fraction digits
    /// (beyond nine they are rounded to the nanosecond), and an optional exponent
    /// (`1.5e9`, `1489217288328757E-6`). Refused: empty text, `NaN`, `inf`, `1.2.3`, hex,
    /// white space, anything longer than [`MAX_TIMESTAMP_TEXT`] or beyond +-10^18 s.
    pub fn parse(text: &str) -> Result<Self, TimestampError> {
        parse_decimal(text.as_bytes()).map(Timestamp::from_nanos)
    }

    /// Write the six-decimal wire form (`1489217288.328757`) to `out`.
    pub fn write_micros(self, out: &mut Vec<u8>) {
        write_fixed::<6>(self.as_nanos(), out);
    }

    /// The six-decimal wire form as a `String`.
    pub fn to_micros_string(self) -> String {
        fixed_string::<6>(self.as_nanos())
    }

    /// Nine decimals (`1489217288.328757000`): every nanosecond, for exact reports.
    pub fn to_nanos_string(self) -> String {
        fixed_string::<9>(self.as_nanos())
    }

    /// The three-decimal form NICT's endpoints use (`1489217288.329`) as a `String`.
    pub fn to_millis_string(self) -> String {
        fixed_string::<3>(self.as_nanos())
    }

    /// Write the three-decimal form NICT's endpoints use (`1489217288.329`) to `out`.
    pub fn write_millis(self, out: &mut Vec<u8>) {
        write_fixed::<3>(self.as_nanos(), out);
    }
}

impl fmt::Display for Timestamp {
    /// The six-decimal wire form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_micros_string())
    }
}

fn fixed_string<const DECIMALS: u32>(ns: i128) -> String {
    let mut v = Vec::with_capacity(24);
    write_fixed::<DECIMALS>(ns, &mut v);
    // write_fixed only ever writes ASCII digits, '-' and '.'.
    String::from_utf8_lossy(&v).into_owned()
}

/// Write `ns` as seconds with exactly `DECIMALS` fraction digits, rounded half away from zero,
/// carrying into the seconds.
///
/// This runs several times for every reply: digits are produced two at a time from a table
/// into a stack buffer, back to front, and appended once.
fn write_fixed<const DECIMALS: u32>(ns: i128, out: &mut Vec<u8>) {
    const { assert!(DECIMALS <= 9) };
    let unit = 10u64.pow(9 - DECIMALS);
    let per_sec = 10u64.pow(DECIMALS);
    let negative = ns < 0;
    let abs = ns.unsigned_abs();
    // Split into whole seconds and `DECIMALS` fraction digits, rounded half away from zero.
    // Every clock reading until the year 2554 fits the u64 path; 128-bit division is a
    // library call several times slower.
    let (secs, frac): (u128, u64) = match u64::try_from(abs) {
        Ok(a) => {
            let (q, r) = (a / unit, a % unit);
            let units = q + u64::from(2 * r >= unit);
            (u128::from(units / per_sec), units % per_sec)
        }
        Err(_) => {
            let (unit, per_sec) = (u128::from(unit), u128::from(per_sec));
            let units = abs / unit + u128::from(2 * (abs % unit) >= unit);
            // The remainder is below 10^9, so it fits a u64.
            (units / per_sec, (units % per_sec) as u64)
        }
    };
    // Sign, at most 39 digits of seconds, the point, at most 9 fraction digits.
    let mut text = [0u8; 56];
    let mut pos = text.len();
    let mut f = frac;
    let mut left = DECIMALS;
    while left >= 2 {
        pos -= 2;
        text[pos..pos + 2].copy_from_slice(pair(f % 100));
        f /= 100;
        left -= 2;
    }
    if left == 1 {
        pos -= 1;
        text[pos] = b'0' + f as u8;
    }
    pos -= 1;
    text[pos] = b'.';
    pos = write_digits(secs, &mut text[..pos]);
    if negative && (secs != 0 || frac != 0) {
        pos -= 1;
        text[pos] = b'-';
    }
    out.extend_from_slice(&text[pos..]);
}

/// "00" to "99".
const PAIRS: &[u8; 200] = b"\
    0001020304050607080910111213141516171819\
    2021222324252627282930313233343536373839\
    4041424344454647484950515253545556575859\
    6061626364656667686970717273747576777879\
    8081828384858687888990919293949596979899";

/// The two digits of `v` (< 100).
fn pair(v: u64) -> &'static [u8] {
    let i = (v as usize % 100) * 2;
    &PAIRS[i..i + 2]
}

/// Write `v` in decimal at the end of `buf`; returns where the digits start. `buf` must
/// have room for 39 digits.
fn write_digits(v: u128, buf: &mut [u8]) -> usize {
    let mut pos = buf.len();
    let Ok(mut v) = u64::try_from(v) else {
        let mut v = v;
        while v > 0 {
            pos -= 1;
            buf[pos] = b'0' + (v % 10) as u8;
            v /= 10;
        }
        return pos;
    };
    while v >= 100 {
        pos -= 2;
        buf[pos..pos + 2].copy_from_slice(pair(v % 100));
        v /= 100;
    }
    if v >= 10 {
        pos -= 2;
        buf[pos..pos + 2].copy_from_slice(pair(v));
    } else {
        pos -= 1;
        buf[pos] = b'0' + v as u8;
    }
    pos
}

/// Write `v` in decimal.
pub(crate) fn write_u64(v: u64, out: &mut Vec<u8>) {
    if v < 10 {
        out.push(b'0' + v as u8);
        return;
    }
    let mut buf = [0u8; 20];
    let pos = write_digits(u128::from(v), &mut buf);
    out.extend_from_slice(&buf[pos..]);
}

/// Whether `text` is exactly what [`Timestamp::write_micros`] writes for the value it
/// parses to: no sign, no leading zero, up to 18 integer digits, a point and six decimals.
pub fn is_wire_form(text: &str) -> bool {
    let Some((int, frac)) = text.split_once('.') else {
        return false;
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    !int.is_empty()
        && int.len() <= 18
        && (int == "0" || !int.starts_with('0'))
        && frac.len() == 6
        && digits(int)
        && digits(frac)
}

/// Exact decimal -> nanoseconds. See [`Timestamp::parse`] for the grammar.
fn parse_decimal(s: &[u8]) -> Result<i128, TimestampError> {
    match parse_plain(s) {
        Some(ns) => Ok(ns),
        None => parse_general(s),
    }
}

/// The form nearly every client sends, `SECONDS[.FRACTION]` with at most 18 integer and 9
/// fraction digits, in 64-bit arithmetic; `None` for anything else (the general parser then
/// decides, with the same result for every input both accept: see the tests).
pub(crate) fn parse_plain(s: &[u8]) -> Option<i128> {
    let (int, frac) = match s.iter().position(|&b| b == b'.') {
        Some(p) => (&s[..p], &s[p + 1..]),
        None => (s, &[][..]),
    };
    if int.len() > 18 || frac.len() > 9 || (int.is_empty() && frac.is_empty()) {
        return None;
    }
    let digits = |d: &[u8]| -> Option<u64> {
        d.iter().try_fold(0u64, |acc, &b| {
            b.is_ascii_digit().then(|| acc * 10 + u64::from(b - b'0'))
        })
    };
    let secs = digits(int)?;
    let frac_ns = digits(frac)? * 10u64.pow(9 - frac.len() as u32);
    Some(i128::from(secs) * NANOS_PER_SEC + i128::from(frac_ns))
}

/// Every accepted form: sign, digits, fraction, exponent, rounding to the nanosecond.
pub(crate) fn parse_general(s: &[u8]) -> Result<i128, TimestampError> {
    if s.is_empty() {
        return Err(TimestampError::Empty);
    }
    if s.len() > MAX_TIMESTAMP_TEXT {
        return Err(TimestampError::TooLong);
    }
    let mut i = 0;
    let negative = match s[0] {
        b'-' => {
            i = 1;
            true
        }
        b'+' => {
            i = 1;
            false
        }
        _ => false,
    };

    // Mantissa: digits [. digits] | . digits
    let int_start = i;
    while i < s.len() && s[i].is_ascii_digit() {
        i += 1;
    }
    let int_digits = &s[int_start..i];
    let mut frac_digits: &[u8] = &[];
    if i < s.len() && s[i] == b'.' {
        i += 1;
        let frac_start = i;
        while i < s.len() && s[i].is_ascii_digit() {
            i += 1;
        }
        frac_digits = &s[frac_start..i];
    }
    if int_digits.is_empty() && frac_digits.is_empty() {
        return Err(TimestampError::Syntax);
    }

    // Exponent: [eE] [sign] digits
    let mut exponent: i64 = 0;
    if i < s.len() && (s[i] == b'e' || s[i] == b'E') {
        i += 1;
        let mut exp_negative = false;
        if i < s.len() && (s[i] == b'-' || s[i] == b'+') {
            exp_negative = s[i] == b'-';
            i += 1;
        }
        let exp_start = i;
        while i < s.len() && s[i].is_ascii_digit() {
            // Saturated: 64 characters hold an exponent far beyond an i64 (it used to wrap,
            // so `1e18446744073709551625` read as 1e9). Past MAX_EXPONENT every value is out
            // of range or rounds to zero anyway.
            exponent = (exponent * 10 + i64::from(s[i] - b'0')).min(MAX_EXPONENT);
            i += 1;
        }
        if i == exp_start {
            return Err(TimestampError::Syntax);
        }
        if exp_negative {
            exponent = -exponent;
        }
    }
    if i != s.len() {
        return Err(TimestampError::Syntax);
    }

    // value = 0.DDDD x 10^point; collect significant digits (leading zeros dropped).
    let mut mantissa: i128 = 0;
    let mut kept = 0usize;
    let mut point = int_digits.len() as i64 + exponent;
    let mut seen_nonzero = false;
    for &d in int_digits.iter().chain(frac_digits.iter()) {
        let d = d - b'0';
        if !seen_nonzero {
            if d == 0 {
                point -= 1;
                continue;
            }
            seen_nonzero = true;
        }
        // Digits past the 36th are below a nanosecond, or the number is out of range anyway;
        // `point` still counts them, so the scale below stays right.
        if kept < MAX_SIGNIFICANT_DIGITS {
            mantissa = mantissa * 10 + i128::from(d);
            kept += 1;
        }
    }
    if mantissa == 0 {
        return Ok(0);
    }
    // ns = mantissa x 10^(point + 9 - kept)
    let scale = point + 9 - kept as i64;
    let magnitude = if scale >= 0 {
        // Integer part alone is beyond range long before 10^38.
        if scale > 30 {
            return Err(TimestampError::OutOfRange);
        }
        mantissa
            .checked_mul(10i128.pow(scale as u32))
            .ok_or(TimestampError::OutOfRange)?
    } else {
        let drop = (-scale) as u32;
        if drop >= 38 {
            // 10^38 exceeds every mantissa we keep (< 10^36): rounds to 0.
            0
        } else {
            let div = 10i128.pow(drop);
            let q = mantissa / div;
            let r = mantissa % div;
            if r * 2 >= div {
                q + 1
            } else {
                q
            }
        }
    };
    if magnitude > MAX_ABS_SECONDS * NANOS_PER_SEC {
        return Err(TimestampError::OutOfRange);
    }
    Ok(if negative { -magnitude } else { magnitude })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt6(ns: i128) -> String {
        Timestamp::from_nanos(ns).to_micros_string()
    }

    fn fmt3(ns: i128) -> String {
        Timestamp::from_nanos(ns).to_millis_string()
    }

    fn p(s: &str) -> Result<i128, TimestampError> {
        Timestamp::parse(s).map(Timestamp::as_nanos)
    }

    #[test]
    fn plain_parser_agrees_with_the_general_one() {
        // Every string over this alphabet up to 4 characters, plus long and edge cases.
        let alphabet = [b'0', b'1', b'9', b'.', b'e', b'-'];
        let mut cases: Vec<Vec<u8>> = vec![vec![]];
        let mut frontier = cases.clone();
        for _ in 0..4 {
            let mut next = Vec::new();
            for c in &frontier {
                for &a in &alphabet {
                    let mut c = c.clone();
                    c.push(a);
                    next.push(c);
                }
            }
            cases.extend(next.iter().cloned());
            frontier = next;
        }
        for s in [
            "1489217288.328757",
            "999999999999999999.999999999",
            "000000000000000001.000000001",
            "1000000000000000000",
            "123456789012345678.1234567891",
            ".000000001",
            "5.",
            "1489217288",
        ] {
            cases.push(s.as_bytes().to_vec());
        }
        let mut plain = 0;
        for c in &cases {
            if let Some(ns) = parse_plain(c) {
                plain += 1;
                assert_eq!(Ok(ns), parse_general(c), "{:?}", String::from_utf8_lossy(c));
            }
        }
        assert!(plain > 100, "the plain parser took only {plain} cases");
    }

    /// Rounding done the obvious way, in 128-bit arithmetic and `format!`.
    fn reference(ns: i128, decimals: u32) -> String {
        let unit = 10i128.pow(9 - decimals);
        let per_sec = 10i128.pow(decimals);
        let a = ns.abs();
        let units = a / unit + i128::from(2 * (a % unit) >= unit);
        let text = format!(
            "{}.{:0w$}",
            units / per_sec,
            units % per_sec,
            w = decimals as usize
        );
        if ns < 0 && units != 0 {
            format!("-{text}")
        } else {
            text
        }
    }

    #[test]
    fn formatting_matches_the_obvious_rounding() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for i in 0..20_000u32 {
            // xorshift, spread over magnitudes from nanoseconds to centuries and beyond u64.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let magnitude = 10i128.pow(i % 37);
            let wide = i128::from(x) * i128::from(x >> 2);
            let ns = (wide % magnitude) * if i % 3 == 0 { -1 } else { 1 };
            assert_eq!(fmt6(ns), reference(ns, 6), "{ns}");
            assert_eq!(fmt3(ns), reference(ns, 3), "{ns}");
            assert_eq!(
                Timestamp::from_nanos(ns).to_nanos_string(),
                reference(ns, 9),
                "{ns}"
            );
        }
    }

    #[test]
    fn the_wire_form_is_exactly_what_formatting_writes() {
        for t in [
            "1489217288.328757",
            "0.000000",
            "0.000001",
            "999999999999999999.999999",
            "5.100000",
        ] {
            assert!(is_wire_form(t), "{t}");
            assert_eq!(Timestamp::parse(t).unwrap().to_micros_string(), t);
        }
        for t in [
            "01489217288.328757",
            "00.000000",
            "1489217288.32875",
            "1489217288.3287570",
            "-1.000000",
            "+1.000000",
            ".000000",
            "1e9.000000",
            "1489217288",
            "1000000000000000000.000000",
            "1.5.000000",
        ] {
            assert!(!is_wire_form(t), "{t}");
        }
    }

    #[test]
    fn formats_six_digits_with_rounding_and_carry() {
        let table: &[(i128, &str)] = &[
            (0, "0.000000"),
            (1_489_217_288_328_757_000, "1489217288.328757"),
            (1_489_217_288_328_757_499, "1489217288.328757"),
            (1_489_217_288_328_757_500, "1489217288.328758"),
            (1_489_217_288_999_999_499, "1489217288.999999"),
            (1_489_217_288_999_999_500, "1489217289.000000"),
            (1_489_217_288_999_999_600, "1489217289.000000"),
            (1_489_217_289_000_000_000, "1489217289.000000"),
            (999_999_999_500, "1000.000000"),
            (500, "0.000001"),
            (499, "0.000000"),
            (-499, "0.000000"),
            (-500, "-0.000001"),
            (-1_500_000_000, "-1.500000"),
            (-999_999_500, "-1.000000"),
            (1_483_228_800_000_000_000, "1483228800.000000"),
            // Beyond u64 nanoseconds (the slow path), with and without carry.
            (
                1_000_000_000_000_000_000_000_000_000,
                "1000000000000000000.000000",
            ),
            (
                99_999_999_999_999_999_999_999_500,
                "100000000000000000.000000",
            ),
            (
                -99_999_999_999_999_999_999_999_500,
                "-100000000000000000.000000",
            ),
            (18_446_744_073_709_551_616, "18446744073.709552"),
        ];
        for &(ns, want) in table {
            assert_eq!(fmt6(ns), want, "formatting {ns} ns");
        }
    }

    #[test]
    fn formats_three_digits_for_nict() {
        assert_eq!(fmt3(1_232_963_971_248_400_000), "1232963971.248");
        assert_eq!(fmt3(1_232_963_971_248_500_000), "1232963971.249");
        assert_eq!(fmt3(1_232_963_971_999_500_000), "1232963972.000");
        assert_eq!(fmt3(-1_000_500_000), "-1.001");
    }

    #[test]
    fn parses_the_forms_clients_send() {
        assert_eq!(p("1489217288.328757"), Ok(1_489_217_288_328_757_000));
        assert_eq!(p("1489217288"), Ok(1_489_217_288_000_000_000));
        assert_eq!(p("1489217288."), Ok(1_489_217_288_000_000_000));
        assert_eq!(p(".5"), Ok(500_000_000));
        assert_eq!(p("+1.25"), Ok(1_250_000_000));
        assert_eq!(p("-1.25"), Ok(-1_250_000_000));
        assert_eq!(p("1232963971.248"), Ok(1_232_963_971_248_000_000));
        assert_eq!(p("1489217288.123456789"), Ok(1_489_217_288_123_456_789));
        assert_eq!(p("0"), Ok(0));
        assert_eq!(p("-0.0"), Ok(0));
        assert_eq!(p("000001.000"), Ok(1_000_000_000));
    }

    #[test]
    fn more_than_nine_fraction_digits_are_rounded() {
        assert_eq!(p("1.0000000004"), Ok(1_000_000_000));
        assert_eq!(p("1.0000000005"), Ok(1_000_000_001));
        assert_eq!(p("1489217288.9999999996"), Ok(1_489_217_289_000_000_000));
        assert_eq!(p("-1.0000000005"), Ok(-1_000_000_001));
        assert_eq!(p("0.0000000004"), Ok(0));
    }

    #[test]
    fn the_carry_case_round_trips_to_the_next_second() {
        let t = Timestamp::parse("1489217288.9999996").unwrap();
        assert_eq!(t.to_micros_string(), "1489217289.000000");
    }

    #[test]
    fn parses_exponents_exactly() {
        assert_eq!(p("1.5e9"), Ok(1_500_000_000_000_000_000));
        assert_eq!(p("1.5E9"), Ok(1_500_000_000_000_000_000));
        assert_eq!(p("1.5e+9"), Ok(1_500_000_000_000_000_000));
        assert_eq!(p("1489217288328757e-6"), Ok(1_489_217_288_328_757_000));
        assert_eq!(p("1.489217288328757e9"), Ok(1_489_217_288_328_757_000));
        assert_eq!(p("-2e0"), Ok(-2_000_000_000));
        assert_eq!(p("5e-10"), Ok(1));
        assert_eq!(p("1e-400"), Ok(0));
        assert_eq!(p("0e999"), Ok(0));
    }

    #[test]
    fn refuses_what_is_not_a_decimal_number() {
        for bad in [
            "NaN", "nan", "inf", "-inf", "Infinity", "1.2.3", "abc", "0x10", "1e", "1e+", "e5",
            ".", "-", "+", "1 ", " 1", "1,5", "1_000", "--1", "+-1", "1.5f", "１",
        ] {
            assert_eq!(
                p(bad),
                Err(TimestampError::Syntax),
                "{bad:?} must be refused"
            );
        }
        assert_eq!(p(""), Err(TimestampError::Empty));
        assert_eq!(p(&"1".repeat(65)), Err(TimestampError::TooLong));
    }

    #[test]
    fn refuses_out_of_range() {
        assert_eq!(p("1e19"), Err(TimestampError::OutOfRange));
        assert_eq!(p("1e400"), Err(TimestampError::OutOfRange));
        assert_eq!(p("-99999999999999999999"), Err(TimestampError::OutOfRange));
        assert_eq!(p("1e18"), Ok(MAX_ABS_SECONDS * NANOS_PER_SEC));
        // Milliseconds sent by mistake are still echoed faithfully.
        assert_eq!(p("1558915619944"), Ok(1_558_915_619_944 * NANOS_PER_SEC));
    }

    /// Found by fuzz/fuzz_targets/timestamp.rs: an exponent of more than 18 digits
    /// overflowed an i64 (a panic in debug builds; in release it wrapped, so a server's
    /// absurd `st` of `1e18446744073709551625` read as a plausible 1e9 s).
    #[test]
    fn huge_exponents_saturate_instead_of_wrapping() {
        assert_eq!(
            p("1e1725555555555555555555555818"),
            Err(TimestampError::OutOfRange)
        );
        assert_eq!(p("1e18446744073709551625"), Err(TimestampError::OutOfRange));
        assert_eq!(
            p("-1e18446744073709551625"),
            Err(TimestampError::OutOfRange)
        );
        assert_eq!(p("1e-18446744073709551625"), Ok(0));
        assert_eq!(p(&format!("1e-{}", "9".repeat(61))), Ok(0));
        assert_eq!(p(&format!("0e{}", "9".repeat(61))), Ok(0));
        assert_eq!(
            p("1e+0000000000000000000000000009"),
            Ok(1_000_000_000_000_000_000)
        );
    }

    #[test]
    fn every_parsed_value_formats_and_reparses_to_the_same_microsecond() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..10_000 {
            // xorshift: deterministic, no dependency.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let ns = (x % 4_000_000_000_000_000_000) as i128 - 1_000_000_000_000_000_000;
            let text = fmt6(ns);
            let back = p(&text).unwrap();
            assert!((back - ns).abs() <= 500, "{ns} -> {text} -> {back}");
            assert_eq!(fmt6(back), text);
        }
    }

    #[test]
    fn unix_seconds_floors() {
        assert_eq!(Timestamp::from_nanos(1_999_999_999).unix_seconds(), 1);
        assert_eq!(Timestamp::from_nanos(-1).unix_seconds(), -1);
    }
}
