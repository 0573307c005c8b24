//! End to end: deploy/base's `node-journal` job exactly as shipped (read
//! from deploy/base/promtail.yaml; only the journal path and Loki's URL are
//! this test's) with the real binary, on REAL journal files (made with
//! `systemd-journal-remote`) read through the real `journalctl`.
//!
//! The kubelet (klog text and `--logging-format=json`) and containerd
//! entries arrive once each with the labels `unit`, `node_name` and a
//! `level` from the line (the kubelet writes every line at priority info),
//! the journal's timestamp (never klog's year-less header time), and
//! `k8s_pod`/`pod_uid` structured metadata exactly on the lines naming a
//! pod. The multi-line klog records journald split into entries — one of
//! them interleaved with containerd's, one the journal's last two entries —
//! arrive joined; the saved cursor still reaches the last entry, so a stop
//! and restart with more entries ships only the new ones. A record still
//! open at a stop is read again after the restart and arrives once, whole.
//!
//! Also `json: true`: the whole entry as a JSON object, as Promtail sends it.
//! Skips (with a message) when systemd-journal-remote or journalctl is
//! missing. Every wait has a generous give-up bound; nothing asserts
//! timings.

#[path = "support/agent.rs"]
mod agent;
#[path = "support/journal.rs"]
mod journal;
#[path = "support/receiver.rs"]
mod receiver;

use agent::{Agent, Setup};
use journal::{journal_dir, now_us, write_journal, JEntry};
use receiver::{Received, Receiver};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

const GIVE_UP: Duration = Duration::from_secs(120);
const KUBELET: &str = "kubelet.service";
const CONTAINERD: &str = "containerd.service";
const UID: &str = "6dfd786b-bf36-4c33-a948-83f2b1e73ef6";

/// What one shipped entry must look like.
#[derive(Clone, Debug)]
struct Want {
    unit: &'static str,
    level: &'static str,
    /// `k8s_pod`, `pod_uid` metadata (absent: `None`).
    pod: Option<&'static str>,
    uid: Option<&'static str>,
    /// The journal timestamp of its (first) entry, ns.
    ts_ns: i64,
}

/// Journal entries and the entries that must arrive for them.
#[derive(Default)]
struct Batch {
    entries: Vec<JEntry>,
    want: BTreeMap<String, Want>,
    next_us: u64,
}

impl Batch {
    fn new(base_us: u64) -> Batch {
        Batch {
            next_us: base_us,
            ..Batch::default()
        }
    }

    /// One journal entry, 250 µs after the last.
    fn entry(&mut self, unit: &'static str, message: &str) -> u64 {
        let us = self.next_us;
        self.next_us += 250;
        self.entries.push(JEntry {
            unit,
            message: message.as_bytes().to_vec(),
            us,
        });
        us
    }

    /// A record of one or more journal entries (`lines`) of `unit`, shipped
    /// as one entry with the first one's timestamp.
    fn record(&mut self, unit: &'static str, lines: &[&str], want: Want) -> &mut Self {
        self.split_record(unit, lines, want, &[])
    }

