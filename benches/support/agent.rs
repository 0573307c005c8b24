//! The agent under test, as a separate process: config, start, resource
//! readings from /proc, SIGTERM.
//!
//! Design: the bench measures the real release binary, never an in-process
//! agent, so CPU and RSS figures are the agent's alone (the fake Loki and the
//! writers run in the bench process). CPU is utime+stime from
//! `/proc/<pid>/stat`; peak RSS is `VmHWM` from `/proc/<pid>/status`;
//! voluntary context switches are summed over `/proc/<pid>/task/*/status`.
//!
//! Must never: leave the agent running (Drop kills it), or talk to anything
//! but 127.0.0.1.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on loopback (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// The Promtail-style config the bench runs with; `wal`: the spool's
/// directory, when it is on; `trace`: the default trace-context detection
/// on (the logs dir is the pod logs path, as on a node) or off.
pub fn config_yaml(
    push_url: &str,
    logs: &Path,
    positions: &Path,
    port: u16,
    wal: Option<&Path>,
    trace: bool,
) -> String {
    let mut wal = wal.map_or(String::new(), |w| {
        format!("wal:\n  enabled: true\n  dir: {}\n", w.display())
    });
    if trace {
        wal.push_str(&format!(
            "kubernetes:\n  pod_logs_path: {}\n",
            logs.display()
        ));
    } else {
        wal.push_str("trace_context:\n  enabled: false\n");
    }
    format!(
        r#"server:
  http_listen_port: {port}
  http_listen_address: 127.0.0.1
  log_level: info
positions:
  filename: {pos}
clients:
  - url: {push_url}
    batchwait: 1s
    batchsize: 1048576
    external_labels:
      cluster: bench
scrape_configs:
  - job_name: pods
    static_configs:
      - targets: [localhost]
        labels:
          job: kubernetes-pods
          __path__: {logs}/*/*/*.log
    pipeline_stages:
      - cri: {{}}
{wal}"#,
        pos = positions.display(),
        logs = logs.display(),
    )
}

/// `yaml` with its one static glob replaced by one target per container
/// log in `paths` (`<root>/<ns>_<pod>_<uid>/<container>/0.log`), each with
/// its pod's labels and `__path__: <root>/*<uid>/<container>/*.log` — the
/// targets `kubernetes_sd` + Promtail's relabeling make on a node.
pub fn per_container_targets(
    yaml: &str,
    root: &Path,
    paths: impl Iterator<Item = PathBuf>,
) -> String {
    let mut t = String::from("    static_configs:\n");
    for p in paths {
        let container = p
            .parent()
            .and_then(Path::file_name)
            .map(|c| c.to_string_lossy().into_owned())
            .unwrap_or_default();
        let pod_dir = p
            .parent()
            .and_then(Path::parent)
            .and_then(Path::file_name)
            .map(|c| c.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut parts = pod_dir.splitn(3, '_');
        let (ns, pod, uid) = (
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
        );
        t.push_str(&format!(
            "      - targets: [localhost]\n        labels: {{job: {ns}/{container}, namespace: {ns}, pod: {pod}, container: {container}, __path__: '{}/*{uid}/{container}/*.log'}}\n",
            root.display()
        ));
    }
    let start = yaml.find("    static_configs:").unwrap_or(yaml.len());
    let end = yaml[start..]
        .find("    pipeline_stages:")
        .map_or(yaml.len(), |e| start + e);
    format!("{}{t}{}", &yaml[..start], &yaml[end..])
}

/// CPU time and memory of a process, from /proc.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    /// utime + stime, seconds.
    pub cpu_s: f64,
    /// VmHWM (peak resident set), KiB.
    pub hwm_kib: u64,
    /// VmRSS (current resident set), KiB.
    pub rss_kib: u64,
    /// Voluntary context switches summed over the live threads (a thread
    /// hand-off per entry shows up here).
    pub vol_ctxt: u64,
}

/// `getconf CLK_TCK`, 100 when it cannot be read.
pub fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<f64>()
                .ok()
        })
        .filter(|v| *v > 0.0)
        .unwrap_or(100.0)
}

/// Reads `pid`'s usage; None once the process is gone.
pub fn usage(pid: u32, clk_tck: f64) -> Option<Usage> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the `(comm)`, which may contain spaces: state is field 3,
    // utime 14 and stime 15, so indexes 11 and 12 of the rest.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let mut vol_ctxt = 0;
    if let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            let st = fs::read_to_string(t.path().join("status")).unwrap_or_default();
            vol_ctxt += st
                .lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Some(Usage {
        cpu_s: ticks / clk_tck,
        hwm_kib: kib("VmHWM:"),
        rss_kib: kib("VmRSS:"),
        vol_ctxt,
    })
}

/// Sends `SIG<sig>` (`STOP`, `CONT`, `TERM`…) to `pid`.
pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status();
}

/// A running agent process.
pub struct Agent {
    child: Option<Child>,
    pub started: Instant,
    pub port: u16,
    pub log_path: PathBuf,
}

impl Agent {
    /// Writes `yaml` to `dir/promtail.yaml` and starts `bin` with it; the
    /// agent's stderr goes to `dir/agent.log`.
    pub fn start(bin: &Path, dir: &Path, yaml: &str, port: u16) -> std::io::Result<Agent> {
        let cfg = dir.join("promtail.yaml");
        fs::write(&cfg, yaml)?;
        let log_path = dir.join("agent.log");
        let log = File::create(&log_path)?;
        let started = Instant::now();
        let child = Command::new(bin)
            .arg(format!("-config.file={}", cfg.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        Ok(Agent {
            child: Some(child),
            started,
            port,
            log_path,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// True while the process runs.
    pub fn alive(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// SIGTERM, then wait up to `grace` for the exit (SIGKILL after).
    pub fn terminate(&mut self, grace: Duration) -> Option<ExitStatus> {
        let mut c = self.child.take()?;
        signal(c.id(), "TERM");
        let deadline = Instant::now() + grace;
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                return Some(st);
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                return c.wait().ok();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The last `n` lines the agent logged.
    pub fn log_tail(&self, n: usize) -> String {
        let text = fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
