//! NICT's endpoints: the JSON and JSONP bodies of `/cgi-bin/json` and `/cgi-bin/jsont`, and
//! the text pages `/cgi-bin/ntp`, `/cgi-bin/jst` and `/cgi-bin/time`.
//!
//! NICT documented its JSONP body as (no trailing newline, no `;`):
//!
//! ```text
//! jsont( { "id": "ntp-a1.nict.go.jp",
//! "it": 1232963971.248,
//! "st": 1232963971.920,
//! "leap": 33,
//! "next": 1230768000,
//! "step": 1 } )
//! ```
//!
//! Spaces inside the parentheses, one field per line, three decimals, `next` a whole number,
//! no `time` or `rt`. Clients in the field depend on exactly that: some cut the object out
//! with `js.substring(7, js.length - 2)`, others strip `jsont(` and `)` and parse the rest,
//! and both break on go-webntp's compact `jsont({...});`. [`reply_template`] writes it, and
//! `/cgi-bin/json` the same object without the callback.
//!
//! NICT's retired http time service answered these with the value on its own line inside a
//! minimal HTML page, and the clients still in the field (scripts, microcontroller sketches)
//! find it as the line after `<BODY>`:
//!
//! ```text
//! <HTML>
//! <HEAD><TITLE>ntp-a1.nict.go.jp</TITLE></HEAD>
//! <BODY>
//! 1232963971.248
//! </BODY>
//! </HTML>
//! ```
//!
//! `/cgi-bin/ntp` carries NTP-era seconds (Unix + 2208988800), `/cgi-bin/jst` POSIX seconds,
//! both with three decimals; `/cgi-bin/time` a human-readable time in a named zone.

use super::reply::{write_int, write_json_string, ReplyFields, ReplyTemplate};
use super::NTP_UNIX_OFFSET_SECS;
use crate::sync::Timestamp;

/// NICT's JSON object (wrapped as `callback( ... )` when a callback is given, which must
/// have passed [`validate_callback`](super::reply::validate_callback)), with `provisional_st`
/// to be replaced by [`ReplyTemplate::stamp`] as the body is sent. `fields.rt` is not sent:
/// NICT's clients read six fields, and a seventh line would break no one but buys nothing
/// here, where byte-for-byte is the point.
pub fn reply_template(
    fields: &ReplyFields<'_>,
    provisional_st: Timestamp,
    callback: Option<&str>,
) -> ReplyTemplate {
    // The body, plus the scratch space `stamp` formats `st` in.
    let mut buf = Vec::with_capacity(160 + fields.id.len() + callback.map_or(0, str::len));
    if let Some(cb) = callback {
        buf.extend_from_slice(cb.as_bytes());
        buf.extend_from_slice(b"( ");
    }
    buf.extend_from_slice(b"{ \"id\": ");
    write_json_string(fields.id, &mut buf);
    buf.extend_from_slice(b",\n\"it\": ");
    fields.it.write_millis(&mut buf);
    buf.extend_from_slice(b",\n\"st\": ");
    let st = buf.len();
    provisional_st.write_millis(&mut buf);
    let st_width = buf.len() - st;
    buf.extend_from_slice(b",\n\"leap\": ");
    write_int(i64::from(fields.leap.leap), &mut buf);
    buf.extend_from_slice(b",\n\"next\": ");
    write_int(fields.leap.next_unix, &mut buf);
    buf.extend_from_slice(b",\n\"step\": ");
    write_int(i64::from(fields.leap.step), &mut buf);
    buf.extend_from_slice(b" }");
    if callback.is_some() {
        buf.extend_from_slice(b" )");
    }
    ReplyTemplate::with_stamp_at(buf, [st, st], st_width, true)
}

/// Longest time zone name accepted by `/cgi-bin/time`.
pub const MAX_ZONE_NAME: usize = 64;

