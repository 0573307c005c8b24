//! Table tests of the `multiline` stage, expectations from Promtail's
//! documented and observed behaviour (reference.md §5).

use super::*;
use crate::ack::{Ack, Position, Tracker};
use crate::metrics::Metrics;
use crate::pipeline::Value;
use std::sync::Arc;

type Harness = crate::pipeline::stages::test_harness::Harness<MultilineStage>;

const FILE_A: &str = "/var/log/pods/ns_a_1/c/0.log";
const FILE_B: &str = "/var/log/pods/ns_b_2/c/0.log";

fn labels(file: &str) -> LabelSet {
    LabelSet::new([("filename", file), ("job", "j")])
}

fn cfg(yaml: &str) -> Config {
    serde_yaml_ng::from_str(yaml).unwrap()
}

fn stage(yaml: &str) -> MultilineStage {
    MultilineStage::new(Some(&cfg(yaml))).unwrap()
}

fn harness(yaml: &str) -> Harness {
    Harness::of(stage(yaml), labels(FILE_A))
}

/// Feeds `line` of stream `file` with timestamp `ts`, as the tailer would
/// (one ack per line from the harness's tracker).
fn feed_at(h: &mut Harness, file: &str, line: &str, ts: i64) {
    h.offset += line.len() as u64 + 1;
    let ack = h.tracker.issue(Position::Offset(h.offset));
    let e = Entry::new(labels(file), Timestamp(ts), line.to_string().into(), ack);
    h.stage.process(e, &mut Ctx::new(&mut h.out, &h.metrics));
}

fn tick(h: &mut Harness, after: Duration) {
    let now = Instant::now() + after;
    h.stage.tick(now, &mut Ctx::new(&mut h.out, &h.metrics));
}

/// (line, timestamp) of every entry out so far.
fn out(h: &Harness) -> Vec<(&str, i64)> {
    h.out
        .iter()
        .map(|e| (e.line.as_str(), e.timestamp.0))
        .collect()
}

const DATE: &str = r"firstline: '^\d{4}-\d{2}-\d{2}'";

#[test]
fn config_defaults_and_yaml_forms() {
    let c = cfg("firstline: '^x'");
    assert_eq!(c.max_wait_time, Duration::from_secs(3));
    assert_eq!(c.max_lines, 128);
    assert_eq!(c.mode, None);
    let c = cfg("{firstline: x, max_wait_time: 500ms, max_lines: 5}");
    assert_eq!(c.max_wait_time, Duration::from_millis(500));
    assert_eq!(c.max_lines, 5);
    let c = cfg("{mode: python}");
    assert_eq!(c.mode, Some(Mode::Python));
    for m in ["java", "go", "python", "dotnet", "node", "auto"] {
        assert!(
            serde_yaml_ng::from_str::<Config>(&format!("mode: {m}")).is_ok(),
            "{m}"
        );
    }
    for bad in [
        "{firstline: x, max_line: 3}",
        "{mode: ruby}",
        "{firstline: x, max_wait_time: soon}",
        "{firstline: x, max_lines: -1}",
    ] {
        assert!(serde_yaml_ng::from_str::<Config>(bad).is_err(), "{bad}");
    }
}

#[test]
fn config_errors_name_the_key() {
    let cases: &[(Option<&str>, &str)] = &[
        (None, "firstline"),
        (Some("{max_lines: 3}"), "firstline"),
        (Some("{firstline: '('}"), "firstline: invalid regex"),
        (Some("{firstline: x, mode: java}"), "mutually exclusive"),
    ];
    for (yaml, want) in cases {
        let c = yaml.map(cfg);
        let e = MultilineStage::new(c.as_ref()).err().unwrap();
        assert!(e.contains(want), "{yaml:?}: {e}");
    }
    let ctx = BuildCtx::new(Arc::new(Metrics::new()));
    assert!(build(Some(&cfg("firstline: x")), &ctx).unwrap().is_some());
}

