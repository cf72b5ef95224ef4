//! Parts consumption: `GET /inventory` (van stock), and `GET`/`POST /activities/{id}/parts`.

use super::activities::{self, Located, SyncTime};
use super::{present, ApiError};
use crate::auth::policy::{self, Function, Role};
use crate::auth::Principal;
use crate::domain::parts::{self, PartRequest, Refusal};
use crate::outbox::{self, Enqueued, NewOp, Op, OpKind, Submitter};
use crate::state::AppState;
use crate::stock;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// At most this many items per request.
pub const MAX_ITEMS: usize = 50;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InventoryQuery {
    resource_id: Option<crate::ids::ResourceId>,
}

fn unavailable(e: impl std::fmt::Display) -> ApiError {
    ApiError::OfscUnavailable(e.to_string())
}

/// `GET /inventory`: the caller's van (or, for a supervisor, an overseen resource's), with
/// every part entry not yet in OFSC already taken out.
pub async fn van(
    state: web::Data<AppState>,
    who: Principal,
    query: web::Query<InventoryQuery>,
) -> Result<HttpResponse, ApiError> {
    policy::may_use(&who, Function::ReadField)?;
    let resource = match (&query.resource_id, &who.resource_id) {
        (Some(r), _) => r.to_string(),
        (None, Some(own)) => own.clone(),
        (None, None) => {
            return Err(ApiError::BadRequest {
                code: "resource-required",
                detail: "name the resource whose van to show: ?resourceId=".into(),
            })
        }
    };
    policy::may_see(&who, &resource, state.directory.as_ref())?;
    if state.directory.get(&resource).is_none() && who.role != Role::Admin {
        return Err(ApiError::NotFound);
    }
    let queued = stock::queued_parts(state.store.as_ref(), &resource)?;
    let van = state.stock.van(&resource).await.map_err(unavailable)?;
    let items = stock::net_van(&queued, &van);
    Ok(HttpResponse::Ok().json(json!({
        "resourceId": resource,
        "items": items,
        "queuedEntries": queued.len(),
    })))
}

/// One recorded part entry as devices see it.
fn entry(op: &Op, undone: bool) -> Value {
    let OpKind::Part { part } = &op.kind else {
        return Value::Null;
    };
    json!({
        "partId": op.id,
        "action": part.action,
        "ofscAction": part.ofsc.path_name(),
        "inventoryType": part.inventory_type,
        "serialNumber": part.serial_number,
        "quantity": part.quantity,
        "exchangedInventoryId": part.exchanged_inventory_id,
        "undoes": part.undoes,
        "undone": undone,
        "state": op.state,
        "lastError": op.last_error,
        "ofscDetail": op.ofsc_detail,
        "recordedAt": op.time,
    })
}

fn entries(recorded: &[(Op, parts::Recorded)]) -> Vec<Value> {
    recorded
        .iter()
        .map(|(op, _)| {
            let undone = recorded
                .iter()
                .any(|(_, r)| r.live && r.plan.undoes.as_deref() == Some(op.id.as_str()));
            entry(op, undone)
        })
        .collect()
}

