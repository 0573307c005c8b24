//! Dry-run delivery: print entries instead of pushing them, as Promtail's
//! `-dry-run` does, one per line: `<timestamp>\t<labels>\t<line>`.
//!
//! Owns: the dry-run task and [`format_entry`]. The timestamp is written as
//! Promtail writes it, Go's layout `2006-01-02T15:04:05.999999999-0700`
//! (trailing zeros of the fraction trimmed, a numeric offset), in UTC:
//! `2024-01-20T10:00:00.5+0000`. Promtail prints each time in the zone it
//! carries — UTC for the times the `cri` and `docker` stages read from a
//! container's log, the host's zone for a line's read time — and an entry
//! here carries none, so UTC: what Promtail prints for pod logs. Labels are
//! what would be sent (external labels merged, `__` labels removed).
//! Entries go through the same routing and `max_line_size` rules as a
//! push, and are acked once written.
//!
//! Must never: ack an entry whose line could not be written (stdout closed).

use super::client::{Prep, BURST};
use crate::entry::{Entry, Timestamp};
use std::io::Write;
use tokio::sync::mpsc;

/// Appends `ts` in UTC as Promtail's dry run prints a time (Go's layout
/// `2006-01-02T15:04:05.999999999-0700`), e.g. `2024-01-20T10:00:00.5+0000`.
pub fn promtail_time(ts: Timestamp, out: &mut String) {
    ts.write_rfc3339_nano(out);
    // RFC3339Nano's `Z` is the one difference from that layout in UTC.
    if out.ends_with('Z') {
        out.pop();
        out.push_str("+0000");
    }
}

/// Appends one dry-run output line (with its newline).
pub fn format_entry(ts: Timestamp, labels: &str, line: &str, out: &mut String) {
    promtail_time(ts, out);
    out.push('\t');
    out.push_str(labels);
    out.push('\t');
    out.push_str(line);
    out.push('\n');
}

pub(super) async fn run(mut rx: mpsc::Receiver<Vec<Entry>>, mut prep: Prep) {
    let mut text = String::new();
    // A stream's labels, rendered into one reused buffer per line.
    let mut labels = String::new();
    let mut written: Vec<Entry> = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut item = Some(first);
        let mut n = 0;
        while let Some(chunk) = item.take() {
            for e in chunk {
                if let Some((ri, e)) = prep.prepare(e) {
                    labels.clear();
                    prep.route(ri).key.render_into(&mut labels);
                    format_entry(e.timestamp, &labels, &e.line, &mut text);
                    written.push(e);
                }
            }
            n += 1;
            if n < BURST {
                item = rx.try_recv().ok();
            }
        }
        let ok = {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes()).and_then(|_| out.flush())
        };
        text.clear();
        match ok {
            Ok(()) => crate::ack::ack_many(written.drain(..).map(|e| e.ack)),
            Err(err) => {
                tracing::error!(error = %err, entries = written.len(), "dry-run: cannot write to stdout");
                written.clear();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(t: i64) -> String {
        let mut s = String::new();
        promtail_time(Timestamp(t), &mut s);
        s
    }

    /// What Go's `t.UTC().Format("2006-01-02T15:04:05.999999999-0700")`
    /// gives for these instants (Promtail's dry-run layout).
    #[test]
    fn formats_like_promtails_dry_run_in_utc() {
        assert_eq!(ts(0), "1970-01-01T00:00:00+0000");
        assert_eq!(ts(1_570_818_238_000_000_000), "2019-10-11T18:23:58+0000");
        assert_eq!(
            ts(1_705_744_800_123_456_789),
            "2024-01-20T10:00:00.123456789+0000"
        );
        assert_eq!(ts(1_705_744_800_500_000_000), "2024-01-20T10:00:00.5+0000");
        assert_eq!(ts(951_782_400_000_000_000), "2000-02-29T00:00:00+0000");
        assert_eq!(ts(-1), "1969-12-31T23:59:59.999999999+0000");
        let mut s = String::new();
        format_entry(Timestamp(0), "{a=\"b\"}", "hello", &mut s);
        assert_eq!(s, "1970-01-01T00:00:00+0000\t{a=\"b\"}\thello\n");
    }
}
