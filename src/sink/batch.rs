//! Batches: entries grouped by tenant, then by stream, waiting to be pushed.
//!
//! Owns: [`StreamKey`] (the public label set of a stream and its rendered
//! selector, computed once per stream), [`Batch`] (one tenant's entries,
//! grouped by stream in first-seen order, each stream keeping arrival order),
//! and [`Batcher`] (one open batch per tenant and Promtail's two send rules:
//! a batch goes when adding an entry would take it over `batchsize` bytes,
//! or when its oldest entry has waited `batchwait`; and `Sizes`, the room
//! a stream that filled the last batch gets at once in the next).
//!
//! Pure logic: no I/O, no clock of its own (callers pass `now`), so it is
//! tested without a runtime.
//!
//! Must never: reorder entries of one stream, or hold an entry outside a
//! batch (every entry handed in comes back out in a [`Batch`]).

use crate::entry::Entry;
use crate::labels::LabelSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A stream's identity as sent: its public labels — the client's
/// `external_labels`, overridden by the entry's own labels of the same
/// name — without a merged set of its own (at 5,000 streams that set was
/// ~2.8 MB; heaptrack), nor its rendered selector (~2.4 MB at 10,000
/// streams): a push renders each of its streams into the body as it
/// encodes it. Two keys are the same stream when they render the same,
/// whatever `__` labels their entries carried.
#[derive(Clone, Debug)]
pub struct StreamKey {
    /// The entry's labels as the pipeline left them (`__` names included).
    source: LabelSet,
    /// The client's external labels: public, sorted by name, unique; shared
    /// by all its streams.
    external: Arc<[(String, String)]>,
    /// Bytes of the rendered selector (a push sends its length first).
    len: usize,
    /// The hash of the rendered selector, computed once: a batch groups by
    /// it.
    hash: u64,
}

impl StreamKey {
    /// The stream of `labels` alone (no external labels).
    pub fn new(labels: LabelSet) -> Self {
        Self::with_external(labels, Arc::from([]))
    }

    /// The stream of `source` merged with `external` (public pairs sorted by
    /// name, names unique: see [`external_pairs`]).
    pub fn with_external(source: LabelSet, external: Arc<[(String, String)]>) -> Self {
        let mut k = StreamKey {
            source,
            external,
            len: 0,
            hash: 0,
        };
        let rendered = k.render();
        k.len = rendered.len();
        k.hash = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            rendered.hash(&mut h);
            h.finish()
        };
        k
    }

    /// The public labels rendered as a Prometheus selector, `{a="b"}`.
    pub fn render(&self) -> String {
        let mut s = String::new();
        self.render_into(&mut s);
        s
    }

    /// [`Self::render`], appended to `out`.
    pub fn render_into(&self, out: &mut String) {
        out.reserve(self.len);
        crate::labels::render_pairs_into(self.public(), out);
    }

    /// The length of [`Self::render`]'s text, known without rendering.
    pub fn rendered_len(&self) -> usize {
        self.len
    }

    /// The pairs sent, sorted by name: the entry's public labels, and the
    /// external labels it does not override.
    pub fn public(&self) -> impl Iterator<Item = (&str, &str)> {
        let mut own = self.source.public().peekable();
        let mut ext = self
            .external
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .peekable();
        std::iter::from_fn(move || match (own.peek(), ext.peek()) {
            (Some(o), Some(e)) => match o.0.cmp(e.0) {
                std::cmp::Ordering::Less => own.next(),
                std::cmp::Ordering::Greater => ext.next(),
                std::cmp::Ordering::Equal => {
                    ext.next();
                    own.next()
                }
            },
            (Some(_), None) => own.next(),
            (None, _) => ext.next(),
        })
    }

    /// The entry's labels the key was made from (tests).
    #[cfg(test)]
    pub fn source(&self) -> &LabelSet {
        &self.source
    }

    /// True if the key was made from `labels` (the same set, or an equal
    /// one).
    pub fn is_of(&self, labels: &LabelSet) -> bool {
        self.source == *labels
    }

    /// The value sent for label `name`, if any.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.public().find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    /// No label would be sent (Loki refuses such a stream).
    pub fn is_empty(&self) -> bool {
        self.public().next().is_none()
    }
}

impl PartialEq for StreamKey {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash
            && self.len == other.len
            && ((self.source == other.source && Arc::ptr_eq(&self.external, &other.external))
                || self.public().eq(other.public()))
    }
}

