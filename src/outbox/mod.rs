//! The durable outbox: ops, their lanes (one FIFO per route), idempotency records and the
//! change log, always written together in one sled transaction.

mod counts;
mod lanes;
mod record;
mod stage;

use counts::count;
pub use counts::{counts_by_state, marked_ops, oldest_open, recount, ATTENTION};
pub use lanes::{active_lanes, lane_head, lane_ops, quarantine_op};
pub use record::{Fix, Location, Op, OpKind, OpState};
pub use stage::{LaneGuard, Stage};

use crate::store::keys::{KeyBuf, KeyReader};
use crate::store::record::seal;
use crate::store::{Storage, StorageExt, StoreError, Tree, TxExt};
use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::cell::RefCell;

pub const OPS: Tree = Tree("ops");
pub const LANES: Tree = Tree("lanes");
pub const IDEMPOTENCY: Tree = Tree("idempotency");
pub const CHANGES: Tree = Tree("changes");
/// Each device's highest sync `seq` seen.
pub const DEVICE_SEQ: Tree = Tree("device_seq");

fn device_seq_key(user: &str, device: &str) -> Vec<u8> {
    KeyBuf::new().str(user).str(device).finish()
}

fn bump_device_seq(
    tx: &dyn crate::store::Tx,
    user: &str,
    device: &str,
    seq: u64,
) -> Result<(), StoreError> {
    let key = device_seq_key(user, device);
    let current: Option<u64> = tx.get(DEVICE_SEQ, &key)?;
    if current.is_none_or(|c| seq > c) {
        tx.put(DEVICE_SEQ, &key, &seq)?;
    }
    Ok(())
}

/// The device's high-water `seq` (0 before its first batch).
pub fn device_seq(store: &dyn Storage, user: &str, device: &str) -> Result<u64, StoreError> {
    Ok(store
        .get(DEVICE_SEQ, &device_seq_key(user, device))?
        .unwrap_or(0))
}

/// Raises the high-water mark for an op that was processed but not queued (rejected).
pub fn note_device_seq(
    store: &dyn Storage,
    user: &str,
    device: &str,
    seq: u64,
) -> Result<(), StoreError> {
    store.transact(&[DEVICE_SEQ], &|tx| bump_device_seq(tx, user, device, seq))
}

/// What OFSC cannot show about an activity: the device's last applied `arrived` or
/// `suspended`. Updated with the op's state, so the view never loses it.
pub const DEVICE_MEMO: Tree = Tree("device_memo");

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceMemo {
    pub arrived: bool,
    pub suspended: bool,
}

impl DeviceMemo {
    fn after(status: crate::domain::lifecycle::DeviceStatus) -> DeviceMemo {
        use crate::domain::lifecycle::DeviceStatus as D;
        DeviceMemo {
            arrived: status == D::Arrived,
            suspended: status == D::Suspended,
        }
    }
}

pub fn memo_key(activity: i64) -> [u8; 8] {
    (activity as u64).to_be_bytes()
}

pub fn device_memo(store: &dyn Storage, activity: i64) -> Result<DeviceMemo, StoreError> {
    Ok(store
        .get(DEVICE_MEMO, &memo_key(activity))?
        .unwrap_or_default())
}

/// Index of every op of an activity, in order: its timeline.
pub const ACTIVITY_OPS: Tree = Tree("activity_ops");
/// The latest device time accepted per route, so times never go backwards.
pub const ROUTE_CLOCK: Tree = Tree("route_clock");

pub fn activity_ops_key(activity: i64, seq: u64) -> Vec<u8> {
    KeyBuf::new().u64(activity as u64).u64(seq).finish()
}

/// Every op ever accepted for an activity, oldest first.
pub fn activity_ops(store: &dyn Storage, activity: i64) -> Result<Vec<Op>, StoreError> {
    let prefix = KeyBuf::new().u64(activity as u64).finish();
    let mut out = Vec::new();
    for (k, _) in store.scan_raw(ACTIVITY_OPS, &prefix, None, usize::MAX)? {
        let mut r = KeyReader::new(&k);
        let (Ok(_), Ok(seq)) = (r.u64(), r.u64()) else {
            continue;
        };
        if let Some(op) = get_op(store, seq)? {
            out.push(op);
        }
    }
    Ok(out)
}

/// Resolves an activity id: a provisional id maps to OFSC's id once its create was applied.
pub fn resolve_activity(store: &dyn Storage, id: i64) -> Result<i64, StoreError> {
    if id >= 0 {
        return Ok(id);
    }
    Ok(activity_ops(store, id)?
        .iter()
        .find_map(|op| match op.kind {
            OpKind::CreateActivity { .. } => op.created_activity_id,
            _ => None,
        })
        .unwrap_or(id))
}

