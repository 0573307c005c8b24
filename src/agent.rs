//! The agent: wires sources, pipelines, clients, positions and the HTTP
//! server together, and shuts them down in the order that loses nothing.
//!
//! Owns: start-up (the one warning listing unhonoured keys, the memory budget,
//! client start, target building), the periodic positions sync, and shutdown:
//!
//! 1. SIGTERM/SIGINT sets the stop flag: the tailer and the journal runners
//!    (which kill their journalctl) stop reading and return,
//!    dropping its [`Fanout`] — which closes every client's queue (or the
//!    spool writer's, which then commits what it holds);
//! 2. each client flushes what it has batched (with the spool: each lane
//!    stops reading the spool and flushes), bounded by the shutdown timeout;
//!    entries not accepted by then are dropped *unacknowledged*;
//! 3. the spool cursors and the positions are saved one last time
//!    (acknowledged offsets only), exit 0.
//!
//! With `wal.enabled` the fan-out's only outlet is the spool writer, and
//! every client reads the spool (see `spool/`); without it, every client
//! gets its own copy of each entry from the fan-out.
//!
//! Must never: save a position ahead of Loki's acceptance, or exit non-zero on
//! a clean signal-driven shutdown.

use crate::ack::Budget;
use crate::config::Config;
use crate::kube;
use crate::kube::relabel::Relabeler;
use crate::metrics::Metrics;
use crate::pipeline::library::{self, Library};
use crate::pipeline::stages;
use crate::positions::Positions;
use crate::server;
use crate::sink::client::{self, Mode};
use crate::sink::fanout::{Fanout, Outlet};
use crate::source::journal::{spawn_journal, JournalJob};
use crate::source::{self, ScrapeJob, TailOptions};
use crate::spool::{Spool, SpoolConfig};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How the agent runs, from the command line.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Print entries instead of pushing; never write positions.
    pub dry_run: bool,
    /// Upper bound on the final flush at shutdown.
    pub shutdown_timeout: Option<Duration>,
}

/// Bytes held between the pipeline and Loki's acceptance, across clients:
/// three batches per client (one filling, one in flight, one queued) plus
/// 1 MiB of slack for the queues.
pub fn memory_budget(cfg: &Config) -> usize {
    let per_clients: usize = cfg.clients.iter().map(|c| 3 * c.batchsize).sum();
    per_clients.max(3 << 20) + (1 << 20)
}

/// Builds the scrape jobs (one per scrape config, same order) and the
/// plan of their targets: static targets computed now (through
/// `relabel_configs`), Kubernetes ones to come from the API.
pub fn build_jobs(
    cfg: &Config,
    metrics: &Arc<Metrics>,
    node: &str,
) -> Result<(Vec<ScrapeJob>, kube::start::Plan), String> {
    let mut plan = kube::start::plan(cfg, node, metrics)?;
    let mut jobs = Vec::new();
    for (i, sc) in cfg.scrape_configs.iter().enumerate() {
        // `kubernetes_pods` without pipeline_stages: `- cri: {}`.
        let cri = [stages::StageConfig::Cri(None)];
        let mut own = match &sc.kubernetes_pods {
            Some(_) if sc.pipeline_stages.is_empty() => cri.to_vec(),
            _ => sc.pipeline_stages.clone(),
        };
        // Trace context on pod logs, unless the job decides (`trace_context`).
        if cfg
            .trace_context
            .applies_to(sc, &cfg.kubernetes.pod_logs_path)
        {
            own = cfg.trace_context.insert_into(&own);
        }
        let at = |e: String| format!("scrape_configs[{i}] ({}): {e}", sc.job_name);
        // The named pipelines: built-ins, plus the pipelines directory's
        // files for `kubernetes_pods` (its `pipelines_dir`) or when a stage
        // names a pipeline that is not built in (`pipelines` next to the
        // config file).
        let (lib, named) = match &sc.kubernetes_pods {
            Some(kp) => {
                let (dir, required) = kube::native::pipelines_dir(kp, &cfg.file_name);
                kube::native::load_pipelines(&dir, required, metrics)
                    .map_err(|e| at(format!("kubernetes_pods.pipelines_dir: {e}")))?
            }
            None if library::references_other_than_builtin(&own) => {
                let base = std::path::Path::new(&cfg.file_name)
                    .parent()
                    .unwrap_or(std::path::Path::new(""));
                let dir = base.join("pipelines");
                let lib =
                    Library::with_dir(&dir, false).map_err(|e| at(format!("pipelines: {e}")))?;
                (Arc::new(lib), Vec::new())
            }
            None => (Arc::new(Library::builtins()), Vec::new()),
        };
        let ctx = stages::BuildCtx::with_pipelines(metrics.clone(), lib);
        let pipeline = stages::build_with(&own, &ctx).map_err(at)?;
        let (targets, dynamic) = match plan.jobs.get_mut(i) {
            Some(kube::start::JobPlan::Static(t)) => (std::mem::take(t), false),
            Some(kube::start::JobPlan::Dynamic) => (Vec::new(), true),
            None => (Vec::new(), false),
        };
        jobs.push(ScrapeJob {
            name: sc.job_name.clone(),
            targets,
            pipeline,
            named,
            dynamic,
        });
    }
    Ok((jobs, plan))
}

