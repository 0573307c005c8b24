//! Test harness: runs the real `tailtrace` binary with a generated Promtail
//! config in a temp dir, and writes pod log files the way the kubelet and the
//! container runtimes do (CRI lines, partials, kubelet-style rotation).
//!
//! Included by integration tests with `#[path = "support/agent.rs"] mod agent;`.
//! Never asserts timings: waits take a generous give-up bound only.
#![allow(dead_code)]

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A loopback port that refuses connections for as long as this lives:
/// bound, so no other process can take it meanwhile (a port merely found
/// free and released could be), but never listening, so a connection to it
/// is refused at once.
pub struct RefusedPort {
    _socket: tokio::net::TcpSocket,
    pub port: u16,
}

pub fn refused_port() -> RefusedPort {
    let socket = tokio::net::TcpSocket::new_v4().expect("a TCP socket");
    socket
        .bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        .expect("bind a loopback port");
    let port = socket.local_addr().expect("its address").port();
    let refused = TcpStream::connect(("127.0.0.1", port))
        .err()
        .map(|e| e.kind());
    assert_eq!(
        refused,
        Some(std::io::ErrorKind::ConnectionRefused),
        "a bound port that does not listen refuses"
    );
    RefusedPort {
        _socket: socket,
        port,
    }
}

