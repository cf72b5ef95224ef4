//! Unit tests for `keys`.

use super::*;
use proptest::prelude::*;

proptest! {
    #[test]
    fn str_u64_str_round_trips(a in ".*", n in any::<u64>(), b in ".*") {
        let key = KeyBuf::new().str(&a).u64(n).str(&b).finish();
        let mut r = KeyReader::new(&key);
        prop_assert_eq!(r.str().unwrap(), a);
        prop_assert_eq!(r.u64().unwrap(), n);
        prop_assert_eq!(r.str().unwrap(), b);
        prop_assert!(r.is_empty());
    }

    #[test]
    fn byte_order_equals_tuple_order(a in ".{0,6}", n in any::<u64>(), b in ".{0,6}", m in any::<u64>()) {
        let ka = KeyBuf::new().str(&a).u64(n).finish();
        let kb = KeyBuf::new().str(&b).u64(m).finish();
        prop_assert_eq!(ka.cmp(&kb), (a.as_bytes(), n).cmp(&(b.as_bytes(), m)));
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_reader(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
        let mut r = KeyReader::new(&bytes);
        let _ = r.str();
        let _ = r.u64();
    }
}

#[test]
fn embedded_nul_and_escape_bytes_survive() {
    let s = "a\u{0}b\u{1}c";
    let key = KeyBuf::new().str(s).finish();
    assert_eq!(KeyReader::new(&key).str().unwrap(), s);
}

#[test]
fn a_route_prefix_does_not_match_a_longer_resource_id() {
    let tech1 = KeyBuf::new().str("tech1").finish();
    let tech10 = KeyBuf::new().str("tech10").u64(1).finish();
    assert!(!tech10.starts_with(&tech1));
}
