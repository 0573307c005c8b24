//! The fuzz targets as bounded property tests: every function of
//! `tailtrace::fuzzing` (the same ones `fuzz/fuzz_targets/` call) run on
//! arbitrary bytes, on structure-aware inputs (CRI-shaped lines, JSON-ish
//! docker and journal lines, positions files with random values, configs
//! mutated from the examples) and on mutations of the repository's own
//! test data (pipeline goldens, example configs). Plus the properties that
//! need a generated value to compare with: lines that must be accepted
//! decode to what was written, an inserted trace ID is found.
//!
//! Bounded: each property runs a fixed number of cases (see [`cases`]); the
//! whole file takes well under a minute in release mode.
//!
//! Regression inputs found by fuzzing live next to the code they broke, as
//! unit tests.

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use std::path::Path;
use tailtrace::fuzzing as fz;
use tailtrace::labels::LabelSet;

fn ok(v: fz::Verdict) -> Result<(), TestCaseError> {
    v.map_err(TestCaseError::fail)
}

/// `n` cases per property, times `FUZZ_PROPS_SCALE` (default 1) for a
/// longer hunt: `FUZZ_PROPS_SCALE=100 cargo test --release --test fuzz_props`.
fn cases(n: u32) -> ProptestConfig {
    let scale: u32 = std::env::var("FUZZ_PROPS_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    ProptestConfig {
        cases: n.saturating_mul(scale.max(1)),
        // Found failures become unit tests next to the code they broke.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

fn read(rel: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Every `*.input` line of the pipeline goldens, without its leading
/// container or unit name: CRI lines (files) and `<ts> <message>` (journal).
fn golden_lines(journal: bool) -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/testdata");
    let mut out = Vec::new();
    let mut dirs: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
    dirs.sort_by_key(|d| d.path());
    for d in dirs {
        let mut files: Vec<_> = std::fs::read_dir(d.path()).unwrap().flatten().collect();
        files.sort_by_key(|f| f.path());
        for f in files {
            let name = f.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".input") || name.ends_with(".journal.input") != journal {
                continue;
            }
            for l in std::fs::read_to_string(f.path()).unwrap().lines() {
                if let Some((_, rest)) = l.split_once(' ').filter(|_| !l.starts_with('#')) {
                    out.push(rest.to_string());
                }
            }
        }
    }
    assert!(out.len() > 10, "goldens not found in {}", dir.display());
    out
}

/// A seed from `seeds`, then up to 8 byte edits (overwrite, insert,
/// delete) and maybe a cut.
fn mutated(seeds: Vec<String>) -> impl Strategy<Value = Vec<u8>> {
    let n = seeds.len();
    (
        0..n,
        proptest::collection::vec((any::<prop::sample::Index>(), 0u8..3, any::<u8>()), 0..8),
        proptest::option::of(any::<prop::sample::Index>()),
    )
        .prop_map(move |(i, edits, cut)| {
            let mut b = seeds[i].clone().into_bytes();
            for (at, op, byte) in edits {
                let k = at.index(b.len() + 1);
                match op {
                    0 if k < b.len() => b[k] = byte,
                    2 if k < b.len() => {
                        b.remove(k);
                    }
                    _ => b.insert(k, byte),
                }
            }
            if let Some(c) = cut {
                b.truncate(c.index(b.len() + 1));
            }
            b
        })
}

// ------------------------------------------------------------------- CRI

fn rfc3339() -> impl Strategy<Value = String> {
    (
        1700i32..2250,
        1u8..=12,
        1u8..=28,
        0u8..24,
        0u8..60,
        0u8..60,
        proptest::option::of("[0-9]{1,9}"),
        prop_oneof![
            Just("Z".to_string()),
            (any::<bool>(), 0u8..24, 0u8..60)
                .prop_map(|(neg, h, m)| format!("{}{h:02}:{m:02}", if neg { '-' } else { '+' })),
        ],
    )
        .prop_map(|(y, mo, d, h, mi, s, frac, zone)| {
            let frac = frac.map(|f| format!(".{f}")).unwrap_or_default();
            format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{frac}{zone}")
        })
}

fn cri_shaped() -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![rfc3339(), "[0-9TZ:.+ -]{0,30}", "\\PC{0,12}"],
        prop_oneof![Just("stdout"), Just("stderr"), Just("stdin"), Just("")],
        prop_oneof![
            Just("F"),
            Just("P"),
            Just("P:x"),
            Just("F:P"),
            Just(""),
            Just("\t")
        ],
        prop_oneof![Just(" "), Just("  "), Just("\t"), Just("")],
        bytes(80),
    )
        .prop_map(|(t, s, tags, sep, content)| {
            let mut b = format!("{t}{sep}{s} {tags} ").into_bytes();
            b.extend_from_slice(&content);
            b
        })
}

