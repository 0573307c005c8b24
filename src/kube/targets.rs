//! From scrape configs to file targets, and keeping them current as pods
//! come and go.
//!
//! Owns: [`JobTargets`] (one scrape config's target rules: its static
//! configs, its `kubernetes_sd_configs` or `kubernetes_pods` watch sources,
//! the native rules of `kubernetes_pods` ([`NativeRules`]) and its
//! `relabel_configs`), [`JobTargets::compute`] (Promtail's
//! `targetSyncer.sync`, step for step), and [`spawn_target_manager`], which
//! recomputes the targets of every dynamic job when the pod cache changes
//! and hands changed sets to the tailer ([`TargetUpdate`]).
//!
//! Per discovered target, as Promtail does: the group's labels merged with
//! the target's (static targets get `__address__`, `localhost` by default;
//! a `kubernetes_pods` job's pods give [`NativeRules`] candidates, which
//! bring their structured metadata and named pipeline along, and skip
//! containers excluded by annotation, counted as `excluded` in the debug
//! log only);
//! `relabel_configs` (a dropped target is counted,
//! `promtail_targets_failed_total{reason="empty_labels"}`); a `__host__`
//! naming another node drops it (`wrong_host`); no `__path__` drops it
//! (`no_path`); then every `__`-label goes (tailtrace keeps `__tenant_id__`,
//! which picks the tenant — an extension: Promtail drops it too) and so do
//! empty values; identical targets count once (`exists`).
//!
//! Short-lived pods and races: a pod's directory under `pod_logs_path` whose
//! pod the API has not described after `metadata_wait` (the watch lags, the
//! API is down, the pod came and went between two lists) becomes a target
//! anyway, with the labels its path gives — namespace, pod name, UID and
//! container as `__meta_kubernetes_*` labels, through the same relabel rules
//! (a `kubernetes_pods` job: the native labels these give) — and is counted
//! (`tailtrace_kubernetes_pods_without_metadata_total`). Only directories
//! the job's watches could have described qualify ([`DirScope`]): of a
//! watched namespace, and none if the watches select by label or field (a
//! path cannot tell whether its pod would match). Until then its files are simply not read yet (they stay on disk, so
//! nothing is held in memory). A deleted pod's targets stay as long as the
//! cache keeps the pod (its grace period), so its last lines keep its labels.
//!
//! Must never: send a target set before a dynamic job's watches listed once
//! and `metadata_wait` passed (an empty first set would look like every pod
//! gone), or let one bad pod stop the others' targets.

use super::cache::{Cached, PodCache};
use super::native::{Candidate, NativeRules};
use super::relabel::Relabeler;
use crate::labels::LabelSet;
use crate::metrics::{labels, Metrics};
use crate::source::{FileTarget, TargetFeed, TargetUpdate};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Labels a target keeps though they start with `__`.
const KEEP_RESERVED: &[&str] = &["__tenant_id__"];

/// Where a path-only pod target comes from: its log directory.
#[derive(Clone, Debug)]
pub(super) struct PodDir {
    pub dir: PathBuf,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub containers: Vec<String>,
}

/// Which pod directories may become path-only targets of a job. See the
/// module docs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum DirScope {
    /// A watch covers every namespace, without selectors.
    #[default]
    All,
    /// Watches without selectors cover these namespaces only (none: every
    /// watch selects by label or field, so no path-only targets).
    Namespaces(Vec<String>),
}

impl DirScope {
    fn allows(&self, namespace: &str) -> bool {
        match self {
            DirScope::All => true,
            DirScope::Namespaces(n) => n.iter().any(|n| n == namespace),
        }
    }
}

