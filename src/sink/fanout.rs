//! Hands each entry to every outlet (a client's queue, or the spool): the
//! one place the memory budget is charged, so the one place where a slow
//! Loki slows the readers down.
//!
//! Owns: [`Fanout`] and [`Outlet`]. For N outlets an entry is sent to the
//! first N-1 as a copy (same labels `Arc`, the line copied or sharing its
//! read chunk, a duplicated [`Ack`](crate::ack::Ack)) and to the last as
//! itself; each copy carries its own budget charge, so the budget is (at
//! least) the bytes really held. A line that shares a read chunk is charged
//! its own bytes; so that the chunk behind it stays within a small multiple
//! of what its lines are charged, a line whose chunk is mostly dead by the
//! time it is sent (its neighbours dropped by a stage) is copied out first
//! ([`Text::compact`](crate::text::Text::compact)). The source's
//! position advances only when every outlet has settled its copy.
//!
//! Never blocks: [`Fanout::try_send`] hands the entry back ([`NotTaken::Full`])
//! when the budget is spent or an outlet's queue is full, so the caller (the
//! tailer) keeps doing its other work — above all taking on new files, whose
//! inodes must be pinned before the kubelet rotates them away — and retries
//! once [`Budget::want_wake`](crate::ack::Budget::want_wake) reports room.
//!
//! Entries are gathered per outlet into chunks of up to [`CHUNK`] and sent
//! as one message, so a client's batcher wakes once per chunk, not per line.
//! The source calls [`Fanout::flush`] at the end of each read turn and before
//! it sleeps; a chunk is also sent when full, and when the budget is found
//! spent (so what the budget waits for is never stuck in our own buffer).
//!
//! Must never: block the calling thread on delivery, or keep entries
//! buffered across a sleep of the source without reporting it (`flush`
//! returns whether everything went out).

