//! Unit tests for `view`: a kept view advanced op by op equals one rebuilt from sled.

use super::*;
use crate::domain::lifecycle::DeviceStatus;
use crate::read::cache::{activity_key, route_key, CachedActivity, ACTIVITIES, ROUTES};
use crate::store::{SledStore, StorageExt};
use crate::write::outbox::NewOp;
use chrono::{DateTime, Utc};
use std::sync::Arc;

const R: &str = "t1";
const D: &str = "2026-05-04";

fn fixture() -> (Arc<SledStore>, Cache) {
    let (store, cache) = crate::read::cache::tests::offline();
    let ids = [11, 12, 13];
    for (n, id) in ids.iter().enumerate() {
        let activity = Activity {
            activity_id: Some(*id),
            resource_id: Some(R.into()),
            date: Some(D.into()),
            status: Some("pending".into()),
            position_in_route: Some(n as i64 + 1),
            ..Default::default()
        };
        let cached = CachedActivity {
            activity,
            fetched_at: Utc::now(),
        };
        store.put(ACTIVITIES, &activity_key(*id), &cached).unwrap();
    }
    let route = CachedRoute {
        resource_id: R.into(),
        date: D.into(),
        route_start_time: None,
        activity_ids: ids.to_vec(),
        fetched_at: Utc::now(),
    };
    store.put(ROUTES, &route_key(R, D), &route).unwrap();
    (store, cache)
}

fn status(id: i64, status: DeviceStatus, minute: u32) -> NewOp {
    NewOp {
        resource_id: R.into(),
        date: D.into(),
        activity_id: Some(id),
        kind: OpKind::Status {
            status,
            ofsc_action: None,
            location: None,
            notes: None,
            reason: None,
        },
        time: DateTime::parse_from_rfc3339(&format!("2026-05-04T08:{minute:02}:00-04:00")).unwrap(),
        zone: None,
        captured_at: None,
    }
}

/// Queues one op as an accepted write and returns it.
fn enqueue(store: &SledStore, key: &str, op: NewOp) -> Vec<Op> {
    let who = crate::write::outbox::tests::who(key, key);
    match outbox::enqueue(store, &who, vec![op], |_| serde_json::Value::Null).unwrap() {
        outbox::Enqueued::Accepted { ops, .. } => ops,
        other => panic!("not accepted: {other:?}"),
    }
}

fn built(store: &SledStore, cache: &Cache) -> DeviceRoute {
    device_route(store, cache, R, D).unwrap().unwrap().0
}

#[test]
fn a_view_advanced_by_each_write_equals_the_view_rebuilt_from_sled() {
    let (store, cache) = fixture();
    let moves = [
        (11, DeviceStatus::Enroute),
        (11, DeviceStatus::Arrived),
        (11, DeviceStatus::Started),
        (11, DeviceStatus::Completed),
        (12, DeviceStatus::Enroute),
        (12, DeviceStatus::Pending),
    ];
    let mut writes: Vec<NewOp> = moves
        .into_iter()
        .enumerate()
        .map(|(n, (id, to))| status(id, to, n as u32))
        .collect();
    // A stop created on the device (provisional id), then started; and a GPS ping.
    let mut create = status(-5, DeviceStatus::Pending, 10);
    create.kind = OpKind::CreateActivity {
        activity: Box::new(Activity {
            resource_id: Some(R.into()),
            date: Some(D.into()),
            appt_number: Some("new-1".into()),
            ..Default::default()
        }),
    };
    writes.push(create);
    writes.push(status(-5, DeviceStatus::Enroute, 11));
    let mut ping = status(0, DeviceStatus::Pending, 12);
    ping.activity_id = None;
    ping.kind = OpKind::Location { fixes: vec![] };
    writes.push(ping);
    let mut kept = built(&store, &cache);
    kept.tag = cache.views.tag(&*store, &cache, R, D);
    for (n, write) in writes.into_iter().enumerate() {
        let ops = enqueue(&store, &format!("k{n}"), write);
        cache
            .views
            .advance(&*store, &cache, R, D, &kept, &ops)
            .unwrap();
        let tag = cache.views.tag(&*store, &cache, R, D);
        kept = cache
            .views
            .get(R, D, tag)
            .expect("the advanced view is kept");
        let mut fresh = built(&store, &cache);
        fresh.tag = tag;
        assert_eq!(kept, fresh, "after move {n}");
    }
    assert_eq!(kept.lane_pending, 9);
    assert_eq!(kept.shown_status(11).as_deref(), Some("completed"));
    assert_eq!(kept.shown_status(12).as_deref(), Some("pending"));
    assert_eq!(kept.shown_status(-5).as_deref(), Some("enroute"));
    assert_eq!(kept.stop(-5).and_then(|s| s.position), Some(4));
}

