//! Accepting a write into the outbox: its ops and every record that goes with them (lane
//! entries, change-log entries, timeline, route clock, device seq, audit entry, idempotency
//! record), prepared first and appended as ONE journal record, now or with a batch's stage.

use super::counts::shift;
use super::record::{Op, OpKind, OpState};
use super::stage::Stage;
use super::*;
use crate::store::journal::Publish;
use crate::store::record::seal;
use crate::store::{Storage, StorageExt, StoreError, Tree, TxExt};
use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::cell::RefCell;

/// The first answer to an idempotent request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IdemRecord {
    pub request_sha256: String,
    pub status: u16,
    pub response: Value,
    pub created_at: DateTime<Utc>,
}

/// An op to create, before it has an id.
#[derive(Debug, Clone)]
pub struct NewOp {
    pub resource_id: String,
    pub date: String,
    pub activity_id: Option<i64>,
    pub kind: OpKind,
    pub time: DateTime<FixedOffset>,
    pub zone: Option<String>,
    /// The device's raw clock reading, for synced ops (`time` is the corrected one).
    pub captured_at: Option<DateTime<FixedOffset>>,
}

/// Who submits, with which idempotency key and request fingerprint.
#[derive(Debug, Clone)]
pub struct Submitter {
    pub user_id: String,
    pub username: String,
    pub role: crate::auth::Role,
    pub device_id: String,
    pub request_id: String,
    /// The caller's own request id, audited beside the server's.
    pub client_request_id: Option<String>,
    /// What the write is, for the audit trail (`status`, `parts`, `approval.decide`...).
    pub action: &'static str,
    pub idempotency_key: String,
    pub request_sha256: String,
    /// A sync batch's per-device sequence number, kept as the device's high-water mark in
    /// the same journal record as the op.
    pub device_seq: Option<u64>,
    /// A sync batch's stage: an op without extra writes is staged there and committed with
    /// the batch's other ops in one journal record (see [`Stage`]).
    pub stage: Option<std::sync::Arc<Stage>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Enqueued {
    Accepted {
        ops: Vec<Op>,
        response: Value,
    },
    /// Same key, same request: the first answer.
    Replayed {
        status: u16,
        response: Value,
    },
    /// Same key, different request.
    KeyReused,
}

/// Looks up an idempotency record without writing.
pub fn idempotent_answer(
    store: &dyn Storage,
    who: &Submitter,
) -> Result<Option<Enqueued>, StoreError> {
    let key = idem_key(&who.user_id, &who.idempotency_key);
    let staged = who.stage.as_ref().and_then(|s| s.staged_answer(&key));
    let rec: Option<IdemRecord> = match staged {
        Some(rec) => Some(rec),
        None => store.get(IDEMPOTENCY, &key)?,
    };
    Ok(rec.map(|r| {
        if r.request_sha256 == who.request_sha256 {
            Enqueued::Replayed {
                status: r.status,
                response: r.response,
            }
        } else {
            Enqueued::KeyReused
        }
    }))
}

impl Submitter {
    pub fn of(
        who: &crate::auth::Principal,
        action: &'static str,
        idempotency_key: String,
        request_sha256: String,
        device_seq: Option<u64>,
    ) -> Submitter {
        Submitter {
            user_id: who.user_id.clone(),
            username: who.username.clone(),
            role: who.role,
            device_id: who.device_id.clone(),
            request_id: who.request_id.clone(),
            client_request_id: who.client_request_id.clone(),
            action,
            idempotency_key,
            request_sha256,
            device_seq,
            stage: None,
        }
    }
}

/// Writes more records into an enqueue's journal record, given the new ops.
pub type ExtraWrite<'a> = &'a dyn Fn(&dyn crate::store::Tx, &[Op]) -> Result<(), StoreError>;

/// Writes that must land in the same journal record as the ops (an approval opened by a
/// completion, a decision's record).
pub struct Extra<'a> {
    pub write: ExtraWrite<'a>,
    /// Ids the extra writes use (a change-log entry's), published with the write.
    pub tickets: Vec<crate::store::Ticket>,
}

/// How long a write waits for another request writing under the same idempotency key (a
/// claim lasts one append; a batch's, one batch append).
pub(super) const CLAIM_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);

