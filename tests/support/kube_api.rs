//! A fake Kubernetes API server (pods only) for tailtrace's integration tests.
//!
//! Owns: [`KubeApi`], an HTTP/1 server on 127.0.0.1 that answers the requests
//! the real `kube` crate makes for `Api::<Pod>::all` / `Api::namespaced` and
//! `kube::runtime::watcher` exactly as an API server (with its watch cache)
//! would, so the agent's pod discovery can be tested against the real client:
//! paginated LISTs (`limit`/`continue`, `PodList` with `metadata.resourceVersion`,
//! items without `kind`/`apiVersion` as the API server sends them), WATCHes (a
//! chunked stream of newline-delimited `{"type":..,"object":..}` events,
//! replayed from `resourceVersion`, `BOOKMARK`s when `allowWatchBookmarks=true`,
//! closed cleanly after `timeoutSeconds`), `sendInitialEvents` streaming lists,
//! GET of one pod, field selectors (the pod field labels the API server
//! supports, `=`/`==`/`!=`, comma ANDs, `\` escapes) and label selectors
//! (`k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (..)`, `k notin (..)`, `k>n`,
//! `k<n`), metadata-only requests (`Accept: ...;as=PartialObjectMetadata`).
//! Errors are `Status` JSON with the API server's reasons and messages.
//!
//! Test controls: [`KubeApi::add_pod`] / [`KubeApi::update_pod`] /
//! [`KubeApi::delete_pod`] bump one global resourceVersion and notify every
//! open watch whose scope matches; like the watch cache, an update that moves
//! a pod into a watch's selector is sent as `ADDED`, out of it as `DELETED`
//! (previous content, new resourceVersion). [`KubeApi::expire_watches`] (410
//! `Expired` ERROR event on the open streams, and on any later watch or
//! `continue` from an older resourceVersion: what etcd compaction does),
//! [`KubeApi::drop_watches`] (connections cut mid-stream, no terminating
//! chunk), [`KubeApi::fail_next`] (the next N requests get a status),
//! [`KubeApi::send_bookmarks`]. Introspection: [`KubeApi::requests`],
//! [`KubeApi::request_log`], [`KubeApi::lists`], [`KubeApi::watches`],
//! [`KubeApi::open_watches`]. [`pod_json`] builds a realistic Pod.
//!
//! Design: one current-thread tokio runtime on a background std thread,
//! stopped on Drop; all state behind one Mutex; each open watch is an
//! unbounded channel feeding its response body, so controls called from any
//! thread deliver events synchronously and in resourceVersion order (a watch
//! is registered and its replay queued under the same lock).
//!
//! Deliberate simplifications: LIST always serves the current state (the
//! `resourceVersion`/`resourceVersionMatch` parameters of a list are recorded
//! but not honoured); a watch from a resourceVersion newer than the current one
//! simply waits for it (the API server answers 504 after 3 s); only Pods exist;
//! no auth; no `/api` discovery (404).
//!
//! Must never: bind anything but 127.0.0.1, or depend on tailtrace's crate.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{HeaderValue, ACCEPT, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// The first resourceVersion handed out is this plus one; a fresh server lists
/// at this version.
pub const INITIAL_RESOURCE_VERSION: u64 = 1000;

/// Watch length when the request has no `timeoutSeconds` (the API server picks
/// 30–60 min at random).
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(1800);

/// One request the server received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiRequest {
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// Decoded query parameters in order (empty pairs, as in kube's `?&a=b`,
    /// skipped).
    pub query: Vec<(String, String)>,
    /// Path and query exactly as sent.
    pub raw: String,
    pub kind: RequestKind,
    /// Status answered (200 for a watch stream, even one that carries an
    /// ERROR); 0 while the answer is being computed.
    pub status: u16,
    /// Arrival order, from 1 (not reset by `clear_requests`).
    pub seq: u64,
    /// The `Authorization` header as sent (not checked: no auth).
    pub authorization: Option<String>,
}

impl ApiRequest {
    /// The first value of query parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What a request asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestKind {
    List,
    Watch,
    /// GET of one pod.
    Get,
    /// Anything else (answered 404 or 405).
    Other,
}

/// A stored change, kept for replaying watches from a resourceVersion.
#[derive(Clone)]
struct Change {
    rv: u64,
    /// The object before the change (None for a creation).
    prev: Option<Value>,
    /// The object after the change; for a deletion, the last content with the
    /// deletion's resourceVersion.
    obj: Value,
    deleted: bool,
}

#[derive(Clone, Debug, Default)]
struct Scope {
    namespace: Option<String>,
    fields: Vec<FieldReq>,
    labels: Vec<LabelReq>,
}

impl Scope {
    fn matches(&self, pod: &Value) -> bool {
        if let Some(ns) = &self.namespace {
            if str_at(pod, &["metadata", "namespace"]) != ns.as_str() {
                return false;
            }
        }
        self.fields.iter().all(|f| f.matches(pod)) && self.labels.iter().all(|l| l.matches(pod))
    }
}

enum WatchMsg {
    Data(Bytes),
    /// End the stream cleanly (terminating chunk).
    End,
    /// Cut the connection mid-stream.
    Abort,
}