/// Takes the `journal` scrape configs out of `jobs` (their pipelines, built
/// by [`build_jobs`] like every job's, move to the journal runner; the file
/// tailer keeps an empty job in their place so indexes stay aligned).
pub fn journal_jobs(
    cfg: &Config,
    jobs: &mut [ScrapeJob],
    metrics: &Arc<Metrics>,
) -> Result<Vec<JournalJob>, String> {
    let mut out = Vec::new();
    for (i, sc) in cfg.scrape_configs.iter().enumerate() {
        let (Some(jc), Some(job)) = (&sc.journal, jobs.get_mut(i)) else {
            continue;
        };
        let at = |e: String| format!("scrape_configs[{i}] ({}): {e}", sc.job_name);
        let relabeler = Relabeler::new(&sc.relabel_configs).map_err(at)?;
        let empty = stages::build_with(&[], &stages::BuildCtx::new(metrics.clone())).map_err(at)?;
        job.targets.clear();
        job.named.clear();
        job.dynamic = false;
        out.push(JournalJob {
            name: sc.job_name.clone(),
            config: jc.clone(),
            relabeler,
            pipeline: std::mem::replace(&mut job.pipeline, empty),
            journalctl: "journalctl".into(),
        });
    }
    Ok(out)
}

/// Runs the agent until SIGTERM/SIGINT. Returns the process exit code.
pub fn run(cfg: Config, opts: RunOptions) -> i32 {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("tailtrace-io")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return 1;
        }
    };
    rt.block_on(run_async(cfg, opts))
}

