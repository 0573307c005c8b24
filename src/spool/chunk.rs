//! The spool's unit of storage: a checksummed, compressed chunk of entries.
//!
//! Owns: the chunk format — [`Header`] (encode/decode and every check on it),
//! [`ChunkBuilder`] (entries → one sealed chunk) and [`Payload`] (one chunk's
//! bytes → entries, label sets first so a reader can skip entries it does not
//! want without decoding them).
//!
//! Layout (all integers big-endian), after Loki's chunk format
//! (`pkg/chunkenc`): a fixed header, then the stored payload.
//!
//! ```text
//!  0  magic       u32  0x54545343 ("TTSC")
//!  4  version     u8   1
//!  5  codec       u8   0 = none, 1 = lz4 block
//!  6  flags       u16  0
//!  8  entries     u32  number of entries
//! 12  raw_len     u32  payload length before compression
//! 16  data_len    u32  stored payload length
//! 20  written     i64  when the chunk was sealed (Unix ns)
//! 28  data_crc    u32  CRC-32 of the stored payload
//! 32  reserved    u32  0
//! 36  header_crc  u32  CRC-32 of bytes 0..36
//! 40  payload     data_len bytes
//! ```
//!
//! The payload (before compression) is a label table — `uvarint n`, then per
//! set `uvarint pairs` and per pair two strings — then `entries` entries:
//! `uvarint label index`, `varint` (zigzag) timestamp delta from the previous
//! entry, the line, `uvarint` structured-metadata pairs and their strings. A
//! string is `uvarint len` + UTF-8 bytes.
//!
//! The header checksum lets a reader trust `data_len` (and so find the next
//! chunk) before reading the payload; the payload checksum catches a torn or
//! damaged body. A damaged header is found again by scanning for the magic
//! (see `scan.rs`).
//!
//! Must never: panic or allocate without bound on any input (every length
//! and count is checked against the bytes actually there), or hand out a
//! line that is not valid UTF-8.

use crate::entry::{Entry, Timestamp};
use crate::labels::LabelSet;
use crate::text::Text;
use crate::wire::{append_head, put_varint};

/// `"TTSC"`: tailtrace spool chunk.
pub const MAGIC: u32 = 0x5454_5343;
pub const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 40;
/// Largest payload accepted (an entry may be 8 MiB; a chunk holds whole
/// entries).
pub const MAX_RAW: usize = 64 << 20;

/// Most bytes one stored byte of an LZ4 block can decode to (rounded up).
const LZ4_MAX_RATIO: usize = 256;

/// How a payload is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    None = 0,
    Lz4 = 1,
}

/// A chunk's header. See the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub codec: Codec,
    pub entries: u32,
    pub raw_len: u32,
    pub data_len: u32,
    /// When the chunk was sealed, Unix ns.
    pub written: i64,
    pub data_crc: u32,
}

/// Why bytes are not a good chunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChunkError {
    /// Fewer bytes than the header or payload needs (a torn write, or EOF).
    Short,
    /// Not a chunk header (magic, version, codec, flags or lengths wrong, or
    /// the header checksum fails).
    BadHeader(&'static str),
    /// The payload's checksum fails.
    BadData,
    /// The payload checks out but does not decode (a bug or a foreign file).
    Payload(&'static str),
}

impl std::fmt::Display for ChunkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChunkError::Short => f.write_str("chunk cut short"),
            ChunkError::BadHeader(w) => write!(f, "bad chunk header: {w}"),
            ChunkError::BadData => f.write_str("chunk payload checksum mismatch"),
            ChunkError::Payload(w) => write!(f, "undecodable chunk payload: {w}"),
        }
    }
}

