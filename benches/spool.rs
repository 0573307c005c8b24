//! Spool chunk codec micro-benchmark: encode and decode throughput, and the
//! compression ratio, of `spool::chunk` with lz4 (what the spool stores),
//! snappy (what Loki's push needs) and no compression, on the same ~1 MiB of
//! realistic lines (benches/support/gen.rs) over 20 streams, cut into chunks
//! the way the spool writer does (sealed once the entries reach 256 KiB).
//!
//! Run: `cargo bench --bench spool` (< 1 min). The ratio table (uncompressed
//! payload bytes / stored chunk bytes, headers included) is printed first;
//! criterion does not measure ratios. Throughput is in uncompressed payload
//! bytes (label tables + entries, before compression), the same for every
//! codec.
//!
//! Design: encode = `ChunkBuilder::add` for every entry + `seal` of every
//! chunk; decode = `Header::decode` + `Payload::open` + every entry through
//! `next_entry`. The chunk format has no snappy codec, so snappy is built with
//! `Codec::None` and each sealed payload compressed with `snap::raw` (decode:
//! decompress, then decode the `Codec::None` chunk). Its checksum therefore
//! covers the uncompressed payload (lz4's covers the compressed one) and it
//! pays one extra payload copy per chunk. Before measuring, every codec's
//! chunks are decoded once and checked against the input entries.

#[path = "support/gen.rs"]
mod gen;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::ops::Range;
use std::time::Duration;
use tailtrace::ack::Ack;
use tailtrace::entry::{Entry, Timestamp};
use tailtrace::labels::LabelSet;
use tailtrace::spool::chunk::{
    ChunkBuilder, ChunkError, Codec, Header, Payload, RawEntry, HEADER_LEN,
};

/// Lines to generate (bytes of line content).
const INPUT: usize = 1 << 20;
/// Seal a chunk once its entries reach this (the spool's default chunk size).
const CHUNK_BODY: usize = 256 << 10;
/// Pods; each writes stdout and stderr: 20 streams.
const PODS: u64 = 10;
/// 2026-11-22T10:00:00Z, the generator's application clock.
const BASE_NS: i64 = 1_795_341_600_000_000_000;

/// How a chunk's payload is stored.
#[derive(Clone, Copy)]
enum Store {
    Lz4,
    Snappy,
    None,
}

impl Store {
    const ALL: [Store; 3] = [Store::Lz4, Store::Snappy, Store::None];

    fn name(self) -> &'static str {
        match self {
            Store::Lz4 => "lz4",
            Store::Snappy => "snappy",
            Store::None => "none",
        }
    }

    /// The codec the builder uses (snappy compresses a `None` chunk).
    fn codec(self) -> Codec {
        match self {
            Store::Lz4 => Codec::Lz4,
            Store::Snappy | Store::None => Codec::None,
        }
    }
}

/// ~1 MiB of generated lines over 20 streams, timestamps ~1 ms apart with a
/// little jitter (lines of different files interleave slightly out of order).
fn entries() -> Vec<Entry> {
    let streams: Vec<[LabelSet; 2]> = (0..PODS)
        .map(|i| {
            let ns = format!("shop-{}", i % 3);
            let app = ["orders", "payments", "gateway", "inventory"][(i % 4) as usize];
            let pod = format!("{app}-7d9f8c6b5-{:05x}", i * 7919 % 0x10_0000);
            let file = format!(
                "/var/log/pods/{ns}_{pod}_0b6e2c1a-{i:04}-4a5b-9c3d-2e1f0a9b8c7d/{app}/0.log"
            );
            let set = |stream: gen::Stream| {
                LabelSet::new([
                    ("job", format!("{ns}/{app}")),
                    ("namespace", ns.clone()),
                    ("pod", pod.clone()),
                    ("container", app.to_string()),
                    ("filename", file.clone()),
                    ("stream", stream.as_str().to_string()),
                ])
            };
            [set(gen::Stream::Stdout), set(gen::Stream::Stderr)]
        })
        .collect();
    let mut rng = gen::Rng::new(7);
    let mut buf = Vec::new();
    let (mut out, mut bytes, mut seq) = (Vec::new(), 0, 0u64);
    while bytes < INPUT {
        let stream = gen::content(seq, &mut buf);
        let line = String::from_utf8_lossy(&buf).into_owned();
        bytes += line.len();
        let labels = &streams[rng.below(PODS) as usize][usize::from(stream == gen::Stream::Stderr)];
        let ts = BASE_NS + seq as i64 * 1_000_000 + rng.below(400_000) as i64;
        out.push(Entry::new(
            labels.clone(),
            Timestamp(ts),
            line.into(),
            Ack::none(),
        ));
        seq += 1;
    }
    out
}