proptest! {
    #![proptest_config(cases(20_000))]

    #[test]
    fn cri_any_bytes(b in bytes(200)) { ok(fz::cri_line(&b))?; }

    #[test]
    fn cri_shaped_lines(b in cri_shaped()) { ok(fz::cri_line(&b))?; }

    #[test]
    fn cri_golden_mutations(b in mutated(golden_lines(false))) { ok(fz::cri_line(&b))?; }

    /// A line with valid fields is accepted, its timestamp is the instant
    /// an independent RFC 3339 parser reads, and the content is kept byte
    /// for byte.
    #[test]
    fn cri_valid_lines_decode_faithfully(
        t in rfc3339(),
        stderr in any::<bool>(),
        tags in "(P|F)(:[A-Za-z0-9]{1,3}){0,2}",
        content in bytes(100),
    ) {
        let stream = if stderr { "stderr" } else { "stdout" };
        let mut line = format!("{t} {stream} {tags} ").into_bytes();
        line.extend_from_slice(&content);
        let want = t.parse::<jiff::Timestamp>().unwrap().as_nanosecond();
        match tailtrace::source::cri::decode(&line) {
            Ok(l) => {
                prop_assert_eq!(i128::from(l.timestamp.0), want);
                prop_assert_eq!(l.stream.as_str(), stream);
                prop_assert_eq!(l.partial, tags.split(':').next() == Some("P"));
                prop_assert_eq!(l.content, &content[..]);
            }
            Err(e) => {
                // Only instants outside i64 nanoseconds may be refused.
                let in_range = i64::try_from(want).is_ok();
                prop_assert!(!in_range, "{e} for {:?}", String::from_utf8_lossy(&line));
            }
        }
        ok(fz::cri_line(&line))?;
    }
}

// ---------------------------------------------------------------- docker

fn docker_shaped() -> impl Strategy<Value = (Vec<u8>, String)> {
    (
        "\\PC{0,40}(\n)?",
        prop_oneof![Just("stdout"), Just("stderr"), Just("x")],
        prop_oneof![rfc3339(), "[0-9T:.Z+-]{0,30}"],
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(log, stream, time, attrs, reorder)| {
            let l = serde_json::to_string(&log).unwrap();
            let line = if reorder {
                format!(r#"{{"time":"{time}","stream":"{stream}","log":{l}}}"#)
            } else if attrs {
                format!(r#"{{"log":{l},"stream":"{stream}","attrs":{{"k":"v"}},"time":"{time}"}}"#)
            } else {
                format!(r#"{{"log":{l},"stream":"{stream}","time":"{time}"}}"#)
            };
            (line.into_bytes(), log)
        })
}

proptest! {
    #![proptest_config(cases(20_000))]

    #[test]
    fn docker_any_bytes(b in bytes(200)) { ok(fz::docker_line(&b))?; }

    #[test]
    fn docker_json_ish_lines((line, log) in docker_shaped()) {
        ok(fz::docker_line(&line))?;
        if let Ok(l) = tailtrace::source::docker::decode(&line) {
            prop_assert_eq!(&*l.log, log.as_str());
        }
    }

    #[test]
    fn docker_mutated_lines(b in docker_shaped().prop_flat_map(|(l, _)| mutated(vec![String::from_utf8(l).unwrap()]))) {
        ok(fz::docker_line(&b))?;
    }
}

// -------------------------------------------------------------- splitter

proptest! {
    #![proptest_config(cases(30_000))]

    #[test]
    fn splitter_any_bytes(b in bytes(400)) { ok(fz::line_splitter(&b))?; }

    /// Lines and newlines reassemble the input exactly, for any chunking of
    /// the reads; long lines are cut to the limit.
    #[test]
    fn splitter_any_chunking(
        input in proptest::collection::vec(prop_oneof![3 => Just(b'\n'), 1 => Just(b'\r'), 10 => any::<u8>()], 0..600),
        max_line in prop_oneof![1usize..64, Just(1 << 20)],
        reads in proptest::collection::vec(1usize..80, 0..20),
        start in 0u64..1 << 40,
    ) {
        ok(fz::split_lines(&input, max_line, &reads, start))?;
    }
}

// ------------------------------------------------------------- positions

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9/_.-]{1,20}",
        "\\PC{1,20}",
        ".{1,12}",
        Just("123".to_string()),
        Just("true".to_string()),
        Just("~".to_string()),
    ]
}

