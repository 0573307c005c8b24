//! The `sampling` stage: Promtail's `- sampling: {rate, drop_counter_reason}`.
//!
//! Owns: [`Config`] and [`SamplingStage`].
//!
//! What it does, as Promtail v3.6 does it (its code comes from Jaeger's
//! probabilistic sampler): each entry draws a random 63-bit number other
//! than 0 and is kept when it is at most `rate × (2^63 − 1)`; the others are
//! dropped and counted in `logentry_dropped_lines_total{reason}` with
//! `drop_counter_reason` (default `sampling_stage`; empty means the
//! default). `rate` is between 0 and 1 (1 keeps everything, 0 drops
//! everything); it may be written as a string (`"0.5"`), as Promtail's weak
//! decoding allows. Like Promtail, a `- sampling:` with no options, or
//! without `rate`, has rate 0 and drops every entry.
//!
//! The generator is seeded from the OS per stage; tests use a fixed seed
//! ([`SamplingStage::with_seed`]).
//!
//! Must never: drop an entry without [`Ctx::drop`] (counted and
//! acknowledged).

use super::BuildCtx;
use crate::entry::Entry;
use crate::pipeline::{Ctx, Stage};
use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::fmt;

/// Whether the stage runs.
pub const HONOURED: bool = true;

/// Default `drop_counter_reason`.
pub const DEFAULT_REASON: &str = "sampling_stage";

/// Jaeger's `maxRandomNumber`: 2^63 − 1.
const MAX_RANDOM: u64 = !(1u64 << 63);

/// `sampling:` options, with Promtail's names.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Fraction of entries kept, 0..=1 (default 0).
    #[serde(default, deserialize_with = "de_rate")]
    pub rate: f64,
    /// Label of `logentry_dropped_lines_total` (default `sampling_stage`).
    #[serde(default, deserialize_with = "super::drop::de_weak_string")]
    pub drop_counter_reason: Option<String>,
}

/// Builds the stage; errors name the offending key.
pub fn build(c: Option<&Config>, _ctx: &BuildCtx) -> Result<Option<Box<dyn Stage>>, String> {
    let empty = Config::default();
    Ok(Some(Box::new(SamplingStage::new(c.unwrap_or(&empty))?)))
}

/// The stage. See the module docs.
pub struct SamplingStage {
    boundary: u64,
    reason: String,
    rng: SmallRng,
}

impl SamplingStage {
    pub fn new(c: &Config) -> Result<Self, String> {
        Self::with_rng(c, SmallRng::from_os_rng())
    }

    /// A stage whose random numbers come from `seed` (tests).
    pub fn with_seed(c: &Config, seed: u64) -> Result<Self, String> {
        Self::with_rng(c, SmallRng::seed_from_u64(seed))
    }

    fn with_rng(c: &Config, rng: SmallRng) -> Result<Self, String> {
        if !(0.0..=1.0).contains(&c.rate) {
            return Err(format!(
                "rate: sampling rate must be between 0.0 and 1.0, received {:.6}",
                c.rate
            ));
        }
        let reason = match c.drop_counter_reason.as_deref() {
            None | Some("") => DEFAULT_REASON.to_string(),
            Some(r) => r.to_string(),
        };
        Ok(SamplingStage {
            // As Go: uint64(float64(maxRandomNumber) * rate); 1.0 gives 2^63.
            boundary: (MAX_RANDOM as f64 * c.rate) as u64,
            reason,
            rng,
        })
    }

    /// Jaeger's `IsSampled`: a non-zero 63-bit number at most the boundary.
    fn sampled(&mut self) -> bool {
        let mut v = self.rng.next_u64() & MAX_RANDOM;
        while v == 0 {
            v = self.rng.next_u64() & MAX_RANDOM;
        }
        self.boundary >= v
    }
}

impl Stage for SamplingStage {
    fn name(&self) -> &'static str {
        "sampling"
    }

    fn uses_extracted(&self) -> bool {
        false
    }

    fn process(&mut self, entry: Entry, ctx: &mut Ctx) {
        if self.sampled() {
            ctx.emit(entry);
        } else {
            ctx.drop(entry, &self.reason);
        }
    }
}

