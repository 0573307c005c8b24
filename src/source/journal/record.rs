//! One journal entry as `journalctl --output=json` prints it, seen the way
//! Promtail sees it.
//!
//! journalctl's JSON (one object per line): every field is a JSON string; a
//! value that is not valid UTF-8 (or is binary) is an array of byte values
//! (`"MESSAGE":[98,105,110,255,0]`); a field that occurs several times in
//! the entry is an array of such values (`"TAG":["a","b"]`). `null` stands
//! for a value over journalctl's size threshold (never with `--all`, which
//! [`super::command`] always passes).
//!
//! What Promtail does, and so what this does (Promtail's
//! `clients/pkg/promtail/targets/journal/journaltarget.go` reading through
//! go-systemd's `sdjournal.Journal.GetEntry`):
//! - `GetEntry` enumerates the entry's data objects into a
//!   `map[string]string`, `entry.Fields[name] = value`: a repeated field
//!   keeps its **last** value (in enumeration order, which is the order
//!   journalctl prints the array in). Here: the last element of the array.
//! - The address fields (`__CURSOR`, `__REALTIME_TIMESTAMP`,
//!   `__MONOTONIC_TIMESTAMP`, and `__SEQNUM`/`__SEQNUM_ID` from systemd 254)
//!   are not data objects: `GetEntry` puts them in separate struct fields,
//!   so they are neither labels nor part of the `json: true` line. Here:
//!   every key starting with `__` is kept out of [`Record::fields`].
//! - Labels: `__journal_<name lower-cased>` per field, plus
//!   `__journal_priority_keyword` when `PRIORITY` is present (0–7 → emerg,
//!   alert, crit, error, warning, notice, info, debug; any other value as
//!   is).
//! - The line: `MESSAGE` (an entry without one is not shipped), or with
//!   `json: true` the fields map marshalled by json-iterator's
//!   standard-library-compatible config: keys sorted, HTML characters
//!   escaped (`\u003c`), no address fields.
//! - The timestamp: `__REALTIME_TIMESTAMP` (µs since the epoch).
//! - Binary values: cgo's `GoStringN` keeps the raw bytes; they reach Loki
//!   as invalid UTF-8 turned into U+FFFD. Here: decoded lossily when parsed
//!   (and counted in [`Record::lossy`]). One difference remains in `json:
//!   true` lines: Go writes an invalid byte as the escape `\ufffd`, this
//!   writes the character itself (the same JSON value).
//!
//! Must never: panic on any input. Anything that is not a journalctl JSON
//! object with a `__CURSOR` and a `__REALTIME_TIMESTAMP` is a [`ParseError`]
//! saying what was wrong.

use crate::entry::Timestamp;
use crate::pipeline::stages::pack::{write_json_string, JsonFlavor};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

/// One parsed journal entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Data fields (no `__` address fields), name → value, sorted by name;
    /// a repeated field holds its last value.
    pub fields: BTreeMap<String, String>,
    /// `__CURSOR`: where to resume after this entry.
    pub cursor: String,
    /// `__REALTIME_TIMESTAMP`.
    pub timestamp: Timestamp,
    /// Values that were byte arrays with invalid UTF-8 (decoded lossily).
    pub lossy: u32,
    /// Fields that occurred more than once (only the last value kept).
    pub repeated: u32,
}

/// Why a line is not a journal record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Not a JSON object (serde_json's message).
    NotJson(String),
    /// The JSON is not an object.
    NotObject,
    /// A required address field is absent.
    Missing(&'static str),
    /// `__REALTIME_TIMESTAMP` is not a number of microseconds.
    BadTimestamp(String),
    /// A field's value is none of journalctl's shapes.
    BadValue { field: String, why: &'static str },
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::NotJson(e) => write!(f, "journalctl output is not JSON: {e}"),
            ParseError::NotObject => write!(f, "journalctl output is not a JSON object"),
            ParseError::Missing(k) => write!(f, "journal entry has no {k}"),
            ParseError::BadTimestamp(v) => {
                write!(f, "journal entry has a bad __REALTIME_TIMESTAMP {v:?}")
            }
            ParseError::BadValue { field, why } => {
                write!(f, "journal field {field:?}: {why}")
            }
        }
    }
}

impl std::error::Error for ParseError {}

/// The keyword Promtail gives a `PRIORITY` value (the value itself when it
/// is not 0–7).
pub fn priority_keyword(p: &str) -> &str {
    match p {
        "0" => "emerg",
        "1" => "alert",
        "2" => "crit",
        "3" => "error",
        "4" => "warning",
        "5" => "notice",
        "6" => "info",
        "7" => "debug",
        other => other,
    }
}

