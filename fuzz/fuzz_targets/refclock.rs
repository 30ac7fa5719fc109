//! The SHM and SOCK sample encoding (src/refclock): arbitrary `RefSample`s, including every
//! extreme, to the fields `ShmWriter::write` stores and to `sock::encode`'s datagram.
//!
//! Checked: no panic; nanoseconds below 10^9 and microseconds exactly nanoseconds / 1000;
//! wherever the seconds fit `time_t`, receive is exactly the sample's receive time and clock
//! exactly receive + offset; leap and precision copied; the SOCK datagram carries the receive
//! seconds and microseconds, the offset in seconds to within a double's rounding, the leap
//! code and chrony's magic, with pulse and padding 0. Also `precision_log2` against its
//! definition and `leap_warning` at extremes.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use webntpd::refclock::sock;
use webntpd::sync::leap::{leap_warning, Leap, LeapInfo};
use webntpd::sync::refsample::{precision_log2, RefSample, MIN_PRECISION};
use webntpd::sync::Timestamp;

const NS: i128 = 1_000_000_000;

#[derive(Arbitrary, Debug)]
struct Input {
    receive_ns: i128,
    /// Keep `receive` within a few centuries of 1970 (what clocks read) unless set.
    wide: bool,
    offset_ns: i64,
    leap: u8,
    precision: i32,
    error_ns: i64,
    next_unix: i64,
    step: i32,
}

fn check_precision(error_ns: i64) {
    let p = precision_log2(error_ns);
    assert!(p >= MIN_PRECISION);
    // 2^p s >= error, and 2^(p-1) s < error unless p is the floor; exactly, in 1e-9 s units
    // scaled by 2^40 so that negative powers stay integers.
    let error = i128::from(error_ns.max(1)) << 40;
    let pow = |e: i32| -> i128 {
        let shift = 40 + e;
        if shift >= 0 {
            NS << shift
        } else {
            NS >> -shift
        }
    };
    assert!(pow(p) >= error, "2^{p} s < {error_ns} ns");
    assert!(
        p == MIN_PRECISION || pow(p - 1) < error,
        "2^{} s covers {error_ns} ns",
        p - 1
    );
}

fuzz_target!(|input: Input| {
    let receive_ns = if input.wide {
        input.receive_ns
    } else {
        // +-500 years.
        input.receive_ns % (500 * 366 * 86_400 * NS)
    };
    let leap = match input.leap % 4 {
        0 => Leap::NoWarning,
        1 => Leap::InsertSecond,
        2 => Leap::DeleteSecond,
        _ => Leap::Unsynchronised,
    };
    let s = RefSample {
        receive: Timestamp::from_nanos(receive_ns),
        offset_ns: input.offset_ns,
        leap,
        precision: input.precision,
    };
    let f = webntpd::fuzzing::shm_fields(&s);
    assert!(f.clock_nsec < 1_000_000_000 && f.receive_nsec < 1_000_000_000);
    assert_eq!(f.clock_usec, (f.clock_nsec / 1000) as i64);
    assert_eq!(f.receive_usec, (f.receive_nsec / 1000) as i64);
    assert_eq!(f.leap, i64::from(leap.code()));
    assert_eq!(f.precision, i64::from(input.precision));
    let fits = |ns: i128| i64::try_from(ns.div_euclid(NS)).is_ok();
    if fits(receive_ns) {
        assert_eq!(
            i128::from(f.receive_sec) * NS + i128::from(f.receive_nsec),
            receive_ns
        );
    }
    if let Some(clock_ns) = receive_ns.checked_add(i128::from(input.offset_ns)) {
        assert_eq!(s.clock().as_nanos(), clock_ns);
        if fits(clock_ns) {
            assert_eq!(
                i128::from(f.clock_sec) * NS + i128::from(f.clock_nsec),
                clock_ns,
                "clock != receive + offset for {s:?}"
            );
        }
    }

    let d = sock::encode(&s);
    assert_eq!(d.len(), sock::SIZE);
    let word = |at: usize| i64::from_ne_bytes(d[at..at + 8].try_into().unwrap_or([0; 8]));
    let int = |at: usize| i32::from_ne_bytes(d[at..at + 4].try_into().unwrap_or([0; 4]));
    assert_eq!(word(0), f.receive_sec);
    assert_eq!(word(8), f.receive_usec);
    let offset = f64::from_ne_bytes(d[16..24].try_into().unwrap_or([0; 8]));
    // Seconds as a double: within two roundings of the exact value.
    let exact = input.offset_ns as f64;
    assert!(
        (offset * 1e9 - exact).abs() <= exact.abs() * 4.0 * f64::EPSILON,
        "offset {offset} s for {} ns",
        input.offset_ns
    );
    assert_eq!((int(24), int(28), int(32)), (0, leap.code(), 0));
    assert_eq!(int(36), sock::MAGIC);

    check_precision(input.error_ns);
    let info = LeapInfo {
        leap: 0,
        next_unix: input.next_unix,
        step: input.step,
    };
    let warned = leap_warning(Some(info), s.clock());
    if warned != Leap::NoWarning {
        // Only during the UTC day that ends with a midnight event of the step's sign.
        let now = s.clock().unix_seconds();
        assert_eq!(input.next_unix.rem_euclid(86_400), 0);
        assert!(now < input.next_unix && now >= input.next_unix - 86_400);
        assert_eq!(
            warned,
            if input.step == 1 {
                Leap::InsertSecond
            } else {
                Leap::DeleteSecond
            }
        );
    }
});
