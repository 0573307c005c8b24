//! From the configuration to running watches and target sets.
//!
//! Owns: [`plan`] (per scrape config: its [`JobTargets`] — static configs
//! and `kubernetes_sd_configs` role `pod` sources, or a `kubernetes_pods`
//! source with its [`NativeRules`], through its `relabel_configs` — and the
//! distinct pod watches they need) and
//! [`Plan::start`] (one API client per distinct access, one watch per
//! distinct [`WatchSpec`], the target manager feeding the tailer, and
//! readiness once every watch listed or `metadata_wait` passed).
//!
//! Watches: every `kubernetes_sd_configs` entry of role `pod` watches the
//! pods of this node only (`spec.nodeName=<node>`, plus its `selectors` of
//! role `pod`), once per namespace it names (`namespaces.names`, and the
//! agent's own with `own_namespace`), or across all namespaces. Identical
//! watches are shared between jobs. Other roles yield no file targets and
//! are reported at start-up (`unhonoured.rs`). `kubernetes_pods` watches
//! the same way (its keys are those of a role `pod` entry).
//!
//! Must never: make a job's targets depend on a watch of another access or
//! selector, or fail the agent because the API is unreachable (the watches
//! retry; files already known keep being tailed).

use super::cache::PodCache;
use super::native::NativeRules;
use super::relabel::Relabeler;
use super::targets::{spawn_target_manager, DirScope, JobTargets};
use super::watch::{client, spawn_watch, WatchSpec};
use crate::config::kubernetes::{ApiAccess, KubernetesSdConfig};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::source::{FileTarget, TargetFeed};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where the agent's own namespace is written in a pod.
const SA_NAMESPACE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// One scrape config's targets: fixed, or from the API.
pub enum JobPlan {
    /// No API source: its targets, computed once.
    Static(Vec<FileTarget>),
    /// Targets from the API: they arrive as updates.
    Dynamic,
}

/// What [`plan`] worked out. See the module docs.
pub struct Plan {
    /// Per scrape config (same order).
    pub jobs: Vec<JobPlan>,
    dynamic: Vec<JobTargets>,
    /// Distinct watches: `(access, spec)`; a job's sources index this.
    watches: Vec<(ApiAccess, WatchSpec)>,
    pub node: String,
    metadata_wait: Duration,
}

/// Works out every job's target rules and the watches they need. Errors
/// name the scrape config and the key.
pub fn plan(cfg: &Config, node: &str, metrics: &Metrics) -> Result<Plan, String> {
    let opts = &cfg.kubernetes;
    let mut out = Plan {
        jobs: Vec::new(),
        dynamic: Vec::new(),
        watches: Vec::new(),
        node: node.to_string(),
        metadata_wait: opts.metadata_wait,
    };
    let cache = PodCache::new();
    for (i, sc) in cfg.scrape_configs.iter().enumerate() {
        let relabel = Relabeler::new(&sc.relabel_configs).map_err(|e| {
            format!(
                "scrape_configs[{i}] ({}): relabel_configs: {e}",
                sc.job_name
            )
        })?;
        let statics: Vec<(Vec<String>, BTreeMap<String, String>)> = sc
            .static_configs
            .iter()
            .map(|s| (s.targets.clone(), s.labels.clone()))
            .collect();
        let mut sources = Vec::new();
        let sds: Vec<KubernetesSdConfig> = sc
            .kubernetes_sd_configs
            .iter()
            .filter(|s| s.role == "pod")
            .cloned()
            .chain(sc.kubernetes_pods.iter().map(|k| k.as_sd()))
            .collect();
        for sd in &sds {
            for spec in watch_specs(sd, node) {
                let access = sd.access();
                let at = out
                    .watches
                    .iter()
                    .position(|(a, s)| *a == access && *s == spec);
                let idx = at.unwrap_or_else(|| {
                    out.watches.push((access, spec));
                    out.watches.len() - 1
                });
                if !sources.contains(&idx) {
                    sources.push(idx);
                }
            }
        }
        let scope = dir_scope(
            sources
                .iter()
                .filter_map(|&s| out.watches.get(s))
                .map(|w| &w.1),
            node,
        );
        let mut jt = JobTargets::new(i, &sc.job_name, &statics, relabel, sources, node)
            .with_pod_logs(&opts.pod_logs_path, opts.metadata_wait)
            .with_dir_scope(scope)
            .with_pod_uid(cfg.trace_context.pod_uid);
        if let Some(kp) = &sc.kubernetes_pods {
            jt = jt.with_native(NativeRules::new(kp, &opts.pod_logs_path));
        }
        if jt.is_dynamic() {
            out.jobs.push(JobPlan::Dynamic);
            out.dynamic.push(jt);
        } else {
            let mut dirs = Default::default();
            let (targets, dropped) = jt.compute(&cache, &mut dirs, Instant::now(), metrics);
            super::targets::count_dropped(metrics, &dropped);
            out.jobs.push(JobPlan::Static(targets));
        }
    }
    Ok(out)
}

/// Which pod directories a job's watches could describe: those of the
/// namespaces its watches without a label or field selector (beyond the
/// node's) cover — a path cannot tell whether its pod would match one.
fn dir_scope<'a>(specs: impl Iterator<Item = &'a WatchSpec>, node: &str) -> DirScope {
    let own = format!("spec.nodeName={node}");
    let mut names = Vec::new();
    for s in specs.filter(|s| s.label_selector.is_none() && s.field_selector == own) {
        match &s.namespace {
            Some(n) => names.push(n.clone()),
            None => return DirScope::All,
        }
    }
    DirScope::Namespaces(names)
}

