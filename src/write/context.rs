//! What every command does around its own rule: find the activity a write names and its
//! route, take the route's lane, date the write, fingerprint it for idempotency, keep the
//! device's view after it, and make it durable.

use super::outbox::{self, Enqueued, LaneGuard, Stage, Submitter};
use super::WriteError;
use crate::auth::policy;
use crate::auth::Principal;
use crate::ofsc::wire::Activity;
use crate::read::query::{self, ReadError};
use crate::read::view::DeviceRoute;
use crate::state::AppState;
use crate::store::StoreError;
use chrono::{DateTime, FixedOffset};
use serde::Serialize;

/// How a synced write's time was taken: the device's raw clock and its corrected reading.
#[derive(Debug, Clone, Copy)]
pub struct SyncTime {
    pub captured_at: DateTime<FixedOffset>,
    pub corrected: DateTime<FixedOffset>,
}

/// An activity a write is for, with its route and its resource's clock.
pub struct Located {
    /// OFSC's id once known, else the provisional one.
    pub id: i64,
    pub activity: Activity,
    pub resource: String,
    pub date: String,
    pub zone: Option<String>,
    /// Now, in the resource's zone.
    pub now: DateTime<FixedOffset>,
}

/// Finds the activity a write names and checks the caller may see it (else: not found).
pub async fn locate(state: &AppState, who: &Principal, raw: i64) -> Result<Located, WriteError> {
    let id = outbox::resolve_activity(state.store.as_ref(), raw)?;
    let a = query::find_activity(state, id, Some(&who.username)).await?;
    let resource = a.resource_id.clone().unwrap_or_default();
    policy::may_see(who, &resource, state.directory.as_ref())?;
    let date = a.date.clone().ok_or_else(|| WriteError::Transition {
        detail: "the activity is not scheduled on a route".into(),
        allowed: vec![],
    })?;
    let (zone, tz) = query::resource_zone(state, &resource, a.resource_time_zone_iana.clone());
    let now = chrono::Utc::now().with_timezone(&tz).fixed_offset();
    Ok(Located {
        id,
        activity: a,
        resource,
        date,
        zone,
        now,
    })
}

/// The time a write is recorded at. A synced op's device clock can be hours off: its
/// corrected time never lies in the future and never goes before the route's previous action.
pub fn write_time(
    from_sync: Option<SyncTime>,
    asked: Option<DateTime<FixedOffset>>,
    now: DateTime<FixedOffset>,
    last: Option<DateTime<FixedOffset>>,
) -> DateTime<FixedOffset> {
    match from_sync {
        Some(t) => {
            let capped = t.corrected.min(now);
            last.map_or(capped, |last| capped.max(last))
        }
        None => asked.unwrap_or(now),
    }
}

/// The route's lane, held for a write from validation to enqueue: a batch's stage holds it
/// across the batch's ops, a single write takes it for itself.
pub async fn lane_guard(
    state: &AppState,
    submitter: &Submitter,
    resource: &str,
    date: &str,
) -> Result<LaneGuard, WriteError> {
    let lane_lock = state.lanes.lock(resource, date);
    Ok(match &submitter.stage {
        Some(stage) => {
            stage
                .lane(state.store.as_ref(), lane_lock, resource, date)
                .await?
        }
        None => LaneGuard::Own(lane_lock.lock_owned().await),
    })
}

/// [`query::device_route_of`] for a staged write: a view rebuilt from sled would miss the
/// batch's staged ops, so they are committed first.
///
/// The kept view is taken in the same step as the check. Checking first and reading again
/// later lost staged ops: the replayer or an OFSC event can move the route's version in
/// between (neither takes the lane lock), and the second read rebuilt the view from sled
/// without the batch's uncommitted ops, so a later op of the batch was judged against the
/// route as it was before them.
pub async fn staged_route_of(
    state: &AppState,
    stage: &Stage,
    resource: &str,
    date: &str,
) -> Result<DeviceRoute, ReadError> {
    if let Ok(dev) = query::kept_view(state, resource, date) {
        return Ok(dev);
    }
    stage.commit(state.store.as_ref())?;
    query::device_route_of(state, resource, date).await
}

/// After an accepted write: the route changed (new version), and the view the write produced
/// is kept for the next one. The write is already in sled: a failure here only costs the
/// kept view.
pub fn advance_view(
    state: &AppState,
    resource: &str,
    date: &str,
    before: &DeviceRoute,
    result: &Enqueued,
) {
    if let Enqueued::Accepted { ops, .. } = result {
        let (store, cache) = (state.store.as_ref(), &state.cache);
        if let Err(e) = cache
            .views
            .advance(store, cache, resource, date, before, ops)
        {
            tracing::warn!(%resource, %date, error = %e, "device view not kept");
        }
    }
}

/// Who submits a single write (`action`, for the audit trail), under its `Idempotency-Key`,
/// fingerprinted by `request`.
pub fn submitter(
    who: &Principal,
    action: &'static str,
    key: String,
    request: &impl Serialize,
) -> Result<Submitter, WriteError> {
    let bytes = serde_json::to_vec(request).map_err(|e| WriteError::Internal(e.to_string()))?;
    let sha = hex::encode(crate::store::record::sha256(&bytes));
    Ok(Submitter::of(who, action, key, sha, None))
}

/// An accepted write is flushed (then it may be acknowledged) and the replayer woken.
pub async fn settle(state: &AppState, result: &Enqueued) -> Result<(), StoreError> {
    if let Enqueued::Accepted { .. } = result {
        state.commit.flush().await?;
        state.replayer.wake();
    }
    Ok(())
}
