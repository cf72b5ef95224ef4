//! The simulator's HTTP surface under `/rest/ofscCore/v1` and the token endpoint: the shared
//! state, how every call goes through latency, faults and auth (`ofsc_call`), and the route
//! table. The handlers live in one submodule per family of OFSC paths.

use super::faults::{After, Before, Faults};
use super::model::{Call, SimError, SimResult, Tenant};
use super::seed;
use actix_web::{
    dev::ServerHandle, http::StatusCode, web, App, HttpRequest, HttpResponse, HttpServer,
};
use base64::Engine;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

mod activities;
pub mod capture;
mod events;
mod files;
mod resources;

const CORE: &str = "/rest/ofscCore/v1";

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
    /// Reads of a route page and of one activity: how much work callers caused.
    pub(super) route_reads: AtomicUsize,
    /// Pages of van stock read (`GET /resources/{id}/inventories`).
    pub(super) van_pages: AtomicUsize,
    pub(super) activity_reads: AtomicUsize,
    /// Recorded exchanges, while a test has capture on (`capture.rs`).
    capture: Mutex<Option<Vec<capture::Exchange>>>,
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
            list_slots: Arc::new(Semaphore::new(activities::LIST_RUNNING)),
            list_queued: AtomicUsize::new(0),
            list_running: AtomicUsize::new(0),
            list_max_running: AtomicUsize::new(0),
            list_rejected: AtomicUsize::new(0),
            route_reads: AtomicUsize::new(0),
            van_pages: AtomicUsize::new(0),
            activity_reads: AtomicUsize::new(0),
            capture: Mutex::new(None),
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

/// The `type` OFSC gives an error: the RFC 2616 section of its status code.
pub fn error_type(status: u16) -> String {
    let section = match status {
        400..=417 => format!("10.4.{}", status - 399),
        500..=505 => format!("10.5.{}", status - 499),
        // Not in RFC 2616 (429 is RFC 6585's).
        429 => return "https://www.rfc-editor.org/rfc/rfc6585#section-4".into(),
        _ => return "http://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html".into(),
    };
    format!("http://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#sec{section}")
}

pub(super) fn error(e: &SimError) -> HttpResponse {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    HttpResponse::build(status)
        .content_type("application/json")
        .json(json!({
            "type": error_type(e.status),
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
    json_reply(StatusCode::OK, v)
}

fn created<T: serde::Serialize>(v: T) -> SimResult<Reply> {
    json_reply(StatusCode::CREATED, v)
}

fn json_reply<T: serde::Serialize>(status: StatusCode, v: T) -> SimResult<Reply> {
    serde_json::to_value(v)
        .map(|v| Reply::Json(status, v))
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

/// Registers the OFSC routes. Specific sub-resources come before the generic file property.
pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/rest/oauthTokenService/v2/token", web::post().to(token))
        .service(
            web::scope(CORE)
                .route("/activities", web::get().to(activities::list_activities))
                .route("/activities", web::post().to(activities::create_activity))
                .route("/activities/{id}", web::get().to(activities::get_activity))
                .route(
                    "/activities/{id}",
                    web::patch().to(activities::patch_activity),
                )
                .route(
                    "/activities/{id}",
                    web::delete().to(activities::delete_activity),
                )
                .route(
                    "/activities/{id}/custom-actions/{action}",
                    web::post().to(activities::activity_action),
                )
                .route(
                    "/activities/{id}/customerInventories",
                    web::get().to(resources::activity_inventories),
                )
                .route(
                    "/activities/{id}/customerInventories",
                    web::post().to(resources::create_customer_inventory),
                )
                .route(
                    "/activities/{id}/installedInventories",
                    web::get().to(resources::activity_inventories),
                )
                .route(
                    "/activities/{id}/deinstalledInventories",
                    web::get().to(resources::activity_inventories),
                )
                .route("/activities/{id}/{label}", web::put().to(files::put_file))
                .route("/activities/{id}/{label}", web::get().to(files::get_file))
                .route(
                    "/activities/{id}/{label}",
                    web::delete().to(files::delete_file),
                )
                .route("/resources", web::get().to(resources::list_resources))
                .route(
                    "/resources/custom-actions/setPositions",
                    web::post().to(resources::set_positions),
                )
                .route("/resources/{rid}", web::get().to(resources::get_resource))
                .route(
                    "/resources/{rid}",
                    web::patch().to(resources::update_resource),
                )
                .route(
                    "/resources/{rid}/routes/{date}",
                    web::get().to(activities::get_route),
                )
                .route(
                    "/resources/{rid}/routes/{date}/custom-actions/{action}",
                    web::post().to(activities::route_action),
                )
                .route(
                    "/resources/{rid}/inventories",
                    web::get().to(resources::resource_inventories),
                )
                .route(
                    "/resources/{rid}/inventories",
                    web::post().to(resources::create_resource_inventory),
                )
                .route(
                    "/resources/{rid}/inventories/{iid}/custom-actions/install",
                    web::post().to(resources::install_from_van),
                )
                .route(
                    "/inventories/{iid}",
                    web::get().to(resources::get_inventory),
                )
                .route(
                    "/inventories/{iid}/custom-actions/{action}",
                    web::post().to(resources::inventory_action),
                )
                .route("/events/subscriptions", web::post().to(events::subscribe))
                .route(
                    "/events/subscriptions/{sid}",
                    web::get().to(events::get_subscription),
                )
                .route(
                    "/events/subscriptions/{sid}",
                    web::delete().to(events::delete_subscription),
                )
                .route("/events", web::get().to(events::events)),
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
                .wrap(actix_web::middleware::from_fn(capture::record))
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
