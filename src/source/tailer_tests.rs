//! Scenario tests of the whole tailer on a real directory: rotation,
//! restart, gzip catch-up, truncation, deletion, fairness, bounded
//! descriptors. Every wait has a generous give-up timeout; nothing asserts
//! timings.

use super::gz::gzip_file;
use super::testkit::{append, test_opts, AckMode, Harness};
use std::time::Duration;

fn lines(prefix: &str, r: std::ops::Range<usize>) -> Vec<String> {
    r.map(|i| format!("{prefix}-{i:05}")).collect()
}

fn write_lines(p: &std::path::Path, ls: &[String]) {
    let mut s = String::new();
    for l in ls {
        s.push_str(l);
        s.push('\n');
    }
    append(p, &s);
}

fn count(h: &Harness, line: &str) -> usize {
    h.log.lock().unwrap().seen.get(line).copied().unwrap_or(0)
}

fn assert_once(h: &Harness, ls: &[String]) {
    for l in ls {
        assert_eq!(count(h, l), 1, "line {l} received {} times", count(h, l));
    }
}

#[test]
fn partial_line_waits_for_its_newline_and_labels_carry_filename() {
    let mut h = Harness::new("*/*.log", test_opts(), AckMode::Immediate);
    let d = h.logs().join("ns_pod_uid");
    std::fs::create_dir_all(&d).unwrap();
    let p = d.join("0.log");
    append(&p, "first\nsec");
    h.start();
    h.wait_received(&["first".into()]);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(count(&h, "sec"), 0, "partial line emitted early");
    append(&p, "ond\n");
    h.wait_received(&["second".into()]);
    let l = h.log.lock().unwrap();
    assert_eq!(l.got.len(), 2);
    assert_eq!(l.got[0].filename, p.to_string_lossy());
}

#[test]
fn kubelet_rotation_reads_the_old_inode_to_its_end() {
    let mut h = Harness::new("*.log", test_opts(), AckMode::Immediate);
    let p = h.logs().join("0.log");
    let a = lines("a", 0..100);
    write_lines(&p, &a);
    h.start();
    h.wait_received(&a[..1]);
    // The runtime keeps writing to the old inode until it reopens.
    let mut old = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
    let rotated = h.logs().join("0.log.20261122-101500");
    std::fs::rename(&p, &rotated).unwrap();
    let b = lines("b", 0..50);
    {
        use std::io::Write;
        for l in &b {
            writeln!(old, "{l}").unwrap();
        }
    }
    let c = lines("c", 0..50);
    write_lines(&p, &c);
    let all: Vec<String> = a.iter().chain(&b).chain(&c).cloned().collect();
    h.wait_received(&all);
    std::thread::sleep(Duration::from_millis(200));
    assert_once(&h, &all);
    // Everything carries the discovered path, in order per inode.
    let l = h.log.lock().unwrap();
    assert!(l.got.iter().all(|g| g.filename == p.to_string_lossy()));
    let ab: Vec<&str> = l
        .got
        .iter()
        .filter(|g| !g.line.starts_with('c'))
        .map(|g| g.line.as_str())
        .collect();
    assert_eq!(
        ab,
        a.iter().chain(&b).map(|s| s.as_str()).collect::<Vec<_>>()
    );
}

#[test]
fn restart_resumes_at_the_acknowledged_offset() {
    let mut h = Harness::new("*.log", test_opts(), AckMode::Immediate);
    let p = h.logs().join("0.log");
    let a = lines("a", 0..200);
    write_lines(&p, &a);
    h.start();
    h.wait_received(&a);
    h.stop();
    let b = lines("b", 0..200);
    write_lines(&p, &b);
    h.start();
    h.wait_received(&b);
    std::thread::sleep(Duration::from_millis(200));
    let all: Vec<String> = a.iter().chain(&b).cloned().collect();
    assert_once(&h, &all);
}