impl Header {
    /// Bytes of the whole chunk (header and payload).
    pub fn total_len(&self) -> usize {
        HEADER_LEN + self.data_len as usize
    }

    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&MAGIC.to_be_bytes());
        b[4] = VERSION;
        b[5] = self.codec as u8;
        b[8..12].copy_from_slice(&self.entries.to_be_bytes());
        b[12..16].copy_from_slice(&self.raw_len.to_be_bytes());
        b[16..20].copy_from_slice(&self.data_len.to_be_bytes());
        b[20..28].copy_from_slice(&self.written.to_be_bytes());
        b[28..32].copy_from_slice(&self.data_crc.to_be_bytes());
        let crc = crc32fast::hash(&b[..36]);
        b[36..40].copy_from_slice(&crc.to_be_bytes());
        b
    }

    /// Decodes and checks a header from the first [`HEADER_LEN`] bytes.
    pub fn decode(b: &[u8]) -> Result<Header, ChunkError> {
        if b.len() < HEADER_LEN {
            return Err(ChunkError::Short);
        }
        let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        if u32_at(0) != MAGIC {
            return Err(ChunkError::BadHeader("magic"));
        }
        if crc32fast::hash(&b[..36]) != u32_at(36) {
            return Err(ChunkError::BadHeader("header checksum"));
        }
        if b[4] != VERSION {
            return Err(ChunkError::BadHeader("unknown version"));
        }
        let codec = match b[5] {
            0 => Codec::None,
            1 => Codec::Lz4,
            _ => return Err(ChunkError::BadHeader("unknown codec")),
        };
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[20..28]);
        let h = Header {
            codec,
            entries: u32_at(8),
            raw_len: u32_at(12),
            data_len: u32_at(16),
            written: i64::from_be_bytes(w),
            data_crc: u32_at(28),
        };
        let raw = h.raw_len as usize;
        let max_data = match codec {
            Codec::None => raw,
            Codec::Lz4 => lz4_flex::block::get_maximum_output_size(raw),
        };
        // LZ4 expands at most ~255× (a match grows by 255 per length
        // byte): a header claiming more is damaged or crafted, and would
        // have the reader reserve up to MAX_RAW for a few stored bytes.
        let max_raw = match codec {
            Codec::None => raw,
            Codec::Lz4 => (h.data_len as usize).saturating_mul(LZ4_MAX_RATIO) + 64,
        };
        if raw > MAX_RAW
            || raw > max_raw
            || (h.data_len as usize) > max_data
            || (codec == Codec::None && h.data_len != h.raw_len)
        {
            return Err(ChunkError::BadHeader("lengths"));
        }
        if b[6] != 0 || b[7] != 0 || u32_at(32) != 0 {
            return Err(ChunkError::BadHeader("reserved bits set"));
        }
        Ok(h)
    }
}

// ------------------------------------------------------------------ varints

fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    put_uvarint(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// A cursor over payload bytes; every read is bounds-checked.
#[derive(Clone, Copy)]
struct Cur<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Cur<'a> {
    fn uvarint(&mut self) -> Result<u64, ChunkError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let Some(&byte) = self.b.get(self.i) else {
                return Err(ChunkError::Payload("truncated varint"));
            };
            self.i += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(ChunkError::Payload("varint too long"))
    }

    fn varint(&mut self) -> Result<i64, ChunkError> {
        let u = self.uvarint()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    /// A count of items, each at least `min` bytes: bounded by what is left.
    fn count(&mut self, min: usize) -> Result<usize, ChunkError> {
        let n = self.uvarint()?;
        let left = (self.b.len() - self.i) / min.max(1);
        if n > left as u64 {
            return Err(ChunkError::Payload("count larger than the payload"));
        }
        Ok(n as usize)
    }

    fn bytes(&mut self) -> Result<&'a [u8], ChunkError> {
        let n = self.uvarint()?;
        let end = self
            .i
            .checked_add(usize::try_from(n).map_err(|_| ChunkError::Payload("length"))?)
            .filter(|&e| e <= self.b.len())
            .ok_or(ChunkError::Payload("string past the end"))?;
        let s = &self.b[self.i..end];
        self.i = end;
        Ok(s)
    }

    /// [`Cur::str`]'s check without the `&str`: ASCII text (metadata
    /// names and IDs) clears it in a few word compares.
    fn check_str(&mut self) -> Result<(), ChunkError> {
        let b = self.bytes()?;
        if b.is_ascii() || std::str::from_utf8(b).is_ok() {
            Ok(())
        } else {
            Err(ChunkError::Payload("invalid UTF-8"))
        }
    }

    fn str(&mut self) -> Result<&'a str, ChunkError> {
        std::str::from_utf8(self.bytes()?).map_err(|_| ChunkError::Payload("invalid UTF-8"))
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

// ----------------------------------------------------------------- building

/// Builds chunks from entries. See the module docs.
pub struct ChunkBuilder {
    codec: Codec,
    /// The entries section of the open chunk.
    body: Vec<u8>,
    labels: Vec<LabelSet>,
    index: crate::labels::LabelMap<u32>,
    /// The label index the last entry took: lines come in runs of one
    /// stream, whose entries skip the lookup (and the clone of the set).
    /// Checked against `labels` at each use, so never stale.
    last_label: u32,
    entries: u32,
    last_ts: i64,
    /// Payload scratch (label table + body) before compression.
    raw: Vec<u8>,
    /// `body` holds the entries of the chunk sealed last, not the open
    /// one's (see [`ChunkBuilder::seal_in_place`]).
    sealed: bool,
}

impl ChunkBuilder {
    pub fn new(codec: Codec) -> Self {
        ChunkBuilder {
            codec,
            body: Vec::new(),
            labels: Vec::new(),
            index: Default::default(),
            last_label: 0,
            entries: 0,
            last_ts: 0,
            raw: Vec::new(),
            sealed: false,
        }
    }

    /// How the chunks sealed from now on are stored.
    pub fn set_codec(&mut self, codec: Codec) {
        self.codec = codec;
    }

