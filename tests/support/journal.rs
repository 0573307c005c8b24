//! Real journal files for integration tests: entries written in journal
//! export format and turned into `.journal` files by
//! `systemd-journal-remote`, a `journal` scrape config over them, and
//! checks of what the receiver got (labels, timestamps, once).
//!
//! Included with `#[path = "support/journal.rs"] mod journal;` by a crate
//! that also has `mod agent;` and `mod receiver;` (support/agent.rs and
//! support/receiver.rs) at its root. Skips (with a message) are decided by
//! [`journal_dir`] when the tools are missing. Never asserts timings.
#![allow(dead_code)]

use crate::agent::{Agent, Setup};
use crate::receiver::Receiver;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const GIVE_UP: Duration = Duration::from_secs(120);
pub const REMOTE: &str = "/lib/systemd/systemd-journal-remote";

/// One journal entry to write: unit, message bytes, µs timestamp (on host
/// `node-1`, at priority 6, as the kubelet and containerd log).
pub struct JEntry {
    pub unit: &'static str,
    pub message: Vec<u8>,
    pub us: u64,
}

pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

pub fn tools_present() -> bool {
    let journalctl = Command::new("journalctl")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !Path::new(REMOTE).exists() || !journalctl {
        eprintln!(
            "SKIPPED: needs {REMOTE} and journalctl (apt-get install -y systemd-journal-remote)"
        );
        return false;
    }
    true
}

/// Export format: `NAME=value` lines, or for binary values `NAME`, a
/// little-endian u64 length and the bytes; an empty line ends an entry.
pub fn export(entries: &[JEntry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let fields: [(&str, Vec<u8>); 8] = [
            ("__CURSOR", format!("s=0;i={:x}", e.us).into_bytes()),
            ("__REALTIME_TIMESTAMP", e.us.to_string().into_bytes()),
            ("__MONOTONIC_TIMESTAMP", b"1000".to_vec()),
            ("_BOOT_ID", b"0123456789abcdef0123456789abcdef".to_vec()),
            ("_SYSTEMD_UNIT", e.unit.as_bytes().to_vec()),
            ("_HOSTNAME", b"node-1".to_vec()),
            ("PRIORITY", b"6".to_vec()),
            ("MESSAGE", e.message.clone()),
        ];
        for (name, v) in fields {
            out.extend_from_slice(name.as_bytes());
            if std::str::from_utf8(&v).is_ok() && !v.contains(&b'\n') {
                out.push(b'=');
            } else {
                out.push(b'\n');
                out.extend_from_slice(&(v.len() as u64).to_le_bytes());
            }
            out.extend_from_slice(&v);
            out.push(b'\n');
        }
        out.push(b'\n');
    }
    out
}

/// Writes `entries` as the journal file `dir/<name>.journal`.
pub fn write_journal(dir: &Path, name: &str, entries: &[JEntry]) {
    let src = dir.join(format!("{name}.export"));
    std::fs::write(&src, export(entries)).expect("write export");
    let st = Command::new(REMOTE)
        .arg(format!(
            "--output={}",
            dir.join(format!("{name}.journal")).display()
        ))
        .arg(&src)
        .stderr(Stdio::null())
        .status()
        .expect("run systemd-journal-remote");
    assert!(st.success(), "systemd-journal-remote: {st}");
    std::fs::remove_file(&src).expect("remove export");
}

/// `n` entries per unit (kubelet, containerd, cron), `tag` in the message.
pub fn batch(tag: &str, n: usize, base_us: u64) -> Vec<JEntry> {
    let mut v = Vec::new();
    for i in 0..n {
        for (k, unit) in ["kubelet.service", "containerd.service", "cron.service"]
            .into_iter()
            .enumerate()
        {
            v.push(JEntry {
                unit,
                message: format!("{tag} {unit} {i:05}").into_bytes(),
                us: base_us + (i * 3 + k) as u64,
            });
        }
    }
    v
}

pub fn setup(dir: &Path, journal: &Path, rx: &Receiver) -> Setup {
    let mut s = Setup::new(dir, &rx.push_url());
    s.scrape_configs = Some(format!(
        r#"scrape_configs:
  - job_name: system
    journal:
      path: {}
      matches: _SYSTEMD_UNIT=kubelet.service _SYSTEMD_UNIT=containerd.service
      labels:
        job: systemd-journal
    relabel_configs:
      - source_labels: [__journal__systemd_unit]
        target_label: unit
"#,
        journal.display()
    ));
    s
}

