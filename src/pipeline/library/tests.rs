use super::*;
use crate::ack::Ack;
use crate::entry::{Entry, Timestamp};
use crate::labels::LabelSet;
use crate::metrics::Metrics;
use crate::pipeline::stages::{self, BuildCtx};
use std::sync::Arc;

fn parse_stages(yaml: &str) -> Vec<StageConfig> {
    parse(yaml).unwrap()
}

#[test]
fn every_builtin_parses_builds_and_is_listed_once() {
    let lib = Library::builtins();
    let names: Vec<&str> = BUILTIN.iter().map(|(n, _)| *n).collect();
    assert_eq!(lib.names(), names, "BUILTIN sorted, each parsed");
    for (name, named) in lib.iter() {
        assert_eq!(named.origin, "built-in");
        assert!(named.stages.iter().all(|s| s.unhonoured_name().is_none()));
        let yaml = format!("- pipeline: {name}\n");
        let p = stages::build(&parse_stages(&yaml), Arc::new(Metrics::new()))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!p.is_empty(), "{name}");
    }
    // Each file of pipelines/ is listed (one place to add a pipeline).
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let n = e.ok()?.file_name().to_string_lossy().into_owned();
            n.strip_suffix(".yaml").map(str::to_string)
        })
        .collect();
    files.sort();
    assert_eq!(files, names);
}

#[test]
fn a_pipeline_stage_inlines_the_named_stages() {
    let v = parse_stages("- cri: {}\n- pipeline: java\n- static_labels: {a: b}\n");
    assert_eq!(v[1].name(), "pipeline");
    let p = stages::build(&v, Arc::new(Metrics::new())).unwrap();
    let names = p.stage_names();
    assert_eq!(names.first(), Some(&"cri"));
    assert_eq!(names.get(1), Some(&"multiline"));
    assert_eq!(names.last(), Some(&"static_labels"));
    assert!(names.contains(&"template") && names.contains(&"labels"));
}

#[test]
fn unknown_names_and_cycles_are_errors_naming_the_position() {
    let m = Arc::new(Metrics::new());
    let v = parse_stages("- cri: {}\n- pipeline: jaav\n");
    let e = stages::build(&v, m.clone()).err().unwrap();
    assert!(
        e.starts_with(
            "pipeline_stages[1].pipeline: unknown pipeline \"jaav\" (known: containerd, go, java,"
        ),
        "{e}"
    );
    // Nested in a match: the match's stage path.
    let v =
        parse_stages("- match:\n    selector: '{a=\"b\"}'\n    stages:\n      - pipeline: nope\n");
    let e = stages::build(&v, m.clone()).err().unwrap();
    assert!(
        e.starts_with("pipeline_stages[0].match: stages[0].pipeline: unknown pipeline \"nope\""),
        "{e}"
    );
    let mut lib = Library::builtins();
    for (n, text) in [
        ("a", "- pipeline: b\n"),
        ("b", "- cri: {}\n- pipeline: a\n"),
    ] {
        lib.map.insert(
            n.into(),
            Named {
                stages: parse_stages(text),
                origin: format!("{n}.yaml"),
            },
        );
    }
    let ctx = BuildCtx::with_pipelines(m.clone(), Arc::new(lib));
    let e = stages::build_with(&parse_stages("- pipeline: a\n"), &ctx)
        .err()
        .unwrap();
    assert!(e.contains("includes itself (a → b → a)"), "{e}");
    assert!(e.starts_with("pipeline_stages[0].pipeline: a (a.yaml): pipeline_stages[0].pipeline: b (b.yaml): pipeline_stages[1].pipeline:"), "{e}");
    // A bad stage inside a named pipeline names both positions.
    let mut lib = Library::builtins();
    lib.map.insert(
        "bad".into(),
        Named {
            stages: parse_stages("- cri: {}\n- regex: {expression: '('}\n"),
            origin: "/p/bad.yaml".into(),
        },
    );
    let ctx = BuildCtx::with_pipelines(m, Arc::new(lib));
    let e = stages::build_with(&parse_stages("- docker: {}\n- pipeline: bad\n"), &ctx)
        .err()
        .unwrap();
    assert!(
        e.starts_with("pipeline_stages[1].pipeline: bad (/p/bad.yaml): pipeline_stages[1].regex:"),
        "{e}"
    );
    // The stage takes a name, nothing else.
    assert!(parse("- pipeline: {name: java}\n").is_err());
}

