//! A directory's listing as the glob walk reads it, and the listings kept
//! from one full rescan to the next.
//!
//! Owns: [`Listing`] — one directory's entries (name, type, inode number)
//! sorted by name, in one allocation — with the lookups
//! [`super::expand::Scan`] answers glob components from; and [`Kept`],
//! listings of directories that had not changed for a while, kept until
//! the next full rescan, and [`Keeping`], a rescan's use of them.
//!
//! Why keep listings: on an idle node the periodic rescan (the fallback for
//! what inotify misses) was most of the agent's CPU — at 5,000 pods it reads
//! 10,000 directories every 10 s, each an open, two `getdents64` and a
//! close, to find what it found last time. A `stat` of the directory says
//! whether that is so: a directory's mtime changes whenever an entry is
//! added, removed or renamed, and its ctime with any change at all (mode,
//! owner, and every mtime change, set back by hand included).
//!
//! The rule: a listing is kept with a stamp of its directory's `stat`
//! (device, inode number, mtime, ctime) taken *before* it was read, and only
//! if that mtime was already [`SETTLED`] old when the rescan began. It
//! stands in for a read at the next full rescan if the directory's stamp is
//! the same then. Why the age: a change sets the mtime from the kernel's
//! coarse clock, which lags real time by at most a tick, so every change
//! after the stamp was taken sets an mtime later than a settled one — the
//! stamp cannot match again. A directory changed within the last
//! [`SETTLED`] is read at every rescan until it settles. Only full rescans
//! keep listings; start-up and the walks of new directories read them.
//!
//! *Trusting inotify.* Even the `stat`s were, on an idle node, nearly half
//! of what the agent did: 10,000 directories every 10 s at 5,000 pods, to
//! learn that nothing changed. Every directory the walk reads is watched
//! (before it is read), and a change of its entries — made, removed,
//! renamed — is reported by the kernel to the watch of the directory
//! itself, whatever path it was made through. So when inotify is trusted
//! for a rescan (watching, no watch failed, no event lost since the last
//! rescan, and not the periodic full look: the tailer decides), a kept
//! listing stands in without a `stat` if no event named the directory or
//! an entry in it since, *and* its entry in its parent's listing (read or
//! standing in, this rescan) still has the inode number the listing was
//! made of — so the path still leads to that directory, whatever happened
//! above it. A walk's base has no parent listing: it is always `stat`ed.
//! What this cannot see — a change on a file system inotify is blind to,
//! a mount over a directory — waits for the next full look.
//!
//! Memory: a listing is one allocation (entries, then names); kept ones
//! are a sorted `Vec` of (path hash, stamp, listing), 40 bytes each
//! beside the listing: ~1.1 MiB at 5,000 pods. Suffix indexes are not kept.
//!
//! Must never: let a kept listing stand in once its directory's stamp
//! changed, keep one whose directory changed within [`SETTLED`] of the
//! rescan, trust an entry's name bounds beyond the listing it is in, or
//! keep listings of directories the last full rescan did not reach.

use super::dirents;
use super::expand::{tail, Comp, INDEX_FROM};
use crate::fasthash::{KeySet, Quality as RandomState};
use crate::source::chain::Stamps;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::hash::BuildHasher as _;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long before a rescan a directory must have been last modified for
/// its listing to be kept: well over a clock tick, and over the 1 s
/// granularity of file systems with whole-second times.
pub const SETTLED: Duration = Duration::from_secs(2);

/// What a directory entry is, as its directory says.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Kind {
    Dir,
    Other,
    /// A symlink or an unknown type: `stat` to know.
    Ask,
}

/// One entry: where its name lies among the listing's names, its type and
/// its inode number. Stored as [`ENTRY`] bytes.
#[derive(Clone, Copy, Debug)]
pub(super) struct Entry {
    pub ino: u64,
    start: u32,
    len: u16,
    pub kind: Kind,
}

/// Bytes per entry in a listing: inode number (8), name start (4), name
/// length (2), kind (1), padding (1).
const ENTRY: usize = 16;
/// Bytes before the entries: their number (4).
const HEAD: usize = 4;

