//! Runs entries through one stage, as the pipeline would, for the stage
//! micro-benchmarks (`decode`, `trace`).

use tailtrace::entry::Entry;
use tailtrace::metrics::Metrics;
use tailtrace::pipeline::{Ctx, Stage};

/// Runs `entries` through `stage`; acknowledges what came out and returns
/// how many entries that was.
pub fn run(
    stage: &mut dyn Stage,
    entries: Vec<Entry>,
    metrics: &Metrics,
    out: &mut Vec<Entry>,
) -> usize {
    {
        let mut ctx = Ctx::new(out, metrics);
        for e in entries {
            stage.process(e, &mut ctx);
        }
    }
    let n = out.len();
    for e in out.drain(..) {
        e.ack.ack();
    }
    n
}
