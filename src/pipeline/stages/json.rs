//! The `json` stage: Promtail's
//! `- json: {expressions: {name: jmespath}, source, drop_malformed}`.
//!
//! Owns: [`Config`], the stage, a JSON reader that decodes a line the way
//! Promtail's (json-iterator) does into JMESPath values, and [`go_json`],
//! which writes a value back as Go's JSON marshaller does.
//!
//! What it does, as Promtail v3.6 does it: the line (or the extracted value
//! `source`, as Go's `getString` renders it) is decoded as a JSON object,
//! and every JMESPath expression of `expressions` is searched in it; an
//! empty expression means the name itself (`level:` ≡ `level: level`). The
//! result is stored under the name: strings and bools as they are, numbers
//! as `f64` (every JSON number goes through `float64` in Go: integers above
//! 2^53 lose precision, and they print without an exponent), null as null,
//! objects and arrays as their JSON text (Go's `json.Marshal`: `<`, `>`,
//! `&`, U+2028 and U+2029 escaped, numbers in Go's float form; keys are
//! sorted — Go writes them in map order, which is random). An expression
//! that fails at run time sets nothing. The line is never changed.
//!
//! Not JSON: a line (or source) that is not a JSON object — an array, a
//! scalar, an empty line, trailing text — extracts nothing; with
//! `drop_malformed: true` the entry is dropped (counted under
//! `logentry_dropped_lines_total{reason="malformed_json"}`; Promtail drops
//! it without counting). The literal `null` decodes (to an empty document,
//! every expression gives null), as in Go. A `source` that is absent or
//! null skips the stage and is never dropped. The reader is strict JSON
//! with json-iterator's quirks kept where logs meet them: a raw control
//! character in a string is an error unless a backslash escape came before
//! it in that string, lone surrogate escapes become U+FFFD, duplicate keys
//! keep the last value, numbers out of `f64` range are an error. Nesting is
//! limited to [`MAX_DEPTH`] levels (deeper documents are malformed).
//!
//! Config errors: no `expressions` (or `- json:` with no value),
//! `source: ""`, an expression that does not compile (the error names
//! `expressions.<name>`).
//!
//! Must never: change the line, or lose an entry without counting it.

use super::common::source_text;
use super::BuildCtx;
use crate::entry::Entry;
use crate::pipeline::extracted::format_float;
use crate::pipeline::{Ctx, Stage, Value};
use jmespath::{Rcvar, Variable};
use serde::Deserialize;
use std::collections::BTreeMap;

/// Whether the stage runs.
pub const HONOURED: bool = true;

/// The `reason` label of an entry dropped by `drop_malformed`.
pub const DROP_REASON: &str = "malformed_json";

/// Deepest nesting of objects and arrays the reader accepts.
pub const MAX_DEPTH: usize = 1000;

/// `json:` options, with Promtail's names and defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Name in the extracted map → JMESPath expression (empty or null: the
    /// name itself). Required, at least one.
    pub expressions: BTreeMap<String, Option<String>>,
    /// The extracted value to decode instead of the line.
    pub source: Option<String>,
    /// Drop entries whose line (or source) is not a JSON object.
    pub drop_malformed: bool,
}

/// Builds the stage; `- json:` with no value is an error (no expressions).
pub fn build(c: Option<&Config>, _ctx: &BuildCtx) -> Result<Option<Box<dyn Stage>>, String> {
    let default = Config::default();
    Ok(Some(Box::new(JsonStage::new(c.unwrap_or(&default))?)))
}

