//! Finding the files to tail: glob expansion and change notification.
//!
//! Owns: [`Target`] (a compiled `__path__` / `__path_exclude__` pair),
//! [`Target::expand`] (the periodic rescan, the safety net that finds every
//! file eventually), [`static_prefix`] (the directory a glob cannot escape),
//! and [`Watch`] + [`Wake`]: an inotify watcher (via `notify`) on the
//! directories the rescan walks, that records which paths changed and wakes
//! the tailer early.
//!
//! Design: inotify is only a *hint* — the tailer reacts to it at once, but
//! correctness rests on the rescan every `sync_period` and on stat checks of
//! open files. An inotify queue overflow, a watch limit or a directory created
//! before its parent was watched only delays discovery to the next rescan.
//! The set of changed paths is bounded; past the bound it degrades to "check
//! everything".
//!
//! Symlinks: a match is tailed only if, every symlink resolved, it lies
//! inside the glob's static prefix or a directory of
//! `target_config.follow_symlinks_into` ([`inside_tree`]).
//!
//! Must never: panic or stop on an unreadable directory, a dangling symlink
//! or a file vanishing mid-scan (errors are reported to the caller, once);
//! follow a symlink out of the glob's tree unless configured to.

use crate::labels::LabelSet;
use glob::{MatchOptions, Pattern};
use std::collections::HashSet;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// Matching options: `*` does not cross `/` (as Promtail's doublestar).
pub const MATCH: MatchOptions = MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

/// A compiled file target.
pub struct Target {
    pub job: usize,
    pub include: String,
    /// The compiled glob, for globs [`super::expand::Walk`] cannot take
    /// (it matches the others at a fraction of the memory).
    include_pat: Option<Pattern>,
    pub exclude: Option<Pattern>,
    pub labels: LabelSet,
    pub prefix: PathBuf,
    /// The glob compiled for a shared rescan (`None`: the glob crate
    /// expands it; see `expand.rs`).
    walk: Option<super::expand::Walk>,
    /// What it was compiled from (compared when a new set arrives).
    pub spec: crate::source::FileTarget,
    /// Its named pipeline (index in the job's), if any.
    pub pipe: Option<usize>,
    /// Removed from its job's set: matches no new file (see the tailer's
    /// target table).
    pub retired: bool,
}

impl Target {
    pub fn new(
        job: usize,
        include: &str,
        exclude: Option<&str>,
        labels: LabelSet,
    ) -> Result<Target, String> {
        let exclude_src = exclude;
        let include_pat =
            Pattern::new(include).map_err(|e| format!("__path__ {include:?}: {e}"))?;
        let walk = super::expand::Walk::new(include);
        let include_pat = walk.is_none().then_some(include_pat);
        let exclude = match exclude {
            Some(x) if !x.is_empty() => {
                Some(Pattern::new(x).map_err(|e| format!("__path_exclude__ {x:?}: {e}"))?)
            }
            _ => None,
        };
        Ok(Target {
            job,
            prefix: static_prefix(include),
            walk,
            include: include.to_string(),
            include_pat,
            exclude,
            spec: crate::source::FileTarget {
                include: include.to_string(),
                exclude: exclude_s(exclude_src),
                labels: labels.clone(),
                ..Default::default()
            },
            labels,
            pipe: None,
            retired: false,
        })
    }

    /// The glob compiled for walking, if it can be (see `expand.rs`).
    pub fn walk(&self) -> Option<&super::expand::Walk> {
        self.walk.as_ref()
    }

    /// True if `path` is one of this target's files.
    pub fn matches(&self, path: &Path) -> bool {
        let included = match (&self.walk, &self.include_pat) {
            (Some(w), _) => w.matches(path),
            (None, Some(p)) => p.matches_path_with(path, MATCH),
            (None, None) => false,
        };
        included
            && !self
                .exclude
                .as_ref()
                .is_some_and(|x| x.matches_path_with(path, MATCH))
    }

