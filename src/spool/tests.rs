//! Tests of the spool as a whole: the writer, a lane, the ledger and
//! recovery together, driven step by step, with crashes at any point.
//!
//! The model: one source file whose lines are `e000000`, `e000001`, …; each
//! entry's acknowledgement carries the offset just after it (index + 1),
//! exactly as a tailed file's would. The world writes entries, seals and
//! commits chunks, lets a lane read and "Loki" accept (in order or not),
//! saves positions and the ledger — in any order — and crashes: every
//! in-memory thing is dropped, a torn chunk may be left at the end of the
//! last segment, and the agent starts again from what is on disk.
//!
//! After each crash: what the restarted agent would send again — the spool
//! from the lane's saved cursor, then the file from its saved offset — must
//! be every line not accepted by Loki, exactly once and in order (lines Loki
//! accepted may come again only from chunks whose acceptance was not saved).

use super::reader::LaneReader;
use super::writer::Writer;
use super::*;
use crate::entry::{Entry, Timestamp};
use crate::labels::LabelSet;
use crate::positions::{FileId, Fingerprint, Positions};
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

const FILE: FileId = FileId { dev: 7, ino: 7 };
const CLIENT: &str = "c";

fn cfg(dir: &Path) -> SpoolConfig {
    SpoolConfig {
        dir: dir.join("wal"),
        max_size: 1 << 30,
        segment_size: 1024,
        chunk_size: 200,
        chunk_wait: Duration::from_millis(100),
        // Low enough that a lane behind by a few chunks gets them
        // compressed: runs mix stored and compressed chunks.
        compress_from: 600,
    }
}

fn positions(dir: &Path) -> Arc<Positions> {
    Positions::open(
        &crate::config::PositionsConfig {
            filename: dir.join("positions.yaml"),
            sync_period: Duration::from_secs(10),
            ignore_invalid_yaml: false,
        },
        false,
    )
    .unwrap()
}

/// A writer driven by the test (commits at 1 MiB of open data).
fn writer(spool: &Spool, positions: Arc<Positions>) -> Writer {
    Writer::new(
        spool.clone(),
        positions,
        1 << 20,
        Arc::new(AtomicBool::new(false)),
    )
}

/// A writer thread (commits at 1 MiB of open data, no budget).
fn spawn_writer(
    spool: &Spool,
    pos: &Arc<Positions>,
    stop: &Arc<AtomicBool>,
) -> (
    std::sync::mpsc::SyncSender<Vec<Entry>>,
    std::thread::JoinHandle<()>,
) {
    super::writer::spawn_writer(
        spool.clone(),
        pos.clone(),
        1 << 20,
        None,
        stop.clone(),
        None,
    )
    .unwrap()
}

fn index(line: &str) -> usize {
    line.trim_start_matches('e').parse().unwrap()
}

/// One run of the agent, between two crashes.
struct Run {
    spool: Spool,
    positions: Arc<Positions>,
    writer: Writer,
    lane: LaneReader,
    source: Arc<Tracker>,
    /// Entries the lane handed out, not yet accepted.
    held: Vec<Entry>,
    _stop: tokio::sync::watch::Sender<bool>,
}

struct World {
    dir: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
    run: Option<Run>,
    /// Lines in the file so far.
    next: usize,
    /// Lines Loki accepted at least once.
    accepted: BTreeSet<usize>,
    labels: LabelSet,
}

impl World {
    fn new() -> World {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut w = World {
            dir: tempfile::tempdir().unwrap(),
            rt,
            run: None,
            next: 0,
            accepted: BTreeSet::new(),
            labels: LabelSet::new([("app", "x"), ("filename", "/f/0.log")]),
        };
        w.start();
        w
    }

