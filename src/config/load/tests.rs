//! Loading, line-accurate errors, env expansion, validation and the
//! unhonoured list, on realistic Promtail files.

use super::*;
use crate::config::{Compression, LogFormat, LogLevel, PushEncoding};
use std::time::Duration;

/// The config from the issue: must load unchanged.
const ISSUE: &str = "\
server: { http_listen_port: 9080 }
positions: { filename: /var/lib/tailtrace/positions.yaml, sync_period: 10s }
clients:
  - url: http://loki:3100/loki/api/v1/push
    tenant_id: team-a
    batchwait: 1s
    batchsize: 1048576
    timeout: 10s
    backoff_config: { min_period: 500ms, max_period: 5m, max_retries: 10 }
    external_labels: { cluster: prod }
scrape_configs:
  - job_name: pods
    static_configs:
      - targets: [localhost]
        labels: { job: pods, __path__: /var/log/pods/*/*/*.log }
    pipeline_stages:
      - cri: {}
";

/// The grafana/helm-charts promtail chart's rendered default config.
const HELM: &str = include_str!("../../../deploy/promtail-helm/promtail.yaml");

fn load(text: &str) -> Config {
    load_str(text, "promtail.yaml", false).unwrap()
}

fn load_err(text: &str) -> ConfigError {
    load_str(text, "promtail.yaml", false).unwrap_err()
}

/// Loads and validates (not dry-run); returns the validation error.
fn invalid(text: &str) -> ConfigError {
    load(text).validate(false).unwrap_err()
}

/// The issue config with `from` replaced by `to` (which must occur).
fn issue_with(from: &str, to: &str) -> String {
    assert!(ISSUE.contains(from), "{from}");
    ISSUE.replacen(from, to, 1)
}

#[test]
fn issue_config_loads_unchanged() {
    let cfg = load(ISSUE);
    cfg.validate(false).unwrap();
    assert_eq!(cfg.server.http_listen_port, 9080);
    assert_eq!(
        cfg.positions.filename,
        std::path::Path::new("/var/lib/tailtrace/positions.yaml")
    );
    assert_eq!(cfg.positions.sync_period, Duration::from_secs(10));
    assert_eq!(cfg.clients.len(), 1);
    let c = &cfg.clients[0];
    assert_eq!(c.url.expose(), "http://loki:3100/loki/api/v1/push");
    assert_eq!(c.tenant_id.as_deref(), Some("team-a"));
    assert_eq!(c.batchwait, Duration::from_secs(1));
    assert_eq!(c.batchsize, 1_048_576);
    assert_eq!(c.timeout, Duration::from_secs(10));
    assert_eq!(c.backoff_config.min_period, Duration::from_millis(500));
    assert_eq!(c.backoff_config.max_period, Duration::from_secs(300));
    assert_eq!(c.backoff_config.max_retries, 10);
    assert_eq!(c.external_labels["cluster"], "prod");
    assert_eq!(c.encoding, PushEncoding::Protobuf);
    assert_eq!(c.compression, Compression::Gzip);
    let sc = &cfg.scrape_configs[0];
    assert_eq!(sc.job_name, "pods");
    assert_eq!(sc.static_configs[0].targets, ["localhost"]);
    assert_eq!(
        sc.static_configs[0].labels["__path__"],
        "/var/log/pods/*/*/*.log"
    );
    assert_eq!(sc.pipeline_stages.len(), 1);
    assert_eq!(sc.pipeline_stages[0].name(), "cri");
    assert!(cfg.unhonoured().is_empty(), "{:?}", cfg.unhonoured());
    assert_eq!(cfg.log_level(), LogLevel::Info);
    // Same with env expansion on: nothing in it to substitute.
    let again = load_str(ISSUE, "promtail.yaml", true).unwrap();
    assert_eq!(again.clients[0].url, c.url);
}

#[test]
fn helm_chart_config_loads_and_reports_sd_and_relabel() {
    for expand in [false, true] {
        let cfg = load_str(HELM, "values.yaml", expand).unwrap();
        cfg.validate(false).unwrap();
        assert_eq!(cfg.server.http_listen_port, 3101);
        assert_eq!(cfg.log_level(), LogLevel::Info);
        assert_eq!(cfg.log_format(), LogFormat::Logfmt);
        // `limits_config:` (null) means defaults.
        assert_eq!(cfg.limits_config.readline_rate, 10000.0);
        assert!(!cfg.tracing.enabled);
        assert!(cfg.unhonoured().is_empty(), "{:?}", cfg.unhonoured());
        assert_eq!(cfg.scrape_configs[0].kubernetes_sd_configs[0].role, "pod");
        assert_eq!(cfg.scrape_configs[0].relabel_configs.len(), 11);
    }
}

