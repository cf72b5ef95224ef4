//! The simulator's resource endpoints: resources, van and customer inventories, inventory
//! actions, and technician positions.

use super::{activity_id, body_json, created, num_id, ofsc_call, ok, Data};
use crate::ofsc::wire::{Inventory, InventoryAction};
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;
use std::collections::HashMap;

pub(super) async fn list_resources(
    sim: Data,
    req: HttpRequest,
    q: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    ofsc_call(&sim, &req, |t, _| {
        let offset = q.get("offset").and_then(|s| s.parse().ok()).unwrap_or(0usize);
        let limit = q.get("limit").and_then(|s| s.parse::<usize>().ok()).unwrap_or(100).clamp(1, 100);
        let items: Vec<_> = t.resources.values().skip(offset).take(limit).cloned().collect();
        ok(json!({"items": items, "totalResults": t.resources.len(), "offset": offset, "limit": limit}))
    })
    .await
}

pub(super) async fn get_resource(
    sim: Data,
    req: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    ofsc_call(&sim, &req, |t, _| ok(t.resource(&path)?)).await
}

/// `PATCH /resources/{id}`: the fields given change (never the id); a `resourceUpdated`
/// event carries `resourceDetails` and the changes.
pub(super) async fn update_resource(
    sim: Data,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    ofsc_call(&sim, &req, |t, call| {
        let patch: serde_json::Map<String, serde_json::Value> = body_json(&body)?;
        ok(t.update_resource(call, &path, patch)?)
    })
    .await
}

/// One page of an inventory list, as OFSC pages them: `offset`, and `limit` of at most 100
/// (0, absent or more: 100). The answer is `{items}` alone, as Oracle's schema has it: a
/// reader knows the list ended from a page shorter than its limit.
fn inventory_page<'a>(
    all: impl Iterator<Item = &'a Inventory>,
    q: &HashMap<String, String>,
) -> serde_json::Value {
    let offset = q
        .get("offset")
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(0);
    let limit = q
        .get("limit")
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|n| (1..=100).contains(n))
        .unwrap_or(100);
    let items: Vec<Inventory> = all.skip(offset).take(limit).cloned().collect();
    json!({ "items": items })
}

pub(super) async fn resource_inventories(
    sim: Data,
    req: HttpRequest,
    path: web::Path<String>,
    q: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    sim.van_pages
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    ofsc_call(&sim, &req, |t, _| {
        ok(inventory_page(t.resource_inventories(&path)?, &q))
    })
    .await
}

pub(super) async fn create_resource_inventory(
    sim: Data,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    ofsc_call(&sim, &req, |t, call| {
        t.resource(&path)?;
        let mut inv: Inventory = body_json(&body)?;
        inv.status = "resource".into();
        inv.resource_id = Some(path.to_string());
        inv.activity_id = None;
        created(t.create_inventory(call, inv)?)
    })
    .await
}

pub(super) async fn install_from_van(
    sim: Data,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> HttpResponse {
    let (rid, iid) = path.into_inner();
    ofsc_call(&sim, &req, |t, call| {
        let b: InventoryAction = body_json(&body)?;
        ok(t.install_from_van(call, &rid, num_id(&iid)?, &b)?)
    })
    .await
}

pub(super) async fn inventory_action(
    sim: Data,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> HttpResponse {
    let (iid, action) = path.into_inner();
    ofsc_call(&sim, &req, |t, call| {
        let b: InventoryAction = body_json(&body)?;
        ok(t.inventory_action(call, num_id(&iid)?, &action, &b)?)
    })
    .await
}

pub(super) async fn get_inventory(
    sim: Data,
    req: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    ofsc_call(&sim, &req, |t, _| ok(t.inventory(num_id(&path)?)?)).await
}

pub(super) async fn activity_inventories(
    sim: Data,
    req: HttpRequest,
    path: web::Path<String>,
    q: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    let which = req.path().rsplit('/').next().unwrap_or("").to_string();
    let status = match which.as_str() {
        "customerInventories" => "customer",
        "installedInventories" => "installed",
        _ => "deinstalled",
    };
    ofsc_call(&sim, &req, |t, _| {
        ok(inventory_page(
            t.activity_inventories(activity_id(&path)?, status)?,
            &q,
        ))
    })
    .await
}

pub(super) async fn create_customer_inventory(
    sim: Data,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    ofsc_call(&sim, &req, |t, call| {
        let id = activity_id(&path)?;
        t.activity(id)?;
        let mut inv: Inventory = body_json(&body)?;
        inv.status = "customer".into();
        inv.activity_id = Some(id);
        inv.resource_id = None;
        created(t.create_inventory(call, inv)?)
    })
    .await
}

pub(super) async fn set_positions(sim: Data, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    ofsc_call(&sim, &req, |t, call| {
        // Items are read one by one: a malformed one is that item's error, as in OFSC.
        #[derive(serde::Deserialize)]
        struct Body {
            items: Vec<serde_json::Value>,
        }
        let b: Body = body_json(&body)?;
        ok(t.set_positions(call, b.items)?)
    })
    .await
}
