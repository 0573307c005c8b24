//! A lane's reader: one client's view of the spool for one tenant.
//!
//! Owns: [`LaneReader`]. It reads chunks from its cursor up to the committed
//! head (waiting for the writer to publish more), keeps the entries of its
//! tenant (the `__tenant_id__` label, else the client's `tenant_id`; `""` is
//! no tenant) and hands them out with acknowledgements issued by the lane's
//! [`Tracker`] over spool offsets: the last entry of the lane's in a chunk
//! carries the chunk's end, the others its start, so the lane's cursor moves
//! past a chunk only when all of its entries there were accepted (or
//! dropped and counted). A chunk without entries of this tenant moves the
//! cursor at once. The lane's lines of a chunk are copied end to end into
//! one [`Chunk`] their entries share (one allocation per chunk, not one
//! per line), and checked as UTF-8 there at once ([`share_lines`]); a
//! line that is not valid text refuses the chunk as a damaged one is.
//!
//! [`Chunk`]: crate::text::Chunk
//!
//! A tenant this reader meets that the client has no lane for gets one,
//! starting at that chunk (handed to the client through `new_lanes`): lanes
//! are created before any cursor can pass the chunk that needed them.
//!
//! Damage found while reading (a checksum that held at start-up and fails
//! now) is skipped to the next good chunk, logged and counted once.
//!
//! Must never: hand out an entry of another tenant, move the cursor past an
//! entry it handed out, or block the async runtime on disk reads (they run
//! on the blocking pool).

use super::chunk::{share_lines, ChunkError, Header, Payload};
use super::{lock, scan, segment, Spool};
use crate::ack::{Position, Tracker};
use crate::entry::Entry;
use crate::metrics::labels;
use crate::sink::prepare::TENANT_LABEL;
use std::collections::HashSet;
use std::fs::File;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

/// A lane discovered while reading: (tenant, start offset, tracker).
pub type NewLane = (String, u64, Arc<Tracker>);

/// One lane's reader. See the module docs.
pub struct LaneReader {
    spool: Spool,
    client: String,
    tenant: String,
    default_tenant: String,
    tracker: Arc<Tracker>,
    cursor: u64,
    head: watch::Receiver<u64>,
    stop: watch::Receiver<bool>,
    known: HashSet<String>,
    new_lanes: mpsc::UnboundedSender<NewLane>,
    file: Option<(u64, Arc<File>)>,
    /// The chunk being read, as it is on disk: checked and decoded from the
    /// same buffer, which is kept from chunk to chunk (up to [`KEEP`]).
    data: Vec<u8>,
    scratch: Vec<u8>,
    /// The label sets of the streams met in this lane's chunks: one set per
    /// stream, shared by its entries of every chunk.
    interner: crate::labels::Interner,
}

/// The largest read buffer a lane keeps between chunks (a chunk is
/// `chunk_size`, 256 KiB, and one entry more at most; a bigger one is a
/// single huge line, rare enough to allocate for).
const KEEP: usize = 1 << 20;

/// What one read at the cursor found.
enum Read {
    /// A chunk that checked out; its data is in `LaneReader::data`.
    Chunk(Header),
    /// Bytes to skip to (damage or a gap), and whether it is new damage.
    Skip(u64, bool),
    /// The cursor is past every segment (wait for more).
    Nothing,
}

