//! A sync batch's staged writes: status ops accepted one by one, appended together.
//!
//! A push is one journal record for all of its accepted ops, so a batch is atomic and pays
//! for one append. A stage holds each accepted op's prepared records and appends them as one
//! record, in the order they were accepted, before the batch is flushed and answered.
//!
//! Until it commits, a staged op exists only here and in the in-memory device view it
//! advanced. Three rules keep that invisible to everyone else:
//! - the stage holds the lane lock of every route it has staged ops on, so no other write can
//!   queue behind them on that route (the replayer would see the later op first);
//! - it commits before the batch does anything that reads or writes sled state the staged ops
//!   affect (an op that is not staged, a view rebuilt from sled);
//! - when it must wait for another lane lock, it commits and lets go of its own first, so two
//!   stages never wait on each other.
//!
//! A staged op moves its route's version when it is accepted, like any write, but a route
//! body rendered before the commit lacks it: after the commit each route's version moves
//! again (the kept device view, which already shows the ops, moves with it). If the commit
//! fails, the views go too, and the next write rebuilds them from what sled holds.

use super::counts::shift;
use super::enqueue::{apply_in, IdemRecord, Prepared, CLAIM_PATIENCE};
use crate::store::journal::Publish;
use crate::store::{Storage, StoreError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::OwnedMutexGuard;

/// Told of each route (resource, date) whose staged ops were committed (`true`) or lost.
pub type Settled = Box<dyn Fn(&str, &str, bool) + Send + Sync>;

/// Staged writes of one batch, and the lane locks that keep them in order.
pub struct Stage {
    inner: Mutex<Inner>,
    settled: Settled,
}

#[derive(Default)]
struct Inner {
    staged: Vec<Prepared>,
    /// Lane locks held until the next commit-and-release, by route.
    held: HashMap<(String, String), OwnedMutexGuard<()>>,
}

impl std::fmt::Debug for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.lock();
        f.debug_struct("Stage")
            .field("staged", &inner.staged.len())
            .field("held", &inner.held.len())
            .finish()
    }
}

/// The lane lock a staged write goes on under.
pub enum LaneGuard {
    /// The stage already holds this route's lock.
    Held,
    Own(OwnedMutexGuard<()>),
}

impl Stage {
    pub fn new(settled: Settled) -> Arc<Stage> {
        Arc::new(Stage {
            inner: Mutex::default(),
            settled,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn is_empty(&self) -> bool {
        self.lock().staged.is_empty()
    }

    /// Takes a route's lane lock for a write of this batch. Never waits while holding locks:
    /// if the lock is taken, the stage commits and releases its own first.
    pub async fn lane(
        &self,
        store: &dyn Storage,
        lock: Arc<tokio::sync::Mutex<()>>,
        resource: &str,
        date: &str,
    ) -> Result<LaneGuard, StoreError> {
        if self
            .lock()
            .held
            .contains_key(&(resource.to_string(), date.to_string()))
        {
            return Ok(LaneGuard::Held);
        }
        if let Ok(guard) = lock.clone().try_lock_owned() {
            return Ok(LaneGuard::Own(guard));
        }
        self.commit_and_release(store)?;
        Ok(LaneGuard::Own(lock.lock_owned().await))
    }

    /// Adds an accepted write.
    pub(super) fn push(&self, prepared: Prepared) {
        self.lock().staged.push(prepared);
    }

    /// Keeps a route's lane lock until the stage is released.
    pub fn hold(&self, resource: &str, date: &str, guard: LaneGuard) {
        if let LaneGuard::Own(g) = guard {
            self.lock()
                .held
                .insert((resource.to_string(), date.to_string()), g);
        }
    }

    /// The first answer under an idempotency key staged in this batch.
    pub(super) fn staged_answer(&self, ikey: &[u8]) -> Option<IdemRecord> {
        self.lock()
            .staged
            .iter()
            .find(|p| p.ikey == ikey)
            .map(|p| p.idem.clone())
    }

    /// Appends every staged write as one journal record, in the order they were accepted, so
    /// the batch is atomic. The lane locks stay held: the caller may still be writing on
    /// those routes.
    pub fn commit(&self, store: &dyn Storage) -> Result<(), StoreError> {
        let mut staged = std::mem::take(&mut self.lock().staged);
        if staged.is_empty() {
            return Ok(());
        }
        let mut publish = Publish::default();
        for p in &mut staged {
            let Publish { tickets, ops } = p.take_publish();
            publish.tickets.extend(tickets);
            publish.ops.extend(ops);
        }
        let keys = staged.iter().map(|p| p.ikey.clone()).collect();
        let result = store
            .journal()
            .claims()
            .claim(keys, CLAIM_PATIENCE)
            .and_then(|_claim| {
                store.append("write.push", publish, &|tx| {
                    for p in &staged {
                        // Same-key writes queue on the same lane, which the stage holds: an
                        // earlier record here means something went around the lock. Nothing
                        // is written.
                        if apply_in(tx, p)?.is_some() {
                            return Err(StoreError::Aborted(
                                "an idempotency key staged in this batch was taken meanwhile"
                                    .into(),
                            ));
                        }
                        for op in &p.ops {
                            tx.count(shift(op, None));
                        }
                    }
                    Ok(())
                })
            })
            .map(|_| ());
        let mut routes: Vec<(String, String)> = staged.iter().map(Prepared::route).collect();
        routes.dedup();
        for (resource, date) in &routes {
            (self.settled)(resource, date, result.is_ok());
        }
        result
    }

    /// Commits, then lets go of every lane lock.
    pub fn commit_and_release(&self, store: &dyn Storage) -> Result<(), StoreError> {
        let result = self.commit(store);
        self.lock().held.clear();
        result
    }
}

/// A batch abandoned before its commit (the client went away and its request with it): its
/// staged ops were never acknowledged and are not written, but the views they advanced
/// must not outlive them.
impl Drop for Stage {
    fn drop(&mut self) {
        let inner = self.lock();
        let mut routes: Vec<(String, String)> = inner.staged.iter().map(Prepared::route).collect();
        routes.dedup();
        for (resource, date) in &routes {
            (self.settled)(resource, date, false);
        }
    }
}

#[cfg(test)]
#[path = "stage_tests.rs"]
mod tests;
