//! The stock Promtail Helm chart config against fixture pods: the file
//! targets tailtrace makes of them must be the ones Promtail makes.
//!
//! Owns: the end-to-end check config loader → `kubernetes_sd` role `pod`
//! (`meta.rs`) → the chart's `relabel_configs` (`relabel.rs`) →
//! [`JobTargets::compute`] for `deploy/promtail-helm/promtail.yaml` and
//! every pod under `tests/fixtures/pods/`. The expectations are literal
//! tables, one per pod, each worked out by hand in a comment from
//! documented behaviour, never from tailtrace's output:
//! - Prometheus's pod role (`discovery/kubernetes/pod.go`): no targets for a
//!   pod without `status.podIP`; otherwise one target per container port,
//!   one per container without ports, init containers after the regular
//!   ones;
//! - the chart's 11 rules: `__tmp_controller_name` (controller name, RE2
//!   `^(?:([0-9a-z-.]+?)(-[0-9a-f]{8,10})?)$`, `$1`), `app`, `instance`,
//!   `component` (first non-empty source: `^;*([^;]+)(;.*)?$`), `node_name`,
//!   `namespace`, `job` (`namespace/app`), `pod`, `container`, `__path__`
//!   from the UID, then from the config hash for static pods;
//! - Promtail's `targetSyncer.sync` (`filetargetmanager.go`): a `__host__`
//!   other than the node drops the target, no `__path__` drops it, every
//!   `__` label goes, the key is path + remaining labels and a key seen
//!   before in the sync is dropped as `exists`; Loki drops empty values.
//!
//! Not here: the `__meta_kubernetes_*` labels one by one (`meta.rs`'s
//! tests), relabel edge cases (`relabel.rs`), keeping to this node's pods
//! (the watch's `spec.nodeName` field selector, `start.rs`).

use super::cache::{PodCache, PodInfo};
use super::relabel::Relabeler;
use super::targets::{DirWatch, Dropped, JobTargets};
use crate::config::{load_str, Config};
use crate::metrics::Metrics;
use crate::source::FileTarget;
use k8s_openapi::api::core::v1::Pod;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// The chart-rendered config, unchanged.
const CHART: &str = include_str!("../../deploy/promtail-helm/promtail.yaml");

/// Every fixture pod, by file stem.
const FIXTURES: &[(&str, &str)] = &[
    (
        "deployment",
        include_str!("../../tests/fixtures/pods/deployment.json"),
    ),
    (
        "daemonset",
        include_str!("../../tests/fixtures/pods/daemonset.json"),
    ),
    (
        "static",
        include_str!("../../tests/fixtures/pods/static.json"),
    ),
    (
        "init-containers",
        include_str!("../../tests/fixtures/pods/init-containers.json"),
    ),
    (
        "pending-no-ip",
        include_str!("../../tests/fixtures/pods/pending-no-ip.json"),
    ),
    (
        "deployment-no-app-label",
        include_str!("../../tests/fixtures/pods/deployment-no-app-label.json"),
    ),
    (
        "daemonset-no-app-label",
        include_str!("../../tests/fixtures/pods/daemonset-no-app-label.json"),
    ),
    (
        "cronjob",
        include_str!("../../tests/fixtures/pods/cronjob.json"),
    ),
    (
        "bare-app-label",
        include_str!("../../tests/fixtures/pods/bare-app-label.json"),
    ),
    (
        "static-mirror-node-owner",
        include_str!("../../tests/fixtures/pods/static-mirror-node-owner.json"),
    ),
];

/// A node none of the fixture pods runs on.
const OTHER_NODE: &str = "worker-z-9";

/// One file target Promtail makes: its `__path__` glob and the labels it
/// keeps (no `__` labels, no empty values).
struct Want {
    path: &'static str,
    labels: &'static [(&'static str, &'static str)],
}

/// One fixture pod on its own node, and what Promtail makes of it.
struct Case {
    fixture: &'static str,
    /// The pod's `spec.nodeName`: the node whose Promtail discovers it.
    node: &'static str,
    want: &'static [Want],
    dropped: Dropped,
}

