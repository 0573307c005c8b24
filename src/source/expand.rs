//! One rescan's glob expansion, over directory listings shared by every
//! target.
//!
//! Owns: [`Scan`], which expands targets' `__path__` globs during one rescan,
//! reading each directory at most once and answering each pattern component
//! from an index of that listing; and [`Walk`], a glob compiled into its
//! fixed base directory and per-component matchers.
//!
//! Why: with `kubernetes_sd`, every container is a target of its own,
//! `/var/log/pods/*<pod uid>/<container>/*.log`. Expanded one by one (the
//! glob crate), each target read `/var/log/pods` again and matched every pod
//! directory: quadratic in pods — 12 s per rescan at 2,500 pods, on the
//! thread that reads the files. Here `/var/log/pods` is read once per rescan
//! and `*<uid>` is a hash lookup by suffix, so a rescan costs the directories
//! read plus the paths found.
//!
//! Design: a component without wildcards is looked up by binary search in
//! the sorted listing; `*<literal>` in a suffix index (built on first use
//! per directory and suffix length, only for directories worth indexing);
//! `<literal>*` as a range of the sorted listing; anything else (`?`,
//! `[...]`, several `*`) is matched entry by entry with the glob crate's
//! `Pattern`. Entry types come from the directory itself (`d_type`); only
//! symlinks and unknown types are `stat`ed, and only when the walk must
//! descend through them. Output order is the glob crate's (sorted,
//! depth-first). A path the walk reached only through real directories and
//! that is not itself a symlink lies inside the base by construction; the
//! few reached through a symlink (or an entry of unknown type) are named by
//! [`Scan::through_link`], so that only they need resolving to check where
//! they lead. Globs that are not absolute or contain `**` are expanded by
//! the glob crate as before ([`super::discover::Target::expand`]).
//!
//! Listings themselves ([`super::listing`]) are one allocation each; a
//! full rescan [reusing](Scan::reusing) the last one's listings reads only
//! the directories changed since.
//!
//! Memory: a rescan of 5,000 pods reads 10,000 directories. Directories
//! read are remembered by a 64-bit hash of their path (as the watch table
//! does), not by the path, and a walk of every target at once lets go of a
//! step's listings when the step is done (the walk's levels hold the paths
//! it still needs); the watch table learns which directories were walked
//! as they are handed to it ([`super::watch::Watch::new_pass`]), so the
//! scan keeps no list of them.
//!
//! Must never: match differently from the glob crate with Promtail's options
//! (`*` never crosses `/`, a leading `.` needs no literal dot); report a
//! directory vanishing mid-scan as an error; keep listings past its rescan
//! (a `Scan` is dropped at the end of each), but those a full rescan hands
//! on as [`Kept`] under `super::listing`'s rule.

use super::discover::MATCH;
pub use super::listing::Kept;
use super::listing::{Entry, Keeping, Kind, Listing, Stamp};
use crate::fasthash::{FastSet, KeyMap, KeySet};
use crate::source::chain::{Listed, Stamps};
use glob::Pattern;
use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// Directories with at most this many entries are matched entry by entry
/// (an index would cost more than it saves).
pub(super) const INDEX_FROM: usize = 32;

/// One component of a glob, compiled.
#[derive(Debug)]
pub(super) enum Comp {
    /// No wildcard: this exact name.
    Exact(Vec<u8>),
    /// `*<literal>` (`*` alone: every entry).
    Suffix(Vec<u8>),
    /// `<literal>*`.
    Prefix(Vec<u8>),
    /// Anything else.
    Glob(Pattern),
}

/// A glob compiled for [`Scan`]: its fixed base directory and one matcher
/// per component below it.
#[derive(Debug)]
pub struct Walk {
    base: PathBuf,
    comps: Vec<Comp>,
}

fn special(b: u8) -> bool {
    matches!(b, b'*' | b'?' | b'[' | b']' | b'{' | b'}' | b'\\')
}

impl Walk {
    /// Compiles `glob`, or `None` if [`Scan`] cannot walk it (relative, or
    /// with `**`): the glob crate expands those.
    pub fn new(glob: &str) -> Option<Walk> {
        let path = Path::new(glob);
        if !path.is_absolute() {
            return None;
        }
        let parts: Vec<Component> = path.components().collect();
        let mut base = PathBuf::new();
        let mut comps = Vec::new();
        for (i, c) in parts.iter().enumerate() {
            let Component::Normal(name) = c else {
                if comps.is_empty() && matches!(c, Component::RootDir) {
                    base.push(c.as_os_str());
                    continue;
                }
                return None; // `.` or `..` in a glob: leave it to the glob crate
            };
            let s = name.to_str()?;
            let b = s.as_bytes();
            let last = i + 1 == parts.len();
            if comps.is_empty() && !last && !b.iter().copied().any(special) {
                base.push(name);
                continue;
            }
            if s.contains("**") {
                return None;
            }
            comps.push(Comp::new(s)?);
        }
        if comps.is_empty() {
            return None;
        }
        Some(Walk { base, comps })
    }
}

