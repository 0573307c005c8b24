//! The e2e bench's optional per-stage CPU breakdown (`E2E_PROFILE=1`): the
//! agent sampled by `perf`, samples grouped into buckets by symbol.
//!
//! Design: the agent is stopped (SIGSTOP) right after it starts, `perf
//! record -F 999 -g -p <agent pid>` is attached (so SIGTERM, CPU and RSS stay
//! the agent's own), and once perf's events are open the agent continues
//! (SIGCONT): the whole drain is sampled, threads started later included.
//! perf is stopped with SIGINT once the phase drained, before the agent is
//! stopped. `perf script` then gives each
//! sample's thread, period and call chain. A sample is charged to one bucket
//! by its leaf symbol (self time): the first rule of [`RULES`] whose pattern
//! occurs in it wins, so the order matters (allocation before anything that
//! could call it by name, `cri` before the rest of `tailtrace::source`…). A
//! kernel sample is charged by the system call in its kernel call chain
//! (`__x64_sys_<name>`, `ksys_<name>`, else the libc wrapper that entered
//! it): file system calls (`read`, `pread64`, `openat`, `statx`…) of the
//! threads that read logs (`file-tailer`, notify's inotify thread) go to
//! `read/syscalls`, anything else (the spool's reads and writes, network,
//! futex, fsync, page faults, scheduling) to `kernel`. User frames above the leaf are not used: the
//! release build has no frame pointers, so they are unreliable. Shares are
//! weighted by the sample period, as `perf report` does.
//!
//! Must never: fail the bench (a profile that cannot be taken or read is
//! reported as skipped, with why), or signal anything but the perf process
//! it started.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Buckets in print order.
pub const BUCKETS: &[&str] = &[
    "read/syscalls",
    "cri decode",
    "trace detection",
    "other stages",
    "allocation (malloc/free)",
    "acknowledgements",
    "batching",
    "protobuf encode",
    "snappy",
    "HTTP",
    "spool (lz4, chunk codec)",
    "mem* copies/scans",
    "kernel",
    "other",
];

/// (pattern found in the leaf symbol, bucket); the first match wins.
/// Allocation is matched by [`is_alloc`] before these.
pub const RULES: &[(&str, &str)] = &[
    ("tailtrace::ack", "acknowledgements"),
    ("snap::", "snappy"),
    ("tailtrace::spool", "spool (lz4, chunk codec)"),
    ("lz4", "spool (lz4, chunk codec)"),
    // The spool's chunk checksums (file fingerprints use it too, once per file).
    ("crc32fast", "spool (lz4, chunk codec)"),
    ("prost::", "protobuf encode"),
    ("tailtrace::sink::proto", "protobuf encode"),
    ("tailtrace::sink::encode", "protobuf encode"),
    ("tailtrace::sink::http", "HTTP"),
    ("reqwest", "HTTP"),
    ("hyper", "HTTP"),
    ("h2::", "HTTP"),
    ("http::", "HTTP"),
    ("httparse", "HTTP"),
    ("rustls", "HTTP"),
    ("tokio::net", "HTTP"),
    ("mio::", "HTTP"),
    ("tailtrace::sink", "batching"),
    ("tailtrace::pipeline::stages::trace", "trace detection"),
    ("aho_corasick", "trace detection"),
    ("tailtrace::pipeline::stages::cri", "cri decode"),
    ("tailtrace::source::cri", "cri decode"),
    ("tailtrace::pipeline", "other stages"),
    ("tailtrace::source", "read/syscalls"),
    ("memchr::", "mem* copies/scans"),
    ("memmove", "mem* copies/scans"),
    ("memcpy", "mem* copies/scans"),
    ("memset", "mem* copies/scans"),
    ("memchr", "mem* copies/scans"),
    ("memrchr", "mem* copies/scans"),
    ("memcmp", "mem* copies/scans"),
    ("bcmp", "mem* copies/scans"),
];

/// System calls whose kernel time counts as reading files.
const FILE_SYSCALLS: &[&str] = &[
    "read",
    "pread64",
    "readv",
    "preadv",
    "preadv2",
    "openat",
    "openat2",
    "open",
    "close",
    "newfstat",
    "newfstatat",
    "fstat",
    "statx",
    "lseek",
    "getdents64",
    "inotify_add_watch",
    "inotify_rm_watch",
    "fadvise64",
    "readlink",
    "readlinkat",
    // libc wrapper names (when the kernel chain names no call).
    "open64",
    "openat64",
    "fstat64",
    "fstatat64",
    "lseek64",
];

