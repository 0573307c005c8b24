//! End to end under faults: `kill -9` mid-stream, receiver outages (429, 500,
//! dropped connections), and a batch Loki rejects with 400.

#[path = "support/agent.rs"]
mod agent;
#[path = "support/receiver.rs"]
mod receiver;

use agent::{cri_line, wait, Agent, PodLog, Setup};
use receiver::{Mode, Receiver};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const T0: i64 = 1_763_900_000_000_000_000;

fn content(f: usize, l: usize) -> String {
    format!("f{f:03} l{l:05} {}", "y".repeat(100 + (l * 13) % 90))
}

fn parse_id(line: &str) -> (usize, usize) {
    let mut it = line.split(' ');
    let f = it
        .next()
        .and_then(|s| s.strip_prefix('f'))
        .and_then(|s| s.parse().ok());
    let l = it
        .next()
        .and_then(|s| s.strip_prefix('l'))
        .and_then(|s| s.parse().ok());
    match (f, l) {
        (Some(f), Some(l)) => (f, l),
        _ => panic!("unexpected line {line:?}"),
    }
}

/// Writes line `l` of file `f` (every 7th split P/F); returns the file offset
/// just after the line.
fn write_line(log: &mut PodLog, f: usize, l: usize, offset: &mut u64) -> u64 {
    let c = content(f, l);
    let ts = T0 + (l as i64) * 1_000_000 + f as i64;
    let s = if l % 7 == 2 {
        let (a, b) = c.split_at(50);
        cri_line(ts - 1, "stdout", true, a) + &cri_line(ts, "stdout", false, b)
    } else {
        cri_line(ts, "stdout", false, &c)
    };
    log.write(&s);
    *offset += s.len() as u64;
    *offset
}

/// Saved offsets by path from the positions file (Promtail's `positions:` map).
fn saved_offsets(path: &std::path::Path) -> HashMap<String, u64> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let v: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&text).unwrap_or(serde_yaml_ng::Value::Null);
    let mut out = HashMap::new();
    if let Some(m) = v.get("positions").and_then(|p| p.as_mapping()) {
        for (k, v) in m {
            let off = v
                .as_str()
                .and_then(|s| s.parse().ok())
                .or_else(|| v.as_u64());
            if let (Some(k), Some(off)) = (k.as_str(), off) {
                out.insert(k.to_string(), off);
            }
        }
    }
    out
}

#[test]
fn kill_9_mid_stream_loses_nothing_and_duplicates_only_the_unsaved_tail() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start();
    let setup = Setup::new(dir.path(), &rx.push_url());
    const FILES: usize = 30;
    const LINES: usize = 3000;
    let logs: Vec<PodLog> = (0..FILES)
        .map(|f| PodLog::create(&setup.logs, &format!("kill{f:03}"), "app"))
        .collect();
    let paths: Vec<PathBuf> = logs.iter().map(|l| l.path.clone()).collect();
    // end offsets of every line, per file
    let ends: Arc<Mutex<Vec<Vec<u64>>>> = Arc::new(Mutex::new(vec![Vec::new(); FILES]));
    let mut agent = Agent::start(dir.path(), &setup);
    assert!(agent.wait_ready(Duration::from_secs(60)), "{}", agent.log());

    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let ends = ends.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            let mut logs = logs;
            let mut offs = vec![0u64; FILES];
            for l in 0..LINES {
                for (f, log) in logs.iter_mut().enumerate() {
                    let end = write_line(log, f, l, &mut offs[f]);
                    ends.lock().unwrap()[f].push(end);
                }
                if l % 100 == 0 {
                    std::thread::sleep(Duration::from_millis(30));
                }
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    let total = FILES * LINES;
    assert!(
        rx.wait_until(Duration::from_secs(120), |r| r.count() >= total / 4),
        "no progress: {}",
        agent.log()
    );
    agent.kill9();
    // Nothing more can arrive from the dead process; snapshot what did.
    std::thread::sleep(Duration::from_millis(300));
    let at_kill = rx.entries();
    let saved = saved_offsets(&setup.positions);
    // Lines received before the kill that lie beyond the saved offset of
    // their file are exactly the lines a restart must send again.
    let expected_dups = {
        let ends = ends.lock().unwrap();
        at_kill
            .iter()
            .filter(|e| {
                let (f, l) = parse_id(&e.line);
                let saved = saved
                    .get(&paths[f].display().to_string())
                    .copied()
                    .unwrap_or(0);
                ends[f][l] > saved
            })
            .count()
    };
    agent.restart(&setup);
    writer.join().unwrap();
    assert!(done.load(Ordering::SeqCst));
    let ok = rx.wait_until(Duration::from_secs(300), |r| {
        let mut u = std::collections::HashSet::new();
        for e in r.entries() {
            u.insert(parse_id(&e.line));
        }
        u.len() >= total
    });
    assert!(
        ok,
        "lines lost across kill -9: {} received; log:\n{}",
        rx.count(),
        agent.log()
    );
    std::thread::sleep(Duration::from_millis(700));
    let all = rx.entries();
    let mut seen: HashMap<(usize, usize), usize> = HashMap::new();
    for e in &all {
        assert_eq!(e.line, content(parse_id(&e.line).0, parse_id(&e.line).1));
        *seen.entry(parse_id(&e.line)).or_default() += 1;
    }
    for f in 0..FILES {
        for l in 0..LINES {
            assert!(seen.contains_key(&(f, l)), "f{f} l{l} lost");
        }
    }
    let dups = all.len() - seen.len();
    eprintln!(
        "kill -9: {} lines received before the kill, {} beyond the saved positions; {} duplicates after restart",
        at_kill.len(),
        expected_dups,
        dups
    );
    assert_eq!(
        dups, expected_dups,
        "duplicates must be exactly the lines past the saved positions"
    );
    assert!(agent.terminate().unwrap().success());
}

