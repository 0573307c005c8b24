//! The native `kubernetes_pods` rules against the fixture pods.

use super::*;
use crate::entry::meta_pair;
use crate::kube::cache::PodCache;
use crate::kube::relabel::{RelabelConfig, Relabeler};
use crate::kube::targets::{DirScope, DirWatch, Dropped, JobTargets};
use crate::source::FileTarget;
use k8s_openapi::api::core::v1::Pod;
use std::time::{Duration, Instant};

fn fixture(name: &str) -> serde_json::Value {
    let text = match name {
        "deployment" => include_str!("../../../tests/fixtures/pods/deployment.json"),
        "static" => include_str!("../../../tests/fixtures/pods/static.json"),
        "init-containers" => include_str!("../../../tests/fixtures/pods/init-containers.json"),
        other => panic!("no fixture {other}"),
    };
    serde_json::from_str(text).unwrap()
}

fn info(v: serde_json::Value) -> PodInfo {
    PodInfo::from_pod(&serde_json::from_value::<Pod>(v).unwrap()).unwrap()
}

/// A fixture with its labels and annotations replaced.
fn patched(name: &str, labels: serde_json::Value, annotations: serde_json::Value) -> PodInfo {
    let mut v = fixture(name);
    v["metadata"]["labels"] = labels;
    v["metadata"]["annotations"] = annotations;
    info(v)
}

fn rules(yaml: &str) -> NativeRules {
    let cfg: KubernetesPodsConfig = serde_yaml_ng::from_str(yaml).unwrap();
    NativeRules::new(&cfg, Path::new("/var/log/pods"))
}

