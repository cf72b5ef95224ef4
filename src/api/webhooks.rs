//! Operating outbound webhooks: `GET /admin/webhooks/deliveries` (failures first of all) and
//! redelivery, for admins, with audit.

use super::ApiError;
use crate::auth::policy::{self, Function};
use crate::auth::Principal;
use crate::features::audit;
use crate::features::webhooks::{self, Delivery, DeliveryState};
use crate::state::AppState;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeliveriesQuery {
    state: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
}

fn delivery_json(d: &Delivery) -> Value {
    json!({
        "deliveryId": d.id, "eventId": d.event_id, "eventType": d.event_type, "url": d.url,
        "state": d.state, "attempts": d.attempts, "nextAt": d.next_at, "lastStatus": d.last_status,
        "lastError": d.last_error, "createdAt": d.created_at, "deliveredAt": d.delivered_at,
    })
}

/// Newest first; by default the failed ones.
pub async fn deliveries(
    state: web::Data<AppState>,
    who: Principal,
    q: web::Query<DeliveriesQuery>,
) -> Result<HttpResponse, ApiError> {
    policy::may_use(&who, Function::Administer)?;
    let wanted = match q.state.as_deref() {
        None | Some("failed") => Some(DeliveryState::Failed),
        Some("pending") => Some(DeliveryState::Pending),
        Some("delivered") => Some(DeliveryState::Delivered),
        Some("all") => None,
        Some(other) => {
            return Err(ApiError::BadRequest {
                code: "invalid-query",
                detail: format!("unknown state {other:?} (failed, pending, delivered, all)"),
            })
        }
    };
    let before = match q.cursor.as_deref() {
        Some(c) => Some(
            webhooks::delivery_seq(c).ok_or_else(|| ApiError::BadRequest {
                code: "invalid-cursor",
                detail: "unknown cursor".into(),
            })?,
        ),
        None => None,
    };
    let limit = super::page_limit(q.limit, 50, 500)?;
    let (items, more) = webhooks::list(state.store.as_ref(), wanted, before, limit)?;
    let next = if more {
        items.last().map(|d| d.id.clone())
    } else {
        None
    };
    let items: Vec<Value> = items.iter().map(delivery_json).collect();
    Ok(HttpResponse::Ok().json(json!({"items": items, "nextCursor": next, "hasMore": more})))
}

/// `POST /admin/webhooks/deliveries/{deliveryId}/redeliver`: due again now, attempts reset.
pub async fn redeliver(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let d = redeliver_as(&state, &who, &path).await?;
    Ok(HttpResponse::Accepted().json(delivery_json(&d)))
}

/// Makes a delivery due again, audited and flushed: the API's and the console's one path.
pub async fn redeliver_as(
    state: &AppState,
    who: &Principal,
    id: &str,
) -> Result<Delivery, ApiError> {
    policy::may_use(who, Function::Administer)?;
    let seq = webhooks::delivery_seq(id).ok_or(ApiError::NotFound)?;
    let d = webhooks::redeliver(state.store.as_ref(), seq)?.ok_or(ApiError::NotFound)?;
    audit::record(
        state.store.as_ref(),
        who,
        audit::Event {
            action: "webhook.redeliver",
            object: d.id.clone(),
            resource_id: None,
            activity_id: None,
            request_id: who.request_id.clone(),
            detail: json!({"eventId": d.event_id, "url": d.url}),
        },
    )?;
    state.commit.flush().await?;
    state.webhooks.wake();
    Ok(d)
}