/// The queued (not yet applied) create behind a provisional id.
pub fn provisional_activity(
    store: &dyn Storage,
    id: i64,
) -> Result<Option<(Op, crate::ofsc::wire::Activity)>, StoreError> {
    if id >= 0 {
        return Ok(None);
    }
    for op in activity_ops(store, id)? {
        if let OpKind::CreateActivity { activity } = &op.kind {
            let mut a = (**activity).clone();
            a.activity_id = Some(id);
            return Ok(Some((op.clone(), a)));
        }
    }
    Ok(None)
}

/// The latest device time accepted on a route.
pub fn route_clock(
    store: &dyn Storage,
    resource: &str,
    date: &str,
) -> Result<Option<DateTime<FixedOffset>>, StoreError> {
    store.get(ROUTE_CLOCK, &lane_prefix(resource, date))
}

pub fn op_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

pub fn lane_prefix(resource: &str, date: &str) -> Vec<u8> {
    KeyBuf::new().str(resource).str(date).finish()
}

pub fn lane_key(resource: &str, date: &str, seq: u64) -> Vec<u8> {
    KeyBuf::new().str(resource).str(date).u64(seq).finish()
}

/// Decodes a lane key into (resource, date, seq).
pub fn parse_lane_key(key: &[u8]) -> Option<(String, String, u64)> {
    let mut r = KeyReader::new(key);
    Some((r.str().ok()?, r.str().ok()?, r.u64().ok()?))
}

pub fn idem_key(user: &str, key: &str) -> Vec<u8> {
    KeyBuf::new().str(user).str(key).finish()
}

/// The first answer to an idempotent request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IdemRecord {
    pub request_sha256: String,
    pub status: u16,
    pub response: Value,
    pub created_at: DateTime<Utc>,
}

/// One entry of the per-resource change log that devices pull.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    pub seq: u64,
    pub resource_id: String,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activity_id: Option<i64>,
    pub data: Value,
    pub at: DateTime<Utc>,
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
    /// What the write is, for the audit trail (`status`, `parts`, `approval.decide`...).
    pub action: &'static str,
    pub idempotency_key: String,
    pub request_sha256: String,
    /// A sync batch's per-device sequence number, kept as the device's high-water mark in
    /// the same transaction as the op.
    pub device_seq: Option<u64>,
    /// A sync batch's stage: an op without extra writes is staged there and committed with
    /// the batch's other ops in one transaction (see [`Stage`]).
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
            action,
            idempotency_key,
            request_sha256,
            device_seq,
            stage: None,
        }
    }
}

/// Writes more records inside an enqueue transaction, given the new ops.
pub type ExtraWrite<'a> = &'a dyn Fn(&dyn crate::store::Tx, &[Op]) -> Result<(), StoreError>;

/// Writes that must land in the same transaction as the ops (an approval opened by a
/// completion, a decision's record), with the trees they touch.
pub struct Extra<'a> {
    pub trees: &'a [Tree],
    pub write: ExtraWrite<'a>,
}

/// Writes the ops, their lane entries, the idempotency record, the change-log entries and the
/// audit entry in one transaction. `respond` builds the answer from the new ops; it is stored
/// for replays. The caller flushes (group commit) before acknowledging.
pub fn enqueue(
    store: &dyn Storage,
    who: &Submitter,
    new_ops: Vec<NewOp>,
    respond: impl Fn(&[Op]) -> Value,
) -> Result<Enqueued, StoreError> {
    enqueue_with(store, who, new_ops, respond, None)
}

/// [`enqueue`] with extra writes in the same transaction.
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
    if let Some(x) = &extra {
        for t in x.trees {
            if !prepared.trees.contains(t) {
                prepared.trees.push(*t);
            }
        }
    }
    // The earlier record under this key, when there is one (then nothing was written).
    let earlier = RefCell::new(None);
    store.transact(&prepared.trees, &|tx| {
        *earlier.borrow_mut() = apply_in(tx, &prepared)?;
        if earlier.borrow().is_some() {
            return Ok(());
        }
        if let Some(x) = &extra {
            (x.write)(tx, &prepared.ops)?;
        }
        Ok(())
    })?;
    Ok(match earlier.into_inner() {
        Some(rec) if rec.request_sha256 == who.request_sha256 => Enqueued::Replayed {
            status: rec.status,
            response: rec.response,
        },
        Some(_) => Enqueued::KeyReused,
        None => {
            for op in &prepared.ops {
                count(store, op, None);
            }
            Enqueued::Accepted {
                ops: prepared.ops,
                response: prepared.idem.response,
            }
        }
    })
}

