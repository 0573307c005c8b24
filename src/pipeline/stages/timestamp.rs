//! The `timestamp` stage: Promtail's `- timestamp: {source, format, …}`.
//!
//! Owns: [`Config`] and [`TimestampStage`]; Go's `time.Parse` for
//! reference-time layouts is the shared `crate::pipeline::gotime`.
//!
//! What it does, as Promtail v3.6 does it: reads the extracted value
//! `source` (as text: Promtail's `getString`), parses it with `format`, then
//! each of `fallback_formats` in order, and sets the entry's timestamp to the
//! first success. Formats:
//! - `ANSIC`, `UnixDate`, `RubyDate`, `RFC822`, `RFC822Z`, `RFC850`,
//!   `RFC1123`, `RFC1123Z`, `RFC3339`, `RFC3339Nano`: Go's layouts, parsed
//!   with `time.Parse` — UTC unless the value has a zone, `location` ignored,
//!   zone abbreviations (`MST`) known to the system time zone take its
//!   offset, others count as UTC (as Go does).
//! - `Unix` (seconds, optionally with one `.` and a fraction), `UnixMs`,
//!   `UnixUs`, `UnixNs` (integers; a sign is allowed, as Go's `ParseInt`).
//! - anything else is a Go layout (`2006-01-02 15:04:05.000`, `Jan _2
//!   15:04:05`, `02/Jan/2006:15:04:05 -0700`, …), parsed in `location` (an
//!   IANA zone from the system tz database) when given, else in UTC. A
//!   layout without `06`/`2006` in it gets the current year (the local
//!   year of now): a December time parsed in January takes last year, a
//!   January time parsed in December takes next year — Promtail's rule.
//!
//! On failure (source absent or not text, or no format parses it),
//! `action_on_failure`: `fudge` (the default) gives the entry the last
//! timestamp this stage set for the same full label set plus 1 ns (+2 ns …
//! for the next failures); with no such timestamp yet the entry keeps the
//! one it has. `skip` leaves the timestamp alone. The per-label-set memory is
//! bounded like Promtail's 10000-entry LRU (when full, the least recently
//! used half is forgotten).
//!
//! Deliberate differences: a time that cannot be expressed as `i64`
//! nanoseconds (before 1678 or after 2262; `UnixMs` values that overflow)
//! counts as a failure here; Promtail would send it (or a wrapped value) and
//! Loki would reject the entry.
//!
//! Must never: drop an entry (every entry is emitted), or allocate per line
//! beyond converting a non-string extracted value to text.

#[cfg(test)]
#[path = "timestamp/tests.rs"]
mod tests;

use super::BuildCtx;
use crate::entry::{Entry, Timestamp};
use crate::labels::{LabelMap, LabelSet};
use crate::pipeline::extracted::to_go_string;
use crate::pipeline::gotime::{civil_from_days, GoLocation, Layout};
use crate::pipeline::{Stage, Value};
use serde::Deserialize;

/// Whether the stage runs.
pub const HONOURED: bool = true;

/// Promtail keeps the last timestamp of at most this many label sets.
pub const MAX_LAST_KNOWN: usize = 10_000;

/// `timestamp:` options, with Promtail's names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Extracted key holding the time (required).
    #[serde(default)]
    pub source: String,
    /// A named format, `Unix*`, or a Go layout (required).
    #[serde(default)]
    pub format: String,
    /// Tried in order when `format` fails.
    #[serde(default)]
    pub fallback_formats: Option<Vec<String>>,
    /// IANA zone for layouts without a zone.
    #[serde(default)]
    pub location: Option<String>,
    /// `fudge` (default) or `skip`.
    #[serde(default)]
    pub action_on_failure: Option<String>,
}

/// Builds the stage; errors name the offending key.
pub fn build(c: Option<&Config>, _ctx: &BuildCtx) -> Result<Option<Box<dyn Stage>>, String> {
    let c = c.ok_or("timestamp stage config cannot be empty")?;
    Ok(Some(Box::new(TimestampStage::new(c)?)))
}

/// What to do when the time does not parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OnFailure {
    Fudge,
    Skip,
}

/// One format, compiled.
enum Format {
    /// A named Go layout: `time.Parse` (UTC default, system zone names).
    Named(Layout),
    Unix,
    UnixMs,
    UnixUs,
    UnixNs,
    /// A user layout: `time.Parse`, or `time.ParseInLocation` with
    /// `location`; `year_less` when the layout has no year.
    Custom {
        layout: Layout,
        year_less: bool,
    },
}

