//! The durable outbox: ops, their lanes (one FIFO per route), idempotency records and the
//! change log. Every change is one journal record ([`crate::store::journal`]): an accepted
//! write with everything it means, or an op's state change; these trees are its indexes.

mod counts;
mod enqueue;
pub mod history;
mod lanes;
mod record;
mod stage;

use counts::shift;
pub use counts::{
    count_if_unknown, counts_by_state, marked_ops, oldest_open, recount, Counted, ATTENTION,
};
pub use enqueue::{
    enqueue, enqueue_with, idempotent_answer, Enqueued, Extra, ExtraWrite, IdemRecord, NewOp,
    Submitter,
};
pub use lanes::{active_lanes, lane_head, lane_is_empty, lane_ops, quarantine_op};
pub use record::{Fix, Location, Op, OpKind, OpState};
pub use stage::{LaneGuard, Stage};

use crate::store::journal::Publish;
use crate::store::keys::{KeyBuf, KeyReader};
use crate::store::{Storage, StorageExt, StoreError, Tree, TxExt};
use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

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
    tx.raise(DEVICE_SEQ, &device_seq_key(user, device), &seq)
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
    store
        .append("device.seq", Publish::default(), &|tx| {
            bump_device_seq(tx, user, device, seq)
        })
        .map(|_| ())
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

/// Records that the replayer is sending `op` (informational: `GET /ops` shows it; recovery
/// reads every lane head back anyway, so this needs no flush).
pub fn mark_sending(store: &dyn Storage, op: &Op, from: OpState) -> Result<(), StoreError> {
    store
        .append("op.sending", Publish::default(), &|tx| {
            tx.count(shift(op, Some(from)));
            tx.put(OPS, &op_key(op.seq), op)
        })
        .map(|_| ())
}

/// Records an op as it is now, without moving it in its lane (a state the replayer notes on
/// the way, a durable baseline).
pub fn put_op(store: &dyn Storage, what: &str, op: &Op) -> Result<(), StoreError> {
    store
        .append(what, Publish::default(), &|tx| {
            tx.put(OPS, &op_key(op.seq), op)
        })
        .map(|_| ())
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
/// hears about it through the change log, in the same journal record. With `announce`, an
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
    let key = op_key(op.seq);
    // One writer moves an op at a time (its lane's replayer, or an operator on an op out of
    // its lane), so the state read here is the one this record replaces. A record that does
    // not verify is being replaced: it counted nowhere readable.
    let before = store
        .get_raw(OPS, &key)?
        .and_then(|b| crate::store::record::open::<StateOnly>(OPS, &key, &b).ok())
        .map(|s| s.state);
    let what = format!("op.{}", op.state.name());
    let publish = Publish {
        tickets: vec![ticket],
        ops: vec![op.seq],
    };
    store.append(&what, publish, &|tx| {
        if let Some(event_type) = announce {
            crate::features::webhooks::emit_in(tx, event_seq, event_type, op_event(op))?;
        }
        tx.put(OPS, &key, op)?;
        tx.count(shift(op, before));
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
    })?;
    Ok(())
}

/// The trees only the journal writes: `fieldsync check` rebuilds them from it.
pub fn journal_owned_trees() -> Vec<Tree> {
    vec![
        OPS,
        LANES,
        IDEMPOTENCY,
        ACTIVITY_OPS,
        ROUTE_CLOCK,
        DEVICE_SEQ,
        DEVICE_MEMO,
        crate::features::approvals::APPROVALS,
    ]
}

/// Whether a journal record is no longer needed: every op it created or moved has finished
/// (or is gone). Compaction removes such records from the front of the journal; the index
/// trees hold what they meant.
pub fn settled(
    store: &dyn Storage,
    entry: &crate::store::journal::Entry,
) -> Result<bool, StoreError> {
    for seq in &entry.ops {
        let key = op_key(*seq);
        let state = match store.get_raw(OPS, &key)? {
            None => continue,
            Some(b) => crate::store::record::open::<StateOnly>(OPS, &key, &b).map(|s| s.state),
        };
        match state {
            Ok(s) if s.is_final() => {}
            // Open, or unreadable (quarantined when the replayer reaches it): kept.
            _ => return Ok(false),
        }
    }
    Ok(true)
}

/// Verifies the store (with the service stopped): every journal record's checksum, and every
/// record of the journal-owned trees, rebuilt from the journal and compared, and the op
/// counts a clean stop saved, against a count of the ops.
pub fn check(store: &dyn Storage) -> Result<crate::store::journal::Report, StoreError> {
    // Opening brought the checkpoint's counts up to the journal; unknown ones (a start
    // rebuilds them) have nothing to compare.
    let live = store.tally().known().then(|| store.tally().snapshot());
    let mut counting = counts::Counting::default();
    // The ops are counted on check's own pass over every index record: no second scan.
    let mut report =
        crate::store::journal::check_with(store, &journal_owned_trees(), &mut |tree, k, v| {
            if live.is_some() && tree == OPS {
                counting.add(k, v);
            }
        })?;
    if let Some(live) = live {
        for what in counts::compare(live, counting) {
            report
                .differences
                .push(("meta".into(), "op counts".into(), what));
        }
    }
    Ok(report)
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
    let publish = Publish {
        tickets: Vec::new(),
        ops: vec![op.seq],
    };
    store.append("op.retry", publish, &|tx| {
        tx.put(OPS, &op_key(op.seq), &op)?;
        tx.count(shift(&op, Some(from)));
        tx.put(LANES, &lane_key(&op.resource_id, &op.date, op.seq), &op.seq)
    })?;
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