    /// Every path the glob matches now, minus excluded ones, appended to
    /// `out`; directories are read through `scan`, shared by the targets of
    /// one rescan. Errors (unreadable directories) go to `on_err`.
    pub fn expand(
        &self,
        scan: &mut super::expand::Scan,
        out: &mut Vec<PathBuf>,
        on_err: &mut dyn FnMut(&Path, &io::Error),
    ) {
        let from = out.len();
        match &self.walk {
            Some(w) => scan.expand(w, out, on_err),
            None => self.expand_by_glob_crate(out, on_err),
        }
        self.drop_excluded(out, from);
    }

    /// Removes the paths `__path_exclude__` matches from `out[from..]`.
    pub fn drop_excluded(&self, out: &mut Vec<PathBuf>, from: usize) {
        if let Some(x) = &self.exclude {
            let mut i = from;
            while i < out.len() {
                if x.matches_path_with(&out[i], MATCH) {
                    out.remove(i);
                } else {
                    i += 1;
                }
            }
        }
    }

    /// The glob crate's expansion (globs with `**`, relative ones).
    fn expand_by_glob_crate(
        &self,
        out: &mut Vec<PathBuf>,
        on_err: &mut dyn FnMut(&Path, &io::Error),
    ) {
        let paths = match glob::glob_with(&self.include, MATCH) {
            Ok(p) => p,
            Err(e) => {
                on_err(
                    Path::new(&self.include),
                    &io::Error::new(io::ErrorKind::InvalidInput, e.to_string()),
                );
                return;
            }
        };
        for r in paths {
            match r {
                Ok(p) => out.push(p),
                Err(e) => on_err(e.path(), e.error()),
            }
        }
    }
}

fn exclude_s(x: Option<&str>) -> Option<String> {
    x.map(str::to_string)
}

/// The longest leading part of a glob without wildcards: the directory a
/// match must live under.
pub fn static_prefix(glob: &str) -> PathBuf {
    let mut p = PathBuf::new();
    let path = Path::new(glob);
    let comps: Vec<Component> = path.components().collect();
    for (i, c) in comps.iter().enumerate() {
        let s = c.as_os_str().to_string_lossy();
        if s.contains(['*', '?', '[', '{']) {
            return p;
        }
        if i + 1 == comps.len() {
            // The last component names the file itself.
            break;
        }
        p.push(c.as_os_str());
    }
    p
}

/// True if `path`, every symlink resolved, lies inside the glob's static
/// prefix `prefix` (itself resolved; empty means the working directory) or
/// inside one of `also` (`target_config.follow_symlinks_into`). A symlink
/// that leads out of the glob's directory tree is not followed unless the
/// user named where it may lead. False if `path` cannot be resolved.
pub fn inside_tree(path: &Path, prefix: &Path, also: &[PathBuf]) -> bool {
    let Ok(real) = std::fs::canonicalize(path) else {
        return false;
    };
    // Every leading part of a resolved path is itself resolved: a root
    // that `real` starts with as written is inside, with no need to
    // resolve the roots (two more `realpath`s per file taken on).
    if std::iter::once(prefix)
        .chain(also.iter().map(PathBuf::as_path))
        .any(|r| r.is_absolute() && real.starts_with(r))
    {
        return true;
    }
    let root = if prefix.as_os_str().is_empty() {
        Path::new(".")
    } else {
        prefix
    };
    std::iter::once(root)
        .chain(also.iter().map(PathBuf::as_path))
        .filter_map(|r| std::fs::canonicalize(r).ok())
        .any(|r| real.starts_with(r))
}

/// Paths reported changed since the tailer last looked, and the wake-up.
#[derive(Default)]
pub struct Wake {
    state: Mutex<WakeState>,
    cv: Condvar,
}

#[derive(Default)]
pub struct WakeState {
    pub dirty: HashSet<PathBuf>,
    /// Too many changes or a lost inotify queue: check everything.
    pub overflow: bool,
    pub notified: bool,
    /// The memory budget has room again (see [`Wake::room`]).
    pub room: bool,
}

/// Most changed paths remembered between two looks.
const MAX_DIRTY: usize = 65_536;

