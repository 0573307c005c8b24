//! The agent's own metrics, under Promtail's names so existing dashboards and
//! alerts keep working.
//!
//! Owns: [`Metrics`], one registry and every metric family the agent exports,
//! and the label names each family takes (Promtail's). Components hold an
//! `Arc<Metrics>` and, on hot paths, cache the per-label-set handle returned by
//! `get_or_create(..).clone()` (an `Arc` around an atomic) instead of looking
//! the family up per line. Families that exist only once a config asks for
//! them (a `metrics` stage's custom metrics, the `limit` stage's per-label
//! drop counter) are added at stage build time with
//! [`Metrics::register_custom`] and exported after the built-in ones, before
//! the exposition's single `# EOF`.
//!
//! The per-file series (`path` label) are not families but one table,
//! [`files::FileFamilies`]: four families' worth of series at the cost of
//! one map entry per file.
//!
//! Must never: invent a new name for something Promtail already measures, or
//! take a label value with unbounded cardinality other than Promtail's own
//! (`path` for file metrics).

pub mod files;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::any::Any;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

/// Label pairs of a metric sample.
pub type L = Vec<(&'static str, String)>;

pub type CounterF = Family<L, Counter>;
pub type GaugeF = Family<L, Gauge>;
pub type FGaugeF = Family<L, Gauge<f64, AtomicU64>>;
pub type HistF = Family<L, Histogram, fn() -> Histogram>;

/// The per-file families (`path` only): 5,000 files are 5,000 series each.
pub type PathCounterF = Family<PathLabel, Counter>;

/// The `path` label of the per-file families: the tailer's own path of the
/// file, shared by its series (a [`L`] would be a `Vec` and a `String` in
/// each). Rendered lossily as UTF-8 at scrape time, as Promtail does.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct PathLabel(pub Arc<Path>);

impl PathLabel {
    pub fn new(path: Arc<Path>) -> Self {
        PathLabel(path)
    }
}

impl prometheus_client::encoding::EncodeLabelSet for PathLabel {
    fn encode(
        &self,
        encoder: &mut prometheus_client::encoding::LabelSetEncoder,
    ) -> Result<(), std::fmt::Error> {
        [("path", &*self.0.to_string_lossy())].encode(encoder)
    }
}

fn request_histogram() -> Histogram {
    Histogram::new([
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ])
}

/// Every metric the agent exports. Field names follow the metric names.
pub struct Metrics {
    registry: Registry,
    /// Names the families in `registry` use (see `register_custom`).
    builtin: Vec<&'static str>,
    /// Families registered after start-up (see [`Metrics::register_custom`]).
    custom: Mutex<Custom>,
    // --- file target (labels: path) ---
    /// `promtail_read_bytes_total`, `promtail_read_lines_total`,
    /// `promtail_file_bytes_total` and `tailtrace_file_lag_bytes`.
    pub files: Arc<files::FileFamilies>,
    pub files_active_total: Gauge,
    // --- targets ---
    pub targets_active_total: Gauge,
    pub targets_failed_total: CounterF,
    // --- client (labels: host [, tenant, reason | status_code]) ---
    pub encoded_bytes_total: CounterF,
    pub sent_bytes_total: CounterF,
    pub sent_entries_total: CounterF,
    pub dropped_bytes_total: CounterF,
    pub dropped_entries_total: CounterF,
    pub mutated_entries_total: CounterF,
    pub mutated_bytes_total: CounterF,
    pub request_duration_seconds: HistF,
    pub batch_retries_total: CounterF,
    // --- pipeline ---
    pub logentry_dropped_lines_total: CounterF,
    // --- tailtrace's own ---
    /// Lines whose invalid UTF-8 bytes were replaced (labels: path).
    pub invalid_utf8_lines_total: PathCounterF,
    /// Seconds since the positions file was last written.
    pub positions_age_seconds: Gauge<f64, AtomicU64>,
    /// Bytes held in memory between the pipeline and Loki's acceptance.
    pub pending_bytes: Gauge,
    /// Read errors and other problems with tailed files (labels: reason).
    pub file_errors_total: CounterF,
    pub journal_target_lines_total: Counter,
    pub journal_target_parsing_errors_total: CounterF,
    pub journal_errors_total: CounterF,
    /// Bytes known to be gone before they could be read (labels: reason):
    /// a rotated file deleted before anyone read it, a damaged spool chunk.
    pub lost_bytes_total: CounterF,
    /// Files (or spool chunks) with data gone before it could be read
    /// (labels: reason).
    pub lost_files_total: CounterF,
    // --- the spool (wal) ---
    /// Bytes in the spool's segment files.
    pub spool_bytes: Gauge,
    /// Segment files.
    pub spool_segments: Gauge,
    /// 1 while the spool is full and reading waits.
    pub spool_full: Gauge,
    /// Chunks written.
    pub spool_chunks_written_total: Counter,
    /// Payload bytes written before and after compression.
    pub spool_raw_bytes_total: Counter,
    pub spool_stored_bytes_total: Counter,
    /// Raw / stored bytes of everything written.
    pub spool_compression_ratio: Gauge<f64, AtomicU64>,
    /// Age of the oldest chunk a client has not delivered (labels: client).
    pub spool_oldest_unsent_age_seconds: FGaugeF,
    /// Spool bytes a client has not delivered (labels: client).
    pub spool_cursor_lag_bytes: GaugeF,
    // --- kubernetes ---
    /// Failed list/watch calls to the API server (labels: reason).
    pub kubernetes_watch_errors_total: CounterF,
    /// Pods known from the API server (deleted ones in their grace
    /// period included).
    pub kubernetes_pods: Gauge,
    /// Pod log directories shipped with only the labels their path gives
    /// (no metadata from the API in time).
    pub kubernetes_pods_without_metadata_total: Counter,
    // --- trace context ---
    /// Lines the `trace` stage looked at (labels: job, result = found |
    /// missing): how much of the logging carries trace IDs.
    pub trace_context_lines_total: CounterF,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut r = Registry::default();
        let mut builtin = Vec::new();
        macro_rules! reg {
            ($name:literal, $help:literal, $v:expr) => {{
                let v = $v;
                // The registry ends the help with a period of its own:
                // one, as in Promtail's exposition, not two.
                r.register($name, $help.strip_suffix('.').unwrap_or($help), v.clone());
                // The `# TYPE` name, and a counter's sample name.
                builtin.push($name);
                builtin.push(concat!($name, "_total"));
                v
            }};
        }
        let files = Arc::new(files::FileFamilies::default());
        r.register_collector(Box::new(files.clone()));
        builtin.extend(files::NAMES);
        Metrics {
            files,
            files_active_total: reg!("promtail_files_active_total", "Number of active files.", Gauge::default()),
            targets_active_total: reg!("promtail_targets_active_total", "Number of active total.", Gauge::default()),
            targets_failed_total: reg!("promtail_targets_failed", "Number of failed targets.", CounterF::default()),
            encoded_bytes_total: reg!("promtail_encoded_bytes", "Number of bytes encoded and ready to send.", CounterF::default()),
            sent_bytes_total: reg!("promtail_sent_bytes", "Number of bytes sent.", CounterF::default()),
            sent_entries_total: reg!("promtail_sent_entries", "Number of log entries sent to the ingester.", CounterF::default()),
            dropped_bytes_total: reg!("promtail_dropped_bytes", "Number of bytes dropped because failed to be sent to the ingester after all retries.", CounterF::default()),
            dropped_entries_total: reg!("promtail_dropped_entries", "Number of log entries dropped because failed to be sent to the ingester after all retries.", CounterF::default()),
            mutated_entries_total: reg!("promtail_mutated_entries", "The total number of log entries that have been mutated.", CounterF::default()),
            mutated_bytes_total: reg!("promtail_mutated_bytes", "The total number of bytes that have been mutated.", CounterF::default()),
            request_duration_seconds: reg!("promtail_request_duration_seconds", "Duration of send requests.", HistF::new_with_constructor(request_histogram as fn() -> Histogram)),
            batch_retries_total: reg!("promtail_batch_retries", "Number of times batches has had to be retried.", CounterF::default()),
            logentry_dropped_lines_total: reg!("logentry_dropped_lines", "A count of all log lines dropped as a result of a pipeline stage", CounterF::default()),
            invalid_utf8_lines_total: reg!("tailtrace_invalid_utf8_lines", "Lines whose invalid UTF-8 bytes were replaced with U+FFFD.", PathCounterF::default()),
            positions_age_seconds: reg!("tailtrace_positions_age_seconds", "Seconds since the positions file was last written.", Gauge::<f64, AtomicU64>::default()),
            pending_bytes: reg!("tailtrace_pending_bytes", "Bytes of log lines held in memory waiting for Loki to accept them.", Gauge::default()),
            file_errors_total: reg!("tailtrace_file_errors", "Problems reading tailed files, by reason.", CounterF::default()),
            journal_target_lines_total: reg!("promtail_journal_target_lines", "Total number of successful journal lines read", Counter::default()),
            journal_target_parsing_errors_total: reg!("promtail_journal_target_parsing_errors", "Total number of parsing errors while reading journal messages", CounterF::default()),
            journal_errors_total: reg!("tailtrace_journal_errors", "Problems running journalctl, by reason (no_journalctl, unreadable_path, exited, spawn).", CounterF::default()),
            lost_bytes_total: reg!("tailtrace_lost_bytes", "Bytes known to be gone before they could be read and shipped, by reason.", CounterF::default()),
            spool_bytes: reg!("tailtrace_spool_bytes", "Bytes in the spool's segment files.", Gauge::default()),
            spool_segments: reg!("tailtrace_spool_segments", "Segment files in the spool.", Gauge::default()),
            spool_full: reg!("tailtrace_spool_full", "1 while the spool is full and reading waits for the clients.", Gauge::default()),
            spool_chunks_written_total: reg!("tailtrace_spool_chunks_written", "Chunks written to the spool.", Counter::default()),
            spool_raw_bytes_total: reg!("tailtrace_spool_raw_bytes", "Chunk payload bytes written to the spool, before compression.", Counter::default()),
            spool_stored_bytes_total: reg!("tailtrace_spool_stored_bytes", "Chunk payload bytes written to the spool, after compression.", Counter::default()),
            spool_compression_ratio: reg!("tailtrace_spool_compression_ratio", "Uncompressed over stored bytes of the chunks written.", Gauge::<f64, AtomicU64>::default()),
            spool_oldest_unsent_age_seconds: reg!("tailtrace_spool_oldest_unsent_age_seconds", "Age of the oldest spool chunk a client has not delivered yet.", FGaugeF::default()),
            spool_cursor_lag_bytes: reg!("tailtrace_spool_cursor_lag_bytes", "Spool bytes a client has not delivered yet.", GaugeF::default()),
            kubernetes_watch_errors_total: reg!("tailtrace_kubernetes_watch_errors", "Failed list/watch calls to the Kubernetes API server, by reason.", CounterF::default()),
            kubernetes_pods: reg!("tailtrace_kubernetes_pods", "Pods of this node known from the Kubernetes API.", Gauge::default()),
            kubernetes_pods_without_metadata_total: reg!("tailtrace_kubernetes_pods_without_metadata", "Pod log directories shipped with only the labels their path gives, because the API did not describe the pod in time.", Counter::default()),
            trace_context_lines_total: reg!("tailtrace_trace_context_lines", "Lines the trace stage looked at, by job and whether they carried a trace ID (result: found or missing).", CounterF::default()),
            lost_files_total: reg!("tailtrace_lost_files", "Files or spool chunks whose data was gone before it could be read and shipped, by reason.", CounterF::default()),
            registry: r,
            builtin,
            custom: Mutex::new(Custom::default()),
        }
    }

    /// The OpenMetrics text exposition of every metric: the built-in
    /// families, then the custom ones, then one `# EOF`.
    pub fn encode(&self) -> String {
        let mut s = String::new();
        let _ = encode_registry(&mut s, &self.registry);
        {
            let custom = self.custom.lock().unwrap_or_else(|p| p.into_inner());
            let _ = encode_registry(&mut s, &custom.registry);
        }
        let _ = encode_eof(&mut s);
        s
    }

    /// Registers a family created after start-up (a `metrics` stage's custom
    /// metric, the `limit` stage's per-label drop counter) under `names` —
    /// every name its exposition uses (the `# TYPE` name, and the sample name
    /// if it differs) — and returns it; or returns the family already
    /// registered under those names (pipelines that declare the same metric
    /// share it, as they do in Promtail), if it is a `T`. `make` runs only
    /// for new names. Errors: a name is one of the agent's own, or belongs
    /// to another family or type.
    pub fn register_custom<T: Collector + Any>(
        &self,
        names: &[&str],
        make: impl FnOnce() -> T,
    ) -> Result<Arc<T>, String> {
        let Some(first) = names.first() else {
            return Err("a metric needs a name".into());
        };
        if let Some(n) = names.iter().find(|n| self.builtin.iter().any(|b| b == *n)) {
            return Err(format!(
                "metric name {n:?} is taken by one of the agent's own metrics"
            ));
        }
        let mut custom = self.custom.lock().unwrap_or_else(|p| p.into_inner());
        let found: Vec<Option<&Arc<dyn Any + Send + Sync>>> =
            names.iter().map(|n| custom.by_name.get(*n)).collect();
        if let Some(Some(existing)) = found.first() {
            let same = found
                .iter()
                .all(|f| f.is_some_and(|f| Arc::ptr_eq(f, existing)));
            return match Arc::clone(existing).downcast::<T>() {
                Ok(family) if same => Ok(family),
                _ => Err(format!(
                    "metric name {first:?} is already registered with another type"
                )),
            };
        }
        if let Some(n) = names.iter().zip(&found).find_map(|(n, f)| f.map(|_| n)) {
            return Err(format!(
                "metric name {n:?} is already registered with another type"
            ));
        }
        let family = Arc::new(make());
        custom.registry.register_collector(Box::new(family.clone()));
        for n in names {
            custom.by_name.insert(n.to_string(), family.clone());
        }
        Ok(family)
    }
}

