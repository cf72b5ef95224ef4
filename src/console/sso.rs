//! "Sign in with SSO" for the console: the server-side authorization-code flow with PKCE,
//! `state` and `nonce` against the `[oidc]` provider, ending in the same cookie session as a
//! password sign-in.

use super::guard::over_tls;
use super::session;
use super::ConsoleError;
use crate::api::ApiError;
use crate::auth::{sso, Role};
use crate::state::AppState;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The cookie that ties the provider's redirect back to the browser that left.
const STATE_COOKIE: &str = "fs_sso_state";
/// A sign-in not finished within this is forgotten.
const FLOW_TTL: Duration = Duration::from_secs(600);
/// Sign-ins in flight at most; past it the oldest are dropped.
const MAX_FLOWS: usize = 10_000;

struct Flow {
    verifier: String,
    nonce: String,
    redirect_uri: String,
    started: Instant,
}

/// Sign-ins in flight, by `state`. In memory: a restart in the middle costs a retry.
#[derive(Default)]
pub struct Flows(Mutex<HashMap<String, Flow>>);

impl Flows {
    fn put(&self, state: String, flow: Flow) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, f| f.started.elapsed() < FLOW_TTL);
        if map.len() >= MAX_FLOWS {
            map.clear();
        }
        map.insert(state, flow);
    }

    fn take(&self, state: &str) -> Option<Flow> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(state).filter(|f| f.started.elapsed() < FLOW_TTL)
    }
}

fn random() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// The PKCE S256 challenge of a verifier (RFC 7636 §4.2).
pub fn challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(crate::store::record::sha256(verifier.as_bytes()))
}

fn verifier_of(state: &AppState) -> Result<&crate::auth::oidc::Verifier, ConsoleError> {
    state.oidc.as_deref().ok_or(ConsoleError::NotFound)
}

fn callback_url(req: &HttpRequest, state: &AppState) -> String {
    let origin = crate::api::origin::of(req, &state.origin);
    format!("{}/console/sso/callback", origin.base)
}

