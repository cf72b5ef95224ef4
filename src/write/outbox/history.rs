//! History retention: finished ops (applied or discarded), change-log entries and
//! idempotency records older than the retention leave the index trees, one journal record per
//! pass; and, when an audit retention is set, audit entries older than it. Compaction keeps the journal small; this keeps the history's records from growing
//! with every op ever made.
//! It does not shrink sled 0.34's file; sled reuses the space for later writes once its
//! cleaner, in the running service, has moved the live pages (bench/README.md, "History
//! retention"); an offline `fieldsync rewrite` shrinks the file.
//!
//! Only states no one can leave are pruned: a dead, rejected or blocked op waits for an
//! operator however old it is, and an open op for the replayer. Ops of an activity whose
//! approval is still pending stay too: they are the supervisor's evidence.

use super::counts::gone;
use super::{activity_ops_key, op_key, Change, OpState, ACTIVITY_OPS, CHANGES, IDEMPOTENCY, OPS};
use crate::features::approvals::{self, ApprovalStatus, PendingFloor};
use crate::features::audit::AUDIT;
use crate::store::journal::Publish;
use crate::store::keys::{KeyBuf, KeyReader};
use crate::store::{record, scan_pages, Storage, StorageExt, StoreError, Tree};
use chrono::{DateTime, Utc};
use std::collections::HashSet;
use std::sync::Mutex;

/// Records one pass removes at most: one journal record, ~100 bytes of it per record.
pub const PASS: usize = 5_000;

/// `META` key: every change-log entry up to this id may have been pruned, so a pull from a
/// cursor below it starts over from a snapshot instead of missing them.
pub const CHANGES_PRUNED_KEY: &[u8] = b"changes.pruned_through";

/// Idempotency records one run of the service's retention reads at most. That index is
/// keyed by user and key, not by time, so its old records are found by a sweep that goes on
/// where the last run stopped: a whole turn takes (records / this) runs, ten minutes apart.
pub const SWEEP_PER_RUN: usize = 100_000;
/// Passes one run of the service's retention makes at most (100,000 records): a backlog (a
/// first run over a long history) is spread over runs instead of taking a core for minutes.
pub const PASSES_PER_RUN: usize = 20;

/// What one pass removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub ops: usize,
    pub changes: usize,
    pub idempotency: usize,
    pub audit: usize,
}

impl Pruned {
    pub fn total(self) -> usize {
        self.ops + self.changes + self.idempotency + self.audit
    }

    fn add(&mut self, p: Pruned) {
        self.ops += p.ops;
        self.changes += p.changes;
        self.idempotency += p.idempotency;
        self.audit += p.audit;
    }
}

/// What is old enough to go: history made before `history`, and audit entries made before
/// `audit` (`None`: the audit trail is kept whole).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cutoff {
    pub history: DateTime<Utc>,
    pub audit: Option<DateTime<Utc>>,
}

impl Cutoff {
    /// The cutoffs `history_days` and `audit_days` before `now` (0: that part is kept
    /// whole); `None` when both are 0.
    pub fn days_before(now: DateTime<Utc>, history_days: u32, audit_days: u32) -> Option<Self> {
        let ago = |days: u32| (days > 0).then(|| now - chrono::Duration::days(i64::from(days)));
        if history_days == 0 && audit_days == 0 {
            return None;
        }
        Some(Cutoff {
            history: ago(history_days).unwrap_or(DateTime::<Utc>::MIN_UTC),
            audit: ago(audit_days),
        })
    }
}

impl From<DateTime<Utc>> for Cutoff {
    fn from(history: DateTime<Utc>) -> Self {
        Cutoff {
            history,
            audit: None,
        }
    }
}

/// How much one run of [`prune_all`] does, and where the sweep of the idempotency index
/// goes on from between runs.
#[derive(Debug)]
pub struct Pace {
    from: Mutex<Vec<u8>>,
    sweep_per_run: usize,
    passes_per_run: usize,
}

impl Pace {
    /// At most `passes` passes and `sweep` idempotency records read per run.
    pub fn new(passes: usize, sweep: usize) -> Self {
        Pace {
            from: Mutex::new(Vec::new()),
            sweep_per_run: sweep,
            passes_per_run: passes,
        }
    }

    /// The running service's: [`PASSES_PER_RUN`], [`SWEEP_PER_RUN`].
    pub fn service() -> Self {
        Self::new(PASSES_PER_RUN, SWEEP_PER_RUN)
    }

    /// Everything there is to prune, in one run (offline).
    pub fn whole() -> Self {
        Self::new(usize::MAX, usize::MAX)
    }
}

/// One run's share of a [`Pace`]'s sweep.
struct SweepRun {
    from: Vec<u8>,
    left: usize,
    /// The run reached the index's end (the next one starts from its beginning).
    ended: bool,
}

