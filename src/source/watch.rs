//! inotify watches on the directories discovery walks, and the thread that
//! turns their events into changed paths for the tailer.
//!
//! Owns: [`Watch`] (adding, forgetting and dropping watches: each
//! directory a rescan walks by itself, the static prefix of a glob the walk
//! cannot take recursively) and its event thread, which maps each event's
//! watch descriptor back to a path and hands the paths to a [`Wake`].
//!
//! Design: inotify is only a hint (see `discover.rs`): an event lost to a
//! queue overflow, a watch limit or a race only delays a change to the next
//! sweep or rescan. The watch table is the one piece of state per watched
//! directory: its path, once, keyed by its descriptor — ~150 bytes, where
//! the `notify` crate this replaced kept each path three times in maps of
//! its own (5.7 MB for the 10,000 directories of 5,000 containers,
//! heaptrack; `benches/HISTORY.md`). The table is locked while a batch of
//! watches is added, so an event of a new watch is never read before its
//! path is known. A directory made under a recursive watch is watched, with
//! everything below it, by the event thread as it learns of it.
//!
//! Must never: block the tailer on the event thread (it only takes the
//! table's lock, held for the duration of one read's events), follow a
//! symlink while watching a tree recursively, or panic on an event it does
//! not know (a descriptor already dropped is skipped).

use super::discover::{Change, Wake};
use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask, Watches};
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

/// What is asked of the kernel for every watched directory: entries made,
/// removed, renamed, written or changed (`chmod`, link count), and the
/// directory itself removed or moved. No access events (`IN_OPEN`,
/// `IN_CLOSE_*`): most would be our own reads.
fn mask() -> WatchMask {
    WatchMask::CREATE
        | WatchMask::MOVED_TO
        | WatchMask::DELETE
        | WatchMask::MOVED_FROM
        | WatchMask::MODIFY
        | WatchMask::ATTRIB
        | WatchMask::MOVE_SELF
        | WatchMask::DELETE_SELF
        | WatchMask::ONLYDIR
}

/// Bytes of events read at once (each is 16 bytes plus its name).
const READ_BUF: usize = 16 * 1024;

/// After events were handed to the tailer, how long the next ones gather
/// before they are read: the tailer is woken at most ~100 times a second
/// instead of once per line written to another file. A line waits for
/// its batch far longer (`batchwait`). At 10,000 lines a second over
/// 5,000 files each line had woken the tailer, and it then the batcher:
/// ~7,000 context switches a second, a third of the agent's CPU at that
/// rate (`benches/HISTORY.md`). The queue holds `max_queued_events`
/// (16,384 by default): ~1.6 million events a second before an overflow,
/// which only makes the next sweep check every file.
const GATHER: std::time::Duration = std::time::Duration::from_millis(10);

/// A watched directory.
struct Watched {
    /// Its watch, to remove it by.
    wd: WatchDescriptor,
    path: Box<Path>,
    /// Part of a recursively watched tree: directories made in it are
    /// watched too.
    recursive: bool,
}

/// Watch descriptor → directory, shared by the tailer and the event thread.
/// Keyed by the descriptor's number: comparing two `WatchDescriptor`s
/// upgrades their weak references to the inotify instance (four atomic
/// operations), once per event (~1.7 % of the agent's CPU at a steady rate
/// over 5,000 files); there is one instance.
#[derive(Default)]
struct Table {
    by_wd: HashMap<i32, Watched>,
}

type Shared = Arc<Mutex<Table>>;

fn lock(t: &Shared) -> MutexGuard<'_, Table> {
    t.lock().unwrap_or_else(|p| p.into_inner())
}

/// An inotify watcher feeding a [`Wake`].
///
/// Two kinds of watches: the directories a rescan walks (see
/// [`super::expand::Scan::expand_all`]) are watched one by one,
/// non-recursively, before they are read — only the directories a glob can
/// match in; the static prefix of a glob the walk cannot take (`**`,
/// relative) is watched recursively.
pub struct Watch {
    watches: Watches,
    table: Shared,
    /// Recursively watched prefixes.
    trees: HashSet<PathBuf>,
    /// Directories watched by themselves, by a hash of their path (the
    /// table has their paths), with the last rescan pass that walked them.
    dirs: crate::fasthash::KeyMap<u32>,
    /// The current rescan pass (see [`Watch::new_pass`]).
    pass: u32,
    hasher: crate::fasthash::Quality,
    /// Closing it (on drop) ends the event thread.
    stop: Option<io::PipeWriter>,
    thread: Option<JoinHandle<()>>,
}

