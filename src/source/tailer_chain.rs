//! The tailer's chain half: catching up, at run time, on rotated files that
//! were never read.
//!
//! When the tailer falls behind (Loki down, the budget spent, the descriptor
//! bound reached, an inotify overflow), a `0.log` can be created and rotated
//! away before it was ever opened: the stream's chain of files has a hole.
//! Whenever a path's current file is seen rotated (or deleted), and at
//! start-up for every path with a saved watermark, [`Tailer::catch_up_chain`]
//! lists the path's kubelet-rotated siblings (see [`crate::source::chain`]) and, for
//! each one newer than the path's watermark:
//! - a sibling some tailed (or draining) file accounts for — the same inode,
//!   or a `.gz` whose content starts with that file's fingerprinted bytes —
//!   is not a hole: it gives that file its stamp (its place in the order),
//!   and a *current* file found so at a rotated name (its rotation not seen
//!   yet: closed at the descriptor bound) becomes a rotated one, which holds
//!   its stream back until it is read;
//! - a current file no longer at its path whose copy the listing does not
//!   show is older than every sibling left (the kubelet deletes rotated
//!   files oldest first): it becomes a rotated one before any hole is
//!   taken on, so that it is read first;
//! - any other is a hole: it is opened (a plain file keeps its identity, a
//!   `.gz` gets a synthetic one, as at start-up) and read from its start,
//!   before the current file of the stream, in stamp order;
//! - a hole that vanishes before it could be opened is counted as lost.
//!
//! The watermark (newest stamp taken on, in the positions file) moves past
//! each sibling handled, so a file read once is never taken for a hole again,
//! even after its positions entry is gone. A path seen for the first time
//! starts after the newest sibling last modified before the previous run
//! last saved its positions (on a first run, before this one started):
//! older rotations are history, but files rotated since (a pod that
//! appeared while no agent ran, a pod whose target arrived late, a new
//! directory found while the agent lagged) are read. A path the previous
//! run knew when it saved has a watermark, so this rule never applies to
//! it.
//!
//! Must never: take a sibling some tailed file accounts for as a hole (that
//! would duplicate it), move the watermark past a sibling it could not
//! handle (an error: retried at the next rescan) or past one whose closed
//! owner's fingerprint is still too short to find its `.gz` (widened
//! through the descriptor that identified it, never by opening the name
//! again: the kubelet may have compressed and unlinked it meanwhile). At
//! the descriptor bound a hole is taken on closed (see `tailer_wait.rs`).

use super::*;
use crate::source::chain::{siblings, Sibling, Stamps};
use crate::source::gz::{self, GzStream};

impl Tailer {
    /// First sight of `path` as a current file: every rotated sibling last
    /// modified before `history_before` (the previous run's last save, or
    /// this start) is history; later ones are caught up on. During the start-up
    /// scan, a path whose siblings are all history is remembered, so that
    /// the start-up check does not list them again for nothing (a sibling
    /// rotated after this listing is a rotation the running tailer sees).
    /// Returns the siblings it listed (none if the path had a watermark
    /// already, or the listing failed), for [`Tailer::catch_up_chain`] to
    /// go on with instead of reading the directory again.
    ///
    /// `walked`: the siblings as the start-up walk's listing of the
    /// directory showed them, taken instead of a listing of its own (at
    /// 5,000 files, a second read of every container's directory). Only
    /// when that listing named the very file now open (the same inode
    /// number, see [`Listed::of`]): a rotation between the two would leave
    /// the rotated file out of it.
    ///
    /// [`Listed::of`]: crate::source::chain::Listed::of
    pub(super) fn chain_init(
        &mut self,
        path: &Path,
        walked: Option<Stamps>,
    ) -> Option<Vec<Sibling>> {
        if self.positions.chain(path).is_some() {
            return None;
        }
        let history_before = self.history_before;
        // A listing, with (mark, settled, a sibling listed is gone).
        let marked = |v: Vec<Sibling>| {
            let (mut mark, mut settled, mut gone) = (String::new(), true, false);
            for s in &v {
                match fs::metadata(&s.path).and_then(|m| m.modified()) {
                    Ok(t) if t < history_before => mark.clone_from(&s.stamp),
                    Ok(_) => {
                        settled = false;
                        break;
                    }
                    Err(e) => {
                        gone |= e.kind() == io::ErrorKind::NotFound;
                        settled = false;
                    }
                }
            }
            (v, (mark, settled, gone))
        };
        // The walk's listing, unless a sibling it showed is gone
        // (compressed since: its `.gz` is not in it); else one of its own.
        let walked = walked
            .map(|w| marked(w.siblings(path)))
            .filter(|(_, (_, _, gone))| !gone);
        let mut listed = None;
        let (mark, settled) = match walked.map_or_else(|| siblings(path).map(marked), Ok) {
            Ok((v, (mark, settled, _))) => {
                listed = Some(v);
                (mark, settled)
            }
            Err(e) => {
                self.file_error(path, Self::io_reason(&e), &e);
                (String::new(), false)
            }
        };
        // The watermark's key is the tailed file's own path, not a copy.
        let shared = match self.by_path.get_key_value(path) {
            Some((k, _)) => k.clone(),
            None => Arc::from(path),
        };
        if settled && !self.chains_started {
            self.chains_fresh.insert(shared.clone());
        }
        self.positions.set_chain(shared, &mark);
        listed
    }

    /// `path`'s current file was rotated or deleted (or the agent just
    /// started): takes on every rotated sibling newer than the watermark
    /// that no tailed file accounts for, oldest first. See the module docs.
    pub(super) fn catch_up_chain(&mut self, path: &Path, ti: usize) {
        let (mark, listed) = match self.positions.chain(path) {
            Some(m) => (m, None),
            None => {
                // A path seen for the first time (a new pod's file): the
                // listing that set its watermark is the one gone through
                // here, not a second read of the same directory.
                let listed = self.chain_init(path, None);
                match self.positions.chain(path) {
                    Some(m) => (m, listed),
                    None => return,
                }
            }
        };
        let sibs = match listed.map_or_else(|| siblings(path), Ok) {
            Ok(v) => v,
            Err(e) => return self.file_error(path, Self::io_reason(&e), &e),
        };
        self.chain_retry.remove(&(path.to_path_buf(), ti));
        self.catch_up_listed(path, ti, mark, sibs);
    }