/// A target as compared: `(include glob, sorted labels)`.
type Got = (String, Vec<(String, String)>);

fn dropped_exists(exists: u64) -> Dropped {
    Dropped {
        exists,
        ..Dropped::default()
    }
}

/// Every fixture pod with its expectations, worked out by hand.
fn cases() -> Vec<Case> {
    vec![
        Case {
            fixture: "deployment",
            node: "worker-b-3",
            // Discovery: podIP 10.244.3.17 is set → targets checkout:8080,
            // checkout:9090, cache-warmer (no ports) = 3.
            // __tmp_controller_name: ReplicaSet "checkout-7d9f8b6c5d" →
            //   lazy $1 "checkout" + "-7d9f8b6c5d" (10 hex) → "checkout".
            // app: "checkout;;checkout;checkout-7d9f8b6c5d-x2k4p" → first
            //   non-empty = label app.kubernetes.io/name "checkout".
            // instance: ";" (no such labels) → no match → unset.
            // component: ";" → unset.
            // node_name worker-b-3, namespace shop, job "shop/checkout",
            // pod, container; __path__ from the UID; the config-hash rule
            // sees "//<container>" → no match (not a static pod).
            // Promtail drops the `__` labels; checkout:8080 and :9090 then
            // have the same path and labels → the second is `exists`.
            want: &[
                Want {
                    path: "/var/log/pods/*5c2f1e7a-9b3d-4e8f-a6c1-7d2b9e4f0a13/checkout/*.log",
                    labels: &[
                        ("app", "checkout"),
                        ("container", "checkout"),
                        ("job", "shop/checkout"),
                        ("namespace", "shop"),
                        ("node_name", "worker-b-3"),
                        ("pod", "checkout-7d9f8b6c5d-x2k4p"),
                    ],
                },
                Want {
                    path: "/var/log/pods/*5c2f1e7a-9b3d-4e8f-a6c1-7d2b9e4f0a13/cache-warmer/*.log",
                    labels: &[
                        ("app", "checkout"),
                        ("container", "cache-warmer"),
                        ("job", "shop/checkout"),
                        ("namespace", "shop"),
                        ("node_name", "worker-b-3"),
                        ("pod", "checkout-7d9f8b6c5d-x2k4p"),
                    ],
                },
            ],
            dropped: dropped_exists(1),
        },
        Case {
            fixture: "daemonset",
            node: "worker-c-2",
            // Discovery: phase Pending but podIP fd00:10:244:2::1a is set →
            // targets tailtrace:3101/TCP, tailtrace:8125/UDP = 2.
            // __tmp_controller_name: DaemonSet "tailtrace" (no hash) →
            //   "tailtrace".
            // app: label app.kubernetes.io/name "tailtrace" comes first.
            // instance, component: no such labels → unset.
            // node_name worker-c-2, namespace logging, job
            // "logging/tailtrace"; __path__ from the UID.
            // The two ports give one key → 1 target, 1 `exists`.
            want: &[Want {
                path: "/var/log/pods/*d1c2b3a4-9f8e-4d7c-b6a5-0e1f2a3b4c5d/tailtrace/*.log",
                labels: &[
                    ("app", "tailtrace"),
                    ("container", "tailtrace"),
                    ("job", "logging/tailtrace"),
                    ("namespace", "logging"),
                    ("node_name", "worker-c-2"),
                    ("pod", "tailtrace-9kq7z"),
                ],
            }],
            dropped: dropped_exists(1),
        },
        Case {
            fixture: "static",
            node: "cp-1",
            // Discovery: podIP 10.0.10.4 → etcd (no ports) = 1 target.
            // No ownerReferences → no controller name → the
            // __tmp_controller_name regex needs at least one character →
            // no match → unset.
            // app: ";;;etcd-cp-1" (no app.kubernetes.io/name, no app, no
            //   controller) → the pod name "etcd-cp-1".
            // instance: ";" → unset. component: ";etcd" → label component
            //   "etcd" (second source).
            // job "kube-system/etcd-cp-1".
            // __path__: first the UID glob, then the config-hash rule sees
            //   "true/3b1f9c0d2e7a4c58b6d1e0f9a8c7b6d5/etcd" → `true/(.*)`
            //   matches → the glob with the hash (the kubelet's directory
            //   for a static pod is named by the hash, not the mirror UID).
            want: &[Want {
                path: "/var/log/pods/*3b1f9c0d2e7a4c58b6d1e0f9a8c7b6d5/etcd/*.log",
                labels: &[
                    ("app", "etcd-cp-1"),
                    ("component", "etcd"),
                    ("container", "etcd"),
                    ("job", "kube-system/etcd-cp-1"),
                    ("namespace", "kube-system"),
                    ("node_name", "cp-1"),
                    ("pod", "etcd-cp-1"),
                ],
            }],
            dropped: Dropped::default(),
        },
        Case {
            fixture: "init-containers",
            node: "worker-a-1",
            // Discovery: postgres:5432, then the init containers in spec
            // order: init-chmod-data (no ports, terminated — still a
            // target), metrics:9187 (native sidecar) = 3, each a different
            // container → 3 keys, nothing `exists`.
            // __tmp_controller_name: StatefulSet "postgres" → "postgres".
            // app: label app.kubernetes.io/name "postgresql" comes first.
            // instance, component: no such labels → unset.
            // job "db/postgresql"; __path__ from the UID per container.
            want: &[
                Want {
                    path: "/var/log/pods/*2a9c7e51-0d3b-4f6a-8e2c-5b1d9f7a3c60/postgres/*.log",
                    labels: &[
                        ("app", "postgresql"),
                        ("container", "postgres"),
                        ("job", "db/postgresql"),
                        ("namespace", "db"),
                        ("node_name", "worker-a-1"),
                        ("pod", "postgres-0"),
                    ],
                },
                Want {
                    path:
                        "/var/log/pods/*2a9c7e51-0d3b-4f6a-8e2c-5b1d9f7a3c60/init-chmod-data/*.log",
                    labels: &[
                        ("app", "postgresql"),
                        ("container", "init-chmod-data"),
                        ("job", "db/postgresql"),
                        ("namespace", "db"),
                        ("node_name", "worker-a-1"),
                        ("pod", "postgres-0"),
                    ],
                },
                Want {
                    path: "/var/log/pods/*2a9c7e51-0d3b-4f6a-8e2c-5b1d9f7a3c60/metrics/*.log",
                    labels: &[
                        ("app", "postgresql"),
                        ("container", "metrics"),
                        ("job", "db/postgresql"),
                        ("namespace", "db"),
                        ("node_name", "worker-a-1"),
                        ("pod", "postgres-0"),
                    ],
                },
            ],
            dropped: Dropped::default(),
        },
        Case {
            fixture: "pending-no-ip",
            node: "worker-b-3",
            // Discovery: no status.podIP → pod.go returns an empty group →
            // no targets, so nothing reaches the syncer to be dropped.
            want: &[],
            dropped: Dropped::default(),
        },
        Case {
            fixture: "deployment-no-app-label",
            node: "worker-b-3",
            // Discovery: web:8080, web:8443, log-forwarder = 3.
            // __tmp_controller_name: ReplicaSet "web-7d9f8b6c5d" → "web"
            //   (the 10-hex pod-template-hash suffix is stripped).
            // app: ";;web;web-7d9f8b6c5d-4jz2m" → `;*` skips the two empty
            //   sources → "web".
            // instance: "web-prod;legacy-web" → first = "web-prod".
            // component: "frontend;legacy-frontend" → first = "frontend".
            // job "storefront/web"; the two web ports share one key →
            // 2 targets, 1 `exists`.
            want: &[
                Want {
                    path: "/var/log/pods/*8e1f0a2b-3c4d-4e5f-8a6b-7c8d9e0f1a2b/web/*.log",
                    labels: &[
                        ("app", "web"),
                        ("component", "frontend"),
                        ("container", "web"),
                        ("instance", "web-prod"),
                        ("job", "storefront/web"),
                        ("namespace", "storefront"),
                        ("node_name", "worker-b-3"),
                        ("pod", "web-7d9f8b6c5d-4jz2m"),
                    ],
                },
                Want {
                    path: "/var/log/pods/*8e1f0a2b-3c4d-4e5f-8a6b-7c8d9e0f1a2b/log-forwarder/*.log",
                    labels: &[
                        ("app", "web"),
                        ("component", "frontend"),
                        ("container", "log-forwarder"),
                        ("instance", "web-prod"),
                        ("job", "storefront/web"),
                        ("namespace", "storefront"),
                        ("node_name", "worker-b-3"),
                        ("pod", "web-7d9f8b6c5d-4jz2m"),
                    ],
                },
            ],
            dropped: dropped_exists(1),
        },
        Case {
            fixture: "daemonset-no-app-label",
            node: "worker-b-3",
            // Discovery: hostNetwork pod, podIP 10.0.12.7 →
            // node-exporter:9100 = 1.
            // __tmp_controller_name: DaemonSet "node-exporter": "-exporter"
            //   is not 8-10 hex digits → the whole name.
            // app: label app.kubernetes.io/name is present but EMPTY, no
            //   app label → ";;node-exporter;node-exporter-x7k2q" →
            //   "node-exporter" (an empty value counts as absent).
            // instance: ";" → unset. component: ";exporter" → "exporter".
            // job "monitoring/node-exporter".
            want: &[Want {
                path: "/var/log/pods/*c3b2a190-8f7e-4d6c-9b5a-4e3d2c1b0a99/node-exporter/*.log",
                labels: &[
                    ("app", "node-exporter"),
                    ("component", "exporter"),
                    ("container", "node-exporter"),
                    ("job", "monitoring/node-exporter"),
                    ("namespace", "monitoring"),
                    ("node_name", "worker-b-3"),
                    ("pod", "node-exporter-x7k2q"),
                ],
            }],
            dropped: Dropped::default(),
        },
        Case {
            fixture: "cronjob",
            node: "worker-a-1",
            // Discovery: phase Succeeded, podIP still set → backup = 1.
            // __tmp_controller_name: Job "backup-29114560": the CronJob's
            //   8-digit suffix is 8 hex digits too → stripped → "backup".
            // app: ";;backup;backup-29114560-7tq9w" → "backup".
            // instance, component: ";" → unset. job "ops/backup".
            want: &[Want {
                path: "/var/log/pods/*0f9e8d7c-6b5a-4493-8281-7f6e5d4c3b2a/backup/*.log",
                labels: &[
                    ("app", "backup"),
                    ("container", "backup"),
                    ("job", "ops/backup"),
                    ("namespace", "ops"),
                    ("node_name", "worker-a-1"),
                    ("pod", "backup-29114560-7tq9w"),
                ],
            }],
            dropped: Dropped::default(),
        },
        Case {
            fixture: "bare-app-label",
            node: "worker-a-1",
            // Discovery: shell (no ports) = 1.
            // No owner → __tmp_controller_name unset.
            // app: ";debug-tools;;toolbox" → the label app (second source)
            //   "debug-tools", not the pod name.
            // instance, component: ";" → unset. job "default/debug-tools".
            want: &[Want {
                path: "/var/log/pods/*7a6b5c4d-3e2f-4103-9f8e-7d6c5b4a3f2e/shell/*.log",
                labels: &[
                    ("app", "debug-tools"),
                    ("container", "shell"),
                    ("job", "default/debug-tools"),
                    ("namespace", "default"),
                    ("node_name", "worker-a-1"),
                    ("pod", "toolbox"),
                ],
            }],
            dropped: Dropped::default(),
        },
        Case {
            fixture: "static-mirror-node-owner",
            node: "cp-1",
            // Discovery: kube-apiserver (no ports) = 1.
            // A kubeadm mirror pod is controlled by its Node: controller
            //   name "cp-1" → no hex suffix → __tmp_controller_name "cp-1".
            // app: ";;cp-1;kube-apiserver-cp-1" → "cp-1" — the node name,
            //   not the pod name: Promtail's chart labels every unlabelled
            //   mirror pod with its node's name.
            // component: ";kube-apiserver" → "kube-apiserver".
            // instance: ";" → unset. job "kube-system/cp-1".
            // __path__: config.hash annotation present → the hash glob.
            want: &[Want {
                path: "/var/log/pods/*9f8e7d6c5b4a39281706f5e4d3c2b1a0/kube-apiserver/*.log",
                labels: &[
                    ("app", "cp-1"),
                    ("component", "kube-apiserver"),
                    ("container", "kube-apiserver"),
                    ("job", "kube-system/cp-1"),
                    ("namespace", "kube-system"),
                    ("node_name", "cp-1"),
                    ("pod", "kube-apiserver-cp-1"),
                ],
            }],
            dropped: Dropped::default(),
        },
    ]
}

