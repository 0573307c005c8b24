//! The systemd journal source: Promtail's `journal` scrape config, read by
//! running `journalctl` (as Vector does) rather than linking libsystemd.
//!
//! Owns: turning one line of `journalctl --output=json` into a [`Record`]
//! with Promtail's view of it ([`record`]: fields as strings, `__journal_*`
//! labels, the line for `json: false`/`true`, timestamp, cursor), and the
//! `journalctl` argument list for a scrape config and a start point
//! ([`command`]).
//!
//! Must never: run `journalctl` through a shell (the `matches` are
//! arguments, never interpolated), panic on anything journalctl (or a
//! corrupted pipe) prints, or advance a saved cursor past an entry that was
//! not delivered.
//!
//! # Design of the whole source (the parts not written yet are marked *later*)
//!
//! - *Later:* one `journalctl` child per journal scrape config (job), spawned
//!   with [`command::args`] and `Stdio::piped()` stdout, stderr captured for
//!   the error message. Its stdout is read line by line on a blocking thread
//!   (the tailer's thread model: blocking reads, budget backpressure via
//!   `Budget::charge_blocking`), each line parsed with [`Record::parse`]; a
//!   parse error is counted (`promtail_journal_target_parsing_errors_total`)
//!   and skipped, every record counted in `promtail_journal_target_lines_total`.
//! - *Later:* labels are `labels:` from the config plus
//!   [`Record::journal_labels`], then the job's `relabel_configs`; `__`
//!   labels are dropped after relabelling, and an entry left with no label is
//!   dropped — as Promtail does. Then the job's `pipeline_stages`.
//! - *Later:* if journalctl exits (or is killed), it is restarted with
//!   backoff from the last *issued* cursor of this process (see below); a
//!   missing binary or an unreadable directory is one clear error naming the
//!   path and journalctl's stderr, and the target shows as failed.
//!
//! ## Cursor acknowledgement (plan; the ack/positions code is unchanged)
//!
//! The acknowledgement path already has what a journal needs:
//! [`crate::ack::Position::Cursor`] exists, and [`crate::positions::Positions`]
//! has `saved_cursor(name)` (loaded `journal-<job>` keys, Promtail's own key
//! format, so a Promtail positions file carries over) and
//! `track_cursor(name, tracker)`, whose committed cursor `render` writes.
//! So the wiring is:
//!
//! 1. At start: `saved = positions.saved_cursor("journal-<job>")`;
//!    [`command::Start::resolve`] turns it and `max_age` into
//!    `--after-cursor=<saved>` or `--since=@<now - max_age>` (Promtail also
//!    falls back to `max_age` when the saved entry is older than it; the
//!    cursor's `t=` field gives that time without reading the journal).
//! 2. `tracker = Tracker::new(Position::Cursor(saved or ""))`,
//!    `positions.track_cursor("journal-<job>", tracker.clone())`.
//! 3. Per record: `tracker.issue(Position::Cursor(record.cursor))` gives the
//!    entry's [`crate::ack::Ack`]; a record that ships nothing (no `MESSAGE`,
//!    no label left after relabelling, a parse error after a valid cursor)
//!    moves the position with `tracker.skip_to(..)` so it commits in order.
//!    The committed cursor moves only over a gap-free prefix of delivered
//!    entries, exactly as file offsets do.
//! 4. Restart of the child inside one process resumes from the last *issued*
//!    cursor (`tracker.issued()`), not the committed one: the entries in
//!    between are still in flight and will be acknowledged. A restart of the
//!    agent resumes from the committed cursor: no loss, no duplicate beyond
//!    what was in flight.
//!
//! One thing the existing code lacks and the wiring must check: an empty
//! `Position::Cursor("")` as "nothing committed yet" must not be written as
//! `journal-<job>: ""` (render only writes non-empty cursors, or the tracker
//! starts from the saved cursor's value).

pub mod command;
#[cfg(test)]
mod real_tests;
pub mod record;
#[cfg(test)]
mod testkit;

pub use command::{JournalSpec, Journals, Start};
pub use record::{ParseError, Record};
