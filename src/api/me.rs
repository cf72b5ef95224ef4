//! `GET /me`: who the caller is, and `GET /resources/{resourceId}`: one visible resource.

use super::ApiError;
use crate::auth::policy::{self, Function};
use crate::auth::Principal;
use crate::state::AppState;
use actix_web::{web, HttpResponse};
use serde_json::json;

pub async fn me(who: Principal) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "id": who.user_id,
        "username": who.username,
        "name": who.name,
        "role": who.role,
        "resourceId": who.resource_id,
        "oversees": who.oversees,
        "overseesParent": who.oversees_parent,
        "deviceId": who.device_id,
    }))
}

pub async fn resource(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    policy::may_use(&who, Function::ReadField)?;
    let id = path.into_inner();
    policy::may_see(&who, &id, state.directory.as_ref())?;
    let r = state.directory.get(&id).ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(json!({
        "resourceId": r.resource_id,
        "name": r.name,
        "parentResourceId": r.parent_resource_id,
        "resourceType": r.resource_type,
        "timeZone": r.time_zone_iana.or(r.time_zone),
        "status": r.status,
    })))
}
