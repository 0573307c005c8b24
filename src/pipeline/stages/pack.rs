//! The `pack` stage: Promtail's `- pack: {labels: [...], ingest_timestamp}`.
//!
//! Owns: [`Config`], the stage, and [`write_json_string`] (a JSON string
//! escaped as Go's JSON encoders escape it; the `template` stage's `toJson`
//! uses it too).
//!
//! What it does, as Promtail v3.6 does it: the line becomes a JSON object
//! holding every listed name found in the extracted map (which starts with
//! the stream labels) with a string-like value, in sorted key order, then
//! `_entry` with the original line: `{"app":"a","pod":"p","_entry":"…"}`.
//! Strings are escaped as Promtail's encoder (json-iterator with HTML
//! escaping) does: `"`, `\` and control characters (`\n`, `\r`, `\t`, other
//! ones as `\u00XX`), and `<`, `>`, `&`, U+2028, U+2029 as `\u003c`,
//! `\u003e`, `\u0026`, `\u2028`, `\u2029`. Every packed name leaves the
//! stream labels. Values come from the extracted map, as in Promtail: a
//! label set by a stage after the pipeline began is not in it, so it is
//! neither packed nor removed. With `ingest_timestamp: true` (the default) the entry's
//! timestamp becomes the time it was packed; with `false` it keeps its own.
//! `- pack:` with no options packs just `_entry`.
//!
//! Must never: rebuild a label set per line (the reduced set is cached per
//! input set and packed names), or drop an entry.

use super::labels::{with_text, LabelCache};
use super::BuildCtx;
use crate::entry::{Entry, Timestamp};
use crate::labels::LabelSet;
use crate::pipeline::Stage;
use serde::Deserialize;

/// Whether the stage runs.
pub const HONOURED: bool = true;

/// `pack:` options.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Names (extracted keys, which include the stream labels) to pack.
    #[serde(deserialize_with = "null_as_empty")]
    pub labels: Vec<String>,
    /// Replace the timestamp with the time of packing (default true; `null`
    /// is the default too).
    #[serde(deserialize_with = "null_as_true")]
    pub ingest_timestamp: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            labels: Vec::new(),
            ingest_timestamp: true,
        }
    }
}

/// `labels:` with no list means none.
fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

fn null_as_true<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(Option::<bool>::deserialize(d)?.unwrap_or(true))
}

/// Builds the stage.
pub fn build(c: Option<&Config>, _ctx: &BuildCtx) -> Result<Option<Box<dyn Stage>>, String> {
    let c = c.cloned().unwrap_or_default();
    // Sorted and unique: the output's key order.
    let mut names: Vec<Box<str>> = c.labels.into_iter().map(Into::into).collect();
    names.sort();
    names.dedup();
    Ok(Some(Box::new(PackStage {
        names,
        ingest_timestamp: c.ingest_timestamp,
        cache: LabelCache::default(),
    })))
}

/// The stage. See the module docs.
pub struct PackStage {
    names: Vec<Box<str>>,
    ingest_timestamp: bool,
    /// (input set, indices of packed names) → output set.
    cache: LabelCache<Vec<usize>>,
}

impl Stage for PackStage {
    fn name(&self) -> &'static str {
        "pack"
    }

    fn edits_only(&self) -> bool {
        true
    }

    fn edit(&mut self, e: &mut Entry) {
        let mut out = String::with_capacity(e.line.len() + 16 + 32 * self.names.len());
        out.push('{');
        let mut found: Vec<usize> = Vec::new();
        for (i, name) in self.names.iter().enumerate() {
            let Some(v) = e.extracted.get(name) else {
                continue;
            };
            let mut wrote = false;
            with_text(v, |t| {
                if !found.is_empty() {
                    out.push(',');
                }
                write_json_string(&mut out, name, JsonFlavor::Jsoniter);
                out.push(':');
                write_json_string(&mut out, t, JsonFlavor::Jsoniter);
                wrote = true;
            });
            if wrote {
                found.push(i);
            }
        }
        if !found.is_empty() {
            out.push(',');
        }
        out.push_str("\"_entry\":");
        write_json_string(&mut out, &e.line, JsonFlavor::Jsoniter);
        out.push('}');
        e.line = out.into();

        // Packed names that are stream labels leave them.
        found.retain(|&i| e.labels.get(&self.names[i]).is_some());
        if !found.is_empty() {
            let names = &self.names;
            e.labels = self.cache.get_or_build(&e.labels, found, |l, f| {
                LabelSet::new(
                    l.iter()
                        .filter(|(k, _)| !f.iter().any(|&i| *names[i] == **k)),
                )
            });
        }
        if self.ingest_timestamp {
            e.timestamp = Timestamp::now();
        }
    }
}

/// Whose JSON string escaping to follow.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum JsonFlavor {
    /// json-iterator's default config (Promtail's `pack`): HTML escaping,
    /// `\n` `\r` `\t` short, other control characters `\u00XX`.
    Jsoniter,
    /// Go's `encoding/json` (sprig's `toJson`): as above, plus `\b` and
    /// `\f` short.
    GoJson,
    /// `encoding/json` with HTML escaping off (sprig's `toRawJson`).
    GoJsonRaw,
}

