//! The journal: the one source of truth of the write model. An accepted write, an op's state
//! change or an operator's action is ONE checksummed record appended to the `journal` tree
//! (key: `u64` sequence). The record carries its effects on the derived indexes (puts,
//! removes, raises); those are applied after the append, to the in-memory overlay that a
//! checkpoint later writes into the index trees ([`super::overlay`]).
//!
//! Why: sled 0.34 runs its multi-tree transactions and batches under one process-wide lock
//! that every other sled call then waits on, and keeping eight index trees current costs
//! several times the append itself. So a write costs one journal insert plus map inserts.
//!
//! What makes it safe without a transaction:
//! - the journal record is written before any of its effects, and sled recovers a prefix of
//!   its log, so an index never holds what the journal does not;
//! - each checkpoint persists its *watermark* (every record at or below it has its effects in
//!   the index trees); on open the records past it are applied again (every effect is
//!   idempotent when replayed in order), so losing the overlay in a crash loses nothing;
//! - records get their sequence and are inserted under one short lock, so journal order is
//!   append order; callers hold the locks that keep two concurrent records off the same
//!   keys (lane locks, idempotency [`Claims`]), except raises, which commute;
//! - visibility waits for durability: the ids a record uses ([`Ticket`]s, op sequences) are
//!   published only once a flush covered the record *and* its effects are applied.

mod check;
mod recorder;
mod recover;
mod wire;

pub use check::{check, check_with, Observe, Report};
pub use recorder::Recorder;
pub use recover::{compact, last_on_disk, read_range, recover, Converted, Recovered, Slot};
pub(super) use wire::outranks;
pub use wire::{decode, encode, part_key, rank, tree_named, Effect, Entry};

use super::tally::Counts;
use super::{Storage, StoreError, Ticket, Tree, Tx};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// The journal tree.
pub const JOURNAL: Tree = Tree("journal");
/// `META` key of the applied watermark as layout 2 persisted it (alone; read to convert).
pub(crate) const APPLIED_KEY: &[u8] = b"journal.applied";
/// `META` key of the last checkpoint ([`Checkpointed`]).
pub const CHECKPOINT_KEY: &[u8] = b"journal.checkpoint";
/// `META` key of the highest sequence compaction removed.
pub const COMPACTED_KEY: &[u8] = b"journal.compacted";
/// `META` key of the layout marker: present once a data directory is journal-first.
pub const LAYOUT_KEY: &[u8] = b"layout";
/// The layout this code writes. 4: records carry the live counts' shifts, a checkpoint
/// persists the counts with its watermark, and the marks (dead, rejected and blocked op ids)
/// in [`Tree::MARKS`]. 3 kept the marks in the checkpoint's value, rewritten whole at every
/// checkpoint; 2 persisted the watermark alone.
pub const LAYOUT: u64 = 4;

/// What a checkpoint persists, as ONE value so the two cannot disagree: its watermark (every
/// record at or below it has its effects in the index trees) and the live counts as of that
/// watermark (`None` when they were not known then: the next start rebuilds them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Checkpointed {
    pub watermark: u64,
    pub counts: Option<Counts>,
}

#[derive(Debug, Default)]
pub struct Publish {
    /// Ids readers stop below until then (change-log ids, op sequences).
    pub tickets: Vec<Ticket>,
    /// Ops this record creates or moves: the replayer sends none of them before then.
    pub ops: Vec<u64>,
}

