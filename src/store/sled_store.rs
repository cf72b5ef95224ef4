//! The sled implementation of [`Storage`](super::Storage).

use super::{Storage, StoreError, Tree, Tx};
use sled::transaction::{
    ConflictableTransactionError, TransactionError, TransactionalTree, UnabortableTransactionError,
};
use sled::Transactional;
use std::fs::File;
use std::path::{Path, PathBuf};

/// sled database plus a handle on its data file, so a flush can be followed by `fdatasync`
/// (sled 0.34 only calls `sync_file_range`, which does not survive a power cut).
pub struct SledStore {
    db: sled::Db,
    tickets: std::sync::Arc<super::Tickets>,
    tally: super::Tally,
    data_file: Option<File>,
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

    /// Opens with sled's page cache bounded to `cache_bytes` (sled's default is 1 GiB).
    pub fn open_with_cache(dir: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Flush(e.to_string()))?;
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .open()?;
        // sled 0.34 keeps its log in the file named `db` inside the directory.
        let data_file = File::open(dir.join("db")).ok();
        Ok(SledStore {
            db,
            tickets: Default::default(),
            tally: Default::default(),
            data_file,
            path: dir.to_path_buf(),
        })
    }

    /// A throwaway store for tests: in a temporary directory that sled removes on drop.
    pub fn temporary() -> Result<Self, StoreError> {
        let db = sled::Config::new().temporary(true).open()?;
        Ok(SledStore {
            db,
            tickets: Default::default(),
            tally: Default::default(),
            data_file: None,
            path: PathBuf::new(),
        })
    }

    fn tree(&self, tree: Tree) -> Result<sled::Tree, StoreError> {
        Ok(self.db.open_tree(tree.0)?)
    }
}

struct SledTx<'a> {
    names: &'a [Tree],
    trees: &'a [TransactionalTree],
}

impl SledTx<'_> {
    fn tree(&self, tree: Tree) -> Result<&TransactionalTree, StoreError> {
        self.names
            .iter()
            .position(|t| *t == tree)
            .and_then(|i| self.trees.get(i))
            .ok_or(StoreError::Aborted(format!(
                "tree {} not part of this transaction",
                tree.0
            )))
    }
}

fn unabortable(e: UnabortableTransactionError) -> StoreError {
    match e {
        UnabortableTransactionError::Conflict => StoreError::Conflict,
        UnabortableTransactionError::Storage(e) => StoreError::Sled(e),
    }
}

impl Tx for SledTx<'_> {
    fn get_raw(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .tree(tree)?
            .get(key)
            .map_err(unabortable)?
            .map(|v| v.to_vec()))
    }
    fn insert_raw(&self, tree: Tree, key: &[u8], value: Vec<u8>) -> Result<(), StoreError> {
        self.tree(tree)?.insert(key, value).map_err(unabortable)?;
        Ok(())
    }
    fn remove(&self, tree: Tree, key: &[u8]) -> Result<(), StoreError> {
        self.tree(tree)?.remove(key).map_err(unabortable)?;
        Ok(())
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

    fn warm(&self, keys: &mut dyn Iterator<Item = (Tree, &[u8])>) -> Result<(), StoreError> {
        for (tree, key) in keys {
            self.tree(tree)?.get(key)?;
        }
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

    fn transact(
        &self,
        trees: &[Tree],
        f: &dyn Fn(&dyn Tx) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let opened = trees
            .iter()
            .map(|t| self.tree(*t))
            .collect::<Result<Vec<_>, _>>()?;
        let refs: Vec<&sled::Tree> = opened.iter().collect();
        let result = refs.as_slice().transaction(|tx_trees| {
            let view = SledTx {
                names: trees,
                trees: tx_trees,
            };
            f(&view).map_err(|e| match e {
                StoreError::Conflict => ConflictableTransactionError::Conflict,
                other => ConflictableTransactionError::Abort(other),
            })
        });
        match result {
            Ok(()) => Ok(()),
            Err(TransactionError::Abort(e)) => Err(e),
            Err(TransactionError::Storage(e)) => Err(StoreError::Sled(e)),
        }
    }

    fn flush_blocking(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        if let Some(file) = &self.data_file {
            file.sync_data()
                .map_err(|e| StoreError::Flush(e.to_string()))?;
        }
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