impl Format {
    fn new(f: &str) -> Format {
        let named = match f {
            "ANSIC" => "Mon Jan _2 15:04:05 2006",
            "UnixDate" => "Mon Jan _2 15:04:05 MST 2006",
            "RubyDate" => "Mon Jan 02 15:04:05 -0700 2006",
            "RFC822" => "02 Jan 06 15:04 MST",
            "RFC822Z" => "02 Jan 06 15:04 -0700",
            "RFC850" => "Monday, 02-Jan-06 15:04:05 MST",
            "RFC1123" => "Mon, 02 Jan 2006 15:04:05 MST",
            "RFC1123Z" => "Mon, 02 Jan 2006 15:04:05 -0700",
            "RFC3339" => "2006-01-02T15:04:05Z07:00",
            "RFC3339Nano" => "2006-01-02T15:04:05.999999999Z07:00",
            "Unix" => return Format::Unix,
            "UnixMs" => return Format::UnixMs,
            "UnixUs" => return Format::UnixUs,
            "UnixNs" => return Format::UnixNs,
            _ => {
                return Format::Custom {
                    layout: Layout::new(f),
                    // Promtail's test, on the layout text.
                    year_less: !f.contains("06"),
                };
            }
        };
        Format::Named(Layout::new(named))
    }

    /// Whether parsing needs Go's `Local` (zone names, or now's year).
    fn needs_local(&self, has_location: bool) -> bool {
        match self {
            Format::Named(l) => l.has_zone_name(),
            Format::Custom { layout, year_less } => {
                *year_less || (!has_location && layout.has_zone_name())
            }
            _ => false,
        }
    }
}

/// The stage. See the module docs.
pub struct TimestampStage {
    source: String,
    /// `format`, then `fallback_formats`.
    formats: Vec<Format>,
    /// `location`, for custom layouts.
    location: Option<GoLocation>,
    /// Go's `Local` (the system zone), loaded only if some format needs it.
    local: GoLocation,
    on_failure: OnFailure,
    last_known: LastKnown,
    /// Tests: "now" as Unix seconds, for year-less layouts.
    fixed_now: Option<i64>,
}

impl TimestampStage {
    pub fn new(c: &Config) -> Result<Self, String> {
        if c.source.is_empty() {
            return Err(
                "source: timestamp source value is required if timestamp is specified".into(),
            );
        }
        if c.format.is_empty() {
            return Err("format: timestamp format is required".into());
        }
        let location = match &c.location {
            Some(name) => Some(
                GoLocation::load(name)
                    .map(GoLocation::with_zone_list)
                    .map_err(|e| format!("location: invalid location specified: {e}"))?,
            ),
            None => None,
        };
        let on_failure = match c.action_on_failure.as_deref() {
            None | Some("fudge") => OnFailure::Fudge,
            Some("skip") => OnFailure::Skip,
            Some(other) => {
                return Err(format!(
                    "action_on_failure: invalid action on failure {other:?} (supported values are [skip fudge])"
                ))
            }
        };
        let formats: Vec<Format> = std::iter::once(c.format.as_str())
            .chain(c.fallback_formats.iter().flatten().map(String::as_str))
            .map(Format::new)
            .collect();
        let local = if formats.iter().any(|f| f.needs_local(location.is_some())) {
            // Its zone list now, not on the first line that needs it.
            GoLocation::system().with_zone_list()
        } else {
            GoLocation::Utc
        };
        Ok(TimestampStage {
            source: c.source.clone(),
            formats,
            location,
            local,
            on_failure,
            last_known: LastKnown::default(),
            fixed_now: test_now::get(),
        })
    }

    /// Tests: a stage whose "now" (for year-less layouts) is fixed, with Go's
    /// `Local` replaced by `local`.
    #[cfg(test)]
    fn with_now(mut self, unix_secs: i64, local: Option<&str>) -> Self {
        self.fixed_now = Some(unix_secs);
        if let Some(l) = local {
            self.local = GoLocation::load(l).unwrap();
        }
        self
    }

    /// Parses `s` with the formats in order; nanoseconds since the epoch.
    fn parse(&self, s: &str) -> Option<i64> {
        self.formats.iter().find_map(|f| self.parse_one(f, s))
    }

    fn parse_one(&self, f: &Format, s: &str) -> Option<i64> {
        match f {
            Format::Named(l) => l.parse(s, &self.local, false).ok()?.unix_nanos(),
            Format::Unix => parse_unix(s),
            Format::UnixMs => s.parse::<i64>().ok()?.checked_mul(1_000_000),
            Format::UnixUs => s.parse::<i64>().ok()?.checked_mul(1_000),
            Format::UnixNs => s.parse::<i64>().ok(),
            Format::Custom { layout, year_less } => {
                let (loc, default_local) = match &self.location {
                    Some(l) => (l, true),
                    None => (&self.local, false),
                };
                let mut t = layout.parse(s, loc, default_local).ok()?;
                if *year_less {
                    let (year, month) = t.year_month(loc);
                    if year != 0 {
                        // Promtail: "timestamp … is expected to not contain
                        // the year date component".
                        return None;
                    }
                    let (now_year, now_month) = self.now_year_month();
                    let add = if month == 12 && now_month == 1 {
                        now_year - 1
                    } else if month == 1 && now_month == 12 {
                        now_year + 1
                    } else {
                        now_year
                    };
                    t = t.add_years(add, loc);
                }
                t.unix_nanos()
            }
        }
    }

