//! One client: the delivery tasks that take entries, batch them and push
//! them to one Loki (or print them, in dry-run).
//!
//! Owns: [`start`] (entries from the fan-out's queue, no spool),
//! [`start_spool`] (entries read from the spool, one lane per tenant) and
//! [`ClientHandle`]. Shape:
//! - a *batcher* takes entries from its source (the queue, capacity
//!   [`CHANNEL_CAPACITY`], or a spool lane's reader), routes each one
//!   ([`Router`]: tenant, external labels), applies `max_line_size`, and
//!   fills one [`Batch`] per tenant, closing it on `batchsize` or
//!   `batchwait`;
//! - one *sender* task **per tenant** encodes each batch once and pushes it,
//!   retrying per [`super::backoff`]. At most one request per tenant is in
//!   flight (streams stay ordered: a stream belongs to one tenant), and one
//!   tenant answering 429 never holds another tenant's batches back. Without
//!   a spool the batches queue in memory behind a stuck tenant until the
//!   memory budget is spent (then reading pauses for everyone); with the
//!   spool each tenant is a lane with its own cursor, so a stuck tenant only
//!   stops its own lane, and a lane reads on only while its one-batch queue
//!   has room (what it has not read stays in the spool, not in memory).
//!
//! Acknowledgements: an entry is acked when Loki accepted its batch, or when
//! it was deliberately dropped and counted (`promtail_dropped_entries_total`
//! with reason `ingester_error`, `rate_limited`, `line_too_long`,
//! `empty_labels` or `encode_error`). Spool entries carry acks of their
//! lane's cursor, file entries of their file's position: the same path.
//!
//! Shutdown: when the source ends (the queue closed, or the spool lanes
//! stopped), the open batches are flushed and pushed, all of it bounded by
//! `shutdown_timeout`; a push or a retry wait still running at the deadline
//! is cut. Entries not accepted by then are dropped *without* ack — their
//! positions (or spool cursors) are not advanced, so they are sent again
//! after the restart. Then the task ends.
//!
//! Must never: ack an entry Loki has not accepted unless the drop is counted;
//! have two requests of one tenant in flight; block a thread.

use super::backoff::{
    classify, exhausted_reason, Backoff, Outcome, Verdict, REASON_INGESTER_ERROR,
};
use super::batch::{Batch, Batcher};
use super::encode::Encoder;
use super::http::{host_label, parse_url, Pusher};
use super::prepare::{
    limit_line, LineLimit, Route, Router, REASON_EMPTY_LABELS, REASON_LINE_TOO_LONG,
};
use crate::config::{ClientConfig, LimitsConfig};
use crate::entry::Entry;
use crate::metrics::{labels, Metrics};
use prometheus_client::metrics::counter::Counter;
use rand::SeedableRng;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Capacity of a client's queue, in chunks. The queue carries chunks of
/// entries (a reader's turn on a file), not single entries: one wake-up of
/// the batcher per chunk instead of per line. Memory is bounded by the
/// fan-out's budget, not by this number.
pub const CHANNEL_CAPACITY: usize = 64;

/// Chunks taken off the queue without yielding between timer checks.
pub(super) const BURST: usize = 16;

/// Drop reason when a batch cannot be encoded (practically never).
pub const REASON_ENCODE_ERROR: &str = "encode_error";

/// What a client does with its entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Push to Loki.
    Push,
    /// Print `<timestamp>\t<labels>\t<line>` to stdout and ack, as
    /// Promtail's `-dry-run` does.
    DryRun,
}

/// A running client.
pub struct ClientHandle {
    /// Where entries go, in chunks (the fan-out holds a clone). Dropping
    /// every sender starts the client's shutdown. `None` for a spool client
    /// (it reads the spool; the agent's stop signal ends it).
    pub tx: Option<mpsc::Sender<Vec<Entry>>>,
    /// Ends once the source is closed and drained (or abandoned at the
    /// shutdown deadline).
    pub task: JoinHandle<()>,
    /// The URL's `host[:port]`, as in the metrics' `host` label.
    pub name: String,
}

