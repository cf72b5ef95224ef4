//! Reading the journal back: a range of records, recovery on open (layout conversion,
//! re-applying past the checkpoint, quarantining a torn or corrupt record), and compaction.

use super::wire::{decode, part_key, seq_of, Entry};
use super::{
    Checkpointed, Journal, APPLIED_KEY, CHECKPOINT_KEY, COMPACTED_KEY, JOURNAL, LAYOUT, LAYOUT_KEY,
};
use crate::store::tally::Counts;
use crate::store::{Storage, StoreError, Tree};
use std::collections::BTreeMap;

/// One journal slot as read: its sequence and its record, or why the record cannot be used.
pub type Slot = (u64, Result<Entry, StoreError>);

/// Reads up to `limit` records from sequence `from` (inclusive), in order. A record that
/// fails verification, or is torn, is returned as the error of its slot, so callers decide:
/// recovery quarantines it, `check` reports it.
pub fn read_range(store: &dyn Storage, from: u64, limit: usize) -> Result<Vec<Slot>, StoreError> {
    let mut out: Vec<Slot> = Vec::new();
    let mut current: Option<(u64, crate::store::RawPairs)> = None;
    let start = part_key(from, 0);
    crate::store::scan_pages(store, JOURNAL, &start, 64, &mut |k, v| {
        let Some(seq) = seq_of(k) else {
            return Ok(true);
        };
        match &mut current {
            Some((s, parts)) if *s == seq => {
                parts.push((k.to_vec(), v.to_vec()));
                return Ok(true);
            }
            _ => {}
        }
        if let Some((s, parts)) = current.take() {
            out.push((s, decode(s, &parts)));
        }
        if out.len() >= limit {
            return Ok(false);
        }
        current = Some((seq, vec![(k.to_vec(), v.to_vec())]));
        Ok(true)
    })?;
    if let Some((s, parts)) = current {
        if out.len() < limit {
            out.push((s, decode(s, &parts)));
        }
    }
    Ok(out)
}

/// The keys of every stored part of a record.
fn part_keys(store: &dyn Storage, seq: u64) -> Result<Vec<Vec<u8>>, StoreError> {
    Ok(store
        .scan_raw(JOURNAL, &seq.to_be_bytes(), None, usize::from(u16::MAX) + 1)?
        .into_iter()
        .map(|(k, _)| k)
        .collect())
}

/// The last record's sequence (0 for an empty journal).
pub fn last_on_disk(store: &dyn Storage) -> Result<u64, StoreError> {
    Ok(store
        .scan_raw_rev(JOURNAL, None, 1)?
        .first()
        .and_then(|(k, _)| seq_of(k))
        .unwrap_or(0))
}

fn meta_u64(store: &dyn Storage, key: &[u8]) -> Result<u64, StoreError> {
    Ok(crate::store::StorageExt::get::<u64>(store, Tree::META, key)?.unwrap_or(0))
}

/// What [`recover`] did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Recovered {
    pub last: u64,
    pub reapplied: usize,
    pub quarantined: usize,
    /// The data directory had an older layout and was converted.
    pub converted: Option<Converted>,
}

/// The layout a data directory was converted from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Converted {
    /// Written before the journal: every write a multi-tree transaction.
    PreJournal,
    /// Layout 2: a journal whose records carry no count shifts.
    Layout2,
}

