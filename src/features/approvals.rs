//! Supervisor approvals of completed work: the records, opened in the same journal record as
//! the completion that needs one, decided once, and the evidence gathered from the
//! activity's timeline.

use crate::store::{Storage, StorageExt, StoreError, Tree, Tx, TxExt};
use crate::write::outbox::{self, Op, OpKind, OpState};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};

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
    crate::ids::format("apr_", seq)
}

pub fn approval_seq(id: &str) -> Option<u64> {
    crate::ids::parse("apr_", id)
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

/// Writes an approval (new or decided) and announces it, in the caller's journal record.
/// `event_seq` is a `Storage::next_id` taken before the append.
pub fn put_in(tx: &dyn Tx, a: &Approval, event_seq: u64) -> Result<(), StoreError> {
    tx.put(APPROVALS, &key(a.seq), a)?;
    let event_type = if a.decision.is_some() {
        "approval.decided"
    } else {
        "approval.requested"
    };
    crate::features::webhooks::emit_in(tx, event_seq, event_type, summary(a))
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

/// The highest approval id up to which every approval is decided (0: none known).
/// Approvals are born pending and only ever decided, and new ones get higher ids, so a
/// listing of pending ones starts after it rather than at the first approval ever made.
#[derive(Debug, Default)]
pub struct PendingFloor(AtomicU64);

/// An id is taken just before its approval is written: approvals this young may still have
/// an older neighbour on its way, so the floor stays at or below them.
const SETTLING: chrono::Duration = chrono::Duration::minutes(5);

/// Approvals after `after` (a seq cursor) that `keep` accepts, oldest first. With `pending`
/// (whose caller's `keep` accepts only pending approvals), the scan starts at the floor and
/// moves it up past what it found decided.
pub fn list(
    store: &dyn Storage,
    after: u64,
    limit: usize,
    keep: &dyn Fn(&Approval) -> bool,
    pending: Option<&PendingFloor>,
) -> Result<(Vec<Approval>, bool), StoreError> {
    let settled = pending.map_or(0, |f| f.0.load(Ordering::Acquire));
    // The floor moves only after a scan that started right after it.
    let from_floor = pending.is_some() && after <= settled;
    let first = after.max(settled).saturating_add(1);
    let young = Utc::now() - SETTLING;
    let (mut out, mut more) = (Vec::new(), false);
    let (mut first_open, mut last_seen) = (None, None);
    crate::store::scan_pages(store, APPROVALS, &key(first), 256, &mut |k, v| {
        // Quarantined (and reported by `fieldsync check`), not an error every listing of
        // the inbox would hit.
        let Some(a) = store.open_or_quarantine::<Approval>(APPROVALS, k, v)? else {
            return Ok(true);
        };
        last_seen = Some(a.seq);
        if a.status == ApprovalStatus::Pending || a.requested_at > young {
            first_open.get_or_insert(a.seq);
        }
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
    if let (true, Some(f)) = (from_floor, pending) {
        // Stopping early means a pending approval was kept, so `first_open` is set.
        let now_settled = match first_open {
            Some(open) => Some(open.saturating_sub(1)),
            None => last_seen,
        };
        if let Some(n) = now_settled {
            f.0.fetch_max(n, Ordering::AcqRel);
        }
    }
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
    let attachments: Vec<Value> = crate::features::uploads::of_activity(store, a.activity_id)?
        .iter()
        .filter(|x| x.state == crate::features::uploads::UploadState::Complete)
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

    fn approval(seq: u64, status: ApprovalStatus, requested_at: DateTime<Utc>) -> Approval {
        Approval {
            id: approval_id(seq),
            seq,
            activity_id: seq as i64,
            resource_id: "tech1".into(),
            date: "2026-11-28".into(),
            activity_type: None,
            technician: "tech1".into(),
            technician_user_id: "u1".into(),
            completion_op_id: "op".into(),
            status,
            requested_at,
            decision: None,
        }
    }

    fn ids(found: &(Vec<Approval>, bool)) -> Vec<u64> {
        found.0.iter().map(|a| a.seq).collect()
    }

    #[test]
    fn pending_listings_start_past_what_is_decided_and_never_skip_a_pending_one(
    ) -> Result<(), StoreError> {
        use ApprovalStatus::{Approved, Pending, Rejected};
        let store = crate::store::SledStore::temporary()?;
        let old = Utc::now() - chrono::Duration::days(1);
        let put = |a: &Approval| store.put(APPROVALS, &key(a.seq), a);
        for (seq, status) in [
            (1, Approved),
            (2, Rejected),
            (3, Pending),
            (4, Approved),
            (5, Pending),
        ] {
            put(&approval(seq, status, old))?;
        }
        let floor = PendingFloor::default();
        let pending = |a: &Approval| a.status == Pending;
        let page = list(&store, 0, 1, &pending, Some(&floor))?;
        assert_eq!((ids(&page), page.1), (vec![3], true));
        assert_eq!(floor.0.load(Ordering::Acquire), 2);
        // A page from a cursor past the floor leaves it alone.
        assert_eq!(ids(&list(&store, 3, 10, &pending, Some(&floor))?), vec![5]);
        assert_eq!(floor.0.load(Ordering::Acquire), 2);
        // Deciding 3 lets the next full listing move the floor to just before 5.
        put(&approval(3, Approved, old))?;
        assert_eq!(ids(&list(&store, 0, 10, &pending, Some(&floor))?), vec![5]);
        assert_eq!(floor.0.load(Ordering::Acquire), 4);
        put(&approval(5, Rejected, old))?;
        assert_eq!(
            ids(&list(&store, 0, 10, &pending, Some(&floor))?),
            Vec::<u64>::new()
        );
        assert_eq!(floor.0.load(Ordering::Acquire), 5);
        // A young approval holds the floor even once decided: an older id may still land.
        put(&approval(6, Approved, Utc::now()))?;
        list(&store, 0, 10, &pending, Some(&floor))?;
        assert_eq!(floor.0.load(Ordering::Acquire), 5);
        put(&approval(7, Pending, old))?;
        assert_eq!(ids(&list(&store, 0, 10, &pending, Some(&floor))?), vec![7]);
        // Without a floor (any status), everything from the cursor.
        let all = list(&store, 0, 10, &|_| true, None)?;
        assert_eq!(ids(&all), vec![1, 2, 3, 4, 5, 6, 7]);
        Ok(())
    }
}
