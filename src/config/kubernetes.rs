//! The Kubernetes parts of a scrape config: Promtail's `kubernetes_sd_configs`
//! (Prometheus's Kubernetes service discovery, role `pod`) and tailtrace's
//! native `kubernetes_pods`.
//!
//! Owns: the YAML shapes and defaults ([`KubernetesSdConfig`],
//! [`NamespaceDiscovery`], [`SelectorConfig`], [`KubernetesPodsConfig`]), and
//! [`ApiAccess`], how either form reaches the API server (in cluster by the
//! service account, `kubeconfig_file`, or `api_server`).
//!
//! [`KubernetesPodsConfig::check`] holds the native form's own checks (run
//! by `validate.rs`) and [`loki_name`] the label-name sanitising both the
//! checks and the target rules (`kube::native`) use.
//!
//! Must never: accept a key it does not act on without listing it for the
//! start-up warning (see `unhonoured.rs`).

use super::{BasicAuth, Secret, SecretUrl, TlsConfig, Unhonoured};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::PathBuf;

/// One `kubernetes_sd_configs` entry (Prometheus's `SDConfig`).
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct KubernetesSdConfig {
    /// `pod` is what tailing files needs; other roles are accepted and
    /// reported (they yield no file targets).
    pub role: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_server: Option<SecretUrl>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubeconfig_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<NamespaceDiscovery>,
    #[serde(deserialize_with = "super::nullable")]
    pub selectors: Vec<SelectorConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bearer_token: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bearer_token_file: Option<PathBuf>,
    #[serde(deserialize_with = "super::nullable")]
    pub tls_config: TlsConfig,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    #[serde(skip_serializing)]
    pub attach_metadata: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub authorization: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub oauth2: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub proxy_url: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub no_proxy: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub proxy_from_environment: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub proxy_connect_header: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub follow_redirects: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub enable_http2: Option<Unhonoured>,
    #[serde(skip_serializing)]
    pub http_headers: Option<Unhonoured>,
}

/// `namespaces:` of a `kubernetes_sd_configs` entry.
#[derive(Debug, Clone, Deserialize, Serialize, Default, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NamespaceDiscovery {
    /// Also the namespace the agent runs in (from the service account).
    pub own_namespace: bool,
    #[serde(deserialize_with = "super::nullable")]
    pub names: Vec<String>,
}

/// `selectors:` of a `kubernetes_sd_configs` entry.
#[derive(Debug, Clone, Deserialize, Serialize, Default, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SelectorConfig {
    pub role: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// How to reach the API server: what both Kubernetes forms share.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApiAccess {
    pub api_server: Option<SecretUrl>,
    pub kubeconfig_file: Option<PathBuf>,
    pub bearer_token: Option<Secret>,
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
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
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

/// tailtrace's native `kubernetes_pods:` block of a scrape config (an
/// extension): this node's pods' files with ready-made labels (see
/// `kube::native`). The API keys mean what they mean in
/// `kubernetes_sd_configs` (role `pod` implied).
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct KubernetesPodsConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_server: Option<SecretUrl>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubeconfig_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<NamespaceDiscovery>,
    /// Like `kubernetes_sd_configs` selectors; `role` may be left out
    /// (it can only be `pod`).
    #[serde(deserialize_with = "super::nullable")]
    pub selectors: Vec<SelectorConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bearer_token: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bearer_token_file: Option<PathBuf>,
    #[serde(deserialize_with = "super::nullable")]
    pub tls_config: TlsConfig,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    /// Default: the top-level `kubernetes.pod_logs_path`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_logs_path: Option<PathBuf>,
    /// Pod labels copied to stream labels (names sanitised, [`loki_name`]).
    #[serde(deserialize_with = "super::nullable")]
    pub promote_labels: Vec<String>,
    /// Pod annotations attached as structured metadata (names sanitised).
    #[serde(deserialize_with = "super::nullable")]
    pub annotations_as_metadata: Vec<String>,
    /// Where the pipelines `tailtrace.io/pipeline` names are. Default:
    /// `pipelines` next to the config file; relative paths are relative to
    /// the config file's directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipelines_dir: Option<PathBuf>,
}

