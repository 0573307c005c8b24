//! Pod metadata: what the Kubernetes API says about the pods whose logs
//! this node holds, and the file targets Promtail's configuration makes of
//! them.
//!
//! Files: [`relabel`] (Prometheus relabeling: `relabel_configs`), [`meta`]
//! (a pod as Promtail's `kubernetes_sd` role `pod` shows it: the
//! `__meta_kubernetes_*` labels, one target per container and port).
//!
//! Must never: call the API per line or per file (one watch per node), or
//! let a slow or broken API server stop the tailing of files it already
//! knows.

pub mod cache;
#[cfg(test)]
mod helm_tests;
pub mod meta;
pub mod native;
pub mod relabel;
pub mod start;
pub mod targets;
pub mod watch;
