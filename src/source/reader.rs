//! Reading one file: turning bytes into lines with exact offsets.
//!
//! Owns: [`LineSplitter`], which cuts a byte stream into `\n`-terminated
//! lines, keeps an unterminated last line until its `\n` arrives, and reports
//! for every line the offset just *after* its newline (the position to resume
//! from once the line is delivered); and [`Src`], an open source of bytes —
//! a plain file read with positioned reads (so truncation and identity checks
//! never race with a file cursor) or a decompressed `.gz` stream.
//!
//! Design: lines wholly inside a chunk are handed out as borrowed slices (no
//! copy); only a line spanning chunks is assembled in the held buffer. A line
//! longer than `max_line` keeps its first `max_line` bytes; the rest is
//! skipped up to the newline, and the line is emitted (marked `cut`) when the
//! newline arrives, with the offset after it — so a restart never resumes in
//! the middle of a line.
//!
//! Must never: emit a line before its `\n` (except [`LineSplitter::finish`]
//! for a file that is gone), hold more than `max_line` bytes, or lose track of
//! the offset of a byte.

use super::gz::GzStream;
use memchr::memchr;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// One complete line.
#[derive(Debug, PartialEq, Eq)]
pub struct Line<'a> {
    /// The line without its `\n` (at most `max_line` bytes).
    pub bytes: &'a [u8],
    /// Offset just after the line's `\n` in the file.
    pub end: u64,
    /// True if the line was longer than `max_line` and was cut.
    pub cut: bool,
    /// Where `bytes` starts in the chunk just fed, if it is a slice of it
    /// (`None`: assembled from pieces of several chunks in the held buffer).
    pub at: Option<usize>,
}

/// Splits a byte stream into lines. See the module docs.
pub struct LineSplitter {
    held: Vec<u8>,
    /// Offset of the next byte to be fed.
    pos: u64,
    max_line: usize,
    /// The held line reached `max_line`: discarding up to the next `\n`.
    skipping: bool,
}

/// Capacity kept in the held buffer after a long line is emitted.
const KEEP_CAPACITY: usize = 64 * 1024;

impl LineSplitter {
    pub fn new(pos: u64, max_line: usize) -> Self {
        LineSplitter {
            held: Vec::new(),
            pos,
            max_line: max_line.max(1),
            skipping: false,
        }
    }

    /// Offset of the next byte to read.
    pub fn pos(&self) -> u64 {
        self.pos
    }

    /// Bytes of an unterminated line held back.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Restarts at `pos`, discarding any held partial line (truncation).
    pub fn reset(&mut self, pos: u64) {
        self.pos = pos;
        self.held = Vec::new();
        self.skipping = false;
    }

