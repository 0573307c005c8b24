//! A pod as Promtail's `kubernetes_sd_configs` role `pod` shows it: the
//! targets and `__meta_kubernetes_*` labels that Prometheus's pod discovery
//! (`discovery/kubernetes/pod.go`, which Promtail runs unchanged) makes of one
//! Pod object.
//!
//! Owns: [`pod_targets`], the pure translation of a Pod into its label sets,
//! one per container port (or one per container without ports), regular
//! containers first and then init containers, each in spec order. Every set
//! carries the pod-level labels (namespace, name, IP, UID, node, host IP,
//! ready, phase, controller, sanitised pod labels and annotations) merged with
//! its own container labels and `__address__`. Also owns the label-name
//! sanitising rule (`strutil.SanitizeLabelName`: every character outside
//! `[a-zA-Z0-9_]` becomes `_`).
//!
//! Matches pod.go where it is subtle:
//! - a pod without `status.podIP` has no targets at all (Prometheus sends an
//!   empty group for it, which removes whatever the pod had before);
//! - labels pod.go always sets keep their empty value when the API leaves the
//!   field out (`pod_phase`, `pod_node_name`, `pod_host_ip`, `pod_uid`,
//!   `pod_container_id`, `pod_container_image`, `pod_container_port_name`,
//!   `pod_container_port_protocol`); Prometheus treats an empty value as an
//!   absent label, and so must relabeling;
//! - ephemeral containers are not targets; init containers (sidecars with
//!   `restartPolicy: Always` included) are, with `pod_container_init="true"`,
//!   and their IDs come from `initContainerStatuses` only;
//! - `__address__` is `host:port` joined as Go's `net.JoinHostPort` does
//!   (bracketed when the pod IP contains a `:`), and the bare pod IP, never
//!   bracketed, for a container without ports.
//!
//! Must never: call the API, read anything but the Pod it is given, or depend
//! on map order for its output (where two label or annotation names sanitise
//! to the same label, pod.go's winner is random; here the first name in byte
//! order wins).

use k8s_openapi::api::core::v1::{Container, ContainerStatus, Pod};
use std::collections::BTreeMap;

/// The prefix of every label this module makes, except `__address__`.
const PREFIX: &str = "__meta_kubernetes_";

/// Prometheus's `model.AddressLabel`.
const ADDRESS: &str = "__address__";

/// The targets of `pod`: one label set per container and port, with the
/// `__meta_kubernetes_*` labels and `__address__`, in the order pod.go makes
/// them. Empty for a pod without an IP.
pub fn pod_targets(pod: &Pod) -> Vec<BTreeMap<String, String>> {
    let status = pod.status.as_ref();
    let pod_ip = status.and_then(|s| s.pod_ip.as_deref()).unwrap_or("");
    // pod.go: "PodIP can be empty when a pod is starting or has been evicted."
    if pod_ip.is_empty() {
        return Vec::new();
    }
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };

    let shared = pod_labels(pod, pod_ip);
    let statuses = status.and_then(|s| s.container_statuses.as_deref());
    let init_statuses = status.and_then(|s| s.init_container_statuses.as_deref());

    let regular = spec.containers.iter().map(|c| (c, false, statuses));
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| (c, true, init_statuses));

    let mut targets = Vec::new();
    for (container, is_init, statuses) in regular.chain(init) {
        let id = container_id(statuses.unwrap_or_default(), &container.name);
        let ports = container.ports.as_deref().unwrap_or_default();
        if ports.is_empty() {
            // No port: the address is the pod IP alone (a relabel rule may add one).
            let mut target = container_target(&shared, container, id, is_init);
            target.insert(ADDRESS.to_owned(), pod_ip.to_owned());
            targets.push(target);
            continue;
        }
        for port in ports {
            // Go's `uint64(int32)` sign-extends, as `as` does here; the API
            // rejects negative ports, so this only keeps the two in step.
            let number = (port.container_port as u64).to_string();
            let mut target = container_target(&shared, container, id, is_init);
            target.insert(ADDRESS.to_owned(), join_host_port(pod_ip, &number));
            target.insert(meta("pod_container_port_number"), number);
            target.insert(
                meta("pod_container_port_name"),
                port.name.clone().unwrap_or_default(),
            );
            target.insert(
                meta("pod_container_port_protocol"),
                port.protocol.clone().unwrap_or_default(),
            );
            targets.push(target);
        }
    }
    targets
}

