//! The read side: routes and activities from the cache, offline, fresh through OFSC events,
//! time zones honoured; creating follow-up activities with provisional ids.

use crate::helpers::{stop_ids, Stack};
use fieldsync::auth::{users, Role};
use serde_json::{json, Value};
use std::time::Duration;

async fn today(stack: &Stack, r: &str) -> String {
    stack.sim.today_route(r).await.0
}

#[tokio::test]
async fn a_route_has_everything_a_technician_needs() {
    let stack = Stack::start().await;
    let s = stack.app.login("tech1").await;
    let date = today(&stack, "tech1").await;
    let route = stack.route(&s, &date).await;
    assert_eq!(route["resourceId"], "tech1");
    assert_eq!(route["timeZone"], "America/New_York");
    assert_eq!(route["stale"], false);
    assert!(route["fetchedAt"].is_string());
    let stops = route["stops"].as_array().unwrap();
    assert_eq!(stops.len(), 8);
    let positions: Vec<i64> = stops
        .iter()
        .map(|s| s["position"].as_i64().unwrap())
        .collect();
    assert_eq!(positions, (1..=8).collect::<Vec<_>>());
    for stop in stops {
        let start =
            chrono::DateTime::parse_from_rfc3339(stop["plannedStart"].as_str().unwrap()).unwrap();
        let end =
            chrono::DateTime::parse_from_rfc3339(stop["plannedEnd"].as_str().unwrap()).unwrap();
        assert!(end > start);
        assert!(stop["serviceWindow"]["start"]
            .as_str()
            .unwrap()
            .contains('T'));
        assert!(stop["travelMinutes"].as_i64().unwrap() > 0);
        assert!(stop["durationMinutes"].as_i64().unwrap() > 0);
        assert!(stop["customer"]["name"].is_string() && stop["customer"]["phone"].is_string());
        assert!(stop["address"]["street"].is_string() && stop["location"]["lat"].is_f64());
        assert_eq!(stop["timeZone"], "America/New_York");
        assert_eq!(stop["pendingOps"], 0);
    }
}

#[tokio::test]
async fn etag_and_if_none_match() {
    let stack = Stack::start().await;
    let s = stack.app.login("tech2").await;
    let date = today(&stack, "tech2").await;
    let url = stack.app.url(&format!("/routes/{date}"));
    let first = stack
        .app
        .http
        .get(&url)
        .bearer_auth(&s.access)
        .send()
        .await
        .unwrap();
    let etag = first.headers()["etag"].to_str().unwrap().to_string();
    let again = stack
        .app
        .http
        .get(&url)
        .bearer_auth(&s.access)
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    let ids: Vec<i64> = first.json::<Value>().await.unwrap()["stops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["activityId"].as_i64().unwrap())
        .collect();
    stack.status(&s, ids[0], "started", "e1").await;
    let changed = stack
        .app
        .http
        .get(&url)
        .bearer_auth(&s.access)
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 200, "a queued write changes the route");
}

#[tokio::test]
async fn with_ofsc_down_the_cached_route_is_served_stale() {
    let stack = Stack::start_with(|s| s.cache.route_max_age_secs = 0).await;
    let s = stack.app.login("tech3").await;
    let date = today(&stack, "tech3").await;
    let fresh = stack.route(&s, &date).await;
    stack.sim.faults(json!({"rate5xx": 1.0})).await;
    let mut route = Value::Null;
    for _ in 0..60 {
        route = stack.route(&s, &date).await;
        if route["stale"] == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(route["stale"], true);
    assert_eq!(route["fetchedAt"], fresh["fetchedAt"]);
    assert_eq!(route["stops"].as_array().unwrap().len(), 9);
    // A route never fetched cannot be served.
    let tomorrow =
        chrono::NaiveDate::parse_from_str(&date, "%Y-%m-%d").unwrap() + chrono::Days::new(1);
    let resp = stack
        .app
        .call("get", &format!("/routes/{tomorrow}"), Some(&s.access))
        .await;
    assert_eq!(resp.status(), 503);
    let problem = resp.json::<Value>().await.unwrap();
    assert_eq!(problem["code"], "ofsc-unavailable");
    // The cause is logged; the answer names no upstream address or error text.
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        !detail.contains("http") && !detail.contains("127.0.0.1"),
        "{detail}"
    );
}

