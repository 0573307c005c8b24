//! The journal runner: one thread per `journal` scrape config, running
//! `journalctl` and feeding its entries through the job's relabelling and
//! pipeline into the fan-out, with the cursor acknowledged after delivery.
//!
//! Owns: the journalctl child (spawned with [`super::command::command`],
//! never through a shell; stdout piped, stderr kept — its last few KiB — for
//! the error message), a reader thread that splits stdout into lines of at
//! most [`MAX_LINE`] bytes and hands them over a small bounded channel, and
//! the runner loop: parse ([`Record::parse`]), label (config `labels` +
//! `__journal_*`, then `relabel_configs`, then `__` labels dropped), issue an
//! ack for the record's cursor, run the pipeline, hand to the fan-out.
//!
//! Backpressure: entries the fan-out does not take wait in a backlog, and
//! while the backlog is not empty the runner reads no more lines: the
//! channel fills, the reader blocks on it, the pipe fills, journalctl blocks.
//! Nothing grows without bound.
//!
//! Restarts: when journalctl exits (or is killed) the runner restarts it
//! with backoff (1 s doubling to 30 s; back to 1 s after a run that read
//! entries) from the last *issued* cursor — every entry up to it was read
//! and is in flight or delivered, so resuming from the committed cursor
//! would send the in-flight ones twice. The agent's own restart resumes from
//! the committed cursor (saved in positions as `journal-<job>`), so the
//! entries in flight at a stop are read again: no loss.
//!
//! Errors: a missing journalctl (`no_journalctl`), an unreadable `path`
//! (`unreadable_path`), journalctl exiting (`exited`, with its stderr) or
//! failing to spawn otherwise (`spawn`) are logged once per kind until the
//! next successful run, and counted in `tailtrace_journal_errors_total{reason}`.
//! Records that do not parse count in
//! `promtail_journal_target_parsing_errors_total{error}` as do, as in
//! Promtail, entries without `MESSAGE` (`no_message`) and entries left with
//! no label (`empty_labels`); shipped entries count in
//! `promtail_journal_target_lines_total`.
//!
//! Must never: advance the cursor past an entry not delivered, hold more
//! than a bounded number of lines, or leave the child running at stop.

