//! The template stage against Promtail's documented examples and Go's
//! `text/template`/sprig semantics. Expected values come from the docs,
//! the Go sources' rules, and independently computed digests.

use super::super::labels::test_support::*;
use super::*;
use crate::labels::LabelSet;
use crate::pipeline::Ctx;

fn cfg(source: &str, template: &str) -> Config {
    Config {
        source: Some(source.into()),
        template: Some(template.into()),
    }
}

/// Runs one entry; the extracted value at `source` afterwards (`None`:
/// absent) and whether the extracted map is unchanged.
fn run_full(
    template: &str,
    source: &str,
    extracted: serde_json::Value,
    line: &str,
) -> (Option<String>, bool) {
    let stage = build(Some(&cfg(source, template)), &ctx())
        .unwrap_or_else(|e| panic!("{template}: {e}"))
        .unwrap();
    let mut h = harness(stage, &[("job", "j")]);
    let before = {
        let mut e = crate::pipeline::Extracted::default();
        e.seed(&h.labels);
        if let serde_json::Value::Object(m) = &extracted {
            for (k, v) in m {
                e.insert(k, v.clone());
            }
        }
        e
    };
    let e = run_line(&mut h, line, extracted);
    let out = e.extracted.get_string(source);
    let unchanged = e.extracted == before;
    assert_eq!(e.line, line, "the line is never changed");
    assert_eq!(e.labels, h.labels, "labels are never changed");
    e.ack.ack();
    (out, unchanged)
}

fn run(template: &str, extracted: serde_json::Value) -> Option<String> {
    run_full(template, "out", extracted, "the line").0
}

fn run_v(template: &str, value: &str) -> Option<String> {
    run_full(template, "v", serde_json::json!({ "v": value }), "the line").0
}

fn build_err(template: &str) -> String {
    build(Some(&cfg("out", template)), &ctx()).err().unwrap()
}

