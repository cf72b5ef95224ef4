//! Activities: `GET /activities/{activityId}` and `PATCH /activities/{activityId}/status`.

use super::ApiError;
use crate::auth::policy::{self, Function};
use crate::auth::Principal;
use crate::read::{present, query};
use crate::state::AppState;
use crate::write;
use crate::write::outbox::{self, Enqueued};
use crate::write::status::{StatusBody, StatusCommand};
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

/// Parses an activity id from the path; anything else names no object.
pub fn activity_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id != 0)
        .ok_or(ApiError::NotFound)
}

pub async fn get_one(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    policy::may_use(&who, Function::ReadField)?;
    let id = outbox::resolve_activity(state.store.as_ref(), activity_id(&path)?)?;
    let a = query::find_activity(&state, id, Some(&who.username)).await?;
    policy::may_see(
        &who,
        a.resource_id.as_deref().unwrap_or(""),
        state.directory.as_ref(),
    )?;
    let route = match (a.resource_id.as_deref(), a.date.as_deref()) {
        (Some(r), Some(d)) => Some(query::device_route_of(&state, r, d).await?),
        _ => None,
    };
    Ok(HttpResponse::Ok().json(present::activity(&a, route.as_ref())))
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
    let submitter = write::submitter(
        &who,
        "status",
        key,
        &json!({"activityId": raw_id, "body": body}),
    )?;
    let result = write::status::submit_status(
        &state,
        &who,
        StatusCommand {
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
    write::settle(state, &result).await?;
    answer_of(result)
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