fn loaded() -> impl Strategy<Value = tailtrace::positions::format::Loaded> {
    use tailtrace::positions::{FileId, SavedFile};
    let file = (
        prop_oneof![3 => "/var/log/pods/[a-z0-9_-]{1,12}/[a-z]{1,6}/[0-9]\\.log", 1 => any_text().prop_map(|s| format!("/{s}"))],
        any::<u64>(),
        any::<u64>(),
        any::<u32>(),
        any::<u32>(),
        any::<u64>(),
        0u64..1 << 20,
    )
        .prop_map(|(path, dev, ino, fp_len, fp, offset, more)| SavedFile {
            path: path.into(),
            id: FileId { dev, ino },
            fp_len,
            fp,
            offset,
            size: offset.saturating_add(more),
            seq: more % 7,
        });
    (
        proptest::collection::vec(file, 0..5),
        proptest::collection::btree_map(
            any_text().prop_map(|s| format!("/{s}").into()),
            any::<u64>(),
            0..4,
        ),
        proptest::collection::btree_map(
            (prop_oneof![Just("journal-"), Just("cursor-")], any_text())
                .prop_map(|(p, s)| format!("{p}{s}")),
            any_text(),
            0..3,
        ),
        proptest::collection::btree_map(
            any_text().prop_map(|s| {
                tailtrace::positions::format::ChainKey::from(format!("/{s}").as_bytes())
            }),
            any_text(),
            0..3,
        ),
        proptest::option::of(any::<u64>()),
    )
        .prop_map(|(files, promtail, cursors, chains, spool)| {
            tailtrace::positions::format::Loaded {
                files,
                promtail,
                cursors,
                chains,
                spool,
                ours: true,
            }
        })
}

fn positions_yaml() -> impl Strategy<Value = Vec<u8>> {
    let key = prop_oneof![
        "/[a-z/.]{1,12}",
        "tailtrace:file:[0-9]{1,3}:[0-9x]{1,3}:[0-9]{1,3}:[0-9]{1,3}:/[a-z]{1,5}",
        "tailtrace:(chain|spool|version|other):?[a-z/]{0,6}",
        "(journal|cursor)-[a-z]{1,5}",
        "\\PC{0,10}",
    ];
    let value = prop_oneof![
        "[0-9]{1,25}",
        "[0-9]{1,6} [0-9]{1,6}",
        "'[0-9]{1,6}'",
        "\\PC{0,10}",
        Just("[1, 2]".to_string()),
        Just("{a: b}".to_string()),
    ];
    (
        proptest::option::of(prop_oneof![
            Just("tailtrace: 1\n"),
            Just("files: []\n"),
            Just("other: 1\n")
        ]),
        proptest::collection::vec((key, value), 0..6),
    )
        .prop_map(|(head, pairs)| {
            let mut s = head.unwrap_or_default().to_string();
            s.push_str("positions:\n");
            for (k, v) in pairs {
                s.push_str(&format!("  {k}: {v}\n"));
            }
            s.into_bytes()
        })
}

