//! The `structured_metadata` stage: Promtail's
//! `- structured_metadata: {name: source}`.
//!
//! Owns: the stage ([`Config`] is the `labels` stage's shape).
//!
//! What it does, as Promtail v3.6 does it, in three steps per entry:
//! 1. for every `name: source` pair (empty source = `name`) whose extracted
//!    value is string-like, `(name, text)` is appended to the entry's
//!    structured metadata;
//! 2. for every pair not served by step 1 whose `source` is a stream label,
//!    `(name, label value)` is appended;
//! 3. every `source` used above that is a stream label with the *same*
//!    value leaves the stream labels — so naming a label moves it out of the
//!    stream into metadata (the extracted map starts with the labels, so
//!    step 1 usually serves it). A label whose extracted value was changed
//!    by an earlier stage keeps its label and sends the new value as
//!    metadata.
//!
//! Config errors are the `labels` stage's (`label stage config cannot be
//! empty`, `invalid label name: …`).
//!
//! Must never: rebuild a label set per line (the reduced set is cached per
//! input set and removed names), or drop an entry.

use super::labels::{with_text, LabelCache};
use super::BuildCtx;
use crate::entry::{Entry, MetaStr};
use crate::labels::LabelSet;
use crate::pipeline::Stage;

/// Whether the stage runs.
pub const HONOURED: bool = true;

/// `structured_metadata:` options: metadata name → extracted key or label.
pub type Config = super::labels::Config;

/// Builds the stage.
pub fn build(c: Option<&Config>, _ctx: &BuildCtx) -> Result<Option<Box<dyn Stage>>, String> {
    let c = c.ok_or("label stage config cannot be empty")?;
    Ok(Some(Box::new(StructuredMetadataStage {
        pairs: c
            .resolve()?
            .into_iter()
            .map(|(name, src)| (MetaStr::from(name), src))
            .collect(),
        cache: LabelCache::default(),
    })))
}

/// The stage. See the module docs.
pub struct StructuredMetadataStage {
    pairs: Vec<(MetaStr, Box<str>)>,
    /// (input set, indices of the pairs whose source label goes) → output.
    cache: LabelCache<Vec<usize>>,
}

impl Stage for StructuredMetadataStage {
    fn name(&self) -> &'static str {
        "structured_metadata"
    }

    fn edits_only(&self) -> bool {
        true
    }

    fn edit(&mut self, e: &mut Entry) {
        // Per pair: the value its source was sent with, if any.
        let mut used: Vec<Option<usize>> = vec![None; self.pairs.len()];
        for (i, (name, src)) in self.pairs.iter().enumerate() {
            if let Some(v) = e
                .extracted
                .get(src)
                .and_then(|v| with_text(v, MetaStr::new))
            {
                e.metadata.push((name.clone(), v));
                used[i] = Some(e.metadata.len() - 1);
            }
        }
        for (i, (name, src)) in self.pairs.iter().enumerate() {
            if self.served(&used, i) {
                continue;
            }
            if let Some(v) = e.labels.get(src) {
                e.metadata.push((name.clone(), v.into()));
                used[i] = Some(e.metadata.len() - 1);
            }
        }
        // Sources that are labels with the value sent as metadata go.
        let remove: Vec<usize> = (0..self.pairs.len())
            .filter(|&i| {
                used[i].is_some_and(|m| e.labels.get(&self.pairs[i].1) == Some(&*e.metadata[m].1))
            })
            .collect();
        if !remove.is_empty() {
            let pairs = &self.pairs;
            e.labels = self.cache.get_or_build(&e.labels, remove, |l, rm| {
                LabelSet::new(
                    l.iter()
                        .filter(|(k, _)| !rm.iter().any(|&i| *pairs[i].1 == **k)),
                )
            });
        }
    }
}

impl StructuredMetadataStage {
    /// Whether pair `i`'s source was already sent (by pair `i` or another
    /// pair with the same source) in step 1.
    fn served(&self, used: &[Option<usize>], i: usize) -> bool {
        let src = &self.pairs[i].1;
        self.pairs
            .iter()
            .zip(used)
            .any(|((_, s), u)| s == src && u.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::super::labels::test_support::*;
    use super::*;
    use crate::pipeline::Ctx;

    fn cfg(yaml: &str) -> Config {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    fn stage(yaml: &str) -> Box<dyn Stage> {
        build(Some(&cfg(yaml)), &ctx()).unwrap().unwrap()
    }

    #[test]
    fn extracted_values_become_metadata() {
        let mut h = harness(
            stage("{trace_id: , user: uid, n: num, none: missing}"),
            &[("job", "j")],
        );
        let e = run_line(
            &mut h,
            "l",
            serde_json::json!({"trace_id": "abc", "uid": "u1", "num": 3.0, "missing": null}),
        );
        assert_eq!(md(&e), [("trace_id", "abc"), ("user", "u1"), ("n", "3")]);
        assert!(same_set(&e.labels, &h.labels));
        e.ack.ack();
    }

    #[test]
    fn naming_a_stream_label_moves_it_out_of_the_labels() {
        let mut h = harness(
            stage("{pod: , node: node_name}"),
            &[("job", "j"), ("pod", "p-1"), ("node_name", "n1")],
        );
        let a = run_line(&mut h, "l", serde_json::json!({}));
        assert_eq!(md(&a), [("pod", "p-1"), ("node", "n1")]);
        assert_eq!(a.labels, LabelSet::new([("job", "j")]));
        let b = run_line(&mut h, "l", serde_json::json!({}));
        assert!(same_set(&a.labels, &b.labels));
        for e in [a, b] {
            e.ack.ack();
        }
        assert_eq!(h.committed(), h.offset);
    }

    #[test]
    fn a_label_whose_extracted_value_changed_stays() {
        let mut h = harness(stage("{pod: }"), &[("job", "j"), ("pod", "p-1")]);
        let e = run_line(&mut h, "l", serde_json::json!({"pod": "other"}));
        assert_eq!(md(&e), [("pod", "other")]);
        assert_eq!(e.labels.get("pod"), Some("p-1"));
        e.ack.ack();
    }

    #[test]
    fn a_label_missing_from_the_extracted_map_is_still_moved() {
        // (A nested pipeline or an earlier stage may have removed the key.)
        let mut h = harness(stage("{pod: }"), &[("job", "j"), ("pod", "p-1")]);
        h.offset += 1;
        let ack = h.tracker.issue(crate::ack::Position::Offset(h.offset));
        let e = Entry::new(
            h.labels.clone(),
            crate::entry::Timestamp(1),
            "l".into(),
            ack,
        );
        h.stage.process(e, &mut Ctx::new(&mut h.out, &h.metrics));
        let e = h.out.pop().unwrap();
        assert_eq!(md(&e), [("pod", "p-1")]);
        assert_eq!(e.labels, LabelSet::new([("job", "j")]));
        e.ack.ack();
    }

    #[test]
    fn config_errors() {
        assert_eq!(
            build(None, &ctx()).err().unwrap(),
            "label stage config cannot be empty"
        );
        assert_eq!(
            build(Some(&cfg("{\"a.b\": x}")), &ctx()).err().unwrap(),
            "invalid label name: a.b"
        );
    }
}
