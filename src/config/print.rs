//! `-print-config-stderr` and `-print-config-stdout`: the effective
//! configuration as YAML, in Promtail's key names.
//!
//! Owns: [`to_yaml`]. What it prints is the config after defaults, the
//! command-line overrides and the folding of `client:` into `clients`, so a
//! user can diff it and paste it back: loading the output gives the same
//! effective config, except that secrets read back as their masks.
//! Durations print in Go's form (`10s`, `1h30m`), byte sizes as integers.
//! `pipeline_stages` print as written (Promtail keeps them untyped too).
//! Promtail keys tailtrace does not honour are left out: their values are
//! not kept (the start-up warning names them).
//!
//! Secrets are masked by their types (see `secret.rs`): `<secret>` for
//! passwords, tokens and credential-like header values, `***` for a URL's
//! password.
//!
//! Must never: print a secret, or a key the loader would refuse.

use super::Config;

/// The first line of the printed config.
pub const HEADER: &str = "# tailtrace: effective configuration (secrets masked)";

/// The effective config as a YAML document (with [`HEADER`] first).
pub fn to_yaml(cfg: &Config) -> Result<String, String> {
    let mut c = cfg.clone();
    // Defaults the types leave open, filled in as they take effect.
    c.server.log_level = Some(cfg.log_level());
    c.server.log_format = Some(cfg.log_format());
    let body =
        serde_yaml_ng::to_string(&c).map_err(|e| format!("cannot print the configuration: {e}"))?;
    Ok(format!("{HEADER}\n{body}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;

    /// Every section, every secret-bearing key, a stage list with nesting.
    const FULL: &str = r#"
server:
  http_listen_port: 3101
  log_level: debug
  grpc_listen_port: 0
positions:
  filename: /var/lib/tailtrace/positions.yaml
  sync_period: 5s
client:
  url: https://single:s1ngle-pw@loki.example/loki/api/v1/push
  tenant_id: one
  oauth2: {client_id: x, client_secret: oauth-secret-123}
clients:
  - url: https://user:url-pw-123@loki.example/loki/api/v1/push
    name: main
    batchwait: 2s
    headers:
      Authorization: Bearer header-token-123
      X-Team: blue
    basic_auth:
      username: loki
      password: basic-pw-123
    proxy_url: http://proxy:proxy-pw-123@proxy.example:3128
    tls_config:
      ca_file: /etc/ca.pem
      server_name: loki.internal
    backoff_config:
      max_period: 1m
    external_labels: {cluster: prod}
  - url: http://loki2:3100/loki/api/v1/push
    bearer_token: bearer-123
    encoding: json
    compression: none
scrape_configs:
  - job_name: pods
    pipeline_stages:
      - cri: {}
      - match:
          selector: '{app="x"}'
          stages:
            - json: {expressions: {level: lvl, msg: }}
            - labels: {level: }
      - drop: {source: [a, b], value: x}
    kubernetes_sd_configs:
      - role: pod
        api_server: https://kube:kube-url-pw@kube.example
        bearer_token: kube-bearer-123
        namespaces: {names: [a]}
        selectors: [{role: pod, label: "a=b"}]
    relabel_configs:
      - source_labels: [__meta_kubernetes_pod_name]
        target_label: pod
      - action: labelmap
        regex: __meta_kubernetes_pod_label_(.+)
  - job_name: native
    kubernetes_pods:
      basic_auth: {username: k, password: kube-basic-123}
      promote_labels: [team]
  - job_name: journal
    journal: {max_age: 12h, labels: {job: journal}}
  - job_name: files
    static_configs:
      - targets: [localhost]
        labels: {__path__: /var/log/*.log}
limits_config:
  readline_rate_enabled: true
  max_line_size: 256KB
target_config:
  sync_period: 30s
wal:
  enabled: true
  dir: /var/lib/tailtrace/wal
kubernetes:
  metadata_wait: 1m
trace_context:
  formats: [w3c]
tracing: {enabled: false}
"#;

    const SECRETS: &[&str] = &[
        "s1ngle-pw",
        "url-pw-123",
        "header-token-123",
        "basic-pw-123",
        "proxy-pw-123",
        "oauth-secret-123",
        "bearer-123",
        "kube-url-pw",
        "kube-bearer-123",
        "kube-basic-123",
    ];

    #[test]
    fn prints_yaml_with_promtail_keys_and_no_secret() {
        let cfg = load_str(FULL, "full.yaml", false).unwrap();
        cfg.validate(false).unwrap();
        let y = to_yaml(&cfg).unwrap();
        for s in SECRETS {
            assert!(!y.contains(s), "{s} printed:\n{y}");
        }
        let debug = format!("{cfg:?}");
        for s in SECRETS {
            assert!(!debug.contains(s), "{s} in Debug:\n{debug}");
        }
        for want in [
            "url: https://user:***@loki.example/loki/api/v1/push",
            "password: <secret>",
            "bearer_token: <secret>",
            "Authorization: <secret>",
            "X-Team: blue",
            "proxy_url: http://proxy:***@proxy.example:3128",
            "api_server: https://kube:***@kube.example",
            "log_level: debug",
            "log_format: logfmt",
            "sync_period: 5s",
            "max_period: 1m",
            "max_line_size: 256000",
            "batchwait: 2s",
            "target_label: pod",
            "action: labelmap",
            "separator: ;",
            "replacement: $1",
            "max_age: 12h",
        ] {
            assert!(y.contains(want), "no {want:?} in:\n{y}");
        }
        // The deprecated block is printed as the clients entry it became,
        // and unhonoured keys are left out.
        assert!(!y.contains("\nclient:") && !y.contains("oauth2"), "{y}");
        assert!(y.starts_with(HEADER), "{y}");
    }

    #[test]
    fn printed_config_loads_back_to_the_same_config() {
        let cfg = load_str(FULL, "full.yaml", false).unwrap();
        let first = to_yaml(&cfg).unwrap();
        let again = load_str(&first, "printed.yaml", false)
            .unwrap_or_else(|e| panic!("printed config does not load: {e}\n{first}"));
        again.validate(false).unwrap();
        assert_eq!(to_yaml(&again).unwrap(), first);
        // The same stages, built the same way.
        let names = |c: &Config| -> Vec<Vec<&'static str>> {
            c.scrape_configs
                .iter()
                .map(|s| s.pipeline_stages.iter().map(|st| st.name()).collect())
                .collect()
        };
        assert_eq!(names(&again), names(&cfg));
        assert_eq!(
            format!("{:?}", again.scrape_configs[0].relabel_configs),
            format!("{:?}", cfg.scrape_configs[0].relabel_configs)
        );
        assert_eq!(
            format!("{:?}", again.clients[1].headers),
            format!("{:?}", cfg.clients[1].headers)
        );
    }

    #[test]
    fn defaults_are_filled_in() {
        let cfg = load_str("clients: [{url: http://l/x}]", "d.yaml", false).unwrap();
        let y = to_yaml(&cfg).unwrap();
        for want in [
            "http_listen_port: 9080",
            "filename: /var/log/positions.yaml",
            "sync_period: 10s",
            "batchwait: 1s",
            "batchsize: 1048576",
            "timeout: 10s",
            "min_period: 500ms",
            "max_period: 5m",
            "max_retries: 10",
            "log_level: info",
            "readline_rate: 10000.0",
            "pod_logs_path: /var/log/pods",
        ] {
            assert!(y.contains(want), "no {want:?} in:\n{y}");
        }
        let back = load_str(&y, "p.yaml", false).unwrap();
        assert_eq!(to_yaml(&back).unwrap(), y);
    }
}
