//! The `trace` stage (a tailtrace extension, not in Promtail): finds the
//! trace context a line carries and ships it as Loki structured metadata,
//! so Grafana can link the line to its trace.
//!
//! Owns: [`Config`], the stage, and the per-job coverage counter
//! `tailtrace_trace_context_lines_total{job, result="found"|"missing"}`.
//! The detection itself is [`detect`] (its module docs list every form).
//!
//! ```yaml
//! pipeline_stages:
//!   - cri: {}
//!   - trace:
//!       trace_id_name: trace_id   # structured metadata name (default)
//!       span_id_name: span_id     # structured metadata name (default)
//!       formats: [w3c, otel, b3, jaeger, xray, datadog]   # default: all
//!       source: content           # optional: an extracted value instead of the line
//!       enabled: true             # false leaves the stage out
//! ```
//! `- trace:` or `- trace: {}` means all the defaults.
//!
//! What it does, per entry:
//! 1. If the entry already has structured metadata named `trace_id_name`
//!    (an earlier stage set it), the entry is left as it is (and counted
//!    as `found`).
//! 2. Otherwise the line — or, with `source`, the extracted value of that
//!    name as text ([`detect::Detector::detect_field`]: a field that holds
//!    a bare 32-hex trace ID or traceparent counts, since naming it says
//!    what it is) — is searched for trace context in the enabled formats.
//! 3. Found: `(trace_id_name, <32 hex>)` is appended to the entry's
//!    structured metadata, and `(span_id_name, <16 hex>)` when the form
//!    carries a span ID and no metadata of that name is there yet. Never
//!    stream labels: trace IDs would make a stream per request. The IDs are
//!    also put in the extracted map under the same names, but only if a
//!    later stage reads the extracted map (otherwise that is work for
//!    nobody).
//! 4. The line is counted under its `job` stream label (empty if it has
//!    none), `result="found"` or `"missing"`. The label's values are the
//!    jobs' (in Kubernetes `namespace/app`), so the cardinality is that of
//!    the jobs, not of the lines.
//!
//! Config errors: a name that is not a valid label name, the two names
//! equal, an unknown format, an empty `formats` list, `source: ""`.
//!
//! Must never: change the line or the stream labels, drop an entry, or
//! allocate for a line without trace context (beyond the counter lookup's
//! nothing: counters are cached per job).

pub mod detect;

use super::common::{source_text, valid_label_name};
use super::BuildCtx;
use crate::entry::{Entry, MetaStr};
use crate::labels::LabelSet;
use crate::metrics::{labels, CounterF};
use crate::pipeline::{Stage, Value};
use detect::{Detector, Format, Formats};
use prometheus_client::metrics::counter::Counter;
use serde::Deserialize;
use std::collections::HashMap;

/// Whether the stage runs.
pub const HONOURED: bool = true;

/// Jobs whose counters are cached; beyond that they are looked up per line.
const MAX_CACHED_JOBS: usize = 1024;

/// `trace:` options.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Structured metadata (and extracted) name of the trace ID.
    pub trace_id_name: String,
    /// Structured metadata (and extracted) name of the span ID.
    pub span_id_name: String,
    /// Formats to look for (see [`Format::NAMES`]); `None`: all.
    pub formats: Option<Vec<String>>,
    /// The extracted value to read instead of the line.
    pub source: Option<String>,
    /// False: the stage is left out of the pipeline.
    pub enabled: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            trace_id_name: "trace_id".into(),
            span_id_name: "span_id".into(),
            formats: None,
            source: None,
            enabled: true,
        }
    }
}

/// Builds the stage (`None` with `enabled: false`).
pub fn build(c: Option<&Config>, ctx: &BuildCtx) -> Result<Option<Box<dyn Stage>>, String> {
    let default = Config::default();
    let c = c.unwrap_or(&default);
    if !c.enabled {
        return Ok(None);
    }
    Ok(Some(Box::new(TraceStage::new(
        c,
        ctx.metrics.trace_context_lines_total.clone(),
    )?)))
}

/// The stage. See the module docs.
pub struct TraceStage {
    detector: Detector,
    trace_name: MetaStr,
    span_name: MetaStr,
    source: Option<Box<str>>,
    /// A later stage reads the extracted map.
    extract: bool,
    lines: CounterF,
    /// job → (found, missing).
    counters: HashMap<Box<str>, (Counter, Counter)>,
    /// The last two streams' counters: lines come in runs of one stream,
    /// or of a file's stdout and stderr interleaved (two label sets once
    /// `cri` has set `stream`), so most lines skip the job lookup (an
    /// `Arc` pointer comparison). With one slot, a file writing both
    /// streams paid a lookup and two clones at every switch (~3 % of a
    /// one-file drain's reading thread). A hit leaves the slots where they
    /// are (`recent` names the slot hit last; moving the pair to the front
    /// at each switch was ~0.1 % of a one-file drain's instructions); a
    /// miss replaces the other slot.
    last: [Option<(LabelSet, Counter, Counter)>; 2],
    /// The slot of `last` used most recently.
    recent: usize,
}

