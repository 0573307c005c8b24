//! End-to-end tests of [`super::start`] against a minimal Loki stand-in
//! (a hyper server on 127.0.0.1:0 answering scripted statuses): grouping,
//! tenants, encodings, retries, drops, acknowledgements and the shutdown
//! deadline.

use super::*;
use crate::ack::{Position, Tracker};
use crate::config::{BackoffConfig, Compression, PushEncoding};
use crate::entry::Timestamp;
use crate::labels::LabelSet;
use crate::sink::proto::PushRequest;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use prost::Message;
use std::collections::{BTreeMap, VecDeque};
use std::io::Read;
use std::sync::Mutex;

struct Recorded {
    tenant: Option<String>,
    content_type: String,
    content_encoding: Option<String>,
    body: Bytes,
}

type Seen = Arc<Mutex<Vec<Recorded>>>;

/// A minimal Loki stand-in: answers with `script` in order, then 204.
async fn server(script: Vec<u16>) -> (String, Seen) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Seen = Arc::new(Mutex::new(Vec::new()));
    let script = Arc::new(Mutex::new(VecDeque::from(script)));
    let seen2 = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let seen = seen2.clone();
            let script = script.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let seen = seen.clone();
                    let script = script.clone();
                    async move {
                        let h = |n: &str| {
                            req.headers()
                                .get(n)
                                .map(|v| v.to_str().unwrap().to_string())
                        };
                        let tenant = h("x-scope-orgid");
                        let content_type = h("content-type").unwrap_or_default();
                        let content_encoding = h("content-encoding");
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let status = script.lock().unwrap().pop_front().unwrap_or(204);
                        seen.lock().unwrap().push(Recorded {
                            tenant,
                            content_type,
                            content_encoding,
                            body,
                        });
                        let text = if status == 204 {
                            ""
                        } else {
                            "first error line\nsecond"
                        };
                        Ok::<_, std::convert::Infallible>(
                            Response::builder()
                                .status(status)
                                .body(Full::new(Bytes::from(text)))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (format!("http://{addr}/loki/api/v1/push"), seen)
}

fn cfg(url: &str) -> ClientConfig {
    ClientConfig {
        url: url.into(),
        batchwait: Duration::from_millis(20),
        backoff_config: BackoffConfig {
            min_period: Duration::from_millis(5),
            max_period: Duration::from_millis(10),
            max_retries: 5,
        },
        timeout: Duration::from_secs(5),
        ..Default::default()
    }
}

/// (labels, lines) of every stream of every request, in request order.
fn decode(r: &Recorded) -> Vec<(String, Vec<String>)> {
    if r.content_type == "application/json" {
        let mut text = String::new();
        match r.content_encoding.as_deref() {
            Some("gzip") => {
                flate2::read::GzDecoder::new(&r.body[..])
                    .read_to_string(&mut text)
                    .unwrap();
            }
            _ => text = String::from_utf8(r.body.to_vec()).unwrap(),
        }
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        return v["streams"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let labels = s["stream"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap()))
                    .collect::<Vec<_>>()
                    .join(",");
                let lines = s["values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v[1].as_str().unwrap().to_string())
                    .collect();
                (labels, lines)
            })
            .collect();
    }
    assert_eq!(r.content_type, "application/x-protobuf");
    assert_eq!(r.content_encoding, None);
    let raw = snap::raw::Decoder::new().decompress_vec(&r.body).unwrap();
    PushRequest::decode(&raw[..])
        .unwrap()
        .streams
        .into_iter()
        .map(|s| (s.labels, s.entries.into_iter().map(|e| e.line).collect()))
        .collect()
}

/// Lines per stream label string, across every request of `tenant`.
fn lines_by_stream(seen: &Seen, tenant: Option<&str>) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for r in seen.lock().unwrap().iter() {
        if r.tenant.as_deref() != tenant {
            continue;
        }
        for (l, lines) in decode(r) {
            match out.iter_mut().find(|(k, _)| *k == l) {
                Some((_, v)) => v.extend(lines),
                None => out.push((l, lines)),
            }
        }
    }
    out.sort();
    out
}

