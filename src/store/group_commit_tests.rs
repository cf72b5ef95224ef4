//! Unit tests for `group_commit`.

use super::*;
use crate::store::{SledStore, StorageExt, Tree};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_share_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Storage> = Arc::new(SledStore::open(dir.path()).unwrap());
    let gc = GroupCommit::start(store.clone()).unwrap();
    let mut tasks = Vec::new();
    for i in 0..64u64 {
        let (store, gc) = (store.clone(), gc.clone());
        tasks.push(tokio::spawn(async move {
            store.put(Tree::META, &i.to_be_bytes(), &i).unwrap();
            gc.flush().await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(gc.requests(), 64);
    assert!(gc.flushes() < 64, "{} flushes for 64 writers", gc.flushes());
    assert!(gc.flushes() >= 1);
}