#[test]
fn outage_with_429_500_and_dropped_connections_then_recovery_delivers_everything_once() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start();
    rx.set_mode(Mode::Status(429));
    let setup = Setup::new(dir.path(), &rx.push_url());
    const FILES: usize = 10;
    const LINES: usize = 500;
    let mut logs: Vec<PodLog> = (0..FILES)
        .map(|f| PodLog::create(&setup.logs, &format!("out{f:03}"), "app"))
        .collect();
    let mut offs = [0u64; FILES];
    for l in 0..LINES {
        for (f, log) in logs.iter_mut().enumerate() {
            write_line(log, f, l, &mut offs[f]);
        }
    }
    let mut agent = Agent::start(dir.path(), &setup);
    let retried = |n: usize, status: u16| {
        wait(Duration::from_secs(60), || {
            rx.requests().iter().filter(|r| r.status == status).count() >= n
        })
    };
    assert!(retried(5, 429), "no 429 retries seen:\n{}", agent.log());
    rx.set_mode(Mode::Status(500));
    assert!(retried(3, 500), "no 500 retries seen");
    rx.set_mode(Mode::DropConnection);
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(rx.count(), 0, "nothing may be stored during the outage");
    rx.set_mode(Mode::Normal);
    let total = FILES * LINES;
    assert!(
        rx.wait_until(Duration::from_secs(120), |r| r.count() >= total),
        "after recovery only {} of {total}:\n{}",
        rx.count(),
        agent.log()
    );
    std::thread::sleep(Duration::from_millis(500));
    let mut seen = BTreeMap::new();
    for e in rx.entries() {
        *seen.entry(parse_id(&e.line)).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), total);
    assert!(seen.values().all(|&n| n == 1), "duplicates after an outage");
    let retries = agent
        .metric_sum("promtail_batch_retries_total", &[])
        .unwrap_or(0.0);
    assert!(retries >= 8.0, "promtail_batch_retries_total = {retries}");
    assert_eq!(
        agent
            .metric_sum("promtail_dropped_entries_total", &[])
            .unwrap_or(-1.0),
        0.0
    );
    assert!(agent.terminate().unwrap().success());
}

#[test]
fn a_batch_rejected_with_400_is_dropped_counted_and_the_rest_flows() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start();
    let setup = Setup::new(dir.path(), &rx.push_url());
    let mut log = PodLog::create(&setup.logs, "bad400", "app");
    let mut off = 0u64;
    let mut agent = Agent::start(dir.path(), &setup);
    assert!(agent.wait_ready(Duration::from_secs(60)));
    for l in 0..100 {
        write_line(&mut log, 0, l, &mut off);
    }
    assert!(rx.wait_until(Duration::from_secs(60), |r| r.count() >= 100));
    rx.set_mode(Mode::FailNext {
        count: 1,
        status: 400,
    });
    for l in 100..200 {
        write_line(&mut log, 0, l, &mut off);
    }
    assert!(wait(Duration::from_secs(60), || rx
        .requests()
        .iter()
        .any(|r| r.status == 400)));
    // Wait until the rejected lines are counted as dropped.
    assert!(
        wait(Duration::from_secs(30), || {
            agent
                .metric_sum("promtail_dropped_entries_total", &[])
                .unwrap_or(0.0)
                > 0.0
        }),
        "400 not counted:\n{}",
        agent.log()
    );
    for l in 200..300 {
        write_line(&mut log, 0, l, &mut off);
    }
    assert!(
        wait(Duration::from_secs(60), || rx
            .entries()
            .iter()
            .any(|e| parse_id(&e.line).1 == 299)),
        "agent stopped shipping after a 400"
    );
    std::thread::sleep(Duration::from_millis(500));
    let got: std::collections::HashSet<usize> =
        rx.entries().iter().map(|e| parse_id(&e.line).1).collect();
    let missing = 300 - got.len();
    let dropped = agent
        .metric_sum(
            "promtail_dropped_entries_total",
            &[("reason", "ingester_error")],
        )
        .unwrap_or(-1.0);
    assert!(missing > 0, "a 400 batch must be dropped, not retried");
    assert_eq!(
        dropped as usize, missing,
        "every missing line is a counted drop"
    );
    assert!(
        agent.log().contains("400"),
        "the rejection is logged with Loki's status"
    );
    assert!(agent.terminate().unwrap().success());
}
