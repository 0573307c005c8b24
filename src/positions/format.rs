//! The positions file on disk: one YAML map that Promtail can read too.
//!
//! Owns: [`parse`] and [`render`]. Promtail decodes the file strictly
//! (unknown top-level keys make it fail) into `positions: {key: "value"}`
//! and keeps only keys that are existing paths (or start with `cursor-` /
//! `journal-`). So everything tailtrace records lives *inside* that map:
//!
//! ```yaml
//! positions:
//!   /var/log/pods/ns_pod_uid/app/0.log: '81920'                  # Promtail's view
//!   tailtrace:chain:/var/log/pods/ns_pod_uid/app/0.log: 20261122-101500
//!   tailtrace:file:2049:1234567:1024:3735928559:/var/log/pods/ns_pod_uid/app/0.log: 81920 90000 7
//!   tailtrace:spool: '1234'
//!   tailtrace:version: '2'
//! ```
//!
//! - `tailtrace:file:<dev>:<ino>:<fp_len>:<fp_crc>:<path>` → `<offset> <size> <seq>`:
//!   a file's identity, its acknowledged offset, the size last seen (so a
//!   file found gone at start-up tells how much was never read) and when it
//!   was taken on (so files saved under one path are taken on again oldest
//!   first; earlier versions wrote no `<seq>`);
//! - `tailtrace:chain:<path>` → the newest kubelet rotation stamp of that
//!   path whose file has been taken on (see `source/chain.rs`);
//! - `tailtrace:spool` → the spool offset up to which the spool's chunks are
//!   accounted for in these positions (see `spool/`);
//! - `journal-<job>` / `cursor-<name>` → journal cursors, as Promtail keys them.
//!
//! A rollback to Promtail reads the plain path entries and drops the rest.
//! The earlier tailtrace layout (`tailtrace: 1` and a `files:` list beside
//! `positions:`) is still read. A file without tailtrace records is a
//! Promtail positions file: its path offsets are imported.
//!
//! Must never: write a line Promtail's decoder rejects, or read a malformed
//! record as something else (it is an error naming the key).

use super::{FileId, SavedFile};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const FILE: &str = "tailtrace:file:";
const CHAIN: &str = "tailtrace:chain:";
const SPOOL: &str = "tailtrace:spool";
const VERSION: &str = "tailtrace:version";

/// What a positions file holds.
#[derive(Debug, Default, PartialEq)]
pub struct Loaded {
    pub files: Vec<SavedFile>,
    /// Offsets by path, from a Promtail positions file.
    pub promtail: BTreeMap<PathBuf, u64>,
    pub cursors: BTreeMap<String, String>,
    pub chains: Chains,
    pub spool: Option<u64>,
    /// Written by tailtrace (not an imported Promtail file).
    pub ours: bool,
}

/// Chain watermarks by path, keyed and ordered by the path's bytes: a
/// lookup is a `memcmp`, where `Path` compares component by component (at
/// 5,000 files, each file's start-up looks its path up several times).
pub type Chains = BTreeMap<ChainKey, String>;

/// A [`Chains`] key: a path compared and ordered by its bytes, and shared
/// with the tailed file at that path when there is one (a path kept once,
/// not once more per file for its watermark).
#[derive(Clone, Debug)]
pub struct ChainKey(pub Arc<Path>);

impl ChainKey {
    fn bytes(&self) -> &[u8] {
        chain_key(&self.0)
    }
}

impl PartialEq for ChainKey {
    fn eq(&self, other: &Self) -> bool {
        self.bytes() == other.bytes()
    }
}

impl Eq for ChainKey {}

impl PartialOrd for ChainKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ChainKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.bytes().cmp(other.bytes())
    }
}

impl std::borrow::Borrow<[u8]> for ChainKey {
    fn borrow(&self) -> &[u8] {
        self.bytes()
    }
}

impl From<&[u8]> for ChainKey {
    fn from(b: &[u8]) -> Self {
        use std::os::unix::ffi::OsStrExt;
        ChainKey(Arc::from(Path::new(std::ffi::OsStr::from_bytes(b))))
    }
}

