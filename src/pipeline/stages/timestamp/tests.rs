//! Tests of the `timestamp` stage. Expected instants were computed with GNU
//! `date -u -d …` from the times Go's documentation and Promtail's own tests
//! give for each format, not from this code.

use super::*;
use crate::ack::Ack;
use crate::metrics::Metrics;
use crate::pipeline::Ctx;

const S: i64 = 1_000_000_000;

fn config(yaml: &str) -> Config {
    serde_yaml_ng::from_str(yaml).unwrap()
}

fn stage(yaml: &str) -> TimestampStage {
    TimestampStage::new(&config(yaml)).unwrap()
}

fn entry(labels: &LabelSet, v: Option<Value>, ts: i64) -> Entry {
    let mut e = Entry::new(labels.clone(), Timestamp(ts), "line".into(), Ack::none());
    if let Some(v) = v {
        e.extracted.insert("ts", v);
    }
    e
}

/// Runs one entry; returns its timestamp afterwards.
fn run(st: &mut TimestampStage, labels: &LabelSet, v: Option<Value>, ts: i64) -> i64 {
    let m = Metrics::new();
    let mut out = Vec::new();
    st.process(entry(labels, v, ts), &mut Ctx::new(&mut out, &m));
    assert_eq!(out.len(), 1, "the stage never drops");
    out.pop().unwrap().timestamp.0
}

/// Parses `value` with `format` (and `location`); the timestamp in ns, or
/// None when the stage left the read time (1) alone.
fn parse_with(format: &str, location: Option<&str>, value: &str) -> Option<i64> {
    let mut c = Config {
        source: "ts".into(),
        format: format.into(),
        action_on_failure: Some("skip".into()),
        ..Default::default()
    };
    c.location = location.map(String::from);
    let mut st = TimestampStage::new(&c)
        .unwrap()
        .with_now(1_563_062_400, Some("UTC"));
    let ts = run(&mut st, &LabelSet::empty(), Some(Value::from(value)), 1);
    (ts != 1).then_some(ts)
}

#[test]
fn named_formats() {
    let cases: &[(&str, &str, i64)] = &[
        ("ANSIC", "Mon Jan  2 15:04:05 2006", 1_136_214_245 * S),
        (
            "ANSIC",
            "Mon Jan 12 15:04:05 2006",
            (1_136_214_245 + 10 * 86_400) * S,
        ),
        (
            "UnixDate",
            "Mon Jan  2 15:04:05 UTC 2006",
            1_136_214_245 * S,
        ),
        (
            "RubyDate",
            "Mon Jan 02 15:04:05 -0700 2006",
            1_136_239_445 * S,
        ),
        ("RFC822", "02 Jan 06 15:04 UTC", 1_136_214_240 * S),
        ("RFC822Z", "02 Jan 06 15:04 -0700", 1_136_239_440 * S),
        (
            "RFC850",
            "Monday, 02-Jan-06 15:04:05 UTC",
            1_136_214_245 * S,
        ),
        (
            "RFC1123",
            "Mon, 02 Jan 2006 15:04:05 GMT",
            1_136_214_245 * S,
        ),
        (
            "RFC1123Z",
            "Mon, 02 Jan 2006 15:04:05 -0700",
            1_136_239_445 * S,
        ),
        ("RFC3339", "2012-11-01T22:08:41-04:00", 1_351_822_121 * S),
        ("RFC3339", "2006-01-02T15:04:05Z", 1_136_214_245 * S),
        // Go accepts a fraction after the seconds even without one in the layout.
        (
            "RFC3339",
            "2006-01-02T15:04:05.123Z",
            1_136_214_245 * S + 123_000_000,
        ),
        (
            "RFC3339Nano",
            "2019-10-01T01:02:03.400000001Z",
            1_569_891_723 * S + 400_000_001,
        ),
        ("RFC3339Nano", "2006-01-02T15:04:05Z", 1_136_214_245 * S),
        (
            "RFC3339Nano",
            "2006-01-02T16:04:05.5+01:00",
            1_136_214_245 * S + 500_000_000,
        ),
    ];
    for &(f, v, want) in cases {
        assert_eq!(parse_with(f, None, v), Some(want), "{f} {v}");
    }
}

