//! Tests of the `json` stage; expectations follow Promtail v3.6's observed
//! behaviour (reference §5) and Go's `encoding/json`/json-iterator output.

use super::*;
use crate::ack::Ack;
use crate::entry::Timestamp;
use crate::labels::LabelSet;
use crate::metrics::Metrics;
use crate::pipeline::extracted::to_go_string;
use crate::pipeline::stages::test_harness::Harness;
use std::sync::Arc;

fn stage(yaml: &str) -> Result<JsonStage, String> {
    let c: Config = serde_yaml_ng::from_str(yaml).map_err(|e| e.to_string())?;
    JsonStage::new(&c)
}

fn harness(yaml: &str) -> Harness<JsonStage> {
    Harness::of(stage(yaml).unwrap(), LabelSet::empty())
}

/// Feeds `line` with `extracted` already in the map.
fn feed_with(h: &mut Harness<JsonStage>, line: &str, extracted: &[(&str, Value)]) {
    let mut e = Entry::new(LabelSet::empty(), Timestamp(1), line.into(), Ack::none());
    for (k, v) in extracted {
        e.extracted.insert(k, v.clone());
    }
    h.stage.process(e, &mut Ctx::new(&mut h.out, &h.metrics));
}

/// The last entry's extracted value `k` as Promtail's getString renders it
/// (`None`: absent; `Some("<null>")`: null).
fn got(h: &Harness<JsonStage>, k: &str) -> Option<String> {
    let v = h.out.last().unwrap().extracted.get(k)?;
    Some(to_go_string(v).unwrap_or_else(|| "<null>".into()))
}

