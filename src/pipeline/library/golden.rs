//! Golden tests of the ready-made pipelines: every case under
//! `pipelines/testdata/<pipeline>/<case>.input` is run through
//! `pipeline_stages: [cri: {}, pipeline: <pipeline>]` built from YAML (the
//! real config path) and must give `<case>.expected` exactly. A case named
//! `<case>.journal.input` holds journal entries instead and runs through
//! `pipeline_stages: [pipeline: <pipeline>]`, as a `journal` job's entries
//! reach its pipeline. The [`BUILDING_BLOCKS`] have no cases of their own.
//!
//! Input: one CRI line per line, prefixed by the container that wrote it
//! (`api 2024-01-20T10:00:00.1Z stdout F text`; each container is its own
//! file, so its own stream); `#` lines and blank lines are comments. An
//! empty content may be written without its trailing space. A journal
//! case's lines are `<unit> <__REALTIME_TIMESTAMP as RFC 3339> <MESSAGE>`
//! (`kubelet.service 2024-01-20T10:00:00.100123Z I0120 …`): the entry has
//! that timestamp and the labels `job="golden"`, `unit="<unit>"` (each unit
//! its own stream), as the journal source gives after relabelling.
//!
//! Expected: one block per entry, in the order they came out —
//! `=== <container or unit> <timestamp RFC3339Nano> (<process|tick>)`,
//! then `labels: …` (the stream's labels but `filename`, `container` and
//! `unit`), `metadata: …` when there is some, and the line, each of its
//! lines after `| `. `(tick)` marks an entry released by `max_wait_time` on
//! a tick: after the input every case gets one tick an hour later, and
//! then a flush, which must release nothing (nothing waits for shutdown).
//!
//! Beyond the file: every input line of a container (unit) comes out in
//! the same order in that container's (unit's) entries (nothing dropped,
//! nothing mixed). `TAILTRACE_BLESS=1` rewrites the expected files; review
//! every change by hand — an expected file is a claim about the right
//! output.

use crate::ack::Ack;
use crate::entry::{Entry, Timestamp};
use crate::labels::LabelSet;
use crate::metrics::Metrics;
use crate::pipeline::library::{BUILDING_BLOCKS, BUILTIN};
use crate::pipeline::stages::{self, timestamp};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// "Now" for the cases: 2024-01-20T12:00:00Z (year-less klog times read
/// in 2024).
const NOW: i64 = 1_705_752_000;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/testdata")
}

/// Where a case's entries come from.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// CRI lines of pod log files: `cri: {}` first.
    Cri,
    /// Journal entries (`*.journal.input`): the pipeline alone.
    Journal,
}

impl Kind {
    /// The label naming an entry's stream in the input and the output.
    fn stream_label(self) -> &'static str {
        match self {
            Kind::Cri => "container",
            Kind::Journal => "unit",
        }
    }
}

/// One input line: its stream (container or unit), the entry's line and
/// timestamp (journal cases; CRI lines carry their own), and the content
/// that must come out.
struct Input {
    stream: String,
    line: String,
    ts: Option<Timestamp>,
    content: String,
}

fn read_input(text: &str, kind: Kind) -> Vec<Input> {
    let mut out = Vec::new();
    for (n, l) in text.lines().enumerate() {
        if l.trim().is_empty() || l.starts_with('#') {
            continue;
        }
        let (stream, rest) = l
            .split_once(' ')
            .unwrap_or_else(|| panic!("line {}: `<container|unit> <entry>`", n + 1));
        let input = match kind {
            Kind::Cri => {
                let parts: Vec<&str> = rest.splitn(4, ' ').collect();
                assert!(parts.len() >= 3, "line {}: not a CRI line: {rest}", n + 1);
                let content = parts.get(3).copied().unwrap_or("");
                Input {
                    stream: stream.to_string(),
                    line: format!("{} {} {} {}", parts[0], parts[1], parts[2], content),
                    ts: None,
                    content: content.to_string(),
                }
            }
            Kind::Journal => {
                let (ts, message) = rest.split_once(' ').unwrap_or((rest, ""));
                let ts: jiff::Timestamp = ts
                    .parse()
                    .unwrap_or_else(|e| panic!("line {}: timestamp {ts:?}: {e}", n + 1));
                Input {
                    stream: stream.to_string(),
                    line: message.to_string(),
                    ts: Some(Timestamp(ts.as_nanosecond() as i64)),
                    content: message.to_string(),
                }
            }
        };
        out.push(input);
    }
    out
}

