//! Expected values are Prometheus's documented behaviour worked out by
//! hand (the MD5 digests come from `md5sum`), not output of this code.

use super::*;

type Pairs = &'static [(&'static str, &'static str)];

fn parse(yaml: &str) -> Vec<RelabelConfig> {
    serde_yaml_ng::from_str(yaml).unwrap()
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The relabeled labels, or None when the target is dropped.
fn run(rules: &str, input: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
    let r = Relabeler::new(&parse(rules)).unwrap();
    let mut labels = map(input);
    r.apply(&mut labels).then_some(labels)
}

fn new_err(rules: &str) -> String {
    Relabeler::new(&parse(rules)).unwrap_err()
}

struct Case {
    name: &'static str,
    rules: &'static str,
    input: Pairs,
    /// None: dropped.
    want: Option<Pairs>,
}

fn check(cases: &[Case]) {
    for c in cases {
        let got = run(c.rules, c.input);
        let want = c.want.map(map);
        assert_eq!(got, want, "case {:?}", c.name);
    }
}

#[test]
fn replace() {
    check(&[
            Case {
                name: "defaults copy the source label",
                rules: "- source_labels: [a]\n  target_label: b",
                input: &[("a", "x")],
                want: Some(&[("a", "x"), ("b", "x")]),
            },
            Case {
                name: "overwrites an existing target",
                rules: "- source_labels: [a]\n  target_label: b",
                input: &[("a", "x"), ("b", "old")],
                want: Some(&[("a", "x"), ("b", "x")]),
            },
            Case {
                name: "missing source: (.*) matches the empty value, $1 is empty, the target is deleted",
                rules: "- source_labels: [missing]\n  target_label: b",
                input: &[("b", "old")],
                want: Some(&[]),
            },
            Case {
                name: "no source labels and a literal replacement sets a constant",
                rules: "- target_label: env\n  replacement: prod",
                input: &[],
                want: Some(&[("env", "prod")]),
            },
            Case {
                name: "empty replacement deletes the target",
                rules: "- source_labels: [a]\n  target_label: b\n  replacement: ''",
                input: &[("a", "x"), ("b", "old")],
                want: Some(&[("a", "x")]),
            },
            Case {
                name: "anchored: a regex matching only part of the value does not match",
                rules: "- source_labels: [a]\n  regex: b(.)r\n  target_label: t",
                input: &[("a", "foobar")],
                want: Some(&[("a", "foobar")]),
            },
            Case {
                name: "anchored around the whole alternation: foo|bar does not match foobar",
                rules: "- source_labels: [a]\n  regex: foo|bar\n  target_label: t\n  replacement: hit",
                input: &[("a", "foobar")],
                want: Some(&[("a", "foobar")]),
            },
            Case {
                name: "alternation matches a whole alternative",
                rules: "- source_labels: [a]\n  regex: foo|bar\n  target_label: t\n  replacement: hit",
                input: &[("a", "bar")],
                want: Some(&[("a", "bar"), ("t", "hit")]),
            },
            Case {
                name: "no match leaves an existing target alone",
                rules: "- source_labels: [a]\n  regex: (x+)\n  target_label: t",
                input: &[("a", "y"), ("t", "keep")],
                want: Some(&[("a", "y"), ("t", "keep")]),
            },
            Case {
                name: "(?s): dot matches a newline",
                rules: "- source_labels: [a]\n  regex: a.b\n  target_label: t\n  replacement: yes",
                input: &[("a", "a\nb")],
                want: Some(&[("a", "a\nb"), ("t", "yes")]),
            },
            Case {
                name: "the default regex copies a multi-line value whole",
                rules: "- source_labels: [a]\n  target_label: b",
                input: &[("a", "l1\nl2")],
                want: Some(&[("a", "l1\nl2"), ("b", "l1\nl2")]),
            },
            Case {
                name: "empty regex matches only the empty value (missing source)",
                rules: "- source_labels: [a]\n  regex: ''\n  target_label: t\n  replacement: empty",
                input: &[],
                want: Some(&[("t", "empty")]),
            },
            Case {
                name: "empty regex does not match a non-empty value",
                rules: "- source_labels: [a]\n  regex: ''\n  target_label: t\n  replacement: empty",
                input: &[("a", "x")],
                want: Some(&[("a", "x")]),
            },
            Case {
                name: "multi-source joined by ';', a missing one is empty",
                rules: "- source_labels: [a, m, c]\n  target_label: t",
                input: &[("a", "x"), ("c", "z")],
                want: Some(&[("a", "x"), ("c", "z"), ("t", "x;;z")]),
            },
            Case {
                name: "custom separator",
                rules: "- source_labels: [a, m, c]\n  separator: '-'\n  target_label: t",
                input: &[("a", "x"), ("c", "z")],
                want: Some(&[("a", "x"), ("c", "z"), ("t", "x--z")]),
            },
            Case {
                name: "a multi-source regex picks the parts",
                rules: "- source_labels: [host, port]\n  regex: '([^:]+)(?::\\d+)?;(\\d+)'\n  target_label: addr\n  replacement: $1:$2",
                input: &[("host", "10.0.0.1:80"), ("port", "9100")],
                want: Some(&[("host", "10.0.0.1:80"), ("port", "9100"), ("addr", "10.0.0.1:9100")]),
            },
            Case {
                name: "rules run in order, each sees the previous results",
                rules: "- source_labels: [a]\n  target_label: b\n- source_labels: [b]\n  target_label: c\n  replacement: ${1}!",
                input: &[("a", "x")],
                want: Some(&[("a", "x"), ("b", "x"), ("c", "x!")]),
            },
        ]);
}

#[test]
fn replace_expansion() {
    // `(?P<first>[a-z]+)-(?P<second>[0-9]+)` on "abc-42": $0 = abc-42,
    // $1 = $first = abc, $2 = $second = 42.
    const NAMED: &str =
        "- source_labels: [a]\n  regex: (?P<first>[a-z]+)-(?P<second>[0-9]+)\n  target_label: t\n";
    let expand = |replacement: &str| {
        let rules = format!("{NAMED}  replacement: '{replacement}'");
        run(&rules, &[("a", "abc-42")]).unwrap().get("t").cloned()
    };
    let cases: &[(&str, Option<&str>)] = &[
        ("$1", Some("abc")),
        ("${1}", Some("abc")),
        ("$2", Some("42")),
        ("$0", Some("abc-42")),
        ("$first", Some("abc")),
        ("${second}", Some("42")),
        ("$first|${2}|$$|$0", Some("abc|42|$|abc-42")),
        // Go's longest-name rule: `$1x` is the group named `1x`: none, so empty.
        ("$1x", None),
        ("${1}x", Some("abcx")),
        ("$1_suffix", None),
        ("${1}_suffix", Some("abc_suffix")),
        ("$firstx", None),
        ("pre-${first}-post", Some("pre-abc-post")),
        // A group that does not exist, a leading zero: empty.
        ("[$10][$01][${2}]", Some("[][][42]")),
        ("$nosuch", None),
        // `$$` is `$`; a `$` starting no well-formed reference is literal.
        ("$$1", Some("$1")),
        ("a$-b${1$", Some("a$-b${1$")),
        ("${first", Some("${first")),
        ("cost: 5$", Some("cost: 5$")),
    ];
    for (replacement, want) in cases {
        assert_eq!(
            expand(replacement).as_deref(),
            *want,
            "replacement {replacement:?}"
        );
    }
    // An unmatched optional group expands to nothing.
    let got = run(
        "- source_labels: [a]\n  regex: (a)(b)?\n  target_label: t\n  replacement: '[$1][$2]'",
        &[("a", "a")],
    );
    assert_eq!(got.unwrap()["t"], "[a][]");
}

#[test]
fn replace_target_templates() {
    check(&[
            Case {
                name: "target_label with ${1}",
                rules: "- source_labels: [a]\n  target_label: ${1}_name\n  replacement: v",
                input: &[("a", "app")],
                want: Some(&[("a", "app"), ("app_name", "v")]),
            },
            Case {
                name: "target_label $1x names group 1x: empty name, invalid, rule skipped",
                rules: "- source_labels: [a]\n  target_label: $1x\n  replacement: v",
                input: &[("a", "app")],
                want: Some(&[("a", "app")]),
            },
            Case {
                name: "expanded target with '-' is invalid: rule skipped",
                rules: "- source_labels: [a]\n  target_label: $1\n  replacement: v",
                input: &[("a", "foo-bar")],
                want: Some(&[("a", "foo-bar")]),
            },
            Case {
                name: "expanded target starting with a digit is invalid: rule skipped",
                rules: "- source_labels: [a]\n  target_label: $1\n  replacement: v",
                input: &[("a", "1abc")],
                want: Some(&[("a", "1abc")]),
            },
            Case {
                name: "expanded target empty is invalid: rule skipped",
                rules: "- source_labels: [a]\n  target_label: $1\n  replacement: v",
                input: &[],
                want: Some(&[]),
            },
            Case {
                name: "target and replacement from named groups",
                rules: "- source_labels: [a]\n  regex: (?P<k>[a-z]+)=(?P<v>.*)\n  target_label: $k\n  replacement: $v",
                input: &[("a", "tier=frontend")],
                want: Some(&[("a", "tier=frontend"), ("tier", "frontend")]),
            },
        ]);
}

#[test]
fn keep_and_drop() {
    const KEEP: &str = "- source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scrape]\n  action: keep\n  regex: true";
    const ANN: &str = "__meta_kubernetes_pod_annotation_prometheus_io_scrape";
    const DROP: &str = "- source_labels: [ns]\n  action: drop\n  regex: kube-.*";
    check(&[
            Case {
                name: "keep: matching value kept",
                rules: KEEP,
                input: &[(ANN, "true")],
                want: Some(&[(ANN, "true")]),
            },
            Case {
                name: "keep: case matters",
                rules: KEEP,
                input: &[(ANN, "TRUE")],
                want: None,
            },
            Case {
                name: "keep: anchored, truex does not match",
                rules: KEEP,
                input: &[(ANN, "truex")],
                want: None,
            },
            Case {
                name: "keep: missing source is the empty value, dropped",
                rules: KEEP,
                input: &[],
                want: None,
            },
            Case {
                name: "drop: matching value dropped",
                rules: DROP,
                input: &[("ns", "kube-system")],
                want: None,
            },
            Case {
                name: "drop: other value kept",
                rules: DROP,
                input: &[("ns", "default")],
                want: Some(&[("ns", "default")]),
            },
            Case {
                name: "drop: anchored, my-kube-system kept",
                rules: DROP,
                input: &[("ns", "my-kube-system")],
                want: Some(&[("ns", "my-kube-system")]),
            },
            Case {
                name: "drop with the default regex drops everything",
                rules: "- action: drop",
                input: &[("a", "b")],
                want: None,
            },
            Case {
                name: "keep on an empty match: regex .* keeps a target without the label",
                rules: "- source_labels: [x]\n  action: keep\n  regex: .*",
                input: &[],
                want: Some(&[]),
            },
            Case {
                name: "a drop stops the chain",
                rules: "- action: drop\n  source_labels: [a]\n  regex: x\n- target_label: b\n  replacement: set",
                input: &[("a", "x")],
                want: None,
            },
        ]);
}

#[test]
fn keepequal_and_dropequal() {
    const KEEPEQ: &str = "- source_labels: [a]\n  target_label: b\n  action: keepequal";
    const DROPEQ: &str = "- source_labels: [a]\n  target_label: b\n  action: dropequal";
    check(&[
        Case {
            name: "keepequal: equal kept",
            rules: KEEPEQ,
            input: &[("a", "1"), ("b", "1")],
            want: Some(&[("a", "1"), ("b", "1")]),
        },
        Case {
            name: "keepequal: different dropped",
            rules: KEEPEQ,
            input: &[("a", "1"), ("b", "2")],
            want: None,
        },
        Case {
            name: "keepequal: both missing are equal (empty)",
            rules: KEEPEQ,
            input: &[],
            want: Some(&[]),
        },
        Case {
            name: "keepequal: joined sources compared",
            rules: "- source_labels: [a, c]\n  target_label: b\n  action: keepequal",
            input: &[("a", "1"), ("c", "2"), ("b", "1;2")],
            want: Some(&[("a", "1"), ("c", "2"), ("b", "1;2")]),
        },
        Case {
            name: "dropequal: equal dropped",
            rules: DROPEQ,
            input: &[("a", "1"), ("b", "1")],
            want: None,
        },
        Case {
            name: "dropequal: different kept",
            rules: DROPEQ,
            input: &[("a", "1"), ("b", "2")],
            want: Some(&[("a", "1"), ("b", "2")]),
        },
    ]);
}

#[test]
fn hashmod() {
    check(&[
            Case {
                // md5("foo") = acbd18db4cc2f85c edef654fccc4a4d8;
                // 0xedef654fccc4a4d8 = 17145033699835028696; % 10 = 6.
                name: "foo mod 10",
                rules: "- source_labels: [a]\n  modulus: 10\n  target_label: shard\n  action: hashmod",
                input: &[("a", "foo")],
                want: Some(&[("a", "foo"), ("shard", "6")]),
            },
            Case {
                // 17145033699835028696 < 2^64-1: the value itself.
                name: "foo mod 2^64-1",
                rules: "- source_labels: [a]\n  modulus: 18446744073709551615\n  target_label: shard\n  action: hashmod",
                input: &[("a", "foo")],
                want: Some(&[("a", "foo"), ("shard", "17145033699835028696")]),
            },
            Case {
                // md5("") = d41d8cd98f00b204 e9800998ecf8427e;
                // 0xe9800998ecf8427e = 16825458760271544958; % 3 = 1.
                name: "missing source hashes the empty string",
                rules: "- source_labels: [a]\n  modulus: 3\n  target_label: shard\n  action: hashmod",
                input: &[],
                want: Some(&[("shard", "1")]),
            },
            Case {
                // md5("a;b") = 45d17989299efc43 21960bf46f2ebd0a;
                // 0x21960bf46f2ebd0a = 2420134994223480074; % 1000 = 74.
                name: "joined sources",
                rules: "- source_labels: [x, y]\n  modulus: 1000\n  target_label: shard\n  action: hashmod",
                input: &[("x", "a"), ("y", "b")],
                want: Some(&[("x", "a"), ("y", "b"), ("shard", "74")]),
            },
            Case {
                // md5("10.0.0.1:9100") = 1eac7f871dc4b32a 4cfeac4083628b3d;
                // 0x4cfeac4083628b3d = 5548061184049187645; % 10 = 5.
                name: "an address, then keep one shard",
                rules: "- source_labels: [__address__]\n  modulus: 10\n  target_label: __tmp_hash\n  action: hashmod\n- source_labels: [__tmp_hash]\n  regex: '5'\n  action: keep",
                input: &[("__address__", "10.0.0.1:9100")],
                want: Some(&[("__address__", "10.0.0.1:9100"), ("__tmp_hash", "5")]),
            },
        ]);
}

#[test]
fn labelmap() {
    const POD_LABELS: &str = "- action: labelmap\n  regex: __meta_kubernetes_pod_label_(.+)";
    check(&[
            Case {
                name: "pod labels become labels, the originals stay",
                rules: POD_LABELS,
                input: &[
                    ("__meta_kubernetes_pod_label_app", "web"),
                    ("__meta_kubernetes_pod_label_pod_template_hash", "5d8f"),
                    ("__meta_kubernetes_namespace", "ns"),
                ],
                want: Some(&[
                    ("__meta_kubernetes_pod_label_app", "web"),
                    ("__meta_kubernetes_pod_label_pod_template_hash", "5d8f"),
                    ("__meta_kubernetes_namespace", "ns"),
                    ("app", "web"),
                    ("pod_template_hash", "5d8f"),
                ]),
            },
            Case {
                name: "anchored: a name with the pattern inside it is not mapped",
                rules: POD_LABELS,
                input: &[("x__meta_kubernetes_pod_label_app", "web")],
                want: Some(&[("x__meta_kubernetes_pod_label_app", "web")]),
            },
            Case {
                name: "replacement template",
                rules: "- action: labelmap\n  regex: __meta_kubernetes_pod_label_(.+)\n  replacement: k8s_${1}",
                input: &[("__meta_kubernetes_pod_label_app", "web")],
                want: Some(&[("__meta_kubernetes_pod_label_app", "web"), ("k8s_app", "web")]),
            },
            Case {
                name: "overwrites; an empty-valued source deletes the target (Set of \"\" is Del)",
                rules: POD_LABELS,
                input: &[
                    ("__meta_kubernetes_pod_label_app", "web"),
                    ("__meta_kubernetes_pod_label_tier", ""),
                    ("app", "old"),
                    ("tier", "old"),
                ],
                want: Some(&[
                    ("__meta_kubernetes_pod_label_app", "web"),
                    ("__meta_kubernetes_pod_label_tier", ""),
                    ("app", "web"),
                ]),
            },
            Case {
                // Builder.Range order: untouched labels sorted (__meta_b_x),
                // then labels set by earlier rules (__meta_a_x): the last
                // write to x comes from __meta_a_x.
                name: "labels set by earlier rules are mapped after the untouched ones",
                rules: "- target_label: __meta_a_x\n  replacement: from_rule\n- action: labelmap\n  regex: __meta_[ab]_(x)",
                input: &[("__meta_b_x", "base")],
                want: Some(&[("__meta_a_x", "from_rule"), ("__meta_b_x", "base"), ("x", "from_rule")]),
            },
            Case {
                // `^(?s:a)|(b)$` is not anchored at both ends: Go's
                // ReplaceAllString replaces every match in the name:
                // "ab" -> "yy" (a at 0, b at the end), "xb" -> "xy".
                name: "replace-all on the name",
                rules: "- action: labelmap\n  regex: a)|(b\n  replacement: y",
                input: &[("ab", "2"), ("c", "3"), ("xb", "1")],
                want: Some(&[("ab", "2"), ("c", "3"), ("xb", "1"), ("xy", "1"), ("yy", "2")]),
            },
        ]);
}

#[test]
fn labeldrop_and_labelkeep() {
    check(&[
        Case {
            name: "labeldrop",
            rules: "- action: labeldrop\n  regex: __meta_.*",
            input: &[("__meta_x", "1"), ("__path__", "p"), ("app", "a")],
            want: Some(&[("__path__", "p"), ("app", "a")]),
        },
        Case {
            name: "labeldrop is anchored",
            rules: "- action: labeldrop\n  regex: meta",
            input: &[("__meta_x", "1"), ("meta", "2")],
            want: Some(&[("__meta_x", "1")]),
        },
        Case {
            name: "labelkeep",
            rules: "- action: labelkeep\n  regex: (app|pod|__path__)",
            input: &[
                ("__meta_x", "1"),
                ("__path__", "p"),
                ("app", "a"),
                ("pod", "p1"),
                ("apps", "x"),
            ],
            want: Some(&[("__path__", "p"), ("app", "a"), ("pod", "p1")]),
        },
        Case {
            name: "labelkeep then a label set afterwards",
            rules: "- action: labelkeep\n  regex: app\n- target_label: b\n  replacement: c",
            input: &[("app", "a"), ("z", "z")],
            want: Some(&[("app", "a"), ("b", "c")]),
        },
    ]);
}

#[test]
fn lowercase_and_uppercase() {
    const LOWER: &str = "- source_labels: [a]\n  target_label: t\n  action: lowercase";
    const UPPER: &str = "- source_labels: [a]\n  target_label: t\n  action: uppercase";
    check(&[
        Case {
            name: "lowercase",
            rules: LOWER,
            input: &[("a", "FooBAR-Ä")],
            want: Some(&[("a", "FooBAR-Ä"), ("t", "foobar-ä")]),
        },
        Case {
            // Go maps each rune through unicode.ToLower: U+0130 -> 'i'.
            name: "lowercase: Go's one-to-one mapping of İ",
            rules: LOWER,
            input: &[("a", "İSTANBUL")],
            want: Some(&[("a", "İSTANBUL"), ("t", "istanbul")]),
        },
        Case {
            name: "lowercase: final sigma is not special in Go",
            rules: LOWER,
            input: &[("a", "ΟΔΟΣ")],
            want: Some(&[("a", "ΟΔΟΣ"), ("t", "οδοσ")]),
        },
        Case {
            name: "uppercase of joined sources",
            rules: "- source_labels: [a, b]\n  target_label: t\n  action: uppercase",
            input: &[("a", "x"), ("b", "y-z")],
            want: Some(&[("a", "x"), ("b", "y-z"), ("t", "X;Y-Z")]),
        },
        Case {
            // Go: ß has no one-character uppercase, so it stays.
            name: "uppercase: ß stays",
            rules: UPPER,
            input: &[("a", "straße")],
            want: Some(&[("a", "straße"), ("t", "STRAßE")]),
        },
        Case {
            // U+1FB3's simple uppercase is U+1FBC.
            name: "uppercase: Greek with ypogegrammeni",
            rules: UPPER,
            input: &[("a", "ᾳ")],
            want: Some(&[("a", "ᾳ"), ("t", "ᾼ")]),
        },
        Case {
            name: "an empty value deletes the target",
            rules: LOWER,
            input: &[("t", "old")],
            want: Some(&[]),
        },
    ]);
}

#[test]
fn go_regex_dialect() {
    // (pattern, value, matches) under keep, i.e. anchored.
    let cases: &[(&str, &str, bool)] = &[
        // Go's \d \w \s \b are ASCII.
        (r"\d+", "12", true),
        (r"\d+", "١٢", false),
        (r"\w+", "cafe_1", true),
        (r"\w+", "café", false),
        (r"\W", "é", true),
        (r"\s", "\t", true),
        (r"\s", "\u{A0}", false),
        (r"\s", "\u{B}", false),
        (r"\S", "\u{B}", true),
        (r"x\bé", "xé", true),
        (r"x\Bé", "xé", false),
        (r"[\d.]+", "1.2", true),
        (r"[^\d]", "5", false),
        (r"[\w-]+", "a-b_c", true),
        // `{` that is not a repetition is literal.
        (r"a{", "a{", true),
        (r"a{,5}", "a{,5}", true),
        (r"a{02}", "a{02}", true),
        (r"a{2}", "aa", true),
        (r"a{1,}", "aaa", true),
        (r"a{1,2}b", "aab", true),
        (r"a}", "a}", true),
        // \Q...\E, octal, escaped punctuation.
        (r"\Q.*\E", ".*", true),
        (r"\Q.*\E", "ab", false),
        (r"\Q.*", ".*", true),
        (r"\101", "A", true),
        (r"\0", "\0", true),
        (r"\<a\>", "<a>", true),
        (r"\$1", "$1", true),
        (r"\.", ".", true),
        (r"\.", "a", false),
        (r"\\", "\\", true),
        (r"x\{2\}", "x{2}", true),
        // Inside classes: `[`, `&&`, `~~` are literal; `]` first is literal.
        (r"[[]", "[", true),
        (r"[a&&b]", "&", true),
        (r"[~~]", "~", true),
        (r"[]a]", "]", true),
        (r"[^]a]", "b", true),
        (r"[^]a]", "]", false),
        (r"[[:alpha:]]+", "abc", true),
        (r"[[:^digit:]]", "a", true),
        (r"[\[\]]", "]", true),
        // Shared syntax.
        (r"\pL+", "café", true),
        (r"\p{Greek}+", "αβ", true),
        (r"(?i)ABC", "abc", true),
        (r"\x41\x{263a}", "A☺", true),
        (r"(?P<n>a)(?<m>b)", "ab", true),
    ];
    for &(pattern, value, want) in cases {
        let cfg = RelabelConfig {
            source_labels: vec!["a".into()],
            regex: pattern.into(),
            action: Action::Keep,
            ..RelabelConfig::default()
        };
        let r = Relabeler::new(&[cfg]).unwrap_or_else(|e| panic!("pattern {pattern:?}: {e}"));
        let mut labels = map(&[("a", value)]);
        assert_eq!(
            r.apply(&mut labels),
            want,
            "pattern {pattern:?} on {value:?}"
        );
    }
}

/// The grafana/helm-charts promtail chart's default `relabel_configs`,
/// from the rendered chart config in deploy/.
fn helm() -> String {
    let cfg: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(include_str!("../../../deploy/promtail-helm/promtail.yaml"))
            .unwrap();
    serde_yaml_ng::to_string(&cfg["scrape_configs"][0]["relabel_configs"]).unwrap()
}

/// `input` plus `added`.
fn with(input: &[(&str, &str)], added: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut m = map(input);
    m.extend(map(added));
    m
}

#[test]
fn helm_chart_chain_deployment_pod() {
    let input: Pairs = &[
        ("__meta_kubernetes_namespace", "monitoring"),
        ("__meta_kubernetes_pod_name", "loki-gateway-5d8f7b9c4-x2x7k"),
        (
            "__meta_kubernetes_pod_controller_name",
            "loki-gateway-5d8f7b9c4",
        ),
        ("__meta_kubernetes_pod_label_app_kubernetes_io_name", "loki"),
        (
            "__meta_kubernetes_pod_label_app_kubernetes_io_instance",
            "loki",
        ),
        (
            "__meta_kubernetes_pod_label_app_kubernetes_io_component",
            "gateway",
        ),
        ("__meta_kubernetes_pod_node_name", "node-1"),
        ("__meta_kubernetes_pod_container_name", "nginx"),
        (
            "__meta_kubernetes_pod_uid",
            "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
        ),
    ];
    // The ReplicaSet hash 5d8f7b9c4 is 9 hex digits: stripped.
    // app: "loki;;loki-gateway;loki-gateway-5d8f7b9c4-x2x7k" -> "loki".
    // instance: "loki;" -> "loki"; component: "gateway;" -> "gateway".
    // The config-hash rule sees "//nginx": no match, __path__ stays.
    let want = with(
        input,
        &[
            ("__tmp_controller_name", "loki-gateway"),
            ("app", "loki"),
            ("instance", "loki"),
            ("component", "gateway"),
            ("node_name", "node-1"),
            ("namespace", "monitoring"),
            ("job", "monitoring/loki"),
            ("pod", "loki-gateway-5d8f7b9c4-x2x7k"),
            ("container", "nginx"),
            (
                "__path__",
                "/var/log/pods/*0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0/nginx/*.log",
            ),
        ],
    );
    assert_eq!(run(&helm(), input), Some(want));
}

#[test]
fn helm_chart_chain_statefulset_pod() {
    let input: Pairs = &[
        ("__meta_kubernetes_namespace", "logging"),
        ("__meta_kubernetes_pod_name", "loki-0"),
        ("__meta_kubernetes_pod_controller_name", "loki"),
        ("__meta_kubernetes_pod_node_name", "node-2"),
        ("__meta_kubernetes_pod_container_name", "loki"),
        ("__meta_kubernetes_pod_uid", "7c0a"),
    ];
    // app: ";;loki;loki-0" -> the first non-empty source, "loki".
    // instance and component: ";" has no non-';' run: no match, unset.
    let want = with(
        input,
        &[
            ("__tmp_controller_name", "loki"),
            ("app", "loki"),
            ("node_name", "node-2"),
            ("namespace", "logging"),
            ("job", "logging/loki"),
            ("pod", "loki-0"),
            ("container", "loki"),
            ("__path__", "/var/log/pods/*7c0a/loki/*.log"),
        ],
    );
    assert_eq!(run(&helm(), input), Some(want));
}

#[test]
fn helm_chart_chain_static_pod() {
    let input: Pairs = &[
        ("__meta_kubernetes_namespace", "kube-system"),
        ("__meta_kubernetes_pod_name", "kube-apiserver-node-1"),
        ("__meta_kubernetes_pod_controller_name", "node-1"),
        ("__meta_kubernetes_pod_label_component", "kube-apiserver"),
        ("__meta_kubernetes_pod_node_name", "node-1"),
        ("__meta_kubernetes_pod_container_name", "kube-apiserver"),
        ("__meta_kubernetes_pod_uid", "mirror-uid"),
        (
            "__meta_kubernetes_pod_annotationpresent_kubernetes_io_config_hash",
            "true",
        ),
        (
            "__meta_kubernetes_pod_annotation_kubernetes_io_config_hash",
            "9a8b7c6d5e4f",
        ),
    ];
    // "node-1": "-1" is not 8-10 hex digits, nothing stripped.
    // app: ";;node-1;kube-apiserver-node-1" -> "node-1".
    // component: ";kube-apiserver" -> "kube-apiserver".
    // __path__ is rewritten by the last rule from
    // "true/9a8b7c6d5e4f/kube-apiserver".
    let want = with(
        input,
        &[
            ("__tmp_controller_name", "node-1"),
            ("app", "node-1"),
            ("component", "kube-apiserver"),
            ("node_name", "node-1"),
            ("namespace", "kube-system"),
            ("job", "kube-system/node-1"),
            ("pod", "kube-apiserver-node-1"),
            ("container", "kube-apiserver"),
            (
                "__path__",
                "/var/log/pods/*9a8b7c6d5e4f/kube-apiserver/*.log",
            ),
        ],
    );
    assert_eq!(run(&helm(), input), Some(want));
}

#[test]
fn helm_chart_controller_name_regex() {
    let first =
        "- source_labels: [c]\n  regex: ([0-9a-z-.]+?)(-[0-9a-f]{8,10})?\n  target_label: t";
    let cases: &[(&str, Option<&str>)] = &[
        ("loki-gateway-5d8f7b9c4", Some("loki-gateway")),
        // Not all hex: the lazy group has to take everything.
        ("web-7c6d9bxkq2", Some("web-7c6d9bxkq2")),
        // A CronJob's Job: 8 digits are hex digits.
        ("backup-28391040", Some("backup")),
        // Too short, too long.
        ("web-abcdef1", Some("web-abcdef1")),
        ("web-0123456789a", Some("web-0123456789a")),
        ("promtail", Some("promtail")),
        // Upper case is outside the class; empty needs one character.
        ("Upper", None),
        ("", None),
    ];
    for (controller, want) in cases {
        let got = run(first, &[("c", controller)]).unwrap();
        assert_eq!(
            got.get("t").map(String::as_str),
            *want,
            "controller {controller:?}"
        );
    }
}

#[test]
fn validation_errors_name_the_entry_and_key() {
    let cases: &[(&str, &str)] = &[
            (
                "- action: replace",
                "relabel_configs[0].target_label: relabel configuration for replace action requires 'target_label' value",
            ),
            (
                "- target_label: a\n- target_label: b\n- source_labels: [x]",
                "relabel_configs[2].target_label: relabel configuration for replace action requires 'target_label' value",
            ),
            (
                "- action: hashmod\n  target_label: h",
                "relabel_configs[0].modulus: relabel configuration for hashmod requires non-zero modulus",
            ),
            (
                "- action: hashmod\n  modulus: 2",
                "relabel_configs[0].target_label: relabel configuration for hashmod action requires 'target_label' value",
            ),
            (
                "- action: hashmod\n  modulus: 2\n  target_label: ${1}",
                "relabel_configs[0].target_label: \"${1}\" is invalid 'target_label' for hashmod action",
            ),
            (
                "- target_label: foo-bar",
                "relabel_configs[0].target_label: \"foo-bar\" is invalid 'target_label' for replace action",
            ),
            (
                "- target_label: 1abc",
                "relabel_configs[0].target_label: \"1abc\" is invalid 'target_label' for replace action",
            ),
            (
                "- target_label: ${1}-x",
                "relabel_configs[0].target_label: \"${1}-x\" is invalid 'target_label' for replace action",
            ),
            (
                "- target_label: foo$",
                "relabel_configs[0].target_label: \"foo$\" is invalid 'target_label' for replace action",
            ),
            (
                "- action: lowercase",
                "relabel_configs[0].target_label: relabel configuration for lowercase action requires 'target_label' value",
            ),
            (
                "- action: lowercase\n  target_label: $1",
                "relabel_configs[0].target_label: \"$1\" is invalid 'target_label' for lowercase action",
            ),
            (
                "- action: uppercase\n  target_label: u\n  replacement: x",
                "relabel_configs[0].replacement: 'replacement' can not be set for uppercase action",
            ),
            (
                "- action: keepequal",
                "relabel_configs[0].target_label: relabel configuration for keepequal action requires 'target_label' value",
            ),
            (
                "- action: keepequal\n  target_label: b\n  regex: a",
                "relabel_configs[0].regex: keepequal action requires only 'source_labels' and `target_label`, and no other fields",
            ),
            (
                "- action: dropequal\n  target_label: b\n  separator: ','",
                "relabel_configs[0].separator: dropequal action requires only 'source_labels' and `target_label`, and no other fields",
            ),
            (
                "- action: dropequal\n  target_label: b\n  modulus: 3",
                "relabel_configs[0].modulus: dropequal action requires only 'source_labels' and `target_label`, and no other fields",
            ),
            (
                "- action: keepequal\n  target_label: b\n  replacement: x",
                "relabel_configs[0].replacement: 'replacement' can not be set for keepequal action",
            ),
            (
                "- action: labelmap\n  replacement: foo-$1",
                "relabel_configs[0].replacement: \"foo-$1\" is invalid 'replacement' for labelmap action",
            ),
            (
                "- action: labelmap\n  replacement: ''",
                "relabel_configs[0].replacement: \"\" is invalid 'replacement' for labelmap action",
            ),
            (
                "- action: labeldrop\n  source_labels: [a]",
                "relabel_configs[0].source_labels: labeldrop action requires only 'regex', and no other fields",
            ),
            (
                "- action: labelkeep\n  target_label: a",
                "relabel_configs[0].target_label: labelkeep action requires only 'regex', and no other fields",
            ),
            (
                "- action: labelkeep\n  modulus: 1",
                "relabel_configs[0].modulus: labelkeep action requires only 'regex', and no other fields",
            ),
            (
                "- action: labeldrop\n  separator: ','",
                "relabel_configs[0].separator: labeldrop action requires only 'regex', and no other fields",
            ),
            (
                "- action: labeldrop\n  replacement: x",
                "relabel_configs[0].replacement: labeldrop action requires only 'regex', and no other fields",
            ),
            (
                "- source_labels: [ok, foo-bar]\n  target_label: t",
                "relabel_configs[0].source_labels[1]: \"foo-bar\" is not a valid label name",
            ),
            (
                "- action: keep\n- action: keep\n  regex: '\\1'",
                "relabel_configs[1].regex: invalid regular expression \"\\\\1\": backreferences are not supported",
            ),
        ];
    for (rules, want) in cases {
        assert_eq!(new_err(rules), *want, "rules {rules:?}");
    }
    let bad = new_err("- action: keep\n  regex: '(a'");
    assert!(
        bad.starts_with("relabel_configs[0].regex: invalid regular expression \"(a\": "),
        "{bad}"
    );
    assert!(!bad.contains('\n'), "{bad}");
}

#[test]
fn valid_configs() {
    for rules in [
        "- target_label: $1",
        "- target_label: ${1}abc",
        "- target_label: $1abc",
        "- target_label: a$b",
        "- target_label: _",
        "- target_label: __tmp_$name_${x}",
        "- action: keep\n  target_label: anything-goes",
        "- action: labelmap",
        "- action: labelmap\n  replacement: k8s_${1}",
        "- action: labeldrop\n  regex: x",
        "- action: keepequal\n  source_labels: [a]\n  target_label: b",
        "- action: hashmod\n  modulus: 1\n  target_label: h",
        "- action: lowercase\n  target_label: l",
    ] {
        assert!(Relabeler::new(&parse(rules)).is_ok(), "rules {rules:?}");
    }
    assert!(Relabeler::new(&[]).is_ok());
}

#[test]
fn label_templates() {
    for (s, ok) in [
        ("a", true),
        ("_1", true),
        ("$1", true),
        ("${1}", true),
        ("${name}_x", true),
        ("x$1y", true),
        ("$1$2", true),
        ("", false),
        ("1a", false),
        ("$", false),
        ("$$", false),
        ("${}", false),
        ("${1", false),
        ("${1}}", false),
        ("a-$1", false),
        ("a.b", false),
    ] {
        assert_eq!(is_label_template(s), ok, "{s:?}");
    }
}

#[test]
fn yaml_keys_defaults_and_actions() {
    let all: Vec<RelabelConfig> = parse("- {}");
    assert_eq!(all, [RelabelConfig::default()]);
    let d = &all[0];
    assert_eq!(
        (
            d.separator.as_str(),
            d.regex.as_str(),
            d.replacement.as_str()
        ),
        (";", "(.*)", "$1")
    );
    assert_eq!(
        (d.modulus, d.action, d.target_label.as_str()),
        (0, Action::Replace, "")
    );

    for (yaml, want) in [
        ("Replace", Action::Replace),
        ("KEEP", Action::Keep),
        ("drop", Action::Drop),
        ("KeepEqual", Action::KeepEqual),
        ("dropequal", Action::DropEqual),
        ("HashMod", Action::HashMod),
        ("LabelMap", Action::LabelMap),
        ("labeldrop", Action::LabelDrop),
        ("labelkeep", Action::LabelKeep),
        ("LowerCase", Action::Lowercase),
        ("uppercase", Action::Uppercase),
    ] {
        let c = parse(&format!("- action: {yaml}"));
        assert_eq!(c[0].action, want, "{yaml}");
    }

    let e = serde_yaml_ng::from_str::<Vec<RelabelConfig>>("- action: explode").unwrap_err();
    assert!(
        e.to_string().contains("unknown relabel action \"explode\""),
        "{e}"
    );
    for empty in ["- action:", "- action: ''"] {
        let e = serde_yaml_ng::from_str::<Vec<RelabelConfig>>(empty).unwrap_err();
        assert!(
            e.to_string().contains("relabel action cannot be empty"),
            "{e}"
        );
    }
    let e = serde_yaml_ng::from_str::<Vec<RelabelConfig>>("- targetlabel: x").unwrap_err();
    assert!(e.to_string().contains("targetlabel"), "{e}");

    // Scalars that YAML would read as other types are strings here, as in Go.
    let c = &parse("- regex: true\n  replacement: 1\n  source_labels: [a]\n  target_label: t")[0];
    assert_eq!((c.regex.as_str(), c.replacement.as_str()), ("true", "1"));
}

#[test]
fn yaml_null_is_the_zero_value() {
    // Go YAML: `key:` with no value is the zero value, not the default.
    let c = &parse(
        "- separator:\n  regex:\n  replacement:\n  source_labels:\n  target_label:\n  modulus:",
    )[0];
    assert_eq!(c.separator, "");
    assert_eq!(c.regex, "");
    assert_eq!(c.replacement, "");
    assert!(c.source_labels.is_empty());
    assert_eq!(c.modulus, 0);
    // `regex:` alone then matches only the empty string.
    let keep = "- source_labels: [a]\n  action: keep\n  regex:";
    assert!(run(keep, &[]).is_some());
    assert!(run(keep, &[("a", "x")]).is_none());
    // `replacement:` alone: the target is deleted.
    let del = "- source_labels: [a]\n  target_label: t\n  replacement:";
    assert_eq!(
        run(del, &[("a", "x"), ("t", "old")]),
        Some(map(&[("a", "x")]))
    );
}