    /// [`Self::catch_up_chain`] over a listing of `path`'s siblings, from
    /// watermark `mark` on.
    fn catch_up_listed(&mut self, path: &Path, ti: usize, mut mark: String, sibs: Vec<Sibling>) {
        // The path's current file has left it — perhaps only since `sibs`
        // was listed (by the take-on, or the listing that set the
        // watermark): list again, now that it has left, so that its rotated
        // copy, if one is left, is in the listing that places it
        // (`rotated_out_of_listing`). Found by the soak (seed 32026): the
        // copy missing from an older listing, the file was taken for one
        // whose copy was deleted, and read before the older holes.
        let left = self
            .by_path
            .get(path)
            .copied()
            .filter(|&id| self.current_left(id, path));
        let sibs = match left {
            Some(_) => siblings(path).unwrap_or(sibs),
            None => sibs,
        };
        let mut widened = sibs
            .iter()
            .any(|s| s.gz && s.stamp.as_str() > mark.as_str());
        if widened {
            self.widen_fingerprints(path);
        }
        if let Some(id) = left {
            self.rotated_out_of_listing(id, path, &sibs, &mark);
        }
        let mut queue = std::collections::VecDeque::from(sibs);
        while let Some(s) = queue.pop_front() {
            let s = &s;
            if s.stamp.as_str() <= mark.as_str() {
                continue;
            }
            let gone = match self.sibling_owner(path, s) {
                Ok(Some((id, opened))) => {
                    if let Err(e) = self.widen_from_sibling(id, opened.as_ref()) {
                        // Its fingerprint could stay too short to find its
                        // `.gz` again: the watermark waits (retried).
                        self.file_error(&s.path, Self::io_reason(&e), &e);
                        self.chain_retry.insert((path.to_path_buf(), ti));
                        break;
                    }
                    if let Some(f) = self.files.get_mut(&id) {
                        if f.stamp.is_none() {
                            f.stamp = Some(s.stamp.as_str().into());
                        }
                    }
                    self.found_rotated(id, path);
                    false
                }
                Ok(None) => match self.take_hole(path, ti, s) {
                    Ok(()) => false,
                    Err(e) if e.kind() == io::ErrorKind::NotFound && !s.gz => true,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        self.lost(
                            &s.path,
                            "rotated_away",
                            0,
                            "a rotated file that was never read was deleted before it could be; its lines are lost (size unknown)",
                        );
                        false
                    }
                    Err(e) => {
                        self.file_error(&s.path, Self::io_reason(&e), &e);
                        self.chain_retry.insert((path.to_path_buf(), ti));
                        break;
                    }
                },
                Err(e) if e.kind() == io::ErrorKind::NotFound && !s.gz => true,
                Err(e) => {
                    self.file_error(&s.path, Self::io_reason(&e), &e);
                    self.chain_retry.insert((path.to_path_buf(), ti));
                    break;
                }
            };
            if gone {
                // A plain sibling gone since the listing was compressed
                // meanwhile (the kubelet writes `X.gz`, then unlinks `X`):
                // its `.gz` twin is looked at now, not at the path's next
                // rotation — until then the stream's newer lines would be
                // read first.
                if queue.front().is_none_or(|n| n.stamp != s.stamp) {
                    queue.push_front(Sibling::of(path, &s.stamp, true));
                }
                if !widened {
                    self.widen_fingerprints(path);
                    widened = true;
                }
                continue;
            }
            mark.clone_from(&s.stamp);
            self.positions.set_chain(path, &mark);
        }
    }

    /// Sibling owner `id` is still a current file: its rotation was not
    /// seen yet (closed at the descriptor bound, its own check waits for a
    /// descriptor; or its event not looked at yet). If `path` no longer
    /// holds it, it is a rotated file from now on, so that it holds its
    /// stream back before the newer siblings this catch-up takes on (found
    /// by the soak: read after them). Not [`Self::moved`]: this is the
    /// catch-up it would start.
    fn found_rotated(&mut self, id: FileId, path: &Path) {
        if self.current_left(id, path) {
            self.no_longer_current(id);
        }
    }

    /// Whether `id` is a current file that `path` no longer holds.
    fn current_left(&self, id: FileId, path: &Path) -> bool {
        let left = self
            .files
            .get(&id)
            .filter(|f| f.kind == Kind::Current)
            .is_some_and(|f| {
                !fs::metadata(path).is_ok_and(|m| fingerprint::is_file(&m, id, f.born))
            });
        #[cfg(test)]
        if let Some(h) = self.after_path_look.lock().ok().and_then(|mut h| h.take()) {
            h();
        }
        left
    }

    /// The path's current file `id` is no longer at `path` (the caller
    /// checked, before listing), and no sibling the listing shows newer
    /// than the watermark is it: its rotated copy is
    /// gone already, and the kubelet deletes rotated files oldest first, so
    /// every sibling left is newer than it. It becomes a rotated file now,
    /// before they are taken on as holes, so that it is read before them
    /// (see [`Tailed::rotated_before`]). Left current, it was read after
    /// them (found by the soak, seed 31321: a catch-up at start-up, the
    /// file the scan took on rotated twice over meanwhile). A copy that is
    /// in the listing gives the file its stamp in the loop instead
    /// ([`Self::found_rotated`]). Not a catch-up of its own: this one is.
    fn rotated_out_of_listing(&mut self, id: FileId, path: &Path, sibs: &[Sibling], mark: &str) {
        let newer = sibs.iter().filter(|s| s.stamp.as_str() > mark);
        for s in newer {
            if matches!(self.sibling_owner(path, s), Ok(Some((o, _))) if o == id) {
                return;
            }
        }
        self.no_longer_current(id);
    }

    /// Widens the short fingerprints of `path`'s open files (taken while
    /// they were empty or short, and not widened by reading since delivery
    /// was stuck), so their compressed copies can be recognised.
    fn widen_fingerprints(&mut self, path: &Path) {
        for f in self.files.values_mut() {
            if *f.path != *path || f.fp.len as usize >= FP_MAX {
                continue;
            }
            let Some(file) = f.src.as_ref().and_then(|s| s.file()) else {
                continue;
            };
            if let Ok(Widen::Wider(fp)) = fingerprint::widen(file, f.fp) {
                f.fp = fp;
                self.positions.refingerprint(f.id, fp);
            }
        }
    }

    /// Tailed file `id` is a rotated sibling (a plain file, `opened` the
    /// descriptor that identified it when it is closed), and the watermark
    /// is about to move past that sibling: after a restart, or when it is
    /// reopened after the kubelet compressed it, only the file's
    /// fingerprint can find it again (in that file, or in its `.gz`). One
    /// taken while the file was empty or short and not widened since —
    /// parked at the descriptor bound, or delivery stuck between two
    /// sweeps — would match no `.gz`: the file's unread lines would be
    /// skipped without a word. It is widened here from the sibling's
    /// content, through the descriptor that identified it: opening the
    /// sibling again by name races with the kubelet, which compresses it
    /// and unlinks it at its next rotation (then the widening failed and
    /// the watermark moved on anyway — a whole file lost, the likely cause
    /// of soak seed 5421's loss). An error leaves the watermark where it
    /// is.
    fn widen_from_sibling(&mut self, id: FileId, opened: Option<&File>) -> io::Result<()> {
        let Some(f) = self.files.get_mut(&id) else {
            return Ok(());
        };
        if f.fp.len as usize >= FP_MAX {
            return Ok(());
        }
        let Some(file) = f.src.as_ref().and_then(|s| s.file()).or(opened) else {
            return Ok(());
        };
        if let Widen::Wider(fp) = fingerprint::widen(file, f.fp)? {
            f.fp = fp;
            self.positions.refingerprint(id, fp);
        }
        Ok(())
    }

    /// The tailed or draining file of `path` that sibling `s` is, if any,
    /// with the descriptor that told it (when one was opened: the owner is
    /// closed), for [`Self::widen_from_sibling`].
    fn sibling_owner(
        &self,
        path: &Path,
        s: &Sibling,
    ) -> io::Result<Option<(FileId, Option<File>)>> {
        if !s.gz {
            let id = fingerprint::file_id(&fs::metadata(&s.path)?);
            // The sibling, if it is the file of fingerprint `fp`, born at
            // `born`: its inode number may have been given out again.
            let is = |fp, born| -> io::Result<Option<(FileId, Option<File>)>> {
                let file = open::for_reading(&s.path)?;
                let same = !fingerprint::other_birth(born, &file.metadata()?)
                    && fingerprint::matches_file(&file, fp)?;
                Ok(same.then_some((id, Some(file))))
            };
            if let Some(f) = self.files.get(&id) {
                if *f.path != *path {
                    return Ok(None);
                }
                if f.src.is_some() {
                    return Ok(Some((id, None))); // open: the inode cannot be reused
                }
                // Parked: the number may be another file's now.
                return is(f.fp, f.born);
            }
            // Finished, waiting for acknowledgements: the same file, or a
            // new one that reuses the number of one deleted unread.
            if let Some(d) = self
                .draining
                .iter()
                .find(|d| d.id == id && *d.path == *path)
            {
                return is(d.fp, d.born);
            }
            // A saved position not relocated yet (it will be).
            if let Some(saved) = self.positions.saved(id).filter(|v| v.path == path) {
                return is(saved.fingerprint(), None);
            }
            return Ok(None);
        }
        let head = gz::head(&s.path, FP_MAX)?;
        let fits = |fp: crate::positions::Fingerprint| {
            fp.len > 0
                && head.len() >= fp.len as usize
                && fingerprint::of_bytes(&head[..fp.len as usize]) == fp
        };
        if let Some(f) = self.files.values().find(|f| *f.path == *path && fits(f.fp)) {
            return Ok(Some((f.id, None)));
        }
        if let Some(d) = self
            .draining
            .iter()
            .find(|d| *d.path == *path && fits(d.fp))
        {
            return Ok(Some((d.id, None)));
        }
        Ok(self
            .positions
            .unclaimed()
            .into_iter()
            .find(|v| v.path == path && fits(v.fingerprint()))
            .map(|v| (v.id, None)))
    }

    /// Opens hole `s` of `path` and starts reading it from its start (at
    /// the descriptor bound it is tracked closed until the sweep can reopen
    /// it; its stream waits — see `tailer_wait.rs`).
    fn take_hole(&mut self, path: &Path, ti: usize, s: &Sibling) -> io::Result<()> {
        let stamp = Some(s.stamp.clone());
        if s.gz {
            let fp = fingerprint::of_bytes(&gz::head(&s.path, FP_MAX)?);
            let stream = GzStream::open(&s.path)?;
            let id = self.synthetic_id();
            tracing::info!(file = %path.display(), gz = %s.path.display(),
                "catching up on a rotated file that was never read, from its compressed copy");
            self.add(
                path,
                ti,
                Src::Gz(Box::new(stream)),
                id,
                fp,
                0,
                Kind::Gz,
                stamp,
                None,
            );
        } else {
            let file = open::for_reading(&s.path)?;
            let meta = file.metadata()?;
            let id = fingerprint::file_id(&meta);
            if !self.free_reused_id(id, &file) {
                tracing::debug!(file = %path.display(), rotated = %s.path.display(),
                    "a rotated sibling is a file already tracked (the same inode and content): not a hole");
                return Ok(());
            }
            let fp = fingerprint::of_file(&file)?;
            tracing::info!(file = %path.display(), rotated = %s.path.display(),
                "catching up on a rotated file that was never read");
            let born = fingerprint::born(&meta);
            self.add(
                path,
                ti,
                Src::Plain(file),
                id,
                fp,
                0,
                Kind::Moved,
                stamp,
                born,
            );
        }
        Ok(())
    }

    /// At each rescan: chains left unfinished by an error, and
    /// watermarks of paths gone for good (their directory was removed).
    pub(super) fn chain_housekeeping(&mut self) {
        let retry: Vec<(PathBuf, usize)> = self.chain_retry.iter().cloned().collect();
        for (p, ti) in retry {
            self.catch_up_chain(&p, ti);
        }
        for p in self.positions.chain_paths() {
            // A path with a current file tailed is not gone: no `stat` of
            // its directory (at 5,000 files, 5,000 at every rescan).
            if self.by_path.contains_key(&p) {
                continue;
            }
            let gone = p.parent().is_some_and(|d| !d.exists());
            if gone && !self.positions.has_path(&p) {
                self.positions.forget_chain(&p);
            }
        }
    }

    /// At start-up: for every path with a saved watermark, files rotated
    /// while the agent was down (or while it lagged before a crash).
    pub(super) fn chain_startup(&mut self) {
        let fresh = std::mem::take(&mut self.chains_fresh);
        for p in self.positions.chain_paths() {
            if fresh.contains(&p) {
                continue;
            }
            if let Some(ti) = self.targets.find(&p) {
                self.catch_up_chain(&p, ti);
            }
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::ack::Budget;
    use crate::config::PositionsConfig;
    use crate::source::chain::Listed;
    use crate::source::tailer_tests::{kubelet_gzip, kubelet_rotate};
    use crate::source::testkit::{append, test_opts};
    use crate::source::ScrapeJob;
    use std::os::unix::fs::MetadataExt;

    /// Found by the e2e test at the descriptor bound (a whole rotated file
    /// lost, about one run in ten): a rotated file closed for a descriptor
    /// is compressed (its plain copy unlinked), and the next `0.log` reuses
    /// its inode number; that file is rotated away unread. The chain check
    /// must take it for the hole it is — not skip it as the closed file,
    /// which it is not (other first bytes) — and the closed file must stay
    /// tracked, to be caught up on from its `.gz`.
    #[test]
    fn a_hole_reusing_a_closed_files_inode_number_is_taken_on() {
        reused_inode_number(false);
    }

    /// The same number taken by a new file in another pod's directory,
    /// found by discovery: taken on, not skipped as the closed file.
    #[test]
    fn a_new_file_reusing_a_closed_files_inode_number_is_taken_on() {
        reused_inode_number(true);
    }

    /// Creates `path` with inode number `ino` if the file system gives it
    /// out again (ext4 does, lowest free first); files given other numbers
    /// (freed by tests running alongside) are kept aside in `spare`, so
    /// the next try gets another.
    fn create_with_ino(path: &Path, ino: u64, spare: &Path) -> bool {
        for i in 0..1000 {
            fs::write(path, b"").unwrap();
            if fs::metadata(path).unwrap().ino() == ino {
                return true;
            }
            fs::rename(path, spare.join(i.to_string())).unwrap();
        }
        false
    }

    /// A tailer of `<root>/logs/*/*/*.log` with `opts`, whose positions
    /// live in `<root>/positions.yaml` (a second one made on the same root
    /// is a restart).
    pub(in crate::source) fn tailer_in(root: &Path, opts: TailOptions) -> Tailer {
        tailer_and_output(root, opts).0
    }

    /// [`tailer_in`], and the channel its lines are sent to.
    pub(in crate::source) fn tailer_and_output(
        root: &Path,
        opts: TailOptions,
    ) -> (
        Tailer,
        tokio::sync::mpsc::Receiver<Vec<crate::entry::Entry>>,
    ) {
        let positions = Positions::open(
            &PositionsConfig {
                filename: root.join("positions.yaml"),
                sync_period: Duration::from_secs(10),
                ignore_invalid_yaml: false,
            },
            false,
        )
        .unwrap();
        let metrics = Arc::new(Metrics::new());
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let out = Fanout::to_clients(vec![tx], Budget::new(1 << 20), stop.clone());
        let job = ScrapeJob {
            name: "test".into(),
            targets: vec![crate::source::FileTarget {
                include: format!("{}/logs/*/*/*.log", root.display()),
                labels: LabelSet::new(vec![("job", "test")]),
                ..Default::default()
            }],
            pipeline: Pipeline::new(Vec::new(), metrics.clone()),
            named: Vec::new(),
            dynamic: false,
        };
        let t = Tailer::new(vec![job], opts, out, positions, metrics, stop).unwrap();
        (t, rx)
    }

    /// A rescan leaves to the sweep an idle file whose path a sweep found
    /// naming it within the spread (the sweep looks again in its turn), and
    /// looks itself at one with data to read or no recent look — so a
    /// rotation no sweep has had the chance to see is still found by the
    /// rescan alone.
    #[test]
    fn a_rescan_leaves_an_idle_file_the_sweep_just_looked_at_to_the_sweep() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("logs/ns_pod_uid/app");
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("0.log");
        append(&p, "a-0\n");
        let (mut t, mut rx) = tailer_and_output(tmp.path(), test_opts());
        assert!(t.rescan().is_ok());
        assert!(!t.idle_at(&p), "no sweep has looked at it yet");
        for _ in 0..3 {
            assert!(t.turn().is_ok());
        }
        // Every change to it is reported by its directory's watch: its
        // path is looked at once in `WHOLE_EVENTS_SPREAD` sweeps.
        let id = fingerprint::file_id(&fs::metadata(&p).unwrap());
        assert!(t.files[&id].whole_events);
        let spread = WHOLE_EVENTS_SPREAD;
        for _ in 0..=spread {
            assert!(t.sweep().is_ok());
        }
        assert!(t.idle_at(&p), "read to its end, its path just looked at");
        let looked = t.sweeps;
        t.sweeps = looked + spread + 1;
        assert!(!t.idle_at(&p), "its last look is older than the spread");
        t.sweeps = looked;
        append(&p, "a-1\n");
        if let Some(f) = t.files.get_mut(&id) {
            t.plan.activate(f);
        }
        assert!(!t.idle_at(&p), "data to read");
        assert_eq!(sent(&mut t, &mut rx), ["a-0"]);
    }

    /// The sweep passes over an idle file not due a look without looking
    /// it up (`close_may_act`) — but not one whose time to be parked has
    /// come: with `idle_close` 0 it is parked in a sweep in which it is not
    /// due a look, and with an hour it stays open.
    #[test]
    fn the_sweep_parks_a_quiet_file_even_in_a_sweep_it_is_not_due_a_look() {
        for (idle_close, parked) in [(Duration::ZERO, true), (Duration::from_secs(3600), false)] {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("logs/ns_pod_uid/app");
            fs::create_dir_all(&dir).unwrap();
            let p = dir.join("0.log");
            append(&p, "a-0\n");
            let mut o = test_opts();
            o.idle_close = idle_close;
            let (mut t, mut rx) = tailer_and_output(tmp.path(), o);
            assert!(t.rescan().is_ok());
            for _ in 0..3 {
                assert!(t.turn().is_ok());
            }
            assert_eq!(sent(&mut t, &mut rx), ["a-0"]);
            let id = fingerprint::file_id(&fs::metadata(&p).unwrap());
            let Some(f) = t.files.get_mut(&id) else {
                panic!("{p:?} tracked");
            };
            // Idle, no event pending, and this sweep not its turn to look.
            f.path_event = false;
            let (seq, spread) = (f.seq, look_spread(f, PATH_CHECK_SPREAD));
            assert!(f.at_eof && !f.active && f.src.is_some());
            assert!(t.watch.is_some(), "the look is spread only with inotify");
            t.full_sweep = false;
            t.watch_gaps = false;
            while path_check_due(seq, t.sweeps, spread) {
                t.sweeps += 1;
            }
            assert!(t.sweep().is_ok());
            let open = t.files.get(&id).is_some_and(|f| f.src.is_some());
            assert_eq!(open, !parked, "idle_close {idle_close:?}");
        }
    }

    fn reused_inode_number(in_another_pod: bool) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("logs/ns_pod_uid/app");
        fs::create_dir_all(&dir).unwrap();
        // Made before the inode number is freed (a directory takes one).
        let spare = tmp.path().join("spare");
        fs::create_dir_all(&spare).unwrap();
        let other = tmp.path().join("logs/ns_pod2_uid2/app");
        fs::create_dir_all(&other).unwrap();
        let mut t = tailer_in(tmp.path(), test_opts());
        let p = dir.join("0.log");
        append(&p, "a-0\na-1\n");
        assert!(t.rescan().is_ok());
        let rotated_a = kubelet_rotate(&dir, 1);
        append(&p, "b-0\n");
        assert!(t.rescan().is_ok());
        let a = fingerprint::file_id(&fs::metadata(&rotated_a).unwrap());
        assert!(t.files.get(&a).is_some_and(|f| f.kind == Kind::Moved));
        // Closed for a descriptor, then compressed: its inode number is free.
        t.park(a);
        let ino_a = fs::metadata(&rotated_a).unwrap().ino();
        kubelet_gzip(&rotated_a);
        if in_another_pod {
            // Another pod's new file takes the number.
            let e = other.join("0.log");
            if !create_with_ino(&e, ino_a, &spare) {
                eprintln!(
                    "this file system did not reuse the inode number; the case is not exercised"
                );
                return;
            }
            append(&e, "e-0\n");
            assert!(t.rescan().is_ok());
            assert!(
                t.files
                    .get(&a)
                    .is_some_and(|f| f.src.is_some() && f.kind == Kind::Current && *f.path == *e),
                "the new file that reused the inode number was taken on"
            );
            assert_eq!(t.files.values().filter(|f| f.id.dev == u64::MAX).count(), 1);
            return;
        }
        // The next `0.log` takes it, gets lines and is rotated unread.
        fs::rename(&p, dir.join("0.log.20261122-000002")).unwrap();
        if !create_with_ino(&p, ino_a, &spare) {
            eprintln!("this file system did not reuse the inode number; the case is not exercised");
            return;
        }
        append(&p, "c-0\nc-1\n");
        let rotated_c = kubelet_rotate(&dir, 3);
        append(&p, "d-0\n");
        assert!(t.rescan().is_ok());
        let c = fingerprint::file_id(&fs::metadata(&rotated_c).unwrap());
        assert_eq!(c, a, "the inode number was reused");
        let hole = t.files.get(&c);
        assert!(
            hole.is_some_and(|f| f.src.is_some() && f.fp.len > 0),
            "the rotated file that reused the inode number was taken on"
        );
        let closed: Vec<_> = t
            .files
            .values()
            .filter(|f| f.id.dev == u64::MAX && *f.path == *p)
            .collect();
        assert_eq!(
            closed.len(),
            1,
            "the closed file is still tracked, re-keyed"
        );
        assert_eq!(
            t.positions.committed(closed[0].id),
            Some(0),
            "with its position"
        );
    }

    /// `<tmp>/logs/ns_pod_uid/app/0.log` holding `text`, whose position a
    /// first run saved (reading nothing) before it died: the root, the
    /// container's directory and the file.
    fn saved_by_a_first_run(text: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("logs/ns_pod_uid/app");
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("0.log");
        append(&p, text);
        let mut t = tailer_in(tmp.path(), test_opts());
        assert!(t.rescan().is_ok());
        t.positions.save().unwrap();
        (tmp, dir, p)
    }

    /// Found by the soak (seed 31321, after a `kill -9`: a pod's line 12810
    /// first arrived after its line 12992). The start-up scan takes on the
    /// current file; before the start-up catch-up lists the siblings, it is
    /// rotated, the next `0.log` is rotated too, and the kubelet deletes
    /// the first one's rotated name (rotated files go oldest first). The
    /// sibling left is newer than the file the scan took on, which is no
    /// longer at its path: that file is read before it, not after.
    #[test]
    fn a_current_file_rotated_away_before_the_startup_catch_up_is_read_before_newer_holes() {
        let (tmp, dir, p) = saved_by_a_first_run("a-0\na-1\n");
        // While no agent runs, `a` is rotated.
        kubelet_rotate(&dir, 1);
        append(&p, "c-0\n");
        // The next run's scan takes on `c` and claims `a`'s saved entry…
        let mut t = tailer_in(tmp.path(), test_opts());
        t.candidate(&p, 0, false, None);
        t.claim_unclaimed();
        let c = fingerprint::file_id(&fs::metadata(&p).unwrap());
        // …then `c` is rotated, and so is the next file, `x`; the kubelet
        // deletes the two oldest rotated names (`a` and `c` are held open).
        let rotated_c = kubelet_rotate(&dir, 2);
        append(&p, "x-0\n");
        let rotated_x = kubelet_rotate(&dir, 3);
        let x = fingerprint::file_id(&fs::metadata(&rotated_x).unwrap());
        append(&p, "y-0\n");
        fs::remove_file(dir.join("0.log.20261122-000001")).unwrap();
        fs::remove_file(&rotated_c).unwrap();
        t.chains_started = true;
        t.chain_startup();
        let (fc, fx) = (t.files.get(&c).unwrap(), t.files.get(&x));
        assert!(fx.is_some(), "the newer file was taken on as a hole");
        assert!(
            turn::before(fc, fx.unwrap()),
            "the file the scan took on ({:?}) is read before the newer hole",
            fc.kind
        );
        let first = t
            .files
            .values()
            .filter(|f| turn::may_be_first(f))
            .min_by(|a, b| turn::order(a, b))
            .map(|f| f.stamp.clone());
        assert_eq!(
            first,
            Some(Some("20261122-000001".into())),
            "the oldest file, rotated while no agent ran, comes first"
        );
    }

    /// After a first run read `a`: while no agent ran, `a` rotated, `b`
    /// written and rotated, `c` written. A running tailer has taken `c` on
    /// as its current file (its catch-ups started). (temp dir, the
    /// container's directory, `0.log`, the tailer, `b`'s id, `c`'s id.)
    fn b_rotated_unseen_c_current() -> (tempfile::TempDir, PathBuf, PathBuf, Tailer, FileId, FileId)
    {
        let (tmp, dir, p) = saved_by_a_first_run("a-0\n");
        kubelet_rotate(&dir, 1);
        append(&p, "b-0\n");
        let rotated_b = kubelet_rotate(&dir, 2);
        let b = fingerprint::file_id(&fs::metadata(&rotated_b).unwrap());
        append(&p, "c-0\n");
        let mut t = tailer_in(tmp.path(), test_opts());
        t.candidate(&p, 0, false, None);
        t.claim_unclaimed();
        let c = fingerprint::file_id(&fs::metadata(&p).unwrap());
        t.chains_started = true;
        (tmp, dir, p, t, b, c)
    }

    /// Found by the soak (seed 32026: 320 descriptors, the kubelet keeping
    /// every rotation; a pod's line in file 18 first arrived after one in
    /// file 21). A catch-up's listing was taken while the path's current
    /// file was still at its path; the kubelet rotated it before the
    /// catch-up looked at the path. It is not a file whose rotated copy is
    /// gone (which would be older than every sibling left): its copy is in
    /// a listing taken now, and it is read after the older holes.
    #[test]
    fn a_current_file_rotated_after_the_catch_ups_listing_is_read_after_the_older_holes() {
        let (_tmp, dir, p, mut t, b, c) = b_rotated_unseen_c_current();
        // The catch-up's listing, then `c` rotated before it looks.
        let listed = siblings(&p).unwrap();
        kubelet_rotate(&dir, 3);
        append(&p, "d-0\n");
        let mark = t.positions.chain(&p).unwrap_or_default();
        t.catch_up_listed(&p, 0, mark, listed);
        let (fb, fc) = (t.files.get(&b), t.files.get(&c).unwrap());
        assert!(fb.is_some(), "the older file was taken on as a hole");
        assert_eq!(
            fc.stamp.as_deref(),
            Some("20261122-000003"),
            "placed by its copy"
        );
        assert!(
            turn::before(fb.unwrap(), fc),
            "the older hole is read before the file rotated after the listing"
        );
    }

    /// The same race a step later (soak seed 32026 again, with the fix
    /// above): the kubelet rotates the current file right after the
    /// catch-up looked at its path and found it there. The file stays
    /// current for this catch-up — behind the holes it takes on — and is
    /// placed when its rotation is seen. Fails if the catch-up looks at the
    /// path a second time to place it (it did: then, found gone, it was
    /// placed by the older listing, without a stamp, and read first).
    #[test]
    fn a_current_file_rotated_right_after_the_catch_ups_look_is_read_after_the_older_holes() {
        let (_tmp, dir, p, mut t, b, c) = b_rotated_unseen_c_current();
        let listed = siblings(&p).unwrap();
        let (d, q) = (dir.clone(), p.clone());
        *t.after_path_look.lock().unwrap() = Some(Box::new(move || {
            kubelet_rotate(&d, 3);
            append(&q, "d-0\n");
        }));
        let mark = t.positions.chain(&p).unwrap_or_default();
        t.catch_up_listed(&p, 0, mark, listed);
        assert!(
            t.after_path_look.lock().unwrap().is_none(),
            "rotated after the look"
        );
        let (fb, fc) = (t.files.get(&b), t.files.get(&c).unwrap());
        assert!(fb.is_some(), "the older file was taken on as a hole");
        assert!(
            turn::before(fb.unwrap(), fc),
            "the older hole is read before the file rotated after the look"
        );
        // Its rotation seen (the path's next take-on): still after the hole.
        t.candidate(&p, 0, false, None);
        let (fb, fc) = (t.files.get(&b).unwrap(), t.files.get(&c).unwrap());
        assert_ne!(fc.kind, Kind::Current);
        assert!(turn::before(fb, fc) && !turn::before(fc, fb));
    }

    /// logrotate-style names carry no stamp. A file rotated while no agent
    /// ran (its saved position relocated to `0.log.1`) is older than the
    /// file the start-up scan took on, and stays first once that one is
    /// rotated too: of two files without a stamp, the one rotated first.
    #[test]
    fn of_two_rotated_files_without_a_stamp_the_one_rotated_first_is_read_first() {
        let (tmp, dir, p) = saved_by_a_first_run("a-0\na-1\n");
        let a = fingerprint::file_id(&fs::metadata(&p).unwrap());
        fs::rename(&p, dir.join("0.log.1")).unwrap();
        append(&p, "b-0\n");
        let b = fingerprint::file_id(&fs::metadata(&p).unwrap());
        let mut t = tailer_in(tmp.path(), test_opts());
        assert!(t.rescan().is_ok());
        let kinds = |t: &Tailer| {
            (
                t.files.get(&a).map(|f| f.kind),
                t.files.get(&b).map(|f| f.kind),
            )
        };
        assert_eq!(kinds(&t), (Some(Kind::Moved), Some(Kind::Current)));
        // logrotate shifts the names, and `b` is rotated.
        fs::rename(dir.join("0.log.1"), dir.join("0.log.2")).unwrap();
        fs::rename(&p, dir.join("0.log.1")).unwrap();
        append(&p, "c-0\n");
        assert!(t.rescan().is_ok());
        assert_eq!(kinds(&t), (Some(Kind::Moved), Some(Kind::Moved)));
        let (fa, fb) = (t.files.get(&a).unwrap(), t.files.get(&b).unwrap());
        assert!(
            turn::before(fa, fb),
            "the file rotated while stopped is read first"
        );
        assert!(!turn::before(fb, fa));
    }

    /// Found by the soak (seed 402: lines of one stream out of order after a
    /// restart). A saved entry with an empty fingerprint (its file was
    /// empty at the last save) identifies nothing but an inode number. If
    /// the number is given to the next `0.log` between the start-up scan
    /// and the claim of unclaimed entries, the entry must not take that
    /// file over as "its" file moved: it would be read (unstamped, so
    /// first) before the rotated files older than it.
    #[test]
    fn an_empty_saved_entry_does_not_take_over_a_new_file_with_its_inode_number() {
        // The first run saves the empty file's position, and dies.
        let (tmp, dir, p) = saved_by_a_first_run("");
        let spare = tmp.path().join("spare");
        fs::create_dir_all(&spare).unwrap();
        let ino_f = fs::metadata(&p).unwrap().ino();
        // While no agent runs, the file gets lines and is rotated.
        append(&p, "a-0\na-1\n");
        let rotated_a = kubelet_rotate(&dir, 18);
        append(&p, "x-0\n");
        // The next run's scan takes on the current file…
        let mut t = tailer_in(tmp.path(), test_opts());
        t.candidate(&p, 0, false, None);
        // …which is rotated before the claim; the first rotated file is
        // compressed and the next `0.log` reuses its inode number.
        kubelet_rotate(&dir, 19);
        kubelet_gzip(&rotated_a);
        fs::remove_file(&p).unwrap();
        if !create_with_ino(&p, ino_f, &spare) {
            eprintln!("this file system did not reuse the inode number; the case is not exercised");
            return;
        }
        append(&p, "c-0\n");
        t.claim_unclaimed();
        t.chains_started = true;
        t.chain_startup();
        let first = t
            .files
            .values()
            .filter(|f| turn::may_be_first(f))
            .min_by(|a, b| turn::order(a, b))
            .map(|f| (f.kind, f.stamp.clone()));
        assert_eq!(
            first,
            Some((Kind::Gz, Some("20261122-000018".into()))),
            "the oldest file of the stream is read first"
        );
        assert!(
            !t.files
                .values()
                .any(|f| *f.path == *p && f.kind == Kind::Moved && f.stamp.is_none()),
            "the new file is not taken for the empty entry's file"
        );
    }

    /// Found by the soak (seed 623: the first files of pods that arrived
    /// while every descriptor held a rotated file with unread data, lost
    /// without a count after a restart). A path found at the descriptor
    /// bound and left for later is known to this run: its watermark is
    /// recorded (and saved) at once, so that files it rotates before it is
    /// taken on are caught up — by this run, or by the next one, which
    /// would otherwise take them for history.
    #[test]
    fn a_path_left_for_later_at_the_descriptor_bound_is_caught_up_after_a_restart() {
        let tmp = tempfile::tempdir().unwrap();
        let a = tmp.path().join("logs/ns_a_uid/app");
        let b = tmp.path().join("logs/ns_b_uid/app");
        fs::create_dir_all(&a).unwrap();
        fs::create_dir_all(&b).unwrap();
        let mut one = test_opts();
        one.max_open_files = 1;
        let mut stamps = Vec::new();
        {
            let mut t = tailer_in(tmp.path(), one);
            append(&a.join("0.log"), "a-0\n");
            assert!(t.rescan().is_ok());
            // A's file, rotated unread, holds the only descriptor.
            kubelet_rotate(&a, 1);
            append(&b.join("0.log"), "b-0\n");
            assert!(t.rescan().is_ok());
            assert!(
                !t.files.values().any(|f| f.path.starts_with(&b)),
                "B is left for later"
            );
            for n in 1..=2 {
                append(&b.join("0.log"), &format!("b-{n}\n"));
                let r = kubelet_rotate(&b, n);
                stamps.push(crate::source::chain::stamp_of_path(&r, &b.join("0.log")));
                kubelet_gzip(&r);
            }
            t.positions.save().unwrap();
        }
        // The next run, with descriptors to spare.
        let mut t = tailer_in(tmp.path(), test_opts());
        assert!(t.rescan().is_ok());
        let mut got: Vec<_> = t
            .files
            .values()
            .filter(|f| f.path.starts_with(&b) && f.kind != Kind::Current)
            .map(|f| f.stamp.as_deref().map(String::from))
            .collect();
        got.sort();
        assert_eq!(got, stamps, "B's rotated files are caught up");
    }

    /// Found by the soak (seed 926: 320 descriptors, thousands of `.gz`
    /// files to catch up on; the catch-up crawled). At the descriptor
    /// bound only the closed file that holds its stream back may take a
    /// descriptor it does not have (overdraw the bound, close a file
    /// waiting behind it); the others wait for a free one. Before, every
    /// sweep reopened each closed rotated file by closing another.
    #[test]
    fn at_the_bound_only_the_file_holding_its_stream_back_overdraws() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("logs/ns_pod_uid/app");
        fs::create_dir_all(&dir).unwrap();
        let mut opts = test_opts();
        opts.max_open_files = 2;
        let mut t = tailer_in(tmp.path(), opts);
        append(&dir.join("0.log"), "a\n");
        assert!(t.rescan().is_ok());
        // Rotated unseen, many times (after the start: not history).
        for n in 1..=(wait::OVERDRAFT as u32 + 8) {
            append(&dir.join("0.log"), &format!("r-{n}\n"));
            kubelet_rotate(&dir, n);
        }
        assert!(t.rescan().is_ok());
        let rotated = t.files.values().filter(|f| f.kind != Kind::Current).count();
        assert!(rotated > wait::OVERDRAFT, "{rotated} rotated files tracked");
        for _ in 0..3 {
            t.plan_pass();
            assert!(t.sweep().is_ok());
        }
        assert!(
            t.open <= 2 + 1,
            "{} descriptors open at a bound of 2: only the stream's first file may overdraw",
            t.open
        );
        let first = t
            .files
            .values()
            .filter(|f| turn::may_be_first(f))
            .min_by(|a, b| turn::order(a, b))
            .map(|f| (f.src.is_some(), f.stamp.clone()));
        assert_eq!(
            first,
            Some((true, Some("20261122-000001".into()))),
            "the stream's first file is open"
        );
    }

    /// Found by the soak (seed 1902, one pod's lines 9943–10268 out of
    /// order): at the descriptor bound a current file was closed, written
    /// and rotated while closed, and the next `0.log` rotated too. The
    /// path's catch-up ran before the closed file's own check had noticed
    /// (that waits for a descriptor): it gave the closed file its rotated
    /// name's stamp but left it a *current* file, which holds no stream
    /// back, so the newer rotated file (a hole) was read first. A file the
    /// catch-up finds at a rotated name is rotated: it is read, before
    /// anything newer of its stream, as soon as it has a descriptor.
    #[test]
    fn a_closed_current_file_the_catch_up_finds_rotated_is_read_before_newer_files() {
        let (_tmp, dir, p, mut t, mut rx, _) = parked_after("a-0\na-1\n");
        append(&p, "a-2\na-3\n");
        kubelet_rotate(&dir, 2);
        append(&p, "b-0\n");
        kubelet_rotate(&dir, 3);
        append(&p, "c-0\n");
        t.catch_up_chain(&p, 0);
        let got = settle(&mut t, &mut rx);
        assert_eq!(got, ["a-0", "a-1", "a-2", "a-3", "b-0", "c-0"]);
    }

    /// The same in the seed-1902 replay once the first was fixed: the
    /// closed file's rotated copy had been compressed, and its inode number
    /// given to the path's next `0.log` — which, by number alone, looked
    /// like the closed file still in place.
    #[test]
    fn a_closed_current_file_found_in_a_gz_is_rotated_though_its_number_is_back_at_its_path() {
        let (tmp, dir, p, mut t, mut rx, a) = parked_after("a-0\n");
        let spare = tmp.path().join("spare");
        fs::create_dir_all(&spare).unwrap();
        append(&p, "a-1\n");
        let first = kubelet_rotate(&dir, 1);
        kubelet_gzip(&first);
        append(&p, "b-0\n");
        fs::rename(&p, dir.join("0.log.20261122-000002")).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        if !create_with_ino(&p, a.ino, &spare) {
            eprintln!("this file system did not reuse the inode number; the case is not exercised");
            return;
        }
        append(&p, "c-0\n");
        t.catch_up_chain(&p, 0);
        assert_eq!(settle(&mut t, &mut rx), ["a-0", "a-1", "b-0", "c-0"]);
    }

    /// Found by the soak (seed 1615): at the descriptor bound, a stream's
    /// rotated files caught up on are tracked closed, and each was reopened
    /// only by the once-a-second sweep — one file per stream a second,
    /// 5,600 `.gz` files not caught up in 5 minutes. A finished `.gz` frees
    /// its descriptor at once, and the next closed file of its stream takes
    /// it at the next plan: the whole chain is read in read turns alone.
    #[test]
    fn a_streams_closed_rotated_files_are_read_one_after_another_without_a_sweep() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("logs/ns_pod_uid/app");
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("0.log");
        append(&p, "a-0\n");
        let opts = TailOptions {
            max_open_files: 2,
            ..test_opts()
        };
        let (mut t, mut rx) = tailer_and_output(tmp.path(), opts);
        assert!(t.rescan().is_ok());
        assert!(t.turn().is_ok());
        // Rotated and compressed five times while the tailer looked away.
        let mut want = vec!["a-0".to_string()];
        for n in 1..=5u32 {
            let ls = [format!("r{n}-0"), format!("r{n}-1")];
            append(&p, &format!("{}\n{}\n", ls[0], ls[1]));
            want.extend(ls);
            let rotated = kubelet_rotate(&dir, n);
            if n > 1 {
                kubelet_gzip(&rotated);
            }
        }
        append(&p, "c-0\n");
        want.push("c-0".into());
        // The rescan sees the rotation and takes the holes on, closed.
        assert!(t.rescan().is_ok());
        assert!(
            t.files.values().filter(|f| f.src.is_none()).count() >= 3,
            "the holes were taken on closed, at the bound"
        );
        for _ in 0..20 {
            assert!(t.turn().is_ok());
        }
        // The current file, taken on once the chain had room.
        assert!(t.rescan().is_ok());
        for _ in 0..5 {
            assert!(t.turn().is_ok());
        }
        let got = sent(&mut t, &mut rx);
        assert_eq!(got, want);
    }

    /// Found by the soak (seed 1615: a whole file of 4–6 pods never read,
    /// another read twice): a closed current file was rotated, compressed
    /// and its inode number given to the next `0.log`, which was rotated
    /// too. Its reopening found its `.gz`, and the catch-up its rotation
    /// starts took the sibling with that inode number for the hole it is,
    /// re-keying the closed file to free the number — after which the
    /// reopening gave the `.gz` to the file now under the number: the hole.
    #[test]
    fn a_closed_file_found_in_its_gz_while_a_hole_takes_its_inode_number_is_kept_apart() {
        closed_file_rotated_and_its_inode_number_reused(true);
    }

    /// The same, the rotated file deleted instead of compressed: the
    /// closed file is given up (its unread line counted lost) and finished
    /// — and its identity, still waiting for acknowledgements, must not
    /// claim the sibling that has its inode number now.
    #[test]
    fn a_closed_file_deleted_while_a_hole_takes_its_inode_number_does_not_claim_the_hole() {
        closed_file_rotated_and_its_inode_number_reused(false);
    }

    fn closed_file_rotated_and_its_inode_number_reused(compressed: bool) {
        let (tmp, dir, p, mut t, mut rx, a) = parked_after("a-0\n");
        let spare = tmp.path().join("spare");
        fs::create_dir_all(&spare).unwrap();
        append(&p, "a-1\n");
        let first = kubelet_rotate(&dir, 1);
        fs::remove_file(&p).unwrap();
        if compressed {
            kubelet_gzip(&first);
        } else {
            fs::remove_file(&first).unwrap();
        }
        if !create_with_ino(&p, a.ino, &spare) {
            eprintln!("this file system did not reuse the inode number; the case is not exercised");
            return;
        }
        append(&p, "b-0\nb-1\n");
        kubelet_rotate(&dir, 2);
        append(&p, "c-0\n");
        assert!(t.check_parked(a).is_ok());
        let got = settle(&mut t, &mut rx);
        let want: &[&str] = if compressed {
            &["a-0", "a-1", "b-0", "b-1", "c-0"]
        } else {
            &["a-0", "b-0", "b-1", "c-0"]
        };
        assert_eq!(got, want);
    }

    /// Found by the soak (seed 1615: one pod's line 124 arrived after line
    /// 431): a `0.log` closed while still empty names nothing but its inode
    /// number. It was filled, rotated, compressed and unlinked, and the
    /// number given to a later `0.log` — which its reopening took for it
    /// (same number at its path, and an empty fingerprint matches any
    /// content), reading that later file before the rotated ones between.
    /// Its birth time (`statx`) tells the two apart: the closed file is
    /// rotated away, its content caught up on from the `.gz`, first.
    #[test]
    fn a_closed_empty_files_inode_number_back_at_its_path_is_another_file() {
        let Some((_tmp, _, p, mut t, mut rx, a)) = empty_file_filled_and_its_number_reused() else {
            return;
        };
        append(&p, "b-0\n");
        assert!(t.check_parked(a).is_ok());
        assert_eq!(settle(&mut t, &mut rx), ["a-0", "b-0"]);
    }

    /// Its sequel, in the same replay (whole files of three pods never
    /// read): the later file that took the number was rotated in turn
    /// before it could be taken on (the descriptor bound), and the closed
    /// file — given up, finished, waiting for acknowledgements — claimed
    /// that rotated file as its own by number (an empty fingerprint matches
    /// anything), so the catch-up skipped it. The finished file's birth
    /// time tells them apart too.
    #[test]
    fn a_finished_empty_files_inode_number_in_a_rotated_sibling_is_another_file() {
        let Some((_tmp, dir, p, mut t, mut rx, a)) = empty_file_filled_and_its_number_reused()
        else {
            return;
        };
        append(&p, "b-0\n");
        kubelet_rotate(&dir, 2);
        append(&p, "c-0\n");
        assert!(t.check_parked(a).is_ok());
        assert_eq!(settle(&mut t, &mut rx), ["a-0", "b-0", "c-0"]);
    }

    /// The likely cause of soak seed 5421's loss (one whole rotated file
    /// never read, its `.gz` on disk): a `0.log` parked while still empty
    /// is filled and rotated; the catch-up identifies its rotated sibling
    /// and, before the watermark moves past it, widens the parked file's
    /// empty fingerprint from it — but the kubelet's next rotation may
    /// compress and unlink the sibling between the two. Widening then
    /// failed (the sibling was opened again by name), the watermark moved
    /// on, and the parked file, reopened, matched no `.gz`: its lines were
    /// gone. Widened through the descriptor that identified it, it is found
    /// in its `.gz` and read before the next file.
    #[test]
    fn a_sibling_compressed_while_identified_still_widens_its_file() {
        let (_tmp, dir, p, mut t, mut rx, a) = parked_after("");
        append(&p, "a-0\na-1\n");
        let rotated = kubelet_rotate(&dir, 1);
        append(&p, "b-0\n");
        let sibs = siblings(&p).unwrap();
        assert_eq!(sibs.len(), 1);
        let (id, opened) = t.sibling_owner(&p, &sibs[0]).unwrap().unwrap();
        assert_eq!(id, a, "the rotated sibling is the parked file");
        assert!(opened.is_some(), "identified through a descriptor");
        // The kubelet's next rotation compresses it, between the two steps.
        kubelet_gzip(&rotated);
        assert!(t.widen_from_sibling(id, opened.as_ref()).is_ok());
        drop(opened);
        assert_eq!(
            t.files.get(&a).map(|f| f.fp.len),
            Some(4 + 4),
            "the empty fingerprint is widened over the file's content"
        );
        // The rest of the catch-up: the watermark passes the sibling.
        t.found_rotated(a, &p);
        t.positions.set_chain(p.as_path(), &sibs[0].stamp);
        assert_eq!(settle(&mut t, &mut rx), ["a-0", "a-1", "b-0"]);
    }

    /// A hole whose plain file the kubelet compressed and unlinked after
    /// the catch-up listed it is caught up on from its `.gz` in the same
    /// catch-up, not skipped until the path's next rotation (its stream's
    /// newer lines would be read first meanwhile).
    #[test]
    fn a_hole_compressed_after_the_listing_is_taken_from_its_gz_at_once() {
        let (_tmp, dir, p, mut t, mut rx, _) = parked_after("a-0\n");
        let mark = t.positions.chain(p.as_path()).unwrap_or_default();
        kubelet_rotate(&dir, 1);
        append(&p, "b-0\n");
        let never_seen = kubelet_rotate(&dir, 2);
        append(&p, "c-0\n");
        let listing = siblings(&p).unwrap();
        assert_eq!(listing.len(), 2);
        kubelet_gzip(&never_seen);
        t.catch_up_listed(&p, 0, mark, listing);
        assert_eq!(
            t.positions.chain(p.as_path()).as_deref(),
            Some("20261122-000002"),
            "the watermark passed the compressed hole"
        );
        assert!(
            t.files
                .values()
                .any(|f| f.kind == Kind::Gz && *f.path == *p),
            "the hole was taken on from its `.gz`"
        );
        assert_eq!(settle(&mut t, &mut rx), ["a-0", "b-0", "c-0"]);
    }

    /// At start-up a new path's watermark is set from the walk's listing
    /// of its directory (no second read of it) only when that listing
    /// named the file opened at the path. Here the kubelet rotates between
    /// the walk and the opening: the listing has no sibling, and taken as
    /// it is, the path would be settled — its rotated file, written since
    /// the start, read only at the path's next rotation, after newer lines.
    #[test]
    fn a_rotation_between_the_walk_and_the_opening_is_caught_up_at_start() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("logs/ns_pod_uid/app");
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("0.log");
        let (mut t, mut rx) = tailer_and_output(tmp.path(), test_opts());
        // Written after the start (a file time can lag the clock a tick).
        std::thread::sleep(Duration::from_millis(20));
        append(&p, "a-0\na-1\n");
        let walked = Listed {
            ino: fs::metadata(&p).unwrap().ino(),
            stamps: Stamps::default(),
            walked_at: std::time::SystemTime::now(),
        };
        assert!(siblings(&p).unwrap().is_empty());
        kubelet_rotate(&dir, 1);
        append(&p, "b-0\n");
        t.candidate(&p, 0, true, Some(walked));
        t.claim_unclaimed();
        t.chains_started = true;
        t.chain_startup();
        assert_eq!(sent(&mut t, &mut rx), Vec::<String>::new());
        assert_eq!(settle(&mut t, &mut rx), ["a-0", "a-1", "b-0"]);
    }

    /// The walk's listing is what the start-up takes when it named the
    /// file opened: a sibling the listing does not show (here a history
    /// file hidden from it on purpose) leaves the watermark where the
    /// listing put it.
    #[test]
    fn the_start_up_takes_the_walks_listing_of_the_file_it_opened() {
        let tmp = tempfile::tempdir().unwrap();
        let [p, q] = ["ns_pod_uid", "ns_pod2_uid2"].map(|pod| {
            let dir = tmp.path().join("logs").join(pod).join("app");
            fs::create_dir_all(&dir).unwrap();
            let p = dir.join("0.log");
            append(&p, "old\n");
            kubelet_rotate(&dir, 1);
            append(&p, "x-0\n");
            p
        });
        if fs::metadata(&p).unwrap().created().is_err() {
            eprintln!("this file system has no birth times; the walk's listing is never taken");
            return;
        }
        // The rotated files are history: last written before the start;
        // the current ones were born before the walk (by more than a tick
        // of the file system's clock).
        std::thread::sleep(Duration::from_millis(100));
        let mut t = tailer_in(tmp.path(), test_opts());
        // Listings that leave out the one rotated file.
        let listed = |ino| Listed {
            ino,
            stamps: Stamps::default(),
            walked_at: std::time::SystemTime::now(),
        };
        let ino = fs::metadata(&p).unwrap().ino();
        t.candidate(&p, 0, true, Some(listed(ino)));
        assert_eq!(t.positions.chain(p.as_path()).as_deref(), Some(""));
        // Listed afresh when it named another file.
        t.candidate(&q, 0, true, Some(listed(u64::MAX)));
        assert_eq!(
            t.positions.chain(q.as_path()).as_deref(),
            Some("20261122-000001")
        );
    }

    type Output = tokio::sync::mpsc::Receiver<Vec<crate::entry::Entry>>;

    /// A tailer that read `text` from `<tmp>/logs/ns_pod_uid/app/0.log`
    /// and then closed that file (parked, as at the descriptor bound):
    /// the directory, the path, the tailer, its output and the file's id.
    fn parked_after(text: &str) -> (tempfile::TempDir, PathBuf, PathBuf, Tailer, Output, FileId) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("logs/ns_pod_uid/app");
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("0.log");
        append(&p, text);
        let (mut t, rx) = tailer_and_output(tmp.path(), test_opts());
        assert!(t.rescan().is_ok());
        assert!(t.turn().is_ok());
        let a = fingerprint::file_id(&fs::metadata(&p).unwrap());
        t.park(a);
        (tmp, dir, p, t, rx, a)
    }

    /// [`parked_after`] an empty file, which is then filled (`a-0`),
    /// rotated, compressed and unlinked, and its inode number given to a
    /// new `0.log` (born later); `None` where the file system reuses no
    /// number or keeps no birth times (the case cannot be made).
    fn empty_file_filled_and_its_number_reused(
    ) -> Option<(tempfile::TempDir, PathBuf, PathBuf, Tailer, Output, FileId)> {
        let (tmp, dir, p, t, rx, a) = parked_after("");
        let spare = tmp.path().join("spare");
        fs::create_dir_all(&spare).unwrap();
        let born = fs::metadata(&p).unwrap().created();
        append(&p, "a-0\n");
        let first = kubelet_rotate(&dir, 1);
        fs::remove_file(&p).unwrap();
        kubelet_gzip(&first);
        // A birth time ticks in nanoseconds, but not every clock does.
        std::thread::sleep(Duration::from_millis(20));
        if !create_with_ino(&p, a.ino, &spare) {
            eprintln!("this file system did not reuse the inode number; the case is not exercised");
            return None;
        }
        if born.is_err() || fs::metadata(&p).unwrap().created().ok() == born.ok() {
            eprintln!("this file system has no birth times; the case is not exercised");
            return None;
        }
        Some((tmp, dir, p, t, rx, a))
    }

    /// Lets `t` work — read turns, full sweeps, rescans — and returns the
    /// lines it sent, in order.
    fn settle(t: &mut Tailer, rx: &mut Output) -> Vec<String> {
        for _ in 0..5 {
            assert!(t.turn().is_ok());
            t.full_sweep = true;
            assert!(t.sweep().is_ok());
            assert!(t.rescan().is_ok());
        }
        assert!(t.turn().is_ok());
        sent(t, rx)
    }

    /// The lines `t` sent so far, in order.
    fn sent(t: &mut Tailer, rx: &mut Output) -> Vec<String> {
        assert!(t.out.flush().is_ok());
        let mut got = Vec::new();
        while let Ok(batch) = rx.try_recv() {
            got.extend(batch.iter().map(|e| e.line.to_string()));
        }
        got
    }
}
