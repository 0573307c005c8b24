//! Decoding one line of the CRI log format, as containerd and CRI-O write it.
//!
//! Owns: [`decode`] / [`split`] (one line → [`CriLine`] / [`CriFields`]),
//! [`Stream`], and [`parse_rfc3339`], the hand-written RFC 3339 parser both
//! runtimes' timestamps (and docker's) go through.
//!
//! Format: `<time> <stdout|stderr> <tags> <content>` (the file's `\n` already
//! removed by the reader). Tags are split on `:`; the first is `P` (partial,
//! more pieces follow) or anything else (a full line / the last piece), as the
//! kubelet reads them. Containerd writes RFC3339Nano with trailing zeros
//! trimmed and `Z`; CRI-O writes 9 fractional digits and a numeric offset.
//!
//! Design: zero-copy — `memchr` finds the separators (the usual
//! `stdout F ` after the time is read in place) and the content is a
//! sub-slice of the input; no regex, no allocation. Which lines
//! match follows Promtail's `cri` regex
//! `^(?s)(\S+?) (stdout|stderr) (\S+?) (.*)$`: each of the three fields is
//! non-empty, free of Go's `\s` (`\t \n \f \r` and space), and followed by one
//! space; the content is everything after (possibly empty, kept byte for
//! byte, including any `\r`).
//!
//! Must never: panic or allocate on any input, or do I/O.

use crate::entry::Timestamp;
use std::fmt;

/// Which output stream of the container a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    /// The `stream` label value: `stdout` or `stderr`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }

    /// Parses exactly `stdout` or `stderr`.
    pub fn from_bytes(b: &[u8]) -> Option<Stream> {
        match b {
            b"stdout" => Some(Stream::Stdout),
            b"stderr" => Some(Stream::Stderr),
            _ => None,
        }
    }

    /// 0 for stdout, 1 for stderr (for small per-stream arrays).
    pub fn index(self) -> usize {
        match self {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        }
    }
}

/// One decoded CRI line, borrowing its content from the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CriLine<'a> {
    pub timestamp: Timestamp,
    pub stream: Stream,
    /// True for a `P` piece: the line continues in the next piece of the
    /// same stream.
    pub partial: bool,
    pub content: &'a [u8],
}

/// A line split into its CRI fields, the timestamp not yet parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CriFields<'a> {
    pub time: &'a [u8],
    pub stream: Stream,
    pub partial: bool,
    /// Byte offset of `content` in the input line.
    pub content_start: usize,
    pub content: &'a [u8],
}

/// Why a line is not a CRI line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CriError {
    /// Fewer than three space-separated fields before the content.
    MissingField,
    /// A field is empty or contains a tab, CR, LF or form feed.
    BadField,
    /// The second field is neither `stdout` nor `stderr`.
    BadStream,
    /// The first field is not an RFC 3339 timestamp in range.
    BadTimestamp,
}

impl fmt::Display for CriError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CriError::MissingField => "not a CRI line: fewer than 4 space-separated fields",
            CriError::BadField => "not a CRI line: empty field or whitespace in a field",
            CriError::BadStream => "not a CRI line: stream is neither stdout nor stderr",
            CriError::BadTimestamp => "CRI line with an invalid RFC 3339 timestamp",
        })
    }
}

impl std::error::Error for CriError {}

/// Go's `\s` minus the space, which is the separator.
fn has_go_space(b: &[u8]) -> bool {
    b.iter()
        .any(|&c| matches!(c, b'\t' | b'\n' | b'\x0c' | b'\r'))
}

/// Whether Promtail's `cri` regex refuses a line for its time field
/// (`\S+`: empty, or holding one of Go's other spaces).
fn bad_time(time: &[u8]) -> bool {
    time.is_empty() || has_go_space(time)
}

/// Splits `line` into its CRI fields without parsing the timestamp: the
/// lines this accepts are exactly those Promtail's `cri` regex matches.
pub fn split(line: &[u8]) -> Result<CriFields<'_>, CriError> {
    let f = split_fields(line)?;
    if bad_time(f.time) {
        return Err(CriError::BadField);
    }
    Ok(f)
}