/// The key of `path` in [`Chains`].
pub fn chain_key(path: &Path) -> &[u8] {
    path.as_os_str().as_encoded_bytes()
}

/// What [`render`] writes.
pub struct Snapshot<'a> {
    pub files: &'a [SavedFile],
    pub promtail: &'a BTreeMap<PathBuf, u64>,
    pub cursors: &'a BTreeMap<String, String>,
    pub chains: &'a Chains,
    /// `chains` rendered by [`chain_lines`], if the caller keeps them.
    pub chain_lines: Option<&'a str>,
    pub spool: Option<u64>,
    /// Files currently at their path (they win Promtail's by-path view over a
    /// rotated file that still carries the old name).
    pub is_current: &'a dyn Fn(&SavedFile) -> bool,
}

#[derive(Deserialize, Default)]
struct OnDisk {
    #[serde(default)]
    tailtrace: Option<u32>,
    #[serde(default)]
    files: Vec<OldFile>,
    #[serde(default)]
    positions: BTreeMap<String, String>,
}

/// The earlier layout's `files:` entries.
#[derive(Deserialize)]
struct OldFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
    fp_len: u32,
    fp: u32,
    offset: u64,
}

/// Parses a positions file (tailtrace's, its earlier layout, or Promtail's).
pub fn parse(text: &str) -> Result<Loaded, String> {
    let mut out = Loaded::default();
    if text.trim().is_empty() {
        return Ok(out);
    }
    let disk: OnDisk = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
    let ours =
        disk.tailtrace.is_some() || disk.positions.keys().any(|k| k.starts_with("tailtrace:"));
    out.ours = ours;
    for f in disk.files {
        out.files.push(SavedFile {
            path: f.path,
            id: FileId {
                dev: f.dev,
                ino: f.ino,
            },
            fp_len: f.fp_len,
            fp: f.fp,
            offset: f.offset,
            size: f.offset,
            seq: 0,
        });
    }
    let mut plain = Vec::new();
    for (k, v) in disk.positions {
        if let Some(rest) = k.strip_prefix(FILE) {
            out.files
                .push(parse_file(rest, &v).map_err(|e| format!("positions[{k:?}]: {e}"))?);
        } else if let Some(path) = k.strip_prefix(CHAIN) {
            out.chains.insert(path.as_bytes().into(), v);
        } else if k == SPOOL {
            let n = v
                .trim()
                .parse()
                .map_err(|_| format!("positions[{k:?}]: {v:?} is not a number"))?;
            out.spool = Some(n);
        } else if k == VERSION || k.starts_with("tailtrace:") {
            // A newer version's record: ignored, not misread as a path.
        } else if k.starts_with("journal-") || k.starts_with("cursor-") {
            out.cursors.insert(k, v);
        } else {
            plain.push((k, v));
        }
    }
    // In tailtrace's file a plain path entry is Promtail's view of one of
    // the `tailtrace:file` records, or a Promtail offset imported earlier
    // and not yet claimed by a file: that one must survive the restart.
    let recorded: std::collections::HashSet<String> = if ours {
        out.files
            .iter()
            .map(|f| f.path.to_string_lossy().into_owned())
            .collect()
    } else {
        Default::default()
    };
    for (k, v) in plain {
        if recorded.contains(&k) {
            continue;
        }
        let off: u64 = v
            .trim()
            .parse()
            .map_err(|_| format!("positions[{k:?}]: offset {v:?} is not a number"))?;
        out.promtail.insert(PathBuf::from(k), off);
    }
    Ok(out)
}