    /// Starts the agent from what is on disk; the tailer re-reads the file
    /// from its saved offset.
    fn start(&mut self) {
        let dir = self.dir.path();
        let positions = positions(dir);
        let saved = positions.saved(FILE).map_or(0, |s| s.offset) as usize;
        let spool =
            Spool::open(cfg(dir), positions.spool_head(), Arc::new(Metrics::new())).unwrap();
        let source = Tracker::new(Position::Offset(saved as u64));
        positions.track(
            Path::new("/f/0.log"),
            FILE,
            Fingerprint { len: 1, crc: 1 },
            source.clone(),
            Arc::new(AtomicU64::new(0)),
        );
        let mut lanes = spool.start_lanes(CLIENT, "");
        assert_eq!(lanes.len(), 1);
        let (tenant, start, tracker) = lanes.remove(0);
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let (new_tx, _new_rx) = tokio::sync::mpsc::unbounded_channel();
        let lane = LaneReader::new(
            spool.clone(),
            CLIENT,
            &tenant,
            "",
            start,
            tracker,
            stop_rx,
            new_tx,
        );
        let writer = writer(&spool, positions.clone());
        let mut run = Run {
            spool,
            positions,
            writer,
            lane,
            source,
            held: Vec::new(),
            _stop: stop,
        };
        // The tailer reads the file again from the saved offset.
        let again: Vec<Entry> = (saved..self.next)
            .map(|i| self.entry(&run.source, i))
            .collect();
        run.writer.take(again);
        self.run = Some(run);
    }

    fn entry(&self, source: &Arc<Tracker>, i: usize) -> Entry {
        Entry::new(
            self.labels.clone(),
            Timestamp(i as i64),
            format!("e{i:06}").into(),
            source.issue(Position::Offset(i as u64 + 1)),
        )
    }

    fn run(&mut self) -> &mut Run {
        self.run.as_mut().unwrap()
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Write(k) => {
                let src = self.run().source.clone();
                let es: Vec<Entry> = (self.next..self.next + k)
                    .map(|i| self.entry(&src, i))
                    .collect();
                self.next += k;
                self.run().writer.take(es);
            }
            Op::Seal => self.run().writer.seal(),
            Op::Commit => {
                let r = self.run();
                r.writer.seal();
                r.writer.commit();
            }
            Op::Read => {
                let r = self.run.as_mut().unwrap();
                let got = self.rt.block_on(async {
                    tokio::time::timeout(Duration::from_millis(20), r.lane.next()).await
                });
                if let Ok(Some(es)) = got {
                    r.held.extend(es);
                }
            }
            Op::Accept(k) => {
                let r = self.run.as_mut().unwrap();
                let k = k.min(r.held.len());
                for e in r.held.drain(..k) {
                    self.accepted.insert(index(&e.line));
                    e.ack.ack();
                }
            }
            Op::AcceptOne(i) => {
                let r = self.run.as_mut().unwrap();
                if !r.held.is_empty() {
                    let e = r.held.remove(i % r.held.len());
                    self.accepted.insert(index(&e.line));
                    e.ack.ack();
                }
            }
            Op::Maintain => self.run().spool.maintain().unwrap(),
            Op::SavePositions => self.run().positions.save().unwrap(),
            Op::Crash(tear) => self.crash(tear),
            Op::CrashInCommit => {
                self.run().writer.commit_then_die_before_positions();
                self.crash(None);
            }
        }
    }

    /// Drops everything in memory; maybe leaves a torn chunk behind.
    fn crash(&mut self, tear: Option<u16>) {
        let Some(run) = self.run.take() else { return };
        let dir = run.spool.dir().to_path_buf();
        drop(run);
        if let Some(n) = tear {
            // A chunk whose write was interrupted: a prefix of a real one.
            let mut cb = super::chunk::ChunkBuilder::new(super::chunk::Codec::Lz4);
            cb.add(&Entry::new(
                self.labels.clone(),
                Timestamp(0),
                "torn".into(),
                crate::ack::Ack::none(),
            ));
            let mut b = Vec::new();
            cb.seal(0, &mut b);
            b.truncate((n as usize) % b.len());
            if let Some((_, last)) = segment::list(&dir).unwrap().pop() {
                use std::io::Write;
                let mut f = std::fs::OpenOptions::new().append(true).open(last).unwrap();
                f.write_all(&b).unwrap();
            }
        }
        self.check_replay();
        self.start();
    }

    /// What a restart would send again, from disk only. See the module docs.
    fn check_replay(&self) {
        let dir = self.dir.path();
        let positions = positions(dir);
        let saved = positions.saved(FILE).map_or(0, |s| s.offset) as usize;
        // Recovery as the agent does it (cuts uncommitted chunks).
        let spool =
            Spool::open(cfg(dir), positions.spool_head(), Arc::new(Metrics::new())).unwrap();
        let cursor = saved_cursors(&spool.shared.cfg.dir)
            .unwrap()
            .get(CLIENT)
            .and_then(|m| m.get(""))
            .copied()
            .unwrap_or_else(|| spool.tail())
            .max(spool.tail());
        let replay: Vec<usize> = inspect::entries_from(spool.dir(), cursor, u64::MAX)
            .unwrap()
            .iter()
            .map(|s| index(&s.line))
            .collect();
        let again: Vec<usize> = replay.iter().copied().chain(saved..self.next).collect();
        assert!(
            again.windows(2).all(|w| w[1] == w[0] + 1),
            "sent again out of order, twice or with a gap: spool {replay:?} then file from {saved}"
        );
        if let Some(first_unaccepted) = (0..self.next).find(|i| !self.accepted.contains(i)) {
            let from = again.first().copied().unwrap_or(self.next);
            assert!(
                from <= first_unaccepted,
                "line {first_unaccepted} was never accepted but is not sent again (resending from {from})"
            );
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    Write(usize),
    Seal,
    Commit,
    Read,
    Accept(usize),
    AcceptOne(usize),
    Maintain,
    SavePositions,
    Crash(Option<u16>),
    CrashInCommit,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1usize..12).prop_map(Op::Write),
        1 => Just(Op::Seal),
        4 => Just(Op::Commit),
        5 => Just(Op::Read),
        3 => (1usize..20).prop_map(Op::Accept),
        2 => any::<usize>().prop_map(Op::AcceptOne),
        2 => Just(Op::Maintain),
        1 => Just(Op::SavePositions),
        1 => proptest::option::of(any::<u16>()).prop_map(Op::Crash),
        1 => Just(Op::CrashInCommit),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn crashes_anywhere_resend_every_unaccepted_line_once_in_order(ops in proptest::collection::vec(op(), 1..120)) {
        let mut w = World::new();
        for op in &ops {
            w.apply(op);
        }
        w.apply(&Op::Crash(None));
    }
}