fn dropped(h: &Harness<JsonStage>) -> u64 {
    let text = h.metrics.encode();
    text.lines()
        .find(|l| l.starts_with("logentry_dropped_lines_total{reason=\"malformed_json\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn values_are_stored_as_promtail_stores_them() {
    let mut h = harness(
        "{expressions: {s: s, n: n, f: f, e: e, big: big, t: t, z: z, obj: obj, arr: arr, neg0: neg0}}",
    );
    h.feed(
        r#"{"s":"text","n":42,"f":0.25,"e":1.5e3,"big":9007199254740993,"t":true,"z":null,
            "obj":{"b":1,"a":"<x&y>"},"arr":[1,2.5,"x",null,1e21,1e-7],"neg0":-0}"#
            .replace('\n', " ")
            .as_str(),
    );
    assert_eq!(got(&h, "s").as_deref(), Some("text"));
    assert_eq!(got(&h, "n").as_deref(), Some("42"));
    assert_eq!(got(&h, "f").as_deref(), Some("0.25"));
    assert_eq!(got(&h, "e").as_deref(), Some("1500"));
    assert_eq!(got(&h, "big").as_deref(), Some("9007199254740992"));
    assert_eq!(got(&h, "t").as_deref(), Some("true"));
    assert_eq!(got(&h, "z").as_deref(), Some("<null>"));
    assert_eq!(h.out[0].extracted.get("z"), Some(&Value::Null));
    // Objects and arrays: Go's json.Marshal text (HTML-escaped, Go floats).
    assert_eq!(
        got(&h, "obj").as_deref(),
        Some(r#"{"a":"\u003cx\u0026y\u003e","b":1}"#)
    );
    assert_eq!(
        got(&h, "arr").as_deref(),
        Some(r#"[1,2.5,"x",null,1e+21,1e-7]"#)
    );
    assert_eq!(got(&h, "neg0").as_deref(), Some("-0"));
    // Numbers are f64, whatever their JSON form.
    assert_eq!(h.out[0].extracted.get("n"), Some(&Value::from(42.0)));
    assert_eq!(h.out[0].line.chars().next(), Some('{'), "line unchanged");
}

#[test]
fn empty_or_null_expression_means_the_name() {
    let mut h = harness("{expressions: {level: '', msg: , app: 'kubernetes.labels.app'}}");
    h.feed(r#"{"level":"warn","msg":"m","kubernetes":{"labels":{"app":"web"}}}"#);
    assert_eq!(got(&h, "level").as_deref(), Some("warn"));
    assert_eq!(got(&h, "msg").as_deref(), Some("m"));
    assert_eq!(got(&h, "app").as_deref(), Some("web"));
}

#[test]
fn jmespath_expressions_work_and_missing_paths_give_null() {
    let mut h = harness(
        r#"{expressions: {first: 'items[0].id', n: 'length(items)', ids: 'items[*].id', missing: 'nope.deeper', quoted: '"my-key"'}}"#,
    );
    h.feed(r#"{"items":[{"id":"a"},{"id":"b"}],"my-key":"q"}"#);
    assert_eq!(got(&h, "first").as_deref(), Some("a"));
    assert_eq!(got(&h, "n").as_deref(), Some("2"));
    assert_eq!(got(&h, "ids").as_deref(), Some(r#"["a","b"]"#));
    assert_eq!(got(&h, "missing").as_deref(), Some("<null>"));
    assert_eq!(got(&h, "quoted").as_deref(), Some("q"));
}

#[test]
fn a_runtime_error_sets_nothing_for_that_name() {
    let mut h = harness("{expressions: {bad: 'length(n)', ok: 's'}}");
    h.feed(r#"{"n":5,"s":"x"}"#);
    assert_eq!(got(&h, "bad"), None);
    assert_eq!(got(&h, "ok").as_deref(), Some("x"));
}

#[test]
fn non_objects_extract_nothing_and_pass_without_drop_malformed() {
    let mut h = harness("{expressions: {a: a}}");
    for line in [
        "plain text",
        "",
        "   ",
        "[1,2]",
        "\"str\"",
        "42",
        "true",
        r#"{"a":1} trailing"#,
        r#"{"a":1"#,
        r#"{"a":01}"#,
        r#"{"a":1e400}"#,
        r#"{'a':1}"#,
        r#"{"a":"x\q"}"#,
    ] {
        h.feed(line);
        assert_eq!(h.out.last().unwrap().line, line);
        assert!(h.out.last().unwrap().extracted.is_empty(), "{line:?}");
    }
    assert_eq!(h.out.len(), 13);
    assert_eq!(dropped(&h), 0);
}

#[test]
fn drop_malformed_drops_and_counts_non_objects() {
    let mut h = harness("{expressions: {a: a}, drop_malformed: true}");
    h.feed(r#"{"a":"kept"}"#);
    h.feed("not json");
    h.feed("[1]");
    h.feed(r#"  {"a":"kept too"}  "#);
    let lines: Vec<_> = h.out.iter().map(|e| e.line.as_str()).collect();
    assert_eq!(lines, [r#"{"a":"kept"}"#, r#"  {"a":"kept too"}  "#]);
    assert_eq!(dropped(&h), 2);
    h.ack_all();
    assert_eq!(h.committed(), h.offset, "dropped entries are acknowledged");
}

#[test]
fn the_literal_null_is_a_document_whose_paths_are_null() {
    let mut h = harness("{expressions: {a: a}, drop_malformed: true}");
    h.feed(" null ");
    assert_eq!(h.out.len(), 1);
    assert_eq!(got(&h, "a").as_deref(), Some("<null>"));
}

#[test]
fn source_is_decoded_instead_of_the_line() {
    let mut h = harness("{expressions: {user: 'user'}, source: payload, drop_malformed: true}");
    feed_with(
        &mut h,
        "not json",
        &[("payload", Value::from(r#"{"user":"bob"}"#))],
    );
    assert_eq!(got(&h, "user").as_deref(), Some("bob"));
    // Absent or null source: skipped, never dropped.
    feed_with(&mut h, r#"{"user":"line"}"#, &[]);
    assert_eq!(got(&h, "user"), None);
    feed_with(&mut h, r#"{"user":"line"}"#, &[("payload", Value::Null)]);
    assert_eq!(got(&h, "user"), None);
    assert_eq!(h.out.len(), 3);
    // A source that is not JSON is dropped, as the reference observed.
    feed_with(
        &mut h,
        r#"{"user":"line"}"#,
        &[("payload", Value::from("oops"))],
    );
    assert_eq!(h.out.len(), 3);
    // A number source reads as its Go string: not an object.
    feed_with(&mut h, "x", &[("payload", Value::from(1.0))]);
    assert_eq!(h.out.len(), 3);
    assert_eq!(dropped(&h), 2);
}

#[test]
fn strings_decode_like_json_iterator() {
    let mut h = harness("{expressions: {a: a}}");
    // Escapes, surrogate pairs, lone surrogates → U+FFFD.
    h.feed(r#"{"a":"q\"b\\s\/\b\f\n\r\t\u00e9\ud83d\ude00\ud800x"}"#);
    assert_eq!(
        got(&h, "a").as_deref(),
        Some("q\"b\\s/\u{8}\u{c}\n\r\té😀\u{fffd}x")
    );
    // Raw control character: refused before any escape, accepted after one.
    h.feed("{\"a\":\"x\ty\"}");
    assert_eq!(got(&h, "a"), None);
    h.feed("{\"a\":\"\\\"x\ty\"}");
    assert_eq!(got(&h, "a").as_deref(), Some("\"x\ty"));
    // Duplicate keys: the last wins.
    h.feed(r#"{"a":"1","a":"2"}"#);
    assert_eq!(got(&h, "a").as_deref(), Some("2"));
    // Non-ASCII text passes through.
    h.feed(r#"{"a":"héllo ✓"}"#);
    assert_eq!(got(&h, "a").as_deref(), Some("héllo ✓"));
}

#[test]
fn marshalled_text_escapes_like_go() {
    let mut h = harness("{expressions: {o: o}}");
    h.feed("{\"o\":{\"k\":\"a\\u2028b\\u0001\\n\\\"\\\\é\",\"e\":{},\"l\":[]}}");
    assert_eq!(
        got(&h, "o").as_deref(),
        Some(r#"{"e":{},"k":"a\u2028b\u0001\n\"\\é","l":[]}"#)
    );
}

#[test]
fn go_float_forms() {
    for (f, want) in [
        (1.0, "1"),
        (0.5, "0.5"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (1.5e300, "1.5e+300"),
        (1e-6, "0.000001"),
        (1e-7, "1e-7"),
        (-2.5e-10, "-2.5e-10"),
        (0.0, "0"),
    ] {
        assert_eq!(go_json_float(f), want, "{f}");
    }
}

#[test]
fn nesting_deeper_than_the_limit_is_malformed() {
    let mut h = harness("{expressions: {a: a}}");
    let ok = format!(
        "{{\"a\":{}1{}}}",
        "[".repeat(MAX_DEPTH - 1),
        "]".repeat(MAX_DEPTH - 1)
    );
    h.feed(&ok);
    assert!(got(&h, "a").is_some());
    let deep = format!(
        "{{\"a\":{}1{}}}",
        "[".repeat(MAX_DEPTH),
        "]".repeat(MAX_DEPTH)
    );
    h.feed(&deep);
    assert_eq!(got(&h, "a"), None);
}

#[test]
fn config_errors_name_the_key() {
    for (yaml, want) in [
        ("{}", "expressions: at least one"),
        ("{expressions: {}}", "expressions: at least one"),
        (
            "{expressions: {a: a}, source: ''}",
            "source must not be empty",
        ),
        (
            "{expressions: {lvl: 'a.['}}",
            "expressions.lvl: could not compile JMES expression",
        ),
        (
            "{expressions: {'my-key': ''}}",
            "expressions.my-key: could not compile",
        ),
    ] {
        let e = stage(yaml).err().unwrap();
        assert!(e.starts_with(want), "{yaml}: {e}");
        assert!(!e.contains('\n'), "{e}");
    }
    assert!(serde_yaml_ng::from_str::<Config>("{expressions: {a: a}, drop: true}").is_err());
    let ctx = BuildCtx::new(Arc::new(Metrics::new()));
    assert!(build(None, &ctx).is_err());
    let c: Config = serde_yaml_ng::from_str("{expressions: {a: a}}").unwrap();
    assert!(!c.drop_malformed, "drop_malformed defaults to false");
    assert!(build(Some(&c), &ctx).unwrap().is_some());
}

#[test]
fn the_stage_is_send() {
    fn is_send<T: Send>() {}
    is_send::<JsonStage>();
}

proptest::proptest! {
    /// Whatever the line, the entry comes out (or is counted as dropped),
    /// and anything serde_json reads as an object decodes here too, with
    /// the same strings.
    #[test]
    fn never_loses_an_entry(line in "\\PC{0,40}", drop in proptest::bool::ANY) {
        let mut h = harness(&format!("{{expressions: {{a: a}}, drop_malformed: {drop}}}"));
        h.feed(&line);
        proptest::prop_assert_eq!(h.out.len() as u64 + dropped(&h), 1);
        let is_obj = matches!(serde_json::from_str::<serde_json::Value>(&line), Ok(serde_json::Value::Object(_)));
        if is_obj {
            proptest::prop_assert_eq!(h.out.len(), 1);
        }
    }

    #[test]
    fn objects_round_trip_string_values(k in "[a-z]{1,5}", v in "\\PC{0,20}") {
        let mut h = harness(&format!("{{expressions: {{x: '\"{k}\"'}}}}"));
        let line = serde_json::json!({ k.clone(): v.clone() }).to_string();
        h.feed(&line);
        proptest::prop_assert_eq!(got(&h, "x"), Some(v));
    }
}
