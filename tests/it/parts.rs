//! Parts consumption: van stock, the rules, and replay through OFSC inventory actions.

use crate::helpers::payload_sha as sha;
use crate::helpers::{Session, Stack};
use serde_json::{json, Value};
use std::time::Duration;

async fn parts(stack: &Stack, s: &Session, activity: i64, items: Value, key: &str) -> (u16, Value) {
    let resp = stack
        .app
        .http
        .post(stack.app.url(&format!("/activities/{activity}/parts")))
        .bearer_auth(&s.access)
        .header("Idempotency-Key", key)
        .json(&json!({ "items": items }))
        .send()
        .await
        .unwrap();
    let code = resp.status().as_u16();
    (code, resp.json().await.unwrap_or(Value::Null))
}

async fn get(stack: &Stack, s: &Session, path: &str) -> Value {
    let resp = stack.app.call("get", path, Some(&s.access)).await;
    assert_eq!(resp.status(), 200, "{path}");
    resp.json().await.unwrap()
}

fn bulk(van: &Value, kind: &str) -> f64 {
    van["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["inventoryType"] == kind && i["serialNumber"].is_null())
        .map(|i| i["quantity"].as_f64().unwrap())
        .sum()
}

fn serials(van: &Value, kind: &str) -> Vec<String> {
    van["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["inventoryType"] == kind)
        .filter_map(|i| i["serialNumber"].as_str().map(str::to_string))
        .collect()
}

/// tech1's stops, and the first one with customer equipment at the site.
async fn stops(stack: &Stack, s: &Session) -> (Vec<i64>, i64, Value) {
    let date = stack.sim.today_route("tech1").await.0;
    let route = stack.route(s, &date).await;
    let ids: Vec<i64> = route["stops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["activityId"].as_i64().unwrap())
        .collect();
    for id in &ids {
        let p = get(stack, s, &format!("/activities/{id}/parts")).await;
        if let Some(first) = p["siteEquipment"].as_array().and_then(|a| a.first()) {
            return (ids.clone(), *id, first.clone());
        }
    }
    panic!("no stop of tech1 has customer equipment");
}

async fn start(stack: &Stack, s: &Session, id: i64, key: &str) -> Vec<String> {
    let mut ops = Vec::new();
    let (code, body) = stack.status(s, id, "started", key).await;
    assert_eq!(code, 202, "{body}");
    ops.push(body["opId"].as_str().unwrap().to_string());
    ops
}

fn op_ids(body: &Value) -> Vec<String> {
    body["opIds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn install_deinstall_exchange_and_consumption_land_in_ofsc_inventory() {
    let stack = Stack::start().await;
    let s = stack.app.login("tech1").await;
    let (_, job, old) = stops(&stack, &s).await;
    let van = get(&stack, &s, "/inventory").await;
    let cable_before = bulk(&van, "CAT6_M");
    let old_kind = old["inventoryType"].as_str().unwrap().to_string();
    let new_serial = serials(&van, &old_kind)[0].clone();
    let ont = serials(&van, "ONT")[0].clone();
    let mut ops = start(&stack, &s, job, "st").await;

    let items = json!([
        {"action": "install", "inventoryType": "ONT", "serialNumber": ont},
        {"action": "deinstall", "inventoryType": old_kind, "serialNumber": old["serialNumber"]},
        {"action": "install", "inventoryType": old_kind, "serialNumber": new_serial,
         "exchangedInventoryId": old["inventoryId"]},
        {"action": "consume", "inventoryType": "CAT6_M", "quantity": 25},
    ]);
    let (code, body) = parts(&stack, &s, job, items, "p1").await;
    assert_eq!(code, 202, "{body}");
    assert_eq!(body["state"], "queued");
    assert_eq!(body["parts"].as_array().unwrap().len(), 4);
    ops.extend(op_ids(&body));

    // Read-your-writes: the van shows the entries before OFSC has them.
    let van = get(&stack, &s, "/inventory").await;
    assert_eq!(bulk(&van, "CAT6_M"), cable_before - 25.0);
    assert!(!serials(&van, "ONT").contains(&ont));
    assert!(!serials(&van, &old_kind).contains(&new_serial));
    let listed = get(&stack, &s, &format!("/activities/{job}/parts")).await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 4);
    assert!(listed["siteEquipment"].as_array().unwrap().is_empty());

    let (code, body) = stack.status(&s, job, "completed", "done").await;
    assert_eq!(code, 202, "{body}");
    ops.push(body["opId"].as_str().unwrap().to_string());
    let done = stack.settle(&s, &ops, Duration::from_secs(20)).await;
    assert!(done.iter().all(|o| o["state"] == "applied"), "{done:#?}");

    let installed = stack
        .sim
        .client
        .activity_inventories(job, "installedInventories")
        .await
        .unwrap();
    let mut got: Vec<(String, Option<String>, f64)> = installed
        .iter()
        .map(|i| {
            (
                i.inventory_type.clone(),
                i.serial_number.clone(),
                i.quantity.unwrap_or(1.0),
            )
        })
        .collect();
    got.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let mut want = vec![
        ("CAT6_M".to_string(), None, 25.0),
        ("ONT".to_string(), Some(ont.clone()), 1.0),
        (old_kind.clone(), Some(new_serial.clone()), 1.0),
    ];
    want.sort_by(|a, b| a.partial_cmp(b).unwrap());
    assert_eq!(got, want);
    let exchange = installed
        .iter()
        .find(|i| i.serial_number.as_deref() == Some(new_serial.as_str()))
        .unwrap();
    assert_eq!(exchange.exchanged_inventory_id, old["inventoryId"].as_i64());
    let out = stack
        .sim
        .client
        .activity_inventories(job, "deinstalledInventories")
        .await
        .unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(
        out[0].serial_number.as_deref(),
        old["serialNumber"].as_str()
    );

    // The ledger: every inventory action after the start and before the completion.
    let ledger = stack.sim.ledger().await;
    let actions: Vec<&str> = ledger
        .iter()
        .filter(|e| e["source"] == "api" && e["activityId"] == job)
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(
        actions,
        [
            "start",
            "install",
            "deinstall",
            "install",
            "install",
            "complete"
        ]
    );
    let van = get(&stack, &s, "/inventory").await;
    assert_eq!(
        bulk(&van, "CAT6_M"),
        cable_before - 25.0,
        "after the refresh"
    );
}

#[tokio::test]
async fn refusals_name_their_reason() {
    let stack = Stack::start().await;
    let s = stack.app.login("tech1").await;
    let (ids, job, _) = stops(&stack, &s).await;
    let ont = serials(&get(&stack, &s, "/inventory").await, "ONT")[0].clone();
    let consume = json!([{"action": "consume", "inventoryType": "CAT6_M", "quantity": 1}]);

    let (code, body) = parts(&stack, &s, job, consume.clone(), "early").await;
    assert_eq!(
        (code, body["code"].as_str()),
        (409, Some("activity-not-started")),
        "{body}"
    );
    start(&stack, &s, job, "st").await;

    let (code, body) = parts(
        &stack,
        &s,
        job,
        json!([{"action": "consume", "inventoryType": "CAT6_M", "quantity": 100000}]),
        "over",
    )
    .await;
    assert_eq!(
        (code, body["code"].as_str()),
        (409, Some("insufficient-stock")),
        "{body}"
    );
    assert_eq!(body["available"], 150.0);
    assert_eq!(
        body["type"],
        "https://fieldsync.dev/problems/insufficient-stock"
    );

    let (code, body) = parts(
        &stack,
        &s,
        job,
        json!([{"action": "install", "inventoryType": "ONT", "serialNumber": "NOPE-1"}]),
        "nope",
    )
    .await;
    assert_eq!(
        (code, body["code"].as_str()),
        (409, Some("serial-not-in-van")),
        "{body}"
    );

    let install = json!([{"action": "install", "inventoryType": "ONT", "serialNumber": ont}]);
    assert_eq!(parts(&stack, &s, job, install.clone(), "i1").await.0, 202);
    let (code, body) = parts(&stack, &s, job, install, "i2").await;
    assert_eq!(
        (code, body["code"].as_str()),
        (409, Some("already-installed")),
        "{body}"
    );

    for (items, code_want) in [
        (json!([]), "invalid-body"),
        (
            json!([{"action": "consume", "inventoryType": "CAT6_M", "quantity": -2}]),
            "invalid-quantity",
        ),
        (
            json!([{"action": "consume", "inventoryType": "CAT6_M"}]),
            "quantity-required",
        ),
        (
            json!([{"action": "install", "inventoryType": "ROUTER"}]),
            "serial-required",
        ),
        (
            json!([{"action": "undo", "undoes": "op_00000000000000ff"}]),
            "invalid-undo",
        ),
    ] {
        let (code, body) = parts(&stack, &s, job, items.clone(), "bad").await;
        assert!(code == 400 || code == 409, "{items}: {code} {body}");
        assert_eq!(body["code"], code_want, "{items}");
    }
    let (code, body) = parts(
        &stack,
        &s,
        job,
        json!([{"action": "melt", "inventoryType": "X"}]),
        "bad2",
    )
    .await;
    assert_eq!(
        (code, body["code"].as_str()),
        (400, Some("invalid-body")),
        "{body}"
    );
    // An overdraw inside one request refuses the whole request.
    let (code, _) = parts(
        &stack,
        &s,
        job,
        json!([
            {"action": "consume", "inventoryType": "CAT6_M", "quantity": 100},
            {"action": "consume", "inventoryType": "CAT6_M", "quantity": 100},
        ]),
        "two",
    )
    .await;
    assert_eq!(code, 409);
    assert_eq!(bulk(&get(&stack, &s, "/inventory").await, "CAT6_M"), 150.0);
    // Another stop, not started.
    let other = *ids.iter().find(|i| **i != job).unwrap();
    assert_eq!(parts(&stack, &s, other, consume, "other").await.0, 409);
}

#[tokio::test]
async fn an_undo_and_an_idempotent_resend() {
    let stack = Stack::start().await;
    let s = stack.app.login("tech1").await;
    let (_, job, _) = stops(&stack, &s).await;
    let ont = serials(&get(&stack, &s, "/inventory").await, "ONT")[0].clone();
    let mut ops = start(&stack, &s, job, "st").await;
    let install = json!([{"action": "install", "inventoryType": "ONT", "serialNumber": ont},
                         {"action": "consume", "inventoryType": "RJ45", "quantity": 4}]);
    let (code, first) = parts(&stack, &s, job, install.clone(), "same").await;
    assert_eq!(code, 202);
    let (code, again) = parts(&stack, &s, job, install, "same").await;
    assert_eq!(code, 202);
    assert_eq!(
        first, again,
        "the same key and body answer the first answer"
    );
    let other = json!([{"action": "consume", "inventoryType": "RJ45", "quantity": 5}]);
    let (code, body) = parts(&stack, &s, job, other, "same").await;
    assert_eq!(
        (code, body["code"].as_str()),
        (422, Some("idempotency-key-reused"))
    );
    let installed_id = op_ids(&first)[0].clone();
    ops.extend(op_ids(&first));

    let (code, body) = parts(
        &stack,
        &s,
        job,
        json!([{"action": "undo", "undoes": installed_id}]),
        "undo",
    )
    .await;
    assert_eq!(code, 202, "{body}");
    assert_eq!(body["parts"][0]["ofscAction"], "undoInstall");
    ops.extend(op_ids(&body));
    let (code, body) = parts(
        &stack,
        &s,
        job,
        json!([{"action": "undo", "undoes": installed_id}]),
        "undo2",
    )
    .await;
    assert_eq!((code, body["code"].as_str()), (409, Some("invalid-undo")));

    let done = stack.settle(&s, &ops, Duration::from_secs(20)).await;
    assert!(done.iter().all(|o| o["state"] == "applied"), "{done:#?}");
    let listed = get(&stack, &s, &format!("/activities/{job}/parts")).await;
    let entries = listed["items"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[0]["undone"], true);
    let installed = stack
        .sim
        .client
        .activity_inventories(job, "installedInventories")
        .await
        .unwrap();
    assert_eq!(
        installed.len(),
        1,
        "only the RJ45 stays installed: {installed:?}"
    );
    assert_eq!(installed[0].inventory_type, "RJ45");
    let site = stack
        .sim
        .client
        .activity_inventories(job, "customerInventories")
        .await
        .unwrap();
    assert!(site
        .iter()
        .any(|i| i.serial_number.as_deref() == Some(ont.as_str())));
    let ledger = stack.sim.ledger().await;
    let inventory_calls = ledger
        .iter()
        .filter(|e| e["source"] == "api" && e["activityId"] == job)
        .filter(|e| matches!(e["action"].as_str(), Some("install" | "undoInstall")))
        .count();
    assert_eq!(inventory_calls, 3, "sent once each despite the resend");
}

#[tokio::test]
async fn parts_replay_exactly_once_through_faults_and_van_counts_are_conserved() {
    let stack = Stack::start().await;
    let s = stack.app.login("tech1").await;
    let (ids, _, _) = stops(&stack, &s).await;
    let van0 = get(&stack, &s, "/inventory").await;
    let onts = serials(&van0, "ONT");
    let sim_van0 = stack
        .sim
        .client
        .resource_inventories("tech1")
        .await
        .unwrap();
    let total = |items: &[fieldsync::ofsc::wire::Inventory], kind: &str| -> f64 {
        items
            .iter()
            .filter(|i| i.inventory_type == kind)
            .map(|i| i.quantity.unwrap_or(1.0))
            .sum()
    };
    stack
        .sim
        .faults(json!({"rate5xx": 0.2, "rate429": 0.1, "retryAfterSecs": 1, "timeoutAfterApply": 0.1, "timeoutHoldMs": 1200, "reset": 0.05, "seed": 7}))
        .await;
    let mut ops = Vec::new();
    for (n, id) in ids.iter().take(3).enumerate() {
        ops.extend(start(&stack, &s, *id, &format!("st{n}")).await);
        let items = json!([
            {"action": "consume", "inventoryType": "CAT6_M", "quantity": 10 + n},
            {"action": "install", "inventoryType": "ONT", "serialNumber": onts[n]},
            {"action": "consume", "inventoryType": "FIBER_PATCH", "quantity": 1},
        ]);
        let (code, body) = parts(&stack, &s, *id, items, &format!("p{n}")).await;
        assert_eq!(code, 202, "{body}");
        ops.extend(op_ids(&body));
        let (code, body) = stack.status(&s, *id, "completed", &format!("c{n}")).await;
        assert_eq!(code, 202, "{body}");
        ops.push(body["opId"].as_str().unwrap().to_string());
    }
    let done = stack.settle(&s, &ops, Duration::from_secs(90)).await;
    stack.sim.faults(json!({})).await;
    assert!(done.iter().all(|o| o["state"] == "applied"), "{done:#?}");

    let mut installed = Vec::new();
    for id in ids.iter().take(3) {
        installed.extend(
            stack
                .sim
                .client
                .activity_inventories(*id, "installedInventories")
                .await
                .unwrap(),
        );
    }
    assert_eq!(total(&installed, "CAT6_M"), 33.0, "{installed:?}");
    assert_eq!(total(&installed, "ONT"), 3.0);
    assert_eq!(total(&installed, "FIBER_PATCH"), 3.0);
    let sim_van = stack
        .sim
        .client
        .resource_inventories("tech1")
        .await
        .unwrap();
    for kind in ["CAT6_M", "ONT", "FIBER_PATCH", "RJ45", "ROUTER"] {
        assert_eq!(
            total(&sim_van, kind) + total(&installed, kind),
            total(&sim_van0, kind),
            "{kind} is conserved"
        );
    }
    // The device's view matches OFSC once everything landed.
    let van = get(&stack, &s, "/inventory").await;
    assert_eq!(bulk(&van, "CAT6_M"), total(&sim_van, "CAT6_M"));
    assert_eq!(serials(&van, "ONT").len() as f64, total(&sim_van, "ONT"));
}

#[tokio::test]
async fn a_sync_batch_records_parts_through_the_same_rules() {
    let stack = Stack::start().await;
    let s = stack.app.login("tech1").await;
    let (_, job, _) = stops(&stack, &s).await;
    start(&stack, &s, job, "st").await;
    let now = chrono::Utc::now().fixed_offset();
    let payload =
        |q: f64| json!({"items": [{"action": "consume", "inventoryType": "RJ45", "quantity": q}]});
    let op = |n: u64, q: f64| {
        let p = payload(q);
        json!({"clientOpId": format!("c{n}"), "seq": n, "kind": "parts", "activityId": job, "payload": p,
               "capturedAt": now, "sha256": sha(&p)})
    };
    let resp = stack
        .app
        .http
        .post(stack.app.url("/sync/push"))
        .bearer_auth(&s.access)
        .json(&json!({"deviceId": s.device, "deviceTime": now, "ops": [op(1, 2.0), op(2, 1000.0)]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["results"][0]["result"], "accepted", "{body}");
    assert_eq!(body["results"][1]["result"], "rejected");
    assert_eq!(body["results"][1]["code"], "insufficient-stock");
    assert_eq!(bulk(&get(&stack, &s, "/inventory").await, "RJ45"), 38.0);
}

/// With OFSC down and the site's equipment never fetched, a deinstall cannot be checked: it
/// is taken, and replay finds the item by type and serial once OFSC is back (or OFSC's
/// refusal rejects the entry).
#[tokio::test]
async fn a_deinstall_taken_while_ofsc_is_down_is_resolved_at_replay() {
    let stack = Stack::start().await;
    let s = stack.app.login("tech1").await;
    let date = stack.sim.today_route("tech1").await.0;
    let route = stack.route(&s, &date).await;
    let mut found = None;
    for stop in route["stops"].as_array().unwrap() {
        let id = stop["activityId"].as_i64().unwrap();
        // Straight from the simulator: fieldsync's site cache stays empty.
        let site = stack
            .sim
            .client
            .activity_inventories(id, "customerInventories")
            .await
            .unwrap();
        if let Some(item) = site.into_iter().find(|i| i.serial_number.is_some()) {
            found = Some((id, item));
            break;
        }
    }
    let (job, item) = found.expect("a stop with serialised customer equipment");
    let kind = item.inventory_type.clone();
    let serial = item.serial_number.clone().unwrap();
    get(&stack, &s, "/inventory").await;
    let started = start(&stack, &s, job, "st").await;
    let done = stack.settle(&s, &started, Duration::from_secs(20)).await;
    assert_eq!(done[0]["state"], "applied", "{done:?}");

    stack.sim.faults(json!({"rate5xx": 1.0})).await;
    let real = json!([{"action": "deinstall", "inventoryType": kind, "serialNumber": serial}]);
    let (code, body) = parts(&stack, &s, job, real, "d1").await;
    assert_eq!(code, 202, "unknown site: taken, {body}");
    let mut ops = op_ids(&body);
    let bogus =
        json!([{"action": "deinstall", "inventoryType": kind, "serialNumber": "NOT-THERE-1"}]);
    let (code, body) = parts(&stack, &s, job, bogus, "d2").await;
    assert_eq!(code, 202, "{body}");
    ops.extend(op_ids(&body));
    stack.sim.faults(json!({})).await;

    let done = stack.settle(&s, &ops, Duration::from_secs(30)).await;
    assert_eq!(done[0]["state"], "applied", "{done:#?}");
    assert_eq!(done[1]["state"], "rejected", "{done:#?}");
    let out = stack
        .sim
        .client
        .activity_inventories(job, "deinstalledInventories")
        .await
        .unwrap();
    let serials: Vec<Option<String>> = out.into_iter().map(|i| i.serial_number).collect();
    assert_eq!(serials, [Some(serial)]);
}

#[tokio::test]
async fn a_van_restocked_by_the_dispatcher_is_refreshed_from_ofscs_inventory_event() {
    let stack = Stack::start().await;
    let s = stack.app.login("tech1").await;
    let before = bulk(&get(&stack, &s, "/inventory").await, "CAT6_M");
    stack
        .sim
        .control(
            "/__sim/dispatch",
            json!({"action": "restock", "resourceId": "tech1", "inventoryType": "CAT6_M", "quantity": 100}),
        )
        .await;
    // Oracle's inventory event names the van beside inventoryDetails, not in it.
    let mut now = before;
    for _ in 0..50 {
        now = bulk(&get(&stack, &s, "/inventory").await, "CAT6_M");
        if now > before {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(now, before + 100.0);
}

#[tokio::test]
async fn undoing_a_bulk_consumption_sends_its_quantity_back() {
    let stack = Stack::start().await;
    let s = stack.app.login("tech1").await;
    let (_, job, _) = stops(&stack, &s).await;
    let mut ops = start(&stack, &s, job, "st").await;
    let (code, four) = parts(
        &stack,
        &s,
        job,
        json!([{"action": "consume", "inventoryType": "RJ45", "quantity": 4}]),
        "four",
    )
    .await;
    assert_eq!(code, 202, "{four}");
    let (code, two) = parts(
        &stack,
        &s,
        job,
        json!([{"action": "consume", "inventoryType": "RJ45", "quantity": 2}]),
        "two",
    )
    .await;
    assert_eq!(code, 202, "{two}");
    ops.extend(op_ids(&four));
    ops.extend(op_ids(&two));
    let (code, undo) = parts(
        &stack,
        &s,
        job,
        json!([{"action": "undo", "undoes": op_ids(&four)[0]}]),
        "undo",
    )
    .await;
    assert_eq!(code, 202, "{undo}");
    ops.extend(op_ids(&undo));
    // OFSC refuses an undo of a non-serialized item without its quantity.
    let done = stack.settle(&s, &ops, Duration::from_secs(20)).await;
    assert!(done.iter().all(|o| o["state"] == "applied"), "{done:#?}");
    let installed: f64 = stack
        .sim
        .client
        .activity_inventories(job, "installedInventories")
        .await
        .unwrap()
        .iter()
        .filter(|i| i.inventory_type == "RJ45")
        .filter_map(|i| i.quantity)
        .sum();
    assert_eq!(installed, 2.0, "the four went back, the two stay");
}

/// A van longer than fieldsync reads (1,000 pages of 100): the read stops at the cap and
/// answers 503 once, instead of paging on or retrying a read that would fail the same way.
#[tokio::test]
async fn a_van_past_the_page_cap_is_refused_without_retrying() {
    let mut seed: Value = serde_json::from_str(fieldsync::sim::seed::DEMO_TENANT).unwrap();
    let tech1 = seed["resources"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|r| r["resourceId"] == "tech1")
        .unwrap();
    tech1["vanStock"] = (0..100_001)
        .map(|n| json!({"inventoryType": "ONT", "serialNumber": format!("ONT-CAP-{n}")}))
        .collect();
    let stack = Stack::start_seeded(&seed.to_string(), |_| {}).await;
    let s = stack.app.login("tech1").await;
    let pages = |stats: (u16, Value)| stats.1["vanPages"].as_u64().unwrap();
    let before = pages(stack.sim.get_json("/__sim/stats").await);
    let resp = stack.app.call("get", "/inventory", Some(&s.access)).await;
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "ofsc-unavailable", "{body}");
    let read = pages(stack.sim.get_json("/__sim/stats").await) - before;
    assert_eq!(read, 1000, "one pass of 1,000 pages, not retried");
}