#[test]
fn named_formats_reject_what_go_rejects() {
    let cases: &[(&str, &str)] = &[
        // RFC1123 wants a two-digit day.
        ("RFC1123", "Mon, 2 Jan 2006 15:04:05 GMT"),
        ("RFC3339", "2006-01-02 15:04:05Z"),
        ("RFC3339", "2006-01-02T15:04:05"),
        ("RFC3339", "2006-01-02t15:04:05z"),
        ("RFC3339", "2006-02-30T15:04:05Z"),
        ("RFC3339", "2006-01-02T24:04:05Z"),
        ("RFC3339", "2006-01-02T15:04:05Z trailing"),
        ("ANSIC", "Mon Foo  2 15:04:05 2006"),
        ("UnixMs", "12.5"),
        ("Unix", "1.2.3"),
        ("Unix", "1."),
        ("Unix", ""),
        ("UnixNs", "0x10"),
    ];
    for &(f, v) in cases {
        assert_eq!(parse_with(f, None, v), None, "{f} {v:?}");
    }
}

#[test]
fn unix_formats_as_promtail_tests_them() {
    let t = 1_562_708_916 * S; // 2019-07-09T21:48:36Z
    let cases: &[(&str, &str, i64)] = &[
        ("Unix", "1562708916", t),
        ("Unix", "1562708916.414123", t + 414_123_000),
        ("Unix", "1562708916.000000123", t + 123),
        ("Unix", "1562708916.5", t + 500_000_000),
        ("Unix", "+1562708916", t),
        ("UnixMs", "1562708916414", t + 414_000_000),
        ("UnixMs", "1562708916919", t + 919_000_000),
        ("UnixUs", "1562708916414123", t + 414_123_000),
        ("UnixNs", "1562708916000000123", t + 123),
        ("UnixNs", "-5", -5),
    ];
    for &(f, v, want) in cases {
        assert_eq!(parse_with(f, None, v), Some(want), "{f} {v}");
    }
    // A fraction with more than nine digits is scaled down, as Promtail does.
    assert_eq!(
        parse_with("Unix", None, "1562708916.1234567891"),
        Some(t + 123_456_789)
    );
}