thread_local! {
    /// Where a listing's names and entries are gathered before they are
    /// copied into its one allocation: reused from one directory to the
    /// next (10,000 of them per rescan at 5,000 pods).
    static SCRATCH: std::cell::RefCell<(Vec<u8>, Vec<Entry>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// Suffix length → suffix → entries (sorted).
type SuffixIndex = HashMap<usize, HashMap<Vec<u8>, Vec<u32>>>;

/// A directory read once: entries sorted by name, and suffix indexes built
/// on demand.
#[derive(Default)]
pub(super) struct Listing {
    /// The number of entries, the entries, then their names back to back:
    /// one allocation per directory (a rescan at 5,000 pods reads 10,000
    /// directories of one entry each).
    data: Box<[u8]>,
    /// Boxed, as few directories are big enough to need one.
    suffixes: Option<Box<SuffixIndex>>,
}

impl Listing {
    /// Reads `dir`.
    pub fn read(dir: &Path) -> io::Result<Listing> {
        SCRATCH.with(|scratch| {
            let mut scratch = scratch
                .try_borrow_mut()
                .map_err(|_| io::Error::other("reentrant"))?;
            let (names, entries) = &mut *scratch;
            names.clear();
            entries.clear();
            let r = Listing::read_into(dir, names, entries);
            // A huge directory's buffers are not kept for the next one.
            if names.capacity() > 64 << 10 {
                *names = Vec::new();
            }
            if entries.capacity() > 4 << 10 {
                *entries = Vec::new();
            }
            r
        })
    }

    /// [`Self::read`] with `names` and `entries` (empty) to gather into.
    fn read_into(dir: &Path, names: &mut Vec<u8>, entries: &mut Vec<Entry>) -> io::Result<Listing> {
        let mut too_big = false;
        dirents::read_each(dir, |name, t, ino| {
            let (Ok(start), Ok(len)) = (u32::try_from(names.len()), u16::try_from(name.len()))
            else {
                too_big = true;
                return;
            };
            let kind = match t {
                dirents::Type::Dir => Kind::Dir,
                dirents::Type::Other => Kind::Other,
                dirents::Type::Symlink | dirents::Type::Unknown => Kind::Ask,
            };
            names.extend_from_slice(name);
            entries.push(Entry {
                ino,
                start,
                len,
                kind,
            });
        })?;
        let n = u32::try_from(entries.len());
        let size = HEAD + entries.len() * ENTRY + names.len();
        if too_big || n.is_err() || u32::try_from(size).is_err() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "directory too large to list (over 4 GiB of names)",
            ));
        }
        let name_of = |e: &Entry| &names[e.start as usize..][..e.len as usize];
        entries.sort_unstable_by(|a, b| name_of(a).cmp(name_of(b)));
        let mut data = Vec::with_capacity(size);
        data.extend_from_slice(&n.unwrap_or(0).to_ne_bytes());
        let base = HEAD + entries.len() * ENTRY;
        for e in entries.iter() {
            data.extend_from_slice(&e.ino.to_ne_bytes());
            data.extend_from_slice(&(base as u32 + e.start).to_ne_bytes());
            data.extend_from_slice(&e.len.to_ne_bytes());
            data.push(match e.kind {
                Kind::Dir => 0,
                Kind::Other => 1,
                Kind::Ask => 2,
            });
            data.push(0);
        }
        data.extend_from_slice(names);
        Ok(Listing {
            data: data.into_boxed_slice(),
            suffixes: None,
        })
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.data
            .get(..HEAD)
            .and_then(|b| b.try_into().ok())
            .map_or(0, |b| u32::from_ne_bytes(b) as usize)
    }

    /// Entry `i` (`i < len()`).
    pub fn entry(&self, i: usize) -> Entry {
        let at = HEAD + i * ENTRY;
        let b = &self.data[at..at + ENTRY];
        let mut ino = [0; 8];
        ino.copy_from_slice(&b[..8]);
        let mut start = [0; 4];
        start.copy_from_slice(&b[8..12]);
        Entry {
            ino: u64::from_ne_bytes(ino),
            start: u32::from_ne_bytes(start),
            len: u16::from_ne_bytes([b[12], b[13]]),
            kind: match b[14] {
                0 => Kind::Dir,
                1 => Kind::Other,
                _ => Kind::Ask,
            },
        }
    }

    /// Entry `i`'s name (`i < len()`).
    pub fn name(&self, i: usize) -> &[u8] {
        let e = self.entry(i);
        self.data
            .get(e.start as usize..e.start as usize + e.len as usize)
            .unwrap_or_default()
    }

    /// The index of the first entry whose name is not below `x`.
    fn first_from(&self, x: &[u8]) -> usize {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.name(mid) < x {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// The rotation stamps of entry `name`'s siblings: the entries named
    /// `<name>.<stamp>[.gz]`, found by their common prefix in the sorted
    /// names.
    pub fn stamps_of(&self, name: &[u8]) -> Stamps {
        let mut prefix = name.to_vec();
        prefix.push(b'.');
        let named = (self.first_from(&prefix)..self.len())
            .map(|i| self.name(i))
            .take_while(|n| n.starts_with(&prefix))
            .map(OsStr::from_bytes);
        Stamps::of_names(OsStr::from_bytes(name), named)
    }

    /// Indices of the entries `c` matches, in name order.
    pub fn matching(&mut self, c: &Comp, out: &mut Vec<u32>) {
        out.clear();
        let n = self.len();
        let all = 0..n as u32;
        let matches = |l: &Listing, i: u32| c.matches(OsStr::from_bytes(l.name(i as usize)));
        match c {
            Comp::Exact(x) => {
                let i = self.first_from(x);
                if i < n && self.name(i) == x.as_slice() {
                    out.push(i as u32);
                }
            }
            Comp::Suffix(x) if x.is_empty() => out.extend(all),
            Comp::Suffix(_) if n <= INDEX_FROM => out.extend(all.filter(|&i| matches(self, i))),
            Comp::Suffix(x) => {
                if self.suffixes.is_none() {
                    self.suffixes = Some(Box::default());
                }
                let built = self
                    .suffixes
                    .as_ref()
                    .is_some_and(|s| s.contains_key(&x.len()));
                if !built {
                    let mut m: HashMap<Vec<u8>, Vec<u32>> = HashMap::new();
                    for i in 0..n {
                        if let Some(t) = tail(self.name(i), x.len()) {
                            m.entry(t.to_vec()).or_default().push(i as u32);
                        }
                    }
                    if let Some(s) = self.suffixes.as_mut() {
                        s.insert(x.len(), m);
                    }
                }
                let hit = self
                    .suffixes
                    .as_ref()
                    .and_then(|s| s.get(&x.len()))
                    .and_then(|index| index.get(x.as_slice()));
                if let Some(v) = hit {
                    out.extend_from_slice(v);
                }
            }
            Comp::Prefix(x) => {
                let from = self.first_from(x);
                out.extend(
                    (from..n)
                        .take_while(|&i| self.name(i).starts_with(x))
                        .map(|i| i as u32),
                );
            }
            Comp::Glob(_) => out.extend(all.filter(|&i| matches(self, i))),
        }
    }
}

/// What a listing is kept under: a hash of its directory's stamp
/// (device, inode number, mtime, ctime) and the inode number alone (to
/// compare with the directory's entry in its parent's listing, see
/// [`Keeping::list`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Stamp {
    hash: u64,
    ino: u64,
}

