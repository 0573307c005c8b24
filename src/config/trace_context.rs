//! tailtrace's top-level `trace_context:` block (an extension; Promtail has
//! none): trace-ID detection on pod logs by default, and `pod_uid` structured
//! metadata on `kubernetes_sd_configs` jobs' lines.
//!
//! Owns: [`TraceContextConfig`] and which jobs it applies to
//! ([`TraceContextConfig::applies_to`]). The agent inserts a `trace` stage
//! (see `pipeline::stages::trace`) with these options right after a job's
//! first `cri`/`docker` stage (first, if it has none) — unless the job lists
//! a `trace` stage itself, which then decides (`- trace: {enabled: false}`
//! turns detection off for that job alone).
//!
//! Must never: put trace or span IDs in stream labels (cardinality), or add
//! a stage to a job that does not read pod logs.

use super::ScrapeConfig;
use crate::pipeline::stages::trace;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// `trace_context:`. See the module docs.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct TraceContextConfig {
    /// Detect trace context on every pod-log job that has no `trace` stage.
    pub enabled: bool,
    pub trace_id_name: String,
    pub span_id_name: String,
    /// Narrow detection to these formats (w3c, otel, b3, jaeger, xray,
    /// datadog); `None`: all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub formats: Option<Vec<String>>,
    /// `pod_uid` structured metadata on the lines of `kubernetes_sd_configs`
    /// jobs (`kubernetes_pods` jobs always have it).
    pub pod_uid: bool,
}

impl Default for TraceContextConfig {
    fn default() -> Self {
        let t = trace::Config::default();
        TraceContextConfig {
            enabled: true,
            trace_id_name: t.trace_id_name,
            span_id_name: t.span_id_name,
            formats: None,
            pod_uid: true,
        }
    }
}

impl TraceContextConfig {
    /// The `trace` stage these options make.
    pub fn stage(&self) -> trace::Config {
        trace::Config {
            trace_id_name: self.trace_id_name.clone(),
            span_id_name: self.span_id_name.clone(),
            formats: self.formats.clone(),
            source: None,
            enabled: true,
        }
    }

    /// True if `sc` reads pod logs — it discovers pods through the API, or
    /// a static target's `__path__` lies under `pod_logs_path` — and has no
    /// `trace` stage of its own.
    pub fn applies_to(&self, sc: &ScrapeConfig, pod_logs_path: &Path) -> bool {
        use crate::pipeline::stages::StageConfig;
        if !self.enabled
            || sc
                .pipeline_stages
                .iter()
                .any(|s| matches!(s, StageConfig::Trace(_)))
        {
            return false;
        }
        let discovers = sc.kubernetes_pods.is_some()
            || sc.kubernetes_sd_configs.iter().any(|s| s.role == "pod");
        let root = pod_logs_path.to_string_lossy();
        let root = root.trim_end_matches('/');
        let static_pods = sc.static_configs.iter().any(|s| {
            s.labels.get("__path__").is_some_and(|p| {
                p.strip_prefix(root)
                    .is_some_and(|rest| rest.starts_with('/'))
            })
        });
        discovers || static_pods
    }