/// glibc's and Rust's allocator entry points and internals.
pub fn is_alloc(sym: &str) -> bool {
    let base = sym.split('@').next().unwrap_or(sym);
    matches!(
        base,
        "free" | "cfree" | "malloc" | "realloc" | "calloc" | "posix_memalign" | "aligned_alloc"
    ) || [
        "_int_malloc",
        "_int_free",
        "_int_realloc",
        "libc_malloc",
        "libc_free",
        "libc_realloc",
        "libc_calloc",
        "malloc_consolidate",
        "unlink_chunk",
        "tcache",
        "sysmalloc",
        "__rust_alloc",
        "__rust_dealloc",
        "__rust_realloc",
        "__rdl_",
        "alloc::alloc::",
        "finish_grow",
    ]
    .iter()
    .any(|p| base.contains(p))
}

/// Threads whose file system calls are the reading of log files (the
/// spool's reads and writes run on other threads).
fn reads_logs(thread: &str) -> bool {
    thread == "file-tailer" || thread.starts_with("notify")
}

/// The bucket of a sample: its leaf symbol, whether the leaf is in the
/// kernel, the system call found in its kernel chain (if any) and its
/// thread's name.
pub fn classify(leaf: &str, kernel: bool, syscall: Option<&str>, thread: &str) -> &'static str {
    if kernel {
        return match syscall {
            Some(s) if FILE_SYSCALLS.contains(&s) && reads_logs(thread) => "read/syscalls",
            _ => "kernel",
        };
    }
    if is_alloc(leaf) {
        return "allocation (malloc/free)";
    }
    RULES
        .iter()
        .find(|(p, _)| leaf.contains(p))
        .map_or("other", |(_, b)| b)
}

/// Checks the classifier on symbols as perf prints them (run at start-up
/// when profiling: a harness-less bench has no `#[test]`s).
pub fn self_check() -> Result<(), String> {
    let cases: &[(&str, bool, Option<&str>, &str)] = &[
        ("_int_free", false, None, "allocation (malloc/free)"),
        ("cfree@GLIBC_2.2.5", false, None, "allocation (malloc/free)"),
        ("__rust_dealloc", false, None, "allocation (malloc/free)"),
        (
            "tailtrace::ack::Tracker::settle",
            false,
            None,
            "acknowledgements",
        ),
        (
            "core::ptr::drop_in_place<tailtrace::ack::Ack>",
            false,
            None,
            "acknowledgements",
        ),
        ("snap::compress::Encoder::compress", false, None, "snappy"),
        (
            "lz4_flex::block::compress::compress_internal",
            false,
            None,
            "spool (lz4, chunk codec)",
        ),
        (
            "prost::encoding::encode_varint",
            false,
            None,
            "protobuf encode",
        ),
        (
            "tailtrace::sink::batch::Batch::add",
            false,
            None,
            "batching",
        ),
        (
            "tailtrace::pipeline::stages::trace::detect::find",
            false,
            None,
            "trace detection",
        ),
        ("tailtrace::source::cri::parse", false, None, "cri decode"),
        (
            "tailtrace::source::reader::LineSplitter::next",
            false,
            None,
            "read/syscalls",
        ),
        (
            "__memmove_avx_unaligned_erms",
            false,
            None,
            "mem* copies/scans",
        ),
        ("copy_user_generic", true, Some("read"), "read/syscalls"),
        ("_raw_spin_unlock", true, Some("futex"), "kernel"),
        ("clear_page_erms", true, None, "kernel"),
        ("tokio::runtime::scheduler::x", false, None, "other"),
    ];
    for &(sym, k, sc, want) in cases {
        let got = classify(sym, k, sc, "file-tailer");
        if got != want {
            return Err(format!("{sym}: {got}, expected {want}"));
        }
    }
    // The spool's reads (on the runtime's thread) are not log reading.
    if classify("copy_user_generic", true, Some("pread64"), "tailtrace-io") != "kernel" {
        return Err("a pread64 off the file-tailer thread counted as reading logs".into());
    }
    for (wrapper, call) in [
        ("__GI___libc_read", "read"),
        ("__libc_pread64", "pread64"),
        ("__open64_nocancel", "open64"),
        ("read", "read"),
        ("statx", "statx"),
    ] {
        if libc_wrapper(wrapper) != call {
            return Err(format!(
                "{wrapper}: {}, expected {call}",
                libc_wrapper(wrapper)
            ));
        }
    }
    if let Some((_, b)) = RULES.iter().find(|(_, b)| !BUCKETS.contains(b)) {
        return Err(format!("rule bucket {b} is not in BUCKETS"));
    }
    Ok(())
}

/// Whether `perf` can be run; Err says why not.
pub fn available() -> Result<(), String> {
    match Command::new("perf").arg("--version").output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!(
            "perf --version failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!("perf not found: {e}")),
    }
}

