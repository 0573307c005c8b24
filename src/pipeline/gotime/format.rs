//! [`ZonedTime`] (Go's `time.Time` as it is shown: an instant, the offset
//! and the zone abbreviation) and Go's `Time.Format` / `Time.String`.
//!
//! Must never panic on any layout or time.

use super::civil::Civil;
use super::layout::{Layout, Std};
use super::location::GoLocation;
use super::parse::{day_name, month_name};
use super::time::{Time, Zone};
use std::fmt::Write;

/// A Go `time.Time` as shown: an instant plus the offset and zone name it is
/// shown in.
#[derive(Clone, Debug, PartialEq)]
pub struct ZonedTime {
    pub secs: i64,
    pub nsec: u32,
    /// Seconds east of UTC.
    pub offset: i32,
    /// Zone abbreviation (`UTC`, `CET`); empty: shown as `-0700`.
    pub zone: Box<str>,
}

/// Seconds from 0001-01-01 to 1970-01-01: Go's zero time is year 1.
const ZERO_UNIX: i64 = -62_135_596_800;

impl ZonedTime {
    /// Go's zero `time.Time` (`0001-01-01 00:00:00 +0000 UTC`).
    pub fn zero() -> Self {
        ZonedTime::utc(ZERO_UNIX, 0)
    }

    /// The instant in UTC.
    pub fn utc(secs: i64, nsec: u32) -> Self {
        ZonedTime {
            secs,
            nsec,
            offset: 0,
            zone: "UTC".into(),
        }
    }

    /// The instant in location `loc`.
    pub fn in_location(secs: i64, nsec: u32, loc: &GoLocation) -> Self {
        let (offset, zone) = loc.zone_at(secs, |o, n| (o, n.into()));
        ZonedTime {
            secs,
            nsec,
            offset,
            zone,
        }
    }

    /// `time.Now()` in `local`.
    pub fn now(local: &GoLocation) -> Self {
        let now = jiff::Timestamp::now();
        let nsec = u32::try_from(now.subsec_nanosecond()).unwrap_or(0);
        ZonedTime::in_location(now.as_second(), nsec, local)
    }

    /// A parsed time, `local` being the location it was parsed with.
    pub fn from_time(t: Time<'_>, local: &GoLocation) -> Self {
        match t.settle(local).zone {
            Zone::Utc => ZonedTime::utc(t.unix, t.nsec),
            Zone::Local => ZonedTime::in_location(t.unix, t.nsec, local),
            Zone::Offset { offset, name } | Zone::Fixed { offset, name } => ZonedTime {
                secs: t.unix,
                nsec: t.nsec,
                offset,
                zone: name.into(),
            },
        }
    }

    pub fn unix_nano(&self) -> i128 {
        i128::from(self.secs) * 1_000_000_000 + i128::from(self.nsec)
    }

    /// Civil fields in the time's own offset.
    fn civil(&self) -> Civil {
        Civil::of_wall(self.secs.saturating_add(i64::from(self.offset)))
    }

    pub fn year(&self) -> i64 {
        self.civil().year
    }
    pub fn day(&self) -> i64 {
        self.civil().day
    }
    pub fn hour(&self) -> i64 {
        self.civil().hour
    }
    pub fn minute(&self) -> i64 {
        self.civil().min
    }
    pub fn second(&self) -> i64 {
        self.civil().sec
    }
    pub fn year_day(&self) -> i64 {
        self.civil().yday
    }

    /// Go's `Time.String()` (without the monotonic clock reading).
    pub fn to_go_string(&self) -> String {
        self.format("2006-01-02 15:04:05.999999999 -0700 MST")
    }

    /// Go's `Time.Format(layout)`.
    pub fn format(&self, layout: &str) -> String {
        let mut out = String::with_capacity(layout.len() + 10);
        self.format_into(&Layout::new(layout), &mut out);
        out
    }

    /// Go's `Time.AppendFormat` with a compiled layout.
    pub fn format_into(&self, layout: &Layout, out: &mut String) {
        let c = self.civil();
        for chunk in &layout.chunks {
            out.push_str(&chunk.prefix);
            self.element(&c, chunk.std, out);
        }
        out.push_str(&layout.tail);
    }