proptest! {
    #![proptest_config(cases(15_000))]

    #[test]
    fn positions_any_bytes(b in bytes(300)) { ok(fz::positions(&b))?; }

    #[test]
    fn positions_yaml_with_random_values(b in positions_yaml()) { ok(fz::positions(&b))?; }

    /// What the agent holds renders to a file that parses back to it.
    #[test]
    fn positions_render_parse_round_trips(l in loaded()) { ok(fz::positions_round_trip(l))?; }

    #[test]
    fn positions_mutated_files(b in loaded().prop_flat_map(|l| {
        let text = tailtrace::positions::format::render(&tailtrace::positions::format::Snapshot {
            files: &l.files, promtail: &l.promtail, cursors: &l.cursors, chains: &l.chains, chain_lines: None,
            spool: l.spool, is_current: &|_| true,
        });
        mutated(vec![text])
    })) {
        ok(fz::positions(&b))?;
    }
}

// ---------------------------------------------------------------- config

fn config_seeds() -> Vec<String> {
    let mut seeds: Vec<String> = [
        "examples/sample/promtail.yaml",
        "examples/loki-grafana/promtail.yaml",
        "deploy/promtail-helm/promtail.yaml",
    ]
    .iter()
    .map(|p| read(p))
    .collect();
    // Every built-in pipeline, as the stages of a job.
    for (name, text) in tailtrace::pipeline::library::BUILTIN {
        let stages: String = text.lines().map(|l| format!("      {l}\n")).collect();
        seeds.push(format!(
            "clients:\n  - url: ${{LOKI_URL}}\n    tenant_id: ${{TENANT:-x}}\nscrape_configs:\n  - job_name: {name}\n    pipeline_stages:\n{stages}"
        ));
    }
    seeds
}

proptest! {
    #![proptest_config(cases(10_000))]

    #[test]
    fn config_any_bytes(b in bytes(300)) { ok(fz::config(&b))?; }

    #[test]
    fn config_mutated_from_the_examples(b in mutated(config_seeds())) { ok(fz::config(&b))?; }

    #[test]
    fn config_with_random_substitutions(
        seed in 0usize..3,
        at in any::<prop::sample::Index>(),
        expr in prop_oneof![
            "\\$\\{[A-Z_]{1,8}\\}",
            "\\$\\{(HOSTNAME|TENANT|EMPTY|NOPE)(:-|:=|=|:\\?|:\\+|#|##|%|%%|/|//|:|\\^|,)[a-z0-9${}:/*-]{0,8}\\}",
            "\\$\\{[#!]?[A-Z]{0,3}",
            "\\$\\$|\\\\\\\\|\\\\/|\\$[A-Z0-9]",
        ],
    ) {
        let mut text = config_seeds().swap_remove(seed);
        let mut k = at.index(text.len() + 1);
        while !text.is_char_boundary(k) { k -= 1; }
        text.insert_str(k, &expr);
        ok(fz::config(text.as_bytes()))?;
    }

    /// Text without `$` and `\` is not changed; `${VAR}` put into it is
    /// replaced by the value and nothing else moves.
    #[test]
    fn env_expansion_is_identity_without_dollar(a in "[^$\\\\]{0,80}", b in "[^$\\\\]{0,80}") {
        let env = |n: &str| (n == "TENANT").then(|| "team-a".to_string());
        let plain = format!("{a}{b}");
        prop_assert_eq!(tailtrace::config::envsubst::expand(&plain, env), Ok(plain.clone()));
        let e = tailtrace::config::envsubst::expand(&format!("{a}${{TENANT}}{b}"), env);
        prop_assert_eq!(e, Ok(format!("{a}team-a{b}")));
    }
}

// ------------------------------------------------------- Loki error body

