//! Order-preserving key codecs for sled trees.
//!
//! Keys are built from segments: strings (escaped so that `0x00` can end them) and big-endian
//! integers. Byte order of the encoded keys equals the tuple order of the segments, so a
//! prefix scan over `(resource, date)` returns that route's entries in sequence order.

/// Builds a composite key.
#[derive(Debug, Default, Clone)]
pub struct KeyBuf(Vec<u8>);

impl KeyBuf {
    pub fn new() -> Self {
        KeyBuf(Vec::with_capacity(32))
    }

    /// A string segment. `0x00` terminates it; `0x00` and `0x01` inside are escaped so the
    /// terminator stays unambiguous and ordering is preserved.
    pub fn str(mut self, s: &str) -> Self {
        for &b in s.as_bytes() {
            match b {
                0x00 => self.0.extend_from_slice(&[0x01, 0x01]),
                0x01 => self.0.extend_from_slice(&[0x01, 0x02]),
                _ => self.0.push(b),
            }
        }
        self.0.push(0x00);
        self
    }

    pub fn u64(mut self, n: u64) -> Self {
        self.0.extend_from_slice(&n.to_be_bytes());
        self
    }

    /// Raw trailing bytes (must be the last segment).
    pub fn bytes(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(b);
        self
    }

    pub fn finish(self) -> Vec<u8> {
        self.0
    }
}

/// Error returned when a key does not decode as expected.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("malformed key: {0}")]
pub struct KeyError(&'static str);

/// Reads segments back from a composite key, in the order they were written.
#[derive(Debug)]
pub struct KeyReader<'a> {
    rest: &'a [u8],
}

impl<'a> KeyReader<'a> {
    pub fn new(key: &'a [u8]) -> Self {
        KeyReader { rest: key }
    }

    pub fn str(&mut self) -> Result<String, KeyError> {
        let mut out = Vec::new();
        let mut i = 0;
        loop {
            match self.rest.get(i) {
                None => return Err(KeyError("unterminated string segment")),
                Some(0x00) => break,
                Some(0x01) => {
                    match self.rest.get(i + 1) {
                        Some(0x01) => out.push(0x00),
                        Some(0x02) => out.push(0x01),
                        _ => return Err(KeyError("bad escape in string segment")),
                    }
                    i += 2;
                }
                Some(&b) => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        self.rest = &self.rest[i + 1..];
        String::from_utf8(out).map_err(|_| KeyError("string segment is not UTF-8"))
    }

    pub fn u64(&mut self) -> Result<u64, KeyError> {
        if self.rest.len() < 8 {
            return Err(KeyError("short integer segment"));
        }
        let (head, tail) = self.rest.split_at(8);
        self.rest = tail;
        let mut buf = [0u8; 8];
        buf.copy_from_slice(head);
        Ok(u64::from_be_bytes(buf))
    }

    pub fn rest(&self) -> &'a [u8] {
        self.rest
    }

    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }
}

#[cfg(test)]
mod tests {
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
}
