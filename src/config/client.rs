//! One `clients:` entry: where and how to push (Promtail's client keys plus
//! tailtrace's `encoding` and `compression`), its retry policy, and the
//! credentials it sends (`basic_auth`, `bearer_token`, URL userinfo,
//! credential-like `headers`), all held in the masked types of
//! [`super::secret`].
//!
//! Must never: hold a credential in a type that prints it.

use super::secret::{Headers, Secret, SecretUrl};
use super::{duration, nullable, Unhonoured};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// How a client encodes pushes (tailtrace's `encoding` key).
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum PushEncoding {
    /// protobuf + snappy, what Promtail sends.
    #[default]
    Protobuf,
    /// JSON, compressed per `compression`.
    Json,
}

/// Body compression for JSON pushes (tailtrace's `compression` key).
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    #[default]
    Gzip,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientConfig {
    /// Promtail's client `name` (tailtrace keys the client's spool cursors
    /// by it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// May carry `user:password@` (sent as basic auth; printed `***`).
    pub url: SecretUrl,
    #[serde(skip_serializing_if = "Option::is_none")]
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
    /// Credential-like values are masked when printed.
    #[serde(deserialize_with = "nullable")]
    pub headers: Headers,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bearer_token: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bearer_token_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_url: Option<SecretUrl>,
    #[serde(deserialize_with = "nullable")]
    pub tls_config: TlsConfig,
    pub drop_rate_limited_batches: bool,
    /// tailtrace: `protobuf` (default) or `json`.
    pub encoding: PushEncoding,
    /// tailtrace: compression of JSON bodies, `gzip` (default) or `none`.
    pub compression: Compression,
    #[serde(skip_serializing)]
    pub oauth2: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub authorization: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub follow_redirects: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub enable_http2: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub stream_lag_labels: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub no_proxy: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub proxy_from_environment: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub proxy_connect_header: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub http_headers: Option<Unhonoured>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            name: None,
            url: SecretUrl::default(),
            tenant_id: None,
            batchwait: Duration::from_secs(1),
            batchsize: 1024 * 1024,
            timeout: Duration::from_secs(10),
            backoff_config: BackoffConfig::default(),
            external_labels: BTreeMap::new(),
            headers: Headers::default(),
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

#[derive(Debug, Clone, Deserialize, Serialize)]
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

#[derive(Debug, Clone, Deserialize, Serialize, Default, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BasicAuth {
    pub username: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    #[serde(skip_serializing)]
    pub username_file: Option<Unhonoured>,
}

#[derive(Debug, Clone, Deserialize, Serialize, Default, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    pub insecure_skip_verify: bool,
    #[serde(skip_serializing)]
    pub min_version: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub max_version: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub ca: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub cert: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub key: Option<Unhonoured>,
}
