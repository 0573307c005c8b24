//! Promtail's stages, one file each, and building a [`Pipeline`] from a
//! scrape config's `pipeline_stages`.
//!
//! Owns: [`StageConfig`] (the YAML shape, `- cri: {}`), and [`build`].
//! Stages Promtail has that tailtrace does not implement yet are accepted,
//! listed by [`StageConfig::unhonoured_name`] for the start-up warning, and
//! left out of the pipeline.
//!
//! Must never: build a stage from a config it cannot honour without saying so.

pub mod cri;
pub mod docker;
#[cfg(test)]
pub(crate) mod test_harness;

use crate::config::Unhonoured;
use crate::metrics::Metrics;
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
    // Promtail stages not implemented yet: accepted and reported.
    Regex(Unhonoured),
    Json(Unhonoured),
    Logfmt(Unhonoured),
    Replace(Unhonoured),
    Multiline(Unhonoured),
    Geoip(Unhonoured),
    Template(Unhonoured),
    Pack(Unhonoured),
    Decolorize(Unhonoured),
    Timestamp(Unhonoured),
    Output(Unhonoured),
    Labels(Unhonoured),
    Labelallow(Unhonoured),
    Labeldrop(Unhonoured),
    StaticLabels(Unhonoured),
    StructuredMetadata(Unhonoured),
    Tenant(Unhonoured),
    Limit(Unhonoured),
    Sampling(Unhonoured),
    Metrics(Unhonoured),
    Match(Unhonoured),
    Drop(Unhonoured),
    Eventlogmessage(Unhonoured),
}

/// Every stage name Promtail knows, as written in YAML.
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
];

/// The variant for an unhonoured stage's name.
fn unhonoured(name: &str) -> Option<fn(Unhonoured) -> StageConfig> {
    Some(match name {
        "regex" => StageConfig::Regex,
        "json" => StageConfig::Json,
        "logfmt" => StageConfig::Logfmt,
        "replace" => StageConfig::Replace,
        "multiline" => StageConfig::Multiline,
        "geoip" => StageConfig::Geoip,
        "template" => StageConfig::Template,
        "pack" => StageConfig::Pack,
        "decolorize" => StageConfig::Decolorize,
        "timestamp" => StageConfig::Timestamp,
        "output" => StageConfig::Output,
        "labels" => StageConfig::Labels,
        "labelallow" => StageConfig::Labelallow,
        "labeldrop" => StageConfig::Labeldrop,
        "static_labels" => StageConfig::StaticLabels,
        "structured_metadata" => StageConfig::StructuredMetadata,
        "tenant" => StageConfig::Tenant,
        "limit" => StageConfig::Limit,
        "sampling" => StageConfig::Sampling,
        "metrics" => StageConfig::Metrics,
        "match" => StageConfig::Match,
        "drop" => StageConfig::Drop,
        "eventlogmessage" => StageConfig::Eventlogmessage,
        _ => return None,
    })
}

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
                    other => match unhonoured(other) {
                        Some(variant) => variant(m.next_value()?),
                        None => return Err(de::Error::unknown_variant(other, STAGE_NAMES)),
                    },
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
            StageConfig::Eventlogmessage(_) => "eventlogmessage",
        }
    }

    /// The stage's name if tailtrace does not honour it yet.
    pub fn unhonoured_name(&self) -> Option<&'static str> {
        match self {
            StageConfig::Cri(_) | StageConfig::Docker(_) => None,
            other => Some(other.name()),
        }
    }

    /// Builds the stage, or `None` for one tailtrace does not honour yet.
    fn build(&self) -> Result<Option<Box<dyn Stage>>, String> {
        Ok(match self {
            StageConfig::Cri(c) => Some(Box::new(CriStage::new(
                c.as_ref().unwrap_or(&CriConfig::default()),
            )?)),
            StageConfig::Docker(c) => Some(Box::new(DockerStage::new(
                c.as_ref().unwrap_or(&DockerConfig::default()),
            ))),
            _ => None,
        })
    }
}

/// Builds the pipeline for one scrape config: the honoured stages in order;
/// unhonoured ones are left out (the caller warns about them, see
/// [`StageConfig::unhonoured_name`]). Errors name the stage's index and key,
/// e.g. `pipeline_stages[0].cri: max_partial_line_size must be …`.
pub fn build(configs: &[StageConfig], metrics: Arc<Metrics>) -> Result<Pipeline, String> {
    let mut stages = Vec::with_capacity(configs.len());
    for (i, c) in configs.iter().enumerate() {
        let built = c
            .build()
            .map_err(|e| format!("pipeline_stages[{i}].{}: {e}", c.name()))?;
        stages.extend(built);
    }
    Ok(Pipeline::new(stages, metrics))
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
            for form in [format!("- {name}: {{}}"), format!("- {name}:")] {
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
        let v = parse(
            "- json: {expressions: {a: b}}\n- cri: {}\n- static_labels: {x: y}\n- decolorize:\n",
        )
        .unwrap();
        let names: Vec<_> = v.iter().filter_map(|s| s.unhonoured_name()).collect();
        assert_eq!(names, ["json", "static_labels", "decolorize"]);
        let p = build(&v, Arc::new(Metrics::new())).unwrap();
        assert_eq!(p.stage_names(), ["cri"]);
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
}
