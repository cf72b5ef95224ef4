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

use super::tally::{Counts, Shift};
use super::{record, Storage, StoreError, Ticket, Tree, Tx};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// The journal tree.
pub const JOURNAL: Tree = Tree("journal");
/// `META` key of the applied watermark as layout 2 persisted it (alone; read to convert).
const APPLIED_KEY: &[u8] = b"journal.applied";
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
/// Journal records' envelope version (index records use [`record`]'s JSON version 1).
const ENTRY_VERSION: u8 = 2;
/// A record is stored in parts of about this many bytes (key: sequence, part). sled 0.34
/// writes anything over ~128 KiB (a value, or a leaf node of up to 17 of them) to a blob file
/// of its own, a file per write that its flush does not even sync; 4 KiB parts keep journal
/// leaves well under that, so a 100-op batch is ~90 small inserts, not one blob.
const PART_BYTES: usize = 4096;

/// The key of one part of a record.
pub fn part_key(seq: u64, part: u16) -> [u8; 10] {
    let mut k = [0u8; 10];
    k[..8].copy_from_slice(&seq.to_be_bytes());
    k[8..].copy_from_slice(&part.to_be_bytes());
    k
}

fn seq_of(key: &[u8]) -> Option<u64> {
    key.get(..8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
}

/// One change to a derived index tree.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Put {
        tree: Tree,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Remove {
        tree: Tree,
        key: Vec<u8>,
    },
    /// Put unless the stored value already ranks at or above this one (see [`rank`]): a
    /// high-water mark, which commutes with concurrent raises.
    Raise {
        tree: Tree,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    /// A record moving between the live counts' classes ([`super::tally`]): no tree.
    Count(Shift),
    /// A change no [`Effect::Count`] describes (an op dropped unread): the counts must be
    /// rebuilt from the ops.
    Recount,
}

impl Effect {
    /// The index tree and key it changes (`None` for the counts' effects).
    pub fn target(&self) -> Option<(Tree, &[u8])> {
        match self {
            Effect::Put { tree, key, .. }
            | Effect::Remove { tree, key }
            | Effect::Raise { tree, key, .. } => Some((*tree, key)),
            Effect::Count(_) | Effect::Recount => None,
        }
    }
}

/// A decoded journal record.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub seq: u64,
    /// What happened (`write.status`, `op.applied`, `op.retry`...), for operators and `check`.
    pub what: String,
    pub at_ms: i64,
    /// The ops this record creates or moves (compaction keeps it while one is open).
    pub ops: Vec<u64>,
    pub effects: Vec<Effect>,
}

/// The wire form: tree names as strings, binary (postcard) inside a checksummed envelope.
#[derive(Serialize, Deserialize)]
struct Wire {
    what: String,
    at_ms: i64,
    /// This part's index, and how many parts the record has.
    part: u16,
    parts: u16,
    ops: Vec<u64>,
    effects: Vec<WireEffect>,
}

#[derive(Serialize, Deserialize)]
enum WireEffect {
    Put(String, Vec<u8>, Vec<u8>),
    Remove(String, Vec<u8>),
    Raise(String, Vec<u8>, Vec<u8>),
    // Layout 3 on: new variants go last, so records of older layouts still decode.
    Count(Shift),
    Recount,
}

/// Maps a stored tree name back to a [`Tree`]. Names are interned once each: the set of
/// trees is small and fixed in code.
pub fn tree_named(name: &str) -> Tree {
    static NAMES: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    let mut g = NAMES.lock().unwrap_or_else(|p| p.into_inner());
    let set = g.get_or_insert_with(HashSet::new);
    if let Some(n) = set.get(name) {
        return Tree(n);
    }
    let leaked: &'static str = Box::leak(name.to_string().into_boxed_str());
    set.insert(leaked);
    Tree(leaked)
}

fn wire_effect(e: &Effect) -> WireEffect {
    match e {
        Effect::Put { tree, key, value } => {
            WireEffect::Put(tree.0.into(), key.clone(), value.clone())
        }
        Effect::Remove { tree, key } => WireEffect::Remove(tree.0.into(), key.clone()),
        Effect::Raise { tree, key, value } => {
            WireEffect::Raise(tree.0.into(), key.clone(), value.clone())
        }
        Effect::Count(s) => WireEffect::Count(s.clone()),
        Effect::Recount => WireEffect::Recount,
    }
}

