//! The spool: entries that passed the pipeline, kept on disk as lz4 chunks
//! until every client has delivered them, so reading never waits for Loki.
//!
//! Turned on by Promtail's own `wal: {enabled: true, dir: …}`; without it
//! the agent keeps today's in-memory path and nothing here runs.
//!
//! # Invariants (the arithmetic of the disk bound)
//! - The spool is a directory of segment files, append-only, named by the
//!   spool offset of their first byte; offsets only grow. A segment is at
//!   most `segment_size` plus one chunk; the spool holds at most `max_size`
//!   plus one commit (a commit waits while the spool is full, and the
//!   oldest segments are deleted as soon as every client is past them).
//! - A chunk (see [`chunk`]) holds whole entries: a checksummed header, then
//!   a payload with its own checksum, lz4-compressed while the clients lag
//!   behind (`compress_from`), stored as is while they keep up.
//! - **Durability before progress.** The writer appends chunks, `fsync`s the
//!   segment, then — in one step under the positions' save lock —
//!   acknowledges the entries (file positions advance) and records the new
//!   spool offset in the positions file, and saves it. Only then does any
//!   client see the chunks. So a saved positions file and the spool always
//!   agree: every line is either before the saved position of its file (and
//!   in a durable chunk at or below the saved spool offset) or after it (and
//!   read again from the file). At start-up, chunks past the saved spool
//!   offset are cut (see [`scan`]): they would otherwise be sent twice.
//! - **Each client reads with its own cursors.** Per client and per tenant
//!   a *lane* reads the spool from its cursor, batches and pushes, and
//!   acknowledges chunk by chunk through an [`ack::Tracker`] over spool
//!   offsets (the same acknowledgement path as file offsets). The ledger
//!   file (`cursors.yaml`) records every lane's acknowledged offset; a
//!   segment is deleted once every lane of every client is past its end.
//!   One client (or one tenant) that is down never holds another back, up to
//!   the spool's size.
//! - **Full spool → backpressure.** When appending would take the spool past
//!   `max_size`, the writer waits; its queue fills, the memory budget fills
//!   and the tailer pauses reading (it keeps discovering files). Nothing is
//!   dropped.
//!
//! # Recovery rules (start-up)
//! - torn last chunk (interrupted write): cut; its lines are read again
//!   from the files (their positions had not passed them);
//! - chunks past the positions' spool offset: cut, likewise;
//! - damaged chunk in the middle (checksum): skipped, named in the log with
//!   its segment and offset, counted in `tailtrace_lost_bytes_total{reason=
//!   "spool_damaged"}`; a damaged header is skipped by scanning for the next
//!   good chunk; a missing segment is a gap, counted the same way;
//! - a spool directory that cannot be created or written: the agent refuses
//!   to start, naming `wal.dir` and the error;
//! - a lane cursor outside the spool (segments deleted by hand): moved to
//!   the nearest data, and what it skipped is counted as lost.
//!
//! Files: [`chunk`] (format), [`segment`] (files), [`scan`] (recovery;
//! `scan_props.rs` its property test under arbitrary damage),
//! `writer.rs` (the writer thread), `reader.rs` (a lane's reader), this one
//! (shared state, the ledger, segment deletion, metrics).
//!
//! Must never: let a client see a chunk before the positions that account
//! for it are saved; delete a segment some lane still needs; drop an entry
//! because the spool is full; trust bytes whose checksum was not checked.
//!
//! [`ack::Tracker`]: crate::ack::Tracker

pub mod chunk;
pub mod inspect;
pub mod reader;
pub mod scan;
pub mod segment;
pub mod writer;

use crate::ack::{Position, Tracker};
use crate::metrics::{labels, Metrics};
use scan::ChunkMeta;
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::watch;

/// The ledger file in the spool directory.
pub const LEDGER: &str = "cursors.yaml";

/// Spool settings (from `wal:`).
#[derive(Clone, Debug)]
pub struct SpoolConfig {
    pub dir: PathBuf,
    /// Bound on the bytes the spool holds on disk.
    pub max_size: u64,
    /// A segment is closed once it holds this many bytes.
    pub segment_size: u64,
    /// A chunk is sealed at this many (uncompressed) bytes...
    pub chunk_size: usize,
    /// ...or when its first entry has waited this long.
    pub chunk_wait: Duration,
    /// A chunk is lz4-compressed when at least this many bytes of the
    /// spool are undelivered (by the slowest lane) as it is sealed: 0
    /// compresses every chunk, `u64::MAX` none (see [`Self::compress_from_for`]).
    pub compress_from: u64,
}