#[test]
fn defaults_for_an_empty_file() {
    for text in ["", "# nothing here\n", "---\n"] {
        let cfg = load(text);
        assert!(cfg.clients.is_empty());
        assert_eq!(cfg.server.http_listen_port, 9080);
        assert_eq!(
            cfg.positions.filename,
            std::path::Path::new("/var/log/positions.yaml")
        );
        assert_eq!(cfg.target_config.sync_period, Duration::from_secs(10));
        cfg.validate(true).unwrap();
        assert_eq!(cfg.validate(false).unwrap_err().key, "clients");
    }
}

#[test]
fn unknown_key_in_client_names_line_column_and_key() {
    let text = issue_with("    batchsize: 1048576\n", "    batch_size: 1048576\n");
    let e = load_err(&text);
    assert_eq!((e.line, e.column), (Some(7), Some(5)));
    assert_eq!(e.key, "clients[0]");
    let shown = e.to_string();
    assert!(
        shown.starts_with(
            "promtail.yaml:7:5: clients[0]: unknown field `batch_size`, expected one of"
        ),
        "{shown}"
    );
    assert!(!shown.contains(" at line "), "{shown}");
}

#[test]
fn unknown_keys_in_nested_sections_carry_lines() {
    // Flow mapping inside a client.
    let e = load_err(&issue_with("max_retries: 10", "max_retires: 10"));
    assert_eq!(e.line, Some(9));
    assert_eq!(e.key, "clients[0].backoff_config");
    assert!(e.message.contains("`max_retires`"), "{e}");
    // Top level, not on the first line.
    let e = load_err(&format!("{ISSUE}bogus: 1\n"));
    assert_eq!((e.line, e.column), (Some(18), Some(1)));
    assert!(e.message.contains("unknown field `bogus`"), "{e}");
    // A static config.
    let e = load_err(&issue_with(
        "      - targets: [localhost]\n",
        "      - target: [localhost]\n",
    ));
    assert_eq!(e.line, Some(14));
    assert_eq!(e.key, "scrape_configs[0].static_configs[0]");
    // Wrong type: line of the value.
    let e = load_err(&issue_with("batchsize: 1048576", "batchsize: lots"));
    assert_eq!((e.line, e.key.as_str()), (Some(7), "clients[0].batchsize"));
    let e = load_err(&issue_with("batchwait: 1s", "batchwait: 1 sec"));
    assert_eq!((e.line, e.key.as_str()), (Some(6), "clients[0].batchwait"));
    assert!(e.message.contains("1 sec"), "{e}");
}

#[test]
fn pipeline_stage_errors_carry_lines() {
    let e = load_err(&issue_with(
        "      - cri: {}\n",
        "      - cri: {}\n      - jsno: {}\n",
    ));
    assert_eq!((e.line, e.column), (Some(18), Some(9)));
    assert_eq!(e.key, "scrape_configs[0].pipeline_stages[1]");
    assert!(e.message.contains("unknown variant `jsno`"), "{e}");
    // Two stages in one list entry (a missing `-`).
    let e = load_err(&issue_with(
        "      - cri: {}\n",
        "      - cri: {}\n        docker: {}\n",
    ));
    assert_eq!(e.line, Some(17));
    assert_eq!(e.key, "scrape_configs[0].pipeline_stages[0]");
}

#[test]
fn pipeline_stage_forms() {
    let cfg = load(&issue_with(
        "      - cri: {}\n",
        "      - cri:\n      - docker: {}\n      - json:\n          expressions: {level: lvl}\n      - match:\n          selector: '{app=\"x\"}'\n          stages:\n            - regex: {expression: '^(?P<a>.*)$'}\n",
    ));
    let names: Vec<&str> = cfg.scrape_configs[0]
        .pipeline_stages
        .iter()
        .map(|s| s.name())
        .collect();
    assert_eq!(names, ["cri", "docker", "json", "match"]);
}

#[test]
fn syntax_errors_have_lines() {
    let e = load_err("server:\n  http_listen_port: 9080\n bad indent: x\n");
    assert_eq!(e.line, Some(3));
    assert!(e.to_string().starts_with("promtail.yaml:3:"), "{e}");
}

