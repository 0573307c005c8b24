//! Go's `time.Time` as the template functions see it: formatting and parsing
//! with Go reference layouts (`2006-01-02T15:04:05Z07:00`), `Time.String`,
//! and `time.Duration`'s text form.
//!
//! Follows Go's `time/format.go`: the same layout elements (`Jan`,
//! `January`, `01`, `1`, `_2`, `002`, `15`, `03`, `PM`, `MST`, `-0700`,
//! `Z07:00`, `.000`, `.999`, …), the same parsing rules (a fractional second
//! after the seconds is accepted even when the layout has none; white space
//! in the layout matches any run of spaces; month and day names are matched
//! case-insensitively) and the same zone rules (`Local` is the system zone:
//! `TZ`, else `/etc/localtime`, as Go reads it).
//!
//! Must never: panic on any input (years outside Go's range and the like are
//! parse errors).

use jiff::tz::TimeZone;

/// A Go `time.Time`: an instant plus the offset and zone name it is shown in.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct GoTime {
    pub secs: i64,
    pub nsec: u32,
    /// Seconds east of UTC.
    pub offset: i32,
    /// Zone abbreviation (`UTC`, `CET`); empty: shown as `-0700`.
    pub zone: Box<str>,
}

/// Seconds from 0001-01-01 to 1970-01-01: Go's zero time is year 1.
const ZERO_UNIX: i64 = -62_135_596_800;

impl GoTime {
    /// Go's zero `time.Time` (`0001-01-01 00:00:00 +0000 UTC`).
    pub fn zero() -> Self {
        GoTime {
            secs: ZERO_UNIX,
            nsec: 0,
            offset: 0,
            zone: "UTC".into(),
        }
    }

    /// The instant in UTC.
    pub fn utc(secs: i64, nsec: u32) -> Self {
        GoTime {
            secs,
            nsec,
            offset: 0,
            zone: "UTC".into(),
        }
    }

    /// The instant in the zone `tz`.
    pub fn in_zone(secs: i64, nsec: u32, tz: &TimeZone) -> Self {
        let Ok(ts) = jiff::Timestamp::new(secs, 0) else {
            return GoTime::utc(secs, nsec);
        };
        let info = tz.to_offset_info(ts);
        GoTime {
            secs,
            nsec,
            offset: info.offset().seconds(),
            zone: info.abbreviation().into(),
        }
    }

    /// `time.Now()` in the local zone.
    pub fn now(local: &TimeZone) -> Self {
        let now = jiff::Timestamp::now();
        GoTime::in_zone(
            now.as_second(),
            now.subsec_nanosecond().max(0) as u32,
            local,
        )
    }

    pub fn unix_nano(&self) -> i128 {
        i128::from(self.secs) * 1_000_000_000 + i128::from(self.nsec)
    }

    /// Civil fields in the time's own offset.
    fn civil(&self) -> Civil {
        let local = self.secs + i64::from(self.offset);
        let days = local.div_euclid(86_400);
        let sod = local.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        Civil {
            year,
            month,
            day,
            hour: sod / 3600,
            min: sod % 3600 / 60,
            sec: sod % 60,
            weekday: (days + 4).rem_euclid(7),
            yday: days - days_from_civil(year, 1, 1) + 1,
        }
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
        format(self, "2006-01-02 15:04:05.999999999 -0700 MST")
    }
}

struct Civil {
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    min: i64,
    sec: i64,
    weekday: i64,
    yday: i64,
}

/// (year, month, day) of days since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
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

/// Days since 1970-01-01 of a civil date (month may be 1..=12).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

fn days_in(month: i64, year: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

const LONG_DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
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

/// One element of a layout.
#[derive(Clone, Copy, PartialEq, Debug)]
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
    PM,
    Pm,
    Tz,
    /// Numeric zone: (ISO "Z" form, hours only, colons, seconds).
    NumTz {
        iso: bool,
        short: bool,
        colon: bool,
        seconds: bool,
    },
    /// Fractional seconds: (digits, trailing zeros trimmed, separator).
    Frac {
        digits: usize,
        nine: bool,
        sep: u8,
    },
}