struct WatchReg {
    scope: Scope,
    bookmarks: bool,
    meta_only: bool,
    tx: mpsc::UnboundedSender<WatchMsg>,
}

struct Snapshot {
    rv: u64,
    items: Vec<Value>,
}

struct State {
    rv: u64,
    /// Watches and continues from a resourceVersion below this get 410.
    compacted: u64,
    pods: BTreeMap<(String, String), Value>,
    history: Vec<Change>,
    watches: BTreeMap<u64, WatchReg>,
    next_id: u64,
    snapshots: HashMap<u64, Snapshot>,
    fail: Option<(usize, u16)>,
    requests: Vec<ApiRequest>,
    request_seq: u64,
    lists: usize,
    watch_count: usize,
}

struct Shared {
    state: Mutex<State>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running fake API server. Dropping it stops the server and cuts every
/// connection.
pub struct KubeApi {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl KubeApi {
    /// Starts on 127.0.0.1 with a free port; panics if it cannot (test support).
    pub fn start() -> KubeApi {
        match Self::try_start() {
            Ok(k) => k,
            Err(e) => panic!("fake Kubernetes API server failed to start: {e}"),
        }
    }

    /// Starts on 127.0.0.1 with a free port, reporting bind/runtime errors.
    pub fn try_start() -> std::io::Result<KubeApi> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                rv: INITIAL_RESOURCE_VERSION,
                compacted: 0,
                pods: BTreeMap::new(),
                history: Vec::new(),
                watches: BTreeMap::new(),
                next_id: 1,
                snapshots: HashMap::new(),
                fail: None,
                requests: Vec::new(),
                request_seq: 0,
                lists: 0,
                watch_count: 0,
            }),
        });
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sh = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("fake-kube-api-{}", addr.port()))
            .spawn(move || rt.block_on(serve(listener, sh, rx)))?;
        Ok(KubeApi {
            addr,
            shared,
            stop: Some(tx),
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, for `kube::Config::new(url.parse().unwrap())`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Creates a pod (`metadata.namespace` defaults to "default"; `kind` and
    /// `apiVersion` are set if missing). Sends ADDED to matching watches and
    /// returns the new resourceVersion. Panics if the pod exists or has no name.
    pub fn add_pod(&self, pod: Value) -> u64 {
        let mut st = self.shared.state();
        let mut pod = normalise(pod);
        let key = pod_key(&pod);
        if st.pods.contains_key(&key) {
            panic!(
                "fake kube API: add_pod: pod {}/{} already exists",
                key.0, key.1
            );
        }
        st.rv += 1;
        let rv = st.rv;
        set_rv(&mut pod, rv);
        st.pods.insert(key, pod.clone());
        st.record(Change {
            rv,
            prev: None,
            obj: pod,
            deleted: false,
        });
        rv
    }

    /// Replaces a pod (keeping its `uid` and `creationTimestamp` if the new
    /// JSON lacks them). Sends MODIFIED (or ADDED/DELETED when it enters or
    /// leaves a watch's selectors) and returns the new resourceVersion.
    /// Panics if the pod does not exist.
    pub fn update_pod(&self, pod: Value) -> u64 {
        let mut st = self.shared.state();
        let mut pod = normalise(pod);
        let key = pod_key(&pod);
        let prev = match st.pods.get(&key) {
            Some(p) => p.clone(),
            None => panic!(
                "fake kube API: update_pod: pod {}/{} does not exist",
                key.0, key.1
            ),
        };
        for field in ["uid", "creationTimestamp"] {
            if pod["metadata"].get(field).is_none() {
                if let Some(v) = prev["metadata"].get(field) {
                    pod["metadata"][field] = v.clone();
                }
            }
        }
        st.rv += 1;
        let rv = st.rv;
        set_rv(&mut pod, rv);
        st.pods.insert(key, pod.clone());
        st.record(Change {
            rv,
            prev: Some(prev),
            obj: pod,
            deleted: false,
        });
        rv
    }

    /// Deletes a pod; matching watches get DELETED with its last content and
    /// the deletion's resourceVersion, which is returned. Panics if absent.
    pub fn delete_pod(&self, namespace: &str, name: &str) -> u64 {
        let mut st = self.shared.state();
        let key = (namespace.to_string(), name.to_string());
        let prev = match st.pods.remove(&key) {
            Some(p) => p,
            None => panic!("fake kube API: delete_pod: pod {namespace}/{name} does not exist"),
        };
        st.rv += 1;
        let rv = st.rv;
        let mut obj = prev.clone();
        set_rv(&mut obj, rv);
        st.record(Change {
            rv,
            prev: Some(prev),
            obj,
            deleted: true,
        });
        rv
    }

    /// The stored pod, as the API server would return it.
    pub fn pod(&self, namespace: &str, name: &str) -> Option<Value> {
        self.shared
            .state()
            .pods
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    /// Every stored pod, ordered by namespace then name.
    pub fn pods(&self) -> Vec<Value> {
        self.shared.state().pods.values().cloned().collect()
    }

    /// The current (latest) resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.state().rv
    }

    /// What etcd compaction does to watchers: every open watch gets an ERROR
    /// event (`Status` 410 `Expired`, on the 200 stream, as the API server
    /// sends it) and is closed; any later watch or `continue` from a
    /// resourceVersion older than the current one gets the same 410.
    pub fn expire_watches(&self) {
        let mut st = self.shared.state();
        let now = st.rv;
        st.compacted = now;
        st.history.retain(|c| c.rv > now);
        st.snapshots.retain(|_, s| s.rv >= now);
        for (_, w) in std::mem::take(&mut st.watches) {
            let msg = format!("too old resource version: {now} ({now})");
            let _ = w.tx.send(WatchMsg::Data(event_line(
                "ERROR",
                &status_json(410, "Expired", &msg),
            )));
            let _ = w.tx.send(WatchMsg::End);
        }
    }

    /// Cuts every open watch connection mid-stream: no event, no terminating
    /// chunk (what a restarting API server or a broken proxy does).
    pub fn drop_watches(&self) {
        let mut st = self.shared.state();
        for (_, w) in std::mem::take(&mut st.watches) {
            let _ = w.tx.send(WatchMsg::Abort);
        }
    }

    /// Ends every open watch cleanly, as when its `timeoutSeconds` runs out.
    pub fn end_watches(&self) {
        let mut st = self.shared.state();
        for (_, w) in std::mem::take(&mut st.watches) {
            let _ = w.tx.send(WatchMsg::End);
        }
    }

    /// Sends a BOOKMARK at the current resourceVersion to every open watch
    /// that asked for bookmarks (`allowWatchBookmarks=true`).
    pub fn send_bookmarks(&self) {
        let mut st = self.shared.state();
        let rv = st.rv;
        st.watches.retain(|_, w| {
            if !w.bookmarks {
                return true;
            }
            let line = event_line("BOOKMARK", &bookmark_object(rv, w.meta_only, false));
            w.tx.send(WatchMsg::Data(line)).is_ok()
        });
    }

    /// Answers the next `n` requests (whatever they are) with `status` and a
    /// `Status` body (429 also gets `Retry-After: 1`, like API priority and
    /// fairness). NB: kube's client retries 429/503/504 itself (up to 15 times)
    /// before the watcher sees an error.
    pub fn fail_next(&self, n: usize, status: u16) {
        self.shared.state().fail = if n == 0 { None } else { Some((n, status)) };
    }

    /// Every request as `"GET /path?query"`, the query exactly as sent.
    pub fn requests(&self) -> Vec<String> {
        self.shared
            .state()
            .requests
            .iter()
            .map(|r| format!("{} {}", r.method, r.raw))
            .collect()
    }

    /// Every request with decoded parameters and the status answered.
    pub fn request_log(&self) -> Vec<ApiRequest> {
        self.shared.state().requests.clone()
    }

    /// LIST requests received (including those failed by `fail_next`).
    pub fn lists(&self) -> usize {
        self.shared.state().lists
    }

    /// WATCH requests received (including those failed by `fail_next`).
    pub fn watches(&self) -> usize {
        self.shared.state().watch_count
    }

    /// Watch streams currently open (registered for events). A stream the
    /// client abandoned is noticed when hyper drops it or the next event is
    /// sent to it.
    pub fn open_watches(&self) -> usize {
        self.shared.state().watches.len()
    }

    /// Forgets the request log and the list/watch counts.
    pub fn clear_requests(&self) {
        let mut st = self.shared.state();
        st.requests.clear();
        st.lists = 0;
        st.watch_count = 0;
    }

    /// Polls `f` every 10 ms until it holds or `timeout` passes (a give-up
    /// bound). Blocking: do not call it on a current-thread runtime that also
    /// drives the client; use [`KubeApi::wait_for`] there.
    pub fn wait_until(&self, timeout: Duration, f: impl Fn(&KubeApi) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if f(self) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Async [`KubeApi::wait_until`], for tests running the client on tokio.
    pub async fn wait_for(&self, timeout: Duration, f: impl Fn(&KubeApi) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if f(self) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for KubeApi {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl State {
    /// Stores a change and sends it to every watch it concerns; watches whose
    /// client went away are unregistered.
    fn record(&mut self, change: Change) {
        self.watches
            .retain(|_, w| match watch_event(&w.scope, &change) {
                Some((ty, obj)) => {
                    let obj = if w.meta_only { partial(&obj) } else { obj };
                    w.tx.send(WatchMsg::Data(event_line(ty, &obj))).is_ok()
                }
                None => true,
            });
        self.history.push(change);
    }
}

/// The event a watch with `scope` sees for `c`, as the watch cache computes it
/// (`cacheWatcher.convertToWatchEvent`).
fn watch_event(scope: &Scope, c: &Change) -> Option<(&'static str, Value)> {
    let cur = !c.deleted && scope.matches(&c.obj);
    let old = c.prev.as_ref().is_some_and(|p| scope.matches(p));
    match (cur, old) {
        (true, false) => Some(("ADDED", c.obj.clone())),
        (true, true) => Some(("MODIFIED", c.obj.clone())),
        (false, true) => {
            // The previous content with the event's resourceVersion.
            let mut o = if c.deleted {
                c.obj.clone()
            } else {
                c.prev.clone().unwrap_or(Value::Null)
            };
            set_rv(&mut o, c.rv);
            Some(("DELETED", o))
        }
        (false, false) => None,
    }
}

fn normalise(mut pod: Value) -> Value {
    if !pod.is_object() {
        panic!("fake kube API: a pod must be a JSON object, got {pod}");
    }
    if pod.get("metadata").and_then(|m| m.as_object()).is_none() {
        pod["metadata"] = json!({});
    }
    if str_at(&pod, &["metadata", "name"]).is_empty() {
        panic!("fake kube API: a pod needs metadata.name: {pod}");
    }
    if str_at(&pod, &["metadata", "namespace"]).is_empty() {
        pod["metadata"]["namespace"] = json!("default");
    }
    if pod.get("kind").is_none() {
        pod["kind"] = json!("Pod");
    }
    if pod.get("apiVersion").is_none() {
        pod["apiVersion"] = json!("v1");
    }
    pod
}

fn pod_key(pod: &Value) -> (String, String) {
    (
        str_at(pod, &["metadata", "namespace"]).to_string(),
        str_at(pod, &["metadata", "name"]).to_string(),
    )
}

fn set_rv(pod: &mut Value, rv: u64) {
    if let Some(m) = pod.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        m.insert("resourceVersion".into(), json!(rv.to_string()));
    }
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(next) => cur = next,
            None => return "",
        }
    }
    cur.as_str().unwrap_or("")
}

/// A list item as the API server serialises it: without `kind`/`apiVersion`.
fn list_item(pod: &Value) -> Value {
    let mut p = pod.clone();
    if let Some(o) = p.as_object_mut() {
        o.remove("kind");
        o.remove("apiVersion");
    }
    p
}

/// The `PartialObjectMetadata` form of `pod`.
fn partial(pod: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": pod.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// A BOOKMARK's object: an empty Pod as Go serialises it, with only the
/// resourceVersion (and, ending a streaming list, the initial-events-end
/// annotation).
fn bookmark_object(rv: u64, meta_only: bool, initial_end: bool) -> Value {
    let mut metadata = json!({"resourceVersion": rv.to_string(), "creationTimestamp": null});
    if initial_end {
        metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    if meta_only {
        json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": metadata})
    } else {
        json!({
            "kind": "Pod",
            "apiVersion": "v1",
            "metadata": metadata,
            "spec": {"containers": null},
            "status": {},
        })
    }
}

fn event_line(ty: &str, obj: &Value) -> Bytes {
    let mut s = serde_json::to_string(&json!({"type": ty, "object": obj}))
        .unwrap_or_else(|_| String::from("{}"));
    s.push('\n');
    Bytes::from(s)
}

fn status_json(code: u16, reason: &str, message: &str) -> Value {
    let mut s = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    });
    if code == 429 {
        s["details"] = json!({"retryAfterSeconds": 1});
    }
    s
}

/// The API server's `StatusReason` for an HTTP status.
fn reason_for(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        406 => "NotAcceptable",
        409 => "Conflict",
        410 => "Expired",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "",
    }
}

// ---------------------------------------------------------------------------
// Selectors
// ---------------------------------------------------------------------------

/// The field labels the API server accepts for pods
/// (`pkg/registry/core/pod.ToSelectableFields` plus `metadata.*`).
const POD_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldReq {
    pub field: String,
    pub negated: bool,
    pub value: String,
}

impl FieldReq {
    fn matches(&self, pod: &Value) -> bool {
        (pod_field(pod, &self.field) == self.value) != self.negated
    }
}

/// A pod's value for a field label, as the API server computes it (missing
/// strings are "", `spec.hostNetwork` is "true"/"false").
pub fn pod_field(pod: &Value, field: &str) -> String {
    if field == "spec.hostNetwork" {
        let b = pod
            .get("spec")
            .and_then(|s| s.get("hostNetwork"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        return b.to_string();
    }
    let path: Vec<&str> = field.split('.').collect();
    str_at(pod, &path).to_string()
}

/// Parses a field selector like `fields.ParseSelector` (terms split on
/// unescaped commas, `!=`, `==`, `=`, `\` escapes) and checks every field is
/// one pods support. Errors are the API server's messages.
pub fn parse_field_selector(s: &str) -> Result<Vec<FieldReq>, String> {
    let mut out = Vec::new();
    for term in split_unescaped(s, ',') {
        if term.is_empty() {
            continue;
        }
        let (field, negated, value) = split_field_term(&term)
            .ok_or_else(|| format!("invalid selector: '{s}'; can't understand '{term}'"))?;
        let field = unescape(&field);
        if !POD_FIELDS.contains(&field.as_str()) {
            return Err(format!("field label not supported: {field}"));
        }
        out.push(FieldReq {
            field,
            negated,
            value: unescape(&value),
        });
    }
    Ok(out)
}

fn split_unescaped(s: &str, sep: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            cur.push('\\');
            cur.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    if escaped {
        cur.push('\\');
    }
    out.push(cur);
    out
}

/// Splits `k!=v`, `k==v`, `k=v` at the first unescaped operator.
fn split_field_term(term: &str) -> Option<(String, bool, String)> {
    let b = term.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'!' if b.get(i + 1) == Some(&b'=') => {
                return Some((term[..i].to_string(), true, term[i + 2..].to_string()))
            }
            b'=' if b.get(i + 1) == Some(&b'=') => {
                return Some((term[..i].to_string(), false, term[i + 2..].to_string()))
            }
            b'=' => return Some((term[..i].to_string(), false, term[i + 1..].to_string())),
            _ => i += 1,
        }
    }
    None
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            out.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else {
            out.push(c);
        }
    }
    out
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LabelReq {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
    Gt(String, i64),
    Lt(String, i64),
}

impl LabelReq {
    fn matches(&self, pod: &Value) -> bool {
        let labels = pod.get("metadata").and_then(|m| m.get("labels"));
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        match self {
            LabelReq::Eq(k, v) => get(k) == Some(v.as_str()),
            LabelReq::NotEq(k, v) => get(k) != Some(v.as_str()),
            LabelReq::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelReq::NotIn(k, vs) => !get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelReq::Exists(k) => get(k).is_some(),
            LabelReq::NotExists(k) => get(k).is_none(),
            LabelReq::Gt(k, n) => get(k)
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x > *n),
            LabelReq::Lt(k, n) => get(k)
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x < *n),
        }
    }
}

