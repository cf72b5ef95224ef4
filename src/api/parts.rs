//! Parts consumption: `GET /inventory` (van stock), and `GET`/`POST /activities/{id}/parts`.

use super::activities;
use super::ApiError;
use crate::auth::policy::{self, Function, Role};
use crate::auth::Principal;
use crate::domain::parts::{self};
use crate::features::stock;
use crate::read::present;
use crate::state::AppState;
use crate::write::outbox::Op;
use crate::write::parts::{PartsBody, PartsCommand};
use crate::write::{self, Command};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

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

fn entries(recorded: &[(Op, parts::Recorded)]) -> Vec<Value> {
    recorded
        .iter()
        .map(|(op, _)| {
            let undone = recorded
                .iter()
                .any(|(_, r)| r.live && r.plan.undoes.as_deref() == Some(op.id.as_str()));
            present::part_entry(op, undone)
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
    let write::Located { id, resource, .. } = write::locate(&state, &who, raw).await?;
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
    let submitter = write::submitter(
        &who,
        "parts",
        key,
        &json!({"activityId": raw, "parts": body}),
    )?;
    let parts = Command::Parts(PartsCommand {
        activity: raw,
        body,
        submitter,
        from_sync: None,
    });
    let result = write::submit(&state, &who, parts).await?;
    activities::acknowledge(&state, result).await
}
