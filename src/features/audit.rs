//! The append-only audit trail: who (role, device) did what to which object, when, and
//! under which request id.

use crate::auth::Principal;
use crate::store::keys::KeyBuf;
use crate::store::{Storage, StorageExt, StoreError, Tree};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const AUDIT: Tree = Tree("audit");

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub user: String,
    pub role: crate::auth::Role,
    pub device: String,
    pub action: String,
    pub object: String,
    #[serde(default)]
    pub resource_id: Option<String>,
    #[serde(default)]
    pub activity_id: Option<i64>,
    /// The server's id of the request.
    pub request_id: String,
    /// The caller's own `X-Request-Id`, when it sent one of the safe form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_request_id: Option<String>,
    #[serde(default)]
    pub detail: Value,
}

/// What is being recorded, before it gets a sequence number.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    pub action: &'a str,
    pub object: String,
    pub resource_id: Option<String>,
    pub activity_id: Option<i64>,
    pub request_id: String,
    pub detail: Value,
}

/// Appends one entry. Keys are monotonic ids, so the tree is never rewritten.
pub fn record(
    store: &dyn Storage,
    who: &Principal,
    e: Event<'_>,
) -> Result<AuditEntry, StoreError> {
    let seq = store.next_id()?;
    let entry = AuditEntry {
        seq,
        at: Utc::now(),
        user: who.username.clone(),
        role: who.role,
        device: who.device_id.clone(),
        action: e.action.to_string(),
        object: e.object,
        resource_id: e.resource_id,
        activity_id: e.activity_id,
        request_id: e.request_id,
        client_request_id: who.client_request_id.clone(),
        detail: e.detail,
    };
    store.put(AUDIT, &audit_key(seq), &entry)?;
    Ok(entry)
}

pub fn audit_key(seq: u64) -> Vec<u8> {
    KeyBuf::new().u64(seq).finish()
}

/// Records an entry in a journal record (an accepted write's, with the write).
pub fn put_in(tx: &dyn crate::store::Tx, entry: &AuditEntry) -> Result<(), StoreError> {
    crate::store::TxExt::put(tx, AUDIT, &audit_key(entry.seq), entry)
}

/// Entries after `after` (exclusive), oldest first.
pub fn list(store: &dyn Storage, after: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
    let start = KeyBuf::new().u64(after.saturating_add(1)).finish();
    store
        .scan_raw(AUDIT, b"", Some(&start), limit)?
        .into_iter()
        .map(|(k, v)| crate::store::record::open(AUDIT, &k, &v))
        .collect()
}
