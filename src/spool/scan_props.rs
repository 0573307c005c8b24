//! Property test of the start-up recovery scan ([`super::scan::recover`])
//! under arbitrary damage: flipped bytes anywhere, a torn or truncated last
//! segment, garbage appended, segments deleted, and any committed offset.
//!
//! What recovery promises, checked for every case:
//! - it never fails or panics on damaged data;
//! - it never invents a chunk: each chunk it keeps is one that was written,
//!   at its offset, with none of its bytes harmed;
//! - damage never takes a good chunk with it: every unharmed chunk the
//!   positions account for (all of them when there is no committed offset)
//!   is kept;
//! - writing goes on at or past the committed offset and past every chunk
//!   kept (offsets never go backwards); reported damage (counted as lost)
//!   never overlaps a kept chunk, nor reaches past the committed offset
//!   (what lies there is read again from the files);
//! - what it leaves on disk is what it reports, and a second recovery (with
//!   the committed offset the agent then has) keeps the same chunks (it may
//!   cut damaged bytes the first one kept as a reported gap before
//!   uncommitted chunks, and end lower where nothing committed is there).

use super::chunk::{ChunkBuilder, Codec};
use super::scan::recover;
use super::segment;
use crate::ack::Ack;
use crate::entry::{Entry, Timestamp};
use crate::labels::LabelSet;
use proptest::prelude::*;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

#[derive(Clone, Debug)]
enum Harm {
    /// XOR a byte (at this share of the spool) with a non-zero mask.
    Flip(u64, u8),
    /// Cut the last segment to this share of its length.
    Truncate(u64),
    /// Append these bytes to the last segment.
    Garbage(Vec<u8>),
    /// Delete one segment (this index, modulo their number).
    DropSegment(usize),
}

fn harm() -> impl Strategy<Value = Harm> {
    prop_oneof![
        3 => (any::<u64>(), 1u8..=255).prop_map(|(at, m)| Harm::Flip(at, m)),
        1 => any::<u64>().prop_map(Harm::Truncate),
        1 => proptest::collection::vec(any::<u8>(), 1..300).prop_map(Harm::Garbage),
        1 => any::<usize>().prop_map(Harm::DropSegment),
    ]
}

/// Writes chunks of `sizes[c]` entries, `per_seg` chunks a segment, stored
/// compressed or not by turns; returns each chunk's (offset, len).
pub(super) fn write_spool(dir: &Path, sizes: &[usize], per_seg: usize) -> Vec<(u64, u64)> {
    let ls = LabelSet::new([("app", "a")]);
    let mut out = Vec::new();
    let mut at = 0u64;
    let mut seg: Option<File> = None;
    for (c, &n) in sizes.iter().enumerate() {
        if c % per_seg == 0 {
            seg = Some(File::create(dir.join(segment::file_name(at))).unwrap());
        }
        let codec = if c % 2 == 0 { Codec::Lz4 } else { Codec::None };
        let mut cb = ChunkBuilder::new(codec);
        for i in 0..n {
            let line = format!("chunk {c} line {i} {}", "x".repeat(i % 17));
            cb.add(&Entry::new(
                ls.clone(),
                Timestamp(i as i64),
                line.into(),
                Ack::none(),
            ));
        }
        let mut b = Vec::new();
        cb.seal(c as i64, &mut b).unwrap();
        seg.as_mut().unwrap().write_all(&b).unwrap();
        out.push((at, b.len() as u64));
        at += b.len() as u64;
    }
    out
}