fn parse_file(rest: &str, value: &str) -> Result<SavedFile, String> {
    let mut it = rest.splitn(5, ':');
    let mut num = |what: &str| -> Result<u64, String> {
        it.next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad {what}"))
    };
    let dev = num("device")?;
    let ino = num("inode")?;
    let fp_len = u32::try_from(num("fingerprint length")?).map_err(|e| e.to_string())?;
    let fp = u32::try_from(num("fingerprint")?).map_err(|e| e.to_string())?;
    let path = it.next().filter(|p| !p.is_empty()).ok_or("no path")?;
    let mut vals = value.split_ascii_whitespace().map(str::parse::<u64>);
    let offset = match vals.next() {
        Some(Ok(o)) => o,
        _ => return Err(format!("offset {value:?} is not a number")),
    };
    let size = match vals.next() {
        Some(Ok(s)) => s.max(offset),
        None => offset,
        Some(Err(_)) => return Err(format!("size in {value:?} is not a number")),
    };
    let seq = match vals.next() {
        Some(Ok(n)) => n,
        None => 0,
        Some(Err(_)) => return Err(format!("order in {value:?} is not a number")),
    };
    Ok(SavedFile {
        path: PathBuf::from(path),
        id: FileId { dev, ino },
        fp_len,
        fp,
        offset,
        size,
        seq,
    })
}

/// Renders the file.
pub fn render(s: &Snapshot<'_>) -> String {
    let keys: Vec<(&[u8], bool)> = s
        .files
        .iter()
        .map(|f| (f.path.as_os_str().as_encoded_bytes(), !(s.is_current)(f)))
        .collect();
    let mut out = String::new();
    header(&mut out);
    let mut last: Option<&[u8]> = None;
    for i in view_order(&keys) {
        let f = &s.files[i];
        if last != Some(keys[i].0) {
            last = Some(keys[i].0);
            promtail_line(&f.path, f.offset, &mut out);
        }
    }
    imports(
        s.promtail,
        &|p| s.files.iter().any(|f| f.path == p),
        &mut out,
    );
    let chains = match s.chain_lines {
        Some(text) => text.to_string(),
        None => {
            let mut text = String::new();
            chain_lines(s.chains, &mut text);
            text
        }
    };
    middle(s.cursors, &chains, &mut out);
    for f in s.files {
        file_line(&f.record(), &mut out);
    }
    trailer(s.spool, &mut out);
    out
}

/// The order of Promtail's by-path view over files keyed by (path bytes,
/// rotated): by path, the current file at a path before a rotated one that
/// still carries the old name (the renderer writes only the first of a
/// path). Returns indices into `keys`; ties keep their order.
pub fn view_order(keys: &[(&[u8], bool)]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by(|&a, &b| keys[a].cmp(&keys[b]));
    order
}

/// The file's first lines, up to the Promtail view. A file is written as
/// `header`, the view's `path: offset` lines ([`promtail_line`], in
/// [`view_order`], one per path), [`imports`], [`middle`], every
/// [`file_line`], [`trailer`].
pub fn header(out: &mut String) {
    out.push_str("# tailtrace positions: acknowledged offsets. Promtail reads the plain paths.\n");
    out.push_str("positions:\n");
}

/// Imported Promtail offsets whose path no file of ours has.
pub fn imports(
    promtail: &BTreeMap<PathBuf, u64>,
    ours: &dyn Fn(&std::path::Path) -> bool,
    out: &mut String,
) {
    for (path, off) in promtail {
        if !ours(path) {
            promtail_line(path, *off, out);
        }
    }
}

/// Journal cursors, then the chain watermarks' lines (see [`chain_lines`]).
pub fn middle(cursors: &BTreeMap<String, String>, chain_lines: &str, out: &mut String) {
    for (k, v) in cursors {
        entry(k, v, out);
    }
    out.push_str(chain_lines);
}

/// The spool offset and the layout version: the file's last lines.
pub fn trailer(spool: Option<u64>, out: &mut String) {
    if let Some(h) = spool {
        entry(SPOOL, &h.to_string(), out);
    }
    entry(VERSION, "2", out);
}

/// The chain watermarks' lines (cached by the registry: they rarely change).
pub fn chain_lines(chains: &Chains, out: &mut String) {
    for (path, stamp) in chains {
        entry(
            &format!("{CHAIN}{}", String::from_utf8_lossy(path.bytes())),
            stamp,
            out,
        );
    }
}