impl Eq for StreamKey {}

impl std::hash::Hash for StreamKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// `external_labels` as [`StreamKey::with_external`] takes them: public
/// pairs (no `__` name, no empty value), sorted by name, the last of a name
/// kept.
pub fn external_pairs<'a>(
    pairs: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> Arc<[(String, String)]> {
    let set = LabelSet::new(pairs.into_iter().map(|(k, v)| (k.as_str(), v.as_str())));
    set.public()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// One stream's entries within a batch, in arrival order.
#[derive(Debug)]
pub struct Stream {
    pub key: StreamKey,
    pub entries: Vec<Entry>,
    /// Bytes its entries take in the push protobuf, kept as they are
    /// added: the encoder writes each stream's length before its entries,
    /// and a pass over a batch's entries to sum them cost ~2 % of a
    /// one-file drain (each entry a cache miss by then).
    wire: usize,
}

impl Stream {
    /// Bytes of [`Self::entries`] in the push protobuf (see
    /// [`super::proto::entry_wire_len`]).
    pub fn wire_len(&self) -> usize {
        self.wire
    }
}

/// One tenant's entries waiting to be pushed in one request.
#[derive(Debug)]
pub struct Batch {
    tenant: Option<Arc<str>>,
    streams: Vec<Stream>,
    /// Stream index by key (its rendered labels, hashed once).
    index: std::collections::HashMap<
        StreamKey,
        usize,
        std::hash::BuildHasherDefault<crate::labels::PassThrough>,
    >,
    bytes: usize,
    entries: usize,
    created: Instant,
    /// The stream added to last (lines come in runs of one stream: a
    /// comparison of keys is cheaper than a lookup).
    last: usize,
}

impl Batch {
    pub fn new(tenant: Option<Arc<str>>, now: Instant) -> Self {
        Batch {
            tenant,
            streams: Vec::new(),
            index: Default::default(),
            bytes: 0,
            entries: 0,
            created: now,
            last: 0,
        }
    }

    /// Appends `entry` to the stream `key`.
    pub fn add(&mut self, key: &StreamKey, entry: Entry) {
        self.add_sized(key, entry, &Sizes::default())
    }

    /// [`Self::add`], with room for the stream's entries as many as it had
    /// in the last batch (`sizes`) when it is new to this batch.
    fn add_sized(&mut self, key: &StreamKey, mut entry: Entry, sizes: &Sizes) {
        // Held until Loki answers: not pinning a read chunk it barely uses.
        entry.line.compact();
        self.bytes += entry.size();
        self.entries += 1;
        let i = match self.streams.get(self.last) {
            Some(s) if s.key == *key => self.last,
            _ => self.stream_of(key, sizes),
        };
        self.last = i;
        let s = &mut self.streams[i];
        s.wire += super::proto::entry_wire_len(&entry);
        s.entries.push(entry);
    }

    /// The index of stream `key`, added if it is new.
    fn stream_of(&mut self, key: &StreamKey, sizes: &Sizes) -> usize {
        match self.index.get(key) {
            Some(&i) => i,
            None => {
                // Room for one entry, not Vec's first four: at a steady
                // rate over 5,000 files most streams have one or two lines
                // in a batch, and four entries are 512 bytes a stream. A
                // stream that filled the last batch gets room for as many
                // as it had then (see `Sizes`).
                self.streams.push(Stream {
                    key: key.clone(),
                    entries: Vec::with_capacity(sizes.get(key)),
                    wire: 0,
                });
                self.index.insert(key.clone(), self.streams.len() - 1);
                self.streams.len() - 1
            }
        }
    }

    pub fn tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
    }

    pub fn streams(&self) -> &[Stream] {
        &self.streams
    }

    /// Sum of [`Entry::size`] over the batch (Promtail's batch size).
    pub fn size_bytes(&self) -> usize {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// When the batch's first entry arrived.
    pub fn created(&self) -> Instant {
        self.created
    }

    /// Every entry, stream by stream.
    pub fn into_entries(self) -> impl Iterator<Item = Entry> {
        self.streams.into_iter().flat_map(|s| s.entries)
    }

    /// Entries carrying structured metadata.
    pub fn with_metadata(&self) -> usize {
        self.streams
            .iter()
            .map(|s| s.entries.iter().filter(|e| !e.metadata.is_empty()).count())
            .sum()
    }

    /// Removes every entry's structured metadata (the tenant's Loki refuses
    /// it). Returns (entries that had some, bytes removed).
    pub fn strip_metadata(&mut self) -> (usize, usize) {
        let (mut n, mut removed) = (0, 0);
        for s in &mut self.streams {
            for e in &mut s.entries {
                if !e.metadata.is_empty() {
                    n += 1;
                    removed += e
                        .metadata
                        .iter()
                        .map(|(k, v)| k.len() + v.len())
                        .sum::<usize>();
                    s.wire -= super::proto::entry_wire_len(e);
                    e.metadata = Vec::new();
                    s.wire += super::proto::entry_wire_len(e);
                }
            }
        }
        self.bytes -= removed;
        (n, removed)
    }

    /// Moves the entries that carry structured metadata into a new batch of
    /// the same tenant (streams and order kept); `self` keeps the others.
    pub fn split_off_metadata(&mut self) -> Batch {
        let mut out = Batch::new(self.tenant.clone(), self.created);
        let mut kept = Batch::new(self.tenant.clone(), self.created);
        for s in std::mem::take(&mut self.streams) {
            for e in s.entries {
                if e.metadata.is_empty() {
                    kept.add(&s.key, e);
                } else {
                    out.add(&s.key, e);
                }
            }
        }
        *self = kept;
        out
    }

    /// Settles every entry: Loki accepted the batch, or it was dropped and
    /// counted.
    pub fn ack_all(self) {
        crate::ack::ack_many(self.into_entries().map(|e| e.ack));
    }
}

/// How many entries the streams that had many had in the last batch that
/// held them: a new batch gives such a stream that much room at once.
///
/// Why: a stream's entries grow one `Vec` per batch. In a drain one stream
/// fills the batch (~4,000 entries of ~128 bytes in 1 MiB), and growing its
/// `Vec` by doubling copied ~1 MB per batch — as many bytes again as the
/// lines themselves (`realloc` was ~3 % of a one-file drain's instructions
/// under `callgrind`). Streams with few entries (most of them at a steady
/// rate over many files) are not remembered: they grow cheaply, and the
/// table stays small.
#[derive(Default)]
struct Sizes {
    by_key: std::collections::HashMap<
        u64,
        usize,
        std::hash::BuildHasherDefault<crate::labels::PassThrough>,
    >,
}

impl Sizes {
    /// Streams with fewer entries than this in a batch are not remembered.
    const MIN: usize = 64;
    /// Streams remembered before the table is cleared.
    const CAP: usize = 4096;
    /// A stream that had at least this many entries (128 KiB of them)
    /// gets `1/HEADROOM` more room than it had.
    const BIG: usize = 1024;
    const HEADROOM: usize = 8;

    /// The room to give stream `key` in a new batch (at least 1): what it
    /// had, and an eighth more if that was at least [`Self::BIG`]. Lines
    /// vary in length, so the next batch often holds a few more entries
    /// than the last: without the eighth, the `Vec` of a stream that fills
    /// most of a batch doubled in most batches (a ~0.5 MB `realloc` and
    /// copy, and ~1/5 of a one-file drain's page faults). Smaller streams
    /// get no more than they had: at 5,000 files with the spool, an eighth
    /// more for every remembered stream looked like ~1.5 MiB more peak RSS
    /// in `release` builds (maybe their code layout; not risked next to
    /// the 40 MiB target).
    fn get(&self, key: &StreamKey) -> usize {
        self.by_key.get(&key.hash).map_or(1, |&n| {
            if n >= Self::BIG {
                n + n / Self::HEADROOM
            } else {
                n
            }
        })
    }

    /// Remembers the streams of a batch that is closed: those with many
    /// entries, and forgets those that had many before and now have few.
    fn remember(&mut self, b: &Batch) {
        for s in &b.streams {
            let n = s.entries.len();
            if n >= Self::MIN {
                if self.by_key.len() >= Self::CAP {
                    self.by_key.clear();
                }
                self.by_key.insert(s.key.hash, n);
            } else if !self.by_key.is_empty() {
                self.by_key.remove(&s.key.hash);
            }
        }
    }
}

/// One open batch per tenant, and the rules that close them.
pub struct Batcher {
    batchsize: usize,
    batchwait: Duration,
    /// Open batches, one per tenant (tenants are few: a scan that compares
    /// pointers first beats hashing the tenant's name per line).
    open: Vec<Batch>,
    sizes: Sizes,
}

fn same_tenant(a: &Option<Arc<str>>, b: &Option<Arc<str>>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(x), Some(y)) => Arc::ptr_eq(x, y) || x == y,
        _ => false,
    }
}

