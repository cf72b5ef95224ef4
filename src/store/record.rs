//! Checksummed record envelope: every stored value carries the SHA-256 of its bytes.
//!
//! Layout: `[version: u8][sha256(payload): 32 bytes][payload: JSON]`. A record whose hash does
//! not match is reported as [`StoreError::Corrupt`]; the caller quarantines it.

use super::{StoreError, Tree};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use sha2::{Digest, Sha256};

const VERSION: u8 = 1;
const HEADER: usize = 1 + 32;

/// SHA-256 of `bytes`, as raw bytes.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Serializes `value` and prefixes it with its checksum.
pub fn seal<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    let payload = serde_json::to_vec(value).map_err(|e| StoreError::Encode(e.to_string()))?;
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.push(VERSION);
    out.extend_from_slice(&sha256(&payload));
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Verifies the checksum and decodes the payload.
pub fn open<T: DeserializeOwned>(tree: Tree, key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    let corrupt = |reason: &str| StoreError::Corrupt {
        tree: tree.0,
        key: hex::encode(key),
        reason: reason.to_string(),
    };
    if bytes.len() < HEADER {
        return Err(corrupt("record shorter than its header"));
    }
    if bytes[0] != VERSION {
        return Err(corrupt("unknown record version"));
    }
    let (digest, payload) = bytes[1..].split_at(32);
    if sha256(payload).as_slice() != digest {
        return Err(corrupt("checksum mismatch"));
    }
    serde_json::from_slice(payload).map_err(|e| corrupt(&format!("undecodable payload: {e}")))
}

/// What the quarantine tree keeps about a record that failed verification.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Quarantined {
    pub tree: String,
    pub key_hex: String,
    pub reason: String,
    pub quarantined_at: chrono::DateTime<chrono::Utc>,
    #[serde(default)]
    pub raw_hex: Option<String>,
}

#[cfg(test)]
mod tests {
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
}