/// A kept listing: its directory's path hash and stamp, and the listing's
/// data (taken when it stands in for a read).
struct KeptDir {
    path: u64,
    stamp: Stamp,
    data: Option<Box<[u8]>>,
}

/// Listings kept from the last full rescan for the next (module docs),
/// sorted by path hash. The hasher of the path hashes goes with them.
#[derive(Default)]
pub struct Kept {
    hasher: RandomState,
    dirs: Vec<KeptDir>,
}

impl Kept {
    /// The number of listings kept.
    pub fn len(&self) -> usize {
        self.dirs.len()
    }

    /// True if nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.dirs.is_empty()
    }

    /// The hasher the kept listings' paths were hashed with.
    pub(super) fn hasher(&self) -> &RandomState {
        &self.hasher
    }

    /// A rescan's use of these listings, the rescan having begun at `began`.
    /// `trust`: the path hashes of the directories inotify reported a change
    /// in or of since these listings were made (`None`: inotify cannot be
    /// trusted this time, every directory is looked at).
    pub(super) fn keeping(self, began: SystemTime, trust: Option<KeySet>) -> Keeping {
        let settled = began
            .checked_sub(SETTLED)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .unwrap_or_default();
        Keeping {
            last: self.dirs,
            next: Vec::new(),
            settled_before: (settled.as_secs() as i64, i64::from(settled.subsec_nanos())),
            changed: trust,
            reused: 0,
            trusted: 0,
        }
    }
}

