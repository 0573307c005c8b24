//! End to end: pod metadata from a Kubernetes API server (the fake in
//! `support/kube_api.rs`, which speaks list/watch as the real one does and
//! is driven by the real `kube` client inside the agent) on the lines the
//! real binary ships to the Loki-compatible receiver.
//!
//! Covered: the stock Helm chart's relabel rules put `app`, `namespace`,
//! `pod`, `container`, `node_name`, `job` on every line; only this node's
//! pods are asked for; a pod the API describes after its file appeared gets
//! its labels on every line; a pod the API never describes is shipped after
//! `metadata_wait` with the labels its path gives (and counted); a `410
//! Gone` and a dropped watch connection are recovered from; a deleted pod's
//! last lines keep its labels; a `kill -9` and restart lose nothing — also
//! while Loki throttles, the kubelet rotates and pods appear in the API
//! mid-run, with trace context and `pod_uid` arriving as metadata.
//!
//! Every wait has a generous give-up bound; nothing asserts timings.

#[path = "support/agent.rs"]
mod agent;
#[path = "support/kube_api.rs"]
mod kube_api;
#[path = "support/receiver.rs"]
mod receiver;
#[path = "support/worst_day.rs"]
mod worst_day;

use agent::{cri_line, now_ns, wait, workload_id, Agent, PodLog, Setup, Workload};
use kube_api::{pod_json, KubeApi};
use receiver::{Mode, Received, Receiver};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use worst_day::{
    all_arrived, assert_duplicates_only_from, assert_trace_context, kill_9_in_a_429_storm,
};

const NODE: &str = "node-a";
const GIVE_UP: Duration = Duration::from_secs(60);

/// The Helm chart's kubernetes-pods job (deploy/promtail-helm), with the
/// pod log root moved to the test's directory.
fn helm_job(api: &str, logs: &Path) -> String {
    let chart = include_str!("../deploy/promtail-helm/promtail.yaml");
    let start = chart.find("scrape_configs:").expect("scrape_configs");
    let rest = &chart[start..];
    let end = rest
        .find("\nlimits_config:")
        .or_else(|| rest.find("\ntracing:"))
        .unwrap_or(rest.len());
    let job = rest[..end]
        .replace("/var/log/pods", &logs.display().to_string())
        .replace(
            "- role: pod",
            &format!("- role: pod\n        api_server: {api}"),
        );
    assert!(job.contains(&format!("api_server: {api}")), "{job}");
    job
}

fn setup(dir: &Path, rx: &Receiver, api: &KubeApi, metadata_wait: &str) -> Setup {
    let mut s = Setup::new(dir, &rx.push_url());
    s.scrape_configs = Some(helm_job(&api.url(), &s.logs));
    s.extra = format!(
        "kubernetes:\n  pod_logs_path: {}\n  metadata_wait: {metadata_wait}\n",
        s.logs.display()
    );
    s.env = vec![("HOSTNAME".into(), NODE.into())];
    s
}

/// `PodLog::create` names the directory `default_<pod>_<pod>-uid`.
fn pod(name: &str, node: &str, labels: &[(&str, &str)]) -> serde_json::Value {
    pod_json(
        "default",
        name,
        &format!("{name}-uid"),
        node,
        labels,
        &["main"],
    )
}

fn write(log: &mut PodLog, prefix: &str, n: usize) -> Vec<String> {
    let now = now_ns();
    let mut out = Vec::new();
    for i in 0..n {
        let line = format!("{prefix}-{i:05}");
        log.write(&cri_line(now + i as i64, "stdout", false, &line));
        out.push(line);
    }
    out
}

fn received(rx: &Receiver, lines: &[String]) -> Vec<Received> {
    rx.entries()
        .into_iter()
        .filter(|e| lines.contains(&e.line))
        .collect()
}

fn wait_all(rx: &Receiver, lines: &[String]) -> bool {
    wait(GIVE_UP, || {
        let got: std::collections::HashSet<String> =
            rx.entries().into_iter().map(|e| e.line).collect();
        lines.iter().all(|l| got.contains(l))
    })
}

