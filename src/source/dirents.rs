//! Reading a directory's entries with `getdents64` into a reused buffer.
//!
//! Owns: [`read`], one directory's entries (name, type, inode number), and
//! the parsing of the kernel's `linux_dirent64` records.
//!
//! Why not `std::fs::read_dir`: glibc's `opendir` `fstat`s every directory
//! it opens and allocates a 32 KiB buffer for it, freed again at
//! `closedir`. A glob over `/var/log/pods` reads two directories per
//! container (its pod's and its own) at start-up and at every rescan:
//! 10,000 at 5,000 containers, each an open, a `fstat`, two `getdents64`
//! and a close, and 10,000 32 KiB blocks through the allocator. Here it is
//! an open, the `getdents64`s and a close, into one buffer per thread.
//!
//! Must never: trust a record's lengths without checking them against
//! what the kernel returned (a malformed record ends the listing with an
//! error, never a panic or a read out of bounds), or return `.` and `..`.

use std::ffi::OsString;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// What a directory entry's `d_type` says it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    Dir,
    Symlink,
    /// A regular file, or anything else known not to be a directory.
    Other,
    /// The file system did not say (`DT_UNKNOWN`): `stat` to know.
    Unknown,
}

/// One entry: its name, its type and its inode number.
pub type Dirent = (OsString, Type, u64);

/// Bytes asked of each `getdents64`: what glibc's `readdir` asks.
const BUF: usize = 32 * 1024;

thread_local! {
    /// One buffer per thread for every directory it reads.
    static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Every entry of `dir` but `.` and `..`, in the order the kernel gives.
pub fn read(dir: &Path) -> io::Result<Vec<Dirent>> {
    let mut out = Vec::new();
    read_each(dir, |name, kind, ino| {
        out.push((std::ffi::OsStr::from_bytes(name).to_os_string(), kind, ino))
    })?;
    Ok(out)
}

/// [`read`] without a `Vec` or a name allocated per entry: `each` gets
/// every entry's name (borrowed from the buffer), type and inode number.
pub fn read_each(dir: &Path, mut each: impl FnMut(&[u8], Type, u64)) -> io::Result<()> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(dir)?;
    BUFFER.with(|b| {
        let mut buf = b
            .try_borrow_mut()
            .map_err(|_| io::Error::other("reentrant"))?;
        buf.resize(BUF, 0);
        loop {
            let n = getdents64(&file, &mut buf)?;
            if n == 0 {
                return Ok(());
            }
            parse(&buf[..n], &mut each)?;
        }
    })
}

