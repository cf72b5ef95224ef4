//! Live op counts by resource and state (kept in the store's [`Tally`](crate::store::Tally)):
//! every journal record that moves an op carries the move ([`shift`]), so queue depth,
//! metrics and the dead-letter listing are lookups, not scans of every op ever written, and
//! a start begins from the counts its last checkpoint persisted.

use super::{get_op, lanes::lane_heads, Op, OpState};
use crate::store::{Class, Counts, Shift, Storage, StoreError};
use chrono::{DateTime, Utc};

fn class(state: OpState) -> Class {
    Class {
        index: OpState::ALL.iter().position(|s| *s == state).unwrap_or(0) as u8,
        listed: ATTENTION.contains(&state),
    }
}

fn index(state: OpState) -> usize {
    usize::from(class(state).index)
}

/// The states an operator lists (`GET /admin/ops`): few ops, kept by id in the tally.
pub const ATTENTION: [OpState; 3] = [OpState::Dead, OpState::Rejected, OpState::Blocked];

/// `op` (now in its current state) moving out of `from` (`None`: a new op), for the journal
/// record that writes it to carry.
pub(super) fn shift(op: &Op, from: Option<OpState>) -> Shift {
    Shift {
        group: op.resource_id.clone(),
        id: op.seq,
        from: from.map(class),
        to: Some(class(op.state)),
    }
}

/// An op in `state` leaving the history (pruned by retention).
pub(super) fn gone(resource: &str, seq: u64, state: OpState) -> Shift {
    Shift {
        group: resource.to_string(),
        id: seq,
        from: Some(class(state)),
        to: None,
    }
}

/// The ids after `after`, in order, of the ops now in one of `states` (all in
/// [`ATTENTION`]), without reading the op history.
pub fn marked_ops(store: &dyn Storage, states: &[OpState], after: u64) -> Vec<u64> {
    let classes: Vec<usize> = states.iter().map(|s| index(*s)).collect();
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

/// Rebuilds the live op counts and the listed ops' ids from every op (after a quarantine,
/// and at a start whose checkpoint had no counts).
pub fn recount(store: &dyn Storage) -> Result<(), StoreError> {
    store.tally().reset(count_all(store, RECOUNT_PAGE)?);
    Ok(())
}

/// Counts ops one record at a time (a scan's, or `fieldsync check`'s own pass).
#[derive(Default)]
pub(super) struct Counting {
    counts: Counts,
}

impl Counting {
    pub(super) fn add(&mut self, k: &[u8], v: &[u8]) {
        match crate::store::record::open::<Brief>(super::OPS, k, v) {
            Ok(op) => {
                let row = self
                    .counts
                    .counts
                    .entry(op.resource_id)
                    .or_insert_with(|| vec![0; OpState::ALL.len()]);
                row[index(op.state)] += 1;
                if ATTENTION.contains(&op.state) {
                    self.counts.marks.insert(op.seq, index(op.state));
                }
            }
            // The replayer or `GET /ops/{id}` quarantines it, and recounts.
            Err(e) => tracing::error!(error = %e, "a corrupt op is left out of the counts"),
        }
    }
}

/// Every op's resource and state, counted, and the listed ops' ids, read a page at a time.
pub(super) fn count_all(store: &dyn Storage, page_size: usize) -> Result<Counts, StoreError> {
    let mut counting = Counting::default();
    crate::store::scan_pages(store, super::OPS, b"", page_size, &mut |k, v| {
        counting.add(k, v);
        Ok(true)
    })?;
    Ok(counting.counts)
}

/// How a start got its counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// From the last checkpoint's, moved on by the journal records past it.
    Restored,
    /// By reading every op (the checkpoint had none, or a record past it dropped an op
    /// unread).
    Recounted,
}

/// Rebuilds the counts at a start if the journal could not bring them up to date.
pub fn count_if_unknown(store: &dyn Storage) -> Result<Counted, StoreError> {
    if store.tally().known() {
        return Ok(Counted::Restored);
    }
    recount(store)?;
    Ok(Counted::Recounted)
}

/// What differs between the live counts (as a start brought them up to date) and a count
/// of the ops (`counting`'s), for `fieldsync check`.
pub(super) fn compare(live: Counts, counting: Counting) -> Vec<String> {
    let (live, counted) = (live.normalized(), counting.counts.normalized());
    let mut differences = Vec::new();
    if live.counts != counted.counts {
        differences.push("the checkpointed op counts differ from a count of the ops".to_string());
    }
    if live.marks != counted.marks {
        differences.push(
            "the checkpointed dead, rejected and blocked ops differ from the ops".to_string(),
        );
    }
    differences
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