/// The candidate's labels without the `__`-ones.
fn visible(c: &Candidate) -> Vec<(String, String)> {
    c.labels
        .iter()
        .filter(|(k, _)| !k.starts_with("__"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const DEPLOY_UID: &str = "5c2f1e7a-9b3d-4e8f-a6c1-7d2b9e4f0a13";

#[test]
fn deployment_pod_without_app_labels_takes_the_controller_name_without_its_hash() {
    let pod = patched(
        "deployment",
        serde_json::json!({"pod-template-hash": "7d9f8b6c5d"}),
        serde_json::json!({}),
    );
    let mut excluded = 0;
    let c = rules("{}").pod(&pod, "worker-b-3", &mut excluded);
    assert_eq!(c.len(), 2);
    assert_eq!(
        visible(&c[0]),
        pairs(&[
            ("app", "checkout"),
            ("container", "checkout"),
            ("job", "shop/checkout"),
            ("namespace", "shop"),
            ("node_name", "worker-b-3"),
            ("pod", "checkout-7d9f8b6c5d-x2k4p"),
        ])
    );
    assert_eq!(
        c[0].labels["__path__"],
        format!("/var/log/pods/shop_checkout-7d9f8b6c5d-x2k4p_{DEPLOY_UID}/checkout/*.log")
    );
    assert_eq!(c[1].labels["container"], "cache-warmer");
    assert!(c[1].labels["__path__"].ends_with("/cache-warmer/*.log"));
    assert_eq!(c[0].metadata, pairs(&[("pod_uid", DEPLOY_UID)]));
    assert_eq!(c[0].pipeline, None);
    assert_eq!(excluded, 0);
    // The kubernetes_sd labels are there for relabel_configs.
    assert_eq!(
        c[0].labels["__meta_kubernetes_pod_controller_kind"],
        "ReplicaSet"
    );
}

#[test]
fn app_kubernetes_io_name_wins_over_app_and_the_controller() {
    let pod = patched(
        "deployment",
        serde_json::json!({"app.kubernetes.io/name": "shopfront", "app": "legacy"}),
        serde_json::json!({}),
    );
    let c = rules("{}").pod(&pod, "n", &mut 0);
    assert_eq!(c[0].labels["app"], "shopfront");
    assert_eq!(c[0].labels["job"], "shop/shopfront");
    // An empty app.kubernetes.io/name falls through to app.
    let pod = patched(
        "deployment",
        serde_json::json!({"app.kubernetes.io/name": "", "app": "legacy"}),
        serde_json::json!({}),
    );
    assert_eq!(app_name(&pod), "legacy");
    // The fixture as it is.
    assert_eq!(app_name(&info(fixture("deployment"))), "checkout");
}

#[test]
fn bare_pod_is_its_own_app() {
    let mut v = fixture("deployment");
    v["metadata"]["labels"] = serde_json::json!({});
    v["metadata"]["ownerReferences"] = serde_json::json!([]);
    v["metadata"]["name"] = serde_json::json!("debug-shell");
    let pod = info(v);
    let c = rules("{}").pod(&pod, "n", &mut 0);
    assert_eq!(c[0].labels["app"], "debug-shell");
    assert_eq!(c[0].labels["job"], "shop/debug-shell");
}

#[test]
fn controller_names_lose_a_pod_template_hash_like_the_helm_chart() {
    for (name, app) in [
        ("checkout-7d9f8b6c5d", Some("checkout")),
        ("web-5f8c7d9b", Some("web")),
        ("backup-28123456", Some("backup")),
        ("postgres", Some("postgres")),
        ("a-b-1234567", Some("a-b-1234567")),
        ("x-12345678901", Some("x-12345678901")),
        ("-12345678", Some("-12345678")),
        ("Upper-7d9f8b6c5d", None),
        ("", None),
    ] {
        assert_eq!(controller_app(name), app, "{name}");
    }
}

#[test]
fn static_pod_directory_uses_the_config_hash() {
    let pod = info(fixture("static"));
    let c = rules("pod_logs_path: /logs").pod(&pod, "cp-1", &mut 0);
    assert_eq!(c.len(), 1);
    assert_eq!(
        c[0].labels["__path__"],
        "/logs/kube-system_etcd-cp-1_3b1f9c0d2e7a4c58b6d1e0f9a8c7b6d5/etcd/*.log"
    );
    // pod_uid is the mirror pod's UID; no controller, no app label: the pod name.
    assert_eq!(
        c[0].metadata,
        pairs(&[("pod_uid", "e4a1c9d2-6b7f-4a3e-8c5d-1f2e3a4b5c6d")])
    );
    assert_eq!(c[0].labels["app"], "etcd-cp-1");
}

#[test]
fn promoted_labels_are_copied_under_sanitised_names_and_only_if_present() {
    let pod = patched(
        "deployment",
        serde_json::json!({"app.kubernetes.io/name": "checkout", "tier": "web", "team.example.com/owner": "pay", "9lives": "yes", "empty": ""}),
        serde_json::json!({}),
    );
    let r = rules("promote_labels: [tier, team.example.com/owner, 9lives, empty, missing]");
    let c = r.pod(&pod, "n", &mut 0);
    let l = &c[0].labels;
    assert_eq!(l["tier"], "web");
    assert_eq!(l["team_example_com_owner"], "pay");
    assert_eq!(l["_9lives"], "yes");
    assert!(!l.contains_key("empty") && !l.contains_key("missing"));
}

#[test]
fn listed_annotations_become_structured_metadata() {
    let pod = patched(
        "deployment",
        serde_json::json!({}),
        serde_json::json!({"example.com/owner": "team-pay", "prometheus.io/port": "9090"}),
    );
    let r = rules("annotations_as_metadata: [example.com/owner, not/there]");
    let c = r.pod(&pod, "n", &mut 0);
    assert_eq!(
        c[0].metadata,
        pairs(&[("pod_uid", DEPLOY_UID), ("example_com_owner", "team-pay")])
    );
    // Not a stream label.
    assert!(!c[0].labels.contains_key("example_com_owner"));
}

#[test]
fn exclude_annotation_skips_the_pod() {
    for v in ["true", "True", " true "] {
        let pod = patched(
            "deployment",
            serde_json::json!({}),
            serde_json::json!({ EXCLUDE: v }),
        );
        let mut excluded = 0;
        assert!(
            rules("{}").pod(&pod, "n", &mut excluded).is_empty(),
            "{v:?}"
        );
        assert_eq!(excluded, 2);
    }
    let pod = patched(
        "deployment",
        serde_json::json!({}),
        serde_json::json!({ EXCLUDE: "false" }),
    );
    assert_eq!(rules("{}").pod(&pod, "n", &mut 0).len(), 2);
}

#[test]
fn exclude_containers_annotation_skips_those_containers() {
    let pod = patched(
        "deployment",
        serde_json::json!({}),
        serde_json::json!({ EXCLUDE_CONTAINERS: "cache-warmer, istio-proxy" }),
    );
    let mut excluded = 0;
    let c = rules("{}").pod(&pod, "n", &mut excluded);
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].labels["container"], "checkout");
    assert_eq!(excluded, 1);
    // Init containers are containers too.
    let mut v = fixture("init-containers");
    v["metadata"]["annotations"] = serde_json::json!({ EXCLUDE_CONTAINERS: "init-chmod-data" });
    let names: Vec<String> = rules("{}")
        .pod(&info(v), "n", &mut 0)
        .iter()
        .map(|c| c.labels["container"].clone())
        .collect();
    assert_eq!(names, ["postgres", "metrics"]);
}

#[test]
fn pipeline_annotation_names_the_pipeline_of_every_container() {
    let pod = patched(
        "deployment",
        serde_json::json!({}),
        serde_json::json!({ PIPELINE: " nginx " }),
    );
    let c = rules("{}").pod(&pod, "n", &mut 0);
    assert!(c.iter().all(|c| c.pipeline.as_deref() == Some("nginx")));
}

fn job(rules_yaml: &str, relabel_yaml: &str, root: &Path) -> JobTargets {
    let relabel: Vec<RelabelConfig> = serde_yaml_ng::from_str(relabel_yaml).unwrap();
    let cfg: KubernetesPodsConfig = serde_yaml_ng::from_str(rules_yaml).unwrap();
    JobTargets::new(
        0,
        "pods",
        &[],
        Relabeler::new(&relabel).unwrap(),
        vec![0],
        "worker-b-3",
    )
    .with_pod_logs(Path::new("/unused"), Duration::ZERO)
    .with_native(NativeRules::new(&cfg, root))
}

fn compute(j: &JobTargets, cache: &PodCache) -> (Vec<FileTarget>, Dropped) {
    let mut dirs = DirWatch::default();
    let m = Metrics::new();
    let now = Instant::now();
    j.compute(cache, &mut dirs, now, &m)
}

#[test]
fn job_targets_carry_metadata_and_pipeline_and_relabel_configs_apply_after() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = PodCache::new();
    let mut dep = patched(
        "deployment",
        serde_json::json!({"app.kubernetes.io/name": "checkout"}),
        serde_json::json!({ PIPELINE: "nginx", EXCLUDE_CONTAINERS: "cache-warmer" }),
    );
    dep.node_name = String::new(); // falls back to the agent's node
    cache.replace(0, vec![dep, info(fixture("static"))], Instant::now());
    let relabel = r#"
- source_labels: [namespace]
  regex: kube-system
  action: drop
- target_label: cluster
  replacement: eu-1
"#;
    let (t, dropped) = compute(&job("{}", relabel, tmp.path()), &cache);
    assert_eq!(dropped.empty_labels, 1, "the static pod is relabeled away");
    assert_eq!(dropped.excluded, 1);
    assert_eq!(t.len(), 1);
    let l: Vec<(&str, &str)> = t[0].labels.iter().collect();
    assert_eq!(
        l,
        [
            ("app", "checkout"),
            ("cluster", "eu-1"),
            ("container", "checkout"),
            ("job", "shop/checkout"),
            ("namespace", "shop"),
            ("node_name", "worker-b-3"),
            ("pod", "checkout-7d9f8b6c5d-x2k4p"),
        ]
    );
    assert_eq!(t[0].pipeline.as_deref(), Some("nginx"));
    assert_eq!(t[0].metadata, [meta_pair("pod_uid", DEPLOY_UID)]);
    assert!(t[0].include.starts_with(&tmp.path().display().to_string()));
}