    /// Entries in the open chunk.
    pub fn entries(&self) -> u32 {
        self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Bytes of the open chunk's entries section (its size, near enough).
    pub fn body_len(&self) -> usize {
        if self.sealed {
            0
        } else {
            self.body.len()
        }
    }

    /// Appends one entry (its labels, timestamp, line and metadata).
    pub fn add(&mut self, e: &Entry) {
        self.drop_sealed();
        let li = match self.labels.get(self.last_label as usize) {
            Some(l) if *l == e.labels => self.last_label,
            _ => {
                let next = self.labels.len() as u32;
                let li = *self.index.entry(e.labels.clone()).or_insert_with(|| {
                    self.labels.push(e.labels.clone());
                    next
                });
                self.last_label = li;
                li
            }
        };
        let ts = e.timestamp.nanos();
        let line = e.line.as_bytes();
        // The label index, the timestamp delta and the line's length, in
        // one copy (see `crate::wire`).
        let mut head = [0u8; 30];
        let mut at = put_varint(&mut head, 0, u64::from(li));
        at = put_varint(&mut head, at, zigzag(ts.wrapping_sub(self.last_ts)));
        at = put_varint(&mut head, at, line.len() as u64);
        append_head(&mut self.body, &head, at);
        self.body.extend_from_slice(line);
        self.last_ts = ts;
        put_uvarint(&mut self.body, e.metadata.len() as u64);
        for (k, v) in &e.metadata {
            put_str(&mut self.body, k.as_bytes());
            put_str(&mut self.body, v.as_bytes());
        }
        self.entries += 1;
    }

    /// Seals the open chunk: appends the whole chunk (header and payload) to
    /// `out` and starts a new one. Returns the header (`None` if empty).
    pub fn seal(&mut self, written: i64, out: &mut Vec<u8>) -> Option<Header> {
        let h = self.seal_in_place(written, out)?;
        out.extend_from_slice(self.sealed_tail());
        self.drop_sealed();
        Some(h)
    }

    /// [`ChunkBuilder::seal`] without copying an uncompressed chunk's
    /// entries: `out` gets the header and the label table, and the entries
    /// stay where they were built, as [`ChunkBuilder::sealed_tail`], until
    /// the next [`ChunkBuilder::add`]. Written after `out`, they make the
    /// chunk `seal` makes (the spool's writer writes the two in turn: in a
    /// drain the copy was as many bytes again as the lines).
    pub fn seal_in_place(&mut self, written: i64, out: &mut Vec<u8>) -> Option<Header> {
        self.drop_sealed();
        if self.entries == 0 {
            return None;
        }
        // The label table goes to `raw`; the entries are copied once, into
        // the compressor, or not at all.
        self.raw.clear();
        put_uvarint(&mut self.raw, self.labels.len() as u64);
        for ls in &self.labels {
            put_uvarint(&mut self.raw, ls.len() as u64);
            for (k, v) in ls.iter() {
                put_str(&mut self.raw, k.as_bytes());
                put_str(&mut self.raw, v.as_bytes());
            }
        }
        let raw_len = self.raw.len() + self.body.len();
        let start = out.len();
        out.resize(start + HEADER_LEN, 0);
        let mut codec = self.codec;
        if codec == Codec::Lz4 {
            self.raw.extend_from_slice(&self.body);
            let max = lz4_flex::block::get_maximum_output_size(self.raw.len());
            out.resize(start + HEADER_LEN + max, 0);
            match lz4_flex::block::compress_into(&self.raw, &mut out[start + HEADER_LEN..]) {
                Ok(n) => {
                    out.truncate(start + HEADER_LEN + n);
                    self.body.clear();
                }
                Err(_) => {
                    // Cannot happen with a buffer of the maximum size;
                    // store it uncompressed rather than fail.
                    out.truncate(start + HEADER_LEN);
                    self.raw.truncate(raw_len - self.body.len());
                    codec = Codec::None;
                }
            }
        }
        if codec == Codec::None {
            out.extend_from_slice(&self.raw);
        }
        // What is left in `body` (all of it, or nothing) is the tail.
        let data_len = out.len() - start - HEADER_LEN + self.body.len();
        let mut crc = crc32fast::Hasher::new();
        crc.update(&out[start + HEADER_LEN..]);
        crc.update(&self.body);
        let h = Header {
            codec,
            entries: self.entries,
            raw_len: raw_len as u32,
            data_len: data_len as u32,
            written,
            data_crc: crc.finalize(),
        };
        out[start..start + HEADER_LEN].copy_from_slice(&h.encode());
        self.sealed = true;
        self.labels.clear();
        self.index.clear();
        self.entries = 0;
        self.last_ts = 0;
        Some(h)
    }

    /// The end of the chunk sealed last by [`ChunkBuilder::seal_in_place`]
    /// (its entries, when stored as they are); empty once an entry was
    /// added since.
    pub fn sealed_tail(&self) -> &[u8] {
        if self.sealed {
            &self.body
        } else {
            &[]
        }
    }

    /// Forgets a sealed tail (its chunk was written): the entries section
    /// starts again.
    fn drop_sealed(&mut self) {
        if self.sealed {
            self.body.clear();
            self.sealed = false;
        }
    }
}

// ----------------------------------------------------------------- decoding

/// One entry of a payload, borrowing its bytes. Its line `L` is text
/// checked as UTF-8 ([`Payload::next_entry`]) or the bytes as stored
/// ([`Payload::next_entry_bytes`], for a reader that checks the lines it
/// keeps together: [`share_lines`]).
#[derive(Debug, PartialEq, Eq)]
pub struct RawEntry<'a, L = &'a str> {
    /// Index into [`Payload::labels`].
    pub label: usize,
    pub timestamp: Timestamp,
    pub line: L,
    pub metadata: RawMeta<'a>,
}

/// An entry's structured metadata pairs, borrowed from the payload: checked
/// when the entry was read, read again as they are iterated — no `Vec` per
/// entry on a lane's read path.
#[derive(Clone, Copy)]
pub struct RawMeta<'a> {
    n: usize,
    cur: Cur<'a>,
}

