//! Tests of the fake Kubernetes API server (tests/support/kube_api.rs) itself,
//! driven by the real `kube` client and `kube::runtime::watcher` exactly as
//! the agent uses them, so other integration tests can trust the fake.
//!
//! Every wait has a generous give-up bound; nothing asserts on timing.

#[path = "support/kube_api.rs"]
mod kube_api;

use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, WatchEvent, WatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client, Config, ResourceExt};
use kube_api::{pod_json, KubeApi, LabelReq, RequestKind};
use serde_json::json;
use tokio::sync::mpsc;

/// Give-up bound for every wait (not a timing assertion).
const GIVE_UP: Duration = Duration::from_secs(60);

fn client(k: &KubeApi) -> Client {
    let config = Config::new(k.url().parse().unwrap());
    Client::try_from(config).unwrap()
}

fn pod(ns: &str, name: &str, node: &str) -> serde_json::Value {
    pod_json(
        ns,
        name,
        &format!("uid-{ns}-{name}"),
        node,
        &[("app", "web")],
        &["main"],
    )
}

/// One watcher output, with the pod reduced to what the tests look at.
#[derive(Debug, Clone)]
enum Ev {
    Init,
    InitApply(Box<Pod>),
    InitDone,
    Apply(Box<Pod>),
    Delete(Box<Pod>),
    Error(String),
}

impl Ev {
    fn short(&self) -> String {
        let key = |p: &Pod| format!("{}/{}", p.namespace().unwrap_or_default(), p.name_any());
        match self {
            Ev::Init => "Init".into(),
            Ev::InitApply(p) => format!("InitApply({})", key(p)),
            Ev::InitDone => "InitDone".into(),
            Ev::Apply(p) => format!("Apply({})", key(p)),
            Ev::Delete(p) => format!("Delete({})", key(p)),
            Ev::Error(e) => format!("Error({e})"),
        }
    }
}

/// A `watcher(..).default_backoff()` running on the test's runtime, its
/// outputs forwarded to a channel. Aborted on Drop.
struct Watching {
    rx: mpsc::UnboundedReceiver<Ev>,
    task: tokio::task::JoinHandle<()>,
    seen: Vec<String>,
}

