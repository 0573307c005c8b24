//! Loki's push protobuf (`logproto.PushRequest`), both as prost structs and
//! as a hand-written, allocation-free encoder.
//!
//! Owns: the message definitions of Loki's `pkg/push/push.proto` (field
//! numbers and types must match it exactly) and [`encode_request`], which
//! writes a [`Batch`] straight into a reusable buffer, borrowing every line
//! instead of copying it into owned prost structs, whole or a piece at a
//! time ([`encode_request_in`]). The prost structs are the
//! reference: the tests decode what the encoder writes with them, and check
//! that prost's own encoding of the same request is byte-identical.
//!
//! Proto3 rules respected by the encoder: scalar fields equal to their
//! default (0, empty string) are omitted; the entry timestamp (a message) is
//! always written. `format`, `hash` and `parsed` are never set (clients leave
//! them empty).
//!
//! Must never: change a field number or wire type (Loki would misread the
//! push), or allocate per line.

use super::batch::Batch;
use crate::entry::Timestamp;
use crate::wire::{append_head, put_varint};
use prost::encoding::encoded_len_varint;

/// `logproto.PushRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PushRequest {
    #[prost(message, repeated, tag = "1")]
    pub streams: Vec<StreamAdapter>,
    #[prost(string, tag = "2")]
    pub format: String,
}

/// `logproto.StreamAdapter`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamAdapter {
    #[prost(string, tag = "1")]
    pub labels: String,
    #[prost(message, repeated, tag = "2")]
    pub entries: Vec<EntryAdapter>,
    #[prost(uint64, tag = "3")]
    pub hash: u64,
}

/// `logproto.EntryAdapter`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EntryAdapter {
    #[prost(message, optional, tag = "1")]
    pub timestamp: Option<ProtoTimestamp>,
    #[prost(string, tag = "2")]
    pub line: String,
    #[prost(message, repeated, tag = "3")]
    pub structured_metadata: Vec<LabelPairAdapter>,
    #[prost(message, repeated, tag = "4")]
    pub parsed: Vec<LabelPairAdapter>,
}

/// `logproto.LabelPairAdapter`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LabelPairAdapter {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `google.protobuf.Timestamp`.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct ProtoTimestamp {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

const LEN: u8 = 2; // wire type: length-delimited
const VARINT: u8 = 0;

#[inline]
fn key(field: u8, wire: u8) -> u8 {
    (field << 3) | wire
}

/// Length of a length-delimited field (key + length prefix + payload);
/// 0 when `omit_empty` and the payload is empty (proto3 default).
#[inline]
fn ld_len(payload: usize, omit_empty: bool) -> usize {
    if omit_empty && payload == 0 {
        0
    } else {
        1 + encoded_len_varint(payload as u64) + payload
    }
}

#[inline]
fn ts_parts(ts: Timestamp) -> (u64, u64) {
    let (s, n) = ts.secs_nanos();
    // int64/int32 are varints of the two's-complement value, sign-extended.
    (s as u64, n as i64 as u64)
}

#[inline]
fn ts_len(ts: Timestamp) -> usize {
    let (s, n) = ts_parts(ts);
    ts_len_of(s, n)
}

/// Bytes of a `Timestamp` message body of these [`ts_parts`] (≤ 22).
#[inline]
fn ts_len_of(s: u64, n: u64) -> usize {
    let mut l = 0;
    if s != 0 {
        l += 1 + encoded_len_varint(s);
    }
    if n != 0 {
        l += 1 + encoded_len_varint(n);
    }
    l
}

/// Bytes of a `LabelPairAdapter` (its body).
#[inline]
fn pair_len(name: &[u8], value: &[u8]) -> usize {
    ld_len(name.len(), true) + ld_len(value.len(), true)
}

/// Bytes of an `EntryAdapter` (its body): the timestamp, the line and each
/// structured-metadata pair.
#[inline]
fn entry_body_len<'a>(
    ts: Timestamp,
    line_len: usize,
    metadata: impl Iterator<Item = (&'a [u8], &'a [u8])>,
) -> usize {
    body_len_with(ts_len(ts), line_len, metadata)
}

