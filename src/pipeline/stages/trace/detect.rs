//! Finding trace context in a log line: pure byte scanning, no I/O, no
//! regex, no allocation.
//!
//! Owns: [`Detector`] (built once per stage: which [`Formats`] to look for,
//! and the prefilter for them) and [`TraceContext`] (what it found: a trace
//! ID of 32 lowercase hex digits, and a span ID of 16 when the form carries
//! one).
//!
//! # Forms
//! Keys are matched case-insensitively, ignoring `_`, `-` and `.` inside
//! them (`trace_id`, `traceId`, `TraceID`, `trace-id`, `trace.id` are one
//! key). A key is a whole word: the run of `[A-Za-z0-9_.-]` around it, so
//! `xtrace_id=` and `trace_idx=` are not keys; a dotted prefix is allowed
//! (`mdc.trace_id`, `context.trace_id` match `trace_id`). A key is followed
//! by `=`, `=>` or `:` (spaces around it allowed, the key itself possibly
//! quoted, JSON-style), then the value, possibly opened by `"`, `'`, `\"`
//! or `[`. A value must end where the ID does (the next byte is not a
//! letter, digit, `_` or `-`).
//!
//! | format | what is read | trace ID | span ID |
//! |---|---|---|---|
//! | `w3c` | `00-<32 hex>-<16 hex>-<2 hex>` anywhere in the line; the value of a `traceparent` key (any version but `ff`) | the 32 hex | the 16 hex (parent-id) |
//! | `otel` | `trace_id`, `traceId`, `traceID`, `trace.id`, `trace-id`, `otelTraceID`, and ECS nested `{"trace":{"id":…}}` | 32 hex | from `span_id`, `spanId`, `spanID`, `span.id`, `span-id`, `otelSpanID`, `{"span":{"id":…}}`: 16 hex |
//! | `b3` | `X-B3-TraceId` (16 or 32 hex); single `b3: {trace}-{span}[-{sampled}[-{parent}]]` | 16 hex left-padded with zeros | `X-B3-SpanId`; the single header's span |
//! | `jaeger` | `uber-trace-id: {trace}:{span}:{parent}:{flags}` (`:` or `%3A`) | up to 32 hex, left-padded | up to 16 hex, left-padded |
//! | `xray` | `Root=1-<8 hex>-<24 hex>` anywhere (as in `X-Amzn-Trace-Id`) | the 8 and 24 hex joined | `Parent=<16 hex>` in the same header value |
//! | `datadog` | `dd.trace_id`, `{"dd":{"trace_id":…}}`: decimal u64 (string or JSON number), or 32 hex (128-bit ID logging) | the u64 in hex, left-padded to 32 (OpenTelemetry's mapping) | `dd.span_id`: decimal u64 in hex |
//!
//! Every ID is lowercased and validated: the exact length, hex digits only,
//! not all zeros (a Datadog `0` is "no trace"). A bare 32-hex string with no
//! key and no traceparent shape is never taken (UUIDs, hashes, SHAs). A
//! span ID is only taken from the same form as the trace ID (an `otel`
//! trace ID pairs with `span_id` & co., a `b3` one with `X-B3-SpanId`, a
//! `datadog` one with `dd.span_id`).
//!
//! When a line carries several forms, a logger's own correlation fields
//! (`otel`, `datadog` keys) win over propagation headers printed in the
//! line (`traceparent`, `b3`, `uber-trace-id`, X-Ray); among equals, the
//! first in the line wins.
//!
//! # Cost
//! A line is first searched for a few needles in one SIMD pass (Teddy, via
//! `aho-corasick`'s packed searcher): `race`/`RACE` (every key above but
//! `b3` contains it), `b3` and `B3` followed by `:`, `=`, `"` or `'`,
//! `Root=1-`, `00-` — only those the enabled formats need. (So the `b3` key
//! must be followed by its separator or closing quote directly: `b3 : …`
//! is not read.) Needles of three bytes or more matter: Teddy fingerprints
//! three bytes, and `b3` or `00` alone hit on every timestamp and hash
//! (measured: twice the cost per plain line). Lines without a needle cost that one pass; each hit is
//! checked in place (the key around it, the value after it), in time linear
//! in the line (scanning resumes after the key; the JSON lookups around a
//! hit are bounded by [`JSON_SCAN_LIMIT`]).
//!
//! Must never: panic on any input, allocate per line, or report an ID that
//! did not pass validation.

use crate::entry::MetaStr;
use aho_corasick::packed::{Config as PackedConfig, MatchKind as PackedKind, Searcher};
use memchr::memmem;

#[cfg(test)]
mod tests;

