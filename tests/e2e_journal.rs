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
use journal::{
    assert_exactly_once, assert_journalctl_restarted, batch, expected, journal_dir,
    journalctl_children, kill_journalctl, now_us, setup, write_journal, JEntry, GIVE_UP,
};
use receiver::Receiver;

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
    assert!(
        wait(GIVE_UP, || {
            !journalctl_children(pid).is_empty() && rx.count() > 0
        }),
        "no journalctl child or nothing delivered\n{}",
        agent.log()
    );
    let first = kill_journalctl(pid);
    let killed_at = rx.count();
    let want = expected(&entries);
    assert_exactly_once(&rx, &want, &agent);
    assert_journalctl_restarted(&agent, &first);
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
