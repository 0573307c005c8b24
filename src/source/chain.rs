//! Rotation chains: a container log file's rotated siblings, in rotation
//! order, as the kubelet names them.
//!
//! Owns: [`stamp_of`] (the rotation stamp in a sibling's name),
//! [`siblings`] (a directory listing of `<name>.<stamp>` and
//! `<name>.<stamp>.gz`, oldest first), [`Stamps`] (the same from names
//! already listed, kept compact) and [`Listed`] (a file's siblings as a
//! rescan's walk listed them, and when that listing may stand for the file
//! opened). The kubelet renames `0.log` to `0.log.<YYYYMMDD-hhmmss>` at
//! each rotation and later compresses it to `….gz`; the stamp is the
//! rotation time, so stamps sort in rotation order.
//!
//! What the tailer does with it (see `tailer_chain.rs`): per path it keeps a
//! *watermark*, the newest stamp whose file it has read or taken on (stored
//! in the positions file). A sibling newer than the watermark that no tailed
//! file accounts for was created and rotated away unseen — a hole in the
//! chain — and is read, oldest first, before the stream goes on.
//!
//! Only kubelet-style stamps (`\d{8}-\d{6}`) count: logrotate's numbered
//! names (`syslog.1`, `syslog.2.gz`) shift at every rotation and do not sort
//! in rotation order, so they are never taken for holes.
//!
//! Must never: list a `.tmp` file (a compression in progress), or order two
//! siblings other than by stamp (a plain file and its `.gz` twin with the
//! same stamp are the same data: the plain one comes first).

use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};

/// One rotated sibling of a log file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sibling {
    pub path: PathBuf,
    /// The kubelet's rotation stamp, `YYYYMMDD-hhmmss`.
    pub stamp: String,
    /// Compressed (`.gz`).
    pub gz: bool,
}

impl Sibling {
    /// The sibling of `path` rotated at `stamp`: `<path>.<stamp>`, and
    /// `.gz` after it if `gz`.
    pub fn of(path: &Path, stamp: &str, gz: bool) -> Sibling {
        let mut name = path.as_os_str().to_os_string();
        name.push(".");
        name.push(stamp);
        if gz {
            name.push(".gz");
        }
        Sibling {
            path: name.into(),
            stamp: stamp.to_string(),
            gz,
        }
    }
}

/// A log file's entry in a listing of its directory: its inode number as
/// the listing gave it (`d_ino`), and its rotated siblings' stamps in the
/// same listing, read after `walked_at`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub ino: u64,
    pub stamps: Stamps,
    pub walked_at: std::time::SystemTime,
}

/// How long before a walk began a file must have been born for its
/// listing to be trusted: a file's times come from a clock that can lag
/// the one read for `walked_at` by a tick.
const BORN_MARGIN: std::time::Duration = std::time::Duration::from_millis(50);

impl Listed {
    /// The sibling stamps of `listed`, if it listed the very file now open
    /// as `id`, born at `born`: the same inode number, and born before the
    /// walk began (the number cannot have been given to a new file since:
    /// rotated, compressed and unlinked, and the number reused). Else the
    /// path was rotated (or replaced) since the listing, which may lack a
    /// sibling, and `None` asks for a fresh one — as does a file system
    /// without birth times.
    pub fn of(
        listed: Option<Listed>,
        id: crate::positions::FileId,
        born: Option<std::time::SystemTime>,
    ) -> Option<Stamps> {
        listed
            .filter(|l| l.ino == id.ino && born.is_some_and(|b| b + BORN_MARGIN < l.walked_at))
            .map(|l| l.stamps)
    }
}

/// The rotation stamp of `name` if it is a kubelet-rotated sibling of
/// `base` (`0.log.20261122-101500` or `….gz`), and whether it is compressed.
pub fn stamp_of<'a>(name: &'a str, base: &str) -> Option<(&'a str, bool)> {
    let rest = name.strip_prefix(base)?.strip_prefix('.')?;
    let (stamp, gz) = match rest.strip_suffix(".gz") {
        Some(s) => (s, true),
        None => (rest, false),
    };
    let b = stamp.as_bytes();
    let ok = b.len() == 15
        && b[8] == b'-'
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[9..].iter().all(u8::is_ascii_digit);
    ok.then_some((stamp, gz))
}

