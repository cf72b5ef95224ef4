//! The sled implementation of [`Storage`](super::Storage).

use super::journal::{self, Effect, Journal, Publish};
use super::overlay::{self, Look, Overlay};
use super::{Storage, StoreError, Tree, Tx};
use std::fs::File;
use std::path::{Path, PathBuf};

/// Creates the data directory readable by its owner only (0700): it holds the JWT key, the
/// upload keys, TOTP secrets and session ids. Files created inside are 0600 (see
/// [`private_files`]).
fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::DirBuilderExt;
    private_files();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| StoreError::Flush(format!("creating {}: {e}", dir.display())))
}

/// Every file this process creates from now on is its owner's alone (umask 077): sled's
/// files, uploads, thumbnails.
pub fn private_files() {
    // SAFETY: umask only swaps the process's file-creation mask; it cannot fail.
    unsafe {
        libc::umask(0o077);
    }
}

/// Refuses a data directory that its group or others may enter: a clear message instead of
/// running with secrets readable by other users.
pub fn check_private(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(format!(
            "the data directory {} is accessible to its group or others (mode {:o}); it holds \
             keys and session secrets. Run `chmod 700 {}`, or set server.allow_shared_data_dir \
             = true to start anyway",
            dir.display(),
            mode & 0o777,
            dir.display()
        ));
    }
    Ok(())
}

/// sled database plus a handle on its data file, so a flush can be followed by `fdatasync`
/// (sled 0.34 only calls `sync_file_range`, which does not survive a power cut).
pub struct SledStore {
    db: sled::Db,
    tickets: std::sync::Arc<super::Tickets>,
    tally: super::Tally,
    journal: Journal,
    /// The indexes' changes since the last checkpoint (see [`overlay`]).
    overlay: Overlay,
    recovered: journal::Recovered,
    #[cfg(test)]
    pub faults: Faults,
    data_file: Option<File>,
    /// The highest blob file (by sled's log sequence number) already synced.
    blobs_synced: std::sync::Mutex<i64>,
    /// One checkpoint at a time: the marks a checkpoint saves must land in the order of
    /// their watermarks.
    checkpointing: std::sync::Mutex<()>,
    /// Added to sled's id generator: a rewritten directory's generator starts again at 0,
    /// and ids must never repeat ([`SledStore::rewrite_into`]).
    id_offset: u64,
    path: PathBuf,
}

/// `META` key of [`SledStore`]'s id offset.
const ID_OFFSET_KEY: &[u8] = b"ids.offset";

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore")
            .field("path", &self.path)
            .finish()
    }
}

