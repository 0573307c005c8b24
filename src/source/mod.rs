//! Sources: where entries come from: tailed files, and the systemd journal
//! ([`journal`]: journalctl run per `journal` scrape config).
//!
//! File tailing is split by concern: [`discover`] finds files (globs, and
//! [`watch`]: inotify), [`dirents`] lists a directory, [`open`] opens what
//! is read (without updating access times), [`fingerprint`] says which file
//! is which, [`reader`] turns one file's bytes into lines with offsets,
//! [`gz`] catches up from compressed rotated files, [`relocate`] finds files
//! that moved while unobserved, [`file`] is one tailed file, and [`tailer`]
//! schedules them all.

pub mod chain;
pub mod cri;
pub mod dirents;
pub mod discover;
pub mod docker;
pub mod expand;
pub mod fdlimit;
pub mod file;
pub mod fingerprint;
pub mod gz;
pub mod journal;
mod listing;
#[cfg(test)]
mod model_tests;
pub mod open;
pub mod reader;
pub mod relocate;
pub mod tailer;
#[cfg(test)]
mod tailer_targets_tests;
#[cfg(test)]
mod tailer_tests;
#[cfg(test)]
mod testkit;
pub mod watch;

pub use tailer::{spawn_file_tailer, FileTarget, ScrapeJob, TailOptions, TargetFeed, TargetUpdate};
