//! The offline sync protocol over real HTTP: batch push (dedupe, gaps, checksums, conflicts,
//! clock skew, limits) and cursor pull (never skips or repeats, only the caller's changes).

use crate::helpers::payload_sha as sha;
use crate::helpers::{Session, Stack};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

fn status_op(
    seq: u64,
    id: i64,
    status: &str,
    captured: chrono::DateTime<chrono::FixedOffset>,
) -> Value {
    let payload = json!({"status": status});
    json!({"clientOpId": format!("c-{seq}"), "seq": seq, "kind": "status", "activityId": id,
           "payload": payload, "capturedAt": captured.to_rfc3339(), "sha256": sha(&payload)})
}

fn now() -> chrono::DateTime<chrono::FixedOffset> {
    chrono::Utc::now().fixed_offset()
}

async fn push(
    stack: &Stack,
    s: &Session,
    device_time: chrono::DateTime<chrono::FixedOffset>,
    ops: Vec<Value>,
) -> (u16, Value) {
    let resp = stack
        .app
        .http
        .post(stack.app.url("/sync/push"))
        .bearer_auth(&s.access)
        .json(&json!({"deviceId": s.device, "deviceTime": device_time.to_rfc3339(), "ops": ops}))
        .send()
        .await
        .unwrap();
    let code = resp.status().as_u16();
    (code, resp.json().await.unwrap_or(Value::Null))
}

async fn pull(stack: &Stack, s: &Session, cursor: Option<&str>) -> Value {
    let url = match cursor {
        Some(c) => format!("/sync/pull?cursor={c}&limit=50"),
        None => "/sync/pull?limit=50".to_string(),
    };
    stack
        .app
        .call("get", &url, Some(&s.access))
        .await
        .json()
        .await
        .unwrap()
}

