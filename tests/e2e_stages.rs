//! End to end: the `limit` stage against one noisy pod. It writes 50× its
//! rate; with `drop: true` the excess is dropped and counted while the other
//! pods flow; with `drop: false` that pod is slowed — its files wait on disk
//! — while the others flow, and nothing is lost. Every wait has a generous
//! give-up bound; nothing asserts timings.

#[path = "support/agent.rs"]
mod agent;
#[path = "support/receiver.rs"]
mod receiver;

use agent::{cri_line, now_ns, wait, Agent, PodLog, Setup};
use receiver::Receiver;
use std::collections::HashSet;
use std::time::Duration;

const GIVE_UP: Duration = Duration::from_secs(120);

fn write(log: &mut PodLog, prefix: &str, n: usize) -> Vec<String> {
    let now = now_ns();
    (0..n)
        .map(|i| {
            let line = format!("{prefix}-{i:05}");
            log.write(&cri_line(now + i as i64, "stdout", false, &line));
            line
        })
        .collect()
}

fn got(rx: &Receiver) -> HashSet<String> {
    rx.entries().into_iter().map(|e| e.line).collect()
}

/// A noisy pod writing `noisy` lines at once, four quiet pods 20 each; one
/// limiter per file (`by_label_name: filename`).
type Run = (tempfile::TempDir, Receiver, Agent, Vec<String>, Vec<String>);

fn run(rate: u32, noisy: usize, drop: bool) -> Run {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let rx = Receiver::start();
    let mut s = Setup::new(&dir, &rx.push_url());
    s.stages = Box::leak(
        format!(
            "[{{cri: {{}}}}, {{limit: {{rate: {rate}, burst: {rate}, by_label_name: filename, drop: {drop}}}}}]"
        )
        .into_boxed_str(),
    );
    let mut loud = PodLog::create(&s.logs, "loud", "main");
    let mut quiet: Vec<PodLog> = (0..4)
        .map(|i| PodLog::create(&s.logs, &format!("quiet{i}"), "main"))
        .collect();
    let agent = Agent::start(&dir, &s);
    assert!(agent.wait_ready(GIVE_UP), "{}", agent.log());
    let noisy_lines = write(&mut loud, "loud", noisy);
    let mut quiet_lines = Vec::new();
    for (i, q) in quiet.iter_mut().enumerate() {
        quiet_lines.extend(write(q, &format!("quiet{i}"), 20));
    }
    (tmp, rx, agent, noisy_lines, quiet_lines)
}

#[test]
fn limit_with_drop_drops_and_counts_the_noisy_pods_excess_only() {
    // 50x: 1000 lines against 20 per second.
    let (_tmp, rx, mut agent, noisy, quiet) = run(20, 1000, true);
    assert!(
        wait(GIVE_UP, || {
            let g = got(&rx);
            quiet.iter().all(|l| g.contains(l))
        }),
        "{}",
        agent.log()
    );
    // Every noisy line is either delivered or dropped and counted.
    let dropped = |a: &Agent| {
        a.metric_sum(
            "logentry_dropped_lines_total",
            &[("reason", "ratelimit_drop_stage")],
        )
        .unwrap_or(0.0) as usize
    };
    assert!(
        wait(GIVE_UP, || {
            let g = got(&rx);
            noisy.iter().filter(|l| g.contains(*l)).count() + dropped(&agent) == noisy.len()
        }),
        "delivered + dropped != written: {}",
        agent.log()
    );
    let delivered = noisy.iter().filter(|l| got(&rx).contains(*l)).count();
    assert!(dropped(&agent) > 0 && delivered < noisy.len());
    assert!(delivered >= 20, "the burst gets through: {delivered}");
    assert!(agent.terminate().is_some_and(|s| s.success()));
}

#[test]
fn limit_without_drop_slows_only_the_noisy_pod_and_loses_nothing() {
    // 50x: 2500 lines against 50 per second: about 50 s to drain.
    let (_tmp, rx, mut agent, noisy, quiet) = run(50, 2500, false);
    assert!(
        wait(GIVE_UP, || {
            let g = got(&rx);
            quiet.iter().all(|l| g.contains(l))
        }),
        "{}",
        agent.log()
    );
    // The quiet pods were not held up behind the noisy one.
    let g = got(&rx);
    let noisy_so_far = noisy.iter().filter(|l| g.contains(*l)).count();
    assert!(
        noisy_so_far < noisy.len(),
        "the noisy pod was not slowed ({noisy_so_far} delivered already)"
    );
    assert!(
        wait(Duration::from_secs(240), || {
            let g = got(&rx);
            noisy.iter().all(|l| g.contains(l))
        }),
        "noisy lines lost: {}",
        agent.log()
    );
    assert_eq!(rx.duplicates().len(), 0);
    let dropped = agent
        .metric_sum("logentry_dropped_lines_total", &[])
        .unwrap_or(0.0);
    assert_eq!(dropped, 0.0);
    assert!(agent.terminate().is_some_and(|s| s.success()));
}