/// Where a batcher gets its entries.
pub(super) trait EntrySource: Send {
    /// The next entries; `None` when the source is closed.
    fn next_chunk(&mut self) -> impl Future<Output = Option<Vec<Entry>>> + Send;
    /// More entries if available at once.
    fn try_next(&mut self) -> Option<Vec<Entry>> {
        None
    }
    /// Resolves once the source is closing (`next_chunk` is about to end):
    /// a batcher waiting for room goes on to its final flush then.
    fn closing(&self) -> impl Future<Output = ()> + Send + 'static {
        std::future::pending()
    }
}

impl EntrySource for mpsc::Receiver<Vec<Entry>> {
    fn next_chunk(&mut self) -> impl Future<Output = Option<Vec<Entry>>> + Send {
        self.recv()
    }
    fn try_next(&mut self) -> Option<Vec<Entry>> {
        self.try_recv().ok()
    }
}

impl EntrySource for crate::spool::reader::LaneReader {
    fn next_chunk(&mut self) -> impl Future<Output = Option<Vec<Entry>>> + Send {
        self.next()
    }
    fn closing(&self) -> impl Future<Output = ()> + Send + 'static {
        self.stopping()
    }
}

/// Starts a client's delivery task. Must be called inside a tokio runtime.
/// Errors name the offending config key.
pub fn start(
    cfg: &ClientConfig,
    limits: &LimitsConfig,
    metrics: Arc<Metrics>,
    mode: Mode,
    shutdown_timeout: Duration,
) -> Result<ClientHandle, String> {
    let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
    let router = Router::new(&cfg.external_labels, cfg.tenant_id.as_deref());
    match mode {
        Mode::DryRun => {
            let name = parse_url(cfg.url.expose())
                .map(|u| host_label(&u))
                .unwrap_or_else(|_| "dry-run".to_string());
            let prep = Prep::new(router, limits, ClientMetrics::new(metrics, &name));
            let task = tokio::spawn(super::dryrun::run(rx, prep));
            Ok(ClientHandle {
                tx: Some(tx),
                task,
                name,
            })
        }
        Mode::Push => {
            let (name, senders) = SenderFactory::new(cfg, metrics)?;
            let prep = Prep::new(router, limits, senders.metrics.clone());
            let batcher = Batcher::new(cfg.batchsize.max(1), cfg.batchwait);
            let dispatch = Dispatch::PerTenant {
                lanes: HashMap::new(),
                tasks: Vec::new(),
                senders,
            };
            let task = tokio::spawn(run_batcher(rx, prep, batcher, dispatch, shutdown_timeout));
            Ok(ClientHandle {
                tx: Some(tx),
                task,
                name,
            })
        }
    }
}

/// The key a client's spool cursors are saved under: its `name`, else its
/// URL without credentials, plus its `tenant_id`.
pub fn spool_key(cfg: &ClientConfig) -> String {
    if let Some(n) = cfg.name.as_deref().filter(|n| !n.is_empty()) {
        return n.to_string();
    }
    let url = match reqwest::Url::parse(cfg.url.expose()) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => cfg.url.redacted(),
    };
    match cfg.tenant_id.as_deref().filter(|t| !t.is_empty()) {
        Some(t) => format!("{url}#tenant={t}"),
        None => url,
    }
}

