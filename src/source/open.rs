//! Opening a log file for reading without touching its access time.
//!
//! Owns: [`for_reading`], the one way the tailer opens a file it reads
//! (current, parked and reopened, rotated, `.gz`, a relocation candidate).
//!
//! Why: with the usual `relatime` mount option, a read updates the file's
//! access time whenever that time is older than the last write. A log
//! file is written between two reads of the agent, so nearly every read
//! the agent makes dirtied the inode: a journalled metadata update per read,
//! written back to the node's disk. At 10,000 lines/s over 5,000 files that
//! was ~10,000 inode updates a second (`ext4:ext4_mark_inode_dirty`) and
//! ~10 % of the agent's CPU. `O_NOATIME` reads leave the access time alone.
//!
//! The kernel grants `O_NOATIME` to the file's owner or a holder of
//! `CAP_FOWNER`: the DaemonSet's root user owns `/var/log/pods`'s files.
//! Otherwise the open fails with `EPERM`; the file is then opened plainly,
//! and — so that a node of files owned by others does not pay two opens per
//! file — no later open tries `O_NOATIME` again in this process (logged once,
//! at info level).
//!
//! Must never: fail an open that a plain `File::open` would have made, or
//! open for anything but reading.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once the kernel refused `O_NOATIME` (see the module docs).
static REFUSED: AtomicBool = AtomicBool::new(false);

/// Opens `path` read-only, without updating its access time where the
/// kernel allows it (see the module docs).
pub fn for_reading(path: &Path) -> io::Result<File> {
    open_with(path, &REFUSED, |p| {
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOATIME)
            .open(p)
    })
}

/// [`for_reading`] with the `O_NOATIME` open and the process's "refused"
/// flag given, so that the fallback can be tested without a second user.
fn open_with(
    path: &Path,
    refused: &AtomicBool,
    noatime: impl FnOnce(&Path) -> io::Result<File>,
) -> io::Result<File> {
    if !refused.load(Ordering::Relaxed) {
        match noatime(path) {
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                if !refused.swap(true, Ordering::Relaxed) {
                    tracing::info!(file = %path.display(),
                        "reading without O_NOATIME: the agent neither owns this file nor has CAP_FOWNER, so its reads update access times (no later open tries it)");
                }
            }
            other => return other,
        }
    }
    File::open(path)
}

/// Access-time probes for the tests here and the tailer's.
#[cfg(test)]
pub(super) mod probe {
    use std::fs::File;
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    use std::path::Path;

    /// Sets `path`'s access time to one hour before its modification time:
    /// under `relatime`, the next plain read must update it.
    pub(crate) fn age_atime(path: &Path) {
        let m = std::fs::metadata(path).unwrap();
        let aged = m.modified().unwrap() - std::time::Duration::from_secs(3600);
        File::open(path)
            .unwrap()
            .set_times(std::fs::FileTimes::new().set_accessed(aged))
            .unwrap();
    }

    pub(crate) fn atime(path: &Path) -> (i64, i64) {
        let m = std::fs::metadata(path).unwrap();
        (m.atime(), m.atime_nsec())
    }

    pub(crate) fn read_all(mut f: File) -> String {
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        s
    }

    /// Whether a plain read updates access times where the tests run (not
    /// on a `noatime` mount): else the tests below could not fail.
    pub(crate) fn reads_update_atime(dir: &Path) -> bool {
        let p = dir.join("probe");
        std::fs::write(&p, "x\n").unwrap();
        age_atime(&p);
        let before = atime(&p);
        read_all(File::open(&p).unwrap());
        atime(&p) != before
    }
}

#[cfg(test)]
mod tests {
    use super::probe::{age_atime, atime, read_all, reads_update_atime};
    use super::*;

    #[test]
    fn a_read_leaves_the_access_time_alone() {
        let dir = tempfile::tempdir().unwrap();
        if !reads_update_atime(dir.path()) {
            eprintln!("skipped: reads do not update access times on this file system");
            return;
        }
        let p = dir.path().join("0.log");
        std::fs::write(&p, "a line\n").unwrap();
        age_atime(&p);
        let before = atime(&p);
        assert_eq!(read_all(for_reading(&p).unwrap()), "a line\n");
        assert_eq!(atime(&p), before, "the read updated the access time");
    }

    #[test]
    fn a_refused_noatime_opens_plainly_and_is_not_tried_again() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.log");
        std::fs::write(&p, "a line\n").unwrap();
        let refused = AtomicBool::new(false);
        let eperm = |_: &Path| Err(io::Error::from_raw_os_error(libc::EPERM));
        assert_eq!(
            read_all(open_with(&p, &refused, eperm).unwrap()),
            "a line\n"
        );
        assert!(refused.load(Ordering::Relaxed));
        let tried = std::cell::Cell::new(false);
        let f = open_with(&p, &refused, |q: &Path| {
            tried.set(true);
            File::open(q)
        })
        .unwrap();
        assert_eq!(read_all(f), "a line\n");
        assert!(!tried.get(), "O_NOATIME tried again after a refusal");
    }

    #[test]
    fn other_errors_are_the_opens_own() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.log");
        let e = for_reading(&missing).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        let refused = AtomicBool::new(false);
        let eacces = |_: &Path| Err(io::Error::from_raw_os_error(libc::EACCES));
        let e = open_with(&missing, &refused, eacces).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EACCES));
        assert!(!refused.load(Ordering::Relaxed));
    }
}
