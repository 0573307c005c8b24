//! Catch-up from a rotated file that the kubelet already compressed.
//!
//! Owns: [`GzStream`], a decompressed view of `X.gz` positioned at a byte
//! offset of the *uncompressed* content (the offset recorded for the file
//! before it was compressed), [`matches`], which checks a `.gz` file's
//! decompressed first bytes against a saved fingerprint, and [`head`].
//!
//! Design: `flate2`'s multi-member decoder over a buffered file; skipping to
//! the saved offset decompresses and discards. The kubelet's `gzip` writes one
//! member; concatenated members are accepted too.
//!
//! Must never: trust a `.gz` whose content does not match the fingerprint, or
//! panic on a corrupt or truncated archive (errors are returned).

use super::fingerprint;
use crate::positions::{FileId, Fingerprint};
use flate2::read::MultiGzDecoder;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

/// A decompressed `.gz` file, read sequentially.
pub struct GzStream {
    dec: MultiGzDecoder<BufReader<File>>,
    /// Uncompressed offset of the next byte.
    pos: u64,
    /// The compressed file's own identity.
    id: FileId,
}

impl GzStream {
    pub fn open(path: &Path) -> io::Result<GzStream> {
        let f = super::open::for_reading(path)?;
        let id = fingerprint::file_id(&f.metadata()?);
        Ok(GzStream {
            id,
            dec: MultiGzDecoder::new(BufReader::with_capacity(64 * 1024, f)),
            pos: 0,
        })
    }

    /// Decompresses and discards up to `offset`. Returns false if the
    /// content ends before it.
    pub fn skip_to(&mut self, offset: u64) -> io::Result<bool> {
        if offset < self.pos {
            return Err(io::Error::other("gz stream cannot seek backwards"));
        }
        let want = offset - self.pos;
        let n = io::copy(&mut (&mut self.dec).take(want), &mut io::sink())?;
        self.pos += n;
        Ok(n == want)
    }

    /// The (device, inode) of the compressed file.
    pub fn id(&self) -> FileId {
        self.id
    }

    pub fn pos(&self) -> u64 {
        self.pos
    }

    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.dec.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// True if the decompressed content of `path` starts with the bytes
/// fingerprinted by `fp`.
pub fn matches(path: &Path, fp: Fingerprint) -> io::Result<bool> {
    let mut s = GzStream::open(path)?;
    fingerprint::matches_reader(&mut s.dec, fp)
}

/// Up to `n` decompressed bytes from the start of `path` (fewer only if
/// the content is shorter).
pub fn head(path: &Path, n: usize) -> io::Result<Vec<u8>> {
    let s = GzStream::open(path)?;
    let mut out = Vec::with_capacity(n);
    s.dec.take(n as u64).read_to_end(&mut out)?;
    Ok(out)
}

#[cfg(test)]
pub(crate) fn gzip_file(src: &Path, dst: &Path) {
    use flate2::write::GzEncoder;
    use std::io::Write;
    let data = std::fs::read(src).unwrap();
    let mut enc = GzEncoder::new(File::create(dst).unwrap(), flate2::Compression::fast());
    enc.write_all(&data).unwrap();
    enc.finish().unwrap().sync_all().unwrap();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catches_up_at_the_saved_offset() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.log.1");
        std::fs::write(&p, b"first\nsecond\nthird\n").unwrap();
        let fp = fingerprint::of_file(&File::open(&p).unwrap()).unwrap();
        let gz = dir.path().join("0.log.1.gz");
        gzip_file(&p, &gz);
        assert!(matches(&gz, fp).unwrap());
        assert!(!matches(&gz, fingerprint::of_bytes(b"other")).unwrap());
        let mut s = GzStream::open(&gz).unwrap();
        assert!(s.skip_to(6).unwrap());
        let mut rest = Vec::new();
        let mut buf = [0u8; 5];
        loop {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            rest.extend_from_slice(&buf[..n]);
        }
        assert_eq!(rest, b"second\nthird\n");
        assert_eq!(s.pos(), 19);
        let mut s = GzStream::open(&gz).unwrap();
        assert!(!s.skip_to(100).unwrap());
    }

    #[test]
    fn corrupt_archive_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let gz = dir.path().join("x.gz");
        std::fs::write(&gz, b"\x1f\x8b\x08\x00garbage").unwrap();
        assert!(
            matches(&gz, fingerprint::of_bytes(b"abc")).is_err()
                || !matches(&gz, fingerprint::of_bytes(b"abc")).unwrap()
        );
    }
}