/// Starts a client that reads the spool: one lane (reader, batcher,
/// sender) per tenant, each from its own cursor; lanes for tenants met
/// while reading are started as they appear. Ends once `stop` is set and
/// every lane has flushed (bounded by `shutdown_timeout`).
pub fn start_spool(
    cfg: &ClientConfig,
    key: &str,
    limits: &LimitsConfig,
    metrics: Arc<Metrics>,
    spool: crate::spool::Spool,
    stop: watch::Receiver<bool>,
    shutdown_timeout: Duration,
) -> Result<ClientHandle, String> {
    let (name, senders) = SenderFactory::new(cfg, metrics)?;
    let default_tenant = cfg.tenant_id.clone().unwrap_or_default();
    let lane_cfg = LaneCfg {
        external: cfg.external_labels.clone(),
        tenant_id: cfg.tenant_id.clone(),
        limits: limits.clone(),
        batchsize: cfg.batchsize.max(1),
        batchwait: cfg.batchwait,
        shutdown_timeout,
    };
    let key = key.to_string();
    // Registered now, so that the spool knows every client's lanes once
    // the clients have started.
    let initial = spool.start_lanes(&key, &default_tenant);
    let task = tokio::spawn(async move {
        let (new_tx, mut new_rx) = mpsc::unbounded_channel();
        let mut lanes = Vec::new();
        for (tenant, start, tracker) in initial {
            let r = crate::spool::reader::LaneReader::new(
                spool.clone(),
                &key,
                &tenant,
                &default_tenant,
                start,
                tracker,
                stop.clone(),
                new_tx.clone(),
            );
            lanes.push(AbortOnDrop(tokio::spawn(run_lane(
                r,
                lane_cfg.clone(),
                senders.clone(),
            ))));
        }
        let mut stopping = stop.clone();
        loop {
            tokio::select! {
                n = new_rx.recv() => {
                    let Some((tenant, start, tracker)) = n else { break };
                    let r = crate::spool::reader::LaneReader::new(
                        spool.clone(), &key, &tenant, &default_tenant, start, tracker, stop.clone(), new_tx.clone(),
                    );
                    lanes.push(AbortOnDrop(tokio::spawn(run_lane(r, lane_cfg.clone(), senders.clone()))));
                }
                _ = stopping.changed() => {
                    if *stopping.borrow() { break }
                }
            }
        }
        for l in &mut lanes {
            let _ = (&mut l.0).await;
        }
    });
    Ok(ClientHandle {
        tx: None,
        task,
        name,
    })
}

/// What every lane of a spool client is configured with.
#[derive(Clone)]
struct LaneCfg {
    external: std::collections::BTreeMap<String, String>,
    tenant_id: Option<String>,
    limits: LimitsConfig,
    batchsize: usize,
    batchwait: Duration,
    shutdown_timeout: Duration,
}

async fn run_lane(reader: crate::spool::reader::LaneReader, c: LaneCfg, senders: SenderFactory) {
    let router = Router::new(&c.external, c.tenant_id.as_deref());
    let prep = Prep::new(router, &c.limits, senders.metrics.clone());
    let batcher = Batcher::new(c.batchsize, c.batchwait);
    let (tx, rx) = mpsc::channel::<Batch>(1);
    let task = AbortOnDrop(senders.spawn(rx, Arc::new(Pace::default())));
    let dispatch = Dispatch::Single { tx, task, senders };
    run_batcher(reader, prep, batcher, dispatch, c.shutdown_timeout).await;
}

/// Builds the sender tasks of one client (one per tenant or lane).
#[derive(Clone)]
pub(super) struct SenderFactory {
    pusher: Pusher,
    encoding: crate::config::PushEncoding,
    compression: crate::config::Compression,
    metrics: Arc<ClientMetrics>,
    backoff: crate::config::BackoffConfig,
    drop_rate_limited: bool,
    deadline_tx: Arc<watch::Sender<Option<Instant>>>,
}