impl TraceStage {
    pub fn new(c: &Config, lines: CounterF) -> Result<Self, String> {
        for (key, name) in [
            ("trace_id_name", &c.trace_id_name),
            ("span_id_name", &c.span_id_name),
        ] {
            if !valid_label_name(name) {
                return Err(format!("{key}: invalid structured metadata name {name:?}"));
            }
        }
        if c.trace_id_name == c.span_id_name {
            return Err("trace_id_name and span_id_name must differ".into());
        }
        if c.source.as_deref() == Some("") {
            return Err("source must not be empty".into());
        }
        let formats = match &c.formats {
            None => Formats::ALL,
            Some(names) if names.is_empty() => {
                return Err(
                    "formats: the list is empty (to turn the stage off: enabled: false)".into(),
                )
            }
            Some(names) => names
                .iter()
                .map(|n| {
                    Format::parse(n).ok_or_else(|| {
                        format!(
                            "formats: unknown format {n:?} (known: {})",
                            Format::NAMES.join(", ")
                        )
                    })
                })
                .collect::<Result<Formats, String>>()?,
        };
        Ok(TraceStage {
            detector: Detector::new(formats),
            trace_name: c.trace_id_name.as_str().into(),
            span_name: c.span_id_name.as_str().into(),
            source: c.source.as_deref().map(Into::into),
            extract: false,
            lines,
            counters: HashMap::new(),
            last: [None, None],
            recent: 0,
        })
    }

    /// Counts one line of the stream `l`.
    fn count(&mut self, l: &LabelSet, found: bool) {
        // The slot hit last first: a run of one stream costs one compare.
        for i in [self.recent, 1 - self.recent] {
            if let Some((last, f, m)) = &self.last[i] {
                if last == l {
                    (if found { f } else { m }).inc();
                    self.recent = i;
                    return;
                }
            }
        }
        let job = l.get("job").unwrap_or("");
        if let Some((f, m)) = self.counters.get(job) {
            (if found { f } else { m }).inc();
            // The slot not hit last is the one used least recently.
            self.recent = 1 - self.recent;
            self.last[self.recent] = Some((l.clone(), f.clone(), m.clone()));
            return;
        }
        let get = |result: &str| {
            self.lines
                .get_or_create(&labels(&[("job", job), ("result", result)]))
                .clone()
        };
        let (f, m) = (get("found"), get("missing"));
        (if found { &f } else { &m }).inc();
        if self.counters.len() < MAX_CACHED_JOBS {
            self.counters.insert(job.into(), (f, m));
        }
    }
}

impl Stage for TraceStage {
    fn name(&self) -> &'static str {
        "trace"
    }

    fn uses_extracted(&self) -> bool {
        self.source.is_some()
    }

    fn downstream_uses_extracted(&mut self, yes: bool) {
        self.extract = yes;
    }

    fn edits_only(&self) -> bool {
        true
    }

    fn edit(&mut self, e: &mut Entry) {
        let has = |e: &Entry, name: &MetaStr| e.metadata.iter().any(|(k, _)| k == name);
        let found = if has(e, &self.trace_name) {
            true
        } else {
            let tc = match self.source.as_deref() {
                None => self.detector.detect(&e.line),
                Some(src) => {
                    source_text(e, Some(src)).and_then(|v| self.detector.detect_field(src, &v))
                }
            };
            if let Some(tc) = tc {
                let span = tc.span_meta().filter(|_| !has(e, &self.span_name));
                let ids = [
                    Some((&self.trace_name, tc.trace_meta())),
                    span.map(|s| (&self.span_name, s)),
                ];
                // Exactly: `reserve` would round an empty `Vec` up to 4
                // pairs (320 bytes) on every traced line.
                e.metadata.reserve_exact(ids.iter().flatten().count());
                for (name, id) in ids.into_iter().flatten() {
                    if self.extract {
                        e.extracted
                            .insert(name, Value::String(id.as_str().to_string()));
                    }
                    e.metadata.push((name.clone(), id));
                }
            }
            tc.is_some()
        };
        self.count(&e.labels, found);
    }
}

#[cfg(test)]
mod tests;