/// The kubelet-rotated siblings of `path`, oldest first (a plain file before
/// its `.gz` twin). A missing directory is an empty list.
pub fn siblings(path: &Path) -> io::Result<Vec<Sibling>> {
    let Some(dir) = path.parent() else {
        return Ok(Vec::new());
    };
    let listed = match super::dirents::read(dir) {
        Ok(l) => l,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let Some(base) = path.file_name() else {
        return Ok(Vec::new());
    };
    let names = listed.into_iter().map(|(name, ..)| name);
    Ok(Stamps::of_names(base, names).siblings(path))
}

/// The rotation stamps of a file's siblings in a listing, oldest first (a
/// plain file before its `.gz` twin): 16 bytes each, what a rescan's walk
/// keeps for thousands of files at once (see [`Listed`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stamps(Box<[([u8; 15], bool)]>);

impl Stamps {
    /// The stamps of the names that are kubelet-rotated siblings of `base`.
    pub fn of_names<N: AsRef<OsStr>>(base: &OsStr, names: impl IntoIterator<Item = N>) -> Stamps {
        let base = base.to_string_lossy();
        let mut v: Vec<([u8; 15], bool)> = names
            .into_iter()
            .filter_map(|name| {
                let name = name.as_ref().to_string_lossy();
                let (stamp, gz) = stamp_of(&name, &base)?;
                Some((stamp.as_bytes().try_into().ok()?, gz))
            })
            .collect();
        v.sort_unstable();
        Stamps(v.into_boxed_slice())
    }

    /// The siblings of `path` these stamps name (each path rebuilt as
    /// `<path>.<stamp>[.gz]`).
    pub fn siblings(&self, path: &Path) -> Vec<Sibling> {
        self.0
            .iter()
            .map(|(stamp, gz)| Sibling::of(path, &String::from_utf8_lossy(stamp), *gz))
            .collect()
    }
}

/// The stamp of the sibling at `path` (a rotated name), if kubelet-style.
pub fn stamp_of_path(path: &Path, base: &Path) -> Option<String> {
    let name = path.file_name()?.to_string_lossy();
    let base = base.file_name()?.to_string_lossy();
    stamp_of(&name, &base).map(|(s, _)| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A temporary directory holding a file of each name, and the path of
    /// its `0.log` (whose siblings the tests list).
    fn dir_of(names: &[&str]) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        for name in names {
            std::fs::write(dir.path().join(name), "x\n").unwrap();
        }
        let p = dir.path().join("0.log");
        (dir, p)
    }

    /// Each sibling's path, built from its stamp, is the rotated file the
    /// directory holds (the catch-up opens it, and a `.gz` twin named by
    /// [`Sibling::of`] alone).
    #[test]
    fn sibling_paths_name_the_files_listed() {
        let (_dir, p) = dir_of(&[
            "0.log",
            "0.log.20261122-101500",
            "0.log.20261122-101500.gz",
            "0.log.20261122-111500.gz",
            "0.log.1",
            "1.log.20261122-101500",
        ]);
        let sibs = siblings(&p).unwrap();
        let got: Vec<(&str, bool)> = sibs.iter().map(|s| (s.stamp.as_str(), s.gz)).collect();
        assert_eq!(
            got,
            [
                ("20261122-101500", false),
                ("20261122-101500", true),
                ("20261122-111500", true)
            ]
        );
        for s in &sibs {
            assert!(s.path.is_file(), "{:?}", s.path);
            assert_eq!(
                stamp_of_path(&s.path, &p).as_deref(),
                Some(s.stamp.as_str())
            );
            assert_eq!(s.path.extension() == Some(OsStr::new("gz")), s.gz);
        }
        assert_eq!(Sibling::of(&p, &sibs[0].stamp, true), sibs[1]);
    }

    /// A listing stands for the file open only if it named that inode and
    /// the file was born before the walk (by more than a clock tick).
    #[test]
    fn a_listing_is_taken_only_for_the_file_it_named_born_before_it() {
        use std::time::{Duration, SystemTime};
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let stamps = Stamps::of_names(OsStr::new("0.log"), ["0.log.20261122-101500"]);
        assert_eq!(stamps.siblings(Path::new("/p/0.log")).len(), 1);
        let listed = Some(Listed {
            ino: 7,
            stamps: stamps.clone(),
            walked_at: at,
        });
        let id = |ino| crate::positions::FileId { dev: 1, ino };
        let before = Some(at - Duration::from_secs(5));
        assert_eq!(Listed::of(listed.clone(), id(7), before), Some(stamps));
        assert_eq!(
            Listed::of(listed.clone(), id(8), before),
            None,
            "another inode"
        );
        assert_eq!(
            Listed::of(listed.clone(), id(7), None),
            None,
            "no birth time"
        );
        let just = Some(at - Duration::from_millis(10));
        assert_eq!(
            Listed::of(listed.clone(), id(7), just),
            None,
            "born within a tick"
        );
        let after = Some(at + Duration::from_secs(1));
        assert_eq!(
            Listed::of(listed, id(7), after),
            None,
            "born after the walk"
        );
        assert_eq!(Listed::of(None, id(7), before), None);
    }

    #[test]
    fn stamps_are_recognised_only_in_kubelet_form() {
        assert_eq!(
            stamp_of("0.log.20261122-101500", "0.log"),
            Some(("20261122-101500", false))
        );
        assert_eq!(
            stamp_of("0.log.20261122-101500.gz", "0.log"),
            Some(("20261122-101500", true))
        );
        for no in [
            "0.log",
            "0.log.1",
            "0.log.2.gz",
            "0.log.20261122-101500.tmp",
            "0.log.20261122-101500.gz.tmp",
            "1.log.20261122-101500",
            "0.log.2026112-1015000",
            "0.logx20261122-101500",
        ] {
            assert_eq!(stamp_of(no, "0.log"), None, "{no}");
        }
    }

    #[test]
    fn siblings_are_listed_in_rotation_order_plain_before_gz() {
        let (dir, p) = dir_of(&[
            "0.log",
            "0.log.20261122-101510.gz",
            "0.log.20261122-101500.gz",
            "0.log.20261122-101520",
            "0.log.20261122-101510",
            "0.log.20261122-101530.tmp",
            "1.log.20261122-101505",
            "0.log.3",
        ]);
        let got: Vec<(String, bool)> = siblings(&p)
            .unwrap()
            .into_iter()
            .map(|s| (s.stamp, s.gz))
            .collect();
        assert_eq!(
            got,
            vec![
                ("20261122-101500".into(), true),
                ("20261122-101510".into(), false),
                ("20261122-101510".into(), true),
                ("20261122-101520".into(), false),
            ]
        );
        assert!(siblings(&dir.path().join("gone/0.log")).unwrap().is_empty());
    }
}
