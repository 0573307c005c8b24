//! The per-file series: `promtail_read_bytes_total`,
//! `promtail_read_lines_total`, `promtail_file_bytes_total` and
//! `tailtrace_file_lag_bytes`, each labelled by `path`.
//!
//! Owns: [`FileSeries`] (one file's four values, updated by the tailer with
//! plain atomic stores) and [`FileFamilies`], the table of them by path that
//! a scrape renders as four families. One map entry and one allocation per
//! path, where four `Family`s cost four map entries and four `Arc`s: at
//! 5,000 files that was ~1.3 MB of the agent's peak heap. Files tailed under
//! the same path (the current file and a rotated one still draining) share
//! one series, as they did with `Family::get_or_create`.
//!
//! Must never: change the names, types, help texts or labels Promtail's
//! dashboards use, or keep a path's series after [`FileFamilies::remove`].

use crate::fasthash::FastMap;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// One path's values.
#[derive(Debug, Default)]
pub struct FileSeries {
    read_bytes: AtomicU64,
    read_lines: AtomicU64,
    size: AtomicI64,
    lag: AtomicI64,
}

impl FileSeries {
    pub fn add_read(&self, bytes: u64, lines: u64) {
        self.read_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.read_lines.fetch_add(lines, Ordering::Relaxed);
    }

    pub fn add_lines(&self, lines: u64) {
        self.read_lines.fetch_add(lines, Ordering::Relaxed);
    }

    pub fn set_size(&self, size: i64) {
        self.size.store(size, Ordering::Relaxed);
    }

    pub fn set_lag(&self, lag: i64) {
        self.lag.store(lag, Ordering::Relaxed);
    }
}

/// The series of every tailed path.
#[derive(Debug, Default)]
pub struct FileFamilies {
    by_path: RwLock<FastMap<Arc<Path>, Arc<FileSeries>>>,
}

/// Names the four families take in the exposition (the `# TYPE` name and,
/// for a counter, its sample name): reserved against custom metrics.
pub const NAMES: [&str; 6] = [
    "promtail_read_bytes",
    "promtail_read_bytes_total",
    "promtail_read_lines",
    "promtail_read_lines_total",
    "promtail_file_bytes_total",
    "tailtrace_file_lag_bytes",
];

impl FileFamilies {
    /// The series of `path`, made if it has none.
    pub fn get_or_create(&self, path: &Arc<Path>) -> Arc<FileSeries> {
        if let Some(s) = self.read().get(&**path) {
            return s.clone();
        }
        let mut w = self.by_path.write().unwrap_or_else(|p| p.into_inner());
        w.entry(path.clone()).or_default().clone()
    }

