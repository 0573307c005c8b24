//! Promtail's stages, one file each, and building a [`Pipeline`] from a
//! scrape config's `pipeline_stages`.
//!
//! Owns: [`StageConfig`] (the YAML shape, `- cri: {}`), and [`build`].
//! Stages Promtail has that tailtrace does not implement yet are accepted,
//! listed by [`StageConfig::unhonoured_name`] for the start-up warning, and
//! left out of the pipeline. tailtrace's own `- pipeline: <name>` is not a
//! stage: [`build_with`] replaces it by the stages of that named pipeline
//! (see [`crate::pipeline::library`]), so `-inspect` shows them one by one.
//!
//! Must never: build a stage from a config it cannot honour without saying
//! so, or follow `- pipeline:` references in a cycle.

pub mod common;
pub mod cri;
pub mod decolorize;
pub mod docker;
pub mod drop;
pub mod json;
pub mod labelallow;
pub mod labeldrop;
pub mod labels;
pub mod limit;
pub mod logfmt;
pub mod r#match;
pub mod metrics;
pub mod multiline;
pub mod output;
pub mod pack;
pub mod regex;
pub mod replace;
pub mod sampling;
pub mod static_labels;
pub mod structured_metadata;
pub mod template;
pub mod tenant;
#[cfg(test)]
pub(crate) mod test_harness;
pub mod timestamp;
pub mod trace;

use crate::config::Unhonoured;
use crate::metrics::Metrics;
use crate::pipeline::library::Library;
use crate::pipeline::{Pipeline, Stage};
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use std::fmt;
use std::sync::Arc;

pub use cri::{CriConfig, CriStage};
pub use docker::{DockerConfig, DockerStage};

/// One entry of `pipeline_stages`: a map with exactly one key, the stage's
/// name (`- cri: {}`), as Promtail reads it.
#[derive(Debug, Clone)]
pub enum StageConfig {
    /// `- cri:` (null) means the defaults.
    Cri(Option<CriConfig>),
    /// `- docker:` (null) is accepted too.
    Docker(Option<DockerConfig>),
    // One variant per stage file (`null` = the stage's defaults).
    Regex(Option<regex::Config>),
    Json(Option<json::Config>),
    Logfmt(Option<logfmt::Config>),
    Replace(Option<replace::Config>),
    Multiline(Option<multiline::Config>),
    Template(Option<template::Config>),
    Pack(Option<pack::Config>),
    Decolorize(Option<decolorize::Config>),
    Timestamp(Option<timestamp::Config>),
    Output(Option<output::Config>),
    Labels(Option<labels::Config>),
    Labelallow(Option<labelallow::Config>),
    Labeldrop(Option<labeldrop::Config>),
    StaticLabels(Option<static_labels::Config>),
    StructuredMetadata(Option<structured_metadata::Config>),
    Tenant(Option<tenant::Config>),
    Limit(Option<limit::Config>),
    Sampling(Option<sampling::Config>),
    Metrics(Option<metrics::Config>),
    Match(Option<r#match::Config>),
    Drop(Option<drop::Config>),
    /// tailtrace's own: trace context → structured metadata.
    Trace(Option<trace::Config>),
    /// tailtrace: `- pipeline: java` inlines the named pipeline's stages.
    Pipeline(String),
    // Promtail stages tailtrace does not implement: accepted and reported.
    Geoip(Unhonoured),
    Eventlogmessage(Unhonoured),
}

/// Every stage name accepted, as written in YAML: Promtail's, then
/// tailtrace's own (`trace`, `pipeline`).
pub const STAGE_NAMES: &[&str] = &[
    "cri",
    "docker",
    "regex",
    "json",
    "logfmt",
    "replace",
    "multiline",
    "geoip",
    "template",
    "pack",
    "decolorize",
    "timestamp",
    "output",
    "labels",
    "labelallow",
    "labeldrop",
    "static_labels",
    "structured_metadata",
    "tenant",
    "limit",
    "sampling",
    "metrics",
    "match",
    "drop",
    "eventlogmessage",
    "trace",
    "pipeline",
];

impl<'de> Deserialize<'de> for StageConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StageConfig;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map with one key, the stage name (e.g. `cri: {}`)")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<StageConfig, A::Error> {
                let key: String = m
                    .next_key()?
                    .ok_or_else(|| de::Error::custom("empty pipeline stage"))?;
                let stage = match key.as_str() {
                    "cri" => StageConfig::Cri(m.next_value()?),
                    "docker" => StageConfig::Docker(m.next_value()?),
                    "regex" => StageConfig::Regex(m.next_value()?),
                    "json" => StageConfig::Json(m.next_value()?),
                    "logfmt" => StageConfig::Logfmt(m.next_value()?),
                    "replace" => StageConfig::Replace(m.next_value()?),
                    "multiline" => StageConfig::Multiline(m.next_value()?),
                    "template" => StageConfig::Template(m.next_value()?),
                    "pack" => StageConfig::Pack(m.next_value()?),
                    "decolorize" => StageConfig::Decolorize(m.next_value()?),
                    "timestamp" => StageConfig::Timestamp(m.next_value()?),
                    "output" => StageConfig::Output(m.next_value()?),
                    "labels" => StageConfig::Labels(m.next_value()?),
                    "labelallow" => StageConfig::Labelallow(m.next_value()?),
                    "labeldrop" => StageConfig::Labeldrop(m.next_value()?),
                    "static_labels" => StageConfig::StaticLabels(m.next_value()?),
                    "structured_metadata" => StageConfig::StructuredMetadata(m.next_value()?),
                    "tenant" => StageConfig::Tenant(m.next_value()?),
                    "limit" => StageConfig::Limit(m.next_value()?),
                    "sampling" => StageConfig::Sampling(m.next_value()?),
                    "metrics" => StageConfig::Metrics(m.next_value()?),
                    "match" => StageConfig::Match(m.next_value()?),
                    "drop" => StageConfig::Drop(m.next_value()?),
                    "trace" => StageConfig::Trace(m.next_value()?),
                    "geoip" => StageConfig::Geoip(m.next_value()?),
                    "eventlogmessage" => StageConfig::Eventlogmessage(m.next_value()?),
                    "pipeline" => StageConfig::Pipeline(m.next_value()?),
                    other => return Err(de::Error::unknown_variant(other, STAGE_NAMES)),
                };
                if m.next_key::<IgnoredAny>()?.is_some() {
                    return Err(de::Error::custom(
                        "a pipeline stage must contain only one key",
                    ));
                }
                Ok(stage)
            }
        }
        d.deserialize_map(V)
    }
}