/// Go's `nextStdChunk`: (literal prefix, element, rest).
fn next_chunk(layout: &str) -> (&str, Option<Std>, &str) {
    let b = layout.as_bytes();
    let at = |i: usize, s: &str| layout.get(i..).is_some_and(|r| r.starts_with(s));
    let lower_at = |i: usize| b.get(i).is_some_and(|c| c.is_ascii_lowercase());
    let mut i = 0;
    while i < b.len() {
        let found: Option<(Std, usize)> = match b[i] {
            b'J' if at(i, "Jan") => {
                if at(i, "January") {
                    Some((Std::LongMonth, 7))
                } else if !lower_at(i + 3) {
                    Some((Std::Month, 3))
                } else {
                    None
                }
            }
            b'M' if at(i, "Mon") => {
                if at(i, "Monday") {
                    Some((Std::LongWeekDay, 6))
                } else if !lower_at(i + 3) {
                    Some((Std::WeekDay, 3))
                } else {
                    None
                }
            }
            b'M' if at(i, "MST") => Some((Std::Tz, 3)),
            b'0' if b.get(i + 1).is_some_and(|c| (b'1'..=b'6').contains(c)) => Some((
                [
                    Std::ZeroMonth,
                    Std::ZeroDay,
                    Std::ZeroHour12,
                    Std::ZeroMinute,
                    Std::ZeroSecond,
                    Std::Year,
                ][usize::from(b[i + 1] - b'1')],
                2,
            )),
            b'0' if at(i, "002") => Some((Std::ZeroYearDay, 3)),
            b'1' if at(i, "15") => Some((Std::Hour, 2)),
            b'1' => Some((Std::NumMonth, 1)),
            b'2' if at(i, "2006") => Some((Std::LongYear, 4)),
            b'2' => Some((Std::Day, 1)),
            b'_' if at(i, "_2") => {
                if at(i, "_2006") {
                    // A literal `_` then the year.
                    return (&layout[..i + 1], Some(Std::LongYear), &layout[i + 5..]);
                }
                Some((Std::UnderDay, 2))
            }
            b'_' if at(i, "__2") => Some((Std::UnderYearDay, 3)),
            b'3' => Some((Std::Hour12, 1)),
            b'4' => Some((Std::Minute, 1)),
            b'5' => Some((Std::Second, 1)),
            b'P' if at(i, "PM") => Some((Std::PM, 2)),
            b'p' if at(i, "pm") => Some((Std::Pm, 2)),
            c @ (b'-' | b'Z') => {
                let iso = c == b'Z';
                let tz = |short, colon, seconds| Std::NumTz {
                    iso,
                    short,
                    colon,
                    seconds,
                };
                let p = |s: &str| at(i + 1, s);
                if p("070000") {
                    Some((tz(false, false, true), 7))
                } else if p("07:00:00") {
                    Some((tz(false, true, true), 9))
                } else if p("0700") {
                    Some((tz(false, false, false), 5))
                } else if p("07:00") {
                    Some((tz(false, true, false), 6))
                } else if p("07") {
                    Some((tz(true, false, false), 3))
                } else {
                    None
                }
            }
            sep @ (b'.' | b',') if matches!(b.get(i + 1), Some(b'0' | b'9')) => {
                let ch = b[i + 1];
                let mut j = i + 1;
                while b.get(j) == Some(&ch) {
                    j += 1;
                }
                if b.get(j).is_some_and(u8::is_ascii_digit) {
                    None
                } else {
                    Some((
                        Std::Frac {
                            digits: j - (i + 1),
                            nine: ch == b'9',
                            sep,
                        },
                        j - i,
                    ))
                }
            }
            _ => None,
        };
        if let Some((std, len)) = found {
            return (&layout[..i], Some(std), &layout[i + len..]);
        }
        i += 1;
    }
    (layout, None, "")
}

fn push_int(out: &mut String, v: i64, width: usize) {
    if v < 0 {
        out.push('-');
    }
    let s = v.unsigned_abs().to_string();
    for _ in s.len()..width {
        out.push('0');
    }
    out.push_str(&s);
}

