//! Optional recording of every OFSC exchange (method, path, query, bodies, status), so tests
//! can check what the connector sent and what the simulator answered against Oracle's
//! schema. Off unless a test turns it on.

use super::Sim;
use actix_web::body::{to_bytes, BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;
use serde_json::Value;

/// One request to `/rest/…` and its answer. Bodies are JSON when they parse as JSON.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub method: String,
    pub path: String,
    pub query: String,
    pub request: Option<Value>,
    pub status: u16,
    pub response: Option<Value>,
}

fn json_of(bytes: &[u8]) -> Option<Value> {
    serde_json::from_slice(bytes).ok()
}

impl Sim {
    /// Starts recording exchanges (dropping any recorded before).
    pub fn start_capture(&self) {
        *super::lock(&self.capture) = Some(Vec::new());
    }

    /// What was recorded since [`Sim::start_capture`].
    pub fn captured(&self) -> Vec<Exchange> {
        super::lock(&self.capture).clone().unwrap_or_default()
    }
}

pub(super) async fn record(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let on = req
        .app_data::<web::Data<Sim>>()
        .map(|s| super::lock(&s.capture).is_some())
        .unwrap_or(false);
    if !on || !req.path().starts_with("/rest/") {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    let sent = req.extract::<web::Bytes>().await.unwrap_or_default();
    req.set_payload(actix_web::dev::Payload::from(sent.clone()));
    let (method, path, query) = (
        req.method().to_string(),
        req.path().to_string(),
        req.query_string().to_string(),
    );
    let res = next.call(req).await?;
    let status = res.status().as_u16();
    let (http_req, res) = res.into_parts();
    let (res, body) = res.into_parts();
    let answered = to_bytes(body).await.unwrap_or_default();
    if let Some(sim) = http_req.app_data::<web::Data<Sim>>() {
        if let Some(log) = super::lock(&sim.capture).as_mut() {
            log.push(Exchange {
                method,
                path,
                query,
                request: json_of(&sent),
                status,
                response: json_of(&answered),
            });
        }
    }
    let res = res.set_body(BoxBody::new(answered));
    Ok(ServiceResponse::new(http_req, res))
}