/// The compiled expressions, in name order (`jmespath`'s `sync` feature
/// makes them `Send`: the tailer thread owns the pipeline).
struct Expressions(Vec<(String, jmespath::Expression<'static>)>);

/// The stage. See the module docs.
pub struct JsonStage {
    expressions: Expressions,
    source: Option<String>,
    drop_malformed: bool,
}

impl JsonStage {
    pub fn new(c: &Config) -> Result<Self, String> {
        if c.expressions.is_empty() {
            return Err("expressions: at least one JMESPath expression is required".into());
        }
        if c.source.as_deref() == Some("") {
            return Err("source must not be empty".into());
        }
        let mut exprs = Vec::with_capacity(c.expressions.len());
        for (name, e) in &c.expressions {
            let text = match e.as_deref() {
                Some(e) if !e.is_empty() => e,
                _ => name.as_str(),
            };
            let compiled = jmespath::compile(text).map_err(|err| {
                format!(
                    "expressions.{name}: could not compile JMES expression {text:?}: {} (column {})",
                    err.reason, err.column
                )
            })?;
            exprs.push((name.clone(), compiled));
        }
        Ok(JsonStage {
            expressions: Expressions(exprs),
            source: c.source.clone(),
            drop_malformed: c.drop_malformed,
        })
    }

    /// The values the expressions find in `input`, or `Err` if it is not a
    /// JSON object.
    /// Extracts the configured values from the entry's source into its
    /// extracted map; `Err` if the source is not JSON (nothing extracted).
    fn apply(&self, entry: &mut Entry) -> Result<(), ()> {
        let found = match source_text(entry, self.source.as_deref()) {
            Some(input) => self.extract(&input)?,
            None => Vec::new(),
        };
        for (i, v) in found {
            entry.extracted.insert(&self.expressions.0[i].0, v);
        }
        Ok(())
    }

    fn extract(&self, input: &str) -> Result<Vec<(usize, Value)>, ()> {
        let doc = parse_document(input)?;
        let mut found = Vec::with_capacity(self.expressions.0.len());
        for (i, (_, expr)) in self.expressions.0.iter().enumerate() {
            // Not `expr.search(doc)`: without the crate's nightly-only
            // `specialized` feature, `search` rebuilds the whole document
            // through serde for every expression (4 expressions: 4 copies).
            let mut ctx = jmespath::Context::new(expr.as_str(), &jmespath::DEFAULT_RUNTIME);
            if let Ok(r) = jmespath::interpret(&doc, expr.as_ast(), &mut ctx) {
                found.push((i, to_value(&r)));
            }
        }
        Ok(found)
    }
}

impl Stage for JsonStage {
    fn name(&self) -> &'static str {
        "json"
    }

    /// Without `drop_malformed`, a line that is not JSON passes unchanged.
    fn edits_only(&self) -> bool {
        !self.drop_malformed
    }

    fn edit(&mut self, entry: &mut Entry) {
        let _malformed = self.apply(entry);
    }

    fn process(&mut self, mut entry: Entry, ctx: &mut Ctx) {
        match self.apply(&mut entry) {
            Err(()) if self.drop_malformed => ctx.drop(entry, DROP_REASON),
            _ => ctx.emit(entry),
        }
    }
}

/// A JMESPath result as Promtail stores it in the extracted map.
fn to_value(v: &Variable) -> Value {
    match v {
        Variable::Null => Value::Null,
        Variable::String(s) => Value::String(s.clone()),
        Variable::Bool(b) => Value::Bool(*b),
        Variable::Number(n) => n.as_f64().map_or(Value::Null, Value::from),
        _ => {
            let mut s = String::new();
            go_json(v, &mut s);
            Value::String(s)
        }
    }
}

/// Writes `v` as Go's JSON marshaller (json-iterator, HTML-safe) does.
/// Object keys come out sorted.
pub fn go_json(v: &Variable, out: &mut String) {
    match v {
        Variable::Null => out.push_str("null"),
        Variable::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Variable::Number(n) => out.push_str(&go_json_float(n.as_f64().unwrap_or(0.0))),
        Variable::String(s) => go_json_string(s, out),
        Variable::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                go_json(x, out);
            }
            out.push(']');
        }
        Variable::Object(o) => {
            out.push('{');
            for (i, (k, x)) in o.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                go_json_string(k, out);
                out.push(':');
                go_json(x, out);
            }
            out.push('}');
        }
        // Go marshals an expression reference (a struct without exported
        // fields) as an empty object.
        Variable::Expref(_) => out.push_str("{}"),
    }
}

