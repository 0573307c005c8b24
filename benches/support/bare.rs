//! The e2e bench's bare loop: the per-line work that pushing CRI files to
//! Loki with the default stages cannot skip, done in one thread with
//! nothing around it — the yardstick for what the agent's own machinery
//! costs on top (issue #11).
//!
//! Design: like the floor (support/floor.rs, whose timed passes it
//! shares), right after a shape's input is written this thread reads every
//! file with `read(2)` in 1 MiB blocks. Then, per line: find its end
//! (`memchr`), decode it with the agent's own `cri` decoder (timestamp
//! included), join partial lines per stream, check the UTF-8, look for a
//! trace context with the agent's own detector (all formats, as the default
//! `trace` stage), and append the entry to a push body in Loki's protobuf
//! with the agent's own writer (`sink::proto::put_entry`)
//! (`trace_id`/`span_id` as structured metadata, one stream per file, the
//! body snappy-compressed when it reaches 1 MiB, the agent's `batchsize`).
//! What it leaves out is everything that makes the agent an agent: a
//! second thread, acknowledgements and positions, the memory budget,
//! batching per stream, the stage engine, HTTP, metrics. An unparsable line
//! is pushed whole with a zero timestamp, as one that is not valid UTF-8 is
//! pushed lossily; the bench's input has neither.
//!
//! Must never: fail the run — an error means no figure (printed as `-`).

use std::borrow::Cow;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use tailtrace::entry::Timestamp;
use tailtrace::pipeline::stages::trace::detect::Detector;
use tailtrace::sink::proto;
use tailtrace::source::cri;

const BLOCK: usize = 1 << 20;
/// The agent's `batchsize` in the bench's config (support/agent.rs).
const BATCH: usize = 1 << 20;

/// The bare loop over one shape: MiB of input per CPU-second.
pub struct Bare {
    pub mib_per_cpu_s: f64,
    pub passes: Vec<f64>,
    /// Compressed bytes per input byte.
    pub ratio: f64,
    /// Entries encoded and, of them, those with a trace ID (last pass).
    pub entries: u64,
    pub traced: u64,
}

impl Bare {
    /// The figures as the bench's JSON keeps them.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "what": "read(2) in 1 MiB blocks, cri decode, partials joined, UTF-8 check, \
                     trace detection, protobuf entries, snappy per 1 MiB body; one thread, \
                     this thread's CPU, median of passes",
            "mib_per_cpu_s": self.mib_per_cpu_s,
            "passes_mib_per_cpu_s": self.passes,
            "snappy_ratio": self.ratio,
            "entries": self.entries,
            "traced": self.traced,
        })
    }
}

/// Loki's push body being built: whole streams, then the open one's
/// entries.
struct Body {
    enc: snap::raw::Encoder,
    /// Encoded `StreamAdapter`s, each with its key and length.
    streams: Vec<u8>,
    /// The open stream's encoded entries.
    entries: Vec<u8>,
    labels: String,
    out: Vec<u8>,
    packed: u64,
    count: u64,
    traced: u64,
}

impl Body {
    fn new() -> Body {
        Body {
            enc: snap::raw::Encoder::new(),
            streams: Vec::with_capacity(2 * BATCH),
            entries: Vec::with_capacity(2 * BATCH),
            labels: String::new(),
            out: vec![0; snap::raw::max_compress_len(4 * BATCH)],
            packed: 0,
            count: 0,
            traced: 0,
        }
    }

    /// One entry, written by the agent's own protobuf writer.
    fn add(&mut self, ts_ns: i64, line: &str, ids: Option<(&str, Option<&str>)>) {
        let (trace, span) = match ids {
            Some((t, s)) => (Some(t), s),
            None => (None, None),
        };
        let pairs = [("trace_id", trace), ("span_id", span)];
        let metadata = pairs
            .iter()
            .filter_map(|&(k, v)| v.map(|v| (k.as_bytes(), v.as_bytes())));
        proto::put_entry(
            &mut self.entries,
            Timestamp(ts_ns),
            line.as_bytes(),
            metadata,
        );
        self.count += 1;
        self.traced += u64::from(trace.is_some());
        if self.streams.len() + self.entries.len() >= BATCH {
            self.close_stream();
            self.flush();
        }
    }

    /// Ends the open stream: `StreamAdapter { labels, entries }` into the
    /// body.
    fn close_stream(&mut self) {
        if self.entries.is_empty() {
            return;
        }
        proto::put_stream_head(
            &mut self.streams,
            self.labels.as_bytes(),
            self.entries.len(),
        );
        self.streams.extend_from_slice(&self.entries);
        self.entries.clear();
    }

    /// Compresses the body (`PushRequest { streams }`) and starts anew.
    fn flush(&mut self) {
        if self.streams.is_empty() {
            return;
        }
        let need = snap::raw::max_compress_len(self.streams.len());
        if self.out.len() < need {
            self.out.resize(need, 0);
        }
        // Errors only on inputs over ~4 GiB.
        if let Ok(n) = self.enc.compress(&self.streams, &mut self.out) {
            self.packed += n as u64;
        }
        self.streams.clear();
    }
}

