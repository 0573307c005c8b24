//! The pure core of the fake Loki receiver: one push request in, what Loki
//! would answer and store out ([`process_push`]).
//!
//! Owns: tenant validation (dskit), `Content-Encoding` handling (raw DEFLATE
//! for `deflate`, as Go's `flate.NewReader`), `Content-Type` parsing (Go's
//! `mime.ParseMediaType`), the protobuf schema ([`proto`], independent of
//! tailtrace's encoder) and JSON decoding, and the distributor's validation
//! with partial success and `GroupedErrors`-style messages.
//!
//! Included by tests/support/receiver.rs as `receiver::push`; its public items
//! are re-exported there.
//!
//! Must never: do I/O, panic on input, or accept what Loki rejects.

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::time::Duration;

use hyper::header::{HeaderMap, CONTENT_ENCODING, CONTENT_TYPE};

use super::selector::{parse_selector, render_labels};
use super::{Options, Received};

/// Loki's default `distributor.max_decompressed_size` (5000 MiB).
pub const MAX_DECOMPRESSED_SIZE: usize = 5000 << 20;
/// Loki's default `max_label_names_per_series`.
pub const MAX_LABEL_NAMES_PER_SERIES: usize = 15;
/// Loki's default `max_label_name_length`.
pub const MAX_LABEL_NAME_LENGTH: usize = 1024;
/// Loki's default `max_label_value_length`.
pub const MAX_LABEL_VALUE_LENGTH: usize = 2048;
/// Loki's default `max_structured_metadata_size` (64 KiB).
pub const MAX_STRUCTURED_METADATA_SIZE: usize = 64 << 10;
/// Loki's default `max_structured_metadata_entries_count`.
pub const MAX_STRUCTURED_METADATA_COUNT: usize = 128;
/// Loki's `validation.MissingStreamsErrorMsg` (answered with 422).
pub const MISSING_STREAMS_MSG: &str = "error at least one valid stream is required for ingestion";
/// Loki's `validation.MissingLabelsErrorMsg`.
pub const MISSING_LABELS_MSG: &str = "error at least one label pair is required per stream";

/// The headers of a push that matter to Loki (`None` = header absent).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PushMeta {
    pub path: String,
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub org_id: Option<String>,
    /// Every header as sent (names lower-case), for tests that check
    /// credentials (`authorization`, `proxy-authorization`, custom ones).
    pub headers: Vec<(String, String)>,
}

impl PushMeta {
    pub fn from_headers(path: &str, h: &HeaderMap) -> PushMeta {
        let get = |name: &str| {
            h.get(name)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        };
        PushMeta {
            path: path.to_owned(),
            content_type: get(CONTENT_TYPE.as_str()),
            content_encoding: get(CONTENT_ENCODING.as_str()),
            org_id: get("x-scope-orgid"),
            headers: h
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
        }
    }
}

/// What Loki would answer and store for one push.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushOutcome {
    pub status: u16,
    /// Error text (without the trailing newline the server adds).
    pub error: Option<String>,
    pub tenant: Option<String>,
    /// Entries decoded from the body.
    pub decoded: usize,
    pub accepted: Vec<Received>,
}

impl PushOutcome {
    fn fail(status: u16, msg: impl Into<String>) -> PushOutcome {
        PushOutcome {
            status,
            error: Some(msg.into()),
            tenant: None,
            decoded: 0,
            accepted: Vec::new(),
        }
    }
}