/// The TCP port process `pid` listens on, from `/proc` (its socket
/// descriptors' inodes among the listening sockets of `net/tcp` and
/// `net/tcp6`): for an agent started with `http_listen_port: 0` at a log
/// level that does not print the address. `None` until it listens.
pub fn listening_port_of(pid: u32) -> Option<u16> {
    let inodes: Vec<String> = fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .filter_map(|e| fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect();
    for table in ["tcp", "tcp6"] {
        let text = fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for row in text.lines().skip(1) {
            let f: Vec<&str> = row.split_whitespace().collect();
            // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
            if f.len() > 9 && f[3] == "0A" && inodes.iter().any(|i| i == f[9]) {
                let port = f[1].rsplit(':').next()?;
                return u16::from_str_radix(port, 16).ok();
            }
        }
    }
    None
}

/// What goes into the generated config.
#[derive(Clone)]
pub struct Setup {
    pub push_url: String,
    pub logs: PathBuf,
    pub positions: PathBuf,
    pub batchwait: &'static str,
    pub batchsize: usize,
    pub min_period: &'static str,
    pub max_period: &'static str,
    pub max_retries: u32,
    pub stages: &'static str,
    pub glob: String,
    /// Extra YAML under `clients[0]` (indented 4 spaces).
    pub client_extra: String,
    /// Extra top-level YAML.
    pub extra: String,
    /// Replaces the whole `scrape_configs:` section when set.
    pub scrape_configs: Option<String>,
    /// The agent's HTTP port; 0 (the default): the agent binds any free
    /// port and [`Agent`] learns it from the agent's log. A port picked
    /// here and released raced with other tests binding it before the
    /// agent did ("Address already in use", a CI run beside a soak lane).
    pub port: u16,
    /// Environment variables for the agent process (e.g. `HOSTNAME`).
    pub env: Vec<(String, String)>,
    /// The logs are the node's pod logs: `kubernetes.pod_logs_path` is
    /// `logs`, so the default static job reads pod logs and gets the `trace`
    /// stage after `cri` (trace detection on by default, as deployed).
    /// Leave `extra` without a `kubernetes:` block then.
    pub pod_logs: bool,
    /// The agent's `RLIMIT_NOFILE` (soft and hard): with 320 the tailer
    /// may hold 64 log files open and parks the rest (see fdlimit.rs).
    pub open_files_limit: Option<u64>,
    /// `target_config.sync_period`: the periodic rescan (1s; an hour leaves
    /// new files to inotify alone, and to the rescan at each start).
    pub rescan_every: &'static str,
}

impl Setup {
    pub fn new(dir: &Path, push_url: &str) -> Setup {
        let logs = dir.join("pods");
        let _ = fs::create_dir_all(&logs);
        Setup {
            push_url: push_url.to_string(),
            glob: format!("{}/*/*/*.log", logs.display()),
            logs,
            positions: dir.join("positions.yaml"),
            batchwait: "200ms",
            batchsize: 256 * 1024,
            min_period: "50ms",
            max_period: "500ms",
            max_retries: 1000,
            stages: "[cri: {}]",
            client_extra: String::new(),
            extra: String::new(),
            scrape_configs: None,
            port: 0,
            env: Vec::new(),
            pod_logs: false,
            open_files_limit: None,
            rescan_every: "1s",
        }
    }

    pub fn yaml(&self) -> String {
        let scrape = self.scrape_configs.clone().unwrap_or_else(|| {
            format!(
                r#"scrape_configs:
  - job_name: pods
    static_configs:
      - targets: [localhost]
        labels:
          job: pods
          __path__: {glob}
    pipeline_stages: {stages}
"#,
                glob = self.glob,
                stages = self.stages
            )
        });
        let pod_logs = if self.pod_logs {
            format!("kubernetes:\n  pod_logs_path: {}\n", self.logs.display())
        } else {
            String::new()
        };
        format!(
            r#"server:
  http_listen_port: {port}
  http_listen_address: 127.0.0.1
positions:
  filename: {pos}
  sync_period: 200ms
clients:
  - url: {url}
    batchwait: {bw}
    batchsize: {bs}
    timeout: 5s
    backoff_config:
      min_period: {minp}
      max_period: {maxp}
      max_retries: {mr}
    external_labels:
      cluster: test
{client_extra}
target_config:
  sync_period: {rescan}
{scrape}
{pod_logs}{extra}
"#,
            port = self.port,
            pos = self.positions.display(),
            url = self.push_url,
            bw = self.batchwait,
            bs = self.batchsize,
            minp = self.min_period,
            maxp = self.max_period,
            mr = self.max_retries,
            client_extra = self.client_extra,
            rescan = self.rescan_every,
            extra = self.extra,
        )
    }
}

/// Turns the spool on (`wal:` in `extra`, replacing what was there) in
/// `wal`, holding at most `max_size` (`1GiB`, `256KiB`, …).
pub fn with_spool(setup: &mut Setup, wal: &Path, max_size: &str) {
    setup.extra = format!(
        "wal:\n  enabled: true\n  dir: {}\n  max_size: {max_size}\n",
        wal.display()
    );
}

/// A running agent process.
pub struct Agent {
    child: Option<Child>,
    pub dir: PathBuf,
    pub port: u16,
    log_path: PathBuf,
    run: u32,
}

impl Agent {
    /// Starts the binary with `setup`'s config; logs go to `dir/agent-<n>.log`.
    pub fn start(dir: &Path, setup: &Setup) -> Agent {
        let mut a = Agent {
            child: None,
            dir: dir.to_path_buf(),
            port: setup.port,
            log_path: PathBuf::new(),
            run: 0,
        };
        a.spawn(setup, &[]);
        a
    }

    pub fn start_with_args(dir: &Path, setup: &Setup, args: &[&str]) -> Agent {
        let mut a = Agent {
            child: None,
            dir: dir.to_path_buf(),
            port: setup.port,
            log_path: PathBuf::new(),
            run: 0,
        };
        a.spawn(setup, args);
        a
    }

    fn spawn(&mut self, setup: &Setup, args: &[&str]) {
        self.run += 1;
        let cfg = self.dir.join("promtail.yaml");
        fs::write(&cfg, setup.yaml()).expect("write config");
        self.log_path = self.dir.join(format!("agent-{}.log", self.run));
        let log = File::create(&self.log_path).expect("log file");
        let out = self.dir.join(format!("agent-{}.out", self.run));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tailtrace"));
        cmd.arg(format!("-config.file={}", cfg.display()))
            .arg("-log.level=debug")
            .args(args)
            .envs(setup.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(File::create(out).expect("stdout file"))
            .stderr(log);
        if let Some(n) = setup.open_files_limit {
            use std::os::unix::process::CommandExt;
            let lim = libc::rlimit {
                rlim_cur: n,
                rlim_max: n,
            };
            // SAFETY: setrlimit is async-signal-safe, and `lim` is a plain
            // value copied into the closure.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        let child = cmd.spawn().expect("spawn tailtrace");
        self.child = Some(child);
    }

    /// Starts the agent again (same dir and config) after a stop or kill.
    pub fn restart(&mut self, setup: &Setup) {
        assert!(self.child.is_none(), "agent still running");
        self.port = setup.port;
        self.spawn(setup, &[]);
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// `kill -9`: no flush, no positions save.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, without waiting for the exit (see [`Agent::terminate`]).
    pub fn sigterm(&self) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
        }
    }

    /// SIGTERM and wait for the exit status.
    pub fn terminate(&mut self) -> Option<ExitStatus> {
        self.sigterm();
        let mut c = self.child.take()?;
        let deadline = Instant::now() + Duration::from_secs(60);
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

    /// True while the process is alive.
    pub fn alive(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Everything the agent logged so far (all runs).
    pub fn log(&self) -> String {
        let mut s = String::new();
        for n in 1..=self.run {
            if let Ok(t) = fs::read_to_string(self.dir.join(format!("agent-{n}.log"))) {
                s.push_str(&t);
            }
        }
        s
    }

    /// GET `path` from the agent's HTTP server: (status, body).
    pub fn http_get(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.listening_port()?, path)
    }

    /// The port this run of the agent listens on: the configured one, or
    /// (configured 0) the one its log says it bound. None until it says.
    pub fn listening_port(&self) -> Option<u16> {
        if self.port != 0 {
            return Some(self.port);
        }
        let log = fs::read_to_string(&self.log_path).ok()?;
        let line = log
            .lines()
            .rev()
            .find(|l| l.contains("http server listening"))?;
        let addr = line.split("address=").nth(1)?.split_whitespace().next()?;
        addr.rsplit(':').next()?.parse().ok()
    }

    /// The value of a metric sample whose line starts with `prefix`
    /// (name plus optional label matchers, e.g. `promtail_sent_entries_total{`),
    /// summed over matching series.
    pub fn metric_sum(&self, name: &str, label_filter: &[(&str, &str)]) -> Option<f64> {
        let (_, body) = self.http_get("/metrics")?;
        Some(metric_sum(&body, name, label_filter))
    }

    /// Waits until `/ready` answers 200.
    pub fn wait_ready(&self, timeout: Duration) -> bool {
        wait(timeout, || {
            matches!(self.http_get("/ready"), Some((200, _)))
        })
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Sums the samples of `name` whose labels include every pair of `filter`.
pub fn metric_sum(body: &str, name: &str, filter: &[(&str, &str)]) -> f64 {
    let mut sum = 0.0;
    for line in body.lines() {
        if line.starts_with('#') {
            continue;
        }
        let (series, value) = match line.rsplit_once(' ') {
            Some(x) => x,
            None => continue,
        };
        let (n, labels) = match series.find('{') {
            Some(i) => (&series[..i], &series[i..]),
            None => (series, ""),
        };
        if n != name {
            continue;
        }
        if filter
            .iter()
            .all(|(k, v)| labels.contains(&format!("{k}=\"{v}\"")))
        {
            sum += value.parse::<f64>().unwrap_or(0.0);
        }
    }
    sum
}

/// Minimal HTTP/1.1 GET over loopback.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status: u16 = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    // The agent's server answers with a content-length body (no chunking).
    Some((status, body.to_string()))
}

/// Polls `f` every 50 ms until it is true or `timeout` passes.
pub fn wait(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Now, in nanoseconds since the Unix epoch (lines' CRI timestamps).
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// A containerd-style RFC3339Nano UTC timestamp (trailing zeros trimmed).
pub fn rfc3339_nano(ts_ns: i64) -> String {
    let mut s = String::new();
    tailtrace::entry::Timestamp(ts_ns).write_rfc3339_nano(&mut s);
    s
}

/// One CRI line as containerd writes it.
pub fn cri_line(ts_ns: i64, stream: &str, partial: bool, content: &str) -> String {
    format!(
        "{} {} {} {}\n",
        rfc3339_nano(ts_ns),
        stream,
        if partial { "P" } else { "F" },
        content
    )
}

/// A container log file as the runtime writes it, with kubelet-style
/// rotation (rename to `<name>.<stamp>`, create a new file).
pub struct PodLog {
    pub path: PathBuf,
    /// None until the first write of a pod that arrives later
    /// ([`PodLog::later`]).
    file: Option<File>,
    pub written_since_rotate: usize,
    rotations: u32,
    /// The workload round at which the pod starts writing (0: at once).
    starts_at: usize,
    /// Keep the (pod, line) ids of the workload lines in every rotated file
    /// the kubelet deletes, in `deleted` (off: deletions are only counted).
    pub track_deleted: bool,
    pub deleted: Vec<(usize, usize)>,
    /// The workload line each file after the first starts with (file `k`,
    /// from 0, is rotated to stamp `k + 1`): which file a line was in.
    pub file_starts: Vec<usize>,
}

impl PodLog {
    /// `<logs>/<ns>_<pod>_<uid>/<container>/0.log`
    pub fn create(logs: &Path, pod: &str, container: &str) -> PodLog {
        let mut log = PodLog::later(logs, pod, container, 0);
        log.open();
        log
    }

    /// A pod that does not exist yet: its directories and file are made by
    /// its first write, at workload round `starts_at` (see
    /// [`Workload::create_arriving`]).
    pub fn later(logs: &Path, pod: &str, container: &str, starts_at: usize) -> PodLog {
        let path = logs
            .join(format!("default_{pod}_{pod}-uid"))
            .join(container)
            .join("0.log");
        PodLog {
            path,
            file: None,
            written_since_rotate: 0,
            rotations: 0,
            starts_at,
            track_deleted: false,
            deleted: Vec::new(),
            file_starts: Vec::new(),
        }
    }

    fn open(&mut self) -> &mut File {
        let path = &self.path;
        self.file.get_or_insert_with(|| {
            fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .expect("open log")
        })
    }

    pub fn write(&mut self, s: &str) {
        self.open().write_all(s.as_bytes()).expect("write log");
        self.written_since_rotate += s.len();
    }

    /// The file workload line `l` was written to: its rotation stamp's
    /// number (or, never rotated, the number it would get).
    pub fn file_of(&self, l: usize) -> usize {
        self.file_starts.partition_point(|&s| s <= l) + 1
    }

    /// Kubelet rotation: rename the live file, then the runtime reopens a new
    /// one at the same path. Returns the rotated path.
    pub fn rotate(&mut self) -> PathBuf {
        self.rotations += 1;
        let rotated = self
            .path
            .with_file_name(format!("0.log.20261122-{:06}", self.rotations));
        fs::rename(&self.path, &rotated).expect("rename");
        self.file = None;
        self.open();
        self.written_since_rotate = 0;
        rotated
    }

    /// The kubelet's whole rotation step (container_log_manager.go): drop
    /// `*.tmp` and rotated files that already have a `.gz` twin; keep at
    /// most `max_files - 2` rotated files (oldest deleted first; `None` =
    /// never delete); compress every uncompressed rotated file (`X.tmp`,
    /// rename to `X.gz`, unlink `X`); then rename `0.log` and reopen.
    /// Returns the number of rotated files deleted.
    pub fn kubelet_rotate(&mut self, max_files: Option<usize>) -> usize {
        let dir = self.path.parent().expect("dir").to_path_buf();
        let rotated = |dir: &Path| -> Vec<PathBuf> {
            let mut v: Vec<PathBuf> = fs::read_dir(dir)
                .map(|rd| rd.flatten().map(|e| e.path()).collect())
                .unwrap_or_default();
            v.retain(|p| {
                let n = p.file_name().unwrap_or_default().to_string_lossy();
                n.starts_with("0.log.")
            });
            v.sort();
            v
        };
        for p in rotated(&dir) {
            let n = p.to_string_lossy().into_owned();
            if n.ends_with(".tmp")
                || (!n.ends_with(".gz") && Path::new(&format!("{n}.gz")).exists())
            {
                let _ = fs::remove_file(&p);
            }
        }
        let mut deleted = 0;
        if let Some(max) = max_files {
            let mut all = rotated(&dir);
            while all.len() > max.saturating_sub(2) {
                let gone = all.remove(0);
                if self.track_deleted {
                    self.deleted.extend(workload_ids_in(&gone));
                }
                let _ = fs::remove_file(gone);
                deleted += 1;
            }
        }
        for p in rotated(&dir) {
            let n = p.to_string_lossy().into_owned();
            if n.ends_with(".gz") {
                continue;
            }
            let tmp = PathBuf::from(format!("{n}.tmp"));
            gzip(&p, &tmp);
            fs::rename(&tmp, format!("{n}.gz")).expect("rename gz");
            fs::remove_file(&p).expect("unlink rotated");
        }
        self.rotate();
        deleted
    }
}

/// The (pod, line) ids of the workload lines in the CRI file at `path`
/// (gzipped if its name ends in `.gz`).
pub fn workload_ids_in(path: &Path) -> Vec<(usize, usize)> {
    let mut text = String::new();
    let Ok(f) = File::open(path) else {
        return Vec::new();
    };
    let read = if path.to_string_lossy().ends_with(".gz") {
        flate2::read::GzDecoder::new(f).read_to_string(&mut text)
    } else {
        std::io::BufReader::new(f).read_to_string(&mut text)
    };
    read.expect("read a rotated file");
    text.lines()
        .filter_map(|l| l.splitn(4, ' ').nth(3))
        .map(workload_id)
        .collect()
}

/// gzip `src` into `dst` (as the kubelet's compressLog does).
pub fn gzip(src: &Path, dst: &Path) {
    use flate2::write::GzEncoder;
    let data = fs::read(src).expect("read rotated");
    let mut enc = GzEncoder::new(
        File::create(dst).expect("create gz"),
        flate2::Compression::fast(),
    );
    enc.write_all(&data).expect("gzip");
    enc.finish().expect("gzip finish");
}

/// Pods writing CRI lines at a steady rate, rotated the way the kubelet
/// rotates them. Line `l` of pod `p` is [`workload_line`]`(p, l)`.
#[derive(Clone)]
pub struct Workload {
    pub pods: usize,
    /// Lines per pod.
    pub lines: usize,
    /// One line per pod every `round`.
    pub round: Duration,
    /// Rotate a pod's file once it holds this many bytes.
    pub rotate_at: Option<usize>,
    /// The kubelet's `containerLogMaxFiles` (None: never delete).
    pub max_files: Option<usize>,
    /// Bytes of hard-to-compress padding per line.
    pub pad: usize,
    /// Every n-th line of a pod carries trace context (see
    /// [`workload_trace`]); None: no line does.
    pub traced: Option<usize>,
}

/// First timestamp of every workload line.
pub const WORKLOAD_T0: i64 = 1_763_900_000_000_000_000;

/// Line `l` of pod `p`: `p003 l000042 <padding>`.
pub fn workload_line(p: usize, l: usize, pad: usize) -> String {
    let mut s = format!("p{p:03} l{l:06} ");
    let mut x = (p as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (l as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    while s.len() < 13 + pad {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.push_str(&format!("{:016x}", x));
    }
    s.truncate(13 + pad);
    s
}

/// The (trace_id, span_id) line `l` of pod `p` carries when every `every`-th
/// line is traced, else None. Every other traced line prints it as a W3C
/// `traceparent`, the others as OpenTelemetry `trace_id=`/`span_id=` keys, so
/// both common shapes go through the detector.
pub fn workload_trace(p: usize, l: usize, every: Option<usize>) -> Option<(String, String)> {
    let every = every?;
    if !l.is_multiple_of(every) {
        return None;
    }
    let h = |salt: u64| {
        ((p as u64) << 32 | l as u64 | 1 << 63)
            .wrapping_add(salt)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            | 1
    };
    Some((
        format!("{:016x}{:016x}", h(1), h(2)),
        format!("{:016x}", h(3)),
    ))
}

/// (pod, line) of a workload line.
pub fn workload_id(line: &str) -> (usize, usize) {
    let mut it = line.split(' ');
    let p = it.next().and_then(|s| s.strip_prefix('p')?.parse().ok());
    let l = it.next().and_then(|s| s.strip_prefix('l')?.parse().ok());
    match (p, l) {
        (Some(p), Some(l)) => (p, l),
        _ => panic!("not a workload line: {line:?}"),
    }
}

impl Workload {
    /// Creates the pods' logs under `logs` (`<prefix>NNN`).
    pub fn create(&self, logs: &Path, prefix: &str) -> Vec<PodLog> {
        (0..self.pods)
            .map(|p| PodLog::create(logs, &format!("{prefix}{p:03}"), "app"))
            .collect()
    }

    /// Pods that arrive while the workload runs: pod `p`'s directories
    /// and file appear at round `p * every` (pod 0's at once, before the
    /// agent starts), and it then writes its lines at the same pace as the
    /// others. [`Self::run`] lasts `(pods - 1) * every` rounds longer.
    pub fn create_arriving(&self, logs: &Path, prefix: &str, every: usize) -> Vec<PodLog> {
        (0..self.pods)
            .map(|p| {
                let mut log = PodLog::later(logs, &format!("{prefix}{p:03}"), "app", p * every);
                if p == 0 {
                    log.open();
                }
                log
            })
            .collect()
    }

    /// Writes every line at the set pace, rotating as set. Calls
    /// `at(round)` after each round (to change the receiver's mode mid-run,
    /// say; round `l` writes line `l` of the pods there from the start).
    /// Returns the number of rotations.
    pub fn run(&self, logs: Vec<PodLog>, at: impl FnMut(usize)) -> usize {
        self.run_keeping(logs, at).0
    }

    /// [`Self::run`], handing the logs back (with what they deleted, see
    /// [`PodLog::track_deleted`]).
    pub fn run_keeping(
        &self,
        mut logs: Vec<PodLog>,
        mut at: impl FnMut(usize),
    ) -> (usize, Vec<PodLog>) {
        let mut rotations = 0;
        let start = Instant::now();
        let last = logs.iter().map(|l| l.starts_at).max().unwrap_or(0);
        for round in 0..self.lines + last {
            for (p, log) in logs.iter_mut().enumerate() {
                let Some(l) = round.checked_sub(log.starts_at).filter(|&l| l < self.lines) else {
                    continue;
                };
                let ts = WORKLOAD_T0 + (l as i64) * 1_000_000 + p as i64;
                log.write(&cri_line(ts, "stdout", false, &self.line(p, l)));
                if self
                    .rotate_at
                    .is_some_and(|r| log.written_since_rotate >= r)
                {
                    log.kubelet_rotate(self.max_files);
                    log.file_starts.push(l + 1);
                    rotations += 1;
                }
            }
            at(round);
            let due = self.round * (round as u32 + 1);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        (rotations, logs)
    }

    pub fn total(&self) -> usize {
        self.pods * self.lines
    }

    /// Line `l` of pod `p` as written: [`workload_line`], then its trace
    /// context if it has one.
    pub fn line(&self, p: usize, l: usize) -> String {
        let mut s = workload_line(p, l, self.pad);
        if let Some((trace, span)) = workload_trace(p, l, self.traced) {
            if (l / self.traced.unwrap_or(1)).is_multiple_of(2) {
                s.push_str(&format!(" traceparent=00-{trace}-{span}-01"));
            } else {
                s.push_str(&format!(" trace_id={trace} span_id={span}"));
            }
        }
        s
    }

    /// Received entries, as (line, structured metadata), whose `trace_id`
    /// and `span_id` metadata are not what [`workload_trace`] says (wanted
    /// when `metadata` is true, none at all when false; other metadata is
    /// not looked at): one description each.
    pub fn trace_mismatches<'a>(
        &self,
        entries: impl IntoIterator<Item = (&'a str, &'a [(String, String)])>,
        metadata: bool,
    ) -> Vec<String> {
        let mut out = Vec::new();
        for (line, md) in entries {
            let (p, l) = workload_id(line);
            let want: Vec<(String, String)> = workload_trace(p, l, self.traced)
                .filter(|_| metadata)
                .map(|(t, s)| vec![("trace_id".into(), t), ("span_id".into(), s)])
                .unwrap_or_default();
            let mut got: Vec<(String, String)> = md
                .iter()
                .filter(|(k, _)| k == "trace_id" || k == "span_id")
                .cloned()
                .collect();
            got.sort();
            let mut want_sorted = want.clone();
            want_sorted.sort();
            if got != want_sorted {
                out.push(format!("p{p} l{l}: metadata {md:?}, want {want:?}"));
            }
        }
        out
    }
}

/// How a receiver's entries compare with a workload.
pub struct Delivered {
    /// (pod, line) → times received.
    pub seen: std::collections::HashMap<(usize, usize), usize>,
    /// Lines never received, by pod.
    pub missing: std::collections::BTreeMap<usize, Vec<usize>>,
    pub duplicates: usize,
    /// The first arrival of each pod's lines came in write order.
    pub in_order: Result<(), String>,
}

/// Compares received workload lines with what `w` wrote.
pub fn delivered<'a>(w: &Workload, lines: impl IntoIterator<Item = &'a str>) -> Delivered {
    let mut seen = std::collections::HashMap::new();
    let mut next: std::collections::HashMap<usize, usize> = std::collections::HashMap::new();
    let mut in_order = Ok(());
    let mut total = 0;
    for line in lines {
        total += 1;
        let (p, l) = workload_id(line);
        let n = seen.entry((p, l)).or_insert(0);
        *n += 1;
        if *n == 1 {
            let want = next.entry(p).or_insert(0);
            if l != *want && in_order.is_ok() {
                in_order = Err(format!("pod {p}: line {l} arrived before line {want}"));
            }
            *want = (*want).max(l + 1);
        }
    }
    let mut missing = std::collections::BTreeMap::new();
    for p in 0..w.pods {
        for l in 0..w.lines {
            if !seen.contains_key(&(p, l)) {
                missing.entry(p).or_insert_with(Vec::new).push(l);
            }
        }
    }
    let duplicates = total - seen.len();
    Delivered {
        seen,
        missing,
        duplicates,
        in_order,
    }
}

impl Delivered {
    pub fn lost(&self) -> usize {
        self.missing.values().map(Vec::len).sum()
    }

    /// After one `kill -9`: lines received more than once although they had
    /// not been received before the kill (`before`), or more than twice —
    /// with (pod, line) and times received.
    pub fn duplicates_not_from(
        &self,
        before: &std::collections::HashSet<(usize, usize)>,
    ) -> Vec<((usize, usize), usize)> {
        let mut v: Vec<_> = self
            .seen
            .iter()
            .filter(|(id, n)| **n > 2 || (**n == 2 && !before.contains(id)))
            .map(|(id, n)| (*id, *n))
            .collect();
        v.sort();
        v
    }
}
