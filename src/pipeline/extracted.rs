//! The extracted-data map: what parsing stages (`regex`, `json`, `logfmt`,
//! `cri`, …) find in a line and later stages (`labels`, `output`,
//! `timestamp`, `template`, …) read — Promtail's `map[string]interface{}`.
//!
//! Owns: [`Extracted`] (insertion-ordered, a few keys: a `Vec` beats a hash
//! map here and costs nothing when empty) and [`to_go_string`], Promtail's
//! `getString`: how a value reads as text.
//!
//! Values are [`serde_json::Value`]s restricted the way Promtail stores them:
//! strings, numbers (always `f64`, as Go's JSON decoding gives them), bools
//! and null; a stage that finds an object or an array stores it as its JSON
//! text. Promtail seeds the map with the entry's labels when the entry enters
//! the pipeline, so stages can read `filename` and friends; the [`Pipeline`]
//! does the same, and empties the map when the entry leaves it.
//!
//! Must never: hold values past the pipeline (the map is cleared before an
//! entry is batched).
//!
//! [`Pipeline`]: super::Pipeline

use crate::labels::LabelSet;
pub use serde_json::Value;

/// The extracted data of one entry. See the module docs.
///
/// Boxed and allocated only when a stage extracts something: every entry
/// carries one and entries are moved several times per line, so the empty
/// map is one pointer.
#[derive(Debug, Default, Clone)]
pub struct Extracted {
    // A thin pointer on purpose (see above): the extra allocation is paid
    // only by the rare entries that use it.
    #[allow(clippy::box_collection)]
    kv: Option<Box<Vec<(String, Value)>>>,
}

impl PartialEq for Extracted {
    fn eq(&self, other: &Self) -> bool {
        self.slice() == other.slice()
    }
}

impl Extracted {
    fn slice(&self) -> &[(String, Value)] {
        self.kv.as_deref().map_or(&[], Vec::as_slice)
    }

    pub fn is_empty(&self) -> bool {
        self.slice().is_empty()
    }

    pub fn len(&self) -> usize {
        self.slice().len()
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.slice().iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The value of `key` as text ([`to_go_string`]); `None` if absent or
    /// not convertible.
    pub fn get_string(&self, key: &str) -> Option<String> {
        self.get(key).and_then(to_go_string)
    }

    /// Sets `key` (replacing its value, keeping its place).
    pub fn insert(&mut self, key: &str, value: Value) {
        let kv = self.kv.get_or_insert_default();
        match kv.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value,
            None => kv.push((key.to_string(), value)),
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let kv = self.kv.as_mut()?;
        let i = kv.iter().position(|(k, _)| k == key)?;
        Some(kv.remove(i).1)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.slice().iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Promtail's start: every label of the entry, as a string.
    pub fn seed(&mut self, labels: &LabelSet) {
        for (k, v) in labels.iter() {
            self.insert(k, Value::String(v.to_string()));
        }
    }

    /// Frees the map.
    pub fn clear(&mut self) {
        self.kv = None;
    }
}

/// Promtail's `getString`: strings as they are, numbers in Go's shortest
/// `'f'` form (`1500`, `0.25`, never an exponent), bools as `true`/`false`;
/// null, objects and arrays are not strings (`None`).
pub fn to_go_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => n.as_f64().map(format_float),
        _ => None,
    }
}

/// Go's `strconv.FormatFloat(f, 'f', -1, 64)`: the shortest decimal that
/// reads back as `f`, without an exponent.
pub fn format_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    // Rust's Display for f64 is the shortest round-trip form, never with an
    // exponent — the same digits as Go's 'f', -1.
    let s = format!("{f}");
    if s == "-0" {
        "-0".into()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_strings() {
        assert_eq!(to_go_string(&Value::from(1500.0)), Some("1500".into()));
        assert_eq!(to_go_string(&Value::from(0.25)), Some("0.25".into()));
        assert_eq!(
            to_go_string(&Value::from(1e21)),
            Some("1000000000000000000000".into())
        );
        assert_eq!(to_go_string(&Value::from(true)), Some("true".into()));
        assert_eq!(to_go_string(&Value::from("x")), Some("x".into()));
        assert_eq!(to_go_string(&Value::Null), None);
        assert_eq!(to_go_string(&serde_json::json!({"a": 1})), None);
    }

    #[test]
    fn insert_keeps_order_and_replaces() {
        let mut e = Extracted::default();
        e.insert("a", Value::from("1"));
        e.insert("b", Value::from("2"));
        e.insert("a", Value::from("3"));
        let keys: Vec<&str> = e.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["a", "b"]);
        assert_eq!(e.get_string("a").as_deref(), Some("3"));
        assert_eq!(e.remove("a"), Some(Value::from("3")));
        assert_eq!(e.len(), 1);
    }

    #[test]
    fn seeded_from_labels() {
        let mut e = Extracted::default();
        e.seed(&LabelSet::new([("filename", "/x.log"), ("job", "j")]));
        assert_eq!(e.get_string("filename").as_deref(), Some("/x.log"));
        assert_eq!(e.get_string("job").as_deref(), Some("j"));
    }
}
