//! Go's `time.Parse` / `time.ParseInLocation` on a compiled [`Layout`].
//!
//! Follows Go 1.2x's `time/format.go`: every layout element, runs of spaces
//! in the layout matching runs of spaces (even none) in the value,
//! case-insensitive month and day names, a fractional second accepted
//! after the seconds even when the layout has none, Go's range checks,
//! day-of-month and day-of-year validation, AM/PM, and Go's zone rules: `Z`
//! and `UTC` are UTC; a numeric offset is taken as written; an abbreviation
//! the location has used takes that offset; `GMT+3` is a +3h zone on the
//! UTC instant of the wall clock, any other abbreviation counts as UTC; no
//! zone means the default location.
//!
//! Must never: panic on any input (all slicing is on bytes,
//! bounds-checked), or allocate.

use super::civil::{days_from_civil, days_in, month_day};
use super::layout::{is_digit, Chunk, Layout, Std};
use super::location::GoLocation;
use super::time::{Time, Zone};

/// Why a value does not parse; [`ParseError::message`] words it as Go does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// The value from byte `at` does not fit the layout there.
    Bad { at: usize },
    /// Text left over from byte `at`.
    ExtraText { at: usize },
    /// A field out of its range (`month`, `hour`, `day`, `day-of-year`, …).
    OutOfRange(&'static str),
    /// The day of the year disagrees with the `month` or the `day`.
    DayOfYearMismatch(&'static str),
}

impl ParseError {
    /// The error text for `value` parsed with `layout`.
    pub fn message(self, layout: &str, value: &str) -> String {
        let from = |at: usize| value.get(at..).unwrap_or("");
        match self {
            ParseError::Bad { at } => format!(
                "parsing time {value:?} as {layout:?}: cannot parse {:?}",
                from(at)
            ),
            ParseError::ExtraText { at } => {
                format!("parsing time {value:?}: extra text: {:?}", from(at))
            }
            ParseError::OutOfRange(what) => format!("parsing time {value:?}: {what} out of range"),
            ParseError::DayOfYearMismatch(what) => {
                format!("parsing time {value:?}: day-of-year does not match {what}")
            }
        }
    }
}

/// How one element failed: Go's `errBad` or its `rangeErrString`.
enum Fail {
    Bad,
    Range(&'static str),
}

/// The fields read so far (Go's locals in `parse`).
struct Fields<'v> {
    year: i64,
    month: i64,
    day: i64,
    yday: i64,
    hour: i64,
    min: i64,
    sec: i64,
    nsec: i64,
    am: bool,
    pm: bool,
    utc: bool,
    offset: Option<i32>,
    zone_name: Option<&'v [u8]>,
}

impl Layout {
    /// Go's `parse(layout, value, defaultLocation, local)`: `local` is the
    /// location whose abbreviations are recognised, and the default location
    /// is `local` if `default_local`, else UTC (`time.Parse` passes UTC and
    /// `Local`; `time.ParseInLocation` passes the location twice).
    pub fn parse<'v>(
        &self,
        value: &'v str,
        local: &GoLocation,
        default_local: bool,
    ) -> Result<Time<'v>, ParseError> {
        let at = |v: &[u8]| value.len() - v.len();
        let mut v = value.as_bytes();
        let mut f = Fields {
            year: 0,
            month: -1,
            day: -1,
            yday: -1,
            hour: 0,
            min: 0,
            sec: 0,
            nsec: 0,
            am: false,
            pm: false,
            utc: false,
            offset: None,
            zone_name: None,
        };
        for c in &self.chunks {
            v = skip(v, c.prefix.as_bytes()).ok_or(ParseError::Bad { at: at(v) })?;
            v = f.element(c, v).map_err(|e| match e {
                Fail::Bad => ParseError::Bad { at: at(v) },
                Fail::Range(what) => ParseError::OutOfRange(what),
            })?;
        }
        v = skip(v, self.tail.as_bytes()).ok_or(ParseError::Bad { at: at(v) })?;
        if !v.is_empty() {
            return Err(ParseError::ExtraText { at: at(v) });
        }
        f.finish(local, default_local)
    }
}

