//! The `match` stage: Promtail's `- match: {selector, stages, action,
//! pipeline_name, drop_counter_reason}`.
//!
//! Owns: [`Config`], [`MatchStage`], and (in `match/selector.rs`) the
//! selector language: a LogQL stream selector `{app="x", env!="dev",
//! pod=~"web-.*", ns!~"kube-.*"}` optionally followed by line filters
//! `|= "text"`, `!= "text"`, `|~ "re"`, `!~ "re"`.
//!
//! What it does, as Promtail v3.6 does it: an entry whose labels match every
//! matcher (an absent label reads as `""`; regexes are fully anchored) and
//! whose line passes every filter is *matching*.
//! - `action: keep` (the default): matching entries run through the nested
//!   `stages` (they keep their extracted map), and what comes out continues
//!   down the outer pipeline; other entries pass through untouched.
//!   `stages` is required.
//! - `action: drop`: matching entries are dropped, counted in
//!   `logentry_dropped_lines_total{reason}` with `drop_counter_reason`
//!   (default `match_stage`); `stages` must not be given.
//!
//! Build errors, as Promtail's validation: an empty config; `pipeline_name`
//! given but empty; no `selector`; an `action` other than `keep`/`drop`;
//! `keep` without stages; `drop` with stages; a selector that does not
//! parse; a nested stage that does not build (named `stages[i].<stage>`).
//! `pipeline_name` only names Promtail's per-pipeline metrics, which
//! tailtrace does not have; it is validated and otherwise unused.
//!
//! Timers, flushes and backpressure reach the nested pipeline: `tick` and
//! `flush` release what nested stages hold (a nested `multiline`), and
//! `accepts` asks the nested stages (a nested `limit`).
//!
//! Must never: lose an entry (nested output is emitted, drops go through
//! [`Ctx::drop`]), or build per-line state.

#[path = "match/selector.rs"]
mod selector;

pub use self::selector::{Selector, SelectorError};
use super::{BuildCtx, StageConfig};
use crate::entry::Entry;
use crate::labels::LabelSet;
use crate::pipeline::{Ctx, Pipeline, Stage};
use serde::Deserialize;
use std::time::Instant;

/// Whether the stage runs.
pub const HONOURED: bool = true;

/// Default `drop_counter_reason`.
pub const DEFAULT_REASON: &str = "match_stage";

/// `match:` options, with Promtail's names.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// LogQL selector with optional line filters (required).
    #[serde(default)]
    pub selector: String,
    /// Names the nested pipeline in Promtail's metrics; may be omitted but
    /// not empty.
    #[serde(default)]
    pub pipeline_name: Option<String>,
    /// `keep` (default) or `drop`.
    #[serde(default)]
    pub action: String,
    /// Label of `logentry_dropped_lines_total` for `action: drop`.
    #[serde(default)]
    pub drop_counter_reason: Option<String>,
    /// The nested stages (required for `keep`, forbidden for `drop`).
    #[serde(default)]
    pub stages: Option<Vec<StageConfig>>,
}

/// Builds the stage; errors name the offending key.
pub fn build(c: Option<&Config>, ctx: &BuildCtx) -> Result<Option<Box<dyn Stage>>, String> {
    let c = c.ok_or("match stage config cannot be empty")?;
    Ok(Some(Box::new(MatchStage::from_config(c, ctx)?)))
}

/// The nested stages tailtrace does not honour, as paths under this stage
/// (`stages[1].geoip`, `stages[0].match.stages[2].json`), for the start-up
/// warning about unhonoured settings.
pub fn unhonoured_nested(c: &Config) -> Vec<String> {
    let mut out = Vec::new();
    for (i, s) in c.stages.iter().flatten().enumerate() {
        if let Some(name) = s.unhonoured_name() {
            out.push(format!("stages[{i}].{name}"));
        }
        if let StageConfig::Match(Some(inner)) = s {
            for p in unhonoured_nested(inner) {
                out.push(format!("stages[{i}].match.{p}"));
            }
        }
    }
    out
}

/// What happens to matching entries.
enum Action {
    Keep(Pipeline),
    Drop(String),
}

/// The stage. See the module docs.
pub struct MatchStage {
    selector: Selector,
    action: Action,
    /// Reused output buffer of the nested pipeline.
    buf: Vec<Entry>,
}