    /// The current (year, month) in Go's `Local`.
    fn now_year_month(&self) -> (i64, i64) {
        let now = self
            .fixed_now
            .unwrap_or_else(|| Timestamp::now().0.div_euclid(1_000_000_000));
        let wall = now + i64::from(self.local.offset_at(now));
        let (y, m, _) = civil_from_days(wall.div_euclid(86_400));
        (y, m)
    }

    fn parse_value(&self, v: &Value) -> Option<i64> {
        match v {
            Value::String(s) => self.parse(s),
            other => self.parse(&to_go_string(other)?),
        }
    }
}

/// Tests of whole pipelines (the golden tests of `pipelines/`): "now" for
/// year-less layouts, fixed per thread for the stages built afterwards.
#[cfg(test)]
pub(crate) mod test_now {
    use std::cell::Cell;

    thread_local! {
        static NOW: Cell<Option<i64>> = const { Cell::new(None) };
    }

    /// Stages built on this thread from now on take `unix_secs` as now.
    pub(crate) fn set(unix_secs: Option<i64>) {
        NOW.with(|n| n.set(unix_secs));
    }

    pub(super) fn get() -> Option<i64> {
        NOW.with(Cell::get)
    }
}

#[cfg(not(test))]
mod test_now {
    pub(super) fn get() -> Option<i64> {
        None
    }
}

/// Promtail's `Unix`: integer seconds, or `<sec>.<fraction>` (one dot).
fn parse_unix(s: &str) -> Option<i64> {
    if s.bytes().filter(|&b| b == b'.').count() == 1 {
        let (a, b) = s.split_once('.')?;
        let sec: i64 = a.parse().ok()?;
        let frac: i64 = b.parse().ok()?;
        // As Promtail: frac * 10^(9 - digits), in float64, truncated.
        let nsec = (frac as f64 * 10f64.powi(9 - b.len() as i32)) as i64;
        return sec.checked_mul(1_000_000_000)?.checked_add(nsec);
    }
    s.parse::<i64>().ok()?.checked_mul(1_000_000_000)
}

impl Stage for TimestampStage {
    fn name(&self) -> &'static str {
        "timestamp"
    }

    fn edits_only(&self) -> bool {
        true
    }

    fn edit(&mut self, entry: &mut Entry) {
        let parsed = entry
            .extracted
            .get(&self.source)
            .and_then(|v| self.parse_value(v));
        match (parsed, self.on_failure) {
            (Some(ns), OnFailure::Fudge) => {
                entry.timestamp = Timestamp(ns);
                self.last_known.set(&entry.labels, ns);
            }
            (Some(ns), OnFailure::Skip) => entry.timestamp = Timestamp(ns),
            (None, OnFailure::Fudge) => {
                if let Some(ns) = self.last_known.fudge(&entry.labels) {
                    entry.timestamp = Timestamp(ns);
                }
            }
            (None, OnFailure::Skip) => {}
        }
    }
}

/// The last timestamp set per label set (for `fudge`), bounded.
#[derive(Default)]
struct LastKnown {
    /// (timestamp ns, last use).
    map: LabelMap<(i64, u64)>,
    clock: u64,
}

impl LastKnown {
    fn set(&mut self, labels: &LabelSet, ns: i64) {
        self.clock += 1;
        if let Some(v) = self.map.get_mut(labels) {
            *v = (ns, self.clock);
            return;
        }
        if self.map.len() >= MAX_LAST_KNOWN {
            self.evict_half();
        }
        self.map.insert(labels.clone(), (ns, self.clock));
    }

    /// The last timestamp + 1 ns, remembered; `None` if none is known.
    fn fudge(&mut self, labels: &LabelSet) -> Option<i64> {
        self.clock += 1;
        let v = self.map.get_mut(labels)?;
        v.0 = v.0.saturating_add(1);
        v.1 = self.clock;
        Some(v.0)
    }

    /// Forgets the least recently used half.
    fn evict_half(&mut self) {
        let mut uses: Vec<u64> = self.map.values().map(|v| v.1).collect();
        let mid = uses.len() / 2;
        let (_, &mut cut, _) = uses.select_nth_unstable(mid);
        self.map.retain(|_, v| v.1 > cut);
    }
}
