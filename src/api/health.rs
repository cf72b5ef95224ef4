//! Liveness and readiness probes.

use crate::state::AppState;
use actix_web::{web, HttpResponse};
use serde_json::json;

/// The process is up and serving.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Ready when sled answers and OFSC has been reached since start. A later OFSC outage is
/// reported as `degraded` but stays 200: writes are still accepted durably and replayed later,
/// and pulling every instance out of a load balancer would only stop devices from syncing.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let sled = state.store_check();
    let ofsc = state.ofsc_health.snapshot();
    let ready = sled.is_ok() && ofsc.reached;
    let body = json!({
        "status": if !ready { "unavailable" } else if ofsc.ok { "ready" } else { "degraded" },
        "sled": match &sled { Ok(()) => "ok".to_string(), Err(e) => e.clone() },
        "ofsc": {
            "baseUrl": state.ofsc.base_url(),
            "state": if ofsc.ok { "ok" } else if ofsc.reached { "unreachable" } else { "not-yet-reached" },
            "lastOkAt": ofsc.last_ok_at,
            "lastError": ofsc.last_error,
        },
    });
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