/// Writes the ops, their lane entries, the idempotency record, the change-log entries and the
/// audit entry as one journal record. `respond` builds the answer from the new ops; it is stored
/// for replays. The caller flushes (group commit) before acknowledging.
pub fn enqueue(
    store: &dyn Storage,
    who: &Submitter,
    new_ops: Vec<NewOp>,
    respond: impl Fn(&[Op]) -> Value,
) -> Result<Enqueued, StoreError> {
    enqueue_with(store, who, new_ops, respond, None)
}

/// [`enqueue`] with extra writes in the same journal record.
pub fn enqueue_with(
    store: &dyn Storage,
    who: &Submitter,
    new_ops: Vec<NewOp>,
    respond: impl Fn(&[Op]) -> Value,
    extra: Option<Extra<'_>>,
) -> Result<Enqueued, StoreError> {
    let mut prepared = prepare(store, who, new_ops, respond)?;
    if let Some(stage) = &who.stage {
        match extra {
            None => {
                let accepted = Enqueued::Accepted {
                    ops: prepared.ops.clone(),
                    response: prepared.idem.response.clone(),
                };
                stage.push(prepared);
                return Ok(accepted);
            }
            // Not stageable: the batch's earlier ops go first, so the lane stays in order.
            Some(_) => stage.commit(store)?,
        }
    }
    // Two requests under one key never both pass the "is it taken?" check.
    let _claim = store
        .journal()
        .claims()
        .claim(vec![prepared.ikey.clone()], CLAIM_PATIENCE)?;
    // The earlier record under this key, when there is one (then nothing was written).
    let earlier = RefCell::new(None);
    let what = format!("write.{}", who.action);
    let mut publish = prepared.take_publish();
    let extra_write = extra.map(|x| {
        publish.tickets.extend(x.tickets);
        x.write
    });
    store.append(&what, publish, &|tx| {
        *earlier.borrow_mut() = apply_in(tx, &prepared)?;
        if earlier.borrow().is_some() {
            return Ok(());
        }
        if let Some(write) = extra_write {
            write(tx, &prepared.ops)?;
        }
        for op in &prepared.ops {
            tx.count(shift(op, None));
        }
        Ok(())
    })?;
    Ok(match earlier.into_inner() {
        Some(rec) if rec.request_sha256 == who.request_sha256 => Enqueued::Replayed {
            status: rec.status,
            response: rec.response,
        },
        Some(_) => Enqueued::KeyReused,
        None => Enqueued::Accepted {
            ops: prepared.ops,
            response: prepared.idem.response,
        },
    })
}

/// An accepted write, encoded and checksummed, ready to be appended.
pub(super) struct Prepared {
    writes: Vec<(Tree, Vec<u8>, Vec<u8>)>,
    /// Route clocks to move forward: (key, sealed time).
    clocks: Vec<(Vec<u8>, Vec<u8>)>,
    /// (user, device, seq) of a synced op.
    device_seq: Option<(String, String, u64)>,
    pub(super) ikey: Vec<u8>,
    pub(super) idem: IdemRecord,
    pub(super) ops: Vec<Op>,
    /// Pulls stop below these change ids until the write is published (or abandoned).
    tickets: Vec<crate::store::Ticket>,
}

impl Prepared {
    /// What the journal publishes once this write is durable: its change ids, and its ops
    /// for the replayer.
    pub(super) fn take_publish(&mut self) -> Publish {
        Publish {
            tickets: std::mem::take(&mut self.tickets),
            ops: self.ops.iter().map(|o| o.seq).collect(),
        }
    }

    /// The route (resource, date) the write queues on.
    pub(super) fn route(&self) -> (String, String) {
        self.ops
            .last()
            .map(|o| (o.resource_id.clone(), o.date.clone()))
            .unwrap_or_default()
    }
}

