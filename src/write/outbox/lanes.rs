//! The lanes: one FIFO of queued ops per route (`resource, date, seq` keys), read by the
//! replayer and the device view; an op that fails verification is quarantined on the way.

use super::{get_op, lane_prefix, op_key, parse_lane_key, recount, Op, LANES, OPS};
use crate::store::journal::Publish;
use crate::store::{Storage, StorageExt, StoreError};

/// The lane's ops still in it, oldest first. An op that fails verification is quarantined
/// (with its reason, for operators) and leaves the lane: it is reported, never sent.
pub fn lane_ops(store: &dyn Storage, resource: &str, date: &str) -> Result<Vec<Op>, StoreError> {
    let mut out = Vec::new();
    for (k, _) in store.scan_raw(LANES, &lane_prefix(resource, date), None, usize::MAX)? {
        let Some((_, _, seq)) = parse_lane_key(&k) else {
            continue;
        };
        match get_op(store, seq) {
            Ok(Some(op)) => out.push(op),
            Ok(None) => {}
            Err(e) if e.is_corrupt() => quarantine_op(store, Some(&k), seq, &e)?,
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Whether no op waits in the route's lane.
pub fn lane_is_empty(store: &dyn Storage, resource: &str, date: &str) -> Result<bool, StoreError> {
    Ok(store
        .scan_raw(LANES, &lane_prefix(resource, date), None, 1)?
        .is_empty())
}

/// Moves a corrupt op to quarantine and takes it out of its lane (when its lane entry is
/// where it was found).
pub fn quarantine_op(
    store: &dyn Storage,
    lane_key: Option<&[u8]>,
    seq: u64,
    err: &StoreError,
) -> Result<(), StoreError> {
    tracing::error!(op = %Op::id_of(seq), error = %err, "op failed verification: quarantined, not sent");
    store.quarantine(OPS, &op_key(seq), &err.to_string())?;
    // The journal says it left, so a restart or `check` agrees with the indexes; and that
    // the counts, which held it in a state no longer readable, must be rebuilt.
    store.append("op.quarantine", Publish::default(), &|tx| {
        tx.remove(OPS, &op_key(seq))?;
        tx.recount();
        match lane_key {
            Some(k) => tx.remove(LANES, k),
            None => Ok(()),
        }
    })?;
    // Its state cannot be read: count every op again (which also tells kept views).
    recount(store)
}

/// The oldest op still in a lane.
pub fn lane_head(
    store: &dyn Storage,
    resource: &str,
    date: &str,
) -> Result<Option<Op>, StoreError> {
    let Some((k, _)) = store
        .scan_raw(LANES, &lane_prefix(resource, date), None, 1)?
        .into_iter()
        .next()
    else {
        return Ok(None);
    };
    let Some((_, _, seq)) = parse_lane_key(&k) else {
        return Ok(None);
    };
    match get_op(store, seq) {
        Err(e) if e.is_corrupt() => {
            quarantine_op(store, Some(&k), seq, &e)?;
            // The next op (if any) is now the head.
            lane_head(store, resource, date)
        }
        // Quarantined where its lane was not known (`GET /ops/{id}`): left in place, the
        // entry would read as an empty lane and stall the ops behind it for good.
        Ok(None) if store.is_quarantined(OPS, &op_key(seq))? => {
            store.append("op.quarantine", Publish::default(), &|tx| {
                tx.remove(LANES, &k)
            })?;
            lane_head(store, resource, date)
        }
        other => other,
    }
}

/// Every lane with work, as (resource, date).
pub fn active_lanes(store: &dyn Storage) -> Result<Vec<(String, String)>, StoreError> {
    Ok(lane_heads(store)?
        .into_iter()
        .map(|(r, d, _)| (r, d))
        .collect())
}

/// Every lane with work and the seq of its oldest op: one seek per lane, not a read of
/// every queued op.
pub(super) fn lane_heads(store: &dyn Storage) -> Result<Vec<(String, String, u64)>, StoreError> {
    let mut lanes = Vec::new();
    let mut start: Option<Vec<u8>> = None;
    loop {
        let batch = store.scan_raw(LANES, b"", start.as_deref(), 1)?;
        let Some((k, _)) = batch.into_iter().next() else {
            break;
        };
        let Some((r, d, seq)) = parse_lane_key(&k) else {
            break;
        };
        // Skip the rest of this lane: jump past its prefix.
        let mut next = lane_prefix(&r, &d);
        next.extend_from_slice(&[0xff; 9]);
        lanes.push((r, d, seq));
        start = Some(next);
    }
    Ok(lanes)
}
