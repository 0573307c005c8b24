//! The acknowledgement path: how "Loki accepted it" becomes "the position may
//! advance", for file offsets and journal cursors alike.
//!
//! Owns:
//! - [`Tracker`]: one per source instance (one tailed file identity, one
//!   journal). The source [`issue`](Tracker::issue)s a sequence-numbered
//!   [`Ack`] per line, carrying the position just *after* the line. Acks may
//!   come back in any order (several clients, several tenants, stages that
//!   merge lines); the tracker's [`committed`](Tracker::committed) position only
//!   moves over a gap-free prefix of acknowledged lines.
//! - [`Ack`]: the sequence numbers of one tracker that an entry stands for (a
//!   merged entry — CRI partials, multiline — carries every piece's number;
//!   pieces need not be contiguous, since stdout and stderr interleave in one
//!   file). `ack()` consumes it.
//!   Dropping an `Ack` without `ack()` (shutdown, a crash path) *poisons* its
//!   lines: the committed position never passes them in this process, so they
//!   are read again after a restart.
//! - [`AckRuns`] (`runs.rs`): acks gathered to be settled together
//!   ([`ack_many`], the spool writer between two commits), held as ranges
//!   of lines and one charge, so they cost per run, not per line.
//! - [`Budget`] and [`Charge`]: the global bound on bytes held between the
//!   pipeline and Loki's acceptance. The sink fan-out charges each entry before
//!   queueing it (blocking when the budget is spent — that is the backpressure
//!   that pauses readers); the charge is released when the entry is acked or
//!   dropped.
//!
//! An `Ack` points at its tracker without a reference count of its own:
//! a count per line, taken on the reading thread and dropped on the
//! sender's, moved the count's cache line between the two cores for every
//! line. Instead the tracker counts, under its lock, the line copies not yet
//! settled, and holds itself alive (`State::keep`) while that count is not
//! zero: every unsettled `Ack` has at least one line in it, so its tracker
//! lives until the `Ack` is settled. This is the module's one `unsafe`
//! (see `TrackerPtr`).
//!
//! Must never: advance a committed position past a line that has not been
//! acknowledged, or block while holding the tracker lock.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

/// Counts every advance of any tracker's committed position in the process,
/// so the positions writer can tell cheaply whether there is news to save.
static COMMIT_EPOCH: AtomicU64 = AtomicU64::new(0);

/// The number of committed-position advances so far (any tracker). A
/// reader that sees an advance counted also sees its
/// [`Tracker::committed_offset`] (release/acquire).
pub fn commit_epoch() -> u64 {
    COMMIT_EPOCH.load(Ordering::Acquire)
}

/// Where a source resumes: a byte offset or an opaque cursor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Position {
    Offset(u64),
    Cursor(Arc<str>),
}

impl Position {
    pub fn offset(&self) -> Option<u64> {
        match self {
            Position::Offset(o) => Some(*o),
            Position::Cursor(_) => None,
        }
    }
}

/// Slot capacity a drained tracker keeps (see [`Tracker::settle`]).
const KEEP_SLOTS: usize = 32;

/// One issued line. 16 bytes: a tracker holds one per line in flight (a
/// read chunk's worth per file, thousands of files).
struct Slot {
    /// The offset after the line; for a cursor, unused (see `cursor`).
    end: u64,
    /// Outstanding acknowledgements (one per client copy).
    remaining: u32,
    poisoned: bool,
    /// The position is the next of `State::cursors`, not `end`.
    cursor: bool,
}

struct State {
    /// Sequence number of `pending[0]`.
    base: u64,
    pending: VecDeque<Slot>,
    /// The cursors of the pending slots that are cursors, in order.
    cursors: VecDeque<Arc<str>>,
    committed: Position,
    /// Position of the last issued line (what has been read).
    issued: Position,
    poisoned: bool,
    /// Line copies issued and not yet settled: the sum of the pending
    /// slots' `remaining`.
    outstanding: usize,
    /// The tracker itself while `outstanding` is not zero: what keeps it
    /// alive for the [`Ack`]s that point at it.
    keep: Option<Arc<Tracker>>,
}

