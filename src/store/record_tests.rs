//! Unit tests for `record`.

use super::*;

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Op {
    id: u64,
    status: String,
}

#[test]
fn sealed_record_opens_to_the_same_value() {
    let op = Op {
        id: 7,
        status: "started".into(),
    };
    let sealed = seal(&op).unwrap();
    let back: Op = open(Tree::META, b"k", &sealed).unwrap();
    assert_eq!(back, op);
}

#[test]
fn any_flipped_byte_is_reported_as_corrupt() {
    let sealed = seal(&Op {
        id: 1,
        status: "pending".into(),
    })
    .unwrap();
    for i in 0..sealed.len() {
        let mut bad = sealed.clone();
        bad[i] ^= 0x40;
        let err = open::<Op>(Tree::META, b"k", &bad).unwrap_err();
        assert!(err.is_corrupt(), "byte {i}: {err}");
    }
}

#[test]
fn truncated_record_is_corrupt_not_a_panic() {
    let sealed = seal(&Op {
        id: 1,
        status: "x".into(),
    })
    .unwrap();
    for len in 0..sealed.len() {
        assert!(open::<Op>(Tree::META, b"k", &sealed[..len]).is_err());
    }
}