    /// `stages` with the `trace` stage inserted after the first decoder.
    pub fn insert_into(
        &self,
        stages: &[crate::pipeline::stages::StageConfig],
    ) -> Vec<crate::pipeline::stages::StageConfig> {
        use crate::pipeline::stages::StageConfig;
        let at = stages
            .iter()
            .position(|s| matches!(s, StageConfig::Cri(_) | StageConfig::Docker(_)))
            .map_or(0, |i| i + 1);
        let mut out = stages.to_vec();
        out.insert(at, StageConfig::Trace(Some(self.stage())));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::stages::StageConfig;

    fn job(yaml: &str) -> ScrapeConfig {
        let de = serde_yaml_ng::Deserializer::from_str(yaml);
        serde_yaml_ng::with::singleton_map_recursive::deserialize(de).unwrap()
    }

    fn names(stages: &[StageConfig]) -> Vec<&str> {
        stages.iter().map(|s| s.name()).collect()
    }

    #[test]
    fn applies_to_jobs_reading_pod_logs_without_their_own_trace_stage() {
        let t = TraceContextConfig::default();
        let pods = Path::new("/var/log/pods");
        let sd = job("job_name: a\nkubernetes_sd_configs: [{role: pod}]\n");
        let native = job("job_name: b\nkubernetes_pods: {}\n");
        let statics = job(
            "job_name: c\nstatic_configs: [{targets: [x], labels: {__path__: /var/log/pods/*/*/*.log}}]\n",
        );
        let other = job(
            "job_name: d\nstatic_configs: [{targets: [x], labels: {__path__: /var/log/podsx/*.log}}]\n",
        );
        let node = job("job_name: e\nkubernetes_sd_configs: [{role: node}]\n");
        let own = job(
            "job_name: f\nkubernetes_sd_configs: [{role: pod}]\npipeline_stages: [{trace: {enabled: false}}]\n",
        );
        assert!(t.applies_to(&sd, pods));
        assert!(t.applies_to(&native, pods));
        assert!(t.applies_to(&statics, pods));
        assert!(t.applies_to(&statics, Path::new("/var/log/pods/")));
        assert!(!t.applies_to(&other, pods));
        assert!(!t.applies_to(&node, pods));
        assert!(!t.applies_to(&own, pods), "the job's own stage decides");
        let off = TraceContextConfig {
            enabled: false,
            ..TraceContextConfig::default()
        };
        assert!(!off.applies_to(&sd, pods));
    }

    #[test]
    fn the_stage_goes_right_after_the_first_decoder() {
        let t = TraceContextConfig::default();
        let j = job("job_name: a\npipeline_stages: [{docker: {}}, {json: {expressions: {a: a}}}, {cri: {}}]\n");
        assert_eq!(
            names(&t.insert_into(&j.pipeline_stages)),
            ["docker", "trace", "json", "cri"]
        );
        let j = job("job_name: a\npipeline_stages: [{json: {expressions: {a: a}}}]\n");
        assert_eq!(names(&t.insert_into(&j.pipeline_stages)), ["trace", "json"]);
        assert_eq!(names(&t.insert_into(&[])), ["trace"]);
    }

    #[test]
    fn yaml_keys_and_defaults() {
        let t: TraceContextConfig =
            serde_yaml_ng::from_str("{trace_id_name: tid, formats: [w3c], pod_uid: false}")
                .unwrap();
        assert!(t.enabled && !t.pod_uid);
        assert_eq!(t.stage().trace_id_name, "tid");
        assert_eq!(t.stage().span_id_name, "span_id");
        assert_eq!(t.stage().formats, Some(vec!["w3c".to_string()]));
        assert!(serde_yaml_ng::from_str::<TraceContextConfig>("{source: x}").is_err());
    }

    #[test]
    fn bad_options_are_config_errors_naming_trace_context() {
        let text =
            "clients: [{url: http://x/loki/api/v1/push}]\ntrace_context:\n  formats: [zipkin]\n";
        let cfg = crate::config::load::load_str(text, "p.yaml", false).unwrap();
        let e = cfg.validate(false).unwrap_err();
        assert_eq!(e.key, "trace_context");
        assert!(e.to_string().contains("zipkin"), "{e}");
        let text = "clients: [{url: http://x/loki/api/v1/push}]\ntrace_context:\n  trace_id: x\n";
        let e = crate::config::load::load_str(text, "p.yaml", false).unwrap_err();
        assert!(e.to_string().contains("trace_id"), "{e}");
        assert_eq!(e.line, Some(3), "{e}");
    }

    /// deploy/grafana links what this agent ships: the derived fields match
    /// the default names, and `$` is escaped for Grafana's provisioning.
    #[test]
    fn grafana_provisioning_matches_the_shipped_names() {
        let text = include_str!("../../deploy/grafana/datasources.yaml");
        let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).unwrap();
        let ds = v["datasources"].as_sequence().unwrap();
        let by_type = |t: &str| ds.iter().find(|d| d["type"] == t).unwrap();
        let (loki, tempo) = (by_type("loki"), by_type("tempo"));
        let fields = loki["jsonData"]["derivedFields"].as_sequence().unwrap();
        let field = |name: &str| {
            fields
                .iter()
                .find(|f| f["matcherRegex"] == name)
                .unwrap_or_else(|| panic!("no derived field for {name}"))
        };
        let d = TraceContextConfig::default();
        let trace = field(&d.trace_id_name);
        assert_eq!(trace["matcherType"], "label");
        assert_eq!(trace["url"], "$${__value.raw}");
        assert_eq!(trace["datasourceUid"], tempo["uid"]);
        let pod = field("pod_uid");
        assert_eq!(pod["url"], "{ span.k8s.pod.uid = \"$${__value.raw}\" }");
        assert_eq!(pod["datasourceUid"], tempo["uid"]);
        let t2l = &tempo["jsonData"]["tracesToLogsV2"];
        assert_eq!(t2l["datasourceUid"], loki["uid"]);
        let q = t2l["query"].as_str().unwrap();
        assert!(
            q.contains(&format!(
                "| {} = \"$${{__trace.traceId}}\"",
                d.trace_id_name
            )),
            "{q}"
        );
    }
}
