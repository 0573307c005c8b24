//! Micro-benchmarks of the decoding hot path: CRI and docker line decoding,
//! and partial-line reassembly through the `cri` stage. Throughput is in
//! bytes of input lines. Kept short (`cargo bench --bench decode` < 1 min).

#[path = "support/stage.rs"]
mod stage_support;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use stage_support::run;
use std::hint::black_box;
use std::time::Duration;
use tailtrace::ack::Ack;
use tailtrace::entry::{Entry, Timestamp};
use tailtrace::labels::LabelSet;
use tailtrace::metrics::Metrics;
use tailtrace::pipeline::stages::{CriConfig, CriStage, DockerConfig, DockerStage};
use tailtrace::source::{cri, docker};

const CONTENT: &str = "level=info ts=2024-01-20T10:00:00.123Z caller=main.go:42 msg=\"request served\" \
method=GET path=/api/v1/items status=200 duration=1.234ms bytes=5321 trace_id=4bf92f3577b34da6a3ce929d0e0e4736";

fn containerd_line() -> String {
    format!("2024-01-20T10:00:00.1234567Z stdout F {CONTENT}")
}

fn crio_line() -> String {
    format!("2024-01-20T10:00:00.123456789+00:00 stderr F {CONTENT}")
}

fn docker_line() -> String {
    let log = serde_json::to_string(&format!("{CONTENT}\n")).unwrap_or_default();
    format!(r#"{{"log":{log},"stream":"stdout","time":"2024-01-20T10:00:00.123456789Z"}}"#)
}

fn decoders(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode");
    for (name, line) in [
        ("cri_containerd", containerd_line()),
        ("cri_crio", crio_line()),
    ] {
        g.throughput(Throughput::Bytes(line.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| cri::decode(black_box(line.as_bytes())).map(|l| l.content.len()))
        });
    }
    let line = docker_line();
    g.throughput(Throughput::Bytes(line.len() as u64));
    g.bench_function("docker_json", |b| {
        b.iter(|| docker::decode(black_box(line.as_bytes())).map(|l| l.log.len()))
    });
    g.finish();
}

fn stages(c: &mut Criterion) {
    let metrics = Metrics::new();
    let labels = LabelSet::new([
        ("filename", "/var/log/pods/ns_pod_uid/c/0.log"),
        ("job", "ns/app"),
    ]);
    // 100 lines: full lines, and P P F groups interleaved across streams.
    let mut cri_lines = Vec::new();
    for i in 0..25 {
        cri_lines.push(containerd_line());
        cri_lines.push(format!(
            "2024-01-20T10:00:0{}.1Z stdout P {}",
            i % 10,
            &CONTENT[..60]
        ));
        cri_lines.push(format!(
            "2024-01-20T10:00:0{}.2Z stderr F {}",
            i % 10,
            &CONTENT[..90]
        ));
        cri_lines.push(format!(
            "2024-01-20T10:00:0{}.3Z stdout F {}",
            i % 10,
            &CONTENT[60..]
        ));
    }
    let docker_lines: Vec<String> = (0..100).map(|_| docker_line()).collect();
    let entries = |lines: &[String]| -> Vec<Entry> {
        lines
            .iter()
            .map(|l| Entry::new(labels.clone(), Timestamp(0), l.clone().into(), Ack::none()))
            .collect()
    };

    let mut g = c.benchmark_group("stage");
    g.throughput(Throughput::Bytes(
        cri_lines.iter().map(|l| l.len() as u64).sum(),
    ));
    let mut cri_stage = CriStage::new(&CriConfig::default()).unwrap_or_else(|e| panic!("{e}"));
    let mut out = Vec::new();
    g.bench_function("cri_reassembly_100_lines", |b| {
        b.iter_batched(
            || entries(&cri_lines),
            |es| run(&mut cri_stage, es, &metrics, &mut out),
            BatchSize::SmallInput,
        )
    });
    g.throughput(Throughput::Bytes(
        docker_lines.iter().map(|l| l.len() as u64).sum(),
    ));
    let mut docker_stage = DockerStage::new(&DockerConfig::default());
    g.bench_function("docker_100_lines", |b| {
        b.iter_batched(
            || entries(&docker_lines),
            |es| run(&mut docker_stage, es, &metrics, &mut out),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    targets = decoders, stages
}
criterion_main!(benches);
