//! Test-only faults injected into the store's steps (checkpoints, marks, a rewrite's copy,
//! removes, plain inserts into one tree), for the tests of what a failure half-way leaves.

use crate::store::StoreError;

/// Test-only faults: each fails its step once it has counted down to zero (`usize::MAX`:
/// never).
#[derive(Debug)]
pub struct Faults {
    /// Checkpoints, per chunk of index keys written.
    pub checkpoint: std::sync::atomic::AtomicUsize,
    /// Saving marks, per mark.
    pub marks: std::sync::atomic::AtomicUsize,
    /// A rewrite's copy, per record.
    pub copy: std::sync::atomic::AtomicUsize,
    /// Plain removes, per key.
    pub remove: std::sync::atomic::AtomicUsize,
    /// Plain inserts into these trees: each entry lets its count of inserts into its tree
    /// pass, then fails the next one, once.
    pub insert_into: std::sync::Mutex<Vec<(&'static str, usize)>>,
}

impl Default for Faults {
    fn default() -> Self {
        use std::sync::atomic::AtomicUsize;
        Faults {
            checkpoint: AtomicUsize::new(usize::MAX),
            marks: AtomicUsize::new(usize::MAX),
            copy: AtomicUsize::new(usize::MAX),
            remove: AtomicUsize::new(usize::MAX),
            insert_into: std::sync::Mutex::new(Vec::new()),
        }
    }
}

impl Faults {
    pub fn fail_after(step: &std::sync::atomic::AtomicUsize, n: usize) {
        step.store(n, std::sync::atomic::Ordering::Release);
    }

    /// After `pass` more plain inserts into `tree`, the next one fails (once).
    pub fn fail_insert_into(&self, tree: crate::store::Tree, pass: usize) {
        self.insert_into
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((tree.0, pass));
    }

    pub(super) fn insert(&self, tree: crate::store::Tree) -> Result<(), StoreError> {
        let mut due = self.insert_into.lock().unwrap_or_else(|p| p.into_inner());
        let Some(i) = due.iter().position(|(t, _)| *t == tree.0) else {
            return Ok(());
        };
        match &mut due[i].1 {
            0 => {
                due.remove(i);
                Err(StoreError::Flush(format!(
                    "injected insert failure in {}",
                    tree.0
                )))
            }
            pass => {
                *pass -= 1;
                Ok(())
            }
        }
    }
}

/// A test's injected fault: fails once `left` has counted down to zero.
pub(super) fn injected(
    left: &std::sync::atomic::AtomicUsize,
    what: &str,
) -> Result<(), StoreError> {
    use std::sync::atomic::Ordering;
    left.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
        .map(|_| ())
        .map_err(|_| StoreError::Flush(format!("injected {what} failure")))
}
