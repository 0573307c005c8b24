//! The binary's own pages: letting go of what only start-up ran or read.
//!
//! Owns: [`release`], which unmaps this process's read-only mappings of
//! its executable — its code (`r-xp`) and constant data (`r--p`: string
//! and Unicode tables, unwind tables) — with `madvise(MADV_DONTNEED)`, so
//! that only what is used again is mapped back; and [`Released`], what it
//! did. The executable is the file whose code holds [`release`] itself.
//!
//! Why: the kernel maps file pages 64 KiB around each page a thread
//! touches ("fault-around"), and what start-up runs and reads — the
//! config parser, clap, TLS roots, the Kubernetes client, regex
//! compilation, the first walk — is spread through the whole 11 MB
//! `.text` and 1.2 MB `.rodata`. At 5,000 files with the spool, 7–8 MiB of
//! code was resident at the drain's peak, a fifth of the agent's RSS; a
//! drain runs ~6 MiB of it again (`benches/HISTORY.md`). Unmapped, a page
//! stays in the page cache: the next use of it is a minor fault, not a
//! read.
//!
//! Must never: touch a mapping one of whose pages was written. On a
//! private file mapping, `MADV_DONTNEED` throws away what was written —
//! the loader's relocations in the read-only-after-relocation data, a
//! debugger's or a uprobe's breakpoints in code — and a written page is
//! an anonymous copy, so a mapping with any anonymous page is left alone
//! whole. Never called on a per-line path.

use std::io;

/// What one [`release`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Released {
    /// Bytes of mappings unmapped (resident or not).
    pub bytes: usize,
    /// Read-only mappings of the binary left alone because a page of
    /// theirs was written (the relocated data, always; breakpoints).
    pub skipped: usize,
}

/// Unmaps the binary's unwritten read-only pages (see the module docs).
pub fn release() -> io::Result<Released> {
    let smaps = std::fs::read_to_string("/proc/self/smaps")?;
    let here = release as *const () as usize;
    let mut done = Released::default();
    for m in own_mappings(&smaps, here) {
        if m.written {
            done.skipped += 1;
            continue;
        }
        #[cfg(target_os = "linux")]
        // SAFETY: the range is a whole read-only mapping of our executable
        // with no page written (checked above): dropping its pages only
        // makes the next access to them fault the same bytes back in from
        // the file. No memory the program wrote is affected.
        let rc = unsafe {
            libc::madvise(
                m.start as *mut libc::c_void,
                m.end - m.start,
                libc::MADV_DONTNEED,
            )
        };
        #[cfg(not(target_os = "linux"))]
        let rc = 0;
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        done.bytes += m.end - m.start;
    }
    Ok(done)
}

/// A read-only mapping of the executable.
#[derive(Debug, PartialEq, Eq)]
struct Mapping {
    start: usize,
    end: usize,
    /// A page of it was written: it holds an anonymous copy.
    written: bool,
}

/// The read-only (`r-xp`, `r--p`) mappings, in `/proc/<pid>/smaps` text,
/// of the file whose code mapping holds the address `here`.
fn own_mappings(smaps: &str, here: usize) -> Vec<Mapping> {
    struct Seen<'a> {
        start: usize,
        end: usize,
        perms: &'a str,
        path: &'a str,
        written: bool,
    }
    let mut seen: Vec<Seen> = Vec::new();
    for line in smaps.lines() {
        if let Some(((start, end), rest)) = header(line) {
            // perms, offset, device, inode, then the path (spaces and all).
            let mut f = rest.splitn(5, |c: char| c.is_ascii_whitespace());
            let perms = f.next().unwrap_or("");
            let path = f.nth(3).map(str::trim).unwrap_or("");
            seen.push(Seen {
                start,
                end,
                perms,
                path,
                written: false,
            });
        } else if let (Some(last), Some(v)) = (seen.last_mut(), line.strip_prefix("Anonymous:")) {
            // A written page of a private file mapping is an anonymous
            // copy. (`Private_Dirty` is no sign: it also counts the file's
            // own pages not yet written back, e.g. a binary just built.)
            if v.trim().trim_end_matches("kB").trim() != "0" {
                last.written = true;
            }
        }
    }
    let Some(ours) = seen
        .iter()
        .find(|s| s.perms == "r-xp" && s.start <= here && here < s.end && s.path.starts_with('/'))
        .map(|s| s.path)
    else {
        return Vec::new();
    };
    seen.iter()
        .filter(|s| matches!(s.perms, "r-xp" | "r--p") && s.path == ours)
        .map(|s| Mapping {
            start: s.start,
            end: s.end,
            written: s.written,
        })
        .collect()
}

