//! Test helper: real journal files, made from journal export format with
//! `systemd-journal-remote` (Debian package `systemd-journal-remote`), and
//! a runner for the journalctl command [`super::command`] builds.
//!
//! When the tools are missing, [`make_journal`] returns `None` after saying
//! so on stderr, and the caller skips.

use super::command::{command, JournalSpec, Start};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

const REMOTE: &str = "/lib/systemd/systemd-journal-remote";

/// One field of an export-format entry.
pub fn export_field(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    if value.contains(&b'\n') || std::str::from_utf8(value).is_err() {
        // Binary form: name, newline, little-endian u64 length, bytes.
        out.push(b'\n');
        out.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        out.push(b'=');
    }
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// One export-format entry at `realtime_us` with `fields` (a name may
/// repeat).
pub fn export_entry(out: &mut Vec<u8>, realtime_us: u64, fields: &[(&str, &[u8])]) {
    export_field(out, "__CURSOR", format!("s=0;i={realtime_us:x}").as_bytes());
    export_field(
        out,
        "__REALTIME_TIMESTAMP",
        realtime_us.to_string().as_bytes(),
    );
    export_field(out, "__MONOTONIC_TIMESTAMP", b"1000");
    export_field(out, "_BOOT_ID", b"0123456789abcdef0123456789abcdef");
    for (k, v) in fields {
        export_field(out, k, v);
    }
    out.push(b'\n');
}

/// Writes `export` as `dir/x.journal`; `None` (with a message) when
/// systemd-journal-remote or journalctl is not installed.
pub fn make_journal(dir: &Path, export: &[u8]) -> Option<PathBuf> {
    if !Path::new(REMOTE).exists() || which("journalctl").is_none() {
        eprintln!(
            "SKIPPED: needs {REMOTE} and journalctl (apt-get install -y systemd-journal-remote)"
        );
        return None;
    }
    let src = dir.join("export.txt");
    let out = dir.join("x.journal");
    std::fs::write(&src, export).ok()?;
    let st = std::process::Command::new(REMOTE)
        .arg(format!("--output={}", out.display()))
        .arg(&src)
        .stderr(Stdio::null())
        .status()
        .ok()?;
    assert!(st.success(), "systemd-journal-remote failed: {st}");
    std::fs::remove_file(&src).ok()?;
    Some(out)
}

fn which(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(bin))
            .find(|f| f.is_file())
    })
}

/// Runs the built (following) journalctl and returns its first `n` stdout
/// lines, then kills it. Panics after 20 s without them.
pub fn run_lines(spec: &JournalSpec, start: &Start, n: usize) -> Vec<Vec<u8>> {
    let mut child = command(Path::new("journalctl"), spec, start)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn journalctl");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).split(b'\n') {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut out = Vec::new();
    while out.len() < n {
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(l) => out.push(l),
            Err(_) => break,
        }
    }
    // A few more ms: anything beyond `n` is a bug the caller sees.
    while let Ok(l) = rx.recv_timeout(Duration::from_millis(300)) {
        out.push(l);
    }
    let _ = child.kill();
    let _ = child.wait();
    out
}
