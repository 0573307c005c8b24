//! Prometheus relabeling (`relabel_configs`), as Promtail applies it to the
//! targets discovery makes: the semantics of Prometheus's `model/relabel`
//! package in the Prometheus 3 line the last Promtail releases build with.
//!
//! Owns:
//! - [`RelabelConfig`]: one `relabel_configs` entry, with Prometheus's keys
//!   and defaults, Go YAML's reading of `key:` with no value (the zero value:
//!   `regex:` alone then matches only the empty string, as in Prometheus) and
//!   Prometheus's case-insensitive `action`.
//! - [`Relabeler::new`]: Prometheus's `Config.Validate` rules (which action
//!   needs `target_label`, `modulus`, which forbid other keys, label-name and
//!   `$`-template validity) plus the checks Prometheus makes while parsing
//!   (`source_labels` names, the regex), each error naming the entry and key
//!   (`relabel_configs[2].target_label: ...`). The regex is anchored as
//!   Prometheus anchors it, `^(?s:REGEX)$`, and Go's RE2 dialect is mapped onto
//!   the `regex` crate (`go_regex`): ASCII-only `\d \w \s \b`, literal
//!   `{` that is not a repetition, `\Q...\E`, octal escapes, escaped
//!   punctuation, and `[`, `&&`, `~~` inside classes (literal in Go, set
//!   syntax in Rust).
//! - [`Relabeler::apply`]: the rules in order over one label set, with
//!   Prometheus's `labels.Builder` behaviour (setting a label to `""` deletes
//!   it; `labelmap` sees the labels in the builder's order: untouched ones
//!   sorted, then those set by earlier rules in the order they were set), Go's
//!   `Regexp.ExpandString` template rules, Go's `ReplaceAllString` for
//!   `labelmap`, Go's one-to-one case mapping for `lowercase`/`uppercase`,
//!   and MD5 for `hashmod`.
//!
//! Label names follow the legacy Prometheus rule, `[a-zA-Z_][a-zA-Z0-9_]*`
//! (Promtail up to 3.3; the rule Loki documents for labels). The newest
//! Promtail validates with Prometheus 3's UTF-8 names instead, which let a
//! rule create a name Loki's documentation does not allow; one function,
//! `is_label_name`, holds the choice.
//!
//! Must never: panic on any input, run per log line (it runs once per
//! discovered target), or change a label no rule selects.

use md5::{Digest, Md5};
use regex::{Captures, Regex};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;

/// Go YAML's reading of `key:` with no value: the type's zero value.
fn null_is_zero<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Option::<T>::deserialize(d).map(Option::unwrap_or_default)
}

/// One `relabel_configs` entry, with Prometheus's defaults.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RelabelConfig {
    #[serde(deserialize_with = "null_is_zero")]
    pub source_labels: Vec<String>,
    #[serde(deserialize_with = "null_is_zero")]
    pub separator: String,
    #[serde(deserialize_with = "null_is_zero")]
    pub regex: String,
    #[serde(deserialize_with = "null_is_zero")]
    pub modulus: u64,
    #[serde(deserialize_with = "null_is_zero")]
    pub target_label: String,
    #[serde(deserialize_with = "null_is_zero")]
    pub replacement: String,
    pub action: Action,
}

const DEFAULT_SEPARATOR: &str = ";";
const DEFAULT_REGEX: &str = "(.*)";
const DEFAULT_REPLACEMENT: &str = "$1";

impl Default for RelabelConfig {
    fn default() -> Self {
        RelabelConfig {
            source_labels: Vec::new(),
            separator: DEFAULT_SEPARATOR.into(),
            regex: DEFAULT_REGEX.into(),
            modulus: 0,
            target_label: String::new(),
            replacement: DEFAULT_REPLACEMENT.into(),
            action: Action::Replace,
        }
    }
}

/// A relabeling action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Action {
    #[default]
    Replace,
    Keep,
    Drop,
    KeepEqual,
    DropEqual,
    HashMod,
    LabelMap,
    LabelDrop,
    LabelKeep,
    Lowercase,
    Uppercase,
}

const ACTIONS: [Action; 11] = [
    Action::Replace,
    Action::Keep,
    Action::Drop,
    Action::KeepEqual,
    Action::DropEqual,
    Action::HashMod,
    Action::LabelMap,
    Action::LabelDrop,
    Action::LabelKeep,
    Action::Lowercase,
    Action::Uppercase,
];

