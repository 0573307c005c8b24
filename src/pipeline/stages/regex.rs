//! The `regex` stage: Promtail's `- regex: {expression, source}`.
//!
//! Owns: [`Config`], the stage, and [`compile_go`], which compiles a Go
//! (RE2) regular expression so that it matches what Go's `regexp` matches
//! (the `replace` stage uses it too).
//!
//! What it does, as Promtail v3.6 does it: the expression is matched
//! against the line, or against the extracted value `source` when set. On a
//! match, every *named* capture group is stored in the extracted map under
//! its name as a string — a named group that took no part in the match
//! stores `""`, as Go's `FindStringSubmatch` reports it; unnamed groups are
//! ignored. An expression without named groups is accepted and extracts
//! nothing (Promtail does not check). A line that does not match leaves the
//! map unchanged. A `source` that is absent from the map, or is not a
//! string-like value (null), skips the stage for that entry. The line is
//! never changed and the entry is always passed on.
//!
//! Config errors, as Promtail's: no `expression` (or `- regex:` with no
//! value); `source: ""`; an expression that does not compile.
//!
//! Go's and Rust's regex syntaxes are close but not equal; [`compile_go`]
//! rewrites the differences that change what matches: `\d`, `\w`, `\s` and
//! `\b` are ASCII-only in Go (Unicode in Rust), `\Q…\E` quotes literally,
//! a `{` that does not start a valid repetition is a literal, a `[` inside a
//! class is a literal, `&` and `~` in a class are not set operators, and an
//! escaped punctuation character (`\<`) is just that character.
//!
//! Must never: change the line, or drop an entry.

use super::common::source_text;
use super::BuildCtx;
use crate::entry::Entry;
use crate::pipeline::{Stage, Value};
use serde::Deserialize;

/// Whether the stage runs.
pub const HONOURED: bool = true;

/// `regex:` options, with Promtail's names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// A Go (RE2) regular expression; required.
    pub expression: Option<String>,
    /// The extracted value to match instead of the line.
    pub source: Option<String>,
}

/// Builds the stage; `- regex:` with no value is an error (no expression).
pub fn build(c: Option<&Config>, _ctx: &BuildCtx) -> Result<Option<Box<dyn Stage>>, String> {
    let default = Config::default();
    Ok(Some(Box::new(RegexStage::new(c.unwrap_or(&default))?)))
}

/// The stage. See the module docs.
pub struct RegexStage {
    re: ::regex::Regex,
    locs: ::regex::CaptureLocations,
    /// (group index, name) of the named groups.
    names: Vec<(usize, String)>,
    source: Option<String>,
}

impl RegexStage {
    pub fn new(c: &Config) -> Result<Self, String> {
        let expr = match c.expression.as_deref() {
            Some(e) if !e.is_empty() => e,
            _ => return Err("expression is required".into()),
        };
        if c.source.as_deref() == Some("") {
            return Err("source must not be empty".into());
        }
        let re = compile_go(expr).map_err(|e| format!("expression: {e}"))?;
        let names = re
            .capture_names()
            .enumerate()
            .filter_map(|(i, n)| n.map(|n| (i, n.to_string())))
            .collect();
        Ok(RegexStage {
            locs: re.capture_locations(),
            re,
            names,
            source: c.source.clone(),
        })
    }
}

impl Stage for RegexStage {
    fn name(&self) -> &'static str {
        "regex"
    }

    fn edits_only(&self) -> bool {
        true
    }

    fn edit(&mut self, entry: &mut Entry) {
        let found: Option<Vec<String>> = match source_text(entry, self.source.as_deref()) {
            Some(input) if self.re.captures_read(&mut self.locs, &input).is_some() => Some(
                self.names
                    .iter()
                    .map(|(i, _)| match self.locs.get(*i) {
                        Some((s, e)) => input[s..e].to_string(),
                        None => String::new(),
                    })
                    .collect(),
            ),
            _ => None,
        };
        if let Some(values) = found {
            for ((_, name), v) in self.names.iter().zip(values) {
                entry.extracted.insert(name, Value::String(v));
            }
        }
    }
}

/// Compiles a Go (RE2) regular expression with Go's matching semantics
/// (see the module docs). Errors read like Promtail's.
pub fn compile_go(expr: &str) -> Result<::regex::Regex, String> {
    translate_go(expr)
        .and_then(|t| ::regex::Regex::new(&t).map_err(|e| e.to_string()))
        .map_err(|e| format!("could not compile regular expression: {e}"))
}

