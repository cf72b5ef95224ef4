//! `fieldsync rewrite`: the store copied into a new directory holding only what is live,
//! built beside its target and renamed once whole.

#[cfg(test)]
use super::injected;
use super::{create_private_dir, SledStore, ID_OFFSET_KEY};
use crate::store::{Storage, StoreError, Tree};
use std::fs::File;
use std::path::Path;

/// Where a rewrite into `to` builds its copy: a sibling, `.{name}.partial`.
fn partial_path(to: &Path) -> Result<std::path::PathBuf, StoreError> {
    let name = to.file_name().ok_or_else(|| {
        StoreError::Aborted(format!("{}: rewrite into a named directory", to.display()))
    })?;
    let mut partial = std::ffi::OsString::from(".");
    partial.push(name);
    partial.push(".partial");
    Ok(to.with_file_name(partial))
}

fn io_error(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Flush(format!("{}: {e}", path.display()))
}

impl SledStore {
    /// Writes every tree into a new sled database at `to` (a directory that must not exist),
    /// with the service stopped: sled 0.34 does not give back the space of removed records
    /// (history retention, compaction), and a copy holds only what is live. Ids go on from
    /// where this store's left off. Answers the bytes on disk before and after.
    ///
    /// The copy is made beside `to` (see [`partial_path`]) and renamed to `to` only once it
    /// is whole and opens: a failure (a full disk, an I/O error) removes it, and an
    /// interrupted rewrite leaves nothing at `to` that could be mistaken for a copy.
    pub fn rewrite_into(&self, to: &Path) -> Result<(u64, u64), StoreError> {
        if to.exists() {
            return Err(StoreError::Aborted(format!(
                "{} exists: rewrite into a new directory",
                to.display()
            )));
        }
        let partial = partial_path(to)?;
        if partial.exists() {
            tracing::warn!(path = %partial.display(), "removing what an interrupted rewrite left");
            std::fs::remove_dir_all(&partial).map_err(|e| io_error(&partial, e))?;
        }
        self.checkpoint()?;
        self.flush_blocking()?;
        let before = self.db.size_on_disk()?;
        let copied = self.copy_into(&partial);
        let copied = copied.and_then(|()| {
            // Opened as a start would, so a copy that does not open is an error now (just after
            // the copy's own handle closed).
            let after = SledStore::open_after_close(&partial, 16 << 20)?
                .db
                .size_on_disk()?;
            std::fs::rename(&partial, to).map_err(|e| io_error(to, e))?;
            let parent = to.parent().filter(|p| !p.as_os_str().is_empty());
            File::open(parent.unwrap_or(Path::new(".")))
                .and_then(|d| d.sync_all())
                .map_err(|e| io_error(to, e))?;
            Ok(after)
        });
        match copied {
            Ok(after) => Ok((before, after)),
            Err(e) => {
                if let Err(rm) = std::fs::remove_dir_all(&partial) {
                    tracing::error!(path = %partial.display(), error = %rm, "could not remove a failed rewrite's copy");
                }
                Err(e)
            }
        }
    }

    /// Copies every tree into a new database at `to`, with the id offset, and flushes it.
    fn copy_into(&self, to: &Path) -> Result<(), StoreError> {
        // Every id issued so far is at or below this one.
        let last_id = self.next_id()?;
        create_private_dir(to)?;
        // Tree by tree, key by key (sled's own `import` panics on an I/O error), through a
        // small page cache: a copy of gigabytes need not sit in memory.
        let copy = sled::Config::new()
            .path(to)
            .cache_capacity(16 << 20)
            .open()?;
        for name in self.db.tree_names() {
            let (from, into) = (self.db.open_tree(&name)?, copy.open_tree(&name)?);
            for pair in from.iter() {
                let (k, v) = pair?;
                #[cfg(test)]
                injected(&self.faults.copy, "rewrite")?;
                into.insert(k, v)?;
            }
        }
        // In the same flush as the records: a copy never exists without its offset.
        copy.open_tree(Tree::META.0)?
            .insert(ID_OFFSET_KEY, crate::store::record::seal(&last_id)?)?;
        copy.flush()?;
        Ok(())
    }
}
