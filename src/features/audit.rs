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

/// Entries after `after` (exclusive), oldest first. One that fails verification is
/// quarantined and passed over, not an error every later listing would hit.
pub fn list(store: &dyn Storage, after: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
    let start = KeyBuf::new().u64(after.saturating_add(1)).finish();
    let mut out = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    crate::store::scan_pages(store, AUDIT, &start, limit.min(1024), &mut |k, v| {
        if let Some(e) = store.open_or_quarantine::<AuditEntry>(AUDIT, k, v)? {
            out.push(e);
        }
        Ok(out.len() < limit)
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64) -> AuditEntry {
        AuditEntry {
            seq,
            at: Utc::now(),
            user: "admin".into(),
            role: crate::auth::Role::Admin,
            device: "console".into(),
            action: "user.update".into(),
            object: format!("u{seq}"),
            resource_id: None,
            activity_id: None,
            request_id: format!("r{seq}"),
            client_request_id: None,
            detail: Value::Null,
        }
    }

    #[test]
    fn listings_page_in_order_and_pass_over_a_corrupt_entry() {
        let store = crate::store::SledStore::temporary().unwrap();
        for seq in 1..=5 {
            store.put(AUDIT, &audit_key(seq), &entry(seq)).unwrap();
        }
        let seqs = |after, limit| -> Vec<u64> {
            list(&store, after, limit)
                .unwrap()
                .iter()
                .map(|e| e.seq)
                .collect()
        };
        assert_eq!(seqs(0, 2), [1, 2]);
        assert_eq!(seqs(2, 10), [3, 4, 5]);
        assert_eq!(seqs(0, 0), Vec::<u64>::new());
        crate::store::corrupt(&store, AUDIT, &audit_key(3));
        assert_eq!(seqs(2, 2), [4, 5], "a page still holds `limit` entries");
        assert_eq!(store.quarantined(10).unwrap().len(), 1);
    }
}
