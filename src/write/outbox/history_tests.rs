//! Unit tests for history retention.

use super::*;
use crate::store::SledStore;
use crate::write::outbox::tests::{status_op, who};
use crate::write::outbox::{
    activity_ops, check, count_if_unknown, counts, counts_by_state, enqueue, get_op, save_op,
    Counted, Enqueued, Op,
};
use chrono::Duration;
use serde_json::Value;

/// One op for activity `id` of `resource`, left in `state`.
fn op_in(store: &SledStore, id: i64, resource: &str, state: OpState) -> Op {
    let Enqueued::Accepted { ops, .. } = enqueue(
        store,
        &who(&format!("k{id}"), &format!("h{id}")),
        vec![status_op(resource, id)],
        |_| Value::Null,
    )
    .unwrap() else {
        panic!("accepted")
    };
    let mut op = ops[0].clone();
    if state != OpState::Queued {
        op.state = state;
        save_op(store, &op, true).unwrap();
    }
    op
}

fn changes_of(store: &SledStore, resource: &str) -> usize {
    let prefix = KeyBuf::new().str(resource).finish();
    store.scan_raw(CHANGES, &prefix, None, 1000).unwrap().len()
}

fn never(_: i64) -> bool {
    false
}

/// Counts that hold exactly what a recount of the remaining ops finds.
fn counts_are_whole(store: &SledStore) {
    assert_eq!(
        store.tally().snapshot().normalized(),
        counts::count_all(store, 3).unwrap().normalized()
    );
}

#[test]
fn finished_ops_and_old_changes_leave_while_open_and_attention_ops_stay() {
    let store = SledStore::temporary().unwrap();
    let applied = op_in(&store, 1, "tech1", OpState::Applied);
    let discarded = op_in(&store, 2, "tech1", OpState::Discarded);
    let dead = op_in(&store, 3, "tech2", OpState::Dead);
    let rejected = op_in(&store, 4, "tech2", OpState::Rejected);
    let queued = op_in(&store, 5, "tech2", OpState::Queued);
    store.flush_blocking().unwrap();
    assert!(changes_of(&store, "tech1") > 0);
    assert_eq!(changes_pruned_through(&store).unwrap(), 0);

    // Nothing is that old yet.
    let early = Utc::now() - Duration::days(1);
    assert_eq!(
        prune(&store, early, &never, 100).unwrap(),
        Pruned::default()
    );

    let pruned = prune(&store, Utc::now() + Duration::minutes(1), &never, 100).unwrap();
    assert_eq!(pruned.ops, 2, "{pruned:?}");
    assert!(pruned.changes >= 5, "every op's change went: {pruned:?}");
    for gone in [&applied, &discarded] {
        assert_eq!(get_op(&store, gone.seq).unwrap(), None);
        assert!(activity_ops(&store, gone.activity_id.unwrap())
            .unwrap()
            .is_empty());
    }
    for kept in [&dead, &rejected, &queued] {
        assert!(get_op(&store, kept.seq).unwrap().is_some(), "{}", kept.id);
        assert_eq!(
            activity_ops(&store, kept.activity_id.unwrap())
                .unwrap()
                .len(),
            1
        );
    }
    assert_eq!(changes_of(&store, "tech1") + changes_of(&store, "tech2"), 0);
    assert!(changes_pruned_through(&store).unwrap() > 0);
    counts_are_whole(&store);
    let states = counts_by_state(&store, &|_| true);
    assert!(
        !states
            .iter()
            .any(|(s, n)| matches!(s, OpState::Applied | OpState::Discarded) && *n > 0),
        "{states:?}"
    );
    let report = check(&store).unwrap();
    assert!(report.is_clean(), "{report:?}");
    // A second pass finds nothing more.
    let again = prune(&store, Utc::now() + Duration::minutes(1), &never, 100).unwrap();
    assert_eq!(again, Pruned::default());
}

#[test]
fn a_pass_stops_at_its_limit_and_kept_activities_keep_their_ops() {
    let store = SledStore::temporary().unwrap();
    let ops: Vec<Op> = (1..=4)
        .map(|i| op_in(&store, i, "tech1", OpState::Applied))
        .collect();
    let later = Utc::now() + Duration::minutes(1);
    let pending_approval = |activity: i64| activity == 2;
    let first = prune(&store, later, &pending_approval, 1).unwrap();
    assert_eq!(first.total(), 1, "{first:?}");
    assert_eq!(get_op(&store, ops[0].seq).unwrap(), None);
    let rest = prune(&store, later, &pending_approval, 100).unwrap();
    assert_eq!(rest.ops, 2, "{rest:?}");
    assert!(get_op(&store, ops[1].seq).unwrap().is_some(), "kept");
    assert_eq!(get_op(&store, ops[3].seq).unwrap(), None);
    counts_are_whole(&store);
}

