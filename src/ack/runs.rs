//! Acknowledgements gathered to be settled together, held as runs.
//!
//! Owns: [`AckRuns`]. What it holds grows with the runs of lines, not with
//! the lines: consecutive lines of one tracker are one range, and the
//! budget charges of one budget are one charge. The spool writer gathers
//! every entry it takes between two commits (a commit of one file's lines
//! is one range, where a `Vec<Ack>` held ~12,000 acks of 48 bytes, and a
//! second `Vec` of as many at the commit); [`ack_many`](super::ack_many)
//! gathers a batch's.
//!
//! Must never: settle a line twice, or let go of a line without settling
//! it — dropped unsettled, every line it holds is poisoned, as a dropped
//! [`Ack`] does.

use super::{Ack, Charge, TrackerPtr};

/// See the module docs.
#[derive(Default)]
pub struct AckRuns {
    /// (tracker, first, last): inclusive ranges of sequence numbers, in the
    /// order their acks came. A tracker's lines here are not settled, so
    /// each run's pointer is valid until [`AckRuns::settle`].
    runs: Vec<(TrackerPtr, u64, u64)>,
    /// One per budget in a row (in practice one: the fan-out's).
    charges: Vec<Charge>,
    /// Acks pushed (entries, not lines or runs).
    acks: usize,
}

impl AckRuns {
    /// Takes over `a`'s lines and charge.
    pub fn push(&mut self, mut a: Ack) {
        self.acks += 1;
        if let Some(c) = a.charge.take() {
            self.add_charge(c);
        }
        // Taken: `a` no longer settles anything when dropped.
        let Some(t) = a.tracker.take() else { return };
        for (first, last) in a.ranges() {
            match self.runs.last_mut() {
                Some((rt, _, end)) if *rt == t && end.checked_add(1) == Some(first) => *end = last,
                _ => self.runs.push((t, first, last)),
            }
        }
    }

    /// Takes over everything `other` holds, after what this holds.
    pub fn append(&mut self, other: &mut AckRuns) {
        self.acks += std::mem::take(&mut other.acks);
        self.runs.append(&mut other.runs);
        for c in std::mem::take(&mut other.charges) {
            self.add_charge(c);
        }
    }

    fn add_charge(&mut self, c: Charge) {
        match self.charges.last_mut() {
            Some(acc) if std::ptr::eq(acc.budget, c.budget) => acc.absorb(c),
            _ => self.charges.push(c),
        }
    }

    /// Acks pushed and not settled.
    pub fn len(&self) -> usize {
        self.acks
    }

    pub fn is_empty(&self) -> bool {
        self.acks == 0
    }

    /// Acknowledges every line held (see [`Ack::ack`]).
    pub fn ack(mut self) {
        self.settle(true);
    }

    /// Settles every line held, taking each tracker's lock once per run of
    /// consecutive ranges of it, then releases the charges.
    fn settle(&mut self, ok: bool) {
        // Taken out first: nothing is left to settle a second time, even
        // if settling stopped half-way.
        let runs = std::mem::take(&mut self.runs);
        let mut rest = &runs[..];
        while let Some(&(t, _, _)) = rest.first() {
            let n = rest.iter().take_while(|r| r.0 == t).count();
            t.settle(rest[..n].iter().map(|&(_, a, b)| (a, b)), ok);
            rest = &rest[n..];
        }
        self.charges.clear();
        self.acks = 0;
    }
}

impl Drop for AckRuns {
    fn drop(&mut self) {
        self.settle(false);
    }
}