/// One scrape config's target rules. See the module docs.
pub struct JobTargets {
    pub job: usize,
    pub name: String,
    /// Static targets: label maps with `__address__` and the group's labels.
    statics: Vec<BTreeMap<String, String>>,
    relabel: Relabeler,
    /// `kubernetes_pods`: pods become native candidates (then `relabel`).
    native: Option<NativeRules>,
    /// Pod cache sources (watches) of its `kubernetes_sd_configs`.
    pub sources: Vec<usize>,
    /// Where pod log directories are (for path-only targets).
    pod_logs_path: PathBuf,
    /// Which of them may become path-only targets.
    dir_scope: DirScope,
    metadata_wait: Duration,
    node: String,
    /// `kubernetes_sd_configs` pods' lines get `pod_uid` structured metadata
    /// (`trace_context.pod_uid`).
    pod_uid: bool,
}

/// What one computation dropped, by Promtail's reason.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Dropped {
    pub empty_labels: u64,
    pub wrong_host: u64,
    pub no_path: u64,
    pub exists: u64,
    /// Containers skipped by a `tailtrace.io/exclude*` annotation (not a
    /// Promtail reason: not counted in the metric).
    pub excluded: u64,
}

impl JobTargets {
    /// `statics`: each static config's `(targets, labels)`.
    pub fn new(
        job: usize,
        name: &str,
        statics: &[(Vec<String>, BTreeMap<String, String>)],
        relabel: Relabeler,
        sources: Vec<usize>,
        node: &str,
    ) -> JobTargets {
        let mut st = Vec::new();
        for (targets, group) in statics {
            let addrs: Vec<String> = if targets.is_empty() {
                vec!["localhost".to_string()]
            } else {
                targets.clone()
            };
            for a in addrs {
                let mut m = group.clone();
                m.insert("__address__".to_string(), a);
                st.push(m);
            }
        }
        JobTargets {
            job,
            name: name.to_string(),
            statics: st,
            relabel,
            native: None,
            sources,
            pod_logs_path: PathBuf::from("/var/log/pods"),
            dir_scope: DirScope::All,
            metadata_wait: Duration::from_secs(30),
            node: node.to_string(),
            pod_uid: false,
        }
    }

    /// Puts `pod_uid` structured metadata on the lines of API-discovered
    /// pods (the native form always does).
    pub fn with_pod_uid(mut self, on: bool) -> JobTargets {
        self.pod_uid = on;
        self
    }

    /// Sets where pod log directories are and how long one waits for its
    /// pod's metadata.
    pub fn with_pod_logs(mut self, path: &Path, wait: Duration) -> JobTargets {
        self.pod_logs_path = path.to_path_buf();
        self.metadata_wait = wait;
        self
    }

    /// Limits which pod directories may become path-only targets.
    pub fn with_dir_scope(mut self, scope: DirScope) -> JobTargets {
        self.dir_scope = scope;
        self
    }

    /// Makes pods native candidates (`kubernetes_pods`); pod directories
    /// are then looked for under the rules' `pod_logs_path`.
    pub fn with_native(mut self, rules: NativeRules) -> JobTargets {
        self.pod_logs_path = rules.pod_logs_path().to_path_buf();
        self.native = Some(rules);
        self
    }

    /// True if the job's targets come from the API (they change).
    pub fn is_dynamic(&self) -> bool {
        !self.sources.is_empty()
    }

