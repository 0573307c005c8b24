//! End to end: the `journal` scrape config reading REAL journal files (made
//! from journal export format with `systemd-journal-remote`) through the
//! real `journalctl`: exactly the matching entries arrive, once, with the
//! right labels and timestamps; a stop and restart between two batches
//! ships only the new ones (the cursor is saved after delivery); journalctl
//! killed under the agent is restarted and nothing is lost or duplicated.
//! Skips (with a message) when systemd-journal-remote or journalctl is
//! missing. Every wait has a generous give-up bound; nothing asserts
//! timings.

#[path = "support/agent.rs"]
mod agent;
#[path = "support/journal.rs"]
mod journal;
#[path = "support/receiver.rs"]
mod receiver;

use agent::{wait, Agent, Setup};
use journal::{journal_dir, now_us, write_journal, JEntry};
use receiver::Receiver;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const GIVE_UP: Duration = Duration::from_secs(120);
/// `n` entries per unit (kubelet, containerd, cron), `tag` in the message.
fn batch(tag: &str, n: usize, base_us: u64) -> Vec<JEntry> {
    let mut v = Vec::new();
    for i in 0..n {
        for (k, unit) in ["kubelet.service", "containerd.service", "cron.service"]
            .into_iter()
            .enumerate()
        {
            v.push(JEntry {
                unit,
                message: format!("{tag} {unit} {i:05}").into_bytes(),
                us: base_us + (i * 3 + k) as u64,
            });
        }
    }
    v
}

fn setup(dir: &Path, journal: &Path, rx: &Receiver) -> Setup {
    let mut s = Setup::new(dir, &rx.push_url());
    s.scrape_configs = Some(format!(
        r#"scrape_configs:
  - job_name: system
    journal:
      path: {}
      matches: _SYSTEMD_UNIT=kubelet.service _SYSTEMD_UNIT=containerd.service
      labels:
        job: systemd-journal
    relabel_configs:
      - source_labels: [__journal__systemd_unit]
        target_label: unit
"#,
        journal.display()
    ));
    s
}

/// The expected (line, unit, ts_ns) of the entries `journalctl` matches.
fn expected(entries: &[JEntry]) -> BTreeMap<String, (String, i64)> {
    entries
        .iter()
        .filter(|e| e.unit != "cron.service")
        .map(|e| {
            let line = String::from_utf8_lossy(&e.message).into_owned();
            (line, (e.unit.to_string(), e.us as i64 * 1000))
        })
        .collect()
}

/// Every received entry's line → how many times, asserting labels and
/// timestamps against `want`.
fn check(rx: &Receiver, want: &BTreeMap<String, (String, i64)>) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for e in rx.entries() {
        let Some((unit, ts)) = want.get(&e.line) else {
            panic!("unexpected entry {:?} {:?}", e.line, e.labels);
        };
        assert_eq!(e.labels.get("unit"), Some(unit), "{:?}", e.labels);
        assert_eq!(
            e.labels.get("job").map(String::as_str),
            Some("systemd-journal")
        );
        assert!(
            e.labels.keys().all(|k| !k.starts_with("__")),
            "{:?}",
            e.labels
        );
        assert_eq!(e.ts_ns, *ts, "{}", e.line);
        *seen.entry(e.line).or_insert(0) += 1;
    }
    seen
}

fn assert_exactly_once(rx: &Receiver, want: &BTreeMap<String, (String, i64)>, agent: &Agent) {
    assert!(
        rx.wait_for_count(want.len(), GIVE_UP),
        "got {} of {}\n{}",
        rx.count(),
        want.len(),
        agent.log()
    );
    // A moment for anything extra (a duplicate) to show up.
    std::thread::sleep(Duration::from_millis(1500));
    let seen = check(rx, want);
    let dup: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dup.is_empty(), "duplicates: {dup:?}");
    assert_eq!(seen.len(), want.len(), "{}", agent.log());
}

/// The pids of `journalctl` children of `pid`.
fn journalctl_children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in tasks.flatten() {
        let children = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
        for c in children
            .split_whitespace()
            .filter_map(|c| c.parse::<u32>().ok())
        {
            let comm = std::fs::read_to_string(format!("/proc/{c}/comm")).unwrap_or_default();
            if comm.trim() == "journalctl" {
                out.push(c);
            }
        }
    }
    out
}