impl<'v> Fields<'v> {
    /// Reads element `c` at the start of `v`; the rest of `v`.
    #[inline(always)]
    fn element(&mut self, c: &Chunk, mut v: &'v [u8]) -> Result<&'v [u8], Fail> {
        match c.std {
            Std::Year => {
                let p = v.get(..2).ok_or(Fail::Bad)?;
                let y = atoi(p).ok_or(Fail::Bad)?;
                self.year = if y >= 69 { y + 1900 } else { y + 2000 };
                v = &v[2..];
            }
            Std::LongYear => {
                if v.len() < 4 || !is_digit(v, 0) {
                    return Err(Fail::Bad);
                }
                self.year = atoi(&v[..4]).ok_or(Fail::Bad)?;
                v = &v[4..];
            }
            Std::Month | Std::LongMonth => {
                let long = c.std == Std::LongMonth;
                let (i, r) = lookup(months(long), v).ok_or(Fail::Bad)?;
                self.month = i as i64 + 1;
                v = r;
            }
            Std::NumMonth | Std::ZeroMonth => {
                (self.month, v) = getnum_in(v, c.std == Std::ZeroMonth, 1..=12, "month")?;
            }
            Std::WeekDay | Std::LongWeekDay => {
                let long = c.std == Std::LongWeekDay;
                v = lookup(days(long), v).ok_or(Fail::Bad)?.1;
            }
            Std::Day | Std::UnderDay | Std::ZeroDay => {
                if c.std == Std::UnderDay && v.first() == Some(&b' ') {
                    v = &v[1..];
                }
                let (d, r) = getnum(v, c.std == Std::ZeroDay).ok_or(Fail::Bad)?;
                self.day = d;
                v = r;
            }
            Std::UnderYearDay | Std::ZeroYearDay => {
                for _ in 0..2 {
                    if c.std == Std::UnderYearDay && v.first() == Some(&b' ') {
                        v = &v[1..];
                    }
                }
                let (d, r) = getnum3(v, c.std == Std::ZeroYearDay).ok_or(Fail::Bad)?;
                self.yday = d;
                v = r;
            }
            Std::Hour | Std::Hour12 | Std::ZeroHour12 => {
                let max = if c.std == Std::Hour { 23 } else { 12 };
                (self.hour, v) = getnum_in(v, c.std == Std::ZeroHour12, 0..=max, "hour")?;
            }
            Std::Minute | Std::ZeroMinute => {
                (self.min, v) = getnum_in(v, c.std == Std::ZeroMinute, 0..=59, "minute")?;
            }
            Std::Second | Std::ZeroSecond => {
                (self.sec, v) = getnum_in(v, c.std == Std::ZeroSecond, 0..=59, "second")?;
                // A fraction in the value that the layout does not have is
                // accepted right after the seconds.
                if v.len() >= 2 && matches!(v[0], b'.' | b',') && is_digit(v, 1) && !c.next_is_frac
                {
                    let n = 1 + v[1..].iter().take_while(|c| c.is_ascii_digit()).count();
                    self.nsec = parse_nanoseconds(v, n)?;
                    v = &v[n..];
                }
            }
            Std::PmUpper | Std::PmLower => {
                let p = v.get(..2).ok_or(Fail::Bad)?;
                let upper = c.std == Std::PmUpper;
                if p == if upper { b"PM" } else { b"pm" } {
                    self.pm = true;
                } else if p == if upper { b"AM" } else { b"am" } {
                    self.am = true;
                } else {
                    return Err(Fail::Bad);
                }
                v = &v[2..];
            }
            Std::NumTz { iso: true, .. } if v.first() == Some(&b'Z') => {
                self.utc = true;
                v = &v[1..];
            }
            Std::NumTz {
                short,
                colon,
                seconds,
                ..
            } => {
                let (off, r) = parse_offset(v, short, colon, seconds)?;
                self.offset = Some(off);
                v = r;
            }
            Std::Tz => {
                if v.starts_with(b"UTC") {
                    self.utc = true;
                    v = &v[3..];
                } else {
                    let n = parse_time_zone(v).ok_or(Fail::Bad)?;
                    self.zone_name = Some(&v[..n]);
                    v = &v[n..];
                }
            }
            Std::Frac {
                digits,
                nine: false,
                ..
            } => {
                let n = 1 + digits;
                if v.len() < n {
                    return Err(Fail::Bad);
                }
                self.nsec = parse_nanoseconds(v, n)?;
                v = &v[n..];
            }
            Std::Frac { nine: true, .. } => {
                if v.len() >= 2 && matches!(v[0], b'.' | b',') && is_digit(v, 1) {
                    let n = 1 + v[1..].iter().take_while(|c| c.is_ascii_digit()).count();
                    self.nsec = parse_nanoseconds(v, n)?;
                    v = &v[n..];
                }
            }
        }
        Ok(v)
    }

    /// Go's checks and zone rules after the last element.
    #[inline(always)]
    fn finish(mut self, local: &GoLocation, default_local: bool) -> Result<Time<'v>, ParseError> {
        if self.pm && self.hour < 12 {
            self.hour += 12;
        } else if self.am && self.hour == 12 {
            self.hour = 0;
        }
        if self.yday >= 0 {
            let (m, d) =
                month_day(self.year, self.yday).ok_or(ParseError::OutOfRange("day-of-year"))?;
            if self.month >= 0 && self.month != m {
                return Err(ParseError::DayOfYearMismatch("month"));
            }
            if self.day >= 0 && self.day != d {
                return Err(ParseError::DayOfYearMismatch("day"));
            }
            (self.month, self.day) = (m, d);
        } else {
            self.month = self.month.max(1);
            self.day = if self.day < 0 { 1 } else { self.day };
        }
        if self.day < 1 || self.day > days_in(self.month, self.year) {
            return Err(ParseError::OutOfRange("day"));
        }
        let wall = days_from_civil(self.year, self.month, self.day) * 86_400
            + self.hour * 3600
            + self.min * 60
            + self.sec;
        // `nsec` is below 10^9 (nine digits at most).
        let nsec = self.nsec as u32;
        // The zone name is ASCII (`parse_time_zone`).
        let name = match self.zone_name {
            Some(n) => std::str::from_utf8(n).unwrap_or(""),
            None => "",
        };
        let (unix, zone) = if self.utc {
            (wall, Zone::Utc)
        } else if let Some(offset) = self.offset {
            (wall - i64::from(offset), Zone::Offset { offset, name })
        } else if self.zone_name.is_some() {
            match local.lookup_name(name, wall) {
                Some(off) => (wall - i64::from(off), Zone::Local),
                None => {
                    // Unknown abbreviation: a UTC instant in a made-up zone
                    // whose offset is 0, or N hours for `GMT+N`.
                    let off = match name.strip_prefix("GMT") {
                        Some(n) if !n.is_empty() => atoi(n.as_bytes()).unwrap_or(0) * 3600,
                        _ => 0,
                    };
                    let offset = i32::try_from(off).unwrap_or(0);
                    (wall, Zone::Fixed { offset, name })
                }
            }
        } else if default_local {
            (local.date(wall), Zone::Local)
        } else {
            (wall, Zone::Utc)
        };
        Ok(Time { unix, nsec, zone })
    }
}

