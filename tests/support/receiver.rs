//! A fake Loki push endpoint for tailtrace's integration tests, benches and examples.
//!
//! Owns: [`Receiver`], an HTTP/1 server on 127.0.0.1 that decodes push requests
//! exactly as Loki's distributor does (`pkg/loghttp/push/push.go` and
//! `pkg/distributor`: see reference.md §1) and records every accepted entry and
//! every request, so a test can assert what tailtrace really sent.
//!
//! Design: deliberately independent of tailtrace's encoder. It has its own prost
//! structs for Loki's `push.proto`, its own parser for the `labels` selector
//! (PromQL `ParseMetric` syntax with Go escapes), and its own JSON decoding. The
//! decoding core, [`process_push`], is a pure function; the server around it is
//! one current-thread tokio runtime on a background std thread, stopped on Drop.
//! [`Mode`] switches the answer at run time (forced status, slow, dropped
//! connection, accept-then-drop, fail the next N). [`Options::observer`]
//! hands each push's accepted entries and arrival time to a callback (benches
//! check every line and measure latency that way without storing entries).
//! Files: this one (API and server), `loki_push.rs` (the pure decode/validate
//! core, `receiver::push`), `loki_labels.rs` (selector parsing and Go
//! quoting, `receiver::selector`).
//!
//! Loki behaviours emulated: `Content-Encoding` "", `snappy`, `gzip`, raw
//! `deflate` (Go's `flate.NewReader`), anything else 400; `Content-Type` parsed
//! like Go's `mime.ParseMediaType` (so a missing header is a 400 "mime: no media
//! type", as in every Loki release); `application/json` is JSON, anything else is
//! snappy-block protobuf; whole-request 400 for malformed bodies and unparseable
//! labels; per-stream/per-entry validation with partial success (valid entries
//! stored, answer 400 with Loki's grouped error text); empty-valued labels
//! dropped; tenant from `X-Scope-OrgID` with dskit's validation; 401 "no org id"
//! with auth on; 413 over `max_recv_msg_size`; 422 for zero streams.
//!
//! Deliberate differences (stricter, to catch agent bugs): labels must be valid
//! UTF-8; nothing is de-duplicated (Loki drops an entry identical to the
//! stream's last one; see [`Receiver::duplicates`]); structured-metadata names
//! are stored as sent (Loki normalises them); no `service_name` is added; the
//! header tenant is recorded even with auth off (Loki would store under `fake`).
//!
//! Must never: bind anything but 127.0.0.1, or depend on tailtrace's crate.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

#[path = "loki_push.rs"]
pub mod push;
#[path = "loki_labels.rs"]
pub mod selector;

// Re-exports, so callers need not know the split; unused in most test crates.
#[allow(unused_imports)]
pub use push::{
    parse_media_type, process_push, proto, validate_tenant, PushMeta, PushOutcome,
    MAX_DECOMPRESSED_SIZE, MAX_LABEL_NAMES_PER_SERIES, MAX_LABEL_NAME_LENGTH,
    MAX_LABEL_VALUE_LENGTH, MAX_STRUCTURED_METADATA_COUNT, MAX_STRUCTURED_METADATA_SIZE,
    MISSING_LABELS_MSG, MISSING_STREAMS_MSG,
};
#[allow(unused_imports)]
pub use selector::{go_quote, parse_selector, render_labels};

/// Loki's default `server.http_server_max_recv_msg_size`: larger bodies get 413.
pub const DEFAULT_MAX_RECV_MSG_SIZE: usize = 100 << 20;

