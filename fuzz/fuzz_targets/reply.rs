//! The WebNTP reply parser the client uses (src/wire/reply.rs `parse_reply`), and the
//! server's formatter (`ReplyTemplate`) against it.
//!
//! - `Body`: any bytes a server may send. Whatever parses has in-range timestamps, and
//!   formatting its fields with the server's formatter and parsing again gives the same
//!   fields (timestamps rounded to the microsecond, as the wire carries them).
//! - `Fields`: what the server formats (any id, timestamps across the accepted range, leap
//!   data, a JSONP callback, the client's own `it` text) parses back field for field; `st`
//!   and `time` carry the same text; the body is HTML-safe (no raw `<`, `>`, `&`, U+2028,
//!   U+2029) and a JSONP body is exactly `callback(` object `);`.

#![no_main]

use std::collections::HashMap;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use serde_json::value::RawValue;
use webntpd::sync::leap::LeapInfo;
use webntpd::sync::Timestamp;
use webntpd::wire::reply::{
    parse_reply, validate_callback, ReplyError, ReplyFields, ReplyTemplate,
};
use webntpd::wire::timestamp::is_wire_form;

/// 10^18 s in nanoseconds: the range a timestamp may have on the wire.
const MAX_NS: i128 = 1_000_000_000_000_000_000_000_000_000;

#[derive(Arbitrary, Debug)]
enum Input<'a> {
    Body(&'a [u8]),
    Fields {
        id: &'a str,
        it: i128,
        it_text: Option<&'a str>,
        rt: i128,
        provisional_st: i128,
        st: i128,
        leap: i32,
        next_unix: i64,
        step: i32,
        callback: Option<&'a str>,
    },
}

fn in_range(ns: i128) -> Timestamp {
    Timestamp::from_nanos(ns % (MAX_NS + 1))
}

/// What the wire keeps of `t`: its six-decimal text, parsed.
fn micros(t: Timestamp) -> Timestamp {
    match Timestamp::parse(&t.to_micros_string()) {
        Ok(back) => back,
        Err(e) => panic!(
            "{t:?} formats as {}, which does not parse: {e}",
            t.to_micros_string()
        ),
    }
}

fn check_body(body: &[u8]) {
    let Ok(r) = parse_reply(body) else {
        return;
    };
    for t in [Some(r.it), Some(r.st), r.rt].into_iter().flatten() {
        assert!(t.as_nanos().abs() <= MAX_NS, "{t:?} out of range");
    }
    // The same fields through the server's formatter.
    let id = r.id.clone().unwrap_or_default();
    let fields = ReplyFields {
        id: &id,
        it: r.it,
        it_text: None,
        rt: r.rt.unwrap_or(r.st),
        leap: r.leap.unwrap_or(LeapInfo::NONE),
    };
    let (bytes, stamped) = ReplyTemplate::new(&fields, r.st, None).stamp(r.st);
    assert!(stamped);
    let again = match parse_reply(&bytes) {
        Ok(again) => again,
        // A `next` beyond the wire range cannot come from a parsed reply.
        Err(e) => panic!(
            "{:?} reformatted does not parse: {e}",
            String::from_utf8_lossy(&bytes)
        ),
    };
    assert_eq!(again.id.as_deref(), Some(id.as_str()));
    assert_eq!(again.it, micros(r.it));
    assert_eq!(again.st, micros(r.st));
    assert_eq!(again.rt, Some(micros(r.rt.unwrap_or(r.st))));
    assert_eq!(
        again.leap.unwrap_or(LeapInfo::NONE),
        r.leap.unwrap_or(LeapInfo::NONE)
    );
}

fuzz_target!(|input: Input<'_>| match input {
    Input::Body(body) => check_body(body),
    Input::Fields {
        id,
        it,
        it_text,
        rt,
        provisional_st,
        st,
        leap,
        next_unix,
        step,
        callback,
    } => {
        // As the server does: `it` is what `it_text` parses to, when it does.
        let it = it_text
            .and_then(|t| Timestamp::parse(t).ok())
            .unwrap_or(in_range(it));
        let callback = callback.filter(|cb| validate_callback(cb).is_ok());
        let leap = LeapInfo {
            leap,
            next_unix,
            step,
        };
        let fields = ReplyFields {
            id,
            it,
            it_text,
            rt: in_range(rt),
            leap,
        };
        let provisional = in_range(provisional_st);
        let st = in_range(st);
        let template = ReplyTemplate::new(&fields, provisional, callback);
        let len = template.len();
        let (bytes, stamped) = template.stamp(st);
        assert_eq!(bytes.len(), len, "stamping changed the length");
        assert_eq!(
            stamped,
            st.to_micros_string().len() == provisional.to_micros_string().len()
        );
        let sent_st = if stamped { st } else { provisional };

        let text = match std::str::from_utf8(&bytes) {
            Ok(t) => t,
            Err(e) => panic!("reply is not UTF-8: {e}"),
        };
        for c in ['<', '>', '&', '\u{2028}', '\u{2029}'] {
            assert!(!text.contains(c), "raw {c:?} in {text:?}");
        }
        let object = match callback {
            Some(cb) => {
                let inner = text
                    .strip_prefix(cb)
                    .and_then(|t| t.strip_prefix('('))
                    .and_then(|t| t.strip_suffix(");\n"));
                match inner {
                    Some(inner) => inner.to_string(),
                    None => panic!("JSONP body not `{cb}(...);`: {text:?}"),
                }
            }
            None => match text.strip_suffix('\n') {
                Some(t) => t.to_string(),
                None => panic!("no final newline: {text:?}"),
            },
        };
        let raw: HashMap<String, Box<RawValue>> = match serde_json::from_str(&object) {
            Ok(m) => m,
            Err(e) => panic!("reply is not a JSON object ({e}): {object:?}"),
        };
        assert_eq!(
            raw.get("st").map(|v| v.get()),
            raw.get("time").map(|v| v.get()),
            "st and time differ"
        );

        match parse_reply(object.as_bytes()) {
            Ok(r) => {
                assert!(next_unix.unsigned_abs() <= 1_000_000_000_000_000_000);
                assert_eq!(r.id.as_deref(), Some(id));
                let want_it = match it_text {
                    Some(t) if is_wire_form(t) => it,
                    _ => micros(it),
                };
                assert_eq!(r.it, want_it);
                assert_eq!(r.st, micros(sent_st));
                assert_eq!(r.rt, Some(micros(in_range(rt))));
                assert_eq!(r.leap, Some(leap));
            }
            // The leap list can name an event beyond the wire's range: the client refuses the
            // reply rather than misread it.
            Err(ReplyError::Timestamp { field: "next", .. })
                if next_unix.unsigned_abs() > 1_000_000_000_000_000_000 => {}
            Err(e) => panic!("server reply does not parse: {e}: {object:?}"),
        }
    }
});
