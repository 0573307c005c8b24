//! The `metrics` stage: Promtail's custom metrics, counted from log lines and
//! exported on the agent's `/metrics`.
//!
//! Owns: [`Config`] (`metrics: {<name>: {type, description, prefix, source,
//! max_idle_duration, config: {match_all, count_entry_bytes, value, action,
//! buckets}}}`), [`MetricsStage`], and [`Family`], a metric family whose
//! series are keyed by stream label set and expire when idle (also used by
//! the `limit` stage for `logentry_dropped_lines_by_label_total`).
//!
//! What it does, as Promtail v3.6 does it:
//! - Each metric is exported as `<prefix><name>` (prefix `promtail_custom_`
//!   when unset or empty). Its series' labels are the entry's stream labels
//!   at this point of the pipeline, without `__`-prefixed names and invalid
//!   names. A series not updated for `max_idle_duration` (default 5m, at
//!   least 1s) is removed.
//! - `type` is `Counter`, `Gauge` or `Histogram`, any case.
//! - The value is the extracted value `source` (default: the metric's name);
//!   an entry without it updates nothing. `value`: only entries whose
//!   extracted value reads (Promtail's `getString`) exactly so count.
//!   Numbers are read as Promtail's `getFloat` does: numbers, bools (1/0),
//!   strings holding a float (`0.5`) or a Go duration (`250ms` → 0.25 s).
//! - Counters: `action: inc` (+1) or `add` (+value); `match_all: true`
//!   counts every entry whether or not `source` exists, with
//!   `count_entry_bytes: true` adding the line's length in bytes instead
//!   (needs `action: add`). Gauges: `set`, `inc`, `dec`, `add`, `sub`.
//!   Histograms: observe the value; `buckets` default to Prometheus' default
//!   buckets.
//! - Several pipelines (scrape configs) may declare the same metric: they
//!   share one family, as Promtail's collectors share a name.
//! - The stage passes every entry through unchanged.
//!
//! Deliberate differences:
//! - The exposition is OpenMetrics (the agent's `/metrics`). A counter
//!   whose name ends in `_total` is exported as an OpenMetrics counter (same
//!   sample name); any other counter is exported with type `unknown` so its
//!   sample name stays exactly `<prefix><name>`, as Promtail shows it
//!   (OpenMetrics would force a `_total` suffix onto a counter).
//! - Errors Promtail only meets at scrape time or as a panic are build
//!   errors here: an invalid metric name, histogram buckets not in
//!   increasing order, a name already used by another type or by one of the
//!   agent's own metrics. A negative `add` to a counter (a panic in
//!   Promtail) is ignored.
//! - Keys of `config` that do not apply to the type (`buckets` on a counter,
//!   `match_all` on a gauge) are accepted and ignored, as Promtail ignores
//!   them; unknown keys are errors.
//!
//! Must never: change an entry, or keep an idle series past
//! `max_idle_duration`.

use super::BuildCtx;
use crate::entry::Entry;
use crate::labels::{LabelMap, LabelSet};
use crate::pipeline::extracted::to_go_string;
use crate::pipeline::{Ctx, Stage, Value};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::exemplar::Exemplar;
use prometheus_client::metrics::MetricType;
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Whether the stage runs.
pub const HONOURED: bool = true;

/// Prefix when `prefix` is unset or empty.
pub const DEFAULT_PREFIX: &str = "promtail_custom_";
/// Default of `max_idle_duration`.
pub const DEFAULT_MAX_IDLE: Duration = Duration::from_secs(300);
/// Prometheus' default histogram buckets.
pub const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// `metrics:` — metric name to its definition.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct Config {
    pub metrics: BTreeMap<String, MetricConfig>,
}

/// One metric's definition, with Promtail's names.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricConfig {
    /// `Counter`, `Gauge` or `Histogram` (any case).
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub description: String,
    /// Extracted key to read; default: the metric's name.
    #[serde(default)]
    pub source: Option<String>,
    /// Default (also when empty): `promtail_custom_`.
    #[serde(default)]
    pub prefix: String,
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub max_idle_duration: Option<Duration>,
    #[serde(default)]
    pub config: Option<MetricOptions>,
}

/// `config:` of a metric (which keys apply depends on the type).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricOptions {
    pub match_all: Option<bool>,
    pub count_entry_bytes: Option<bool>,
    pub value: Option<String>,
    pub action: String,
    pub buckets: Option<Vec<f64>>,
}

fn de_opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    crate::config::duration::deserialize(d).map(Some)
}

