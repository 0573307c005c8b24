//! The file tailer: one thread that serves every tailed file fairly.
//!
//! Owns: the public entry point [`spawn_file_tailer`] and its types
//! ([`FileTarget`], [`ScrapeJob`], [`TailOptions`]), and the scheduler that
//! decides which file is read when, which files are open, and when a file is
//! finished for good.
//!
//! Design (one loop, round robin):
//! - every turn, each file with data gets at most `read_chunk` bytes, so one
//!   busy file cannot starve thousands of quiet ones; lines go through the
//!   job's pipeline into a small backlog that is handed to
//!   [`Fanout::try_send`]. When the memory budget is spent (Loki slow or
//!   down, or the spool full) the backlog stops draining and reading pauses —
//!   backpressure — but the loop goes on: discovery, rotation checks and the
//!   sweep keep running, so a file created while delivery is stuck is opened
//!   (its inode pinned by the descriptor) before the kubelet can rotate it
//!   away. The loop then waits for room (the budget's waker) or a short
//!   tick, whichever comes first;
//! - within a stream (one path), rotated files are read before the current
//!   one, oldest first (by kubelet stamp), so lines keep their write order;
//!   a rotated sibling nobody read (created and rotated away unseen) is found
//!   by the chain check and read in its place — see `tailer_chain.rs`;
//! - a file at end of file is idle until inotify reports its path changed or
//!   the periodic sweep (`fstat`, once a second; 4×/s without inotify) sees it
//!   grew, shrank (copytruncate: read again from 0) or was replaced at its
//!   path (rotation: keep reading the old inode to its end, then close it once
//!   a newer file exists at the path or it was unlinked, and it stayed quiet
//!   for [`ROTATED_GRACE`]); with inotify, the sweep's look at an idle file
//!   (its `fstat` and what its path holds) is spread over
//!   [`PATH_CHECK_SPREAD`] sweeps — [`WHOLE_EVENTS_SPREAD`] for a file every
//!   change of which its directory's watch reports: the events come first,
//!   and an event makes the file read, where a read of nothing `fstat`s it;
//! - a new directory an event names is walked alone, from it down
//!   (`rescan_under`), and so are new targets' globs (`rescan_targets`,
//!   after a job's first set); the globs are expanded again every `rescan`
//!   (the safety net under inotify); saved positions no file claimed are
//!   relocated (renamed sibling by inode, or `.gz` by fingerprint) — see
//!   [`super::relocate`];
//! - at most `max_open_files` descriptors. What is pinned first when the
//!   bound is reached: rotated files with unread data are never closed (their
//!   name may be gone); a new file is always taken on by closing (parking) a
//!   current file — a quiet one first (least recently active), else the one
//!   with unread data least recently read; a parked file is reopened by path
//!   when it changes, verifying identity, and a file rotated while closed is
//!   relocated like at start-up. Only when every descriptor holds a rotated
//!   file is a new file left for the next sweep (counted as
//!   `file_errors_total{reason="fd_limit"}`); the chain check finds it later
//!   if it was rotated meanwhile. An older file found at the bound (a saved
//!   position, a chain hole) is tracked closed and its stream waits until
//!   the sweep reopens it (`tailer_wait.rs`);
//! - a file closed for good is forgotten in the positions once every line of
//!   it was acknowledged.
//!
//! Files: this one has the types, the loop, the sweep and reading;
//! `tailer_discovery.rs` finds and takes on files, `tailer_lifecycle.rs`
//! handles rotation, parking, truncation and closing, `tailer_chain.rs`
//! catches up on rotated files never read.
//!
//! Must never: lose or duplicate a line across rotation, truncation, deletion
//! or restart (restarts re-read only unacknowledged lines); block on delivery
//! (discovery must go on); lose data silently (what is gone before it could
//! be read is counted in `tailtrace_lost_bytes_total{reason}` and logged once
//! per file); panic on a file system error (log once, count
//! `file_errors_total{reason}`, keep going); flush pipelines at stop (held
//! lines must be re-read after a restart).

use super::discover::{self, Target, Wake};
use super::file::{ChunkStats, FileMetrics, Kind, Tailed};
use super::fingerprint::{self, Widen, FP_MAX};
use super::open;
use super::reader::{LineSplitter, Src};
use super::relocate::{relocate, Found};
use super::watch::Watch;
use crate::ack::{Position, Tracker};
use crate::entry::Entry;
use crate::fasthash::FastMap;
use crate::labels::LabelSet;
use crate::metrics::{labels, Metrics};
use crate::pipeline::Pipeline;
use crate::positions::{FileId, Positions, SavedFile};
use crate::sink::fanout::Fanout;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[path = "tailer_chain.rs"]
mod catch_up;
#[path = "tailer_discovery.rs"]
mod discovery;
#[path = "tailer_lifecycle.rs"]
mod lifecycle;
#[path = "tailer_targets.rs"]
mod targets;
#[path = "tailer_turn.rs"]
mod turn;
#[path = "tailer_wait.rs"]
mod wait;
use targets::Targets;

/// One `__path__` glob and its static labels.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FileTarget {
    /// A `__path__` glob (`*`, `?`, `[..]`, `**`).
    pub include: String,
    /// `__path_exclude__`.
    pub exclude: Option<String>,
    /// Static labels incl. `job`; `__`-labels are stripped at render.
    pub labels: LabelSet,
    /// Structured metadata attached to every line of the target's files
    /// (e.g. pod annotations, `pod_uid`); empty for most targets.
    pub metadata: Vec<crate::entry::MetaPair>,
    /// A named pipeline (one of the job's [`ScrapeJob::named`]) run after
    /// the job's own stages for this target's lines.
    pub pipeline: Option<String>,
}