impl SpoolConfig {
    /// Segment size for a spool bound: an eighth of it, between 64 KiB and
    /// 64 MiB (so the oldest data is freed in steps of at most 1/8).
    pub fn segment_size_for(max_size: u64) -> u64 {
        (max_size / 8).clamp(64 << 10, 64 << 20)
    }

    /// `compress_from` for `wal.compression`: with `auto`, a sixteenth of
    /// the bound. While the clients keep up, a chunk is read back within
    /// moments and deleted with its segment, so compressing it would cost
    /// CPU (as much as the push's own snappy) and buy nothing; once an
    /// outage builds a backlog, compression makes the disk bound hold ~3×
    /// more lines. Stored as is, the first sixteenth holds fewer lines than
    /// it could: the spool rides out a ~6 % shorter outage than with `lz4`.
    pub fn compress_from_for(max_size: u64, c: crate::config::SpoolCompression) -> u64 {
        use crate::config::SpoolCompression as C;
        match c {
            C::Auto => max_size / 16,
            C::Lz4 => 0,
            C::None => u64::MAX,
        }
    }
}

/// What the spool holds, shared by the writer, the lanes and maintenance.
pub(crate) struct State {
    /// Segment start → length.
    pub segments: BTreeMap<u64, u64>,
    /// Every good chunk, oldest first.
    pub chunks: VecDeque<ChunkMeta>,
    /// Regions to skip: start → end.
    pub damaged: BTreeMap<u64, u64>,
    /// Where the next chunk goes; also the committed head once written.
    pub end: u64,
    /// Bytes in segment files.
    pub bytes: u64,
    /// The writer is waiting for space.
    pub full: bool,
}

/// One lane: a client's reader for one tenant.
pub(crate) struct LaneState {
    pub tracker: Arc<Tracker>,
}