/// A running `perf record` attached to one process.
pub struct Recorder {
    child: Option<Child>,
    pub data: PathBuf,
    log: PathBuf,
}

impl Recorder {
    /// Attaches `perf record -F 999 -g` to `pid`, writing `dir/perf.data`.
    pub fn attach(pid: u32, dir: &Path) -> Result<Recorder, String> {
        let data = dir.join("perf.data");
        let log = dir.join("perf.log");
        let err = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let child = Command::new("perf")
            .args(["record", "-F", "999", "-g", "-q", "-o"])
            .arg(&data)
            .args(["-p", &pid.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start perf record: {e}"))?;
        let mut r = Recorder {
            child: Some(child),
            data,
            log,
        };
        r.wait_attached()?;
        Ok(r)
    }

    /// Waits until perf has opened its events (its `perf_event` descriptors
    /// stop growing), then a little more for it to enable them.
    fn wait_attached(&mut self) -> Result<(), String> {
        let pid = self.child.as_ref().map_or(0, |c| c.id());
        let deadline = Instant::now() + Duration::from_secs(15);
        let (mut last, mut stable_since) = (0usize, Instant::now());
        loop {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                    return Err(format!("perf record exited ({st}): {}", log.trim()));
                }
            }
            let n = std::fs::read_dir(format!("/proc/{pid}/fd"))
                .map(|d| {
                    d.flatten()
                        .filter(|e| {
                            std::fs::read_link(e.path())
                                .is_ok_and(|l| l.to_string_lossy().contains("perf_event"))
                        })
                        .count()
                })
                .unwrap_or(0);
            if n != last {
                (last, stable_since) = (n, Instant::now());
            } else if n > 0 && stable_since.elapsed() > Duration::from_millis(300) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err("perf record did not attach within 15 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGINT (perf then writes its data and exits); waits up to 30 s.
    pub fn stop(&mut self) -> Result<(), String> {
        let Some(mut c) = self.child.take() else {
            return Err("perf was already stopped".into());
        };
        let _ = Command::new("kill")
            .args(["-INT", &c.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match c.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = c.kill();
                    let _ = c.wait();
                    return Err("perf record did not stop within 30 s".into());
                }
            }
        }
        if std::fs::metadata(&self.data).map_or(0, |m| m.len()) == 0 {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            return Err(format!("perf record wrote no data: {}", log.trim()));
        }
        Ok(())
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Drops the `::h<16 hex>` hash and a `+0x…` offset from a symbol.
fn clean_symbol(s: &str) -> &str {
    let s = s.split("+0x").next().unwrap_or(s);
    match s.rfind("::h") {
        Some(i) if s.len() - i == 19 && s[i + 3..].bytes().all(|b| b.is_ascii_hexdigit()) => {
            &s[..i]
        }
        _ => s,
    }
}

/// One call-chain line of `perf script`: `<ip> <sym> (<dso>)`.
fn frame(line: &str) -> (&str, &str) {
    let line = line.trim();
    let rest = line.split_once(' ').map_or("", |(_, r)| r);
    match (rest.rfind(" ("), rest.ends_with(')')) {
        (Some(i), true) => (clean_symbol(&rest[..i]), &rest[i + 2..rest.len() - 1]),
        _ => (clean_symbol(rest), ""),
    }
}

/// The system call named by a kernel frame (`__x64_sys_read`, `ksys_read`
/// → `read`).
fn syscall_of(sym: &str) -> Option<&str> {
    [
        "__x64_sys_",
        "__arm64_sys_",
        "__do_sys_",
        "__se_sys_",
        "ksys_",
    ]
    .iter()
    .find_map(|p| sym.strip_prefix(p))
}

/// A libc system-call wrapper's name as the call's (`__GI___libc_read` →
/// `read`, `__open64_nocancel` → `open64`); the kernel often inlines its
/// own per-call entry, leaving only `do_syscall_64`.
fn libc_wrapper(sym: &str) -> &str {
    let s = sym.split('@').next().unwrap_or(sym);
    let s = s.trim_start_matches('_');
    let s = s.strip_prefix("GI_").unwrap_or(s).trim_start_matches('_');
    let s = s.strip_prefix("libc_").unwrap_or(s);
    s.strip_suffix("_nocancel").unwrap_or(s)
}

#[derive(Default)]
struct Tally {
    total: f64,
    samples: u64,
    buckets: BTreeMap<&'static str, f64>,
    symbols: BTreeMap<String, (f64, &'static str)>,
    threads: BTreeMap<String, f64>,
    syscalls: BTreeMap<String, f64>,
}

impl Tally {
    /// Adds one sample: header (`comm tid period`) and its frames, leaf first.
    fn add(&mut self, header: &str, frames: &[&str]) {
        let mut it = header.split_whitespace().rev();
        let period: f64 = it.next().and_then(|p| p.parse().ok()).unwrap_or(1.0);
        let _tid = it.next();
        let comm: Vec<&str> = it.collect();
        let comm = comm.into_iter().rev().collect::<Vec<_>>().join(" ");
        let Some(leaf) = frames.first() else { return };
        let (sym, dso) = frame(leaf);
        let kernel =
            dso.starts_with("[kernel") || (dso == "[unknown]" && leaf.trim().starts_with("ffff"));
        let syscall = if kernel {
            let (mut named, mut entered, mut fault, mut wrapper) = (None, false, false, None);
            for (s, d) in frames.iter().map(|l| frame(l)) {
                if !d.starts_with("[kernel") {
                    // The first user frame: for a system call, the libc
                    // wrapper that made it.
                    wrapper = Some(libc_wrapper(s));
                    break;
                }
                named = named.or_else(|| syscall_of(s));
                entered |= s.contains("do_syscall_64") || s.starts_with("entry_SYSCALL");
                fault |= s.contains("exc_page_fault");
            }
            named.or(if entered { wrapper } else { None }).or(if fault {
                Some("(page fault)")
            } else {
                None
            })
        } else {
            None
        };
        let bucket = classify(sym, kernel, syscall, &comm);
        self.total += period;
        self.samples += 1;
        *self.buckets.entry(bucket).or_default() += period;
        let name = if sym.is_empty() || sym == "[unknown]" {
            format!("[unknown] ({dso})")
        } else {
            sym.to_string()
        };
        self.symbols.entry(name).or_insert((0.0, bucket)).0 += period;
        *self.threads.entry(comm).or_default() += period;
        if kernel {
            *self
                .syscalls
                .entry(syscall.unwrap_or("(interrupt, scheduler)").to_string())
                .or_default() += period;
        }
    }
}

/// Shares in percent of `total`, largest first, at most `n`.
fn top(m: &BTreeMap<String, f64>, total: f64, n: usize) -> Vec<(String, f64)> {
    let mut v: Vec<(String, f64)> = m
        .iter()
        .map(|(k, &p)| (k.clone(), 100.0 * p / total))
        .collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1));
    v.truncate(n);
    v
}

/// Reads `data` with `perf script` and returns the breakdown as JSON:
/// `samples`, `buckets_pct` (every bucket), `top_symbols` (symbol, pct,
/// bucket), `threads_pct`, `kernel_syscalls_pct`.
pub fn analyse(data: &Path) -> Result<Value, String> {
    let started = Instant::now();
    let out = Command::new("perf")
        .args(["script", "-F", "comm,tid,period,ip,sym,dso", "-i"])
        .arg(data)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run perf script: {e}"))?;
    if !out.status.success() {
        return Err(format!("perf script failed: {}", out.status));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut t = Tally::default();
    let mut header: Option<&str> = None;
    let mut frames: Vec<&str> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if let Some(h) = header.take() {
                t.add(h, &frames);
            }
            frames.clear();
        } else if line.starts_with([' ', '\t']) {
            frames.push(line);
        } else {
            if let Some(h) = header.replace(line) {
                t.add(h, &frames);
            }
            frames.clear();
        }
    }
    if let Some(h) = header {
        t.add(h, &frames);
    }
    if t.samples == 0 {
        return Err("perf script gave no samples".into());
    }
    let total = t.total;
    let buckets: serde_json::Map<String, Value> = BUCKETS
        .iter()
        .map(|b| {
            let p = t.buckets.get(b).copied().unwrap_or(0.0);
            (b.to_string(), json!(100.0 * p / total))
        })
        .collect();
    let sym_pct: BTreeMap<String, f64> = t.symbols.iter().map(|(k, v)| (k.clone(), v.0)).collect();
    let top_symbols: Vec<Value> = top(&sym_pct, total, 25)
        .into_iter()
        .map(|(s, p)| json!({"symbol": s, "pct": p, "bucket": t.symbols[&s].1}))
        .collect();
    let pairs = |v: Vec<(String, f64)>| -> Value {
        Value::Array(v.into_iter().map(|(k, p)| json!([k, p])).collect())
    };
    Ok(json!({
        "samples": t.samples,
        "buckets_pct": buckets,
        "top_symbols": top_symbols,
        "threads_pct": pairs(top(&t.threads, total, 10)),
        "kernel_syscalls_pct": pairs(top(&t.syscalls, total, 8)),
        "analyse_s": started.elapsed().as_secs_f64(),
    }))
}
