//! `GET /ops/{opId}`: the fate of one queued write.

use super::ApiError;
use crate::auth::policy::{self, Function};
use crate::auth::Principal;
use crate::state::AppState;
use crate::write::outbox::{self, Op};
use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

pub fn op_json(op: &Op) -> Value {
    json!({
        "opId": op.id,
        "state": op.state,
        "kind": op.kind,
        "activityId": op.activity_id,
        "resourceId": op.resource_id,
        "date": op.date,
        "time": op.time.to_rfc3339(),
        "attempts": op.attempts,
        "lastError": op.last_error,
        "ofscDetail": op.ofsc_detail,
        "deviceId": op.device_id,
        "createdAt": op.created_at,
        "updatedAt": op.updated_at,
        "appliedAt": op.applied_at,
    })
}

pub async fn get(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    policy::may_use(&who, Function::ReadField)?;
    let seq = Op::seq_of(&path).ok_or(ApiError::NotFound)?;
    let op = match outbox::get_op(state.store.as_ref(), seq) {
        Ok(Some(op)) => op,
        Ok(None) => return Err(ApiError::NotFound),
        Err(e) if e.is_corrupt() => {
            outbox::quarantine_op(state.store.as_ref(), None, seq, &e)?;
            return Err(ApiError::Internal(format!(
                "op {} failed verification and was quarantined",
                Op::id_of(seq)
            )));
        }
        Err(e) => return Err(e.into()),
    };
    policy::may_see(&who, &op.resource_id, state.directory.as_ref())?;
    Ok(HttpResponse::Ok().json(op_json(&op)))
}