/// The chart config, loaded and validated as the agent does.
fn chart() -> Config {
    let cfg = load_str(CHART, "deploy/promtail-helm/promtail.yaml", false)
        .unwrap_or_else(|e| panic!("the chart config does not load: {e}"));
    cfg.validate(false)
        .unwrap_or_else(|e| panic!("the chart config is not valid: {e}"));
    cfg
}

fn fixture(name: &str) -> Pod {
    let text = FIXTURES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
        .unwrap_or_else(|| panic!("no fixture {name}"));
    serde_json::from_str(text).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// The expected targets, sorted as [`compute`] results are.
fn expected(want: &[Want]) -> Vec<Got> {
    let mut out: Vec<Got> = want
        .iter()
        .map(|w| {
            let mut labels: Vec<(String, String)> = w
                .labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            labels.sort();
            let names: BTreeSet<&str> = w.labels.iter().map(|(k, _)| *k).collect();
            assert_eq!(names.len(), w.labels.len(), "repeated label in {labels:?}");
            (w.path.to_string(), labels)
        })
        .collect();
    out.sort();
    out
}

/// The chart's job, as the agent on `node` runs it, over `pods` (listed
/// once by its watch); the targets sorted.
fn compute(pods: &[Pod], node: &str) -> (Vec<Got>, Dropped) {
    let (targets, dropped) = compute_targets(pods, node, false);
    let mut got: Vec<Got> = targets.iter().map(as_got).collect();
    got.sort();
    (got, dropped)
}

/// [`compute`]'s targets as they are, with `trace_context.pod_uid` set or
/// not.
fn compute_targets(pods: &[Pod], node: &str, pod_uid: bool) -> (Vec<FileTarget>, Dropped) {
    let cfg = chart();
    let sc = &cfg.scrape_configs[0];
    let relabel = Relabeler::new(&sc.relabel_configs)
        .unwrap_or_else(|e| panic!("the chart's relabel_configs do not compile: {e}"));
    // An empty pod log directory: no path-only targets (tailtrace's
    // extension for pods the API has not described) can join in.
    let logs = tempfile::tempdir().expect("a temporary directory");
    let job = JobTargets::new(0, &sc.job_name, &[], relabel, vec![0], node)
        .with_pod_logs(logs.path(), Duration::from_secs(30))
        .with_pod_uid(pod_uid);
    let cache = PodCache::new();
    cache.add_source(0);
    let now = Instant::now();
    let infos = pods
        .iter()
        .map(|p| PodInfo::from_pod(p).expect("fixture pods have a UID"))
        .collect();
    cache.replace(0, infos, now);
    job.compute(&cache, &mut DirWatch::default(), now, &Metrics::new())
}

fn as_got(t: &FileTarget) -> Got {
    assert_eq!(t.exclude, None, "the chart sets no __path_exclude__");
    let labels = t
        .labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    (t.include.clone(), labels)
}

#[test]
fn chart_config_is_the_stock_kubernetes_pods_job() {
    let cfg = chart();
    assert_eq!(cfg.scrape_configs.len(), 1);
    let sc = &cfg.scrape_configs[0];
    assert_eq!(sc.job_name, "kubernetes-pods");
    assert_eq!(sc.kubernetes_sd_configs.len(), 1);
    assert_eq!(sc.kubernetes_sd_configs[0].role, "pod");
    assert!(sc.static_configs.is_empty());
    let targets: Vec<&str> = sc
        .relabel_configs
        .iter()
        .map(|r| r.target_label.as_str())
        .collect();
    assert_eq!(
        targets,
        [
            "__tmp_controller_name",
            "app",
            "instance",
            "component",
            "node_name",
            "namespace",
            "job",
            "pod",
            "container",
            "__path__",
            "__path__",
        ]
    );
    // The chart sets no `__host__` (it relies on Promtail's
    // `spec.nodeName` field selector), so no target is ever dropped as
    // `wrong_host`; see `all_fixture_pods_together_on_a_node_hosting_none`.
    assert!(!targets.contains(&"__host__"));
}

#[test]
fn every_fixture_file_has_a_case() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pods");
    let on_disk: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    let included: BTreeSet<String> = FIXTURES.iter().map(|(n, _)| n.to_string()).collect();
    let cased: BTreeSet<String> = cases().iter().map(|c| c.fixture.to_string()).collect();
    assert_eq!(on_disk, included, "FIXTURES must list every pod file");
    assert_eq!(on_disk, cased, "every pod file needs a hand-made case");
}

