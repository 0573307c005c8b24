//! The `cri` stage: Promtail's `- cri: {}`.
//!
//! Owns: [`CriConfig`] and [`CriStage`]; also the two helpers the `docker`
//! stage shares, `StreamLabels` (the cached `stream`-labelled sets) and
//! `Joiner` (partial-line reassembly with acknowledgement merging).
//!
//! What it does, as Promtail v3.6 does it: a line in the CRI format
//! (see [`crate::source::cri`]) gets the `stream` label, the line's timestamp
//! and its content as the new line. `P` pieces are held per (labels, stream)
//! and joined with the following pieces up to and including the `F` piece;
//! the joined entry takes the **last** piece's timestamp. A line that does
//! not match the CRI format passes through unchanged. The content is kept
//! byte for byte: containerd strips the newline before writing and CRI-O's
//! newline is the file's line terminator, which the reader removed, so no
//! newline handling is needed here (a `\r` the program wrote stays).
//!
//! Deliberate details:
//! - A CRI line whose timestamp does not parse still matches Promtail's
//!   regex; as there, it is decoded and keeps the timestamp it had (read time).
//! - `max_partial_lines` (default 100; 0 means the default) counts the pieces
//!   held for one stream; when a stream holds that many, they are emitted as
//!   one entry at once (Promtail counts differently — buffered streams, not
//!   pieces — but either way everything held is merged into one line).
//! - `max_partial_line_size` only acts with `max_partial_line_size_truncate:
//!   true` (as documented for Promtail): the held line is cut at that many
//!   bytes (on a UTF-8 boundary) and later pieces' bytes are discarded until
//!   the line ends. A single `F` line with nothing held is never truncated.
//! - Every piece's [`Ack`](crate::ack::Ack) is merged into the joined entry,
//!   so a file position never passes a held `P` piece. Pieces from different
//!   trackers (a rotated file under the same labels) cannot share an ack: the
//!   held pieces are emitted on their own first.
//!
//! Must never: rebuild a label set per line (derived sets are cached), hold
//! an unbounded number of pieces, or drop a piece's acknowledgement.

use crate::entry::Entry;
use crate::labels::LabelSet;
use crate::pipeline::{Ctx, Stage, Value};
use crate::source::cri::{self, Stream};
use crate::text::Text;
use serde::Deserialize;
use std::time::{Duration, Instant};

/// Default of `max_partial_lines`.
pub const DEFAULT_MAX_PARTIAL_LINES: usize = 100;

/// `cri:` options, with Promtail's names and defaults.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CriConfig {
    /// Pieces held per stream before they are emitted as one line; 0 = 100.
    pub max_partial_lines: usize,
    /// Bytes; only with `max_partial_line_size_truncate`. Accepts `256KB`.
    #[serde(deserialize_with = "crate::config::duration::de_bytes")]
    pub max_partial_line_size: usize,
    pub max_partial_line_size_truncate: bool,
}

impl Default for CriConfig {
    fn default() -> Self {
        CriConfig {
            max_partial_lines: DEFAULT_MAX_PARTIAL_LINES,
            max_partial_line_size: 0,
            max_partial_line_size_truncate: false,
        }
    }
}

impl CriConfig {
    /// Checks the options; the error names the offending key.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_partial_line_size_truncate && self.max_partial_line_size == 0 {
            return Err(
                "max_partial_line_size must be greater than 0 when max_partial_line_size_truncate is true"
                    .into(),
            );
        }
        Ok(())
    }
}

/// The stage. See the module docs.
pub struct CriStage {
    labels: StreamLabels,
    joiner: Joiner,
    /// A later stage reads the extracted map: leave `time`, `stream`,
    /// `flags` and `content` there, as Promtail's cri stage does.
    extract: bool,
}

impl CriStage {
    pub fn new(cfg: &CriConfig) -> Result<Self, String> {
        cfg.validate()?;
        let max_pieces = if cfg.max_partial_lines == 0 {
            DEFAULT_MAX_PARTIAL_LINES
        } else {
            cfg.max_partial_lines
        };
        let truncate_at = if cfg.max_partial_line_size_truncate {
            cfg.max_partial_line_size
        } else {
            0
        };
        Ok(CriStage {
            labels: StreamLabels::default(),
            joiner: Joiner::new(max_pieces, truncate_at),
            extract: false,
        })
    }