#[test]
fn a_directory_adds_pipelines_and_overrides_builtins() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("java.yaml"),
        "- static_labels: {mine: 'yes'}\n",
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("shop.yml"),
        "- pipeline: java\n- static_labels: {shop: 'yes'}\n",
    )
    .unwrap();
    let lib = Library::with_dir(tmp.path(), true).unwrap();
    assert!(lib.get("go").is_some_and(|n| n.origin == "built-in"));
    assert!(lib
        .get("java")
        .is_some_and(|n| n.origin.ends_with("java.yaml")));
    // `shop` uses the overriding `java`.
    let ctx = BuildCtx::with_pipelines(Arc::new(Metrics::new()), Arc::new(lib));
    let mut p = stages::build_with(&parse_stages("- pipeline: shop\n"), &ctx).unwrap();
    assert_eq!(p.stage_names(), ["static_labels", "static_labels"]);
    let mut out = Vec::new();
    p.process(
        Entry::new(LabelSet::empty(), Timestamp(1), "x".into(), Ack::none()),
        &mut out,
    );
    assert_eq!(out[0].labels.get("mine"), Some("yes"));
    assert_eq!(out[0].labels.get("shop"), Some("yes"));
    for e in out {
        e.ack.ack();
    }
    assert!(Library::with_dir(&tmp.path().join("none"), false).is_ok());
    assert!(Library::with_dir(&tmp.path().join("none"), true).is_err());
}

#[test]
fn references_to_non_builtins_are_found_in_match_too() {
    let v = parse_stages("- cri: {}\n- pipeline: java\n");
    assert!(!references_other_than_builtin(&v));
    let v = parse_stages("- match:\n    selector: '{a=\"b\"}'\n    stages: [{pipeline: mine}]\n");
    assert!(references_other_than_builtin(&v));
}

#[test]
fn static_jobs_resolve_builtins_and_the_pipelines_next_to_the_config() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("pipelines")).unwrap();
    std::fs::write(
        tmp.path().join("pipelines/mine.yaml"),
        "- pipeline: go\n- static_labels: {team: a}\n",
    )
    .unwrap();
    let file = tmp.path().join("promtail.yaml").display().to_string();
    let job = |name: &str, stages: &str| {
        format!(
            "  - job_name: {name}\n    static_configs:\n      - targets: [localhost]\n        labels: {{__path__: /tmp/none/*.log}}\n    pipeline_stages: {stages}\n"
        )
    };
    let text = format!(
        "scrape_configs:\n{}{}",
        job("a", "[cri: {}, pipeline: java]"),
        job("b", "[cri: {}, pipeline: mine]")
    );
    let cfg = crate::config::load_str(&text, &file, false).unwrap();
    let m = Arc::new(Metrics::new());
    let (jobs, _) = crate::agent::build_jobs(&cfg, &m, "n1").unwrap();
    assert_eq!(jobs[0].pipeline.stage_names()[..2], ["cri", "multiline"]);
    let b = jobs[1].pipeline.stage_names();
    assert_eq!(b.first(), Some(&"cri"));
    assert_eq!(b.last(), Some(&"static_labels"));
    assert!(jobs.iter().all(|j| j.named.is_empty()));

    let text = format!("scrape_configs:\n{}", job("c", "[cri: {}, pipeline: nope]"));
    let cfg = crate::config::load_str(&text, &file, false).unwrap();
    let e = crate::agent::build_jobs(&cfg, &m, "n1").err().unwrap();
    assert!(
        e.starts_with(
            "scrape_configs[0] (c): pipeline_stages[1].pipeline: unknown pipeline \"nope\""
        ),
        "{e}"
    );
}