/// Go's ASCII-only Perl classes, outside a bracket class and inside one.
fn perl_class(c: char, in_class: bool) -> &'static str {
    match (c, in_class) {
        ('d', false) => "[0-9]",
        ('d', true) => "0-9",
        ('D', _) => "[^0-9]",
        ('w', false) => "[0-9A-Za-z_]",
        ('w', true) => "0-9A-Za-z_",
        ('W', _) => "[^0-9A-Za-z_]",
        ('s', false) => r"[\t\n\x0C\r ]",
        ('s', true) => r"\t\n\x0C\r ",
        _ => r"[^\t\n\x0C\r ]",
    }
}

/// Length of a valid Go repetition `{n}`, `{n,}` or `{n,m}` at the start of
/// `s` (which starts with `{`), or `None` if Go reads the `{` as a literal.
fn go_repeat_len(s: &[char]) -> Option<usize> {
    fn int(s: &[char], i: usize) -> Option<usize> {
        let n = s[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        // Go rejects leading zeros ("{01}" is literal text).
        if n == 0 || (n > 1 && s[i] == '0') {
            return None;
        }
        Some(i + n)
    }
    let mut i = int(s, 1)?;
    if s.get(i) == Some(&',') {
        i += 1;
        if s.get(i).is_some_and(|c| c.is_ascii_digit()) {
            i = int(s, i)?;
        }
    }
    (s.get(i) == Some(&'}')).then_some(i + 1)
}

/// Rewrites a Go regular expression into Rust `regex` syntax with the same
/// meaning (see the module docs). Invalid input stays invalid (Rust's
/// compiler reports it), except an unknown POSIX class, reported here.
pub fn translate_go(expr: &str) -> Result<String, String> {
    let b: Vec<char> = expr.chars().collect();
    let mut out = String::with_capacity(expr.len() + 16);
    let mut in_class = false;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == '\\' {
            let Some(&n) = b.get(i + 1) else {
                out.push('\\');
                break;
            };
            i += 2;
            match n {
                'd' | 'D' | 'w' | 'W' | 's' | 'S' => out.push_str(perl_class(n, in_class)),
                'b' if !in_class => out.push_str(r"(?-u:\b)"),
                'B' if !in_class => out.push_str(r"(?-u:\B)"),
                'Q' if !in_class => {
                    let rest: String = b[i..].iter().collect();
                    let (lit, used) = match rest.find(r"\E") {
                        Some(end) => (&rest[..end], end + 2),
                        None => (rest.as_str(), rest.len()),
                    };
                    out.push_str(&::regex::escape(lit));
                    i += rest[..used].chars().count();
                }
                'x' | 'p' | 'P' if b.get(i) == Some(&'{') => {
                    out.push('\\');
                    out.push(n);
                    while i < b.len() {
                        out.push(b[i]);
                        i += 1;
                        if b[i - 1] == '}' {
                            break;
                        }
                    }
                }
                // Go: an escaped ASCII punctuation character is itself.
                _ if n.is_ascii() && !n.is_ascii_alphanumeric() => {
                    out.push_str(&::regex::escape(&n.to_string()))
                }
                _ => {
                    out.push('\\');
                    out.push(n);
                }
            }
            continue;
        }
        i += 1;
        if in_class {
            match c {
                ']' => {
                    in_class = false;
                    out.push(']');
                }
                '[' => {
                    let rest: String = b[i..].iter().collect();
                    match rest.strip_prefix(':').and_then(|r| r.find(":]")) {
                        // A POSIX class `[:alpha:]`.
                        Some(end) => {
                            let name = rest[1..1 + end].trim_start_matches('^');
                            if !POSIX_CLASSES.contains(&name) {
                                return Err(format!(
                                    "invalid character class range: `[{}`",
                                    &rest[..end + 3]
                                ));
                            }
                            out.push('[');
                            out.push_str(&rest[..end + 3]);
                            i += rest[..end + 3].chars().count();
                        }
                        None => out.push_str(r"\["),
                    }
                }
                '&' | '~' => {
                    out.push('\\');
                    out.push(c);
                }
                _ => out.push(c),
            }
            continue;
        }
        match c {
            '[' => {
                in_class = true;
                out.push('[');
                if b.get(i) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                // A `]` first in a class is a literal.
                if b.get(i) == Some(&']') {
                    out.push_str(r"\]");
                    i += 1;
                }
            }
            '{' => match go_repeat_len(&b[i - 1..]) {
                Some(n) => {
                    out.extend(&b[i - 1..i - 1 + n]);
                    i += n - 1;
                }
                None => out.push_str(r"\{"),
            },
            _ => out.push(c),
        }
    }
    Ok(out)
}

