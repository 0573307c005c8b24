//! Go reference-time layouts (`2006-01-02T15:04:05Z07:00`): the element
//! tokenizer (Go's `nextStdChunk`) and [`Layout`], a layout split once into
//! literal text and elements, which parsing and formatting both walk.
//!
//! Any string is a layout: Go never rejects one, and text that is not an
//! element stands for itself. Must never panic on any layout.

/// One layout element (Go's `std*` constants).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Std {
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
    /// `PM`.
    PmUpper,
    /// `pm`.
    PmLower,
    /// `MST`.
    Tz,
    /// A numeric offset, `-0700` and its forms: `iso` for the `Z0700`
    /// forms (`Z` means UTC), `short` for `-07`, `colon` for `-07:00`,
    /// `seconds` for `-070000` and `-07:00:00`.
    NumTz {
        iso: bool,
        short: bool,
        colon: bool,
        seconds: bool,
    },
    /// A fractional second: `.000` (exactly `digits` digits) or, `nine`,
    /// `.999` (optional, any number of digits; trailing zeros dropped when
    /// formatting), after `sep` (`.` or `,`).
    Frac {
        digits: usize,
        nine: bool,
        sep: u8,
    },
}

/// Literal text, then an element.
#[derive(Clone, Debug)]
pub(super) struct Chunk {
    pub prefix: Box<str>,
    pub std: Std,
    /// The next element is a fractional second (Go's special case for a
    /// fraction after the seconds looks at it).
    pub next_is_frac: bool,
}

/// A Go layout, split into elements once.
#[derive(Clone, Debug)]
pub struct Layout {
    pub(super) chunks: Vec<Chunk>,
    /// Literal text after the last element.
    pub(super) tail: Box<str>,
}

fn is_lower_at(s: &[u8], i: usize) -> bool {
    matches!(s.get(i), Some(c) if c.is_ascii_lowercase())
}

pub(super) fn is_digit(s: &[u8], i: usize) -> bool {
    matches!(s.get(i), Some(c) if c.is_ascii_digit())
}

const NUM_TZ: [(&[u8], bool, bool, bool); 5] = [
    // (text after the `-` or `Z`, short, colon, seconds), in Go's order.
    (b"070000", false, false, true),
    (b"07:00:00", false, true, true),
    (b"0700", false, false, false),
    (b"07:00", false, true, false),
    (b"07", true, false, false),
];

/// Go's `nextStdChunk`: (prefix length, element and its length) of the first
/// element in `l`; `None` when there is none.
fn next_std_chunk(l: &[u8]) -> (usize, Option<(Std, usize)>) {
    let has = |i: usize, s: &[u8]| l.get(i..).is_some_and(|r| r.starts_with(s));
    for (i, &c) in l.iter().enumerate() {
        let found = match c {
            b'J' if has(i, b"Jan") => {
                if has(i, b"January") {
                    Some((Std::LongMonth, 7))
                } else {
                    (!is_lower_at(l, i + 3)).then_some((Std::Month, 3))
                }
            }
            b'M' if has(i, b"Monday") => Some((Std::LongWeekDay, 6)),
            b'M' if has(i, b"Mon") => (!is_lower_at(l, i + 3)).then_some((Std::WeekDay, 3)),
            b'M' if has(i, b"MST") => Some((Std::Tz, 3)),
            b'0' => match l.get(i + 1) {
                Some(&d @ b'1'..=b'6') => Some((
                    [
                        Std::ZeroMonth,
                        Std::ZeroDay,
                        Std::ZeroHour12,
                        Std::ZeroMinute,
                        Std::ZeroSecond,
                        Std::Year,
                    ][usize::from(d - b'1')],
                    2,
                )),
                _ => has(i, b"002").then_some((Std::ZeroYearDay, 3)),
            },
            b'1' if has(i, b"15") => Some((Std::Hour, 2)),
            b'1' => Some((Std::NumMonth, 1)),
            b'2' if has(i, b"2006") => Some((Std::LongYear, 4)),
            b'2' => Some((Std::Day, 1)),
            // `_2006` is a literal `_` and then the year.
            b'_' if has(i, b"_2006") => return (i + 1, Some((Std::LongYear, 4))),
            b'_' if has(i, b"_2") => Some((Std::UnderDay, 2)),
            b'_' if has(i, b"__2") => Some((Std::UnderYearDay, 3)),
            b'3' => Some((Std::Hour12, 1)),
            b'4' => Some((Std::Minute, 1)),
            b'5' => Some((Std::Second, 1)),
            b'P' if has(i, b"PM") => Some((Std::PmUpper, 2)),
            b'p' if has(i, b"pm") => Some((Std::PmLower, 2)),
            b'-' | b'Z' => NUM_TZ.iter().find(|t| has(i + 1, t.0)).map(|t| {
                let std = Std::NumTz {
                    iso: c == b'Z',
                    short: t.1,
                    colon: t.2,
                    seconds: t.3,
                };
                (std, 1 + t.0.len())
            }),
            b'.' | b',' => match l.get(i + 1) {
                Some(&ch @ (b'0' | b'9')) => {
                    let j = i + 1 + l[i + 1..].iter().take_while(|&&x| x == ch).count();
                    // Only a fraction if the run of digits ends here.
                    (!is_digit(l, j)).then_some((
                        Std::Frac {
                            digits: j - (i + 1),
                            nine: ch == b'9',
                            sep: c,
                        },
                        j - i,
                    ))
                }
                _ => None,
            },
            _ => None,
        };
        if let Some(found) = found {
            return (i, Some(found));
        }
    }
    (l.len(), None)
}

