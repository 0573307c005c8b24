//! The tailer's discovery half: expanding the globs, taking on new files
//! (resuming from saved or imported positions), relocating saved positions
//! whose files moved while unobserved, and reacting to inotify changes.
//!
//! Must never: start a known file from 0 when a matching saved position
//! exists, track one identity twice, or let a file take over the saved
//! position of another whose inode number it reuses.

use super::*;
use crate::source::chain::Listed;

impl Tailer {
    // ------------------------------------------------------------- discovery

    pub(super) fn rescan(&mut self) -> Result<(), Stopped> {
        // Globs the walk takes are expanded together, their directories
        // watched one by one as the walk reaches them; the others by the
        // glob crate, under a recursive watch of their prefix.
        let (walkable, globbed): (Vec<usize>, Vec<usize>) = self
            .targets
            .live()
            .map(|(ti, _)| ti)
            .partition(|&ti| self.targets.get(ti).is_some_and(|t| t.walk().is_some()));
        let mut errs: Vec<(PathBuf, io::Error)> = Vec::new();
        let mut found: Vec<FoundPath> = Vec::new();
        let mut prefix_unwatched = false;
        for ti in globbed {
            let Some(t) = self.targets.get(ti) else {
                continue;
            };
            if let Some(w) = self.watch.as_mut() {
                if let Err(e) = w.watch(&t.prefix) {
                    prefix_unwatched = true;
                    errs.push((t.prefix.clone(), io::Error::other(e.to_string())));
                }
            }
            let mut out = Vec::new();
            t.expand(&mut Default::default(), &mut out, &mut |p, e| {
                errs.push((p.to_path_buf(), io::Error::new(e.kind(), e.to_string())))
            });
            found.extend(out.into_iter().map(|p| (p, ti, false, None)));
        }
        if let Some(w) = self.watch.as_mut() {
            w.new_pass();
        }
        if let Some(walked) = self.walk(&walkable, None, true) {
            if let Some(w) = self.watch.as_mut() {
                w.keep_walked();
            }
            self.watch_gaps = prefix_unwatched || walked.watch_failed;
            errs.extend(walked.errs);
            found.extend(walked.found);
        }
        // Taken on in target order, as the first target matching a file
        // claims it (stable: each target's paths in its walk's order).
        found.sort_by_key(|&(_, ti, _, _)| ti);
        self.discovery_errors(errs);
        self.reserve_for(found.len());
        for (p, ti, inside, listed) in found {
            if !self.idle_at(&p) {
                self.candidate(&p, ti, inside, listed);
            }
        }
        self.claim_unclaimed();
        self.collect_targets();
        if self.chains_started {
            self.chain_housekeeping();
        } else {
            self.chains_started = true;
            self.chain_startup();
        }
        self.metrics.files_active_total.set(self.files.len() as i64);
        Ok(())
    }

    /// Room for `n` files at the first rescan, when the tables are empty:
    /// at 5,000 files they grew by doubling, hashing every path again at
    /// each step. Later rescans find mostly files already held.
    fn reserve_for(&mut self, n: usize) {
        if self.files.is_empty() {
            self.files.reserve(n);
            self.by_path.reserve(n);
        }
    }

    /// Whether a rescan may leave `path` alone: it names a current file,
    /// open and idle (read to its end, nothing new since), and the sweep
    /// found the path naming it within the file's spread of sweeps
    /// ([`look_spread`]) — the sweep looks again in its next turn, and at once after
    /// an event (see `Look` in `tailer.rs`). `candidate`'s `stat` would
    /// find what that look finds, a few seconds sooner at most; at 5,000
    /// idle files it was 5,000 path lookups every rescan. A file with data
    /// to read is still looked at here (while it is read, its path is
    /// checked only at its end: the rescan pins its successor meanwhile),
    /// and so is one no sweep has looked at yet.
    pub(super) fn idle_at(&self, path: &Path) -> bool {
        self.by_path
            .get(path)
            .and_then(|id| self.files.get(id))
            .is_some_and(|f| {
                f.kind == Kind::Current
                    && f.src.is_some()
                    && f.at_eof
                    && !f.active
                    && f.path_looked != 0
                    && self.sweeps.wrapping_sub(f.path_looked) <= look_spread(f, PATH_CHECK_SPREAD)
            })
    }

    /// New directories an event named: walks the globs under them only
    /// (watching what it reads first), so that a new pod costs its own
    /// directories, not a rescan of every pod's. The rest of a rescan —
    /// letting go of directories and targets, relocating saved positions,
    /// the chains' housekeeping — waits for the periodic one. Targets the
    /// walk cannot take (`**`, relative globs) get the full rescan.
    pub(super) fn rescan_under(&mut self, roots: Vec<PathBuf>) -> Result<(), Stopped> {
        let roots: Vec<&Path> = roots.iter().map(PathBuf::as_path).collect();
        let tis = self.targets.under(&roots);
        if !self.walk_targets(&tis, Some(&roots)) {
            // At most once a second, as events keep coming.
            self.rescan_soon = true;
        }
        Ok(())
    }

    /// New targets (slots `added`): their globs walked alone, as in
    /// [`Self::rescan_under`].
    pub(super) fn rescan_targets(&mut self, added: &[usize]) -> Result<(), Stopped> {
        if !self.walk_targets(added, None) {
            self.rescan_now = true;
        }
        Ok(())
    }