/// Go's `Time.Format(layout)`.
pub(super) fn format(t: &GoTime, layout: &str) -> String {
    let c = t.civil();
    let mut out = String::with_capacity(layout.len() + 10);
    let mut rest = layout;
    loop {
        let (prefix, std, suffix) = next_chunk(rest);
        out.push_str(prefix);
        let Some(std) = std else {
            break;
        };
        rest = suffix;
        match std {
            Std::Year => push_int(&mut out, c.year.rem_euclid(100), 2),
            Std::LongYear => push_int(&mut out, c.year, 4),
            Std::Month => out.push_str(&LONG_MONTHS[(c.month - 1) as usize][..3]),
            Std::LongMonth => out.push_str(LONG_MONTHS[(c.month - 1) as usize]),
            Std::NumMonth => push_int(&mut out, c.month, 0),
            Std::ZeroMonth => push_int(&mut out, c.month, 2),
            Std::WeekDay => out.push_str(&LONG_DAYS[c.weekday as usize][..3]),
            Std::LongWeekDay => out.push_str(LONG_DAYS[c.weekday as usize]),
            Std::Day => push_int(&mut out, c.day, 0),
            Std::UnderDay => {
                if c.day < 10 {
                    out.push(' ');
                }
                push_int(&mut out, c.day, 0);
            }
            Std::ZeroDay => push_int(&mut out, c.day, 2),
            Std::UnderYearDay => {
                if c.yday < 100 {
                    out.push(' ');
                    if c.yday < 10 {
                        out.push(' ');
                    }
                }
                push_int(&mut out, c.yday, 0);
            }
            Std::ZeroYearDay => push_int(&mut out, c.yday, 3),
            Std::Hour => push_int(&mut out, c.hour, 2),
            Std::Hour12 | Std::ZeroHour12 => {
                let h = match c.hour % 12 {
                    0 => 12,
                    h => h,
                };
                push_int(&mut out, h, if std == Std::Hour12 { 0 } else { 2 });
            }
            Std::Minute => push_int(&mut out, c.min, 0),
            Std::ZeroMinute => push_int(&mut out, c.min, 2),
            Std::Second => push_int(&mut out, c.sec, 0),
            Std::ZeroSecond => push_int(&mut out, c.sec, 2),
            Std::PM => out.push_str(if c.hour >= 12 { "PM" } else { "AM" }),
            Std::Pm => out.push_str(if c.hour >= 12 { "pm" } else { "am" }),
            Std::NumTz {
                iso,
                short,
                colon,
                seconds,
            } => {
                if iso && t.offset == 0 {
                    out.push('Z');
                    continue;
                }
                let mut zone = t.offset / 60;
                let mut abs = t.offset;
                if zone < 0 {
                    out.push('-');
                    zone = -zone;
                    abs = -abs;
                } else {
                    out.push('+');
                }
                push_int(&mut out, i64::from(zone / 60), 2);
                if colon {
                    out.push(':');
                }
                if !short {
                    push_int(&mut out, i64::from(zone % 60), 2);
                }
                if seconds {
                    if colon {
                        out.push(':');
                    }
                    push_int(&mut out, i64::from(abs % 60), 2);
                }
            }
            Std::Tz => {
                if !t.zone.is_empty() {
                    out.push_str(&t.zone);
                    continue;
                }
                let mut zone = t.offset / 60;
                if zone < 0 {
                    out.push('-');
                    zone = -zone;
                } else {
                    out.push('+');
                }
                push_int(&mut out, i64::from(zone / 60), 2);
                push_int(&mut out, i64::from(zone % 60), 2);
            }
            Std::Frac { digits, nine, sep } => {
                let s = format!("{:09}", t.nsec);
                let mut d = &s[..digits.min(9)];
                if nine {
                    d = d.trim_end_matches('0');
                    if d.is_empty() {
                        continue;
                    }
                }
                out.push(char::from(sep));
                out.push_str(d);
                for _ in 9..digits {
                    out.push('0');
                }
            }
        }
    }
    out
}

/// Go's `getnum`: one or two digits (`fixed`: exactly two).
fn getnum(s: &str, fixed: bool) -> Option<(i64, &str)> {
    let b = s.as_bytes();
    if !b.first().is_some_and(u8::is_ascii_digit) {
        return None;
    }
    if !b.get(1).is_some_and(u8::is_ascii_digit) {
        if fixed {
            return None;
        }
        return Some((i64::from(b[0] - b'0'), &s[1..]));
    }
    Some((
        i64::from(b[0] - b'0') * 10 + i64::from(b[1] - b'0'),
        &s[2..],
    ))
}

