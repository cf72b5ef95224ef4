//! Fault injection as the connector sees it, and the ledger as tests read it.

use crate::helpers::TestSim;
use fieldsync::ofsc::{AuthKind, Disposition, OfscError};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn server_errors_and_throttling_are_retryable_and_apply_nothing() {
    let sim = TestSim::start().await;
    let (date, items) = sim.today_route("tech1").await;
    sim.activate("tech1", &date).await;
    let id = items[0].activity_id.unwrap();
    sim.faults(json!({"rate5xx": 1.0})).await;
    let err = sim
        .client
        .activity_action(id, "start", json!({}))
        .await
        .unwrap_err();
    assert!(
        matches!(err, OfscError::Server { status: 500, .. }),
        "{err:?}"
    );
    assert_eq!(err.disposition(), Disposition::Retry { after: None });
    sim.faults(json!({"rate429": 1.0, "retryAfterSecs": 2}))
        .await;
    let err = sim
        .client
        .activity_action(id, "start", json!({}))
        .await
        .unwrap_err();
    assert_eq!(
        err.disposition(),
        Disposition::Retry {
            after: Some(Duration::from_secs(2))
        }
    );
    sim.faults(json!({})).await;
    assert_eq!(
        sim.client.get_activity(id).await.unwrap().status.as_deref(),
        Some("pending")
    );
    assert!(sim.ledger().await.iter().all(|e| e["action"] != "start"));
}

#[tokio::test]
async fn timeout_after_apply_is_ambiguous_and_the_change_is_in_the_ledger() {
    let sim = TestSim::start_with(AuthKind::Basic, Duration::from_millis(500)).await;
    let (date, items) = sim.today_route("tech1").await;
    sim.activate("tech1", &date).await;
    let id = items[0].activity_id.unwrap();
    sim.faults(json!({"timeoutAfterApply": 1.0, "timeoutHoldMs": 2000}))
        .await;
    let err = sim
        .client
        .activity_action(id, "start", json!({}))
        .await
        .unwrap_err();
    assert!(err.is_ambiguous(), "{err:?}");
    sim.faults(json!({})).await;
    assert_eq!(
        sim.client.get_activity(id).await.unwrap().status.as_deref(),
        Some("started")
    );
    let starts: Vec<_> = sim
        .ledger()
        .await
        .into_iter()
        .filter(|e| e["action"] == "start")
        .collect();
    assert_eq!(starts.len(), 1);
    assert_eq!(starts[0]["activityId"], id);
    assert_eq!(starts[0]["method"], "POST");
    assert!(starts[0]["time"].as_str().unwrap().starts_with(&date));
}

#[tokio::test]
async fn connection_reset_after_apply_is_ambiguous() {
    let sim = TestSim::start_with(AuthKind::Basic, Duration::from_secs(5)).await;
    let (date, items) = sim.today_route("tech2").await;
    sim.activate("tech2", &date).await;
    let id = items[0].activity_id.unwrap();
    sim.faults(json!({"reset": 1.0})).await;
    let err = sim
        .client
        .activity_action(id, "start", json!({}))
        .await
        .unwrap_err();
    assert!(err.is_ambiguous(), "{err:?}");
    sim.faults(json!({})).await;
    assert_eq!(
        sim.client.get_activity(id).await.unwrap().status.as_deref(),
        Some("started")
    );
}

#[tokio::test]
async fn ledger_orders_every_applied_call_and_reset_clears_it() {
    let sim = TestSim::start().await;
    let (date, items) = sim.today_route("tech3").await;
    sim.activate("tech3", &date).await;
    let id = items[0].activity_id.unwrap();
    sim.client
        .activity_action(id, "enroute", json!({}))
        .await
        .unwrap();
    sim.client
        .activity_action(id, "start", json!({}))
        .await
        .unwrap();
    let _ = sim
        .client
        .activity_action(id, "start", json!({}))
        .await
        .unwrap_err();
    sim.client
        .activity_action(id, "complete", json!({}))
        .await
        .unwrap();
    let ledger = sim.ledger().await;
    let seqs: Vec<u64> = ledger.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=ledger.len() as u64).collect::<Vec<_>>());
    let actions: Vec<&str> = ledger
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["activate", "enroute", "start", "complete"],
        "refused calls are not in the ledger"
    );
    sim.reset().await;
    assert!(sim.ledger().await.is_empty());
}

#[tokio::test]
async fn fault_settings_are_validated() {
    let sim = TestSim::start().await;
    for bad in [json!({"rate5xx": 2.0}), json!({"nonsense": 1})] {
        let resp = sim
            .http
            .post(sim.url("/__sim/faults"))
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{bad}");
    }
    let resp = sim
        .http
        .post(sim.url("/__sim/dispatch"))
        .json(&json!({"action": "explode"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}
