//! Per-stage micro-benches: every pipeline stage, built from its YAML the
//! way the agent builds it (`pipeline::stages::build`), run through
//! [`Pipeline::process`] on realistic lines with a realistic Kubernetes
//! label set (7 labels). Throughput is in bytes of input lines; the summary
//! at the end adds ns/line and lines/s.
//!
//! Design: a stage that reads the extracted map runs after the stage that
//! fills it (`json`, `regex`), and that producer is benched alone too, so
//! the table can show the stage's own cost (the difference). Every figure
//! includes the pipeline's per-entry work: when any stage uses the extracted
//! map the pipeline seeds it with the 7 labels and clears it on the way out
//! — the `baseline` row measures that alone. Entries are built, and the
//! emitted ones freed, outside the timed region.
//!
//! Kept short: `cargo bench --bench stages` takes ~1.5 minutes.

#[path = "support/machine.rs"]
mod machine;

use criterion::{Criterion, Throughput};
use std::cell::RefCell;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tailtrace::ack::Ack;
use tailtrace::entry::{Entry, Timestamp};
use tailtrace::labels::LabelSet;
use tailtrace::metrics::Metrics;
use tailtrace::pipeline::stages::{build, StageConfig};
use tailtrace::pipeline::Pipeline;

const SAMPLES: usize = 20;
/// Entries built (untimed) per timed run.
const CHUNK: usize = 1024;

const CONTENT: &str = "level=info ts=2024-01-20T10:00:00.123Z caller=main.go:42 msg=\"request served\" \
method=GET path=/api/v1/items status=200 duration=1.234ms bytes=5321 trace_id=4bf92f3577b34da6a3ce929d0e0e4736";

const NGINX: &str = "10.42.3.17 - - [20/Jan/2024:10:00:00 +0000] \"GET /api/v1/items?page=2&limit=50 HTTP/1.1\" \
200 5321 \"https://shop.example.com/cart\" \"Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0\"";

const NGINX_RE: &str = r#"^(?P<remote_addr>\S+) - (?P<remote_user>\S+) \[(?P<time_local>[^\]]+)\] "(?P<method>\S+) (?P<path>\S+) (?P<protocol>[^"]+)" (?P<status>\d{3}) (?P<body_bytes_sent>\d+) "(?P<referer>[^"]*)" "(?P<user_agent>[^"]*)""#;

const JSON: &str = r#"{"time":"2024-01-20T10:00:00.123456789Z","level":"info","msg":"request served","method":"GET","path":"/api/v1/items","status":200,"duration_ms":1.234,"bytes":5321,"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","user":{"id":42,"tier":"gold"}}"#;

const JSON_STAGE: &str = "- json:\n    expressions: {time: , level: , msg: , trace_id: }\n";
const REGEX_STAGE: &str = "- regex:\n    expression: '{NGINX_RE}'\n";

fn regex_stage() -> String {
    REGEX_STAGE.replace("{NGINX_RE}", &NGINX_RE.replace('\'', "''"))
}

fn cri_line() -> String {
    format!("2024-01-20T10:00:00.123456789Z stdout F {CONTENT}")
}

