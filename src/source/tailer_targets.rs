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
}

impl Targets {
    pub(super) fn get(&self, ti: usize) -> Option<&Target> {
        self.slots.get(ti).and_then(Option::as_ref)
    }

    /// The first live target whose glob matches `path`.
    pub(super) fn find(&self, path: &Path) -> Option<usize> {
        self.slots
            .iter()
            .position(|t| t.as_ref().is_some_and(|t| !t.retired && t.matches(path)))
    }

    /// Live targets with their slots.
    pub(super) fn live(&self) -> impl Iterator<Item = (usize, &Target)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, t)| t.as_ref().filter(|t| !t.retired).map(|t| (i, t)))
    }

    pub(super) fn insert(&mut self, t: Target) -> usize {
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
    pub(super) fn take_updates(&mut self) -> Result<bool, Stopped> {
        let mut any = false;
        while let Some(Ok(u)) = self.updates.as_ref().map(|r| r.try_recv()) {
            self.apply_update(u)?;
            any = true;
        }
        if any {
            // New targets: look for their files now.
            self.rescan_now = true;
        }
        Ok(any)
    }

    fn apply_update(&mut self, u: TargetUpdate) -> Result<(), Stopped> {
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
        let added = wanted.len();
        for t in wanted {
            match self.compile(job, &t) {
                Ok(c) => {
                    self.targets.insert(c);
                }
                Err(e) => tracing::warn!(error = %e, "target skipped"),
            }
        }
        for &i in &removed {
            if let Some(Some(t)) = self.targets.slots.get_mut(i) {
                t.retired = true;
            }
        }
        if !removed.is_empty() {
            self.reassign(&removed)?;
        }
        if self.unsynced.remove(&job) {
            tracing::debug!(job, "first target set");
        }
        tracing::debug!(job, added, removed = removed.len(), "targets updated");
        self.collect_targets();
        Ok(())
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
                        f.active = true;
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