/// Per-source acknowledgement tracker. See the module docs.
pub struct Tracker {
    state: Mutex<State>,
    /// The committed offset as last published under the lock, for readers
    /// that must not take it ([`Tracker::committed_offset`]); [`NO_OFFSET`]
    /// while the committed position is a cursor.
    offset: AtomicU64,
}

/// [`Tracker::offset`] of a tracker whose committed position is a cursor.
const NO_OFFSET: u64 = u64::MAX;

fn offset_word(p: &Position) -> u64 {
    p.offset().unwrap_or(NO_OFFSET)
}

impl Tracker {
    pub fn new(start: Position) -> Arc<Self> {
        Arc::new(Tracker {
            offset: AtomicU64::new(offset_word(&start)),
            state: Mutex::new(State {
                base: 0,
                pending: VecDeque::new(),
                cursors: VecDeque::new(),
                committed: start.clone(),
                issued: start,
                poisoned: false,
                outstanding: 0,
                keep: None,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not take the delivery path down with it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Issues the acknowledgement for one line ending at `end`.
    pub fn issue(self: &Arc<Self>, end: Position) -> Ack {
        let mut st = self.lock();
        Self::issue_locked(self, &mut st, end)
    }

    /// Issues acknowledgements for many lines (a read chunk) under one lock:
    /// `f` gets an [`Issuer`]. `f` must not settle an Ack of this tracker
    /// (ack or drop one) while it runs: that would wait for the lock it holds.
    pub fn issuing<R>(self: &Arc<Self>, f: impl FnOnce(&mut Issuer<'_>) -> R) -> R {
        let mut is = Issuer {
            tracker: self,
            st: self.lock(),
        };
        f(&mut is)
    }

    fn issue_locked(self: &Arc<Self>, st: &mut State, end: Position) -> Ack {
        let seq = st.base + st.pending.len() as u64;
        let slot = match &end {
            Position::Offset(o) => Slot {
                end: *o,
                remaining: 1,
                poisoned: false,
                cursor: false,
            },
            Position::Cursor(c) => {
                st.cursors.push_back(c.clone());
                Slot {
                    end: 0,
                    remaining: 1,
                    poisoned: false,
                    cursor: true,
                }
            }
        };
        st.pending.push_back(slot);
        st.issued = end;
        if st.outstanding == 0 {
            st.keep = Some(self.clone());
        }
        st.outstanding += 1;
        Ack {
            tracker: Some(TrackerPtr::of(self)),
            first: seq,
            last: seq,
            more: None,
            charge: None,
        }
    }

    /// Moves the position over bytes that produce no line (skipped garbage,
    /// blank input): committed as soon as everything before it is.
    pub fn skip_to(self: &Arc<Self>, end: Position) {
        self.issue(end).ack();
    }

    /// The position up to which every line has been acknowledged.
    pub fn committed(&self) -> Position {
        self.lock().committed.clone()
    }

    /// This tracker's identity, as [`Ack::tracker_id`] gives it for its
    /// acks: for telling trackers apart, never for reaching one.
    pub fn id(&self) -> usize {
        self as *const Tracker as usize
    }

    /// The committed offset without taking the tracker's lock (`None` for
    /// a cursor): what a positions save of thousands of files reads, while
    /// the delivery threads settle the same trackers. Never ahead of
    /// [`Tracker::committed`]: it is published after the position moved.
    pub fn committed_offset(&self) -> Option<u64> {
        match self.offset.load(Ordering::Acquire) {
            NO_OFFSET => None,
            o => Some(o),
        }
    }

    /// The position after the last issued line (what has been read).
    pub fn issued(&self) -> Position {
        self.lock().issued.clone()
    }

    /// Lines issued and not yet acknowledged.
    pub fn pending(&self) -> usize {
        self.lock().pending.len()
    }

    /// True once every issued line is acknowledged.
    pub fn is_drained(&self) -> bool {
        self.lock().pending.is_empty()
    }

    /// True if some line was dropped unacknowledged: the committed position
    /// is stuck before it for the rest of this process.
    pub fn is_poisoned(&self) -> bool {
        self.lock().poisoned
    }

    /// Settles every sequence number of `ranges` (inclusive) under one lock.
    /// Returns the tracker's hold on itself once nothing is outstanding:
    /// the caller drops it after the lock is released (it may free the
    /// tracker), and must not touch the tracker after that.
    #[must_use]
    fn settle(
        &self,
        ranges: impl IntoIterator<Item = (u64, u64)>,
        ok: bool,
    ) -> Option<Arc<Tracker>> {
        let mut st = self.lock();
        let base = st.base;
        let mut settled = 0;
        for (first, last) in ranges {
            for seq in first.max(base)..=last {
                let Some(slot) = st.pending.get_mut((seq - base) as usize) else {
                    continue;
                };
                if slot.remaining > 0 {
                    slot.remaining -= 1;
                    settled += 1;
                }
                if !ok {
                    slot.poisoned = true;
                }
            }
        }
        st.outstanding = st.outstanding.saturating_sub(settled);
        if !ok {
            st.poisoned = true;
        }
        let mut advanced = false;
        while let Some(front) = st.pending.front() {
            if front.remaining > 0 || front.poisoned {
                break;
            }
            let Some(slot) = st.pending.pop_front() else {
                break;
            };
            st.base += 1;
            if !slot.cursor {
                st.committed = Position::Offset(slot.end);
            } else if let Some(c) = st.cursors.pop_front() {
                st.committed = Position::Cursor(c);
            }
            advanced = true;
        }
        if advanced {
            self.offset
                .store(offset_word(&st.committed), Ordering::Release);
            COMMIT_EPOCH.fetch_add(1, Ordering::Release);
            // A read chunk's worth of slots is kept only while in flight:
            // with thousands of files, each one's high-water capacity
            // would otherwise stay allocated (~8 KiB a file).
            if st.pending.is_empty() && st.pending.capacity() > KEEP_SLOTS {
                st.pending = VecDeque::new();
                st.cursors = VecDeque::new();
            }
        }
        if st.outstanding == 0 {
            st.keep.take()
        } else {
            None
        }
    }

    fn add_copies(&self, ranges: impl IntoIterator<Item = (u64, u64)>) {
        let mut st = self.lock();
        let base = st.base;
        let mut added = 0;
        for (first, last) in ranges {
            for seq in first.max(base)..=last {
                if let Some(slot) = st.pending.get_mut((seq - base) as usize) {
                    slot.remaining += 1;
                    added += 1;
                }
            }
        }
        // Not zero before: the ack being copied is unsettled.
        st.outstanding += added;
    }
}

/// Where an unsettled [`Ack`] finds its tracker: a plain pointer, kept
/// valid by the tracker's hold on itself (`State::keep`) for as long as the
/// ack has lines outstanding (see the module docs). Only [`Ack`] and
/// [`AckRuns`] hold one, and only until they settle those lines.
#[derive(Clone, Copy, PartialEq, Eq)]
struct TrackerPtr(std::ptr::NonNull<Tracker>);

// SAFETY: a `Tracker` is `Send + Sync` (a mutex and an atomic); the pointer
// is only dereferenced while the tracker is alive (see `get`).
unsafe impl Send for TrackerPtr {}
unsafe impl Sync for TrackerPtr {}

impl TrackerPtr {
    fn of(t: &Arc<Tracker>) -> Self {
        TrackerPtr(std::ptr::NonNull::from(&**t))
    }

    /// The tracker. Call only while lines issued through this pointer are
    /// outstanding (not yet settled): then `State::keep` holds it.
    fn get(&self) -> &Tracker {
        // SAFETY: see above; every caller holds unsettled lines of it.
        unsafe { self.0.as_ref() }
    }

    /// Settles `ranges` (lines of this tracker that the caller holds) and
    /// lets go of the tracker: after this the pointer must not be used.
    fn settle(self, ranges: impl IntoIterator<Item = (u64, u64)>, ok: bool) {
        // The tracker's hold on itself, if this was the last outstanding
        // line; dropped only after `settle` has released the lock.
        let keep = self.get().settle(ranges, ok);
        drop(keep);
    }
}

/// Issues acks of one tracker while holding its lock (see [`Tracker::issuing`]).
pub struct Issuer<'a> {
    tracker: &'a Arc<Tracker>,
    st: MutexGuard<'a, State>,
}

impl Issuer<'_> {
    /// Same as [`Tracker::issue`].
    pub fn issue(&mut self, end: Position) -> Ack {
        Tracker::issue_locked(self.tracker, &mut self.st, end)
    }
}

/// The acknowledgement of one entry. See the module docs.
#[must_use = "an Ack must be acknowledged with ack(); dropping it poisons the position"]
pub struct Ack {
    tracker: Option<TrackerPtr>,
    /// First inclusive range of sequence numbers.
    first: u64,
    last: u64,
    /// Further ranges, for merged entries (allocated only then; boxed so
    /// the common entry stays small — entries are moved a lot).
    // A thin pointer on purpose (see above): the extra allocation is paid
    // only by the rare entries that use it.
    #[allow(clippy::box_collection)]
    more: Option<Box<Vec<(u64, u64)>>>,
    charge: Option<Charge>,
}

impl std::fmt::Debug for Ack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ack({}..={})", self.first, self.last)
    }
}

impl Ack {
    /// An acknowledgement that tracks nothing (stdin, tests, synthetic lines).
    pub fn none() -> Ack {
        Ack {
            tracker: None,
            first: 0,
            last: 0,
            more: None,
            charge: None,
        }
    }

    fn ranges(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        std::iter::once((self.first, self.last))
            .chain(self.more.iter().flat_map(|v| v.iter().copied()))
    }

    fn settle(&mut self, ok: bool) {
        if let Some(t) = self.tracker.take() {
            t.settle(self.ranges(), ok);
        }
    }

    /// Acknowledges: Loki accepted the entry, or it was dropped and counted.
    pub fn ack(mut self) {
        self.settle(true);
        self.charge = None;
    }

    /// Takes over the lines of `other` (an entry merged into this one, e.g.
    /// CRI partials or multiline). Acks of different trackers cannot merge:
    /// `other` is handed back unchanged in `Err`.
    pub fn merge(&mut self, mut other: Ack) -> Result<(), Ack> {
        match (&self.tracker, &other.tracker) {
            (_, None) => Ok(()),
            (None, Some(_)) => {
                let charge = self.charge.take();
                *self = other;
                if self.charge.is_none() {
                    self.charge = charge;
                }
                Ok(())
            }
            (Some(a), Some(b)) if a == b => {
                other.tracker = None; // its lines are now covered by self
                for r in other.ranges() {
                    match self.more.as_mut().and_then(|v| v.last_mut()) {
                        Some(last) if last.1 + 1 == r.0 => last.1 = r.1,
                        None if self.last + 1 == r.0 => self.last = r.1,
                        _ => self.more.get_or_insert_default().push(r),
                    }
                }
                Ok(())
            }
            _ => Err(other),
        }
    }

    /// A second acknowledgement for the same lines (one per client): the
    /// position advances only when every copy is acknowledged.
    pub fn duplicate(&self) -> Ack {
        if let Some(t) = &self.tracker {
            t.get().add_copies(self.ranges());
        }
        Ack {
            tracker: self.tracker,
            first: self.first,
            last: self.last,
            more: self.more.clone(),
            charge: None,
        }
    }

    /// Gives back all but `keep` bytes of this entry's budget charge: its
    /// line was encoded elsewhere (a spool chunk) and freed, so less is held
    /// in memory than was charged. The rest goes when the ack is settled.
    pub fn keep_charge(&mut self, keep: usize) {
        if let Some(c) = self.charge.as_mut() {
            let extra = c.bytes.saturating_sub(keep);
            if extra > 0 {
                drop(c.split(extra));
            }
        }
    }

    /// Attaches a budget charge, released when this ack is settled or dropped.
    pub fn set_charge(&mut self, charge: Charge) {
        self.charge = Some(charge);
    }

    /// The [`Tracker::id`] of the tracker this ack belongs to (`None` for
    /// [`Ack::none`]).
    pub fn tracker_id(&self) -> Option<usize> {
        self.tracker.map(|t| t.0.as_ptr() as usize)
    }

    /// True if this ack belongs to `tracker`.
    pub fn is_of(&self, tracker: &Arc<Tracker>) -> bool {
        self.tracker.is_some_and(|t| t == TrackerPtr::of(tracker))
    }
}

/// Acknowledges many entries at once, taking each tracker's lock once per
/// run of consecutive acks of that tracker (a batch holds long runs of one
/// file's lines), and releasing the budget once.
pub fn ack_many<I: IntoIterator<Item = Ack>>(acks: I) {
    let mut runs = AckRuns::default();
    for a in acks {
        runs.push(a);
    }
    runs.ack();
}

impl Drop for Ack {
    fn drop(&mut self) {
        self.settle(false);
    }
}

/// The least room a waiter resumes with where it is at most half the
/// limit (the spool's budget; a client's is 4 MiB or more): with the
/// spool's 1.5 MiB budget a quarter (384 KiB) woke the reader for ~6 read
/// chunks at a time, and a one-file drain with the spool cost ~11 % more
/// CPU than with the 2 MiB budget before it; ~4 % with this
/// (`benches/HISTORY.md`).
const RESUME_MIN: usize = 512 << 10;

/// The bound on bytes held in memory between the pipeline and Loki.
pub struct Budget {
    limit: usize,
    used: AtomicUsize,
    /// Threads waiting in `charge_blocking` (release signals only then).
    waiters: AtomicUsize,
    /// The largest charge a waiter wants (0 when none waits).
    want: AtomicUsize,
    lock: Mutex<()>,
    freed: Condvar,
    /// Called when a registered interest (see [`Budget::want_wake`]) can be
    /// met: how a thread that waits on something else (the tailer waits on
    /// file events) learns that budget is free again.
    waker: OnceLock<Box<dyn Fn() + Send + Sync>>,
}

impl Budget {
    /// A budget for the rest of the process. The agent makes one per
    /// delivery path at start; charges then point at it without a
    /// reference count, since a count per entry — taken on the reading
    /// thread, dropped on the sender's — moved the count's cache line
    /// between the two cores for every line (`benches/HISTORY.md`). Tests
    /// that make many budgets leak a few hundred bytes each.
    pub fn new(limit: usize) -> &'static Self {
        Box::leak(Box::new(Budget {
            limit: limit.max(1),
            used: AtomicUsize::new(0),
            waiters: AtomicUsize::new(0),
            want: AtomicUsize::new(0),
            lock: Mutex::new(()),
            freed: Condvar::new(),
            waker: OnceLock::new(),
        }))
    }

    /// Sets the function called when a registered interest can be met
    /// (once; later calls are ignored).
    pub fn set_waker(&self, f: impl Fn() + Send + Sync + 'static) {
        let _ = self.waker.set(Box::new(f));
    }

    /// Registers interest in `n` bytes without blocking: the waker is called
    /// once they fit. Pair with [`unwant`](Self::unwant) after waking.
    pub fn want_wake(&self, n: usize) {
        self.want.fetch_max(n, Ordering::SeqCst);
        self.waiters.fetch_add(1, Ordering::SeqCst);
    }

    /// Ends an interest registered with [`want_wake`](Self::want_wake).
    pub fn unwant(&self) {
        self.leave_wait();
    }

    /// True if a charge of `n` bytes may be taken now without hysteresis
    /// getting in the way (see `resumable`).
    pub fn has_room(&self, n: usize) -> bool {
        self.resumable(n)
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes currently charged.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn try_take(&self, n: usize) -> bool {
        let mut cur = self.used.load(Ordering::Relaxed);
        loop {
            // An entry larger than the whole budget passes when nothing else
            // is held, so a huge line can never deadlock the agent.
            if cur != 0 && cur + n > self.limit() {
                return false;
            }
            match self
                .used
                .compare_exchange_weak(cur, cur + n, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Charges `n` bytes, blocking the calling (non-async) thread until they
    /// fit. Returns `None` if `stop` becomes true while waiting.
    pub fn charge_blocking(&'static self, n: usize, stop: &dyn Fn() -> bool) -> Option<Charge> {
        loop {
            // Hysteresis: once full, wait for a good share of the budget to
            // be free (see `resumable`), so the reader and the senders do
            // not wake each other for every freed entry.
            if self.resumable(n) {
                if let Some(c) = self.try_charge(n) {
                    return Some(c);
                }
            }
            if stop() {
                return None;
            }
            let guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
            self.want.fetch_max(n, Ordering::SeqCst);
            self.waiters.fetch_add(1, Ordering::SeqCst);
            if self.resumable(n) {
                if let Some(c) = self.try_charge(n) {
                    self.leave_wait();
                    return Some(c);
                }
            }
            let _ = self
                .freed
                .wait_timeout(guard, Duration::from_millis(50))
                .unwrap_or_else(|p| p.into_inner());
            self.leave_wait();
        }
    }

    fn leave_wait(&self) {
        if self.waiters.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.want.store(0, Ordering::SeqCst);
        }
    }

    /// A waiter for `n` bytes may go on: the budget is empty, or `n` and a
    /// quarter of the limit (at least [`RESUME_MIN`] if that is at most
    /// half of it) fit.
    fn resumable(&self, n: usize) -> bool {
        let cur = self.used.load(Ordering::SeqCst);
        let limit = self.limit();
        let step = if limit / 2 >= RESUME_MIN {
            (limit / 4).max(RESUME_MIN)
        } else {
            limit / 4
        };
        cur == 0 || cur + n.max(step) <= limit
    }

    /// Charges `n` bytes if they fit now.
    pub fn try_charge(&'static self, n: usize) -> Option<Charge> {
        self.try_take(n).then(|| Charge {
            budget: self,
            bytes: n,
        })
    }

    /// Charges without waiting (may exceed the limit; for tests and flushes).
    pub fn charge_now(&'static self, n: usize) -> Charge {
        self.used.fetch_add(n, Ordering::AcqRel);
        Charge {
            budget: self,
            bytes: n,
        }
    }

    fn release(&self, n: usize) {
        if n == 0 {
            return;
        }
        self.used.fetch_sub(n, Ordering::SeqCst);
        self.wake_if_resumable();
    }

    /// Wakes the waiters (and the registered waker) if what they want fits.
    fn wake_if_resumable(&self) {
        if self.waiters.load(Ordering::SeqCst) > 0
            && self.resumable(self.want.load(Ordering::SeqCst))
        {
            {
                let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
                self.freed.notify_all();
            }
            if let Some(w) = self.waker.get() {
                w();
            }
        }
    }
}

/// Bytes charged against a [`Budget`], released on drop.
pub struct Charge {
    budget: &'static Budget,
    bytes: usize,
}

impl Charge {
    /// Moves `n` of this charge's bytes (at most all of them) into a new
    /// charge of the same budget: one entry charged for several client copies.
    pub fn split(&mut self, n: usize) -> Charge {
        let n = n.min(self.bytes);
        self.bytes -= n;
        Charge {
            budget: self.budget,
            bytes: n,
        }
    }

    /// Takes over `other`'s bytes (same budget), to release them in one go.
    fn absorb(&mut self, mut other: Charge) {
        self.bytes += std::mem::take(&mut other.bytes);
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.release(self.bytes);
    }
}

mod runs;
pub use runs::AckRuns;

#[cfg(test)]
mod tests;
