//! The fuzzing entry points: one function per parser that reads outside
//! input, each taking arbitrary bytes.
//!
//! Owns: the properties each parser promises, written once as checks. Every
//! function runs its parser on the input and returns `Err` naming the broken
//! promise (a panic inside the parser is a failure too). The cargo-fuzz
//! targets in `fuzz/fuzz_targets/` are one-line wrappers that panic on
//! `Err`; `tests/fuzz_props.rs` runs the same functions as bounded property
//! tests on arbitrary and structure-aware inputs, in the normal test suite.
//!
//! Inputs that a caller never hands the parser are skipped (`Ok`), e.g. a
//! config that is not UTF-8 (the loader refuses it before parsing).
//!
//! Must never: be called by the agent itself, do I/O, or read the process
//! environment (env expansion uses a fixed table).

use crate::entry::{Entry, Timestamp};
use crate::labels::LabelSet;
use crate::pipeline::stages::trace::detect::{Detector, Formats};
use crate::positions::{format as positions_format, SavedFile};
use crate::sink::http::{ErrorLine, MAX_ERROR_BODY};
use crate::source::journal::Record;
use crate::source::reader::LineSplitter;
use crate::source::{cri, docker};
use crate::spool::chunk::{ChunkBuilder, ChunkError, Codec, Header, Payload, HEADER_LEN};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

/// `Err` names a broken promise.
pub type Verdict = Result<(), String>;

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

/// CRI lines: [`cri::split`] and [`cri::decode`] agree, and an accepted
/// line is exactly `<time> <stream> <tags> <content>` with the content the
/// input's own bytes after the third space.
pub fn cri_line(data: &[u8]) -> Verdict {
    let decoded = cri::decode(data);
    let f = match cri::split(data) {
        Ok(f) => f,
        Err(e) => {
            ensure!(
                decoded == Err(e),
                "decode {decoded:?} disagrees with split {e:?}"
            );
            return Ok(());
        }
    };
    ensure!(
        f.content_start <= data.len()
            && std::ptr::eq(f.content.as_ptr(), data[f.content_start..].as_ptr())
            && f.content.len() == data.len() - f.content_start,
        "content is not the input after the fields"
    );
    let mut head = Vec::new();
    head.extend_from_slice(f.time);
    head.push(b' ');
    head.extend_from_slice(f.stream.as_str().as_bytes());
    head.push(b' ');
    ensure!(
        data.starts_with(&head) && data[f.content_start - 1] == b' ',
        "fields do not spell the line's head"
    );
    let tags = &data[head.len()..f.content_start - 1];
    ensure!(
        !tags.is_empty() && !tags.contains(&b' '),
        "tags field {tags:?} is empty or has a space"
    );
    ensure!(
        f.partial == (tags == b"P" || tags.starts_with(b"P:")),
        "partial flag wrong for tags {tags:?}"
    );
    match (cri::parse_rfc3339(f.time), decoded) {
        (Some(ts), Ok(l)) => ensure!(
            l.timestamp == ts
                && l.stream == f.stream
                && l.partial == f.partial
                && l.content == f.content,
            "decode disagrees with split"
        ),
        (None, Err(cri::CriError::BadTimestamp)) => {}
        (t, d) => return Err(format!("timestamp {t:?} but decode {d:?}")),
    }
    Ok(())
}

/// Docker json-file lines: an accepted line's `log`, `stream` and `time`
/// are what a JSON parser reads in it.
pub fn docker_line(data: &[u8]) -> Verdict {
    let Ok(l) = docker::decode(data) else {
        return Ok(());
    };
    let v: serde_json::Value = match serde_json::from_slice(data) {
        Ok(v) => v,
        // serde_json's `Value` refuses a lone surrogate escape (`\ud800`),
        // which JSON's grammar allows; in a field decode ignores, it is
        // rightly no reason to refuse the line.
        Err(e) if e.to_string().contains("unicode code point") => return Ok(()),
        Err(e) => return Err(format!("accepted a line that is not JSON: {e}")),
    };
    ensure!(
        v.get("log").and_then(|x| x.as_str()) == Some(&*l.log),
        "log {:?} is not the JSON's",
        l.log
    );
    ensure!(
        v.get("stream").and_then(|x| x.as_str()) == Some(l.stream.as_str()),
        "stream is not the JSON's"
    );
    let time = v.get("time").and_then(|x| x.as_str()).unwrap_or("");
    ensure!(
        cri::parse_rfc3339(time.as_bytes()) == Some(l.timestamp),
        "timestamp is not the JSON's time"
    );
    Ok(())
}

