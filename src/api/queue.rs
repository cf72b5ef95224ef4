//! Operating the outbox: queue depth by state, the dead and rejected ops, retry and discard
//! (supervisors for the resources they oversee, admins for all), each audited.

use super::ops::op_json;
use super::ApiError;
use crate::auth::policy::{self, Function};
use crate::auth::Principal;
use crate::features::audit;
use crate::state::AppState;
use crate::write::outbox::{self, Op, OpState};
use actix_web::{web, HttpResponse};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;

/// Whether the caller may see a resource's ops.
fn sees<'a>(state: &'a AppState, who: &'a Principal) -> impl Fn(&str) -> bool + 'a {
    move |resource| policy::may_see(who, resource, state.directory.as_ref()).is_ok()
}

pub async fn summary(state: web::Data<AppState>, who: Principal) -> Result<HttpResponse, ApiError> {
    let (by_state, oldest) = health(&state, &who)?;
    Ok(HttpResponse::Ok().json(json!({"byState": by_state, "oldestQueuedAgeSeconds": oldest})))
}

/// Op counts by state and the oldest open op's age in seconds, over what the caller sees
/// (the API's summary and the console's queue page).
pub fn health(
    state: &AppState,
    who: &Principal,
) -> Result<(BTreeMap<&'static str, u64>, f64), ApiError> {
    policy::may_use(who, Function::Operate)?;
    let store = state.store.as_ref();
    let visible = sees(state, who);
    let by_state = outbox::counts_by_state(store, &visible)
        .into_iter()
        .map(|(s, n)| (s.name(), n))
        .collect();
    let oldest = outbox::oldest_open(store, &visible)?
        .map(|at| (Utc::now() - at).num_milliseconds().max(0) as f64 / 1000.0)
        .unwrap_or(0.0);
    Ok((by_state, oldest))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListQuery {
    state: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
}

pub async fn list(
    state: web::Data<AppState>,
    who: Principal,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    policy::may_use(&who, Function::Operate)?;
    let wanted: Vec<OpState> = match q.state.as_deref() {
        None => vec![OpState::Dead, OpState::Rejected, OpState::Blocked],
        Some(s) => vec![OpState::ALL
            .into_iter()
            .find(|x| x.name() == s)
            .ok_or_else(|| ApiError::BadRequest {
                code: "invalid-query",
                detail: format!("unknown state {s:?}"),
            })?],
    };
    let after = match q.cursor.as_deref() {
        Some(c) => Op::seq_of(c).ok_or_else(|| ApiError::BadRequest {
            code: "invalid-cursor",
            detail: "unknown cursor".into(),
        })?,
        None => 0,
    };
    let limit = super::page_limit(q.limit, 50, 500)?;
    let visible = sees(&state, &who);
    let matching: Vec<Op> = if wanted.iter().all(|s| outbox::ATTENTION.contains(s)) {
        needing_attention(&state, &who, &wanted, after, limit + 1)?
    } else {
        outbox::ops_after(state.store.as_ref(), after, limit + 1, &|o| {
            wanted.contains(&o.state) && visible(&o.resource_id)
        })?
    };
    let has_more = matching.len() > limit;
    let items: Vec<_> = matching.iter().take(limit).map(op_json).collect();
    let next = if has_more {
        matching.get(limit - 1).map(|o| o.id.clone())
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(json!({"items": items, "nextCursor": next, "hasMore": has_more})))
}

/// Dead, rejected or blocked ops (`wanted`) after `after` that the caller sees, up to
/// `limit`. They are few and kept by id: no scan of the history.
pub fn needing_attention(
    state: &AppState,
    who: &Principal,
    wanted: &[OpState],
    after: u64,
    limit: usize,
) -> Result<Vec<Op>, ApiError> {
    policy::may_use(who, Function::Operate)?;
    let visible = sees(state, who);
    let mut found = Vec::new();
    for seq in outbox::marked_ops(state.store.as_ref(), wanted, after) {
        if found.len() >= limit {
            break;
        }
        match outbox::get_op(state.store.as_ref(), seq) {
            Ok(Some(op)) if wanted.contains(&op.state) && visible(&op.resource_id) => {
                found.push(op)
            }
            Ok(_) => {}
            // As in the full listing: the replayer or `GET /ops/{id}` quarantines it.
            Err(e @ crate::store::StoreError::Corrupt { .. }) => {
                tracing::error!(error = %e, "skipping a corrupt op in a listing")
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(found)
}

async fn act(
    state: web::Data<AppState>,
    who: Principal,
    id: String,
    retry: bool,
) -> Result<HttpResponse, ApiError> {
    let updated = act_as(&state, &who, &id, retry).await?;
    Ok(HttpResponse::Ok().json(op_json(&updated)))
}

/// Retries or discards an op, audited and flushed: the API's and the console's one path.
pub async fn act_as(
    state: &AppState,
    who: &Principal,
    id: &str,
    retry: bool,
) -> Result<Op, ApiError> {
    policy::may_use(who, Function::Operate)?;
    let seq = Op::seq_of(id).ok_or(ApiError::NotFound)?;
    let op = outbox::get_op(state.store.as_ref(), seq)?.ok_or(ApiError::NotFound)?;
    policy::may_see(who, &op.resource_id, state.directory.as_ref())?;
    let allowed_from: &[OpState] = if retry {
        &[OpState::Dead, OpState::Rejected, OpState::Blocked]
    } else {
        &[
            OpState::Queued,
            OpState::Dead,
            OpState::Rejected,
            OpState::Blocked,
        ]
    };
    if !allowed_from.contains(&op.state) {
        return Err(ApiError::InvalidTransition {
            detail: format!("op {} is {}", op.id, op.state.name()),
            allowed: allowed_from.iter().map(|s| s.name().to_string()).collect(),
        });
    }
    let lock = state.lanes.lock(&op.resource_id, &op.date);
    let guard = lock.lock().await;
    let updated = if retry {
        outbox::requeue(state.store.as_ref(), seq)?
    } else {
        outbox::discard(state.store.as_ref(), seq)?
    };
    audit::record(
        state.store.as_ref(),
        who,
        audit::Event {
            action: if retry { "op.retry" } else { "op.discard" },
            object: op.id.clone(),
            resource_id: Some(op.resource_id.clone()),
            activity_id: op.activity_id,
            request_id: who.request_id.clone(),
            detail: json!({"from": op.state.name()}),
        },
    )?;
    // Under the lane lock, like every write that changes what the route shows.
    state.cache.renders.touch(&op.resource_id, &op.date);
    drop(guard);
    state.commit.flush().await?;
    if retry {
        state.replayer.wake();
    }
    Ok(updated)
}

pub async fn retry(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    act(state, who, path.into_inner(), true).await
}

pub async fn discard(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    act(state, who, path.into_inner(), false).await
}

/// Admins only: a record that failed verification cannot be trusted to say whose it is, so
/// it cannot be filtered by a supervisor's oversight.
pub async fn quarantine(
    state: web::Data<AppState>,
    who: Principal,
) -> Result<HttpResponse, ApiError> {
    policy::may_use(&who, Function::Administer)?;
    let items = crate::store::StorageExt::quarantined(state.store.as_ref(), 1000)?;
    let items: Vec<_> = items
        .into_iter()
        .map(|q| json!({"tree": q.tree, "key": q.key_hex, "reason": q.reason, "quarantinedAt": q.quarantined_at}))
        .collect();
    Ok(HttpResponse::Ok().json(json!({"items": items, "nextCursor": null, "hasMore": false})))
}