/// Partial CRI lines waiting for their last piece, per stream.
#[derive(Default)]
struct Joiner {
    pending: [Vec<u8>; 2],
}

/// One file through the loop; returns its bytes.
fn one_file(
    path: &Path,
    det: &Detector,
    body: &mut Body,
    buf: &mut [u8],
    carry: &mut Vec<u8>,
) -> Result<u64, String> {
    let mut file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    body.labels = format!("{{filename=\"{}\"}}", path.display());
    let mut joiner = Joiner::default();
    let mut bytes = 0u64;
    carry.clear();
    loop {
        let n = file
            .read(buf)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        carry.extend_from_slice(&buf[..n]);
        let mut start = 0;
        for nl in memchr::memchr_iter(b'\n', carry) {
            line(&carry[start..nl], det, body, &mut joiner);
            start = nl + 1;
        }
        carry.drain(..start);
    }
    body.close_stream();
    Ok(bytes)
}

fn line(raw: &[u8], det: &Detector, body: &mut Body, joiner: &mut Joiner) {
    let (ts, content, joined): (i64, &[u8], Option<usize>) = match cri::decode(raw) {
        Ok(c) => {
            let i = c.stream.index();
            let held = &mut joiner.pending[i];
            if c.partial {
                held.extend_from_slice(c.content);
                return;
            }
            if held.is_empty() {
                (c.timestamp.0, c.content, None)
            } else {
                held.extend_from_slice(c.content);
                (c.timestamp.0, &held[..], Some(i))
            }
        }
        Err(_) => (0, raw, None),
    };
    let text = match std::str::from_utf8(content) {
        Ok(t) => Cow::Borrowed(t),
        Err(_) => String::from_utf8_lossy(content),
    };
    let tc = det.detect(&text);
    body.add(ts, &text, tc.as_ref().map(|t| (t.trace_id(), t.span_id())));
    // Only this stream's pieces are used up; the other's may be waiting.
    if let Some(i) = joined {
        joiner.pending[i].clear();
    }
}

/// Runs the bare loop over `files`, timed as the floor is; `lines` is how
/// many lines the input holds (partials joined), which each pass must
/// encode.
pub fn measure(files: &[PathBuf], lines: u64) -> Result<Bare, String> {
    self_check()?;
    let det = Detector::default();
    let mut body = Body::new();
    let mut buf = vec![0u8; BLOCK];
    let mut carry = Vec::with_capacity(2 * BLOCK);
    let (passes, mib_per_cpu_s, ratio) = super::floor::timed_passes(|| {
        (body.packed, body.count, body.traced) = (0, 0, 0);
        let mut bytes = 0;
        for path in files {
            bytes += one_file(path, &det, &mut body, &mut buf, &mut carry)?;
        }
        body.flush();
        if body.count != lines {
            return Err(format!("encoded {} entries of {lines} lines", body.count));
        }
        Ok((bytes, body.packed))
    })?;
    Ok(Bare {
        mib_per_cpu_s,
        passes,
        ratio,
        entries: body.count,
        traced: body.traced,
    })
}

/// Checks, before any measuring, that the loop's bodies are what Loki
/// decodes: the agent's own protobuf types read back every entry, its
/// timestamp and metadata (the bench has no test harness, so this runs
/// with every measurement).
fn self_check() -> Result<(), String> {
    let mut body = Body::new();
    body.labels = "{filename=\"a\"}".into();
    body.add(1_500_000_000_123, "plain", None);
    let ids = ("0af7651916cd43dd8448eb211c80319c", Some("b7ad6b7169203331"));
    body.add(-1, "traced", Some(ids));
    body.close_stream();
    let req: tailtrace::sink::proto::PushRequest =
        prost::Message::decode(&body.streams[..]).map_err(|e| format!("self-check: {e}"))?;
    let got: Vec<_> = req
        .streams
        .iter()
        .flat_map(|s| s.entries.iter().map(move |e| (s.labels.as_str(), e)))
        .map(|(labels, e)| {
            let t = e.timestamp.unwrap_or_default();
            let md: Vec<_> = e
                .structured_metadata
                .iter()
                .map(|p| format!("{}={}", p.name, p.value))
                .collect();
            format!(
                "{labels} {}.{} {} {}",
                t.seconds,
                t.nanos,
                e.line,
                md.join(",")
            )
        })
        .collect();
    let want = [
        "{filename=\"a\"} 1500.123 plain ",
        "{filename=\"a\"} -1.999999999 traced \
         trace_id=0af7651916cd43dd8448eb211c80319c,span_id=b7ad6b7169203331",
    ];
    if got != want {
        return Err(format!("self-check: decoded {got:?}, want {want:?}"));
    }
    Ok(())
}
