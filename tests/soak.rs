//! Randomized worst days: the real binary against the fake Loki, with a
//! seeded mix of what the other end-to-end tests do one at a time — Loki
//! throttling (429), failing (500/503), slow, dropping connections, or
//! storing a push and then dropping the connection (so the agent resends
//! what Loki has); the kubelet rotating, compressing and deleting files
//! under load; pods arriving while it runs; the agent `kill -9`ed or
//! stopped (SIGTERM) and started again (files rotating while it is down);
//! with and without the spool (a large one, or one small enough to fill),
//! trace detection, a low open-files limit.
//!
//! Each episode counts, per pod, the lines written against the lines
//! received: every line arrives (unless the agent counted data as lost:
//! the kubelet deleted a file before the agent could read it, which the
//! episode then reports), first arrivals in write order per pod, and a line
//! arrives more than once only where a kill or a stored-then-dropped push
//! allows it (it had been received before that kill or stop, or stored by
//! a push whose answer was dropped: once more per such push). Trace
//! context arrives as structured metadata, resends included.
//! The agent never panics.
//!
//! `a_random_worst_day` runs one episode of a fixed seed in the normal test
//! command. The soak itself is ignored by default; run it for as long as
//! wanted, from a seed:
//!
//! ```sh
//! SOAK_SECS=1800 SOAK_SEED=7 cargo test --release --test soak -- --ignored --nocapture
//! ```
//!
//! A failure names the seed and the episode's plan; `SOAK_SEED=<seed>
//! SOAK_EPISODES=1` replays that plan (the timing differs from run to run,
//! the plan does not); `SOAK_OPEN_FILES=<n>` gives every plan that
//! open-files limit (the agent holds a fifth of a limit below 320 for log
//! files, the limit minus 256 above); `SOAK_KEEP=1` keeps a failed episode's directory
//! (logs, files, spool, the positions file and its copy at each kill) in
//! `$TMPDIR/soak-fail-<seed>`. The agent's log (debug level) is always
//! written on failure, to `$TMPDIR/soak-fail-<seed>.log` or
//! `TT_DEBUG_LOG=<file>`. Never asserts timings: waits have a give-up bound.

#[path = "support/agent.rs"]
mod agent;
#[path = "support/receiver.rs"]
mod receiver;

use agent::{delivered, with_spool, workload_id, Agent, Setup, Workload};
use receiver::{Mode, Options, Receiver};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// splitmix64: the plan is a pure function of the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// What happens to Loki or the agent at a moment of the episode.
#[derive(Clone, Debug)]
enum Event {
    /// Loki answers this way from now on.
    Loki(Mode),
    /// Loki stores the next push, then drops the connection without
    /// answering (the agent resends what Loki has), then is normal.
    StoreThenDrop,
    /// `kill -9`, down for this long (files keep rotating), restart.
    Kill(Duration),
    /// SIGTERM (a rollout), down for this long, start again.
    Restart(Duration),
    /// Loki answers 503 for this long, then is normal (the next event comes
    /// after it).
    Outage(Duration),
}

/// One episode, drawn from a seed.
#[derive(Clone)]
struct Plan {
    seed: u64,
    workload: Workload,
    /// The files are the node's pod logs (trace detection after `cri`).
    pod_logs: bool,
    /// The spool's `max_size`, if on (a small one fills in an outage:
    /// reading then waits, as without it).
    spool: Option<&'static str>,
    open_files: Option<u64>,
    /// New pods appear while it runs, one every this many rounds.
    arriving: Option<usize>,
    /// (seconds from the start, event), in order.
    events: Vec<(f64, Event)>,
}

