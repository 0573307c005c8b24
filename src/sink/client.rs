//! One client: the delivery task that takes entries off a bounded queue,
//! batches them and pushes them to one Loki (or prints them, in dry-run).
//!
//! Owns: [`start`] and [`ClientHandle`]. Shape, per client:
//! - a *batcher* task reads the queue (capacity [`CHANNEL_CAPACITY`]),
//!   routes each entry ([`Router`]: tenant, external labels), applies
//!   `max_line_size`, and fills one [`Batch`] per tenant, closing it on
//!   `batchsize` or `batchwait`;
//! - a *sender* task, fed through a channel of 1, encodes each batch once
//!   and pushes it, retrying per [`super::backoff`]; so the next batch is
//!   built while one is in flight, and at most one request per client is in
//!   flight (streams stay ordered).
//!
//! Acknowledgements: an entry is acked when Loki accepted its batch, or when
//! it was deliberately dropped and counted (`promtail_dropped_entries_total`
//! with reason `ingester_error`, `rate_limited`, `line_too_long`,
//! `empty_labels` or `encode_error`).
//!
//! Shutdown: when every sender of the queue is dropped, the open batches are
//! flushed and pushed, all of it bounded by `shutdown_timeout`; a push or a
//! retry wait still running at the deadline is cut. Entries not accepted by
//! then are dropped *without* ack — their positions are poisoned, so they
//! are read again after the restart. Then the task ends.
//!
//! Must never: ack an entry Loki has not accepted unless the drop is counted;
//! have two requests of one client in flight; block a thread.