/// The tailer's line splitter, driven by bytes: the first byte picks the
/// line limit, the next seven the read sizes (cycled), the rest is the file.
pub fn line_splitter(data: &[u8]) -> Verdict {
    let (ctl, input) = data.split_at(data.len().min(8));
    let max_line = match ctl.first() {
        None | Some(0) => 1 << 20,
        Some(&b) => usize::from(b),
    };
    let reads: Vec<usize> = ctl.iter().skip(1).map(|&b| usize::from(b) + 1).collect();
    split_lines(input, max_line, &reads, 1000)
}

/// Feeds `input` to a [`LineSplitter`] starting at file offset `start`, in
/// reads of the sizes in `reads` (cycled; empty = one read), and checks that
/// every line is the input's next line (cut to `max_line`, marked `cut`
/// exactly when longer) with the offset after its newline; that the
/// splitter never holds more than `max_line` bytes; and that the
/// unterminated rest comes out of `finish` once. With lines no longer than
/// `max_line`, lines and newlines concatenate back to the input exactly.
pub fn split_lines(input: &[u8], max_line: usize, reads: &[usize], start: u64) -> Verdict {
    let max = max_line.max(1);
    let mut s = LineSplitter::new(start, max_line);
    let mut got: Vec<(Vec<u8>, u64, bool)> = Vec::new();
    let (mut at, mut i) = (0, 0);
    while at < input.len() {
        let n = reads
            .get(i % reads.len().max(1))
            .copied()
            .unwrap_or(input.len());
        let end = (at + n.max(1)).min(input.len());
        s.feed(&input[at..end], |l| {
            got.push((l.bytes.to_vec(), l.end, l.cut))
        });
        ensure!(s.held() <= max, "holds {} bytes, limit {max}", s.held());
        ensure!(
            s.pos() == start + end as u64,
            "pos {} after {end} bytes",
            s.pos()
        );
        at = end;
        i += 1;
    }
    let mut want: Vec<(Vec<u8>, u64, bool)> = Vec::new();
    let mut from = 0;
    for (j, _) in input.iter().enumerate().filter(|(_, &b)| b == b'\n') {
        let full = &input[from..j];
        want.push((
            full[..full.len().min(max)].to_vec(),
            start + j as u64 + 1,
            full.len() > max,
        ));
        from = j + 1;
    }
    ensure!(got == want, "lines {got:?}, expected {want:?}");
    let rest = &input[from..];
    let mut last = None;
    let emitted = s.finish(|l| last = Some((l.bytes.to_vec(), l.end, l.cut)));
    ensure!(
        emitted != rest.is_empty(),
        "finish emitted {emitted} with rest {rest:?}"
    );
    if let Some(l) = last {
        let want = (
            rest[..rest.len().min(max)].to_vec(),
            start + input.len() as u64,
            rest.len() > max,
        );
        ensure!(l == want, "finish gave {l:?}, expected {want:?}");
        got.push(l);
    }
    ensure!(!s.finish(|_| {}), "finish emitted twice");
    if input.split(|&b| b == b'\n').all(|l| l.len() <= max) {
        let mut joined = Vec::with_capacity(input.len());
        for (k, (bytes, _, _)) in got.iter().enumerate() {
            joined.extend_from_slice(bytes);
            if k < want.len() {
                joined.push(b'\n');
            }
        }
        ensure!(joined == input, "lines do not reassemble the input");
    }
    Ok(())
}

/// The positions file: whatever [`positions_format::parse`] accepts, once
/// held the way the registry holds it (one entry per file identity),
/// renders to a file that parses back to the same content.
pub fn positions(data: &[u8]) -> Verdict {
    let Ok(text) = std::str::from_utf8(data) else {
        return Ok(()); // read_to_string refuses it first
    };
    let Ok(loaded) = positions_format::parse(text) else {
        return Ok(());
    };
    positions_round_trip(loaded)
}