    /// Like [`record`](Self::record), with `between` entries of another unit
    /// after the record's first entry (written while journald was splitting
    /// the record), each shipped on its own.
    fn split_record(
        &mut self,
        unit: &'static str,
        lines: &[&str],
        want: Want,
        between: &[(&'static str, &str, Want)],
    ) -> &mut Self {
        let us = self.entry(unit, lines[0]);
        for (u, l, w) in between {
            let bus = self.entry(u, l);
            self.want.insert(
                l.to_string(),
                Want {
                    unit: u,
                    ts_ns: bus as i64 * 1000,
                    ..w.clone()
                },
            );
        }
        for l in &lines[1..] {
            self.entry(unit, l);
        }
        self.want.insert(
            lines.join("\n"),
            Want {
                unit,
                ts_ns: us as i64 * 1000,
                ..want
            },
        );
        self
    }
}

fn want(level: &'static str, pod: Option<&'static str>, uid: Option<&'static str>) -> Want {
    Want {
        unit: "",
        level,
        pod,
        uid,
        ts_ns: 0,
    }
}

const WEB0: Option<&str> = Some("shop/web-0");
const CREATING: &str = "I0120 11:00:00.200187    2941 kuberuntime_manager.go:1012] \"Creating PodSandbox for pod\" pod=\"shop/web-0\"";
const SHIM_WARNING: &str = "time=\"2024-01-20T10:00:05.000140Z\" level=warning msg=\"cleaning up after shim disconnected\" id=f7be1589a1359134a74dfb0d14c7d9c803a86b908843c47e27559121486c6635 namespace=k8s.io";

/// The first line of an exec probe's failure: its output (`output=<`)
/// follows on lines of its own.
fn probe_header() -> String {
    format!("I0120 11:00:05.000200    2941 prober.go:107] \"Probe failed\" probeType=\"Liveness\" pod=\"shop/web-0\" podUID=\"{UID}\" containerName=\"web\" probeResult=\"failure\" output=<")
}

/// SIGTERM; the agent must exit cleanly.
fn stop(agent: &mut Agent) {
    assert!(
        agent.terminate().is_some_and(|s| s.success()),
        "{}",
        agent.log()
    );
}

/// The kubelet (text, then JSON after a restart with
/// `--logging-format=json`) and containerd bringing up web-0. klog's header
/// says January 20th, 11:00 (a node in CET): nothing like the journal's
/// time. Ends with a kubelet latency trace split into two entries: the
/// journal's last entry is a continuation.
fn first_batch(base_us: u64) -> Batch {
    let mut b = Batch::new(base_us);
    let run = format!("time=\"2024-01-20T10:00:00.200987654Z\" level=info msg=\"RunPodSandbox for &PodSandboxMetadata{{Name:web-0,Uid:{UID},Namespace:shop,Attempt:0,}}\"");
    let returns = format!("time=\"2024-01-20T10:00:00.612301187Z\" level=info msg=\"RunPodSandbox for &PodSandboxMetadata{{Name:web-0,Uid:{UID},Namespace:shop,Attempt:0,}} returns sandbox id \\\"e718a0e3f12fc948b9f34a7649ca765ceb991f995d33cefbb63ffdf2e7398117\\\"\"");
    let json_error = format!("{{\"ts\":1705745111300.301,\"caller\":\"kubelet/pod_workers.go:1298\",\"msg\":\"Error syncing pod, skipping\",\"pod\":{{\"name\":\"web-0\",\"namespace\":\"shop\"}},\"podUID\":\"{UID}\",\"err\":\"failed to \\\"StartContainer\\\" for \\\"web\\\" with CrashLoopBackOff\"}}");
    let probe = probe_header();
    b.record(
        KUBELET,
        &["Flag --container-runtime-endpoint has been deprecated, This parameter should be set via the config file specified by the Kubelet's --config flag."],
        // A line without a klog header keeps the journal's priority.
        want("info", None, None),
    )
    .record(
        KUBELET,
        &[CREATING],
        want("info", WEB0, None),
    )
    .record(CONTAINERD, &[&run], want("info", WEB0, Some(UID)))
    .record(CONTAINERD, &[&returns], want("info", WEB0, Some(UID)))
    .record(
        KUBELET,
        &["W0120 11:00:07.000112    2941 dns.go:153] \"Nameserver limits exceeded\" err=\"Nameserver limits were exceeded, some nameservers have been omitted, the applied nameserver line is: 10.0.0.2 10.0.0.3 10.0.0.4\""],
        want("warn", None, None),
    )
    .split_record(
        KUBELET,
        &[
            &probe,
            "\tcurl: (7) Failed to connect to localhost port 8080 after 0 ms: Connection refused",
            "\thealth check failed",
            " >",
        ],
        want("info", WEB0, Some(UID)),
        &[(
            CONTAINERD,
            SHIM_WARNING,
            want("warn", None, None),
        )],
    )
    .record(KUBELET, &[&json_error], want("error", WEB0, Some(UID)))
    .record(
        KUBELET,
        &[
            "I0120 11:00:09.512345    2941 trace.go:236] Trace[1711291813]: \"Calculate volume metrics of data for pod shop/web-0\" (20-Jan-2024 11:00:07.988) (total time: 1523ms):",
            "Trace[1711291813]: [1.523456789s] [1.523456789s] END",
        ],
        want("info", None, None),
    );
    b
}

/// After the restart: the kubelet now logs JSON; a sandbox that failed.
fn second_batch(base_us: u64) -> Batch {
    let mut b = Batch::new(base_us);
    let failed = "time=\"2024-01-20T10:00:02.305490871Z\" level=error msg=\"RunPodSandbox for &PodSandboxMetadata{Name:coredns-76f75df574-x7k2p,Uid:9fb80d36-ddf6-4f6c-a769-a3101377312f,Namespace:kube-system,Attempt:1,} failed, error\" error=\"failed to setup network for sandbox \\\"cc54bfc67611ecbd4e783cc1ba3435abd86380e06d8490b78427ac9ccdfa0077\\\": plugin type=\\\"flannel\\\" failed (add): loadFlannelSubnetEnv failed: open /run/flannel/subnet.env: no such file or directory\"";
    let probe = format!("{{\"ts\":1705745112000.2,\"caller\":\"prober/prober.go:107\",\"msg\":\"Probe failed\",\"v\":1,\"probeType\":\"Readiness\",\"pod\":{{\"name\":\"web-0\",\"namespace\":\"shop\"}},\"podUID\":\"{UID}\",\"containerName\":\"web\",\"probeResult\":\"failure\",\"output\":\"HTTP probe failed with statuscode: 503\"}}");
    b.record(
        KUBELET,
        &["{\"ts\":1705745100012.3457,\"caller\":\"app/server.go:487\",\"msg\":\"Kubelet version\",\"v\":0,\"kubeletVersion\":\"v1.29.1\"}"],
        want("info", None, None),
    )
    .record(
        CONTAINERD,
        &[failed],
        want(
            "error",
            Some("kube-system/coredns-76f75df574-x7k2p"),
            Some("9fb80d36-ddf6-4f6c-a769-a3101377312f"),
        ),
    )
    .record(KUBELET, &[&probe], want("info", WEB0, Some(UID)));
    b
}

/// deploy/base's node-journal scrape config reading `path`, as the
/// `scrape_configs:` section of the test's config.
fn node_journal_job(path: &Path) -> String {
    let text = include_str!("../deploy/base/promtail.yaml");
    let cfg: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).expect("deploy config parses");
    let mut job = cfg["scrape_configs"]
        .as_sequence()
        .and_then(|s| s.iter().find(|j| j["job_name"] == "node-journal"))
        .cloned()
        .expect("deploy/base/promtail.yaml has a node-journal job");
    job["journal"]["path"] = path.display().to_string().into();
    let mut out = serde_yaml_ng::Mapping::new();
    out.insert("scrape_configs".into(), vec![job].into());
    serde_yaml_ng::to_string(&out).expect("serialise the job")
}

fn metadata<'a>(e: &'a Received, key: &str) -> Option<&'a str> {
    e.metadata
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Waits for `want.len()` entries, then checks each against `want` and
/// that none arrived twice.
fn assert_shipped_once(rx: &Receiver, want: &BTreeMap<String, Want>, agent: &Agent) {
    assert!(
        rx.wait_for_count(want.len(), GIVE_UP),
        "got {} of {}: {:#?}\n{}",
        rx.count(),
        want.len(),
        rx.lines(),
        agent.log()
    );
    // A moment for anything extra (a duplicate) to show up.
    std::thread::sleep(Duration::from_millis(1500));
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for e in rx.entries() {
        let Some(w) = want.get(&e.line) else {
            panic!("unexpected entry {:?} {:?}", e.line, e.labels);
        };
        let keys: Vec<&str> = e.labels.keys().map(String::as_str).collect();
        // `cluster`: the test config's external label.
        assert_eq!(
            keys,
            ["cluster", "job", "level", "node_name", "unit"],
            "{}",
            e.line
        );
        assert_eq!(e.labels["unit"], w.unit, "{}", e.line);
        assert_eq!(e.labels["level"], w.level, "{}", e.line);
        assert_eq!(e.labels["node_name"], "node-1");
        assert_eq!(e.labels["job"], "node-journal");
        assert_eq!(e.ts_ns, w.ts_ns, "the journal's timestamp: {}", e.line);
        assert_eq!(metadata(&e, "k8s_pod"), w.pod, "{}", e.line);
        assert_eq!(metadata(&e, "pod_uid"), w.uid, "{}", e.line);
        if w.unit == KUBELET && e.line.starts_with(['I', 'W', 'E', '{']) {
            assert!(metadata(&e, "caller").is_some(), "{}", e.line);
        }
        *seen.entry(e.line).or_insert(0) += 1;
    }
    let dup: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dup.is_empty(), "duplicates: {dup:?}");
    assert_eq!(seen.len(), want.len(), "{}", agent.log());
}

