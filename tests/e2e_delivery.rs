//! End to end: the real binary tails CRI files into the Loki-compatible test
//! receiver. Every line must arrive exactly once, whole, in order within its
//! stream, with the right labels and timestamps — also while files are
//! rotated kubelet-style under load.

#[path = "support/agent.rs"]
mod agent;
#[path = "support/receiver.rs"]
mod receiver;

use agent::{cri_line, Agent, PodLog, Setup};
use receiver::Receiver;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

const T0: i64 = 1_763_800_000_000_000_000;

/// The expected line `l` of file `f`: (content, timestamp of its F piece).
fn expected(f: usize, l: usize) -> (String, i64) {
    let content = format!("f{f:03} l{l:05} {}", "x".repeat(120 + (l * 7) % 80));
    (
        content,
        T0 + (f as i64) * 1_000_000_000 + (l as i64) * 1000 + 1,
    )
}

/// Writes line `l` of file `f`; every tenth line split into P/P/F pieces.
fn write_line(log: &mut PodLog, f: usize, l: usize) {
    let (content, ts) = expected(f, l);
    let stream = if l.is_multiple_of(13) {
        "stderr"
    } else {
        "stdout"
    };
    if l % 10 == 3 {
        let (a, rest) = content.split_at(40);
        let (b, c) = rest.split_at(30);
        log.write(&cri_line(ts - 2, stream, true, a));
        log.write(&cri_line(ts - 1, stream, true, b));
        log.write(&cri_line(ts, stream, false, c));
    } else {
        log.write(&cri_line(ts, stream, false, &content));
    }
}

/// Checks what the receiver got against files `0..files` × `0..lines`.
/// Returns the number of duplicates seen.
fn check_all(rx: &Receiver, logs: &[PodLog], lines: usize) -> usize {
    let mut seen: HashMap<(usize, usize), usize> = HashMap::new();
    let mut last_in_stream: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut dups = 0;
    for e in rx.entries() {
        assert!(e.valid_utf8, "agent sent invalid UTF-8: {:?}", e.line);
        let mut it = e.line.split(' ');
        let f: usize = it
            .next()
            .and_then(|s| s.strip_prefix('f'))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("unexpected line {:?}", e.line));
        let l: usize = it
            .next()
            .and_then(|s| s.strip_prefix('l'))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("unexpected line {:?}", e.line));
        let (content, ts) = expected(f, l);
        assert_eq!(e.line, content, "line {f}/{l} not whole");
        assert_eq!(e.ts_ns, ts, "line {f}/{l}: timestamp must be the F piece's");
        let stream = if l.is_multiple_of(13) {
            "stderr"
        } else {
            "stdout"
        };
        assert_eq!(e.labels.get("stream").map(String::as_str), Some(stream));
        assert_eq!(e.labels.get("job").map(String::as_str), Some("pods"));
        assert_eq!(e.labels.get("cluster").map(String::as_str), Some("test"));
        let want_file = logs[f].path.display().to_string();
        assert_eq!(e.labels.get("filename"), Some(&want_file), "filename label");
        assert!(
            !e.labels.keys().any(|k| k.starts_with("__")),
            "reserved label leaked: {:?}",
            e.labels
        );
        let n = seen.entry((f, l)).or_default();
        *n += 1;
        if *n > 1 {
            dups += 1;
            continue;
        }
        // Order within a stream (first deliveries only).
        let key = format!("{}{:?}", e.tenant, e.labels);
        if let Some(prev) = last_in_stream.insert(key, (f, l)) {
            assert!(
                prev < (f, l),
                "out of order in stream: {prev:?} then {:?}",
                (f, l)
            );
        }
    }
    for f in 0..logs.len() {
        for l in 0..lines {
            assert!(seen.contains_key(&(f, l)), "line f{f} l{l} never arrived");
        }
    }
    dups
}