impl Batcher {
    pub fn new(batchsize: usize, batchwait: Duration) -> Self {
        Batcher {
            batchsize,
            batchwait,
            open: Vec::new(),
            sizes: Sizes::default(),
        }
    }

    /// Adds an entry to its tenant's batch. When the entry would take that
    /// batch over `batchsize`, the batch is closed and returned, and the
    /// entry starts a new one (an entry bigger than `batchsize` goes alone).
    pub fn add(
        &mut self,
        tenant: &Option<Arc<str>>,
        key: &StreamKey,
        entry: Entry,
        now: Instant,
    ) -> Option<Batch> {
        let size = entry.size();
        let mut full = None;
        if let Some(b) = self
            .open
            .iter_mut()
            .find(|b| same_tenant(&b.tenant, tenant))
        {
            if !b.is_empty() && b.size_bytes() + size > self.batchsize {
                let closed = std::mem::replace(b, Batch::new(tenant.clone(), now));
                self.sizes.remember(&closed);
                full = Some(closed);
            }
            b.add_sized(key, entry, &self.sizes);
        } else {
            let mut b = Batch::new(tenant.clone(), now);
            b.add_sized(key, entry, &self.sizes);
            self.open.push(b);
        }
        full
    }

    /// When the oldest open batch is due, if any is open.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.open.iter().map(|b| b.created() + self.batchwait).min()
    }

    /// Closes and returns every batch whose oldest entry waited `batchwait`.
    pub fn expired(&mut self, now: Instant) -> Vec<Batch> {
        let wait = self.batchwait;
        let (mut out, keep): (Vec<Batch>, Vec<Batch>) = std::mem::take(&mut self.open)
            .into_iter()
            .partition(|b| now.saturating_duration_since(b.created()) >= wait);
        self.open = keep;
        out.sort_by_key(|b| b.created());
        for b in &out {
            self.sizes.remember(b);
        }
        out
    }

    /// Closes and returns every open batch, oldest first (shutdown).
    pub fn drain(&mut self) -> Vec<Batch> {
        let mut out = std::mem::take(&mut self.open);
        out.sort_by_key(|b| b.created());
        out
    }

    /// Entries held in open batches.
    pub fn pending(&self) -> usize {
        self.open.iter().map(|b| b.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ack::Ack;
    use crate::entry::Timestamp;

    fn entry(line: &str) -> Entry {
        Entry::new(
            LabelSet::empty(),
            Timestamp(1),
            line.to_string().into(),
            Ack::none(),
        )
    }

    #[test]
    fn a_batch_does_not_hold_a_read_chunk_for_a_line_it_barely_uses() {
        let read = "0123456789abcdef\n".repeat(100);
        let chunk = crate::text::Chunk::new(read.as_bytes());
        let lines: Vec<_> = (0..100)
            .map(|i| chunk.line(i * 17, i * 17 + 16).unwrap())
            .collect();
        drop(chunk);
        let mut b = Batch::new(None, Instant::now());
        for line in lines {
            let mut e = entry("");
            e.line = line;
            b.add(&key("a"), e);
        }
        let held = &b.streams()[0].entries;
        assert!(held.iter().all(|e| e.line.is_shared()), "a chunk in use");
        // A stage kept one line in a hundred.
        let mut lone = Batch::new(None, Instant::now());
        let mut e = entry("");
        e.line = b.into_entries().nth(50).unwrap().line;
        lone.add(&key("a"), e);
        let line = &lone.streams()[0].entries[0].line;
        assert!(!line.is_shared(), "16 bytes of 1,700: copied out");
        assert_eq!(line, "0123456789abcdef");
    }

    fn key(app: &str) -> StreamKey {
        StreamKey::new(LabelSet::new([("app", app), ("__path__", "/x")]))
    }

    fn lines(b: &Batch) -> Vec<(String, Vec<String>)> {
        b.streams()
            .iter()
            .map(|s| {
                (
                    s.key.render(),
                    s.entries.iter().map(|e| e.line.to_string()).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn stream_key_keeps_public_labels_only() {
        let k = key("a");
        assert_eq!(k.render(), "{app=\"a\"}");
        assert_eq!(k.public().collect::<Vec<_>>(), [("app", "a")]);
        let k2 = StreamKey::new(LabelSet::new([("app", "a")]));
        assert_eq!(k, k2, "the same stream, whatever `__` labels it had");
    }

    #[test]
    fn external_labels_fill_in_and_the_entry_overrides_them() {
        let ext: std::collections::BTreeMap<String, String> = [
            ("cluster", "c1"),
            ("app", "from-external"),
            ("__hidden", "x"),
            ("empty", ""),
            ("zone", "z"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let ext = external_pairs(&ext);
        let own = LabelSet::new([("app", "a"), ("__path__", "/x"), ("blank", ""), ("b", "1")]);
        let k = StreamKey::with_external(own.clone(), ext.clone());
        let want = [("app", "a"), ("b", "1"), ("cluster", "c1"), ("zone", "z")];
        assert_eq!(k.public().collect::<Vec<_>>(), want);
        assert_eq!(k.render(), &*LabelSet::new(want).render());
        assert_eq!(k.rendered_len(), k.render().len());
        assert_eq!(k.get("cluster"), Some("c1"));
        assert_eq!(k.get("app"), Some("a"));
        assert_eq!(k.get("__path__"), None);
        // Only external labels: still a stream; nothing at all: empty.
        let bare = StreamKey::with_external(LabelSet::new([("__path__", "/x")]), ext);
        assert_eq!(bare.public().count(), 3);
        assert!(StreamKey::new(LabelSet::new([("__path__", "/x")])).is_empty());
    }

    #[test]
    fn groups_by_stream_keeping_order() {
        let now = Instant::now();
        let mut b = Batcher::new(1000, Duration::from_secs(1));
        // Runs of one stream and single lines, one key shared by a run
        // (as the router hands it out) or made anew.
        let (ka, kb) = (key("a"), key("b"));
        let input = [
            (&ka, "1"),
            (&ka, "2"),
            (&kb, "3"),
            (&key("a"), "4"),
            (&kb, "5"),
            (&key("b"), "6"),
            (&ka, "7"),
        ];
        for (k, l) in input {
            assert!(b.add(&None, k, entry(l), now).is_none());
        }
        let out = b.drain();
        assert_eq!(out.len(), 1);
        assert_eq!(
            lines(&out[0]),
            vec![
                (
                    "{app=\"a\"}".to_string(),
                    vec!["1".into(), "2".into(), "4".into(), "7".into()]
                ),
                (
                    "{app=\"b\"}".to_string(),
                    vec!["3".into(), "5".into(), "6".into()]
                ),
            ]
        );
        assert_eq!(out[0].size_bytes(), 7);
        assert_eq!(out[0].len(), 7);
    }

    #[test]
    fn a_stream_that_filled_a_batch_gets_room_for_as_many_in_the_next() {
        let now = Instant::now();
        let mut b = Batcher::new(1000, Duration::from_secs(1));
        let (ka, kb) = (key("a"), key("b"));
        let mut closed = Vec::new();
        // 100 entries of "a" (10 bytes each) fill a batch; "b" has one.
        for i in 0..100 {
            closed.extend(b.add(&None, &ka, entry("0123456789"), now));
            if i == 50 {
                closed.extend(b.add(&None, &kb, entry("x"), now));
            }
        }
        closed.extend(b.add(&None, &ka, entry("0123456789"), now));
        closed.extend(b.add(&None, &kb, entry("x"), now));
        assert_eq!(closed.len(), 1);
        let had = closed[0].streams()[0].entries.len();
        assert!(had >= Sizes::MIN, "{had}");
        let open = b.drain();
        let room = |k: &StreamKey| {
            let s = open[0].streams().iter().find(|s| s.key == *k).unwrap();
            s.entries.capacity()
        };
        assert!(had < Sizes::BIG, "the test's stream must stay below BIG");
        assert!(room(&ka) >= had, "room for {} of {had}", room(&ka));
        assert!(room(&kb) < Sizes::MIN, "a small stream is not remembered");
        // A batch where "a" has few entries makes it forgotten.
        let mut sizes = Sizes::default();
        sizes.remember(&closed[0]);
        assert_eq!(sizes.get(&ka), had);
        sizes.remember(&open[0]);
        assert_eq!(sizes.get(&ka), 1);
        for batch in closed.into_iter().chain(open) {
            batch.ack_all();
        }
    }

    #[test]
    fn only_a_stream_that_filled_most_of_a_batch_gets_more_room_than_it_had() {
        let now = Instant::now();
        let (big, small) = (key("big"), key("small"));
        let mut b = Batch::new(None, now);
        for _ in 0..Sizes::BIG {
            b.add(&big, entry("x"));
        }
        for _ in 0..Sizes::MIN {
            b.add(&small, entry("x"));
        }
        let mut sizes = Sizes::default();
        sizes.remember(&b);
        let n = Sizes::BIG;
        assert_eq!(sizes.get(&big), n + n / Sizes::HEADROOM);
        assert_eq!(sizes.get(&small), Sizes::MIN);
        b.ack_all();
    }

    #[test]
    fn closes_a_batch_when_the_next_entry_would_exceed_batchsize() {
        let now = Instant::now();
        let mut b = Batcher::new(10, Duration::from_secs(1));
        assert!(b.add(&None, &key("a"), entry("12345"), now).is_none());
        assert!(b.add(&None, &key("a"), entry("12345"), now).is_none()); // exactly 10
        let full = b.add(&None, &key("a"), entry("x"), now).unwrap();
        assert_eq!(full.size_bytes(), 10);
        assert_eq!(b.pending(), 1);
        // An entry bigger than batchsize travels alone.
        let full = b
            .add(&None, &key("a"), entry(&"y".repeat(50)), now)
            .unwrap();
        assert_eq!(full.len(), 1);
        let full = b.add(&None, &key("a"), entry("z"), now).unwrap();
        assert_eq!(full.size_bytes(), 50);
    }

    #[test]
    fn one_batch_per_tenant() {
        let now = Instant::now();
        let mut b = Batcher::new(6, Duration::from_secs(1));
        let t1: Option<Arc<str>> = Some("t1".into());
        assert!(b.add(&t1, &key("a"), entry("1234"), now).is_none());
        assert!(b.add(&None, &key("a"), entry("1234"), now).is_none());
        let full = b.add(&t1, &key("a"), entry("1234"), now).unwrap();
        assert_eq!(full.tenant(), Some("t1"));
        assert_eq!(b.pending(), 2);
        let rest = b.drain();
        assert_eq!(rest.len(), 2);
    }

    #[test]
    fn expires_by_age_of_the_oldest_entry() {
        let t0 = Instant::now();
        let wait = Duration::from_millis(100);
        let mut b = Batcher::new(1000, wait);
        assert_eq!(b.next_deadline(), None);
        b.add(&None, &key("a"), entry("1"), t0);
        let t1: Option<Arc<str>> = Some("t1".into());
        b.add(&t1, &key("a"), entry("2"), t0 + Duration::from_millis(50));
        // A later entry does not push the deadline back.
        b.add(&None, &key("a"), entry("3"), t0 + Duration::from_millis(90));
        assert_eq!(b.next_deadline(), Some(t0 + wait));
        assert!(b.expired(t0 + Duration::from_millis(99)).is_empty());
        let out = b.expired(t0 + wait);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].len(), 2);
        assert_eq!(out[0].tenant(), None);
        assert_eq!(b.next_deadline(), Some(t0 + Duration::from_millis(150)));
        let out = b.expired(t0 + Duration::from_secs(10));
        assert_eq!(out[0].tenant(), Some("t1"));
        assert_eq!(b.pending(), 0);
    }

    #[test]
    fn metadata_entries_split_off_in_order_and_strip_keeps_the_size_right() {
        let md = |line: &str| {
            let mut e = entry(line);
            e.metadata = vec![("trace_id".into(), "ab".into())];
            e
        };
        let mut b = Batch::new(Some("t".into()), Instant::now());
        b.add(&key("a"), md("a1"));
        b.add(&key("a"), entry("a2"));
        b.add(&key("b"), entry("b1"));
        b.add(&key("a"), md("a3"));
        assert_eq!(b.with_metadata(), 2);
        let mut m = b.split_off_metadata();
        assert_eq!(
            lines(&b),
            [
                ("{app=\"a\"}".to_string(), vec!["a2".to_string()]),
                ("{app=\"b\"}".to_string(), vec!["b1".to_string()])
            ]
        );
        assert_eq!((b.len(), b.size_bytes()), (2, 4));
        assert_eq!(
            lines(&m),
            [(
                "{app=\"a\"}".to_string(),
                vec!["a1".to_string(), "a3".to_string()]
            )]
        );
        assert_eq!(
            (m.len(), m.size_bytes(), m.tenant()),
            (2, 4 + 2 * 10, Some("t"))
        );
        assert_eq!(m.strip_metadata(), (2, 20));
        assert_eq!((m.with_metadata(), m.size_bytes()), (0, 4));
    }
}