/// [`entry_body_len`] of a timestamp body of `ts_body` bytes.
#[inline]
fn body_len_with<'a>(
    ts_body: usize,
    line_len: usize,
    metadata: impl Iterator<Item = (&'a [u8], &'a [u8])>,
) -> usize {
    let mut l = ld_len(ts_body, false) + ld_len(line_len, true);
    for (k, v) in metadata {
        l += ld_len(pair_len(k, v), false);
    }
    l
}

/// An entry's structured metadata as bytes.
#[inline]
fn metadata_of(e: &crate::entry::Entry) -> impl Iterator<Item = (&[u8], &[u8])> + Clone + '_ {
    e.metadata.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes()))
}

fn entry_len(e: &crate::entry::Entry) -> usize {
    // The line's length only: its bytes (written by the reading thread, on
    // the other core) are not touched until the encoder copies them.
    entry_body_len(e.timestamp, e.line.len(), metadata_of(e))
}

fn put_str(buf: &mut Vec<u8>, field: u8, s: &[u8]) {
    if !s.is_empty() {
        put_head(buf, field, s.len());
        buf.extend_from_slice(s);
    }
}

/// Writes the head of one `StreamAdapter` of a `PushRequest`: its key, its
/// length (the rendered `labels` and `entries` bytes of entries to follow)
/// and its labels. The entries follow through [`put_entry`].
#[inline]
pub fn put_stream_head(buf: &mut Vec<u8>, labels: &[u8], entries: usize) {
    put_head(buf, 1, ld_len(labels.len(), true) + entries);
    put_str(buf, 1, labels);
}

/// Writes one entry of a stream (`StreamAdapter.entries`): its key, its
/// length and its body — the timestamp, always; the line and each
/// metadata pair as proto3 writes them. Every entry the agent pushes is
/// written by this.
///
/// The bytes before the line (keys, lengths, the timestamp) are put
/// together on the stack and appended in one copy: written a byte at a
/// time into the `Vec` (prost's `encode_varint` checks its capacity per
/// byte) they were ~40 instructions a varint, six varints a line.
#[inline]
pub fn put_entry<'a, M>(buf: &mut Vec<u8>, ts: Timestamp, line: &[u8], metadata: M)
where
    M: Iterator<Item = (&'a [u8], &'a [u8])> + Clone,
{
    let (sec, nanos) = ts_parts(ts);
    let ts_body = ts_len_of(sec, nanos);
    let body = body_len_with(ts_body, line.len(), metadata.clone());
    // 1 + 10 (entry key, length) + 1 + 1 (timestamp key, length: ≤ 22)
    // + 1 + 10 + 1 + 10 (seconds, nanos) + 1 + 10 (line key, length).
    let mut head = [0u8; 46];
    head[0] = key(2, LEN);
    let mut at = put_varint(&mut head, 1, body as u64);
    head[at] = key(1, LEN);
    head[at + 1] = ts_body as u8;
    at += 2;
    if sec != 0 {
        head[at] = key(1, VARINT);
        at = put_varint(&mut head, at + 1, sec);
    }
    if nanos != 0 {
        head[at] = key(2, VARINT);
        at = put_varint(&mut head, at + 1, nanos);
    }
    if !line.is_empty() {
        head[at] = key(2, LEN);
        at = put_varint(&mut head, at + 1, line.len() as u64);
    }
    append_head(buf, &head, at);
    buf.extend_from_slice(line);
    for (k, v) in metadata {
        put_head(buf, 3, pair_len(k, v));
        put_str(buf, 1, k);
        put_str(buf, 2, v);
    }
}

/// Appends the key and length of a length-delimited field, in one copy.
#[inline]
fn put_head(buf: &mut Vec<u8>, field: u8, len: usize) {
    let mut head = [0u8; 11];
    head[0] = key(field, LEN);
    let at = put_varint(&mut head, 1, len as u64);
    append_head(buf, &head, at);
}

