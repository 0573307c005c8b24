//! What has been delivered: the positions file.
//!
//! Owns: the on-disk record of how far each source has been *acknowledged*
//! (not merely read): per tailed file its path, device+inode, content
//! fingerprint and offset; per journal its cursor. [`Positions`] holds the
//! entries loaded at start (claimed by the tailer as it finds the files again)
//! and the live sources' [`Tracker`]s, whose committed positions are what
//! [`Positions::save`] writes — atomically (temp file, fsync, rename, fsync of
//! the directory).
//!
//! Besides files it keeps, per path, the newest kubelet rotation stamp taken
//! on (the chain watermark, see `source/chain.rs`), journal cursors, and the
//! spool offset these positions account for (see `spool/`). The file layout —
//! one Promtail-readable `positions:` map — is in [`format`]; what a save
//! compares and streams (each live file formatted as it is written), in
//! [`rendered`].
//!
//! Must never: record an offset that was not acknowledged, leave a torn file
//! behind, or write at all in `-dry-run` (read-only mode).

pub mod format;
pub mod rendered;

use crate::ack::{Position, Tracker};
use crate::config::PositionsConfig;
use crate::fasthash::FastMap;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// A file's identity on its filesystem.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

/// A checksum of a file's first `len` bytes (CRC32), telling a reused inode
/// from the file it used to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Fingerprint {
    pub len: u32,
    pub crc: u32,
}

/// A file's entry as loaded from the positions file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SavedFile {
    pub path: PathBuf,
    pub id: FileId,
    pub fp_len: u32,
    pub fp: u32,
    pub offset: u64,
    /// The file's size when last seen (≥ `offset`): what lies between the two
    /// was never read.
    pub size: u64,
    /// When the file was taken on, counted across runs by this positions
    /// file: orders files saved under one path (rotated while the agent was
    /// down, their names carrying no kubelet stamp) oldest first. 0 if
    /// unknown (written by an earlier version).
    pub seq: u64,
}

impl SavedFile {
    pub fn record(&self) -> format::FileRecord<'_> {
        format::FileRecord {
            path: &self.path,
            id: self.id,
            fp_len: self.fp_len,
            fp: self.fp,
            offset: self.offset,
            size: self.size,
            seq: self.seq,
        }
    }

    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint {
            len: self.fp_len,
            crc: self.fp,
        }
    }
}

struct Live {
    /// Shared with the tailer's file state.
    path: Arc<Path>,
    fp: Fingerprint,
    tracker: Arc<Tracker>,
    /// The size the tailer last saw (shared with it).
    size: Arc<AtomicU64>,
    /// See [`SavedFile::seq`].
    seq: u64,
    /// How its lines are written (the path never changes).
    plain: format::Plain,
}

/// A file in the written order: live (current at its path) or loaded.
#[derive(Clone, Copy)]
enum Slot {
    Live(FileId),
    Saved(FileId),
}

#[derive(Default)]
struct Inner {
    /// Loaded entries not claimed yet by a live file.
    saved: FastMap<FileId, SavedFile>,
    /// Offsets imported from a Promtail positions file, by path.
    promtail: HashMap<PathBuf, u64>,
    /// Journal cursors loaded (`journal-<job>` → cursor).
    cursors: BTreeMap<String, String>,
    live: FastMap<FileId, Live>,
    live_cursors: BTreeMap<String, Arc<Tracker>>,
    /// Path → newest kubelet rotation stamp taken on.
    chains: format::Chains,
    /// `chains` as rendered in the file, and its render id; `None` once
    /// they changed.
    chain_lines: Option<(u64, Arc<str>)>,
    /// Render ids given so far: every text of `chains` formatted gets a
    /// new one (never reused), so a save can tell it unchanged by its id.
    rendered: u64,
    /// The files in the order they are written (Promtail's view order, see
    /// [`format::view_order`]); `None` once a file was taken on,
    /// forgotten, released or set aside. Offsets moving keep it.
    order: Option<Vec<Slot>>,
    /// The spool offset these positions account for.
    spool: Option<u64>,
    /// The next [`SavedFile::seq`] given.
    next_seq: u64,
}

/// The positions registry. See the module docs.
pub struct Positions {
    path: PathBuf,
    read_only: bool,
    inner: Mutex<Inner>,
    /// Serialises writers of the file (the sync loop, the spool writer), and
    /// holds what the last save wrote (see [`Positions::save`]).
    save_lock: Mutex<Option<Written>>,
    /// Bumped by every change not made by an acknowledgement (a file taken
    /// on or forgotten, a watermark raised), so the writer saves it soon.
    epoch: AtomicU64,
    /// Bytes of the last file written (what one save costs).
    saved_len: std::sync::atomic::AtomicUsize,
    /// When the loaded file was last written, if an earlier run of
    /// tailtrace wrote it (see [`Positions::previous_save`]).
    previous_save: Option<std::time::SystemTime>,
    /// When this run's file discovery last looked for new files (unix
    /// nanoseconds; 0: not yet). A save dates the file to it (its mtime),
    /// so that the next run's [`Positions::previous_save`] is when this
    /// run last knew of every file, not when it last wrote — see
    /// [`Positions::looked_at`].
    looked: AtomicU64,
}

