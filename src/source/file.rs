//! One tailed file: its identity, read position, acknowledgement tracker and
//! metrics, and the turn that reads one chunk of it into entries.
//!
//! Owns: [`Tailed`] and [`Kind`]. A `Tailed` is keyed by file identity
//! (device and inode), never by name: after the kubelet renames `0.log`, the same
//! `Tailed` keeps reading the renamed inode through its open descriptor (it
//! becomes [`Kind::Moved`]) while the new `0.log` gets a `Tailed` of its own.
//!
//! Design: every complete line becomes an [`Entry`] whose [`Ack`] carries the
//! offset just after the line, so the positions file only ever advances over
//! delivered lines. The file's `LabelSet` (target labels + `filename`) is built
//! once and shared by every entry. A chunk's lines share one copy of its
//! bytes ([`crate::text::Chunk`], made at the first line that lies wholly
//! inside the chunk and ending at its last newline); only a line assembled
//! from several reads or with invalid bytes gets a `String` of its own.
//!
//! Must never: issue an acknowledgement for bytes not yet read, or emit a line
//! that is not valid UTF-8 (invalid bytes are replaced and counted).
//!
//! [`Ack`]: crate::ack::Ack

use super::reader::{Line, LineSplitter, Src};
use crate::ack::{Issuer, Position, Tracker};
use crate::entry::{Entry, Timestamp};
use crate::labels::LabelSet;
use crate::metrics::files::FileSeries;
use crate::metrics::{Metrics, PathLabel};
use crate::positions::{FileId, Fingerprint};
use crate::text::{Chunk, Text};
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Where a tailed file stands relative to its path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The file currently at its path.
    Current,
    /// Renamed away or unlinked: read to its end, then closed.
    Moved,
    /// A compressed copy being caught up on: read to its end, then closed.
    Gz,
}

/// Cached per-path metric handles.
pub struct FileMetrics {
    pub key: PathLabel,
    pub series: Arc<FileSeries>,
}

impl FileMetrics {
    pub fn new(m: &Metrics, path: &Arc<Path>) -> Self {
        FileMetrics {
            series: m.files.get_or_create(path),
            key: PathLabel::new(path.clone()),
        }
    }

    /// Removes this path's series (the file is closed for good).
    pub fn remove(&self, m: &Metrics) {
        m.files.remove(&self.key.0);
        m.invalid_utf8_lines_total.remove(&self.key);
    }
}

/// One tailed file. See the module docs.
pub struct Tailed {
    pub id: FileId,
    /// The path it was discovered under (its `filename` label), one
    /// allocation shared with the tailer's path index, the positions and
    /// the per-file metrics.
    pub path: Arc<Path>,
    pub job: usize,
    /// Index of the target (glob) it matched.
    pub target: usize,
    /// Its kubelet rotation stamp once known (rotated siblings are read in
    /// stamp order; see `chain.rs`).
    pub stamp: Option<Box<str>>,
    /// Order of taking on (ties between equal stamps).
    pub seq: u64,
    /// A `seq` number of its own, taken when it stopped being the current
    /// file (its rotation seen; its own `seq` if taken on rotated,
    /// `u64::MAX` while current): files taken on before then are older
    /// than it, later ones newer (see [`Tailed::rotated_before`]).
    pub rotated_seq: u64,
    /// The size last seen (shared with the positions file).
    pub size: Arc<AtomicU64>,
    pub labels: LabelSet,
    /// Structured metadata of its target, put on every line.
    pub metadata: Arc<[crate::entry::MetaPair]>,
    /// Its target's named pipeline (index in the job's), if any.
    pub pipe: Option<usize>,
    /// Its target is gone and no other matches it: read it to its end, then
    /// release it (closed, position kept).
    pub orphan: bool,
    /// `None`: closed to bound open descriptors; reopened by path.
    pub src: Option<Src>,
    pub split: LineSplitter,
    pub tracker: Arc<Tracker>,
    pub fp: Fingerprint,
    pub kind: Kind,
    /// Last time a read returned data (or the file was opened).
    pub last_data: Instant,
    /// The last read returned nothing.
    pub at_eof: bool,
    /// Read it in the next turn.
    pub active: bool,
    /// inotify reported its path changed while it was being read (its
    /// path not checked then): the next sweep checks it, whatever the spread.
    pub path_event: bool,
    /// The tailer's sweep count when its path was last found to name it
    /// (0: never). A rescan leaves a file alone whose path was looked at
    /// within its spread (`look_spread` in `tailer.rs`).
    pub path_looked: u64,
    /// Every change to it is reported by its directory's watch: it is not a
    /// symlink and has one link (so it is written through this path, whose
    /// directory is watched), as of its last look. Such an idle file's
    /// look is spread wider (`WHOLE_EVENTS_SPREAD` in `tailer.rs`).
    pub whole_events: bool,
    /// inotify reported a write, or a change at its path, since the sweep
    /// last `fstat`ed it. A write is what a truncation looks like to
    /// inotify (`IN_MODIFY`), so a file waiting for delivery is looked at in
    /// the next sweep, not only in its spread turn (see `Look` in
    /// `tailer.rs`).
    pub event_since_look: bool,
    /// Opened (or reopened) and not read since: not parked for another
    /// file before it had its turn.
    pub awaiting_turn: bool,
    pub m: FileMetrics,
    pub warned_utf8: bool,
    pub warned_cut: bool,
    /// Parked: the file's change time (`st_ctime`, s and ns) when it was
    /// closed. An inode number reused at the same path by a new file of the
    /// very size we had read looks unchanged by inode and size alone; its
    /// change time tells it apart.
    pub parked_ctime: Option<(i64, i64)>,
    /// Its birth time, where the file system keeps one (`None` for a
    /// `.gz`): what tells it from a later file given its inode number when
    /// it had nothing fingerprinted (see `fingerprint::other_birth`).
    pub born: Option<std::time::SystemTime>,
}

