//! Go's `time.Parse` / `time.ParseInLocation`, driven by a Go reference-time
//! layout (`2006-01-02T15:04:05Z07:00`), as the `timestamp` stage needs it.
//!
//! Owns: [`Layout`] (a layout split once, at build time, into literal text
//! and elements, the way Go's `nextStdChunk` splits it), [`GoLocation`] (a
//! time zone with Go's lookups: the zone abbreviations it has used and Go's
//! `Date` resolution of a wall-clock time), and [`Layout::parse`].
//!
//! Follows Go 1.2x's `time/format.go`: every layout element (`2006 06 01 1
//! Jan January 02 2 _2 __2 002 15 03 3 04 4 05 5 PM pm MST Mon Monday -0700
//! -07:00 -07 -070000 -07:00:00` and their `Z` forms, `.000`/`,000`/`.999`/
//! `,999`), runs of spaces in the layout matching runs of spaces in the
//! value, case-insensitive month and day names, a fractional second accepted
//! after the seconds even when the layout has none, day-of-month and
//! day-of-year validation, AM/PM, and Go's zone rules: `Z`/`UTC` are UTC; a
//! numeric offset is taken as written; an abbreviation the location has used
//! takes that offset, `GMT+3` is recorded as a +3h zone on a UTC instant, any
//! other abbreviation counts as UTC; no zone means the default location.
//!
//! Must never: panic on any input (all slicing is on bytes, bounds-checked),
//! or allocate while parsing.

use jiff::tz::TimeZone;
use jiff::Timestamp as JTimestamp;

/// One layout element (Go's `std*` constants).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Std {
    LongMonth,
    Month,
    NumMonth,
    ZeroMonth,
    LongWeekDay,
    WeekDay,
    Day,
    UnderDay,
    ZeroDay,
    UnderYearDay,
    ZeroYearDay,
    Hour,
    Hour12,
    ZeroHour12,
    Minute,
    ZeroMinute,
    Second,
    ZeroSecond,
    LongYear,
    Year,
    PmUpper,
    PmLower,
    Tz,
    Iso8601Tz,
    Iso8601SecondsTz,
    Iso8601ShortTz,
    Iso8601ColonTz,
    Iso8601ColonSecondsTz,
    NumTz,
    NumSecondsTz,
    NumShortTz,
    NumColonTz,
    NumColonSecondsTz,
    /// `.000`: exactly this many digits.
    FracSecond0(usize),
    /// `.999`: optional, any number of digits.
    FracSecond9,
}

impl Std {
    fn is_frac(self) -> bool {
        matches!(self, Std::FracSecond0(_) | Std::FracSecond9)
    }
}

/// Literal text, then an element.
#[derive(Clone, Debug)]
struct Chunk {
    prefix: Box<[u8]>,
    std: Std,
    /// The element after this one is a fractional second (Go's special case
    /// for a fraction after the seconds looks at it).
    next_is_frac: bool,
}

/// A Go layout, split into elements once.
#[derive(Clone, Debug)]
pub struct Layout {
    chunks: Vec<Chunk>,
    /// Literal text after the last element.
    tail: Box<[u8]>,
    /// The layout has a zone-abbreviation element (`MST`), which needs the
    /// location's abbreviations.
    pub has_zone_name: bool,
}

fn starts_with_lower(s: &[u8]) -> bool {
    matches!(s.first(), Some(c) if c.is_ascii_lowercase())
}

fn is_digit(s: &[u8], i: usize) -> bool {
    matches!(s.get(i), Some(c) if c.is_ascii_digit())
}

