//! The stage engine: one engine for every source.
//!
//! Owns: the [`Stage`] trait, [`Ctx`] (how a stage emits, holds back or drops
//! an entry), and [`Pipeline`], which runs entries through a scrape config's
//! `pipeline_stages` in order. Stages live one per file under [`stages`].
//!
//! Design: a source calls [`Pipeline::process`] for each entry it read, on its
//! own thread, and receives the entries that came out. Stages are synchronous
//! and keep per-stream state (CRI partials, multiline blocks) keyed by the
//! entry's [`LabelSet`](crate::labels::LabelSet) — which includes `filename`,
//! so state never leaks between files. Stages with timers (multiline's
//! `max_wait_time`) get [`Pipeline::tick`] calls; [`Pipeline::flush`] empties
//! every held entry at shutdown or when a source ends.
//!
//! Must never: lose an entry silently. A stage either emits an entry, holds it
//! (and emits or drops it later), or drops it with [`Ctx::drop`], which counts
//! it under `logentry_dropped_lines_total{reason}` and acknowledges it so the
//! position can advance.

pub mod extracted;
pub mod gotime;
pub mod inspect;
pub mod library;
pub mod stages;

pub use extracted::{Extracted, Value};

use crate::entry::Entry;
use crate::metrics::{labels, Metrics};
use std::sync::Arc;
use std::time::Instant;

/// What a stage does with entries. See the module docs.
pub trait Stage: Send {
    /// Promtail's name of the stage (`cri`, `docker`, …).
    fn name(&self) -> &'static str;

    /// Processes one entry: emit it (possibly changed), hold it, or drop it.
    fn process(&mut self, entry: Entry, ctx: &mut Ctx);

    /// Called periodically; stages with timers emit what is due.
    fn tick(&mut self, _now: Instant, _ctx: &mut Ctx) {}

    /// Emits everything held (shutdown, end of a source).
    fn flush(&mut self, _ctx: &mut Ctx) {}

    /// False while the stage wants no more entries of the stream `labels`
    /// (a `limit` stage with `drop: false` over its rate): the source stops
    /// reading that stream, and only that one, until it says true again.
    fn accepts(&self, _labels: &crate::labels::LabelSet) -> bool {
        true
    }

    /// Whether the stage reads or writes the extracted map (the pipeline
    /// seeds it from the labels only if some stage does).
    fn uses_extracted(&self) -> bool {
        true
    }

    /// Told once, at build: whether a later stage uses the extracted map
    /// (a decoder then leaves its fields there, as Promtail's do; else it
    /// saves the work).
    fn downstream_uses_extracted(&mut self, _yes: bool) {}
}

/// A stage's output and the drop counters.
pub struct Ctx<'a> {
    out: &'a mut Vec<Entry>,
    metrics: &'a Metrics,
}

impl<'a> Ctx<'a> {
    pub fn new(out: &'a mut Vec<Entry>, metrics: &'a Metrics) -> Self {
        Ctx { out, metrics }
    }

    /// Passes the entry to the next stage.
    pub fn emit(&mut self, entry: Entry) {
        self.out.push(entry);
    }

    /// Drops the entry on purpose: counted and acknowledged.
    pub fn drop(&mut self, entry: Entry, reason: &str) {
        self.metrics
            .logentry_dropped_lines_total
            .get_or_create(&labels(&[("reason", reason)]))
            .inc();
        entry.ack.ack();
    }

    pub fn metrics(&self) -> &Metrics {
        self.metrics
    }
}

/// A scrape config's stages, in order.
pub struct Pipeline {
    stages: Vec<Box<dyn Stage>>,
    metrics: Arc<Metrics>,
    a: Vec<Entry>,
    b: Vec<Entry>,
    /// Some stage uses the extracted map: seed it with the labels.
    seed: bool,
    /// Nested in a stage (`match`): the extracted map is the caller's,
    /// neither seeded nor cleared here.
    nested: bool,
    /// `-inspect`: report what each stage changes (see [`inspect`]).
    inspect: bool,
}

impl Pipeline {
    pub fn new(mut stages: Vec<Box<dyn Stage>>, metrics: Arc<Metrics>) -> Self {
        let seed = stages.iter().any(|s| s.uses_extracted());
        for i in 0..stages.len() {
            let later = stages[i + 1..].iter().any(|s| s.uses_extracted());
            stages[i].downstream_uses_extracted(later);
        }
        Pipeline {
            stages,
            metrics,
            a: Vec::new(),
            b: Vec::new(),
            seed,
            nested: false,
            inspect: inspect::enabled(),
        }
    }