/// Parses a label selector (`labels.Parse` syntax, without key/value
/// validation).
pub fn parse_label_selector(s: &str) -> Result<Vec<LabelReq>, String> {
    let mut terms = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ => {}
        }
        if c == ',' && depth == 0 {
            terms.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    terms.push(cur);
    if depth != 0 {
        return Err(format!(
            "unable to parse requirement: unbalanced parentheses in {s:?}"
        ));
    }
    let mut out = Vec::new();
    let n = terms.len();
    for term in terms {
        let t = term.trim();
        if t.is_empty() {
            if n == 1 {
                continue; // empty selector: everything
            }
            return Err(format!("found ',', expected: identifier in {s:?}"));
        }
        out.push(parse_label_term(t).map_err(|e| format!("unable to parse requirement: {e}"))?);
    }
    Ok(out)
}

fn parse_label_term(t: &str) -> Result<LabelReq, String> {
    if let Some(rest) = t.strip_prefix('!') {
        let k = rest.trim();
        if k.is_empty() || k.contains(|c: char| " =!()<>".contains(c)) {
            return Err(format!("invalid key in {t:?}"));
        }
        return Ok(LabelReq::NotExists(k.to_string()));
    }
    let end = t
        .find(|c: char| c.is_whitespace() || "=!()<>".contains(c))
        .unwrap_or(t.len());
    let key = t[..end].to_string();
    if key.is_empty() {
        return Err(format!("missing key in {t:?}"));
    }
    let rest = t[end..].trim_start();
    let value = |v: &str| -> Result<String, String> {
        let v = v.trim();
        if v.contains(|c: char| c.is_whitespace() || "=!(),<>".contains(c)) {
            Err(format!("invalid value {v:?}"))
        } else {
            Ok(v.to_string())
        }
    };
    if rest.is_empty() {
        Ok(LabelReq::Exists(key))
    } else if let Some(v) = rest.strip_prefix("==") {
        Ok(LabelReq::Eq(key, value(v)?))
    } else if let Some(v) = rest.strip_prefix("!=") {
        Ok(LabelReq::NotEq(key, value(v)?))
    } else if let Some(v) = rest.strip_prefix('=') {
        Ok(LabelReq::Eq(key, value(v)?))
    } else if let Some(v) = rest.strip_prefix('>') {
        let n = v
            .trim()
            .parse()
            .map_err(|_| format!("not an integer: {v:?}"))?;
        Ok(LabelReq::Gt(key, n))
    } else if let Some(v) = rest.strip_prefix('<') {
        let n = v
            .trim()
            .parse()
            .map_err(|_| format!("not an integer: {v:?}"))?;
        Ok(LabelReq::Lt(key, n))
    } else if let Some(set) = rest.strip_prefix("notin") {
        Ok(LabelReq::NotIn(key, parse_set(set)?))
    } else if let Some(set) = rest.strip_prefix("in") {
        Ok(LabelReq::In(key, parse_set(set)?))
    } else {
        Err(format!("unknown operator in {t:?}"))
    }
}