/// For `kubernetes_pods:`: present with no value (YAML null) means the
/// defaults, not absent.
pub(super) fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Option::<T>::deserialize(d).map(|o| Some(o.unwrap_or_default()))
}

/// Stream labels the native form sets itself.
pub const NATIVE_LABELS: &[&str] = &["namespace", "pod", "container", "node_name", "app", "job"];

/// Structured metadata the native form sets itself.
pub const NATIVE_METADATA: &[&str] = &["pod_uid"];

/// A Loki label (or structured metadata) name for `name`: every character
/// outside `[a-zA-Z0-9_]` becomes `_`, and a leading digit gets a `_` in
/// front (`app.kubernetes.io/name` → `app_kubernetes_io_name`, `9x` → `_9x`).
pub fn loki_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

impl KubernetesPodsConfig {
    /// The same watch, as a `kubernetes_sd_configs` role `pod` entry.
    pub fn as_sd(&self) -> KubernetesSdConfig {
        KubernetesSdConfig {
            role: "pod".into(),
            api_server: self.api_server.clone(),
            kubeconfig_file: self.kubeconfig_file.clone(),
            namespaces: self.namespaces.clone(),
            selectors: self
                .selectors
                .iter()
                .map(|s| SelectorConfig {
                    role: "pod".into(),
                    ..s.clone()
                })
                .collect(),
            bearer_token: self.bearer_token.clone(),
            bearer_token_file: self.bearer_token_file.clone(),
            tls_config: self.tls_config.clone(),
            basic_auth: self.basic_auth.clone(),
            ..KubernetesSdConfig::default()
        }
    }

    /// The checks YAML types cannot express. Errors: `(key under
    /// kubernetes_pods, message)`.
    pub fn check(&self) -> Result<(), (String, String)> {
        for (j, s) in self.selectors.iter().enumerate() {
            if !s.role.is_empty() && s.role != "pod" {
                return Err((
                    format!("selectors[{j}].role"),
                    format!(
                        "{:?}: kubernetes_pods watches pods; leave role out or write pod",
                        s.role
                    ),
                ));
            }
        }
        if self.bearer_token.is_some() && self.bearer_token_file.is_some() {
            return Err((
                "bearer_token".into(),
                "at most one of bearer_token and bearer_token_file may be set".into(),
            ));
        }
        check_names(
            "promote_labels",
            &self.promote_labels,
            NATIVE_LABELS,
            "label",
        )?;
        check_names(
            "annotations_as_metadata",
            &self.annotations_as_metadata,
            NATIVE_METADATA,
            "structured metadata",
        )
    }
}