#[test]
fn a_lane_per_tenant_and_segments_go_only_when_every_lane_is_past_them() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let pos = positions(dir.path());
    let spool = Spool::open(cfg(dir.path()), None, Arc::new(Metrics::new())).unwrap();
    let mut w = Writer::new(
        spool.clone(),
        pos.clone(),
        1 << 20,
        Arc::new(AtomicBool::new(false)),
    );
    let a = LabelSet::new([("app", "a"), ("__tenant_id__", "ta")]);
    let b = LabelSet::new([("app", "b"), ("__tenant_id__", "tb")]);
    for i in 0..200 {
        let ls = if i % 2 == 0 { &a } else { &b };
        w.take(vec![Entry::new(
            ls.clone(),
            Timestamp(i),
            format!("{i:04} {}", "x".repeat(40)).into(),
            crate::ack::Ack::none(),
        )]);
    }
    w.seal();
    w.commit();
    assert!(spool.shared.state.lock().unwrap().segments.len() > 2);
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let (new_tx, mut new_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut lanes = spool.start_lanes(CLIENT, "");
    let (t, s, tr) = lanes.remove(0);
    let mut default = LaneReader::new(
        spool.clone(),
        CLIENT,
        &t,
        "",
        s,
        tr,
        stop_rx.clone(),
        new_tx.clone(),
    );
    // The default lane has no entries of its own; it discovers both tenants.
    let got = rt
        .block_on(async { tokio::time::timeout(Duration::from_millis(200), default.next()).await });
    assert!(got.is_err(), "no entry belongs to the default tenant");
    let mut found = Vec::new();
    while let Ok(l) = new_rx.try_recv() {
        found.push(l);
    }
    assert_eq!(
        found.iter().map(|l| l.0.as_str()).collect::<Vec<_>>(),
        vec!["ta", "tb"]
    );
    let (ta, sa, tra) = found.remove(0);
    let mut lane_a = LaneReader::new(
        spool.clone(),
        CLIENT,
        &ta,
        "",
        sa,
        tra,
        stop_rx.clone(),
        new_tx.clone(),
    );
    let mut seen = Vec::new();
    let mut stream: Option<LabelSet> = None;
    while let Ok(Some(es)) =
        rt.block_on(async { tokio::time::timeout(Duration::from_millis(100), lane_a.next()).await })
    {
        for e in es {
            assert_eq!(e.labels.get("__tenant_id__"), Some("ta"));
            // One set for the stream, shared across the chunks it spans.
            let first = stream.get_or_insert_with(|| e.labels.clone());
            assert!(first.shares(&e.labels));
            seen.push(e.timestamp.0);
            e.ack.ack();
        }
    }
    assert_eq!(
        seen,
        (0..200).step_by(2).collect::<Vec<i64>>(),
        "every entry of its tenant, in order"
    );
    // Tenant b has read nothing: no segment may go.
    let before = spool.shared.state.lock().unwrap().segments.len();
    spool.maintain().unwrap();
    assert_eq!(spool.shared.state.lock().unwrap().segments.len(), before);
    let saved = saved_cursors(spool.dir()).unwrap();
    assert_eq!(saved[CLIENT]["tb"], 0);
    assert!(saved[CLIENT]["ta"] > 0);
    // Once b is through too, all but the last segment go.
    let (tb, sb, trb) = found.remove(0);
    let mut lane_b = LaneReader::new(spool.clone(), CLIENT, &tb, "", sb, trb, stop_rx, new_tx);
    while let Ok(Some(es)) =
        rt.block_on(async { tokio::time::timeout(Duration::from_millis(100), lane_b.next()).await })
    {
        crate::ack::ack_many(es.into_iter().map(|e| e.ack));
    }
    spool.maintain().unwrap();
    assert_eq!(spool.shared.state.lock().unwrap().segments.len(), 1);
    assert_eq!(segment::list(spool.dir()).unwrap().len(), 1);
}

