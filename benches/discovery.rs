//! Discovery: one rescan of Kubernetes-style targets (one per container,
//! `<root>/*<pod uid>/<container>/*.log`, as `kubernetes_sd` +
//! `relabel_configs` make them) at 50, 500 and 2,500 pods × 2 containers,
//! over a real directory tree in a temp dir (page-cached). What it costs is
//! what the file-tailer thread spends every `sync_period` (10 s) instead of
//! reading files; it must grow with the pods, not with their square.
//!
//! `new_pod_*`: what a new pod costs the tailer at each size — its two
//! containers' targets walked alone (a target update from the Kubernetes
//! API), and its targets' globs walked under its new directory (an inotify
//! event) — which must not grow with the pods already there (each was a
//! full rescan before).
//!
//! `rescan_reusing_listings`: the same rescan as the tailer makes it after
//! its first — every target's walk at once, on a tree whose directories
//! have not changed since the last rescan, so each kept listing stands in
//! for a read after a `stat` (`src/source/listing.rs`).
//!
//! Run: `cargo bench --bench discovery` (~1 min).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;
use tailtrace::labels::LabelSet;
use tailtrace::source::discover::Target;
use tailtrace::source::expand::{Kept, Scan, Walk};

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

/// Every directory of the tree last modified an hour ago, as a node's are
/// between pods coming and going.
fn settle(dir: &std::path::Path) {
    let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    for e in std::fs::read_dir(dir).expect("list").flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            settle(&e.path());
        }
    }
    std::fs::File::open(dir)
        .and_then(|f| f.set_modified(hour_ago))
        .expect("set mtime");
}

/// A full rescan as the tailer makes one (every walk at once), reusing
/// `kept`: the paths found, and what it keeps for the next.
fn rescan_reusing(walks: &[&Walk], kept: Kept) -> (usize, Kept) {
    let mut outs = vec![Vec::new(); walks.len()];
    let mut scan = Scan::reusing(kept, None);
    scan.expand_all(walks, &mut outs, &mut |_, _| {}, &mut |_| {});
    let n = outs.iter().map(Vec::len).sum();
    (n, scan.into_kept())
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
    let mut g = c.benchmark_group("rescan_reusing_listings");
    g.measurement_time(Duration::from_secs(5));
    g.sample_size(10);
    for pods in [50, 500, 2500] {
        let (dir, targets) = tree(pods);
        settle(dir.path());
        let walks: Vec<&Walk> = targets.iter().filter_map(Target::walk).collect();
        let (n, mut kept) = rescan_reusing(&walks, Kept::default());
        assert_eq!(n, 2 * pods, "every container's file found");
        assert_eq!(kept.len(), 1 + 3 * pods, "every directory's listing kept");
        g.throughput(Throughput::Elements(targets.len() as u64));
        g.bench_function(BenchmarkId::from_parameter(2 * pods), |b| {
            b.iter(|| {
                let (n, k) = rescan_reusing(&walks, std::mem::take(&mut kept));
                kept = k;
                black_box(n)
            })
        });
    }
    g.finish();
    let mut g = c.benchmark_group("new_pod");
    g.measurement_time(Duration::from_secs(3));
    g.sample_size(10);
    for pods in [50, 500, 2500] {
        let (dir, targets) = tree(pods);
        let new = &targets[targets.len() - 2..];
        assert_eq!(rescan(new), 2, "the new pod's files found");
        g.bench_with_input(BenchmarkId::new("targets_walked", 2 * pods), new, |b, t| {
            b.iter(|| black_box(rescan(t)))
        });
        // The tailer hands the walk only the targets its index finds for
        // the new directory: the pod's own (what `Targets::under` picks).
        let walks: Vec<&Walk> = new.iter().filter_map(Target::walk).collect();
        let pod_dir = std::fs::read_dir(dir.path())
            .expect("list")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| {
                p.to_string_lossy()
                    .contains(&format!("_api-{:05}_", pods - 1))
            })
            .expect("the last pod's directory");
        let under = |walks: &[&Walk]| {
            let mut outs = vec![Vec::new(); walks.len()];
            Scan::default().expand_under(
                walks,
                &[&pod_dir],
                &mut outs,
                &mut |_, _| {},
                &mut |_| {},
            );
            outs.iter().map(Vec::len).sum::<usize>()
        };
        assert_eq!(
            under(&walks),
            2,
            "the new pod's files found under its directory"
        );
        g.bench_with_input(
            BenchmarkId::new("walked_under_its_directory", 2 * pods),
            &walks,
            |b, w| b.iter(|| black_box(under(w))),
        );
    }
    g.finish();
}

criterion_group!(discovery, benches);
criterion_main!(discovery);
