//! Operating the queue: corrupt records quarantined, dead letters, retry and discard with
//! audit, and the metrics operators scrape.

use crate::helpers::Stack;
use fieldsync::store::Storage;
use serde_json::{json, Value};
use std::time::Duration;

async fn first_stops(stack: &Stack, s: &crate::helpers::Session, tech: &str) -> Vec<i64> {
    let date = stack.sim.today_route(tech).await.0;
    crate::helpers::stop_ids(&stack.route(s, &date).await)
}

#[tokio::test]
async fn a_corrupted_queued_op_is_quarantined_and_never_sent() {
    let stack = Stack::start().await;
    let s = stack.app.login("tech1").await;
    let ids = first_stops(&stack, &s, "tech1").await;
    stack.sim.faults(json!({"rate5xx": 1.0})).await;
    let (code, body) = stack.status(&s, ids[0], "started", "k").await;
    assert_eq!(code, 202);
    let op_id = body["opId"].as_str().unwrap().to_string();
    let seq = fieldsync::write::outbox::Op::seq_of(&op_id).unwrap();
    let store = stack.app.state.store.as_ref();
    let key = fieldsync::write::outbox::op_key(seq);
    let mut raw = store
        .get_raw(fieldsync::write::outbox::OPS, &key)
        .unwrap()
        .unwrap();
    let n = raw.len();
    raw[n - 3] ^= 0x20;
    store
        .insert_raw(fieldsync::write::outbox::OPS, &key, raw)
        .unwrap();
    stack.sim.faults(json!({})).await;

    let admin = stack.app.login("admin").await;
    let mut quarantined = Value::Null;
    for _ in 0..200 {
        quarantined = stack
            .app
            .call("get", "/admin/quarantine", Some(&admin.access))
            .await
            .json()
            .await
            .unwrap();
        if !quarantined["items"].as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let items = quarantined["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{quarantined}");
    assert_eq!(items[0]["tree"], "ops");
    assert!(items[0]["reason"].as_str().unwrap().contains("checksum"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ledger = stack.sim.ledger().await;
    assert!(
        ledger.iter().all(|e| e["action"] != "start"),
        "a corrupt op reached OFSC: {ledger:?}"
    );
    let metrics = stack
        .app
        .call("get", "/metrics", None)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("fieldsync_quarantined_records 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("fieldsync_index_keys_unchecked "),
        "{metrics}"
    );
    let disk: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("fieldsync_store_disk_bytes "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no store size: {metrics}"));
    assert!(disk > 0.0, "{metrics}");
}

#[tokio::test]
async fn dead_ops_are_listed_retried_or_discarded_with_audit() {
    let stack = Stack::start_with(|s| s.replay.max_attempts = 2).await;
    let s = stack.app.login("tech2").await;
    let ids = first_stops(&stack, &s, "tech2").await;
    stack.sim.faults(json!({"rate5xx": 1.0})).await;
    let (_, a) = stack.status(&s, ids[0], "started", "a").await;
    let (_, b) = stack.status(&s, ids[0], "completed", "b").await;
    let (a, b) = (
        a["opId"].as_str().unwrap().to_string(),
        b["opId"].as_str().unwrap().to_string(),
    );
    let done = stack
        .settle(&s, &[a.clone(), b.clone()], Duration::from_secs(20))
        .await;
    let states: Vec<&str> = done.iter().map(|o| o["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["dead", "blocked"], "{done:?}");

    let sup = stack.app.login("super1").await;
    let tech = stack.app.login("tech2").await;
    let summary: Value = stack
        .app
        .call("get", "/admin/queue", Some(&sup.access))
        .await
        .json()
        .await
        .unwrap();
    // The route activation died too: it was queued ahead of the start.
    assert_eq!(summary["byState"]["dead"], 2, "{summary}");
    assert_eq!(summary["byState"]["blocked"], 1);
    assert!(summary["oldestQueuedAgeSeconds"].as_f64().is_some());
    let listed: Value = stack
        .app
        .call("get", "/admin/ops?state=dead", Some(&sup.access))
        .await
        .json()
        .await
        .unwrap();
    let dead: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["opId"].as_str().unwrap())
        .collect();
    assert_eq!(dead.len(), 2);
    assert_eq!(dead[1], a);
    assert_eq!(listed["items"][0]["kind"]["type"], "activateRoute");
    assert_eq!(
        stack
            .app
            .call("get", "/admin/queue", Some(&tech.access))
            .await
            .status(),
        403
    );
    // The default listing (dead, rejected, blocked) in id order, a page at a time.
    let page: Value = stack
        .app
        .call("get", "/admin/ops?limit=2", Some(&sup.access))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["hasMore"], true, "{page}");
    let cursor = page["nextCursor"].as_str().unwrap();
    let rest: Value = stack
        .app
        .call(
            "get",
            &format!("/admin/ops?limit=2&cursor={cursor}"),
            Some(&sup.access),
        )
        .await
        .json()
        .await
        .unwrap();
    let all: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["items"].as_array().unwrap())
        .map(|o| o["opId"].as_str().unwrap())
        .collect();
    assert_eq!(all, [dead[0], dead[1], b.as_str()], "{page} {rest}");
    assert_eq!(rest["hasMore"], false);
    // The listing's index (kept by every state change) equals one rebuilt from the ops.
    let store = stack.app.state.store.as_ref();
    let attention = fieldsync::write::outbox::ATTENTION;
    let live = fieldsync::write::outbox::marked_ops(store, &attention, 0);
    assert_eq!(live.len(), 3);
    fieldsync::write::outbox::recount(store).unwrap();
    assert_eq!(
        live,
        fieldsync::write::outbox::marked_ops(store, &attention, 0)
    );

    stack.sim.faults(json!({})).await;
    for op in &dead {
        let retried = stack
            .app
            .call("post", &format!("/admin/ops/{op}/retry"), Some(&sup.access))
            .await;
        assert_eq!(retried.status(), 200);
    }
    let discarded = stack
        .app
        .call(
            "post",
            &format!("/admin/ops/{b}/discard"),
            Some(&sup.access),
        )
        .await;
    assert_eq!(discarded.status(), 200);
    let again = stack
        .app
        .call(
            "post",
            &format!("/admin/ops/{b}/discard"),
            Some(&sup.access),
        )
        .await;
    assert_eq!(again.status(), 409);
    let done = stack
        .settle(&s, &[a.clone(), b.clone()], Duration::from_secs(20))
        .await;
    assert_eq!(done[0]["state"], "applied");
    assert_eq!(done[1]["state"], "discarded");
    let listed: Value = stack
        .app
        .call("get", "/admin/ops", Some(&sup.access))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"], json!([]), "{listed}");
    let starts = stack
        .sim
        .ledger()
        .await
        .iter()
        .filter(|e| e["action"] == "start")
        .count();
    assert_eq!(starts, 1);

    let audit = fieldsync::features::audit::list(stack.app.state.store.as_ref(), 0, 100).unwrap();
    let actions: Vec<(&str, &str)> = audit
        .iter()
        .map(|e| (e.action.as_str(), e.user.as_str()))
        .collect();
    assert!(
        actions.contains(&("op.retry", "super1")) && actions.contains(&("op.discard", "super1")),
        "{actions:?}"
    );
    assert!(audit.iter().all(|e| !e.request_id.is_empty()));
    assert!(audit
        .iter()
        .filter(|e| e.action.starts_with("op."))
        .all(|e| e.device == "super1-phone"));
}

#[tokio::test]
async fn metrics_expose_queue_and_replay_figures() {
    let stack = Stack::start().await;
    let s = stack.app.login("tech3").await;
    let ids = first_stops(&stack, &s, "tech3").await;
    let (_, body) = stack.status(&s, ids[0], "started", "m").await;
    stack
        .settle(
            &s,
            &[body["opId"].as_str().unwrap().to_string()],
            Duration::from_secs(10),
        )
        .await;
    let text = stack
        .app
        .call("get", "/metrics", None)
        .await
        .text()
        .await
        .unwrap();
    for name in [
        "fieldsync_ops{state=\"applied\"}",
        "fieldsync_ops{state=\"queued\"}",
        "fieldsync_oldest_queued_age_seconds",
        "fieldsync_replay_lag_seconds_bucket",
        "fieldsync_http_request_duration_seconds_bucket",
        "fieldsync_ofsc_up",
    ] {
        assert!(text.contains(name), "missing {name} in\n{text}");
    }
}

/// What a client controls never becomes a label: 200 requests with made-up methods and
/// paths add no series (each is `method="other"`, `route="other"`), so the scrape cannot be
/// grown from outside. With `server.metrics_token` set, a scrape needs that bearer token.
#[tokio::test]
async fn metric_labels_come_from_closed_sets_and_the_scrape_can_need_a_token() {
    let app = crate::helpers::TestApp::spawn(|s| {
        s.server.metrics_token = Some(fieldsync::config::Secret::new("scrape-secret-0123456789"))
    })
    .await;
    for i in 0..200 {
        let method = reqwest::Method::from_bytes(format!("JUNK{i}").as_bytes()).unwrap();
        app.http
            .request(method, app.url(&format!("/junk-{i}")))
            .send()
            .await
            .unwrap();
    }
    app.call("get", &format!("/junk-path-{}", 7), None).await;
    let denied = app.call("get", "/metrics", None).await;
    assert_eq!(denied.status(), 401);
    let wrong = app
        .call("get", "/metrics", Some("scrape-secret-0123456788"))
        .await;
    assert_eq!(wrong.status(), 401);
    let ok = app
        .call("get", "/metrics", Some("scrape-secret-0123456789"))
        .await;
    assert_eq!(ok.status(), 200);
    let text = ok.text().await.unwrap();
    assert!(!text.contains("JUNK"), "a client's method became a label");
    assert!(!text.contains("junk-"), "a client's path became a label");
    assert!(
        text.contains("method=\"other\"") && text.contains("route=\"other\""),
        "unknown methods and unmatched paths are counted as other"
    );
    assert!(
        text.contains("route=\"/metrics\""),
        "matched routes are labelled by pattern"
    );
}