    /// Feeds the next bytes of the stream; calls `f` for each complete line.
    pub fn feed(&mut self, chunk: &[u8], mut f: impl FnMut(Line<'_>)) {
        let base = self.pos;
        let max = self.max_line;
        let mut start = 0;
        while start < chunk.len() {
            let rest = &chunk[start..];
            match memchr(b'\n', rest) {
                Some(i) => {
                    let end = base + (start + i) as u64 + 1;
                    let piece = &rest[..i];
                    if self.held.is_empty() && !self.skipping {
                        let cut = piece.len() > max;
                        let bytes = if cut { &piece[..max] } else { piece };
                        f(Line {
                            bytes,
                            end,
                            cut,
                            at: Some(start),
                        });
                    } else {
                        let mut cut = self.skipping;
                        if !self.skipping {
                            let room = max - self.held.len();
                            let take = room.min(piece.len());
                            self.held.extend_from_slice(&piece[..take]);
                            cut = piece.len() > room;
                        }
                        f(Line {
                            bytes: &self.held,
                            end,
                            cut,
                            at: None,
                        });
                        self.held.clear();
                        if self.held.capacity() > KEEP_CAPACITY {
                            self.held = Vec::new();
                        }
                        self.skipping = false;
                    }
                    start += i + 1;
                }
                None => {
                    if !self.skipping {
                        let room = max - self.held.len();
                        let take = room.min(rest.len());
                        self.held.extend_from_slice(&rest[..take]);
                        self.skipping = rest.len() > room;
                    }
                    start = chunk.len();
                }
            }
        }
        self.pos = base + chunk.len() as u64;
    }

    /// The held unterminated line of a stream that has ended for good
    /// (a deleted or rotated file read to its end): emitted as a line ending
    /// at the current offset. `None` if nothing is held.
    pub fn finish(&mut self, mut f: impl FnMut(Line<'_>)) -> bool {
        if self.held.is_empty() && !self.skipping {
            return false;
        }
        f(Line {
            bytes: &self.held,
            end: self.pos,
            cut: self.skipping,
            at: None,
        });
        self.held = Vec::new();
        self.skipping = false;
        true
    }
}

/// An open source of bytes for one tailed file.
pub enum Src {
    /// A plain file, read with positioned reads.
    Plain(File),
    /// A rotated file found only compressed: read sequentially.
    Gz(Box<GzStream>),
}

impl Src {
    /// Reads up to `buf.len()` bytes at `pos` (a `Gz` stream is always at
    /// `pos`). Returns 0 at end of file.
    pub fn read(&mut self, pos: u64, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let r = match self {
                Src::Plain(f) => f.read_at(buf, pos),
                Src::Gz(g) => g.read(buf),
            };
            match r {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }

    pub fn file(&self) -> Option<&File> {
        match self {
            Src::Plain(f) => Some(f),
            Src::Gz(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(split: &mut LineSplitter, chunks: &[&[u8]]) -> Vec<(String, u64, bool)> {
        let mut out = Vec::new();
        for c in chunks {
            split.feed(c, |l| {
                out.push((String::from_utf8_lossy(l.bytes).into_owned(), l.end, l.cut))
            });
        }
        out
    }

    #[test]
    fn splits_lines_across_chunk_boundaries() {
        let mut s = LineSplitter::new(0, 1024);
        let out = run(&mut s, &[b"ab", b"c\nde", b"f\n\ng", b"h\n"]);
        assert_eq!(
            out,
            vec![
                ("abc".into(), 4, false),
                ("def".into(), 8, false),
                ("".into(), 9, false),
                ("gh".into(), 12, false)
            ]
        );
        assert_eq!(s.pos(), 12);
        assert_eq!(s.held(), 0);
    }

    #[test]
    fn a_line_inside_one_chunk_says_where_it_is_in_it() {
        let mut s = LineSplitter::new(0, 4);
        let mut got = Vec::new();
        for c in [&b"ab"[..], b"c\nde\n\nlonger\nx"] {
            s.feed(c, |l| {
                if let Some(a) = l.at {
                    assert_eq!(&c[a..a + l.bytes.len()], l.bytes);
                }
                got.push((l.bytes.to_vec(), l.at));
            });
        }
        let want: Vec<(Vec<u8>, Option<usize>)> = vec![
            (b"abc".to_vec(), None),
            (b"de".to_vec(), Some(2)),
            (b"".to_vec(), Some(5)),
            (b"long".to_vec(), Some(6)),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn partial_last_line_waits_for_newline() {
        let mut s = LineSplitter::new(100, 1024);
        let out = run(&mut s, &[b"one\ntw"]);
        assert_eq!(out, vec![("one".into(), 104, false)]);
        assert_eq!(s.held(), 2);
        assert_eq!(s.pos(), 106);
        let out = run(&mut s, &[b"o"]);
        assert!(out.is_empty());
        let out = run(&mut s, &[b"\n"]);
        assert_eq!(out, vec![("two".into(), 108, false)]);
    }

    #[test]
    fn long_lines_are_cut_and_end_after_their_newline() {
        let mut s = LineSplitter::new(0, 4);
        let out = run(&mut s, &[b"abcdefgh\nxy", b"zzzzzz", b"zz\nok\n"]);
        assert_eq!(
            out,
            vec![
                ("abcd".into(), 9, true),
                ("xyzz".into(), 20, true),
                ("ok".into(), 23, false)
            ]
        );
        // Exactly max bytes is not cut, even when split across chunks.
        let mut s = LineSplitter::new(0, 4);
        let out = run(&mut s, &[b"ab", b"cd", b"\n"]);
        assert_eq!(out, vec![("abcd".into(), 5, false)]);
    }

    #[test]
    fn finish_emits_held_bytes_once() {
        let mut s = LineSplitter::new(0, 16);
        let _ = run(&mut s, &[b"a\nlast"]);
        let mut got = Vec::new();
        assert!(s.finish(|l| got.push((l.bytes.to_vec(), l.end))));
        assert_eq!(got, vec![(b"last".to_vec(), 6)]);
        assert!(!s.finish(|_| panic!("nothing held")));
    }

    #[test]
    fn reset_drops_partial() {
        let mut s = LineSplitter::new(0, 16);
        let _ = run(&mut s, &[b"abc"]);
        s.reset(0);
        let out = run(&mut s, &[b"x\n"]);
        assert_eq!(out, vec![("x".into(), 2, false)]);
    }

    #[test]
    fn reads_at_position_from_a_plain_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"0123456789").unwrap();
        let mut src = Src::Plain(File::open(&p).unwrap());
        let mut buf = [0u8; 4];
        assert_eq!(src.read(6, &mut buf).unwrap(), 4);
        assert_eq!(&buf, b"6789");
        assert_eq!(src.read(10, &mut buf).unwrap(), 0);
    }
}