#[test]
fn custom_layouts() {
    let cases: &[(&str, &str, i64)] = &[
        ("2006-01-02", "2009-01-01", 1_230_768_000 * S),
        (
            "06 Jan 02 15:04:05",
            "19 Jul 15 01:02:03",
            1_563_152_523 * S,
        ),
        (
            "2006 Jan 02 15:04:05",
            "2019 Jul 15 01:02:03",
            1_563_152_523 * S,
        ),
        // nginx / apache access logs
        (
            "02/Jan/2006:15:04:05 -0700",
            "10/Oct/2000:13:55:36 -0700",
            971_211_336 * S,
        ),
        // month names are matched ignoring case
        (
            "02/Jan/2006:15:04:05 -0700",
            "10/oct/2000:13:55:36 -0700",
            971_211_336 * S,
        ),
        ("January 2, 2006", "October 10, 2000", 971_136_000 * S),
        // exact-width fractions, with `.` or `,`
        (
            "2006-01-02 15:04:05.000",
            "2006-01-02 15:04:05.123",
            1_136_214_245 * S + 123_000_000,
        ),
        (
            "2006-01-02 15:04:05,000",
            "2006-01-02 15:04:05,123",
            1_136_214_245 * S + 123_000_000,
        ),
        // `.999`: optional, any number of digits
        (
            "2006-01-02 15:04:05.999",
            "2006-01-02 15:04:05",
            1_136_214_245 * S,
        ),
        (
            "2006-01-02 15:04:05.999",
            "2006-01-02 15:04:05.12345",
            1_136_214_245 * S + 123_450_000,
        ),
        // 12-hour clock
        (
            "2006-01-02 3:04:05 PM",
            "2006-01-02 3:04:05 PM",
            1_136_214_245 * S,
        ),
        (
            "2006-01-02 03:04:05pm",
            "2006-01-02 12:04:05am",
            1_136_160_245 * S,
        ),
        (
            "2006-01-02 03:04:05pm",
            "2006-01-02 12:04:05pm",
            1_136_203_445 * S,
        ),
        // numeric offsets in every form
        (
            "2006-01-02 15:04:05 -07:00",
            "2006-01-02 15:04:05 -07:00",
            1_136_239_445 * S,
        ),
        (
            "2006-01-02 15:04:05 -07",
            "2006-01-02 15:04:05 -07",
            1_136_239_445 * S,
        ),
        (
            "2006-01-02 15:04:05 -070000",
            "2006-01-02 15:04:05 -070000",
            1_136_239_445 * S,
        ),
        (
            "2006-01-02 15:04:05 Z0700",
            "2006-01-02 15:04:05 Z",
            1_136_214_245 * S,
        ),
        (
            "2006-01-02 15:04:05 Z07:00:00",
            "2006-01-02 15:04:05 +01:00:00",
            1_136_210_645 * S,
        ),
        // day of year (2024 is a leap year: day 60 is Feb 29)
        ("2006-002", "2024-060", 1_709_164_800 * S),
        ("2006 __2", "2024  60", 1_709_164_800 * S),
        // runs of spaces in the layout match any run of spaces
        (
            "Jan 2 2006",
            "Jan    12 2006",
            (1_136_160_000 + 10 * 86_400) * S,
        ),
        // weekday names are checked but ignored
        ("Monday 2006-01-02", "friday 2006-01-02", 1_136_160_000 * S),
        // an unknown zone abbreviation counts as UTC; GMT+N keeps the UTC
        // instant too (Go records a made-up zone)
        (
            "2006-01-02 15:04:05 MST",
            "2006-01-02 15:04:05 XYZ",
            1_136_214_245 * S,
        ),
        (
            "2006-01-02 15:04:05 MST",
            "2006-01-02 15:04:05 GMT+3",
            1_136_214_245 * S,
        ),
        (
            "2006-01-02 15:04:05 MST",
            "2006-01-02 15:04:05 UTC",
            1_136_214_245 * S,
        ),
    ];
    for &(f, v, want) in cases {
        assert_eq!(parse_with(f, None, v), Some(want), "{f} {v}");
    }
}

#[test]
fn custom_layouts_reject_bad_values() {
    let cases: &[(&str, &str)] = &[
        ("2006-01-02", "2023-02-29"),
        ("2006-01-02", "2023-13-01"),
        ("2006-01-02 15:04", "2023-01-01 24:00"),
        ("2006-01-02 15:04", "2023-01-01 23:60"),
        ("2006-01-02", "2023-01-01x"),
        ("2006-01-02", "23-01-01"),
        ("2006-01-02 15:04:05.000", "2006-01-02 15:04:05.12"),
        ("2006-002", "2023-366"),
        ("2006-01-02 15:04:05 -0700", "2006-01-02 15:04:05 0700"),
        ("2006-01-02 03:04PM", "2006-01-02 03:04XM"),
        ("Jan 2006", "Jann 2006"),
        ("2006-01-02", ""),
    ];
    for &(f, v) in cases {
        assert_eq!(parse_with(f, None, v), None, "{f} {v:?}");
    }
}

