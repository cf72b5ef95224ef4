//! The sled implementation of [`Storage`](super::Storage).

use super::journal::{self, Journal, Publish};
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
    recovered: journal::Recovered,
    data_file: Option<File>,
    /// The highest blob file (by sled's log sequence number) already synced.
    blobs_synced: std::sync::Mutex<i64>,
    path: PathBuf,
}

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
            recovered: journal::Recovered::default(),
            data_file,
            blobs_synced: std::sync::Mutex::new(-1),
            path,
        };
        let recovered = journal::recover(&store)?;
        store.journal = Journal::resume(recovered.last);
        store.recovered = recovered;
        store.flush_blocking()?;
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
    /// after the writes' own flush but before the next group commit leaves on disk.
    #[cfg(test)]
    pub fn flush_without_watermark(&self) {
        let _ = self.db.flush();
    }

    fn tree(&self, tree: Tree) -> Result<sled::Tree, StoreError> {
        Ok(self.db.open_tree(tree.0)?)
    }
}

impl Storage for SledStore {
    fn get_raw(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tree(tree)?.get(key)?.map(|v| v.to_vec()))
    }

    fn insert_raw(&self, tree: Tree, key: &[u8], value: Vec<u8>) -> Result<(), StoreError> {
        self.tree(tree)?.insert(key, value)?;
        Ok(())
    }

    fn remove(&self, tree: Tree, key: &[u8]) -> Result<(), StoreError> {
        self.tree(tree)?.remove(key)?;
        Ok(())
    }

    fn scan_raw(
        &self,
        tree: Tree,
        prefix: &[u8],
        start: Option<&[u8]>,
        limit: usize,
    ) -> Result<super::RawPairs, StoreError> {
        let t = self.tree(tree)?;
        let iter = match start {
            Some(s) if s > prefix => t.range(s.to_vec()..),
            _ => t.range(prefix.to_vec()..),
        };
        let mut out = Vec::new();
        for item in iter {
            let (k, v) = item?;
            if !k.starts_with(prefix) || out.len() >= limit {
                break;
            }
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    fn scan_raw_rev(
        &self,
        tree: Tree,
        before: Option<&[u8]>,
        limit: usize,
    ) -> Result<super::RawPairs, StoreError> {
        let t = self.tree(tree)?;
        let iter = match before {
            Some(b) => t.range(..b.to_vec()).rev(),
            None => t.iter().rev(),
        };
        let mut out = Vec::new();
        for item in iter.take(limit) {
            let (k, v) = item?;
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    fn compare_and_swap_raw(
        &self,
        tree: Tree,
        key: &[u8],
        old: Option<&[u8]>,
        new: Option<Vec<u8>>,
    ) -> Result<bool, StoreError> {
        Ok(self.tree(tree)?.compare_and_swap(key, old, new)?.is_ok())
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
        // Persisted with the flush: on open, the journal past it is applied again.
        let applied = self.journal.before_flush();
        self.tree(Tree::META)?
            .insert(journal::APPLIED_KEY, super::record::seal(&applied)?)?;
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
        Ok(self.db.generate_id()? + 1)
    }
}

#[cfg(test)]
#[path = "sled_store_tests.rs"]
mod tests;
