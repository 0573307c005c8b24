//! The read turn: which file gets its next chunk, in what order.
//!
//! Owns: [`Plan`], one round-robin pass over the files with data, and
//! `Tailer::turn`, which reads one chunk from each planned file in order.
//!
//! Design: a pass is planned once — per stream (label set), the oldest
//! rotated file with data, else the current file — and then worked through
//! across as many turns as it takes. A turn ends early when delivery is
//! stuck (the backlog is not empty); the next turn goes on where it stopped,
//! instead of planning again over every file (at 5,000 files that planning
//! was most of the tailer's CPU, repeated every few files while Loki set
//! the pace) and instead of starting over from the first files, which
//! starved the rest. A file that gets new data after the pass was planned
//! waits for the next pass — round robin — unless it changes the order
//! within its stream: a file taken on, a rotated file with new data, a
//! file rotated away, re-keyed or relabelled marks the plan stale
//! ([`Plan::stale`]), and the next turn plans again.
//!
//! Must never: read a current file while a rotated file of its stream has
//! data that was known when the chunk was read (or is closed, its rest
//! unknown, see `tailer_wait.rs`); read a rotated file
//! before an older rotated one of its stream with data (the model tests
//! check this on every read); or keep a file in the pass that was
//! closed (ids are looked up again when their turn comes).

use super::{Stopped, Tailer};
use crate::labels::LabelSet;
use crate::positions::FileId;
use crate::source::file::{Kind, Tailed};
use crate::source::fingerprint::{self, Widen, FP_MAX};
use crate::source::reader::Src;
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Instant;

/// One pass. See the module docs.
#[derive(Default)]
pub(super) struct Plan {
    /// Files still to be read in this pass, in order.
    queue: VecDeque<FileId>,
    /// Something that decides the order within a stream changed since the
    /// pass was planned: plan again before the next read.
    pub stale: bool,
    /// Closed rotated files that hold their stream back (the first file
    /// of a stream that has data): only these may take another file's
    /// descriptor to be reopened (see `tailer_wait.rs`).
    pub blocking: HashSet<FileId>,
    /// Files that began to hold their stream back at the last plan: tried
    /// for a descriptor at once ([`Tailer::reopen_fresh_blocking`]), not
    /// at the next sweep.
    fresh_blocking: Vec<FileId>,
    /// Every file whose `active` is set, and some that were since the
    /// last plan (pruned by it): a pass is planned from these, not from
    /// every file. At a steady rate over 5,000 files a few files have new
    /// data at each wake-up, and a plan that looked at every file was ~9 %
    /// of the tailer's CPU (`benches/HISTORY.md`). Whoever sets a file's
    /// `active` adds it here ([`Plan::activate`]); test builds check that
    /// none was missed at every plan.
    active: HashSet<FileId>,
}

impl Plan {
    /// `f` has something to read (or, rotated, a rest to find): sets its
    /// `active` and makes it part of the next plan.
    pub fn activate(&mut self, f: &mut Tailed) {
        f.active = true;
        self.active.insert(f.id);
    }

    /// A file made (or re-keyed) with `active` set is `id` now.
    pub fn activated(&mut self, id: FileId) {
        self.active.insert(id);
    }
}

/// Whether `a` must be read before `b` (files of one stream): rotated
/// files before the current one, rotated files oldest first.
pub(super) fn before(a: &Tailed, b: &Tailed) -> bool {
    match (a.kind != Kind::Current, b.kind != Kind::Current) {
        (true, false) => true,
        (false, true) => false,
        (true, true) => a.rotated_before(b),
        (false, false) => a.seq < b.seq,
    }
}

/// [`before`] as an ordering (tests: the first file of a stream).
#[cfg(test)]
pub(super) fn order(a: &Tailed, b: &Tailed) -> std::cmp::Ordering {
    match (before(a, b), before(b, a)) {
        (true, _) => std::cmp::Ordering::Less,
        (_, true) => std::cmp::Ordering::Greater,
        _ => std::cmp::Ordering::Equal,
    }
}

fn readable(f: &Tailed) -> bool {
    f.active && f.src.is_some()
}

/// A file that may be the first of its stream with data: open with data,
/// or rotated and closed (its rest is unknown until it is reopened; a
/// closed current file is reopened when it changes).
pub(super) fn may_be_first(f: &Tailed) -> bool {
    f.active && (f.src.is_some() || f.kind != Kind::Current)
}

