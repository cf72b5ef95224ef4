//! History retention: finished ops (applied or discarded) and change-log entries older than
//! the retention leave the index trees, one journal record per pass. Compaction keeps the
//! journal small; this keeps the history's records from growing with every op ever made.
//! It does not shrink sled 0.34's file, nor, at the next start, its memory, until an
//! offline `fieldsync rewrite`: measured in bench/README.md ("History retention"), which is
//! why it is off unless configured.
//!
//! Only states no one can leave are pruned: a dead, rejected or blocked op waits for an
//! operator however old it is, and an open op for the replayer. Ops of an activity whose
//! approval is still pending stay too: they are the supervisor's evidence.

use super::counts::gone;
use super::{activity_ops_key, op_key, Change, OpState, ACTIVITY_OPS, CHANGES, OPS};
use crate::features::approvals::{self, ApprovalStatus, PendingFloor};
use crate::store::journal::Publish;
use crate::store::keys::{KeyBuf, KeyReader};
use crate::store::{record, scan_pages, Storage, StorageExt, StoreError, Tree};
use chrono::{DateTime, Utc};
use std::collections::HashSet;

/// Records one pass removes at most: one journal record, ~100 bytes of it per record.
pub const PASS: usize = 5_000;

/// `META` key: every change-log entry up to this id may have been pruned, so a pull from a
/// cursor below it starts over from a snapshot instead of missing them.
pub const CHANGES_PRUNED_KEY: &[u8] = b"changes.pruned_through";

/// What one pass removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub ops: usize,
    pub changes: usize,
}

impl Pruned {
    pub fn total(self) -> usize {
        self.ops + self.changes
    }
}

/// The fields of an op record pruning reads.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Brief {
    seq: u64,
    resource_id: String,
    state: OpState,
    activity_id: Option<i64>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// The change-log id below which entries may be gone (0: none pruned yet).
pub fn changes_pruned_through(store: &dyn Storage) -> Result<u64, StoreError> {
    Ok(store
        .get::<u64>(Tree::META, CHANGES_PRUNED_KEY)?
        .unwrap_or(0))
}

/// The activities whose approval is still pending: their ops are the supervisor's evidence.
/// `floor` moves past decided approvals, so a caller that keeps it reads fewer each time.
pub fn pending_activities(
    store: &dyn Storage,
    floor: &PendingFloor,
) -> Result<HashSet<i64>, StoreError> {
    let (pending, _) = approvals::list(
        store,
        0,
        usize::MAX,
        &|a| a.status == ApprovalStatus::Pending,
        Some(floor),
    )?;
    Ok(pending.into_iter().map(|a| a.activity_id).collect())
}

/// Prunes in passes of at most `pass` records until one finds less, keeping pending
/// approvals' ops; `each` sees every pass that removed something. Without a checkpoint
/// between passes (the service's checkpoint thread, or `each` offline) every pass would
/// scan past the removals of the ones before it, still in the overlay.
pub fn prune_all(
    store: &dyn Storage,
    before: DateTime<Utc>,
    floor: &PendingFloor,
    pass: usize,
    each: &mut dyn FnMut(Pruned) -> Result<(), StoreError>,
) -> Result<Pruned, StoreError> {
    let mut total = Pruned::default();
    loop {
        let pending = pending_activities(store, floor)?;
        let p = prune(store, before, &|a| pending.contains(&a), pass)?;
        if p.total() > 0 {
            each(p)?;
        }
        total.ops += p.ops;
        total.changes += p.changes;
        if p.total() < pass {
            return Ok(total);
        }
    }
}

/// One pass: removes at most `max` records of history older than `before`, skipping the ops
/// of activities `keep` names. Answers what it removed; a pass that removed `max` may have
/// left more.
pub fn prune(
    store: &dyn Storage,
    before: DateTime<Utc>,
    keep: &dyn Fn(i64) -> bool,
    max: usize,
) -> Result<Pruned, StoreError> {
    let ops = old_ops(store, before, keep, max)?;
    let (changes, through) = old_changes(store, before, max.saturating_sub(ops.len()))?;
    if ops.is_empty() && changes.is_empty() {
        return Ok(Pruned::default());
    }
    // Durable before any entry is gone: a crash between the two costs a device an
    // unneeded snapshot, never a change it did not see.
    if through > changes_pruned_through(store)? {
        store.put(Tree::META, CHANGES_PRUNED_KEY, &through)?;
        store.flush_blocking()?;
    }
    store.append("history.prune", Publish::default(), &|tx| {
        for op in &ops {
            tx.remove(OPS, &op_key(op.seq))?;
            if let Some(a) = op.activity_id {
                tx.remove(ACTIVITY_OPS, &activity_ops_key(a, op.seq))?;
            }
            tx.count(gone(&op.resource_id, op.seq, op.state));
        }
        for key in &changes {
            tx.remove(CHANGES, key)?;
        }
        Ok(())
    })?;
    Ok(Pruned {
        ops: ops.len(),
        changes: changes.len(),
    })
}

/// Applied and discarded ops that finished before `before`, oldest first. Ops are keyed by
/// sequence, in the order they were accepted, so the scan ends at the first op accepted
/// after `before`: everything past it finished later still.
fn old_ops(
    store: &dyn Storage,
    before: DateTime<Utc>,
    keep: &dyn Fn(i64) -> bool,
    max: usize,
) -> Result<Vec<Brief>, StoreError> {
    let mut out = Vec::new();
    if max == 0 {
        return Ok(out);
    }
    scan_pages(store, OPS, b"", 1024, &mut |k, v| {
        // A corrupt op is for its reader to quarantine; it is not history to drop unseen.
        let Ok(op) = record::open::<Brief>(OPS, k, v) else {
            return Ok(true);
        };
        if op.created_at >= before {
            return Ok(false);
        }
        let finished = matches!(op.state, OpState::Applied | OpState::Discarded);
        if finished && op.updated_at < before && !op.activity_id.is_some_and(keep) {
            out.push(op);
        }
        Ok(out.len() < max)
    })?;
    Ok(out)
}

/// Change-log keys of entries made before `before`, each resource's oldest first, and the
/// highest id among them. Entries past the published watermark are never touched.
fn old_changes(
    store: &dyn Storage,
    before: DateTime<Utc>,
    max: usize,
) -> Result<(Vec<Vec<u8>>, u64), StoreError> {
    let watermark = store.watermark();
    let (mut keys, mut through) = (Vec::new(), 0);
    let mut from = Vec::new();
    while keys.len() < max {
        // The next resource with entries: its first key.
        let Some((first, _)) = store.scan_raw(CHANGES, b"", Some(&from), 1)?.pop() else {
            break;
        };
        let Ok(resource) = KeyReader::new(&first).str() else {
            // Not a key this code writes: step over it.
            from = first;
            from.push(0);
            continue;
        };
        let prefix = KeyBuf::new().str(&resource).finish();
        scan_pages(store, CHANGES, &prefix, 256, &mut |k, v| {
            if !k.starts_with(&prefix) || keys.len() >= max {
                return Ok(false);
            }
            let Ok(change) = record::open::<Change>(CHANGES, k, v) else {
                return Ok(true);
            };
            if change.at >= before || change.seq > watermark {
                return Ok(false);
            }
            through = through.max(change.seq);
            keys.push(k.to_vec());
            Ok(true)
        })?;
        // Past every key of this resource (its prefix ends in the 0x00 terminator).
        from = prefix;
        if let Some(last) = from.last_mut() {
            *last = 0x01;
        }
    }
    Ok((keys, through))
}

#[cfg(test)]
#[path = "history_tests.rs"]
mod tests;
