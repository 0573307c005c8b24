//! The spool writer: one thread that turns the fan-out's entries into
//! durable chunks, advances file positions, and shows the chunks to the
//! clients — in that order.
//!
//! Owns: [`spawn_writer`] and its loop. Entries arrive in batches on a
//! bounded queue (the fan-out's only outlet with a spool). They are encoded
//! into the open chunk at once (their lines freed); the chunk is sealed when
//! it reaches `chunk_size`, lz4-compressed only if the clients lag behind
//! (`compress_from`, from `wal.compression`: a chunk read back at once
//! would pay a second compression for nothing), and written to the last
//! segment at once — not synced, not shown to the lanes, and not kept in
//! memory: only the chunk being written is. Written chunks are committed
//! together (group commit) when the open data reaches the commit threshold
//! (`commit_bytes`, more while the positions file is large, see
//! `commit_threshold`), when the entries waiting for it hold half the
//! fan-out's memory budget (an entry taken keeps only its ack's share of
//! its charge: its line is in a chunk), or once the oldest entry not
//! committed has waited `chunk_wait` (the open chunk is sealed then too):
//!
//! 1. before each chunk is written, wait while the spool is full
//!    (`max_size`) — committing what is written first: backpressure, never
//!    a drop;
//! 2. `fsync` the segment (a segment left for a new one past
//!    `segment_size` is synced as it is left);
//! 3. under the positions' save lock, acknowledge the chunks' entries (file
//!    positions advance, budget released) and record the new spool offset;
//!    save the positions file;
//! 4. publish the new head to the lanes.
//!
//! A failed write (disk full, I/O error) cuts the segment back to where the
//! chunk began and is retried with backoff; meanwhile the queue fills and
//! reading pauses. A failed `fsync` cannot be retried — the bytes may not
//! be on disk and their copy in memory is gone — so nothing more is
//! committed: the segments are cut back to the last commit, the entries
//! not committed are dropped unacknowledged, and the agent stops with exit
//! code 1 ([`OnFailure`]); after the restart those lines are read again
//! from the files (a crash at any point is safe the same way: recovery
//! cuts chunks past the committed offset, see `scan`). At shutdown (the
//! queue closed) the open chunk is committed; entries that cannot be (the
//! spool stays full or the disk fails past the deadline) are dropped
//! unacknowledged and read again after the restart — and so is every entry
//! that comes after them, which would otherwise reach Loki before them.
//!
//! Must never: acknowledge an entry before its chunk is durable, publish a
//! head before the positions that account for it are saved, or lose an entry
//! it took (it is committed, or its position does not advance).

use super::chunk::{ChunkBuilder, Codec};
use super::scan::ChunkMeta;
use super::{lock, segment, Spool};
use crate::ack::AckRuns;
use crate::entry::{Entry, Timestamp};
use crate::metrics::labels;
use crate::positions::Positions;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Batches of entries queued to the writer.
/// Big enough that the memory budget, not the queue, is what fills first
/// (the budget wakes the tailer precisely; a full queue is only polled).
pub const QUEUE: usize = 256;

/// Budget an entry taken keeps until its commit (the line is in a chunk,
/// written to the spool at once or in the one open chunk): what it still
/// holds is its tracker's slot (16 bytes) and its part of a run in
/// [`AckRuns`]; charged at 64, a commit is due at the latest once its
/// entries hold half the budget (12,288 entries of the spool's 1.5 MiB).
const ACK_BYTES: usize = 64;

/// See [`Writer::commit_threshold`].
fn commit_threshold(base: usize, positions_len: usize) -> usize {
    base.max(positions_len.saturating_mul(2))
        .min(base.saturating_mul(4))
}

/// True if `n` more bytes fit beside `bytes` under `max` (always, in an
/// empty spool: one chunk larger than `max_size` is still written).
fn fits(bytes: u64, n: u64, max: u64) -> bool {
    bytes == 0 || bytes + n <= max
}

/// Whether `entries` taken entries (`open` bytes of data) are due for a
/// commit: the data reached `threshold`, or their kept charges half the
/// `budget` (many small lines), so that the queue never waits on what only
/// a commit frees.
fn due(open: usize, entries: usize, threshold: usize, budget: Option<usize>) -> bool {
    open >= threshold || budget.is_some_and(|b| entries.saturating_mul(ACK_BYTES) >= b / 2)
}

