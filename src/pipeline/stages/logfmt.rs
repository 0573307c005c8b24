//! The `logfmt` stage: Promtail's `- logfmt: {mapping: {name: key}, source}`.
//!
//! Owns: [`Config`], the stage, and [`decode`], a logfmt reader with the
//! semantics of go-logfmt v0.6.0 (what Promtail v3.6 uses).
//!
//! What it does, as Promtail does it: the line (or the extracted value
//! `source`) is read as logfmt, and each pair whose key is mapped is stored
//! under the mapped name as a string (`mapping: {name: key}`; an empty or
//! null key means the name itself). Unmapped keys are ignored; a key seen
//! twice stores its last value. A `source` that is absent or null skips the
//! stage. The line is never changed and the entry is always passed on.
//!
//! go-logfmt's reading, kept exactly:
//! - Pairs are separated by any bytes up to and including space (control
//!   characters too). A key runs until `=` or such a byte; a bare word
//!   (`debug`, or `key=`) is a key with an empty value.
//! - A value is either bare (until a space; `=` or `"` inside it is a
//!   syntax error) or double-quoted, with JSON escapes (`\"`, `\\`, `\/`,
//!   `\'`, `\b`, `\f`, `\n`, `\r`, `\t`, `\uXXXX`; an unpaired surrogate
//!   becomes U+FFFD). Single quotes are not quotes.
//! - Syntax errors (a key starting with `=` or containing `"`, an
//!   unterminated quote, a bad escape, a raw control character in a quoted
//!   value that also has an escape, a key containing U+FFFD) stop reading:
//!   the pairs read before the error are kept, nothing after.
//! - Each `\n`-separated record of the text is read in turn (a `\r` before
//!   the `\n` is dropped). A record of [`MAX_RECORD`] bytes or more stops
//!   reading there (Go's `bufio.Scanner` limit in go-logfmt's decoder).
//!
//! One deliberate difference: when several names map to the same key, each
//! of them gets the value (Promtail keeps one of them, at random).
//!
//! Config errors: no `mapping` (or `- logfmt:` with no value), `source: ""`.
//!
//! Must never: change the line, or drop an entry.

use super::common::source_text;
use super::BuildCtx;
use crate::entry::Entry;
use crate::pipeline::{Stage, Value};
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

/// Whether the stage runs.
pub const HONOURED: bool = true;

/// Records this long or longer stop the reading (Go's default
/// `bufio.MaxScanTokenSize`, which the decoder Promtail uses keeps).
pub const MAX_RECORD: usize = 64 * 1024;

/// `logfmt:` options, with Promtail's names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Name in the extracted map → logfmt key (empty or null: the name).
    /// Required, at least one.
    pub mapping: BTreeMap<String, Option<String>>,
    /// The extracted value to read instead of the line.
    pub source: Option<String>,
}

/// Builds the stage; `- logfmt:` with no value is an error (no mapping).
pub fn build(c: Option<&Config>, _ctx: &BuildCtx) -> Result<Option<Box<dyn Stage>>, String> {
    let default = Config::default();
    Ok(Some(Box::new(LogfmtStage::new(c.unwrap_or(&default))?)))
}

/// The stage. See the module docs.
pub struct LogfmtStage {
    /// logfmt key → index into `names`.
    keys: HashMap<String, usize>,
    /// The extracted names of each mapped key.
    names: Vec<Vec<String>>,
    source: Option<String>,
}

impl LogfmtStage {
    pub fn new(c: &Config) -> Result<Self, String> {
        if c.mapping.is_empty() {
            return Err("mapping: at least one mapping is required".into());
        }
        if c.source.as_deref() == Some("") {
            return Err("source must not be empty".into());
        }
        let mut keys = HashMap::new();
        let mut names: Vec<Vec<String>> = Vec::new();
        for (name, key) in &c.mapping {
            let key = match key.as_deref() {
                Some(k) if !k.is_empty() => k,
                _ => name.as_str(),
            };
            let i = *keys.entry(key.to_string()).or_insert_with(|| {
                names.push(Vec::new());
                names.len() - 1
            });
            names[i].push(name.clone());
        }
        Ok(LogfmtStage {
            keys,
            names,
            source: c.source.clone(),
        })
    }
}

