//! Encoding throughput: protobuf+snappy (Promtail's format) and JSON+gzip,
//! on a 1 MiB batch of ~200-byte lines across 50 streams — one full default
//! `batchsize` batch.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::time::{Duration, Instant};
use tailtrace::ack::Ack;
use tailtrace::config::{Compression, PushEncoding};
use tailtrace::entry::{Entry, Timestamp};
use tailtrace::labels::LabelSet;
use tailtrace::sink::batch::{Batch, StreamKey};
use tailtrace::sink::encode::Encoder;

fn batch() -> Batch {
    let keys: Vec<StreamKey> = (0..50)
        .map(|i| {
            StreamKey::new(LabelSet::new([
                ("namespace", format!("ns-{}", i % 7)),
                ("pod", format!("web-7d9f8c6b5-{i:05}")),
                ("container", "app".to_string()),
                ("job", format!("ns-{}/web", i % 7)),
                ("stream", "stdout".to_string()),
            ]))
        })
        .collect();
    let mut b = Batch::new(None, Instant::now());
    let mut i: u64 = 0;
    while b.size_bytes() < 1 << 20 {
        let line = format!(
            "2024-01-20T10:00:00.{:09}Z level=info msg=\"handled request\" method=GET path=/api/v1/items/{} status=200 duration_ms={} trace_id={:032x} user_agent=\"curl/8.5\"",
            i % 1_000_000_000,
            i * 7919 % 100_000,
            i % 997,
            i.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        );
        let mut e = Entry::new(
            LabelSet::empty(),
            Timestamp(1_705_744_800_000_000_000 + i as i64),
            line.into(),
            Ack::none(),
        );
        if i.is_multiple_of(10) {
            e.metadata = vec![("trace_id".into(), format!("{:032x}", i).into())];
        }
        b.add(&keys[(i % 50) as usize], e);
        i += 1;
    }
    b
}

fn encode(c: &mut Criterion) {
    let b = batch();
    let mut g = c.benchmark_group("encode_1mib_batch");
    g.throughput(Throughput::Bytes(b.size_bytes() as u64));
    for (name, enc, comp) in [
        ("protobuf_snappy", PushEncoding::Protobuf, Compression::None),
        ("json_gzip", PushEncoding::Json, Compression::Gzip),
    ] {
        let mut e = Encoder::new(enc, comp);
        g.bench_function(name, |bench| {
            bench.iter(|| black_box(e.encode(black_box(&b)).map(|body| body.bytes.len())))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = encode
}
criterion_main!(benches);
