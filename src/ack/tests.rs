//! Tests of the acknowledgement path: trackers, acks, the budget.

use super::*;

#[test]
fn a_slot_stays_small() {
    assert!(std::mem::size_of::<Slot>() <= 16);
}

/// Journal cursors (and an offset among them: `skip_to` of a source
/// that mixes) commit in issue order, whatever the order of the acks.
#[test]
fn cursors_commit_in_issue_order() {
    let cur = |s: &str| Position::Cursor(Arc::from(s));
    let t = Tracker::new(cur(""));
    let a = t.issue(cur("c1"));
    let b = t.issue(Position::Offset(7));
    let c = t.issue(cur("c3"));
    let d = t.issue(cur("c4"));
    assert_eq!(t.issued(), cur("c4"));
    c.ack();
    assert_eq!(t.committed(), cur(""));
    a.ack();
    assert_eq!(t.committed(), cur("c1"));
    b.ack();
    assert_eq!(t.committed(), cur("c3"));
    drop(d); // poisoned: never committed in this process
    assert_eq!(t.committed(), cur("c3"));
    let e = t.issue(cur("c5"));
    e.ack();
    assert_eq!(t.committed(), cur("c3"));
}

/// The offset read without the lock is the committed one at every
/// step (acks out of order, a poisoned line, a cursor), never ahead.
#[test]
fn the_lock_free_offset_is_the_committed_one() {
    let t = Tracker::new(Position::Offset(5));
    assert_eq!(t.committed_offset(), Some(5));
    let [a, b, c, d] = [10, 20, 30, 40].map(|o| t.issue(Position::Offset(o)));
    b.ack();
    assert_eq!(
        t.committed_offset(),
        Some(5),
        "b is past an unacknowledged a"
    );
    a.ack();
    assert_eq!(t.committed_offset(), Some(20));
    drop(c); // poisoned: nothing passes it
    d.ack();
    assert_eq!(t.committed_offset(), Some(20));
    assert_eq!(t.committed(), Position::Offset(20));
    let j = Tracker::new(Position::Cursor(Arc::from("")));
    assert_eq!(j.committed_offset(), None);
    j.issue(Position::Cursor(Arc::from("c1"))).ack();
    assert_eq!(j.committed_offset(), None);
    j.skip_to(Position::Offset(9));
    assert_eq!(j.committed_offset(), Some(9));
}

#[test]
fn keep_charge_gives_back_the_rest_and_the_ack_the_kept_part() {
    let b = Budget::new(1000);
    let t = Tracker::new(Position::Offset(0));
    let mut a = t.issue(Position::Offset(10));
    a.set_charge(b.charge_now(600));
    assert_eq!(b.used(), 600);
    a.keep_charge(100);
    assert_eq!(b.used(), 100);
    a.keep_charge(500); // never charges more
    assert_eq!(b.used(), 100);
    a.ack();
    assert_eq!(b.used(), 0);
    assert_eq!(t.committed(), Position::Offset(10));
}

#[test]
fn a_drained_tracker_gives_its_slots_back() {
    let t = Tracker::new(Position::Offset(0));
    let acks: Vec<Ack> = (1..=1000).map(|i| t.issue(Position::Offset(i))).collect();
    assert!(t.lock().pending.capacity() >= 1000);
    for a in acks {
        a.ack();
    }
    assert_eq!(t.committed(), Position::Offset(1000));
    assert!(t.lock().pending.capacity() <= KEEP_SLOTS);
    // And it goes on numbering from where it was.
    let a = t.issue(Position::Offset(1001));
    a.ack();
    assert_eq!(t.committed(), Position::Offset(1001));
}

#[test]
fn commits_only_a_gap_free_prefix() {
    let t = Tracker::new(Position::Offset(0));
    let a = t.issue(Position::Offset(10));
    let b = t.issue(Position::Offset(20));
    let c = t.issue(Position::Offset(30));
    b.ack();
    assert_eq!(t.committed(), Position::Offset(0));
    a.ack();
    assert_eq!(t.committed(), Position::Offset(20));
    c.ack();
    assert_eq!(t.committed(), Position::Offset(30));
    assert!(t.is_drained());
}