/// The watches one `kubernetes_sd_configs` entry needs.
fn watch_specs(sd: &KubernetesSdConfig, node: &str) -> Vec<WatchSpec> {
    let mut fields = vec![format!("spec.nodeName={node}")];
    let mut labels = Vec::new();
    for s in sd.selectors.iter().filter(|s| s.role == "pod") {
        if let Some(f) = s.field.as_ref().filter(|f| !f.is_empty()) {
            fields.push(f.clone());
        }
        if let Some(l) = s.label.as_ref().filter(|l| !l.is_empty()) {
            labels.push(l.clone());
        }
    }
    let field_selector = fields.join(",");
    let label_selector = (!labels.is_empty()).then(|| labels.join(","));
    let mut namespaces: Vec<String> = Vec::new();
    if let Some(ns) = &sd.namespaces {
        namespaces.extend(ns.names.iter().filter(|n| !n.is_empty()).cloned());
        if ns.own_namespace {
            match std::fs::read_to_string(SA_NAMESPACE) {
                Ok(n) if !n.trim().is_empty() => namespaces.push(n.trim().to_string()),
                _ => tracing::warn!(
                    file = SA_NAMESPACE,
                    "kubernetes_sd_configs.namespaces.own_namespace: the agent's namespace is unknown (not in a pod?)"
                ),
            }
        }
    }
    namespaces.sort();
    namespaces.dedup();
    let spec = |namespace| WatchSpec {
        namespace,
        label_selector: label_selector.clone(),
        field_selector: field_selector.clone(),
    };
    if namespaces.is_empty() {
        vec![spec(None)]
    } else {
        namespaces.into_iter().map(|n| spec(Some(n))).collect()
    }
}

impl Plan {
    /// True if some job's targets come from the API.
    pub fn is_dynamic(&self) -> bool {
        !self.dynamic.is_empty()
    }

    /// Starts the watches and the target manager (on the current tokio
    /// runtime). `ready` is set once every watch listed, or after
    /// `metadata_wait` (the API may be down: files are shipped anyway).
    /// Errors: a client that cannot be built (a bad kubeconfig, no
    /// in-cluster configuration), naming the key.
    pub async fn start(
        self,
        feed: TargetFeed,
        metrics: Arc<Metrics>,
        ready: Arc<AtomicBool>,
    ) -> Result<Vec<tokio::task::JoinHandle<()>>, String> {
        let cache = PodCache::new();
        let mut tasks = Vec::new();
        let mut clients: Vec<(&ApiAccess, ::kube::Client)> = Vec::new();
        tracing::info!(node = %self.node, watches = self.watches.len(),
            "kubernetes: watching this node's pods");
        for (source, (access, spec)) in self.watches.iter().enumerate() {
            let c = match clients.iter().find(|(a, _)| *a == access) {
                Some((_, c)) => c.clone(),
                None => {
                    let c = client(access).await?;
                    clients.push((access, c.clone()));
                    c
                }
            };
            tasks.push(spawn_watch(
                c,
                spec.clone(),
                source,
                cache.clone(),
                metrics.clone(),
            ));
        }
        let sources: Vec<usize> = (0..self.watches.len()).collect();
        let wait = self.metadata_wait;
        {
            let cache = cache.clone();
            tasks.push(tokio::spawn(async move {
                let started = Instant::now();
                while !cache.synced(&sources) && started.elapsed() < wait {
                    tokio::select! {
                        _ = cache.changed() => {}
                        _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                    }
                }
                if !cache.synced(&sources) {
                    tracing::warn!(waited = ?wait,
                        "kubernetes: pods not listed yet; ready anyway (pod directories are shipped with the labels their paths give)");
                }
                ready.store(true, Ordering::Relaxed);
            }));
        }
        tasks.push(spawn_target_manager(self.dynamic, cache, feed, metrics));
        Ok(tasks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_only_scope_follows_the_watches_without_selectors() {
        let w = |ns: Option<&str>, label: Option<&str>, field: &str| WatchSpec {
            namespace: ns.map(str::to_string),
            label_selector: label.map(str::to_string),
            field_selector: field.to_string(),
        };
        let own = "spec.nodeName=n1";
        let all = w(None, None, own);
        let shop = w(Some("shop"), None, own);
        let labelled = w(None, Some("tier=web"), own);
        let fielded = w(None, None, "spec.nodeName=n1,status.phase=Running");
        let scope = |v: &[&WatchSpec]| dir_scope(v.iter().copied(), "n1");
        assert_eq!(scope(&[&all]), DirScope::All);
        assert_eq!(scope(&[&shop]), DirScope::Namespaces(vec!["shop".into()]));
        assert_eq!(scope(&[&labelled]), DirScope::Namespaces(Vec::new()));
        assert_eq!(scope(&[&fielded]), DirScope::Namespaces(Vec::new()));
        assert_eq!(
            scope(&[&labelled, &shop]),
            DirScope::Namespaces(vec!["shop".into()])
        );
        assert_eq!(scope(&[&labelled, &all]), DirScope::All);
    }
}
