//! The `docker` stage: Promtail's `- docker: {}`.
//!
//! Owns: [`DockerConfig`] (no options) and [`DockerStage`].
//!
//! What it does: a json-file line (see [`crate::source::docker`]) gets the
//! `stream` label, the `time` as its timestamp, and the `log` text as its
//! line — with the trailing `\n` kept, as Promtail v3.6 keeps it. A line that
//! does not decode (not JSON, a required field missing, a bad stream or time)
//! passes through unchanged: Promtail's docker stage is json + labels +
//! timestamp + output stages, and on malformed JSON each of them leaves the
//! entry alone.
//!
//! Beyond Promtail: docker splits lines longer than 16 KiB into pieces and
//! only the last one ends in `\n`. Pieces without a trailing `\n` are joined
//! per (labels, stream) with the same `Joiner` as the `cri` stage: the
//! joined entry takes the last piece's timestamp and carries every piece's
//! acknowledgement. Bounds: at most [`MAX_PIECES`] pieces (1.6 MiB at docker's
//! split size) are joined into one line; and since the last output of a
//! program that never writes `\n` would otherwise wait for the next line of
//! its stream, a line held longer than [`MAX_WAIT`] is emitted as it is on
//! the next [`tick`](Stage::tick). Docker writes a split line's pieces
//! together, so neither bound splits a real line in practice.
//!
//! Must never: drop a piece's acknowledgement, hold pieces without bound, or
//! rebuild a label set per line.

use super::cri::{Joiner, StreamLabels};
use crate::entry::Entry;
use crate::pipeline::{Ctx, Stage, Value};
use crate::source::docker;
use serde::Deserialize;
use std::time::{Duration, Instant};

/// Pieces joined into one line at most.
pub const MAX_PIECES: usize = 100;
/// How long an unterminated piece waits for its continuation.
pub const MAX_WAIT: Duration = Duration::from_secs(5);

/// `docker:` takes no options.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DockerConfig {}

/// The stage. See the module docs.
pub struct DockerStage {
    labels: StreamLabels,
    joiner: Joiner,
    /// A later stage reads the extracted map: leave `output`, `stream` and
    /// `timestamp` there, as Promtail's docker stage does.
    extract: bool,
}

impl DockerStage {
    pub fn new(_cfg: &DockerConfig) -> Self {
        DockerStage {
            labels: StreamLabels::default(),
            joiner: Joiner::new(MAX_PIECES, 0),
            extract: false,
        }
    }

    /// Pieces currently held (all streams).
    pub fn held_pieces(&self) -> usize {
        self.joiner.held_pieces()
    }
}

impl Stage for DockerStage {
    fn name(&self) -> &'static str {
        "docker"
    }

    fn uses_extracted(&self) -> bool {
        false
    }

    fn process(&mut self, mut entry: Entry, ctx: &mut Ctx) {
        let d = match docker::decode(entry.line.as_bytes()) {
            Ok(d) => d,
            Err(_) => return ctx.emit(entry),
        };
        let (timestamp, stream) = (d.timestamp, d.stream);
        let line = d.log.into_owned();
        let last = line.ends_with('\n');
        if self.extract {
            let mut ts = String::new();
            timestamp.write_rfc3339_nano(&mut ts);
            entry.extracted.insert("timestamp", Value::from(ts));
            entry
                .extracted
                .insert("stream", Value::from(stream.as_str()));
        }
        entry.line = line.into();
        entry.timestamp = timestamp;
        entry.labels = self.labels.get(&entry.labels, stream);
        let from = ctx.out.len();
        self.joiner.push(entry, last, ctx);
        self.set_output(ctx, from);
    }

    fn downstream_uses_extracted(&mut self, yes: bool) {
        self.extract = yes;
    }

    fn tick(&mut self, now: Instant, ctx: &mut Ctx) {
        let from = ctx.out.len();
        self.joiner.flush_older(now, MAX_WAIT, ctx);
        self.set_output(ctx, from);
    }

    fn flush(&mut self, ctx: &mut Ctx) {
        let from = ctx.out.len();
        self.joiner.flush(ctx);
        self.set_output(ctx, from);
    }
}

