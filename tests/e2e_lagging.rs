//! End to end, the user's worst day without a spool: Loki throttles while the
//! kubelet rotates and compresses files under load. Reading is stuck behind
//! the memory budget, but discovery must not be: every file is opened as it
//! appears (or caught up from its rotated or compressed copy), so nothing is
//! lost — with or without a `kill -9` in the middle.
//!
//! The `kill -9` run is also made the way the agent is deployed ([`Day`]):
//! the files are the node's pod logs (`kubernetes.pod_logs_path`), rotated
//! and deleted, so trace detection runs after `cri`; every 10th line
//! carries trace context, whose `trace_id`/`span_id` must arrive as
//! structured metadata, resends included. Also against a Loki that refuses
//! structured metadata (the agent sends the refused lines again without
//! it), with and without the spool. Each run kills the agent in a second
//! 429 storm, after Loki accepted lines: what arrives twice must be among
//! what arrived before the kill.
//!
//! And with pods arriving all along (with and without the spool): their
//! directories appear while the agent runs in the storm (found through the
//! new directories' events, walked alone), while it is down (found by the
//! restart's rescan) and after the restart, and their files rotate.

#[path = "support/agent.rs"]
mod agent;
#[path = "support/receiver.rs"]
mod receiver;
#[path = "support/worst_day.rs"]
mod worst_day;

use agent::{with_spool, Agent, PodLog, Setup, Workload};
use receiver::{Mode, Options, Receiver};
use std::time::Duration;
use worst_day::{
    all_arrived, assert_duplicates_only_from, assert_trace_context, kill_9_in_a_429_storm_and,
};

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
        traced: None,
    }
}

/// How a run's agent and Loki are set up.
#[derive(Clone, Copy)]
struct Day {
    /// The files are the node's pod logs: trace detection on (the default
    /// for pod logs), every 10th line carrying trace context; the kubelet
    /// keeps 3 files, so each pod's oldest rotation is deleted.
    pod_logs: bool,
    /// Loki refuses structured metadata (Loki 2.x, or a schema before v13).
    no_metadata: bool,
    /// The spool (`wal:`) on.
    spool: bool,
    /// The agent's open-files limit (see [`Setup::open_files_limit`]).
    open_files: Option<u64>,
    /// Pods arrive while the agent runs, one every [`ARRIVE_EVERY`] rounds
    /// (see [`Workload::create_arriving`]): half before the kill (found
    /// through their new directories' events, in the storm), some while
    /// the agent is down, the rest after the restart.
    arriving: bool,
}

/// Rounds between two arriving pods: the 100 arrive over ~5 s.
const ARRIVE_EVERY: usize = 6;

/// A plain file job, a stock Loki, no spool.
const PLAIN: Day = Day {
    pod_logs: false,
    no_metadata: false,
    spool: false,
    open_files: None,
    arriving: false,
};
const POD_LOGS: Day = Day {
    pod_logs: true,
    ..PLAIN
};
const NO_METADATA: Day = Day {
    no_metadata: true,
    ..POD_LOGS
};
const NO_METADATA_SPOOL: Day = Day {
    spool: true,
    ..NO_METADATA
};
/// 100 pods (and their rotated files) through 64 descriptors: the tailer
/// parks and reopens files all along (nothing deleted, so nothing may be
/// lost to the bound). Every line arrives, in order per stream, duplicates
/// only of lines received before the kill.
const FEW_DESCRIPTORS: Day = Day {
    open_files: Some(320),
    ..PLAIN
};
/// New pods (directories, container directories, files) appearing all
/// along: in the storm before the kill, while the agent is down, in the
/// restarted agent's storm.
const ARRIVING: Day = Day {
    arriving: true,
    ..POD_LOGS
};
const ARRIVING_SPOOL: Day = Day {
    spool: true,
    ..ARRIVING
};

impl Day {
    fn workload(&self) -> Workload {
        Workload {
            traced: self.pod_logs.then_some(10),
            max_files: self.pod_logs.then_some(3),
            ..workload()
        }
    }
}

/// A receiver answering 429 to the first `storm` pushes, and an agent on
/// the workload's pods.
fn start(
    dir: &std::path::Path,
    prefix: &str,
    day: Day,
    storm: usize,
) -> (Receiver, Setup, Vec<PodLog>, Agent) {
    let rx = Receiver::start_with(Options {
        allow_structured_metadata: !day.no_metadata,
        ..Options::default()
    });
    rx.set_mode(Mode::FailNext {
        count: storm,
        status: 429,
    });
    let mut setup = Setup::new(dir, &rx.push_url());
    setup.min_period = "250ms";
    setup.max_period = "4s";
    setup.pod_logs = day.pod_logs;
    setup.open_files_limit = day.open_files;
    if day.arriving {
        // No periodic rescan to fall back on: a pod arriving while the
        // agent runs is found through its directories' events, or not soon
        // enough (the kubelet deletes its oldest rotations).
        setup.rescan_every = "1h";
    }
    if day.spool {
        with_spool(&mut setup, &dir.join("wal"), "1GiB");
    }
    let logs = if day.arriving {
        day.workload()
            .create_arriving(&setup.logs, prefix, ARRIVE_EVERY)
    } else {
        day.workload().create(&setup.logs, prefix)
    };
    let agent = Agent::start(dir, &setup);
    assert!(agent.wait_ready(Duration::from_secs(60)), "{}", agent.log());
    (rx, setup, logs, agent)
}

