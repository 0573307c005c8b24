//! End to end, the user's worst day without a spool: Loki throttles while the
//! kubelet rotates and compresses files under load. Reading is stuck behind
//! the memory budget, but discovery must not be: every file is opened as it
//! appears (or caught up from its rotated or compressed copy), so nothing is
//! lost — with or without a `kill -9` in the middle.

#[path = "support/agent.rs"]
mod agent;
#[path = "support/receiver.rs"]
mod receiver;

use agent::{cri_line, Agent, PodLog, Setup};
use receiver::{Mode, Receiver};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const T0: i64 = 1_763_900_000_000_000_000;
const PODS: usize = 100;
const LINES: usize = 900;
/// 12,000 lines/s in total.
const ROUND_PAUSE: Duration = Duration::from_micros(8_300);
const ROTATE_AT: usize = 40 * 1024;

fn content(p: usize, l: usize) -> String {
    format!("p{p:03} l{l:06} {}", "z".repeat(60 + (l * 7) % 70))
}

fn parse_id(line: &str) -> (usize, usize) {
    let mut it = line.split(' ');
    let p = it.next().and_then(|s| s.strip_prefix('p')?.parse().ok());
    let l = it.next().and_then(|s| s.strip_prefix('l')?.parse().ok());
    match (p, l) {
        (Some(p), Some(l)) => (p, l),
        _ => panic!("unexpected line {line:?}"),
    }
}

/// Writes every pod's lines at 12k lines/s, rotating each file the way the
/// kubelet does every ~40 KB (older rotations compressed, none deleted).
/// Returns the number of rotations.
fn write_all(mut logs: Vec<PodLog>, done: Arc<AtomicBool>) -> usize {
    let mut rotations = 0;
    let start = Instant::now();
    for l in 0..LINES {
        for (p, log) in logs.iter_mut().enumerate() {
            let ts = T0 + (l as i64) * 1_000_000 + p as i64;
            log.write(&cri_line(ts, "stdout", false, &content(p, l)));
            if log.written_since_rotate >= ROTATE_AT {
                log.kubelet_rotate(None);
                rotations += 1;
            }
        }
        let due = ROUND_PAUSE * (l as u32 + 1);
        if let Some(wait) = due.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    done.store(true, Ordering::SeqCst);
    rotations
}

fn setup(dir: &std::path::Path, rx: &Receiver) -> Setup {
    let mut setup = Setup::new(dir, &rx.push_url());
    // Six 429s in a row take ~12 s of backoff: far longer than the memory
    // budget lasts at this rate.
    setup.min_period = "250ms";
    setup.max_period = "4s";
    setup
}

/// Every line arrived, each stream in write order (first arrivals);
/// returns the number of duplicates.
fn check_all_arrived(rx: &Receiver, agent: &Agent) -> usize {
    let total = PODS * LINES;
    let ok = rx.wait_until(Duration::from_secs(300), |r| {
        let mut u = std::collections::HashSet::new();
        for e in r.entries() {
            u.insert(parse_id(&e.line));
        }
        u.len() >= total
    });
    let entries = rx.entries();
    let mut seen: HashMap<(usize, usize), usize> = HashMap::new();
    for e in &entries {
        *seen.entry(parse_id(&e.line)).or_default() += 1;
    }
    if !ok {
        let mut missing: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for p in 0..PODS {
            for l in 0..LINES {
                if !seen.contains_key(&(p, l)) {
                    missing.entry(p).or_default().push(l);
                }
            }
        }
        let first: Vec<_> = missing.iter().take(3).collect();
        panic!(
            "{} of {total} lines lost (e.g. {first:?}); log:\n{}",
            total - seen.len(),
            agent.log()
        );
    }
    // Order per stream: the first arrival of each line comes in write order.
    let mut next: HashMap<usize, usize> = HashMap::new();
    let mut first_seen = std::collections::HashSet::new();
    for e in &entries {
        let (p, l) = parse_id(&e.line);
        if !first_seen.insert((p, l)) {
            continue;
        }
        let n = next.entry(p).or_default();
        assert_eq!(l, *n, "pod {p}: line {l} arrived before line {n}");
        *n += 1;
    }
    entries.len() - seen.len()
}

/// A receiver answering 429 to the first six pushes, an agent started on
/// `PODS` pod logs (named `<prefix>NNN`).
fn start(dir: &std::path::Path, prefix: &str) -> (Receiver, Setup, Vec<PodLog>, Agent) {
    let rx = Receiver::start();
    rx.set_mode(Mode::FailNext {
        count: 6,
        status: 429,
    });
    let setup = setup(dir, &rx);
    let logs: Vec<PodLog> = (0..PODS)
        .map(|p| PodLog::create(&setup.logs, &format!("{prefix}{p:03}"), "app"))
        .collect();
    let agent = Agent::start(dir, &setup);
    assert!(agent.wait_ready(Duration::from_secs(60)), "{}", agent.log());
    (rx, setup, logs, agent)
}

#[test]
fn throttled_loki_while_the_kubelet_rotates_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (rx, _setup, logs, mut agent) = start(dir.path(), "lag");
    let done = Arc::new(AtomicBool::new(false));
    let rotations = write_all(logs, done);
    let dups = check_all_arrived(&rx, &agent);
    assert_eq!(dups, 0, "no restart, so no duplicates");
    let lost = agent
        .metric_sum("tailtrace_lost_bytes_total", &[])
        .unwrap_or(0.0);
    assert_eq!(lost, 0.0, "nothing counted as lost");
    eprintln!(
        "429 storm: {} lines in {rotations} rotations, all delivered once, in order",
        PODS * LINES
    );
    assert!(agent.terminate().unwrap().success());
}

#[test]
fn throttled_loki_while_the_kubelet_rotates_and_a_kill_9_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (rx, setup, logs, mut agent) = start(dir.path(), "lagk");
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let done = done.clone();
        std::thread::spawn(move || write_all(logs, done))
    };
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
        PODS * LINES
    );
    assert!(dups <= before, "only lines sent before the kill come again");
    assert!(agent.terminate().unwrap().success());
}