    /// Pieces currently held (all streams).
    pub fn held_pieces(&self) -> usize {
        self.joiner.held_pieces()
    }
}

impl Stage for CriStage {
    fn name(&self) -> &'static str {
        "cri"
    }

    fn uses_extracted(&self) -> bool {
        false
    }

    fn downstream_uses_extracted(&mut self, yes: bool) {
        self.extract = yes;
    }

    fn process(&mut self, mut entry: Entry, ctx: &mut Ctx) {
        let partial = match self.decode(&mut entry, true) {
            // (`Partial` only comes back when partial pieces are refused.)
            Decoded::NotCri | Decoded::Partial => return ctx.emit(entry),
            Decoded::Line { partial } => partial,
        };
        let from = ctx.out.len();
        self.joiner.push(entry, !partial, ctx);
        self.set_content(ctx, from);
    }

    /// A full line while nothing is held (the joiner would emit it as it
    /// is), or a line that is not CRI (passed on unchanged): edited in place.
    fn try_edit(&mut self, entry: &mut Entry) -> bool {
        if !self.joiner.is_empty() {
            return false;
        }
        match self.decode(entry, false) {
            Decoded::Partial => false,
            Decoded::NotCri => true,
            Decoded::Line { .. } => {
                self.put_content(entry);
                true
            }
        }
    }

    fn flush(&mut self, ctx: &mut Ctx) {
        let from = ctx.out.len();
        self.joiner.flush(ctx);
        self.set_content(ctx, from);
    }
}

/// What [`CriStage::decode`] did with an entry.
enum Decoded {
    /// Not a CRI line: left as it was.
    NotCri,
    /// A partial piece, left as it was (only when partial pieces were not
    /// wanted).
    Partial,
    /// Decoded: the content is the line, with the line's time, the
    /// `stream` label and (if wanted) the extracted fields.
    Line { partial: bool },
}

impl CriStage {
    /// Decodes a CRI line into the entry; a partial piece only if
    /// `partial_ok` (else it is left untouched).
    fn decode(&mut self, entry: &mut Entry, partial_ok: bool) -> Decoded {
        let (start, stream, partial, ts) = match cri::split_timed(entry.line.as_bytes()) {
            Ok((f, _)) if f.partial && !partial_ok => return Decoded::Partial,
            Ok((f, ts)) => {
                if self.extract {
                    let x = &mut entry.extracted;
                    let text = |b: &[u8]| Value::from(String::from_utf8_lossy(b).into_owned());
                    x.insert("time", text(f.time));
                    x.insert("stream", Value::from(f.stream.as_str()));
                    x.insert("flags", Value::from(if f.partial { "P" } else { "F" }));
                }
                (f.content_start, f.stream, f.partial, ts)
            }
            Err(_) => return Decoded::NotCri,
        };
        // `start` follows an ASCII space, so it is a char boundary.
        entry.line.drop_front(start);
        if let Some(ts) = ts {
            entry.timestamp = ts;
        }
        entry.labels = self.labels.get(&entry.labels, stream);
        Decoded::Line { partial }
    }

    /// `content` of the entries emitted since `from`: the (joined) line.
    fn set_content(&self, ctx: &mut Ctx, from: usize) {
        for e in &mut ctx.out[from..] {
            self.put_content(e);
        }
    }

    /// `content` of one entry (its line), if a later stage reads it.
    fn put_content(&self, e: &mut Entry) {
        if self.extract {
            let line = Value::from(e.line.as_str());
            e.extracted.insert("content", line);
        }
    }
}

/// Cache of `labels + {stream="…"}` per input label set, so the derived set
/// is built once per stream, not per line. Bounded: cleared when it grows
/// past [`StreamLabels::MAX`] input sets (long-gone files).
#[derive(Default)]
pub(super) struct StreamLabels {
    last: Option<(LabelSet, [Option<LabelSet>; 2])>,
    map: crate::labels::LabelMap<[Option<LabelSet>; 2]>,
}

impl StreamLabels {
    const MAX: usize = 4096;

