//! End to end with the spool (`wal: {enabled: true}`): a long Loki outage
//! while the kubelet rotates *and deletes* pod logs (trace detection on, as
//! deployed: trace context must come through the spool), a `kill -9` in the
//! middle of it, and a spool that is full, torn, damaged, missing a segment or not
//! writable. Lines are counted written versus received, per stream.

#[path = "support/agent.rs"]
mod agent;
#[path = "support/receiver.rs"]
mod receiver;
#[path = "support/worst_day.rs"]
mod worst_day;

use agent::{delivered, with_spool, workload_id, Agent, Setup, Workload};
use receiver::{Mode, Receiver};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tailtrace::spool::{inspect, saved_cursors};
use worst_day::assert_trace_context;

/// (pod, line) of every entry in the spool from offset `from`.
fn spooled(wal: &Path, from: u64) -> Vec<(u64, (usize, usize))> {
    inspect::entries_from(wal, from, u64::MAX)
        .unwrap_or_default()
        .iter()
        .map(|s| (s.chunk, workload_id(&s.line)))
        .collect()
}

/// The lowest saved cursor of any client lane.
fn min_cursor(wal: &Path) -> u64 {
    saved_cursors(wal)
        .unwrap_or_default()
        .values()
        .flat_map(|m| m.values().copied())
        .min()
        .unwrap_or(0)
}

/// The spool's segment files, oldest first.
fn segments(wal: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(wal)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    v.sort();
    v
}

/// Every (pod, line) never received.
fn missing_ids(d: &agent::Delivered) -> HashSet<(usize, usize)> {
    d.missing
        .iter()
        .flat_map(|(p, ls)| ls.iter().map(move |l| (*p, *l)))
        .collect()
}

fn lines_of(rx: &Receiver) -> Vec<String> {
    rx.entries().into_iter().map(|e| e.line).collect()
}

#[test]
fn a_45s_outage_with_rotation_deleting_files_and_a_kill_9_loses_nothing() {
    // 20 pods, 1,000 lines/s (400 KB/s) in total, rotated every ~40 KB,
    // the kubelet keeping 5 files (older rotations compressed, then deleted
    // ~8 s after their rotation). The memory budget covers ~10 s of this, so
    // at the kill most unsent lines live only in deleted files the agent
    // still held open: without a spool they are gone. As deployed, the
    // files are the node's pod logs, so trace detection runs; every 10th
    // line carries trace context, which must survive the spool.
    let w = Workload {
        pods: 20,
        lines: 2500,
        round: Duration::from_millis(20),
        rotate_at: Some(40 * 1024),
        max_files: Some(5),
        pad: 380,
        traced: Some(10),
    };
    let dir = tempfile::tempdir().unwrap();
    let wal = dir.path().join("wal");
    let rx = Receiver::start();
    let mut setup = Setup::new(dir.path(), &rx.push_url());
    setup.pod_logs = true;
    with_spool(&mut setup, &wal, "1GiB");
    let logs = w.create(&setup.logs, "out");
    let mut agent = Agent::start(dir.path(), &setup);
    assert!(agent.wait_ready(Duration::from_secs(60)), "{}", agent.log());
    let writer = {
        let w = w.clone();
        std::thread::spawn(move || w.run(logs, |_| {}))
    };
    std::thread::sleep(Duration::from_secs(2));
    rx.set_mode(Mode::Status(503));
    std::thread::sleep(Duration::from_secs(20));
    agent.kill9();
    // What a restart sends again: the spool from the saved cursors. Lines
    // of those chunks that Loki already has are the expected duplicates.
    let resent = |rx: &Receiver| {
        let before: HashSet<(usize, usize)> = lines_of(rx).iter().map(|l| workload_id(l)).collect();
        let again: HashSet<(usize, usize)> = spooled(&wal, min_cursor(&wal))
            .into_iter()
            .map(|(_, id)| id)
            .collect();
        (before.len(), before.intersection(&again).count())
    };
    let (before, mut expected_dups) = resent(&rx);
    agent.restart(&setup);
    std::thread::sleep(Duration::from_secs(25));
    rx.set_mode(Mode::Normal);
    // Once more while the backlog drains at full speed: some chunks are
    // sent, and their acceptance not saved yet.
    std::thread::sleep(Duration::from_millis(1500));
    agent.kill9();
    expected_dups += resent(&rx).1;
    agent.restart(&setup);
    let rotations = writer.join().unwrap();
    let ok = rx.wait_until(Duration::from_secs(300), |r| {
        delivered(&w, lines_of(r).iter().map(String::as_str)).lost() == 0
    });
    let d = delivered(&w, lines_of(&rx).iter().map(String::as_str));
    assert!(
        ok,
        "{} of {} lines lost (e.g. {:?}):\n{}",
        d.lost(),
        w.total(),
        d.missing.iter().next(),
        agent.log()
    );
    eprintln!(
        "45 s outage + kill -9 (twice) with the spool: {} lines, {rotations} rotations, {before} received before the first kill, {} duplicates (expected {expected_dups}: chunks sent whose acceptance was not saved)",
        w.total(),
        d.duplicates
    );
    assert_eq!(
        d.duplicates, expected_dups,
        "duplicates only from chunks sent but not yet acknowledged"
    );
    assert_eq!(d.in_order, Ok(()));
    assert_trace_context(&rx, &w, true);
    let lost = agent
        .metric_sum("tailtrace_lost_bytes_total", &[])
        .unwrap_or(0.0);
    assert_eq!(lost, 0.0, "nothing counted as lost");
    assert!(agent.terminate().unwrap().success());
}

