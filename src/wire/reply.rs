//! The WebNTP reply object, the queries that ask for it, JSONP wrapping and error bodies.
//!
//! The reply is written by hand, not through serde, for three reasons: its bytes must match
//! go-webntp's (field order, six-decimal numbers, Go's HTML-safe string escaping), the server
//! timestamp must be patched in *after* everything else is formatted (see [`ReplyTemplate`]),
//! and it is the hot path of the server.
//!
//! ```text
//! {"id":"127.0.0.1:8080","it":1489217288.328757,"st":1795270670.615101,"time":1795270670.615101,"leap":36,"next":1483228800.000000,"step":1,"rt":1795270670.615087}
//! ```
//!
//! `rt` is webntpd's addition: the server's receive time, so a client can subtract the
//! server's processing time from the round trip (NTP's four-timestamp method). Clients that do
//! not know it ignore it.

use super::timestamp::{TimestampError, MAX_TIMESTAMP_TEXT};
use crate::sync::leap::LeapInfo;
use crate::sync::Timestamp;

/// Longest JSONP callback name accepted.
pub const MAX_CALLBACK_LEN: usize = 64;

/// Everything in a reply except the server's transmit time `st`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyFields<'a> {
    /// Server id: the configured id, or the request's Host header.
    pub id: &'a str,
    /// The client's timestamp, echoed (`it`).
    pub it: Timestamp,
    /// The client's own text of `it`, when it is already in the six-decimal wire form
    /// ([`is_wire_form`](super::timestamp::is_wire_form)): copied rather than formatted again.
    pub it_text: Option<&'a str>,
    /// When the server received the request (`rt`).
    pub rt: Timestamp,
    /// Leap second information (`leap`, `next`, `step`).
    pub leap: LeapInfo,
}

/// A fully formatted reply whose `st` and `time` values can be re-stamped in place.
///
/// The server formats the whole body with a provisional `st`, and stamps the real one as the
/// very last thing before the bytes go to the socket (`stamp`), so the formatting time is not
/// counted as path delay by the client.
#[derive(Debug, Clone)]
pub struct ReplyTemplate {
    buf: Vec<u8>,
    /// Byte offsets of the `st` and `time` values.
    st_at: [usize; 2],
    /// Width of the formatted `st` value.
    st_width: usize,
    /// `st` has three decimals (NICT's bodies, [`super::nict::reply_template`]), not six.
    millis: bool,
}

impl ReplyTemplate {
    /// Format a reply with `provisional_st`, wrapped as `callback(...);` when a JSONP callback
    /// name is given (it must have passed [`validate_callback`]). The body ends with `\n`.
    pub fn new(
        fields: &ReplyFields<'_>,
        provisional_st: Timestamp,
        callback: Option<&str>,
    ) -> Self {
        // Room for the reply, plus the scratch space `stamp` formats `st` in.
        let mut buf = Vec::with_capacity(224 + fields.id.len() + callback.map_or(0, str::len));
        if let Some(cb) = callback {
            buf.extend_from_slice(cb.as_bytes());
            buf.push(b'(');
        }
        buf.extend_from_slice(b"{\"id\":");
        write_json_string(fields.id, &mut buf);
        buf.extend_from_slice(b",\"it\":");
        match fields.it_text {
            Some(text) if super::timestamp::is_wire_form(text) => {
                buf.extend_from_slice(text.as_bytes())
            }
            _ => fields.it.write_micros(&mut buf),
        }
        buf.extend_from_slice(b",\"st\":");
        let st0 = buf.len();
        provisional_st.write_micros(&mut buf);
        let st_width = buf.len() - st0;
        buf.extend_from_slice(b",\"time\":");
        let st1 = buf.len();
        buf.extend_from_within(st0..st0 + st_width);
        buf.extend_from_slice(b",\"leap\":");
        write_int(i64::from(fields.leap.leap), &mut buf);
        buf.extend_from_slice(b",\"next\":");
        // Whole seconds: the integer and six zeros, without the general formatter's rounding.
        write_int(fields.leap.next_unix, &mut buf);
        buf.extend_from_slice(b".000000");
        buf.extend_from_slice(b",\"step\":");
        write_int(i64::from(fields.leap.step), &mut buf);
        buf.extend_from_slice(b",\"rt\":");
        if fields.rt == provisional_st {
            // The usual case: the provisional `st` is the receive time, already formatted.
            buf.extend_from_within(st0..st0 + st_width);
        } else {
            fields.rt.write_micros(&mut buf);
        }
        buf.push(b'}');
        if callback.is_some() {
            buf.extend_from_slice(b");");
        }
        buf.push(b'\n');
        ReplyTemplate {
            buf,
            st_at: [st0, st1],
            st_width,
            millis: false,
        }
    }