/// How the receiver is configured; `Options::default()` is a stock Loki with
/// `auth_enabled: false`.
#[derive(Clone, Debug)]
pub struct Options {
    /// `limits_config.max_line_size` in bytes; 0 = unlimited. Default 256 KiB.
    pub max_line_size: usize,
    /// With auth on, a push without `X-Scope-OrgID` gets 401 "no org id".
    /// With auth off it is stored under tenant "fake".
    pub auth_enabled: bool,
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Largest accepted body (compressed, as received); bigger is 413.
    pub max_recv_msg_size: usize,
    /// When false only counts are kept (for benches): `entries()` stays empty.
    pub keep_entries: bool,
    /// Loki's `reject_old_samples_max_age` (7 d in Loki); None = off (default,
    /// so fixtures with old timestamps are accepted).
    pub reject_old_samples_max_age: Option<Duration>,
    /// Loki's `creation_grace_period` (10 min in Loki); None = off (default).
    pub creation_grace_period: Option<Duration>,
    /// Called on the server thread with each push's accepted entries and the
    /// push's wall-clock arrival time; None = off (default). For benches that
    /// check every line and measure latency without keeping entries.
    pub observer: Option<Observer>,
    /// Loki's `limits_config.allow_structured_metadata` (default true; false
    /// in Loki 2.x and in Loki 3 on schemas before v13): entries carrying
    /// structured metadata are refused one by one, the rest stored.
    pub allow_structured_metadata: bool,
}

/// A per-push callback: `(accepted entries, arrival time in ns since the Unix
/// epoch, taken when the whole body was read)`. It runs on the receiver's only
/// thread, before the push is answered, so it must be quick.
#[derive(Clone)]
pub struct Observer(pub Arc<ObserverFn>);

/// The callback inside an [`Observer`].
pub type ObserverFn = dyn Fn(&[Received], i64) + Send + Sync;

impl Observer {
    pub fn new(f: impl Fn(&[Received], i64) + Send + Sync + 'static) -> Observer {
        Observer(Arc::new(f))
    }
}

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Observer(..)")
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_line_size: 256 * 1024,
            auth_enabled: false,
            port: 0,
            max_recv_msg_size: DEFAULT_MAX_RECV_MSG_SIZE,
            keep_entries: true,
            reject_old_samples_max_age: None,
            creation_grace_period: None,
            observer: None,
            allow_structured_metadata: true,
        }
    }
}

/// How the receiver answers pushes; switch with [`Receiver::set_mode`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Decode, validate, store, answer like Loki.
    Normal,
    /// Answer this status to every push and store nothing.
    Status(u16),
    /// Wait this long after reading the body, then behave normally.
    Slow(Duration),
    /// Read the body, then close the socket without answering; store nothing.
    DropConnection,
    /// Store the request normally, then close the socket without answering
    /// (Loki got the data but the client never learns it: a resend duplicates).
    AcceptThenDrop,
    /// Answer `status` to the next `count` pushes (storing nothing), then Normal.
    FailNext { count: usize, status: u16 },
}

/// One entry Loki accepted, as it would store it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    pub tenant: String,
    /// Stream labels after Loki's parsing: empty values dropped, sorted.
    pub labels: BTreeMap<String, String>,
    /// The `labels` string exactly as sent (JSON: the stream object rendered
    /// the way Loki renders it).
    pub labels_raw: String,
    pub ts_ns: i64,
    /// The line, lossily decoded for display.
    pub line: String,
    /// The line exactly as sent.
    pub line_bytes: Vec<u8>,
    /// False when the line was not valid UTF-8 (Loki stores it anyway).
    pub valid_utf8: bool,
    /// Structured metadata in the order sent.
    pub metadata: Vec<(String, String)>,
}

impl Received {
    /// Canonical rendering of the labels, `{a="b", c="d"}` (Go-quoted values).
    pub fn canonical_labels(&self) -> String {
        render_labels(self.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }
}

/// One push request and how it was answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestLog {
    pub path: String,
    /// HTTP status answered; 0 when the connection was dropped instead.
    pub status: u16,
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    /// The `X-Scope-OrgID` header as sent.
    pub tenant: Option<String>,
    /// Entries decoded from the body (0 if it could not be decoded or the mode
    /// refused it before decoding).
    pub entries: usize,
    /// Entries stored.
    pub accepted: usize,
    /// Body size as received (compressed).
    pub bytes: usize,
    /// The error text answered (first line is what Promtail logs).
    pub error: Option<String>,
    /// Every header as sent (names lower-case).
    pub headers: Vec<(String, String)>,
}

