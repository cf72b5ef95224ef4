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
#[path = "keys_tests.rs"]
mod tests;