impl SledStore {
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with_cache(dir, 64 * 1024 * 1024)
    }

    /// Opens with sled's page cache bounded to `cache_bytes` (sled's default is 1 GiB), and
    /// brings the indexes up to the journal ([`journal::recover`]).
    pub fn open_with_cache(dir: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        create_private_dir(dir)?;
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .open()?;
        // sled 0.34 keeps its log in the file named `db` inside the directory.
        let data_file = File::open(dir.join("db")).ok();
        Self::recovered(db, data_file, dir.to_path_buf())
    }

    /// Opens a directory this process has just closed (a rewrite's copy, a test's reopen):
    /// sled's background threads let go of the directory lock a moment after the drop
    /// (seen as a flaky "could not acquire lock" under load), so a lock refusal is retried
    /// for up to two seconds.
    pub fn open_after_close(dir: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        let mut tries = 0;
        loop {
            match Self::open_with_cache(dir, cache_bytes) {
                Err(StoreError::Sled(sled::Error::Io(e)))
                    if tries < 100 && e.to_string().contains("could not acquire lock") =>
                {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => return other,
            }
        }
    }

    /// Reopens a directory in a test, in the same process that just dropped its store.
    #[cfg(test)]
    pub fn reopen(dir: &Path) -> Result<Self, StoreError> {
        Self::open_after_close(dir, 4 << 20)
    }

    /// A throwaway store for tests: in a temporary directory that sled removes on drop.
    pub fn temporary() -> Result<Self, StoreError> {
        let db = sled::Config::new().temporary(true).open()?;
        Self::recovered(db, None, PathBuf::new())
    }

    fn recovered(db: sled::Db, data_file: Option<File>, path: PathBuf) -> Result<Self, StoreError> {
        let mut store = SledStore {
            db,
            tickets: Default::default(),
            tally: Default::default(),
            journal: Journal::default(),
            overlay: Overlay::default(),
            recovered: journal::Recovered::default(),
            data_file,
            blobs_synced: std::sync::Mutex::new(-1),
            checkpointing: std::sync::Mutex::new(()),
            #[cfg(test)]
            faults: Faults::default(),
            id_offset: 0,
            path,
        };
        store.id_offset =
            super::StorageExt::get::<u64>(&store, Tree::META, ID_OFFSET_KEY)?.unwrap_or(0);
        let recovered = journal::recover(&store)?;
        store.journal = Journal::resume(recovered.last);
        store.recovered = recovered;
        // Without this, the watermark stayed 0 until the first write after a start, and
        // every pull from a cursor issued before the start answered a reset (a snapshot,
        // which skips the op outcomes the device had not pulled yet).
        store.tickets.resume(store.next_id()?.saturating_sub(1));
        store.checkpoint()?;
        Ok(store)
    }

    /// sled 0.34 writes a value too large for its log segment (over about 128 KiB with its
    /// default 512 KiB segments) to its own file under `blobs/`, and never syncs that file:
    /// its flush syncs only the log. A batch's journal record, or a leaf node full of
    /// sizeable values, can be such a blob. So the flush syncs every blob file written
    /// since the last one, and the directory, before it syncs the log that points at them.
    fn sync_new_blobs(&self) -> Result<(), StoreError> {
        let dir = self.path.join("blobs");
        let io = |e: std::io::Error| StoreError::Flush(format!("syncing sled blobs: {e}"));
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io(e)),
        };
        let mut synced = self.blobs_synced.lock().unwrap_or_else(|p| p.into_inner());
        let mut highest = *synced;
        let mut any = false;
        for entry in entries {
            let entry = entry.map_err(io)?;
            let Some(lsn) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i64>().ok())
            else {
                continue;
            };
            if lsn <= *synced {
                continue;
            }
            match File::open(entry.path()) {
                Ok(f) => f.sync_data().map_err(io)?,
                // Garbage-collected by sled meanwhile: nothing points at it any more.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io(e)),
            }
            highest = highest.max(lsn);
            any = true;
        }
        if any {
            File::open(&dir).and_then(|d| d.sync_all()).map_err(io)?;
            *synced = highest;
        }
        Ok(())
    }

    /// What opening did to bring the indexes up to the journal.
    pub fn recovery(&self) -> &journal::Recovered {
        &self.recovered
    }

    /// Flushes sled alone, leaving the persisted applied watermark as it is: what a crash
    /// before the next checkpoint leaves on disk (the overlay is lost with the process).
    #[cfg(test)]
    pub fn flush_without_watermark(&self) {
        let _ = self.db.flush();
    }

    /// A plain write to a tree the overlay may hold: under the tree's writer lock, and the
    /// key's slot goes after it, so the tree's value is the one readers see.
    fn write_through<T>(
        &self,
        tree: Tree,
        key: &[u8],
        write: impl FnOnce(&sled::Tree) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let t = self.tree(tree)?;
        let Some(shard) = self.overlay.shard(tree) else {
            return write(&t);
        };
        let _writer = overlay::writer(&shard);
        let out = write(&t)?;
        if overlay::write(&shard).remove(key).is_some() {
            self.overlay.settled(1);
        }
        Ok(out)
    }

    /// The value readers see: the overlay's, else the tree's.
    fn current(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.overlay.look(tree, key) {
            Look::Value(v) => Ok(Some(v)),
            Look::Removed => Ok(None),
            Look::Unknown => Ok(self.tree(tree)?.get(key)?.map(|v| v.to_vec())),
        }
    }

    fn tree(&self, tree: Tree) -> Result<sled::Tree, StoreError> {
        Ok(self.db.open_tree(tree.0)?)
    }

    /// Writes a checkpoint's marks into their tree, as of its watermark (see
    /// [`super::tally`]). Only this writes the tree, under the checkpoint's lock.
    pub(super) fn save_marks(&self, at: &super::tally::AtWatermark) -> Result<(), StoreError> {
        let t = self.tree(Tree::MARKS)?;
        if at.all {
            for key in t.iter().keys() {
                let key = key?;
                let kept = <[u8; 8]>::try_from(key.as_ref())
                    .is_ok_and(|k| at.marks.contains_key(&u64::from_be_bytes(k)));
                if !kept {
                    t.remove(key)?;
                }
            }
        }
        for (id, class) in &at.marks {
            #[cfg(test)]
            injected(&self.faults.marks, "marks")?;
            match class {
                Some(c) => t.insert(id.to_be_bytes(), super::record::seal(c)?)?,
                None => t.remove(id.to_be_bytes())?,
            };
        }
        Ok(())
    }
}