/// The labels every target of `pod` shares (pod.go's `podLabels` plus the
/// namespace, i.e. the target group's labels).
fn pod_labels(pod: &Pod, pod_ip: &str) -> BTreeMap<String, String> {
    let metadata = &pod.metadata;
    let status = pod.status.as_ref();
    let text = |v: Option<&String>| v.cloned().unwrap_or_default();

    let mut labels = BTreeMap::new();
    labels.insert(meta("namespace"), text(metadata.namespace.as_ref()));
    labels.insert(meta("pod_name"), text(metadata.name.as_ref()));
    labels.insert(meta("pod_ip"), pod_ip.to_owned());
    labels.insert(meta("pod_ready"), ready(pod));
    labels.insert(
        meta("pod_phase"),
        text(status.and_then(|s| s.phase.as_ref())),
    );
    labels.insert(
        meta("pod_node_name"),
        text(pod.spec.as_ref().and_then(|s| s.node_name.as_ref())),
    );
    labels.insert(
        meta("pod_host_ip"),
        text(status.and_then(|s| s.host_ip.as_ref())),
    );
    labels.insert(meta("pod_uid"), text(metadata.uid.as_ref()));

    add_sanitised(&mut labels, "pod_label", metadata.labels.as_ref());
    add_sanitised(&mut labels, "pod_annotation", metadata.annotations.as_ref());

    // The controller is the first owner with `controller: true`; an empty
    // kind or name is left out rather than set empty.
    let controller = metadata
        .owner_references
        .iter()
        .flatten()
        .find(|owner| owner.controller == Some(true));
    if let Some(owner) = controller {
        if !owner.kind.is_empty() {
            labels.insert(meta("pod_controller_kind"), owner.kind.clone());
        }
        if !owner.name.is_empty() {
            labels.insert(meta("pod_controller_name"), owner.name.clone());
        }
    }
    labels
}

/// Adds `<family>_<name>` = value and `<family>present_<name>` = `"true"` for
/// each entry of `source`, names sanitised. On a clash of sanitised names the
/// first raw name in byte order keeps its value.
fn add_sanitised(
    labels: &mut BTreeMap<String, String>,
    family: &str,
    source: Option<&BTreeMap<String, String>>,
) {
    for (key, value) in source.into_iter().flatten() {
        let name = sanitize_label_name(key);
        labels
            .entry(format!("{PREFIX}{family}_{name}"))
            .or_insert_with(|| value.clone());
        labels.insert(format!("{PREFIX}{family}present_{name}"), "true".to_owned());
    }
}

/// The pod-level labels plus those of one container (no port labels yet).
fn container_target(
    shared: &BTreeMap<String, String>,
    container: &Container,
    id: &str,
    is_init: bool,
) -> BTreeMap<String, String> {
    let mut target = shared.clone();
    target.insert(meta("pod_container_name"), container.name.clone());
    target.insert(meta("pod_container_id"), id.to_owned());
    target.insert(
        meta("pod_container_image"),
        container.image.clone().unwrap_or_default(),
    );
    target.insert(meta("pod_container_init"), is_init.to_string());
    target
}

/// The `containerID` of the first status named `name` (e.g.
/// `containerd://<hex>`), or `""` when there is none yet.
fn container_id<'a>(statuses: &'a [ContainerStatus], name: &str) -> &'a str {
    statuses
        .iter()
        .find(|s| s.name == name)
        .and_then(|s| s.container_id.as_deref())
        .unwrap_or("")
}

/// The `Ready` condition's status, lowercased (`true`, `false`, `unknown`),
/// or `unknown` when the pod has no such condition.
fn ready(pod: &Pod) -> String {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .find(|c| c.type_ == "Ready")
        .map_or_else(|| "unknown".to_owned(), |c| c.status.to_lowercase())
}

