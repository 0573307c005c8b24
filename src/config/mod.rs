//! Promtail's configuration file, read as Promtail reads it.
//!
//! Owns: the typed configuration ([`Config`] and its parts) with Promtail's
//! key names and defaults, loading (`-config.expand-env` substitution, YAML
//! parsing), and validation. Unknown keys are errors naming the key and its
//! line; Promtail keys that tailtrace accepts but does not honour yet are
//! collected by [`Config::unhonoured`] for the one start-up warning.
//!
//! Files: this one (types and defaults), `load` (read, `-config.expand-env`,
//! parse, [`ConfigError`]), `envsubst` (drone/envsubst semantics),
//! `validate` ([`Config::validate`]), `unhonoured` ([`Config::unhonoured`]),
//! `flags` (Promtail's command line, [`Flags`]), `duration` (Go durations,
//! byte sizes), `journal` (the typed `journal` scrape config). Start-up is [`load_with_flags`].
//!
//! Must never: silently ignore a key, panic on any input, or reach outside the
//! configuration (no network, no file reads other than the config itself and
//! files it names for secrets).

pub mod duration;
pub mod envsubst;
pub mod flags;
pub mod journal;
pub mod kubernetes;
pub mod load;
pub mod trace_context;
pub mod unhonoured;
pub mod validate;

pub use flags::Flags;
pub use load::{load_file, load_str, load_with_flags, ConfigError};

use crate::pipeline::stages::StageConfig;
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// `key:` with no value (YAML null) means "the defaults", as in Go's YAML
/// decoder (the Helm chart renders `limits_config:` that way).
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Option::<T>::deserialize(d).map(Option::unwrap_or_default)
}

/// `pipeline_stages` entries are single-key maps (`- cri: {}`); serde's
/// externally tagged enums need this adapter with serde_yaml_ng (which
/// otherwise expects `!cri` tags). Recursive, so nested stage lists (`match`)
/// work too. Errors keep their line and key path.
fn stages<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<StageConfig>, D::Error> {
    serde_yaml_ng::with::singleton_map_recursive::deserialize::<Option<Vec<StageConfig>>, D>(d)
        .map(Option::unwrap_or_default)
}

/// A Promtail section tailtrace does not implement, which matters only when
/// it says `enabled: true` (`tracing`, `wal`): its other keys are ignored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Toggle {
    pub enabled: bool,
}

impl<'de> Deserialize<'de> for Toggle {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Not deny_unknown_fields: the section's other keys are ignored.
        #[derive(Deserialize)]
        struct Raw {
            #[serde(default)]
            enabled: bool,
        }
        let raw: Option<Raw> = Option::deserialize(d)?;
        Ok(Toggle {
            enabled: raw.is_some_and(|r| r.enabled),
        })
    }
}

/// `wal:` — Promtail's write-ahead log section. In tailtrace it turns on
/// the spool (see `spool/`): entries that passed the pipeline are kept on
/// disk as lz4 chunks until every client delivered them.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WalConfig {
    pub enabled: bool,
    /// The spool directory (required when enabled).
    pub dir: PathBuf,
    /// Promtail: delete segments older than this. Not honoured: segments go
    /// once every client delivered them, never before.
    #[serde(rename = "cleanSegmentsOlderThan")]
    pub clean_segments_older_than: Option<Unhonoured>,
    /// Promtail: reader polling. Not honoured: readers are woken at once.
    #[serde(rename = "watchConfig")]
    pub watch_config: Option<Unhonoured>,
    /// tailtrace: the most the spool holds on disk (default 1GiB); when
    /// full, reading pauses.
    #[serde(deserialize_with = "duration::de_bytes")]
    pub max_size: usize,
    /// tailtrace: how long a chunk waits for more entries before it is
    /// written (default 100ms); adds to the delivery latency.
    #[serde(with = "duration")]
    pub chunk_wait: Duration,
}

impl Default for WalConfig {
    fn default() -> Self {
        WalConfig {
            enabled: false,
            dir: PathBuf::new(),
            clean_segments_older_than: None,
            watch_config: None,
            max_size: 1 << 30,
            chunk_wait: Duration::from_millis(100),
        }
    }
}

/// `server.log_level` / `-log.level`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
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
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
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
///
/// After [`load_str`]/[`load_file`], the deprecated `client:` block (if any)
/// has been moved into `clients` (see [`Config::single_client`]).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    #[serde(deserialize_with = "nullable")]
    pub server: ServerConfig,
    #[serde(deserialize_with = "nullable")]
    pub positions: PositionsConfig,
    #[serde(deserialize_with = "nullable")]
    pub clients: Vec<ClientConfig>,
    /// Promtail's deprecated single-client form. `None` after loading: it is
    /// merged into `clients`.
    pub client: Option<ClientConfig>,
    #[serde(deserialize_with = "nullable")]
    pub scrape_configs: Vec<ScrapeConfig>,
    #[serde(deserialize_with = "nullable")]
    pub limits_config: LimitsConfig,
    #[serde(deserialize_with = "nullable")]
    pub target_config: TargetConfig,
    pub options: Option<Unhonoured>,
    #[serde(deserialize_with = "nullable")]
    pub tracing: Toggle,
    #[serde(deserialize_with = "nullable")]
    pub wal: WalConfig,
    /// tailtrace: how pods' log directories meet the API's metadata.
    #[serde(deserialize_with = "nullable")]
    pub kubernetes: kubernetes::KubernetesOptions,
    /// tailtrace: trace-ID detection on pod logs, pod_uid metadata.
    #[serde(deserialize_with = "nullable")]
    pub trace_context: trace_context::TraceContextConfig,
    pub global: Option<Unhonoured>,
    /// Index in `clients` of the client that came from the deprecated
    /// `client:` block (or `-client.url`); errors name it `client`.
    #[serde(skip)]
    pub single_client: Option<usize>,
    /// The file it was read from, for error messages.
    #[serde(skip)]
    pub file_name: String,
}

