//! End to end with bad input: invalid UTF-8, a 5 MiB line, binary garbage,
//! an empty file, a file deleted while being read, an unreadable directory.
//! The agent keeps running, ships what can be shipped, and says what it did.

#[path = "support/agent.rs"]
mod agent;
#[path = "support/receiver.rs"]
mod receiver;

use agent::{cri_line, Agent, PodLog, Setup};
use receiver::Receiver;
use std::io::Write;
use std::time::Duration;

const T0: i64 = 1_764_000_000_000_000_000;

fn lines_of(rx: &Receiver, pod: &str) -> Vec<String> {
    rx.entries()
        .into_iter()
        .filter(|e| e.labels.get("filename").is_some_and(|f| f.contains(pod)))
        .map(|e| e.line)
        .collect()
}

#[test]
fn bad_input_is_handled_counted_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start();
    let mut setup = Setup::new(dir.path(), &rx.push_url());
    setup.extra = "limits_config:\n  max_line_size: 256KB\n".into();
    let mut agent = Agent::start(dir.path(), &setup);
    assert!(agent.wait_ready(Duration::from_secs(60)), "{}", agent.log());

    // Invalid UTF-8 inside a CRI line.
    let mut utf = PodLog::create(&setup.logs, "utf8", "app");
    let mut raw = cri_line(T0, "stdout", false, "before-").into_bytes();
    raw.pop();
    raw.extend_from_slice(b"\xff\xfe-after\n");
    std::fs::OpenOptions::new()
        .append(true)
        .open(&utf.path)
        .unwrap()
        .write_all(&raw)
        .unwrap();
    utf.write(&cri_line(T0 + 1, "stdout", false, "utf8 ok line"));

    // A 5 MiB line between two normal ones (over max_line_size: dropped).
    let mut big = PodLog::create(&setup.logs, "huge", "app");
    big.write(&cri_line(T0, "stdout", false, "huge-before"));
    big.write(&cri_line(T0 + 1, "stdout", false, &"z".repeat(5 << 20)));
    big.write(&cri_line(T0 + 2, "stdout", false, "huge-after"));

    // Binary garbage (not CRI, with NULs and no valid UTF-8).
    let mut garbage = PodLog::create(&setup.logs, "garbage", "app");
    let bytes: Vec<u8> = (0..20_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&garbage.path)
        .unwrap()
        .write_all(&bytes)
        .unwrap();
    garbage.write("\n");
    garbage.write(&cri_line(T0, "stdout", false, "garbage-after"));

    // An empty file.
    let _empty = PodLog::create(&setup.logs, "empty", "app");

    // A file deleted while being read.
    let mut gone = PodLog::create(&setup.logs, "deleted", "app");
    for i in 0..20_000 {
        gone.write(&cri_line(
            T0 + i,
            "stdout",
            false,
            &format!("deleted line {i}"),
        ));
    }
    std::fs::remove_file(&gone.path).unwrap();

    // A normal file written afterwards still flows.
    let mut ok = PodLog::create(&setup.logs, "healthy", "app");
    ok.write(&cri_line(T0, "stdout", false, "healthy line"));

    assert!(
        rx.wait_until(Duration::from_secs(120), |r| {
            lines_of(r, "healthy").len() == 1
                && lines_of(r, "utf8").len() == 2
                && lines_of(r, "huge").len() == 2
                && lines_of(r, "garbage").iter().any(|l| l == "garbage-after")
        }),
        "not everything arrived; log:\n{}",
        agent.log()
    );

    // Invalid UTF-8 was replaced, never sent raw.
    let u = lines_of(&rx, "utf8");
    assert_eq!(u[0], "before-\u{fffd}\u{fffd}-after");
    assert!(
        rx.entries().iter().all(|e| e.valid_utf8),
        "invalid UTF-8 reached the receiver"
    );
    assert!(
        agent
            .metric_sum("tailtrace_invalid_utf8_lines_total", &[])
            .unwrap_or(0.0)
            >= 1.0
    );
    // The huge line was dropped and counted; its neighbours arrived.
    assert_eq!(lines_of(&rx, "huge"), vec!["huge-before", "huge-after"]);
    assert!(
        agent
            .metric_sum(
                "promtail_dropped_entries_total",
                &[("reason", "line_too_long")]
            )
            .unwrap_or(0.0)
            >= 1.0,
        "the 5 MiB line must be a counted drop"
    );
    // Deleted file: whatever was read was shipped in order; the agent lives on.
    let d = lines_of(&rx, "deleted");
    for (i, l) in d.iter().enumerate() {
        assert_eq!(l, &format!("deleted line {i}"));
    }
    assert!(agent.alive(), "agent died on bad input");
    assert!(agent.terminate().unwrap().success());
}