    fn element(&self, c: &Civil, std: Std, out: &mut String) {
        match std {
            // Go: the absolute year's last two digits.
            Std::Year => push_int(out, (c.year % 100).abs(), 2),
            Std::LongYear => push_int(out, c.year, 4),
            Std::Month => out.push_str(month_name(c.month, false)),
            Std::LongMonth => out.push_str(month_name(c.month, true)),
            Std::NumMonth => push_int(out, c.month, 0),
            Std::ZeroMonth => push_int(out, c.month, 2),
            Std::WeekDay => out.push_str(day_name(c.weekday, false)),
            Std::LongWeekDay => out.push_str(day_name(c.weekday, true)),
            Std::Day => push_int(out, c.day, 0),
            Std::UnderDay => {
                if c.day < 10 {
                    out.push(' ');
                }
                push_int(out, c.day, 0);
            }
            Std::ZeroDay => push_int(out, c.day, 2),
            Std::UnderYearDay => {
                if c.yday < 100 {
                    out.push(' ');
                    if c.yday < 10 {
                        out.push(' ');
                    }
                }
                push_int(out, c.yday, 0);
            }
            Std::ZeroYearDay => push_int(out, c.yday, 3),
            Std::Hour => push_int(out, c.hour, 2),
            Std::Hour12 | Std::ZeroHour12 => {
                let h = match c.hour % 12 {
                    0 => 12,
                    h => h,
                };
                push_int(out, h, if std == Std::Hour12 { 0 } else { 2 });
            }
            Std::Minute => push_int(out, c.min, 0),
            Std::ZeroMinute => push_int(out, c.min, 2),
            Std::Second => push_int(out, c.sec, 0),
            Std::ZeroSecond => push_int(out, c.sec, 2),
            Std::PmUpper => out.push_str(if c.hour >= 12 { "PM" } else { "AM" }),
            Std::PmLower => out.push_str(if c.hour >= 12 { "pm" } else { "am" }),
            Std::NumTz {
                iso,
                short,
                colon,
                seconds,
            } => {
                if iso && self.offset == 0 {
                    out.push('Z');
                    return;
                }
                // Go's arithmetic, to the letter (minutes truncated toward
                // zero pick the sign).
                let mut zone = i64::from(self.offset) / 60;
                let mut abs = i64::from(self.offset);
                if zone < 0 {
                    out.push('-');
                    zone = -zone;
                    abs = -abs;
                } else {
                    out.push('+');
                }
                push_int(out, zone / 60, 2);
                if colon {
                    out.push(':');
                }
                if !short {
                    push_int(out, zone % 60, 2);
                }
                if seconds {
                    if colon {
                        out.push(':');
                    }
                    push_int(out, abs % 60, 2);
                }
            }
            Std::Tz => {
                if !self.zone.is_empty() {
                    out.push_str(&self.zone);
                    return;
                }
                // Go: `-0700` with the seconds dropped.
                let zone = i64::from(self.offset / 60);
                out.push(if zone < 0 { '-' } else { '+' });
                push_int(out, zone.abs() / 60, 2);
                push_int(out, zone.abs() % 60, 2);
            }
            Std::Frac { digits, nine, sep } => {
                // Go's `appendNano`: at most nine digits.
                if nine && (digits == 0 || self.nsec == 0) {
                    return;
                }
                let mut buf = [0u8; 9];
                let mut ns = self.nsec;
                for b in buf.iter_mut().rev() {
                    *b = b'0' + (ns % 10) as u8;
                    ns /= 10;
                }
                let mut d = &buf[..digits.min(9)];
                if nine {
                    while let [rest @ .., b'0'] = d {
                        d = rest;
                    }
                    if d.is_empty() {
                        return;
                    }
                }
                out.push(char::from(sep));
                d.iter().for_each(|&b| out.push(char::from(b)));
            }
        }
    }
}

/// Go's `appendInt`: `v` in decimal, zero-padded to `width` digits.
fn push_int(out: &mut String, v: i64, width: usize) {
    if v < 0 {
        out.push('-');
    }
    let _ = write!(out, "{:0width$}", v.unsigned_abs());
}