    /// A template for another layout of the reply: `buf` holds a provisional `st` of
    /// `st_width` bytes at `st_at` (given twice when it appears once), with three decimals
    /// when `millis`, else six. `buf` should have room for about 24 more bytes, where
    /// [`stamp`](Self::stamp) formats the real `st` before moving it into place.
    pub(crate) fn with_stamp_at(
        buf: Vec<u8>,
        st_at: [usize; 2],
        st_width: usize,
        millis: bool,
    ) -> Self {
        ReplyTemplate {
            buf,
            st_at,
            st_width,
            millis,
        }
    }

    /// Length of the body in bytes; [`stamp`](Self::stamp) never changes it.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Always false: a reply is never empty.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Write `st` into the `st` and `time` fields and return the body.
    ///
    /// Returns `true` with the body when `st` was written. The length is fixed by the time the
    /// template is made (it went out in `Content-Length`), so if `st` needs a different number
    /// of digits than the provisional value (a power-of-ten second boundary between the two
    /// readings: next in the year 2286) the provisional value stays and `false` is returned.
    pub fn stamp(mut self, st: Timestamp) -> (Vec<u8>, bool) {
        // Format at the end of the buffer (its capacity is already there), then move it
        // into place: no allocation on the hot path.
        let end = self.buf.len();
        if self.millis {
            st.write_millis(&mut self.buf);
        } else {
            st.write_micros(&mut self.buf);
        }
        let width = self.buf.len() - end;
        let fits = width == self.st_width;
        if fits {
            for at in self.st_at {
                self.buf.copy_within(end..end + width, at);
            }
        }
        self.buf.truncate(end);
        (self.buf, fits)
    }
}

/// Write `s` as a JSON string the way Go's `encoding/json` does: `"`, `\` and control
/// characters escaped, and also `<`, `>`, `&`, U+2028 and U+2029 (as `\u003c` ...), so the
/// result is safe inside HTML and inside JSONP executed as script.
pub fn write_json_string(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    // The usual `id` (a host name and port) needs no escaping: copy it in one go.
    if s.bytes()
        .all(|b| matches!(b, 0x20..=0x7e) && !matches!(b, b'"' | b'\\' | b'<' | b'>' | b'&'))
    {
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        return;
    }
    let mut start = 0;
    let bytes = s.as_bytes();
    for (i, ch) in s.char_indices() {
        let escape: Option<&[u8]> = match ch {
            '"' => Some(b"\\\""),
            '\\' => Some(b"\\\\"),
            '\n' => Some(b"\\n"),
            '\r' => Some(b"\\r"),
            '\t' => Some(b"\\t"),
            _ => None,
        };
        let needs_unicode = matches!(ch, '\u{0}'..='\u{1f}' | '<' | '>' | '&')
            || ch == '\u{2028}'
            || ch == '\u{2029}';
        if escape.is_none() && !needs_unicode {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        match escape {
            Some(e) => out.extend_from_slice(e),
            None => {
                let c = ch as u32;
                out.extend_from_slice(b"\\u");
                for shift in [12, 8, 4, 0] {
                    out.push(HEX[((c >> shift) & 0xf) as usize]);
                }
            }
        }
        start = i + ch.len_utf8();
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Write `v` in decimal.
pub(crate) fn write_int(v: i64, out: &mut Vec<u8>) {
    if v < 0 {
        out.push(b'-');
    }
    super::timestamp::write_u64(v.unsigned_abs(), out);
}

/// Why a JSONP callback name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    /// `callback=` with nothing after it.
    #[error("empty JSONP callback name")]
    Empty,
    /// Over [`MAX_CALLBACK_LEN`] bytes.
    #[error("JSONP callback name longer than {MAX_CALLBACK_LEN} characters")]
    TooLong,
    /// Anything but a dotted path of JavaScript identifiers made of ASCII letters, digits,
    /// `_` and `$`.
    #[error(
        "JSONP callback name must be identifiers of letters, digits, `_` and `$` joined by `.` \
         (e.g. `jsont` or `app.onTime`)"
    )]
    Invalid,
}

