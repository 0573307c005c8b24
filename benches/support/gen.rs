//! Synthetic container logs for the e2e bench: realistic ~200-byte lines and
//! their CRI (containerd) framing.
//!
//! Design: a line's content is a pure function of its sequence id ([`content`]),
//! so the checker can regenerate and compare every received line without
//! storing what was written. The mix: JSON app logs, logfmt, plain text (some
//! non-ASCII) and nginx access lines; ~40% carry a W3C trace id. Every content
//! embeds `bseq=<id>` ([`parse_seq`] finds it). About 3% of lines are split
//! into P…F partials (the `cri` stage must join them back). stderr carries the
//! warn/error lines, stdout the rest.
//!
//! Must never: produce a content with a newline, or split a line inside a
//! UTF-8 character.

use std::io::Write;

/// The marker before every line's sequence id.
pub const MARK: &[u8] = b"bseq=";

/// splitmix64: a tiny deterministic hash/PRNG.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

const LEVELS: &[&str] = &[
    "info", "info", "info", "info", "info", "info", "debug", "debug", "warn", "error",
];
const METHODS: &[&str] = &["GET", "GET", "GET", "POST", "PUT", "DELETE"];
const PATHS: &[&str] = &[
    "/api/v1/orders",
    "/api/v1/items",
    "/api/v2/customers/search",
    "/healthz",
    "/api/v1/cart/checkout",
    "/metrics",
    "/api/v1/inventory/reserve",
];
const MSGS: &[&str] = &[
    "request completed",
    "cache miss, fetching from upstream",
    "order persisted",
    "retrying upstream call after timeout",
    "user session refreshed",
    "payment authorised by provider",
    "slow query detected",
    "connection pool exhausted, waiting",
];
const LOGGERS: &[&str] = &[
    "http.server",
    "db.pool",
    "orders.service",
    "payments.client",
    "cache.redis",
];
const JAVA: &[&str] = &[
    "c.e.shop.OrderService - Processed order",
    "o.a.kafka.clients.consumer.KafkaConsumer - Committed offset for partition",
    "c.e.shop.PriceCalculator - Recomputed price (remise appliquée) for item",
    "c.e.shop.Inventory - Réservation confirmée pour l'article",
    "c.e.shop.Gateway - 注文を受け付けました order",
];
const AGENTS: &[&str] = &[
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "kube-probe/1.31",
    "Go-http-client/1.1",
    "curl/8.5.0",
];

/// Which stream a line goes to: the agent's own CRI stream type.
pub use tailtrace::source::cri::Stream;

fn hex(out: &mut Vec<u8>, mut v: u64, digits: usize) {
    for _ in 0..digits {
        out.push(b"0123456789abcdef"[(v & 15) as usize]);
        v >>= 4;
    }
}