    /// Walks the globs of targets `tis` — whole, or only under `roots` —
    /// watching every directory before it is read, and takes on the files
    /// found. False, having done nothing, if one of them cannot be walked
    /// (the caller rescans everything instead).
    fn walk_targets(&mut self, tis: &[usize], roots: Option<&[&Path]>) -> bool {
        let Some(walked) = self.walk(tis, roots, false) else {
            return false;
        };
        self.watch_gaps |= walked.watch_failed;
        self.discovery_errors(walked.errs);
        for (p, ti, inside, listed) in walked.found {
            self.candidate(&p, ti, inside, listed);
        }
        self.metrics.files_active_total.set(self.files.len() as i64);
        true
    }

    /// The walk of [`Self::walk_targets`] (and of a full rescan's walkable
    /// targets, `full`), without taking anything on: `None` if one of `tis`
    /// cannot be walked. A full rescan after the first reuses the listings
    /// of directories unchanged since the last one, and keeps its own.
    fn walk(&mut self, tis: &[usize], roots: Option<&[&Path]>, full: bool) -> Option<Walked> {
        // At start-up each new path's watermark is set from the listing
        // that found it (see `chain_init`); later, a new path's catch-up
        // lists its directory afresh, after the file is open.
        let reuse = full && self.chains_started;
        let trust = reuse && self.trust_inotify();
        let live: Vec<(usize, &discover::Target)> = tis
            .iter()
            .filter_map(|&ti| Some((ti, self.targets.get(ti)?)))
            .collect();
        let Some(walks) = live
            .iter()
            .map(|(_, t)| t.walk())
            .collect::<Option<Vec<&crate::source::expand::Walk>>>()
        else {
            // Not walked: the next full rescan looks at everything.
            self.look_all |= reuse;
            return None;
        };
        let mut outs: Vec<Vec<PathBuf>> = vec![Vec::new(); walks.len()];
        let mut errs: Vec<(PathBuf, io::Error)> = Vec::new();
        let mut watch_errs = Vec::new();
        let mut scan = if reuse {
            let changed = std::mem::take(&mut self.changed_dirs);
            let kept = std::mem::take(&mut self.kept);
            crate::source::expand::Scan::reusing(kept, trust.then_some(changed))
        } else if self.chains_started {
            crate::source::expand::Scan::default()
        } else {
            crate::source::expand::Scan::keep_siblings()
        };
        let watch = &mut self.watch;
        let mut on_err = |p: &Path, e: &io::Error| {
            errs.push((p.to_path_buf(), io::Error::new(e.kind(), e.to_string())))
        };
        let mut before_read = |dirs: &[&Path]| {
            if let Some(w) = watch.as_mut() {
                watch_errs.extend(w.watch_dirs(dirs));
            }
        };
        match roots {
            Some(roots) => {
                scan.expand_under(&walks, roots, &mut outs, &mut on_err, &mut before_read)
            }
            None => scan.expand_all(&walks, &mut outs, &mut on_err, &mut before_read),
        }
        let mut found: Vec<FoundPath> = Vec::new();
        for ((ti, t), mut out) in live.iter().zip(outs) {
            t.drop_excluded(&mut out, 0);
            // Found from the target's prefix through real directories only:
            // inside its tree by construction, no `realpath` needed.
            let from_prefix = t.walk().is_some_and(|w| w.base() == t.prefix);
            found.extend(out.into_iter().map(|p| {
                let inside = from_prefix && !scan.through_link(&p);
                let listed = scan.siblings_of(&p);
                (p, *ti, inside, listed)
            }));
        }
        errs.extend(watch_failure(&watch_errs));
        if reuse {
            self.last_walk = (scan.reads, scan.reused(), scan.trusted());
            tracing::debug!(
                read = scan.reads,
                unchanged = scan.reused(),
                trusted = scan.trusted(),
                "rescan: directories"
            );
            self.kept = scan.into_kept();
        }
        Some(Walked {
            found,
            errs,
            watch_failed: !watch_errs.is_empty(),
        })
    }

    fn discovery_errors(&mut self, errs: Vec<(PathBuf, io::Error)>) {
        for (p, e) in errs {
            let reason = if e.kind() == io::ErrorKind::PermissionDenied {
                "permission_denied"
            } else {
                "discovery"
            };
            self.file_error(&p, reason, &e);
        }
    }