/// What the first component below a [`Walk`]'s base must be for a path to
/// match: how the tailer's target table indexes targets by path.
pub enum FirstKey<'a> {
    /// Exactly this name.
    Exact(&'a [u8]),
    /// A name ending with this (empty: any name).
    Suffix(&'a [u8]),
    /// Anything else: check the pattern.
    Other,
}

impl Walk {
    /// The fixed directory the glob starts at.
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// True if `path` is one the glob matches (what the glob crate's
    /// `Pattern::matches_path_with` says for it, without its 32 bytes per
    /// character of compiled pattern: 4 KiB per Kubernetes target).
    pub fn matches(&self, path: &Path) -> bool {
        let Ok(rest) = path.strip_prefix(&self.base) else {
            return false;
        };
        let mut names = rest.components();
        for c in &self.comps {
            let Some(Component::Normal(name)) = names.next() else {
                return false;
            };
            if !c.matches(name) {
                return false;
            }
        }
        names.next().is_none()
    }

    /// For a directory strictly below the base whose every component
    /// matches the glob's so far and that can still hold matches: how many
    /// components deep it is (where a walk from it starts).
    pub(crate) fn depth_of(&self, dir: &Path) -> Option<usize> {
        let rest = dir.strip_prefix(&self.base).ok()?;
        let mut depth = 0;
        for name in rest.components() {
            // Deeper than the glob's last directory: nothing below matches.
            let c = self
                .comps
                .get(depth)
                .filter(|_| depth + 1 < self.comps.len())?;
            let Component::Normal(name) = name else {
                return None;
            };
            if !c.matches(name) {
                return None;
            }
            depth += 1;
        }
        (depth > 0).then_some(depth)
    }

    /// See [`FirstKey`].
    pub fn first_key(&self) -> FirstKey<'_> {
        match self.comps.first() {
            Some(Comp::Exact(x)) => FirstKey::Exact(x),
            Some(Comp::Suffix(x)) => FirstKey::Suffix(x),
            _ => FirstKey::Other,
        }
    }
}

/// A directory's key in the scan's and the watch table's sets: a 64-bit
/// hash of its path's bytes. The sets hold no paths: two directories whose
/// hashes collide (~10⁻¹¹ at 10,000 directories) would be taken for one,
/// and what changes in the second found by rescans only, not missed.
pub(super) fn path_key(hasher: &crate::fasthash::Quality, path: &Path) -> u64 {
    use std::hash::BuildHasher as _;
    hasher.hash_one(path.as_os_str().as_encoded_bytes())
}

/// `dir/name`, as `Path::join` makes it, allocated once at its size
/// (`join` copies `dir` and then grows the copy for `name`: a realloc per
/// path the walk finds).
fn join_name(dir: &Path, name: &[u8]) -> PathBuf {
    let mut p = PathBuf::with_capacity(dir.as_os_str().len() + 1 + name.len());
    p.push(dir);
    p.push(OsStr::from_bytes(name));
    p
}

/// The last `len` bytes of `b`, if it has that many: the key of a suffix
/// index (the listings' here, the tailer's target table).
pub fn tail(b: &[u8], len: usize) -> Option<&[u8]> {
    b.len().checked_sub(len).map(|i| &b[i..])
}

impl Comp {
    /// True if directory entry `name` matches this component (what the
    /// indexes of [`Listing::matching`] answer faster).
    pub(super) fn matches(&self, name: &std::ffi::OsStr) -> bool {
        let b = name.as_encoded_bytes();
        match self {
            Comp::Exact(x) => b == x.as_slice(),
            Comp::Suffix(x) => b.ends_with(x),
            Comp::Prefix(x) => b.starts_with(x),
            Comp::Glob(p) => name.to_str().is_some_and(|n| p.matches_with(n, MATCH)),
        }
    }

    fn new(s: &str) -> Option<Comp> {
        let b = s.as_bytes();
        if !b.iter().copied().any(special) {
            return Some(Comp::Exact(b.to_vec()));
        }
        if let Some(rest) = b.strip_prefix(b"*") {
            if !rest.iter().copied().any(special) {
                return Some(Comp::Suffix(rest.to_vec()));
            }
        }
        if let Some(head) = b.strip_suffix(b"*") {
            if !head.iter().copied().any(special) {
                return Some(Comp::Prefix(head.to_vec()));
            }
        }
        Pattern::new(s).ok().map(Comp::Glob)
    }
}

/// A directory this scan has read, by the hash of its path.
enum Dir {
    /// Unreadable or gone.
    Gone,
    /// Listed, with the stamp to keep the listing under if its directory
    /// has settled (a scan [reusing](Scan::reusing) listings).
    Listed(Listing, Option<Stamp>),
    /// Read, and let go of (or kept) once its step of the walk was done
    /// (listed again if another walk reaches it at another depth).
    Released,
}