/// Go's `getnum3`: up to three digits (`fixed`: exactly three).
fn getnum3(s: &str, fixed: bool) -> Option<(i64, &str)> {
    let b = s.as_bytes();
    let mut n = 0;
    let mut i = 0;
    while i < 3 && b.get(i).is_some_and(u8::is_ascii_digit) {
        n = n * 10 + i64::from(b[i] - b'0');
        i += 1;
    }
    if i == 0 || fixed && i != 3 {
        return None;
    }
    Some((n, &s[i..]))
}

/// Case-insensitive prefix lookup of a name (month or day).
fn lookup<'a>(names: impl Iterator<Item = &'a str>, v: &str) -> Option<(usize, usize)> {
    for (i, n) in names.enumerate() {
        if v.len() >= n.len() && v.as_bytes()[..n.len()].eq_ignore_ascii_case(n.as_bytes()) {
            return Some((i, n.len()));
        }
    }
    None
}

/// Go's `skip`: the literal `prefix` must lead `value`; a space in it
/// matches any run of spaces.
fn skip<'a>(mut value: &'a str, mut prefix: &str) -> Option<&'a str> {
    while let Some(p) = prefix.as_bytes().first() {
        if *p == b' ' {
            if !value.is_empty() && !value.starts_with(' ') {
                return None;
            }
            prefix = prefix.trim_start_matches(' ');
            value = value.trim_start_matches(' ');
            continue;
        }
        if value.as_bytes().first() != Some(p) {
            return None;
        }
        prefix = &prefix[1..];
        value = &value[1..];
    }
    Some(value)
}

/// Go's `parseTimeZone`: the length of a zone abbreviation at `v`.
fn parse_zone_name(v: &str) -> Option<usize> {
    let b = v.as_bytes();
    if b.len() < 3 {
        return None;
    }
    if v.starts_with("ChST") || v.starts_with("MeST") {
        return Some(4);
    }
    if let Some(rest) = v.strip_prefix("GMT") {
        return Some(3 + signed_offset_len(rest));
    }
    if b[0] == b'+' || b[0] == b'-' {
        let n = signed_offset_len(v);
        return (n > 0).then_some(n);
    }
    let upper = b
        .iter()
        .take(6)
        .take_while(|c| c.is_ascii_uppercase())
        .count();
    match upper {
        3 => Some(3),
        4 if b[3] == b'T' || v.starts_with("WITA") => Some(4),
        5 if b[4] == b'T' => Some(5),
        _ => None,
    }
}

/// Go's `parseSignedOffset`: `+3`, `-12`.
fn signed_offset_len(v: &str) -> usize {
    let b = v.as_bytes();
    if !matches!(b.first(), Some(b'+' | b'-')) {
        return 0;
    }
    let digits = b[1..].iter().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 {
        return 0;
    }
    match v[1..1 + digits].parse::<i64>() {
        Ok(x) if x <= 12 => 1 + digits,
        _ => 0,
    }
}

/// Go's `parseNanoseconds`: `value[0]` is the separator, then digits.
fn parse_nanos(value: &str, n: usize) -> Result<u32, String> {
    let b = value.as_bytes();
    if !matches!(b.first(), Some(b'.' | b',')) {
        return Err(String::new());
    }
    let digits = &value[1..n.min(value.len())];
    if n > 10 {
        // More than 9 digits: the extra ones are ignored.
    }
    let d = &digits[..digits.len().min(9)];
    let mut ns: u32 = d.parse().map_err(|_| String::new())?;
    for _ in d.len()..9 {
        ns *= 10;
    }
    Ok(ns)
}

