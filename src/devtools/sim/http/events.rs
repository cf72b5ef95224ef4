//! The simulator's event subscriptions and the paged event feed.

use super::{body_json, ofsc_call, ok, Data, Reply};
use crate::sim::model::SimError;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};
use std::collections::HashMap;

pub(super) async fn subscribe(sim: Data, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    ofsc_call(&sim, &req, |t, _| {
        let b: Value = body_json(&body)?;
        let mut events: Vec<String> = b
            .get("events")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        if let Some(cfg) = b.get("subscriptionConfig").and_then(Value::as_array) {
            for c in cfg {
                events.extend(
                    c.get("events")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .map(str::to_string),
                );
            }
        }
        let (id, next) = t.events.subscribe(events)?;
        ok(json!({"subscriptionId": id, "nextPage": next}))
    })
    .await
}

pub(super) async fn get_subscription(
    sim: Data,
    req: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    ofsc_call(&sim, &req, |t, _| ok(t.events.describe(&path)?)).await
}

pub(super) async fn delete_subscription(
    sim: Data,
    req: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    ofsc_call(&sim, &req, |t, _| {
        t.events.unsubscribe(&path)?;
        Ok(Reply::NoContent)
    })
    .await
}

pub(super) async fn events(
    sim: Data,
    req: HttpRequest,
    q: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    ofsc_call(&sim, &req, |t, _| {
        let id = q
            .get("subscriptionId")
            .ok_or_else(|| SimError::bad_request("subscriptionId is required"))?;
        let limit = q.get("limit").and_then(|s| s.parse().ok()).unwrap_or(100);
        if let Some(since) = q.get("since") {
            if q.contains_key("page") {
                return Err(SimError::bad_request(
                    "since and page cannot be used together",
                ));
            }
            return ok(t.events.since(id, since)?);
        }
        ok(t.events
            .read(id, q.get("page").map(String::as_str), limit)?)
    })
    .await
}