impl DockerStage {
    /// `output` of the entries emitted since `from`: the (joined) line.
    fn set_output(&self, ctx: &mut Ctx, from: usize) {
        if self.extract {
            for e in &mut ctx.out[from..] {
                let line = Value::from(e.line.as_str());
                e.extracted.insert("output", line);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::entry::Timestamp;
    use crate::labels::LabelSet;

    type Harness = crate::pipeline::stages::test_harness::Harness<DockerStage>;

    impl Harness {
        fn new() -> Self {
            Harness::of(
                DockerStage::new(&DockerConfig::default()),
                LabelSet::new([("filename", "/var/lib/docker/x-json.log")]),
            )
        }

        fn piece(&mut self, log: &str, stream: &str, sec: u32) {
            let log = serde_json::to_string(log).unwrap();
            self.feed(&format!(
                r#"{{"log":{log},"stream":"{stream}","time":"2016-10-20T18:39:{sec:02}Z"}}"#
            ));
        }
    }

    const T0: i64 = 1_476_988_740_000_000_000; // 2016-10-20T18:39:00Z

    fn at(sec: i64) -> i64 {
        T0 + sec * 1_000_000_000
    }

    #[test]
    fn decodes_keeps_newline_and_sets_stream_and_time() {
        let mut h = Harness::new();
        h.feed(r#"{"log":"text\n","stream":"stdout","time":"2016-10-20T18:39:20.57606443Z"}"#);
        h.piece("err \"q\"\n", "stderr", 21);
        assert_eq!(
            h.lines(),
            vec![
                ("text\n", Some("stdout"), 1_476_988_760_576_064_430),
                ("err \"q\"\n", Some("stderr"), at(21))
            ]
        );
        h.ack_all();
        assert_eq!(h.committed(), h.offset);
    }

    #[test]
    fn split_pieces_join_per_stream_and_hold_the_position() {
        let mut h = Harness::new();
        h.piece("first\n", "stdout", 1);
        let after_first = h.offset;
        h.piece("aaa", "stdout", 2);
        h.piece("EEE", "stderr", 3);
        h.piece("bbb", "stdout", 4);
        h.piece("!\n", "stderr", 5);
        h.ack_all();
        assert_eq!(h.committed(), after_first);
        h.piece("ccc\n", "stdout", 6);
        assert_eq!(h.lines(), vec![("aaabbbccc\n", Some("stdout"), at(6))]);
        h.ack_all();
        assert_eq!(h.committed(), h.offset);
        assert_eq!(h.stage.held_pieces(), 0);
    }

    #[test]
    fn piece_cap_and_flush() {
        let mut h = Harness::new();
        for _ in 0..MAX_PIECES + 1 {
            h.piece("x", "stdout", 1);
        }
        assert_eq!(h.out.len(), 1);
        assert_eq!(h.out[0].line.len(), MAX_PIECES);
        assert_eq!(h.stage.held_pieces(), 1);
        h.stage.flush(&mut Ctx::new(&mut h.out, &h.metrics));
        assert_eq!(h.out[1].line, "x");
        h.ack_all();
        assert_eq!(h.committed(), h.offset);
    }

    #[test]
    fn unterminated_last_line_is_released_by_tick_after_max_wait() {
        let mut h = Harness::new();
        h.piece("no newline at exit", "stdout", 1);
        let now = Instant::now();
        h.stage.tick(now, &mut Ctx::new(&mut h.out, &h.metrics));
        assert!(h.out.is_empty());
        h.stage.tick(
            now + MAX_WAIT + Duration::from_millis(1),
            &mut Ctx::new(&mut h.out, &h.metrics),
        );
        assert_eq!(
            h.lines(),
            vec![("no newline at exit", Some("stdout"), at(1))]
        );
        h.ack_all();
        assert_eq!(h.committed(), h.offset);
    }

    #[test]
    fn malformed_lines_pass_through_unchanged() {
        let mut h = Harness::new();
        for l in [
            "not json",
            r#"{"log":"x\n"}"#,
            r#"{"log":"x\n","stream":"stdin","time":"2016-10-20T18:39:20Z"}"#,
            r#"{"log":"x\n","stream":"stdout","time":"never"}"#,
        ] {
            h.feed(l);
            assert_eq!(h.out.last().unwrap().line, l);
            assert_eq!(h.out.last().unwrap().labels, h.labels);
            assert_eq!(h.out.last().unwrap().timestamp, Timestamp(7));
        }
        h.ack_all();
        assert_eq!(h.committed(), h.offset);
    }

    #[test]
    fn config_takes_no_options() {
        assert!(serde_yaml_ng::from_str::<DockerConfig>("{}").is_ok());
        assert!(serde_yaml_ng::from_str::<DockerConfig>("{x: 1}").is_err());
    }
}