async fn run_async(cfg: Config, opts: RunOptions) -> i32 {
    // Before anything starts: a SIGTERM or SIGINT that comes while the
    // agent is starting (its first lines may already be out) is a clean
    // shutdown, not the default action's kill.
    let signals = Signals::install();
    let metrics = Arc::new(Metrics::new());
    let unhonoured = cfg.unhonoured();
    if !unhonoured.is_empty() {
        tracing::warn!(
            keys = %unhonoured.join(", "),
            "these Promtail settings are accepted but NOT honoured by tailtrace yet"
        );
    }
    let positions = match Positions::open(&cfg.positions, opts.dry_run) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!("{e}");
            return 1;
        }
    };
    let shutdown_timeout = opts.shutdown_timeout.unwrap_or(Duration::from_secs(10));

    let stop = Arc::new(AtomicBool::new(false));
    let (fanout, delivery) =
        match start_delivery(&cfg, &opts, &positions, &metrics, &stop, shutdown_timeout) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!("{e}");
                return 1;
            }
        };
    let budget = fanout.budget();

    // HTTP server.
    let state = server::State::new(metrics.clone());
    let server_task = if cfg.server.disable {
        None
    } else {
        match server::bind(&cfg.server.http_listen_address, cfg.server.http_listen_port).await {
            Ok(l) => {
                if let Ok(a) = l.local_addr() {
                    tracing::info!(address = %a, "http server listening");
                }
                Some(tokio::spawn(server::serve(l, state.clone())))
            }
            Err(e) => {
                tracing::error!(
                    error = %e,
                    "server.http_listen_port {}: cannot listen",
                    cfg.server.http_listen_port
                );
                return 1;
            }
        }
    };

    // Sources.
    let node = kube::watch::node_name();
    let (mut jobs, plan) = match build_jobs(&cfg, &metrics, &node) {
        Ok(j) => j,
        Err(e) => {
            tracing::error!("{e}");
            return 1;
        }
    };
    let journals = match journal_jobs(&cfg, &mut jobs, &metrics) {
        Ok(j) => j,
        Err(e) => {
            tracing::error!("{e}");
            return 1;
        }
    };
    let mut runners = Vec::new();
    for j in journals {
        let name = j.name.clone();
        match spawn_journal(
            j,
            fanout.clone(),
            positions.clone(),
            metrics.clone(),
            stop.clone(),
        ) {
            Ok(h) => runners.push(h),
            Err(e) => {
                tracing::error!(job = %name, error = %e, "cannot start the journal source");
                stop.store(true, Ordering::Relaxed);
                join_all(runners).await;
                drop(fanout);
                delivery.finish(shutdown_timeout).await;
                return 1;
            }
        }
    }
    let tail_opts = TailOptions {
        rescan: cfg.target_config.sync_period,
        symlink_roots: cfg.target_config.follow_symlinks_into.clone(),
        max_open_files: source::fdlimit::open_files_budget(),
        ..TailOptions::default()
    };
    tracing::debug!(
        max_open_files = tail_opts.max_open_files,
        "log files held open at most"
    );
    let (tailer, feed) = match source::spawn_file_tailer(
        jobs,
        tail_opts,
        fanout,
        positions.clone(),
        metrics.clone(),
        stop.clone(),
    ) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the file tailer");
            return 1;
        }
    };
    let kube_tasks = if plan.is_dynamic() {
        match plan.start(feed, metrics.clone(), state.ready.clone()).await {
            Ok(t) => t,
            Err(e) => {
                tracing::error!("kubernetes (kubernetes_sd_configs / kubernetes_pods): {e}");
                stop.store(true, Ordering::Relaxed);
                let _ = tokio::task::spawn_blocking(move || tailer.join()).await;
                join_all(runners).await;
                delivery.finish(shutdown_timeout).await;
                return 1;
            }
        }
    } else {
        drop(feed);
        state.ready.store(true, Ordering::Relaxed);
        Vec::new()
    };
    tracing::info!(
        clients = cfg.clients.len(),
        budget_bytes = budget.limit(),
        spool = delivery.spool.is_some(),
        dry_run = opts.dry_run,
        "tailtrace started"
    );

    // Periodic positions sync and gauges, until a signal.
    let sync = tokio::spawn(sync_loop(
        positions.clone(),
        metrics.clone(),
        budget,
        cfg.positions.sync_period,
    ));
    if let Err(e) = crate::memory::spawn_trimmer(stop.clone(), crate::memory::PERIOD) {
        tracing::warn!(error = %e, "cannot start the heap trimmer; freed memory stays with the allocator");
    }
    signals.wait().await;
    if FAILED.load(Ordering::SeqCst) {
        tracing::error!("stopping after a failure (above): what was not acknowledged is read again after the restart");
    } else {
        tracing::info!("shutting down: stopping readers, flushing batches");
    }
    stop.store(true, Ordering::Relaxed);
    sync.abort();
    for t in &kube_tasks {
        t.abort();
    }
    let _ = tokio::task::spawn_blocking(move || tailer.join()).await;
    join_all(runners).await;
    delivery.finish(shutdown_timeout).await;
    if let Some(s) = server_task {
        s.abort();
    }
    let pos = positions.clone();
    match tokio::task::spawn_blocking(move || pos.save()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::error!(error = %e, file = %positions.path().display(), "cannot save positions");
            return 1;
        }
        Err(e) => {
            tracing::error!(error = %e, "positions save task failed");
            return 1;
        }
    }
    if FAILED.load(Ordering::SeqCst) {
        return 1;
    }
    tracing::info!("stopped cleanly");
    0
}