impl Config {
    /// The key path of `clients[i]` as the user wrote it.
    pub fn client_key(&self, i: usize) -> String {
        if self.single_client == Some(i) {
            "client".to_owned()
        } else {
            format!("clients[{i}]")
        }
    }

    /// The log level: `-log.level`, else `server.log_level`, else info.
    pub fn log_level(&self) -> LogLevel {
        self.server.log_level.unwrap_or_default()
    }

    /// The log format: `-log.format`, else `server.log_format`, else logfmt.
    pub fn log_format(&self) -> LogFormat {
        self.server.log_format.unwrap_or_default()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub disable: bool,
    pub http_listen_address: String,
    pub http_listen_port: u16,
    pub log_level: Option<LogLevel>,
    pub log_format: Option<LogFormat>,
    /// 0 (the usual "no gRPC") is fine; anything else is reported.
    pub grpc_listen_port: Option<u16>,
    pub grpc_listen_address: Option<Unhonoured>,
    pub http_listen_network: Option<Unhonoured>,
    pub grpc_listen_network: Option<Unhonoured>,
    pub http_listen_conn_limit: Option<Unhonoured>,
    pub grpc_listen_conn_limit: Option<Unhonoured>,
    pub tls_cipher_suites: Option<Unhonoured>,
    pub tls_min_version: Option<Unhonoured>,
    pub http_tls_config: Option<Unhonoured>,
    pub grpc_tls_config: Option<Unhonoured>,
    pub http_server_read_header_timeout: Option<Unhonoured>,
    pub grpc_server_max_recv_msg_size: Option<Unhonoured>,
    pub grpc_server_max_send_msg_size: Option<Unhonoured>,
    pub grpc_server_max_concurrent_streams: Option<Unhonoured>,
    pub grpc_server_max_connection_idle: Option<Unhonoured>,
    pub grpc_server_max_connection_age: Option<Unhonoured>,
    pub grpc_server_max_connection_age_grace: Option<Unhonoured>,
    pub grpc_server_keepalive_time: Option<Unhonoured>,
    pub grpc_server_keepalive_timeout: Option<Unhonoured>,
    pub grpc_server_min_time_between_pings: Option<Unhonoured>,
    pub grpc_server_ping_without_stream_allowed: Option<Unhonoured>,
    pub log_source_ips_enabled: Option<Unhonoured>,
    pub log_source_ips_header: Option<Unhonoured>,
    pub log_source_ips_regex: Option<Unhonoured>,
    pub log_request_at_info_level_enabled: Option<Unhonoured>,
    pub external_url: Option<Unhonoured>,
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
    /// Promtail's client `name` (tailtrace keys the client's spool cursors
    /// by it).
    pub name: Option<String>,
    pub url: String,
    pub tenant_id: Option<String>,
    #[serde(with = "duration")]
    pub batchwait: Duration,
    pub batchsize: usize,
    #[serde(with = "duration")]
    pub timeout: Duration,
    #[serde(deserialize_with = "nullable")]
    pub backoff_config: BackoffConfig,
    #[serde(deserialize_with = "nullable")]
    pub external_labels: BTreeMap<String, String>,
    #[serde(deserialize_with = "nullable")]
    pub headers: BTreeMap<String, String>,
    pub basic_auth: Option<BasicAuth>,
    pub bearer_token: Option<String>,
    pub bearer_token_file: Option<PathBuf>,
    pub proxy_url: Option<String>,
    #[serde(deserialize_with = "nullable")]
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
    pub no_proxy: Option<Unhonoured>,
    pub proxy_from_environment: Option<Unhonoured>,
    pub proxy_connect_header: Option<Unhonoured>,
    pub http_headers: Option<Unhonoured>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            name: None,
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
            no_proxy: None,
            proxy_from_environment: None,
            proxy_connect_header: None,
            http_headers: None,
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

#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BasicAuth {
    pub username: String,
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
    pub username_file: Option<Unhonoured>,
}

#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub server_name: Option<String>,
    pub insecure_skip_verify: bool,
    pub min_version: Option<Unhonoured>,
    pub max_version: Option<Unhonoured>,
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
    #[serde(deserialize_with = "nullable")]
    pub static_configs: Vec<StaticConfig>,
    #[serde(deserialize_with = "stages")]
    pub pipeline_stages: Vec<StageConfig>,
    pub encoding: Option<Unhonoured>,
    pub decompression: Option<Unhonoured>,
    #[serde(deserialize_with = "nullable")]
    pub kubernetes_sd_configs: Vec<kubernetes::KubernetesSdConfig>,
    /// tailtrace's native form (`kube::native`); `kubernetes_pods:` with
    /// no value means all defaults.
    #[serde(deserialize_with = "kubernetes::present")]
    pub kubernetes_pods: Option<kubernetes::KubernetesPodsConfig>,
    #[serde(deserialize_with = "nullable")]
    pub relabel_configs: Vec<crate::kube::relabel::RelabelConfig>,
    pub journal: Option<journal::JournalConfig>,
    pub syslog: Option<Unhonoured>,
    pub loki_push_api: Option<Unhonoured>,
    pub file_sd_configs: Option<Unhonoured>,
    pub consul_sd_configs: Option<Unhonoured>,
    pub consulagent_sd_configs: Option<Unhonoured>,
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
    #[serde(deserialize_with = "nullable")]
    pub targets: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub labels: BTreeMap<String, String>,
}