impl StageConfig {
    /// Promtail's name of the stage.
    pub fn name(&self) -> &'static str {
        match self {
            StageConfig::Cri(_) => "cri",
            StageConfig::Docker(_) => "docker",
            StageConfig::Regex(_) => "regex",
            StageConfig::Json(_) => "json",
            StageConfig::Logfmt(_) => "logfmt",
            StageConfig::Replace(_) => "replace",
            StageConfig::Multiline(_) => "multiline",
            StageConfig::Geoip(_) => "geoip",
            StageConfig::Template(_) => "template",
            StageConfig::Pack(_) => "pack",
            StageConfig::Decolorize(_) => "decolorize",
            StageConfig::Timestamp(_) => "timestamp",
            StageConfig::Output(_) => "output",
            StageConfig::Labels(_) => "labels",
            StageConfig::Labelallow(_) => "labelallow",
            StageConfig::Labeldrop(_) => "labeldrop",
            StageConfig::StaticLabels(_) => "static_labels",
            StageConfig::StructuredMetadata(_) => "structured_metadata",
            StageConfig::Tenant(_) => "tenant",
            StageConfig::Limit(_) => "limit",
            StageConfig::Sampling(_) => "sampling",
            StageConfig::Metrics(_) => "metrics",
            StageConfig::Match(_) => "match",
            StageConfig::Drop(_) => "drop",
            StageConfig::Trace(_) => "trace",
            StageConfig::Eventlogmessage(_) => "eventlogmessage",
            StageConfig::Pipeline(_) => "pipeline",
        }
    }

    /// The stage's name if tailtrace does not honour it yet.
    pub fn unhonoured_name(&self) -> Option<&'static str> {
        let honoured = match self {
            StageConfig::Cri(_) | StageConfig::Docker(_) | StageConfig::Pipeline(_) => true,
            StageConfig::Regex(_) => regex::HONOURED,
            StageConfig::Json(_) => json::HONOURED,
            StageConfig::Logfmt(_) => logfmt::HONOURED,
            StageConfig::Replace(_) => replace::HONOURED,
            StageConfig::Multiline(_) => multiline::HONOURED,
            StageConfig::Template(_) => template::HONOURED,
            StageConfig::Pack(_) => pack::HONOURED,
            StageConfig::Decolorize(_) => decolorize::HONOURED,
            StageConfig::Timestamp(_) => timestamp::HONOURED,
            StageConfig::Output(_) => output::HONOURED,
            StageConfig::Labels(_) => labels::HONOURED,
            StageConfig::Labelallow(_) => labelallow::HONOURED,
            StageConfig::Labeldrop(_) => labeldrop::HONOURED,
            StageConfig::StaticLabels(_) => static_labels::HONOURED,
            StageConfig::StructuredMetadata(_) => structured_metadata::HONOURED,
            StageConfig::Tenant(_) => tenant::HONOURED,
            StageConfig::Limit(_) => limit::HONOURED,
            StageConfig::Sampling(_) => sampling::HONOURED,
            StageConfig::Metrics(_) => metrics::HONOURED,
            StageConfig::Match(_) => r#match::HONOURED,
            StageConfig::Drop(_) => drop::HONOURED,
            StageConfig::Trace(_) => trace::HONOURED,
            StageConfig::Geoip(_) | StageConfig::Eventlogmessage(_) => false,
        };
        (!honoured).then(|| self.name())
    }

    /// Builds the stage, or `None` for one tailtrace does not honour yet.
    /// `- pipeline:` is no stage: [`build_with`] expands it.
    pub fn build(&self, ctx: &BuildCtx) -> Result<Option<Box<dyn Stage>>, String> {
        Ok(match self {
            StageConfig::Cri(c) => Some(Box::new(CriStage::new(
                c.as_ref().unwrap_or(&CriConfig::default()),
            )?)),
            StageConfig::Docker(c) => Some(Box::new(DockerStage::new(
                c.as_ref().unwrap_or(&DockerConfig::default()),
            ))),
            StageConfig::Regex(c) => regex::build(c.as_ref(), ctx)?,
            StageConfig::Json(c) => json::build(c.as_ref(), ctx)?,
            StageConfig::Logfmt(c) => logfmt::build(c.as_ref(), ctx)?,
            StageConfig::Replace(c) => replace::build(c.as_ref(), ctx)?,
            StageConfig::Multiline(c) => multiline::build(c.as_ref(), ctx)?,
            StageConfig::Template(c) => template::build(c.as_ref(), ctx)?,
            StageConfig::Pack(c) => pack::build(c.as_ref(), ctx)?,
            StageConfig::Decolorize(c) => decolorize::build(c.as_ref(), ctx)?,
            StageConfig::Timestamp(c) => timestamp::build(c.as_ref(), ctx)?,
            StageConfig::Output(c) => output::build(c.as_ref(), ctx)?,
            StageConfig::Labels(c) => labels::build(c.as_ref(), ctx)?,
            StageConfig::Labelallow(c) => labelallow::build(c.as_ref(), ctx)?,
            StageConfig::Labeldrop(c) => labeldrop::build(c.as_ref(), ctx)?,
            StageConfig::StaticLabels(c) => static_labels::build(c.as_ref(), ctx)?,
            StageConfig::StructuredMetadata(c) => structured_metadata::build(c.as_ref(), ctx)?,
            StageConfig::Tenant(c) => tenant::build(c.as_ref(), ctx)?,
            StageConfig::Limit(c) => limit::build(c.as_ref(), ctx)?,
            StageConfig::Sampling(c) => sampling::build(c.as_ref(), ctx)?,
            StageConfig::Metrics(c) => metrics::build(c.as_ref(), ctx)?,
            StageConfig::Match(c) => r#match::build(c.as_ref(), ctx)?,
            StageConfig::Drop(c) => drop::build(c.as_ref(), ctx)?,
            StageConfig::Trace(c) => trace::build(c.as_ref(), ctx)?,
            StageConfig::Geoip(_) | StageConfig::Eventlogmessage(_) => None,
            StageConfig::Pipeline(_) => {
                return Err("a `pipeline` reference is expanded by build_with".into())
            }
        })
    }
}