/// Renders `loaded` as the registry would (files deduplicated by identity,
/// every file current) and checks that it parses back to the same records.
pub fn positions_round_trip(loaded: positions_format::Loaded) -> Verdict {
    let by_id: HashMap<_, SavedFile> = loaded.files.into_iter().map(|f| (f.id, f)).collect();
    let mut files: Vec<SavedFile> = by_id.into_values().collect();
    files.sort_by(|a, b| (&a.path, a.id.dev, a.id.ino).cmp(&(&b.path, b.id.dev, b.id.ino)));
    let text = positions_format::render(&positions_format::Snapshot {
        files: &files,
        promtail: &loaded.promtail,
        cursors: &loaded.cursors,
        chains: &loaded.chains,
        chain_lines: None,
        spool: loaded.spool,
        is_current: &|_| true,
    });
    let back = positions_format::parse(&text)
        .map_err(|e| format!("rendered file does not parse: {e}\n{text}"))?;
    let mut got = back.files.clone();
    got.sort_by(|a, b| (&a.path, a.id.dev, a.id.ino).cmp(&(&b.path, b.id.dev, b.id.ino)));
    ensure!(got == files, "files {got:?} != {files:?}\n{text}");
    let ours: std::collections::HashSet<&PathBuf> = files.iter().map(|f| &f.path).collect();
    let promtail: BTreeMap<PathBuf, u64> = loaded
        .promtail
        .into_iter()
        .filter(|(p, _)| !ours.contains(p))
        .collect();
    ensure!(
        back.promtail == promtail,
        "promtail imports {:?} != {promtail:?}\n{text}",
        back.promtail
    );
    ensure!(back.cursors == loaded.cursors, "cursors differ\n{text}");
    ensure!(back.chains == loaded.chains, "chains differ\n{text}");
    ensure!(back.spool == loaded.spool, "spool differs\n{text}");
    ensure!(
        back.ours,
        "a file tailtrace wrote is not read as its own\n{text}"
    );
    Ok(())
}

