//! Start-up recovery: what the spool on disk can be trusted with.
//!
//! Owns: [`recover`], which walks every segment chunk by chunk, checks each
//! header and payload checksum, and decides — given the spool offset the
//! positions file accounts for (`committed`, see `Positions::commit_spool`):
//!
//! - **uncommitted chunks are cut**: a chunk ending past `committed` was
//!   written but its lines' positions were never saved, so those lines are
//!   read again from the files; keeping the chunk would send them twice.
//!   Damage reaching past `committed` is cut from its start the same way
//!   (not reported: nothing there is lost);
//! - **a torn tail is cut**: bytes after the last good chunk of the last
//!   segment (an interrupted write) — also past `committed`, so nothing is
//!   lost;
//! - **damage in the middle is skipped**: a chunk whose payload checksum
//!   fails is skipped by its header's length; a damaged header is skipped by
//!   scanning for the next chunk header that checks out; a
//!   missing segment leaves a gap. Each such region is reported (the caller
//!   logs it with its segment and counts it as lost: its positions were
//!   saved, so its lines cannot be read again);
//! - **committed data missing at the end** (positions account for more than
//!   the spool holds) is reported as lost, and writing continues at the
//!   committed offset so spool offsets never go backwards.
//!
//! Without a `committed` offset (no positions file yet) nothing valid is
//! cut: only the torn tail.
//!
//! Must never: trust a byte whose checksum was not verified, treat damage
//! below `committed` as re-readable, or read a whole segment into memory.

use super::chunk::{ChunkError, Header, HEADER_LEN};
use super::segment;
use std::collections::{BTreeMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

/// A good chunk, as indexed in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkMeta {
    /// Spool offset of its header.
    pub offset: u64,
    pub len: u32,
    pub entries: u32,
    pub raw_len: u32,
    /// When it was sealed (Unix ns).
    pub written: i64,
}

impl ChunkMeta {
    pub fn end(&self) -> u64 {
        self.offset + u64::from(self.len)
    }
}

/// A region of the spool whose data cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    pub start: u64,
    pub end: u64,
    /// Entries lost, when a good header said so.
    pub entries: Option<u32>,
    /// Uncompressed bytes lost, when a good header said so.
    pub raw: Option<u32>,
    pub segment: PathBuf,
    pub why: String,
}

/// What [`recover`] found and did.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Segment start → bytes kept.
    pub segments: BTreeMap<u64, u64>,
    pub chunks: VecDeque<ChunkMeta>,
    /// Regions readers must skip (their data is lost).
    pub damaged: Vec<Damage>,
    /// Where the next chunk goes.
    pub end: u64,
    /// Bytes of uncommitted chunks and torn writes cut (their lines are
    /// read again from the files).
    pub cut: u64,
}

