//! Refresh-token families: opaque tokens stored only as hashes, rotated on every use, with
//! reuse detection and a 60 s grace for the immediately previous token.
//!
//! A family's token of generation `n` is `HMAC(refresh_key, family:n)`. Deriving instead of
//! storing lets the grace path hand back the very same new pair without keeping any token in
//! plain text: only SHA-256 hashes of tokens are stored.

use super::tokens::{AccessClaims, TokenKeys};
use super::users::User;
use super::AuthError;
use crate::store::{Storage, StorageExt, Tree};
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};

pub const FAMILIES: Tree = Tree("session_families");
pub const REFRESH_TOKENS: Tree = Tree("refresh_tokens");

/// The previous token is honoured this long after rotation (lost responses on bad networks).
pub const GRACE_SECS: i64 = 60;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Family {
    pub id: String,
    pub user_id: String,
    pub username: String,
    pub device_id: String,
    pub epoch: u32,
    pub generation: u64,
    pub rotated_at: Option<DateTime<Utc>>,
    /// `iat` of the current generation's access token, so the grace path can re-sign it.
    pub access_iat: i64,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked: Option<String>,
    /// Set for a session begun with an ID token: whom the identity provider vouched for,
    /// and when it last did (refreshes re-check it, when `[oidc] recheck_secs` says so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sso: Option<SsoLink>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SsoLink {
    pub sub: String,
    pub checked_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenRecord {
    family: String,
    generation: u64,
}

/// A freshly issued (or re-issued) pair.
#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    pub access_token: String,
    pub refresh_token: String,
    pub claims: AccessClaims,
}

fn derive(keys: &TokenKeys, family: &str, generation: u64) -> Result<String, AuthError> {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&keys.refresh_key)
        .map_err(|e| AuthError::Internal(e.to_string()))?;
    mac.update(format!("{family}:{generation}").as_bytes());
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

fn token_key(token: &str) -> Vec<u8> {
    crate::store::record::sha256(token.as_bytes()).to_vec()
}

fn pair(keys: &TokenKeys, f: &Family) -> Result<Pair, AuthError> {
    let claims = keys.claims(&f.user_id, &f.device_id, &f.id, f.access_iat);
    Ok(Pair {
        access_token: keys.sign(&claims)?,
        refresh_token: derive(keys, &f.id, f.generation)?,
        claims,
    })
}

/// Starts a new family for a successful login.
pub fn start(
    store: &dyn Storage,
    keys: &TokenKeys,
    user: &User,
    device: &str,
    ttl: Duration,
    sso_sub: Option<String>,
) -> Result<Pair, AuthError> {
    let now = Utc::now();
    let family = Family {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: user.id.clone(),
        username: user.username.clone(),
        device_id: device.to_string(),
        epoch: user.epoch,
        generation: 0,
        rotated_at: None,
        access_iat: now.timestamp(),
        created_at: now,
        expires_at: now + ttl,
        revoked: None,
        sso: sso_sub.map(|sub| SsoLink {
            sub,
            checked_at: now,
        }),
    };
    let p = pair(keys, &family)?;
    let record = TokenRecord {
        family: family.id.clone(),
        generation: 0,
    };
    let tk = token_key(&p.refresh_token);
    // The family first: a token record always finds its family.
    store.put(FAMILIES, family.id.as_bytes(), &family)?;
    store.put(REFRESH_TOKENS, &tk, &record)?;
    Ok(p)
}

enum Outcome {
    Issued(Family),
    Refused(AuthError),
}

