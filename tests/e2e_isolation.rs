//! End to end: one destination in trouble never holds another back. Two
//! clients, one down for a minute; two tenants on one client, one answering
//! 429. With the spool each client and tenant reads at its own pace; without
//! it, tenants are still independent until the memory budget is spent.

#[path = "support/agent.rs"]
mod agent;
#[path = "support/receiver.rs"]
mod receiver;

use agent::{delivered, workload_id, Agent, Setup, Workload};
use receiver::{Mode, Receiver};
use std::path::Path;
use std::time::{Duration, Instant};

fn lines_of(rx: &Receiver) -> Vec<String> {
    rx.entries().into_iter().map(|e| e.line).collect()
}

fn with_spool(setup: &mut Setup, dir: &Path) {
    setup.extra = format!(
        "wal:\n  enabled: true\n  dir: {}\n",
        dir.join("wal").display()
    );
}

/// 12 MB in 20 s: more than any memory budget holds.
fn heavy() -> Workload {
    Workload {
        pods: 10,
        lines: 8000,
        round: Duration::from_micros(2500),
        rotate_at: Some(1 << 20),
        max_files: None,
        pad: 140,
        traced: None,
    }
}

fn all_arrived(w: &Workload, rx: &Receiver) -> bool {
    delivered(w, lines_of(rx).iter().map(String::as_str)).lost() == 0
}

#[test]
fn two_clients_one_down_for_a_minute_the_other_keeps_delivering() {
    let dir = tempfile::tempdir().unwrap();
    let down = Receiver::start();
    let up = Receiver::start();
    down.set_mode(Mode::Status(503));
    let outage = Instant::now();
    let mut setup = Setup::new(dir.path(), &down.push_url());
    setup.client_extra = format!(
        "  - url: {}\n    batchwait: 200ms\n    backoff_config:\n      min_period: 50ms\n      max_period: 500ms\n      max_retries: 1000\n",
        up.push_url()
    );
    with_spool(&mut setup, dir.path());
    let w = heavy();
    let logs = w.create(&setup.logs, "two");
    let mut agent = Agent::start(dir.path(), &setup);
    assert!(agent.wait_ready(Duration::from_secs(60)), "{}", agent.log());
    w.run(logs, |_| {});
    // The healthy client gets everything while the other is still down.
    let ok = up.wait_until(Duration::from_secs(40), |r| all_arrived(&w, r));
    assert!(
        ok,
        "the healthy client was held back: {} of {} lines\n{}",
        up.count(),
        w.total(),
        agent.log()
    );
    assert!(
        down.count() == 0 && outage.elapsed() < Duration::from_secs(60),
        "checked during the outage"
    );
    let d = delivered(&w, lines_of(&up).iter().map(String::as_str));
    assert_eq!((d.duplicates, d.in_order.clone()), (0, Ok(())));
    // A minute later the other one comes back and catches up.
    std::thread::sleep(Duration::from_secs(60).saturating_sub(outage.elapsed()));
    down.set_mode(Mode::Normal);
    let ok = down.wait_until(Duration::from_secs(120), |r| all_arrived(&w, r));
    let d = delivered(&w, lines_of(&down).iter().map(String::as_str));
    assert!(ok, "{} lines lost for the client that was down", d.lost());
    assert_eq!((d.duplicates, d.in_order), (0, Ok(())));
    assert!(agent.terminate().unwrap().success());
}

/// Two tenants on one client: pods `ta…` go to tenant `ta`, pods `tb…` to
/// `tb` (the reserved `__tenant_id__` label).
fn two_tenants(setup: &mut Setup) {
    let logs = setup.logs.display().to_string();
    setup.scrape_configs = Some(format!(
        r#"scrape_configs:
  - job_name: a
    static_configs:
      - targets: [localhost]
        labels:
          job: a
          __tenant_id__: ta
          __path__: {logs}/default_ta*/*/*.log
    pipeline_stages: [cri: {{}}]
  - job_name: b
    static_configs:
      - targets: [localhost]
        labels:
          job: b
          __tenant_id__: tb
          __path__: {logs}/default_tb*/*/*.log
    pipeline_stages: [cri: {{}}]
"#
    ));
}

/// The lines of one tenant's pods (pods are numbered per tenant).
fn tenant_lines(rx: &Receiver, tenant: &str) -> Vec<String> {
    rx.entries()
        .into_iter()
        .filter(|e| e.tenant == tenant)
        .map(|e| e.line)
        .collect()
}

fn throttled_tenant(w: Workload, spool: bool) {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start();
    rx.refuse_tenant("ta", Some(429));
    let mut setup = Setup::new(dir.path(), &rx.push_url());
    two_tenants(&mut setup);
    if spool {
        with_spool(&mut setup, dir.path());
    }
    let mut logs = w.create(&setup.logs, "ta");
    logs.extend(w.create(&setup.logs, "tb"));
    let mut agent = Agent::start(dir.path(), &setup);
    assert!(agent.wait_ready(Duration::from_secs(60)), "{}", agent.log());
    // Both tenants' pods are written together (pod numbers repeat per
    // tenant: the first half of `logs` is `ta`).
    let both = Workload {
        pods: w.pods * 2,
        ..w.clone()
    };
    both.run(logs, |_| {});
    let ok = rx.wait_until(Duration::from_secs(60), |r| {
        let l = tenant_lines(r, "tb");
        delivered(
            &w,
            l.iter()
                .map(|s| shift(s, w.pods))
                .collect::<Vec<_>>()
                .iter()
                .map(String::as_str),
        )
        .lost()
            == 0
    });
    assert!(
        ok,
        "tenant tb was held back by tenant ta's 429s: {} lines\n{}",
        tenant_lines(&rx, "tb").len(),
        agent.log()
    );
    assert!(tenant_lines(&rx, "ta").is_empty(), "ta is still throttled");
    rx.refuse_tenant("ta", None);
    let ok = rx.wait_until(Duration::from_secs(120), |r| {
        delivered(&w, tenant_lines(r, "ta").iter().map(String::as_str)).lost() == 0
    });
    assert!(ok, "tenant ta did not catch up:\n{}", agent.log());
    for t in ["ta", "tb"] {
        let l: Vec<String> = tenant_lines(&rx, t)
            .iter()
            .map(|s| {
                if t == "tb" {
                    shift(s, w.pods)
                } else {
                    s.clone()
                }
            })
            .collect();
        let d = delivered(&w, l.iter().map(String::as_str));
        assert_eq!(
            (d.lost(), d.duplicates, d.in_order),
            (0, 0, Ok(())),
            "tenant {t}"
        );
    }
    assert!(agent.terminate().unwrap().success());
}

/// `tb`'s pods are numbered after `ta`'s: renumber them from 0.
fn shift(line: &str, by: usize) -> String {
    let (p, l) = workload_id(line);
    let rest = line.splitn(3, ' ').nth(2).unwrap_or("");
    format!("p{:03} l{l:06} {rest}", p - by)
}

#[test]
fn two_tenants_one_throttled_the_other_keeps_flowing_with_the_spool() {
    throttled_tenant(
        Workload {
            lines: 4000,
            ..heavy()
        },
        true,
    );
}

#[test]
fn two_tenants_one_throttled_the_other_keeps_flowing_in_memory() {
    // Without the spool the throttled tenant's batches wait in memory: fine
    // while they fit in the budget (here ~1 MB of a 4 MiB budget).
    throttled_tenant(
        Workload {
            pods: 5,
            lines: 1000,
            round: Duration::from_millis(5),
            rotate_at: None,
            max_files: None,
            pad: 140,
            traced: None,
        },
        false,
    );
}
