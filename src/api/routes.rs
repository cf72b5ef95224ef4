//! `GET /routes/{date}`: the caller's sequenced route, from the cache, with their queued writes.

use super::{activities, ApiError};
use crate::auth::policy::{self, Function};
use crate::auth::Principal;
use crate::read::cache::RouteRead;
use crate::read::present;
use crate::read::renders::Rendered;
use crate::read::view;
use crate::state::AppState;
use crate::store::Storage;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteQuery {
    resource_id: Option<crate::ids::ResourceId>,
}

pub async fn get(
    state: web::Data<AppState>,
    who: Principal,
    req: HttpRequest,
    path: web::Path<String>,
    q: web::Query<RouteQuery>,
) -> Result<HttpResponse, ApiError> {
    policy::may_use(&who, Function::ReadField)?;
    let date = path.into_inner();
    let Some(day) = present::parse_date(&date) else {
        return Err(ApiError::BadRequest {
            code: "invalid-date",
            detail: "the date must be YYYY-MM-DD".into(),
        });
    };
    let resource = q
        .resource_id
        .clone()
        .map(String::from)
        .or(who.resource_id.clone())
        .ok_or(ApiError::NotFound)?;
    policy::may_see(&who, &resource, state.directory.as_ref())?;
    if state.directory.get(&resource).is_none() && !state.directory.is_empty() {
        return Err(ApiError::NotFound);
    }
    let (_, zone) = crate::read::query::resource_zone(&state, &resource, None);
    activities::readable(&state, crate::ofsc::time::today_in(zone), day, day)?;
    let ofsc_ok = state.ofsc_health.snapshot().ok;
    // The version is read before the data, so a write that lands meanwhile re-renders later.
    // A quarantine drops an op without touching its route (it is found while reading a
    // lane); it rebuilds the op counts, so their rebuild count is part of every version.
    let version = state
        .cache
        .renders
        .version(&resource, &date)
        .wrapping_add(state.store.tally().resets() << 40);
    let read = state
        .cache
        .read_route(&resource, &date, ofsc_ok, Some(&who.username))
        .await?;
    let rendered = match state
        .cache
        .renders
        .get(&resource, &date, version, read.stale)
    {
        Some(r) => r,
        None => {
            let body = render(&state, &resource, &date, &read)?;
            let etag = format!(
                "\"{}\"",
                hex::encode(&crate::store::record::sha256(&body)[..16])
            );
            state.cache.renders.put(
                &resource,
                &date,
                Rendered {
                    version,
                    stale: read.stale,
                    etag,
                    body: body.into(),
                },
            )
        }
    };
    let matches = req
        .headers()
        .get("if-none-match")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim() == rendered.etag || t.trim() == "*")
        });
    if matches {
        return Ok(HttpResponse::NotModified()
            .insert_header(("ETag", rendered.etag.clone()))
            .finish());
    }
    Ok(HttpResponse::Ok()
        .insert_header(("ETag", rendered.etag.clone()))
        .insert_header(("Cache-Control", "private, no-cache"))
        .content_type("application/json")
        .body(rendered.body.clone()))
}

/// The route body: the device's view of every stop, in route order.
pub(super) fn render(
    state: &AppState,
    resource: &str,
    date: &str,
    read: &RouteRead,
) -> Result<Vec<u8>, ApiError> {
    let (dev, activities) = view::device_route(state.store.as_ref(), &state.cache, resource, date)?
        .ok_or_else(|| ApiError::OfscUnavailable("the route is not cached".into()))?;
    let stops = present::stops(&dev, &activities);
    let zone = state
        .directory
        .get(resource)
        .and_then(|r| r.time_zone_iana.or(r.time_zone));
    let body = json!({
        "resourceId": resource,
        "date": date,
        "timeZone": zone,
        "activated": dev.view.activated,
        "activatedAt": read.route.route_start_time,
        "stale": read.stale,
        "fetchedAt": read.route.fetched_at,
        "pendingOps": dev.lane_pending,
        "stops": stops,
    });
    serde_json::to_vec(&body).map_err(|e| ApiError::Internal(e.to_string()))
}
