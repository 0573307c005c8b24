//! How many log files the tailer may hold open.
//!
//! Owns: [`open_files_budget`]. At start the soft `RLIMIT_NOFILE` is raised
//! to the hard limit — what Go's runtime does for Promtail, so a node that
//! ran Promtail gives tailtrace the same room — and the tailer may hold
//! that many descriptors minus a reserve (sockets to Loki and the API
//! server, the spool, positions, inotify), at most [`MAX_OPEN_FILES`];
//! under a limit too small for the reserve, a fifth of it.
//! Holding every file open is what keeps a node with thousands of files
//! cheap: beyond the budget the tailer parks quiet files and swaps busy
//! ones (see `tailer.rs`), which costs opens, stats and inotify events.
//!
//! Must never: lower a limit, or fail the agent when the limit cannot be
//! read or raised (the budget then follows what is there).

/// Upper bound on log files held open, whatever the limit allows.
pub const MAX_OPEN_FILES: usize = 16_384;
/// Descriptors kept for everything but log files.
const RESERVED: u64 = 256;
/// Lower bound, so a tiny limit still reads. Under a limit too small for
/// the reserve (below 320), log files get a fifth of it: the rest stays
/// for the HTTP server, Loki's connections, the spool and the positions
/// file (with all of it given to log files, `/ready` could not answer and
/// positions could not be saved — found by the soak at a limit of 64).
const MIN_OPEN_FILES: usize = 4;

/// Raises the soft descriptor limit to the hard one (once per process is
/// enough; repeating is harmless) and returns how many log files the tailer
/// may hold open.
pub fn open_files_budget() -> usize {
    let soft = raise_soft_limit();
    budget_for(soft)
}

fn budget_for(soft: Option<u64>) -> usize {
    match soft {
        Some(n) => {
            (n.saturating_sub(RESERVED).max(n / 5) as usize).clamp(MIN_OPEN_FILES, MAX_OPEN_FILES)
        }
        // Unknown: the usual soft limit.
        None => 1024 - RESERVED as usize,
    }
}

/// The soft limit after trying to raise it to the hard limit.
fn raise_soft_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct we own; no other memory is touched.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return None;
    }
    if lim.rlim_cur < lim.rlim_max {
        let want = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) } == 0 {
            lim.rlim_cur = lim.rlim_max;
        } else {
            tracing::debug!(
                soft = lim.rlim_cur,
                hard = lim.rlim_max,
                "cannot raise the open files limit"
            );
        }
    }
    Some(lim.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_follows_the_limit_within_bounds() {
        assert_eq!(budget_for(Some(1024)), 768);
        assert_eq!(budget_for(Some(1_048_576)), MAX_OPEN_FILES);
        assert_eq!(budget_for(Some(320)), 64);
        // A limit too small for the reserve: a fifth of it, never all.
        assert_eq!(budget_for(Some(319)), 63);
        assert_eq!(budget_for(Some(100)), 20);
        assert_eq!(budget_for(Some(64)), 12);
        assert_eq!(budget_for(Some(10)), MIN_OPEN_FILES);
        assert_eq!(budget_for(None), 768);
    }

    #[test]
    fn the_soft_limit_ends_at_the_hard_one() {
        let n = open_files_budget();
        assert!((MIN_OPEN_FILES..=MAX_OPEN_FILES).contains(&n));
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: as above.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        assert_eq!(lim.rlim_cur, lim.rlim_max);
    }
}
