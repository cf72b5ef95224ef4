//! Supervisor approvals over HTTP against the simulator: evidence, approve, reject with
//! reopen, the decision rules, and the technician hearing about it through sync pull.

use crate::helpers::{Session, Stack};
use serde_json::{json, Value};
use std::time::Duration;

async fn call(
    stack: &Stack,
    s: &Session,
    method: &str,
    path: &str,
    body: Option<Value>,
    key: &str,
) -> (u16, Value) {
    let mut req = match method {
        "post" => stack.app.http.post(stack.app.url(path)),
        _ => stack.app.http.get(stack.app.url(path)),
    }
    .bearer_auth(&s.access)
    .header("Idempotency-Key", key);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let code = resp.status().as_u16();
    (code, resp.json().await.unwrap_or(Value::Null))
}

fn op_ids(body: &Value) -> Vec<String> {
    body["opIds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// tech's first stop worked to completion (with a part, notes and a location); returns the
/// activity and the approval opened for it.
async fn complete_first_stop(stack: &Stack, tech: &Session, resource: &str) -> (i64, String) {
    let date = stack.sim.today_route(resource).await.0;
    let route = stack.route(tech, &date).await;
    let id = route["stops"][0]["activityId"].as_i64().unwrap();
    let mut ops = Vec::new();
    for (n, body) in [
        json!({"status": "enroute"}),
        json!({"status": "started", "notes": "gate code 1234"}),
        json!({"status": "completed", "notes": "replaced the ONT", "location": {"lat": 40.7, "lng": -74.0, "accuracy": 8.0}}),
    ]
    .into_iter()
    .enumerate()
    {
        if n == 2 {
            let (code, body) = call(stack, tech, "post", &format!("/activities/{id}/parts"),
                Some(json!({"items": [{"action": "consume", "inventoryType": "CAT6_M", "quantity": 3}]})), &format!("{resource}-parts")).await;
            assert_eq!(code, 202, "{body}");
            ops.extend(op_ids(&body));
        }
        let (code, body) = stack.status_body(tech, id, body, &format!("{resource}-{n}")).await;
        assert_eq!(code, 202, "{body}");
        ops.push(body["opId"].as_str().unwrap().to_string());
    }
    let done = stack.settle(tech, &ops, Duration::from_secs(20)).await;
    assert!(done.iter().all(|o| o["state"] == "applied"), "{done:#?}");
    let sup = stack.app.login("super1").await;
    let (code, list) = call(
        stack,
        &sup,
        "get",
        &format!("/approvals?status=pending&resourceId={resource}"),
        None,
        "-",
    )
    .await;
    assert_eq!(code, 200, "{list}");
    let item = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["activityId"] == id)
        .unwrap_or_else(|| panic!("no approval for {id}: {list}"))
        .clone();
    (id, item["approvalId"].as_str().unwrap().to_string())
}

async fn properties(stack: &Stack, id: i64) -> serde_json::Map<String, Value> {
    stack.sim.client.get_activity(id).await.unwrap().properties
}

#[tokio::test]
async fn an_approval_holds_the_evidence_and_approving_writes_the_properties() {
    let stack = Stack::start().await;
    let tech = stack.app.login("tech1").await;
    let (_, pull0) = call(&stack, &tech, "get", "/sync/pull", None, "-").await;
    let cursor = pull0["nextCursor"].as_str().unwrap().to_string();
    let (id, approval) = complete_first_stop(&stack, &tech, "tech1").await;
    // Proof of work: a photo and the customer's signature.
    for (n, (kind, ct, bytes)) in [
        (
            "photo",
            "image/jpeg",
            fieldsync::features::uploads::samples::photo(400, 300, 7, None),
        ),
        (
            "signature",
            "image/png",
            fieldsync::features::uploads::samples::signature(600, 200),
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let (code, g) =
            crate::uploads::grant(&stack, &tech, id, kind, ct, &bytes, &format!("proof{n}")).await;
        assert_eq!(code, 201, "{g}");
        let url = g["upload"]["url"].as_str().unwrap();
        let done = crate::uploads::upload_all(&stack.app.http, url, &bytes).await;
        assert_eq!(done.status(), 201);
        let att = g["attachmentId"].as_str().unwrap();
        let item = crate::uploads::settled(&stack, &tech, id, att).await;
        assert_eq!(item["state"], "complete");
    }
    let sup = stack.app.login("super1").await;

    let (code, one) = call(
        &stack,
        &sup,
        "get",
        &format!("/approvals/{approval}"),
        None,
        "-",
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(one["status"], "pending");
    assert_eq!(one["technician"], "tech1");
    let ev = &one["evidence"];
    let timeline: Vec<&str> = ev["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["status"].as_str().unwrap())
        .collect();
    assert_eq!(timeline, ["enroute", "started", "completed"]);
    assert!(ev["timeline"][2]["time"].is_string());
    assert_eq!(ev["parts"][0]["inventoryType"], "CAT6_M");
    assert_eq!(ev["parts"][0]["quantity"], 3.0);
    assert_eq!(ev["locationAtCompletion"]["lat"], 40.7);
    let notes: Vec<&str> = ev["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["text"].as_str().unwrap())
        .collect();
    assert_eq!(notes, ["gate code 1234", "replaced the ONT"]);
    let proof = ev["attachments"].as_array().unwrap();
    let kinds: Vec<&str> = proof.iter().map(|a| a["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["photo", "signature"]);
    let thumb = stack
        .app
        .call(
            "get",
            proof[1]["thumbnailUrl"].as_str().unwrap(),
            Some(&sup.access),
        )
        .await;
    assert_eq!(thumb.status(), 200, "the supervisor sees the thumbnail");

    let decision = json!({"decision": "approve", "comment": "clean install"});
    let decide = async |body: Value, key: &str| {
        call(
            &stack,
            &sup,
            "post",
            &format!("/approvals/{approval}/decision"),
            Some(body),
            key,
        )
        .await
    };
    let (code, first) = decide(decision.clone(), "d1").await;
    assert_eq!(code, 202, "{first}");
    assert_eq!(first["approval"]["status"], "approved");
    let (code, again) = decide(decision, "d1").await;
    assert_eq!(
        (code, &again),
        (202, &first),
        "the same key answers the first answer"
    );
    let (code, body) = decide(json!({"decision": "reject", "comment": "no"}), "d2").await;
    assert_eq!(
        (code, body["code"].as_str()),
        (409, Some("already-decided")),
        "{body}"
    );
    let (code, body) = decide(json!({"decision": "reject", "comment": "no"}), "d1").await;
    assert_eq!(
        (code, body["code"].as_str()),
        (422, Some("idempotency-key-reused"))
    );

    let done = stack
        .settle(&sup, &op_ids(&first), Duration::from_secs(20))
        .await;
    assert!(done.iter().all(|o| o["state"] == "applied"), "{done:#?}");
    let props = properties(&stack, id).await;
    assert_eq!(props["XA_APPROVAL_STATUS"], "approved");
    assert_eq!(props["XA_APPROVAL_COMMENT"], "clean install");
    assert!(props["XA_APPROVED_BY"]
        .as_str()
        .is_some_and(|s| !s.is_empty()));
    let ledger = stack.sim.ledger().await;
    let patches = ledger
        .iter()
        .filter(|e| e["source"] == "api" && e["method"] == "PATCH" && e["activityId"] == id)
        .count();
    assert_eq!(patches, 1, "the properties are written once");

    // The technician learns the decision, with the comment, through sync pull.
    let (code, pull) = call(
        &stack,
        &tech,
        "get",
        &format!("/sync/pull?cursor={cursor}&limit=500"),
        None,
        "-",
    )
    .await;
    assert_eq!(code, 200);
    let seen = pull["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "approval")
        .cloned()
        .unwrap_or_else(|| panic!("{pull}"));
    assert_eq!(seen["data"]["decision"]["comment"], "clean install");
    assert_eq!(seen["data"]["status"], "approved");

    let (code, listed) = call(&stack, &sup, "get", "/approvals?status=approved", None, "-").await;
    assert_eq!(code, 200);
    assert!(listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["approvalId"] == approval.as_str()));
    // Every accepted write and the decision are in the audit trail.
    let (code, audit) = call(
        &stack,
        &sup,
        "get",
        &format!("/audit?activityId={id}"),
        None,
        "-",
    )
    .await;
    assert_eq!(code, 200);
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "status",
            "status",
            "parts",
            "status",
            "attachment.grant",
            "upload",
            "attachment.grant",
            "upload",
            "approval.decide"
        ],
        "{audit}"
    );
    let decided = &audit["items"][8];
    assert_eq!(decided["user"], "super1");
    assert_eq!(decided["role"], "supervisor");
    assert!(decided["requestId"].as_str().is_some_and(|r| !r.is_empty()));
    assert!(decided["device"].as_str().is_some_and(|d| !d.is_empty()));
}

#[tokio::test]
async fn rejecting_with_reopen_brings_the_work_back_as_a_new_pending_activity() {
    let stack = Stack::start().await;
    let tech = stack.app.login("tech2").await;
    let (id, approval) = complete_first_stop(&stack, &tech, "tech2").await;
    let sup = stack.app.login("super1").await;
    let (code, body) = call(
        &stack,
        &sup,
        "post",
        &format!("/approvals/{approval}/decision"),
        Some(json!({"decision": "reject", "comment": "photo missing", "reopen": true})),
        "r1",
    )
    .await;
    assert_eq!(code, 202, "{body}");
    assert_eq!(op_ids(&body).len(), 2);
    let done = stack
        .settle(&sup, &op_ids(&body), Duration::from_secs(20))
        .await;
    assert!(done.iter().all(|o| o["state"] == "applied"), "{done:#?}");
    let props = properties(&stack, id).await;
    assert_eq!(props["XA_APPROVAL_STATUS"], "rejected");
    assert_eq!(props["XA_APPROVAL_COMMENT"], "photo missing");
    let (date, route) = stack.sim.today_route("tech2").await;
    let original = stack.sim.client.get_activity(id).await.unwrap();
    let reopened: Vec<_> = route
        .iter()
        .filter(|a| {
            a.record_type.as_deref() == Some("reopened") && a.appt_number == original.appt_number
        })
        .collect();
    assert_eq!(reopened.len(), 1, "exactly one reopened copy on {date}");
    assert_eq!(reopened[0].status.as_deref(), Some("pending"));
    let ledger = stack.sim.ledger().await;
    assert_eq!(
        ledger
            .iter()
            .filter(|e| e["source"] == "api" && e["action"] == "reopen")
            .count(),
        1
    );
}

#[tokio::test]
async fn who_may_decide() {
    let stack = Stack::start().await;
    let store = stack.app.state.store.as_ref();
    for (user, oversees, resource) in [
        ("west", vec!["tech4".to_string()], None),
        ("lead", vec!["tech3".to_string()], Some("tech3".to_string())),
    ] {
        fieldsync::auth::users::add(
            store,
            fieldsync::auth::users::NewUser {
                username: user.into(),
                name: user.into(),
                role: fieldsync::auth::Role::Supervisor,
                resource_id: resource,
                oversees,
                oversees_parent: None,
                password: "demo".into(),
            },
        )
        .unwrap();
    }
    let tech = stack.app.login("tech1").await;
    let (_, approval) = complete_first_stop(&stack, &tech, "tech1").await;
    let decision = json!({"decision": "approve", "comment": "ok"});
    let path = format!("/approvals/{approval}/decision");
    let (code, body) = call(&stack, &tech, "post", &path, Some(decision.clone()), "t").await;
    assert_eq!(
        (code, body["code"].as_str()),
        (403, Some("forbidden")),
        "a technician: {body}"
    );
    let west = stack.app.login("west").await;
    assert_eq!(
        call(&stack, &west, "post", &path, Some(decision.clone()), "w")
            .await
            .0,
        404,
        "not overseen"
    );
    assert_eq!(
        call(
            &stack,
            &west,
            "get",
            &format!("/approvals/{approval}"),
            None,
            "-"
        )
        .await
        .0,
        404
    );
    let (_, none) = call(&stack, &west, "get", "/approvals", None, "-").await;
    assert_eq!(none["items"], json!([]));
    // A supervisor who works a route themselves cannot approve that work.
    let lead = stack.app.login("lead").await;
    let (_, own) = complete_first_stop(&stack, &lead, "tech3").await;
    let (code, body) = call(
        &stack,
        &lead,
        "post",
        &format!("/approvals/{own}/decision"),
        Some(decision.clone()),
        "l",
    )
    .await;
    assert_eq!(
        (code, body["code"].as_str()),
        (403, Some("forbidden")),
        "own work: {body}"
    );
    for bad in [
        json!({"decision": "maybe", "comment": ""}),
        json!({"decision": "approve", "comment": "x", "reopen": true}),
        json!({"decision": "approve"}),
    ] {
        let sup = stack.app.login("super1").await;
        let (code, body) = call(&stack, &sup, "post", &path, Some(bad.clone()), "b").await;
        assert_eq!(code, 400, "{bad}: {body}");
    }
}

#[tokio::test]
async fn a_corrupt_approval_is_quarantined_and_the_inbox_still_lists_the_rest() {
    use fieldsync::features::approvals::{approval_seq, APPROVALS};
    use fieldsync::store::StorageExt;
    let stack = Stack::start().await;
    let tech1 = stack.app.login("tech1").await;
    let tech2 = stack.app.login("tech2").await;
    let (_, broken) = complete_first_stop(&stack, &tech1, "tech1").await;
    let (_, kept) = complete_first_stop(&stack, &tech2, "tech2").await;
    let store = stack.app.state.store.as_ref();
    let key = approval_seq(&broken).unwrap().to_be_bytes();
    crate::helpers::corrupt(store, APPROVALS, &key);

    let sup = stack.app.login("super1").await;
    let (code, list) = call(&stack, &sup, "get", "/approvals?status=pending", None, "-").await;
    assert_eq!(code, 200, "{list}");
    let listed: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["approvalId"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [kept.as_str()]);
    assert_eq!(store.quarantined(10).unwrap().len(), 1);
}