#[test]
fn an_unwritable_spool_directory_is_refused_with_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let mut c = cfg(dir.path());
    c.dir = file.join("wal");
    let e = Spool::open(c, None, Arc::new(Metrics::new()))
        .err()
        .unwrap();
    assert!(e.starts_with("wal.dir "), "{e}");
}

#[test]
fn a_damaged_cursors_file_resends_from_the_oldest_data_rather_than_refusing() {
    let dir = tempfile::tempdir().unwrap();
    let pos = positions(dir.path());
    let spool = Spool::open(cfg(dir.path()), None, Arc::new(Metrics::new())).unwrap();
    let mut w = writer(&spool, pos);
    let ls = LabelSet::new([("app", "a")]);
    w.take(vec![Entry::new(
        ls,
        Timestamp(1),
        "x".into(),
        crate::ack::Ack::none(),
    )]);
    w.seal();
    w.commit();
    drop(w);
    drop(spool);
    std::fs::write(dir.path().join("wal").join(LEDGER), "clients: [not: {a map").unwrap();
    let spool = Spool::open(cfg(dir.path()), None, Arc::new(Metrics::new())).unwrap();
    let lanes = spool.start_lanes(CLIENT, "");
    assert_eq!(lanes.len(), 1);
    assert_eq!(lanes[0].1, spool.tail(), "starts again at the oldest data");
}

/// A batch whose last entry fills a chunk (sealed at once) and then
/// silence: the sealed chunk must still be committed within `chunk_wait`
/// of its first entry, not wait for more input (it waited up to an hour).
#[test]
fn a_chunk_sealed_by_the_last_entry_before_silence_is_committed() {
    let dir = tempfile::tempdir().unwrap();
    let pos = positions(dir.path());
    let spool = Spool::open(cfg(dir.path()), None, Arc::new(Metrics::new())).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, h) = spawn_writer(&spool, &pos, &stop);
    let ls = LabelSet::new([("app", "a")]);
    // cfg's chunk_size is 200 bytes: one 300-byte line fills a chunk.
    tx.send(vec![Entry::new(
        ls,
        Timestamp(1),
        "x".repeat(300).into(),
        crate::ack::Ack::none(),
    )])
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while spool.head() == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(spool.head() > 0, "the sealed chunk was never committed");
    drop(tx);
    h.join().unwrap();
}

