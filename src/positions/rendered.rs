//! A positions file as a save writes it: small parts as text, each live
//! file as the values its lines are formatted from.
//!
//! Owns: [`Rendered`], what [`super::Positions::save`] compares with the
//! last save (an unchanged file is not written again) and streams to the
//! file. A live file's two lines (its Promtail `path: offset` entry and its
//! `tailtrace:file` record) are formatted only as they are written, into
//! one scratch string: no copy of them is kept between saves, and none is
//! made per file per save. At 5,000 files the cached lines this replaced
//! held ~2.5 MB (each one copied the path), and were made again for every
//! file that moved: nearly all of them at every save under load.
//!
//! Must never: take two different texts for the same (a skipped write
//! would leave an old offset on disk). Pieces cut differently may compare
//! as different: that costs one write, never a missed one.

use super::format::{self, FileRecord};
use super::{FileId, Fingerprint};
use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;

/// A live file's values at a render, shared with nothing that changes (the
/// path is the tailer's own `Arc`).
#[derive(Clone)]
pub struct LiveLine {
    pub path: Arc<Path>,
    pub id: FileId,
    pub fp: Fingerprint,
    pub offset: u64,
    pub size: u64,
    pub seq: u64,
    /// How the path's lines are written (worked out once per file).
    pub plain: format::Plain,
}

