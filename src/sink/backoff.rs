//! Retry policy: which push outcomes are retried, and how long to wait.
//!
//! Owns: [`classify`] (Promtail's rules: 2xx = accepted; 429, 5xx and
//! transport errors — connection refused, reset, timeout — are retried;
//! every other status is dropped at once, because a 400 can be a partial
//! success on Loki's side and a resend would duplicate what it stored; with
//! `drop_rate_limited_batches` a 429 is dropped at once too) and [`Backoff`]
//! (exponential with jitter: the n-th wait is drawn from
//! `[min·2ⁿ, min·2ⁿ⁺¹)`, both ends capped at `max_period`).
//!
//! `max_retries` counts attempts, as Promtail's backoff does: with 10 a
//! batch is sent at most 10 times. 0 means retry forever (dskit's meaning).
//!
//! Pure logic, no clock and no I/O: the caller sleeps.
//!
//! Must never: retry a non-429 4xx.

use std::time::Duration;

/// Drop reason for batches Loki refused or that failed every retry.
pub const REASON_INGESTER_ERROR: &str = "ingester_error";
/// Drop reason for rate-limited (429) batches.
pub const REASON_RATE_LIMITED: &str = "rate_limited";

/// How one push attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Loki answered with this status (and the first line of its body, for
    /// errors).
    Status(u16, String),
    /// No answer: connection, TLS or timeout error.
    Transport(String),
    /// The request could not be built (e.g. a tenant id that is not a valid
    /// header value): dropped at once, as a 4xx would be.
    Invalid(String),
}

/// What to do after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    Retry,
    /// Drop the batch now, counted under this reason.
    Drop(&'static str),
}

/// Promtail's classification of a push outcome. See the module docs.
pub fn classify(outcome: &Outcome, drop_rate_limited: bool) -> Verdict {
    match outcome {
        Outcome::Status(s, _) if (200..300).contains(s) => Verdict::Accepted,
        Outcome::Status(429, _) if drop_rate_limited => Verdict::Drop(REASON_RATE_LIMITED),
        Outcome::Status(429, _) => Verdict::Retry,
        Outcome::Status(s, _) if (500..600).contains(s) => Verdict::Retry,
        Outcome::Status(_, _) => Verdict::Drop(REASON_INGESTER_ERROR),
        Outcome::Transport(_) => Verdict::Retry,
        Outcome::Invalid(_) => Verdict::Drop(REASON_INGESTER_ERROR),
    }
}

/// Reason under which a batch is counted when its retries run out: the
/// *last* failure decides, as in Promtail.
pub fn exhausted_reason(last: &Outcome) -> &'static str {
    match last {
        Outcome::Status(429, _) => REASON_RATE_LIMITED,
        _ => REASON_INGESTER_ERROR,
    }
}

/// Exponential backoff with jitter, for one batch.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    max_attempts: u32,
    attempts: u32,
    /// Lower end of the next wait's range.
    next_lo: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration, max_retries: u32) -> Self {
        let min = min.max(Duration::from_millis(1));
        let max = max.max(min);
        Backoff {
            min,
            max,
            max_attempts: max_retries,
            attempts: 0,
            next_lo: min,
        }
    }

    /// Records an attempt; returns false when no further attempt is allowed.
    pub fn record_attempt(&mut self) -> bool {
        self.attempts = self.attempts.saturating_add(1);
        self.max_attempts == 0 || self.attempts < self.max_attempts
    }

    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The wait before the next attempt; `jitter` in `[0, 1)` picks a point
    /// of the current range.
    pub fn next_delay(&mut self, jitter: f64) -> Duration {
        let lo = self.next_lo;
        let hi = (lo * 2).min(self.max);
        let d = lo + (hi.saturating_sub(lo)).mul_f64(jitter.clamp(0.0, 1.0));
        self.next_lo = hi;
        d.min(self.max)
    }

    /// [`next_delay`](Self::next_delay) with a random jitter from `rng`.
    pub fn next_delay_random(&mut self, rng: &mut impl rand::Rng) -> Duration {
        self.next_delay(rng.random::<f64>())
    }

    /// The configured minimum wait.
    pub fn min(&self) -> Duration {
        self.min
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(s: u16) -> Outcome {
        Outcome::Status(s, String::new())
    }

    #[test]
    fn classification_follows_promtail() {
        assert_eq!(classify(&st(204), false), Verdict::Accepted);
        assert_eq!(classify(&st(200), true), Verdict::Accepted);
        assert_eq!(classify(&st(429), false), Verdict::Retry);
        assert_eq!(classify(&st(429), true), Verdict::Drop(REASON_RATE_LIMITED));
        assert_eq!(classify(&st(500), true), Verdict::Retry);
        assert_eq!(classify(&st(503), false), Verdict::Retry);
        for s in [400, 401, 403, 404, 413, 301] {
            assert_eq!(
                classify(&st(s), false),
                Verdict::Drop(REASON_INGESTER_ERROR),
                "{s}"
            );
        }
        assert_eq!(
            classify(&Outcome::Transport("refused".into()), true),
            Verdict::Retry
        );
        assert_eq!(
            classify(&Outcome::Invalid("bad tenant".into()), false),
            Verdict::Drop(REASON_INGESTER_ERROR)
        );
        assert_eq!(exhausted_reason(&st(429)), REASON_RATE_LIMITED);
        assert_eq!(exhausted_reason(&st(503)), REASON_INGESTER_ERROR);
        assert_eq!(
            exhausted_reason(&Outcome::Transport(String::new())),
            REASON_INGESTER_ERROR
        );
    }

    #[test]
    fn delays_double_within_jittered_ranges_and_cap() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(500), ms(3000), 10);
        assert_eq!(b.next_delay(0.0), ms(500));
        assert_eq!(b.next_delay(0.5), ms(1500)); // [1000, 2000)
        assert_eq!(b.next_delay(0.0), ms(2000)); // [2000, 3000)
        assert_eq!(b.next_delay(0.999), ms(3000)); // capped range [3000, 3000]
        assert_eq!(b.next_delay(0.5), ms(3000));
        let mut b = Backoff::new(ms(500), ms(300_000), 10);
        let mut prev_hi = ms(500);
        let mut rng = <rand::rngs::SmallRng as rand::SeedableRng>::seed_from_u64(7);
        for _ in 0..20 {
            let d = b.next_delay_random(&mut rng);
            assert!(d >= prev_hi.min(ms(300_000)) && d <= ms(300_000), "{d:?}");
            prev_hi = (prev_hi * 2).min(ms(300_000));
        }
    }

    #[test]
    fn max_retries_counts_attempts_and_zero_is_forever() {
        let mut b = Backoff::new(Duration::from_millis(1), Duration::from_millis(2), 3);
        assert!(b.record_attempt());
        assert!(b.record_attempt());
        assert!(!b.record_attempt());
        assert_eq!(b.attempts(), 3);
        let mut b = Backoff::new(Duration::from_millis(1), Duration::from_millis(2), 0);
        for _ in 0..1000 {
            assert!(b.record_attempt());
        }
    }
}