/// One `  key: value` line.
fn entry(k: &str, v: &str, out: &mut String) {
    out.push_str("  ");
    yaml_str(k, out);
    out.push_str(": ");
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        // A string that looks like a number is quoted (as Promtail writes it).
        let _ = write!(out, "'{v}'");
    } else {
        yaml_str(v, out);
    }
    out.push('\n');
}

/// How a path's two lines may be written: straight into the text, or
/// through [`entry`]'s quoting. A live file's is worked out once, when it is
/// taken on (its path never changes), not at every save.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plain {
    /// Absolute, and every byte one [`yaml_str`] leaves plain in a key:
    /// both lines are written straight.
    Both,
    /// As [`Plain::Both`] but for a `:`, which only a tailtrace record's
    /// key may hold plain: the `tailtrace:file` line is written straight.
    Record,
    /// Anything else (relative, a space, a quote, non-ASCII, …).
    Neither,
}

/// `path`'s [`Plain`].
pub fn plainness(path: &std::path::Path) -> Plain {
    let b = path.as_os_str().as_encoded_bytes();
    if b.first() != Some(&b'/') {
        return Plain::Neither;
    }
    let mut colon = false;
    for &c in b {
        if c == b':' {
            colon = true;
        } else if !safe_byte(c) {
            return Plain::Neither;
        }
    }
    if colon {
        Plain::Record
    } else {
        Plain::Both
    }
}

/// Appends the `path: offset` entry Promtail reads.
pub fn promtail_line(path: &std::path::Path, offset: u64, out: &mut String) {
    let mut b = Vec::new();
    promtail_line_as(path, plainness(path), offset, &mut b);
    // Valid UTF-8 either way: a plain path is ASCII, the general route a `str`.
    out.push_str(&String::from_utf8_lossy(&b));
}

/// [`promtail_line`] as bytes, for a path whose [`Plain`] is known.
///
/// Written straight into `out` when the path is plain (every pod log path):
/// the text [`entry`] would make, without the per-character scan, a UTF-8
/// check of the path, the offset's `String` and `fmt`'s machinery — a save
/// of 5,000 files formats 10,000 lines.
pub fn promtail_line_as(path: &std::path::Path, plain: Plain, offset: u64, out: &mut Vec<u8>) {
    if plain == Plain::Both {
        out.extend_from_slice(b"  ");
        out.extend_from_slice(path.as_os_str().as_encoded_bytes());
        out.extend_from_slice(b": '");
        out.extend_from_slice(itoa::Buffer::new().format(offset).as_bytes());
        out.extend_from_slice(b"'\n");
    } else {
        let mut s = String::new();
        entry(&path.to_string_lossy(), &offset.to_string(), &mut s);
        out.extend_from_slice(s.as_bytes());
    }
}

/// The bytes a plain YAML scalar of ours may hold (ASCII only).
fn safe_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'/' | b'.' | b'_' | b'-')
}

/// A file's record as its `tailtrace:file` line renders it, borrowed from a
/// live file (whose path is shared with the tailer) or a saved one.
pub struct FileRecord<'a> {
    pub path: &'a Path,
    pub id: FileId,
    pub fp_len: u32,
    pub fp: u32,
    pub offset: u64,
    pub size: u64,
    pub seq: u64,
}

/// Appends `f`'s `tailtrace:file:…: <offset> <size>` line.
pub fn file_line(f: &FileRecord<'_>, out: &mut String) {
    let mut b = Vec::new();
    file_line_as(f, plainness(f.path), &mut b);
    // Valid UTF-8 either way (see `promtail_line`).
    out.push_str(&String::from_utf8_lossy(&b));
}