#[test]
fn blocks_join_with_newlines_and_take_the_first_lines_timestamp() {
    let mut h = harness(DATE);
    feed_at(&mut h, FILE_A, "2024-01-01 ERROR boom", 10);
    feed_at(&mut h, FILE_A, "  at a()", 11);
    feed_at(&mut h, FILE_A, "  at b()", 12);
    assert!(h.out.is_empty(), "held until the next first line");
    feed_at(&mut h, FILE_A, "2024-01-01 INFO next", 20);
    assert_eq!(out(&h), [("2024-01-01 ERROR boom\n  at a()\n  at b()", 10)]);
    assert_eq!(h.out[0].labels, labels(FILE_A));
    h.flush();
    assert_eq!(out(&h)[1], ("2024-01-01 INFO next", 20));
    h.ack_all();
    assert_eq!(h.committed(), h.offset);
    assert!(h.tracker.is_drained());
}

#[test]
fn firstline_is_unanchored_like_go_matchstring() {
    let mut h = harness(r"firstline: '\d{4}-'");
    feed_at(&mut h, FILE_A, "[2024-01-01] a", 1);
    feed_at(&mut h, FILE_A, "cont", 2);
    feed_at(&mut h, FILE_A, "level=info ts=2024-01-02", 3);
    assert_eq!(out(&h), [("[2024-01-01] a\ncont", 1)]);
}

#[test]
fn lines_before_any_first_line_pass_through_alone_with_read_time() {
    let mut h = harness(DATE);
    feed_at(&mut h, FILE_A, "\tat orphan()", 5);
    feed_at(&mut h, FILE_A, "more orphan", 6);
    assert_eq!(out(&h), [("\tat orphan()", 5), ("more orphan", 6)]);
    feed_at(&mut h, FILE_A, "2024-01-01 start", 7);
    feed_at(&mut h, FILE_A, "cont", 8);
    assert_eq!(h.out.len(), 2);
    assert_eq!(h.stage.held_lines(), 2);
    // Another stream has not started: its continuation passes through.
    feed_at(&mut h, FILE_B, "b orphan", 9);
    assert_eq!(out(&h)[2], ("b orphan", 9));
}

#[test]
fn interleaved_streams_never_mix() {
    let mut h = harness(DATE);
    feed_at(&mut h, FILE_A, "2024-01-01 A1", 1);
    feed_at(&mut h, FILE_B, "2024-01-01 B1", 2);
    feed_at(&mut h, FILE_A, "  a-cont", 3);
    feed_at(&mut h, FILE_B, "  b-cont", 4);
    feed_at(&mut h, FILE_B, "2024-01-01 B2", 5);
    feed_at(&mut h, FILE_A, "  a-cont2", 6);
    assert_eq!(out(&h), [("2024-01-01 B1\n  b-cont", 2)]);
    assert_eq!(h.out[0].labels, labels(FILE_B));
    h.flush();
    assert_eq!(
        out(&h)[1..],
        [
            ("2024-01-01 A1\n  a-cont\n  a-cont2", 1),
            ("2024-01-01 B2", 5)
        ]
    );
    assert_eq!(h.out[1].labels, labels(FILE_A));
    h.ack_all();
    assert_eq!(h.committed(), h.offset);
}

#[test]
fn max_lines_splits_and_leftovers_form_their_own_block() {
    let mut h = harness(&format!("{{{DATE}, max_lines: 3}}"));
    feed_at(&mut h, FILE_A, "2024-01-01 start", 1);
    for i in 0..4 {
        feed_at(&mut h, FILE_A, &format!("  c{i}"), 10 + i);
    }
    // Full at 3 lines: emitted at once; the rest is a leftover block with
    // the start line's timestamp (Promtail keeps the start line's entry).
    assert_eq!(out(&h), [("2024-01-01 start\n  c0\n  c1", 1)]);
    feed_at(&mut h, FILE_A, "  c4", 14);
    assert_eq!(out(&h)[1], ("  c2\n  c3\n  c4", 1));
    feed_at(&mut h, FILE_A, "2024-01-02 next", 20);
    h.flush();
    assert_eq!(out(&h)[2], ("2024-01-02 next", 20));
    h.ack_all();
    assert_eq!(h.committed(), h.offset);
}