#[test]
fn a_prune_past_the_checkpoint_holds_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let (counts, pruned_through) = {
        let store = SledStore::reopen(dir.path()).unwrap();
        op_in(&store, 1, "tech1", OpState::Applied);
        op_in(&store, 2, "tech1", OpState::Dead);
        store.checkpoint().unwrap();
        let pruned = prune(&store, Utc::now() + Duration::minutes(1), &never, 100).unwrap();
        assert_eq!(pruned.ops, 1);
        store.flush_blocking().unwrap();
        (
            counts_by_state(&store, &|_| true),
            changes_pruned_through(&store).unwrap(),
        )
        // Dropped without a checkpoint: the prune record is past it.
    };
    let store = SledStore::reopen(dir.path()).unwrap();
    assert_eq!(count_if_unknown(&store).unwrap(), Counted::Restored);
    assert_eq!(counts_by_state(&store, &|_| true), counts);
    assert_eq!(changes_pruned_through(&store).unwrap(), pruned_through);
    assert_eq!(changes_of(&store, "tech1"), 0);
    counts_are_whole(&store);
    let report = check(&store).unwrap();
    assert!(report.is_clean(), "{report:?}");
}

#[test]
fn a_corrupt_op_or_change_is_passed_over_not_dropped_unseen() {
    let store = SledStore::temporary().unwrap();
    let bad = op_in(&store, 1, "tech1", OpState::Applied);
    let good = op_in(&store, 2, "tech1", OpState::Applied);
    store.flush_blocking().unwrap();
    crate::store::corrupt(&store, OPS, &op_key(bad.seq));
    let prefix = KeyBuf::new().str("tech1").finish();
    let (first_change, _) = store.scan_raw(CHANGES, &prefix, None, 1).unwrap()[0].clone();
    crate::store::corrupt(&store, CHANGES, &first_change);

    let pruned = prune(&store, Utc::now() + Duration::minutes(1), &never, 100).unwrap();
    assert_eq!(pruned.ops, 1, "{pruned:?}");
    assert_eq!(get_op(&store, good.seq).unwrap(), None);
    // Left for the reader that meets it to quarantine and report.
    assert!(store.get_raw(OPS, &op_key(bad.seq)).unwrap().is_some());
    assert!(store.get_raw(CHANGES, &first_change).unwrap().is_some());
    assert_eq!(changes_of(&store, "tech1"), 1, "the others went");
}

/// The idempotency key `enqueue` stored for `op_in(store, id, ..)`'s request.
fn idem_of(id: i64) -> Vec<u8> {
    let w = who(&format!("k{id}"), &format!("h{id}"));
    crate::write::outbox::idem_key(&w.user_id, &w.idempotency_key)
}

#[test]
fn old_idempotency_records_go_and_a_sweep_goes_on_where_it_stopped() {
    let store = SledStore::temporary().unwrap();
    // Keys k4 and k5 are old, k1..k3 newer; in key order the old ones come last. Open
    // ops: their ops stay, their idempotency records age like any.
    for id in [4, 5] {
        op_in(&store, id, "tech1", OpState::Queued);
    }
    std::thread::sleep(std::time::Duration::from_millis(5));
    let cutoff = Utc::now();
    std::thread::sleep(std::time::Duration::from_millis(5));
    for id in [1, 2, 3] {
        op_in(&store, id, "tech1", OpState::Queued);
    }
    store.flush_blocking().unwrap();
    let floor = PendingFloor::default();
    let none = prune_all(
        &store,
        cutoff - Duration::days(1),
        &floor,
        &Pace::whole(),
        100,
        &mut |_| Ok(()),
    )
    .unwrap();
    assert_eq!(none, Pruned::default(), "nothing that old");

    // Two records read per run: the second run goes on from k3, the third reaches the end,
    // the fourth starts over.
    let pace = Pace::new(usize::MAX, 2);
    let mut removed = Vec::new();
    for _ in 0..4 {
        let p = prune_all(&store, cutoff, &floor, &pace, 100, &mut |_| Ok(())).unwrap();
        removed.push(p.idempotency);
    }
    assert_eq!(removed, vec![0, 1, 1, 0]);
    for id in 1..=5 {
        let kept = store.get_raw(IDEMPOTENCY, &idem_of(id)).unwrap().is_some();
        assert_eq!(kept, id <= 3, "k{id}");
        assert_eq!(activity_ops(&store, id).unwrap().len(), 1, "open ops stay");
    }
    let report = check(&store).unwrap();
    assert!(report.is_clean(), "{report:?}");

    // A request retried after its record went is taken as new; one within it is not.
    let retry = |id: i64| {
        enqueue(
            &store,
            &who(&format!("k{id}"), &format!("h{id}")),
            vec![status_op("tech1", id)],
            |_| Value::Null,
        )
        .unwrap()
    };
    assert!(matches!(retry(4), Enqueued::Accepted { .. }));
    assert_eq!(activity_ops(&store, 4).unwrap().len(), 2);
    retry(1);
    assert_eq!(activity_ops(&store, 1).unwrap().len(), 1, "answered again");
}