/// How far the JSON lookups around a hit (the enclosing object's key, the
/// members of a nested `trace`/`span` object) read, in bytes.
pub const JSON_SCAN_LIMIT: usize = 1024;

/// One trace-context format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    W3c,
    Otel,
    B3,
    Jaeger,
    Xray,
    Datadog,
}

impl Format {
    /// Every format, in the order of their names in [`Format::NAMES`].
    pub const ALL: [Format; 6] = [
        Format::W3c,
        Format::Otel,
        Format::B3,
        Format::Jaeger,
        Format::Xray,
        Format::Datadog,
    ];
    /// The names the `formats` option takes.
    pub const NAMES: [&'static str; 6] = ["w3c", "otel", "b3", "jaeger", "xray", "datadog"];

    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    pub fn parse(name: &str) -> Option<Format> {
        Self::NAMES
            .iter()
            .position(|n| n.eq_ignore_ascii_case(name))
            .map(|i| Self::ALL[i])
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// A set of [`Format`]s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Formats(u8);

impl Formats {
    pub const ALL: Formats = Formats(0b11_1111);
    pub const NONE: Formats = Formats(0);

    pub fn with(self, f: Format) -> Formats {
        Formats(self.0 | f.bit())
    }

    pub fn contains(self, f: Format) -> bool {
        self.0 & f.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl FromIterator<Format> for Formats {
    fn from_iter<I: IntoIterator<Item = Format>>(it: I) -> Self {
        it.into_iter().fold(Formats::NONE, Formats::with)
    }
}

/// Trace context found in a line: a valid trace ID, maybe a span ID.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    trace: [u8; 32],
    span: Option<[u8; 16]>,
    format: Format,
}

impl TraceContext {
    /// 32 lowercase hex digits, not all zero.
    pub fn trace_id(&self) -> &str {
        ascii(&self.trace)
    }

    /// 16 lowercase hex digits, not all zero.
    pub fn span_id(&self) -> Option<&str> {
        self.span.as_ref().map(|s| ascii(s))
    }

    /// [`TraceContext::trace_id`] as structured-metadata text, without
    /// checking the ASCII digits as UTF-8 again.
    pub fn trace_meta(&self) -> MetaStr {
        ascii_meta(&self.trace)
    }

    /// [`TraceContext::span_id`] as structured-metadata text.
    pub fn span_meta(&self) -> Option<MetaStr> {
        self.span.as_ref().map(|s| ascii_meta(s))
    }

    /// The form the trace ID was read from.
    pub fn format(&self) -> Format {
        self.format
    }
}

impl std::fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceContext")
            .field("trace_id", &self.trace_id())
            .field("span_id", &self.span_id())
            .field("format", &self.format)
            .finish()
    }
}

/// The IDs are built from ASCII hex digits only.
fn ascii(b: &[u8]) -> &str {
    std::str::from_utf8(b).unwrap_or_default()
}

/// [`ascii`] as structured-metadata text.
fn ascii_meta(b: &[u8]) -> MetaStr {
    MetaStr::from_utf8(b).unwrap_or_else(|| MetaStr::new(""))
}

/// What a prefilter hit is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Needle {
    /// Part of a key (`race`, `b3`): read the word around it.
    Key,
    /// `Root=1-`: an X-Ray trace ID.
    Root,
    /// `00-`: maybe a traceparent value.
    W3c,
}

/// The multi-needle search: Teddy (SIMD) when the CPU has it, else one
/// `memmem` pass per needle.
enum Prefilter {
    Packed(Searcher),
    Finders(Vec<memmem::Finder<'static>>),
    Nothing,
}

impl Prefilter {
    /// `simd: false` builds the fallback (for tests of it).
    fn new(needles: &[&str], simd: bool) -> Prefilter {
        if needles.is_empty() {
            return Prefilter::Nothing;
        }
        let packed = simd.then(|| {
            PackedConfig::new()
                .match_kind(PackedKind::LeftmostFirst)
                .builder()
                .extend(needles)
                .build()
        });
        match packed.flatten() {
            Some(s) => Prefilter::Packed(s),
            None => Prefilter::Finders(
                needles
                    .iter()
                    .map(|n| memmem::Finder::new(n.as_bytes()).into_owned())
                    .collect(),
            ),
        }
    }

