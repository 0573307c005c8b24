//! The `labels` stage: Promtail's `- labels: {name: source}`.
//!
//! Owns: [`Config`] (also the shape of `structured_metadata`), the stage, and
//! two helpers the label-changing stages of this family share:
//! [`LabelCache`] (derived label sets, built once per stream and change, not
//! per line) and [`with_text`] (an extracted value as text without
//! allocating when it already is a string).
//!
//! What it does, as Promtail v3.6 does it: for every `name: source` pair
//! (an empty or missing source means `source = name`), if the extracted map
//! has `source` and its value is string-like (a string, number or bool, read
//! as Promtail's `getString`), the stream label `name` is set to that text —
//! an empty text included (Loki drops empty labels on ingest). An absent
//! key, `null`, or a JSON object/array leaves the label as it was. Label
//! names must match `[a-zA-Z_][a-zA-Z0-9_]*`: any other name is a build
//! error (`invalid label name: …`); `- labels:` with no map is a build error
//! too (`label stage config cannot be empty`), `{}` is a stage that does
//! nothing.
//!
//! Must never: rebuild a label set per line (entries of one stream share
//! one set; the derived set is cached per input set and change), or allocate
//! for a line whose labels already have the extracted values.

use super::common::valid_label_name;
use super::BuildCtx;
use crate::entry::Entry;
use crate::labels::{LabelMap, LabelSet};
use crate::pipeline::extracted::to_go_string;
use crate::pipeline::{Stage, Value};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use std::fmt;

/// Whether the stage runs.
pub const HONOURED: bool = true;

/// `labels:` options: label name → extracted key (`None`/empty: the same
/// name), in the order written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config(pub Vec<(String, Option<String>)>);

impl<'de> Deserialize<'de> for Config {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Config;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of label name to extracted key")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Config, A::Error> {
                let mut v: Vec<(String, Option<String>)> = Vec::new();
                while let Some((k, s)) = m.next_entry::<String, Option<String>>()? {
                    match v.iter_mut().find(|(n, _)| *n == k) {
                        Some(e) => e.1 = s,
                        None => v.push((k, s)),
                    }
                }
                Ok(Config(v))
            }
        }
        d.deserialize_map(V)
    }
}

/// A label name and the extracted key it comes from.
pub(super) type NameSource = (Box<str>, Box<str>);

impl Config {
    /// (name, source) pairs with empty sources filled in; names checked.
    pub(super) fn resolve(&self) -> Result<Vec<NameSource>, String> {
        self.0
            .iter()
            .map(|(name, src)| {
                if !valid_label_name(name) {
                    return Err(format!("invalid label name: {name}"));
                }
                let src = match src.as_deref() {
                    None | Some("") => name.as_str(),
                    Some(s) => s,
                };
                Ok((name.as_str().into(), src.into()))
            })
            .collect()
    }
}

/// Builds the stage.
pub fn build(c: Option<&Config>, _ctx: &BuildCtx) -> Result<Option<Box<dyn Stage>>, String> {
    let c = c.ok_or("label stage config cannot be empty")?;
    Ok(Some(Box::new(LabelsStage {
        pairs: c.resolve()?,
        cache: LabelCache::default(),
    })))
}

/// The stage. See the module docs.
pub struct LabelsStage {
    pairs: Vec<(Box<str>, Box<str>)>,
    /// (input set, changed (pair index, value)) → output set.
    cache: LabelCache<Vec<(usize, String)>>,
}

impl Stage for LabelsStage {
    fn name(&self) -> &'static str {
        "labels"
    }

    fn edits_only(&self) -> bool {
        true
    }

    fn edit(&mut self, e: &mut Entry) {
        let mut changes: Vec<(usize, String)> = Vec::new();
        for (i, (name, src)) in self.pairs.iter().enumerate() {
            let Some(v) = e.extracted.get(src) else {
                continue;
            };
            let current = e.labels.get(name);
            if let Some(Some(v)) = with_text(v, |t| (current != Some(t)).then(|| t.to_string())) {
                changes.push((i, v));
            }
        }
        if !changes.is_empty() {
            let pairs = &self.pairs;
            e.labels = self.cache.get_or_build(&e.labels, changes, |l, ch| {
                l.merged(ch.iter().map(|(i, v)| (&*pairs[*i].0, v.as_str())))
            });
        }
    }
}

