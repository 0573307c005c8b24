//! The `limit` stage: Promtail's `- limit: {rate, burst, by_label_name,
//! max_distinct_labels, drop}`, a token-bucket rate limit on entries.
//!
//! Owns: [`Config`], [`LimitStage`]: the rate limiters (governor GCRA
//! limiters, one per key) and, with `drop: false`, the entries held back.
//!
//! What it does, as Promtail v3.6 does it:
//! - `rate` entries per second (a float), bursts of up to `burst`; both must
//!   be > 0 (`limit stage failed to parse rate or burst`). The bucket starts
//!   full.
//! - `drop: true`: an entry over the rate is dropped, counted in
//!   `logentry_dropped_lines_total{reason="ratelimit_drop_stage"}` (and
//!   acknowledged, so the position moves on).
//! - `by_label_name: <label>` (Promtail requires `drop: true` with it): one
//!   limiter per value of that stream label; entries without the label are
//!   not limited; drops are also counted in
//!   `logentry_dropped_lines_by_label_total{label_name, label_value}`. The
//!   limiters live in a two-generation map of `max_distinct_labels` entries
//!   (raised to at least 10000, with a warning, as Promtail does): when the
//!   current generation fills up it becomes the old one, limiters only in
//!   the old one are forgotten at the next turn (a forgotten value starts
//!   again with a full bucket), and the by-label drop counter is reset.
//!
//! `drop: false` — Promtail blocks its whole pipeline until a token comes.
//! tailtrace slows only the key over its rate (the whole stage without
//! `by_label_name`, else that label value): the excess entries wait in the
//! stage, in order, with their acknowledgements pending (nothing is lost,
//! the position does not pass them), and are released on [`Stage::tick`] at
//! exactly `rate` (each release is booked at the moment its token came, so
//! a coarse tick loses no throughput). While a key holds entries,
//! [`Stage::accepts`] says false for it, and the tailer stops reading the
//! files of that stream only. `flush` releases everything held.
//!
//! tailtrace's additions and deliberate differences:
//! - `by_label_name` with `drop: false` is allowed (per-value slowing). The
//!   tailer asks [`Stage::accepts`] with a file's labels before any stage
//!   ran: if the label is not among them (a stage adds it), that file is
//!   held back while any value holds entries — Promtail's whole-pipeline
//!   behaviour, for those files only.
//! - Held entries are bounded: past [`MAX_HELD`] entries or
//!   [`MAX_HELD_BYTES`] line bytes (a source that does not honour
//!   `accepts`), the stage falls back to Promtail's behaviour: it blocks the
//!   caller until the key's entries have gone out at the rate.
//!
//! Must never: drop an entry with `drop: false`, release held entries
//! faster than the rate (except on `flush`), or hold entries unboundedly.

use super::metrics::{Family, Op, Shape};
use super::BuildCtx;
use crate::entry::Entry;
use crate::labels::LabelSet;
use crate::pipeline::{Ctx, Stage};
use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Whether the stage runs.
pub const HONOURED: bool = true;

/// Promtail's floor for `max_distinct_labels`.
pub const MIN_DISTINCT_LABELS: usize = 10_000;
/// The drop reason Promtail counts.
pub const DROP_REASON: &str = "ratelimit_drop_stage";
/// Entries held (all keys) before the stage blocks its caller.
pub const MAX_HELD: usize = 100_000;
/// Line bytes held (all keys) before the stage blocks its caller.
pub const MAX_HELD_BYTES: usize = 32 * 1024 * 1024;

/// `limit:` options, with Promtail's names and defaults.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Entries per second.
    pub rate: f64,
    pub burst: i64,
    pub by_label_name: Option<String>,
    /// 0 (unset) or below 10000: 10000.
    pub max_distinct_labels: usize,
    pub drop: bool,
}

/// Builds the stage; `- limit:` without options is an error (no rate).
pub fn build(c: Option<&Config>, ctx: &BuildCtx) -> Result<Option<Box<dyn Stage>>, String> {
    let c = c.cloned().unwrap_or_default();
    Ok(Some(Box::new(LimitStage::new(&c, &ctx.metrics)?)))
}

/// Where the stage gets the time, and how it waits (tests: a fake).
pub trait Time: Send {
    fn now(&self) -> Instant;
    fn sleep(&self, d: Duration);
}

/// The real clock.
pub struct RealTime;

impl Time for RealTime {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn sleep(&self, d: Duration) {
        std::thread::sleep(d)
    }
}

/// A limiter's clock: nanoseconds since the stage was built, set by the
/// stage (monotonic per limiter: it only moves forward).
#[derive(Debug, Default)]
struct StageClock(AtomicU64);

impl Clock for StageClock {
    type Instant = Nanos;
    fn now(&self) -> Nanos {
        Nanos::from(self.0.load(Ordering::Relaxed))
    }
}

