//! `GET /metrics`: Prometheus text format. Queue gauges are computed at scrape time.

use crate::outbox::{self, OpState};
use crate::startup::AppState;
use actix_web::{web, HttpResponse};
use chrono::Utc;

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    if let Ok(ops) = outbox::all_ops(state.store.as_ref()) {
        for s in OpState::ALL {
            let n = ops.iter().filter(|o| o.state == s).count();
            metrics::gauge!("fieldsync_ops", "state" => s.name()).set(n as f64);
        }
        let oldest = ops
            .iter()
            .filter(|o| !o.state.is_final())
            .map(|o| (Utc::now() - o.created_at).num_milliseconds() as f64 / 1000.0)
            .fold(0.0, f64::max);
        metrics::gauge!("fieldsync_oldest_queued_age_seconds").set(oldest);
    }
    if let Ok(q) = crate::store::StorageExt::quarantined(state.store.as_ref(), usize::MAX) {
        metrics::gauge!("fieldsync_quarantined_records").set(q.len() as f64);
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