/// [`split`] and [`parse_rfc3339`] of its time in one, for the `cri` stage:
/// accepts the lines [`split`] accepts, with the time parsed (`None`: it is
/// not a timestamp). The time is searched for Go's spaces only when it does
/// not parse, since one that parses has none: that search was a loop over
/// every line's ~30-byte time (~2 % of a one-file drain's instructions).
/// The error of a line both refuse may differ (the stage does not tell them
/// apart: it passes such a line on unchanged).
pub fn split_timed(line: &[u8]) -> Result<(CriFields<'_>, Option<Timestamp>), CriError> {
    let f = split_fields(line)?;
    match parse_rfc3339(f.time) {
        Some(ts) => Ok((f, Some(ts))),
        None if bad_time(f.time) => Err(CriError::BadField),
        None => Ok((f, None)),
    }
}

/// [`split`] without the time's check for spaces. What the runtimes write
/// after the time — `stdout F `, `stderr P ` — is read in place, without
/// searching for its two spaces and a `:` (three `memchr` calls, ~2 % of a
/// one-file drain's instructions); anything else is searched
/// ([`split_searched`]), with the same answer for every line.
fn split_fields(line: &[u8]) -> Result<CriFields<'_>, CriError> {
    let sp1 = memchr::memchr(b' ', line).ok_or(CriError::MissingField)?;
    if let Some([stream @ .., b' ', tag @ (b'F' | b'P'), b' ']) = line.get(sp1 + 1..sp1 + 10) {
        if let Some(stream) = Stream::from_bytes(stream) {
            let content_start = sp1 + 10;
            return Ok(CriFields {
                time: &line[..sp1],
                stream,
                partial: *tag == b'P',
                content_start,
                content: &line[content_start..],
            });
        }
    }
    split_searched(line, sp1)
}

/// [`split_fields`] by searching for each separator; `sp1` is the first
/// space's index.
fn split_searched(line: &[u8], sp1: usize) -> Result<CriFields<'_>, CriError> {
    let time = &line[..sp1];
    let rest = &line[sp1 + 1..];
    let sp2 = memchr::memchr(b' ', rest).ok_or(CriError::MissingField)?;
    let stream = &rest[..sp2];
    let rest = &rest[sp2 + 1..];
    let sp3 = memchr::memchr(b' ', rest).ok_or(CriError::MissingField)?;
    let tags = &rest[..sp3];
    let content_start = sp1 + 1 + sp2 + 1 + sp3 + 1;
    if tags.is_empty() || has_go_space(tags) {
        return Err(CriError::BadField);
    }
    let stream = Stream::from_bytes(stream).ok_or(CriError::BadStream)?;
    let first_tag = match memchr::memchr(b':', tags) {
        Some(i) => &tags[..i],
        None => tags,
    };
    Ok(CriFields {
        time,
        stream,
        partial: first_tag == b"P",
        content_start,
        content: &line[content_start..],
    })
}

/// Decodes one CRI line (without its trailing `\n`).
pub fn decode(line: &[u8]) -> Result<CriLine<'_>, CriError> {
    let f = split(line)?;
    let timestamp = parse_rfc3339(f.time).ok_or(CriError::BadTimestamp)?;
    Ok(CriLine {
        timestamp,
        stream: f.stream,
        partial: f.partial,
        content: f.content,
    })
}

/// Reads exactly `N` ASCII digits at `s[at..]`.
fn digits<const N: usize>(s: &[u8], at: usize) -> Option<i64> {
    let d = s.get(at..at + N)?;
    let mut v: i64 = 0;
    for &c in d {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(c - b'0');
    }
    Some(v)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

/// Days from 1970-01-01 to the given proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400; // 0..=399
    let mp = (m + 9) % 12; // March = 0
    let doy = (153 * mp + 2) / 5 + d - 1; // 0..=365
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // 0..=146096
    era * 146_097 + doe - 719_468
}

