//! Table tests of the `metrics` stage; expectations from Promtail's
//! documentation and its `metrics.go` / `metric/*.go` semantics.

use super::*;
use crate::ack::Ack;
use crate::entry::Timestamp;
use crate::metrics::Metrics;

fn cfg(yaml: &str) -> Config {
    serde_yaml_ng::from_str(yaml).unwrap()
}

fn stage(m: &Metrics, yaml: &str) -> MetricsStage {
    MetricsStage::new(&cfg(yaml), m).unwrap()
}

fn labels(file: &str) -> LabelSet {
    LabelSet::new([("filename", file), ("job", "j"), ("__path__", "/x/*.log")])
}

fn entry(file: &str, line: &str, kv: &[(&str, Value)]) -> Entry {
    let mut e = Entry::new(labels(file), Timestamp(1), line.into(), Ack::none());
    for (k, v) in kv {
        e.extracted.insert(k, v.clone());
    }
    e
}

/// Runs `entries` through the stage; checks they pass unchanged.
fn run(m: &Metrics, s: &mut MetricsStage, entries: Vec<Entry>) {
    let want: Vec<(String, i64)> = entries
        .iter()
        .map(|e| (e.line.to_string(), e.timestamp.0))
        .collect();
    let mut out = Vec::new();
    for e in entries {
        s.process(e, &mut Ctx::new(&mut out, m));
    }
    let got: Vec<(String, i64)> = out
        .iter()
        .map(|e| (e.line.to_string(), e.timestamp.0))
        .collect();
    assert_eq!(got, want, "entries pass through unchanged");
    for e in out {
        assert_eq!(e.labels, labels(e.labels.get("filename").unwrap()));
        e.ack.ack();
    }
}

/// The sample lines of `name` in the exposition (without HELP/TYPE).
fn samples(m: &Metrics, name: &str) -> Vec<String> {
    m.encode()
        .lines()
        .filter(|l| !l.starts_with('#') && l.starts_with(name))
        .map(str::to_string)
        .collect()
}

const A: &str = "/var/log/a.log";
const B: &str = "/var/log/b.log";
const LA: &str = "{filename=\"/var/log/a.log\",job=\"j\"}";
const LB: &str = "{filename=\"/var/log/b.log\",job=\"j\"}";

#[test]
fn yaml_forms_and_defaults() {
    let c = cfg("lines_total: {type: Counter, config: {match_all: true, action: inc}}\nbytes: {type: gauge, source: b, prefix: my_, max_idle_duration: 1h, description: d, config: {action: set}}\n");
    assert_eq!(c.metrics.len(), 2);
    let l = &c.metrics["lines_total"];
    assert_eq!(
        (l.kind.as_str(), l.source.as_deref(), l.prefix.as_str()),
        ("Counter", None, "")
    );
    assert_eq!(l.max_idle_duration, None);
    let b = &c.metrics["bytes"];
    assert_eq!(b.max_idle_duration, Some(Duration::from_secs(3600)));
    assert_eq!(b.config.as_ref().unwrap().action, "set");
    assert!(serde_yaml_ng::from_str::<Config>("x: {type: counter, typo: 1}").is_err());
    assert!(serde_yaml_ng::from_str::<Config>("x: {type: counter, config: {acton: inc}}").is_err());
    let c = cfg("{}");
    assert!(c.metrics.is_empty());
}

#[test]
fn config_errors_name_the_metric_and_key() {
    let m = Metrics::new();
    let cases = [
        ("x: {type: summary}", "x.type: invalid metric type 'summary'"),
        ("x: {config: {action: inc}}", "x.type: invalid metric type ''"),
        ("x: {type: counter}", "x.config.action: counter action must be defined"),
        ("x: {type: counter, config: {action: set}}", "x.config.action: action set is not valid"),
        ("x: {type: gauge, config: {}}", "x.config.action: gauge action must be defined"),
        ("x: {type: gauge, config: {action: observe}}", "x.config.action: action observe is not valid"),
        ("x: {type: counter, config: {match_all: true, value: a, action: inc}}", "x.config.match_all"),
        ("x: {type: counter, config: {count_entry_bytes: true, action: add}}", "x.config.count_entry_bytes: `count_entry_bytes: true` can only be set with `match_all: true`"),
        ("x: {type: counter, config: {match_all: true, count_entry_bytes: true, action: inc}}", "can only be used with `action: add`"),
        ("x: {type: counter, max_idle_duration: 500ms, config: {action: inc}}", "x.max_idle_duration: max_idle_duration less than 1s not allowed"),
        ("x: {type: histogram, config: {buckets: [1, 1]}}", "x.config.buckets"),
        ("x: {type: histogram, config: {buckets: [2, 1]}}", "x.config.buckets"),
        ("x-y: {type: gauge, config: {action: inc}}", "x-y: invalid metric name"),
        ("x: {type: gauge, prefix: '1a', config: {action: inc}}", "invalid metric name"),
    ];
    for (yaml, want) in cases {
        let e = MetricsStage::new(&cfg(yaml), &m).err().unwrap();
        assert!(e.contains(want), "{yaml}: {e}");
    }
    let ctx = BuildCtx::new(Arc::new(Metrics::new()));
    let e = build(None, &ctx).err().unwrap();
    assert_eq!(e, "empty metric stage configuration");
    assert!(build(Some(&cfg("{}")), &ctx).unwrap().is_some());
}