/// One key's limiter.
struct Bucket {
    limiter: RateLimiter<NotKeyed, InMemoryState, StageClock, NoOpMiddleware<Nanos>>,
    /// `{label_name, label_value}` of the by-label drop counter (built on
    /// the first drop).
    drop_labels: Option<LabelSet>,
}

impl Bucket {
    fn new(quota: Quota, t: u64) -> Self {
        Bucket {
            limiter: RateLimiter::direct_with_clock(quota, StageClock(AtomicU64::new(t))),
            drop_labels: None,
        }
    }

    /// Takes a token at time `t` (or the limiter's own time if later), or
    /// says when the next one comes.
    fn take(&self, t: u64) -> Result<(), u64> {
        self.limiter.clock().0.fetch_max(t, Ordering::Relaxed);
        self.limiter
            .check()
            .map_err(|n| n.earliest_possible().as_u64())
    }
}

/// Entries one key holds back.
#[derive(Default)]
struct Queue {
    /// (arrival number, entry).
    entries: VecDeque<(u64, Entry)>,
}

/// The stage. See the module docs.
pub struct LimitStage {
    quota: Quota,
    drop: bool,
    by_label: Option<String>,
    max_distinct: usize,
    /// Limiters: the current generation, and the one before it. Without
    /// `by_label_name` the single limiter is under the key "".
    newgen: HashMap<Box<str>, Bucket>,
    oldgen: HashMap<Box<str>, Bucket>,
    /// `drop: false`: entries held per key.
    queues: BTreeMap<Box<str>, Queue>,
    held: usize,
    held_bytes: usize,
    seq: u64,
    by_label_drops: Option<Arc<Family>>,
    time: Box<dyn Time>,
    epoch: Instant,
}

impl LimitStage {
    pub fn new(c: &Config, metrics: &crate::metrics::Metrics) -> Result<Self, String> {
        Self::with_time(c, metrics, Box::new(RealTime))
    }

    pub fn with_time(
        c: &Config,
        metrics: &crate::metrics::Metrics,
        time: Box<dyn Time>,
    ) -> Result<Self, String> {
        // NaN is not > 0 either.
        if c.rate.is_nan() || c.rate <= 0.0 || c.burst <= 0 {
            return Err(
                "rate, burst: limit stage failed to parse rate or burst (both must be greater than 0)"
                    .into(),
            );
        }
        if !c.rate.is_finite() {
            return Err("rate: must be a finite number".into());
        }
        let burst = u32::try_from(c.burst)
            .ok()
            .and_then(NonZeroU32::new)
            .ok_or_else(|| format!("burst: {} is too large", c.burst))?;
        let period = Duration::try_from_secs_f64(1.0 / c.rate)
            .map_err(|_| format!("rate: {:?} is too small", c.rate))?;
        let quota = Quota::with_period(period.max(Duration::from_nanos(1)))
            .ok_or_else(|| format!("rate: {:?} is too large", c.rate))?
            .allow_burst(burst);
        let by_label = c.by_label_name.clone().filter(|n| !n.is_empty());
        let mut max_distinct = c.max_distinct_labels;
        let mut by_label_drops = None;
        if let Some(name) = &by_label {
            if max_distinct < MIN_DISTINCT_LABELS {
                if max_distinct != 0 {
                    tracing::warn!(
                        label = %name,
                        "limit stage: max_distinct_labels was adjusted up to the minimal reasonable value of {MIN_DISTINCT_LABELS}"
                    );
                }
                max_distinct = MIN_DISTINCT_LABELS;
            }
            by_label_drops = Some(Family::register(
                metrics,
                "logentry_dropped_lines_by_label_total",
                "A count of all log lines dropped as a result of a pipeline stage",
                Shape::Counter,
            )?);
        }
        let epoch = time.now();
        Ok(LimitStage {
            quota,
            drop: c.drop,
            by_label,
            max_distinct,
            newgen: HashMap::new(),
            oldgen: HashMap::new(),
            queues: BTreeMap::new(),
            held: 0,
            held_bytes: 0,
            seq: 0,
            by_label_drops,
            time,
            epoch,
        })
    }

    /// Entries held back (all keys).
    pub fn held(&self) -> usize {
        self.held
    }