impl Watching {
    fn start(api: Api<Pod>, wc: watcher::Config) -> Watching {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut stream = watcher::watcher(api, wc).default_backoff().boxed();
            while let Some(item) = stream.next().await {
                let ev = match item {
                    Ok(Event::Init) => Ev::Init,
                    Ok(Event::InitApply(p)) => Ev::InitApply(Box::new(p)),
                    Ok(Event::InitDone) => Ev::InitDone,
                    Ok(Event::Apply(p)) => Ev::Apply(Box::new(p)),
                    Ok(Event::Delete(p)) => Ev::Delete(Box::new(p)),
                    Err(e) => Ev::Error(e.to_string()),
                };
                if tx.send(ev).is_err() {
                    break;
                }
            }
        });
        Watching {
            rx,
            task,
            seen: Vec::new(),
        }
    }

    async fn next(&mut self) -> Ev {
        match tokio::time::timeout(GIVE_UP, self.rx.recv()).await {
            Ok(Some(ev)) => {
                eprintln!("watcher: {}", ev.short());
                self.seen.push(ev.short());
                ev
            }
            Ok(None) => panic!("watcher stream ended; seen so far: {:?}", self.seen),
            Err(_) => panic!(
                "no watcher event in {GIVE_UP:?}; seen so far: {:?}",
                self.seen
            ),
        }
    }

    /// Events up to and including the first that satisfies `f`.
    async fn until(&mut self, f: impl Fn(&Ev) -> bool) -> Vec<Ev> {
        let mut out = Vec::new();
        loop {
            let ev = self.next().await;
            let done = f(&ev);
            out.push(ev);
            if done {
                return out;
            }
        }
    }

    /// Reads the initial Init .. InitDone and returns the listed pods' names.
    async fn initial(&mut self) -> Vec<String> {
        let evs = self.until(|e| matches!(e, Ev::InitDone)).await;
        assert!(matches!(evs.first(), Some(Ev::Init)), "{:?}", shorts(&evs));
        listed(&evs)
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn shorts(evs: &[Ev]) -> Vec<String> {
    evs.iter().map(Ev::short).collect()
}

/// Names of the InitApply pods after the last Init in `evs`.
fn listed(evs: &[Ev]) -> Vec<String> {
    let start = evs.iter().rposition(|e| matches!(e, Ev::Init)).unwrap_or(0);
    evs[start..]
        .iter()
        .filter_map(|e| match e {
            Ev::InitApply(p) => Some(p.name_any()),
            _ => None,
        })
        .collect()
}

fn errors(evs: &[Ev]) -> Vec<String> {
    evs.iter()
        .filter_map(|e| match e {
            Ev::Error(s) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

fn is_apply_of(e: &Ev, name: &str) -> bool {
    matches!(e, Ev::Apply(p) if p.name_any() == name)
}

async fn wait_open_watches(k: &KubeApi, n: usize) {
    assert!(
        k.wait_for(GIVE_UP, |k| k.open_watches() == n).await,
        "expected {n} open watches, have {}; requests: {:#?}",
        k.open_watches(),
        k.requests()
    );
}

fn node_a() -> watcher::Config {
    watcher::Config::default().fields("spec.nodeName=node-a")
}

#[tokio::test]
async fn list_then_watch_sees_pods_added_before_and_after() {
    let k = KubeApi::start();
    k.add_pod(pod("default", "web-5d8f7c9b4-x2x9z", "node-a"));
    let mut w = Watching::start(Api::all(client(&k)), node_a());
    assert_eq!(w.initial().await, vec!["web-5d8f7c9b4-x2x9z"]);
    wait_open_watches(&k, 1).await;

    let rv = k.add_pod(pod("kube-system", "coredns-6f6b679f8f-qwert", "node-a"));
    let evs = w
        .until(|e| is_apply_of(e, "coredns-6f6b679f8f-qwert"))
        .await;
    assert_eq!(evs.len(), 1, "{:?}", shorts(&evs));
    let Ev::Apply(p) = &evs[0] else {
        unreachable!()
    };
    assert_eq!(p.resource_version(), Some(rv.to_string()));
    assert_eq!(p.namespace().as_deref(), Some("kube-system"));
    let owner = &p.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("ReplicaSet", "coredns-6f6b679f8f")
    );
    let status = p.status.as_ref().unwrap();
    let cs = &status.container_statuses.as_ref().unwrap()[0];
    assert!(cs
        .container_id
        .as_deref()
        .unwrap()
        .starts_with("containerd://"));

    // A MODIFIED arrives as Apply with the new content.
    let mut changed = k.pod("kube-system", "coredns-6f6b679f8f-qwert").unwrap();
    changed["metadata"]["labels"]["extra"] = json!("yes");
    k.update_pod(changed);
    let evs = w
        .until(|e| is_apply_of(e, "coredns-6f6b679f8f-qwert"))
        .await;
    let Some(Ev::Apply(p)) = evs.last() else {
        unreachable!()
    };
    assert_eq!(p.labels().get("extra").map(String::as_str), Some("yes"));

    // What kube sent.
    let log = k.request_log();
    for r in k.requests() {
        eprintln!("request: {r}");
    }
    let list = &log[0];
    assert_eq!(list.kind, RequestKind::List);
    assert_eq!(list.path, "/api/v1/pods");
    assert_eq!(list.param("fieldSelector"), Some("spec.nodeName=node-a"));
    assert_eq!(list.param("limit"), Some("500"));
    assert_eq!(list.param("resourceVersion"), None);
    assert_eq!(list.param("labelSelector"), None);
    assert_eq!(list.status, 200);
    let watch = &log[1];
    assert_eq!(watch.kind, RequestKind::Watch);
    assert_eq!(watch.path, "/api/v1/pods");
    assert_eq!(watch.param("watch"), Some("true"));
    assert_eq!(watch.param("resourceVersion"), Some("1001"));
    assert_eq!(watch.param("timeoutSeconds"), Some("290"));
    assert_eq!(watch.param("allowWatchBookmarks"), Some("true"));
    assert_eq!(watch.param("fieldSelector"), Some("spec.nodeName=node-a"));
    assert_eq!(watch.param("sendInitialEvents"), None);
    assert_eq!(watch.param("resourceVersionMatch"), None);
    assert_eq!((k.lists(), k.watches()), (1, 1));
}

#[tokio::test]
async fn field_selector_on_node_name_filters_list_and_watch() {
    let k = KubeApi::start();
    k.add_pod(pod("default", "a-1", "node-a"));
    k.add_pod(pod("default", "b-1", "node-b"));
    let mut pending = pod("default", "p-1", "");
    pending["spec"].as_object_mut().unwrap().remove("nodeName");
    pending["status"] = json!({"phase": "Pending"});
    k.add_pod(pending);

    let mut w = Watching::start(Api::all(client(&k)), node_a());
    assert_eq!(w.initial().await, vec!["a-1"]);
    wait_open_watches(&k, 1).await;

    // Another node's pod is not sent; this node's is.
    k.add_pod(pod("default", "b-2", "node-b"));
    k.add_pod(pod("default", "a-2", "node-a"));
    let evs = w.until(|e| matches!(e, Ev::Apply(_))).await;
    assert!(is_apply_of(&evs[0], "a-2"), "{:?}", shorts(&evs));

    // Scheduling the pending pod onto node-a: it enters the selector, so the
    // watch sees it (ADDED).
    k.update_pod(pod("default", "p-1", "node-a"));
    let evs = w.until(|e| matches!(e, Ev::Apply(_))).await;
    assert!(is_apply_of(&evs[0], "p-1"), "{:?}", shorts(&evs));

    // `!=` and a second term, through a plain list.
    let api: Api<Pod> = Api::all(client(&k));
    let lp = ListParams::default().fields("spec.nodeName!=node-a,metadata.namespace=default");
    let names: Vec<String> = api
        .list(&lp)
        .await
        .unwrap()
        .items
        .iter()
        .map(|p| p.name_any())
        .collect();
    assert_eq!(names, vec!["b-1", "b-2"]);

    // An unsupported field is a 400, as from a real API server.
    let err = api
        .list(&ListParams::default().fields("spec.nope=x"))
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 400);
            assert!(s.message.contains("field label not supported"), "{s:?}");
        }
        e => panic!("{e:?}"),
    }
}