/// Sends the browser to the provider.
pub async fn start(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ConsoleError> {
    let oidc = verifier_of(&state)?;
    let provider = oidc.provider().await?;
    let authorize = provider.authorization_endpoint.ok_or_else(|| {
        ConsoleError::Unavailable("the provider has no authorization endpoint".into())
    })?;
    let settings = oidc.settings();
    let (flow_state, nonce, verifier) = (random(), random(), random());
    let redirect_uri = callback_url(&req, &state);
    let scopes = settings.scopes.join(" ");
    let url = reqwest::Url::parse_with_params(
        &authorize,
        &[
            ("response_type", "code"),
            ("client_id", settings.console_client()),
            ("redirect_uri", redirect_uri.as_str()),
            ("scope", scopes.as_str()),
            ("state", flow_state.as_str()),
            ("nonce", nonce.as_str()),
            ("code_challenge", challenge(&verifier).as_str()),
            ("code_challenge_method", "S256"),
        ],
    )
    .map_err(|e| ConsoleError::Unavailable(format!("the authorization endpoint: {e}")))?;
    state.sso_flows.put(
        flow_state.clone(),
        Flow {
            verifier,
            nonce,
            redirect_uri,
            started: Instant::now(),
        },
    );
    // Lax, not Strict: the provider's redirect back is a cross-site navigation.
    let cookie = Cookie::build(STATE_COOKIE, flow_state)
        .path("/console/sso")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(over_tls(&req, &state))
        .max_age(actix_web::cookie::time::Duration::seconds(
            FLOW_TTL.as_secs() as i64,
        ))
        .finish();
    Ok(HttpResponse::SeeOther()
        .cookie(cookie)
        .insert_header(("Location", url.as_str()))
        .finish())
}

#[derive(Deserialize)]
pub struct Callback {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
    #[serde(default)]
    iss: Option<String>,
}

/// The provider's answer: checks `state` against this browser's cookie, redeems the code
/// with the PKCE verifier, verifies the ID token (with the nonce), maps the user, starts a
/// console session.
pub async fn callback(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<Callback>,
) -> Result<HttpResponse, ConsoleError> {
    let oidc = verifier_of(&state)?;
    let q = q.into_inner();
    if let Some(e) = q.error {
        let why = q.error_description.unwrap_or(e);
        return Err(ConsoleError::Forbidden(format!(
            "the identity provider did not sign you in: {why}"
        )));
    }
    let given = q.state.unwrap_or_default();
    let cookie = req
        .cookie(STATE_COOKIE)
        .map(|c| c.value().to_string())
        .unwrap_or_default();
    let same: bool = subtle::ConstantTimeEq::ct_eq(given.as_bytes(), cookie.as_bytes()).into();
    if given.is_empty() || !same {
        return Err(ConsoleError::Forbidden(
            "this sign-in did not start in this browser; start again".into(),
        ));
    }
    let flow = state.sso_flows.take(&given).ok_or_else(|| {
        ConsoleError::Forbidden("this sign-in expired or was already used; start again".into())
    })?;
    // RFC 9207: when the provider names itself in the redirect, it must be ours.
    if q.iss
        .as_deref()
        .is_some_and(|i| i != oidc.settings().issuer)
    {
        return Err(ConsoleError::Forbidden(
            "the answer came from another identity provider".into(),
        ));
    }
    let code = q
        .code
        .ok_or_else(|| ConsoleError::BadRequest("the provider sent no code".into()))?;
    let id_token = redeem(&state, &code, &flow).await?;
    let settings = oidc.settings();
    let claims = oidc
        .verify_for(&id_token, Some(&flow.nonce), settings.console_client())
        .await
        .map_err(|e| ConsoleError::Forbidden(e.to_string()))?;
    let id = sso::identity(settings, &claims)?;
    let user = sso::admit(state.store.as_ref(), settings, &id)?;
    if user.role == Role::Technician {
        return Err(ConsoleError::Forbidden(
            "the console is for supervisors and administrators".into(),
        ));
    }
    let (token, _) = session::start(state.store.as_ref(), &user)?;
    state.commit.flush().await.map_err(ApiError::from)?;
    tracing::info!(user = %user.username, "console session started through SSO");
    let tls = over_tls(&req, &state);
    let mut gone = Cookie::build(STATE_COOKIE, "")
        .path("/console/sso")
        .finish();
    gone.make_removal();
    // A page of our own continues to the inbox: a redirect chain that began at the
    // provider is cross-site, and the browser would not send the SameSite=Strict cookie on
    // it.
    Ok(HttpResponse::Ok()
        .cookie(session::cookie(token, tls))
        .cookie(gone)
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .body(super::views::signed_in().into_string()))
}

/// The token endpoint: code + PKCE verifier (+ the console's secret) for an ID token.
async fn redeem(state: &AppState, code: &str, flow: &Flow) -> Result<String, ConsoleError> {
    let oidc = verifier_of(state)?;
    let settings = oidc.settings();
    let endpoint =
        oidc.provider().await?.token_endpoint.ok_or_else(|| {
            ConsoleError::Unavailable("the provider has no token endpoint".into())
        })?;
    let client = settings.console_client();
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", flow.redirect_uri.as_str()),
        ("code_verifier", flow.verifier.as_str()),
        ("client_id", client),
    ];
    let secret = settings
        .client_secret
        .as_ref()
        .map(|s| s.expose().to_string());
    if let Some(s) = &secret {
        form.push(("client_secret", s.as_str()));
    }
    let resp = oidc
        .http()
        .post(&endpoint)
        .form(&form)
        .send()
        .await
        .map_err(|e| ConsoleError::Unavailable(format!("the token endpoint: {e}")))?;
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    if !status.is_success() {
        return Err(ConsoleError::Forbidden(format!(
            "the provider refused the sign-in: {}",
            body["error_description"]
                .as_str()
                .or(body["error"].as_str())
                .unwrap_or("no reason given")
        )));
    }
    body["id_token"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| ConsoleError::Forbidden("the provider answered without an ID token".into()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn pkce_challenge_matches_rfc_7636_appendix_b() {
        assert_eq!(
            super::challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