    /// The first needle at or after `from`: (needle index, position).
    #[inline]
    fn find(&self, b: &[u8], from: usize) -> Option<(usize, usize)> {
        if from >= b.len() {
            return None;
        }
        match self {
            Prefilter::Packed(s) => s
                .find_in(
                    b,
                    aho_corasick::Span {
                        start: from,
                        end: b.len(),
                    },
                )
                .map(|m| (m.pattern().as_usize(), m.start())),
            Prefilter::Finders(fs) => fs
                .iter()
                .enumerate()
                .filter_map(|(i, f)| f.find(&b[from..]).map(|p| (i, from + p)))
                .min_by_key(|&(_, p)| p),
            Prefilter::Nothing => None,
        }
    }
}

/// Finds trace context in lines. See the module docs.
pub struct Detector {
    formats: Formats,
    prefilter: Prefilter,
    /// Each needle's kind and (for keys) the length of the key part, by
    /// pattern index.
    needles: Vec<(Needle, usize)>,
    /// For span keys, once a trace ID was found: `pan`, `PAN`.
    span_lower: memmem::Finder<'static>,
    span_upper: memmem::Finder<'static>,
}

impl Default for Detector {
    fn default() -> Self {
        Detector::new(Formats::ALL)
    }
}

/// What kind of key a word is (see [`classify`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Key {
    OtelTrace,
    OtelSpan,
    DdTrace,
    DdSpan,
    B3Trace,
    B3Span,
    B3Single,
    Traceparent,
    Uber,
    /// Object prefixes: only keys when their value is a JSON object.
    TraceObject,
    SpanObject,
    DdObject,
}

/// Normalised keys (lowercase, no `_`, `-`, `.`) and what they are.
const KEYS: &[(&[u8], Key)] = &[
    (b"traceid", Key::OtelTrace),
    (b"spanid", Key::OtelSpan),
    (b"oteltraceid", Key::OtelTrace),
    (b"otelspanid", Key::OtelSpan),
    (b"ddtraceid", Key::DdTrace),
    (b"ddspanid", Key::DdSpan),
    (b"xb3traceid", Key::B3Trace),
    (b"xb3spanid", Key::B3Span),
    (b"b3", Key::B3Single),
    (b"traceparent", Key::Traceparent),
    (b"ubertraceid", Key::Uber),
    (b"trace", Key::TraceObject),
    (b"span", Key::SpanObject),
    (b"dd", Key::DdObject),
];

/// Which span key goes with a trace ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SpanFrom {
    Otel,
    B3,
    Datadog,
}

/// A trace ID found, and how good a find it is.
#[derive(Clone, Copy, Debug)]
struct Cand {
    ctx: TraceContext,
    /// 0: a logger's correlation field; 1: a propagation header.
    rank: u8,
    /// Where to look for the span ID if the form does not carry it.
    span_from: Option<SpanFrom>,
}

impl Cand {
    fn new(trace: [u8; 32], span: Option<[u8; 16]>, format: Format) -> Cand {
        let (rank, span_from) = match (format, span) {
            (Format::Otel, None) => (0, Some(SpanFrom::Otel)),
            (Format::Datadog, None) => (0, Some(SpanFrom::Datadog)),
            (Format::Otel | Format::Datadog, Some(_)) => (0, None),
            (Format::B3, None) => (1, Some(SpanFrom::B3)),
            _ => (1, None),
        };
        Cand {
            ctx: TraceContext {
                trace,
                span,
                format,
            },
            rank,
            span_from,
        }
    }
}

impl Detector {
    /// A detector for `formats`.
    pub fn new(formats: Formats) -> Detector {
        Detector::build(formats, true)
    }

    fn build(formats: Formats, simd: bool) -> Detector {
        // Teddy fingerprints the first three bytes of each needle; shorter
        // needles (`b3`, `00`) would hit on every timestamp and hash, so
        // `b3` comes with what may follow the key.
        let mut needles: Vec<(&str, Needle, usize)> = Vec::new();
        let keyed = [
            Format::Otel,
            Format::Datadog,
            Format::B3,
            Format::Jaeger,
            Format::W3c,
        ];
        if keyed.iter().any(|&f| formats.contains(f)) {
            needles.push(("race", Needle::Key, 4));
            needles.push(("RACE", Needle::Key, 4));
        }
        if formats.contains(Format::B3) {
            for n in ["b3:", "b3=", "b3\"", "b3'", "B3:", "B3=", "B3\"", "B3'"] {
                needles.push((n, Needle::Key, 2));
            }
        }
        if formats.contains(Format::Xray) {
            needles.push(("Root=1-", Needle::Root, 0));
        }
        if formats.contains(Format::W3c) {
            needles.push(("00-", Needle::W3c, 0));
        }
        let patterns: Vec<&str> = needles.iter().map(|(p, _, _)| *p).collect();
        Detector {
            formats,
            prefilter: Prefilter::new(&patterns, simd),
            needles: needles.into_iter().map(|(_, n, len)| (n, len)).collect(),
            span_lower: memmem::Finder::new(b"pan").into_owned(),
            span_upper: memmem::Finder::new(b"PAN").into_owned(),
        }
    }

    pub fn formats(&self) -> Formats {
        self.formats
    }