/// The spool. Cheap to clone (shared state).
#[derive(Clone)]
pub struct Spool {
    pub(crate) shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub cfg: SpoolConfig,
    pub state: Mutex<State>,
    /// Signalled when segments are deleted (the writer waits for space).
    pub freed: Condvar,
    /// The committed head: what lanes may read.
    pub head: watch::Sender<u64>,
    pub metrics: Arc<Metrics>,
    /// Client key → tenant → lane.
    pub lanes: Mutex<BTreeMap<String, BTreeMap<String, LaneState>>>,
    /// The ledger as loaded (client key → tenant → cursor).
    pub loaded: BTreeMap<String, BTreeMap<String, u64>>,
    /// The ledger as last saved.
    pub saved: Mutex<BTreeMap<String, BTreeMap<String, u64>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Spool {
    /// Opens (creating it if needed) and recovers the spool. `committed`
    /// is the spool offset the positions file accounts for. Errors name
    /// `wal.dir`.
    pub fn open(
        cfg: SpoolConfig,
        committed: Option<u64>,
        metrics: Arc<Metrics>,
    ) -> Result<Spool, String> {
        let dir = cfg.dir.clone();
        let err = |what: &str, e: &dyn std::fmt::Display| {
            format!("wal.dir {}: {what}: {e}", dir.display())
        };
        std::fs::create_dir_all(&dir).map_err(|e| err("cannot create the spool directory", &e))?;
        let probe = dir.join(".tailtrace-probe");
        std::fs::write(&probe, b"probe")
            .and_then(|_| std::fs::remove_file(&probe))
            .map_err(|e| err("the spool directory is not writable", &e))?;
        let loaded = match load_ledger(&dir.join(LEDGER)) {
            Ok(l) => l,
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                // Sending the spool again from its start duplicates lines;
                // refusing to start would ship nothing at all.
                tracing::error!(dir = %dir.display(), error = %e,
                    "spool: the cursors file is damaged; every client starts again from the oldest spooled data (duplicates, no loss)");
                BTreeMap::new()
            }
            Err(e) => return Err(err("cannot read the spool cursors", &e)),
        };
        let r = scan::recover(&dir, committed).map_err(|e| err("cannot recover the spool", &e))?;
        if r.cut > 0 {
            tracing::info!(dir = %dir.display(), bytes = r.cut,
                "spool: cut chunks written after the last saved positions (an interrupted write or a crash); their lines are read again from the files");
        }
        let mut damaged = BTreeMap::new();
        for d in &r.damaged {
            let raw = d.raw.map_or(d.end - d.start, u64::from);
            tracing::error!(segment = %d.segment.display(), offset = d.start, bytes = d.end - d.start,
                entries = ?d.entries, why = %d.why,
                "spool: damaged or missing data skipped; the lines in it are lost");
            let l = labels(&[("reason", "spool_damaged")]);
            metrics.lost_bytes_total.get_or_create(&l).inc_by(raw);
            metrics.lost_files_total.get_or_create(&l).inc();
            damaged.insert(d.start, d.end);
        }
        let bytes = r.segments.values().sum();
        let (head, _) = watch::channel(r.end);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                segments: r.segments,
                chunks: r.chunks,
                damaged,
                end: r.end,
                bytes,
                full: false,
            }),
            cfg,
            freed: Condvar::new(),
            head,
            metrics,
            lanes: Mutex::new(BTreeMap::new()),
            saved: Mutex::new(loaded.clone()),
            loaded,
        });
        let s = Spool { shared };
        s.update_gauges();
        Ok(s)
    }

    pub fn dir(&self) -> &Path {
        &self.shared.cfg.dir
    }

    /// The committed head (readers see chunks below it).
    pub fn head(&self) -> u64 {
        *self.shared.head.borrow()
    }

    /// The oldest offset still held.
    pub fn tail(&self) -> u64 {
        let st = lock(&self.shared.state);
        st.chunks
            .front()
            .map(|c| c.offset)
            .or_else(|| st.segments.keys().next().copied())
            .unwrap_or(st.end)
            .min(st.end)
    }

    /// Bytes on disk.
    pub fn bytes(&self) -> u64 {
        lock(&self.shared.state).bytes
    }

    /// The lanes a client starts with: its saved cursors, else one lane
    /// for `default_tenant` at the oldest data. Registers them.
    pub fn start_lanes(
        &self,
        client: &str,
        default_tenant: &str,
    ) -> Vec<(String, u64, Arc<Tracker>)> {
        let tail = self.tail();
        let head = self.head();
        let mut want: Vec<(String, u64)> = match self.shared.loaded.get(client) {
            Some(m) if !m.is_empty() => m.iter().map(|(t, o)| (t.clone(), *o)).collect(),
            _ => vec![(default_tenant.to_string(), tail)],
        };
        let mut out = Vec::new();
        for (tenant, off) in want.drain(..) {
            let start = if off < tail {
                let l = labels(&[("reason", "spool_missing")]);
                self.shared
                    .metrics
                    .lost_bytes_total
                    .get_or_create(&l)
                    .inc_by(tail - off);
                tracing::error!(client, tenant, cursor = off, oldest = tail,
                    "spool: data this client had not sent is gone (segments deleted?); continuing with the oldest data");
                tail
            } else {
                off.min(head)
            };
            if let Some(t) = self.register_lane(client, &tenant, start) {
                out.push((tenant, start, t));
            }
        }
        out
    }

    /// Says which clients of the saved cursors are not configured any more
    /// (call once every client has started): the spooled lines they had not
    /// sent will not be sent to them.
    pub fn report_orphans(&self) {
        let lanes = lock(&self.shared.lanes);
        for (client, cursors) in &self.shared.loaded {
            if !lanes.contains_key(client) {
                tracing::warn!(client, tenants = cursors.len(),
                    "spool: this client is no longer configured; what it had not sent is dropped from the spool");
            }
        }
    }

    /// Registers a lane for `tenant` starting at `start`; `None` if the
    /// client already has one.
    pub fn register_lane(&self, client: &str, tenant: &str, start: u64) -> Option<Arc<Tracker>> {
        let mut lanes = lock(&self.shared.lanes);
        let c = lanes.entry(client.to_string()).or_default();
        if c.contains_key(tenant) {
            return None;
        }
        let tracker = Tracker::new(Position::Offset(start));
        c.insert(
            tenant.to_string(),
            LaneState {
                tracker: tracker.clone(),
            },
        );
        Some(tracker)
    }

    /// Bytes of the spool the slowest lane has not acknowledged yet (0 when
    /// there is no lane).
    pub fn undelivered(&self) -> u64 {
        let end = lock(&self.shared.state).end;
        let lanes = lock(&self.shared.lanes);
        lanes
            .values()
            .flat_map(|ts| ts.values())
            .map(|l| l.tracker.committed().offset().unwrap_or(0))
            .min()
            .map_or(0, |min| end.saturating_sub(min))
    }

    /// True if `client` has a lane for `tenant`.
    pub fn has_lane(&self, client: &str, tenant: &str) -> bool {
        lock(&self.shared.lanes)
            .get(client)
            .is_some_and(|c| c.contains_key(tenant))
    }

    /// Every lane's acknowledged cursor: client → tenant → offset.
    pub fn cursors(&self) -> BTreeMap<String, BTreeMap<String, u64>> {
        let lanes = lock(&self.shared.lanes);
        lanes
            .iter()
            .map(|(c, ts)| {
                (
                    c.clone(),
                    ts.iter()
                        .map(|(t, l)| (t.clone(), l.tracker.committed().offset().unwrap_or(0)))
                        .collect(),
                )
            })
            .collect()
    }

    /// Saves the ledger if a cursor moved, then deletes every segment all
    /// lanes are past (only what the saved ledger says, so a crash never
    /// finds a cursor in a deleted segment), and updates the gauges.
    pub fn maintain(&self) -> std::io::Result<()> {
        let now = self.cursors();
        let changed = *lock(&self.shared.saved) != now;
        if changed {
            save_ledger(&self.dir().join(LEDGER), &now)?;
            *lock(&self.shared.saved) = now.clone();
        }
        let min = now.values().flat_map(|m| m.values().copied()).min();
        if let Some(min) = min {
            self.delete_before(min)?;
        }
        self.update_gauges_with(&now);
        Ok(())
    }

    /// Deletes segments that end at or before `min` (never the last one).
    fn delete_before(&self, min: u64) -> std::io::Result<()> {
        let doomed: Vec<(u64, u64)> = {
            let st = lock(&self.shared.state);
            let last = st.segments.keys().next_back().copied();
            st.segments
                .iter()
                .filter(|(s, l)| Some(**s) != last && *s + *l <= min)
                .map(|(s, l)| (*s, *l))
                .collect()
        };
        if doomed.is_empty() {
            return Ok(());
        }
        for (start, _) in &doomed {
            match std::fs::remove_file(self.dir().join(segment::file_name(*start))) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        let mut st = lock(&self.shared.state);
        for (start, len) in doomed {
            if st.segments.remove(&start).is_some() {
                st.bytes = st.bytes.saturating_sub(len);
            }
            let end = start + len;
            while st.chunks.front().is_some_and(|c| c.end() <= end) {
                st.chunks.pop_front();
            }
            st.damaged.retain(|_, e| *e > end);
        }
        drop(st);
        self.shared.freed.notify_all();
        Ok(())
    }

    fn update_gauges(&self) {
        let c = self.cursors();
        self.update_gauges_with(&c);
    }

    fn update_gauges_with(&self, cursors: &BTreeMap<String, BTreeMap<String, u64>>) {
        let m = &self.shared.metrics;
        let st = lock(&self.shared.state);
        m.spool_bytes.set(st.bytes as i64);
        m.spool_segments.set(st.segments.len() as i64);
        m.spool_full.set(i64::from(st.full));
        let now = crate::entry::Timestamp::now().nanos();
        for (client, lanes) in cursors {
            let Some(min) = lanes.values().copied().min() else {
                continue;
            };
            let i = st.chunks.partition_point(|c| c.offset < min);
            let age = st
                .chunks
                .get(i)
                .map_or(0.0, |c| (now - c.written).max(0) as f64 / 1e9);
            let l = labels(&[("client", client)]);
            m.spool_oldest_unsent_age_seconds.get_or_create(&l).set(age);
            m.spool_cursor_lag_bytes
                .get_or_create(&l)
                .set(st.end.saturating_sub(min) as i64);
        }
    }
}