#[test]
fn unacknowledged_lines_are_read_again_after_a_crash() {
    let mut h = Harness::new("*.log", test_opts(), AckMode::Delayed(7));
    let p = h.logs().join("0.log");
    let a = lines("a", 0..500);
    write_lines(&p, &a);
    h.start();
    h.wait_received(&a);
    h.stop(); // drops whatever was held
    h.start();
    h.wait_acked(&a);
    let l = h.log.lock().unwrap();
    // Nothing acknowledged in run 1 before the first unacknowledged line
    // came back in run 2.
    let first_unacked = a.iter().position(|x| !l.acked.contains(&(1, x.clone())));
    for (i, x) in a.iter().enumerate() {
        let again = l.got.iter().any(|g| g.run == 2 && &g.line == x);
        match first_unacked {
            Some(f) if i >= f => {}
            _ => assert!(!again, "acknowledged line {x} duplicated"),
        }
    }
}

#[test]
fn rotated_while_stopped_is_found_by_inode() {
    let mut h = Harness::new("*.log", test_opts(), AckMode::Immediate);
    let p = h.logs().join("0.log");
    let a = lines("a", 0..20);
    write_lines(&p, &a);
    h.start();
    h.wait_received(&a);
    h.stop();
    let b = lines("b", 0..20);
    write_lines(&p, &b);
    std::fs::rename(&p, h.logs().join("0.log.20261122-101500")).unwrap();
    let c = lines("c", 0..20);
    write_lines(&p, &c);
    h.start();
    let all: Vec<String> = a.iter().chain(&b).chain(&c).cloned().collect();
    h.wait_received(&all);
    std::thread::sleep(Duration::from_millis(200));
    assert_once(&h, &all);
}

#[test]
fn rotated_and_gzipped_while_stopped_is_caught_up_from_the_gz() {
    let mut h = Harness::new("*.log", test_opts(), AckMode::Immediate);
    let p = h.logs().join("0.log");
    let a = lines("a", 0..300);
    write_lines(&p, &a);
    h.start();
    h.wait_received(&a);
    h.stop();
    let b = lines("b", 0..300);
    write_lines(&p, &b);
    let r = h.logs().join("0.log.20261122-101500");
    std::fs::rename(&p, &r).unwrap();
    gzip_file(&r, &h.logs().join("0.log.20261122-101500.gz"));
    std::fs::remove_file(&r).unwrap();
    let c = lines("c", 0..20);
    write_lines(&p, &c);
    h.start();
    let all: Vec<String> = a.iter().chain(&b).chain(&c).cloned().collect();
    h.wait_received(&all);
    std::thread::sleep(Duration::from_millis(200));
    assert_once(&h, &all);
}

#[test]
fn a_file_gone_while_stopped_is_counted_and_forgotten() {
    let mut h = Harness::new("*.log", test_opts(), AckMode::Immediate);
    let p = h.logs().join("0.log");
    write_lines(&p, &lines("a", 0..5));
    h.start();
    h.wait_received(&lines("a", 0..5));
    h.stop();
    write_lines(&p, &lines("b", 0..5));
    std::fs::rename(&p, h.logs().join("elsewhere")).unwrap();
    h.start();
    h.wait_for("rotated_away", |_| h.counter("rotated_away") >= 1);
    h.stop();
    assert_eq!(h.positions().file_count(), 0);
}

#[test]
fn copytruncate_reads_again_from_the_start() {
    let mut h = Harness::new("*.log", test_opts(), AckMode::Immediate);
    let p = h.logs().join("0.log");
    let a = lines("a", 0..50);
    write_lines(&p, &a);
    h.start();
    h.wait_acked(&a);
    let before = h.counter("truncated");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(0)
        .unwrap();
    h.wait_counter_above("truncated", before);
    let b = lines("b", 0..5);
    write_lines(&p, &b);
    h.wait_received(&b);
    // And a restart resumes in the new content.
    h.stop();
    let c = lines("c", 0..5);
    write_lines(&p, &c);
    h.start();
    h.wait_received(&c);
    std::thread::sleep(Duration::from_millis(200));
    let all: Vec<String> = a.iter().chain(&b).chain(&c).cloned().collect();
    assert_once(&h, &all);
}