#[tokio::test]
async fn dispatcher_changes_arrive_through_ofsc_events() {
    let stack = Stack::start().await;
    let s = stack.app.login("tech1").await;
    let other = stack.app.login("tech2").await;
    let date = today(&stack, "tech1").await;
    let ids = stop_ids(&stack.route(&s, &date).await);
    let date2 = today(&stack, "tech2").await;
    stack.route(&other, &date2).await;
    stack
        .sim
        .control(
            "/__sim/dispatch",
            json!({"action": "cancel", "activityId": ids[1]}),
        )
        .await;
    stack
        .sim
        .control(
            "/__sim/dispatch",
            json!({"action": "move", "activityId": ids[2], "resourceId": "tech2", "date": date2}),
        )
        .await;
    let mut seen = (false, false, false);
    for _ in 0..50 {
        let r = stack.route(&s, &date).await;
        let stops = r["stops"].as_array().unwrap();
        let cancelled = stops
            .iter()
            .any(|x| x["activityId"] == ids[1] && x["status"] == "cancelled");
        let gone = !stops.iter().any(|x| x["activityId"] == ids[2]);
        let theirs = stack.route(&other, &date2).await;
        let arrived = theirs["stops"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["activityId"] == ids[2]);
        seen = (cancelled, gone, arrived);
        if seen == (true, true, true) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        seen,
        (true, true, true),
        "cancelled / moved away / moved in"
    );
    let changes = fieldsync::store::Storage::scan_raw(
        stack.app.state.store.as_ref(),
        fieldsync::write::outbox::CHANGES,
        b"",
        None,
        1000,
    )
    .unwrap();
    assert!(changes.len() >= 3, "events reach the change log");
}

/// The change log a technician's device pulls, from `cursor`: (items, next cursor).
async fn pull(stack: &Stack, access: &str, cursor: &str) -> (Vec<Value>, String) {
    let body: Value = stack
        .app
        .http
        .get(
            stack
                .app
                .url(&format!("/sync/pull?cursor={cursor}&limit=500")),
        )
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items = body["items"].as_array().cloned().unwrap_or_default();
    (
        items,
        body["nextCursor"].as_str().unwrap_or_default().to_string(),
    )
}

#[tokio::test]
async fn a_move_between_two_technicians_reaches_both_of_their_devices() {
    let stack = Stack::start().await;
    let from = stack.app.login("tech1").await;
    let to = stack.app.login("tech2").await;
    let date = today(&stack, "tech1").await;
    let date2 = today(&stack, "tech2").await;
    let ids: Vec<i64> = stop_ids(&stack.route(&from, &date).await);
    stack.route(&to, &date2).await;
    let (_, c_from) = pull(&stack, &from.access, "").await;
    let (_, c_to) = pull(&stack, &to.access, "").await;
    stack
        .sim
        .control(
            "/__sim/dispatch",
            json!({"action": "move", "activityId": ids[2], "resourceId": "tech2", "date": date2}),
        )
        .await;
    let learned = |items: &[Value]| {
        items
            .iter()
            .any(|c| c["activityId"] == ids[2] && c["data"]["eventType"] == "activityMoved")
    };
    let mut seen = (false, false);
    for _ in 0..50 {
        seen = (
            learned(&pull(&stack, &from.access, &c_from).await.0),
            learned(&pull(&stack, &to.access, &c_to).await.0),
        );
        if seen == (true, true) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        seen,
        (true, true),
        "(the technician it left, the one it joined)"
    );
    // Both routes were refreshed from the event, not only the one it names first.
    let theirs = stack.route(&to, &date2).await;
    assert!(theirs["stops"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["activityId"] == ids[2]));
}