/// What the last save wrote, and the file it became: a save whose render
/// is the same text skips the write (at 5,000 idle files, ~2 MB and an
/// `fsync` every `sync_period` for nothing) — unless the file at the path
/// is no longer the one written (deleted, replaced, changed by hand).
struct Written {
    text: rendered::Rendered,
    file: FileStamp,
}

/// Enough of a file's metadata to tell that it was replaced or changed.
#[derive(PartialEq, Eq)]
struct FileStamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
}

impl FileStamp {
    fn of(path: &Path) -> Option<FileStamp> {
        use std::os::unix::fs::MetadataExt;
        let m = fs::metadata(path).ok()?;
        Some(FileStamp {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
        })
    }
}

/// Why the positions file could not be loaded.
#[derive(Debug)]
pub struct LoadError(pub String);

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for LoadError {}

impl Positions {
    /// Loads `cfg.filename` (a missing file is an empty start). In read-only
    /// mode [`save`](Self::save) never writes.
    pub fn open(cfg: &PositionsConfig, read_only: bool) -> Result<Arc<Positions>, LoadError> {
        let path = cfg.filename.clone();
        let mut inner = Inner::default();
        let mut previous_save = None;
        match fs::read_to_string(&path) {
            Ok(text) => match format::parse(&text) {
                Ok(l) => {
                    if l.ours {
                        previous_save = fs::metadata(&path).and_then(|m| m.modified()).ok();
                    }
                    inner = Inner::from(l)
                }
                Err(e) if cfg.ignore_invalid_yaml => {
                    tracing::warn!(file = %path.display(), error = %e,
                        "positions file is invalid; starting from scratch (ignore_invalid_yaml)");
                }
                Err(e) => {
                    return Err(LoadError(format!(
                        "positions.filename {}: invalid positions file: {e} \
                         (set positions.ignore_invalid_yaml: true to start over)",
                        path.display()
                    )))
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(LoadError(format!(
                    "positions.filename {}: cannot read: {e}",
                    path.display()
                )))
            }
        }
        Ok(Arc::new(Positions {
            path,
            read_only,
            inner: Mutex::new(inner),
            save_lock: Mutex::new(None),
            epoch: AtomicU64::new(0),
            saved_len: std::sync::atomic::AtomicUsize::new(0),
            previous_save,
            looked: AtomicU64::new(0),
        }))
    }

    /// An empty, read-only registry (tests, `-dry-run` without a file).
    pub fn in_memory() -> Arc<Positions> {
        Arc::new(Positions {
            path: PathBuf::new(),
            read_only: true,
            inner: Mutex::new(Inner::default()),
            save_lock: Mutex::new(None),
            epoch: AtomicU64::new(0),
            saved_len: std::sync::atomic::AtomicUsize::new(0),
            previous_save: None,
            looked: AtomicU64::new(0),
        })
    }

    /// File discovery looked for new files at `t` (called by the file
    /// tailer each time it takes the changes seen so far). Every save from
    /// now on dates the file to the latest such `t`: a file that appears
    /// after it — while this run drains its last batches at shutdown, say,
    /// with discovery already stopped (up to the shutdown timeout) — is
    /// then newer than the file, so the next run does not take its rotated
    /// siblings for history (soak seed 1311: a pod created during a slow
    /// shutdown lost its first two files).
    pub fn looked_at(&self, t: std::time::SystemTime) {
        if let Ok(d) = t.duration_since(std::time::UNIX_EPOCH) {
            let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
            self.looked.fetch_max(ns, Ordering::Relaxed);
        }
    }

    /// The time of the latest [`Positions::looked_at`], if any.
    fn last_look(&self) -> Option<std::time::SystemTime> {
        match self.looked.load(Ordering::Relaxed) {
            0 => None,
            ns => Some(std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns)),
        }
    }

