//! The legal-transition table and route rules, cell by cell, through the connector.

use crate::helpers::{action_body, TestSim};
use fieldsync::ofsc::OfscError;
use serde_json::json;

const STATUSES: [&str; 7] = [
    "pending",
    "enroute",
    "started",
    "suspended",
    "completed",
    "notdone",
    "cancelled",
];
const ACTIONS: [&str; 10] = [
    "start",
    "enroute",
    "stopTravel",
    "suspend",
    "complete",
    "notDone",
    "cancel",
    "delay",
    "reopen",
    "DELETE",
];

/// ofsc-api.md §3.1, with every route precondition met.
fn legal(status: &str, action: &str) -> bool {
    matches!(
        (status, action),
        (
            "pending",
            "start" | "enroute" | "suspend" | "cancel" | "DELETE"
        ) | ("enroute", "start" | "stopTravel" | "cancel")
            | ("started", "suspend" | "complete" | "notDone" | "delay")
            | ("completed" | "notdone" | "cancelled", "reopen")
    )
}

/// Resets the tenant and drives tech1's first stop into `status`; returns its id and the date.
/// For DELETE on a pending activity the route stays inactive, as DELETE requires.
async fn activity_in(sim: &TestSim, status: &str, activate: bool) -> (i64, String) {
    sim.reset().await;
    let (date, items) = sim.today_route("tech1").await;
    let id = items[0].activity_id.unwrap();
    if activate {
        sim.activate("tech1", &date).await;
    }
    let c = &sim.client;
    let steps: &[&str] = match status {
        "pending" => &[],
        "enroute" => &["enroute"],
        "started" => &["start"],
        "suspended" => &["start", "suspend"],
        "completed" => &["start", "complete"],
        "notdone" => &["start", "notDone"],
        "cancelled" => &["cancel"],
        other => panic!("{other}"),
    };
    for step in steps {
        c.activity_action(id, step, json!({})).await.unwrap();
    }
    if status == "suspended" {
        let route = c.get_route("tech1", &date).await.unwrap();
        let copy = route
            .items
            .iter()
            .find(|a| a.status.as_deref() == Some("suspended"))
            .unwrap();
        return (copy.activity_id.unwrap(), date);
    }
    assert_eq!(
        c.get_activity(id).await.unwrap().status.as_deref(),
        Some(status)
    );
    (id, date)
}