    /// A path that matched target `ti`: start tailing it unless known.
    /// `inside`: the rescan's walk reached it through real directories from
    /// the target's prefix, so it cannot lead out of the glob's tree (else
    /// its symlinks are resolved to check). `listed`: the path's rotated
    /// siblings from the start-up walk's listing, for its chain watermark.
    pub(super) fn candidate(
        &mut self,
        path: &Path,
        ti: usize,
        inside: bool,
        listed: Option<Listed>,
    ) {
        let meta = match fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return,
            Err(e) => return self.file_error(path, Self::io_reason(&e), &e),
        };
        if !meta.is_file() {
            return;
        }
        let id = fingerprint::file_id(&meta);
        if let Some(&old) = self.by_path.get(path) {
            if old == id {
                return;
            }
            self.moved(old);
        }
        // Reached by the walk through real entries only: not a symlink.
        let direct = inside;
        if let Some(f) = self.files.get(&id) {
            if f.src.is_some() {
                // The same inode under another matching name (renamed
                // within the glob, or a symlink alias): already tailed.
                return;
            }
            // A closed file under `id`: this one, or a new file reusing its
            // inode number? Looked at before a descriptor is freed for it.
            match open::for_reading(path) {
                Ok(file) if self.free_reused_id(id, &file) => {}
                _ => return,
            }
        }
        let inside = inside
            || self
                .targets
                .get(ti)
                .is_some_and(|t| discover::inside_tree(path, &t.prefix, &self.opts.symlink_roots));
        if !inside {
            return self.file_error(
                path,
                "symlink_outside",
                &"a symlink leads out of the glob's directory; not followed (allow its target with target_config.follow_symlinks_into)",
            );
        }
        if self.open >= self.opts.max_open_files && !self.evict_one() {
            // Retried at the next rescan or change; found by the chain check
            // if it is rotated meanwhile — for which the path's watermark
            // is recorded now (and saved): without one, the next run would
            // take its rotations for history (found by the soak).
            self.chain_init(path, Listed::of(listed, id, fingerprint::born(&meta)));
            return self.file_error(
                path,
                "fd_limit",
                &"every descriptor holds a rotated file with unread data; taking this file on later",
            );
        }
        let file = match open::for_reading(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return,
            Err(e) => return self.file_error(path, Self::io_reason(&e), &e),
        };
        let meta = match file.metadata() {
            Ok(m) => m,
            Err(e) => return self.file_error(path, "io", &e),
        };
        let id = fingerprint::file_id(&meta);
        if !self.free_reused_id(id, &file) {
            return;
        }
        let head = match fingerprint::Head::read(&file, meta.len()) {
            Ok(h) => h,
            Err(e) => return self.file_error(path, "io", &e),
        };
        let fp = head.fingerprint();
        let size = meta.len();
        let start = match self.positions.saved(id) {
            Some(s) => match head.matches(&file, s.fingerprint()) {
                Ok(true) if s.offset <= size => s.offset,
                Ok(true) => {
                    tracing::warn!(file = %path.display(), saved = s.offset, size,
                        "file is shorter than its saved position (truncated while stopped); reading from the start");
                    0
                }
                _ => {
                    // The earlier file may live on compressed: `add` sets
                    // its entry aside and looks for it.
                    tracing::info!(file = %path.display(),
                        "saved position belongs to an earlier file with the same inode; reading from the start");
                    0
                }
            },
            None => match self.positions.promtail_offset(path) {
                Some(o) if o <= size => o,
                _ => 0,
            },
        };
        let whole_events = std::os::unix::fs::MetadataExt::nlink(&meta) == 1
            && (direct || fs::symlink_metadata(path).is_ok_and(|m| !m.file_type().is_symlink()));
        self.add(
            path,
            ti,
            Src::Plain(file),
            id,
            fp,
            start,
            Kind::Current,
            None,
            fingerprint::born(&meta),
        );
        if let Some(f) = self.files.get_mut(&id) {
            f.saw_size(size);
            f.whole_events = whole_events;
        }
        // A new file at a known path: its predecessor was rotated, and
        // files between the two may have come and gone unseen. (At start-up
        // this waits until saved positions are relocated.)
        if self.chains_started {
            self.catch_up_chain(path, ti);
        } else {
            self.chain_init(path, Listed::of(listed, id, fingerprint::born(&meta)));
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn add(
        &mut self,
        path: &Path,
        ti: usize,
        src: Src,
        id: FileId,
        fp: crate::positions::Fingerprint,
        start: u64,
        kind: Kind,
        stamp: Option<String>,
        born: Option<std::time::SystemTime>,
    ) {
        self.rekey_draining(id);
        if let Src::Plain(file) = &src {
            self.set_aside_reused(id, file);
        }
        let Some(t) = self.targets.get(ti) else {
            return;
        };
        let path_s = path.to_string_lossy();
        // Shared with the path's chain watermark, if it has one (saved by
        // an earlier run): the path is kept once.
        let shared = self
            .positions
            .chain_path(path)
            .unwrap_or_else(|| Arc::from(path));
        let tracker = Tracker::new(Position::Offset(start));
        let size = Arc::new(std::sync::atomic::AtomicU64::new(start));
        self.positions
            .track(shared.clone(), id, fp, tracker.clone(), size.clone());
        self.next_seq += 1;
        let job = self.jobs.get(t.job).map_or("", |j| j.name.as_str());
        tracing::debug!(file = %path.display(), job, offset = start, ?kind, ?id, "tailing");
        let f = Tailed {
            id,
            path: shared.clone(),
            job: t.job,
            target: ti,
            stamp: stamp.map(String::into_boxed_str),
            seq: self.next_seq,
            rotated_seq: if kind == Kind::Current {
                u64::MAX
            } else {
                self.next_seq
            },
            size,
            labels: t.labels.with("filename", &path_s),
            metadata: t.spec.metadata.clone().into(),
            pipe: t.pipe,
            orphan: false,
            src: Some(src),
            split: LineSplitter::new(start, self.opts.max_line_bytes),
            tracker,
            fp,
            kind,
            last_data: Instant::now(),
            at_eof: false,
            awaiting_turn: true,
            active: true,
            path_event: false,
            path_looked: 0,
            whole_events: false,
            event_since_look: false,
            m: FileMetrics::new(&self.metrics, &shared),
            warned_utf8: false,
            warned_cut: false,
            parked_ctime: None,
            born,
        };
        if kind == Kind::Current {
            self.by_path.insert(shared, id);
        }
        self.files.insert(id, Box::new(f));
        self.plan.activated(id);
        self.plan.stale = true;
        self.open += 1;
        self.metrics.files_active_total.set(self.files.len() as i64);
        // At the bound (a saved file, a chain hole — or a relocation run
        // inside this very add took the slot discovery had freed): park a
        // quiet file, else keep this one tracked closed.
        self.close_over_bound(id);
    }

    /// An identity no real file has (no device is `u64::MAX`), random so it
    /// cannot collide with one saved by an earlier run. Used for catch-ups
    /// from `.gz` copies and for re-keyed draining entries: keying them by a
    /// real inode number would collide with stale saved entries or new files
    /// reusing that number. At restart such an entry is found again by its
    /// fingerprint only (a `.gz`), which is exactly what it needs.
    pub(super) fn synthetic_id(&mut self) -> FileId {
        FileId {
            dev: u64::MAX,
            ino: self.rng.random(),
        }
    }

    /// A finished file still waiting for acknowledgements whose inode number
    /// is being reused: move its positions entry to a synthetic identity (no
    /// real device is `u64::MAX`), so a crash still finds its unacknowledged
    /// lines (in its `.gz`, by fingerprint) instead of losing the entry to
    /// the new file.
    pub(super) fn rekey_draining(&mut self, id: FileId) {
        if !self.draining.iter().any(|d| d.id == id) {
            return;
        }
        let syn = self.synthetic_id();
        let Some(d) = self.draining.iter_mut().find(|d| d.id == id) else {
            return;
        };
        if !self.positions.rekey(id, syn) {
            self.positions.track(
                d.path.clone(),
                syn,
                d.fp,
                d.tracker.clone(),
                Arc::new(std::sync::atomic::AtomicU64::new(0)),
            );
        }
        d.id = syn;
    }

    /// Whether a file opened as `file` with identity `id` may be taken on
    /// under `id`: no tracked file holds it, or only a closed one that is
    /// not `file` — a file closed for a descriptor, then rotated and
    /// compressed (its plain copy deleted), whose inode number the new file
    /// reuses. That one is moved to a synthetic identity (found again by its
    /// fingerprint in its `.gz`), or taking on its successor would be
    /// skipped as "already tailed" and its lines lost without a word. False
    /// for an open file (an inode cannot be reused while open: the same
    /// file under another name) and for a closed one `file` may be.
    pub(super) fn free_reused_id(&mut self, id: FileId, file: &File) -> bool {
        let Some(f) = self.files.get(&id) else {
            return true;
        };
        let other = matches!(fingerprint::matches_file(file, f.fp), Ok(false))
            || file
                .metadata()
                .is_ok_and(|m| fingerprint::other_birth(f.born, &m));
        if f.src.is_some() || !other {
            return false;
        }
        tracing::debug!(file = %f.path.display(),
            "a closed file's inode number is another file's now; keeping it under a synthetic identity");
        self.rekey(id).is_some()
    }

    /// Moves tracked file `id` (its positions entry too) to a fresh
    /// synthetic identity, and returns it.
    pub(super) fn rekey(&mut self, id: FileId) -> Option<FileId> {
        let gid = self.synthetic_id();
        if self.files.contains_key(&gid) {
            return None;
        }
        let mut f = self.files.remove(&id)?;
        tracing::debug!(file = %f.path.display(), from = ?id, to = ?gid, "re-keyed");
        f.id = gid;
        if !self.positions.rekey(id, gid) {
            self.positions
                .track(f.path.clone(), gid, f.fp, f.tracker.clone(), f.size.clone());
        }
        if self.by_path.get(&f.path) == Some(&id) {
            self.by_path.insert(f.path.clone(), gid);
        }
        if f.active {
            self.plan.activated(gid);
        }
        self.files.insert(gid, f);
        self.plan.stale = true;
        Some(gid)
    }

    /// A loaded entry under `id` that is not `file` — the inode number of a
    /// file rotated away while the agent was down, now another file's (in
    /// any directory): whatever adds `file` (discovery, a chain catch-up, a
    /// relocation) would take the entry over and lose that file's unread
    /// lines without a word. The entry is moved to a synthetic identity and
    /// caught up on from its compressed copy under its own path's target;
    /// if that target is not known yet, the next rescan's claim does it.
    fn set_aside_reused(&mut self, id: FileId, file: &File) {
        let Some(s) = self.positions.saved(id) else {
            return;
        };
        // The same file (resumed at its path, or renamed): not set aside.
        if !matches!(fingerprint::matches_file(file, s.fingerprint()), Ok(false)) {
            return;
        }
        let syn = self.synthetic_id();
        let Some(s) = self.positions.set_aside(id, syn) else {
            return;
        };
        if let Some(ti) = self.targets.find(&s.path) {
            self.relocate_saved(s, ti);
        }
    }

    /// Finds where the saved file `s` went and catches up on it.
    pub(super) fn relocate_saved(&mut self, s: SavedFile, ti: usize) {
        let stamp_of = |p: &Path| crate::source::chain::stamp_of_path(p, &s.path);
        match relocate(&s.path, s.id, s.fingerprint(), s.offset, None) {
            Ok(Some(Found::Plain { path, .. }))
                if s.fingerprint().len == 0
                    && path == s.path
                    && self.by_path.contains_key(path.as_path()) =>
            {
                // Saved while its file was empty, so it names nothing but
                // an inode number; the path's current file, taken on by
                // this scan, is another. The file found at the path under
                // that number is newer still (the current one was rotated
                // since): taken as this entry's file, "moved", it would be
                // read first, before the rotated files older than it (found
                // by the soak). Nothing was read from the entry; that newer
                // file is taken on when the rotation is seen.
                tracing::debug!(file = %s.path.display(), "forgetting the position of a file saved while empty");
                self.positions.forget(s.id);
            }
            Ok(Some(Found::Plain { path, file })) => {
                let meta = file.metadata().ok();
                let size = meta.as_ref().map_or(0, |m| m.len());
                let born = meta.as_ref().and_then(fingerprint::born);
                let start = if s.offset <= size { s.offset } else { 0 };
                let kind = if path == s.path && !self.by_path.contains_key(path.as_path()) {
                    Kind::Current
                } else {
                    Kind::Moved
                };
                if kind == Kind::Moved {
                    tracing::info!(file = %s.path.display(), now = %path.display(),
                        offset = start, "catching up on a file rotated while stopped");
                }
                let stamp = stamp_of(&path);
                self.add(
                    &s.path,
                    ti,
                    Src::Plain(file),
                    s.id,
                    s.fingerprint(),
                    start,
                    kind,
                    stamp,
                    born,
                );
                if let Some(f) = self.files.get(&s.id) {
                    f.saw_size(s.size.max(size));
                }
            }
            Ok(Some(Found::Gz { path, stream })) => {
                tracing::info!(file = %s.path.display(), gz = %path.display(),
                    offset = s.offset, "catching up on a rotated file from its compressed copy");
                // Under a synthetic identity (its inode number is free for
                // reuse), keeping its place among its path's files.
                let id = self.synthetic_id();
                if self.files.contains_key(&id) || self.positions.set_aside(s.id, id).is_none() {
                    return;
                }
                let stamp = stamp_of(&path);
                self.add(
                    &s.path,
                    ti,
                    Src::Gz(stream),
                    id,
                    s.fingerprint(),
                    s.offset,
                    Kind::Gz,
                    stamp,
                    None,
                );
            }
            Ok(_) => {
                let unread = s.size.saturating_sub(s.offset);
                if unread > 0 {
                    self.lost(
                        &s.path,
                        "rotated_away",
                        unread,
                        "a file with unread data was rotated away and deleted while the agent was down",
                    );
                } else {
                    tracing::info!(file = %s.path.display(), offset = s.offset,
                        "a file read to its end is gone; forgetting its position");
                }
                self.positions.forget(s.id);
            }
            Err(e) => self.file_error(&s.path, Self::io_reason(&e), &e),
        }
    }

    /// Whether this full rescan may trust inotify (`super::listing`,
    /// *Trusting inotify*): watching, every directory watched at the last
    /// rescan, no event lost since, and not every [`FULL_LOOK_EVERY`]-th.
    fn trust_inotify(&mut self) -> bool {
        self.full_rescans = self.full_rescans.wrapping_add(1);
        let lost = std::mem::take(&mut self.look_all);
        self.watch.is_some()
            && !self.watch_gaps
            && !lost
            && !self.full_rescans.is_multiple_of(FULL_LOOK_EVERY)
    }

    /// Remembers, for the next full rescan, the directories this turn's
    /// events changed: the parent of every path made, removed, renamed or
    /// changed, and a directory's own path (see [`discover::Change`]). A
    /// write alone changes no listing. Lost events (`overflow`), or too
    /// many directories, make the next full rescan look at every one.
    ///
    /// A directory's change may also have moved or removed the current
    /// files below it without an event naming them (a pod's directory
    /// renamed away): the next sweep looks at their paths, whatever its
    /// spread ([`WHOLE_EVENTS_SPREAD`]).
    pub(super) fn note_changed_dirs(
        &mut self,
        overflow: bool,
        dirty: &crate::fasthash::FastMap<PathBuf, discover::Change>,
    ) {
        for (p, _) in dirty.iter().filter(|(_, c)| **c == discover::Change::Dir) {
            for f in self.files.values_mut() {
                if f.kind == Kind::Current && f.path.starts_with(p) && *f.path != **p {
                    f.path_event = true;
                }
            }
        }
        if overflow {
            self.look_all = true;
        }
        if self.look_all {
            self.changed_dirs.clear();
            return;
        }
        for (p, change) in dirty {
            let dirs = match change {
                discover::Change::Written => continue,
                discover::Change::Other => [p.parent(), None],
                discover::Change::Dir => [p.parent(), Some(p.as_path())],
            };
            for d in dirs.into_iter().flatten() {
                let k = crate::source::expand::path_key(self.kept.hasher(), d);
                self.changed_dirs.insert(k);
            }
        }
        if self.changed_dirs.len() > MAX_CHANGED_DIRS {
            self.look_all = true;
            self.changed_dirs.clear();
        }
    }

    /// inotify says only that `p` was written ([`discover::Change::Written`]):
    /// a file followed there is still the one at `p` — a file made,
    /// removed or renamed at `p` is an event of its own, handled by
    /// [`Self::on_changed`] first (inotify reports in order; an overflow
    /// makes the next sweep check every path) — so it just has data to
    /// read, without a `stat` of its path. At a steady rate over 5,000
    /// files that was one path lookup per line written, ~9 % of the
    /// agent's CPU (`benches/HISTORY.md`). A file whose path check is
    /// still pending, a parked one, or a path not followed go the general
    /// way.
    pub(super) fn on_written(&mut self, p: PathBuf) -> Result<(), Stopped> {
        if let Some(&id) = self.by_path.get(p.as_path()) {
            if let Some(f) = self.files.get_mut(&id) {
                f.event_since_look = true;
                if f.src.is_some() && !f.path_event {
                    self.plan.activate(f);
                    return Ok(());
                }
            }
        }
        self.on_changed(p)
    }

    /// inotify says `p` changed.
    pub(super) fn on_changed(&mut self, p: PathBuf) -> Result<(), Stopped> {
        if let Some(&id) = self.by_path.get(p.as_path()) {
            let parked = self.files.get(&id).map(|f| f.src.is_none());
            match parked {
                Some(true) => self.check_parked(id)?,
                Some(false) => {
                    // A file being read notices a rotation when it reaches its
                    // end; while delivery is stuck it does not get there, so
                    // the path is checked at once (the successor must be
                    // pinned before the kubelet rotates it away too).
                    let at_eof = self.files.get(&id).is_some_and(|f| f.at_eof);
                    let checked = at_eof || !self.backlog.is_empty();
                    if checked {
                        self.check_path(id);
                    }
                    if let Some(f) = self.files.get_mut(&id) {
                        self.plan.activate(f);
                        f.path_event |= !checked;
                        f.event_since_look = true;
                    }
                }
                None => {}
            }
            return Ok(());
        }
        if let Some(w) = self.watch.as_mut() {
            // A directory's own event (made, removed, renamed): watched
            // anew by the rescan it triggers if it is still there.
            w.forget(&p);
        }
        if let Some(ti) = self.targets.find(&p) {
            self.candidate(&p, ti, false, None);
        } else if p.is_dir() {
            // A new directory: files created in it before its watch was
            // added produced no events. Walked (and watched) with the
            // others of this turn, see `rescan_under`.
            self.new_dirs.push(p);
        }
        Ok(())
    }
}

/// The error a rescan reports for directories it could not watch: the
/// first, and how many more.
fn watch_failure<E: std::fmt::Display>(
    watch_errs: &[(PathBuf, E)],
) -> Option<(PathBuf, io::Error)> {
    let (p, e) = watch_errs.first()?;
    let more = watch_errs.len() - 1;
    Some((
        p.clone(),
        io::Error::other(format!(
            "cannot watch this directory ({e}{}); changes in it are found by the rescan every sync_period",
            if more > 0 { format!("; and {more} more") } else { String::new() }
        )),
    ))
}

/// A path a rescan found: its target, whether the walk reached it through
/// real directories from the target's prefix, and its rotated siblings as
/// the walk's listing showed them (start-up only: see `chain_init`).
type FoundPath = (PathBuf, usize, bool, Option<Listed>);

/// What [`Tailer::walk`] found: the matching paths with their target slots
/// and whether they lie inside the target's tree (in `tis` order), and what
/// went wrong.
struct Walked {
    found: Vec<FoundPath>,
    errs: Vec<(PathBuf, io::Error)>,
    /// A directory could not be watched.
    watch_failed: bool,
}

#[cfg(test)]
mod tests {
    use super::super::catch_up::tests::tailer_in;
    use super::super::Tailer;
    use crate::source::testkit::{append, settle, test_opts};
    use std::fs;
    use std::path::PathBuf;