    /// A pipeline run inside a stage: entries keep their extracted map.
    pub fn nested(mut self) -> Self {
        self.nested = true;
        self
    }

    /// False while some stage wants no more entries of stream `labels`
    /// (see [`Stage::accepts`]).
    pub fn accepts(&self, labels: &crate::labels::LabelSet) -> bool {
        self.stages.iter().all(|s| s.accepts(labels))
    }

    pub fn is_empty(&self) -> bool {
        self.stages.is_empty()
    }

    pub fn stage_names(&self) -> Vec<&'static str> {
        self.stages.iter().map(|s| s.name()).collect()
    }

    /// Runs `entry` through every stage; what comes out is appended to `out`.
    pub fn process(&mut self, mut entry: Entry, out: &mut Vec<Entry>) {
        if self.stages.is_empty() {
            out.push(entry);
            return;
        }
        if self.seed && !self.nested {
            entry.extracted.seed(&entry.labels);
        }
        self.a.push(entry);
        self.run_from(0, out);
    }

    /// Gives timer-driven stages their chance; output appended to `out`.
    pub fn tick(&mut self, now: Instant, out: &mut Vec<Entry>) {
        for i in 0..self.stages.len() {
            // Entries a stage releases on tick go through the stages after it.
            let metrics = self.metrics.clone();
            let mut released = Vec::new();
            self.stages[i].tick(now, &mut Ctx::new(&mut released, &metrics));
            if released.is_empty() {
                continue;
            }
            self.a.extend(released);
            self.run_from(i + 1, out);
        }
    }

    /// Flushes every stage in order (shutdown); output appended to `out`.
    pub fn flush(&mut self, out: &mut Vec<Entry>) {
        for i in 0..self.stages.len() {
            let metrics = self.metrics.clone();
            let mut released = Vec::new();
            self.stages[i].flush(&mut Ctx::new(&mut released, &metrics));
            if released.is_empty() {
                continue;
            }
            self.a.extend(released);
            self.run_from(i + 1, out);
        }
    }

    /// Runs the entries in `self.a` through stages `from..`.
    fn run_from(&mut self, from: usize, out: &mut Vec<Entry>) {
        let metrics = self.metrics.clone();
        for stage in &mut self.stages[from..] {
            if self.a.is_empty() {
                return;
            }
            let mut ctx = Ctx::new(&mut self.b, &metrics);
            if self.inspect {
                for e in self.a.drain(..) {
                    let before = inspect::Snapshot::of(&e);
                    let from = ctx.out.len();
                    stage.process(e, &mut ctx);
                    inspect::report(stage.name(), &before, &ctx.out[from..]);
                }
            } else {
                for e in self.a.drain(..) {
                    stage.process(e, &mut ctx);
                }
            }
            std::mem::swap(&mut self.a, &mut self.b);
        }
        if !self.nested {
            for e in &mut self.a {
                e.extracted.clear();
            }
        }
        out.append(&mut self.a);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ack::Ack;
    use crate::entry::Timestamp;
    use crate::labels::LabelSet;

    struct Upper;
    impl Stage for Upper {
        fn name(&self) -> &'static str {
            "upper"
        }
        fn process(&mut self, mut e: Entry, ctx: &mut Ctx) {
            e.line = e.line.to_uppercase().into();
            ctx.emit(e);
        }
    }
    struct DropEmpty;
    impl Stage for DropEmpty {
        fn name(&self) -> &'static str {
            "drop"
        }
        fn process(&mut self, e: Entry, ctx: &mut Ctx) {
            if e.line.is_empty() {
                ctx.drop(e, "drop_stage");
            } else {
                ctx.emit(e);
            }
        }
    }

    #[test]
    fn runs_stages_in_order_and_counts_drops() {
        let m = Arc::new(Metrics::new());
        let mut p = Pipeline::new(vec![Box::new(DropEmpty), Box::new(Upper)], m.clone());
        let mut out = Vec::new();
        for line in ["a", "", "b"] {
            let e = Entry::new(LabelSet::empty(), Timestamp(1), line.into(), Ack::none());
            p.process(e, &mut out);
        }
        let lines: Vec<_> = out.iter().map(|e| e.line.as_str()).collect();
        assert_eq!(lines, ["A", "B"]);
        assert!(m
            .encode()
            .contains("logentry_dropped_lines_total{reason=\"drop_stage\"} 1"));
        for e in out {
            e.ack.ack();
        }
    }
}
