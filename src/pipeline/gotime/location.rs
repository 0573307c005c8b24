//! Go's `*time.Location`: UTC, or a tz database zone with the zone
//! abbreviations it has used (Go's zone list, for `lookupName`), and Go's
//! `Date` resolution of a wall-clock time in it. Zones come from jiff.
//!
//! Must never panic; out-of-range instants count as offset 0.

use jiff::tz::TimeZone;
use jiff::Timestamp as JTimestamp;
use std::sync::OnceLock;

/// A Go `*time.Location`.
#[derive(Clone, Debug)]
pub enum GoLocation {
    Utc,
    Tz {
        tz: TimeZone,
        /// (abbreviation, offset) in order of first use; listed on first
        /// need.
        zones: OnceLock<Vec<(Box<str>, i32)>>,
    },
}

impl From<TimeZone> for GoLocation {
    fn from(tz: TimeZone) -> GoLocation {
        GoLocation::Tz {
            tz,
            zones: OnceLock::new(),
        }
    }
}

impl GoLocation {
    /// Go's `time.LoadLocation`: `""` and `"UTC"` are UTC, `"Local"` the
    /// system zone, anything else a tz database name.
    pub fn load(name: &str) -> Result<GoLocation, String> {
        match name {
            "" | "UTC" => Ok(GoLocation::Utc),
            "Local" => Ok(GoLocation::system()),
            _ => {
                if name.contains("..") || name.starts_with('/') || name.starts_with('\\') {
                    return Err(format!("time: invalid location name {name:?}"));
                }
                TimeZone::get(name)
                    .map(GoLocation::from)
                    .map_err(|e| e.to_string())
            }
        }
    }

    /// Go's `time.Local`: the `TZ` variable, else `/etc/localtime`, else UTC.
    pub fn system() -> GoLocation {
        match TimeZone::try_system() {
            Ok(tz) => GoLocation::from(tz),
            Err(_) => GoLocation::Utc,
        }
    }

    /// Lists the abbreviations now rather than on the first parse that
    /// needs them.
    pub fn with_zone_list(self) -> GoLocation {
        if let GoLocation::Tz { tz, zones } = &self {
            zones.get_or_init(|| zone_list(tz));
        }
        self
    }

    /// The UTC offset (seconds) in effect at Unix second `unix`.
    pub fn offset_at(&self, unix: i64) -> i32 {
        self.zone_at(unix, |off, _| off)
    }

    /// `f(offset, abbreviation)` of the zone in effect at Unix second
    /// `unix` (Go's `Location.lookup`).
    pub fn zone_at<R>(&self, unix: i64, f: impl FnOnce(i32, &str) -> R) -> R {
        match self {
            GoLocation::Utc => f(0, "UTC"),
            GoLocation::Tz { tz, .. } => match JTimestamp::from_second(unix) {
                Ok(ts) => {
                    let info = tz.to_offset_info(ts);
                    f(info.offset().seconds(), info.abbreviation())
                }
                Err(_) => f(0, "UTC"),
            },
        }
    }

    /// Go's `Location.lookupName`: the offset of abbreviation `name`,
    /// preferring the zone in effect around wall time `wall`.
    pub fn lookup_name(&self, name: &str, wall: i64) -> Option<i32> {
        let GoLocation::Tz { tz, zones } = self else {
            // Go's UTC has no zone list.
            return None;
        };
        let zones = zones.get_or_init(|| zone_list(tz));
        for (n, off) in zones {
            if &**n == name {
                let found = self.zone_at(wall - i64::from(*off), |o, a| (a == name).then_some(o));
                if found.is_some() {
                    return found;
                }
            }
        }
        zones.iter().find(|(n, _)| &**n == name).map(|(_, o)| *o)
    }

    /// Go's `time.Date` in this location: the Unix second of wall-clock
    /// second `wall`. In a gap or an overlap Go takes the offset in effect
    /// at `wall - offset(wall)`, which this reproduces.
    pub fn date(&self, wall: i64) -> i64 {
        let o1 = self.offset_at(wall);
        if o1 == 0 {
            return wall;
        }
        wall - i64::from(self.offset_at(wall - i64::from(o1)))
    }
}

/// The abbreviations `tz` has used, with their offsets, in order.
fn zone_list(tz: &TimeZone) -> Vec<(Box<str>, i32)> {
    let mut zones: Vec<(Box<str>, i32)> = Vec::new();
    let mut add = |name: &str, off: i32| {
        if !zones.iter().any(|(n, o)| &**n == name && *o == off) {
            zones.push((name.into(), off));
        }
    };
    let first = tz.to_offset_info(JTimestamp::MIN);
    add(first.abbreviation(), first.offset().seconds());
    // Transitions up to 2100 cover every abbreviation in use; rule-based
    // zones repeat theirs after that.
    let end = JTimestamp::from_second(4_102_444_800).unwrap_or(JTimestamp::MAX);
    for t in tz.following(JTimestamp::MIN).take(20_000) {
        if t.timestamp() > end {
            break;
        }
        add(t.abbreviation(), t.offset().seconds());
    }
    zones
}
