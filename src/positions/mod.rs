//! What has been delivered: the positions file.
//!
//! Owns: the on-disk record of how far each source has been *acknowledged*
//! (not merely read): per tailed file its path, device+inode, content
//! fingerprint and offset; per journal its cursor. [`Positions`] holds the
//! entries loaded at start (claimed by the tailer as it finds the files again)
//! and the live sources' [`Tracker`]s, whose committed positions are what
//! [`Positions::save`] writes — atomically (temp file, fsync, rename, fsync of
//! the directory).
//!
//! File format (YAML): a `tailtrace: 1` marker, a `files:` list with the full
//! identity, and Promtail's own `positions: {path: "offset"}` map (journal
//! cursors included, under Promtail's `journal-<job>` keys), so Promtail can
//! still read the file after a rollback. A file without the marker is a
//! Promtail positions file: its offsets are imported by path on first start.
//!
//! Must never: record an offset that was not acknowledged, leave a torn file
//! behind, or write at all in `-dry-run` (read-only mode).

use crate::ack::{Position, Tracker};
use crate::config::PositionsConfig;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// A file's identity on its filesystem.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

/// A checksum of a file's first `len` bytes (CRC32), telling a reused inode
/// from the file it used to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Fingerprint {
    pub len: u32,
    pub crc: u32,
}

/// A file's entry as loaded from the positions file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedFile {
    pub path: PathBuf,
    #[serde(flatten)]
    pub id: FileId,
    pub fp_len: u32,
    pub fp: u32,
    pub offset: u64,
}

impl SavedFile {
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint {
            len: self.fp_len,
            crc: self.fp,
        }
    }
}

#[derive(Serialize, Deserialize, Default)]
struct OnDisk {
    #[serde(default)]
    tailtrace: Option<u32>,
    #[serde(default)]
    files: Vec<SavedFile>,
    #[serde(default)]
    positions: BTreeMap<String, String>,
}

struct Live {
    path: PathBuf,
    fp: Fingerprint,
    tracker: Arc<Tracker>,
}

#[derive(Default)]
struct Inner {
    /// Loaded entries not claimed yet by a live file.
    saved: HashMap<FileId, SavedFile>,
    /// Offsets imported from a Promtail positions file, by path.
    promtail: HashMap<PathBuf, u64>,
    /// Journal cursors loaded (`journal-<job>` → cursor).
    cursors: BTreeMap<String, String>,
    live: HashMap<FileId, Live>,
    live_cursors: BTreeMap<String, Arc<Tracker>>,
}

/// The positions registry. See the module docs.
pub struct Positions {
    path: PathBuf,
    read_only: bool,
    inner: Mutex<Inner>,
}

/// Why the positions file could not be loaded.
#[derive(Debug)]
pub struct LoadError(pub String);

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for LoadError {}

