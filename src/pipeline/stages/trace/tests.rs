use super::super::labels::test_support::*;
use super::super::test_harness::Harness;
use super::*;
use crate::metrics::Metrics;
use crate::pipeline::Ctx;
use std::sync::Arc;

const T: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const S: &str = "00f067aa0ba902b7";

fn cfg(yaml: &str) -> Config {
    serde_yaml_ng::from_str(yaml).unwrap()
}

fn stage(yaml: &str) -> Box<dyn Stage> {
    build(Some(&cfg(yaml)), &ctx()).unwrap().unwrap()
}

#[test]
fn ids_become_structured_metadata_not_labels() {
    let mut h = harness(stage("{}"), &[("job", "ns/app")]);
    let line = format!("level=info trace_id={T} span_id={S} msg=ok");
    let e = run_line(&mut h, &line, serde_json::json!({}));
    assert_eq!(md(&e), [("trace_id", T), ("span_id", S)]);
    assert_eq!(e.labels, h.labels);
    assert_eq!(e.line, line, "the line is unchanged");
    assert!(
        e.extracted.get("trace_id").is_none(),
        "no later stage reads it"
    );
    e.ack.ack();
    let e = run_line(&mut h, "no context here", serde_json::json!({}));
    assert!(e.metadata.is_empty());
    e.ack.ack();
    assert_eq!(h.committed(), h.offset);
}

/// A traced line's names and IDs are held in place: marking it allocates
/// nothing beyond its metadata `Vec`, and no reference count is shared
/// with the thread that frees it. A name too long for that is the stage's
/// own string, shared by every line it marks.
#[test]
fn marked_lines_hold_their_ids_in_place_and_share_long_names() {
    let mut h = harness(stage("{}"), &[]);
    let e = run_line(
        &mut h,
        &format!("trace_id={T} span_id={S}"),
        serde_json::json!({}),
    );
    assert_eq!(e.metadata.len(), 2);
    assert_eq!(
        e.metadata.capacity(),
        2,
        "no room held for pairs never added"
    );
    assert!(e
        .metadata
        .iter()
        .all(|(k, v)| k.is_inline() && v.is_inline()));
    e.ack.ack();
    let e = run_line(&mut h, &format!("trace_id={T}"), serde_json::json!({}));
    assert_eq!((e.metadata.len(), e.metadata.capacity()), (1, 1));
    e.ack.ack();
    let long = "a_structured_metadata_name_longer_than_forty_bytes";
    let mut h = harness(stage(&format!("{{trace_id_name: {long}}}")), &[]);
    let a = run_line(
        &mut h,
        &format!("trace_id={T} span_id={S}"),
        serde_json::json!({}),
    );
    let b = run_line(
        &mut h,
        &format!("traceparent=00-{T}-{S}-01"),
        serde_json::json!({}),
    );
    assert_eq!(md(&a), md(&b));
    assert_eq!(a.metadata[0].0, long);
    assert!(std::ptr::eq(
        a.metadata[0].0.as_str(),
        b.metadata[0].0.as_str()
    ));
    assert!(a.metadata[0].1.is_inline() && a.metadata[1].0.is_inline());
    a.ack.ack();
    b.ack.ack();
}

#[test]
fn names_are_configurable_and_the_span_is_optional() {
    let mut h = harness(stage("{trace_id_name: tid, span_id_name: sid}"), &[]);
    let e = run_line(
        &mut h,
        &format!("traceparent=00-{T}-{S}-01"),
        serde_json::json!({}),
    );
    assert_eq!(md(&e), [("tid", T), ("sid", S)]);
    e.ack.ack();
    let e = run_line(&mut h, &format!("trace_id={T}"), serde_json::json!({}));
    assert_eq!(md(&e), [("tid", T)]);
    e.ack.ack();
}

/// One line with structured metadata `md` already set through the stage.
fn run_with_metadata(h: &mut Harness<Boxed>, line: &str, md: (&str, &str)) -> Entry {
    h.offset += 1;
    let ack = h.tracker.issue(crate::ack::Position::Offset(h.offset));
    let mut e = Entry::new(
        h.labels.clone(),
        crate::entry::Timestamp(1),
        line.into(),
        ack,
    );
    e.metadata.push((md.0.into(), md.1.into()));
    h.stage.process(e, &mut Ctx::new(&mut h.out, &h.metrics));
    h.out.pop().unwrap()
}