#[tokio::test]
async fn every_cell_of_the_legal_transition_table() {
    let sim = TestSim::start().await;
    let mut failures = Vec::new();
    for status in STATUSES {
        for action in ACTIONS {
            let activate = !(action == "DELETE" && status == "pending");
            let (id, _) = activity_in(&sim, status, activate).await;
            let result = if action == "DELETE" {
                sim.client.delete_activity(id).await.map(|_| ())
            } else {
                sim.client
                    .activity_action(id, action, action_body(action))
                    .await
                    .map(|_| ())
            };
            let want = legal(status, action);
            match (&result, want) {
                (Ok(()), true) => {}
                (
                    Err(OfscError::Rejected {
                        status: 400,
                        detail,
                        ..
                    }),
                    false,
                ) => {
                    assert!(!detail.is_empty(), "{status}/{action}: empty detail");
                }
                _ => failures.push(format!(
                    "{status} / {action}: want legal={want}, got {result:?}"
                )),
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test]
async fn illegal_action_answers_400_with_string_status_body() {
    let sim = TestSim::start().await;
    let (id, _) = activity_in(&sim, "pending", true).await;
    let resp = sim
        .http
        .post(sim.url(&format!(
            "/rest/ofscCore/v1/activities/{id}/custom-actions/complete"
        )))
        .basic_auth("fieldsync-demo@demo", Some("demo"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "400");
    assert_eq!(body["title"], "Bad Request");
    assert!(body["type"].as_str().unwrap().starts_with("http"));
    assert!(body["detail"].as_str().unwrap().contains("complete"));
}

#[tokio::test]
async fn start_requires_an_activated_route() {
    let sim = TestSim::start().await;
    let (id, date) = activity_in(&sim, "pending", false).await;
    let err = sim
        .client
        .activity_action(id, "start", json!({}))
        .await
        .unwrap_err();
    assert!(format!("{err}").contains("not activated"), "{err}");
    sim.activate("tech1", &date).await;
    sim.client
        .activity_action(id, "start", json!({}))
        .await
        .unwrap();
}

#[tokio::test]
async fn only_one_started_activity_per_route() {
    let sim = TestSim::start().await;
    let (first, date) = activity_in(&sim, "started", true).await;
    let items = sim.client.get_route("tech1", &date).await.unwrap().items;
    let second = items
        .iter()
        .find(|a| a.activity_id != Some(first))
        .unwrap()
        .activity_id
        .unwrap();
    let err = sim
        .client
        .activity_action(second, "start", json!({}))
        .await
        .unwrap_err();
    assert!(format!("{err}").contains("another activity"), "{err}");
    sim.client
        .activity_action(first, "complete", json!({}))
        .await
        .unwrap();
    sim.client
        .activity_action(second, "start", json!({}))
        .await
        .unwrap();
}

#[tokio::test]
async fn action_time_never_goes_backwards_within_a_route() {
    let sim = TestSim::start().await;
    sim.reset().await;
    let (date, items) = sim.today_route("tech2").await;
    let ids: Vec<i64> = items.iter().map(|a| a.activity_id.unwrap()).collect();
    let t = |hms: &str| json!({ "time": format!("{date} {hms}") });
    sim.client
        .route_action(
            "tech2",
            &date,
            "activate",
            Some(&format!("{date} 00:00:10")),
        )
        .await
        .unwrap();
    sim.client
        .activity_action(ids[0], "start", t("00:05:00"))
        .await
        .unwrap();
    let err = sim
        .client
        .activity_action(ids[0], "complete", t("00:04:59"))
        .await
        .unwrap_err();
    assert!(
        format!("{err}").contains("earlier than the previous action"),
        "{err}"
    );
    sim.client
        .activity_action(ids[0], "complete", t("00:05:00"))
        .await
        .unwrap();
    // Another activity of the same route is held to the same clock.
    let err = sim
        .client
        .activity_action(ids[1], "start", t("00:04:00"))
        .await
        .unwrap_err();
    assert!(format!("{err}").contains("earlier"), "{err}");
    sim.client
        .activity_action(ids[1], "start", t("00:06:00"))
        .await
        .unwrap();
}

#[tokio::test]
async fn enroute_only_for_the_first_pending_stop() {
    let sim = TestSim::start().await;
    sim.reset().await;
    let (date, items) = sim.today_route("tech3").await;
    sim.activate("tech3", &date).await;
    let second = items[1].activity_id.unwrap();
    let err = sim
        .client
        .activity_action(second, "enroute", json!({}))
        .await
        .unwrap_err();
    assert!(format!("{err}").contains("first in the route"), "{err}");
    let first = items[0].activity_id.unwrap();
    sim.client
        .activity_action(first, "enroute", json!({}))
        .await
        .unwrap();
    sim.client
        .activity_action(first, "start", json!({}))
        .await
        .unwrap();
    sim.client
        .activity_action(first, "complete", json!({}))
        .await
        .unwrap();
    sim.client
        .activity_action(second, "enroute", json!({}))
        .await
        .unwrap();
}

#[tokio::test]
async fn suspend_leaves_a_pending_record_and_a_suspended_copy() {
    let sim = TestSim::start().await;
    let (id, date) = activity_in(&sim, "started", true).await;
    let after = sim
        .client
        .activity_action(id, "suspend", json!({}))
        .await
        .unwrap();
    assert_eq!(after.status.as_deref(), Some("pending"));
    assert_eq!(after.position_in_route, None);
    let items = sim.client.get_route("tech1", &date).await.unwrap().items;
    let copies: Vec<_> = items
        .iter()
        .filter(|a| a.status.as_deref() == Some("suspended"))
        .collect();
    assert_eq!(copies.len(), 1);
    assert_ne!(copies[0].activity_id, Some(id));
    assert!(copies[0].end_time.is_some());
}

#[tokio::test]
async fn reopen_creates_a_pending_reopened_record() {
    let sim = TestSim::start().await;
    let (id, _) = activity_in(&sim, "completed", true).await;
    let err = sim
        .client
        .activity_action(id, "reopen", json!({}))
        .await
        .unwrap_err();
    assert!(format!("{err}").contains("setPositionInRoute"));
    let reopened = sim
        .client
        .activity_action(id, "reopen", action_body("reopen"))
        .await
        .unwrap();
    assert_ne!(reopened.activity_id, Some(id));
    assert_eq!(reopened.status.as_deref(), Some("pending"));
    assert_eq!(reopened.record_type.as_deref(), Some("reopened"));
    assert_eq!(
        sim.client.get_activity(id).await.unwrap().status.as_deref(),
        Some("completed")
    );
}

#[tokio::test]
async fn route_activation_state_is_visible_and_deactivation_rules_hold() {
    let sim = TestSim::start().await;
    sim.reset().await;
    let (date, items) = sim.today_route("tech1").await;
    assert!(sim
        .client
        .get_route("tech1", &date)
        .await
        .unwrap()
        .route_start_time
        .is_none());
    sim.activate("tech1", &date).await;
    assert!(sim
        .client
        .get_route("tech1", &date)
        .await
        .unwrap()
        .route_start_time
        .is_some());
    assert!(sim
        .client
        .route_action("tech1", &date, "activate", None)
        .await
        .is_err());
    let id = items[0].activity_id.unwrap();
    sim.client
        .activity_action(id, "start", json!({}))
        .await
        .unwrap();
    assert!(sim
        .client
        .route_action("tech1", &date, "deactivate", None)
        .await
        .is_err());
    sim.client
        .activity_action(id, "complete", json!({}))
        .await
        .unwrap();
    sim.client
        .route_action("tech1", &date, "deactivate", None)
        .await
        .unwrap();
    assert!(sim
        .client
        .get_route("tech1", &date)
        .await
        .unwrap()
        .route_end_time
        .is_some());
}