#[tokio::test]
async fn namespaced_api_with_label_selector() {
    let k = KubeApi::start();
    let labelled = |ns: &str, name: &str, labels: &[(&str, &str)]| {
        pod_json(ns, name, &format!("uid-{name}"), "node-a", labels, &["c"])
    };
    k.add_pod(labelled(
        "shop",
        "web-1",
        &[("app", "web"), ("tier", "front")],
    ));
    k.add_pod(labelled("shop", "db-1", &[("app", "web"), ("tier", "db")]));
    k.add_pod(labelled("shop", "worker-1", &[("app", "worker")]));
    k.add_pod(labelled("other", "web-2", &[("app", "web")]));

    let wc = node_a().labels("app in (web,api),tier!=db");
    let mut w = Watching::start(Api::namespaced(client(&k), "shop"), wc);
    assert_eq!(w.initial().await, vec!["web-1"]);
    wait_open_watches(&k, 1).await;
    let log = k.request_log();
    assert_eq!(log[0].path, "/api/v1/namespaces/shop/pods");
    assert_eq!(
        log[0].param("labelSelector"),
        Some("app in (web,api),tier!=db")
    );
    assert_eq!(log[1].path, "/api/v1/namespaces/shop/pods");

    // Leaving the selector is a DELETED, coming back an ADDED (watch cache).
    k.update_pod(labelled("shop", "web-1", &[("app", "web"), ("tier", "db")]));
    let evs = w.until(|e| !matches!(e, Ev::Error(_))).await;
    assert!(
        matches!(evs.last(), Some(Ev::Delete(p)) if p.name_any() == "web-1"),
        "{:?}",
        shorts(&evs)
    );
    k.update_pod(labelled("shop", "web-1", &[("app", "api")]));
    w.until(|e| is_apply_of(e, "web-1")).await;
    // Other namespaces are not sent.
    k.add_pod(labelled("other", "web-3", &[("app", "web")]));
    k.add_pod(labelled("shop", "web-4", &[("app", "web")]));
    let evs = w.until(|e| matches!(e, Ev::Apply(_))).await;
    assert!(is_apply_of(&evs[0], "web-4"), "{:?}", shorts(&evs));
}

