//! Golden tests of the ready-made pipelines: every case under
//! `pipelines/testdata/<pipeline>/<case>.input` is run through
//! `pipeline_stages: [cri: {}, pipeline: <pipeline>]` built from YAML (the
//! real config path) and must give `<case>.expected` exactly.
//!
//! Input: one CRI line per line, prefixed by the container that wrote it
//! (`api 2024-01-20T10:00:00.1Z stdout F text`; each container is its own
//! file, so its own stream); `#` lines and blank lines are comments. An
//! empty content may be written without its trailing space.
//!
//! Expected: one block per entry, in the order they came out —
//! `=== <container> <timestamp RFC3339Nano> (<process|tick>)`, then
//! `labels: …` (the stream's labels but `filename` and `container`),
//! `metadata: …` when there is some, and the line, each of its lines after
//! `| `. `(tick)` marks an entry released by `max_wait_time` on a tick:
//! after the input every case gets one tick an hour later, and then a
//! flush, which must release nothing (nothing waits for shutdown).
//!
//! Beyond the file: every input line of a container comes out in the same
//! order in that container's entries (nothing dropped, nothing mixed).
//! `TAILTRACE_BLESS=1` rewrites the expected files; review every change by
//! hand — an expected file is a claim about the right output.

use crate::ack::Ack;
use crate::entry::{Entry, Timestamp};
use crate::labels::LabelSet;
use crate::metrics::Metrics;
use crate::pipeline::library::BUILTIN;
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

/// (container, CRI line, content) of each input line.
fn read_input(text: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for (n, l) in text.lines().enumerate() {
        if l.trim().is_empty() || l.starts_with('#') {
            continue;
        }
        let (container, cri) = l
            .split_once(' ')
            .unwrap_or_else(|| panic!("line {}: `<container> <cri line>`", n + 1));
        let parts: Vec<&str> = cri.splitn(4, ' ').collect();
        assert!(parts.len() >= 3, "line {}: not a CRI line: {cri}", n + 1);
        let content = parts.get(3).copied().unwrap_or("");
        let cri = format!("{} {} {} {}", parts[0], parts[1], parts[2], content);
        out.push((container.to_string(), cri, content.to_string()));
    }
    out
}

fn labels_of(container: &str) -> LabelSet {
    LabelSet::new([
        ("container", container.to_string()),
        (
            "filename",
            format!("/var/log/pods/default_{container}_uid/{container}/0.log"),
        ),
        ("job", "golden".to_string()),
    ])
}

fn render(e: &Entry, via: &str) -> String {
    let mut ts = String::new();
    e.timestamp.write_rfc3339_nano(&mut ts);
    let container = e.labels.get("container").unwrap_or("?");
    let labels: Vec<String> = e
        .labels
        .iter()
        .filter(|(k, _)| *k != "filename" && *k != "container")
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect();
    let mut s = format!(
        "=== {container} {ts} ({via})\nlabels: {}\n",
        labels.join(" ")
    );
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
fn run_case(pipeline: &str, input: &str) -> String {
    let yaml =
        format!("job_name: golden\npipeline_stages:\n  - cri: {{}}\n  - pipeline: {pipeline}\n");
    let sc: crate::config::ScrapeConfig = serde_yaml_ng::from_str(&yaml).unwrap();
    timestamp::test_now::set(Some(NOW));
    let built = stages::build(&sc.pipeline_stages, Arc::new(Metrics::new()));
    timestamp::test_now::set(None);
    let mut p = built.unwrap();
    let lines = read_input(input);
    let mut out = String::new();
    let mut by_container: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut record = |entries: &mut Vec<Entry>, via: &str, out: &mut String| {
        for e in entries.drain(..) {
            out.push_str(&render(&e, via));
            let c = e.labels.get("container").unwrap_or("?").to_string();
            by_container
                .entry(c)
                .or_default()
                .extend(e.line.split('\n').map(str::to_string));
            e.ack.ack();
        }
    };
    let mut got = Vec::new();
    for (i, (container, cri, _)) in lines.iter().enumerate() {
        // Read time: one microsecond per line from 2000-01-01, so an entry
        // that kept it (no time in its line, no CRI time) shows.
        let read = Timestamp(946_684_800_000_000_000 + i as i64 * 1000);
        let e = Entry::new(labels_of(container), read, cri.clone(), Ack::none());
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
    // Nothing dropped, nothing mixed: each container's lines, in order.
    let mut want: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (c, _, content) in &lines {
        want.entry(c.clone()).or_default().push(content.clone());
    }
    assert_eq!(by_container, want, "{pipeline}: lines lost or mixed");
    out
}

#[test]
fn every_builtin_pipeline_has_golden_cases_and_they_pass() {
    let bless = std::env::var("TAILTRACE_BLESS").is_ok_and(|v| v == "1");
    let mut failures = Vec::new();
    for (name, _) in BUILTIN {
        if *name == "level" {
            continue; // a building block, exercised by every other one
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
            let got = run_case(name, &text);
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