impl Wake {
    pub fn new() -> Arc<Wake> {
        Arc::new(Wake::default())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, WakeState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn mark(&self, paths: impl IntoIterator<Item = PathBuf>, overflow: bool) {
        let mut s = self.lock();
        for p in paths {
            if s.dirty.len() >= MAX_DIRTY {
                s.overflow = true;
                s.dirty.clear();
                break;
            }
            if !s.overflow {
                s.dirty.insert(p);
            }
        }
        s.overflow |= overflow;
        s.notified = true;
        self.cv.notify_all();
    }

    /// Wakes the tailer without a path (stop).
    pub fn poke(&self) {
        self.lock().notified = true;
        self.cv.notify_all();
    }

    /// The budget has room again: wakes a [`wait_room`](Self::wait_room).
    pub fn room(&self) {
        let mut s = self.lock();
        s.room = true;
        s.notified = true;
        self.cv.notify_all();
    }

    /// Sleeps up to `d` unless [`room`](Self::room) was signalled (file
    /// events do not end this wait). Clears the signal.
    pub fn wait_room(&self, d: Duration) {
        let g = self.lock();
        let (mut g, _) = self
            .cv
            .wait_timeout_while(g, d, |s| !s.room)
            .unwrap_or_else(|p| p.into_inner());
        g.room = false;
    }

    /// Takes what changed.
    pub fn take(&self) -> WakeState {
        std::mem::take(&mut *self.lock())
    }

    /// Sleeps up to `d` unless something was already reported.
    pub fn wait(&self, d: Duration) {
        let g = self.lock();
        if g.notified {
            return;
        }
        let _ = self.cv.wait_timeout(g, d);
    }
}

/// Directories per `update_paths` call (see [`Watch::watch_dirs`]).
const WATCH_BATCH: usize = 256;

/// An inotify watcher feeding a [`Wake`].
///
/// Two kinds of watches: the directories a rescan walks (see
/// [`super::expand::Scan::expand_all`]) are watched one by one,
/// non-recursively, in one batch per glob component — only the directories
/// a glob can match in, and no second walk of the tree by `notify` (at
/// 5,000 containers its recursive walk, listing and `stat`ing every file of
/// every directory again, was a quarter of the start-up cost); the static
/// prefix of a glob the walk cannot take (`**`, relative) is watched
/// recursively, as before.
pub struct Watch {
    w: notify::RecommendedWatcher,
    /// Recursively watched prefixes.
    trees: HashSet<PathBuf>,
    /// Directories watched by themselves, by a hash of their path (8 bytes
    /// each, where `notify` keeps each path three times already).
    dirs: HashSet<u64>,
    hasher: std::hash::RandomState,
}

impl Watch {
    pub fn new(wake: Arc<Wake>) -> notify::Result<Watch> {
        use notify::Watcher as _;
        let w = notify::RecommendedWatcher::new(
            move |ev: notify::Result<notify::Event>| match ev {
                // Opens and closes change nothing, and most are our own
                // (reopening a parked file, a rescan reading directories):
                // the kernel is not even asked for them (`CORE` below), so
                // no open of ours wakes the watcher thread; any that still
                // come are dropped here.
                Ok(ev) if ev.kind.is_access() && !ev.need_rescan() => {}
                Ok(ev) => {
                    let overflow = ev.need_rescan();
                    wake.mark(ev.paths, overflow);
                }
                Err(_) => wake.mark(std::iter::empty(), true),
            },
            // Creations, removals, writes, renames and attribute changes;
            // no access events (IN_OPEN, IN_CLOSE_*).
            notify::Config::default().with_event_kinds(notify::EventKindMask::CORE),
        )?;
        Ok(Watch {
            w,
            trees: HashSet::new(),
            dirs: HashSet::new(),
            hasher: std::hash::RandomState::new(),
        })
    }

    fn key(&self, dir: &Path) -> u64 {
        use std::hash::BuildHasher as _;
        self.hasher.hash_one(dir.as_os_str().as_encoded_bytes())
    }

    fn covered(&self, dir: &Path) -> bool {
        self.trees.iter().any(|t| dir.starts_with(t))
    }