/// The delivery side: what the tailer's fan-out feeds, and what shutdown
/// waits for.
struct Delivery {
    clients: Vec<(String, tokio::task::JoinHandle<()>)>,
    spool: Option<SpoolParts>,
}

/// The spool's moving parts (with `wal.enabled`).
struct SpoolParts {
    spool: Spool,
    writer: std::thread::JoinHandle<()>,
    /// Tells the clients' lanes to stop reading.
    stop_lanes: tokio::sync::watch::Sender<bool>,
    maintain: tokio::task::JoinHandle<()>,
}

/// Memory budget with the spool: entries between the pipeline and their
/// chunk's commit (the clients' lanes hold their own few batches). An entry
/// taken into a chunk keeps only its ack's share of its charge until the
/// commit, and a commit is also due when those shares reach half of this,
/// so at least half the budget is room for the queue at every commit
/// size. (It was 8 MiB, then 4 MiB at every size, then twice the commit
/// threshold — 2 MiB up to 4 with thousands of files — with half of each
/// line kept charged: each step took MiBs off the peak RSS; see
/// `benches/HISTORY.md`.)
pub const SPOOL_BUDGET: usize = 3 << 19;

/// The spool's commit threshold while the positions file is small. Each
/// commit is an `fdatasync` of the segment and a positions save (a new
/// file, `fsync`, rename): ~10 % of a one-file bulk drain's CPU samples
/// with the spool at 1 MiB. At 4 MiB the other trigger (the entries
/// waiting hold half of [`SPOOL_BUDGET`] in their acks' shares, ~12,000
/// lines) comes first in a bulk drain: 23 commits per 64 MiB instead of
/// 61. It was held at 1 MiB while the writer kept an `Ack` per waiting
/// line (~0.8 MiB more peak RSS at 5,000 files); since the writer holds
/// them as runs ([`crate::ack::AckRuns`]) 4 MiB peaks where 1 MiB does
/// (`benches/HISTORY.md`, 2026-12-07).
pub const SPOOL_COMMIT: usize = 4 << 20;

