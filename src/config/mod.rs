//! Promtail's configuration file, read as Promtail reads it.
//!
//! Owns: the typed configuration ([`Config`] and its parts) with Promtail's
//! key names and defaults, loading (`-config.expand-env` substitution, YAML
//! parsing), and validation. Unknown keys are errors naming the key and its
//! line; Promtail keys that tailtrace accepts but does not honour yet are
//! collected by [`Config::unhonoured`] for the one start-up warning.
//!
//! Must never: silently ignore a key, panic on any input, or reach outside the
//! configuration (no network, no file reads other than the config itself and
//! files it names for secrets).

pub mod duration;

use crate::pipeline::stages::StageConfig;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// A value Promtail accepts that tailtrace does not honour yet: parsed (any
/// shape), reported at start-up, otherwise ignored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Unhonoured;

impl<'de> Deserialize<'de> for Unhonoured {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d)?;
        Ok(Unhonoured)
    }
}

/// The whole file.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub positions: PositionsConfig,
    pub clients: Vec<ClientConfig>,
    /// Promtail's deprecated single-client form.
    pub client: Option<ClientConfig>,
    pub scrape_configs: Vec<ScrapeConfig>,
    pub limits_config: LimitsConfig,
    pub target_config: TargetConfig,
    pub options: Option<Unhonoured>,
    pub tracing: Option<Unhonoured>,
    pub wal: Option<Unhonoured>,
    pub global: Option<Unhonoured>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub disable: bool,
    pub http_listen_address: String,
    pub http_listen_port: u16,
    pub log_level: Option<String>,
    pub log_format: Option<String>,
    pub grpc_listen_port: Option<Unhonoured>,
    pub grpc_listen_address: Option<Unhonoured>,
    pub register_instrumentation: Option<Unhonoured>,
    pub http_server_read_timeout: Option<Unhonoured>,
    pub http_server_write_timeout: Option<Unhonoured>,
    pub http_server_idle_timeout: Option<Unhonoured>,
    pub graceful_shutdown_timeout: Option<Unhonoured>,
    pub http_path_prefix: Option<Unhonoured>,
    pub health_check_target: Option<Unhonoured>,
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PositionsConfig {
    pub filename: PathBuf,
    #[serde(with = "duration")]
    pub sync_period: Duration,
    pub ignore_invalid_yaml: bool,
}

impl Default for PositionsConfig {
    fn default() -> Self {
        PositionsConfig {
            filename: PathBuf::from("/var/log/positions.yaml"),
            sync_period: Duration::from_secs(10),
            ignore_invalid_yaml: false,
        }
    }
}

/// How a client encodes pushes (tailtrace's `encoding` key).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum PushEncoding {
    /// protobuf + snappy, what Promtail sends.
    #[default]
    Protobuf,
    /// JSON, compressed per `compression`.
    Json,
}

/// Body compression for JSON pushes (tailtrace's `compression` key).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    #[default]
    Gzip,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientConfig {
    pub url: String,
    pub tenant_id: Option<String>,
    #[serde(with = "duration")]
    pub batchwait: Duration,
    pub batchsize: usize,
    #[serde(with = "duration")]
    pub timeout: Duration,
    pub backoff_config: BackoffConfig,
    pub external_labels: BTreeMap<String, String>,
    pub headers: BTreeMap<String, String>,
    pub basic_auth: Option<BasicAuth>,
    pub bearer_token: Option<String>,
    pub bearer_token_file: Option<PathBuf>,
    pub proxy_url: Option<String>,
    pub tls_config: TlsConfig,
    pub drop_rate_limited_batches: bool,
    /// tailtrace: `protobuf` (default) or `json`.
    pub encoding: PushEncoding,
    /// tailtrace: compression of JSON bodies, `gzip` (default) or `none`.
    pub compression: Compression,
    pub oauth2: Option<Unhonoured>,
    pub authorization: Option<Unhonoured>,
    pub follow_redirects: Option<Unhonoured>,
    pub enable_http2: Option<Unhonoured>,
    pub stream_lag_labels: Option<Unhonoured>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            url: String::new(),
            tenant_id: None,
            batchwait: Duration::from_secs(1),
            batchsize: 1024 * 1024,
            timeout: Duration::from_secs(10),
            backoff_config: BackoffConfig::default(),
            external_labels: BTreeMap::new(),
            headers: BTreeMap::new(),
            basic_auth: None,
            bearer_token: None,
            bearer_token_file: None,
            proxy_url: None,
            tls_config: TlsConfig::default(),
            drop_rate_limited_batches: false,
            encoding: PushEncoding::Protobuf,
            compression: Compression::Gzip,
            oauth2: None,
            authorization: None,
            follow_redirects: None,
            enable_http2: None,
            stream_lag_labels: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackoffConfig {
    #[serde(with = "duration")]
    pub min_period: Duration,
    #[serde(with = "duration")]
    pub max_period: Duration,
    pub max_retries: u32,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            min_period: Duration::from_millis(500),
            max_period: Duration::from_secs(300),
            max_retries: 10,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct BasicAuth {
    pub username: String,
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub server_name: Option<String>,
    pub insecure_skip_verify: bool,
    pub min_version: Option<Unhonoured>,
    pub ca: Option<Unhonoured>,
    pub cert: Option<Unhonoured>,
    pub key: Option<Unhonoured>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    pub readline_rate_enabled: bool,
    pub readline_rate: f64,
    pub readline_burst: u32,
    pub readline_rate_drop: bool,
    pub max_streams: usize,
    /// Bytes; 0 = no limit. Accepts `256KB`-style strings.
    #[serde(deserialize_with = "duration::de_bytes")]
    pub max_line_size: usize,
    pub max_line_size_truncate: bool,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            readline_rate_enabled: false,
            readline_rate: 10000.0,
            readline_burst: 10000,
            readline_rate_drop: true,
            max_streams: 0,
            max_line_size: 0,
            max_line_size_truncate: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TargetConfig {
    #[serde(with = "duration")]
    pub sync_period: Duration,
    pub stdin: Option<Unhonoured>,
}

impl Default for TargetConfig {
    fn default() -> Self {
        TargetConfig {
            sync_period: Duration::from_secs(10),
            stdin: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ScrapeConfig {
    pub job_name: String,
    pub static_configs: Vec<StaticConfig>,
    pub pipeline_stages: Vec<StageConfig>,
    pub encoding: Option<Unhonoured>,
    pub decompression: Option<Unhonoured>,
    pub kubernetes_sd_configs: Option<Unhonoured>,
    pub relabel_configs: Option<Unhonoured>,
    pub journal: Option<Unhonoured>,
    pub syslog: Option<Unhonoured>,
    pub loki_push_api: Option<Unhonoured>,
    pub file_sd_configs: Option<Unhonoured>,
    pub consul_sd_configs: Option<Unhonoured>,
    pub docker_sd_configs: Option<Unhonoured>,
    pub windows_events: Option<Unhonoured>,
    pub gelf: Option<Unhonoured>,
    pub cloudflare: Option<Unhonoured>,
    pub kafka: Option<Unhonoured>,
    pub gcplog: Option<Unhonoured>,
    pub azure_event_hubs: Option<Unhonoured>,
    pub heroku_drain: Option<Unhonoured>,
    pub limits_config: Option<Unhonoured>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct StaticConfig {
    pub targets: Vec<String>,
    pub labels: BTreeMap<String, String>,
}