/// Go's `time.ParseInLocation(layout, value, loc)`.
pub(super) fn parse(layout: &str, value: &str, loc: &TimeZone) -> Result<GoTime, String> {
    let bad = |what: &str| format!("parsing time {value:?} as {layout:?}: cannot parse {what:?}");
    let mut v = value;
    let mut lay = layout;
    let (mut year, mut month, mut day, mut yday) = (0i64, -1i64, -1i64, -1i64);
    let (mut hour, mut min, mut sec, mut nsec) = (0i64, 0i64, 0i64, 0u32);
    let (mut pm, mut am) = (false, false);
    let mut utc = false;
    let mut zone_offset: Option<i64> = None;
    let mut zone_name = "";
    loop {
        let (prefix, std, suffix) = next_chunk(lay);
        v = skip(v, prefix).ok_or_else(|| bad(v))?;
        let Some(std) = std else {
            if !v.is_empty() {
                return Err(format!("parsing time {value:?}: extra text: {v:?}"));
            }
            break;
        };
        lay = suffix;
        let hold = v;
        let mut range_err: Option<&str> = None;
        let ok: Option<()> = (|| {
            match std {
                Std::Year => {
                    let p = v.get(..2)?;
                    year = p
                        .parse()
                        .ok()
                        .filter(|_| p.bytes().all(|c| c.is_ascii_digit()))?;
                    year += if year >= 69 { 1900 } else { 2000 };
                    v = &v[2..];
                }
                Std::LongYear => {
                    let p = v.get(..4)?;
                    if !p.bytes().all(|c| c.is_ascii_digit()) {
                        return None;
                    }
                    year = p.parse().ok()?;
                    v = &v[4..];
                }
                Std::Month | Std::LongMonth => {
                    let names =
                        LONG_MONTHS
                            .iter()
                            .map(|m| if std == Std::Month { &m[..3] } else { *m });
                    let (i, n) = lookup(names, v)?;
                    month = i as i64 + 1;
                    v = &v[n..];
                }
                Std::NumMonth | Std::ZeroMonth => {
                    let (m, r) = getnum(v, std == Std::ZeroMonth)?;
                    month = m;
                    v = r;
                    if !(1..=12).contains(&month) {
                        range_err = Some("month");
                    }
                }
                Std::WeekDay | Std::LongWeekDay => {
                    let names =
                        LONG_DAYS
                            .iter()
                            .map(|d| if std == Std::WeekDay { &d[..3] } else { *d });
                    let (_, n) = lookup(names, v)?;
                    v = &v[n..];
                }
                Std::Day | Std::UnderDay | Std::ZeroDay => {
                    if std == Std::UnderDay && v.starts_with(' ') {
                        v = &v[1..];
                    }
                    let (d, r) = getnum(v, std == Std::ZeroDay)?;
                    day = d;
                    v = r;
                }
                Std::UnderYearDay | Std::ZeroYearDay => {
                    for _ in 0..2 {
                        if std == Std::UnderYearDay && v.starts_with(' ') {
                            v = &v[1..];
                        }
                    }
                    let (d, r) = getnum3(v, std == Std::ZeroYearDay)?;
                    yday = d;
                    v = r;
                }
                Std::Hour => {
                    let (h, r) = getnum(v, false)?;
                    hour = h;
                    v = r;
                    if hour >= 24 {
                        range_err = Some("hour");
                    }
                }
                Std::Hour12 | Std::ZeroHour12 => {
                    let (h, r) = getnum(v, std == Std::ZeroHour12)?;
                    hour = h;
                    v = r;
                    if hour > 12 {
                        range_err = Some("hour");
                    }
                }
                Std::Minute | Std::ZeroMinute => {
                    let (m, r) = getnum(v, std == Std::ZeroMinute)?;
                    min = m;
                    v = r;
                    if min >= 60 {
                        range_err = Some("minute");
                    }
                }
                Std::Second | Std::ZeroSecond => {
                    let (s, r) = getnum(v, std == Std::ZeroSecond)?;
                    sec = s;
                    v = r;
                    if sec >= 60 {
                        range_err = Some("second");
                        return Some(());
                    }
                    // A fractional second the layout does not mention.
                    let b = v.as_bytes();
                    if b.len() >= 2 && matches!(b[0], b'.' | b',') && b[1].is_ascii_digit() {
                        if let (_, Some(Std::Frac { .. }), _) = next_chunk(lay) {
                            return Some(());
                        }
                        let n = 1 + b[1..].iter().take_while(|c| c.is_ascii_digit()).count();
                        nsec = parse_nanos(v, n).ok()?;
                        v = &v[n..];
                    }
                }
                Std::PM | Std::Pm => {
                    let p = v.get(..2)?;
                    let (pm_s, am_s) = if std == Std::PM {
                        ("PM", "AM")
                    } else {
                        ("pm", "am")
                    };
                    if p == pm_s {
                        pm = true;
                    } else if p == am_s {
                        am = true;
                    } else {
                        return None;
                    }
                    v = &v[2..];
                }
                Std::NumTz {
                    iso,
                    short,
                    colon,
                    seconds,
                } => {
                    if iso && v.starts_with('Z') {
                        v = &v[1..];
                        utc = true;
                        return Some(());
                    }
                    let b = v.as_bytes();
                    let (sign, h, m, s, n) = if colon && !seconds {
                        if b.len() < 6 || b[3] != b':' {
                            return None;
                        }
                        (b[0], &v[1..3], &v[4..6], "00", 6)
                    } else if short {
                        if b.len() < 3 {
                            return None;
                        }
                        (b[0], &v[1..3], "00", "00", 3)
                    } else if colon && seconds {
                        if b.len() < 9 || b[3] != b':' || b[6] != b':' {
                            return None;
                        }
                        (b[0], &v[1..3], &v[4..6], &v[7..9], 9)
                    } else if seconds {
                        if b.len() < 7 {
                            return None;
                        }
                        (b[0], &v[1..3], &v[3..5], &v[5..7], 7)
                    } else {
                        if b.len() < 5 {
                            return None;
                        }
                        (b[0], &v[1..3], &v[3..5], "00", 5)
                    };
                    let (hr, _) = getnum(h, true)?;
                    let (mm, _) = getnum(m, true)?;
                    let (ss, _) = getnum(s, true)?;
                    if hr > 24 {
                        range_err = Some("time zone offset hour");
                    }
                    if mm > 60 {
                        range_err = Some("time zone offset minute");
                    }
                    if ss > 60 {
                        range_err = Some("time zone offset second");
                    }
                    let off = (hr * 60 + mm) * 60 + ss;
                    zone_offset = Some(match sign {
                        b'+' => off,
                        b'-' => -off,
                        _ => return None,
                    });
                    v = &v[n..];
                }
                Std::Tz => {
                    if v.starts_with("UTC") {
                        utc = true;
                        v = &v[3..];
                        return Some(());
                    }
                    let n = parse_zone_name(v)?;
                    zone_name = &v[..n];
                    v = &v[n..];
                }
                Std::Frac { digits, nine, .. } => {
                    if !nine {
                        let n = 1 + digits;
                        if v.len() < n {
                            return None;
                        }
                        nsec = parse_nanos(v, n).ok()?;
                        v = &v[n..];
                    } else {
                        let b = v.as_bytes();
                        if b.len() < 2 || !matches!(b[0], b'.' | b',') || !b[1].is_ascii_digit() {
                            return Some(());
                        }
                        let n = 1 + b[1..].iter().take_while(|c| c.is_ascii_digit()).count();
                        nsec = parse_nanos(v, n).ok()?;
                        v = &v[n..];
                    }
                }
            }
            Some(())
        })();
        if let Some(what) = range_err {
            return Err(format!("parsing time {value:?}: {what} out of range"));
        }
        if ok.is_none() {
            return Err(bad(hold));
        }
    }
    if pm && hour < 12 {
        hour += 12;
    } else if am && hour == 12 {
        hour = 0;
    }
    if yday >= 0 {
        let mut d = 0;
        let mut m = 0;
        let mut yd = yday;
        if is_leap(year) {
            if yd == 31 + 29 {
                m = 2;
                d = 29;
            } else if yd > 31 + 29 {
                yd -= 1;
            }
        }
        if !(1..=365).contains(&yd) {
            return Err(format!("parsing time {value:?}: day-of-year out of range"));
        }
        if m == 0 {
            const BEFORE: [i64; 13] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 365];
            m = (yd - 1) / 31 + 1;
            if BEFORE[m as usize] < yd {
                m += 1;
            }
            d = yd - BEFORE[(m - 1) as usize];
        }
        if month >= 0 && month != m {
            return Err(format!(
                "parsing time {value:?}: day-of-year does not match month"
            ));
        }
        month = m;
        if day >= 0 && day != d {
            return Err(format!(
                "parsing time {value:?}: day-of-year does not match day"
            ));
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
        return Err(format!("parsing time {value:?}: day out of range"));
    }
    let civil_secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + min * 60 + sec;
    if utc {
        return Ok(GoTime::utc(civil_secs, nsec));
    }
    if let Some(off) = zone_offset {
        let secs = civil_secs - off;
        let t = GoTime::in_zone(secs, nsec, loc);
        if i64::from(t.offset) == off && (zone_name.is_empty() || *t.zone == *zone_name) {
            return Ok(t);
        }
        return Ok(GoTime {
            secs,
            nsec,
            offset: off as i32,
            zone: zone_name.into(),
        });
    }
    if !zone_name.is_empty() {
        // The local zone, if it uses that name at that time.
        let as_local = local_civil_to_instant(civil_secs, loc);
        let t = GoTime::in_zone(as_local, nsec, loc);
        if *t.zone == *zone_name {
            return Ok(t);
        }
        let mut off = 0;
        if zone_name.len() > 3 && zone_name.starts_with("GMT") {
            off = zone_name[3..].parse::<i64>().unwrap_or(0) * 3600;
        }
        return Ok(GoTime {
            secs: civil_secs - off,
            nsec,
            offset: off as i32,
            zone: zone_name.into(),
        });
    }
    let secs = local_civil_to_instant(civil_secs, loc);
    Ok(GoTime::in_zone(secs, nsec, loc))
}