proptest! {
    #![proptest_config(cases(15_000))]

    #[test]
    fn loki_body_any_bytes(b in bytes(3000)) { ok(fz::loki_error_body(&b))?; }

    #[test]
    fn loki_body_text(
        chunk in any::<u8>(),
        first in prop_oneof!["\\PC{0,80}", "[a-zé€😀 ]{300,1200}", "entry for stream '\\{app=\"x\"\\}' has timestamp too old: [0-9TZ:.-]{20}"],
        end in prop_oneof![Just(""), Just("\n"), Just("\r\n")],
        rest in "\\PC{0,40}",
    ) {
        let mut b = vec![chunk];
        b.extend_from_slice(format!("{first}{end}{rest}").as_bytes());
        ok(fz::loki_error_body(&b))?;
    }
}

// ----------------------------------------------------------------- spool

fn label_sets() -> Vec<LabelSet> {
    (0..4)
        .map(|i| {
            LabelSet::new([
                ("app", format!("a{i}")),
                ("filename", format!("/x/{i}.log")),
            ])
        })
        .collect()
}

proptest! {
    #![proptest_config(cases(15_000))]

    #[test]
    fn spool_any_bytes(b in bytes(300)) { ok(fz::spool_chunk(&b))?; }

    #[test]
    fn spool_codec_any_bytes(b in bytes(400)) { ok(fz::spool_codec(&b))?; }

    /// Entries sealed into a chunk come back as written; any flipped byte
    /// (up to a 4-byte burst) and any cut is refused.
    #[test]
    fn spool_round_trips_and_corruption_is_refused(
        entries in proptest::collection::vec(
            (0usize..4, any::<i64>(), "\\PC{0,60}", proptest::collection::vec(("[a-z_]{1,8}", "\\PC{0,10}"), 0..3)),
            0..40),
        lz4 in any::<bool>(),
        flips in proptest::collection::vec((any::<usize>(), 1u8..), 1..8),
        cuts in proptest::collection::vec(any::<usize>(), 1..4),
    ) {
        ok(fz::spool_round_trip(&label_sets(), &entries, lz4, &flips, &cuts))?;
    }
}

// --------------------------------------------------------------- journal

fn journal_shaped() -> impl Strategy<Value = Vec<u8>> {
    let value = prop_oneof![
        "\\PC{0,20}".prop_map(serde_json::Value::from),
        proptest::collection::vec(any::<u8>(), 0..8).prop_map(serde_json::Value::from),
        proptest::collection::vec("[a-z]{0,4}", 1..3).prop_map(serde_json::Value::from),
        Just(serde_json::Value::Null),
        any::<i64>().prop_map(serde_json::Value::from),
        Just(serde_json::json!({"a": 1})),
        Just(serde_json::json!([1, 300])),
    ];
    (
        proptest::collection::btree_map(
            "(MESSAGE|PRIORITY|_SYSTEMD_UNIT|_PID|[A-Z_]{1,6})",
            value,
            0..5,
        ),
        proptest::option::of("s=[0-9a-f]{4};i=[0-9a-f]{1,3}"),
        proptest::option::of(prop_oneof![
            "[0-9]{1,20}".prop_map(serde_json::Value::from),
            any::<u64>().prop_map(serde_json::Value::from),
            Just(serde_json::json!(-1)),
            Just(serde_json::json!(1.5)),
        ]),
    )
        .prop_map(|(mut fields, cursor, rt)| {
            if let Some(c) = cursor {
                fields.insert("__CURSOR".into(), c.into());
            }
            if let Some(t) = rt {
                fields.insert("__REALTIME_TIMESTAMP".into(), t);
            }
            serde_json::to_vec(&fields).unwrap()
        })
}

fn journal_seeds() -> Vec<String> {
    golden_lines(true)
        .into_iter()
        .filter_map(|l| {
            let (_, msg) = l.split_once(' ')?;
            Some(
                serde_json::json!({"__CURSOR": "s=1;i=2;t=5f0a", "__REALTIME_TIMESTAMP": "1705744800100000",
                    "_SYSTEMD_UNIT": "kubelet.service", "PRIORITY": "6", "MESSAGE": msg})
                .to_string(),
            )
        })
        .collect()
}

