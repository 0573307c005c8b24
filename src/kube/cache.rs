//! The pods this node's watches have seen, with only what tailtrace needs.
//!
//! Owns: [`PodCache`] (per watch source, by pod UID) and [`PodInfo`] (a pod
//! reduced to its identity, labels, annotations, containers, controller and
//! its `kubernetes_sd` targets — the `__meta_kubernetes_*` label sets).
//!
//! Design: the watch tasks write (upsert, delete, replace the whole set after
//! a relist); the target manager reads snapshots. A deleted pod is kept for
//! [`DELETED_GRACE`] so that the last lines of its files — read after the
//! pod is gone, which is common for short jobs — still get its labels. Every
//! change bumps a version and wakes the target manager.
//!
//! Must never: hold whole API objects (memory on a busy node), or forget a
//! deleted pod before its grace period ends.

use super::meta::pod_targets;
use k8s_openapi::api::core::v1::Pod;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How long a deleted pod's metadata stays after its deletion.
pub const DELETED_GRACE: Duration = Duration::from_secs(300);

/// A pod, reduced to what labels and targets need.
#[derive(Debug, Clone, PartialEq)]
pub struct PodInfo {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub node_name: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// Container names (regular, then init).
    pub containers: Vec<String>,
    /// `(kind, name)` of the controlling owner.
    pub controller: Option<(String, String)>,
    /// Its `kubernetes_sd` role-pod targets.
    pub targets: Vec<BTreeMap<String, String>>,
}

impl PodInfo {
    /// Reduces an API object; `None` without a UID.
    pub fn from_pod(pod: &Pod) -> Option<PodInfo> {
        let md = &pod.metadata;
        let uid = md.uid.clone().filter(|u| !u.is_empty())?;
        let spec = pod.spec.as_ref();
        let mut containers: Vec<String> = spec
            .map(|s| s.containers.iter().map(|c| c.name.clone()).collect())
            .unwrap_or_default();
        if let Some(init) = spec.and_then(|s| s.init_containers.as_ref()) {
            containers.extend(init.iter().map(|c| c.name.clone()));
        }
        let controller = md
            .owner_references
            .as_ref()
            .and_then(|o| o.iter().find(|r| r.controller == Some(true)))
            .map(|r| (r.kind.clone(), r.name.clone()));
        Some(PodInfo {
            uid,
            namespace: md.namespace.clone().unwrap_or_default(),
            name: md.name.clone().unwrap_or_default(),
            node_name: spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
            labels: md.labels.clone().unwrap_or_default(),
            annotations: md.annotations.clone().unwrap_or_default(),
            containers,
            controller,
            targets: pod_targets(pod),
        })
    }
}

/// A cached pod and, once deleted, when.
#[derive(Debug, Clone)]
pub struct Cached {
    pub info: Arc<PodInfo>,
    pub deleted: Option<Instant>,
}

#[derive(Default)]
struct Inner {
    /// Source (watch) → UID → pod.
    sources: HashMap<usize, HashMap<String, Cached>>,
    /// Sources whose first full list arrived.
    synced: HashMap<usize, bool>,
}

/// The pod cache. See the module docs.
#[derive(Default)]
pub struct PodCache {
    inner: Mutex<Inner>,
    version: AtomicU64,
    changed: Notify,
}