#[tokio::test]
async fn deleted_arrives() {
    let k = KubeApi::start();
    k.add_pod(pod("default", "web-1", "node-a"));
    k.add_pod(pod("default", "web-2", "node-a"));
    let mut w = Watching::start(Api::all(client(&k)), node_a());
    assert_eq!(w.initial().await, vec!["web-1", "web-2"]);
    wait_open_watches(&k, 1).await;
    let rv = k.delete_pod("default", "web-1");
    let evs = w.until(|e| matches!(e, Ev::Delete(_))).await;
    let Some(Ev::Delete(p)) = evs.last() else {
        unreachable!()
    };
    assert_eq!(p.name_any(), "web-1");
    assert_eq!(p.uid().as_deref(), Some("uid-default-web-1"));
    assert_eq!(p.resource_version(), Some(rv.to_string()));
    assert_eq!(k.pods().len(), 1);
}

#[tokio::test]
async fn expire_watches_forces_a_relist() {
    let k = KubeApi::start();
    k.add_pod(pod("default", "web-1", "node-a"));
    let mut w = Watching::start(Api::all(client(&k)), node_a());
    assert_eq!(w.initial().await, vec!["web-1"]);
    wait_open_watches(&k, 1).await;

    k.expire_watches();
    k.add_pod(pod("default", "web-2", "node-a"));
    let evs = w.until(|e| matches!(e, Ev::InitDone)).await;
    let errs = errors(&evs);
    assert_eq!(errs.len(), 1, "{:?}", shorts(&evs));
    assert!(errs[0].contains("Expired"), "{errs:?}");
    assert!(
        evs.iter().any(|e| matches!(e, Ev::Init)),
        "{:?}",
        shorts(&evs)
    );
    assert_eq!(listed(&evs), vec!["web-1", "web-2"]);
    assert_eq!(k.lists(), 2);

    // And the new watch goes on.
    wait_open_watches(&k, 1).await;
    k.add_pod(pod("default", "web-3", "node-a"));
    w.until(|e| is_apply_of(e, "web-3")).await;
}