#[test]
fn duplicates_need_every_copy() {
    let t = Tracker::new(Position::Offset(0));
    let a = t.issue(Position::Offset(5));
    let a2 = a.duplicate();
    a.ack();
    assert_eq!(t.committed(), Position::Offset(0));
    a2.ack();
    assert_eq!(t.committed(), Position::Offset(5));
}

#[test]
fn merged_range_commits_together() {
    let t = Tracker::new(Position::Offset(0));
    let a = t.issue(Position::Offset(5));
    let b = t.issue(Position::Offset(9));
    let mut m = a;
    m.merge(b).unwrap();
    assert_eq!(t.committed(), Position::Offset(0));
    m.ack();
    assert_eq!(t.committed(), Position::Offset(9));
}

#[test]
fn merge_of_interleaved_pieces_leaves_the_other_stream_alone() {
    let t = Tracker::new(Position::Offset(0));
    let p1 = t.issue(Position::Offset(5)); // stdout P
    let e = t.issue(Position::Offset(9)); // stderr F
    let f1 = t.issue(Position::Offset(14)); // stdout F
    let mut m = p1;
    m.merge(f1).unwrap();
    m.ack();
    assert_eq!(t.committed(), Position::Offset(5));
    e.ack();
    assert_eq!(t.committed(), Position::Offset(14));
}

/// One step of [`acks_settle_as_the_model_says`].
#[derive(Clone, Debug)]
enum Step {
    /// Issue a line on tracker 0 or 1.
    Issue(bool),
    /// Merge the held ack at `.0` into the one at `.1` (mod len).
    Merge(usize, usize),
    /// Duplicate the held ack at `.0` (a second client).
    Duplicate(usize),
    /// Settle these held acks (indexes mod len, each at most once) in
    /// one `ack_many`, in this order.
    AckMany(Vec<usize>),
    /// Drop the held ack at `.0` unacknowledged.
    Drop(usize),
    /// Move these held acks (as `AckMany` picks them) into the one
    /// `AckRuns` kept across steps (the spool writer's, between commits).
    Gather(Vec<usize>),
    /// Settle that `AckRuns` (`true`), or drop it unsettled (`false`).
    SettleGathered(bool),
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    prop_oneof![
        4 => any::<bool>().prop_map(Step::Issue),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Step::Merge(a, b)),
        1 => any::<usize>().prop_map(Step::Duplicate),
        3 => proptest::collection::vec(any::<usize>(), 1..12).prop_map(Step::AckMany),
        1 => (0..20usize).prop_map(|i| Step::Drop(i * 1000)),
        2 => proptest::collection::vec(any::<usize>(), 1..12).prop_map(Step::Gather),
        1 => any::<bool>().prop_map(Step::SettleGathered),
    ]
}

/// Held acks: (ack, its tracker, its lines).
type Held = Vec<(Ack, usize, Vec<usize>)>;

/// Takes the held acks at `idx` (mod len, each at most once) out of
/// `held` and `charged`, in the order of `idx`, with their charges.
fn take_picked(
    held: &mut Held,
    charged: &mut Vec<usize>,
    idx: Vec<usize>,
) -> Vec<(Ack, usize, Vec<usize>, usize)> {
    let mut picked: Vec<usize> = Vec::new();
    for i in idx {
        let i = i % held.len();
        if !picked.contains(&i) {
            picked.push(i);
        }
    }
    let mut taken: Vec<Option<(Ack, usize, Vec<usize>)>> =
        std::mem::take(held).into_iter().map(Some).collect();
    let mut out = Vec::new();
    for &i in &picked {
        if let Some((a, t, lines)) = taken[i].take() {
            out.push((a, t, lines, charged[i]));
        }
    }
    *held = taken.into_iter().flatten().collect();
    *charged = charged
        .iter()
        .enumerate()
        .filter(|(i, _)| !picked.contains(i))
        .map(|(_, &c)| c)
        .collect();
    out
}