/// Appends the content of line `seq` to `out` (cleared first) and returns its
/// stream. Deterministic: the same `seq` always gives the same bytes.
pub fn content(seq: u64, out: &mut Vec<u8>) -> Stream {
    out.clear();
    let mut r = Rng::new(seq);
    let level = r.pick(LEVELS);
    let stream = if level == "warn" || level == "error" {
        Stream::Stderr
    } else {
        Stream::Stdout
    };
    // A fake application clock: 2026-11-22T10:00:00Z plus seq milliseconds.
    let ms = seq % 86_400_000;
    let (h, m, s, frac) = (
        ms / 3_600_000,
        (ms / 60_000) % 60,
        (ms / 1000) % 60,
        ms % 1000,
    );
    let traced = r.below(10) < 4;
    let (t1, t2, span) = (r.next(), r.next(), r.next());
    let status = [200, 200, 200, 201, 204, 304, 404, 500][r.below(8) as usize];
    let dur = r.below(250_000);
    let bytes = r.below(90_000);
    let id = r.below(1_000_000);
    let _ = match r.below(10) {
        0..=3 => {
            let _ = write!(
                out,
                r#"{{"ts":"2026-11-22T{h:02}:{m:02}:{s:02}.{frac:03}Z","level":"{level}","logger":"{}","msg":"{}","method":"{}","path":"{}/{id}","status":{status},"duration_ms":{}.{:03}"#,
                r.pick(LOGGERS),
                r.pick(MSGS),
                r.pick(METHODS),
                r.pick(PATHS),
                dur / 1000,
                dur % 1000
            );
            if traced {
                out.extend_from_slice(br#","trace_id":""#);
                hex(out, t1, 16);
                hex(out, t2, 16);
                out.extend_from_slice(br#"","span_id":""#);
                hex(out, span, 16);
                out.push(b'"');
            }
            write!(out, r#","seq":"bseq={seq}"}}"#)
        }
        4..=6 => {
            let _ = write!(
                out,
                r#"level={level} ts=2026-11-22T{h:02}:{m:02}:{s:02}.{frac:03}Z caller={}.go:{} msg="{}" method={} path={} status={status} duration={}.{:03}ms bytes={bytes}"#,
                r.pick(LOGGERS).replace('.', "_"),
                r.below(400) + 12,
                r.pick(MSGS),
                r.pick(METHODS),
                r.pick(PATHS),
                dur / 1000,
                dur % 1000
            );
            if traced {
                out.extend_from_slice(b" trace_id=");
                hex(out, t1, 16);
                hex(out, t2, 16);
            }
            write!(out, " bseq={seq}")
        }
        7..=8 => {
            let _ = write!(
                out,
                "2026-11-22 {h:02}:{m:02}:{s:02},{frac:03} {:<5} [pool-{}-thread-{}] {} {id} in {} ms",
                level.to_uppercase(),
                r.below(8) + 1,
                r.below(32) + 1,
                r.pick(JAVA),
                dur / 1000
            );
            if traced {
                out.extend_from_slice(b" [trace_id=");
                hex(out, t1, 16);
                hex(out, t2, 16);
                out.push(b']');
            }
            write!(out, " bseq={seq}")
        }
        _ => write!(
            out,
            r#"10.{}.{}.{} - - [22/Nov/2026:{h:02}:{m:02}:{s:02} +0000] "{} {}?page={} HTTP/1.1" {status} {bytes} "-" "{}" rt={}.{:03} bseq={seq}"#,
            r.below(255),
            r.below(255),
            r.below(255),
            r.pick(METHODS),
            r.pick(PATHS),
            r.below(40),
            r.pick(AGENTS),
            dur / 1_000_000,
            (dur / 1000) % 1000
        ),
    };
    stream
}

/// The sequence id embedded in a line, if any.
pub fn parse_seq(line: &[u8]) -> Option<u64> {
    let at = memchr::memmem::rfind(line, MARK)? + MARK.len();
    let digits = &line[at..];
    let n = digits.iter().take_while(|b| b.is_ascii_digit()).count();
    if n == 0 || n > 19 {
        return None;
    }
    std::str::from_utf8(&digits[..n]).ok()?.parse().ok()
}

/// Where to split line `seq` into CRI partials: empty = written whole (F).
/// About 3% get one split (P F) and 0.5% two (P P F). Splits are on char
/// boundaries and never leave an empty piece.
fn splits(seq: u64, content: &[u8]) -> ([usize; 2], usize) {
    let mut r = Rng::new(seq ^ 0xC0FF_EE00);
    let roll = r.below(1000);
    let n = if roll < 5 {
        2
    } else if roll < 35 {
        1
    } else {
        0
    };
    let mut out = [0usize; 2];
    let len = content.len();
    if len < 8 {
        return (out, 0);
    }
    for (i, slot) in out.iter_mut().enumerate().take(n) {
        // Piece boundaries at roughly 1/(n+1), 2/(n+1) of the line.
        let mut at = len * (i + 1) / (n + 1);
        while at < len && (content[at] & 0xC0) == 0x80 {
            at += 1;
        }
        *slot = at;
    }
    (out, n)
}

/// Appends a containerd-style RFC3339Nano UTC timestamp (Go's format: trailing
/// zeros of the fraction trimmed).
pub fn rfc3339_nano(out: &mut Vec<u8>, ts_ns: i64) {
    let mut s = String::with_capacity(32);
    tailtrace::entry::Timestamp(ts_ns).write_rfc3339_nano(&mut s);
    out.extend_from_slice(s.as_bytes());
}

/// Appends line `seq` to `out` as the runtime writes it: one CRI record, or
/// P…F records when it is split, all with timestamp `ts_ns` (the entry takes
/// the F piece's). `scratch` is reused for the content. Returns the number of
/// records written.
pub fn cri_record(seq: u64, ts_ns: i64, scratch: &mut Vec<u8>, out: &mut Vec<u8>) -> usize {
    let stream = content(seq, scratch);
    let (cuts, n) = splits(seq, scratch);
    let mut start = 0;
    for (i, &cut) in cuts.iter().take(n).enumerate() {
        // Partial pieces a few ns earlier than the final one, as if written
        // by successive runtime reads.
        rfc3339_nano(out, ts_ns - (n - i) as i64);
        out.push(b' ');
        out.extend_from_slice(stream.as_str().as_bytes());
        out.extend_from_slice(b" P ");
        out.extend_from_slice(&scratch[start..cut]);
        out.push(b'\n');
        start = cut;
    }
    rfc3339_nano(out, ts_ns);
    out.push(b' ');
    out.extend_from_slice(stream.as_str().as_bytes());
    out.extend_from_slice(b" F ");
    out.extend_from_slice(&scratch[start..]);
    out.push(b'\n');
    n + 1
}

/// Checks the generator's invariants (run at bench start-up: a harness-less
/// bench has no `#[test]`s). Returns what is wrong.
pub fn self_check() -> Result<(), String> {
    let (mut a, mut b, mut rec) = (Vec::new(), Vec::new(), Vec::new());
    let mut split = 0;
    for seq in (0u64..20_000).chain([123_456_789, u32::MAX as u64 + 7]) {
        content(seq, &mut a);
        content(seq, &mut b);
        if a != b || parse_seq(&a) != Some(seq) || a.contains(&b'\n') {
            return Err(format!(
                "bad content for seq {seq}: {}",
                String::from_utf8_lossy(&a)
            ));
        }
        rec.clear();
        let n = cri_record(seq, 1, &mut b, &mut rec);
        split += usize::from(n > 1);
        // Pieces joined back must give the content, each piece valid UTF-8.
        let mut joined = Vec::new();
        for piece in rec.split(|&c| c == b'\n').filter(|p| !p.is_empty()) {
            let text = std::str::from_utf8(piece).map_err(|e| format!("seq {seq}: {e}"))?;
            let mut it = text.splitn(4, ' ');
            let (_, _, _, body) = (it.next(), it.next(), it.next(), it.next());
            joined.extend_from_slice(body.unwrap_or("").as_bytes());
        }
        if joined != a {
            return Err(format!("seq {seq}: CRI pieces do not join back"));
        }
    }
    if !(300..=1200).contains(&split) {
        return Err(format!("{split} of 20000 lines split; expected ~3.5%"));
    }
    let mut v = Vec::new();
    rfc3339_nano(&mut v, 1_795_341_600_123_456_789);
    if v != b"2026-11-22T10:00:00.123456789Z" {
        return Err(format!("timestamp {}", String::from_utf8_lossy(&v)));
    }
    v.clear();
    rfc3339_nano(&mut v, 1_795_341_600_120_000_000);
    if v != b"2026-11-22T10:00:00.12Z" {
        return Err(format!("timestamp {}", String::from_utf8_lossy(&v)));
    }
    Ok(())
}