fn parse_set(s: &str) -> Result<Vec<String>, String> {
    let s = s.trim();
    let inner = s
        .strip_prefix('(')
        .and_then(|x| x.strip_suffix(')'))
        .ok_or_else(|| format!("expected a (set) in {s:?}"))?;
    let vals: Vec<String> = inner.split(',').map(|v| v.trim().to_string()).collect();
    if vals.iter().all(|v| v.is_empty()) {
        return Err("for 'in', 'notin' operators, values set can't be empty".into());
    }
    Ok(vals)
}

// ---------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------

async fn serve(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("fake kube API: cannot register listener: {e}");
            return;
        }
    };
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let sh = shared.clone();
                    tokio::spawn(async move {
                        let svc = service_fn(move |req| handle(sh.clone(), req));
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), svc)
                            .await;
                    });
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }
    // Returning drops the runtime in the caller, which cancels every connection.
}

/// A response body: a whole JSON document, or a watch stream.
enum ApiBody {
    Full(Option<Bytes>),
    Watch(WatchBody),
}

impl Body for ApiBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match self.get_mut() {
            ApiBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ApiBody::Watch(w) => w.poll(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, ApiBody::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ApiBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            ApiBody::Full(None) => SizeHint::with_exact(0),
            ApiBody::Watch(_) => SizeHint::default(),
        }
    }
}

