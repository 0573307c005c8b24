//! The `drop` stage: Promtail's `- drop: {source, expression, value,
//! older_than, longer_than, separator, drop_counter_reason}`.
//!
//! Owns: [`Config`], [`DropStage`], and the helper that reads a YAML scalar
//! as a string the way Promtail's `mapstructure.WeakDecode` does (shared
//! with `sampling`).
//!
//! What it does, as Promtail v3.6 does it: an entry is dropped when **every**
//! condition given holds, checked in this order:
//! - `longer_than` (a byte size: `1KB` = 1000, `1KiB` = 1024, go-humanize's
//!   units): the line is longer than that many bytes;
//! - `older_than` (a duration): the entry's timestamp is before now minus it;
//! - `source` alone (a key, or a list of keys): every key is in the extracted
//!   map, whatever its value;
//! - `expression` alone: the regex matches somewhere in the line;
//! - `source` with `expression` or `value`: the sources that are present,
//!   as text, joined with `separator` (default `;`) — absent ones are left
//!   out, a value that is not text (null) keeps the entry — match the regex
//!   (`expression`), or equal `value` exactly.
//!
//! At least one of `source`, `expression`, `older_than`, `longer_than` is
//! required; `value` needs `source` and excludes `expression`. Dropped
//! entries are counted in `logentry_dropped_lines_total{reason}` with
//! `drop_counter_reason` (default `drop_stage`; empty means the default).
//! Scalars given as numbers or bools are read as Promtail's weak decoding
//! reads them (`value: 500` is `"500"`, `true` is `"1"`).
//!
//! Deliberate difference: `older_than` also accepts Prometheus' `d`, `w`,
//! `y` units (a superset of Go's `ParseDuration`), but not negative values.
//!
//! Must never: drop an entry without [`Ctx::drop`] (which counts and
//! acknowledges it), or allocate per line when a single source is a string.

use super::BuildCtx;
use crate::config::duration;
use crate::entry::{Entry, Timestamp};
use crate::pipeline::extracted::{format_float, to_go_string};
use crate::pipeline::{Ctx, Stage, Value};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use std::borrow::Cow;
use std::fmt;

/// Whether the stage runs.
pub const HONOURED: bool = true;

/// Default `drop_counter_reason`.
pub const DEFAULT_REASON: &str = "drop_stage";

/// `drop:` options, with Promtail's names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Extracted key(s): a string or a list of strings.
    #[serde(default, deserialize_with = "de_source")]
    pub source: Option<Vec<String>>,
    /// Joins several sources (default `;`).
    #[serde(default, deserialize_with = "de_weak_string")]
    pub separator: Option<String>,
    /// Regex (RE2 syntax), unanchored.
    #[serde(default, deserialize_with = "de_weak_string")]
    pub expression: Option<String>,
    /// Exact value of the (joined) source.
    #[serde(default, deserialize_with = "de_weak_string")]
    pub value: Option<String>,
    /// A duration (`24h`).
    #[serde(default, deserialize_with = "de_weak_string")]
    pub older_than: Option<String>,
    /// A byte size (`8KB`).
    #[serde(default, deserialize_with = "de_weak_string")]
    pub longer_than: Option<String>,
    /// Label of `logentry_dropped_lines_total` (default `drop_stage`).
    #[serde(default, deserialize_with = "de_weak_string")]
    pub drop_counter_reason: Option<String>,
}

/// Builds the stage; errors name the offending key.
pub fn build(c: Option<&Config>, _ctx: &BuildCtx) -> Result<Option<Box<dyn Stage>>, String> {
    let empty = Config::default();
    Ok(Some(Box::new(DropStage::new(c.unwrap_or(&empty))?)))
}

/// What the (joined) source or the line must be.
enum Matcher {
    Regex(::regex::Regex),
    /// `value`: Promtail compiles it to `^QuoteMeta(value)$`, i.e. equality.
    Equal(String),
}