/// A stream as decoded, before validation.
#[derive(Clone, Debug, PartialEq, Eq)]
struct RawStream {
    labels: Vec<u8>,
    entries: Vec<RawEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct RawEntry {
    ts_ns: i64,
    line: Vec<u8>,
    metadata: Vec<(String, String)>,
}

/// Decodes and validates one push exactly as Loki's distributor would, at
/// wall-clock time `now_ns`.
pub fn process_push(opts: &Options, meta: &PushMeta, body: &[u8], now_ns: i64) -> PushOutcome {
    // Tenant (dskit middleware, then tenant.TenantID in the push handler).
    let tenant = match meta.org_id.as_deref() {
        Some(t) if !t.is_empty() => {
            if let Err(e) = validate_tenant(t) {
                return PushOutcome::fail(400, e);
            }
            t.to_owned()
        }
        _ if opts.auth_enabled => return PushOutcome::fail(401, "no org id"),
        _ => "fake".to_owned(),
    };

    // Content-Encoding (Go's Header.Get: exact, case-sensitive value).
    let encoding = meta.content_encoding.as_deref().unwrap_or("");
    if !matches!(encoding, "" | "snappy" | "gzip" | "deflate") {
        return PushOutcome::fail(400, format!("Content-Encoding {encoding:?} not supported"));
    }
    let media = match parse_media_type(meta.content_type.as_deref().unwrap_or("")) {
        Ok(m) => m,
        Err(e) => return PushOutcome::fail(400, e),
    };
    let decompressed;
    let data: &[u8] = match encoding {
        "gzip" => {
            let r = flate2::read::GzDecoder::new(body);
            match read_limited(r) {
                Ok(d) => {
                    decompressed = d;
                    &decompressed
                }
                Err(o) => return o,
            }
        }
        "deflate" => {
            // Go's flate.NewReader: raw DEFLATE (RFC 1951), not zlib.
            let r = flate2::read::DeflateDecoder::new(body);
            match read_limited(r) {
                Ok(d) => {
                    decompressed = d;
                    &decompressed
                }
                Err(o) => return o,
            }
        }
        _ => body,
    };

    let streams = if media == "application/json" {
        match decode_json(data) {
            Ok(s) => s,
            Err(e) => return PushOutcome::fail(400, e),
        }
    } else {
        match decode_protobuf(data) {
            Ok(s) => s,
            Err(o) => return o,
        }
    };
    let decoded: usize = streams.iter().map(|s| s.entries.len()).sum();

    // push.go: every stream's labels must parse, or the whole request fails.
    let mut parsed = Vec::with_capacity(streams.len());
    for s in &streams {
        match parse_selector(&s.labels) {
            Ok(l) => parsed.push(l),
            Err(e) => {
                let mut o = PushOutcome::fail(400, format!("couldn't parse labels: {e}"));
                o.decoded = decoded;
                return o;
            }
        }
    }
    if streams.is_empty() {
        return PushOutcome::fail(422, MISSING_STREAMS_MSG);
    }

    // Distributor: per-stream and per-entry validation, partial success.
    let mut errors = GroupedErrors::default();
    let mut accepted = Vec::new();
    for (s, pairs) in streams.iter().zip(parsed) {
        if s.entries.is_empty() {
            continue;
        }
        let canonical = render_labels(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        if let Err(e) = validate_labels(&pairs, &canonical) {
            errors.add(e);
            continue;
        }
        let labels: BTreeMap<String, String> = pairs.into_iter().collect();
        let labels_raw = String::from_utf8_lossy(&s.labels).into_owned();
        for e in &s.entries {
            if let Err(msg) = validate_entry(opts, &canonical, e, now_ns) {
                errors.add(msg);
                continue;
            }
            let valid_utf8 = std::str::from_utf8(&e.line).is_ok();
            accepted.push(Received {
                tenant: tenant.clone(),
                labels: labels.clone(),
                labels_raw: labels_raw.clone(),
                ts_ns: e.ts_ns,
                line: String::from_utf8_lossy(&e.line).into_owned(),
                line_bytes: e.line.clone(),
                valid_utf8,
                metadata: e.metadata.clone(),
            });
        }
    }
    let (status, error) = match errors.message() {
        Some(m) => (400, Some(m)),
        None => (204, None),
    };
    PushOutcome {
        status,
        error,
        tenant: Some(tenant),
        decoded,
        accepted,
    }
}

fn read_limited(r: impl Read) -> Result<Vec<u8>, PushOutcome> {
    let mut out = Vec::new();
    let limit = MAX_DECOMPRESSED_SIZE as u64;
    match r.take(limit + 1).read_to_end(&mut out) {
        Ok(n) if n as u64 > limit => Err(PushOutcome::fail(
            413,
            format!("decompressed message size too large (limit: {limit} bytes)"),
        )),
        Ok(_) => Ok(out),
        Err(e) => Err(PushOutcome::fail(400, format!("decompressing body: {e}"))),
    }
}

/// dskit's `tenant.ValidTenantID`, plus `TenantID`'s refusal of `a|b`.
pub fn validate_tenant(t: &str) -> Result<(), String> {
    let parts: Vec<&str> = t.split('|').collect();
    for p in &parts {
        if p.len() > 150 {
            return Err("tenant ID is too long: max 150 characters".into());
        }
        if let Some(c) = p.chars().find(|c| !tenant_char_ok(*c)) {
            return Err(format!(
                "tenant ID '{p}' contains unsupported character '{c}'"
            ));
        }
        if *p == "." || *p == ".." {
            return Err("tenant ID is '.' or '..'".into());
        }
    }
    if parts.len() > 1 {
        return Err("multiple org IDs present".into());
    }
    Ok(())
}

fn tenant_char_ok(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '!' | '-' | '_' | '.' | '*' | '\'' | '(' | ')')
}

/// Go's `mime.ParseMediaType`, returning the lower-cased media type.
pub fn parse_media_type(v: &str) -> Result<String, String> {
    let (base, mut rest) = match v.find(';') {
        Some(i) => (&v[..i], &v[i..]),
        None => (v, ""),
    };
    let mt = base.trim().to_lowercase();
    let (typ, after) = consume_token(&mt);
    if typ.is_empty() {
        return Err("mime: no media type".into());
    }
    if !after.is_empty() {
        let Some(sub) = after.strip_prefix('/') else {
            return Err("mime: expected slash after first token".into());
        };
        let (subtype, tail) = consume_token(sub);
        if subtype.is_empty() {
            return Err("mime: expected token after slash".into());
        }
        if !tail.is_empty() {
            return Err("mime: unexpected content after media subtype".into());
        }
    }
    let mut seen = HashSet::new();
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            break;
        }
        match consume_media_param(rest) {
            Some((key, r)) => {
                if !seen.insert(key) {
                    return Err("mime: duplicate parameter name".into());
                }
                rest = r;
            }
            None if rest.trim() == ";" => break,
            None => return Err("mime: invalid media parameter".into()),
        }
    }
    Ok(mt)
}