#[test]
fn path_only_pod_gets_what_its_directory_says() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp
        .path()
        .join("shop_orphan-6c9_0b1c2d3e-0000-4000-8000-000000000001");
    std::fs::create_dir_all(dir.join("main")).unwrap();
    let cache = PodCache::new();
    cache.replace(0, Vec::new(), Instant::now());
    let (t, _) = compute(&job("{}", "[]", tmp.path()), &cache);
    assert_eq!(t.len(), 1);
    let l: Vec<(&str, &str)> = t[0].labels.iter().collect();
    assert_eq!(
        l,
        [
            ("app", "orphan-6c9"),
            ("container", "main"),
            ("job", "shop/orphan-6c9"),
            ("namespace", "shop"),
            ("node_name", "worker-b-3"),
            ("pod", "orphan-6c9"),
        ]
    );
    assert_eq!(t[0].include, format!("{}/main/*.log", dir.display()));
    assert_eq!(
        t[0].metadata,
        [meta_pair("pod_uid", "0b1c2d3e-0000-4000-8000-000000000001")]
    );
    assert_eq!(t[0].pipeline, None);
}

#[test]
fn path_only_pods_outside_the_watched_namespaces_are_not_shipped() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp
        .path()
        .join("shop_orphan-6c9_0b1c2d3e-0000-4000-8000-000000000001");
    std::fs::create_dir_all(dir.join("main")).unwrap();
    let cache = PodCache::new();
    cache.replace(0, Vec::new(), Instant::now());
    for (scope, n) in [
        (DirScope::Namespaces(vec!["db".into()]), 0),
        (DirScope::Namespaces(Vec::new()), 0),
        (DirScope::Namespaces(vec!["db".into(), "shop".into()]), 1),
    ] {
        let j = job("{}", "[]", tmp.path()).with_dir_scope(scope.clone());
        assert_eq!(compute(&j, &cache).0.len(), n, "{scope:?}");
    }
}

