//! Hands each entry to every client: the one place the memory budget is
//! charged, so the one place where a slow Loki slows the readers down.
//!
//! Owns: [`Fanout`]. For N clients an entry is sent to the first N-1 as a
//! copy (same labels `Arc`, a copied line, a duplicated [`Ack`]) and to the
//! last as itself; each copy carries its own budget charge, so the budget is
//! the bytes really held. The source's position advances only when every
//! client has settled its copy.
//!
//! Entries are gathered per client into chunks of up to [`CHUNK`] and sent as
//! one message, so a client's batcher wakes once per chunk, not per line. The
//! source calls [`Fanout::flush`] at the end of each read turn and before it
//! sleeps; a chunk is also sent when full, and before waiting for budget (so
//! what the budget waits for is never stuck in our own buffer).
//!
//! Must never: be called from inside an async task (it blocks the calling
//! thread while the budget is spent); keep entries buffered across a sleep of
//! the source (callers flush).

use crate::ack::Budget;
use crate::entry::Entry;
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Fixed per-entry overhead charged on top of the line (struct, labels ref,
/// batch bookkeeping), so a flood of empty lines is bounded too.
pub const ENTRY_OVERHEAD: usize = 96;

/// Entries per chunk sent to a client.
pub const CHUNK: usize = 256;

/// The sender side of every client's queue. Each clone has its own buffers.
pub struct Fanout {
    clients: Vec<mpsc::Sender<Vec<Entry>>>,
    pending: RefCell<Vec<Vec<Entry>>>,
    budget: Arc<Budget>,
    stop: Arc<AtomicBool>,
}

impl Clone for Fanout {
    fn clone(&self) -> Self {
        Fanout::new(self.clients.clone(), self.budget.clone(), self.stop.clone())
    }
}

/// The agent is stopping: the entry was not queued (its ack is poisoned by
/// the drop, so its position does not advance).
#[derive(Debug)]
pub struct Stopped;

impl Fanout {
    pub fn new(
        clients: Vec<mpsc::Sender<Vec<Entry>>>,
        budget: Arc<Budget>,
        stop: Arc<AtomicBool>,
    ) -> Self {
        let pending = RefCell::new(clients.iter().map(|_| Vec::new()).collect());
        Fanout {
            clients,
            pending,
            budget,
            stop,
        }
    }

    pub fn budget(&self) -> &Arc<Budget> {
        &self.budget
    }

    pub fn is_stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Queues `entry` for every client, blocking while the budget is spent
    /// or a client's queue is full. Call [`flush`](Self::flush) before the
    /// source goes idle.
    pub fn send_blocking(&self, entry: Entry) -> Result<(), Stopped> {
        let n = self.clients.len();
        if n == 0 {
            // No client configured: nothing will ever accept it.
            return Err(Stopped);
        }
        let cost = entry.size() + ENTRY_OVERHEAD;
        let mut entry = entry;
        for i in 0..n {
            let charge = match self.budget.try_charge(cost) {
                Some(c) => c,
                None => {
                    // Waiting for budget: first hand over what we hold.
                    self.flush()?;
                    let stop = || self.stop.load(Ordering::Relaxed);
                    self.budget.charge_blocking(cost, &stop).ok_or(Stopped)?
                }
            };
            let mut e = if i + 1 == n {
                entry_take(&mut entry)
            } else {
                Entry {
                    labels: entry.labels.clone(),
                    timestamp: entry.timestamp,
                    line: entry.line.clone(),
                    metadata: entry.metadata.clone(),
                    ack: entry.ack.duplicate(),
                }
            };
            e.ack.set_charge(charge);
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
        }
        Ok(())
    }

    /// Sends every buffered chunk (blocking while a queue is full).
    pub fn flush(&self) -> Result<(), Stopped> {
        for i in 0..self.clients.len() {
            self.flush_one(i)?;
        }
        Ok(())
    }

    fn flush_one(&self, i: usize) -> Result<(), Stopped> {
        let chunk = std::mem::take(&mut self.pending.borrow_mut()[i]);
        if chunk.is_empty() {
            return Ok(());
        }
        let stop = || self.stop.load(Ordering::Relaxed);
        send_until_stopped(&self.clients[i], chunk, &stop)
    }
}

impl Drop for Fanout {
    fn drop(&mut self) {
        // Best effort: a clean stop sends what is buffered; at a forced stop
        // the entries are dropped unacknowledged (re-read after restart).
        let _ = self.flush();
    }
}

/// Like `blocking_send`, but gives up when the agent is stopping, so a client
/// stuck retrying against a dead Loki cannot hang shutdown.
fn send_until_stopped(
    tx: &mpsc::Sender<Vec<Entry>>,
    mut chunk: Vec<Entry>,
    stop: &dyn Fn() -> bool,
) -> Result<(), Stopped> {
    let mut wait = std::time::Duration::from_micros(100);
    loop {
        match tx.try_send(chunk) {
            Ok(()) => return Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(Stopped),
            Err(mpsc::error::TrySendError::Full(back)) => {
                if stop() {
                    return Err(Stopped);
                }
                chunk = back;
                std::thread::sleep(wait);
                wait = (wait * 2).min(std::time::Duration::from_millis(10));
            }
        }
    }
}

fn entry_take(e: &mut Entry) -> Entry {
    Entry {
        labels: e.labels.clone(),
        timestamp: e.timestamp,
        line: std::mem::take(&mut e.line),
        metadata: std::mem::take(&mut e.metadata),
        ack: std::mem::replace(&mut e.ack, crate::ack::Ack::none()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ack::{Position, Tracker};
    use crate::entry::Timestamp;
    use crate::labels::LabelSet;

    #[test]
    fn every_client_gets_a_copy_and_position_waits_for_all() {
        let (t1, mut r1) = mpsc::channel(4);
        let (t2, mut r2) = mpsc::channel(4);
        let budget = Budget::new(1 << 20);
        let f = Fanout::new(
            vec![t1, t2],
            budget.clone(),
            Arc::new(AtomicBool::new(false)),
        );
        let tr = Tracker::new(Position::Offset(0));
        let e = Entry::new(
            LabelSet::empty(),
            Timestamp(5),
            "hello".into(),
            tr.issue(Position::Offset(6)),
        );
        f.send_blocking(e).unwrap();
        assert!(r1.try_recv().is_err(), "buffered until flush");
        f.flush().unwrap();
        let a = r1.try_recv().unwrap().pop().unwrap();
        let b = r2.try_recv().unwrap().pop().unwrap();
        assert_eq!(a.line, "hello");
        assert_eq!(b.line, "hello");
        assert_eq!(budget.used(), 2 * (5 + ENTRY_OVERHEAD));
        a.ack.ack();
        assert_eq!(tr.committed(), Position::Offset(0));
        b.ack.ack();
        assert_eq!(tr.committed(), Position::Offset(6));
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn a_full_chunk_is_sent_without_flush_and_budget_waits_flush_first() {
        let (t1, mut r1) = mpsc::channel(64);
        // Budget for ~3 entries: the 4th must flush the first three, then
        // wait until they are acknowledged.
        let budget = Budget::new(3 * (1 + ENTRY_OVERHEAD));
        let f = Fanout::new(vec![t1], budget.clone(), Arc::new(AtomicBool::new(false)));
        let acker = std::thread::spawn(move || {
            let mut got = 0;
            while got < CHUNK + 4 {
                match r1.blocking_recv() {
                    Some(chunk) => {
                        got += chunk.len();
                        crate::ack::ack_many(chunk.into_iter().map(|e| e.ack));
                    }
                    None => break,
                }
            }
            got
        });
        for i in 0..CHUNK + 4 {
            let e = Entry::new(
                LabelSet::empty(),
                Timestamp(i as i64),
                "x".into(),
                crate::ack::Ack::none(),
            );
            f.send_blocking(e).unwrap();
        }
        f.flush().unwrap();
        drop(f);
        assert_eq!(acker.join().unwrap(), CHUNK + 4);
        assert_eq!(budget.used(), 0);
    }
}