/// Many small lines under a small memory budget, and no `chunk_wait` to
/// save them: an entry taken into a chunk keeps its ack's share of the
/// budget until its commit, so the writer must commit once those shares
/// hold half the budget — far below its commit threshold — or the reader
/// waits for room that only a commit would give.
#[test]
fn small_lines_under_a_small_budget_are_committed_without_waiting_for_chunk_wait() {
    let dir = tempfile::tempdir().unwrap();
    let pos = positions(dir.path());
    let mut c = cfg(dir.path());
    c.chunk_wait = Duration::from_secs(3600);
    c.chunk_size = 4096;
    let spool = Spool::open(c, None, Arc::new(Metrics::new())).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let budget = crate::ack::Budget::new(16 << 10);
    let (tx, h) = super::writer::spawn_writer(
        spool.clone(),
        pos.clone(),
        1 << 20,
        Some(budget.limit()),
        stop.clone(),
        None,
    )
    .unwrap();
    let source = Tracker::new(Position::Offset(0));
    let n = 5_000;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let ls = LabelSet::new([("app", "a")]);
    for i in 0..n {
        let line = format!("{i:06}");
        let cost = line.len() + crate::sink::fanout::ENTRY_OVERHEAD;
        let Some(charge) = budget.charge_blocking(cost, &|| std::time::Instant::now() >= deadline)
        else {
            panic!("no budget for line {i}: the writer holds it until a commit that never comes");
        };
        let mut ack = source.issue(Position::Offset(i as u64 + 1));
        ack.set_charge(charge);
        tx.send(vec![Entry::new(
            ls.clone(),
            Timestamp(i as i64),
            line.into(),
            ack,
        )])
        .unwrap();
    }
    // Every line below the commit threshold (30 KiB of 1 MiB): the commits
    // came from the budget.
    let committed = match source.committed() {
        Position::Offset(o) => o,
        other => panic!("{other:?}"),
    };
    assert!(committed >= n as u64 / 2, "committed {committed} of {n}");
    drop(tx);
    h.join().unwrap();
    assert_eq!(source.committed(), Position::Offset(n as u64));
    assert_eq!(budget.used(), 0);
}

/// Every chunk in the spool: (spool offset, codec).
fn chunk_codecs(spool: &Spool) -> Vec<(u64, super::chunk::Codec)> {
    let mut out = Vec::new();
    for (start, path) in segment::list(spool.dir()).unwrap() {
        let bytes = std::fs::read(path).unwrap();
        let mut at = 0;
        while at < bytes.len() {
            let h = super::chunk::Header::decode(&bytes[at..]).unwrap();
            out.push((start + at as u64, h.codec));
            at += h.total_len();
        }
    }
    out
}

#[test]
fn chunks_are_compressed_only_while_the_clients_lag_behind() {
    use super::chunk::Codec;
    let dir = tempfile::tempdir().unwrap();
    let pos = positions(dir.path());
    let from = 2_000;
    let spool = Spool::open(
        SpoolConfig {
            compress_from: from,
            ..cfg(dir.path())
        },
        None,
        Arc::new(Metrics::new()),
    )
    .unwrap();
    let (_, _, lane) = spool.start_lanes(CLIENT, "").remove(0);
    let mut w = writer(&spool, pos);
    let ls = LabelSet::new([("app", "a")]);
    let write = |w: &mut Writer, n: usize| {
        let batch = (0..n)
            .map(|i| {
                Entry::new(
                    ls.clone(),
                    Timestamp(i as i64),
                    "x".repeat(90).into(),
                    crate::ack::Ack::none(),
                )
            })
            .collect();
        w.take(batch);
        w.seal();
        w.commit();
    };
    // A client that keeps up: it has every chunk as soon as it is committed.
    for _ in 0..20 {
        write(&mut w, 7);
        lane.skip_to(Position::Offset(spool.head()));
    }
    let kept_up = chunk_codecs(&spool);
    assert!(kept_up.len() >= 20);
    assert!(
        kept_up.iter().all(|(_, c)| *c == Codec::None),
        "{kept_up:?}"
    );
    // The client stops (Loki is down): a backlog builds up.
    let cursor = spool.head();
    for _ in 0..20 {
        write(&mut w, 7);
    }
    let lagging: Vec<_> = chunk_codecs(&spool).split_off(kept_up.len());
    for (off, codec) in &lagging {
        let behind = off - cursor;
        let want = if behind >= from {
            Codec::Lz4
        } else {
            Codec::None
        };
        assert_eq!(*codec, want, "chunk at {off}, {behind} bytes behind");
    }
    assert!(lagging.iter().any(|(_, c)| *c == Codec::Lz4));
    assert!(lagging.iter().any(|(_, c)| *c == Codec::None));
    // The client catches up: new chunks are stored as they are again.
    lane.skip_to(Position::Offset(spool.head()));
    write(&mut w, 7);
    let last = chunk_codecs(&spool);
    assert_eq!(last.last().map(|(_, c)| *c), Some(Codec::None));
}