/// One rescan's expansion. See the module docs.
#[derive(Default)]
pub struct Scan {
    /// Directories read in this rescan, by a hash of their path: at 5,000
    /// pods a rescan reads 10,000 of them, and the paths were most of its
    /// memory (the walk's own levels hold the paths it still needs).
    dirs: KeyMap<Dir>,
    hasher: crate::fasthash::Quality,
    /// The paths read, for the tests.
    #[cfg(test)]
    read: Vec<PathBuf>,
    /// Paths found through a symlink or an entry of unknown type (on the
    /// way or the path itself): where they lead is not known from the walk.
    linked: FastSet<PathBuf>,
    /// Directories read (a figure for tests and benchmarks).
    pub reads: usize,
    /// Those siblings, by the hash of the found path ([`Self::key`]): its
    /// inode number in the listing, and its siblings' stamps (at 5,000
    /// files, a path and its siblings' paths each were ~1.2 MiB of peak
    /// RSS).
    siblings: KeyMap<(u64, Stamps)>,
    /// When the scan was made (before it read anything), if its walk
    /// keeps each found path's rotated siblings ([`Self::keep_siblings`]).
    began: Option<std::time::SystemTime>,
    /// The last full rescan's listings, and the ones this scan keeps, if
    /// it [reuses](Self::reusing) them.
    keeping: Option<Keeping>,
}

impl Scan {
    /// A full rescan's scan: a directory whose `stat` is unchanged since
    /// `kept` was listed is not read again, and the listings of settled
    /// directories are kept for the next ([`Self::into_kept`];
    /// `super::listing` says when a listing may stand in). `changed`: if
    /// inotify is trusted this time, the directories it reported a change
    /// in or of since `kept` was made, by [`path_key`] with `kept`'s hasher
    /// — the others' kept listings stand in without a `stat`
    /// (`super::listing`, *Trusting inotify*).
    pub fn reusing(kept: Kept, changed: Option<KeySet>) -> Scan {
        let hasher = kept.hasher().clone();
        Scan {
            keeping: Some(kept.keeping(std::time::SystemTime::now(), changed)),
            hasher,
            ..Default::default()
        }
    }

    /// The listings this scan keeps for the next full rescan (none unless
    /// it was made [reusing](Self::reusing) them).
    pub fn into_kept(mut self) -> Kept {
        let Some(mut keeping) = self.keeping.take() else {
            return Kept::default();
        };
        for (k, d) in self.dirs.drain() {
            if let Dir::Listed(l, Some(stamp)) = d {
                keeping.keep(k, stamp, l);
            }
        }
        keeping.done(self.hasher)
    }

    /// Directories whose kept listing stood in for a read (a figure for
    /// tests and benchmarks).
    pub fn reused(&self) -> usize {
        self.keeping.as_ref().map_or(0, |k| k.reused)
    }

    /// Of [`Self::reused`], the listings that stood in without a `stat`
    /// (inotify trusted).
    pub fn trusted(&self) -> usize {
        self.keeping.as_ref().map_or(0, |k| k.trusted)
    }

    /// A scan whose walk also keeps, for each path it finds, the path's
    /// kubelet-rotated siblings (`0.log.<stamp>[.gz]`) from the same
    /// listing: what the tailer's start-up scan needs for each new path's
    /// chain watermark, without reading every container's directory a
    /// second time (~9 % of what 5,000 files cost).
    pub fn keep_siblings() -> Scan {
        Scan {
            began: Some(std::time::SystemTime::now()),
            ..Default::default()
        }
    }

    /// `path`'s entry in the listing that found it — its inode number and
    /// its rotated siblings' stamps — if the scan
    /// [keeps siblings](Self::keep_siblings) and its walk found `path`;
    /// taken out of the scan.
    pub fn siblings_of(&mut self, path: &Path) -> Option<Listed> {
        let (ino, stamps) = self.siblings.remove(&self.key(path))?;
        Some(Listed {
            ino,
            stamps,
            walked_at: self.began?,
        })
    }

    /// Appends to `out` every path `walk` matches now, in the glob crate's
    /// order; an unreadable directory goes to `on_err` (once per scan), a
    /// missing one is nothing.
    pub fn expand(
        &mut self,
        walk: &Walk,
        out: &mut Vec<PathBuf>,
        on_err: &mut dyn FnMut(&Path, &io::Error),
    ) {
        let starts = vec![vec![(0, walk.base.clone(), false)]];
        let outs = std::slice::from_mut(out);
        self.walk_from(&[walk], starts, outs, on_err, &mut |_| {}, false);
    }

    /// [`expand`](Self::expand) for several walks at once (`outs[k]` gets
    /// `walks[k]`'s paths), in step, one glob component at a time: before
    /// the directories of a step are read, the ones this scan has not read
    /// yet are handed to `before_read`, all together. That is where the
    /// tailer watches them — one batch per step for every target, and each
    /// directory watched before it is listed, so nothing created in it
    /// between the listing and the watch goes unreported.
    pub fn expand_all(
        &mut self,
        walks: &[&Walk],
        outs: &mut [Vec<PathBuf>],
        on_err: &mut dyn FnMut(&Path, &io::Error),
        before_read: &mut dyn FnMut(&[&Path]),
    ) {
        let starts = walks
            .iter()
            .map(|w| vec![(0, w.base.clone(), false)])
            .collect();
        self.walk_from(walks, starts, outs, on_err, before_read, true);
    }