use crate::ack::Budget;
use crate::entry::Entry;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Fixed per-entry overhead charged on top of the line (struct, labels ref,
/// batch bookkeeping), so a flood of empty lines is bounded too.
pub const ENTRY_OVERHEAD: usize = 96;

/// Entries per chunk sent to an outlet.
pub const CHUNK: usize = 256;

/// Where the fan-out delivers chunks of entries.
#[derive(Clone)]
pub enum Outlet {
    /// A client's queue (no spool: each client gets every entry).
    Client(mpsc::Sender<Vec<Entry>>),
    /// The spool writer (with `wal`: the clients read the spool).
    Spool(std::sync::mpsc::SyncSender<Vec<Entry>>),
}

enum Refused {
    Full(Vec<Entry>),
    Closed,
}

impl Outlet {
    fn try_send(&self, chunk: Vec<Entry>) -> Result<(), Refused> {
        match self {
            Outlet::Client(tx) => tx.try_send(chunk).map_err(|e| match e {
                mpsc::error::TrySendError::Full(c) => Refused::Full(c),
                mpsc::error::TrySendError::Closed(_) => Refused::Closed,
            }),
            Outlet::Spool(tx) => tx.try_send(chunk).map_err(|e| match e {
                std::sync::mpsc::TrySendError::Full(c) => Refused::Full(c),
                std::sync::mpsc::TrySendError::Disconnected(_) => Refused::Closed,
            }),
        }
    }
}

/// The sender side of every outlet. Each clone has its own buffers.
pub struct Fanout {
    outlets: Vec<Outlet>,
    pending: RefCell<Vec<Vec<Entry>>>,
    budget: &'static Budget,
    stop: Arc<AtomicBool>,
}

impl Clone for Fanout {
    fn clone(&self) -> Self {
        Fanout::new(self.outlets.clone(), self.budget, self.stop.clone())
    }
}

/// The agent is stopping (or an outlet is gone): the entry was not queued
/// (its ack is poisoned by the drop, so its position does not advance).
#[derive(Debug)]
pub struct Stopped;

/// Why [`Fanout::try_send`] did not take an entry.
#[derive(Debug)]
pub enum NotTaken {
    /// No room now (budget spent or a queue full): here it is back; retry
    /// later.
    Full(Entry),
    /// The agent is stopping; the entry was dropped unacknowledged.
    Stopped,
}

impl Fanout {
    pub fn new(outlets: Vec<Outlet>, budget: &'static Budget, stop: Arc<AtomicBool>) -> Self {
        let pending = RefCell::new(outlets.iter().map(|_| Vec::new()).collect());
        Fanout {
            outlets,
            pending,
            budget,
            stop,
        }
    }

    /// A fan-out to client queues (no spool).
    pub fn to_clients(
        clients: Vec<mpsc::Sender<Vec<Entry>>>,
        budget: &'static Budget,
        stop: Arc<AtomicBool>,
    ) -> Self {
        Self::new(
            clients.into_iter().map(Outlet::Client).collect(),
            budget,
            stop,
        )
    }

    pub fn budget(&self) -> &'static Budget {
        self.budget
    }

    pub fn is_stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// The cost charged for `entry` per outlet.
    pub fn cost(entry: &Entry) -> usize {
        entry.size() + ENTRY_OVERHEAD
    }

    /// The budget `entry` needs to be taken (its cost for every outlet).
    pub fn charge_for(&self, entry: &Entry) -> usize {
        Self::cost(entry) * self.outlets.len().max(1)
    }

    /// Queues `entry` for every outlet if there is room now; otherwise hands
    /// it back. Call [`flush`](Self::flush) before the source goes idle.
    // The entry comes back by value: boxing it would allocate on every
    // refusal, which is exactly when the agent is under pressure.
    #[allow(clippy::result_large_err)]
    pub fn try_send(&self, entry: Entry) -> Result<(), NotTaken> {
        let n = self.outlets.len();
        if n == 0 || self.is_stopping() {
            // No outlet configured: nothing will ever accept it.
            return Err(NotTaken::Stopped);
        }
        // An outlet whose queue refused a whole chunk: wait for it.
        for i in 0..n {
            if self.pending.borrow()[i].len() >= CHUNK {
                self.flush_one(i).map_err(|_| NotTaken::Stopped)?;
                if self.pending.borrow()[i].len() >= CHUNK {
                    return Err(NotTaken::Full(entry));
                }
            }
        }
        let mut entry = entry;
        entry.line.compact();
        let cost = Self::cost(&entry);
        let Some(mut charge) = self.budget.try_charge(cost * n) else {
            // What the budget waits for must not sit in our own buffers.
            self.flush().map_err(|_| NotTaken::Stopped)?;
            return Err(NotTaken::Full(entry));
        };
        // Copies for all outlets but the last; the entry itself goes there.
        for i in 0..n - 1 {
            let mut copy = Entry {
                labels: entry.labels.clone(),
                timestamp: entry.timestamp,
                line: entry.line.clone(),
                metadata: entry.metadata.clone(),
                extracted: Default::default(),
                ack: entry.ack.duplicate(),
            };
            copy.ack.set_charge(charge.split(cost));
            self.push(i, copy).map_err(|_| NotTaken::Stopped)?;
        }
        entry.ack.set_charge(charge);
        self.push(n - 1, entry).map_err(|_| NotTaken::Stopped)
    }

    /// Hands `backlog`'s entries, in order, to [`try_send`](Self::try_send)
    /// while it takes them (a refused one goes back to the front).
    /// `Ok(true)`: the backlog is empty.
    pub fn send_backlog(&self, backlog: &mut VecDeque<Entry>) -> Result<bool, Stopped> {
        while let Some(e) = backlog.pop_front() {
            match self.try_send(e) {
                Ok(()) => {}
                Err(NotTaken::Full(e)) => {
                    backlog.push_front(e);
                    return Ok(false);
                }
                Err(NotTaken::Stopped) => return Err(Stopped),
            }
        }
        Ok(true)
    }

    /// Hands `entries` (left empty), in order, to
    /// [`try_send`](Self::try_send) after `backlog`'s: straight from the
    /// `Vec` while the backlog is empty, so that a read's entries are not
    /// moved into the backlog and out again; what is refused goes to the
    /// back of the backlog. `Ok(true)`: the backlog is empty.
    pub fn send_all(
        &self,
        entries: &mut Vec<Entry>,
        backlog: &mut VecDeque<Entry>,
    ) -> Result<bool, Stopped> {
        if !backlog.is_empty() {
            backlog.extend(entries.drain(..));
            return self.send_backlog(backlog);
        }
        let mut rest = entries.drain(..);
        while let Some(e) = rest.next() {
            match self.try_send(e) {
                Ok(()) => {}
                Err(NotTaken::Full(e)) => {
                    backlog.push_back(e);
                    backlog.extend(rest);
                    return Ok(false);
                }
                Err(NotTaken::Stopped) => return Err(Stopped),
            }
        }
        Ok(true)
    }

    /// Buffers `e` for outlet `i`, sending the chunk when it is full.
    fn push(&self, i: usize, e: Entry) -> Result<(), Stopped> {
        let full = {
            let mut p = self.pending.borrow_mut();
            if p[i].capacity() == 0 {
                p[i].reserve(CHUNK);
            }
            p[i].push(e);
            p[i].len() >= CHUNK
        };
        if full {
            self.flush_one(i)?;
        }
        Ok(())
    }

    /// Sends every buffered chunk that its outlet takes now. `Ok(true)`:
    /// nothing is left buffered.
    pub fn flush(&self) -> Result<bool, Stopped> {
        let mut all = true;
        for i in 0..self.outlets.len() {
            self.flush_one(i)?;
            all &= self.pending.borrow()[i].is_empty();
        }
        Ok(all)
    }

    fn flush_one(&self, i: usize) -> Result<(), Stopped> {
        let mut chunk = std::mem::take(&mut self.pending.borrow_mut()[i]);
        if chunk.is_empty() {
            return Ok(());
        }
        // A chunk has room for CHUNK entries (~30 KiB) so that a drain
        // fills it without growing it. One sent at the end of a read turn
        // with a few lines would carry that room, uncharged, as long as it
        // waits in the outlet's queue: at a steady rate over 5,000 files,
        // a spool writer's queue of such chunks held 7.9 MB (heaptrack)
        // under a 4 MiB budget. It goes with what it holds (a shrink in
        // place), so the budget is what the queue really holds.
        if chunk.len() < CHUNK / 2 {
            chunk.shrink_to_fit();
        }
        match self.outlets[i].try_send(chunk) {
            Ok(()) => Ok(()),
            Err(Refused::Full(back)) => {
                self.pending.borrow_mut()[i] = back;
                Ok(())
            }
            Err(Refused::Closed) => Err(Stopped),
        }
    }
}

