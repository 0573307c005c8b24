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
//! byte sizes), `journal` (the typed `journal` scrape config), `server`
//! and `client` (those sections' types), `secret` (the masked types every
//! credential is held in), `print` (`-print-config-*`: the effective config
//! as YAML, secrets masked). Start-up is [`load_with_flags`].
//!
//! Must never: silently ignore a key, panic on any input, or reach outside the
//! configuration (no network, no file reads other than the config itself and
//! files it names for secrets).

pub mod client;
pub mod duration;
pub mod envsubst;
pub mod flags;
pub mod journal;
pub mod kubernetes;
pub mod load;
pub mod print;
pub mod secret;
pub mod server;
pub mod trace_context;
pub mod unhonoured;
pub mod validate;

pub use client::{BackoffConfig, BasicAuth, ClientConfig, Compression, PushEncoding, TlsConfig};
pub use flags::Flags;
pub use load::{load_file, load_str, load_with_flags, ConfigError};
pub use secret::{Headers, Secret, SecretUrl};
pub use server::{LogFormat, LogLevel, ServerConfig};

use crate::pipeline::stages::StageConfig;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
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
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
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
/// disk in chunks (lz4-compressed while the clients lag behind) until every
/// client delivered them.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WalConfig {
    pub enabled: bool,
    /// The spool directory (required when enabled).
    pub dir: PathBuf,
    /// Promtail: delete segments older than this. Not honoured: segments go
    /// once every client delivered them, never before.
    #[serde(rename = "cleanSegmentsOlderThan")]
    #[serde(skip_serializing)]
    pub clean_segments_older_than: Option<Unhonoured>,
    /// Promtail: reader polling. Not honoured: readers are woken at once.
    #[serde(rename = "watchConfig")]
    #[serde(skip_serializing)]
    pub watch_config: Option<Unhonoured>,
    /// tailtrace: the most the spool holds on disk (default 1GiB); when
    /// full, reading pauses.
    #[serde(deserialize_with = "duration::de_bytes")]
    pub max_size: usize,
    /// tailtrace: how long a chunk waits for more entries before it is
    /// written (default 100ms); adds to the delivery latency.
    #[serde(with = "duration")]
    pub chunk_wait: Duration,
    /// tailtrace: when chunks are lz4-compressed (default `auto`: once the
    /// clients lag behind by a sixteenth of `max_size`).
    pub compression: SpoolCompression,
}

/// When spool chunks are compressed (tailtrace's `wal.compression`).
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum SpoolCompression {
    /// lz4 while the clients lag behind by a sixteenth of `max_size` or
    /// more (an outage filling the disk); stored as is while they keep up
    /// (the chunk is deleted soon, compressing it would buy nothing).
    #[default]
    Auto,
    /// Every chunk lz4-compressed.
    Lz4,
    /// No chunk compressed.
    None,
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
            compression: SpoolCompression::Auto,
        }
    }
}

/// A value Promtail accepts that tailtrace does not honour yet: parsed (any
/// shape), reported at start-up, otherwise ignored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Unhonoured;

/// Never printed: every `Option<Unhonoured>` field is `skip_serializing`
/// (what was written is not kept). Serialises as null if ever reached.
impl Serialize for Unhonoured {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_unit()
    }
}

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
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
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
    #[serde(skip_serializing)]
    pub client: Option<ClientConfig>,
    #[serde(deserialize_with = "nullable")]
    pub scrape_configs: Vec<ScrapeConfig>,
    #[serde(deserialize_with = "nullable")]
    pub limits_config: LimitsConfig,
    #[serde(deserialize_with = "nullable")]
    pub target_config: TargetConfig,
    #[serde(skip_serializing)]
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
    #[serde(skip_serializing)]
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

#[derive(Debug, Clone, Deserialize, Serialize)]
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

#[derive(Debug, Clone, Deserialize, Serialize)]
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

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TargetConfig {
    #[serde(with = "duration")]
    pub sync_period: Duration,
    #[serde(skip_serializing)]
    pub stdin: Option<Unhonoured>,
    /// tailtrace: directories a symlink matched by a `__path__` glob may
    /// lead into besides the glob's own directory tree. Default: the
    /// container runtimes' own log directories ([`RUNTIME_LOG_ROOTS`]), so
    /// `/var/log/containers/*.log` (links into `/var/log/pods`) and
    /// cri-dockerd's `/var/log/pods` (links into `/var/lib/docker/containers`)
    /// work as under Promtail; `[]` (or null) allows none.
    #[serde(deserialize_with = "nullable")]
    pub follow_symlinks_into: Vec<PathBuf>,
}

impl Default for TargetConfig {
    fn default() -> Self {
        TargetConfig {
            sync_period: Duration::from_secs(10),
            stdin: None,
            follow_symlinks_into: RUNTIME_LOG_ROOTS.iter().map(PathBuf::from).collect(),
        }
    }
}

/// Where the kubelet's and the container runtimes' log symlinks lead: the
/// default of `target_config.follow_symlinks_into`. They hold nothing but
/// container logs, so following a link into them cannot ship a host file.
pub const RUNTIME_LOG_ROOTS: [&str; 2] = ["/var/log/pods", "/var/lib/docker/containers"];

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ScrapeConfig {
    pub job_name: String,
    #[serde(deserialize_with = "nullable")]
    pub static_configs: Vec<StaticConfig>,
    #[serde(deserialize_with = "stages", skip_serializing)]
    pub pipeline_stages: Vec<StageConfig>,
    /// `pipeline_stages` as written (after `-config.expand-env`), for
    /// `-print-config-*`: Promtail keeps stages as untyped YAML and prints
    /// them as given; so does tailtrace. Filled by [`load_str`].
    #[serde(rename = "pipeline_stages", skip_deserializing)]
    pub pipeline_stages_yaml: Vec<serde_yaml_ng::Value>,
    #[serde(skip_serializing)]
    pub encoding: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub decompression: Option<Unhonoured>,
    #[serde(deserialize_with = "nullable")]
    pub kubernetes_sd_configs: Vec<kubernetes::KubernetesSdConfig>,
    /// tailtrace's native form (`kube::native`); `kubernetes_pods:` with
    /// no value means all defaults.
    #[serde(deserialize_with = "kubernetes::present")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubernetes_pods: Option<kubernetes::KubernetesPodsConfig>,
    #[serde(deserialize_with = "nullable")]
    pub relabel_configs: Vec<crate::kube::relabel::RelabelConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub journal: Option<journal::JournalConfig>,
    #[serde(skip_serializing)]
    pub syslog: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub loki_push_api: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub file_sd_configs: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub consul_sd_configs: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub consulagent_sd_configs: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub docker_sd_configs: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub windows_events: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub gelf: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub cloudflare: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub kafka: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub gcplog: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub azure_event_hubs: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub heroku_drain: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub limits_config: Option<Unhonoured>,
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct StaticConfig {
    #[serde(deserialize_with = "nullable")]
    pub targets: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub labels: BTreeMap<String, String>,
}