/// The realtime (µs) of the cursor saved for `job`: its `t=` field.
fn saved_cursor_time(positions: &Path, job: &str) -> Option<u64> {
    let text = std::fs::read_to_string(positions).ok()?;
    let line = text
        .lines()
        .find(|l| l.contains(&format!("journal-{job}")))?;
    let t = line.split(';').find_map(|f| f.strip_prefix("t="))?;
    let hex: String = t.chars().take_while(char::is_ascii_hexdigit).collect();
    u64::from_str_radix(&hex, 16).ok()
}

#[test]
fn deploy_node_journal_job_ships_kubelet_and_containerd_with_pod_metadata() {
    let Some((tmp, journal)) = journal_dir() else {
        return;
    };
    let dir = tmp.path();
    // Within the job's max_age (12h).
    let base = now_us() - 120_000_000;
    let first = first_batch(base);
    write_journal(&journal, "a", &first.entries);
    let rx = Receiver::start();
    let mut s = Setup::new(dir, &rx.push_url());
    s.scrape_configs = Some(node_journal_job(&journal));
    let mut agent = Agent::start(dir, &s);
    let mut want = first.want.clone();
    assert_eq!(want.len(), 9);
    // The trailing trace is released by max_wait_time while the agent runs.
    assert_shipped_once(&rx, &want, &agent);

    // Delivered, so the cursor reaches the journal's last entry, a
    // continuation joined into the trace's entry.
    stop(&mut agent);
    let last_us = first.entries.last().map(|e| e.us);
    assert_eq!(
        saved_cursor_time(&dir.join("positions.yaml"), "node-journal"),
        last_us,
        "{:?}",
        std::fs::read_to_string(dir.join("positions.yaml"))
    );

    // More entries in a second journal file; the restarted agent ships
    // only those.
    let second = second_batch(first.next_us + 1_000_000);
    write_journal(&journal, "b", &second.entries);
    agent.restart(&s);
    want.extend(second.want.clone());
    assert_shipped_once(&rx, &want, &agent);
    stop(&mut agent);
}