    /// Watches `dir` recursively (once). Returns Ok(false) if it does not
    /// exist yet (retry at the next rescan).
    pub fn watch(&mut self, dir: &Path) -> notify::Result<bool> {
        use notify::Watcher as _;
        if self.covered(dir) {
            return Ok(true);
        }
        if !dir.is_dir() {
            return Ok(false);
        }
        self.w.watch(dir, notify::RecursiveMode::Recursive)?;
        self.trees.insert(dir.to_path_buf());
        Ok(true)
    }

    /// Watches each of `dirs` by itself, those not watched yet, in one
    /// batch. A directory that vanished is skipped (the rescan does not find
    /// it either); other failures (the inotify watch limit, permissions)
    /// are returned, and retried at the next rescan.
    pub fn watch_dirs(&mut self, dirs: &[&Path]) -> Vec<(PathBuf, notify::Error)> {
        let mut errs = Vec::new();
        // In slices: `notify` copies each path of a batch twice, and a
        // start-up at 5,000 containers has 10,000 directories.
        let mut todo = Vec::new();
        for d in dirs {
            if !self.dirs.contains(&self.key(d)) && !self.covered(d) {
                todo.push(d.to_path_buf());
            }
            if todo.len() == WATCH_BATCH && self.watch_batch(std::mem::take(&mut todo), &mut errs) {
                return errs;
            }
        }
        self.watch_batch(todo, &mut errs);
        errs
    }

    /// One batch of [`watch_dirs`](Self::watch_dirs); true if the rest
    /// would fail the same way (the watch limit, the watcher gone).
    fn watch_batch(
        &mut self,
        mut todo: Vec<PathBuf>,
        errs: &mut Vec<(PathBuf, notify::Error)>,
    ) -> bool {
        use notify::Watcher as _;
        while !todo.is_empty() {
            let ops = todo
                .iter()
                .map(|d| notify::PathOp::watch_non_recursive(d.clone()))
                .collect();
            let e = match self.w.update_paths(ops) {
                Ok(()) => {
                    self.watched(&todo);
                    break;
                }
                Err(e) => e,
            };
            let Some(failed) = e.origin else {
                // The watcher thread is gone: nothing was confirmed.
                errs.push((todo.swap_remove(0), e.source));
                return true;
            };
            let applied = todo.len().saturating_sub(e.remaining.len() + 1);
            let rest = todo.split_off(applied + 1);
            todo.truncate(applied);
            self.watched(&todo);
            let gone = match &e.source.kind {
                notify::ErrorKind::PathNotFound => true,
                notify::ErrorKind::Io(io) => io.kind() == io::ErrorKind::NotFound,
                _ => false,
            };
            let limit = matches!(e.source.kind, notify::ErrorKind::MaxFilesWatch);
            if !gone {
                errs.push((failed.as_path().to_path_buf(), e.source));
            }
            if limit {
                return true;
            }
            todo = rest;
        }
        false
    }

    /// An event named `path`: if it is a directory watched by itself, it
    /// may have been removed (and made again), so it is watched anew at
    /// the next rescan (which the event triggers).
    pub fn forget(&mut self, path: &Path) {
        let k = self.key(path);
        self.dirs.remove(&k);
    }

    fn watched(&mut self, dirs: &[PathBuf]) {
        for d in dirs {
            let k = self.key(d);
            self.dirs.insert(k);
        }
    }

    /// After a rescan that read the directories `read`: stops watching the
    /// ones it no longer walked (no target leads there any more; a removed
    /// one lost its watch with it, and its event already forgot it).
    pub fn keep_only<'a>(&mut self, read: impl Iterator<Item = &'a Path>) {
        use notify::Watcher as _;
        let read: HashSet<u64> = read.map(|d| self.key(d)).collect();
        let before = self.dirs.len();
        self.dirs.retain(|k| read.contains(k));
        if self.dirs.len() == before {
            return;
        }
        // Rare (a retired target whose directories stay): ask `notify`
        // for the paths of the watches to drop.
        let Ok(all) = self.w.watched_paths() else {
            return;
        };
        let mut ops: Vec<notify::PathOp> = all
            .into_iter()
            .filter(|(p, mode)| {
                // Recursive watches are the trees, never let go here.
                *mode == notify::RecursiveMode::NonRecursive && !self.dirs.contains(&self.key(p))
            })
            .map(|(p, _)| notify::PathOp::unwatch(p))
            .collect();
        // Gone directories lost their watch with them: unwatching them
        // fails, and the batch goes on with the rest.
        while let Err(e) = self.w.update_paths(ops) {
            if e.origin.is_none() {
                break;
            }
            ops = e.remaining;
        }
    }

