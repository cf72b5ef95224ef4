//! `POST /sessions` (password or OpenID Connect ID token), `POST /sessions/refresh`,
//! `DELETE /sessions`.

use super::ApiError;
use crate::auth::refresh::{self, Pair};
use crate::auth::totp::{self, TotpCheck};
use crate::auth::users::{self, User};
use crate::auth::{password, sso, AuthError, Principal};
use crate::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

/// Token answers are never cached, by browsers or proxies (RFC 6749 §5.1).
const NO_STORE: (&str, &str) = ("Cache-Control", "no-store");

/// A sign-in: a local user's password (and TOTP), or an ID token from the company's
/// OpenID provider (with the `nonce` the app put in its authorization request, if any).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Login {
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    device_id: String,
    #[serde(default)]
    totp: Option<String>,
    #[serde(default)]
    id_token: Option<String>,
    #[serde(default)]
    nonce: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Refresh {
    refresh_token: String,
    device_id: String,
    /// For a session begun with an ID token, when `[oidc] recheck_secs` is set: the
    /// provider's current access token, shown to its userinfo endpoint.
    #[serde(default)]
    provider_access_token: Option<String>,
}

fn check_device(device: &str) -> Result<(), ApiError> {
    if device.is_empty() || device.chars().count() > 128 || device.chars().any(char::is_control) {
        return Err(ApiError::BadRequest {
            code: "invalid-device-id",
            detail: "deviceId must be 1-128 printable characters".into(),
        });
    }
    Ok(())
}

fn session_body(state: &AppState, pair: &Pair, user: &User) -> serde_json::Value {
    json!({
        "accessToken": pair.access_token,
        "refreshToken": pair.refresh_token,
        "expiresIn": (pair.claims.exp - chrono::Utc::now().timestamp()).max(0).min(state.keys.access_ttl_secs),
        "tokenType": "Bearer",
        "user": {"id": user.id, "role": user.role, "resourceId": user.resource_id, "name": user.name},
    })
}

fn bad_credentials() -> ApiError {
    ApiError::Unauthorized {
        code: "invalid-credentials",
        detail: "the username or password is wrong".into(),
    }
}

pub async fn create(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<Login>,
) -> Result<HttpResponse, ApiError> {
    let login = body.into_inner();
    check_device(&login.device_id)?;
    let addr = req
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    let (user, sso_sub) = match (&login.id_token, &login.username, &login.password) {
        (Some(token), None, None) if login.totp.is_none() => {
            let (user, sub) = sso_login(&state, &addr, token, login.nonce.as_deref()).await?;
            (user, Some(sub))
        }
        (None, Some(username), Some(password)) if login.nonce.is_none() => (
            password_login(&state, &addr, username, password, login.totp.as_deref()).await?,
            None,
        ),
        _ => {
            return Err(ApiError::BadRequest {
                code: "invalid-body",
                detail: "send either username and password (and totp), or idToken (and nonce)"
                    .into(),
            })
        }
    };
    let ttl = chrono::Duration::days(state.refresh_ttl_days);
    let pair = refresh::start(
        state.store.as_ref(),
        &state.keys,
        &user,
        &login.device_id,
        ttl,
        sso_sub,
    )?;
    state.commit.flush().await?;
    tracing::info!(user = %user.username, device = %login.device_id, "session started");
    Ok(HttpResponse::Created()
        .insert_header(NO_STORE)
        .json(session_body(&state, &pair, &user)))
}

/// A local user's password, and TOTP when enrolled.
pub(crate) async fn password_login(
    state: &AppState,
    addr: &str,
    username: &str,
    password: &str,
    totp_code: Option<&str>,
) -> Result<User, ApiError> {
    state
        .throttle
        .check(username, addr)
        .map_err(|retry_after_secs| ApiError::TooManyRequests { retry_after_secs })?;
    let user = users::get(state.store.as_ref(), username)?;
    // A user only the identity provider signs in has no hash: it costs the decoy's time too.
    let hash = user
        .as_ref()
        .map(|u| u.password_hash.clone())
        .filter(|h| !h.is_empty());
    let has_hash = hash.is_some();
    let hash = hash.unwrap_or_else(|| password::decoy().to_string());
    let pw = password.to_string();
    let matches = web::block(move || password::verify(&pw, &hash))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let user = match user {
        Some(u) if matches && has_hash && !u.disabled => u,
        _ => {
            state.throttle.record_failure(username, addr);
            return Err(bad_credentials());
        }
    };
    if let Some(secret) = &user.totp_secret {
        let Some(code) = totp_code else {
            return Err(ApiError::Unauthorized {
                code: "mfa-required",
                detail: "a TOTP code is required for this user".into(),
            });
        };
        let now = chrono::Utc::now().timestamp().max(0) as u64;
        match totp::check(secret, code, user.totp_last_step, now) {
            TotpCheck::Valid(step) => {
                users::record_totp_step(state.store.as_ref(), &user.username, step)?
            }
            TotpCheck::Replayed => {
                return Err(ApiError::Unauthorized {
                    code: "totp-replayed",
                    detail: "this TOTP code was already used".into(),
                })
            }
            TotpCheck::Invalid => {
                state.throttle.record_failure(username, addr);
                return Err(ApiError::Unauthorized {
                    code: "invalid-totp",
                    detail: "the TOTP code is wrong".into(),
                });
            }
        }
    }
    state.throttle.record_success(username, addr);
    Ok(user)
}

