//! The fixes command: GPS pings (from `POST /locations` or a sync `location` op) queued in
//! the lane of the technician's route of the day, replayed with OFSC's `setPositions`.

use super::context::SyncTime;
use super::outbox::{self, Enqueued, Fix, NewOp, OpKind, Submitter};
use super::WriteError;
use crate::auth::Principal;
use crate::read::query;
use crate::state::AppState;
use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// At most this many fixes per request (OFSC takes 300 per call).
pub const MAX_FIXES: usize = 300;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FixBody {
    pub lat: f64,
    pub lng: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    /// When the device took it; in a sync op, the op's `capturedAt` is used instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub captured_at: Option<DateTime<FixedOffset>>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocationsBody {
    pub items: Vec<FixBody>,
}

fn bad(detail: impl Into<String>) -> WriteError {
    WriteError::invalid("invalid-location", detail)
}

/// Checks one fix and dates it: never in the future (a device clock may be ahead).
fn fix_of(
    b: &FixBody,
    time: DateTime<FixedOffset>,
    now: DateTime<FixedOffset>,
) -> Result<Fix, WriteError> {
    let ok = (-90.0..=90.0).contains(&b.lat)
        && (-180.0..=180.0).contains(&b.lng)
        && b.accuracy.is_none_or(|a| a >= 0.0 && a.is_finite());
    if !ok {
        return Err(bad("lat must be within ±90, lng within ±180, accuracy ≥ 0"));
    }
    Ok(Fix {
        lat: b.lat,
        lng: b.lng,
        accuracy: b.accuracy,
        time: time.min(now),
    })
}

/// Queues fixes for the caller's own resource (from the endpoint or a sync op); the caller
/// flushes.
pub async fn submit_fixes(
    state: &AppState,
    who: &Principal,
    items: Vec<FixBody>,
    from_sync: Option<SyncTime>,
    submitter: Submitter,
) -> Result<Enqueued, WriteError> {
    let resource = who
        .resource_id
        .clone()
        .ok_or_else(|| WriteError::Forbidden("GPS pings without a resource of one's own".into()))?;
    if items.is_empty() || items.len() > MAX_FIXES {
        return Err(bad(format!("items must hold 1 to {MAX_FIXES} fixes")));
    }
    let (zone, tz) = query::resource_zone(state, &resource, None);
    let now = Utc::now().with_timezone(&tz).fixed_offset();
    let date = now.date_naive().to_string();
    let fixes = items
        .iter()
        .map(|b| {
            let time = match from_sync {
                Some(t) => t.corrected,
                None => {
                    let t = b.captured_at.unwrap_or(now);
                    crate::domain::times::check(t, Utc::now(), &state.time_window)?;
                    t
                }
            };
            fix_of(b, time, now)
        })
        .collect::<Result<Vec<_>, WriteError>>()?;
    let time = fixes.iter().map(|f| f.time).max().unwrap_or(now);
    // Like every write on a route: under its lane lock, so the lane's order is the order
    // the writes were accepted in, and a view validated under the lock stays true.
    let lane_lock = state.lanes.lock(&resource, &date);
    let _guard = lane_lock.lock().await;
    if let Some(answer) = outbox::idempotent_answer(state.store.as_ref(), &submitter)? {
        return Ok(answer);
    }
    let op = NewOp {
        resource_id: resource.clone(),
        date: date.clone(),
        activity_id: None,
        kind: OpKind::Location { fixes },
        time,
        zone,
        captured_at: from_sync.map(|t| t.captured_at),
    };
    let result = outbox::enqueue(
        state.store.as_ref(),
        &submitter,
        vec![op],
        |ops| json!({"opId": ops.last().map(|o| o.id.clone()), "state": "queued", "fixes": items.len()}),
    )?;
    // The route's queue grew: its pending count and kept view change.
    if let Enqueued::Accepted { .. } = &result {
        state.cache.renders.touch(&resource, &date);
    }
    Ok(result)
}
