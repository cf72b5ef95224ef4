//! Supervisor approvals: `GET /approvals`, `GET /approvals/{id}` with its evidence, and
//! `POST /approvals/{id}/decision`, which queues the approval properties (and a reopen).

use super::activities;
use super::ApiError;
use crate::auth::policy::{self, Function};
use crate::auth::Principal;
use crate::features::approvals::{self, Approval, ApprovalStatus};
use crate::state::AppState;
use crate::write::decision;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

fn bad(code: &'static str, detail: impl Into<String>) -> ApiError {
    ApiError::BadRequest {
        code,
        detail: detail.into(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListQuery {
    status: Option<String>,
    resource_id: Option<crate::ids::ResourceId>,
    cursor: Option<String>,
    limit: Option<usize>,
}

/// `GET /approvals`: those of the resources the caller oversees.
pub async fn list(
    state: web::Data<AppState>,
    who: Principal,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    policy::may_use(&who, Function::Decide)?;
    let status = match q.status.as_deref() {
        Some(s) => Some(
            ApprovalStatus::parse(s)
                .ok_or_else(|| bad("invalid-query", format!("unknown status {s:?}")))?,
        ),
        None => None,
    };
    let after = match q.cursor.as_deref() {
        Some(c) => {
            approvals::approval_seq(c).ok_or_else(|| bad("invalid-cursor", "unknown cursor"))?
        }
        None => 0,
    };
    let limit = super::page_limit(q.limit, 50, 500)?;
    let dir = state.directory.as_ref();
    let keep = |a: &Approval| {
        status.is_none_or(|s| a.status == s)
            && q.resource_id.as_deref().is_none_or(|r| a.resource_id == r)
            && policy::oversees(&who, &a.resource_id, dir)
    };
    let floor = (status == Some(ApprovalStatus::Pending)).then_some(&state.pending_approvals);
    let (items, more) = approvals::list(state.store.as_ref(), after, limit, &keep, floor)?;
    let next = if more {
        items.last().map(|a| a.id.clone())
    } else {
        None
    };
    let items: Vec<Value> = items.iter().map(approvals::summary).collect();
    Ok(HttpResponse::Ok().json(json!({"items": items, "nextCursor": next, "hasMore": more})))
}

/// The approval, if the caller may see it (supervisors who oversee the resource, admins).
pub fn visible(state: &AppState, who: &Principal, id: &str) -> Result<Approval, ApiError> {
    let a = approvals::get(state.store.as_ref(), id)?.ok_or(ApiError::NotFound)?;
    if !policy::oversees(who, &a.resource_id, state.directory.as_ref()) {
        return Err(ApiError::NotFound);
    }
    Ok(a)
}

pub async fn get_one(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    policy::may_use(&who, Function::Decide)?;
    let a = visible(&state, &who, &path)?;
    let mut body = approvals::summary(&a);
    body["evidence"] = approvals::evidence(state.store.as_ref(), &a)?;
    Ok(HttpResponse::Ok().json(body))
}

/// `POST /approvals/{approvalId}/decision`.
pub async fn decide(
    state: web::Data<AppState>,
    who: Principal,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<decision::DecisionBody>,
) -> Result<HttpResponse, ApiError> {
    policy::may_use(&who, Function::Decide)?;
    let a = visible(&state, &who, &path)?;
    let key = activities::idempotency_key(&req)?;
    let result = decision::decide_as(&state, &who, &a, body.into_inner(), key).await?;
    activities::acknowledge(&state, result).await
}
