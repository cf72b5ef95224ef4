//! Test-only faults injected into the store's steps (checkpoints, marks, a rewrite's copy,
//! removes), for the tests of what a failure half-way leaves.

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
}

impl Default for Faults {
    fn default() -> Self {
        use std::sync::atomic::AtomicUsize;
        Faults {
            checkpoint: AtomicUsize::new(usize::MAX),
            marks: AtomicUsize::new(usize::MAX),
            copy: AtomicUsize::new(usize::MAX),
            remove: AtomicUsize::new(usize::MAX),
        }
    }
}

impl Faults {
    pub fn fail_after(step: &std::sync::atomic::AtomicUsize, n: usize) {
        step.store(n, std::sync::atomic::Ordering::Release);
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