/// Builds the pipeline for one scrape config: the honoured stages in order;
/// unhonoured ones are left out (the caller warns about them, see
/// [`StageConfig::unhonoured_name`]). Errors name the stage's index and key,
/// e.g. `pipeline_stages[0].cri: max_partial_line_size must be …`.
/// `- pipeline:` references resolve against the built-in pipelines only.
pub fn build(configs: &[StageConfig], metrics: Arc<Metrics>) -> Result<Pipeline, String> {
    build_with(configs, &BuildCtx::new(metrics))
}

/// What building a stage may need besides its own options.
#[derive(Clone)]
pub struct BuildCtx {
    pub metrics: Arc<Metrics>,
    /// The named pipelines `- pipeline: <name>` may reference.
    pub pipelines: Arc<Library>,
    /// The named pipelines being expanded, outermost first (cycle check).
    pub within: Vec<String>,
}

impl BuildCtx {
    /// A context whose `- pipeline:` references see the built-ins only.
    pub fn new(metrics: Arc<Metrics>) -> BuildCtx {
        BuildCtx::with_pipelines(metrics, Arc::new(Library::builtins()))
    }

    pub fn with_pipelines(metrics: Arc<Metrics>, pipelines: Arc<Library>) -> BuildCtx {
        BuildCtx {
            metrics,
            pipelines,
            within: Vec::new(),
        }
    }
}

