//! Unit tests for `outbox`.

use super::*;
use crate::domain::lifecycle::DeviceStatus;
use crate::store::SledStore;

pub(crate) fn who(key: &str, hash: &str) -> Submitter {
    Submitter {
        user_id: "u1".into(),
        username: "tech1".into(),
        role: crate::auth::Role::Technician,
        device_id: "d1".into(),
        request_id: "r1".into(),
        client_request_id: None,
        action: "status",
        idempotency_key: key.into(),
        request_sha256: hash.into(),
        device_seq: Some(7),
        stage: None,
    }
}

pub(crate) fn status_op(resource: &str, id: i64) -> NewOp {
    NewOp {
        resource_id: resource.into(),
        date: "2026-05-04".into(),
        activity_id: Some(id),
        kind: OpKind::Status {
            status: DeviceStatus::Started,
            ofsc_action: Some("start".into()),
            location: None,
            notes: None,
            reason: None,
        },
        time: DateTime::parse_from_rfc3339("2026-05-04T08:00:00-04:00").unwrap(),
        zone: Some("America/New_York".into()),
        captured_at: None,
    }
}

#[test]
fn idempotency_same_key_same_request_replays_other_request_is_refused() {
    let store = SledStore::temporary().unwrap();
    let first = enqueue(
        &store,
        &who("k1", "h1"),
        vec![status_op("tech1", 1)],
        |ops| serde_json::json!({"opId": ops[0].id}),
    )
    .unwrap();
    let Enqueued::Accepted { ops, response } = first else {
        panic!()
    };
    let again = enqueue(
        &store,
        &who("k1", "h1"),
        vec![status_op("tech1", 1)],
        |_| Value::Null,
    )
    .unwrap();
    assert_eq!(
        again,
        Enqueued::Replayed {
            status: 202,
            response
        }
    );
    assert_eq!(
        enqueue(
            &store,
            &who("k1", "h2"),
            vec![status_op("tech1", 1)],
            |_| Value::Null
        )
        .unwrap(),
        Enqueued::KeyReused
    );
    assert_eq!(
        lane_ops(&store, "tech1", "2026-05-04").unwrap(),
        ops,
        "no second op was written"
    );
}

#[test]
fn lanes_are_fifo_and_enumerable() {
    let store = SledStore::temporary().unwrap();
    for (i, r) in ["tech1", "tech2", "tech1", "tech10"].iter().enumerate() {
        enqueue(
            &store,
            &who(&format!("k{i}"), "h"),
            vec![status_op(r, i as i64)],
            |_| Value::Null,
        )
        .unwrap();
    }
    let lanes = active_lanes(&store).unwrap();
    assert_eq!(lanes.len(), 3);
    let ops = lane_ops(&store, "tech1", "2026-05-04").unwrap();
    assert_eq!(
        ops.iter()
            .map(|o| o.activity_id.unwrap())
            .collect::<Vec<_>>(),
        vec![0, 2]
    );
    let mut done = ops[0].clone();
    done.state = OpState::Applied;
    save_op(&store, &done, true).unwrap();
    assert_eq!(lane_ops(&store, "tech1", "2026-05-04").unwrap().len(), 1);
}

#[test]
fn a_recount_in_pages_rebuilds_the_live_counts_and_listed_ids_and_listings_page_too() {
    let store = SledStore::temporary().unwrap();
    seven_ops(&store);
    let counts = counts_by_state(&store, &|_| true);
    let listed = marked_ops(&store, &ATTENTION, 0);
    let applied = ops_after(&store, 0, 10, &|o| o.state == OpState::Applied).unwrap();
    assert_eq!(
        applied.iter().map(|o| o.activity_id).collect::<Vec<_>>(),
        [Some(1), Some(4)]
    );
    let dead = ops_after(&store, listed[0], 1, &|o| o.state == OpState::Dead).unwrap();
    assert_eq!(
        dead.iter().map(|o| o.activity_id).collect::<Vec<_>>(),
        [Some(3)]
    );
    assert_eq!(listed.len(), 5);
    store.tally().reset(Default::default());
    store.tally().reset(counts::count_all(&store, 2).unwrap());
    assert_eq!(counts_by_state(&store, &|_| true), counts);
    assert_eq!(marked_ops(&store, &ATTENTION, 0), listed);
}

