//! The simulator's HTTP surface under `/rest/ofscCore/v1` and the token endpoint.

use super::faults::{After, Before, Faults};
use super::model::{Call, SimError, SimResult, Tenant};
use super::query;
use super::rules::Action;
use super::seed;
use crate::ofsc::wire::{Inventory, InventoryAction, Position};
use actix_web::{
    dev::ServerHandle, http::StatusCode, web, App, HttpRequest, HttpResponse, HttpServer,
};
use base64::Engine;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

const CORE: &str = "/rest/ofscCore/v1";
/// OFSC runs at most 3 `GET /activities` at once, queues 10 more for up to 30 s, then refuses.
const LIST_RUNNING: usize = 3;
const LIST_QUEUED: usize = 10;
const LIST_WAIT: Duration = Duration::from_secs(30);
const FILE_LIMIT: usize = 5 * 1024 * 1024;

/// The simulator's shared state.
pub struct Sim {
    pub(super) tenant: Mutex<Tenant>,
    pub(super) faults: Mutex<Faults>,
    pub(super) tokens: Mutex<HashMap<String, Instant>>,
    pub(super) seed: seed::SeedFile,
    credentials: String,
    list_slots: Arc<Semaphore>,
    pub(super) list_queued: AtomicUsize,
    pub(super) list_running: AtomicUsize,
    pub(super) list_max_running: AtomicUsize,
    pub(super) list_rejected: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Sim {
    pub fn new(seed: seed::SeedFile) -> Result<Sim, seed::SeedError> {
        let tenant = Tenant::from_seed(&seed::expand(&seed)?);
        Ok(Sim {
            tenant: Mutex::new(tenant),
            faults: Mutex::new(Faults::default()),
            tokens: Mutex::new(HashMap::new()),
            seed,
            credentials: "fieldsync-demo@demo:demo".into(),
            list_slots: Arc::new(Semaphore::new(LIST_RUNNING)),
            list_queued: AtomicUsize::new(0),
            list_running: AtomicUsize::new(0),
            list_max_running: AtomicUsize::new(0),
            list_rejected: AtomicUsize::new(0),
        })
    }

    /// Runs `f` on the tenant under the lock.
    pub fn with_tenant<R>(&self, f: impl FnOnce(&mut Tenant) -> R) -> R {
        f(&mut lock(&self.tenant))
    }

    pub(super) fn reset(&self) -> Result<(), seed::SeedError> {
        let fresh = Tenant::from_seed(&seed::expand(&self.seed)?);
        *lock(&self.tenant) = fresh;
        *lock(&self.faults) = Faults::default();
        lock(&self.tokens).clear();
        Ok(())
    }

    fn basic_ok(&self, header: &str) -> bool {
        let Some(b64) = header.strip_prefix("Basic ") else {
            return false;
        };
        base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map(|raw| raw == self.credentials.as_bytes())
            .unwrap_or(false)
    }

    fn authorize(&self, req: &HttpRequest) -> Result<(), SimError> {
        let header = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if self.basic_ok(header) {
            return Ok(());
        }
        if let Some(token) = header.strip_prefix("Bearer ") {
            if lock(&self.tokens)
                .get(token.trim())
                .is_some_and(|exp| Instant::now() < *exp)
            {
                return Ok(());
            }
            return Err(SimError {
                status: 401,
                detail: "The access token is invalid or has expired".into(),
            });
        }
        Err(SimError {
            status: 401,
            detail: "Authentication failed".into(),
        })
    }
}

pub(super) fn error(e: &SimError) -> HttpResponse {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    HttpResponse::build(status).content_type("application/json").json(json!({
        "type": format!("http://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#sec10.{}", e.status),
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": e.status.to_string(),
        "detail": e.detail,
    }))
}

/// What a handler answers before post-apply faults.
pub(super) enum Reply {
    Json(StatusCode, Value),
    NoContent,
    Bytes(String, bytes::Bytes),
}

fn ok<T: serde::Serialize>(v: T) -> SimResult<Reply> {
    serde_json::to_value(v)
        .map(|v| Reply::Json(StatusCode::OK, v))
        .map_err(|e| SimError {
            status: 500,
            detail: e.to_string(),
        })
}

fn body_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> SimResult<T> {
    let text = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(text)
        .map_err(|e| SimError::bad_request(format!("Invalid request body: {e}")))
}

fn activity_id(raw: &str) -> SimResult<i64> {
    match raw.parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(SimError::bad_request(format!(
            "Invalid activity id '{raw}'"
        ))),
    }
}