/// What the Helm chart's rules give a pod `name` with `app=<app>` and one
/// container `main` on this node (Promtail's labels; `cluster` is the
/// client's external label, `filename` the file's path).
fn helm_labels(name: &str, app: &str, file: &Path) -> BTreeMap<String, String> {
    [
        ("app", app),
        ("cluster", "test"),
        ("container", "main"),
        ("filename", &file.display().to_string()),
        ("job", &format!("default/{app}")),
        ("namespace", "default"),
        ("node_name", NODE),
        ("pod", name),
        ("stream", "stdout"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn assert_labels(rx: &Receiver, lines: &[String], want: &BTreeMap<String, String>) {
    let got = received(rx, lines);
    assert_eq!(got.len(), lines.len(), "each line once");
    for e in &got {
        assert_eq!(&e.labels, want, "line {}", e.line);
    }
}

#[test]
fn pod_labels_from_the_api_on_every_line_and_only_this_nodes_pods_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start();
    let api = KubeApi::start();
    api.add_pod(pod("web-1", NODE, &[("app", "web")]));
    // Another node's pod: never listed for this agent.
    api.add_pod(pod("other-1", "node-b", &[("app", "other")]));
    let s = setup(dir.path(), &rx, &api, "30s");
    let mut web = PodLog::create(&s.logs, "web-1", "main");
    let before = write(&mut web, "before", 50);
    let mut agent = Agent::start(dir.path(), &s);
    assert!(agent.wait_ready(GIVE_UP), "{}", agent.log());
    let after = write(&mut web, "after", 50);
    let all: Vec<String> = before.iter().chain(&after).cloned().collect();
    assert!(wait_all(&rx, &all), "{}", agent.log());
    assert_labels(&rx, &all, &helm_labels("web-1", "web", &web.path));
    // One watch, asking for this node's pods only.
    let reqs = api.request_log();
    assert!(!reqs.is_empty());
    for r in &reqs {
        assert_eq!(
            r.param("fieldSelector"),
            Some(format!("spec.nodeName={NODE}").as_str()),
            "{r:?}"
        );
    }
    assert!(agent.terminate().is_some_and(|s| s.success()));
}

#[test]
fn a_pod_described_after_its_file_appeared_gets_its_labels_on_every_line() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start();
    let api = KubeApi::start();
    let s = setup(dir.path(), &rx, &api, "60s");
    let mut agent = Agent::start(dir.path(), &s);
    assert!(agent.wait_ready(GIVE_UP), "{}", agent.log());
    // The container starts logging before the watch tells us of its pod.
    let mut late = PodLog::create(&s.logs, "late-1", "main");
    let early = write(&mut late, "early", 100);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(received(&rx, &early).is_empty(), "shipped without metadata");
    api.add_pod(pod("late-1", NODE, &[("app.kubernetes.io/name", "late")]));
    let more = write(&mut late, "more", 100);
    let all: Vec<String> = early.iter().chain(&more).cloned().collect();
    assert!(wait_all(&rx, &all), "{}", agent.log());
    assert_labels(&rx, &all, &helm_labels("late-1", "late", &late.path));
    assert!(agent.terminate().is_some_and(|s| s.success()));
}

#[test]
fn a_pod_the_api_never_describes_is_shipped_with_its_path_labels_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start();
    let api = KubeApi::start();
    let s = setup(dir.path(), &rx, &api, "2s");
    let mut ghost = PodLog::create(&s.logs, "ghost-1", "main");
    let lines = write(&mut ghost, "ghost", 100);
    let mut agent = Agent::start(dir.path(), &s);
    assert!(wait_all(&rx, &lines), "{}", agent.log());
    // The Helm rules over the path's labels: no `app` label from the API,
    // so the pod name stands in (its last source).
    assert_labels(&rx, &lines, &helm_labels("ghost-1", "ghost-1", &ghost.path));
    let n = agent
        .metric_sum("tailtrace_kubernetes_pods_without_metadata_total", &[])
        .unwrap_or(0.0);
    assert_eq!(n, 1.0);
    assert!(agent.terminate().is_some_and(|s| s.success()));
}

#[test]
fn gone_410_and_a_dropped_watch_are_recovered_from() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start();
    let api = KubeApi::start();
    let s = setup(dir.path(), &rx, &api, "60s");
    let mut agent = Agent::start(dir.path(), &s);
    assert!(agent.wait_ready(GIVE_UP), "{}", agent.log());
    assert!(api.wait_until(GIVE_UP, |a| a.open_watches() > 0));

    // etcd compacted: the watch gets 410 Gone and must list again.
    let lists = api.lists();
    api.expire_watches();
    api.add_pod(pod("b-1", NODE, &[("app", "b")]));
    let mut b = PodLog::create(&s.logs, "b-1", "main");
    let bl = write(&mut b, "b", 50);
    assert!(wait_all(&rx, &bl), "{}", agent.log());
    assert_labels(&rx, &bl, &helm_labels("b-1", "b", &b.path));
    assert!(api.lists() > lists, "no relist after 410");

    // The connection is cut mid-stream: watch again, nothing missed.
    assert!(api.wait_until(GIVE_UP, |a| a.open_watches() > 0));
    api.drop_watches();
    api.add_pod(pod("c-1", NODE, &[("app", "c")]));
    let mut c = PodLog::create(&s.logs, "c-1", "main");
    let cl = write(&mut c, "c", 50);
    assert!(wait_all(&rx, &cl), "{}", agent.log());
    assert_labels(&rx, &cl, &helm_labels("c-1", "c", &c.path));
    assert!(agent.terminate().is_some_and(|s| s.success()));
}