fn effect_of(e: WireEffect) -> Effect {
    match e {
        WireEffect::Put(t, key, value) => Effect::Put {
            tree: tree_named(&t),
            key,
            value,
        },
        WireEffect::Remove(t, key) => Effect::Remove {
            tree: tree_named(&t),
            key,
        },
        WireEffect::Raise(t, key, value) => Effect::Raise {
            tree: tree_named(&t),
            key,
            value,
        },
        WireEffect::Count(s) => Effect::Count(s),
        WireEffect::Recount => Effect::Recount,
    }
}

fn effect_len(e: &Effect) -> usize {
    match e {
        Effect::Put { key, value, .. } | Effect::Raise { key, value, .. } => {
            key.len() + value.len() + 24
        }
        Effect::Remove { key, .. } => key.len() + 24,
        Effect::Count(s) => s.group.len() + 24,
        Effect::Recount => 1,
    }
}

/// Encodes a record as its parts (at least one), each sealed with its own checksum. An
/// effect is never split; one larger than a part gets a part of its own.
pub fn encode(entry: &Entry) -> Result<Vec<Vec<u8>>, StoreError> {
    let mut groups: Vec<Vec<WireEffect>> = vec![Vec::new()];
    let mut size = 0;
    for e in &entry.effects {
        let len = effect_len(e);
        if size + len > PART_BYTES && !groups.last().is_none_or(Vec::is_empty) {
            groups.push(Vec::new());
            size = 0;
        }
        size += len;
        if let Some(g) = groups.last_mut() {
            g.push(wire_effect(e));
        }
    }
    let parts = u16::try_from(groups.len())
        .map_err(|_| StoreError::Encode("a journal record of over 65,535 parts".into()))?;
    groups
        .into_iter()
        .enumerate()
        .map(|(i, effects)| {
            let wire = Wire {
                what: entry.what.clone(),
                at_ms: entry.at_ms,
                part: i as u16,
                parts,
                ops: if i == 0 {
                    entry.ops.clone()
                } else {
                    Vec::new()
                },
                effects,
            };
            let body = postcard::to_stdvec(&wire).map_err(|e| StoreError::Encode(e.to_string()))?;
            Ok(record::seal_bytes(ENTRY_VERSION, &body))
        })
        .collect()
}

fn decode_part(key: &[u8], bytes: &[u8]) -> Result<Wire, StoreError> {
    let body = record::open_bytes(JOURNAL, key, ENTRY_VERSION, bytes)?;
    postcard::from_bytes(body).map_err(|e| StoreError::Corrupt {
        tree: JOURNAL.0,
        key: hex::encode(key),
        reason: format!("undecodable journal record: {e}"),
    })
}

/// Assembles a record from its parts (key, value), in part order. Every part must verify,
/// and all of them must be there: a record missing its last parts was torn by a crash.
pub fn decode(seq: u64, parts: &[(Vec<u8>, Vec<u8>)]) -> Result<Entry, StoreError> {
    let torn = |reason: String| StoreError::Corrupt {
        tree: JOURNAL.0,
        key: hex::encode(seq.to_be_bytes()),
        reason,
    };
    let mut entry = Entry {
        seq,
        what: String::new(),
        at_ms: 0,
        ops: Vec::new(),
        effects: Vec::new(),
    };
    let mut expected = None;
    for (i, (key, value)) in parts.iter().enumerate() {
        let wire = decode_part(key, value)?;
        if usize::from(wire.part) != i || expected.is_some_and(|n| n != wire.parts) {
            return Err(torn(format!("part {i} of the record is out of place")));
        }
        expected = Some(wire.parts);
        if i == 0 {
            entry.what = wire.what;
            entry.at_ms = wire.at_ms;
            entry.ops = wire.ops;
        }
        entry
            .effects
            .extend(wire.effects.into_iter().map(effect_of));
    }
    match expected {
        Some(n) if usize::from(n) == parts.len() => Ok(entry),
        Some(n) => Err(torn(format!(
            "torn record: {} of its {n} parts are stored",
            parts.len()
        ))),
        None => Err(torn("a record without parts".into())),
    }
}

/// The order of a high-water value: a JSON integer, or an RFC 3339 instant (nanoseconds).
/// Anything else ranks lowest, so a raise always replaces it.
pub fn rank(sealed: &[u8]) -> Option<i128> {
    let payload = sealed.get(33..)?;
    match serde_json::from_slice::<serde_json::Value>(payload).ok()? {
        serde_json::Value::Number(n) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from)),
        serde_json::Value::String(s) => chrono::DateTime::parse_from_rfc3339(&s)
            .ok()
            .and_then(|t| t.timestamp_nanos_opt())
            .map(i128::from),
        _ => None,
    }
}