    pub(super) fn get(&mut self, input: &LabelSet, stream: Stream) -> LabelSet {
        let i = stream.index();
        if let Some((k, v)) = &self.last {
            if let (true, Some(out)) = (k == input, &v[i]) {
                return out.clone();
            }
        }
        if self.map.len() >= Self::MAX && !self.map.contains_key(input) {
            self.map.clear();
        }
        let slot = self.map.entry(input.clone()).or_default();
        let out = slot[i]
            .get_or_insert_with(|| input.with("stream", stream.as_str()))
            .clone();
        self.last = Some((input.clone(), slot.clone()));
        out
    }
}

/// Pieces held for one (labels, stream): one entry whose line is the join so
/// far and whose ack covers every piece.
struct Held {
    entry: Entry,
    pieces: usize,
    /// The line was cut: later pieces add acks, not bytes.
    truncated: bool,
    since: Instant,
    /// Arrival order, so flushes are deterministic.
    seq: u64,
}

/// Partial-line reassembly keyed by the entry's labels (which include
/// `stream` and `filename`). Bounded by `max_pieces` per key.
pub(super) struct Joiner {
    held: crate::labels::LabelMap<Held>,
    max_pieces: usize,
    /// 0 = no truncation.
    truncate_at: usize,
    seq: u64,
}

impl Joiner {
    pub(super) fn new(max_pieces: usize, truncate_at: usize) -> Self {
        Joiner {
            held: Default::default(),
            max_pieces: max_pieces.max(1),
            truncate_at,
            seq: 0,
        }
    }

    /// Nothing held: a full line would be emitted as it is.
    pub(super) fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    pub(super) fn held_pieces(&self) -> usize {
        self.held.values().map(|h| h.pieces).sum()
    }

    /// Adds one piece; `last` means it ends the line (`F`, or docker's `\n`).
    pub(super) fn push(&mut self, mut entry: Entry, last: bool, ctx: &mut Ctx) {
        // Fast path: a full line with nothing held for any stream.
        let held = if self.is_empty() {
            None
        } else {
            self.held.remove(&entry.labels)
        };
        let Some(mut h) = held else {
            if last {
                return ctx.emit(entry);
            }
            let truncated = truncate_to(&mut entry.line, self.truncate_at);
            return self.hold(entry, truncated, ctx);
        };
        let Entry {
            labels,
            timestamp,
            line,
            metadata,
            ack,
            extracted,
        } = entry;
        if let Err(ack) = h.entry.ack.merge(ack) {
            // Another tracker (the file was replaced): release what is held
            // and start over with this piece.
            ctx.emit(h.entry);
            let mut e = Entry::new(labels, timestamp, line, ack);
            e.metadata = metadata;
            e.extracted = extracted;
            return self.push(e, last, ctx);
        }
        // The joined entry is the last piece's, as Promtail's (its time,
        // flags, stream), with the lines before it in front.
        h.entry.extracted = extracted;
        if !h.truncated {
            h.truncated = append_limited(h.entry.line.make_mut(), &line, self.truncate_at);
        }
        h.entry.timestamp = timestamp;
        for (k, v) in metadata {
            if !h.entry.metadata.iter().any(|(hk, _)| *hk == k) {
                h.entry.metadata.push((k, v));
            }
        }
        h.pieces += 1;
        if last || h.pieces >= self.max_pieces {
            ctx.emit(h.entry);
        } else {
            self.held.insert(labels, h);
        }
    }

    fn hold(&mut self, entry: Entry, truncated: bool, ctx: &mut Ctx) {
        if self.max_pieces <= 1 {
            return ctx.emit(entry);
        }
        self.seq += 1;
        let h = Held {
            entry,
            pieces: 1,
            truncated,
            since: Instant::now(),
            seq: self.seq,
        };
        self.held.insert(h.entry.labels.clone(), h);
    }

    /// Emits everything held, oldest first.
    pub(super) fn flush(&mut self, ctx: &mut Ctx) {
        let mut all: Vec<Held> = self.held.drain().map(|(_, h)| h).collect();
        all.sort_by_key(|h| h.seq);
        for h in all {
            ctx.emit(h.entry);
        }
    }

    /// Emits the lines whose first piece has been held for `max_wait` or more.
    pub(super) fn flush_older(&mut self, now: Instant, max_wait: Duration, ctx: &mut Ctx) {
        if self.held.is_empty() {
            return;
        }
        let due: Vec<LabelSet> = self
            .held
            .iter()
            .filter(|(_, h)| now.saturating_duration_since(h.since) >= max_wait)
            .map(|(k, _)| k.clone())
            .collect();
        let mut out: Vec<Held> = due.iter().filter_map(|k| self.held.remove(k)).collect();
        out.sort_by_key(|h| h.seq);
        for h in out {
            ctx.emit(h.entry);
        }
    }
}

