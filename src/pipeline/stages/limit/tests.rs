//! Table tests of the `limit` stage with a fake clock (no test depends on
//! real timing); expectations from Promtail's `limit.go` semantics (Go's
//! `rate.Limiter`: `rate` tokens per second, a bucket of `burst`, full at
//! start).

use super::*;
use crate::ack::{Position, Tracker};
use crate::entry::Timestamp;
use crate::metrics::Metrics;
use std::sync::Mutex;

/// A clock the test moves; `sleep` moves it too (and is recorded).
#[derive(Clone)]
struct FakeTime(Arc<Mutex<(Instant, Duration)>>);

impl FakeTime {
    fn new() -> Self {
        FakeTime(Arc::new(Mutex::new((Instant::now(), Duration::ZERO))))
    }
    fn advance(&self, d: Duration) {
        self.0.lock().unwrap().0 += d;
    }
    fn slept(&self) -> Duration {
        self.0.lock().unwrap().1
    }
}

impl Time for FakeTime {
    fn now(&self) -> Instant {
        self.0.lock().unwrap().0
    }
    fn sleep(&self, d: Duration) {
        let mut g = self.0.lock().unwrap();
        g.0 += d;
        g.1 += d;
    }
}

struct H {
    stage: LimitStage,
    time: FakeTime,
    metrics: Metrics,
    tracker: Arc<Tracker>,
    offset: u64,
    out: Vec<Entry>,
    n: usize,
}

fn cfg(yaml: &str) -> Config {
    serde_yaml_ng::from_str(yaml).unwrap()
}

fn h(yaml: &str) -> H {
    let time = FakeTime::new();
    let metrics = Metrics::new();
    let stage = LimitStage::with_time(&cfg(yaml), &metrics, Box::new(time.clone())).unwrap();
    H {
        stage,
        time,
        metrics,
        tracker: Tracker::new(Position::Offset(0)),
        offset: 0,
        out: Vec::new(),
        n: 0,
    }
}

fn app(v: &str) -> LabelSet {
    LabelSet::new([("app", v), ("job", "j")])
}

