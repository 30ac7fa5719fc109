//! The `[[output]]` tables: what each may say (`type`, `unit`, `perm`, `path`) and every check
//! on them, into the one output type [`OutputConfig`].

use std::collections::HashMap;
use std::path::PathBuf;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use toml::de::DeValue;

use super::Check;
use crate::config::locate;
use crate::refclock::{shm, OutputConfig};

/// An `[[output]]` as written: the keys of every type, sorted out by [`Check::output`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OutputFile {
    #[serde(rename = "type")]
    kind: String,
    unit: Option<i64>,
    perm: Option<Perm>,
    path: Option<PathBuf>,
}

/// `perm` as written: `"0600"` or an integer (`0o600`).
enum Perm {
    Text(String),
    Number(i64),
}

impl<'de> Deserialize<'de> for Perm {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Perm;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("octal permissions, such as \"0600\" or 0o600")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Perm, E> {
                Ok(Perm::Text(s.to_owned()))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Perm, E> {
                Ok(Perm::Number(n))
            }
        }
        d.deserialize_any(V)
    }
}

/// The output types, for messages.
const OUTPUT_TYPES: [&str; 2] = ["shm", "sock"];

impl Check<'_, '_> {
    pub(super) fn output(&mut self, i: usize, o: OutputFile) -> Option<OutputConfig> {
        let at = |key: &str| format!("output.{i}.{key}");
        let misplaced = |check: &mut Self, key: &str, kind: &str, takes: &str| {
            check.error(
                &at(key),
                format!("`{key}` does not apply to type = \"{kind}\", which takes {takes}"),
            )
        };
        match o.kind.as_str() {
            "shm" => {
                if o.path.is_some() {
                    misplaced(self, "path", "shm", "`unit` and `perm`");
                }
                let Some(unit) = o.unit else {
                    if self.dropped.contains(&at("unit")) {
                        return None; // Its wrong value is reported.
                    }
                    self.error(
                        &at("type"),
                        "missing key `unit` in this shm [[output]]: add unit = 2 (chrony: \
                         `refclock SHM 2`, ntpd: `server 127.127.28.2`)"
                            .to_owned(),
                    );
                    return None;
                };
                let Ok(unit) = u8::try_from(unit) else {
                    self.error(
                        &at("unit"),
                        format!("unit = {unit}: SHM units are 0 to 255"),
                    );
                    return None;
                };
                let perm = o.perm.and_then(|p| self.perm(&at("perm"), p));
                if !self.dropped.contains(&at("perm")) {
                    self.shm_warnings(i, unit, perm);
                }
                Some(OutputConfig::Shm { unit, perm })
            }
            "sock" => {
                for key in ["unit", "perm"] {
                    if self.written(&at(key)) {
                        misplaced(self, key, "sock", "`path`");
                    }
                }
                let Some(path) = o.path else {
                    if self.dropped.contains(&at("path")) {
                        return None; // Its wrong value is reported.
                    }
                    self.error(
                        &at("type"),
                        "missing key `path` in this sock [[output]]: add the socket of chrony's \
                         `refclock SOCK PATH`, e.g. path = \"/run/chrony.webntp.sock\""
                            .to_owned(),
                    );
                    return None;
                };
                if !path.is_absolute() {
                    self.error(
                        &at("path"),
                        format!(
                            "{} is a relative path: write the absolute path chrony's `refclock \
                             SOCK` line names",
                            path.display()
                        ),
                    );
                }
                Some(OutputConfig::Sock { path })
            }
            other => {
                self.error(
                    &at("type"),
                    format!(
                        "unknown output type `{other}`, {}",
                        locate::suggest(other, &OUTPUT_TYPES)
                    ),
                );
                None
            }
        }
    }

    /// `perm`: octal, owner read and write, nothing above 0777.
    fn perm(&mut self, at: &str, perm: Perm) -> Option<u32> {
        let value = match perm {
            Perm::Text(s) => {
                let digits = s.strip_prefix("0o").unwrap_or(&s);
                match u32::from_str_radix(digits, 8) {
                    Ok(v) if !digits.is_empty() => Some(v),
                    _ => None,
                }
            }
            Perm::Number(n) => {
                let decimal = matches!(
                    self.doc.get(at).map(|v| v.get_ref()),
                    Some(DeValue::Integer(i)) if i.radix() == 10
                );
                if decimal && n > 7 {
                    self.error(
                        at,
                        format!(
                            "perm = {n} is a decimal number: write permissions in octal, \
                             perm = \"0{n}\" or perm = 0o{n}"
                        ),
                    );
                    return None;
                }
                u32::try_from(n).ok()
            }
        };
        match value {
            Some(v) if v <= 0o777 && v & 0o600 == 0o600 => Some(v),
            Some(v) if v <= 0o777 => {
                self.error(
                    at,
                    format!(
                        "perm = \"{v:04o}\" does not let webntpd (the owner) read and write the \
                         segment: use \"0600\", or \"0644\" for readers running as another user"
                    ),
                );
                None
            }
            _ => {
                self.error(
                    at,
                    "perm must be octal permissions from \"0600\" to \"0777\", e.g. perm = \"0600\""
                        .to_owned(),
                );
                None
            }
        }
    }

    fn shm_warnings(&mut self, i: usize, unit: u8, given: Option<u32>) {
        if unit < 2 {
            self.warn(
                &format!("output.{i}.unit"),
                format!(
                    "SHM unit {unit}: ntpd and ntpsec create units 0 and 1 for root only, so \
                     webntpd must run as root to write it; units 2 and up avoid that",
                ),
            );
        }
        let perm = given.unwrap_or_else(|| shm::default_perm(unit));
        if perm & 0o022 != 0 {
            let at = if given.is_some() { "perm" } else { "unit" };
            let why = if given.is_some() {
                ""
            } else {
                ", ntpd's default for units 2 and up"
            };
            self.warn(
                &format!("output.{i}.{at}"),
                format!(
                    "SHM unit {unit} will be writable by other users (mode {perm:04o}{why}): any \
                     local user can then inject time; set perm = \"0600\" when the reader runs \
                     as root (chronyd, ntpd do), or use a sock output",
                ),
            );
        }
    }

    /// One writer per SHM unit and per SOCK path.
    pub(super) fn duplicate_outputs(&mut self, outputs: &[(usize, OutputConfig)]) {
        let mut units = HashMap::new();
        let mut paths = HashMap::new();
        for (i, o) in outputs {
            let (first, what, key) = match o {
                OutputConfig::Shm { unit, .. } => {
                    (units.insert(*unit, *i), format!("SHM unit {unit}"), "unit")
                }
                OutputConfig::Sock { path } => (
                    paths.insert(path.clone(), *i),
                    format!("socket {}", path.display()),
                    "path",
                ),
            };
            if let Some(first) = first {
                let line = self.line(&format!("output.{first}"));
                self.error(
                    &format!("output.{i}.{key}"),
                    format!(
                        "{what} is already written by the [[output]]{line}: each needs its own \
                         {key}; pick another or remove one"
                    ),
                );
            }
        }
    }
}
