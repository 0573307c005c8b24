//! Turns a [`Batch`] into a push request body.
//!
//! Owns: [`Encoder`], which keeps its scratch buffers (a block of protobuf
//! and of snappy output, JSON text, the gzip output) across batches, and
//! [`Body`], the finished, immutable request body with its content headers.
//! A protobuf request is compressed a 64 KiB block at a time as it is
//! written ([`SnappyBlocks`]): never held whole.
//!
//! Two formats, as Loki's `pkg/loghttp/push` reads them:
//! - protobuf (`PushRequest`, see [`super::proto`]) compressed with snappy
//!   in *block* format, `Content-Type: application/x-protobuf`, no
//!   `Content-Encoding` — exactly what Promtail sends;
//! - JSON (`{"streams":[{"stream":{..},"values":[["<ns>","line"{,{md}}]]}]}`,
//!   timestamps as strings), `Content-Type: application/json`, gzip-compressed
//!   with `Content-Encoding: gzip` unless compression is off.
//!
//! A [`Body`] is built once per batch and resent as is: retries are
//! byte-identical.
//!
//! Must never: panic on any line content (serde_json escapes everything), or
//! allocate per line.

use super::batch::Batch;
use crate::config::{Compression, PushEncoding};
use bytes::Bytes;
use std::io::Write;

/// A finished request body.
#[derive(Clone, Debug)]
pub struct Body {
    pub bytes: Bytes,
    pub content_type: &'static str,
    pub content_encoding: Option<&'static str>,
    /// Entries in the body.
    pub entries: usize,
}

/// Reusable encoder state. See the module docs.
pub struct Encoder {
    encoding: PushEncoding,
    compression: Compression,
    /// Protobuf: at most a block and an entry of the request (see
    /// [`SnappyBlocks`]); JSON: the whole text.
    raw: Vec<u8>,
    /// JSON: the gzip output.
    out: Vec<u8>,
    snappy: snap::raw::Encoder,
    /// One block's snappy output (zeroed once, never cleared).
    block: Vec<u8>,
}

impl Encoder {
    pub fn new(encoding: PushEncoding, compression: Compression) -> Self {
        Encoder {
            encoding,
            compression,
            raw: Vec::new(),
            out: Vec::new(),
            snappy: snap::raw::Encoder::new(),
            block: Vec::new(),
        }
    }

    /// Encodes `batch` into a request body.
    pub fn encode(&mut self, batch: &Batch) -> Result<Body, String> {
        self.raw.clear();
        match self.encoding {
            PushEncoding::Protobuf => {
                let mut snappy = SnappyBlocks {
                    snappy: &mut self.snappy,
                    block: &mut self.block,
                    body: Vec::new(),
                    err: None,
                };
                super::proto::encode_request_in(batch, &mut self.raw, &mut snappy);
                if let Some(e) = snappy.err {
                    return Err(format!("snappy: {e}"));
                }
                let body = snappy.body;
                self.shrink();
                Ok(Body {
                    // Not shrunk to fit: glibc would `mremap` a large body,
                    // and then, freeing the smaller block, not learn to keep
                    // the next one in its heap — a fresh mapping, faulted in
                    // page by page, for every batch (+8 % CPU at one file).
                    // The untouched tail costs address space, not memory.
                    bytes: Bytes::from(body),
                    content_type: "application/x-protobuf",
                    content_encoding: None,
                    entries: batch.len(),
                })
            }
            PushEncoding::Json => {
                self.out.clear();
                write_json(batch, &mut self.raw).map_err(|e| format!("json: {e}"))?;
                let (bytes, content_encoding) = match self.compression {
                    Compression::None => (Bytes::copy_from_slice(&self.raw), None),
                    Compression::Gzip => {
                        let mut gz = flate2::write::GzEncoder::new(
                            std::mem::take(&mut self.out),
                            flate2::Compression::fast(),
                        );
                        gz.write_all(&self.raw).map_err(|e| format!("gzip: {e}"))?;
                        self.out = gz.finish().map_err(|e| format!("gzip: {e}"))?;
                        (Bytes::copy_from_slice(&self.out), Some("gzip"))
                    }
                };
                let body = Body {
                    bytes,
                    content_type: "application/json",
                    content_encoding,
                    entries: batch.len(),
                };
                self.shrink();
                Ok(body)
            }
        }
    }

