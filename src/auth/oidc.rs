//! ID tokens from the company's OpenID provider: discovery, the provider's signing keys
//! (cached, re-fetched on an unknown `kid` at a bounded rate) and the checks a token must
//! pass before fieldsync believes its claims.

use super::AuthError;
use crate::config::OidcSettings;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Keys older than this are fetched again at the next sign-in even when every `kid` is
/// known, so a key the provider removed stops working without waiting for a new one.
const KEYS_MAX_AGE: Duration = Duration::from_secs(3600);

/// Verified claims of an ID token.
pub type Claims = Map<String, Value>;

/// What discovery tells fieldsync about the provider.
#[derive(Debug, Clone, Deserialize)]
pub struct Provider {
    pub issuer: String,
    pub jwks_uri: String,
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
    pub userinfo_endpoint: Option<String>,
}

struct Key {
    key: DecodingKey,
    /// The algorithm the provider published for the key, if any: a token must use it.
    alg: Option<Algorithm>,
}

#[derive(Default)]
struct Keys {
    provider: Option<Provider>,
    by_kid: HashMap<String, Key>,
    /// Keys without a `kid`: usable only when the set holds exactly one key.
    anonymous: Vec<Key>,
    fetched: Option<Instant>,
}

/// Checks ID tokens against one provider.
pub struct Verifier {
    settings: OidcSettings,
    algorithms: Vec<Algorithm>,
    http: reqwest::Client,
    keys: Mutex<Keys>,
    /// Key-set fetches so far (the rate limit's evidence; also a metric).
    fetches: AtomicU64,
}

