//! End to end, the journal source on a bad day: Loki throttling (429) and
//! down (503), the agent killed with `kill -9` mid-way and entries appended
//! to the journal while it is down and after it is back, journalctl killed
//! while entries are in flight. Every matching entry arrives; an entry
//! arrives twice only if it had arrived before the kill; the saved cursor
//! never passes an entry Loki did not accept. Real journal files
//! (`systemd-journal-remote`) read by the real `journalctl`; skipped with a
//! message when they are missing. Every wait has a generous give-up bound;
//! nothing asserts timings.

#[path = "support/agent.rs"]
mod agent;
#[path = "support/journal.rs"]
mod journal;
#[path = "support/receiver.rs"]
mod receiver;

use agent::{wait, Agent, Setup};
use journal::{
    assert_exactly_once, assert_journalctl_restarted, batch, check, expected, journal_dir_with,
    kill_journalctl, now_us, saved_cursor, setup, stop_cleanly, write_journal, GIVE_UP,
};
use receiver::{Mode, Receiver};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Duration;
use tailtrace::source::journal::record::cursor_realtime;

const KEY: &str = "journal-system";

/// The journal job over `jdir` with small batches (many pushes, so faults
/// land mid-way) and retries from 250 ms to 2 s.
fn small_batches(dir: &Path, jdir: &Path, rx: &Receiver) -> Setup {
    let mut s = setup(dir, jdir, rx);
    s.batchsize = 4096;
    s.min_period = "250ms";
    s.max_period = "2s";
    s
}

/// Waits until every line of `want` arrived at least once.
fn wait_all(rx: &Receiver, want: &BTreeMap<String, (String, i64)>, agent: &Agent) {
    let ok = wait(GIVE_UP, || {
        let got: HashSet<String> = rx.lines().into_iter().collect();
        want.keys().all(|l| got.contains(l))
    });
    assert!(ok, "got {} of {}:\n{}", rx.count(), want.len(), agent.log());
}

#[test]
fn loki_down_429s_and_a_kill_9_deliver_every_entry_and_save_the_cursor_only_after_acceptance() {
    let base = now_us() - 600_000_000;
    let first = batch("first", 1500, base);
    let Some((tmp, jdir)) = journal_dir_with(&first) else {
        return;
    };
    let dir = tmp.path();
    let rx = Receiver::start();
    // A slow Loki, so the kill lands with some entries accepted.
    rx.set_mode(Mode::Slow(Duration::from_millis(150)));
    let s = small_batches(dir, &jdir, &rx);
    let mut agent = Agent::start(dir, &s);
    assert!(
        wait(GIVE_UP, || rx.count() > 0
            && saved_cursor(&s.positions, KEY).is_some()),
        "nothing accepted or no cursor saved:\n{}",
        agent.log()
    );
    // Loki throttles every push; the agent dies in that storm.
    rx.set_mode(Mode::Status(429));
    std::thread::sleep(Duration::from_secs(1));
    agent.kill9();
    let before: HashSet<String> = rx.lines().into_iter().collect();
    let cursor = saved_cursor(&s.positions, KEY).expect("a saved cursor");
    let upto = cursor_realtime(&cursor).expect("the cursor's time").0;
    let mut want = expected(&first);
    let unaccepted: Vec<&String> = want
        .iter()
        .filter(|(l, (_, ts))| *ts <= upto && !before.contains(*l))
        .map(|(l, _)| l)
        .collect();
    assert!(
        before.len() < want.len(),
        "the kill must land mid-way: all {} accepted",
        want.len()
    );
    assert!(
        unaccepted.is_empty(),
        "the saved cursor {cursor} passes entries Loki never accepted, e.g. {:?}",
        &unaccepted[..unaccepted.len().min(3)]
    );
    // Appended while the agent is down, and after it is back (Loki down,
    // then throttling): journalctl --follow sees the new file.
    let second = batch("second", 500, base + 10_000_000);
    write_journal(&jdir, "b", &second);
    rx.set_mode(Mode::Status(503));
    agent.restart(&s);
    let third = batch("third", 500, base + 20_000_000);
    write_journal(&jdir, "c", &third);
    std::thread::sleep(Duration::from_secs(2));
    rx.set_mode(Mode::FailNext {
        count: 3,
        status: 429,
    });
    want.extend(expected(&second));
    want.extend(expected(&third));
    wait_all(&rx, &want, &agent);
    // A moment for anything extra (a duplicate) to show up.
    std::thread::sleep(Duration::from_millis(1500));
    let seen = check(&rx, &want);
    assert_eq!(seen.len(), want.len());
    let wrong: Vec<_> = seen
        .iter()
        .filter(|(l, n)| **n > 2 || (**n == 2 && !before.contains(*l)))
        .collect();
    assert!(
        wrong.is_empty(),
        "duplicates of entries not received before the kill: {:?}",
        &wrong[..wrong.len().min(5)]
    );
    let dups = seen.values().filter(|n| **n > 1).count();
    eprintln!(
        "journal, 429s + outage + kill -9: {} entries, {} received before the kill, {dups} again after",
        want.len(),
        before.len()
    );
    stop_cleanly(&mut agent);
}

#[test]
fn journalctl_killed_while_loki_throttles_resumes_after_what_was_read() {
    let entries = batch("many", 3000, now_us() - 60_000_000);
    let Some((tmp, jdir)) = journal_dir_with(&entries) else {
        return;
    };
    let dir = tmp.path();
    let rx = Receiver::start();
    let s = small_batches(dir, &jdir, &rx);
    let mut agent = Agent::start(dir, &s);
    let pid = agent.pid();
    assert!(rx.wait_until(GIVE_UP, |r| r.count() > 0), "{}", agent.log());
    // Loki throttles: entries read stay in flight, unacknowledged, when
    // journalctl dies; the new one must start after them, not at the cursor.
    rx.set_mode(Mode::Status(429));
    std::thread::sleep(Duration::from_secs(1));
    let first = kill_journalctl(pid);
    assert!(!first.is_empty(), "no journalctl child:\n{}", agent.log());
    assert_journalctl_restarted(&agent, &first);
    let at_kill = rx.count();
    rx.set_mode(Mode::FailNext {
        count: 2,
        status: 429,
    });
    assert_exactly_once(&rx, &expected(&entries), &agent);
    eprintln!(
        "journalctl killed under 429s after {at_kill} of {} entries",
        expected(&entries).len()
    );
    stop_cleanly(&mut agent);
}