/// Starts the writer thread. `commit_bytes`: commit once this much
/// (uncompressed) data is open (more while the positions file is large,
/// see [`Writer::commit_threshold`]). `budget`: the limit of the fan-out's
/// memory budget (a commit is also due when the entries taken hold half of
/// it).
/// `stop`: the agent is stopping (bounds the waits of the final commit).
/// `on_failure`: called once if an `fsync` fails (see [`OnFailure`]).
pub fn spawn_writer(
    spool: Spool,
    positions: Arc<Positions>,
    commit_bytes: usize,
    budget: Option<usize>,
    stop: Arc<AtomicBool>,
    on_failure: Option<OnFailure>,
) -> std::io::Result<(SyncSender<Vec<Entry>>, JoinHandle<()>)> {
    let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
    let mut w = Writer::new(spool, positions, commit_bytes, stop);
    w.budget = budget;
    w.on_failure = on_failure;
    let h = std::thread::Builder::new()
        .name("spool-writer".into())
        .spawn(move || w.run(rx))?;
    Ok((tx, h))
}

/// What the writer calls when it cannot go on without risking a line: an
/// `fsync` failed, so what it wrote since the last commit may not be on
/// disk and its copy in memory is gone. The agent shuts down (exit 1), and
/// the lines not committed are read again from the files after the restart.
pub type OnFailure = Box<dyn Fn() + Send>;

/// The writer's state (driven by its thread, or directly by tests).
pub(crate) struct Writer {
    builder: ChunkBuilder,
    /// The chunk being sealed and written (reused: one chunk's bytes).
    chunk: Vec<u8>,
    /// Spool offset and header of each chunk written since the last
    /// commit (on disk, not synced, not shown to the lanes yet).
    written: Vec<(u64, super::chunk::Header)>,
    /// Where the next chunk goes: the committed end plus `written`.
    end: u64,
    /// Segments appended to since the last commit, with their length at
    /// it (what a failure cuts them back to).
    touched: Vec<(u64, u64)>,
    /// The open segment has bytes not synced yet.
    unsynced: bool,
    /// Acknowledgements of the entries in the `written` chunks, and of the
    /// entries taken since (the open chunk's), held as runs of lines
    /// ([`AckRuns`]): a commit of one file's 12,000 lines holds one range.
    acks_written: AckRuns,
    acks_open: AckRuns,
    /// When the oldest entry not committed yet was taken (written chunks
    /// included: a chunk sealed by size still waits at most `chunk_wait`).
    open_since: Option<Instant>,
    /// Uncompressed bytes taken and not committed; the first
    /// `open_written` of them are in the `written` chunks.
    open_bytes: usize,
    open_written: usize,
    commit_bytes: usize,
    /// The last segment, open for appending: (start, file).
    seg: Option<(u64, File)>,
    spool: Spool,
    positions: Arc<Positions>,
    stop: Arc<AtomicBool>,
    warned_full: bool,
    /// The limit of the fan-out's budget (see [`spawn_writer`]).
    budget: Option<usize>,
    /// Syncs a segment (`File::sync_data`; tests make it fail).
    sync: fn(&File) -> std::io::Result<()>,
    on_failure: Option<OnFailure>,
    /// Nothing is committed any more: an `fsync` failed (see
    /// [`OnFailure`]), or entries were given up at shutdown (`abandon`) —
    /// committing later ones would put lines into the spool after a gap of
    /// their own file's lines: sent out of order now, and again after the
    /// restart, which reads the file from that gap.
    failed: bool,
}

impl Writer {
    pub(crate) fn new(
        spool: Spool,
        positions: Arc<Positions>,
        commit_bytes: usize,
        stop: Arc<AtomicBool>,
    ) -> Writer {
        // From now on the positions file says how much of the spool it
        // accounts for, so a crash before the first commit finishes cannot
        // leave chunks that look committed (see `scan`).
        if positions.spool_head().is_none() {
            positions.commit_spool(spool.head(), || {});
            if let Err(e) = positions.save() {
                tracing::warn!(file = %positions.path().display(), error = %e, "cannot save positions");
            }
        }
        let end = lock(&spool.shared.state).end;
        Writer {
            builder: ChunkBuilder::new(Codec::Lz4),
            chunk: Vec::new(),
            written: Vec::new(),
            end,
            touched: Vec::new(),
            unsynced: false,
            acks_written: AckRuns::default(),
            acks_open: AckRuns::default(),
            open_since: None,
            open_bytes: 0,
            open_written: 0,
            commit_bytes: commit_bytes.max(64 << 10),
            seg: None,
            spool,
            positions,
            stop,
            warned_full: false,
            budget: None,
            sync: File::sync_data,
            on_failure: None,
            failed: false,
        }
    }