impl Plan {
    fn draw(seed: u64, secs: f64) -> Plan {
        let mut r = Rng(seed);
        let pods = r.range(10, 120) as usize;
        let round = Duration::from_millis(r.range(4, 15));
        let lines = (secs / round.as_secs_f64()) as usize;
        let pod_logs = r.chance(60);
        let open_files = r.chance(25).then_some(320);
        let rotate_at = r.chance(80).then(|| r.range(16, 96) as usize * 1024);
        // With few descriptors a parked file deleted before it is reopened
        // is lost for good: there, the kubelet keeps every rotation.
        let max_files = (rotate_at.is_some() && open_files.is_none() && r.chance(60))
            .then(|| r.range(3, 5) as usize);
        let workload = Workload {
            pods,
            lines,
            round,
            rotate_at,
            max_files,
            pad: r.range(20, 300) as usize,
            traced: pod_logs.then_some(10),
        };
        let arriving = r.chance(25).then(|| r.range(2, 8) as usize);
        let mut events = Vec::new();
        let mut t = r.range(5, 20) as f64 / 10.0;
        let mut kills = 0;
        while t < secs {
            let ev = match r.next() % 100 {
                0..=24 => Event::Loki(Mode::Normal),
                25..=44 => Event::Loki(Mode::FailNext {
                    count: r.range(2, 30) as usize,
                    status: 429,
                }),
                45..=54 => Event::Loki(Mode::FailNext {
                    count: r.range(1, 10) as usize,
                    status: 500,
                }),
                55..=62 => Event::Loki(Mode::Status(503)),
                63..=69 => Event::Loki(Mode::Slow(Duration::from_millis(r.range(50, 1500)))),
                70..=76 => Event::Loki(Mode::DropConnection),
                77..=84 => Event::StoreThenDrop,
                85..=89 => Event::Outage(Duration::from_secs(r.range(5, 25))),
                90..=94 if kills < 3 => {
                    kills += 1;
                    Event::Kill(Duration::from_millis(r.range(0, 2000)))
                }
                _ if kills < 3 => {
                    kills += 1;
                    Event::Restart(Duration::from_millis(r.range(0, 2000)))
                }
                _ => Event::Loki(Mode::Normal),
            };
            let busy = match &ev {
                Event::Outage(d) => d.as_secs_f64(),
                _ => 0.0,
            };
            events.push((t, ev));
            t += busy + r.range(3, 40) as f64 / 10.0;
        }
        Plan {
            seed,
            workload,
            pod_logs,
            spool: match r.next() % 100 {
                0..=49 => None,
                50..=84 => Some("1GiB"),
                _ => Some("8MiB"),
            },
            open_files,
            arriving,
            events,
        }
    }

    fn describe(&self) -> String {
        let w = &self.workload;
        format!(
            "seed {} — {} pods × {} lines every {:?}, pad {}, rotate at {:?}, max_files {:?}, \
             traced {:?}, pod_logs {}, spool {:?}, open_files {:?}, arriving {:?}; events {:?}",
            self.seed,
            w.pods,
            w.lines,
            w.round,
            w.pad,
            w.rotate_at,
            w.max_files,
            w.traced,
            self.pod_logs,
            self.spool,
            self.open_files,
            self.arriving,
            self.events
        )
    }
}

/// Pod `pod`'s first arrivals as runs of consecutive lines of one file:
/// `arrival index (push n): file f, lines a..=b`, one per line of text
/// (an order failure's evidence: read first, or delivered first?).
/// `starts`: where each storing push began ([`Receiver::store_starts`]).
fn arrival_runs(
    lines: &[String],
    starts: &[usize],
    pod: usize,
    file_of: impl Fn(usize) -> usize,
) -> String {
    let mut seen = HashSet::new();
    let mut runs: Vec<(usize, usize, usize, usize)> = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let (p, n) = workload_id(l);
        if p != pod || !seen.insert(n) {
            continue;
        }
        let f = file_of(n);
        match runs.last_mut() {
            Some(r) if r.1 == f && r.3 + 1 == n => r.3 = n,
            _ => runs.push((i, f, n, n)),
        }
    }
    let push = |i: usize| starts.partition_point(|&s| s <= i).saturating_sub(1);
    runs.iter()
        .map(|&(i, f, a, b)| format!("  {i} (push {}): file {f}, lines {a}..={b}\n", push(i)))
        .collect()
}

/// Ids of the lines received so far.
fn received_ids(rx: &Receiver) -> HashSet<(usize, usize)> {
    received_counts(rx).into_keys().collect()
}

/// Times each line was received so far.
fn received_counts(rx: &Receiver) -> HashMap<(usize, usize), usize> {
    let mut counts = HashMap::new();
    for l in rx.lines() {
        *counts.entry(workload_id(&l)).or_default() += 1;
    }
    counts
}

/// Missing line numbers of the first pods, as ranges: `p3: 165-329`.
fn missing_ranges(d: &agent::Delivered) -> String {
    let mut out = Vec::new();
    for (p, ls) in d.missing.iter().take(12) {
        let mut ranges: Vec<(usize, usize)> = Vec::new();
        for &l in ls {
            match ranges.last_mut() {
                Some(r) if r.1 + 1 == l => r.1 = l,
                _ => ranges.push((l, l)),
            }
        }
        let rs: Vec<String> = ranges.iter().map(|(a, b)| format!("{a}-{b}")).collect();
        out.push(format!("p{p}: {}", rs.join(",")));
    }
    out.join("; ")
}