impl Positions {
    /// Loads `cfg.filename` (a missing file is an empty start). In read-only
    /// mode [`save`](Self::save) never writes.
    pub fn open(cfg: &PositionsConfig, read_only: bool) -> Result<Arc<Positions>, LoadError> {
        let path = cfg.filename.clone();
        let mut inner = Inner::default();
        match fs::read_to_string(&path) {
            Ok(text) => match parse(&text) {
                Ok(disk) => inner = disk,
                Err(e) if cfg.ignore_invalid_yaml => {
                    tracing::warn!(file = %path.display(), error = %e,
                        "positions file is invalid; starting from scratch (ignore_invalid_yaml)");
                }
                Err(e) => {
                    return Err(LoadError(format!(
                        "positions.filename {}: invalid positions file: {e} \
                         (set positions.ignore_invalid_yaml: true to start over)",
                        path.display()
                    )))
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(LoadError(format!(
                    "positions.filename {}: cannot read: {e}",
                    path.display()
                )))
            }
        }
        Ok(Arc::new(Positions {
            path,
            read_only,
            inner: Mutex::new(inner),
        }))
    }

    /// An empty, read-only registry (tests, `-dry-run` without a file).
    pub fn in_memory() -> Arc<Positions> {
        Arc::new(Positions {
            path: PathBuf::new(),
            read_only: true,
            inner: Mutex::new(Inner::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The loaded entry for file `id`, if any (not removed: call
    /// [`track`](Self::track) to claim it, or [`forget`](Self::forget)).
    pub fn saved(&self, id: FileId) -> Option<SavedFile> {
        self.lock().saved.get(&id).cloned()
    }

    /// The offset a Promtail positions file recorded for `path`, if it was
    /// imported and not yet claimed.
    pub fn promtail_offset(&self, path: &Path) -> Option<u64> {
        self.lock().promtail.get(path).copied()
    }

    /// Loaded entries no live file has claimed (files that were rotated,
    /// compressed or deleted while the agent was down).
    pub fn unclaimed(&self) -> Vec<SavedFile> {
        let g = self.lock();
        let mut v: Vec<SavedFile> = g
            .saved
            .values()
            .filter(|s| !g.live.contains_key(&s.id))
            .cloned()
            .collect();
        v.sort_by(|a, b| a.path.cmp(&b.path));
        v
    }

    /// Starts recording the committed position of a live file. Claims (and
    /// replaces) any loaded entry for `id` and any imported Promtail offset
    /// for `path`.
    pub fn track(&self, path: &Path, id: FileId, fp: Fingerprint, tracker: Arc<Tracker>) {
        let mut g = self.lock();
        g.saved.remove(&id);
        g.promtail.remove(path);
        g.live.insert(
            id,
            Live {
                path: path.to_path_buf(),
                fp,
                tracker,
            },
        );
    }

    /// Updates a live file's fingerprint (it grew past a short first read).
    pub fn refingerprint(&self, id: FileId, fp: Fingerprint) {
        if let Some(l) = self.lock().live.get_mut(&id) {
            l.fp = fp;
        }
    }

    /// Forgets file `id` for good: it was read to its end, everything was
    /// acknowledged, and it is gone (or a loaded entry matches no file).
    /// A live file whose tracker still has unacknowledged lines keeps its
    /// entry until the next call.
    pub fn forget(&self, id: FileId) {
        let mut g = self.lock();
        g.saved.remove(&id);
        g.live.remove(&id);
    }

    /// The loaded cursor for `name` (e.g. `journal-<job>`).
    pub fn saved_cursor(&self, name: &str) -> Option<String> {
        self.lock().cursors.get(name).cloned()
    }

    /// Starts recording a journal cursor.
    pub fn track_cursor(&self, name: &str, tracker: Arc<Tracker>) {
        self.lock().live_cursors.insert(name.to_string(), tracker);
    }

    /// Number of files recorded (live and loaded-unclaimed).
    pub fn file_count(&self) -> usize {
        let g = self.lock();
        g.live.len() + g.saved.len()
    }

    /// The committed offset of live file `id`.
    pub fn committed(&self, id: FileId) -> Option<u64> {
        self.lock()
            .live
            .get(&id)
            .and_then(|l| l.tracker.committed().offset())
    }

    /// The file content as it would be written now.
    pub fn render(&self) -> String {
        let g = self.lock();
        let mut disk = OnDisk {
            tailtrace: Some(1),
            ..Default::default()
        };
        for (id, l) in &g.live {
            let offset = l.tracker.committed().offset().unwrap_or(0);
            disk.files.push(SavedFile {
                path: l.path.clone(),
                id: *id,
                fp_len: l.fp.len,
                fp: l.fp.crc,
                offset,
            });
        }
        for s in g.saved.values() {
            disk.files.push(s.clone());
        }
        // Byte order of the path (cheaper than Path's component order; the
        // order is only for people reading the file).
        disk.files.sort_unstable_by(|a, b| {
            (a.path.as_os_str().as_encoded_bytes(), a.id.ino, a.id.dev).cmp(&(
                b.path.as_os_str().as_encoded_bytes(),
                b.id.ino,
                b.id.dev,
            ))
        });
        for f in &disk.files {
            // Promtail's view keys by path: the current file at a path wins
            // over a rotated one that still carries the old name.
            let e = disk
                .positions
                .entry(f.path.to_string_lossy().into_owned())
                .or_default();
            if e.is_empty() || g.live.contains_key(&f.id) {
                *e = f.offset.to_string();
            }
        }
        for (path, off) in &g.promtail {
            disk.positions
                .entry(path.to_string_lossy().into_owned())
                .or_insert_with(|| off.to_string());
        }
        for (name, c) in &g.cursors {
            disk.positions.insert(name.clone(), c.clone());
        }
        for (name, t) in &g.live_cursors {
            if let Position::Cursor(c) = t.committed() {
                disk.positions.insert(name.clone(), c.to_string());
            }
        }
        let mut out = String::from(
            "# tailtrace positions: acknowledged offsets. Promtail reads `positions:`.\n",
        );
        emit_yaml(&disk, &mut out);
        out
    }

    /// Writes the file atomically. A no-op in read-only mode.
    pub fn save(&self) -> io::Result<()> {
        if self.read_only {
            return Ok(());
        }
        let text = self.render();
        write_atomic(&self.path, text.as_bytes())
    }
}

/// Writes `disk` as YAML, the layout serde_yaml_ng gives it (byte for byte
/// for ordinary paths), without its per-scalar cost: the file is rewritten
/// every few tens of milliseconds while lines are acknowledged, with one entry
/// per tailed file.
fn emit_yaml(disk: &OnDisk, out: &mut String) {
    use std::fmt::Write as _;
    if let Some(v) = disk.tailtrace {
        let _ = writeln!(out, "tailtrace: {v}");
    }
    if disk.files.is_empty() {
        out.push_str("files: []\n");
    } else {
        out.push_str("files:\n");
    }
    for f in &disk.files {
        out.push_str("- path: ");
        yaml_str(&f.path.to_string_lossy(), out);
        let _ = writeln!(
            out,
            "\n  dev: {}\n  ino: {}\n  fp_len: {}\n  fp: {}\n  offset: {}",
            f.id.dev, f.id.ino, f.fp_len, f.fp, f.offset
        );
    }
    if disk.positions.is_empty() {
        out.push_str("positions: {}\n");
    } else {
        out.push_str("positions:\n");
    }
    for (k, v) in &disk.positions {
        out.push_str("  ");
        yaml_str(k, out);
        out.push_str(": ");
        if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
            // What serde_yaml_ng writes for a string that looks like a number.
            out.push('\'');
            out.push_str(v);
            out.push('\'');
        } else {
            yaml_str(v, out);
        }
        out.push('\n');
    }
}

/// A YAML string scalar: plain when that cannot be read as anything else
/// (an absolute path of safe characters, or a `journal-`/`cursor-` style
/// name), double-quoted with escapes otherwise.
fn yaml_str(s: &str, out: &mut String) {
    let safe = |c: char| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-');
    let plain = (s.starts_with('/') || s.starts_with("journal-") || s.starts_with("cursor-"))
        && s.chars().all(safe);
    if plain {
        out.push_str(s);
        return;
    }
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}') => {
                use std::fmt::Write as _;
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn parse(text: &str) -> Result<Inner, String> {
    let mut inner = Inner::default();
    if text.trim().is_empty() {
        return Ok(inner);
    }
    let disk: OnDisk = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
    let ours = disk.tailtrace.is_some();
    for f in disk.files {
        inner.saved.insert(f.id, f);
    }
    for (k, v) in disk.positions {
        if k.starts_with("journal-") || k.starts_with("cursor-") {
            inner.cursors.insert(k, v);
        } else if !ours {
            let off: u64 = v
                .trim()
                .parse()
                .map_err(|_| format!("positions[{k:?}]: offset {v:?} is not a number"))?;
            inner.promtail.insert(PathBuf::from(k), off);
        }
    }
    Ok(inner)
}

/// Writes `data` to `path` via a temp file, fsync and rename.
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&dir)?;
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    if let Ok(d) = fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn cfg(p: &Path) -> PositionsConfig {
        PositionsConfig {
            filename: p.to_path_buf(),
            sync_period: Duration::from_secs(10),
            ignore_invalid_yaml: false,
        }
    }

    #[test]
    fn saves_only_committed_offsets_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pos.yaml");
        let pos = Positions::open(&cfg(&p), false).unwrap();
        let id = FileId { dev: 1, ino: 42 };
        let t = Tracker::new(Position::Offset(0));
        pos.track(
            Path::new("/a/0.log"),
            id,
            Fingerprint { len: 10, crc: 7 },
            t.clone(),
        );
        let a = t.issue(Position::Offset(100));
        let b = t.issue(Position::Offset(200));
        a.ack();
        pos.save().unwrap();
        drop(b);
        let again = Positions::open(&cfg(&p), false).unwrap();
        let s = again.saved(id).unwrap();
        assert_eq!(s.offset, 100);
        assert_eq!(s.fingerprint(), Fingerprint { len: 10, crc: 7 });
        assert_eq!(s.path, PathBuf::from("/a/0.log"));
        let text = fs::read_to_string(&p).unwrap();
        assert!(
            text.contains("/a/0.log: '100'") || text.contains("/a/0.log: \"100\""),
            "{text}"
        );
    }

    #[test]
    fn imports_promtail_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pos.yaml");
        fs::write(
            &p,
            "positions:\n  /var/log/pods/a/c/0.log: \"1234\"\n  journal-kubelet: s=abc;i=1\n",
        )
        .unwrap();
        let pos = Positions::open(&cfg(&p), false).unwrap();
        assert_eq!(
            pos.promtail_offset(Path::new("/var/log/pods/a/c/0.log")),
            Some(1234)
        );
        assert_eq!(
            pos.saved_cursor("journal-kubelet").as_deref(),
            Some("s=abc;i=1")
        );
    }

    #[test]
    fn invalid_file_is_an_error_unless_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pos.yaml");
        fs::write(&p, "positions: [not, a, map").unwrap();
        assert!(Positions::open(&cfg(&p), false).is_err());
        let mut c = cfg(&p);
        c.ignore_invalid_yaml = true;
        assert!(Positions::open(&c, false).is_ok());
    }

