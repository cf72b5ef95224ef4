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

/// Prefixes a binary payload with a version byte and its checksum (the journal's envelope).
pub fn seal_bytes(version: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.push(version);
    out.extend_from_slice(&sha256(payload));
    out.extend_from_slice(payload);
    out
}

/// Verifies a [`seal_bytes`] envelope of `version` and returns its payload.
pub fn open_bytes<'a>(
    tree: Tree,
    key: &[u8],
    version: u8,
    bytes: &'a [u8],
) -> Result<&'a [u8], StoreError> {
    let corrupt = |reason: &str| StoreError::Corrupt {
        tree: tree.0,
        key: hex::encode(key),
        reason: reason.to_string(),
    };
    if bytes.len() < HEADER {
        return Err(corrupt("record shorter than its header"));
    }
    if bytes[0] != version {
        return Err(corrupt("unknown record version"));
    }
    let (digest, payload) = bytes[1..].split_at(32);
    if sha256(payload).as_slice() != digest {
        return Err(corrupt("checksum mismatch"));
    }
    Ok(payload)
}

/// Verifies the checksum and decodes the payload.
pub fn open<T: DeserializeOwned>(tree: Tree, key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    let corrupt = |reason: &str| StoreError::Corrupt {
        tree: tree.0,
        key: hex::encode(key),
        reason: reason.to_string(),
    };
    let payload = open_bytes(tree, key, VERSION, bytes)?;
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
#[path = "record_tests.rs"]
mod tests;
