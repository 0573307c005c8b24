//! The `journalctl` command line for one journal scrape config.
//!
//! Always: `--output=json --follow --all --lines=all`.
//! - `--all`: without it journalctl prints `null` for values over 4 KiB.
//! - `--lines=all`: systemd 252's `--follow --after-cursor=C` shows only the
//!   last 10 entries after C without it (reference §3's trap), and a first
//!   start with `--since` must not be cut to 10 either.
//! - No `--show-cursor` (Vector passes it): every JSON record carries its
//!   `__CURSOR`, and the `-- cursor: …` trailer it adds is not JSON.
//!
//! Then `--directory=<path>`, or `--file=<path>` when `path` names a file
//! (Promtail only takes a directory), or neither (the local journal); the
//! start point ([`Start`]): `--after-cursor=<saved>` or `--since=@<unix
//! seconds>` (journalctl refuses both together); then `--` and the
//! `matches`, one argument each. Same-field matches are OR-ed and different
//! fields AND-ed by journalctl exactly as by sdjournal's `AddMatch`, which
//! Promtail calls once per match; `-u` is never used (it also matches
//! systemd's own messages about the unit).
//!
//! Must never: go through a shell, or pass a match that could be read as
//! an option (the `--` ends them).

use super::record::cursor_realtime;
use crate::config::journal::JournalConfig;
use crate::entry::Timestamp;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

/// Which journal files journalctl reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Journals {
    /// No `path`: the local system journal (journalctl's default).
    Local,
    /// `--directory=<path>` (`/var/log/journal`, `/run/log/journal`, …).
    Directory(PathBuf),
    /// `--file=<path>`: one journal file.
    File(PathBuf),
}

impl Journals {
    /// `path` from the config: a regular file is read with `--file`,
    /// anything else (a directory, or not there yet) with `--directory`,
    /// where journalctl reports what is wrong with it.
    pub fn from_path(path: Option<&Path>) -> Journals {
        match path {
            None => Journals::Local,
            Some(p) if p.as_os_str().is_empty() => Journals::Local,
            Some(p) if std::fs::metadata(p).is_ok_and(|m| m.is_file()) => {
                Journals::File(p.to_path_buf())
            }
            Some(p) => Journals::Directory(p.to_path_buf()),
        }
    }
}

/// What one journalctl child reads: which journal, which entries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalSpec {
    pub journals: Journals,
    /// `FIELD=value` matches, in config order.
    pub matches: Vec<String>,
}

impl JournalSpec {
    /// The spec for a `journal` scrape config (its `matches` checked).
    pub fn from_config(c: &JournalConfig) -> Result<JournalSpec, String> {
        Ok(JournalSpec {
            journals: Journals::from_path(c.path.as_deref()),
            matches: c.match_args()?,
        })
    }
}

/// Where reading starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Start {
    /// After a saved cursor (`--after-cursor`).
    AfterCursor(String),
    /// At a time (`--since=@<seconds>`): `max_age` before now.
    Since(Timestamp),
}

impl Start {
    /// Promtail's choice: the saved cursor, unless there is none or the
    /// entry it names is older than `max_age` (its `t=` part; a cursor
    /// without a readable one counts as unusable, as Promtail falls back
    /// when it cannot look the entry up) — then `max_age` before `now`.
    pub fn resolve(saved: Option<&str>, max_age: Duration, now: SystemTime) -> Start {
        let now = Timestamp::from_system(now);
        let age = i64::try_from(max_age.as_nanos()).unwrap_or(i64::MAX);
        let since = Timestamp(now.0.saturating_sub(age));
        match saved {
            Some(c) if !c.is_empty() => match cursor_realtime(c) {
                Some(t) if t >= since => Start::AfterCursor(c.to_string()),
                _ => Start::Since(since),
            },
            _ => Start::Since(since),
        }
    }
}

/// The arguments after `journalctl`.
pub fn args(spec: &JournalSpec, start: &Start) -> Vec<OsString> {
    let mut a: Vec<OsString> = ["--output=json", "--follow", "--all", "--lines=all"]
        .iter()
        .map(OsString::from)
        .collect();
    let prefixed = |flag: &str, p: &Path| {
        let mut s = OsString::from(flag);
        s.push(p.as_os_str());
        s
    };
    match &spec.journals {
        Journals::Local => {}
        Journals::Directory(p) => a.push(prefixed("--directory=", p)),
        Journals::File(p) => a.push(prefixed("--file=", p)),
    }
    match start {
        Start::AfterCursor(c) => a.push(format!("--after-cursor={c}").into()),
        Start::Since(t) => a.push(format!("--since=@{}", t.0.div_euclid(1_000_000_000)).into()),
    }
    if !spec.matches.is_empty() {
        a.push("--".into());
        a.extend(spec.matches.iter().map(OsString::from));
    }
    a
}

/// The command to spawn (no shell): `journalctl` is the binary to run.
pub fn command(journalctl: &Path, spec: &JournalSpec, start: &Start) -> Command {
    let mut c = Command::new(journalctl);
    c.args(args(spec, start));
    c
}

#[cfg(test)]
mod tests;