#[tokio::test]
async fn an_expired_subscription_is_renewed() {
    let stack = Stack::start().await;
    let s = stack.app.login("tech3").await;
    let date = today(&stack, "tech3").await;
    let ids: Vec<i64> = stop_ids(&stack.route(&s, &date).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    stack
        .sim
        .control("/__sim/subscriptions/expire", json!({}))
        .await;
    stack
        .sim
        .control(
            "/__sim/dispatch",
            json!({"action": "cancel", "activityId": ids[3]}),
        )
        .await;
    let mut ok = false;
    for _ in 0..50 {
        let r = stack.route(&s, &date).await;
        if r["stops"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["activityId"] == ids[3] && x["status"] == "cancelled")
        {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "the route was re-read after resubscribing");
}

const DST_SEED: &str = r#"{"date": "2026-11-01", "resources": [
  {"resourceId": "night", "name": "Night Crew", "resourceType": "PR", "timeZone": "America/New_York",
   "route": {"dayStart": "00:10", "stops": [
     {"apptNumber": "N-1", "activityType": "REPAIR", "timeSlot": "N", "serviceWindowStart": "00:00", "serviceWindowEnd": "06:00", "duration": 40, "travelTime": 20, "customerName": "A", "customerPhone": "+1", "streetAddress": "1 A St", "city": "X", "stateProvince": "NY", "postalCode": "1", "latitude": 40.0, "longitude": -74.0},
     {"apptNumber": "N-2", "activityType": "REPAIR", "timeSlot": "N", "serviceWindowStart": "00:00", "serviceWindowEnd": "06:00", "duration": 40, "travelTime": 20, "customerName": "B", "customerPhone": "+1", "streetAddress": "2 B St", "city": "X", "stateProvince": "NY", "postalCode": "1", "latitude": 40.0, "longitude": -74.0},
     {"apptNumber": "N-3", "activityType": "REPAIR", "timeSlot": "N", "serviceWindowStart": "00:00", "serviceWindowEnd": "06:00", "duration": 40, "travelTime": 20, "customerName": "C", "customerPhone": "+1", "streetAddress": "3 C St", "city": "X", "stateProvince": "NY", "postalCode": "1", "latitude": 40.0, "longitude": -74.0},
     {"apptNumber": "N-4", "activityType": "REPAIR", "timeSlot": "N", "serviceWindowStart": "00:00", "serviceWindowEnd": "06:00", "duration": 40, "travelTime": 20, "customerName": "D", "customerPhone": "+1", "streetAddress": "4 D St", "city": "X", "stateProvince": "NY", "postalCode": "1", "latitude": 40.0, "longitude": -74.0}
   ]}}]}"#;

