//! The Kubernetes parts of a scrape config: Promtail's `kubernetes_sd_configs`
//! (Prometheus's Kubernetes service discovery, role `pod`) and tailtrace's
//! native `kubernetes_pods`.
//!
//! Owns: the YAML shapes and defaults ([`KubernetesSdConfig`],
//! [`NamespaceDiscovery`], [`SelectorConfig`], [`KubernetesPodsConfig`]), and
//! [`ApiAccess`], how either form reaches the API server (in cluster by the
//! service account, `kubeconfig_file`, or `api_server`).
//!
//! Must never: accept a key it does not act on without listing it for the
//! start-up warning (see `unhonoured.rs`).

use super::{BasicAuth, TlsConfig, Unhonoured};
use serde::Deserialize;
use std::path::PathBuf;

/// One `kubernetes_sd_configs` entry (Prometheus's `SDConfig`).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct KubernetesSdConfig {
    /// `pod` is what tailing files needs; other roles are accepted and
    /// reported (they yield no file targets).
    pub role: String,
    pub api_server: Option<String>,
    pub kubeconfig_file: Option<PathBuf>,
    pub namespaces: Option<NamespaceDiscovery>,
    #[serde(deserialize_with = "super::nullable")]
    pub selectors: Vec<SelectorConfig>,
    pub bearer_token: Option<String>,
    pub bearer_token_file: Option<PathBuf>,
    #[serde(deserialize_with = "super::nullable")]
    pub tls_config: TlsConfig,
    pub basic_auth: Option<BasicAuth>,
    pub attach_metadata: Option<Unhonoured>,
    pub authorization: Option<Unhonoured>,
    pub oauth2: Option<Unhonoured>,
    pub proxy_url: Option<Unhonoured>,
    pub no_proxy: Option<Unhonoured>,
    pub proxy_from_environment: Option<Unhonoured>,
    pub proxy_connect_header: Option<Unhonoured>,
    pub follow_redirects: Option<Unhonoured>,
    pub enable_http2: Option<Unhonoured>,
    pub http_headers: Option<Unhonoured>,
}

/// `namespaces:` of a `kubernetes_sd_configs` entry.
#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NamespaceDiscovery {
    /// Also the namespace the agent runs in (from the service account).
    pub own_namespace: bool,
    #[serde(deserialize_with = "super::nullable")]
    pub names: Vec<String>,
}

/// `selectors:` of a `kubernetes_sd_configs` entry.
#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SelectorConfig {
    pub role: String,
    pub label: Option<String>,
    pub field: Option<String>,
}

/// How to reach the API server: what both Kubernetes forms share.
#[derive(Debug, Clone, Default)]
pub struct ApiAccess {
    pub api_server: Option<String>,
    pub kubeconfig_file: Option<PathBuf>,
    pub bearer_token: Option<String>,
    pub bearer_token_file: Option<PathBuf>,
    pub basic_auth: Option<BasicAuth>,
    pub tls_config: TlsConfig,
}

impl KubernetesSdConfig {
    pub fn access(&self) -> ApiAccess {
        ApiAccess {
            api_server: self.api_server.clone().filter(|s| !s.is_empty()),
            kubeconfig_file: self.kubeconfig_file.clone(),
            bearer_token: self.bearer_token.clone(),
            bearer_token_file: self.bearer_token_file.clone(),
            basic_auth: self.basic_auth.clone(),
            tls_config: self.tls_config.clone(),
        }
    }
}

/// tailtrace's top-level `kubernetes:` block (an extension; Promtail has no
/// such keys): where pod log directories are, and how long a directory
/// waits for its pod's metadata before it is shipped with the labels its
/// path gives.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct KubernetesOptions {
    pub pod_logs_path: PathBuf,
    #[serde(with = "super::duration")]
    pub metadata_wait: std::time::Duration,
}

impl Default for KubernetesOptions {
    fn default() -> Self {
        KubernetesOptions {
            pod_logs_path: PathBuf::from("/var/log/pods"),
            metadata_wait: std::time::Duration::from_secs(30),
        }
    }
}
