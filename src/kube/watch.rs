//! Reaching the API server and watching the pods of this node.
//!
//! Owns: [`node_name`] (how this agent knows which node it runs on),
//! [`client`] (a `kube` client from [`ApiAccess`]: `kubeconfig_file`, else
//! `api_server`, else in-cluster or `KUBECONFIG`), and [`spawn_watch`]: one
//! `kube::runtime::watcher` of pods with the field selector
//! `spec.nodeName=<node>` (plus the user's label and field selectors),
//! feeding the [`PodCache`]. The watcher lists, then watches with bookmarks;
//! on `410 Gone` it lists again (the cache replaces its set, marking missing
//! pods deleted); on errors and dropped connections it retries with
//! exponential backoff. Errors are logged once per kind and counted
//! (`tailtrace_kubernetes_watch_errors_total`).
//!
//! Must never: stop retrying (the API server coming back later must be
//! picked up), or block the tailing of files already known.

use super::cache::{PodCache, PodInfo};
use crate::config::kubernetes::ApiAccess;
use crate::metrics::{labels, Metrics};
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use std::sync::Arc;
use std::time::Instant;

/// The node this agent runs on, the way Promtail finds it: `HOSTNAME`
/// (its DaemonSet sets it from `spec.nodeName`), else `NODE_NAME`, else the
/// OS hostname.
pub fn node_name() -> String {
    for var in ["HOSTNAME", "NODE_NAME"] {
        if let Ok(v) = std::env::var(var) {
            if !v.trim().is_empty() {
                return v.trim().to_string();
            }
        }
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// A client for `access`. Errors say which key or file is wrong.
pub async fn client(access: &ApiAccess) -> Result<::kube::Client, String> {
    use ::kube::config::{KubeConfigOptions, Kubeconfig};
    let mut cfg = if let Some(path) = &access.kubeconfig_file {
        let k = Kubeconfig::read_from(path)
            .map_err(|e| format!("kubeconfig_file {}: {e}", path.display()))?;
        ::kube::Config::from_custom_kubeconfig(k, &KubeConfigOptions::default())
            .await
            .map_err(|e| format!("kubeconfig_file {}: {e}", path.display()))?
    } else if let Some(url) = &access.api_server {
        let uri: hyper::Uri = url
            .expose()
            .parse()
            .map_err(|e| format!("api_server {url:?}: {e}"))?;
        ::kube::Config::new(uri)
    } else {
        ::kube::Config::infer().await.map_err(|e| {
            format!("no api_server or kubeconfig_file, and neither in-cluster config nor KUBECONFIG works: {e}")
        })?
    };
    if let Some(t) = access.bearer_token.as_ref().filter(|t| !t.is_empty()) {
        cfg.auth_info.token = Some(secrecy::SecretString::from(t.expose()));
    }
    if let Some(f) = &access.bearer_token_file {
        cfg.auth_info.token_file = Some(f.display().to_string());
    }
    if let Some(b) = &access.basic_auth {
        cfg.auth_info.username = Some(b.username.clone());
        let pw = match (&b.password, &b.password_file) {
            (Some(p), _) => Some(p.expose().to_string()),
            (None, Some(f)) => Some(
                std::fs::read_to_string(f)
                    .map_err(|e| format!("basic_auth.password_file {}: {e}", f.display()))?
                    .trim()
                    .to_string(),
            ),
            _ => None,
        };
        cfg.auth_info.password = pw.map(secrecy::SecretString::from);
    }
    let tls = &access.tls_config;
    if let Some(ca) = &tls.ca_file {
        cfg.root_cert_file = Some(ca.clone());
    }
    if let Some(c) = &tls.cert_file {
        cfg.auth_info.client_certificate = Some(c.display().to_string());
    }
    if let Some(k) = &tls.key_file {
        cfg.auth_info.client_key = Some(k.display().to_string());
    }
    if tls.insecure_skip_verify {
        cfg.accept_invalid_certs = true;
    }
    if let Some(sn) = tls.server_name.as_ref().filter(|s| !s.is_empty()) {
        cfg.tls_server_name = Some(sn.clone());
    }
    ::kube::Client::try_from(cfg).map_err(|e| format!("cannot build a Kubernetes client: {e}"))
}

/// What one watch selects.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WatchSpec {
    /// `None`: all namespaces.
    pub namespace: Option<String>,
    pub label_selector: Option<String>,
    /// Always includes `spec.nodeName=<node>`.
    pub field_selector: String,
}

/// Starts watching pods as `spec` says, feeding `cache` under `source`.
pub fn spawn_watch(
    client: ::kube::Client,
    spec: WatchSpec,
    source: usize,
    cache: Arc<PodCache>,
    metrics: Arc<Metrics>,
) -> tokio::task::JoinHandle<()> {
    use ::kube::runtime::watcher::{self, Event};
    use ::kube::runtime::WatchStreamExt;
    cache.add_source(source);
    tokio::spawn(async move {
        let api: ::kube::Api<Pod> = match &spec.namespace {
            Some(ns) => ::kube::Api::namespaced(client, ns),
            None => ::kube::Api::all(client),
        };
        let mut wc = watcher::Config::default().fields(&spec.field_selector);
        if let Some(l) = &spec.label_selector {
            wc = wc.labels(l);
        }
        let mut stream = watcher::watcher(api, wc).default_backoff().boxed();
        let mut snapshot: Vec<PodInfo> = Vec::new();
        let mut last_error: Option<String> = None;
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(ev) => {
                    if last_error.take().is_some() {
                        tracing::info!(namespace = ?spec.namespace, "kubernetes: pod watch recovered");
                    }
                    match ev {
                        Event::Init => snapshot.clear(),
                        Event::InitApply(p) => snapshot.extend(PodInfo::from_pod(&p)),
                        Event::InitDone => {
                            tracing::debug!(pods = snapshot.len(), "kubernetes: pod list complete");
                            cache.replace(source, std::mem::take(&mut snapshot), Instant::now());
                        }
                        Event::Apply(p) => {
                            if let Some(info) = PodInfo::from_pod(&p) {
                                cache.upsert(source, info);
                            }
                        }
                        Event::Delete(p) => {
                            if let Some(uid) = p.metadata.uid.as_deref() {
                                cache.delete(source, uid, Instant::now());
                            }
                        }
                    }
                }
                Err(e) => {
                    let kind = error_kind(&e);
                    metrics
                        .kubernetes_watch_errors_total
                        .get_or_create(&labels(&[("reason", kind)]))
                        .inc();
                    let text = e.to_string();
                    if last_error.as_deref() != Some(kind) {
                        tracing::warn!(namespace = ?spec.namespace, error = %text,
                            "kubernetes: pod watch failed; retrying with backoff (files already known keep being tailed)");
                        last_error = Some(kind.to_string());
                    }
                }
            }
        }
    })
}

fn error_kind(e: &::kube::runtime::watcher::Error) -> &'static str {
    use ::kube::runtime::watcher::Error;
    match e {
        Error::InitialListFailed(_) => "list",
        Error::WatchStartFailed(_) => "watch_start",
        Error::WatchError(_) => "watch",
        Error::WatchFailed(_) => "watch",
        _ => "other",
    }
}