/// Calls `f` with `v` as Promtail's `getString` text (borrowed for strings,
/// formatted for numbers and bools); `None` if `v` is not string-like.
pub(super) fn with_text<R>(v: &Value, f: impl FnOnce(&str) -> R) -> Option<R> {
    match v {
        Value::String(s) => Some(f(s)),
        other => to_go_string(other).map(|s| f(&s)),
    }
}

/// Derived label sets, keyed by the input set (hashed once, when it was
/// built) and what the stage changes (`K`): entries of one stream share one
/// output set instead of building a new one per line.
///
/// Bounded: at most [`LabelCache::MAX_VARIANTS`] changes are remembered per
/// input set and [`LabelCache::MAX_ENTRIES`] in all; past that the cache
/// starts over (long-gone streams, or a label fed from a high-cardinality
/// field).
pub(super) struct LabelCache<K> {
    map: LabelMap<Vec<(K, LabelSet)>>,
    entries: usize,
}

impl<K> Default for LabelCache<K> {
    fn default() -> Self {
        LabelCache {
            map: LabelMap::default(),
            entries: 0,
        }
    }
}

impl<K: PartialEq> LabelCache<K> {
    pub const MAX_VARIANTS: usize = 64;
    pub const MAX_ENTRIES: usize = 8192;

    /// The set derived from `input` by the change `key`, built with `build`
    /// on a miss.
    pub fn get_or_build(
        &mut self,
        input: &LabelSet,
        key: K,
        build: impl FnOnce(&LabelSet, &K) -> LabelSet,
    ) -> LabelSet {
        if let Some(out) = self
            .map
            .get(input)
            .and_then(|v| v.iter().find(|(k, _)| *k == key))
        {
            return out.1.clone();
        }
        let out = build(input, &key);
        if self.entries >= Self::MAX_ENTRIES {
            self.map.clear();
            self.entries = 0;
        }
        let variants = self.map.entry(input.clone()).or_default();
        if variants.len() >= Self::MAX_VARIANTS {
            self.entries -= variants.len();
            variants.clear();
        }
        variants.push((key, out.clone()));
        self.entries += 1;
        out
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries
    }
}

/// Test helpers shared by this family of stages' tests.
#[cfg(test)]
pub(super) mod test_support {
    use super::super::BuildCtx;
    use crate::entry::{Entry, Timestamp};
    use crate::labels::LabelSet;
    use crate::metrics::Metrics;
    use crate::pipeline::stages::test_harness::Harness;
    use crate::pipeline::{Ctx, Stage};
    use std::sync::Arc;

    /// An entry's structured metadata, borrowed, in order.
    pub fn md(e: &Entry) -> Vec<(&str, &str)> {
        e.metadata.iter().map(|(k, v)| (&**k, &**v)).collect()
    }