/// What the episode's checks allow beyond one arrival per line: for each
/// kill or stop, the lines received before it, once more; for each push
/// Loki stored and then dropped, the lines it stored, once more (counted
/// by the receiver, [`Receiver::stored_then_dropped`]).
#[derive(Default)]
struct Allowance {
    before_kills: Vec<HashSet<(usize, usize)>>,
    resent: HashMap<(usize, usize), usize>,
}

impl Allowance {
    fn times(&self, id: &(usize, usize)) -> usize {
        1 + self
            .before_kills
            .iter()
            .filter(|set| set.contains(id))
            .count()
            + self.resent.get(id).copied().unwrap_or(0)
    }
}

/// Data the agent counted as lost, from its `/metrics` (0 if it does not
/// answer).
fn lost_bytes(agent: &Agent) -> f64 {
    agent
        .metric_sum("tailtrace_lost_bytes_total", &[])
        .unwrap_or(0.0)
}

/// Runs one episode of `plan`; panics (naming the plan) on a broken
/// guarantee.
fn run(plan: &Plan) {
    eprintln!("soak: {}", plan.describe());
    let dir = tempfile::tempdir().unwrap();
    let w = plan.workload.clone();
    let rx = Receiver::start_with(Options::default());
    let mut setup = Setup::new(dir.path(), &rx.push_url());
    setup.min_period = "100ms";
    setup.max_period = "2s";
    setup.pod_logs = plan.pod_logs;
    setup.open_files_limit = plan.open_files;
    if let Some(max_size) = plan.spool {
        with_spool(&mut setup, &dir.path().join("wal"), max_size);
    }
    let mut logs = match plan.arriving {
        Some(every) => w.create_arriving(&setup.logs, "s", every),
        None => w.create(&setup.logs, "s"),
    };
    for log in &mut logs {
        log.track_deleted = true;
    }
    let mut agent = Agent::start(dir.path(), &setup);
    let fail = |agent: &Agent, what: String| -> ! {
        // The agent's log is always kept: a failure that does not come
        // back on replay (seed 5421) is otherwise lost with its evidence.
        let log = std::env::var_os("TT_DEBUG_LOG").map_or_else(
            || std::env::temp_dir().join(format!("soak-fail-{}.log", plan.seed)),
            std::path::PathBuf::from,
        );
        let _ = std::fs::write(&log, agent.log());
        eprintln!("soak: agent log in {}", log.display());
        if std::env::var_os("SOAK_KEEP").is_some() {
            // The files, positions (and their copies at each kill), spool
            // and agent logs, for a post-mortem.
            let keep = std::env::temp_dir().join(format!("soak-fail-{}", plan.seed));
            let _ = std::process::Command::new("cp")
                .arg("-a")
                .arg(&agent.dir)
                .arg(&keep)
                .status();
            eprintln!("soak: kept {}", keep.display());
        }
        panic!("{what}\nplan: {}", plan.describe());
    };
    if !agent.wait_ready(Duration::from_secs(60)) {
        fail(&agent, format!("not ready: {}", agent.log()));
    }
    // The writer's round, to tell which lines were written while no agent
    // was reading (see `downtime` below).
    let round = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (w, round) = (w.clone(), round.clone());
        std::thread::spawn(move || w.run_keeping(logs, |r| round.store(r, Ordering::Relaxed)))
    };
    // Writer rounds from a stop or kill until the agent was ready again.
    let mut downtime: Vec<(usize, usize)> = Vec::new();
    let start = Instant::now();
    let mut allow = Allowance::default();
    let mut lost = 0.0;
    let mut kills = 0;
    for (at, ev) in &plan.events {
        let due = Duration::from_secs_f64(*at);
        if let Some(wait) = due.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
        match ev {
            Event::Loki(m) => rx.set_mode(*m),
            Event::Outage(d) => {
                rx.set_mode(Mode::Status(503));
                std::thread::sleep(*d);
                rx.set_mode(Mode::Normal);
            }
            Event::StoreThenDrop => {
                let requests = rx.requests().len();
                rx.set_mode(Mode::AcceptThenDrop);
                // Until one push came (or a give-up bound: the agent may be
                // idle), then normal again.
                rx.wait_until(Duration::from_secs(5), |r| r.requests().len() > requests);
                rx.set_mode(Mode::Normal);
                // What it stored and dropped may come again: counted per
                // push by the receiver (`Receiver::stored_then_dropped`),
                // not guessed from this window — a window's snapshot missed
                // a push once (seed 7144 at a limit of 120: 2,727 lines
                // "more often than allowed", three replays clean).
            }
            Event::Kill(down) | Event::Restart(down) => {
                lost += lost_bytes(&agent);
                let stopped_at = round.load(Ordering::Relaxed);
                let how = if let Event::Restart(_) = ev {
                    let status = agent.terminate();
                    if !status.is_some_and(|s| s.success()) {
                        fail(&agent, format!("SIGTERM: exit status {status:?}"));
                    }
                    "stop"
                } else {
                    agent.kill9();
                    "kill"
                };
                kills += 1;
                let _ = std::fs::copy(
                    &setup.positions,
                    dir.path().join(format!("positions.at-{how}-{kills}.yaml")),
                );
                // Lines Loki had at the kill (or when the stop's flush gave
                // up) may come again — a push the agent gave up on included,
                // which the receiver may still be storing after the agent is
                // gone (seeds 1317, 1410: ~3,000 lines "more often than
                // allowed", on builds before and after the stop of
                // 2026-12-04).
                rx.wait_idle(Duration::from_secs(10));
                allow.before_kills.push(received_ids(&rx));
                std::thread::sleep(*down);
                agent.restart(&setup);
                if !agent.wait_ready(Duration::from_secs(60)) {
                    fail(&agent, "not ready after the restart".into());
                }
                downtime.push((stopped_at, round.load(Ordering::Relaxed)));
            }
        }
    }
    let (rotations, logs) = writer.join().unwrap();
    // Lines the kubelet deleted may be gone (if the agent had not read
    // them); every other line must arrive.
    let deleted: HashSet<(usize, usize)> = logs
        .iter()
        .flat_map(|l| l.deleted.iter().copied())
        .collect();
    rx.set_mode(Mode::Normal);
    let missing_kept = |r: &Receiver| {
        let d = delivered(&w, r.lines().iter().map(String::as_str));
        d.missing
            .iter()
            .flat_map(|(p, ls)| ls.iter().map(move |l| (*p, *l)))
            .filter(|id| !deleted.contains(id))
            .count()
    };
    if !rx.wait_until(Duration::from_secs(300), |r| missing_kept(r) == 0) {
        let d = delivered(&w, rx.lines().iter().map(String::as_str));
        fail(
            &agent,
            format!(
                "{} of {} lines never arrived, though the kubelet kept them ({})",
                missing_kept(&rx),
                w.total(),
                missing_ranges(&d)
            ),
        );
    }
    // Deleted lines the agent had read arrive too: wait until nothing more
    // comes for a while.
    let mut last = (rx.count(), Instant::now());
    let settled = Instant::now();
    while delivered(&w, rx.lines().iter().map(String::as_str)).lost() > 0
        && last.1.elapsed() < Duration::from_secs(5)
        && settled.elapsed() < Duration::from_secs(120)
    {
        std::thread::sleep(Duration::from_millis(200));
        if rx.count() != last.0 {
            last = (rx.count(), Instant::now());
        }
    }
    lost += lost_bytes(&agent);
    let lines = rx.lines();
    let d = delivered(&w, lines.iter().map(String::as_str));
    if agent.log().contains("panicked") {
        fail(&agent, "the agent panicked".into());
    }
    // What is gone was deleted by the kubelet (checked above), and is
    // counted — except lines written while no agent was reading, or in the
    // file that was current then, whose files the kubelet may have rotated
    // and deleted before any agent saw them (README, *Known limitations*:
    // that leaves no trace to count).
    let per_file = w
        .rotate_at
        .map_or(usize::MAX, |r| r / w.line(0, 0).len() + 1);
    let written_at = |p: usize, l: usize| l + plan.arriving.map_or(0, |every| p * every);
    let unseen = |p: usize, l: usize| {
        let r = written_at(p, l);
        downtime
            .iter()
            .any(|&(from, to)| r + per_file >= from && r <= to)
    };
    let gone: usize = d
        .missing
        .iter()
        .flat_map(|(p, ls)| ls.iter().map(move |l| (*p, *l)))
        .filter(|&(p, l)| !unseen(p, l))
        .map(|(p, l)| w.line(p, l).len())
        .sum();
    // The count is a lower bound: a file deleted while no agent ran is
    // counted from the size last seen (it may have grown since).
    if gone > 0 && lost == 0.0 {
        fail(
            &agent,
            format!(
                "{} lines ({gone} bytes) the kubelet deleted never arrived, and nothing was counted lost ({})",
                d.lost(),
                missing_ranges(&d)
            ),
        );
    }
    // First arrivals in write order per pod; lines that never arrived
    // (deleted unread) leave gaps, which are not disorder.
    let mut last: HashMap<usize, usize> = HashMap::new();
    let mut seen: HashSet<(usize, usize)> = HashSet::new();
    for l in &lines {
        let (p, n) = workload_id(l);
        if !seen.insert((p, n)) {
            continue;
        }
        if let Some(&prev) = last.get(&p) {
            if n < prev {
                let file_of = |l: usize| logs.get(p).map_or(0, |g| g.file_of(l));
                fail(
                    &agent,
                    format!(
                        "pod {p}: line {n} (file {}) arrived after line {prev} (file {})\n\
                         pod {p}'s first arrivals, as runs (arrival index (push): file, lines):\n{}",
                        file_of(n),
                        file_of(prev),
                        arrival_runs(&lines, &rx.store_starts(), p, file_of)
                    ),
                );
            }
        }
        last.insert(p, n);
    }
    for l in rx.stored_then_dropped() {
        *allow.resent.entry(workload_id(&l)).or_default() += 1;
    }
    let mut bad: Vec<_> = d
        .seen
        .iter()
        .filter(|(id, n)| **n > allow.times(id))
        .map(|(id, n)| (*id, *n, allow.times(id)))
        .collect();
    bad.sort();
    if !bad.is_empty() {
        fail(
            &agent,
            format!(
                "{} lines arrived more often than a kill or a dropped answer allows \
                 ((pod, line), times, allowed): {:?}",
                bad.len(),
                &bad[..bad.len().min(5)]
            ),
        );
    }
    if w.traced.is_some() {
        let entries = rx.entries();
        let wrong = w.trace_mismatches(
            entries
                .iter()
                .map(|e| (e.line.as_str(), e.metadata.as_slice())),
            true,
        );
        if !wrong.is_empty() {
            fail(
                &agent,
                format!(
                    "{} entries with wrong trace metadata, e.g. {:?}",
                    wrong.len(),
                    &wrong[..wrong.len().min(3)]
                ),
            );
        }
    }
    eprintln!(
        "soak: seed {} ok — {} lines, {rotations} rotations, {} duplicates (allowed), {} lines deleted unread \
         ({} of them while no agent ran), {lost} bytes counted lost",
        plan.seed,
        w.total(),
        d.duplicates,
        d.lost(),
        d.missing
            .iter()
            .map(|(p, ls)| ls.iter().filter(|&&l| unseen(*p, l)).count())
            .sum::<usize>()
    );
    let _ = agent.terminate();
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// One episode of a fixed seed (~30 s of writing), in the normal test
/// command.
#[test]
fn a_random_worst_day() {
    run(&Plan::draw(env_u64("SOAK_SEED").unwrap_or(20261204), 30.0));
}