impl SenderFactory {
    fn new(cfg: &ClientConfig, metrics: Arc<Metrics>) -> Result<(String, SenderFactory), String> {
        let url = parse_url(cfg.url.expose())?;
        let name = host_label(&url);
        let pusher = Pusher::new(cfg)?;
        let (dtx, _) = watch::channel::<Option<Instant>>(None);
        Ok((
            name.clone(),
            SenderFactory {
                pusher,
                encoding: cfg.encoding,
                compression: cfg.compression,
                metrics: ClientMetrics::new(metrics, &name),
                backoff: cfg.backoff_config.clone(),
                drop_rate_limited: cfg.drop_rate_limited_batches,
                deadline_tx: Arc::new(dtx),
            },
        ))
    }

    /// Starts a sender fed by `rx`; its [`Pace`] is what the batcher
    /// watches.
    fn spawn<R: BatchSource>(&self, rx: R, pace: Arc<Pace>) -> JoinHandle<()> {
        let sender = Sender {
            pace,
            pusher: self.pusher.clone(),
            encoder: Encoder::new(self.encoding, self.compression),
            metrics: self.metrics.clone(),
            backoff: self.backoff.clone(),
            drop_rate_limited: self.drop_rate_limited,
            deadline: self.deadline_tx.subscribe(),
            no_metadata: false,
        };
        tokio::spawn(sender.run(rx))
    }

    /// Starts the shutdown clock of this sender family.
    fn set_deadline(&self, at: Instant) {
        self.deadline_tx.send_replace(Some(at));
    }
}

/// A sender's queue of batches.
pub(super) trait BatchSource: Send + 'static {
    fn recv(&mut self) -> impl Future<Output = Option<Batch>> + Send;
}

impl BatchSource for mpsc::Receiver<Batch> {
    fn recv(&mut self) -> impl Future<Output = Option<Batch>> + Send {
        mpsc::Receiver::recv(self)
    }
}

impl BatchSource for mpsc::UnboundedReceiver<Batch> {
    fn recv(&mut self) -> impl Future<Output = Option<Batch>> + Send {
        mpsc::UnboundedReceiver::recv(self)
    }
}

/// One tenant's sender: its queue and its pace.
type TenantQueue = (mpsc::UnboundedSender<Batch>, Arc<Pace>);

/// How closed batches reach the senders. See the module docs.
enum Dispatch {
    /// One sender per tenant behind an unbounded queue (memory is bounded
    /// by the fan-out's budget): a stuck tenant never blocks the batcher.
    PerTenant {
        lanes: HashMap<Option<Arc<str>>, TenantQueue>,
        tasks: Vec<AbortOnDrop>,
        senders: SenderFactory,
    },
    /// A spool lane: one tenant, one sender, one batch queued; the lane's
    /// reader waits while it is full (bounded memory, nothing lost: the
    /// spool holds the rest).
    Single {
        tx: mpsc::Sender<Batch>,
        task: AbortOnDrop,
        senders: SenderFactory,
    },
}

impl Dispatch {
    async fn forward(&mut self, b: Batch) {
        match self {
            Dispatch::PerTenant {
                lanes,
                tasks,
                senders,
            } => {
                let key: Option<Arc<str>> = b.tenant().map(Arc::from);
                let (tx, pace) = lanes.entry(key).or_insert_with(|| {
                    let (tx, rx) = mpsc::unbounded_channel();
                    let pace = Arc::new(Pace::default());
                    tasks.push(AbortOnDrop(senders.spawn(rx, pace.clone())));
                    (tx, pace)
                });
                pace.queued();
                if let Err(mpsc::error::SendError(b)) = tx.send(b) {
                    tracing::error!(
                        entries = b.len(),
                        "client sender is gone; batch not delivered"
                    );
                    return;
                }
                let pace = pace.clone();
                pace.wait_turn().await;
            }
            Dispatch::Single { tx, .. } => {
                if let Err(mpsc::error::SendError(b)) = tx.send(b).await {
                    // Only if the sender task died: the entries' positions are poisoned.
                    tracing::error!(
                        entries = b.len(),
                        "client sender is gone; batch not delivered"
                    );
                }
            }
        }
    }

