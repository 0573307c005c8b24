//! What the real binary touches: a symlink out of a glob's directory tree is
//! not followed unless `target_config.follow_symlinks_into` names where it
//! leads; log files are held open read-only; the only files written are the
//! positions file and the spool (nothing in the working directory or
//! `TMPDIR`).
//!
//! Every wait has a generous give-up bound; nothing asserts timings.

#[path = "support/agent.rs"]
mod agent;
#[path = "support/receiver.rs"]
mod receiver;

use agent::{cri_line, now_ns, wait, with_spool, Setup};
use receiver::Receiver;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const GIVE_UP: Duration = Duration::from_secs(30);

/// Runs the binary on `yaml` with `cwd` as working directory and `tmp` as
/// `TMPDIR`; stderr to `dir/agent.log`.
fn spawn(dir: &Path, yaml: &str, cwd: &Path, tmp: &Path) -> Child {
    let cfg = dir.join("promtail.yaml");
    fs::write(&cfg, yaml).expect("config");
    Command::new(env!("CARGO_BIN_EXE_tailtrace"))
        .arg(format!("-config.file={}", cfg.display()))
        .arg("-log.level=debug")
        .current_dir(cwd)
        .env("TMPDIR", tmp)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(dir.join("agent.log")).expect("log"))
        .spawn()
        .expect("spawn tailtrace")
}

fn stop(mut c: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &c.id().to_string()])
        .status();
    if !wait(GIVE_UP, || matches!(c.try_wait(), Ok(Some(_)))) {
        let _ = c.kill();
    }
    let _ = c.wait();
}

fn write(path: &Path, lines: &[&str]) {
    let text: String = lines
        .iter()
        .map(|l| cri_line(now_ns(), "stdout", false, l))
        .collect();
    fs::write(path, text).expect("write log");
}

/// logs/a/real.log (inside), logs/a/out.log → outside/file.log, and
/// logs/b → outside/ (a directory link); the glob is logs/*/*.log.
fn symlinked_tree(root: &Path) -> (Setup, PathBuf) {
    let logs = root.join("pods");
    let outside = root.join("outside");
    fs::create_dir_all(logs.join("a")).expect("dirs");
    fs::create_dir_all(&outside).expect("dirs");
    write(&logs.join("a/real.log"), &["inside line"]);
    write(&outside.join("file.log"), &["outside via file link"]);
    write(&outside.join("dir.log"), &["outside via dir link"]);
    symlink(outside.join("file.log"), logs.join("a/out.log")).expect("link");
    symlink(&outside, logs.join("b")).expect("link");
    (Setup::new(root, ""), outside)
}

#[test]
fn symlinks_out_of_the_glob_tree_are_followed_only_when_configured() {
    for allow in [false, true] {
        let rx = Receiver::start();
        let dir = tempfile::tempdir().expect("tmp");
        let (mut s, outside) = symlinked_tree(dir.path());
        s.push_url = rx.push_url();
        s.glob = format!("{}/*/*.log", s.logs.display());
        let mut yaml = s.yaml();
        if allow {
            yaml = yaml.replace(
                "target_config:\n  sync_period: 1s\n",
                &format!(
                    "target_config:\n  sync_period: 1s\n  follow_symlinks_into: [{}]\n",
                    outside.display()
                ),
            );
            assert!(yaml.contains("follow_symlinks_into"), "{yaml}");
        }
        let child = spawn(dir.path(), &yaml, dir.path(), dir.path());
        let want = if allow { 3 } else { 1 };
        let arrived = wait(GIVE_UP, || rx.lines().len() >= want);
        // Every match was found by the first scan; a later one finds the
        // same. Wait for a second scan's worth of time to be sure nothing
        // else comes, bounded by the log saying the link was refused.
        let log_path = dir.path().join("agent.log");
        if !allow {
            let reported = wait(GIVE_UP, || {
                fs::read_to_string(&log_path).is_ok_and(|l| l.contains("symlink_outside"))
            });
            assert!(reported, "the refused link was not reported");
        }
        stop(child);
        let mut lines = rx.lines();
        lines.sort();
        assert!(arrived, "allow={allow}: {lines:?}");
        if allow {
            assert_eq!(
                lines,
                [
                    "inside line",
                    "outside via dir link",
                    "outside via file link"
                ]
            );
        } else {
            assert_eq!(lines, ["inside line"]);
        }
    }
}

