//! Administration: `GET /admin/users` (admins only; never shows hashes or secrets).

use super::ApiError;
use crate::auth::policy::{self, Function};
use crate::auth::{users, Principal};
use crate::state::AppState;
use actix_web::{web, HttpResponse};
use serde_json::json;

pub async fn list_users(
    state: web::Data<AppState>,
    who: Principal,
) -> Result<HttpResponse, ApiError> {
    policy::may_use(&who, Function::Administer)?;
    let items: Vec<_> = users::list(state.store.as_ref())?
        .into_iter()
        .map(|u| {
            json!({
                "id": u.id, "username": u.username, "name": u.name, "role": u.role,
                "resourceId": u.resource_id, "oversees": u.oversees, "overseesParent": u.oversees_parent,
                "disabled": u.disabled, "totpEnrolled": u.totp_secret.is_some(),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({"items": items, "nextCursor": null, "hasMore": false})))
}