#[test]
fn env_expansion() {
    std::env::set_var("TAILTRACE_TEST_LOKI", "http://loki.example:3100");
    std::env::set_var("TAILTRACE_TEST_NODE", "node-7");
    let text = "\
clients:
  - url: ${TAILTRACE_TEST_LOKI}/loki/api/v1/push
    tenant_id: ${TAILTRACE_TEST_UNSET_TENANT:-team-b}
    external_labels: { host: '${TAILTRACE_TEST_NODE}', cost: '$$5' }
scrape_configs:
  - job_name: pods
    static_configs:
      - labels: { __path__: /var/log/pods/*/*/*.log, re: 'a\\\\d' }
";
    let cfg = load_str(text, "promtail.yaml", true).unwrap();
    let c = &cfg.clients[0];
    assert_eq!(c.url.expose(), "http://loki.example:3100/loki/api/v1/push");
    assert_eq!(c.tenant_id.as_deref(), Some("team-b"));
    assert_eq!(c.external_labels["host"], "node-7");
    assert_eq!(c.external_labels["cost"], "$5");
    assert_eq!(cfg.scrape_configs[0].static_configs[0].labels["re"], "a\\d");
    // Without the flag, nothing is substituted.
    let raw = load_str(text, "promtail.yaml", false).unwrap();
    assert_eq!(
        raw.clients[0].url.expose(),
        "${TAILTRACE_TEST_LOKI}/loki/api/v1/push"
    );
    // A bad expression is located.
    let e = load_str("server:\n  http_listen_port: ${PORT\n", "p.yaml", true).unwrap_err();
    assert_eq!((e.line, e.column), (Some(2), Some(21)));
    assert!(
        e.to_string()
            .starts_with("p.yaml:2:21: -config.expand-env: bad substitution"),
        "{e}"
    );
}

#[test]
fn deprecated_client_block_is_merged() {
    let cfg = load("client:\n  url: http://loki:3100/loki/api/v1/push\n  tenant_id: a\nclients:\n  - url: http://other:3100/loki/api/v1/push\n");
    assert!(cfg.client.is_none());
    assert_eq!(cfg.clients.len(), 2);
    assert_eq!(cfg.clients[1].tenant_id.as_deref(), Some("a"));
    assert_eq!(cfg.single_client, Some(1));
    cfg.validate(false).unwrap();
    let e = invalid("client:\n  url: ftp://loki\n");
    assert_eq!(e.key, "client.url");
}

#[test]
fn file_read_errors_name_the_file() {
    let e = load_file(std::path::Path::new("/nonexistent/promtail.yaml"), false).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("/nonexistent/promtail.yaml: cannot read config file"),
        "{e}"
    );
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("p.yaml");
    std::fs::write(&p, ISSUE).unwrap();
    assert_eq!(
        load_file(&p, false).unwrap().file_name,
        p.display().to_string()
    );
    std::fs::write(&p, b"server:\n  log_level: \xff\n").unwrap();
    let e = load_file(&p, false).unwrap_err();
    assert_eq!(e.line, Some(2));
    assert!(e.message.contains("UTF-8"), "{e}");
}