pub(super) fn outranks(new: &[u8], old: Option<&[u8]>) -> bool {
    match old {
        None => true,
        Some(old) => rank(new) > rank(old),
    }
}

/// Records a closure's writes as effects instead of performing them. Reads see the
/// closure's own earlier writes, then the store.
pub struct Recorder<'a> {
    store: &'a dyn Storage,
    effects: RefCell<Vec<Effect>>,
}

impl<'a> Recorder<'a> {
    pub fn new(store: &'a dyn Storage) -> Self {
        Recorder {
            store,
            effects: RefCell::new(Vec::new()),
        }
    }
    pub fn into_effects(self) -> Vec<Effect> {
        self.effects.into_inner()
    }
}

impl Tx for Recorder<'_> {
    fn get_raw(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let effects = self.effects.borrow();
        let mine = effects
            .iter()
            .rev()
            .find(|e| e.target() == Some((tree, key)));
        match mine {
            Some(Effect::Put { value, .. }) => Ok(Some(value.clone())),
            Some(Effect::Remove { .. }) => Ok(None),
            Some(Effect::Raise { value, .. }) => {
                let stored = self.store.get_raw(tree, key)?;
                Ok(Some(match stored {
                    Some(s) if !outranks(value, Some(&s)) => s,
                    _ => value.clone(),
                }))
            }
            // `target()` matched, so never a count's effect.
            Some(Effect::Count(_) | Effect::Recount) | None => self.store.get_raw(tree, key),
        }
    }
    fn insert_raw(&self, tree: Tree, key: &[u8], value: Vec<u8>) -> Result<(), StoreError> {
        self.effects.borrow_mut().push(Effect::Put {
            tree,
            key: key.to_vec(),
            value,
        });
        Ok(())
    }
    fn remove(&self, tree: Tree, key: &[u8]) -> Result<(), StoreError> {
        self.effects.borrow_mut().push(Effect::Remove {
            tree,
            key: key.to_vec(),
        });
        Ok(())
    }
    fn raise_raw(&self, tree: Tree, key: &[u8], value: Vec<u8>) -> Result<(), StoreError> {
        self.effects.borrow_mut().push(Effect::Raise {
            tree,
            key: key.to_vec(),
            value,
        });
        Ok(())
    }
    fn count(&self, shift: Shift) {
        self.effects.borrow_mut().push(Effect::Count(shift));
    }
    fn recount(&self) {
        self.effects.borrow_mut().push(Effect::Recount);
    }
}

/// What an append publishes once it is durable and applied.
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
                store.insert_raw(JOURNAL, &part_key(seq, i as u16), bytes)?;
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

/// One journal slot as read: its sequence and its record, or why the record cannot be used.
pub type Slot = (u64, Result<Entry, StoreError>);

/// Reads up to `limit` records from sequence `from` (inclusive), in order. A record that
/// fails verification, or is torn, is returned as the error of its slot, so callers decide:
/// recovery quarantines it, `check` reports it.
pub fn read_range(store: &dyn Storage, from: u64, limit: usize) -> Result<Vec<Slot>, StoreError> {
    let mut out: Vec<Slot> = Vec::new();
    let mut current: Option<(u64, super::RawPairs)> = None;
    let start = part_key(from, 0);
    super::scan_pages(store, JOURNAL, &start, 64, &mut |k, v| {
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
    Ok(super::StorageExt::get::<u64>(store, Tree::META, key)?.unwrap_or(0))
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
/// says they must be rebuilt: the caller rebuilds them ([`super::Tally::known`]).
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
                        super::StorageExt::quarantine(store, JOURNAL, &key, &e.to_string())?;
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
    use super::StorageExt;
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
                let class = super::record::open::<usize>(Tree::MARKS, &key, &value)?;
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
    use super::StorageExt;
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
        super::StorageExt::put(store, Tree::META, COMPACTED_KEY, &seq)?;
    }
    Ok(removed)
}

/// What `fieldsync check` found.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Report {
    pub records: u64,
    pub corrupt: Vec<String>,
    /// (tree, key hex, what differs) for index entries that disagree with the journal.
    pub differences: Vec<(String, String, String)>,
    pub keys_checked: u64,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.corrupt.is_empty() && self.differences.is_empty()
    }
}

/// What `check` expects of a key: a small value whole (high-water marks are ranked), a large
/// one by its seal's version and SHA-256, so a million ops' rebuild fits in memory.
enum Want {
    Whole(Vec<u8>),
    Sealed([u8; 33]),
}