impl MatchStage {
    /// Validates and builds, as Promtail's `validateMatcherConfig` and
    /// `newMatcherStage`.
    pub fn from_config(c: &Config, ctx: &BuildCtx) -> Result<Self, String> {
        if c.pipeline_name.as_deref() == Some("") {
            return Err(
                "pipeline_name: match stage pipeline name can be omitted but cannot be an empty string"
                    .into(),
            );
        }
        if c.selector.is_empty() {
            return Err("selector: selector statement required for match stage".into());
        }
        let keep = match c.action.as_str() {
            "" | "keep" => true,
            "drop" => false,
            other => {
                return Err(format!(
                    "action: match stage action should be 'keep' or 'drop', got {other:?}"
                ))
            }
        };
        let nstages = c.stages.as_ref().map_or(0, Vec::len);
        if keep && nstages == 0 {
            return Err(
                "stages: match stage requires at least one additional stage to be defined in '- stages'"
                    .into(),
            );
        }
        if !keep && nstages != 0 {
            return Err(
                "stages: match stage configured to drop entries cannot contains stages".into(),
            );
        }
        let selector = Selector::parse(&c.selector).map_err(|e| match e {
            SelectorError::Syntax(m) => {
                format!("selector: invalid selector syntax for match stage: {m}")
            }
            SelectorError::Filter(m) => format!("selector: error parsing pipeline: {m}"),
        })?;
        let action = if keep {
            let stages = c.stages.as_deref().unwrap_or(&[]);
            let p = super::build_with(stages, ctx).map_err(|e| {
                // `pipeline_stages[i].x: …` from the nested build reads
                // better as `stages[i].x: …` here.
                match e.strip_prefix("pipeline_") {
                    Some(rest) => rest.to_string(),
                    None => format!("stages: {e}"),
                }
            })?;
            Action::Keep(p.nested())
        } else {
            let reason = match c.drop_counter_reason.as_deref() {
                None | Some("") => DEFAULT_REASON,
                Some(r) => r,
            };
            Action::Drop(reason.to_string())
        };
        Ok(Self::new(selector, action))
    }

    fn new(selector: Selector, action: Action) -> Self {
        MatchStage {
            selector,
            action,
            buf: Vec::new(),
        }
    }

    /// A `keep` stage around an already built (nested) pipeline.
    pub fn keep(selector: Selector, nested: Pipeline) -> Self {
        Self::new(selector, Action::Keep(nested.nested()))
    }

    fn matches(&self, e: &Entry) -> bool {
        self.selector.matches_labels(|n| e.labels.get(n)) && self.selector.matches_line(&e.line)
    }

    /// Emits what the nested pipeline put in the buffer.
    fn emit_buf(&mut self, ctx: &mut Ctx) {
        for e in self.buf.drain(..) {
            ctx.emit(e);
        }
    }
}

