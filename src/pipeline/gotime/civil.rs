//! Proleptic Gregorian calendar arithmetic on day counts since 1970-01-01,
//! as Go's `time` does it (no leap seconds; year 0 exists).
//!
//! Owns: leap years, month lengths, date ↔ day count, and the civil fields
//! of a wall-clock second. Must never panic (huge inputs saturate).

/// Days before each month in a common year (index 12 = the whole year).
const DAYS_BEFORE: [i64; 13] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 365];

pub fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

/// Days in `month` (1..=12) of `year`; 0 for a month out of range.
pub fn days_in(month: i64, year: i64) -> i64 {
    if month == 2 && is_leap(year) {
        return 29;
    }
    match month {
        1..=12 => DAYS_BEFORE[month as usize] - DAYS_BEFORE[(month - 1) as usize],
        _ => 0,
    }
}

/// Go's day-of-year resolution: (month, day) of day `yday` (1-based) of
/// `year`; `None` outside the year.
pub fn month_day(year: i64, mut yday: i64) -> Option<(i64, i64)> {
    if is_leap(year) {
        if yday == 31 + 29 {
            return Some((2, 29));
        }
        if yday > 31 + 29 {
            yday -= 1;
        }
    }
    if !(1..=365).contains(&yday) {
        return None;
    }
    let mut m = (yday - 1) / 31 + 1;
    if DAYS_BEFORE[m as usize] < yday {
        m += 1;
    }
    Some((m, yday - DAYS_BEFORE[(m - 1) as usize]))
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
    let z = days.saturating_add(719_468);
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The civil fields of a wall-clock second (seconds since 1970-01-01
/// 00:00 on that clock).
pub struct Civil {
    pub year: i64,
    pub month: i64,
    pub day: i64,
    pub hour: i64,
    pub min: i64,
    pub sec: i64,
    /// 0 = Sunday.
    pub weekday: i64,
    /// 1-based day of the year.
    pub yday: i64,
}

impl Civil {
    pub fn of_wall(wall: i64) -> Civil {
        let days = wall.div_euclid(86_400);
        let sod = wall.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        Civil {
            year,
            month,
            day,
            hour: sod / 3600,
            min: sod % 3600 / 60,
            sec: sod % 60,
            weekday: (days.rem_euclid(7) + 4) % 7,
            yday: days - days_from_civil(year, 1, 1) + 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_and_year_days_resolve() {
        for days in [-719_528, -1, 0, 59, 11_016, 19_782, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(month_day(2024, 60), Some((2, 29)));
        assert_eq!(month_day(2023, 60), Some((3, 1)));
        assert_eq!(month_day(2024, 366), Some((12, 31)));
        assert_eq!(month_day(2023, 366), None);
        assert_eq!(days_in(2, 1900), 28);
        assert_eq!(days_in(13, 2000), 0);
        // 2009-11-10 was a Tuesday, day 314.
        let c = Civil::of_wall(1_257_894_245);
        assert_eq!((c.weekday, c.yday, c.hour), (2, 314, 23));
    }
}