#[test]
fn a_line_over_the_limit_is_truncated_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start();
    let mut setup = Setup::new(dir.path(), &rx.push_url());
    setup.extra = "limits_config:\n  max_line_size: 1000\n  max_line_size_truncate: true\n".into();
    let mut log = PodLog::create(&setup.logs, "trunc", "app");
    log.write(&cri_line(T0, "stdout", false, &"é".repeat(700)));
    let mut agent = Agent::start(dir.path(), &setup);
    assert!(
        rx.wait_until(Duration::from_secs(60), |r| r.count() == 1),
        "{}",
        agent.log()
    );
    let line = &rx.entries()[0].line;
    assert!(
        line.len() <= 1000 && line.len() >= 998,
        "truncated to {} bytes",
        line.len()
    );
    assert!(
        line.chars().all(|c| c == 'é'),
        "truncation must cut on a character boundary"
    );
    assert!(agent.terminate().unwrap().success());
}

#[test]
fn an_unreadable_directory_is_reported_and_others_still_ship() {
    // Root reads everything, so run the agent as `nobody` when we can.
    if !std::path::Path::new("/usr/bin/setpriv").exists() {
        eprintln!("setpriv not found: cannot drop privileges; skipping");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let rx = Receiver::start();
    let setup = Setup::new(dir.path(), &rx.push_url());
    std::fs::set_permissions(&setup.logs, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut ok = PodLog::create(&setup.logs, "readable", "app");
    ok.write(&cri_line(T0, "stdout", false, "readable line"));
    let mut locked = PodLog::create(&setup.logs, "locked", "app");
    locked.write(&cri_line(T0, "stdout", false, "secret line"));
    for p in [&ok.path, &locked.path] {
        let pod_dir = p.parent().unwrap().parent().unwrap();
        for d in [pod_dir, p.parent().unwrap()] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    std::fs::set_permissions(
        locked.path.parent().unwrap(),
        std::fs::Permissions::from_mode(0o000),
    )
    .unwrap();
    // Run as nobody via setpriv: the agent binary is the "real" command.
    let cfg = dir.path().join("promtail.yaml");
    std::fs::write(&cfg, setup.yaml()).unwrap();
    let log_path = dir.path().join("nobody.log");
    let mut child = std::process::Command::new("/usr/bin/setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_tailtrace"))
        .arg(format!("-config.file={}", cfg.display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let arrived = rx.wait_until(Duration::from_secs(60), |r| r.count() >= 1);
    std::thread::sleep(Duration::from_millis(1500));
    let alive = matches!(child.try_wait(), Ok(None));
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    std::fs::set_permissions(
        locked.path.parent().unwrap(),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    assert!(arrived, "readable file not shipped; log:\n{log}");
    assert!(alive, "agent died on an unreadable directory; log:\n{log}");
    let lines: Vec<String> = rx.entries().into_iter().map(|e| e.line).collect();
    assert_eq!(lines, vec!["readable line"]);
    assert!(
        log.to_lowercase().contains("permission denied"),
        "the unreadable directory must be reported; log:\n{log}"
    );
    assert!(status.success(), "{status:?}");
}