    /// Waits until a closed batch would be taken at once. A spool lane
    /// reads its next chunk only then: one batch pushed, one queued, and
    /// the next one read from the spool while the queued one is pushed —
    /// not a third batch read ahead and held in memory, waiting (the spool
    /// holds it already).
    async fn room(&self) {
        if let Dispatch::Single { tx, .. } = self {
            // The permit is given back at once: this batcher is the queue's
            // only sender, so the slot stays free for it.
            drop(tx.reserve().await);
        }
    }

    fn set_deadline(&self, at: Instant) {
        match self {
            Dispatch::PerTenant { senders, .. } | Dispatch::Single { senders, .. } => {
                senders.set_deadline(at)
            }
        }
    }

    /// Closes the queues and waits for every sender to finish.
    async fn finish(self) {
        let tasks = match self {
            Dispatch::PerTenant { lanes, tasks, .. } => {
                drop(lanes);
                tasks
            }
            Dispatch::Single { tx, task, .. } => {
                drop(tx);
                vec![task]
            }
        };
        for mut t in tasks {
            if let Err(e) = (&mut t.0).await {
                tracing::error!(error = %e, "client sender task failed");
            }
        }
    }
}

/// The client's metric handles (`host` fixed; tenant/reason looked up on
/// the rarer paths).
pub(super) struct ClientMetrics {
    m: Arc<Metrics>,
    host: String,
    encoded: Counter,
    sent_bytes: Counter,
    sent_entries: Counter,
}

impl ClientMetrics {
    fn new(m: Arc<Metrics>, host: &str) -> Arc<Self> {
        let h = labels(&[("host", host)]);
        let encoded = m.encoded_bytes_total.get_or_create(&h).clone();
        let sent_bytes = m.sent_bytes_total.get_or_create(&h).clone();
        let sent_entries = m.sent_entries_total.get_or_create(&h).clone();
        Arc::new(ClientMetrics {
            m,
            host: host.to_string(),
            encoded,
            sent_bytes,
            sent_entries,
        })
    }

    fn htr(&self, tenant: Option<&str>, reason: &str) -> crate::metrics::L {
        labels(&[
            ("host", &self.host),
            ("tenant", tenant.unwrap_or("")),
            ("reason", reason),
        ])
    }

    pub(super) fn dropped(&self, tenant: Option<&str>, reason: &str, entries: u64, bytes: u64) {
        let l = self.htr(tenant, reason);
        self.m
            .dropped_entries_total
            .get_or_create(&l)
            .inc_by(entries);
        self.m.dropped_bytes_total.get_or_create(&l).inc_by(bytes);
    }

    fn mutated(&self, tenant: Option<&str>, reason: &str, entries: u64, bytes: u64) {
        let l = self.htr(tenant, reason);
        self.m
            .mutated_entries_total
            .get_or_create(&l)
            .inc_by(entries);
        self.m.mutated_bytes_total.get_or_create(&l).inc_by(bytes);
    }

    fn retried(&self, tenant: Option<&str>) {
        let l = labels(&[("host", &self.host), ("tenant", tenant.unwrap_or(""))]);
        self.m.batch_retries_total.get_or_create(&l).inc();
    }

    fn request(&self, outcome: &Outcome, took: Duration) {
        let code = match outcome {
            Outcome::Status(s, _) => s.to_string(),
            Outcome::Transport(_) => "-1".to_string(),
            Outcome::Invalid(_) => return,
        };
        let l = labels(&[("status_code", &code), ("host", &self.host)]);
        self.m
            .request_duration_seconds
            .get_or_create(&l)
            .observe(took.as_secs_f64());
    }
}

/// Routing and line limits, shared by the push and dry-run paths.
pub(super) struct Prep {
    router: Router,
    max_line: usize,
    truncate: bool,
    pub(super) metrics: Arc<ClientMetrics>,
}