/// The families registered after start-up, by name.
#[derive(Default)]
struct Custom {
    registry: Registry,
    by_name: HashMap<String, Arc<dyn Any + Send + Sync>>,
}

/// Builds a label vector: `labels(&[("host", h)])`.
pub fn labels(pairs: &[(&'static str, &str)]) -> L {
    pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_promtail_names() {
        let m = Metrics::new();
        m.files.get_or_create(&Path::new("/x").into()).add_lines(1);
        m.dropped_entries_total
            .get_or_create(&labels(&[
                ("host", "h:1"),
                ("tenant", ""),
                ("reason", "ingester_error"),
            ]))
            .inc_by(3);
        let text = m.encode();
        assert!(
            text.contains("promtail_read_lines_total{path=\"/x\"} 1"),
            "{text}"
        );
        assert!(text.contains("promtail_dropped_entries_total{host=\"h:1\",tenant=\"\",reason=\"ingester_error\"} 3"), "{text}");
        assert!(text.contains("promtail_files_active_total "), "{text}");
        // Promtail's help texts, one period at the end.
        assert!(
            text.contains("# HELP promtail_read_lines Number of lines read.\n"),
            "{text}"
        );
        assert!(
            text.contains("# HELP promtail_files_active_total Number of active files.\n"),
            "{text}"
        );
    }

    #[derive(Debug)]
    struct Const(&'static str);
    impl Collector for Const {
        fn encode(
            &self,
            mut e: prometheus_client::encoding::DescriptorEncoder,
        ) -> Result<(), std::fmt::Error> {
            let mut m = e.encode_descriptor(
                self.0,
                "a custom family",
                None,
                prometheus_client::metrics::MetricType::Gauge,
            )?;
            m.encode_gauge(&7i64)
        }
    }

    #[test]
    fn custom_families_follow_the_builtin_ones_before_one_eof() {
        let m = Metrics::new();
        let a = m
            .register_custom(&["promtail_custom_a"], || Const("promtail_custom_a"))
            .unwrap();
        let again = m
            .register_custom(&["promtail_custom_a"], || Const("other"))
            .unwrap();
        assert!(
            Arc::ptr_eq(&a, &again),
            "the same name gives the same family"
        );
        #[derive(Debug)]
        struct Other;
        impl Collector for Other {
            fn encode(
                &self,
                _: prometheus_client::encoding::DescriptorEncoder,
            ) -> Result<(), std::fmt::Error> {
                Ok(())
            }
        }
        let e = m
            .register_custom(&["promtail_custom_a"], || Other)
            .unwrap_err();
        assert!(e.contains("another type"), "{e}");
        // A family known under one of the names, but not all of them.
        let e = m
            .register_custom(&["promtail_custom_b", "promtail_custom_a"], || {
                Const("promtail_custom_b")
            })
            .unwrap_err();
        assert!(e.contains("promtail_custom_a"), "{e}");
        for taken in ["promtail_read_lines", "promtail_read_lines_total"] {
            let e = m.register_custom(&[taken], || Other).unwrap_err();
            assert!(e.contains("agent's own"), "{e}");
        }
        let text = m.encode();
        assert!(text.ends_with("promtail_custom_a 7\n# EOF\n"), "{text}");
        assert_eq!(text.matches("# EOF").count(), 1, "{text}");
        assert!(
            text.find("promtail_files_active_total").unwrap()
                < text.find("promtail_custom_a").unwrap()
        );
    }
}
