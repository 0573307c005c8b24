//! Go's `time` package as the pipeline needs it, in one place: reference-time
//! layouts (`2006-01-02T15:04:05Z07:00`) compiled once and used both to
//! parse (the `timestamp` stage, per line; the template stage's `toDate`)
//! and to format (the template stage's `date`, `Format`, `String`), Go's
//! locations and zone rules, calendar arithmetic, and durations as text.
//!
//! Owns, one file each: `layout` (Go's `nextStdChunk` and the compiled
//! [`Layout`]), `parse` (`time.Parse` / `ParseInLocation` on a compiled
//! layout), `time` (the parsed [`Time`] and its [`Zone`]), `location`
//! ([`GoLocation`]: `LoadLocation`, `Local`, `lookupName`, `Date`),
//! `format` ([`ZonedTime`]: `Time.Format`, `Time.String`), `civil` (the
//! proleptic Gregorian calendar), `duration` (`Duration.String`,
//! `ParseDuration`). Follows Go 1.2x's `time/format.go`; where this differs
//! from Go it says so beside the code.
//!
//! Must never: panic on any layout or value (all slicing is on bytes and
//! bounds-checked, or at ASCII positions the tokenizer found), or allocate
//! while parsing with a compiled layout (the timestamp stage's hot path).

mod civil;
mod duration;
mod format;
mod layout;
mod location;
mod parse;
#[cfg(test)]
mod tests;
mod time;

pub use civil::civil_from_days;
pub use duration::{format_duration, parse_duration};
pub use format::ZonedTime;
pub use layout::Layout;
pub use location::GoLocation;
pub use parse::ParseError;
pub use time::{Time, Zone};

/// Go's `time.ParseInLocation(layout, value, loc)` for a layout used once
/// (compiled per call); the result as shown in its zone, or Go's error text.
pub fn parse_in_location(layout: &str, value: &str, loc: &GoLocation) -> Result<ZonedTime, String> {
    match Layout::new(layout).parse(value, loc, true) {
        Ok(t) => Ok(ZonedTime::from_time(t, loc)),
        Err(e) => Err(e.message(layout, value)),
    }
}