/// Bytes in the spool's segment files.
fn bytes_on_disk(spool: &Spool) -> u64 {
    segment::list(spool.dir())
        .unwrap()
        .iter()
        .map(|(_, p)| std::fs::metadata(p).unwrap().len())
        .sum()
}

/// Entries of `n` 90-byte lines whose acks advance `source` to 1..=n.
fn tracked_entries(source: &Arc<Tracker>, n: usize) -> Vec<Entry> {
    let ls = LabelSet::new([("app", "a")]);
    (0..n)
        .map(|i| {
            Entry::new(
                ls.clone(),
                Timestamp(i as i64),
                format!("{i:04}{}", "x".repeat(86)).into(),
                source.issue(Position::Offset(i as u64 + 1)),
            )
        })
        .collect()
}

/// A sealed chunk goes to disk at once, not into memory until the commit;
/// the lanes see it, and the positions move, only once it is committed.
#[test]
fn sealed_chunks_are_written_at_once_and_shown_only_when_committed() {
    let dir = tempfile::tempdir().unwrap();
    let pos = positions(dir.path());
    let spool = Spool::open(cfg(dir.path()), None, Arc::new(Metrics::new())).unwrap();
    let source = Tracker::new(Position::Offset(0));
    let mut w = writer(&spool, pos.clone());
    // cfg's chunk_size is 200 bytes: 3 lines per chunk, 7 chunks.
    w.take(tracked_entries(&source, 20));
    w.seal();
    let written = bytes_on_disk(&spool);
    assert!(
        chunk_codecs(&spool).len() >= 6,
        "the sealed chunks are on disk: {:?}",
        chunk_codecs(&spool)
    );
    assert_eq!(spool.head(), 0, "not shown to the lanes before the commit");
    assert_eq!(source.committed(), Position::Offset(0));
    w.commit();
    assert_eq!(spool.head(), written);
    assert_eq!(source.committed(), Position::Offset(20));
    assert_eq!(pos.spool_head(), Some(written));
}

/// An `fsync` that fails cannot be retried (the bytes may not be on disk,
/// and they are not in memory): nothing is committed, no position moves,
/// the agent is told to stop, and a restart reads every line again from
/// the file — none lost, none sent twice.
#[test]
fn a_failed_fsync_commits_nothing_and_stops_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    let pos = positions(dir.path());
    let spool = Spool::open(cfg(dir.path()), None, Arc::new(Metrics::new())).unwrap();
    let source = Tracker::new(Position::Offset(0));
    pos.track(
        Path::new("/f/0.log"),
        FILE,
        Fingerprint { len: 1, crc: 1 },
        source.clone(),
        Arc::new(AtomicU64::new(0)),
    );
    let mut w = writer(&spool, pos.clone());
    // A first commit that works.
    w.take(tracked_entries(&source, 4));
    w.seal();
    w.commit();
    let committed = spool.head();
    assert!(committed > 0);
    assert_eq!(source.committed(), Position::Offset(4));
    // Then the disk fails.
    let stopped = Arc::new(AtomicBool::new(false));
    let s2 = stopped.clone();
    w.fail_syncs(Box::new(move || s2.store(true, Ordering::SeqCst)));
    let more: Vec<Entry> = tracked_entries(&source, 10).split_off(4);
    w.take(more);
    w.seal();
    w.commit();
    assert!(stopped.load(Ordering::SeqCst), "the agent is told to stop");
    assert_eq!(
        spool.head(),
        committed,
        "nothing more is shown to the lanes"
    );
    assert_eq!(
        bytes_on_disk(&spool),
        committed,
        "the unsynced chunks are cut"
    );
    // Whatever arrives after the failure is not committed either.
    w.take(tracked_entries(&source, 12).split_off(10));
    w.seal();
    w.commit();
    assert_eq!(spool.head(), committed);
    assert_eq!(
        source.committed(),
        Position::Offset(4),
        "no position passes an uncommitted line"
    );
    pos.save().unwrap();
    drop(w);
    drop(spool);
    // The restart: the spool holds the first four lines, the file is read
    // again from line 4.
    let pos = positions(dir.path());
    assert_eq!(pos.saved(FILE).map(|s| s.offset), Some(4));
    let spool = Spool::open(cfg(dir.path()), pos.spool_head(), Arc::new(Metrics::new())).unwrap();
    assert_eq!(spool.head(), committed);
}