use super::command::{command, JournalSpec, Journals, Start};
use super::record::Record;
use crate::ack::{Position, Tracker};
use crate::config::journal::JournalConfig;
use crate::entry::Entry;
use crate::kube::relabel::Relabeler;
use crate::labels::LabelSet;
use crate::metrics::{labels, Metrics};
use crate::pipeline::Pipeline;
use crate::positions::Positions;
use crate::sink::fanout::Fanout;
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::io::{self, BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// The longest journalctl JSON line read; longer ones are skipped and
/// counted (`line_too_long`). journald's own limit for a field is far
/// below (LineMax 48 KiB for messages), but `--all` prints any field.
pub const MAX_LINE: usize = 8 << 20;
/// Lines read ahead of the runner (the reader blocks beyond).
const CHANNEL: usize = 64;
/// How often the pipeline's timers run and the stop flag is looked at.
const TICK: Duration = Duration::from_millis(100);
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// journalctl's stderr kept for the error message.
const STDERR_KEEP: usize = 4096;

/// One journal scrape config, ready to run.
pub struct JournalJob {
    pub name: String,
    pub config: JournalConfig,
    pub relabeler: Relabeler,
    pub pipeline: Pipeline,
    /// The binary to run (`journalctl` from `PATH`).
    pub journalctl: PathBuf,
}

impl JournalJob {
    /// The positions key of this job's cursor (Promtail's).
    pub fn positions_key(&self) -> String {
        format!("journal-{}", self.name)
    }
}

/// Starts the runner thread for `job`.
pub fn spawn_journal(
    job: JournalJob,
    out: Fanout,
    positions: Arc<Positions>,
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
) -> io::Result<JoinHandle<()>> {
    let spec = JournalSpec::from_config(&job.config)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let key = job.positions_key();
    let saved = positions.saved_cursor(&key).filter(|c| !c.is_empty());
    let tracker = Tracker::new(Position::Cursor(saved.clone().unwrap_or_default().into()));
    positions.track_cursor(&key, tracker.clone());
    let r = Runner {
        job,
        spec,
        out,
        tracker,
        metrics,
        stop,
        backlog: VecDeque::new(),
        outv: Vec::new(),
        warned: HashSet::new(),
    };
    std::thread::Builder::new()
        .name(format!("journal-{}", r.job.name))
        .spawn(move || r.run(saved))
}

enum Msg {
    Line(Vec<u8>),
    TooLong(usize),
}

struct Running {
    child: Child,
    lines: mpsc::Receiver<Msg>,
    stderr: Arc<Mutex<Vec<u8>>>,
    reader: Option<JoinHandle<()>>,
    read_any: bool,
}

/// The delivery side is closed or the agent is stopping.
struct Stopped;

struct Runner {
    job: JournalJob,
    spec: JournalSpec,
    out: Fanout,
    tracker: Arc<Tracker>,
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
    backlog: VecDeque<Entry>,
    outv: Vec<Entry>,
    /// Error kinds logged since the last successful run.
    warned: HashSet<&'static str>,
}

impl Runner {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn run(mut self, saved: Option<String>) {
        let mut start =
            Start::resolve(saved.as_deref(), self.job.config.max_age, SystemTime::now());
        let mut backoff = BACKOFF_MIN;
        while !self.stopping() {
            let ok = match self.spawn(&start) {
                Some(mut run) => {
                    let r = self.follow(&mut run);
                    let read_any = run.read_any;
                    self.finish(run);
                    if r.is_err() {
                        break;
                    }
                    read_any
                }
                None => false,
            };
            if ok {
                backoff = BACKOFF_MIN;
            }
            // Resume after what was read (issued), not what was delivered.
            start = match self.tracker.issued() {
                Position::Cursor(c) if !c.is_empty() => {
                    Start::resolve(Some(&c), self.job.config.max_age, SystemTime::now())
                }
                _ => start,
            };
            self.sleep(backoff);
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
        tracing::debug!(job = %self.job.name, "journal runner stopped");
        // Held and un-sent entries are dropped here: their acks poison the
        // cursor, so they are read again after a restart.
    }

    fn error(&mut self, reason: &'static str, msg: &str) {
        self.metrics
            .journal_errors_total
            .get_or_create(&labels(&[("reason", reason)]))
            .inc();
        if self.warned.insert(reason) {
            tracing::error!(job = %self.job.name, reason, "journal: {msg}");
        }
    }

    /// Sleeps `d`, waking early at stop.
    fn sleep(&self, d: Duration) {
        let until = Instant::now() + d;
        while !self.stopping() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(TICK));
        }
    }

    fn spawn(&mut self, start: &Start) -> Option<Running> {
        if let Journals::Directory(p) | Journals::File(p) = &self.spec.journals {
            let readable = match &self.spec.journals {
                Journals::Directory(_) => std::fs::read_dir(p).map(|_| ()),
                _ => std::fs::File::open(p).map(|_| ()),
            };
            if let Err(e) = readable {
                let msg = format!("cannot read the journal at {}: {e}", p.display());
                self.error("unreadable_path", &msg);
                return None;
            }
        }
        let mut cmd = command(&self.job.journalctl, &self.spec, start);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let msg = format!(
                    "{} not found: the journal source needs journalctl (package systemd) in the image",
                    self.job.journalctl.display()
                );
                self.error("no_journalctl", &msg);
                return None;
            }
            Err(e) => {
                let msg = format!("cannot run {}: {e}", self.job.journalctl.display());
                self.error("spawn", &msg);
                return None;
            }
        };
        tracing::debug!(job = %self.job.name, pid = child.id(), ?start, "journalctl started");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        if let Some(mut err) = child.stderr.take() {
            let keep = stderr.clone();
            let spawned = std::thread::Builder::new()
                .name("journalctl-stderr".into())
                .spawn(move || {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = err.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        if let Ok(mut k) = keep.lock() {
                            k.extend_from_slice(&buf[..n]);
                            let over = k.len().saturating_sub(STDERR_KEEP);
                            k.drain(..over);
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "journal: cannot start the stderr reader");
            }
        }
        let (tx, rx) = mpsc::sync_channel(CHANNEL);
        let reader = child.stdout.take().and_then(|stdout| {
            std::thread::Builder::new()
                .name("journalctl-stdout".into())
                .spawn(move || read_lines(stdout, &tx))
                .ok()
        });
        Some(Running {
            child,
            lines: rx,
            stderr,
            reader,
            read_any: false,
        })
    }

    /// Reads the child's lines until it exits (`Ok`) or the agent stops.
    fn follow(&mut self, run: &mut Running) -> Result<(), Stopped> {
        let mut next_tick = Instant::now() + TICK;
        loop {
            if self.stopping() {
                return Err(Stopped);
            }
            // The pipeline's timers (multiline's max_wait, …), also while
            // lines keep coming or delivery is behind.
            let now = Instant::now();
            if now >= next_tick {
                self.job.pipeline.tick(now, &mut self.outv);
                self.backlog.extend(self.outv.drain(..));
                next_tick = now + TICK;
            }
            let drained = self.pump()?;
            let flushed = self.out.flush().map_err(|_| Stopped)?;
            if !drained || !flushed {
                // Delivery is behind: read nothing more until it takes.
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            match run.lines.recv_timeout(TICK) {
                Ok(Msg::Line(l)) => {
                    run.read_any = true;
                    self.record(&l);
                }
                Ok(Msg::TooLong(n)) => {
                    self.parse_error("line_too_long");
                    tracing::warn!(job = %self.job.name, bytes = n, max = MAX_LINE, "journal: skipped a journalctl line over the maximum");
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
        }
    }

    /// Ends the child (killed if still running) and reports how it ended.
    fn finish(&mut self, mut run: Running) {
        let _ = run.child.kill();
        let status = run.child.wait();
        drop(run.lines);
        if let Some(r) = run.reader.take() {
            let _ = r.join();
        }
        if self.stopping() {
            return;
        }
        let stderr = run
            .stderr
            .lock()
            .map(|e| String::from_utf8_lossy(&e).trim().to_string())
            .unwrap_or_default();
        let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
        let msg =
            format!("journalctl ended ({status}); restarting it with backoff. stderr: {stderr:?}");
        if run.read_any {
            // A run that read entries: a later failure is news again.
            self.warned.clear();
        }
        self.error("exited", &msg);
    }

    fn parse_error(&self, error: &'static str) {
        self.metrics
            .journal_target_parsing_errors_total
            .get_or_create(&labels(&[("error", error)]))
            .inc();
    }

    fn record(&mut self, line: &[u8]) {
        let rec = match Record::parse(line) {
            Ok(r) => r,
            Err(e) => {
                self.parse_error("invalid_record");
                tracing::debug!(job = %self.job.name, error = %e, "journal: skipped a record");
                return;
            }
        };
        let cursor: Arc<str> = rec.cursor.as_str().into();
        let Some(text) = rec.line(self.job.config.json) else {
            self.parse_error("no_message");
            self.tracker.skip_to(Position::Cursor(cursor));
            return;
        };
        let mut l: BTreeMap<String, String> = self.job.config.labels.clone();
        l.extend(rec.journal_labels());
        let kept = self.job.relabeler.apply(&mut l);
        l.retain(|k, _| !k.starts_with("__"));
        if !kept || l.is_empty() {
            self.parse_error("empty_labels");
            self.tracker.skip_to(Position::Cursor(cursor));
            return;
        }
        self.metrics.journal_target_lines_total.inc();
        let ack = self.tracker.issue(Position::Cursor(cursor));
        let e = Entry::new(LabelSet::new(l), rec.timestamp, text.into(), ack);
        self.job.pipeline.process(e, &mut self.outv);
        self.backlog.extend(self.outv.drain(..));
    }

    /// Hands backlog entries to the fan-out while it takes them; `Ok(true)`:
    /// the backlog is empty.
    fn pump(&mut self) -> Result<bool, Stopped> {
        self.out
            .send_backlog(&mut self.backlog)
            .map_err(|_| Stopped)
    }
}

/// Splits `r` into lines (without the newline) of at most [`MAX_LINE`]
/// bytes, sending each; a longer line is skipped and reported. A last line
/// without its newline (journalctl killed mid-write) is dropped: it was not
/// issued, so the restart reads it again.
fn read_lines(r: impl Read, tx: &mpsc::SyncSender<Msg>) {
    let mut r = BufReader::with_capacity(64 << 10, r);
    let mut line = Vec::new();
    let mut skipped = 0usize;
    loop {
        let (used, done) = match r.fill_buf() {
            Ok([]) => return,
            Ok(buf) => match buf.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    take(&mut line, &mut skipped, &buf[..i]);
                    (i + 1, true)
                }
                None => {
                    take(&mut line, &mut skipped, buf);
                    (buf.len(), false)
                }
            },
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        r.consume(used);
        if done {
            let msg = if skipped > 0 {
                line.clear();
                Msg::TooLong(std::mem::take(&mut skipped))
            } else {
                Msg::Line(std::mem::take(&mut line))
            };
            if tx.send(msg).is_err() {
                return;
            }
        }
    }
}

/// Appends `part` to `line` unless that passes [`MAX_LINE`] (then only
/// counts it in `skipped`).
fn take(line: &mut Vec<u8>, skipped: &mut usize, part: &[u8]) {
    if *skipped > 0 || line.len() + part.len() > MAX_LINE {
        *skipped += line.len() + part.len();
        line.clear();
    } else {
        line.extend_from_slice(part);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8]) -> Vec<Result<Vec<u8>, usize>> {
        let (tx, rx) = mpsc::sync_channel(100);
        read_lines(input, &tx);
        drop(tx);
        rx.iter()
            .map(|m| match m {
                Msg::Line(l) => Ok(l),
                Msg::TooLong(n) => Err(n),
            })
            .collect()
    }

    #[test]
    fn splits_lines_drops_an_unfinished_last_one() {
        assert_eq!(
            lines(b"{\"a\":1}\n\n{\"b\":2}\n{\"c\""),
            [
                Ok(b"{\"a\":1}".to_vec()),
                Ok(vec![]),
                Ok(b"{\"b\":2}".to_vec())
            ]
        );
    }

    #[test]
    fn a_line_over_the_maximum_is_skipped_and_reported() {
        let mut input = vec![b'x'; MAX_LINE + 10];
        input.extend_from_slice(b"\nok\n");
        assert_eq!(lines(&input), [Err(MAX_LINE + 10), Ok(b"ok".to_vec())]);
    }
}