impl Stage for LogfmtStage {
    fn name(&self) -> &'static str {
        "logfmt"
    }

    fn edits_only(&self) -> bool {
        true
    }

    fn edit(&mut self, entry: &mut Entry) {
        let mut found: Vec<(usize, String)> = Vec::new();
        if let Some(input) = source_text(entry, self.source.as_deref()) {
            decode(&input, |k, v| {
                if let Some(&i) = self.keys.get(k) {
                    found.push((i, v.into_owned()));
                }
            });
        }
        for (i, v) in found {
            for name in &self.names[i] {
                entry.extracted.insert(name, Value::String(v.clone()));
            }
        }
    }
}

/// Reads `input` as logfmt, calling `pair(key, value)` for each pair in
/// order, until the end or the first syntax error (see the module docs).
/// Returns false if reading stopped at an error.
pub fn decode<'a>(input: &'a str, mut pair: impl FnMut(&'a str, Cow<'a, str>)) -> bool {
    let mut rest = input;
    while !rest.is_empty() {
        let (rec, next) = match memchr::memchr(b'\n', rest.as_bytes()) {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        if rec.len() >= MAX_RECORD {
            return false;
        }
        let rec = rec.strip_suffix('\r').unwrap_or(rec);
        if !decode_record(rec, &mut pair) {
            return false;
        }
        rest = next;
    }
    true
}

/// One record (line); false on a syntax error.
fn decode_record<'a>(line: &'a str, pair: &mut impl FnMut(&'a str, Cow<'a, str>)) -> bool {
    let b = line.as_bytes();
    let mut pos = 0;
    loop {
        // Separators.
        while pos < b.len() && b[pos] <= b' ' {
            pos += 1;
        }
        if pos == b.len() {
            return true;
        }
        // Key.
        let start = pos;
        while pos < b.len() && b[pos] > b' ' && b[pos] != b'=' {
            if b[pos] == b'"' {
                return false;
            }
            pos += 1;
        }
        let key = &line[start..pos];
        if key.is_empty() {
            // A pair starting with `=`.
            return false;
        }
        if key.contains('\u{fffd}') {
            return false;
        }
        if pos == b.len() || b[pos] != b'=' {
            pair(key, Cow::Borrowed(""));
            continue;
        }
        // `=`, then the value.
        pos += 1;
        if pos == b.len() || b[pos] <= b' ' {
            pair(key, Cow::Borrowed(""));
            continue;
        }
        if b[pos] == b'"' {
            let qstart = pos;
            let mut esc = false;
            let mut has_esc = false;
            let mut end = None;
            for (p, &c) in b[qstart + 1..].iter().enumerate() {
                if esc {
                    esc = false;
                } else if c == b'\\' {
                    esc = true;
                    has_esc = true;
                } else if c == b'"' {
                    end = Some(qstart + 1 + p);
                    break;
                }
            }
            let Some(end) = end else {
                return false;
            };
            pos = end + 1;
            let inner = &line[qstart + 1..end];
            if has_esc {
                match unquote(inner) {
                    Some(v) => pair(key, Cow::Owned(v)),
                    None => return false,
                }
            } else {
                pair(key, Cow::Borrowed(inner));
            }
            continue;
        }
        let vstart = pos;
        while pos < b.len() && b[pos] > b' ' {
            if b[pos] == b'=' || b[pos] == b'"' {
                return false;
            }
            pos += 1;
        }
        pair(key, Cow::Borrowed(&line[vstart..pos]));
    }
}

/// go-logfmt's `unquoteBytes` on the text between the quotes.
fn unquote(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                let (_, e) = chars.next()?;
                match e {
                    '"' | '\\' | '/' | '\'' => out.push(e),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    'n' => out.push('\n'),
                    'r' => out.push('\r'),
                    't' => out.push('\t'),
                    'u' => {
                        let r = hex4(s.get(i + 2..i + 6)?)?;
                        for _ in 0..4 {
                            chars.next();
                        }
                        let mut ch = char::from_u32(r);
                        if (0xD800..0xE000).contains(&r) {
                            ch = None;
                            let after = i + 6;
                            if let Some(r2) = s
                                .get(after..after + 6)
                                .and_then(|u| u.strip_prefix("\\u"))
                                .and_then(hex4)
                            {
                                if (0xD800..0xDC00).contains(&r) && (0xDC00..0xE000).contains(&r2) {
                                    ch = char::from_u32(
                                        0x10000 + ((r - 0xD800) << 10) + (r2 - 0xDC00),
                                    );
                                    for _ in 0..6 {
                                        chars.next();
                                    }
                                }
                            }
                        }
                        out.push(ch.unwrap_or('\u{fffd}'));
                    }
                    _ => return None,
                }
            }
            c if c < ' ' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