/// The expected (line, unit, ts_ns) of the entries `journalctl` matches.
pub fn expected(entries: &[JEntry]) -> BTreeMap<String, (String, i64)> {
    entries
        .iter()
        .filter(|e| e.unit != "cron.service")
        .map(|e| {
            let line = String::from_utf8_lossy(&e.message).into_owned();
            (line, (e.unit.to_string(), e.us as i64 * 1000))
        })
        .collect()
}

/// Every received entry's line → how many times, asserting labels and
/// timestamps against `want`.
pub fn check(rx: &Receiver, want: &BTreeMap<String, (String, i64)>) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for e in rx.entries() {
        let Some((unit, ts)) = want.get(&e.line) else {
            panic!("unexpected entry {:?} {:?}", e.line, e.labels);
        };
        assert_eq!(e.labels.get("unit"), Some(unit), "{:?}", e.labels);
        assert_eq!(
            e.labels.get("job").map(String::as_str),
            Some("systemd-journal")
        );
        assert!(
            e.labels.keys().all(|k| !k.starts_with("__")),
            "{:?}",
            e.labels
        );
        assert_eq!(e.ts_ns, *ts, "{}", e.line);
        *seen.entry(e.line).or_insert(0) += 1;
    }
    seen
}

pub fn assert_exactly_once(rx: &Receiver, want: &BTreeMap<String, (String, i64)>, agent: &Agent) {
    assert!(
        rx.wait_for_count(want.len(), GIVE_UP),
        "got {} of {}\n{}",
        rx.count(),
        want.len(),
        agent.log()
    );
    // A moment for anything extra (a duplicate) to show up.
    std::thread::sleep(Duration::from_millis(1500));
    let seen = check(rx, want);
    let dup: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dup.is_empty(), "duplicates: {dup:?}");
    assert_eq!(seen.len(), want.len(), "{}", agent.log());
}

/// The pids of `journalctl` children of `pid`.
pub fn journalctl_children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in tasks.flatten() {
        let children = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
        for c in children
            .split_whitespace()
            .filter_map(|c| c.parse::<u32>().ok())
        {
            let comm = std::fs::read_to_string(format!("/proc/{c}/comm")).unwrap_or_default();
            if comm.trim() == "journalctl" {
                out.push(c);
            }
        }
    }
    out
}

/// A temp dir with an empty `journal/` in it; `None` (skip) without the
/// tools.
pub fn journal_dir() -> Option<(tempfile::TempDir, std::path::PathBuf)> {
    if !tools_present() {
        return None;
    }
    let tmp = tempfile::tempdir().ok()?;
    let journal = tmp.path().join("journal");
    std::fs::create_dir_all(&journal).ok()?;
    Some((tmp, journal))
}

/// The journal cursor saved in the positions file at `positions` under
/// `key` (`journal-<job>`), if any.
pub fn saved_cursor(positions: &Path, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(positions).ok()?;
    let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).ok()?;
    let c = v.get("positions")?.get(key)?.as_str()?;
    (!c.is_empty()).then(|| c.to_string())
}

/// Kills (`SIGKILL`) the `journalctl` children of `pid`, the agent's, and
/// returns their pids.
pub fn kill_journalctl(pid: u32) -> Vec<u32> {
    let children = journalctl_children(pid);
    for c in &children {
        let _ = Command::new("kill")
            .args(["-KILL", &c.to_string()])
            .status();
    }
    children
}

/// Asserts that a `journalctl` other than `killed` runs under `agent`
/// (restarted with backoff) within [`GIVE_UP`].
pub fn assert_journalctl_restarted(agent: &Agent, killed: &[u32]) {
    let pid = agent.pid();
    assert!(
        crate::agent::wait(GIVE_UP, || {
            let now = journalctl_children(pid);
            !now.is_empty() && now.iter().all(|c| !killed.contains(c))
        }),
        "journalctl was not restarted\n{}",
        agent.log()
    );
}

/// Stops `agent` with SIGTERM and asserts it exits 0 (its log otherwise).
pub fn stop_cleanly(agent: &mut Agent) {
    let st = agent.terminate();
    assert!(st.is_some_and(|s| s.success()), "{st:?}\n{}", agent.log());
}

/// [`journal_dir`] holding `entries` as its first file (`a.journal`).
pub fn journal_dir_with(entries: &[JEntry]) -> Option<(tempfile::TempDir, std::path::PathBuf)> {
    let (tmp, journal) = journal_dir()?;
    write_journal(&journal, "a", entries);
    Some((tmp, journal))
}
