//! File identity: how a tailed file is recognised across renames, restarts
//! and inode reuse.
//!
//! Owns: [`file_id`] (device + inode from the file's metadata, what the kernel
//! says the file *is*) and the content [`Fingerprint`] (CRC32 of the first
//! `min(size, FP_MAX)` bytes), which tells a reused inode or a rewritten file
//! from the file it used to be. A fingerprint taken while the file was short
//! is re-checked over the same length later and then widened (see
//! [`widen`]). A file's birth time ([`born`], `statx`) tells a reused inode
//! number from the file it was where the content cannot: a file with
//! nothing fingerprinted yet (empty when it was last looked at).
//!
//! Design: reads use positioned reads (`pread`), so checking a fingerprint
//! never moves a file's cursor and works on a descriptor shared with the
//! reader. The same routine checks a decompressed `.gz` stream.
//!
//! Must never: call two files the same because their names are equal, or
//! report a match when the file is shorter than the fingerprinted length.

use crate::positions::{FileId, Fingerprint};
use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, MetadataExt};

/// Bytes a complete fingerprint covers.
pub const FP_MAX: usize = 1024;

/// The (device, inode) pair of a file.
pub fn file_id(meta: &Metadata) -> FileId {
    FileId {
        dev: meta.dev(),
        ino: meta.ino(),
    }
}

/// When the file was created, where the file system records it (ext4,
/// xfs, btrfs, tmpfs through `statx`; `None` elsewhere).
pub fn born(meta: &Metadata) -> Option<std::time::SystemTime> {
    meta.created().ok()
}

/// Whether `meta` is certainly another file than one born at `known`: both
/// birth times known, and different (an inode number given out again).
pub fn other_birth(known: Option<std::time::SystemTime>, meta: &Metadata) -> bool {
    known.is_some_and(|k| born(meta).is_some_and(|b| b != k))
}

/// Whether `meta` is the file `id` born at `born`: its (device, inode), and
/// not of another birth (see [`other_birth`]).
pub fn is_file(meta: &Metadata, id: FileId, born: Option<std::time::SystemTime>) -> bool {
    file_id(meta) == id && !other_birth(born, meta)
}

/// CRC32 of `bytes` as a fingerprint.
pub fn of_bytes(bytes: &[u8]) -> Fingerprint {
    Fingerprint {
        len: bytes.len() as u32,
        crc: crc32fast::hash(bytes),
    }
}

/// Reads up to `len` bytes at offset 0 without moving the cursor; returns
/// fewer only at end of file.
fn read_prefix(file: &File, len: usize) -> io::Result<Vec<u8>> {
    read_prefix_sized(file, len, u64::MAX)
}