    /// The trace context `line` carries, if any. See the module docs.
    pub fn detect(&self, line: &str) -> Option<TraceContext> {
        let b = line.as_bytes();
        let mut best: Option<Cand> = None;
        let mut pos = 0;
        while let Some((pat, at)) = self.prefilter.find(b, pos) {
            let (cand, next) = match self.needles.get(pat) {
                Some(&(Needle::Key, len)) => self.key_hit(b, at, len),
                // Headers rank 1: once one is found, only keys can beat it.
                _ if best.is_some() => (None, at + 1),
                Some((Needle::Root, _)) => (self.xray_at(b, at), at + 1),
                Some((Needle::W3c, _)) => (self.w3c_free(b, at), at + 1),
                None => (None, at + 1),
            };
            pos = next.max(at + 1);
            if let Some(c) = cand {
                if best.is_none_or(|b| c.rank < b.rank) {
                    best = Some(c);
                    if c.rank == 0 {
                        break;
                    }
                }
            }
        }
        let mut best = best?;
        if best.ctx.span.is_none() {
            if let Some(from) = best.span_from {
                best.ctx.span = self.find_span(b, from);
            }
        }
        Some(best.ctx)
    }

    /// The trace context in the value of a field named `name` (a stage's
    /// `source`): what [`Detector::detect`] finds in the value, else the
    /// value itself read as the field `name` (`dd.trace_id: 123`), else,
    /// when the whole value is a traceparent or 32 hex digits, that —
    /// naming the field says it holds a trace ID, so this is no guess.
    pub fn detect_field(&self, name: &str, value: &str) -> Option<TraceContext> {
        if let Some(c) = self.detect(value) {
            return Some(c);
        }
        let v = value.trim().trim_matches(|c| c == '"' || c == '\'');
        let b = v.as_bytes();
        match classify(name.as_bytes()) {
            Some(Key::TraceObject | Key::SpanObject | Key::DdObject) | None => {}
            Some(k) => return self.value(k, b, 0, None).map(|c| c.ctx),
        }
        if self.formats.contains(Format::W3c) {
            if let Some(c) = w3c_at(b, 0, true) {
                return Some(c.ctx);
            }
        }
        if self.formats.contains(Format::Otel) && b.len() == 32 {
            let trace = hex_id::<32>(b, 0)?;
            return Some(Cand::new(trace, None, Format::Otel).ctx);
        }
        None
    }

    /// A hit inside a word: is the word a key, and its value an ID?
    /// Returns the find and where to resume (after the word).
    fn key_hit(&self, b: &[u8], at: usize, len: usize) -> (Option<Cand>, usize) {
        let (start, end) = word(b, at, at + len);
        let Some(k) = classify(&b[start..end]) else {
            return (None, end);
        };
        (self.keyed(b, start, end, k), end)
    }

    /// The ID in the value of key `k`, which spans `b[start..end]`.
    fn keyed(&self, b: &[u8], start: usize, end: usize, k: Key) -> Option<Cand> {
        let v = value_start(b, end)?;
        self.value(k, b, v, Some((start, end)))
    }

    /// Reads the value at `v` as key `k`'s. `key`: where the key is in `b`
    /// (for the JSON lookups around it), if it is.
    fn value(&self, k: Key, b: &[u8], v: usize, key: Option<(usize, usize)>) -> Option<Cand> {
        let f = self.formats;
        match k {
            Key::OtelTrace => {
                if f.contains(Format::Otel) {
                    if let Some(t) = hex_id::<32>(b, v) {
                        return Some(Cand::new(t, None, Format::Otel));
                    }
                }
                // `{"dd":{"trace_id":123}}`.
                let (ks, _) = key?;
                if f.contains(Format::Datadog)
                    && b.get(v).is_some_and(u8::is_ascii_digit)
                    && enclosing_key(b, ks).and_then(classify) == Some(Key::DdObject)
                {
                    return dd_trace(b, v);
                }
                None
            }
            Key::DdTrace if f.contains(Format::Datadog) => dd_trace(b, v),
            Key::B3Trace if f.contains(Format::B3) => {
                let t = b3_trace(b, v)?;
                id_end(b, v + t.1).then(|| Cand::new(t.0, None, Format::B3))
            }
            Key::B3Single if f.contains(Format::B3) => b3_single(b, v),
            Key::Traceparent if f.contains(Format::W3c) => w3c_at(b, v, true),
            Key::Uber if f.contains(Format::Jaeger) => jaeger(b, v),
            Key::TraceObject | Key::DdObject => object_members(b, v, |m, mv| {
                let (ks, ke) = key?;
                let k = classify_joined(&b[ks..ke], m)?;
                match k {
                    Key::OtelTrace | Key::DdTrace => self.value(k, b, skip_quote(b, mv), None),
                    _ => None,
                }
            }),
            _ => None,
        }
    }