/// The field of an idempotency record pruning reads (not its stored answer).
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct IdemBrief {
    created_at: DateTime<Utc>,
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

/// Prunes in passes of at most `pass` records until one finds less or `pace` says the run
/// is over, keeping pending approvals' ops; `each` sees every pass that removed something.
/// Without a checkpoint between passes (the service's checkpoint thread, or `each`
/// offline) every pass would scan past the removals of the ones before it, still in the
/// overlay.
pub fn prune_all(
    store: &dyn Storage,
    before: impl Into<Cutoff>,
    floor: &PendingFloor,
    pace: &Pace,
    pass: usize,
    each: &mut dyn FnMut(Pruned) -> Result<(), StoreError>,
) -> Result<Pruned, StoreError> {
    let mut run = SweepRun {
        from: pace.from.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        left: pace.sweep_per_run,
        ended: false,
    };
    let result = passes(store, before.into(), floor, pace, pass, each, &mut run);
    *pace.from.lock().unwrap_or_else(|p| p.into_inner()) = run.from;
    result
}

/// The passes of one [`prune_all`] run; `run` is where its sweep stands when it ends.
fn passes(
    store: &dyn Storage,
    before: Cutoff,
    floor: &PendingFloor,
    pace: &Pace,
    pass: usize,
    each: &mut dyn FnMut(Pruned) -> Result<(), StoreError>,
    run: &mut SweepRun,
) -> Result<Pruned, StoreError> {
    let mut total = Pruned::default();
    for _ in 0..pace.passes_per_run {
        let pending = pending_activities(store, floor)?;
        let p = one_pass(store, before, &|a| pending.contains(&a), pass, run)?;
        if p.total() > 0 {
            each(p)?;
        }
        total.add(p);
        if p.total() < pass {
            break;
        }
    }
    Ok(total)
}

/// One pass: removes at most `max` records of history older than `before`, skipping the ops
/// of activities `keep` names, and reading the whole idempotency index. Answers what it
/// removed; a pass that removed `max` may have left more.
pub fn prune(
    store: &dyn Storage,
    before: impl Into<Cutoff>,
    keep: &dyn Fn(i64) -> bool,
    max: usize,
) -> Result<Pruned, StoreError> {
    let mut run = SweepRun {
        from: Vec::new(),
        left: usize::MAX,
        ended: false,
    };
    one_pass(store, before.into(), keep, max, &mut run)
}

fn one_pass(
    store: &dyn Storage,
    cutoff: Cutoff,
    keep: &dyn Fn(i64) -> bool,
    max: usize,
    run: &mut SweepRun,
) -> Result<Pruned, StoreError> {
    let before = cutoff.history;
    let ops = old_ops(store, before, keep, max)?;
    let (changes, through) = old_changes(store, before, max.saturating_sub(ops.len()))?;
    let idempotency = old_idempotency(
        store,
        before,
        run,
        max.saturating_sub(ops.len() + changes.len()),
    )?;
    let audit = match cutoff.audit {
        Some(at) => old_audit(
            store,
            at,
            max.saturating_sub(ops.len() + changes.len() + idempotency.len()),
        )?,
        None => Vec::new(),
    };
    if ops.is_empty() && changes.is_empty() && idempotency.is_empty() && audit.is_empty() {
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
        for key in &idempotency {
            tx.remove(IDEMPOTENCY, key)?;
        }
        for key in &audit {
            tx.remove(AUDIT, key)?;
        }
        Ok(())
    })?;
    Ok(Pruned {
        ops: ops.len(),
        changes: changes.len(),
        idempotency: idempotency.len(),
        audit: audit.len(),
    })
}

/// Keys of the oldest audit entries, made before `before`, at most `max`. Entries are keyed
/// by id in the order they were made, so the scan ends at the first one made later.
fn old_audit(
    store: &dyn Storage,
    before: DateTime<Utc>,
    max: usize,
) -> Result<Vec<Vec<u8>>, StoreError> {
    #[derive(serde::Deserialize)]
    struct At {
        at: DateTime<Utc>,
    }
    let mut keys = Vec::new();
    if max == 0 {
        return Ok(keys);
    }
    scan_pages(store, AUDIT, b"", 1024, &mut |k, v| {
        // A corrupt entry is for its reader to quarantine, as with ops.
        let Ok(entry) = record::open::<At>(AUDIT, k, v) else {
            return Ok(true);
        };
        if entry.at >= before {
            return Ok(false);
        }
        keys.push(k.to_vec());
        Ok(keys.len() < max)
    })?;
    Ok(keys)
}

/// Keys of idempotency records made before `before`, at most `max`, from where `run` stands;
/// `run` moves on past what it read. A request retried after this long is taken as new.
fn old_idempotency(
    store: &dyn Storage,
    before: DateTime<Utc>,
    run: &mut SweepRun,
    max: usize,
) -> Result<Vec<Vec<u8>>, StoreError> {
    let mut keys = Vec::new();
    if max == 0 || run.left == 0 || run.ended {
        return Ok(keys);
    }
    let (mut last, mut stopped) = (None, false);
    scan_pages(store, IDEMPOTENCY, &run.from, 1024, &mut |k, v| {
        if keys.len() >= max || run.left == 0 {
            stopped = true;
            return Ok(false);
        }
        run.left -= 1;
        // A corrupt record is for its reader to quarantine, as with ops.
        if let Ok(r) = record::open::<IdemBrief>(IDEMPOTENCY, k, v) {
            if r.created_at < before {
                keys.push(k.to_vec());
            }
        }
        last = Some(k.to_vec());
        Ok(true)
    })?;
    match last {
        Some(mut k) if stopped => {
            // The smallest key after the last one read.
            k.push(0);
            run.from = k;
        }
        _ => {
            run.from.clear();
            run.ended = true;
        }
    }
    Ok(keys)
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