/// Where [`encode_request_in`] puts the request as it is written.
pub trait Pieces {
    /// `buf` is handed to [`Pieces::take`] once it holds this many bytes.
    const PIECE: usize;
    /// The request's length in bytes, before any of it is written.
    fn begin(&mut self, total: usize, buf: &mut Vec<u8>);
    /// `buf` holds at least [`Pieces::PIECE`] bytes, or (`last`) the end of
    /// the request: take what is wanted from its front.
    fn take(&mut self, buf: &mut Vec<u8>, last: bool);
}

/// The whole request, left in the buffer.
struct Whole;

impl Pieces for Whole {
    const PIECE: usize = usize::MAX;
    fn begin(&mut self, total: usize, buf: &mut Vec<u8>) {
        crate::memory::reserve_snug(buf, buf.len() + total);
    }
    fn take(&mut self, _: &mut Vec<u8>, _: bool) {}
}

/// Appends the protobuf encoding of `batch` as a `PushRequest` to `buf`.
pub fn encode_request(batch: &Batch, buf: &mut Vec<u8>) {
    encode_request_in(batch, buf, &mut Whole);
}

/// Writes the protobuf encoding of `batch` as a `PushRequest` through
/// `buf`, handing it to `out` every [`Pieces::PIECE`] bytes or so (at an
/// entry's end), so that a compressor can take it a block at a time and
/// the whole request is never held.
pub fn encode_request_in<P: Pieces>(batch: &Batch, buf: &mut Vec<u8>, out: &mut P) {
    // The request's length first (the batch kept its streams' entry bytes;
    // entry lengths are recomputed as each is written, arithmetic only).
    let total = batch.streams().iter().map(|s| ld_len(stream_len(s), false));
    out.begin(total.sum(), buf);
    let mut labels = String::new();
    for s in batch.streams() {
        labels.clear();
        s.key.render_into(&mut labels);
        put_stream_head(buf, labels.as_bytes(), s.wire_len());
        for e in &s.entries {
            if buf.len() >= P::PIECE {
                out.take(buf, false);
            }
            put_entry(buf, e.timestamp, e.line.as_bytes(), metadata_of(e));
        }
    }
    out.take(buf, true);
}

fn stream_len(s: &super::batch::Stream) -> usize {
    ld_len(s.key.rendered_len(), true) + s.wire_len()
}

/// Bytes `e` takes in a stream of the push protobuf (its key, length and
/// body); [`super::batch::Batch`] sums them as entries are added.
pub fn entry_wire_len(e: &crate::entry::Entry) -> usize {
    ld_len(entry_len(e), false)
}