#[test]
fn a_view_is_not_kept_across_a_change_it_did_not_see() {
    let (store, cache) = fixture();
    let mut before = built(&store, &cache);
    before.tag = cache.views.tag(&*store, &cache, R, D);
    cache.views.put(R, D, before.clone());
    // The replayer (say) changed the route after `before` was read.
    cache.renders.touch(R, D);
    assert!(cache
        .views
        .get(R, D, cache.views.tag(&*store, &cache, R, D))
        .is_none());
    let ops = enqueue(&store, "k", status(11, DeviceStatus::Enroute, 1));
    cache
        .views
        .advance(&*store, &cache, R, D, &before, &ops)
        .unwrap();
    assert!(
        cache
            .views
            .get(R, D, cache.views.tag(&*store, &cache, R, D))
            .is_none(),
        "a view built on a missed change must not be kept"
    );
}

#[test]
fn a_quarantined_op_invalidates_the_kept_view() {
    let (store, cache) = fixture();
    let ops = enqueue(&store, "k", status(11, DeviceStatus::Enroute, 1));
    let mut kept = built(&store, &cache);
    kept.tag = cache.views.tag(&*store, &cache, R, D);
    cache.views.put(R, D, kept.clone());
    assert_eq!(cache.views.get(R, D, kept.tag), Some(kept));
    // The op's record rots on disk; the next lane read quarantines it (no route write).
    let seq = ops[0].seq;
    crate::store::Storage::insert_raw(&*store, outbox::OPS, &outbox::op_key(seq), b"rot".to_vec())
        .unwrap();
    assert!(outbox::lane_ops(&*store, R, D).unwrap().is_empty());
    assert!(cache
        .views
        .get(R, D, cache.views.tag(&*store, &cache, R, D))
        .is_none());
    assert_eq!(built(&store, &cache).lane_pending, 0);
    // `GET /ops/{id}` quarantines without the lane read; it recounts, which is what counts.
    let mut kept = built(&store, &cache);
    kept.tag = cache.views.tag(&*store, &cache, R, D);
    cache.views.put(R, D, kept.clone());
    outbox::recount(&*store).unwrap();
    assert!(cache
        .views
        .get(R, D, cache.views.tag(&*store, &cache, R, D))
        .is_none());
}

/// Builds the route's view, then advances and keeps it with one queued en route.
fn keep_view_after_one_write(store: &SledStore, cache: &Cache) {
    let mut before = built(store, cache);
    before.tag = cache.views.tag(store, cache, R, D);
    let ops = enqueue(store, "k", status(11, DeviceStatus::Enroute, 1));
    cache
        .views
        .advance(store, cache, R, D, &before, &ops)
        .unwrap();
}

/// A sync batch's staged ops advance the kept view before they are in sled. Once they are
/// committed the route's version moves (a body rendered meanwhile lacks them) and the view,
/// which shows them, moves with it; if they were lost, the view goes.
#[test]
fn settling_a_staged_route_keeps_the_view_only_when_its_ops_were_committed() {
    for committed in [true, false] {
        let (store, cache) = fixture();
        keep_view_after_one_write(&store, &cache);
        let advanced = cache.renders.version(R, D);
        cache.views.settle(&cache, R, D, committed);
        assert!(cache.renders.version(R, D) > advanced, "the route moved on");
        let kept = cache
            .views
            .get(R, D, cache.views.tag(&*store, &cache, R, D));
        assert_eq!(kept.is_some(), committed);
        if let Some(kept) = kept {
            let mut rebuilt = built(&store, &cache);
            rebuilt.tag = kept.tag;
            assert_eq!(kept.view, rebuilt.view);
        }
    }
}

#[test]
fn settling_does_not_revive_a_view_something_else_moved() {
    let (store, cache) = fixture();
    keep_view_after_one_write(&store, &cache);
    // The replayer applied something on the route between the stage and its commit.
    cache.renders.touch(R, D);
    cache.views.settle(&cache, R, D, true);
    assert!(cache
        .views
        .get(R, D, cache.views.tag(&*store, &cache, R, D))
        .is_none());
}
