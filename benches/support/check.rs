//! The e2e bench's delivery checker: which lines arrived, how often, intact,
//! and how late.
//!
//! Design: fed by the fake Loki's observer (one call per push, on its server
//! thread). Each line's sequence id (see `gen::parse_seq`) sets a bit in a
//! growable bitset, so 10 M lines cost 1.25 MB; a second arrival is counted
//! as a duplicate. Every line is regenerated from its id and compared byte for
//! byte. Latency is arrival time minus the entry's timestamp (the CRI
//! timestamp, written as the write time), kept as microseconds in a Vec for
//! the ids the phase asks for (the latency phase: ~200 k values).
//!
//! Must never: hold its lock longer than one push, or silently accept a line
//! it cannot attribute (such lines are counted as `unparsed`).

use std::sync::{Arc, Mutex, MutexGuard};

use super::gen;
use super::receiver::Received;

/// Everything the checker learnt.
#[derive(Default)]
pub struct Tally {
    seen: Vec<u64>,
    /// Distinct sequence ids received.
    pub distinct: u64,
    /// Entries received (including duplicates and bad ones).
    pub entries: u64,
    /// Bytes of line content received.
    pub bytes: u64,
    pub duplicates: u64,
    /// Lines whose content differs from what was written.
    pub corrupt: u64,
    /// Lines without a sequence id.
    pub unparsed: u64,
    /// A few offending lines, for the report.
    pub examples: Vec<String>,
    /// Written→received latencies in µs of the lines with id ≥ `latency_from`.
    pub latencies_us: Vec<u32>,
    /// First id whose latency is kept (`u64::MAX`: none, the default).
    pub latency_from: u64,
    /// Largest latency of any line, µs.
    pub max_latency_us: u32,
    /// Wall-clock ns of the last push that brought anything.
    pub last_arrival_ns: i64,
    /// Every push that brought anything: (arrival ns, entries, content bytes).
    pub pushes: Vec<(i64, u32, u32)>,
    scratch: Vec<u8>,
}

impl Tally {
    fn note(&mut self, why: &str, line: &[u8]) {
        if self.examples.len() < 5 {
            let mut s = String::from_utf8_lossy(line).into_owned();
            s.truncate(300);
            self.examples.push(format!("{why}: {s}"));
        }
    }

    /// Records one push.
    pub fn observe(&mut self, entries: &[Received], arrived_ns: i64) {
        if !entries.is_empty() {
            self.last_arrival_ns = arrived_ns;
            let bytes: usize = entries.iter().map(|e| e.line_bytes.len()).sum();
            self.pushes.push((
                arrived_ns,
                u32::try_from(entries.len()).unwrap_or(u32::MAX),
                u32::try_from(bytes).unwrap_or(u32::MAX),
            ));
        }
        for e in entries {
            self.entries += 1;
            self.bytes += e.line_bytes.len() as u64;
            let Some(seq) = gen::parse_seq(&e.line_bytes) else {
                self.unparsed += 1;
                self.note("no sequence id", &e.line_bytes);
                continue;
            };
            let (word, bit) = ((seq / 64) as usize, seq % 64);
            if word >= self.seen.len() {
                let grow = (word + 1).max(self.seen.len() * 2);
                self.seen.resize(grow, 0);
            }
            if self.seen[word] & (1 << bit) != 0 {
                self.duplicates += 1;
                self.note("duplicate", &e.line_bytes);
            } else {
                self.seen[word] |= 1 << bit;
                self.distinct += 1;
            }
            gen::content(seq, &mut self.scratch);
            if self.scratch != e.line_bytes {
                self.corrupt += 1;
                self.note("corrupt", &e.line_bytes);
            }
            let us = u32::try_from((arrived_ns - e.ts_ns).max(0) / 1000).unwrap_or(u32::MAX);
            self.max_latency_us = self.max_latency_us.max(us);
            if seq >= self.latency_from {
                self.latencies_us.push(us);
            }
        }
    }

    /// Ids in `0..n` never received, up to `limit` of them, and how many.
    pub fn missing(&self, n: u64, limit: usize) -> (u64, Vec<u64>) {
        let mut count = 0;
        let mut first = Vec::new();
        for seq in 0..n {
            let (word, bit) = ((seq / 64) as usize, seq % 64);
            let has = self.seen.get(word).is_some_and(|w| w & (1 << bit) != 0);
            if !has {
                count += 1;
                if first.len() < limit {
                    first.push(seq);
                }
            }
        }
        (count, first)
    }

    /// Distinct ids outside `0..n` (should be none).
    pub fn beyond(&self, n: u64) -> u64 {
        let mut c = 0;
        for (i, w) in self.seen.iter().enumerate() {
            for bit in 0..64u64 {
                if w & (1 << bit) != 0 && (i as u64) * 64 + bit >= n {
                    c += 1;
                }
            }
        }
        c
    }
}

/// A shared [`Tally`] the receiver's observer writes into.
#[derive(Clone)]
pub struct Checker(pub Arc<Mutex<Tally>>);

impl Default for Checker {
    fn default() -> Checker {
        Checker(Arc::new(Mutex::new(Tally {
            latency_from: u64::MAX,
            ..Tally::default()
        })))
    }
}

impl Checker {
    pub fn lock(&self) -> MutexGuard<'_, Tally> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets everything (between phases); latencies are kept for ids
    /// from `latency_from` on.
    pub fn reset(&self, latency_from: u64) {
        *self.lock() = Tally {
            latency_from,
            ..Tally::default()
        };
    }

    pub fn distinct(&self) -> u64 {
        self.lock().distinct
    }
}

/// Push statistics: count, mean entries and KiB per push, median and max
/// gap between consecutive pushes (ms).
pub fn push_stats(pushes: &[(i64, u32, u32)]) -> serde_json::Value {
    let n = pushes.len().max(1) as f64;
    let entries: f64 = pushes.iter().map(|p| f64::from(p.1)).sum();
    let bytes: f64 = pushes.iter().map(|p| f64::from(p.2)).sum();
    let mut gaps: Vec<u32> = pushes
        .windows(2)
        .map(|w| u32::try_from((w[1].0 - w[0].0).max(0) / 1000).unwrap_or(u32::MAX))
        .collect();
    let max_gap = gaps.iter().copied().max().unwrap_or(0);
    serde_json::json!({
        "pushes": pushes.len(),
        "mean_entries_per_push": entries / n,
        "mean_kib_per_push": bytes / n / 1024.0,
        "median_gap_ms": quantile_ms(&mut gaps, 0.5),
        "max_gap_ms": f64::from(max_gap) / 1000.0,
    })
}

/// Counts of `v` (µs) in 100 ms buckets up to 2 s, then one overflow bucket.
pub fn histogram_100ms(v: &[u32]) -> Vec<u64> {
    let mut h = vec![0u64; 21];
    for &us in v {
        h[((us / 100_000) as usize).min(20)] += 1;
    }
    h
}

/// The `q` quantile (0..=1) of `v` (sorted in place), in ms.
pub fn quantile_ms(v: &mut [u32], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_unstable();
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    f64::from(v[i.min(v.len() - 1)]) / 1000.0
}