/// A 2 KiB spool with one client's lane (`chunk_wait` an hour: commits
/// come from size or the test).
fn tiny_spool(dir: &Path, compress_from: u64) -> (Spool, Arc<Tracker>) {
    let spool = Spool::open(
        SpoolConfig {
            max_size: 2048,
            chunk_wait: Duration::from_secs(3600),
            compress_from,
            ..cfg(dir)
        },
        None,
        Arc::new(Metrics::new()),
    )
    .unwrap();
    let (_, _, lane) = spool.start_lanes(CLIENT, "").remove(0);
    (spool, lane)
}

/// A spool smaller than a commit: the writer must commit what it wrote
/// before waiting for room, or it would wait for lanes that cannot read
/// what is not committed.
#[test]
fn a_full_spool_commits_what_is_written_before_waiting_for_room() {
    let dir = tempfile::tempdir().unwrap();
    let pos = positions(dir.path());
    let (spool, lane) = tiny_spool(dir.path(), cfg(dir.path()).compress_from);
    let source = Tracker::new(Position::Offset(0));
    let stop = Arc::new(AtomicBool::new(false));
    // Commits at 1 MiB: never reached by size, and `chunk_wait` is an hour.
    let (tx, h) = spawn_writer(&spool, &pos, &stop);
    let n = 200; // ~20 KB: ten times the spool
    tx.send(tracked_entries(&source, n)).unwrap();
    // The queue closes: the writer takes the batch, then commits the rest.
    drop(tx);
    // A client that sends every committed chunk at once, until the
    // writer has stopped.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut most = 0;
    while !h.is_finished() && std::time::Instant::now() < deadline {
        lane.skip_to(Position::Offset(spool.head()));
        spool.maintain().unwrap();
        most = most.max(bytes_on_disk(&spool));
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::SeqCst);
    h.join().unwrap();
    assert_eq!(
        source.committed(),
        Position::Offset(n as u64),
        "the writer waited for room with its chunks uncommitted"
    );
    assert!(most <= 2048 + 400, "the spool grew to {most} bytes");
}

/// At shutdown the spool stayed full: the entries waiting are given up
/// (read again after the restart). Entries that come after them must not
/// be committed once room appears (the lanes would send them before the
/// given-up lines of the same file: out of order, and again after the
/// restart). Found by the soak (tests/soak.rs, seed 205).
#[test]
fn nothing_after_entries_given_up_at_shutdown_is_committed() {
    let dir = tempfile::tempdir().unwrap();
    let pos = positions(dir.path());
    // Chunks stored as they are: the lines' bytes fill the spool.
    let (spool, lane) = tiny_spool(dir.path(), u64::MAX);
    let source = Tracker::new(Position::Offset(0));
    // The agent is stopping; the client sends nothing (Loki is down).
    let stop = Arc::new(AtomicBool::new(true));
    let mut w = Writer::new(spool.clone(), pos.clone(), 1 << 20, stop);
    // ~4 KB: twice the spool. Once full, the writer waits out the shutdown
    // deadline (10 s) and gives the rest up.
    w.take(tracked_entries(&source, 40));
    w.seal();
    w.commit();
    let head = spool.head();
    let Position::Offset(kept) = source.committed() else {
        panic!("a file offset")
    };
    assert!(
        head > 0 && kept > 0 && kept < 40,
        "committed {kept} of 40, head {head}"
    );
    // Loki is back: the lanes catch up and room appears; later lines of
    // the same file arrive.
    lane.skip_to(Position::Offset(spool.head()));
    spool.maintain().unwrap();
    w.take(tracked_entries(&source, 50).split_off(40));
    w.seal();
    w.commit();
    assert_eq!(
        spool.head(),
        head,
        "nothing after the given-up lines is committed"
    );
    assert_eq!(source.committed(), Position::Offset(kept));
}
