//! The simulator's activity and route endpoints: listing (with OFSC's concurrency limit),
//! CRUD, status actions, moves, and the route of a resource's day.

use super::{activity_id, body_json, created, error, ofsc_call, ok, Data, Reply};
use crate::sim::model::SimError;
use crate::sim::query;
use crate::sim::rules::Action;
use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// OFSC runs at most 3 `GET /activities` at once, queues 10 more for up to 30 s, then refuses.
pub(super) const LIST_RUNNING: usize = 3;
const LIST_QUEUED: usize = 10;
const LIST_WAIT: Duration = Duration::from_secs(30);

pub(super) async fn list_activities(
    sim: Data,
    req: HttpRequest,
    q: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    let _permit = match sim.list_slots.clone().try_acquire_owned() {
        Ok(p) => p,
        Err(_) => {
            if sim.list_queued.fetch_add(1, Ordering::SeqCst) >= LIST_QUEUED {
                sim.list_queued.fetch_sub(1, Ordering::SeqCst);
                sim.list_rejected.fetch_add(1, Ordering::SeqCst);
                return error(&SimError {
                    status: 429,
                    detail: "Too many concurrent requests for activities; the queue is full".into(),
                });
            }
            let waited =
                tokio::time::timeout(LIST_WAIT, sim.list_slots.clone().acquire_owned()).await;
            sim.list_queued.fetch_sub(1, Ordering::SeqCst);
            match waited {
                Ok(Ok(p)) => p,
                _ => {
                    return error(&SimError {
                        status: 429,
                        detail: "Timed out waiting for a free activities slot".into(),
                    })
                }
            }
        }
    };
    let running = sim.list_running.fetch_add(1, Ordering::SeqCst) + 1;
    sim.list_max_running.fetch_max(running, Ordering::SeqCst);
    let resp = ofsc_call(&sim, &req, |t, _| {
        let get = |k: &str| q.get(k).map(String::as_str);
        let non_scheduled = get("includeNonScheduled") == Some("true");
        let range = query::date_range(get("dateFrom"), get("dateTo"), non_scheduled)?;
        let fields = query::fields(get("fields"))?;
        let filter = get("q").map(query::Filter::parse).transpose()?;
        let mut wanted: Vec<String> = get("resources")
            .map(|r| {
                r.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        // OFSC requires the resources to search in.
        if wanted.is_empty() {
            return Err(SimError::bad_request("resources is required"));
        }
        if get("includeChildren") != Some("none") {
            let mut i = 0;
            while i < wanted.len() {
                let parent = wanted[i].clone();
                for r in t.resources.values() {
                    if r.parent_resource_id.as_deref() == Some(parent.as_str())
                        && !wanted.contains(&r.resource_id)
                    {
                        wanted.push(r.resource_id.clone());
                    }
                }
                i += 1;
            }
        }
        let offset = get("offset")
            .and_then(|s| s.parse::<usize>().ok())
            .unwrap_or(0);
        let limit = get("limit")
            .and_then(|s| s.parse::<usize>().ok())
            .unwrap_or(100)
            .clamp(1, 100_000);
        let matching: Vec<Map<String, Value>> = t
            .activities
            .values()
            .filter(|a| {
                wanted.is_empty() || a.resource_id.as_ref().is_some_and(|r| wanted.contains(r))
            })
            .filter(|a| match (&range, &a.date) {
                (Some((f, to)), Some(d)) => chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
                    .is_ok_and(|d| d >= *f && d <= *to),
                // With dates, includeNonScheduled adds the undated activities to the range.
                (Some(_), None) => non_scheduled,
                (None, d) => d.is_none(),
            })
            .filter_map(|a| {
                let full = match serde_json::to_value(a) {
                    Ok(Value::Object(m)) => m,
                    _ => return None,
                };
                match &filter {
                    Some(f) if !f.matches(&full) => None,
                    _ => Some(query::project(a, &fields)),
                }
            })
            .collect();
        let has_more = matching.len() > offset + limit;
        let items: Vec<Value> = matching
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(Value::Object)
            .collect();
        let mut envelope = json!({"items": items, "offset": offset, "limit": limit});
        if has_more {
            envelope["hasMore"] = json!(true);
        }
        Ok(Reply::Json(StatusCode::OK, envelope))
    })
    .await;
    sim.list_running.fetch_sub(1, Ordering::SeqCst);
    resp
}

pub(super) async fn create_activity(sim: Data, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    ofsc_call(&sim, &req, |t, call| {
        let a = t.create_activity(call, body_json(&body)?)?;
        created(a)
    })
    .await
}

pub(super) async fn get_activity(
    sim: Data,
    req: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    sim.activity_reads.fetch_add(1, Ordering::SeqCst);
    ofsc_call(&sim, &req, |t, _| ok(t.activity(activity_id(&path)?)?)).await
}

pub(super) async fn patch_activity(
    sim: Data,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    ofsc_call(&sim, &req, |t, call| {
        ok(t.update_activity(call, activity_id(&path)?, body_json(&body)?)?)
    })
    .await
}

pub(super) async fn delete_activity(
    sim: Data,
    req: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    ofsc_call(&sim, &req, |t, call| {
        t.delete_activity(call, activity_id(&path)?)?;
        Ok(Reply::NoContent)
    })
    .await
}

pub(super) async fn activity_action(
    sim: Data,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> HttpResponse {
    let (id, name) = path.into_inner();
    ofsc_call(&sim, &req, |t, call| {
        let id = activity_id(&id)?;
        if name == "move" {
            let b: Value = body_json(&body)?;
            let current = t.activity(id)?.clone();
            let rid = b
                .pointer("/setResource/resourceId")
                .and_then(Value::as_str)
                .map(str::to_string)
                .or(current.resource_id);
            let date = b
                .pointer("/setDate/date")
                .and_then(Value::as_str)
                .map(str::to_string)
                .or(current.date);
            let (Some(rid), Some(date)) = (rid, date) else {
                return Err(SimError::bad_request("Nothing to move to"));
            };
            t.move_activity(call, id, &rid, &date)?;
            return Ok(Reply::NoContent);
        }
        let action = Action::parse(&name)
            .ok_or_else(|| SimError::not_found(format!("Unknown action '{name}'")))?;
        ok(t.activity_action(call, id, action, &body_json(&body)?)?)
    })
    .await
}

/// What a route read answers per activity without `activityFields`: Oracle documents only
/// that "the start time and time zone information is returned"; the rest is inferred.
const ROUTE_DEFAULT_FIELDS: &[&str] = &[
    "activityId",
    "startTime",
    "endTime",
    "timeZone",
    "timeZoneIANA",
    "resourceTimeZone",
    "resourceTimeZoneIANA",
];

pub(super) async fn get_route(
    sim: Data,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    q: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    let (rid, date) = path.into_inner();
    sim.route_reads.fetch_add(1, Ordering::SeqCst);
    ofsc_call(&sim, &req, |t, _| {
        let offset = q.get("offset").and_then(|s| s.parse().ok()).unwrap_or(0);
        // 0 (and anything over 100) means OFSC's maximum page.
        let limit = q
            .get("limit")
            .and_then(|s| s.parse::<usize>().ok())
            .filter(|n| (1..=100).contains(n))
            .unwrap_or(100);
        let route = t.route(&rid, &date, offset, limit)?;
        let mut body =
            serde_json::to_value(&route).map_err(|e| SimError::bad_request(e.to_string()))?;
        if let Some(Value::Array(items)) = body.get_mut("items") {
            let asked: Vec<&str> = match q.get("activityFields") {
                Some(list) => list.split(',').map(str::trim).collect(),
                None => ROUTE_DEFAULT_FIELDS.to_vec(),
            };
            for item in items {
                if let Value::Object(fields) = item {
                    fields.retain(|k, _| asked.contains(&k.as_str()));
                }
            }
        }
        ok(body)
    })
    .await
}

pub(super) async fn route_action(
    sim: Data,
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
    body: web::Bytes,
) -> HttpResponse {
    let (rid, date, action) = path.into_inner();
    ofsc_call(&sim, &req, |t, call| {
        t.route_action(call, &rid, &date, &action, &body_json(&body)?)?;
        Ok(Reply::NoContent)
    })
    .await
}
