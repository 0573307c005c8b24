//! The `multiline` stage: Promtail's `- multiline: {firstline, max_wait_time,
//! max_lines}`, plus tailtrace's `mode` (built-in stack-trace detection, see
//! [`detect`]).
//!
//! Owns: [`Config`], [`MultilineStage`]: joining the lines of one record
//! (a log line and its stack trace) into one entry.
//!
//! What it does, as Promtail v3.6 does it:
//! - State is kept per stream — the entry's full label set, `filename`
//!   included, so a block never mixes two files or containers.
//! - A line matching `firstline` (unanchored, as Go's `MatchString`) starts
//!   a block and emits the block before it. Lines that do not match join
//!   the open block, separated by `\n`.
//! - Until a stream has seen its first `firstline` match, its lines pass
//!   through alone, unchanged (with their read time).
//! - A block is emitted when the next first line comes, when it holds
//!   `max_lines` lines (default 128; 0: no line limit, as Promtail's check
//!   `== max_lines` never fires then), when `max_wait_time` (default 3s)
//!   passes without a new line for the stream (on [`Stage::tick`]; even if
//!   no line ever comes again), and on [`Stage::flush`].
//! - After a `max_lines` split or a `max_wait_time` flush, the continuation
//!   lines that follow form their own block. Like Promtail, every block
//!   takes the labels, timestamp and extracted data of the stream's last
//!   first line — a leftover block too (Promtail keeps the start line's
//!   entry until the next one comes).
//!
//! tailtrace's additions and deliberate differences:
//! - `mode: java|go|python|dotnet|node|auto` instead of `firstline` (exactly
//!   one of the two): see [`detect`] for the rules. A stack-trace *header*
//!   (`Traceback (most recent call last):`, `java.lang.X: y`, `Error: z`,
//!   `goroutine 1 [running]:`) joins the open block, or starts a block when
//!   none is open — so an uncaught exception at the top of a file, or after
//!   `max_wait_time`, is still one record, with its own timestamp.
//! - A block's line is capped at [`MAX_BLOCK_BYTES`] (8 MiB, the tailer's
//!   default maximum line): a line that would push the block past it emits
//!   the block first and starts a leftover block, so nothing is cut.
//! - The joined entry keeps the first line's structured metadata (Promtail
//!   drops it).
//! - A started stream that has had nothing held for [`FORGET_AFTER`] is
//!   forgotten (files come and go); its next lines are treated as the
//!   lines of a new stream.
//! - Every line's [`Ack`](crate::ack::Ack) is merged into the block's, so a
//!   file position never passes a held line. A line of another tracker (the
//!   file was replaced under the same labels) cannot share an ack: the open
//!   block is emitted first and the line starts a leftover block.
//!
//! Must never: mix streams in a block, hold more than `max_lines` lines or
//! [`MAX_BLOCK_BYTES`] per stream, or drop a line's acknowledgement.

#[path = "multiline/detect.rs"]
pub mod detect;
#[cfg(test)]
#[path = "multiline/tests.rs"]
mod tests;

use super::BuildCtx;
use crate::entry::{Entry, Timestamp};
use crate::labels::{LabelMap, LabelSet};
use crate::pipeline::{Ctx, Extracted, Stage};
use crate::text::Text;
use detect::{Class, Mode, State};
use serde::Deserialize;
use std::time::{Duration, Instant};

/// Whether the stage runs.
pub const HONOURED: bool = true;

/// Default of `max_wait_time`.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(3);
/// Default of `max_lines`.
pub const DEFAULT_MAX_LINES: u64 = 128;
/// The most bytes a block's line holds (see the module docs).
pub const MAX_BLOCK_BYTES: usize = 8 * 1024 * 1024;
/// A stream with nothing held for this long is forgotten.
pub const FORGET_AFTER: Duration = Duration::from_secs(600);