/// [`build`] with a context (nested pipelines: `match`).
pub fn build_with(configs: &[StageConfig], ctx: &BuildCtx) -> Result<Pipeline, String> {
    let stages = build_stages(configs, ctx)?;
    Ok(Pipeline::new(stages, ctx.metrics.clone()))
}

/// The stages of `configs`, `- pipeline:` references expanded in place.
fn build_stages(configs: &[StageConfig], ctx: &BuildCtx) -> Result<Vec<Box<dyn Stage>>, String> {
    let mut stages = Vec::with_capacity(configs.len());
    for (i, c) in configs.iter().enumerate() {
        let at = |e: String| format!("pipeline_stages[{i}].{}: {e}", c.name());
        if let StageConfig::Pipeline(name) = c {
            let named = ctx.pipelines.get(name).ok_or_else(|| {
                at(format!(
                    "unknown pipeline {name:?} (known: {})",
                    ctx.pipelines.names().join(", ")
                ))
            })?;
            if ctx.within.iter().any(|n| n == name) {
                return Err(at(format!(
                    "pipeline {name:?} includes itself ({} → {name})",
                    ctx.within.join(" → ")
                )));
            }
            let mut inner = ctx.clone();
            inner.within.push(name.clone());
            let built = build_stages(&named.stages, &inner)
                .map_err(|e| at(format!("{name} ({}): {e}", named.origin)))?;
            stages.extend(built);
            continue;
        }
        stages.extend(c.build(ctx).map_err(at)?);
    }
    Ok(stages)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ack::Ack;
    use crate::entry::{Entry, Timestamp};
    use crate::labels::LabelSet;

    fn parse(yaml: &str) -> Result<Vec<StageConfig>, serde_yaml_ng::Error> {
        serde_yaml_ng::from_str(yaml)
    }

    #[test]
    fn cri_and_docker_yaml_forms_parse() {
        let v =
            parse("- cri: {}\n- cri:\n- cri: {max_partial_lines: 50}\n- docker: {}\n- docker:\n")
                .unwrap();
        assert!(matches!(&v[0], StageConfig::Cri(Some(c)) if *c == CriConfig::default()));
        assert!(matches!(&v[1], StageConfig::Cri(None)));
        assert!(matches!(&v[2], StageConfig::Cri(Some(c)) if c.max_partial_lines == 50));
        assert!(matches!(&v[3], StageConfig::Docker(Some(_))));
        assert!(matches!(&v[4], StageConfig::Docker(None)));
        assert!(v.iter().all(|s| s.unhonoured_name().is_none()));
    }

    #[test]
    fn every_stage_name_parses_to_its_variant() {
        for name in STAGE_NAMES {
            let forms = match *name {
                // tailtrace's: takes a name.
                "pipeline" => vec!["- pipeline: java".to_string()],
                _ => vec![format!("- {name}: {{}}"), format!("- {name}:")],
            };
            for form in forms {
                let v = parse(&form).unwrap();
                assert_eq!(v[0].name(), *name, "{form}");
            }
        }
    }

    #[test]
    fn a_stage_has_exactly_one_key() {
        let e = parse("- cri: {}\n  docker: {}\n").unwrap_err().to_string();
        assert!(e.contains("only one key"), "{e}");
        assert!(parse("- {}").is_err());
        assert!(parse("- cri").is_err());
    }

    #[test]
    fn unknown_keys_and_stages_are_errors() {
        let e = parse("- cri: {max_partial_line: 5}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_partial_line"), "{e}");
        assert!(parse("- docker: {a: 1}").is_err());
        assert!(parse("- nosuchstage: {}").is_err());
    }

    #[test]
    fn unhonoured_stages_are_named_and_skipped() {
        let v = parse("- geoip: {db: x}\n- cri: {}\n- eventlogmessage:\n- decolorize:\n").unwrap();
        let names: Vec<_> = v.iter().filter_map(|s| s.unhonoured_name()).collect();
        assert_eq!(names, ["geoip", "eventlogmessage"]);
        let p = build(&v, Arc::new(Metrics::new())).unwrap();
        assert_eq!(p.stage_names(), ["cri", "decolorize"]);
    }

    #[test]
    fn build_errors_name_the_index_and_key() {
        let v = parse("- docker: {}\n- cri: {max_partial_line_size_truncate: true}\n").unwrap();
        let e = build(&v, Arc::new(Metrics::new())).err().unwrap();
        assert!(
            e.starts_with("pipeline_stages[1].cri: max_partial_line_size"),
            "{e}"
        );
    }

    #[test]
    fn scrape_config_pipeline_stages_parse() {
        let sc: crate::config::ScrapeConfig = serde_yaml_ng::from_str(
            "job_name: pods\npipeline_stages:\n  - cri: {}\n  - docker:\n  - json:\n      expressions: {a: b}\n",
        )
        .unwrap();
        let names: Vec<_> = sc.pipeline_stages.iter().map(|s| s.name()).collect();
        assert_eq!(names, ["cri", "docker", "json"]);
    }

    #[test]
    fn built_pipeline_decodes_cri() {
        let v = parse("- cri: {}\n").unwrap();
        let mut p = build(&v, Arc::new(Metrics::new())).unwrap();
        let mut out = Vec::new();
        for l in [
            "2024-01-20T10:00:00Z stdout P a",
            "2024-01-20T10:00:01Z stdout F b",
        ] {
            p.process(
                Entry::new(LabelSet::empty(), Timestamp(0), l.into(), Ack::none()),
                &mut out,
            );
        }
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].line, "ab");
        assert_eq!(out[0].timestamp, Timestamp(1_705_744_801_000_000_000));
        assert_eq!(out[0].labels.get("stream"), Some("stdout"));
        for e in out {
            e.ack.ack();
        }
    }

    #[test]
    fn decoders_leave_their_fields_for_later_stages_as_promtail() {
        let run = |yaml: &str, lines: &[&str]| {
            let v = parse(yaml).unwrap();
            let mut p = build(&v, Arc::new(Metrics::new())).unwrap();
            let mut out = Vec::new();
            for l in lines {
                let e = Entry::new(
                    LabelSet::empty(),
                    Timestamp(0),
                    l.to_string().into(),
                    Ack::none(),
                );
                p.process(e, &mut out);
            }
            out
        };
        let out = run(
            "- cri: {}\n- labels: {s: stream}\n- output: {source: content}\n",
            &[
                "2024-01-20T10:00:00.1Z stdout P one-",
                "2024-01-20T10:00:00.2Z stdout F two",
            ],
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].line, "one-two");
        assert_eq!(out[0].labels.get("s"), Some("stdout"));
        assert!(out[0].extracted.is_empty(), "cleared on the way out");
        let out = run(
            "- docker: {}\n- labels: {s: stream}\n- output: {source: output}\n",
            &[r#"{"log":"hi\n","stream":"stderr","time":"2024-01-20T10:00:00Z"}"#],
        );
        assert_eq!(out[0].line, "hi\n");
        assert_eq!(out[0].labels.get("s"), Some("stderr"));
        let out = run(
            "- cri: {}\n- labels: {f: flags, t: time}\n",
            &["2024-01-20T10:00:00.1Z stdout F x"],
        );
        assert_eq!(out[0].labels.get("f"), Some("F"));
        assert_eq!(out[0].labels.get("t"), Some("2024-01-20T10:00:00.1Z"));
        // A joined line's time and flags are its last piece's, as Promtail's.
        let out = run(
            "- cri: {}\n- labels: {f: flags, t: time}\n",
            &[
                "2024-01-20T10:00:00.1Z stdout P a",
                "2024-01-20T10:00:00.2Z stdout P b",
                "2024-01-20T10:00:00.3Z stdout F c",
            ],
        );
        assert_eq!(out[0].line, "abc");
        assert_eq!(out[0].labels.get("f"), Some("F"));
        assert_eq!(out[0].labels.get("t"), Some("2024-01-20T10:00:00.3Z"));
        // Alone, the decoders leave nothing (no work for nobody).
        let out = run("- cri: {}\n", &["2024-01-20T10:00:00.1Z stdout F x"]);
        assert!(out[0].extracted.is_empty());
    }
}
