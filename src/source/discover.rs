//! Finding the files to tail: glob expansion and change notification.
//!
//! Owns: [`Target`] (a compiled `__path__` / `__path_exclude__` pair),
//! [`Target::expand`] (the periodic rescan, the safety net that finds every
//! file eventually), [`static_prefix`] (the directory a glob cannot escape),
//! and [`Wake`]: the paths that changed and how ([`Change`]: a write
//! alone, or anything else), filled by the inotify watches of
//! [`super::watch::Watch`] on the directories the rescan walks, that wakes
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

/// What the events naming a path said since the tailer last looked (in
/// rising order: the most telling one is kept).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    /// Only writes (`IN_MODIFY`, a truncation included): whatever is at
    /// the path is what was there at the last event that named it
    /// otherwise — a file made, removed or renamed there is an event of
    /// its own, reported in order, or lost only with an overflow.
    Written,
    /// Anything else (made, removed, renamed, attributes), alone or with
    /// writes.
    Other,
    /// As [`Change::Other`], of a directory: made, removed or renamed in a
    /// watched one, or a watched directory's own event (its attributes
    /// changed, itself removed or moved, its watch gone). Its listing, and
    /// the path's parent's, may have changed.
    Dir,
}

#[derive(Default)]
pub struct WakeState {
    pub dirty: crate::fasthash::FastMap<PathBuf, Change>,
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

    pub fn mark(&self, paths: impl IntoIterator<Item = (PathBuf, Change)>, overflow: bool) {
        let mut s = self.lock();
        for (p, change) in paths {
            if s.dirty.len() >= MAX_DIRTY {
                s.overflow = true;
                s.dirty.clear();
                break;
            }
            if !s.overflow {
                let c = s.dirty.entry(p).or_insert(change);
                *c = (*c).max(change);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A path written and also renamed, made or removed before the tailer
    /// looked is a change, whatever the order: the tailer must check what
    /// the path holds.
    #[test]
    fn a_write_and_a_change_of_one_path_in_one_look_are_a_change() {
        let (p, q) = (PathBuf::from("/l/0.log"), PathBuf::from("/l/1.log"));
        let w = Wake::new();
        w.mark(
            [(p.clone(), Change::Written), (p.clone(), Change::Written)],
            false,
        );
        assert_eq!(w.take().dirty.get(&p), Some(&Change::Written));
        for order in [
            [Change::Written, Change::Other, Change::Written],
            [Change::Other, Change::Written, Change::Written],
            [Change::Written, Change::Written, Change::Other],
        ] {
            w.mark(order.iter().map(|&c| (p.clone(), c)), false);
            w.mark([(q.clone(), Change::Written)], false);
            let s = w.take();
            assert_eq!(s.dirty.get(&p), Some(&Change::Other), "{order:?}");
            assert_eq!(s.dirty.get(&q), Some(&Change::Written));
        }
    }

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
}