/// Prometheus's `strutil.SanitizeLabelName`: every character that is not an
/// ASCII letter, digit or `_` becomes one `_` (a leading digit is kept: the
/// result always follows a known prefix).
fn sanitize_label_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Go's `net.JoinHostPort`: `[host]:port` when the host contains a `:`.
fn join_host_port(host: &str, port: &str) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn meta(name: &str) -> String {
    format!("{PREFIX}{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Pod {
        let text = match name {
            "deployment" => include_str!("../../tests/fixtures/pods/deployment.json"),
            "static" => include_str!("../../tests/fixtures/pods/static.json"),
            "init-containers" => include_str!("../../tests/fixtures/pods/init-containers.json"),
            "pending-no-ip" => include_str!("../../tests/fixtures/pods/pending-no-ip.json"),
            "daemonset" => include_str!("../../tests/fixtures/pods/daemonset.json"),
            other => panic!("no fixture {other}"),
        };
        serde_json::from_str::<Pod>(text).unwrap()
    }

    /// A label map from literal pairs; panics on a repeated name so a typo in
    /// an expectation cannot hide a label.
    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (k, v) in pairs {
            assert!(
                out.insert(k.to_string(), v.to_string()).is_none(),
                "duplicate {k}"
            );
        }
        out
    }

    /// `shared` plus `own`, where `own` may not redefine a shared label.
    fn target(shared: &[(&str, &str)], own: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut all = shared.to_vec();
        all.extend_from_slice(own);
        map(&all)
    }

    fn pod_from(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).unwrap()
    }

    /// A minimal running pod with one portless container; `patch` is merged
    /// into it at the top level of `metadata`, `spec` and `status`.
    fn minimal(patch: serde_json::Value) -> Pod {
        let mut pod = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p", "namespace": "ns", "uid": "u-1"},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "img:1"}]},
            "status": {"phase": "Running", "podIP": "10.1.2.3", "hostIP": "10.0.0.1"}
        });
        for part in ["metadata", "spec", "status"] {
            if let Some(fields) = patch.get(part).and_then(|v| v.as_object()) {
                for (k, v) in fields {
                    pod[part][k] = v.clone();
                }
            }
        }
        pod_from(pod)
    }

    #[test]
    fn deployment_pod_full_label_sets() {
        // Worked out from pod.go: one group label set (podLabels + namespace)
        // merged into each target; `checkout` has two ports, so two targets,
        // then `cache-warmer` without ports gets the bare pod IP.
        let shared = [
            ("__meta_kubernetes_namespace", "shop"),
            ("__meta_kubernetes_pod_name", "checkout-7d9f8b6c5d-x2k4p"),
            ("__meta_kubernetes_pod_ip", "10.244.3.17"),
            ("__meta_kubernetes_pod_ready", "true"),
            ("__meta_kubernetes_pod_phase", "Running"),
            ("__meta_kubernetes_pod_node_name", "worker-b-3"),
            ("__meta_kubernetes_pod_host_ip", "10.0.12.7"),
            (
                "__meta_kubernetes_pod_uid",
                "5c2f1e7a-9b3d-4e8f-a6c1-7d2b9e4f0a13",
            ),
            (
                "__meta_kubernetes_pod_label_app_kubernetes_io_name",
                "checkout",
            ),
            (
                "__meta_kubernetes_pod_labelpresent_app_kubernetes_io_name",
                "true",
            ),
            (
                "__meta_kubernetes_pod_label_pod_template_hash",
                "7d9f8b6c5d",
            ),
            (
                "__meta_kubernetes_pod_labelpresent_pod_template_hash",
                "true",
            ),
            (
                "__meta_kubernetes_pod_annotation_kubectl_kubernetes_io_restartedAt",
                "2026-05-02T09:14:27Z",
            ),
            (
                "__meta_kubernetes_pod_annotationpresent_kubectl_kubernetes_io_restartedAt",
                "true",
            ),
            (
                "__meta_kubernetes_pod_annotation_prometheus_io_port",
                "9090",
            ),
            (
                "__meta_kubernetes_pod_annotationpresent_prometheus_io_port",
                "true",
            ),
            (
                "__meta_kubernetes_pod_annotation_prometheus_io_scrape",
                "true",
            ),
            (
                "__meta_kubernetes_pod_annotationpresent_prometheus_io_scrape",
                "true",
            ),
            ("__meta_kubernetes_pod_controller_kind", "ReplicaSet"),
            (
                "__meta_kubernetes_pod_controller_name",
                "checkout-7d9f8b6c5d",
            ),
        ];
        let checkout_id =
            "containerd://9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b";
        let expected = vec![
            target(
                &shared,
                &[
                    ("__address__", "10.244.3.17:8080"),
                    ("__meta_kubernetes_pod_container_name", "checkout"),
                    ("__meta_kubernetes_pod_container_id", checkout_id),
                    (
                        "__meta_kubernetes_pod_container_image",
                        "registry.example.com/shop/checkout:2.14.1",
                    ),
                    ("__meta_kubernetes_pod_container_init", "false"),
                    ("__meta_kubernetes_pod_container_port_number", "8080"),
                    ("__meta_kubernetes_pod_container_port_name", "http"),
                    ("__meta_kubernetes_pod_container_port_protocol", "TCP"),
                ],
            ),
            target(
                &shared,
                &[
                    ("__address__", "10.244.3.17:9090"),
                    ("__meta_kubernetes_pod_container_name", "checkout"),
                    ("__meta_kubernetes_pod_container_id", checkout_id),
                    (
                        "__meta_kubernetes_pod_container_image",
                        "registry.example.com/shop/checkout:2.14.1",
                    ),
                    ("__meta_kubernetes_pod_container_init", "false"),
                    ("__meta_kubernetes_pod_container_port_number", "9090"),
                    ("__meta_kubernetes_pod_container_port_name", "metrics"),
                    ("__meta_kubernetes_pod_container_port_protocol", "TCP"),
                ],
            ),
            target(
                &shared,
                &[
                    ("__address__", "10.244.3.17"),
                    ("__meta_kubernetes_pod_container_name", "cache-warmer"),
                    (
                        "__meta_kubernetes_pod_container_id",
                        "containerd://1f0c8e5b7a2d4c6e9b3a5d7f1e2c4b6a8d0f3e5c7b9a1d2e4f6a8c0b2d4e6f8a",
                    ),
                    (
                        "__meta_kubernetes_pod_container_image",
                        "registry.example.com/shop/cache-warmer:0.9.3",
                    ),
                    ("__meta_kubernetes_pod_container_init", "false"),
                ],
            ),
        ];
        assert_eq!(pod_targets(&fixture("deployment")), expected);
    }

    #[test]
    fn daemonset_pod_ipv6_unready_and_no_container_id_yet() {
        // Dual-stack with the IPv6 address primary: `podIP` is what counts,
        // bracketed by the host:port join. The container is still being
        // created, so its status has no containerID: the label is empty. The
        // second port has no name: empty port name, protocol as given.
        let shared = [
            ("__meta_kubernetes_namespace", "logging"),
            ("__meta_kubernetes_pod_name", "tailtrace-9kq7z"),
            ("__meta_kubernetes_pod_ip", "fd00:10:244:2::1a"),
            ("__meta_kubernetes_pod_ready", "false"),
            ("__meta_kubernetes_pod_phase", "Pending"),
            ("__meta_kubernetes_pod_node_name", "worker-c-2"),
            ("__meta_kubernetes_pod_host_ip", "fd00:10:0:12::9"),
            (
                "__meta_kubernetes_pod_uid",
                "d1c2b3a4-9f8e-4d7c-b6a5-0e1f2a3b4c5d",
            ),
            (
                "__meta_kubernetes_pod_label_app_kubernetes_io_name",
                "tailtrace",
            ),
            (
                "__meta_kubernetes_pod_labelpresent_app_kubernetes_io_name",
                "true",
            ),
            (
                "__meta_kubernetes_pod_label_controller_revision_hash",
                "6b8d5f7c9",
            ),
            (
                "__meta_kubernetes_pod_labelpresent_controller_revision_hash",
                "true",
            ),
            ("__meta_kubernetes_pod_label_pod_template_generation", "3"),
            (
                "__meta_kubernetes_pod_labelpresent_pod_template_generation",
                "true",
            ),
            (
                "__meta_kubernetes_pod_annotation_kubectl_kubernetes_io_default_container",
                "tailtrace",
            ),
            (
                "__meta_kubernetes_pod_annotationpresent_kubectl_kubernetes_io_default_container",
                "true",
            ),
            ("__meta_kubernetes_pod_controller_kind", "DaemonSet"),
            ("__meta_kubernetes_pod_controller_name", "tailtrace"),
        ];
        let container = [
            ("__meta_kubernetes_pod_container_name", "tailtrace"),
            ("__meta_kubernetes_pod_container_id", ""),
            (
                "__meta_kubernetes_pod_container_image",
                "ghcr.io/example/tailtrace:0.1.0",
            ),
            ("__meta_kubernetes_pod_container_init", "false"),
        ];
        let mut first = container.to_vec();
        first.extend([
            ("__address__", "[fd00:10:244:2::1a]:3101"),
            ("__meta_kubernetes_pod_container_port_number", "3101"),
            ("__meta_kubernetes_pod_container_port_name", "http-metrics"),
            ("__meta_kubernetes_pod_container_port_protocol", "TCP"),
        ]);
        let mut second = container.to_vec();
        second.extend([
            ("__address__", "[fd00:10:244:2::1a]:8125"),
            ("__meta_kubernetes_pod_container_port_number", "8125"),
            ("__meta_kubernetes_pod_container_port_name", ""),
            ("__meta_kubernetes_pod_container_port_protocol", "UDP"),
        ]);
        assert_eq!(
            pod_targets(&fixture("daemonset")),
            vec![target(&shared, &first), target(&shared, &second)]
        );
    }

    #[test]
    fn static_pod_has_no_controller_labels() {
        // No owner reference: no controller labels at all (not empty ones).
        // hostNetwork: pod IP = host IP; no ports: one target, bare IP.
        let expected = map(&[
            ("__address__", "10.0.10.4"),
            ("__meta_kubernetes_namespace", "kube-system"),
            ("__meta_kubernetes_pod_name", "etcd-cp-1"),
            ("__meta_kubernetes_pod_ip", "10.0.10.4"),
            ("__meta_kubernetes_pod_ready", "true"),
            ("__meta_kubernetes_pod_phase", "Running"),
            ("__meta_kubernetes_pod_node_name", "cp-1"),
            ("__meta_kubernetes_pod_host_ip", "10.0.10.4"),
            ("__meta_kubernetes_pod_uid", "e4a1c9d2-6b7f-4a3e-8c5d-1f2e3a4b5c6d"),
            ("__meta_kubernetes_pod_label_component", "etcd"),
            ("__meta_kubernetes_pod_labelpresent_component", "true"),
            ("__meta_kubernetes_pod_label_tier", "control-plane"),
            ("__meta_kubernetes_pod_labelpresent_tier", "true"),
            (
                "__meta_kubernetes_pod_annotation_kubeadm_kubernetes_io_etcd_advertise_client_urls",
                "https://10.0.10.4:2379",
            ),
            (
                "__meta_kubernetes_pod_annotationpresent_kubeadm_kubernetes_io_etcd_advertise_client_urls",
                "true",
            ),
            (
                "__meta_kubernetes_pod_annotation_kubernetes_io_config_hash",
                "3b1f9c0d2e7a4c58b6d1e0f9a8c7b6d5",
            ),
            ("__meta_kubernetes_pod_annotationpresent_kubernetes_io_config_hash", "true"),
            (
                "__meta_kubernetes_pod_annotation_kubernetes_io_config_mirror",
                "3b1f9c0d2e7a4c58b6d1e0f9a8c7b6d5",
            ),
            ("__meta_kubernetes_pod_annotationpresent_kubernetes_io_config_mirror", "true"),
            (
                "__meta_kubernetes_pod_annotation_kubernetes_io_config_seen",
                "2026-04-28T06:02:11.482913377Z",
            ),
            ("__meta_kubernetes_pod_annotationpresent_kubernetes_io_config_seen", "true"),
            ("__meta_kubernetes_pod_annotation_kubernetes_io_config_source", "file"),
            ("__meta_kubernetes_pod_annotationpresent_kubernetes_io_config_source", "true"),
            ("__meta_kubernetes_pod_container_name", "etcd"),
            (
                "__meta_kubernetes_pod_container_id",
                "containerd://c0ffee00d15ea5e0123456789abcdef0123456789abcdef0123456789abcdef",
            ),
            ("__meta_kubernetes_pod_container_image", "registry.k8s.io/etcd:3.5.21-0"),
            ("__meta_kubernetes_pod_container_init", "false"),
        ]);
        assert_eq!(pod_targets(&fixture("static")), vec![expected]);
    }

    #[test]
    fn init_containers_follow_regular_ones_with_their_own_statuses() {
        // Order: every regular container first, then the init containers in
        // spec order. The native sidecar (`restartPolicy: Always`) is still
        // an init container. IDs come from `initContainerStatuses`.
        let shared = [
            ("__meta_kubernetes_namespace", "db"),
            ("__meta_kubernetes_pod_name", "postgres-0"),
            ("__meta_kubernetes_pod_ip", "10.244.1.42"),
            ("__meta_kubernetes_pod_ready", "true"),
            ("__meta_kubernetes_pod_phase", "Running"),
            ("__meta_kubernetes_pod_node_name", "worker-a-1"),
            ("__meta_kubernetes_pod_host_ip", "10.0.11.5"),
            (
                "__meta_kubernetes_pod_uid",
                "2a9c7e51-0d3b-4f6a-8e2c-5b1d9f7a3c60",
            ),
            (
                "__meta_kubernetes_pod_label_app_kubernetes_io_name",
                "postgresql",
            ),
            (
                "__meta_kubernetes_pod_labelpresent_app_kubernetes_io_name",
                "true",
            ),
            (
                "__meta_kubernetes_pod_label_apps_kubernetes_io_pod_index",
                "0",
            ),
            (
                "__meta_kubernetes_pod_labelpresent_apps_kubernetes_io_pod_index",
                "true",
            ),
            (
                "__meta_kubernetes_pod_label_controller_revision_hash",
                "postgres-5f8c7d9b4",
            ),
            (
                "__meta_kubernetes_pod_labelpresent_controller_revision_hash",
                "true",
            ),
            (
                "__meta_kubernetes_pod_label_statefulset_kubernetes_io_pod_name",
                "postgres-0",
            ),
            (
                "__meta_kubernetes_pod_labelpresent_statefulset_kubernetes_io_pod_name",
                "true",
            ),
            ("__meta_kubernetes_pod_controller_kind", "StatefulSet"),
            ("__meta_kubernetes_pod_controller_name", "postgres"),
        ];
        let expected = vec![
            target(
                &shared,
                &[
                    ("__address__", "10.244.1.42:5432"),
                    ("__meta_kubernetes_pod_container_name", "postgres"),
                    (
                        "__meta_kubernetes_pod_container_id",
                        "containerd://5d4c3b2a19f8e7d6c5b4a3928170f6e5d4c3b2a19f8e7d6c5b4a3928170f6e5d",
                    ),
                    ("__meta_kubernetes_pod_container_image", "docker.io/library/postgres:17.4"),
                    ("__meta_kubernetes_pod_container_init", "false"),
                    ("__meta_kubernetes_pod_container_port_number", "5432"),
                    ("__meta_kubernetes_pod_container_port_name", "tcp-postgresql"),
                    ("__meta_kubernetes_pod_container_port_protocol", "TCP"),
                ],
            ),
            target(
                &shared,
                &[
                    ("__address__", "10.244.1.42"),
                    ("__meta_kubernetes_pod_container_name", "init-chmod-data"),
                    (
                        "__meta_kubernetes_pod_container_id",
                        "containerd://0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9",
                    ),
                    ("__meta_kubernetes_pod_container_image", "docker.io/library/busybox:1.37"),
                    ("__meta_kubernetes_pod_container_init", "true"),
                ],
            ),
            target(
                &shared,
                &[
                    ("__address__", "10.244.1.42:9187"),
                    ("__meta_kubernetes_pod_container_name", "metrics"),
                    (
                        "__meta_kubernetes_pod_container_id",
                        "containerd://e8f7d6c5b4a39281706f5e4d3c2b1a09e8f7d6c5b4a39281706f5e4d3c2b1a09",
                    ),
                    (
                        "__meta_kubernetes_pod_container_image",
                        "quay.io/prometheuscommunity/postgres-exporter:v0.17.1",
                    ),
                    ("__meta_kubernetes_pod_container_init", "true"),
                    ("__meta_kubernetes_pod_container_port_number", "9187"),
                    ("__meta_kubernetes_pod_container_port_name", "http-metrics"),
                    ("__meta_kubernetes_pod_container_port_protocol", "TCP"),
                ],
            ),
        ];
        assert_eq!(pod_targets(&fixture("init-containers")), expected);
    }

    #[test]
    fn pod_without_ip_has_no_targets() {
        assert_eq!(pod_targets(&fixture("pending-no-ip")), Vec::new());
        // An empty string counts as no IP, as does a missing status.
        assert!(pod_targets(&minimal(serde_json::json!({"status": {"podIP": ""}}))).is_empty());
        let mut no_status = minimal(serde_json::json!({}));
        no_status.status = None;
        assert!(pod_targets(&no_status).is_empty());
    }

    #[test]
    fn ready_is_the_lowercased_ready_condition_or_unknown() {
        let ready_of = |conditions: serde_json::Value| {
            let pod = minimal(serde_json::json!({"status": {"conditions": conditions}}));
            pod_targets(&pod)[0]["__meta_kubernetes_pod_ready"].clone()
        };
        assert_eq!(ready_of(serde_json::json!([])), "unknown");
        assert_eq!(
            ready_of(serde_json::json!([{"type": "PodScheduled", "status": "True"}])),
            "unknown"
        );
        assert_eq!(
            ready_of(serde_json::json!([{"type": "Ready", "status": "Unknown"}])),
            "unknown"
        );
        assert_eq!(
            ready_of(serde_json::json!([
                {"type": "ContainersReady", "status": "True"},
                {"type": "Ready", "status": "False"}
            ])),
            "false"
        );
        // No conditions field at all.
        let pod = minimal(serde_json::json!({}));
        assert_eq!(
            pod_targets(&pod)[0]["__meta_kubernetes_pod_ready"],
            "unknown"
        );
    }

    #[test]
    fn controller_is_the_first_owner_marked_controller() {
        let pod = minimal(serde_json::json!({"metadata": {"ownerReferences": [
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "not-me", "uid": "1"},
            {"apiVersion": "v1", "kind": "Secret", "name": "nor-me", "uid": "2", "controller": false},
            {"apiVersion": "batch/v1", "kind": "Job", "name": "backup-29114", "uid": "3", "controller": true},
            {"apiVersion": "v1", "kind": "Node", "name": "too-late", "uid": "4", "controller": true}
        ]}}));
        let t = &pod_targets(&pod)[0];
        assert_eq!(t["__meta_kubernetes_pod_controller_kind"], "Job");
        assert_eq!(t["__meta_kubernetes_pod_controller_name"], "backup-29114");

        // An empty kind or name is left out, not set empty.
        let pod = minimal(serde_json::json!({"metadata": {"ownerReferences": [
            {"apiVersion": "v1", "kind": "Thing", "name": "", "uid": "1", "controller": true}
        ]}}));
        let t = &pod_targets(&pod)[0];
        assert_eq!(t["__meta_kubernetes_pod_controller_kind"], "Thing");
        assert!(!t.contains_key("__meta_kubernetes_pod_controller_name"));

        // Owners but none a controller: no controller labels.
        let pod = minimal(serde_json::json!({"metadata": {"ownerReferences": [
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "1"}
        ]}}));
        let t = &pod_targets(&pod)[0];
        assert!(!t.contains_key("__meta_kubernetes_pod_controller_kind"));
        assert!(!t.contains_key("__meta_kubernetes_pod_controller_name"));
    }

    #[test]
    fn label_names_are_sanitised_like_strutil() {
        // Cases from Prometheus's strutil tests: one `_` per character.
        assert_eq!(sanitize_label_name("fooClientLABEL"), "fooClientLABEL");
        assert_eq!(
            sanitize_label_name("barClient.LABEL$$##"),
            "barClient_LABEL____"
        );
        assert_eq!(sanitize_label_name("123label"), "123label");
        assert_eq!(sanitize_label_name("test-ñ-ü-label"), "test_____label");
        assert_eq!(
            sanitize_label_name("namespace:metric_name"),
            "namespace_metric_name"
        );
        assert_eq!(sanitize_label_name(""), "");

        // Values are never touched, only names.
        let pod = minimal(serde_json::json!({"metadata": {
            "labels": {"example.com/tier": "a/b.c"},
            "annotations": {"ß-note": "ünïcode value"}
        }}));
        let t = &pod_targets(&pod)[0];
        assert_eq!(t["__meta_kubernetes_pod_label_example_com_tier"], "a/b.c");
        assert_eq!(
            t["__meta_kubernetes_pod_labelpresent_example_com_tier"],
            "true"
        );
        assert_eq!(
            t["__meta_kubernetes_pod_annotation___note"],
            "ünïcode value"
        );
        assert_eq!(t["__meta_kubernetes_pod_annotationpresent___note"], "true");
    }

    #[test]
    fn clashing_sanitised_names_keep_the_first_raw_name_in_byte_order() {
        // `.` < `/` < `_` in byte order; pod.go's winner would be random.
        let pod = minimal(serde_json::json!({"metadata": {"labels": {
            "a_b": "underscore", "a/b": "slash", "a.b": "dot"
        }}}));
        let t = &pod_targets(&pod)[0];
        assert_eq!(t["__meta_kubernetes_pod_label_a_b"], "dot");
        assert_eq!(t["__meta_kubernetes_pod_labelpresent_a_b"], "true");
        assert_eq!(
            t.keys().filter(|k| k.contains("_label")).count(),
            2,
            "{t:?}"
        );
    }

    #[test]
    fn ephemeral_containers_are_not_targets() {
        let pod = minimal(serde_json::json!({
            "spec": {"ephemeralContainers": [{"name": "debugger", "image": "busybox"}]},
            "status": {"ephemeralContainerStatuses": [{
                "name": "debugger", "image": "busybox", "imageID": "", "ready": false,
                "restartCount": 0, "containerID": "containerd://eph"
            }]}
        }));
        let targets = pod_targets(&pod);
        assert_eq!(targets.len(), 1);
        assert_eq!(targets[0]["__meta_kubernetes_pod_container_name"], "c");
    }

    #[test]
    fn container_ids_come_from_the_matching_status_list_only() {
        // A regular container named like an init container's status (and
        // the other way round) does not borrow its ID.
        let pod = minimal(serde_json::json!({
            "spec": {
                "containers": [{"name": "main", "image": "m:1"}],
                "initContainers": [{"name": "setup", "image": "s:1"}]
            },
            "status": {
                "containerStatuses": [
                    {"name": "setup", "image": "s:1", "imageID": "", "ready": true,
                     "restartCount": 0, "containerID": "cri-o://wrong-list"}
                ],
                "initContainerStatuses": [
                    {"name": "main", "image": "m:1", "imageID": "", "ready": true,
                     "restartCount": 0, "containerID": "cri-o://also-wrong"}
                ]
            }
        }));
        let targets = pod_targets(&pod);
        assert_eq!(targets.len(), 2);
        assert_eq!(targets[0]["__meta_kubernetes_pod_container_name"], "main");
        assert_eq!(targets[0]["__meta_kubernetes_pod_container_id"], "");
        assert_eq!(targets[1]["__meta_kubernetes_pod_container_name"], "setup");
        assert_eq!(targets[1]["__meta_kubernetes_pod_container_init"], "true");
        assert_eq!(targets[1]["__meta_kubernetes_pod_container_id"], "");
    }

    #[test]
    fn addresses_join_like_go() {
        assert_eq!(join_host_port("10.1.2.3", "80"), "10.1.2.3:80");
        assert_eq!(join_host_port("fd00::1", "80"), "[fd00::1]:80");
        assert_eq!(
            join_host_port("::ffff:10.1.2.3", "80"),
            "[::ffff:10.1.2.3]:80"
        );

        // Without ports the pod IP is the address as is, IPv6 unbracketed.
        let pod = minimal(serde_json::json!({"status": {"podIP": "fd00:10:244::7"}}));
        assert_eq!(pod_targets(&pod)[0]["__address__"], "fd00:10:244::7");
    }

    #[test]
    fn missing_optional_fields_give_empty_values_not_missing_labels() {
        // As the API server would never send it (it defaults `protocol` to
        // TCP), but pod.go copies whatever is there: an empty string.
        let pod = minimal(serde_json::json!({
            "metadata": {"uid": null},
            "spec": {"nodeName": null, "containers": [{"name": "c", "ports": [{"containerPort": 80}]}]},
            "status": {"phase": null, "hostIP": null}
        }));
        let t = &pod_targets(&pod)[0];
        for name in [
            "__meta_kubernetes_pod_uid",
            "__meta_kubernetes_pod_node_name",
            "__meta_kubernetes_pod_phase",
            "__meta_kubernetes_pod_host_ip",
            "__meta_kubernetes_pod_container_image",
            "__meta_kubernetes_pod_container_id",
            "__meta_kubernetes_pod_container_port_name",
            "__meta_kubernetes_pod_container_port_protocol",
        ] {
            assert_eq!(t.get(name).map(String::as_str), Some(""), "{name}");
        }
        assert_eq!(t["__address__"], "10.1.2.3:80");
        assert_eq!(t["__meta_kubernetes_pod_container_port_number"], "80");
    }

    #[test]
    fn negative_port_formats_as_go_uint64_conversion() {
        // Unreachable through API validation; kept identical anyway.
        let pod = minimal(serde_json::json!({
            "spec": {"containers": [{"name": "c", "ports": [{"containerPort": -1}]}]}
        }));
        let t = &pod_targets(&pod)[0];
        assert_eq!(
            t["__meta_kubernetes_pod_container_port_number"],
            "18446744073709551615"
        );
    }
}
