//! Label-set micro-benches: building (sort + hash), deriving a set with one
//! more label (what the cri stage does once per stream, cached), looking a
//! stream up by its set (what the batcher does per line), and rendering the
//! Prometheus selector (once per stream per batch).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;
use tailtrace::labels::LabelSet;

fn pod_labels(i: usize) -> Vec<(String, String)> {
    vec![
        ("job".into(), "kubernetes-pods".into()),
        ("namespace".into(), format!("team-{}", i % 20)),
        ("pod".into(), format!("api-7d9f8b6c5-{i:05}")),
        ("container".into(), "api".into()),
        ("app".into(), "api".into()),
        ("node_name".into(), "node-17".into()),
        (
            "filename".into(),
            format!("/var/log/pods/team_api-{i:05}_0b6e2c1a-1111-4a5b-9c3d-2e1f0a9b8c7d/api/0.log"),
        ),
    ]
}

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("labels");
    let raw: Vec<Vec<(String, String)>> = (0..1000).map(pod_labels).collect();
    let bytes: usize = raw[0].iter().map(|(k, v)| k.len() + v.len()).sum();
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function("build_7_labels", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % raw.len();
            black_box(LabelSet::new(
                raw[i].iter().map(|(k, v)| (k.as_str(), v.as_str())),
            ))
        })
    });
    let sets: Vec<LabelSet> = raw
        .iter()
        .map(|r| LabelSet::new(r.iter().map(|(k, v)| (k.as_str(), v.as_str()))))
        .collect();
    g.bench_function("with_stream_label", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % sets.len();
            black_box(sets[i].with("stream", "stdout"))
        })
    });
    g.bench_function("render_selector", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % sets.len();
            black_box(sets[i].render())
        })
    });
    g.throughput(Throughput::Elements(1));
    for n in [10usize, 1000] {
        let map: HashMap<LabelSet, usize> = sets
            .iter()
            .take(n)
            .cloned()
            .enumerate()
            .map(|(i, s)| (s, i))
            .collect();
        g.bench_with_input(BenchmarkId::new("lookup_shared_arc", n), &n, |b, &n| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % n;
                black_box(map.get(&sets[i]))
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = labels;
    config = Criterion::default().measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500)).sample_size(30);
    targets = benches
}
criterion_main!(labels);