#[test]
fn max_lines_one_and_zero() {
    let mut h = harness(&format!("{{{DATE}, max_lines: 1}}"));
    feed_at(&mut h, FILE_A, "2024-01-01 a", 1);
    feed_at(&mut h, FILE_A, "  b", 2);
    assert_eq!(out(&h), [("2024-01-01 a", 1), ("  b", 1)]);
    assert_eq!(h.stage.held_lines(), 0);
    // 0: Promtail's `currentLines == max_lines` never holds: no line limit.
    let mut h = harness(&format!("{{{DATE}, max_lines: 0}}"));
    feed_at(&mut h, FILE_A, "2024-01-01 a", 1);
    for _ in 0..300 {
        feed_at(&mut h, FILE_A, "  x", 2);
    }
    assert!(h.out.is_empty());
    assert_eq!(h.stage.held_lines(), 301);
}

#[test]
fn a_trace_ending_the_file_is_emitted_after_max_wait_time() {
    let mut h = harness(&format!("{{{DATE}, max_wait_time: 2s}}"));
    feed_at(&mut h, FILE_A, "2024-01-01 ERROR last words", 1);
    feed_at(&mut h, FILE_A, "  at x()", 2);
    feed_at(&mut h, FILE_B, "2024-01-01 B", 3);
    tick(&mut h, Duration::from_millis(500));
    assert!(h.out.is_empty(), "not yet due");
    tick(&mut h, Duration::from_secs(3));
    assert_eq!(
        out(&h),
        [
            ("2024-01-01 ERROR last words\n  at x()", 1),
            ("2024-01-01 B", 3)
        ]
    );
    assert_eq!(h.stage.held_lines(), 0);
    h.ack_all();
    assert_eq!(h.committed(), h.offset);
    // A continuation after the timeout flush forms its own block, with the
    // stream's last first line's timestamp.
    feed_at(&mut h, FILE_A, "  at late()", 9);
    feed_at(&mut h, FILE_A, "  at later()", 10);
    assert!(h.out.is_empty());
    h.flush();
    assert_eq!(out(&h), [("  at late()\n  at later()", 1)]);
}

#[test]
fn max_wait_time_is_counted_from_the_streams_last_line() {
    let mut h = harness(&format!("{{{DATE}, max_wait_time: 1s}}"));
    feed_at(&mut h, FILE_A, "2024-01-01 a", 1);
    feed_at(&mut h, FILE_A, "  b", 2);
    tick(&mut h, Duration::from_millis(900));
    assert!(h.out.is_empty());
    tick(&mut h, Duration::from_millis(1100));
    assert_eq!(out(&h), [("2024-01-01 a\n  b", 1)]);
}

#[test]
fn idle_streams_are_forgotten() {
    let mut h = harness(DATE);
    feed_at(&mut h, FILE_A, "2024-01-01 a", 1);
    tick(&mut h, Duration::from_secs(4));
    assert_eq!(h.stage.streams(), 1, "started streams are remembered");
    tick(&mut h, FORGET_AFTER + Duration::from_secs(5));
    assert_eq!(h.stage.streams(), 0);
    // Forgotten: a continuation passes through alone again.
    feed_at(&mut h, FILE_A, "  x", 2);
    assert_eq!(out(&h)[1], ("  x", 2));
}

#[test]
fn flush_emits_every_block_in_arrival_order() {
    let mut h = harness(DATE);
    feed_at(&mut h, FILE_B, "2024-01-01 b", 1);
    feed_at(&mut h, FILE_A, "2024-01-01 a", 2);
    feed_at(&mut h, FILE_B, " b2", 3);
    h.flush();
    assert_eq!(out(&h), [("2024-01-01 b\n b2", 1), ("2024-01-01 a", 2)]);
    h.flush();
    assert_eq!(h.out.len(), 2, "nothing left after a flush");
}

#[test]
fn positions_never_pass_a_held_line() {
    let mut h = harness(DATE);
    feed_at(&mut h, FILE_A, "passes", 1);
    let after_first = h.offset;
    feed_at(&mut h, FILE_A, "2024-01-01 held", 2);
    feed_at(&mut h, FILE_A, "  held too", 3);
    h.ack_all();
    assert_eq!(h.committed(), after_first);
    feed_at(&mut h, FILE_A, "2024-01-01 next", 4);
    h.ack_all();
    let before_next = h.offset - "2024-01-01 next\n".len() as u64;
    assert_eq!(h.committed(), before_next);
    h.flush();
    h.ack_all();
    assert_eq!(h.committed(), h.offset);
    assert!(h.tracker.is_drained());
}