async fn send(h: &ClientHandle, t: &Arc<Tracker>, labels: &LabelSet, line: &str) {
    let end = match t.issued() {
        Position::Offset(o) => o + line.len() as u64 + 1,
        Position::Cursor(_) => unreachable!(),
    };
    let e = Entry::new(
        labels.clone(),
        Timestamp(end as i64),
        line.to_string().into(),
        t.issue(Position::Offset(end)),
    );
    h.tx.as_ref().unwrap().send(vec![e]).await.unwrap();
}

async fn finish(h: ClientHandle) {
    drop(h.tx);
    tokio::time::timeout(Duration::from_secs(30), h.task)
        .await
        .unwrap()
        .unwrap();
}

fn count(f: &crate::metrics::CounterF, pairs: &[(&'static str, &str)]) -> u64 {
    f.get_or_create(&labels(pairs)).get()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_every_entry_grouped_by_tenant_and_stream_and_acks_all() {
    for (encoding, compression) in [
        (PushEncoding::Protobuf, Compression::Gzip),
        (PushEncoding::Json, Compression::Gzip),
        (PushEncoding::Json, Compression::None),
    ] {
        let (url, seen) = server(vec![]).await;
        let m = Arc::new(Metrics::new());
        let mut c = cfg(&url);
        c.tenant_id = Some("t1".into());
        c.encoding = encoding;
        c.compression = compression;
        c.external_labels.insert("cluster".into(), "k".into());
        let limits = LimitsConfig {
            max_line_size: 30,
            ..Default::default()
        };
        let h = start(&c, &limits, m.clone(), Mode::Push, Duration::from_secs(5)).unwrap();
        let host = h.name.clone();
        let t = Tracker::new(Position::Offset(0));
        let a = LabelSet::new([("app", "a"), ("__path__", "/x")]);
        let b = LabelSet::new([("app", "b")]);
        let t2 = b.with("__tenant_id__", "t2");
        for i in 0..50 {
            send(&h, &t, &a, &format!("a{i}")).await;
            send(&h, &t, &b, &format!("b{i}")).await;
        }
        send(&h, &t, &a, &"x".repeat(31)).await; // too long: dropped
        send(&h, &t, &t2, "other tenant").await;
        let lonely = LabelSet::new([("__path__", "/x")]);
        send(&h, &t, &lonely, "no labels but external").await;
        let end = t.issued();
        finish(h).await;
        assert_eq!(t.committed(), end, "{encoding:?}");
        assert!(!t.is_poisoned());

        let l = |app: &str| match encoding {
            PushEncoding::Protobuf => format!("{{app=\"{app}\", cluster=\"k\"}}"),
            PushEncoding::Json => format!("app={app},cluster=k"),
        };
        let cl = match encoding {
            PushEncoding::Protobuf => "{cluster=\"k\"}".to_string(),
            PushEncoding::Json => "cluster=k".to_string(),
        };
        let got = lines_by_stream(&seen, Some("t1"));
        let want_a: Vec<String> = (0..50).map(|i| format!("a{i}")).collect();
        let want_b: Vec<String> = (0..50).map(|i| format!("b{i}")).collect();
        assert_eq!(
            got,
            vec![
                (l("a"), want_a),
                (l("b"), want_b),
                (cl, vec!["no labels but external".to_string()]),
            ]
        );
        assert_eq!(
            lines_by_stream(&seen, Some("t2")),
            vec![(l("b"), vec!["other tenant".to_string()])]
        );
        assert!(seen.lock().unwrap().iter().all(|r| r.tenant.is_some()));
        if encoding == PushEncoding::Json && compression == Compression::Gzip {
            assert!(seen
                .lock()
                .unwrap()
                .iter()
                .all(|r| r.content_encoding.as_deref() == Some("gzip")));
        }
        let drop_l = [
            ("host", host.as_str()),
            ("tenant", "t1"),
            ("reason", "line_too_long"),
        ];
        assert_eq!(count(&m.dropped_entries_total, &drop_l), 1);
        assert_eq!(count(&m.dropped_bytes_total, &drop_l), 31);
        assert_eq!(
            count(&m.sent_entries_total, &[("host", host.as_str())]),
            102
        );
        let sent = count(&m.sent_bytes_total, &[("host", host.as_str())]);
        let body: usize = seen.lock().unwrap().iter().map(|r| r.body.len()).sum();
        assert_eq!(sent, body as u64);
        assert_eq!(
            count(&m.encoded_bytes_total, &[("host", host.as_str())]),
            sent
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncates_long_lines_and_drops_unlabelled_entries() {
    let (url, seen) = server(vec![]).await;
    let m = Arc::new(Metrics::new());
    let limits = LimitsConfig {
        max_line_size: 4,
        max_line_size_truncate: true,
        ..Default::default()
    };
    let h = start(
        &cfg(&url),
        &limits,
        m.clone(),
        Mode::Push,
        Duration::from_secs(5),
    )
    .unwrap();
    let host = h.name.clone();
    let t = Tracker::new(Position::Offset(0));
    send(&h, &t, &LabelSet::new([("app", "a")]), "abcé€").await;
    send(&h, &t, &LabelSet::new([("__x", "y")]), "unlabelled").await;
    let end = t.issued();
    finish(h).await;
    assert_eq!(t.committed(), end);
    assert_eq!(
        lines_by_stream(&seen, None),
        vec![("{app=\"a\"}".to_string(), vec!["abc".to_string()])]
    );
    let mutated = [
        ("host", host.as_str()),
        ("tenant", ""),
        ("reason", "line_too_long"),
    ];
    assert_eq!(count(&m.mutated_entries_total, &mutated), 1);
    assert_eq!(count(&m.mutated_bytes_total, &mutated), 5);
    let empty = [
        ("host", host.as_str()),
        ("tenant", ""),
        ("reason", "empty_labels"),
    ];
    assert_eq!(count(&m.dropped_entries_total, &empty), 1);
}

async fn run_script(
    script: Vec<u16>,
    tweak: impl FnOnce(&mut ClientConfig),
) -> (Arc<Tracker>, Position, Seen, Arc<Metrics>, String) {
    let (url, seen) = server(script).await;
    let m = Arc::new(Metrics::new());
    let mut c = cfg(&url);
    tweak(&mut c);
    let h = start(
        &c,
        &LimitsConfig::default(),
        m.clone(),
        Mode::Push,
        Duration::from_secs(5),
    )
    .unwrap();
    let host = h.name.clone();
    let t = Tracker::new(Position::Offset(0));
    let l = LabelSet::new([("app", "a")]);
    for i in 0..3 {
        send(&h, &t, &l, &format!("line {i}")).await;
    }
    let end = t.issued();
    finish(h).await;
    (t, end, seen, m, host)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_429_with_identical_bodies_then_acks() {
    let (t, end, seen, m, host) = run_script(vec![429, 429], |_| {}).await;
    assert_eq!(t.committed(), end);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|r| r.body == seen[0].body));
    assert_eq!(
        count(
            &m.batch_retries_total,
            &[("host", host.as_str()), ("tenant", "")]
        ),
        2
    );
    assert_eq!(count(&m.sent_entries_total, &[("host", host.as_str())]), 3);
    let text = m.encode();
    assert!(
        text.contains("promtail_request_duration_seconds_count{status_code=\"429\""),
        "{text}"
    );
    assert!(
        text.contains("promtail_request_duration_seconds_count{status_code=\"204\""),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drops_400_at_once_counted_and_acked() {
    let (t, end, seen, m, host) = run_script(vec![400], |_| {}).await;
    assert_eq!(t.committed(), end);
    assert_eq!(seen.lock().unwrap().len(), 1);
    let l = [
        ("host", host.as_str()),
        ("tenant", ""),
        ("reason", "ingester_error"),
    ];
    assert_eq!(count(&m.dropped_entries_total, &l), 3);
    assert_eq!(count(&m.dropped_bytes_total, &l), 18);
    assert_eq!(count(&m.sent_entries_total, &[("host", host.as_str())]), 0);
    assert_eq!(
        count(
            &m.batch_retries_total,
            &[("host", host.as_str()), ("tenant", "")]
        ),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drops_rate_limited_at_once_when_configured() {
    let (t, end, seen, m, host) = run_script(vec![429], |c| {
        c.drop_rate_limited_batches = true;
        c.tenant_id = Some("ten".into());
    })
    .await;
    assert_eq!(t.committed(), end);
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert_eq!(seen.lock().unwrap()[0].tenant.as_deref(), Some("ten"));
    let l = [
        ("host", host.as_str()),
        ("tenant", "ten"),
        ("reason", "rate_limited"),
    ];
    assert_eq!(count(&m.dropped_entries_total, &l), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gives_up_after_max_retries_attempts() {
    let (t, end, seen, m, host) = run_script(vec![500, 503, 500, 500], |c| {
        c.backoff_config.max_retries = 3;
    })
    .await;
    assert_eq!(t.committed(), end);
    assert_eq!(seen.lock().unwrap().len(), 3);
    let l = [
        ("host", host.as_str()),
        ("tenant", ""),
        ("reason", "ingester_error"),
    ];
    assert_eq!(count(&m.dropped_entries_total, &l), 3);
    assert_eq!(
        count(
            &m.batch_retries_total,
            &[("host", host.as_str()), ("tenant", "")]
        ),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_timeout_abandons_unaccepted_entries_without_ack() {
    let (url, seen) = server(vec![503; 100_000]).await;
    let m = Arc::new(Metrics::new());
    let mut c = cfg(&url);
    c.backoff_config.max_retries = 0; // forever
    c.backoff_config.min_period = Duration::from_millis(20);
    c.backoff_config.max_period = Duration::from_millis(40);
    let h = start(
        &c,
        &LimitsConfig::default(),
        m.clone(),
        Mode::Push,
        Duration::from_millis(300),
    )
    .unwrap();
    let host = h.name.clone();
    let t = Tracker::new(Position::Offset(0));
    send(&h, &t, &LabelSet::new([("app", "a")]), "never accepted").await;
    // Let the first attempt fail, so the batch is in its retry loop.
    while seen.lock().unwrap().is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    finish(h).await;
    assert_eq!(t.committed(), Position::Offset(0));
    assert!(t.is_poisoned());
    let l = [
        ("host", host.as_str()),
        ("tenant", ""),
        ("reason", "ingester_error"),
    ];
    assert_eq!(count(&m.dropped_entries_total, &l), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_errors_are_retried() {
    // A port with nothing listening: every attempt is refused.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/loki/api/v1/push", l.local_addr().unwrap());
    drop(l);
    let m = Arc::new(Metrics::new());
    let mut c = cfg(&url);
    c.backoff_config.max_retries = 2;
    let h = start(
        &c,
        &LimitsConfig::default(),
        m.clone(),
        Mode::Push,
        Duration::from_secs(5),
    )
    .unwrap();
    let host = h.name.clone();
    let t = Tracker::new(Position::Offset(0));
    send(&h, &t, &LabelSet::new([("app", "a")]), "x").await;
    let end = t.issued();
    finish(h).await;
    assert_eq!(t.committed(), end);
    assert_eq!(
        count(
            &m.batch_retries_total,
            &[("host", host.as_str()), ("tenant", "")]
        ),
        1
    );
    let l = [
        ("host", host.as_str()),
        ("tenant", ""),
        ("reason", "ingester_error"),
    ];
    assert_eq!(count(&m.dropped_entries_total, &l), 1);
    assert!(m.encode().contains("status_code=\"-1\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_prints_and_acks() {
    let m = Arc::new(Metrics::new());
    let c = ClientConfig::default(); // no URL needed
    let h = start(
        &c,
        &LimitsConfig::default(),
        m,
        Mode::DryRun,
        Duration::from_secs(1),
    )
    .unwrap();
    assert_eq!(h.name, "dry-run");
    let t = Tracker::new(Position::Offset(0));
    send(&h, &t, &LabelSet::new([("app", "a")]), "printed").await;
    let end = t.issued();
    finish(h).await;
    assert_eq!(t.committed(), end);
}

#[test]
fn start_reports_config_errors() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut c = ClientConfig {
            url: "http://127.0.0.1:1/x".into(),
            ..Default::default()
        };
        c.tls_config.ca_file = Some("/nonexistent".into());
        let e = start(
            &c,
            &LimitsConfig::default(),
            Arc::new(Metrics::new()),
            Mode::Push,
            Duration::ZERO,
        )
        .err()
        .unwrap();
        assert!(e.contains("tls_config.ca_file"), "{e}");
    });
}

/// A source whose every chunk is one entry; counts the chunks handed out.
struct Counting {
    taken: Arc<std::sync::atomic::AtomicUsize>,
    tracker: Arc<Tracker>,
    stop: watch::Receiver<bool>,
}

impl EntrySource for Counting {
    fn closing(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut stop = self.stop.clone();
        async move {
            let _ = stop.wait_for(|s| *s).await;
        }
    }
    fn next_chunk(&mut self) -> impl Future<Output = Option<Vec<Entry>>> + Send {
        let stopped = *self.stop.borrow();
        let n = self.taken.load(std::sync::atomic::Ordering::SeqCst) as u64;
        let e = Entry::new(
            LabelSet::new([("app", "a")]),
            Timestamp(n as i64),
            format!("line {n}").into(),
            self.tracker.issue(Position::Offset(n + 1)),
        );
        let taken = self.taken.clone();
        async move {
            if stopped {
                return None;
            }
            // Counted only when handed out (a dropped future takes nothing).
            taken.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Some(vec![e])
        }
    }
}

/// A spool lane reads ahead by one batch, not two: while a push hangs,
/// its batcher takes the entries of the batch being pushed, of the one
/// queued behind it, and the first of the next — and then waits, leaving
/// the rest in the spool instead of holding a third batch in memory. Told
/// to stop while it waits, it still makes its final flush, cut at the
/// shutdown deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spool_lane_holds_one_batch_queued_behind_a_hanging_push() {
    // A Loki that takes the connection and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/loki/api/v1/push", listener.local_addr().unwrap());
    let (conn_tx, mut conn_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let _ = conn_tx.send(s);
        }
    });
    let mut c = cfg(&url);
    c.timeout = Duration::from_secs(3600);
    let (_, senders) = SenderFactory::new(&c, Arc::new(Metrics::new())).unwrap();
    let prep = Prep::new(
        Router::new(&BTreeMap::new(), None),
        &LimitsConfig::default(),
        senders.metrics.clone(),
    );
    // Every entry closes the batch before it; batchwait never expires.
    let batcher = Batcher::new(1, Duration::from_secs(3600));
    let (tx, rx) = mpsc::channel::<Batch>(1);
    let task = AbortOnDrop(senders.spawn(rx, Arc::new(Pace::default())));
    let dispatch = Dispatch::Single { tx, task, senders };
    let taken = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (stop_tx, stop) = watch::channel(false);
    let tracker = Tracker::new(Position::Offset(0));
    let src = Counting {
        taken: taken.clone(),
        tracker: tracker.clone(),
        stop,
    };
    let batcher_task = tokio::spawn(run_batcher(
        src,
        prep,
        batcher,
        dispatch,
        Duration::from_secs(1),
    ));
    // The first batch is being pushed (and hangs) ...
    let _held = conn_rx.recv().await.unwrap();
    // ... and the batcher, given every chance to read on, stops at three.
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        if taken.load(std::sync::atomic::Ordering::SeqCst) > 3 {
            break;
        }
    }
    assert_eq!(taken.load(std::sync::atomic::Ordering::SeqCst), 3);
    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(60), batcher_task)
        .await
        .expect("the batcher finishes once told to stop")
        .unwrap();
    // Nothing was accepted: no position moved.
    assert_eq!(tracker.committed(), Position::Offset(0));
}