    /// A settled tree `logs/ns_pod_uid/app/0.log` and a tailer without
    /// inotify that rescanned it three times (so it keeps listings). (temp
    /// dir, `logs`, the container's directory, the tailer.)
    fn rescanned_thrice_without_inotify() -> (tempfile::TempDir, PathBuf, PathBuf, Tailer) {
        let tmp = tempfile::tempdir().unwrap();
        let logs = tmp.path().join("logs");
        let app = logs.join("ns_pod_uid/app");
        fs::create_dir_all(&app).unwrap();
        append(&app.join("0.log"), "a-0\n");
        settle(&logs);
        let mut t = tailer_in(tmp.path(), test_opts());
        t.watch = None;
        for _ in 0..3 {
            assert!(t.rescan().is_ok());
        }
        (tmp, logs, app, t)
    }

    /// Without inotify the periodic rescan is all there is: once it keeps
    /// the listings of settled directories, a file new in one of them, and
    /// a new pod, are still found by the next.
    #[test]
    fn a_rescan_without_inotify_finds_new_files_where_it_kept_listings() {
        let (_tmp, logs, app, mut t) = rescanned_thrice_without_inotify();
        // logs/, the pod's directory and app/.
        assert_eq!(t.kept.len(), 3);
        append(&app.join("1.log"), "b-0\n");
        fs::create_dir_all(logs.join("ns_pod2_uid2/app")).unwrap();
        append(&logs.join("ns_pod2_uid2/app/0.log"), "c-0\n");
        assert!(t.rescan().is_ok());
        for p in [app.join("1.log"), logs.join("ns_pod2_uid2/app/0.log")] {
            assert!(t.by_path.contains_key(p.as_path()), "{p:?} taken on");
        }
        // What changed is read again until it settles; what did not stays kept.
        assert_eq!(t.kept.len(), 1, "the first pod's directory");
    }

