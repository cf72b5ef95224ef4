//! Tests of the replayer against the simulator over HTTP, with faults injected into its
//! store: what a local failure after OFSC applied an op must not do is send it again.

use super::*;
use crate::config::{CacheSettings, ReplaySettings, TenantSettings};
use crate::ofsc::wire::Activity;
use crate::read::cache::ACTIVITIES;
use crate::sim::{seed, Sim, SimServer};
use crate::store::journal::JOURNAL;
use crate::store::SledStore;
use crate::write::outbox::NewOp;

struct Stack {
    sim: SimServer,
    store: Arc<SledStore>,
    replayer: Arc<Replayer>,
}

fn stack() -> Stack {
    let tenant = seed::parse(seed::DEMO_TENANT).unwrap();
    let sim = SimServer::start("127.0.0.1:0", Sim::new(tenant).unwrap(), 1).unwrap();
    let store = Arc::new(SledStore::temporary().unwrap());
    let shared: Arc<dyn Storage> = store.clone();
    let ofsc =
        Arc::new(OfscClient::new(TenantSettings::demo_at(&sim.url()).client_config()).unwrap());
    let cache = Arc::new(Cache::new(
        shared.clone(),
        ofsc.clone(),
        &CacheSettings::default(),
    ));
    let replayer = Replayer::new(
        ReplayDeps {
            store: shared.clone(),
            commit: GroupCommit::start(shared.clone()).unwrap(),
            ofsc: ofsc.clone(),
            cache,
            directory: Arc::new(Directory::load(shared.clone()).unwrap()),
            stock: Arc::new(crate::features::stock::Stock::new(shared, ofsc)),
            files: None,
        },
        ReplayConfig {
            base_backoff: Duration::from_millis(1),
            ..ReplayConfig::from_settings(&ReplaySettings::default())
        },
    );
    Stack {
        sim,
        store,
        replayer,
    }
}

/// A job created on tech1's route today, queued as the API would queue it.
fn queue_create(store: &SledStore) -> Op {
    let zone: chrono_tz::Tz = "America/New_York".parse().unwrap();
    let now = Utc::now().with_timezone(&zone);
    let date = now.format("%Y-%m-%d").to_string();
    let provisional = -(store.next_id().unwrap() as i64);
    let activity = Activity {
        activity_id: Some(provisional),
        resource_id: Some("tech1".into()),
        date: Some(date.clone()),
        activity_type: Some("INST".into()),
        status: Some("pending".into()),
        appt_number: Some(format!("FS{}", -provisional)),
        time_zone: Some("America/New_York".into()),
        duration: Some(30),
        ..Default::default()
    };
    let op = NewOp {
        resource_id: "tech1".into(),
        date,
        activity_id: Some(provisional),
        kind: OpKind::CreateActivity {
            activity: Box::new(activity),
        },
        time: now.fixed_offset(),
        zone: Some("America/New_York".into()),
        captured_at: None,
    };
    let who = crate::write::outbox::tests::who("create-1", "h1");
    match outbox::enqueue(store, &who, vec![op], |_| serde_json::Value::Null).unwrap() {
        outbox::Enqueued::Accepted { mut ops, .. } => ops.remove(0),
        other => panic!("not queued: {other:?}"),
    }
}

fn creates(sim: &SimServer) -> usize {
    sim.sim.with_tenant(|t| {
        t.ledger
            .iter()
            .filter(|e| e.method == "POST" && e.path.ends_with("/activities"))
            .count()
    })
}

#[tokio::test]
async fn a_create_whose_cache_write_fails_is_read_back_not_created_twice() {
    let s = stack();
    let op = queue_create(&s.store);
    s.store.flush_blocking().unwrap();
    // OFSC creates the activity; storing its copy then fails.
    s.store.faults.fail_insert_into(ACTIVITIES, 0);
    let first = s.replayer.step(op.clone()).await;
    assert!(matches!(first, Step::Wait(_)), "retried, not finished");
    assert_eq!(creates(&s.sim), 1);
    let queued = outbox::get_op(s.store.as_ref(), op.seq).unwrap().unwrap();
    assert_eq!(queued.state, OpState::Queued);
    assert!(queued
        .last_error
        .as_deref()
        .is_some_and(|e| e.contains("injected insert failure")));

    let second = s.replayer.step(queued).await;
    assert!(matches!(second, Step::Done));
    assert_eq!(
        creates(&s.sim),
        1,
        "found by its apptNumber, never sent again"
    );
    let applied = outbox::get_op(s.store.as_ref(), op.seq).unwrap().unwrap();
    assert_eq!(applied.state, OpState::Applied);
    let id = applied.created_activity_id.unwrap();
    assert!(id > 0, "OFSC's id: {id}");
    let cached = s.replayer.cache.activity(id).unwrap();
    assert!(
        cached.is_some(),
        "OFSC's copy is cached before the lane moves on"
    );
}

#[tokio::test]
async fn a_create_whose_outcome_cannot_be_recorded_is_read_back_not_created_twice() {
    let s = stack();
    let op = queue_create(&s.store);
    s.store.flush_blocking().unwrap();
    // The op's `sending` record passes; OFSC creates the activity; its `applied` record
    // then fails, so the op is still stored as sending.
    s.store.faults.fail_insert_into(JOURNAL, 1);
    let first = s.replayer.step(op.clone()).await;
    assert!(matches!(first, Step::Wait(_)));
    assert_eq!(creates(&s.sim), 1);
    let stored = outbox::get_op(s.store.as_ref(), op.seq).unwrap().unwrap();
    assert_eq!(stored.state, OpState::Sending);

    let second = s.replayer.step(stored).await;
    assert!(matches!(second, Step::Done));
    assert_eq!(creates(&s.sim), 1, "read back, never sent again");
    let applied = outbox::get_op(s.store.as_ref(), op.seq).unwrap().unwrap();
    assert_eq!(applied.state, OpState::Applied);
    assert!(applied.created_activity_id.is_some_and(|id| id > 0));
}