impl Prep {
    fn new(router: Router, limits: &LimitsConfig, metrics: Arc<ClientMetrics>) -> Self {
        Prep {
            router,
            max_line: limits.max_line_size,
            truncate: limits.max_line_size_truncate,
            metrics,
        }
    }

    /// Routes `e` and applies `max_line_size`; the route is
    /// [`Prep::route`]`(index)`. `None`: the entry was dropped, counted and
    /// acked.
    pub(super) fn prepare(&mut self, mut e: Entry) -> Option<(usize, Entry)> {
        let Some(ri) = self.router.route(&e.labels) else {
            let tenant = self.router.tenant_of(&e.labels);
            tracing::debug!(labels = ?e.labels, "dropping an entry without labels to send");
            self.metrics
                .dropped(tenant.as_deref(), REASON_EMPTY_LABELS, 1, e.size() as u64);
            e.ack.ack();
            return None;
        };
        match limit_line(&mut e.line, self.max_line, self.truncate) {
            LineLimit::Fits => Some((ri, e)),
            LineLimit::Truncated(removed) => {
                let tenant = self.router.get(ri).tenant.clone();
                self.metrics
                    .mutated(tenant.as_deref(), REASON_LINE_TOO_LONG, 1, removed as u64);
                Some((ri, e))
            }
            LineLimit::TooLong => {
                let tenant = self.router.get(ri).tenant.clone();
                self.metrics
                    .dropped(tenant.as_deref(), REASON_LINE_TOO_LONG, 1, e.size() as u64);
                e.ack.ack();
                None
            }
        }
    }

    /// The route of a prepared entry.
    pub(super) fn route(&self, i: usize) -> &Route {
        self.router.get(i)
    }
}

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

async fn run_batcher<S: EntrySource>(
    mut src: S,
    mut prep: Prep,
    mut batcher: Batcher,
    mut dispatch: Dispatch,
    shutdown_timeout: Duration,
) {
    loop {
        tokio::select! {
            _ = dispatch.room() => {}
            _ = src.closing() => {}
        }
        let next = batcher.next_deadline();
        let first = tokio::select! {
            e = src.next_chunk() => e,
            _ = sleep_until_opt(next) => {
                for b in batcher.expired(Instant::now()) {
                    dispatch.forward(b).await;
                }
                continue;
            }
        };
        let Some(chunk) = first else { break };
        let mut item = Some(chunk);
        let mut n = 0;
        while let Some(chunk) = item.take() {
            let now = Instant::now();
            for e in chunk {
                if let Some((ri, e)) = prep.prepare(e) {
                    let route = prep.route(ri);
                    if let Some(full) = batcher.add(&route.tenant, &route.key, e, now) {
                        dispatch.forward(full).await;
                    }
                }
            }
            n += 1;
            if n < BURST {
                item = src.try_next();
            }
        }
        if next.is_some_and(|t| t <= Instant::now()) {
            for b in batcher.expired(Instant::now()) {
                dispatch.forward(b).await;
            }
        }
    }
    // The source is closed: flush, bounded by the shutdown timeout.
    let at = Instant::now() + shutdown_timeout;
    dispatch.set_deadline(at);
    for b in batcher.drain() {
        dispatch.forward(b).await;
    }
    dispatch.finish().await;
}

/// Aborts a task if its owner is dropped (aborted), so no push outlives
/// its client.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Completes once the shutdown deadline is set and has passed.
async fn deadline_passed(rx: &mut watch::Receiver<Option<Instant>>) {
    loop {
        let d = *rx.borrow_and_update();
        match d {
            Some(t) => return tokio::time::sleep_until(t.into()).await,
            None => {
                if rx.changed().await.is_err() {
                    return std::future::pending().await;
                }
            }
        }
    }
}