/// [`file_line`] as bytes, for a path whose [`Plain`] is known: straight
/// into `out` for a plain path (see [`promtail_line_as`]); the key is then
/// plain, and the value (three numbers) is always quoted.
pub fn file_line_as(f: &FileRecord<'_>, plain: Plain, out: &mut Vec<u8>) {
    if plain == Plain::Neither {
        let mut s = String::new();
        file_line_general(f, &mut s);
        out.extend_from_slice(s.as_bytes());
        return;
    }
    let mut n = itoa::Buffer::new();
    out.extend_from_slice(b"  ");
    out.extend_from_slice(FILE.as_bytes());
    for v in [f.id.dev, f.id.ino, f.fp_len.into(), f.fp.into()] {
        out.extend_from_slice(n.format(v).as_bytes());
        out.push(b':');
    }
    out.extend_from_slice(f.path.as_os_str().as_encoded_bytes());
    out.extend_from_slice(b": \"");
    out.extend_from_slice(n.format(f.offset).as_bytes());
    out.push(b' ');
    out.extend_from_slice(n.format(f.size.max(f.offset)).as_bytes());
    out.push(b' ');
    out.extend_from_slice(n.format(f.seq).as_bytes());
    out.extend_from_slice(b"\"\n");
}

/// [`file_line`] for any path, through [`entry`].
fn file_line_general(f: &FileRecord<'_>, out: &mut String) {
    let key = format!(
        "{FILE}{}:{}:{}:{}:{}",
        f.id.dev,
        f.id.ino,
        f.fp_len,
        f.fp,
        f.path.to_string_lossy()
    );
    let value = format!("{} {} {}", f.offset, f.size.max(f.offset), f.seq);
    entry(&key, &value, out);
}