/// `GET /activities/{activityId}/parts`: every entry recorded, queued ones included, and the
/// customer equipment at the site.
pub async fn list(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    policy::may_use(&who, Function::ReadField)?;
    let raw = activities::activity_id(&path)?;
    let Located { id, resource, .. } = activities::locate(&state, &who, raw).await?;
    let recorded = stock::recorded(state.store.as_ref(), id)?;
    let queued = stock::queued_parts(state.store.as_ref(), &resource)?;
    let site = state.stock.site(id).await?;
    let view = stock::parts_view(
        &queued,
        &stock::CachedItems::default(),
        site.as_ref(),
        id,
        vec![],
    );
    Ok(HttpResponse::Ok().json(json!({
        "activityId": id,
        "items": entries(&recorded),
        "siteEquipment": view.site,
    })))
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PartsBody {
    pub items: Vec<PartRequest>,
}

/// One parts request, from `POST …/parts` or from a sync batch: one code path.
pub struct PartsWrite {
    pub activity: i64,
    pub body: PartsBody,
    pub submitter: Submitter,
    pub from_sync: Option<SyncTime>,
}

fn refused(r: Refusal) -> ApiError {
    if r.status == 409 {
        ApiError::Conflict {
            code: r.code,
            detail: r.detail,
            extra: r
                .available
                .map_or(Value::Null, |a| json!({ "available": a })),
        }
    } else {
        ApiError::BadRequest {
            code: r.code,
            detail: r.detail,
        }
    }
}

pub async fn record(
    state: web::Data<AppState>,
    who: Principal,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<PartsBody>,
) -> Result<HttpResponse, ApiError> {
    policy::may_use(&who, Function::FieldWrite)?;
    let raw = activities::activity_id(&path)?;
    let key = activities::idempotency_key(&req)?;
    let body = body.into_inner();
    let submitter = activities::submitter(
        &who,
        "parts",
        key,
        &json!({"activityId": raw, "parts": body}),
    )?;
    let result = submit_parts(
        &state,
        &who,
        PartsWrite {
            activity: raw,
            body,
            submitter,
            from_sync: None,
        },
    )
    .await?;
    activities::acknowledge(&state, result).await
}

/// Checks every item against the device's view of the van and the site (each item seeing
/// the ones before it) and queues them all, or none.
pub async fn submit_parts(
    state: &AppState,
    who: &Principal,
    w: PartsWrite,
) -> Result<Enqueued, ApiError> {
    if w.body.items.is_empty() || w.body.items.len() > MAX_ITEMS {
        return Err(ApiError::BadRequest {
            code: "invalid-body",
            detail: format!("items must hold 1 to {MAX_ITEMS} entries"),
        });
    }
    let Located {
        id,
        activity: a,
        resource,
        date,
        zone,
        now,
    } = activities::locate(state, who, w.activity).await?;
    let lane_lock = state.lanes.lock(&resource, &date);
    let guard = lane_lock.lock().await;
    if let Some(answer) = outbox::idempotent_answer(state.store.as_ref(), &w.submitter)? {
        return Ok(answer);
    }
    let dev = activities::device_route_of(state, &resource, &date).await?;
    let started = dev.stop(id).is_some_and(|s| s.status == "started");
    let queued = stock::queued_parts(state.store.as_ref(), &resource)?;
    let van = state.stock.van(&resource).await.map_err(unavailable)?;
    let site = state.stock.site(id).await?;
    let recorded = stock::recorded(state.store.as_ref(), id)?
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    let mut view = stock::parts_view(&queued, &van, site.as_ref(), id, recorded);
    let time = activities::write_time(w.from_sync, None, now, dev.view.last_time);
    let mut ops = Vec::with_capacity(w.body.items.len());
    for (n, item) in w.body.items.iter().enumerate() {
        let planned = parts::plan(&view, started, item).map_err(|r| {
            let mut e = r;
            if w.body.items.len() > 1 {
                e.detail = format!("item {n}: {}", e.detail);
            }
            refused(e)
        })?;
        parts::apply(&mut view, &format!("item-{n}"), &planned);
        ops.push(NewOp {
            resource_id: resource.clone(),
            date: date.clone(),
            activity_id: Some(id),
            kind: OpKind::Part { part: planned },
            time,
            zone: zone.clone(),
            captured_at: w.from_sync.map(|t| t.captured_at),
        });
    }
    let mut after = dev.clone();
    *after.pending.entry(id).or_insert(0) += ops.len();
    let shown = present::activity(&a, Some(&after));
    let result = outbox::enqueue(state.store.as_ref(), &w.submitter, ops, |ops| {
        json!({
            "opId": ops.last().map(|o| o.id.clone()),
            "opIds": ops.iter().map(|o| o.id.clone()).collect::<Vec<_>>(),
            "state": "queued",
            "parts": ops.iter().map(|o| entry(o, false)).collect::<Vec<_>>(),
            "activity": shown,
        })
    })?;
    activities::advance_view(state, &resource, &date, &dev, &result);
    drop(guard);
    Ok(result)
}
