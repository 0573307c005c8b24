//! Start-up and shutdown: SIGTERM flushes what is batched and saves
//! positions; a restart resumes from them; a Promtail positions file is
//! imported; `/ready` and `/metrics` agree with what the receiver got.

#[path = "support/agent.rs"]
mod agent;
#[path = "support/receiver.rs"]
mod receiver;

use agent::{cri_line, Agent, PodLog, Setup};
use receiver::Receiver;
use std::time::Duration;

const T0: i64 = 1_764_100_000_000_000_000;

#[test]
fn sigterm_flushes_the_open_batch_saves_positions_and_a_restart_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start();
    let mut setup = Setup::new(dir.path(), &rx.push_url());
    // A batch that would wait a minute: only the shutdown flush sends it.
    setup.batchwait = "60s";
    setup.batchsize = 64 << 20;
    let mut log = PodLog::create(&setup.logs, "term", "app");
    for i in 0..500 {
        log.write(&cri_line(T0 + i, "stdout", false, &format!("before {i}")));
    }
    let mut agent = Agent::start(dir.path(), &setup);
    assert!(agent.wait_ready(Duration::from_secs(60)), "{}", agent.log());
    // Wait until the agent has read everything (the lines sit in its batch).
    assert!(agent::wait(Duration::from_secs(60), || {
        agent
            .metric_sum("promtail_read_lines_total", &[])
            .unwrap_or(0.0)
            >= 500.0
    }));
    assert_eq!(rx.count(), 0, "batchwait 60s: nothing sent yet");
    let st = agent.terminate().unwrap();
    assert!(st.success(), "SIGTERM must exit 0: {st:?}\n{}", agent.log());
    assert_eq!(rx.count(), 500, "the open batch is flushed at shutdown");
    let size = std::fs::metadata(&log.path).unwrap().len();
    let pos = std::fs::read_to_string(&setup.positions).unwrap();
    assert!(
        pos.contains(&format!("{}: '{size}'", log.path.display())),
        "positions at the end of the file:\n{pos}"
    );

    // Restart: resumes at the saved offset, ships only the new lines.
    for i in 0..100 {
        log.write(&cri_line(
            T0 + 1000 + i,
            "stdout",
            false,
            &format!("after {i}"),
        ));
    }
    setup.batchwait = "100ms";
    agent.restart(&setup);
    assert!(
        rx.wait_until(Duration::from_secs(60), |r| r.count() >= 600),
        "{}",
        agent.log()
    );
    std::thread::sleep(Duration::from_millis(500));
    let lines = rx.lines();
    assert_eq!(lines.len(), 600, "no line twice after a clean restart");
    assert_eq!(lines[500], "after 0");
    assert!(agent.terminate().unwrap().success());
}

#[test]
fn a_promtail_positions_file_is_imported_on_first_start() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start();
    let setup = Setup::new(dir.path(), &rx.push_url());
    let mut log = PodLog::create(&setup.logs, "migrate", "app");
    let mut offset_after_50 = 0;
    for i in 0..100 {
        log.write(&cri_line(T0 + i, "stdout", false, &format!("line {i}")));
        if i == 49 {
            offset_after_50 = std::fs::metadata(&log.path).unwrap().len();
        }
    }
    // What Promtail leaves behind.
    std::fs::write(
        &setup.positions,
        format!(
            "positions:\n  {}: \"{offset_after_50}\"\n",
            log.path.display()
        ),
    )
    .unwrap();
    let mut agent = Agent::start(dir.path(), &setup);
    assert!(
        rx.wait_until(Duration::from_secs(60), |r| r.count() >= 50),
        "{}",
        agent.log()
    );
    std::thread::sleep(Duration::from_millis(500));
    let lines = rx.lines();
    assert_eq!(lines.len(), 50, "resumes where Promtail stopped: {lines:?}");
    assert_eq!(lines[0], "line 50");
    assert!(agent.terminate().unwrap().success());
    let pos = std::fs::read_to_string(&setup.positions).unwrap();
    assert!(
        pos.contains("tailtrace:version: '2'") && pos.contains("tailtrace:file:"),
        "rewritten in tailtrace's format:\n{pos}"
    );
}

#[test]
fn metrics_agree_with_the_receiver_and_ready_turns_200() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start();
    let setup = Setup::new(dir.path(), &rx.push_url());
    let mut logs: Vec<PodLog> = (0..5)
        .map(|f| PodLog::create(&setup.logs, &format!("m{f}"), "app"))
        .collect();
    let mut bytes = 0usize;
    for (f, log) in logs.iter_mut().enumerate() {
        for i in 0..200 {
            let l = cri_line(T0 + i, "stdout", false, &format!("metric line {f} {i}"));
            bytes += l.len();
            log.write(&l);
        }
    }
    let mut agent = Agent::start(dir.path(), &setup);
    assert!(agent.wait_ready(Duration::from_secs(60)));
    assert_eq!(agent.http_get("/healthz").map(|x| x.0), Some(200));
    assert!(rx.wait_until(Duration::from_secs(60), |r| r.count() >= 1000));
    // Give the last acknowledgements a moment to be counted.
    assert!(agent::wait(Duration::from_secs(10), || {
        agent
            .metric_sum("promtail_sent_entries_total", &[])
            .unwrap_or(0.0)
            >= 1000.0
    }));
    let (_, body) = agent.http_get("/metrics").unwrap();
    let m = |name: &str| agent::metric_sum(&body, name, &[]);
    assert_eq!(m("promtail_read_lines_total") as usize, 1000);
    assert_eq!(m("promtail_read_bytes_total") as usize, bytes);
    assert_eq!(m("promtail_sent_entries_total") as usize, rx.count());
    let pushed_bytes: usize = rx
        .requests()
        .iter()
        .filter(|r| r.status == 204)
        .map(|r| r.bytes)
        .sum();
    assert_eq!(
        m("promtail_sent_bytes_total") as usize,
        pushed_bytes,
        "sent bytes = bodies the receiver took"
    );
    assert_eq!(m("promtail_files_active_total") as usize, 5);
    assert_eq!(m("promtail_dropped_entries_total"), 0.0);
    assert!(
        body.contains("promtail_request_duration_seconds_bucket{"),
        "request histogram exported"
    );
    assert!(
        body.contains("tailtrace_file_lag_bytes{"),
        "per-file lag exported"
    );
    assert_eq!(
        agent::metric_sum(&body, "tailtrace_file_lag_bytes", &[]),
        0.0,
        "every file read to its end"
    );
    assert!(body.contains("tailtrace_pending_bytes"));
    // Promtail removed it in 2.6 (a series per file, never deleted): a
    // Promtail 3 dashboard does not use it, and tailtrace does not grow it.
    assert!(
        !body.contains("promtail_stream_lag_seconds"),
        "no per-file stream lag series"
    );
    assert!(agent.terminate().unwrap().success());
}