fn num_id(raw: &str) -> SimResult<i64> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| SimError::bad_request(format!("Invalid id '{raw}'")))
}

/// Runs one OFSC call through latency, pre-apply faults, auth, the state change and post-apply
/// faults, in that order.
pub(super) async fn ofsc_call(
    sim: &Sim,
    req: &HttpRequest,
    f: impl FnOnce(&mut Tenant, &Call) -> SimResult<Reply>,
) -> HttpResponse {
    let latency = lock(&sim.faults).latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let before = lock(&sim.faults).before();
    match before {
        Before::ServerError => {
            return error(&SimError {
                status: 500,
                detail: "Injected server error".into(),
            })
        }
        Before::Throttle { retry_after_secs } => {
            let mut resp = error(&SimError {
                status: 429,
                detail: "Too many requests".into(),
            });
            if let Ok(v) = retry_after_secs.to_string().parse() {
                resp.headers_mut()
                    .insert(actix_web::http::header::RETRY_AFTER, v);
            }
            return resp;
        }
        Before::Proceed => {}
    }
    if let Err(e) = sim.authorize(req) {
        return error(&e);
    }
    let call = Call {
        method: req.method().to_string(),
        path: req.path().to_string(),
        source: "api",
    };
    let result = f(&mut lock(&sim.tenant), &call);
    let resp = match result {
        Ok(Reply::Json(status, v)) => HttpResponse::build(status).json(v),
        Ok(Reply::NoContent) => HttpResponse::NoContent().finish(),
        Ok(Reply::Bytes(media, data)) => HttpResponse::Ok().content_type(media).body(data),
        Err(e) => error(&e),
    };
    let after = lock(&sim.faults).after();
    match after {
        After::Answer => resp,
        After::Hang(d) => {
            tokio::time::sleep(d).await;
            resp
        }
        After::Reset => broken_response(),
    }
}

/// Headers, then a body that fails: the client sees the connection drop mid-answer.
fn broken_response() -> HttpResponse {
    let stream = futures_util::stream::once(async {
        Err::<bytes::Bytes, actix_web::Error>(actix_web::error::ErrorInternalServerError(
            "injected reset",
        ))
    });
    HttpResponse::Ok()
        .content_type("application/json")
        .streaming(stream)
}

type Data = web::Data<Sim>;

async fn token(sim: Data, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let latency = lock(&sim.faults).latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let header = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !sim.basic_ok(header) {
        return error(&SimError {
            status: 401,
            detail: "Invalid client credentials".into(),
        });
    }
    let form = String::from_utf8_lossy(&body);
    let grant = form
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "grant_type")
        .map(|(_, v)| v.to_string());
    if grant.as_deref() != Some("client_credentials") {
        return HttpResponse::BadRequest().json(json!({"error": "unsupported_grant_type"}));
    }
    let ttl = lock(&sim.faults).token_ttl_secs();
    let value = hex::encode(rand::random::<[u8; 24]>());
    lock(&sim.tokens).insert(value.clone(), Instant::now() + Duration::from_secs(ttl));
    HttpResponse::Ok()
        .json(json!({"access_token": value, "token_type": "bearer", "expires_in": ttl}))
}

