//! End to end: trace context found in pod log lines with no configuration
//! (`trace_context` defaults), shipped as structured metadata — never as a
//! label — and counted for instrumentation coverage; and turned off. Every
//! wait has a generous give-up bound; nothing asserts timings.

#[path = "support/agent.rs"]
mod agent;
#[path = "support/receiver.rs"]
mod receiver;

use agent::{cri_line, now_ns, wait, Agent, PodLog, Setup};
use receiver::Receiver;
use std::collections::BTreeMap;
use std::time::Duration;

const GIVE_UP: Duration = Duration::from_secs(120);

/// The (trace_id, span_id) metadata a line must arrive with.
type Ids = Option<(&'static str, Option<&'static str>)>;

/// (line as written, its [`Ids`]).
fn lines() -> Vec<(String, Ids)> {
    vec![
        (
            r#"{"level":"info","msg":"served","trace_id":"4BF92F3577B34DA6A3CE929D0E0E4736","span_id":"00F067AA0BA902B7"}"#.into(),
            Some(("4bf92f3577b34da6a3ce929d0e0e4736", Some("00f067aa0ba902b7"))),
        ),
        (
            "GET /cart 200 traceparent=00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
            Some(("0af7651916cd43dd8448eb211c80319c", Some("b7ad6b7169203331"))),
        ),
        (
            "level=warn msg=slow dd.trace_id=5208512171318403364 dd.span_id=1".into(),
            Some(("000000000000000048485a3953bb6124", Some("0000000000000001"))),
        ),
        // A bare 32-hex value is not a trace ID; neither is a sha.
        ("build 4bf92f3577b34da6a3ce929d0e0e4736 done".into(), None),
        ("plain line".into(), None),
    ]
}

fn run(extra: &str, client_extra: &str) -> (tempfile::TempDir, Receiver, Agent, Vec<String>) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let rx = Receiver::start();
    let mut s = Setup::new(&dir, &rx.push_url());
    s.client_extra = client_extra.to_string();
    // The static job reads pod logs: its `__path__` is under pod_logs_path.
    s.extra = format!(
        "kubernetes:\n  pod_logs_path: {}\n{extra}",
        s.logs.display()
    );
    let mut log = PodLog::create(&s.logs, "shop", "api");
    let agent = Agent::start(&dir, &s);
    assert!(agent.wait_ready(GIVE_UP), "{}", agent.log());
    let now = now_ns();
    let mut written = Vec::new();
    for (i, (l, _)) in lines().into_iter().enumerate() {
        log.write(&cri_line(now + i as i64, "stdout", false, &l));
        written.push(l);
    }
    assert!(
        wait(GIVE_UP, || rx.count() >= written.len()),
        "{}",
        agent.log()
    );
    (tmp, rx, agent, written)
}

#[test]
fn trace_context_is_found_by_default_and_shipped_as_structured_metadata() {
    check_shipped("");
}

#[test]
fn trace_context_is_shipped_the_same_in_loki_json_pushes() {
    check_shipped("    encoding: json\n");
}

fn check_shipped(client_extra: &str) {
    let (_tmp, rx, agent, _) = run("", client_extra);
    let got: BTreeMap<String, Vec<(String, String)>> = rx
        .entries()
        .into_iter()
        .map(|e| {
            assert!(
                !e.labels.contains_key("trace_id") && !e.labels.contains_key("span_id"),
                "a trace ID in the labels: {e:?}"
            );
            // Order is not meaningful (a JSON push sends an object).
            let mut md = e.metadata;
            md.sort();
            (e.line, md)
        })
        .collect();
    let mut found = 0;
    for (line, want) in lines() {
        let md = got.get(&line).unwrap_or_else(|| panic!("missing {line}"));
        let mut want: Vec<(String, String)> = match want {
            None => Vec::new(),
            Some((t, s)) => {
                found += 1;
                std::iter::once(("trace_id".to_string(), t.to_string()))
                    .chain(s.map(|s| ("span_id".to_string(), s.to_string())))
                    .collect()
            }
        };
        want.sort();
        assert_eq!(md, &want, "{line}");
    }
    // Coverage: per `job` label, lines with and without trace context.
    let count = |result| {
        agent
            .metric_sum(
                "tailtrace_trace_context_lines_total",
                &[("job", "pods"), ("result", result)],
            )
            .unwrap_or(-1.0)
    };
    assert_eq!(count("found"), found as f64);
    assert_eq!(count("missing"), (lines().len() - found) as f64);
}

#[test]
fn trace_context_can_be_turned_off() {
    let (_tmp, rx, _agent, written) = run("trace_context:\n  enabled: false\n", "");
    let entries = rx.entries();
    assert_eq!(entries.len(), written.len());
    assert!(entries.iter().all(|e| e.metadata.is_empty()), "{entries:?}");
}