/// `multiline:` options, with Promtail's names and defaults.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// RE2 regex matching the first line of a record.
    #[serde(default)]
    pub firstline: Option<String>,
    /// tailtrace: built-in detection instead of `firstline`.
    #[serde(default)]
    pub mode: Option<Mode>,
    #[serde(default = "default_max_wait", with = "crate::config::duration")]
    pub max_wait_time: Duration,
    #[serde(default = "default_max_lines")]
    pub max_lines: u64,
}

fn default_max_wait() -> Duration {
    DEFAULT_MAX_WAIT
}
fn default_max_lines() -> u64 {
    DEFAULT_MAX_LINES
}

/// Builds the stage; `- multiline:` without options is an error, as in
/// Promtail (`firstline` is required).
pub fn build(c: Option<&Config>, _ctx: &BuildCtx) -> Result<Option<Box<dyn Stage>>, String> {
    Ok(Some(Box::new(MultilineStage::new(c)?)))
}

const NO_FIRSTLINE: &str =
    "firstline: multiline stage config must define `firstline` regular expression (or tailtrace's `mode`)";

/// How first lines are recognised.
enum Detector {
    Regex(::regex::Regex),
    Mode(Mode),
}

/// The stage. See the module docs.
pub struct MultilineStage {
    detector: Detector,
    max_lines: u64,
    max_wait: Duration,
    streams: LabelMap<Stream>,
    seq: u64,
}

/// One stream's state.
struct Stream {
    block: Option<Block>,
    /// What every block of the stream takes from its last first line.
    template: Template,
    detect: State,
    /// When a line last came (or the stream last emitted on a tick).
    last: Instant,
}

struct Template {
    timestamp: Timestamp,
    extracted: Extracted,
    metadata: Vec<crate::entry::MetaPair>,
}

struct Block {
    /// The joined line so far; its ack covers every line.
    entry: Entry,
    lines: u64,
    /// Arrival order of the block's first line (deterministic emission).
    seq: u64,
}

impl MultilineStage {
    pub fn new(c: Option<&Config>) -> Result<Self, String> {
        let Some(c) = c else {
            return Err(NO_FIRSTLINE.into());
        };
        let detector = match (&c.firstline, c.mode) {
            (Some(_), Some(_)) => {
                return Err("firstline and mode are mutually exclusive: set one".into())
            }
            (None, None) => return Err(NO_FIRSTLINE.into()),
            (Some(re), None) => Detector::Regex(
                ::regex::Regex::new(re).map_err(|e| format!("firstline: invalid regex: {e}"))?,
            ),
            (None, Some(m)) => Detector::Mode(m),
        };
        Ok(MultilineStage {
            detector,
            max_lines: c.max_lines,
            max_wait: c.max_wait_time,
            streams: LabelMap::default(),
            seq: 0,
        })
    }

    /// Lines currently held (all streams).
    pub fn held_lines(&self) -> u64 {
        self.streams
            .values()
            .filter_map(|s| s.block.as_ref())
            .map(|b| b.lines)
            .sum()
    }

    /// Streams remembered (started).
    pub fn streams(&self) -> usize {
        self.streams.len()
    }

    fn classify(&self, line: &str, st: &mut State, open: bool) -> Class {
        match &self.detector {
            Detector::Regex(re) => {
                if re.is_match(line) {
                    Class::First
                } else {
                    Class::Continuation
                }
            }
            Detector::Mode(m) => m.classify(line, st, open),
        }
    }

    fn new_block(&mut self, entry: Entry) -> Block {
        self.seq += 1;
        Block {
            entry,
            lines: 1,
            seq: self.seq,
        }
    }

    /// Puts `b` back as the stream's block, or emits it if it is full.
    fn keep_or_emit(&self, s: &mut Stream, b: Block, ctx: &mut Ctx) {
        if self.max_lines != 0 && b.lines >= self.max_lines {
            ctx.emit(b.entry);
        } else {
            s.block = Some(b);
        }
    }
}