fn labels_of(stream: &str, kind: Kind) -> LabelSet {
    match kind {
        Kind::Cri => LabelSet::new([
            ("container", stream.to_string()),
            (
                "filename",
                format!("/var/log/pods/default_{stream}_uid/{stream}/0.log"),
            ),
            ("job", "golden".to_string()),
        ]),
        Kind::Journal => {
            LabelSet::new([("job", "golden".to_string()), ("unit", stream.to_string())])
        }
    }
}

fn render(e: &Entry, via: &str, kind: Kind) -> String {
    let mut ts = String::new();
    e.timestamp.write_rfc3339_nano(&mut ts);
    let stream = e.labels.get(kind.stream_label()).unwrap_or("?");
    let labels: Vec<String> = e
        .labels
        .iter()
        .filter(|(k, _)| !matches!(*k, "filename" | "container" | "unit"))
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect();
    let mut s = format!("=== {stream} {ts} ({via})\nlabels: {}\n", labels.join(" "));
    if !e.metadata.is_empty() {
        let m: Vec<String> = e
            .metadata
            .iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect();
        s.push_str(&format!("metadata: {}\n", m.join(" ")));
    }
    for l in e.line.split('\n') {
        if l.is_empty() {
            s.push_str("|\n");
        } else {
            s.push_str(&format!("| {l}\n"));
        }
    }
    s
}

/// Runs one case; returns the rendered output.
fn run_case(pipeline: &str, input: &str, kind: Kind) -> String {
    let cri = match kind {
        Kind::Cri => "  - cri: {}\n",
        Kind::Journal => "",
    };
    let yaml = format!("job_name: golden\npipeline_stages:\n{cri}  - pipeline: {pipeline}\n");
    let sc: crate::config::ScrapeConfig = serde_yaml_ng::from_str(&yaml).unwrap();
    timestamp::test_now::set(Some(NOW));
    let built = stages::build(&sc.pipeline_stages, Arc::new(Metrics::new()));
    timestamp::test_now::set(None);
    let mut p = built.unwrap();
    let lines = read_input(input, kind);
    let mut out = String::new();
    let mut by_stream: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut record = |entries: &mut Vec<Entry>, via: &str, out: &mut String| {
        for e in entries.drain(..) {
            out.push_str(&render(&e, via, kind));
            let c = e.labels.get(kind.stream_label()).unwrap_or("?").to_string();
            by_stream
                .entry(c)
                .or_default()
                .extend(e.line.split('\n').map(str::to_string));
            e.ack.ack();
        }
    };
    let mut got = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        // Read time: one microsecond per line from 2000-01-01, so an entry
        // that kept it (no time in its line, no CRI time) shows. A journal
        // entry has its journal timestamp.
        let read =
            l.ts.unwrap_or(Timestamp(946_684_800_000_000_000 + i as i64 * 1000));
        let e = Entry::new(
            labels_of(&l.stream, kind),
            read,
            l.line.clone().into(),
            Ack::none(),
        );
        p.process(e, &mut got);
        record(&mut got, "process", &mut out);
    }
    p.tick(Instant::now() + Duration::from_secs(3600), &mut got);
    record(&mut got, "tick", &mut out);
    p.flush(&mut got);
    assert!(
        got.is_empty(),
        "{pipeline}: entries were still held after max_wait_time: {:?}",
        got.iter().map(|e| &e.line).collect::<Vec<_>>()
    );
    // Nothing dropped, nothing mixed: each stream's lines, in order.
    let mut want: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for l in &lines {
        want.entry(l.stream.clone())
            .or_default()
            .push(l.content.clone());
    }
    assert_eq!(by_stream, want, "{pipeline}: lines lost or mixed");
    out
}