impl RequestLog {
    /// The value of header `name` (lower-case), if sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct State {
    entries: Vec<Received>,
    count: usize,
    requests: Vec<RequestLog>,
    /// Lines stored by pushes answered by a dropped connection
    /// ([`Mode::AcceptThenDrop`]): the client will send them again.
    stored_then_dropped: Vec<String>,
    /// Where in `entries` each push that stored something began.
    store_starts: Vec<usize>,
}

struct Shared {
    opts: Options,
    mode: Mutex<Mode>,
    /// Tenants (`X-Scope-OrgID`) answered with a forced status, whatever
    /// the mode (a per-tenant rate limit, say).
    refused: Mutex<BTreeMap<String, u16>>,
    state: Mutex<State>,
    /// Push requests being handled (read, decoded, stored), including one
    /// whose client has already gone away.
    busy: std::sync::atomic::AtomicUsize,
}

/// Counts a push request as being handled until dropped (completed or
/// cancelled with its connection).
struct Busy(Arc<Shared>);

impl Busy {
    fn new(shared: &Arc<Shared>) -> Busy {
        shared
            .busy
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Busy(shared.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0
            .busy
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn mode(&self) -> MutexGuard<'_, Mode> {
        self.mode.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running fake Loki. Dropping it stops the server and closes connections.
pub struct Receiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Receiver {
    /// Starts on 127.0.0.1 with a free port and default options.
    pub fn start() -> Receiver {
        Self::start_with(Options::default())
    }

    /// Starts with `opts`; panics if the port cannot be bound (test support).
    pub fn start_with(opts: Options) -> Receiver {
        match Self::try_start_with(opts) {
            Ok(r) => r,
            Err(e) => panic!("fake Loki receiver failed to start: {e}"),
        }
    }

    /// Starts with `opts`, reporting bind/runtime errors.
    pub fn try_start_with(opts: Options) -> std::io::Result<Receiver> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", opts.port))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let shared = Arc::new(Shared {
            opts,
            mode: Mutex::new(Mode::Normal),
            refused: Mutex::new(BTreeMap::new()),
            state: Mutex::new(State::default()),
            busy: std::sync::atomic::AtomicUsize::new(0),
        });
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sh = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("fake-loki-{}", addr.port()))
            .spawn(move || rt.block_on(serve(listener, sh, rx)))?;
        Ok(Receiver {
            addr,
            shared,
            stop: Some(tx),
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/loki/api/v1/push`
    pub fn push_url(&self) -> String {
        format!("http://{}/loki/api/v1/push", self.addr)
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn options(&self) -> &Options {
        &self.shared.opts
    }

    pub fn set_mode(&self, m: Mode) {
        *self.shared.mode() = m;
    }

    /// Answers `status` to every push of `tenant` (storing nothing) until
    /// called again with `None`; other tenants are served as the mode says.
    pub fn refuse_tenant(&self, tenant: &str, status: Option<u16>) {
        let mut r = self
            .shared
            .refused
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match status {
            Some(s) => {
                r.insert(tenant.to_string(), s);
            }
            None => {
                r.remove(tenant);
            }
        }
    }

    pub fn mode(&self) -> Mode {
        *self.shared.mode()
    }

    /// Every accepted entry, in arrival order.
    pub fn entries(&self) -> Vec<Received> {
        self.shared.state().entries.clone()
    }

    /// The accepted lines (lossy), in arrival order.
    pub fn lines(&self) -> Vec<String> {
        self.shared
            .state()
            .entries
            .iter()
            .map(|e| e.line.clone())
            .collect()
    }

    /// Accepted entries grouped by (tenant, canonical labels), arrival order
    /// within each stream.
    pub fn streams(&self) -> BTreeMap<(String, String), Vec<Received>> {
        let mut out: BTreeMap<(String, String), Vec<Received>> = BTreeMap::new();
        for e in self.shared.state().entries.iter() {
            out.entry((e.tenant.clone(), e.canonical_labels()))
                .or_default()
                .push(e.clone());
        }
        out
    }

    /// Entries identical (tenant, labels, timestamp, line, metadata) to an
    /// earlier accepted one: what a resend produced. Loki would absorb such a
    /// duplicate only if it were the stream's last entry.
    pub fn duplicates(&self) -> Vec<Received> {
        let st = self.shared.state();
        let mut seen = HashSet::new();
        let mut dups = Vec::new();
        for e in st.entries.iter() {
            let key = (&e.tenant, &e.labels, e.ts_ns, &e.line_bytes, &e.metadata);
            if !seen.insert(key) {
                dups.push(e.clone());
            }
        }
        dups
    }

    /// Number of accepted entries (kept even when `keep_entries` is false).
    pub fn count(&self) -> usize {
        self.shared.state().count
    }

    /// Waits (up to `timeout`, a give-up bound) until no push request is
    /// being handled: one a client gave up on (an agent stopped or killed
    /// mid-push) may still be stored after the client is gone. Returns
    /// whether the receiver became idle.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        self.wait_until(timeout, |r| {
            r.shared.busy.load(std::sync::atomic::Ordering::SeqCst) == 0
        })
    }

    /// The lines stored by pushes whose connection was then dropped
    /// ([`Mode::AcceptThenDrop`]), once per such push: each may arrive
    /// once more, resent.
    pub fn stored_then_dropped(&self) -> Vec<String> {
        self.shared.state().stored_then_dropped.clone()
    }

    /// For each push that stored entries, in order, the index in
    /// [`Receiver::entries`] (and [`Receiver::lines`]) of its first one.
    pub fn store_starts(&self) -> Vec<usize> {
        self.shared.state().store_starts.clone()
    }

    /// Every push request, in arrival order.
    pub fn requests(&self) -> Vec<RequestLog> {
        self.shared.state().requests.clone()
    }

    /// Polls `f` every 10 ms until it holds or `timeout` passes (a give-up
    /// bound, not a timing assertion). Returns whether it held.
    pub fn wait_until(&self, timeout: Duration, f: impl Fn(&Receiver) -> bool) -> bool {
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

    /// Waits until at least `n` entries were accepted.
    pub fn wait_for_count(&self, n: usize, timeout: Duration) -> bool {
        self.wait_until(timeout, |r| r.count() >= n)
    }

    /// Forgets entries, counts and request logs (the mode is kept).
    pub fn clear(&self) {
        let mut st = self.shared.state();
        st.entries.clear();
        st.store_starts.clear();
        st.count = 0;
        st.requests.clear();
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
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
            eprintln!("fake Loki receiver: cannot register listener: {e}");
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
                // EMFILE and friends: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }
    // Returning drops the runtime in the caller, which cancels every connection.
}

/// Returned by the service to make hyper close the connection unanswered.
#[derive(Debug)]
struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped on purpose (Mode::DropConnection)")
    }
}

impl std::error::Error for DropConnection {}

type Resp = Response<Full<Bytes>>;

fn respond(status: u16, body: &str) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body.to_owned())));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if !body.is_empty() {
        // What Go's http.Error sets.
        r.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        r.headers_mut().insert(
            "x-content-type-options",
            HeaderValue::from_static("nosniff"),
        );
    }
    r
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Resp, DropConnection> {
    let path = req.uri().path().to_owned();
    match path.as_str() {
        "/ready" if req.method() == Method::GET => Ok(respond(200, "ready\n")),
        "/loki/api/v1/push" if req.method() == Method::POST => push(shared, path, req).await,
        "/loki/api/v1/push" | "/ready" => Ok(respond(405, "method not allowed\n")),
        _ => Ok(respond(404, "404 page not found\n")),
    }
}

/// What `handle` does with a push after reading the body.
enum Action {
    Process,
    Refuse(u16),
    Drop,
    ProcessThenDrop,
}

async fn push(
    shared: Arc<Shared>,
    path: String,
    req: Request<Incoming>,
) -> Result<Resp, DropConnection> {
    let _busy = Busy::new(&shared);
    let meta = PushMeta::from_headers(&path, req.headers());
    let limit = shared.opts.max_recv_msg_size;
    let (body, total) = match read_body(req.into_body(), limit).await {
        Ok(b) => b,
        Err(e) => {
            let msg = format!("failed to read request body: {e}");
            log_request(&shared, &meta, 400, 0, 0, 0, Some(msg.clone()));
            return Ok(respond(400, &format!("{msg}\n")));
        }
    };
    if total > limit {
        let msg = format!("message size too large than max ({total} vs {limit})");
        log_request(&shared, &meta, 413, total, 0, 0, Some(msg.clone()));
        return Ok(respond(413, &format!("{msg}\n")));
    }

    let refused = {
        let r = shared.refused.lock().unwrap_or_else(|e| e.into_inner());
        meta.org_id.as_ref().and_then(|t| r.get(t).copied())
    };
    let (action, delay) = if let Some(status) = refused {
        (Action::Refuse(status), None)
    } else {
        let mut mode = shared.mode();
        match *mode {
            Mode::Normal => (Action::Process, None),
            Mode::Status(s) => (Action::Refuse(s), None),
            Mode::Slow(d) => (Action::Process, Some(d)),
            Mode::DropConnection => (Action::Drop, None),
            Mode::AcceptThenDrop => (Action::ProcessThenDrop, None),
            Mode::FailNext { count, status } => {
                *mode = if count <= 1 {
                    Mode::Normal
                } else {
                    Mode::FailNext {
                        count: count - 1,
                        status,
                    }
                };
                if count == 0 {
                    (Action::Process, None)
                } else {
                    (Action::Refuse(status), None)
                }
            }
        }
    };
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    match action {
        Action::Refuse(status) => {
            let msg = format!("fake Loki: forced status {status} (test mode), nothing stored");
            log_request(&shared, &meta, status, total, 0, 0, Some(msg.clone()));
            Ok(respond(status, &format!("{msg}\n")))
        }
        Action::Drop => {
            log_request(
                &shared,
                &meta,
                0,
                total,
                0,
                0,
                Some("connection dropped".into()),
            );
            Err(DropConnection)
        }
        Action::Process | Action::ProcessThenDrop => {
            let arrived = now_ns();
            let out = process_push(&shared.opts, &meta, &body, arrived);
            if let Some(obs) = &shared.opts.observer {
                (obs.0)(&out.accepted, arrived);
            }
            let accepted = out.accepted.len();
            {
                let mut st = shared.state();
                st.count += accepted;
                if matches!(action, Action::ProcessThenDrop) {
                    st.stored_then_dropped
                        .extend(out.accepted.iter().map(|e| e.line.clone()));
                }
                if shared.opts.keep_entries {
                    if accepted > 0 {
                        let at = st.entries.len();
                        st.store_starts.push(at);
                    }
                    st.entries.extend(out.accepted);
                }
            }
            if matches!(action, Action::ProcessThenDrop) {
                log_request(&shared, &meta, 0, total, out.decoded, accepted, out.error);
                return Err(DropConnection);
            }
            log_request(
                &shared,
                &meta,
                out.status,
                total,
                out.decoded,
                accepted,
                out.error.clone(),
            );
            Ok(match out.error {
                Some(e) => respond(out.status, &format!("{e}\n")),
                None => respond(out.status, ""),
            })
        }
    }
}

/// Reads the whole body; beyond `limit` it keeps draining (up to a bound) so
/// the 413 reaches the client cleanly instead of a reset. Returns the kept
/// bytes and the total size seen.
async fn read_body(mut body: Incoming, limit: usize) -> Result<(Vec<u8>, usize), hyper::Error> {
    let drain_cap = limit.saturating_mul(2).max(limit.saturating_add(1 << 20));
    let mut buf = Vec::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        if let Ok(data) = frame.into_data() {
            total = total.saturating_add(data.len());
            if total <= limit {
                buf.extend_from_slice(&data);
            } else {
                buf = Vec::new();
                if total > drain_cap {
                    break;
                }
            }
        }
    }
    Ok((buf, total))
}

fn log_request(
    shared: &Shared,
    meta: &PushMeta,
    status: u16,
    bytes: usize,
    entries: usize,
    accepted: usize,
    error: Option<String>,
) {
    shared.state().requests.push(RequestLog {
        path: meta.path.clone(),
        status,
        content_type: meta.content_type.clone(),
        content_encoding: meta.content_encoding.clone(),
        tenant: meta.org_id.clone(),
        entries,
        accepted,
        bytes,
        error,
        headers: meta.headers.clone(),
    });
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
