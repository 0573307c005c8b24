//! End to end: the native `kubernetes_pods` form against the fake API
//! server and the real binary — its labels (promoted pod labels, `app`,
//! `job`), structured metadata (`pod_uid`, listed annotations), pod and
//! container exclusion by annotation, a named pipeline selected by
//! annotation, and a pod the API never describes shipped with its path's
//! labels. Every wait has a generous give-up bound.
#[path = "support/agent.rs"]
mod agent;
#[path = "support/kube_api.rs"]
mod kube_api;
#[path = "support/receiver.rs"]
mod receiver;

use agent::{cri_line, now_ns, wait, Agent, PodLog, Setup};
use kube_api::{pod_json, KubeApi};
use receiver::Receiver;
use std::time::Duration;

const NODE: &str = "node-a";
const GIVE_UP: Duration = Duration::from_secs(60);

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

#[test]
fn native_kubernetes_pods_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start();
    let api = KubeApi::start();
    let mut web = pod_json(
        "default",
        "web-1",
        "web-1-uid",
        NODE,
        &[("app.kubernetes.io/name", "web"), ("team", "pay")],
        &["main", "sidecar"],
    );
    web["metadata"]["annotations"] = serde_json::json!({
        "example.com/owner": "alice",
        "tailtrace.io/pipeline": "extra",
        "tailtrace.io/exclude-containers": "sidecar",
    });
    api.add_pod(web);
    let mut skip = pod_json(
        "default",
        "skip-1",
        "skip-1-uid",
        NODE,
        &[("app", "skip")],
        &["main"],
    );
    skip["metadata"]["annotations"] = serde_json::json!({"tailtrace.io/exclude": "true"});
    api.add_pod(skip);
    let pipes = dir.path().join("pipes");
    std::fs::create_dir_all(&pipes).unwrap();
    std::fs::write(pipes.join("extra.yaml"), "- cri: {}\n").unwrap();
    let mut s = Setup::new(dir.path(), &rx.push_url());
    s.scrape_configs = Some(format!(
        "scrape_configs:\n  - job_name: pods\n    kubernetes_pods:\n      api_server: {}\n      pod_logs_path: {}\n      promote_labels: [team]\n      annotations_as_metadata: [example.com/owner]\n      pipelines_dir: {}\n",
        api.url(), s.logs.display(), pipes.display()));
    s.extra = "kubernetes:\n  metadata_wait: 2s\n".into();
    s.env = vec![("HOSTNAME".into(), NODE.into())];
    let mut main = PodLog::create(&s.logs, "web-1", "main");
    let mut side = PodLog::create(&s.logs, "web-1", "sidecar");
    let mut sk = PodLog::create(&s.logs, "skip-1", "main");
    let mut ghost = PodLog::create(&s.logs, "ghost-1", "main");
    let ml = write(&mut main, "main", 20);
    let sl = write(&mut side, "side", 20);
    let kl = write(&mut sk, "skip", 20);
    let gl = write(&mut ghost, "ghost", 20);
    let mut agent = Agent::start(dir.path(), &s);
    let all: Vec<String> = ml.iter().chain(&gl).cloned().collect();
    assert!(
        wait(GIVE_UP, || {
            let got: std::collections::HashSet<String> =
                rx.entries().into_iter().map(|e| e.line).collect();
            all.iter().all(|l| got.contains(l))
        }),
        "{}",
        agent.log()
    );
    std::thread::sleep(Duration::from_secs(2));
    let entries = rx.entries();
    for e in &entries {
        assert!(
            !sl.contains(&e.line) && !kl.contains(&e.line),
            "excluded shipped: {e:?}"
        );
    }
    let m = entries.iter().find(|e| e.line == ml[0]).unwrap();
    let g = entries.iter().find(|e| e.line == gl[0]).unwrap();
    assert_eq!(m.labels.get("team").map(String::as_str), Some("pay"));
    assert_eq!(m.labels.get("job").map(String::as_str), Some("default/web"));
    assert_eq!(
        m.metadata,
        vec![
            ("pod_uid".to_string(), "web-1-uid".to_string()),
            ("example_com_owner".to_string(), "alice".to_string())
        ]
    );
    assert_eq!(
        g.labels.get("job").map(String::as_str),
        Some("default/ghost-1")
    );
    assert_eq!(
        g.metadata,
        vec![("pod_uid".to_string(), "ghost-1-uid".to_string())]
    );
    let log = agent.log();
    assert!(!log.contains("no pipeline of this name"), "{log}");
    assert!(agent.terminate().is_some_and(|s| s.success()));
}