    /// [`expand_all`](Self::expand_all) restricted to what lies under the
    /// directories `roots` (new directories an event named): each walk
    /// starts at each root whose path below the walk's base matches its
    /// first components, so only the new subtrees are read, not every
    /// directory the globs reach. A root at or above a walk's base starts
    /// it at its base. Paths found below a root are reported as reached
    /// through a link (the way to the root was not walked), so that the
    /// tailer checks where they lead.
    pub fn expand_under(
        &mut self,
        walks: &[&Walk],
        roots: &[&Path],
        outs: &mut [Vec<PathBuf>],
        on_err: &mut dyn FnMut(&Path, &io::Error),
        before_read: &mut dyn FnMut(&[&Path]),
    ) {
        let starts = walks
            .iter()
            .map(|w| {
                if roots.iter().any(|r| w.base.starts_with(r)) {
                    return vec![(0, w.base.clone(), false)];
                }
                let mut v: Vec<(usize, PathBuf, bool)> = roots
                    .iter()
                    .filter_map(|r| Some((w.depth_of(r)?, r.to_path_buf(), true)))
                    .collect();
                v.sort();
                v.dedup();
                v
            })
            .collect();
        self.walk_from(walks, starts, outs, on_err, before_read, true);
        // A root inside another one's subtree was reached twice.
        for out in outs.iter_mut() {
            out.sort();
            out.dedup();
        }
    }

    /// The walk itself: walk `k` reads each directory of `starts[k]` when
    /// it reaches that directory's depth (components below its base), with
    /// whether the way to it went through a symlink or an entry of unknown
    /// type. `release`: let go of each step's listings once it is done
    /// (walks in step reach a directory at one depth; [`Self::expand`],
    /// called once per walk on a shared scan, keeps them).
    fn walk_from(
        &mut self,
        walks: &[&Walk],
        mut starts: Vec<Vec<(usize, PathBuf, bool)>>,
        outs: &mut [Vec<PathBuf>],
        on_err: &mut dyn FnMut(&Path, &io::Error),
        before_read: &mut dyn FnMut(&[&Path]),
        release: bool,
    ) {
        // Each directory of a level: its path, whether the way to it went
        // through a link, and its inode number in its parent's listing
        // (`None` for a start, or an entry of unknown type).
        let mut levels: Vec<Vec<(PathBuf, bool, Option<u64>)>> = vec![Vec::new(); walks.len()];
        let steps = walks.iter().map(|w| w.comps.len()).max().unwrap_or(0);
        let mut hits = Vec::new();
        let mut found_siblings = Vec::new();
        let keep_siblings = self.began.is_some();
        let hasher = self.hasher.clone();
        for depth in 0..steps {
            for (level, starts) in levels.iter_mut().zip(starts.iter_mut()) {
                starts.retain(|(d, dir, linked)| {
                    let now = *d == depth;
                    if now {
                        level.push((dir.clone(), *linked, None));
                    }
                    !now
                });
            }
            {
                let mut seen = KeySet::default();
                let fresh: Vec<&Path> = levels
                    .iter()
                    .flatten()
                    .map(|(d, _, _)| d.as_path())
                    .filter(|d| {
                        let k = self.key(d);
                        !self.dirs.contains_key(&k) && seen.insert(k)
                    })
                    .collect();
                if !fresh.is_empty() {
                    before_read(&fresh);
                }
            }
            for (k, walk) in walks.iter().enumerate() {
                let Some(c) = walk.comps.get(depth) else {
                    continue;
                };
                let last = depth + 1 == walk.comps.len();
                let level = std::mem::take(&mut levels[k]);
                let mut next = Vec::new();
                let mut through_link = Vec::new();
                for (dir, linked, entry_ino) in &level {
                    let Some(listing) = self.listing(dir, *entry_ino, on_err) else {
                        continue;
                    };
                    listing.matching(c, &mut hits);
                    for &i in &hits {
                        let Entry { kind, ino, .. } = listing.entry(i as usize);
                        let name = listing.name(i as usize);
                        let path = join_name(dir, name);
                        let linked = *linked || kind == Kind::Ask;
                        if last {
                            if linked {
                                through_link.push(path.clone());
                            }
                            if keep_siblings {
                                found_siblings.push((
                                    path_key(&hasher, &path),
                                    (ino, listing.stamps_of(name)),
                                ));
                            }
                            outs[k].push(path);
                        } else {
                            match kind {
                                Kind::Dir => next.push((path, linked, Some(ino))),
                                Kind::Other => {}
                                Kind::Ask => {
                                    if std::fs::metadata(&path).is_ok_and(|m| m.is_dir()) {
                                        next.push((path, linked, None));
                                    }
                                }
                            }
                        }
                    }
                }
                levels[k] = next;
                self.linked.extend(through_link);
                self.siblings.extend(found_siblings.drain(..));
            }
            if release {
                for (&k, d) in self.dirs.iter_mut() {
                    if let Dir::Listed(..) = d {
                        if let (Dir::Listed(l, Some(stamp)), Some(keeping)) =
                            (std::mem::replace(d, Dir::Released), self.keeping.as_mut())
                        {
                            keeping.keep(k, stamp, l);
                        }
                    }
                }
            }
        }
    }