/// An accepted write, encoded and checksummed, ready to go into a transaction.
pub(crate) struct Prepared {
    trees: Vec<Tree>,
    writes: Vec<(Tree, Vec<u8>, Vec<u8>)>,
    /// Route clocks to move forward: (key, time, sealed time).
    clocks: Vec<(Vec<u8>, DateTime<FixedOffset>, Vec<u8>)>,
    /// (user, device, seq) of a synced op.
    device_seq: Option<(String, String, u64)>,
    ikey: Vec<u8>,
    idem: IdemRecord,
    ops: Vec<Op>,
    /// Pulls stop below these change ids until the write lands (or is abandoned).
    _tickets: Vec<crate::store::Ticket>,
}

impl Prepared {
    /// The route (resource, date) the write queues on.
    fn route(&self) -> (String, String) {
        self.ops
            .last()
            .map(|o| (o.resource_id.clone(), o.date.clone()))
            .unwrap_or_default()
    }
}

/// Builds the ops and every record of the write. Everything is encoded and checksummed here,
/// before any transaction: sled 0.34 runs a transaction's closure under its global lock, so
/// only lookups and inserts belong there.
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
            clocks.push((key, op.time, seal(&op.time)?));
        }
    }
    let audit_key = crate::audit::audit_key(audit_entry.seq);
    writes.push((crate::audit::AUDIT, audit_key, seal(&audit_entry)?));
    let idem = IdemRecord {
        request_sha256: who.request_sha256.clone(),
        status: 202,
        response,
        created_at: now,
    };
    let ikey = idem_key(&who.user_id, &who.idempotency_key);
    writes.push((IDEMPOTENCY, ikey.clone(), seal(&idem)?));
    Ok(Prepared {
        trees: vec![
            OPS,
            LANES,
            IDEMPOTENCY,
            CHANGES,
            ACTIVITY_OPS,
            ROUTE_CLOCK,
            DEVICE_SEQ,
            crate::audit::AUDIT,
        ],
        writes,
        clocks,
        device_seq: who
            .device_seq
            .map(|s| (who.user_id.clone(), who.device_id.clone(), s)),
        ikey,
        idem,
        ops,
        _tickets: tickets,
    })
}

/// Writes a prepared write inside a transaction, unless its idempotency key is taken: then
/// nothing is written and the earlier record is returned.
fn apply_in(tx: &dyn crate::store::Tx, p: &Prepared) -> Result<Option<IdemRecord>, StoreError> {
    if let Some(rec) = tx.get::<IdemRecord>(IDEMPOTENCY, &p.ikey)? {
        return Ok(Some(rec));
    }
    for (tree, key, value) in &p.writes {
        tx.insert_raw(*tree, key, value.clone())?;
    }
    for (key, time, sealed) in &p.clocks {
        let clock: Option<DateTime<FixedOffset>> = tx.get(ROUTE_CLOCK, key)?;
        if clock.is_none_or(|c| *time > c) {
            tx.insert_raw(ROUTE_CLOCK, key, sealed.clone())?;
        }
    }
    if let Some((user, device, seq)) = &p.device_seq {
        bump_device_seq(tx, user, device, *seq)?;
    }
    Ok(None)
}

/// Records that the replayer is sending `op` (informational: `GET /ops` shows it; recovery
/// reads every lane head back anyway, so this needs neither a transaction nor a flush).
pub fn mark_sending(store: &dyn Storage, op: &Op, from: OpState) -> Result<(), StoreError> {
    store.put(OPS, &op_key(op.seq), op)?;
    count(store, op, Some(from));
    Ok(())
}

/// The audit entry of an accepted write.
fn audit_of(who: &Submitter, ops: &[Op], seq: u64, at: DateTime<Utc>) -> crate::audit::AuditEntry {
    let last = ops.last();
    crate::audit::AuditEntry {
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
        detail: serde_json::json!({
            "opIds": ops.iter().map(|o| o.id.clone()).collect::<Vec<_>>(),
            "idempotencyKey": who.idempotency_key,
        }),
    }
}

pub fn change_key(resource: &str, seq: u64) -> Vec<u8> {
    KeyBuf::new().str(resource).u64(seq).finish()
}

/// The change-log entry announcing an op's current state to its device.
pub fn op_change(op: &Op, seq: u64) -> Change {
    Change {
        seq,
        resource_id: op.resource_id.clone(),
        kind: "op".into(),
        device_id: Some(op.device_id.clone()),
        activity_id: op.activity_id,
        data: serde_json::json!({
            "opId": op.id, "state": op.state, "lastError": op.last_error, "ofscDetail": op.ofsc_detail,
        }),
        at: Utc::now(),
    }
}

