//! The stage engine: one engine for every source.
//!
//! Owns: the [`Stage`] trait, [`Ctx`] (how a stage emits, holds back or drops
//! an entry), and [`Pipeline`], which runs entries through a scrape config's
//! `pipeline_stages` in order. Stages live one per file under [`stages`].
//!
//! Design: a source calls [`Pipeline::process`] for each entry it read, or
//! [`Pipeline::process_all`] for all it read at once, on its own thread, and
//! receives the entries that came out. Given many, each stage takes all of
//! them, in order, before the next stage starts: every stage sees the same
//! entries in the same order as one by one (stages share no state), so what
//! comes out is the same, in the same order, while each stage's code and
//! state stay in the cache for the whole read (a one-file drain spent ~7 %
//! of its reading thread setting up a pass through the stages per line).
//! `-inspect` goes one by one, so that its report follows each entry
//! through the stages. A stage that only changes entries (never drops,
//! holds, merges or reorders them: [`Stage::edits_only`], most of
//! Promtail's parsing and labelling stages, and `trace`) is run over the
//! whole read in place, each entry edited where it lies, rather than moved
//! out of one buffer and into the next (an entry is ~128 bytes). A stage
//! whose common case is such an edit ([`Stage::try_edit`]: `cri`, a full
//! line while no partial piece is held) takes a read's entries in place
//! while it can, and the rest one by one. Stages are synchronous
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

/// Entries' room [`Pipeline::process_all`] keeps between calls (~120 KB).
pub const KEEP_ENTRIES: usize = 1024;

/// What a stage does with entries. See the module docs.
pub trait Stage: Send {
    /// Promtail's name of the stage (`cri`, `docker`, …).
    fn name(&self) -> &'static str;

    /// Processes one entry: emit it (possibly changed), hold it, or drop it.
    /// The default, for a stage that [`edits_only`](Self::edits_only):
    /// [`edit`](Self::edit) it, then emit it.
    fn process(&mut self, mut entry: Entry, ctx: &mut Ctx) {
        self.edit(&mut entry);
        ctx.emit(entry);
    }

    /// True: the stage only changes entries — it never drops, holds,
    /// merges, splits or reorders them — and implements
    /// [`edit`](Self::edit) (and leaves [`process`](Self::process) as it
    /// is). The engine then runs it over a whole read in place, with no
    /// move of each entry out of one buffer and into the next.
    fn edits_only(&self) -> bool {
        false
    }

    /// Changes one entry in place (a stage that
    /// [`edits_only`](Self::edits_only)).
    fn edit(&mut self, _entry: &mut Entry) {}

    /// For a stage that is not [`edits_only`](Self::edits_only) but whose
    /// common case is an edit: if all [`process`](Self::process) would do
    /// with `entry` now is change it and emit it (and nothing it holds
    /// would come out first), do that in place and return true; else
    /// return false and leave the entry and the stage untouched. The
    /// engine offers a read's entries in order while this returns true and
    /// hands the rest to `process` (`cri`: a full line while no partial
    /// piece is held).
    fn try_edit(&mut self, _entry: &mut Entry) -> bool {
        false
    }

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