    /// The span ID for a trace ID found as `from`: the first span key of
    /// that form in the line with a valid value, keys with a lowercase `pan`
    /// (`span_id`, `spanId`) before upper-case ones (`SPAN_ID`). (One
    /// SIMD pass for both cases was tried: it cost more than the two
    /// `memmem` passes on lines of a few hundred bytes.)
    fn find_span(&self, b: &[u8], from: SpanFrom) -> Option<[u8; 16]> {
        for finder in [&self.span_lower, &self.span_upper] {
            let mut pos = 0;
            while let Some(i) = finder.find(&b[pos..]) {
                let at = pos + i;
                let (start, end) = word(b, at, at + 3);
                pos = end.max(at + 1);
                if let Some(s) = self.span_key(b, start, end, from) {
                    return Some(s);
                }
                if pos >= b.len() {
                    break;
                }
            }
        }
        None
    }

    /// The span ID in the value of the word `b[start..end]`, if it is a
    /// span key of form `from`.
    fn span_key(&self, b: &[u8], start: usize, end: usize, from: SpanFrom) -> Option<[u8; 16]> {
        let k = classify(&b[start..end])?;
        let v = value_start(b, end)?;
        match (k, from) {
            (Key::OtelSpan, SpanFrom::Otel) | (Key::B3Span, SpanFrom::B3) => hex_id::<16>(b, v),
            (Key::DdSpan, SpanFrom::Datadog) => dd_span(b, v),
            (Key::OtelSpan, SpanFrom::Datadog) => (enclosing_key(b, start).and_then(classify)
                == Some(Key::DdObject))
            .then(|| dd_span(b, v))
            .flatten(),
            (Key::SpanObject, SpanFrom::Otel) => object_members(b, v, |m, mv| {
                (classify_joined(&b[start..end], m)? == Key::OtelSpan)
                    .then(|| hex_id::<16>(b, skip_quote(b, mv)))
                    .flatten()
            }),
            _ => None,
        }
    }

    /// `Root=1-…` at `at`.
    fn xray_at(&self, b: &[u8], at: usize) -> Option<Cand> {
        if at > 0 && is_word(b[at - 1]) {
            return None;
        }
        let i = at + "Root=1-".len();
        let hi = hex_at::<8>(b, i)?;
        if b.get(i + 8) != Some(&b'-') {
            return None;
        }
        let lo = hex_at::<24>(b, i + 9)?;
        if !id_end(b, i + 33) {
            return None;
        }
        let mut trace = [0u8; 32];
        trace[..8].copy_from_slice(&hi);
        trace[8..].copy_from_slice(&lo);
        if !nonzero(&trace) {
            return None;
        }
        // `Parent=<16 hex>` in the same header value (up to a space or
        // quote, at most 128 bytes away).
        let delim = |c: &u8| matches!(c, b' ' | b'\t' | b'"' | b'\'' | b',');
        let lo = at.saturating_sub(128);
        let hi = b.len().min(at + 128);
        let seg_start = b[lo..at].iter().rposition(delim).map_or(lo, |p| lo + p + 1);
        let seg_end = b[at..hi].iter().position(delim).map_or(hi, |p| at + p);
        let seg = &b[seg_start..seg_end];
        let span = memmem::find_iter(seg, b"Parent=")
            .filter(|&p| p == 0 || seg[p - 1] == b';')
            .find_map(|p| hex_id::<16>(seg, p + 7));
        Some(Cand::new(trace, span, Format::Xray))
    }

    /// `00-…` at `at`, in free text: a traceparent if it has the shape and
    /// stands alone (not inside a longer word).
    fn w3c_free(&self, b: &[u8], at: usize) -> Option<Cand> {
        if at > 0 && is_word(b[at - 1]) {
            return None;
        }
        w3c_at(b, at, false)
    }
}

/// A byte that can be part of a key (or an ID token).
#[inline]
fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.')
}

/// The word containing `b[from..to]`: (start, end).
fn word(b: &[u8], from: usize, to: usize) -> (usize, usize) {
    let start = b[..from]
        .iter()
        .rposition(|&c| !is_word(c))
        .map_or(0, |p| p + 1);
    let end = b[to..]
        .iter()
        .position(|&c| !is_word(c))
        .map_or(b.len(), |p| to + p);
    (start, end)
}

/// What `key` is: itself, or its part after a `.` (`mdc.trace_id`).
fn classify(key: &[u8]) -> Option<Key> {
    let mut start = 0;
    loop {
        if let Some(k) = classify_exact(&key[start..]) {
            return Some(k);
        }
        start += memchr::memchr(b'.', &key[start..])? + 1;
    }
}

