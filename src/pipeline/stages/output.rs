//! The `output` stage: Promtail's `- output: {source: key}`.
//!
//! Owns: [`Config`] and the stage.
//!
//! What it does, as Promtail v3.6 does it: the log line becomes the text of
//! the extracted value `source` (a string as it is, a number or bool as
//! Promtail's `getString` prints it). When `source` is absent from the
//! extracted map, or its value is `null` or not string-like, the line is left
//! unchanged. `source` is required: without it (or with `- output:` and no
//! options) the stage does not build (`output source value is required if
//! output is specified`).
//!
//! Must never: drop an entry, or touch labels, timestamp or the extracted
//! map.

use super::BuildCtx;
use crate::entry::Entry;
use crate::pipeline::{Stage, Value};
use serde::Deserialize;

/// Whether the stage runs.
pub const HONOURED: bool = true;

/// `output:` options.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The extracted key whose value becomes the line.
    pub source: Option<String>,
}

/// Builds the stage.
pub fn build(c: Option<&Config>, _ctx: &BuildCtx) -> Result<Option<Box<dyn Stage>>, String> {
    let source = c
        .and_then(|c| c.source.as_deref())
        .filter(|s| !s.is_empty())
        .ok_or("source: output source value is required if output is specified")?;
    Ok(Some(Box::new(OutputStage {
        source: source.into(),
    })))
}

/// The stage. See the module docs.
pub struct OutputStage {
    source: Box<str>,
}

impl Stage for OutputStage {
    fn name(&self) -> &'static str {
        "output"
    }

    fn edits_only(&self) -> bool {
        true
    }

    fn edit(&mut self, e: &mut Entry) {
        match e.extracted.get(&self.source) {
            Some(Value::String(s)) if *s != e.line => {
                if e.line.is_shared() {
                    e.line = s.as_str().into();
                } else {
                    let line = e.line.make_mut();
                    line.clear();
                    line.push_str(s);
                }
            }
            Some(Value::String(_)) => {}
            Some(v) => {
                if let Some(s) = crate::pipeline::extracted::to_go_string(v) {
                    e.line = s.into();
                }
            }
            None => {}
        }
    }
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
    fn line_becomes_the_extracted_value() {
        let mut h = harness(stage("{source: msg}"), &[("job", "j")]);
        let cases = [
            (serde_json::json!({"msg": "hello"}), "hello"),
            (serde_json::json!({"msg": ""}), ""),
            (serde_json::json!({"msg": 1500.0}), "1500"),
            (serde_json::json!({"msg": 0.25}), "0.25"),
            (serde_json::json!({"msg": false}), "false"),
            // Not string-like, or absent: unchanged.
            (serde_json::json!({"msg": null}), "orig"),
            (serde_json::json!({"other": "x"}), "orig"),
        ];
        for (extracted, want) in cases {
            let e = run_line(&mut h, "orig", extracted.clone());
            assert_eq!(e.line, want, "{extracted}");
            assert_eq!(e.labels, h.labels);
            e.ack.ack();
        }
        assert_eq!(h.committed(), h.offset);
    }

    #[test]
    fn source_is_required() {
        for c in [
            None,
            Some(Config::default()),
            Some(Config {
                source: Some(String::new()),
            }),
        ] {
            let e = build(c.as_ref(), &ctx()).err().unwrap();
            assert!(e.starts_with("source: "), "{e}");
        }
        assert!(serde_yaml_ng::from_str::<Config>("{source: a, x: 1}").is_err());
    }
}