/// A YAML string scalar: plain when that cannot be read as anything else
/// (an absolute path of safe characters, a `journal-`/`cursor-` name, a
/// tailtrace record key, a stamp or `offset size`), double-quoted with
/// escapes otherwise.
fn yaml_str(s: &str, out: &mut String) {
    // Every character allowed plain is ASCII: a byte test is the same test.
    let plain = if let Some(rest) = s.strip_prefix("tailtrace:") {
        !rest.contains(": ") && rest.bytes().all(|c| safe_byte(c) || c == b':')
    } else if s.starts_with('/') || s.starts_with("journal-") || s.starts_with("cursor-") {
        s.bytes().all(safe_byte)
    } else {
        // `81920 90000`, `20261122-101500`: digits with one inner separator.
        let b = s.as_bytes();
        b.first().is_some_and(u8::is_ascii_digit)
            && b.last().is_some_and(u8::is_ascii_digit)
            && s.chars()
                .all(|c| c.is_ascii_digit() || c == ' ' || c == '-')
            && s.matches([' ', '-']).count() == 1
    };
    if plain {
        out.push_str(s);
        return;
    }
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            // Controls, and what YAML's printable set (`c-printable`)
            // also leaves out (U+FFFE, U+FFFF) or reads as a line break or
            // a byte order mark: escaped, or the file would not load again.
            c if c.is_control()
                || matches!(
                    c,
                    '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
                ) =>
            {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Paths of bytes that make each way out: plain, `:` (plain only in a
    /// record key), quoted (space, quote, control, non-ASCII), not UTF-8,
    /// relative.
    fn any_path() -> impl Strategy<Value = PathBuf> {
        let byte = prop::sample::select(vec![
            b'/', b'a', b'Z', b'0', b'.', b'_', b'-', b':', b' ', b'"', b'\\', b'\n', 0xc3, 0xa9,
            0xff,
        ]);
        // Half of them of plain bytes only (the direct way), the rest of any.
        let plain = prop::sample::select(vec![b'/', b'a', b'Z', b'0', b'.', b'_', b'-', b':']);
        let bytes = prop_oneof![
            prop::collection::vec(plain, 0..24),
            prop::collection::vec(byte, 0..24)
        ];
        (any::<bool>(), bytes).prop_map(|(abs, mut b)| {
            if abs {
                b.insert(0, b'/');
            }
            use std::os::unix::ffi::OsStringExt;
            PathBuf::from(std::ffi::OsString::from_vec(b))
        })
    }

    /// Pod log paths are written straight; a `:` only in a record's key;
    /// anything YAML would read otherwise goes through the quoting.
    #[test]
    fn plainness_of_paths() {
        let p = |s: &str| plainness(Path::new(s));
        assert_eq!(p("/var/log/pods/ns_pod-0_0c1d/app/0.log"), Plain::Both);
        assert_eq!(
            p("/var/log/pods/ns_pod_uid/app/0.log.20261122-101500.gz"),
            Plain::Both
        );
        assert_eq!(p("/var/log/a:b/0.log"), Plain::Record);
        assert_eq!(p("var/log/0.log"), Plain::Neither);
        assert_eq!(p("/var/log/a b.log"), Plain::Neither);
        assert_eq!(p("/var/log/ü.log"), Plain::Neither);
        assert_eq!(p("/var/log/'q'.log"), Plain::Neither);
        assert_eq!(p(""), Plain::Neither);
    }

    proptest! {
        /// The direct writes are byte for byte what the general route
        /// writes (a save compares texts: two renderings of one state must
        /// not differ, and Promtail must read both).
        #[test]
        fn lines_written_directly_are_the_general_lines(
            path in any_path(), offset in any::<u64>(), size in any::<u64>(),
            seq in any::<u64>(), dev in any::<u64>(), ino in any::<u64>(),
            fp_len in any::<u32>(), fp in any::<u32>(),
        ) {
            let (mut fast, mut general) = (String::new(), String::new());
            promtail_line(&path, offset, &mut fast);
            entry(&path.to_string_lossy(), &offset.to_string(), &mut general);
            prop_assert_eq!(&fast, &general);
            let r = FileRecord { path: &path, id: FileId { dev, ino }, fp_len, fp, offset, size, seq };
            let (mut fast, mut general) = (String::new(), String::new());
            file_line(&r, &mut fast);
            file_line_general(&r, &mut general);
            prop_assert_eq!(&fast, &general);
        }
    }

    fn file(path: &str, ino: u64, offset: u64) -> SavedFile {
        SavedFile {
            path: PathBuf::from(path),
            id: FileId { dev: 65024, ino },
            fp_len: 1024,
            fp: 3_639_709_385,
            offset,
            size: offset + 7,
            seq: ino % 5,
        }
    }

    fn round_trip(files: &[SavedFile], chains: &[(&str, &str)], cursors: &[(&str, &str)]) {
        let chains: Chains = chains
            .iter()
            .map(|(p, s)| (p.as_bytes().into(), s.to_string()))
            .collect();
        let cursors: BTreeMap<String, String> = cursors
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let text = render(&Snapshot {
            files,
            promtail: &BTreeMap::new(),
            cursors: &cursors,
            chains: &chains,
            chain_lines: None,
            spool: Some(77),
            is_current: &|_| true,
        });
        let back = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let mut want = files.to_vec();
        want.sort_by(|a, b| a.path.cmp(&b.path).then(a.id.ino.cmp(&b.id.ino)));
        let mut got = back.files.clone();
        got.sort_by(|a, b| a.path.cmp(&b.path).then(a.id.ino.cmp(&b.id.ino)));
        assert_eq!(got, want, "{text}");
        assert_eq!(back.chains, chains);
        assert_eq!(back.cursors, cursors);
        assert_eq!(back.spool, Some(77));
        assert!(
            back.promtail.is_empty(),
            "our own path entries are not imports"
        );
    }

    #[test]
    fn ordinary_and_odd_paths_round_trip() {
        round_trip(&[], &[], &[]);
        round_trip(
            &[
                file(
                    "/var/log/pods/default_app-0_5eed/sidecar/0.log",
                    10,
                    33_554_615,
                ),
                file("/var/log/pods/ns_p_u/c/0.log", 11, 0),
            ],
            &[("/var/log/pods/ns_p_u/c/0.log", "20261122-101500")],
            &[
                ("journal-j", "s=1;b=\"x\"\n"),
                ("cursor-c", "42"),
                ("journal-\u{fffe}", "a\u{ffff}"),
            ],
        );
        let odd = [
            "/p/with space/0.log",
            "/p/x: y/#z/0.log",
            "/p/quo\"te'/back\\slash",
            "/p/tab\tnl\ncr\r/\u{85}\u{2028}/0.log",
            "/p/é€😀/0.log",
            // Not in YAML's printable set, or at its edges (fuzz_props).
            "/p/\u{fffe}\u{ffff}\u{fffd}\u{feff}\u{7f}\u{9f}\u{a0}\u{1fffe}/0.log",
            "relative/- [x]/{y}",
            "123",
            "true",
        ];
        let files: Vec<SavedFile> = odd
            .iter()
            .enumerate()
            .map(|(i, p)| file(p, i as u64, 5))
            .collect();
        round_trip(&files, &[("/p/with space/0.log", "20261122-101500")], &[]);
    }

    #[test]
    fn promtail_decodes_it_strictly_as_a_plain_map() {
        // What Promtail's strict decoder accepts: exactly `positions:` with
        // string values.
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct PromtailFile {
            #[allow(dead_code)]
            positions: BTreeMap<String, String>,
        }
        let f = file("/var/log/pods/a/c/0.log", 1, 81920);
        let text = render(&Snapshot {
            files: &[f],
            promtail: &BTreeMap::new(),
            cursors: &BTreeMap::new(),
            chains: &Default::default(),
            chain_lines: None,
            spool: Some(5),
            is_current: &|_| true,
        });
        let p: PromtailFile = serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(p.positions["/var/log/pods/a/c/0.log"], "81920");
    }

    #[test]
    fn reads_the_earlier_layout_and_promtail_files() {
        let old = "tailtrace: 1\nfiles:\n- path: /a/0.log\n  dev: 1\n  ino: 2\n  fp_len: 3\n  fp: 4\n  offset: 5\npositions:\n  /a/0.log: '5'\n";
        let l = parse(old).unwrap();
        assert_eq!(l.files.len(), 1);
        assert_eq!(l.files[0].offset, 5);
        assert!(l.promtail.is_empty());
        let promtail = "positions:\n  /var/log/x.log: \"1234\"\n  journal-kubelet: s=abc\n";
        let l = parse(promtail).unwrap();
        assert_eq!(l.promtail[&PathBuf::from("/var/log/x.log")], 1234);
        assert_eq!(l.cursors["journal-kubelet"], "s=abc");
    }

    /// Found by fuzzing (render → parse): a Promtail offset imported but
    /// not yet claimed by a file was written back and then dropped on the
    /// next start, as if it were our own file's Promtail view.
    #[test]
    fn unclaimed_promtail_imports_survive_a_restart() {
        let mut promtail = BTreeMap::new();
        promtail.insert(PathBuf::from("/var/log/pods/b/c/0.log"), 4321);
        let files = [file("/var/log/pods/a/c/0.log", 1, 81920)];
        let text = render(&Snapshot {
            files: &files,
            promtail: &promtail,
            cursors: &BTreeMap::new(),
            chains: &Default::default(),
            chain_lines: None,
            spool: None,
            is_current: &|_| true,
        });
        let back = parse(&text).unwrap();
        assert_eq!(back.promtail, promtail, "{text}");
        assert_eq!(back.files.len(), 1);
        let text = "positions:\n  /0: '0'\n  tailtrace:version: '2'\n";
        assert_eq!(parse(text).unwrap().promtail[&PathBuf::from("/0")], 0);
    }

    #[test]
    fn malformed_records_are_errors_naming_the_key() {
        let bad = "positions:\n  tailtrace:file:1:x:3:4:/a: '5'\n";
        let e = parse(bad).unwrap_err();
        assert!(e.contains("tailtrace:file:1:x:3:4:/a"), "{e}");
        let bad = "positions:\n  tailtrace:file:1:2:3:4:/a: five\n";
        assert!(parse(bad).is_err());
    }
}