async fn list_activities(
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
        let range = query::date_range(
            get("dateFrom"),
            get("dateTo"),
            get("includeNonScheduled") == Some("true"),
        )?;
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
                (Some(_), None) => false,
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

async fn create_activity(sim: Data, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    ofsc_call(&sim, &req, |t, call| {
        let a = t.create_activity(call, body_json(&body)?)?;
        Ok(Reply::Json(
            StatusCode::CREATED,
            serde_json::to_value(a).unwrap_or_default(),
        ))
    })
    .await
}

async fn get_activity(sim: Data, req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    ofsc_call(&sim, &req, |t, _| ok(t.activity(activity_id(&path)?)?)).await
}

async fn patch_activity(
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

async fn delete_activity(sim: Data, req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    ofsc_call(&sim, &req, |t, call| {
        t.delete_activity(call, activity_id(&path)?)?;
        Ok(Reply::NoContent)
    })
    .await
}

async fn activity_action(
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

async fn get_route(
    sim: Data,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    q: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    let (rid, date) = path.into_inner();
    ofsc_call(&sim, &req, |t, _| {
        let offset = q.get("offset").and_then(|s| s.parse().ok()).unwrap_or(0);
        let limit = q
            .get("limit")
            .and_then(|s| s.parse::<usize>().ok())
            .unwrap_or(100)
            .clamp(1, 100);
        ok(t.route(&rid, &date, offset, limit)?)
    })
    .await
}

async fn route_action(
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

async fn list_resources(
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

async fn get_resource(sim: Data, req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    ofsc_call(&sim, &req, |t, _| ok(t.resource(&path)?)).await
}

async fn resource_inventories(
    sim: Data,
    req: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    ofsc_call(&sim, &req, |t, _| {
        ok(json!({"items": t.resource_inventories(&path)?}))
    })
    .await
}

async fn create_resource_inventory(
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
        let created = t.create_inventory(call, inv)?;
        Ok(Reply::Json(
            StatusCode::CREATED,
            serde_json::to_value(created).unwrap_or_default(),
        ))
    })
    .await
}

async fn install_from_van(
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

async fn inventory_action(
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

async fn get_inventory(sim: Data, req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    ofsc_call(&sim, &req, |t, _| ok(t.inventory(num_id(&path)?)?)).await
}

async fn activity_inventories(
    sim: Data,
    req: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    let which = req.path().rsplit('/').next().unwrap_or("").to_string();
    let status = match which.as_str() {
        "customerInventories" => "customer",
        "installedInventories" => "installed",
        _ => "deinstalled",
    };
    ofsc_call(&sim, &req, |t, _| {
        ok(json!({"items": t.activity_inventories(activity_id(&path)?, status)?}))
    })
    .await
}

async fn create_customer_inventory(
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
        let created = t.create_inventory(call, inv)?;
        Ok(Reply::Json(
            StatusCode::CREATED,
            serde_json::to_value(created).unwrap_or_default(),
        ))
    })
    .await
}

async fn put_file(
    sim: Data,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> HttpResponse {
    let (id, label) = path.into_inner();
    let media = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_string();
    let name = req
        .headers()
        .get("content-disposition")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split("filename=").nth(1))
        .map(|n| n.trim_matches('"').to_string())
        .unwrap_or_else(|| label.clone());
    ofsc_call(&sim, &req, |t, call| {
        let id = activity_id(&id)?;
        t.activity(id)?;
        if body.len() > FILE_LIMIT {
            return Err(SimError::bad_request(
                "File size exceeds the 5 MB limit of a file property",
            ));
        }
        t.files.insert(
            (id, label.clone()),
            super::model::StoredFile {
                name,
                media_type: media,
                data: body.clone(),
            },
        );
        t.log(call, Some(id), Some("putFile"), None);
        Ok(Reply::NoContent)
    })
    .await
}

async fn get_file(sim: Data, req: HttpRequest, path: web::Path<(String, String)>) -> HttpResponse {
    let (id, label) = path.into_inner();
    let accept = req
        .headers()
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    ofsc_call(&sim, &req, |t, _| {
        let id = activity_id(&id)?;
        t.activity(id)?;
        let f = t
            .files
            .get(&(id, label.clone()))
            .ok_or_else(|| SimError::not_found(format!("Property '{label}' has no file")))?;
        if accept.is_empty() || accept == "*/*" || accept.contains("application/json") {
            return ok(json!({"name": f.name, "size": f.data.len(), "mediaType": f.media_type}));
        }
        Ok(Reply::Bytes(f.media_type.clone(), f.data.clone()))
    })
    .await
}

async fn delete_file(
    sim: Data,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (id, label) = path.into_inner();
    ofsc_call(&sim, &req, |t, call| {
        let id = activity_id(&id)?;
        t.files
            .remove(&(id, label.clone()))
            .ok_or_else(|| SimError::not_found(format!("Property '{label}' has no file")))?;
        t.log(call, Some(id), Some("deleteFile"), None);
        Ok(Reply::NoContent)
    })
    .await
}

async fn set_positions(sim: Data, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    ofsc_call(&sim, &req, |t, call| {
        #[derive(serde::Deserialize)]
        struct Body {
            items: Vec<Position>,
        }
        let b: Body = body_json(&body)?;
        ok(t.set_positions(call, b.items)?)
    })
    .await
}

async fn subscribe(sim: Data, req: HttpRequest, body: web::Bytes) -> HttpResponse {
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

async fn get_subscription(sim: Data, req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    ofsc_call(&sim, &req, |t, _| ok(t.events.describe(&path)?)).await
}

async fn delete_subscription(sim: Data, req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    ofsc_call(&sim, &req, |t, _| {
        t.events.unsubscribe(&path)?;
        Ok(Reply::NoContent)
    })
    .await
}

async fn events(
    sim: Data,
    req: HttpRequest,
    q: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    ofsc_call(&sim, &req, |t, _| {
        let id = q
            .get("subscriptionId")
            .ok_or_else(|| SimError::bad_request("subscriptionId is required"))?;
        let limit = q.get("limit").and_then(|s| s.parse().ok()).unwrap_or(100);
        ok(t.events
            .read(id, q.get("page").map(String::as_str), limit)?)
    })
    .await
}

/// Registers the OFSC routes. Specific sub-resources come before the generic file property.
pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/rest/oauthTokenService/v2/token", web::post().to(token))
        .service(
            web::scope(CORE)
                .route("/activities", web::get().to(list_activities))
                .route("/activities", web::post().to(create_activity))
                .route("/activities/{id}", web::get().to(get_activity))
                .route("/activities/{id}", web::patch().to(patch_activity))
                .route("/activities/{id}", web::delete().to(delete_activity))
                .route(
                    "/activities/{id}/custom-actions/{action}",
                    web::post().to(activity_action),
                )
                .route(
                    "/activities/{id}/customerInventories",
                    web::get().to(activity_inventories),
                )
                .route(
                    "/activities/{id}/customerInventories",
                    web::post().to(create_customer_inventory),
                )
                .route(
                    "/activities/{id}/installedInventories",
                    web::get().to(activity_inventories),
                )
                .route(
                    "/activities/{id}/deinstalledInventories",
                    web::get().to(activity_inventories),
                )
                .route("/activities/{id}/{label}", web::put().to(put_file))
                .route("/activities/{id}/{label}", web::get().to(get_file))
                .route("/activities/{id}/{label}", web::delete().to(delete_file))
                .route("/resources", web::get().to(list_resources))
                .route(
                    "/resources/custom-actions/setPositions",
                    web::post().to(set_positions),
                )
                .route("/resources/{rid}", web::get().to(get_resource))
                .route("/resources/{rid}/routes/{date}", web::get().to(get_route))
                .route(
                    "/resources/{rid}/routes/{date}/custom-actions/{action}",
                    web::post().to(route_action),
                )
                .route(
                    "/resources/{rid}/inventories",
                    web::get().to(resource_inventories),
                )
                .route(
                    "/resources/{rid}/inventories",
                    web::post().to(create_resource_inventory),
                )
                .route(
                    "/resources/{rid}/inventories/{iid}/custom-actions/install",
                    web::post().to(install_from_van),
                )
                .route("/inventories/{iid}", web::get().to(get_inventory))
                .route(
                    "/inventories/{iid}/custom-actions/{action}",
                    web::post().to(inventory_action),
                )
                .route("/events/subscriptions", web::post().to(subscribe))
                .route(
                    "/events/subscriptions/{sid}",
                    web::get().to(get_subscription),
                )
                .route(
                    "/events/subscriptions/{sid}",
                    web::delete().to(delete_subscription),
                )
                .route("/events", web::get().to(events)),
        );
}

/// A running simulator bound to a port.
pub struct SimServer {
    pub port: u16,
    pub sim: Arc<Sim>,
    handle: ServerHandle,
}

impl SimServer {
    /// Binds `listen` (port 0 picks a free port) and serves in the background.
    pub fn start(listen: &str, sim: Sim, workers: usize) -> std::io::Result<SimServer> {
        let listener = TcpListener::bind(listen)?;
        let port = listener.local_addr()?.port();
        let data = web::Data::new(sim);
        let shared = data.clone().into_inner();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(8 * 1024 * 1024))
                .app_data(web::QueryConfig::default().error_handler(|e, _| {
                    actix_web::error::InternalError::from_response(
                        e,
                        error(&SimError::bad_request("Invalid query string")),
                    )
                    .into()
                }))
                .configure(routes)
                .configure(super::control::routes)
        })
        .workers(workers.max(1))
        .disable_signals()
        .listen(listener)?
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Ok(SimServer {
            port,
            sim: shared,
            handle,
        })
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub async fn stop(&self) {
        self.handle.stop(true).await;
    }
}