/// Wrap `value` (one line, no newline) in NICT's HTML page, titled with the server id.
pub fn html_page(id: &str, value: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(80 + id.len() + value.len());
    out.extend_from_slice(b"<HTML>\n<HEAD><TITLE>");
    write_html_escaped(id, &mut out);
    out.extend_from_slice(b"</TITLE></HEAD>\n<BODY>\n");
    write_html_escaped(value, &mut out);
    out.extend_from_slice(b"\n</BODY>\n</HTML>\n");
    out
}

fn write_html_escaped(s: &str, out: &mut Vec<u8>) {
    for b in s.bytes() {
        match b {
            b'<' => out.extend_from_slice(b"&lt;"),
            b'>' => out.extend_from_slice(b"&gt;"),
            b'&' => out.extend_from_slice(b"&amp;"),
            b'"' => out.extend_from_slice(b"&quot;"),
            b'\'' => out.extend_from_slice(b"&#39;"),
            _ => out.push(b),
        }
    }
}

/// `/cgi-bin/ntp`'s value: NTP-era seconds with three decimals.
pub fn ntp_seconds(now: Timestamp) -> String {
    now.add_nanos(i128::from(NTP_UNIX_OFFSET_SECS) * 1_000_000_000)
        .to_millis_string()
}

/// `/cgi-bin/jst`'s value: POSIX seconds with three decimals.
pub fn posix_seconds(now: Timestamp) -> String {
    now.to_millis_string()
}

/// Why `/cgi-bin/time?ZONE` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZoneError {
    /// Not shaped like an IANA zone name (`Europe/Paris`, `Etc/GMT+9`, `UTC`).
    #[error("`{0}` is not a time zone name (expected an IANA name such as Asia/Tokyo)")]
    BadName(String),
    /// Shaped like one, but the system's tz database does not have it.
    #[error("unknown time zone `{0}` (not in the system tz database)")]
    Unknown(String),
}

/// Check that `name` is shaped like an IANA zone name before it goes near the tz database:
/// ASCII letters, digits, `_`, `+`, `-` and `/`, no empty or dot segments, bounded length.
pub fn validate_zone_name(name: &str) -> Result<(), ZoneError> {
    let bad = || ZoneError::BadName(name.chars().take(MAX_ZONE_NAME).collect());
    if name.is_empty() || name.len() > MAX_ZONE_NAME {
        return Err(bad());
    }
    for segment in name.split('/') {
        if segment.is_empty() || segment.starts_with('.') {
            return Err(bad());
        }
        if !segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-'))
        {
            return Err(bad());
        }
    }
    Ok(())
}