/// Builds the equivalent prost request (tests and tools; allocates).
pub fn to_prost(batch: &Batch) -> PushRequest {
    PushRequest {
        streams: batch
            .streams()
            .iter()
            .map(|s| StreamAdapter {
                labels: s.key.render(),
                entries: s
                    .entries
                    .iter()
                    .map(|e| {
                        let (seconds, nanos) = e.timestamp.secs_nanos();
                        EntryAdapter {
                            timestamp: Some(ProtoTimestamp { seconds, nanos }),
                            line: e.line.to_string(),
                            structured_metadata: e
                                .metadata
                                .iter()
                                .map(|(k, v)| LabelPairAdapter {
                                    name: k.to_string(),
                                    value: v.to_string(),
                                })
                                .collect(),
                            parsed: Vec::new(),
                        }
                    })
                    .collect(),
                hash: 0,
            })
            .collect(),
        format: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ack::Ack;
    use crate::entry::Entry;
    use crate::labels::LabelSet;
    use crate::sink::batch::StreamKey;
    use proptest::prelude::*;
    use prost::Message;
    use std::time::Instant;

    /// (stream index, timestamp, line, metadata)
    type Item = (usize, i64, String, Vec<(String, String)>);

    fn batch_of(items: &[Item]) -> Batch {
        let keys: Vec<StreamKey> = (0..4)
            .map(|i| {
                StreamKey::new(LabelSet::new([
                    ("app", format!("a{i}")),
                    ("x", "\"q\"".into()),
                ]))
            })
            .collect();
        let mut b = Batch::new(None, Instant::now());
        for (s, ts, line, md) in items {
            let mut e = Entry::new(
                LabelSet::empty(),
                Timestamp(*ts),
                line.clone().into(),
                Ack::none(),
            );
            e.metadata = crate::entry::meta_pairs(md);
            b.add(&keys[*s % 4], e);
        }
        b
    }

    #[test]
    fn hand_encoder_matches_prost_on_edge_values() {
        let b = batch_of(&[
            (0, 0, String::new(), vec![]),
            (0, -1, "neg".into(), vec![(String::new(), "v".into())]),
            (1, i64::MAX, "max".into(), vec![("k".into(), String::new())]),
            (
                1,
                i64::MIN,
                "é\n".into(),
                vec![("trace_id".into(), "ab".into())],
            ),
            (2, 1_000_000_000, "whole second".into(), vec![]),
            // Lengths of three and four varint bytes (the entry's, the
            // line's, a metadata value's).
            (
                3,
                7,
                "x".repeat(20_000),
                vec![("k".into(), "v".repeat(300))],
            ),
            (3, 8, "y".repeat(2_100_000), vec![]),
            // Nothing but empty pairs: keys and zero lengths only.
            (
                2,
                5,
                String::new(),
                vec![(String::new(), String::new()); 40],
            ),
        ]);
        let mut buf = Vec::new();
        encode_request(&b, &mut buf);
        assert_eq!(buf, to_prost(&b).encode_to_vec());
        let back = PushRequest::decode(&buf[..]).unwrap();
        assert_eq!(back.streams.len(), 4);
        assert_eq!(back.streams[3].entries[1].line.len(), 2_100_000);
        let e = &back.streams[0].entries[1];
        assert_eq!(
            e.timestamp,
            Some(ProtoTimestamp {
                seconds: -1,
                nanos: 999_999_999
            })
        );
    }

    /// The stream lengths the batch keeps follow its entries when the
    /// metadata is split off or stripped (a tenant that refuses it): a
    /// wrong one would make Loki misread the whole push.
    #[test]
    fn stream_lengths_follow_split_and_stripped_metadata() {
        let md = |n: &str| vec![("trace_id".to_string(), n.to_string())];
        let mut b = batch_of(&[
            (0, 1, "a".into(), md("0123456789abcdef0123456789abcdef")),
            (0, 2, "b".into(), vec![]),
            (1, 3, "c".into(), md("x")),
            (
                1,
                4,
                "d".into(),
                vec![("k".into(), "v".into()), ("trace_id".into(), "y".into())],
            ),
        ]);
        let same_as_prost = |b: &Batch| {
            let mut buf = Vec::new();
            encode_request(b, &mut buf);
            assert_eq!(buf, to_prost(b).encode_to_vec());
        };
        same_as_prost(&b);
        let mut with = b.split_off_metadata();
        same_as_prost(&b);
        same_as_prost(&with);
        assert_eq!(with.strip_metadata().0, 3);
        same_as_prost(&with);
        assert_eq!((b.len(), with.len()), (1, 3));
    }

    proptest! {
        #[test]
        fn hand_encoder_is_byte_identical_to_prost(
            items in proptest::collection::vec(
                (0usize..4, any::<i64>(), prop_oneof![".{0,40}", "[a-z]{120,400}"],
                 proptest::collection::vec(("[a-z_]{0,8}", ".{0,8}"), 0..3)),
                0..30)
        ) {
            let b = batch_of(&items);
            let mut buf = Vec::new();
            encode_request(&b, &mut buf);
            prop_assert_eq!(&buf, &to_prost(&b).encode_to_vec());
        }
    }
}
