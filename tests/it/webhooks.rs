//! Outbound webhooks end to end: a receiver on loopback that fails at first, then verifies
//! signatures and de-duplicates; the built binary is killed with SIGKILL in between, and
//! every event still arrives (failed deliveries survive and are redelivered by an admin).

use crate::helpers::{free_port, spawn, wait_up};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SECRET: &str = "whsec_test_1_0123456789";

#[derive(Default)]
struct Receiver {
    accepting: AtomicBool,
    refused: AtomicUsize,
    bad_signatures: AtomicUsize,
    /// Event id → type, once per id (duplicates are counted, not stored twice).
    events: Mutex<BTreeMap<String, String>>,
    duplicates: AtomicUsize,
}

async fn hook(req: HttpRequest, body: web::Bytes, r: web::Data<Arc<Receiver>>) -> HttpResponse {
    if !r.accepting.load(Ordering::SeqCst) {
        r.refused.fetch_add(1, Ordering::SeqCst);
        return HttpResponse::ServiceUnavailable().finish();
    }
    let header = req
        .headers()
        .get("fieldsync-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let now = chrono::Utc::now().timestamp();
    if !fieldsync::features::webhooks::verify(SECRET, header, &body, now, 300) {
        r.bad_signatures.fetch_add(1, Ordering::SeqCst);
        return HttpResponse::BadRequest().finish();
    }
    let v: Value = serde_json::from_slice(&body).unwrap();
    let id = v["id"].as_str().unwrap().to_string();
    let event_header = req.headers().get("fieldsync-event-id");
    assert_eq!(
        event_header.and_then(|v| v.to_str().ok()),
        Some(id.as_str())
    );
    let fresh = r
        .events
        .lock()
        .unwrap()
        .insert(id, v["type"].as_str().unwrap().to_string())
        .is_none();
    if !fresh {
        r.duplicates.fetch_add(1, Ordering::SeqCst);
    }
    HttpResponse::Ok().finish()
}

fn types(r: &Receiver) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for t in r.events.lock().unwrap().values() {
        *out.entry(t.clone()).or_insert(0) += 1;
    }
    out
}

