//! Activities: `GET /activities/{activityId}` and `PATCH /activities/{activityId}/status`.

use super::{present, ApiError};
use crate::approvals;
use crate::auth::policy::{self, Function};
use crate::auth::Principal;
use crate::domain::lifecycle::{self, DeviceStatus};
use crate::domain::times;
use crate::ofsc::time as ofsc_time;
use crate::ofsc::wire::Activity;
use crate::outbox::{self, Enqueued, Location, NewOp, OpKind, Submitter};
use crate::state::AppState;
use crate::store::Storage;
use crate::view::{self, DeviceRoute};
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Parses an activity id from the path; anything else names no object.
pub fn activity_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id != 0)
        .ok_or(ApiError::NotFound)
}

/// The activity from the cache, or read through from OFSC. A provisional id (a create not
/// yet applied) resolves to OFSC's id once it is, and to the queued create before.
pub async fn find_activity(
    state: &AppState,
    id: i64,
    user: Option<&str>,
) -> Result<Activity, ApiError> {
    let id = outbox::resolve_activity(state.store.as_ref(), id)?;
    if id < 0 {
        return outbox::provisional_activity(state.store.as_ref(), id)?
            .map(|(_, a)| a)
            .ok_or(ApiError::NotFound);
    }
    if let Some(c) = state.cache.activity(id)? {
        return Ok(c.activity);
    }
    state.cache.charge(user)?;
    match state.ofsc.get_activity(id).await {
        Ok(a) => {
            state.cache.put_activity(&a)?;
            Ok(a)
        }
        Err(e) if e.status().is_some_and(|s| s == 404 || s == 400) => Err(ApiError::NotFound),
        Err(e) => Err(ApiError::OfscUnavailable(e.to_string())),
    }
}

/// Makes sure the route is cached, fetching it once when absent (charged to `user`'s
/// budget; `None` for the checks a write makes).
pub async fn ensure_route(
    state: &AppState,
    resource: &str,
    date: &str,
    user: Option<&str>,
) -> Result<(), ApiError> {
    if state.cache.has_route(resource, date)? {
        return Ok(());
    }
    state.cache.charge(user)?;
    state.cache.fetch_route(resource, date).await?;
    Ok(())
}

/// The device's view of a route and its activities, fetching the route first when it is
/// not cached.
pub async fn device_route_with_activities(
    state: &AppState,
    resource: &str,
    date: &str,
    user: Option<&str>,
) -> Result<(DeviceRoute, Vec<Activity>), ApiError> {
    ensure_route(state, resource, date, user).await?;
    view::device_route(state.store.as_ref(), &state.cache, resource, date)?
        .ok_or_else(|| ApiError::OfscUnavailable("the route is not cached".into()))
}

/// The device's view of a route: the one kept in memory while the route is unchanged, else
/// built (and kept).
pub async fn device_route_of(
    state: &AppState,
    resource: &str,
    date: &str,
) -> Result<DeviceRoute, ApiError> {
    let views = &state.cache.views;
    let tag = views.tag(state.store.as_ref(), &state.cache, resource, date);
    if let Some(dev) = views.get(resource, date, tag) {
        return Ok(dev);
    }
    let (mut dev, _) = device_route_with_activities(state, resource, date, None).await?;
    dev.tag = tag;
    views.put(resource, date, dev.clone());
    Ok(dev)
}

