//! Access tokens: HS256 JWTs with pinned algorithm, required iss/aud/sub/exp, a `typ` and the
//! device they were issued to.

use super::AuthError;
use jsonwebtoken::{
    decode, encode, errors::ErrorKind, Algorithm, DecodingKey, EncodingKey, Header, Validation,
};
use serde::{Deserialize, Serialize};

pub const ACCESS_TYP: &str = "access";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    /// User id.
    pub sub: String,
    pub iat: i64,
    pub exp: i64,
    /// Token type: `access` here; upload grants and others use other values.
    pub typ: String,
    /// Device id the session is bound to.
    pub did: String,
    /// Refresh-token family (session) id.
    pub fam: String,
}

/// Signing material and the rules every access token is checked against.
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    pub issuer: String,
    pub audience: String,
    pub access_ttl_secs: i64,
    /// Key for deriving refresh tokens (separate from the JWT key).
    pub refresh_key: [u8; 32],
}

impl TokenKeys {
    pub fn new(secret: &[u8], issuer: &str, audience: &str, access_ttl_secs: i64) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 5;
        // A token that says it is not valid yet is not (checked when `nbf` is present).
        validation.validate_nbf = true;
        let refresh_key =
            crate::store::record::sha256(&[b"fieldsync-refresh:".as_slice(), secret].concat());
        TokenKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            issuer: issuer.into(),
            audience: audience.into(),
            access_ttl_secs,
            refresh_key,
        }
    }

    /// Claims for a new access token issued at `iat`.
    pub fn claims(&self, user_id: &str, device: &str, family: &str, iat: i64) -> AccessClaims {
        AccessClaims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: user_id.into(),
            iat,
            exp: iat + self.access_ttl_secs,
            typ: ACCESS_TYP.into(),
            did: device.into(),
            fam: family.into(),
        }
    }

    /// Signs claims. Deterministic: the same claims give the same token, which the refresh
    /// grace path relies on to hand back the same pair without storing it.
    pub fn sign(&self, claims: &AccessClaims) -> Result<String, AuthError> {
        encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .map_err(|e| AuthError::Internal(e.to_string()))
    }

    pub fn verify(&self, token: &str) -> Result<AccessClaims, AuthError> {
        let data =
            decode::<AccessClaims>(token, &self.decoding, &self.validation).map_err(|e| match e
                .kind()
            {
                ErrorKind::ExpiredSignature => {
                    AuthError::unauthorized("token-expired", "the access token has expired")
                }
                _ => AuthError::unauthorized("invalid-token", "the access token is not valid"),
            })?;
        if data.claims.typ != ACCESS_TYP {
            return Err(AuthError::unauthorized(
                "invalid-token",
                "not an access token",
            ));
        }
        Ok(data.claims)
    }
}

#[cfg(test)]
#[path = "tokens_tests.rs"]
mod tests;
