//! Returning freed heap to the kernel, and keeping reused buffers snug.
//!
//! Owns: [`spawn_trimmer`], a thread that asks glibc once a second to give
//! back the free pages inside its arenas (`malloc_trim(0)`), and [`trim`],
//! and that lets go of the binary's read-only pages (code and constants)
//! once start-up is done and every minute after ([`code`]);
//! [`limit_arenas`], how many arenas glibc may make; [`reserve_snug`], how a
//! scratch buffer kept across batches grows.
//!
//! Why: glibc returns memory to the kernel only from the top of each heap.
//! The agent's threads allocate big, short-lived buffers (64 KiB read
//! chunks, 256 KiB spool chunks, 1 MiB push bodies) in several arenas;
//! once freed, the pages between live blocks stay resident. Measured on
//! 256 MiB drains (`benches/HISTORY.md`): peak RSS 2–4 MiB lower at 500
//! and 5,000 files with the spool, agent CPU unchanged; every 200 ms was no
//! lower and cost CPU.
//!
//! Must never: run on a per-line path, hold anything the agent needs, or
//! trim where glibc is not the allocator (elsewhere [`trim`] does nothing;
//! [`code`] does not depend on the allocator).

pub mod code;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// glibc's arenas when the environment does not say (see [`limit_arenas`]).
pub const ARENAS: i32 = 1;

/// Limits glibc to [`ARENAS`] malloc arenas, unless `MALLOC_ARENA_MAX` or a
/// `glibc.malloc.arena_max` tunable in `GLIBC_TUNABLES` says otherwise (the
/// operator's choice wins). Call first thing in `main`, before any thread.
///
/// Why: glibc gives each thread that allocates an arena of its own, up to
/// 8 per core; the agent's ~11 threads each kept free space the others
/// could not use, and the peaks of several arenas add up. Measured on
/// 256 MiB drains (`benches/HISTORY.md`).
pub fn limit_arenas() {
    let env = |k: &str| std::env::var(k).ok();
    let Some(n) = arenas_for(
        env("MALLOC_ARENA_MAX").as_deref(),
        env("GLIBC_TUNABLES").as_deref(),
    ) else {
        return;
    };
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only sets a glibc parameter; called before the
    // agent starts its threads.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, n);
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = n;
}

/// The arena limit to set, given the environment's `MALLOC_ARENA_MAX` and
/// `GLIBC_TUNABLES`: `None` when the operator set one.
fn arenas_for(arena_max: Option<&str>, tunables: Option<&str>) -> Option<i32> {
    let tuned = tunables.is_some_and(|t| {
        t.split(':')
            .any(|kv| kv.split('=').next() == Some("glibc.malloc.arena_max"))
    });
    (arena_max.is_none() && !tuned).then_some(ARENAS)
}

/// How often the trimmer runs.
pub const PERIOD: Duration = Duration::from_secs(1);

