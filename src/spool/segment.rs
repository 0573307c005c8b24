//! Segment files: where chunks live on disk.
//!
//! Owns: segment naming ([`file_name`], [`parse_name`]), [`list`], and the
//! small positioned-read helpers the scan and the readers share. A segment
//! is named by the spool offset of its first byte (`00000000000000123456.seg`),
//! so a chunk's spool offset says which file holds it and where; offsets grow
//! forever across segments.
//!
//! Must never: take a file that is not a segment for one (other names in the
//! directory are left alone), or read past what a caller asked for.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const SUFFIX: &str = ".seg";

/// The file name of the segment starting at spool offset `start`.
pub fn file_name(start: u64) -> String {
    format!("{start:020}{SUFFIX}")
}

/// The start offset a segment file name encodes.
pub fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The segments in `dir`, by start offset.
pub fn list(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for ent in std::fs::read_dir(dir)? {
        let ent = ent?;
        let name = ent.file_name();
        if let Some(start) = parse_name(&name.to_string_lossy()) {
            out.push((start, ent.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Reads exactly `buf.len()` bytes at `off`, or fewer at end of file.
pub fn read_at(file: &File, buf: &mut [u8], off: u64) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], off + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_strangers_are_ignored() {
        assert_eq!(file_name(123), "00000000000000000123.seg");
        assert_eq!(parse_name(&file_name(u64::MAX)), Some(u64::MAX));
        for no in [
            "cursors.yaml",
            "123.seg",
            "0000000000000000012a.seg",
            "00000000000000000123.seg.tmp",
        ] {
            assert_eq!(parse_name(no), None, "{no}");
        }
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(file_name(50)), b"").unwrap();
        std::fs::write(d.path().join(file_name(7)), b"").unwrap();
        std::fs::write(d.path().join("cursors.yaml"), b"").unwrap();
        let l: Vec<u64> = list(d.path())
            .unwrap()
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        assert_eq!(l, vec![7, 50]);
    }
}