impl Drop for Fanout {
    fn drop(&mut self) {
        // A clean stop sends what is buffered (a queue that stays full for
        // a second is given up on); entries not sent are dropped
        // unacknowledged and read again after the restart.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
        while let Ok(false) = self.flush() {
            if std::time::Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ack::{Ack, Position, Tracker};
    use crate::entry::Timestamp;
    use crate::labels::LabelSet;

    fn entry(line: &str, ack: crate::ack::Ack) -> Entry {
        Entry::new(LabelSet::empty(), Timestamp(5), line.into(), ack)
    }

    #[test]
    fn a_line_whose_neighbours_were_dropped_is_charged_and_held_without_its_chunk() {
        let (t1, mut r1) = mpsc::channel(4);
        let budget = Budget::new(1 << 20);
        let f = Fanout::to_clients(vec![t1], budget, Arc::new(AtomicBool::new(false)));
        let read = "0123456789abcdef\n".repeat(100);
        let chunk = crate::text::Chunk::new(read.as_bytes());
        let mut lines: Vec<_> = (0..100)
            .map(|i| chunk.line(i * 17, i * 17 + 16).unwrap())
            .collect();
        drop(chunk);
        // A stage kept two lines of the hundred: the first while all were
        // still alive, the second after the others were dropped.
        let first = lines.remove(0);
        f.try_send(entry("", Ack::none())).unwrap();
        let mut e = entry("", Ack::none());
        e.line = first;
        f.try_send(e).unwrap();
        let last = lines.pop().unwrap();
        drop(lines);
        let mut e = entry("", Ack::none());
        e.line = last;
        f.try_send(e).unwrap();
        assert!(f.flush().unwrap());
        let got = r1.try_recv().unwrap();
        assert!(got[1].line.is_shared(), "its chunk was in use when sent");
        assert!(!got[2].line.is_shared(), "2 lines of 100 left: copied out");
        assert_eq!(got[2].line, "0123456789abcdef");
        assert_eq!(budget.used(), 2 * (16 + ENTRY_OVERHEAD) + ENTRY_OVERHEAD);
    }

    #[test]
    fn every_client_gets_a_copy_and_position_waits_for_all() {
        let (t1, mut r1) = mpsc::channel(4);
        let (t2, mut r2) = mpsc::channel(4);
        let budget = Budget::new(1 << 20);
        let f = Fanout::to_clients(vec![t1, t2], budget, Arc::new(AtomicBool::new(false)));
        let tr = Tracker::new(Position::Offset(0));
        f.try_send(entry("hello", tr.issue(Position::Offset(6))))
            .unwrap();
        assert!(r1.try_recv().is_err(), "buffered until flush");
        assert!(f.flush().unwrap());
        let a = r1.try_recv().unwrap().pop().unwrap();
        let b = r2.try_recv().unwrap().pop().unwrap();
        assert_eq!(a.line, "hello");
        assert_eq!(b.line, "hello");
        assert_eq!(budget.used(), 2 * (5 + ENTRY_OVERHEAD));
        a.ack.ack();
        assert_eq!(tr.committed(), Position::Offset(0));
        assert_eq!(budget.used(), 5 + ENTRY_OVERHEAD);
        b.ack.ack();
        assert_eq!(tr.committed(), Position::Offset(6));
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn a_spent_budget_hands_the_entry_back_after_flushing_what_it_holds() {
        let (t1, mut r1) = mpsc::channel(64);
        // Budget for ~3 entries: the 4th is handed back, and the first three
        // were flushed so that their acknowledgement can free the budget.
        let budget = Budget::new(3 * (1 + ENTRY_OVERHEAD));
        let f = Fanout::to_clients(vec![t1], budget, Arc::new(AtomicBool::new(false)));
        for _ in 0..3 {
            f.try_send(entry("x", crate::ack::Ack::none())).unwrap();
        }
        let back = match f.try_send(entry("y", crate::ack::Ack::none())) {
            Err(NotTaken::Full(e)) => e,
            other => panic!("expected Full, got {other:?}"),
        };
        assert_eq!(back.line, "y");
        let chunk = r1.try_recv().expect("flushed before handing back");
        assert_eq!(chunk.len(), 3);
        crate::ack::ack_many(chunk.into_iter().map(|e| e.ack));
        assert_eq!(budget.used(), 0);
        f.try_send(back).unwrap();
    }

    #[test]
    fn a_reads_entries_go_in_order_after_the_backlog_and_the_refused_wait_in_it() {
        let (t1, mut r1) = mpsc::channel(64);
        // Budget for 3 entries of one byte.
        let budget = Budget::new(3 * (1 + ENTRY_OVERHEAD));
        let f = Fanout::to_clients(vec![t1], budget, Arc::new(AtomicBool::new(false)));
        let read = |ls: &[&str]| -> Vec<Entry> {
            ls.iter()
                .map(|l| entry(l, crate::ack::Ack::none()))
                .collect()
        };
        let mut backlog = VecDeque::new();
        let mut v = read(&["a", "b", "c", "d", "e"]);
        assert!(!f.send_all(&mut v, &mut backlog).unwrap());
        assert!(v.is_empty());
        let waiting: Vec<_> = backlog.iter().map(|e| e.line.to_string()).collect();
        assert_eq!(waiting, ["d", "e"]);
        // The next read goes behind the backlog, even with room again.
        let taken = r1.try_recv().expect("flushed before handing back");
        // Dropping the entries taken gives their budget back.
        let mut sent: Vec<String> = taken.into_iter().map(|e| e.line.to_string()).collect();
        let mut v = read(&["f"]);
        assert!(f.send_all(&mut v, &mut backlog).unwrap());
        assert!(f.flush().unwrap());
        while let Ok(chunk) = r1.try_recv() {
            sent.extend(chunk.into_iter().map(|e| e.line.to_string()));
        }
        assert_eq!(sent, ["a", "b", "c", "d", "e", "f"]);
    }

    #[test]
    fn a_full_queue_keeps_the_chunk_and_reports_it() {
        let (t1, mut r1) = mpsc::channel(1);
        let budget = Budget::new(1 << 30);
        let f = Fanout::to_clients(vec![t1], budget, Arc::new(AtomicBool::new(false)));
        // First chunk fills the queue; the second cannot go.
        for i in 0..2 * CHUNK {
            f.try_send(entry(&i.to_string(), crate::ack::Ack::none()))
                .unwrap();
        }
        // The outlet is stuck with a whole chunk: the next entry is refused.
        assert!(matches!(
            f.try_send(entry("z", crate::ack::Ack::none())),
            Err(NotTaken::Full(_))
        ));
        assert!(!f.flush().unwrap(), "a chunk is still buffered");
        assert_eq!(r1.try_recv().unwrap().len(), CHUNK);
        assert!(f.flush().unwrap());
        assert_eq!(r1.try_recv().unwrap().len(), CHUNK);
    }

    #[test]
    fn a_chunk_sent_with_a_few_entries_does_not_carry_a_full_chunks_room() {
        let (t1, mut r1) = mpsc::channel(64);
        let budget = Budget::new(1 << 30);
        let f = Fanout::to_clients(vec![t1], budget, Arc::new(AtomicBool::new(false)));
        for round in 0..3 {
            for i in 0..3 {
                f.try_send(entry(&format!("{round}.{i}"), crate::ack::Ack::none()))
                    .unwrap();
            }
            assert!(f.flush().unwrap());
            let chunk = r1.try_recv().unwrap();
            assert_eq!(chunk.len(), 3);
            assert!(
                chunk.capacity() < CHUNK / 2,
                "capacity {}",
                chunk.capacity()
            );
        }
        // A full chunk goes as it was filled, without a reallocation.
        for i in 0..CHUNK {
            f.try_send(entry(&i.to_string(), crate::ack::Ack::none()))
                .unwrap();
        }
        let chunk = r1.try_recv().unwrap();
        assert_eq!((chunk.len(), chunk.capacity()), (CHUNK, CHUNK));
    }

    #[test]
    fn budget_waker_fires_when_room_returns() {
        let budget = Budget::new(1000);
        let fired = Arc::new(AtomicBool::new(false));
        let f2 = fired.clone();
        budget.set_waker(move || f2.store(true, Ordering::SeqCst));
        let c = budget.try_charge(1000).unwrap();
        budget.want_wake(100);
        assert!(!fired.load(Ordering::SeqCst));
        drop(c);
        assert!(fired.load(Ordering::SeqCst));
        budget.unwant();
    }
}