/// The journal's in-memory state: sequence, applied watermark, what waits for a flush.
#[derive(Debug, Default)]
pub struct Journal {
    /// The last sequence appended. Held while a record gets its sequence and is inserted.
    last: Mutex<u64>,
    /// Appended records whose effects are still being applied.
    applying: Mutex<BTreeSet<u64>>,
    /// Applied records not yet covered by a flush: their tickets and ops wait here.
    unpublished: Mutex<BTreeMap<u64, Publish>>,
    /// Op sequence → the record that last moved it, while that record is unpublished.
    hidden_ops: Mutex<HashMap<u64, u64>>,
    /// Everything at or below this is applied and flushed.
    published: AtomicU64,
    /// Everything at or below this is in the index trees (the last checkpoint's watermark).
    checkpointed: AtomicU64,
    claims: Claims,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Journal {
    /// State for a journal whose last record is `last` and whose records up to `last` are
    /// all applied (after [`recover`]).
    pub fn resume(last: u64) -> Journal {
        let j = Journal::default();
        *lock(&j.last) = last;
        j.published.store(last, Ordering::Release);
        j
    }

    pub fn last_seq(&self) -> u64 {
        *lock(&self.last)
    }

    /// Every record at or below this has all its effects applied.
    pub fn applied_watermark(&self) -> u64 {
        let last = *lock(&self.last);
        match lock(&self.applying).iter().next() {
            Some(first) => first - 1,
            None => last,
        }
    }

    /// Every record at or below this is applied and durable.
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Acquire)
    }

    /// Whether the op's last recorded move is applied and durable (ops never journaled
    /// in this process were recovered from disk, so they are).
    pub fn op_published(&self, op_seq: u64) -> bool {
        !lock(&self.hidden_ops).contains_key(&op_seq)
    }

    /// Every record at or below this has its effects in the index trees on disk.
    pub fn checkpointed_watermark(&self) -> u64 {
        self.checkpointed.load(Ordering::Acquire)
    }

    /// Called by a checkpoint once its watermark is persisted.
    pub fn checkpointed(&self, watermark: u64) {
        self.checkpointed.fetch_max(watermark, Ordering::AcqRel);
    }

    pub fn has_unpublished(&self) -> bool {
        !lock(&self.unpublished).is_empty() || !lock(&self.applying).is_empty()
    }

    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    /// Runs `f` on a recorder and appends its effects as one record, then applies them.
    /// Returns the record's sequence, or `None` when `f` wrote nothing (then nothing is
    /// appended and `publish` is let go at once).
    pub fn append(
        &self,
        store: &dyn Storage,
        what: &str,
        publish: Publish,
        f: &dyn Fn(&dyn Tx) -> Result<(), StoreError>,
    ) -> Result<Option<u64>, StoreError> {
        let recorder = Recorder::new(store);
        f(&recorder)?;
        let effects = recorder.into_effects();
        if effects.is_empty() {
            return Ok(None);
        }
        let mut entry = Entry {
            seq: 0,
            what: what.to_string(),
            at_ms: chrono::Utc::now().timestamp_millis(),
            ops: publish.ops.clone(),
            effects,
        };
        let parts = encode(&entry)?;
        let seq = {
            let mut last = lock(&self.last);
            let seq = *last + 1;
            // In order, the last part last: a crash leaves a prefix, which reads as torn.
            for (i, bytes) in parts.into_iter().enumerate() {
                if let Err(e) = store.insert_raw(JOURNAL, &part_key(seq, i as u16), bytes) {
                    // The parts written so far must not become part of the next record at
                    // this sequence (a record the device is answered for, which would then
                    // read as torn). Removed, the sequence is free again; if a removal
                    // fails too, the sequence is never used.
                    let removed =
                        (0..i).all(|j| store.remove(JOURNAL, &part_key(seq, j as u16)).is_ok());
                    if !removed {
                        *last = seq;
                    }
                    return Err(e);
                }
            }
            *last = seq;
            lock(&self.applying).insert(seq);
            seq
        };
        entry.seq = seq;
        {
            let mut hidden = lock(&self.hidden_ops);
            for op in &publish.ops {
                hidden.insert(*op, seq);
            }
        }
        let applied = store.apply_effects(seq, &entry.effects);
        if applied.is_err() {
            // Left "applying" on purpose: the applied watermark stays below this record, so
            // the next start applies it again, and nothing after it is published meanwhile.
            std::mem::forget(publish.tickets);
            return applied.map(|()| Some(seq));
        }
        lock(&self.unpublished).insert(seq, publish);
        lock(&self.applying).remove(&seq);
        Ok(Some(seq))
    }

    /// Called by the flusher before it flushes: the applied watermark to persist with the
    /// flush, and to publish after it.
    pub fn before_flush(&self) -> u64 {
        self.applied_watermark()
    }

    /// Called once a flush that began at `watermark` (from [`Journal::before_flush`]) is on
    /// disk: what it covers becomes visible.
    pub fn after_flush(&self, watermark: u64) {
        let done: Vec<(u64, Publish)> = {
            let mut unpublished = lock(&self.unpublished);
            let rest = unpublished.split_off(&(watermark + 1));
            std::mem::replace(&mut *unpublished, rest)
                .into_iter()
                .collect()
        };
        {
            let mut hidden = lock(&self.hidden_ops);
            for (seq, p) in &done {
                for op in &p.ops {
                    if hidden.get(op) == Some(seq) {
                        hidden.remove(op);
                    }
                }
            }
        }
        self.published.fetch_max(watermark, Ordering::AcqRel);
        drop(done);
    }
}

/// Keys being written right now (idempotency keys): a second writer of the same key waits
/// for the first to finish instead of both passing the "is it taken?" check.
#[derive(Debug, Default)]
pub struct Claims {
    held: Mutex<HashSet<Vec<u8>>>,
}

/// Held keys, let go on drop.
#[derive(Debug)]
pub struct Claim<'a> {
    owner: &'a Claims,
    keys: Vec<Vec<u8>>,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        let mut held = lock(&self.owner.held);
        for k in &self.keys {
            held.remove(k);
        }
    }
}

impl Claims {
    /// Claims every key, or none: waits (yielding the thread; a claim lasts one append) up
    /// to `patience`, then answers `Busy`.
    pub fn claim(
        &self,
        keys: Vec<Vec<u8>>,
        patience: std::time::Duration,
    ) -> Result<Claim<'_>, StoreError> {
        let start = std::time::Instant::now();
        loop {
            {
                let mut held = lock(&self.held);
                if keys.iter().all(|k| !held.contains(k)) {
                    for k in &keys {
                        held.insert(k.clone());
                    }
                    return Ok(Claim { owner: self, keys });
                }
            }
            if start.elapsed() > patience {
                return Err(StoreError::Busy);
            }
            std::thread::yield_now();
        }
    }
}

#[cfg(test)]
mod tests;