/// The agent stopped while `klog-journal` holds a record open (its lines
/// read, `max_wait_time` not yet passed): the record's entries were never
/// acknowledged, so the saved cursor stays before them and the restarted
/// agent reads them again — the record arrives once, whole. Entries read
/// after its first one may arrive twice; nothing else does. (If this
/// machine is so slow that the record was sent before the stop, the test
/// still holds and says so.)
#[test]
fn a_record_open_at_a_stop_is_read_again_after_the_restart() {
    let Some((tmp, journal)) = journal_dir() else {
        return;
    };
    let dir = tmp.path();
    let mut b = Batch::new(now_us() - 120_000_000);
    let probe = probe_header();
    b.record(KUBELET, &[CREATING], want("info", WEB0, None))
        .split_record(
            KUBELET,
            &[&probe, "\thealth check failed", " >"],
            want("info", WEB0, Some(UID)),
            &[(CONTAINERD, SHIM_WARNING, want("warn", None, None))],
        );
    write_journal(&journal, "a", &b.entries);
    let record = format!("{probe}\n\thealth check failed\n >");
    let rx = Receiver::start();
    let mut s = Setup::new(dir, &rx.push_url());
    s.scrape_configs = Some(node_journal_job(&journal));
    let mut agent = Agent::start(dir, &s);
    // Everything but the open record, then stop at once.
    assert!(
        rx.wait_for_count(b.want.len() - 1, GIVE_UP),
        "{}",
        agent.log()
    );
    stop(&mut agent);
    let held = !rx.lines().contains(&record);
    eprintln!(
        "the record was {}sent before the stop",
        if held { "not " } else { "" }
    );
    agent.restart(&s);
    assert!(
        rx.wait_until(GIVE_UP, |rx| rx.lines().contains(&record)),
        "{}",
        agent.log()
    );
    // A moment for anything extra (a duplicate) to show up.
    std::thread::sleep(Duration::from_millis(1500));
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for e in rx.entries() {
        let w = b
            .want
            .get(&e.line)
            .unwrap_or_else(|| panic!("unexpected {:?}", e.line));
        assert_eq!(e.ts_ns, w.ts_ns, "{}", e.line);
        *seen.entry(e.line).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), b.want.len(), "{seen:?}");
    assert_eq!(seen[&record], 1, "the record arrives once, whole");
    for (line, n) in &seen {
        assert!(*n == 1 || line == SHIM_WARNING, "{line} arrived {n} times");
    }
    let twice: Vec<&String> = seen
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(l, _)| l)
        .collect();
    eprintln!("sent twice: {twice:?}");
    stop(&mut agent);
}