fn refuse(code: &'static str, detail: impl Into<String>) -> AuthError {
    AuthError::unauthorized(code, detail)
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> AuthError {
    AuthError::ProviderUnavailable(format!("{what}: {e}"))
}

impl Verifier {
    /// Builds a verifier; the provider is asked at the first sign-in, not here, so the service
    /// starts while the provider is down.
    pub fn new(settings: OidcSettings) -> Result<Verifier, AuthError> {
        let algorithms = settings
            .algorithms
            .iter()
            .map(|a| Algorithm::from_str(a).map_err(|e| AuthError::Internal(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(settings.timeout_secs))
            .build()
            .map_err(|e| AuthError::Internal(e.to_string()))?;
        Ok(Verifier {
            settings,
            algorithms,
            http,
            keys: Mutex::default(),
            fetches: AtomicU64::new(0),
        })
    }

    pub fn settings(&self) -> &OidcSettings {
        &self.settings
    }

    /// The client for calls to the provider (its timeout is `[oidc] timeout_secs`).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// How many times the provider's key set was fetched.
    pub fn key_fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// The provider's discovery document, fetched once.
    pub async fn provider(&self) -> Result<Provider, AuthError> {
        let mut keys = self.keys.lock().await;
        if let Some(p) = &keys.provider {
            return Ok(p.clone());
        }
        let p = self.discover().await?;
        keys.provider = Some(p.clone());
        Ok(p)
    }

    async fn discover(&self) -> Result<Provider, AuthError> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.settings.issuer.trim_end_matches('/')
        );
        let p: Provider = self
            .get_json(&url)
            .await
            .map_err(|e| unavailable("discovery", e))?;
        // OpenID Connect Discovery 1.0 §4.3: the document must name the issuer asked for.
        if p.issuer != self.settings.issuer {
            return Err(unavailable(
                "discovery",
                format!("the document names issuer {}", p.issuer),
            ));
        }
        Ok(p)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, String> {
        let resp = self.http.get(url).send().await.map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("{url} answered {}", resp.status()));
        }
        resp.json().await.map_err(|e| e.to_string())
    }

    /// Fetches the key set again, replacing the one held (removed keys go with it).
    async fn refetch(&self, keys: &mut Keys) -> Result<(), AuthError> {
        let provider = match &keys.provider {
            Some(p) => p.clone(),
            None => self.discover().await?,
        };
        self.fetches.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("fieldsync_oidc_key_fetches_total").increment(1);
        let set: Value = self
            .get_json(&provider.jwks_uri)
            .await
            .map_err(|e| unavailable("keys", e))?;
        keys.by_kid.clear();
        keys.anonymous.clear();
        for raw in set["keys"].as_array().into_iter().flatten() {
            // A key type this build cannot use is skipped, not fatal: the others still work.
            let Ok(jwk) = serde_json::from_value::<Jwk>(raw.clone()) else {
                continue;
            };
            if raw["use"].as_str().is_some_and(|u| u != "sig") {
                continue;
            }
            let Ok(key) = DecodingKey::from_jwk(&jwk) else {
                continue;
            };
            let alg = raw["alg"]
                .as_str()
                .and_then(|a| Algorithm::from_str(a).ok());
            let key = Key { key, alg };
            match jwk.common.key_id {
                Some(kid) => {
                    keys.by_kid.insert(kid, key);
                }
                None => keys.anonymous.push(key),
            }
        }
        keys.provider = Some(provider);
        keys.fetched = Some(Instant::now());
        Ok(())
    }

    /// Asks the provider's userinfo endpoint about the holder of `access_token`: its claims,
    /// or `None` when the provider refuses the token (expired, revoked, user disabled).
    pub async fn userinfo(&self, access_token: &str) -> Result<Option<Claims>, AuthError> {
        let endpoint = self.provider().await?.userinfo_endpoint.ok_or_else(|| {
            unavailable("userinfo", "the provider publishes no userinfo endpoint")
        })?;
        let resp = self
            .http
            .get(&endpoint)
            .bearer_auth(access_token)
            .send()
            .await
            .map_err(|e| unavailable("userinfo", e))?;
        match resp.status().as_u16() {
            200 => resp
                .json::<Claims>()
                .await
                .map(Some)
                .map_err(|e| unavailable("userinfo", e)),
            400 | 401 | 403 => Ok(None),
            other => Err(unavailable("userinfo", format!("answered {other}"))),
        }
    }

    /// Checks an ID token and answers its claims: signature by one of the provider's keys
    /// with a pinned algorithm, `iss`, `aud` (and `azp`), `exp`, `iat` and, when the device
    /// sent one, `nonce`.
    pub async fn verify(&self, token: &str, nonce: Option<&str>) -> Result<Claims, AuthError> {
        self.verify_for(token, nonce, &self.settings.client_id)
            .await
    }

    /// [`Verifier::verify`] for a token issued to `audience` (the console's client, when it
    /// has its own).
    pub async fn verify_for(
        &self,
        token: &str,
        nonce: Option<&str>,
        audience: &str,
    ) -> Result<Claims, AuthError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| refuse("invalid-id-token", "the ID token is not a signed JWT"))?;
        if !self.algorithms.contains(&header.alg) {
            return Err(refuse(
                "id-token-algorithm",
                format!("ID tokens signed with {:?} are not accepted", header.alg),
            ));
        }
        // The issuer is read before any key is looked up, so a token from elsewhere costs
        // no request to the provider; it is checked again once the signature holds.
        let unverified = peek_claims(token)?;
        if unverified.get("iss").and_then(Value::as_str) != Some(&self.settings.issuer) {
            return Err(refuse(
                "id-token-issuer",
                "the ID token is from another issuer",
            ));
        }
        let claims = {
            let mut keys = self.keys.lock().await;
            let stale = keys.fetched.is_none_or(|t| t.elapsed() > KEYS_MAX_AGE);
            let may_refetch = keys.fetched.is_none_or(|t| {
                t.elapsed() >= Duration::from_secs(self.settings.jwks_min_refresh_secs)
            });
            if stale || (find(&keys, header.kid.as_deref()).is_none() && may_refetch) {
                self.refetch(&mut keys).await?;
            }
            let key = find(&keys, header.kid.as_deref()).ok_or_else(|| {
                refuse(
                    "id-token-key-unknown",
                    "the ID token is signed with a key the provider does not publish",
                )
            })?;
            if key.alg.is_some_and(|a| a != header.alg) {
                return Err(refuse(
                    "id-token-algorithm",
                    "the ID token's algorithm is not its key's",
                ));
            }
            self.decode(token, header.alg, &key.key, audience)?
        };
        self.check_claims(&claims, nonce, audience)?;
        Ok(claims)
    }

    fn decode(
        &self,
        token: &str,
        alg: Algorithm,
        key: &DecodingKey,
        audience: &str,
    ) -> Result<Claims, AuthError> {
        let mut v = Validation::new(alg);
        v.set_issuer(&[&self.settings.issuer]);
        v.set_audience(&[audience]);
        v.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        v.leeway = self.settings.leeway_secs;
        jsonwebtoken::decode::<Claims>(token, key, &v)
            .map(|d| d.claims)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind as K;
                match e.kind() {
                    K::ExpiredSignature => refuse("id-token-expired", "the ID token has expired"),
                    K::InvalidAudience => refuse(
                        "id-token-audience",
                        "the ID token was issued to another client",
                    ),
                    K::InvalidIssuer => {
                        refuse("id-token-issuer", "the ID token is from another issuer")
                    }
                    K::ImmatureSignature => {
                        refuse("id-token-not-yet-valid", "the ID token is not valid yet")
                    }
                    K::InvalidAlgorithm => refuse(
                        "id-token-algorithm",
                        "the ID token's algorithm does not fit its key",
                    ),
                    K::MissingRequiredClaim(c) => {
                        refuse("invalid-id-token", format!("the ID token has no {c} claim"))
                    }
                    _ => refuse(
                        "invalid-id-token",
                        "the ID token's signature does not verify",
                    ),
                }
            })
    }

    /// The checks jsonwebtoken leaves to the caller (OpenID Connect Core §3.1.3.7).
    fn check_claims(
        &self,
        claims: &Claims,
        nonce: Option<&str>,
        audience: &str,
    ) -> Result<(), AuthError> {
        let now = chrono::Utc::now().timestamp();
        let leeway = self.settings.leeway_secs as i64;
        match claims.get("iat").and_then(Value::as_i64) {
            Some(iat) if iat <= now + leeway => {}
            _ => {
                return Err(refuse(
                    "invalid-id-token",
                    "the ID token's iat is missing or in the future",
                ))
            }
        }
        let several_audiences = claims
            .get("aud")
            .and_then(Value::as_array)
            .is_some_and(|a| a.len() > 1);
        if several_audiences && claims.get("azp").and_then(Value::as_str) != Some(audience) {
            return Err(refuse(
                "id-token-audience",
                "the ID token was authorized for another client",
            ));
        }
        if let Some(expected) = nonce {
            let got = claims.get("nonce").and_then(Value::as_str).unwrap_or("");
            if !bool::from(subtle::ConstantTimeEq::ct_eq(
                got.as_bytes(),
                expected.as_bytes(),
            )) {
                return Err(refuse(
                    "id-token-nonce",
                    "the ID token's nonce is not the one sent",
                ));
            }
        }
        Ok(())
    }
}

fn find<'k>(keys: &'k Keys, kid: Option<&str>) -> Option<&'k Key> {
    match kid {
        Some(kid) => keys.by_kid.get(kid),
        None if keys.by_kid.len() + keys.anonymous.len() == 1 => keys
            .anonymous
            .first()
            .or_else(|| keys.by_kid.values().next()),
        None => None,
    }
}

/// The payload of a JWT, unverified: only for choosing what to check, never for trusting.
fn peek_claims(token: &str) -> Result<Claims, AuthError> {
    use base64::Engine;
    let bad = || refuse("invalid-id-token", "the ID token is not a signed JWT");
    let payload = token.split('.').nth(1).ok_or_else(bad)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| bad())?;
    serde_json::from_slice(&bytes).map_err(|_| bad())
}

#[cfg(test)]
#[path = "oidc_tests.rs"]
mod tests;