/// Starts the clients (and the spool, if on) and returns the fan-out that
/// feeds them. Errors name the config key.
fn start_delivery(
    cfg: &Config,
    opts: &RunOptions,
    positions: &Arc<Positions>,
    metrics: &Arc<Metrics>,
    stop: &Arc<AtomicBool>,
    shutdown_timeout: Duration,
) -> Result<(Fanout, Delivery), String> {
    if opts.dry_run {
        if cfg.wal.enabled {
            tracing::info!("-dry-run: the spool (wal) is not used");
        }
        let c = cfg.clients.first().cloned().unwrap_or_default();
        let h = client::start(
            &c,
            &cfg.limits_config,
            metrics.clone(),
            Mode::DryRun,
            shutdown_timeout,
        )?;
        let budget = Budget::new(memory_budget(cfg));
        let fanout = Fanout::to_clients(h.tx.into_iter().collect(), budget, stop.clone());
        let d = Delivery {
            clients: vec![(h.name, h.task)],
            spool: None,
        };
        return Ok((fanout, d));
    }
    if !cfg.wal.enabled {
        let mut txs = Vec::new();
        let mut clients = Vec::new();
        for (i, c) in cfg.clients.iter().enumerate() {
            let h = client::start(
                c,
                &cfg.limits_config,
                metrics.clone(),
                Mode::Push,
                shutdown_timeout,
            )
            .map_err(|e| format!("{}: {e}", cfg.client_key(i)))?;
            // Only the fan-out keeps senders: closing it closes the queues.
            txs.extend(h.tx);
            clients.push((h.name, h.task));
        }
        let budget = Budget::new(memory_budget(cfg));
        let fanout = Fanout::to_clients(txs, budget, stop.clone());
        return Ok((
            fanout,
            Delivery {
                clients,
                spool: None,
            },
        ));
    }
    let w = &cfg.wal;
    let scfg = SpoolConfig {
        dir: w.dir.clone(),
        max_size: w.max_size as u64,
        segment_size: SpoolConfig::segment_size_for(w.max_size as u64),
        chunk_size: 256 << 10,
        chunk_wait: w.chunk_wait,
        compress_from: SpoolConfig::compress_from_for(w.max_size as u64, w.compression),
    };
    let spool = Spool::open(scfg, positions.spool_head(), metrics.clone())?;
    let (stop_lanes, lanes_rx) = tokio::sync::watch::channel(false);
    let mut clients = Vec::new();
    for (i, c) in cfg.clients.iter().enumerate() {
        let h = client::start_spool(
            c,
            &client::spool_key(c),
            &cfg.limits_config,
            metrics.clone(),
            spool.clone(),
            lanes_rx.clone(),
            shutdown_timeout,
        )
        .map_err(|e| format!("{}: {e}", cfg.client_key(i)))?;
        clients.push((h.name, h.task));
    }
    spool.report_orphans();
    let budget = Budget::new(SPOOL_BUDGET);
    let (tx, writer) = crate::spool::writer::spawn_writer(
        spool.clone(),
        positions.clone(),
        SPOOL_COMMIT,
        Some(budget.limit()),
        stop.clone(),
        Some(Box::new(stop_on_failure)),
    )
    .map_err(|e| format!("wal: cannot start the spool writer: {e}"))?;
    let maintain = tokio::spawn(maintain_loop(spool.clone()));
    let fanout = Fanout::new(vec![Outlet::Spool(tx)], budget, stop.clone());
    tracing::info!(dir = %spool.dir().display(), bytes = spool.bytes(), max_size = w.max_size, "spool open");
    Ok((
        fanout,
        Delivery {
            clients,
            spool: Some(SpoolParts {
                spool,
                writer,
                stop_lanes,
                maintain,
            }),
        },
    ))
}

impl Delivery {
    /// After the tailer stopped (its fan-out dropped): commits what the
    /// spool writer holds, stops the lanes, waits for every client's final
    /// flush (bounded), saves the spool cursors.
    async fn finish(self, shutdown_timeout: Duration) {
        let deadline = Instant::now() + shutdown_timeout + Duration::from_secs(1);
        let mut spool = None;
        if let Some(p) = self.spool {
            let _ = p.stop_lanes.send(true);
            let _ = tokio::task::spawn_blocking(move || p.writer.join()).await;
            spool = Some((p.spool, p.maintain));
        }
        for (name, t) in self.clients {
            let left = deadline.saturating_duration_since(Instant::now());
            if tokio::time::timeout(left, t).await.is_err() {
                tracing::warn!(client = %name, "client did not finish its final flush in time");
            }
        }
        if let Some((spool, maintain)) = spool {
            maintain.abort();
            match tokio::task::spawn_blocking(move || spool.maintain()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "cannot save the spool cursors"),
                Err(e) => tracing::error!(error = %e, "spool maintenance failed"),
            }
        }
    }
}

/// Saves the spool cursors, deletes delivered segments and updates the
/// spool gauges, every [`SAVE_POLL`].
async fn maintain_loop(spool: Spool) {
    let mut tick = tokio::time::interval(SAVE_POLL * 2);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut warned = false;
    loop {
        tick.tick().await;
        let s = spool.clone();
        match tokio::task::spawn_blocking(move || s.maintain()).await {
            Ok(Ok(())) => warned = false,
            Ok(Err(e)) if !warned => {
                warned = true;
                tracing::error!(dir = %spool.dir().display(), error = %e, "cannot save the spool cursors or delete delivered segments");
            }
            _ => {}
        }
    }
}