/// [`read_prefix`] of a file whose size a `fstat` just gave as `size`:
/// once it has that many bytes, a short read is taken as the end without
/// a further read that returns nothing to say so (one `pread` fewer for
/// each file shorter than `FP_MAX` taken on). A file that grew meanwhile
/// gives at least `size` bytes: a shorter fingerprint than it could have,
/// widened as it is read (see [`widen`]), as for a file that grows just
/// after its head was read.
fn read_prefix_sized(file: &File, len: usize, size: u64) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let mut got = 0;
    while got < len && (got as u64) < size {
        match file.read_at(&mut buf[got..], got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(got);
    Ok(buf)
}

/// The fingerprint of an open file: its first `min(size, FP_MAX)` bytes.
pub fn of_file(file: &File) -> io::Result<Fingerprint> {
    Ok(of_bytes(&read_prefix(file, FP_MAX)?))
}

/// An open file's first `min(size, FP_MAX)` bytes, read once for its
/// fingerprint and for comparing it with a saved one (a restart at 5,000
/// files read each file's head twice).
pub struct Head(Vec<u8>);

impl Head {
    /// The head of a file a `fstat` just said is `size` bytes long (see
    /// [`read_prefix_sized`]; `u64::MAX` when the size is not known).
    pub fn read(file: &File, size: u64) -> io::Result<Head> {
        Ok(Head(read_prefix_sized(file, FP_MAX, size)?))
    }

    /// [`of_file`] of the file when it was read.
    pub fn fingerprint(&self) -> Fingerprint {
        of_bytes(&self.0)
    }

    /// [`matches_file`], from these bytes when they cover `fp` (or show
    /// the file shorter than it); else (a fingerprint longer than
    /// `FP_MAX`, from a hand-edited file) from the file.
    pub fn matches(&self, file: &File, fp: Fingerprint) -> io::Result<bool> {
        let n = fp.len as usize;
        if n <= self.0.len() {
            Ok(of_bytes(&self.0[..n]) == fp)
        } else if self.0.len() < FP_MAX {
            Ok(false)
        } else {
            matches_file(file, fp)
        }
    }
}

/// True if the file's first `fp.len` bytes still hash to `fp.crc`.
pub fn matches_file(file: &File, fp: Fingerprint) -> io::Result<bool> {
    let bytes = read_prefix(file, fp.len as usize)?;
    Ok(bytes.len() == fp.len as usize && of_bytes(&bytes) == fp)
}

/// True if the first `fp.len` bytes of a stream hash to `fp.crc`
/// (used for decompressed `.gz` files).
pub fn matches_reader(r: &mut dyn Read, fp: Fingerprint) -> io::Result<bool> {
    let mut bytes = Vec::with_capacity(fp.len as usize);
    r.take(fp.len as u64).read_to_end(&mut bytes)?;
    Ok(bytes.len() == fp.len as usize && of_bytes(&bytes) == fp)
}

/// What happened to a short fingerprint when the file was looked at again.
#[derive(Debug, PartialEq, Eq)]
pub enum Widen {
    /// Still complete or the file did not grow: nothing to do.
    Same,
    /// The file grew: a longer fingerprint over the same prefix.
    Wider(Fingerprint),
    /// The first `len` bytes changed: the file was rewritten.
    Changed(Fingerprint),
}

/// Re-checks a short fingerprint (`fp.len < FP_MAX`) and widens it if the
/// file has grown.
pub fn widen(file: &File, fp: Fingerprint) -> io::Result<Widen> {
    widen_sized(file, fp, u64::MAX)
}

/// [`widen`] of a file known to hold at least `size` bytes (a `fstat`'s
/// size, or the offset it was just read to): the head read stops there
/// (see [`read_prefix_sized`]), so a small file costs one `pread`, not a
/// second that returns nothing. A file shorter than `size` (truncated)
/// is read to its end, as by [`widen`].
pub fn widen_sized(file: &File, fp: Fingerprint, size: u64) -> io::Result<Widen> {
    if fp.len as usize >= FP_MAX {
        return Ok(Widen::Same);
    }
    let bytes = read_prefix_sized(file, FP_MAX, size)?;
    let n = fp.len as usize;
    if bytes.len() < n || of_bytes(&bytes[..n]) != fp {
        return Ok(Widen::Changed(of_bytes(&bytes)));
    }
    if bytes.len() == n {
        return Ok(Widen::Same);
    }
    Ok(Widen::Wider(of_bytes(&bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn fingerprint_covers_at_most_fp_max() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a");
        let data = vec![b'x'; 3000];
        std::fs::write(&p, &data).unwrap();
        let f = File::open(&p).unwrap();
        let fp = of_file(&f).unwrap();
        assert_eq!(fp.len as usize, FP_MAX);
        assert_eq!(fp, of_bytes(&data[..FP_MAX]));
        assert!(matches_file(&f, fp).unwrap());
    }

    /// A head read once answers as a second read of the file would: for
    /// files shorter than, as long as and longer than `FP_MAX`, against
    /// saved fingerprints of every kind — of the same bytes, shorter,
    /// longer than the file, of other bytes, longer than `FP_MAX`.
    #[test]
    fn a_head_read_once_matches_as_the_file_does() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a");
        for size in [0, 1, 100, FP_MAX - 1, FP_MAX, FP_MAX + 1, 3000] {
            let data: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
            std::fs::write(&p, &data).unwrap();
            let f = File::open(&p).unwrap();
            let head = Head::read(&f, u64::MAX).unwrap();
            assert_eq!(head.fingerprint(), of_file(&f).unwrap());
            let mut saved = Vec::new();
            for n in [0, 1, 50, FP_MAX - 1, FP_MAX, FP_MAX + 1, 2000, 4000] {
                let mut same = data.clone();
                same.resize(n, 0);
                saved.push(of_bytes(&same));
                saved.push(of_bytes(&vec![0xAB; n]));
                saved.push(Fingerprint {
                    len: n as u32,
                    crc: 7,
                });
            }
            for fp in saved {
                assert_eq!(
                    head.matches(&f, fp).unwrap(),
                    matches_file(&f, fp).unwrap(),
                    "size {size}, {fp:?}"
                );
            }
        }
    }

    /// A head read with the size a `fstat` gave is the head read without
    /// it; with a stale size (the file grew since) it covers at least that
    /// size, and is the prefix of the file's.
    #[test]
    fn a_head_read_to_a_known_size_is_the_files_head() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a");
        for size in [0u64, 1, 100, FP_MAX as u64 - 1, FP_MAX as u64, 3000] {
            let data: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
            std::fs::write(&p, &data).unwrap();
            let f = File::open(&p).unwrap();
            let full = Head::read(&f, u64::MAX).unwrap();
            assert_eq!(Head::read(&f, size).unwrap().0, full.0, "size {size}");
            for stale in [0, size / 2, size.saturating_sub(1)] {
                let h = Head::read(&f, stale).unwrap();
                assert!(
                    h.0.len() as u64 >= stale.min(FP_MAX as u64),
                    "{size}/{stale}"
                );
                assert!(full.0.starts_with(&h.0), "{size}/{stale}");
            }
        }
    }

    #[test]
    fn mismatch_on_changed_or_shorter_content() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a");
        std::fs::write(&p, b"hello world\n").unwrap();
        let fp = of_file(&File::open(&p).unwrap()).unwrap();
        std::fs::write(&p, b"HELLO world\n").unwrap();
        assert!(!matches_file(&File::open(&p).unwrap(), fp).unwrap());
        std::fs::write(&p, b"hello").unwrap();
        assert!(!matches_file(&File::open(&p).unwrap(), fp).unwrap());
        std::fs::write(&p, b"hello world\nmore").unwrap();
        assert!(matches_file(&File::open(&p).unwrap(), fp).unwrap());
    }

    #[test]
    fn identity_survives_rename_but_not_recreate() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.log");
        std::fs::write(&p, b"a\n").unwrap();
        let id = file_id(&std::fs::metadata(&p).unwrap());
        let q = dir.path().join("0.log.20261122-101500");
        std::fs::rename(&p, &q).unwrap();
        assert_eq!(file_id(&std::fs::metadata(&q).unwrap()), id);
        std::fs::write(&p, b"a\n").unwrap();
        assert_ne!(file_id(&std::fs::metadata(&p).unwrap()), id);
    }

    /// With the size a read reached, widening answers as without it: a
    /// file grown, the same, rewritten, or truncated shorter than that size.
    #[test]
    fn widening_to_a_known_size_answers_as_widening_does() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a");
        let fp = of_bytes(b"hello\n");
        for (content, read_to) in [
            (&b"hello\n"[..], 6u64),
            (b"hello\nworld\n", 12),
            (b"hello\nworld\n", 6),
            (b"HELLO\nworld\n", 12),
            (b"hel", 6),
            (b"", 6),
        ] {
            std::fs::write(&p, content).unwrap();
            let f = File::open(&p).unwrap();
            assert_eq!(
                widen_sized(&f, fp, read_to).unwrap(),
                widen(&f, fp).unwrap(),
                "{content:?} read to {read_to}"
            );
        }
        assert_eq!(
            widen_sized(&File::open(&p).unwrap(), fp, 6).unwrap(),
            Widen::Changed(of_bytes(b"")),
            "truncated to nothing"
        );
    }

    #[test]
    fn widen_grows_detects_rewrite() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a");
        let mut f = File::create(&p).unwrap();
        f.write_all(b"abc").unwrap();
        let r = File::open(&p).unwrap();
        let fp = of_file(&r).unwrap();
        assert_eq!(widen(&r, fp).unwrap(), Widen::Same);
        f.write_all(b"def").unwrap();
        assert_eq!(widen(&r, fp).unwrap(), Widen::Wider(of_bytes(b"abcdef")));
        std::fs::write(&p, b"xyzdef").unwrap();
        assert_eq!(widen(&r, fp).unwrap(), Widen::Changed(of_bytes(b"xyzdef")));
    }

    #[test]
    fn reader_match() {
        let fp = of_bytes(b"abc");
        assert!(matches_reader(&mut &b"abcdef"[..], fp).unwrap());
        assert!(!matches_reader(&mut &b"ab"[..], fp).unwrap());
        assert!(!matches_reader(&mut &b"abd"[..], fp).unwrap());
    }
}