#[test]
fn location_applies_to_custom_layouts_only() {
    // Promtail's tests: America/New_York, summer and winter.
    assert_eq!(
        parse_with(
            "2006-01-02 15:04:05",
            Some("America/New_York"),
            "2019-07-22 20:29:32"
        ),
        Some(1_563_841_772 * S)
    );
    assert_eq!(
        parse_with(
            "2006-01-02 15:04:05",
            Some("America/New_York"),
            "2009-07-01 03:30:20"
        ),
        Some(1_246_433_420 * S)
    );
    // A zone in the value wins over the location.
    assert_eq!(
        parse_with(
            "2006-01-02 15:04:05 -0700",
            Some("America/New_York"),
            "2006-01-02 15:04:05 -0700"
        ),
        Some(1_136_239_445 * S)
    );
    // The location's abbreviations are known: EDT is -4, EST -5 even in July.
    assert_eq!(
        parse_with(
            "2006-01-02 15:04:05 MST",
            Some("America/New_York"),
            "2019-07-15 01:02:03 EDT"
        ),
        Some(1_563_166_923 * S)
    );
    assert_eq!(
        parse_with(
            "2006-01-02 15:04:05 MST",
            Some("America/New_York"),
            "2019-07-15 01:02:03 EST"
        ),
        Some(1_563_170_523 * S)
    );
    // Named formats ignore `location` (Promtail uses time.Parse for them).
    assert_eq!(
        parse_with(
            "ANSIC",
            Some("America/New_York"),
            "Mon Jan  2 15:04:05 2006"
        ),
        Some(1_136_214_245 * S)
    );
    // "" and "UTC" are UTC, as Go's LoadLocation.
    assert_eq!(
        parse_with("2006-01-02", Some(""), "2009-01-01"),
        Some(1_230_768_000 * S)
    );
    assert_eq!(
        parse_with("2006-01-02", Some("UTC"), "2009-01-01"),
        Some(1_230_768_000 * S)
    );
}

#[test]
fn wall_times_in_a_dst_gap_or_overlap_resolve_as_go_does() {
    let ny = Some("America/New_York");
    // 02:30 does not exist on 2024-03-10: Go gives 01:30 EST (06:30Z).
    assert_eq!(
        parse_with("2006-01-02 15:04:05", ny, "2024-03-10 02:30:00"),
        Some(1_710_052_200 * S)
    );
    // 01:30 happens twice on 2024-11-03: Go takes the first (EDT, 05:30Z).
    assert_eq!(
        parse_with("2006-01-02 15:04:05", ny, "2024-11-03 01:30:00"),
        Some(1_730_611_800 * S)
    );
}

#[test]
fn zone_abbreviations_use_the_system_zone_for_named_formats() {
    // With Go's Local = America/Denver, MST is -7 (and MDT -6); in a UTC
    // container MST is unknown and counts as UTC.
    let mut c = config("{source: ts, format: UnixDate}");
    c.action_on_failure = Some("skip".into());
    let v = || Some(Value::from("Mon Jan  2 15:04:05 MST 2006"));
    let mut denver = TimestampStage::new(&c)
        .unwrap()
        .with_now(0, Some("America/Denver"));
    assert_eq!(
        run(&mut denver, &LabelSet::empty(), v(), 1),
        1_136_239_445 * S
    );
    let mut utc = TimestampStage::new(&c).unwrap().with_now(0, Some("UTC"));
    assert_eq!(run(&mut utc, &LabelSet::empty(), v(), 1), 1_136_214_245 * S);
}

/// A year-less layout parsed with "now" at `now` (Unix seconds, local UTC
/// unless `local` says otherwise).
fn yearless(layout: &str, loc: Option<&str>, now: i64, local: &str, v: &str) -> Option<i64> {
    let mut c = config("{source: ts, format: x, action_on_failure: skip}");
    c.format = layout.into();
    c.location = loc.map(String::from);
    let mut st = TimestampStage::new(&c).unwrap().with_now(now, Some(local));
    let ts = run(&mut st, &LabelSet::empty(), Some(Value::from(v)), 1);
    (ts != 1).then_some(ts)
}