/// One watch stream; unregisters itself when hyper drops it.
struct WatchBody {
    id: u64,
    rx: mpsc::UnboundedReceiver<WatchMsg>,
    deadline: Pin<Box<tokio::time::Sleep>>,
    shared: Arc<Shared>,
    done: bool,
}

impl WatchBody {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if self.done {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(WatchMsg::Data(b))) => return Poll::Ready(Some(Ok(Frame::data(b)))),
            Poll::Ready(Some(WatchMsg::End)) | Poll::Ready(None) => {
                self.done = true;
                return Poll::Ready(None);
            }
            Poll::Ready(Some(WatchMsg::Abort)) => {
                self.done = true;
                return Poll::Ready(Some(Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    "fake kube API: watch connection dropped on purpose",
                ))));
            }
            Poll::Pending => {}
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            self.done = true;
            self.shared.state().watches.remove(&self.id);
            return Poll::Ready(None);
        }
        Poll::Pending
    }
}

impl Drop for WatchBody {
    fn drop(&mut self) {
        self.shared.state().watches.remove(&self.id);
    }
}

type Resp = Response<ApiBody>;

fn json_response(status: u16, body: &Value) -> Resp {
    let text = serde_json::to_vec(body).unwrap_or_default();
    let mut r = Response::new(ApiBody::Full(Some(Bytes::from(text))));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if status == 429 {
        r.headers_mut()
            .insert("retry-after", HeaderValue::from_static("1"));
    }
    r
}