#[test]
fn klog_json_pod_is_only_a_kobj_with_namespace_and_name() {
    let mut p = stages::build(
        &parse_stages("- pipeline: klog-parse\n"),
        Arc::new(Metrics::new()),
    )
    .unwrap();
    let meta = |p: &mut crate::pipeline::Pipeline, line: &str| {
        let mut out = Vec::new();
        let e = Entry::new(LabelSet::empty(), Timestamp(1), line.into(), Ack::none());
        p.process(e, &mut out);
        p.flush(&mut out);
        out.into_iter()
            .map(|e| {
                let m: Vec<(String, String)> = e
                    .metadata
                    .iter()
                    .filter(|(k, _)| &**k == "k8s_pod" || &**k == "pod_uid")
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                e.ack.ack();
                m
            })
            .collect::<Vec<_>>()
    };
    let kv = |k: &str, v: &str| (k.to_string(), v.to_string());
    let line = |pod: &str| format!(r#"{{"ts":1705745110200.187,"msg":"m","v":4,"pod":{pod}}}"#);
    assert_eq!(
        meta(&mut p, &line(r#"{"name":"web-0","namespace":"shop"}"#)),
        [vec![kv("k8s_pod", "shop/web-0")]]
    );
    // A cluster-scoped object, a string, null, a list: no pod.
    for other in [r#"{"name":"worker-1"}"#, r#""shop/web-0""#, "null", "[1]"] {
        assert_eq!(meta(&mut p, &line(other)), [vec![]], "{other}");
    }
    assert_eq!(
        meta(
            &mut p,
            r#"{"msg":"m","v":0,"podUID":"6dfd786b-bf36-4c33-a948-83f2b1e73ef6"}"#
        ),
        [vec![kv("pod_uid", "6dfd786b-bf36-4c33-a948-83f2b1e73ef6")]]
    );
}

/// deploy/base's node-journal job names the built-in pipelines inside its
/// `match` stages: they resolve, and each unit's entries get its pipeline
/// while keeping the journal's timestamp (`-check-syntax` does not build
/// pipelines, so this is where a misspelt name is caught without a
/// journal).
#[test]
fn deploy_node_journal_job_runs_the_built_in_pipelines_per_unit() {
    let text = include_str!("../../../deploy/base/promtail.yaml")
        .replace("${LOKI_PUSH_URL}", "http://loki:3100/loki/api/v1/push");
    let cfg = crate::config::load_str(&text, "deploy/base/promtail.yaml", false).unwrap();
    let m = Arc::new(Metrics::new());
    let (mut jobs, _) = crate::agent::build_jobs(&cfg, &m, "n1").unwrap();
    let mut journal = crate::agent::journal_jobs(&cfg, &mut jobs, &m).unwrap();
    assert_eq!(journal.len(), 1);
    let p = &mut journal[0].pipeline;
    assert_eq!(p.stage_names(), ["match", "match"]);
    let entry = |unit: &str, line: &str| {
        let labels = LabelSet::new([
            ("job", "node-journal".to_string()),
            ("level", "info".to_string()),
            ("unit", unit.to_string()),
        ]);
        Entry::new(
            labels,
            Timestamp(1_705_744_800_000_321_000),
            line.into(),
            Ack::none(),
        )
    };
    let mut out = Vec::new();
    p.process(entry("kubelet.service", r#"E0120 11:00:00.000200    2941 pod_workers.go:1298] "Error syncing pod, skipping" err="x" pod="shop/web-0""#), &mut out);
    p.process(entry("containerd.service", r#"time="2024-01-20T10:00:00.000100Z" level=warning msg="RunPodSandbox for &PodSandboxMetadata{Name:web-0,Uid:6dfd786b-bf36-4c33-a948-83f2b1e73ef6,Namespace:shop,Attempt:0,}""#), &mut out);
    p.process(entry("cron.service", "level=error not matched"), &mut out);
    p.flush(&mut out);
    let got: Vec<(String, Option<String>, Option<String>, i64)> = out
        .into_iter()
        .map(|e| {
            let pod = e
                .metadata
                .iter()
                .find(|(k, _)| &**k == "k8s_pod")
                .map(|(_, v)| v.to_string());
            let r = (
                e.labels.get("unit").unwrap_or("").to_string(),
                e.labels.get("level").map(str::to_string),
                pod,
                e.timestamp.nanos(),
            );
            e.ack.ack();
            r
        })
        .collect();
    let s = |v: &str| Some(v.to_string());
    let ts = 1_705_744_800_000_321_000;
    assert_eq!(
        got,
        [
            ("containerd.service".into(), s("warn"), s("shop/web-0"), ts),
            ("cron.service".into(), s("info"), None, ts),
            ("kubelet.service".into(), s("error"), s("shop/web-0"), ts),
        ]
    );
}
