//! Unit tests for `outbox::stage`.

use super::super::tests::{status_op, who};
use super::*;
use crate::store::{SledStore, StorageExt};
use crate::write::outbox::{enqueue, idempotent_answer, lane_ops, Enqueued, OpState, IDEMPOTENCY};
use serde_json::json;
use std::sync::Mutex as StdMutex;

type Log = Arc<StdMutex<Vec<(String, bool)>>>;

fn stage() -> (Arc<Stage>, Log) {
    let log: Log = Arc::default();
    let seen = log.clone();
    let stage = Stage::new(Box::new(move |resource, _date, committed| {
        seen.lock().unwrap().push((resource.to_string(), committed));
    }));
    (stage, log)
}

fn staged_who(key: &str, stage: &Arc<Stage>) -> crate::write::outbox::Submitter {
    let mut w = who(key, &format!("h-{key}"));
    w.stage = Some(stage.clone());
    w
}

/// Stages one status op on tech1's route under idempotency key `k1`.
fn stage_one(store: &dyn crate::store::Storage, stage: &Arc<Stage>) {
    let r = enqueue(
        store,
        &staged_who("k1", stage),
        vec![status_op("tech1", 1)],
        |_| json!({}),
    )
    .unwrap();
    assert!(matches!(r, Enqueued::Accepted { .. }), "{r:?}");
}

#[test]
fn staged_writes_land_together_at_commit_in_order() {
    let store = SledStore::temporary().unwrap();
    let (stage, log) = stage();
    let mut accepted = Vec::new();
    for (i, resource) in ["tech1", "tech1", "tech2"].iter().enumerate() {
        let key = format!("k{i}");
        let r = enqueue(
            &store,
            &staged_who(&key, &stage),
            vec![status_op(resource, i as i64 + 1)],
            |ops| json!({"opId": ops[0].id}),
        )
        .unwrap();
        let Enqueued::Accepted { ops, .. } = r else {
            panic!("not accepted: {r:?}")
        };
        accepted.extend(ops);
    }
    assert!(
        lane_ops(&store, "tech1", "2026-05-04").unwrap().is_empty(),
        "nothing is in sled before the commit"
    );
    let before = store.watermark();
    // The first op's change-log id is issued right after its seq.
    assert!(
        before <= accepted[0].seq,
        "pulls stop below the staged changes"
    );
    stage.commit(&store).unwrap();
    assert_eq!(
        lane_ops(&store, "tech1", "2026-05-04").unwrap(),
        accepted[..2].to_vec()
    );
    assert_eq!(
        lane_ops(&store, "tech2", "2026-05-04").unwrap(),
        accepted[2..].to_vec()
    );
    assert!(
        store.watermark() <= accepted[0].seq,
        "pulls still stop below the batch until a flush covers it"
    );
    assert!(!store.journal().op_published(accepted[0].seq));
    store.flush_blocking().unwrap();
    assert!(
        store.watermark() > accepted[2].seq,
        "the tickets were let go"
    );
    assert!(store.journal().op_published(accepted[0].seq));
    let queued = crate::write::outbox::counts_by_state(&store, &|_| true)
        .into_iter()
        .find(|(s, _)| *s == OpState::Queued)
        .map(|(_, n)| n);
    assert_eq!(queued, Some(3), "live counts include the committed ops");
    assert_eq!(
        *log.lock().unwrap(),
        vec![("tech1".to_string(), true), ("tech2".to_string(), true)]
    );
    assert!(stage.is_empty());
}

#[test]
fn a_key_staged_in_the_batch_answers_as_a_duplicate() {
    let store = SledStore::temporary().unwrap();
    let (stage, _) = stage();
    let w = staged_who("k1", &stage);
    let first = enqueue(
        &store,
        &w,
        vec![status_op("tech1", 1)],
        |ops| json!({"opId": ops[0].id}),
    )
    .unwrap();
    let Enqueued::Accepted { response, .. } = first else {
        panic!()
    };
    assert_eq!(
        idempotent_answer(&store, &w).unwrap(),
        Some(Enqueued::Replayed {
            status: 202,
            response
        })
    );
    let mut other = w.clone();
    other.request_sha256 = "another payload".into();
    assert_eq!(
        idempotent_answer(&store, &other).unwrap(),
        Some(Enqueued::KeyReused)
    );
}

#[test]
fn a_key_taken_meanwhile_aborts_the_commit_and_drops_the_views() {
    let store = SledStore::temporary().unwrap();
    let (stage, log) = stage();
    stage_one(&store, &stage);
    // The same key written around the stage (something that did not take the lane lock).
    enqueue(
        &store,
        &who("k1", "h-k1"),
        vec![status_op("tech1", 1)],
        |_| json!({}),
    )
    .unwrap();
    assert!(stage.commit(&store).is_err());
    assert_eq!(
        lane_ops(&store, "tech1", "2026-05-04").unwrap().len(),
        1,
        "only the write that took the key is there"
    );
    assert_eq!(*log.lock().unwrap(), vec![("tech1".to_string(), false)]);
}

#[test]
fn an_abandoned_stage_writes_nothing_and_drops_the_views() {
    let store = SledStore::temporary().unwrap();
    let (stage, log) = stage();
    stage_one(&store, &stage);
    drop(stage);
    assert!(lane_ops(&store, "tech1", "2026-05-04").unwrap().is_empty());
    let rec: Option<serde_json::Value> = store
        .get(IDEMPOTENCY, &crate::write::outbox::idem_key("u1", "k1"))
        .unwrap();
    assert!(rec.is_none());
    assert_eq!(*log.lock().unwrap(), vec![("tech1".to_string(), false)]);
}

#[tokio::test]
async fn a_contended_lane_is_waited_for_only_after_committing_and_letting_go() {
    let store = Arc::new(SledStore::temporary().unwrap());
    let (stage, _) = stage();
    let mine = Arc::new(tokio::sync::Mutex::new(()));
    let theirs = Arc::new(tokio::sync::Mutex::new(()));
    let g = stage
        .lane(store.as_ref(), mine.clone(), "tech1", "d")
        .await
        .unwrap();
    assert!(matches!(g, LaneGuard::Own(_)));
    stage_one(store.as_ref(), &stage);
    stage.hold("tech1", "d", g);
    assert!(matches!(
        stage
            .lane(store.as_ref(), mine.clone(), "tech1", "d")
            .await
            .unwrap(),
        LaneGuard::Held
    ));
    assert!(mine.try_lock().is_err(), "the stage holds its lane");
    let other = theirs.clone().lock_owned().await;
    let waiting = {
        let stage = stage.clone();
        let store = store.clone();
        let theirs = theirs.clone();
        tokio::spawn(async move {
            matches!(
                stage.lane(store.as_ref(), theirs, "tech9", "d").await,
                Ok(LaneGuard::Own(_))
            )
        })
    };
    // While it waits for the other lane it holds nothing, and its ops are written.
    tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while mine.try_lock().is_err() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the stage let go of its lane");
    assert_eq!(
        lane_ops(store.as_ref(), "tech1", "2026-05-04")
            .unwrap()
            .len(),
        1
    );
    drop(other);
    assert!(waiting.await.unwrap());
}