impl Watch {
    pub fn new(wake: Arc<Wake>) -> io::Result<Watch> {
        let ino = Inotify::init()?;
        let watches = ino.watches();
        let table = Shared::default();
        let (stop_rx, stop) = io::pipe()?;
        let thread = {
            let table = table.clone();
            let watches = watches.clone();
            std::thread::Builder::new()
                .name("inotify".into())
                .spawn(move || events(ino, watches, table, wake, stop_rx))?
        };
        Ok(Watch {
            watches,
            table,
            trees: HashSet::new(),
            dirs: Default::default(),
            pass: 0,
            hasher: Default::default(),
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    fn key(&self, dir: &Path) -> u64 {
        super::expand::path_key(&self.hasher, dir)
    }

    fn covered(&self, dir: &Path) -> bool {
        self.trees.iter().any(|t| dir.starts_with(t))
    }

    /// Watches `dir` and every directory below it, and those made later
    /// (once). Returns Ok(false) if it does not exist yet (retry at the
    /// next rescan).
    pub fn watch(&mut self, dir: &Path) -> io::Result<bool> {
        if self.covered(dir) {
            return Ok(true);
        }
        if !dir.is_dir() {
            return Ok(false);
        }
        let mut t = lock(&self.table);
        add_tree(&mut self.watches, &mut t, dir)?;
        drop(t);
        self.trees.insert(dir.to_path_buf());
        Ok(true)
    }

    /// Watches each of `dirs` by itself, those not watched yet. A directory
    /// that vanished is skipped (the rescan does not find it either); other
    /// failures (the inotify watch limit, permissions) are returned, and
    /// retried at the next rescan. Past the watch limit the rest are not
    /// tried.
    pub fn watch_dirs(&mut self, dirs: &[&Path]) -> Vec<(PathBuf, io::Error)> {
        let mut errs = Vec::new();
        let mut t = lock(&self.table);
        // Past the kernel's watch limit nothing more is added, but every
        // directory is still marked as walked in this pass.
        let mut full = false;
        for d in dirs {
            let k = self.key(d);
            if let Some(pass) = self.dirs.get_mut(&k) {
                *pass = self.pass;
                continue;
            }
            if full || self.covered(d) {
                continue;
            }
            match add(&mut self.watches, &mut t, d, false) {
                Ok(()) => {
                    self.dirs.insert(k, self.pass);
                }
                Err(e) if gone(&e) => {}
                Err(e) => {
                    full = e.raw_os_error() == Some(libc::ENOSPC);
                    errs.push((d.to_path_buf(), e));
                }
            }
        }
        errs
    }

    /// An event named `path`: if it is a directory watched by itself, it
    /// may have been removed (and made again), so it is watched anew at
    /// the next rescan (which the event triggers).
    pub fn forget(&mut self, path: &Path) {
        let k = self.key(path);
        self.dirs.remove(&k);
    }

    /// A full rescan starts: the directories its walk hands to
    /// [`Watch::watch_dirs`] are marked as walked in this pass, and
    /// [`Watch::keep_walked`] lets go of the others when it ends. (The
    /// rescan need not keep every path it read until then.)
    pub fn new_pass(&mut self) {
        self.pass = self.pass.wrapping_add(1);
    }

    /// After a full rescan: stops watching the directories it no longer
    /// walked (no target leads there any more; a removed one lost its watch
    /// with it, and its event already forgot it).
    pub fn keep_walked(&mut self) {
        let (pass, before) = (self.pass, self.dirs.len());
        self.dirs.retain(|_, p| *p == pass);
        if self.dirs.len() == before {
            return;
        }
        // Rare (a retired target whose directories stay). Recursive
        // watches are the trees', never let go here.
        let mut t = lock(&self.table);
        let drop: Vec<i32> = t
            .by_wd
            .iter()
            .filter(|(_, w)| !w.recursive && !self.dirs.contains_key(&self.key(&w.path)))
            .map(|(&id, _)| id)
            .collect();
        for id in drop {
            if let Some(w) = t.by_wd.remove(&id) {
                // A directory gone lost its watch with it: this fails,
                // harmlessly.
                let _ = self.watches.remove(w.wd);
            }
        }
    }

    /// How many directories are watched by themselves (tests).
    #[cfg(test)]
    pub fn watched_dirs(&self) -> usize {
        self.dirs.len()
    }

    /// How many watches the kernel holds for us (tests).
    #[cfg(test)]
    fn watches_held(&self) -> usize {
        lock(&self.table).by_wd.len()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        // The event thread sees the pipe closed and returns.
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The directory (or whatever it became) does not exist.
fn gone(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR))
}

/// Watches `dir` and records it in `t`.
fn add(w: &mut Watches, t: &mut Table, dir: &Path, recursive: bool) -> io::Result<()> {
    let wd = w.add(dir, mask()).map_err(|e| {
        if e.raw_os_error() == Some(libc::ENOSPC) {
            io::Error::new(
                e.kind(),
                "inotify watch limit reached (sysctl fs.inotify.max_user_watches)",
            )
        } else {
            e
        }
    })?;
    t.by_wd.insert(
        wd.get_watch_descriptor_id(),
        Watched {
            wd,
            path: dir.into(),
            recursive,
        },
    );
    Ok(())
}

/// Watches `root` and every directory below it (symlinks not followed).
/// Fails if `root` cannot be watched or the watch limit is reached; a
/// subdirectory that vanished or cannot be read is skipped.
fn add_tree(w: &mut Watches, t: &mut Table, root: &Path) -> io::Result<()> {
    add(w, t, root, true)?;
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in rd.flatten() {
            if !entry.file_type().is_ok_and(|ft| ft.is_dir()) {
                continue;
            }
            let p = entry.path();
            match add(w, t, &p, true) {
                Ok(()) => todo.push(p),
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => return Err(e),
                Err(_) => {}
            }
        }
    }
    Ok(())
}

/// The event thread: reads events until the stop pipe closes.
fn events(mut ino: Inotify, mut w: Watches, table: Shared, wake: Arc<Wake>, stop: io::PipeReader) {
    let mut buf = vec![0u8; READ_BUF];
    let mut fds = [
        libc::pollfd {
            fd: ino.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: stop.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    loop {
        // SAFETY: `fds` is a valid array of two `pollfd`s for the duration
        // of the call, and both descriptors are owned by this thread.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if n < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            // Cannot wait any more: the rescans and sweeps carry on alone.
            wake.mark(std::iter::empty(), true);
            return;
        }
        if fds[1].revents != 0 {
            return;
        }
        let events = match ino.read_events(&mut buf) {
            Ok(events) => events,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(e) => {
                tracing::warn!(error = %e, "inotify: events cannot be read; relying on rescans");
                wake.mark(std::iter::empty(), true);
                return;
            }
        };
        let mut paths = Vec::new();
        let mut overflow = false;
        let mut made = Vec::new();
        {
            let mut t = lock(&table);
            for ev in events {
                if ev.mask.contains(EventMask::Q_OVERFLOW) {
                    overflow = true;
                    continue;
                }
                if ev.mask.contains(EventMask::IGNORED) {
                    // The watch is gone (directory removed, unwatched, its
                    // file system unmounted): changes in it are no longer
                    // reported, which the tailer must know (see `Change::Dir`).
                    if let Some(w) = t.by_wd.remove(&ev.wd.get_watch_descriptor_id()) {
                        paths.push((w.path.to_path_buf(), Change::Dir));
                    }
                    continue;
                }
                let Some(watched) = t.by_wd.get(&ev.wd.get_watch_descriptor_id()) else {
                    continue;
                };
                let p = join(&watched.path, ev.name);
                let new_dir = ev.mask.contains(EventMask::ISDIR)
                    && ev.mask.intersects(EventMask::CREATE | EventMask::MOVED_TO);
                if new_dir && watched.recursive {
                    made.push(p.clone());
                }
                let change = if ev.mask == EventMask::MODIFY {
                    Change::Written
                } else if ev.name.is_none() || ev.mask.contains(EventMask::ISDIR) {
                    Change::Dir
                } else {
                    Change::Other
                };
                paths.push((p, change));
            }
            for d in made {
                if let Err(e) = add_tree(&mut w, &mut t, &d) {
                    if !gone(&e) {
                        // Its files are found by the rescan the event
                        // triggers, and every rescan after.
                        tracing::debug!(dir = %d.display(), error = %e, "inotify: not watched");
                    }
                }
            }
        }
        if overflow || !paths.is_empty() {
            wake.mark(paths, overflow);
            // Events that come meanwhile wait in the kernel's queue, and
            // the tailer is woken once for all of them.
            std::thread::sleep(GATHER);
        }
    }
}

fn join(dir: &Path, name: Option<&OsStr>) -> PathBuf {
    match name {
        Some(n) => dir.join(n),
        None => dir.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// Waits until `want` is reported; returns what was said of each path,
    /// a change over a write when both were (as [`Wake::mark`] merges).
    fn changes_until(wake: &Wake, want: &Path) -> HashMap<PathBuf, Change> {
        let mut seen: HashMap<PathBuf, Change> = HashMap::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !seen.contains_key(want) && Instant::now() < deadline {
            wake.wait(Duration::from_millis(50));
            for (p, c) in wake.take().dirty {
                let e = seen.entry(p).or_insert(c);
                *e = (*e).max(c);
            }
        }
        assert!(seen.contains_key(want), "{want:?} not reported: {seen:?}");
        seen
    }

    /// The tailer skips the path check for a write alone: a write must be
    /// told apart from what can put another file at the path — a rename
    /// onto it or away from it, a file made there, its removal.
    #[test]
    fn a_write_alone_is_told_apart_from_what_can_replace_a_file() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (log, rotated, other) = (d.join("0.log"), d.join("0.log.1"), d.join("x.log"));
        std::fs::write(&log, b"a\n").unwrap();
        let wake = Wake::new();
        let mut w = Watch::new(wake.clone()).unwrap();
        assert!(w.watch_dirs(&[d]).is_empty());
        let append = |p: &Path| {
            let mut f = std::fs::OpenOptions::new().append(true).open(p).unwrap();
            f.write_all(b"b\n").unwrap();
        };
        append(&log);
        let seen = changes_until(&wake, &log);
        assert_eq!(seen.get(&log), Some(&Change::Written), "{seen:?}");
        // Rotated: renamed away, then a new file made at the path.
        std::fs::rename(&log, &rotated).unwrap();
        let seen = changes_until(&wake, &rotated);
        assert_eq!(seen.get(&log), Some(&Change::Other), "{seen:?}");
        std::fs::write(&log, b"c\n").unwrap();
        append(&log);
        let seen = changes_until(&wake, &log);
        assert_eq!(seen.get(&log), Some(&Change::Other), "made: {seen:?}");
        // Another file renamed onto the path; then the path removed.
        std::fs::write(&other, b"d\n").unwrap();
        std::fs::rename(&other, &log).unwrap();
        let seen = changes_until(&wake, &log);
        assert_eq!(seen.get(&log), Some(&Change::Other), "replaced: {seen:?}");
        std::fs::remove_file(&log).unwrap();
        let seen = changes_until(&wake, &log);
        assert_eq!(seen.get(&log), Some(&Change::Other), "removed: {seen:?}");
    }

    /// A rescan trusts a directory's kept listing when inotify named
    /// neither it nor an entry in it as a directory change: what can change
    /// a watched directory's listing, or where its path leads, must come as
    /// [`Change::Dir`] — a directory made, renamed or removed in a watched
    /// one, a watched directory's own attributes, and its watch lost.
    #[test]
    fn what_changes_a_directory_is_reported_as_a_directory_change() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (sub, moved) = (d.join("pod"), d.join("pod.old"));
        std::fs::create_dir(&sub).unwrap();
        let wake = Wake::new();
        let mut w = Watch::new(wake.clone()).unwrap();
        assert!(w.watch_dirs(&[d, &sub]).is_empty());
        std::fs::write(sub.join("0.log"), b"a\n").unwrap();
        let seen = changes_until(&wake, &sub.join("0.log"));
        assert_eq!(
            seen.get(&sub.join("0.log")),
            Some(&Change::Other),
            "a file made: {seen:?}"
        );
        std::fs::create_dir(d.join("new")).unwrap();
        let seen = changes_until(&wake, &d.join("new"));
        assert_eq!(
            seen.get(&d.join("new")),
            Some(&Change::Dir),
            "made: {seen:?}"
        );
        std::fs::File::open(&sub)
            .unwrap()
            .set_modified(std::time::SystemTime::now() - Duration::from_secs(60))
            .unwrap();
        let seen = changes_until(&wake, &sub);
        assert_eq!(
            seen.get(&sub),
            Some(&Change::Dir),
            "its own times: {seen:?}"
        );
        std::fs::rename(&sub, &moved).unwrap();
        let seen = changes_until(&wake, &moved);
        assert_eq!(seen.get(&sub), Some(&Change::Dir), "renamed away: {seen:?}");
        assert_eq!(seen.get(&moved), Some(&Change::Dir), "renamed to: {seen:?}");
        // Removed: its own events and its watch's end (`IN_IGNORED`) come
        // under the path it was watched at.
        std::fs::remove_file(moved.join("0.log")).unwrap();
        std::fs::remove_dir(&moved).unwrap();
        let seen = changes_until(&wake, &sub);
        assert_eq!(seen.get(&sub), Some(&Change::Dir), "removed: {seen:?}");
        assert_eq!(w.watches_held(), 1, "the removed directory's watch is gone");
    }

    #[test]
    fn opening_and_reading_files_is_not_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("sub")).unwrap();
        std::fs::write(d.join("sub/read.log"), b"x\n").unwrap();
        let wake = Wake::new();
        let mut w = Watch::new(wake.clone()).unwrap();
        assert!(w.watch(d).unwrap());
        // What the tailer does to files it follows: open, read, list.
        let _ = std::fs::read(d.join("sub/read.log")).unwrap();
        let _ = std::fs::read_dir(d.join("sub")).unwrap().count();
        // Then a real change; inotify reports in order, so once it is
        // seen, anything the reads caused would have been seen too.
        std::fs::write(d.join("sub/written.log"), b"y\n").unwrap();
        let mut seen = HashSet::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !seen.contains(&d.join("sub/written.log")) && Instant::now() < deadline {
            wake.wait(Duration::from_millis(50));
            let s = wake.take();
            assert!(!s.overflow);
            seen.extend(s.dirty.into_keys());
        }
        assert!(seen.contains(&d.join("sub/written.log")), "{seen:?}");
        assert!(!seen.contains(&d.join("sub/read.log")), "{seen:?}");
        assert!(!seen.contains(&d.join("sub")), "{seen:?}");
    }

