//! Test controls outside the OFSC namespace: ledger, faults, dispatcher actions, reset, stats.

use super::faults::{FaultConfig, Faults};
use super::http::{error, Sim};
use super::model::{Call, SimError};
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;
use std::sync::atomic::Ordering;

type Data = web::Data<Sim>;

fn respond<T: serde::Serialize>(r: Result<T, SimError>) -> HttpResponse {
    match r {
        Ok(v) => HttpResponse::Ok().json(v),
        Err(e) => error(&e),
    }
}

async fn ledger(sim: Data) -> HttpResponse {
    HttpResponse::Ok().json(sim.with_tenant(|t| t.ledger.clone()))
}

async fn get_faults(sim: Data) -> HttpResponse {
    let cfg = sim
        .faults
        .lock()
        .map(|f| f.config().clone())
        .unwrap_or_default();
    HttpResponse::Ok().json(cfg)
}

async fn set_faults(sim: Data, body: web::Bytes) -> HttpResponse {
    let cfg: FaultConfig = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => {
            return error(&SimError::bad_request(format!(
                "Invalid fault settings: {e}"
            )))
        }
    };
    if [cfg.rate5xx, cfg.rate429, cfg.timeout_after_apply, cfg.reset]
        .iter()
        .any(|r| !(0.0..=1.0).contains(r))
    {
        return error(&SimError::bad_request("Rates must be between 0 and 1"));
    }
    match sim.faults.lock() {
        Ok(mut f) => *f = Faults::new(cfg.clone()),
        Err(p) => *p.into_inner() = Faults::new(cfg.clone()),
    }
    HttpResponse::Ok().json(cfg)
}

async fn reset(sim: Data) -> HttpResponse {
    match sim.reset() {
        Ok(()) => HttpResponse::NoContent().finish(),
        Err(e) => error(&SimError {
            status: 500,
            detail: e.to_string(),
        }),
    }
}

async fn expire_tokens(sim: Data) -> HttpResponse {
    if let Ok(mut t) = sim.tokens.lock() {
        t.clear();
    }
    HttpResponse::NoContent().finish()
}

async fn expire_subscriptions(sim: Data) -> HttpResponse {
    sim.with_tenant(|t| t.events.expire_all());
    HttpResponse::NoContent().finish()
}

async fn stats(sim: Data) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "activityListMaxRunning": sim.list_max_running.load(Ordering::SeqCst),
        "activityListRejected": sim.list_rejected.load(Ordering::SeqCst),
        "routeReads": sim.route_reads.load(Ordering::SeqCst),
        "vanPages": sim.van_pages.load(Ordering::SeqCst),
        "activityReads": sim.activity_reads.load(Ordering::SeqCst),
        "ledgerLength": sim.with_tenant(|t| t.ledger.len()),
    }))
}

#[derive(Debug, Deserialize)]
#[serde(tag = "action", rename_all = "camelCase")]
enum Dispatch {
    Cancel {
        #[serde(rename = "activityId")]
        activity_id: i64,
    },
    Move {
        #[serde(rename = "activityId")]
        activity_id: i64,
        #[serde(rename = "resourceId")]
        resource_id: String,
        date: String,
    },
    Add {
        #[serde(rename = "resourceId")]
        resource_id: String,
        date: String,
        #[serde(rename = "activityType", default)]
        activity_type: Option<String>,
    },
    /// Puts stock into a technician's van (as `POST /resources/{id}/inventories` does).
    Restock {
        #[serde(rename = "resourceId")]
        resource_id: String,
        #[serde(rename = "inventoryType")]
        inventory_type: String,
        quantity: f64,
    },
}

async fn dispatch(sim: Data, body: web::Bytes) -> HttpResponse {
    let d: Dispatch = match serde_json::from_slice(&body) {
        Ok(d) => d,
        Err(e) => {
            return error(&SimError::bad_request(format!(
                "Invalid dispatcher action: {e}"
            )))
        }
    };
    let call = Call {
        method: "POST".into(),
        path: "/__sim/dispatch".into(),
        source: "dispatcher",
    };
    respond(sim.with_tenant(|t| {
        match d {
            Dispatch::Cancel { activity_id } => t
                .activity_action(&call, activity_id, super::rules::Action::Cancel, &json!({}))
                .map(|a| json!(a)),
            Dispatch::Move {
                activity_id,
                resource_id,
                date,
            } => t
                .move_activity(&call, activity_id, &resource_id, &date)
                .and_then(|_| t.activity(activity_id).cloned())
                .map(|a| json!(a)),
            Dispatch::Add {
                resource_id,
                date,
                activity_type,
            } => {
                let body = json!({
                    "resourceId": resource_id, "date": date,
                    "activityType": activity_type.unwrap_or_else(|| "REPAIR".into()),
                    "customerName": "Added by dispatcher", "duration": 45,
                });
                let map = body.as_object().cloned().unwrap_or_default();
                t.create_activity(&call, map).map(|a| json!(a))
            }
            Dispatch::Restock {
                resource_id,
                inventory_type,
                quantity,
            } => t.resource(&resource_id).map(|_| ()).and_then(|()| {
                let inv = crate::ofsc::wire::Inventory {
                    status: "resource".into(),
                    inventory_type,
                    quantity: Some(quantity),
                    resource_id: Some(resource_id),
                    ..Default::default()
                };
                t.create_inventory(&call, inv).map(|i| json!(i))
            }),
        }
    }))
}

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/__sim")
            .route("/ledger", web::get().to(ledger))
            .route("/faults", web::get().to(get_faults))
            .route("/faults", web::post().to(set_faults))
            .route("/reset", web::post().to(reset))
            .route("/dispatch", web::post().to(dispatch))
            .route("/tokens/expire", web::post().to(expire_tokens))
            .route(
                "/subscriptions/expire",
                web::post().to(expire_subscriptions),
            )
            .route("/stats", web::get().to(stats)),
    );
}