/// [`classify`] of `outer.inner` (a member of a nested JSON object).
fn classify_joined(outer: &[u8], inner: &[u8]) -> Option<Key> {
    let mut buf = [0u8; 64];
    let n = outer.len() + 1 + inner.len();
    if n > buf.len() {
        return None;
    }
    buf[..outer.len()].copy_from_slice(outer);
    buf[outer.len()] = b'.';
    buf[outer.len() + 1..n].copy_from_slice(inner);
    classify(&buf[..n])
}

/// The spellings most loggers write, as they are written, with what
/// [`classify_normalised`] makes of them: looked up first, since
/// normalising a key costs ~300 instructions (~2 % of a drain with trace
/// detection on).
const AS_WRITTEN: &[(&[u8], Key)] = &[
    (b"trace_id", Key::OtelTrace),
    (b"span_id", Key::OtelSpan),
    (b"traceId", Key::OtelTrace),
    (b"spanId", Key::OtelSpan),
];

fn classify_exact(key: &[u8]) -> Option<Key> {
    for &(k, v) in AS_WRITTEN {
        if key == k {
            return Some(v);
        }
    }
    classify_normalised(key)
}

/// What `key` is once lowercased without `_`, `-`, `.` (see [`KEYS`]).
fn classify_normalised(key: &[u8]) -> Option<Key> {
    let mut buf = [0u8; 16];
    let mut n = 0;
    for &c in key {
        if matches!(c, b'_' | b'-' | b'.') {
            continue;
        }
        if n == buf.len() {
            return None;
        }
        buf[n] = c.to_ascii_lowercase();
        n += 1;
    }
    KEYS.iter().find(|(k, _)| *k == &buf[..n]).map(|(_, v)| *v)
}

/// Where the value of a key ending at `end` starts: after the key's closing
/// quote, `=`/`=>`/`:` with spaces around, and an opening quote or `[`.
fn value_start(b: &[u8], end: usize) -> Option<usize> {
    let mut i = skip_quote(b, end);
    i = skip_spaces(b, i);
    match b.get(i)? {
        b'=' => {
            i += 1;
            if b.get(i) == Some(&b'>') {
                i += 1;
            }
        }
        b':' => i += 1,
        _ => return None,
    }
    i = skip_spaces(b, i);
    if b.get(i) == Some(&b'[') {
        i += 1;
    }
    Some(skip_quote(b, i))
}

/// Past a `"`, `'` or `\"` at `i`, if there is one.
fn skip_quote(b: &[u8], i: usize) -> usize {
    match b.get(i) {
        Some(b'"' | b'\'') => i + 1,
        Some(b'\\') if b.get(i + 1) == Some(&b'"') => i + 2,
        _ => i,
    }
}

fn skip_spaces(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t')) {
        i += 1;
    }
    i
}

/// Whether an ID ending at `i` ends there: the next byte (if any) is not a
/// letter, digit, `_` or `-`.
#[inline]
fn id_end(b: &[u8], i: usize) -> bool {
    b.get(i)
        .is_none_or(|&c| !(c.is_ascii_alphanumeric() || c == b'_' || c == b'-'))
}

/// How many hex digits start at `i` (counting at most `max`).
fn hex_run(b: &[u8], i: usize, max: usize) -> usize {
    b.get(i..)
        .unwrap_or_default()
        .iter()
        .take(max)
        .take_while(|c| c.is_ascii_hexdigit())
        .count()
}

/// `N` hex digits at `i`, lowercased.
fn hex_at<const N: usize>(b: &[u8], i: usize) -> Option<[u8; N]> {
    let src = b.get(i..i.checked_add(N)?)?;
    // Branch-free over the fixed width (the compiler vectorizes it): every
    // byte checked, then lowercased with one OR (digits keep their bit 5).
    let mut out = [0u8; N];
    let mut hex = true;
    for (o, &c) in out.iter_mut().zip(src) {
        hex &= c.is_ascii_hexdigit();
        *o = c | 0x20;
    }
    hex.then_some(out)
}

/// An ID of exactly `N` hex digits at `i`, ending there, not all zero.
fn hex_id<const N: usize>(b: &[u8], i: usize) -> Option<[u8; N]> {
    let id = hex_at::<N>(b, i)?;
    (id_end(b, i + N) && nonzero(&id)).then_some(id)
}

fn nonzero(id: &[u8]) -> bool {
    id.iter().any(|&c| c != b'0')
}