proptest::proptest! {
    /// Whatever the order, grouping (`ack_many`, `AckRuns` kept across
    /// steps), merging, copying and dropping of acks, each tracker commits
    /// exactly the end of its longest prefix of lines that every copy
    /// acknowledged and none dropped, and the budget gets every charged
    /// byte back.
    #[test]
    fn acks_settle_as_the_model_says(steps in proptest::collection::vec(step(), 1..80)) {
        let budget = Budget::new(1 << 30);
        let trackers = [0, 1].map(|_| Tracker::new(Position::Offset(0)));
        // Per tracker, per line: outstanding copies, and poisoned.
        let mut model: [Vec<(u32, bool)>; 2] = [Vec::new(), Vec::new()];
        // Held acks: (ack, tracker, lines); and what each is charged.
        let mut held: Held = Vec::new();
        let mut charged: Vec<usize> = Vec::new();
        // The gathered acks: their lines (tracker, lines) and charges.
        let mut gathered = AckRuns::default();
        let mut gathered_lines: Vec<(usize, Vec<usize>)> = Vec::new();
        let mut gathered_charge = 0;
        for s in steps {
            match s {
                Step::Issue(which) => {
                    let t = which as usize;
                    let line = model[t].len();
                    model[t].push((1, false));
                    let mut a = trackers[t].issue(Position::Offset(line as u64 + 1));
                    a.set_charge(budget.charge_now(7));
                    held.push((a, t, vec![line]));
                    charged.push(7);
                }
                Step::SettleGathered(ok) => {
                    proptest::prop_assert_eq!(gathered.len(), gathered_lines.len());
                    let runs = std::mem::take(&mut gathered);
                    if ok {
                        runs.ack();
                    } else {
                        drop(runs);
                    }
                    for (t, lines) in gathered_lines.drain(..) {
                        for l in lines {
                            model[t][l].0 -= 1;
                            model[t][l].1 |= !ok;
                        }
                    }
                    gathered_charge = 0;
                }
                Step::Merge(_, _)
                | Step::Duplicate(_)
                | Step::Drop(_)
                | Step::AckMany(_)
                | Step::Gather(_)
                    if held.is_empty() => {}
                Step::Merge(a, b) => {
                    let (a, b) = (a % held.len(), b % held.len());
                    if a != b && held[a].1 == held[b].1 {
                        // The merged-away ack's charge goes with it.
                        let (other, _, lines) = held.remove(a);
                        charged.remove(a);
                        let b = if b > a { b - 1 } else { b };
                        if held[b].0.merge(other).is_err() {
                            panic!("same tracker must merge");
                        }
                        held[b].2.extend(lines);
                    }
                }
                Step::Duplicate(i) => {
                    let i = i % held.len();
                    let copy = held[i].0.duplicate();
                    let (t, lines) = (held[i].1, held[i].2.clone());
                    for &l in &lines {
                        model[t][l].0 += 1;
                    }
                    held.push((copy, t, lines));
                    charged.push(0);
                }
                Step::Drop(i) => {
                    let (a, t, lines) = held.remove(i % held.len());
                    charged.remove(i % (held.len() + 1));
                    drop(a);
                    for l in lines {
                        model[t][l].0 -= 1;
                        model[t][l].1 = true;
                    }
                }
                Step::AckMany(idx) => {
                    let mut batch = Vec::new();
                    for (a, t, lines, _) in take_picked(&mut held, &mut charged, idx) {
                        for l in lines {
                            model[t][l].0 -= 1;
                        }
                        batch.push(a);
                    }
                    ack_many(batch);
                }
                Step::Gather(idx) => {
                    for (a, t, lines, c) in take_picked(&mut held, &mut charged, idx) {
                        gathered.push(a);
                        gathered_lines.push((t, lines));
                        gathered_charge += c;
                    }
                }
            }
            for t in 0..2 {
                let done = model[t]
                    .iter()
                    .take_while(|(left, poisoned)| *left == 0 && !poisoned)
                    .count();
                proptest::prop_assert_eq!(
                    trackers[t].committed(),
                    Position::Offset(done as u64),
                    "tracker {}", t
                );
            }
            proptest::prop_assert_eq!(
                budget.used(),
                charged.iter().sum::<usize>() + gathered_charge
            );
        }
        drop(held);
        drop(gathered);
        proptest::prop_assert_eq!(budget.used(), 0);
    }
}

