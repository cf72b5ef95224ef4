//! Unit tests for `tokens`.

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