fn error_response(status: u16, message: &str) -> Resp {
    json_response(status, &status_json(status, reason_for(status), message))
}

/// `/api/v1/pods`, `/api/v1/namespaces/{ns}/pods`, `/api/v1/namespaces/{ns}/pods/{name}`.
enum Route {
    Collection(Option<String>),
    Item(String, String),
    Unknown,
}

fn route(path: &str) -> Route {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segs.as_slice() {
        ["api", "v1", "pods"] => Route::Collection(None),
        ["api", "v1", "namespaces", ns, "pods"] if !ns.is_empty() => {
            Route::Collection(Some(ns.to_string()))
        }
        ["api", "v1", "namespaces", ns, "pods", name] if !ns.is_empty() && !name.is_empty() => {
            Route::Item(ns.to_string(), name.to_string())
        }
        _ => Route::Unknown,
    }
}

fn percent_decode(s: &str) -> String {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'+' {
            out.push(b' ');
        } else if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
            out.push(b'%');
        } else {
            out.push(b[i]);
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}

/// Go's `strconv.ParseBool` truth.
fn truthy(v: Option<&str>) -> bool {
    matches!(v, Some("1" | "t" | "T" | "true" | "TRUE" | "True"))
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Resp, Infallible> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let raw = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| path.clone());
    let query = parse_query(req.uri().query().unwrap_or(""));
    let authorization = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let meta_only = req
        .headers()
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("as=PartialObjectMetadata"));
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let rt = route(&path);
    let kind = match (&rt, method == Method::GET) {
        (Route::Collection(_), true) if truthy(param("watch")) => RequestKind::Watch,
        (Route::Collection(_), true) => RequestKind::List,
        (Route::Item(..), true) => RequestKind::Get,
        _ => RequestKind::Other,
    };
    let (seq, forced) = {
        let mut st = shared.state();
        st.request_seq += 1;
        let seq = st.request_seq;
        match kind {
            RequestKind::List => st.lists += 1,
            RequestKind::Watch => st.watch_count += 1,
            _ => {}
        }
        st.requests.push(ApiRequest {
            method: method.to_string(),
            path: path.clone(),
            query: query.clone(),
            raw,
            kind,
            status: 0,
            seq,
            authorization,
        });
        let forced = match st.fail {
            Some((n, status)) => {
                st.fail = if n > 1 { Some((n - 1, status)) } else { None };
                Some(status)
            }
            None => None,
        };
        (seq, forced)
    };
    let resp = if let Some(status) = forced {
        error_response(
            status,
            &format!("fake kube API: forced status {status} (fail_next)"),
        )
    } else {
        match (rt, kind) {
            (Route::Unknown, _) => {
                error_response(404, "the server could not find the requested resource")
            }
            (_, RequestKind::Other) => error_response(
                405,
                &format!("fake kube API: method {method} not allowed (pods are read-only here)"),
            ),
            (Route::Item(ns, name), _) => {
                let st = shared.state();
                match st.pods.get(&(ns, name.clone())) {
                    Some(p) => json_response(200, &if meta_only { partial(p) } else { p.clone() }),
                    None => json_response(404, &{
                        let mut s =
                            status_json(404, "NotFound", &format!("pods \"{name}\" not found"));
                        s["details"] = json!({"name": name, "kind": "pods"});
                        s
                    }),
                }
            }
            (Route::Collection(ns), k) => match scope(ns, &param) {
                Err(msg) => error_response(400, &msg),
                Ok(scope) if k == RequestKind::Watch => watch(&shared, scope, &param, meta_only),
                Ok(scope) => list(&shared, scope, &param, meta_only),
            },
        }
    };
    let status = resp.status().as_u16();
    if let Some(r) = shared
        .state()
        .requests
        .iter_mut()
        .rev()
        .find(|r| r.seq == seq)
    {
        r.status = status;
    }
    Ok(resp)
}