    /// The file's modification time at load: when the previous run of
    /// tailtrace last looked for new files, as of its last save (a save
    /// dates the file to that look, see [`Positions::looked_at`]; to the
    /// write itself when that run had no file discovery). `None` on a
    /// first run, or when the file was Promtail's. A path without a
    /// watermark was not known to that run by then.
    pub fn previous_save(&self) -> Option<std::time::SystemTime> {
        self.previous_save
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn changed(&self) {
        self.epoch.fetch_add(1, Ordering::Relaxed);
    }

    /// Changes to save: moves with every acknowledged advance of any
    /// position and every change to what is recorded.
    pub fn change_epoch(&self) -> u64 {
        self.epoch
            .load(Ordering::Relaxed)
            .wrapping_add(crate::ack::commit_epoch())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The loaded entry for file `id`, if any (not removed: call
    /// [`track`](Self::track) to claim it, or [`forget`](Self::forget)).
    pub fn saved(&self, id: FileId) -> Option<SavedFile> {
        self.lock().saved.get(&id).cloned()
    }

    /// The offset a Promtail positions file recorded for `path`, if it was
    /// imported and not yet claimed.
    pub fn promtail_offset(&self, path: &Path) -> Option<u64> {
        self.lock().promtail.get(path).copied()
    }

    /// Loaded entries no live file has claimed (files that were rotated,
    /// compressed or deleted while the agent was down).
    pub fn unclaimed(&self) -> Vec<SavedFile> {
        let g = self.lock();
        let mut v: Vec<SavedFile> = g
            .saved
            .values()
            .filter(|s| !g.live.contains_key(&s.id))
            .cloned()
            .collect();
        // Files of one path oldest first: the tailer takes them on in
        // this order, which is their stream's order when their names
        // carry no rotation stamp.
        v.sort_by(|a, b| (&a.path, a.seq).cmp(&(&b.path, b.seq)));
        v
    }

    /// Starts recording the committed position of a live file. Claims (and
    /// replaces) any loaded entry for `id` and any imported Promtail offset
    /// for `path`.
    /// `size` is the file's size as the tailer last saw it, kept up to
    /// date by the tailer.
    pub fn track(
        &self,
        path: impl Into<Arc<Path>>,
        id: FileId,
        fp: Fingerprint,
        tracker: Arc<Tracker>,
        size: Arc<AtomicU64>,
    ) {
        let mut g = self.lock();
        g.order = None;
        let seq = match (g.saved.remove(&id), g.live.get(&id)) {
            (Some(s), _) if s.seq > 0 => s.seq,
            (_, Some(l)) => l.seq,
            _ => {
                g.next_seq += 1;
                g.next_seq
            }
        };
        let path: Arc<Path> = path.into();
        g.promtail.remove(&*path);
        let plain = format::plainness(&path);
        g.live.insert(
            id,
            Live {
                path,
                fp,
                tracker,
                size,
                seq,
                plain,
            },
        );
        drop(g);
        self.changed();
    }

    /// The chain watermark of `path` (see `source/chain.rs`): `None` if the
    /// path was never seen, `Some("")` if it had no rotated sibling then.
    pub fn chain(&self, path: &Path) -> Option<String> {
        self.lock().chains.get(format::chain_key(path)).cloned()
    }

    /// Raises the chain watermark of `path` to `stamp` (never lowers it).
    /// A new watermark keeps `path` itself as its key (pass the tailed
    /// file's shared path).
    pub fn set_chain(&self, path: impl Into<Arc<Path>> + AsRef<Path>, stamp: &str) {
        let mut g = self.lock();
        match g.chains.get_mut(format::chain_key(path.as_ref())) {
            Some(s) if s.as_str() >= stamp => return,
            Some(s) => *s = stamp.to_string(),
            None => {
                g.chains
                    .insert(format::ChainKey(path.into()), stamp.to_string());
            }
        }
        g.chain_lines = None;
        drop(g);
        self.changed();
    }

    /// Paths with a chain watermark.
    pub fn chain_paths(&self) -> Vec<Arc<Path>> {
        self.lock().chains.keys().map(|k| k.0.clone()).collect()
    }

    /// The path of `path`'s chain watermark, if it has one: a file taken on
    /// at that path shares it instead of keeping a copy of its own.
    pub fn chain_path(&self, path: &Path) -> Option<Arc<Path>> {
        let g = self.lock();
        g.chains
            .get_key_value(format::chain_key(path))
            .map(|(k, _)| k.0.clone())
    }

    /// Forgets the chain watermark of `path` (its directory is gone).
    pub fn forget_chain(&self, path: &Path) {
        let mut g = self.lock();
        if g.chains.remove(format::chain_key(path)).is_some() {
            g.chain_lines = None;
        }
    }

    /// True if some live or loaded file is recorded under `path`.
    pub fn has_path(&self, path: &Path) -> bool {
        let g = self.lock();
        g.live.values().any(|l| *l.path == *path) || g.saved.values().any(|s| s.path == path)
    }

    /// The spool offset recorded with these positions.
    pub fn spool_head(&self) -> Option<u64> {
        self.lock().spool
    }

    /// Runs `f` (which acknowledges the entries of spool chunks up to
    /// `head`) and records `head`, with no save in between: a saved file
    /// never holds a spool offset without the positions it implies, nor
    /// positions without the spool offset that holds their lines.
    pub fn commit_spool(&self, head: u64, f: impl FnOnce()) {
        let _g = self.save_lock.lock().unwrap_or_else(|p| p.into_inner());
        f();
        self.lock().spool = Some(head);
    }

    /// Updates a live file's fingerprint (it grew past a short first read).
    pub fn refingerprint(&self, id: FileId, fp: Fingerprint) {
        if let Some(l) = self.lock().live.get_mut(&id) {
            l.fp = fp;
        }
        self.changed();
    }

    /// Forgets file `id` for good: it was read to its end, everything was
    /// acknowledged, and it is gone (or a loaded entry matches no file).
    /// A live file whose tracker still has unacknowledged lines keeps its
    /// entry until the next call.
    pub fn forget(&self, id: FileId) {
        let mut g = self.lock();
        if g.saved.remove(&id).is_some() | g.live.remove(&id).is_some() {
            g.order = None;
        }
        drop(g);
        self.changed();
    }

    /// Moves the loaded entry `id` to the identity `to` (a synthetic one)
    /// and returns it: its inode number now belongs to another file, which
    /// must not take the entry over. Under `to` it is found again by its
    /// fingerprint only (a compressed copy), after a crash too.
    pub fn set_aside(&self, id: FileId, to: FileId) -> Option<SavedFile> {
        let mut g = self.lock();
        let mut s = g.saved.remove(&id)?;
        g.order = None;
        s.id = to;
        g.saved.insert(to, s.clone());
        drop(g);
        self.changed();
        Some(s)
    }

    /// Moves live file `id` to the identity `to` (a synthetic one): its
    /// inode number may be reused by another file. Its place among the
    /// files of its path is kept. False if `id` is not live.
    pub fn rekey(&self, id: FileId, to: FileId) -> bool {
        let mut g = self.lock();
        let Some(l) = g.live.remove(&id) else {
            return false;
        };
        g.order = None;
        g.live.insert(to, l);
        drop(g);
        self.changed();
        true
    }

    /// Stops tracking live file `id` but keeps its committed position as a
    /// saved entry (its target went away and may come back): found again by
    /// identity like an entry loaded at start-up.
    pub fn release(&self, id: FileId) {
        let mut g = self.lock();
        let Some(l) = g.live.remove(&id) else {
            return;
        };
        g.order = None;
        let offset = l.tracker.committed().offset().unwrap_or(0);
        let saved = SavedFile {
            path: l.path.to_path_buf(),
            id,
            fp_len: l.fp.len,
            fp: l.fp.crc,
            offset,
            size: l.size.load(Ordering::Relaxed).max(offset),
            seq: l.seq,
        };
        g.saved.insert(id, saved);
        drop(g);
        self.changed();
    }

    /// The loaded cursor for `name` (e.g. `journal-<job>`).
    pub fn saved_cursor(&self, name: &str) -> Option<String> {
        self.lock().cursors.get(name).cloned()
    }

    /// Starts recording a journal cursor.
    pub fn track_cursor(&self, name: &str, tracker: Arc<Tracker>) {
        self.lock().live_cursors.insert(name.to_string(), tracker);
    }

    /// Number of files recorded (live and loaded-unclaimed).
    pub fn file_count(&self) -> usize {
        let g = self.lock();
        g.live.len() + g.saved.len()
    }

    /// The committed offset of live file `id`.
    pub fn committed(&self, id: FileId) -> Option<u64> {
        self.lock()
            .live
            .get(&id)
            .and_then(|l| l.tracker.committed().offset())
    }

    /// The file content as it would be written now: each live file's
    /// values (its lines are formatted as they are written, see
    /// [`rendered`]), the files sorted again only when one was taken on or
    /// let go, the watermarks' lines formatted again only when one moved.
    pub fn render_pieces(&self) -> rendered::Rendered {
        let mut guard = self.lock();
        let g = &mut *guard;
        if g.chain_lines.is_none() {
            let mut text = String::new();
            format::chain_lines(&g.chains, &mut text);
            g.chain_lines = Some((g.rendered, text.into()));
            g.rendered += 1;
        }
        let order = match g.order.take() {
            Some(o) => o,
            None => view_order(&g.live, &g.saved),
        };
        let g = &*g;
        let mut r = rendered::Rendered::for_files(order.len());
        // Each slot of `order` with its file: a live one's values taken
        // once (their index in `r`), used by both of its lines.
        enum At<'a> {
            Live(usize, &'a Path),
            Saved(&'a SavedFile),
        }
        let slots: Vec<At<'_>> = order
            .iter()
            .filter_map(|slot| match *slot {
                Slot::Live(id) => {
                    let l = g.live.get(&id)?;
                    // Without the tracker's lock: 5,000 of them a save,
                    // while the delivery threads settle the same trackers.
                    let offset = l.tracker.committed_offset().unwrap_or(0);
                    let i = r.add_file(rendered::LiveLine {
                        path: l.path.clone(),
                        id,
                        fp: l.fp,
                        offset,
                        size: l.size.load(Ordering::Relaxed).max(offset),
                        seq: l.seq,
                        plain: l.plain,
                    });
                    Some(At::Live(i, &l.path))
                }
                Slot::Saved(id) => g.saved.get(&id).map(At::Saved),
            })
            .collect();
        format::header(r.text());
        // Paths are compared as bytes (as `view_order` sorts them): `Path`'s
        // `==` walks components, a third of a render's time at 5,000 files.
        let mut last: Option<&[u8]> = None;
        for at in &slots {
            let path = match at {
                At::Live(_, p) => *p,
                At::Saved(f) => f.path.as_path(),
            };
            let bytes = path.as_os_str().as_encoded_bytes();
            if last == Some(bytes) {
                continue;
            }
            last = Some(bytes);
            match at {
                At::Live(i, _) => r.promtail(*i),
                At::Saved(f) => format::promtail_line(&f.path, f.offset, r.text()),
            }
        }
        if !g.promtail.is_empty() {
            let ours: std::collections::HashSet<&Path> = g
                .live
                .values()
                .map(|l| &*l.path)
                .chain(g.saved.values().map(|f| f.path.as_path()))
                .collect();
            let imports: BTreeMap<PathBuf, u64> =
                g.promtail.iter().map(|(p, o)| (p.clone(), *o)).collect();
            format::imports(&imports, &|p| ours.contains(p), r.text());
        }
        let mut cursors = g.cursors.clone();
        for (name, t) in &g.live_cursors {
            // An empty cursor is "nothing committed yet": never written
            // (the loaded one, if any, stays).
            if let Position::Cursor(c) = t.committed() {
                if c.is_empty() {
                    continue;
                }
                cursors.insert(name.clone(), c.to_string());
            }
        }
        format::middle(&cursors, "", r.text());
        if let Some((id, c)) = &g.chain_lines {
            r.chains(c, *id);
        }
        for at in &slots {
            match at {
                At::Live(i, _) => r.file(*i),
                At::Saved(f) => format::file_line(&f.record(), r.text()),
            }
        }
        format::trailer(g.spool, r.text());
        r.finish();
        guard.order = Some(order);
        r
    }

    /// The file content as it would be written now (see
    /// [`Positions::render_pieces`]).
    pub fn render(&self) -> String {
        self.render_pieces().to_text()
    }

    /// Writes the file atomically. A no-op in read-only mode, and when the
    /// text is the one the last save wrote and that file is still the one at
    /// the path (same inode, length and mtime). Only a write that succeeded
    /// is remembered, so a failed one is always tried again.
    pub fn save(&self) -> io::Result<()> {
        if self.read_only {
            return Ok(());
        }
        let mut last = self.save_lock.lock().unwrap_or_else(|p| p.into_inner());
        let r = self.render_pieces();
        if let Some(w) = last.as_ref() {
            if r.matches(&w.text) && FileStamp::of(&self.path).as_ref() == Some(&w.file) {
                return Ok(());
            }
        }
        *last = None;
        let mut len = 0;
        let dated = self.last_look();
        write_atomic_with(&self.path, |f| {
            let mut w = io::BufWriter::with_capacity(64 << 10, f);
            len = r.write_to(&mut w)?;
            w.flush()?;
            if let Some(t) = dated {
                // Never later than now (a clock stepped back keeps it sane).
                let t = t.min(std::time::SystemTime::now());
                if let Err(e) = w.get_ref().set_modified(t) {
                    // The next run then dates history from this write: only
                    // a file that appeared since discovery stopped is at risk.
                    tracing::debug!(error = %e, "positions file: cannot set its mtime");
                }
            }
            Ok(())
        })?;
        self.saved_len.store(len, Ordering::Relaxed);
        *last = FileStamp::of(&self.path).map(|file| Written { text: r, file });
        Ok(())
    }

    /// Bytes of the positions file last saved (0 before the first save).
    pub fn saved_len(&self) -> usize {
        self.saved_len.load(Ordering::Relaxed)
    }
}

impl From<format::Loaded> for Inner {
    fn from(l: format::Loaded) -> Inner {
        Inner {
            next_seq: l.files.iter().map(|f| f.seq).max().unwrap_or(0),
            saved: l.files.into_iter().map(|f| (f.id, f)).collect(),
            promtail: l.promtail.into_iter().collect(),
            cursors: l.cursors,
            chains: l.chains,
            chain_lines: None,
            spool: l.spool,
            ..Inner::default()
        }
    }
}

/// The files of `live` and `saved` in the written order (see
/// [`format::view_order`]; equal paths and kinds by identity).
fn view_order(live: &FastMap<FileId, Live>, saved: &FastMap<FileId, SavedFile>) -> Vec<Slot> {
    let mut slots: Vec<(Slot, &Path, FileId)> = live
        .iter()
        .map(|(id, l)| (Slot::Live(*id), &*l.path, *id))
        .chain(
            saved
                .iter()
                .map(|(id, f)| (Slot::Saved(*id), f.path.as_path(), *id)),
        )
        .collect();
    slots.sort_by_key(|&(_, _, id)| (id.dev, id.ino));
    let keys: Vec<(&[u8], bool)> = slots
        .iter()
        .map(|(s, p, _)| {
            (
                p.as_os_str().as_encoded_bytes(),
                matches!(s, Slot::Saved(_)),
            )
        })
        .collect();
    format::view_order(&keys)
        .into_iter()
        .map(|i| slots[i].0)
        .collect()
}

/// Writes `data` to `path` via a temp file, fsync and rename.
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    write_atomic_with(path, |f| f.write_all(data))
}

/// [`write_atomic`] with the content written by `fill`.
fn write_atomic_with(
    path: &Path,
    fill: impl FnOnce(&mut fs::File) -> io::Result<()>,
) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&dir)?;
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    {
        let mut f = fs::File::create(&tmp)?;
        fill(&mut f)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    if let Ok(d) = fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn cfg(p: &Path) -> PositionsConfig {
        PositionsConfig {
            filename: p.to_path_buf(),
            sync_period: Duration::from_secs(10),
            ignore_invalid_yaml: false,
        }
    }

    /// A save is dated to discovery's last look, not to the write: the next
    /// run's history ends where this run stopped looking (a file that
    /// appeared during a slow shutdown is newer than it).
    #[test]
    fn a_save_is_dated_to_discoverys_last_look() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pos.yaml");
        let pos = Positions::open(&cfg(&p), false).unwrap();
        let before = std::time::SystemTime::now();
        pos.save().unwrap();
        let written = fs::metadata(&p).unwrap().modified().unwrap();
        assert!(
            written >= before - Duration::from_secs(1),
            "no look yet: dated to the write"
        );
        let look = std::time::SystemTime::now() - Duration::from_secs(30);
        pos.looked_at(look);
        pos.looked_at(look - Duration::from_secs(5)); // never moves back
        pos.set_chain(Arc::from(Path::new("/a/0.log")), "20261122-000001");
        pos.save().unwrap();
        assert_eq!(fs::metadata(&p).unwrap().modified().unwrap(), look);
        let next = Positions::open(&cfg(&p), false).unwrap();
        assert_eq!(next.previous_save(), Some(look));
    }

    /// The previous run's last save dates "history" for paths first seen
    /// (see `source/tailer_chain.rs`): known for tailtrace's own file only.
    #[test]
    fn the_previous_runs_last_save_is_known_for_tailtraces_file_only() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pos.yaml");
        assert_eq!(
            Positions::open(&cfg(&p), false).unwrap().previous_save(),
            None
        );
        fs::write(&p, "positions:\n  /a/0.log: '12'\n").unwrap();
        let promtail = Positions::open(&cfg(&p), false).unwrap();
        assert_eq!(promtail.previous_save(), None, "Promtail's file");
        promtail.save().unwrap();
        let written = fs::metadata(&p).unwrap().modified().unwrap();
        let ours = Positions::open(&cfg(&p), false).unwrap();
        assert_eq!(ours.previous_save(), Some(written));
    }

