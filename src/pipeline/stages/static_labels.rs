//! The `static_labels` stage: Promtail's `- static_labels: {name: value}`.
//!
//! Owns: [`Config`] and the stage.
//!
//! What it does, as Promtail v3.6 does it: sets each listed label to its
//! fixed value, replacing a value the stream already has. A pair whose value
//! is empty or missing (`name:`) is skipped (the label is neither set nor
//! removed). `- static_labels:` with no map does not build (`static_labels
//! stage config cannot be empty`); `{}` is a stage that does nothing.
//!
//! Differs from Promtail: Promtail accepts any UTF-8 label name here; a name
//! outside `[a-zA-Z_][a-zA-Z0-9_]*` is refused at start (`invalid label
//! name: …`) because the push to Loki would fail for every entry of the
//! stream.
//!
//! Must never: rebuild a label set per line (the derived set is cached per
//! input set), or touch the extracted map.

use super::common::valid_label_name;
use super::labels::LabelCache;
use super::BuildCtx;
use crate::entry::Entry;
use crate::pipeline::Stage;

/// Whether the stage runs.
pub const HONOURED: bool = true;

/// `static_labels:` options: label name → value, in the order written.
pub type Config = super::labels::Config;

/// Builds the stage.
pub fn build(c: Option<&Config>, _ctx: &BuildCtx) -> Result<Option<Box<dyn Stage>>, String> {
    let c = c.ok_or("static_labels stage config cannot be empty")?;
    let mut pairs = Vec::new();
    for (name, value) in &c.0 {
        if !valid_label_name(name) {
            return Err(format!("invalid label name: {name}"));
        }
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            pairs.push((Box::<str>::from(name.as_str()), Box::<str>::from(v)));
        }
    }
    Ok(Some(Box::new(StaticLabelsStage {
        pairs,
        cache: LabelCache::default(),
    })))
}

/// The stage. See the module docs.
pub struct StaticLabelsStage {
    pairs: Vec<(Box<str>, Box<str>)>,
    cache: LabelCache<()>,
}

impl Stage for StaticLabelsStage {
    fn name(&self) -> &'static str {
        "static_labels"
    }

    fn uses_extracted(&self) -> bool {
        false
    }

    fn edits_only(&self) -> bool {
        true
    }

    fn edit(&mut self, e: &mut Entry) {
        if self
            .pairs
            .iter()
            .any(|(k, v)| e.labels.get(k) != Some(&**v))
        {
            let pairs = &self.pairs;
            e.labels = self.cache.get_or_build(&e.labels, (), |l, _| {
                l.merged(pairs.iter().map(|(k, v)| (&**k, &**v)))
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::labels::test_support::*;
    use super::*;
    use crate::labels::LabelSet;

    fn cfg(yaml: &str) -> Config {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    fn stage(yaml: &str) -> Box<dyn Stage> {
        build(Some(&cfg(yaml)), &ctx()).unwrap().unwrap()
    }

    #[test]
    fn sets_fixed_values_and_skips_empty_ones() {
        let mut h = harness(
            stage("{env: prod, job: fixed, skipped: , blank: ''}"),
            &[("job", "j"), ("blank", "stays")],
        );
        let a = run_line(&mut h, "l", serde_json::json!({"env": "ignored"}));
        assert_eq!(
            a.labels,
            LabelSet::new([("env", "prod"), ("job", "fixed"), ("blank", "stays")])
        );
        let b = run_line(&mut h, "l", serde_json::json!({}));
        assert!(same_set(&a.labels, &b.labels));
        for e in [a, b] {
            e.ack.ack();
        }
        assert_eq!(h.committed(), h.offset);
    }

    #[test]
    fn already_set_keeps_the_set() {
        let mut h = harness(stage("{env: prod}"), &[("env", "prod")]);
        let e = run_line(&mut h, "l", serde_json::json!({}));
        assert!(same_set(&e.labels, &h.labels));
        e.ack.ack();
    }

    #[test]
    fn config_errors() {
        assert_eq!(
            build(None, &ctx()).err().unwrap(),
            "static_labels stage config cannot be empty"
        );
        assert_eq!(
            build(Some(&cfg("{\"a b\": x}")), &ctx()).err().unwrap(),
            "invalid label name: a b"
        );
        assert!(build(Some(&cfg("{}")), &ctx()).unwrap().is_some());
        assert!(serde_yaml_ng::from_str::<Config>("[a]").is_err());
    }
}