async fn login(http: &reqwest::Client, base: &str, user: &str) -> String {
    let body: Value = http
        .post(format!("{base}/sessions"))
        .json(&json!({"username": user, "password": "demo", "deviceId": format!("{user}-phone")}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["accessToken"].as_str().unwrap().to_string()
}

async fn until(what: &str, within: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn get(http: &reqwest::Client, url: String, token: &str) -> Value {
    http.get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Runs the receiver on a loopback port; returns the port.
fn serve_receiver(receiver: Arc<Receiver>) -> u16 {
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(receiver.clone()))
            .route("/hook", web::post().to(hook))
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let port = server.addrs()[0].port();
    tokio::spawn(server.run());
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhooks_survive_failures_and_a_kill_9_and_arrive_signed() {
    let receiver = Arc::new(Receiver::default());
    let hook_port = serve_receiver(receiver.clone());

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("fieldsync.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nofsc_probe_secs = 1\n\n[webhooks]\nbase_backoff_ms = 100\nmax_backoff_ms = 300\nmax_attempts = 3\n\n\
             [[webhooks.endpoints]]\nurl = \"http://127.0.0.1:{hook_port}/hook\"\nsecret = \"{SECRET}\"\n"
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let serve = || {
        spawn(
            &[
                "--config",
                config.to_str().unwrap(),
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
                data.to_str().unwrap(),
            ],
            &[],
        )
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let first = serve();
    wait_up(&http, &format!("{base}/readyz")).await;

    // A technician works a stop while the receiver refuses everything.
    let tech = login(&http, &base, "tech1").await;
    let snapshot = get(&http, format!("{base}/sync/pull"), &tech).await;
    let stop = snapshot["snapshot"]["stops"][0]["activityId"]
        .as_i64()
        .unwrap();
    let mut ops = Vec::new();
    for status in ["started", "completed"] {
        let resp: Value = http
            .patch(format!("{base}/activities/{stop}/status"))
            .bearer_auth(&tech)
            .header("Idempotency-Key", status)
            .json(&json!({ "status": status }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ops.push(resp["opId"].as_str().unwrap().to_string());
    }
    // Replay is not held back by the failing receiver.
    until(
        "the ops to be applied",
        Duration::from_secs(30),
        async || {
            let mut all = true;
            for op in &ops {
                all &= get(&http, format!("{base}/ops/{op}"), &tech).await["state"] == "applied";
            }
            all
        },
    )
    .await;
    let admin = login(&http, &base, "admin").await;
    // activate + start + complete applied, and the approval requested: four deliveries fail.
    until(
        "the deliveries to fail",
        Duration::from_secs(30),
        async || {
            let failed = get(
                &http,
                format!("{base}/admin/webhooks/deliveries?state=failed"),
                &admin,
            )
            .await;
            failed["items"].as_array().unwrap().len() >= 4
        },
    )
    .await;
    assert!(receiver.refused.load(Ordering::SeqCst) >= 4);
    drop(first); // SIGKILL

    receiver.accepting.store(true, Ordering::SeqCst);
    let _second = serve();
    wait_up(&http, &format!("{base}/readyz")).await;
    let admin = login(&http, &base, "admin").await;
    let failed = get(
        &http,
        format!("{base}/admin/webhooks/deliveries?state=failed"),
        &admin,
    )
    .await;
    let failed = failed["items"].as_array().unwrap().clone();
    // A pass's outcomes are flushed when it ends: a kill just after may leave the last ones
    // pending, which are then simply delivered again.
    assert!(
        !failed.is_empty(),
        "failed deliveries survive the restart: {failed:?}"
    );
    for d in &failed {
        let id = d["deliveryId"].as_str().unwrap();
        let resp = http
            .post(format!("{base}/admin/webhooks/deliveries/{id}/redeliver"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202);
    }
    until(
        "the redelivered events",
        Duration::from_secs(30),
        async || {
            let t = types(&receiver);
            t.get("op.applied").copied().unwrap_or(0) >= 3 && t.contains_key("approval.requested")
        },
    )
    .await;

    // After the restart, new events flow without help.
    let sup = login(&http, &base, "super1").await;
    let pending = get(&http, format!("{base}/approvals?status=pending"), &sup).await;
    let approval = pending["items"][0]["approvalId"]
        .as_str()
        .unwrap()
        .to_string();
    let resp = http
        .post(format!("{base}/approvals/{approval}/decision"))
        .bearer_auth(&sup)
        .header("Idempotency-Key", "d")
        .json(&json!({"decision": "approve", "comment": "fine"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    until(
        "the decision's events",
        Duration::from_secs(30),
        async || {
            let t = types(&receiver);
            t.contains_key("approval.decided") && t.get("op.applied").copied().unwrap_or(0) >= 4
        },
    )
    .await;
    assert_eq!(receiver.bad_signatures.load(Ordering::SeqCst), 0);
    let t = types(&receiver);
    assert_eq!(t.get("approval.requested"), Some(&1), "{t:?}");
    assert_eq!(t.get("approval.decided"), Some(&1), "{t:?}");
    let ids: BTreeSet<String> = receiver.events.lock().unwrap().keys().cloned().collect();
    assert!(ids.iter().all(|i| i.starts_with("evt_")));
}

/// An op that dies (OFSC failing on every attempt) is announced as `op.dead`, signed, to an
/// endpoint that listens to `op.*` events only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_op_is_announced() {
    let receiver = Arc::new(Receiver::default());
    receiver.accepting.store(true, Ordering::SeqCst);
    let hook_port = serve_receiver(receiver.clone());
    let stack = crate::helpers::Stack::start_with(|s| {
        s.replay.max_attempts = 2;
        s.webhooks.base_backoff_ms = 50;
        s.webhooks.endpoints = vec![fieldsync::config::WebhookEndpoint {
            url: format!("http://127.0.0.1:{hook_port}/hook"),
            secret: fieldsync::config::Secret::new(SECRET),
            events: vec!["op.applied".into(), "op.rejected".into(), "op.dead".into()],
        }];
    })
    .await;
    let s = stack.app.login("tech2").await;
    let date = stack.sim.today_route("tech2").await.0;
    let route = stack.route(&s, &date).await;
    let id = route["stops"][0]["activityId"].as_i64().unwrap();
    stack.sim.faults(json!({"rate5xx": 1.0})).await;
    let (_, a) = stack.status(&s, id, "enroute", "dies").await;
    let op = a["opId"].as_str().unwrap().to_string();
    let done = stack.settle(&s, &[op], Duration::from_secs(20)).await;
    assert_eq!(done[0]["state"], "dead", "{done:?}");
    until("op.dead", Duration::from_secs(20), async || {
        types(&receiver).get("op.dead").copied().unwrap_or(0) >= 1
    })
    .await;
    let t = types(&receiver);
    assert!(!t.contains_key("approval.requested"), "{t:?}");
    assert_eq!(receiver.bad_signatures.load(Ordering::SeqCst), 0);
}