/// The POSIX class names Go knows (`[[:alpha:]]`).
const POSIX_CLASSES: &[&str] = &[
    "alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower", "print", "punct",
    "space", "upper", "word", "xdigit",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::LabelSet;
    use crate::metrics::Metrics;
    use crate::pipeline::stages::test_harness::Harness;
    use crate::pipeline::Ctx;
    use std::sync::Arc;

    fn stage(yaml: &str) -> Result<RegexStage, String> {
        let c: Config = serde_yaml_ng::from_str(yaml).map_err(|e| e.to_string())?;
        RegexStage::new(&c)
    }

    fn harness(yaml: &str) -> Harness<RegexStage> {
        Harness::of(stage(yaml).unwrap(), LabelSet::empty())
    }

    fn get(h: &Harness<RegexStage>, i: usize, k: &str) -> Option<Value> {
        h.out[i].extracted.get(k).cloned()
    }

    #[test]
    fn named_groups_are_extracted_unnamed_ignored() {
        let mut h = harness(r#"{expression: '^(?P<level>\w+) (\d+) (?P<msg>.*)$'}"#);
        h.feed("info 42 hello world");
        assert_eq!(get(&h, 0, "level"), Some(Value::from("info")));
        assert_eq!(get(&h, 0, "msg"), Some(Value::from("hello world")));
        assert_eq!(h.out[0].extracted.len(), 2);
        assert_eq!(h.out[0].line, "info 42 hello world");
    }

    #[test]
    fn no_match_leaves_the_map_unchanged() {
        let mut h = harness(r#"{expression: '^(?P<level>\d+)$'}"#);
        h.feed("not a number");
        assert!(h.out[0].extracted.is_empty());
        assert_eq!(h.out.len(), 1);
    }

    #[test]
    fn a_named_group_outside_the_match_stores_empty() {
        // Go's FindStringSubmatch reports "" for a group that took no part.
        let mut h = harness(r#"{expression: '^(?P<a>x)?(?P<b>y)$'}"#);
        h.feed("y");
        assert_eq!(get(&h, 0, "a"), Some(Value::from("")));
        assert_eq!(get(&h, 0, "b"), Some(Value::from("y")));
    }

    #[test]
    fn without_named_groups_nothing_is_extracted() {
        let mut h = harness(r#"{expression: '(\w+)'}"#);
        h.feed("abc");
        assert!(h.out[0].extracted.is_empty());
    }

    #[test]
    fn source_reads_an_extracted_value_and_skips_when_absent_or_null() {
        let mut h = harness(r#"{expression: '^(?P<user>\w+)@', source: email}"#);
        h.feed("x");
        assert!(h.out[0].extracted.is_empty(), "absent source: skipped");
        let mut e = Entry::new(
            LabelSet::empty(),
            crate::entry::Timestamp(1),
            "line".into(),
            crate::ack::Ack::none(),
        );
        e.extracted.insert("email", Value::from("bob@example.com"));
        h.stage.process(e, &mut Ctx::new(&mut h.out, &h.metrics));
        assert_eq!(get(&h, 1, "user"), Some(Value::from("bob")));
        let mut e = Entry::new(
            LabelSet::empty(),
            crate::entry::Timestamp(1),
            "bob@x".into(),
            crate::ack::Ack::none(),
        );
        e.extracted.insert("email", Value::Null);
        h.stage.process(e, &mut Ctx::new(&mut h.out, &h.metrics));
        assert_eq!(get(&h, 2, "user"), None, "null source: skipped");
        // A number source is matched as Go's getString renders it.
        let mut h = harness(r#"{expression: '^(?P<int>\d+)\.', source: n}"#);
        let mut e = Entry::new(
            LabelSet::empty(),
            crate::entry::Timestamp(1),
            "".into(),
            crate::ack::Ack::none(),
        );
        e.extracted.insert("n", Value::from(12.5));
        h.stage.process(e, &mut Ctx::new(&mut h.out, &h.metrics));
        assert_eq!(get(&h, 0, "int"), Some(Value::from("12")));
    }

    #[test]
    fn later_matches_overwrite_earlier_values() {
        let mut h = harness(r#"{expression: '(?P<a>\w+)'}"#);
        let mut e = Entry::new(
            LabelSet::empty(),
            crate::entry::Timestamp(1),
            "new".into(),
            crate::ack::Ack::none(),
        );
        e.extracted.insert("a", Value::from(1.0));
        h.stage.process(e, &mut Ctx::new(&mut h.out, &h.metrics));
        assert_eq!(get(&h, 0, "a"), Some(Value::from("new")));
    }

    #[test]
    fn config_errors_name_the_key() {
        for (yaml, want) in [
            ("{}", "expression is required"),
            ("{expression: ''}", "expression is required"),
            ("{expression: 'a', source: ''}", "source must not be empty"),
            (
                "{expression: '(a'}",
                "expression: could not compile regular expression",
            ),
        ] {
            let e = stage(yaml).err().unwrap();
            assert!(e.starts_with(want), "{yaml}: {e}");
        }
        assert!(serde_yaml_ng::from_str::<Config>("{expresion: a}").is_err());
        let e = build(None, &BuildCtx::new(Arc::new(Metrics::new())))
            .err()
            .unwrap();
        assert_eq!(e, "expression is required");
    }

    #[test]
    fn built_through_the_stage_list() {
        let v: Vec<super::super::StageConfig> =
            serde_yaml_ng::from_str("- regex: {expression: '(?P<a>.)'}\n- regex:\n").unwrap();
        assert!(v[0].unhonoured_name().is_none());
        let e = super::super::build(&v, Arc::new(Metrics::new()))
            .err()
            .unwrap();
        assert_eq!(e, "pipeline_stages[1].regex: expression is required");
    }

    /// Go RE2 semantics the translation must keep (each case: pattern,
    /// input, Go's match or None).
    #[test]
    fn go_regex_semantics() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            // Perl classes are ASCII-only in Go.
            (r"\w+", "josé", Some("jos")),
            (r"\d+", "٣4", Some("4")),
            (r"\s", "\u{a0}x", None),
            (r"\s", "\u{b}", None),
            (r"\S+", "a\u{a0}b c", Some("a\u{a0}b")),
            (r"[\w.]+", "é.a_b", Some(".a_b")),
            (r"[^\d]+", "12ab", Some("ab")),
            (r"[\D]+", "12ab", Some("ab")),
            (r"\bé", "xé", Some("é")),
            (r"x\b", "xé", Some("x")),
            (r"\bfoo\b", "a foo b", Some("foo")),
            // A `{` that is not a repetition is a literal.
            (r#"{"a":(\d+)}"#, r#"x{"a":1}"#, Some(r#"{"a":1}"#)),
            (r"a{", "a{", Some("a{")),
            (r"a{,2}", "a{,2}", Some("a{,2}")),
            (r"a{01}", "a{01}", Some("a{01}")),
            (r"a{2}", "aaa", Some("aa")),
            (r"a{1,}", "aaa", Some("aaa")),
            (r"a{1,2}", "aaa", Some("aa")),
            // Classes: `[` inside is literal, `&&`/`~~` are not operators,
            // a leading `]` is literal, POSIX classes work.
            (r"[[]+", "a[[", Some("[[")),
            (r"[a&&b]+", "&a&b", Some("&a&b")),
            (r"[~~]+", "x~~", Some("~~")),
            (r"[]a]+", "]a", Some("]a")),
            (r"[^]a]+", "]ab", Some("b")),
            (r"[[:digit:]x]+", "ab1x2", Some("1x2")),
            (r"[[:^alpha:]]+", "ab12", Some("12")),
            // Escaped punctuation is itself (Rust's `\<` is a boundary).
            (r"\<(\w+)\>", "<tag>", Some("<tag>")),
            (r"\-\_\ ", "-_ ", Some("-_ ")),
            // \Q...\E quotes.
            (r"\Qa.b*\E+", "a.b**", Some("a.b**")),
            (r"x\Q.(", "x.(", Some("x.(")),
            // Untouched: \x{..}, \p{..}, named groups of both forms.
            (r"\x{41}\p{Greek}", "Aα", Some("Aα")),
            (r"(?<n>a)(?P<m>b)", "ab", Some("ab")),
        ];
        for (p, input, want) in cases {
            let re = compile_go(p).unwrap_or_else(|e| panic!("{p}: {e}"));
            assert_eq!(
                re.find(input).map(|m| m.as_str()),
                *want,
                "pattern {p} ({}) on {input:?}",
                translate_go(p).unwrap()
            );
        }
        for bad in [r"(", r"a**b[", r"\", r"[[:nosuch:]]"] {
            assert!(compile_go(bad).is_err(), "{bad}");
        }
    }
}