impl Tailer {
    /// Plans a new pass: per stream, the file to read first — none while
    /// that file is a closed rotated one (reopened by the sweep, see
    /// `tailer_wait.rs`).
    pub(super) fn plan_pass(&mut self) {
        #[cfg(test)]
        for f in self.files.values() {
            assert!(
                !f.active || self.plan.active.contains(&f.id),
                "{} is active but not in the plan's active set",
                f.path.display()
            );
        }
        let files = &self.files;
        self.plan
            .active
            .retain(|id| files.get(id).is_some_and(|f| f.active));
        let mut first: HashMap<&LabelSet, &Tailed, _> = HashMap::with_hasher(
            std::hash::BuildHasherDefault::<crate::labels::PassThrough>::default(),
        );
        let candidates = self.plan.active.iter().filter_map(|id| files.get(id));
        for f in candidates.filter(|f| may_be_first(f)) {
            match first.get_mut(&f.labels) {
                None => {
                    first.insert(&f.labels, f);
                }
                Some(cur) => {
                    if before(f, cur) {
                        *cur = f;
                    }
                }
            }
        }
        self.plan.queue.clear();
        let mut blocked: HashSet<LabelSet, _> = HashSet::with_hasher(
            std::hash::BuildHasherDefault::<crate::labels::PassThrough>::default(),
        );
        let before = std::mem::take(&mut self.plan.blocking);
        for f in first.values() {
            if f.src.is_some() {
                self.plan.queue.push_back(f.id);
            } else {
                blocked.insert(f.labels.clone());
                self.plan.blocking.insert(f.id);
                if !before.contains(&f.id) {
                    self.plan.fresh_blocking.push(f.id);
                }
            }
        }
        drop(first);
        self.plan.stale = false;
        // Files that cannot be read now give up their claim to a descriptor
        // (so what they wait for can be opened).
        if !blocked.is_empty() {
            for f in self.files.values_mut() {
                if f.awaiting_turn && blocked.contains(&f.labels) {
                    f.awaiting_turn = false;
                }
            }
        }
    }

    /// Plans a pass, and gives the closed files that began to hold their
    /// stream back their try for a descriptor.
    fn replan(&mut self) -> Result<(), Stopped> {
        self.plan_pass();
        self.reopen_fresh_blocking()
    }

    /// Closed files that began to hold their stream back at the last plan
    /// (the stream finished the file before them): reopened now if a
    /// descriptor can be had (see `reopen_room`), else by the sweep. With
    /// the once-a-second sweep alone, a catch-up of thousands of rotated
    /// files at the descriptor bound read one file per stream a second
    /// (found by the soak: 5,600 files, not caught up in 5 minutes). Each
    /// file is tried once when it begins to block, so a plan made again and
    /// again does not retry what found no descriptor.
    fn reopen_fresh_blocking(&mut self) -> Result<(), Stopped> {
        for id in std::mem::take(&mut self.plan.fresh_blocking) {
            if self.files.get(&id).is_some_and(|f| f.src.is_none()) {
                self.check_parked(id)?;
            }
        }
        Ok(())
    }

