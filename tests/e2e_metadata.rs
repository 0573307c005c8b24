//! End to end: a Loki that refuses structured metadata (Loki 2.x, or
//! Loki 3 with `allow_structured_metadata: false` on an old schema). It
//! stores the lines without metadata and refuses, one by one, those with
//! some; the agent must send the refused lines again without it, and every
//! line after, so each line arrives exactly once — and say so. Every wait
//! has a generous give-up bound; nothing asserts timings.

#[path = "support/agent.rs"]
mod agent;
#[path = "support/receiver.rs"]
mod receiver;

use agent::{cri_line, now_ns, wait, Agent, PodLog, Setup};
use receiver::{Options, Receiver};
use std::collections::HashMap;
use std::time::Duration;

const GIVE_UP: Duration = Duration::from_secs(120);

#[test]
fn lines_refused_for_their_structured_metadata_are_sent_again_without_it_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let rx = Receiver::start_with(Options {
        allow_structured_metadata: false,
        ..Options::default()
    });
    let mut s = Setup::new(&dir, &rx.push_url());
    s.stages = "[{cri: {}}, {regex: {expression: 'tid=(?P<tid>[0-9a-f]+)'}}, \
                {structured_metadata: {tid: }}]";
    let mut log = PodLog::create(&s.logs, "app", "main");
    let agent = Agent::start(&dir, &s);
    assert!(agent.wait_ready(GIVE_UP), "{}", agent.log());
    let now = now_ns();
    let mut want = Vec::new();
    for round in 0..3 {
        for i in 0..100 {
            // Every third line carries metadata; the others do not.
            let line = if i % 3 == 0 {
                format!("r{round}-{i:03} tid={:032x}", i + 1)
            } else {
                format!("r{round}-{i:03} plain")
            };
            log.write(&cri_line(
                now + (round * 100 + i) as i64,
                "stdout",
                false,
                &line,
            ));
            want.push(line);
        }
        // Separate batches: the first meets the refusal, later ones are
        // sent without metadata from the start.
        assert!(
            wait(GIVE_UP, || rx.count() >= want.len()),
            "{}",
            agent.log()
        );
    }
    assert!(
        wait(GIVE_UP, || rx.count() >= want.len()),
        "{}",
        agent.log()
    );
    std::thread::sleep(Duration::from_millis(500));
    let mut seen: HashMap<String, usize> = HashMap::new();
    for e in rx.entries() {
        assert!(e.metadata.is_empty(), "stored with metadata: {e:?}");
        *seen.entry(e.line).or_default() += 1;
    }
    for l in &want {
        assert_eq!(
            seen.get(l),
            Some(&1),
            "{l}: {:?}\n{}",
            seen.get(l),
            agent.log()
        );
    }
    assert_eq!(seen.len(), want.len());
    let log_text = agent.log();
    assert_eq!(
        log_text.matches("Loki refuses structured metadata").count(),
        1,
        "{log_text}"
    );
    // Counted as mutated (Promtail's metric), never as dropped.
    let mutated = agent
        .metric_sum(
            "promtail_mutated_entries_total",
            &[("reason", "structured_metadata_disallowed")],
        )
        .unwrap_or(0.0);
    assert!(mutated >= 1.0, "{mutated}");
    let dropped = agent
        .metric_sum("promtail_dropped_entries_total", &[])
        .unwrap_or(0.0);
    assert_eq!(dropped, 0.0);
}