    /// The directory a glob's walk starts from replaced (renamed away, a
    /// new one made) while listings of the old tree are kept: the next full
    /// rescan finds the new tree's files, and the sweep sees the old file
    /// gone from its path. (Holding the base open for looks by path, which
    /// was tried, fails this unless the base is opened again each rescan.)
    #[test]
    fn a_replaced_base_directory_is_followed_at_the_next_rescan() {
        let (tmp, logs, app, mut t) = rescanned_thrice_without_inotify();
        assert_eq!(t.kept.len(), 3);
        assert!(t.turn().is_ok_and(|n| n > 0), "read to its end");
        let old = *t.by_path.get(app.join("0.log").as_path()).unwrap();
        fs::rename(&logs, tmp.path().join("logs.old")).unwrap();
        let app2 = logs.join("ns_pod2_uid2/app");
        fs::create_dir_all(&app2).unwrap();
        append(&app2.join("0.log"), "b-0\n");
        settle(&logs);
        assert!(t.rescan().is_ok());
        assert!(
            t.by_path.contains_key(app2.join("0.log").as_path()),
            "the new tree's file is taken on"
        );
        // The old file is no longer at its path: found so by the sweep.
        t.full_sweep = true;
        assert!(t.sweep().is_ok());
        assert!(t
            .files
            .get(&old)
            .is_none_or(|f| f.kind != crate::source::file::Kind::Current));
        assert!(!t.by_path.contains_key(app.join("0.log").as_path()));
    }

