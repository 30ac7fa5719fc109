//! From the parsed document to the file's tables, reporting every error in one run: each
//! table and each `[[source]]`/`[[output]]` entry is read on its own, so a mistake in one does
//! not hide the others. Within a table, every unknown key is reported at once (the keys a
//! table takes are those its derived `Deserialize` names); then the table is deserialized,
//! and each key whose value is wrong is reported, left out and the table read again, until it
//! reads. A key left out takes its default; [`Dropped`] remembers it, so that checks combining
//! it with other keys are skipped rather than reporting a consequence of the default.

use std::cell::Cell;
use std::collections::HashSet;
use std::path::Path;

use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

use super::locate::{self, Doc};
use super::Diagnostic;

/// Most errors printed: past them, one line says that there are more.
pub(super) const MAX_ERRORS: usize = 100;

/// The top-level keys, in the order the messages list them.
pub(super) const TOP_LEVEL: [&str; 8] = [
    "source",
    "output",
    "server",
    "selection",
    "sanity",
    "log",
    "status",
    "metrics",
];

/// Key paths (`source.2.poll`) whose values were wrong, and entries (`source.2`) or tables
/// (`server`) that could not be read at all.
#[derive(Debug, Default)]
pub(super) struct Dropped(HashSet<String>);

impl Dropped {
    /// Whether `at` (a key path, an entry or a table) was left out.
    pub(super) fn contains(&self, at: &str) -> bool {
        self.0.contains(at)
    }

    /// Whether any of `keys` of the table or entry `at` was left out.
    pub(super) fn any(&self, at: &str, keys: &[&str]) -> bool {
        keys.iter().any(|k| self.contains(&format!("{at}.{k}")))
    }
}

/// Reads the tables of one document, collecting errors.
pub(super) struct Reader<'c, 'a> {
    pub(super) doc: &'c Doc<'a>,
    pub(super) path: &'c Path,
    pub(super) errors: Vec<Diagnostic>,
    pub(super) dropped: Dropped,
}

impl<'a> Reader<'_, 'a> {
    /// Whether more errors than are printed were found: reading stops there, so that a
    /// pathological file (a megabyte of wrong keys) costs no more than the errors shown.
    pub(super) fn full(&self) -> bool {
        self.errors.len() > MAX_ERRORS
    }

    fn error(&mut self, message: String, offset: Option<usize>) {
        self.errors.push(Diagnostic {
            path: self.path.to_path_buf(),
            location: offset.map(|o| self.doc.location(o)),
            message,
        });
    }

    fn de_error(&mut self, e: &toml::de::Error) {
        let (message, location) = locate::de_error(self.doc, e);
        self.errors.push(Diagnostic {
            path: self.path.to_path_buf(),
            location,
            message,
        });
    }

    /// Report every key of `table` (at key path `at`) that is not in `known`, and remove it.
    /// Returns the known keys suggested for them (`url` for `urll`).
    pub(super) fn unknown_keys(
        &mut self,
        at: &str,
        table: &mut DeTable<'a>,
        known: &[&str],
    ) -> Vec<String> {
        let mut meant = Vec::new();
        let mut unknown: Vec<(String, usize)> = table
            .keys()
            .filter(|k| !known.contains(&k.get_ref().as_ref()))
            .map(|k| (k.get_ref().to_string(), k.span().start))
            .collect();
        // In file order, so that the errors kept when reading stops are the first ones.
        unknown.sort_by_key(|(_, offset)| *offset);
        for (key, offset) in unknown {
            if self.full() {
                break;
            }
            let message = format!(
                "unknown key `{key}` in {}, {}",
                locate::table_name(&locate::steps(at)),
                locate::suggest(&key, known)
            );
            self.error(message, Some(offset));
            table.remove(key.as_str());
            meant.extend(locate::closest(&key, known).map(str::to_owned));
        }
        meant
    }

    /// Read `value`, written at key path `at` (`source.2`, `server`), as a `T`: every unknown
    /// key and every wrong value reported, each wrong one left out and recorded in
    /// [`Reader::dropped`]. `None` (and `at` recorded) when it cannot be read at all: not a
    /// table, or a required key missing.
    pub(super) fn read<T: DeserializeOwned>(
        &mut self,
        at: &str,
        mut value: Spanned<DeValue<'a>>,
    ) -> Option<T> {
        // Keys left out, or misspelt: their absence is not worth a second message.
        let mut left_out: Vec<String> = Vec::new();
        if let (Some(fields), DeValue::Table(table)) = (fields_of::<T>(), value.get_mut()) {
            left_out = self.unknown_keys(at, table, fields);
        }
        // Each round either reads or removes one key: at most one more round than keys.
        loop {
            if self.full() {
                self.dropped.0.insert(at.to_owned());
                return None;
            }
            let e = match T::deserialize(ValueDeserializer::from(value.clone())) {
                Ok(t) => return Some(t),
                Err(e) => e,
            };
            if let Some(missing) = e.message().strip_prefix("missing field `") {
                // A required key we left out, or one misspelt, was reported already, as what
                // it really is.
                let key = missing.trim_end_matches('`');
                if !left_out.iter().any(|k| k == key) {
                    self.de_error(&e);
                }
                self.dropped.0.insert(at.to_owned());
                return None;
            }
            self.de_error(&e);
            let removed = match (value.get_mut(), e.span()) {
                (DeValue::Table(table), Some(span)) => {
                    locate::key_at(table, span.start).filter(|k| table.remove(k.as_str()).is_some())
                }
                _ => None,
            };
            let Some(key) = removed else {
                self.dropped.0.insert(at.to_owned());
                return None;
            };
            self.dropped.0.insert(format!("{at}.{key}"));
            left_out.push(key);
        }
    }
}

/// The keys the derived `Deserialize` of a struct takes, or `None` for anything else: it is
/// asked to deserialize from a deserializer that only notes the field names it is given.
fn fields_of<T: DeserializeOwned>() -> Option<&'static [&'static str]> {
    let fields = Cell::new(None);
    let _ = T::deserialize(FieldNames(&fields));
    fields.get()
}

struct FieldNames<'f>(&'f Cell<Option<&'static [&'static str]>>);

impl<'de> Deserializer<'de> for FieldNames<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.set(Some(fields));
        Err(de::Error::custom("field names noted"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Two {
        a: u8,
        #[serde(rename = "type")]
        kind: String,
    }

    #[test]
    fn the_field_names_of_a_struct_are_found_and_only_of_a_struct() {
        assert_eq!(fields_of::<Two>(), Some(&["a", "type"][..]));
        assert_eq!(fields_of::<Vec<Two>>(), None);
        assert_eq!(fields_of::<String>(), None);
    }
}
