//! The tailer's target table: the compiled globs of every job, and how a
//! new target set (from the Kubernetes API, see `kube/targets.rs`) is
//! applied while files are being read.
//!
//! Targets live in slots; a file records its slot ([`Tailed::target`]). A
//! new set for a job:
//! - keeps the slot of every target in both the old and the new set (same
//!   glob, exclude, labels, metadata and pipeline): its files go on
//!   untouched, at their offsets;
//! - adds the new ones (reusing freed slots), and looks for their files at
//!   once (a rescan);
//! - retires the removed ones: a retired target matches no new file. Each of
//!   its files moves to the first live target that matches its path (the
//!   pod's labels changed: its lines go on in the new stream, from where
//!   they were) or, if none does, is read to its end and then *released*:
//!   closed with its position kept, not forgotten, so if the target comes
//!   back (a label flips back, a relabel rule matches again) reading
//!   resumes where it stopped. A retired slot is freed once no file refers
//!   to it.
//!
//! While a dynamic job has not had its first set (the API not listed yet),
//! saved positions that no target claims are kept as they are; afterwards a
//! saved position whose file is still at its path (same identity) is kept
//! too, since its target may appear later (a pod whose metadata lags).
//!
//! Must never: drop a file with unread data because its target went, or
//! forget a saved position while a dynamic job has not had its first set.

use super::*;

/// Every target of every job, in slots. See the module docs.
#[derive(Default)]
pub(super) struct Targets {
    slots: Vec<Option<Target>>,
    free: Vec<usize>,
    /// The live targets indexed for [`find`](Self::find); `None` after a
    /// change (rebuilt on the next lookup).
    index: Option<Index>,
}

/// Live targets by what a path's first component below their glob's base
/// must be. With a target per container (`/var/log/pods/*<uid>/<c>/*.log`)
/// a lookup checks the pod's targets only, not every target: at start-up
/// and after a restart every file is looked up, which was quadratic.
#[derive(Default)]
struct Index {
    bases: HashMap<PathBuf, Base>,
    /// Targets not indexed (no fixed base, or a first component with
    /// other wildcards): always checked.
    other: Vec<usize>,
}

#[derive(Default)]
struct Base {
    /// Every target of this base (a new directory at or above it).
    all: Vec<usize>,
    exact: HashMap<Vec<u8>, Vec<usize>>,
    /// Suffix length → suffix → targets.
    suffix: HashMap<usize, HashMap<Vec<u8>, Vec<usize>>>,
}

impl Index {
    fn build(slots: &[Option<Target>]) -> Index {
        use crate::source::expand::FirstKey;
        let mut ix = Index::default();
        for (i, t) in slots.iter().enumerate() {
            let Some(t) = t.as_ref().filter(|t| !t.retired) else {
                continue;
            };
            let Some(w) = t.walk() else {
                ix.other.push(i);
                continue;
            };
            match w.first_key() {
                FirstKey::Exact(x) => {
                    let b = ix.bases.entry(w.base().to_path_buf()).or_default();
                    b.all.push(i);
                    b.exact.entry(x.to_vec()).or_default().push(i);
                }
                FirstKey::Suffix(x) => {
                    let b = ix.bases.entry(w.base().to_path_buf()).or_default();
                    b.all.push(i);
                    let by_len = b.suffix.entry(x.len()).or_default();
                    by_len.entry(x.to_vec()).or_default().push(i);
                }
                FirstKey::Other => ix.other.push(i),
            }
        }
        ix
    }

    /// Slots of the targets that may match `path`, in slot order.
    fn candidates(&self, path: &Path, out: &mut Vec<usize>) {
        out.clear();
        out.extend_from_slice(&self.other);
        self.by_first(path, out);
        out.sort_unstable();
        out.dedup();
    }

    /// Slots of the targets whose globs may match something under the
    /// directory `dir` (or `dir` itself), in slot order.
    fn under(&self, dir: &Path, out: &mut Vec<usize>) {
        out.extend_from_slice(&self.other);
        for (base, b) in &self.bases {
            if base.starts_with(dir) {
                out.extend_from_slice(&b.all);
            }
        }
        self.by_first(dir, out);
    }