const SHORT_MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const LONG_MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const SHORT_DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const LONG_DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

fn months(long: bool) -> &'static [&'static str; 12] {
    if long {
        &LONG_MONTHS
    } else {
        &SHORT_MONTHS
    }
}

fn days(long: bool) -> &'static [&'static str; 7] {
    if long {
        &LONG_DAYS
    } else {
        &SHORT_DAYS
    }
}

/// Go's English name of `month` (1..=12; `long`: in full, else three
/// letters).
pub(super) fn month_name(month: i64, long: bool) -> &'static str {
    months(long)[usize::try_from(month - 1).unwrap_or(0).min(11)]
}

/// Go's English name of `weekday` (0 = Sunday).
pub(super) fn day_name(weekday: i64, long: bool) -> &'static str {
    days(long)[usize::try_from(weekday).unwrap_or(0).min(6)]
}

/// Go's `lookup`: the first name that prefixes `v`, ignoring ASCII case.
fn lookup<'v>(names: &[&str], v: &'v [u8]) -> Option<(usize, &'v [u8])> {
    names.iter().enumerate().find_map(|(i, name)| {
        let n = name.len();
        (v.len() >= n && v[..n].eq_ignore_ascii_case(name.as_bytes())).then(|| (i, &v[n..]))
    })
}

