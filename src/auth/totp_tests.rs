//! Unit tests for `totp`.

use super::*;

#[test]
fn accepts_adjacent_steps_once_each() {
    let (secret, uri) = enroll("tech1").unwrap();
    assert!(uri.starts_with("otpauth://totp/fieldsync:tech1?"));
    let now = 1_800_000_000;
    let code = code_at(&secret, now).unwrap();
    let TotpCheck::Valid(step) = check(&secret, &code, 0, now) else {
        panic!()
    };
    assert_eq!(check(&secret, &code, step, now), TotpCheck::Replayed);
    let prev = code_at(&secret, now - 30).unwrap();
    assert!(matches!(check(&secret, &prev, 0, now), TotpCheck::Valid(_)));
    let stale = code_at(&secret, now - 90).unwrap();
    assert_eq!(check(&secret, &stale, 0, now), TotpCheck::Invalid);
    assert_eq!(check(&secret, "12345x", 0, now), TotpCheck::Invalid);
}