#[test]
fn glob_characters_in_the_logs_path_are_escaped() {
    let pod = info(fixture("static"));
    let c = rules("pod_logs_path: /logs[1]").pod(&pod, "n", &mut 0);
    assert!(c[0].labels["__path__"].starts_with("/logs[[]1[]]/kube-system_"));
}

#[test]
fn pipelines_load_from_a_directory_and_errors_name_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let m = Arc::new(Metrics::new());
    let w = |name: &str, text: &str| std::fs::write(tmp.path().join(name), text).unwrap();
    w("nginx.yaml", "- docker: {}\n");
    w(
        "java.yml",
        "- cri: {}\n- multiline:\n    firstline: '^\\d'\n",
    );
    w("empty.yaml", "");
    w(".hidden.yaml", "not: [a list");
    w("notes.txt", "ignored");
    std::fs::create_dir(tmp.path().join("..data")).unwrap();
    let (lib, p) = load_pipelines(tmp.path(), true, &m).unwrap();
    let names: Vec<&str> = p.iter().map(|(n, _)| n.as_str()).collect();
    // The built-ins, with the directory's `java` over the built-in one.
    assert_eq!(
        names,
        [
            "containerd",
            "empty",
            "go",
            "java",
            "json-app",
            "klog",
            "klog-journal",
            "klog-parse",
            "klog-time",
            "level",
            "logfmt-app",
            "nginx",
            "python"
        ]
    );
    assert!(lib
        .get("java")
        .is_some_and(|n| n.origin.ends_with("java.yml")));
    let stages_of = |name: &str| {
        p.iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| p.stage_names())
    };
    assert_eq!(stages_of("java").unwrap(), ["cri", "multiline"]);
    assert_eq!(stages_of("nginx").unwrap(), ["docker"]);

    w("broken.yaml", "- nosuchstage: {}\n");
    let e = load_pipelines(tmp.path(), true, &m).err().unwrap();
    assert!(
        e.contains("broken.yaml") && e.contains("nosuchstage"),
        "{e}"
    );
    std::fs::remove_file(tmp.path().join("broken.yaml")).unwrap();
    w("bad.yaml", "- cri:\n    max_partial_lines: lots\n");
    let e = load_pipelines(tmp.path(), true, &m).err().unwrap();
    assert!(e.contains("bad.yaml"), "{e}");
    std::fs::remove_file(tmp.path().join("bad.yaml")).unwrap();
    w("nginx.yml", "- cri: {}\n");
    let e = load_pipelines(tmp.path(), true, &m).err().unwrap();
    assert!(e.contains("\"nginx\" is defined twice"), "{e}");

    let missing = tmp.path().join("nope");
    assert_eq!(
        load_pipelines(&missing, false, &m).unwrap().1.len(),
        crate::pipeline::library::BUILTIN.len()
    );
    let e = load_pipelines(&missing, true, &m).err().unwrap();
    assert!(e.contains("nope"), "{e}");
}