/// The largest char boundary of `s` that is ≤ `at`.
fn floor_boundary(s: &str, at: usize) -> usize {
    let mut i = at.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Cuts `line` to at most `max` bytes (0 = no limit); true if it was cut.
fn truncate_to(line: &mut Text, max: usize) -> bool {
    if max > 0 && line.len() > max {
        let at = floor_boundary(line, max);
        line.truncate(at);
        return true;
    }
    false
}

/// Appends `piece`, keeping `line` within `max` bytes (0 = no limit); true
/// if some of `piece` was left out.
fn append_limited(line: &mut String, piece: &str, max: usize) -> bool {
    let room = max.saturating_sub(line.len());
    if max == 0 || piece.len() <= room {
        line.push_str(piece);
        return false;
    }
    line.push_str(&piece[..floor_boundary(piece, room)]);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ack::{Ack, Position, Tracker};
    use crate::entry::Timestamp;

    type Harness = crate::pipeline::stages::test_harness::Harness<CriStage>;

    impl Harness {
        fn new(cfg: CriConfig) -> Self {
            Harness::of(
                CriStage::new(&cfg).unwrap(),
                LabelSet::new([("filename", "/var/log/pods/a/c/0.log"), ("job", "j")]),
            )
        }
    }

    const T1: &str = "2024-01-20T10:00:01Z";
    const T2: &str = "2024-01-20T10:00:02.5Z";
    const T3: &str = "2024-01-20T10:00:03.000000001+00:00";
    const S1: i64 = 1_705_744_801_000_000_000;
    const S2: i64 = 1_705_744_802_500_000_000;
    const S3: i64 = 1_705_744_803_000_000_001;

    #[test]
    fn full_line_gets_stream_label_timestamp_and_content() {
        let mut h = Harness::new(CriConfig::default());
        h.feed(&format!("{T1} stdout F hello world"));
        h.feed(&format!("{T2} stderr F oops"));
        assert_eq!(
            h.lines(),
            vec![
                ("hello world", Some("stdout"), S1),
                ("oops", Some("stderr"), S2)
            ]
        );
        assert_eq!(h.out[0].labels.get("job"), Some("j"));
        h.ack_all();
        assert_eq!(h.committed(), h.offset);
    }

    #[test]
    fn derived_label_sets_are_shared_not_rebuilt() {
        let mut s = StreamLabels::default();
        let a = LabelSet::new([("job", "a")]);
        let b = LabelSet::new([("job", "b")]);
        let x1 = s.get(&a, Stream::Stdout);
        let _ = s.get(&b, Stream::Stdout);
        let x2 = s.get(&a, Stream::Stdout);
        let e1 = s.get(&a, Stream::Stderr);
        assert_eq!(x1.get("stream"), Some("stdout"));
        assert_eq!(e1.get("stream"), Some("stderr"));
        // Same Arc: `with` on an identical set returns a clone of it.
        assert!(std::ptr::eq(
            x1.iter().next().unwrap().0,
            x2.iter().next().unwrap().0
        ));
    }

    #[test]
    fn partials_join_per_stream_with_interleaving_and_take_last_timestamp() {
        let mut h = Harness::new(CriConfig::default());
        h.feed(&format!("{T1} stdout P out-1 "));
        h.feed(&format!("{T1} stderr P err-1 "));
        h.feed(&format!("{T2} stdout P out-2 "));
        h.feed(&format!("{T2} stderr F err-2"));
        assert_eq!(h.lines(), vec![("err-1 err-2", Some("stderr"), S2)]);
        assert_eq!(h.stage.held_pieces(), 2);
        h.feed(&format!("{T3} stdout F out-3"));
        assert_eq!(
            h.lines(),
            vec![
                ("err-1 err-2", Some("stderr"), S2),
                ("out-1 out-2 out-3", Some("stdout"), S3)
            ]
        );
        assert_eq!(h.stage.held_pieces(), 0);
    }

    #[test]
    fn positions_never_pass_a_held_piece() {
        let mut h = Harness::new(CriConfig::default());
        h.feed(&format!("{T1} stdout F a")); // 1
        let after_first = h.offset;
        h.feed(&format!("{T1} stdout P b1")); // 2, held
        h.feed(&format!("{T1} stderr F e")); // 3
        h.ack_all(); // acks 1 and 3
        assert_eq!(
            h.committed(),
            after_first,
            "held P piece blocks the position"
        );
        h.feed(&format!("{T2} stdout F b2")); // 4, joined with 2
        assert_eq!(h.lines(), vec![("b1b2", Some("stdout"), S2)]);
        h.ack_all();
        assert_eq!(h.committed(), h.offset);
        assert!(h.tracker.is_drained());
    }

    /// What a harness's output shows: line, labels, time and the
    /// extracted fields, in order.
    fn shown(h: &Harness) -> Vec<String> {
        h.out
            .iter()
            .map(|e| {
                let x: Vec<String> = e
                    .extracted
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                format!(
                    "{:?} {} {} {x:?}",
                    e.line.as_str(),
                    e.labels.render(),
                    e.timestamp.0
                )
            })
            .collect()
    }

    proptest::proptest! {
        /// The engine's in-place path gives what `process` gives: fed the
        /// same lines (full, partial, not CRI, two streams), a stage that
        /// is offered each line through `try_edit` first emits the same
        /// entries with the same extracted fields, holds the same pieces
        /// after every line, and commits the same offsets.
        #[test]
        fn try_edit_is_process_where_it_takes_the_line(
            lines in proptest::collection::vec(
                (0u8..4, proptest::bool::ANY, "[a-z ]{0,5}"), 0..40),
            extract in proptest::bool::ANY,
            max_partial_lines in 0usize..4,
        ) {
            let cfg = CriConfig { max_partial_lines, ..CriConfig::default() };
            let (mut a, mut b) = (Harness::new(cfg.clone()), Harness::new(cfg));
            a.stage.downstream_uses_extracted(extract);
            b.stage.downstream_uses_extracted(extract);
            for (kind, err, text) in &lines {
                let stream = if *err { "stderr" } else { "stdout" };
                let line = match kind {
                    0 => format!("{T1} {stream} P {text}"),
                    1 => format!("not cri {text}"),
                    _ => format!("{T2} {stream} F {text}"),
                };
                a.feed(&line);
                let mut e = b.entry(&line);
                if b.stage.try_edit(&mut e) {
                    b.out.push(e);
                } else {
                    b.stage.process(e, &mut Ctx::new(&mut b.out, &b.metrics));
                }
                proptest::prop_assert_eq!(a.stage.held_pieces(), b.stage.held_pieces());
            }
            a.flush();
            b.flush();
            proptest::prop_assert_eq!(shown(&a), shown(&b));
            a.ack_all();
            b.ack_all();
            proptest::prop_assert_eq!(a.committed(), b.committed());
        }
    }

    #[test]
    fn try_edit_takes_full_lines_only_while_nothing_is_held() {
        let mut h = Harness::new(CriConfig::default());
        let mut full = h.entry(&format!("{T1} stdout F one"));
        assert!(h.stage.try_edit(&mut full));
        assert_eq!((full.line.as_str(), full.timestamp.0), ("one", S1));
        assert_eq!(full.labels.get("stream"), Some("stdout"));
        // A partial piece is refused untouched, and once it is held even a
        // full line of another stream goes through `process`.
        let mut part = h.entry(&format!("{T1} stderr P two"));
        assert!(!h.stage.try_edit(&mut part));
        assert_eq!(part.line.as_str(), format!("{T1} stderr P two"));
        h.stage.process(part, &mut Ctx::new(&mut h.out, &h.metrics));
        let mut other = h.entry(&format!("{T2} stdout F three"));
        assert!(!h.stage.try_edit(&mut other));
        assert_eq!(other.line.as_str(), format!("{T2} stdout F three"));
        full.ack.ack();
        other.ack.ack();
    }

    #[test]
    fn max_partial_lines_flushes_everything_held_for_the_stream() {
        let mut h = Harness::new(CriConfig {
            max_partial_lines: 3,
            ..CriConfig::default()
        });
        for i in 0..7 {
            h.feed(&format!("{T1} stdout P {i}"));
        }
        h.feed(&format!("{T1} stderr P e"));
        assert_eq!(
            h.lines().iter().map(|l| l.0).collect::<Vec<_>>(),
            vec!["012", "345"]
        );
        assert_eq!(h.stage.held_pieces(), 2);
        h.feed(&format!("{T2} stdout F end"));
        assert_eq!(h.out[2].line, "6end");
        h.flush();
        assert_eq!(h.out[3].line, "e");
        assert_eq!(h.out[3].labels.get("stream"), Some("stderr"));
        h.ack_all();
        assert_eq!(h.committed(), h.offset);
    }

    #[test]
    fn max_partial_lines_of_one_emits_each_piece() {
        let mut h = Harness::new(CriConfig {
            max_partial_lines: 1,
            ..CriConfig::default()
        });
        h.feed(&format!("{T1} stdout P a"));
        h.feed(&format!("{T1} stdout F b"));
        assert_eq!(
            h.lines().iter().map(|l| l.0).collect::<Vec<_>>(),
            ["a", "b"]
        );
    }

    #[test]
    fn truncation_cuts_the_joined_line_on_a_char_boundary() {
        let mut h = Harness::new(CriConfig {
            max_partial_line_size: 5,
            max_partial_line_size_truncate: true,
            ..CriConfig::default()
        });
        h.feed(&format!("{T1} stdout P abc"));
        h.feed(&format!("{T1} stdout P déf")); // 'é' is 2 bytes: "abcd" + 'é' = 6 > 5
        h.feed(&format!("{T1} stdout F ghi"));
        h.feed(&format!("{T1} stdout P 1234567"));
        h.feed(&format!("{T1} stdout F 8"));
        // A single F with nothing held is not truncated (as Promtail).
        h.feed(&format!("{T1} stdout F 123456789"));
        assert_eq!(
            h.lines().iter().map(|l| l.0).collect::<Vec<_>>(),
            ["abcd", "12345", "123456789"]
        );
        h.ack_all();
        assert_eq!(h.committed(), h.offset);
    }

    #[test]
    fn size_without_truncate_is_inert_and_truncate_without_size_is_an_error() {
        let mut h = Harness::new(CriConfig {
            max_partial_line_size: 2,
            ..CriConfig::default()
        });
        h.feed(&format!("{T1} stdout P abc"));
        h.feed(&format!("{T1} stdout F def"));
        assert_eq!(h.out[0].line, "abcdef");
        let err = CriStage::new(&CriConfig {
            max_partial_line_size_truncate: true,
            ..CriConfig::default()
        })
        .err()
        .unwrap();
        assert!(err.contains("max_partial_line_size"), "{err}");
    }

    #[test]
    fn malformed_lines_pass_through_unchanged() {
        let mut h = Harness::new(CriConfig::default());
        h.feed(&format!("{T1} stdout P held"));
        for l in ["plain text", "a b c", &format!("{T1} stdin F x"), ""] {
            h.feed(l);
        }
        assert_eq!(
            h.lines(),
            vec![
                ("plain text", None, 7),
                ("a b c", None, 7),
                (&*format!("{T1} stdin F x"), None, 7),
                ("", None, 7)
            ]
        );
        assert_eq!(h.out[0].labels, h.labels);
        // The held piece is unaffected.
        h.feed(&format!("{T1} stdout F !"));
        assert_eq!(h.out[4].line, "held!");
    }

    #[test]
    fn unparseable_timestamp_still_decodes_and_keeps_read_time() {
        let mut h = Harness::new(CriConfig::default());
        h.feed("yesterday stdout F text");
        assert_eq!(h.lines(), vec![("text", Some("stdout"), 7)]);
    }

    #[test]
    fn flush_emits_held_pieces_in_arrival_order() {
        let mut h = Harness::new(CriConfig::default());
        h.feed(&format!("{T1} stderr P e1"));
        h.feed(&format!("{T2} stdout P o1"));
        h.feed(&format!("{T3} stderr P e2"));
        assert!(h.out.is_empty());
        h.flush();
        assert_eq!(
            h.lines(),
            vec![("e1e2", Some("stderr"), S3), ("o1", Some("stdout"), S2)]
        );
        h.ack_all();
        assert_eq!(h.committed(), h.offset);
    }

    #[test]
    fn pieces_of_another_tracker_are_not_merged_but_nothing_is_lost() {
        let mut h = Harness::new(CriConfig::default());
        h.feed(&format!("{T1} stdout P old"));
        let t2 = Tracker::new(Position::Offset(0));
        let e = Entry::new(
            h.labels.clone(),
            Timestamp(7),
            format!("{T2} stdout F new").into(),
            t2.issue(Position::Offset(3)),
        );
        h.stage.process(e, &mut Ctx::new(&mut h.out, &h.metrics));
        assert_eq!(
            h.lines().iter().map(|l| l.0).collect::<Vec<_>>(),
            ["old", "new"]
        );
        h.ack_all();
        assert_eq!(h.committed(), h.offset);
        assert_eq!(t2.committed(), Position::Offset(3));
    }

    #[test]
    fn untracked_pieces_merge_into_a_tracked_one() {
        let mut h = Harness::new(CriConfig::default());
        let mut ctx_out = Vec::new();
        let e = Entry::new(
            h.labels.clone(),
            Timestamp(7),
            format!("{T1} stdout P a").into(),
            Ack::none(),
        );
        h.stage.process(e, &mut Ctx::new(&mut ctx_out, &h.metrics));
        h.feed(&format!("{T1} stdout F b"));
        assert_eq!(h.out[0].line, "ab");
        h.ack_all();
        assert_eq!(h.committed(), h.offset);
    }

    fn piece_strategy() -> impl proptest::strategy::Strategy<Value = (u8, bool, bool, String)> {
        use proptest::prelude::*;
        // (kind: 0..8 CRI piece, 8 garbage; stderr?; partial?; content)
        (0u8..9, any::<bool>(), any::<bool>(), "[a-zé ]{0,6}")
    }

    proptest::proptest! {
        /// Model: per stream, the emitted lines concatenated equal the
        /// pieces' contents concatenated; garbage passes through; after a
        /// flush and acking every output, the position is at the end.
        #[test]
        fn reassembly_matches_model_and_commits_everything(
            pieces in proptest::collection::vec(piece_strategy(), 0..60),
            max in 1usize..6,
        ) {
            let mut h = Harness::new(CriConfig { max_partial_lines: max, ..CriConfig::default() });
            let mut want = [String::new(), String::new()];
            let mut garbage = Vec::new();
            for (kind, err, partial, content) in &pieces {
                if *kind == 8 {
                    let g = format!("garbage {content}");
                    garbage.push(g.clone());
                    h.feed(&g);
                    continue;
                }
                let stream = if *err { "stderr" } else { "stdout" };
                want[usize::from(*err)].push_str(content);
                let tag = if *partial { "P" } else { "F" };
                h.feed(&format!("{T1} {stream} {tag} {content}"));
            }
            h.flush();
            let mut got = [String::new(), String::new()];
            let mut got_garbage = Vec::new();
            for e in &h.out {
                match e.labels.get("stream") {
                    Some("stdout") => got[0].push_str(&e.line),
                    Some("stderr") => got[1].push_str(&e.line),
                    _ => got_garbage.push(e.line.clone()),
                }
            }
            proptest::prop_assert_eq!(&got, &want);
            proptest::prop_assert_eq!(got_garbage, garbage);
            proptest::prop_assert_eq!(h.stage.held_pieces(), 0);
            h.ack_all();
            proptest::prop_assert_eq!(h.committed(), h.offset);
        }

        #[test]
        fn arbitrary_bytes_never_panic(lines in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80), 0..20)) {
            let mut h = Harness::new(CriConfig { max_partial_line_size: 7, max_partial_line_size_truncate: true, ..CriConfig::default() });
            for l in &lines {
                h.feed(&String::from_utf8_lossy(l));
            }
            h.flush();
            h.ack_all();
            proptest::prop_assert_eq!(h.committed(), h.offset);
        }
    }

    #[test]
    fn config_yaml_forms() {
        let c: CriConfig = serde_yaml_ng::from_str("{}").unwrap();
        assert_eq!(c, CriConfig::default());
        let c: CriConfig =
            serde_yaml_ng::from_str("{max_partial_lines: 50, max_partial_line_size: 256KB, max_partial_line_size_truncate: true}")
                .unwrap();
        assert_eq!(c.max_partial_lines, 50);
        assert_eq!(c.max_partial_line_size, 256_000);
        assert!(serde_yaml_ng::from_str::<CriConfig>("{max_partial_line: 5}").is_err());
        assert!(serde_yaml_ng::from_str::<CriConfig>("{max_partial_lines: -1}").is_err());
    }
}
