//! Test-only: drives one stage the way the tailer does (one ack per line,
//! offsets after each line's newline) and inspects what came out. Shared by
//! every stage's unit tests.

use crate::ack::{Position, Tracker};
use crate::entry::{Entry, Timestamp};
use crate::labels::LabelSet;
use crate::metrics::Metrics;
use crate::pipeline::{Ctx, Stage};
use std::sync::Arc;

pub struct Harness<S: Stage> {
    pub stage: S,
    pub metrics: Metrics,
    pub tracker: Arc<Tracker>,
    /// File offset after the last fed line.
    pub offset: u64,
    pub labels: LabelSet,
    pub out: Vec<Entry>,
}

impl<S: Stage> Harness<S> {
    pub fn of(stage: S, labels: LabelSet) -> Self {
        Harness {
            stage,
            metrics: Metrics::new(),
            tracker: Tracker::new(Position::Offset(0)),
            offset: 0,
            labels,
            out: Vec::new(),
        }
    }

    /// The entry the tailer would make of the next line: its ack ends
    /// after line + '\n'.
    pub fn entry(&mut self, line: &str) -> Entry {
        self.offset += line.len() as u64 + 1;
        let ack = self.tracker.issue(Position::Offset(self.offset));
        Entry::new(
            self.labels.clone(),
            Timestamp(7),
            line.to_string().into(),
            ack,
        )
    }

    /// Feeds one line as the tailer would.
    pub fn feed(&mut self, line: &str) {
        let e = self.entry(line);
        self.stage
            .process(e, &mut Ctx::new(&mut self.out, &self.metrics));
    }

    pub fn flush(&mut self) {
        self.stage
            .flush(&mut Ctx::new(&mut self.out, &self.metrics));
    }

    /// (line, stream label, timestamp) of every entry out so far.
    pub fn lines(&self) -> Vec<(&str, Option<&str>, i64)> {
        self.out
            .iter()
            .map(|e| (e.line.as_str(), e.labels.get("stream"), e.timestamp.0))
            .collect()
    }

    /// Acknowledges every entry out so far.
    pub fn ack_all(&mut self) {
        for e in self.out.drain(..) {
            e.ack.ack();
        }
    }

    /// The tracker's committed offset.
    pub fn committed(&self) -> u64 {
        self.tracker.committed().offset().unwrap()
    }
}