/// [`device_route_of`] for a staged write: a view rebuilt from sled would miss the batch's
/// staged ops, so they are committed first.
///
/// The kept view is taken in the same step as the check. Checking first and reading again
/// later lost staged ops: the replayer or an OFSC event can move the route's version in
/// between (neither takes the lane lock), and the second read rebuilt the view from sled
/// without the batch's uncommitted ops, so a later op of the batch was judged against the
/// route as it was before them.
async fn staged_route_of(
    state: &AppState,
    stage: &outbox::Stage,
    resource: &str,
    date: &str,
) -> Result<DeviceRoute, ApiError> {
    let views = &state.cache.views;
    let tag = views.tag(state.store.as_ref(), &state.cache, resource, date);
    if let Some(dev) = views.get(resource, date, tag) {
        return Ok(dev);
    }
    stage.commit(state.store.as_ref())?;
    device_route_of(state, resource, date).await
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

pub async fn get_one(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    policy::may_use(&who, Function::ReadField)?;
    let id = outbox::resolve_activity(state.store.as_ref(), activity_id(&path)?)?;
    let a = find_activity(&state, id, Some(&who.username)).await?;
    policy::may_see(
        &who,
        a.resource_id.as_deref().unwrap_or(""),
        state.directory.as_ref(),
    )?;
    let route = match (a.resource_id.as_deref(), a.date.as_deref()) {
        (Some(r), Some(d)) => Some(device_route_of(&state, r, d).await?),
        _ => None,
    };
    Ok(HttpResponse::Ok().json(present::activity(&a, route.as_ref())))
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatusBody {
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<DateTime<FixedOffset>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

fn bad(code: &'static str, detail: impl Into<String>) -> ApiError {
    ApiError::BadRequest {
        code,
        detail: detail.into(),
    }
}

/// The `Idempotency-Key` header: required on writes, 1-255 visible characters.
pub fn idempotency_key(req: &HttpRequest) -> Result<String, ApiError> {
    let key = req
        .headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            bad(
                "idempotency-key-required",
                "writes need an Idempotency-Key header",
            )
        })?;
    if key.is_empty() || key.len() > 255 || !key.chars().all(|c| c.is_ascii_graphic()) {
        return Err(bad(
            "invalid-idempotency-key",
            "Idempotency-Key must be 1-255 visible ASCII characters",
        ));
    }
    Ok(key.to_string())
}

fn validate(body: &StatusBody) -> Result<DeviceStatus, ApiError> {
    let status = DeviceStatus::parse(&body.status).ok_or_else(|| {
        bad(
            "invalid-status",
            format!("unknown status {:?}", body.status),
        )
    })?;
    if let Some(l) = &body.location {
        let ok = (-90.0..=90.0).contains(&l.lat)
            && (-180.0..=180.0).contains(&l.lng)
            && l.accuracy.is_none_or(|a| a >= 0.0);
        if !ok {
            return Err(bad(
                "invalid-location",
                "lat must be within ±90, lng within ±180, accuracy ≥ 0",
            ));
        }
    }
    for (name, text) in [("notes", &body.notes), ("reason", &body.reason)] {
        if text.as_ref().is_some_and(|t| t.chars().count() > 4000) {
            return Err(bad(
                "invalid-body",
                format!("{name} is longer than 4000 characters"),
            ));
        }
    }
    Ok(status)
}

pub async fn set_status(
    state: web::Data<AppState>,
    who: Principal,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<StatusBody>,
) -> Result<HttpResponse, ApiError> {
    policy::may_use(&who, Function::FieldWrite)?;
    let raw_id = activity_id(&path)?;
    let key = idempotency_key(&req)?;
    let body = body.into_inner();
    let submitter = submitter(
        &who,
        "status",
        key,
        &json!({"activityId": raw_id, "body": body}),
    )?;
    let result = submit_status(
        &state,
        &who,
        StatusWrite {
            activity: raw_id,
            body,
            submitter,
            from_sync: None,
        },
    )
    .await?;
    acknowledge(&state, result).await
}

/// Makes an accepted write durable (group commit) before answering, and wakes the replayer.
pub async fn acknowledge(state: &AppState, result: Enqueued) -> Result<HttpResponse, ApiError> {
    settle(state, &result).await?;
    answer_of(result)
}

/// An accepted write is flushed (then it may be acknowledged) and the replayer woken.
pub async fn settle(state: &AppState, result: &Enqueued) -> Result<(), ApiError> {
    if let Enqueued::Accepted { .. } = result {
        state.commit.flush().await?;
        state.replayer.wake();
    }
    Ok(())
}

/// Who submits a single write (`action`, for the audit trail), under its `Idempotency-Key`,
/// fingerprinted by `request`.
pub fn submitter(
    who: &Principal,
    action: &'static str,
    key: String,
    request: &impl Serialize,
) -> Result<Submitter, ApiError> {
    let bytes = serde_json::to_vec(request).map_err(|e| ApiError::Internal(e.to_string()))?;
    let sha = hex::encode(crate::store::record::sha256(&bytes));
    Ok(Submitter::of(who, action, key, sha, None))
}

/// How a synced write's time was taken: the device's raw clock and its corrected reading.
#[derive(Debug, Clone, Copy)]
pub struct SyncTime {
    pub captured_at: DateTime<FixedOffset>,
    pub corrected: DateTime<FixedOffset>,
}

/// One status write, from `PATCH …/status` or from a sync batch: one code path.
pub struct StatusWrite {
    pub activity: i64,
    pub body: StatusBody,
    pub submitter: Submitter,
    /// Set for synced ops: the corrected time is kept monotonic per route and never in the future.
    pub from_sync: Option<SyncTime>,
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

/// A resource's IANA zone name (the one already known, else the directory's) and the zone
/// itself, UTC when unknown.
pub fn resource_zone(
    state: &AppState,
    resource: &str,
    known: Option<String>,
) -> (Option<String>, chrono_tz::Tz) {
    let name = known.or_else(|| state.directory.get(resource).and_then(|r| r.time_zone_iana));
    let tz = name
        .as_deref()
        .and_then(|z| ofsc_time::zone(z).ok())
        .unwrap_or(chrono_tz::UTC);
    (name, tz)
}

/// Refuses a read of route dates outside `cache.read_days_back` / `read_days_ahead` around
/// `today`: each date read may cost an OFSC fetch and a cached route.
pub fn readable(
    state: &AppState,
    today: chrono::NaiveDate,
    from: chrono::NaiveDate,
    to: chrono::NaiveDate,
) -> Result<(), ApiError> {
    let w = state.read_window;
    if w.admits(today, from, to) {
        return Ok(());
    }
    Err(ApiError::BadRequest {
        code: "date-outside-window",
        detail: format!(
            "routes can be read from {} days before today ({today}) to {} days after it",
            w.days_back, w.days_ahead
        ),
    })
}

/// Finds the activity a write names and checks the caller may see it.
pub async fn locate(state: &AppState, who: &Principal, raw: i64) -> Result<Located, ApiError> {
    let id = outbox::resolve_activity(state.store.as_ref(), raw)?;
    let a = find_activity(state, id, Some(&who.username)).await?;
    let resource = a.resource_id.clone().unwrap_or_default();
    policy::may_see(who, &resource, state.directory.as_ref())?;
    let date = a.date.clone().ok_or_else(|| ApiError::InvalidTransition {
        detail: "the activity is not scheduled on a route".into(),
        allowed: vec![],
    })?;
    let (zone, tz) = resource_zone(state, &resource, a.resource_time_zone_iana.clone());
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
async fn lane_guard(
    state: &AppState,
    submitter: &Submitter,
    resource: &str,
    date: &str,
) -> Result<outbox::LaneGuard, ApiError> {
    let lane_lock = state.lanes.lock(resource, date);
    Ok(match &submitter.stage {
        Some(stage) => {
            stage
                .lane(state.store.as_ref(), lane_lock, resource, date)
                .await?
        }
        None => outbox::LaneGuard::Own(lane_lock.lock_owned().await),
    })
}

/// Validates against the device's view and queues the write (not yet flushed: the caller
/// flushes once, before answering).
pub async fn submit_status(
    state: &AppState,
    who: &Principal,
    w: StatusWrite,
) -> Result<Enqueued, ApiError> {
    let StatusWrite {
        activity,
        body,
        submitter,
        from_sync,
    } = w;
    let status = validate(&body)?;
    let Located {
        id,
        activity: a,
        resource,
        date,
        zone: zone_name,
        now,
    } = locate(state, who, activity).await?;

    let guard = lane_guard(state, &submitter, &resource, &date).await?;
    if let Some(answer) = outbox::idempotent_answer(state.store.as_ref(), &submitter)? {
        return Ok(answer);
    }
    // A device time outside the window is refused before it can reach OFSC and block the
    // route (a synced op's corrected time was checked by the batch).
    if let (None, Some(t)) = (from_sync, body.time) {
        times::check(t, chrono::Utc::now(), &state.time_window)?;
    }
    let dev = match &submitter.stage {
        Some(stage) => staged_route_of(state, stage, &resource, &date).await?,
        None => device_route_of(state, &resource, &date).await?,
    };
    let time = write_time(from_sync, body.time, now, dev.view.last_time);
    let plan =
        lifecycle::plan(&dev.view, id, status, time).map_err(|r| ApiError::InvalidTransition {
            detail: r.detail,
            allowed: r.allowed.iter().map(|s| s.name().to_string()).collect(),
        })?;
    let route_op = |activity_id, kind| NewOp {
        resource_id: resource.clone(),
        date: date.clone(),
        activity_id,
        kind,
        time,
        zone: zone_name.clone(),
        captured_at: from_sync.map(|t| t.captured_at),
    };
    let mut ops = Vec::new();
    if plan.activate_first {
        ops.push(route_op(None, OpKind::ActivateRoute));
    }
    ops.push(route_op(
        Some(id),
        OpKind::Status {
            status,
            ofsc_action: plan.ofsc_action.map(str::to_string),
            location: body.location,
            notes: body.notes.clone(),
            reason: body.reason.clone(),
        },
    ));
    let mut after = dev.clone();
    lifecycle::apply(&mut after.view, id, status, time);
    *after.pending.entry(id).or_insert(0) += 1;
    let shown = present::activity(&a, Some(&after));
    // A completion that needs a supervisor's sign-off opens its approval with it: it still
    // replays to OFSC at once (holding it would stall the route).
    let needs_approval =
        status == DeviceStatus::Completed && state.approvals.needed_for(a.activity_type.as_deref());
    let (approval_seq, event_seq) = if needs_approval {
        (state.store.next_id()?, state.store.next_id()?)
    } else {
        (0, 0)
    };
    let open = |tx: &dyn crate::store::Tx, ops: &[outbox::Op]| match ops.last() {
        Some(done) => {
            let approval = approvals::Approval {
                id: approvals::approval_id(approval_seq),
                seq: approval_seq,
                activity_id: id,
                resource_id: resource.clone(),
                date: date.clone(),
                activity_type: a.activity_type.clone(),
                technician: submitter.username.clone(),
                technician_user_id: submitter.user_id.clone(),
                completion_op_id: done.id.clone(),
                status: approvals::ApprovalStatus::Pending,
                requested_at: chrono::Utc::now(),
                decision: None,
            };
            approvals::put_in(tx, &approval, event_seq)
        }
        None => Ok(()),
    };
    let extra = needs_approval.then_some(outbox::Extra {
        write: &open,
        tickets: Vec::new(),
    });
    let result = outbox::enqueue_with(
        state.store.as_ref(),
        &submitter,
        ops,
        |ops| {
            let op = ops.last();
            json!({"opId": op.map(|o| o.id.clone()), "state": "queued", "activity": shown})
        },
        extra,
    )?;
    advance_view(state, &resource, &date, &dev, &result);
    match &submitter.stage {
        // Staged ops of this route are not in sled yet: nobody else may queue behind them.
        Some(stage) if !stage.is_empty() => stage.hold(&resource, &date, guard),
        _ => drop(guard),
    }
    Ok(result)
}

/// The HTTP answer for an enqueue outcome (also for replays of the first answer).
pub fn answer_of(result: Enqueued) -> Result<HttpResponse, ApiError> {
    match result {
        Enqueued::Accepted { response, .. } => Ok(HttpResponse::Accepted().json(response)),
        Enqueued::Replayed { status, response } => {
            let code = actix_web::http::StatusCode::from_u16(status)
                .unwrap_or(actix_web::http::StatusCode::ACCEPTED);
            Ok(HttpResponse::build(code).json(response))
        }
        Enqueued::KeyReused => Err(ApiError::IdempotencyKeyReused),
    }
}