#[test]
fn deleted_file_is_read_to_its_end_then_forgotten() {
    let mut h = Harness::new("*.log", test_opts(), AckMode::Immediate);
    let p = h.logs().join("0.log");
    write_lines(&p, &lines("a", 0..1));
    h.start();
    h.wait_received(&lines("a", 0..1));
    let mut w = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
    std::fs::remove_file(&p).unwrap();
    {
        use std::io::Write;
        w.write_all(b"after-delete\n").unwrap();
    }
    h.wait_received(&["after-delete".into()]);
    drop(w);
    h.wait_for("the position to be forgotten", |_| {
        let pos = std::fs::read_to_string(&h.pos_file).unwrap_or_default();
        !pos.contains("0.log")
    });
}

#[test]
fn a_busy_file_does_not_starve_a_quiet_one() {
    let mut o = test_opts();
    o.read_chunk = 4096;
    let mut h = Harness::new("*.log", o, AckMode::Immediate);
    let big = lines("big", 0..40_000);
    write_lines(&h.logs().join("big.log"), &big);
    write_lines(&h.logs().join("small.log"), &["small-0".to_string()]);
    h.start();
    h.wait_received(&big[big.len() - 1..]);
    h.wait_received(&["small-0".into()]);
    let l = h.log.lock().unwrap();
    let idx = l.got.iter().position(|g| g.line == "small-0").unwrap();
    assert!(
        idx < big.len() / 10,
        "quiet file served only after {idx} lines"
    );
}

#[test]
fn bounded_descriptors_still_follow_rotation() {
    let mut o = test_opts();
    o.max_open_files = 2;
    o.idle_close = Duration::from_millis(1);
    let mut h = Harness::new("*/0.log", o, AckMode::Immediate);
    let dirs: Vec<_> = (0..5).map(|i| h.logs().join(format!("c{i}"))).collect();
    for d in &dirs {
        std::fs::create_dir_all(d).unwrap();
    }
    h.start();
    let mut all = Vec::new();
    for round in 0..4 {
        for (i, d) in dirs.iter().enumerate() {
            let ls = lines(&format!("r{round}-c{i}"), 0..10);
            write_lines(&d.join("0.log"), &ls);
            all.extend(ls);
        }
        if round == 1 {
            h.wait_received(&all);
            // Quiet files get closed; rotate them while closed.
            std::thread::sleep(Duration::from_millis(1500));
            for (i, d) in dirs.iter().enumerate() {
                let extra = lines(&format!("late-c{i}"), 0..3);
                write_lines(&d.join("0.log"), &extra);
                all.extend(extra);
                std::fs::rename(d.join("0.log"), d.join("0.log.1")).unwrap();
                if i % 2 == 0 {
                    gzip_file(&d.join("0.log.1"), &d.join("0.log.1.gz"));
                    std::fs::remove_file(d.join("0.log.1")).unwrap();
                }
            }
        }
    }
    h.wait_received(&all);
    std::thread::sleep(Duration::from_millis(200));
    assert_once(&h, &all);
}

#[test]
fn invalid_utf8_and_long_lines_are_counted_not_fatal() {
    let mut o = test_opts();
    o.max_line_bytes = 100;
    let mut h = Harness::new("*.log", o, AckMode::Immediate);
    let p = h.logs().join("0.log");
    std::fs::write(h.logs().join("empty.log"), b"").unwrap();
    let mut data = b"bad \xff\xfe bytes\n".to_vec();
    data.extend(std::iter::repeat_n(b'x', 5000));
    data.extend(b"\nafter\n");
    std::fs::write(&p, &data).unwrap();
    h.start();
    h.wait_received(&["after".into()]);
    let l = h.log.lock().unwrap();
    assert_eq!(l.got[0].line, "bad \u{fffd}\u{fffd} bytes");
    assert_eq!(l.got[1].line, "x".repeat(100));
    drop(l);
    assert_eq!(h.counter("line_too_long"), 1);
    assert!(h
        .metrics
        .encode()
        .contains("tailtrace_invalid_utf8_lines_total{path="));
}

#[test]
fn promtail_offsets_are_imported() {
    let mut h = Harness::new("*.log", test_opts(), AckMode::Immediate);
    let p = h.logs().join("0.log");
    write_lines(&p, &["old".to_string(), "new".to_string()]);
    std::fs::write(
        &h.pos_file,
        format!("positions:\n  {}: \"4\"\n", p.display()),
    )
    .unwrap();
    h.start();
    h.wait_received(&["new".into()]);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(count(&h, "old"), 0);
}
