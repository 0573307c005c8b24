//! The `tenant` stage: Promtail's `- tenant: {label | source | value}`.
//!
//! Owns: [`Config`] and the stage.
//!
//! What it does, as Promtail v3.6 does it: sets the reserved stream label
//! `__tenant_id__` (the sink sends entries carrying it under that tenant,
//! overriding the client's `tenant_id`; see [`crate::sink::prepare`]) to
//! - `value`: a fixed tenant;
//! - `source`: the text of that extracted value (string-like only);
//! - `label`: the value of that stream label.
//!
//! When the source or label is absent, not string-like, or empty, the entry
//! keeps whatever tenant it had. Exactly one of the three options must be
//! set (an empty string counts as unset): none is `label, source or value
//! config are required`, more than one is `label, source and value are
//! mutually exclusive: …`, Promtail's messages.
//!
//! Must never: rebuild a label set per line (cached per input set and
//! tenant).

use super::labels::{with_text, LabelCache};
use super::BuildCtx;
use crate::entry::Entry;
use crate::pipeline::Stage;
use crate::sink::prepare::TENANT_LABEL;
use serde::Deserialize;

/// Whether the stage runs.
pub const HONOURED: bool = true;

/// `tenant:` options (exactly one).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// A stream label holding the tenant.
    pub label: Option<String>,
    /// An extracted key holding the tenant.
    pub source: Option<String>,
    /// A fixed tenant.
    pub value: Option<String>,
}

enum From {
    Label(Box<str>),
    Source(Box<str>),
    Value(Box<str>),
}

/// Builds the stage.
pub fn build(c: Option<&Config>, _ctx: &BuildCtx) -> Result<Option<Box<dyn Stage>>, String> {
    let d = Config::default();
    let c = c.unwrap_or(&d);
    let set = |o: &Option<String>| o.as_deref().filter(|s| !s.is_empty()).map(Box::<str>::from);
    let from = match (set(&c.label), set(&c.source), set(&c.value)) {
        (None, None, None) => return Err("label, source or value config are required".into()),
        (Some(l), None, None) => From::Label(l),
        (None, Some(s), None) => From::Source(s),
        (None, None, Some(v)) => From::Value(v),
        _ => {
            return Err("label, source and value are mutually exclusive: you should set source, value or label but not all".into())
        }
    };
    Ok(Some(Box::new(TenantStage {
        from,
        cache: LabelCache::default(),
    })))
}

/// The stage. See the module docs.
pub struct TenantStage {
    from: From,
    cache: LabelCache<Box<str>>,
}

impl Stage for TenantStage {
    fn name(&self) -> &'static str {
        "tenant"
    }

    fn uses_extracted(&self) -> bool {
        matches!(self.from, From::Source(_))
    }

    fn edits_only(&self) -> bool {
        true
    }

    fn edit(&mut self, e: &mut Entry) {
        let current = e.labels.get(TENANT_LABEL);
        // The new tenant, when it differs from the current one.
        let tenant: Option<Box<str>> = match &self.from {
            From::Value(v) => (current != Some(&**v)).then(|| v.clone()),
            From::Label(l) => e
                .labels
                .get(l)
                .filter(|t| !t.is_empty() && current != Some(*t))
                .map(Into::into),
            From::Source(s) => e.extracted.get(s).and_then(|v| {
                with_text(v, |t| {
                    (!t.is_empty() && current != Some(t)).then(|| t.into())
                })
                .flatten()
            }),
        };
        if let Some(t) = tenant {
            e.labels = self
                .cache
                .get_or_build(&e.labels, t, |l, t| l.with(TENANT_LABEL, t));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::labels::test_support::*;
    use super::*;
    use crate::labels::LabelSet;

    fn cfg(yaml: &str) -> Config {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    fn stage(yaml: &str) -> Box<dyn Stage> {
        build(Some(&cfg(yaml)), &ctx()).unwrap().unwrap()
    }

    fn tenant_of(
        yaml: &str,
        labels: &[(&str, &str)],
        extracted: serde_json::Value,
    ) -> Option<String> {
        let mut h = harness(stage(yaml), labels);
        let e = run_line(&mut h, "l", extracted);
        e.ack.ack();
        e.labels.get(TENANT_LABEL).map(str::to_string)
    }

    #[test]
    fn label_name_is_the_one_the_sink_reads() {
        assert_eq!(TENANT_LABEL, "__tenant_id__");
    }

    #[test]
    fn value_source_and_label() {
        let none = serde_json::json!({});
        assert_eq!(
            tenant_of("{value: team-a}", &[("app", "a")], none.clone()).as_deref(),
            Some("team-a")
        );
        assert_eq!(
            tenant_of(
                "{value: b}",
                &[("app", "a"), (TENANT_LABEL, "old")],
                none.clone()
            )
            .as_deref(),
            Some("b")
        );
        assert_eq!(
            tenant_of(
                "{source: t}",
                &[("app", "a")],
                serde_json::json!({"t": "from-line"})
            )
            .as_deref(),
            Some("from-line")
        );
        assert_eq!(
            tenant_of(
                "{source: t}",
                &[("app", "a")],
                serde_json::json!({"t": 42.0})
            )
            .as_deref(),
            Some("42")
        );
        assert_eq!(
            tenant_of("{label: ns}", &[("ns", "prod")], none.clone()).as_deref(),
            Some("prod")
        );
    }

    #[test]
    fn missing_or_empty_keeps_the_current_tenant() {
        let keep = [("app", "a"), (TENANT_LABEL, "old")];
        for (yaml, ex) in [
            ("{source: t}", serde_json::json!({})),
            ("{source: t}", serde_json::json!({"t": ""})),
            ("{source: t}", serde_json::json!({"t": null})),
            ("{label: ns}", serde_json::json!({})),
        ] {
            assert_eq!(tenant_of(yaml, &keep, ex).as_deref(), Some("old"), "{yaml}");
        }
        assert_eq!(
            tenant_of("{label: ns}", &[("ns", "")], serde_json::json!({})),
            None
        );
    }

    #[test]
    fn the_derived_set_is_shared() {
        let mut h = harness(stage("{value: t}"), &[("app", "a")]);
        let a = run_line(&mut h, "l", serde_json::json!({}));
        let b = run_line(&mut h, "l", serde_json::json!({}));
        assert!(same_set(&a.labels, &b.labels));
        assert_eq!(a.labels, LabelSet::new([("app", "a"), (TENANT_LABEL, "t")]));
        for e in [a, b] {
            e.ack.ack();
        }
    }

    #[test]
    fn exactly_one_option() {
        let req = "label, source or value config are required";
        assert_eq!(build(None, &ctx()).err().unwrap(), req);
        assert_eq!(build(Some(&cfg("{}")), &ctx()).err().unwrap(), req);
        assert_eq!(build(Some(&cfg("{value: ''}")), &ctx()).err().unwrap(), req);
        for y in [
            "{value: a, source: b}",
            "{label: a, value: b}",
            "{label: a, source: b}",
            "{label: a, source: b, value: c}",
        ] {
            let e = build(Some(&cfg(y)), &ctx()).err().unwrap();
            assert!(
                e.starts_with("label, source and value are mutually exclusive"),
                "{y}: {e}"
            );
        }
        assert!(serde_yaml_ng::from_str::<Config>("{tenant: a}").is_err());
    }

    #[test]
    fn only_source_uses_the_extracted_map() {
        assert!(stage("{source: a}").uses_extracted());
        assert!(!stage("{value: a}").uses_extracted());
        assert!(!stage("{label: a}").uses_extracted());
    }
}
