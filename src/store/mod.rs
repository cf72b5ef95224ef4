//! Durable storage: a narrow trait over sled trees, checksummed records, key codecs and the group commit.
//!
//! Nothing here knows about HTTP or OFSC. Every value written through [`StorageExt::put`] or
//! a journal record is sealed with the SHA-256 of its bytes ([`record`]) and verified on the
//! way back. Writes that must be atomic across keys go through the [`journal`]; nothing here
//! uses sled's multi-tree transactions or batches (both take a process-wide lock in sled 0.34).

pub mod checkpointer;
mod group_commit;
pub mod journal;
pub mod keys;
mod overlay;
pub mod record;
mod sled_store;
mod tally;

pub use group_commit::GroupCommit;
#[cfg(test)]
pub use sled_store::Faults;
pub use sled_store::{check_private, private_files, SledStore};
pub use tally::{Class, Counts, Shift, Tally};

use serde::{de::DeserializeOwned, Serialize};

/// A named sled tree. Names are fixed in code so a typo cannot create a stray tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tree(pub &'static str);

impl Tree {
    /// Service metadata: schema version, first-start markers.
    pub const META: Tree = Tree("meta");
    /// Records that failed checksum verification, kept for operators with their reason.
    pub const QUARANTINE: Tree = Tree("quarantine");
    /// The tally's marks (the ids of dead, rejected and blocked ops, with their class) as
    /// of the last checkpoint ([`Tally`]); written by checkpoints only.
    pub const MARKS: Tree = Tree("marks");
}

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("record {key} in tree {tree} is corrupt: {reason}")]
    Corrupt {
        tree: &'static str,
        key: String,
        reason: String,
    },
    #[error("could not encode a record: {0}")]
    Encode(String),
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    #[error("flush to disk failed: {0}")]
    Flush(String),
    #[error("aborted: {0}")]
    Aborted(String),
    /// A key is being written by someone else right now (see [`journal::Claims`]).
    #[error("the same key is being written by another request")]
    Busy,
    /// The data directory was written by an incompatible layout.
    #[error("{0}")]
    Layout(String),
}

impl StoreError {
    pub fn is_corrupt(&self) -> bool {
        matches!(self, StoreError::Corrupt { .. })
    }
}

/// Flips a byte of a stored record's payload, so it fails its checksum when read (tests).
#[cfg(test)]
pub(crate) fn corrupt(store: &dyn Storage, tree: Tree, key: &[u8]) {
    let mut raw = store.get_raw(tree, key).unwrap().unwrap();
    let last = raw.len() - 2;
    raw[last] ^= 0x01;
    store.insert_raw(tree, key, raw).unwrap();
}

fn quarantine_key(tree: Tree, key: &[u8]) -> Vec<u8> {
    keys::KeyBuf::new().str(tree.0).bytes(key).finish()
}

/// Raw key/value pairs as a scan returns them.
pub type RawPairs = Vec<(Vec<u8>, Vec<u8>)>;

/// Sees one raw record (key, value); answers whether the scan goes on.
pub type Visit<'a> = dyn FnMut(&[u8], &[u8]) -> Result<bool, StoreError> + 'a;

/// Visits a tree's records in key order from `start` (inclusive), reading `page` of them at
/// a time, so a long history never sits in memory at once; `visit` answers whether to go on.
pub fn scan_pages(
    store: &dyn Storage,
    tree: Tree,
    start: &[u8],
    page: usize,
    visit: &mut Visit<'_>,
) -> Result<(), StoreError> {
    let page = page.max(1);
    let mut from = start.to_vec();
    loop {
        let pairs = store.scan_raw(tree, b"", Some(&from), page)?;
        for (k, v) in &pairs {
            if !visit(k, v)? {
                return Ok(());
            }
        }
        match pairs.last() {
            Some((k, _)) if pairs.len() == page => {
                // The smallest key after `k`.
                from = k.clone();
                from.push(0);
            }
            _ => return Ok(()),
        }
    }
}