impl Matcher {
    fn matches(&self, s: &str) -> bool {
        match self {
            Matcher::Regex(re) => re.is_match(s),
            Matcher::Equal(v) => v == s,
        }
    }
}

/// The stage. See the module docs.
pub struct DropStage {
    longer_than: Option<usize>,
    /// Nanoseconds.
    older_than: Option<i64>,
    sources: Option<Vec<String>>,
    matcher: Option<Matcher>,
    separator: String,
    reason: String,
}

impl DropStage {
    pub fn new(c: &Config) -> Result<Self, String> {
        if c.source.is_none()
            && c.expression.is_none()
            && c.older_than.is_none()
            && c.longer_than.is_none()
        {
            return Err("drop stage config must contain at least one of `source`, `expression`, `older_than` or `longer_than`".into());
        }
        let reason = match c.drop_counter_reason.as_deref() {
            None | Some("") => DEFAULT_REASON.to_string(),
            Some(r) => r.to_string(),
        };
        let separator = c.separator.clone().unwrap_or_else(|| ";".into());
        let older_than = match &c.older_than {
            Some(s) => {
                let d = duration::parse(s).map_err(|e| format!("older_than: {e}"))?;
                Some(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
            }
            None => None,
        };
        if c.value.is_some() && c.source.is_none() {
            return Err(
                "value: drop stage config must contain `source` if `value` is specified".into(),
            );
        }
        if c.value.is_some() && c.expression.is_some() {
            return Err(
                "value: `value` and `expression` cannot both be defined at the same time".into(),
            );
        }
        let matcher = match (&c.expression, &c.value) {
            (Some(e), _) => {
                Some(Matcher::Regex(::regex::Regex::new(e).map_err(|err| {
                    format!("expression: invalid regex: {err}")
                })?))
            }
            (None, Some(v)) => Some(Matcher::Equal(v.clone())),
            (None, None) => None,
        };
        let longer_than = match &c.longer_than {
            Some(s) => Some(
                duration::parse_bytes(s)
                    .map_err(|e| format!("longer_than: failed to parse to bytes: {e}"))?,
            ),
            None => None,
        };
        Ok(DropStage {
            longer_than,
            older_than,
            sources: c.source.clone(),
            matcher,
            separator,
            reason,
        })
    }

    /// Promtail's `shouldDrop`.
    fn should_drop(&self, e: &Entry) -> bool {
        if let Some(n) = self.longer_than {
            if e.line.len() <= n {
                return false;
            }
        }
        if let Some(d) = self.older_than {
            if e.timestamp.0 >= Timestamp::now().0.saturating_sub(d) {
                return false;
            }
        }
        match (&self.sources, &self.matcher) {
            (Some(srcs), None) => srcs.iter().all(|s| e.extracted.get(s).is_some()),
            (None, Some(m)) => m.matches(&e.line),
            (Some(srcs), Some(m)) => match self.joined(e, srcs) {
                Some(s) => m.matches(&s),
                None => false,
            },
            (None, None) => true,
        }
    }

    /// The present sources as text, joined; `None` if one is not text.
    fn joined<'e>(&self, e: &'e Entry, srcs: &[String]) -> Option<Cow<'e, str>> {
        let mut present = srcs.iter().filter_map(|s| e.extracted.get(s));
        let Some(first) = present.next() else {
            return Some(Cow::Borrowed(""));
        };
        let mut out = text(first)?;
        for v in present {
            let o = out.to_mut();
            o.push_str(&self.separator);
            o.push_str(&text(v)?);
        }
        Some(out)
    }
}

/// An extracted value as Promtail's `getString` reads it, borrowed if it is
/// a string.
fn text(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::String(s) => Some(Cow::Borrowed(s)),
        other => to_go_string(other).map(Cow::Owned),
    }
}

impl Stage for DropStage {
    fn name(&self) -> &'static str {
        "drop"
    }

    fn uses_extracted(&self) -> bool {
        self.sources.is_some()
    }

    fn process(&mut self, entry: Entry, ctx: &mut Ctx) {
        if self.should_drop(&entry) {
            ctx.drop(entry, &self.reason);
        } else {
            ctx.emit(entry);
        }
    }
}