/// Applies `h`; returns the spool byte range it harmed (`None`: nothing
/// that was written, e.g. garbage past the end).
fn apply(dir: &Path, h: &Harm, written_end: u64) -> Option<(u64, u64)> {
    let segs = segment::list(dir).unwrap();
    let (last_start, last_path) = segs.last()?.clone();
    let last_len = std::fs::metadata(&last_path).unwrap().len();
    match h {
        Harm::Flip(at, mask) => {
            let total: u64 = segs
                .iter()
                .map(|(_, p)| std::fs::metadata(p).unwrap().len())
                .sum();
            if total == 0 {
                return None;
            }
            // A byte of some segment, by share of all bytes on disk.
            let mut k = at % total;
            for (start, path) in &segs {
                let mut data = std::fs::read(path).unwrap();
                if k < data.len() as u64 {
                    data[k as usize] ^= mask;
                    std::fs::write(path, data).unwrap();
                    let off = start + k;
                    return Some((off, off + 1));
                }
                k -= data.len() as u64;
            }
            None
        }
        Harm::Truncate(share) => {
            let keep = if last_len == 0 { 0 } else { share % last_len };
            let f = OpenOptions::new().write(true).open(&last_path).unwrap();
            f.set_len(keep).unwrap();
            Some((last_start + keep, u64::MAX))
        }
        Harm::Garbage(bytes) => {
            let mut f = OpenOptions::new().append(true).open(&last_path).unwrap();
            f.write_all(bytes).unwrap();
            // Bytes written over what a deleted later segment held (or
            // after a cut) harm that range as far as they reach.
            let from = last_start + last_len;
            (from < written_end).then_some((from, u64::MAX))
        }
        Harm::DropSegment(i) => {
            let (start, path) = &segs[i % segs.len()];
            let len = std::fs::metadata(path).unwrap().len();
            std::fs::remove_file(path).unwrap();
            Some((*start, start + len.max(1)))
        }
    }
}

fn disk_segments(dir: &Path) -> std::collections::BTreeMap<u64, u64> {
    segment::list(dir)
        .unwrap()
        .into_iter()
        .map(|(s, p)| (s, std::fs::metadata(p).unwrap().len()))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn damage_anywhere_never_invents_a_chunk_nor_takes_a_good_committed_one(
        sizes in proptest::collection::vec(1usize..40, 1..10),
        per_seg in 1usize..4,
        harms in proptest::collection::vec(harm(), 0..4),
        committed in proptest::option::of(any::<u64>()),
    ) {
        let d = tempfile::tempdir().unwrap();
        let cs = write_spool(d.path(), &sizes, per_seg);
        let end = cs.last().map_or(0, |(o, l)| o + l);
        let committed = committed.map(|c| c % (end + 1));
        let mut harmed: Vec<(u64, u64)> = Vec::new();
        for h in &harms {
            harmed.extend(apply(d.path(), h, end));
        }
        let unharmed = |&(o, l): &(u64, u64)| {
            harmed.iter().all(|&(a, b)| b <= o || a >= o + l)
        };

        let r = recover(d.path(), committed);
        prop_assert!(r.is_ok(), "recovery failed: {:?}", r.err());
        let r = r.unwrap();

        for c in &r.chunks {
            let orig = (c.offset, u64::from(c.len));
            prop_assert!(cs.contains(&orig), "invented chunk {c:?}");
            prop_assert!(unharmed(&orig), "kept a harmed chunk {c:?} (harmed {harmed:?})");
        }
        let kept: Vec<(u64, u64)> =
            r.chunks.iter().map(|c| (c.offset, u64::from(c.len))).collect();
        for &(o, l) in cs.iter().filter(|c| unharmed(c)) {
            if committed.is_none_or(|h| o + l <= h) {
                prop_assert!(kept.contains(&(o, l)),
                    "good chunk at {o} lost (committed {committed:?}, harmed {harmed:?}, kept {kept:?})");
            }
        }
        prop_assert!(r.end >= committed.unwrap_or(0));
        prop_assert!(r.chunks.iter().all(|c| c.end() <= r.end));
        for dmg in &r.damaged {
            prop_assert!(dmg.start < dmg.end, "empty damage {dmg:?}");
            // Past the committed offset nothing is lost: those lines are
            // read again from the files.
            prop_assert!(committed.is_none_or(|h| dmg.end <= h),
                "uncommitted bytes reported lost: {dmg:?} (committed {committed:?})");
            prop_assert!(
                r.chunks.iter().all(|c| c.end() <= dmg.start || c.offset >= dmg.end),
                "damage {dmg:?} overlaps a kept chunk"
            );
        }
        prop_assert_eq!(disk_segments(d.path()), r.segments.clone());

        // The agent records the spool's end in the positions at once when
        // they had none (`Writer::new`), so the next start sees it.
        let again = recover(d.path(), committed.or(Some(r.end))).unwrap();
        prop_assert_eq!(&again.chunks, &r.chunks);
        prop_assert!(again.end >= committed.unwrap_or(0));
    }
}
