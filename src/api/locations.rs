//! GPS pings: `POST /locations` (and the sync `location` kind) queue a technician's fixes in
//! the lane of their route of the day, replayed with OFSC's `setPositions`.

use super::activities;
use super::ApiError;
use crate::auth::policy::{self, Function};
use crate::auth::Principal;
use crate::state::AppState;
use crate::write::fixes::LocationsBody;
use crate::write::{self, Command};
use actix_web::{web, HttpRequest, HttpResponse};

pub async fn record(
    state: web::Data<AppState>,
    who: Principal,
    req: HttpRequest,
    body: web::Json<LocationsBody>,
) -> Result<HttpResponse, ApiError> {
    let key = activities::idempotency_key(&req)?;
    let body = body.into_inner();
    policy::may_use(&who, Function::FieldWrite)?;
    let submitter = write::submitter(&who, "location", key, &body)?;
    let fixes = Command::Fixes {
        items: body.items,
        from_sync: None,
        submitter,
    };
    let result = write::submit(&state, &who, fixes).await?;
    activities::acknowledge(&state, result).await
}