#[test]
fn a_deleted_pods_last_lines_keep_its_labels() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start();
    let api = KubeApi::start();
    api.add_pod(pod("job-1", NODE, &[("app", "batch")]));
    let s = setup(dir.path(), &rx, &api, "60s");
    let mut log = PodLog::create(&s.logs, "job-1", "main");
    let mut agent = Agent::start(dir.path(), &s);
    assert!(agent.wait_ready(GIVE_UP), "{}", agent.log());
    let first = write(&mut log, "first", 100);
    assert!(wait_all(&rx, &first), "{}", agent.log());
    // The pod finishes and is deleted; its last lines are read after —
    // long after: past the quiet time after which a file whose target is
    // gone would be released, so only the cached metadata can label them.
    api.delete_pod("default", "job-1");
    std::thread::sleep(Duration::from_secs(4));
    let last = write(&mut log, "last", 100);
    assert!(wait_all(&rx, &last), "{}", agent.log());
    let all: Vec<String> = first.iter().chain(&last).cloned().collect();
    assert_labels(&rx, &all, &helm_labels("job-1", "batch", &log.path));
    assert!(agent.terminate().is_some_and(|s| s.success()));
}

#[test]
fn kill_9_and_restart_with_pods_from_the_api_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start();
    let api = KubeApi::start();
    let mut logs = Vec::new();
    let s = setup(dir.path(), &rx, &api, "60s");
    for i in 0..5 {
        let name = format!("svc-{i}");
        api.add_pod(pod(&name, NODE, &[("app", "svc")]));
        logs.push(PodLog::create(&s.logs, &name, "main"));
    }
    let mut agent = Agent::start(dir.path(), &s);
    let mut all = Vec::new();
    for round in 0..10 {
        for (i, l) in logs.iter_mut().enumerate() {
            all.extend(write(l, &format!("p{i}-r{round}"), 200));
        }
        if round == 4 {
            agent.kill9();
            agent.restart(&s);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(wait_all(&rx, &all), "{}", agent.log());
    for (i, l) in logs.iter().enumerate() {
        let mine: Vec<String> = all
            .iter()
            .filter(|x| x.starts_with(&format!("p{i}-")))
            .cloned()
            .collect();
        let want = helm_labels(&format!("svc-{i}"), "svc", &l.path);
        for e in received(&rx, &mine) {
            assert_eq!(e.labels, want, "line {}", e.line);
        }
    }
    assert!(agent.terminate().is_some_and(|s| s.success()));
}

#[test]
fn throttled_loki_rotation_late_pods_and_a_kill_9_lose_nothing() {
    // 20 pods, 4,000 lines/s in total, rotated every ~20 KB; every 10th
    // line carries trace context. 15 pods are in the API and on disk from
    // the start. 5 appear in the API while the agent runs, and their
    // directories only later, one every 0.5 s, as the kubelet makes them
    // after the API has the pod: with the periodic rescan an hour away,
    // they are found through the new directories' events and walked for
    // their targets alone, some in the storm and some after the restart.
    let w = Workload {
        pods: 20,
        lines: 1500,
        round: Duration::from_millis(5),
        rotate_at: Some(20 * 1024),
        max_files: None,
        pad: 60,
        traced: Some(10),
    };
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start();
    rx.set_mode(Mode::FailNext {
        count: 3,
        status: 429,
    });
    let api = KubeApi::start();
    let mut s = setup(dir.path(), &rx, &api, "60s");
    s.min_period = "250ms";
    s.max_period = "2s";
    s.rescan_every = "1h";
    let name = |p: usize| format!("wl{p:03}");
    let add = |p: usize| {
        api.add_pod(pod_json(
            "default",
            &name(p),
            &format!("{}-uid", name(p)),
            NODE,
            &[("app", "wl")],
            &["app"],
        ))
    };
    (0..15).for_each(|p| {
        add(p);
    });
    let logs: Vec<PodLog> = (0..w.pods)
        .map(|p| match p.checked_sub(15) {
            None => PodLog::create(&s.logs, &name(p), "app"),
            Some(late) => PodLog::later(&s.logs, &name(p), "app", 200 + late * 100),
        })
        .collect();
    let mut agent = Agent::start(dir.path(), &s);
    assert!(agent.wait_ready(GIVE_UP), "{}", agent.log());
    let writer = {
        let w = w.clone();
        std::thread::spawn(move || w.run(logs, |_| {}))
    };
    std::thread::sleep(Duration::from_millis(500));
    (15..20).for_each(|p| {
        add(p);
    });
    let before = kill_9_in_a_429_storm(&rx, &mut agent, &s);
    let rotations = writer.join().unwrap();
    let d = all_arrived(&rx, &agent, &w, true);
    assert_duplicates_only_from(&d, &before);
    assert_trace_context(&rx, &w, true);
    let entries = rx.entries();
    for e in &entries {
        let pod = name(workload_id(&e.line).0);
        let uid = format!("{pod}-uid");
        assert_eq!(e.labels.get("pod"), Some(&pod), "{e:?}");
        assert_eq!(e.labels.get("app").map(String::as_str), Some("wl"), "{e:?}");
        let md_uid = e.metadata.iter().find(|(k, _)| k == "pod_uid");
        assert_eq!(md_uid.map(|(_, v)| v), Some(&uid), "{e:?}");
    }
    eprintln!(
        "kubernetes_sd, 429 storms + kill -9: {} lines in {rotations} rotations, {} received before the kill, {} duplicates",
        w.total(),
        before.len(),
        d.duplicates
    );
    assert!(agent.terminate().is_some_and(|s| s.success()));
}
