//! What several stages share: reading a stage's `source` (an extracted
//! value, or the line itself), Loki's rules for label names, and the list
//! of label names `labelallow` and `labeldrop` take ([`NameList`]).
//!
//! Must never: allocate when the line itself is the source.

use crate::entry::Entry;
use serde::Deserialize;
use std::borrow::Cow;

/// A stage's list of label names (`- labelallow: [a, b]`). An empty map
/// (`{}`) reads as an empty list, which [`NameList::required`] refuses.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NameList(pub Vec<String>);

impl<'de> Deserialize<'de> for NameList {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            List(Vec<String>),
            Map(std::collections::BTreeMap<String, serde::de::IgnoredAny>),
        }
        match Form::deserialize(d)? {
            Form::List(l) => Ok(NameList(l)),
            Form::Map(m) if m.is_empty() => Ok(NameList(Vec::new())),
            Form::Map(_) => Err(serde::de::Error::custom("expected a list of label names")),
        }
    }
}

impl NameList {
    /// The names of stage `stage`'s list; Promtail's error if it is absent
    /// or empty.
    pub fn required(c: Option<&NameList>, stage: &str) -> Result<Vec<Box<str>>, String> {
        match c {
            Some(c) if !c.0.is_empty() => Ok(c.0.iter().map(|n| n.as_str().into()).collect()),
            _ => Err(format!("{stage} stage config cannot be empty")),
        }
    }
}

/// The text a stage with a `source` option works on: the extracted value
/// `source` as a string (Promtail's `getString`), or the line when `source`
/// is unset. `None`: the source is absent or not a string-like value
/// (Promtail skips the stage then, logging at debug level).
pub fn source_text<'a>(e: &'a Entry, source: Option<&str>) -> Option<Cow<'a, str>> {
    match source {
        None => Some(Cow::Borrowed(e.line.as_str())),
        Some(key) => e.extracted.get_string(key).map(Cow::Owned),
    }
}

/// A valid Loki/Prometheus label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn valid_label_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ack::Ack;
    use crate::entry::Timestamp;
    use crate::labels::LabelSet;
    use crate::pipeline::Value;

    #[test]
    fn source_is_the_line_or_an_extracted_string() {
        let mut e = Entry::new(LabelSet::empty(), Timestamp(0), "line".into(), Ack::none());
        e.extracted.insert("n", Value::from(2.5));
        assert_eq!(source_text(&e, None).as_deref(), Some("line"));
        assert_eq!(source_text(&e, Some("n")).as_deref(), Some("2.5"));
        assert_eq!(source_text(&e, Some("missing")), None);
    }

    #[test]
    fn label_names() {
        assert!(valid_label_name("a_1"));
        assert!(valid_label_name("_x"));
        assert!(!valid_label_name("1a"));
        assert!(!valid_label_name("a-b"));
        assert!(!valid_label_name(""));
    }
}