fn is_token_char(c: char) -> bool {
    c > ' ' && c < '\x7f' && !"()<>@,;:\\\"/[]?=".contains(c)
}

fn consume_token(s: &str) -> (&str, &str) {
    let end = s.find(|c: char| !is_token_char(c)).unwrap_or(s.len());
    (&s[..end], &s[end..])
}

/// `; key=value` → (lower-cased key, rest), or None on a malformed parameter.
fn consume_media_param(v: &str) -> Option<(String, &str)> {
    let rest = v.trim_start().strip_prefix(';')?.trim_start();
    let (key, rest) = consume_token(rest);
    if key.is_empty() {
        return None;
    }
    let rest = rest.trim_start().strip_prefix('=')?.trim_start();
    let rest = if let Some(q) = rest.strip_prefix('"') {
        let mut chars = q.char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    end = Some(i + 1);
                    break;
                }
                '\\' => {
                    chars.next();
                }
                _ => {}
            }
        }
        &q[end?..]
    } else {
        let (value, r) = consume_token(rest);
        if value.is_empty() {
            return None;
        }
        r
    };
    Some((key.to_lowercase(), rest))
}

// ----- protobuf -----

/// Loki's `push.proto` (package logproto), written independently of tailtrace.
/// String fields are `bytes` here because Loki's gogo decoder does not check
/// UTF-8 (it stores invalid lines as they are); the wire format is identical.
pub mod proto {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PushRequest {
        #[prost(message, repeated, tag = "1")]
        pub streams: Vec<StreamAdapter>,
        #[prost(bytes = "vec", tag = "2")]
        pub format: Vec<u8>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StreamAdapter {
        #[prost(bytes = "vec", tag = "1")]
        pub labels: Vec<u8>,
        #[prost(message, repeated, tag = "2")]
        pub entries: Vec<EntryAdapter>,
        #[prost(uint64, tag = "3")]
        pub hash: u64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct EntryAdapter {
        #[prost(message, optional, tag = "1")]
        pub timestamp: Option<Timestamp>,
        #[prost(bytes = "vec", tag = "2")]
        pub line: Vec<u8>,
        #[prost(message, repeated, tag = "3")]
        pub structured_metadata: Vec<LabelPairAdapter>,
        #[prost(message, repeated, tag = "4")]
        pub parsed: Vec<LabelPairAdapter>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LabelPairAdapter {
        #[prost(bytes = "vec", tag = "1")]
        pub name: Vec<u8>,
        #[prost(bytes = "vec", tag = "2")]
        pub value: Vec<u8>,
    }

    /// google.protobuf.Timestamp
    #[derive(Clone, Copy, PartialEq, prost::Message)]
    pub struct Timestamp {
        #[prost(int64, tag = "1")]
        pub seconds: i64,
        #[prost(int32, tag = "2")]
        pub nanos: i32,
    }

    impl Timestamp {
        pub fn from_ns(ns: i64) -> Timestamp {
            Timestamp {
                seconds: ns.div_euclid(1_000_000_000),
                nanos: ns.rem_euclid(1_000_000_000) as i32,
            }
        }
    }

    /// A stream with these labels and entries; for tests.
    pub fn stream(labels: &str, entries: Vec<EntryAdapter>) -> StreamAdapter {
        StreamAdapter {
            labels: labels.as_bytes().to_vec(),
            entries,
            hash: 0,
        }
    }

    /// An entry with structured metadata `md`; for tests.
    pub fn entry(ts_ns: i64, line: impl AsRef<[u8]>, md: &[(&str, &str)]) -> EntryAdapter {
        EntryAdapter {
            timestamp: Some(Timestamp::from_ns(ts_ns)),
            line: line.as_ref().to_vec(),
            structured_metadata: md
                .iter()
                .map(|(k, v)| LabelPairAdapter {
                    name: k.as_bytes().to_vec(),
                    value: v.as_bytes().to_vec(),
                })
                .collect(),
            parsed: Vec::new(),
        }
    }

    /// A request holding `streams`; for tests.
    pub fn request(streams: Vec<StreamAdapter>) -> PushRequest {
        PushRequest {
            streams,
            format: Vec::new(),
        }
    }

    /// `snappy_block(proto(req))`, what Promtail sends.
    pub fn encode_snappy(req: &PushRequest) -> Vec<u8> {
        use prost::Message;
        let raw = req.encode_to_vec();
        snap::raw::Encoder::new()
            .compress_vec(&raw)
            .unwrap_or_default()
    }
}

fn decode_protobuf(data: &[u8]) -> Result<Vec<RawStream>, PushOutcome> {
    use prost::Message;
    // util.ParseProtoReader(..., RawSnappy): the body is always snappy-block.
    let len = snap::raw::decompress_len(data)
        .map_err(|e| PushOutcome::fail(400, format!("snappy: corrupt input ({e})")))?;
    if len > MAX_DECOMPRESSED_SIZE {
        return Err(PushOutcome::fail(
            413,
            format!("received message larger than max ({len} vs {MAX_DECOMPRESSED_SIZE})"),
        ));
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(data)
        .map_err(|e| PushOutcome::fail(400, format!("snappy: corrupt input ({e})")))?;
    let req = proto::PushRequest::decode(raw.as_slice())
        .map_err(|e| PushOutcome::fail(400, format!("proto: {e}")))?;
    let mut out = Vec::with_capacity(req.streams.len());
    for s in req.streams {
        let mut entries = Vec::with_capacity(s.entries.len());
        for e in s.entries {
            let ts_ns = match e.timestamp {
                Some(t) => timestamp_ns(t).map_err(|m| PushOutcome::fail(400, m))?,
                None => 0,
            };
            let metadata = e
                .structured_metadata
                .iter()
                .map(|p| (clean_utf8(&p.name), clean_utf8(&p.value)))
                .collect();
            entries.push(RawEntry {
                ts_ns,
                line: e.line,
                metadata,
            });
        }
        out.push(RawStream {
            labels: s.labels,
            entries,
        });
    }
    Ok(out)
}

/// gogo's `StdTimeUnmarshal` range checks, then nanoseconds since the epoch.
fn timestamp_ns(t: proto::Timestamp) -> Result<i64, String> {
    const MIN_SECONDS: i64 = -62_135_596_800; // 0001-01-01
    const MAX_SECONDS: i64 = 253_402_300_800; // 10000-01-01
    if !(0..1_000_000_000).contains(&t.nanos) {
        return Err(format!("timestamp: {t:?}: nanos not in range [0, 1e9)"));
    }
    if !(MIN_SECONDS..MAX_SECONDS).contains(&t.seconds) {
        return Err(format!("timestamp: {t:?}: seconds out of range"));
    }
    Ok(t.seconds
        .saturating_mul(1_000_000_000)
        .saturating_add(i64::from(t.nanos)))
}

/// Loki strips invalid UTF-8 from structured metadata values.
fn clean_utf8(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => s.to_owned(),
        Err(_) => String::from_utf8_lossy(b).replace('\u{FFFD}', ""),
    }
}

// ----- JSON -----

fn decode_json(data: &[u8]) -> Result<Vec<RawStream>, String> {
    use serde_json::Value;
    let v: Value = serde_json::from_slice(data).map_err(|e| format!("json: {e}"))?;
    let Value::Object(top) = v else {
        return Err("json: PushRequest must be an object".into());
    };
    let streams = match top.get("streams") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(_) => return Err("json: streams must be an array".into()),
    };
    let mut out = Vec::with_capacity(streams.len());
    for s in streams {
        let Value::Object(s) = s else {
            return Err("json: each stream must be an object".into());
        };
        let mut labels = BTreeMap::new();
        match s.get("stream") {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => {
                for (k, v) in m {
                    let Value::String(v) = v else {
                        return Err(format!("json: label {k:?} must be a string"));
                    };
                    labels.insert(k.as_str(), v.as_str());
                }
            }
            Some(_) => return Err("json: stream must be an object".into()),
        }
        // loghttp.LabelSet.String(): names raw, values Go-quoted, sorted.
        let labels = render_labels(labels.into_iter()).into_bytes();
        let mut entries = Vec::new();
        match s.get("values") {
            None | Some(Value::Null) => {}
            Some(Value::Array(vals)) => {
                for v in vals {
                    entries.push(json_entry(v)?);
                }
            }
            Some(_) => return Err("json: values must be an array".into()),
        }
        out.push(RawStream { labels, entries });
    }
    Ok(out)
}

fn json_entry(v: &serde_json::Value) -> Result<RawEntry, String> {
    use serde_json::Value;
    let Value::Array(a) = v else {
        return Err("json: each value must be an array".into());
    };
    if a.len() > 3 {
        return Err("json: error reading entry: array must contain 2 or 3 values".into());
    }
    let ts = match a.first() {
        Some(Value::String(s)) => s
            .parse::<i64>()
            .map_err(|e| format!("json: error reading entry timestamp {s:?}: {e}"))?,
        Some(_) => return Err("json: timestamp must be a string".into()),
        None => return Err("json: entry has no timestamp".into()),
    };
    let line = match a.get(1) {
        Some(Value::String(s)) => s.as_bytes().to_vec(),
        Some(_) => return Err("json: line must be a string".into()),
        None => return Err("json: entry has no line".into()),
    };
    let mut metadata = Vec::new();
    match a.get(2) {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                let Value::String(v) = v else {
                    return Err(format!("json: structured metadata {k:?} must be a string"));
                };
                metadata.push((k.clone(), v.clone()));
            }
        }
        Some(_) => return Err("json: structured metadata must be an object".into()),
    }
    Ok(RawEntry {
        ts_ns: ts,
        line,
        metadata,
    })
}

