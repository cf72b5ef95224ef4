//! Supervisor approvals of completed work: the records, opened in the same transaction as
//! the completion that needs one, decided once, and the evidence gathered from the
//! activity's timeline.

use crate::outbox::{self, Op, OpKind, OpState};
use crate::store::{Storage, StorageExt, StoreError, Tree, Tx, TxExt};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub const APPROVALS: Tree = Tree("approvals");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalStatus {
    Pending,
    Approved,
    Rejected,
}

impl ApprovalStatus {
    pub fn parse(s: &str) -> Option<ApprovalStatus> {
        match s {
            "pending" => Some(ApprovalStatus::Pending),
            "approved" => Some(ApprovalStatus::Approved),
            "rejected" => Some(ApprovalStatus::Rejected),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    /// `approve` or `reject`.
    pub decision: String,
    pub comment: String,
    pub reopen: bool,
    pub by: String,
    pub by_name: String,
    pub at: DateTime<Utc>,
    pub op_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Approval {
    pub id: String,
    pub seq: u64,
    pub activity_id: i64,
    pub resource_id: String,
    pub date: String,
    pub activity_type: Option<String>,
    /// The technician whose work it is.
    pub technician: String,
    pub technician_user_id: String,
    pub completion_op_id: String,
    pub status: ApprovalStatus,
    pub requested_at: DateTime<Utc>,
    pub decision: Option<Decision>,
}

pub fn approval_id(seq: u64) -> String {
    format!("apr_{seq:016x}")
}

pub fn approval_seq(id: &str) -> Option<u64> {
    u64::from_str_radix(id.strip_prefix("apr_")?, 16).ok()
}

fn key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

pub fn get(store: &dyn Storage, id: &str) -> Result<Option<Approval>, StoreError> {
    match approval_seq(id) {
        Some(seq) => store.get(APPROVALS, &key(seq)),
        None => Ok(None),
    }
}

/// Writes an approval (new or decided) and announces it, inside the caller's transaction.
/// `event_seq` is a `Storage::next_id` taken before the transaction.
pub fn put_in(tx: &dyn Tx, a: &Approval, event_seq: u64) -> Result<(), StoreError> {
    tx.put(APPROVALS, &key(a.seq), a)?;
    let event_type = if a.decision.is_some() {
        "approval.decided"
    } else {
        "approval.requested"
    };
    crate::webhooks::emit_in(tx, event_seq, event_type, summary(a))
}

/// The approval without its evidence (lists, webhooks, sync pull).
pub fn summary(a: &Approval) -> Value {
    json!({
        "approvalId": a.id, "activityId": a.activity_id, "resourceId": a.resource_id,
        "date": a.date, "activityType": a.activity_type, "technician": a.technician,
        "completionOpId": a.completion_op_id, "status": a.status, "requestedAt": a.requested_at,
        "decision": a.decision,
    })
}

/// Approvals after `after` (a seq cursor) that `keep` accepts, oldest first.
pub fn list(
    store: &dyn Storage,
    after: u64,
    limit: usize,
    keep: &dyn Fn(&Approval) -> bool,
) -> Result<(Vec<Approval>, bool), StoreError> {
    let start = key(after.saturating_add(1));
    let mut out = Vec::new();
    let mut more = false;
    crate::store::scan_pages(store, APPROVALS, &start, 256, &mut |k, v| {
        let a: Approval = crate::store::record::open(APPROVALS, k, v)?;
        if !keep(&a) {
            return Ok(true);
        }
        if out.len() == limit {
            more = true;
            return Ok(false);
        }
        out.push(a);
        Ok(true)
    })?;
    Ok((out, more))
}

/// The evidence of an approval, from the activity's timeline: status moves with their times,
/// the location at completion, notes, parts, and the photos and signature with their links.
pub fn evidence(store: &dyn Storage, a: &Approval) -> Result<Value, StoreError> {
    let ops = outbox::activity_ops(store, a.activity_id)?;
    let live = |o: &Op| {
        !matches!(
            o.state,
            OpState::Rejected | OpState::Blocked | OpState::Discarded
        )
    };
    let mut timeline = Vec::new();
    let mut notes = Vec::new();
    let mut parts = Vec::new();
    let mut location = Value::Null;
    for op in ops.iter().filter(|o| live(o)) {
        match &op.kind {
            OpKind::Status {
                status,
                location: at,
                notes: note,
                reason,
                ..
            } => {
                timeline.push(
                    json!({"status": status, "time": op.time, "opId": op.id, "state": op.state}),
                );
                if let Some(n) = note {
                    notes.push(json!({"status": status, "text": n, "time": op.time}));
                }
                if let Some(r) = reason {
                    notes.push(
                        json!({"status": status, "text": r, "time": op.time, "reason": true}),
                    );
                }
                if op.id == a.completion_op_id {
                    location = json!(at);
                }
            }
            OpKind::Part { part } => parts.push(json!({
                "partId": op.id, "action": part.action, "inventoryType": part.inventory_type,
                "serialNumber": part.serial_number, "quantity": part.quantity,
                "undoes": part.undoes, "state": op.state,
            })),
            _ => {}
        }
    }
    let attachments: Vec<Value> = crate::uploads::of_activity(store, a.activity_id)?
        .iter()
        .filter(|x| x.state == crate::uploads::UploadState::Complete)
        .map(|x| {
            json!({
                "attachmentId": x.id, "kind": x.kind, "contentType": x.content_type,
                "capturedAt": x.captured_at, "width": x.width, "height": x.height,
                "thumbnailUrl": format!("/attachments/{}/thumbnail", x.id),
                "contentUrl": format!("/attachments/{}/content", x.id),
            })
        })
        .collect();
    Ok(json!({
        "timeline": timeline,
        "parts": parts,
        "notes": notes,
        "locationAtCompletion": location,
        "attachments": attachments,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approval_ids_round_trip() {
        assert_eq!(approval_seq(&approval_id(12)), Some(12));
        assert_eq!(approval_seq("apr_x"), None);
        assert_eq!(
            ApprovalStatus::parse("approved"),
            Some(ApprovalStatus::Approved)
        );
        assert_eq!(ApprovalStatus::parse("maybe"), None);
    }
}