impl PodCache {
    pub fn new() -> Arc<PodCache> {
        Arc::new(PodCache::default())
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bump(&self) {
        self.version.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_one();
    }

    /// Registers a source that has not listed yet.
    pub fn add_source(&self, source: usize) {
        let mut g = self.lock();
        g.sources.entry(source).or_default();
        g.synced.entry(source).or_insert(false);
    }

    /// A pod was added or changed.
    pub fn upsert(&self, source: usize, info: PodInfo) {
        let mut g = self.lock();
        let m = g.sources.entry(source).or_default();
        let same = m
            .get(&info.uid)
            .is_some_and(|c| c.deleted.is_none() && *c.info == info);
        if same {
            return;
        }
        m.insert(
            info.uid.clone(),
            Cached {
                info: Arc::new(info),
                deleted: None,
            },
        );
        drop(g);
        self.bump();
    }

    /// A pod was deleted: kept for [`DELETED_GRACE`].
    pub fn delete(&self, source: usize, uid: &str, now: Instant) {
        let mut g = self.lock();
        if let Some(c) = g.sources.entry(source).or_default().get_mut(uid) {
            if c.deleted.is_none() {
                c.deleted = Some(now);
                drop(g);
                self.bump();
            }
        }
    }

    /// A full list of the source's pods (after a start or a relist): pods
    /// not in it are treated as deleted.
    pub fn replace(&self, source: usize, pods: Vec<PodInfo>, now: Instant) {
        let mut g = self.lock();
        let m = g.sources.entry(source).or_default();
        let mut next: HashMap<String, Cached> = HashMap::with_capacity(pods.len());
        for p in pods {
            next.insert(
                p.uid.clone(),
                Cached {
                    info: Arc::new(p),
                    deleted: None,
                },
            );
        }
        for (uid, mut c) in m.drain() {
            if let std::collections::hash_map::Entry::Vacant(v) = next.entry(uid) {
                c.deleted.get_or_insert(now);
                v.insert(c);
            }
        }
        *m = next;
        g.synced.insert(source, true);
        drop(g);
        self.bump();
    }

    /// Forgets deleted pods past their grace. True if any went.
    pub fn expire(&self, now: Instant) -> bool {
        let mut g = self.lock();
        let mut gone = false;
        for m in g.sources.values_mut() {
            let before = m.len();
            m.retain(|_, c| {
                c.deleted
                    .is_none_or(|d| now.saturating_duration_since(d) < DELETED_GRACE)
            });
            gone |= m.len() != before;
        }
        drop(g);
        if gone {
            self.bump();
        }
        gone
    }

    /// The pods of `sources` (a pod seen by several, once).
    pub fn pods(&self, sources: &[usize]) -> Vec<Cached> {
        let g = self.lock();
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for s in sources {
            if let Some(m) = g.sources.get(s) {
                for (uid, c) in m {
                    if seen.insert(uid.clone()) {
                        out.push(c.clone());
                    }
                }
            }
        }
        out.sort_by(|a, b| a.info.uid.cmp(&b.info.uid));
        out
    }

    /// The pod with `uid` in any of `sources`.
    pub fn pod(&self, sources: &[usize], uid: &str) -> Option<Cached> {
        let g = self.lock();
        sources
            .iter()
            .find_map(|s| g.sources.get(s).and_then(|m| m.get(uid)).cloned())
    }

    /// True once every one of `sources` has listed.
    pub fn synced(&self, sources: &[usize]) -> bool {
        let g = self.lock();
        sources
            .iter()
            .all(|s| g.synced.get(s).copied().unwrap_or(false))
    }

    /// A number that changes with every change.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::SeqCst)
    }

    /// Waits for the next change.
    pub async fn changed(&self) {
        self.changed.notified().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(uid: &str) -> PodInfo {
        PodInfo {
            uid: uid.into(),
            namespace: "ns".into(),
            name: format!("p-{uid}"),
            node_name: "n1".into(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            containers: vec!["app".into()],
            controller: None,
            targets: Vec::new(),
        }
    }

    #[test]
    fn deleted_pods_stay_for_their_grace_and_relists_mark_the_missing_deleted() {
        let c = PodCache::new();
        let t0 = Instant::now();
        c.add_source(0);
        assert!(!c.synced(&[0]));
        c.replace(0, vec![pod("a"), pod("b")], t0);
        assert!(c.synced(&[0]));
        c.delete(0, "a", t0);
        let v = c.version();
        assert_eq!(c.pods(&[0]).len(), 2, "a deleted pod is still there");
        assert!(c.pod(&[0], "a").unwrap().deleted.is_some());
        // A relist without b: b is deleted too; c is new.
        c.replace(0, vec![pod("c")], t0 + Duration::from_secs(1));
        assert!(c.version() > v);
        assert!(c.pod(&[0], "b").unwrap().deleted.is_some());
        assert!(!c.expire(t0 + DELETED_GRACE - Duration::from_secs(1)));
        assert!(c.expire(t0 + DELETED_GRACE + Duration::from_secs(2)));
        let left: Vec<String> = c.pods(&[0]).iter().map(|p| p.info.uid.clone()).collect();
        assert_eq!(left, vec!["c".to_string()]);
        // An unchanged upsert does not wake anyone.
        let v = c.version();
        c.upsert(0, pod("c"));
        assert_eq!(c.version(), v);
    }
}