/// Accept a JSONP callback name only if it is a dotted path of plain JavaScript identifiers
/// (`jsont`, `jQuery3510_1489217288`, `app.time.cb`): ASCII letters, digits, `_`, `$`, no
/// segment empty or starting with a digit. Anything else would let a requester inject script
/// into a page that loads the reply.
pub fn validate_callback(name: &str) -> Result<(), CallbackError> {
    if name.is_empty() {
        return Err(CallbackError::Empty);
    }
    if name.len() > MAX_CALLBACK_LEN {
        return Err(CallbackError::TooLong);
    }
    for segment in name.split('.') {
        let mut chars = segment.chars();
        match chars.next() {
            Some(c) if c.is_ascii_alphabetic() || c == '_' || c == '$' => {}
            _ => return Err(CallbackError::Invalid),
        }
        if !chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
            return Err(CallbackError::Invalid);
        }
    }
    Ok(())
}

/// What a request's query string asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Query {
    /// The client's timestamp (`it`); zero when the query has none, as go-webntp does.
    pub it: Timestamp,
    /// A validated JSONP callback name, if `callback=` was given.
    pub callback: Option<String>,
}

/// Why a query string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// The timestamp did not parse.
    #[error("invalid timestamp `{text}`: {reason}")]
    Timestamp {
        /// The offending text (percent-decoded, cut to 64 characters).
        text: String,
        /// Why.
        reason: TimestampError,
    },
    /// The callback name was refused.
    #[error("invalid callback: {0}")]
    Callback(#[from] CallbackError),
    /// Two timestamps, or two callbacks.
    #[error("query has more than one {0}")]
    Duplicate(&'static str),
    /// Percent-encoding that does not decode to UTF-8.
    #[error("query is not valid percent-encoded UTF-8")]
    Encoding,
}

/// Parse a WebNTP query string (the part after `?`, still percent-encoded).
///
/// The query is split on `&`. A part without `=` is the client's timestamp (`?1489217288.3`);
/// `callback=NAME` asks for JSONP. Other `key=value` parts are ignored, so cache busters such
/// as jQuery's `_=1489217288328` do no harm. An empty query means `it` = 0.
pub fn parse_query(raw: &str) -> Result<Query, QueryError> {
    // Nearly every request is `?<timestamp>` alone: nothing to split or decode.
    if !raw.is_empty() && !raw.bytes().any(|b| matches!(b, b'&' | b'=' | b'%')) {
        return Ok(Query {
            it: parse_timestamp(raw)?,
            callback: None,
        });
    }
    let mut q = Query::default();
    let mut have_ts = false;
    for part in raw.split('&') {
        if part.is_empty() {
            continue;
        }
        match part.split_once('=') {
            Some((key, value)) => {
                if decode(key)? != "callback" {
                    continue;
                }
                if q.callback.is_some() {
                    return Err(QueryError::Duplicate("callback"));
                }
                let name = decode(value)?;
                validate_callback(&name)?;
                q.callback = Some(name.into_owned());
            }
            None => {
                if have_ts {
                    return Err(QueryError::Duplicate("timestamp"));
                }
                q.it = parse_timestamp(&decode(part)?)?;
                have_ts = true;
            }
        }
    }
    Ok(q)
}

fn parse_timestamp(text: &str) -> Result<Timestamp, QueryError> {
    Timestamp::parse(text).map_err(|reason| QueryError::Timestamp {
        text: text.chars().take(MAX_TIMESTAMP_TEXT).collect(),
        reason,
    })
}

fn decode(s: &str) -> Result<std::borrow::Cow<'_, str>, QueryError> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map_err(|_| QueryError::Encoding)
}

/// A short JSON error body: `{"error":"..."}` and a newline.
pub fn error_body(message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 16);
    out.extend_from_slice(b"{\"error\":");
    write_json_string(message, &mut out);
    out.extend_from_slice(b"}\n");
    out
}

/// A WebNTP reply as a client reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedReply {
    /// `id`, if present.
    pub id: Option<String>,
    /// The echoed client timestamp.
    pub it: Timestamp,
    /// Server send time.
    pub st: Timestamp,
    /// Server receive time (webntpd servers only).
    pub rt: Option<Timestamp>,
    /// `leap`, `next`, `step`, when the server sent all three.
    pub leap: Option<LeapInfo>,
}