/// Loki down; `w` written; waits until the spool holds every line, then
/// kills the agent. Returns the setup, receiver and wal dir.
fn spool_everything_then_kill(
    dir: &Path,
    w: &Workload,
    max_size: &str,
) -> (Setup, Receiver, PathBuf) {
    let wal = dir.join("wal");
    let rx = Receiver::start();
    rx.set_mode(Mode::Status(503));
    let mut setup = Setup::new(dir, &rx.push_url());
    with_spool(&mut setup, &wal, max_size);
    let logs = w.create(&setup.logs, "d");
    let mut agent = Agent::start(dir, &setup);
    assert!(agent.wait_ready(Duration::from_secs(60)), "{}", agent.log());
    w.run(logs, |_| {});
    let ok = agent::wait(Duration::from_secs(60), || {
        spooled(&wal, 0).len() >= w.total()
    });
    assert!(ok, "not everything spooled:\n{}", agent.log());
    // Let the last commit (positions saved) finish.
    std::thread::sleep(Duration::from_millis(500));
    agent.kill9();
    (setup, rx, wal)
}

fn small_workload() -> Workload {
    Workload {
        pods: 4,
        lines: 2000,
        round: Duration::from_micros(1500),
        rotate_at: None,
        max_files: None,
        pad: 160,
        traced: None,
    }
}

/// Restarts with Loki up; waits until `want` lines arrived (or gives up)
/// and returns the agent and the comparison.
fn restart_and_collect(
    dir: &Path,
    setup: &Setup,
    rx: &Receiver,
    w: &Workload,
    want: usize,
) -> (Agent, agent::Delivered) {
    rx.set_mode(Mode::Normal);
    let agent = Agent::start(dir, setup);
    rx.wait_until(Duration::from_secs(120), |r| {
        delivered(w, lines_of(r).iter().map(String::as_str))
            .seen
            .len()
            >= want
    });
    std::thread::sleep(Duration::from_millis(700));
    let d = delivered(w, lines_of(rx).iter().map(String::as_str));
    (agent, d)
}

#[test]
fn a_torn_last_chunk_is_cut_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let w = small_workload();
    let (setup, rx, wal) = spool_everything_then_kill(dir.path(), &w, "1GiB");
    // An interrupted write: the start of a chunk at the end of the last
    // segment (here: the first bytes of the spool's first chunk).
    let segs = segments(&wal);
    let first = std::fs::read(&segs[0]).unwrap();
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(segs.last().unwrap())
            .unwrap();
        f.write_all(&first[..first.len().min(300)]).unwrap();
    }
    let (mut agent, d) = restart_and_collect(dir.path(), &setup, &rx, &w, w.total());
    assert_eq!(d.lost(), 0, "{}", agent.log());
    assert_eq!(d.duplicates, 0);
    assert!(
        agent.log().contains("spool: cut"),
        "the cut is logged:\n{}",
        agent.log()
    );
    assert!(agent.terminate().unwrap().success());
}