    /// Two settled pods `logs/ns_pod{1,2}_uid/app/0.log` and a tailer with
    /// inotify that rescanned them twice: the second rescan kept their
    /// listings (after the first's start-up scan, events lost at first so
    /// it looked at everything). (temp dir, `logs`, the two containers'
    /// directories, the tailer.)
    fn watched_and_rescanned_twice() -> (tempfile::TempDir, PathBuf, [PathBuf; 2], Tailer) {
        let tmp = tempfile::tempdir().unwrap();
        let logs = tmp.path().join("logs");
        let apps = [1, 2].map(|i| logs.join(format!("ns_pod{i}_uid/app")));
        for app in &apps {
            fs::create_dir_all(app).unwrap();
            append(&app.join("0.log"), "a-0\n");
        }
        settle(&logs);
        let mut t = tailer_in(tmp.path(), test_opts());
        assert!(t.watch.is_some(), "this test needs inotify");
        for _ in 0..2 {
            assert!(t.rescan().is_ok());
        }
        assert_eq!(
            t.kept.len(),
            5,
            "logs/, two pods' and two containers' directories"
        );
        (tmp, logs, apps, t)
    }

    /// Waits until inotify has reported `want`, then lets the tailer note
    /// the changed directories as its loop does before a rescan (what the
    /// events would also make it do at once is left out: the rescan alone
    /// is under test). `lose`: the events are thrown away instead, as if
    /// inotify had not seen the change and said nothing (no overflow).
    fn events_until(t: &mut Tailer, want: &std::path::Path, lose: bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let mut seen = crate::fasthash::FastMap::default();
        while !seen.contains_key(want) {
            assert!(
                std::time::Instant::now() < deadline,
                "{want:?} not reported: {seen:?}"
            );
            t.wake.wait(std::time::Duration::from_millis(50));
            let changes = t.wake.take();
            assert!(!changes.overflow);
            seen.extend(changes.dirty);
        }
        if !lose {
            t.note_changed_dirs(false, &seen);
        }
    }