    /// Runs every entry of `entries` (left empty) through every stage, a
    /// stage at a time; what comes out is appended to `out`, as
    /// [`process`](Self::process) on each in turn would (see the module
    /// docs).
    pub fn process_all(&mut self, entries: &mut Vec<Entry>, out: &mut Vec<Entry>) {
        if self.stages.is_empty() {
            out.append(entries);
            return;
        }
        if self.inspect {
            for e in entries.drain(..) {
                self.process(e, out);
            }
            return;
        }
        if self.seed && !self.nested {
            for e in entries.iter_mut() {
                e.extracted.seed(&e.labels);
            }
        }
        if self.a.is_empty() {
            // Trade buffers rather than move the entries.
            std::mem::swap(&mut self.a, entries);
        } else {
            self.a.append(entries);
        }
        self.run_from(0, out);
        // A read of 64 KiB of empty lines is 65,536 entries: do not keep
        // room for that many between reads.
        for v in [&mut self.a, &mut self.b] {
            v.shrink_to(KEEP_ENTRIES);
        }
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
        let metrics = &self.metrics;
        for stage in &mut self.stages[from..] {
            if self.a.is_empty() {
                return;
            }
            if !self.inspect && stage.edits_only() {
                for e in self.a.iter_mut() {
                    stage.edit(e);
                }
                continue;
            }
            // The entries a stage edits in place stay where they are, in
            // front of what `process` makes of the rest (a read with no
            // exception is not moved at all).
            let mut edited = 0;
            if !self.inspect {
                while edited < self.a.len() && stage.try_edit(&mut self.a[edited]) {
                    edited += 1;
                }
                if edited == self.a.len() {
                    continue;
                }
            }
            // Moved once each, as `process` would have: the edited entries
            // into the output ahead of the rest, or the rest's output
            // behind them (twice each) — whichever moves fewer.
            let few_edited = edited * 2 < self.a.len();
            if few_edited {
                self.b.extend(self.a.drain(..edited));
                edited = 0;
            }
            let mut ctx = Ctx::new(&mut self.b, metrics);
            if self.inspect {
                for e in self.a.drain(..) {
                    let before = inspect::Snapshot::of(&e);
                    let from = ctx.out.len();
                    stage.process(e, &mut ctx);
                    inspect::report(stage.name(), &before, &ctx.out[from..]);
                }
            } else {
                for e in self.a.drain(edited..) {
                    stage.process(e, &mut ctx);
                }
            }
            if edited == 0 {
                std::mem::swap(&mut self.a, &mut self.b);
            } else {
                self.a.append(&mut self.b);
            }
        }
        if !self.nested {
            for e in &mut self.a {
                e.extracted.clear();
            }
        }
        if out.is_empty() {
            // Trade buffers rather than copy the entries (~9 MB for 16 MiB
            // of input): `self.a` keeps `out`'s room for the next read.
            std::mem::swap(out, &mut self.a);
        } else {
            out.append(&mut self.a);
        }
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

    /// Appends `!` to every line it edits and counts its calls.
    struct Mark(Arc<std::sync::atomic::AtomicUsize>);
    impl Stage for Mark {
        fn name(&self) -> &'static str {
            "mark"
        }
        fn edits_only(&self) -> bool {
            true
        }
        fn edit(&mut self, e: &mut Entry) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            e.line = format!("{}!", e.line.as_str()).into();
        }
    }

    #[test]
    fn a_stage_that_only_edits_sees_each_entry_once_in_order_between_others() {
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let stages = || -> Vec<Box<dyn Stage>> {
            vec![
                Box::new(DropEmpty),
                Box::new(Mark(calls.clone())),
                Box::new(Upper),
                Box::new(Mark(calls.clone())),
            ]
        };
        let input = ["a", "", "b", "c", ""];
        let entries = || -> Vec<Entry> {
            input
                .iter()
                .map(|l| Entry::new(LabelSet::empty(), Timestamp(1), (*l).into(), Ack::none()))
                .collect()
        };
        let m = Arc::new(Metrics::new());
        let mut all = Vec::new();
        Pipeline::new(stages(), m.clone()).process_all(&mut entries(), &mut all);
        let mut one = Vec::new();
        let mut p = Pipeline::new(stages(), m);
        for e in entries() {
            p.process(e, &mut one);
        }
        for out in [&all, &one] {
            let lines: Vec<_> = out.iter().map(|e| e.line.as_str()).collect();
            assert_eq!(lines, ["A!!", "B!!", "C!!"]);
        }
        // Three entries past the drop, two marks, two runs.
        assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 12);
        for e in all.into_iter().chain(one) {
            e.ack.ack();
        }
    }

    /// What came out, as text to compare: labels, timestamp, line and
    /// structured metadata (the extracted map is cleared on the way out).
    fn shown(out: &[Entry]) -> Vec<String> {
        out.iter()
            .map(|e| {
                format!(
                    "{:?} {} {:?} {:?}",
                    e.labels,
                    e.timestamp.0,
                    e.line.as_str(),
                    e.metadata
                )
            })
            .collect()
    }

    /// Stages that hold, merge, drop, relabel and add metadata, in one
    /// pipeline: CRI partials (per stream), multiline blocks (per stream,
    /// at most 3 lines), a label from the line, a drop, trace detection.
    const MIXED: &str = r#"