#[test]
fn two_hundred_files_every_line_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start();
    let setup = Setup::new(dir.path(), &rx.push_url());
    const FILES: usize = 200;
    const LINES: usize = 2000;
    let mut logs: Vec<PodLog> = (0..FILES)
        .map(|f| PodLog::create(&setup.logs, &format!("pod{f:03}"), "app"))
        .collect();
    // Half written before the agent starts, half while it runs.
    for (f, log) in logs.iter_mut().enumerate() {
        for l in 0..LINES / 2 {
            write_line(log, f, l);
        }
    }
    let mut agent = Agent::start(dir.path(), &setup);
    assert!(
        agent.wait_ready(Duration::from_secs(60)),
        "agent never ready:\n{}",
        agent.log()
    );
    for l in LINES / 2..LINES {
        for (f, log) in logs.iter_mut().enumerate() {
            write_line(log, f, l);
        }
    }
    let total = FILES * LINES;
    let ok = rx.wait_until(Duration::from_secs(300), |r| r.count() >= total);
    assert!(
        ok,
        "only {} of {total} lines arrived; agent log tail:\n{}",
        rx.count(),
        tail(&agent.log())
    );
    // Let any stray extra line show up before counting.
    std::thread::sleep(Duration::from_millis(700));
    let dups = check_all(&rx, &logs, LINES);
    assert_eq!(dups, 0, "duplicates without any fault");
    assert_eq!(rx.count(), total);
    // The agent's own counters agree with the receiver.
    let sent = agent
        .metric_sum("promtail_sent_entries_total", &[])
        .unwrap_or(-1.0);
    assert_eq!(sent as usize, total, "promtail_sent_entries_total");
    let st = agent.terminate().expect("exit status");
    assert!(st.success(), "exit status {st:?}");
}

#[test]
fn kubelet_rotation_under_load_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start();
    let setup = Setup::new(dir.path(), &rx.push_url());
    const FILES: usize = 20;
    const LINES: usize = 1500;
    let mut logs: Vec<PodLog> = (0..FILES)
        .map(|f| PodLog::create(&setup.logs, &format!("rot{f:03}"), "app"))
        .collect();
    let mut agent = Agent::start(dir.path(), &setup);
    assert!(
        agent.wait_ready(Duration::from_secs(60)),
        "agent never ready:\n{}",
        agent.log()
    );
    let mut rotated: Vec<Vec<std::path::PathBuf>> = vec![Vec::new(); FILES];
    for l in 0..LINES {
        for (f, log) in logs.iter_mut().enumerate() {
            write_line(log, f, l);
            if log.written_since_rotate > 4096 {
                rotated[f].push(log.rotate());
                // The kubelet gzips older rotated files and unlinks the
                // originals (an open descriptor still reads them).
                if rotated[f].len() > 1 {
                    let old = rotated[f].remove(0);
                    gzip_and_unlink(&old);
                }
            }
        }
        // Pace the writers so a file lives long enough to be discovered
        // (the kubelet rotates at most every 10 s; this is ~50x faster).
        std::thread::sleep(Duration::from_millis(10));
    }
    let total = FILES * LINES;
    let ok = rx.wait_until(Duration::from_secs(300), |r| r.count() >= total);
    assert!(
        ok,
        "only {} of {total} lines arrived after rotations; log tail:\n{}",
        rx.count(),
        tail(&agent.log())
    );
    std::thread::sleep(Duration::from_millis(700));
    let dups = check_all(&rx, &logs, LINES);
    assert_eq!(dups, 0, "duplicates without any fault");
    assert!(agent.terminate().expect("exit").success());
}

fn gzip_and_unlink(path: &std::path::Path) {
    use std::io::Write;
    let data = std::fs::read(path).unwrap();
    let gz = path.with_file_name(format!(
        "{}.gz",
        path.file_name().unwrap().to_string_lossy()
    ));
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::fast(),
    );
    enc.write_all(&data).unwrap();
    enc.finish().unwrap();
    std::fs::remove_file(path).unwrap();
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
