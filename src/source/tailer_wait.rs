//! Streams that wait for an older file that is known but closed.
//!
//! Owns: the start-up claim of saved positions (`claim_unclaimed`), the
//! rule that an older file found at the descriptor bound is tracked closed,
//! and how a closed rotated file gets its descriptor back (`reopen_room`).
//!
//! Design: a stream's lines are shipped in write order, so a file is read
//! only once every older file of its stream that may hold unread lines has
//! been (the plan in `tailer_turn.rs` reads nothing of a stream whose
//! oldest file with data is closed). At the descriptor bound an older file
//! can be known but not open:
//! - a saved position relocated at start-up (or set aside because its
//!   inode number was reused), or a rotated sibling never read (a chain
//!   hole): it is found and tracked like any other file — opened for the
//!   look, then closed again ([`Tailer::close_over_bound`]) and reopened by
//!   the sweep like a parked file, by inode among its path's siblings or by
//!   fingerprint in a `.gz`;
//! - a current file parked (closed) and then rotated.
//!
//! A closed file that begins to hold its stream back (the stream finished
//! the file before it; a finished `.gz` gives its descriptor up at once) is
//! tried for a descriptor at the next plan; one that got none, by every
//! sweep after. Either reopens it as soon as a descriptor can be had: by
//! parking a current file (a stream waiting for it gives up its files'
//! claim to a descriptor, see `awaiting_turn`), else by overdrawing the bound
//! by up to [`OVERDRAFT`] descriptors, else by closing a rotated file that
//! itself waits behind a closed file of its stream (it cannot be read
//! before anyway; it is reopened the same way later). So every stream
//! moves, whatever holds the descriptors. Only a closed file that holds its
//! stream back (the plan's first file of a stream, see `Plan::blocking`)
//! takes a descriptor that way; any other closed rotated file waits for a
//! free one — taking another's would only swap descriptors, each swap a
//! directory listing and a `.gz` reopened, every sweep.
//!
//! Must never: start reading a stream's newer file because an older one
//! was closed for lack of a descriptor; let files that cannot be read hold
//! every descriptor; lose a saved position because no descriptor was free;
//! close a file for one that cannot be read next.

use super::*;

/// Descriptors a closed rotated file may take beyond `max_open_files` when
/// it holds its stream back and no current file can be parked (taken from
/// the descriptors `fdlimit` reserves).
pub(super) const OVERDRAFT: usize = 32;

impl Tailer {
    /// Saved positions no discovered file claimed: find where they went.
    pub(super) fn claim_unclaimed(&mut self) {
        for s in self.positions.unclaimed() {
            if self.files.contains_key(&s.id) {
                continue;
            }
            let Some(ti) = self.targets.find(&s.path) else {
                if self.keep_unclaimed(&s) {
                    continue;
                }
                tracing::info!(file = %s.path.display(),
                    "no target matches this saved file any more; forgetting its position");
                self.positions.forget(s.id);
                continue;
            };
            self.relocate_saved(s, ti);
        }
    }

    /// Called by `add` once a file is tracked and open: beyond the bound, a
    /// quiet current file is parked for it, else it is closed again itself
    /// and tracked closed (see the module docs).
    pub(super) fn close_over_bound(&mut self, id: FileId) {
        if self.open <= self.opts.max_open_files {
            return;
        }
        if !self.evict_one() {
            self.park(id);
        }
    }

    /// Room to reopen closed file `id`: whether a descriptor may be taken
    /// now. A free one, else: a current file may park a quiet one; a
    /// rotated file that holds its stream back may too, then overdraw the
    /// bound, then take the descriptor of a rotated file waiting behind a
    /// closed one. Any other rotated file waits for a free descriptor.
    pub(super) fn reopen_room(&mut self, id: FileId) -> bool {
        if self.open < self.opts.max_open_files {
            return true;
        }
        let Some(f) = self.files.get(&id) else {
            return false;
        };
        let rotated = f.kind != Kind::Current;
        if rotated && !self.plan.blocking.contains(&id) {
            // Not holding its stream back (an older file of the stream
            // comes first): it waits for a free descriptor. Taking one
            // from another file would only swap descriptors — found by
            // the soak at 320 descriptors and thousands of `.gz` files to
            // catch up on, every sweep reopened (and relocated) each
            // closed one by closing another, ~150 a second, and the
            // catch-up crawled.
            return false;
        }
        if self.evict_for_reopen() {
            return true;
        }
        if !rotated {
            return false; // a later sweep
        }
        if self.open < self.opts.max_open_files + OVERDRAFT {
            return true;
        }
        match self.waiting_rotated(id) {
            Some(w) => {
                tracing::debug!(file = %self.files.get(&w).map_or(Path::new(""), |f| &f.path).display(),
                    "closing a rotated file waiting behind a closed one, for a descriptor");
                self.park(w);
                true
            }
            None => false,
        }
    }

    /// An open rotated file (not `but`) that cannot be read before a closed
    /// older file of its stream is.
    fn waiting_rotated(&self, but: FileId) -> Option<FileId> {
        let closed: Vec<&Tailed> = self
            .files
            .values()
            .map(|f| &**f)
            .filter(|f| f.src.is_none() && turn::may_be_first(f))
            .collect();
        self.files
            .values()
            .filter(|g| g.id != but && g.src.is_some() && g.kind != Kind::Current)
            .find(|g| {
                closed
                    .iter()
                    .any(|h| h.labels == g.labels && turn::before(h, g))
            })
            .map(|g| g.id)
    }
}