#[test]
fn a_line_of_another_tracker_is_not_merged_and_nothing_is_lost() {
    let mut h = harness(DATE);
    feed_at(&mut h, FILE_A, "2024-01-01 old file", 1);
    let t2 = Tracker::new(Position::Offset(0));
    let e = Entry::new(
        labels(FILE_A),
        Timestamp(5),
        "  new file cont".into(),
        t2.issue(Position::Offset(16)),
    );
    h.stage.process(e, &mut Ctx::new(&mut h.out, &h.metrics));
    assert_eq!(out(&h), [("2024-01-01 old file", 1)]);
    h.flush();
    assert_eq!(out(&h)[1], ("  new file cont", 1));
    h.ack_all();
    assert_eq!(h.committed(), h.offset);
    assert_eq!(t2.committed(), Position::Offset(16));
    // Untracked lines merge into a tracked block.
    let mut h = harness(DATE);
    feed_at(&mut h, FILE_A, "2024-01-01 a", 1);
    let e = Entry::new(labels(FILE_A), Timestamp(5), " b".into(), Ack::none());
    h.stage.process(e, &mut Ctx::new(&mut h.out, &h.metrics));
    h.flush();
    assert_eq!(out(&h), [("2024-01-01 a\n b", 1)]);
    h.ack_all();
    assert_eq!(h.committed(), h.offset);
}

#[test]
fn a_block_never_grows_past_the_byte_cap() {
    let mut h = harness(&format!("{{{DATE}, max_lines: 0}}"));
    let big = format!(" {}", "x".repeat(MAX_BLOCK_BYTES / 2));
    feed_at(&mut h, FILE_A, "2024-01-01 a", 1);
    feed_at(&mut h, FILE_A, &big, 2);
    feed_at(&mut h, FILE_A, &big, 3);
    assert_eq!(h.out.len(), 1);
    assert_eq!(h.out[0].line.len(), "2024-01-01 a\n".len() + big.len());
    h.flush();
    assert_eq!(h.out[1].line, big);
    assert_eq!(h.out[1].timestamp, Timestamp(1));
    h.ack_all();
    assert_eq!(h.committed(), h.offset);
}

#[test]
fn blocks_keep_the_first_lines_extracted_data_and_metadata() {
    let mut h = harness(&format!("{{{DATE}, max_lines: 2}}"));
    let mut e = Entry::new(
        labels(FILE_A),
        Timestamp(1),
        "2024-01-01 a".into(),
        Ack::none(),
    );
    e.extracted.insert("level", Value::from("error"));
    e.metadata.push(("trace_id".into(), "abc".into()));
    h.stage.process(e, &mut Ctx::new(&mut h.out, &h.metrics));
    let mut c = Entry::new(labels(FILE_A), Timestamp(2), " b".into(), Ack::none());
    c.extracted.insert("level", Value::from("ignored"));
    h.stage.process(c, &mut Ctx::new(&mut h.out, &h.metrics));
    feed_at(&mut h, FILE_A, " leftover", 3);
    h.flush();
    assert_eq!(out(&h), [("2024-01-01 a\n b", 1), (" leftover", 1)]);
    for e in &h.out {
        assert_eq!(e.extracted.get_string("level").as_deref(), Some("error"));
        assert_eq!(e.metadata, [crate::entry::meta_pair("trace_id", "abc")]);
    }
    h.ack_all();
}