    /// Waits until `want` is reported; returns everything reported.
    fn seen_until(wake: &Wake, want: &Path) -> HashSet<PathBuf> {
        changes_until(wake, want).into_keys().collect()
    }

    #[test]
    fn directories_watched_one_by_one_report_their_own_files_until_let_go() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (a, b) = (d.join("a"), d.join("b"));
        std::fs::create_dir_all(a.join("sub")).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let wake = Wake::new();
        let mut w = Watch::new(wake.clone()).unwrap();
        // A directory that vanished is no error; each is watched once.
        let gone = d.join("gone");
        assert!(w.watch_dirs(&[&a, &gone, &b, &a]).is_empty());
        assert_eq!(w.watched_dirs(), 2);
        std::fs::write(a.join("sub/deeper.log"), b"x\n").unwrap();
        std::fs::write(d.join("top.log"), b"x\n").unwrap();
        std::fs::write(a.join("z.log"), b"x\n").unwrap();
        let seen = seen_until(&wake, &a.join("z.log"));
        assert!(
            !seen.contains(&a.join("sub/deeper.log")),
            "not recursive: {seen:?}"
        );
        assert!(!seen.contains(&d.join("top.log")), "{seen:?}");
        // Removed and made again: its watch died with it; once an event
        // named it, it is watched anew.
        std::fs::remove_dir_all(&a).unwrap();
        std::fs::create_dir(&a).unwrap();
        let _ = seen_until(&wake, &a);
        w.forget(&a);
        assert!(w.watch_dirs(&[&a, &b]).is_empty());
        std::fs::write(a.join("again.log"), b"x\n").unwrap();
        let _ = seen_until(&wake, &a.join("again.log"));
        // No longer walked: let go.
        w.new_pass();
        assert!(w.watch_dirs(&[&b]).is_empty());
        w.keep_walked();
        assert_eq!(w.watched_dirs(), 1);
        assert_eq!(w.watches_held(), 1, "a's watch dropped in the kernel too");
        std::fs::write(a.join("after.log"), b"x\n").unwrap();
        std::fs::write(b.join("marker.log"), b"x\n").unwrap();
        let seen = seen_until(&wake, &b.join("marker.log"));
        assert!(!seen.contains(&a.join("after.log")), "{seen:?}");
    }

    #[test]
    fn changes_in_a_watched_directory_are_reported_by_path() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::create_dir(&a).unwrap();
        let wake = Wake::new();
        let mut w = Watch::new(wake.clone()).unwrap();
        assert!(w.watch_dirs(&[&a]).is_empty());
        assert_eq!(w.watched_dirs(), 1);
        let f = a.join("0.log");
        std::fs::write(&f, b"x\n").unwrap();
        let _ = seen_until(&wake, &f);
        // A directory not watched reports nothing; a watched one again.
        let b = dir.path().join("b");
        std::fs::create_dir(&b).unwrap();
        std::fs::write(b.join("0.log"), b"x\n").unwrap();
        std::fs::rename(&f, a.join("1.log")).unwrap();
        let seen = seen_until(&wake, &a.join("1.log"));
        assert!(seen.contains(&f), "the old name too");
        assert!(!seen.contains(&b.join("0.log")), "b is not watched");
        // Watching again is a no-op; a vanished directory is skipped.
        let missing = dir.path().join("missing");
        assert!(w.watch_dirs(&[&a, &missing]).is_empty());
        assert_eq!(w.watches_held(), 1);
    }

    #[test]
    fn a_tree_watch_follows_directories_made_later() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("logs");
        std::fs::create_dir_all(root.join("old/deep")).unwrap();
        let wake = Wake::new();
        let mut w = Watch::new(wake.clone()).unwrap();
        assert!(w.watch(&root).unwrap());
        assert!(!w.watch(&dir.path().join("none")).unwrap(), "not there yet");
        let f = root.join("old/deep/0.log");
        std::fs::write(&f, b"x\n").unwrap();
        let _ = seen_until(&wake, &f);
        // Made after the watch: the new directory, then a file in it.
        let new = root.join("new/inner");
        std::fs::create_dir_all(&new).unwrap();
        let _ = seen_until(&wake, &root.join("new"));
        // The event thread watches it as it learns of it; a file written
        // there from then on is reported.
        let g = new.join("0.log");
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut seen = false;
        while !seen && Instant::now() < deadline {
            std::fs::write(&g, b"y\n").unwrap();
            wake.wait(Duration::from_millis(50));
            seen = wake.take().dirty.contains_key(&g);
        }
        assert!(seen, "a file in a directory made after the watch");
        // The directory of a tree is not one of the single watches.
        assert_eq!(w.watched_dirs(), 0);
    }

    /// The kernel's queue overflowing (more events than
    /// `fs.inotify.max_queued_events` before the thread reads them) loses
    /// events: the tailer is told to check everything.
    #[test]
    fn a_lost_event_queue_asks_for_a_full_check() {
        let dir = tempfile::tempdir().unwrap();
        let wake = Wake::new();
        let mut w = Watch::new(wake.clone()).unwrap();
        assert!(w.watch_dirs(&[dir.path()]).is_empty());
        let queue: usize = std::fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(16_384);
        {
            // The event thread stops at the table's lock after one read;
            // meanwhile more distinct events than the queue holds.
            let _held = lock(&w.table);
            for i in 0..queue + 4_096 {
                std::fs::File::create(dir.path().join(i.to_string())).unwrap();
            }
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut overflow = false;
        while !overflow && Instant::now() < deadline {
            wake.wait(Duration::from_millis(50));
            overflow = wake.take().overflow;
        }
        assert!(overflow, "no overflow reported");
    }

    #[test]
    fn dropping_the_watch_ends_its_thread() {
        let wake = Wake::new();
        let w = Watch::new(wake).unwrap();
        let t = w.thread.as_ref().map(|t| t.thread().id());
        assert!(t.is_some());
        drop(w); // joins the thread: returns only if it ended
    }
}