impl Want {
    fn of(value: Vec<u8>) -> Want {
        match value.get(..33).and_then(|h| <[u8; 33]>::try_from(h).ok()) {
            Some(head) if value.len() > 128 => Want::Sealed(head),
            _ => Want::Whole(value),
        }
    }
    fn matches(&self, have: &[u8]) -> bool {
        match self {
            Want::Whole(v) => v.as_slice() == have,
            // The stored record's own checksum is verified below, so its seal names its bytes.
            Want::Sealed(head) => have.len() > 128 && have.get(..33) == Some(head.as_slice()),
        }
    }
}

/// Rebuilds, from the journal, every entry of the `owned` trees (written only through the
/// journal) that the retained journal touches, and compares it with what the index holds;
/// verifies every journal record's checksum, and every record of the owned trees'.
pub fn check(store: &dyn Storage, owned: &[Tree]) -> Result<Report, StoreError> {
    check_with(store, owned, &mut |_, _, _| {})
}

/// What [`check_with`] hands each index record it reads: its tree, key and sealed value.
pub type Observe<'a> = &'a mut dyn FnMut(Tree, &[u8], &[u8]);

/// [`check`], handing `observe` every index record its verification pass reads (so a caller
/// can check what it derives from them without reading the trees again).
pub fn check_with(
    store: &dyn Storage,
    owned: &[Tree],
    observe: Observe<'_>,
) -> Result<Report, StoreError> {
    let mut report = Report::default();
    let mut rebuilt: BTreeMap<(&'static str, Vec<u8>), Option<Want>> = BTreeMap::new();
    let mut next = 0;
    loop {
        let batch = read_range(store, next, 512)?;
        let Some(&(seq_last, _)) = batch.last() else {
            break;
        };
        for (seq, entry) in batch {
            report.records += 1;
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    report.corrupt.push(format!("journal record {seq}: {e}"));
                    continue;
                }
            };
            for e in entry.effects {
                let slot = match e.target() {
                    Some((tree, key)) if owned.contains(&tree) => {
                        rebuilt.entry((tree.0, key.to_vec())).or_insert(None)
                    }
                    _ => continue,
                };
                match e {
                    Effect::Put { value, .. } => *slot = Some(Want::of(value)),
                    Effect::Remove { .. } => *slot = None,
                    Effect::Raise { value, .. } => {
                        let higher = match slot {
                            Some(Want::Whole(old)) => outranks(&value, Some(old)),
                            // A high-water mark over a large value: nothing to rank against.
                            Some(Want::Sealed(_)) | None => true,
                        };
                        if higher {
                            *slot = Some(Want::of(value));
                        }
                    }
                    Effect::Count(_) | Effect::Recount => {}
                }
            }
        }
        next = seq_last + 1;
    }
    // One ordered pass per tree does both jobs: each stored record's checksum is verified,
    // and the rebuilt entries of that tree are merged against the records in key order (a
    // lookup per rebuilt key, a million ops' worth, was most of check's time).
    for tree in owned {
        let mut wants = rebuilt
            .range((tree.0, Vec::new())..)
            .take_while(|((t, _), _)| *t == tree.0)
            .map(|((_, k), w)| (k, w))
            .peekable();
        let mut compare = |key: &[u8], want: Option<&Want>, have: Option<&[u8]>| {
            report.keys_checked += 1;
            let differs = match (want, have) {
                (Some(w), Some(h)) if w.matches(h) => None,
                (None, None) => None,
                (Some(_), Some(_)) => Some("value differs from the journal's"),
                (Some(_), None) => Some("missing from the index"),
                (None, Some(_)) => Some("in the index, but the journal removed it"),
            };
            if let Some(d) = differs {
                report
                    .differences
                    .push((tree.0.to_string(), hex::encode(key), d.to_string()));
            }
        };
        let mut corrupt = Vec::new();
        super::scan_pages(store, *tree, b"", 1024, &mut |k, v| {
            if let Err(e) = record::open::<serde::de::IgnoredAny>(*tree, k, v) {
                corrupt.push(e.to_string());
            }
            // Rebuilt keys before this record are not stored.
            while let Some((wk, w)) = wants.next_if(|(wk, _)| wk.as_slice() < k) {
                compare(wk, w.as_ref(), None);
            }
            if let Some((wk, w)) = wants.next_if(|(wk, _)| wk.as_slice() == k) {
                compare(wk, w.as_ref(), Some(v));
            }
            observe(*tree, k, v);
            Ok(true)
        })?;
        for (wk, w) in wants {
            compare(wk, w.as_ref(), None);
        }
        report.corrupt.extend(corrupt);
    }
    Ok(report)
}

#[cfg(test)]
#[path = "journal_tests.rs"]
mod tests;
