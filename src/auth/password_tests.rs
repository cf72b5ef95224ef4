//! Unit tests for `password`.

use super::*;

#[test]
fn hash_verifies_only_the_right_password() {
    let h = hash("correct horse").unwrap();
    assert!(h.starts_with("$argon2id$"));
    assert!(verify("correct horse", &h));
    assert!(!verify("wrong", &h));
    assert!(!verify("x", "not a phc string"));
    assert!(!verify("decoy-password", decoy()));
}