#[test]
fn existing_metadata_is_left_alone() {
    let mut h = harness(stage("{}"), &[]);
    let line = format!("trace_id={T} span_id={S}");
    let e = run_with_metadata(&mut h, &line, ("trace_id", "set-before"));
    assert_eq!(md(&e), [("trace_id", "set-before")]);
    e.ack.ack();
    // Only the span name taken: the trace ID is added, the span is not.
    let e = run_with_metadata(&mut h, &line, ("span_id", "x"));
    assert_eq!(md(&e), [("span_id", "x"), ("trace_id", T)]);
    e.ack.ack();
}

#[test]
fn source_reads_an_extracted_value() {
    let mut h = harness(stage("{source: tid}"), &[]);
    // A bare ID in a named field counts.
    let e = run_line(&mut h, "line without", serde_json::json!({"tid": T}));
    assert_eq!(md(&e), [("trace_id", T)]);
    e.ack.ack();
    // The line itself is not read.
    let e = run_line(&mut h, &format!("trace_id={T}"), serde_json::json!({}));
    assert!(e.metadata.is_empty());
    e.ack.ack();
    let e = run_line(
        &mut h,
        "x",
        serde_json::json!({"tid": format!("00-{T}-{S}-01")}),
    );
    assert_eq!(md(&e), [("trace_id", T), ("span_id", S)]);
    e.ack.ack();
    assert!(h.stage.uses_extracted());
    assert!(!stage("{}").uses_extracted());
}

#[test]
fn formats_narrow_the_search() {
    let mut h = harness(stage("{formats: [b3, xray]}"), &[]);
    let e = run_line(&mut h, &format!("trace_id={T}"), serde_json::json!({}));
    assert!(e.metadata.is_empty());
    e.ack.ack();
    let e = run_line(&mut h, &format!("b3={T}-{S}"), serde_json::json!({}));
    assert_eq!(md(&e), [("trace_id", T), ("span_id", S)]);
    e.ack.ack();
}

#[test]
fn coverage_is_counted_per_job() {
    let metrics = Arc::new(Metrics::new());
    let bctx = BuildCtx::new(metrics.clone());
    let mut s = build(Some(&cfg("{}")), &bctx).unwrap().unwrap();
    let mut out = Vec::new();
    for (job, line) in [
        (Some("a"), format!("trace_id={T}")),
        (Some("a"), "plain".to_string()),
        (Some("a"), "plain".to_string()),
        (Some("b"), format!("00-{T}-{S}-01")),
        (None, "plain".to_string()),
    ] {
        let labels = match job {
            Some(j) => LabelSet::new([("job", j)]),
            None => LabelSet::empty(),
        };
        let e = Entry::new(
            labels,
            crate::entry::Timestamp(1),
            line.into(),
            crate::ack::Ack::none(),
        );
        s.process(e, &mut Ctx::new(&mut out, &metrics));
    }
    assert_eq!(out.len(), 5);
    let text = metrics.encode();
    for want in [
        r#"tailtrace_trace_context_lines_total{job="a",result="found"} 1"#,
        r#"tailtrace_trace_context_lines_total{job="a",result="missing"} 2"#,
        r#"tailtrace_trace_context_lines_total{job="b",result="found"} 1"#,
        r#"tailtrace_trace_context_lines_total{job="",result="missing"} 1"#,
    ] {
        assert!(text.contains(want), "{want}\n{text}");
    }
}