/// Why a reply body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// Not a JSON object of the expected shape.
    #[error("reply is not a WebNTP JSON object: {0}")]
    Json(String),
    /// A field that must be there is not.
    #[error("reply has no `{0}` field")]
    Missing(&'static str),
    /// A timestamp field is not a decimal number of seconds.
    #[error("reply field `{field}` = {text} is not a timestamp: {reason}")]
    Timestamp {
        /// Which field.
        field: &'static str,
        /// Its text (cut to 64 characters).
        text: String,
        /// Why.
        reason: TimestampError,
    },
}

#[derive(serde::Deserialize)]
struct WireReply<'a> {
    #[serde(default)]
    id: Option<String>,
    #[serde(borrow)]
    it: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow)]
    st: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow, default)]
    rt: Option<&'a serde_json::value::RawValue>,
    #[serde(default)]
    leap: Option<i32>,
    #[serde(borrow, default)]
    next: Option<&'a serde_json::value::RawValue>,
    #[serde(default)]
    step: Option<i32>,
}

/// serde_json's error, with the field it happened in and the text there, so that a reply
/// like `"st":NaN` says "in field `st`, at `NaN,"time"...`": what an operator needs to tell a
/// broken server from a captive portal's HTML page.
fn json_error(body: &[u8], e: &serde_json::Error) -> String {
    let full = e.to_string();
    // serde_json ends its message with " at line L column C" (lines from 1, columns in
    // bytes from 1); line 0 means it has no position.
    let mut out = full
        .rsplit_once(" at line ")
        .map_or(full.as_str(), |(m, _)| m)
        .to_string();
    if e.line() == 0 {
        return out;
    }
    let line_start: usize = body
        .split(|&b| b == b'\n')
        .take(e.line() - 1)
        .map(|l| l.len() + 1)
        .sum();
    let at = (line_start + e.column().saturating_sub(1)).min(body.len());
    if let Some(field) = field_before(&body[..at]) {
        out.push_str(&format!(", in field `{field}`"));
    }
    let near: String = String::from_utf8_lossy(&body[at..body.len().min(at + 24)])
        .chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect();
    if !near.is_empty() {
        out.push_str(&format!(", at `{near}`"));
    }
    out
}

/// The name of the object key whose value `before` ends in (`..."st":` -> `st`), if any;
/// at most 32 printable characters.
fn field_before(before: &[u8]) -> Option<String> {
    let colon = before.iter().rposition(|&b| b == b':')?;
    if before[colon + 1..]
        .iter()
        .any(|&b| matches!(b, b',' | b'{' | b'}' | b'"'))
    {
        return None;
    }
    let key = before[..colon].trim_ascii_end().strip_suffix(b"\"")?;
    let open = key.iter().rposition(|&b| b == b'"')?;
    let name = &key[open + 1..];
    (name.len() <= 32 && name.iter().all(u8::is_ascii_graphic))
        .then(|| String::from_utf8_lossy(name).into_owned())
}

fn raw_timestamp(
    field: &'static str,
    raw: &serde_json::value::RawValue,
) -> Result<Timestamp, ReplyError> {
    let text = raw.get();
    Timestamp::parse(text).map_err(|reason| ReplyError::Timestamp {
        field,
        text: text.chars().take(MAX_TIMESTAMP_TEXT).collect(),
        reason,
    })
}