/// One `getdents64` into `buf`: the bytes it filled (0 at the end).
fn getdents64(dir: &std::fs::File, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`,
        // which is valid for writes of that many bytes for the call.
        let n = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                dir.as_raw_fd(),
                buf.as_mut_ptr(),
                buf.len(),
            )
        };
        if n >= 0 {
            return Ok((n as usize).min(buf.len()));
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Offsets in a `struct linux_dirent64`: `d_ino` (u64), `d_off` (i64),
/// `d_reclen` (u16), `d_type` (u8), then the name, NUL-terminated.
const INO: usize = 0;
const RECLEN: usize = 16;
const TYPE: usize = 18;
const NAME: usize = 19;

fn malformed(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("malformed directory entry: {what}"),
    )
}

/// Hands each entry of `records` (what one `getdents64` returned) to `each`.
fn parse(mut records: &[u8], each: &mut impl FnMut(&[u8], Type, u64)) -> io::Result<()> {
    while !records.is_empty() {
        let field = |at: usize, len: usize| {
            records
                .get(at..at + len)
                .ok_or_else(|| malformed("record cut short"))
        };
        let reclen = u16::from_ne_bytes(
            field(RECLEN, 2)?
                .try_into()
                .map_err(|_| malformed("length"))?,
        ) as usize;
        if reclen <= NAME || reclen > records.len() {
            return Err(malformed("length out of bounds"));
        }
        let ino = u64::from_ne_bytes(field(INO, 8)?.try_into().map_err(|_| malformed("inode"))?);
        let kind = match field(TYPE, 1)?[0] {
            libc::DT_DIR => Type::Dir,
            libc::DT_LNK => Type::Symlink,
            libc::DT_UNKNOWN => Type::Unknown,
            _ => Type::Other,
        };
        let name = &records[NAME..reclen];
        let name = match memchr::memchr(0, name) {
            Some(end) => &name[..end],
            None => return Err(malformed("name not terminated")),
        };
        if name != b"." && name != b".." && !name.is_empty() {
            each(name, kind, ino);
        }
        records = &records[reclen..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::os::unix::fs::MetadataExt;

    /// What `std::fs::read_dir` says of `dir`: name → (type, inode).
    fn by_std(dir: &Path) -> BTreeMap<OsString, (Type, u64)> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let t = e.file_type().unwrap();
                let kind = if t.is_dir() {
                    Type::Dir
                } else if t.is_symlink() {
                    Type::Symlink
                } else {
                    Type::Other
                };
                (
                    e.file_name(),
                    (kind, std::os::unix::fs::DirEntryExt::ino(&e)),
                )
            })
            .collect()
    }

    #[test]
    fn lists_what_read_dir_lists_in_a_big_directory() {
        let d = tempfile::tempdir().unwrap();
        // More than one `getdents64` holds (32 KiB at ~40 bytes a record).
        for i in 0..2_000 {
            std::fs::write(d.path().join(format!("{i:04}.log.20240101-000000")), b"x").unwrap();
        }
        std::fs::create_dir(d.path().join("sub")).unwrap();
        std::os::unix::fs::symlink("0001.log.20240101-000000", d.path().join("link")).unwrap();
        std::fs::write(d.path().join("ünïcödé \u{1F600}.log"), b"").unwrap();
        let got = read(d.path()).unwrap();
        assert_eq!(got.len(), 2_003, "every entry once, no . or ..");
        let mine: BTreeMap<OsString, (Type, u64)> =
            got.into_iter().map(|(n, t, i)| (n, (t, i))).collect();
        assert_eq!(mine, by_std(d.path()));
        let sub = std::fs::metadata(d.path().join("sub")).unwrap();
        assert_eq!(mine[&OsString::from("sub")], (Type::Dir, sub.ino()));
    }

    #[test]
    fn an_empty_directory_has_no_entries_and_a_file_is_not_a_directory() {
        let d = tempfile::tempdir().unwrap();
        assert!(read(d.path()).unwrap().is_empty());
        std::fs::write(d.path().join("f"), b"").unwrap();
        let e = read(&d.path().join("f")).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOTDIR));
        let e = read(&d.path().join("missing")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    /// What [`parse`] hands out for `records`, collected.
    fn parsed(records: &[u8]) -> io::Result<Vec<Dirent>> {
        let mut out = Vec::new();
        parse(records, &mut |name: &[u8], kind, ino| {
            out.push((std::ffi::OsStr::from_bytes(name).to_os_string(), kind, ino))
        })?;
        Ok(out)
    }

    fn record(ino: u64, kind: u8, name: &[u8]) -> Vec<u8> {
        let len = (NAME + name.len() + 1).next_multiple_of(8);
        let mut r = vec![0u8; len];
        r[INO..INO + 8].copy_from_slice(&ino.to_ne_bytes());
        r[RECLEN..RECLEN + 2].copy_from_slice(&(len as u16).to_ne_bytes());
        r[TYPE] = kind;
        r[NAME..NAME + name.len()].copy_from_slice(name);
        r
    }

    #[test]
    fn records_are_parsed_and_bad_ones_refused_without_a_panic() {
        let records = [
            record(7, libc::DT_REG, b"0.log"),
            record(8, libc::DT_UNKNOWN, b"x"),
            record(1, libc::DT_DIR, b".."),
        ];
        let ok = records.concat();
        let out = parsed(&ok).unwrap();
        assert_eq!(
            out,
            vec![
                (OsString::from("0.log"), Type::Other, 7),
                (OsString::from("x"), Type::Unknown, 8)
            ]
        );
        // Cut anywhere: whole records parse, a record cut short is an error.
        let ends: Vec<usize> = records
            .iter()
            .scan(0, |at, r| {
                *at += r.len();
                Some(*at)
            })
            .collect();
        for cut in 1..ok.len() {
            let r = parsed(&ok[..cut]);
            assert_eq!(r.is_ok(), ends.contains(&cut), "cut at {cut}");
        }
        let mut long = record(7, libc::DT_REG, b"a");
        long[RECLEN..RECLEN + 2].copy_from_slice(&1000u16.to_ne_bytes());
        assert!(parsed(&long).is_err());
        let mut short = record(7, libc::DT_REG, b"a");
        short[RECLEN..RECLEN + 2].copy_from_slice(&0u16.to_ne_bytes());
        assert!(parsed(&short).is_err(), "a zero length would loop");
        let mut unterminated = record(7, libc::DT_REG, b"abcde");
        let n = unterminated.len();
        unterminated[NAME..n].fill(b'z');
        assert!(parsed(&unterminated).is_err());
    }
}