#[test]
fn each_fixture_pod_gets_promtails_label_sets() {
    for case in cases() {
        let pod = fixture(case.fixture);
        let on_node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
        assert_eq!(on_node, Some(case.node), "{}: spec.nodeName", case.fixture);
        let (got, dropped) = compute(&[pod], case.node);
        assert_eq!(got, expected(case.want), "{}: targets", case.fixture);
        assert_eq!(dropped, case.dropped, "{}: dropped", case.fixture);
    }
}

#[test]
fn all_fixture_pods_together_on_a_node_hosting_none() {
    // One sync over every pod at once. Without a `__host__` rule the
    // syncer keeps targets whatever the node (Promtail: `__host__` absent
    // → not `wrong_host`); the node filter is the watch's field selector,
    // which a cache filled by hand bypasses. No two pods share a key (the
    // `pod` label differs), so the result is the union of the cases and the
    // `exists` counts add up.
    let cases = cases();
    let pods: Vec<Pod> = cases.iter().map(|c| fixture(c.fixture)).collect();
    let (got, dropped) = compute(&pods, OTHER_NODE);
    let mut want: Vec<Got> = cases.iter().flat_map(|c| expected(c.want)).collect();
    want.sort();
    assert_eq!(want.len(), 13);
    assert_eq!(got, want);
    assert_eq!(dropped, dropped_exists(3));
}

#[test]
fn pod_uid_becomes_structured_metadata_of_every_target_when_asked() {
    let cases = cases();
    let pods: Vec<Pod> = cases.iter().map(|c| fixture(c.fixture)).collect();
    let (targets, _) = compute_targets(&pods, OTHER_NODE, true);
    assert_eq!(targets.len(), 13);
    for t in &targets {
        let pod = t.labels.get("pod").expect("every chart target has `pod`");
        let p = pods
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(pod))
            .expect("the target's pod");
        let uid = p.metadata.uid.clone().expect("fixture pods have a UID");
        assert_eq!(
            t.metadata,
            [crate::entry::meta_pair("pod_uid", &uid)],
            "{pod}"
        );
        assert_eq!(t.labels.get("pod_uid"), None, "metadata, never a label");
    }
    let (targets, _) = compute_targets(&pods, OTHER_NODE, false);
    assert!(targets.iter().all(|t| t.metadata.is_empty()));
}