    /// True if `path`, a path this scan's walk found, was reached through
    /// a symlink or an entry of unknown type (on the way or the path
    /// itself). False: through real directories only, so it lies inside
    /// its walk's base as written.
    pub fn through_link(&self, path: &Path) -> bool {
        self.linked.contains(path)
    }

    /// The directories this scan read (or tried to read), for the tests.
    #[cfg(test)]
    pub fn read_dirs(&self) -> impl Iterator<Item = &Path> {
        self.read.iter().map(PathBuf::as_path)
    }

    fn key(&self, dir: &Path) -> u64 {
        path_key(&self.hasher, dir)
    }

    /// `dir`'s listing, read or standing in (`entry_ino`: its inode number
    /// in its parent's listing, see [`Keeping::list`]).
    fn listing(
        &mut self,
        dir: &Path,
        entry_ino: Option<u64>,
        on_err: &mut dyn FnMut(&Path, &io::Error),
    ) -> Option<&mut Listing> {
        let k = self.key(dir);
        if matches!(self.dirs.get(&k), None | Some(Dir::Released)) {
            let listed = match self.keeping.as_mut() {
                Some(keeping) => {
                    let before = keeping.reused;
                    let r = keeping.list(dir, k, entry_ino, &self.hasher);
                    if keeping.reused == before {
                        self.reads += 1;
                        #[cfg(test)]
                        self.read.push(dir.to_path_buf());
                    }
                    r
                }
                None => {
                    self.reads += 1;
                    #[cfg(test)]
                    self.read.push(dir.to_path_buf());
                    Listing::read(dir).map(|l| (l, None))
                }
            };
            let d = match listed {
                Ok((l, stamp)) => Dir::Listed(l, stamp),
                Err(e) => {
                    if !matches!(
                        e.kind(),
                        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                    ) {
                        on_err(dir, &e);
                    }
                    Dir::Gone
                }
            };
            self.dirs.insert(k, d);
        }
        match self.dirs.get_mut(&k) {
            Some(Dir::Listed(l, _)) => Some(l),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::testkit::settle;

    /// What the glob crate finds for `glob` (the oracle).
    fn by_glob_crate(glob: &str) -> Vec<PathBuf> {
        glob::glob_with(glob, MATCH)
            .unwrap()
            .filter_map(Result::ok)
            .collect()
    }

    fn by_scan(scan: &mut Scan, glob: &str) -> Vec<PathBuf> {
        let w = Walk::new(glob).unwrap_or_else(|| panic!("{glob} should be walkable"));
        let mut out = Vec::new();
        scan.expand(&w, &mut out, &mut |p, e| panic!("{p:?}: {e}"));
        out
    }

    /// A tree with pods, odd names, dot files, symlinks to directories
    /// and to files, a dangling symlink, and a big directory (indexed).
    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mk = |p: &str| {
            let p = d.join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"x\n").unwrap();
        };
        for i in 0..60 {
            let uid = format!("{i:08x}-9b3d-4e8f-a6c1-7d2b9e4f0a13");
            mk(&format!("pods/ns_pod-{i}_{uid}/app/0.log"));
            mk(&format!("pods/ns_pod-{i}_{uid}/app/0.log.20261122-101500"));
            if i % 3 == 0 {
                mk(&format!("pods/ns_pod-{i}_{uid}/side/1.log"));
            }
        }
        mk("pods/.hidden_13/app/0.log");
        mk("pods/x_13/app/.0.log");
        mk("pods/x_13/app/a?b.log");
        mk("pods/x_13/ap/0.log");
        mk("pods/plain-file_13");
        std::os::unix::fs::symlink(d.join("pods/x_13"), d.join("pods/link_13")).unwrap();
        std::os::unix::fs::symlink(d.join("pods/x_13/ap/0.log"), d.join("pods/x_13/app/l.log"))
            .unwrap();
        std::os::unix::fs::symlink(d.join("gone"), d.join("pods/dangling_13")).unwrap();
        dir
    }

    #[test]
    fn a_name_is_joined_as_path_join_joins_it() {
        for dir in ["/var/log/pods", "/var/log/pods/", "/", "rel/dir", ""] {
            for name in ["0.log", "ns_pod_uid", ".hidden"] {
                let d = Path::new(dir);
                assert_eq!(
                    join_name(d, name.as_bytes()).as_os_str(),
                    d.join(name).as_os_str(),
                    "{dir:?} + {name:?}"
                );
            }
        }
    }