/// Reads a YAML scalar as mapstructure's `WeakDecode` reads it into a
/// string: strings as they are, numbers in Go's shortest form, bools as
/// `1`/`0`; null is absent.
pub(super) fn de_weak_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Some(format_float(v)))
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
            Ok(Some(if v { "1" } else { "0" }.to_string()))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_any(V)
        }
    }
    d.deserialize_any(V)
}

/// `source`: a string or a list of strings.
fn de_source<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    struct V;
    const WHAT: &str = "drop stage source invalid type should be string or list of strings";
    impl<'de> Visitor<'de> for V {
        type Value = Option<Vec<String>>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string or a list of strings")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(vec![v.to_string()]))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(v) = seq.next_element::<serde_yaml_ng::Value>()? {
                match v {
                    serde_yaml_ng::Value::String(s) => out.push(s),
                    _ => return Err(de::Error::custom(WHAT)),
                }
            }
            Ok(Some(out))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_any(V)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Err(E::custom(WHAT))
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Err(E::custom(WHAT))
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Err(E::custom(WHAT))
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Err(E::custom(WHAT))
        }
        fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
            Err(de::Error::custom(WHAT))
        }
    }
    d.deserialize_any(V)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ack::Ack;
    use crate::labels::LabelSet;
    use crate::metrics::Metrics;

    fn stage(yaml: &str) -> DropStage {
        DropStage::new(&serde_yaml_ng::from_str(yaml).unwrap()).unwrap()
    }

    fn err(yaml: Option<&str>) -> String {
        let c: Option<Config> = yaml.map(|y| serde_yaml_ng::from_str(y).unwrap());
        let ctx = BuildCtx::new(std::sync::Arc::new(Metrics::new()));
        build(c.as_ref(), &ctx).err().unwrap()
    }

    struct In<'a> {
        line: &'a str,
        ts: i64,
        extracted: &'a [(&'a str, Value)],
    }

    fn line(l: &str) -> In<'_> {
        In {
            line: l,
            ts: Timestamp::now().0,
            extracted: &[],
        }
    }

    /// Runs the entry; true if it was dropped (and counted as `reason`).
    fn dropped(st: &mut DropStage, i: In, reason: &str) -> bool {
        let m = Metrics::new();
        let mut out = Vec::new();
        let mut e = Entry::new(
            LabelSet::empty(),
            Timestamp(i.ts),
            i.line.into(),
            Ack::none(),
        );
        for (k, v) in i.extracted {
            e.extracted.insert(k, v.clone());
        }
        st.process(e, &mut Ctx::new(&mut out, &m));
        let counted = m.encode().contains(&format!(
            "logentry_dropped_lines_total{{reason=\"{reason}\"}} 1"
        ));
        assert_eq!(out.is_empty(), counted, "a drop is always counted");
        out.is_empty()
    }

    #[test]
    fn expression_matches_the_line_anywhere() {
        let mut st = stage("expression: \".*debug.*\"");
        assert!(dropped(&mut st, line("level=debug msg=x"), DEFAULT_REASON));
        assert!(!dropped(&mut st, line("level=info msg=x"), DEFAULT_REASON));
        let mut st = stage("expression: debug");
        assert!(dropped(&mut st, line("a debug b"), DEFAULT_REASON));
    }

    #[test]
    fn source_alone_means_present() {
        let mut st = stage("source: level");
        let ex = [("level", Value::Null)];
        assert!(dropped(
            &mut st,
            In {
                extracted: &ex,
                ..line("x")
            },
            DEFAULT_REASON
        ));
        assert!(!dropped(&mut st, line("x"), DEFAULT_REASON));
        // A list: every key must be present.
        let mut st = stage("source: [a, b]");
        let both = [("a", Value::from("1")), ("b", Value::from("2"))];
        let one = [("a", Value::from("1"))];
        assert!(dropped(
            &mut st,
            In {
                extracted: &both,
                ..line("x")
            },
            DEFAULT_REASON
        ));
        assert!(!dropped(
            &mut st,
            In {
                extracted: &one,
                ..line("x")
            },
            DEFAULT_REASON
        ));
    }

    #[test]
    fn source_with_value_is_exact_equality() {
        let mut st = stage("{source: level, value: debug}");
        let dbg = [("level", Value::from("debug"))];
        let dbg2 = [("level", Value::from("debug2"))];
        assert!(dropped(
            &mut st,
            In {
                extracted: &dbg,
                ..line("x")
            },
            DEFAULT_REASON
        ));
        assert!(!dropped(
            &mut st,
            In {
                extracted: &dbg2,
                ..line("x")
            },
            DEFAULT_REASON
        ));
        assert!(!dropped(&mut st, line("x"), DEFAULT_REASON));
        // Regex metacharacters in `value` are literal.
        let mut st = stage("{source: p, value: \"a.c\"}");
        let abc = [("p", Value::from("abc"))];
        let adotc = [("p", Value::from("a.c"))];
        assert!(!dropped(
            &mut st,
            In {
                extracted: &abc,
                ..line("x")
            },
            DEFAULT_REASON
        ));
        assert!(dropped(
            &mut st,
            In {
                extracted: &adotc,
                ..line("x")
            },
            DEFAULT_REASON
        ));
        // A number in YAML is read as its text; an extracted number too.
        let mut st = stage("{source: status, value: 500}");
        let num = [("status", Value::from(500.0))];
        assert!(dropped(
            &mut st,
            In {
                extracted: &num,
                ..line("x")
            },
            DEFAULT_REASON
        ));
    }

    #[test]
    fn several_sources_are_joined_with_the_separator() {
        let mut st = stage("{source: [a, b], expression: \"^x;y$\"}");
        let ex = [("a", Value::from("x")), ("b", Value::from("y"))];
        assert!(dropped(
            &mut st,
            In {
                extracted: &ex,
                ..line("l")
            },
            DEFAULT_REASON
        ));
        let mut st = stage("{source: [a, b], separator: \"|\", value: \"x|y\"}");
        assert!(dropped(
            &mut st,
            In {
                extracted: &ex,
                ..line("l")
            },
            DEFAULT_REASON
        ));
        // Absent sources are left out of the join, as Promtail does.
        let mut st = stage("{source: [a, missing, b], value: \"x;y\"}");
        assert!(dropped(
            &mut st,
            In {
                extracted: &ex,
                ..line("l")
            },
            DEFAULT_REASON
        ));
        // No source present: the regex sees "".
        let mut st = stage("{source: missing, expression: \"^$\"}");
        assert!(dropped(&mut st, line("l"), DEFAULT_REASON));
        // A value that is not text keeps the entry.
        let mut st = stage("{source: a, expression: \".*\"}");
        let null = [("a", Value::Null)];
        assert!(!dropped(
            &mut st,
            In {
                extracted: &null,
                ..line("l")
            },
            DEFAULT_REASON
        ));
    }

    #[test]
    fn longer_than_counts_bytes_strictly() {
        let mut st = stage("longer_than: 8B");
        assert!(!dropped(&mut st, line("12345678"), DEFAULT_REASON));
        assert!(dropped(&mut st, line("123456789"), DEFAULT_REASON));
        // Bytes, not characters: "é" is two.
        assert!(dropped(&mut st, line("1234567é"), DEFAULT_REASON));
        let mut st = stage("longer_than: 1KB");
        assert!(!dropped(&mut st, line(&"a".repeat(1000)), DEFAULT_REASON));
        assert!(dropped(&mut st, line(&"a".repeat(1001)), DEFAULT_REASON));
        let mut st = stage("longer_than: 1KiB");
        assert!(!dropped(&mut st, line(&"a".repeat(1024)), DEFAULT_REASON));
        // A bare number is bytes.
        let mut st = stage("longer_than: 3");
        assert!(dropped(&mut st, line("abcd"), DEFAULT_REASON));
    }

    #[test]
    fn older_than_compares_with_now() {
        let mut st = stage("older_than: 1h");
        let now = Timestamp::now().0;
        let hour = 3_600_000_000_000;
        assert!(dropped(
            &mut st,
            In {
                ts: now - 2 * hour,
                ..line("x")
            },
            DEFAULT_REASON
        ));
        assert!(!dropped(
            &mut st,
            In {
                ts: now - hour / 2,
                ..line("x")
            },
            DEFAULT_REASON
        ));
        assert!(!dropped(
            &mut st,
            In {
                ts: now + hour,
                ..line("x")
            },
            DEFAULT_REASON
        ));
    }

    #[test]
    fn all_conditions_must_hold() {
        let mut st = stage("{longer_than: 5, expression: err, drop_counter_reason: noisy}");
        assert!(dropped(&mut st, line("an error here"), "noisy"));
        assert!(!dropped(&mut st, line("err"), "noisy"));
        assert!(!dropped(&mut st, line("a long line"), "noisy"));
        let mut st = stage("{older_than: 1h, source: level, value: debug}");
        let dbg = [("level", Value::from("debug"))];
        let old = Timestamp::now().0 - 7_200_000_000_000;
        assert!(dropped(
            &mut st,
            In {
                ts: old,
                extracted: &dbg,
                line: "x"
            },
            DEFAULT_REASON
        ));
        assert!(!dropped(
            &mut st,
            In {
                extracted: &dbg,
                ..line("x")
            },
            DEFAULT_REASON
        ));
    }

    #[test]
    fn empty_reason_means_the_default() {
        let mut st = stage("{expression: x, drop_counter_reason: \"\"}");
        assert!(dropped(&mut st, line("x"), DEFAULT_REASON));
    }

    #[test]
    fn config_errors_name_the_key() {
        let e = err(None);
        assert!(e.contains("at least one of"), "{e}");
        assert!(err(Some("{value: x}")).contains("at least one of"));
        assert!(err(Some("{drop_counter_reason: x}")).contains("at least one of"));
        assert!(err(Some("{expression: x, value: y, source: s}")).starts_with("value: "));
        assert!(err(Some("{expression: x, value: y}")).starts_with("value: "));
        assert!(err(Some("{expression: \"(\"}")).starts_with("expression: invalid regex"));
        assert!(err(Some("{older_than: 5}")).starts_with("older_than: "));
        assert!(err(Some("{older_than: soon}")).starts_with("older_than: "));
        assert!(err(Some("{longer_than: 5XB}")).starts_with("longer_than: "));
        let e = serde_yaml_ng::from_str::<Config>("source: 5")
            .unwrap_err()
            .to_string();
        assert!(e.contains("string or list of strings"), "{e}");
        assert!(serde_yaml_ng::from_str::<Config>("source: [a, 1]").is_err());
        assert!(serde_yaml_ng::from_str::<Config>("{expression: x, nope: 1}").is_err());
    }

    #[test]
    fn in_a_pipeline() {
        let v: Vec<super::super::StageConfig> =
            serde_yaml_ng::from_str("- drop:\n    expression: secret\n").unwrap();
        assert!(v[0].unhonoured_name().is_none());
        let m = std::sync::Arc::new(Metrics::new());
        let mut p = super::super::build(&v, m.clone()).unwrap();
        let mut out = Vec::new();
        for l in ["a", "the secret", "b"] {
            let e = Entry::new(LabelSet::empty(), Timestamp(1), l.into(), Ack::none());
            p.process(e, &mut out);
        }
        let lines: Vec<_> = out.iter().map(|e| e.line.as_str()).collect();
        assert_eq!(lines, ["a", "b"]);
        assert!(m
            .encode()
            .contains("logentry_dropped_lines_total{reason=\"drop_stage\"} 1"));
    }

    #[test]
    fn uses_extracted_only_with_a_source() {
        assert!(!stage("expression: x").uses_extracted());
        assert!(stage("source: x").uses_extracted());
    }
}