/// Parses an RFC 3339 timestamp as Go's `time.Parse(time.RFC3339Nano, …)`
/// accepts it: `YYYY-MM-DDThh:mm:ss[.fraction](Z|±hh:mm)`, any number of
/// fractional digits (beyond 9 ignored), seconds 0–59. Returns `None` for
/// anything else, for impossible dates (Feb 30, Feb 29 of a common year) and
/// for instants outside what i64 nanoseconds hold (years ~1678–2262).
pub fn parse_rfc3339(s: &[u8]) -> Option<Timestamp> {
    let secs = second_secs(s)?;
    let mut i = 19;
    let mut nanos: i64 = 0;
    if s.get(i) == Some(&b'.') {
        (nanos, i) = fraction(s, i + 1)?;
    }
    let offset_secs = match s.get(i)? {
        b'Z' => {
            i += 1;
            0
        }
        &sign @ (b'+' | b'-') => {
            let oh = digits::<2>(s, i + 1)?;
            if s.get(i + 3) != Some(&b':') {
                return None;
            }
            let om = digits::<2>(s, i + 4)?;
            if oh > 23 || om > 59 {
                return None;
            }
            i += 6;
            let o = oh * 3600 + om * 60;
            if sign == b'-' {
                -o
            } else {
                o
            }
        }
        _ => return None,
    };
    if i != s.len() {
        return None;
    }
    let secs = secs - offset_secs;
    secs.checked_mul(1_000_000_000)?
        .checked_add(nanos)
        .map(Timestamp)
}

/// The nanoseconds of the fraction's digits at `s[start..]` (at least one;
/// beyond nine ignored) and where they end. Eight digits at once when
/// there are eight (`parse_eight`), as both runtimes mostly write.
fn fraction(s: &[u8], start: usize) -> Option<(i64, usize)> {
    let mut i = start;
    let mut nanos: i64 = 0;
    if let Some(v) = s
        .get(start..start + 8)
        .and_then(|b| b.try_into().ok())
        .and_then(parse_eight)
    {
        nanos = v;
        i += 8;
    }
    while let Some(c) = s.get(i).filter(|c| c.is_ascii_digit()) {
        if i - start < 9 {
            nanos = nanos * 10 + i64::from(c - b'0');
        }
        i += 1;
    }
    let n = i - start;
    if n == 0 {
        return None;
    }
    for _ in n..9 {
        nanos *= 10;
    }
    Some((nanos, i))
}

/// Eight ASCII digits as a number, in a few word operations (SWAR), or
/// `None` if any byte is not a digit.
fn parse_eight(b: [u8; 8]) -> Option<i64> {
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    const HIGH: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    let v = u64::from_le_bytes(b);
    // Every byte 0x30..=0x39: its high nibble is 3, and adding 6 keeps it 3.
    if v & HIGH != ZEROS || v.wrapping_add(0x0606_0606_0606_0606) & HIGH != ZEROS {
        return None;
    }
    // The first digit is the lowest byte: fold pairs, then fours, then all.
    let mut x = v - ZEROS;
    x = (x * 10 + (x >> 8)) & 0x00FF_00FF_00FF_00FF;
    x = (x * 100 + (x >> 16)) & 0x0000_FFFF_0000_FFFF;
    x = (x * 10_000 + (x >> 32)) & 0xFFFF_FFFF;
    i64::try_from(x).ok()
}

thread_local! {
    /// The date (`YYYY-MM-DD`) last turned into a day number on this
    /// thread, and that number: a file's lines share their date, and
    /// checking and converting it was about a third of a parse. Starts as
    /// a valid date, so that only a valid date is ever found here.
    static LAST_DATE: std::cell::Cell<([u8; 10], i64)> =
        const { std::cell::Cell::new((*b"1970-01-01", 0)) };
    /// The same for the whole second (`YYYY-MM-DDThh:mm:ss`, before the
    /// offset): a busy file writes many lines a second, and reading its
    /// hour, minute and second was another ~1 % of a one-file drain. On a
    /// miss (files interleaved, a new second) the date is still likely
    /// [`LAST_DATE`]'s.
    static LAST_SECOND: std::cell::Cell<([u8; 19], i64)> =
        const { std::cell::Cell::new((*b"1970-01-01T00:00:00", 0)) };
}

/// Seconds since the Unix epoch of the `YYYY-MM-DDThh:mm:ss` that `s`
/// starts with, read as UTC, if it is valid (see [`parse_rfc3339`]).
fn second_secs(s: &[u8]) -> Option<i64> {
    let head: [u8; 19] = s.get(..19)?.try_into().ok()?;
    let (last, secs) = LAST_SECOND.get();
    if head == last {
        return Some(secs);
    }
    let days = date_days(&head)?;
    let hour = digits::<2>(&head, 11)?;
    let min = digits::<2>(&head, 14)?;
    let sec = digits::<2>(&head, 17)?;
    if head[10] != b'T' || head[13] != b':' || head[16] != b':' || hour > 23 || min > 59 || sec > 59
    {
        return None;
    }
    let secs = days * 86_400 + hour * 3600 + min * 60 + sec;
    LAST_SECOND.set((head, secs));
    Some(secs)
}

