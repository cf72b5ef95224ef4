//! Unit tests of the ID-token checks that need no provider.

use super::*;
use crate::auth::Role;
use serde_json::json;

const APP: &str = "fieldsync-app";

fn verifier() -> Verifier {
    Verifier::new(OidcSettings {
        issuer: "https://idp.example".into(),
        client_id: "fieldsync-app".into(),
        role_map: [("techs".to_string(), Role::Technician)]
            .into_iter()
            .collect(),
        leeway_secs: 30,
        ..OidcSettings::default()
    })
    .unwrap()
}

fn claims(v: Value) -> Claims {
    v.as_object().cloned().unwrap()
}

fn code(r: Result<(), AuthError>) -> &'static str {
    match r {
        Err(AuthError::Unauthorized { code, .. }) => code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn iat_in_the_future_beyond_the_leeway_is_refused() {
    let v = verifier();
    let now = chrono::Utc::now().timestamp();
    assert!(v
        .check_claims(&claims(json!({"iat": now + 20})), None, APP)
        .is_ok());
    assert_eq!(
        code(v.check_claims(&claims(json!({"iat": now + 120})), None, APP)),
        "invalid-id-token"
    );
    assert_eq!(
        code(v.check_claims(&claims(json!({})), None, APP)),
        "invalid-id-token"
    );
}

#[test]
fn several_audiences_need_azp_to_be_this_client() {
    let v = verifier();
    let now = chrono::Utc::now().timestamp();
    let two = json!({"iat": now, "aud": ["fieldsync-app", "other"]});
    assert_eq!(
        code(v.check_claims(&claims(two.clone()), None, APP)),
        "id-token-audience"
    );
    let mut with_azp = two;
    with_azp["azp"] = json!("fieldsync-app");
    assert!(v.check_claims(&claims(with_azp), None, APP).is_ok());
}

#[test]
fn a_nonce_sent_must_be_the_tokens() {
    let v = verifier();
    let now = chrono::Utc::now().timestamp();
    let c = claims(json!({"iat": now, "nonce": "n-1"}));
    assert!(v.check_claims(&c, Some("n-1"), APP).is_ok());
    assert!(v.check_claims(&c, None, APP).is_ok());
    assert_eq!(code(v.check_claims(&c, Some("n-2"), APP)), "id-token-nonce");
    let none = claims(json!({"iat": now}));
    assert_eq!(
        code(v.check_claims(&none, Some("n-1"), APP)),
        "id-token-nonce"
    );
}

#[test]
fn peeking_needs_a_json_payload() {
    use base64::Engine;
    let enc = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let token = format!("{}.{}.sig", enc("{}"), enc(r#"{"iss":"x"}"#));
    assert_eq!(peek_claims(&token).unwrap()["iss"], "x");
    assert!(peek_claims("only-one-part").is_err());
    assert!(peek_claims(&format!("a.{}.c", enc("not json"))).is_err());
}

#[test]
fn a_token_without_kid_needs_a_single_key() {
    let key = || Key {
        key: DecodingKey::from_secret(b"unused"),
        alg: None,
    };
    let mut keys = Keys::default();
    keys.by_kid.insert("a".into(), key());
    assert!(find(&keys, None).is_some());
    assert!(find(&keys, Some("a")).is_some());
    assert!(find(&keys, Some("b")).is_none());
    keys.by_kid.insert("b".into(), key());
    assert!(find(&keys, None).is_none());
}

#[test]
fn symmetric_algorithms_cannot_be_configured() {
    let s = OidcSettings {
        issuer: "https://idp.example".into(),
        client_id: "app".into(),
        role_map: [("techs".to_string(), Role::Technician)]
            .into_iter()
            .collect(),
        algorithms: vec!["HS256".into()],
        ..OidcSettings::default()
    };
    assert!(s.validate().is_err());
    assert!(OidcSettings {
        algorithms: vec!["RS256".into()],
        ..s
    }
    .validate()
    .is_ok());
}