async fn stops(stack: &Stack, s: &Session, tech: &str) -> Vec<i64> {
    let date = stack.sim.today_route(tech).await.0;
    stack.route(s, &date).await["stops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["activityId"].as_i64().unwrap())
        .collect()
}

fn results(body: &Value) -> Vec<String> {
    body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["result"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn full_and_partial_resends_are_duplicates_never_double_applied() {
    let stack = Stack::start().await;
    let s = stack.app.login("tech1").await;
    let ids = stops(&stack, &s, "tech1").await;
    let t = now() - chrono::Duration::minutes(30);
    let batch: Vec<Value> = ["enroute", "arrived", "started", "completed"]
        .iter()
        .enumerate()
        .map(|(i, st)| {
            status_op(
                i as u64 + 1,
                ids[0],
                st,
                t + chrono::Duration::minutes(i as i64 * 5),
            )
        })
        .collect();
    let (code, first) = push(&stack, &s, now(), batch.clone()).await;
    assert_eq!(code, 200, "{first}");
    assert_eq!(results(&first), ["accepted"; 4]);
    assert_eq!(first["highWater"], 4);
    let (_, again) = push(&stack, &s, now(), batch.clone()).await;
    assert_eq!(results(&again), ["duplicate"; 4]);
    assert_eq!(again["results"][2]["opId"], first["results"][2]["opId"]);
    let (_, partial) = push(&stack, &s, now(), batch[2..].to_vec()).await;
    assert_eq!(results(&partial), ["duplicate"; 2]);
    let ops: Vec<String> = first["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["opId"].as_str().unwrap().to_string())
        .collect();
    let done = stack.settle(&s, &ops, Duration::from_secs(15)).await;
    assert!(done.iter().all(|o| o["state"] == "applied"), "{done:?}");
    assert_eq!(
        stack.sim.ledger_actions(ids[0]).await,
        ["enroute", "start", "complete"]
    );
}

#[tokio::test]
async fn gaps_checksums_unknown_kinds_and_independent_ops() {
    let stack = Stack::start().await;
    let s = stack.app.login("tech2").await;
    let ids = stops(&stack, &s, "tech2").await;
    let mut bad = status_op(2, ids[0], "started", now());
    bad["sha256"] = json!("0".repeat(64));
    let later = json!({"clientOpId": "p-1", "seq": 3, "kind": "telepathy", "activityId": ids[0], "payload": {}, "capturedAt": now().to_rfc3339(), "sha256": sha(&json!({}))});
    let ops = vec![
        status_op(1, ids[0], "enroute", now()),
        bad,
        later,
        status_op(7, ids[0], "arrived", now()),
    ];
    let (_, body) = push(&stack, &s, now(), ops).await;
    assert_eq!(
        results(&body),
        ["accepted", "rejected", "rejected", "accepted"],
        "{body}"
    );
    assert_eq!(body["results"][1]["code"], "checksum-mismatch");
    assert_eq!(body["results"][2]["code"], "unknown-kind");
    assert_eq!(body["gaps"], json!([{"from": 4, "to": 6}]));
    assert_eq!(body["highWater"], 7);
}

#[tokio::test]
async fn a_job_cancelled_while_offline_comes_back_as_a_conflict() {
    let stack = Stack::start().await;
    let s = stack.app.login("tech3").await;
    let ids = stops(&stack, &s, "tech3").await;
    stack
        .sim
        .control(
            "/__sim/dispatch",
            json!({"action": "cancel", "activityId": ids[0]}),
        )
        .await;
    let date = stack.sim.today_route("tech3").await.0;
    for _ in 0..50 {
        let r = stack.route(&s, &date).await;
        if r["stops"][0]["status"] == "cancelled" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, body) = push(
        &stack,
        &s,
        now(),
        vec![
            status_op(1, ids[0], "started", now()),
            status_op(2, ids[1], "enroute", now()),
        ],
    )
    .await;
    assert_eq!(results(&body), ["conflict", "accepted"], "{body}");
    assert_eq!(body["results"][0]["activity"]["status"], "cancelled");
}

#[tokio::test]
async fn a_clock_three_hours_off_never_yields_future_or_backward_times() {
    let stack = Stack::start().await;
    let s = stack.app.login("tech1").await;
    let ids = stops(&stack, &s, "tech1").await;
    // The phone's clock is 3 hours fast; it did en route 20 minutes ago and started 10 ago.
    let skew = chrono::Duration::hours(3);
    let device_now = now() + skew;
    let ops = vec![
        status_op(
            1,
            ids[0],
            "enroute",
            device_now - chrono::Duration::minutes(20),
        ),
        status_op(
            2,
            ids[0],
            "started",
            device_now - chrono::Duration::minutes(10),
        ),
    ];
    let (_, body) = push(&stack, &s, device_now, ops).await;
    assert_eq!(results(&body), ["accepted", "accepted"], "{body}");
    let offset = body["clockOffsetMs"].as_i64().unwrap();
    assert!((offset + 3 * 3600 * 1000).abs() < 5000, "{offset}");
    let op: Value = stack
        .op(&s, body["results"][1]["opId"].as_str().unwrap())
        .await;
    let time = chrono::DateTime::parse_from_rfc3339(op["time"].as_str().unwrap()).unwrap();
    let expected = now() - chrono::Duration::minutes(10);
    assert!(
        (time - expected).num_seconds().abs() < 10,
        "corrected {time} vs {expected}"
    );
    // A clock 3 hours slow, after those: times are clamped forward, never before the route's last.
    let slow = now() - skew;
    let (_, body) = push(
        &stack,
        &s,
        slow,
        vec![status_op(
            3,
            ids[0],
            "completed",
            slow - chrono::Duration::hours(2),
        )],
    )
    .await;
    assert_eq!(results(&body), ["accepted"], "{body}");
    let done: Vec<String> = vec![body["results"][0]["opId"].as_str().unwrap().to_string()];
    stack.settle(&s, &done, Duration::from_secs(10)).await;
    let ledger = stack.sim.ledger().await;
    let times: Vec<&str> = ledger
        .iter()
        .filter(|e| e["resourceId"] == "tech1")
        .filter_map(|e| e["time"].as_str())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
}

#[tokio::test]
async fn over_limit_batches_get_413() {
    let stack = Stack::start().await;
    let s = stack.app.login("tech1").await;
    let ops: Vec<Value> = (1..=501)
        .map(|i| status_op(i, 1, "enroute", now()))
        .collect();
    let (code, body) = push(&stack, &s, now(), ops).await;
    assert_eq!(
        (code, body["code"].as_str()),
        (413, Some("batch-too-large"))
    );
    let huge = json!({"status": "x".repeat(6 * 1024 * 1024)});
    let big = vec![
        json!({"clientOpId": "h", "seq": 1, "kind": "status", "activityId": 1, "payload": huge, "capturedAt": now().to_rfc3339(), "sha256": "0"}),
    ];
    let (code, body) = push(&stack, &s, now(), big).await;
    assert_eq!(
        (code, body["code"].as_str()),
        (413, Some("payload-too-large"))
    );
    let other = stack
        .app
        .http
        .post(stack.app.url("/sync/push"))
        .bearer_auth(&s.access)
        .json(&json!({"deviceId": "not-my-phone", "deviceTime": now().to_rfc3339(), "ops": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 400);
}

#[tokio::test]
async fn pulls_interleaved_with_writes_never_skip_or_repeat_and_stay_private() {
    let stack = Stack::start().await;
    let s = stack.app.login("tech1").await;
    let other_phone = {
        let resp = stack.app.try_login("tech1", "demo", "tablet", None).await;
        let b: Value = resp.json().await.unwrap();
        Session {
            access: b["accessToken"].as_str().unwrap().into(),
            refresh: String::new(),
            device: "tablet".into(),
            body: b,
        }
    };
    let tech2 = stack.app.login("tech2").await;
    let ids = stops(&stack, &s, "tech1").await;
    let first = pull(&stack, &s, None).await;
    assert_eq!(first["reset"], true);
    assert_eq!(first["snapshot"]["resourceId"], "tech1");
    let mut cursor = first["nextCursor"].as_str().unwrap().to_string();
    let writer = {
        let (app_url, token, device) = (
            stack.app.url("/sync/push"),
            s.access.clone(),
            s.device.clone(),
        );
        let ids = ids.clone();
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut seq = 0;
            for id in ids.iter().take(6) {
                for st in ["enroute", "started", "completed"] {
                    seq += 1;
                    let op = status_op(seq, *id, st, now());
                    http.post(&app_url).bearer_auth(&token)
                        .json(&json!({"deviceId": device, "deviceTime": now().to_rfc3339(), "ops": [op]}))
                        .send().await.unwrap();
                }
            }
        })
    };
    let mut seen: Vec<u64> = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let page = pull(&stack, &s, Some(&cursor)).await;
        assert_eq!(page["reset"], false);
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["seq"].as_u64().unwrap()),
        );
        cursor = page["nextCursor"].as_str().unwrap().to_string();
        let applied = seen.len();
        if writer.is_finished() && applied >= 18 * 2 && page["hasMore"] == false {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "saw {applied} changes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Let replay finish, then drain: the log is complete only once nothing is in flight.
    let date = stack.sim.today_route("tech1").await.0;
    for _ in 0..200 {
        if stack.route(&s, &date).await["pendingOps"] == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    loop {
        let page = pull(&stack, &s, Some(&cursor)).await;
        let items = page["items"].as_array().unwrap();
        seen.extend(items.iter().map(|i| i["seq"].as_u64().unwrap()));
        cursor = page["nextCursor"].as_str().unwrap().to_string();
        if items.is_empty() && page["hasMore"] == false {
            break;
        }
    }
    let unique: BTreeSet<u64> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "a change was repeated");
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "changes out of order");
    // Nothing was skipped: everything the log holds for this device, past the first cursor.
    let all = fieldsync::store::Storage::scan_raw(
        stack.app.state.store.as_ref(),
        fieldsync::write::outbox::CHANGES,
        b"",
        None,
        100_000,
    )
    .unwrap();
    let mine: BTreeSet<u64> = all
        .iter()
        .map(|(k, v)| {
            fieldsync::store::record::open::<fieldsync::write::outbox::Change>(
                fieldsync::write::outbox::CHANGES,
                k,
                v,
            )
            .unwrap()
        })
        .filter(|c| {
            c.resource_id == "tech1" && c.device_id.as_deref().is_none_or(|d| d == s.device)
        })
        .map(|c| c.seq)
        .filter(|seq| *seq > *seen.first().unwrap() - 1)
        .collect();
    assert!(
        mine.is_subset(&unique),
        "skipped: {:?}",
        mine.difference(&unique).collect::<Vec<_>>()
    );
    // Another device of the same technician does not see this device's op outcomes.
    let tablet = pull(&stack, &other_phone, first["nextCursor"].as_str()).await;
    assert!(tablet["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["kind"] != "op"));
    // Another technician sees nothing of tech1's resource.
    let theirs = pull(&stack, &tech2, first["nextCursor"].as_str()).await;
    assert!(theirs["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["activityId"].as_i64().is_none_or(|a| !ids.contains(&a))));
    let reset = pull(&stack, &s, Some("bm90LWEtY3Vyc29y")).await;
    assert_eq!(reset["reset"], true);
}

#[tokio::test]
async fn gps_pings_reach_ofsc_from_the_endpoint_and_from_a_batch() {
    let stack = Stack::start().await;
    let s = stack.app.login("tech1").await;
    let resp = stack
        .app
        .http
        .post(stack.app.url("/locations"))
        .bearer_auth(&s.access)
        .header("Idempotency-Key", "gps-1")
        .json(&json!({"items": [{"lat": 40.7, "lng": -74.0, "accuracy": 5.0}, {"lat": 40.71, "lng": -74.01}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let body: Value = resp.json().await.unwrap();
    let mut ops = vec![body["opId"].as_str().unwrap().to_string()];
    let bad = stack
        .app
        .http
        .post(stack.app.url("/locations"))
        .bearer_auth(&s.access)
        .header("Idempotency-Key", "gps-2")
        .json(&json!({"items": [{"lat": 91.0, "lng": 0.0}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let payload = json!({"lat": 40.72, "lng": -74.02});
    let op = json!({"clientOpId": "gps", "seq": 1, "kind": "location", "payload": payload,
                    "capturedAt": (now() + chrono::Duration::hours(3)).to_rfc3339(), "sha256": sha(&payload)});
    let (_, pushed) = push(&stack, &s, now() + chrono::Duration::hours(3), vec![op]).await;
    assert_eq!(pushed["results"][0]["result"], "accepted", "{pushed}");
    ops.push(pushed["results"][0]["opId"].as_str().unwrap().to_string());
    let done = stack.settle(&s, &ops, Duration::from_secs(20)).await;
    assert!(done.iter().all(|o| o["state"] == "applied"), "{done:?}");
    let sent = stack
        .sim
        .ledger()
        .await
        .iter()
        .filter(|e| e["action"] == "setPositions" && e["source"] == "api")
        .count();
    assert_eq!(sent, 2);
}

#[tokio::test]
async fn an_op_that_cannot_be_checked_while_ofsc_is_down_makes_the_batch_a_503() {
    let stack = Stack::start().await;
    let s = stack.app.login("tech1").await;
    let ids = stops(&stack, &s, "tech1").await;
    let parts = json!({"items": [{"action": "consume", "inventoryType": "CAT6_M", "quantity": 2}]});
    let batch = vec![
        status_op(1, ids[0], "started", now()),
        json!({"clientOpId": "p-2", "seq": 2, "kind": "parts", "activityId": ids[0], "payload": parts,
               "capturedAt": now().to_rfc3339(), "sha256": sha(&parts)}),
    ];
    // The route is cached; the van is not, and OFSC answers nothing but errors.
    stack.sim.faults(json!({"rate5xx": 1.0})).await;
    let (code, body) = push(&stack, &s, now(), batch.clone()).await;
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["code"], "ofsc-unavailable");
    stack.sim.faults(json!({})).await;
    let (code, body) = push(&stack, &s, now(), batch).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(results(&body), ["duplicate", "accepted"], "{body}");
}

/// A batch's status ops are written together at its end; until then they hold their
/// route's lane. Here the batch's last op names an activity fieldsync has not cached (another
/// technician's), so the batch waits on a slow OFSC with "started" staged. Meanwhile another
/// device of the same technician keeps trying to complete that job: it may only get in after
/// the batch's ops are stored, so the replayer never sees the completion before the start
/// (OFSC would refuse it and the op would end rejected).
#[tokio::test]
async fn a_write_racing_a_batch_on_its_route_queues_after_the_batch() {
    let stack = Stack::start().await;
    let a = stack.app.login("tech1").await;
    let b_login = stack
        .app
        .try_login("tech1", "demo", "tech1-tablet", None)
        .await;
    assert_eq!(b_login.status(), 201);
    let b = crate::helpers::Session {
        access: b_login.json::<Value>().await.unwrap()["accessToken"]
            .as_str()
            .unwrap()
            .to_string(),
        refresh: String::new(),
        device: "tech1-tablet".into(),
        body: Value::Null,
    };
    let ids = stops(&stack, &a, "tech1").await;
    let foreign = stack.sim.today_route("tech3").await.1[0]
        .activity_id
        .unwrap();
    stack.sim.faults(json!({"latencyMs": 300})).await;
    let t = now() - chrono::Duration::hours(2);
    let batch = vec![
        status_op(1, ids[0], "enroute", t),
        status_op(2, ids[0], "started", t + chrono::Duration::minutes(5)),
        status_op(3, foreign, "enroute", t + chrono::Duration::minutes(6)),
    ];
    let pushing = async {
        let answer = push(&stack, &a, now(), batch).await;
        (answer, std::time::Instant::now())
    };
    let racer = async {
        // By now the batch has staged "started" and waits on OFSC for its third op.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let first_try = std::time::Instant::now();
        let deadline = first_try + Duration::from_secs(20);
        loop {
            let (code, body) = stack.status(&b, ids[0], "completed", "race").await;
            if code == 202 {
                return (body["opId"].as_str().unwrap().to_string(), first_try);
            }
            assert_eq!(code, 409, "{body}");
            assert!(std::time::Instant::now() < deadline, "never accepted");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let (((code, pushed), pushed_at), (completion, first_try)) = tokio::join!(pushing, racer);
    assert_eq!(code, 200, "{pushed}");
    assert_eq!(results(&pushed)[..2], ["accepted", "accepted"]);
    assert_eq!(pushed["results"][2]["result"], "rejected", "{pushed}");
    assert!(
        first_try < pushed_at,
        "the completion was tried while the batch was in flight"
    );
    let mut op_ids: Vec<String> = pushed["results"].as_array().unwrap()[..2]
        .iter()
        .map(|r| r["opId"].as_str().unwrap().to_string())
        .collect();
    op_ids.push(completion);
    let done = stack.settle(&a, &op_ids, Duration::from_secs(20)).await;
    assert!(
        done.iter().all(|o| o["state"] == "applied"),
        "every op applied in order: {done:?}"
    );
    assert_eq!(
        stack.sim.ledger_actions(ids[0]).await,
        ["enroute", "start", "complete"]
    );
}

#[tokio::test]
async fn an_op_repeated_inside_one_batch_is_a_duplicate_of_the_first() {
    let stack = Stack::start().await;
    let s = stack.app.login("tech2").await;
    let ids = stops(&stack, &s, "tech2").await;
    let t = now() - chrono::Duration::minutes(30);
    let enroute = status_op(1, ids[0], "enroute", t);
    let mut again = enroute.clone();
    again["seq"] = json!(2);
    let (code, body) = push(&stack, &s, now(), vec![enroute, again]).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(results(&body), ["accepted", "duplicate"]);
    assert_eq!(body["results"][1]["opId"], body["results"][0]["opId"]);
    let op = body["results"][0]["opId"].as_str().unwrap().to_string();
    let done = stack.settle(&s, &[op], Duration::from_secs(15)).await;
    assert_eq!(done[0]["state"], "applied");
    assert_eq!(stack.sim.ledger_actions(ids[0]).await, ["enroute"]);
}

/// A GPS ping queues on its route like every other write: under the route's lane lock, so
/// it cannot slip into the lane while another write on the route holds the lock.
#[tokio::test]
async fn gps_pings_wait_for_their_routes_lane_lock() {
    let stack = Stack::start().await;
    let s = stack.app.login("tech1").await;
    let date = chrono::Utc::now()
        .with_timezone(&chrono_tz::America::New_York)
        .date_naive()
        .to_string();
    let ping = || {
        stack
            .app
            .http
            .post(stack.app.url("/locations"))
            .bearer_auth(&s.access)
            .header("Idempotency-Key", "gps-locked")
            .json(&json!({"items": [{"lat": 40.7, "lng": -74.0}]}))
            .send()
    };
    let lock = stack.app.state.lanes.lock("tech1", &date);
    let guard = lock.lock().await;
    let held = tokio::time::timeout(Duration::from_millis(500), ping()).await;
    assert!(
        held.is_err(),
        "the ping was accepted while its lane was locked"
    );
    drop(guard);
    let resp = ping().await.unwrap();
    assert_eq!(resp.status(), 202);
}

/// Synced ops are bounded like single writes; absurd clocks (a reading in the year 262000
/// from a device whose clock says year 1) are refused per op, never a panic, and the rest
/// of the batch is answered.
#[tokio::test]
async fn pushed_times_outside_the_window_are_refused_per_op_without_a_panic() {
    let stack = Stack::start().await;
    let s = stack.app.login("tech1").await;
    let ids = stops(&stack, &s, "tech1").await;
    let far: chrono::DateTime<chrono::FixedOffset> = "+200000-01-01T00:00:00Z".parse().unwrap();
    let (code, body) = push(
        &stack,
        &s,
        now(),
        vec![
            status_op(1, ids[0], "enroute", far),
            status_op(2, ids[0], "enroute", now()),
        ],
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["results"][0]["result"], "rejected", "{body}");
    assert_eq!(body["results"][0]["code"], "time-out-of-range");
    assert_eq!(body["results"][1]["result"], "accepted", "{body}");
    let end = chrono::DateTime::<chrono::Utc>::MAX_UTC.fixed_offset();
    let start = chrono::DateTime::<chrono::Utc>::MIN_UTC.fixed_offset();
    let (code, body) = push(
        &stack,
        &s,
        start,
        vec![status_op(3, ids[0], "arrived", end)],
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["results"][0]["code"], "time-out-of-range", "{body}");
}

#[tokio::test]
async fn the_largest_seq_is_answered_not_a_dropped_connection() {
    let stack = Stack::start().await;
    let s = stack.app.login("tech2").await;
    let ids = stops(&stack, &s, "tech2").await;
    let op = status_op(u64::MAX, ids[0], "enroute", now());
    let (code, body) = push(&stack, &s, now(), vec![op.clone()]).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(results(&body), ["accepted"]);
    assert_eq!(body["highWater"], u64::MAX);
    let (code, again) = push(&stack, &s, now(), vec![op]).await;
    assert_eq!(code, 200, "{again}");
    assert_eq!(
        results(&again),
        ["duplicate"],
        "a resend is a duplicate: {again}"
    );
}

#[tokio::test]
async fn a_corrupt_change_is_quarantined_and_the_pull_goes_on_past_it() {
    use fieldsync::store::StorageExt;
    use fieldsync::write::outbox::{change_key, CHANGES};
    let stack = Stack::start().await;
    let s = stack.app.login("tech1").await;
    let ids = stops(&stack, &s, "tech1").await;
    let cursor = pull(&stack, &s, None).await["nextCursor"]
        .as_str()
        .unwrap()
        .to_string();
    let ops = vec![
        status_op(1, ids[0], "enroute", now()),
        status_op(2, ids[0], "started", now()),
    ];
    assert_eq!(push(&stack, &s, now(), ops).await.0, 200);
    // Both outcomes in the change log.
    let mut items = Vec::new();
    for _ in 0..100 {
        items = pull(&stack, &s, Some(&cursor)).await["items"]
            .as_array()
            .unwrap()
            .clone();
        if items.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(items.len() >= 2, "{items:?}");
    let seqs: Vec<u64> = items.iter().map(|i| i["seq"].as_u64().unwrap()).collect();

    let store = stack.app.state.store.as_ref();
    let key = change_key("tech1", seqs[0]);
    crate::helpers::corrupt(store, CHANGES, &key);

    let page = pull(&stack, &s, Some(&cursor)).await;
    let after: Vec<u64> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["seq"].as_u64().unwrap())
        .collect();
    // Later changes may have arrived meanwhile; the corrupt one is passed over, not a 500.
    assert!(!after.contains(&seqs[0]), "{after:?}");
    assert!(after.starts_with(&seqs[1..]), "{after:?} after {seqs:?}");
    assert_eq!(store.quarantined(10).unwrap().len(), 1);
}

#[tokio::test]
async fn a_cursor_older_than_the_retained_change_log_starts_over_from_a_snapshot() {
    use fieldsync::write::outbox::history;
    let stack = Stack::start().await;
    let s = stack.app.login("tech1").await;
    let ids = stops(&stack, &s, "tech1").await;
    let old = pull(&stack, &s, None).await["nextCursor"]
        .as_str()
        .unwrap()
        .to_string();
    let ops = vec![status_op(1, ids[0], "enroute", now())];
    assert_eq!(push(&stack, &s, now(), ops).await.0, 200);
    let page = pull_until_some(&stack, &s, &old).await;
    assert_eq!(page["reset"], false, "{page}");
    assert!(!page["items"].as_array().unwrap().is_empty(), "{page}");

    // Retention takes every change made so far.
    let store = stack.app.state.store.as_ref();
    let later = chrono::Utc::now() + chrono::Duration::minutes(1);
    let pruned = history::prune(store, later, &|_| false, 10_000).unwrap();
    assert!(pruned.changes > 0, "{pruned:?}");

    // The old cursor would miss what was pruned: a snapshot instead.
    let again = pull(&stack, &s, Some(&old)).await;
    assert_eq!(again["reset"], true, "{again}");
    assert!(again["snapshot"]["stops"].is_array(), "{again}");
    // The snapshot's cursor is past what was pruned, and later changes come through it.
    let fresh = again["nextCursor"].as_str().unwrap().to_string();
    let ops = vec![status_op(2, ids[0], "started", now())];
    assert_eq!(push(&stack, &s, now(), ops).await.0, 200);
    let next = pull_until_some(&stack, &s, &fresh).await;
    assert_eq!(next["reset"], false, "{next}");
    assert!(!next["items"].as_array().unwrap().is_empty(), "{next}");
}

/// Pulls from `cursor` until the page has items (or five seconds pass): outcomes reach the
/// change log once their record is published.
async fn pull_until_some(stack: &Stack, s: &Session, cursor: &str) -> Value {
    let mut page = Value::Null;
    for _ in 0..100 {
        page = pull(stack, s, Some(cursor)).await;
        if !page["items"].as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    page
}