impl Layout {
    /// Splits a Go layout into its elements.
    pub fn new(layout: &str) -> Layout {
        let mut rest = layout;
        let mut chunks: Vec<Chunk> = Vec::new();
        loop {
            let (plen, found) = next_std_chunk(rest.as_bytes());
            // Elements start and end at ASCII bytes: the splits are on
            // character boundaries.
            let prefix = rest.get(..plen).unwrap_or(rest);
            let Some((std, slen)) = found else {
                for i in 1..chunks.len() {
                    if matches!(chunks[i].std, Std::Frac { .. }) {
                        chunks[i - 1].next_is_frac = true;
                    }
                }
                return Layout {
                    chunks,
                    tail: prefix.into(),
                };
            };
            chunks.push(Chunk {
                prefix: prefix.into(),
                std,
                next_is_frac: false,
            });
            rest = rest.get(plen + slen..).unwrap_or("");
        }
    }

    /// The layout has a zone-abbreviation element (`MST`), which needs the
    /// location's abbreviations to parse.
    pub fn has_zone_name(&self) -> bool {
        self.chunks.iter().any(|c| c.std == Std::Tz)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stds(l: &str) -> Vec<(String, Std)> {
        let l = Layout::new(l);
        l.chunks
            .iter()
            .map(|c| (c.prefix.to_string(), c.std))
            .collect()
    }

    #[test]
    fn splits_like_go_next_std_chunk() {
        use Std::*;
        let s = |p: &str, std| (p.to_string(), std);
        assert_eq!(
            stds("Mon Jan _2 15:04:05 2006"),
            [
                s("", WeekDay),
                s(" ", Month),
                s(" ", UnderDay),
                s(" ", Hour),
                s(":", ZeroMinute),
                s(":", ZeroSecond),
                s(" ", LongYear)
            ]
        );
        // `_2006` is `_` then the year; "Month" and "Jant" are text.
        assert_eq!(stds("x_2006"), [s("x_", LongYear)]);
        assert!(stds("Month Jant").is_empty());
        assert_eq!(
            stds("Z07:00 -07 ,000 .99x .001"),
            [
                s(
                    "",
                    NumTz {
                        iso: true,
                        short: false,
                        colon: true,
                        seconds: false
                    }
                ),
                s(
                    " ",
                    NumTz {
                        iso: false,
                        short: true,
                        colon: false,
                        seconds: false
                    }
                ),
                s(
                    " ",
                    Frac {
                        digits: 3,
                        nine: false,
                        sep: b','
                    }
                ),
                s(
                    " ",
                    Frac {
                        digits: 2,
                        nine: true,
                        sep: b'.'
                    }
                ),
                // `.001`: not a fraction, but `01` is the month.
                s("x .0", ZeroMonth),
            ]
        );
        let l = Layout::new("05.000 MST");
        assert!(l.chunks[0].next_is_frac && l.has_zone_name());
        assert_eq!(&*l.tail, "");
        assert_eq!(&*Layout::new("é 2006 é").tail, " é");
    }
}
