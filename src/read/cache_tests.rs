//! Unit tests for `cache`: eviction of routes past their retention.

use super::*;
use crate::domain::lifecycle::DeviceStatus;
use crate::store::{SledStore, StorageExt};
use crate::write::outbox::{NewOp, OpKind};

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// A temporary store, and a cache over it whose OFSC cannot be reached (port 9): what is
/// kept is all there is.
pub(crate) fn offline() -> (Arc<SledStore>, Cache) {
    let store = Arc::new(SledStore::temporary().unwrap());
    let ofsc = crate::config::TenantSettings::demo_at("http://127.0.0.1:9").client_config();
    let cache = Cache::new(
        store.clone(),
        Arc::new(crate::ofsc::OfscClient::new(ofsc).unwrap()),
        &CacheSettings::default(),
    );
    (store, cache)
}

fn keep(store: &SledStore, resource: &str, date: &str, ids: &[(i64, &str)]) {
    for (id, on) in ids {
        let activity = Activity {
            activity_id: Some(*id),
            resource_id: Some(resource.into()),
            date: Some((*on).into()),
            ..Default::default()
        };
        let cached = CachedActivity {
            activity,
            fetched_at: Utc::now(),
        };
        store.put(ACTIVITIES, &activity_key(*id), &cached).unwrap();
    }
    let route = CachedRoute {
        resource_id: resource.into(),
        date: date.into(),
        route_start_time: None,
        activity_ids: ids.iter().map(|(id, _)| *id).collect(),
        fetched_at: Utc::now(),
    };
    store
        .put(ROUTES, &route_key(resource, date), &route)
        .unwrap();
}

#[test]
fn routes_past_their_retention_go_unless_writes_wait_on_them() {
    let (store, cache) = offline();
    // Retention 45 days from 2026-03-01: dates before 2026-01-15 are past it.
    keep(
        &store,
        "t1",
        "2026-01-02",
        &[(1, "2026-01-02"), (2, "2026-02-20")],
    );
    keep(&store, "t1", "2026-01-15", &[(3, "2026-01-15")]);
    keep(&store, "t2", "2026-01-03", &[(4, "2026-01-03")]);
    // An activity read on its own, not through a route.
    keep(&store, "t3", "2026-01-04", &[(5, "2026-01-04")]);
    store
        .remove(ROUTES, &route_key("t3", "2026-01-04"))
        .unwrap();
    // A write still queued on t2's old route.
    let who = crate::write::outbox::tests::who("k1", "k1");
    let op = NewOp {
        resource_id: "t2".into(),
        date: "2026-01-03".into(),
        activity_id: Some(4),
        kind: OpKind::Status {
            status: DeviceStatus::Enroute,
            ofsc_action: None,
            location: None,
            notes: None,
            reason: None,
        },
        time: chrono::DateTime::parse_from_rfc3339("2026-01-03T08:00:00Z").unwrap(),
        zone: None,
        captured_at: None,
    };
    crate::write::outbox::enqueue(&*store, &who, vec![op], |_| serde_json::Value::Null).unwrap();
    cache.renders.touch("t1", "2026-01-02");

    let evicted = cache.evict(day("2026-03-01")).unwrap();
    assert_eq!(
        evicted, 3,
        "t1's old route, its own activity, the lone activity"
    );
    assert!(!cache.has_route("t1", "2026-01-02").unwrap());
    assert!(cache.activity(1).unwrap().is_none());
    assert!(
        cache.activity(2).unwrap().is_some(),
        "moved to a later route: not this route's to evict"
    );
    assert!(cache.activity(5).unwrap().is_none());
    assert!(
        cache.has_route("t1", "2026-01-15").unwrap(),
        "within retention"
    );
    assert!(cache.activity(3).unwrap().is_some());
    assert!(
        cache.has_route("t2", "2026-01-03").unwrap(),
        "a write waits on it"
    );
    assert!(cache.activity(4).unwrap().is_some());
    assert_eq!(cache.renders.version("t1", "2026-01-02"), 0, "forgotten");
    assert_eq!(
        cache.evict(day("2026-03-01")).unwrap(),
        0,
        "nothing left to do"
    );
}

#[test]
fn an_eviction_a_store_error_stops_never_leaves_a_route_missing_stops() {
    use crate::store::Faults;
    let (store, cache) = offline();
    let ids = [(1, "2026-01-02"), (2, "2026-01-02"), (3, "2026-01-02")];
    keep(&store, "t1", "2026-01-02", &ids);
    // Whole, or gone: never a route that lists an activity no longer kept.
    let whole_or_gone = || match cache.cached_route("t1", "2026-01-02").unwrap() {
        Some((route, activities)) => {
            assert_eq!(
                activities.len(),
                route.activity_ids.len(),
                "a stop went missing"
            );
            true
        }
        None => false,
    };
    Faults::fail_after(&store.faults.remove, 0);
    assert!(cache.evict(day("2026-03-01")).is_err());
    assert!(whole_or_gone(), "the first remove failed: nothing went");
    Faults::fail_after(&store.faults.remove, 2);
    assert!(cache.evict(day("2026-03-01")).is_err());
    assert!(!whole_or_gone(), "the route went first");
    assert!(cache.activity(1).unwrap().is_none());
    assert!(cache.activity(2).unwrap().is_some(), "left by the error");
    Faults::fail_after(&store.faults.remove, usize::MAX);
    assert_eq!(
        cache.evict(day("2026-03-01")).unwrap(),
        2,
        "the next run evicts what the route left behind"
    );
    assert!(cache.activity(2).unwrap().is_none());
    assert!(cache.activity(3).unwrap().is_none());
}

#[test]
fn a_corrupt_cached_record_is_quarantined_and_read_as_not_cached_and_eviction_goes_on() {
    let (store, cache) = offline();
    keep(&store, "t1", "2026-01-02", &[(1, "2026-01-02")]);
    keep(&store, "t2", "2026-01-03", &[(2, "2026-01-03")]);
    keep(&store, "t3", "2026-02-20", &[(3, "2026-02-20")]);
    crate::store::corrupt(&*store, ROUTES, &route_key("t1", "2026-01-02"));
    crate::store::corrupt(&*store, ACTIVITIES, &activity_key(3));

    // Reads: not cached (so fetched again), where they used to fail; a route that lost an
    // activity so is shown without it and due for a refresh.
    let (route, activities) = cache.cached_route("t3", "2026-02-20").unwrap().unwrap();
    assert!(activities.is_empty());
    assert!(route.fetched_at > DateTime::<Utc>::UNIX_EPOCH);
    let aged = cache.cached_route("t3", "2026-02-20").unwrap().unwrap().0;
    assert_eq!(aged.fetched_at, DateTime::<Utc>::UNIX_EPOCH);
    assert!(cache.activity(3).unwrap().is_none());
    assert_eq!(store.quarantined(10).unwrap().len(), 1);

    // Eviction quarantines the corrupt route and evicts t2's old route past it; t1's
    // activity, no longer on a cached route, is as old, so it goes too.
    let evicted = cache.evict(day("2026-03-01")).unwrap();
    assert_eq!(
        evicted, 4,
        "t1's route (quarantined), t2's route and activity, activity 1"
    );
    assert!(!cache.has_route("t1", "2026-01-02").unwrap());
    assert!(!cache.has_route("t2", "2026-01-03").unwrap());
    assert!(cache.has_route("t3", "2026-02-20").unwrap());
    assert_eq!(store.quarantined(10).unwrap().len(), 2);
}
