//! The WebNTP timestamp parser and formatter (src/wire/timestamp.rs).
//!
//! Input: text a peer sends as a timestamp. Checked:
//! - `Timestamp::parse` gives exactly what an independent, obviously-correct reference
//!   parser below gives (value, or which error), for every input;
//! - the 64-bit fast path agrees with the general parser wherever it answers;
//! - whatever parses formats and parses back: nine decimals exactly, six within half a
//!   microsecond (and formatting that again is stable), three within half a millisecond;
//! - text in the six-decimal wire form formats back to itself (the server echoes such an
//!   `it` as sent).
//!
//! An input starting with a NUL byte (never a valid timestamp) is instead 16 bytes of an
//! arbitrary `i128` nanosecond value to format.

#![no_main]

use libfuzzer_sys::fuzz_target;
use webntpd::sync::Timestamp;
use webntpd::wire::timestamp::{is_wire_form, MAX_TIMESTAMP_TEXT};
use webntpd::wire::TimestampError;

/// 10^18 s in nanoseconds: the accepted range.
const MAX_NS: u128 = 1_000_000_000_000_000_000_000_000_000;

/// The grammar and the rounding done the slow, obvious way: all digits kept, the decimal
/// point moved by the exponent, the result rounded half away from zero at the nanosecond.
fn reference(s: &[u8]) -> Result<i128, TimestampError> {
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
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < s.len() && s[*i].is_ascii_digit() {
            *i += 1;
        }
        &s[start..*i]
    };
    let int = digits(&mut i);
    let mut frac: &[u8] = &[];
    if i < s.len() && s[i] == b'.' {
        i += 1;
        frac = digits(&mut i);
    }
    if int.is_empty() && frac.is_empty() {
        return Err(TimestampError::Syntax);
    }
    let mut exponent: i128 = 0;
    if i < s.len() && (s[i] == b'e' || s[i] == b'E') {
        i += 1;
        let mut exp_negative = false;
        if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
            exp_negative = s[i] == b'-';
            i += 1;
        }
        let e = digits(&mut i);
        if e.is_empty() {
            return Err(TimestampError::Syntax);
        }
        // Anything beyond a million is out of range, or zero, all the same.
        for &d in e {
            exponent = (exponent * 10 + i128::from(d - b'0')).min(1_000_000);
        }
        if exp_negative {
            exponent = -exponent;
        }
    }
    if i != s.len() {
        return Err(TimestampError::Syntax);
    }
    // value = 0.ALL x 10^point seconds.
    let all: Vec<u8> = int.iter().chain(frac).map(|d| d - b'0').collect();
    let zeros = all.iter().take_while(|&&d| d == 0).count();
    let all = &all[zeros..];
    let point = int.len() as i128 + exponent - zeros as i128;
    if all.is_empty() {
        return Ok(0);
    }
    // The first `k` digits are whole nanoseconds.
    let k = point + 9;
    if k > 28 {
        // At least 10^(k-1) >= 10^28 ns.
        return Err(TimestampError::OutOfRange);
    }
    let (whole, round_up) = if k <= 0 {
        (0u128, k == 0 && all[0] >= 5)
    } else {
        let k = k as usize;
        let whole = (0..k).fold(0u128, |v, j| v * 10 + u128::from(*all.get(j).unwrap_or(&0)));
        (whole, all.get(k).is_some_and(|&d| d >= 5))
    };
    let magnitude = whole + u128::from(round_up);
    if magnitude > MAX_NS {
        return Err(TimestampError::OutOfRange);
    }
    let magnitude = magnitude as i128;
    Ok(if negative { -magnitude } else { magnitude })
}

fn check_formats(ns: i128) {
    let t = Timestamp::from_nanos(ns);
    let micros = t.to_micros_string();
    let nanos = t.to_nanos_string();
    let millis = t.to_millis_string();
    if ns.unsigned_abs() > MAX_NS {
        // Beyond what a peer can send: formatting must still work, parsing refuses.
        assert!(Timestamp::parse(&nanos).is_err(), "{nanos}");
        return;
    }
    assert_eq!(
        Timestamp::parse(&nanos).map(Timestamp::as_nanos),
        Ok(ns),
        "{nanos}"
    );
    let back = Timestamp::parse(&micros).map(Timestamp::as_nanos);
    let Ok(back) = back else {
        panic!("{ns} formats as {micros:?}, which does not parse: {back:?}");
    };
    assert!((back - ns).abs() <= 500, "{ns} -> {micros} -> {back}");
    assert_eq!(Timestamp::from_nanos(back).to_micros_string(), micros);
    let back = Timestamp::parse(&millis).map(Timestamp::as_nanos);
    let Ok(back) = back else {
        panic!("{ns} formats as {millis:?}, which does not parse: {back:?}");
    };
    assert!((back - ns).abs() <= 500_000, "{ns} -> {millis} -> {back}");
    let mut wire = Vec::new();
    t.write_micros(&mut wire);
    assert_eq!(wire, micros.as_bytes());
}

fuzz_target!(|data: &[u8]| {
    if let [0, rest @ ..] = data {
        if let Some(bytes) = rest.get(..16) {
            let mut b = [0u8; 16];
            b.copy_from_slice(bytes);
            check_formats(i128::from_le_bytes(b));
        }
        return;
    }
    let want = reference(data);
    let (plain, general) = webntpd::fuzzing::timestamp_parsers(data);
    assert_eq!(
        general,
        want,
        "general parser vs reference on {:?}",
        String::from_utf8_lossy(data)
    );
    if let Some(v) = plain {
        assert_eq!(
            Ok(v),
            want,
            "fast path vs reference on {:?}",
            String::from_utf8_lossy(data)
        );
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = Timestamp::parse(text).map(Timestamp::as_nanos);
    assert_eq!(parsed, want, "Timestamp::parse vs reference on {text:?}");
    if let Ok(ns) = parsed {
        check_formats(ns);
        if is_wire_form(text) {
            assert_eq!(Timestamp::from_nanos(ns).to_micros_string(), text);
        }
    }
});