// ----- validation -----

/// util.GroupedErrors: distinct messages in first-seen order joined by "; ",
/// each prefixed "N errors like: " when there is more than one.
#[derive(Default)]
struct GroupedErrors {
    msgs: Vec<(String, usize)>,
}

impl GroupedErrors {
    fn add(&mut self, m: String) {
        match self.msgs.iter_mut().find(|(x, _)| *x == m) {
            Some((_, n)) => *n += 1,
            None => self.msgs.push((m, 1)),
        }
    }
    fn message(&self) -> Option<String> {
        if self.msgs.is_empty() {
            return None;
        }
        let many = self.msgs.len() > 1;
        let parts: Vec<String> = self
            .msgs
            .iter()
            .map(|(m, n)| {
                if many || *n > 1 {
                    format!("{n} errors like: {m}")
                } else {
                    m.clone()
                }
            })
            .collect();
        Some(parts.join("; "))
    }
}

/// distributor `ValidateLabels` on parsed (sorted, non-empty-valued) labels.
fn validate_labels(pairs: &[(String, String)], canonical: &str) -> Result<(), String> {
    if pairs.is_empty() {
        return Err(MISSING_LABELS_MSG.into());
    }
    let n = pairs.iter().filter(|(k, _)| k != "service_name").count();
    if n > MAX_LABEL_NAMES_PER_SERIES {
        return Err(format!(
            "entry for stream '{canonical}' has {n} label names; limit {MAX_LABEL_NAMES_PER_SERIES}"
        ));
    }
    let mut last = "";
    for (k, v) in pairs {
        if k.len() > MAX_LABEL_NAME_LENGTH {
            return Err(format!(
                "stream '{canonical}' has label name too long: '{k}'"
            ));
        }
        if v.len() > MAX_LABEL_VALUE_LENGTH {
            return Err(format!(
                "stream '{canonical}' has label value too long: '{v}'"
            ));
        }
        if k == last {
            return Err(format!(
                "stream '{canonical}' has duplicate label name: '{k}'"
            ));
        }
        last = k;
    }
    Ok(())
}