/// What a webhook says about an op's outcome.
fn op_event(op: &Op) -> Value {
    serde_json::json!({
        "opId": op.id, "state": op.state, "resourceId": op.resource_id, "date": op.date,
        "activityId": op.activity_id, "kind": op.kind, "attempts": op.attempts,
        "lastError": op.last_error, "ofscDetail": op.ofsc_detail, "deviceId": op.device_id,
    })
}

pub fn get_op(store: &dyn Storage, seq: u64) -> Result<Option<Op>, StoreError> {
    store.get(OPS, &op_key(seq))
}

/// Saves an op's new state; when it leaves the queue its lane entry goes, and the device
/// hears about it through the change log, in the same transaction. With `announce`, an
/// outcome is also recorded as a webhook event (only when some endpoint listens: it is one
/// more write per op).
pub fn save_op(store: &dyn Storage, op: &Op, announce: bool) -> Result<(), StoreError> {
    let ticket = store.ticket()?;
    let cseq = ticket.id;
    let announce = match op.state {
        OpState::Applied if announce => Some("op.applied"),
        OpState::Rejected if announce => Some("op.rejected"),
        OpState::Dead if announce => Some("op.dead"),
        _ => None,
    };
    let event_seq = match announce {
        Some(_) => store.next_id()?,
        None => 0,
    };
    let before: RefCell<Option<OpState>> = RefCell::new(None);
    store.transact(
        &[OPS, LANES, CHANGES, DEVICE_MEMO, crate::webhooks::EVENTS],
        &|tx| {
            let key = op_key(op.seq);
            // A record that does not verify is being replaced: it counted nowhere readable.
            *before.borrow_mut() = tx
                .get_raw(OPS, &key)?
                .and_then(|b| crate::store::record::open::<StateOnly>(OPS, &key, &b).ok())
                .map(|s| s.state);
            if let Some(event_type) = announce {
                crate::webhooks::emit_in(tx, event_seq, event_type, op_event(op))?;
            }
            tx.put(OPS, &op_key(op.seq), op)?;
            if let (OpState::Applied, Some(id), OpKind::Status { status, .. }) =
                (op.state, op.activity_id, &op.kind)
            {
                tx.put(DEVICE_MEMO, &memo_key(id), &DeviceMemo::after(*status))?;
            }
            if op.state.is_final() {
                tx.remove(LANES, &lane_key(&op.resource_id, &op.date, op.seq))?;
                tx.put(
                    CHANGES,
                    &change_key(&op.resource_id, cseq),
                    &op_change(op, cseq),
                )?;
            }
            Ok(())
        },
    )?;
    count(store, op, before.into_inner());
    Ok(())
}

/// An op record read only for its state.
#[derive(Deserialize)]
struct StateOnly {
    state: OpState,
}

/// Up to `limit` ops after `after` that `keep` accepts, in id order, read a page at a time
/// (for operators investigating states that are not kept by id).
pub fn ops_after(
    store: &dyn Storage,
    after: u64,
    limit: usize,
    keep: &dyn Fn(&Op) -> bool,
) -> Result<Vec<Op>, StoreError> {
    let mut out = Vec::new();
    let start = op_key(after.saturating_add(1));
    crate::store::scan_pages(store, OPS, &start, 1024, &mut |k, v| {
        match crate::store::record::open::<Op>(OPS, k, v) {
            Ok(op) if keep(&op) => out.push(op),
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "skipping a corrupt op in a listing; the replayer quarantines it")
            }
        }
        Ok(out.len() < limit)
    })?;
    Ok(out)
}

/// Puts a dead, rejected or blocked op back at its place in its lane.
pub fn requeue(store: &dyn Storage, seq: u64) -> Result<Op, StoreError> {
    let mut op = get_op(store, seq)?.ok_or_else(|| StoreError::Aborted("no such op".into()))?;
    let from = op.state;
    op.state = OpState::Queued;
    op.attempts = 0;
    op.updated_at = Utc::now();
    store.transact(&[OPS, LANES], &|tx| {
        tx.put(OPS, &op_key(op.seq), &op)?;
        tx.put(LANES, &lane_key(&op.resource_id, &op.date, op.seq), &op.seq)
    })?;
    count(store, &op, Some(from));
    Ok(op)
}

/// Gives up on an op for good.
pub fn discard(store: &dyn Storage, seq: u64) -> Result<Op, StoreError> {
    let mut op = get_op(store, seq)?.ok_or_else(|| StoreError::Aborted("no such op".into()))?;
    op.state = OpState::Discarded;
    op.updated_at = Utc::now();
    save_op(store, &op, false)?;
    Ok(op)
}

#[cfg(test)]
#[path = "tests.rs"]
pub(crate) mod tests;