impl Stage for MatchStage {
    fn name(&self) -> &'static str {
        "match"
    }

    fn process(&mut self, entry: Entry, ctx: &mut Ctx) {
        if !self.matches(&entry) {
            return ctx.emit(entry);
        }
        match &mut self.action {
            Action::Keep(p) => {
                p.process(entry, &mut self.buf);
                self.emit_buf(ctx);
            }
            Action::Drop(reason) => ctx.drop(entry, reason),
        }
    }

    fn tick(&mut self, now: Instant, ctx: &mut Ctx) {
        if let Action::Keep(p) = &mut self.action {
            p.tick(now, &mut self.buf);
            self.emit_buf(ctx);
        }
    }

    fn flush(&mut self, ctx: &mut Ctx) {
        if let Action::Keep(p) = &mut self.action {
            p.flush(&mut self.buf);
            self.emit_buf(ctx);
        }
    }

    fn accepts(&self, labels: &LabelSet) -> bool {
        match &self.action {
            Action::Keep(p) => p.accepts(labels),
            Action::Drop(_) => true,
        }
    }

    fn uses_extracted(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ack::Ack;
    use crate::entry::Timestamp;
    use crate::metrics::Metrics;
    use crate::pipeline::Value;
    use std::sync::Arc;

    fn ctx() -> BuildCtx {
        BuildCtx::new(Arc::new(Metrics::new()))
    }

    /// Builds from `c`; the stage and the metrics its drops (nested ones
    /// included) are counted in.
    fn built(c: &Config) -> Result<(MatchStage, Arc<Metrics>), String> {
        let ctx = ctx();
        MatchStage::from_config(c, &ctx).map(|s| (s, ctx.metrics))
    }

    fn config(yaml: &str) -> Config {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    fn stage(yaml: &str) -> (MatchStage, Arc<Metrics>) {
        built(&config(yaml)).unwrap()
    }

    fn err(yaml: Option<&str>) -> String {
        let c = yaml.map(config);
        build(c.as_ref(), &ctx()).err().unwrap()
    }

    fn entry(labels: &[(&str, &str)], line: &str) -> Entry {
        Entry::new(
            LabelSet::new(labels.iter().copied()),
            Timestamp(1),
            line.into(),
            Ack::none(),
        )
    }

    /// Runs one entry; what came out, and the metrics text.
    fn run((st, m): &mut (MatchStage, Arc<Metrics>), e: Entry) -> (Vec<Entry>, String) {
        let mut out = Vec::new();
        st.process(e, &mut Ctx::new(&mut out, m));
        (out, m.encode())
    }

    /// Promtail's TestMatcher table: the nested stage (a drop of lines
    /// containing "foo", standing in for Promtail's labels stage) shows
    /// whether the nested pipeline ran.
    #[test]
    fn promtail_matcher_table() {
        // (selector, labels, action, dropped, nested ran, build error)
        let foo: &[(&str, &str)] = &[("foo", "bar")];
        let both: &[(&str, &str)] = &[("foo", "bar"), ("bar", "test")];
        let none: &[(&str, &str)] = &[];
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str, bool, bool, bool);
        let cases: &[Case] = &[
            (r#"{foo="bar"} |= "foo""#, foo, "keep", false, true, false),
            (r#"{foo="bar"} |~ "foo""#, foo, "keep", false, true, false),
            (r#"{foo="bar"} |= "bar""#, foo, "keep", false, false, false),
            (r#"{foo="bar"} |~ "bar""#, foo, "keep", false, false, false),
            (r#"{foo="bar"} != "bar""#, foo, "keep", false, true, false),
            (r#"{foo="bar"} !~ "bar""#, foo, "keep", false, true, false),
            (r#"{foo="bar"} != "foo""#, foo, "keep", false, false, false),
            (r#"{foo="bar"} |= "foo""#, foo, "drop", true, false, false),
            (r#"{foo="bar"} |~ "foo""#, foo, "drop", true, false, false),
            (r#"{foo="bar"} |= "bar""#, foo, "drop", false, false, false),
            (r#"{foo="bar"} |~ "bar""#, foo, "drop", false, false, false),
            (r#"{foo="bar"} != "bar""#, foo, "drop", true, false, false),
            (r#"{foo="bar"} !~ "bar""#, foo, "drop", true, false, false),
            (r#"{foo="bar"} != "foo""#, foo, "drop", false, false, false),
            (r#"{foo="bar"} !~ "[]""#, foo, "drop", false, false, true),
            ("foo", foo, "keep", false, false, true),
            ("{}", foo, "keep", false, false, true),
            ("{", foo, "keep", false, false, true),
            ("", foo, "keep", false, true, true),
            (r#"{foo="bar"}"#, foo, "keep", false, true, false),
            (r#"{foo=""}"#, foo, "keep", false, false, false),
            (r#"{foo=""}"#, none, "keep", false, true, false),
            (r#"{foo!="bar"}"#, foo, "keep", false, false, false),
            (r#"{foo!="bar"}"#, foo, "drop", false, false, false),
            (
                r#"{foo="bar",bar!="test"}"#,
                foo,
                "keep",
                false,
                true,
                false,
            ),
            (
                r#"{foo="bar",bar!="test"}"#,
                foo,
                "drop",
                true,
                false,
                false,
            ),
            (
                r#"{foo="bar",bar!="test"}"#,
                both,
                "keep",
                false,
                false,
                false,
            ),
            (
                r#"{foo="bar",bar=~"te.*"}"#,
                both,
                "drop",
                true,
                false,
                false,
            ),
            (
                r#"{foo="bar",bar=~"te.*"}"#,
                both,
                "keep",
                false,
                true,
                false,
            ),
            (
                r#"{foo="bar",bar!~"te.*"}"#,
                both,
                "keep",
                false,
                false,
                false,
            ),
            (
                r#"{foo="bar",bar!~"te.*"}"#,
                both,
                "drop",
                false,
                false,
                false,
            ),
        ];
        for &(selector, labels, action, dropped, ran, build_err) in cases {
            let mut c = Config {
                selector: selector.into(),
                action: action.into(),
                ..Default::default()
            };
            if action == "keep" {
                c.stages = Some(
                    serde_yaml_ng::from_str(
                        "- drop: {expression: foo, drop_counter_reason: nested}",
                    )
                    .unwrap(),
                );
            }
            let name = format!("{selector} {labels:?} {action}");
            let st = built(&c);
            assert_eq!(st.is_err(), build_err, "{name}: {:?}", st.as_ref().err());
            let Ok(mut st) = st else { continue };
            let (out, metrics) = run(&mut st, entry(labels, "foo"));
            if dropped {
                assert!(out.is_empty(), "{name}");
                assert!(
                    metrics.contains("logentry_dropped_lines_total{reason=\"match_stage\"} 1"),
                    "{name}"
                );
                continue;
            }
            let nested_ran = metrics.contains("reason=\"nested\"");
            assert_eq!(nested_ran, ran, "{name}");
            assert_eq!(out.len(), usize::from(!ran), "{name}");
        }
    }

    #[test]
    fn nested_output_continues_with_its_extracted_map() {
        // The nested timestamp stage reads the extracted value set before
        // the match stage; a nested match runs inside it.
        let mut st = stage(
            r#"
selector: '{app="web"}'
stages:
  - timestamp: {source: ts, format: Unix}
  - match:
      selector: '{app="web"} |= "drop me"'
      action: drop
      drop_counter_reason: inner
"#,
        );
        let mut e = entry(&[("app", "web")], "hello");
        e.extracted.insert("ts", Value::from("1562708916"));
        let (out, _) = run(&mut st, e);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].timestamp, Timestamp(1_562_708_916_000_000_000));
        assert_eq!(
            out[0].extracted.get_string("ts").as_deref(),
            Some("1562708916")
        );
        let (out, metrics) = run(&mut st, entry(&[("app", "web")], "please drop me"));
        assert!(out.is_empty());
        assert!(metrics.contains("logentry_dropped_lines_total{reason=\"inner\"} 1"));
        // Not matching: untouched.
        let mut e = entry(&[("app", "db")], "x");
        e.extracted.insert("ts", Value::from("1562708916"));
        let (out, _) = run(&mut st, e);
        assert_eq!(out[0].timestamp, Timestamp(1));
    }

    #[test]
    fn drop_action_counts_with_its_reason() {
        let mut st = stage("{selector: '{a=\"b\"}', action: drop, drop_counter_reason: noisy}");
        let (out, metrics) = run(&mut st, entry(&[("a", "b")], "x"));
        assert!(out.is_empty());
        assert!(metrics.contains("logentry_dropped_lines_total{reason=\"noisy\"} 1"));
        let mut st = stage("{selector: '{a=\"b\"}', action: drop, drop_counter_reason: \"\"}");
        let (_, metrics) = run(&mut st, entry(&[("a", "b")], "x"));
        assert!(metrics.contains("reason=\"match_stage\""));
        // `stages: []` is allowed with drop.
        let c = config("{selector: '{a=\"b\"}', action: drop, stages: []}");
        assert!(MatchStage::from_config(&c, &ctx()).is_ok());
    }

    /// A test stage that holds every entry until tick or flush, and stops
    /// accepting stream `{hold="full"}`.
    struct Hold(Vec<Entry>);
    impl Stage for Hold {
        fn name(&self) -> &'static str {
            "hold"
        }
        fn process(&mut self, e: Entry, _ctx: &mut Ctx) {
            self.0.push(e);
        }
        fn tick(&mut self, _now: Instant, ctx: &mut Ctx) {
            for e in self.0.drain(..1.min(self.0.len())) {
                ctx.emit(e);
            }
        }
        fn flush(&mut self, ctx: &mut Ctx) {
            for e in self.0.drain(..) {
                ctx.emit(e);
            }
        }
        fn accepts(&self, labels: &LabelSet) -> bool {
            labels.get("hold") != Some("full")
        }
    }

    #[test]
    fn tick_flush_and_accepts_reach_the_nested_pipeline() {
        let m = Arc::new(Metrics::new());
        let nested = Pipeline::new(vec![Box::new(Hold(Vec::new()))], m.clone());
        let mut st = MatchStage::keep(Selector::parse(r#"{a="b"}"#).unwrap(), nested);
        let mut out = Vec::new();
        let mut c = Ctx::new(&mut out, &m);
        st.process(entry(&[("a", "b")], "1"), &mut c);
        st.process(entry(&[("a", "b")], "2"), &mut c);
        st.process(entry(&[("a", "x")], "other"), &mut c);
        st.tick(Instant::now(), &mut c);
        let lines: Vec<_> = out.iter().map(|e| e.line.clone()).collect();
        assert_eq!(lines, ["other", "1"]);
        let mut out = Vec::new();
        st.flush(&mut Ctx::new(&mut out, &m));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].line, "2");
        assert!(st.accepts(&LabelSet::new([("a", "b")])));
        assert!(!st.accepts(&LabelSet::new([("hold", "full")])));
        assert!(st.uses_extracted());
    }

    #[test]
    fn in_an_outer_pipeline() {
        let v: Vec<StageConfig> = serde_yaml_ng::from_str(
            r#"
- match:
    selector: '{job="a"}'
    stages:
      - drop: {expression: debug}
- drop: {expression: trace}
"#,
        )
        .unwrap();
        assert!(v.iter().all(|s| s.unhonoured_name().is_none()));
        let m = Arc::new(Metrics::new());
        let mut p = super::super::build(&v, m.clone()).unwrap();
        assert_eq!(p.stage_names(), ["match", "drop"]);
        let mut out = Vec::new();
        for (job, line) in [
            ("a", "debug 1"),
            ("b", "debug 2"),
            ("a", "trace 3"),
            ("a", "ok"),
        ] {
            p.process(entry(&[("job", job)], line), &mut out);
        }
        let lines: Vec<_> = out.iter().map(|e| e.line.as_str()).collect();
        assert_eq!(lines, ["debug 2", "ok"]);
        assert!(m
            .encode()
            .contains("logentry_dropped_lines_total{reason=\"drop_stage\"} 2"));
    }

    #[test]
    fn config_errors_name_the_key() {
        assert_eq!(err(None), "match stage config cannot be empty");
        let keep = "stages: [{drop: {expression: x}}]";
        let cases = [
            (format!("{{pipeline_name: '', selector: '{{a=\"b\"}}', {keep}}}"), "pipeline_name: "),
            (format!("{{{keep}}}"), "selector: selector statement required"),
            (format!("{{selector: '{{a=\"b\"}}', action: nope, {keep}}}"), "action: "),
            ("{selector: '{a=\"b\"}'}".to_string(), "stages: match stage requires"),
            ("{selector: '{a=\"b\"}', stages: []}".to_string(), "stages: match stage requires"),
            (format!("{{selector: '{{a=\"b\"}}', action: drop, {keep}}}"), "stages: match stage configured to drop"),
            (format!("{{selector: '{{a=\"b}}', {keep}}}"), "selector: invalid selector syntax for match stage: parse error"),
            (format!("{{selector: '{{a=\"b\"}} |~ \"(\"', {keep}}}"), "selector: error parsing pipeline"),
            (
                "{selector: '{a=\"b\"}', stages: [{drop: {expression: x}}, {drop: {expression: \"(\"}}]}".to_string(),
                "stages[1].drop: expression: invalid regex",
            ),
        ];
        for (yaml, want) in cases {
            let e = err(Some(&yaml));
            assert!(e.starts_with(want), "{yaml}: {e}");
        }
        assert!(serde_yaml_ng::from_str::<Config>("{selector: x, nope: 1}").is_err());
        // A pipeline_name is accepted.
        let ok = config(
            "{pipeline_name: app2, selector: '{a=\"b\"}', stages: [{drop: {expression: x}}]}",
        );
        assert!(MatchStage::from_config(&ok, &ctx()).is_ok());
    }

    #[test]
    fn unhonoured_nested_stages_are_listed() {
        let c = config(
            r#"
selector: '{a="b"}'
stages:
  - geoip: {db: x, source: ip}
  - drop: {expression: x}
  - match:
      selector: '{c="d"}'
      stages:
        - eventlogmessage: {}
"#,
        );
        assert_eq!(
            unhonoured_nested(&c),
            [
                "stages[0].geoip",
                "stages[2].match.stages[0].eventlogmessage"
            ]
        );
    }
}
