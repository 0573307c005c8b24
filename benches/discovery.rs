//! Discovery: one rescan of Kubernetes-style targets (one per container,
//! `<root>/*<pod uid>/<container>/*.log`, as `kubernetes_sd` +
//! `relabel_configs` make them) at 50, 500 and 2,500 pods × 2 containers,
//! over a real directory tree in a temp dir (page-cached). What it costs is
//! what the file-tailer thread spends every `sync_period` (10 s) instead of
//! reading files; it must grow with the pods, not with their square.
//!
//! Run: `cargo bench --bench discovery` (~1 min).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;
use tailtrace::labels::LabelSet;
use tailtrace::source::discover::Target;
use tailtrace::source::expand::Scan;

fn tree(pods: usize) -> (tempfile::TempDir, Vec<Target>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    let mut targets = Vec::new();
    for i in 0..pods {
        let uid = format!("{i:08x}-9b3d-4e8f-a6c1-7d2b9e4f0a13");
        for c in ["app", "istio-proxy"] {
            let d = root.join(format!("team-{}_api-{i:05}_{uid}/{c}", i % 20));
            std::fs::create_dir_all(&d).expect("mkdir");
            std::fs::write(d.join("0.log"), b"x\n").expect("write");
            let glob = format!("{}/*{uid}/{c}/*.log", root.display());
            targets.push(Target::new(0, &glob, None, LabelSet::empty()).expect("glob"));
        }
    }
    (dir, targets)
}

fn rescan(targets: &[Target]) -> usize {
    let mut scan = Scan::default();
    let mut out: Vec<PathBuf> = Vec::new();
    let mut n = 0;
    for t in targets {
        t.expand(&mut scan, &mut out, &mut |_, _| {});
        n += out.len();
        out.clear();
    }
    n
}

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("rescan_kubernetes_targets");
    g.measurement_time(Duration::from_secs(5));
    g.sample_size(10);
    for pods in [50, 500, 2500] {
        let (_dir, targets) = tree(pods);
        assert_eq!(rescan(&targets), 2 * pods, "every container's file found");
        g.throughput(Throughput::Elements(targets.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(2 * pods), &targets, |b, t| {
            b.iter(|| black_box(rescan(t)))
        });
    }
    g.finish();
}

criterion_group!(discovery, benches);
criterion_main!(discovery);
