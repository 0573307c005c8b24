//! Dry-run delivery: print entries instead of pushing them, as Promtail's
//! `-dry-run` does, one per line: `<timestamp>\t<labels>\t<line>`.
//!
//! Owns: the dry-run task and [`format_entry`]. The timestamp is written in
//! RFC 3339 with nanoseconds, trailing zeros trimmed (Go's RFC3339Nano), in
//! UTC (`Z`): the crate has no time-zone database, and pods and containers
//! normally run in UTC anyway. Labels are what would be sent (external
//! labels merged, `__` labels removed). Entries go through the same routing
//! and `max_line_size` rules as a push, and are acked once written.
//!
//! Must never: ack an entry whose line could not be written (stdout closed).

use super::client::{Prep, BURST};
use crate::entry::{Entry, Timestamp};
use std::io::Write;
use tokio::sync::mpsc;

/// Appends `ts` as Go's RFC3339Nano in UTC, e.g. `2024-01-20T10:00:00.5Z`.
pub fn rfc3339_nano(ts: Timestamp, out: &mut String) {
    ts.write_rfc3339_nano(out);
}

/// Appends one dry-run output line (with its newline).
pub fn format_entry(ts: Timestamp, labels: &str, line: &str, out: &mut String) {
    rfc3339_nano(ts, out);
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
        rfc3339_nano(Timestamp(t), &mut s);
        s
    }

    #[test]
    fn formats_like_go_rfc3339nano_in_utc() {
        assert_eq!(ts(0), "1970-01-01T00:00:00Z");
        assert_eq!(ts(1_570_818_238_000_000_000), "2019-10-11T18:23:58Z");
        assert_eq!(
            ts(1_705_744_800_123_456_789),
            "2024-01-20T10:00:00.123456789Z"
        );
        assert_eq!(ts(1_705_744_800_500_000_000), "2024-01-20T10:00:00.5Z");
        assert_eq!(ts(951_782_400_000_000_000), "2000-02-29T00:00:00Z");
        assert_eq!(ts(-1), "1969-12-31T23:59:59.999999999Z");
        let mut s = String::new();
        format_entry(Timestamp(0), "{a=\"b\"}", "hello", &mut s);
        assert_eq!(s, "1970-01-01T00:00:00Z\t{a=\"b\"}\thello\n");
    }
}