/// Builds the stage; `- metrics:` without a map is an error, as in Promtail.
pub fn build(c: Option<&Config>, ctx: &BuildCtx) -> Result<Option<Box<dyn Stage>>, String> {
    let Some(c) = c else {
        return Err("empty metric stage configuration".into());
    };
    Ok(Some(Box::new(MetricsStage::new(c, &ctx.metrics)?)))
}

/// What one metric does with an entry.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Action {
    CounterInc,
    CounterAdd,
    GaugeSet,
    GaugeInc,
    GaugeDec,
    GaugeAdd,
    GaugeSub,
    Observe,
}

struct Metric {
    family: Arc<Family>,
    source: String,
    value: Option<String>,
    action: Action,
    /// Counters: count every entry (`match_all`).
    match_all: bool,
    /// With `match_all`: add the line's byte length.
    count_bytes: bool,
    max_idle: Duration,
}

/// The stage. See the module docs.
pub struct MetricsStage {
    metrics: Vec<Metric>,
}

impl MetricsStage {
    pub fn new(c: &Config, registry: &crate::metrics::Metrics) -> Result<Self, String> {
        let mut metrics = Vec::with_capacity(c.metrics.len());
        for (name, m) in &c.metrics {
            metrics.push(build_metric(name, m, registry).map_err(|e| {
                if e.starts_with(':') {
                    format!("{name}{e}")
                } else {
                    format!("{name}.{e}")
                }
            })?);
        }
        Ok(MetricsStage { metrics })
    }
}

fn build_metric(
    name: &str,
    m: &MetricConfig,
    registry: &crate::metrics::Metrics,
) -> Result<Metric, String> {
    let kind = m.kind.to_ascii_lowercase();
    let max_idle = m.max_idle_duration.unwrap_or(DEFAULT_MAX_IDLE);
    if max_idle < Duration::from_secs(1) {
        return Err("max_idle_duration: max_idle_duration less than 1s not allowed".into());
    }
    let prefix = if m.prefix.is_empty() {
        DEFAULT_PREFIX
    } else {
        &m.prefix
    };
    let full = format!("{prefix}{name}");
    if !valid_metric_name(&full) {
        return Err(format!(
            ": invalid metric name {full:?} (prefix and name must match [a-zA-Z_:][a-zA-Z0-9_:]*)"
        ));
    }
    let o = m.config.clone().unwrap_or_default();
    let action = o.action.to_ascii_lowercase();
    let mut match_all = false;
    let mut count_bytes = false;
    let (action, shape) = match kind.as_str() {
        "counter" => {
            let action = match action.as_str() {
                "" => return Err("config.action: counter action must be defined as either `inc` or `add`".into()),
                "inc" => Action::CounterInc,
                "add" => Action::CounterAdd,
                other => return Err(format!("config.action: action {other} is not valid, action must be either `inc` or `add`")),
            };
            match_all = o.match_all == Some(true);
            count_bytes = o.count_entry_bytes == Some(true);
            if match_all && o.value.is_some() {
                return Err("config.match_all: `match_all: true` cannot be combined with `value`, please remove `match_all` or `value`".into());
            }
            if count_bytes && !match_all {
                return Err("config.count_entry_bytes: `count_entry_bytes: true` can only be set with `match_all: true`".into());
            }
            if count_bytes && action != Action::CounterAdd {
                return Err("config.count_entry_bytes: `count_entry_bytes: true` can only be used with `action: add`".into());
            }
            (action, Shape::Counter)
        }
        "gauge" => {
            let action = match action.as_str() {
                "" => return Err("config.action: gauge action must be defined as `set`, `inc`, `dec`, `add`, or `sub`".into()),
                "set" => Action::GaugeSet,
                "inc" => Action::GaugeInc,
                "dec" => Action::GaugeDec,
                "add" => Action::GaugeAdd,
                "sub" => Action::GaugeSub,
                other => return Err(format!("config.action: action {other} is not valid, action must be `set`, `inc`, `dec`, `add`, or `sub`")),
            };
            (action, Shape::Gauge)
        }
        "histogram" => {
            let mut b = o.buckets.clone().unwrap_or_else(|| DEFAULT_BUCKETS.to_vec());
            // Prometheus adds +Inf itself; a given +Inf is dropped.
            if b.last() == Some(&f64::INFINITY) {
                b.pop();
            }
            if b.iter().any(|x| x.is_nan()) || b.windows(2).any(|w| w[0] >= w[1]) {
                return Err("config.buckets: histogram buckets must be in increasing order".into());
            }
            (Action::Observe, Shape::Histogram(b))
        }
        _ => {
            return Err(format!(
                "type: invalid metric type '{kind}', metric type must be one of 'counter', 'gauge', or 'histogram'"
            ))
        }
    };
    ignored_keys(name, &kind, &o);
    let family = Family::register(registry, &full, &m.description, shape)?;
    Ok(Metric {
        family,
        source: m.source.clone().unwrap_or_else(|| name.to_string()),
        value: o.value,
        action,
        match_all,
        count_bytes,
        max_idle,
    })
}