impl<'a> RawMeta<'a> {
    pub fn len(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The pairs, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a str)> {
        let mut c = self.cur;
        // Checked by `read_entry`: a failure here cannot happen, and would
        // only end the pairs early.
        (0..self.n).map_while(move |_| Some((c.str().ok()?, c.str().ok()?)))
    }

    /// The pairs as metadata text, in order: [`RawMeta::iter`]'s, the
    /// ASCII ones (names, IDs, UIDs) cleared by `is_ascii`
    /// ([`crate::entry::MetaStr::from_utf8`]). A lane makes every entry's
    /// metadata through this.
    pub fn pairs(&self) -> impl Iterator<Item = crate::entry::MetaPair> + 'a {
        let mut c = self.cur;
        let mut text = move || crate::entry::MetaStr::from_utf8(c.bytes().ok()?);
        (0..self.n).map_while(move |_| Some((text()?, text()?)))
    }
}

impl PartialEq for RawMeta<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.n == other.n && self.iter().eq(other.iter())
    }
}

impl Eq for RawMeta<'_> {}

impl std::fmt::Debug for RawMeta<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl RawEntry<'_> {
    /// An owned entry (with no acknowledgement yet).
    pub fn to_entry(&self, labels: &LabelSet) -> Entry {
        self.to_entry_with(labels, self.line.into())
    }
}

impl<'a> RawEntry<'a, &'a [u8]> {
    /// The entry with its line checked as UTF-8.
    fn checked(self) -> Result<RawEntry<'a>, ChunkError> {
        Ok(RawEntry {
            label: self.label,
            timestamp: self.timestamp,
            line: std::str::from_utf8(self.line)
                .map_err(|_| ChunkError::Payload("invalid UTF-8"))?,
            metadata: self.metadata,
        })
    }
}

/// The lines a reader keeps of a payload, `total` bytes in all, put end to
/// end in one allocation they share, checked as UTF-8 at once: a line is
/// valid on its own when the lines end to end are and it begins and ends
/// on a character boundary ([`SharedLines::next`] checks that). One check
/// over the whole costs less than one per line (the per-call set-up of
/// `from_utf8` on ~200-byte lines). A line that is not valid text fails,
/// as it does in [`Payload::next_entry`].
pub fn share_lines<'a>(
    lines: impl Iterator<Item = &'a [u8]>,
    total: usize,
) -> Result<SharedLines, ChunkError> {
    let mut bytes = Vec::with_capacity(total);
    for l in lines {
        bytes.extend_from_slice(l);
    }
    let text = String::from_utf8(bytes).map_err(|_| ChunkError::Payload("invalid UTF-8"))?;
    Ok(SharedLines {
        chunk: crate::text::Chunk::from_string(text),
        at: 0,
    })
}

/// What [`share_lines`] made: the lines' text, handed out in their order.
pub struct SharedLines {
    chunk: crate::text::Chunk,
    at: usize,
}

impl SharedLines {
    /// The next line, `len` bytes long (the length it had in the payload).
    pub fn next(&mut self, len: usize) -> Result<Text, ChunkError> {
        let end = self.at + len;
        let line = self.chunk.line(self.at, end);
        self.at = end;
        line.ok_or(ChunkError::Payload("invalid UTF-8"))
    }
}

impl<L> RawEntry<'_, L> {
    /// An entry with `line` for its text (the same text, e.g. shared with
    /// the other lines of the chunk).
    pub fn to_entry_with(&self, labels: &LabelSet, line: Text) -> Entry {
        let mut e = Entry::new(
            labels.clone(),
            self.timestamp,
            line,
            crate::ack::Ack::none(),
        );
        if !self.metadata.is_empty() {
            let mut md = Vec::with_capacity(self.metadata.len());
            md.extend(self.metadata.pairs());
            e.metadata = md;
        }
        e
    }
}

