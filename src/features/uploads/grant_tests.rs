//! Unit tests of upload grant signing: round trip, every field tampered, key rotation.

use super::*;

fn key(kid: &str) -> SigningKey {
    SigningKey {
        kid: kid.into(),
        secret: format!("secret-{kid}").into_bytes(),
    }
}

fn fields() -> GrantFields {
    GrantFields {
        method: "PATCH".into(),
        attachment_id: "att_1".into(),
        user_id: "u1".into(),
        device_id: "phone 1".into(),
        expires: 1_800_000_000,
        size: 5_242_880,
        content_type: "image/jpeg".into(),
        sha256: "ab".repeat(32),
    }
}

#[test]
fn a_signed_query_verifies_to_its_fields() {
    let q = sign(&key("k1"), &fields()).unwrap();
    let parsed = parse_query(&q).unwrap();
    assert_eq!(verify(&[key("k1")], "att_1", &parsed), Ok(fields()));
}

#[test]
fn any_changed_field_breaks_the_signature() {
    let q = parse_query(&sign(&key("k1"), &fields()).unwrap()).unwrap();
    for (k, v) in [
        ("m", "DELETE"),
        ("uid", "u2"),
        ("did", "phone 2"),
        ("exp", "1800000001"),
        ("len", "5242881"),
        ("typ", "image/png"),
        ("sha", "cd"),
        ("sig", "00"),
    ] {
        let mut t = q.clone();
        t.insert(k.into(), v.into());
        assert_eq!(
            verify(&[key("k1")], "att_1", &t),
            Err(GrantError::BadSignature),
            "{k}"
        );
    }
    assert_eq!(
        verify(&[key("k1")], "att_2", &q),
        Err(GrantError::BadSignature),
        "another attachment"
    );
    let mut t = q.clone();
    t.remove("sha");
    assert_eq!(
        verify(&[key("k1")], "att_1", &t),
        Err(GrantError::Missing("sha"))
    );
}

#[test]
fn rotated_keys_still_verify_and_unknown_ones_do_not() {
    let old = parse_query(&sign(&key("k1"), &fields()).unwrap()).unwrap();
    assert!(verify(&[key("k2"), key("k1")], "att_1", &old).is_ok());
    assert_eq!(
        verify(&[key("k2")], "att_1", &old),
        Err(GrantError::UnknownKey)
    );
    let mut forged = old.clone();
    forged.insert("kid".into(), "k2".into());
    assert_eq!(
        verify(&[key("k2"), key("k1")], "att_1", &forged),
        Err(GrantError::BadSignature)
    );
}

#[test]
fn repeated_query_keys_are_refused() {
    assert!(parse_query("a=1&a=2").is_none());
    assert_eq!(parse_query("a=x%2Fy").unwrap()["a"], "x/y");
}