#[test]
fn a_damaged_middle_chunk_is_skipped_named_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let w = small_workload();
    let (setup, rx, wal) = spool_everything_then_kill(dir.path(), &w, "1GiB");
    let all = spooled(&wal, 0);
    let mut chunks: Vec<u64> = all.iter().map(|(c, _)| *c).collect();
    chunks.dedup();
    assert!(
        chunks.len() >= 3,
        "need several chunks, got {}",
        chunks.len()
    );
    let victim = chunks[chunks.len() / 2];
    let lost: HashSet<(usize, usize)> = all
        .iter()
        .filter(|(c, _)| *c == victim)
        .map(|(_, id)| *id)
        .collect();
    // Flip one byte in the victim's payload.
    let seg = wal.join("00000000000000000000.seg");
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[victim as usize + 60] ^= 0x5a;
    std::fs::write(&seg, bytes).unwrap();
    let (mut agent, d) = restart_and_collect(dir.path(), &setup, &rx, &w, w.total() - lost.len());
    let missing = missing_ids(&d);
    assert_eq!(
        missing, lost,
        "exactly the damaged chunk's lines are missing"
    );
    assert_eq!(d.duplicates, 0);
    let log = agent.log();
    assert!(
        log.contains("damaged") && log.contains(&seg.display().to_string()),
        "named in the log:\n{log}"
    );
    let counted = agent
        .metric_sum("tailtrace_lost_files_total", &[("reason", "spool_damaged")])
        .unwrap_or(0.0);
    assert_eq!(counted, 1.0);
    assert!(agent.terminate().unwrap().success());
}

#[test]
fn a_missing_segment_is_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    // A 2 MiB bound: 256 KiB segments.
    let w = Workload {
        lines: 3000,
        ..small_workload()
    };
    let (setup, rx, wal) = spool_everything_then_kill(dir.path(), &w, "2MiB");
    let segs = segments(&wal);
    assert!(segs.len() >= 3, "need several segments, got {segs:?}");
    let gone = &segs[1];
    let seg_start: u64 = gone.file_stem().unwrap().to_string_lossy().parse().unwrap();
    let seg_end = seg_start + std::fs::metadata(gone).unwrap().len();
    let lost: HashSet<(usize, usize)> = spooled(&wal, 0)
        .into_iter()
        .filter(|(c, _)| *c >= seg_start && *c < seg_end)
        .map(|(_, id)| id)
        .collect();
    std::fs::remove_file(gone).unwrap();
    let (mut agent, d) = restart_and_collect(dir.path(), &setup, &rx, &w, w.total() - lost.len());
    let missing = missing_ids(&d);
    assert_eq!(
        missing, lost,
        "exactly the missing segment's lines are missing"
    );
    assert!(agent.log().contains("missing"), "{}", agent.log());
    let counted = agent
        .metric_sum("tailtrace_lost_bytes_total", &[("reason", "spool_damaged")])
        .unwrap_or(0.0);
    assert!(counted > 0.0);
    assert!(agent.terminate().unwrap().success());
}

#[test]
fn a_spool_that_cannot_be_written_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start();
    let mut setup = Setup::new(dir.path(), &rx.push_url());
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    with_spool(&mut setup, &file.join("wal"), "1GiB");
    let mut agent = Agent::start(dir.path(), &setup);
    let ok = agent::wait(Duration::from_secs(30), || !agent.alive());
    assert!(ok, "must refuse to start");
    let status = agent.terminate();
    assert!(status.is_none_or(|s| !s.success()));
    let log = agent.log();
    assert!(log.contains("wal.dir") && log.contains("a-file"), "{log}");
}

#[test]
fn a_full_spool_pauses_reading_and_drops_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let wal = dir.path().join("wal");
    let rx = Receiver::start();
    rx.set_mode(Mode::Status(503));
    let mut setup = Setup::new(dir.path(), &rx.push_url());
    with_spool(&mut setup, &wal, "256KiB");
    let w = Workload {
        pods: 4,
        lines: 3000,
        round: Duration::from_micros(500),
        rotate_at: None,
        max_files: None,
        pad: 200,
        traced: None,
    };
    let logs = w.create(&setup.logs, "full");
    let mut agent = Agent::start(dir.path(), &setup);
    assert!(agent.wait_ready(Duration::from_secs(60)));
    w.run(logs, |_| {});
    let full = agent::wait(Duration::from_secs(60), || {
        agent.metric_sum("tailtrace_spool_full", &[]).unwrap_or(0.0) == 1.0
    });
    assert!(full, "the spool reports full:\n{}", agent.log());
    let bytes = agent
        .metric_sum("tailtrace_spool_bytes", &[])
        .unwrap_or(0.0);
    assert!(
        bytes <= (512 << 10) as f64,
        "bounded: {bytes} bytes on disk"
    );
    rx.set_mode(Mode::Normal);
    rx.wait_until(Duration::from_secs(120), |r| {
        delivered(&w, lines_of(r).iter().map(String::as_str)).lost() == 0
    });
    let d = delivered(&w, lines_of(&rx).iter().map(String::as_str));
    assert_eq!(d.lost(), 0, "a full spool drops nothing:\n{}", agent.log());
    assert_eq!(d.duplicates, 0);
    assert_eq!(d.in_order, Ok(()));
    assert!(agent.terminate().unwrap().success());
}
