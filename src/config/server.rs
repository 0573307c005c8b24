//! The `server:` section: the HTTP listener (`/metrics`, `/ready`,
//! `/healthz`), the log level and format, and Promtail's server keys
//! tailtrace accepts but does not honour (reported at start-up, not printed
//! by `-print-config-*`).
//!
//! Must never: act on a key it lists as unhonoured.

use super::Unhonoured;
use serde::{Deserialize, Serialize};

/// `server.log_level` / `-log.level`.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Debug,
    #[default]
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub fn parse(s: &str) -> Result<LogLevel, String> {
        match s {
            "debug" => Ok(LogLevel::Debug),
            "info" => Ok(LogLevel::Info),
            "warn" => Ok(LogLevel::Warn),
            "error" => Ok(LogLevel::Error),
            _ => Err(format!(
                "unrecognized log level {s:?}: expected debug, info, warn or error"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

/// `server.log_format` / `-log.format`.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Logfmt,
    Json,
}

impl LogFormat {
    pub fn parse(s: &str) -> Result<LogFormat, String> {
        match s {
            "logfmt" => Ok(LogFormat::Logfmt),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!(
                "unrecognized log format {s:?}: expected logfmt or json"
            )),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub disable: bool,
    pub http_listen_address: String,
    pub http_listen_port: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_level: Option<LogLevel>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    /// 0 (the usual "no gRPC") is fine; anything else is reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc_listen_port: Option<u16>,
    #[serde(skip_serializing)]
    pub grpc_listen_address: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub http_listen_network: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub grpc_listen_network: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub http_listen_conn_limit: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub grpc_listen_conn_limit: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub tls_cipher_suites: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub tls_min_version: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub http_tls_config: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub grpc_tls_config: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub http_server_read_header_timeout: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub grpc_server_max_recv_msg_size: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub grpc_server_max_send_msg_size: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub grpc_server_max_concurrent_streams: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub grpc_server_max_connection_idle: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub grpc_server_max_connection_age: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub grpc_server_max_connection_age_grace: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub grpc_server_keepalive_time: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub grpc_server_keepalive_timeout: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub grpc_server_min_time_between_pings: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub grpc_server_ping_without_stream_allowed: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub log_source_ips_enabled: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub log_source_ips_header: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub log_source_ips_regex: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub log_request_at_info_level_enabled: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub external_url: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub register_instrumentation: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub http_server_read_timeout: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub http_server_write_timeout: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub http_server_idle_timeout: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub graceful_shutdown_timeout: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub http_path_prefix: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub health_check_target: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub enable_runtime_reload: Option<Unhonoured>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            disable: false,
            http_listen_address: String::new(),
            http_listen_port: 9080,
            log_level: None,
            log_format: None,
            grpc_listen_port: None,
            grpc_listen_address: None,
            http_listen_network: None,
            grpc_listen_network: None,
            http_listen_conn_limit: None,
            grpc_listen_conn_limit: None,
            tls_cipher_suites: None,
            tls_min_version: None,
            http_tls_config: None,
            grpc_tls_config: None,
            http_server_read_header_timeout: None,
            grpc_server_max_recv_msg_size: None,
            grpc_server_max_send_msg_size: None,
            grpc_server_max_concurrent_streams: None,
            grpc_server_max_connection_idle: None,
            grpc_server_max_connection_age: None,
            grpc_server_max_connection_age_grace: None,
            grpc_server_keepalive_time: None,
            grpc_server_keepalive_timeout: None,
            grpc_server_min_time_between_pings: None,
            grpc_server_ping_without_stream_allowed: None,
            log_source_ips_enabled: None,
            log_source_ips_header: None,
            log_source_ips_regex: None,
            log_request_at_info_level_enabled: None,
            external_url: None,
            register_instrumentation: None,
            http_server_read_timeout: None,
            http_server_write_timeout: None,
            http_server_idle_timeout: None,
            graceful_shutdown_timeout: None,
            http_path_prefix: None,
            health_check_target: None,
            enable_runtime_reload: None,
        }
    }
}