/// Go's `skip`: removes `prefix` from `v`, a run of spaces in the prefix
/// matching any run (even none) of spaces in the value.
fn skip<'v>(mut v: &'v [u8], mut prefix: &[u8]) -> Option<&'v [u8]> {
    while let Some(&p) = prefix.first() {
        if p == b' ' {
            if v.first().is_some_and(|&c| c != b' ') {
                return None;
            }
            while prefix.first() == Some(&b' ') {
                prefix = &prefix[1..];
            }
            while v.first() == Some(&b' ') {
                v = &v[1..];
            }
            continue;
        }
        if v.first() != Some(&p) {
            return None;
        }
        prefix = &prefix[1..];
        v = &v[1..];
    }
    Some(v)
}

/// Go's `atoi`: an optional sign and digits, all of `s`.
fn atoi(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut x: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        x = x.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
        if x > 1 << 63 {
            return None;
        }
    }
    if neg {
        0i64.checked_sub_unsigned(x)
    } else {
        i64::try_from(x).ok()
    }
}

/// Go's `getnum`: one or two digits (exactly two if `fixed`).
fn getnum(s: &[u8], fixed: bool) -> Option<(i64, &[u8])> {
    if !is_digit(s, 0) {
        return None;
    }
    if !is_digit(s, 1) {
        if fixed {
            return None;
        }
        return Some((i64::from(s[0] - b'0'), &s[1..]));
    }
    Some((
        i64::from(s[0] - b'0') * 10 + i64::from(s[1] - b'0'),
        &s[2..],
    ))
}

/// Go's `getnum`, then its range check naming `what`.
#[inline]
fn getnum_in<'v>(
    v: &'v [u8],
    fixed: bool,
    range: std::ops::RangeInclusive<i64>,
    what: &'static str,
) -> Result<(i64, &'v [u8]), Fail> {
    let (n, r) = getnum(v, fixed).ok_or(Fail::Bad)?;
    if !range.contains(&n) {
        return Err(Fail::Range(what));
    }
    Ok((n, r))
}

/// Go's `getnum3`: one to three digits (exactly three if `fixed`).
fn getnum3(s: &[u8], fixed: bool) -> Option<(i64, &[u8])> {
    let mut n = 0i64;
    let mut i = 0;
    while i < 3 && is_digit(s, i) {
        n = n * 10 + i64::from(s[i] - b'0');
        i += 1;
    }
    if i == 0 || (fixed && i != 3) {
        return None;
    }
    Some((n, &s[i..]))
}