/// Entries of an allow-list: non-empty, and their sanitised names neither
/// one tailtrace sets itself nor another entry's.
fn check_names(
    key: &str,
    names: &[String],
    reserved: &[&str],
    what: &str,
) -> Result<(), (String, String)> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (j, n) in names.iter().enumerate() {
        let k = format!("{key}[{j}]");
        if n.is_empty() {
            return Err((k, "must not be empty".into()));
        }
        let l = loki_name(n);
        if reserved.contains(&l.as_str()) {
            return Err((
                k,
                format!("{n:?} would become the {what} {l:?}, which tailtrace sets itself"),
            ));
        }
        if let Some(i) = seen.insert(l.clone(), j) {
            return Err((
                k,
                format!("{n:?} and {key}[{i}] both become the {what} {l:?}"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::load_str;

    const NATIVE: &str = r#"
clients: [{url: "http://loki:3100/loki/api/v1/push"}]
scrape_configs:
  - job_name: pods
    kubernetes_pods:
      namespaces: {names: [shop]}
      selectors: [{label: "tier=web"}]
      pod_logs_path: /host/pods
      promote_labels: [team, app.kubernetes.io/part-of]
      annotations_as_metadata: [example.com/owner]
      pipelines_dir: /etc/tailtrace/pipelines
  - job_name: defaults
    kubernetes_pods:
"#;

    #[test]
    fn kubernetes_pods_loads_and_null_means_defaults() {
        let cfg = load_str(NATIVE, "t.yaml", false).unwrap();
        cfg.validate(false).unwrap();
        let kp = cfg.scrape_configs[0].kubernetes_pods.clone().unwrap();
        assert_eq!(kp.promote_labels, ["team", "app.kubernetes.io/part-of"]);
        assert_eq!(kp.annotations_as_metadata, ["example.com/owner"]);
        assert_eq!(
            kp.pod_logs_path.as_deref(),
            Some(std::path::Path::new("/host/pods"))
        );
        let sd = kp.as_sd();
        assert_eq!(sd.role, "pod");
        assert_eq!(sd.selectors[0].role, "pod");
        assert_eq!(sd.namespaces.unwrap().names, ["shop"]);
        let d = cfg.scrape_configs[1].kubernetes_pods.clone();
        assert!(d.is_some_and(|d| d.promote_labels.is_empty() && d.pipelines_dir.is_none()));
        assert!(cfg
            .scrape_configs
            .iter()
            .all(|s| s.kubernetes_sd_configs.is_empty()));
        assert!(cfg.unhonoured().is_empty());
    }

    #[test]
    fn unknown_key_is_refused_by_name() {
        let text = NATIVE.replace("promote_labels", "promote_label");
        let e = load_str(&text, "t.yaml", false).unwrap_err().to_string();
        assert!(e.contains("promote_label") && e.contains("t.yaml"), "{e}");
    }

    #[test]
    fn checks_name_the_key() {
        let cases = [
            (
                "promote_labels: [team, app]",
                "scrape_configs[1].kubernetes_pods.promote_labels[1]",
            ),
            (
                "promote_labels: [a.b, a-b]",
                "scrape_configs[1].kubernetes_pods.promote_labels[1]",
            ),
            (
                "promote_labels: ['']",
                "scrape_configs[1].kubernetes_pods.promote_labels[0]",
            ),
            (
                "annotations_as_metadata: [pod/uid]",
                "scrape_configs[1].kubernetes_pods.annotations_as_metadata[0]",
            ),
            (
                "selectors: [{role: node}]",
                "scrape_configs[1].kubernetes_pods.selectors[0].role",
            ),
            (
                "bearer_token: a, bearer_token_file: /b",
                "scrape_configs[1].kubernetes_pods.bearer_token",
            ),
        ];
        for (block, key) in cases {
            let text = NATIVE.replace(
                "  - job_name: defaults\n    kubernetes_pods:\n",
                &format!("  - job_name: defaults\n    kubernetes_pods: {{{block}}}\n"),
            );
            let e = load_str(&text, "t.yaml", false)
                .unwrap()
                .validate(false)
                .unwrap_err();
            assert!(e.to_string().contains(key), "{block}: {e}");
        }
        let mixed = format!("{NATIVE}    kubernetes_sd_configs: [{{role: pod}}]\n");
        let e = load_str(&mixed, "t.yaml", false)
            .unwrap()
            .validate(false)
            .unwrap_err();
        assert!(
            e.to_string().contains("scrape_configs[1].kubernetes_pods"),
            "{e}"
        );
    }

    #[test]
    fn loki_names() {
        use super::loki_name;
        assert_eq!(
            loki_name("app.kubernetes.io/name"),
            "app_kubernetes_io_name"
        );
        assert_eq!(loki_name("9lives"), "_9lives");
        assert_eq!(loki_name("Team_A"), "Team_A");
        assert_eq!(loki_name("ünï"), "_n_");
    }
}