/// The variables `${...}` expands to while fuzzing.
fn fuzz_env(name: &str) -> Option<String> {
    match name {
        "HOSTNAME" => Some("node-1".into()),
        "LOKI_URL" => Some("http://loki:3100/loki/api/v1/push".into()),
        "TENANT" => Some("team-a".into()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

/// The config loader, with and without `-config.expand-env`: never panics;
/// text without `$` and `\` expands to itself; a loaded config validates
/// (or not) without panicking.
pub fn config(data: &[u8]) -> Verdict {
    let Ok(text) = std::str::from_utf8(data) else {
        return Ok(()); // load_file refuses it first
    };
    let expanded = crate::config::envsubst::expand(text, fuzz_env);
    if !text.contains(['$', '\\']) {
        ensure!(
            expanded.as_deref() == Ok(text),
            "text without `$` or `\\` changed: {expanded:?}"
        );
    }
    if let Err(e) = &expanded {
        ensure!(
            e.offset < text.len(),
            "error offset {} past the text",
            e.offset
        );
    }
    for t in [Some(text), expanded.as_deref().ok()].into_iter().flatten() {
        if let Ok(cfg) = crate::config::load_str(t, "fuzz.yaml", false) {
            let _ = cfg.validate(false);
            let _ = cfg.validate(true);
        }
    }
    Ok(())
}

/// Loki's error answers: the body arrives in chunks (sizes from the first
/// byte); what is kept is the body's first line, at most
/// [`MAX_ERROR_BODY`] bytes of it, and for a UTF-8 body a prefix of that
/// line (never a character cut in two).
pub fn loki_error_body(data: &[u8]) -> Verdict {
    let (size, body) = match data.split_first() {
        Some((&b, rest)) => (usize::from(b) + 1, rest),
        None => (1, data),
    };
    let mut line = ErrorLine::default();
    let mut fed = 0;
    for c in body.chunks(size) {
        fed += c.len();
        if !line.push(c) {
            break;
        }
    }
    let first = body.split(|&b| b == b'\n').next().unwrap_or_default();
    ensure!(
        fed < (first.len() + 1).min(MAX_ERROR_BODY) + size,
        "read {fed} bytes for a {}-byte line",
        first.len()
    );
    let got = line.finish();
    ensure!(!got.contains('\n'), "kept a newline");
    if let Ok(text) = std::str::from_utf8(first) {
        ensure!(got.len() <= MAX_ERROR_BODY, "kept {} bytes", got.len());
        ensure!(
            text.starts_with(&got),
            "{got:?} is not a prefix of the first line"
        );
        if text.len() <= MAX_ERROR_BODY {
            ensure!(got == text.trim_end(), "{got:?} is not the first line");
        }
    }
    Ok(())
}

/// Spool chunks from disk: decoding arbitrary bytes ends in entries or an
/// error, never a panic, with every label index in range and no more
/// entries than the header promised.
pub fn spool_chunk(data: &[u8]) -> Verdict {
    decode_chunk(data).map(|_| ())
}

type Decoded = Vec<(usize, i64, String, Vec<(String, String)>)>;

/// A chunk's entries, checked as a reader would check them; `Ok(Err(_))`
/// is a chunk rightly refused.
fn decode_chunk(data: &[u8]) -> Result<Result<(Vec<LabelSet>, Decoded), ChunkError>, String> {
    let h = match Header::decode(data) {
        Ok(h) => h,
        Err(e) => return Ok(Err(e)),
    };
    let mut scratch = Vec::new();
    let mut p = match Payload::open(&h, &data[HEADER_LEN..], &mut scratch) {
        Ok(p) => p,
        Err(e) => return Ok(Err(e)),
    };
    let labels = p.labels().to_vec();
    let mut out = Vec::new();
    while let Some(e) = p.next_entry() {
        let e = match e {
            Ok(e) => e,
            Err(err) => return Ok(Err(err)),
        };
        ensure!(
            e.label < labels.len(),
            "label index {} out of range",
            e.label
        );
        let owned = e.to_entry(&labels[e.label]);
        out.push((
            e.label,
            e.timestamp.0,
            owned.line.into_string(),
            owned
                .metadata
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ));
    }
    ensure!(
        out.len() <= h.entries as usize,
        "{} entries, header says {}",
        out.len(),
        h.entries
    );
    Ok(Ok((labels, out)))
}

/// Spool chunks as written, driven by bytes: the input's lines become
/// entries (label set, timestamp and metadata drawn from each line), the
/// first byte picks the codec, the last eight bytes a corruption and a cut.
/// See [`spool_round_trip`].
pub fn spool_codec(data: &[u8]) -> Verdict {
    let sets: Vec<LabelSet> = (0..3)
        .map(|i| LabelSet::new([("app", format!("a{i}"))]))
        .collect();
    let lz4 = data.first().is_some_and(|b| b & 1 == 1);
    let mut tail = [0u8; 8];
    let n = data.len().min(8);
    tail[..n].copy_from_slice(&data[data.len() - n..]);
    let at = usize::from(u16::from_le_bytes([tail[0], tail[1]]));
    let cut = usize::from(u16::from_le_bytes([tail[2], tail[3]]));
    let entries: Vec<SpoolEntry> = data
        .split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, l)| {
            let line = String::from_utf8_lossy(l).into_owned();
            let ts = (l.len() as i64 - 40).wrapping_mul(1 << 40) + i as i64;
            let md = match l.first() {
                Some(&b) if b % 3 == 0 => vec![("trace_id".to_string(), line.clone())],
                _ => Vec::new(),
            };
            (l.len() % sets.len(), ts, line, md)
        })
        .collect();
    spool_round_trip(&sets, &entries, lz4, &[(at, tail[4])], &[cut])
}

/// One entry for [`spool_round_trip`]: label set index, timestamp, line,
/// structured metadata.
pub type SpoolEntry = (usize, i64, String, Vec<(String, String)>);

/// Spool chunks as written: `entries` (over `label_sets`) sealed into a
/// chunk decode back to the same entries; then every corruption in
/// `flips` (offset modulo the chunk's length, a non-zero XOR mask) and
/// every cut in `cuts` (a length modulo the chunk's) is refused with an
/// error.
pub fn spool_round_trip(
    label_sets: &[LabelSet],
    entries: &[SpoolEntry],
    lz4: bool,
    flips: &[(usize, u8)],
    cuts: &[usize],
) -> Verdict {
    let mut b = ChunkBuilder::new(if lz4 { Codec::Lz4 } else { Codec::None });
    let mut want: Decoded = Vec::new();
    for (l, ts, line, md) in entries {
        let Some(labels) = label_sets.get(*l) else {
            continue;
        };
        let mut e = Entry::new(
            labels.clone(),
            Timestamp(*ts),
            line.clone().into(),
            crate::ack::Ack::none(),
        );
        e.metadata = crate::entry::meta_pairs(md);
        b.add(&e);
        want.push((*l, *ts, line.clone(), md.clone()));
    }
    let mut chunk = Vec::new();
    if b.seal(7, &mut chunk).is_none() {
        ensure!(want.is_empty(), "no chunk for {} entries", want.len());
        return Ok(());
    }
    let (labels, got) = decode_chunk(&chunk)?.map_err(|e| format!("own chunk refused: {e}"))?;
    let got: Decoded = got
        .into_iter()
        .map(|(l, ts, line, md)| {
            let i = label_sets
                .iter()
                .position(|s| *s == labels[l])
                .unwrap_or(usize::MAX);
            (i, ts, line, md)
        })
        .collect();
    ensure!(got == want, "decoded {got:?}, wrote {want:?}");
    for &(at, mask) in flips {
        let mut bad = chunk.clone();
        let i = at % bad.len();
        bad[i] ^= mask.max(1);
        ensure!(
            decode_chunk(&bad)?.is_err(),
            "byte {i} xor {mask:#x} went unnoticed"
        );
    }
    for &cut in cuts {
        let n = cut % chunk.len();
        ensure!(
            decode_chunk(&chunk[..n])?.is_err(),
            "a chunk cut at {n} of {} went unnoticed",
            chunk.len()
        );
    }
    Ok(())
}

/// `journalctl --output=json` lines: an accepted record's `json: true`
/// line is a JSON object of exactly its fields, and its labels are one per
/// field (plus the priority keyword).
pub fn journal_json(data: &[u8]) -> Verdict {
    let Ok(r) = Record::parse(data) else {
        return Ok(());
    };
    let json = r.to_json();
    let back: BTreeMap<String, String> = serde_json::from_str(&json)
        .map_err(|e| format!("json line {json:?} does not parse: {e}"))?;
    ensure!(back == r.fields, "json line {json:?} is not the fields");
    ensure!(r.timestamp.0 >= 0, "negative timestamp");
    let labels = r.journal_labels();
    let want = r.fields.len() + usize::from(r.fields.contains_key("PRIORITY"));
    ensure!(labels.len() == want, "{} labels for {want}", labels.len());
    ensure!(
        r.line(false).as_deref() == r.message(),
        "line is not MESSAGE"
    );
    Ok(())
}

fn is_hex_id(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && s.bytes().any(|b| b != b'0')
}

/// The trace stage's detector over every format: whatever it reports is a
/// valid ID (32 lowercase hex, not all zero; a span of 16). The first byte
/// picks a field name for [`Detector::detect_field`].
pub fn trace_detect(data: &[u8]) -> Verdict {
    thread_local! {
        static DETECTOR: Detector = Detector::new(Formats::ALL);
    }
    let (name, text) = match data.split_first() {
        Some((b, rest)) => (
            [
                "trace_id",
                "traceparent",
                "dd.trace_id",
                "x-b3-traceid",
                "msg",
            ][usize::from(*b) % 5],
            rest,
        ),
        None => ("msg", data),
    };
    let text = String::from_utf8_lossy(text);
    DETECTOR.with(|d| {
        for found in [d.detect(&text), d.detect_field(name, &text)]
            .into_iter()
            .flatten()
        {
            ensure!(
                is_hex_id(found.trace_id(), 32),
                "invalid trace id {:?}",
                found.trace_id()
            );
            if let Some(s) = found.span_id() {
                ensure!(is_hex_id(s, 16), "invalid span id {s:?}");
            }
        }
        Ok(())
    })
}