/// Go's `parseNanoseconds`: `v[0]` is `.` or `,`, `v[1..n]` the digits (at
/// most nine are used; Go's `atoi` takes a sign there too).
#[inline]
fn parse_nanoseconds(v: &[u8], n: usize) -> Result<i64, Fail> {
    if !matches!(v.first(), Some(b'.' | b',')) {
        return Err(Fail::Bad);
    }
    let n = n.min(10);
    let mut ns = atoi(v.get(1..n).ok_or(Fail::Bad)?).ok_or(Fail::Bad)?;
    if ns < 0 {
        return Err(Fail::Range("fractional second"));
    }
    for _ in n..10 {
        ns *= 10;
    }
    Ok(ns)
}

/// A numeric zone offset element; (seconds east, rest).
#[inline]
fn parse_offset(v: &[u8], short: bool, colon: bool, seconds: bool) -> Result<(i32, &[u8]), Fail> {
    let (hh, mm, ss, n): (&[u8], &[u8], &[u8], usize) = match (short, colon, seconds) {
        (_, true, false) if v.len() >= 6 && v[3] == b':' => (&v[1..3], &v[4..6], b"00", 6),
        (true, _, _) if v.len() >= 3 => (&v[1..3], b"00", b"00", 3),
        (_, true, true) if v.len() >= 9 && v[3] == b':' && v[6] == b':' => {
            (&v[1..3], &v[4..6], &v[7..9], 9)
        }
        (false, false, true) if v.len() >= 7 => (&v[1..3], &v[3..5], &v[5..7], 7),
        (false, false, false) if v.len() >= 5 => (&v[1..3], &v[3..5], b"00", 5),
        _ => return Err(Fail::Bad),
    };
    // As Go: a field after one that does not read is not read (0).
    let h = getnum(hh, true).map(|x| x.0);
    let m = h.and_then(|_| getnum(mm, true).map(|x| x.0));
    let s = m.and_then(|_| getnum(ss, true).map(|x| x.0));
    // Go checks with `>` (offsets of 24 hours or 60 minutes are accepted);
    // the last failing check names the error, which comes before a bad
    // field's.
    for (x, max, what) in [
        (s, 60, "time zone offset second"),
        (m, 60, "time zone offset minute"),
        (h, 24, "time zone offset hour"),
    ] {
        if x.unwrap_or(0) > max {
            return Err(Fail::Range(what));
        }
    }
    let (Some(h), Some(m), Some(s)) = (h, m, s) else {
        return Err(Fail::Bad);
    };
    let off = ((h * 60 + m) * 60 + s) as i32;
    match v[0] {
        b'+' => Ok((off, &v[n..])),
        b'-' => Ok((-off, &v[n..])),
        _ => Err(Fail::Bad),
    }
}

/// Go's `parseTimeZone`: the length of the zone abbreviation at the start
/// of `v`.
fn parse_time_zone(v: &[u8]) -> Option<usize> {
    if v.len() < 3 {
        return None;
    }
    if v.starts_with(b"ChST") || v.starts_with(b"MeST") {
        return Some(4);
    }
    if v.starts_with(b"GMT") {
        return Some(3 + parse_signed_offset(&v[3..]));
    }
    if v[0] == b'+' || v[0] == b'-' {
        let n = parse_signed_offset(v);
        return (n > 0).then_some(n);
    }
    let upper = v
        .iter()
        .take(6)
        .take_while(|c| c.is_ascii_uppercase())
        .count();
    match upper {
        3 => Some(3),
        4 if v[3] == b'T' || v.starts_with(b"WITA") => Some(4),
        5 if v[4] == b'T' => Some(5),
        _ => None,
    }
}

/// Go's `parseSignedOffset`: a sign and a number up to 23; its length, or 0.
fn parse_signed_offset(v: &[u8]) -> usize {
    if !matches!(v.first(), Some(b'+' | b'-')) {
        return 0;
    }
    let digits = v[1..].iter().take_while(|c| c.is_ascii_digit()).count();
    match atoi(&v[1..1 + digits]) {
        Some(x) if digits > 0 && x <= 23 => 1 + digits,
        _ => 0,
    }
}
