//! The tailer's lifecycle half: what happens to a file after it was found —
//! renamed away, replaced at its path, parked (closed to bound descriptors)
//! and reopened, truncated, or closed for good once read and acknowledged.
//!
//! Must never: close a file with unread data, or forget a position whose
//! lines are not all acknowledged.

use super::*;

impl Tailer {
    // ------------------------------------------------------------- lifecycle

    /// The file is no longer the one at its path: read it to its end, and
    /// look for rotated files of the same path that were never read.
    pub(super) fn moved(&mut self, id: FileId) {
        if let Some((path, ti)) = self.no_longer_current(id) {
            self.catch_up_chain(&path, ti);
        }
    }

    /// The state half of [`Self::moved`], for the catch-up itself: a
    /// current file `id` becomes a rotated one (open or closed, it now goes
    /// before anything newer of its stream). Its path and target, if it
    /// was current.
    pub(super) fn no_longer_current(&mut self, id: FileId) -> Option<(Arc<Path>, usize)> {
        let f = self.files.get_mut(&id)?;
        if f.kind != Kind::Current {
            return None;
        }
        tracing::debug!(file = %f.path.display(), "file rotated or deleted; reading it to its end");
        f.kind = Kind::Moved;
        // A number of its own: after every file taken on so far, before
        // any taken on from now.
        self.next_seq += 1;
        f.rotated_seq = self.next_seq;
        self.plan.activate(f);
        self.plan.stale = true;
        if self.by_path.get(&f.path) == Some(&id) {
            self.by_path.remove(&f.path);
        }
        Some((f.path.clone(), f.target))
    }