/// `src` (at most `N` hex digits) lowercased and left-padded with zeros.
fn pad<const N: usize>(src: &[u8]) -> [u8; N] {
    let mut out = [b'0'; N];
    let n = src.len().min(N);
    for (o, c) in out[N - n..].iter_mut().zip(&src[src.len() - n..]) {
        *o = c.to_ascii_lowercase();
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn u64_hex(v: u64) -> [u8; 16] {
    let mut out = [b'0'; 16];
    for (i, o) in out.iter_mut().rev().enumerate() {
        *o = HEX[((v >> (4 * i)) & 0xf) as usize];
    }
    out
}

/// A decimal u64 at `i`, ending there (not followed by a word byte or `.`).
fn dec_u64(b: &[u8], i: usize) -> Option<u64> {
    let n = b
        .get(i..)?
        .iter()
        .take(21)
        .take_while(|c| c.is_ascii_digit())
        .count();
    if n == 0 || n > 20 || !id_end(b, i + n) || b.get(i + n) == Some(&b'.') {
        return None;
    }
    b[i..i + n].iter().try_fold(0u64, |acc, &c| {
        acc.checked_mul(10)?.checked_add(u64::from(c - b'0'))
    })
}

/// A Datadog trace ID at `i`: 32 hex (128-bit logging) or a decimal u64.
fn dd_trace(b: &[u8], i: usize) -> Option<Cand> {
    if let Some(t) = hex_id::<32>(b, i) {
        return Some(Cand::new(t, None, Format::Datadog));
    }
    let v = dec_u64(b, i).filter(|&v| v != 0)?;
    let mut trace = [b'0'; 32];
    trace[16..].copy_from_slice(&u64_hex(v));
    Some(Cand::new(trace, None, Format::Datadog))
}

/// A Datadog span ID at `i`: a decimal u64.
fn dd_span(b: &[u8], i: usize) -> Option<[u8; 16]> {
    dec_u64(b, i).filter(|&v| v != 0).map(u64_hex)
}

/// A B3 trace ID (16 or 32 hex) at `i`, padded to 32; and its length.
fn b3_trace(b: &[u8], i: usize) -> Option<([u8; 32], usize)> {
    let n = hex_run(b, i, 33);
    if n != 16 && n != 32 {
        return None;
    }
    let t = pad::<32>(&b[i..i + n]);
    nonzero(&t).then_some((t, n))
}

/// The single `b3` header value at `i`:
/// `{trace}-{span}[-{sampled}[-{parent}]]`.
fn b3_single(b: &[u8], i: usize) -> Option<Cand> {
    let (trace, n) = b3_trace(b, i)?;
    let mut j = i + n;
    if b.get(j) != Some(&b'-') {
        return None;
    }
    let span = hex_at::<16>(b, j + 1).filter(|s| nonzero(s))?;
    j += 17;
    if b.get(j) == Some(&b'-') {
        if !matches!(b.get(j + 1), Some(b'0' | b'1' | b'd')) {
            return None;
        }
        j += 2;
        if b.get(j) == Some(&b'-') {
            hex_at::<16>(b, j + 1)?;
            j += 17;
        }
    }
    id_end(b, j).then(|| Cand::new(trace, Some(span), Format::B3))
}

/// `uber-trace-id`'s value at `i`: `{trace}:{span}:{parent}:{flags}`, hex
/// without leading zeros allowed; `:` may be written `%3A`.
fn jaeger(b: &[u8], i: usize) -> Option<Cand> {
    let sep = |j: usize| -> Option<usize> {
        match b.get(j)? {
            b':' => Some(j + 1),
            b'%' if b.get(j + 1) == Some(&b'3') && matches!(b.get(j + 2), Some(b'A' | b'a')) => {
                Some(j + 3)
            }
            _ => None,
        }
    };
    let part = |j: usize, max: usize| -> Option<(usize, usize)> {
        let n = hex_run(b, j, max + 1);
        (1..=max).contains(&n).then_some((j, j + n))
    };
    let (t0, t1) = part(i, 32)?;
    let (s0, s1) = part(sep(t1)?, 16)?;
    let (_, p1) = part(sep(s1)?, 16)?;
    let (_, f1) = part(sep(p1)?, 2)?;
    if !id_end(b, f1) {
        return None;
    }
    let trace = pad::<32>(&b[t0..t1]);
    let span = pad::<16>(&b[s0..s1]);
    (nonzero(&trace) && nonzero(&span)).then(|| Cand::new(trace, Some(span), Format::Jaeger))
}

/// A traceparent at `i`: `{version}-{32 hex}-{16 hex}-{2 hex flags}`.
/// Version `00` must end after the flags; `any_version` also takes later
/// versions (which may add `-…` fields), never `ff`.
fn w3c_at(b: &[u8], i: usize, any_version: bool) -> Option<Cand> {
    let ver = hex_at::<2>(b, i)?;
    let v00 = ver == *b"00";
    if ver == *b"ff" || (!v00 && !any_version) {
        return None;
    }
    let dash = |j: usize| b.get(j) == Some(&b'-');
    if !dash(i + 2) || !dash(i + 35) || !dash(i + 52) {
        return None;
    }
    let trace = hex_at::<32>(b, i + 3)?;
    let span = hex_at::<16>(b, i + 36)?;
    hex_at::<2>(b, i + 53)?;
    let end = i + 55;
    let ends = if v00 {
        id_end(b, end)
    } else {
        dash(end) || id_end(b, end)
    };
    (ends && nonzero(&trace) && nonzero(&span)).then(|| Cand::new(trace, Some(span), Format::W3c))
}

/// Whether the `"` at `j` is escaped (an odd run of `\` before it, read
/// back to `lo`).
fn escaped(b: &[u8], lo: usize, j: usize) -> bool {
    b[lo..j].iter().rev().take_while(|&&c| c == b'\\').count() % 2 == 1
}

/// The key of the JSON object that contains the member whose key starts
/// at `key_start` (just after its opening quote), read backwards at most
/// [`JSON_SCAN_LIMIT`] bytes: `dd` in `{"dd":{"x":1,"trace_id":…}}`.
fn enclosing_key(b: &[u8], key_start: usize) -> Option<&[u8]> {
    let lo = key_start.saturating_sub(JSON_SCAN_LIMIT);
    let open = key_start.checked_sub(1)?;
    if b.get(open) != Some(&b'"') {
        return None;
    }
    let mut depth = 0usize;
    let mut j = open;
    // Find the `{` opening the object the key is in.
    let brace = loop {
        if j <= lo {
            return None;
        }
        j -= 1;
        match b[j] {
            b'"' if !escaped(b, lo, j) => {
                // A string, read backwards: find its opening quote.
                loop {
                    j = lo + memchr::memrchr(b'"', &b[lo..j])?;
                    if !escaped(b, lo, j) {
                        break;
                    }
                }
            }
            b'}' | b']' => depth += 1,
            b'[' if depth == 0 => return None,
            b'{' if depth == 0 => break j,
            b'{' | b'[' => depth -= 1,
            _ => {}
        }
    };
    // Before it: `"key"` `:`.
    let mut k = brace;
    while k > lo && matches!(b[k - 1], b' ' | b'\t') {
        k -= 1;
    }
    k = k.checked_sub(1).filter(|&k| b[k] == b':')?;
    while k > lo && matches!(b[k - 1], b' ' | b'\t') {
        k -= 1;
    }
    let close = k.checked_sub(1).filter(|&c| b[c] == b'"')?;
    let open = lo + memchr::memrchr(b'"', &b[lo..close])?;
    Some(&b[open + 1..close])
}

/// Calls `f(member key, member value start)` for each member of the JSON
/// object at `i` (if `b[i]` is `{`) until `f` returns something; reads at
/// most [`JSON_SCAN_LIMIT`] bytes.
fn object_members<T>(
    b: &[u8],
    i: usize,
    mut f: impl FnMut(&[u8], usize) -> Option<T>,
) -> Option<T> {
    if b.get(i) != Some(&b'{') {
        return None;
    }
    let b = &b[..b.len().min(i.saturating_add(JSON_SCAN_LIMIT))];
    let ws = |mut j: usize| {
        while matches!(b.get(j), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            j += 1;
        }
        j
    };
    let mut j = i + 1;
    loop {
        j = ws(j);
        if b.get(j)? != &b'"' {
            return None;
        }
        let kend = string_end(b, j)?;
        let key = &b[j + 1..kend - 1];
        j = ws(kend);
        if b.get(j)? != &b':' {
            return None;
        }
        let v = ws(j + 1);
        if let Some(t) = f(key, v) {
            return Some(t);
        }
        j = ws(value_end(b, v)?);
        match b.get(j)? {
            b',' => j += 1,
            _ => return None,
        }
    }
}

/// The index after the JSON string whose opening quote is at `i`.
fn string_end(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    loop {
        j += memchr::memchr2(b'"', b'\\', b.get(j..)?)?;
        if b[j] == b'\\' {
            j += 2;
        } else {
            return Some(j + 1);
        }
    }
}

/// The index after the JSON value at `i`.
fn value_end(b: &[u8], i: usize) -> Option<usize> {
    match b.get(i)? {
        b'"' => string_end(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            loop {
                match b.get(j)? {
                    b'"' => {
                        j = string_end(b, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
        }
        _ => Some(
            b[i..]
                .iter()
                .position(|c| matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n'))
                .map_or(b.len(), |p| i + p),
        ),
    }
}