use super::backoff::{classify, exhausted_reason, Backoff, Outcome, Verdict};
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
    /// every sender starts the client's shutdown.
    pub tx: mpsc::Sender<Vec<Entry>>,
    /// Ends once the queue is closed and drained (or abandoned at the
    /// shutdown deadline).
    pub task: JoinHandle<()>,
    /// The URL's `host[:port]`, as in the metrics' `host` label.
    pub name: String,
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
            let name = parse_url(&cfg.url)
                .map(|u| host_label(&u))
                .unwrap_or_else(|_| "dry-run".to_string());
            let prep = Prep::new(router, limits, ClientMetrics::new(metrics, &name));
            let task = tokio::spawn(super::dryrun::run(rx, prep));
            Ok(ClientHandle { tx, task, name })
        }
        Mode::Push => {
            let url = parse_url(&cfg.url)?;
            let name = host_label(&url);
            let pusher = Pusher::new(cfg)?;
            let cm = ClientMetrics::new(metrics, &name);
            let prep = Prep::new(router, limits, cm.clone());
            let (btx, brx) = mpsc::channel::<Batch>(1);
            let (dtx, drx) = watch::channel::<Option<Instant>>(None);
            let sender = Sender {
                pusher,
                encoder: Encoder::new(cfg.encoding, cfg.compression),
                metrics: cm,
                backoff: cfg.backoff_config.clone(),
                drop_rate_limited: cfg.drop_rate_limited_batches,
                deadline: drx,
            };
            let sender = tokio::spawn(sender.run(brx));
            let batcher = Batcher::new(cfg.batchsize.max(1), cfg.batchwait);
            let task = tokio::spawn(run_batcher(
                rx,
                prep,
                batcher,
                btx,
                dtx,
                shutdown_timeout,
                sender,
            ));
            Ok(ClientHandle { tx, task, name })
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

    fn mutated(&self, tenant: Option<&str>, reason: &str, bytes: u64) {
        let l = self.htr(tenant, reason);
        self.m.mutated_entries_total.get_or_create(&l).inc();
        self.m.mutated_bytes_total.get_or_create(&l).inc_by(bytes);
    }

    /// `promtail_stream_lag_seconds{host,filename}`: now minus the newest
    /// timestamp of each file's streams in an accepted batch (Promtail's
    /// default `stream_lag_labels: filename`).
    fn stream_lag(&self, batch: &Batch) {
        let now = crate::entry::Timestamp::now().nanos();
        let mut newest: std::collections::HashMap<&str, i64> = Default::default();
        for s in batch.streams() {
            let Some(f) = s.key.labels.get("filename") else {
                continue;
            };
            if let Some(ts) = s.entries.iter().map(|e| e.timestamp.nanos()).max() {
                let e = newest.entry(f).or_insert(ts);
                *e = (*e).max(ts);
            }
        }
        for (f, ts) in newest {
            let l = labels(&[("host", &self.host), ("filename", f)]);
            self.m
                .stream_lag_seconds
                .get_or_create(&l)
                .set((now - ts) as f64 / 1e9);
        }
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

    /// Routes `e` and applies `max_line_size`. `None`: the entry was
    /// dropped, counted and acked.
    pub(super) fn prepare(&mut self, mut e: Entry) -> Option<(Route, Entry)> {
        let Some(route) = self.router.route(&e.labels).cloned() else {
            let tenant = self.router.tenant_of(&e.labels);
            tracing::debug!(labels = ?e.labels, "dropping an entry without labels to send");
            self.metrics
                .dropped(tenant.as_deref(), REASON_EMPTY_LABELS, 1, e.size() as u64);
            e.ack.ack();
            return None;
        };
        match limit_line(&mut e.line, self.max_line, self.truncate) {
            LineLimit::Fits => Some((route, e)),
            LineLimit::Truncated(removed) => {
                self.metrics.mutated(
                    route.tenant.as_deref(),
                    REASON_LINE_TOO_LONG,
                    removed as u64,
                );
                Some((route, e))
            }
            LineLimit::TooLong => {
                self.metrics.dropped(
                    route.tenant.as_deref(),
                    REASON_LINE_TOO_LONG,
                    1,
                    e.size() as u64,
                );
                e.ack.ack();
                None
            }
        }
    }
}

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

async fn forward(btx: &mpsc::Sender<Batch>, b: Batch) {
    if let Err(mpsc::error::SendError(b)) = btx.send(b).await {
        // Only if the sender task died: the entries' positions are poisoned.
        tracing::error!(
            entries = b.len(),
            "client sender is gone; batch not delivered"
        );
    }
}

async fn run_batcher(
    mut rx: mpsc::Receiver<Vec<Entry>>,
    mut prep: Prep,
    mut batcher: Batcher,
    btx: mpsc::Sender<Batch>,
    deadline: watch::Sender<Option<Instant>>,
    shutdown_timeout: Duration,
    sender: JoinHandle<()>,
) {
    let mut sender = AbortOnDrop(sender);
    loop {
        let next = batcher.next_deadline();
        let first = tokio::select! {
            e = rx.recv() => e,
            _ = sleep_until_opt(next) => {
                for b in batcher.expired(Instant::now()) {
                    forward(&btx, b).await;
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
                if let Some((route, e)) = prep.prepare(e) {
                    if let Some(full) = batcher.add(&route.tenant, &route.key, e, now) {
                        forward(&btx, full).await;
                    }
                }
            }
            n += 1;
            if n < BURST {
                item = rx.try_recv().ok();
            }
        }
        if next.is_some_and(|t| t <= Instant::now()) {
            for b in batcher.expired(Instant::now()) {
                forward(&btx, b).await;
            }
        }
    }
    // The queue is closed: flush, bounded by the shutdown timeout.
    let _ = deadline.send(Some(Instant::now() + shutdown_timeout));
    for b in batcher.drain() {
        forward(&btx, b).await;
    }
    drop(btx);
    if let Err(e) = (&mut sender.0).await {
        tracing::error!(error = %e, "client sender task failed");
    }
}

/// Aborts the sender task if the batcher task is itself aborted, so no
/// push outlives its client.
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
}

struct Sender {
    pusher: Pusher,
    encoder: Encoder,
    metrics: Arc<ClientMetrics>,
    backoff: crate::config::BackoffConfig,
    drop_rate_limited: bool,
    deadline: watch::Receiver<Option<Instant>>,
}

impl Sender {
    async fn run(mut self, mut brx: mpsc::Receiver<Batch>) {
        let mut rng = rand::rngs::SmallRng::from_os_rng();
        while let Some(batch) = brx.recv().await {
            let fate = if self.deadline.borrow().is_some_and(|d| Instant::now() >= d) {
                Fate::Abandoned
            } else {
                self.deliver(&batch, &mut rng).await
            };
            let tenant = batch.tenant().map(str::to_string);
            match fate {
                Fate::Accepted => batch.ack_all(),
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
                    self.metrics.sent_bytes.inc_by(body.bytes.len() as u64);
                    self.metrics.sent_entries.inc_by(batch.len() as u64);
                    self.metrics.stream_lag(batch);
                    return Fate::Accepted;
                }
                Verdict::Drop(reason) => {
                    tracing::warn!(%host, tenant = tenant.unwrap_or(""), status, reason, entries = batch.len(), error = detail, "push rejected; batch dropped");
                    return Fate::Dropped(reason);
                }
                Verdict::Retry => {
                    if !backoff.record_attempt() {
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