    /// Compares a current file's identity with what its path holds now.
    pub(super) fn check_path(&mut self, id: FileId) {
        let Some(f) = self.files.get_mut(&id) else {
            return;
        };
        f.path_event = false;
        if f.kind != Kind::Current {
            return;
        }
        let path = f.path.clone();
        match fs::metadata(&path) {
            Ok(m) if fingerprint::file_id(&m) == id => f.path_looked = self.sweeps,
            Ok(_) => {
                self.moved(id);
                // (Looked up only now: with a target per container, a
                // lookup per idle file per sweep would cost files × targets.)
                if let Some(ti) = self.targets.find(&path) {
                    self.candidate(&path, ti, false, None);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => self.moved(id),
            Err(e) => self.file_error(&path, Self::io_reason(&e), &e),
        }
    }

    /// Frees a descriptor for a new file (see the descriptor policy in the
    /// module docs of `tailer.rs`): parks the least recently active quiet
    /// current file, else the current file with unread data least recently
    /// read. Rotated files are never parked (their name may be gone).
    ///
    /// The victims are ranked once into [`Tailer::evict_queue`] and taken
    /// from it until it runs out or is [`EVICT_QUEUE_AGE`] old, so a sweep
    /// that reopens thousands of parked files costs one ranking, not one
    /// scan of every file per reopen (that was quadratic in the number of
    /// files). A queued file opened or read since the ranking is skipped:
    /// its rank is stale, and parking what was just reopened would only
    /// churn descriptors.
    pub(super) fn evict_one(&mut self) -> bool {
        self.evict(false)
    }

    /// [`Self::evict_one`] for reopening a parked file that changed: a file
    /// with unread data keeps its descriptor until it had a read turn
    /// (parking it before would swap descriptors for nothing, in every
    /// sweep). Discovery and the chain check may park it (a new file must
    /// be pinned; a rotated file is read before the current one).
    pub(super) fn evict_for_reopen(&mut self) -> bool {
        self.evict(true)
    }

    fn evict(&mut self, spare_unread: bool) -> bool {
        let now = Instant::now();
        let fresh = self
            .evict_queue
            .as_ref()
            .is_some_and(|(at, _)| now.duration_since(*at) < EVICT_QUEUE_AGE);
        if !fresh {
            self.evict_queue = None;
        }
        for _ in 0..2 {
            let (at, queue) = self
                .evict_queue
                .get_or_insert_with(|| (now, Self::rank_victims(&self.files)));
            let at = *at;
            while let Some(id) = queue.pop() {
                let ok = self.files.get(&id).is_some_and(|f| {
                    f.parkable()
                        && f.last_data <= at
                        && !(spare_unread && f.awaiting_turn && f.has_unread())
                });
                if ok {
                    self.park(id);
                    return true;
                }
            }
            self.evict_queue = None;
        }
        false
    }

    /// Open current files, the best victim last (see [`Self::evict_one`]).
    fn rank_victims(files: &crate::fasthash::FastMap<FileId, Box<Tailed>>) -> Vec<FileId> {
        let mut v: Vec<_> = files
            .values()
            .filter(|f| f.parkable())
            .map(|f| ((f.has_unread(), f.last_data), f.id))
            .collect();
        v.sort_unstable_by_key(|b| std::cmp::Reverse(b.0));
        v.into_iter().map(|(_, id)| id).collect()
    }

    pub(super) fn park(&mut self, id: FileId) {
        if let Some(f) = self.files.get_mut(&id) {
            f.parked_ctime = f
                .src
                .as_ref()
                .and_then(|s| s.file())
                .and_then(|file| file.metadata().ok())
                .map(|m| ctime_of(&m));
            if f.src.take().is_some() {
                self.open -= 1;
                tracing::debug!(file = %f.path.display(), id = ?f.id, "closed quiet file (reopened on change)");
            }
        }
    }

    /// A closed current file: reopen it if it changed, relocate it if its
    /// path now holds another file.
    pub(super) fn check_parked(&mut self, id: FileId) -> Result<(), Stopped> {
        let Some(f) = self.files.get(&id) else {
            return Ok(());
        };
        let path = f.path.clone();
        let pos = f.split.pos();
        let fp_of = f.fp;
        let parked_ctime = f.parked_ctime;
        let born = f.born;
        let same = match fs::metadata(&path) {
            // Its number at its path, but born later: another file (this
            // one had nothing fingerprinted to tell them apart by).
            Ok(m) if fingerprint::is_file(&m, id, born) => {
                if m.len() == pos && parked_ctime.is_none_or(|c| c == ctime_of(&m)) {
                    return Ok(()); // unchanged
                }
                true
            }
            Ok(_) => false,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => {
                self.file_error(&path, Self::io_reason(&e), &e);
                self.unhold(id);
                return Ok(());
            }
        };
        if !self.reopen_room(id) {
            return Ok(()); // a later sweep
        }
        let mut found = None;
        if same {
            if let Ok(file) = open::for_reading(&path) {
                let meta = file.metadata().ok();
                if meta.as_ref().map(fingerprint::file_id) == Some(id) {
                    let size = meta.map(|m| m.len()).unwrap_or(0);
                    // Same inode, other first bytes: either the file was
                    // rotated and compressed while closed and its inode number
                    // reused by a new file (then its rest is in a `.gz`), or it
                    // was rewritten in place (copytruncate: read from 0).
                    let intact = fingerprint::matches_file(&file, fp_of).unwrap_or(false);
                    if !intact {
                        if let Ok(Some(g @ Found::Gz { .. })) =
                            relocate(&path, id, fp_of, pos, born)
                        {
                            found = Some(g);
                        }
                    }
                    if found.is_none() {
                        self.unpark(id, file, size, !intact);
                        return Ok(());
                    }
                }
            }
        }
        let found = match found {
            Some(g) => Ok(Some(g)),
            None => relocate(&path, id, fp_of, pos, born),
        };
        let found = match found {
            // At its own path after all: the look above raced with a delete
            // and a re-create at the path that reused the inode number (a
            // file with nothing fingerprinted yet matches any file). It is
            // still the current file: taken for moved, it would be closed
            // for good (idle) while still at its path, and the next rescan
            // would take it on again from 0 — every line twice.
            Ok(Some(Found::Plain { path: at, file }))
                if *at == *path && self.by_path.get(&*path) == Some(&id) =>
            {
                let size = file.metadata().map(|m| m.len()).unwrap_or(0);
                self.unpark(id, file, size, false);
                return Ok(());
            }
            found => found,
        };
        // Rotated (or deleted) while closed. The catch-up that starts comes
        // last: it may take on a sibling that reuses this file's inode
        // number, re-keying whatever is under `id` by then (found by the
        // soak: the `.gz` found here went to that sibling, which was never
        // read, and this file's content was read twice).
        let current = self.no_longer_current(id);
        match found {
            Ok(Some(Found::Plain { file, .. })) => {
                if let Some(f) = self.files.get_mut(&id) {
                    f.src = Some(Src::Plain(file));
                    self.plan.activate(f);
                    self.plan.stale = true;
                    self.open += 1;
                }
            }
            Ok(Some(Found::Gz { stream, .. })) => {
                // Re-keyed under a synthetic identity: the old inode number
                // is free for reuse.
                if let Some(f) = self.rekey(id).and_then(|gid| self.files.get_mut(&gid)) {
                    f.src = Some(Src::Gz(stream));
                    f.kind = Kind::Gz;
                    self.plan.activate(f);
                    self.open += 1;
                }
            }
            Ok(None) => {
                let unread = self.files.get(&id).map_or(0, |f| {
                    f.size
                        .load(std::sync::atomic::Ordering::Relaxed)
                        .saturating_sub(pos)
                });
                self.lost(
                    &path,
                    "rotated_away",
                    unread,
                    "a file closed to save descriptors was rotated away and deleted before it was read to its end; its unread lines are lost",
                );
                self.close_for_good(id)?;
            }
            Err(e) => {
                self.file_error(&path, Self::io_reason(&e), &e);
                self.unhold(id);
            }
        }
        if let Some((p, ti)) = current {
            self.catch_up_chain(&p, ti);
        }
        if let Some(ti) = self.targets.find(&path) {
            self.candidate(&path, ti, false, None);
        }
        Ok(())
    }

    /// A closed rotated file that could not be reopened (an error, retried
    /// each sweep): its stream does not wait for it meanwhile.
    fn unhold(&mut self, id: FileId) {
        if let Some(f) = self.files.get_mut(&id) {
            if f.kind != Kind::Current && f.active {
                f.active = false;
                self.plan.stale = true;
            }
        }
    }

    /// Gives a parked current file (still at its path) its descriptor back:
    /// reading goes on at its position, or from 0 if it shrank or was
    /// `rewritten` (`size` is its size now).
    fn unpark(&mut self, id: FileId, file: File, size: u64, rewritten: bool) {
        let Some(f) = self.files.get_mut(&id) else {
            return;
        };
        let pos = f.split.pos();
        f.src = Some(Src::Plain(file));
        self.plan.activate(f);
        f.at_eof = false;
        // Opened counts as activity, and it is not parked again before it
        // was read (see `evict_one`).
        f.last_data = Instant::now();
        f.awaiting_turn = true;
        self.open += 1;
        if rewritten || size < pos {
            self.truncated(id, size);
        }
    }

    /// The file is finished: emit a held last line, close, and forget its
    /// position once everything is acknowledged.
    pub(super) fn close_for_good(&mut self, id: FileId) -> Result<(), Stopped> {
        let Some(mut f) = self.files.remove(&id) else {
            return Ok(());
        };
        let st = f.finish(&mut self.entries);
        Self::count_stats(&self.metrics, &mut f, &st);
        if f.src.take().is_some() {
            self.open -= 1;
        }
        tracing::debug!(file = %f.path.display(), id = ?f.id, stamp = ?f.stamp, kind = ?f.kind, offset = f.split.pos(), "finished file");
        if self.by_path.get(&f.path) == Some(&id) {
            self.by_path.remove(&f.path);
        }
        let shared =
            self.by_path.contains_key(&f.path) || self.files.values().any(|o| o.path == f.path);
        if !shared {
            f.m.remove(&self.metrics);
        }
        self.draining.push(Draining {
            id,
            tracker: f.tracker.clone(),
            path: f.path.clone(),
            fp: f.fp,
            born: f.born,
            keep: false,
            job: f.job,
            pipe: f.pipe,
        });
        self.metrics.files_active_total.set(self.files.len() as i64);
        let (job, pipe) = (f.job, f.pipe);
        self.send(job, pipe)
    }

    pub(super) fn truncated(&mut self, id: FileId, size: u64) {
        let Some(f) = self.files.get_mut(&id) else {
            return;
        };
        let (path, pos) = (f.path.clone(), f.split.pos());
        let seen = f.size.swap(size, std::sync::atomic::Ordering::Relaxed);
        f.split.reset(0);
        self.plan.activate(f);
        f.at_eof = false;
        self.plan.stale = true;
        if let Some(file) = f.src.as_ref().and_then(|s| s.file()) {
            if let Ok(fp) = fingerprint::of_file(file) {
                f.fp = fp;
            }
        }
        // A fresh tracker: lines of the old content still unacknowledged
        // must not hold the position at an offset of content that is gone.
        f.tracker = Tracker::new(Position::Offset(0));
        self.positions
            .track(path.clone(), id, f.fp, f.tracker.clone(), f.size.clone());
        self.file_error(
            &path,
            "truncated",
            &format!(
                "file shrank from {pos} to {size} bytes (copytruncate?); reading from the start"
            ),
        );
        if seen > pos {
            self.lost(
                &path,
                "truncated",
                seen - pos,
                "a file was truncated before it was read to its end; the unread lines are lost",
            );
        }
    }
}

/// `st_ctime` as (seconds, nanoseconds).
fn ctime_of(m: &fs::Metadata) -> (i64, i64) {
    use std::os::unix::fs::MetadataExt;
    (m.ctime(), m.ctime_nsec())
}
