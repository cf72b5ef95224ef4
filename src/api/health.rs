//! Liveness and readiness probes.

use crate::state::AppState;
use actix_web::{web, HttpResponse};
use serde_json::json;

/// The process is up and serving.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Ready when sled answers and OFSC has been reached since start. The answer names states,
/// not causes: the probe is unauthenticated, and upstream URLs and error text are for the
/// logs (the OFSC probe logs each failure). A later OFSC outage is
/// reported as `degraded` but stays 200: writes are still accepted durably and replayed later,
/// and pulling every instance out of a load balancer would only stop devices from syncing.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let sled = state.store_check();
    if let Err(e) = &sled {
        tracing::error!(error = %e, "readiness: sled check failed");
    }
    let ofsc = state.ofsc_health.snapshot();
    let ready = sled.is_ok() && ofsc.reached;
    let body = json!({
        "status": if !ready { "unavailable" } else if ofsc.ok { "ready" } else { "degraded" },
        "sled": match &sled { Ok(()) => "ok", Err(_) => "error" },
        "ofsc": {
            "state": if ofsc.ok { "ok" } else if ofsc.reached { "unreachable" } else { "not-yet-reached" },
            "lastOkAt": ofsc.last_ok_at,
        },
    });
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
