//! Positions micro-bench: formatting a save's file lines at 5,000 files
//! (each live file's Promtail `path: offset` line and its `tailtrace:file`
//! record), which every positions save does for every file while offsets
//! move. The write and `fsync` are not measured here (`e2e` shows the
//! whole save in its profile).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;
use tailtrace::positions::format::{file_line_as, plainness, promtail_line_as, FileRecord};
use tailtrace::positions::FileId;

fn benches(c: &mut Criterion) {
    let paths: Vec<PathBuf> = (0..5000)
        .map(|i| {
            PathBuf::from(format!(
                "/var/log/pods/team-{}_api-7d9f8b6c5-{i:05}_0b6e2c1a-{i:04x}-4a5b-9c3d-2e1f0a9b8c7d/api/0.log",
                i % 20
            ))
        })
        .collect();
    // Worked out once per file when it is taken on, as the registry does.
    let plain: Vec<_> = paths.iter().map(|p| plainness(p)).collect();
    let mut g = c.benchmark_group("positions");
    g.throughput(Throughput::Elements(paths.len() as u64));
    g.bench_function("format_5000_files", |b| {
        let mut out = Vec::with_capacity(4 << 20);
        b.iter(|| {
            out.clear();
            for (i, (p, &plain)) in paths.iter().zip(&plain).enumerate() {
                let offset = 81_920 + i as u64;
                promtail_line_as(p, plain, offset, &mut out);
                let r = FileRecord {
                    path: p,
                    id: FileId {
                        dev: 2049,
                        ino: 1_234_567 + i as u64,
                    },
                    fp_len: 1024,
                    fp: 3_735_928_559,
                    offset,
                    size: offset + 4096,
                    seq: i as u64,
                };
                file_line_as(&r, plain, &mut out);
            }
            black_box(out.len())
        })
    });
    g.finish();
}

criterion_group! {
    name = positions;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = benches
}
criterion_main!(positions);