#[test]
fn year_less_layouts_get_the_current_year() {
    let jul14_2019 = 1_563_062_400;
    // Promtail's parseTimestampWithoutYear cases.
    assert_eq!(
        yearless(
            "Jan 02 15:04:05",
            None,
            jul14_2019,
            "UTC",
            "Jul 15 01:02:03"
        ),
        Some(1_563_152_523 * S)
    );
    assert_eq!(
        yearless(
            "Jan 02 15:04:05",
            Some("America/New_York"),
            jul14_2019,
            "UTC",
            "Jul 15 01:02:03"
        ),
        Some(1_563_166_923 * S)
    );
    assert_eq!(
        yearless(
            "Jan 02 15:04:05",
            Some("America/New_York"),
            jul14_2019,
            "UTC",
            "Jan 15 01:02:03"
        ),
        Some(1_547_532_123 * S)
    );
    // A December line read on January 1st belongs to last year…
    assert_eq!(
        yearless(
            "Jan 02 15:04:05",
            None,
            1_546_300_800,
            "UTC",
            "Dec 31 23:59:59"
        ),
        Some(1_546_300_799 * S)
    );
    // …and a January line read on December 31st to next year.
    assert_eq!(
        yearless(
            "Jan 02 15:04:05",
            None,
            1_546_300_799,
            "UTC",
            "Jan 01 01:02:03"
        ),
        Some(1_546_304_523 * S)
    );
    // syslog's `Jan _2 15:04:05`, with a space-padded day.
    assert_eq!(
        yearless(
            "Jan _2 15:04:05",
            None,
            1_760_918_400,
            "UTC",
            "Oct  5 08:09:10"
        ),
        Some(1_759_651_750 * S)
    );
    // Feb 29 into a common year rolls over to Mar 1 (Go's AddDate).
    assert_eq!(
        yearless(
            "Jan _2 15:04:05",
            None,
            1_748_736_000,
            "UTC",
            "Feb 29 12:00:00"
        ),
        Some(1_740_830_400 * S)
    );
    // "Now" is in Go's Local: 2019-12-31 23:00 in UTC is already January 1st
    // in Tokyo, so a December line belongs to 2019 there.
    assert_eq!(
        yearless(
            "Jan 02 15:04:05",
            None,
            1_577_833_200,
            "Asia/Tokyo",
            "Dec 31 12:00:00"
        ),
        Some((1_577_836_800 - 12 * 3600) * S)
    );
}

#[test]
fn fallback_formats_are_tried_in_order() {
    // Promtail's "fallback formats contains the format" case.
    let mut st = stage(
        "source: ts\nformat: UnixMs\nfallback_formats: [\"2006-01-02 03:04:05.000000000 +0000 UTC\", RFC3339]\n",
    );
    let l = LabelSet::empty();
    assert_eq!(
        run(
            &mut st,
            &l,
            Some(Value::from("2012-11-01T22:08:41-04:00")),
            1
        ),
        1_351_822_121 * S
    );
    assert_eq!(
        run(&mut st, &l, Some(Value::from("1562708916414")), 1),
        1_562_708_916_414 * 1_000_000
    );
}

#[test]
fn non_string_sources_are_read_as_promtail_reads_them() {
    let mut st = stage("{source: ts, format: Unix, action_on_failure: skip}");
    let l = LabelSet::empty();
    // A JSON number arrives as a float64: 1562708916.5 reads "1562708916.5".
    assert_eq!(
        run(&mut st, &l, Some(Value::from(1_562_708_916.5)), 1),
        1_562_708_916 * S + 500_000_000
    );
    assert_eq!(
        run(&mut st, &l, Some(Value::from(1_562_708_916.0)), 1),
        1_562_708_916 * S
    );
    // null and bools are failures (bools read "true", which is no time).
    assert_eq!(run(&mut st, &l, Some(Value::Null), 1), 1);
    assert_eq!(run(&mut st, &l, Some(Value::Bool(true)), 1), 1);
}

#[test]
fn fudge_per_label_set_as_promtail() {
    let mut st = stage("{source: ts, format: RFC3339Nano}");
    let one = LabelSet::new([("filename", "/1.log")]);
    let two = LabelSet::new([("filename", "/2.log")]);
    let t4 = 1_569_891_723 * S + 400_000_000;
    let t8 = 1_569_891_723 * S + 800_000_000;
    let ok = |s: &str| Some(Value::from(s));
    assert_eq!(run(&mut st, &one, ok("2019-10-01T01:02:03.4Z"), 1), t4);
    assert_eq!(run(&mut st, &two, ok("2019-10-01T01:02:03.8Z"), 1), t8);
    assert_eq!(run(&mut st, &one, None, 1), t4 + 1);
    assert_eq!(run(&mut st, &two, ok("garbage"), 1), t8 + 1);
    assert_eq!(run(&mut st, &one, None, 1), t4 + 2);
    assert_eq!(run(&mut st, &two, None, 1), t8 + 2);
    // A good timestamp resets the count.
    assert_eq!(run(&mut st, &one, ok("2019-10-01T01:02:03.8Z"), 1), t8);
    assert_eq!(run(&mut st, &one, None, 1), t8 + 1);
    // No known timestamp for this label set yet: the entry keeps its own.
    let three = LabelSet::new([("filename", "/3.log")]);
    assert_eq!(run(&mut st, &three, None, 42), 42);
    assert_eq!(run(&mut st, &three, None, 43), 43);
}