/// Rotates `token`. `current_epoch` is the user's epoch now (a disabled user's is bumped).
pub fn rotate(
    store: &dyn Storage,
    keys: &TokenKeys,
    token: &str,
    device: &str,
    user_epoch: impl Fn(&str) -> Result<Option<u32>, AuthError>,
) -> Result<Pair, AuthError> {
    let invalid =
        || AuthError::unauthorized("invalid-refresh-token", "the refresh token is not valid");
    let Some(record) = store.get::<TokenRecord>(REFRESH_TOKENS, &token_key(token))? else {
        return Err(invalid());
    };
    let family_now: Family = store
        .get(FAMILIES, record.family.as_bytes())?
        .ok_or_else(invalid)?;
    let epoch = user_epoch(&family_now.username)?;
    let now = Utc::now();
    // The family record is the one key two refreshes race on: it moves by compare-and-swap,
    // so of two uses of one token exactly one rotates. The next token's record goes in
    // before the family points at it (derived from family and generation, so a racing
    // writer of the same generation writes the same record).
    let mut outcome = None;
    store.update::<Family>(FAMILIES, record.family.as_bytes(), &mut |current| {
        let Some(mut f) = current else {
            outcome = Some(Outcome::Refused(invalid()));
            return Ok(None);
        };
        let (result, write) = if f.revoked.is_some() || epoch != Some(f.epoch) {
            (
                Outcome::Refused(AuthError::unauthorized(
                    "session-revoked",
                    "the session was revoked",
                )),
                false,
            )
        } else if f.device_id != device {
            // A token presented by another device was taken from its own: the family ends,
            // as it does on reuse, so the thief's copy and the owner's both stop working.
            f.revoked = Some("refresh token presented by another device".into());
            (Outcome::Refused(invalid()), true)
        } else if now > f.expires_at {
            (
                Outcome::Refused(AuthError::unauthorized(
                    "session-expired",
                    "the session has expired; sign in again",
                )),
                false,
            )
        } else if record.generation == f.generation {
            f.generation += 1;
            f.rotated_at = Some(now);
            f.access_iat = now.timestamp();
            let next = derive(keys, &f.id, f.generation)
                .map_err(|e| crate::store::StoreError::Aborted(e.to_string()))?;
            store.put(
                REFRESH_TOKENS,
                &token_key(&next),
                &TokenRecord {
                    family: f.id.clone(),
                    generation: f.generation,
                },
            )?;
            (Outcome::Issued(f.clone()), true)
        } else if record.generation + 1 == f.generation
            && f.rotated_at
                .is_some_and(|t| now - t <= Duration::seconds(GRACE_SECS))
        {
            (Outcome::Issued(f.clone()), false)
        } else {
            f.revoked = Some("refresh token reused".into());
            (
                Outcome::Refused(AuthError::unauthorized(
                    "refresh-token-reused",
                    "the refresh token was already used; the session is revoked",
                )),
                true,
            )
        };
        outcome = Some(result);
        Ok(write.then_some(f))
    })?;
    match outcome {
        Some(Outcome::Issued(f)) => pair(keys, &f),
        Some(Outcome::Refused(e)) => Err(e),
        None => Err(AuthError::Internal("refresh produced no outcome".into())),
    }
}

pub fn family(store: &dyn Storage, id: &str) -> Result<Option<Family>, AuthError> {
    Ok(store.get(FAMILIES, id.as_bytes())?)
}

/// The family a refresh token belongs to, if the token is known (any generation).
pub fn family_of_token(store: &dyn Storage, token: &str) -> Result<Option<Family>, AuthError> {
    match store.get::<TokenRecord>(REFRESH_TOKENS, &token_key(token))? {
        Some(r) => family(store, &r.family),
        None => Ok(None),
    }
}

/// Records that the identity provider vouched for the family's user again, now.
pub fn sso_checked(store: &dyn Storage, id: &str) -> Result<(), AuthError> {
    store.update::<Family>(FAMILIES, id.as_bytes(), &mut |current| {
        Ok(current.map(|mut f| {
            if let Some(link) = f.sso.as_mut() {
                link.checked_at = Utc::now();
            }
            f
        }))
    })?;
    Ok(())
}

/// The session family and its user, while the session can still act: the family exists
/// and is not revoked, its user exists and is enabled, and the user's epoch (moved by a
/// password change or a disable) is the family's. `None` once any of that fails.
pub fn live(
    store: &dyn Storage,
    id: &str,
) -> Result<Option<(Family, super::users::User)>, AuthError> {
    let Some(family) = family(store, id)? else {
        return Ok(None);
    };
    let Some(user) = super::users::get(store, &family.username)? else {
        return Ok(None);
    };
    let live = family.revoked.is_none() && !user.disabled && user.epoch == family.epoch;
    Ok(live.then_some((family, user)))
}

/// Revokes one family (logout).
pub fn revoke(store: &dyn Storage, id: &str, reason: &str) -> Result<(), AuthError> {
    store.update::<Family>(FAMILIES, id.as_bytes(), &mut |current| {
        Ok(current.map(|mut f| {
            f.revoked = Some(reason.to_string());
            f
        }))
    })?;
    Ok(())
}
