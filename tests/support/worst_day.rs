//! Steps the worst-day tests share, for runs that count a [`Workload`]'s
//! lines written versus received: kill the agent in a 429 storm after Loki
//! accepted lines, wait until every line arrived, check the trace context
//! that came with them.
//!
//! Included with `#[path = "support/worst_day.rs"] mod worst_day;` by a
//! crate that also has `mod agent;` and `mod receiver;` (support/agent.rs
//! and support/receiver.rs) at its root. Never asserts timings: waits have
//! a generous give-up bound only.
#![allow(dead_code)]

use crate::agent::{delivered, workload_id, Agent, Delivered, Setup, Workload};
use crate::receiver::{Mode, Receiver};
use std::collections::HashSet;
use std::time::Duration;

/// Waits until Loki accepted lines; then Loki throttles again (429 to the
/// next six pushes) and the agent is killed (`kill -9`) a second into that
/// storm, while files may keep rotating; it restarts (with `setup`) into a
/// short storm (three 429s). Returns the lines received before the kill:
/// the only ones that may arrive twice.
pub fn kill_9_in_a_429_storm(
    rx: &Receiver,
    agent: &mut Agent,
    setup: &Setup,
) -> HashSet<(usize, usize)> {
    kill_9_in_a_429_storm_and(rx, agent, setup, || {})
}

/// [`kill_9_in_a_429_storm`], calling `while_down` between the kill and
/// the restart.
pub fn kill_9_in_a_429_storm_and(
    rx: &Receiver,
    agent: &mut Agent,
    setup: &Setup,
    while_down: impl FnOnce(),
) -> HashSet<(usize, usize)> {
    assert!(
        rx.wait_until(Duration::from_secs(60), |r| r.count() > 0),
        "nothing delivered before the storm:\n{}",
        agent.log()
    );
    rx.set_mode(Mode::FailNext {
        count: 6,
        status: 429,
    });
    std::thread::sleep(Duration::from_secs(1));
    agent.kill9();
    let before = rx.lines().iter().map(|l| workload_id(l)).collect();
    while_down();
    rx.set_mode(Mode::FailNext {
        count: 3,
        status: 429,
    });
    agent.restart(setup);
    before
}

/// Waits until every line of `w` arrived (panics naming the missing ones,
/// with the agent's log) and, if `ordered`, checks per-stream order.
pub fn all_arrived(rx: &Receiver, agent: &Agent, w: &Workload, ordered: bool) -> Delivered {
    let ok = rx.wait_until(Duration::from_secs(300), |r| {
        delivered(w, r.entries().iter().map(|e| e.line.as_str())).lost() == 0
    });
    let entries = rx.entries();
    let d = delivered(w, entries.iter().map(|e| e.line.as_str()));
    if !ok {
        // The log is long: `TT_DEBUG_LOG=<file>` keeps it for reading.
        if let Ok(p) = std::env::var("TT_DEBUG_LOG") {
            let _ = std::fs::write(p, agent.log());
        }
        let first: Vec<_> = d.missing.iter().take(3).collect();
        panic!(
            "{} of {} lines lost (e.g. {first:?}); log:\n{}",
            d.lost(),
            w.total(),
            agent.log()
        );
    }
    if ordered {
        if let Err(e) = &d.in_order {
            // The log is long: `TT_DEBUG_LOG=<file>` keeps it for reading.
            if let Ok(p) = std::env::var("TT_DEBUG_LOG") {
                let _ = std::fs::write(p, agent.log());
            }
            panic!("{e}");
        }
    }
    d
}

/// Asserts that no line arrived twice unless it had arrived before the
/// kill (`before`), nor more than twice.
pub fn assert_duplicates_only_from(d: &Delivered, before: &HashSet<(usize, usize)>) {
    let unexpected = d.duplicates_not_from(before);
    assert!(
        unexpected.is_empty(),
        "duplicates of lines not received before the kill (id, times): {:?}",
        &unexpected[..unexpected.len().min(5)]
    );
}

/// Asserts that every received line carries, as structured metadata, the
/// trace context [`crate::agent::workload_trace`] gives it — or, when
/// `metadata` is false (a Loki refusing it), none.
pub fn assert_trace_context(rx: &Receiver, w: &Workload, metadata: bool) {
    let entries = rx.entries();
    let wrong = w.trace_mismatches(
        entries
            .iter()
            .map(|e| (e.line.as_str(), e.metadata.as_slice())),
        metadata,
    );
    assert!(
        wrong.is_empty(),
        "{} entries with wrong trace metadata, e.g. {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(3)]
    );
}