/// Streams that interleave (a file's stdout and stderr, several files of
/// a job, other jobs between) are each counted under their own job: the
/// stage's cache of recent streams never credits one stream's line to
/// another's counters.
#[test]
fn interleaved_streams_are_counted_under_their_own_jobs() {
    let metrics = Arc::new(Metrics::new());
    let bctx = BuildCtx::new(metrics.clone());
    let mut s = build(Some(&cfg("{}")), &bctx).unwrap().unwrap();
    let sets = [
        LabelSet::new([("job", "a"), ("stream", "stdout")]),
        LabelSet::new([("job", "a"), ("stream", "stderr")]),
        LabelSet::new([("job", "b"), ("stream", "stdout")]),
        LabelSet::new([("job", "c"), ("stream", "stdout")]),
    ];
    // (stream, traced?): runs, alternations, a third and fourth stream
    // pushing the others out of the cache and back.
    let seq = [
        (0, true),
        (0, false),
        (1, false),
        (0, true),
        (1, true),
        (2, false),
        (0, false),
        (3, true),
        (2, true),
        (1, false),
        (1, false),
        (3, false),
        (0, true),
        (2, false),
        (3, false),
        (0, false),
    ];
    let mut want = std::collections::BTreeMap::<(&str, &str), u64>::new();
    let mut out = Vec::new();
    for (i, traced) in seq {
        let line = if traced {
            format!("trace_id={T}")
        } else {
            "plain".into()
        };
        let job = sets[i].get("job").unwrap();
        *want
            .entry((job, if traced { "found" } else { "missing" }))
            .or_default() += 1;
        let e = Entry::new(
            sets[i].clone(),
            crate::entry::Timestamp(1),
            line.into(),
            crate::ack::Ack::none(),
        );
        s.process(e, &mut Ctx::new(&mut out, &metrics));
    }
    assert_eq!(out.len(), seq.len());
    let text = metrics.encode();
    for ((job, result), n) in want {
        let line = format!(
            "tailtrace_trace_context_lines_total{{job=\"{job}\",result=\"{result}\"}} {n}\n"
        );
        assert!(text.contains(&line), "{line}\n{text}");
    }
}

#[test]
fn config_defaults_and_errors() {
    let d = cfg("{}");
    assert_eq!(d, Config::default());
    assert_eq!(
        (d.trace_id_name.as_str(), d.span_id_name.as_str()),
        ("trace_id", "span_id")
    );
    assert!(d.enabled && d.formats.is_none() && d.source.is_none());
    assert!(build(None, &ctx()).unwrap().is_some());
    assert!(build(Some(&cfg("{enabled: false}")), &ctx())
        .unwrap()
        .is_none());
    let err = |yaml: &str| build(Some(&cfg(yaml)), &ctx()).err().unwrap();
    assert!(err("{trace_id_name: a.b}").contains("trace_id_name"));
    assert!(err("{span_id_name: \"\"}").contains("span_id_name"));
    assert!(err("{span_id_name: trace_id}").contains("differ"));
    assert!(err("{formats: [zipkin]}").contains("zipkin"));
    assert!(err("{formats: []}").contains("enabled: false"));
    assert!(err("{source: \"\"}").contains("source"));
    assert!(serde_yaml_ng::from_str::<Config>("{nope: 1}").is_err());
}

#[test]
fn yaml_stage_and_extracted_for_later_stages() {
    let v: Vec<super::super::StageConfig> =
        serde_yaml_ng::from_str("- trace:\n- trace: {formats: [w3c]}\n- labels: {t: trace_id}\n")
            .unwrap();
    assert!(v.iter().all(|s| s.unhonoured_name().is_none()));
    let mut p = super::super::build(&v, Arc::new(Metrics::new())).unwrap();
    assert_eq!(p.stage_names(), ["trace", "trace", "labels"]);
    let mut out = Vec::new();
    let e = Entry::new(
        LabelSet::empty(),
        crate::entry::Timestamp(1),
        format!("trace_id={T}").into(),
        crate::ack::Ack::none(),
    );
    p.process(e, &mut out);
    // The first stage found it; the second saw the metadata and left it;
    // the labels stage read it from the extracted map.
    assert_eq!(md(&out[0]), [("trace_id", T)]);
    assert_eq!(out[0].labels.get("t"), Some(T));
    let v: Vec<super::super::StageConfig> =
        serde_yaml_ng::from_str("- trace: {enabled: false}\n").unwrap();
    let p = super::super::build(&v, Arc::new(Metrics::new())).unwrap();
    assert!(p.is_empty());
}
