//! Where things are in the file: byte offsets to lines and columns, key paths (`source.2.url`)
//! to the place they are written, and the other way round, so that every message can say
//! "line 12, column 1" and name the table it is about. Also turns the toml crate's syntax and
//! type errors into our messages, with the expected keys for an unknown one.

use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// A position in the file, both counted from 1; the column counts characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1, in characters.
    pub column: usize,
}

/// One step of a key path: a table key or an index into an array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    Key(String),
    Index(usize),
}

/// Key paths as written in code: `"source.2.url"` (numbers index arrays).
pub(crate) fn steps(path: &str) -> Vec<Step> {
    path.split('.')
        .filter(|s| !s.is_empty())
        .map(|s| match s.parse() {
            Ok(i) => Step::Index(i),
            Err(_) => Step::Key(s.to_owned()),
        })
        .collect()
}

/// The parsed document with every span, kept beside the typed configuration.
pub(crate) struct Doc<'a> {
    text: &'a str,
    root: Spanned<DeTable<'a>>,
    /// The byte offset where each line starts, so that placing a message costs a binary
    /// search, not a scan of the file (a 1 MiB file may hold tens of thousands of errors).
    lines: Vec<usize>,
}

impl<'a> Doc<'a> {
    /// Parse `text`; a syntax error comes back as a message and where it is.
    pub(crate) fn parse(text: &'a str) -> Result<Self, (String, Option<Location>)> {
        match DeTable::parse(text) {
            Ok(root) => Ok(Doc {
                text,
                root,
                lines: std::iter::once(0)
                    .chain(text.match_indices('\n').map(|(i, _)| i + 1))
                    .collect(),
            }),
            Err(e) => Err((
                syntax_message(e.message()),
                e.span().map(|s| location(text, s.start)),
            )),
        }
    }

    /// The document, for deserializing.
    pub(crate) fn root(&self) -> Spanned<DeTable<'a>> {
        self.root.clone()
    }

    /// The value at `path`, if it is written in the file.
    pub(crate) fn get(&self, path: &str) -> Option<&Spanned<DeValue<'a>>> {
        let mut steps = steps(path).into_iter();
        let Some(Step::Key(first)) = steps.next() else {
            return None;
        };
        let mut here = entry(self.root.get_ref(), &first)?.1;
        for step in steps {
            here = match (here.get_ref(), step) {
                (DeValue::Table(t), Step::Key(k)) => entry(t, &k)?.1,
                (DeValue::Array(a), Step::Index(i)) => a.get(i)?,
                _ => return None,
            };
        }
        Some(here)
    }

    /// Where `path` is written: its value, or (when it is not written) the nearest enclosing
    /// table that is; `None` when nothing on the path is written.
    pub(crate) fn locate(&self, path: &str) -> Option<Location> {
        let mut steps = steps(path);
        while !steps.is_empty() {
            let joined = join(&steps);
            if let Some(v) = self.get(&joined) {
                return Some(self.location(v.span().start));
            }
            steps.pop();
        }
        None
    }

    /// The key path of what is written at byte `offset`: the key or value there, with the
    /// tables and array entries leading to it.
    pub(crate) fn path_at(&self, offset: usize) -> Vec<Step> {
        let mut path = Vec::new();
        find_in_table(self.root.get_ref(), offset, &mut path);
        path
    }

    /// Line and column of byte `offset`.
    pub(crate) fn location(&self, offset: usize) -> Location {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.lines.partition_point(|&start| start <= offset);
        let start = self.lines.get(line.wrapping_sub(1)).copied().unwrap_or(0);
        Location {
            line: line.max(1),
            column: self
                .text
                .get(start..offset)
                .map_or(0, |s| s.chars().count())
                + 1,
        }
    }
}

/// The key of `table` whose key or value holds byte `offset`.
pub(crate) fn key_at(table: &DeTable<'_>, offset: usize) -> Option<String> {
    let mut path = Vec::new();
    find_in_table(table, offset, &mut path);
    match path.into_iter().next() {
        Some(Step::Key(k)) => Some(k),
        _ => None,
    }
}

fn entry<'d, 'a>(
    table: &'d DeTable<'a>,
    key: &str,
) -> Option<(
    &'d Spanned<toml::de::DeString<'a>>,
    &'d Spanned<DeValue<'a>>,
)> {
    table.iter().find(|(k, _)| k.get_ref() == key)
}

