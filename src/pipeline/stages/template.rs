//! The `template` stage: Promtail's `- template: {source, template}`.
//!
//! Owns: [`Config`] and the stage; the Go-template engine lives in
//! `template/` (`parse`: lexer and parser, run once at
//! build; `exec`: evaluation per line; `funcs`: the function library;
//! Go's time layouts are the shared `crate::pipeline::gotime`).
//!
//! What it does, as Promtail v3.6 does it: renders `template` (Go
//! `text/template` syntax with sprig's functions and Promtail's own:
//! `ToLower`, `ToUpper`, `Replace`, `Trim*`, `Hash`, `Sha2Hash`,
//! `regexReplaceAll`, `regexReplaceAllLiteral`) against a map holding every
//! extracted value that is string-like (as its text), `Value` (the value of
//! `source`, when it exists) and `Entry` (the line), and stores the result
//! as a string at `source` in the extracted map. Observed behaviour it
//! keeps:
//! - a missing key renders `<no value>` (`{{ .nope }}`);
//! - a failing template — a function given a missing key where it wants a
//!   string (`{{ ToUpper .nope }}`), a bad regex, a type mismatch — leaves
//!   the entry and the extracted map unchanged (Promtail logs it at debug
//!   level);
//! - an empty result removes `source` from the extracted map;
//! - `Hash`/`Sha2Hash a b` hash `a + b`: `{{ Hash .Value "salt" }}` hashes
//!   value+salt, `{{ .Value | Hash "salt" }}` hashes salt+value.
//!
//! `source` is required (`template source value is required`); a template
//! that does not parse, or calls a function that does not exist, does not
//! build (`template: pipeline_template:1: function "x" not defined`), as
//! Go checks function names at parse time. Sprig functions tailtrace does
//! not implement (certificates, AES, semver, `merge`…, listed in `funcs`)
//! are build errors naming the function, never a silent difference.
//!
//! Differs from Promtail: `define`/`template`/`block` (named sub-templates)
//! are refused at build; `now` prints without Go's monotonic clock suffix;
//! `keys`/`values` list a map in key order (Go's order is random).
//!
//! Must never: panic on any template or line, or re-parse per line.

mod exec;
mod funcs;
mod parse;

use super::BuildCtx;
use crate::entry::Entry;
use crate::pipeline::{Stage, Value};
use serde::Deserialize;

/// Whether the stage runs.
pub const HONOURED: bool = true;

/// `template:` options.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The extracted key the result is stored at (and `.Value` reads).
    pub source: Option<String>,
    /// The Go template.
    pub template: Option<String>,
}

/// Builds the stage: parses the template once.
pub fn build(c: Option<&Config>, _ctx: &BuildCtx) -> Result<Option<Box<dyn Stage>>, String> {
    let d = Config::default();
    let c = c.unwrap_or(&d);
    let source = c
        .source
        .as_deref()
        .filter(|s| !s.is_empty())
        .ok_or("source: template source value is required")?;
    let nodes = parse::parse(c.template.as_deref().unwrap_or(""))
        .map_err(|e| format!("template: template: {e}"))?;
    Ok(Some(Box::new(TemplateStage {
        source: source.into(),
        nodes,
        env: exec::Env::new(),
    })))
}

/// The stage. See the module docs.
pub struct TemplateStage {
    source: Box<str>,
    nodes: Vec<parse::Node>,
    env: exec::Env,
}

impl TemplateStage {
    /// Renders the template for an entry: `Err` when it fails to execute.
    fn render(&mut self, e: &Entry) -> Result<String, String> {
        let data = exec::Data {
            extracted: &e.extracted,
            line: &e.line,
            source: &self.source,
        };
        exec::execute(&self.nodes, &data, &mut self.env)
    }
}

impl Stage for TemplateStage {
    fn name(&self) -> &'static str {
        "template"
    }

    fn edits_only(&self) -> bool {
        true
    }

    fn edit(&mut self, e: &mut Entry) {
        match self.render(e) {
            Ok(s) if s.is_empty() => {
                e.extracted.remove(&self.source);
            }
            Ok(s) => e.extracted.insert(&self.source, Value::String(s)),
            Err(err) => {
                tracing::debug!(stage = "template", error = %err, "failed to execute template on extracted value");
            }
        }
    }
}

#[cfg(test)]
mod tests;
