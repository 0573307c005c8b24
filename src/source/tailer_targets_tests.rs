//! Scenario tests of target sets changing while the tailer runs (pods come
//! and go, their labels change): nothing read before a dynamic job's first
//! set, files keep their place when their target is replaced, a removed
//! target's file is read to its end and resumes where it stopped if the
//! target comes back, saved positions survive a restart until the first
//! set, and a path first seen late catches up on its rotations. Every wait
//! has a generous give-up bound; nothing asserts timings.

use super::tailer_tests::{assert_once, count, lines, write_lines};
use super::testkit::{test_opts, AckMode, Harness};
use std::time::{Duration, Instant};

fn dynamic() -> Harness {
    let mut h = Harness::new("*/*.log", test_opts(), AckMode::Immediate);
    h.dynamic = true;
    h
}

fn pod_dir(h: &Harness) -> std::path::PathBuf {
    let d = h.logs().join("ns_pod_uid");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The `app` label each of `ls` arrived with (every time it arrived).
fn apps(h: &Harness, ls: &[String]) -> Vec<String> {
    let l = h.log.lock().unwrap();
    l.got
        .iter()
        .filter(|g| ls.contains(&g.line))
        .map(|g| g.app.clone())
        .collect()
}

fn wait_until(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn dynamic_job_reads_nothing_before_its_first_set_then_everything_once() {
    let mut h = dynamic();
    let p = pod_dir(&h).join("0.log");
    let a = lines("a", 0..200);
    write_lines(&p, &a);
    h.start();
    // Several rescans pass with no target: nothing may be read.
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(h.log.lock().unwrap().got.len(), 0);
    h.set_targets(vec![h.target(&[("app", "web")])]);
    h.wait_received(&a);
    std::thread::sleep(Duration::from_millis(200));
    assert_once(&h, &a);
    assert!(apps(&h, &a).iter().all(|x| x == "web"));
}

#[test]
fn replaced_target_moves_its_files_on_from_where_they_were() {
    let mut h = dynamic();
    let p = pod_dir(&h).join("0.log");
    h.start();
    h.set_targets(vec![h.target(&[("app", "v1")])]);
    let a = lines("a", 0..300);
    write_lines(&p, &a);
    h.wait_received(&a);
    // The pod's labels changed: same glob, other labels.
    h.set_targets(vec![h.target(&[("app", "v2")])]);
    // Applied before the next lines are read (the feed wakes the tailer;
    // give it a moment, then write).
    std::thread::sleep(Duration::from_millis(300));
    let b = lines("b", 0..300);
    write_lines(&p, &b);
    h.wait_received(&b);
    std::thread::sleep(Duration::from_millis(200));
    assert_once(&h, &a);
    assert_once(&h, &b);
    assert!(apps(&h, &a).iter().all(|x| x == "v1"));
    assert!(apps(&h, &b).iter().all(|x| x == "v2"), "{:?}", apps(&h, &b));
}

#[test]
fn removed_target_is_read_to_its_end_then_resumes_if_it_comes_back() {
    let mut h = dynamic();
    let p = pod_dir(&h).join("0.log");
    h.start();
    h.set_targets(vec![h.target(&[("app", "web")])]);
    let a = lines("a", 0..100);
    write_lines(&p, &a);
    h.wait_received(&a);
    // Lines written just before the target goes are still read.
    let b = lines("b", 0..2000);
    write_lines(&p, &b);
    h.set_targets(vec![]);
    h.wait_received(&b);
    h.wait_acked(&b);
    // Released once quiet: no file tailed any more.
    let m = h.metrics.clone();
    wait_until("the file to be released", || {
        m.files_active_total.get() == 0
    });
    // Written while no target covers it: not read...
    let c = lines("c", 0..100);
    write_lines(&p, &c);
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(count(&h, &c[0]), 0);
    // ...until the target comes back: from where it stopped.
    h.set_targets(vec![h.target(&[("app", "web")])]);
    h.wait_received(&c);
    std::thread::sleep(Duration::from_millis(200));
    assert_once(&h, &a);
    assert_once(&h, &b);
    assert_once(&h, &c);
}

#[test]
fn saved_positions_wait_for_the_first_set_after_a_restart() {
    let mut h = dynamic();
    let p = pod_dir(&h).join("0.log");
    h.start();
    h.set_targets(vec![h.target(&[("app", "web")])]);
    let a = lines("a", 0..500);
    write_lines(&p, &a);
    h.wait_acked(&a);
    // Let the sink save the acknowledged positions, then crash.
    std::thread::sleep(Duration::from_millis(300));
    h.stop();
    h.start();
    // Rescans run with no target for a while (the API not listed yet).
    std::thread::sleep(Duration::from_millis(700));
    let b = lines("b", 0..100);
    write_lines(&p, &b);
    h.set_targets(vec![h.target(&[("app", "web")])]);
    h.wait_received(&b);
    std::thread::sleep(Duration::from_millis(200));
    assert_once(&h, &a);
    assert_once(&h, &b);
}

#[test]
fn late_target_catches_up_on_rotations_made_since_start() {
    let mut h = dynamic();
    let d = pod_dir(&h);
    // History: rotated before the agent started; never shipped.
    let old = lines("old", 0..10);
    write_lines(&d.join("0.log.20261130-090000"), &old);
    std::thread::sleep(Duration::from_millis(20));
    h.start();
    std::thread::sleep(Duration::from_millis(20));
    // A pod whose metadata lags: its file is written and rotated before
    // its target arrives.
    let p = d.join("0.log");
    let a = lines("a", 0..300);
    write_lines(&p, &a);
    std::fs::rename(&p, d.join("0.log.20261130-100000")).unwrap();
    let b = lines("b", 0..300);
    write_lines(&p, &b);
    h.set_targets(vec![h.target(&[("app", "web")])]);
    let all: Vec<String> = a.iter().chain(&b).cloned().collect();
    h.wait_received(&all);
    std::thread::sleep(Duration::from_millis(300));
    assert_once(&h, &all);
    assert_eq!(count(&h, &old[0]), 0, "history was shipped");
    // In write order: the rotated file first.
    let l = h.log.lock().unwrap();
    let order: Vec<&str> = l
        .got
        .iter()
        .filter(|g| all.contains(&g.line))
        .map(|g| g.line.as_str())
        .collect();
    let expect: Vec<&str> = all.iter().map(String::as_str).collect();
    assert_eq!(order, expect);
}

#[test]
fn a_block_released_on_a_tick_still_runs_the_files_named_pipeline() {
    // The job's multiline stage holds a file's last block until
    // max_wait_time passes; released on a tick, it must still go through
    // the named pipeline of the file's target, like the blocks before it.
    let mut h = dynamic();
    h.stages = Some((
        "- multiline: {firstline: '^START', max_wait_time: 200ms}\n".into(),
        vec![("tag".into(), "- static_labels: {app: tagged}\n".into())],
    ));
    let p = pod_dir(&h).join("0.log");
    write_lines(
        &p,
        &[
            "START a".into(),
            " a1".into(),
            "START b".into(),
            " b1".into(),
        ],
    );
    h.start();
    let mut t = h.target(&[("app", "web")]);
    t.pipeline = Some("tag".into());
    h.set_targets(vec![t]);
    let blocks = vec!["START a\n a1".to_string(), "START b\n b1".to_string()];
    h.wait_received(&blocks);
    assert_once(&h, &blocks);
    assert_eq!(apps(&h, &blocks), ["tagged", "tagged"]);
}

/// A saved entry for `path` describing the file `plain` (fingerprinted
/// before it is compressed), but under the identity `id`.
fn saved_as(
    path: &std::path::Path,
    plain: &std::path::Path,
    id: crate::positions::FileId,
) -> crate::positions::SavedFile {
    let f = std::fs::File::open(plain).unwrap();
    let fp = super::fingerprint::of_file(&f).unwrap();
    crate::positions::SavedFile {
        path: path.to_path_buf(),
        id,
        fp_len: fp.len,
        fp: fp.crc,
        offset: 0,
        size: f.metadata().unwrap().len(),
        seq: 0,
    }
}

fn id_of(p: &std::path::Path) -> crate::positions::FileId {
    super::fingerprint::file_id(&std::fs::metadata(p).unwrap())
}

#[test]
fn a_saved_file_whose_inode_another_pods_file_now_has_is_caught_up_with_its_own_labels() {
    // An agent killed while Loki lagged left pod a's two rotated files
    // unread; while it was down they were compressed and unlinked, and
    // their inode numbers went to pod b's files (one rotated, one current).
    let mut h = dynamic();
    let (da, db) = (h.logs().join("ns_a_uid"), h.logs().join("ns_b_uid"));
    std::fs::create_dir_all(&da).unwrap();
    std::fs::create_dir_all(&db).unwrap();
    let (a1, a2, a3) = (
        lines("a1", 0..100),
        lines("a2", 0..100),
        lines("a3", 0..100),
    );
    let (b1, b2) = (lines("b1", 0..100), lines("b2", 0..100));
    let mut saved = Vec::new();
    for (stamp, ls, reused) in [
        ("20261130-100000", &a1, "0.log.20261130-100000"),
        ("20261130-110000", &a2, "0.log"),
    ] {
        let rotated = da.join(format!("0.log.{stamp}"));
        write_lines(&rotated, ls);
        let b_file = db.join(reused);
        write_lines(&b_file, if reused == "0.log" { &b2 } else { &b1 });
        saved.push(saved_as(&da.join("0.log"), &rotated, id_of(&b_file)));
        super::gz::gzip_file(&rotated, &da.join(format!("0.log.{stamp}.gz")));
        std::fs::remove_file(&rotated).unwrap();
    }
    write_lines(&da.join("0.log"), &a3);
    let chains: crate::positions::format::Chains = [
        (da.join("0.log"), "20261130-110000".to_string()),
        (db.join("0.log"), "20261130-000000".to_string()),
    ]
    .into_iter()
    .map(|(p, s)| (crate::positions::format::chain_key(&p).into(), s))
    .collect();
    let text = crate::positions::format::render(&crate::positions::format::Snapshot {
        files: &saved,
        promtail: &Default::default(),
        cursors: &Default::default(),
        chains: &chains,
        chain_lines: None,
        spool: None,
        is_current: &|_| false,
    });
    std::fs::write(&h.pos_file, text).unwrap();
    h.start();
    // Rescans with no target yet (the API not listed).
    std::thread::sleep(Duration::from_millis(700));
    let target = |d: &std::path::Path, app: &str| super::tailer::FileTarget {
        include: format!("{}/*.log", d.display()),
        ..h.target(&[("app", app)])
    };
    h.set_targets(vec![target(&da, "a"), target(&db, "b")]);
    let a: Vec<String> = a1.iter().chain(&a2).chain(&a3).cloned().collect();
    let b: Vec<String> = b1.iter().chain(&b2).cloned().collect();
    h.wait_received(&a);
    h.wait_received(&b);
    std::thread::sleep(Duration::from_millis(300));
    assert_once(&h, &a);
    assert_once(&h, &b);
    assert!(apps(&h, &a).iter().all(|x| x == "a"), "{:?}", apps(&h, &a));
    assert!(apps(&h, &b).iter().all(|x| x == "b"), "{:?}", apps(&h, &b));
}

/// A target arriving after the first set (a new pod's container): its
/// files are found by walking its glob at once — the periodic rescan is an
/// hour away, and no event names a directory that existed all along — and
/// its directory is watched, so a file made there later is found too.
#[test]
fn a_later_targets_files_are_found_at_once_and_its_directory_watched() {
    let mut o = test_opts();
    o.rescan = Duration::from_secs(3600);
    let mut h = Harness::new("*/*.log", o, AckMode::Immediate);
    h.dynamic = true;
    let (da, db) = (h.logs().join("ns_a_uid"), h.logs().join("ns_b_uid"));
    std::fs::create_dir_all(&da).unwrap();
    std::fs::create_dir_all(&db).unwrap();
    let (a, b) = (lines("a", 0..50), lines("b", 0..50));
    write_lines(&da.join("0.log"), &a);
    write_lines(&db.join("0.log"), &b);
    h.start();
    let target = |dir: &std::path::Path, app: &str| super::tailer::FileTarget {
        include: dir.join("*.log").to_string_lossy().into_owned(),
        ..h.target(&[("app", app)])
    };
    h.set_targets(vec![target(&da, "a")]);
    h.wait_received(&a);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(count(&h, &b[0]), 0, "b has no target yet");
    h.set_targets(vec![target(&da, "a"), target(&db, "b")]);
    h.wait_received(&b);
    let b1 = lines("b1", 0..50);
    write_lines(&db.join("1.log"), &b1);
    h.wait_received(&b1);
    std::thread::sleep(Duration::from_millis(200));
    for ls in [&a, &b, &b1] {
        assert_once(&h, ls);
    }
    assert!(apps(&h, &b).iter().chain(&apps(&h, &b1)).all(|x| x == "b"));
}