    #[test]
    fn saves_only_committed_offsets_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pos.yaml");
        let pos = Positions::open(&cfg(&p), false).unwrap();
        let id = FileId { dev: 1, ino: 42 };
        let t = Tracker::new(Position::Offset(0));
        pos.track(
            Path::new("/a/0.log"),
            id,
            Fingerprint { len: 10, crc: 7 },
            t.clone(),
            Arc::new(AtomicU64::new(300)),
        );
        pos.set_chain(Path::new("/a/0.log"), "20261122-101500");
        pos.set_chain(Path::new("/a/0.log"), "20261122-101400");
        let a = t.issue(Position::Offset(100));
        let b = t.issue(Position::Offset(200));
        a.ack();
        pos.save().unwrap();
        drop(b);
        let again = Positions::open(&cfg(&p), false).unwrap();
        let s = again.saved(id).unwrap();
        assert_eq!(s.offset, 100);
        assert_eq!(s.fingerprint(), Fingerprint { len: 10, crc: 7 });
        assert_eq!(s.path, PathBuf::from("/a/0.log"));
        assert_eq!(s.size, 300);
        assert_eq!(
            again.chain(Path::new("/a/0.log")).as_deref(),
            Some("20261122-101500"),
            "the watermark never goes back"
        );
        let text = fs::read_to_string(&p).unwrap();
        assert!(
            text.contains("/a/0.log: '100'") || text.contains("/a/0.log: \"100\""),
            "{text}"
        );
    }

    /// Files saved under one path (rotated while the agent was down) come
    /// back from `unclaimed` in the order they were taken on, whatever
    /// their identities, through saves and restarts, re-keys and releases;
    /// a file written without an order (an earlier version) comes first.
    #[test]
    fn files_of_one_path_are_unclaimed_in_taken_on_order() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pos.yaml");
        let path = Path::new("/a/0.log");
        let fp = Fingerprint { len: 10, crc: 7 };
        let size = || Arc::new(AtomicU64::new(10));
        let ids = [90u64, 50, 70].map(|ino| FileId { dev: 1, ino });
        let pos = Positions::open(&cfg(&p), false).unwrap();
        for id in &ids[..2] {
            pos.track(path, *id, fp, Tracker::new(Position::Offset(0)), size());
        }
        pos.save().unwrap();
        // Run 2: the first two are claimed again; a third is taken on, and
        // the first moves to a synthetic identity.
        let pos = Positions::open(&cfg(&p), false).unwrap();
        for id in &ids[..2] {
            pos.track(path, *id, fp, Tracker::new(Position::Offset(0)), size());
        }
        pos.track(path, ids[2], fp, Tracker::new(Position::Offset(0)), size());
        let syn = FileId {
            dev: u64::MAX,
            ino: 1,
        };
        assert!(pos.rekey(ids[0], syn));
        pos.release(ids[1]);
        pos.save().unwrap();
        let text = fs::read_to_string(&p).unwrap();
        let legacy = "  tailtrace:file:1:99:10:7:/a/0.log: 0 10\n";
        fs::write(
            &p,
            text.replacen("positions:\n", &format!("positions:\n{legacy}"), 1),
        )
        .unwrap();
        let back = Positions::open(&cfg(&p), false).unwrap();
        let order: Vec<u64> = back.unclaimed().iter().map(|s| s.id.ino).collect();
        assert_eq!(order, vec![99, 1, 50, 70], "{text}");
    }

    #[test]
    fn imports_promtail_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pos.yaml");
        fs::write(
            &p,
            "positions:\n  /var/log/pods/a/c/0.log: \"1234\"\n  journal-kubelet: s=abc;i=1\n",
        )
        .unwrap();
        let pos = Positions::open(&cfg(&p), false).unwrap();
        assert_eq!(
            pos.promtail_offset(Path::new("/var/log/pods/a/c/0.log")),
            Some(1234)
        );
        assert_eq!(
            pos.saved_cursor("journal-kubelet").as_deref(),
            Some("s=abc;i=1")
        );
    }

    #[test]
    fn cursor_is_written_once_committed_never_empty() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pos.yaml");
        let pos = Positions::open(&cfg(&p), false).unwrap();
        let t = Tracker::new(Position::Cursor("".into()));
        pos.track_cursor("journal-j", t.clone());
        pos.save().unwrap();
        let text = fs::read_to_string(&p).unwrap_or_default();
        assert!(!text.contains("journal-j"), "{text}");
        let a = t.issue(Position::Cursor("s=1;i=2".into()));
        pos.save().unwrap();
        assert!(!fs::read_to_string(&p)
            .unwrap_or_default()
            .contains("s=1;i=2"));
        a.ack();
        pos.save().unwrap();
        let back = Positions::open(&cfg(&p), false).unwrap();
        assert_eq!(back.saved_cursor("journal-j").as_deref(), Some("s=1;i=2"));
    }

    #[test]
    fn invalid_file_is_an_error_unless_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pos.yaml");
        fs::write(&p, "positions: [not, a, map").unwrap();
        assert!(Positions::open(&cfg(&p), false).is_err());
        let mut c = cfg(&p);
        c.ignore_invalid_yaml = true;
        assert!(Positions::open(&c, false).is_ok());
    }

    /// A save whose text is the one last written leaves the file alone (a
    /// write replaces it: a new inode); every kind of change is written, and
    /// so is a file that was deleted or changed by hand since.
    #[test]
    fn an_unchanged_text_is_not_written_again_but_every_change_is() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pos.yaml");
        let pos = Positions::open(&cfg(&p), false).unwrap();
        let ino = || fs::metadata(&p).unwrap().ino();
        let text = || fs::read_to_string(&p).unwrap();
        let id = FileId { dev: 1, ino: 42 };
        let t = Tracker::new(Position::Offset(0));
        let size = Arc::new(AtomicU64::new(300));
        let fp = Fingerprint { len: 10, crc: 7 };
        pos.track(Path::new("/a/0.log"), id, fp, t.clone(), size.clone());
        let cur = Tracker::new(Position::Cursor("".into()));
        pos.track_cursor("journal-j", cur.clone());
        pos.save().unwrap();
        let mut was = ino();
        let mut same = |what: &str, changed: bool| {
            pos.save().unwrap();
            let now = ino();
            assert_eq!(now != was, changed, "{what}: {}", text());
            was = now;
            // And a second save of the same text never writes.
            pos.save().unwrap();
            assert_eq!(ino(), was, "{what}, saved again");
        };
        same("nothing changed", false);
        size.store(400, Ordering::Relaxed);
        same("size", true);
        assert!(text().contains("400"), "{}", text());
        t.issue(Position::Offset(120)).ack();
        same("offset", true);
        assert!(text().contains("'120'") || text().contains("\"120\""));
        pos.refingerprint(id, Fingerprint { len: 64, crc: 9 });
        same("fingerprint", true);
        pos.set_chain(Path::new("/a/0.log"), "20261122-101500");
        same("chain", true);
        assert!(text().contains("20261122-101500"));
        cur.issue(Position::Cursor("s=1;i=2".into())).ack();
        same("cursor", true);
        assert!(text().contains("s=1;i=2"));
        pos.commit_spool(77, || {});
        same("spool offset", true);
        let t2 = Tracker::new(Position::Offset(0));
        let other = FileId { dev: 1, ino: 43 };
        pos.track(
            Path::new("/a/1.log"),
            other,
            fp,
            t2,
            Arc::new(AtomicU64::new(5)),
        );
        same("file taken on", true);
        assert!(text().contains("/a/1.log"));
        pos.forget(other);
        same("file forgotten", true);
        assert!(!text().contains("/a/1.log"));
        let full = text();
        fs::remove_file(&p).unwrap();
        pos.save().unwrap();
        assert_eq!(text(), full, "a deleted file is written again");
        was = ino();
        fs::write(&p, "positions: {}\n").unwrap();
        pos.save().unwrap();
        assert_eq!(text(), full, "a file changed by hand is written again");
        assert_ne!(ino(), was);
    }

    #[test]
    fn read_only_never_writes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pos.yaml");
        let pos = Positions::open(&cfg(&p), true).unwrap();
        pos.save().unwrap();
        assert!(!p.exists());
    }

    /// The registry's render (cached lines, order kept between changes)
    /// writes what the plain renderer writes for the same files, through
    /// any sequence of files taken on, released, set aside, forgotten and
    /// acknowledged — the cache never shows a file gone or misses one.
    #[test]
    fn cached_render_matches_the_plain_render_through_every_change() {
        let pos = Positions::in_memory();
        let paths = ["/p/a/0.log", "/p/b/0.log", "/p/a/1.log", "/p/c/0.log"];
        let mut trackers: HashMap<FileId, Arc<Tracker>> = HashMap::new();
        let mut seed: u64 = 0x5eed;
        let mut next = |n: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        for step in 0..600u64 {
            let id = FileId {
                dev: 1,
                ino: next(12),
            };
            match next(6) {
                0 | 1 => {
                    let t = Tracker::new(Position::Offset(0));
                    let path = Path::new(paths[next(4) as usize]);
                    pos.track(
                        path,
                        id,
                        Fingerprint { len: 4, crc: 9 },
                        t.clone(),
                        Arc::new(AtomicU64::new(step)),
                    );
                    trackers.insert(id, t);
                }
                2 => pos.release(id),
                3 => pos.forget(id),
                4 => {
                    let _ = pos.set_aside(
                        id,
                        FileId {
                            dev: 0,
                            ino: 100 + next(3),
                        },
                    );
                }
                _ => {
                    for t in trackers.values() {
                        t.issue(Position::Offset(step * 10)).ack();
                    }
                }
            }
            let got = pos.render();
            let want = {
                let g = pos.lock();
                let mut files: Vec<SavedFile> = g
                    .live
                    .iter()
                    .map(|(id, l)| {
                        let offset = l.tracker.committed().offset().unwrap_or(0);
                        SavedFile {
                            path: l.path.to_path_buf(),
                            id: *id,
                            fp_len: l.fp.len,
                            fp: l.fp.crc,
                            offset,
                            size: l.size.load(Ordering::Relaxed).max(offset),
                            seq: l.seq,
                        }
                    })
                    .collect();
                files.extend(g.saved.values().cloned());
                files.sort_by_key(|f| (f.id.dev, f.id.ino));
                format::render(&format::Snapshot {
                    files: &files,
                    promtail: &BTreeMap::new(),
                    cursors: &BTreeMap::new(),
                    chains: &Default::default(),
                    chain_lines: None,
                    spool: None,
                    is_current: &|f| g.live.contains_key(&f.id),
                })
            };
            let split = |t: &str| {
                let (mut records, mut rest): (Vec<String>, Vec<String>) = (vec![], vec![]);
                for l in t.lines() {
                    if l.starts_with("  tailtrace:file:") {
                        records.push(l.to_string());
                    } else {
                        rest.push(l.to_string());
                    }
                }
                records.sort();
                (rest, records)
            };
            assert_eq!(split(&got), split(&want), "step {step}\n{got}\n---\n{want}");
        }
    }

    /// A watermark keeps the path it was set with, and hands it out again
    /// (a file taken on at that path shares it); one loaded from the file
    /// is handed out the same way.
    #[test]
    fn a_chain_watermark_shares_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pos.yaml");
        let pos = Positions::open(&cfg(&p), false).unwrap();
        let a: Arc<Path> = Arc::from(Path::new("/a/0.log"));
        pos.set_chain(a.clone(), "");
        pos.set_chain(Path::new("/a/0.log"), "20261122-101500");
        let got = pos.chain_path(Path::new("/a/0.log")).unwrap();
        assert!(Arc::ptr_eq(&got, &a), "the first path set is kept");
        assert_eq!(pos.chain(&a).as_deref(), Some("20261122-101500"));
        assert!(pos.chain_path(Path::new("/b/0.log")).is_none());
        pos.save().unwrap();
        let back = Positions::open(&cfg(&p), true).unwrap();
        let loaded = back.chain_path(Path::new("/a/0.log")).unwrap();
        assert_eq!(&*loaded, Path::new("/a/0.log"));
        assert!(Arc::ptr_eq(&back.chain_path(&a).unwrap(), &loaded));
    }

    /// The chain lines are rendered once and kept: every change shows in
    /// the next save (raised, new path, forgotten), a lowering does not.
    #[test]
    fn kept_chain_lines_follow_every_change() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pos.yaml");
        let pos = Positions::open(&cfg(&p), false).unwrap();
        let chains = |pos: &Positions| {
            pos.save().unwrap();
            let back = Positions::open(&cfg(&p), true).unwrap();
            let mut v: Vec<(PathBuf, Option<String>)> = back
                .chain_paths()
                .into_iter()
                .map(|c| {
                    let s = back.chain(&c);
                    (c.to_path_buf(), s)
                })
                .collect();
            v.sort();
            v
        };
        let (a, b) = (Path::new("/a/0.log"), Path::new("/b/0.log"));
        pos.set_chain(a, "20261122-101500");
        assert_eq!(
            chains(&pos),
            vec![(a.into(), Some("20261122-101500".into()))]
        );
        pos.set_chain(a, "20261122-101600");
        pos.set_chain(b, "");
        assert_eq!(
            chains(&pos),
            vec![
                (a.into(), Some("20261122-101600".into())),
                (b.into(), Some(String::new()))
            ]
        );
        pos.set_chain(a, "20261122-101000");
        pos.forget_chain(b);
        assert_eq!(
            chains(&pos),
            vec![(a.into(), Some("20261122-101600".into()))]
        );
    }
}