    /// Appends the indexed targets whose glob's first component below
    /// their base matches `path`'s component there.
    fn by_first(&self, path: &Path, out: &mut Vec<usize>) {
        for base in path.ancestors().skip(1) {
            let Some(b) = self.bases.get(base) else {
                continue;
            };
            let Some(std::path::Component::Normal(name)) = path
                .strip_prefix(base)
                .ok()
                .and_then(|r| r.components().next())
            else {
                continue;
            };
            let name = name.as_encoded_bytes();
            if let Some(v) = b.exact.get(name) {
                out.extend_from_slice(v);
            }
            for (&len, m) in &b.suffix {
                if let Some(v) = crate::source::expand::tail(name, len).and_then(|t| m.get(t)) {
                    out.extend_from_slice(v);
                }
            }
        }
    }
}

impl Targets {
    pub(super) fn get(&self, ti: usize) -> Option<&Target> {
        self.slots.get(ti).and_then(Option::as_ref)
    }

    /// The first live target (in slot order) whose glob matches `path`.
    pub(super) fn find(&mut self, path: &Path) -> Option<usize> {
        let ix = self.index.get_or_insert_with(|| Index::build(&self.slots));
        let mut cands = Vec::new();
        ix.candidates(path, &mut cands);
        cands.into_iter().find(|&i| {
            self.slots
                .get(i)
                .and_then(Option::as_ref)
                .is_some_and(|t| !t.retired && t.matches(path))
        })
    }

    /// Slots of the live targets whose globs may match something under
    /// one of the directories `dirs` (new ones an event named), in slot
    /// order: a new pod's targets, not every pod's.
    pub(super) fn under(&mut self, dirs: &[&Path]) -> Vec<usize> {
        let ix = self.index.get_or_insert_with(|| Index::build(&self.slots));
        let mut out = Vec::new();
        for d in dirs {
            ix.under(d, &mut out);
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The first live target whose glob matches `path`, every target
    /// checked (what [`find`](Self::find) must agree with).
    #[cfg(test)]
    pub(super) fn find_by_scan(&self, path: &Path) -> Option<usize> {
        self.slots
            .iter()
            .position(|t| t.as_ref().is_some_and(|t| !t.retired && t.matches(path)))
    }

    /// Retires target `ti`: it matches no new file.
    pub(super) fn retire(&mut self, ti: usize) {
        if let Some(Some(t)) = self.slots.get_mut(ti) {
            t.retired = true;
            self.index = None;
        }
    }

    /// Live targets with their slots.
    pub(super) fn live(&self) -> impl Iterator<Item = (usize, &Target)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, t)| t.as_ref().filter(|t| !t.retired).map(|t| (i, t)))
    }

    pub(super) fn insert(&mut self, t: Target) -> usize {
        self.index = None;
        match self.free.pop() {
            Some(i) => {
                self.slots[i] = Some(t);
                i
            }
            None => {
                self.slots.push(Some(t));
                self.slots.len() - 1
            }
        }
    }

    /// Frees retired slots no file refers to.
    fn collect(&mut self, used: &HashSet<usize>) {
        for (i, s) in self.slots.iter_mut().enumerate() {
            if s.as_ref().is_some_and(|t| t.retired) && !used.contains(&i) {
                *s = None;
                self.index = None;
                self.free.push(i);
            }
        }
    }
}

impl Tailer {
    /// Compiles a job's target (the glob, its pipeline resolved).
    pub(super) fn compile(&self, job: usize, t: &FileTarget) -> Result<Target, String> {
        let mut c = Target::new(job, &t.include, t.exclude.as_deref(), t.labels.clone())?;
        c.spec = t.clone();
        if let Some(name) = &t.pipeline {
            c.pipe = self
                .jobs
                .get(job)
                .and_then(|j| j.named.iter().position(|(n, _)| n == name));
            if c.pipe.is_none() {
                tracing::warn!(pipeline = %name, target = %t.include,
                    "no pipeline of this name; the job's own stages apply");
            }
        }
        Ok(c)
    }

    /// Applies the target updates that arrived. Returns true if any did.
    /// The files of new targets are looked for at once: by walking their
    /// globs alone (a new pod's container costs its own directories, not
    /// a rescan of every pod's), or by a full rescan for a job's first set
    /// (saved positions wait to be claimed) and for globs the walk cannot
    /// take.
    pub(super) fn take_updates(&mut self) -> Result<bool, Stopped> {
        let mut any = false;
        let mut added = Vec::new();
        while let Some(Ok(u)) = self.updates.as_ref().map(|r| r.try_recv()) {
            let first = self.unsynced.contains(&u.job);
            let new = self.apply_update(u)?;
            self.rescan_now |= first;
            added.extend(new);
            any = true;
        }
        if !self.rescan_now && !added.is_empty() {
            self.rescan_targets(&added)?;
        }
        Ok(any)
    }