#[test]
fn pipelines_dir_is_relative_to_the_config_file() {
    let cfg = |d: Option<&str>| KubernetesPodsConfig {
        pipelines_dir: d.map(PathBuf::from),
        ..Default::default()
    };
    let f = "/etc/tailtrace/promtail.yaml";
    assert_eq!(
        pipelines_dir(&cfg(None), f),
        (PathBuf::from("/etc/tailtrace/pipelines"), false)
    );
    assert_eq!(
        pipelines_dir(&cfg(Some("p")), f),
        (PathBuf::from("/etc/tailtrace/p"), true)
    );
    assert_eq!(
        pipelines_dir(&cfg(Some("/srv/p")), f),
        (PathBuf::from("/srv/p"), true)
    );
    assert_eq!(
        pipelines_dir(&cfg(None), "promtail.yaml"),
        (PathBuf::from("pipelines"), false)
    );
}

#[test]
fn build_jobs_defaults_to_cri_and_trace_and_loads_the_pipelines_next_to_the_config() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("pipelines")).unwrap();
    std::fs::write(tmp.path().join("pipelines/nginx.yaml"), "- docker: {}\n").unwrap();
    let file = tmp.path().join("promtail.yaml").display().to_string();
    let text = "scrape_configs:\n  - job_name: pods\n    kubernetes_pods:\n";
    let cfg = crate::config::load_str(text, &file, false).unwrap();
    let m = Arc::new(Metrics::new());
    let (jobs, plan) = crate::agent::build_jobs(&cfg, &m, "n1").unwrap();
    assert!(plan.is_dynamic() && jobs[0].dynamic);
    // `cri`, then trace context (`trace_context` is on by default).
    assert_eq!(jobs[0].pipeline.stage_names(), ["cri", "trace"]);
    let named: Vec<&str> = jobs[0].named.iter().map(|(n, _)| n.as_str()).collect();
    assert!(
        named.contains(&"nginx") && named.contains(&"java"),
        "{named:?}"
    );
    let nginx = jobs[0].named.iter().find(|(n, _)| n == "nginx").unwrap();
    assert_eq!(
        nginx.1.stage_names(),
        ["docker"],
        "the file overrides the built-in"
    );

    std::fs::write(tmp.path().join("pipelines/bad.yaml"), "- cri: [1]\n").unwrap();
    let e = crate::agent::build_jobs(&cfg, &m, "n1").err().unwrap();
    assert!(
        e.contains("scrape_configs[0] (pods): kubernetes_pods.pipelines_dir:")
            && e.contains("bad.yaml"),
        "{e}"
    );
}