/// The open mode of every descriptor of `pid` that points at `under`:
/// (path, `flags` of /proc/pid/fdinfo, octal).
fn open_files(pid: u32, under: &Path) -> Vec<(PathBuf, u32)> {
    let mut out = Vec::new();
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return out;
    };
    for fd in fds.flatten() {
        let Ok(target) = fs::read_link(fd.path()) else {
            continue;
        };
        if !target.starts_with(under) {
            continue;
        }
        let info = fs::read_to_string(format!(
            "/proc/{pid}/fdinfo/{}",
            fd.file_name().to_string_lossy()
        ))
        .unwrap_or_default();
        let flags = info
            .lines()
            .find_map(|l| l.strip_prefix("flags:"))
            .and_then(|f| u32::from_str_radix(f.trim(), 8).ok());
        if let Some(f) = flags {
            out.push((target, f));
        }
    }
    out
}

/// Every file under `root`, with its length and modification time.
fn snapshot(root: &Path) -> Vec<(PathBuf, u64, Option<std::time::SystemTime>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(m) = fs::symlink_metadata(&p) else {
                continue;
            };
            if m.is_dir() {
                stack.push(p);
            } else {
                out.push((p, m.len(), m.modified().ok()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn logs_are_opened_read_only_and_only_positions_and_spool_are_written() {
    let rx = Receiver::start();
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path();
    let state = root.join("state");
    let cwd = root.join("cwd");
    let tmp = root.join("tmp");
    for d in [&state, &cwd, &tmp] {
        fs::create_dir_all(d).expect("dirs");
    }
    let mut s = Setup::new(root, &rx.push_url());
    s.positions = state.join("positions.yaml");
    with_spool(&mut s, &state.join("wal"), "1MiB");
    let pod = s.logs.join("ns_web_uid/main");
    fs::create_dir_all(&pod).expect("dirs");
    write(&pod.join("0.log"), &["one", "two"]);
    let logs_before = snapshot(&s.logs);
    let child = spawn(root, &s.yaml(), &cwd, &tmp);
    let pid = child.id();
    let arrived = wait(GIVE_UP, || rx.lines().len() >= 2);
    let positions = wait(GIVE_UP, || s.positions.exists());
    let fds = open_files(pid, &s.logs);
    stop(child);
    assert!(arrived && positions, "{:?}", rx.lines());
    assert!(!fds.is_empty(), "no log file was held open");
    for (path, flags) in &fds {
        // O_ACCMODE: 0 is O_RDONLY.
        assert_eq!(
            flags & 0o3,
            0,
            "{} is open with flags {flags:o}",
            path.display()
        );
    }
    assert_eq!(snapshot(&s.logs), logs_before, "the logs were modified");
    assert!(snapshot(&cwd).is_empty(), "{:?}", snapshot(&cwd));
    assert!(snapshot(&tmp).is_empty(), "{:?}", snapshot(&tmp));
    // In the state directory: the positions file and the spool only.
    for (p, _, _) in snapshot(&state) {
        let ok = p == s.positions || p.starts_with(state.join("wal"));
        assert!(ok, "unexpected file {}", p.display());
    }
    let top: Vec<_> = fs::read_dir(root)
        .expect("root")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    for name in &top {
        assert!(
            ["state", "cwd", "tmp", "pods", "promtail.yaml", "agent.log"].contains(&name.as_str()),
            "unexpected {name} in {top:?}"
        );
    }
}
