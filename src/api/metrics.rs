//! `GET /metrics`: Prometheus text format. Queue gauges come from the live op counts.

use crate::outbox;
use crate::startup::AppState;
use actix_web::{web, HttpResponse};
use chrono::Utc;

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
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
    metrics::gauge!("fieldsync_ofsc_up").set(if state.ofsc_health.snapshot().ok {
        1.0
    } else {
        0.0
    });
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(crate::telemetry::prometheus().render())
}