enum Fate {
    Accepted,
    Dropped(&'static str),
    Abandoned,
    /// 400: the tenant's Loki refuses structured metadata. It stored the
    /// entries without any and refused, one by one, those with some.
    MetadataRefused,
}

/// Loki's message for an entry with structured metadata when the tenant's
/// `limits_config.allow_structured_metadata` is false (Loki 2.x, or Loki 3
/// on a schema before v13).
const METADATA_DISALLOWED: &str = "includes structured metadata, but this feature is disallowed";

/// Mutation reason: structured metadata removed because Loki refuses it.
const REASON_METADATA_REFUSED: &str = "structured_metadata_disallowed";

struct Sender {
    pusher: Pusher,
    encoder: Encoder,
    metrics: Arc<ClientMetrics>,
    backoff: crate::config::BackoffConfig,
    drop_rate_limited: bool,
    deadline: watch::Receiver<Option<Instant>>,
    /// What the batcher watches to pace itself on this sender.
    pace: Arc<Pace>,
    /// The tenant's Loki refused structured metadata: send lines without it.
    no_metadata: bool,
}

/// A sender's state as its batcher sees it: batches queued and not taken
/// yet, and whether it is retrying. A batcher waits for a healthy sender
/// to take its previous batch (so batches are encoded while still warm in
/// cache, and few wait in memory) but never for one that is retrying (so
/// one tenant's 429s do not hold another back).
#[derive(Default)]
pub(super) struct Pace {
    queued: std::sync::atomic::AtomicUsize,
    retrying: std::sync::atomic::AtomicBool,
    changed: tokio::sync::Notify,
}

impl Pace {
    fn queued(&self) {
        self.queued
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
    fn taken(&self) {
        self.queued
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        self.changed.notify_one();
    }
    fn retrying(&self, on: bool) {
        self.retrying.store(on, std::sync::atomic::Ordering::SeqCst);
        self.changed.notify_one();
    }
    /// Waits while the previous batch is not taken and the sender is
    /// healthy.
    async fn wait_turn(&self) {
        loop {
            let busy = self.queued.load(std::sync::atomic::Ordering::SeqCst) > 1;
            if !busy || self.retrying.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            self.changed.notified().await;
        }
    }
}

impl Sender {
    async fn run<R: BatchSource>(mut self, mut brx: R) {
        let mut rng = rand::rngs::SmallRng::from_os_rng();
        while let Some(mut batch) = brx.recv().await {
            self.pace.taken();
            if self.no_metadata {
                self.strip_metadata(&mut batch);
            }
            let mut fate = if self.deadline.borrow().is_some_and(|d| Instant::now() >= d) {
                Fate::Abandoned
            } else {
                self.deliver(&batch, &mut rng).await
            };
            if let Fate::MetadataRefused = fate {
                // Loki stored the lines without structured metadata; send
                // the refused ones again without it, and every line after.
                let mut refused = batch.split_off_metadata();
                batch.ack_all();
                self.no_metadata = true;
                tracing::error!(
                    host = %self.metrics.host,
                    tenant = refused.tenant().unwrap_or(""),
                    "Loki refuses structured metadata (limits_config.allow_structured_metadata is false, or a schema before v13): lines are sent WITHOUT it from now on (trace_id, span_id, pod_uid, structured_metadata stages); allow it in Loki to keep them"
                );
                self.strip_metadata(&mut refused);
                batch = refused;
                fate = self.deliver(&batch, &mut rng).await;
            }
            let tenant = batch.tenant().map(str::to_string);
            match fate {
                Fate::Accepted => batch.ack_all(),
                Fate::MetadataRefused => {
                    // Not after stripping; counted as any other 400.
                    let bytes = batch.size_bytes() as u64;
                    self.metrics.dropped(
                        tenant.as_deref(),
                        REASON_INGESTER_ERROR,
                        batch.len() as u64,
                        bytes,
                    );
                    batch.ack_all();
                }
                Fate::Dropped(reason) => {
                    let bytes = batch.size_bytes() as u64;
                    self.metrics
                        .dropped(tenant.as_deref(), reason, batch.len() as u64, bytes);
                    batch.ack_all();
                }
                Fate::Abandoned => {
                    tracing::warn!(
                        host = %self.metrics.host,
                        tenant = tenant.as_deref().unwrap_or(""),
                        entries = batch.len(),
                        "shutdown timeout: batch not delivered; its lines will be read again after restart"
                    );
                    drop(batch);
                }
            }
        }
    }