proptest! {
    #![proptest_config(cases(15_000))]

    #[test]
    fn journal_any_bytes(b in bytes(200)) { ok(fz::journal_json(&b))?; }

    #[test]
    fn journal_json_shaped(b in journal_shaped()) { ok(fz::journal_json(&b))?; }

    #[test]
    fn journal_golden_mutations(b in mutated(journal_seeds())) { ok(fz::journal_json(&b))?; }

    /// A journal entry's fields come back as journalctl printed them: the
    /// last value of a repeated field, byte arrays decoded.
    #[test]
    fn journal_fields_decode_faithfully(msg in "\\PC{0,40}", tags in proptest::collection::vec("[a-z]{1,4}", 2..4), raw in proptest::collection::vec(any::<u8>(), 0..10)) {
        let line = serde_json::json!({"__CURSOR": "c", "__REALTIME_TIMESTAMP": "7", "MESSAGE": msg, "TAG": tags, "RAW": raw});
        let r = tailtrace::source::journal::Record::parse(line.to_string().as_bytes()).unwrap();
        prop_assert_eq!(r.message(), Some(msg.as_str()));
        prop_assert_eq!(r.fields.get("TAG"), tags.last());
        prop_assert_eq!(&r.fields["RAW"], &String::from_utf8_lossy(&raw).into_owned());
        prop_assert_eq!(r.timestamp.0, 7000);
    }
}

// ----------------------------------------------------------------- trace

/// Text that holds none of the detector's needles (`race`, `b3`, `00-`,
/// `Root=1-`): no `r`, `b`, `-`.
const PLAIN: &str = "[ac-qs-zAC-QS-Z0-9 ,;{}()=_.:]{0,60}";

fn hex(n: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[0-9a-fA-F]{{{n}}}"))
        .unwrap()
        .prop_filter("not all zero", |s| s.bytes().any(|b| b != b'0'))
}

proptest! {
    #![proptest_config(cases(20_000))]

    #[test]
    fn trace_any_bytes(b in bytes(300)) { ok(fz::trace_detect(&b))?; }

    #[test]
    fn trace_golden_mutations(b in mutated(golden_lines(false))) { ok(fz::trace_detect(&b))?; }

    /// An ID inserted into text without other trace context is found, in
    /// whichever form it is written.
    #[test]
    fn trace_inserted_id_is_found(
        before in PLAIN,
        after in PLAIN,
        trace in hex(32),
        span in hex(16),
        dd in 1u64..,
        form in 0usize..7,
    ) {
        let (inserted, want_trace, want_span) = match form {
            0 => (format!("trace_id={trace}"), trace.to_lowercase(), None),
            1 => (format!("\"traceId\":\"{trace}\",\"spanId\":\"{span}\""), trace.to_lowercase(), Some(span.to_lowercase())),
            2 => (format!("traceparent: 00-{trace}-{span}-01"), trace.to_lowercase(), Some(span.to_lowercase())),
            3 => (format!("X-B3-TraceId: {trace}"), trace.to_lowercase(), None),
            4 => (format!("uber-trace-id: {trace}:{span}:0:1"), trace.to_lowercase(), Some(span.to_lowercase())),
            5 => (format!("dd.trace_id={dd}"), format!("{dd:032x}"), None),
            _ => (format!("X-Amzn-Trace-Id: Root=1-{}-{}", &trace[..8], &trace[8..]), trace.to_lowercase(), None),
        };
        let line = format!("{before} {inserted} {after}");
        let d = tailtrace::pipeline::stages::trace::detect::Detector::new(
            tailtrace::pipeline::stages::trace::detect::Formats::ALL,
        );
        let found = d.detect(&line);
        prop_assert!(found.is_some(), "nothing found in {line:?}");
        let found = found.unwrap();
        prop_assert_eq!(found.trace_id(), want_trace.as_str(), "in {:?}", line);
        if let Some(s) = want_span {
            prop_assert_eq!(found.span_id(), Some(s.as_str()), "in {:?}", line);
        }
        ok(fz::trace_detect(line.as_bytes()))?;
    }
}
