//! Micro-benchmarks of trace-context detection: what the `trace` stage
//! costs a line without trace context (the common case, which the
//! prefilter must make nearly free) and a line in each form it reads.
//! Criterion's time per iteration is ns per line in the `detect` group;
//! the `stage` group runs 100 entries per iteration, against a stage that
//! only passes entries on. A plain ns/line table is printed at the end.
//! Kept short (`cargo bench --bench trace` < 1 min).

#[path = "support/stage.rs"]
mod stage_support;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use stage_support::run;
use std::hint::black_box;
use std::time::{Duration, Instant};
use tailtrace::ack::Ack;
use tailtrace::entry::{Entry, Timestamp};
use tailtrace::labels::LabelSet;
use tailtrace::metrics::Metrics;
use tailtrace::pipeline::stages::trace::detect::Detector;
use tailtrace::pipeline::stages::trace::{Config, TraceStage};
use tailtrace::pipeline::{Ctx, Stage};

const T: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const S: &str = "00f067aa0ba902b7";

/// Lines without trace context, as they come from common software.
fn plain_lines() -> Vec<(&'static str, String)> {
    vec![
        ("nginx", r#"10.0.0.1 - - [20/Jan/2024:10:00:00 +0000] "GET /api/v1/items?page=2 HTTP/1.1" 200 5321 "https://example.com/" "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36""#.into()),
        ("logfmt", r#"level=info ts=2024-01-20T10:00:00.123Z caller=main.go:42 msg="request served" method=GET path=/api/v1/items status=200 duration=1.234ms bytes=5321"#.into()),
        ("json", r#"{"level":"info","ts":1705744800.123,"caller":"server/handler.go:87","msg":"request served","method":"GET","path":"/api/v1/items","status":200,"duration":0.001234,"request_id":"4bf92f35-77b3-4da6-a3ce-929d0e0e4736"}"#.into()),
        ("klog", r#"I0120 10:00:00.123456       1 controller.go:123] "Reconciling" object="default/web-5d8f7c9b4-x2x7k" generation=3 uid="4bf92f35-77b3-4da6-a3ce-929d0e0e4736""#.into()),
        ("near_miss", r#"{"level":"trace","msg":"stacktrace grace period b3 2000-01-20 100-200","sha":"4bf92f3577b34da6a3ce929d0e0e4736abcdef12"}"#.into()),
    ]
}

/// One line per form.
fn traced_lines() -> Vec<(&'static str, String)> {
    vec![
        ("w3c_bare", format!(r#"[2024-01-20T10:00:00.000Z] "GET /api HTTP/1.1" 200 - 0 612 3 2 "10.0.0.1" "curl/8.0" "00-{T}-{S}-01""#)),
        ("otel_logfmt", format!(r#"level=info ts=2024-01-20T10:00:00.123Z msg="request served" status=200 trace_id={T} span_id={S}"#)),
        ("otel_json", format!(r#"{{"level":"info","ts":1705744800.123,"msg":"request served","status":200,"trace_id":"{T}","span_id":"{S}"}}"#)),
        ("ecs_nested", format!(r#"{{"@timestamp":"2024-01-20T10:00:00Z","message":"ok","trace":{{"id":"{T}"}},"span":{{"id":"{S}"}}}}"#)),
        ("b3_multi", format!("GET /api X-B3-TraceId: {T} X-B3-SpanId: {S} X-B3-Sampled: 1")),
        ("b3_single", format!("GET /api b3: {T}-{S}-1")),
        ("jaeger", format!("GET /api uber-trace-id: {T}:{S}:0:1")),
        ("xray", "GET /api X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1".into()),
        ("datadog", "2024-01-20 10:00:00,123 INFO [main.py:10] [dd.service=svc dd.env=prod dd.trace_id=5208512171318403364 dd.span_id=7727579355834089880] - hello".into()),
        ("datadog_nested", r#"{"level":30,"msg":"ok","dd":{"trace_id":"5208512171318403364","span_id":"7727579355834089880","service":"svc"}}"#.into()),
    ]
}

fn detect(c: &mut Criterion) {
    let d = Detector::default();
    let mut g = c.benchmark_group("detect");
    for (name, line) in plain_lines().into_iter().chain(traced_lines()) {
        g.throughput(Throughput::Bytes(line.len() as u64));
        g.bench_function(name, |b| b.iter(|| d.detect(black_box(&line)).is_some()));
    }
    g.finish();
}

/// Passes entries on: the cost of a stage that does nothing.
struct Pass;
impl Stage for Pass {
    fn name(&self) -> &'static str {
        "pass"
    }
    fn process(&mut self, e: Entry, ctx: &mut Ctx) {
        ctx.emit(e);
    }
}

fn stage(c: &mut Criterion) {
    let metrics = Metrics::new();
    let labels = LabelSet::new([
        ("filename", "/var/log/pods/ns_pod_uid/c/0.log"),
        ("job", "ns/app"),
    ]);
    let plain: Vec<String> = plain_lines()
        .into_iter()
        .map(|(_, l)| l)
        .cycle()
        .take(100)
        .collect();
    let traced: Vec<String> = traced_lines()
        .into_iter()
        .map(|(_, l)| l)
        .cycle()
        .take(100)
        .collect();
    let entries = |lines: &[String]| -> Vec<Entry> {
        lines
            .iter()
            .map(|l| Entry::new(labels.clone(), Timestamp(0), l.clone().into(), Ack::none()))
            .collect()
    };
    let mut trace = TraceStage::new(
        &Config::default(),
        metrics.trace_context_lines_total.clone(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut out = Vec::new();
    let mut g = c.benchmark_group("stage");
    g.throughput(Throughput::Elements(100));
    for (name, lines) in [("plain_100_lines", &plain), ("traced_100_lines", &traced)] {
        g.bench_function(format!("pass_{name}"), |b| {
            b.iter_batched(
                || entries(lines),
                |es| run(&mut Pass, es, &metrics, &mut out),
                BatchSize::SmallInput,
            )
        });
        g.bench_function(format!("trace_{name}"), |b| {
            b.iter_batched(
                || entries(lines),
                |es| run(&mut trace, es, &metrics, &mut out),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

/// A plain table: ns per line for each line, detection alone.
fn table(_: &mut Criterion) {
    let d = Detector::default();
    println!("\n{:<16} {:>6} {:>9}  found", "line", "bytes", "ns/line");
    for (name, line) in plain_lines().into_iter().chain(traced_lines()) {
        let n = 200_000u32;
        let start = Instant::now();
        let mut hits = 0usize;
        for _ in 0..n {
            hits += usize::from(d.detect(black_box(&line)).is_some());
        }
        let ns = start.elapsed().as_nanos() as f64 / f64::from(n);
        println!("{name:<16} {:>6} {ns:>9.1}  {}", line.len(), hits > 0);
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(20);
    targets = detect, stage, table
}
criterion_main!(benches);