    /// Keeps the scratch buffers from pinning memory after one huge batch.
    fn shrink(&mut self) {
        const KEEP: usize = 8 << 20;
        for b in [&mut self.raw, &mut self.out] {
            if b.capacity() > KEEP {
                *b = Vec::new();
            }
        }
    }
}

/// Bytes snappy compresses as one block (its `MAX_BLOCK_SIZE`).
const BLOCK: usize = 1 << 16;

/// Snappy's block format, written a block at a time as the protobuf
/// encoder fills the buffer: the request's length as a varint, then each
/// 64 KiB block's compressed elements. `snap` compresses a whole buffer
/// exactly so, block by block, so the body is byte-identical to
/// compressing the whole request at once; but the request is never held
/// whole (nor a worst-case-sized output for it): the encoder's scratch is
/// a block of protobuf and a block of snappy, and the body is the one
/// allocation sent. At 5,000 streams a 1 MiB batch of lines makes a
/// 2.4 MB request: 5.3 MB of scratch kept between batches before.
struct SnappyBlocks<'a> {
    snappy: &'a mut snap::raw::Encoder,
    block: &'a mut Vec<u8>,
    body: Vec<u8>,
    err: Option<snap::Error>,
}

impl super::proto::Pieces for SnappyBlocks<'_> {
    const PIECE: usize = BLOCK;

    fn begin(&mut self, total: usize, buf: &mut Vec<u8>) {
        // A block and an entry of up to an eighth of one.
        crate::memory::reserve_snug(buf, BLOCK + BLOCK / 8);
        // Room for the worst case, kept (see `Encoder::encode`): the tail
        // that is not written is never touched, so never resident.
        self.body = Vec::with_capacity(snap::raw::max_compress_len(total));
        prost::encoding::encode_varint(total as u64, &mut self.body);
        let max = snap::raw::max_compress_len(BLOCK);
        if self.block.len() < max {
            self.block.resize(max, 0);
        }
    }

    fn take(&mut self, buf: &mut Vec<u8>, last: bool) {
        let mut done = 0;
        for block in buf.chunks(BLOCK) {
            if block.len() < BLOCK && !last {
                break;
            }
            match self.snappy.compress(block, self.block) {
                Ok(n) => {
                    // Each call starts with the block's own length: the
                    // body has the request's.
                    let header = prost::encoding::encoded_len_varint(block.len() as u64);
                    self.body.extend_from_slice(&self.block[header..n]);
                }
                Err(e) => self.err = self.err.take().or(Some(e)),
            }
            done += block.len();
        }
        buf.drain(..done);
    }
}