    /// Applies one job's new target set; returns the slots of the targets
    /// it added.
    fn apply_update(&mut self, u: TargetUpdate) -> Result<Vec<usize>, Stopped> {
        let job = u.job;
        let mut wanted: Vec<FileTarget> = u.targets;
        let mut removed = Vec::new();
        let live: Vec<(usize, FileTarget)> = self
            .targets
            .live()
            .filter(|(_, t)| t.job == job)
            .map(|(i, t)| (i, t.spec.clone()))
            .collect();
        // Wanted targets by glob (a Kubernetes job has one per container:
        // matching each live target by a scan would be quadratic).
        let mut by_glob: HashMap<&str, Vec<usize>> = HashMap::new();
        for (k, w) in wanted.iter().enumerate() {
            by_glob.entry(w.include.as_str()).or_default().push(k);
        }
        let mut kept = vec![false; wanted.len()];
        for (i, spec) in live {
            let same = by_glob.get_mut(spec.include.as_str()).and_then(|ks| {
                ks.iter()
                    .position(|&k| wanted[k] == spec)
                    .map(|p| ks.swap_remove(p))
            });
            match same {
                Some(k) => kept[k] = true,
                None => removed.push(i),
            }
        }
        drop(by_glob);
        let mut kept = kept.into_iter();
        wanted.retain(|_| !kept.next().unwrap_or(false));
        let mut added = Vec::with_capacity(wanted.len());
        for t in wanted {
            match self.compile(job, &t) {
                Ok(c) => added.push(self.targets.insert(c)),
                Err(e) => tracing::warn!(error = %e, "target skipped"),
            }
        }
        for &i in &removed {
            self.targets.retire(i);
        }
        if !removed.is_empty() {
            self.reassign(&removed)?;
        }
        if self.unsynced.remove(&job) {
            tracing::debug!(job, "first target set");
        }
        tracing::debug!(
            job,
            added = added.len(),
            removed = removed.len(),
            "targets updated"
        );
        self.collect_targets();
        Ok(added)
    }

    /// Files of the retired targets `removed`: to a live target matching
    /// their path, or marked to be released at their end.
    fn reassign(&mut self, removed: &[usize]) -> Result<(), Stopped> {
        let removed: HashSet<usize> = removed.iter().copied().collect();
        let ids: Vec<FileId> = self
            .files
            .values()
            .filter(|f| removed.contains(&f.target))
            .map(|f| f.id)
            .collect();
        for id in ids {
            let Some(path) = self.files.get(&id).map(|f| f.path.clone()) else {
                continue;
            };
            match self.targets.find(&path) {
                Some(ti) => self.retarget(id, ti),
                None => {
                    if let Some(f) = self.files.get_mut(&id) {
                        tracing::debug!(file = %path.display(),
                            "its target is gone; reading it to its end, then releasing it");
                        f.orphan = true;
                        self.plan.activate(f);
                    }
                }
            }
        }
        Ok(())
    }

    /// Moves file `id` to target `ti`: its lines from here on carry the new
    /// target's labels, metadata and pipeline.
    pub(super) fn retarget(&mut self, id: FileId, ti: usize) {
        let Some(t) = self.targets.get(ti) else {
            return;
        };
        let (labels, metadata, pipe) = (t.labels.clone(), t.spec.metadata.clone(), t.pipe);
        if let Some(f) = self.files.get_mut(&id) {
            let path_s = f.path.to_string_lossy().into_owned();
            f.target = ti;
            f.labels = labels.with("filename", &path_s);
            f.metadata = metadata.into();
            f.pipe = pipe;
            f.orphan = false;
            // Its stream changed: the pass plans by stream.
            self.plan.stale = true;
        }
    }

    /// Frees retired target slots no file refers to.
    pub(super) fn collect_targets(&mut self) {
        let used: HashSet<usize> = self.files.values().map(|f| f.target).collect();
        self.targets.collect(&used);
    }