/// The writes of one journal record, as the code that makes them sees them: reads see its
/// own earlier writes, then the store; writes are recorded, appended as one record, then
/// applied ([`journal::Recorder`]). Values are sealed through [`TxExt`].
pub trait Tx {
    fn get_raw(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    fn insert_raw(&self, tree: Tree, key: &[u8], value: Vec<u8>) -> Result<(), StoreError>;
    fn remove(&self, tree: Tree, key: &[u8]) -> Result<(), StoreError>;
    /// Writes `value` unless the stored one ranks at or above it ([`journal::rank`]).
    fn raise_raw(&self, tree: Tree, key: &[u8], value: Vec<u8>) -> Result<(), StoreError>;
    /// Moves a record between the live counts' classes ([`Tally`]).
    fn count(&self, shift: Shift);
    /// Says the record makes a change no shift describes: the counts must be rebuilt.
    fn recount(&self);
}

/// Typed, checksummed access inside a journal record.
pub trait TxExt: Tx {
    fn get<T: DeserializeOwned>(&self, tree: Tree, key: &[u8]) -> Result<Option<T>, StoreError> {
        match self.get_raw(tree, key)? {
            Some(bytes) => record::open(tree, key, &bytes).map(Some),
            None => Ok(None),
        }
    }
    fn put<T: Serialize>(&self, tree: Tree, key: &[u8], value: &T) -> Result<(), StoreError> {
        self.insert_raw(tree, key, record::seal(value)?)
    }
    /// A high-water mark: an integer or an RFC 3339 instant.
    fn raise<T: Serialize>(&self, tree: Tree, key: &[u8], value: &T) -> Result<(), StoreError> {
        self.raise_raw(tree, key, record::seal(value)?)
    }
}
impl<X: Tx + ?Sized> TxExt for X {}

/// The narrow storage contract the rest of the service depends on.
pub trait Storage: Send + Sync + 'static {
    fn get_raw(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    fn insert_raw(&self, tree: Tree, key: &[u8], value: Vec<u8>) -> Result<(), StoreError>;
    fn remove(&self, tree: Tree, key: &[u8]) -> Result<(), StoreError>;
    /// Raw key/value pairs whose key starts with `prefix`, in key order, from `start` (inclusive)
    /// when given, at most `limit` of them.
    fn scan_raw(
        &self,
        tree: Tree,
        prefix: &[u8],
        start: Option<&[u8]>,
        limit: usize,
    ) -> Result<RawPairs, StoreError>;
    /// Raw key/value pairs in descending key order, from just below `before` (the last key
    /// when `None`), at most `limit` of them.
    fn scan_raw_rev(
        &self,
        tree: Tree,
        before: Option<&[u8]>,
        limit: usize,
    ) -> Result<RawPairs, StoreError>;
    /// Replaces `old` (absent: `None`) with `new` (remove: `None`) in one step; answers
    /// whether it did (false: the stored value was not `old`). For one-key races.
    fn compare_and_swap_raw(
        &self,
        tree: Tree,
        key: &[u8],
        old: Option<&[u8]>,
        new: Option<Vec<u8>>,
    ) -> Result<bool, StoreError>;
    /// The journal's in-memory state (sequence, watermarks, claims).
    fn journal(&self) -> &journal::Journal;
    /// Appends one journal record holding `f`'s writes, then applies them (see
    /// [`journal::Journal::append`]). The caller flushes before acknowledging.
    fn append(
        &self,
        what: &str,
        publish: journal::Publish,
        f: &dyn Fn(&dyn Tx) -> Result<(), StoreError>,
    ) -> Result<Option<u64>, StoreError>;
    /// Applies a journal record's effects to the derived indexes, as seen by readers (the
    /// in-memory overlay until the next [`Storage::checkpoint`]).
    /// Record `seq`'s count shifts go to the live counts ([`Tally::apply`]).
    fn apply_effects(&self, seq: u64, effects: &[journal::Effect]) -> Result<(), StoreError>;
    /// Writes the indexes' changes since the last checkpoint into their trees, then persists
    /// the applied watermark, with the live counts as of it, with a flush (on open, the
    /// journal past it is applied again).
    /// Answers how many keys it wrote.
    fn checkpoint(&self) -> Result<usize, StoreError>;
    /// How many index keys wait for a checkpoint.
    fn unchecked(&self) -> usize;
    /// Blocks until everything written so far is on disk, with the journal's applied
    /// watermark, then publishes what the flush covered. Callers on the async path use
    /// [`GroupCommit::flush`] instead, which shares one flush among concurrent writers.
    fn flush_blocking(&self) -> Result<(), StoreError>;
    /// Cheap liveness check used by readiness.
    fn check(&self) -> Result<(), StoreError>;
    /// Bytes the store takes on disk (what an operator watches to plan a rewrite).
    fn disk_bytes(&self) -> Result<u64, StoreError>;
    /// A new id, strictly greater than every id returned before, also across restarts.
    fn next_id(&self) -> Result<u64, StoreError>;
    /// A new id that stays "in flight" until the ticket is dropped (after the write that uses
    /// it committed). Readers of id-ordered logs stop at [`Storage::watermark`], so they never
    /// pass an id whose write is still to land.
    fn ticket(&self) -> Result<Ticket, StoreError>;
    /// Every id at or below this is either committed or abandoned.
    fn watermark(&self) -> u64;
    /// Live record counts that writers keep up to date (see [`Tally`]).
    fn tally(&self) -> &Tally;
}

/// In-flight ids of [`Storage::ticket`].
#[derive(Debug, Default)]
pub struct Tickets {
    inner: std::sync::Mutex<(std::collections::BTreeSet<u64>, u64)>,
}

impl Tickets {
    pub fn issue(
        self: &std::sync::Arc<Self>,
        next: impl FnOnce() -> Result<u64, StoreError>,
    ) -> Result<Ticket, StoreError> {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let id = next()?;
        g.0.insert(id);
        g.1 = g.1.max(id);
        Ok(Ticket {
            id,
            owner: self.clone(),
        })
    }