/// Days since the Unix epoch of the date `s` starts with, if it is a valid
/// `YYYY-MM-DD` (see [`parse_rfc3339`]).
fn date_days(s: &[u8]) -> Option<i64> {
    let date: [u8; 10] = s.get(..10)?.try_into().ok()?;
    let (last, days) = LAST_DATE.get();
    if date == last {
        return Some(days);
    }
    let year = digits::<4>(&date, 0)?;
    let month = digits::<2>(&date, 5)?;
    let day = digits::<2>(&date, 8)?;
    if date[4] != b'-'
        || date[7] != b'-'
        || !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    LAST_DATE.set((date, days));
    Some(days)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ts(s: &str) -> Option<i64> {
        parse_rfc3339(s.as_bytes()).map(|t| t.0)
    }

    #[test]
    fn containerd_timestamps_with_trimmed_fraction() {
        // date -u -d 2016-10-20T18:39:20Z +%s = 1476988760
        assert_eq!(ts("2016-10-20T18:39:20Z"), Some(1_476_988_760_000_000_000));
        assert_eq!(
            ts("2016-10-20T18:39:20.57606443Z"),
            Some(1_476_988_760_576_064_430)
        );
        assert_eq!(
            ts("2016-10-20T18:39:20.5Z"),
            Some(1_476_988_760_500_000_000)
        );
        assert_eq!(
            ts("2019-04-30T02:12:41.8443515Z"),
            Some(1_556_590_361_844_351_500)
        );
        assert_eq!(ts("1970-01-01T00:00:00.000000001Z"), Some(1));
        assert_eq!(ts("1969-12-31T23:59:59.999999999Z"), Some(-1));
    }

    #[test]
    fn crio_timestamps_with_offsets() {
        assert_eq!(
            ts("2024-01-20T10:00:00.123456789+00:00"),
            Some(1_705_744_800_123_456_789)
        );
        // 10:00 at -05:00 is 15:00 UTC.
        assert_eq!(
            ts("2024-01-20T10:00:00.000000000-05:00"),
            Some(1_705_744_800_000_000_000 + 5 * 3_600_000_000_000)
        );
        // 01:30 at +05:30 is the previous day 20:00 UTC.
        assert_eq!(
            ts("2024-01-21T01:30:00.000000000+05:30"),
            Some(1_705_780_800_000_000_000)
        );
        assert_eq!(ts("2024-01-20T10:00:00+00:00"), ts("2024-01-20T10:00:00Z"));
    }

    #[test]
    fn leap_years_and_month_ends() {
        // 2024-02-29 is 19782 days after the epoch; 2000 is a leap year.
        assert_eq!(
            ts("2024-02-29T00:00:00Z"),
            Some(19_782 * 86_400 * 1_000_000_000)
        );
        assert_eq!(
            ts("2000-02-29T00:00:00Z"),
            Some(951_782_400 * 1_000_000_000)
        );
        assert_eq!(
            ts("2000-03-01T00:00:00Z"),
            Some(951_868_800 * 1_000_000_000)
        );
        assert_eq!(ts("2023-02-29T00:00:00Z"), None);
        assert_eq!(ts("1900-02-29T00:00:00Z"), None);
        assert_eq!(ts("2023-04-31T00:00:00Z"), None);
        assert_eq!(
            ts("2023-12-31T23:59:59Z"),
            Some(1_704_067_199 * 1_000_000_000)
        );
    }

    #[test]
    fn rejects_malformed_and_out_of_range() {
        for bad in [
            "",
            "2024-01-20",
            "2024-01-20T10:00:00",
            "2024-01-20 10:00:00Z",
            "2024-01-20T10:00:00.Z",
            "2024-01-20T24:00:00Z",
            "2024-01-20T10:60:00Z",
            "2024-01-20T10:00:60Z",
            "2024-13-20T10:00:00Z",
            "2024-00-20T10:00:00Z",
            "2024-01-00T10:00:00Z",
            "2024-01-20T10:00:00+0000",
            "2024-01-20T10:00:00+24:00",
            "2024-01-20T10:00:00Zjunk",
            "2024-01-20T10:00:00z",
            "+024-01-20T10:00:00Z",
            "2300-01-01T00:00:00Z",
            "1600-01-01T00:00:00Z",
        ] {
            assert_eq!(ts(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn more_than_nine_fraction_digits_are_truncated() {
        assert_eq!(ts("1970-01-01T00:00:01.1234567899Z"), Some(1_123_456_789));
    }

    #[test]
    fn decodes_containerd_and_crio_lines() {
        let l = decode(b"2019-04-30T02:12:41.8443515Z stdout F message").unwrap();
        assert_eq!(l.timestamp, Timestamp(1_556_590_361_844_351_500));
        assert_eq!(l.stream, Stream::Stdout);
        assert!(!l.partial);
        assert_eq!(l.content, b"message");

        let l = decode(b"2024-01-20T10:00:00.123456789+00:00 stderr P part one ").unwrap();
        assert_eq!(l.stream, Stream::Stderr);
        assert!(l.partial);
        assert_eq!(l.content, b"part one ");
    }

    #[test]
    fn tags_split_on_colon_and_empty_content() {
        let l = decode(b"2024-01-20T10:00:00Z stdout P:x:y abc").unwrap();
        assert!(l.partial);
        let l = decode(b"2024-01-20T10:00:00Z stdout F:P abc").unwrap();
        assert!(!l.partial);
        let l = decode(b"2024-01-20T10:00:00Z stdout F ").unwrap();
        assert_eq!(l.content, b"");
        // Content keeps everything after the third space, \r and spaces too.
        let l = decode(b"2024-01-20T10:00:00Z stdout F  a\tb\r").unwrap();
        assert_eq!(l.content, b" a\tb\r");
    }

    #[test]
    fn malformed_lines_are_errors() {
        assert_eq!(decode(b"plain text"), Err(CriError::MissingField));
        assert_eq!(
            decode(b"2024-01-20T10:00:00Z stdout F"),
            Err(CriError::MissingField)
        );
        assert_eq!(
            decode(b"2024-01-20T10:00:00Z stdin F x"),
            Err(CriError::BadStream)
        );
        assert_eq!(
            decode(b"2024-01-20T10:00:00Z  stdout F x"),
            Err(CriError::BadStream)
        );
        assert_eq!(
            decode(b"2024-01-20T10:00:00Z stdout  x"),
            Err(CriError::BadField)
        );
        assert_eq!(
            decode(b"2024-01-20T10:00:00Z stdout F\tx y"),
            Err(CriError::BadField)
        );
        assert_eq!(decode(b"yesterday stdout F x"), Err(CriError::BadTimestamp));
        // split alone accepts what Promtail's regex matches.
        let f = split(b"yesterday stdout F x").unwrap();
        assert_eq!((f.time, f.content_start), (&b"yesterday"[..], 19));
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes);
            let _ = parse_rfc3339(&bytes);
        }

        #[test]
        fn never_panics_near_valid(
            prefix in "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{0,12})?(Z|[+-][0-9]{2}:[0-9]{2})?",
            rest in "( (stdout|stderr|x) ([PF]|[PF]:[a-z]*)( .*)?)?",
        ) {
            let line = format!("{prefix}{rest}");
            let _ = decode(line.as_bytes());
        }

        #[test]
        fn split_timed_accepts_what_split_accepts_and_parses_its_time(
            time in prop_oneof![
                "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{0,12})?(Z|[+-][0-9]{2}:[0-9]{2})?",
                "[0-9T:.Z\t\r\n\x0c-]{0,12}",
                "[ -~\t]{0,8}",
            ],
            rest in "( (stdout|stderr|x)( ([PF]|[PF]:[a-z\t]*)( .*)?)?)?",
        ) {
            let line = format!("{time}{rest}");
            let line = line.as_bytes();
            match (split(line), split_timed(line)) {
                (Ok(a), Ok((b, ts))) => {
                    prop_assert_eq!(
                        (a.time, a.stream, a.partial, a.content_start, a.content),
                        (b.time, b.stream, b.partial, b.content_start, b.content)
                    );
                    prop_assert_eq!(ts, parse_rfc3339(a.time));
                }
                (Err(_), Err(_)) => {}
                (a, b) => prop_assert!(false, "{:?}: split {:?}, split_timed {:?}", line, a.is_ok(), b.is_ok()),
            }
        }

        #[test]
        fn reading_the_usual_fields_in_place_gives_what_searching_gives(
            time in "[0-9T:.Z \t-]{0,6}",
            stream in prop_oneof![4 => "(stdout|stderr)", 1 => "(stdou|stdoutt|x|)"],
            tags in prop_oneof![4 => "[PF]", 1 => "([PF]:[a-z]*|[PFx ]{0,2}|\t)"],
            content in "[ a-z:PF\t]{0,6}",
            seps in proptest::collection::vec(
                prop_oneof![6 => Just(" "), 1 => Just(""), 1 => Just("  "), 1 => Just("\t")],
                3,
            ),
        ) {
            let line = format!("{time}{}{stream}{}{tags}{}{content}", seps[0], seps[1], seps[2]);
            let line = line.as_bytes();
            let searched = memchr::memchr(b' ', line)
                .ok_or(CriError::MissingField)
                .and_then(|sp1| split_searched(line, sp1));
            prop_assert_eq!(split_fields(line), searched, "{:?}", String::from_utf8_lossy(line));
        }

        #[test]
        fn a_fraction_is_read_as_digit_by_digit(
            frac in "[0-9]{0,14}",
            after in "(Z|\\+01:00|[/:;a]|)",
        ) {
            let s = format!(".{frac}{after}");
            let b = s.as_bytes();
            // Digit by digit: the first nine count, the rest are skipped.
            let n = frac.len();
            let want = (n > 0).then(|| {
                let nine: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
                (nine.parse::<i64>().unwrap_or(-1), 1 + n)
            });
            prop_assert_eq!(fraction(b, 1), want, "{}", s);
        }

        #[test]
        fn eight_bytes_are_a_number_only_when_all_are_digits(b in any::<[u8; 8]>(), digits in "[0-9]{8}", near in "[0-9:/]{8}") {
            let plain = |b: [u8; 8]| -> Option<i64> {
                b.iter().try_fold(0i64, |v, c| c.is_ascii_digit().then(|| v * 10 + i64::from(c - b'0')))
            };
            prop_assert_eq!(parse_eight(b), plain(b), "{:?}", b);
            let d: [u8; 8] = digits.as_bytes().try_into().unwrap_or([0; 8]);
            prop_assert_eq!(parse_eight(d), plain(d), "{}", digits);
            let n: [u8; 8] = near.as_bytes().try_into().unwrap_or([0; 8]);
            prop_assert_eq!(parse_eight(n), plain(n), "{}", near);
        }

        #[test]
        fn remembering_the_last_date_and_second_changes_no_answer(
            times in proptest::collection::vec(
                prop_oneof![
                    // Few heads, valid and not, so that seconds repeat.
                    "(2023|2024)-02-(28|29)[T ]2[34]:[56]9:[56][89](\\.[0-9]{0,3})?(Z|\\+01:00|x)",
                    "(19[0-9]{2}|20[0-9]{2}|2[1-9][0-9]{2}|1[6-8][0-9]{2})-(0[1-9]|1[0-2]|00|13)-(0[0-9]|[12][0-9]|3[0-2])T[0-2][0-9]:[0-6][0-9]:[0-6][0-9](\\.[0-9]{0,12})?(Z|[+-][0-9]{2}:[0-9]{2}|)",
                    "2024-02-2[89]T10:00:00Z[x]?",
                    "(2023|2024|1970)-02-(28|29|30)[T ]10:00:0[0-9](\\.5)?Z",
                    "[0-9T:.Z -]{0,24}",
                ],
                1..20,
            ),
        ) {
            for t in &times {
                // With whatever date and second the last one left, then with none.
                let warm = parse_rfc3339(t.as_bytes());
                LAST_DATE.set((*b"1970-01-01", 0));
                LAST_SECOND.set((*b"1970-01-01T00:00:00", 0));
                prop_assert_eq!(warm, parse_rfc3339(t.as_bytes()), "{}", t);
            }
        }

        #[test]
        fn roundtrips_every_valid_utc_second(secs in -9_000_000_000i64..9_000_000_000, nanos in 0i64..1_000_000_000) {
            // Format with the crate's RFC3339Nano writer, parse back.
            let mut s = String::new();
            Timestamp(secs * 1_000_000_000 + nanos).write_rfc3339_nano(&mut s);
            prop_assert_eq!(ts(&s), Some(secs * 1_000_000_000 + nanos), "{}", s);
        }
    }
}