#[test]
fn skip_leaves_the_timestamp() {
    let mut st = stage("{source: ts, format: RFC3339Nano, action_on_failure: skip}");
    let l = LabelSet::new([("filename", "/1.log")]);
    assert_eq!(
        run(&mut st, &l, Some(Value::from("2019-10-01T01:02:03.4Z")), 1),
        1_569_891_723 * S + 400_000_000
    );
    assert_eq!(run(&mut st, &l, None, 1), 1);
    assert_eq!(run(&mut st, &l, Some(Value::from("nope")), 5), 5);
}

#[test]
fn fudge_memory_is_bounded() {
    let mut lk = LastKnown::default();
    for i in 0..(MAX_LAST_KNOWN + 10) {
        lk.set(&LabelSet::new([("n", i.to_string())]), i as i64);
    }
    assert!(lk.map.len() <= MAX_LAST_KNOWN);
    // The most recent label sets are still known.
    let last = LabelSet::new([("n", (MAX_LAST_KNOWN + 9).to_string())]);
    assert_eq!(lk.fudge(&last), Some(MAX_LAST_KNOWN as i64 + 10));
    assert_eq!(lk.fudge(&LabelSet::new([("n", "0")])), None);
}

#[test]
fn out_of_range_times_are_failures() {
    assert_eq!(parse_with("2006-01-02", None, "1600-01-01"), None);
    assert_eq!(parse_with("2006-01-02", None, "2300-01-01"), None);
    assert_eq!(parse_with("UnixMs", None, "9223372036854775807"), None);
}

#[test]
fn config_errors_name_the_key() {
    let ctx = BuildCtx::new(std::sync::Arc::new(Metrics::new()));
    let err = |yaml: Option<&str>| {
        let c = yaml.map(config);
        build(c.as_ref(), &ctx).err().unwrap()
    };
    assert_eq!(err(None), "timestamp stage config cannot be empty");
    assert!(err(Some("{format: RFC3339}")).starts_with("source: "));
    assert!(err(Some("{source: ts}")).starts_with("format: "));
    let e = err(Some(
        "{source: ts, format: RFC3339, location: America/Canada}",
    ));
    assert!(e.starts_with("location: invalid location specified"), "{e}");
    let e = err(Some(
        "{source: ts, format: RFC3339, action_on_failure: foo}",
    ));
    assert!(e.starts_with("action_on_failure: "), "{e}");
    assert!(e.contains("[skip fudge]"), "{e}");
    assert!(serde_yaml_ng::from_str::<Config>("{source: ts, format: x, nope: 1}").is_err());
    // Every documented option is accepted.
    let ok = config(
        "source: ts\nformat: RFC3339\nfallback_formats: [UnixMs]\nlocation: Europe/Berlin\naction_on_failure: fudge\n",
    );
    assert!(build(Some(&ok), &ctx).unwrap().is_some());
}

#[test]
fn built_from_yaml_in_a_pipeline() {
    let v: Vec<super::super::StageConfig> =
        serde_yaml_ng::from_str("- timestamp:\n    source: ts\n    format: RFC3339\n").unwrap();
    assert!(v[0].unhonoured_name().is_none());
    let mut p = super::super::build(&v, std::sync::Arc::new(Metrics::new())).unwrap();
    assert_eq!(p.stage_names(), ["timestamp"]);
    let mut e = entry(&LabelSet::empty(), None, 1);
    e.extracted
        .insert("ts", Value::from("2012-11-01T22:08:41-04:00"));
    // Seeding the extracted map with the labels keeps the value set here.
    let mut out = Vec::new();
    p.process(e, &mut out);
    assert_eq!(out[0].timestamp.0, 1_351_822_121 * S);
}