/// Gives the free pages of every arena back to the kernel; true if any
/// were given back.
pub fn trim() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `malloc_trim` only walks glibc's own free lists under
        // their locks; it takes no pointer from us.
        unsafe { libc::malloc_trim(0) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// Makes room for `total` bytes in `buf` (a scratch buffer reused from
/// batch to batch): an eighth more than asked when it must grow. `Vec`'s
/// own growth doubles, so a buffer that met one batch a little bigger than
/// the last kept twice what any batch needs — the push encoder's two
/// whole-request buffers for 1 MiB batches held 5.4 MB that way (massif),
/// 3.2 MB with this (it now keeps a block of each, see `sink::encode`).
/// Growing by an eighth bounds the waste at 12.5 % and the reallocations
/// to a few while batch sizes settle.
pub fn reserve_snug(buf: &mut Vec<u8>, total: usize) {
    let need = total.saturating_sub(buf.len());
    if buf.capacity() - buf.len() < need {
        let want = total.saturating_add(total / 8);
        buf.reserve_exact(want - buf.len());
    }
}

/// How often the binary's read-only pages are let go again after the
/// first time, at start-up (see [`code`]): what was mapped back in since
/// is what was used in the last minute.
pub const CODE_PERIOD: Duration = Duration::from_secs(60);

/// [`code::release`], logged; a failure only keeps the pages mapped.
fn release_code() {
    match code::release() {
        Ok(r) => tracing::debug!(bytes = r.bytes, skipped = r.skipped, "code pages released"),
        Err(e) => tracing::debug!(error = %e, "cannot release code pages"),
    }
}

/// Lets go of the code and constants only start-up used, at once and
/// every [`CODE_PERIOD`], and trims the heap every `period`, until `stop` is set
/// (checked every 100 ms at most).
pub fn spawn_trimmer(stop: Arc<AtomicBool>, period: Duration) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("heap-trim".into())
        .spawn(move || {
            let step = period.min(Duration::from_millis(100));
            let mut waited = Duration::ZERO;
            release_code();
            let mut since_release = Duration::ZERO;
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(step);
                since_release += step;
                if since_release >= CODE_PERIOD {
                    since_release = Duration::ZERO;
                    release_code();
                }
                waited += step;
                if waited >= period {
                    waited = Duration::ZERO;
                    trim();
                }
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch buffer meeting batches of slowly growing sizes keeps at
    /// most an eighth more than the biggest (`Vec` alone kept up to 2×),
    /// and always has room for the batch at hand.
    #[test]
    fn a_reused_buffer_grows_by_an_eighth_not_double() {
        let mut buf: Vec<u8> = Vec::new();
        let mut biggest = 0;
        for i in 0..200usize {
            let n = 1_000_000 + (i * 7919 % 50_000) + i * 1_000;
            biggest = biggest.max(n);
            buf.clear();
            reserve_snug(&mut buf, n);
            assert!(buf.capacity() >= n, "room for the batch at hand");
            buf.resize(n, 1);
            assert!(
                buf.capacity() <= biggest + biggest / 8,
                "batch {i}: capacity {} for at most {biggest}",
                buf.capacity()
            );
        }
        // Appending past what is held keeps the bytes already there.
        let mut buf = vec![7u8; 10];
        reserve_snug(&mut buf, 1000);
        assert!(buf.capacity() >= 1000);
        assert_eq!(buf, vec![7u8; 10]);
    }

    #[test]
    fn the_operators_arena_limit_wins() {
        assert_eq!(arenas_for(None, None), Some(ARENAS));
        assert_eq!(arenas_for(Some("4"), None), None);
        assert_eq!(
            arenas_for(
                None,
                Some("glibc.malloc.tcache_count=0:glibc.malloc.arena_max=8")
            ),
            None
        );
        assert_eq!(
            arenas_for(None, Some("glibc.malloc.mmap_threshold=131072")),
            Some(ARENAS),
            "another tunable leaves the arenas to us"
        );
    }

    #[test]
    fn the_trimmer_stops_when_the_agent_does() {
        let stop = Arc::new(AtomicBool::new(false));
        let h = spawn_trimmer(stop.clone(), Duration::from_millis(1)).expect("spawn");
        std::thread::sleep(Duration::from_millis(20));
        assert!(!h.is_finished(), "it runs until told to stop");
        stop.store(true, Ordering::Relaxed);
        h.join().expect("the trimmer exits cleanly");
    }

    /// Free pages between live blocks are what `malloc_trim` gives back:
    /// 32 MiB in 64 KiB blocks, every other one freed, leaves 16 MiB of
    /// holes no heap top can return.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn holes_between_live_blocks_are_given_back() {
        let mut blocks: Vec<Option<Vec<u8>>> =
            (0..512).map(|i| Some(vec![i as u8; 64 * 1024])).collect();
        for b in blocks.iter_mut().step_by(2) {
            *b = None;
        }
        assert!(trim(), "glibc gave nothing back");
        let live: usize = blocks.iter().flatten().map(|b| b.len()).sum();
        assert_eq!(live, 256 * 64 * 1024, "the live blocks are untouched");
        assert!(blocks
            .iter()
            .flatten()
            .enumerate()
            .all(|(i, b)| b[0] == (2 * i + 1) as u8));
    }
}
