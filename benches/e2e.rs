//! End-to-end benchmark of the real agent: pod log files in → fake Loki out.
//!
//! Run: `cargo bench --bench e2e` (about 2–3 minutes on 2 cores);
//! `E2E_QUICK=1 cargo bench --bench e2e` for a ~40 s smoke run (written to
//! bench-results/e2e-quick.json, not e2e.json). Knobs (env):
//! `E2E_ONE_MIB` (256: input of the 1-file shape), `E2E_FILES` (500),
//! `E2E_PER_FILE_KIB` (512: input per file of the many-file shape),
//! `E2E_RATE` (10000 lines/s in the latency phase), `E2E_LATENCY_SECS` (20;
//! 0 skips the latency phases),
//! `E2E_TRACE` (`on`: the default trace-context detection, as on a node;
//! `off`), `E2E_WARMUP_SECS` (2: lines written in the first seconds are checked but
//! left out of the percentiles), `E2E_SPOOL` (`both`: every phase with the
//! spool off, then on; `off`; `on`), `E2E_BIN` (agent binary; default: build
//! and use target/release/tailtrace), `E2E_KEEP=1` (keep the temp dirs).
//!
//! Design: the agent runs as its own process with a Promtail-style config
//! (`cri: {}`, batchsize 1 MiB, batchwait 1s) against the fake Loki of
//! tests/support/receiver.rs, which runs here and decodes every push; its
//! observer feeds a checker that requires every line exactly once and intact
//! (sequence ids in a bitset, content regenerated and compared). Two shapes,
//! 1 busy file and many files (`<root>/<ns>_<pod>_<uid>/<container>/0.log`),
//! each in two phases: throughput (pre-written input, time from agent start
//! until the last line arrived, CPU and peak RSS of the agent) and latency
//! (a paced writer, CRI timestamp = write time, arrival − timestamp
//! percentiles). Each phase runs with the spool off (in-memory delivery)
//! and on (`wal: {enabled: true}`, the spool in the phase's temp dir).
//! Results go to bench-results/e2e.json and a table.
//!
//! Must never: report figures from a run that lost, duplicated or corrupted a
//! line (it prints FAIL and exits 1), or assert on timings.

#[path = "support/agent.rs"]
mod agent;
#[path = "support/check.rs"]
mod check;
#[path = "support/gen.rs"]
mod gen;
#[path = "support/machine.rs"]
mod machine;
#[path = "../tests/support/receiver.rs"]
mod receiver;
#[path = "support/report.rs"]
mod report;

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use agent::{Agent, Usage};
use check::Checker;
use machine::{machine, sh};
use receiver::{Observer, Options, Receiver};
use report::{f, print_table, verdict};

const MIB: f64 = 1024.0 * 1024.0;
const TARGET_MIB_PER_CORE: f64 = 200.0;
const TARGET_MIB_PER_CORE_MANY: f64 = 150.0;
const TARGET_RSS_MIB: f64 = 30.0;
const TARGET_RSS_MIB_SPOOL: f64 = 40.0;
/// The spool may cost at most this much more CPU per GiB.
const TARGET_SPOOL_OVERHEAD: f64 = 1.25;
const BATCHWAIT_MS: f64 = 1000.0;
const TARGET_P99_MS: f64 = BATCHWAIT_MS + 50.0;

/// The run's knobs, from the environment.
struct Knobs {
    quick: bool,
    one_mib: f64,
    files: usize,
    per_file_kib: f64,
    rate: f64,
    latency_secs: f64,
    warmup_secs: f64,
    keep: bool,
    /// Spool settings to run: false = off, true = on.
    spool: Vec<bool>,
}