fn scope<'a>(
    ns: Option<String>,
    param: &impl Fn(&str) -> Option<&'a str>,
) -> Result<Scope, String> {
    Ok(Scope {
        namespace: ns,
        fields: parse_field_selector(param("fieldSelector").unwrap_or(""))?,
        labels: parse_label_selector(param("labelSelector").unwrap_or(""))?,
    })
}

fn list<'a>(
    shared: &Shared,
    scope: Scope,
    param: &impl Fn(&str) -> Option<&'a str>,
    meta_only: bool,
) -> Resp {
    let limit = match param("limit").map(|l| l.parse::<u64>()) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => return error_response(400, "limit: Invalid value: must be an integer"),
    };
    let mut st = shared.state();
    let (id, rv, offset) = match param("continue").filter(|c| !c.is_empty()) {
        Some(token) => {
            let parsed = token
                .strip_prefix("fake-continue.")
                .and_then(|t| t.split_once('.'))
                .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<usize>().ok()?)));
            let Some((id, offset)) = parsed else {
                return error_response(400, "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)");
            };
            match st.snapshots.get(&id) {
                Some(s) if s.rv >= st.compacted => (id, s.rv, offset),
                _ => {
                    return error_response(
                        410,
                        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
                    )
                }
            }
        }
        None => {
            let items: Vec<Value> = st
                .pods
                .values()
                .filter(|p| scope.matches(p))
                .cloned()
                .collect();
            let id = st.next_id;
            st.next_id += 1;
            let rv = st.rv;
            st.snapshots.insert(id, Snapshot { rv, items });
            (id, rv, 0)
        }
    };
    let all = &st.snapshots[&id].items;
    let end = if limit == 0 {
        all.len()
    } else {
        (offset + limit as usize).min(all.len())
    };
    let start = offset.min(all.len());
    let page: Vec<Value> = all[start..end]
        .iter()
        .map(|p| if meta_only { partial(p) } else { list_item(p) })
        .collect();
    let remaining = all.len() - end;
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if remaining > 0 {
        metadata["continue"] = json!(format!("fake-continue.{id}.{end}"));
        if scope.fields.is_empty() && scope.labels.is_empty() {
            metadata["remainingItemCount"] = json!(remaining);
        }
    } else {
        st.snapshots.remove(&id);
    }
    let (kind, api_version) = if meta_only {
        ("PartialObjectMetadataList", "meta.k8s.io/v1")
    } else {
        ("PodList", "v1")
    };
    drop(st);
    json_response(
        200,
        &json!({"kind": kind, "apiVersion": api_version, "metadata": metadata, "items": page}),
    )
}

fn watch<'a>(
    shared: &Arc<Shared>,
    scope: Scope,
    param: &impl Fn(&str) -> Option<&'a str>,
    meta_only: bool,
) -> Resp {
    let bookmarks = truthy(param("allowWatchBookmarks"));
    let send_initial = truthy(param("sendInitialEvents"));
    let from = match param("resourceVersion").unwrap_or("") {
        "" | "0" => None,
        v => match v.parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => {
                return error_response(
                    400,
                    &format!("resourceVersion: Invalid value: \"{v}\": strconv.ParseUint: parsing \"{v}\": invalid syntax"),
                )
            }
        },
    };
    if send_initial {
        if !bookmarks {
            return error_response(422, "ListOptions.meta.k8s.io \"\" is invalid: allowWatchBookmarks: Forbidden: sendInitialEvents requires setting allowWatchBookmarks=true");
        }
        if param("resourceVersionMatch") != Some("NotOlderThan") {
            return error_response(422, "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch=NotOlderThan");
        }
    }
    let timeout = match param("timeoutSeconds").map(|t| t.parse::<u64>()) {
        Some(Ok(n)) if n > 0 => Duration::from_secs(n),
        _ => DEFAULT_WATCH_TIMEOUT,
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let id;
    {
        let mut st = shared.state();
        id = st.next_id;
        st.next_id += 1;
        let obj = |p: &Value| if meta_only { partial(p) } else { p.clone() };
        match from {
            Some(r) if r < st.compacted => {
                let msg = format!("too old resource version: {r} ({})", st.compacted);
                let _ = tx.send(WatchMsg::Data(event_line(
                    "ERROR",
                    &status_json(410, "Expired", &msg),
                )));
                let _ = tx.send(WatchMsg::End);
            }
            _ => {
                if from.is_none() || send_initial {
                    // "Start at most recent/any": synthetic ADDED for the current state.
                    for p in st.pods.values().filter(|p| scope.matches(p)) {
                        let _ = tx.send(WatchMsg::Data(event_line("ADDED", &obj(p))));
                    }
                    if send_initial {
                        let _ = tx.send(WatchMsg::Data(event_line(
                            "BOOKMARK",
                            &bookmark_object(st.rv, meta_only, true),
                        )));
                    }
                } else if let Some(r) = from {
                    for c in st.history.iter().filter(|c| c.rv > r) {
                        if let Some((ty, o)) = watch_event(&scope, c) {
                            let _ = tx.send(WatchMsg::Data(event_line(ty, &obj(&o))));
                        }
                    }
                }
                st.watches.insert(
                    id,
                    WatchReg {
                        scope,
                        bookmarks,
                        meta_only,
                        tx,
                    },
                );
            }
        }
    }
    let body = WatchBody {
        id,
        rx,
        deadline: Box::pin(tokio::time::sleep(timeout)),
        shared: shared.clone(),
        done: false,
    };
    let mut r = Response::new(ApiBody::Watch(body));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

// ---------------------------------------------------------------------------
// Pod fixtures
// ---------------------------------------------------------------------------

fn hash_hex(seed: &str, salt: u64) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (salt, seed).hash(&mut h);
    format!("{:016x}", h.finish())
}