/// `/cgi-bin/time?ZONE`'s value: `Sat Nov 21 23:48:10 2026 JST` (C's `ctime` layout plus the
/// zone's abbreviation), from the system tz database.
pub fn human_time(now: Timestamp, zone: &str) -> Result<String, ZoneError> {
    validate_zone_name(zone)?;
    let tz = jiff::tz::TimeZone::get(zone).map_err(|_| ZoneError::Unknown(zone.to_string()))?;
    let ts = jiff::Timestamp::from_second(now.unix_seconds())
        .map_err(|_| ZoneError::Unknown(zone.to_string()))?;
    let zoned = ts.to_zoned(tz);
    Ok(zoned.strftime("%a %b %e %H:%M:%S %Y %Z").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timestamp = Timestamp::from_nanos(1_232_963_971_248_400_000);

    fn documented_fields() -> ReplyFields<'static> {
        ReplyFields {
            id: "ntp-a1.nict.go.jp",
            it: Timestamp::parse("1232963971.248").unwrap(),
            it_text: Some("1232963971.248"),
            rt: Timestamp::parse("1232963971.9195").unwrap(),
            leap: crate::sync::leap::LeapInfo {
                leap: 33,
                next_unix: 1_230_768_000,
                step: 1,
            },
        }
    }

    /// The body NICT documents for `/cgi-bin/jsont?1232963971.248`, byte for byte.
    #[test]
    fn jsonp_body_is_nicts_documented_one() {
        let fields = documented_fields();
        let t = reply_template(&fields, fields.rt, Some("jsont"));
        let len = t.len();
        let (body, stamped) = t.stamp(Timestamp::parse("1232963971.9204").unwrap());
        assert!(stamped);
        assert_eq!(body.len(), len);
        assert_eq!(
            String::from_utf8(body).unwrap(),
            "jsont( { \"id\": \"ntp-a1.nict.go.jp\",\n\"it\": 1232963971.248,\n\
             \"st\": 1232963971.920,\n\"leap\": 33,\n\"next\": 1230768000,\n\"step\": 1 } )"
        );
    }

    #[test]
    fn json_body_is_the_same_object_and_escapes_the_id() {
        let fields = ReplyFields {
            id: "a\"<b>",
            it: Timestamp::ZERO,
            ..documented_fields()
        };
        let (body, _) = reply_template(&fields, fields.rt, None).stamp(fields.rt);
        let body = String::from_utf8(body).unwrap();
        assert_eq!(
            body,
            "{ \"id\": \"a\\\"\\u003cb\\u003e\",\n\"it\": 0.000,\n\"st\": 1232963971.920,\n\
             \"leap\": 33,\n\"next\": 1230768000,\n\"step\": 1 }"
        );
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["id"], "a\"<b>");
        // The two client idioms of the field, on the JSONP body.
        let (jsonp, _) = reply_template(&fields, fields.rt, Some("jsont")).stamp(fields.rt);
        let jsonp = String::from_utf8(jsonp).unwrap();
        let cut = &jsonp[7..jsonp.len() - 2];
        assert_eq!(serde_json::from_str::<serde_json::Value>(cut).unwrap(), v);
        let stripped = jsonp.replace("jsont(", "").replace(')', "");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&stripped).unwrap(),
            v
        );
    }

    #[test]
    fn ntp_and_posix_values() {
        assert_eq!(posix_seconds(T), "1232963971.248");
        assert_eq!(ntp_seconds(T), "3441952771.248");
    }

    #[test]
    fn html_page_matches_nict_and_escapes_the_id() {
        let page = String::from_utf8(html_page("ntp-a1.nict.go.jp", "1232963971.248")).unwrap();
        assert_eq!(
            page,
            "<HTML>\n<HEAD><TITLE>ntp-a1.nict.go.jp</TITLE></HEAD>\n<BODY>\n1232963971.248\n</BODY>\n</HTML>\n"
        );
        let page = String::from_utf8(html_page("<script>", "1")).unwrap();
        assert!(page.contains("&lt;script&gt;") && !page.contains("<script>"));
    }

    #[test]
    fn zone_names() {
        for ok in [
            "Asia/Tokyo",
            "UTC",
            "Etc/GMT+9",
            "America/Argentina/Buenos_Aires",
            "GMT0",
        ] {
            assert_eq!(validate_zone_name(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "../etc/passwd",
            "Asia//Tokyo",
            "/Asia",
            "Asia/",
            "a b",
            "Asia/.x",
            "<x>",
        ] {
            assert!(validate_zone_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn human_time_in_zones() {
        // 2009-01-26 09:59:31 UTC
        assert_eq!(
            human_time(T, "UTC").unwrap(),
            "Mon Jan 26 09:59:31 2009 UTC"
        );
        assert_eq!(
            human_time(T, "Asia/Tokyo").unwrap(),
            "Mon Jan 26 18:59:31 2009 JST"
        );
        assert_eq!(
            human_time(T, "Europe/Paris").unwrap(),
            "Mon Jan 26 10:59:31 2009 CET"
        );
        assert!(matches!(
            human_time(T, "Mars/Olympus"),
            Err(ZoneError::Unknown(_))
        ));
    }
}
