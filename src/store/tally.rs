//! Live counts of records by group and class, kept in memory by the code that writes those
//! records (the outbox counts ops by resource and state), so that queue depth and metrics
//! are a lookup, not a scan of every record ever written. Rebuilt by a scan at start.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct Tally {
    counts: Mutex<HashMap<String, Vec<u64>>>,
    resets: AtomicU64,
}

impl Tally {
    /// One record of `group` moved from class `from` to class `to` (`None`: it did not exist
    /// before, or no longer exists).
    pub fn shift(&self, group: &str, from: Option<usize>, to: Option<usize>) {
        if from == to {
            return;
        }
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let row = counts.entry(group.to_string()).or_default();
        if let Some(from) = from {
            if let Some(n) = row.get_mut(from) {
                *n = n.saturating_sub(1);
            }
        }
        if let Some(to) = to {
            if row.len() <= to {
                row.resize(to + 1, 0);
            }
            row[to] += 1;
        }
    }

    /// Per-class totals over the groups `keep` accepts, `classes` wide.
    pub fn totals(&self, classes: usize, keep: &dyn Fn(&str) -> bool) -> Vec<u64> {
        let counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = vec![0; classes];
        for row in counts.iter().filter(|(g, _)| keep(g)).map(|(_, r)| r) {
            for (total, n) in out.iter_mut().zip(row) {
                *total += n;
            }
        }
        out
    }

    /// Replaces every count (after a full scan).
    pub fn reset(&self, counts: HashMap<String, Vec<u64>>) {
        *self.counts.lock().unwrap_or_else(|p| p.into_inner()) = counts;
        self.resets.fetch_add(1, Ordering::AcqRel);
    }

    /// How many times the counts were rebuilt: a rebuild follows a change no shift could
    /// describe (a record dropped unread), which readers of derived state may need to see.
    pub fn resets(&self) -> u64 {
        self.resets.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifts_move_one_record_between_classes_per_group() {
        let t = Tally::default();
        t.shift("a", None, Some(0));
        t.shift("a", None, Some(0));
        t.shift("b", None, Some(0));
        t.shift("a", Some(0), Some(2));
        t.shift("a", Some(2), Some(2));
        assert_eq!(t.totals(3, &|_| true), vec![2, 0, 1]);
        assert_eq!(t.totals(3, &|g| g == "a"), vec![1, 0, 1]);
        t.shift("b", Some(0), None);
        assert_eq!(t.totals(3, &|g| g == "b"), vec![0, 0, 0]);
        let resets = t.resets();
        t.reset(HashMap::from([("c".to_string(), vec![0, 4])]));
        assert_eq!(t.totals(3, &|_| true), vec![0, 4, 0]);
        assert_eq!(t.resets(), resets + 1);
    }
}