#[test]
fn documented_examples() {
    assert_eq!(
        run("hello world!", serde_json::json!({})).as_deref(),
        Some("hello world!")
    );
    let (v, _) = run_full(
        "{{ .Value }}_some_suffix",
        "app",
        serde_json::json!({"app": "loki"}),
        "l",
    );
    assert_eq!(v.as_deref(), Some("loki_some_suffix"));
    let (v, _) = run_full(
        "{{ ToLower .Value }}",
        "app",
        serde_json::json!({"app": "LOKI"}),
        "l",
    );
    assert_eq!(v.as_deref(), Some("loki"));
    assert_eq!(
        run(
            "{{ .level }} for app {{ ToUpper .app }}",
            serde_json::json!({"level": "warn", "app": "loki"})
        )
        .as_deref(),
        Some("warn for app LOKI")
    );
    let (v, _) = run_full(
        "{{ .level }} for app {{ ToUpper .Value }} in module {{.module}}",
        "app",
        serde_json::json!({"level": "warn", "app": "loki", "module": "test"}),
        "l",
    );
    assert_eq!(v.as_deref(), Some("warn for app LOKI in module test"));
    assert_eq!(
        run_v(r#"{{ Replace .Value "loki" "blokey" 1 }}"#, "loki loki").as_deref(),
        Some("blokey loki")
    );
    assert_eq!(
        run_v(r#"{{ Replace .Value "loki" "Loki" 2 }}"#, "loki loki loki").as_deref(),
        Some("Loki Loki loki")
    );
    let (v, _) = run_full(
        "{{.app }}: {{ .Entry }}",
        "message",
        serde_json::json!({"app": "api"}),
        "GET /",
    );
    assert_eq!(v.as_deref(), Some("api: GET /"));
    assert_eq!(
        run_v(r#"{{ Trim .Value ",. " }}"#, ",. x y .,").as_deref(),
        Some("x y")
    );
    assert_eq!(
        run_v("{{ TrimSpace .Value }}", " \t x \n").as_deref(),
        Some("x")
    );
    assert_eq!(
        run_v(r#"{{ TrimPrefix .Value "--" }}"#, "--x--").as_deref(),
        Some("x--")
    );
    assert_eq!(
        run_v(r#"{{ TrimSuffix .Value "--" }}"#, "--x--").as_deref(),
        Some("--x")
    );
    assert_eq!(
        run_v(r#"{{ TrimLeft .Value "-" }}"#, "--x--").as_deref(),
        Some("x--")
    );
    assert_eq!(
        run_v(r#"{{ TrimRight .Value "-" }}"#, "--x--").as_deref(),
        Some("--x")
    );
    assert_eq!(
        run_v(
            r#"{{ regexReplaceAll "(a*)bc" .Value "${1}a" }}"#,
            "aabcxbc"
        )
        .as_deref(),
        Some("aaaxa")
    );
    assert_eq!(
        run_v(
            r#"{{ regexReplaceAllLiteral "(ts=)" .Value "timestamp=$1" }}"#,
            "ts=1 ts=2"
        )
        .as_deref(),
        Some("timestamp=$11 timestamp=$12")
    );
    assert_eq!(
        run_v(
            r#"{{ if eq .Value "error" }}{{ Replace .Value "error" "ERROR" -1 }}{{ else }}{{ .Value }}{{ end }}"#,
            "error"
        )
        .as_deref(),
        Some("ERROR")
    );
    assert_eq!(run_v("{{ .Value | ToUpper }}", "x").as_deref(), Some("X"));
}

#[test]
fn hash_argument_order() {
    // sha3-256 / sha256 of "vsalt" and "saltv", computed independently.
    let v_salt3 = "c68aad62d15699759a00451c244aefe1a4a28048f6f4e16eb0b8c6c4064ef3ae";
    let salt_v3 = "22ecb452c5b7b7dd31cadf6edb1300f6cabc9f1a887befb2f25717a9ca0dbd47";
    let v_salt2 = "64cf6e5800d63dad2e2a0a9650971335c5496880faa3aed49b3cf6528be7ddb0";
    let salt_v2 = "10613d36c7aec798ebb5c9a69982cbe40592503271680b6a623791edf8870080";
    assert_eq!(
        run_v(r#"{{ Hash .Value "salt" }}"#, "v").as_deref(),
        Some(v_salt3)
    );
    assert_eq!(
        run_v(r#"{{ .Value | Hash "salt" }}"#, "v").as_deref(),
        Some(salt_v3)
    );
    assert_eq!(
        run_v(r#"{{ Sha2Hash .Value "salt" }}"#, "v").as_deref(),
        Some(v_salt2)
    );
    assert_eq!(
        run_v(r#"{{ .Value | Sha2Hash "salt" }}"#, "v").as_deref(),
        Some(salt_v2)
    );
    assert_eq!(
        run_v("{{ sha256sum .Value }}", "abc").as_deref(),
        Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    );
    assert_eq!(
        run_v("{{ sha1sum .Value }}", "hello").as_deref(),
        Some("aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d")
    );
    assert_eq!(
        run_v("{{ adler32sum .Value }}", "hello").as_deref(),
        Some("103547413")
    );
}

#[test]
fn missing_keys_failures_and_empty_results() {
    // A missing key renders <no value>.
    assert_eq!(
        run("{{ .nope }}", serde_json::json!({})).as_deref(),
        Some("<no value>")
    );
    assert_eq!(
        run("x{{ .nope }}y", serde_json::json!({})).as_deref(),
        Some("x<no value>y")
    );
    // No source: .Value is missing too.
    assert_eq!(
        run("{{ .Value }}", serde_json::json!({})).as_deref(),
        Some("<no value>")
    );
    // A null or an object is not string-like: missing for the template.
    assert_eq!(
        run("{{ .n }}", serde_json::json!({"n": null})).as_deref(),
        Some("<no value>")
    );
    // A function given a missing key cancels the stage: nothing changes.
    for t in [
        "{{ ToUpper .nope }}",
        "{{ .nope | ToUpper }}",
        "{{ Hash .nope \"s\" }}",
        "{{ regexReplaceAll \"(\" .Value \"x\" }}",
        "{{ if eq .n 5 }}x{{ end }}",
        "{{ if lt .nope \"a\" }}x{{ end }}",
        "{{ fail \"boom\" }}",
        "{{ substr 3 1 .Value }}",
        "{{ div 1 0 }}",
    ] {
        let (v, unchanged) = run_full(t, "v", serde_json::json!({"v": "orig", "n": "5"}), "l");
        assert_eq!(v.as_deref(), Some("orig"), "{t}");
        assert!(unchanged, "{t}");
        let (v, unchanged) = run_full(t, "absent", serde_json::json!({"n": "5"}), "l");
        assert_eq!(v, None, "{t}");
        assert!(unchanged, "{t}");
    }
    // A field of a string fails; a field of a missing key is missing too.
    let (v, unchanged) = run_full("{{ .Value.x }}", "v", serde_json::json!({"v": "orig"}), "l");
    assert_eq!((v.as_deref(), unchanged), (Some("orig"), true));
    assert_eq!(
        run("{{ .nope.x }}", serde_json::json!({})).as_deref(),
        Some("<no value>")
    );
    // An empty result removes the key.
    let (v, _) = run_full(
        "{{ if eq .Value \"x\" }}{{ end }}",
        "v",
        serde_json::json!({"v": "x"}),
        "l",
    );
    assert_eq!(v, None);
    let (v, _) = run_full("", "v", serde_json::json!({"v": "x"}), "l");
    assert_eq!(v, None);
    // …and a new key is created.
    let (v, _) = run_full(
        "{{ .a }}-{{ .b }}",
        "new_key",
        serde_json::json!({"a": "1", "b": 2.5}),
        "l",
    );
    assert_eq!(v.as_deref(), Some("1-2.5"));
}

#[test]
fn control_flow_comparisons_and_trim_markers() {
    let v = |t: &str, x: &str| run_v(t, x);
    assert_eq!(
        v("{{ if eq .Value \"a\" \"b\" }}yes{{ end }}", "b").as_deref(),
        Some("yes")
    );
    assert_eq!(
        v("{{ if ne .Value \"a\" }}yes{{ else }}no{{ end }}", "a").as_deref(),
        Some("no")
    );
    assert_eq!(
        v(
            "{{ if and (contains \"he\" .Value) (hasSuffix \"lo\" .Value) }}both{{ end }}",
            "hello"
        )
        .as_deref(),
        Some("both")
    );
    assert_eq!(
        v(
            "{{ if or (eq .Value \"x\") (hasPrefix \"he\" .Value) }}one{{ end }}",
            "hello"
        )
        .as_deref(),
        Some("one")
    );
    assert_eq!(
        v("{{ if not (eq .Value \"x\") }}not{{ end }}", "y").as_deref(),
        Some("not")
    );
    assert_eq!(
        v(
            "{{ if eq .Value \"a\" }}A{{ else if eq .Value \"b\" }}B{{ else }}C{{ end }}",
            "b"
        )
        .as_deref(),
        Some("B")
    );
    assert_eq!(
        v(
            "{{ if gt (len .Value) 3 }}long{{ else }}short{{ end }}",
            "abcd"
        )
        .as_deref(),
        Some("long")
    );
    assert_eq!(
        v("{{ if le .Value \"b\" }}le{{ end }}", "a").as_deref(),
        Some("le")
    );
    // Comparing a missing key is false, not an error.
    assert_eq!(
        run(
            "{{ if eq .nope \"x\" }}a{{ else }}b{{ end }}",
            serde_json::json!({})
        )
        .as_deref(),
        Some("b")
    );
    assert_eq!(
        run("{{ if .nope }}a{{ else }}b{{ end }}", serde_json::json!({})).as_deref(),
        Some("b")
    );
    // `and` short-circuits: the failing call is never made.
    assert_eq!(
        run(
            "{{ if and .nope (ToUpper .nope) }}a{{ else }}b{{ end }}",
            serde_json::json!({})
        )
        .as_deref(),
        Some("b")
    );
    // Trim markers remove the white space next to them.
    assert_eq!(v("a  {{- .Value -}}  b", "X").as_deref(), Some("aXb"));
    assert_eq!(v("a \n {{- .Value }} b", "X").as_deref(), Some("aX b"));
    assert_eq!(v("a {{ .Value -}} \n b", "X").as_deref(), Some("a Xb"));
    assert_eq!(v("{{- /* a comment */ -}} x", "X").as_deref(), Some("x"));
    assert_eq!(v("{{/* c */}}{{ .Value }}", "X").as_deref(), Some("X"));
    // A number right after `{{-` is negative, not a trim marker.
    assert_eq!(v("{{-3}}", "X").as_deref(), Some("-3"));
    // with, range, variables, break/continue.
    assert_eq!(
        v("{{ with .Value }}[{{ . }}]{{ end }}", "x").as_deref(),
        Some("[x]")
    );
    assert_eq!(
        run(
            "{{ with .nope }}x{{ else }}none{{ end }}",
            serde_json::json!({})
        )
        .as_deref(),
        Some("none")
    );
    assert_eq!(
        v(
            "{{ range $i, $e := splitList \",\" .Value }}{{ $i }}={{ $e }};{{ end }}",
            "a,b"
        )
        .as_deref(),
        Some("0=a;1=b;")
    );
    assert_eq!(
        v("{{ range splitList \",\" .Value }}{{ if eq . \"b\" }}{{ break }}{{ end }}{{ . }}{{ end }}", "a,b,c").as_deref(),
        Some("a")
    );
    assert_eq!(
        v("{{ range splitList \",\" .Value }}{{ if eq . \"b\" }}{{ continue }}{{ end }}{{ . }}{{ end }}", "a,b,c").as_deref(),
        Some("ac")
    );
    assert_eq!(
        v("{{ range $x := list }}{{ $x }}{{ else }}empty{{ end }}", "").as_deref(),
        Some("empty")
    );
    assert_eq!(
        v("{{ $x := ToUpper .Value }}{{ $x }}-{{ $x }}", "a").as_deref(),
        Some("A-A")
    );
    assert_eq!(
        v(
            "{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}",
            "a"
        )
        .as_deref(),
        Some("2")
    );
    assert_eq!(v("{{ $.Value }}", "a").as_deref(), Some("a"));
    assert_eq!(
        run(
            "{{ index . \"some-key\" }}",
            serde_json::json!({"some-key": "dash"})
        )
        .as_deref(),
        Some("dash")
    );
}

#[test]
fn promtail_multiline_time_example() {
    // The docs' 12h → RFC3339 conversion, as written in YAML (escaped line
    // breaks join the lines without white space).
    let yaml = r#"
source: time
template: "\
  {{ .date_local | substr 6 10 }}-{{ .date_local | substr 0 2 }}-{{ .date_local | substr 3 5 }}T\
  {{ if eq (.time_local | substr 0 2) \"12\" }}\
      {{ if eq .hour_period \"AM\" }}00{{ else }}12{{ end }}{{ .time_local | substr 2 10}}Z\
  {{ else }}\
      {{ if eq .hour_period \"AM\" }}\
          {{ if or (eq (.time_local | substr 0 2) \"11\") (eq (.time_local | substr 0 2) \"10\") }}{{ .time_local }}Z\
              {{ else }}0{{ .time_local }}Z\
          {{ end }}\
      {{ else }}\
          {{ if eq (.time_local | substr 0 2) \"11\" }}23{{ .time_local | substr 2 10 }}Z{{ end }}\
          {{ if eq (.time_local | substr 0 2) \"10\" }}22{{ .time_local | substr 2 10 }}Z{{ end }}\
          {{ if eq (.time_local | substr 0 2) \"9:\" }}21{{ .time_local | substr 1 10 }}Z{{ end }}\
          {{ if eq (.time_local | substr 0 2) \"8:\" }}20{{ .time_local | substr 1 10 }}Z{{ end }}\
          {{ if and (le (.time_local | substr 0 1) \"7\") (eq (.time_local | substr 1 2) \":\") }}1{{ add (.time_local | substr 0 1) 2 }}{{ .time_local | substr 1 10 }}Z{{ end }}\
      {{ end }}\
  {{ end }}"
"#;
    let c: Config = serde_yaml_ng::from_str(yaml).unwrap();
    let stage = build(Some(&c), &ctx()).unwrap().unwrap();
    let mut h = harness(stage, &[]);
    for (time, period, want) in [
        ("12:53:24", "PM", "2022-11-08T12:53:24Z"),
        ("12:53:24", "AM", "2022-11-08T00:53:24Z"),
        ("11:05:00", "AM", "2022-11-08T11:05:00Z"),
        ("7:05:00", "AM", "2022-11-08T07:05:00Z"),
        ("9:15:00", "PM", "2022-11-08T21:15:00Z"),
        ("10:15:00", "PM", "2022-11-08T22:15:00Z"),
        ("7:05:00", "PM", "2022-11-08T19:05:00Z"),
    ] {
        let e = run_line(
            &mut h,
            "l",
            serde_json::json!({"date_local": "11/08/2022", "time_local": time, "hour_period": period}),
        );
        assert_eq!(
            e.extracted.get_string("time").as_deref(),
            Some(want),
            "{time} {period}"
        );
        e.ack.ack();
    }
}

#[test]
fn sprig_functions() {
    let v = |t: &str, x: &str| run_v(t, x);
    let cases: &[(&str, &str, &str)] = &[
        ("{{ .Value | upper }}", "ab", "AB"),
        ("{{ .Value | upper }}", "straße", "STRAßE"),
        ("{{ ToLower .Value }}", "ΟΔΟΣ", "οδοσ"),
        ("{{ .Value | lower }}", "AB", "ab"),
        (
            "{{ .Value | title }}",
            "hello wide world",
            "Hello Wide World",
        ),
        ("{{ .Value | trim }}", "  x ", "x"),
        ("{{ .Value | trimPrefix \"a\" }}", "abc", "bc"),
        ("{{ .Value | trimSuffix \"c\" }}", "abc", "ab"),
        ("{{ .Value | trimAll \"$\" }}", "$5.00$", "5.00"),
        ("{{ .Value | replace \" \" \"_\" }}", "a b c", "a_b_c"),
        (
            "{{ .Value | replace \" \" \"_\" | trunc 3 | upper }}",
            "a b c",
            "A_B",
        ),
        ("{{ .Value | trunc -2 }}", "abcd", "cd"),
        ("{{ .Value | substr 1 3 }}", "abcd", "bc"),
        ("{{ .Value | substr 2 99 }}", "abcd", "cd"),
        ("{{ .Value | abbrev 5 }}", "hello world", "he..."),
        ("{{ .Value | repeat 3 }}", "ab", "ababab"),
        ("{{ .Value | nospace }}", "a b\tc", "abc"),
        ("{{ .Value | initials }}", "hello wide world", "hww"),
        ("{{ .Value | quote }}", "a\"b", "\"a\\\"b\""),
        ("{{ .Value | squote }}", "ab", "'ab'"),
        ("{{ cat .Value \"x\" 3 }}", "a", "a x 3"),
        ("{{ .Value | indent 2 }}", "a\nb", "  a\n  b"),
        ("{{ .Value | contains \"b\" }}", "abc", "true"),
        ("{{ plural \"one\" \"many\" 2 }}", "", "many"),
        ("{{ .Value | default \"d\" }}", "", "d"),
        ("{{ .Value | default \"d\" }}", "x", "x"),
        ("{{ coalesce \"\" .Value \"z\" }}", "y", "y"),
        ("{{ empty .Value }}", "", "true"),
        ("{{ ternary \"yes\" \"no\" (eq .Value \"a\") }}", "a", "yes"),
        ("{{ .Value | b64enc }}", "hello", "aGVsbG8="),
        ("{{ .Value | b64dec }}", "aGVsbG8=", "hello"),
        ("{{ .Value | b32enc }}", "hello", "NBSWY3DP"),
        ("{{ .Value | toJson }}", "<a>", "\"\\u003ca\\u003e\""),
        ("{{ (fromJson .Value).a }}", "{\"a\": \"x\"}", "x"),
        ("{{ (split \"/\" .Value)._1 }}", "a/b/c", "b"),
        (
            "{{ splitList \"/\" .Value | join \"-\" }}",
            "a/b/c",
            "a-b-c",
        ),
        ("{{ splitList \"/\" .Value | last }}", "a/b/c", "c"),
        ("{{ splitList \"/\" .Value | first }}", "a/b/c", "a"),
        (
            "{{ splitList \",\" .Value | sortAlpha | join \",\" }}",
            "c,a,b",
            "a,b,c",
        ),
        (
            "{{ splitList \",\" .Value | uniq | join \",\" }}",
            "a,b,a",
            "a,b",
        ),
        ("{{ list 1 \"a\" 2.5 }}", "", "[1 a 2.5]"),
        ("{{ has \"b\" (splitList \",\" .Value) }}", "a,b", "true"),
        ("{{ add .Value 2 }}", "7", "9"),
        ("{{ add1 .Value }}", "0x10", "17"),
        ("{{ sub 10 .Value }}", "3", "7"),
        ("{{ mul .Value 3 }}", "4", "12"),
        ("{{ div .Value 2 }}", "9", "4"),
        ("{{ mod .Value 4 }}", "9", "1"),
        ("{{ max 1 .Value 3 }}", "5", "5"),
        ("{{ min 1 .Value 3 }}", "5", "1"),
        ("{{ addf 0.1 .Value }}", "0.2", "0.3"),
        ("{{ floor .Value }}", "2.7", "2"),
        ("{{ ceil .Value }}", "2.2", "3"),
        ("{{ round .Value 1 }}", "2.25", "2.3"),
        ("{{ float64 .Value }}", "1500000", "1.5e+06"),
        ("{{ int .Value }}", "42", "42"),
        ("{{ atoi .Value }}", "42x", "0"),
        ("{{ .Value | regexFind \"[0-9]+\" }}", "ab123cd45", "123"),
        (
            "{{ regexFindAll \"[0-9]+\" .Value -1 }}",
            "ab123cd45",
            "[123 45]",
        ),
        ("{{ regexMatch \"^a\" .Value }}", "abc", "true"),
        ("{{ regexMatch \"(\" .Value }}", "abc", "false"),
        (
            "{{ regexSplit \"[,;]\" .Value -1 | join \"|\" }}",
            "a,b;c",
            "a|b|c",
        ),
        ("{{ regexQuoteMeta .Value }}", "a.b*c", "a\\.b\\*c"),
        ("{{ .Value | base }}", "/var/log/pods/x/0.log", "0.log"),
        (
            "{{ .Value | dir }}",
            "/var/log/pods/x/0.log",
            "/var/log/pods/x",
        ),
        ("{{ .Value | ext }}", "/var/log/a.log", ".log"),
        ("{{ .Value | clean }}", "/a//b/../c", "/a/c"),
        ("{{ typeOf .Value }}", "x", "string"),
        ("{{ kindOf (list) }}", "x", "slice"),
        ("{{ len .Value }}", "héllo", "6"),
        ("{{ index .Value 0 }}", "A", "65"),
        (
            "{{ printf \"%s=%d %05.1f %q\" .Value 5 2.25 \"q\" }}",
            "k",
            "k=5 002.2 \"q\"",
        ),
        ("{{ print .Value 1 2 \"x\" }}", "a", "a1 2x"),
        ("{{ println .Value }}", "a", "a\n"),
        (
            "{{ html .Value }}",
            "<a href='x'>",
            "&lt;a href=&#39;x&#39;&gt;",
        ),
        ("{{ js .Value }}", "a'b<", "a\\'b\\u003C"),
        ("{{ urlquery .Value }}", "a b&c", "a+b%26c"),
        ("{{ until 3 }}", "", "[0 1 2]"),
        ("{{ (dict \"a\" 1 \"b\" .Value).b }}", "x", "x"),
        ("{{ get (dict \"a\" 1) \"nope\" }}", "x", ""),
        ("{{ hasKey . \"v\" }}", "x", "true"),
        ("{{ keys (dict \"b\" 1 \"a\" 2) }}", "x", "[a b]"),
        (
            "{{ 1.5 }} {{ 1e6 }} {{ 0x10 }} {{ 'a' }} {{ 1_000 }}",
            "",
            "1.5 1e+06 16 97 1000",
        ),
        ("{{ \"\\u00e9\\t\" }}{{ `raw\\n` }}", "", "é\traw\\n"),
    ];
    for (t, x, want) in cases {
        assert_eq!(
            v(t, x).as_deref(),
            if want.is_empty() { None } else { Some(*want) },
            "{t} on {x:?}"
        );
    }
    // `.` as a value: every string-like extracted value, Value and Entry.
    let (out, _) = run_full(
        "{{ toJson . }}",
        "v",
        serde_json::json!({"v": "x", "n": 2.0, "z": null}),
        "LINE",
    );
    assert_eq!(
        out.as_deref(),
        Some(r#"{"Entry":"LINE","Value":"x","job":"j","n":"2","v":"x"}"#)
    );
}

#[test]
fn dates() {
    let v = |t: &str, x: &str| run_v(t, x);
    let rfc = "\"2006-01-02T15:04:05Z07:00\"";
    assert_eq!(
        v(
            &format!("{{{{ toDate {rfc} .Value | unixEpoch }}}}"),
            "2024-01-20T10:00:00Z"
        )
        .as_deref(),
        Some("1705744800")
    );
    assert_eq!(
        v(
            &format!("{{{{ (toDate {rfc} .Value).Unix }}}}"),
            "2024-01-20T11:00:00+01:00"
        )
        .as_deref(),
        Some("1705744800")
    );
    assert_eq!(
        v(
            &format!("{{{{ (toDate {rfc} .Value).UnixMilli }}}}"),
            "2024-01-20T10:00:00.25Z"
        )
        .as_deref(),
        Some("1705744800250")
    );
    // A value that does not parse: Go's zero time.
    assert_eq!(
        v(
            &format!("{{{{ toDate {rfc} .Value | unixEpoch }}}}"),
            "garbage"
        )
        .as_deref(),
        Some("-62135596800")
    );
    // mustToDate fails the template instead.
    let (out, unchanged) = run_full(
        &format!("{{{{ mustToDate {rfc} .Value | unixEpoch }}}}"),
        "v",
        serde_json::json!({"v": "garbage"}),
        "l",
    );
    assert_eq!((out.as_deref(), unchanged), (Some("garbage"), true));
    assert_eq!(
        v(
            &format!("{{{{ dateInZone \"2006-01-02 15:04 MST\" (toDate {rfc} .Value) \"UTC\" }}}}"),
            "2024-01-20T11:30:00+01:00"
        )
        .as_deref(),
        Some("2024-01-20 10:30 UTC")
    );
    assert_eq!(
        v(
            &format!("{{{{ (toDate {rfc} .Value).Format \"Jan _2 15:04:05.000\" }}}}"),
            "2024-01-05T10:00:00.5Z"
        )
        .as_deref(),
        Some("Jan  5 10:00:00.500")
    );
    assert_eq!(
        v(
            &format!("{{{{ dateModify \"1h30m\" (toDate {rfc} .Value) | unixEpoch }}}}"),
            "2024-01-20T10:00:00Z"
        )
        .as_deref(),
        Some("1705750200")
    );
    assert_eq!(
        v("{{ duration .Value }}", "3661").as_deref(),
        Some("1h1m1s")
    );
    // `duration` takes an int64 or a string; Go's int literal is neither.
    assert_eq!(v("{{ duration 90 }}", "x").as_deref(), Some("0s"));
    assert_eq!(
        v("{{ durationRound .Value }}", "2h30m").as_deref(),
        Some("2h")
    );
    // date of something that is not a time formats now: a 4-digit year.
    let y = v("{{ date \"2006\" .Value }}", "not a time").unwrap();
    assert!(y.len() == 4 && y.starts_with('2'), "{y}");
}

#[test]
fn build_errors() {
    let e = build(None, &ctx()).err().unwrap();
    assert_eq!(e, "source: template source value is required");
    let e = build(
        Some(&Config {
            source: Some(String::new()),
            template: Some("x".into()),
        }),
        &ctx(),
    )
    .err()
    .unwrap();
    assert!(e.starts_with("source: "), "{e}");
    for (t, want) in [
        ("{{ nope .Value }}", "function \"nope\" not defined"),
        (
            "{{ genCA \"x\" 1 }}",
            "function \"genCA\" (sprig) is not supported by tailtrace",
        ),
        ("{{ .Value ", "unclosed action"),
        ("{{ end }}", "unexpected {{end}}"),
        ("{{ if .Value }}x", "unexpected EOF"),
        ("{{ $x }}", "undefined variable \"$x\""),
        (
            "{{ .Value | \"a\" }}",
            "non executable command in pipeline stage 2",
        ),
        ("{{ break }}", "{{break}} outside {{range}}"),
        ("{{ define \"x\" }}{{ end }}", "not supported by tailtrace"),
        ("{{ \"unterminated }}", "unterminated quoted string"),
        ("{{ 1.2.3 }}", "in operand"),
        ("{{ 1x }}", "bad number syntax"),
        ("{{ ( .Value }}", "unclosed left paren"),
        ("{{ .Value ) }}", "unexpected right paren"),
        ("x\n{{ nope }}", "pipeline_template:2:"),
    ] {
        let e = build_err(t);
        assert!(
            e.starts_with("template: template: pipeline_template:"),
            "{t}: {e}"
        );
        assert!(e.contains(want), "{t}: {e}");
    }
    assert!(serde_yaml_ng::from_str::<Config>("{source: a, template: b, x: 1}").is_err());
}

#[test]
fn through_a_pipeline_with_labels() {
    let yaml = "
- template:
    source: level
    template: '{{ ToLower .Value }}'
- labels:
    level:
";
    let v: Vec<crate::pipeline::stages::StageConfig> = serde_yaml_ng::from_str(yaml).unwrap();
    let mut p =
        crate::pipeline::stages::build(&v, std::sync::Arc::new(crate::metrics::Metrics::new()))
            .unwrap();
    let mut out = Vec::new();
    let labels = LabelSet::new([("job", "j"), ("level", "WARN")]);
    p.process(
        Entry::new(
            labels,
            crate::entry::Timestamp(1),
            "x".into(),
            crate::ack::Ack::none(),
        ),
        &mut out,
    );
    assert_eq!(out[0].labels.get("level"), Some("warn"));
    assert!(
        out[0].extracted.is_empty(),
        "cleared when leaving the pipeline"
    );
}

#[test]
fn never_panics_on_odd_templates() {
    let odd = [
        "{{",
        "}}",
        "{{}}",
        "{{ }}",
        "{{-}}",
        "{{- -}}",
        "{{/*",
        "{{/* */",
        "{{ . }}",
        "{{ $ }}",
        "{{ nil }}",
        "{{ (nil) }}",
        "{{ index nil 1 }}",
        "{{ range . }}{{ . }}{{ end }}",
        "{{ range 3 }}{{ . }}{{ end }}",
        "{{ .a.b.c }}",
        "{{ (.a).b }}",
        "{{ print (1) }}",
        "{{ 'ab' }}",
        "{{ '\\'' }}",
        "{{ 0x }}",
        "{{ 1i }}",
        "{{ -0 }}",
        "{{ 99999999999999999999 }}",
        "{{ printf }}",
        "{{ printf \"%\" }}",
        "{{ printf \"%*d\" 3 }}",
        "{{ slice (list 1 2) 3 1 }}",
        "{{ repeat -1 \"a\" }}",
        "{{ substr -1 99 .Value }}",
        "{{ trunc -99 .Value }}",
        "{{ toDate \"Jan\" .Value }}",
        "{{ until 99999999999 }}",
        "{{ \"\\xff\" }}",
        "{{ with $x := 1 }}{{ $x }}{{ end }}",
        "{{ else }}",
        "{{ if 1 }}{{ else }}{{ else }}{{ end }}",
        "é{{ .Value }}é",
        "{{ .Value | printf \"%v %v\" }}",
        "{{ and }}",
        "{{ eq 1 }}",
    ];
    let deep_parens = format!("{{{{ {}1{} }}}}", "(".repeat(100_000), ")".repeat(100_000));
    let deep_ifs = "{{ if 1 }}".repeat(100_000);
    assert!(build_err(&deep_parens).contains("nested too deeply"));
    assert!(build_err(&deep_ifs).contains("nested too deeply"));
    let ok_parens = format!("{{{{ {}1{} }}}}", "(".repeat(50), ")".repeat(50));
    assert_eq!(run(&ok_parens, serde_json::json!({})).as_deref(), Some("1"));
    for t in odd {
        if let Ok(Some(mut s)) = build(Some(&cfg("v", t)), &ctx()) {
            let mut out = Vec::new();
            let metrics = crate::metrics::Metrics::new();
            let mut e = Entry::new(
                LabelSet::empty(),
                crate::entry::Timestamp(1),
                "l".into(),
                crate::ack::Ack::none(),
            );
            e.extracted.insert("v", serde_json::json!("abc"));
            s.process(e, &mut Ctx::new(&mut out, &metrics));
            assert_eq!(out.len(), 1, "{t}");
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]

    /// Templates stitched from the syntax's pieces never panic, at build
    /// or per line, and every entry comes out.
    #[test]
    fn random_templates_never_panic(
        parts in proptest::collection::vec(0usize..FRAGMENTS.len(), 0..24),
        value in "[a-z0-9 .:/\\-]{0,12}",
    ) {
        let t: String = parts.iter().map(|&i| FRAGMENTS[i]).collect();
        if let Ok(Some(mut s)) = build(Some(&cfg("v", &t)), &ctx()) {
            let mut out = Vec::new();
            let metrics = crate::metrics::Metrics::new();
            let mut e = Entry::new(
                LabelSet::new([("job", "j")]),
                crate::entry::Timestamp(1),
                "l".into(),
                crate::ack::Ack::none(),
            );
            e.extracted.insert("v", serde_json::json!(value));
            e.extracted.insert("n", serde_json::json!(2.5));
            s.process(e, &mut Ctx::new(&mut out, &metrics));
            proptest::prop_assert_eq!(out.len(), 1);
        }
    }
}

const FRAGMENTS: &[&str] = &[
    "{{",
    "}}",
    "{{- ",
    " -}}",
    " ",
    "  ",
    "\n",
    ".Value",
    ".n",
    ".nope",
    ".Entry",
    ".",
    "$",
    "$x",
    " := ",
    " = ",
    "|",
    "(",
    ")",
    "\"s\"",
    "\"%d %s\"",
    "`r`",
    "1",
    "-1",
    "0",
    "1.5",
    "'c'",
    "nil",
    "true",
    "if ",
    "else ",
    "end",
    "range ",
    "with ",
    "break",
    "continue",
    "ToUpper ",
    "printf ",
    "index ",
    "eq ",
    "ne ",
    "lt ",
    "and ",
    "or ",
    "not ",
    "len ",
    "/*",
    "*/",
    ",",
    "default ",
    "substr ",
    "trunc ",
    "toDate ",
    "unixEpoch ",
    "splitList ",
    "list ",
    "dict ",
    "add ",
    "div ",
    "regexReplaceAll ",
    "\"(\" ",
    "Hash ",
    "repeat ",
    "slice ",
    "first ",
    "fromJson ",
    "toJson ",
    "date ",
    ".Unix",
    "x",
    "{{ end }}",
    "{{ else }}",
    "{{ if .Value }}",
    "{{ range $i, $e := list 1 2 }}",
];