#[test]
fn validation_errors_name_the_key() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "url: http://loki:3100/loki/api/v1/push",
            "url: loki:3100/push",
            "clients[0].url",
        ),
        (
            "url: http://loki:3100/loki/api/v1/push",
            "url: ftp://loki/push",
            "clients[0].url",
        ),
        (
            "url: http://loki:3100/loki/api/v1/push",
            "url: ''",
            "clients[0].url",
        ),
        (
            "tenant_id: team-a",
            "tenant_id: 'a:b'",
            "clients[0].tenant_id",
        ),
        (
            "tenant_id: team-a",
            "tenant_id: 'a|b'",
            "clients[0].tenant_id",
        ),
        (
            "tenant_id: team-a",
            "tenant_id: '..'",
            "clients[0].tenant_id",
        ),
        ("batchsize: 1048576", "batchsize: 0", "clients[0].batchsize"),
        ("batchwait: 1s", "batchwait: 0s", "clients[0].batchwait"),
        ("timeout: 10s", "timeout: 0s", "clients[0].timeout"),
        (
            "max_period: 5m",
            "max_period: 100ms",
            "clients[0].backoff_config.max_period",
        ),
        (
            "cluster: prod",
            "cluster-name: prod",
            "clients[0].external_labels.cluster-name",
        ),
        (
            "timeout: 10s",
            "timeout: 10s\n    basic_auth: { username: u, password: p, password_file: /f }",
            "clients[0].basic_auth",
        ),
        (
            "timeout: 10s",
            "timeout: 10s\n    bearer_token: t\n    bearer_token_file: /f",
            "clients[0]",
        ),
        (
            "timeout: 10s",
            "timeout: 10s\n    bearer_token: t\n    basic_auth: { username: u, password: p }",
            "clients[0]",
        ),
        (
            "timeout: 10s",
            "timeout: 10s\n    tls_config: { cert_file: /c }",
            "clients[0].tls_config",
        ),
        (
            "timeout: 10s",
            "timeout: 10s\n    proxy_url: 'not a url'",
            "clients[0].proxy_url",
        ),
        (
            "timeout: 10s",
            "timeout: 10s\n    headers: { x-scope-orgid: b }",
            "clients[0].headers.x-scope-orgid",
        ),
        (
            "job_name: pods",
            "job_name: ''",
            "scrape_configs[0].job_name",
        ),
        (
            "job: pods, ",
            "job: pods, 9bad: x, ",
            "scrape_configs[0].static_configs[0].labels.9bad",
        ),
        (
            "labels: { job: pods, __path__: /var/log/pods/*/*/*.log }",
            "labels: { job: pods }",
            "scrape_configs[0].static_configs[0].labels",
        ),
        (
            "sync_period: 10s }",
            "sync_period: 0s }",
            "positions.sync_period",
        ),
        (
            "filename: /var/lib/tailtrace/positions.yaml",
            "filename: ''",
            "positions.filename",
        ),
    ];
    for (from, to, key) in cases {
        let e = invalid(&issue_with(from, to));
        assert_eq!(e.key, *key, "{to}: {e}");
        assert_eq!(e.file, "promtail.yaml");
        assert!(
            e.to_string()
                .starts_with(&format!("promtail.yaml: {key}: ")),
            "{e}"
        );
    }
    // The missing __path__ error names the job.
    let e = invalid(&issue_with(
        "job: pods, __path__: /var/log/pods/*/*/*.log",
        "job: pods",
    ));
    assert!(
        e.message.contains("\"pods\"") && e.message.contains("__path__"),
        "{e}"
    );
}

#[test]
fn cross_entry_validation() {
    // Duplicate job names.
    let two_jobs = format!(
        "{ISSUE}  - job_name: pods\n    static_configs:\n      - labels: {{ __path__: /x }}\n"
    );
    let e = invalid(&two_jobs);
    assert_eq!(e.key, "scrape_configs[1].job_name");
    // Duplicate clients.
    let dup = issue_with(
        "scrape_configs:",
        "  - url: http://loki:3100/loki/api/v1/push\n    tenant_id: team-a\nscrape_configs:",
    );
    let e = invalid(&dup);
    assert_eq!(e.key, "clients[1]");
    assert!(e.message.contains("clients[0]"), "{e}");
    // Same url, different tenant: fine.
    load(&dup.replacen("tenant_id: team-a\nscrape", "tenant_id: team-b\nscrape", 1))
        .validate(false)
        .unwrap();
    // No clients: error unless dry-run.
    let none = "scrape_configs: []\n";
    assert_eq!(invalid(none).key, "clients");
    load(none).validate(true).unwrap();
    // Non-file scrape configs need no __path__.
    let journal = "clients: [{url: 'http://l/'}]\nscrape_configs:\n  - job_name: j\n    journal: {max_age: 12h}\n    static_configs: [{labels: {job: j}}]\n";
    load(journal).validate(false).unwrap();
    assert!(load(journal)
        .unhonoured()
        .iter()
        .all(|k| !k.contains("journal")));
    // The journal config's own checks name its key.
    let bad = journal.replace("{max_age: 12h}", "{matches: kubelet}");
    let e = invalid(&bad);
    assert_eq!(e.key, "scrape_configs[0].journal.matches");
    assert!(e.message.contains("FIELD=value"), "{e}");
}