    fn nanos(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// The limiter of `key`, created (with a full bucket) if needed; the
    /// generation map turns over when the current generation is full.
    fn bucket(&mut self, key: &str, t: u64) -> Option<&mut Bucket> {
        if !self.newgen.contains_key(key) {
            let b = self
                .oldgen
                .remove(key)
                .unwrap_or_else(|| Bucket::new(self.quota, t));
            self.newgen.insert(key.into(), b);
            if self.by_label.is_some() && self.newgen.len() >= self.max_distinct {
                self.oldgen = std::mem::take(&mut self.newgen);
                // Keys holding entries keep their limiter: a fresh, full
                // bucket would let a burst through.
                for k in self.queues.keys() {
                    if let Some(b) = self.oldgen.remove(k) {
                        self.newgen.insert(k.clone(), b);
                    }
                }
                if let Some(f) = &self.by_label_drops {
                    f.clear();
                }
            }
        }
        match self.newgen.get_mut(key) {
            Some(b) => Some(b),
            None => self.oldgen.get_mut(key),
        }
    }

    fn take(&mut self, key: &str, t: u64) -> Result<(), u64> {
        self.bucket(key, t).map_or(Ok(()), |b| b.take(t))
    }

    fn count_drop(&mut self, key: &str, t: u64) {
        let (Some(f), Some(name)) = (self.by_label_drops.clone(), self.by_label.clone()) else {
            return;
        };
        let now = self.epoch + Duration::from_nanos(t);
        if let Some(b) = self.bucket(key, t) {
            let l = b.drop_labels.get_or_insert_with(|| {
                LabelSet::new([("label_name", name.as_str()), ("label_value", key)])
            });
            f.update(l, now, Duration::MAX, Op::Add(1.0));
        }
    }

    /// Releases the held entries of `key` whose tokens have come by `upto`.
    /// Each release is booked at the time its token came, so the entries go
    /// out at exactly the rate however coarse the ticks. `Err(t)`: the next
    /// one is due at `t`.
    fn release(&mut self, key: &str, upto: u64, ctx: &mut Ctx) -> Result<(), u64> {
        let mut at = 0;
        loop {
            if self.queues.get(key).is_none_or(|q| q.entries.is_empty()) {
                self.queues.remove(key);
                return Ok(());
            }
            match self.take(key, at) {
                Ok(()) => {
                    let popped = self.queues.get_mut(key).and_then(|q| q.entries.pop_front());
                    if let Some((_, e)) = popped {
                        self.held -= 1;
                        self.held_bytes -= e.line.len();
                        ctx.emit(e);
                    }
                }
                Err(next) if next <= upto && next > at => at = next,
                Err(next) => return Err(next),
            }
        }
    }

    fn hold(&mut self, key: &str, e: Entry) {
        self.seq += 1;
        self.held += 1;
        self.held_bytes += e.line.len();
        self.queues
            .entry(key.into())
            .or_default()
            .entries
            .push_back((self.seq, e));
    }

    /// Over the bound: Promtail's behaviour, block until `key`'s entries
    /// have gone out at the rate (or the stage is under the bound again).
    fn block_while_over(&mut self, key: &str, ctx: &mut Ctx) {
        while self.over() {
            let now = self.nanos(self.time.now());
            match self.release(key, now, ctx) {
                Ok(()) => return,
                Err(next) if self.over() => self
                    .time
                    .sleep(Duration::from_nanos(next.saturating_sub(now))),
                Err(_) => return,
            }
        }
    }

    fn over(&self) -> bool {
        self.held > MAX_HELD || self.held_bytes > MAX_HELD_BYTES
    }
}

impl Stage for LimitStage {
    fn name(&self) -> &'static str {
        "limit"
    }

    fn uses_extracted(&self) -> bool {
        false
    }

    fn process(&mut self, entry: Entry, ctx: &mut Ctx) {
        let key: Box<str> = match &self.by_label {
            None => "".into(),
            Some(name) => match entry.labels.get(name) {
                Some(v) => v.into(),
                // Promtail: no label, no limit.
                None => return ctx.emit(entry),
            },
        };
        let t = self.nanos(self.time.now());
        if self.drop {
            if self.take(&key, t).is_ok() {
                return ctx.emit(entry);
            }
            self.count_drop(&key, t);
            return ctx.drop(entry, DROP_REASON);
        }
        // Behind entries already held: keep the order.
        if self.queues.contains_key(&*key) || self.take(&key, t).is_err() {
            self.hold(&key, entry);
            self.block_while_over(&key, ctx);
            return;
        }
        ctx.emit(entry);
    }

    fn tick(&mut self, now: Instant, ctx: &mut Ctx) {
        if self.queues.is_empty() {
            return;
        }
        let upto = self.nanos(now);
        let keys: Vec<Box<str>> = self.queues.keys().cloned().collect();
        for k in keys {
            let _ = self.release(&k, upto, ctx);
        }
    }

    fn flush(&mut self, ctx: &mut Ctx) {
        let mut all: Vec<(u64, Entry)> = std::mem::take(&mut self.queues)
            .into_values()
            .flat_map(|q| q.entries)
            .collect();
        all.sort_by_key(|(seq, _)| *seq);
        self.held = 0;
        self.held_bytes = 0;
        for (_, e) in all {
            ctx.emit(e);
        }
    }

    fn accepts(&self, labels: &LabelSet) -> bool {
        if self.drop || self.queues.is_empty() {
            return true;
        }
        match &self.by_label {
            None => false,
            Some(name) => match labels.get(name) {
                Some(v) => !self.queues.contains_key(v),
                // The label comes from a later stage: cannot tell which
                // value this stream feeds.
                None => false,
            },
        }
    }
}

#[cfg(test)]
#[path = "limit/tests.rs"]
mod tests;