/// Recovers the spool in `dir`. See the module docs.
pub fn recover(dir: &Path, committed: Option<u64>) -> io::Result<Recovered> {
    let segs = segment::list(dir)?;
    let mut chunks: Vec<ChunkMeta> = Vec::new();
    let mut bad: Vec<Damage> = Vec::new();
    let mut lens: Vec<(u64, PathBuf, u64)> = Vec::new();
    let mut buf = Vec::new();
    for (start, path) in &segs {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        walk(&file, *start, len, path, &mut buf, &mut chunks, &mut bad)?;
        lens.push((*start, path.clone(), len));
    }
    // Gaps between segments: a segment is missing.
    for w in lens.windows(2) {
        let (s0, p0, l0) = &w[0];
        let (s1, _, _) = &w[1];
        if s0 + l0 < *s1 {
            bad.push(Damage {
                start: s0 + l0,
                end: *s1,
                entries: None,
                raw: None,
                segment: p0.clone(),
                why: "a segment after this one is missing".into(),
            });
        }
    }
    bad.sort_by_key(|d| d.start);

    // Where the trusted spool ends.
    let valid_end = chunks.last().map(|c| c.end());
    let first_uncommitted =
        committed.and_then(|h| chunks.iter().find(|c| c.end() > h).map(|c| c.offset));
    let cut_at = match (first_uncommitted, valid_end) {
        (Some(u), _) => u,
        (None, Some(e)) => e,
        (None, None) => lens.first().map_or(committed.unwrap_or(0), |(s, _, _)| *s),
    };
    // A damaged region or missing segment reaching past `committed` is
    // uncommitted too: its lines are read again from the files, so it is
    // cut, not reported lost (the committed part before it, if any, is
    // reported below).
    let first_bad_past =
        committed.and_then(|h| bad.iter().filter(|d| d.end > h).map(|d| d.start).min());
    let cut_at = first_bad_past.map_or(cut_at, |b| cut_at.min(b));
    let mut out = Recovered {
        end: cut_at.max(committed.unwrap_or(0)),
        ..Recovered::default()
    };
    // Damage below the cut is skipped by readers; past it, what was committed
    // is lost with it.
    for d in bad {
        if d.start < cut_at {
            out.damaged.push(Damage {
                end: d.end.min(cut_at),
                ..d
            });
        }
    }
    if let Some(h) = committed {
        if h > cut_at {
            out.damaged.push(Damage {
                start: cut_at,
                end: h,
                entries: None,
                raw: None,
                segment: lens
                    .iter()
                    .rev()
                    .find(|(s, _, _)| *s <= cut_at)
                    .map_or_else(|| dir.to_path_buf(), |(_, p, _)| p.clone()),
                why: "chunks the positions file accounts for are missing or damaged at the end of the spool".into(),
            });
        }
    }
    // Cut: truncate the segment holding `cut_at`, delete those after it.
    for (start, path, len) in lens {
        let end = start + len;
        if start >= cut_at {
            out.cut += len;
            std::fs::remove_file(&path)?;
        } else if end > cut_at {
            out.cut += end - cut_at;
            let f = OpenOptions::new().write(true).open(&path)?;
            f.set_len(cut_at - start)?;
            f.sync_all()?;
            out.segments.insert(start, cut_at - start);
        } else {
            out.segments.insert(start, len);
        }
    }
    out.chunks = chunks.into_iter().filter(|c| c.end() <= cut_at).collect();
    Ok(out)
}

/// Walks one segment: good chunks go to `chunks`, bad regions to `bad`.
fn walk(
    file: &File,
    start: u64,
    len: u64,
    path: &Path,
    buf: &mut Vec<u8>,
    chunks: &mut Vec<ChunkMeta>,
    bad: &mut Vec<Damage>,
) -> io::Result<()> {
    let mut pos = 0u64;
    while pos < len {
        match check_at(file, pos, len, buf)? {
            Ok(h) => {
                chunks.push(meta(start + pos, &h));
                pos += h.total_len() as u64;
            }
            Err((ChunkError::BadData, Some(h))) => {
                bad.push(Damage {
                    start: start + pos,
                    end: start + pos + h.total_len() as u64,
                    entries: Some(h.entries),
                    raw: Some(h.raw_len),
                    segment: path.to_path_buf(),
                    why: "payload checksum mismatch".into(),
                });
                pos += h.total_len() as u64;
            }
            Err((e, _)) => {
                // Resynchronise on the next chunk that fully checks out.
                let next = next_good(file, pos + 1, len, buf)?;
                bad.push(Damage {
                    start: start + pos,
                    end: start + next,
                    entries: None,
                    raw: None,
                    segment: path.to_path_buf(),
                    why: e.to_string(),
                });
                pos = next;
            }
        }
    }
    Ok(())
}

fn meta(offset: u64, h: &Header) -> ChunkMeta {
    ChunkMeta {
        offset,
        len: h.total_len() as u32,
        entries: h.entries,
        raw_len: h.raw_len,
        written: h.written,
    }
}

type Checked = Result<Header, (ChunkError, Option<Header>)>;