    /// How many directories are watched by themselves (tests).
    #[cfg(test)]
    pub fn watched_dirs(&self) -> usize {
        self.dirs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_prefix_stops_at_wildcards() {
        assert_eq!(
            static_prefix("/var/log/pods/*abc/c/*.log"),
            PathBuf::from("/var/log/pods")
        );
        assert_eq!(
            static_prefix("/var/log/**/*.log"),
            PathBuf::from("/var/log")
        );
        assert_eq!(static_prefix("/var/log/syslog"), PathBuf::from("/var/log"));
    }

    #[test]
    fn symlinks_out_of_the_glob_tree_are_not_followed_unless_allowed() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let logs = d.join("logs");
        let outside = d.join("outside");
        std::fs::create_dir_all(logs.join("a")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(logs.join("a/real.log"), b"x\n").unwrap();
        std::fs::write(outside.join("secret.log"), b"s\n").unwrap();
        // A file link and a directory link out of the tree, one inside.
        symlink(outside.join("secret.log"), logs.join("a/out.log")).unwrap();
        symlink(&outside, logs.join("b")).unwrap();
        symlink(logs.join("a/real.log"), logs.join("a/in.log")).unwrap();
        let prefix = static_prefix(&format!("{}/*/*.log", logs.display()));
        assert!(inside_tree(&logs.join("a/real.log"), &prefix, &[]));
        assert!(inside_tree(&logs.join("a/in.log"), &prefix, &[]));
        assert!(!inside_tree(&logs.join("a/out.log"), &prefix, &[]));
        assert!(!inside_tree(&logs.join("b/secret.log"), &prefix, &[]));
        assert!(!inside_tree(&logs.join("a/missing.log"), &prefix, &[]));
        let allow = [outside.clone()];
        assert!(inside_tree(&logs.join("a/out.log"), &prefix, &allow));
        assert!(inside_tree(&logs.join("b/secret.log"), &prefix, &allow));
        // The prefix itself may be a symlink: the user named it.
        symlink(&logs, d.join("logs-link")).unwrap();
        let linked = static_prefix(&format!("{}/logs-link/*/*.log", d.display()));
        assert!(inside_tree(&d.join("logs-link/a/real.log"), &linked, &[]));
        assert!(!inside_tree(&d.join("logs-link/a/out.log"), &linked, &[]));
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
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !seen.contains(&d.join("sub/written.log")) && std::time::Instant::now() < deadline {
            wake.wait(Duration::from_millis(50));
            let s = wake.take();
            assert!(!s.overflow);
            seen.extend(s.dirty);
        }
        assert!(seen.contains(&d.join("sub/written.log")), "{seen:?}");
        assert!(!seen.contains(&d.join("sub/read.log")), "{seen:?}");
        assert!(!seen.contains(&d.join("sub")), "{seen:?}");
    }

    /// Waits until `want` is reported; returns everything reported.
    fn seen_until(wake: &Wake, want: &Path) -> HashSet<PathBuf> {
        let mut seen = HashSet::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !seen.contains(want) && std::time::Instant::now() < deadline {
            wake.wait(Duration::from_millis(50));
            seen.extend(wake.take().dirty);
        }
        assert!(seen.contains(want), "{want:?} not reported: {seen:?}");
        seen
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
        w.keep_only([b.as_path()].into_iter());
        assert_eq!(w.watched_dirs(), 1);
        std::fs::write(a.join("after.log"), b"x\n").unwrap();
        std::fs::write(b.join("marker.log"), b"x\n").unwrap();
        let seen = seen_until(&wake, &b.join("marker.log"));
        assert!(!seen.contains(&a.join("after.log")), "{seen:?}");
    }

    #[test]
    fn expands_double_star_and_excludes() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("ns_pod_uid/c")).unwrap();
        std::fs::create_dir_all(d.join("other/deep/er")).unwrap();
        std::fs::write(d.join("ns_pod_uid/c/0.log"), b"").unwrap();
        std::fs::write(d.join("ns_pod_uid/c/0.log.20261122-101500"), b"").unwrap();
        std::fs::write(d.join("other/deep/er/1.log"), b"").unwrap();
        std::fs::write(d.join("other/skip.log"), b"").unwrap();
        let inc = format!("{}/**/*.log", d.display());
        let exc = format!("{}/other/*.log", d.display());
        let t = Target::new(0, &inc, Some(&exc), LabelSet::empty()).unwrap();
        let mut out = Vec::new();
        t.expand(
            &mut super::super::expand::Scan::default(),
            &mut out,
            &mut |p, e| panic!("{p:?}: {e}"),
        );
        out.sort();
        assert_eq!(
            out,
            vec![d.join("ns_pod_uid/c/0.log"), d.join("other/deep/er/1.log")]
        );
        assert!(t.matches(&d.join("a/b/c.log")));
        assert!(!t.matches(&d.join("other/skip.log")));
        assert!(!t.matches(&d.join("ns_pod_uid/c/0.log.1")));
        // `*` does not cross directories.
        let t = Target::new(
            0,
            &format!("{}/*.log", d.display()),
            None,
            LabelSet::empty(),
        )
        .unwrap();
        assert!(!t.matches(&d.join("x/y.log")));
    }

    /// A walkable glob (shared rescan, per-component matching) honours
    /// `__path_exclude__` in expansion and in matching alike.
    #[test]
    fn walkable_globs_expand_and_match_with_excludes() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for p in [
            "ns_a_u1/c/0.log",
            "ns_b_u2/c/0.log",
            "ns_b_u2/c/1.log",
            "kube-system_p_u3/c/0.log",
        ] {
            std::fs::create_dir_all(d.join(p).parent().unwrap()).unwrap();
            std::fs::write(d.join(p), b"x\n").unwrap();
        }
        let inc = format!("{}/*/c/*.log", d.display());
        let exc = format!("{}/kube-system_*/*/*.log", d.display());
        let t = Target::new(0, &inc, Some(&exc), LabelSet::empty()).unwrap();
        assert!(t.walk().is_some(), "expanded by the shared rescan");
        let mut out = Vec::new();
        let mut scan = crate::source::expand::Scan::default();
        t.expand(&mut scan, &mut out, &mut |p, e| panic!("{p:?}: {e}"));
        let want = vec![
            d.join("ns_a_u1/c/0.log"),
            d.join("ns_b_u2/c/0.log"),
            d.join("ns_b_u2/c/1.log"),
        ];
        assert_eq!(out, want);
        assert!(want.iter().all(|p| t.matches(p)));
        assert!(!t.matches(&d.join("kube-system_p_u3/c/0.log")), "excluded");
        assert!(
            !t.matches(&d.join("ns_a_u1/c/x/0.log")),
            "* does not cross /"
        );
        assert!(!t.matches(&d.join("ns_a_u1/d/0.log")));
    }

    #[test]
    fn bad_glob_is_an_error() {
        assert!(Target::new(0, "/a/[", None, LabelSet::empty()).is_err());
    }

    #[test]
    fn watcher_reports_changes() {
        let dir = tempfile::tempdir().unwrap();
        let wake = Wake::new();
        let mut w = Watch::new(wake.clone()).unwrap();
        assert!(w.watch(dir.path()).unwrap());
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let p = dir.path().join("sub/x.log");
        std::fs::write(&p, b"hi\n").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut seen = false;
        while std::time::Instant::now() < deadline && !seen {
            wake.wait(Duration::from_millis(100));
            let s = wake.take();
            seen = s.dirty.contains(&p) || s.overflow;
        }
        assert!(
            seen,
            "no event for a file in a directory created after the watch"
        );
    }
}