impl LiveLine {
    fn record(&self) -> FileRecord<'_> {
        FileRecord {
            path: &self.path,
            id: self.id,
            fp_len: self.fp.len,
            fp: self.fp.crc,
            offset: self.offset,
            size: self.size,
            seq: self.seq,
        }
    }

    /// Same values, the path compared by its bytes (`Path`'s `==` walks
    /// components).
    fn same(&self, o: &LiveLine) -> bool {
        self.id == o.id
            && self.fp == o.fp
            && self.offset == o.offset
            && self.size == o.size
            && self.seq == o.seq
            && (Arc::ptr_eq(&self.path, &o.path)
                || self.path.as_os_str().as_encoded_bytes()
                    == o.path.as_os_str().as_encoded_bytes())
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Piece {
    /// `text[start..end]`.
    Text(usize, usize),
    /// `files[i]`'s Promtail entry.
    Promtail(usize),
    /// `files[i]`'s `tailtrace:file` record.
    File(usize),
    /// The watermarks' lines.
    Chains,
}

/// A rendered file as pieces in order. Build it by writing small parts to
/// [`Rendered::text`] and adding files and the watermarks' lines between
/// them; [`Rendered::write_to`] formats and writes it.
#[derive(Default)]
pub struct Rendered {
    text: String,
    /// Where the text not yet in a piece begins.
    open: usize,
    files: Vec<LiveLine>,
    /// The watermarks' lines, shared with the registry's cache, and their
    /// render id (a new one whenever they change).
    chains: Option<(Arc<str>, u64)>,
    pieces: Vec<Piece>,
}

impl Rendered {
    /// Room for `files` live files written twice each (their two lines):
    /// sized once, as the file list and pieces of 5,000 files grown by
    /// doubling kept ~40 % more than they held (heaptrack).
    pub fn for_files(files: usize) -> Rendered {
        Rendered {
            files: Vec::with_capacity(files),
            pieces: Vec::with_capacity(files.saturating_mul(2).saturating_add(8)),
            ..Rendered::default()
        }
    }

    /// Where small parts are written (they become a piece before the next
    /// file or watermark piece, or at [`Rendered::finish`]).
    pub fn text(&mut self) -> &mut String {
        &mut self.text
    }

    fn close_text(&mut self) {
        if self.text.len() > self.open {
            self.pieces.push(Piece::Text(self.open, self.text.len()));
            self.open = self.text.len();
        }
    }

    /// Adds a live file (not written by itself); returns its index for
    /// [`Rendered::promtail`] and [`Rendered::file`].
    pub fn add_file(&mut self, f: LiveLine) -> usize {
        self.files.push(f);
        self.files.len() - 1
    }

    /// Writes file `i`'s Promtail entry here.
    pub fn promtail(&mut self, i: usize) {
        self.close_text();
        self.pieces.push(Piece::Promtail(i));
    }

    /// Writes file `i`'s `tailtrace:file` record here.
    pub fn file(&mut self, i: usize) {
        self.close_text();
        self.pieces.push(Piece::File(i));
    }

    /// Writes the watermarks' lines here. `id` names this text: the
    /// registry gives every text of them it formats an id never given
    /// before.
    pub fn chains(&mut self, lines: &Arc<str>, id: u64) {
        self.close_text();
        self.chains = Some((lines.clone(), id));
        self.pieces.push(Piece::Chains);
    }

    /// Ends the text: call once everything is added.
    pub fn finish(&mut self) {
        self.close_text();
    }

    /// Whether this is the text `last` was: the same pieces, small parts
    /// and files' values, and the same watermark render.
    pub fn matches(&self, last: &Rendered) -> bool {
        self.pieces == last.pieces
            && self.text == last.text
            && self.chains.as_ref().map(|c| c.1) == last.chains.as_ref().map(|c| c.1)
            && self.files.len() == last.files.len()
            && self.files.iter().zip(&last.files).all(|(a, b)| a.same(b))
    }

    /// Calls `out` with the text in order, piece by piece (a file's line
    /// formatted into one reused scratch buffer).
    fn each(&self, mut out: impl FnMut(&[u8]) -> io::Result<()>) -> io::Result<()> {
        let mut line = Vec::new();
        for p in &self.pieces {
            match *p {
                Piece::Text(a, b) => out(self.text.as_bytes().get(a..b).unwrap_or_default())?,
                Piece::Promtail(i) | Piece::File(i) => {
                    let Some(f) = self.files.get(i) else { continue };
                    line.clear();
                    if matches!(p, Piece::Promtail(_)) {
                        format::promtail_line_as(&f.path, f.plain, f.offset, &mut line);
                    } else {
                        format::file_line_as(&f.record(), f.plain, &mut line);
                    }
                    out(&line)?;
                }
                Piece::Chains => {
                    if let Some((c, _)) = &self.chains {
                        out(c.as_bytes())?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Writes the text to `w`; returns its length in bytes.
    pub fn write_to(&self, w: &mut impl Write) -> io::Result<usize> {
        let mut n = 0;
        self.each(|s| {
            n += s.len();
            w.write_all(s)
        })?;
        Ok(n)
    }

    /// The whole text (valid UTF-8: every piece is).
    pub fn to_text(&self) -> String {
        let mut t = Vec::new();
        let _ = self.each(|s| {
            t.extend_from_slice(s);
            Ok(())
        });
        String::from_utf8_lossy(&t).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(path: &str, offset: u64) -> LiveLine {
        LiveLine {
            path: Arc::from(Path::new(path)),
            id: FileId { dev: 1, ino: 7 },
            fp: Fingerprint { len: 4, crc: 9 },
            offset,
            size: offset + 1,
            seq: 3,
            plain: format::plainness(Path::new(path)),
        }
    }

    fn build(offset: u64, path: &str, chains: (&Arc<str>, u64)) -> Rendered {
        let mut r = Rendered::for_files(1);
        r.text().push_str("head\n");
        let i = r.add_file(line(path, offset));
        r.promtail(i);
        r.text().push_str("mid\n");
        r.chains(chains.0, chains.1);
        r.file(i);
        r.text().push_str("tail\n");
        r.finish();
        r
    }

    /// The text is the pieces in order, each file's lines as the format
    /// writes them; `write_to` writes the same bytes and counts them.
    #[test]
    fn writes_the_pieces_in_order_with_each_files_lines() {
        let c: Arc<str> = Arc::from("  tailtrace:chain:/a/0.log: 20261122-101500\n");
        let r = build(81920, "/a/0.log", (&c, 1));
        let f = line("/a/0.log", 81920);
        let (mut p, mut t) = (String::new(), String::new());
        format::promtail_line(&f.path, f.offset, &mut p);
        format::file_line(&f.record(), &mut t);
        let want = format!("head\n{p}mid\n{c}{t}tail\n");
        assert_eq!(r.to_text(), want);
        let mut bytes = Vec::new();
        assert_eq!(r.write_to(&mut bytes).unwrap(), want.len());
        assert_eq!(bytes, want.as_bytes());
    }

    /// Every value a file's lines are made of, the watermarks' render and
    /// the small parts tell a text apart; the same values match.
    #[test]
    fn any_changed_value_is_a_different_text() {
        let c: Arc<str> = Arc::from("x\n");
        let base = build(10, "/a/0.log", (&c, 1));
        assert!(build(10, "/a/0.log", (&c, 1)).matches(&base));
        assert!(!build(11, "/a/0.log", (&c, 1)).matches(&base));
        assert!(!build(10, "/a/1.log", (&c, 1)).matches(&base));
        assert!(!build(10, "/a/0.log", (&c, 2)).matches(&base));
        let mut other = build(10, "/a/0.log", (&c, 1));
        other.files[0].seq = 4;
        assert!(!other.matches(&base));
        other = build(10, "/a/0.log", (&c, 1));
        other.files[0].fp.crc = 1;
        assert!(!other.matches(&base));
        other = build(10, "/a/0.log", (&c, 1));
        other.files[0].id.ino = 8;
        assert!(!other.matches(&base));
        other = build(10, "/a/0.log", (&c, 1));
        other.text.replace_range(0..1, "H");
        assert!(!other.matches(&base));
        let mut fewer = Rendered::default();
        fewer.text().push_str("head\n");
        fewer.finish();
        assert!(!fewer.matches(&base));
    }
}
