//! Group commit: concurrent writers awaiting durability share one flush.
//!
//! A dedicated thread waits for the first request, drains every request that arrived
//! meanwhile, flushes once (sled flush plus `fdatasync`), and answers them all.

use super::{Storage, StoreError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use tokio::sync::oneshot;

type Waiter = oneshot::Sender<Result<(), String>>;

/// How long journal records may wait unpublished when nobody asks for a flush.
const IDLE_FLUSH: std::time::Duration = std::time::Duration::from_millis(100);

/// Handle to the flushing thread. Cloning shares the thread.
#[derive(Clone)]
pub struct GroupCommit {
    tx: mpsc::Sender<Waiter>,
    stats: Arc<Stats>,
}

#[derive(Default)]
struct Stats {
    flushes: AtomicU64,
    requests: AtomicU64,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit")
            .field("flushes", &self.flushes())
            .finish()
    }
}

impl GroupCommit {
    /// Starts the flushing thread. It ends when every handle is dropped.
    pub fn start(store: Arc<dyn Storage>) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Waiter>();
        let stats = Arc::new(Stats::default());
        let thread_stats = stats.clone();
        std::thread::Builder::new()
            .name("group-commit".into())
            .spawn(move || {
                loop {
                    let mut group = match rx.recv_timeout(IDLE_FLUSH) {
                        Ok(first) => vec![first],
                        // A record appended by a request that went away before asking for
                        // its flush still gets published.
                        Err(mpsc::RecvTimeoutError::Timeout) => {
                            if store.journal().has_unpublished() {
                                if let Err(e) = store.flush_blocking() {
                                    tracing::error!(error = %e, "idle flush failed");
                                }
                            }
                            continue;
                        }
                        Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    };
                    group.extend(rx.try_iter());
                    let result = store.flush_blocking().map_err(|e| e.to_string());
                    thread_stats.flushes.fetch_add(1, Ordering::Relaxed);
                    if let Err(e) = &result {
                        tracing::error!(error = %e, "group commit flush failed");
                    }
                    for waiter in group {
                        let _ = waiter.send(result.clone());
                    }
                }
            })?;
        Ok(GroupCommit { tx, stats })
    }

    /// Resolves once every write made before the call is durable on disk.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(tx)
            .map_err(|_| StoreError::Flush("group commit thread stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Flush("group commit thread stopped".into()))?
            .map_err(StoreError::Flush)
    }

    /// Number of physical flushes performed so far.
    pub fn flushes(&self) -> u64 {
        self.stats.flushes.load(Ordering::Relaxed)
    }

    /// Number of flush requests made so far.
    pub fn requests(&self) -> u64 {
        self.stats.requests.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
#[path = "group_commit_tests.rs"]
mod tests;