    /// On an idle node the rescan keeps its listings without a `stat` of
    /// each directory inotify said nothing of; a directory an event names
    /// is looked at and read again, and a file made in it is found.
    #[test]
    fn a_rescan_trusts_inotify_for_quiet_directories_and_reads_the_changed_one() {
        let (_tmp, logs, [app1, app2], mut t) = watched_and_rescanned_twice();
        assert!(t.rescan().is_ok());
        // (read, stood in, without a `stat`): only `logs/` (a walk's base,
        // no parent listing) is `stat`ed.
        assert_eq!(t.last_walk, (0, 5, 4));
        append(&app2.join("1.log"), "b-0\n");
        events_until(&mut t, &app2.join("1.log"), false);
        assert!(t.rescan().is_ok());
        assert_eq!(t.last_walk, (1, 4, 3), "app2 read again, the rest trusted");
        assert!(t.by_path.contains_key(app2.join("1.log").as_path()));
        assert!(t.by_path.contains_key(app1.join("0.log").as_path()));
        // Lost events (an overflow) make the next rescan look at all.
        t.note_changed_dirs(true, &Default::default());
        assert!(t.rescan().is_ok());
        assert_eq!(t.last_walk.2, 0, "nothing trusted after lost events");
        assert!(logs.is_dir());
    }