    #[test]
    fn finds_what_the_glob_crate_finds() {
        let dir = tree();
        let root = dir.path().join("pods");
        let r = root.display();
        let globs = [
            format!("{r}/*/*/*.log"),
            format!("{r}/*0000002a-9b3d-4e8f-a6c1-7d2b9e4f0a13/app/*.log"),
            format!("{r}/*0000002a-9b3d-4e8f-a6c1-7d2b9e4f0a13/side/*.log"),
            format!("{r}/*_13/*/*.log"),
            format!("{r}/*_13/app/*"),
            format!("{r}/x_13/app/0.log"),
            format!("{r}/x_13/ap*/*.log"),
            format!("{r}/ns_pod-1*/app/0.log"),
            format!("{r}/ns_pod-?_*/app/*.log"),
            format!("{r}/[nx]*_13/app/*.log"),
            format!("{r}/*/app/*.log.*"),
            format!("{r}/*13"),
            format!("{r}/missing/*/*.log"),
            format!("{r}/*/*/a?b.log"),
        ];
        let mut shared = Scan::default();
        let everything = by_glob_crate(&format!("{r}/**/*"));
        for g in &globs {
            let want = by_glob_crate(g);
            assert_eq!(by_scan(&mut Scan::default(), g), want, "{g}");
            assert_eq!(by_scan(&mut shared, g), want, "{g}, listings shared");
            let (w, p) = (Walk::new(g).unwrap(), Pattern::new(g).unwrap());
            for path in &everything {
                assert_eq!(
                    w.matches(path),
                    p.matches_path_with(path, MATCH),
                    "{g} on {}",
                    path.display()
                );
            }
        }
        assert!(everything.len() > 200, "{}", everything.len());
        assert!(!by_glob_crate(&globs[0]).is_empty());
    }

    /// What the walk says of each path it found — reached through real
    /// directories only, or through a symlink — is what `lstat` says of
    /// every component below the base (the oracle).
    #[test]
    fn the_walk_names_the_paths_it_reached_through_a_symlink() {
        let dir = tree();
        let root = dir.path().join("pods");
        let r = root.display();
        let mut linked = 0;
        for g in [format!("{r}/*/*/*.log"), format!("{r}/*_13/app/*")] {
            let mut scan = Scan::default();
            let found = by_scan(&mut scan, &g);
            assert!(!found.is_empty(), "{g}");
            for path in &found {
                let rel = path.strip_prefix(&root).unwrap();
                let mut at = root.clone();
                let want = rel.components().any(|c| {
                    at.push(c);
                    std::fs::symlink_metadata(&at)
                        .unwrap()
                        .file_type()
                        .is_symlink()
                });
                assert_eq!(scan.through_link(path), want, "{}", path.display());
                linked += usize::from(want);
            }
        }
        // pods/link_13/app/*.log (a directory link) and app/l.log (a file
        // link), through both globs.
        assert!(linked >= 4, "{linked}");
    }

    /// A walk under new directories finds, under them, exactly what a full
    /// walk finds there — reading only their subtrees — and names what it
    /// found as reached through a link (the way to a root was not walked).
    #[test]
    fn a_walk_under_new_directories_finds_what_a_full_walk_finds_there() {
        let dir = tree();
        let root = dir.path().join("pods");
        let r = root.display();
        let pod = |i: usize| root.join(format!("ns_pod-{i}_{i:08x}-9b3d-4e8f-a6c1-7d2b9e4f0a13"));
        let globs = [
            format!("{r}/*/*/*.log"),
            format!("{r}/*_13/app/*"),
            format!("{r}/*0000002a-9b3d-4e8f-a6c1-7d2b9e4f0a13/app/*.log"),
            format!("{r}/ns_pod-?_*/*/*.log"),
        ];
        let roots: Vec<Vec<PathBuf>> = vec![
            vec![pod(42)],
            vec![pod(3).join("side"), pod(7)],
            vec![root.join("x_13"), root.join("x_13/app")],
            vec![root.join("link_13")],
            vec![pod(5).join("app/0.log")],
            vec![root.join("missing")],
            vec![root.clone()],
            vec![dir.path().to_path_buf()],
        ];
        let walks: Vec<Walk> = globs.iter().map(|g| Walk::new(g).unwrap()).collect();
        let walks: Vec<&Walk> = walks.iter().collect();
        let mut full_scan = Scan::default();
        let mut full = vec![Vec::new(); walks.len()];
        full_scan.expand_all(
            &walks,
            &mut full,
            &mut |p, e| panic!("{p:?}: {e}"),
            &mut |_| {},
        );
        let mut found_any = 0;
        for rs in &roots {
            let refs: Vec<&Path> = rs.iter().map(PathBuf::as_path).collect();
            let mut scan = Scan::default();
            let mut outs = vec![Vec::new(); walks.len()];
            let mut watched = Vec::new();
            scan.expand_under(
                &walks,
                &refs,
                &mut outs,
                &mut |p, e| panic!("{p:?}: {e}"),
                &mut |ds| watched.extend(ds.iter().map(|d| d.to_path_buf())),
            );
            let whole = rs.iter().any(|r| root.starts_with(r));
            for (k, out) in outs.iter().enumerate() {
                let mut want: Vec<PathBuf> = full[k]
                    .iter()
                    .filter(|p| whole || rs.iter().any(|r| p.starts_with(r) && *p != r))
                    .cloned()
                    .collect();
                want.sort();
                assert_eq!(out, &want, "{} under {rs:?}", globs[k]);
                found_any += out.len();
                for p in out {
                    assert_eq!(scan.through_link(p), !whole || full_scan.through_link(p));
                }
            }
            // Every directory read was watched first, and nothing else.
            let read: std::collections::HashSet<&Path> = scan.read_dirs().collect();
            assert_eq!(
                read,
                watched.iter().map(PathBuf::as_path).collect(),
                "{rs:?}"
            );
            if !whole {
                assert!(scan.reads <= 8, "{rs:?}: {} directories read", scan.reads);
            }
        }
        assert!(full_scan.reads > 100, "{}", full_scan.reads);
        assert!(found_any > 20, "{found_any}");
    }