/// Brings the indexes and the live counts up to the journal on open: starts from the last
/// checkpoint (its watermark, and its counts when it had them) and applies again every
/// record past it, in order (the caller then checkpoints, see [`Journal::resume`]). A record
/// that fails verification (a torn or corrupted tail) is moved to quarantine, reported, and
/// never applied. The counts stay unknown when the checkpoint had none, or a record past it
/// says they must be rebuilt: the caller rebuilds them ([`crate::store::Tally::known`]).
pub fn recover(store: &dyn Storage) -> Result<Recovered, StoreError> {
    let (checkpointed, converted) = convert_layout(store)?;
    let mut out = Recovered {
        converted,
        ..Recovered::default()
    };
    if let Some(mut counts) = checkpointed.counts {
        // Layout 3 kept the marks in this value (the next checkpoint moves them to their
        // tree); this layout keeps them in their tree.
        if counts.marks.is_empty() {
            // An unreadable mark leaves the counts unknown: the caller rebuilds them.
            if let Some(marks) = saved_marks(store)? {
                counts.marks = marks;
                store.tally().restore(counts);
            }
        } else {
            store.tally().reset(counts);
        }
    }
    let from = checkpointed.watermark.saturating_add(1);
    let mut next = from;
    loop {
        let batch = read_range(store, next, 256)?;
        let Some(&(seq_last, _)) = batch.last() else {
            break;
        };
        for (seq, entry) in batch {
            out.last = out.last.max(seq);
            match entry {
                Ok(entry) => {
                    store.apply_effects(seq, &entry.effects)?;
                    out.reapplied += 1;
                }
                Err(e) => {
                    tracing::error!(seq, error = %e, "journal record fails verification; quarantined, not applied");
                    for key in part_keys(store, seq)? {
                        crate::store::StorageExt::quarantine(store, JOURNAL, &key, &e.to_string())?;
                    }
                    out.quarantined += 1;
                }
            }
        }
        next = seq_last + 1;
    }
    // A sequence is never reused, even when its record was quarantined or compacted.
    out.last = out
        .last
        .max(last_on_disk(store)?)
        .max(meta_u64(store, COMPACTED_KEY)?)
        .max(from - 1);
    // The caller resumes its journal at `out.last` and checkpoints, which persists it as the
    // watermark.
    Ok(out)
}

