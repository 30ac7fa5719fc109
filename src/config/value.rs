//! Values written the same way on the command line and in the configuration file: durations,
//! browser origins, and the serde glue that reads them (and anything with a `FromStr`) from
//! TOML.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, DeserializeSeed, Deserializer, SeqAccess, Visitor};

/// A positive duration in humantime syntax: `500ms`, `10s`, `5m`, `1h 30m`, `1d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("`{s}`: {e} (expected e.g. 500ms, 10s, 5m, 1d)"))?;
    if d.is_zero() {
        return Err(format!("`{s}`: must be longer than zero"));
    }
    Ok(d)
}

/// A browser origin for CORS: `*`, or `scheme://host[:port]` with no path.
pub fn parse_origin(s: &str) -> Result<String, String> {
    if s == "*" {
        return Ok(s.to_string());
    }
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .ok_or_else(|| {
            format!("`{s}`: an origin is scheme://host[:port], e.g. https://example.org")
        })?;
    if rest.is_empty() || rest.contains('/') || rest.chars().any(|c| c.is_whitespace()) {
        return Err(format!(
            "`{s}`: an origin is scheme://host[:port] with no path, e.g. https://example.org"
        ));
    }
    Ok(s.to_string())
}

/// `humantime::format_duration`, for messages: `1m 4s`, `500ms`.
pub(crate) fn show(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// serde: a duration written as a humantime string (`"64s"`).
pub(crate) fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    Parsed::new(parse_duration, DURATION).deserialize(d)
}

/// A duration or `off` (zero), for clap: `"1s"`, `"off"`.
pub fn parse_duration_or_off(s: &str) -> Result<Duration, String> {
    s.parse::<DurationOrOff>().map(|d| d.0)
}

/// serde: a duration or `off` (zero).
pub(crate) fn duration_or_off<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    from_str::<D, DurationOrOff>(d).map(|d| d.0)
}

/// serde: an optional duration written as a humantime string.
pub(crate) fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

/// serde: a `FromStr` value written as a string.
pub(crate) fn from_str<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr<Err = String>,
{
    Parsed::new(T::from_str, "a string").deserialize(d)
}

/// serde: one listening address (`[metrics] listen`), not a list.
pub(crate) fn one_address<'de, D>(d: D) -> Result<crate::server::ListenAddr, D::Error>
where
    D: Deserializer<'de>,
{
    Parsed::new(
        crate::server::ListenAddr::from_str,
        "one address in quotes, such as \"127.0.0.1:9975\" (not a list: the metrics have \
         one listener)",
    )
    .deserialize(d)
}

/// serde: a list of `FromStr` values, or a single one written without brackets.
pub(crate) fn list_from_str<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr<Err = String>,
{
    d.deserialize_any(ListOf(Parsed::new(T::from_str, "a string")))
}

/// serde: an optional list of `FromStr` values (see [`list_from_str`]).
pub(crate) fn opt_list_from_str<'de, D, T>(d: D) -> Result<Option<Vec<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr<Err = String>,
{
    list_from_str(d).map(Some)
}

/// serde: an optional `FromStr` value written as a string.
pub(crate) fn opt_from_str<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr<Err = String>,
{
    from_str(d).map(Some)
}

/// A duration, or `off` (zero): `"1s"`, `"off"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DurationOrOff(pub Duration);

impl FromStr for DurationOrOff {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "off" {
            return Ok(DurationOrOff(Duration::ZERO));
        }
        parse_duration(s)
            .map(DurationOrOff)
            .map_err(|e| format!("{e}, or \"off\""))
    }
}

/// serde: a list of strings, or a single one written without brackets.
pub(crate) fn string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    d.deserialize_any(ListOf(Parsed::new(|s| Ok(s.to_owned()), "a string")))
}

const DURATION: &str = "a duration in quotes, such as \"64s\" or \"500ms\"";

/// Reads one string and parses it; errors are reported at that string.
struct Parsed<T> {
    parse: fn(&str) -> Result<T, String>,
    expecting: &'static str,
}

impl<T> Parsed<T> {
    fn new(parse: fn(&str) -> Result<T, String>, expecting: &'static str) -> Self {
        Parsed { parse, expecting }
    }
}

impl<T> Clone for Parsed<T> {
    fn clone(&self) -> Self {
        Parsed::new(self.parse, self.expecting)
    }
}

impl<'de, T> DeserializeSeed<'de> for Parsed<T> {
    type Value = T;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        d.deserialize_any(self)
    }
}

impl<T> Visitor<'_> for Parsed<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<T, E> {
        (self.parse)(s).map_err(E::custom)
    }
}

/// Reads a string or a list of strings, parsing each.
struct ListOf<T>(Parsed<T>);

impl<'de, T> Visitor<'de> for ListOf<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} or a list of them", self.0.expecting)
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Vec<T>, E> {
        self.0.visit_str(s).map(|v| vec![v])
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(self.0.clone())? {
            out.push(v);
        }
        Ok(out)
    }
}