#[tokio::test]
async fn a_route_across_the_dst_change_keeps_true_instants() {
    // The DST change is a fixed date: the read window reaches it for years to come.
    let stack = Stack::start_seeded(DST_SEED, |s| {
        s.cache.read_days_back = 3650;
        s.cache.route_retention_days = 3651;
        s.history.retention_days = 0;
    })
    .await;
    users::add(
        stack.app.state.store.as_ref(),
        users::NewUser {
            username: "night".into(),
            name: "Night".into(),
            role: Role::Technician,
            resource_id: Some("night".into()),
            oversees: vec![],
            oversees_parent: None,
            password: "demo".into(),
        },
    )
    .unwrap();
    let s = stack.app.login("night").await;
    let route = stack.route(&s, "2026-11-01").await;
    let starts: Vec<String> = route["stops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["plannedStart"].as_str().unwrap().to_string())
        .collect();
    // 00:30 and 01:30 are daylight time; 02:30 and 03:30 local are standard time.
    assert_eq!(starts[0], "2026-11-01T00:30:00-04:00");
    assert_eq!(starts[1], "2026-11-01T01:30:00-04:00");
    assert_eq!(starts[2], "2026-11-01T02:30:00-05:00");
    assert_eq!(starts[3], "2026-11-01T03:30:00-05:00");
    let instants: Vec<_> = starts
        .iter()
        .map(|s| chrono::DateTime::parse_from_rfc3339(s).unwrap())
        .collect();
    assert!(
        instants
            .windows(2)
            .all(|w| w[1] - w[0] >= chrono::Duration::minutes(60)),
        "{starts:?}"
    );
}

#[tokio::test]
async fn activities_list_filters_and_pages() {
    let stack = Stack::start().await;
    let s = stack.app.login("tech1").await;
    let date = today(&stack, "tech1").await;
    let page: Value = stack
        .app
        .call(
            "get",
            &format!("/activities?dateFrom={date}&dateTo={date}&limit=3"),
            Some(&s.access),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 3);
    assert_eq!(page["hasMore"], true);
    let mut all: Vec<i64> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["activityId"].as_i64().unwrap())
        .collect();
    let mut cursor = page["nextCursor"].as_str().map(str::to_string);
    while let Some(c) = cursor {
        let p: Value = stack
            .app
            .call(
                "get",
                &format!("/activities?dateFrom={date}&dateTo={date}&limit=3&cursor={c}"),
                Some(&s.access),
            )
            .await
            .json()
            .await
            .unwrap();
        all.extend(
            p["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x["activityId"].as_i64().unwrap()),
        );
        cursor = p["nextCursor"].as_str().map(str::to_string);
    }
    assert_eq!(all.len(), 8);
    stack.status(&s, all[0], "started", "l1").await;
    let started: Value = stack
        .app
        .call(
            "get",
            &format!("/activities?dateFrom={date}&dateTo={date}&status=started"),
            Some(&s.access),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        started["items"].as_array().unwrap().len(),
        1,
        "read-your-writes in lists too"
    );
    for bad in [
        "/activities?dateFrom=2026-01-01&dateTo=2026-03-01",
        "/activities?dateFrom=nope",
        "/activities?cursor=zzz",
        "/activities?limit=x",
    ] {
        assert_eq!(
            stack.app.call("get", bad, Some(&s.access)).await.status(),
            400,
            "{bad}"
        );
    }
    assert_eq!(
        stack
            .app
            .call(
                "get",
                &format!("/activities?dateFrom={date}&resourceId=tech2"),
                Some(&s.access)
            )
            .await
            .status(),
        404
    );
    let sup = stack.app.login("super1").await;
    let theirs: Value = stack
        .app
        .call(
            "get",
            &format!("/activities?dateFrom={date}&resourceId=tech1"),
            Some(&sup.access),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(theirs["items"].as_array().unwrap().len(), 8);
}

#[tokio::test]
async fn a_follow_up_is_queued_with_a_provisional_id_that_keeps_working() {
    let stack = Stack::start().await;
    let s = stack.app.login("tech2").await;
    let date = today(&stack, "tech2").await;
    let body = json!({"activityType": "REPAIR", "date": date, "customerName": "Follow Up", "duration": 30, "notes": "bring a ladder"});
    let post = |key: &str, body: Value| {
        let req = stack
            .app
            .http
            .post(stack.app.url("/activities"))
            .bearer_auth(&s.access)
            .header("Idempotency-Key", key)
            .json(&body);
        async move { req.send().await.unwrap() }
    };
    for bad in [
        json!({"date": date}),
        json!({"activityType": "X", "date": "2001-01-01"}),
        json!({"activityType": "X", "date": date, "duration": -5}),
        json!({"activityType": "X", "date": date, "extra": 1}),
    ] {
        assert_eq!(post("bad", bad.clone()).await.status(), 400, "{bad}");
    }
    let first = post("fu-1", body.clone()).await;
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    let provisional = first["activity"]["activityId"]
        .as_i64()
        .unwrap_or_else(|| panic!("{first}"));
    assert!(provisional < 0);
    let again: Value = post("fu-1", body.clone()).await.json().await.unwrap();
    assert_eq!(again, first, "idempotent");
    let op = first["opId"].as_str().unwrap().to_string();
    let done = stack.settle(&s, &[op], Duration::from_secs(10)).await;
    assert_eq!(done[0]["state"], "applied");
    let real: Value = stack
        .app
        .call(
            "get",
            &format!("/activities/{provisional}"),
            Some(&s.access),
        )
        .await
        .json()
        .await
        .unwrap();
    let real_id = real["activityId"]
        .as_i64()
        .unwrap_or_else(|| panic!("{real}"));
    assert!(real_id > 0, "the provisional id maps to OFSC's id: {real}");
    assert_eq!(real["customer"]["name"], "Follow Up");
    let route = stack.route(&s, &date).await;
    assert!(route["stops"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["activityId"] == real_id));
    let (code, _) = stack
        .status(&s, provisional, "cancelled", "fu-cancel")
        .await;
    assert_eq!(code, 202, "both ids work afterwards");
    let creates = stack
        .sim
        .ledger()
        .await
        .iter()
        .filter(|e| e["method"] == "POST" && e["path"] == "/rest/ofscCore/v1/activities")
        .count();
    assert_eq!(creates, 1);
}

/// The directory learns a changed resource from OFSC's resource events, without waiting
/// for its hourly full re-read.
#[tokio::test]
async fn a_resource_changed_in_ofsc_reaches_the_directory_through_events() {
    let stack = Stack::start_with(|s| {
        s.cache.events_poll_ms = 100;
        s.cache.directory_refresh_secs = 3600;
    })
    .await;
    let s = stack.app.login("super1").await;
    let resp = stack
        .sim
        .http
        .patch(stack.sim.url("/rest/ofscCore/v1/resources/tech3"))
        .basic_auth("fieldsync-demo@demo", Some("demo"))
        .json(&json!({"name": "Tess Renamed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut name = Value::Null;
    for _ in 0..100 {
        let resp = stack
            .app
            .call("get", "/resources/tech3", Some(&s.access))
            .await;
        assert_eq!(resp.status(), 200);
        let r: Value = resp.json().await.unwrap();
        name = r["name"].clone();
        if name == "Tess Renamed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(name, "Tess Renamed");
}

#[tokio::test]
async fn a_corrupt_cached_stop_is_quarantined_and_fetched_again() {
    use fieldsync::read::cache::{activity_key, route_key, ACTIVITIES, ROUTES};
    use fieldsync::store::StorageExt;
    let stack = Stack::start().await;
    let s = stack.app.login("tech1").await;
    let date = today(&stack, "tech1").await;
    let ids = stop_ids(&stack.route(&s, &date).await);
    let store = stack.app.state.store.as_ref();
    let key = activity_key(ids[0]);
    crate::helpers::corrupt(store, ACTIVITIES, &key);
    // Something else moved the route, so the next read builds it from the cache again.
    stack.app.state.cache.renders.touch("tech1", &date);

    // Never an error: the stop is left out once, and the route is fetched again.
    let mut seen = Vec::new();
    for _ in 0..50 {
        seen = stop_ids(&stack.route(&s, &date).await);
        if seen == ids {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, ids);
    assert_eq!(store.quarantined(10).unwrap().len(), 1);
    assert!(store.get::<Value>(ACTIVITIES, &key).unwrap().is_some());

    // The route record itself: read as not cached, so fetched again at once.
    let route = route_key("tech1", &date);
    crate::helpers::corrupt(store, ROUTES, &route);
    stack.app.state.cache.renders.touch("tech1", &date);
    assert_eq!(stop_ids(&stack.route(&s, &date).await), ids);
    assert_eq!(store.quarantined(10).unwrap().len(), 2);
    assert!(store.get::<Value>(ROUTES, &route).unwrap().is_some());
}