    /// After opening: every id up to `last` was issued before, and is now committed (the
    /// journal was recovered) or abandoned, so readers may pass it.
    pub fn resume(&self, last: u64) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.1 = g.1.max(last);
    }

    pub fn watermark(&self) -> u64 {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match g.0.iter().next() {
            Some(min) => min.saturating_sub(1),
            None => g.1,
        }
    }
}

/// An id in flight; dropping it (after the commit) lets readers move past it.
#[derive(Debug)]
pub struct Ticket {
    pub id: u64,
    owner: std::sync::Arc<Tickets>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut g = self.owner.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.0.remove(&self.id);
    }
}

/// Typed helpers over any [`Storage`].
pub trait StorageExt: Storage {
    fn get<T: DeserializeOwned>(&self, tree: Tree, key: &[u8]) -> Result<Option<T>, StoreError> {
        match self.get_raw(tree, key)? {
            Some(bytes) => record::open(tree, key, &bytes).map(Some),
            None => Ok(None),
        }
    }
    fn put<T: Serialize>(&self, tree: Tree, key: &[u8], value: &T) -> Result<(), StoreError> {
        self.insert_raw(tree, key, record::seal(value)?)
    }
    /// Read-modify-write of one record by compare-and-swap, retried until no one else wrote
    /// in between. `f` gets the current value and answers the new one (`None`: leave it).
    /// Returns what was stored last.
    fn update<T: Serialize + DeserializeOwned>(
        &self,
        tree: Tree,
        key: &[u8],
        f: &mut dyn FnMut(Option<T>) -> Result<Option<T>, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        loop {
            let raw = self.get_raw(tree, key)?;
            let current: Option<T> = match &raw {
                Some(b) => Some(record::open(tree, key, b)?),
                None => None,
            };
            let Some(next) = f(current)? else {
                return Ok(match &raw {
                    Some(b) => Some(record::open(tree, key, b)?),
                    None => None,
                });
            };
            let sealed = record::seal(&next)?;
            if self.compare_and_swap_raw(tree, key, raw.as_deref(), Some(sealed))? {
                return Ok(Some(next));
            }
        }
    }
    /// A scanned record decoded, or `None` when it fails verification: then it is logged
    /// and quarantined, for readers that must go on past it (a listing, a device's pull).
    fn open_or_quarantine<T: DeserializeOwned>(
        &self,
        tree: Tree,
        key: &[u8],
        value: &[u8],
    ) -> Result<Option<T>, StoreError> {
        match record::open::<T>(tree, key, value) {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_corrupt() => {
                tracing::error!(error = %e, "a record fails verification: quarantined and passed over");
                self.quarantine(tree, key, &e.to_string())?;
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
    /// Moves a record that failed verification into the quarantine tree, with its reason.
    /// The copy goes in before the original goes out, so a crash in between leaves it in
    /// both (quarantined again on the next read), never in neither. It is never silently
    /// dropped: operators list it from there.
    fn quarantine(&self, tree: Tree, key: &[u8], reason: &str) -> Result<(), StoreError> {
        let qkey = quarantine_key(tree, key);
        if let Some(raw) = self.get_raw(tree, key)? {
            let entry = record::Quarantined {
                tree: tree.0.to_string(),
                key_hex: hex::encode(key),
                reason: reason.to_string(),
                quarantined_at: chrono::Utc::now(),
                raw_hex: Some(hex::encode(&raw)),
            };
            self.put(Tree::QUARANTINE, &qkey, &entry)?;
            self.remove(tree, key)?;
        }
        Ok(())
    }
    /// Whether a record of `tree` under `key` was quarantined.
    fn is_quarantined(&self, tree: Tree, key: &[u8]) -> Result<bool, StoreError> {
        Ok(self
            .get_raw(Tree::QUARANTINE, &quarantine_key(tree, key))?
            .is_some())
    }
    /// Everything in quarantine, oldest key first.
    fn quarantined(&self, limit: usize) -> Result<Vec<record::Quarantined>, StoreError> {
        self.scan_raw(Tree::QUARANTINE, b"", None, limit)?
            .into_iter()
            .map(|(k, v)| record::open(Tree::QUARANTINE, &k, &v))
            .collect()
    }
    /// How many records are in quarantine, counted a page at a time without decoding them.
    fn quarantined_count(&self) -> Result<u64, StoreError>
    where
        Self: Sized,
    {
        let mut n = 0;
        scan_pages(self, Tree::QUARANTINE, b"", 1024, &mut |_, _| {
            n += 1;
            Ok(true)
        })?;
        Ok(n)
    }
}
impl<S: Storage + ?Sized> StorageExt for S {}