/// A full rescan's use of [`Kept`]: the last rescan's listings (taken as
/// they stand in), and the ones this rescan keeps.
pub(super) struct Keeping {
    last: Vec<KeptDir>,
    next: Vec<KeptDir>,
    /// (seconds, nanoseconds) since the epoch: a directory whose mtime is
    /// before this when the rescan begins has settled.
    settled_before: (i64, i64),
    /// If inotify is trusted in this rescan: the path hashes of the
    /// directories it reported changed (see [`Self::list`]).
    changed: Option<KeySet>,
    /// Listings that stood in for a read.
    pub reused: usize,
    /// Of those, listings that stood in without a `stat` (inotify trusted).
    pub trusted: usize,
}

impl Keeping {
    /// `dir`'s listing (`k` its path's hash): the kept one if `dir`'s stamp
    /// is what it was kept with, else read; with the stamp to keep it
    /// under, if `dir` has settled.
    ///
    /// `entry_ino`: the inode number of `dir`'s entry in its parent's
    /// listing this rescan (`None` for a walk's base, or a directory
    /// reached through a symlink). When inotify is trusted and reported no
    /// change in or of `dir` since its listing was kept, and that entry
    /// still names the directory the listing was made of, the listing
    /// stands in without a `stat` (module docs, *Trusting inotify*).
    pub fn list(
        &mut self,
        dir: &Path,
        k: u64,
        entry_ino: Option<u64>,
        hasher: &RandomState,
    ) -> io::Result<(Listing, Option<Stamp>)> {
        let last = self.last.binary_search_by_key(&k, |d| d.path).ok();
        if let (Some(changed), Some(ino), Some(i)) = (&self.changed, entry_ino, last) {
            let d = &mut self.last[i];
            if d.stamp.ino == ino && !changed.contains(&k) {
                if let Some(data) = d.data.take() {
                    self.reused += 1;
                    self.trusted += 1;
                    let l = Listing {
                        data,
                        suffixes: None,
                    };
                    return Ok((l, Some(d.stamp)));
                }
            }
        }
        let Ok(m) = std::fs::metadata(dir) else {
            // Gone, or not for us to see: the read says which.
            return Listing::read(dir).map(|l| (l, None));
        };
        let stamp = Stamp {
            hash: hasher.hash_one((
                m.dev(),
                m.ino(),
                m.mtime(),
                m.mtime_nsec(),
                m.ctime(),
                m.ctime_nsec(),
            )),
            ino: m.ino(),
        };
        if let Some(i) = last {
            if let (s, Some(data)) = (self.last[i].stamp, self.last[i].data.take()) {
                if s == stamp {
                    self.reused += 1;
                    let l = Listing {
                        data,
                        suffixes: None,
                    };
                    return Ok((l, Some(stamp)));
                }
            }
        }
        let settled = m.is_dir() && (m.mtime(), m.mtime_nsec()) < self.settled_before;
        Listing::read(dir).map(|l| (l, settled.then_some(stamp)))
    }

    /// Keeps `listing` of the directory of path hash `k` for the next full
    /// rescan, under `stamp`.
    pub fn keep(&mut self, k: u64, stamp: Stamp, listing: Listing) {
        self.next.push(KeptDir {
            path: k,
            stamp,
            data: Some(listing.data),
        });
    }

    /// What the next full rescan gets: the listings kept by this one.
    pub fn done(mut self, hasher: RandomState) -> Kept {
        self.next.sort_unstable_by_key(|d| d.path);
        // A directory reached twice (at two depths) was kept twice.
        self.next.dedup_by_key(|d| d.path);
        self.next.shrink_to_fit();
        Kept {
            hasher,
            dirs: self.next,
        }
    }
}