/// A mapping's header line: its address range and the rest of the line.
/// Field lines ("Rss:  12 kB") have no `-` range before the first space.
fn header(line: &str) -> Option<((usize, usize), &str)> {
    let (range, rest) = line.split_once(' ')?;
    let (a, b) = range.split_once('-')?;
    let a = usize::from_str_radix(a, 16).ok()?;
    let b = usize::from_str_radix(b, 16).ok()?;
    (a < b).then_some(((a, b), rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
55d0a0000000-55d0a0400000 r--p 00000000 fd:01 1234 /usr/bin/tail trace
Rss:                1024 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
55d0a0400000-55d0a1000000 r-xp 00400000 fd:01 1234 /usr/bin/tail trace
Rss:                7000 kB
Private_Clean:      6000 kB
Private_Dirty:      1000 kB
Anonymous:             0 kB
55d0a1000000-55d0a1080000 r--p 01000000 fd:01 1234 /usr/bin/tail trace
Private_Dirty:       512 kB
Anonymous:           512 kB
55d0a1080000-55d0a1100000 rw-p 01080000 fd:01 1234 /usr/bin/tail trace
Private_Dirty:        64 kB
Anonymous:            64 kB
55d0a2000000-55d0a3000000 rw-p 00000000 00:00 0 [heap]
Anonymous:          4096 kB
7f0000000000-7f0000100000 r-xp 00000000 fd:01 99 /usr/lib/libc.so.6
Private_Dirty:         0 kB
Anonymous:             0 kB
7f0000200000-7f0000300000 r-xp 00000000 00:00 0
Anonymous:             0 kB
7f0000400000-7f0000500000 r-xp 00100000 fd:01 1234 /usr/bin/tail trace
Private_Dirty:         4 kB
Anonymous:             4 kB
";

    /// Only the read-only mappings of the file whose code holds the given
    /// address are ours: not its writable data, not the heap, not libc,
    /// not an anonymous executable mapping. One with a written page (the
    /// relocated data; a debugger's breakpoint in code: an anonymous copy)
    /// is marked written; file pages only not yet written back to disk
    /// (`Private_Dirty` without `Anonymous`) are not.
    #[test]
    fn our_read_only_mappings_are_found_by_an_address_in_our_code() {
        let m = |start, end, written| Mapping {
            start,
            end,
            written,
        };
        assert_eq!(
            own_mappings(SMAPS, 0x55d0a0500000),
            vec![
                m(0x55d0a0000000, 0x55d0a0400000, false),
                m(0x55d0a0400000, 0x55d0a1000000, false),
                m(0x55d0a1000000, 0x55d0a1080000, true),
                m(0x7f0000400000, 0x7f0000500000, true),
            ]
        );
        // An address in libc's code: libc's mapping.
        assert_eq!(
            own_mappings(SMAPS, 0x7f0000000100),
            vec![m(0x7f0000000000, 0x7f0000100000, false)]
        );
        // An address in data, in no file's code, or nowhere: nothing.
        assert!(own_mappings(SMAPS, 0x55d0a0000100).is_empty());
        assert!(own_mappings(SMAPS, 0x7f0000200100).is_empty());
        assert!(own_mappings(SMAPS, 0x1000).is_empty());
        assert!(own_mappings("", 0x55d0a0500000).is_empty());
    }

    /// Released code and constants are used again (their pages come back
    /// from the file), what was released is this binary's — at least the
    /// mapping that holds this test's code — and the read-only data the
    /// loader relocated (written pages, in this position-independent
    /// binary) is left alone.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn released_pages_come_back_when_used() {
        let first = release().expect("release");
        assert!(first.bytes > 0, "this binary's code was found: {first:?}");
        assert!(
            first.skipped >= 1,
            "the relocated read-only data is never released: {first:?}"
        );
        let words: Vec<String> = (1..=1000).map(|i| format!("{i:x}")).collect();
        assert_eq!(words.iter().map(|w| w.len()).sum::<usize>(), 2_730);
        let again = release().expect("release");
        assert_eq!(
            again.bytes + again.skipped,
            first.bytes + first.skipped,
            "the same mappings"
        );
    }
}