/// Checks the chunk at `pos` of a segment of `len` bytes (header and
/// payload checksum).
pub fn check_at(file: &File, pos: u64, len: u64, buf: &mut Vec<u8>) -> io::Result<Checked> {
    let mut hb = [0u8; HEADER_LEN];
    let n = segment::read_at(file, &mut hb, pos)?;
    let h = match Header::decode(&hb[..n]) {
        Ok(h) => h,
        Err(e) => return Ok(Err((e, None))),
    };
    if pos + h.total_len() as u64 > len {
        return Ok(Err((ChunkError::Short, Some(h))));
    }
    buf.resize(h.data_len as usize, 0);
    let n = segment::read_at(file, buf, pos + HEADER_LEN as u64)?;
    if n < buf.len() {
        return Ok(Err((ChunkError::Short, Some(h))));
    }
    if crc32fast::hash(buf) != h.data_crc {
        return Ok(Err((ChunkError::BadData, Some(h))));
    }
    Ok(Ok(h))
}

/// The first offset ≥ `from` of a segment of `len` bytes where a chunk
/// header checks out and its chunk fits (its payload is judged by the
/// caller), or `len`.
pub fn next_good(file: &File, from: u64, len: u64, buf: &mut Vec<u8>) -> io::Result<u64> {
    const WINDOW: usize = 64 * 1024;
    let magic = super::chunk::MAGIC.to_be_bytes();
    let mut win = vec![0u8; WINDOW + 3];
    let mut at = from;
    while at < len {
        let n = segment::read_at(file, &mut win, at)?;
        if n < magic.len() {
            break;
        }
        let mut i = 0;
        while let Some(k) = memchr::memmem::find(&win[i..n], &magic) {
            let cand = at + (i + k) as u64;
            // A header that checks out and fits: the walk judges its payload.
            match check_at(file, cand, len, buf)? {
                Ok(_) | Err((ChunkError::BadData, Some(_))) => return Ok(cand),
                _ => {}
            }
            i += k + 1;
        }
        // Overlap by 3 bytes so a magic across windows is not missed.
        at += (n.saturating_sub(3)).max(1) as u64;
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `n` chunks of 10 entries into segments of `per_seg` chunks;
    /// returns the chunks' (offset, len).
    fn write_spool(dir: &Path, n: usize, per_seg: usize) -> Vec<(u64, u64)> {
        super::super::scan_props::write_spool(dir, &vec![10; n], per_seg)
    }

    fn flip(dir: &Path, offset: u64) {
        let segs = segment::list(dir).unwrap();
        let (start, path) = segs.iter().rev().find(|(s, _)| *s <= offset).unwrap();
        let mut data = std::fs::read(path).unwrap();
        data[(offset - start) as usize] ^= 0xff;
        std::fs::write(path, data).unwrap();
    }

    #[test]
    fn a_clean_spool_is_kept_whole() {
        let d = tempfile::tempdir().unwrap();
        let cs = write_spool(d.path(), 6, 2);
        let end = cs.last().map(|(o, l)| o + l).unwrap();
        let r = recover(d.path(), Some(end)).unwrap();
        assert_eq!(r.chunks.len(), 6);
        assert!(r.damaged.is_empty());
        assert_eq!((r.end, r.cut), (end, 0));
        assert_eq!(r.segments.len(), 3);
    }

    #[test]
    fn a_torn_tail_is_cut_and_uncommitted_chunks_too() {
        let d = tempfile::tempdir().unwrap();
        let cs = write_spool(d.path(), 5, 10);
        let seg = d.path().join(segment::file_name(0));
        let full = std::fs::metadata(&seg).unwrap().len();
        // Tear the last chunk in the middle of its payload.
        let f = OpenOptions::new().write(true).open(&seg).unwrap();
        f.set_len(full - 5).unwrap();
        let r = recover(d.path(), None).unwrap();
        assert_eq!(r.chunks.len(), 4);
        assert!(
            r.damaged.is_empty(),
            "a torn tail is not damage: {:?}",
            r.damaged
        );
        assert_eq!(r.end, cs[4].0);
        assert_eq!(std::fs::metadata(&seg).unwrap().len(), cs[4].0);
        // Positions account for two chunks only: the rest is cut.
        let r = recover(d.path(), Some(cs[1].0 + cs[1].1)).unwrap();
        assert_eq!(r.chunks.len(), 2);
        assert_eq!(r.end, cs[2].0);
        assert!(r.cut > 0);
    }

    #[test]
    fn a_damaged_middle_chunk_is_skipped_and_reported() {
        let d = tempfile::tempdir().unwrap();
        let cs = write_spool(d.path(), 5, 10);
        let end = cs[4].0 + cs[4].1;
        flip(d.path(), cs[2].0 + HEADER_LEN as u64 + 3); // payload byte
        let r = recover(d.path(), Some(end)).unwrap();
        assert_eq!(r.chunks.len(), 4);
        assert_eq!(r.damaged.len(), 1);
        assert_eq!(r.damaged[0].entries, Some(10));
        assert_eq!((r.damaged[0].start, r.damaged[0].end), (cs[2].0, cs[3].0));
        assert_eq!(r.end, end);
        // A damaged header: found again by scanning for the next chunk.
        flip(d.path(), cs[1].0 + 9);
        let r = recover(d.path(), Some(end)).unwrap();
        assert_eq!(r.chunks.len(), 3);
        let spans: Vec<(u64, u64)> = r.damaged.iter().map(|x| (x.start, x.end)).collect();
        assert_eq!(spans, vec![(cs[1].0, cs[2].0), (cs[2].0, cs[3].0)]);
    }

    /// Found by `scan_props`: a damaged chunk past the committed offset,
    /// followed by a good uncommitted one, was kept as a gap and reported
    /// lost — but its lines are read again from the files (their positions
    /// never passed them). It is cut with the rest of the uncommitted tail.
    #[test]
    fn damage_past_the_committed_offset_is_cut_not_reported_lost() {
        let d = tempfile::tempdir().unwrap();
        let cs = write_spool(d.path(), 3, 10);
        flip(d.path(), cs[1].0 + 2); // chunk 1's header (magic)
        let committed = cs[0].0 + cs[0].1;
        let r = recover(d.path(), Some(committed)).unwrap();
        assert!(r.damaged.is_empty(), "{:?}", r.damaged);
        assert_eq!(r.chunks.len(), 1);
        assert_eq!(r.end, committed);
        assert_eq!(r.cut, cs[1].1 + cs[2].1);
        // Straddling the committed offset: the committed part is lost.
        let d = tempfile::tempdir().unwrap();
        let cs = write_spool(d.path(), 3, 10);
        flip(d.path(), cs[1].0 + 2);
        let r = recover(d.path(), Some(cs[1].0 + 5)).unwrap();
        let spans: Vec<(u64, u64)> = r.damaged.iter().map(|x| (x.start, x.end)).collect();
        assert_eq!(spans, vec![(cs[1].0, cs[1].0 + 5)]);
        assert_eq!(r.end, cs[1].0 + 5);
    }

    #[test]
    fn a_missing_segment_is_a_gap_and_missing_committed_tail_is_reported() {
        let d = tempfile::tempdir().unwrap();
        let cs = write_spool(d.path(), 6, 2);
        let end = cs[5].0 + cs[5].1;
        std::fs::remove_file(d.path().join(segment::file_name(cs[2].0))).unwrap();
        let r = recover(d.path(), Some(end)).unwrap();
        assert_eq!(r.chunks.len(), 4);
        assert_eq!(r.damaged.len(), 1);
        assert_eq!((r.damaged[0].start, r.damaged[0].end), (cs[2].0, cs[4].0));
        // The last segment gone: committed chunks lost at the end.
        std::fs::remove_file(d.path().join(segment::file_name(cs[4].0))).unwrap();
        let r = recover(d.path(), Some(end)).unwrap();
        assert_eq!(r.end, end, "writing continues at the committed offset");
        assert_eq!(
            r.damaged.last().map(|x| (x.start, x.end)),
            Some((cs[2].0, end))
        );
    }

    #[test]
    fn an_empty_directory_starts_at_the_committed_offset() {
        let d = tempfile::tempdir().unwrap();
        let r = recover(d.path(), Some(777)).unwrap();
        assert_eq!(r.end, 777);
        assert!(r.damaged.is_empty());
        let r = recover(d.path(), None).unwrap();
        assert_eq!(r.end, 0);
    }
}