/// Episodes from `SOAK_SEED` on until `SOAK_SECS` (default 600) have passed
/// or `SOAK_EPISODES` ran.
#[test]
#[ignore = "a long soak: SOAK_SECS=… cargo test --release --test soak -- --ignored"]
fn soak() {
    let secs = env_u64("SOAK_SECS").unwrap_or(600);
    let episodes = env_u64("SOAK_EPISODES").unwrap_or(u64::MAX);
    let seed = env_u64("SOAK_SEED").unwrap_or(1);
    let start = Instant::now();
    let mut n = 0;
    while n < episodes && start.elapsed() < Duration::from_secs(secs) {
        let length = Rng(seed + n).range(15, 60) as f64;
        let mut plan = Plan::draw(seed + n, length);
        if let Some(bound) = env_u64("SOAK_OPEN_FILES") {
            // Hunting at the descriptor bound: every plan gets this limit
            // (and, as there, the kubelet keeps every rotation).
            plan.open_files = Some(bound);
            plan.workload.max_files = None;
        }
        run(&plan);
        n += 1;
    }
    eprintln!("soak: {n} episodes passed");
}

/// The order failure's evidence: first arrivals of one pod, as runs of
/// one file's consecutive lines, each with the push that brought it.
#[test]
fn arrival_runs_group_a_pods_first_arrivals_by_file_and_push() {
    let l = |p: usize, n: usize| format!("p{p} l{n} x");
    // Pushes: [p0 l0, p0 l1, p1 l0], [p0 l4, p0 l1 (again), p0 l2].
    let lines = [l(0, 0), l(0, 1), l(1, 0), l(0, 4), l(0, 1), l(0, 2)];
    let runs = arrival_runs(&lines, &[0, 3], 0, |n| n / 2 + 1);
    assert_eq!(
        runs,
        "  0 (push 0): file 1, lines 0..=1\n  3 (push 1): file 3, lines 4..=4\n  5 (push 1): file 2, lines 2..=2\n"
    );
}