/// Warns about `config` keys Promtail ignores for this type.
fn ignored_keys(name: &str, kind: &str, o: &MetricOptions) {
    let mut ignored = Vec::new();
    if kind != "counter" {
        if o.match_all.is_some() {
            ignored.push("match_all");
        }
        if o.count_entry_bytes.is_some() {
            ignored.push("count_entry_bytes");
        }
    }
    if kind == "histogram" && !o.action.is_empty() {
        ignored.push("action");
    }
    if kind != "histogram" && o.buckets.is_some() {
        ignored.push("buckets");
    }
    if !ignored.is_empty() {
        tracing::warn!(metric = name, keys = ?ignored, "metrics stage: config keys that do not apply to a {kind} are ignored (as Promtail does)");
    }
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`.
fn valid_metric_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_' || c == b':')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b':')
}

/// Promtail's `getFloat`.
fn get_float(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        Value::String(s) => s.parse::<f64>().ok().or_else(|| go_duration_secs(s)),
        _ => None,
    }
}

/// A Go `time.ParseDuration` string as seconds (`-1.5s` → -1.5).
fn go_duration_secs(s: &str) -> Option<f64> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    // Prometheus' extra units are not Go's.
    if body.contains(['d', 'w', 'y', '+', '-']) {
        return None;
    }
    let d = crate::config::duration::parse(body).ok()?.as_secs_f64();
    Some(if neg { -d } else { d })
}

impl Metric {
    fn record(&self, e: &Entry, now: Instant) {
        if self.match_all {
            let by = if self.count_bytes {
                e.line.len() as f64
            } else {
                1.0
            };
            return self
                .family
                .update(&e.labels, now, self.max_idle, Op::Add(by));
        }
        let Some(v) = e.extracted.get(&self.source) else {
            return;
        };
        if let Some(want) = &self.value {
            if to_go_string(v).as_deref() != Some(want.as_str()) {
                return;
            }
        }
        let f = match self.action {
            Action::CounterInc | Action::GaugeInc | Action::GaugeDec => 0.0,
            _ => match get_float(v) {
                Some(f) => f,
                None => return,
            },
        };
        if self.action == Action::CounterAdd && f < 0.0 {
            return;
        }
        let op = match self.action {
            Action::CounterInc | Action::GaugeInc => Op::Add(1.0),
            Action::GaugeDec => Op::Add(-1.0),
            Action::CounterAdd | Action::GaugeAdd => Op::Add(f),
            Action::GaugeSub => Op::Add(-f),
            Action::GaugeSet => Op::Set(f),
            Action::Observe => Op::Observe(f),
        };
        self.family.update(&e.labels, now, self.max_idle, op);
    }
}

impl Stage for MetricsStage {
    fn name(&self) -> &'static str {
        "metrics"
    }

    fn process(&mut self, entry: Entry, ctx: &mut Ctx) {
        if !self.metrics.is_empty() {
            let now = Instant::now();
            for m in &self.metrics {
                m.record(&entry, now);
            }
        }
        ctx.emit(entry);
    }
}

// ------------------------------------------------------------------ family

/// What a family's series hold.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Shape {
    Counter,
    Gauge,
    /// Upper bounds, increasing, without +Inf.
    Histogram(Vec<f64>),
}

/// A change to one series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Op {
    Add(f64),
    Set(f64),
    /// Histograms.
    Observe(f64),
}

/// One series of a [`Family`].
#[derive(Debug)]
struct Series {
    /// Label pairs as exported.
    labels: Vec<(String, String)>,
    /// Counter or gauge value; histogram sum.
    value: f64,
    /// Histogram: observations per bucket (non-cumulative), +Inf last.
    buckets: Vec<u64>,
    count: u64,
    last: Instant,
    max_idle: Duration,
}

struct SeriesMap {
    map: LabelMap<Series>,
    last_prune: Instant,
}

/// A metric family of run-time series keyed by label set, exported through
/// the agent's registry (see [`crate::metrics::Metrics::register_custom`]).
pub(crate) struct Family {
    /// The exported sample name (`promtail_custom_lines_total`).
    name: String,
    /// The name on `# TYPE` (without `_total` for an OpenMetrics counter).
    type_name: String,
    help: String,
    shape: Shape,
    metric_type: MetricType,
    series: Mutex<SeriesMap>,
}

impl std::fmt::Debug for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Family").field("name", &self.name).finish()
    }
}

/// How often `update` looks for idle series (scrapes prune too).
const PRUNE_EVERY: Duration = Duration::from_secs(60);

