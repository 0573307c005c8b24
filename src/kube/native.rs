//! tailtrace's native `kubernetes_pods` form: this node's pods' files with
//! ready-made labels, no relabel rules to write.
//!
//! Owns: [`NativeRules`] (one scrape config's allow-lists and where pod log
//! directories are), which turns a cached pod — or a pod directory the API
//! has not described — into per-container [`Candidate`]s for
//! [`JobTargets`](super::targets::JobTargets) to relabel, check and dedupe
//! like any other target; the `tailtrace.io/*` pod annotations; and
//! [`load_pipelines`], the named pipelines (`pipelines_dir`) a pod can pick.
//!
//! Per container (regular and init), as the Promtail Helm chart labels it:
//! `namespace`, `pod`, `container`, `node_name`, `app` (the first non-empty
//! of the pod labels `app.kubernetes.io/name` and `app`, the controller name
//! without a `-<8..10 hex>` pod-template hash, the pod name), `job` =
//! `<namespace>/<app>`, and the `promote_labels` present on the pod; as
//! structured metadata `pod_uid` and the `annotations_as_metadata` present.
//! The path is `<pod_logs_path>/<namespace>_<pod>_<uid>/<container>/*.log`,
//! where a static pod's `uid` is its `kubernetes.io/config.hash`.
//! Annotations: `tailtrace.io/exclude: "true"` skips the pod,
//! `tailtrace.io/exclude-containers: "a,b"` skips those containers,
//! `tailtrace.io/pipeline: <name>` runs that named pipeline after the job's
//! stages.
//!
//! Must never: read files or the API per computation (the pod cache and the
//! pod directories [`DirWatch`](super::targets::DirWatch) lists are the
//! input), or let a pod's annotations set a label the user did not allow.

use super::cache::PodInfo;
use super::targets::PodDir;
use crate::config::kubernetes::{loki_name, KubernetesPodsConfig};
use crate::metrics::Metrics;
use crate::pipeline::library::Library;
use crate::pipeline::stages::{self, BuildCtx};
use crate::pipeline::Pipeline;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Pod annotation: `"true"` skips the pod.
pub const EXCLUDE: &str = "tailtrace.io/exclude";
/// Pod annotation: comma-separated container names to skip.
pub const EXCLUDE_CONTAINERS: &str = "tailtrace.io/exclude-containers";
/// Pod annotation: the named pipeline for the pod's lines.
pub const PIPELINE: &str = "tailtrace.io/pipeline";
/// A static pod's directory carries this instead of the mirror pod's UID.
const CONFIG_HASH: &str = "kubernetes.io/config.hash";

/// One scrape config's native rules. See the module docs.
#[derive(Debug, Clone)]
pub struct NativeRules {
    pod_logs_path: PathBuf,
    /// `(pod label, stream label)`.
    promote: Vec<(String, String)>,
    /// `(annotation, structured metadata name)`.
    metadata: Vec<(String, String)>,
}

/// One container's target before `relabel_configs`: its labels (with
/// `__path__` and the `__meta_kubernetes_*` ones), structured metadata and
/// named pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub labels: BTreeMap<String, String>,
    pub metadata: Vec<(String, String)>,
    pub pipeline: Option<String>,
}

impl NativeRules {
    /// `default_logs`: the top-level `kubernetes.pod_logs_path`.
    pub fn new(cfg: &KubernetesPodsConfig, default_logs: &Path) -> NativeRules {
        let named = |v: &[String]| v.iter().map(|n| (n.clone(), loki_name(n))).collect();
        NativeRules {
            pod_logs_path: cfg
                .pod_logs_path
                .clone()
                .unwrap_or_else(|| default_logs.to_path_buf()),
            promote: named(&cfg.promote_labels),
            metadata: named(&cfg.annotations_as_metadata),
        }
    }

    pub fn pod_logs_path(&self) -> &Path {
        &self.pod_logs_path
    }

    /// A pod's candidates, one per container not excluded; `excluded`
    /// counts the containers skipped by annotation.
    pub fn pod(&self, pod: &PodInfo, node: &str, excluded: &mut u64) -> Vec<Candidate> {
        let ann = |k: &str| {
            pod.annotations
                .get(k)
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
        };
        if ann(EXCLUDE).is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            *excluded += pod.containers.len() as u64;
            return Vec::new();
        }
        let skip: Vec<&str> = ann(EXCLUDE_CONTAINERS)
            .map(|v| v.split(',').map(str::trim).collect())
            .unwrap_or_default();
        let dir_uid = ann(CONFIG_HASH).unwrap_or(pod.uid.as_str());
        let dir = self
            .pod_logs_path
            .join(format!("{}_{}_{}", pod.namespace, pod.name, dir_uid));
        let node_name = if pod.node_name.is_empty() {
            node
        } else {
            &pod.node_name
        };
        let app = app_name(pod);
        let mut metadata = vec![("pod_uid".to_string(), pod.uid.clone())];
        for (a, name) in &self.metadata {
            if let Some(v) = pod.annotations.get(a).filter(|v| !v.is_empty()) {
                metadata.push((name.clone(), v.clone()));
            }
        }
        let pipeline = ann(PIPELINE).map(str::to_string);
        let mut out = Vec::new();
        for c in &pod.containers {
            if skip.contains(&c.as_str()) {
                *excluded += 1;
                continue;
            }
            let mut l = pod
                .targets
                .iter()
                .find(|t| t.get("__meta_kubernetes_pod_container_name") == Some(c))
                .cloned()
                .unwrap_or_else(|| meta_of(&pod.namespace, &pod.name, &pod.uid, c, node_name));
            for (label, name) in &self.promote {
                if let Some(v) = pod.labels.get(label).filter(|v| !v.is_empty()) {
                    l.insert(name.clone(), v.clone());
                }
            }
            set_native(&mut l, &pod.namespace, &pod.name, c, node_name, &app);
            l.insert("__path__".into(), log_glob(&dir, c));
            out.push(Candidate {
                labels: l,
                metadata: metadata.clone(),
                pipeline: pipeline.clone(),
            });
        }
        out
    }

    /// A pod directory without metadata: what its path says (`app` is the
    /// pod name).
    pub(super) fn dir(&self, d: &PodDir, node: &str) -> Vec<Candidate> {
        d.containers
            .iter()
            .map(|c| {
                let mut l = meta_of(&d.namespace, &d.name, &d.uid, c, node);
                set_native(&mut l, &d.namespace, &d.name, c, node, &d.name);
                l.insert("__path__".into(), log_glob(&d.dir, c));
                Candidate {
                    labels: l,
                    metadata: vec![("pod_uid".to_string(), d.uid.clone())],
                    pipeline: None,
                }
            })
            .collect()
    }
}