#[test]
fn every_builtin_pipeline_has_golden_cases_and_they_pass() {
    let bless = std::env::var("TAILTRACE_BLESS").is_ok_and(|v| v == "1");
    let mut failures = Vec::new();
    for (name, _) in BUILTIN {
        if BUILDING_BLOCKS.contains(name) {
            continue; // exercised by the pipelines using them
        }
        let dir = testdata().join(name);
        let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "input"))
            .collect();
        cases.sort();
        assert!(!cases.is_empty(), "no golden cases for {name}");
        for input in cases {
            let text = std::fs::read_to_string(&input).unwrap();
            let journal = input
                .file_stem()
                .is_some_and(|s| s.to_string_lossy().ends_with(".journal"));
            let kind = if journal { Kind::Journal } else { Kind::Cri };
            let got = run_case(name, &text, kind);
            let expected = input.with_extension("expected");
            if bless {
                std::fs::write(&expected, &got).unwrap();
                continue;
            }
            let want = std::fs::read_to_string(&expected).unwrap_or_default();
            if got != want {
                failures.push(format!(
                    "{}: output differs\n--- expected\n{want}\n--- got\n{got}",
                    input.display()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every line of the `klog` and `klog-journal` cases (text, JSON, traces,
/// multi-line values, from files and from the journal) as journal entries
/// with timestamps unrelated to the times klog wrote: through
/// `klog-journal` each entry keeps the timestamp of its first line, while
/// `klog` (files) replaces it — so the check can fail.
#[test]
fn klog_journal_keeps_the_journal_timestamp_klog_does_not() {
    let mut lines = Vec::new();
    for name in ["klog", "klog-journal"] {
        let mut cases: Vec<PathBuf> = std::fs::read_dir(testdata().join(name))
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "input"))
            .collect();
        cases.sort();
        for case in cases {
            let text = std::fs::read_to_string(&case).unwrap();
            let kind = if case.to_string_lossy().ends_with(".journal.input") {
                Kind::Journal
            } else {
                Kind::Cri
            };
            lines.extend(read_input(&text, kind).into_iter().map(|l| l.content));
        }
    }
    // 2000-01-01 plus one second per line: never a time klog wrote.
    let ts_of = |i: usize| Timestamp(946_684_800_000_000_000 + i as i64 * 1_000_000_000);
    let first_ts: BTreeMap<&str, Timestamp> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| (l.as_str(), ts_of(i)))
        .collect();
    let run = |pipeline: &str| {
        let yaml = format!("- pipeline: {pipeline}\n");
        let stages = crate::pipeline::library::parse(&yaml).unwrap();
        let mut p = stages::build(&stages, Arc::new(Metrics::new())).unwrap();
        let mut out = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            let labels = labels_of("kubelet.service", Kind::Journal);
            p.process(
                Entry::new(labels, ts_of(i), l.clone().into(), Ack::none()),
                &mut out,
            );
        }
        p.flush(&mut out);
        out.into_iter()
            .map(|e| {
                let first = e.line.split('\n').next().unwrap_or("").to_string();
                e.ack.ack();
                (first, e.timestamp)
            })
            .collect::<Vec<_>>()
    };
    let journal = run("klog-journal");
    assert!(journal.len() > 20, "{}", journal.len());
    for (first, ts) in &journal {
        assert_eq!(Some(ts), first_ts.get(first.as_str()), "{first}");
    }
    let files = run("klog");
    let replaced = files
        .iter()
        .filter(|(first, ts)| Some(ts) != first_ts.get(first.as_str()))
        .count();
    assert!(replaced > 20, "klog replaced {replaced} timestamps");
}