    #[test]
    fn read_only_never_writes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pos.yaml");
        let pos = Positions::open(&cfg(&p), true).unwrap();
        pos.save().unwrap();
        assert!(!p.exists());
    }

    fn disk_with(paths: &[&str], keys: &[(&str, &str)]) -> OnDisk {
        let mut d = OnDisk {
            tailtrace: Some(1),
            ..Default::default()
        };
        for (i, p) in paths.iter().enumerate() {
            d.files.push(SavedFile {
                path: PathBuf::from(p),
                id: FileId {
                    dev: 65024,
                    ino: 10 + i as u64,
                },
                fp_len: 1024,
                fp: 3_639_709_385,
                offset: 33_554_615 + i as u64,
            });
            d.positions.insert(p.to_string(), (7 * i).to_string());
        }
        for (k, v) in keys {
            d.positions.insert(k.to_string(), v.to_string());
        }
        d
    }

    #[test]
    fn emitted_yaml_is_what_serde_yaml_writes_for_ordinary_paths() {
        for d in [
            disk_with(&[], &[]),
            disk_with(
                &[
                    "/var/log/pods/default_app-0-7d9f8c6b5-x0000_5eed0000-0000-4000-a000-000000000000/sidecar/0.log",
                    "/var/log/pods/ns_p_u/c/0.log.20240101-010101",
                ],
                &[],
            ),
        ] {
            let mut ours = String::new();
            emit_yaml(&d, &mut ours);
            assert_eq!(ours, serde_yaml_ng::to_string(&d).unwrap());
        }
    }

    #[test]
    fn emitted_yaml_round_trips_odd_paths_and_cursors() {
        let odd = [
            "/p/with space/0.log",
            "/p/x: y/#z/0.log",
            "/p/quo\"te'/back\\slash",
            "/p/tab\tnl\ncr\r/\u{85}\u{2028}/0.log",
            "/p/é€😀/0.log",
            "relative/- [x]/{y}",
            "123",
            "true",
            "",
        ];
        let d = disk_with(&odd, &[("journal-j", "s=1;b=\"x\"\n"), ("cursor-c", "42")]);
        let mut text = String::new();
        emit_yaml(&d, &mut text);
        let back: OnDisk = serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(back.tailtrace, d.tailtrace);
        assert_eq!(back.files, d.files);
        assert_eq!(back.positions, d.positions);
    }
}
