//! Live op counts by resource and state (kept in the store's [`Tally`](crate::store::Tally)): every state change
//! shifts them, so queue depth, metrics and the dead-letter listing are lookups, not scans
//! of every op ever written.

use super::{get_op, lanes::lane_heads, Op, OpState};
use crate::store::{Storage, StorageExt, StoreError, Tree};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

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

/// Rebuilds the live op counts and the listed ops' ids from every op (after a quarantine,
/// and at a start that has no saved counts to restore).
pub fn recount(store: &dyn Storage) -> Result<(), StoreError> {
    let (counts, marks) = count_all(store, RECOUNT_PAGE)?;
    store.tally().reset(counts, marks);
    Ok(())
}

type Counts = (HashMap<String, Vec<u64>>, BTreeMap<u64, usize>);

/// Counts ops one record at a time (a scan's, or `fieldsync check`'s own pass).
#[derive(Default)]
pub(super) struct Counting {
    counts: HashMap<String, Vec<u64>>,
    marks: BTreeMap<u64, usize>,
}

impl Counting {
    pub(super) fn add(&mut self, k: &[u8], v: &[u8]) {
        match crate::store::record::open::<Brief>(super::OPS, k, v) {
            Ok(op) => {
                let row = self
                    .counts
                    .entry(op.resource_id)
                    .or_insert_with(|| vec![0; OpState::ALL.len()]);
                row[class(op.state)] += 1;
                if let Some(m) = mark_of(op.state) {
                    self.marks.insert(op.seq, m);
                }
            }
            // The replayer or `GET /ops/{id}` quarantines it, and recounts.
            Err(e) => tracing::error!(error = %e, "a corrupt op is left out of the counts"),
        }
    }

    fn finish(self) -> Counts {
        (self.counts, self.marks)
    }
}

/// Every op's resource and state, counted, and the listed ops' ids, read a page at a time.
pub(super) fn count_all(store: &dyn Storage, page_size: usize) -> Result<Counts, StoreError> {
    let mut counting = Counting::default();
    crate::store::scan_pages(store, super::OPS, b"", page_size, &mut |k, v| {
        counting.add(k, v);
        Ok(true)
    })?;
    Ok(counting.finish())
}

/// The counts as a clean stop left them, for the next start. Without it a start reads every
/// op ever kept: with a million queued, seconds, and the ~100 MiB sled keeps of the pages it
/// read (bench/README.md).
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Saved {
    /// The journal's last sequence when they were saved: they hold for that journal only.
    last_seq: u64,
    counts: HashMap<String, Vec<u64>>,
    marks: Vec<(u64, usize)>,
}

const SAVED_KEY: &[u8] = b"op_counts";

/// Saves the live counts at a clean stop (after the last write and the final checkpoint).
pub fn save_counts(store: &dyn Storage) -> Result<(), StoreError> {
    let last_seq = store.journal().last_seq();
    let (counts, marks) = store.tally().snapshot();
    let saved = Saved {
        last_seq,
        counts,
        marks: marks.into_iter().collect(),
    };
    store.put(Tree::META, SAVED_KEY, &saved)?;
    store.flush_blocking()
}

/// How a start got its counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// From what the last clean stop saved.
    Restored,
    /// By reading every op.
    Recounted,
}

/// Restores the counts a clean stop saved, if they were saved for exactly this journal, else
/// recounts. The saved counts are removed first, so they serve one start only: a crash after
/// it (whose writes they would not hold) leads to a recount.
pub fn restore_or_recount(store: &dyn Storage) -> Result<Counted, StoreError> {
    let saved = take_saved(store)?;
    match saved {
        Some(s) if s.last_seq == store.journal().last_seq() => {
            store
                .tally()
                .reset(normalized(s.counts), s.marks.into_iter().collect());
            Ok(Counted::Restored)
        }
        _ => {
            recount(store)?;
            Ok(Counted::Recounted)
        }
    }
}

fn take_saved(store: &dyn Storage) -> Result<Option<Saved>, StoreError> {
    let saved = match store.get::<Saved>(Tree::META, SAVED_KEY) {
        Ok(s) => s,
        // A damaged copy is only a lost shortcut: the counts are read from the ops.
        Err(e) if e.is_corrupt() => {
            tracing::warn!(error = %e, "saved op counts unreadable; recounting");
            None
        }
        Err(e) => return Err(e),
    };
    if saved.is_some() || store.get_raw(Tree::META, SAVED_KEY)?.is_some() {
        store.remove(Tree::META, SAVED_KEY)?;
        store.flush_blocking()?;
    }
    Ok(saved)
}

/// Rows of zeros dropped and trailing zeros trimmed, so two countings compare equal when
/// they count the same ops.
fn normalized(counts: HashMap<String, Vec<u64>>) -> HashMap<String, Vec<u64>> {
    counts
        .into_iter()
        .filter_map(|(group, mut row)| {
            while row.last() == Some(&0) {
                row.pop();
            }
            (!row.is_empty()).then_some((group, row))
        })
        .collect()
}

/// The saved counts a start would restore, for `fieldsync check` to compare with a count of
/// the ops (`None`: none saved, or saved for another journal).
pub(super) fn saved_for_check(store: &dyn Storage) -> Result<Option<Saved>, StoreError> {
    Ok(store
        .get::<Saved>(Tree::META, SAVED_KEY)?
        .filter(|s| s.last_seq == store.journal().last_seq()))
}

/// What differs between saved counts and a count of the ops (`counting`'s).
pub(super) fn compare_saved(saved: Saved, counting: Counting) -> Vec<String> {
    let (counts, marks) = counting.finish();
    let mut differences = Vec::new();
    if normalized(saved.counts) != normalized(counts) {
        differences.push("the saved op counts differ from a count of the ops".to_string());
    }
    if saved.marks.into_iter().collect::<BTreeMap<_, _>>() != marks {
        differences.push("the saved dead, rejected and blocked ops differ from the ops".into());
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