    /// A scan that keeps siblings gives, for every path it found, what
    /// `chain::siblings` lists and the file's inode number — and nothing
    /// for a path it did not find.
    #[test]
    fn a_walk_keeping_siblings_gives_each_found_paths_siblings() {
        use std::os::unix::fs::MetadataExt;
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("pods");
        for (pod, extra) in [
            ("a", &[][..]),
            (
                "b",
                &[
                    "0.log.20261122-101500.gz",
                    "0.log.20261122-101600",
                    "0.log.20261122-101600.gz.tmp",
                    "0.log.1",
                    "1.log.20261122-101500",
                    "0.logx20261122-101500",
                ][..],
            ),
            (
                "c",
                &["0.log.20261122-101500", "1.log.20261122-101700.gz"][..],
            ),
        ] {
            let dir = root.join(pod).join("app");
            std::fs::create_dir_all(&dir).unwrap();
            for name in ["0.log", "1.log"].iter().chain(extra) {
                std::fs::write(dir.join(name), name).unwrap();
            }
        }
        let walk = Walk::new(&format!("{}/*/*/*.log", root.display())).unwrap();
        let mut outs = vec![Vec::new()];
        let mut scan = Scan::keep_siblings();
        scan.expand_all(
            &[&walk],
            &mut outs,
            &mut |p, e| panic!("{p:?}: {e}"),
            &mut |_| {},
        );
        assert_eq!(outs[0].len(), 6);
        let mut any = 0;
        for p in &outs[0] {
            let listed = scan.siblings_of(p).unwrap();
            assert_eq!(listed.ino, std::fs::metadata(p).unwrap().ino(), "{p:?}");
            let siblings = listed.stamps.siblings(p);
            assert_eq!(
                siblings,
                crate::source::chain::siblings(p).unwrap(),
                "{p:?}"
            );
            any += siblings.len();
        }
        assert_eq!(any, 5);
        assert!(scan.siblings_of(&root.join("a/app/2.log")).is_none());
        let mut plain = Scan::default();
        let mut outs = vec![Vec::new()];
        plain.expand_all(
            &[&walk],
            &mut outs,
            &mut |p, e| panic!("{p:?}: {e}"),
            &mut |_| {},
        );
        assert!(plain.siblings_of(&outs[0][0]).is_none());
    }

    #[test]
    fn globs_it_cannot_walk_are_left_to_the_glob_crate() {
        assert!(Walk::new("/var/log/**/*.log").is_none());
        assert!(Walk::new("var/log/*.log").is_none());
        assert!(Walk::new("/var/log/../x/*.log").is_none());
        assert!(Walk::new("/var/log/pods/*/*/*.log").is_some());
    }

    /// The point of it: Kubernetes targets (one per container) read the
    /// pods directory once per rescan, not once per target.
    #[test]
    fn each_directory_is_read_once_per_scan() {
        let dir = tree();
        let root = dir.path().join("pods");
        let mut scan = Scan::default();
        let mut found = 0;
        for i in 0..60 {
            let uid = format!("{i:08x}-9b3d-4e8f-a6c1-7d2b9e4f0a13");
            for c in ["app", "side"] {
                found += by_scan(&mut scan, &format!("{}/*{uid}/{c}/*.log", root.display())).len();
            }
        }
        assert_eq!(found, 60 + 20);
        // pods/, 60 pod directories, their 60 + 20 container directories.
        assert_eq!(scan.reads, 1 + 60 + 80);
    }

    #[test]
    fn an_unreadable_directory_is_reported_once_a_missing_one_never() {
        let dir = tree();
        let root = dir.path().join("pods");
        // A symlink to itself: reading it fails (ELOOP), even as root.
        let looped = root.join("x_13/loop");
        std::os::unix::fs::symlink(&looped, &looped).unwrap();
        let mut scan = Scan::default();
        let mut errs = Vec::new();
        for g in [
            "x_13/loop/*.log",
            "x_13/loop/*.txt",
            "nowhere/*/*.log",
            "x_13/0.log/*",
        ] {
            let w = Walk::new(&format!("{}/{g}", root.display())).unwrap();
            scan.expand(&w, &mut Vec::new(), &mut |p, _| errs.push(p.to_path_buf()));
        }
        assert_eq!(errs, vec![looped]);
    }

