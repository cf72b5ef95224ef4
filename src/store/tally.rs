//! Live counts of records by group and class, kept in memory by the code that writes those
//! records (the outbox counts ops by resource and state), so that queue depth and metrics
//! are a lookup, not a scan of every record ever written. Restored at start from what a clean
//! stop saved, else rebuilt by a scan (`write::outbox::restore_or_recount`). It also
//! keeps the ids of the few records in classes an operator lists (the outbox's dead, rejected
//! and blocked ops), so those listings read them, not the whole history.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct Tally {
    counts: Mutex<HashMap<String, Vec<u64>>>,
    /// Record id → class, for records in a listed class only.
    marks: Mutex<BTreeMap<u64, usize>>,
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

    /// Record `id` is now in listed class `class`, or (`None`) in none.
    pub fn mark(&self, id: u64, class: Option<usize>) {
        let mut marks = self.marks.lock().unwrap_or_else(|p| p.into_inner());
        match class {
            Some(c) => marks.insert(id, c),
            None => marks.remove(&id),
        };
    }

    /// The ids after `after`, in order, of the marked records in one of `classes`.
    pub fn marked(&self, classes: &[usize], after: u64) -> Vec<u64> {
        let marks = self.marks.lock().unwrap_or_else(|p| p.into_inner());
        marks
            .range(after.saturating_add(1)..)
            .filter(|(_, c)| classes.contains(c))
            .map(|(id, _)| *id)
            .collect()
    }

    /// Replaces every count and mark (after a full scan).
    pub fn reset(&self, counts: HashMap<String, Vec<u64>>, marks: BTreeMap<u64, usize>) {
        *self.marks.lock().unwrap_or_else(|p| p.into_inner()) = marks;
        *self.counts.lock().unwrap_or_else(|p| p.into_inner()) = counts;
        self.resets.fetch_add(1, Ordering::AcqRel);
    }

    /// Every count and mark, as they stand (to save them at a clean stop).
    pub fn snapshot(&self) -> (HashMap<String, Vec<u64>>, BTreeMap<u64, usize>) {
        let counts = self
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let marks = self.marks.lock().unwrap_or_else(|p| p.into_inner()).clone();
        (counts, marks)
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
        t.reset(
            HashMap::from([("c".to_string(), vec![0, 4])]),
            BTreeMap::new(),
        );
        assert_eq!(t.totals(3, &|_| true), vec![0, 4, 0]);
        assert_eq!(t.resets(), resets + 1);
    }

    #[test]
    fn marks_list_records_of_the_asked_classes_in_id_order() {
        let t = Tally::default();
        for (id, class) in [(9, 1), (3, 2), (5, 1), (7, 3)] {
            t.mark(id, Some(class));
        }
        assert_eq!(t.marked(&[1, 2], 0), vec![3, 5, 9]);
        assert_eq!(t.marked(&[1], 5), vec![9]);
        t.mark(5, Some(2));
        t.mark(9, None);
        assert_eq!(t.marked(&[1], 0), Vec::<u64>::new());
        assert_eq!(t.marked(&[2, 3], 0), vec![3, 5, 7]);
        t.reset(HashMap::new(), BTreeMap::from([(4, 1)]));
        assert_eq!(t.marked(&[1, 2, 3], 0), vec![4]);
    }
}