/// The instant whose civil time in `tz` is `civil_secs` (seconds of the
/// civil date-time counted as if it were UTC).
fn local_civil_to_instant(civil_secs: i64, tz: &TimeZone) -> i64 {
    // Two rounds of offset correction settle every ordinary case; in a gap
    // or an overlap the result is one of the candidates, as Go's `Date`.
    let Ok(guess) = jiff::Timestamp::from_second(civil_secs) else {
        return civil_secs;
    };
    let off1 = i64::from(tz.to_offset(guess).seconds());
    let Ok(t1) = jiff::Timestamp::from_second(civil_secs - off1) else {
        return civil_secs - off1;
    };
    let off2 = i64::from(tz.to_offset(t1).seconds());
    civil_secs - off2
}

/// Go's `time.Duration.String()`: `1h2m3.5s`, `1.5ms`, `0s`.
pub(super) fn format_duration(d: i64) -> String {
    if d == 0 {
        return "0s".into();
    }
    let neg = d < 0;
    let u = d.unsigned_abs();
    let mut out = String::new();
    if u < 1_000_000_000 {
        // Sub-second: ns, µs or ms with a fraction.
        let (unit, div) = if u < 1_000 {
            ("ns", 1)
        } else if u < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        out.push_str(&frac(u, div));
        out.push_str(unit);
    } else {
        let secs = u / 1_000_000_000;
        let ns = u % 1_000_000_000;
        let h = secs / 3600;
        let m = secs % 3600 / 60;
        let s = secs % 60;
        if h > 0 {
            out.push_str(&format!("{h}h"));
        }
        if h > 0 || m > 0 {
            out.push_str(&format!("{m}m"));
        }
        out.push_str(&frac(s * 1_000_000_000 + ns, 1_000_000_000));
        out.push('s');
    }
    if neg {
        out.insert(0, '-');
    }
    out
}