/// Appends `s` as a JSON string literal, escaped as `flavor` does.
pub(crate) fn write_json_string(out: &mut String, s: &str, flavor: JsonFlavor) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let html = flavor != JsonFlavor::GoJsonRaw;
    out.push('"');
    // Byte by byte: every byte that needs escaping is ASCII, or the lead
    // byte of U+2028/U+2029 (E2 80 A8/A9), so the cuts fall on char
    // boundaries; the runs in between are copied whole.
    let b = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let (esc, width): (Option<&str>, usize) = match c {
            b'"' => (Some("\\\""), 1),
            b'\\' => (Some("\\\\"), 1),
            b'\n' => (Some("\\n"), 1),
            b'\r' => (Some("\\r"), 1),
            b'\t' => (Some("\\t"), 1),
            8 if flavor != JsonFlavor::Jsoniter => (Some("\\b"), 1),
            12 if flavor != JsonFlavor::Jsoniter => (Some("\\f"), 1),
            0xE2 if b.get(i + 1) == Some(&0x80) && matches!(b.get(i + 2), Some(0xA8 | 0xA9)) => {
                let e = if b[i + 2] == 0xA8 {
                    "\\u2028"
                } else {
                    "\\u2029"
                };
                (Some(e), 3)
            }
            c if c < 0x20 || (html && matches!(c, b'<' | b'>' | b'&')) => (None, 1),
            _ => {
                i += 1;
                continue;
            }
        };
        out.push_str(&s[start..i]);
        match esc {
            Some(e) => out.push_str(e),
            None => {
                out.push_str("\\u00");
                out.push(HEX[usize::from(c >> 4)] as char);
                out.push(HEX[usize::from(c & 0xf)] as char);
            }
        }
        i += width;
        start = i;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::super::labels::test_support::*;
    use super::*;

    fn stage(yaml: &str) -> Box<dyn Stage> {
        let c: Config = serde_yaml_ng::from_str(yaml).unwrap();
        build(Some(&c), &ctx()).unwrap().unwrap()
    }

    #[test]
    fn packs_sorted_names_then_entry_and_removes_packed_labels() {
        let mut h = harness(
            stage("{labels: [pod, app, level, missing, obj]}"),
            &[("app", "shop"), ("pod", "p-1"), ("job", "j")],
        );
        let a = run_line(
            &mut h,
            r#"hello "world""#,
            serde_json::json!({"level": "info", "obj": null}),
        );
        assert_eq!(
            a.line,
            r#"{"app":"shop","level":"info","pod":"p-1","_entry":"hello \"world\""}"#
        );
        assert_eq!(a.labels, LabelSet::new([("job", "j")]));
        assert_ne!(
            a.timestamp,
            Timestamp(7),
            "ingest_timestamp defaults to true"
        );
        let b = run_line(&mut h, "x", serde_json::json!({}));
        assert_eq!(b.line, r#"{"app":"shop","pod":"p-1","_entry":"x"}"#);
        assert!(same_set(&a.labels, &b.labels));
        for e in [a, b] {
            e.ack.ack();
        }
        assert_eq!(h.committed(), h.offset);
    }

    #[test]
    fn escapes_like_go() {
        let mut h = harness(stage("{labels: [k], ingest_timestamp: false}"), &[]);
        let e = run_line(
            &mut h,
            "<a href=\"x\">&</a>\u{2028}\u{2029}\t\n\r\u{1}\u{8}\u{c}\u{7f}é\\",
            serde_json::json!({"k": 1.5}),
        );
        assert_eq!(
            e.line,
            r#"{"k":"1.5","_entry":"\u003ca href=\"x\"\u003e\u0026\u003c/a\u003e\u2028\u2029\t\n\r\u0001\u0008\u000c"#
                .to_string()
                + "\u{7f}é\\\\\"}"
        );
        assert_eq!(e.timestamp, Timestamp(7));
        e.ack.ack();
    }

    #[test]
    fn no_options_packs_the_entry_alone() {
        let mut h = harness(build(None, &ctx()).unwrap().unwrap(), &[("app", "a")]);
        let e = run_line(&mut h, "line", serde_json::json!({}));
        assert_eq!(e.line, r#"{"_entry":"line"}"#);
        assert!(same_set(&e.labels, &h.labels));
        e.ack.ack();
        assert!(serde_yaml_ng::from_str::<Config>("{labels: [a], x: 1}").is_err());
        assert!(serde_yaml_ng::from_str::<Config>("{labels: }").is_ok());
        let c: Config = serde_yaml_ng::from_str("{ingest_timestamp: }").unwrap();
        assert!(c.ingest_timestamp);
    }

    #[test]
    fn go_json_flavours() {
        let mut s = String::new();
        write_json_string(&mut s, "<\u{8}>", JsonFlavor::GoJson);
        write_json_string(&mut s, "<\u{8}>", JsonFlavor::GoJsonRaw);
        assert_eq!(s, r#""\u003c\b\u003e""<\b>""#);
    }
}