impl Action {
    /// The name as written in YAML (`keepequal`, `hashmod`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Replace => "replace",
            Action::Keep => "keep",
            Action::Drop => "drop",
            Action::KeepEqual => "keepequal",
            Action::DropEqual => "dropequal",
            Action::HashMod => "hashmod",
            Action::LabelMap => "labelmap",
            Action::LabelDrop => "labeldrop",
            Action::LabelKeep => "labelkeep",
            Action::Lowercase => "lowercase",
            Action::Uppercase => "uppercase",
        }
    }
}

impl Serialize for Action {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Action {
    /// Case-insensitive, as Prometheus (`strings.ToLower` then an exact
    /// match); `action:` with no value is Prometheus's "cannot be empty".
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let Some(s) = Option::<String>::deserialize(d)? else {
            return Err(serde::de::Error::custom("relabel action cannot be empty"));
        };
        let lower = go_lower(&s);
        ACTIONS
            .into_iter()
            .find(|a| a.as_str() == lower)
            .ok_or_else(|| {
                let msg = if s.is_empty() {
                    "relabel action cannot be empty".to_string()
                } else {
                    format!("unknown relabel action {s:?}")
                };
                serde::de::Error::custom(msg)
            })
    }
}

/// Compiled relabel rules.
#[derive(Debug, Clone)]
pub struct Relabeler {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
struct Rule {
    source_labels: Vec<String>,
    separator: String,
    regex: Regex,
    op: Op,
}

#[derive(Debug, Clone)]
enum Op {
    Replace {
        target: Template,
        replacement: Template,
    },
    Keep,
    Drop,
    KeepEqual(String),
    DropEqual(String),
    HashMod {
        target: String,
        modulus: u64,
    },
    LabelMap(Template),
    LabelDrop,
    LabelKeep,
    Lowercase(String),
    Uppercase(String),
}

impl Relabeler {
    /// Compiles `cfgs`; errors name the entry index and key.
    pub fn new(cfgs: &[RelabelConfig]) -> Result<Relabeler, String> {
        let rules = cfgs
            .iter()
            .enumerate()
            .map(|(i, c)| {
                compile(c).map_err(|(key, msg)| format!("relabel_configs[{i}].{key}: {msg}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Relabeler { rules })
    }

    /// Applies the rules to `labels`; false: the target is dropped (and
    /// `labels` is left half-relabeled, to be discarded).
    pub fn apply(&self, labels: &mut BTreeMap<String, String>) -> bool {
        let mut b = Builder {
            labels,
            set_order: Vec::new(),
        };
        self.rules.iter().all(|r| r.apply(&mut b))
    }
}

/// A compile error: the key it is about, and the message.
type KeyError = (String, String);

fn err(key: &str, msg: String) -> KeyError {
    (key.to_string(), msg)
}

/// Validates one entry (Prometheus's parse-time checks, then
/// `Config.Validate` in its order) and compiles it.
fn compile(c: &RelabelConfig) -> Result<Rule, KeyError> {
    if let Some((j, bad)) = c
        .source_labels
        .iter()
        .enumerate()
        .find(|(_, l)| !is_label_name(l))
    {
        return Err(err(
            &format!("source_labels[{j}]"),
            format!("{bad:?} is not a valid label name"),
        ));
    }
    let anchored = format!("^(?s:{})$", go_regex(&c.regex));
    let regex = Regex::new(&anchored).map_err(|e| {
        err(
            "regex",
            format!(
                "invalid regular expression {:?}: {}",
                c.regex,
                regex_error(&e)
            ),
        )
    })?;

    let a = c.action;
    let name = a.as_str();
    use Action::*;
    if a == HashMod && c.modulus == 0 {
        return Err(err(
            "modulus",
            "relabel configuration for hashmod requires non-zero modulus".into(),
        ));
    }
    let needs_target = matches!(
        a,
        Replace | HashMod | Lowercase | Uppercase | KeepEqual | DropEqual
    );
    if needs_target && c.target_label.is_empty() {
        return Err(err(
            "target_label",
            format!("relabel configuration for {name} action requires 'target_label' value"),
        ));
    }
    let bad_target = || {
        err(
            "target_label",
            format!(
                "{:?} is invalid 'target_label' for {name} action",
                c.target_label
            ),
        )
    };
    if a == Replace {
        let ok = if c.target_label.contains('$') {
            is_label_template(&c.target_label)
        } else {
            is_label_name(&c.target_label)
        };
        if !ok {
            return Err(bad_target());
        }
    }
    let plain_target = matches!(a, Lowercase | Uppercase | KeepEqual | DropEqual);
    if plain_target && !is_label_name(&c.target_label) {
        return Err(bad_target());
    }
    if plain_target && c.replacement != DEFAULT_REPLACEMENT {
        return Err(err(
            "replacement",
            format!("'replacement' can not be set for {name} action"),
        ));
    }
    if a == LabelMap && !is_label_template(&c.replacement) {
        return Err(err(
            "replacement",
            format!(
                "{:?} is invalid 'replacement' for {name} action",
                c.replacement
            ),
        ));
    }
    if a == HashMod && !is_label_name(&c.target_label) {
        return Err(bad_target());
    }
    if matches!(a, KeepEqual | DropEqual) {
        let extra = [
            ("regex", c.regex != DEFAULT_REGEX),
            ("modulus", c.modulus != 0),
            ("separator", c.separator != DEFAULT_SEPARATOR),
            ("replacement", c.replacement != DEFAULT_REPLACEMENT),
        ];
        if let Some((key, _)) = extra.iter().find(|(_, set)| *set) {
            return Err(err(
                key,
                format!(
                    "{name} action requires only 'source_labels' and `target_label`, and no other fields"
                ),
            ));
        }
    }
    if matches!(a, LabelDrop | LabelKeep) {
        let extra = [
            ("source_labels", !c.source_labels.is_empty()),
            ("target_label", !c.target_label.is_empty()),
            ("modulus", c.modulus != 0),
            ("separator", c.separator != DEFAULT_SEPARATOR),
            ("replacement", c.replacement != DEFAULT_REPLACEMENT),
        ];
        if let Some((key, _)) = extra.iter().find(|(_, set)| *set) {
            return Err(err(
                key,
                format!("{name} action requires only 'regex', and no other fields"),
            ));
        }
    }

    let op = match a {
        Replace => Op::Replace {
            target: Template::parse(&c.target_label, &regex),
            replacement: Template::parse(&c.replacement, &regex),
        },
        Keep => Op::Keep,
        Drop => Op::Drop,
        KeepEqual => Op::KeepEqual(c.target_label.clone()),
        DropEqual => Op::DropEqual(c.target_label.clone()),
        HashMod => Op::HashMod {
            target: c.target_label.clone(),
            modulus: c.modulus,
        },
        LabelMap => Op::LabelMap(Template::parse(&c.replacement, &regex)),
        LabelDrop => Op::LabelDrop,
        LabelKeep => Op::LabelKeep,
        Lowercase => Op::Lowercase(c.target_label.clone()),
        Uppercase => Op::Uppercase(c.target_label.clone()),
    };
    Ok(Rule {
        source_labels: c.source_labels.clone(),
        separator: c.separator.clone(),
        regex,
        op,
    })
}

/// The one-line reason of a `regex` crate error (its syntax errors draw the
/// translated pattern, which the user never wrote).
fn regex_error(e: &regex::Error) -> String {
    let text = e.to_string();
    match text.rfind("error: ") {
        Some(i) => text[i + "error: ".len()..].trim().to_string(),
        None => text.split_whitespace().collect::<Vec<_>>().join(" "),
    }
}

/// A legacy Prometheus label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
fn is_label_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A label name with `$name` / `${name}` references in it (Prometheus's
/// `relabelTargetLegacy`): word characters and references, not starting
/// with a digit; every `$` starts a well-formed reference.
fn is_label_template(s: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let b = s.as_bytes();
    if b.first().is_none_or(|c| c.is_ascii_digit()) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if word(b[i]) {
            i += 1;
            continue;
        }
        if b[i] != b'$' {
            return false;
        }
        i += 1;
        let braced = b.get(i) == Some(&b'{');
        if braced {
            i += 1;
        }
        let start = i;
        while i < b.len() && word(b[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if braced {
            if b.get(i) != Some(&b'}') {
                return false;
            }
            i += 1;
        }
    }
    true
}

/// A Go `Regexp.ExpandString` template, resolved against one regex.
#[derive(Debug, Clone, Default)]
struct Template {
    pieces: Vec<Piece>,
}

#[derive(Debug, Clone)]
enum Piece {
    Text(String),
    Group(usize),
}

impl Template {
    /// Go's rules: `$$` is `$`; `$name` takes the longest run of letters,
    /// digits and `_` (so `$1x` names the group `1x`); `${name}` is
    /// explicit; an all-digit name without a leading zero is a group number;
    /// a reference to no group expands to nothing; a `$` that starts no
    /// well-formed reference is literal.
    fn parse(tpl: &str, re: &Regex) -> Template {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut rest = tpl;
        while let Some(at) = rest.find('$') {
            text.push_str(&rest[..at]);
            rest = &rest[at + 1..];
            if let Some(after) = rest.strip_prefix('$') {
                text.push('$');
                rest = after;
                continue;
            }
            let Some((name, after)) = reference(rest) else {
                text.push('$');
                continue;
            };
            rest = after;
            let is_number = name.bytes().all(|b| b.is_ascii_digit())
                && !(name.len() > 1 && name.starts_with('0'));
            let group = if is_number {
                name.parse::<usize>()
                    .ok()
                    .filter(|&n| n < re.captures_len())
            } else {
                re.capture_names().position(|g| g == Some(name))
            };
            if let Some(g) = group {
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(Piece::Group(g));
            }
        }
        text.push_str(rest);
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Template { pieces }
    }

    fn expand_into(&self, caps: &Captures<'_>, out: &mut String) {
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Group(g) => {
                    if let Some(m) = caps.get(*g) {
                        out.push_str(m.as_str());
                    }
                }
            }
        }
    }

    fn expand(&self, caps: &Captures<'_>) -> String {
        let mut out = String::new();
        self.expand_into(caps, &mut out);
        out
    }
}

/// After a `$`: the name of `name...` or `{name}` and the rest, or None when
/// malformed (no name, or no closing brace). Name characters are Go's
/// `unicode.IsLetter`, `unicode.IsDigit` and `_`; outside ASCII, Rust's
/// alphabetic/numeric properties stand in for them.
fn reference(s: &str) -> Option<(&str, &str)> {
    let braced = s.starts_with('{');
    let body = if braced { &s[1..] } else { s };
    let len = body
        .find(|c: char| !(c == '_' || c.is_alphanumeric()))
        .unwrap_or(body.len());
    if len == 0 {
        return None;
    }
    let (name, rest) = body.split_at(len);
    if braced {
        rest.strip_prefix('}').map(|r| (name, r))
    } else {
        Some((name, rest))
    }
}

/// Go's `Regexp.ReplaceAllString` with a template: successive
/// non-overlapping matches, an empty match right after a match not replaced.
fn replace_all(re: &Regex, tpl: &Template, src: &str) -> String {
    let mut out = String::new();
    let mut last_end = 0;
    let mut search = 0;
    while search <= src.len() {
        let Some(caps) = re.captures_at(src, search) else {
            break;
        };
        let Some(m) = caps.get(0) else {
            break;
        };
        out.push_str(&src[last_end..m.start()]);
        if m.end() > last_end || m.start() == 0 {
            tpl.expand_into(&caps, &mut out);
        }
        last_end = m.end();
        let width = src[search..].chars().next().map_or(0, char::len_utf8);
        search = if search + width > m.end() {
            search + width
        } else if search + 1 > m.end() {
            search + 1
        } else {
            m.end()
        };
    }
    out.push_str(&src[last_end..]);
    out
}

/// Prometheus's `labels.Builder` over the caller's map: setting `""`
/// deletes; `set_order` lists the names set (and not deleted since) in the
/// order they were first set, for [`Builder::snapshot`].
struct Builder<'a> {
    labels: &'a mut BTreeMap<String, String>,
    set_order: Vec<String>,
}

impl Builder<'_> {
    fn get(&self, name: &str) -> &str {
        self.labels.get(name).map_or("", String::as_str)
    }

    fn set(&mut self, name: String, value: String) {
        if value.is_empty() {
            self.del(&name);
            return;
        }
        if !self.set_order.contains(&name) {
            self.set_order.push(name.clone());
        }
        self.labels.insert(name, value);
    }

    fn del(&mut self, name: &str) {
        self.set_order.retain(|n| n != name);
        self.labels.remove(name);
    }

    /// The labels in `Builder.Range` order: the untouched ones sorted, then
    /// the ones set by earlier rules, in the order they were set.
    fn snapshot(&self) -> Vec<(String, String)> {
        let untouched = self
            .labels
            .iter()
            .filter(|(n, _)| !self.set_order.contains(n));
        let set = self
            .set_order
            .iter()
            .filter_map(|n| self.labels.get_key_value(n));
        untouched
            .chain(set)
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect()
    }

    fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.labels.retain(|n, _| keep(n));
        let labels = &*self.labels;
        self.set_order.retain(|n| labels.contains_key(n));
    }
}

impl Rule {
    /// One rule; false: drop the target.
    fn apply(&self, b: &mut Builder<'_>) -> bool {
        let value = self
            .source_labels
            .iter()
            .map(|l| b.get(l))
            .collect::<Vec<_>>()
            .join(&self.separator);
        match &self.op {
            Op::Keep => return self.regex.is_match(&value),
            Op::Drop => return !self.regex.is_match(&value),
            Op::KeepEqual(target) => return b.get(target) == value,
            Op::DropEqual(target) => return b.get(target) != value,
            Op::Replace {
                target,
                replacement,
            } => {
                // No match: no change.
                if let Some(caps) = self.regex.captures(&value) {
                    let name = target.expand(&caps);
                    // An invalid expanded name skips the rule.
                    if is_label_name(&name) {
                        b.set(name, replacement.expand(&caps));
                    }
                }
            }
            Op::Lowercase(target) => b.set(target.clone(), go_lower(&value)),
            Op::Uppercase(target) => b.set(target.clone(), go_upper(&value)),
            Op::HashMod { target, modulus } => {
                let digest = Md5::digest(value.as_bytes());
                let tail = digest[8..]
                    .iter()
                    .fold(0u64, |acc, &byte| (acc << 8) | u64::from(byte));
                if let Some(m) = tail.checked_rem(*modulus) {
                    b.set(target.clone(), m.to_string());
                }
            }
            Op::LabelMap(replacement) => {
                for (name, v) in b.snapshot() {
                    if self.regex.is_match(&name) {
                        b.set(replace_all(&self.regex, replacement, &name), v);
                    }
                }
            }
            Op::LabelDrop => b.retain(|n| !self.regex.is_match(n)),
            Op::LabelKeep => b.retain(|n| self.regex.is_match(n)),
        }
        true
    }
}

/// Go's `strings.ToLower`: each character through its one-to-one (simple)
/// lowercase mapping.
fn go_lower(s: &str) -> String {
    s.chars()
        .map(|c| {
            let mut l = c.to_lowercase();
            match (l.next(), l.next()) {
                (Some(one), None) => one,
                // The one multi-character full mapping; its simple one is 'i'.
                _ if c == '\u{130}' => 'i',
                _ => c,
            }
        })
        .collect()
}

/// Go's `strings.ToUpper`: each character through its one-to-one (simple)
/// uppercase mapping; characters whose only uppercase is several characters
/// (`ß`, ligatures) stay as they are.
fn go_upper(s: &str) -> String {
    s.chars()
        .map(|c| {
            let mut u = c.to_uppercase();
            match (u.next(), u.next()) {
                (Some(one), None) => one,
                // Greek with ypogegrammeni: the simple mapping is the titlecase form.
                _ => match u32::from(c) {
                    0x1F80..=0x1F87 | 0x1F90..=0x1F97 | 0x1FA0..=0x1FA7 => {
                        char::from_u32(u32::from(c) + 8).unwrap_or(c)
                    }
                    0x1FB3 => '\u{1FBC}',
                    0x1FC3 => '\u{1FCC}',
                    0x1FF3 => '\u{1FFC}',
                    _ => c,
                },
            }
        })
        .collect()
}

/// Rewrites a Go (RE2) regular expression into the `regex` crate's syntax
/// with the same meaning. The dialects agree except for: `\d \D \w \W \s \S
/// \b \B` (ASCII in Go, Unicode in Rust), `{` that does not start a valid
/// repetition (literal in Go), `\Q...\E` and octal escapes (Go only), escaped
/// punctuation (`\<` is literal in Go, a word boundary in Rust), and `[`,
/// `&`, `~` inside a class (literal in Go; nesting and set operators in
/// Rust). Anything Go rejects is passed on for the `regex` crate to reject.
fn go_regex(p: &str) -> String {
    let mut out = String::with_capacity(p.len() + 16);
    let mut rest = p;
    let mut in_class = false;
    // Just after `[` or `[^`, where `]` is a literal.
    let mut class_start = false;
    while let Some(c) = rest.chars().next() {
        rest = &rest[c.len_utf8()..];
        let first_in_class = std::mem::replace(&mut class_start, false);
        match c {
            '\\' => {
                let Some(e) = rest.chars().next() else {
                    out.push('\\');
                    break;
                };
                rest = &rest[e.len_utf8()..];
                match e {
                    'd' => out.push_str("[0-9]"),
                    'D' => out.push_str("[^0-9]"),
                    'w' => out.push_str("[0-9A-Za-z_]"),
                    'W' => out.push_str("[^0-9A-Za-z_]"),
                    's' => out.push_str(r"[\t\n\x0C\r ]"),
                    'S' => out.push_str(r"[^\t\n\x0C\r ]"),
                    'b' | 'B' if !in_class => {
                        out.push_str("(?-u:\\");
                        out.push(e);
                        out.push(')');
                    }
                    'Q' if !in_class => {
                        let (lit, after) = match rest.find("\\E") {
                            Some(i) => (&rest[..i], &rest[i + 2..]),
                            None => (rest, ""),
                        };
                        out.push_str(&regex::escape(lit));
                        rest = after;
                    }
                    '0'..='7' => {
                        // Go: `\0` and `\1`..`\7` followed by an octal digit
                        // start an octal code of up to three digits; a lone
                        // `\1`..`\7` is a backreference, which both reject.
                        let octal =
                            |s: &str| s.bytes().next().filter(|b| (b'0'..=b'7').contains(b));
                        if e != '0' && octal(rest).is_none() {
                            out.push('\\');
                            out.push(e);
                            continue;
                        }
                        let mut code = u32::from(e) - u32::from('0');
                        for _ in 0..2 {
                            let Some(d) = octal(rest) else { break };
                            code = code * 8 + u32::from(d - b'0');
                            rest = &rest[1..];
                        }
                        out.push_str(&format!("\\x{{{code:X}}}"));
                    }
                    'p' | 'P' | 'x' => {
                        out.push('\\');
                        out.push(e);
                        if rest.starts_with('{') {
                            let end = rest.find('}').map_or(rest.len(), |i| i + 1);
                            out.push_str(&rest[..end]);
                            rest = &rest[end..];
                        }
                    }
                    e if e.is_ascii() && !e.is_ascii_alphanumeric() => {
                        out.push_str(&format!("\\x{{{:X}}}", u32::from(e)));
                    }
                    e => {
                        out.push('\\');
                        out.push(e);
                    }
                }
            }
            '[' if in_class => {
                // A POSIX class `[:name:]` runs to the next `:]`, as in Go.
                if let Some(end) = rest
                    .strip_prefix(':')
                    .and_then(|r| r.find(":]"))
                    .map(|i| i + 3)
                {
                    out.push('[');
                    out.push_str(&rest[..end]);
                    rest = &rest[end..];
                } else {
                    out.push_str("\\[");
                }
            }
            '[' => {
                in_class = true;
                class_start = true;
                out.push('[');
                if let Some(after) = rest.strip_prefix('^') {
                    out.push('^');
                    rest = after;
                }
            }
            ']' if in_class && first_in_class => out.push_str("\\]"),
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            '&' | '~' if in_class => {
                out.push('\\');
                out.push(c);
            }
            '{' if !in_class => match go_repeat_len(rest) {
                Some(len) => {
                    out.push('{');
                    out.push_str(&rest[..len]);
                    rest = &rest[len..];
                }
                None => out.push_str("\\{"),
            },
            '}' if !in_class => out.push_str("\\}"),
            c => out.push(c),
        }
    }
    out
}

/// After a `{`: the length of `n}`, `n,}` or `n,m}` when it is a Go
/// repetition (decimal numbers without leading zeros), else None.
fn go_repeat_len(s: &str) -> Option<usize> {
    fn int(s: &str) -> Option<usize> {
        let n = s.bytes().take_while(u8::is_ascii_digit).count();
        (n > 0 && !(n > 1 && s.starts_with('0'))).then_some(n)
    }
    let mut i = int(s)?;
    if s[i..].starts_with(',') {
        i += 1;
        if !s[i..].starts_with('}') {
            i += int(&s[i..])?;
        }
    }
    s[i..].starts_with('}').then_some(i + 1)
}

#[cfg(test)]
mod tests;
