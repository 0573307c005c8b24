//! Tests of the `replace` stage; expectations follow Promtail's documented
//! examples and the behaviour of its `getReplacedEntry` (with the adjacent
//! groups fix, grafana/loki#4874).

use super::*;
use crate::ack::Ack;
use crate::entry::Timestamp;
use crate::labels::LabelSet;
use crate::metrics::Metrics;
use crate::pipeline::stages::test_harness::Harness;
use crate::pipeline::Ctx;
use std::sync::Arc;

const LOG: &str = r#"11.11.11.11 - frank [25/Jan/2000:14:00:01 -0500] "GET /1986.js HTTP/1.1" 200 932 "-" "Mozilla/5.0""#;

fn stage(yaml: &str) -> Result<ReplaceStage, String> {
    let c: Config = serde_yaml_ng::from_str(yaml).map_err(|e| e.to_string())?;
    ReplaceStage::new(&c)
}

fn harness(yaml: &str) -> Harness<ReplaceStage> {
    Harness::of(stage(yaml).unwrap(), LabelSet::empty())
}

fn feed_with(h: &mut Harness<ReplaceStage>, line: &str, extracted: &[(&str, Value)]) {
    let mut e = Entry::new(LabelSet::empty(), Timestamp(1), line.into(), Ack::none());
    for (k, v) in extracted {
        e.extracted.insert(k, v.clone());
    }
    h.stage.process(e, &mut Ctx::new(&mut h.out, &h.metrics));
}

fn line(h: &Harness<ReplaceStage>) -> &str {
    &h.out.last().unwrap().line
}

fn got(h: &Harness<ReplaceStage>, k: &str) -> Option<Value> {
    h.out.last().unwrap().extracted.get(k).cloned()
}