/// What one chunk produced.
#[derive(Default)]
pub struct ChunkStats {
    pub bytes: usize,
    pub lines: usize,
    pub invalid_utf8: usize,
    pub cut: usize,
}

impl Tailed {
    /// Reads up to `buf.len()` bytes and appends one entry per complete line.
    pub fn read_chunk(&mut self, buf: &mut [u8], out: &mut Vec<Entry>) -> io::Result<ChunkStats> {
        let mut st = ChunkStats::default();
        let Some(src) = self.src.as_mut() else {
            return Ok(st);
        };
        let n = src.read(self.split.pos(), buf)?;
        if n == 0 {
            return Ok(st);
        }
        st.bytes = n;
        self.size
            .fetch_max(self.split.pos() + n as u64, Ordering::Relaxed);
        let (labels, md, split) = (&self.labels, &self.metadata, &mut self.split);
        // One read time and one tracker lock per chunk, not per line.
        let now = Timestamp::now();
        let read = &buf[..n];
        let mut shared = Shared::default();
        self.tracker.issuing(|is| {
            split.feed(read, |l| {
                let text = shared.text(read, &l, &mut st);
                out.push(make_entry(labels, md, is, now, l, text, &mut st))
            })
        });
        self.m.series.add_read(n as u64, st.lines as u64);
        Ok(st)
    }

    /// It may still have lines to read: not at its end, or changed since.
    pub fn has_unread(&self) -> bool {
        !self.at_eof || self.active
    }

    /// A current file holding a plain descriptor: what may be parked to
    /// free one (a rotated file's name may be gone, so it never is).
    pub fn parkable(&self) -> bool {
        self.kind == Kind::Current && matches!(self.src, Some(Src::Plain(_)))
    }

    /// Whether rotated file `self` is older than rotated file `o` of the
    /// same stream (read first). Two kubelet stamps say it exactly. A file
    /// whose stamp is unknown (its rotated name was gone, or never
    /// kubelet-style, when the catch-up listed the siblings) was the
    /// current file until `rotated_seq`: every file taken on before then —
    /// held rotated files, holes found while it was current — is older,
    /// and every file taken on since — the holes its own rotation's
    /// catch-up found, later current files — is newer; of two such files
    /// the one rotated first is older (one found rotated at start-up, a
    /// saved position relocated to a non-kubelet name such as `x.1`,
    /// counts as rotated when taken on). Ordering unknown
    /// stamps first instead read such a file before every older held one
    /// with a stamp (found by the soak, seed 31321: during an outage, with
    /// the kubelet keeping one rotated file, a pod's lines ~1,700 apart
    /// arrived out of order).
    pub fn rotated_before(&self, o: &Tailed) -> bool {
        match (&self.stamp, &o.stamp) {
            (Some(a), Some(b)) => (a, self.seq) < (b, o.seq),
            (None, None) => (self.rotated_seq, self.seq) < (o.rotated_seq, o.seq),
            (Some(_), None) => self.seq < o.rotated_seq,
            (None, Some(_)) => o.seq > self.rotated_seq,
        }
    }

    /// Records a size seen by `fstat`.
    pub fn saw_size(&self, size: u64) {
        self.size.fetch_max(size, Ordering::Relaxed);
    }

    /// Emits a held unterminated line (the file is gone for good).
    pub fn finish(&mut self, out: &mut Vec<Entry>) -> ChunkStats {
        let mut st = ChunkStats::default();
        let (labels, md, split) = (&self.labels, &self.metadata, &mut self.split);
        let now = Timestamp::now();
        self.tracker.issuing(|is| {
            split.finish(|l| {
                let text = owned_text(l.bytes, &mut st);
                out.push(make_entry(labels, md, is, now, l, text, &mut st))
            })
        });
        self.m.series.add_lines(st.lines as u64);
        st
    }
}