/// A verified, decompressed payload. See the module docs.
pub struct Payload<'a> {
    labels: Vec<LabelSet>,
    cur: Cur<'a>,
    left: u32,
    last_ts: i64,
}

impl<'a> Payload<'a> {
    /// Checks `data` (the bytes after the header) against `h`, decompresses
    /// it into `scratch` if needed and reads the label table.
    pub fn open(
        h: &Header,
        data: &'a [u8],
        scratch: &'a mut Vec<u8>,
    ) -> Result<Payload<'a>, ChunkError> {
        Self::open_interned(h, data, scratch, None)
    }

    /// [`Payload::open`], taking label sets met before from `interner`
    /// (a lane reads the same streams in chunk after chunk).
    pub fn open_interned(
        h: &Header,
        data: &'a [u8],
        scratch: &'a mut Vec<u8>,
        mut interner: Option<&mut crate::labels::Interner>,
    ) -> Result<Payload<'a>, ChunkError> {
        if data.len() < h.data_len as usize {
            return Err(ChunkError::Short);
        }
        let data = &data[..h.data_len as usize];
        if crc32fast::hash(data) != h.data_crc {
            return Err(ChunkError::BadData);
        }
        let raw: &'a [u8] = match h.codec {
            Codec::None => data,
            Codec::Lz4 => {
                // Grown (zeroed) only when too small: zeroing the whole
                // buffer for every chunk cost as much as a copy of it.
                let want = h.raw_len as usize;
                if scratch.len() < want {
                    scratch.resize(want, 0);
                }
                let out = &mut scratch[..want];
                let n = lz4_flex::block::decompress_into(data, out)
                    .map_err(|_| ChunkError::Payload("lz4"))?;
                if n != want {
                    return Err(ChunkError::Payload("raw length"));
                }
                &scratch[..want]
            }
        };
        let mut cur = Cur { b: raw, i: 0 };
        let n = cur.count(1)?;
        let mut labels = Vec::with_capacity(n);
        let mut v: Vec<(&str, &str)> = Vec::new();
        for _ in 0..n {
            let pairs = cur.count(2)?;
            v.clear();
            for _ in 0..pairs {
                v.push((cur.str()?, cur.str()?));
            }
            labels.push(match interner.as_deref_mut() {
                Some(i) => i.get(&v),
                None => LabelSet::new(v.iter().copied()),
            });
        }
        if h.entries as usize > cur.b.len() {
            return Err(ChunkError::Payload("entry count"));
        }
        Ok(Payload {
            labels,
            cur,
            left: h.entries,
            last_ts: 0,
        })
    }

    /// The chunk's label sets; [`RawEntry::label`] indexes this.
    pub fn labels(&self) -> &[LabelSet] {
        &self.labels
    }

    /// The next entry; `None` after the last. An error ends the payload.
    pub fn next_entry(&mut self) -> Option<Result<RawEntry<'a>, ChunkError>> {
        let r = self.next_entry_bytes()?.and_then(RawEntry::checked);
        if r.is_err() {
            self.left = 0;
        }
        Some(r)
    }

    /// [`Payload::next_entry`] with the line's UTF-8 not checked (its
    /// metadata's is): for [`share_lines`].
    pub fn next_entry_bytes(&mut self) -> Option<Result<RawEntry<'a, &'a [u8]>, ChunkError>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let r = self.read_entry();
        if r.is_err() {
            self.left = 0;
        }
        Some(r)
    }

    fn read_entry(&mut self) -> Result<RawEntry<'a, &'a [u8]>, ChunkError> {
        let label = self.cur.uvarint()? as usize;
        if label >= self.labels.len() {
            return Err(ChunkError::Payload("label index"));
        }
        let ts = self.last_ts.wrapping_add(self.cur.varint()?);
        self.last_ts = ts;
        let line = self.cur.bytes()?;
        let n = self.cur.count(2)?;
        let metadata = RawMeta { n, cur: self.cur };
        for _ in 0..2 * n {
            self.cur.check_str()?;
        }
        Ok(RawEntry {
            label,
            timestamp: Timestamp(ts),
            line,
            metadata,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ack::Ack;
    use proptest::prelude::*;

    fn entry(labels: &LabelSet, ts: i64, line: &str, md: &[(&str, &str)]) -> Entry {
        let mut e = Entry::new(
            labels.clone(),
            Timestamp(ts),
            line.to_string().into(),
            Ack::none(),
        );
        e.metadata = crate::entry::meta_pairs(md);
        e
    }

    type Pairs = Vec<(String, String)>;

    /// Decodes a whole chunk back into (labels, ts, line, metadata).
    fn decode_all(chunk: &[u8]) -> Result<Vec<(Pairs, i64, String, Pairs)>, ChunkError> {
        decode_with(chunk, &mut Vec::new())
    }

    /// [`decode_all`] with a scratch buffer a reader keeps between chunks.
    fn decode_with(
        chunk: &[u8],
        scratch: &mut Vec<u8>,
    ) -> Result<Vec<(Pairs, i64, String, Pairs)>, ChunkError> {
        let h = Header::decode(chunk)?;
        let mut p = Payload::open(&h, &chunk[HEADER_LEN..], scratch)?;
        let labels: Vec<Vec<(String, String)>> = p
            .labels()
            .iter()
            .map(|l| {
                l.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            })
            .collect();
        let mut out = Vec::new();
        while let Some(e) = p.next_entry() {
            let e = e?;
            out.push((
                labels[e.label].clone(),
                e.timestamp.0,
                e.line.to_string(),
                {
                    // What a lane makes of the pairs is what they read as.
                    let made: Pairs = e
                        .to_entry(&LabelSet::empty())
                        .metadata
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect();
                    let read: Pairs = e
                        .metadata
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect();
                    assert_eq!(made, read);
                    made
                },
            ));
        }
        Ok(out)
    }

    /// Text that is not UTF-8 in an entry (its line, a metadata name or
    /// value) is refused when the entry is read, though the checksums hold.
    #[test]
    fn an_entry_whose_text_is_not_utf8_is_refused() {
        let ls = LabelSet::new([("app", "a")]);
        for (line, md) in [
            ("lin\u{e9}", ("k", "v")),
            ("line", ("k\u{e9}", "v")),
            ("line", ("k", "\u{e9}v")),
        ] {
            let mut cb = ChunkBuilder::new(Codec::None);
            cb.add(&entry(
                &ls,
                1,
                "ascii",
                &[("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736")],
            ));
            cb.add(&entry(&ls, 2, line, &[md]));
            let mut out = Vec::new();
            cb.seal(0, &mut out).unwrap();
            assert_eq!(decode_all(&out).unwrap().len(), 2);
            // The one non-ASCII character: its second byte made invalid.
            let at = out.iter().rposition(|&b| b == 0xa9).unwrap();
            out[at] = 0xff;
            let mut h = Header::decode(&out).unwrap();
            h.data_crc = crc32fast::hash(&out[HEADER_LEN..]);
            out[..HEADER_LEN].copy_from_slice(&h.encode());
            let mut scratch = Vec::new();
            let mut p = Payload::open(&h, &out[HEADER_LEN..], &mut scratch).unwrap();
            assert!(p.next_entry().unwrap().is_ok());
            assert_eq!(
                p.next_entry().unwrap().unwrap_err(),
                ChunkError::Payload("invalid UTF-8"),
                "{line:?} {md:?}"
            );
            assert!(p.next_entry().is_none());
        }
    }

    /// A lane's lines checked together are refused as checked one by one:
    /// text that is not UTF-8, and lines that are valid only end to end
    /// (a character cut between two of them).
    #[test]
    fn lines_checked_together_are_refused_as_lines_checked_alone() {
        let ls = LabelSet::new([("app", "a")]);
        let lines_of = |patch: &[(&[u8], u8)]| {
            let mut cb = ChunkBuilder::new(Codec::None);
            for l in ["one", "ab", "cd", "z\u{e9}"] {
                cb.add(&entry(&ls, 1, l, &[]));
            }
            let mut out = Vec::new();
            cb.seal(0, &mut out).unwrap();
            for (what, to) in patch {
                let at = out.windows(what.len()).position(|w| w == *what).unwrap();
                out[at + what.len() - 1] = *to;
            }
            let mut h = Header::decode(&out).unwrap();
            h.data_crc = crc32fast::hash(&out[HEADER_LEN..]);
            out[..HEADER_LEN].copy_from_slice(&h.encode());
            let mut scratch = Vec::new();
            let mut p = Payload::open(&h, &out[HEADER_LEN..], &mut scratch).unwrap();
            let mut raw = Vec::new();
            while let Some(e) = p.next_entry_bytes() {
                raw.push(e.unwrap().line.to_vec());
            }
            let alone: Result<Vec<String>, _> = raw
                .iter()
                .map(|l| String::from_utf8(l.clone()).map_err(|_| ()))
                .collect();
            let total = raw.iter().map(Vec::len).sum();
            let together = share_lines(raw.iter().map(Vec::as_slice), total)
                .and_then(|mut s| {
                    raw.iter()
                        .map(|l| s.next(l.len()))
                        .collect::<Result<Vec<_>, _>>()
                })
                .map(|t| t.iter().map(|l| l.to_string()).collect::<Vec<_>>())
                .map_err(|_| ());
            (alone, together)
        };
        let (alone, together) = lines_of(&[]);
        assert_eq!(alone.unwrap(), ["one", "ab", "cd", "z\u{e9}"]);
        assert_eq!(together.unwrap(), ["one", "ab", "cd", "z\u{e9}"]);
        // "ab" "cd" -> "a\xc3" "\xa9d": "a\u{e9}d" end to end.
        let (alone, together) = lines_of(&[(b"ab", 0xc3), (b"\x02c", 0xa9)]);
        assert!(alone.is_err());
        assert_eq!(together, Err(()));
        // The last line's second byte made invalid.
        let (alone, together) = lines_of(&[(b"z\xc3\xa9", 0xff)]);
        assert!(alone.is_err());
        assert_eq!(together, Err(()));
    }

    #[test]
    fn a_scratch_buffer_left_from_a_bigger_chunk_decodes_a_smaller_one_exactly() {
        let a = LabelSet::new([("app", "a")]);
        let mut big = ChunkBuilder::new(Codec::Lz4);
        for i in 0..500 {
            big.add(&entry(&a, i, &format!("{i} {}", "big ".repeat(20)), &[]));
        }
        let mut small = ChunkBuilder::new(Codec::Lz4);
        small.add(&entry(&a, 7, "small", &[("k", "v")]));
        let (mut b, mut s) = (Vec::new(), Vec::new());
        big.seal(1, &mut b).unwrap();
        small.seal(1, &mut s).unwrap();
        let mut scratch = Vec::new();
        assert_eq!(decode_with(&b, &mut scratch).unwrap().len(), 500);
        let left = scratch.len();
        assert_eq!(
            decode_with(&s, &mut scratch).unwrap(),
            decode_all(&s).unwrap()
        );
        assert_eq!(scratch.len(), left, "kept, not zeroed again");
    }

    #[test]
    fn round_trips_labels_timestamps_lines_and_metadata() {
        let a = LabelSet::new([("app", "a"), ("filename", "/x/0.log")]);
        let b = LabelSet::new([("app", "b"), ("__tenant_id__", "t1")]);
        for codec in [Codec::None, Codec::Lz4] {
            let mut cb = ChunkBuilder::new(codec);
            cb.add(&entry(&a, 1_700_000_000_000_000_001, "first", &[]));
            cb.add(&entry(
                &b,
                5,
                "second é",
                &[("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736")],
            ));
            cb.add(&entry(&a, -7, "", &[]));
            let mut out = Vec::new();
            let h = cb.seal(42, &mut out).unwrap();
            assert_eq!(h.entries, 3);
            assert_eq!(h.written, 42);
            assert_eq!(out.len(), h.total_len());
            assert!(cb.is_empty());
            let got = decode_all(&out).unwrap();
            assert_eq!(got.len(), 3);
            assert_eq!(got[0].1, 1_700_000_000_000_000_001);
            assert_eq!(got[1].2, "second é");
            assert_eq!(
                got[1].3,
                vec![(
                    "trace_id".to_string(),
                    "4bf92f3577b34da6a3ce929d0e0e4736".to_string()
                )]
            );
            assert_eq!(got[1].0[0], ("__tenant_id__".to_string(), "t1".to_string()));
            assert_eq!(got[2].1, -7);
            assert_eq!(got[2].0, got[0].0);
        }
    }

    #[test]
    fn lz4_compresses_log_lines() {
        let a = LabelSet::new([("app", "a")]);
        let mut cb = ChunkBuilder::new(Codec::Lz4);
        for i in 0..2000 {
            cb.add(&entry(
                &a,
                i,
                &format!("level=info msg=\"request served\" path=/api/v1/items/{i} status=200"),
                &[],
            ));
        }
        let mut out = Vec::new();
        let h = cb.seal(0, &mut out).unwrap();
        assert!(h.data_len * 3 < h.raw_len, "{h:?}");
    }

    /// Found by the chunk property test: a header with valid checksums
    /// claiming 64 MiB from a few stored bytes made the reader reserve
    /// 64 MiB before lz4 failed. Now refused as a bad header; and the most
    /// compressible payload there is still decodes.
    #[test]
    fn a_claimed_size_lz4_cannot_reach_is_a_bad_header() {
        let h = Header {
            codec: Codec::Lz4,
            entries: 1,
            raw_len: (MAX_RAW - 1) as u32,
            data_len: 16,
            written: 0,
            data_crc: 0,
        };
        assert!(matches!(
            Header::decode(&h.encode()),
            Err(ChunkError::BadHeader("lengths"))
        ));
        let a = LabelSet::new([("app", "a")]);
        let mut cb = ChunkBuilder::new(Codec::Lz4);
        cb.add(&entry(&a, 0, &"a".repeat(4 << 20), &[]));
        let mut out = Vec::new();
        let h = cb.seal(0, &mut out).unwrap();
        assert!(h.raw_len > 200 * h.data_len, "{h:?}");
        let back = Header::decode(&out[..HEADER_LEN]).unwrap();
        let mut scratch = Vec::new();
        let mut p = Payload::open(&back, &out[HEADER_LEN..], &mut scratch).unwrap();
        let e = p.next_entry().unwrap().unwrap();
        assert_eq!(e.line.len(), 4 << 20);
        assert!(p.next_entry().is_none());
    }

    #[test]
    fn every_single_byte_flip_is_detected() {
        let a = LabelSet::new([("app", "a")]);
        let mut cb = ChunkBuilder::new(Codec::Lz4);
        for i in 0..20 {
            cb.add(&entry(&a, i, &format!("line {i}"), &[]));
        }
        let mut out = Vec::new();
        cb.seal(0, &mut out).unwrap();
        for i in 0..out.len() {
            let mut bad = out.clone();
            bad[i] ^= 0x10;
            assert!(decode_all(&bad).is_err(), "flip at byte {i} went unnoticed");
        }
        for cut in 0..out.len() {
            assert!(decode_all(&out[..cut]).is_err(), "cut at {cut}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        #[test]
        fn any_entries_round_trip(
            es in proptest::collection::vec(
                (0usize..4, any::<i64>(), ".{0,80}", proptest::collection::vec(("[a-z_]{1,8}", ".{0,10}"), 0..3)),
                1..60),
            lz4 in any::<bool>(),
            cut in 0usize..60,
        ) {
            // Sealed once at `cut` too: the builder's label table starts
            // again for the second chunk (and its last-used label with it).
            let sets: Vec<LabelSet> = (0..4).map(|i| LabelSet::new([("app", format!("a{i}")), ("n", i.to_string())])).collect();
            let mut cb = ChunkBuilder::new(if lz4 { Codec::Lz4 } else { Codec::None });
            let mut chunks = Vec::new();
            for (i, (l, ts, line, md)) in es.iter().enumerate() {
                if i == cut {
                    let mut out = Vec::new();
                    if cb.seal(1, &mut out).is_some() {
                        chunks.push(out);
                    }
                }
                let md: Vec<(&str, &str)> = md.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                cb.add(&entry(&sets[*l], *ts, line, &md));
            }
            let mut out = Vec::new();
            cb.seal(1, &mut out).unwrap();
            chunks.push(out);
            let mut got = Vec::new();
            for c in &chunks {
                got.extend(decode_all(c).unwrap());
            }
            prop_assert_eq!(got.len(), es.len());
            for (g, (l, ts, line, md)) in got.iter().zip(&es) {
                let want: Vec<(String, String)> = sets[*l].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
                prop_assert_eq!(&g.0, &want);
                prop_assert_eq!(g.1, *ts);
                prop_assert_eq!(&g.2, line);
                prop_assert_eq!(&g.3, md);
            }
        }

        /// Chunks sealed in place, one after another from one builder, are
        /// byte for byte what `seal` makes of the same entries (the header
        /// and label table, then the tail), whatever the codec; the tail
        /// is gone once an entry is added, and the next chunk holds only
        /// its own entries.
        #[test]
        fn sealed_in_place_is_what_seal_writes(
            chunks in proptest::collection::vec(
                (proptest::collection::vec((0usize..3, any::<i64>(), ".{0,40}"), 0..12), any::<bool>()),
                1..6),
        ) {
            let sets: Vec<LabelSet> = (0..3).map(|i| LabelSet::new([("app", format!("a{i}"))])).collect();
            let (mut copied, mut in_place) = (ChunkBuilder::new(Codec::None), ChunkBuilder::new(Codec::None));
            for (es, lz4) in &chunks {
                let codec = if *lz4 { Codec::Lz4 } else { Codec::None };
                copied.set_codec(codec);
                in_place.set_codec(codec);
                for (l, ts, line) in es {
                    let e = entry(&sets[*l], *ts, line, &[("trace_id", "x")]);
                    copied.add(&e);
                    in_place.add(&e);
                    prop_assert!(in_place.sealed_tail().is_empty());
                }
                prop_assert_eq!(in_place.body_len(), copied.body_len());
                let (mut want, mut got) = (vec![7u8], vec![7u8]);
                let hw = copied.seal(5, &mut want);
                let hg = in_place.seal_in_place(5, &mut got);
                prop_assert_eq!(hw, hg);
                prop_assert_eq!(in_place.body_len(), 0);
                prop_assert!(in_place.is_empty());
                got.extend_from_slice(in_place.sealed_tail());
                prop_assert_eq!(&got, &want);
                if !es.is_empty() {
                    prop_assert_eq!(decode_all(&got[1..]).unwrap().len(), es.len());
                }
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300), fix_header in any::<bool>()) {
            let mut b = bytes;
            if fix_header && b.len() >= HEADER_LEN {
                // A valid header over garbage: the payload checks must hold.
                let h = Header { codec: Codec::None, entries: 3, raw_len: (b.len() - HEADER_LEN) as u32,
                    data_len: (b.len() - HEADER_LEN) as u32, written: 0,
                    data_crc: crc32fast::hash(&b[HEADER_LEN..]) };
                b[..HEADER_LEN].copy_from_slice(&h.encode());
            }
            let _ = decode_all(&b);
        }
    }
}