- cri: {}
- multiline:
    firstline: '^F'
    max_lines: 3
- regex:
    expression: '^(?P<kind>[Fc])(?P<rest>.*)$'
- labels:
    kind:
- drop:
    source: rest
    expression: '^x'
- trace: {}
"#;

    fn mixed() -> Pipeline {
        let v: Vec<stages::StageConfig> = serde_yaml_ng::from_str(MIXED).unwrap();
        stages::build(&v, Arc::new(Metrics::new())).unwrap()
    }

    /// One CRI line: (file B?, stderr?, partial?, content).
    fn cri_line() -> impl proptest::strategy::Strategy<Value = (bool, bool, bool, String)> {
        use proptest::prelude::*;
        (
            any::<bool>(),
            any::<bool>(),
            proptest::bool::weighted(0.2),
            prop_oneof![
                "[Fc][a-z x]{0,6}",
                Just("Fx trace_id=4bf92f3577b34da6a3ce929d0e0e4736".to_string()),
            ],
        )
    }

    proptest::proptest! {
        /// A read handed over whole ([`Pipeline::process_all`], a stage at
        /// a time) gives what the same entries give one by one: the same
        /// entries in the same order, and, once each is acknowledged, the
        /// same committed positions.
        #[test]
        fn all_at_once_is_one_by_one(
            input in proptest::collection::vec(cri_line(), 0..60),
            cuts in proptest::collection::vec(1usize..12, 1..20),
        ) {
            use crate::ack::{Position, Tracker};
            let files = ["/var/log/pods/ns_a_1/c/0.log", "/var/log/pods/ns_b_2/c/0.log"];
            let labels = files.map(|f| LabelSet::new([("filename", f), ("job", "j")]));
            let entries = |t: &[Arc<Tracker>; 2]| -> Vec<Entry> {
                let mut offset = [0u64; 2];
                input
                    .iter()
                    .enumerate()
                    .map(|(i, (b, err, partial, content))| {
                        let f = usize::from(*b);
                        let line = format!(
                            "2024-05-01T10:00:{:02}.{i:09}Z {} {} {content}",
                            i % 60,
                            if *err { "stderr" } else { "stdout" },
                            if *partial { "P" } else { "F" },
                        );
                        offset[f] += line.len() as u64 + 1;
                        let ack = t[f].issue(Position::Offset(offset[f]));
                        Entry::new(labels[f].clone(), Timestamp(0), line.into(), ack)
                    })
                    .collect()
            };
            let trackers = || [0, 1].map(|_| Tracker::new(Position::Offset(0)));

            let (t1, mut p1, mut one) = (trackers(), mixed(), Vec::new());
            for e in entries(&t1) {
                p1.process(e, &mut one);
            }
            p1.flush(&mut one);

            let (t2, mut p2, mut all) = (trackers(), mixed(), Vec::new());
            let mut read = entries(&t2);
            let mut cut = cuts.iter().cycle();
            while !read.is_empty() {
                let n = (*cut.next().unwrap()).min(read.len());
                let mut chunk: Vec<Entry> = read.drain(..n).collect();
                p2.process_all(&mut chunk, &mut all);
                proptest::prop_assert!(chunk.is_empty());
            }
            p2.flush(&mut all);

            proptest::prop_assert_eq!(shown(&one), shown(&all));
            for e in one.into_iter().chain(all) {
                e.ack.ack();
            }
            for f in 0..2 {
                proptest::prop_assert_eq!(t1[f].committed(), t2[f].committed());
            }
        }
    }
}