    /// One round-robin turn: each planned file gets one chunk (see the
    /// module docs). Returns the bytes read.
    pub(super) fn turn(&mut self) -> Result<usize, Stopped> {
        if !self.backlog.is_empty() && !self.pump()? {
            return Ok(0);
        }
        let mut fresh = false;
        if self.plan.stale || self.plan.queue.is_empty() {
            self.replan()?;
            fresh = true;
        }
        let mut total = 0;
        loop {
            if self.stopping() {
                return Err(Stopped);
            }
            if !self.backlog.is_empty() {
                break; // delivery is stuck: read nothing more this turn
            }
            if self.plan.stale {
                // Taken on, rotated or refilled during this turn.
                self.replan()?;
                fresh = true;
            }
            let Some(id) = self.plan.queue.pop_front() else {
                if fresh || total > 0 {
                    break;
                }
                // The pass ran out on files that had gone quiet: a new one
                // at once, or files with data would wait for a tick.
                self.replan()?;
                fresh = true;
                continue;
            };
            let Some(f) = self.files.get_mut(&id) else {
                continue;
            };
            if !readable(f) {
                continue;
            }
            // A stage holding this stream back (`limit` with `drop: false`):
            // this file waits, the others go on.
            if let Some(j) = self.jobs.get(f.job) {
                let named = f.pipe.and_then(|p| j.named.get(p)).map(|(_, p)| p);
                if !j.pipeline.accepts(&f.labels) || named.is_some_and(|p| !p.accepts(&f.labels)) {
                    continue;
                }
            }
            #[cfg(test)]
            self.check_order(id);
            let Some(f) = self.files.get_mut(&id) else {
                continue;
            };
            let read = f.read_chunk(&mut self.buf, &mut self.entries);
            if read.is_ok() {
                f.awaiting_turn = false;
            }
            match read {
                Ok(st) if st.bytes == 0 => {
                    f.active = false;
                    f.at_eof = true;
                    let gz = f.kind == Kind::Gz;
                    // A change event with nothing to read: shrunk?
                    let pos = f.split.pos();
                    let size = f
                        .src
                        .as_ref()
                        .and_then(|s| s.file())
                        .and_then(|file| file.metadata().ok())
                        .map(|m| m.len());
                    if let Some(size) = size {
                        f.m.series.set_lag(size.saturating_sub(pos) as i64);
                    }
                    if let Some(size) = size.filter(|&s| s < pos) {
                        self.truncated(id, size);
                    }
                    if gz {
                        // A `.gz` never grows: finished, its descriptor is
                        // free for the next file of its stream now, not at
                        // the next sweep.
                        self.close_for_good(id)?;
                    }
                }
                Ok(st) => {
                    total += st.bytes;
                    // A plain file reads short only at its end: it is idle
                    // until an event or the sweep says it changed, without a
                    // read of nothing (and its `fstat`) to learn it. A `.gz`
                    // decoder's short read says nothing.
                    let end = st.bytes < self.buf.len() && matches!(f.src, Some(Src::Plain(_)));
                    f.at_eof = end;
                    if end {
                        f.active = false;
                        f.m.series.set_lag(0);
                    }
                    f.last_data = Instant::now();
                    Self::count_stats(&self.metrics, f, &st);
                    let (job, pipe) = (f.job, f.pipe);
                    let widen = if (f.fp.len as usize) < FP_MAX {
                        // The file holds at least what was read: a head
                        // read that reaches it needs no read of nothing.
                        let read = f.split.pos();
                        f.src
                            .as_ref()
                            .and_then(|s| s.file())
                            .and_then(|file| fingerprint::widen_sized(file, f.fp, read).ok())
                    } else {
                        None
                    };
                    match widen {
                        Some(Widen::Wider(fp)) => {
                            f.fp = fp;
                            self.positions.refingerprint(id, fp);
                        }
                        Some(Widen::Changed(_)) => {
                            // Rewritten from the start (truncated and refilled
                            // past our offset between two looks): what was just
                            // read is the middle of new content.
                            self.entries.clear();
                            self.truncated(id, 0);
                            continue;
                        }
                        _ => {}
                    }
                    self.send(job, pipe)?;
                }
                Err(e) => {
                    let (path, kind) = (f.path.clone(), f.kind);
                    self.file_error(&path, Self::io_reason(&e), &e);
                    match kind {
                        Kind::Current => self.park(id),
                        _ => self.close_for_good(id)?,
                    }
                }
            }
        }
        Ok(total)
    }

    /// Tests only: the file about to be read is the first of its stream
    /// among the files known to have data, open or not (what [`Plan::stale`]
    /// and `tailer_wait.rs` protect).
    #[cfg(test)]
    fn check_order(&self, id: FileId) {
        let Some(f) = self.files.get(&id) else {
            return;
        };
        for g in self.files.values() {
            if g.id != id && may_be_first(g) && g.labels == f.labels && g.kind != Kind::Current {
                assert!(
                    !before(g, f),
                    "read {} ({:?}) before {} ({:?}, open: {}) of the same stream",
                    f.path.display(),
                    f.kind,
                    g.path.display(),
                    g.kind,
                    g.src.is_some()
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::catch_up::tests::tailer_and_output;
    use crate::source::testkit::{append, test_opts};

    /// A read that stops short of the buffer ended at the file's end: the
    /// file is idle from then on, without a read of nothing (and its
    /// `fstat`) to learn it — at 5,000 files just taken on, 10,000 system
    /// calls — and a later write is still read once the change is seen.
    #[test]
    fn a_short_read_leaves_the_file_idle_until_it_changes() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("logs/ns_pod_uid/app");
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("0.log");
        append(&p, "a\nb\n");
        let (mut t, mut rx) = tailer_and_output(tmp.path(), test_opts());
        assert!(t.rescan().is_ok());
        assert_eq!(t.turn().ok(), Some(4));
        let f = t.files.values().next().unwrap();
        assert!(f.at_eof && !f.active, "read to its end, not idle");
        assert!(t.plan.queue.is_empty());
        // Nothing changed: nothing to read, not even a read of nothing.
        assert_eq!(t.turn().ok(), Some(0));
        append(&p, "c\n");
        t.full_sweep = true;
        assert!(t.sweep().is_ok());
        assert_eq!(t.turn().ok(), Some(2));
        assert!(t.out.flush().is_ok());
        let mut lines = Vec::new();
        while let Ok(batch) = rx.try_recv() {
            lines.extend(batch.iter().map(|e| e.line.to_string()));
        }
        assert_eq!(lines, ["a", "b", "c"]);
    }
}