/// Go's `nextStdChunk`: (prefix length, element and its length) of the first
/// element in `l`; `None` when there is none.
fn next_std_chunk(l: &[u8]) -> (usize, Option<(Std, usize)>) {
    let has = |i: usize, s: &[u8]| l.len() >= i + s.len() && &l[i..i + s.len()] == s;
    for i in 0..l.len() {
        match l[i] {
            b'J' if has(i, b"Jan") => {
                if has(i, b"January") {
                    return (i, Some((Std::LongMonth, 7)));
                }
                if !starts_with_lower(&l[i + 3..]) {
                    return (i, Some((Std::Month, 3)));
                }
            }
            b'M' => {
                if has(i, b"Mon") {
                    if has(i, b"Monday") {
                        return (i, Some((Std::LongWeekDay, 6)));
                    }
                    if !starts_with_lower(&l[i + 3..]) {
                        return (i, Some((Std::WeekDay, 3)));
                    }
                }
                if has(i, b"MST") {
                    return (i, Some((Std::Tz, 3)));
                }
            }
            b'0' => {
                if let Some(&c) = l.get(i + 1) {
                    if (b'1'..=b'6').contains(&c) {
                        let std = [
                            Std::ZeroMonth,
                            Std::ZeroDay,
                            Std::ZeroHour12,
                            Std::ZeroMinute,
                            Std::ZeroSecond,
                            Std::Year,
                        ][usize::from(c - b'1')];
                        return (i, Some((std, 2)));
                    }
                }
                if has(i, b"002") {
                    return (i, Some((Std::ZeroYearDay, 3)));
                }
            }
            b'1' => {
                if has(i, b"15") {
                    return (i, Some((Std::Hour, 2)));
                }
                return (i, Some((Std::NumMonth, 1)));
            }
            b'2' => {
                if has(i, b"2006") {
                    return (i, Some((Std::LongYear, 4)));
                }
                return (i, Some((Std::Day, 1)));
            }
            b'_' => {
                if has(i, b"_2") {
                    // `_2006` is a literal `_` and then the year.
                    if has(i, b"_2006") {
                        return (i + 1, Some((Std::LongYear, 4)));
                    }
                    return (i, Some((Std::UnderDay, 2)));
                }
                if has(i, b"__2") {
                    return (i, Some((Std::UnderYearDay, 3)));
                }
            }
            b'3' => return (i, Some((Std::Hour12, 1))),
            b'4' => return (i, Some((Std::Minute, 1))),
            b'5' => return (i, Some((Std::Second, 1))),
            b'P' if has(i, b"PM") => return (i, Some((Std::PmUpper, 2))),
            b'p' if has(i, b"pm") => return (i, Some((Std::PmLower, 2))),
            b'-' => {
                for (s, std) in [
                    (&b"-070000"[..], Std::NumSecondsTz),
                    (b"-07:00:00", Std::NumColonSecondsTz),
                    (b"-0700", Std::NumTz),
                    (b"-07:00", Std::NumColonTz),
                    (b"-07", Std::NumShortTz),
                ] {
                    if has(i, s) {
                        return (i, Some((std, s.len())));
                    }
                }
            }
            b'Z' => {
                for (s, std) in [
                    (&b"Z070000"[..], Std::Iso8601SecondsTz),
                    (b"Z07:00:00", Std::Iso8601ColonSecondsTz),
                    (b"Z0700", Std::Iso8601Tz),
                    (b"Z07:00", Std::Iso8601ColonTz),
                    (b"Z07", Std::Iso8601ShortTz),
                ] {
                    if has(i, s) {
                        return (i, Some((std, s.len())));
                    }
                }
            }
            b'.' | b',' => {
                if let Some(&ch) = l.get(i + 1) {
                    if ch == b'0' || ch == b'9' {
                        let mut j = i + 1;
                        while j < l.len() && l[j] == ch {
                            j += 1;
                        }
                        // Only a fraction if the run of digits ends here.
                        if !is_digit(l, j) {
                            let n = j - (i + 1);
                            let std = if ch == b'0' {
                                Std::FracSecond0(n)
                            } else {
                                Std::FracSecond9
                            };
                            return (i, Some((std, j - i)));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    (l.len(), None)
}

impl Layout {
    /// Splits a Go layout into its elements. Any string is a layout (Go
    /// never rejects one; text that is not an element must appear verbatim).
    pub fn new(layout: &str) -> Layout {
        let mut rest = layout.as_bytes();
        let mut chunks: Vec<Chunk> = Vec::new();
        loop {
            let (plen, std) = next_std_chunk(rest);
            let Some((std, slen)) = std else {
                let tail = rest.into();
                let has_zone_name = chunks.iter().any(|c| c.std == Std::Tz);
                for i in 1..chunks.len() {
                    if chunks[i].std.is_frac() {
                        chunks[i - 1].next_is_frac = true;
                    }
                }
                return Layout {
                    chunks,
                    tail,
                    has_zone_name,
                };
            };
            chunks.push(Chunk {
                prefix: rest[..plen].into(),
                std,
                next_is_frac: false,
            });
            rest = &rest[plen + slen..];
        }
    }

    /// Go's `parse(layout, value, defaultLocation, local)`: `local` is the
    /// location whose abbreviations are recognised, and the default location
    /// is `local` if `default_local`, else UTC (`time.Parse` passes UTC and
    /// `Local`; `time.ParseInLocation` passes the location twice).
    pub fn parse(&self, value: &str, local: &GoLocation, default_local: bool) -> Option<GoTime> {
        let mut v = value.as_bytes();
        let mut year: i64 = 0;
        let mut month: i64 = -1;
        let mut day: i64 = -1;
        let mut yday: i64 = -1;
        let (mut hour, mut min, mut sec, mut nsec) = (0i64, 0i64, 0i64, 0i64);
        let (mut am, mut pm) = (false, false);
        let mut utc = false;
        let mut zone_offset: Option<i32> = None;
        let mut zone_name: Option<&[u8]> = None;

        for c in &self.chunks {
            v = skip(v, &c.prefix)?;
            match c.std {
                Std::Year => {
                    let p = v.get(..2)?;
                    v = &v[2..];
                    let y = atoi(p)?;
                    year = if y >= 69 { y + 1900 } else { y + 2000 };
                }
                Std::LongYear => {
                    if v.len() < 4 || !is_digit(v, 0) {
                        return None;
                    }
                    year = atoi(&v[..4])?;
                    v = &v[4..];
                }
                Std::Month => {
                    let (i, r) = lookup(&SHORT_MONTHS, v)?;
                    month = i as i64 + 1;
                    v = r;
                }
                Std::LongMonth => {
                    let (i, r) = lookup(&LONG_MONTHS, v)?;
                    month = i as i64 + 1;
                    v = r;
                }
                Std::NumMonth | Std::ZeroMonth => {
                    let (m, r) = getnum(v, c.std == Std::ZeroMonth)?;
                    if !(1..=12).contains(&m) {
                        return None;
                    }
                    month = m;
                    v = r;
                }
                Std::WeekDay => v = lookup(&SHORT_DAYS, v)?.1,
                Std::LongWeekDay => v = lookup(&LONG_DAYS, v)?.1,
                Std::Day | Std::UnderDay | Std::ZeroDay => {
                    if c.std == Std::UnderDay && v.first() == Some(&b' ') {
                        v = &v[1..];
                    }
                    let (d, r) = getnum(v, c.std == Std::ZeroDay)?;
                    day = d;
                    v = r;
                }
                Std::UnderYearDay | Std::ZeroYearDay => {
                    for _ in 0..2 {
                        if c.std == Std::UnderYearDay && v.first() == Some(&b' ') {
                            v = &v[1..];
                        }
                    }
                    let (d, r) = getnum3(v, c.std == Std::ZeroYearDay)?;
                    yday = d;
                    v = r;
                }
                Std::Hour => {
                    let (h, r) = getnum(v, false)?;
                    if !(0..24).contains(&h) {
                        return None;
                    }
                    hour = h;
                    v = r;
                }
                Std::Hour12 | Std::ZeroHour12 => {
                    let (h, r) = getnum(v, c.std == Std::ZeroHour12)?;
                    if !(0..=12).contains(&h) {
                        return None;
                    }
                    hour = h;
                    v = r;
                }
                Std::Minute | Std::ZeroMinute => {
                    let (m, r) = getnum(v, c.std == Std::ZeroMinute)?;
                    if !(0..60).contains(&m) {
                        return None;
                    }
                    min = m;
                    v = r;
                }
                Std::Second | Std::ZeroSecond => {
                    let (s, r) = getnum(v, c.std == Std::ZeroSecond)?;
                    if !(0..60).contains(&s) {
                        return None;
                    }
                    sec = s;
                    v = r;
                    // A fraction in the value that the layout does not have
                    // is accepted right after the seconds.
                    if v.len() >= 2
                        && (v[0] == b'.' || v[0] == b',')
                        && is_digit(v, 1)
                        && !c.next_is_frac
                    {
                        let mut n = 2;
                        while is_digit(v, n) {
                            n += 1;
                        }
                        nsec = parse_nanoseconds(v, n)?;
                        v = &v[n..];
                    }
                }
                Std::PmUpper | Std::PmLower => {
                    let p = v.get(..2)?;
                    v = &v[2..];
                    let (pm_s, am_s): (&[u8], &[u8]) = if c.std == Std::PmUpper {
                        (b"PM", b"AM")
                    } else {
                        (b"pm", b"am")
                    };
                    if p == pm_s {
                        pm = true;
                    } else if p == am_s {
                        am = true;
                    } else {
                        return None;
                    }
                }
                Std::Iso8601Tz
                | Std::Iso8601ShortTz
                | Std::Iso8601ColonTz
                | Std::Iso8601SecondsTz
                | Std::Iso8601ColonSecondsTz
                    if v.first() == Some(&b'Z') =>
                {
                    v = &v[1..];
                    utc = true;
                }
                Std::Iso8601Tz
                | Std::Iso8601ShortTz
                | Std::Iso8601ColonTz
                | Std::Iso8601SecondsTz
                | Std::Iso8601ColonSecondsTz
                | Std::NumTz
                | Std::NumShortTz
                | Std::NumColonTz
                | Std::NumSecondsTz
                | Std::NumColonSecondsTz => {
                    let (off, r) = parse_offset(v, c.std)?;
                    zone_offset = Some(off);
                    v = r;
                }
                Std::Tz => {
                    if v.starts_with(b"UTC") {
                        utc = true;
                        v = &v[3..];
                    } else {
                        let n = parse_time_zone(v)?;
                        zone_name = Some(&v[..n]);
                        v = &v[n..];
                    }
                }
                Std::FracSecond0(n) => {
                    let ndigit = 1 + n;
                    if v.len() < ndigit {
                        return None;
                    }
                    nsec = parse_nanoseconds(v, ndigit)?;
                    v = &v[ndigit..];
                }
                Std::FracSecond9 => {
                    if v.len() >= 2 && (v[0] == b'.' || v[0] == b',') && is_digit(v, 1) {
                        let mut i = 0;
                        while is_digit(v, i + 1) {
                            i += 1;
                        }
                        nsec = parse_nanoseconds(v, 1 + i)?;
                        v = &v[1 + i..];
                    }
                }
            }
        }
        v = skip(v, &self.tail)?;
        if !v.is_empty() {
            return None; // extra text
        }

        if pm && hour < 12 {
            hour += 12;
        } else if am && hour == 12 {
            hour = 0;
        }

        if yday >= 0 {
            let mut d = 0;
            let mut m = 0;
            if is_leap(year) {
                if yday == 31 + 29 {
                    m = 2;
                    d = 29;
                } else if yday > 31 + 29 {
                    yday -= 1;
                }
            }
            if !(1..=365).contains(&yday) {
                return None;
            }
            if m == 0 {
                m = (yday - 1) / 31 + 1;
                if DAYS_BEFORE[m as usize] < yday {
                    m += 1;
                }
                d = yday - DAYS_BEFORE[(m - 1) as usize];
            }
            if month >= 0 && month != m {
                return None;
            }
            month = m;
            if day >= 0 && day != d {
                return None;
            }
            day = d;
        } else {
            if month < 0 {
                month = 1;
            }
            if day < 0 {
                day = 1;
            }
        }
        if day < 1 || day > days_in(month, year) {
            return None;
        }

        let wall = days_from_civil(year, month, day) * 86_400 + hour * 3600 + min * 60 + sec;
        let nsec = nsec as u32;
        if utc {
            return Some(GoTime {
                unix: wall,
                nsec,
                zone: Zone::Utc,
            });
        }
        if let Some(off) = zone_offset {
            // Go uses `local` when it has this offset at that instant; the
            // instant is the same either way, and the zone only matters for a
            // year-less layout (year 0, where no real zone has a round
            // offset), so the offset is recorded as written.
            return Some(GoTime {
                unix: wall - i64::from(off),
                nsec,
                zone: Zone::Fixed(off),
            });
        }
        if let Some(name) = zone_name {
            if let Some(off) = local.lookup_name(name, wall) {
                return Some(GoTime {
                    unix: wall - i64::from(off),
                    nsec,
                    zone: Zone::Local,
                });
            }
            // Unknown abbreviation: a UTC instant in a made-up zone whose
            // offset is 0, or N hours for `GMT+N`.
            let off = if name.len() > 3 && name.starts_with(b"GMT") {
                atoi(&name[3..]).unwrap_or(0) * 3600
            } else {
                0
            };
            return Some(GoTime {
                unix: wall,
                nsec,
                zone: Zone::Fixed(off as i32),
            });
        }
        if default_local {
            Some(GoTime {
                unix: local.date(wall),
                nsec,
                zone: Zone::Local,
            })
        } else {
            Some(GoTime {
                unix: wall,
                nsec,
                zone: Zone::Utc,
            })
        }
    }
}

/// Which zone a parsed time is in (it matters when its year is changed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Zone {
    Utc,
    /// Seconds east of UTC.
    Fixed(i32),
    /// The `local` location given to [`Layout::parse`].
    Local,
}

/// A parsed time: Unix seconds, nanoseconds, zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GoTime {
    pub unix: i64,
    pub nsec: u32,
    pub zone: Zone,
}

impl GoTime {
    /// Nanoseconds since the epoch; `None` outside `i64` (years before 1678
    /// or after 2262).
    pub fn unix_nanos(self) -> Option<i64> {
        self.unix
            .checked_mul(1_000_000_000)?
            .checked_add(i64::from(self.nsec))
    }

    /// The wall-clock seconds (as if UTC) of this time in its own zone.
    fn wall(self, local: &GoLocation) -> i64 {
        match self.zone {
            Zone::Utc => self.unix,
            Zone::Fixed(o) => self.unix + i64::from(o),
            Zone::Local => self.unix + i64::from(local.offset_at(self.unix)),
        }
    }

    /// Civil year and month of this time in its own zone.
    pub fn year_month(self, local: &GoLocation) -> (i64, i64) {
        let (y, m, _) = civil_from_days(self.wall(local).div_euclid(86_400));
        (y, m)
    }

    /// Go's `t.AddDate(years, 0, 0)`: the same wall clock `years` later in
    /// the same zone (Feb 29 into a common year becomes Mar 1).
    pub fn add_years(self, years: i64, local: &GoLocation) -> GoTime {
        let wall = self.wall(local);
        let days = wall.div_euclid(86_400);
        let sod = wall.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        let wall = days_from_civil(y + years, m, d) * 86_400 + sod;
        let unix = match self.zone {
            Zone::Utc => wall,
            Zone::Fixed(o) => wall - i64::from(o),
            Zone::Local => local.date(wall),
        };
        GoTime { unix, ..self }
    }
}

/// A Go `*time.Location`: UTC, or a tz database zone with the abbreviations
/// it has used (Go's zone list, for `lookupName`).
#[derive(Clone, Debug)]
pub enum GoLocation {
    Utc,
    Tz {
        tz: TimeZone,
        /// (abbreviation, offset) in order of first use.
        zones: Vec<(Box<str>, i32)>,
    },
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
                    .map(GoLocation::from_tz)
                    .map_err(|e| e.to_string())
            }
        }
    }

    /// Go's `time.Local`: the `TZ` variable, else `/etc/localtime`, else UTC.
    pub fn system() -> GoLocation {
        match TimeZone::try_system() {
            Ok(tz) => GoLocation::from_tz(tz),
            Err(_) => GoLocation::Utc,
        }
    }

    fn from_tz(tz: TimeZone) -> GoLocation {
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
        GoLocation::Tz { tz, zones }
    }

    /// The UTC offset (seconds) in effect at Unix second `unix`.
    pub fn offset_at(&self, unix: i64) -> i32 {
        match self {
            GoLocation::Utc => 0,
            GoLocation::Tz { tz, .. } => match JTimestamp::from_second(unix) {
                Ok(ts) => tz.to_offset(ts).seconds(),
                Err(_) => 0,
            },
        }
    }

    /// Go's `Location.lookupName`: the offset of abbreviation `name`,
    /// preferring the zone in effect around wall time `wall`.
    fn lookup_name(&self, name: &[u8], wall: i64) -> Option<i32> {
        match self {
            GoLocation::Utc => (name == b"UTC").then_some(0),
            GoLocation::Tz { tz, zones } => {
                for (n, off) in zones {
                    if n.as_bytes() == name {
                        if let Ok(ts) = JTimestamp::from_second(wall - i64::from(*off)) {
                            let info = tz.to_offset_info(ts);
                            if info.abbreviation().as_bytes() == name {
                                return Some(info.offset().seconds());
                            }
                        }
                    }
                }
                zones
                    .iter()
                    .find(|(n, _)| n.as_bytes() == name)
                    .map(|(_, o)| *o)
            }
        }
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
/// Days before each month in a common year (index 12 = the whole year).
const DAYS_BEFORE: [i64; 13] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 365];

/// Go's `lookup`: the first name that prefixes `v`, ignoring ASCII case.
fn lookup<'v>(tab: &[&str], v: &'v [u8]) -> Option<(usize, &'v [u8])> {
    tab.iter().enumerate().find_map(|(i, name)| {
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
    let x = if neg {
        0i64.checked_sub_unsigned(x)?
    } else {
        i64::try_from(x).ok()?
    };
    Some(x)
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
/// most nine are used).
fn parse_nanoseconds(v: &[u8], n: usize) -> Option<i64> {
    if !matches!(v.first(), Some(b'.' | b',')) {
        return None;
    }
    let n = n.min(10);
    let mut ns = atoi(v.get(1..n)?)?;
    if ns < 0 {
        return None;
    }
    for _ in 0..10 - n {
        ns = ns.checked_mul(10)?;
    }
    Some(ns)
}

/// A numeric zone offset element; (seconds east, rest).
fn parse_offset(v: &[u8], std: Std) -> Option<(i32, &[u8])> {
    let (sign, hh, mm, ss, rest): (u8, &[u8], &[u8], &[u8], &[u8]) = match std {
        Std::Iso8601ColonTz | Std::NumColonTz => {
            if v.len() < 6 || v[3] != b':' {
                return None;
            }
            (v[0], &v[1..3], &v[4..6], b"00", &v[6..])
        }
        Std::NumShortTz | Std::Iso8601ShortTz => {
            if v.len() < 3 {
                return None;
            }
            (v[0], &v[1..3], b"00", b"00", &v[3..])
        }
        Std::Iso8601ColonSecondsTz | Std::NumColonSecondsTz => {
            if v.len() < 9 || v[3] != b':' || v[6] != b':' {
                return None;
            }
            (v[0], &v[1..3], &v[4..6], &v[7..9], &v[9..])
        }
        Std::Iso8601SecondsTz | Std::NumSecondsTz => {
            if v.len() < 7 {
                return None;
            }
            (v[0], &v[1..3], &v[3..5], &v[5..7], &v[7..])
        }
        _ => {
            if v.len() < 5 {
                return None;
            }
            (v[0], &v[1..3], &v[3..5], b"00", &v[5..])
        }
    };
    let (h, _) = getnum(hh, true)?;
    let (m, _) = getnum(mm, true)?;
    let (s, _) = getnum(ss, true)?;
    // Go checks with `>`: offsets of 24 hours or 60 minutes are accepted.
    if h > 24 || m > 60 || s > 60 {
        return None;
    }
    let off = ((h * 60 + m) * 60 + s) as i32;
    match sign {
        b'+' => Some((off, rest)),
        b'-' => Some((-off, rest)),
        _ => None,
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
        return Some(
            3 + if v.len() > 3 {
                parse_signed_offset(&v[3..])
            } else {
                0
            },
        );
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
    if digits == 0 {
        return 0;
    }
    match atoi(&v[1..1 + digits]) {
        Some(x) if x <= 23 => 1 + digits,
        _ => 0,
    }
}

pub fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

fn days_in(month: i64, year: i64) -> i64 {
    if month == 2 && is_leap(year) {
        return 29;
    }
    match month {
        1..=12 => DAYS_BEFORE[month as usize] - DAYS_BEFORE[(month - 1) as usize],
        _ => 0,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date; a day past the end
/// of its month rolls into the next (H. Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) of a day count since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}
