//! The `replace` stage: Promtail's
//! `- replace: {expression, source, replace}`.
//!
//! Owns: [`Config`], the stage, and the small Go-template subset the
//! `replace` option is rendered with.
//!
//! What it does, as Promtail v3.6 does it: every match of `expression` (a
//! Go regex, see [`super::regex::compile_go`]) in the line — or in the
//! extracted value `source` — is found, and each of its capture groups (not
//! the whole match) is replaced by the `replace` template rendered with
//! `.Value` = the captured text (default `""`: the captured text is
//! removed). The result becomes the new line, or the new value of `source`
//! (always a string then). Promtail's details, kept:
//! - A group is replaced only if it starts at or after the end of the last
//!   replaced group: a group nested in (or overlapping) a replaced one is
//!   left as it is; adjacent groups are all replaced (grafana/loki#4874).
//! - Named groups of the **first** match store their *replaced* text in the
//!   extracted map. A named group that took no part in the first match
//!   stores the template rendered with `""` if any group of any match
//!   captured an empty string, and nothing otherwise (Promtail looks the
//!   captured text up in a map of replacements).
//! - No match: nothing changes. An expression without groups matches but
//!   changes nothing (with `source`, the value is still rewritten as a
//!   string).
//! - `source` absent or null: the stage is skipped for the entry.
//!
//! The template: Promtail renders `replace` as a Go `text/template` whose
//! data is the extracted map (values as strings; null values left out) plus
//! `Value`. tailtrace supports text, `{{ .Value }}`, `{{ .<key> }}` (a
//! missing key renders `<no value>`, as Go does), trim markers (`{{- `,
//! ` -}}`) and comments. Anything else — functions, pipelines, `if`,
//! `range` — is a build error naming `replace` rather than a silent
//! mis-render (the `template` stage has the full language). A template
//! that does not parse is a build error too (Promtail skips the stage on
//! every entry instead).
//!
//! Must never: drop an entry.

use super::common::source_text;
use super::regex::compile_go;
use super::BuildCtx;
use crate::entry::Entry;
use crate::pipeline::extracted::to_go_string;
use crate::pipeline::{Extracted, Stage, Value};
use serde::Deserialize;

/// Whether the stage runs.
pub const HONOURED: bool = true;

/// `replace:` options, with Promtail's names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// A Go (RE2) regular expression; required.
    pub expression: Option<String>,
    /// The extracted value to rewrite instead of the line.
    pub source: Option<String>,
    /// What each capture group becomes (a template); default `""`.
    pub replace: Option<String>,
}

/// Builds the stage; `- replace:` with no value is an error (no expression).
pub fn build(c: Option<&Config>, _ctx: &BuildCtx) -> Result<Option<Box<dyn Stage>>, String> {
    let default = Config::default();
    Ok(Some(Box::new(ReplaceStage::new(c.unwrap_or(&default))?)))
}

/// The stage. See the module docs.
pub struct ReplaceStage {
    re: ::regex::Regex,
    /// (group index, name) of the named groups.
    names: Vec<(usize, String)>,
    source: Option<String>,
    template: Template,
}

impl ReplaceStage {
    pub fn new(c: &Config) -> Result<Self, String> {
        let expr = match c.expression.as_deref() {
            Some(e) if !e.is_empty() => e,
            _ => return Err("expression is required".into()),
        };
        if c.source.as_deref() == Some("") {
            return Err("source must not be empty".into());
        }
        let re = compile_go(expr).map_err(|e| format!("expression: {e}"))?;
        let template = Template::parse(c.replace.as_deref().unwrap_or(""))
            .map_err(|e| format!("replace: {e}"))?;
        let names = re
            .capture_names()
            .enumerate()
            .filter_map(|(i, n)| n.map(|n| (i, n.to_string())))
            .collect();
        Ok(ReplaceStage {
            re,
            names,
            source: c.source.clone(),
            template,
        })
    }