#[test]
fn unhonoured_lists_every_ignored_key() {
    let text = "\
server: { http_listen_port: 9080, grpc_listen_port: 0, http_path_prefix: /p }
clients:
  - url: http://loki/
    oauth2: { client_id: x }
    tls_config: { min_version: TLS12 }
limits_config: { readline_rate_enabled: true, max_streams: 100 }
options: { stream_lag_labels: '' }
tracing: { enabled: true }
wal: { enabled: false, dir: /wal }
scrape_configs:
  - job_name: j
    kubernetes_sd_configs: [{role: node, follow_redirects: true}]
    decompression: { enabled: true }
    pipeline_stages:
      - cri: {}
";
    let cfg = load(text);
    let u = cfg.unhonoured();
    for key in [
        "server.http_path_prefix",
        "clients[0].oauth2",
        "clients[0].tls_config.min_version",
        "limits_config.readline_rate_enabled",
        "limits_config.max_streams",
        "scrape_configs[0].kubernetes_sd_configs[0].role",
        "scrape_configs[0].kubernetes_sd_configs[0].follow_redirects",
        "scrape_configs[0].decompression",
        "options",
        "tracing.enabled",
    ] {
        assert!(u.iter().any(|k| k == key), "{key} missing from {u:?}");
    }
    assert!(
        !u.iter()
            .any(|k| k.contains("grpc_listen_port") || k.contains("wal")),
        "{u:?}"
    );
    // A real gRPC port is reported; the deprecated block uses its own name.
    let cfg =
        load("server: {grpc_listen_port: 9095}\nclient: {url: 'http://l/', enable_http2: true}\n");
    assert_eq!(
        cfg.unhonoured(),
        ["server.grpc_listen_port", "client.enable_http2"]
    );
}

#[test]
fn unhonoured_includes_stages_the_pipeline_does_not_implement() {
    let cfg = load(&issue_with(
        "      - cri: {}\n",
        "      - cri: {}\n      - json: {expressions: {a: b}}\n",
    ));
    let expected: Vec<String> = cfg.scrape_configs[0]
        .pipeline_stages
        .iter()
        .enumerate()
        .filter_map(|(j, s)| {
            s.unhonoured_name()
                .map(|n| format!("scrape_configs[0].pipeline_stages[{j}].{n}"))
        })
        .collect();
    assert_eq!(cfg.unhonoured(), expected);
}

proptest::proptest! {
    /// Mangled configs give errors, never panics (with and without env
    /// expansion).
    #[test]
    fn mangled_configs_never_panic(cut in 0usize..ISSUE.len(), junk in "[ :{}\\[\\]\\-$\n#a-z0-9]{0,12}") {
        let mut text = ISSUE.as_bytes()[..cut].to_vec();
        text.extend_from_slice(junk.as_bytes());
        text.extend_from_slice(&ISSUE.as_bytes()[cut..]);
        let text = String::from_utf8_lossy(&text);
        for expand in [false, true] {
            if let Ok(cfg) = load_str(&text, "p.yaml", expand) {
                let _ = cfg.validate(false);
                let _ = cfg.unhonoured();
            }
        }
    }
}

/// Symlinks from `/var/log/containers` and cri-dockerd's `/var/log/pods`
/// lead into the runtimes' log directories: followed by default, as under
/// Promtail; `[]` (or null) allows none, a list replaces the default.
#[test]
fn symlinks_into_the_runtimes_log_directories_are_followed_by_default() {
    let roots = |c: &Config| c.target_config.follow_symlinks_into.clone();
    let default: Vec<std::path::PathBuf> = crate::config::RUNTIME_LOG_ROOTS
        .iter()
        .map(std::path::PathBuf::from)
        .collect();
    assert_eq!(roots(&load(ISSUE)), default);
    assert!(default.contains(&"/var/lib/docker/containers".into()));
    let with = |v: &str| format!("{ISSUE}target_config:\n  follow_symlinks_into: {v}\n");
    assert!(roots(&load(&with("[]"))).is_empty());
    assert!(roots(&load(&with("null"))).is_empty());
    assert_eq!(
        roots(&load(&with("[/srv/logs]"))),
        vec![std::path::PathBuf::from("/srv/logs")]
    );
}

#[test]
fn wal_compression_takes_auto_lz4_or_none_and_names_the_key_otherwise() {
    use crate::config::SpoolCompression as C;
    assert_eq!(load("wal: {enabled: false}\n").wal.compression, C::Auto);
    for (text, want) in [("auto", C::Auto), ("lz4", C::Lz4), ("none", C::None)] {
        let cfg = load(&format!("wal: {{enabled: false, compression: {text}}}\n"));
        assert_eq!(cfg.wal.compression, want);
    }
    let e = load_err("wal:\n  enabled: false\n  compression: zstd\n");
    let e = e.to_string();
    assert!(e.contains(":3:") && e.contains("wal.compression"), "{e}");
    assert!(e.contains("`auto`, `lz4`, `none`"), "{e}");
}