/// Appends Loki's JSON push body for `batch` to `buf`.
pub fn write_json(batch: &Batch, buf: &mut Vec<u8>) -> serde_json::Result<()> {
    buf.extend_from_slice(b"{\"streams\":[");
    for (si, s) in batch.streams().iter().enumerate() {
        if si > 0 {
            buf.push(b',');
        }
        buf.extend_from_slice(b"{\"stream\":{");
        for (i, (k, v)) in s.key.public().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            serde_json::to_writer(&mut *buf, k)?;
            buf.push(b':');
            serde_json::to_writer(&mut *buf, v)?;
        }
        buf.extend_from_slice(b"},\"values\":[");
        for (ei, e) in s.entries.iter().enumerate() {
            if ei > 0 {
                buf.push(b',');
            }
            // Timestamps are strings of Unix nanoseconds.
            let _ = write!(buf, "[\"{}\",", e.timestamp.nanos());
            serde_json::to_writer(&mut *buf, e.line.as_str())?;
            if !e.metadata.is_empty() {
                buf.extend_from_slice(b",{");
                for (i, (k, v)) in e.metadata.iter().enumerate() {
                    if i > 0 {
                        buf.push(b',');
                    }
                    serde_json::to_writer(&mut *buf, k)?;
                    buf.push(b':');
                    serde_json::to_writer(&mut *buf, v)?;
                }
                buf.push(b'}');
            }
            buf.push(b']');
        }
        buf.extend_from_slice(b"]}");
    }
    buf.extend_from_slice(b"]}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ack::Ack;
    use crate::entry::{Entry, Timestamp};
    use crate::labels::LabelSet;
    use crate::sink::batch::StreamKey;
    use crate::sink::proto::PushRequest;
    use prost::Message;
    use std::io::Read;
    use std::time::Instant;

    fn sample() -> Batch {
        let a = StreamKey::new(LabelSet::new([
            ("app", "web"),
            ("ns", "x\"y\\z\n"),
            ("__path__", "/p"),
        ]));
        let b = StreamKey::new(LabelSet::new([("app", "db")]));
        let mut batch = Batch::new(Some("t".into()), Instant::now());
        let mk = |ts: i64, line: &str, md: &[(&str, &str)]| {
            let mut e = Entry::new(LabelSet::empty(), Timestamp(ts), line.into(), Ack::none());
            e.metadata = crate::entry::meta_pairs(md);
            e
        };
        batch.add(&a, mk(1_570_818_238_000_000_000, "first \"q\" é", &[]));
        batch.add(
            &b,
            mk(5, "db line", &[("trace_id", "4bf9"), ("span_id", "00f0")]),
        );
        batch.add(&a, mk(1_570_818_238_000_000_001, "second\ttab\u{1}", &[]));
        batch.add(&a, mk(-1_500_000_000, "", &[]));
        batch
    }

    #[test]
    fn protobuf_snappy_round_trip() {
        let batch = sample();
        let mut enc = Encoder::new(PushEncoding::Protobuf, Compression::Gzip);
        let body = enc.encode(&batch).unwrap();
        assert_eq!(body.content_type, "application/x-protobuf");
        assert_eq!(body.content_encoding, None);
        assert_eq!(body.entries, 4);
        let raw = snap::raw::Decoder::new()
            .decompress_vec(&body.bytes)
            .unwrap();
        let req = PushRequest::decode(&raw[..]).unwrap();
        assert_eq!(req.streams.len(), 2);
        let s0 = &req.streams[0];
        assert_eq!(s0.labels, r#"{app="web", ns="x\"y\\z\n"}"#);
        let lines: Vec<&str> = s0.entries.iter().map(|e| e.line.as_str()).collect();
        assert_eq!(lines, vec!["first \"q\" é", "second\ttab\u{1}", ""]);
        let ts = s0.entries[1].timestamp.unwrap();
        assert_eq!((ts.seconds, ts.nanos), (1_570_818_238, 1));
        let ts = s0.entries[2].timestamp.unwrap();
        assert_eq!((ts.seconds, ts.nanos), (-2, 500_000_000));
        let s1 = &req.streams[1];
        assert_eq!(s1.labels, r#"{app="db"}"#);
        let md: Vec<(&str, &str)> = s1.entries[0]
            .structured_metadata
            .iter()
            .map(|p| (p.name.as_str(), p.value.as_str()))
            .collect();
        assert_eq!(md, vec![("trace_id", "4bf9"), ("span_id", "00f0")]);
        // Re-encoding with the reused buffers is byte-identical.
        let again = enc.encode(&batch).unwrap();
        assert_eq!(again.bytes, body.bytes);
    }

    /// The output buffer is kept at its largest size between batches: a
    /// small batch after a big one (and a JSON one after both) must come out
    /// exactly as a fresh encoder makes it, with nothing of the last one.
    #[test]
    fn a_small_batch_after_a_big_one_encodes_exactly() {
        let key = StreamKey::new(LabelSet::new([("app", "web")]));
        let mut big = Batch::new(None, Instant::now());
        for i in 0..2_000 {
            let line = format!("{i:08} incompressible-ish {}", i * 7919 % 104_729);
            big.add(
                &key,
                Entry::new(LabelSet::empty(), Timestamp(i), line.into(), Ack::none()),
            );
        }
        let small = sample();
        let mut enc = Encoder::new(PushEncoding::Protobuf, Compression::Gzip);
        let b = enc.encode(&big).unwrap();
        let s = enc.encode(&small).unwrap();
        assert!(b.bytes.len() > 4 * s.bytes.len());
        let fresh = Encoder::new(PushEncoding::Protobuf, Compression::Gzip)
            .encode(&small)
            .unwrap();
        assert_eq!(s.bytes, fresh.bytes);
        let raw = snap::raw::Decoder::new().decompress_vec(&s.bytes).unwrap();
        assert_eq!(PushRequest::decode(&raw[..]).unwrap().streams.len(), 2);
        let mut json = Encoder::new(PushEncoding::Json, Compression::Gzip);
        json.encode(&big).unwrap();
        let j = json.encode(&small).unwrap();
        let fresh = Encoder::new(PushEncoding::Json, Compression::Gzip)
            .encode(&small)
            .unwrap();
        assert_eq!(json_of(&j), json_of(&fresh));
    }

    /// The body is written a 64 KiB block at a time, never from the whole
    /// request: it must be byte for byte what snappy makes of the whole
    /// request at once — below one block, across many, at and around block
    /// edges, and with one line longer than several blocks.
    #[test]
    fn snappy_a_block_at_a_time_is_snappy_of_the_whole_request() {
        let keys: Vec<StreamKey> = (0..7)
            .map(|i| StreamKey::new(LabelSet::new([("app", format!("a{i}").as_str())])))
            .collect();
        let mut enc = Encoder::new(PushEncoding::Protobuf, Compression::None);
        let mut seen_edge = false;
        let mut longest = 0;
        for (n, long) in [
            (0, 0),
            (1, 0),
            (300, 0),
            (301, 0),
            (1_000, 0),
            (5_000, 0),
            (3, 300_000),
            (900, 200_000),
        ] {
            let mut batch = Batch::new(None, Instant::now());
            for i in 0..n {
                let line = format!("{i:06} {}", "x".repeat(i % 300));
                let e = Entry::new(
                    LabelSet::empty(),
                    Timestamp(i as i64),
                    line.into(),
                    Ack::none(),
                );
                batch.add(&keys[i % keys.len()], e);
            }
            if long > 0 {
                let line: String = (0..long)
                    .map(|i| char::from(b'a' + (i * 7 % 26) as u8))
                    .collect();
                let e = Entry::new(LabelSet::empty(), Timestamp(1), line.into(), Ack::none());
                batch.add(&keys[0], e);
            }
            let mut raw = Vec::new();
            super::super::proto::encode_request(&batch, &mut raw);
            seen_edge |= raw.len() > BLOCK;
            let whole = snap::raw::Encoder::new().compress_vec(&raw).unwrap();
            let body = enc.encode(&batch).unwrap();
            assert_eq!(body.bytes.len(), whole.len(), "{n} lines, long {long}");
            assert!(body.bytes[..] == whole[..], "{n} lines, long {long}");
            // Kept across batches: bounded by the longest entry met so far.
            longest = longest.max(long);
            let bound = if longest == 0 {
                BLOCK * 3 / 2
            } else {
                2 * (BLOCK + longest)
            };
            assert!(
                enc.raw.capacity() <= bound,
                "the request is never held whole"
            );
            assert!(long > 0 || raw.len() <= BLOCK || enc.raw.capacity() < raw.len());
        }
        assert!(seen_edge);
    }

    fn json_of(body: &Body) -> serde_json::Value {
        let text = match body.content_encoding {
            Some("gzip") => {
                let mut s = String::new();
                flate2::read::GzDecoder::new(&body.bytes[..])
                    .read_to_string(&mut s)
                    .unwrap();
                s
            }
            None => String::from_utf8(body.bytes.to_vec()).unwrap(),
            Some(other) => panic!("unexpected encoding {other}"),
        };
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn json_round_trip_plain_and_gzip() {
        let batch = sample();
        for (c, ce) in [(Compression::None, None), (Compression::Gzip, Some("gzip"))] {
            let mut enc = Encoder::new(PushEncoding::Json, c);
            let body = enc.encode(&batch).unwrap();
            assert_eq!(body.content_type, "application/json");
            assert_eq!(body.content_encoding, ce);
            let v = json_of(&body);
            let expected = serde_json::json!({"streams": [
                {"stream": {"app": "web", "ns": "x\"y\\z\n"},
                 "values": [["1570818238000000000", "first \"q\" é"],
                            ["1570818238000000001", "second\ttab\u{1}"],
                            ["-1500000000", ""]]},
                {"stream": {"app": "db"},
                 "values": [["5", "db line", {"trace_id": "4bf9", "span_id": "00f0"}]]}
            ]});
            assert_eq!(v, expected);
            let again = enc.encode(&batch).unwrap();
            assert_eq!(again.bytes, body.bytes);
        }
    }

    #[test]
    fn empty_batch_encodes() {
        let batch = Batch::new(None, Instant::now());
        let mut enc = Encoder::new(PushEncoding::Json, Compression::None);
        let v = json_of(&enc.encode(&batch).unwrap());
        assert_eq!(v, serde_json::json!({"streams": []}));
        let mut enc = Encoder::new(PushEncoding::Protobuf, Compression::None);
        let body = enc.encode(&batch).unwrap();
        let raw = snap::raw::Decoder::new()
            .decompress_vec(&body.bytes)
            .unwrap();
        assert!(PushRequest::decode(&raw[..]).unwrap().streams.is_empty());
    }
}