fn join(steps: &[Step]) -> String {
    steps
        .iter()
        .map(|s| match s {
            Step::Key(k) => k.clone(),
            Step::Index(i) => i.to_string(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

fn contains(span: &Range<usize>, offset: usize) -> bool {
    span.contains(&offset) || (span.is_empty() && span.start == offset)
}

/// Depth-first: tables opened with a `[header]` have the header as their span, not their
/// contents, so every child is searched.
fn find_in_table(table: &DeTable<'_>, offset: usize, path: &mut Vec<Step>) -> bool {
    for (k, v) in table.iter() {
        path.push(Step::Key(k.get_ref().to_string()));
        if contains(&k.span(), offset) || find_in_value(v, offset, path) {
            return true;
        }
        path.pop();
    }
    false
}

fn find_in_value(v: &Spanned<DeValue<'_>>, offset: usize, path: &mut Vec<Step>) -> bool {
    let found_inside = match v.get_ref() {
        DeValue::Table(t) => find_in_table(t, offset, path),
        DeValue::Array(a) => a.iter().enumerate().any(|(i, item)| {
            path.push(Step::Index(i));
            let found = find_in_value(item, offset, path);
            if !found {
                path.pop();
            }
            found
        }),
        _ => false,
    };
    found_inside || contains(&v.span(), offset)
}

/// Line and column (from 1, columns in characters) of byte `offset` in `text`.
pub(crate) fn location(text: &str, offset: usize) -> Location {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    Location {
        line: before.matches('\n').count() + 1,
        column: before[line_start..].chars().count() + 1,
    }
}

/// How a table is written in the file: `[[source]]`, `[server]`, `the top level`.
pub(crate) fn table_name(table: &[Step]) -> String {
    let keys: Vec<&str> = table
        .iter()
        .filter_map(|s| match s {
            Step::Key(k) => Some(k.as_str()),
            Step::Index(_) => None,
        })
        .collect();
    if keys.is_empty() {
        return "the top level".to_owned();
    }
    let name = keys.join(".");
    if matches!(table.last(), Some(Step::Index(_))) {
        format!("[[{name}]]")
    } else {
        format!("[{name}]")
    }
}

/// The toml parser's messages are terse; say what to do where we can.
fn syntax_message(message: &str) -> String {
    let hint = if message.contains("duplicate key") {
        ": each key may appear once per table (use [[double brackets]] for a list of tables)"
    } else if message.contains("string") && message.contains("unterminated")
        || message.contains("key with no value")
    {
        ": check the quotes and the `=` on this line"
    } else {
        ""
    };
    format!("invalid TOML: {message}{hint}")
}

/// A deserialization error (wrong type, unknown key, missing key, bad value) as a message
/// naming the key and its table, and where it is.
pub(crate) fn de_error(doc: &Doc<'_>, err: &toml::de::Error) -> (String, Option<Location>) {
    let message = err.message();
    let Some(span) = err.span() else {
        return (message.to_owned(), None);
    };
    let mut path = doc.path_at(span.start);
    let loc = Some(doc.location(span.start));
    if let Some(unknown) = message.strip_prefix("unknown field `") {
        // "unknown field `urll`, expected `url` or `mode`" (serde's wording).
        let (key, expected) = unknown.split_once('`').unwrap_or((unknown, ""));
        path.pop();
        let msg = format!(
            "unknown key `{key}` in {}, {}",
            table_name(&path),
            suggest(key, &backticked(expected))
        );
        return (msg, loc);
    }
    if let Some(missing) = message.strip_prefix("missing field `") {
        let key = missing.trim_end_matches('`');
        return (
            format!(
                "missing key `{key}` in {}: add `{key} = ...`",
                table_name(&path)
            ),
            loc,
        );
    }
    let Some(Step::Key(key)) = path
        .iter()
        .rev()
        .find(|s| matches!(s, Step::Key(_)))
        .cloned()
    else {
        return (message.to_owned(), loc);
    };
    while let Some(last) = path.pop() {
        if last == Step::Key(key.clone()) {
            break;
        }
    }
    let message = match message.strip_prefix("unknown variant `") {
        // "unknown variant `inf`, expected one of `error`, `warn`, ..." (serde's wording).
        Some(rest) => {
            let (value, expected) = rest.split_once('`').unwrap_or((rest, ""));
            let expected = suggest(value, &backticked(expected));
            format!("unknown value `{value}`, {expected}")
        }
        None => message.to_owned(),
    };
    let mut msg = if path.is_empty() {
        format!("`{key}`: {message}")
    } else {
        format!("`{key}` in {}: {message}", table_name(&path))
    };
    if message.contains("expected a sequence") && matches!(key.as_str(), "source" | "output") {
        msg.push_str(&format!(
            "; write [[{key}]] with two brackets: each {key} is one entry of a list"
        ));
    }
    (msg, loc)
}

/// The names in backticks in serde's "expected `a`, `b` or `c`".
fn backticked(s: &str) -> Vec<&str> {
    s.split('`').skip(1).step_by(2).collect()
}

/// "expected `url`" when one key is close to what was written, else the whole list.
pub(crate) fn suggest(written: &str, expected: &[&str]) -> String {
    if let Some(close) = closest(written, expected) {
        return format!("expected `{close}`");
    }
    match expected {
        [] => "this table takes no keys".to_owned(),
        [one] => format!("expected `{one}`"),
        many => format!(
            "expected one of {}",
            many.iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The candidate nearest to `written`, if it is near enough to be what was meant: a
/// misspelling, a different case, a word with a few letters more or less. Similarity is
/// Jaro-Winkler, which favours a shared beginning; 0.8 is about "one or two letters off".
pub(crate) fn closest<'c>(written: &str, candidates: &[&'c str]) -> Option<&'c str> {
    let written = written.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(&written, c), *c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}