impl Family {
    /// Registers (or finds) the family exported as `name`.
    pub(crate) fn register(
        registry: &crate::metrics::Metrics,
        name: &str,
        help: &str,
        shape: Shape,
    ) -> Result<Arc<Family>, String> {
        let (type_name, metric_type) = match shape {
            Shape::Counter => match name.strip_suffix("_total") {
                Some(base) if !base.is_empty() => (base.to_string(), MetricType::Counter),
                _ => (name.to_string(), MetricType::Unknown),
            },
            Shape::Gauge => (name.to_string(), MetricType::Gauge),
            Shape::Histogram(_) => (name.to_string(), MetricType::Histogram),
        };
        let names: Vec<&str> = if type_name == name {
            vec![name]
        } else {
            vec![&type_name, name]
        };
        let family = registry.register_custom(&names, || Family {
            name: name.to_string(),
            type_name: type_name.clone(),
            help: escape_help(help),
            shape: shape.clone(),
            metric_type,
            series: Mutex::new(SeriesMap {
                map: LabelMap::default(),
                last_prune: Instant::now(),
            }),
        })?;
        if family.name != name || family.shape != shape {
            return Err(format!(
                "type: metric {name:?} is already defined with another type or other buckets"
            ));
        }
        Ok(family)
    }

    fn lock(&self) -> MutexGuard<'_, SeriesMap> {
        self.series.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Updates (creating if needed) the series of `labels`.
    pub(crate) fn update(&self, labels: &LabelSet, now: Instant, max_idle: Duration, op: Op) {
        let mut g = self.lock();
        if now.saturating_duration_since(g.last_prune) >= PRUNE_EVERY {
            g.last_prune = now;
            g.map
                .retain(|_, s| now.saturating_duration_since(s.last) < s.max_idle);
        }
        let buckets = match &self.shape {
            Shape::Histogram(b) => b.len() + 1,
            _ => 0,
        };
        let s = g.map.entry(labels.clone()).or_insert_with(|| Series {
            labels: clean_labels(labels),
            value: 0.0,
            buckets: vec![0; buckets],
            count: 0,
            last: now,
            max_idle,
        });
        s.last = now;
        s.max_idle = max_idle;
        match op {
            Op::Add(f) => s.value += f,
            Op::Set(f) => s.value = f,
            Op::Observe(f) => {
                s.value += f;
                s.count += 1;
                if let Shape::Histogram(bounds) = &self.shape {
                    // Buckets are `le`: the first bound >= f (NaN: +Inf).
                    let i = if f.is_nan() {
                        bounds.len()
                    } else {
                        bounds.partition_point(|&b| b < f)
                    };
                    if let Some(b) = s.buckets.get_mut(i) {
                        *b += 1;
                    }
                }
            }
        }
    }

    /// Removes every series (the `limit` stage's generation change).
    pub(crate) fn clear(&self) {
        self.lock().map.clear();
    }
}

/// The stream labels a series takes: valid names, no `__` prefix.
fn clean_labels(l: &LabelSet) -> Vec<(String, String)> {
    l.iter()
        .filter(|(k, _)| !k.starts_with("__") && super::common::valid_label_name(k))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// OpenMetrics `# HELP` escaping.
fn escape_help(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '"' => o.push_str("\\\""),
            c => o.push(c),
        }
    }
    o
}

impl Collector for Family {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let now = Instant::now();
        let mut g = self.lock();
        g.last_prune = now;
        g.map
            .retain(|_, s| now.saturating_duration_since(s.last) < s.max_idle);
        if g.map.is_empty() {
            return Ok(());
        }
        let mut all: Vec<&Series> = g.map.values().collect();
        all.sort_by(|a, b| a.labels.cmp(&b.labels));
        let mut m =
            encoder.encode_descriptor(&self.type_name, &self.help, None, self.metric_type)?;
        for s in all {
            let mut e = m.encode_family(&s.labels)?;
            match (&self.shape, self.metric_type) {
                (Shape::Counter, MetricType::Counter) => {
                    e.encode_counter::<NoLabelSet, f64, f64>(
                        &s.value,
                        None::<&Exemplar<NoLabelSet, f64>>,
                    )?;
                }
                (Shape::Histogram(bounds), _) => {
                    let b: Vec<(f64, u64)> = bounds
                        .iter()
                        .copied()
                        .chain(std::iter::once(f64::INFINITY))
                        .zip(s.buckets.iter().copied())
                        .collect();
                    e.encode_histogram::<NoLabelSet>(s.value, s.count, &b, None)?;
                }
                _ => e.encode_gauge(&s.value)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "metrics/tests.rs"]
mod tests;
