//! Hands each entry to every client: the one place the memory budget is
//! charged, so the one place where a slow Loki slows the readers down.
//!
//! Owns: [`Fanout`]. For N clients an entry is sent to the first N-1 as a
//! copy (same labels `Arc`, a copied line, a duplicated [`Ack`]) and to the
//! last as itself; each copy carries its own budget charge, so the budget is
//! the bytes really held. The source's position advances only when every
//! client has settled its copy.
//!
//! Must never: be called from inside an async task (it blocks the calling
//! thread while the budget is spent).

use crate::ack::Budget;
use crate::entry::Entry;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Fixed per-entry overhead charged on top of the line (struct, labels ref,
/// batch bookkeeping), so a flood of empty lines is bounded too.
pub const ENTRY_OVERHEAD: usize = 96;

/// The sender side of every client's queue. Cheap to clone.
#[derive(Clone)]
pub struct Fanout {
    clients: Vec<mpsc::Sender<Entry>>,
    budget: Arc<Budget>,
    stop: Arc<AtomicBool>,
}

/// The agent is stopping: the entry was not queued (its ack is poisoned by
/// the drop, so its position does not advance).
#[derive(Debug)]
pub struct Stopped;

impl Fanout {
    pub fn new(
        clients: Vec<mpsc::Sender<Entry>>,
        budget: Arc<Budget>,
        stop: Arc<AtomicBool>,
    ) -> Self {
        Fanout {
            clients,
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
    /// or a client's queue is full.
    pub fn send_blocking(&self, entry: Entry) -> Result<(), Stopped> {
        let n = self.clients.len();
        if n == 0 {
            // No client configured: nothing will ever accept it.
            return Err(Stopped);
        }
        let stop = || self.stop.load(Ordering::Relaxed);
        let cost = entry.size() + ENTRY_OVERHEAD;
        let mut entry = entry;
        for (i, tx) in self.clients.iter().enumerate() {
            let charge = self.budget.charge_blocking(cost, &stop).ok_or(Stopped)?;
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
            send_until_stopped(tx, e, &stop)?;
        }
        Ok(())
    }
}

/// Like `blocking_send`, but gives up when the agent is stopping, so a client
/// stuck retrying against a dead Loki cannot hang shutdown.
fn send_until_stopped(
    tx: &mpsc::Sender<Entry>,
    mut e: Entry,
    stop: &dyn Fn() -> bool,
) -> Result<(), Stopped> {
    let mut wait = std::time::Duration::from_micros(100);
    loop {
        match tx.try_send(e) {
            Ok(()) => return Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(Stopped),
            Err(mpsc::error::TrySendError::Full(back)) => {
                if stop() {
                    return Err(Stopped);
                }
                e = back;
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
    use crate::ack::{Ack, Position, Tracker};
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
        let a = r1.try_recv().unwrap();
        let b = r2.try_recv().unwrap();
        assert_eq!(a.line, "hello");
        assert_eq!(b.line, "hello");
        assert_eq!(budget.used(), 2 * (5 + ENTRY_OVERHEAD));
        a.ack.ack();
        assert_eq!(tr.committed(), Position::Offset(0));
        b.ack.ack();
        assert_eq!(tr.committed(), Position::Offset(6));
        assert_eq!(budget.used(), 0);
        let _ = Ack::none();
    }
}
