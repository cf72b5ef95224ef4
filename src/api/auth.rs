//! The `Principal` extractor: bearer access token → verified claims → live session and user.

use super::ApiError;
use crate::auth::{refresh, AuthError, Principal};
use crate::state::AppState;
use actix_web::{dev::Payload, web, FromRequest, HttpMessage, HttpRequest};
use std::future::{ready, Ready};

fn unauthorized(code: &'static str, detail: &str) -> ApiError {
    ApiError::Unauthorized {
        code,
        detail: detail.into(),
    }
}

fn authenticate(req: &HttpRequest) -> Result<Principal, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::Internal("application state missing".into()))?;
    let header = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .ok_or_else(|| unauthorized("missing-token", "a bearer access token is required"))?;
    let claims = state.keys.verify(token.trim())?;
    let (family, user) = refresh::live(state.store.as_ref(), &claims.fam)?
        .filter(|(_, user)| user.id == claims.sub)
        .ok_or_else(|| AuthError::unauthorized("session-revoked", "the session was revoked"))?;
    // The device claim must be the session's own: a token minted for one device cannot
    // speak for another of the same session family.
    if family.device_id != claims.did {
        return Err(unauthorized(
            "device-mismatch",
            "the access token was issued to another device",
        ));
    }
    if let Some(device) = req
        .headers()
        .get("x-device-id")
        .and_then(|v| v.to_str().ok())
    {
        if device != claims.did {
            return Err(unauthorized(
                "device-mismatch",
                "the access token was issued to another device",
            ));
        }
    }
    Ok(Principal {
        user_id: user.id,
        username: user.username,
        name: user.name,
        role: user.role,
        resource_id: user.resource_id,
        oversees: user.oversees,
        oversees_parent: user.oversees_parent,
        device_id: claims.did,
        family: claims.fam,
        request_id: req
            .extensions()
            .get::<crate::api::middleware::RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default(),
        client_request_id: req
            .extensions()
            .get::<crate::api::middleware::ClientRequestId>()
            .map(|r| r.0.clone()),
    })
}

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = Ready<Result<Principal, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req))
    }
}