/// A scrape config's file targets and its pipeline.
pub struct ScrapeJob {
    pub name: String,
    /// The targets known at start. A `dynamic` job starts with none (or
    /// its static ones) and gets its sets as [`TargetUpdate`]s.
    pub targets: Vec<FileTarget>,
    pub pipeline: Pipeline,
    /// Pipelines a target may name ([`FileTarget::pipeline`]).
    pub named: Vec<(String, Pipeline)>,
    /// Targets come from the Kubernetes API: until the first
    /// [`TargetUpdate`] for it, saved positions no target claims are kept.
    pub dynamic: bool,
}

/// A new, complete target set for job `job` (index in the tailer's jobs).
/// Targets in both the old and the new set keep their files' places;
/// files of removed targets are read to their end first.
#[derive(Debug)]
pub struct TargetUpdate {
    pub job: usize,
    pub targets: Vec<FileTarget>,
}

/// Tailer tuning.
#[derive(Clone, Debug)]
pub struct TailOptions {
    /// Glob rescan period (`target_config.sync_period`).
    pub rescan: Duration,
    /// Most descriptors held open at once.
    pub max_open_files: usize,
    /// Bytes read from one file per turn.
    pub read_chunk: usize,
    /// Longest raw line held in memory; longer lines are cut.
    pub max_line_bytes: usize,
    /// A quiet current file is closed after this long (reopened on change);
    /// also the longest a renamed file with no successor is kept open.
    pub idle_close: Duration,
    /// Directories a symlink may lead into besides the glob's own tree
    /// (`target_config.follow_symlinks_into`).
    pub symlink_roots: Vec<PathBuf>,
}

impl Default for TailOptions {
    fn default() -> Self {
        TailOptions {
            rescan: Duration::from_secs(10),
            max_open_files: 1024,
            read_chunk: 64 * 1024,
            max_line_bytes: 8 * 1024 * 1024,
            idle_close: Duration::from_secs(300),
            symlink_roots: Vec::new(),
        }
    }
}

/// How long a rotated or deleted file must stay quiet at its end before it
/// is closed (the runtime writes to the old inode until it reopens).
pub const ROTATED_GRACE: Duration = Duration::from_secs(2);
/// Pipeline tick period.
const TICK: Duration = Duration::from_millis(250);
/// Stat sweep period with inotify working / without it.
const SWEEP: Duration = Duration::from_secs(1);
const SWEEP_POLLING: Duration = Duration::from_millis(250);
/// With inotify working, the sweep's look at what each current file's path
/// holds (a `stat` by path, the rotation check behind the events) is spread
/// over this many sweeps: each file's path every 4 s, not every second; so
/// is the `fstat` of a file read to its end with no event since. Those
/// checks are the net under lost events; the events themselves are acted on
/// at once (`on_changed`), and a file whose path had an event while it was
/// being read is checked at the next sweep (`Tailed::path_event`). At 5,000
/// files, one `stat` of every path per second was ~3 % of a drain's CPU
/// while delivery was behind, and 5,000 path lookups a second on an idle
/// node. The kubelet rotates a file at most once per
/// `containerLogMonitorInterval` (10 s), so 4 s still pins a successor
/// before it can be rotated away. Without inotify, after an event overflow,
/// or while a directory could not be watched (the watch limit), every file
/// and path is checked at every sweep. (A file whose every change is an
/// event gets [`WHOLE_EVENTS_SPREAD`].)
const PATH_CHECK_SPREAD: u64 = 4;

/// Every this many full rescans, one looks at every directory (`stat`s
/// it), inotify trusted or not: what inotify cannot see — a change on a
/// file system it is blind to, a mount over a directory — is found within
/// this many `sync_period`s (a minute by default) instead of one. In
/// between, a directory inotify reported no change in or of keeps its
/// listing without a `stat` (`super::listing`, *Trusting inotify*): at
/// 5,000 idle pods, 1,000 `stat`s a second fewer, ~45 % of an idle node's
/// CPU (`benches/HISTORY.md`).
pub(super) const FULL_LOOK_EVERY: u64 = 6;

/// Most directories remembered as changed between two full rescans; more,
/// and the next looks at every directory (memory stays bounded).
const MAX_CHANGED_DIRS: usize = 16_384;

/// With inotify working, the spread of the sweep's look at an idle file
/// every change of which its directory's watch reports
/// ([`Tailed::whole_events`]: not a symlink, one link): each such file's
/// path and size every 30 s instead of every 4 s. For it the look is a net
/// only under what inotify cannot see at all (a file system blind to it);
/// an event lost to an overflow, or a directory not watched, makes every
/// sweep full as before, and an event naming a directory above it makes
/// the next sweep look at it. A symlink's target, or a file with another
/// link, may be written through a path no watch of ours sees, so their
/// writes may come without an event: they keep [`PATH_CHECK_SPREAD`]. At
/// 5,000 idle files, ~1,080 path lookups a second fewer
/// (`benches/HISTORY.md`).
const WHOLE_EVENTS_SPREAD: u64 = 30;