    /// A pod's directory replaced by another of the same name — renamed
    /// away, a new one made with its container's directory inside before
    /// that could be watched: the events name the pod's directory, not the
    /// new container directory, whose path is the old one's. Its kept
    /// listing must not stand in: its entry in the (new) pod directory's
    /// listing has another inode number.
    #[test]
    fn a_directory_replaced_under_a_changed_parent_is_read_again() {
        let (tmp, logs, [app1, _], mut t) = watched_and_rescanned_twice();
        let pod1 = app1.parent().unwrap().to_path_buf();
        fs::rename(&pod1, tmp.path().join("pod1.old")).unwrap();
        fs::create_dir_all(&app1).unwrap();
        append(&app1.join("1.log"), "c-0\n");
        events_until(&mut t, &pod1, false);
        assert!(t.rescan().is_ok());
        assert!(
            t.by_path.contains_key(app1.join("1.log").as_path()),
            "the new container directory's file is found"
        );
        let app1_key = crate::source::expand::path_key(t.kept.hasher(), &app1);
        assert!(!t.changed_dirs.contains(&app1_key), "not named by an event");
        assert!(logs.is_dir());
    }

    /// The price of trusting inotify, bounded: a change it did not report
    /// (a file system it is blind to) goes unseen by the rescans that
    /// trust it, and is found by the periodic full look, at the latest
    /// [`FULL_LOOK_EVERY`](super::super::FULL_LOOK_EVERY) rescans later.
    #[test]
    fn a_change_inotify_did_not_report_is_found_by_the_periodic_full_look() {
        let (_tmp, _logs, [app1, _], mut t) = watched_and_rescanned_twice();
        let p = app1.join("1.log");
        append(&p, "d-0\n");
        events_until(&mut t, &p, true);
        let mut rescans = 0;
        while !t.by_path.contains_key(p.as_path()) {
            assert!(
                rescans < super::super::FULL_LOOK_EVERY,
                "not found by a full look"
            );
            assert!(t.rescan().is_ok());
            rescans += 1;
            if !t.by_path.contains_key(p.as_path()) {
                assert!(
                    t.last_walk.2 > 0,
                    "missed only by a rescan that trusted inotify"
                );
            }
        }
        assert_eq!(t.last_walk.2, 0, "found by a full look");
    }

    /// Reads every file of `t` to its end, and runs its first sweep (a
    /// full one).
    fn read_and_swept(t: &mut Tailer) {
        for _ in 0..3 {
            assert!(t.turn().is_ok());
        }
        assert!(t.sweep().is_ok());
    }

    /// The sweep's look at an idle file every change of which its
    /// directory's watch reports (not a symlink, one link) is spread over
    /// `WHOLE_EVENTS_SPREAD` sweeps; at a symlink — its target may be
    /// written where no watch of ours sees — over `PATH_CHECK_SPREAD`.
    #[test]
    fn the_sweep_looks_less_often_at_an_idle_file_whose_every_change_inotify_reports() {
        use super::super::{PATH_CHECK_SPREAD, WHOLE_EVENTS_SPREAD};
        let (_tmp, logs, [app1, app2], mut t) = watched_and_rescanned_twice();
        let real = logs.join("ns_pod2_uid/real");
        fs::create_dir_all(&real).unwrap();
        append(&real.join("x"), "s-0\n");
        let link = app2.join("1.log");
        std::os::unix::fs::symlink(real.join("x"), &link).unwrap();
        events_until(&mut t, &link, false);
        assert!(t.rescan().is_ok());
        read_and_swept(&mut t);
        let paths = [app1.join("0.log"), app2.join("0.log"), link];
        let ids: Vec<_> = paths.iter().map(|p| t.by_path[p.as_path()]).collect();
        let whole: Vec<bool> = ids.iter().map(|id| t.files[id].whole_events).collect();
        assert_eq!(whole, [true, true, false]);
        let sweeps = 2 * WHOLE_EVENTS_SPREAD;
        let mut looks = [0; 3];
        for _ in 0..sweeps {
            let before: Vec<u64> = ids.iter().map(|id| t.files[id].path_looked).collect();
            assert!(t.sweep().is_ok());
            for (i, id) in ids.iter().enumerate() {
                looks[i] += usize::from(t.files[id].path_looked != before[i]);
            }
        }
        let (w, s) = (
            (sweeps / WHOLE_EVENTS_SPREAD) as usize,
            (sweeps / PATH_CHECK_SPREAD) as usize,
        );
        assert_eq!(looks, [w, w, s], "looks in {sweeps} sweeps");
    }

    /// A pod's directory renamed away: no event names the idle file below
    /// it, only the directory. The next sweep looks at the file's path
    /// anyway (not its spread turn) and finds it gone from it.
    #[test]
    fn a_directory_renamed_above_an_idle_file_makes_the_next_sweep_look_at_it() {
        use super::super::{path_check_due, WHOLE_EVENTS_SPREAD};
        let (tmp, _logs, [app1, _], mut t) = watched_and_rescanned_twice();
        read_and_swept(&mut t);
        let p = app1.join("0.log");
        let id = t.by_path[p.as_path()];
        assert!(t.files[&id].whole_events);
        let pod1 = app1.parent().unwrap().to_path_buf();
        fs::rename(&pod1, tmp.path().join("pod1.old")).unwrap();
        events_until(&mut t, &pod1, false);
        // Not the file's turn in the spread.
        let seq = t.files[&id].seq;
        while path_check_due(seq, t.sweeps, WHOLE_EVENTS_SPREAD) {
            t.sweeps += 1;
        }
        assert!(t.sweep().is_ok());
        assert!(
            !t.by_path.contains_key(p.as_path()),
            "seen gone from its path"
        );
        assert!(t
            .files
            .get(&id)
            .is_none_or(|f| f.kind != crate::source::file::Kind::Current));
    }
}
