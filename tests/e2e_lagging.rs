//! End to end, the user's worst day without a spool: Loki throttles while the
//! kubelet rotates and compresses files under load. Reading is stuck behind
//! the memory budget, but discovery must not be: every file is opened as it
//! appears (or caught up from its rotated or compressed copy), so nothing is
//! lost — with or without a `kill -9` in the middle.

#[path = "support/agent.rs"]
mod agent;
#[path = "support/receiver.rs"]
mod receiver;

use agent::{delivered, Agent, PodLog, Setup, Workload};
use receiver::{Mode, Receiver};
use std::time::Duration;

/// 100 pods, 12,000 lines/s in total, rotated every ~40 KB with older
/// rotations compressed (none deleted).
fn workload() -> Workload {
    Workload {
        pods: 100,
        lines: 900,
        round: Duration::from_micros(8_300),
        rotate_at: Some(40 * 1024),
        max_files: None,
        pad: 90,
    }
}

/// A receiver answering 429 to the first six pushes (~12 s of backoff: far
/// longer than the memory budget lasts at this rate), and an agent on the
/// workload's pods.
fn start(dir: &std::path::Path, prefix: &str) -> (Receiver, Setup, Vec<PodLog>, Agent) {
    let rx = Receiver::start();
    rx.set_mode(Mode::FailNext {
        count: 6,
        status: 429,
    });
    let mut setup = Setup::new(dir, &rx.push_url());
    setup.min_period = "250ms";
    setup.max_period = "4s";
    let logs = workload().create(&setup.logs, prefix);
    let agent = Agent::start(dir, &setup);
    assert!(agent.wait_ready(Duration::from_secs(60)), "{}", agent.log());
    (rx, setup, logs, agent)
}

/// Waits until every line arrived (panics naming the missing ones) and
/// checks per-stream order; returns the number of duplicates.
fn check_all_arrived(rx: &Receiver, agent: &Agent) -> usize {
    let w = workload();
    let ok = rx.wait_until(Duration::from_secs(300), |r| {
        delivered(&w, r.entries().iter().map(|e| e.line.as_str())).lost() == 0
    });
    let entries = rx.entries();
    let d = delivered(&w, entries.iter().map(|e| e.line.as_str()));
    if !ok {
        let first: Vec<_> = d.missing.iter().take(3).collect();
        panic!(
            "{} of {} lines lost (e.g. {first:?}); log:\n{}",
            d.lost(),
            w.total(),
            agent.log()
        );
    }
    if let Err(e) = &d.in_order {
        panic!("{e}");
    }
    d.duplicates
}

#[test]
fn throttled_loki_while_the_kubelet_rotates_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (rx, _setup, logs, mut agent) = start(dir.path(), "lag");
    let rotations = workload().run(logs, |_| {});
    let dups = check_all_arrived(&rx, &agent);
    assert_eq!(dups, 0, "no restart, so no duplicates");
    let lost = agent
        .metric_sum("tailtrace_lost_bytes_total", &[])
        .unwrap_or(0.0);
    assert_eq!(lost, 0.0, "nothing counted as lost");
    eprintln!(
        "429 storm: {} lines in {rotations} rotations, all delivered once, in order",
        workload().total()
    );
    assert!(agent.terminate().unwrap().success());
}

#[test]
fn throttled_loki_while_the_kubelet_rotates_and_a_kill_9_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (rx, setup, logs, mut agent) = start(dir.path(), "lagk");
    let writer = std::thread::spawn(move || workload().run(logs, |_| {}));
    // Killed while Loki still throttles and files keep rotating.
    std::thread::sleep(Duration::from_secs(4));
    agent.kill9();
    std::thread::sleep(Duration::from_millis(500));
    let before = rx.count();
    rx.set_mode(Mode::FailNext {
        count: 3,
        status: 429,
    });
    agent.restart(&setup);
    let rotations = writer.join().unwrap();
    let dups = check_all_arrived(&rx, &agent);
    eprintln!(
        "429 storm + kill -9: {} lines in {rotations} rotations, {before} received before the kill, {dups} duplicates after the restart",
        workload().total()
    );
    assert!(dups <= before, "only lines sent before the kill come again");
    assert!(agent.terminate().unwrap().success());
}