impl Template {
    fn of(e: &Entry) -> Self {
        Template {
            timestamp: e.timestamp,
            extracted: e.extracted.clone(),
            metadata: e.metadata.clone(),
        }
    }

    /// A leftover block's entry: the template's timestamp, extracted data
    /// and metadata, with `line` and `ack` of its first line.
    fn entry(&self, labels: LabelSet, line: Text, ack: crate::ack::Ack) -> Entry {
        let mut e = Entry::new(labels, self.timestamp, line, ack);
        e.extracted = self.extracted.clone();
        e.metadata = self.metadata.clone();
        e
    }
}

impl Stage for MultilineStage {
    fn name(&self) -> &'static str {
        "multiline"
    }

    fn uses_extracted(&self) -> bool {
        false
    }

    fn process(&mut self, entry: Entry, ctx: &mut Ctx) {
        let now = Instant::now();
        let Some(mut s) = self.streams.remove(&entry.labels) else {
            // Not started: pass through until a first line comes.
            let mut st = State::default();
            if self.classify(&entry.line, &mut st, false) != Class::First {
                return ctx.emit(entry);
            }
            let template = Template::of(&entry);
            let labels = entry.labels.clone();
            let block = self.new_block(entry);
            let mut s = Stream {
                block: None,
                template,
                detect: st,
                last: now,
            };
            self.keep_or_emit(&mut s, block, ctx);
            self.streams.insert(labels, s);
            return;
        };
        s.last = now;
        let open = s.block.is_some();
        let labels = entry.labels.clone();
        if self.classify(&entry.line, &mut s.detect, open) == Class::First {
            if let Some(b) = s.block.take() {
                ctx.emit(b.entry);
            }
            s.template = Template::of(&entry);
            let block = self.new_block(entry);
            self.keep_or_emit(&mut s, block, ctx);
            self.streams.insert(labels, s);
            return;
        }
        let Entry {
            labels: _,
            timestamp: _,
            line,
            metadata: _,
            ack,
            extracted: _,
        } = entry;
        let mut leftover = Some((line, ack));
        if let Some(mut b) = s.block.take() {
            if let Some((line, ack)) = leftover.take() {
                let fits = b.entry.line.len() + 1 + line.len() <= MAX_BLOCK_BYTES;
                let merged = if fits {
                    b.entry.ack.merge(ack)
                } else {
                    Err(ack)
                };
                match merged {
                    Ok(()) => {
                        let text = b.entry.line.make_mut();
                        text.push('\n');
                        text.push_str(&line);
                        b.lines += 1;
                        self.keep_or_emit(&mut s, b, ctx);
                    }
                    Err(ack) => {
                        // Too big, or another tracker: emit what is held.
                        ctx.emit(b.entry);
                        leftover = Some((line, ack));
                    }
                }
            }
        }
        if let Some((line, ack)) = leftover {
            let e = s.template.entry(labels.clone(), line, ack);
            let block = self.new_block(e);
            self.keep_or_emit(&mut s, block, ctx);
        }
        self.streams.insert(labels, s);
    }

    fn tick(&mut self, now: Instant, ctx: &mut Ctx) {
        if self.streams.is_empty() {
            return;
        }
        let mut due: Vec<Block> = Vec::new();
        let max_wait = self.max_wait;
        self.streams.retain(|_, s| {
            let quiet = now.saturating_duration_since(s.last);
            if s.block.is_some() {
                if quiet >= max_wait {
                    due.extend(s.block.take());
                    s.last = now;
                }
                return true;
            }
            quiet < FORGET_AFTER
        });
        due.sort_by_key(|b| b.seq);
        for b in due {
            ctx.emit(b.entry);
        }
    }

    fn flush(&mut self, ctx: &mut Ctx) {
        let mut all: Vec<Block> = self
            .streams
            .values_mut()
            .filter_map(|s| s.block.take())
            .collect();
        all.sort_by_key(|b| b.seq);
        for b in all {
            ctx.emit(b.entry);
        }
    }
}