#[test]
fn json_true_ships_the_whole_entry_as_json() {
    let Some((tmp, journal)) = journal_dir() else {
        return;
    };
    let dir = tmp.path();
    let us = now_us() - 60_000_000;
    let message = "I0120 11:00:05.000200    2941 prober.go:107] \"Probe failed\" output=<";
    let entries = [
        JEntry {
            unit: KUBELET,
            message: message.as_bytes().to_vec(),
            us,
        },
        JEntry {
            unit: "cron.service",
            message: b"not matched".to_vec(),
            us: us + 1,
        },
    ];
    write_journal(&journal, "a", &entries);
    let rx = Receiver::start();
    let mut s = Setup::new(dir, &rx.push_url());
    s.scrape_configs = Some(format!(
        r#"scrape_configs:
  - job_name: raw
    journal:
      path: {}
      json: true
      matches: _SYSTEMD_UNIT=kubelet.service
      labels:
        job: raw
"#,
        journal.display()
    ));
    let mut agent = Agent::start(dir, &s);
    assert!(rx.wait_for_count(1, GIVE_UP), "{}", agent.log());
    std::thread::sleep(Duration::from_millis(1000));
    let got = rx.entries();
    assert_eq!(got.len(), 1, "{got:?}");
    let e = &got[0];
    assert_eq!(e.ts_ns, us as i64 * 1000);
    assert_eq!(e.labels.get("job").map(String::as_str), Some("raw"));
    // Go's encoder: `<` escaped; the address fields (`__CURSOR`, …) left
    // out; keys sorted.
    assert!(e.line.contains(r#"output=\u003c"#), "{}", e.line);
    let v: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&e.line).expect("the line is a JSON object");
    // The map's keys are sorted; so must their places in the line be.
    let at: Vec<Option<usize>> = v
        .keys()
        .map(|k| e.line.find(&format!("\"{k}\":")))
        .collect();
    assert!(
        at.iter().all(Option::is_some) && at.is_sorted(),
        "{}",
        e.line
    );
    assert!(v.keys().all(|k| !k.starts_with("__")), "{}", e.line);
    assert_eq!(v["MESSAGE"], message);
    assert_eq!(v["_SYSTEMD_UNIT"], KUBELET);
    assert_eq!(v["_HOSTNAME"], "node-1");
    assert_eq!(v["PRIORITY"], "6");
    stop(&mut agent);
}