/// Keys a checkpoint writes per hold of a tree's lock.
const CHECKPOINT_CHUNK: usize = 128;

impl Storage for SledStore {
    fn get_raw(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.current(tree, key)
    }

    fn insert_raw(&self, tree: Tree, key: &[u8], value: Vec<u8>) -> Result<(), StoreError> {
        #[cfg(test)]
        self.faults.insert(tree)?;
        self.write_through(tree, key, |t| {
            t.insert(key, value)?;
            Ok(())
        })
    }

    fn remove(&self, tree: Tree, key: &[u8]) -> Result<(), StoreError> {
        #[cfg(test)]
        injected(&self.faults.remove, "remove")?;
        self.write_through(tree, key, |t| {
            t.remove(key)?;
            Ok(())
        })
    }

    fn scan_raw(
        &self,
        tree: Tree,
        prefix: &[u8],
        start: Option<&[u8]>,
        limit: usize,
    ) -> Result<super::RawPairs, StoreError> {
        let t = self.tree(tree)?;
        let from = match start {
            Some(s) if s > prefix => s,
            _ => prefix,
        };
        // The overlay's part first: a checkpoint moving a key meanwhile leaves it in both.
        let over = match self.overlay.shard(tree) {
            Some(shard) => overlay::range(&overlay::read(&shard), prefix, from, None, false, limit),
            None => Vec::new(),
        };
        let mut iter = t
            .range(from.to_vec()..)
            .take_while(|item| item.as_ref().map_or(true, |(k, _)| k.starts_with(prefix)))
            .map(|item| {
                item.map(|(k, v)| (k.to_vec(), v.to_vec()))
                    .map_err(StoreError::from)
            });
        overlay::merge(over, &mut iter, false, limit)
    }

    fn scan_raw_rev(
        &self,
        tree: Tree,
        before: Option<&[u8]>,
        limit: usize,
    ) -> Result<super::RawPairs, StoreError> {
        let t = self.tree(tree)?;
        let over = match self.overlay.shard(tree) {
            Some(shard) => overlay::range(&overlay::read(&shard), b"", b"", before, true, limit),
            None => Vec::new(),
        };
        let range = match before {
            Some(b) => t.range(..b.to_vec()),
            None => t.range::<Vec<u8>, _>(..),
        };
        let mut iter = range.rev().map(|item| {
            item.map(|(k, v)| (k.to_vec(), v.to_vec()))
                .map_err(StoreError::from)
        });
        overlay::merge(over, &mut iter, true, limit)
    }

    fn compare_and_swap_raw(
        &self,
        tree: Tree,
        key: &[u8],
        old: Option<&[u8]>,
        new: Option<Vec<u8>>,
    ) -> Result<bool, StoreError> {
        let Some(shard) = self.overlay.shard(tree) else {
            return Ok(self.tree(tree)?.compare_and_swap(key, old, new)?.is_ok());
        };
        let t = self.tree(tree)?;
        let _writer = overlay::writer(&shard);
        let current = match overlay::read(&shard).get(key) {
            Some(slot) => slot.clone(),
            None => t.get(key)?.map(|v| v.to_vec()),
        };
        if current.as_deref() != old {
            return Ok(false);
        }
        match new {
            Some(v) => t.insert(key, v)?,
            None => t.remove(key)?,
        };
        if overlay::write(&shard).remove(key).is_some() {
            self.overlay.settled(1);
        }
        Ok(true)
    }

    fn apply_effects(&self, seq: u64, effects: &[Effect]) -> Result<(), StoreError> {
        self.overlay.apply(effects, &|tree, key| {
            Ok(self.tree(tree)?.get(key)?.map(|v| v.to_vec()))
        })?;
        let mut shifts = Vec::new();
        let mut recount = false;
        for e in effects {
            match e {
                Effect::Count(s) => shifts.push(s.clone()),
                Effect::Recount => recount = true,
                _ => {}
            }
        }
        if !shifts.is_empty() || recount {
            self.tally.apply(seq, &shifts, recount);
        }
        Ok(())
    }