    /// A released file (its target gone, read to its end): closed, its
    /// position kept once every line is acknowledged.
    pub(super) fn release(&mut self, id: FileId) -> Result<(), Stopped> {
        self.close_for_good(id)?;
        if let Some(d) = self.draining.iter_mut().find(|d| d.id == id) {
            d.keep = true;
        }
        Ok(())
    }

    /// Whether a saved position no target claims must be kept (see the
    /// module docs).
    pub(super) fn keep_unclaimed(&self, s: &SavedFile) -> bool {
        if !self.unsynced.is_empty() {
            return true;
        }
        if !self.jobs.iter().any(|j| j.dynamic) {
            return false;
        }
        fs::metadata(&s.path).is_ok_and(|m| fingerprint::file_id(&m) == s.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::LabelSet;

    /// The index finds what checking every target in order finds: the
    /// first live target matching, through inserts, retirements and freed
    /// slots, with Kubernetes-style, static, `**` and odd globs mixed.
    #[test]
    fn indexed_lookup_agrees_with_checking_every_target() {
        let mut t = Targets::default();
        let add = |t: &mut Targets, g: &str| {
            t.insert(Target::new(0, g, None, LabelSet::empty()).unwrap())
        };
        let uid = |i: usize| format!("{i:08x}-9b3d-4e8f-a6c1-7d2b9e4f0a13");
        for i in 0..40 {
            for c in ["app", "side"] {
                add(&mut t, &format!("/var/log/pods/*{}/{c}/*.log", uid(i)));
            }
        }
        for g in [
            "/var/log/pods/*/*/*.log",
            "/var/log/pods/ns_p-3_*/app/*.log",
            "/var/log/**/*.log",
            "/var/log/pods/ns_p-?_*/side/0.log",
            "/var/log/syslog",
            "/var/log/*",
            "relative/*.log",
        ] {
            add(&mut t, g);
        }
        let mut paths: Vec<PathBuf> = Vec::new();
        for i in 0..45 {
            for c in ["app", "side", "other"] {
                for f in ["0.log", "1.log", "0.log.20261122-101500"] {
                    paths.push(format!("/var/log/pods/ns_p-{i}_{}/{c}/{f}", uid(i)).into());
                }
            }
        }
        for p in [
            "/var/log/syslog",
            "/var/log/x.log",
            "/var/log/a/b/c.log",
            "/other/0.log",
            "relative/a.log",
        ] {
            paths.push(p.into());
        }
        let mut dirs: Vec<PathBuf> = ["/", "/var", "/var/log", "/var/log/pods", "/other"]
            .iter()
            .map(PathBuf::from)
            .collect();
        let mut uids: HashMap<PathBuf, String> = HashMap::new();
        for i in [0, 3, 44] {
            let pod = format!("/var/log/pods/ns_p-{i}_{}", uid(i));
            for d in [format!("{pod}/app"), pod] {
                uids.insert(d.clone().into(), uid(i));
                dirs.push(d.into());
            }
        }
        let mut seed: u64 = 7;
        for round in 0..30 {
            for p in &paths {
                assert_eq!(
                    t.find(p),
                    t.find_by_scan(p),
                    "round {round}: {}",
                    p.display()
                );
            }
            for d in &dirs {
                let under = t.under(&[d.as_path()]);
                // Every target whose walk starts at or below `d`...
                for (i, tg) in t.live() {
                    let reaches = tg
                        .walk()
                        .is_none_or(|w| w.base().starts_with(d) || w.depth_of(d).is_some());
                    assert!(
                        !reaches || under.contains(&i),
                        "round {round}: {} misses {}",
                        d.display(),
                        tg.include
                    );
                }
                // ...and, for a pod's directory, no other pod's.
                if let Some(pod_uid) = uids.get(d) {
                    for &i in &under {
                        let g = t.get(i).map_or("", |tg| tg.include.as_str());
                        assert!(
                            !g.contains("-9b3d-4e8f-") || g.contains(pod_uid.as_str()),
                            "round {round}: {} brings in {g}",
                            d.display()
                        );
                    }
                }
            }
            // Change the table: retire some, free them, add new ones.
            for _ in 0..5 {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let i = (seed >> 33) as usize % t.slots.len();
                t.retire(i);
            }
            t.collect(&HashSet::new());
            add(
                &mut t,
                &format!("/var/log/pods/*{}/app/*.log", uid(round % 45)),
            );
            add(&mut t, "/var/log/pods/*/other/*.log");
        }
    }
}
