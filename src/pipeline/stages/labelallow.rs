//! The `labelallow` stage: Promtail's `- labelallow: [name, …]`.
//!
//! Owns: [`Config`] and the stage.
//!
//! What it does, as Promtail v3.6 does it: keeps only the listed labels of
//! the entry's stream labels and removes every other one — `filename` and
//! reserved `__…` labels (such as a `tenant` stage's `__tenant_id__`)
//! included, unless listed: Promtail's stage deletes every label not in the
//! list, without exceptions. Names are not checked. An empty list, or `-
//! labelallow:` with no list, does not build (`labelallow stage config
//! cannot be empty`).
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

/// `labelallow:` options: the label names.
pub use super::common::NameList as Config;

/// Builds the stage.
pub fn build(c: Option<&Config>, _ctx: &BuildCtx) -> Result<Option<Box<dyn Stage>>, String> {
    Ok(Some(Box::new(LabelAllowStage {
        names: Config::required(c, "labelallow")?,
        cache: LabelCache::default(),
    })))
}

/// The stage. See the module docs.
pub struct LabelAllowStage {
    names: Vec<Box<str>>,
    cache: LabelCache<()>,
}

impl LabelAllowStage {
    fn allowed(&self, name: &str) -> bool {
        self.names.iter().any(|n| **n == *name)
    }
}

impl Stage for LabelAllowStage {
    fn name(&self) -> &'static str {
        "labelallow"
    }

    fn uses_extracted(&self) -> bool {
        false
    }

    fn edits_only(&self) -> bool {
        true
    }

    fn edit(&mut self, e: &mut Entry) {
        if !e.labels.iter().all(|(k, _)| self.allowed(k)) {
            let names = &self.names;
            e.labels = self.cache.get_or_build(&e.labels, (), |l, _| {
                LabelSet::new(l.iter().filter(|(k, _)| names.iter().any(|n| **n == **k)))
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
    fn keeps_only_listed_labels_filename_and_reserved_go_too() {
        let labels = [
            ("app", "a"),
            ("filename", "/x.log"),
            ("__tenant_id__", "t"),
            ("job", "j"),
            ("pod", "p"),
        ];
        let mut h = harness(stage("[app, pod, nope]"), &labels);
        let a = run_line(&mut h, "l", serde_json::json!({}));
        assert_eq!(a.labels, LabelSet::new([("app", "a"), ("pod", "p")]));
        assert_eq!(a.extracted.get_string("job").as_deref(), Some("j"));
        let b = run_line(&mut h, "l", serde_json::json!({}));
        assert!(same_set(&a.labels, &b.labels));
        for e in [a, b] {
            e.ack.ack();
        }
        assert_eq!(h.committed(), h.offset);

        let mut h = harness(stage("[app, filename, __tenant_id__]"), &labels);
        let e = run_line(&mut h, "l", serde_json::json!({}));
        assert_eq!(
            e.labels,
            LabelSet::new([("app", "a"), ("filename", "/x.log"), ("__tenant_id__", "t")])
        );
        e.ack.ack();
    }

    #[test]
    fn all_allowed_keeps_the_set() {
        let mut h = harness(stage("[app, job]"), &[("app", "a")]);
        let e = run_line(&mut h, "l", serde_json::json!({}));
        assert!(same_set(&e.labels, &h.labels));
        e.ack.ack();
    }

    #[test]
    fn empty_config_is_an_error() {
        let want = "labelallow stage config cannot be empty";
        assert_eq!(build(None, &ctx()).err().unwrap(), want);
        assert_eq!(build(Some(&Config(vec![])), &ctx()).err().unwrap(), want);
        assert!(serde_yaml_ng::from_str::<Config>("{a: b}").is_err());
        let empty: Config = serde_yaml_ng::from_str("{}").unwrap();
        assert!(build(Some(&empty), &ctx()).is_err());
    }
}