/// Go's JSON number: `'f'` form, or `'e'` form below 1e-6 and from 1e21 on
/// (`1e+21`, `1e-7`).
pub fn go_json_float(f: f64) -> String {
    let abs = f.abs();
    if abs == 0.0 || (1e-6..1e21).contains(&abs) {
        return format_float(f);
    }
    let s = format!("{f:e}");
    match s.split_once('e') {
        Some((m, e)) => match e.strip_prefix('-') {
            Some(neg) => format!("{m}e-{neg}"),
            None => format!("{m}e+{e:0>2}"),
        },
        None => s,
    }
}

/// A JSON string as Go writes it with HTML escaping.
fn go_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' | '\0'..='\u{1f}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            _ => out.push(c),
        }
    }
    out.push('"');
}

/// Decodes a JSON object (or `null`) as Promtail does; see the module docs.
fn parse_document(s: &str) -> Result<Rcvar, ()> {
    let mut p = Reader {
        b: s.as_bytes(),
        i: 0,
    };
    p.ws();
    // Cheap refusal of what cannot be an object: most non-JSON lines stop here.
    let v = match p.peek() {
        Some(b'{') => p.value(0)?,
        Some(b'n') => {
            p.literal(b"null")?;
            Rcvar::new(Variable::Null)
        }
        _ => return Err(()),
    };
    p.ws();
    if p.i != p.b.len() {
        return Err(());
    }
    Ok(v)
}

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn literal(&mut self, lit: &[u8]) -> Result<(), ()> {
        if self.b[self.i..].starts_with(lit) {
            self.i += lit.len();
            Ok(())
        } else {
            Err(())
        }
    }

    fn value(&mut self, depth: usize) -> Result<Rcvar, ()> {
        self.ws();
        let v = match self.peek().ok_or(())? {
            b'{' => {
                if depth >= MAX_DEPTH {
                    return Err(());
                }
                self.i += 1;
                let mut map = BTreeMap::new();
                self.ws();
                if self.peek() == Some(b'}') {
                    self.i += 1;
                } else {
                    loop {
                        self.ws();
                        if self.peek() != Some(b'"') {
                            return Err(());
                        }
                        let k = self.string()?;
                        self.ws();
                        if self.peek() != Some(b':') {
                            return Err(());
                        }
                        self.i += 1;
                        let v = self.value(depth + 1)?;
                        map.insert(k, v);
                        self.ws();
                        match self.peek() {
                            Some(b',') => self.i += 1,
                            Some(b'}') => {
                                self.i += 1;
                                break;
                            }
                            _ => return Err(()),
                        }
                    }
                }
                Variable::Object(map)
            }
            b'[' => {
                if depth >= MAX_DEPTH {
                    return Err(());
                }
                self.i += 1;
                let mut arr = Vec::new();
                self.ws();
                if self.peek() == Some(b']') {
                    self.i += 1;
                } else {
                    loop {
                        arr.push(self.value(depth + 1)?);
                        self.ws();
                        match self.peek() {
                            Some(b',') => self.i += 1,
                            Some(b']') => {
                                self.i += 1;
                                break;
                            }
                            _ => return Err(()),
                        }
                    }
                }
                Variable::Array(arr)
            }
            b'"' => Variable::String(self.string()?),
            b't' => {
                self.literal(b"true")?;
                Variable::Bool(true)
            }
            b'f' => {
                self.literal(b"false")?;
                Variable::Bool(false)
            }
            b'n' => {
                self.literal(b"null")?;
                Variable::Null
            }
            _ => Variable::Number(self.number()?),
        };
        Ok(Rcvar::new(v))
    }

    /// A JSON number, read as Go's `float64`.
    fn number(&mut self) -> Result<serde_json::Number, ()> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        let digits = |r: &mut Self| {
            let s = r.i;
            while r.peek().is_some_and(|c| c.is_ascii_digit()) {
                r.i += 1;
            }
            r.i - s
        };
        let int_start = self.i;
        match digits(self) {
            0 => return Err(()),
            n if n > 1 && self.b[int_start] == b'0' => return Err(()),
            _ => {}
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if digits(self) == 0 {
                return Err(());
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if digits(self) == 0 {
                return Err(());
            }
        }
        let text = std::str::from_utf8(&self.b[start..self.i]).map_err(|_| ())?;
        let f: f64 = text.parse().map_err(|_| ())?;
        if !f.is_finite() {
            return Err(());
        }
        Ok(number(f))
    }

    /// A JSON string (the reader is at its opening quote).
    fn string(&mut self) -> Result<String, ()> {
        self.i += 1;
        let start = self.i;
        // Fast path: no escapes.
        loop {
            match self.peek().ok_or(())? {
                b'"' => {
                    let s = std::str::from_utf8(&self.b[start..self.i]).map_err(|_| ())?;
                    self.i += 1;
                    return Ok(s.to_string());
                }
                b'\\' => break,
                // json-iterator refuses a raw control character only before
                // the first escape of a string.
                c if c < b' ' => return Err(()),
                _ => self.i += 1,
            }
        }
        let mut buf: Vec<u8> = self.b[start..self.i].to_vec();
        loop {
            let c = self.peek().ok_or(())?;
            self.i += 1;
            match c {
                b'"' => return String::from_utf8(buf).map_err(|_| ()),
                b'\\' => {
                    let e = self.peek().ok_or(())?;
                    self.i += 1;
                    match e {
                        b'"' | b'\\' | b'/' => buf.push(e),
                        b'b' => buf.push(8),
                        b'f' => buf.push(12),
                        b'n' => buf.push(b'\n'),
                        b'r' => buf.push(b'\r'),
                        b't' => buf.push(b'\t'),
                        b'u' => {
                            let r = self.hex4()?;
                            let ch = if (0xD800..0xE000).contains(&r) {
                                if self.b[self.i..].starts_with(b"\\u") {
                                    self.i += 2;
                                    let r2 = self.hex4()?;
                                    match combine_surrogates(r, r2) {
                                        Some(ch) => ch,
                                        None => {
                                            push_char(&mut buf, '\u{fffd}');
                                            char::from_u32(r2).unwrap_or('\u{fffd}')
                                        }
                                    }
                                } else {
                                    '\u{fffd}'
                                }
                            } else {
                                char::from_u32(r).unwrap_or('\u{fffd}')
                            };
                            push_char(&mut buf, ch);
                        }
                        _ => return Err(()),
                    }
                }
                _ => buf.push(c),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, ()> {
        let h = self.b.get(self.i..self.i + 4).ok_or(())?;
        if !h.iter().all(u8::is_ascii_hexdigit) {
            return Err(());
        }
        let r = h.iter().fold(0u32, |acc, &c| {
            acc * 16 + (c as char).to_digit(16).unwrap_or(0)
        });
        self.i += 4;
        Ok(r)
    }
}

fn combine_surrogates(hi: u32, lo: u32) -> Option<char> {
    if (0xD800..0xDC00).contains(&hi) && (0xDC00..0xE000).contains(&lo) {
        char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
    } else {
        None
    }
}

fn push_char(buf: &mut Vec<u8>, c: char) {
    let mut tmp = [0u8; 4];
    buf.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
}

/// A JMESPath number holding Go's `float64`: integral values are kept as
/// integers so that JMESPath's own printing (`to_string`) writes `1`, as Go
/// does, not `1.0`.
fn number(f: f64) -> serde_json::Number {
    if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 && !(f == 0.0 && f.is_sign_negative())
    {
        serde_json::Number::from(f as i64)
    } else {
        serde_json::Number::from_f64(f).unwrap_or_else(|| serde_json::Number::from(0))
    }
}

#[cfg(test)]
#[path = "json/tests.rs"]
mod tests;