impl LaneReader {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        spool: Spool,
        client: &str,
        tenant: &str,
        default_tenant: &str,
        start: u64,
        tracker: Arc<Tracker>,
        stop: watch::Receiver<bool>,
        new_lanes: mpsc::UnboundedSender<NewLane>,
    ) -> Self {
        let head = spool.shared.head.subscribe();
        let mut known = HashSet::new();
        known.insert(tenant.to_string());
        LaneReader {
            spool,
            client: client.to_string(),
            tenant: tenant.to_string(),
            default_tenant: default_tenant.to_string(),
            tracker,
            cursor: start,
            head,
            stop,
            known,
            new_lanes,
            file: None,
            data: Vec::new(),
            scratch: Vec::new(),
            interner: Default::default(),
        }
    }

    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// Resolves once the agent stops reading the spool (`next` returns
    /// `None` from then on).
    pub fn stopping(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut stop = self.stop.clone();
        async move {
            let _ = stop.wait_for(|s| *s).await;
        }
    }

    /// The next entries of this lane; `None` once the agent stops.
    /// Cancel-safe: dropped before it returns, nothing was consumed.
    pub async fn next(&mut self) -> Option<Vec<Entry>> {
        let mut idle_chunks = 0u32;
        loop {
            if *self.stop.borrow() {
                return None;
            }
            let head = *self.head.borrow_and_update();
            if self.cursor >= head {
                tokio::select! {
                    r = self.head.changed() => if r.is_err() { return None },
                    _ = self.stop.changed() => return None,
                }
                continue;
            }
            let read = match self.read_at_cursor().await {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(client = %self.client, tenant = %self.tenant, offset = self.cursor, error = %e,
                        "spool: cannot read; retrying");
                    self.file = None;
                    tokio::select! {
                        _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                        _ = self.stop.changed() => return None,
                    }
                    continue;
                }
            };
            match read {
                Read::Nothing => {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                Read::Skip(to, _) => {
                    self.tracker.skip_to(Position::Offset(to));
                    self.cursor = to;
                }
                Read::Chunk(h) => {
                    let start = self.cursor;
                    let end = start + h.total_len() as u64;
                    let data = std::mem::take(&mut self.data);
                    let decoded = self.entries_of(&h, &data, start, end);
                    if data.capacity() <= KEEP {
                        self.data = data;
                    }
                    let entries = match decoded {
                        Ok(v) => v,
                        Err(e) => {
                            // Checked out at the checksum but does not decode.
                            self.damaged(start, end, Some(h.entries), &e.to_string());
                            Vec::new()
                        }
                    };
                    self.cursor = end;
                    if entries.is_empty() {
                        self.tracker.skip_to(Position::Offset(end));
                        idle_chunks += 1;
                        if idle_chunks.is_multiple_of(64) {
                            tokio::task::yield_now().await;
                        }
                        continue;
                    }
                    return Some(entries);
                }
            }
        }
    }

    /// Reads the chunk at the cursor on the blocking pool.
    async fn read_at_cursor(&mut self) -> std::io::Result<Read> {
        let off = self.cursor;
        let (skip, seg) = {
            let st = lock(&self.spool.shared.state);
            let skip = st
                .damaged
                .range(..=off)
                .next_back()
                .filter(|(_, e)| **e > off)
                .map(|(_, e)| *e);
            let seg = st
                .segments
                .range(..=off)
                .next_back()
                .map(|(s, l)| (*s, *l))
                .filter(|(s, l)| off < s + l);
            let next = st.segments.range(off + 1..).next().map(|(s, _)| *s);
            (skip, seg.ok_or(next))
        };
        if let Some(to) = skip {
            return Ok(Read::Skip(to, false));
        }
        let (seg_start, seg_len) = match seg {
            Ok(x) => x,
            Err(Some(next)) => return Ok(Read::Skip(next, true)),
            Err(None) => return Ok(Read::Nothing),
        };
        let file = match &self.file {
            Some((s, f)) if *s == seg_start => f.clone(),
            _ => {
                let path = self.spool.dir().join(segment::file_name(seg_start));
                let f = Arc::new(File::open(path)?);
                self.file = Some((seg_start, f.clone()));
                f
            }
        };
        let local = off - seg_start;
        // The buffer travels to the blocking pool and back: its threads
        // allocate nothing, and the data is read once (the checksum is
        // checked on the bytes that are then decoded).
        let mut buf = std::mem::take(&mut self.data);
        let (r, buf) = tokio::task::spawn_blocking(move || -> std::io::Result<(Read, Vec<u8>)> {
            let r = match scan::check_at(&file, local, seg_len, &mut buf)? {
                Ok(h) => Read::Chunk(h),
                Err(_) => Read::Skip(
                    seg_start + scan::next_good(&file, local + 1, seg_len, &mut buf)?,
                    true,
                ),
            };
            Ok((r, buf))
        })
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))??;
        self.data = buf;
        if let Read::Skip(to, true) = r {
            self.damaged(
                off,
                to,
                None,
                "checksum mismatch or missing data found while reading",
            );
        }
        Ok(r)
    }

    /// Records and counts damage found at run time (once for all lanes).
    fn damaged(&self, start: u64, end: u64, entries: Option<u32>, why: &str) {
        let new = lock(&self.spool.shared.state)
            .damaged
            .insert(start, end)
            .is_none();
        if new {
            tracing::error!(offset = start, bytes = end - start, entries = ?entries, why,
                "spool: damaged data skipped; the lines in it are lost");
            let l = labels(&[("reason", "spool_damaged")]);
            let m = &self.spool.shared.metrics;
            m.lost_bytes_total.get_or_create(&l).inc_by(end - start);
            m.lost_files_total.get_or_create(&l).inc();
        }
    }

    /// This lane's entries of a chunk, with acknowledgements; registers
    /// lanes for tenants the client has none for.
    fn entries_of(
        &mut self,
        h: &Header,
        data: &[u8],
        start: u64,
        end: u64,
    ) -> Result<Vec<Entry>, ChunkError> {
        let mut scratch = std::mem::take(&mut self.scratch);
        let res = self.decode(h, data, &mut scratch, start, end);
        self.scratch = scratch;
        res
    }

    fn decode(
        &mut self,
        h: &Header,
        data: &[u8],
        scratch: &mut Vec<u8>,
        start: u64,
        end: u64,
    ) -> Result<Vec<Entry>, ChunkError> {
        let mut p = Payload::open_interned(h, data, scratch, Some(&mut self.interner))?;
        let mut mine = Vec::with_capacity(p.labels().len());
        for ls in p.labels() {
            let t = match ls.get(TENANT_LABEL) {
                Some(t) if !t.is_empty() => t,
                _ => self.default_tenant.as_str(),
            };
            if t == self.tenant {
                mine.push(true);
                continue;
            }
            mine.push(false);
            if !self.known.contains(t) {
                self.known.insert(t.to_string());
                if let Some(tr) = self.spool.register_lane(&self.client, t, start) {
                    tracing::info!(client = %self.client, tenant = t, "spool: new tenant; starting its lane");
                    let _ = self.new_lanes.send((t.to_string(), start, tr));
                }
            }
        }
        let labels = p.labels().to_vec();
        // Every entry takes 4 bytes at least: a damaged count reserves no
        // more than the payload could hold.
        let mut picked = Vec::with_capacity((h.entries as usize).min(h.raw_len as usize / 4));
        let mut text_len = 0;
        while let Some(e) = p.next_entry_bytes() {
            let e = e?;
            if mine[e.label] {
                text_len += e.line.len();
                picked.push(e);
            }
        }
        // This lane's lines end to end in one allocation they all share,
        // checked as UTF-8 at once.
        let mut lines = share_lines(picked.iter().map(|e| e.line), text_len)?;
        let mut raw = Vec::with_capacity(picked.len());
        for e in &picked {
            raw.push(e.to_entry_with(&labels[e.label], lines.next(e.line.len())?));
        }
        let n = raw.len();
        if n > 0 {
            self.tracker.issuing(|is| {
                for (i, e) in raw.iter_mut().enumerate() {
                    let at = if i + 1 == n { end } else { start };
                    e.ack = is.issue(Position::Offset(at));
                }
            });
        }
        Ok(raw)
    }
}