/// The spread of the sweep's looks at current file `f` when it is
/// `spread` for every file (1: every sweep looks at every file).
fn look_spread(f: &Tailed, spread: u64) -> u64 {
    if spread > 1 && f.whole_events {
        WHOLE_EVENTS_SPREAD
    } else {
        spread
    }
}

/// Whether the file taken on `seq`-th has its path checked in sweep number
/// `sweep` when checks are spread over `spread` sweeps: each file exactly
/// once in any `spread` consecutive sweeps, a `1/spread` share in each.
fn path_check_due(seq: u64, sweep: u64, spread: u64) -> bool {
    spread <= 1 || seq.wrapping_add(sweep).is_multiple_of(spread)
}

/// What the sweep knows of a current, open file when it decides whether to
/// look at it (`fstat`, and its path if it is due) this round. With inotify
/// working every change to a file comes as an event first; the sweep's look
/// is the net under lost events, spread over [`PATH_CHECK_SPREAD`] sweeps
/// (`due`), and taken at once only where nothing else would tell soon:
/// - read to its end, no event since (`idle`): a write, truncation or
///   removal is an event, which makes it read, and a read of nothing
///   `fstat`s it at once (`tailer_turn.rs`);
/// - data still to read while delivery keeps up (`reading`): its next turn
///   reads it, and the read that reaches its end tells what a `fstat`
///   would (a short read: the end; a read of nothing: `fstat`ed, shrunk?);
/// - data still to read while delivery is stuck, and no event since the
///   last look (`waiting`): it stays to be read, and what a look could find
///   — a truncation (`IN_MODIFY`), a removal or rename — would have been
///   an event. A file written or changed since is looked at in the next
///   sweep, so a truncation is still found while delivery waits, before
///   the file can grow past the offset again. In a drain of 294 MiB over
///   5,000 files that was ~3,700 `fstat`s fewer, of ~36,500 (`statx` by
///   path and by descriptor) in the run (`benches/HISTORY.md`).
///
/// Without inotify, after lost events or while a directory is not watched,
/// `due` holds at every sweep, so every file is looked at every time.
#[derive(Clone, Copy, Debug)]
struct Look {
    at_eof: bool,
    active: bool,
    stuck: bool,
    path_event: bool,
    event_since_look: bool,
    due: bool,
}

impl Look {
    /// Whether this sweep may leave the file alone.
    fn may_skip(self) -> bool {
        if self.due || self.path_event {
            return false;
        }
        let idle = self.at_eof && !self.active;
        let reading = !self.at_eof && self.active && !self.stuck;
        let waiting = !self.at_eof && self.active && self.stuck && !self.event_since_look;
        idle || reading || waiting
    }
}

/// False if [`Tailer::maybe_close`] would do nothing with current file `f`
/// now: it has data to read or no descriptor, or it is neither an orphan
/// quiet for [`ROTATED_GRACE`] nor quiet for `idle_close`. (True: it may
/// act, and decides.)
fn close_may_act(f: &Tailed, now: Instant, idle_close: Duration) -> bool {
    if f.has_unread() || f.src.is_none() {
        return false;
    }
    let quiet = now.saturating_duration_since(f.last_data);
    f.kind != Kind::Current || (f.orphan && quiet >= ROTATED_GRACE) || quiet >= idle_close
}

/// How long the tailer sleeps when delivery did not take everything
/// (`None`: not at all, go on). `flushed`: the fan-out's buffers went out
/// (no queue refused a chunk); `room`: whether the budget has room for the
/// backlog's next entry (`None`: the backlog is empty).
///
/// A queue that refused a chunk is waited for whatever the budget says:
/// nothing signals when a queue drains, so the tailer looks again after
/// 2 ms. (It used to wait only while the budget was spent too. A client
/// queue of 64 chunks holds less than the 4 MiB budget when reads end in
/// small chunks, so a batcher that fell behind — slowed by its pushes, or
/// by a node's CPU limit — left the tailer spinning on the full queue at
/// a whole core: ~3.7 million turns in one 16 MiB drain under
/// `callgrind`, ten times the instructions of the drain itself.)
fn stall_wait(flushed: bool, room: Option<bool>) -> Option<Duration> {
    match (flushed, room) {
        (false, _) => Some(Duration::from_millis(2)),
        (true, Some(false)) => Some(BUSY_TICK),
        (true, Some(true)) => None,
        // Nothing buffered, nothing waiting: not stuck (not called so).
        (true, None) => Some(BUSY_TICK),
    }
}

/// Shortest time between two rescans triggered by events.
const QUICK_RESCAN: Duration = Duration::from_secs(1);
/// While delivery is stuck: how often file events are looked at (new files
/// pinned, rotations seen) between wake-ups for room in the budget.
const BUSY_TICK: Duration = Duration::from_millis(20);
/// How long a ranking of parking victims is used (see `evict_one`).
const EVICT_QUEUE_AGE: Duration = Duration::from_millis(250);

/// Hands target updates to a running tailer (and wakes it).
#[derive(Clone)]
pub struct TargetFeed {
    tx: std::sync::mpsc::Sender<TargetUpdate>,
    wake: Arc<Wake>,
}

impl TargetFeed {
    /// Sends `u`; false if the tailer has stopped.
    pub fn send(&self, u: TargetUpdate) -> bool {
        if self.tx.send(u).is_err() {
            return false;
        }
        self.wake.poke();
        true
    }
}