fn docker_line() -> String {
    let log = serde_json::to_string(&format!("{CONTENT}\n")).unwrap();
    format!(r#"{{"log":{log},"stream":"stdout","time":"2024-01-20T10:00:00.123456789Z"}}"#)
}

fn ansi_line() -> String {
    "\x1b[2m2024-01-20T10:00:00.123Z\x1b[0m \x1b[32mINFO\x1b[0m \x1b[1mhttp\x1b[0m: request served \
     \x1b[36mmethod\x1b[0m=GET \x1b[36mpath\x1b[0m=/api/v1/items \x1b[36mstatus\x1b[0m=200 \
     \x1b[36mduration\x1b[0m=1.234ms"
        .to_string()
}

fn secret_line() -> String {
    format!("{CONTENT} user=alice token=eyJhbGciOiJIUzI1NiJ9.c2VjcmV0")
}

/// A Java exception as a Spring app logs it: one first line, 11 more.
fn java_trace() -> Vec<String> {
    let mut v = vec![
        "2024-01-20 10:00:00.123 ERROR 1 --- [nio-8080-exec-3] c.e.shop.web.CartController : request failed".to_string(),
        "java.lang.IllegalStateException: cart 8f2c1e is locked by another checkout".to_string(),
    ];
    for (m, l) in [
        ("com.example.shop.cart.CartService.lock", 88),
        ("com.example.shop.cart.CartService.checkout", 141),
        ("com.example.shop.web.CartController.checkout", 57),
        ("jdk.internal.reflect.GeneratedMethodAccessor212.invoke", 0),
        (
            "org.springframework.web.method.support.InvocableHandlerMethod.doInvoke",
            205,
        ),
        (
            "org.springframework.web.servlet.FrameworkServlet.processRequest",
            1011,
        ),
        (
            "org.apache.catalina.core.ApplicationFilterChain.doFilter",
            166,
        ),
        (
            "org.apache.tomcat.util.threads.ThreadPoolExecutor$Worker.run",
            659,
        ),
    ] {
        v.push(format!(
            "\tat {m}({}.java:{l})",
            m.rsplit('.').nth(1).unwrap()
        ));
    }
    v.push("\t... 42 common frames omitted".to_string());
    v.push(
        "Caused by: java.util.concurrent.TimeoutException: lock wait exceeded 500 ms".to_string(),
    );
    v
}

fn pod_labels() -> LabelSet {
    LabelSet::new([
        ("job", "kubernetes-pods"),
        ("namespace", "shop"),
        ("pod", "api-7d9f8b6c5-x2k4q"),
        ("container", "api"),
        ("app", "api"),
        ("node_name", "node-17"),
        (
            "filename",
            "/var/log/pods/shop_api-7d9f8b6c5-x2k4q_0b6e2c1a-1111-4a5b-9c3d-2e1f0a9b8c7d/api/0.log",
        ),
    ])
}

/// One bench: a pipeline (YAML) and the lines it is fed, in a loop.
struct Case {
    /// Criterion's id, also the table's first column.
    name: &'static str,
    /// The stage measured (table column), with its configuration in brief.
    what: &'static str,
    /// The case measuring the producer alone, whose cost is included.
    producer: Option<&'static str>,
    yaml: String,
    lines: Vec<String>,
}

fn case(name: &'static str, what: &'static str, yaml: &str, line: String) -> Case {
    Case {
        name,
        what,
        producer: None,
        yaml: yaml.to_string(),
        lines: vec![line],
    }
}

fn after(producer: &'static str, c: Case) -> Case {
    let pre = match producer {
        "json" => JSON_STAGE.to_string(),
        "regex" => regex_stage(),
        other => panic!("no producer {other}"),
    };
    Case {
        producer: Some(producer),
        yaml: format!("{pre}{}", c.yaml),
        ..c
    }
}

fn cases() -> Vec<Case> {
    let json = || JSON.to_string();
    let nginx = || NGINX.to_string();
    vec![
        case(
            "baseline",
            "(pipeline alone: seed 7 labels into the extracted map, clear it)",
            "- output: {source: absent}\n",
            json(),
        ),
        case("cri", "cri {} (F line)", "- cri: {}\n", cri_line()),
        case("docker", "docker {}", "- docker: {}\n", docker_line()),
        case(
            "regex",
            "regex, nginx access line, 10 named groups",
            &regex_stage(),
            nginx(),
        ),
        case("json", "json, 4 expressions", JSON_STAGE, json()),
        case(
            "json_nested",
            "json, 4 expressions incl. user.id, user.tier",
            "- json:\n    expressions: {level: , msg: , user_id: user.id, tier: user.tier}\n",
            json(),
        ),
        case(
            "logfmt",
            "logfmt, 4 keys",
            "- logfmt:\n    mapping: {level: , msg: , status: , trace_id: }\n",
            CONTENT.to_string(),
        ),
        case(
            "replace",
            "replace, mask token=… with ****",
            "- replace:\n    expression: '(?:password|token|secret)=(\\S+)'\n    replace: '****'\n",
            secret_line(),
        ),
        case("decolorize", "decolorize", "- decolorize: {}\n", ansi_line()),
        after(
            "json",
            case(
                "json+template",
                "template '{{ ToUpper .Value }}'",
                "- template: {source: level, template: '{{ ToUpper .Value }}'}\n",
                json(),
            ),
        ),
        after(
            "json",
            case(
                "json+output",
                "output {source: msg}",
                "- output: {source: msg}\n",
                json(),
            ),
        ),
        after(
            "json",
            case(
                "json+labels",
                "labels {level: }",
                "- labels: {level: }\n",
                json(),
            ),
        ),
        case(
            "labelallow",
            "labelallow [namespace, pod, container, app, job]",
            "- labelallow: [namespace, pod, container, app, job]\n",
            json(),
        ),
        case(
            "labeldrop",
            "labeldrop [filename, node_name]",
            "- labeldrop: [filename, node_name]\n",
            json(),
        ),
        case(
            "static_labels",
            "static_labels {cluster, env}",
            "- static_labels: {cluster: prod-eu-1, env: prod}\n",
            json(),
        ),
        after(
            "json",
            case(
                "json+structured_metadata",
                "structured_metadata {trace_id: }",
                "- structured_metadata: {trace_id: }\n",
                json(),
            ),
        ),
        case(
            "tenant",
            "tenant {label: namespace}",
            "- tenant: {label: namespace}\n",
            json(),
        ),
        case(
            "pack",
            "pack {labels: [pod, container]}",
            "- pack: {labels: [pod, container]}\n",
            json(),
        ),
        after(
            "json",
            case(
                "json+timestamp_rfc3339nano",
                "timestamp RFC3339Nano",
                "- timestamp: {source: time, format: RFC3339Nano}\n",
                json(),
            ),
        ),
        after(
            "regex",
            case(
                "regex+timestamp_go_layout",
                "timestamp '02/Jan/2006:15:04:05 -0700'",
                "- timestamp: {source: time_local, format: '02/Jan/2006:15:04:05 -0700'}\n",
                nginx(),
            ),
        ),
        case(
            "drop_expression",
            "drop {expression: '/healthz|/readyz'} (none dropped)",
            "- drop: {expression: '/healthz|/readyz'}\n",
            nginx(),
        ),
        after(
            "json",
            case(
                "json+drop_value",
                "drop {source: level, value: debug} (none dropped)",
                "- drop: {source: level, value: debug}\n",
                json(),
            ),
        ),
        case(
            "sampling",
            "sampling {rate: 0.25} (3 in 4 dropped and counted)",
            "- sampling: {rate: 0.25}\n",
            json(),
        ),
        case(
            "regex+labels",
            "regex + labels {method, status} (match's nested stages alone)",
            &regex_labels(),
            nginx(),
        ),
        Case {
            producer: Some("regex+labels"),
            ..case(
                "match",
                "match '{app=\"api\"} |= \"GET\"', nested regex + labels",
                &match_stage(r#"{app="api"} |= "GET""#),
                nginx(),
            )
        },
        case(
            "match_miss",
            "match '{app=\"web\"} |= \"GET\"' (selector misses)",
            &match_stage(r#"{app="web"} |= "GET""#),
            nginx(),
        ),
        Case {
            lines: java_trace(),
            ..case(
                "multiline",
                "multiline firstline '^\\d{4}-\\d{2}-\\d{2}', 12-line Java trace",
                "- multiline: {firstline: '^\\d{4}-\\d{2}-\\d{2}', max_wait_time: 3s}\n",
                String::new(),
            )
        },
        Case {
            lines: java_trace(),
            ..case(
                "multiline_java_mode",
                "multiline {mode: java} (tailtrace), same trace",
                "- multiline: {mode: java}\n",
                String::new(),
            )
        },
        case(
            "limit",
            "limit {rate: 1e9, burst: 1e9, drop: true} (never hit)",
            "- limit: {rate: 1000000000, burst: 1000000000, drop: true}\n",
            json(),
        ),
        case(
            "limit_by_label",
            "limit … by_label_name: pod (never hit)",
            "- limit: {rate: 1000000000, burst: 1000000000, drop: true, by_label_name: pod}\n",
            json(),
        ),
        case(
            "metrics",
            "metrics: 2 counters, match_all inc and count_entry_bytes add",
            "- metrics:\n    log_lines_total: {type: Counter, description: lines, config: {match_all: true, action: inc}}\n    log_bytes_total: {type: Counter, description: bytes, config: {match_all: true, count_entry_bytes: true, action: add}}\n",
            json(),
        ),
    ]
}

/// A match stage running regex + labels on the lines `selector` picks.
fn match_stage(selector: &str) -> String {
    let nested: String = regex_labels()
        .lines()
        .map(|l| format!("      {l}\n"))
        .collect();
    format!("- match:\n    selector: '{selector}'\n    stages:\n{nested}")
}

fn regex_labels() -> String {
    format!("{}- labels: {{method: , status: }}\n", regex_stage())
}

/// Criterion's samples of one bench: (lines, time) per sample.
type Samples = Vec<(u64, Duration)>;

fn bench_stages(c: &mut Criterion, results: &RefCell<Vec<(String, Samples)>>) {
    let metrics = Arc::new(Metrics::new());
    let labels = pod_labels();
    let mut g = c.benchmark_group("stages");
    for case in cases() {
        let configs: Vec<StageConfig> = serde_yaml_ng::from_str(&case.yaml)
            .unwrap_or_else(|e| panic!("{}: {e}\n{}", case.name, case.yaml));
        let mut pipeline: Pipeline =
            build(&configs, metrics.clone()).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let bytes = case.lines.iter().map(|l| l.len()).sum::<usize>() / case.lines.len();
        g.throughput(Throughput::Bytes(bytes as u64));
        let mut next = 0usize;
        let mut chunk = Vec::with_capacity(CHUNK);
        let mut out = Vec::with_capacity(CHUNK);
        results
            .borrow_mut()
            .push((case.name.to_string(), Vec::new()));
        g.bench_function(case.name, |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let n = left.min(CHUNK as u64);
                    left -= n;
                    for _ in 0..n {
                        let line = case.lines[next].clone();
                        next = (next + 1) % case.lines.len();
                        chunk.push(Entry::new(
                            labels.clone(),
                            Timestamp(1_705_744_800_000_000_000),
                            line.into(),
                            Ack::none(),
                        ));
                    }
                    let t = Instant::now();
                    for e in chunk.drain(..) {
                        pipeline.process(e, &mut out);
                    }
                    spent += t.elapsed();
                    for e in out.drain(..) {
                        black_box(&e.line);
                        e.ack.ack();
                    }
                }
                if let Some(r) = results.borrow_mut().last_mut() {
                    r.1.push((iters, spent));
                }
                spent
            })
        });
        // Held entries (multiline) are released, acknowledged.
        pipeline.flush(&mut out);
        for e in out.drain(..) {
            e.ack.ack();
        }
    }
    g.finish();
}