/// Saves positions soon after acknowledgements move them (checked every
/// [`SAVE_POLL`], written only when some committed position advanced), and at
/// least every `sync_period`. So a `kill -9` re-sends only lines that were
/// unacknowledged or acknowledged within the last poll — or the last
/// [`SAVE_SHARE`]-bounded interval: a save (render, write, fsync) grows with
/// the number of files, so after one that took `t` the next waits at least
/// `t × SAVE_SHARE` (with 5,000 files, saving 20 times a second cost more
/// than reading).
async fn sync_loop(
    positions: Arc<Positions>,
    metrics: Arc<Metrics>,
    budget: &'static Budget,
    period: Duration,
) {
    let period = period.max(Duration::from_millis(10));
    let mut last_save = Instant::now();
    let mut saved_epoch = positions.change_epoch();
    let mut tick = tokio::time::interval(SAVE_POLL.min(period));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next_allowed = Instant::now();
    loop {
        tick.tick().await;
        metrics.pending_bytes.set(budget.used() as i64);
        let epoch = positions.change_epoch();
        let due = last_save.elapsed() >= period;
        if (epoch != saved_epoch && Instant::now() >= next_allowed) || due {
            let p = positions.clone();
            let started = Instant::now();
            match tokio::task::spawn_blocking(move || p.save()).await {
                Ok(Ok(())) => {
                    last_save = Instant::now();
                    next_allowed = last_save + started.elapsed() * SAVE_SHARE;
                    saved_epoch = epoch;
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, file = %positions.path().display(), "cannot save positions")
                }
                Err(_) => {}
            }
        }
        metrics
            .positions_age_seconds
            .set(last_save.elapsed().as_secs_f64());
    }
}

/// How often the positions writer looks for acknowledged progress.
pub const SAVE_POLL: Duration = Duration::from_millis(50);

/// After a save that took `t`, the next waits at least `t × SAVE_SHARE`
/// (saving takes at most ~1/SAVE_SHARE of the time; see `sync_loop`).
const SAVE_SHARE: u32 = 20;

/// Waits for the journal runners (they stop on the stop flag, killing
/// their journalctl, and drop their fan-outs).
async fn join_all(runners: Vec<std::thread::JoinHandle<()>>) {
    let _ = tokio::task::spawn_blocking(move || {
        for r in runners {
            let _ = r.join();
        }
    })
    .await;
}

/// Set by [`stop_on_failure`]: the agent exits 1 after its shutdown.
static FAILED: AtomicBool = AtomicBool::new(false);
static FAILURE: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// A part of the agent cannot go on without risking a line (the spool's
/// `fsync` failed): shut down as on SIGTERM — what was acknowledged is
/// saved, nothing else — and exit 1, so that the restart reads again what
/// was not.
pub fn stop_on_failure() {
    FAILED.store(true, Ordering::SeqCst);
    FAILURE.notify_one();
}

/// The agent's SIGTERM and SIGINT handlers, installed when it is made
/// (until then a signal kills the process).
struct Signals {
    term: std::io::Result<tokio::signal::unix::Signal>,
    int: std::io::Result<tokio::signal::unix::Signal>,
}

impl Signals {
    fn install() -> Self {
        use tokio::signal::unix::{signal, SignalKind};
        Signals {
            term: signal(SignalKind::terminate()),
            int: signal(SignalKind::interrupt()),
        }
    }

    /// Until SIGTERM, SIGINT, or a failure that stops the agent
    /// ([`stop_on_failure`]).
    async fn wait(self) {
        match (self.term, self.int) {
            (Ok(mut t), Ok(mut i)) => {
                tokio::select! {
                    _ = t.recv() => {}
                    _ = i.recv() => {}
                    _ = FAILURE.notified() => {}
                }
            }
            _ => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = FAILURE.notified() => {}
                }
            }
        }
    }
}