/// The cursors saved in the spool directory `dir`: client → tenant →
/// offset.
pub fn saved_cursors(dir: &Path) -> std::io::Result<BTreeMap<String, BTreeMap<String, u64>>> {
    load_ledger(&dir.join(LEDGER))
}

fn load_ledger(path: &Path) -> std::io::Result<BTreeMap<String, BTreeMap<String, u64>>> {
    #[derive(serde::Deserialize, Default)]
    struct Ledger {
        #[serde(default)]
        clients: BTreeMap<String, BTreeMap<String, u64>>,
    }
    match std::fs::read_to_string(path) {
        Ok(t) if t.trim().is_empty() => Ok(BTreeMap::new()),
        Ok(t) => serde_yaml_ng::from_str::<Ledger>(&t)
            .map(|l| l.clients)
            .map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(e),
    }
}

fn save_ledger(
    path: &Path,
    cursors: &BTreeMap<String, BTreeMap<String, u64>>,
) -> std::io::Result<()> {
    #[derive(serde::Serialize)]
    struct Ledger<'a> {
        clients: &'a BTreeMap<String, BTreeMap<String, u64>>,
    }
    let mut text = String::from(
        "# tailtrace spool cursors: per client and tenant, the spool offset up to which Loki accepted everything.\n",
    );
    text.push_str(
        &serde_yaml_ng::to_string(&Ledger { clients: cursors })
            .map_err(|e| std::io::Error::other(e.to_string()))?,
    );
    crate::positions::write_atomic(path, text.as_bytes())
}

#[cfg(test)]
mod scan_props;
#[cfg(test)]
mod tests;