#[test]
fn ships_matching_entries_once_and_resumes_after_restart() {
    let Some((tmp, journal)) = journal_dir() else {
        return;
    };
    let dir = tmp.path();
    let base = now_us() - 60_000_000;
    let mut first = batch("first", 20, base);
    // A binary (invalid UTF-8) MESSAGE from the kubelet.
    first.push(JEntry {
        unit: "kubelet.service",
        message: b"binary \xff\x00 end".to_vec(),
        us: base + 1_000_000,
    });
    write_journal(&journal, "a", &first);
    let rx = Receiver::start();
    let s = setup(dir, &journal, &rx);
    let mut agent = Agent::start(dir, &s);
    let mut want = expected(&first);
    assert_eq!(want.len(), 41);
    assert_exactly_once(&rx, &want, &agent);

    // Stop, append a second batch (a second journal file), restart: only the
    // new entries arrive.
    assert!(
        agent.terminate().is_some_and(|s| s.success()),
        "{}",
        agent.log()
    );
    let pos = std::fs::read_to_string(dir.join("positions.yaml")).unwrap_or_default();
    assert!(pos.contains("journal-system"), "{pos}");
    let second = batch("second", 20, base + 2_000_000);
    write_journal(&journal, "b", &second);
    agent.restart(&s);
    want.extend(expected(&second));
    assert_exactly_once(&rx, &want, &agent);
    assert!(
        agent.terminate().is_some_and(|s| s.success()),
        "{}",
        agent.log()
    );
}

#[test]
fn journalctl_killed_is_restarted_and_nothing_is_lost() {
    let Some((tmp, journal)) = journal_dir() else {
        return;
    };
    let dir = tmp.path();
    let entries = batch("many", 4000, now_us() - 60_000_000);
    write_journal(&journal, "a", &entries);
    let rx = Receiver::start();
    let mut s = setup(dir, &journal, &rx);
    // Small batches: reading takes a while, so the kill lands mid-way.
    s.batchsize = 4096;
    let mut agent = Agent::start(dir, &s);
    let pid = agent.pid();
    let mut first = Vec::new();
    assert!(
        wait(GIVE_UP, || {
            first = journalctl_children(pid);
            !first.is_empty() && rx.count() > 0
        }),
        "no journalctl child or nothing delivered\n{}",
        agent.log()
    );
    for c in &first {
        let _ = Command::new("kill")
            .args(["-KILL", &c.to_string()])
            .status();
    }
    let killed_at = rx.count();
    let want = expected(&entries);
    assert_exactly_once(&rx, &want, &agent);
    // A new journalctl runs (restarted with backoff).
    assert!(
        wait(GIVE_UP, || {
            let now = journalctl_children(pid);
            !now.is_empty() && now.iter().all(|c| !first.contains(c))
        }),
        "journalctl was not restarted\n{}",
        agent.log()
    );
    eprintln!(
        "killed journalctl after {killed_at} of {} entries",
        want.len()
    );
    assert!(
        agent.terminate().is_some_and(|s| s.success()),
        "{}",
        agent.log()
    );
}

#[test]
fn missing_journalctl_and_unreadable_path_are_reported_and_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let rx = Receiver::start();
    let mut s = Setup::new(dir, &rx.push_url());
    s.scrape_configs = Some(format!(
        r#"scrape_configs:
  - job_name: nodir
    journal: {{path: {missing}, labels: {{job: a}}}}
  - job_name: nobin
    journal: {{path: {empty}, labels: {{job: b}}}}
"#,
        missing = dir.join("missing").display(),
        empty = empty.display()
    ));
    // No journalctl on PATH.
    s.env.push(("PATH".into(), empty.display().to_string()));
    let mut agent = Agent::start(dir, &s);
    let count = |a: &Agent, reason: &str| {
        a.metric_sum("tailtrace_journal_errors_total", &[("reason", reason)])
            .unwrap_or(0.0)
    };
    assert!(
        wait(GIVE_UP, || count(&agent, "unreadable_path") >= 1.0
            && count(&agent, "no_journalctl") >= 1.0),
        "{}",
        agent.log()
    );
    let log = agent.log();
    assert!(log.contains("cannot read the journal at"), "{log}");
    assert!(log.contains("needs journalctl"), "{log}");
    assert!(agent.alive(), "{log}");
    // Retried with backoff, logged once per kind.
    assert!(
        wait(GIVE_UP, || count(&agent, "no_journalctl") >= 2.0),
        "{}",
        agent.log()
    );
    assert_eq!(agent.log().matches("needs journalctl").count(), 1);
    assert!(
        agent.terminate().is_some_and(|s| s.success()),
        "{}",
        agent.log()
    );
}
