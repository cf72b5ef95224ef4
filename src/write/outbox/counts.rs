//! Live op counts by resource and state (kept in the store's [`Tally`](crate::store::Tally)): every state change
//! shifts them, so queue depth, metrics and the dead-letter listing are lookups, not scans
//! of every op ever written.

use super::{get_op, lanes::lane_heads, Op, OpState};
use crate::store::{Storage, StoreError};
use chrono::{DateTime, Utc};

fn class(state: OpState) -> usize {
    OpState::ALL.iter().position(|s| *s == state).unwrap_or(0)
}

/// The states an operator lists (`GET /admin/ops`): few ops, kept by id in the tally.
pub const ATTENTION: [OpState; 3] = [OpState::Dead, OpState::Rejected, OpState::Blocked];

fn mark_of(state: OpState) -> Option<usize> {
    ATTENTION.contains(&state).then(|| class(state))
}

/// Moves `op` (now in its current state) out of `from` in the live counts.
pub(super) fn count(store: &dyn Storage, op: &Op, from: Option<OpState>) {
    let tally = store.tally();
    tally.shift(&op.resource_id, from.map(class), Some(class(op.state)));
    let to = mark_of(op.state);
    if to.is_some() || from.and_then(mark_of).is_some() {
        tally.mark(op.seq, to);
    }
}

/// The ids after `after`, in order, of the ops now in one of `states` (all in
/// [`ATTENTION`]), without reading the op history.
pub fn marked_ops(store: &dyn Storage, states: &[OpState], after: u64) -> Vec<u64> {
    let classes: Vec<usize> = states.iter().map(|s| class(*s)).collect();
    store.tally().marked(&classes, after)
}

const RECOUNT_PAGE: usize = 4096;

/// The fields of an op record a recount reads; the rest is skipped, not decoded.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Brief {
    seq: u64,
    resource_id: String,
    state: OpState,
}

/// Rebuilds the live op counts and the listed ops' ids from every op (at start, and after a
/// quarantine took an op whose state could not be read).
pub fn recount(store: &dyn Storage) -> Result<(), StoreError> {
    recount_in_pages(store, RECOUNT_PAGE)
}

pub(super) fn recount_in_pages(store: &dyn Storage, page_size: usize) -> Result<(), StoreError> {
    let mut counts: std::collections::HashMap<String, Vec<u64>> = Default::default();
    let mut marks = std::collections::BTreeMap::new();
    crate::store::scan_pages(store, super::OPS, b"", page_size, &mut |k, v| {
        match crate::store::record::open::<Brief>(super::OPS, k, v) {
            Ok(op) => {
                let row = counts
                    .entry(op.resource_id)
                    .or_insert_with(|| vec![0; OpState::ALL.len()]);
                row[class(op.state)] += 1;
                if let Some(m) = mark_of(op.state) {
                    marks.insert(op.seq, m);
                }
            }
            // The replayer or `GET /ops/{id}` quarantines it, and recounts.
            Err(e) => tracing::error!(error = %e, "a corrupt op is left out of the counts"),
        }
        Ok(true)
    })?;
    store.tally().reset(counts, marks);
    Ok(())
}

/// How many ops are in each state (in [`OpState::ALL`] order), over the resources `keep`
/// accepts.
pub fn counts_by_state(store: &dyn Storage, keep: &dyn Fn(&str) -> bool) -> Vec<(OpState, u64)> {
    let totals = store.tally().totals(OpState::ALL.len(), keep);
    OpState::ALL.iter().copied().zip(totals).collect()
}

/// When the oldest op still in a lane (queued or sending) of a resource `keep` accepts was
/// accepted. Reads each lane's head key and one op, not every op.
pub fn oldest_open(
    store: &dyn Storage,
    keep: &dyn Fn(&str) -> bool,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    let oldest = lane_heads(store)?
        .into_iter()
        .filter(|(resource, _, _)| keep(resource))
        .map(|(_, _, seq)| seq)
        .min();
    match oldest {
        Some(seq) => Ok(get_op(store, seq)?.map(|op| op.created_at)),
        None => Ok(None),
    }
}
