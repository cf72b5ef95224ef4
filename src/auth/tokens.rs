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
mod tests {
    use super::*;
    use base64::Engine;

    fn keys() -> TokenKeys {
        TokenKeys::new(
            b"0123456789abcdef0123456789abcdef",
            "fieldsync",
            "fieldsync-devices",
            900,
        )
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    #[test]
    fn round_trip_and_determinism() {
        let k = keys();
        let c = k.claims("u1", "dev1", "fam1", now());
        let t = k.sign(&c).unwrap();
        assert_eq!(k.sign(&c).unwrap(), t);
        assert_eq!(k.verify(&t).unwrap(), c);
    }

    #[test]
    fn refuses_forgeries_and_mismatches() {
        let k = keys();
        let good = k.claims("u1", "dev1", "fam1", now());
        let expired = AccessClaims {
            iat: now() - 4000,
            exp: now() - 3000,
            ..good.clone()
        };
        assert!(matches!(
            k.verify(&k.sign(&expired).unwrap()),
            Err(AuthError::Unauthorized {
                code: "token-expired",
                ..
            })
        ));
        for bad in [
            AccessClaims {
                aud: "other".into(),
                ..good.clone()
            },
            AccessClaims {
                iss: "evil".into(),
                ..good.clone()
            },
            AccessClaims {
                typ: "upload".into(),
                ..good.clone()
            },
        ] {
            assert!(k.verify(&k.sign(&bad).unwrap()).is_err(), "{bad:?}");
        }
        let other_key = TokenKeys::new(
            b"another-key-another-key-another!!",
            "fieldsync",
            "fieldsync-devices",
            900,
        );
        assert!(k.verify(&other_key.sign(&good).unwrap()).is_err());
        let hs512 = encode(
            &Header::new(Algorithm::HS512),
            &good,
            &EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
        )
        .unwrap();
        assert!(k.verify(&hs512).is_err(), "algorithm is pinned");
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let none = format!(
            "{}.{}.",
            b64.encode(br#"{"alg":"none","typ":"JWT"}"#),
            b64.encode(serde_json::to_vec(&good).unwrap())
        );
        assert!(k.verify(&none).is_err(), "alg none");
        let mut tampered = k.sign(&good).unwrap();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        assert!(k.verify(&tampered).is_err());
    }
}