fn hex4(s: &str) -> Option<u32> {
    if s.len() == 4 && s.bytes().all(|c| c.is_ascii_hexdigit()) {
        u32::from_str_radix(s, 16).ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ack::Ack;
    use crate::entry::Timestamp;
    use crate::labels::LabelSet;
    use crate::metrics::Metrics;
    use crate::pipeline::stages::test_harness::Harness;
    use crate::pipeline::Ctx;
    use std::sync::Arc;

    fn pairs(s: &str) -> (Vec<(String, String)>, bool) {
        let mut v = Vec::new();
        let ok = decode(s, |k, val| v.push((k.to_string(), val.into_owned())));
        (v, ok)
    }

    fn p(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// go-logfmt's decoder behaviour (its own test table, plus the cases
    /// Promtail users meet).
    #[test]
    fn decodes_like_go_logfmt() {
        let ok: &[(&str, &[(&str, &str)])] = &[
            ("", &[]),
            ("a=1 b=2", &[("a", "1"), ("b", "2")]),
            ("  a=1\tb=2  ", &[("a", "1"), ("b", "2")]),
            ("a", &[("a", "")]),
            ("a=", &[("a", "")]),
            ("a= b=2", &[("a", ""), ("b", "2")]),
            ("debug msg=x", &[("debug", ""), ("msg", "x")]),
            (r#"a="""#, &[("a", "")]),
            (r#"a="x y""#, &[("a", "x y")]),
            (r#"a="x=y""#, &[("a", "x=y")]),
            (
                r#"a="\"q\" \\ \/ \' \t\n\u00e9\ud83d\ude00""#,
                &[("a", "\"q\" \\ / ' \t\né😀")],
            ),
            (r#"a="\ud800x""#, &[("a", "\u{fffd}x")]),
            (r#"a="x"b=2"#, &[("a", "x"), ("b", "2")]),
            ("a='x y'", &[("a", "'x"), ("y'", "")]),
            ("ключ=значение", &[("ключ", "значение")]),
            ("a=1\nb=2\r\nc", &[("a", "1"), ("b", "2"), ("c", "")]),
            ("a=1\u{1}b=2", &[("a", "1"), ("b", "2")]),
            ("a=1 a=2", &[("a", "1"), ("a", "2")]),
            ("a=\"x\ty\"", &[("a", "x\ty")]),
        ];
        for (input, want) in ok {
            assert_eq!(pairs(input), (p(want), true), "{input:?}");
        }
        // Syntax errors: what came before stays, nothing after.
        let bad: &[(&str, &[(&str, &str)])] = &[
            ("a=1 =2 b=3", &[("a", "1")]),
            ("a=1 b\"c=2 d=4", &[("a", "1")]),
            ("a=1 b=x=y c=3", &[("a", "1")]),
            ("a=1 b=x\"y c=3", &[("a", "1")]),
            (r#"a=1 b="unterminated c=3"#, &[("a", "1")]),
            (r#"a=1 b="bad \x escape" c=3"#, &[("a", "1")]),
            ("a=1 b=\"esc\\n and raw\ttab\" c=3", &[("a", "1")]),
            ("a=1 k\u{fffd}=2 c=3", &[("a", "1")]),
            ("a=1\nb=\"x\nc=3", &[("a", "1")]),
        ];
        for (input, want) in bad {
            assert_eq!(pairs(input), (p(want), false), "{input:?}");
        }
    }

    #[test]
    fn a_record_of_64_kib_stops_reading() {
        let long = format!("a=1 b={}", "x".repeat(MAX_RECORD));
        assert_eq!(pairs(&long), (vec![], false));
        let fits = format!("a={}", "x".repeat(MAX_RECORD - 3));
        assert_eq!(fits.len(), MAX_RECORD - 1);
        assert_eq!(pairs(&fits).0.len(), 1);
        // Records before the long one are read.
        let two = format!("a=1\nb={}", "x".repeat(MAX_RECORD));
        assert_eq!(pairs(&two), (p(&[("a", "1")]), false));
    }

    fn harness(yaml: &str) -> Harness<LogfmtStage> {
        let c: Config = serde_yaml_ng::from_str(yaml).unwrap();
        Harness::of(LogfmtStage::new(&c).unwrap(), LabelSet::empty())
    }

    fn got(h: &Harness<LogfmtStage>, k: &str) -> Option<String> {
        h.out.last().unwrap().extracted.get_string(k)
    }

    #[test]
    fn only_mapped_keys_are_extracted_under_their_names() {
        let mut h = harness("{mapping: {lvl: level, msg: '', caller: , dup1: k, dup2: k}}");
        h.feed(r#"time=1 level=info msg="hello world" caller k=v extra=1"#);
        let e = &h.out[0];
        assert_eq!(got(&h, "lvl").as_deref(), Some("info"));
        assert_eq!(got(&h, "msg").as_deref(), Some("hello world"));
        assert_eq!(got(&h, "caller").as_deref(), Some(""));
        assert_eq!(got(&h, "dup1").as_deref(), Some("v"));
        assert_eq!(got(&h, "dup2").as_deref(), Some("v"));
        assert_eq!(e.extracted.len(), 5);
        assert!(e.extracted.get("level").is_none());
        assert_eq!(
            e.line,
            r#"time=1 level=info msg="hello world" caller k=v extra=1"#
        );
    }

    #[test]
    fn values_before_a_syntax_error_are_kept_and_the_entry_passes() {
        let mut h = harness("{mapping: {a: a, c: c}}");
        h.feed("a=1 =oops c=3");
        assert_eq!(got(&h, "a").as_deref(), Some("1"));
        assert_eq!(got(&h, "c"), None);
        h.feed("not logfmt at all \"");
        assert_eq!(h.out.len(), 2);
        assert!(h.out[1].extracted.is_empty());
        h.ack_all();
        assert_eq!(h.committed(), h.offset);
    }

    #[test]
    fn source_is_read_instead_of_the_line() {
        let mut h = harness("{mapping: {a: a}, source: inner}");
        let mut e = Entry::new(
            LabelSet::empty(),
            Timestamp(1),
            "a=line".into(),
            Ack::none(),
        );
        e.extracted.insert("inner", Value::from("a=src"));
        h.stage.process(e, &mut Ctx::new(&mut h.out, &h.metrics));
        assert_eq!(got(&h, "a").as_deref(), Some("src"));
        // Absent or null source: skipped.
        h.feed("a=line");
        assert_eq!(got(&h, "a"), None);
        let mut e = Entry::new(
            LabelSet::empty(),
            Timestamp(1),
            "a=line".into(),
            Ack::none(),
        );
        e.extracted.insert("inner", Value::Null);
        h.stage.process(e, &mut Ctx::new(&mut h.out, &h.metrics));
        assert_eq!(got(&h, "a"), None);
        assert_eq!(h.out.len(), 3);
    }

    #[test]
    fn config_errors_name_the_key() {
        for (yaml, want) in [
            ("{}", "mapping: at least one"),
            ("{mapping: {}}", "mapping: at least one"),
            ("{mapping: {a: a}, source: ''}", "source must not be empty"),
        ] {
            let c: Config = serde_yaml_ng::from_str(yaml).unwrap();
            let e = LogfmtStage::new(&c).err().unwrap();
            assert!(e.starts_with(want), "{yaml}: {e}");
        }
        assert!(serde_yaml_ng::from_str::<Config>("{mapping: {a: a}, src: x}").is_err());
        let ctx = BuildCtx::new(Arc::new(Metrics::new()));
        assert!(build(None, &ctx).is_err());
    }

    proptest::proptest! {
        /// Any text: no panic, and every pair found is a substring-based
        /// key without separators.
        #[test]
        fn arbitrary_text_never_panics(s in "\\PC{0,60}") {
            let (v, _) = pairs(&s);
            for (k, _) in v {
                proptest::prop_assert!(!k.is_empty());
                proptest::prop_assert!(!k.bytes().any(|c| c <= b' ' || c == b'=' || c == b'"'));
            }
        }
    }
}