    /// Removes `batch`'s structured metadata, counted as a mutation.
    fn strip_metadata(&self, batch: &mut Batch) {
        let (n, bytes) = batch.strip_metadata();
        if n > 0 {
            let reason = REASON_METADATA_REFUSED;
            self.metrics
                .mutated(batch.tenant(), reason, n as u64, bytes as u64);
        }
    }

    async fn deliver(&mut self, batch: &Batch, rng: &mut rand::rngs::SmallRng) -> Fate {
        let host = self.metrics.host.clone();
        let tenant = batch.tenant();
        let body = match self.encoder.encode(batch) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(%host, error = %e, entries = batch.len(), "cannot encode batch; dropped");
                return Fate::Dropped(REASON_ENCODE_ERROR);
            }
        };
        self.metrics.encoded.inc_by(body.bytes.len() as u64);
        let b = &self.backoff;
        let mut backoff = Backoff::new(b.min_period, b.max_period, b.max_retries);
        loop {
            let started = Instant::now();
            let outcome = tokio::select! {
                o = self.pusher.push(tenant, &body) => o,
                _ = deadline_passed(&mut self.deadline) => return Fate::Abandoned,
            };
            self.metrics.request(&outcome, started.elapsed());
            let (status, detail) = describe(&outcome);
            match classify(&outcome, self.drop_rate_limited) {
                Verdict::Accepted => {
                    self.pace.retrying(false);
                    self.metrics.sent_bytes.inc_by(body.bytes.len() as u64);
                    self.metrics.sent_entries.inc_by(batch.len() as u64);
                    return Fate::Accepted;
                }
                Verdict::Drop(_)
                    if status == 400
                        && !self.no_metadata
                        && detail.contains(METADATA_DISALLOWED)
                        && batch.with_metadata() > 0 =>
                {
                    self.pace.retrying(false);
                    return Fate::MetadataRefused;
                }
                Verdict::Drop(reason) => {
                    self.pace.retrying(false);
                    tracing::warn!(%host, tenant = tenant.unwrap_or(""), status, reason, entries = batch.len(), error = detail, "push rejected; batch dropped");
                    return Fate::Dropped(reason);
                }
                Verdict::Retry => {
                    self.pace.retrying(true);
                    if !backoff.record_attempt() {
                        self.pace.retrying(false);
                        let reason = exhausted_reason(&outcome);
                        tracing::warn!(%host, tenant = tenant.unwrap_or(""), status, reason, entries = batch.len(), attempts = backoff.attempts(), error = detail, "push failed after all retries; batch dropped");
                        return Fate::Dropped(reason);
                    }
                    self.metrics.retried(tenant);
                    let wait = backoff.next_delay_random(rng);
                    if backoff.attempts() == 1 {
                        tracing::warn!(%host, tenant = tenant.unwrap_or(""), status, error = detail, retry_in = ?wait, "push failed, will retry");
                    } else {
                        tracing::debug!(%host, tenant = tenant.unwrap_or(""), status, error = detail, attempt = backoff.attempts(), retry_in = ?wait, "push failed, will retry");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = deadline_passed(&mut self.deadline) => return Fate::Abandoned,
                    }
                }
            }
        }
    }
}

fn describe(o: &Outcome) -> (i32, &str) {
    match o {
        Outcome::Status(s, body) => (i32::from(*s), body.as_str()),
        Outcome::Transport(e) | Outcome::Invalid(e) => (-1, e.as_str()),
    }
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