/// ns per line: the median of the last SAMPLES samples (criterion's
/// measurement; the earlier ones are its warm-up).
fn ns_per_line(samples: &Samples) -> f64 {
    let from = samples.len().saturating_sub(SAMPLES);
    let mut v: Vec<f64> = samples[from..]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, d)| d.as_nanos() as f64 / *n as f64)
        .collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn print_summary(results: &[(String, Samples)]) {
    let cases = cases();
    let ns: Vec<(String, f64)> = results
        .iter()
        .filter(|(_, s)| !s.is_empty())
        .map(|(n, s)| (n.clone(), ns_per_line(s)))
        .collect();
    let of = |name: &str| ns.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
    println!();
    let m = machine::machine();
    println!(
        "tailtrace stage throughput — {} cores, {}, {:.1} GiB, kernel {} — commit {}",
        m["nproc"],
        m["cpu_model"].as_str().unwrap_or("?"),
        m["mem_gib"].as_f64().unwrap_or(0.0),
        m["kernel"].as_str().unwrap_or("?"),
        machine::sh("git", &["rev-parse", "--short", "HEAD"])
    );
    println!("(median of criterion's samples; 'own' = minus the producer's figure)");
    println!(
        "{:<28} {:>6} {:>9} {:>9} {:>11} {:>9}  stage",
        "bench", "B/line", "ns/line", "MiB/s", "lines/s", "own ns"
    );
    for c in &cases {
        let Some(t) = of(c.name) else { continue };
        let bytes = c.lines.iter().map(|l| l.len()).sum::<usize>() as f64 / c.lines.len() as f64;
        let own = match c.producer.and_then(of) {
            Some(p) => format!("{:.0}", t - p),
            None => String::new(),
        };
        println!(
            "{:<28} {:>6.0} {:>9.0} {:>9.0} {:>11.0} {:>9}  {}",
            c.name,
            bytes,
            t,
            bytes / t * 1e9 / (1024.0 * 1024.0),
            1e9 / t,
            own,
            c.what
        );
    }
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1500))
        .sample_size(SAMPLES)
        .configure_from_args();
    let results = RefCell::new(Vec::new());
    bench_stages(&mut c, &results);
    c.final_summary();
    print_summary(&results.into_inner());
}
