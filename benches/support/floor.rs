//! The e2e bench's floor: what reading a shape's input and compressing it
//! with snappy costs at the least — the part of the agent's work that no
//! Loki client pushing protobuf can skip (issue #11: one file within 2× of
//! it).
//!
//! Design: right after the input is written (in the page cache, as the
//! agent finds it), this thread reads every file with `read(2)` in 1 MiB
//! blocks and compresses each block with snap's raw encoder into a reused
//! buffer — the agent's push bodies are ~1 MiB and compressed the same
//! way. The CPU is this thread's own (`CLOCK_THREAD_CPUTIME_ID`), so the
//! receiver's threads do not count; three passes, the median is kept.
//! The agent's input is bigger than what it compresses (the `cri` stage
//! strips each line's prefix), so the floor, if anything, errs high.
//!
//! Must never: fail the run — an error means no floor (printed as `-`).

use std::fs::File;
use std::io::Read;
use std::path::PathBuf;

const BLOCK: usize = 1 << 20;
const PASSES: usize = 3;

/// The floor of one shape: MiB of input per CPU-second.
pub struct Floor {
    pub mib_per_cpu_s: f64,
    pub passes: Vec<f64>,
    /// Compressed bytes per input byte (a check that work was done).
    pub ratio: f64,
}

impl Floor {
    /// The figures as the bench's JSON keeps them.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "what": "read(2) in 1 MiB blocks + snappy raw per block, this thread's CPU, median of passes",
            "mib_per_cpu_s": self.mib_per_cpu_s,
            "passes_mib_per_cpu_s": self.passes,
            "snappy_ratio": self.ratio,
        })
    }
}

/// This thread's CPU time, seconds.
fn thread_cpu_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return f64::NAN;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// Runs `pass` [`PASSES`] times on this thread. `pass` returns the input
/// bytes it handled and the compressed bytes it made. Returns each pass's
/// MiB of input per CPU-second, their median, and the last pass's
/// compressed bytes per input byte.
pub fn timed_passes(
    mut pass: impl FnMut() -> Result<(u64, u64), String>,
) -> Result<(Vec<f64>, f64, f64), String> {
    let mut passes = Vec::with_capacity(PASSES);
    let mut ratio = f64::NAN;
    for _ in 0..PASSES {
        let cpu0 = thread_cpu_s();
        let (bytes, packed) = pass()?;
        let cpu = thread_cpu_s() - cpu0;
        if cpu.is_nan() || cpu <= 0.0 || bytes == 0 {
            return Err(format!("no CPU time measured ({cpu} s for {bytes} bytes)"));
        }
        passes.push(bytes as f64 / super::MIB / cpu);
        ratio = packed as f64 / bytes as f64;
    }
    let mut sorted = passes.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[PASSES / 2];
    Ok((passes, median, ratio))
}

/// Reads and compresses `files` [`PASSES`] times.
pub fn measure(files: &[PathBuf]) -> Result<Floor, String> {
    let mut enc = snap::raw::Encoder::new();
    let mut buf = vec![0u8; BLOCK];
    let mut out = vec![0u8; snap::raw::max_compress_len(BLOCK)];
    let (passes, mib_per_cpu_s, ratio) = timed_passes(|| {
        let (mut bytes, mut packed) = (0u64, 0u64);
        for path in files {
            let mut file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
            loop {
                let n = file
                    .read(&mut buf)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                if n == 0 {
                    break;
                }
                packed += enc
                    .compress(&buf[..n], &mut out)
                    .map_err(|e| format!("snappy: {e}"))? as u64;
                bytes += n as u64;
            }
        }
        Ok((bytes, packed))
    })?;
    Ok(Floor {
        mib_per_cpu_s,
        passes,
        ratio,
    })
}
