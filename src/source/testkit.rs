//! Test harness for the tailer: a real tailer thread on a temp directory, a
//! fake sink that drains the client channel on its own thread and
//! acknowledges entries (at once, or later and out of order), and
//! crash-style restarts (stop without flushing; unacknowledged entries are
//! dropped, so their positions are not saved).
#![cfg(test)]

use super::tailer::{spawn_file_tailer, FileTarget, ScrapeJob, TailOptions, TargetFeed};
use crate::ack::Budget;
use crate::config::PositionsConfig;
use crate::entry::Entry;
use crate::labels::LabelSet;
use crate::metrics::Metrics;
use crate::pipeline::Pipeline;
use crate::positions::Positions;
use crate::sink::fanout::Fanout;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// One entry as the sink saw it.
#[derive(Clone, Debug)]
pub struct Got {
    pub line: String,
    pub filename: String,
    /// Its `app` label ("" if none).
    pub app: String,
    pub run: usize,
}

#[derive(Default)]
pub struct Log {
    pub got: Vec<Got>,
    /// (run, line) acknowledged.
    pub acked: HashSet<(usize, String)>,
    /// line → number of times received in total.
    pub seen: HashMap<String, usize>,
    pub acked_any: HashSet<String>,
}

struct Run {
    stop: Arc<AtomicBool>,
    tailer: JoinHandle<()>,
    sink: JoinHandle<()>,
    feed: TargetFeed,
}

/// How the fake sink acknowledges.
#[derive(Clone, Copy, Debug)]
pub enum AckMode {
    Immediate,
    /// Holds entries and acknowledges a random held one now and then.
    Delayed(u64),
    /// Holds every entry until [`Harness::release`] (Loki down); entries
    /// still held at a stop are dropped unacknowledged.
    Held,
}

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub pos_file: PathBuf,
    pub metrics: Arc<Metrics>,
    pub log: Arc<Mutex<Log>>,
    pub opts: TailOptions,
    pub include: String,
    pub ack: AckMode,
    run: Option<Run>,
    pub run_no: usize,
    /// Give-up time of every wait.
    pub timeout: Duration,
    /// The running tailer's positions registry.
    pub live_positions: Option<Arc<Positions>>,
    /// [`AckMode::Held`]: acknowledge from now on.
    released: Arc<AtomicBool>,
    /// Memory budget of the fan-out.
    pub budget: usize,
    /// The job's targets come as updates ([`Harness::set_targets`]), as
    /// from the Kubernetes API; it starts with none.
    pub dynamic: bool,
    /// The job's `pipeline_stages` and its named pipelines, as YAML (none:
    /// no stages).
    pub stages: Option<(String, Vec<(String, String)>)>,
}