    /// Drops the series of `path` (no tailed file has it any more).
    pub fn remove(&self, path: &Path) {
        let mut w = self.by_path.write().unwrap_or_else(|p| p.into_inner());
        w.remove(path);
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, FastMap<Arc<Path>, Arc<FileSeries>>> {
        self.by_path.read().unwrap_or_else(|p| p.into_inner())
    }
}

/// One family of the four: its name, help, and how to read its value.
enum Value {
    Counter(fn(&FileSeries) -> u64),
    Gauge(fn(&FileSeries) -> i64),
}

const FAMILIES: [(&str, &str, Value); 4] = [
    (
        "promtail_read_bytes",
        "Number of bytes read.",
        Value::Counter(|s| s.read_bytes.load(Ordering::Relaxed)),
    ),
    (
        "promtail_read_lines",
        "Number of lines read.",
        Value::Counter(|s| s.read_lines.load(Ordering::Relaxed)),
    ),
    (
        "promtail_file_bytes_total",
        "Number of bytes total.",
        Value::Gauge(|s| s.size.load(Ordering::Relaxed)),
    ),
    (
        "tailtrace_file_lag_bytes",
        "Bytes between the read position and the end of each tailed file.",
        Value::Gauge(|s| s.lag.load(Ordering::Relaxed)),
    ),
];

impl Collector for FileFamilies {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let map = self.read();
        for (name, help, value) in &FAMILIES {
            let kind = match value {
                Value::Counter(_) => MetricType::Counter,
                Value::Gauge(_) => MetricType::Gauge,
            };
            let mut family = encoder.encode_descriptor(name, help, None, kind)?;
            for (path, s) in map.iter() {
                let label = [("path", path.to_string_lossy())];
                let metric = family.encode_family(&label)?;
                match value {
                    Value::Counter(get) => ConstCounter::new(get(s)).encode(metric)?,
                    Value::Gauge(get) => ConstGauge::new(get(s)).encode(metric)?,
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::PathLabel;
    use prometheus_client::encoding::text::encode_registry;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;
    use prometheus_client::registry::Registry;

    fn text(r: &Registry) -> Vec<String> {
        let mut s = String::new();
        encode_registry(&mut s, r).unwrap();
        let mut lines: Vec<String> = s.lines().map(str::to_string).collect();
        lines.sort();
        lines
    }

    /// What the four `Family`s the table replaced exported, with the same
    /// values: the exposition must not change under a dashboard. (The
    /// registry adds the help's final period itself, as `Metrics` relies on.)
    #[test]
    fn renders_as_the_four_families_it_replaced() {
        let paths = ["/var/log/pods/a/c/0.log", "/var/log/pods/b_\"q\"/c/0.log"];
        let mut old = Registry::default();
        let rb = Family::<PathLabel, Counter>::default();
        let rl = Family::<PathLabel, Counter>::default();
        let size = Family::<PathLabel, Gauge>::default();
        let lag = Family::<PathLabel, Gauge>::default();
        old.register("promtail_read_bytes", "Number of bytes read", rb.clone());
        old.register("promtail_read_lines", "Number of lines read", rl.clone());
        old.register(
            "promtail_file_bytes_total",
            "Number of bytes total",
            size.clone(),
        );
        old.register(
            "tailtrace_file_lag_bytes",
            "Bytes between the read position and the end of each tailed file",
            lag.clone(),
        );
        let table = Arc::new(FileFamilies::default());
        let mut new = Registry::default();
        new.register_collector(Box::new(table.clone()));
        for (i, p) in paths.iter().enumerate() {
            let path: Arc<Path> = Path::new(p).into();
            let key = PathLabel::new(path.clone());
            let i = i as u64 + 1;
            rb.get_or_create(&key).inc_by(100 * i);
            rl.get_or_create(&key).inc_by(10 * i);
            size.get_or_create(&key).set(1000 * i as i64);
            lag.get_or_create(&key).set(7 * i as i64);
            let s = table.get_or_create(&path);
            s.add_read(100 * i, 9 * i);
            s.add_lines(i);
            s.set_size(1000 * i as i64);
            s.set_lag(7 * i as i64);
        }
        assert_eq!(text(&new), text(&old));
        // No series: the descriptors alone, as with empty families.
        let mut with_empty = Registry::default();
        with_empty.register_collector(Box::new(FileFamilies::default()));
        let lines = text(&with_empty);
        assert_eq!(lines.len(), 8, "{lines:?}");
        assert!(lines.contains(&"# TYPE promtail_read_bytes counter".to_string()));
    }

    #[test]
    fn one_series_per_path_until_removed() {
        let t = FileFamilies::default();
        let p: Arc<Path> = Path::new("/a/0.log").into();
        let same: Arc<Path> = Path::new("/a/0.log").into();
        let a = t.get_or_create(&p);
        let b = t.get_or_create(&same);
        assert!(
            Arc::ptr_eq(&a, &b),
            "a rotated file and its successor share the series"
        );
        a.add_lines(2);
        t.remove(&p);
        let mut r = Registry::default();
        let t = Arc::new(t);
        r.register_collector(Box::new(t.clone()));
        assert!(!text(&r).iter().any(|l| l.contains("/a/0.log")));
        let c = t.get_or_create(&p);
        assert!(
            !Arc::ptr_eq(&a, &c),
            "a path taken on again starts a new series"
        );
        assert!(text(&r).contains(&"promtail_read_lines_total{path=\"/a/0.log\"} 0".to_string()));
    }
}
