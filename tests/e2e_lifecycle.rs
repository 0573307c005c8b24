//! Start-up and shutdown: SIGTERM flushes what is batched and saves
//! positions; a restart resumes from them; a Promtail positions file is
//! imported; `/ready` and `/metrics` agree with what the receiver got.

#[path = "support/agent.rs"]
mod agent;
#[path = "support/receiver.rs"]
mod receiver;

use agent::{cri_line, Agent, PodLog, Setup};
use receiver::{Mode, Receiver};
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

/// A pod that appears while the agent shuts down — discovery has stopped,
/// the last batches wait on a failing Loki for up to the shutdown timeout —
/// and whose first file is rotated before the agent exits: the next run
/// reads that rotated file too. Before, the positions file was dated to
/// its last write, after the rotation, so the next run took the file for
/// history (soak seed 1311 lost two files of each such pod).
#[test]
fn a_pod_created_and_rotated_during_a_slow_shutdown_is_read_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start();
    let mut setup = Setup::new(dir.path(), &rx.push_url());
    setup.batchwait = "100ms";
    // Lines `name i` for i in `from..to`, timestamped in write order.
    let write = |log: &mut PodLog, name: &str, t: i64, from: i64, to: i64| {
        for i in from..to {
            log.write(&cri_line(
                T0 + t + i,
                "stdout",
                false,
                &format!("{name} {i}"),
            ));
        }
    };
    let received = |r: &Receiver, name: &str| {
        let prefix = format!("{name} ");
        r.lines().iter().filter(|l| l.starts_with(&prefix)).count()
    };
    let mut steady = PodLog::create(&setup.logs, "steady", "app");
    write(&mut steady, "steady", 0, 0, 50);
    let mut agent = Agent::start(dir.path(), &setup);
    assert!(agent.wait_ready(Duration::from_secs(60)), "{}", agent.log());
    assert!(
        rx.wait_until(Duration::from_secs(60), |r| r.count() >= 50),
        "{}",
        agent.log()
    );
    // Loki fails from here on, with lines read and not delivered: the
    // shutdown waits for them until its timeout.
    rx.set_mode(Mode::Status(503));
    write(&mut steady, "steady", 0, 50, 100);
    assert!(agent::wait(Duration::from_secs(60), || {
        agent
            .metric_sum("promtail_read_lines_total", &[])
            .unwrap_or(0.0)
            >= 100.0
    }));
    agent.sigterm();
    // Discovery stops at once; give the signal a moment to arrive.
    std::thread::sleep(Duration::from_millis(500));
    let mut late = PodLog::create(&setup.logs, "late", "app");
    write(&mut late, "late", 100, 0, 30);
    late.rotate();
    write(&mut late, "late", 100, 30, 50);
    assert!(
        agent.alive(),
        "the shutdown must still be waiting on Loki for this test to mean anything"
    );
    // Loki recovers before the shutdown timeout: the held lines go out, and
    // the last positions save comes after the late pod's rotation.
    std::thread::sleep(Duration::from_millis(300));
    rx.set_mode(Mode::Normal);
    assert!(
        agent::wait(Duration::from_secs(60), || !agent.alive()),
        "{}",
        agent.log()
    );
    // Collects the exit status (the process is gone: the signal is moot).
    let st = agent.terminate().unwrap();
    assert!(st.success(), "SIGTERM must exit 0: {st:?}\n{}", agent.log());
    assert_eq!(
        received(&rx, "steady"),
        100,
        "delivered during the shutdown"
    );
    agent.restart(&setup);
    assert!(
        rx.wait_until(Duration::from_secs(60), |r| received(r, "late") >= 50),
        "the late pod's lines, its rotated file included: {} of 50\n{}",
        received(&rx, "late"),
        agent.log()
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        received(&rx, "steady"),
        100,
        "nothing read again after a clean stop"
    );
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