/// Sealed chunks, back to back in `buf`; `spans` holds each one's range.
#[derive(Default)]
struct Chunks {
    buf: Vec<u8>,
    spans: Vec<Range<usize>>,
}

/// Entries → chunks, with buffers reused across runs as the spool's writer
/// reuses them.
struct Enc {
    store: Store,
    builder: ChunkBuilder,
    /// Snappy: the `Codec::None` chunk before compression.
    sealed: Vec<u8>,
    snappy: snap::raw::Encoder,
}

impl Enc {
    fn new(store: Store) -> Enc {
        Enc {
            store,
            builder: ChunkBuilder::new(store.codec()),
            sealed: Vec::new(),
            snappy: snap::raw::Encoder::new(),
        }
    }

    fn encode(&mut self, es: &[Entry], out: &mut Chunks) {
        out.buf.clear();
        out.spans.clear();
        for e in es {
            self.builder.add(e);
            if self.builder.body_len() >= CHUNK_BODY {
                self.seal(out);
            }
        }
        self.seal(out);
    }

    fn seal(&mut self, out: &mut Chunks) {
        let start = out.buf.len();
        match self.store {
            Store::Lz4 | Store::None => {
                if self.builder.seal(BASE_NS, &mut out.buf).is_none() {
                    return;
                }
            }
            Store::Snappy => {
                self.sealed.clear();
                if self.builder.seal(BASE_NS, &mut self.sealed).is_none() {
                    return;
                }
                let (header, payload) = self.sealed.split_at(HEADER_LEN);
                out.buf.extend_from_slice(header);
                let at = start + HEADER_LEN;
                out.buf
                    .resize(at + snap::raw::max_compress_len(payload.len()), 0);
                let n = self
                    .snappy
                    .compress(payload, &mut out.buf[at..])
                    .unwrap_or_else(|e| panic!("snappy: {e}"));
                out.buf.truncate(at + n);
            }
        }
        out.spans.push(start..out.buf.len());
    }
}

/// Chunks → entries.
#[derive(Default)]
struct Dec {
    /// Snappy: the decompressed `Codec::None` payload.
    raw: Vec<u8>,
    /// lz4: `Payload::open`'s decompression buffer.
    scratch: Vec<u8>,
    snappy: snap::raw::Decoder,
}