/// The chunk of one read, made at its first line that lies inside it.
#[derive(Default)]
struct Shared {
    /// Offset of the chunk's first byte in the read, and the chunk.
    chunk: Option<(usize, Chunk)>,
}

impl Shared {
    /// The line's text: a slice of the chunk if it lies in its valid
    /// UTF-8, else a `String` of its own.
    fn text(&mut self, read: &[u8], l: &Line<'_>, st: &mut ChunkStats) -> Text {
        if let Some(at) = l.at {
            let (base, chunk) = self.chunk.get_or_insert_with(|| {
                // Up to the last newline: the tail is a line still open.
                let end = memchr::memrchr(b'\n', &read[at..]).map_or(read.len(), |i| at + i + 1);
                (at, Chunk::new(&read[at..end]))
            });
            if let Some(t) = at
                .checked_sub(*base)
                .and_then(|s| chunk.line(s, s + l.bytes.len()))
            {
                return t;
            }
        }
        owned_text(l.bytes, st)
    }
}

/// A line's text copied out (invalid bytes replaced and counted).
fn owned_text(bytes: &[u8], st: &mut ChunkStats) -> Text {
    match std::str::from_utf8(bytes) {
        Ok(s) => Text::from(s),
        Err(_) => {
            st.invalid_utf8 += 1;
            Text::from(String::from_utf8_lossy(bytes).into_owned())
        }
    }
}

fn make_entry(
    labels: &LabelSet,
    metadata: &[crate::entry::MetaPair],
    is: &mut Issuer<'_>,
    now: Timestamp,
    l: Line<'_>,
    text: Text,
    st: &mut ChunkStats,
) -> Entry {
    st.lines += 1;
    if l.cut {
        st.cut += 1;
    }
    let mut e = Entry::new(labels.clone(), now, text, is.issue(Position::Offset(l.end)));
    if !metadata.is_empty() {
        e.metadata = metadata.to_vec();
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `reads` through a splitter as `read_chunk` does; returns each
    /// line's text, whether it shares its read, and the invalid count.
    fn texts(reads: &[&[u8]]) -> (Vec<(String, bool)>, usize) {
        let mut split = LineSplitter::new(0, 1024);
        let mut st = ChunkStats::default();
        let mut out = Vec::new();
        for read in reads {
            let mut shared = Shared::default();
            split.feed(read, |l| {
                let t = shared.text(read, &l, &mut st);
                out.push((t.to_string(), t.is_shared()));
            });
        }
        (out, st.invalid_utf8)
    }

    #[test]
    fn lines_inside_one_read_share_it_and_the_others_are_owned() {
        let (got, invalid) = texts(&[b"one\ntwo\nth", b"ree\nbad \xff\nfour\n\xc3", b"\xa9\n"]);
        let want = [
            ("one", true),
            ("two", true),
            // Began in the read before.
            ("three", false),
            // After an invalid byte the read's chunk ends: owned, replaced.
            ("bad \u{fffd}", false),
            ("four", false),
            ("é", false),
        ];
        let want: Vec<(String, bool)> = want.iter().map(|(s, b)| (s.to_string(), *b)).collect();
        assert_eq!(got, want);
        assert_eq!(invalid, 1);
    }

    /// A target's structured metadata is on every line of its files
    /// without an allocation per pair: a pod UID is held in place, and a
    /// value too long for that is the target's string, shared.
    #[test]
    fn every_line_carries_its_targets_metadata_without_copying_long_values() {
        let long = "v".repeat(100);
        let md: Arc<[crate::entry::MetaPair]> = vec![
            crate::entry::meta_pair("pod_uid", "0f3c2a9e-6d1b-4c8e-9a7f-2b5d8e1c4a60"),
            crate::entry::meta_pair("long", &long),
        ]
        .into();
        let tracker = crate::ack::Tracker::new(Position::Offset(0));
        let mut st = ChunkStats::default();
        let entries: Vec<Entry> = tracker.issuing(|is| {
            [(b"a", 2), (b"b", 4)]
                .into_iter()
                .map(|(bytes, end)| {
                    let l = Line {
                        bytes,
                        end,
                        cut: false,
                        at: None,
                    };
                    let text = Text::from("x");
                    make_entry(&LabelSet::empty(), &md, is, Timestamp(1), l, text, &mut st)
                })
                .collect()
        });
        for e in &entries {
            assert_eq!(e.metadata, md[..]);
            assert!(e.metadata[0].0.is_inline() && e.metadata[0].1.is_inline());
            assert!(std::ptr::eq(e.metadata[1].1.as_str(), md[1].1.as_str()));
        }
        assert_eq!(st.lines, 2);
        for e in entries {
            e.ack.ack();
        }
    }
}