/// The marks the last checkpoint saved ([`Tree::MARKS`]); `None` when one was unreadable
/// (quarantined: the counts are rebuilt).
fn saved_marks(store: &dyn Storage) -> Result<Option<BTreeMap<u64, usize>>, StoreError> {
    use crate::store::StorageExt;
    let mut marks = BTreeMap::new();
    let mut whole = true;
    for (key, value) in store.scan_raw(Tree::MARKS, b"", None, usize::MAX)? {
        let class = <[u8; 8]>::try_from(key.as_slice())
            .map_err(|_| StoreError::Corrupt {
                tree: Tree::MARKS.0,
                key: hex::encode(&key),
                reason: "a mark's key is not an op id".into(),
            })
            .and_then(|k| {
                let class = crate::store::record::open::<usize>(Tree::MARKS, &key, &value)?;
                Ok((u64::from_be_bytes(k), class))
            });
        match class {
            Ok((id, class)) => {
                marks.insert(id, class);
            }
            Err(e) if e.is_corrupt() => {
                tracing::error!(error = %e, "a saved mark is unreadable; the op counts are rebuilt");
                store.quarantine(Tree::MARKS, &key, &e.to_string())?;
                whole = false;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(whole.then_some(marks))
}

/// The last checkpoint of a data directory in this layout, converting an older one first.
/// - None (new, or written before the journal): a pre-journal directory's trees are exactly
///   the journal's derived indexes at a checkpoint, with the same record formats, so
///   converting it is marking it: the journal starts empty above that checkpoint.
/// - 3: read as this layout (its checkpoint's value holds the marks, which the next
///   checkpoint moves to their tree).
/// - 2: its watermark is taken over; it has no counts, so they are rebuilt once.
/// - a newer layout is refused.
///
/// Nothing here is flushed: until the checkpoint after recovery, a crash leaves the old
/// layout whole (sled recovers a prefix of its log).
fn convert_layout(store: &dyn Storage) -> Result<(Checkpointed, Option<Converted>), StoreError> {
    use crate::store::StorageExt;
    match store.get::<u64>(Tree::META, LAYOUT_KEY)? {
        Some(layout @ (3 | LAYOUT)) => {
            match store.get::<Checkpointed>(Tree::META, CHECKPOINT_KEY) {
                Ok(checkpointed) => {
                    if layout != LAYOUT {
                        tracing::info!("converting a layout-3 data directory: the op marks move to their own tree");
                        store.put(Tree::META, LAYOUT_KEY, &LAYOUT)?;
                    }
                    Ok((checkpointed.unwrap_or_default(), None))
                }
                // Every record since compaction is applied again (idempotent in order) and the
                // counts are rebuilt: slower than the checkpoint, but nothing is refused or lost.
                Err(e) if e.is_corrupt() => {
                    tracing::error!(error = %e, "the last checkpoint is unreadable; applying the whole journal again");
                    store.quarantine(Tree::META, CHECKPOINT_KEY, &e.to_string())?;
                    let watermark = meta_u64(store, COMPACTED_KEY)?;
                    Ok((
                        Checkpointed {
                            watermark,
                            counts: None,
                        },
                        None,
                    ))
                }
                Err(e) => Err(e),
            }
        }
        Some(2) => {
            tracing::warn!("converting a layout-2 data directory: the op counts are rebuilt once");
            let checkpointed = Checkpointed {
                watermark: meta_u64(store, APPLIED_KEY)?,
                counts: None,
            };
            store.put(Tree::META, CHECKPOINT_KEY, &checkpointed)?;
            store.put(Tree::META, LAYOUT_KEY, &LAYOUT)?;
            store.remove(Tree::META, APPLIED_KEY)?;
            Ok((checkpointed, Some(Converted::Layout2)))
        }
        Some(other) => Err(StoreError::Layout(format!(
            "the data directory has layout {other}; this build reads layout {LAYOUT}"
        ))),
        None => {
            let old = !store.scan_raw(Tree::META, b"", None, 1)?.is_empty();
            if old {
                tracing::warn!("converting a pre-journal data directory: its trees become the journal's checkpoint");
            }
            store.put(Tree::META, LAYOUT_KEY, &LAYOUT)?;
            let checkpointed = Checkpointed {
                watermark: 0,
                // A new directory has nothing to count.
                counts: (!old).then(Counts::default),
            };
            Ok((checkpointed, old.then_some(Converted::PreJournal)))
        }
    }
}

/// Removes the oldest records while `settled` says they no longer matter (their ops are
/// finished), up to what is published. Stops at the first record still needed, so the
/// journal past the compaction point is complete: `check` relies on that.
pub fn compact(
    store: &dyn Storage,
    journal: &Journal,
    settled: &dyn Fn(&Entry) -> Result<bool, StoreError>,
    max: usize,
) -> Result<usize, StoreError> {
    // A record past the last checkpoint is still how its effects survive a crash.
    let limit = journal.published().min(journal.checkpointed_watermark());
    let from = meta_u64(store, COMPACTED_KEY)?.saturating_add(1);
    let mut removed = 0;
    let mut last_removed = None;
    // Pages grow while everything read settles: a pass that stops at the first record (an
    // op still open) reads one record, not a page of large batch records.
    let mut page = 1;
    'outer: while removed < max {
        let batch = read_range(
            store,
            from.max(last_removed.map_or(0, |s: u64| s + 1)),
            page,
        )?;
        page = (page * 2).min(256);
        if batch.is_empty() {
            break;
        }
        for (seq, entry) in batch {
            if seq > limit || removed >= max {
                break 'outer;
            }
            // A corrupt record is recovery's to quarantine; never compacted unseen.
            let Ok(entry) = entry else { break 'outer };
            if !settled(&entry)? {
                break 'outer;
            }
            for key in part_keys(store, seq)? {
                store.remove(JOURNAL, &key)?;
            }
            last_removed = Some(seq);
            removed += 1;
        }
    }
    if let Some(seq) = last_removed {
        crate::store::StorageExt::put(store, Tree::META, COMPACTED_KEY, &seq)?;
    }
    Ok(removed)
}
