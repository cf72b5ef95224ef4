//! The checkpoint thread: moves the overlay's index changes into their trees (see
//! [`Storage::checkpoint`]) often enough that memory and the journal replayed on open stay
//! small, and seldom enough that each key is written once for many records.

use super::Storage;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// Keys waiting that make a checkpoint due at once.
pub const DUE_KEYS: usize = 20_000;
/// The longest a change waits for its checkpoint.
const DUE_AFTER: Duration = Duration::from_millis(500);
const POLL: Duration = Duration::from_millis(25);

/// Starts the thread. It ends once the store is dropped (it holds no strong reference).
pub fn start(store: &Arc<dyn Storage>) -> std::io::Result<()> {
    let weak: Weak<dyn Storage> = Arc::downgrade(store);
    std::thread::Builder::new()
        .name("checkpoint".into())
        .spawn(move || {
            let mut last = Instant::now();
            loop {
                std::thread::sleep(POLL);
                let Some(store) = weak.upgrade() else { break };
                let waiting = store.unchecked();
                if waiting == 0 || (waiting < DUE_KEYS && last.elapsed() < DUE_AFTER) {
                    continue;
                }
                match store.checkpoint() {
                    Ok(n) => tracing::trace!(keys = n, "checkpoint"),
                    Err(e) => tracing::error!(error = %e, "checkpoint failed"),
                }
                last = Instant::now();
            }
        })?;
    Ok(())
}