/// distributor `ValidateEntry`.
fn validate_entry(
    opts: &Options,
    canonical: &str,
    e: &RawEntry,
    now_ns: i64,
) -> Result<(), String> {
    if let Some(age) = opts.reject_old_samples_max_age {
        let oldest = now_ns.saturating_sub(duration_ns(age));
        if e.ts_ns < oldest {
            return Err(format!(
                "entry for stream '{canonical}' has timestamp too old: {}, oldest acceptable timestamp is: {}",
                e.ts_ns, oldest
            ));
        }
    }
    if let Some(grace) = opts.creation_grace_period {
        if e.ts_ns > now_ns.saturating_add(duration_ns(grace)) {
            return Err(format!(
                "entry for stream '{canonical}' has timestamp too new: {}",
                e.ts_ns
            ));
        }
    }
    if opts.max_line_size != 0 && e.line.len() > opts.max_line_size {
        return Err(format!(
            "Max entry size '{}' bytes exceeded for stream '{canonical}' while adding an entry with length '{}' bytes",
            opts.max_line_size,
            e.line.len()
        ));
    }
    if !e.metadata.is_empty() {
        if !opts.allow_structured_metadata {
            return Err(format!(
                "stream '{canonical}' includes structured metadata, but this feature is disallowed. Please see `limits_config.allow_structured_metadata` or contact your Loki administrator to enable it."
            ));
        }
        let size: usize = e.metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
        if size > MAX_STRUCTURED_METADATA_SIZE {
            return Err(format!(
                "stream '{canonical}' has structured metadata too large: '{size}' bytes, limit: '{MAX_STRUCTURED_METADATA_SIZE}' bytes. Please see `limits_config.max_structured_metadata_size` or contact your Loki administrator to increase it."
            ));
        }
        if e.metadata.len() > MAX_STRUCTURED_METADATA_COUNT {
            return Err(format!(
                "stream '{canonical}' has too many structured metadata labels: '{}', limit: '{MAX_STRUCTURED_METADATA_COUNT}'. Please see `limits_config.max_structured_metadata_entries_count` or contact your Loki administrator to increase it.",
                e.metadata.len()
            ));
        }
    }
    Ok(())
}

fn duration_ns(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}