/// The `__meta_kubernetes_*` labels a pod directory's path gives.
fn meta_of(ns: &str, pod: &str, uid: &str, c: &str, node: &str) -> BTreeMap<String, String> {
    [
        ("__meta_kubernetes_namespace", ns),
        ("__meta_kubernetes_pod_name", pod),
        ("__meta_kubernetes_pod_uid", uid),
        ("__meta_kubernetes_pod_container_name", c),
        ("__meta_kubernetes_pod_node_name", node),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The labels tailtrace sets itself (over promoted ones of the same name,
/// which validation refuses anyway).
fn set_native(
    l: &mut BTreeMap<String, String>,
    ns: &str,
    pod: &str,
    container: &str,
    node: &str,
    app: &str,
) {
    for (k, v) in [
        ("namespace", ns),
        ("pod", pod),
        ("container", container),
        ("node_name", node),
        ("app", app),
    ] {
        l.insert(k.to_string(), v.to_string());
    }
    if !app.is_empty() {
        l.insert("job".into(), format!("{ns}/{app}"));
    }
}

/// `<dir>/<container>/*.log`, glob characters in the fixed parts escaped.
fn log_glob(dir: &Path, container: &str) -> String {
    let fixed = dir.join(container).to_string_lossy().into_owned();
    format!("{}/*.log", glob::Pattern::escape(&fixed))
}

/// The pod's `app`: label `app.kubernetes.io/name`, else label `app`, else
/// the controller's name without a pod-template hash, else the pod name.
pub fn app_name(pod: &PodInfo) -> String {
    let label = |k: &str| pod.labels.get(k).filter(|v| !v.is_empty()).cloned();
    label("app.kubernetes.io/name")
        .or_else(|| label("app"))
        .or_else(|| {
            pod.controller
                .as_ref()
                .and_then(|(_, n)| controller_app(n))
                .map(str::to_string)
        })
        .unwrap_or_else(|| pod.name.clone())
}

/// The Helm chart's `([0-9a-z-.]+?)(-[0-9a-f]{8,10})?` (anchored) on a
/// controller name: `None` if it does not match (or is empty).
pub fn controller_app(name: &str) -> Option<&str> {
    let ok = |c: char| c.is_ascii_digit() || c.is_ascii_lowercase() || c == '-' || c == '.';
    if name.is_empty() || !name.chars().all(ok) {
        return None;
    }
    if let Some(i) = name.rfind('-') {
        let hash = &name[i + 1..];
        let hex = |c: char| c.is_ascii_digit() || ('a'..='f').contains(&c);
        if i > 0 && (8..=10).contains(&hash.len()) && hash.chars().all(hex) {
            return Some(&name[..i]);
        }
    }
    Some(name)
}

/// Where a scrape config's named pipelines are, and whether the user said
/// so: `pipelines_dir` (relative to the config file's directory), else
/// `pipelines` next to the config file.
pub fn pipelines_dir(cfg: &KubernetesPodsConfig, config_file: &str) -> (PathBuf, bool) {
    let base = Path::new(config_file).parent().unwrap_or(Path::new(""));
    match &cfg.pipelines_dir {
        Some(d) => (base.join(d), true),
        None => (base.join("pipelines"), false),
    }
}

/// Built named pipelines, by name.
pub type NamedPipelines = Vec<(String, Pipeline)>;

/// The named pipelines a pod can pick: the built-in ones plus every
/// `<name>.yaml` (or `.yml`) file in `dir`, a YAML list of Promtail stages
/// like `pipeline_stages` (see [`Library::load_dir`]: a file named like a
/// built-in replaces it; errors name the file; a missing directory is an
/// error only if `required`), each built once. Also returns the library,
/// which the job's own `- pipeline:` stages resolve against.
pub fn load_pipelines(
    dir: &Path,
    required: bool,
    metrics: &Arc<Metrics>,
) -> Result<(Arc<Library>, NamedPipelines), String> {
    let lib = Arc::new(Library::with_dir(dir, required)?);
    let named = build_named(&lib, metrics)?;
    Ok((lib, named))
}

/// Builds every pipeline of `lib`, by name; errors name the pipeline's file.
pub fn build_named(lib: &Arc<Library>, metrics: &Arc<Metrics>) -> Result<NamedPipelines, String> {
    let mut out = Vec::new();
    for (name, named) in lib.iter() {
        let mut ctx = BuildCtx::with_pipelines(metrics.clone(), lib.clone());
        ctx.within.push(name.to_string());
        let p = stages::build_with(&named.stages, &ctx)
            .map_err(|e| format!("{}: {e}", named.origin))?;
        out.push((name.to_string(), p));
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