impl H {
    /// Feeds one line (named by its number) of the stream `labels`.
    fn feed(&mut self, labels: &LabelSet) {
        self.feed_line(labels, &format!("l{}", self.n));
    }
    fn feed_line(&mut self, labels: &LabelSet, line: &str) {
        self.n += 1;
        self.offset += line.len() as u64 + 1;
        let ack = self.tracker.issue(Position::Offset(self.offset));
        let e = Entry::new(labels.clone(), Timestamp(1), line.to_string().into(), ack);
        self.stage
            .process(e, &mut Ctx::new(&mut self.out, &self.metrics));
    }
    fn feed_n(&mut self, labels: &LabelSet, n: usize) {
        for _ in 0..n {
            self.feed(labels);
        }
    }
    fn tick_after(&mut self, d: Duration) {
        self.time.advance(d);
        let now = self.time.now();
        self.stage
            .tick(now, &mut Ctx::new(&mut self.out, &self.metrics));
    }
    fn flush(&mut self) {
        self.stage
            .flush(&mut Ctx::new(&mut self.out, &self.metrics));
    }
    fn lines(&self) -> Vec<&str> {
        self.out.iter().map(|e| e.line.as_str()).collect()
    }
    fn ack_all(&mut self) {
        for e in self.out.drain(..) {
            e.ack.ack();
        }
    }
    fn committed(&self) -> u64 {
        self.tracker.committed().offset().unwrap()
    }
    fn drops(&self) -> String {
        self.metrics
            .encode()
            .lines()
            .filter(|l| l.starts_with("logentry_dropped_lines"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn config_yaml_and_errors() {
    let c = cfg("{rate: 2.5, burst: 3}");
    assert_eq!((c.rate, c.burst, c.drop), (2.5, 3, false));
    assert_eq!(
        (c.by_label_name.as_deref(), c.max_distinct_labels),
        (None, 0)
    );
    let c = cfg("{rate: 1, burst: 1, by_label_name: app, max_distinct_labels: 20000, drop: true}");
    assert_eq!(c.by_label_name.as_deref(), Some("app"));
    assert!(serde_yaml_ng::from_str::<Config>("{rate: 1, burst: 1, dorp: true}").is_err());
    let m = Metrics::new();
    for (yaml, want) in [
        ("{}", "failed to parse rate or burst"),
        ("{rate: 1}", "failed to parse rate or burst"),
        ("{burst: 1}", "failed to parse rate or burst"),
        ("{rate: 0, burst: 1}", "failed to parse rate or burst"),
        ("{rate: -1, burst: 1}", "failed to parse rate or burst"),
        ("{rate: 1, burst: -1}", "failed to parse rate or burst"),
        ("{rate: .nan, burst: 1}", "failed to parse rate or burst"),
        ("{rate: .inf, burst: 1}", "rate: must be a finite"),
        (
            "{rate: 1, burst: 9999999999}",
            "burst: 9999999999 is too large",
        ),
        ("{rate: 1e-300, burst: 1}", "rate: 1e-300 is too small"),
    ] {
        let e = LimitStage::new(&cfg(yaml), &m).err().unwrap();
        assert!(e.contains(want), "{yaml}: {e}");
    }
    let ctx = BuildCtx::new(Arc::new(Metrics::new()));
    assert!(build(None, &ctx).err().unwrap().contains("rate or burst"));
    // Promtail refuses by_label_name without drop: tailtrace allows it.
    assert!(build(Some(&cfg("{rate: 1, burst: 1, by_label_name: app}")), &ctx).is_ok());
    // A huge rate is fine (one token per nanosecond at most).
    assert!(build(Some(&cfg("{rate: 1e12, burst: 1}")), &ctx).is_ok());
}

#[test]
fn drop_true_drops_and_counts_the_excess() {
    let mut h = h("{rate: 1, burst: 2, drop: true}");
    let l = app("a");
    h.feed_n(&l, 5);
    assert_eq!(h.lines(), ["l0", "l1"]);
    assert!(
        h.drops()
            .contains("logentry_dropped_lines_total{reason=\"ratelimit_drop_stage\"} 3"),
        "{}",
        h.drops()
    );
    // Dropped entries are acknowledged: the position moves past them.
    h.ack_all();
    assert_eq!(h.committed(), h.offset);
    // One token a second.
    h.time.advance(ms(999));
    h.feed(&l);
    assert!(h.out.is_empty());
    h.time.advance(ms(1));
    h.feed(&l);
    h.feed(&l);
    assert_eq!(h.lines(), ["l6"]);
    // After a long pause the bucket is full again, but never above burst.
    h.time.advance(Duration::from_secs(60));
    h.feed_n(&l, 3);
    assert_eq!(h.lines(), ["l6", "l8", "l9"]);
    assert!(h.stage.accepts(&l), "drop: true never holds back");
    h.ack_all();
}

#[test]
fn fractional_rates() {
    let mut h = h("{rate: 0.5, burst: 1, drop: true}");
    let l = app("a");
    h.feed(&l);
    h.time.advance(ms(1999));
    h.feed(&l);
    h.time.advance(ms(1));
    h.feed(&l);
    assert_eq!(h.lines(), ["l0", "l2"]);
    h.ack_all();
}

#[test]
fn by_label_name_limits_each_value_and_counts_by_label() {
    let mut h = h("{rate: 1, burst: 1, by_label_name: app, drop: true}");
    h.feed_n(&app("a"), 3);
    h.feed_n(&app("b"), 2);
    let none = LabelSet::new([("job", "j")]);
    h.feed_n(&none, 3);
    assert_eq!(h.lines(), ["l0", "l3", "l5", "l6", "l7"]);
    let d = h.drops();
    assert!(
        d.contains("logentry_dropped_lines_total{reason=\"ratelimit_drop_stage\"} 3"),
        "{d}"
    );
    assert!(
        d.contains(
            "logentry_dropped_lines_by_label_total{label_name=\"app\",label_value=\"a\"} 2.0"
        ),
        "{d}"
    );
    assert!(
        d.contains(
            "logentry_dropped_lines_by_label_total{label_name=\"app\",label_value=\"b\"} 1.0"
        ),
        "{d}"
    );
    h.ack_all();
    assert_eq!(h.committed(), h.offset);
}

#[test]
fn max_distinct_labels_is_at_least_10000_and_generations_turn_over() {
    let m = Metrics::new();
    let s = LimitStage::new(
        &cfg("{rate: 1, burst: 1, by_label_name: app, drop: true, max_distinct_labels: 5}"),
        &m,
    )
    .unwrap();
    assert_eq!(s.max_distinct, MIN_DISTINCT_LABELS);
    let s = LimitStage::new(
        &cfg("{rate: 1, burst: 1, by_label_name: app, drop: true, max_distinct_labels: 20000}"),
        &m,
    )
    .unwrap();
    assert_eq!(s.max_distinct, 20_000);

    let mut h = h("{rate: 1, burst: 1, by_label_name: app, drop: true}");
    h.feed_n(&app("v0"), 2); // v0's token is spent, one drop counted
    assert!(h.drops().contains("label_value=\"v0\"} 1.0"));
    // 9999 more values fill the current generation: it turns over and the
    // by-label counter is reset (as Promtail's gcCb does).
    for i in 1..MIN_DISTINCT_LABELS {
        h.feed(&app(&format!("v{i}")));
    }
    assert!(!h.drops().contains("by_label"), "{}", h.drops());
    // v0 is in the old generation: still known, still without a token.
    h.feed(&app("v0"));
    assert_eq!(h.out.len(), MIN_DISTINCT_LABELS);
    // Another full generation: v0 (promoted above) survives, v1 does not.
    for i in 0..MIN_DISTINCT_LABELS - 1 {
        h.feed(&app(&format!("w{i}")));
    }
    h.feed(&app("v1"));
    let last = h.out.last().unwrap().line.clone();
    assert_eq!(
        last,
        format!("l{}", h.n - 1),
        "a forgotten value starts with a full bucket"
    );
    h.ack_all();
}

#[test]
fn drop_false_holds_the_excess_and_releases_it_at_the_rate() {
    let mut h = h("{rate: 10, burst: 2}");
    let l = app("a");
    h.feed_n(&l, 5);
    assert_eq!(h.lines(), ["l0", "l1"]);
    assert_eq!(h.stage.held(), 3);
    assert!(!h.stage.accepts(&l), "the stream is held back");
    assert!(
        !h.stage.accepts(&app("other")),
        "without by_label_name: every stream"
    );
    // Held entries keep the position back; nothing is dropped.
    h.ack_all();
    assert_eq!(h.committed(), "l0\nl1\n".len() as u64);
    assert!(!h.drops().contains("ratelimit"));
    h.tick_after(ms(99));
    assert!(h.out.is_empty());
    h.tick_after(ms(1));
    assert_eq!(h.lines(), ["l2"]);
    h.tick_after(ms(250));
    assert_eq!(h.lines(), ["l2", "l3", "l4"]);
    assert_eq!(h.stage.held(), 0);
    assert!(h.stage.accepts(&l));
    h.ack_all();
    assert_eq!(h.committed(), h.offset);
    assert!(h.tracker.is_drained());
}

#[test]
fn coarse_ticks_lose_no_throughput() {
    // burst 1: a limiter checked once per tick would let one entry a tick
    // through; the stage books each release when its token came.
    let mut h = h("{rate: 10, burst: 1}");
    let l = app("a");
    h.feed_n(&l, 60);
    assert_eq!(h.out.len(), 1);
    h.tick_after(Duration::from_secs(1));
    assert_eq!(h.out.len(), 11);
    h.tick_after(ms(2500));
    assert_eq!(h.out.len(), 36);
    let want: Vec<String> = (0..36).map(|i| format!("l{i}")).collect();
    assert_eq!(h.lines(), want, "in order");
    // New entries queue behind the held ones even when a token is free.
    h.time.advance(Duration::from_secs(100));
    h.feed(&l);
    assert_eq!(h.out.len(), 36);
    h.tick_after(ms(0));
    // The 24 held entries were due long ago: they and the new one go out.
    assert_eq!(h.out.len(), 61);
    assert_eq!(h.out[60].line, "l60");
    h.ack_all();
    assert_eq!(h.committed(), h.offset);
}

#[test]
fn by_label_with_drop_false_slows_only_that_value() {
    let mut h = h("{rate: 1, burst: 1, by_label_name: app}");
    h.feed_n(&app("a"), 3);
    h.feed_n(&app("b"), 1);
    assert_eq!(h.lines(), ["l0", "l3"]);
    assert!(!h.stage.accepts(&app("a")));
    assert!(h.stage.accepts(&app("b")));
    // A file without the label: cannot tell which value it feeds.
    assert!(!h.stage.accepts(&LabelSet::new([("job", "j")])));
    // Entries without the label are never limited.
    h.feed_n(&LabelSet::new([("job", "j")]), 2);
    assert_eq!(h.lines(), ["l0", "l3", "l4", "l5"]);
    h.tick_after(Duration::from_secs(1));
    assert_eq!(h.lines()[4..], ["l1"]);
    h.tick_after(Duration::from_secs(1));
    assert!(h.stage.accepts(&app("a")));
    assert!(h.stage.accepts(&LabelSet::new([("job", "j")])));
    h.ack_all();
    assert_eq!(h.committed(), h.offset);
}

#[test]
fn flush_releases_everything_held_in_arrival_order() {
    let mut h = h("{rate: 1, burst: 1, by_label_name: app}");
    for v in ["b", "a", "b", "a", "c"] {
        h.feed(&app(v));
    }
    assert_eq!(h.lines(), ["l0", "l1", "l4"]);
    h.flush();
    assert_eq!(h.lines(), ["l0", "l1", "l4", "l2", "l3"]);
    assert_eq!(h.stage.held(), 0);
    assert!(h.stage.accepts(&app("a")));
    h.ack_all();
    assert_eq!(h.committed(), h.offset);
}

#[test]
fn past_the_bound_the_caller_is_blocked_like_promtail() {
    let mut h = h("{rate: 1, burst: 1}");
    let l = app("a");
    let mib = "x".repeat(1 << 20);
    let n = MAX_HELD_BYTES / mib.len() + 3;
    for _ in 0..n {
        h.feed_line(&l, &mib);
    }
    // Nothing dropped, never more than the bound held, and the releases
    // went out at the rate: the caller slept one second per release.
    assert!(h.stage.held_bytes <= MAX_HELD_BYTES);
    assert_eq!(h.out.len() + h.stage.held(), n);
    let released = h.out.len() as u64 - 1;
    assert_eq!(h.time.slept(), Duration::from_secs(released));
    h.flush();
    h.ack_all();
    assert_eq!(h.committed(), h.offset);
}

#[test]
fn built_pipeline_reports_accepts() {
    let v: Vec<crate::pipeline::stages::StageConfig> =
        serde_yaml_ng::from_str("- limit: {rate: 1, burst: 1}\n").unwrap();
    assert!(v[0].unhonoured_name().is_none());
    let mut p = crate::pipeline::stages::build(&v, Arc::new(Metrics::new())).unwrap();
    let l = app("a");
    let mut o = Vec::new();
    for _ in 0..2 {
        p.process(
            Entry::new(l.clone(), Timestamp(1), "x".into(), crate::ack::Ack::none()),
            &mut o,
        );
    }
    assert_eq!(o.len(), 1);
    assert!(!p.accepts(&l));
    p.flush(&mut o);
    assert_eq!(o.len(), 2);
    assert!(p.accepts(&l));
    for e in o {
        e.ack.ack();
    }
}