impl Dec {
    /// Calls `each` with every entry (and its labels) in order; returns how
    /// many there were.
    fn decode(
        &mut self,
        store: Store,
        chunks: &Chunks,
        mut each: impl FnMut(&LabelSet, &RawEntry<'_>),
    ) -> Result<usize, ChunkError> {
        let mut n = 0;
        for span in &chunks.spans {
            let chunk = &chunks.buf[span.clone()];
            let h = Header::decode(chunk)?;
            let data = &chunk[HEADER_LEN..];
            let data: &[u8] = match store {
                Store::Lz4 | Store::None => data,
                Store::Snappy => {
                    let bad = |_| ChunkError::Payload("snappy");
                    self.raw
                        .resize(snap::raw::decompress_len(data).map_err(bad)?, 0);
                    let m = self.snappy.decompress(data, &mut self.raw).map_err(bad)?;
                    &self.raw[..m]
                }
            };
            let mut p = Payload::open(&h, data, &mut self.scratch)?;
            while let Some(e) = p.next_entry() {
                let e = e?;
                each(&p.labels()[e.label], &e);
                n += 1;
            }
        }
        Ok(n)
    }
}

/// Decodes `chunks` once and compares every entry with `es`.
fn check(store: Store, chunks: &Chunks, es: &[Entry]) -> Result<(), String> {
    let mut i = 0;
    let mut bad = None;
    let n = Dec::default()
        .decode(store, chunks, |labels, e| {
            let want = &es[i.min(es.len() - 1)];
            if bad.is_none()
                && (labels != &want.labels
                    || e.timestamp != want.timestamp
                    || e.line != want.line
                    || !e.metadata.is_empty())
            {
                bad = Some(i);
            }
            i += 1;
        })
        .map_err(|e| format!("{}: {e}", store.name()))?;
    match bad {
        Some(i) => Err(format!("{}: entry {i} differs", store.name())),
        None if n != es.len() => Err(format!("{}: {n} of {} entries", store.name(), es.len())),
        None => Ok(()),
    }
}

/// Uncompressed payload bytes of `chunks` (the same for every codec).
fn raw_payload(chunks: &Chunks) -> Result<u64, ChunkError> {
    chunks.spans.iter().try_fold(0, |sum, s| {
        Ok(sum + u64::from(Header::decode(&chunks.buf[s.clone()])?.raw_len))
    })
}

fn spool(c: &mut Criterion) {
    gen::self_check().unwrap_or_else(|e| panic!("line generator self-check: {e}"));
    let es = entries();
    let line_bytes: usize = es.iter().map(|e| e.line.len()).sum();
    let encoded: Vec<(Store, Chunks)> = Store::ALL
        .iter()
        .map(|&store| {
            let mut chunks = Chunks::default();
            Enc::new(store).encode(&es, &mut chunks);
            check(store, &chunks, &es).unwrap_or_else(|e| panic!("round trip: {e}"));
            (store, chunks)
        })
        .collect();
    let raw = raw_payload(&encoded[0].1).unwrap_or_else(|e| panic!("{e}"));

    println!(
        "spool chunks: {} entries, {:.1} KiB of lines over {} streams, {} chunks, {:.1} KiB uncompressed payload",
        es.len(),
        line_bytes as f64 / 1024.0,
        PODS * 2,
        encoded[0].1.spans.len(),
        raw as f64 / 1024.0
    );
    println!("{:<8} {:>6} {:>11}", "codec", "ratio", "stored KiB");
    for (store, chunks) in &encoded {
        let stored = chunks.buf.len();
        println!(
            "{:<8} {:>6.2} {:>11.1}",
            store.name(),
            raw as f64 / stored as f64,
            stored as f64 / 1024.0
        );
    }
    println!();

    let mut g = c.benchmark_group("spool_encode_1mib");
    g.throughput(Throughput::Bytes(raw));
    for store in Store::ALL {
        let mut enc = Enc::new(store);
        let mut out = Chunks::default();
        g.bench_function(store.name(), |b| {
            b.iter(|| {
                enc.encode(black_box(&es), &mut out);
                out.buf.len()
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("spool_decode_1mib");
    g.throughput(Throughput::Bytes(raw));
    for (store, chunks) in &encoded {
        let mut dec = Dec::default();
        g.bench_function(store.name(), |b| {
            b.iter(|| {
                let mut sum = 0usize;
                let n = dec.decode(*store, black_box(chunks), |_, e| {
                    sum = sum.wrapping_add(e.label + e.line.len());
                });
                (n.ok(), sum)
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    targets = spool
}
criterion_main!(benches);