#[tokio::test]
async fn watch_from_an_expired_resource_version_gets_a_410_event() {
    let k = KubeApi::start();
    let old = k.add_pod(pod("default", "web-1", "node-a"));
    k.add_pod(pod("default", "web-2", "node-a"));
    k.expire_watches();
    let api: Api<Pod> = Api::all(client(&k));
    let mut stream = api
        .watch(&WatchParams::default(), &old.to_string())
        .await
        .unwrap()
        .boxed();
    match tokio::time::timeout(GIVE_UP, stream.next()).await.unwrap() {
        Some(Ok(WatchEvent::Error(s))) => {
            assert_eq!((s.code, s.reason.as_str()), (410, "Expired"));
            assert!(s.message.starts_with("too old resource version"), "{s:?}");
        }
        other => panic!("{other:?}"),
    }
    assert!(tokio::time::timeout(GIVE_UP, stream.next())
        .await
        .unwrap()
        .is_none());
    assert_eq!(k.request_log()[0].status, 200);

    // From the current version it is fine, and replays nothing.
    let now = k.resource_version();
    let mut stream = api
        .watch(&WatchParams::default(), &now.to_string())
        .await
        .unwrap()
        .boxed();
    k.add_pod(pod("default", "web-3", "node-a"));
    match tokio::time::timeout(GIVE_UP, stream.next()).await.unwrap() {
        Some(Ok(WatchEvent::Added(p))) => assert_eq!(p.name_any(), "web-3"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn watch_replays_from_its_resource_version() {
    let k = KubeApi::start();
    let rv = k.add_pod(pod("default", "web-1", "node-a"));
    k.add_pod(pod("default", "web-2", "node-b"));
    k.add_pod(pod("default", "web-3", "node-a"));
    k.delete_pod("default", "web-1");
    let api: Api<Pod> = Api::all(client(&k));
    let wp = WatchParams::default().fields("spec.nodeName=node-a");
    let mut stream = api.watch(&wp, &rv.to_string()).await.unwrap().boxed();
    let mut got = Vec::new();
    for _ in 0..2 {
        match tokio::time::timeout(GIVE_UP, stream.next()).await.unwrap() {
            Some(Ok(WatchEvent::Added(p))) => got.push(format!("ADDED {}", p.name_any())),
            Some(Ok(WatchEvent::Deleted(p))) => got.push(format!("DELETED {}", p.name_any())),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(got, vec!["ADDED web-3", "DELETED web-1"]);
}

#[tokio::test]
async fn dropped_watch_reconnects_and_keeps_going() {
    let k = KubeApi::start();
    k.add_pod(pod("default", "web-1", "node-a"));
    let mut w = Watching::start(Api::all(client(&k)), node_a());
    assert_eq!(w.initial().await, vec!["web-1"]);
    wait_open_watches(&k, 1).await;
    let list_rv = k.resource_version();

    k.drop_watches();
    // Added while no watch is open: replayed from the resume version.
    k.add_pod(pod("default", "web-2", "node-a"));
    let evs = w.until(|e| is_apply_of(e, "web-2")).await;
    eprintln!("after drop_watches: {:?}", shorts(&evs));
    assert!(
        !evs.iter().any(|e| matches!(e, Ev::Init)),
        "{:?}",
        shorts(&evs)
    );
    assert_eq!(k.lists(), 1);
    assert_eq!(k.watches(), 2);
    let rewatch = &k.request_log()[2];
    assert_eq!(rewatch.kind, RequestKind::Watch);
    assert_eq!(
        rewatch.param("resourceVersion"),
        Some(list_rv.to_string().as_str())
    );

    wait_open_watches(&k, 1).await;
    k.drop_watches();
    wait_open_watches(&k, 1).await;
    k.add_pod(pod("default", "web-3", "node-a"));
    w.until(|e| is_apply_of(e, "web-3")).await;
}

#[tokio::test]
async fn bookmarks_move_the_resume_version() {
    let k = KubeApi::start();
    let mut w = Watching::start(Api::all(client(&k)), node_a());
    assert!(w.initial().await.is_empty());
    wait_open_watches(&k, 1).await;
    // A change this watch does not see, then a bookmark carrying its version.
    let rv = k.add_pod(pod("default", "elsewhere", "node-b"));
    k.send_bookmarks();
    // A clean end (timeoutSeconds ran out): the watcher resumes from the bookmark.
    k.end_watches();
    assert!(k.wait_for(GIVE_UP, |k| k.watches() == 2).await);
    let log = k.request_log();
    assert_eq!(
        log[2].param("resourceVersion"),
        Some(rv.to_string().as_str())
    );
    wait_open_watches(&k, 1).await;
    k.add_pod(pod("default", "here", "node-a"));
    let evs = w.until(|e| is_apply_of(e, "here")).await;
    assert_eq!(evs.len(), 1, "{:?}", shorts(&evs));
    assert_eq!(k.lists(), 1);
}

#[tokio::test]
async fn watch_timeout_ends_cleanly_and_the_watcher_rewatches() {
    let k = KubeApi::start();
    k.add_pod(pod("default", "web-1", "node-a"));
    let mut w = Watching::start(Api::all(client(&k)), node_a().timeout(1));
    assert_eq!(w.initial().await, vec!["web-1"]);
    assert!(k.wait_for(GIVE_UP, |k| k.watches() >= 3).await);
    assert_eq!(k.request_log()[1].param("timeoutSeconds"), Some("1"));
    k.add_pod(pod("default", "web-2", "node-a"));
    let evs = w.until(|e| is_apply_of(e, "web-2")).await;
    assert!(errors(&evs).is_empty(), "{:?}", shorts(&evs));
    assert_eq!(k.lists(), 1);
}

#[tokio::test]
async fn fail_next_503_is_retried_through() {
    let k = KubeApi::start();
    k.add_pod(pod("default", "web-1", "node-a"));
    k.fail_next(2, 503);
    let mut w = Watching::start(Api::all(client(&k)), node_a());
    let evs = w.until(|e| matches!(e, Ev::InitDone)).await;
    eprintln!("with fail_next(2, 503): {:?}", shorts(&evs));
    assert_eq!(listed(&evs), vec!["web-1"]);
    let lists: Vec<u16> = k
        .request_log()
        .iter()
        .filter(|r| r.kind == RequestKind::List)
        .map(|r| r.status)
        .collect();
    assert_eq!(lists, vec![503, 503, 200]);
    // kube's client retries 503 itself: the watcher never saw an error.
    assert!(errors(&evs).is_empty(), "{:?}", shorts(&evs));
    wait_open_watches(&k, 1).await;
    k.add_pod(pod("default", "web-2", "node-a"));
    w.until(|e| is_apply_of(e, "web-2")).await;
}

#[tokio::test]
async fn fail_next_500_surfaces_errors_and_the_backoff_retries() {
    let k = KubeApi::start();
    k.add_pod(pod("default", "web-1", "node-a"));
    k.fail_next(2, 500);
    let mut w = Watching::start(Api::all(client(&k)), node_a());
    let evs = w.until(|e| matches!(e, Ev::InitDone)).await;
    let errs = errors(&evs);
    assert_eq!(errs.len(), 2, "{:?}", shorts(&evs));
    assert!(
        errs.iter()
            .all(|e| e.contains("failed to perform initial object list")),
        "{errs:?}"
    );
    assert_eq!(listed(&evs), vec!["web-1"]);
    assert_eq!(k.lists(), 3);

    // Failing re-watches: WatchStartFailed, retried from the same version.
    wait_open_watches(&k, 1).await;
    k.fail_next(2, 500);
    k.drop_watches();
    k.add_pod(pod("default", "web-2", "node-a"));
    let evs = w.until(|e| is_apply_of(e, "web-2")).await;
    let errs = errors(&evs);
    assert!(
        errs.iter()
            .filter(|e| e.contains("failed to start watching"))
            .count()
            == 2,
        "{:?}",
        shorts(&evs)
    );
    assert_eq!(k.lists(), 1 + 2);
}

#[tokio::test]
async fn fail_next_429_honours_retry_after() {
    let k = KubeApi::start();
    k.fail_next(1, 429);
    let mut w = Watching::start(Api::all(client(&k)), node_a());
    let evs = w.until(|e| matches!(e, Ev::InitDone)).await;
    assert!(errors(&evs).is_empty(), "{:?}", shorts(&evs));
    assert_eq!(k.lists(), 2);
}

#[tokio::test]
async fn paginated_list() {
    let k = KubeApi::start();
    for i in 1..=5 {
        k.add_pod(pod("default", &format!("web-{i}"), "node-a"));
    }
    let mut w = Watching::start(Api::all(client(&k)), node_a().page_size(2));
    assert_eq!(
        w.initial().await,
        vec!["web-1", "web-2", "web-3", "web-4", "web-5"]
    );
    let log = k.request_log();
    let lists: Vec<_> = log.iter().filter(|r| r.kind == RequestKind::List).collect();
    assert_eq!(lists.len(), 3);
    assert_eq!(lists[0].param("limit"), Some("2"));
    assert_eq!(lists[0].param("continue"), None);
    assert!(lists[1].param("continue").is_some());
    assert!(lists[2].param("continue").is_some());
    // The watch starts from the snapshot's version.
    wait_open_watches(&k, 1).await;
    let watch = k
        .request_log()
        .into_iter()
        .find(|r| r.kind == RequestKind::Watch)
        .unwrap();
    assert_eq!(watch.param("resourceVersion"), Some("1005"));
}

#[tokio::test]
async fn continue_token_expires_with_the_watches() {
    let k = KubeApi::start();
    for i in 1..=3 {
        k.add_pod(pod("default", &format!("web-{i}"), "node-a"));
    }
    let api: Api<Pod> = Api::all(client(&k));
    let first = api.list(&ListParams::default().limit(2)).await.unwrap();
    let token = first.metadata.continue_.clone().unwrap();
    assert_eq!(first.items.len(), 2);
    k.add_pod(pod("default", "web-4", "node-a"));
    k.expire_watches();
    let err = api
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => assert_eq!((s.code, s.reason.as_str()), (410, "Expired")),
        e => panic!("{e:?}"),
    }
}

#[tokio::test]
async fn streaming_list_is_served() {
    let k = KubeApi::start();
    k.add_pod(pod("default", "web-1", "node-a"));
    k.add_pod(pod("default", "web-2", "node-a"));
    let mut w = Watching::start(Api::all(client(&k)), node_a().streaming_lists());
    assert_eq!(w.initial().await, vec!["web-1", "web-2"]);
    assert_eq!(k.lists(), 0);
    let first = &k.request_log()[0];
    assert_eq!(first.param("sendInitialEvents"), Some("true"));
    assert_eq!(first.param("resourceVersionMatch"), Some("NotOlderThan"));
    assert_eq!(first.param("resourceVersion"), Some("0"));
    k.add_pod(pod("default", "web-3", "node-a"));
    w.until(|e| is_apply_of(e, "web-3")).await;
}

#[tokio::test]
async fn metadata_only_watch_is_served() {
    let k = KubeApi::start();
    k.add_pod(pod("default", "web-1", "node-a"));
    let api: Api<PartialObjectMeta<Pod>> = Api::all(client(&k));
    let mut s = watcher::watcher(api, node_a()).boxed();
    let mut names = Vec::new();
    loop {
        match tokio::time::timeout(GIVE_UP, s.next()).await.unwrap() {
            Some(Ok(Event::InitApply(p))) => names.push(p.name_any()),
            Some(Ok(Event::InitDone)) => break,
            Some(Ok(_)) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(names, vec!["web-1"]);
    k.add_pod(pod("default", "web-2", "node-a"));
    loop {
        match tokio::time::timeout(GIVE_UP, s.next()).await.unwrap() {
            Some(Ok(Event::Apply(p))) => {
                assert_eq!(p.name_any(), "web-2");
                assert_eq!(p.labels().get("app").map(String::as_str), Some("web"));
                break;
            }
            Some(Ok(_)) => {}
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn get_one_pod() {
    let k = KubeApi::start();
    k.add_pod(pod("shop", "web-1", "node-a"));
    let api: Api<Pod> = Api::namespaced(client(&k), "shop");
    let p = api.get("web-1").await.unwrap();
    assert_eq!(p.spec.unwrap().node_name.as_deref(), Some("node-a"));
    match api.get("nope").await.unwrap_err() {
        kube::Error::Api(s) => assert_eq!((s.code, s.reason.as_str()), (404, "NotFound")),
        e => panic!("{e:?}"),
    }
}

#[test]
fn pod_json_is_a_realistic_pod() {
    let v = pod_json(
        "shop",
        "web-7d4b9c-x2x9z",
        "0c1f6a3e-1111-2222-3333-444455556666",
        "node-a",
        &[("app", "web"), ("pod-template-hash", "7d4b9c")],
        &["main", "sidecar"],
    );
    assert_eq!(
        v,
        pod_json(
            "shop",
            "web-7d4b9c-x2x9z",
            "0c1f6a3e-1111-2222-3333-444455556666",
            "node-a",
            &[("app", "web"), ("pod-template-hash", "7d4b9c")],
            &["main", "sidecar"],
        )
    );
    let p: Pod = serde_json::from_value(v).unwrap();
    assert_eq!(p.name_any(), "web-7d4b9c-x2x9z");
    assert_eq!(p.labels().len(), 2);
    let owner = &p.owner_references()[0];
    assert_eq!(owner.name, "web-7d4b9c");
    assert_eq!(owner.controller, Some(true));
    let spec = p.spec.unwrap();
    assert_eq!(spec.node_name.as_deref(), Some("node-a"));
    assert_eq!(spec.containers.len(), 2);
    let st = p.status.unwrap();
    assert_eq!(st.phase.as_deref(), Some("Running"));
    assert!(st.pod_ip.as_deref().unwrap().starts_with("10.244."));
    assert!(st
        .conditions
        .unwrap()
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True"));
    let cs = st.container_statuses.unwrap();
    assert_eq!(cs.len(), 2);
    assert_ne!(cs[0].container_id, cs[1].container_id);
    assert_eq!(
        cs[0].container_id.as_ref().unwrap().len(),
        "containerd://".len() + 64
    );
    assert!(cs
        .iter()
        .all(|c| c.ready && c.state.as_ref().unwrap().running.is_some()));

    let bare: Pod = serde_json::from_value(pod_json("d", "bare", "u", "n", &[], &["c"])).unwrap();
    assert!(bare.owner_references().is_empty());
}

#[test]
fn selector_parsing() {
    use kube_api::{parse_field_selector, parse_label_selector};
    let f = parse_field_selector("spec.nodeName=node-a,metadata.namespace!=kube-system").unwrap();
    assert_eq!(f.len(), 2);
    assert!(f[1].negated);
    assert_eq!(
        parse_field_selector("metadata.name=a\\,b").unwrap()[0].value,
        "a,b"
    );
    assert!(parse_field_selector("").unwrap().is_empty());
    assert!(parse_field_selector("spec.nodeName").is_err());
    assert!(parse_field_selector("spec.foo=bar").is_err());

    let l =
        parse_label_selector("app=web, tier != db,env in (a, b),!canary,team,x notin (y)").unwrap();
    assert_eq!(
        l,
        vec![
            LabelReq::Eq("app".into(), "web".into()),
            LabelReq::NotEq("tier".into(), "db".into()),
            LabelReq::In("env".into(), vec!["a".into(), "b".into()]),
            LabelReq::NotExists("canary".into()),
            LabelReq::Exists("team".into()),
            LabelReq::NotIn("x".into(), vec!["y".into()]),
        ]
    );
    assert!(parse_label_selector("").unwrap().is_empty());
    assert!(parse_label_selector("a in (").is_err());
    assert!(parse_label_selector("a=b,").is_err());
}
