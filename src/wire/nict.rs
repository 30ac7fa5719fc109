//! NICT's text endpoints: `/cgi-bin/ntp`, `/cgi-bin/jst` and `/cgi-bin/time`.
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

use super::timestamp::Timestamp;
use super::NTP_UNIX_OFFSET_SECS;

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
