//! End to end: a ready-made pipeline referenced by name from a static job
//! (`pipeline_stages: [cri: {}, pipeline: java]`), with the real binary.
//! Two containers write Spring Boot log lines and stack traces, their
//! lines interleaved in time; each file ends with a trace. Each trace must
//! reach Loki as one entry of its own file — released by `max_wait_time`
//! while the agent keeps running, not by a shutdown flush. Every wait has a
//! generous give-up bound; nothing asserts timings.

#[path = "support/agent.rs"]
mod agent;
#[path = "support/receiver.rs"]
mod receiver;

use agent::{cri_line, Agent, PodLog, Setup};
use receiver::{Received, Receiver};
use std::time::Duration;

const GIVE_UP: Duration = Duration::from_secs(120);

/// (log line, stack trace lines) of one container.
fn records(app: &str, exc: &str) -> Vec<Vec<String>> {
    vec![
        vec![format!(
            "2024-01-20T10:00:00.100Z  INFO 1 --- [           main] com.example.{app}.App : Started App in 1.2 seconds"
        )],
        vec![
            format!(
                "2024-01-20T10:00:05.117Z ERROR 1 --- [nio-8080-exec-1] com.example.{app}.Api : request failed"
            ),
            String::new(),
            format!("{exc}: {app} broke"),
            format!("\tat com.example.{app}.Service.run(Service.java:57) ~[!/:1.0]"),
            "\tat java.base/java.lang.Thread.run(Thread.java:840) ~[na:na]".to_string(),
            "Caused by: java.io.IOException: disk full".to_string(),
            format!("\tat com.example.{app}.Store.write(Store.java:9) ~[!/:1.0]"),
            "\t... 2 common frames omitted".to_string(),
        ],
    ]
}

fn of_file<'a>(got: &'a [Received], pod: &str) -> Vec<&'a Received> {
    got.iter()
        .filter(|e| e.labels.get("filename").is_some_and(|f| f.contains(pod)))
        .collect()
}

#[test]
fn java_pipeline_by_name_joins_traces_per_file_and_releases_the_last_on_time() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let rx = Receiver::start();
    let mut s = Setup::new(&dir, &rx.push_url());
    s.stages = "[cri: {}, pipeline: java]";
    let mut a = PodLog::create(&s.logs, "shop", "app");
    let mut b = PodLog::create(&s.logs, "billing", "app");
    let mut agent = Agent::start(&dir, &s);
    assert!(agent.wait_ready(GIVE_UP), "{}", agent.log());

    let ra = records("shop", "java.lang.IllegalStateException");
    let rb = records("billing", "org.example.billing.PaymentException");
    // Interleaved in time, line by line, each file ending with its trace.
    let la: Vec<&String> = ra.iter().flatten().collect();
    let lb: Vec<&String> = rb.iter().flatten().collect();
    let mut t = 1_705_744_800_000_000_000_i64;
    for i in 0..la.len().max(lb.len()) {
        for (log, lines) in [(&mut a, &la), (&mut b, &lb)] {
            if let Some(l) = lines.get(i) {
                t += 1_000;
                log.write(&cri_line(t, "stdout", false, l));
            }
        }
    }

    // Two entries per file; the traces end the files, so only
    // max_wait_time (3 s) can release them.
    assert!(
        rx.wait_until(GIVE_UP, |r| r.count() >= 4),
        "got {:?}\n{}",
        rx.lines(),
        agent.log()
    );
    assert!(
        agent.alive(),
        "released by the agent exiting, not by max_wait_time"
    );
    let got = rx.entries();
    assert_eq!(got.len(), 4, "{:?}", rx.lines());
    for (pod, recs) in [("shop", &ra), ("billing", &rb)] {
        let mine = of_file(&got, pod);
        let lines: Vec<String> = mine.iter().map(|e| e.line.clone()).collect();
        let want: Vec<String> = recs.iter().map(|r| r.join("\n")).collect();
        assert_eq!(lines, want, "{pod}");
        let levels: Vec<Option<&str>> = mine
            .iter()
            .map(|e| e.labels.get("level").map(String::as_str))
            .collect();
        assert_eq!(levels, [Some("info"), Some("error")], "{pod}");
        // The time in the line, not the runtime's.
        assert_eq!(mine[1].ts_ns, 1_705_744_805_117_000_000, "{pod}");
        assert!(
            mine[1]
                .metadata
                .contains(&("logger".to_string(), format!("com.example.{pod}.Api"))),
            "{pod}: {:?}",
            mine[1].metadata
        );
    }
    // Nothing was left held: the shutdown flush adds no piece of a trace.
    assert!(agent.terminate().is_some_and(|s| s.success()));
    assert_eq!(rx.count(), 4, "{:?}", rx.lines());
}