/// Seven ops in three states over two resources, as the recount test writes them.
fn seven_ops(store: &SledStore) {
    for i in 0..7 {
        let Enqueued::Accepted { ops, .. } = enqueue(
            store,
            &who(&format!("k{i}"), &format!("h{i}")),
            vec![status_op(if i % 2 == 0 { "tech1" } else { "tech2" }, i)],
            |_| Value::Null,
        )
        .unwrap() else {
            panic!()
        };
        let mut op = ops[0].clone();
        op.state = [OpState::Dead, OpState::Applied, OpState::Blocked][i as usize % 3];
        save_op(store, &op, false).unwrap();
    }
}

#[test]
fn a_start_after_a_crash_has_the_counts_without_reading_the_ops() {
    let dir = tempfile::tempdir().unwrap();
    let (counts, listed) = {
        let store = SledStore::reopen(dir.path()).unwrap();
        seven_ops(&store);
        store.checkpoint().unwrap();
        // Past the checkpoint: a new op, and a dead one put back in its lane.
        enqueue(
            &store,
            &who("k9", "h9"),
            vec![status_op("tech1", 9)],
            |_| Value::Null,
        )
        .unwrap();
        requeue(&store, marked_ops(&store, &[OpState::Dead], 0)[0]).unwrap();
        store.flush_blocking().unwrap();
        (
            counts_by_state(&store, &|_| true),
            marked_ops(&store, &ATTENTION, 0),
        )
    };
    let store = SledStore::reopen(dir.path()).unwrap();
    assert_eq!(count_if_unknown(&store).unwrap(), Counted::Restored);
    assert_eq!(counts_by_state(&store, &|_| true), counts);
    assert_eq!(marked_ops(&store, &ATTENTION, 0), listed);
    assert_eq!(
        store.tally().snapshot().normalized(),
        counts::count_all(&store, 3).unwrap().normalized(),
        "what a recount would find"
    );
    assert!(check(&store).unwrap().is_clean());
}

#[test]
fn check_finds_counts_that_do_not_match_the_ops() {
    let store = SledStore::temporary().unwrap();
    seven_ops(&store);
    // Counts missing one dead op, as if shifts had been lost.
    let mut wrong = store.tally().snapshot();
    let first = *wrong.marks.keys().next().unwrap();
    wrong.marks.remove(&first);
    wrong
        .counts
        .get_mut("tech1")
        .unwrap()
        .iter_mut()
        .for_each(|n| *n = n.saturating_sub(1));
    store.tally().reset(wrong);
    let found: Vec<_> = check(&store)
        .unwrap()
        .differences
        .into_iter()
        .filter(|(tree, key, _)| tree == "meta" && key == "op counts")
        .collect();
    assert_eq!(found.len(), 2, "{found:?}");
}

#[test]
fn a_quarantined_op_means_a_recount_now_and_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let counts = {
        let store = SledStore::reopen(dir.path()).unwrap();
        seven_ops(&store);
        store.checkpoint().unwrap();
        let seq = marked_ops(&store, &[OpState::Blocked], 0)[0];
        let err = StoreError::Aborted("test".into());
        quarantine_op(&store, None, seq, &err).unwrap();
        assert!(store.tally().known(), "recounted at once");
        store.flush_blocking().unwrap();
        counts_by_state(&store, &|_| true)
    };
    let store = SledStore::reopen(dir.path()).unwrap();
    assert_eq!(count_if_unknown(&store).unwrap(), Counted::Recounted);
    assert_eq!(counts_by_state(&store, &|_| true), counts);
    assert!(check(&store).unwrap().is_clean());
}

#[test]
fn an_op_quarantined_out_of_its_lane_does_not_stall_the_ops_behind_it() {
    let store = SledStore::temporary().unwrap();
    let mut seqs = Vec::new();
    for i in 0..3 {
        let Enqueued::Accepted { ops, .. } = enqueue(
            &store,
            &who(&format!("k{i}"), &format!("h{i}")),
            vec![status_op("tech1", i)],
            |_| Value::Null,
        )
        .unwrap() else {
            panic!()
        };
        seqs.push(ops[0].seq);
    }
    // The middle op is found corrupt where its lane is not known (`GET /ops/{id}`).
    let err = StoreError::Aborted("test".into());
    quarantine_op(&store, None, seqs[1], &err).unwrap();
    let mut head = lane_head(&store, "tech1", "2026-05-04").unwrap().unwrap();
    assert_eq!(head.seq, seqs[0]);
    head.state = OpState::Applied;
    save_op(&store, &head, false).unwrap();
    let next = lane_head(&store, "tech1", "2026-05-04").unwrap();
    assert_eq!(
        next.map(|o| o.seq),
        Some(seqs[2]),
        "past the quarantined one"
    );
    assert!(check(&store).unwrap().is_clean());
}