#[test]
fn a_run_stops_after_its_passes_and_the_next_goes_on() {
    let store = SledStore::temporary().unwrap();
    for id in 1..=5 {
        op_in(&store, id, "tech1", OpState::Applied);
    }
    store.flush_blocking().unwrap();
    let later = Utc::now() + Duration::minutes(1);
    let floor = PendingFloor::default();
    let pace = Pace::new(2, usize::MAX);
    let mut passes = 0;
    // One record per pass: a run of two passes removes two.
    let first = prune_all(&store, later, &floor, &pace, 1, &mut |_| {
        passes += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!((first.total(), passes), (2, 2));
    let second = prune_all(&store, later, &floor, &pace, 1, &mut |_| Ok(())).unwrap();
    assert_eq!(second.total(), 2);
}

#[test]
fn audit_entries_go_only_with_an_audit_retention_oldest_first() {
    use crate::features::audit::{list, AUDIT};
    let store = SledStore::temporary().unwrap();
    // Every accepted write leaves an audit entry in its own journal record.
    for id in [1, 2] {
        op_in(&store, id, "tech1", OpState::Queued);
    }
    std::thread::sleep(std::time::Duration::from_millis(5));
    let cutoff = Utc::now();
    std::thread::sleep(std::time::Duration::from_millis(5));
    op_in(&store, 3, "tech1", OpState::Queued);
    store.flush_blocking().unwrap();
    assert_eq!(list(&store, 0, 100).unwrap().len(), 3);

    // History alone (the default): the audit trail is kept whole.
    let kept = prune(&store, cutoff, &never, 100).unwrap();
    assert_eq!(kept.audit, 0);
    assert_eq!(list(&store, 0, 100).unwrap().len(), 3);

    let with_audit = Cutoff {
        history: DateTime::<Utc>::MIN_UTC,
        audit: Some(cutoff),
    };
    let first = prune(&store, with_audit, &never, 1).unwrap();
    assert_eq!(first.audit, 1, "the pass limit holds: {first:?}");
    let rest = prune(&store, with_audit, &never, 100).unwrap();
    assert_eq!(rest.audit, 1, "{rest:?}");
    let left = list(&store, 0, 100).unwrap();
    assert_eq!(left.len(), 1);
    assert!(left[0].at > cutoff, "only the newer entry stays");
    assert!(store.scan_raw(AUDIT, b"", None, 10).unwrap().len() == 1);
    for id in 1..=3 {
        assert_eq!(activity_ops(&store, id).unwrap().len(), 1, "no op went");
    }
    let report = check(&store).unwrap();
    assert!(report.is_clean(), "{report:?}");
}

#[test]
fn cutoffs_from_days_keep_what_a_zero_keeps() {
    let now = Utc::now();
    assert_eq!(Cutoff::days_before(now, 0, 0), None);
    assert_eq!(
        Cutoff::days_before(now, 90, 0),
        Some(Cutoff {
            history: now - Duration::days(90),
            audit: None
        })
    );
    assert_eq!(
        Cutoff::days_before(now, 0, 400),
        Some(Cutoff {
            history: DateTime::<Utc>::MIN_UTC,
            audit: Some(now - Duration::days(400))
        })
    );
}
