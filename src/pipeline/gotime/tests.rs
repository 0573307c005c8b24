//! Tests of parsing and formatting together, as Go's `time` does them
//! (expected values from Go's documentation and `date -u`), and of the
//! cases where tailtrace's two former copies disagreed: each keeps Go's
//! answer.

use super::*;

fn utc() -> GoLocation {
    GoLocation::Utc
}

fn parse(layout: &str, v: &str, loc: &GoLocation) -> Result<ZonedTime, String> {
    parse_in_location(layout, v, loc)
}

fn format(t: &ZonedTime, layout: &str) -> String {
    t.format(layout)
}

#[test]
fn formats_like_go() {
    // 2009-11-10T23:04:05.123456789Z (a Tuesday)
    let t = ZonedTime::utc(1_257_894_245, 123_456_789);
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
    let t = ZonedTime {
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
        ZonedTime::zero().to_go_string(),
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
fn layout_parser_details() {
    let utc = GoLocation::Utc;
    let p = |l: &str, v: &str| Layout::new(l).parse(v, &utc, false).map(|t| t.unix).ok();
    // `_2006` is a literal underscore and the year.
    assert_eq!(p("x_2006", "x_2009"), Some(1_230_768_000));
    // A fraction in the value right after the seconds, with `,`.
    assert_eq!(
        Layout::new("15:04:05")
            .parse("00:00:01,5", &utc, false)
            .map(|t| t.nsec),
        Ok(500_000_000)
    );
    // "Month" is not "Mon"+"th": it is literal text.
    assert_eq!(p("Month 2006", "Month 2009"), Some(1_230_768_000));
    // Elements left out default to January 1st, year 0, midnight.
    assert_eq!(p("15:04", "00:00"), Some(-62_167_219_200));
}

/// The two copies disagreed; Go's `parseSignedOffset` takes hours up to 23
/// (the template's copy stopped at 12).
#[test]
fn signed_offset_zone_names_go_up_to_23_hours() {
    let t = parse("2006-01-02 MST", "2009-11-10 +15", &utc()).unwrap();
    assert_eq!((t.secs, t.offset, &*t.zone), (1_257_811_200, 0, "+15"));
    assert!(parse("2006-01-02 MST", "2009-11-10 +24", &utc()).is_err());
    let t = parse("2006-01-02 MST", "2009-11-10 GMT+15", &utc()).unwrap();
    assert_eq!((t.offset, &*t.zone), (15 * 3600, "GMT+15"));
}

/// The two copies disagreed; Go puts an unknown `GMT+N` zone on the UTC
/// instant of the wall clock (`Date(…, UTC)` then `setLoc`), so it shows N
/// hours later (the template's copy moved the instant instead).
#[test]
fn gmt_plus_n_keeps_the_utc_instant_of_the_wall_clock() {
    let t = parse(
        "2006-01-02 15:04:05 MST",
        "2009-11-10 23:04:05 GMT+3",
        &utc(),
    )
    .unwrap();
    assert_eq!(t.secs, 1_257_894_245);
    assert_eq!(t.to_go_string(), "2009-11-11 02:04:05 +0300 GMT+3");
}

/// The two copies disagreed; Go's `atoi` takes a sign in a two-digit year
/// (the template's copy wanted two digits).
#[test]
fn two_digit_years_take_a_sign_as_go_atoi() {
    let y = |v: &str| parse("06", v, &utc()).map(|t| t.year());
    assert_eq!(y("+9"), Ok(2009));
    assert_eq!(y("-5"), Ok(1995));
    assert!(y("x5").is_err());
}

/// The two copies disagreed; Go's `lookupName` falls back to any zone of
/// the location with that abbreviation (the template's copy only knew the
/// one in effect, and took others as UTC).
#[test]
fn an_abbreviation_the_location_used_takes_its_offset() {
    let berlin = GoLocation::load("Europe/Berlin").unwrap();
    let l = "2006-01-02 15:04 MST";
    // CEST in January: +02:00, shown in Berlin's zone then (CET).
    let t = parse(l, "2009-01-10 12:00 CEST", &berlin).unwrap();
    assert_eq!(t.secs, 1_231_581_600);
    assert_eq!(t.to_go_string(), "2009-01-10 11:00:00 +0100 CET");
    let t = parse(l, "2009-07-10 12:00 CEST", &berlin).unwrap();
    assert_eq!(t.to_go_string(), "2009-07-10 12:00:00 +0200 CEST");
    // An unknown abbreviation: a zone of its own at offset 0.
    let t = parse(l, "2009-07-10 12:00 XYZ", &berlin).unwrap();
    assert_eq!(t.to_go_string(), "2009-07-10 12:00:00 +0000 XYZ");
}

/// A numeric offset is recorded as the location when the location has it
/// then (Go; the timestamp stage's copy always recorded a fixed zone).
#[test]
fn a_numeric_offset_the_location_has_then_is_the_location() {
    let berlin = GoLocation::load("Europe/Berlin").unwrap();
    let l = Layout::new("2006-01-02 15:04 -0700");
    let t = l.parse("2009-01-10 12:00 +0100", &berlin, true).unwrap();
    assert_eq!(t.settle(&berlin).zone, Zone::Local);
    let t = l.parse("2009-01-10 12:00 +0200", &berlin, true).unwrap();
    assert_eq!(
        t.settle(&berlin).zone,
        Zone::Fixed {
            offset: 7200,
            name: ""
        }
    );
    let show = |v: &str| {
        parse("2006-01-02 15:04 -0700", v, &berlin)
            .unwrap()
            .to_go_string()
    };
    assert_eq!(
        show("2009-01-10 12:00 +0100"),
        "2009-01-10 12:00:00 +0100 CET"
    );
    assert_eq!(
        show("2009-01-10 12:00 +0200"),
        "2009-01-10 12:00:00 +0200 +0200"
    );
}

/// The template's copy sliced text at byte offsets and panicked on values
/// with multi-byte characters there; the shared parser works on bytes.
#[test]
fn multi_byte_values_are_errors_not_panics() {
    for (l, v) in [
        ("05.000", "01.12é"),
        ("-0700", "+0é00"),
        ("Z07:00:00", "+01:é0:00"),
        ("06", "é"),
        ("MST", "éST"),
        ("Jan", "Jé"),
        ("PM", "é"),
    ] {
        assert!(parse(l, v, &utc()).is_err(), "{l} {v}");
    }
}

/// Go's messages; a zone offset out of range outranks a bad field after it.
#[test]
fn errors_read_as_go_words_them() {
    let e = |l: &str, v: &str| parse(l, v, &utc()).unwrap_err();
    assert_eq!(
        e("2006-01-02", "2009-1x"),
        r#"parsing time "2009-1x" as "2006-01-02": cannot parse "1x""#
    );
    assert_eq!(
        e("2006", "2009 "),
        r#"parsing time "2009 ": extra text: " ""#
    );
    assert_eq!(e("15", "24"), r#"parsing time "24": hour out of range"#);
    assert_eq!(
        e("-0700", "+25x0"),
        r#"parsing time "+25x0": time zone offset hour out of range"#
    );
    assert_eq!(
        e("2006 002 01", "2009 032 01"),
        r#"parsing time "2009 032 01": day-of-year does not match month"#
    );
    assert_eq!(
        e(".000", ".-12"),
        r#"parsing time ".-12": fractional second out of range"#
    );
}

/// Template-side formatting fixed to Go's `appendNano` and `stdYear`: at
/// most nine fraction digits; a negative year's last two digits unsigned.
#[test]
fn formats_at_most_nine_fraction_digits_and_unsigned_short_years() {
    let t = ZonedTime::utc(1_257_894_245, 123_456_789);
    assert_eq!(
        t.format(".0000000000|,999999999999"),
        ".123456789|,123456789"
    );
    let t = ZonedTime::utc(civil::days_from_civil(-5, 1, 1) * 86_400, 0);
    assert_eq!(t.format("2006 06"), "-0005 05");
}