/// `v / div` with the fraction's trailing zeros trimmed.
fn frac(v: u64, div: u64) -> String {
    let whole = v / div;
    let rem = v % div;
    if rem == 0 {
        return whole.to_string();
    }
    let width = div.to_string().len() - 1;
    let f = format!("{rem:0width$}");
    format!("{whole}.{}", f.trim_end_matches('0'))
}

/// Go's `time.ParseDuration`: `1h30m`, `-1.5s`, `300ms`, `2us`.
pub(super) fn parse_duration(s: &str) -> Option<i64> {
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let n = rest
            .bytes()
            .take_while(|c| c.is_ascii_digit() || *c == b'.')
            .count();
        if n == 0 {
            return None;
        }
        let num: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map_or(rest.len(), |(i, _)| i);
        let unit = match &rest[..u] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[u..];
        total += num * unit;
    }
    if total > i64::MAX as f64 {
        return None;
    }
    let v = total as i64;
    Some(if neg { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc() -> TimeZone {
        TimeZone::UTC
    }

    #[test]
    fn formats_like_go() {
        // 2009-11-10T23:04:05.123456789Z (a Tuesday)
        let t = GoTime::utc(1_257_894_245, 123_456_789);
        let cases = [
            ("2006-01-02T15:04:05Z07:00", "2009-11-10T23:04:05Z"),
            (
                "2006-01-02T15:04:05.999999999Z07:00",
                "2009-11-10T23:04:05.123456789Z",
            ),
            ("Mon Jan _2 15:04:05 2006", "Tue Nov 10 23:04:05 2009"),
            (
                "Monday, 02-Jan-06 15:04:05 MST",
                "Tuesday, 10-Nov-09 23:04:05 UTC",
            ),
            ("3:04PM", "11:04PM"),
            ("03:04pm .000 ,00 .9", "11:04pm .123 ,12 .1"),
            ("002 __2 1/2", "314 314 11/10"),
            (
                "January 2006 -0700 -07:00 -07",
                "November 2009 +0000 +00:00 +00",
            ),
            ("Jant", "Jant"),
        ];
        for (layout, want) in cases {
            assert_eq!(format(&t, layout), want, "{layout}");
        }
        let t = GoTime {
            secs: 1_257_894_245,
            nsec: 0,
            offset: -(5 * 3600 + 30 * 60),
            zone: "".into(),
        };
        assert_eq!(
            format(&t, "15:04 MST Z07:00 -070000"),
            "17:34 -0530 -05:30 -053000"
        );
        assert_eq!(
            GoTime::zero().to_go_string(),
            "0001-01-01 00:00:00 +0000 UTC"
        );
    }

    #[test]
    fn parses_like_go() {
        let ok = |layout: &str, v: &str| parse(layout, v, &utc()).unwrap();
        let t = ok("2006-01-02T15:04:05Z07:00", "2009-11-10T23:04:05+01:00");
        assert_eq!((t.secs, t.offset), (1_257_894_245 - 3600, 3600));
        let t = ok("2006-01-02 15:04:05", "2009-11-10 23:04:05.25");
        assert_eq!((t.secs, t.nsec), (1_257_894_245, 250_000_000));
        let t = ok("02/Jan/2006:15:04:05 -0700", "10/nov/2009:23:04:05 +0000");
        assert_eq!(t.secs, 1_257_894_245);
        let t = ok("Jan _2 3:04:05 PM", "Nov  1 11:04:05 PM");
        assert_eq!(format(&t, "2006-01-02 15:04:05"), "0000-11-01 23:04:05");
        let t = ok("2006-01-02", "2024-02-29");
        assert_eq!(t.secs, 1_709_164_800);
        assert!(parse("2006-01-02", "2023-02-29", &utc()).is_err());
        assert!(parse("2006-01-02", "2023-13-01", &utc()).is_err());
        assert!(parse("2006-01-02", "2023-01-01x", &utc()).is_err());
        assert!(parse("2006-01-02", "garbage", &utc()).is_err());
        let t = ok("2006-01-02 15:04:05 MST", "2009-11-10 23:04:05 CET");
        assert_eq!((t.offset, &*t.zone), (0, "CET"));
        let t = ok("2006-01-02 15:04:05.000", "2009-11-10 23:04:05.120");
        assert_eq!(t.nsec, 120_000_000);
        assert!(parse("2006-01-02 15:04:05.000", "2009-11-10 23:04:05.12", &utc()).is_err());
    }

    #[test]
    fn durations() {
        for (ns, s) in [
            (0, "0s"),
            (1, "1ns"),
            (1_500, "1.5µs"),
            (1_500_000, "1.5ms"),
            (90_000_000_000, "1m30s"),
            (3_600_000_000_000, "1h0m0s"),
            (-1_500_000_000, "-1.5s"),
        ] {
            assert_eq!(format_duration(ns), s);
        }
        assert_eq!(parse_duration("1h30m"), Some(5_400_000_000_000));
        assert_eq!(parse_duration("-1.5s"), Some(-1_500_000_000));
        assert_eq!(parse_duration("x"), None);
        assert_eq!(parse_duration("5"), None);
    }
}