/// Builds the ops and every record of the write, encoded and checksummed, before the append.
fn prepare(
    store: &dyn Storage,
    who: &Submitter,
    new_ops: Vec<NewOp>,
    respond: impl Fn(&[Op]) -> Value,
) -> Result<Prepared, StoreError> {
    let now = Utc::now();
    let mut ops = Vec::with_capacity(new_ops.len());
    for n in new_ops {
        let seq = store.next_id()?;
        ops.push(Op {
            id: Op::id_of(seq),
            seq,
            resource_id: n.resource_id,
            date: n.date,
            activity_id: n.activity_id,
            kind: n.kind,
            time: n.time,
            zone: n.zone,
            captured_at: n.captured_at,
            state: OpState::Queued,
            attempts: 0,
            last_error: None,
            ofsc_detail: None,
            user_id: who.user_id.clone(),
            device_id: who.device_id.clone(),
            created_at: now,
            updated_at: now,
            applied_at: None,
            created_activity_id: None,
            baseline: None,
            result_inventory_id: None,
        });
    }
    // Tickets, not plain ids: pulls stop below any change id whose write is still in flight.
    let tickets = ops
        .iter()
        .map(|_| store.ticket())
        .collect::<Result<Vec<_>, _>>()?;
    let response = respond(&ops);
    let audit_entry = audit_of(who, &ops, store.next_id()?, now);
    let mut writes: Vec<(Tree, Vec<u8>, Vec<u8>)> = Vec::with_capacity(ops.len() * 4 + 2);
    let mut clocks = Vec::new();
    for (op, ticket) in ops.iter().zip(&tickets) {
        writes.push((OPS, op_key(op.seq).to_vec(), seal(op)?));
        let lane = lane_key(&op.resource_id, &op.date, op.seq);
        writes.push((LANES, lane, seal(&op.seq)?));
        let change = op_change(op, ticket.id);
        writes.push((
            CHANGES,
            change_key(&op.resource_id, ticket.id),
            seal(&change)?,
        ));
        if let Some(a) = op.activity_id {
            writes.push((ACTIVITY_OPS, activity_ops_key(a, op.seq), seal(&op.seq)?));
        }
        if op.kind.keeps_route_clock() {
            let key = lane_prefix(&op.resource_id, &op.date);
            clocks.push((key, seal(&op.time)?));
        }
    }
    let audit_key = crate::features::audit::audit_key(audit_entry.seq);
    writes.push((
        crate::features::audit::AUDIT,
        audit_key,
        seal(&audit_entry)?,
    ));
    let idem = IdemRecord {
        request_sha256: who.request_sha256.clone(),
        status: 202,
        response,
        created_at: now,
    };
    let ikey = idem_key(&who.user_id, &who.idempotency_key);
    writes.push((IDEMPOTENCY, ikey.clone(), seal(&idem)?));
    Ok(Prepared {
        writes,
        clocks,
        device_seq: who
            .device_seq
            .map(|s| (who.user_id.clone(), who.device_id.clone(), s)),
        ikey,
        idem,
        ops,
        tickets,
    })
}

/// Records a prepared write into a journal record, unless its idempotency key is taken:
/// then nothing is written and the earlier record is returned.
pub(super) fn apply_in(
    tx: &dyn crate::store::Tx,
    p: &Prepared,
) -> Result<Option<IdemRecord>, StoreError> {
    if let Some(rec) = tx.get::<IdemRecord>(IDEMPOTENCY, &p.ikey)? {
        return Ok(Some(rec));
    }
    for (tree, key, value) in &p.writes {
        tx.insert_raw(*tree, key, value.clone())?;
    }
    for (key, sealed) in &p.clocks {
        tx.raise_raw(ROUTE_CLOCK, key, sealed.clone())?;
    }
    if let Some((user, device, seq)) = &p.device_seq {
        bump_device_seq(tx, user, device, *seq)?;
    }
    Ok(None)
}

/// The audit entry of an accepted write.
fn audit_of(
    who: &Submitter,
    ops: &[Op],
    seq: u64,
    at: DateTime<Utc>,
) -> crate::features::audit::AuditEntry {
    let last = ops.last();
    crate::features::audit::AuditEntry {
        seq,
        at,
        user: who.username.clone(),
        role: who.role,
        device: who.device_id.clone(),
        action: who.action.to_string(),
        object: ops
            .iter()
            .map(|o| o.id.as_str())
            .collect::<Vec<_>>()
            .join(","),
        resource_id: last.map(|o| o.resource_id.clone()),
        activity_id: last.and_then(|o| o.activity_id),
        request_id: who.request_id.clone(),
        client_request_id: who.client_request_id.clone(),
        detail: serde_json::json!({
            "opIds": ops.iter().map(|o| o.id.clone()).collect::<Vec<_>>(),
            "idempotencyKey": who.idempotency_key,
        }),
    }
}