/// Starts the tailer thread. See the module docs. Fails only if a glob is
/// invalid or the thread cannot be spawned. The [`TargetFeed`] changes the
/// targets of running jobs.
pub fn spawn_file_tailer(
    jobs: Vec<ScrapeJob>,
    opts: TailOptions,
    out: Fanout,
    positions: Arc<Positions>,
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
) -> io::Result<(JoinHandle<()>, TargetFeed)> {
    let (tx, rx) = std::sync::mpsc::channel();
    let mut tailer = Tailer::new(jobs, opts, out, positions, metrics, stop)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    tailer.updates = Some(rx);
    let feed = TargetFeed {
        tx,
        wake: tailer.wake.clone(),
    };
    let h = std::thread::Builder::new()
        .name("file-tailer".into())
        .spawn(move || tailer.run())?;
    Ok((h, feed))
}

/// The agent is stopping.
struct Stopped;

/// A file closed for good, forgotten once every line is acknowledged.
struct Draining {
    id: FileId,
    tracker: Arc<Tracker>,
    path: Arc<Path>,
    fp: crate::positions::Fingerprint,
    /// Its birth time, if known (see `Tailed::born`).
    born: Option<std::time::SystemTime>,
    /// Released, not finished: keep the position (see `tailer_targets.rs`).
    keep: bool,
    /// Its job and named pipeline: a block a stage still holds is released
    /// (on a tick) through that named pipeline.
    job: usize,
    pipe: Option<usize>,
}

struct Job {
    name: String,
    pipeline: Pipeline,
    named: Vec<(String, Pipeline)>,
    dynamic: bool,
}