impl Harness {
    pub fn new(glob_rel: &str, opts: TailOptions, ack: AckMode) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        let include = format!("{}/{}", logs.display(), glob_rel);
        Harness {
            pos_file: dir.path().join("positions.yaml"),
            dir,
            metrics: Arc::new(Metrics::new()),
            log: Arc::new(Mutex::new(Log::default())),
            opts,
            include,
            ack,
            run: None,
            run_no: 0,
            timeout: Duration::from_secs(30),
            live_positions: None,
            released: Arc::new(AtomicBool::new(false)),
            budget: 1 << 20,
            dynamic: false,
            stages: None,
        }
    }

    /// A target of this harness's glob with `labels` (plus `job`).
    pub fn target(&self, labels: &[(&str, &str)]) -> FileTarget {
        let mut l = vec![("job", "test")];
        l.extend_from_slice(labels);
        FileTarget {
            include: self.include.clone(),
            labels: LabelSet::new(l),
            ..FileTarget::default()
        }
    }

    fn pipeline(&self, yaml: &str) -> Pipeline {
        let de = serde_yaml_ng::Deserializer::from_str(yaml);
        let stages: Vec<crate::pipeline::stages::StageConfig> =
            serde_yaml_ng::with::singleton_map_recursive::deserialize(de).unwrap();
        crate::pipeline::stages::build(&stages, self.metrics.clone()).unwrap()
    }

    /// Hands the running tailer a new target set (dynamic harness).
    pub fn set_targets(&self, targets: Vec<FileTarget>) {
        let r = self.run.as_ref().expect("running");
        assert!(
            r.feed.send(super::tailer::TargetUpdate { job: 0, targets }),
            "tailer stopped"
        );
    }

    /// [`AckMode::Held`]: Loki is back; everything held and to come is
    /// acknowledged.
    pub fn release(&self) {
        self.released.store(true, Ordering::SeqCst);
    }

    pub fn logs(&self) -> PathBuf {
        self.dir.path().join("logs")
    }

    pub fn running(&self) -> bool {
        self.run.is_some()
    }

    pub fn positions(&self) -> Arc<Positions> {
        Positions::open(
            &PositionsConfig {
                filename: self.pos_file.clone(),
                sync_period: Duration::from_secs(10),
                ignore_invalid_yaml: false,
            },
            false,
        )
        .unwrap()
    }

    pub fn start(&mut self) {
        assert!(self.run.is_none());
        self.run_no += 1;
        let run_no = self.run_no;
        let positions = self.positions();
        self.live_positions = Some(positions.clone());
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, mut rx) = mpsc::channel::<Vec<Entry>>(64);
        let fanout = Fanout::to_clients(vec![tx], Budget::new(self.budget), stop.clone());
        let job = ScrapeJob {
            name: "test".into(),
            targets: if self.dynamic {
                Vec::new()
            } else {
                vec![self.target(&[])]
            },
            pipeline: self.pipeline(self.stages.as_ref().map_or("[]", |s| &s.0)),
            named: self.stages.as_ref().map_or(Vec::new(), |(_, named)| {
                named
                    .iter()
                    .map(|(n, y)| (n.clone(), self.pipeline(y)))
                    .collect()
            }),
            dynamic: self.dynamic,
        };
        let (tailer, feed) = spawn_file_tailer(
            vec![job],
            self.opts.clone(),
            fanout,
            positions.clone(),
            self.metrics.clone(),
            stop.clone(),
        )
        .unwrap();
        let log = self.log.clone();
        let mode = self.ack;
        let release = self.released.clone();
        let pos_file_positions = positions;
        let sink = std::thread::spawn(move || {
            let mut held: Vec<Entry> = Vec::new();
            let mut rng = SmallRng::seed_from_u64(match mode {
                AckMode::Delayed(s) => s ^ run_no as u64,
                AckMode::Immediate | AckMode::Held => 0,
            });
            let mut last_save = Instant::now();
            let mut inbox: std::collections::VecDeque<Entry> = Default::default();
            loop {
                let next = match inbox.pop_front() {
                    Some(e) => Ok(e),
                    None => match rx.try_recv() {
                        Ok(chunk) => {
                            inbox.extend(chunk);
                            continue;
                        }
                        Err(err) => Err(err),
                    },
                };
                match next {
                    Ok(e) => {
                        let mut l = log.lock().unwrap();
                        l.got.push(Got {
                            line: e.line.to_string(),
                            filename: e.labels.get("filename").unwrap_or("").to_string(),
                            app: e.labels.get("app").unwrap_or("").to_string(),
                            run: run_no,
                        });
                        *l.seen.entry(e.line.to_string()).or_default() += 1;
                        match mode {
                            AckMode::Immediate => {
                                l.acked.insert((run_no, e.line.to_string()));
                                l.acked_any.insert(e.line.to_string());
                                drop(l);
                                e.ack.ack();
                            }
                            AckMode::Delayed(_) | AckMode::Held => held.push(e),
                        }
                    }
                    Err(mpsc::error::TryRecvError::Empty) => {
                        if matches!(mode, AckMode::Held) && release.load(Ordering::SeqCst) {
                            let mut l = log.lock().unwrap();
                            for e in held.drain(..) {
                                l.acked.insert((run_no, e.line.to_string()));
                                l.acked_any.insert(e.line.to_string());
                                e.ack.ack();
                            }
                        }
                        if matches!(mode, AckMode::Delayed(_))
                            && !held.is_empty()
                            && rng.random_bool(0.7)
                        {
                            let n = rng.random_range(1..=held.len().min(8));
                            for _ in 0..n {
                                let i = rng.random_range(0..held.len());
                                let e = held.swap_remove(i);
                                let mut l = log.lock().unwrap();
                                l.acked.insert((run_no, e.line.to_string()));
                                l.acked_any.insert(e.line.to_string());
                                drop(l);
                                e.ack.ack();
                            }
                        }
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                }
                // Periodic positions saves, as the agent does.
                if last_save.elapsed() > Duration::from_millis(100) {
                    let _ = pos_file_positions.save();
                    last_save = Instant::now();
                }
            }
            // Crash: whatever is held was never acknowledged.
            drop(held);
            let _ = pos_file_positions.save();
        });
        self.run = Some(Run {
            stop,
            tailer,
            sink,
            feed,
        });
    }

    /// Stops like a crash: nothing unacknowledged is flushed or saved.
    pub fn stop(&mut self) {
        let Some(r) = self.run.take() else { return };
        self.live_positions = None;
        r.stop.store(true, Ordering::Relaxed);
        r.tailer.join().unwrap();
        r.sink.join().unwrap();
    }

    /// Waits until `pred(log)` holds (or panics after a generous timeout).
    pub fn wait_for(&self, what: &str, pred: impl Fn(&Log) -> bool) {
        let deadline = Instant::now() + self.timeout;
        loop {
            if pred(&self.log.lock().unwrap()) {
                return;
            }
            if Instant::now() > deadline {
                let l = self.log.lock().unwrap();
                let tail: Vec<_> = l.got.iter().rev().take(20).collect();
                panic!("timed out waiting for {what}; last received: {tail:#?}");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn wait_received(&self, lines: &[String]) {
        let deadline = Instant::now() + self.timeout;
        loop {
            let missing: Vec<&String> = {
                let l = self.log.lock().unwrap();
                lines.iter().filter(|x| !l.seen.contains_key(*x)).collect()
            };
            if missing.is_empty() {
                return;
            }
            if Instant::now() > deadline {
                let short: Vec<&str> = missing
                    .iter()
                    .take(10)
                    .map(|m| &m[..m.len().min(16)])
                    .collect();
                panic!(
                    "timed out waiting for {} lines, e.g. {short:?}",
                    missing.len()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn wait_acked(&self, lines: &[String]) {
        self.wait_for("lines to be acknowledged", |l| {
            lines.iter().all(|x| l.acked_any.contains(x))
        });
    }

    pub fn counter(&self, reason: &str) -> u64 {
        self.metrics
            .file_errors_total
            .get_or_create(&crate::metrics::labels(&[("reason", reason)]))
            .get()
    }

    pub fn wait_counter_above(&self, reason: &str, v: u64) {
        let deadline = Instant::now() + self.timeout;
        while self.counter(reason) <= v {
            assert!(Instant::now() < deadline, "timed out waiting for {reason}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sets the mtime of `dir` and of every directory below it (not
/// through symlinks) an hour back: settled, as a node's directories are
/// between rotations (see `listing.rs`).
pub fn settle(dir: &Path) {
    let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            settle(&e.path());
        }
    }
    std::fs::File::open(dir)
        .unwrap()
        .set_modified(hour_ago)
        .unwrap();
}

/// Appends `text` to `path` (creating it).
pub fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// Options that make the tests exercise chunk boundaries and quick rescans.
pub fn test_opts() -> TailOptions {
    TailOptions {
        rescan: Duration::from_millis(300),
        max_open_files: 64,
        read_chunk: 4096,
        max_line_bytes: 1 << 20,
        idle_close: Duration::from_secs(60),
        symlink_roots: Vec::new(),
    }
}