fn env_f64(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

impl Knobs {
    fn from_env() -> Knobs {
        let quick = std::env::var("E2E_QUICK").is_ok_and(|v| v != "0" && !v.is_empty());
        let (one, per_file, secs) = if quick {
            (32.0, 64.0, 5.0)
        } else {
            (256.0, 512.0, 20.0)
        };
        Knobs {
            quick,
            one_mib: env_f64("E2E_ONE_MIB", one),
            files: env_f64("E2E_FILES", 500.0).max(1.0) as usize,
            per_file_kib: env_f64("E2E_PER_FILE_KIB", per_file),
            rate: env_f64("E2E_RATE", 10_000.0).max(1.0),
            latency_secs: env_f64("E2E_LATENCY_SECS", secs),
            warmup_secs: env_f64("E2E_WARMUP_SECS", if quick { 1.0 } else { 2.0 }),
            keep: std::env::var("E2E_KEEP").is_ok_and(|v| v != "0" && !v.is_empty()),
            spool: match std::env::var("E2E_SPOOL").as_deref() {
                Ok("off") => vec![false],
                Ok("on") => vec![true],
                _ => vec![false, true],
            },
        }
    }
}

/// `E2E_TRACE` (`on` by default, as users run it; `off`): the default
/// trace-context detection on pod logs.
fn trace_on() -> bool {
    std::env::var("E2E_TRACE").map_or(true, |v| v != "off" && v != "0")
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Everything one phase needs.
struct Rig {
    bin: PathBuf,
    rx: Receiver,
    checker: Checker,
    clk_tck: f64,
    keep: bool,
    /// Problems that make the run a FAIL.
    failures: Vec<String>,
    /// Run the agent with the spool on.
    spool: bool,
}

/// `<root>/<ns>_<pod>_<uid>/<container>/0.log` for file `i`.
fn pod_log_path(root: &Path, i: usize) -> PathBuf {
    let ns = ["default", "shop", "payments", "kube-system", "monitoring"][i % 5];
    let uid = format!(
        "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
        0x5eed_0000u32 + i as u32,
        i % 0xffff,
        i % 0xfff,
        (i * 7) % 0xfff,
        i as u64 * 0x9e37_79b9
    );
    root.join(format!("{ns}_app-{i}-7d9f8c6b5-x{:04}_{uid}", i % 10_000))
        .join(if i % 3 == 0 { "sidecar" } else { "app" })
        .join("0.log")
}

fn temp_dir(keep: bool, tag: &str) -> std::io::Result<(tempfile::TempDir, PathBuf)> {
    let mut td = tempfile::Builder::new()
        .prefix(&format!("tailtrace-e2e-{tag}-"))
        .tempdir()?;
    if keep {
        td.disable_cleanup(true);
    }
    let root = td.path().join("pods");
    fs::create_dir_all(&root)?;
    Ok((td, root))
}

/// Bench-process CPU seconds (the fake Loki and checker run here).
fn self_cpu(clk_tck: f64) -> f64 {
    agent::usage(std::process::id(), clk_tck)
        .map(|u| u.cpu_s)
        .unwrap_or(0.0)
}

/// GET /ready on the agent: true on 200.
fn ready(port: u16) -> bool {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /ready HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    buf.starts_with(b"HTTP/1.1 200")
}

impl Rig {
    fn start_agent(&self, dir: &Path, root: &Path) -> Result<Agent, String> {
        let port = agent::free_port();
        let wal = self.spool.then(|| dir.join("wal"));
        let yaml = agent::config_yaml(
            &self.rx.push_url(),
            root,
            &dir.join("positions.yaml"),
            port,
            wal.as_deref(),
            trace_on(),
        );
        Agent::start(&self.bin, dir, &yaml, port).map_err(|e| format!("cannot start agent: {e}"))
    }

    /// Waits until `n` distinct lines arrived; gives up after `stall` without
    /// progress or when the agent dies. Returns whether all arrived.
    fn wait_all(&self, agent: &mut Agent, n: u64, stall: Duration) -> bool {
        let mut last = (0, Instant::now());
        loop {
            let got = self.checker.distinct();
            if got >= n {
                return true;
            }
            if got != last.0 {
                last = (got, Instant::now());
            } else if last.1.elapsed() > stall || !agent.alive() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops the agent and checks delivery of ids `0..n`; failures are
    /// recorded under `phase`. Returns the check's JSON.
    fn finish(&mut self, phase: &str, mut agent: Agent, n: u64) -> Value {
        let exit = agent.terminate(Duration::from_secs(30));
        // Anything resent on shutdown arrives before the process exits.
        let t = self.checker.lock();
        let (missing, first_missing) = t.missing(n, 10);
        let beyond = t.beyond(n);
        let bad_requests: Vec<_> = self
            .rx
            .requests()
            .into_iter()
            .filter(|r| r.status != 204)
            .map(|r| format!("{} {}", r.status, r.error.unwrap_or_default()))
            .take(5)
            .collect();
        let mut problems = Vec::new();
        if missing > 0 {
            problems.push(format!(
                "{missing} of {n} lines never arrived (first ids {first_missing:?})"
            ));
        }
        if t.duplicates > 0 {
            problems.push(format!("{} duplicated lines", t.duplicates));
        }
        if t.corrupt > 0 {
            problems.push(format!("{} corrupted lines", t.corrupt));
        }
        if t.unparsed + beyond > 0 {
            problems.push(format!(
                "{} lines without a known sequence id",
                t.unparsed + beyond
            ));
        }
        if !bad_requests.is_empty() {
            problems.push(format!("pushes refused: {bad_requests:?}"));
        }
        let exit_ok = exit.is_some_and(|s| s.success());
        if !exit_ok {
            problems.push(format!("agent exit after SIGTERM: {exit:?}"));
        }
        for p in &problems {
            self.failures.push(format!("{phase}: {p}"));
        }
        if !problems.is_empty() {
            for ex in &t.examples {
                eprintln!("  {phase}: {ex}");
            }
            eprintln!("  {phase}: agent log tail:\n{}", agent.log_tail(15));
        }
        json!({
            "expected_lines": n,
            "distinct_received": t.distinct,
            "entries_received": t.entries,
            "missing": missing,
            "duplicates": t.duplicates,
            "corrupt": t.corrupt,
            "unparsed": t.unparsed + beyond,
            "refused_pushes": bad_requests.len(),
            "pushes": self.rx.requests().len(),
            "agent_exit_ok": exit_ok,
            "ok": problems.is_empty(),
            "problems": problems,
        })
    }

    /// Pre-writes about `total_mib` over `files` files, then measures how
    /// fast the agent drains it.
    fn throughput(&mut self, name: &str, files: usize, total_mib: f64) -> Result<Value, String> {
        let (td, root) = temp_dir(self.keep, name).map_err(|e| format!("temp dir: {e}"))?;
        let per_file = (total_mib * MIB / files as f64).max(1.0) as usize;
        let gen_start = Instant::now();
        let base_ts = now_ns();
        let (mut seq, mut records, mut input_bytes) = (0u64, 0u64, 0u64);
        let (mut scratch, mut buf) = (Vec::with_capacity(512), Vec::with_capacity(1 << 20));
        for i in 0..files {
            let path = pod_log_path(&root, i);
            let dir = path.parent().ok_or("no parent")?;
            fs::create_dir_all(dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
            let f = File::create(&path).map_err(|e| format!("create {}: {e}", path.display()))?;
            let mut w = BufWriter::with_capacity(1 << 20, f);
            let mut written = 0usize;
            while written < per_file {
                buf.clear();
                records += gen::cri_record(seq, base_ts + seq as i64 * 1000, &mut scratch, &mut buf)
                    as u64;
                seq += 1;
                written += buf.len();
                w.write_all(&buf).map_err(|e| format!("write: {e}"))?;
            }
            w.flush().map_err(|e| format!("write: {e}"))?;
            input_bytes += written as u64;
        }
        let gen_s = gen_start.elapsed().as_secs_f64();
        let n = seq;
        eprintln!(
            "[{name}] wrote {:.1} MiB, {n} lines ({records} CRI records) in {files} file(s) in {gen_s:.1}s; draining…",
            input_bytes as f64 / MIB
        );

        self.checker.reset(u64::MAX);
        self.rx.clear();
        let self_cpu0 = self_cpu(self.clk_tck);
        let start_ns = now_ns();
        let mut agent = self.start_agent(td.path(), &root)?;
        let pid = agent.pid();
        let stall = Duration::from_secs(60);
        let all = self.wait_all(&mut agent, n, stall);
        let usage = agent::usage(pid, self.clk_tck).unwrap_or_default();
        let rx_cpu = self_cpu(self.clk_tck) - self_cpu0;
        let (last_ns, content_bytes, pushes, t99_s) = {
            let t = self.checker.lock();
            // When 99% of the lines had arrived: the drain without the final
            // partial batch, which waits out batchwait.
            let (mut acc, mut t99) = (0u64, last_ns_or(&t.pushes, t.last_arrival_ns));
            for &(at, k, _) in &t.pushes {
                acc += u64::from(k);
                if acc * 100 >= n * 99 {
                    t99 = at;
                    break;
                }
            }
            let t99_s = (t99 - start_ns) as f64 / 1e9;
            (
                t.last_arrival_ns,
                t.bytes,
                check::push_stats(&t.pushes),
                t99_s,
            )
        };
        if !all {
            eprintln!("[{name}] gave up: no progress for {stall:?} or agent exited");
        }
        let drain_s = ((last_ns - start_ns) as f64 / 1e9).max(1e-3);
        let check = self.finish(&format!("{name} throughput"), agent, n);
        let mib = input_bytes as f64 / MIB;
        Ok(json!({
            "files": files,
            "input_mib": mib,
            "lines": n,
            "cri_records": records,
            "content_mib": content_bytes as f64 / MIB,
            "drain_s": drain_s,
            "lines_per_s": n as f64 / drain_s,
            "mib_per_s": mib / drain_s,
            "agent_cpu_s": usage.cpu_s,
            "agent_cores": usage.cpu_s / drain_s,
            "agent_cpu_s_per_gib": usage.cpu_s / (mib / 1024.0),
            "mib_per_core_s": mib / usage.cpu_s.max(1e-3),
            "peak_rss_mib": usage.hwm_kib as f64 / 1024.0,
            "agent_vol_ctxt_switches_per_1k_lines": usage.vol_ctxt as f64 * 1000.0 / n as f64,
            "drain_s_to_99pct": t99_s,
            "receiver_cpu_s": rx_cpu,
            "push_stats": pushes,
            "check": check,
        }))
    }

    /// A paced writer at `rate` lines/s over `files` files for `secs`;
    /// written→received latency and the agent's memory meanwhile.
    fn latency(&mut self, name: &str, files: usize, k: &Knobs) -> Result<Value, String> {
        let (td, root) = temp_dir(self.keep, name).map_err(|e| format!("temp dir: {e}"))?;
        let mut outs = Vec::with_capacity(files);
        for i in 0..files {
            let path = pod_log_path(&root, i);
            let dir = path.parent().ok_or("no parent")?;
            fs::create_dir_all(dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| format!("create {}: {e}", path.display()))?;
            outs.push(f);
        }
        let warmup_lines = (k.rate * k.warmup_secs) as u64;
        self.checker.reset(warmup_lines);
        self.rx.clear();
        let mut agent = self.start_agent(td.path(), &root)?;
        let pid = agent.pid();
        let ready_by = Instant::now() + Duration::from_secs(30);
        while !ready(agent.port) && Instant::now() < ready_by && agent.alive() {
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!(
            "[{name}] agent ready after {:.2}s; writing {} lines/s over {files} file(s) for {}s…",
            agent.started.elapsed().as_secs_f64(),
            k.rate,
            k.latency_secs
        );
        let cpu0 = agent::usage(pid, self.clk_tck).unwrap_or_default();

        // One write(2) per CRI record, like a container runtime.
        let start = Instant::now();
        let total = (k.rate * k.latency_secs) as u64;
        let (mut seq, mut scratch, mut buf) = (0u64, Vec::new(), Vec::new());
        let mut max_rss_kib = 0u64;
        let mut next_sample = start;
        while seq < total {
            let due = ((start.elapsed().as_secs_f64() * k.rate) as u64).min(total);
            while seq < due {
                buf.clear();
                let ts = now_ns();
                gen::cri_record(seq, ts, &mut scratch, &mut buf);
                let f = &mut outs[(seq % files as u64) as usize];
                // Partials: each CRI record is its own write, as the runtime does.
                for rec in buf.split_inclusive(|&c| c == b'\n') {
                    f.write_all(rec).map_err(|e| format!("write: {e}"))?;
                }
                seq += 1;
            }
            if Instant::now() >= next_sample {
                if let Some(u) = agent::usage(pid, self.clk_tck) {
                    max_rss_kib = max_rss_kib.max(u.rss_kib);
                }
                next_sample += Duration::from_millis(250);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let write_s = start.elapsed().as_secs_f64();
        let all = self.wait_all(&mut agent, total, Duration::from_secs(30));
        let usage: Usage = agent::usage(pid, self.clk_tck).unwrap_or_default();
        max_rss_kib = max_rss_kib.max(usage.rss_kib);
        if !all {
            eprintln!("[{name}] gave up waiting for the last lines");
        }
        let (mut lat, max_us, pushes) = {
            let mut t = self.checker.lock();
            let pushes = check::push_stats(&t.pushes);
            (
                std::mem::take(&mut t.latencies_us),
                t.max_latency_us,
                pushes,
            )
        };
        let histogram = check::histogram_100ms(&lat);
        let check = self.finish(&format!("{name} latency"), agent, total);
        let q = |v: &mut Vec<u32>, q: f64| check::quantile_ms(v, q);
        Ok(json!({
            "files": files,
            "lines": total,
            "target_rate": k.rate,
            "achieved_rate": total as f64 / write_s,
            "write_s": write_s,
            "warmup_s": k.warmup_secs,
            "latency_samples": lat.len(),
            "p50_ms": q(&mut lat, 0.50),
            "p90_ms": q(&mut lat, 0.90),
            "p99_ms": q(&mut lat, 0.99),
            "p999_ms": q(&mut lat, 0.999),
            "max_ms_all_lines": f64::from(max_us) / 1000.0,
            "peak_rss_mib": usage.hwm_kib as f64 / 1024.0,
            "max_sampled_rss_mib": max_rss_kib as f64 / 1024.0,
            "agent_cpu_s": usage.cpu_s - cpu0.cpu_s,
            "agent_cores": (usage.cpu_s - cpu0.cpu_s) / write_s,
            "agent_vol_ctxt_switches_per_1k_lines": (usage.vol_ctxt.saturating_sub(cpu0.vol_ctxt)) as f64 * 1000.0 / total as f64,
            "latency_histogram_100ms_buckets": histogram,
            "push_stats": pushes,
            "check": check,
        }))
    }
}

/// The arrival of the last push, or `fallback` when there was none.
fn last_ns_or(pushes: &[(i64, u32, u32)], fallback: i64) -> i64 {
    pushes.last().map(|p| p.0).unwrap_or(fallback)
}

/// Builds the release binary (unless `E2E_BIN` names one) and returns its path.
fn agent_binary() -> Result<PathBuf, String> {
    if let Ok(b) = std::env::var("E2E_BIN") {
        return Ok(PathBuf::from(b));
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("building: cargo build --release --bin tailtrace");
    let mut cmd = Command::new(cargo);
    // Without the variables cargo set for this bench: build scripts that
    // declare them (ring's `rerun-if-env-changed=CARGO_PKG_NAME`…) would
    // otherwise see them change between this build and `cargo bench`'s own,
    // and the two would rebuild ring, rustls, kube and reqwest every run.
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_MANIFEST_")
            || matches!(
                key,
                "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_TARGET_TMPDIR"
                    | "OUT_DIR"
            )
        {
            cmd.env_remove(key);
        }
    }
    let st = cmd
        .args(["build", "--release", "--bin", "tailtrace"])
        .current_dir(manifest)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !st.success() {
        return Err(format!("cargo build --release failed: {st}"));
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| manifest.join("target"));
    Ok(target.join("release").join("tailtrace"))
}

fn run() -> Result<i32, String> {
    let k = Knobs::from_env();
    gen::self_check().map_err(|e| format!("line generator self-check: {e}"))?;
    let bin = agent_binary()?;
    if !bin.exists() {
        return Err(format!("agent binary {} not found", bin.display()));
    }
    let checker = Checker::default();
    let obs = checker.clone();
    let rx = Receiver::try_start_with(Options {
        keep_entries: false,
        observer: Some(Observer::new(move |entries, arrived| {
            obs.lock().observe(entries, arrived)
        })),
        ..Options::default()
    })
    .map_err(|e| format!("fake Loki: {e}"))?;
    let mut rig = Rig {
        bin: bin.clone(),
        rx,
        checker,
        clk_tck: agent::clk_tck(),
        keep: k.keep,
        failures: Vec::new(),
        spool: false,
    };
    let t0 = Instant::now();
    let many_mib = k.files as f64 * k.per_file_kib / 1024.0;
    let (mut one, mut many) = (json!({}), json!({}));
    for &spool in &k.spool {
        rig.spool = spool;
        let sfx = if spool { "_spool" } else { "" };
        one[format!("throughput{sfx}")] =
            rig.throughput(&format!("one_file{sfx}"), 1, k.one_mib)?;
        many[format!("throughput{sfx}")] =
            rig.throughput(&format!("many_files{sfx}"), k.files, many_mib)?;
        if k.latency_secs > 0.0 {
            one[format!("latency{sfx}")] = rig.latency(&format!("one_file{sfx}"), 1, &k)?;
            many[format!("latency{sfx}")] =
                rig.latency(&format!("many_files{sfx}"), k.files, &k)?;
        }
    }

    let core = |v: &Value, want: f64| {
        format!(
            "{:.1} MiB/CPU-s vs ≥ {want}: {}",
            f(v, &["mib_per_core_s"]),
            verdict(f(v, &["mib_per_core_s"]) >= want)
        )
    };
    let p99 = |v: &Value| {
        format!(
            "{:.1} ms vs ≤ {TARGET_P99_MS}: {}",
            f(v, &["p99_ms"]),
            verdict(f(v, &["p99_ms"]) <= TARGET_P99_MS)
        )
    };
    let mut targets = json!({});
    if k.spool.contains(&false) {
        targets["throughput_per_core_1_file"] =
            json!(core(&one["throughput"], TARGET_MIB_PER_CORE));
        targets["throughput_per_core_many_files"] =
            json!(core(&many["throughput"], TARGET_MIB_PER_CORE_MANY));
        targets["rss_many_files_at_rate"] = json!(format!(
            "{:.1} MiB vs < {TARGET_RSS_MIB}: {}",
            f(&many["latency"], &["peak_rss_mib"]),
            verdict(f(&many["latency"], &["peak_rss_mib"]) < TARGET_RSS_MIB)
        ));
        targets["p99_1_file"] = json!(p99(&one["latency"]));
        targets["p99_many_files"] = json!(p99(&many["latency"]));
    }
    if k.spool.contains(&true) {
        targets["rss_many_files_at_rate_spool"] = json!(format!(
            "{:.1} MiB vs < {TARGET_RSS_MIB_SPOOL}: {}",
            f(&many["latency_spool"], &["peak_rss_mib"]),
            verdict(f(&many["latency_spool"], &["peak_rss_mib"]) < TARGET_RSS_MIB_SPOOL)
        ));
    }
    if k.spool.len() == 2 {
        for (shape, v) in [("1_file", &one), ("many_files", &many)] {
            let ratio = f(&v["throughput_spool"], &["agent_cpu_s_per_gib"])
                / f(&v["throughput"], &["agent_cpu_s_per_gib"]);
            targets[format!("spool_cpu_per_gib_{shape}")] = json!(format!(
                "{ratio:.2}× the CPU per GiB without it vs ≤ {TARGET_SPOOL_OVERHEAD}×: {}",
                verdict(ratio <= TARGET_SPOOL_OVERHEAD)
            ));
        }
    }
    let commit = sh("git", &["rev-parse", "--short", "HEAD"]);
    let dirty = !sh("git", &["status", "--porcelain"]).is_empty();
    let results = json!({
        "bench": "e2e",
        "command": "cargo bench --bench e2e",
        "quick": k.quick,
        "ok": rig.failures.is_empty(),
        "failures": rig.failures,
        "git_commit": commit,
        "git_dirty": dirty,
        "unix_time": now_ns() / 1_000_000_000,
        "machine": machine(),
        "agent_binary": bin.display().to_string(),
        "config": {
            "stages": if trace_on() { "cri: {}, trace (default)" } else { "cri: {}" }, "batchsize": 1_048_576, "batchwait": "1s",
            "spool": k.spool.iter().map(|&s| if s { "on" } else { "off" }).collect::<Vec<_>>(),
            "rate_lines_per_s": k.rate, "latency_secs": k.latency_secs,
            "files_many": k.files, "per_file_kib": k.per_file_kib, "one_file_mib": k.one_mib,
        },
        "one_file": one,
        "many_files": many,
        "targets": targets,
        "runtime_s": t0.elapsed().as_secs_f64(),
    });
    let out_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench-results");
    fs::create_dir_all(&out_dir).map_err(|e| format!("mkdir {}: {e}", out_dir.display()))?;
    // A quick run never overwrites the figures of a full one.
    let out = out_dir.join(if k.quick {
        "e2e-quick.json"
    } else {
        "e2e.json"
    });
    let text = serde_json::to_string_pretty(&results).map_err(|e| e.to_string())?;
    fs::write(&out, text + "\n").map_err(|e| format!("write {}: {e}", out.display()))?;
    print_table(&results);
    println!("written: {}", out.display());
    if rig.failures.is_empty() {
        Ok(0)
    } else {
        println!(
            "FAIL: lines were lost, duplicated or corrupted — these figures are not a result:"
        );
        for p in &rig.failures {
            println!("  {p}");
        }
        Ok(1)
    }
}

fn main() {
    let code = match run() {
        Ok(c) => c,
        Err(e) => {
            println!("FAIL: {e}");
            1
        }
    };
    std::process::exit(code);
}