#[test]
fn mode_joins_stack_traces_without_a_regex() {
    let mut h = harness("mode: auto");
    let lines = [
        "Traceback (most recent call last):",
        "  File \"/app/x.py\", line 1, in <module>",
        "ValueError: at the top of the file",
        "2024-01-01 10:00:00 ERROR failed",
        "java.lang.IllegalStateException: boom",
        "\tat com.example.App.main(App.java:10)",
        "2024-01-01 10:00:01 INFO fine",
    ];
    for (i, l) in lines.iter().enumerate() {
        feed_at(&mut h, FILE_A, l, i as i64);
    }
    h.flush();
    assert_eq!(
        out(&h),
        [
            (&*lines[..3].join("\n"), 0),
            (&*lines[3..6].join("\n"), 3),
            (lines[6], 6)
        ]
    );
    // A header after a max_wait flush starts a new block with its own time.
    let mut h = harness("{mode: java, max_wait_time: 1s}");
    feed_at(&mut h, FILE_A, "2024-01-01 a", 1);
    tick(&mut h, Duration::from_secs(2));
    feed_at(&mut h, FILE_A, "java.lang.RuntimeException: late", 5);
    feed_at(&mut h, FILE_A, "\tat X.y(X.java:1)", 6);
    h.flush();
    assert_eq!(
        out(&h),
        [
            ("2024-01-01 a", 1),
            ("java.lang.RuntimeException: late\n\tat X.y(X.java:1)", 5)
        ]
    );
    h.ack_all();
    assert_eq!(h.committed(), h.offset);
}

#[test]
fn built_pipeline_emits_on_tick() {
    let v: Vec<crate::pipeline::stages::StageConfig> =
        serde_yaml_ng::from_str("- multiline:\n    firstline: '^\\d'\n    max_wait_time: 1s\n")
            .unwrap();
    assert!(v[0].unhonoured_name().is_none());
    let mut p = crate::pipeline::stages::build(&v, Arc::new(Metrics::new())).unwrap();
    assert_eq!(p.stage_names(), ["multiline"]);
    let mut o = Vec::new();
    for l in ["1 a", " b"] {
        p.process(
            Entry::new(labels(FILE_A), Timestamp(1), l.into(), Ack::none()),
            &mut o,
        );
    }
    assert!(o.is_empty());
    p.tick(Instant::now() + Duration::from_secs(2), &mut o);
    assert_eq!(o.len(), 1);
    assert_eq!(o[0].line, "1 a\n b");
    for e in o {
        e.ack.ack();
    }
    let v: Vec<crate::pipeline::stages::StageConfig> =
        serde_yaml_ng::from_str("- multiline:\n").unwrap();
    let e = crate::pipeline::stages::build(&v, Arc::new(Metrics::new()))
        .err()
        .unwrap();
    assert!(
        e.starts_with("pipeline_stages[0].multiline: firstline"),
        "{e}"
    );
}

fn line_strategy() -> impl proptest::strategy::Strategy<Value = (bool, bool, String)> {
    use proptest::prelude::*;
    // (stream B?, first line?, content)
    (any::<bool>(), any::<bool>(), "[a-z ]{0,5}")
}

proptest::proptest! {
    /// Model: per stream, the emitted lines split on `\n` give back the
    /// input lines in order; every block holds at most `max_lines` lines;
    /// after a flush and acking everything, the position is at the end.
    #[test]
    fn blocks_partition_each_stream_in_order(
        input in proptest::collection::vec(line_strategy(), 0..80),
        max in 0u64..5,
    ) {
        let mut h = harness(&format!("{{firstline: '^F', max_lines: {max}}}"));
        let mut want: [Vec<String>; 2] = Default::default();
        for (i, (b, first, content)) in input.iter().enumerate() {
            let line = format!("{}{content}", if *first { "F" } else { "c" });
            want[usize::from(*b)].push(line.clone());
            feed_at(&mut h, if *b { FILE_B } else { FILE_A }, &line, i as i64);
            if i % 17 == 16 {
                tick(&mut h, Duration::from_secs(5));
            }
        }
        h.flush();
        let mut got: [Vec<String>; 2] = Default::default();
        for e in &h.out {
            let b = e.labels.get("filename") == Some(FILE_B);
            let n = e.line.split('\n').count() as u64;
            proptest::prop_assert!(max == 0 || n <= max);
            got[usize::from(b)].extend(e.line.split('\n').map(str::to_string));
        }
        proptest::prop_assert_eq!(got, want);
        proptest::prop_assert_eq!(h.stage.held_lines(), 0);
        h.ack_all();
        proptest::prop_assert_eq!(h.committed(), h.offset);
    }
}