#[test]
fn counter_inc_counts_entries_with_the_source_and_matching_value() {
    let m = Metrics::new();
    let mut s = stage(&m, "status_total: {type: Counter, description: 'by status', config: {value: '200', action: inc}}\nerrors: {type: counter, source: level, config: {action: inc}}");
    run(
        &m,
        &mut s,
        vec![
            entry(A, "a", &[("status_total", Value::from(200.0))]),
            entry(A, "b", &[("status_total", Value::from("200"))]),
            entry(
                A,
                "c",
                &[
                    ("status_total", Value::from("500")),
                    ("level", Value::from("error")),
                ],
            ),
            entry(B, "d", &[("level", Value::Null)]),
            entry(B, "e", &[]),
        ],
    );
    assert_eq!(
        samples(&m, "promtail_custom_status"),
        [format!("promtail_custom_status_total{LA} 2.0")]
    );
    assert_eq!(
        samples(&m, "promtail_custom_errors"),
        [
            format!("promtail_custom_errors{LA} 1.0"),
            format!("promtail_custom_errors{LB} 1.0")
        ]
    );
    let text = m.encode();
    assert!(
        text.contains(
            "# HELP promtail_custom_status by status\n# TYPE promtail_custom_status counter\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("# TYPE promtail_custom_errors unknown\n"),
        "{text}"
    );
    assert!(!text.contains("__path__"), "{text}");
    assert!(text.ends_with("# EOF\n"));
}

#[test]
fn counter_add_reads_numbers_like_getfloat() {
    let m = Metrics::new();
    let mut s = stage(
        &m,
        "t_total: {type: counter, source: v, config: {action: add}}",
    );
    let vals = [
        Value::from(1.5),
        Value::from("2.5"),
        Value::from("250ms"),
        Value::from(true),
        Value::from(false),
        Value::from("1e1"),
        Value::from("-3"),  // negative: ignored (Promtail panics)
        Value::from("abc"), // not a number: ignored
        Value::from("1d"),  // not a Go duration
        Value::Null,
    ];
    let es = vals
        .iter()
        .map(|v| entry(A, "x", &[("v", v.clone())]))
        .collect();
    run(&m, &mut s, es);
    assert_eq!(
        samples(&m, "promtail_custom_t_total"),
        [format!("promtail_custom_t_total{LA} 15.25")]
    );
}

#[test]
fn match_all_counts_every_entry_or_its_bytes() {
    let m = Metrics::new();
    let mut s = stage(&m, "lines_total: {type: Counter, config: {match_all: true, action: inc}}\nbytes_total: {type: Counter, config: {match_all: true, count_entry_bytes: true, action: add}}");
    run(
        &m,
        &mut s,
        vec![
            entry(A, "12345", &[]),
            entry(A, "héllo", &[]),
            entry(B, "", &[]),
        ],
    );
    assert_eq!(
        samples(&m, "promtail_custom_lines_total"),
        [
            format!("promtail_custom_lines_total{LA} 2.0"),
            format!("promtail_custom_lines_total{LB} 1.0")
        ]
    );
    assert_eq!(
        samples(&m, "promtail_custom_bytes_total"),
        [
            format!("promtail_custom_bytes_total{LA} 11.0"),
            format!("promtail_custom_bytes_total{LB} 0.0")
        ]
    );
}

#[test]
fn gauge_actions() {
    let cases = [
        ("set", vec![Value::from(5.0), Value::from("2")], "2.0"),
        ("inc", vec![Value::from("x"), Value::from("y")], "2.0"),
        ("dec", vec![Value::from("x")], "-1.0"),
        (
            "add",
            vec![Value::from(5.0), Value::from("-1.5"), Value::from("nope")],
            "3.5",
        ),
        ("sub", vec![Value::from(5.0), Value::from("1s")], "-6.0"),
    ];
    for (action, vals, want) in cases {
        let m = Metrics::new();
        let mut s = stage(
            &m,
            &format!("g: {{type: Gauge, source: v, prefix: app_, config: {{action: {action}}}}}"),
        );
        let es = vals
            .iter()
            .map(|v| entry(A, "x", &[("v", v.clone())]))
            .collect();
        run(&m, &mut s, es);
        assert_eq!(
            samples(&m, "app_g"),
            [format!("app_g{LA} {want}")],
            "{action}"
        );
        assert!(m.encode().contains("# TYPE app_g gauge\n"));
    }
    // `value` filters gauges too.
    let m = Metrics::new();
    let mut s = stage(
        &m,
        "g: {type: gauge, source: v, config: {value: up, action: inc}}",
    );
    run(
        &m,
        &mut s,
        vec![
            entry(A, "x", &[("v", Value::from("up"))]),
            entry(A, "x", &[("v", Value::from("down"))]),
        ],
    );
    assert_eq!(
        samples(&m, "promtail_custom_g"),
        [format!("promtail_custom_g{LA} 1.0")]
    );
}

#[test]
fn histograms_observe_into_le_buckets() {
    let m = Metrics::new();
    let mut s = stage(&m, "rt: {type: Histogram, source: t, config: {buckets: [0.25, 1, 10]}}\nd: {type: histogram, source: t}");
    let vals = ["0.125", "0.25", "500ms", "1", "3", "100", "x"];
    let es = vals
        .iter()
        .map(|v| entry(A, "x", &[("t", Value::from(*v))]))
        .collect();
    run(&m, &mut s, es);
    assert_eq!(
        samples(&m, "promtail_custom_rt"),
        [
            format!("promtail_custom_rt_sum{LA} 104.875"),
            format!("promtail_custom_rt_count{LA} 6"),
            "promtail_custom_rt_bucket{le=\"0.25\",filename=\"/var/log/a.log\",job=\"j\"} 2"
                .to_string(),
            "promtail_custom_rt_bucket{le=\"1.0\",filename=\"/var/log/a.log\",job=\"j\"} 4"
                .to_string(),
            "promtail_custom_rt_bucket{le=\"10.0\",filename=\"/var/log/a.log\",job=\"j\"} 5"
                .to_string(),
            "promtail_custom_rt_bucket{le=\"+Inf\",filename=\"/var/log/a.log\",job=\"j\"} 6"
                .to_string(),
        ]
    );
    let d = samples(&m, "promtail_custom_d_bucket");
    assert_eq!(d.len(), DEFAULT_BUCKETS.len() + 1, "{d:?}");
    assert!(m.encode().contains("# TYPE promtail_custom_rt histogram\n"));
    // A trailing +Inf bucket is Prometheus' own: accepted and not doubled.
    let m = Metrics::new();
    stage(&m, "h: {type: histogram, config: {buckets: [1, .inf]}}");
}

#[test]
fn idle_series_expire_after_max_idle_duration() {
    let m = Metrics::new();
    let s = stage(
        &m,
        "c_total: {type: counter, max_idle_duration: 2s, config: {match_all: true, action: inc}}",
    );
    let now = Instant::now();
    let old = now.checked_sub(Duration::from_secs(3)).unwrap();
    s.metrics[0].record(&entry(A, "x", &[]), old);
    s.metrics[0].record(&entry(B, "x", &[]), now);
    assert_eq!(
        samples(&m, "promtail_custom_c_total"),
        [format!("promtail_custom_c_total{LB} 1.0")]
    );
    // A family with no series left is not shown at all.
    let m = Metrics::new();
    let s = stage(
        &m,
        "g: {type: gauge, max_idle_duration: 1s, config: {action: inc}}",
    );
    s.metrics[0].record(&entry(A, "x", &[("g", Value::from(1.0))]), old);
    assert!(!m.encode().contains("promtail_custom_g"), "{}", m.encode());
    // Default: 5 minutes.
    let m = Metrics::new();
    let s = stage(&m, "g: {type: gauge, config: {action: inc}}");
    assert_eq!(s.metrics[0].max_idle, Duration::from_secs(300));
}

#[test]
fn pipelines_declaring_the_same_metric_share_it() {
    let m = Metrics::new();
    let y = "lines_total: {type: counter, config: {match_all: true, action: inc}}";
    let mut s1 = stage(&m, y);
    let mut s2 = stage(&m, y);
    run(&m, &mut s1, vec![entry(A, "x", &[])]);
    run(&m, &mut s2, vec![entry(A, "y", &[]), entry(B, "z", &[])]);
    assert_eq!(
        samples(&m, "promtail_custom_lines_total"),
        [
            format!("promtail_custom_lines_total{LA} 2.0"),
            format!("promtail_custom_lines_total{LB} 1.0")
        ]
    );
    assert_eq!(
        m.encode()
            .matches("# TYPE promtail_custom_lines counter")
            .count(),
        1
    );
    // Another type under the same name is refused, and so is a name the
    // agent uses itself.
    let e = MetricsStage::new(
        &cfg("lines_total: {type: gauge, config: {action: inc}}"),
        &m,
    )
    .err()
    .unwrap();
    assert!(e.contains("lines_total"), "{e}");
    let e = MetricsStage::new(&cfg("lines: {type: gauge, config: {action: inc}}"), &m)
        .err()
        .unwrap();
    assert!(e.contains("another type"), "{e}");
    let e = MetricsStage::new(
        &cfg("read_lines_total: {type: counter, prefix: promtail_, config: {action: inc}}"),
        &m,
    )
    .err()
    .unwrap();
    assert!(e.contains("agent's own"), "{e}");
    let e = MetricsStage::new(&cfg("h: {type: histogram}"), &m)
        .and_then(|_| MetricsStage::new(&cfg("h: {type: histogram, config: {buckets: [1]}}"), &m))
        .err()
        .unwrap();
    assert!(e.contains("other buckets"), "{e}");
}

#[test]
fn descriptions_are_escaped_and_label_values_quoted() {
    let m = Metrics::new();
    let mut s = stage(&m, "c: {type: counter, description: \"two\\nlines \\\\ \\\"q\\\"\", config: {match_all: true, action: inc}}");
    let mut e = entry(A, "x", &[]);
    e.labels = LabelSet::new([("app", "a\"b\\c\nd"), ("bad-name", "x")]);
    let mut out = Vec::new();
    s.process(e, &mut Ctx::new(&mut out, &m));
    let text = m.encode();
    assert!(
        text.contains("# HELP promtail_custom_c two\\nlines \\\\ \\\"q\\\"\n"),
        "{text}"
    );
    assert!(
        text.contains("promtail_custom_c{app=\"a\\\"b\\\\c\\nd\"} 1.0\n"),
        "{text}"
    );
    for e in out {
        e.ack.ack();
    }
}

#[test]
fn built_from_pipeline_yaml_and_exported_on_the_agent_metrics() {
    let v: Vec<crate::pipeline::stages::StageConfig> = serde_yaml_ng::from_str(
        "- metrics:\n    log_lines_total:\n      type: Counter\n      description: total lines\n      config: {match_all: true, action: inc}\n",
    )
    .unwrap();
    assert!(v[0].unhonoured_name().is_none());
    let m = Arc::new(Metrics::new());
    let mut p = crate::pipeline::stages::build(&v, m.clone()).unwrap();
    assert_eq!(p.stage_names(), ["metrics"]);
    let mut o = Vec::new();
    p.process(
        Entry::new(labels(A), Timestamp(1), "x".into(), Ack::none()),
        &mut o,
    );
    assert_eq!(o.len(), 1);
    for e in o {
        e.ack.ack();
    }
    assert_eq!(
        samples(&m, "promtail_custom_log_lines_total"),
        [format!("promtail_custom_log_lines_total{LA} 1.0")]
    );
    let v: Vec<crate::pipeline::stages::StageConfig> =
        serde_yaml_ng::from_str("- metrics:\n").unwrap();
    let e = crate::pipeline::stages::build(&v, m).err().unwrap();
    assert_eq!(
        e,
        "pipeline_stages[0].metrics: empty metric stage configuration"
    );
}

#[test]
fn helpers() {
    assert!(valid_metric_name("a:b_c1"));
    assert!(!valid_metric_name("1a"));
    assert!(!valid_metric_name(""));
    assert_eq!(go_duration_secs("1h30m"), Some(5400.0));
    assert_eq!(go_duration_secs("-1.5s"), Some(-1.5));
    assert_eq!(go_duration_secs("1w"), None);
    assert_eq!(go_duration_secs("5"), None);
    assert_eq!(get_float(&Value::from("inf")), Some(f64::INFINITY));
}