    fn run(mut self, rx: Receiver<Vec<Entry>>) {
        let wait = self.spool.shared.cfg.chunk_wait;
        loop {
            let timeout = match self.open_since {
                Some(t) => (t + wait).saturating_duration_since(Instant::now()),
                None => Duration::from_secs(3600),
            };
            match rx.recv_timeout(timeout) {
                Ok(batch) => {
                    self.take(batch);
                    // Take what is already queued before deciding.
                    let threshold = self.commit_threshold();
                    while !self.due(threshold) {
                        match rx.try_recv() {
                            Ok(b) => self.take(b),
                            Err(_) => break,
                        }
                    }
                    if self.due(threshold) {
                        self.seal();
                        self.commit();
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.seal();
                    self.commit();
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.seal();
                    self.commit();
                    tracing::debug!("spool writer stopped");
                    return;
                }
            }
        }
    }

    /// Open bytes that trigger a commit: `commit_bytes`, raised up to four
    /// times that while the positions file (saved whole at every commit) is
    /// large — thousands of files — so its writing stays a small part of
    /// the work. Latency is unchanged: `chunk_wait` still bounds it.
    pub(crate) fn commit_threshold(&self) -> usize {
        commit_threshold(self.commit_bytes, self.positions.saved_len())
    }

    /// Whether what is open is due for a commit (see [`due`]).
    fn due(&self, threshold: usize) -> bool {
        let taken = self.acks_written.len() + self.acks_open.len();
        due(self.open_bytes, taken, threshold, self.budget)
    }

    pub(crate) fn take(&mut self, batch: Vec<Entry>) {
        if self.failed {
            // Dropped unacknowledged (the failure was logged and counted):
            // read again after the restart.
            return;
        }
        for e in batch {
            if self.open_since.is_none() {
                self.open_since = Some(Instant::now());
            }
            self.builder.add(&e);
            let size = e.size();
            self.open_bytes += size + 16;
            let mut ack = e.ack;
            // The line is in the chunk now (written with it soon) and
            // freed: until the commit only the ack stays charged, so the
            // budget is room for the queue, whatever the commit's size.
            ack.keep_charge(ACK_BYTES);
            self.acks_open.push(ack);
            if self.builder.body_len() >= self.spool.shared.cfg.chunk_size {
                self.seal();
            }
        }
    }

    /// Seals the open chunk and writes it to the spool (not synced: the
    /// commit syncs). Only the chunk being written is held in memory.
    pub(crate) fn seal(&mut self) {
        if self.builder.is_empty() || self.failed {
            return;
        }
        self.builder.set_codec(self.codec());
        self.chunk.clear();
        // The chunk is `self.chunk` (header, label table) and then the
        // builder's sealed tail (the entries, unless compressed): written
        // in turn, never copied together.
        let Some(h) = self
            .builder
            .seal_in_place(Timestamp::now().nanos(), &mut self.chunk)
        else {
            return;
        };
        let m = &self.spool.shared.metrics;
        m.spool_raw_bytes_total.inc_by(u64::from(h.raw_len));
        m.spool_stored_bytes_total.inc_by(u64::from(h.data_len));
        let n = self.sealed_len();
        if !self.has_space(n) {
            // Commit what is written first: waiting with it uncommitted
            // could wait for ever (a spool smaller than a commit).
            self.commit();
            if self.failed {
                return;
            }
            if !self.wait_for_space(n) {
                return self.abandon("the spool stayed full");
            }
        }
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.append_chunk() {
                Ok(at) => break self.written.push((at, h)),
                Err(_) if self.failed => return,
                Err(e) => {
                    tracing::error!(dir = %self.spool.dir().display(), error = %e,
                        "spool: cannot write (disk full?); reading is paused until it can");
                    if self.stop.load(Ordering::Relaxed) {
                        return self.abandon("the spool could not be written");
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        self.acks_written.append(&mut self.acks_open);
        self.open_written = self.open_bytes;
        self.chunk.clear();
        if self.chunk.capacity() > 2 * self.spool.shared.cfg.chunk_size + (64 << 10) {
            // One oversized chunk (a huge line) does not stay resident.
            self.chunk = Vec::new();
        }
    }

    /// How the chunk being sealed is stored: lz4 once the slowest lane is
    /// `compress_from` bytes behind (counting what is written and not
    /// committed yet), else as it is. See `SpoolConfig::compress_from_for`.
    fn codec(&self) -> Codec {
        let from = self.spool.shared.cfg.compress_from;
        if from == 0 {
            return Codec::Lz4;
        }
        if from == u64::MAX {
            return Codec::None;
        }
        let behind = self.spool.undelivered() + self.uncommitted();
        if behind >= from {
            Codec::Lz4
        } else {
            Codec::None
        }
    }

    /// Bytes written to the spool and not committed yet.
    fn uncommitted(&self) -> u64 {
        self.end.saturating_sub(lock(&self.spool.shared.state).end)
    }

    /// Commits every written chunk. See the module docs.
    pub(crate) fn commit(&mut self) {
        if self.written.is_empty() || self.failed {
            if self.builder.body_len() == 0 && self.written.is_empty() {
                self.open_since = None;
            }
            return;
        }
        if self.sync_or_fail().is_err() {
            return;
        }
        let end = self.end;
        let acks = std::mem::take(&mut self.acks_written);
        self.positions.commit_spool(end, || acks.ack());
        let mut backoff = Duration::from_millis(100);
        while let Err(e) = self.positions.save() {
            tracing::error!(file = %self.positions.path().display(), error = %e,
                "spool: cannot save positions; the new chunks wait until they are");
            if self.stop.load(Ordering::Relaxed) {
                break;
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
        {
            let mut st = lock(&self.spool.shared.state);
            for (at, h) in &self.written {
                st.chunks.push_back(ChunkMeta {
                    offset: *at,
                    len: h.total_len() as u32,
                    entries: h.entries,
                    raw_len: h.raw_len,
                    written: h.written,
                });
            }
            st.end = end;
        }
        let m = &self.spool.shared.metrics;
        m.spool_chunks_written_total
            .inc_by(self.written.len() as u64);
        let (raw, stored) = (
            m.spool_raw_bytes_total.get(),
            m.spool_stored_bytes_total.get(),
        );
        if stored > 0 {
            m.spool_compression_ratio.set(raw as f64 / stored as f64);
        }
        self.spool.shared.head.send_replace(end);
        self.written.clear();
        self.touched.clear();
        self.open_bytes -= self.open_written;
        self.open_written = 0;
        if self.open_bytes == 0 {
            self.open_since = None;
        }
    }

    /// A crash in the middle of a commit: the chunks are written and synced,
    /// the process dies before the positions are saved.
    #[cfg(test)]
    pub(crate) fn commit_then_die_before_positions(&mut self) {
        self.seal();
        let _ = self.sync_open();
    }

    /// Makes the writer's `fsync` fail from now on.
    #[cfg(test)]
    pub(crate) fn fail_syncs(&mut self, on_failure: OnFailure) {
        self.sync = |_| Err(std::io::Error::other("injected fsync failure"));
        self.on_failure = Some(on_failure);
    }

    /// Syncs the open segment if it has bytes not synced.
    fn sync_open(&mut self) -> std::io::Result<()> {
        if let (true, Some((_, f))) = (self.unsynced, &self.seg) {
            (self.sync)(f)?;
        }
        self.unsynced = false;
        Ok(())
    }

    /// [`Writer::sync_open`], and on failure [`Writer::fail`]: the error is
    /// returned only to stop the caller.
    fn sync_or_fail(&mut self) -> std::io::Result<()> {
        self.sync_open().inspect_err(|e| self.fail(e))
    }

    /// True if `n` more bytes fit under `max_size` now (or the spool is
    /// empty).
    fn has_space(&self, n: u64) -> bool {
        let st = lock(&self.spool.shared.state);
        fits(st.bytes, n, self.spool.shared.cfg.max_size)
    }

    /// Waits until `n` more bytes fit under `max_size` (or the spool is
    /// empty). False if the agent stops first. While waiting, the last
    /// segment is closed (a new, empty one started), so that it too can be
    /// deleted once every lane is past it. Nothing uncommitted is written
    /// when it is called.
    fn wait_for_space(&mut self, n: u64) -> bool {
        let shared = self.spool.shared.clone();
        let max = shared.cfg.max_size;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut st = lock(&shared.state);
            if fits(st.bytes, n, max) {
                if st.full {
                    st.full = false;
                    shared.metrics.spool_full.set(0);
                }
                return true;
            }
            if !st.full {
                st.full = true;
                shared.metrics.spool_full.set(1);
                if !self.warned_full {
                    self.warned_full = true;
                    tracing::warn!(dir = %shared.cfg.dir.display(), bytes = st.bytes, max_size = max,
                        "spool full: reading is paused until the clients catch up (logged once)");
                }
            }
            let last_used = st.segments.iter().next_back().is_some_and(|(_, l)| *l > 0);
            if last_used {
                drop(st);
                if let Err(e) = self.new_segment() {
                    tracing::warn!(error = %e, "spool: cannot start a new segment");
                }
                continue;
            }
            if self.stop.load(Ordering::Relaxed) && Instant::now() >= deadline {
                return false;
            }
            let _ = shared
                .freed
                .wait_timeout(st, Duration::from_millis(100))
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Starts a new, empty segment where the next chunk goes, after
    /// syncing the one it replaces.
    fn new_segment(&mut self) -> std::io::Result<()> {
        self.sync_or_fail()?;
        let shared = self.spool.shared.clone();
        let start = self.end;
        let path = shared.cfg.dir.join(segment::file_name(start));
        let f = OpenOptions::new().create(true).append(true).open(&path)?;
        File::open(&shared.cfg.dir)?.sync_all()?;
        lock(&shared.state).segments.insert(start, 0);
        self.seg = Some((start, f));
        Ok(())
    }

    /// Bytes of the chunk sealed last: `self.chunk` and the builder's tail.
    fn sealed_len(&self) -> u64 {
        (self.chunk.len() + self.builder.sealed_tail().len()) as u64
    }

    /// Appends the chunk (`self.chunk`, then the builder's sealed tail) to
    /// the last segment (a new one once it reaches `segment_size`),
    /// unsynced. Returns its spool offset. On error the segment is cut back
    /// to where the chunk began.
    fn append_chunk(&mut self) -> std::io::Result<u64> {
        let (seg_start, seg_len) = self.open_last()?;
        if self.touched.last().map(|t| t.0) != Some(seg_start) {
            self.touched.push((seg_start, seg_len));
        }
        let Some((_, f)) = self.seg.as_mut() else {
            return Err(std::io::Error::other("no segment"));
        };
        let tail = self.builder.sealed_tail();
        if let Err(e) = f.write_all(&self.chunk).and_then(|()| f.write_all(tail)) {
            // A partial write: cut it off, so the next try starts clean.
            if let Err(e2) = f.set_len(seg_len) {
                tracing::warn!(error = %e2, "spool: cannot cut a failed write back");
            }
            return Err(e);
        }
        self.unsynced = true;
        let n = self.sealed_len();
        let mut st = lock(&self.spool.shared.state);
        if let Some(l) = st.segments.get_mut(&seg_start) {
            *l = seg_len + n;
        }
        st.bytes += n;
        drop(st);
        let at = self.end;
        self.end += n;
        Ok(at)
    }

    /// The segment to append to (the last one, if it ends where the next
    /// chunk goes and has room; else a new one): (start, length).
    fn open_last(&mut self) -> std::io::Result<(u64, u64)> {
        let shared = self.spool.shared.clone();
        let last = {
            let st = lock(&shared.state);
            st.segments
                .iter()
                .next_back()
                .map(|(s, l)| (*s, *l))
                .filter(|(s, l)| s + l == self.end && *l < shared.cfg.segment_size)
        };
        match last {
            Some((s, l)) if self.seg.as_ref().map(|(x, _)| *x) == Some(s) => Ok((s, l)),
            Some((s, l)) => {
                let path = shared.cfg.dir.join(segment::file_name(s));
                match OpenOptions::new().append(true).open(&path) {
                    Ok(f) => {
                        self.sync_or_fail()?;
                        self.seg = Some((s, f));
                        Ok((s, l))
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        // Deleted behind our back: continue in a new one.
                        tracing::error!(segment = %path.display(), "spool: the segment being written was deleted; its chunks are lost");
                        {
                            let mut st = lock(&shared.state);
                            st.segments.remove(&s);
                            st.bytes = st.bytes.saturating_sub(l);
                        }
                        self.new_segment()?;
                        Ok((self.end, 0))
                    }
                    Err(e) => Err(e),
                }
            }
            None => {
                self.new_segment()?;
                Ok((self.end, 0))
            }
        }
    }

    /// Cuts every segment written since the last commit back to its length
    /// then (best effort: a restart's recovery cuts uncommitted chunks
    /// anyway), so the next chunk goes right after the committed ones.
    fn cut_back(&mut self) {
        let shared = self.spool.shared.clone();
        for (seg, len) in std::mem::take(&mut self.touched) {
            let path = shared.cfg.dir.join(segment::file_name(seg));
            if let Ok(f) = OpenOptions::new().write(true).open(path) {
                let _ = f.set_len(len);
            }
            let mut st = lock(&shared.state);
            let grown = st.segments.get(&seg).map_or(0, |l| l.saturating_sub(len));
            st.bytes = st.bytes.saturating_sub(grown);
            if let Some(l) = st.segments.get_mut(&seg) {
                *l = len;
            }
        }
        self.end = lock(&shared.state).end;
        self.seg = None;
        self.unsynced = false;
        self.written.clear();
    }

    /// An `fsync` failed: the bytes written since the last commit may not
    /// be on disk, and are not in memory any more. Nothing more is
    /// committed; the lines not committed are dropped unacknowledged (their
    /// positions stay where they are) and the agent is asked to stop.
    fn fail(&mut self, e: &std::io::Error) {
        tracing::error!(dir = %self.spool.dir().display(), error = %e,
            "spool: fsync failed, so what was written since the last commit may not be on disk; \
             stopping: the lines not committed are read again from the files after the restart");
        self.failed = true;
        self.abandon("an fsync failed");
        if let Some(f) = &self.on_failure {
            f();
        }
    }

    /// Gives up on the uncommitted entries, and on every entry after them
    /// (shutdown, or a failed `fsync`): their positions do not advance, so
    /// they are read again after the restart.
    fn abandon(&mut self, why: &str) {
        let n = self.acks_written.len() + self.acks_open.len();
        tracing::warn!(
            entries = n,
            "spool: {why}; these lines will be read again after the restart"
        );
        let l = labels(&[("reason", "spool_abandoned")]);
        self.spool
            .shared
            .metrics
            .file_errors_total
            .get_or_create(&l)
            .inc();
        // Dropped unsettled: their lines are poisoned, not acknowledged.
        self.acks_written = AckRuns::default();
        self.acks_open = AckRuns::default();
        self.failed = true;
        self.cut_back();
        self.builder = ChunkBuilder::new(Codec::Lz4);
        self.chunk.clear();
        self.open_bytes = 0;
        self.open_written = 0;
        self.open_since = None;
    }
}

#[cfg(test)]
mod tests {
    use super::{commit_threshold, due, ACK_BYTES};

    #[test]
    fn commits_grow_with_a_large_positions_file_up_to_four_times_the_base() {
        let base = 1 << 20;
        assert_eq!(commit_threshold(base, 0), base);
        assert_eq!(commit_threshold(base, 200 << 10), base); // 500 files
        assert_eq!(commit_threshold(base, 1500 << 10), 3000 << 10); // 5,000 files
        assert_eq!(commit_threshold(base, 8 << 20), 4 * base);
    }

    #[test]
    fn a_commit_is_due_at_its_threshold_or_when_small_lines_hold_half_the_budget() {
        let (t, b) = (1 << 20, Some(2 << 20));
        assert!(!due(0, 0, t, b));
        assert!(!due(t - 1, 1000, t, b));
        assert!(due(t, 1000, t, b));
        // 16,384 lines of 8 bytes: far below the threshold, but their acks
        // hold half the budget.
        let n = (1 << 20) / ACK_BYTES;
        assert!(!due(n * 8, n - 1, t, b));
        assert!(due(n * 8, n, t, b));
        // No budget (tests driving the writer): only the threshold.
        assert!(!due(n * 8, n * 4, t, None));
    }
}