/// 64 hex digits derived from `seed` (container IDs, image digests).
fn hex64(seed: &str) -> String {
    (0..4).map(|i| hash_hex(seed, i)).collect()
}

/// A UUID-shaped id derived from `seed`.
fn uuid_from(seed: &str) -> String {
    let h = hex64(seed);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn ip_from(seed: &str, prefix: &str) -> String {
    let h = u64::from_str_radix(&hash_hex(seed, 99), 16).unwrap_or(0);
    format!("{prefix}.{}.{}", h % 256, (h >> 8) % 254 + 1)
}

/// A realistic running Pod as the API server returns it: scheduled on `node`,
/// phase Running with a podIP, all conditions True, one running ready
/// `containerStatuses` entry per container with a containerd `containerID`,
/// and (when `name` has a dash) an `ownerReferences` entry to the ReplicaSet
/// named `name` minus its last dash part. Deterministic for the same inputs.
pub fn pod_json(
    namespace: &str,
    name: &str,
    uid: &str,
    node: &str,
    labels: &[(&str, &str)],
    containers: &[&str],
) -> Value {
    let t0 = "2024-05-01T10:00:00Z";
    let t1 = "2024-05-01T10:00:05Z";
    let labels: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let image = |c: &str| format!("registry.example.com/{namespace}/{c}:1.4.2");
    let specs: Vec<Value> = containers
        .iter()
        .map(|c| {
            json!({
                "name": c,
                "image": image(c),
                "imagePullPolicy": "IfNotPresent",
                "resources": {},
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
            })
        })
        .collect();
    let statuses: Vec<Value> = containers
        .iter()
        .map(|c| {
            json!({
                "name": c,
                "state": {"running": {"startedAt": t1}},
                "lastState": {},
                "ready": true,
                "restartCount": 0,
                "image": image(c),
                "imageID": format!("registry.example.com/{namespace}/{c}@sha256:{}", hex64(&format!("image/{namespace}/{c}"))),
                "containerID": format!("containerd://{}", hex64(&format!("container/{uid}/{c}"))),
                "started": true,
            })
        })
        .collect();
    let pod_ip = ip_from(uid, "10.244");
    let host_ip = ip_from(node, "10.0");
    let condition = |ty: &str, at: &str| json!({"type": ty, "status": "True", "lastProbeTime": null, "lastTransitionTime": at});
    let mut metadata = json!({
        "name": name,
        "namespace": namespace,
        "uid": uid,
        "creationTimestamp": t0,
        "labels": labels,
    });
    if let Some((rs, _)) = name.rsplit_once('-').filter(|(rs, _)| !rs.is_empty()) {
        metadata["generateName"] = json!(format!("{rs}-"));
        metadata["ownerReferences"] = json!([{
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "name": rs,
            "uid": uuid_from(&format!("replicaset/{namespace}/{rs}")),
            "controller": true,
            "blockOwnerDeletion": true,
        }]);
    }
    json!({
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": metadata,
        "spec": {
            "containers": specs,
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default",
            "serviceAccount": "default",
            "nodeName": node,
            "securityContext": {},
            "schedulerName": "default-scheduler",
            "tolerations": [
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            ],
            "priority": 0,
            "enableServiceLinks": true,
            "preemptionPolicy": "PreemptLowerPriority",
        },
        "status": {
            "phase": "Running",
            "conditions": [
                condition("PodReadyToStartContainers", t1),
                condition("Initialized", t0),
                condition("Ready", t1),
                condition("ContainersReady", t1),
                condition("PodScheduled", t0),
            ],
            "hostIP": host_ip,
            "hostIPs": [{"ip": host_ip}],
            "podIP": pod_ip,
            "podIPs": [{"ip": pod_ip}],
            "startTime": t0,
            "containerStatuses": statuses,
            "qosClass": "BestEffort",
        },
    })
}