#[test]
fn replaces_the_capture_group_in_the_line() {
    let mut h = harness(r#"{expression: '11.11.11.11 - (\S+) .*', replace: dummy}"#);
    h.feed(LOG);
    assert_eq!(line(&h), LOG.replace("frank", "dummy"));
    assert!(h.out[0].extracted.is_empty());
}

#[test]
fn empty_or_absent_replace_removes_the_group() {
    for yaml in [
        r#"{expression: '11.11.11.11 - (\S+\s)', replace: ''}"#,
        r#"{expression: '11.11.11.11 - (\S+\s)'}"#,
    ] {
        let mut h = harness(yaml);
        h.feed(LOG);
        assert_eq!(line(&h), LOG.replace("frank ", ""), "{yaml}");
    }
}

#[test]
fn every_match_and_adjacent_groups_are_replaced() {
    let mut h = harness(r#"{expression: '(\d+)', replace: N}"#);
    h.feed("a1b22c333d");
    assert_eq!(line(&h), "aNbNcNd");
    let mut h = harness("{expression: '(a|b|c)', replace: ''}");
    h.feed("abc");
    assert_eq!(line(&h), "");
    let mut h = harness("{expression: '(a)(b)', replace: X}");
    h.feed("zabz");
    assert_eq!(line(&h), "zXXz");
}

#[test]
fn named_groups_store_the_replaced_value_nested_groups_stay() {
    let mut h = harness(
        r#"{expression: '^(?P<ip_user>(?P<ip>\S+) - (?P<user>\S+)) \[', replace: '<{{ .Value }}>'}"#,
    );
    h.feed(LOG);
    // The outer group is replaced; the groups inside it are not, but their
    // replaced values are extracted.
    assert_eq!(
        line(&h),
        LOG.replace("11.11.11.11 - frank", "<11.11.11.11 - frank>")
    );
    assert_eq!(
        got(&h, "ip_user"),
        Some(Value::from("<11.11.11.11 - frank>"))
    );
    assert_eq!(got(&h, "ip"), Some(Value::from("<11.11.11.11>")));
    assert_eq!(got(&h, "user"), Some(Value::from("<frank>")));
}

#[test]
fn named_groups_come_from_the_first_match_only() {
    let mut h = harness(r#"{expression: '(?P<n>\d+)', replace: '#{{ .Value }}'}"#);
    h.feed("1 and 2");
    assert_eq!(line(&h), "#1 and #2");
    assert_eq!(got(&h, "n"), Some(Value::from("#1")));
}

#[test]
fn a_named_group_outside_the_first_match() {
    // Set only if some capture was empty (Promtail looks "" up in its map of
    // replacements).
    let mut h = harness("{expression: '(?P<a>x)|(?P<b>y)', replace: R}");
    h.feed("y");
    assert_eq!(line(&h), "R");
    assert_eq!(got(&h, "b"), Some(Value::from("R")));
    assert_eq!(got(&h, "a"), None);
    let mut h = harness("{expression: '(?P<a>x)|(?P<b>y)(?P<c>z*)', replace: '[{{ .Value }}]'}");
    h.feed("y");
    assert_eq!(line(&h), "[y][]");
    assert_eq!(got(&h, "a"), Some(Value::from("[]")));
    assert_eq!(got(&h, "c"), Some(Value::from("[]")));
}

#[test]
fn templates_read_extracted_values() {
    let mut h = harness(
        r#"{expression: 'user=(\S+)', replace: '{{ .Value }}@{{.tenant}}/{{ .missing }}/{{ .nul }}/{{ .n }}'}"#,
    );
    feed_with(
        &mut h,
        "user=bob x",
        &[
            ("tenant", Value::from("acme")),
            ("nul", Value::Null),
            ("n", Value::from(1.5)),
            ("Value", Value::from("shadowed")),
        ],
    );
    assert_eq!(line(&h), "user=bob@acme/<no value>/<no value>/1.5 x");
}

#[test]
fn trim_markers_and_comments() {
    let mut h = harness(
        "{expression: '(b)', replace: \"  {{- /* c */ -}}  [{{- .Value -}}]  {{/* x */}}\"}",
    );
    h.feed("abc");
    assert_eq!(line(&h), "a[b]  c");
}

#[test]
fn source_rewrites_the_extracted_value_not_the_line() {
    let mut h = harness(
        r#"{expression: '\S+ - "POST (\S+) .*', source: msg, replace: '/loki/api/v1/push/'}"#,
    );
    feed_with(
        &mut h,
        "the line",
        &[(
            "msg",
            Value::from(r#"1.1.1.1 - "POST /loki/api/push/ HTTP/1.1" 200"#),
        )],
    );
    assert_eq!(line(&h), "the line");
    assert_eq!(
        got(&h, "msg"),
        Some(Value::from(
            r#"1.1.1.1 - "POST /loki/api/v1/push/ HTTP/1.1" 200"#
        ))
    );
    // A number source is matched as its Go string and stored as a string,
    // even when no group changes it.
    let mut h = harness(r#"{expression: '\d', source: n}"#);
    feed_with(&mut h, "l", &[("n", Value::from(42.0))]);
    assert_eq!(got(&h, "n"), Some(Value::from("42")));
}

#[test]
fn skipped_when_the_source_is_absent_or_null_or_nothing_matches() {
    let mut h = harness("{expression: '(a)', source: s, replace: X}");
    h.feed("aaa");
    assert_eq!(line(&h), "aaa");
    assert!(h.out[0].extracted.is_empty());
    feed_with(&mut h, "aaa", &[("s", Value::Null)]);
    assert_eq!(got(&h, "s"), Some(Value::Null));
    let mut h = harness("{expression: '(?P<g>z)', replace: X}");
    h.feed("aaa");
    assert_eq!(line(&h), "aaa");
    assert!(h.out[0].extracted.is_empty());
    // A match without groups changes nothing.
    let mut h = harness("{expression: 'a', replace: X}");
    h.feed("aaa");
    assert_eq!(line(&h), "aaa");
    h.ack_all();
    assert_eq!(h.committed(), h.offset);
}

#[test]
fn unsupported_templates_and_bad_config_are_build_errors() {
    for (yaml, want) in [
        ("{}", "expression is required"),
        ("{expression: ''}", "expression is required"),
        (
            "{expression: '(a)', source: ''}",
            "source must not be empty",
        ),
        (
            "{expression: '(?P<ts[0-9]+).*'}",
            "expression: could not compile regular expression",
        ),
        (
            "{expression: '(a)', replace: '{{ ToUpper .Value }}'}",
            "replace: template action {{ ToUpper .Value }} is not supported",
        ),
        (
            "{expression: '(a)', replace: '{{ .Value | ToUpper }}'}",
            "replace: template action",
        ),
        (
            "{expression: '(a)', replace: '{{ if .Value }}x{{ end }}'}",
            "replace: template action",
        ),
        (
            "{expression: '(a)', replace: '{{ . }}'}",
            "replace: template action",
        ),
        (
            "{expression: '(a)', replace: '{{ .a.b }}'}",
            "replace: template action",
        ),
        (
            "{expression: '(a)', replace: '{{ .Value '}",
            "replace: template: unclosed action",
        ),
        (
            "{expression: '(a)', replace: '{{/* x }}'}",
            "replace: template: unclosed comment",
        ),
    ] {
        let e = stage(yaml).err().unwrap();
        assert!(e.starts_with(want), "{yaml}: {e}");
    }
    assert!(serde_yaml_ng::from_str::<Config>("{expression: a, replacement: b}").is_err());
    let ctx = BuildCtx::new(Arc::new(Metrics::new()));
    assert_eq!(build(None, &ctx).err().unwrap(), "expression is required");
}

#[test]
fn template_parsing() {
    use Piece::*;
    assert_eq!(Template::parse("").unwrap(), Template(vec![]));
    assert_eq!(
        Template::parse("a{{.Value}}b{{ .k_1 }}").unwrap(),
        Template(vec![
            Text("a".into()),
            Value,
            Text("b".into()),
            Key("k_1".into())
        ])
    );
    // `}}` alone and single braces are text.
    assert_eq!(
        Template::parse("{x} }}").unwrap(),
        Template(vec![Text("{x} }}".into())])
    );
}

proptest::proptest! {
    /// With a template that gives back the captured text, the line never
    /// changes, whatever the text.
    #[test]
    fn identity_template_keeps_the_line(s in "\\PC{0,40}") {
        let mut h = harness(r#"{expression: '(\w+)|(\s*)', replace: '{{ .Value }}'}"#);
        h.feed(&s);
        proptest::prop_assert_eq!(line(&h), s.as_str());
    }
}