#[test]
fn throttled_loki_while_the_kubelet_rotates_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (rx, _setup, logs, mut agent) = start(dir.path(), "lag", PLAIN, 6);
    let rotations = workload().run(logs, |_| {});
    let d = all_arrived(&rx, &agent, &workload(), true);
    assert_eq!(d.duplicates, 0, "no restart, so no duplicates");
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

/// A short 429 storm; once Loki accepts lines it throttles again, and the
/// agent is killed in that second storm while files keep rotating; it
/// restarts into a third. Every line arrives; a line arrives twice only if
/// it had arrived before the kill; trace context arrives as metadata (or,
/// from a Loki that refuses it, the lines arrive without it); nothing is
/// dropped.
fn throttled_rotating_and_killed(prefix: &str, day: Day) {
    let dir = tempfile::tempdir().unwrap();
    let w = day.workload();
    let (rx, setup, logs, mut agent) = start(dir.path(), prefix, day, 3);
    // Arriving pods: by construction, the first half arrive while the agent
    // runs (the writer holds the next arrival until the kill), some while it
    // is down (the restart waits a little), the last quarter after the
    // restart (the writer holds again until then).
    let (killed, wait_kill) = std::sync::mpsc::channel::<()>();
    let (restarted, wait_restart) = std::sync::mpsc::channel::<()>();
    let holds = [w.pods / 2, w.pods * 3 / 4].map(|p| p * ARRIVE_EVERY);
    let writer = {
        let w = w.clone();
        let arriving = day.arriving;
        std::thread::spawn(move || {
            w.run(logs, |round| {
                if arriving && round == holds[0] {
                    let _ = wait_kill.recv();
                }
                if arriving && round == holds[1] {
                    let _ = wait_restart.recv();
                }
            })
        })
    };
    let pods_dir = setup.logs.clone();
    let pods_now = || std::fs::read_dir(&pods_dir).map_or(0, |d| d.count());
    let mut at_kill = 0;
    let before = kill_9_in_a_429_storm_and(&rx, &mut agent, &setup, || {
        at_kill = pods_now();
        let _ = killed.send(());
        if day.arriving {
            std::thread::sleep(Duration::from_millis(300));
        }
    });
    let at_restart = pods_now();
    let _ = restarted.send(());
    let rotations = writer.join().unwrap();
    // A Loki refusing metadata stores a batch's other lines first; the
    // refused ones follow (Loki accepts out-of-order lines since 2.4).
    let d = all_arrived(&rx, &agent, &w, !day.no_metadata);
    assert_duplicates_only_from(&d, &before);
    if day.pod_logs {
        assert_trace_context(&rx, &w, !day.no_metadata);
    }
    let dropped = agent
        .metric_sum("promtail_dropped_entries_total", &[])
        .unwrap_or(-1.0);
    assert_eq!(dropped, 0.0, "nothing dropped:\n{}", agent.log());
    if day.no_metadata {
        let reason = [("reason", "structured_metadata_disallowed")];
        let mutated = agent.metric_sum("promtail_mutated_entries_total", &reason);
        assert!(
            mutated.unwrap_or(0.0) >= 1.0,
            "the restarted agent fell back too"
        );
    }
    if day.open_files.is_some() {
        assert!(
            agent.log().contains("closed quiet file"),
            "the descriptor bound was never reached:\n{}",
            agent.log()
        );
    }
    eprintln!(
        "{prefix}: 429 storms + kill -9: {} lines in {rotations} rotations, {} received before the kill, {} duplicates after the restart; {at_kill} pods at the kill, {at_restart} at the restart",
        w.total(),
        before.len(),
        d.duplicates
    );
    assert!(agent.terminate().unwrap().success());
}

#[test]
fn throttled_loki_while_the_kubelet_rotates_and_a_kill_9_loses_nothing() {
    throttled_rotating_and_killed("lagk", PLAIN);
}

#[test]
fn pod_logs_with_trace_context_through_429s_rotation_and_a_kill_9() {
    throttled_rotating_and_killed("lagt", POD_LOGS);
}

#[test]
fn a_loki_refusing_structured_metadata_through_429s_rotation_and_a_kill_9() {
    throttled_rotating_and_killed("lagm", NO_METADATA);
}

#[test]
fn a_loki_refusing_structured_metadata_with_the_spool_through_429s_and_a_kill_9() {
    throttled_rotating_and_killed("lags", NO_METADATA_SPOOL);
}

#[test]
fn more_files_than_descriptors_through_429s_rotation_and_a_kill_9() {
    throttled_rotating_and_killed("lagd", FEW_DESCRIPTORS);
}

#[test]
fn pods_arriving_through_429s_and_a_kill_9_lose_nothing() {
    throttled_rotating_and_killed("laga", ARRIVING);
}

#[test]
fn pods_arriving_with_the_spool_through_429s_and_a_kill_9_lose_nothing() {
    throttled_rotating_and_killed("lagq", ARRIVING_SPOOL);
}
