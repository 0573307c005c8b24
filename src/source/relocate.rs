//! Finding a file that moved while nobody was looking.
//!
//! Owns: [`relocate`], used at start-up for every saved position whose file
//! was not found again by the globs, and whenever a file closed to save
//! descriptors turns out to have been rotated. Given the path the file was
//! tailed under, its (device, inode) and content fingerprint, it looks at the
//! path itself and its `<name>.*` siblings (the kubelet renames `0.log` to
//! `0.log.<timestamp>`): first for the same inode with the same fingerprint,
//! then for a `<name>.*.gz` whose decompressed content starts with the
//! fingerprinted bytes (the kubelet compressed it and unlinked the original),
//! positioned at the saved offset. A file whose birth time is known is not
//! a candidate of another birth time (an inode number given out again).
//!
//! Must never: accept a candidate whose fingerprint does not match (an inode
//! number can be reused), or guess a `.gz` for a file that had no content
//! fingerprinted (zero-length fingerprints match everything).

use super::fingerprint;
use super::gz::{self, GzStream};
use crate::positions::{FileId, Fingerprint};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Where the data of a saved file was found.
pub enum Found {
    /// The same inode, under `path` (renamed or still in place).
    Plain { path: PathBuf, file: File },
    /// A compressed copy, already positioned at the requested offset.
    Gz {
        path: PathBuf,
        stream: Box<GzStream>,
    },
}

/// Looks for the file `id` with fingerprint `fp`, last seen at `orig`.
/// `offset` is where reading should resume (used to position a `.gz`).
pub fn relocate(
    orig: &Path,
    id: FileId,
    fp: Fingerprint,
    offset: u64,
    born: Option<SystemTime>,
) -> io::Result<Option<Found>> {
    // Twice: the kubelet writes `X.gz` before unlinking `X`, so a listing
    // taken just before the archive appeared and an open just after the
    // unlink would miss both; a second listing sees the archive.
    match search(orig, id, fp, offset, born)? {
        Some(f) => Ok(Some(f)),
        None => search(orig, id, fp, offset, born),
    }
}

fn search(
    orig: &Path,
    id: FileId,
    fp: Fingerprint,
    offset: u64,
    born: Option<SystemTime>,
) -> io::Result<Option<Found>> {
    let (Some(dir), Some(name)) = (orig.parent(), orig.file_name()) else {
        return Ok(None);
    };
    let name = name.to_string_lossy().into_owned();
    let prefix = format!("{name}.");
    let mut plain = vec![orig.to_path_buf()];
    let mut gzs = Vec::new();
    let listed = match super::dirents::read(dir) {
        Ok(l) => l,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    for (name, ..) in listed {
        let n = name.to_string_lossy().into_owned();
        if !n.starts_with(&prefix) || n.ends_with(".tmp") {
            continue;
        }
        if n.ends_with(".gz") {
            gzs.push(dir.join(&name));
        } else {
            plain.push(dir.join(&name));
        }
    }
    plain[1..].sort();
    gzs.sort();
    for p in plain {
        let Ok(file) = super::open::for_reading(&p) else {
            continue;
        };
        let Ok(meta) = file.metadata() else { continue };
        if !fingerprint::is_file(&meta, id, born) {
            continue;
        }
        if fingerprint::matches_file(&file, fp)? {
            return Ok(Some(Found::Plain { path: p, file }));
        }
    }
    if fp.len == 0 {
        return Ok(None);
    }
    for p in gzs {
        match gz::matches(&p, fp) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!(file = %p.display(), error = %e, "cannot read compressed rotated file");
                continue;
            }
        }
        let mut stream = GzStream::open(&p)?;
        if !stream.skip_to(offset)? {
            tracing::warn!(file = %p.display(), offset,
                "compressed rotated file is shorter than the saved offset; skipping it");
            continue;
        }
        return Ok(Some(Found::Gz {
            path: p,
            stream: Box::new(stream),
        }));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::gz::gzip_file;

    fn id_of(p: &Path) -> FileId {
        fingerprint::file_id(&std::fs::metadata(p).unwrap())
    }

    #[test]
    fn finds_renamed_sibling_by_inode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.log");
        std::fs::write(&p, b"a\nb\n").unwrap();
        let id = id_of(&p);
        let fp = fingerprint::of_file(&File::open(&p).unwrap()).unwrap();
        let q = dir.path().join("0.log.20261122-101500");
        std::fs::rename(&p, &q).unwrap();
        std::fs::write(&p, b"a\nb\n").unwrap(); // same content, new inode
        match relocate(&p, id, fp, 2, None).unwrap() {
            Some(Found::Plain { path, .. }) => assert_eq!(path, q),
            _ => panic!("not found"),
        }
    }

    #[test]
    fn finds_gz_by_fingerprint_at_offset() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.log");
        std::fs::write(&p, b"one\ntwo\nthree\n").unwrap();
        let id = id_of(&p);
        let fp = fingerprint::of_file(&File::open(&p).unwrap()).unwrap();
        let q = dir.path().join("0.log.20261122-101500");
        std::fs::rename(&p, &q).unwrap();
        // An unrelated older archive first in name order.
        std::fs::write(dir.path().join("old"), b"zzz\n").unwrap();
        gzip_file(
            &dir.path().join("old"),
            &dir.path().join("0.log.20261121-000000.gz"),
        );
        gzip_file(&q, &dir.path().join("0.log.20261122-101500.gz"));
        std::fs::remove_file(&q).unwrap();
        match relocate(&p, id, fp, 4, None).unwrap() {
            Some(Found::Gz { path, mut stream }) => {
                assert!(path.ends_with("0.log.20261122-101500.gz"));
                let mut buf = [0u8; 64];
                let n = stream.read(&mut buf).unwrap();
                assert_eq!(&buf[..n], b"two\nthree\n");
            }
            _ => panic!("gz not found"),
        }
    }

    #[test]
    fn nothing_matches() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.log");
        let id = FileId { dev: 1, ino: 2 };
        assert!(relocate(&p, id, fingerprint::of_bytes(b"x"), 0, None)
            .unwrap()
            .is_none());
        std::fs::write(&p, b"x\n").unwrap();
        assert!(relocate(&p, id, fingerprint::of_bytes(b"x"), 0, None)
            .unwrap()
            .is_none());
    }
}