/// The throttle's "user" for ID-token sign-ins: forged tokens from one address are
/// throttled like wrong passwords, whoever they claim to be.
const SSO_SUBJECT: &str = "\u{0}sso";

/// An ID token from the configured OpenID provider, mapped to a user (`auth::sso`); answers
/// the user and the provider's `sub` for them.
async fn sso_login(
    state: &AppState,
    addr: &str,
    token: &str,
    nonce: Option<&str>,
) -> Result<(User, String), ApiError> {
    let Some(verifier) = &state.oidc else {
        // No provider is trusted here, so the token cannot authenticate anyone: a 401, as
        // for any credential this server does not accept.
        return Err(ApiError::Unauthorized {
            code: "sso-not-configured",
            detail: "single sign-on is not configured on this server".into(),
        });
    };
    state
        .throttle
        .check(SSO_SUBJECT, addr)
        .map_err(|retry_after_secs| ApiError::TooManyRequests { retry_after_secs })?;
    let claims = match verifier.verify(token, nonce).await {
        Ok(c) => c,
        Err(e) => {
            if matches!(e, AuthError::Unauthorized { .. }) {
                state.throttle.record_failure(SSO_SUBJECT, addr);
            }
            return Err(e.into());
        }
    };
    let settings = verifier.settings();
    let id = sso::identity(settings, &claims)?;
    let user = sso::admit(state.store.as_ref(), settings, &id)?;
    state.throttle.record_success(SSO_SUBJECT, addr);
    let sub = claims
        .get("sub")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_string();
    Ok((user, sub))
}

/// For a session begun with an ID token, at most once per `[oidc] recheck_secs`: the
/// provider must still answer for the user, through its userinfo endpoint, to the access
/// token the device holds from it now. A refusal there ends the session.
async fn recheck_provider(state: &AppState, body: &Refresh) -> Result<(), ApiError> {
    let Some(verifier) = &state.oidc else {
        return Ok(());
    };
    let every = verifier.settings().recheck_secs;
    if every == 0 {
        return Ok(());
    }
    let store = state.store.as_ref();
    let Some(family) = refresh::family_of_token(store, &body.refresh_token)? else {
        return Ok(());
    };
    let Some(link) = &family.sso else {
        return Ok(());
    };
    if chrono::Utc::now() - link.checked_at < chrono::Duration::seconds(every as i64) {
        return Ok(());
    }
    let Some(token) = body.provider_access_token.as_deref() else {
        return Err(ApiError::Unauthorized {
            code: "sso-recheck-required",
            detail:
                "send providerAccessToken: the identity provider must vouch for this session again"
                    .into(),
        });
    };
    let vouched = verifier
        .userinfo(token)
        .await?
        .is_some_and(|c| c.get("sub").and_then(serde_json::Value::as_str) == Some(&link.sub));
    if !vouched {
        refresh::revoke(
            store,
            &family.id,
            "the identity provider no longer vouches for the user",
        )?;
        state.commit.flush().await?;
        return Err(ApiError::Unauthorized {
            code: "sso-recheck-failed",
            detail: "the identity provider no longer vouches for this user; sign in again".into(),
        });
    }
    refresh::sso_checked(store, &family.id)?;
    Ok(())
}

/// The throttle's "user" for refresh attempts: the device that makes them, so a guessing
/// client locks out its own device and address, not its owner's other phone.
fn refresh_subject(device_id: &str) -> String {
    format!("\u{0}refresh\u{0}{device_id}")
}

pub async fn refresh(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<Refresh>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    check_device(&body.device_id)?;
    let addr = req
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    // Failed refreshes count like failed logins: per device and address, per address, and
    // per device everywhere, so refresh tokens cannot be guessed at line rate.
    let subject = refresh_subject(&body.device_id);
    state
        .throttle
        .check(&subject, &addr)
        .map_err(|retry_after_secs| ApiError::TooManyRequests { retry_after_secs })?;
    let rotated = rotate_refresh(&state, &body).await;
    match &rotated {
        Err(ApiError::Unauthorized { .. }) => state.throttle.record_failure(&subject, &addr),
        Ok(_) => state.throttle.record_success(&subject, &addr),
        Err(_) => {}
    }
    rotated
}

/// Rotates the refresh token (durably) and answers the new pair.
async fn rotate_refresh(state: &AppState, body: &Refresh) -> Result<HttpResponse, ApiError> {
    recheck_provider(state, body).await?;
    let store = state.store.as_ref();
    let epoch_of = |username: &str| -> Result<Option<u32>, AuthError> {
        Ok(users::get(store, username)?
            .filter(|u| !u.disabled)
            .map(|u| u.epoch))
    };
    let pair = refresh::rotate(
        store,
        &state.keys,
        &body.refresh_token,
        &body.device_id,
        epoch_of,
    )?;
    state.commit.flush().await?;
    let family = refresh::family(store, &pair.claims.fam)?.ok_or(ApiError::NotFound)?;
    let user = users::get(store, &family.username)?.ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok()
        .insert_header(NO_STORE)
        .json(session_body(state, &pair, &user)))
}

pub async fn delete(state: web::Data<AppState>, who: Principal) -> Result<HttpResponse, ApiError> {
    refresh::revoke(state.store.as_ref(), &who.family, "signed out")?;
    state.commit.flush().await?;
    Ok(HttpResponse::NoContent().finish())
}
