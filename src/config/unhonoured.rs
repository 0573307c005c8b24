//! The list of Promtail settings present in the file that tailtrace accepts
//! but does not act on (or acts on only in part), for the single start-up
//! warning. Nothing a user wrote may be ignored without appearing here.
//!
//! Sources: every `Option<Unhonoured>` field that is set, `tracing`
//! with `enabled: true`, a non-zero `grpc_listen_port`, pipeline stages whose
//! [`StageConfig::unhonoured_name`] is `Some`, and partly honoured settings:
//! `limits_config.readline_rate_enabled: true` (rate limiting is not
//! implemented) and `limits_config.max_streams > 0` (not enforced). Entries
//! are bare key paths, so callers can match on them.
//!
//! Must never: list a key the user did not write, or change the config.
//!
//! [`StageConfig::unhonoured_name`]: crate::pipeline::stages::StageConfig::unhonoured_name

use super::Config;

/// Pushes `prefix.field` for each listed `Option` field that is `Some`.
macro_rules! set_fields {
    ($out:expr, $prefix:expr, $s:expr, [$($f:ident),* $(,)?]) => {
        $( if $s.$f.is_some() { $out.push(format!("{}.{}", $prefix, stringify!($f))); } )*
    };
}

impl Config {
    /// Dotted key paths (`scrape_configs[0].relabel_configs`,
    /// `scrape_configs[0].pipeline_stages[2].json`) of settings in the file
    /// that tailtrace does not honour, in file-section order.
    pub fn unhonoured(&self) -> Vec<String> {
        let mut out = Vec::new();
        let s = &self.server;
        if s.grpc_listen_port.is_some_and(|p| p != 0) {
            out.push("server.grpc_listen_port".into());
        }
        set_fields!(
            out,
            "server",
            s,
            [
                grpc_listen_address,
                register_instrumentation,
                http_server_read_timeout,
                http_server_write_timeout,
                http_server_idle_timeout,
                graceful_shutdown_timeout,
                http_path_prefix,
                health_check_target,
                enable_runtime_reload,
                http_listen_network,
                grpc_listen_network,
                http_listen_conn_limit,
                grpc_listen_conn_limit,
                tls_cipher_suites,
                tls_min_version,
                http_tls_config,
                grpc_tls_config,
                http_server_read_header_timeout,
                grpc_server_max_recv_msg_size,
                grpc_server_max_send_msg_size,
                grpc_server_max_concurrent_streams,
                grpc_server_max_connection_idle,
                grpc_server_max_connection_age,
                grpc_server_max_connection_age_grace,
                grpc_server_keepalive_time,
                grpc_server_keepalive_timeout,
                grpc_server_min_time_between_pings,
                grpc_server_ping_without_stream_allowed,
                log_source_ips_enabled,
                log_source_ips_header,
                log_source_ips_regex,
                log_request_at_info_level_enabled,
                external_url,
            ]
        );

        for (i, c) in self.clients.iter().enumerate() {
            let ck = self.client_key(i);
            set_fields!(
                out,
                ck,
                c,
                [
                    oauth2,
                    authorization,
                    follow_redirects,
                    enable_http2,
                    stream_lag_labels,
                    no_proxy,
                    proxy_from_environment,
                    proxy_connect_header,
                    http_headers,
                ]
            );
            if let Some(ba) = &c.basic_auth {
                set_fields!(out, format!("{ck}.basic_auth"), ba, [username_file]);
            }
            set_fields!(
                out,
                format!("{ck}.tls_config"),
                c.tls_config,
                [min_version, max_version, ca, cert, key]
            );
        }

        let l = &self.limits_config;
        if l.readline_rate_enabled {
            out.push("limits_config.readline_rate_enabled".into());
        }
        if l.max_streams > 0 {
            out.push("limits_config.max_streams".into());
        }
        set_fields!(out, "target_config", self.target_config, [stdin]);

        for (i, sc) in self.scrape_configs.iter().enumerate() {
            let key = format!("scrape_configs[{i}]");
            set_fields!(
                out,
                key,
                sc,
                [
                    encoding,
                    decompression,
                    syslog,
                    loki_push_api,
                    file_sd_configs,
                    consul_sd_configs,
                    consulagent_sd_configs,
                    docker_sd_configs,
                    windows_events,
                    gelf,
                    cloudflare,
                    kafka,
                    gcplog,
                    azure_event_hubs,
                    heroku_drain,
                    limits_config,
                ]
            );
            for (j, sd) in sc.kubernetes_sd_configs.iter().enumerate() {
                let sk = format!("{key}.kubernetes_sd_configs[{j}]");
                if sd.role != "pod" {
                    out.push(format!("{sk}.role"));
                }
                set_fields!(
                    out,
                    sk,
                    sd,
                    [
                        attach_metadata,
                        authorization,
                        oauth2,
                        proxy_url,
                        no_proxy,
                        proxy_from_environment,
                        proxy_connect_header,
                        follow_redirects,
                        enable_http2,
                        http_headers,
                    ]
                );
                set_fields!(
                    out,
                    format!("{sk}.tls_config"),
                    sd.tls_config,
                    [min_version, max_version, ca, cert, key]
                );
            }
            if let Some(kp) = &sc.kubernetes_pods {
                let kk = format!("{key}.kubernetes_pods");
                set_fields!(
                    out,
                    format!("{kk}.tls_config"),
                    kp.tls_config,
                    [min_version, max_version, ca, cert, key]
                );
                if let Some(ba) = &kp.basic_auth {
                    set_fields!(out, format!("{kk}.basic_auth"), ba, [username_file]);
                }
            }
            for (j, stage) in sc.pipeline_stages.iter().enumerate() {
                if let Some(name) = stage.unhonoured_name() {
                    out.push(format!("{key}.pipeline_stages[{j}].{name}"));
                }
                // Stages nested in a `match`.
                if let crate::pipeline::stages::StageConfig::Match(Some(m)) = stage {
                    for p in crate::pipeline::stages::r#match::unhonoured_nested(m) {
                        out.push(format!("{key}.pipeline_stages[{j}].match.{p}"));
                    }
                }
            }
        }

        if self.options.is_some() {
            out.push("options".into());
        }
        if self.tracing.enabled {
            out.push("tracing.enabled".into());
        }
        set_fields!(
            out,
            "wal",
            self.wal,
            [clean_segments_older_than, watch_config]
        );
        if self.global.is_some() {
            out.push("global".into());
        }
        out
    }
}