    /// The rewritten text and the named groups' values, or `None` if the
    /// expression does not match.
    fn rewrite(
        &self,
        input: &str,
        extracted: &Extracted,
    ) -> Option<(String, Vec<(usize, String)>)> {
        let mut result = String::with_capacity(input.len());
        let mut prev = 0;
        let mut first = None;
        let mut any_empty = false;
        for caps in self.re.captures_iter(input) {
            for m in caps.iter().skip(1).flatten() {
                if prev <= m.start() {
                    result.push_str(&input[prev..m.start()]);
                    self.template.render(m.as_str(), extracted, &mut result);
                    prev = m.end();
                }
                any_empty |= m.is_empty();
            }
            if first.is_none() {
                first = Some(caps);
            }
        }
        let first = first?;
        result.push_str(&input[prev..]);
        let mut named = Vec::new();
        for (n, (i, _)) in self.names.iter().enumerate() {
            let captured = match first.get(*i) {
                Some(m) => m.as_str(),
                None if any_empty => "",
                None => continue,
            };
            let mut v = String::new();
            self.template.render(captured, extracted, &mut v);
            named.push((n, v));
        }
        Some((result, named))
    }
}

impl Stage for ReplaceStage {
    fn name(&self) -> &'static str {
        "replace"
    }

    fn edits_only(&self) -> bool {
        true
    }

    fn edit(&mut self, entry: &mut Entry) {
        let outcome = source_text(entry, self.source.as_deref())
            .and_then(|input| self.rewrite(&input, &entry.extracted));
        if let Some((result, named)) = outcome {
            match &self.source {
                Some(key) => entry.extracted.insert(key, Value::String(result)),
                None => entry.line = result.into(),
            }
            for (n, v) in named {
                entry.extracted.insert(&self.names[n].1, Value::String(v));
            }
        }
    }
}

/// The supported subset of a Go template (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    /// `{{ .Value }}`: the captured text.
    Value,
    /// `{{ .key }}`: an extracted value.
    Key(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Template(Vec<Piece>);

/// Go template whitespace (what trim markers remove).
const GO_SPACE: [char; 4] = [' ', '\t', '\r', '\n'];

impl Template {
    fn parse(src: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut rest = src;
        let mut trim_next = false;
        while let Some(open) = rest.find("{{") {
            let mut before = &rest[..open];
            if trim_next {
                before = before.trim_start_matches(GO_SPACE);
            }
            let mut body = &rest[open + 2..];
            if body.starts_with('-') && body[1..].starts_with(GO_SPACE) {
                before = before.trim_end_matches(GO_SPACE);
                body = &body[2..];
            }
            text.push_str(before);
            let close = body
                .find("}}")
                .ok_or_else(|| format!("template: unclosed action in {src:?}"))?;
            let mut action = &body[..close];
            rest = &body[close + 2..];
            trim_next = false;
            // ` -}}`: a space, then the marker.
            if let Some(a) = action.strip_suffix('-') {
                if a.ends_with(GO_SPACE) {
                    action = &a[..a.len() - 1];
                    trim_next = true;
                }
            }
            if action.starts_with("/*") {
                if !action.ends_with("*/") || action.len() < 4 {
                    return Err(format!("template: unclosed comment in {src:?}"));
                }
                continue;
            }
            let piece = match action.trim_matches(GO_SPACE) {
                ".Value" => Piece::Value,
                a => match a.strip_prefix('.').filter(|k| is_go_identifier(k)) {
                    Some(k) => Piece::Key(k.to_string()),
                    None => {
                        return Err(format!(
                            "template action {{{{{action}}}}} is not supported: \
                             replace handles text, {{{{ .Value }}}} and {{{{ .<extracted key> }}}} \
                             (use a template stage for more)"
                        ))
                    }
                },
            };
            if !text.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut text)));
            }
            pieces.push(piece);
        }
        if trim_next {
            rest = rest.trim_start_matches(GO_SPACE);
        }
        text.push_str(rest);
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(Template(pieces))
    }

    fn render(&self, value: &str, extracted: &Extracted, out: &mut String) {
        for p in &self.0 {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Value => out.push_str(value),
                Piece::Key(k) => match extracted.get(k).and_then(to_go_string) {
                    Some(s) => out.push_str(&s),
                    None => out.push_str("<no value>"),
                },
            }
        }
    }
}

/// A Go identifier: a letter or `_`, then letters, digits or `_`.
fn is_go_identifier(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(f) if f.is_alphabetic() || f == '_')
        && c.all(|ch| ch.is_alphanumeric() || ch == '_')
}

#[cfg(test)]
#[path = "replace/tests.rs"]
mod tests;
