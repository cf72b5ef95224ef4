//! Status writes: lifecycle checks, idempotency, the outbox and replay into the simulator.

use crate::helpers::{stop_ids, Stack};
use serde_json::{json, Value};
use std::time::Duration;

async fn today(stack: &Stack, resource: &str) -> String {
    stack.sim.today_route(resource).await.0
}

fn api_ledger(ledger: &[Value]) -> Vec<(Option<i64>, String)> {
    ledger
        .iter()
        .filter(|e| e["source"] == "api" && e["action"].is_string())
        .map(|e| {
            (
                e["activityId"].as_i64(),
                e["action"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_day_replays_in_order_with_the_route_activated_first() {
    let stack = Stack::start().await;
    let s = stack.app.login("tech1").await;
    let date = today(&stack, "tech1").await;
    let route = stack.route(&s, &date).await;
    assert_eq!(route["activated"], false);
    assert!(route["stops"].as_array().unwrap().len() >= 6);
    let first = stop_ids(&route)[0];
    let mut ops = Vec::new();
    for (i, status) in ["enroute", "arrived", "started", "completed"]
        .iter()
        .enumerate()
    {
        let (code, body) = stack.status(&s, first, status, &format!("k{i}")).await;
        assert_eq!(code, 202, "{status}: {body}");
        assert_eq!(body["state"], "queued");
        assert_eq!(body["activity"]["status"], *status, "read-your-writes");
        ops.push(body["opId"].as_str().unwrap().to_string());
    }
    let done = stack.settle(&s, &ops, Duration::from_secs(20)).await;
    assert!(done.iter().all(|o| o["state"] == "applied"), "{done:?}");
    let ledger = api_ledger(&stack.sim.ledger().await);
    assert_eq!(
        ledger,
        vec![
            (None, "activate".to_string()),
            (Some(first), "enroute".to_string()),
            (Some(first), "start".to_string()),
            (Some(first), "complete".to_string())
        ]
    );
    let route = stack.route(&s, &date).await;
    assert_eq!(route["activated"], true);
    assert_eq!(route["stops"][0]["status"], "completed");
    assert_eq!(route["pendingOps"], 0);
}

#[tokio::test]
async fn illegal_moves_get_409_with_the_allowed_moves() {
    let stack = Stack::start().await;
    let s = stack.app.login("tech2").await;
    let date = today(&stack, "tech2").await;
    let ids = stop_ids(&stack.route(&s, &date).await);
    let (code, body) = stack.status(&s, ids[0], "completed", "a").await;
    assert_eq!(code, 409);
    assert_eq!(body["code"], "invalid-transition");
    assert_eq!(body["allowed"], json!(["enroute", "started", "cancelled"]));
    let (code, body) = stack.status(&s, ids[1], "enroute", "b").await;
    assert_eq!(
        (code, body["code"].as_str()),
        (409, Some("invalid-transition"))
    );
    let (code, _) = stack.status(&s, ids[0], "started", "c").await;
    assert_eq!(code, 202);
    let (code, body) = stack.status(&s, ids[1], "started", "d").await;
    assert_eq!(code, 409, "one started activity per route: {body}");
    let (code, body) = stack.status(&s, ids[0], "arrived", "e").await;
    assert_eq!(code, 409, "arrived only after en route: {body}");
    // Within the device-time window, but before the route's previous action.
    let yesterday = (chrono::Utc::now() - chrono::Duration::days(1)).to_rfc3339();
    let past = json!({"status": "completed", "time": yesterday});
    let (code, body) = stack.status_body(&s, ids[0], past, "f").await;
    assert_eq!(code, 409, "time never goes backwards: {body}");
    let (code, body) = stack.status(&s, ids[0], "finished", "g").await;
    assert_eq!((code, body["code"].as_str()), (400, Some("invalid-status")));
}

#[tokio::test]
async fn idempotency_key_replays_the_first_answer_or_refuses_another_body() {
    let stack = Stack::start().await;
    let s = stack.app.login("tech3").await;
    let date = today(&stack, "tech3").await;
    let id = stop_ids(&stack.route(&s, &date).await)[0];
    let (c1, first) = stack.status(&s, id, "started", "same-key").await;
    let (c2, second) = stack.status(&s, id, "started", "same-key").await;
    assert_eq!((c1, c2), (202, 202));
    assert_eq!(first, second);
    let (c3, body) = stack.status(&s, id, "cancelled", "same-key").await;
    assert_eq!(
        (c3, body["code"].as_str()),
        (422, Some("idempotency-key-reused"))
    );
    let op = first["opId"].as_str().unwrap().to_string();
    stack.settle(&s, &[op], Duration::from_secs(10)).await;
    let starts = api_ledger(&stack.sim.ledger().await)
        .into_iter()
        .filter(|(_, a)| a == "start")
        .count();
    assert_eq!(starts, 1);
    // Keys are scoped to the user: another user may use the same key.
    let sup = stack.app.login("super1").await;
    let (c4, _) = stack.status(&sup, id, "completed", "same-key").await;
    assert_eq!(c4, 202);
    let missing = stack
        .app
        .http
        .patch(stack.app.url(&format!("/activities/{id}/status")))
        .bearer_auth(&s.access)
        .json(&json!({"status": "completed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 400);
}

#[tokio::test]
async fn a_dispatcher_cancel_while_offline_rejects_that_job_and_blocks_its_followers() {
    let stack = Stack::start().await;
    let s = stack.app.login("tech1").await;
    let date = today(&stack, "tech1").await;
    let ids = stop_ids(&stack.route(&s, &date).await);
    // OFSC unreachable: everything the technician does stays queued.
    stack.sim.faults(json!({"rate5xx": 1.0})).await;
    let mut ops = Vec::new();
    for (i, (id, status)) in [
        (ids[0], "started"),
        (ids[0], "completed"),
        (ids[1], "started"),
        (ids[1], "completed"),
        (ids[2], "started"),
        (ids[2], "completed"),
    ]
    .into_iter()
    .enumerate()
    {
        let (code, body) = stack.status(&s, id, status, &format!("off-{i}")).await;
        assert_eq!(code, 202, "{body}");
        ops.push(body["opId"].as_str().unwrap().to_string());
    }
    stack
        .sim
        .control(
            "/__sim/dispatch",
            json!({"action": "cancel", "activityId": ids[1]}),
        )
        .await;
    stack.sim.faults(json!({})).await;
    let done = stack.settle(&s, &ops, Duration::from_secs(30)).await;
    let states: Vec<&str> = done.iter().map(|o| o["state"].as_str().unwrap()).collect();
    assert_eq!(
        states,
        ["applied", "applied", "rejected", "blocked", "applied", "applied"],
        "{done:#?} {:#?}",
        stack.sim.ledger().await
    );
    assert!(
        done[2]["ofscDetail"]
            .as_str()
            .unwrap()
            .contains("cancelled"),
        "{}",
        done[2]
    );
    assert!(done[3]["lastError"]
        .as_str()
        .unwrap()
        .contains(ops[2].as_str()));
}

#[tokio::test]
async fn others_objects_are_404_and_admins_cannot_do_field_writes() {
    let stack = Stack::start().await;
    let tech1 = stack.app.login("tech1").await;
    let tech2 = stack.app.login("tech2").await;
    let admin = stack.app.login("admin").await;
    let date = today(&stack, "tech2").await;
    let theirs = stop_ids(&stack.route(&tech2, &date).await)[0];
    let (code, _) = stack.status(&tech1, theirs, "started", "x").await;
    assert_eq!(code, 404);
    assert_eq!(
        stack
            .app
            .call("get", &format!("/activities/{theirs}"), Some(&tech1.access))
            .await
            .status(),
        404
    );
    assert_eq!(
        stack
            .app
            .call(
                "get",
                &format!("/routes/{date}?resourceId=tech2"),
                Some(&tech1.access)
            )
            .await
            .status(),
        404
    );
    let (code, _) = stack.status(&admin, theirs, "started", "x").await;
    assert_eq!(code, 403);
    let (code, body) = stack.status(&tech2, theirs, "started", "x").await;
    assert_eq!(code, 202);
    let op = body["opId"].as_str().unwrap();
    assert_eq!(
        stack
            .app
            .call("get", &format!("/ops/{op}"), Some(&tech1.access))
            .await
            .status(),
        404
    );
    assert_eq!(
        stack
            .app
            .call("get", &format!("/ops/{op}"), Some(&tech2.access))
            .await
            .status(),
        200
    );
    assert_eq!(
        stack
            .app
            .call("get", "/ops/op_ffffffffffffff00", Some(&tech2.access))
            .await
            .status(),
        404
    );
    assert_eq!(
        stack
            .app
            .call("get", "/activities/999999999", Some(&tech2.access))
            .await
            .status(),
        404
    );
    assert_eq!(
        stack
            .app
            .call("get", "/activities/not-a-number", Some(&tech2.access))
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn fault_storm_three_technicians_a_full_day_exactly_once_in_order() {
    let stack = Stack::start().await;
    // Devices pull their routes in the depot, then OFSC turns hostile.
    let mut expected: Vec<(i64, &'static str)> = Vec::new();
    let mut handles = Vec::new();
    for tech in ["tech1", "tech2", "tech3"] {
        let s = stack.app.login(tech).await;
        let date = today(&stack, tech).await;
        let ids = stop_ids(&stack.route(&s, &date).await);
        for id in &ids {
            for a in ["enroute", "stopTravel", "enroute", "start", "complete"] {
                expected.push((*id, a));
            }
        }
        handles.push((s, ids));
    }
    stack
        .sim
        .faults(json!({"rate5xx": 0.2, "rate429": 0.1, "retryAfterSecs": 1, "timeoutAfterApply": 0.05, "timeoutHoldMs": 1500, "reset": 0.05, "tokenTtlSecs": 3, "seed": 42}))
        .await;
    let mut all_ops = Vec::new();
    let mut n = 0;
    for (s, ids) in &handles {
        for id in ids {
            for status in [
                "enroute",
                "pending",
                "enroute",
                "arrived",
                "started",
                "completed",
            ] {
                n += 1;
                let (code, body) = stack.status(s, *id, status, &format!("storm-{n}")).await;
                assert_eq!(code, 202, "{status} on {id}: {body}");
                all_ops.push((s.clone(), body["opId"].as_str().unwrap().to_string()));
            }
        }
    }
    assert!(n >= 140, "{n} ops");
    for (s, _) in &handles {
        let mine: Vec<String> = all_ops
            .iter()
            .filter(|(o, _)| o.device == s.device)
            .map(|(_, id)| id.clone())
            .collect();
        let done = stack.settle(s, &mine, Duration::from_secs(240)).await;
        let bad: Vec<_> = done.iter().filter(|o| o["state"] != "applied").collect();
        assert!(bad.is_empty(), "not applied: {bad:#?}");
    }
    stack.sim.faults(json!({})).await;
    let ledger = stack.sim.ledger().await;
    let calls = api_ledger(&ledger);
    // Exactly once: every expected call appears once, and nothing else was applied.
    let activations = calls.iter().filter(|(_, a)| a == "activate").count();
    assert_eq!(activations, 3);
    let mut sent: Vec<(i64, String)> = calls
        .iter()
        .filter_map(|(id, a)| id.map(|id| (id, a.clone())))
        .collect();
    for (s, ids) in &handles {
        // Per-route order equals the device's order.
        let route_calls: Vec<(i64, String)> = sent
            .iter()
            .filter(|(id, _)| ids.contains(id))
            .cloned()
            .collect();
        let want: Vec<(i64, String)> = expected
            .iter()
            .filter(|(id, _)| ids.contains(id))
            .map(|(id, a)| (*id, a.to_string()))
            .collect();
        assert_eq!(route_calls, want, "route of {}", s.device);
    }
    sent.sort();
    let mut want: Vec<(i64, String)> = expected
        .iter()
        .map(|(id, a)| (*id, a.to_string()))
        .collect();
    want.sort();
    assert_eq!(sent, want);
    // The live queue counts (kept by every state change, through retries, read-backs and
    // token refreshes) equal a full recount of the stored ops.
    let admin = stack.app.login("admin").await;
    let summary: Value = stack
        .app
        .call("get", "/admin/queue", Some(&admin.access))
        .await
        .json()
        .await
        .unwrap();
    let store = stack.app.state.store.as_ref();
    let live = fieldsync::write::outbox::counts_by_state(store, &|_| true);
    fieldsync::write::outbox::recount(store).unwrap();
    assert_eq!(
        live,
        fieldsync::write::outbox::counts_by_state(store, &|_| true)
    );
    let applied = live
        .iter()
        .find(|(s, _)| *s == fieldsync::write::outbox::OpState::Applied)
        .map(|(_, n)| *n);
    assert_eq!(summary["byState"]["applied"].as_u64(), applied, "{summary}");
    assert_eq!(
        applied,
        Some(all_ops.len() as u64 + 3),
        "every device write and the 3 route activations"
    );
}

/// A quarantined op stops counting at once: a route body rendered before the quarantine is
/// not served again (the count of op rebuilds is part of every route's version).
#[tokio::test]
async fn a_route_body_rendered_before_a_quarantine_is_not_served_after_it() {
    let stack = Stack::start_with(|s| s.replay.enabled = false).await;
    let s = stack.app.login("tech1").await;
    let date = today(&stack, "tech1").await;
    let first = stop_ids(&stack.route(&s, &date).await)[0];
    let (code, body) = stack.status(&s, first, "enroute", "q-1").await;
    assert_eq!(code, 202, "{body}");
    let before = stack.route(&s, &date).await["pendingOps"].as_i64().unwrap();
    assert!(before >= 1);
    // The stored op rots on disk; the next read of its lane (the replayer's, here by hand)
    // quarantines it.
    let store = stack.app.state.store.as_ref();
    let lane = fieldsync::write::outbox::lane_ops(store, "tech1", &date).unwrap();
    let last = lane.last().unwrap().seq;
    use fieldsync::store::Storage;
    store
        .insert_raw(
            fieldsync::write::outbox::OPS,
            &fieldsync::write::outbox::op_key(last),
            b"\x01rotten".to_vec(),
        )
        .unwrap();
    let after_read = fieldsync::write::outbox::lane_ops(store, "tech1", &date).unwrap();
    assert_eq!(after_read.len(), lane.len() - 1, "quarantined on the way");
    let after = stack.route(&s, &date).await["pendingOps"].as_i64().unwrap();
    assert_eq!(
        after,
        before - 1,
        "the body rendered before still counted it"
    );
}

/// A device time far in the future (one bad clock) or long past is refused with 422
/// `time-out-of-range` instead of being replayed to OFSC, where it would block every later
/// action of the route; the route goes on taking writes.
#[tokio::test]
async fn a_status_time_outside_the_window_is_a_422_and_the_route_goes_on() {
    let stack = Stack::start_with(|s| s.replay.enabled = false).await;
    let s = stack.app.login("tech1").await;
    let date = today(&stack, "tech1").await;
    let first = stop_ids(&stack.route(&s, &date).await)[0];
    let hour_ahead = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let month_ago = (chrono::Utc::now() - chrono::Duration::days(30)).to_rfc3339();
    for (i, time) in [
        "+200000-01-01T00:00:00Z",
        hour_ahead.as_str(),
        month_ago.as_str(),
    ]
    .iter()
    .enumerate()
    {
        let (code, body) = stack
            .status_body(
                &s,
                first,
                json!({"status": "enroute", "time": time}),
                &format!("t-{i}"),
            )
            .await;
        assert_eq!(code, 422, "{time}: {body}");
        assert_eq!(body["code"], "time-out-of-range", "{body}");
    }
    let (code, body) = stack.status(&s, first, "enroute", "t-ok").await;
    assert_eq!(code, 202, "{body}");
}

#[tokio::test]
async fn the_audit_keeps_the_servers_request_id_and_a_safe_caller_id_beside_it() {
    let stack = Stack::start().await;
    let s = stack.app.login("tech1").await;
    let sup = stack.app.login("super1").await;
    let date = today(&stack, "tech1").await;
    let ids = stop_ids(&stack.route(&s, &date).await);
    let write = |status: &'static str, key: &'static str, rid: &'static str| {
        let req = stack
            .app
            .http
            .patch(stack.app.url(&format!("/activities/{}/status", ids[0])))
            .bearer_auth(&s.access)
            .header("Idempotency-Key", key)
            .header("X-Request-Id", rid)
            .json(&json!({ "status": status }));
        async move {
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), 202);
            resp.headers()["x-request-id"].to_str().unwrap().to_string()
        }
    };
    let first = write("enroute", "a", "device-42:try.1").await;
    let second = write("pending", "b", "<img src=x>").await;
    for answered in [&first, &second] {
        assert!(uuid::Uuid::parse_str(answered).is_ok(), "{answered}");
    }
    let audit: Value = stack
        .app
        .http
        .get(stack.app.url(&format!("/audit?activityId={}", ids[0])))
        .bearer_auth(&sup.access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entry = |rid: &str| {
        audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["requestId"] == rid)
            .cloned()
            .unwrap_or_else(|| panic!("{rid} not in {audit}"))
    };
    assert_eq!(entry(&first)["clientRequestId"], "device-42:try.1");
    assert!(entry(&second).get("clientRequestId").is_none());
}

#[tokio::test]
async fn actions_carry_the_bodies_oracles_schema_gives_them() {
    let stack = Stack::start().await;
    let s = stack.app.login("tech1").await;
    let date = today(&stack, "tech1").await;
    let first = stop_ids(&stack.route(&s, &date).await)[0];
    let at = |ago: i64| chrono::Utc::now() - chrono::Duration::minutes(ago);
    let mut ops = Vec::new();
    let mut sent = Vec::new();
    for (n, (status, ago)) in [
        ("enroute", 50),
        ("pending", 45),
        ("enroute", 40),
        ("started", 20),
    ]
    .into_iter()
    .enumerate()
    {
        let t = at(ago);
        let (code, body) = stack
            .status_body(
                &s,
                first,
                json!({"status": status, "time": t.to_rfc3339()}),
                &format!("b{n}"),
            )
            .await;
        assert_eq!(code, 202, "{status}: {body}");
        ops.push(body["opId"].as_str().unwrap().to_string());
        sent.push(t);
    }
    stack.settle(&s, &ops, Duration::from_secs(20)).await;
    let zone = fieldsync::ofsc::time::zone("America/New_York").unwrap();
    let local = |t: chrono::DateTime<chrono::Utc>| {
        t.with_timezone(&zone).format("%Y-%m-%d %H:%M").to_string()
    };
    let entries: Vec<(String, Option<String>)> = stack
        .sim
        .ledger()
        .await
        .iter()
        .filter(|e| e["activityId"] == first)
        .map(|e| {
            let time = e["time"].as_str().map(|t| t[..16].to_string());
            (e["action"].as_str().unwrap().to_string(), time)
        })
        .collect();
    assert_eq!(
        entries,
        [
            ("enroute".to_string(), Some(local(sent[0]))),
            ("stopTravel".to_string(), None),
            ("enroute".to_string(), Some(local(sent[2]))),
            ("start".to_string(), Some(local(sent[3]))),
        ],
        "enroute and start carry the device's time; stopTravel takes no body"
    );
}