struct Tailer {
    jobs: Vec<Job>,
    targets: Targets,
    /// Target sets from the API (see `tailer_targets.rs`).
    updates: Option<std::sync::mpsc::Receiver<TargetUpdate>>,
    /// Dynamic jobs that have not had their first target set.
    unsynced: HashSet<usize>,
    /// New targets arrived: rescan at once.
    rescan_now: bool,
    /// Rotated files last modified before this are history when a path is
    /// first seen (see `tailer_chain.rs`): when the previous run last saved
    /// its positions, or when this one started if there was none.
    history_before: std::time::SystemTime,
    opts: TailOptions,
    out: Fanout,
    positions: Arc<Positions>,
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
    /// Boxed: a `Tailed` is ~330 bytes, and a table sized in powers of
    /// two holds up to twice as many slots as files.
    files: FastMap<FileId, Box<Tailed>>,
    /// Path → the file currently at it.
    by_path: FastMap<Arc<Path>, FileId>,
    /// Closed for good; forgotten once every line is acknowledged.
    draining: Vec<Draining>,
    /// Source of synthetic identities (see [`Tailer::synthetic_id`]).
    rng: SmallRng,
    open: usize,
    /// Files to park for a descriptor, ranked at the time given, the best
    /// victim last (see `evict_one` in `tailer_lifecycle.rs`).
    evict_queue: Option<(Instant, Vec<FileId>)>,
    wake: Arc<Wake>,
    watch: Option<Watch>,
    warned: HashSet<(PathBuf, &'static str)>,
    buf: Vec<u8>,
    entries: Vec<Entry>,
    outv: Vec<Entry>,
    /// Pipeline output the fan-out has not taken yet (budget spent); reading
    /// pauses while it is not empty. Bounded by one read chunk's lines plus
    /// what pipelines release on a tick.
    backlog: VecDeque<Entry>,
    /// The current round-robin pass (see `tailer_turn.rs`).
    plan: turn::Plan,
    /// Sequence for [`Tailed::seq`].
    next_seq: u64,
    /// Paths whose chain check could not finish (an error); retried at each
    /// rescan.
    chain_retry: HashSet<(PathBuf, usize)>,
    /// The start-up chain check ran (first rescan).
    chains_started: bool,
    /// Listings of settled directories, kept by the last full rescan for
    /// the next (`listing.rs`).
    kept: super::listing::Kept,
    /// Paths first seen during the start-up scan whose every rotated
    /// sibling was history: the start-up chain check has nothing to do for
    /// them (emptied by it).
    chains_fresh: crate::fasthash::FastSet<Arc<Path>>,
    /// Tests: run once right after the chain catch-up's look at a current
    /// file's path (to rotate it between that look and what follows).
    #[cfg(test)]
    after_path_look: std::sync::Mutex<Option<Box<dyn FnOnce() + Send>>>,
    next_rescan: Instant,
    next_sweep: Instant,
    /// Sweeps run so far (spreads the path checks, see [`PATH_CHECK_SPREAD`]).
    sweeps: u64,
    /// Events were lost (inotify overflow): the next sweep checks every path.
    full_sweep: bool,
    /// The last rescan could not watch some directory (the watch limit):
    /// events from it are missing, so every sweep checks every path.
    watch_gaps: bool,
    /// Directories inotify reported a change in or of since the last full
    /// rescan: only these (and the walks' bases) have their kept listings
    /// checked by a `stat` while inotify is trusted (`super::listing`,
    /// *Trusting inotify*). By path hash, with the kept listings' hasher
    /// (the rescan looks them up by it): at most 8 bytes a directory.
    changed_dirs: crate::fasthash::KeySet,
    /// Events were lost since the last full rescan (or it is the first):
    /// the next one looks at every directory.
    look_all: bool,
    /// Full rescans run so far (every [`FULL_LOOK_EVERY`]-th looks at
    /// every directory).
    full_rescans: u64,
    /// What the last full rescan's walk did with directories: (read,
    /// kept listings that stood in, of those without a `stat`).
    pub(super) last_walk: (usize, usize, usize),
    next_tick: Instant,
    last_rescan: Instant,
    rescan_soon: bool,
    /// New directories named by events this turn (see `rescan_under`).
    new_dirs: Vec<PathBuf>,
}

impl Tailer {
    fn new(
        jobs: Vec<ScrapeJob>,
        opts: TailOptions,
        out: Fanout,
        positions: Arc<Positions>,
        metrics: Arc<Metrics>,
        stop: Arc<AtomicBool>,
    ) -> Result<Tailer, String> {
        let mut initial = Vec::new();
        let mut js = Vec::new();
        let mut unsynced = HashSet::new();
        for (i, j) in jobs.into_iter().enumerate() {
            if j.dynamic {
                unsynced.insert(i);
            }
            initial.push((i, j.name.clone(), j.targets));
            js.push(Job {
                name: j.name,
                pipeline: j.pipeline,
                named: j.named,
                dynamic: j.dynamic,
            });
        }
        let wake = Wake::new();
        {
            let w = wake.clone();
            out.budget().set_waker(move || w.room());
        }
        let watch = match Watch::new(wake.clone()) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "inotify unavailable; polling files for changes");
                None
            }
        };
        let now = Instant::now();
        let mut tailer = Tailer {
            jobs: js,
            targets: Targets::default(),
            updates: None,
            unsynced,
            rescan_now: false,
            history_before: {
                let now = std::time::SystemTime::now();
                positions.previous_save().map_or(now, |t| t.min(now))
            },
            buf: vec![0; opts.read_chunk.max(1)],
            opts: TailOptions {
                max_open_files: opts.max_open_files.max(1),
                ..opts
            },
            out,
            positions,
            metrics,
            stop,
            files: FastMap::default(),
            by_path: FastMap::default(),
            draining: Vec::new(),
            rng: SmallRng::from_os_rng(),
            open: 0,
            evict_queue: None,
            wake,
            watch,
            warned: HashSet::new(),
            entries: Vec::new(),
            outv: Vec::new(),
            backlog: VecDeque::new(),
            plan: turn::Plan::default(),
            next_seq: 0,
            chain_retry: HashSet::new(),
            chains_started: false,
            kept: Default::default(),
            chains_fresh: Default::default(),
            #[cfg(test)]
            after_path_look: Default::default(),
            next_rescan: now,
            next_sweep: now,
            sweeps: 0,
            full_sweep: true,
            watch_gaps: false,
            changed_dirs: Default::default(),
            look_all: true,
            full_rescans: 0,
            last_walk: (0, 0, 0),
            next_tick: now + TICK,
            last_rescan: now,
            rescan_soon: false,
            new_dirs: Vec::new(),
        };
        for (i, name, ts) in initial {
            for t in &ts {
                let c = tailer
                    .compile(i, t)
                    .map_err(|e| format!("scrape config {name:?}: {e}"))?;
                tailer.targets.insert(c);
            }
        }
        Ok(tailer)
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn run(mut self) {
        if self.run_loop().is_err() && !self.stopping() {
            tracing::error!("file tailer: the delivery side closed; stopping");
        }
        tracing::debug!(files = self.files.len(), "file tailer stopped");
        // Held entries in pipelines and un-sent entries are dropped here:
        // their acks poison the positions, so they are re-read after restart.
    }

    fn run_loop(&mut self) -> Result<(), Stopped> {
        loop {
            if self.stopping() {
                return Ok(());
            }
            if self.updates.is_some() {
                self.take_updates()?;
            }
            let now = Instant::now();
            // What discovery has been told of so far is taken now: the
            // positions file is dated to this look (see `looked_at`).
            self.positions.looked_at(std::time::SystemTime::now());
            let changes = self.wake.take();
            if changes.overflow {
                self.next_sweep = now;
                self.full_sweep = true;
                self.rescan_soon = true;
            }
            self.note_changed_dirs(changes.overflow, &changes.dirty);
            if now >= self.next_rescan
                || self.rescan_now
                || (self.rescan_soon && now >= self.last_rescan + QUICK_RESCAN)
            {
                self.rescan_now = false;
                self.rescan()?;
                self.last_rescan = now;
                self.rescan_soon = false;
                self.next_rescan = now + self.opts.rescan;
            }
            for (p, change) in changes.dirty {
                match change {
                    discover::Change::Written => self.on_written(p)?,
                    discover::Change::Other | discover::Change::Dir => self.on_changed(p)?,
                }
            }
            if !self.new_dirs.is_empty() {
                let dirs = std::mem::take(&mut self.new_dirs);
                self.rescan_under(dirs)?;
            }
            if now >= self.next_sweep {
                self.sweep()?;
                self.next_sweep = now
                    + if self.watch.is_some() {
                        SWEEP
                    } else {
                        SWEEP_POLLING
                    };
            }
            let got = self.turn()?;
            if now >= self.next_tick {
                self.tick(now)?;
                self.next_tick = now + TICK;
            }
            // Hand this turn's entries to the clients (the fan-out gathers
            // them in chunks); nothing may stay buffered while we sleep.
            let flushed = self.out.flush().map_err(|_| Stopped)?;
            if !self.backlog.is_empty() || !flushed {
                self.wait_for_room(flushed);
            } else if got == 0 {
                let deadline = self.next_sweep.min(self.next_tick).min(self.next_rescan);
                let d = deadline.saturating_duration_since(Instant::now());
                self.wake.wait(d.min(TICK));
            }
        }
    }

    /// Delivery is stuck: sleeps until the budget has room for the backlog's
    /// next entry, or [`BUSY_TICK`] passes (file events are looked at then,
    /// so new files are pinned while delivery waits); see [`stall_wait`].
    fn wait_for_room(&mut self, flushed: bool) {
        let want = self.backlog.front().map(|e| self.out.charge_for(e));
        let budget = self.out.budget();
        if let Some(n) = want {
            budget.want_wake(n);
        }
        if let Some(d) = stall_wait(flushed, want.map(|n| budget.has_room(n))) {
            self.wake.wait_room(d);
        }
        if want.is_some() {
            budget.unwant();
        }
    }

    // ---------------------------------------------------------------- errors

    fn file_error(&mut self, path: &Path, reason: &'static str, err: &dyn std::fmt::Display) {
        self.metrics
            .file_errors_total
            .get_or_create(&labels(&[("reason", reason)]))
            .inc();
        if self.warned.len() > 10_000 {
            self.warned.clear();
        }
        if self.warned.insert((path.to_path_buf(), reason)) {
            tracing::warn!(file = %path.display(), reason, error = %err, "file tailer");
        }
    }

    fn io_reason(e: &io::Error) -> &'static str {
        match e.kind() {
            io::ErrorKind::PermissionDenied => "permission_denied",
            io::ErrorKind::NotFound => "vanished",
            _ => "io",
        }
    }

    // ------------------------------------------------------------- the sweep

    /// Periodic checks of every file: growth, truncation, rotation, closing.
    fn sweep(&mut self) -> Result<(), Stopped> {
        let now = Instant::now();
        let stuck = !self.backlog.is_empty();
        let full = std::mem::take(&mut self.full_sweep) || self.watch_gaps;
        let spread = if self.watch.is_some() && !full {
            PATH_CHECK_SPREAD
        } else {
            1
        };
        let sweep_no = self.sweeps;
        self.sweeps = self.sweeps.wrapping_add(1);
        // Which current files are looked at: see `Look`. A file left alone
        // that `maybe_close` would leave alone too is passed over here, in
        // one pass over the table: at 5,000 idle files, three in four of
        // them every sweep, each two hash lookups fewer.
        let idle_close = self.opts.idle_close;
        let look_of = |f: &Tailed| Look {
            at_eof: f.at_eof,
            active: f.active,
            stuck,
            path_event: f.path_event,
            event_since_look: f.event_since_look,
            due: path_check_due(f.seq, sweep_no, look_spread(f, spread)),
        };
        // Sized for every file, as the table is: grown from empty, the
        // list's reallocations every sweep left the allocator holding more.
        let mut ids: Vec<FileId> = Vec::with_capacity(self.files.len());
        ids.extend(
            self.files
                .iter()
                .filter(|(_, f)| {
                    !(f.kind == Kind::Current
                        && f.src.is_some()
                        && look_of(f).may_skip()
                        && !close_may_act(f, now, idle_close))
                })
                .map(|(&id, _)| id),
        );
        for id in ids {
            let Some(f) = self.files.get_mut(&id) else {
                continue;
            };
            let look = look_of(f);
            if f.kind == Kind::Current && f.src.is_some() && look.may_skip() {
                self.maybe_close(id, now)?;
                continue;
            }
            f.event_since_look = false;
            // A current file due a look at its path (see `check_path`'s
            // call below): while the path still names it, the path's `stat`
            // is the file's too, so the `fstat` is not made. (At 5,000 idle
            // files, ~1,250 `fstat`s a second fewer.)
            let path_due = matches!(f.src, Some(Src::Plain(_)))
                && f.kind == Kind::Current
                && ((f.at_eof && !f.active) || stuck)
                && (f.path_event || look.due);
            let path_seen = if path_due {
                fs::metadata(&f.path)
                    .ok()
                    .filter(|m| fingerprint::file_id(m) == id)
            } else {
                None
            };
            let path_checked = path_seen.is_some();
            let meta = match &f.src {
                None => {
                    self.check_parked(id)?;
                    // A parked file whose target went, read to its end.
                    if self
                        .files
                        .get(&id)
                        .is_some_and(|f| f.orphan && f.src.is_none() && f.at_eof)
                    {
                        self.release(id)?;
                    }
                    continue;
                }
                Some(Src::Gz(_)) => None,
                Some(Src::Plain(_)) if path_checked => path_seen.map(Ok),
                Some(Src::Plain(file)) => Some(file.metadata()),
            };
            if let Some(meta) = meta {
                let meta = match meta {
                    Ok(m) => m,
                    Err(e) => {
                        let p = f.path.clone();
                        self.file_error(&p, "io", &e);
                        continue;
                    }
                };
                let size = meta.len();
                let pos = f.split.pos();
                if size < pos {
                    self.truncated(id, size);
                    continue;
                }
                if size > pos {
                    self.plan.activate(f);
                    if f.kind != Kind::Current {
                        // New data in a rotated file: it goes first.
                        self.plan.stale = true;
                    }
                }
                f.saw_size(size);
                if (f.fp.len as u64) < size && (f.fp.len as usize) < FP_MAX {
                    // Not widened by reading (delivery stuck): a short
                    // fingerprint could not find the file's `.gz` later.
                    if let Some(Src::Plain(file)) = &f.src {
                        if let Ok(Widen::Wider(fp)) = fingerprint::widen_sized(file, f.fp, size) {
                            f.fp = fp;
                            self.positions.refingerprint(id, fp);
                        }
                    }
                }
                if f.kind == Kind::Current {
                    f.m.series.set_size(size as i64);
                    f.m.series.set_lag((size - pos) as i64);
                    if std::os::unix::fs::MetadataExt::nlink(&meta) > 1 {
                        // Linked elsewhere since: may be written unseen.
                        f.whole_events = false;
                    }
                    if path_checked {
                        // What `check_path` would have found: the same file.
                        f.path_event = false;
                        f.path_looked = self.sweeps;
                    } else if std::os::unix::fs::MetadataExt::nlink(&meta) == 0 {
                        self.moved(id);
                    } else if ((f.at_eof && !f.active) || stuck) && (f.path_event || look.due) {
                        self.check_path(id);
                    }
                }
            }
            self.maybe_close(id, now)?;
        }
        self.draining.retain(|d| {
            if !d.tracker.is_drained() {
                return true;
            }
            if !self.files.contains_key(&d.id) {
                if d.keep {
                    self.positions.release(d.id);
                } else {
                    self.positions.forget(d.id);
                }
            }
            false
        });
        self.metrics.files_active_total.set(self.files.len() as i64);
        Ok(())
    }

    /// Closes, parks or lets go of file `id` if its time has come (see
    /// [`close_may_act`] for when it cannot have).
    fn maybe_close(&mut self, id: FileId, now: Instant) -> Result<(), Stopped> {
        let Some(f) = self.files.get(&id) else {
            return Ok(());
        };
        if f.has_unread() || f.src.is_none() {
            return Ok(());
        }
        let quiet = now.saturating_duration_since(f.last_data);
        match f.kind {
            Kind::Gz => self.close_for_good(id),
            Kind::Moved if quiet >= ROTATED_GRACE => {
                let unlinked = f
                    .src
                    .as_ref()
                    .and_then(|s| s.file())
                    .and_then(|file| file.metadata().ok())
                    .is_some_and(|m| std::os::unix::fs::MetadataExt::nlink(&m) == 0);
                let replaced = fs::metadata(&f.path).is_ok_and(|m| fingerprint::file_id(&m) != id);
                if unlinked || replaced || quiet >= self.opts.idle_close {
                    self.close_for_good(id)
                } else {
                    Ok(())
                }
            }
            Kind::Current if f.orphan && quiet >= ROTATED_GRACE => self.release(id),
            Kind::Current if quiet >= self.opts.idle_close => {
                self.park(id);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    // -------------------------------------------------------------- reading

    fn count_stats(metrics: &Metrics, f: &mut Tailed, st: &ChunkStats) {
        if st.invalid_utf8 > 0 {
            metrics
                .invalid_utf8_lines_total
                .get_or_create(&f.m.key)
                .inc_by(st.invalid_utf8 as u64);
            if !f.warned_utf8 {
                f.warned_utf8 = true;
                tracing::warn!(file = %f.path.display(),
                    "lines with invalid UTF-8: invalid bytes replaced with U+FFFD (logged once per file)");
            }
        }
        if st.cut > 0 {
            metrics
                .file_errors_total
                .get_or_create(&labels(&[("reason", "line_too_long")]))
                .inc_by(st.cut as u64);
            if !f.warned_cut {
                f.warned_cut = true;
                tracing::warn!(file = %f.path.display(),
                    "lines longer than the maximum were cut (logged once per file)");
            }
        }
    }

    /// Runs the read entries through job `job`'s pipeline and hands the
    /// output to the fan-out (what it does not take waits in the backlog).
    /// `pipe`: the file's named pipeline, run after the job's stages.
    fn send(&mut self, job: usize, pipe: Option<usize>) -> Result<(), Stopped> {
        let Some(j) = self.jobs.get_mut(job) else {
            self.entries.clear();
            return Ok(());
        };
        let named = pipe.and_then(|p| j.named.get_mut(p)).map(|(_, p)| p);
        // All of the read at once, a stage at a time (see `pipeline`).
        match named {
            None => j.pipeline.process_all(&mut self.entries, &mut self.outv),
            Some(named) => {
                let mut mid = Vec::new();
                j.pipeline.process_all(&mut self.entries, &mut mid);
                named.process_all(&mut mid, &mut self.outv);
            }
        }
        let sent = self.out.send_all(&mut self.outv, &mut self.backlog);
        self.outv.shrink_to(crate::pipeline::KEEP_ENTRIES);
        sent.map(|_| ()).map_err(|_| Stopped)
    }

    /// Hands backlog entries to the fan-out while it takes them. `Ok(true)`:
    /// the backlog is empty.
    fn pump(&mut self) -> Result<bool, Stopped> {
        self.out
            .send_backlog(&mut self.backlog)
            .map_err(|_| Stopped)
    }

    fn tick(&mut self, now: Instant) -> Result<(), Stopped> {
        for (ji, j) in self.jobs.iter_mut().enumerate() {
            j.pipeline.tick(now, &mut self.outv);
            if j.named.is_empty() || self.outv.is_empty() {
                self.backlog.extend(self.outv.drain(..));
            } else {
                // Released by a job stage (a multiline block that timed
                // out): on through its file's named pipeline, as if it had
                // come out of `send`.
                let pipes = pipes_by_tracker(ji, &self.files, &self.draining);
                let released: Vec<Entry> = self.outv.drain(..).collect();
                for e in released {
                    let pipe = e
                        .ack
                        .tracker_id()
                        .and_then(|t| pipes.get(&t))
                        .and_then(|&p| j.named.get_mut(p));
                    match pipe {
                        Some((_, p)) => p.process(e, &mut self.outv),
                        None => self.outv.push(e),
                    }
                    self.backlog.extend(self.outv.drain(..));
                }
            }
            for (_, p) in &mut j.named {
                p.tick(now, &mut self.outv);
                self.backlog.extend(self.outv.drain(..));
            }
        }
        self.pump().map(|_| ())
    }

    /// Counts data gone before it could be read, and says so once per file.
    fn lost(&mut self, path: &Path, reason: &'static str, bytes: u64, what: &str) {
        let l = labels(&[("reason", reason)]);
        self.metrics
            .lost_bytes_total
            .get_or_create(&l)
            .inc_by(bytes);
        self.metrics.lost_files_total.get_or_create(&l).inc();
        if self.warned.len() > 10_000 {
            self.warned.clear();
        }
        if self.warned.insert((path.to_path_buf(), reason)) {
            tracing::warn!(file = %path.display(), reason, lost_bytes = bytes, "{what}");
        }
    }
}

/// The named pipeline of each file of job `job` that has one, keyed by its
/// tracker (open files and those closed but not yet acknowledged).
fn pipes_by_tracker(
    job: usize,
    files: &FastMap<FileId, Box<Tailed>>,
    draining: &[Draining],
) -> HashMap<usize, usize> {
    let open = files
        .values()
        .filter(|f| f.job == job)
        .filter_map(|f| Some((f.tracker.id(), f.pipe?)));
    let closed = draining
        .iter()
        .filter(|d| d.job == job)
        .filter_map(|d| Some((d.tracker.id(), d.pipe?)));
    open.chain(closed).collect()
}

#[cfg(test)]
mod stall_tests {
    use super::{stall_wait, BUSY_TICK};
    use std::time::Duration;

    #[test]
    fn a_full_queue_is_waited_for_even_while_the_budget_has_room() {
        let short = Some(Duration::from_millis(2));
        // A queue refused a chunk: wait, whatever the budget says.
        assert_eq!(stall_wait(false, Some(true)), short);
        assert_eq!(stall_wait(false, Some(false)), short);
        assert_eq!(stall_wait(false, None), short);
        // Everything went out: wait for the budget only if it is spent.
        assert_eq!(stall_wait(true, Some(false)), Some(BUSY_TICK));
        assert_eq!(stall_wait(true, Some(true)), None);
    }
}

#[cfg(test)]
mod sweep_tests {
    use super::{path_check_due, Look, PATH_CHECK_SPREAD};

    fn look(at_eof: bool, active: bool, stuck: bool) -> Look {
        Look {
            at_eof,
            active,
            stuck,
            path_event: false,
            event_since_look: false,
            due: false,
        }
    }

    #[test]
    fn a_file_waiting_for_delivery_is_looked_at_after_an_event_or_in_its_turn() {
        // Data still to read, delivery stuck: left alone until an event...
        let waiting = look(false, true, true);
        assert!(waiting.may_skip());
        // ...a write (a truncation is one) or a change at its path...
        let written = Look {
            event_since_look: true,
            ..waiting
        };
        assert!(
            !written.may_skip(),
            "a truncation must be found while stuck"
        );
        // ...or its spread turn (every turn without inotify).
        assert!(!Look {
            due: true,
            ..waiting
        }
        .may_skip());
        assert!(!Look {
            path_event: true,
            ..waiting
        }
        .may_skip());
    }

    #[test]
    fn which_files_a_sweep_leaves_alone_between_their_turns() {
        // Read to its end, nothing since: an event would have made it active.
        assert!(look(true, false, false).may_skip());
        assert!(look(true, false, true).may_skip());
        // Data to read while delivery keeps up: its next read tells.
        assert!(look(false, true, false).may_skip());
        // Not active with data left: nothing will read it unless looked at.
        assert!(!look(false, false, false).may_skip());
        assert!(!look(false, false, true).may_skip());
        // At its end but active (an event came): looked at.
        assert!(!look(true, true, false).may_skip());
        assert!(!look(true, true, true).may_skip());
        // An event since the last look matters only while delivery waits.
        let read = Look {
            event_since_look: true,
            ..look(false, true, false)
        };
        assert!(read.may_skip());
    }

    #[test]
    fn spread_path_checks_reach_every_file_once_in_any_run_of_spread_sweeps() {
        for spread in [1, 2, PATH_CHECK_SPREAD, 7] {
            for start in [0u64, 1, 5, 1_000_003] {
                for seq in 0..50u64 {
                    let due = (0..spread)
                        .filter(|k| path_check_due(seq, start.wrapping_add(*k), spread))
                        .count();
                    assert_eq!(due, 1, "spread {spread}, sweeps from {start}, file {seq}");
                }
            }
        }
    }

    #[test]
    fn each_sweep_checks_a_share_of_the_files() {
        let files = 1_000u64;
        for sweep in 0..8 {
            let n = (0..files)
                .filter(|&seq| path_check_due(seq, sweep, PATH_CHECK_SPREAD))
                .count() as u64;
            assert_eq!(n, files / PATH_CHECK_SPREAD, "sweep {sweep}");
        }
        // Unspread (no inotify, or after lost events): every file, every sweep.
        assert!((0..files).all(|seq| path_check_due(seq, 3, 1)));
    }
}