/// `rate`: a number, or a string holding one (mapstructure's weak decoding).
fn de_rate<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = f64;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a number between 0.0 and 1.0")
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
            Ok(v)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
            Ok(v as f64)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
            Ok(v as f64)
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<f64, E> {
            Ok(if v { 1.0 } else { 0.0 })
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
            if v.is_empty() {
                return Ok(0.0);
            }
            v.parse()
                .map_err(|_| E::custom(format!("cannot parse rate {v:?} as a number")))
        }
        fn visit_unit<E: de::Error>(self) -> Result<f64, E> {
            Ok(0.0)
        }
    }
    d.deserialize_any(V)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ack::Ack;
    use crate::entry::Timestamp;
    use crate::labels::LabelSet;
    use crate::metrics::Metrics;

    fn config(yaml: &str) -> Config {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    /// Feeds `n` entries; (kept, the metrics text).
    fn feed(st: &mut SamplingStage, n: usize) -> (usize, String) {
        let m = Metrics::new();
        let mut out = Vec::new();
        for _ in 0..n {
            let e = Entry::new(LabelSet::empty(), Timestamp(1), "x".into(), Ack::none());
            st.process(e, &mut Ctx::new(&mut out, &m));
        }
        (out.len(), m.encode())
    }

    #[test]
    fn keeps_about_rate_of_the_entries() {
        for (rate, lo, hi) in [(0.1, 900, 1100), (0.5, 4800, 5200), (0.9, 8850, 9150)] {
            let c = Config {
                rate,
                ..Default::default()
            };
            // Fixed seeds: deterministic, and the bounds are ~3-4 standard
            // deviations wide.
            for seed in [1, 2, 3] {
                let mut st = SamplingStage::with_seed(&c, seed).unwrap();
                let (kept, metrics) = feed(&mut st, 10_000);
                assert!((lo..=hi).contains(&kept), "rate {rate}: kept {kept}");
                let dropped = format!(
                    "logentry_dropped_lines_total{{reason=\"sampling_stage\"}} {}",
                    10_000 - kept
                );
                assert!(metrics.contains(&dropped), "{metrics}");
            }
        }
    }

    #[test]
    fn rate_one_keeps_all_and_zero_drops_all() {
        let mut st = SamplingStage::with_seed(&config("rate: 1"), 7).unwrap();
        assert_eq!(feed(&mut st, 1000).0, 1000);
        let mut st = SamplingStage::with_seed(&config("rate: 0"), 7).unwrap();
        assert_eq!(feed(&mut st, 1000).0, 0);
        // No options at all: rate 0, as in Promtail.
        let mut st = SamplingStage::with_seed(&Config::default(), 7).unwrap();
        assert_eq!(feed(&mut st, 100).0, 0);
    }

    #[test]
    fn same_seed_same_choices() {
        let c = config("rate: 0.3");
        let pick = |seed| {
            let mut st = SamplingStage::with_seed(&c, seed).unwrap();
            (0..200).map(|_| st.sampled()).collect::<Vec<_>>()
        };
        assert_eq!(pick(42), pick(42));
        assert_ne!(pick(42), pick(43));
    }

    #[test]
    fn drop_counter_reason_and_string_rate() {
        let c = config("{rate: \"0\", drop_counter_reason: sampled_out}");
        let mut st = SamplingStage::with_seed(&c, 1).unwrap();
        let (kept, metrics) = feed(&mut st, 3);
        assert_eq!(kept, 0);
        assert!(metrics.contains("logentry_dropped_lines_total{reason=\"sampled_out\"} 3"));
        let c = config("{rate: 0, drop_counter_reason: \"\"}");
        let mut st = SamplingStage::with_seed(&c, 1).unwrap();
        assert!(feed(&mut st, 1)
            .1
            .contains("logentry_dropped_lines_total{reason=\"sampling_stage\"} 1"));
    }

    #[test]
    fn config_errors_name_the_key() {
        for bad in ["rate: 1.5", "rate: -0.1", "rate: .nan"] {
            let e = SamplingStage::new(&config(bad)).err().unwrap();
            assert!(e.starts_with("rate: "), "{e}");
        }
        assert!(serde_yaml_ng::from_str::<Config>("rate: lots").is_err());
        assert!(serde_yaml_ng::from_str::<Config>("{rate: 0.5, nope: 1}").is_err());
    }

    #[test]
    fn in_a_pipeline() {
        let v: Vec<super::super::StageConfig> =
            serde_yaml_ng::from_str("- sampling:\n    rate: 1\n").unwrap();
        assert!(v[0].unhonoured_name().is_none());
        let mut p = super::super::build(&v, std::sync::Arc::new(Metrics::new())).unwrap();
        assert_eq!(p.stage_names(), ["sampling"]);
        let mut out = Vec::new();
        p.process(
            Entry::new(LabelSet::empty(), Timestamp(1), "x".into(), Ack::none()),
            &mut out,
        );
        assert_eq!(out.len(), 1);
    }
}