    fn checkpoint(&self) -> Result<usize, StoreError> {
        let _one = self.checkpointing.lock().unwrap_or_else(|p| p.into_inner());
        // The watermark before the listing: every record at or below it is in the listing.
        let watermark = self.journal.applied_watermark();
        let mut moved = 0;
        for (tree, shard, keys) in self.overlay.listing() {
            let t = self.tree(tree)?;
            for chunk in keys.chunks(CHECKPOINT_CHUNK) {
                #[cfg(test)]
                injected(&self.faults.checkpoint, "checkpoint")?;
                let _writer = overlay::writer(&shard);
                let slots: Vec<(&Vec<u8>, Option<Vec<u8>>)> = {
                    let g = overlay::read(&shard);
                    chunk
                        .iter()
                        .filter_map(|k| g.get(k).map(|v| (k, v.clone())))
                        .collect()
                };
                for (key, value) in &slots {
                    match value {
                        Some(v) => t.insert(key.as_slice(), v.as_slice())?,
                        None => t.remove(key.as_slice())?,
                    };
                }
                // A slot a newer record changed meanwhile stays for the next checkpoint.
                let mut g = overlay::write(&shard);
                let mut n = 0;
                for (key, value) in slots {
                    if g.get(key) == Some(&value) {
                        g.remove(key);
                        n += 1;
                    }
                }
                drop(g);
                self.overlay.settled(n);
                moved += n;
            }
        }
        // The counts as of the watermark, in the same value: a start begins from both. The
        // marks that moved go to their tree first, as of the same watermark.
        let at = self.tally.at(watermark);
        if let Some(at) = &at {
            self.save_marks(at)?;
        }
        let checkpointed = journal::Checkpointed {
            watermark,
            counts: at.as_ref().map(|a| a.counts.clone()),
        };
        self.tree(Tree::META)?
            .insert(journal::CHECKPOINT_KEY, super::record::seal(&checkpointed)?)?;
        self.flush_blocking()?;
        self.journal.checkpointed(watermark);
        if let Some(at) = &at {
            self.tally.saved(at);
        }
        Ok(moved)
    }

    fn unchecked(&self) -> usize {
        self.overlay.len()
    }

    fn journal(&self) -> &Journal {
        &self.journal
    }

    fn append(
        &self,
        what: &str,
        publish: Publish,
        f: &dyn Fn(&dyn Tx) -> Result<(), StoreError>,
    ) -> Result<Option<u64>, StoreError> {
        self.journal.append(self, what, publish, f)
    }

    fn flush_blocking(&self) -> Result<(), StoreError> {
        // What the flush covers becomes visible after it. The indexes' watermark moves only
        // with a checkpoint: on open, the journal past it is applied again.
        let applied = self.journal.before_flush();
        self.db.flush()?;
        if let Some(file) = &self.data_file {
            self.sync_new_blobs()?;
            file.sync_data()
                .map_err(|e| StoreError::Flush(e.to_string()))?;
        }
        self.journal.after_flush(applied);
        Ok(())
    }

    fn check(&self) -> Result<(), StoreError> {
        self.tree(Tree::META)?.get(b"__ready")?;
        Ok(())
    }

    fn disk_bytes(&self) -> Result<u64, StoreError> {
        Ok(self.db.size_on_disk()?)
    }

    fn ticket(&self) -> Result<super::Ticket, StoreError> {
        self.tickets.issue(|| self.next_id())
    }

    fn watermark(&self) -> u64 {
        self.tickets.watermark()
    }

    fn tally(&self) -> &super::Tally {
        &self.tally
    }

    fn next_id(&self) -> Result<u64, StoreError> {
        // sled persists a reserved block of ids, so ids stay monotonic after a crash.
        Ok(self.db.generate_id()? + 1 + self.id_offset)
    }
}

#[cfg(test)]
mod faults;
mod rewrite;
#[cfg(test)]
use faults::injected;
#[cfg(test)]
pub use faults::Faults;

#[cfg(test)]
mod tests;
