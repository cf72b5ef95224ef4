//! The simulator's OFSC surface through the connector: lists, CRUD, inventories, files,
//! positions, events, auth and the concurrency limit.

use crate::helpers::TestSim;
use fieldsync::ofsc::wire::{Activity, InventoryAction, Position};
use fieldsync::ofsc::{ActivityQuery, AuthKind, OfscError};
use serde_json::{json, Map, Value};
use std::time::Duration;

/// One day of the demo organization's activities (OFSC wants the resources to search in).
fn range(date: &str) -> ActivityQuery {
    ActivityQuery {
        resources: vec!["field-ops".into()],
        date_from: Some(date.into()),
        date_to: Some(date.into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn list_enforces_the_31_day_rule() {
    let sim = TestSim::start().await;
    // Oracle's rule: dateTo - dateFrom <= 31, so January 1st to February 1st is allowed.
    let q = ActivityQuery {
        resources: vec!["tech1".into()],
        date_from: Some("2026-01-01".into()),
        date_to: Some("2026-02-02".into()),
        ..Default::default()
    };
    match sim.client.list_activities(&q).await.unwrap_err() {
        OfscError::Rejected {
            status: 400,
            detail,
            ..
        } => assert_eq!(detail, "Date interval contains more than 31 days"),
        other => panic!("{other:?}"),
    }
    let ok = ActivityQuery {
        date_to: Some("2026-02-01".into()),
        ..q.clone()
    };
    sim.client.list_activities(&ok).await.unwrap();
    let missing = ActivityQuery {
        resources: vec!["tech1".into()],
        date_from: Some("2026-01-01".into()),
        ..Default::default()
    };
    assert!(sim.client.list_activities(&missing).await.is_err());
    // And OFSC wants the resources to search in.
    let nowhere = ActivityQuery {
        resources: Vec::new(),
        ..ok
    };
    match sim.client.list_activities(&nowhere).await.unwrap_err() {
        OfscError::Rejected {
            status: 400,
            detail,
            ..
        } => assert_eq!(detail, "resources is required"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn list_filters_projects_and_pages_with_has_more() {
    let sim = TestSim::start().await;
    let (date, items) = sim.today_route("tech1").await;
    let q = ActivityQuery {
        resources: vec!["tech1".into()],
        ..range(&date)
    };
    let page = sim.client.list_activities(&q).await.unwrap();
    assert_eq!(page.items.len(), items.len());
    assert_eq!(page.has_more, None, "a complete page has no hasMore key");
    // Default fields only.
    assert!(page
        .items
        .iter()
        .all(|a| a.customer_name.is_none() && a.status.is_some()));

    let paged = sim
        .client
        .list_activities(&ActivityQuery {
            limit: Some(3),
            ..q.clone()
        })
        .await
        .unwrap();
    assert_eq!(paged.items.len(), 3);
    assert_eq!(paged.has_more, Some(true));
    let rest = sim
        .client
        .list_activities(&ActivityQuery {
            offset: Some(3),
            limit: Some(100),
            ..q.clone()
        })
        .await
        .unwrap();
    assert_eq!(rest.items.len(), items.len() - 3);

    sim.activate("tech1", &date).await;
    let first = items[0].activity_id.unwrap();
    sim.client
        .activity_action(first, "start", json!({}))
        .await
        .unwrap();
    let started = sim
        .client
        .list_activities(&ActivityQuery {
            q: Some("status=='started'".into()),
            fields: Some("activityId,customerName,status".into()),
            ..q.clone()
        })
        .await
        .unwrap();
    assert_eq!(started.items.len(), 1);
    assert_eq!(started.items[0].activity_id, Some(first));
    assert!(started.items[0].customer_name.is_some());
    assert!(started.items[0].resource_id.is_none(), "not asked for");

    let bad = ActivityQuery {
        fields: Some("activityId,positionInRoute".into()),
        ..q.clone()
    };
    assert!(matches!(
        sim.client.list_activities(&bad).await,
        Err(OfscError::Rejected { status: 400, .. })
    ));
    let bad = ActivityQuery {
        q: Some("status=".into()),
        ..q
    };
    assert!(matches!(
        sim.client.list_activities(&bad).await,
        Err(OfscError::Rejected { status: 400, .. })
    ));
}

#[tokio::test]
async fn parent_resource_lists_its_children() {
    let sim = TestSim::start().await;
    let (date, _) = sim.today_route("tech1").await;
    let q = ActivityQuery {
        resources: vec!["field-ops".into()],
        date_from: Some(date.clone()),
        date_to: Some(date),
        ..Default::default()
    };
    let page = sim.client.list_activities(&q).await.unwrap();
    let mut owners: Vec<String> = page
        .items
        .iter()
        .filter_map(|a| a.resource_id.clone())
        .collect();
    owners.sort();
    owners.dedup();
    // Dates are per zone; at least tech1's activities are on this date.
    assert!(owners.contains(&"tech1".to_string()));
}

#[tokio::test]
async fn at_most_three_activity_lists_run_and_ten_queue() {
    let sim = TestSim::start_with(AuthKind::Basic, Duration::from_secs(20)).await;
    sim.faults(json!({"latencyMs": 400})).await;
    let (date, _) = ("2026-01-01".to_string(), ());
    let q = range(&date);
    let calls = (0..14).map(|_| sim.client.list_activities(&q));
    let results = futures_util::future::join_all(calls).await;
    let refused: Vec<_> = results.iter().filter(|r| r.is_err()).collect();
    assert_eq!(refused.len(), 1, "{results:?}");
    assert!(matches!(
        refused[0],
        Err(OfscError::Throttled { status: 429, .. })
    ));
    let stats: Value = sim
        .http
        .get(sim.url("/__sim/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["activityListMaxRunning"], 3);
    assert_eq!(stats["activityListRejected"], 1);
}

#[tokio::test]
async fn create_get_patch_delete() {
    let sim = TestSim::start().await;
    let (date, _) = sim.today_route("tech2").await;
    let draft = Activity {
        activity_type: Some("REPAIR".into()),
        resource_id: Some("tech2".into()),
        date: Some(date.clone()),
        customer_name: Some("Follow Up".into()),
        ..Default::default()
    };
    let created = sim.client.create_activity(&draft).await.unwrap();
    let id = created.activity_id.unwrap();
    assert_eq!(created.status.as_deref(), Some("pending"));
    assert_eq!(
        created.resource_time_zone_iana.as_deref(),
        Some("America/Chicago")
    );
    assert!(created.position_in_route.is_some());

    let missing = Activity {
        activity_type: Some("REPAIR".into()),
        ..Default::default()
    };
    assert!(matches!(
        sim.client.create_activity(&missing).await,
        Err(OfscError::Rejected { status: 400, .. })
    ));

    let patched = sim
        .client
        .update_activity(
            id,
            json!({"customerName": "Changed", "XA_NOTES": "gate code 1234"}),
        )
        .await
        .unwrap();
    assert_eq!(patched.customer_name.as_deref(), Some("Changed"));
    assert_eq!(
        patched.properties.get("XA_NOTES"),
        Some(&json!("gate code 1234"))
    );
    // Only the tenant's own properties, and a file property only through its file path.
    for body in [
        json!({"XA_NOTE": "typo"}),
        json!({"XA_PHOTO": "not a file"}),
    ] {
        assert!(
            matches!(
                sim.client.update_activity(id, body.clone()).await,
                Err(OfscError::Rejected { status: 400, .. })
            ),
            "{body}"
        );
    }
    for forbidden in ["status", "date", "resourceId"] {
        let mut body = Map::new();
        body.insert(forbidden.into(), json!("x"));
        let err = sim
            .client
            .update_activity(id, Value::Object(body))
            .await
            .unwrap_err();
        assert!(
            matches!(err, OfscError::Rejected { status: 400, .. }),
            "{forbidden}: {err:?}"
        );
    }

    sim.client.delete_activity(id).await.unwrap();
    assert!(sim
        .client
        .get_activity(id)
        .await
        .unwrap_err()
        .is_not_found());
    assert!(matches!(
        sim.client.get_activity(-1).await,
        Err(OfscError::Rejected { status: 400, .. })
    ));
    assert!(sim
        .client
        .get_activity(999_999)
        .await
        .unwrap_err()
        .is_not_found());
}

#[tokio::test]
async fn resources_one_and_list() {
    let sim = TestSim::start().await;
    let list = sim.client.list_resources(0, 100).await.unwrap();
    let ids: Vec<_> = list.items.iter().map(|r| r.resource_id.as_str()).collect();
    for want in ["tech1", "tech2", "tech3", "field-ops"] {
        assert!(ids.contains(&want), "{ids:?}");
    }
    assert_eq!(list.total_results as usize, list.items.len());
    let tech3 = sim.client.get_resource("tech3").await.unwrap();
    assert_eq!(tech3.parent_resource_id.as_deref(), Some("field-ops"));
    assert!(sim
        .client
        .get_resource("nobody")
        .await
        .unwrap_err()
        .is_not_found());
}

#[tokio::test]
async fn inventory_install_deinstall_and_undo() {
    let sim = TestSim::start().await;
    let (date, items) = sim.today_route("tech1").await;
    let van = sim.client.resource_inventories("tech1").await.unwrap();
    let ont = van
        .iter()
        .find(|i| i.inventory_type == "ONT")
        .unwrap()
        .clone();
    let cable = van
        .iter()
        .find(|i| i.inventory_type == "CAT6_M")
        .unwrap()
        .clone();
    let job = items
        .iter()
        .find(|a| a.activity_type.as_deref() == Some("EXCH"))
        .unwrap()
        .activity_id
        .unwrap();
    let act = |q: Option<f64>| InventoryAction {
        activity_id: Some(job),
        quantity: q,
        ..Default::default()
    };

    // Not started yet: refused.
    assert!(sim
        .client
        .install_from_van("tech1", ont.inventory_id.unwrap(), &act(None))
        .await
        .is_err());
    sim.activate("tech1", &date).await;
    sim.client
        .activity_action(job, "start", json!({}))
        .await
        .unwrap();

    sim.client
        .install_from_van("tech1", ont.inventory_id.unwrap(), &act(None))
        .await
        .unwrap();
    sim.client
        .install_from_van("tech1", cable.inventory_id.unwrap(), &act(Some(20.0)))
        .await
        .unwrap();
    let over = sim
        .client
        .install_from_van("tech1", cable.inventory_id.unwrap(), &act(Some(1000.0)))
        .await;
    assert!(matches!(over, Err(OfscError::Rejected { status: 400, .. })));

    let van_after = sim.client.resource_inventories("tech1").await.unwrap();
    assert!(!van_after.iter().any(|i| i.inventory_id == ont.inventory_id));
    let cable_left = van_after
        .iter()
        .find(|i| i.inventory_type == "CAT6_M")
        .unwrap()
        .quantity
        .unwrap();
    assert_eq!(cable_left, cable.quantity.unwrap() - 20.0);
    let installed = sim
        .client
        .activity_inventories(job, "installedInventories")
        .await
        .unwrap();
    assert_eq!(installed.len(), 2);
    let installed_qty: f64 = installed
        .iter()
        .filter(|i| i.inventory_type == "CAT6_M")
        .filter_map(|i| i.quantity)
        .sum();
    assert_eq!(
        installed_qty + cable_left,
        cable.quantity.unwrap(),
        "cable is conserved"
    );

    let old = sim
        .client
        .activity_inventories(job, "customerInventories")
        .await
        .unwrap();
    let old_id = old[0].inventory_id.unwrap();
    sim.client
        .inventory_action(old_id, "deinstall", &act(None))
        .await
        .unwrap();
    assert_eq!(
        sim.client
            .activity_inventories(job, "deinstalledInventories")
            .await
            .unwrap()
            .len(),
        1
    );
    sim.client
        .inventory_action(old_id, "undoDeinstall", &act(None))
        .await
        .unwrap();
    assert!(sim
        .client
        .activity_inventories(job, "deinstalledInventories")
        .await
        .unwrap()
        .is_empty());
    assert!(sim
        .client
        .inventory_action(old_id, "undoInstall", &act(None))
        .await
        .is_err());

    let ont_id = ont.inventory_id.unwrap();
    sim.client
        .inventory_action(ont_id, "undoInstall", &act(None))
        .await
        .unwrap();
    let ledger = sim.ledger().await;
    let actions: Vec<&str> = ledger.iter().filter_map(|e| e["action"].as_str()).collect();
    for want in ["install", "deinstall", "undoDeinstall", "undoInstall"] {
        assert!(actions.contains(&want), "{actions:?}");
    }
}

#[tokio::test]
async fn file_properties_bytes_metadata_and_the_5_mb_cap() {
    let sim = TestSim::start().await;
    let (_, items) = sim.today_route("tech1").await;
    let id = items[0].activity_id.unwrap();
    let png = bytes::Bytes::from_static(b"\x89PNG\r\n\x1a\nfake");
    sim.client
        .put_file(id, "csign", png.clone(), "image/png", Some("sig.png"))
        .await
        .unwrap();
    let meta = sim.client.file_meta(id, "csign").await.unwrap();
    assert_eq!(
        (meta.name.as_str(), meta.size, meta.media_type.as_str()),
        ("sig.png", png.len() as u64, "image/png")
    );
    assert_eq!(sim.client.get_file(id, "csign").await.unwrap(), png);
    let big = bytes::Bytes::from(vec![0u8; 5 * 1024 * 1024 + 1]);
    assert!(matches!(
        sim.client
            .put_file(id, "XA_PHOTO", big, "image/jpeg", None)
            .await,
        Err(OfscError::Rejected { status: 400, .. })
    ));
    for label in ["photo", "XA_PHOTO_6", "XA_NOTES"] {
        let refused = sim
            .client
            .put_file(id, label, png.clone(), "image/png", None)
            .await
            .unwrap_err();
        assert!(
            refused.is_not_found(),
            "{label}: not a file property of the tenant"
        );
    }
    let resp = sim
        .http
        .delete(sim.url(&format!("/rest/ofscCore/v1/activities/{id}/csign")))
        .basic_auth("fieldsync-demo@demo", Some("demo"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert!(sim
        .client
        .file_meta(id, "csign")
        .await
        .unwrap_err()
        .is_not_found());
}

#[tokio::test]
async fn positions_report_bad_items_by_index_and_store_the_rest() {
    let sim = TestSim::start().await;
    let p = |r: &str| Position {
        resource_id: r.into(),
        time: "2026-01-01T10:00:00-05:00".into(),
        lat: 40.7,
        lng: -74.3,
        acc: Some(8),
    };
    let result = sim
        .client
        .set_positions(&[p("tech1"), p("ghost")])
        .await
        .unwrap();
    assert_eq!((result.items_processed, result.items_failed), (1, 1));
    assert_eq!(result.errors[0]["itemIndex"], 1);
    assert!(result.errors[0]["message"]
        .as_str()
        .unwrap()
        .contains("ghost"));

    // As Oracle's schema has it: `time` ISO-8601 or unix seconds, `acc` an integer; a bad
    // item is that item's error, the good ones are stored.
    let raw: Value = reqwest::Client::new()
        .post(sim.url("/rest/ofscCore/v1/resources/custom-actions/setPositions"))
        .basic_auth("fieldsync-demo@demo", Some("demo"))
        .json(&json!({"items": [
            {"resourceId": "tech1", "time": 1_767_279_600, "lat": 40.7, "lng": -74.3, "acc": 5},
            {"resourceId": "tech1", "time": "yesterday", "lat": 40.7, "lng": -74.3},
            {"resourceId": "tech1", "time": "2026-01-01T10:00:00Z", "lat": 40.7, "lng": -74.3, "acc": 4.5},
            {"resourceId": "tech1", "time": "2026-01-01T10:01:00Z", "lat": 91.0, "lng": -74.3},
            {"resourceId": "tech2", "time": "2026-01-01T10:02:00+01:00", "lat": 48.8, "lng": 2.3},
        ]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(raw["itemsProcessed"], 2, "{raw}");
    assert_eq!(raw["itemsFailed"], 3, "{raw}");
    let indexes: Vec<i64> = raw["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["itemIndex"].as_i64().unwrap())
        .collect();
    assert_eq!(indexes, [1, 2, 3]);
}

#[tokio::test]
async fn events_follow_actions_and_dispatcher_changes() {
    let sim = TestSim::start().await;
    let (date, items) = sim.today_route("tech1").await;
    let sub = sim
        .client
        .subscribe(
            &[
                "activityStarted",
                "activityMoved",
                "activityCanceled",
                "activityCreated",
                "routeActivated",
                "inventoryInstalled",
            ],
            "t",
        )
        .await
        .unwrap();
    sim.activate("tech1", &date).await;
    let ids: Vec<i64> = items.iter().map(|a| a.activity_id.unwrap()).collect();
    sim.client
        .activity_action(ids[0], "start", json!({}))
        .await
        .unwrap();
    sim.control(
        "/__sim/dispatch",
        json!({"action": "cancel", "activityId": ids[1]}),
    )
    .await;
    sim.control(
        "/__sim/dispatch",
        json!({"action": "move", "activityId": ids[2], "resourceId": "tech2", "date": date}),
    )
    .await;
    let added = sim
        .control(
            "/__sim/dispatch",
            json!({"action": "add", "resourceId": "tech1", "date": date, "activityType": "REPAIR"}),
        )
        .await;
    assert_eq!(added["status"], "pending");

    let page = sim
        .client
        .events(&sub.subscription_id, Some(&sub.next_page), 100)
        .await
        .unwrap();
    let kinds: Vec<&str> = page.items.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "routeActivated",
            "activityStarted",
            "activityCanceled",
            "activityMoved",
            "activityCreated"
        ]
    );
    // Oracle's shape: where it was in the details, where it went in the changes, and
    // only the move's reason and checks in moveDetails.
    let moved = &page.items[3];
    assert_eq!(
        moved.activity_details.as_ref().unwrap()["resourceId"],
        "tech1"
    );
    assert_eq!(
        moved.activity_changes.as_ref().unwrap()["resourceId"],
        "tech2"
    );
    let how = moved.move_details.as_ref().unwrap().as_object().unwrap();
    assert_eq!(how["moveCondition"], "resourceToResource");
    assert!(how.keys().all(|k| [
        "moveReason",
        "workZoneMismatch",
        "workSkillMismatch",
        "moveCondition"
    ]
    .contains(&k.as_str())));
    assert!(page.items[0].route_changes.as_ref().unwrap()["activated"].is_string());
    let again = sim
        .client
        .events(&sub.subscription_id, Some(&page.next_page), 100)
        .await
        .unwrap();
    assert!(!again.found && again.items.is_empty());
    assert_eq!(
        again.next_page, page.next_page,
        "nextPage stops changing when drained"
    );

    sim.control("/__sim/subscriptions/expire", json!({})).await;
    assert!(sim
        .client
        .events(&sub.subscription_id, Some(&page.next_page), 100)
        .await
        .unwrap_err()
        .is_not_found());
}

#[tokio::test]
async fn token_expiry_is_401_with_the_error_body_and_the_connector_refetches() {
    let sim = TestSim::start().await;
    let token = sim.client.fetch_token().await.unwrap();
    assert_eq!(
        (token.token_type.as_str(), token.expires_in),
        ("bearer", 3600)
    );
    sim.client.get_resource("tech1").await.unwrap();
    sim.control("/__sim/tokens/expire", json!({})).await;
    let raw = sim
        .http
        .get(sim.url("/rest/ofscCore/v1/resources/tech1"))
        .bearer_auth(&token.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 401);
    let body: Value = raw.json().await.unwrap();
    assert_eq!(body["status"], "401");
    // The connector's cached token is dead too: it must fetch a new one and succeed.
    sim.client.get_resource("tech1").await.unwrap();

    sim.faults(json!({"tokenTtlSecs": 1})).await;
    sim.client.invalidate_token().await;
    sim.client.get_resource("tech1").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    sim.client.get_resource("tech1").await.unwrap();
}

#[tokio::test]
async fn wrong_credentials_are_refused() {
    let sim = TestSim::start().await;
    let resp = sim
        .http
        .get(sim.url("/rest/ofscCore/v1/resources"))
        .basic_auth("fieldsync-demo@demo", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let token = sim
        .http
        .post(sim.url("/rest/oauthTokenService/v2/token"))
        .basic_auth("other@demo", Some("demo"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), 401);
    let no_auth = sim
        .http
        .get(sim.url("/rest/ofscCore/v1/resources"))
        .send()
        .await
        .unwrap();
    assert_eq!(no_auth.status(), 401);
}

#[tokio::test]
async fn inventory_lists_come_in_pages_of_100_and_the_connector_reads_them_all() {
    let sim = TestSim::start().await;
    let before = sim
        .client
        .resource_inventories("tech1")
        .await
        .unwrap()
        .len();
    for n in 0..230 {
        sim.control(
            "/__sim/dispatch",
            json!({"action": "restock", "resourceId": "tech1", "inventoryType": format!("PART_{n}"), "quantity": 1}),
        )
        .await;
    }
    let total = before + 230;
    // OFSC's paging: at most 100 a page (0 or more means 100), from `offset`.
    let page = |query: &'static str| {
        let req = sim
            .http
            .get(sim.url(&format!(
                "/rest/ofscCore/v1/resources/tech1/inventories{query}"
            )))
            .basic_auth("fieldsync-demo@demo", Some("demo"));
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let first = page("").await;
    assert_eq!(first["items"].as_array().unwrap().len(), 100);
    // Oracle's schema gives these lists `items` alone: the end is a short page.
    assert_eq!(first.as_object().unwrap().len(), 1, "{first}");
    assert_eq!(
        page("?limit=0").await["items"].as_array().unwrap().len(),
        100
    );
    assert_eq!(
        page("?limit=500").await["items"].as_array().unwrap().len(),
        100
    );
    let last = page("?offset=200").await;
    assert_eq!(last["items"].as_array().unwrap().len(), total - 200);
    // The connector follows the pages to the end: a read-back counts every item.
    let van = sim.client.resource_inventories("tech1").await.unwrap();
    assert_eq!(van.len(), total);
    let mut ids: Vec<i64> = van.iter().filter_map(|i| i.inventory_id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), total, "no item twice, none missed");
}

/// A route read answers the fields asked for in `activityFields`, and without it only times
/// and zones, as Oracle documents; the connector asks for every field it reads.
#[tokio::test]
async fn route_reads_answer_the_activity_fields_asked_for() {
    let sim = TestSim::start().await;
    let (date, items) = sim.today_route("tech1").await;
    assert!(
        items
            .iter()
            .all(|a| a.appt_number.is_some() && a.customer_name.is_some() && a.status.is_some()),
        "the connector asked for what it shows"
    );
    let read = |query: &'static str| {
        let path = format!("/rest/ofscCore/v1/resources/tech1/routes/{date}{query}");
        let sim = &sim;
        async move {
            let (_, body) = sim.get_json(&path).await;
            let first = body["items"][0].as_object().unwrap().clone();
            let mut keys: Vec<String> = first.keys().cloned().collect();
            keys.sort();
            keys
        }
    };
    let plain = read("").await;
    assert!(plain.contains(&"startTime".to_string()), "{plain:?}");
    assert!(!plain.contains(&"customerName".to_string()), "{plain:?}");
    assert_eq!(
        read("?activityFields=activityId,status,apptNumber").await,
        ["activityId", "apptNumber", "status"]
    );
}

/// The simulator's reading of Oracle's rules for undated work, moves, page sizes, filters
/// and error bodies.
#[tokio::test]
async fn undated_work_moves_pages_filters_and_errors_as_oracle_documents() {
    let sim = TestSim::start().await;
    let (date, items) = sim.today_route("tech2").await;
    let undated = sim
        .client
        .create_activity(&Activity {
            activity_type: Some("REPAIR".into()),
            resource_id: Some("tech2".into()),
            customer_name: Some("Whenever".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .activity_id
        .unwrap();
    let get = |path: String| {
        let sim = &sim;
        async move { sim.get_json(&format!("/rest/ofscCore/v1{path}")).await }
    };
    let ids = |body: &Value| -> Vec<i64> {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["activityId"].as_i64().unwrap())
            .collect()
    };
    // includeNonScheduled with dates: the range and the undated work together.
    let (code, both) = get(format!(
        "/activities?resources=tech2&dateFrom={date}&dateTo={date}&includeNonScheduled=true&limit=1000"
    ))
    .await;
    assert_eq!(code, 200, "{both}");
    let listed = ids(&both);
    assert!(
        listed.contains(&undated) && listed.len() == items.len() + 1,
        "{listed:?}"
    );
    let (_, dated) = get(format!(
        "/activities?resources=tech2&dateFrom={date}&dateTo={date}&limit=1000"
    ))
    .await;
    assert!(!ids(&dated).contains(&undated));
    // q: in, not and comparisons.
    let (code, started) = get(format!(
        "/activities?resources=tech2&dateFrom={date}&dateTo={date}&q=not%20status%20in%20%5B'started'%5D%20and%20duration%20%3E%3D%20'0'"
    ))
    .await;
    assert_eq!((code, ids(&started).len()), (200, items.len()), "{started}");
    // The nonScheduled route, and limit=0 as the largest page.
    let (code, ns) =
        get("/resources/tech2/routes/nonScheduled?activityFields=activityId".into()).await;
    assert_eq!((code, ids(&ns)), (200, vec![undated]), "{ns}");
    let (code, page) = get(format!("/resources/tech2/routes/{date}?limit=0")).await;
    assert_eq!((code, page["limit"].as_i64()), (200, Some(100)), "{page}");
    // A move to a past date is refused.
    let yesterday = (chrono::NaiveDate::parse_from_str(&date, "%Y-%m-%d").unwrap()
        - chrono::Days::new(1))
    .to_string();
    let id = items[1].activity_id.unwrap();
    assert!(matches!(
        sim.client.move_activity(id, "tech2", &yesterday).await,
        Err(OfscError::Rejected { status: 400, .. })
    ));
    // Errors carry RFC 2616's section as their type, and the status as a string.
    let (code, missing) = get("/activities/1".into()).await;
    assert_eq!(code, 404);
    assert_eq!(
        missing["type"],
        "http://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#sec10.4.5"
    );
    assert_eq!(missing["status"], "404");
}