    /// The job's file targets: its static targets, its pods' targets, and
    /// `path_only` pod directories, through the relabel rules.
    fn compute_from(
        &self,
        pods: &[Cached],
        path_only: &[PodDir],
        dropped: &mut Dropped,
    ) -> Vec<FileTarget> {
        let mut out = Vec::new();
        let mut seen: HashSet<(String, Option<String>, LabelSet)> = HashSet::new();
        let mut take = |c: Candidate, dropped: &mut Dropped| {
            let mut l = c.labels;
            if !self.relabel.apply(&mut l) {
                dropped.empty_labels += 1;
                return;
            }
            if l.get("__host__")
                .is_some_and(|h| !h.is_empty() && *h != self.node)
            {
                dropped.wrong_host += 1;
                return;
            }
            let Some(path) = l.get("__path__").filter(|p| !p.is_empty()).cloned() else {
                dropped.no_path += 1;
                return;
            };
            let exclude = l.get("__path_exclude__").filter(|p| !p.is_empty()).cloned();
            l.retain(|k, v| {
                !v.is_empty() && (!k.starts_with("__") || KEEP_RESERVED.contains(&k.as_str()))
            });
            let labels = LabelSet::new(l.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            if !seen.insert((path.clone(), exclude.clone(), labels.clone())) {
                dropped.exists += 1;
                return;
            }
            out.push(FileTarget {
                include: path,
                exclude,
                labels,
                metadata: crate::entry::meta_pairs(&c.metadata),
                pipeline: c.pipeline,
            });
        };
        let plain = |labels: BTreeMap<String, String>| Candidate {
            labels,
            metadata: Vec::new(),
            pipeline: None,
        };
        for s in &self.statics {
            take(plain(s.clone()), dropped);
        }
        if let Some(n) = &self.native {
            for p in pods {
                for c in n.pod(&p.info, &self.node, &mut dropped.excluded) {
                    take(c, dropped);
                }
            }
            for d in path_only {
                for c in n.dir(d, &self.node) {
                    take(c, dropped);
                }
            }
            return out;
        }
        let with_uid = |labels: BTreeMap<String, String>| {
            let uid = labels
                .get("__meta_kubernetes_pod_uid")
                .filter(|u| self.pod_uid && !u.is_empty())
                .map(|u| vec![("pod_uid".to_string(), u.clone())]);
            Candidate {
                metadata: uid.unwrap_or_default(),
                ..plain(labels)
            }
        };
        for p in pods {
            for t in &p.info.targets {
                take(with_uid(t.clone()), dropped);
            }
        }
        for d in path_only {
            for c in &d.containers {
                let mut m = BTreeMap::new();
                m.insert("__meta_kubernetes_namespace".into(), d.namespace.clone());
                m.insert("__meta_kubernetes_pod_name".into(), d.name.clone());
                m.insert("__meta_kubernetes_pod_uid".into(), d.uid.clone());
                m.insert("__meta_kubernetes_pod_container_name".into(), c.clone());
                m.insert("__meta_kubernetes_pod_node_name".into(), self.node.clone());
                take(with_uid(m), dropped);
            }
        }
        out
    }

    /// The targets now, from `cache`; `dirs` tracks pod directories waiting
    /// for their metadata.
    pub fn compute(
        &self,
        cache: &PodCache,
        dirs: &mut DirWatch,
        now: Instant,
        metrics: &Metrics,
    ) -> (Vec<FileTarget>, Dropped) {
        let pods = cache.pods(&self.sources);
        let mut dropped = Dropped::default();
        let path_only = if self.is_dynamic() {
            dirs.unknown(
                &self.pod_logs_path,
                &self.dir_scope,
                &pods,
                self.metadata_wait,
                now,
                metrics,
            )
        } else {
            Vec::new()
        };
        let t = self.compute_from(&pods, &path_only, &mut dropped);
        (t, dropped)
    }
}

/// Pod log directories seen without a pod in the cache, and since when.
#[derive(Default)]
pub struct DirWatch {
    first_seen: HashMap<PathBuf, Instant>,
    counted: HashSet<PathBuf>,
}

impl DirWatch {
    /// Directories under `root` in `scope` whose pod has been unknown for
    /// `wait`.
    fn unknown(
        &mut self,
        root: &Path,
        scope: &DirScope,
        pods: &[Cached],
        wait: Duration,
        now: Instant,
        metrics: &Metrics,
    ) -> Vec<PodDir> {
        let known: HashSet<&str> = pods
            .iter()
            .flat_map(|p| {
                std::iter::once(p.info.uid.as_str()).chain(
                    p.info
                        .annotations
                        .get("kubernetes.io/config.hash")
                        .map(String::as_str),
                )
            })
            .collect();
        let mut out = Vec::new();
        let Ok(rd) = std::fs::read_dir(root) else {
            return out;
        };
        let mut present = HashSet::new();
        for ent in rd.flatten() {
            let name = ent.file_name().to_string_lossy().into_owned();
            // `<namespace>_<pod>_<uid>` (or the old `<uid>`).
            let (namespace, pod, uid) = match (name.find('_'), name.rfind('_')) {
                (Some(a), Some(b)) if a < b => (
                    name[..a].to_string(),
                    name[a + 1..b].to_string(),
                    name[b + 1..].to_string(),
                ),
                _ => (String::new(), String::new(), name.clone()),
            };
            let path = ent.path();
            if !scope.allows(&namespace) {
                continue;
            }
            present.insert(path.clone());
            if known.contains(uid.as_str()) {
                self.first_seen.remove(&path);
                continue;
            }
            let since = *self.first_seen.entry(path.clone()).or_insert(now);
            if now.saturating_duration_since(since) < wait {
                continue;
            }
            let containers: Vec<String> = std::fs::read_dir(&path)
                .map(|rd| {
                    rd.flatten()
                        .filter(|e| e.path().is_dir())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            if self.counted.insert(path.clone()) {
                metrics.kubernetes_pods_without_metadata_total.inc();
                tracing::warn!(dir = %path.display(), waited = ?wait,
                    "kubernetes: no metadata for this pod from the API; shipping its logs with the labels its path gives");
            }
            out.push(PodDir {
                dir: path,
                namespace,
                name: pod,
                uid,
                containers,
            });
        }
        self.first_seen.retain(|p, _| present.contains(p));
        self.counted.retain(|p| present.contains(p));
        out.sort_by(|a, b| a.uid.cmp(&b.uid));
        out
    }
}

/// Counts what a computation dropped under Promtail's metric.
pub fn count_dropped(metrics: &Metrics, d: &Dropped) {
    for (reason, n) in [
        ("empty_labels", d.empty_labels),
        ("wrong_host", d.wrong_host),
        ("no_path", d.no_path),
        ("exists", d.exists),
    ] {
        if n > 0 {
            metrics
                .targets_failed_total
                .get_or_create(&labels(&[("reason", reason)]))
                .inc_by(n);
        }
    }
}

/// Keeps the dynamic jobs' targets current: recomputes them when the pod
/// cache changes (at most every `min_interval`) and at least every second
/// (deleted pods expire, path-only directories come due), and sends the
/// sets that changed. The first set of a job goes once its watches listed.
pub fn spawn_target_manager(
    jobs: Vec<JobTargets>,
    cache: Arc<PodCache>,
    feed: TargetFeed,
    metrics: Arc<Metrics>,
) -> tokio::task::JoinHandle<()> {
    let min_interval = Duration::from_millis(200);
    tokio::spawn(async move {
        let started = Instant::now();
        let mut last: HashMap<usize, Vec<FileTarget>> = HashMap::new();
        let mut dirs: HashMap<usize, DirWatch> = HashMap::new();
        loop {
            tokio::select! {
                _ = cache.changed() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            tokio::time::sleep(min_interval).await;
            let now = Instant::now();
            cache.expire(now);
            metrics.kubernetes_pods.set(
                cache
                    .pods(
                        &jobs
                            .iter()
                            .flat_map(|j| j.sources.clone())
                            .collect::<Vec<_>>(),
                    )
                    .len() as i64,
            );
            for j in jobs.iter().filter(|j| j.is_dynamic()) {
                let first = !last.contains_key(&j.job);
                let ready = cache.synced(&j.sources)
                    || now.saturating_duration_since(started) >= j.metadata_wait;
                if first && !ready {
                    continue;
                }
                let (targets, dropped) =
                    j.compute(&cache, dirs.entry(j.job).or_default(), now, &metrics);
                let same = last.get(&j.job).is_some_and(|l| same_targets(l, &targets));
                if same {
                    continue;
                }
                count_dropped(&metrics, &dropped);
                tracing::debug!(job = %j.name, targets = targets.len(), ?dropped, "kubernetes: targets changed");
                last.insert(j.job, targets.clone());
                if !feed.send(TargetUpdate {
                    job: j.job,
                    targets,
                }) {
                    return; // the tailer is gone
                }
            }
        }
    })
}

fn same_targets(a: &[FileTarget], b: &[FileTarget]) -> bool {
    a == b
}
