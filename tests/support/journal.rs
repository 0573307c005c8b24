//! Test harness: real journal files for the `journal` source's end-to-end
//! tests, written in journal export format and converted with
//! `systemd-journal-remote` (Debian package `systemd-journal-remote`), read
//! by the agent through the real `journalctl`.
//!
//! Included with `#[path = "support/journal.rs"] mod journal;`. Without the
//! tools, [`journal_dir`] says so on stderr and returns `None`: the test
//! skips.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

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
fn export(entries: &[JEntry]) -> Vec<u8> {
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
