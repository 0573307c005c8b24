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
//! # Design of the whole source ([`runner`] wires it)
//!
//! - one `journalctl` child per journal scrape config (job), spawned
//!   with [`command::args`] and `Stdio::piped()` stdout, stderr captured for
//!   the error message. Its stdout is read line by line on a blocking thread
//!   and handed over a small bounded channel; the runner stops taking lines
//!   while the fan-out refuses entries (so the pipe, then journalctl, wait).
//!   Each line is parsed with [`Record::parse`]; a parse error is counted
//!   (`promtail_journal_target_parsing_errors_total{error}`) and skipped,
//!   every shipped record counted in `promtail_journal_target_lines_total`.
//! - labels are `labels:` from the config plus
//!   [`Record::journal_labels`], then the job's `relabel_configs`; `__`
//!   labels are dropped after relabelling, and an entry left with no label is
//!   dropped — as Promtail does. Then the job's `pipeline_stages`.
//! - if journalctl exits (or is killed), it is restarted with
//!   backoff from the last *issued* cursor of this process (see below); a
//!   missing binary, an unreadable directory or journalctl exiting is one
//!   clear error per kind (naming the path, or journalctl's stderr) and
//!   `tailtrace_journal_errors_total{reason}`.
//!
//! ## Cursor acknowledgement (as [`runner`] does it)
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
//! An empty `Position::Cursor("")` ("nothing committed yet") is never
//! written as `journal-<job>: ""`: `Positions::render` skips empty cursors.

pub mod command;
#[cfg(test)]
mod real_tests;
pub mod record;
pub mod runner;
#[cfg(test)]
mod testkit;

pub use command::{JournalSpec, Journals, Start};
pub use record::{ParseError, Record};
pub use runner::{spawn_journal, JournalJob};