    /// A full rescan as the tailer makes one: every walk at once, reusing
    /// `kept`; what it found, read and reused, and what it keeps.
    fn full_rescan(kept: Kept, globs: &[String]) -> (Vec<PathBuf>, usize, usize, Kept) {
        let walks: Vec<Walk> = globs.iter().map(|g| Walk::new(g).unwrap()).collect();
        let walks: Vec<&Walk> = walks.iter().collect();
        let mut outs = vec![Vec::new(); walks.len()];
        let mut scan = Scan::reusing(kept, None);
        scan.expand_all(
            &walks,
            &mut outs,
            &mut |p, e| panic!("{p:?}: {e}"),
            &mut |_| {},
        );
        let (reads, reused) = (scan.reads, scan.reused());
        let mut found: Vec<PathBuf> = outs.concat();
        found.sort();
        (found, reads, reused, scan.into_kept())
    }

    fn oracle(globs: &[String]) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = globs.iter().flat_map(|g| by_glob_crate(g)).collect();
        v.sort();
        v
    }

    #[test]
    fn a_full_rescan_reads_again_only_what_changed_since_the_last() {
        let dir = tree();
        let root = dir.path().join("pods");
        let r = root.display();
        let globs = [
            format!("{r}/*/*/*.log"),
            format!("{r}/*0000002a-9b3d-4e8f-a6c1-7d2b9e4f0a13/side/*.log"),
        ];
        settle(&root);
        // The first reads every directory, through the symlinked one too.
        let (found, all, reused, kept) = full_rescan(Kept::default(), &globs);
        assert_eq!(found, oracle(&globs));
        assert_eq!(reused, 0);
        assert!(all > 60 + 80, "{all}");
        assert_eq!(kept.len(), all, "every directory read had settled");
        // Nothing changed: nothing read.
        let (found, reads, reused, kept) = full_rescan(kept, &globs);
        assert_eq!((found, reads, reused), (oracle(&globs), 0, all));
        // A file in one container, a pod gone, a pod new.
        let uid = |i: u32| format!("{i:08x}-9b3d-4e8f-a6c1-7d2b9e4f0a13");
        std::fs::write(root.join(format!("ns_pod-1_{}/app/2.log", uid(1))), b"x\n").unwrap();
        std::fs::remove_dir_all(root.join(format!("ns_pod-2_{}", uid(2)))).unwrap();
        std::fs::create_dir_all(root.join("ns_new_1/c")).unwrap();
        std::fs::write(root.join("ns_new_1/c/0.log"), b"x\n").unwrap();
        let (found, reads, _, kept) = full_rescan(kept, &globs);
        assert_eq!(found, oracle(&globs));
        assert!(found.contains(&root.join(format!("ns_pod-1_{}/app/2.log", uid(1)))));
        assert!(found.contains(&root.join("ns_new_1/c/0.log")));
        // pods/, pod 1's app/, and the new pod's two directories.
        assert_eq!(reads, 4);
        // Changed within the last seconds: not kept, read again until settled.
        let (found, reads, _, kept) = full_rescan(kept, &globs);
        assert_eq!((found, reads), (oracle(&globs), 4));
        settle(&root);
        // Settled by hand: every stamp changed (ctime), so all read again.
        let (_, reads, _, kept) = full_rescan(kept, &globs);
        assert_eq!(
            reads, all,
            "pod 2 and its app/ gone, the new pod and its c/ come"
        );
        let (found, reads, _, kept) = full_rescan(kept, &globs);
        assert_eq!((found, reads), (oracle(&globs), 0));
        // A change of mode alone (ctime, not mtime): read again.
        let app = root.join(format!("ns_pod-3_{}/app", uid(3)));
        std::fs::set_permissions(&app, std::os::unix::fs::PermissionsExt::from_mode(0o750))
            .unwrap();
        let (found, reads, _, _) = full_rescan(kept, &globs);
        assert_eq!((found, reads), (oracle(&globs), 1));
    }

    #[test]
    fn a_directory_changed_just_before_its_listing_is_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path().join("pods/p/c");
        std::fs::create_dir_all(&c).unwrap();
        std::fs::write(c.join("0.log"), b"x\n").unwrap();
        settle(&dir.path().join("pods"));
        let globs = [format!("{}/pods/*/*/*.log", dir.path().display())];
        let (_, _, _, kept) = full_rescan(Kept::default(), &globs);
        // Changed, listed and changed again, all within one clock tick as
        // like as not: the second change sets the same mtime as the first,
        // so only the age of the first keeps the listing from standing in.
        std::fs::write(c.join("1.log"), b"x\n").unwrap();
        let (found, _, _, kept) = full_rescan(kept, &globs);
        std::fs::write(c.join("2.log"), b"x\n").unwrap();
        assert_eq!(found.len(), 2);
        let (found, reads, reused, _) = full_rescan(kept, &globs);
        assert_eq!(found, oracle(&globs));
        assert_eq!(found.len(), 3);
        assert_eq!((reads, reused), (1, 2), "c/ read, pods/ and p/ kept");
    }
}