/// Read a WebNTP JSON reply (go-webntp's or webntpd's). Numbers are read from their text,
/// exactly, never through a float.
pub fn parse_reply(body: &[u8]) -> Result<ParsedReply, ReplyError> {
    let wire: WireReply<'_> =
        serde_json::from_slice(body).map_err(|e| ReplyError::Json(json_error(body, &e)))?;
    let it = raw_timestamp("it", wire.it.ok_or(ReplyError::Missing("it"))?)?;
    let st = raw_timestamp("st", wire.st.ok_or(ReplyError::Missing("st"))?)?;
    let rt = wire.rt.map(|r| raw_timestamp("rt", r)).transpose()?;
    let leap = match (wire.leap, wire.next, wire.step) {
        (Some(leap), Some(next), Some(step)) => Some(LeapInfo {
            leap,
            next_unix: raw_timestamp("next", next)?.unix_seconds(),
            step,
        }),
        _ => None,
    };
    Ok(ParsedReply {
        id: wire.id,
        it,
        st,
        rt,
        leap,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEAP: LeapInfo = LeapInfo {
        leap: 36,
        next_unix: 1_483_228_800,
        step: 1,
    };

    fn fields(id: &str) -> ReplyFields<'_> {
        ReplyFields {
            id,
            it: Timestamp::parse("1489217288.328757").unwrap(),
            it_text: None,
            rt: Timestamp::parse("1795270670.615087").unwrap(),
            leap: LEAP,
        }
    }

    fn stamped(t: ReplyTemplate, st: &str) -> String {
        let (bytes, ok) = t.stamp(Timestamp::parse(st).unwrap());
        assert!(ok);
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn reply_bytes_match_go_webntp_plus_rt() {
        let t = ReplyTemplate::new(
            &fields("127.0.0.1:18080"),
            Timestamp::from_secs(1_795_270_670),
            None,
        );
        let body = stamped(t, "1795270670.615101");
        assert_eq!(
            body,
            "{\"id\":\"127.0.0.1:18080\",\"it\":1489217288.328757,\"st\":1795270670.615101,\
             \"time\":1795270670.615101,\"leap\":36,\"next\":1483228800.000000,\"step\":1,\
             \"rt\":1795270670.615087}\n"
        );
    }

    #[test]
    fn stamping_keeps_the_length_and_replaces_both_fields() {
        let t = ReplyTemplate::new(&fields("h"), Timestamp::from_secs(1_700_000_000), None);
        let len = t.len();
        let body = stamped(t, "1700000000.999999");
        assert_eq!(body.len(), len);
        assert_eq!(body.matches("1700000000.999999").count(), 2);
    }

    #[test]
    fn stamp_of_another_width_keeps_the_provisional_value() {
        let t = ReplyTemplate::new(&fields("h"), Timestamp::from_secs(9_999_999_999), None);
        let len = t.len();
        let (bytes, ok) = t.stamp(Timestamp::from_secs(10_000_000_000));
        assert!(!ok);
        assert_eq!(bytes.len(), len);
        assert_eq!(
            String::from_utf8(bytes)
                .unwrap()
                .matches("9999999999.000000")
                .count(),
            2
        );
    }

    #[test]
    fn jsonp_wraps_the_object() {
        let t = ReplyTemplate::new(
            &fields("ntp"),
            Timestamp::from_secs(1_700_000_000),
            Some("jsont"),
        );
        let body = stamped(t, "1700000000.5");
        assert!(body.starts_with("jsont({\"id\":\"ntp\","), "{body}");
        assert!(body.ends_with("});\n"), "{body}");
    }

    #[test]
    fn json_strings_are_escaped_like_go() {
        let mut out = Vec::new();
        write_json_string("a\"b\\c\n\u{1}<x>&\u{2028}é", &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"a\\\"b\\\\c\\n\\u0001\\u003cx\\u003e\\u0026\\u2028é\""
        );
    }

    #[test]
    fn callback_names() {
        for ok in [
            "jsont",
            "cb",
            "_",
            "$",
            "jQuery3510_1489217288",
            "app.time.onTime",
            "a$1",
        ] {
            assert_eq!(validate_callback(ok), Ok(()), "{ok}");
        }
        for bad in [
            "alert(1)//",
            "a b",
            "1abc",
            "a..b",
            ".a",
            "a.",
            "a-b",
            "<script>",
            "a;b",
            "é",
            "a\u{2028}",
            "a.1b",
            "x=1",
        ] {
            assert!(validate_callback(bad).is_err(), "{bad:?} must be refused");
        }
        assert_eq!(validate_callback(""), Err(CallbackError::Empty));
        assert_eq!(
            validate_callback(&"a".repeat(65)),
            Err(CallbackError::TooLong)
        );
        assert_eq!(validate_callback(&"a".repeat(64)), Ok(()));
    }

    #[test]
    fn queries() {
        assert_eq!(parse_query(""), Ok(Query::default()));
        let q = parse_query("1489217288.328757").unwrap();
        assert_eq!(q.it.to_micros_string(), "1489217288.328757");
        let q = parse_query("callback=cb&1.5").unwrap();
        assert_eq!(q.callback.as_deref(), Some("cb"));
        assert_eq!(q.it.as_nanos(), 1_500_000_000);
        let q = parse_query("1.5&callback=jQuery1_2&_=1489217288328").unwrap();
        assert_eq!(q.callback.as_deref(), Some("jQuery1_2"));
        // Percent-encoded sign.
        assert_eq!(parse_query("%2B1.5").unwrap().it.as_nanos(), 1_500_000_000);
        assert!(matches!(
            parse_query("abc"),
            Err(QueryError::Timestamp { .. })
        ));
        assert!(matches!(
            parse_query("NaN"),
            Err(QueryError::Timestamp { .. })
        ));
        assert!(matches!(
            parse_query("callback=x%28"),
            Err(QueryError::Callback(_))
        ));
        assert_eq!(parse_query("1&2"), Err(QueryError::Duplicate("timestamp")));
        assert_eq!(
            parse_query("callback=a&callback=b"),
            Err(QueryError::Duplicate("callback"))
        );
        assert_eq!(parse_query("%ff"), Err(QueryError::Encoding));
    }

    #[test]
    fn error_bodies_are_json() {
        let body = error_body("invalid timestamp `<x>`");
        assert_eq!(
            String::from_utf8(body).unwrap(),
            "{\"error\":\"invalid timestamp `\\u003cx\\u003e`\"}\n"
        );
    }

    /// Random peer input never panics any parser, and whatever parses formats back cleanly.
    #[test]
    fn random_queries_never_panic() {
        // The characters that matter to the parsers, and some that should not appear.
        const ALPHABET: &[u8] =
            b"0123456789.eE+-&=%2Bcallbackjsont_$;()<>\"\\ \x00\xff\xe2\x80\xa8NaNinf";
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..50_000 {
            let len = (next() % 40) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize])
                .collect();
            let text = String::from_utf8_lossy(&bytes);
            if let Ok(q) = parse_query(&text) {
                let mut out = Vec::new();
                q.it.write_micros(&mut out);
                assert!(!out.is_empty());
                if let Some(cb) = &q.callback {
                    assert_eq!(validate_callback(cb), Ok(()));
                }
            }
            let _ = Timestamp::parse(&text);
            let _ = validate_callback(&text);
            let _ = crate::wire::nict::validate_zone_name(&text);
        }
    }

    #[test]
    fn parses_replies_exactly() {
        let body = b"{\"id\":\"h\",\"it\":1489217288.328757,\"st\":1795270670.615101,\"time\":1795270670.615101,\"leap\":36,\"next\":1483228800.000000,\"step\":1,\"rt\":1795270670.615087}\n";
        let r = parse_reply(body).unwrap();
        assert_eq!(r.id.as_deref(), Some("h"));
        assert_eq!(r.it.as_nanos(), 1_489_217_288_328_757_000);
        assert_eq!(r.st.as_nanos(), 1_795_270_670_615_101_000);
        assert_eq!(r.rt.unwrap().as_nanos(), 1_795_270_670_615_087_000);
        assert_eq!(r.leap, Some(LEAP));
        // go-webntp: no rt; NICT: no leap fields needed.
        let r = parse_reply(b"{\"it\":1.5,\"st\":2}").unwrap();
        assert_eq!((r.rt, r.leap, r.id), (None, None, None));
        // What the server may not send.
        assert_eq!(parse_reply(b"{\"st\":2}"), Err(ReplyError::Missing("it")));
        assert!(matches!(
            parse_reply(b"{\"it\":1,\"st\":\"x\"}"),
            Err(ReplyError::Timestamp { field: "st", .. })
        ));
        assert!(matches!(
            parse_reply(b"{\"it\":1,\"st\":1e999}"),
            Err(ReplyError::Timestamp { .. })
        ));
        assert!(matches!(parse_reply(b"<html>"), Err(ReplyError::Json(_))));
        // Where it broke, in the server's words.
        let message = |body: &[u8]| parse_reply(body).unwrap_err().to_string();
        assert_eq!(
            message(b"{\"it\":1.5,\"st\":NaN,\"time\":NaN}"),
            "reply is not a WebNTP JSON object: expected value, in field `st`, \
             at `NaN,\"time\":NaN}`"
        );
        assert_eq!(
            message(b"{\"it\":1.5,\n\"st\":\n inf}"),
            "reply is not a WebNTP JSON object: expected value, in field `st`, at `inf}`"
        );
        assert_eq!(
            message(b"<html><body>Log in first</body></html>"),
            "reply is not a WebNTP JSON object: expected value, at `<html><body>Log in first`"
        );
        assert_eq!(
            message(b"{\"it\":\"x\"\x01}"),
            "reply is not a WebNTP JSON object: expected `,` or `}`, at `\u{fffd}}`"
        );
        assert_eq!(
            message(b""),
            "reply is not a WebNTP JSON object: EOF while parsing a value"
        );
        assert!(matches!(parse_reply(b"[1,2]"), Err(ReplyError::Json(_))));
        assert!(matches!(parse_reply(b""), Err(ReplyError::Json(_))));
    }
}