/// One value: `Ok((text, lossy))`.
fn scalar(field: &str, v: &Value) -> Result<(String, bool), ParseError> {
    let bad = |why| ParseError::BadValue {
        field: field.to_string(),
        why,
    };
    match v {
        Value::String(s) => Ok((s.clone(), false)),
        Value::Array(items) => {
            let mut bytes = Vec::with_capacity(items.len());
            for it in items {
                let b = it
                    .as_u64()
                    .and_then(|n| u8::try_from(n).ok())
                    .ok_or_else(|| bad("byte array holds something other than 0..=255"))?;
                bytes.push(b);
            }
            match String::from_utf8(bytes) {
                Ok(s) => Ok((s, false)),
                Err(e) => Ok((String::from_utf8_lossy(e.as_bytes()).into_owned(), true)),
            }
        }
        // journalctl never prints these; keep their text rather than fail.
        Value::Number(n) => Ok((n.to_string(), false)),
        Value::Bool(b) => Ok((b.to_string(), false)),
        Value::Null | Value::Object(_) => Err(bad("not a string or byte array")),
    }
}

/// True if `v` is an array of values (a repeated field) rather than one
/// byte array: it holds a string or an array.
fn is_repeated(v: &Value) -> bool {
    match v {
        Value::Array(items) => items
            .iter()
            .any(|i| matches!(i, Value::String(_) | Value::Array(_))),
        _ => false,
    }
}

impl Record {
    /// Parses one line of `journalctl --output=json` (without its newline).
    pub fn parse(line: &[u8]) -> Result<Record, ParseError> {
        let v: Value =
            serde_json::from_slice(line).map_err(|e| ParseError::NotJson(e.to_string()))?;
        let Value::Object(map) = v else {
            return Err(ParseError::NotObject);
        };
        let mut fields = BTreeMap::new();
        let mut cursor = None;
        let mut realtime = None;
        let (mut lossy, mut repeated) = (0u32, 0u32);
        for (name, v) in &map {
            if name.starts_with("__") {
                match name.as_str() {
                    "__CURSOR" => cursor = v.as_str().map(str::to_string),
                    "__REALTIME_TIMESTAMP" => realtime = Some(v),
                    _ => {}
                }
                continue;
            }
            if v.is_null() {
                // Over the size threshold (without `--all`): no value.
                continue;
            }
            let last = if is_repeated(v) {
                repeated += 1;
                let Value::Array(items) = v else { continue };
                let mut last = None;
                for it in items {
                    let (s, l) = scalar(name, it)?;
                    lossy += u32::from(l);
                    last = Some(s);
                }
                last
            } else {
                let (s, l) = scalar(name, v)?;
                lossy += u32::from(l);
                Some(s)
            };
            if let Some(s) = last {
                fields.insert(name.clone(), s);
            }
        }
        let cursor = cursor.ok_or(ParseError::Missing("__CURSOR"))?;
        let realtime = realtime.ok_or(ParseError::Missing("__REALTIME_TIMESTAMP"))?;
        let micros = match realtime {
            Value::String(s) => s.parse::<u64>().ok(),
            Value::Number(n) => n.as_u64(),
            _ => None,
        }
        .ok_or_else(|| ParseError::BadTimestamp(realtime.to_string()))?;
        let nanos = i64::try_from(micros)
            .unwrap_or(i64::MAX)
            .saturating_mul(1000);
        Ok(Record {
            fields,
            cursor,
            timestamp: Timestamp(nanos),
            lossy,
            repeated,
        })
    }

    /// `MESSAGE`, if the entry has one.
    pub fn message(&self) -> Option<&str> {
        self.fields.get("MESSAGE").map(String::as_str)
    }

    /// The line Promtail ships: `MESSAGE` (`None` without one: Promtail
    /// skips the entry), or with `json` every data field as one JSON object.
    pub fn line(&self, json: bool) -> Option<String> {
        if json {
            Some(self.to_json())
        } else {
            self.message().map(str::to_string)
        }
    }

    /// The fields as json-iterator marshals Promtail's `map[string]string`.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(
            2 + self
                .fields
                .iter()
                .map(|(k, v)| k.len() + v.len() + 6)
                .sum::<usize>(),
        );
        out.push('{');
        for (i, (k, v)) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_json_string(&mut out, k, JsonFlavor::Jsoniter);
            out.push(':');
            write_json_string(&mut out, v, JsonFlavor::Jsoniter);
        }
        out.push('}');
        out
    }

    /// Promtail's discovered labels: `__journal_<name lower-cased>` per
    /// field, plus `__journal_priority_keyword`. Sorted by field name.
    pub fn journal_labels(&self) -> Vec<(String, String)> {
        let mut out = Vec::with_capacity(self.fields.len() + 1);
        for (k, v) in &self.fields {
            if k == "PRIORITY" {
                out.push((
                    "__journal_priority_keyword".to_string(),
                    priority_keyword(v).to_string(),
                ));
            }
            out.push((format!("__journal_{}", k.to_lowercase()), v.clone()));
        }
        out
    }
}

/// The realtime timestamp a cursor names (its `t=` part, hex µs), so a
/// saved cursor's age can be told without reading the journal.
pub fn cursor_realtime(cursor: &str) -> Option<Timestamp> {
    let hex = cursor.split(';').find_map(|p| p.strip_prefix("t="))?;
    let micros = u64::from_str_radix(hex, 16).ok()?;
    Some(Timestamp(i64::try_from(micros).ok()?.checked_mul(1000)?))
}

#[cfg(test)]
mod tests;
