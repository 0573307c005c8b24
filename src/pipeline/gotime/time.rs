//! [`Time`]: what parsing gives, Go's `time.Time` as an instant plus the
//! zone Go would record, borrowing any zone name from the parsed value.
//!
//! Must never panic or allocate.

use super::civil::{civil_from_days, days_from_civil};
use super::location::GoLocation;

/// The zone of a parsed [`Time`] (it matters when its wall clock is read or
/// its year is changed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Zone<'v> {
    Utc,
    /// The location given to the parse.
    Local,
    /// A numeric offset in the value, with the abbreviation next to it if
    /// the layout had one: Go records the location when it has this offset
    /// (and name) at that instant, else a fixed zone ([`Time::settle`]
    /// decides; the instant is the same either way).
    Offset {
        offset: i32,
        name: &'v str,
    },
    /// Go's `FixedZone(name, offset)`.
    Fixed {
        offset: i32,
        name: &'v str,
    },
}

/// A parsed time: Unix seconds, nanoseconds, zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Time<'v> {
    pub unix: i64,
    pub nsec: u32,
    pub zone: Zone<'v>,
}

impl<'v> Time<'v> {
    /// Nanoseconds since the epoch; `None` outside `i64` (years before 1678
    /// or after 2262).
    pub fn unix_nanos(self) -> Option<i64> {
        self.unix
            .checked_mul(1_000_000_000)?
            .checked_add(i64::from(self.nsec))
    }

    /// Go's choice for a numeric offset: `local` when it has that offset
    /// (and abbreviation, if one was parsed) at this instant, else a fixed
    /// zone. Other zones are returned as they are.
    pub fn settle(self, local: &GoLocation) -> Time<'v> {
        let Zone::Offset { offset, name } = self.zone else {
            return self;
        };
        let is_local = local.zone_at(self.unix, |o, n| {
            o == offset && (name.is_empty() || n == name)
        });
        let zone = if is_local {
            Zone::Local
        } else {
            Zone::Fixed { offset, name }
        };
        Time { zone, ..self }
    }

    /// The seconds east of UTC of this time's zone.
    pub fn offset(self, local: &GoLocation) -> i32 {
        match self.zone {
            Zone::Utc => 0,
            Zone::Offset { offset, .. } | Zone::Fixed { offset, .. } => offset,
            Zone::Local => local.offset_at(self.unix),
        }
    }

    /// The wall-clock seconds (as if UTC) of this time in its own zone.
    fn wall(self, local: &GoLocation) -> i64 {
        self.unix.saturating_add(i64::from(self.offset(local)))
    }

    /// Civil year and month of this time in its own zone.
    pub fn year_month(self, local: &GoLocation) -> (i64, i64) {
        let (y, m, _) = civil_from_days(self.wall(local).div_euclid(86_400));
        (y, m)
    }

    /// Go's `t.AddDate(years, 0, 0)`: the same wall clock `years` later in
    /// the same zone (Feb 29 into a common year becomes Mar 1).
    pub fn add_years(self, years: i64, local: &GoLocation) -> Time<'v> {
        let t = self.settle(local);
        let wall = t.wall(local);
        let days = wall.div_euclid(86_400);
        let sod = wall.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        let wall = days_from_civil(y + years, m, d) * 86_400 + sod;
        let unix = match t.zone {
            Zone::Utc => wall,
            Zone::Offset { offset, .. } | Zone::Fixed { offset, .. } => wall - i64::from(offset),
            Zone::Local => local.date(wall),
        };
        Time { unix, ..t }
    }
}
