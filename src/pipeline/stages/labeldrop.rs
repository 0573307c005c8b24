//! The `labeldrop` stage: Promtail's `- labeldrop: [name, …]`.
//!
//! Owns: [`Config`] and the stage.
//!
//! What it does, as Promtail v3.6 does it: removes every listed label from
//! the entry's stream labels — any label, `filename` and reserved `__…`
//! labels (such as a `tenant` stage's `__tenant_id__`) included. Names not
//! present are ignored; names are not checked. An empty list, or `-
//! labeldrop:` with no list, does not build (`labeldrop stage config cannot
//! be empty`).
//!
//! Must never: rebuild a label set per line (the reduced set is cached per
//! input set), or touch the extracted map.

use super::labels::LabelCache;
use super::BuildCtx;
use crate::entry::Entry;
use crate::labels::LabelSet;
use crate::pipeline::Stage;

/// Whether the stage runs.
pub const HONOURED: bool = true;

/// `labeldrop:` options: the label names.
pub use super::common::NameList as Config;

/// Builds the stage.
pub fn build(c: Option<&Config>, _ctx: &BuildCtx) -> Result<Option<Box<dyn Stage>>, String> {
    Ok(Some(Box::new(LabelDropStage {
        names: Config::required(c, "labeldrop")?,
        cache: LabelCache::default(),
    })))
}

/// The stage. See the module docs.
pub struct LabelDropStage {
    names: Vec<Box<str>>,
    cache: LabelCache<()>,
}

impl Stage for LabelDropStage {
    fn name(&self) -> &'static str {
        "labeldrop"
    }

    fn uses_extracted(&self) -> bool {
        false
    }

    fn edits_only(&self) -> bool {
        true
    }

    fn edit(&mut self, e: &mut Entry) {
        if self.names.iter().any(|n| e.labels.get(n).is_some()) {
            let names = &self.names;
            e.labels = self.cache.get_or_build(&e.labels, (), |l, _| {
                LabelSet::new(l.iter().filter(|(k, _)| !names.iter().any(|n| **n == **k)))
            });
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
    fn drops_listed_labels_including_filename_and_reserved() {
        let labels = [
            ("app", "a"),
            ("filename", "/x.log"),
            ("__tenant_id__", "t"),
            ("job", "j"),
        ];
        let mut h = harness(stage("[filename, __tenant_id__, nope]"), &labels);
        let a = run_line(&mut h, "l", serde_json::json!({}));
        assert_eq!(a.labels, LabelSet::new([("app", "a"), ("job", "j")]));
        // Only stream labels go; the extracted map is not touched.
        assert_eq!(
            a.extracted.get_string("filename").as_deref(),
            Some("/x.log")
        );
        let b = run_line(&mut h, "l", serde_json::json!({}));
        assert!(same_set(&a.labels, &b.labels));
        for e in [a, b] {
            e.ack.ack();
        }
        assert_eq!(h.committed(), h.offset);
    }

    #[test]
    fn nothing_to_drop_keeps_the_set() {
        let mut h = harness(stage("[nope]"), &[("app", "a")]);
        let e = run_line(&mut h, "l", serde_json::json!({}));
        assert!(same_set(&e.labels, &h.labels));
        e.ack.ack();
    }

    #[test]
    fn empty_config_is_an_error() {
        let want = "labeldrop stage config cannot be empty";
        assert_eq!(build(None, &ctx()).err().unwrap(), want);
        assert_eq!(build(Some(&Config(vec![])), &ctx()).err().unwrap(), want);
        assert!(serde_yaml_ng::from_str::<Config>("{a: b}").is_err());
        let empty: Config = serde_yaml_ng::from_str("{}").unwrap();
        assert!(build(Some(&empty), &ctx()).is_err());
    }
}
