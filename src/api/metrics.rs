//! `GET /metrics`: Prometheus text format. Queue gauges come from the live op counts.
//! Optionally behind a bearer token (`server.metrics_token`).

use super::ApiError;
use crate::state::AppState;
use crate::write::outbox;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use subtle::ConstantTimeEq;

/// With a configured token, the scrape must present it (compared in constant time).
fn allowed(state: &AppState, req: &HttpRequest) -> Result<(), ApiError> {
    let Some(token) = &state.metrics_token else {
        return Ok(());
    };
    let given = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if bool::from(given.as_bytes().ct_eq(token.expose().as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized {
            code: "invalid-token",
            detail: "the metrics scrape needs the configured bearer token".into(),
        })
    }
}

pub async fn metrics(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    allowed(&state, &req)?;
    let store = state.store.as_ref();
    for (s, n) in outbox::counts_by_state(store, &|_| true) {
        metrics::gauge!("fieldsync_ops", "state" => s.name()).set(n as f64);
    }
    if let Ok(oldest) = outbox::oldest_open(store, &|_| true) {
        let age = oldest.map_or(0.0, |at| {
            (Utc::now() - at).num_milliseconds().max(0) as f64 / 1000.0
        });
        metrics::gauge!("fieldsync_oldest_queued_age_seconds").set(age);
    }
    if let Ok(n) = crate::store::StorageExt::quarantined_count(state.store.as_ref()) {
        metrics::gauge!("fieldsync_quarantined_records").set(n as f64);
    }
    // sled 0.34 keeps the space of removed records until `fieldsync rewrite`: this is what
    // tells an operator one is due.
    if let Ok(n) = crate::store::Storage::disk_bytes(store) {
        metrics::gauge!("fieldsync_store_disk_bytes").set(n as f64);
    }
    // Index keys held in memory until the next checkpoint: it grows only while checkpoints
    // fail (their errors are logged).
    metrics::gauge!("fieldsync_index_keys_unchecked")
        .set(crate::store::Storage::unchecked(store) as f64);
    metrics::gauge!("fieldsync_ofsc_up").set(if state.ofsc_health.snapshot().ok {
        1.0
    } else {
        0.0
    });
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(crate::telemetry::prometheus().render()))
}