/// An ack keeps its tracker alive after every owner let go, through
/// copies, merges, `ack_many` and drops, and the tracker is freed with
/// the last one settled (no cycle left behind).
#[test]
fn a_tracker_lives_exactly_as_long_as_its_unsettled_acks() {
    let t = Tracker::new(Position::Offset(0));
    let weak = Arc::downgrade(&t);
    let a = t.issue(Position::Offset(1));
    let mut b = t.issue(Position::Offset(2));
    let c = t.issue(Position::Offset(3));
    let d = c.duplicate();
    assert_eq!(d.tracker_id(), Some(t.id()), "an ack names its tracker");
    drop(t);
    assert!(weak.upgrade().is_some(), "unsettled acks keep it");
    if b.merge(a).is_err() {
        panic!("same tracker");
    }
    b.ack();
    assert!(weak.upgrade().is_some());
    ack_many(vec![c]);
    assert!(weak.upgrade().is_some(), "a copy is still out");
    drop(d); // poisons line 3
    assert!(weak.upgrade().is_none(), "freed with the last settled ack");

    // Idle and busy again: the hold comes back with the next line.
    let t = Tracker::new(Position::Offset(0));
    let weak = Arc::downgrade(&t);
    t.issue(Position::Offset(1)).ack();
    let e = t.issue(Position::Offset(2));
    drop(t);
    assert!(weak.upgrade().is_some());
    ack_many(vec![e]);
    assert!(weak.upgrade().is_none());
}

#[test]
fn ack_many_settles_runs_of_several_trackers() {
    let t1 = Tracker::new(Position::Offset(0));
    let t2 = Tracker::new(Position::Offset(0));
    let a = t1.issue(Position::Offset(1));
    let b = t1.issue(Position::Offset(2));
    let c = t2.issue(Position::Offset(7));
    let d = t1.issue(Position::Offset(3));
    ack_many(vec![b, c, a]);
    assert_eq!(t1.committed(), Position::Offset(2));
    assert_eq!(t2.committed(), Position::Offset(7));
    ack_many(vec![d]);
    assert_eq!(t1.committed(), Position::Offset(3));
}

#[test]
fn dropped_ack_poisons() {
    let t = Tracker::new(Position::Offset(0));
    let a = t.issue(Position::Offset(5));
    let b = t.issue(Position::Offset(9));
    drop(a);
    b.ack();
    assert_eq!(t.committed(), Position::Offset(0));
    assert!(t.is_poisoned());
}

#[test]
fn budget_blocks_until_released() {
    let b = Budget::new(10);
    let c1 = b.charge_blocking(8, &|| false).unwrap();
    assert!(b.charge_blocking(8, &|| true).is_none());
    drop(c1);
    let _c2 = b.charge_blocking(8, &|| true).unwrap();
    // Bigger than the budget: passes only when empty.
    assert!(b.charge_blocking(100, &|| true).is_none());
}

/// A waiter resumes once a quarter of the limit is free, or 512 KiB
/// where that is at most half of it (the spool's 1.5 MiB budget).
#[test]
fn a_waiter_resumes_with_at_least_512_kib_free_under_a_small_budget() {
    let b = Budget::new(3 << 19);
    let held = b.try_charge((1 << 20) + 1).unwrap();
    // 511 KiB free: more than a quarter (384 KiB), less than 512.
    assert!(!b.has_room(1));
    drop(held);
    let _held = b.try_charge(1 << 20).unwrap();
    assert!(b.has_room(1));
    // A client's budget keeps its quarter.
    let c = Budget::new(4 << 20);
    let _h = c.try_charge(3 << 20).unwrap();
    assert!(c.has_room(1));
    let _h2 = c.try_charge(1).unwrap();
    assert!(!c.has_room(1));
}