    /// A built stage, as the pipeline holds it.
    pub struct Boxed(pub Box<dyn Stage>);
    impl Stage for Boxed {
        fn name(&self) -> &'static str {
            self.0.name()
        }
        fn process(&mut self, e: Entry, ctx: &mut Ctx) {
            self.0.process(e, ctx)
        }
        fn uses_extracted(&self) -> bool {
            self.0.uses_extracted()
        }
    }

    pub fn ctx() -> BuildCtx {
        BuildCtx::new(Arc::new(Metrics::new()))
    }

    /// A harness around a built stage with stream labels `labels`.
    pub fn harness(stage: Box<dyn Stage>, labels: &[(&str, &str)]) -> Harness<Boxed> {
        Harness::of(Boxed(stage), LabelSet::new(labels.iter().copied()))
    }

    /// Runs one entry (line `line`, extracted map seeded with the labels,
    /// then `extracted`'s keys) through the stage and returns what came out.
    pub fn run_line(h: &mut Harness<Boxed>, line: &str, extracted: serde_json::Value) -> Entry {
        h.offset += 1;
        let ack = h.tracker.issue(crate::ack::Position::Offset(h.offset));
        let mut e = Entry::new(h.labels.clone(), Timestamp(7), line.into(), ack);
        e.extracted.seed(&h.labels);
        if let serde_json::Value::Object(m) = extracted {
            for (k, v) in m {
                e.extracted.insert(&k, v);
            }
        }
        h.stage.process(e, &mut Ctx::new(&mut h.out, &h.metrics));
        assert_eq!(h.out.len(), 1, "one entry out");
        h.out.pop().unwrap()
    }

    /// Whether two sets are the same allocation (built once, shared).
    pub fn same_set(a: &LabelSet, b: &LabelSet) -> bool {
        let p = |l: &LabelSet| l.iter().next().map(|(k, _)| k.as_ptr());
        a == b && p(a) == p(b)
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;

    fn cfg(yaml: &str) -> Config {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    fn stage(yaml: &str) -> Box<dyn Stage> {
        build(Some(&cfg(yaml)), &ctx()).unwrap().unwrap()
    }

    /// One entry through the stage; its labels.
    fn run(yaml: &str, labels: &[(&str, &str)], extracted: serde_json::Value) -> LabelSet {
        let mut h = harness(stage(yaml), labels);
        let e = run_line(&mut h, "l", extracted);
        e.ack.ack();
        e.labels
    }

    #[test]
    fn sets_labels_from_string_like_values() {
        let l = run(
            "{level: , app: service, n: num, b: flag, empty: e}",
            &[("job", "j")],
            serde_json::json!({"level": "info", "service": "api", "num": 1500.0, "flag": true, "e": ""}),
        );
        assert_eq!(
            l,
            LabelSet::new([
                ("job", "j"),
                ("level", "info"),
                ("app", "api"),
                ("n", "1500"),
                ("b", "true"),
                ("empty", "")
            ])
        );
    }

    #[test]
    fn absent_null_and_objects_leave_the_label_alone() {
        // `c` holds JSON text (a string, as the json stage stores objects),
        // so it is set; `a` is absent; `job` comes from the seeded labels.
        let l = run(
            "{a: , c: , job: }",
            &[("job", "j"), ("c", "keep")],
            serde_json::json!({"c": "{\"x\":1}"}),
        );
        assert_eq!(l, LabelSet::new([("job", "j"), ("c", "{\"x\":1}")]));
        let l = run("{b: }", &[("b", "old")], serde_json::json!({"b": null}));
        assert_eq!(l.get("b"), Some("old"));
        let l = run(
            "{b: src}",
            &[("b", "old")],
            serde_json::json!({"src": null}),
        );
        assert_eq!(l.get("b"), Some("old"));
    }

    #[test]
    fn overrides_existing_labels_and_shares_the_derived_set() {
        let mut h = harness(stage("{level: }"), &[("job", "j"), ("level", "x")]);
        let a = run_line(&mut h, "l", serde_json::json!({"level": "warn"}));
        let b = run_line(&mut h, "l", serde_json::json!({"level": "warn"}));
        assert_eq!(a.labels.get("level"), Some("warn"));
        assert!(same_set(&a.labels, &b.labels));
        // The value the stream already has: the input set itself.
        let c = run_line(&mut h, "l", serde_json::json!({"level": "x"}));
        assert!(same_set(&c.labels, &h.labels));
        for e in [a, b, c] {
            e.ack.ack();
        }
        assert_eq!(h.committed(), h.offset);
    }

    #[test]
    fn config_errors() {
        let e = build(None, &ctx()).err().unwrap();
        assert_eq!(e, "label stage config cannot be empty");
        let e = build(Some(&cfg("{\"bad-name\": x}")), &ctx())
            .err()
            .unwrap();
        assert_eq!(e, "invalid label name: bad-name");
        let e = build(Some(&cfg("{\"\": x}")), &ctx()).err().unwrap();
        assert_eq!(e, "invalid label name: ");
        assert!(build(Some(&cfg("{}")), &ctx()).unwrap().is_some());
        assert!(serde_yaml_ng::from_str::<Config>("[a]").is_err());
        assert!(serde_yaml_ng::from_str::<Config>("{a: [1]}").is_err());
    }

    #[test]
    fn cache_is_bounded() {
        let mut c: LabelCache<usize> = LabelCache::default();
        let l = LabelSet::new([("a", "1")]);
        for i in 0..LabelCache::<usize>::MAX_VARIANTS * 3 {
            c.get_or_build(&l, i, |l, k| l.with("k", &k.to_string()));
        }
        assert!(c.len() <= LabelCache::<usize>::MAX_VARIANTS);
        for i in 0..LabelCache::<usize>::MAX_ENTRIES + 5 {
            let l = LabelSet::new([("a", i.to_string())]);
            c.get_or_build(&l, 0, |l, _| l.clone());
        }
        assert!(c.len() <= LabelCache::<usize>::MAX_ENTRIES);
    }
}
