//! Live counts of records by group and class (the outbox counts ops by resource and state),
//! so that queue depth and metrics are a lookup, not a scan of every record ever written; and
//! the ids of the few records in classes an operator lists (dead, rejected, blocked ops).
//!
//! The counts are a projection of the journal like any index: a record that moves an op
//! carries the move as a [`Shift`] effect, applied here with the record's other effects.
//! A checkpoint persists the counts *as of its watermark* `W` beside `W` itself, so a start
//! (after a crash too) begins from them and applies the shifts of the records past `W`,
//! instead of reading every op (with a million ops: seconds, and ~100 MiB of sled pages
//! that stay in memory, bench/README.md).
//!
//! Why counts at `W` can be had without a second tally: every applied record's shifts are
//! both in the live counts and, until a checkpoint covers them, in `pending` by sequence. So
//! the counts at `W` are the live ones with the pending shifts past `W` undone, newest first.
//! That holds after a rebuild (a recount) too, which is why a rebuild needs no rebase.
//!
//! The marks (listed records by id) are not in that value: a checkpoint writes only the
//! marks that moved since the last one it saved, as of `W`, into their own tree
//! ([`Tree::MARKS`](super::Tree::MARKS)), so its cost follows the change, not the number
//! of dead ops an outage left. A mark written past `W` before a crash is harmless: a mark
//! is a record's absolute class, so applying the records past `W` again, in order, ends
//! at the same marks.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// A class a record can be in: its index, and whether its records are listed by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Class {
    pub index: u8,
    pub listed: bool,
}

/// One record of `group` moving from `from` to `to` (`None`: it did not exist before, or no
/// longer exists).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shift {
    pub group: String,
    pub id: u64,
    pub from: Option<Class>,
    pub to: Option<Class>,
}

/// What a shift does to its record's mark.
enum Mark {
    Set(usize),
    Clear,
    Keep,
}

impl Shift {
    fn mark(&self) -> Mark {
        match (self.from, self.to) {
            (_, Some(to)) if to.listed => Mark::Set(usize::from(to.index)),
            (Some(from), _) if from.listed => Mark::Clear,
            _ => Mark::Keep,
        }
    }

    fn undone(&self) -> Shift {
        Shift {
            group: self.group.clone(),
            id: self.id,
            from: self.to,
            to: self.from,
        }
    }
}

/// Counts by group (a row of per-class counts) and the listed records' classes by id.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    pub counts: HashMap<String, Vec<u64>>,
    pub marks: BTreeMap<u64, usize>,
}

impl Counts {
    fn apply(&mut self, s: &Shift) {
        if s.from == s.to {
            return;
        }
        self.apply_row(s);
        match s.mark() {
            Mark::Set(class) => {
                self.marks.insert(s.id, class);
            }
            Mark::Clear => {
                self.marks.remove(&s.id);
            }
            Mark::Keep => {}
        }
    }

    /// The shift's move between its group's row of counts (for counts at a watermark,
    /// whose marks are worked out apart).
    fn apply_row(&mut self, s: &Shift) {
        if s.from == s.to {
            return;
        }
        let row = self.counts.entry(s.group.clone()).or_default();
        if let Some(from) = s.from {
            if let Some(n) = row.get_mut(usize::from(from.index)) {
                *n = n.saturating_sub(1);
            }
        }
        if let Some(to) = s.to {
            let to = usize::from(to.index);
            if row.len() <= to {
                row.resize(to + 1, 0);
            }
            row[to] += 1;
        }
    }

    /// Rows of zeros dropped and trailing zeros trimmed, so two countings of the same
    /// records compare equal however they were reached.
    pub fn normalized(mut self) -> Counts {
        self.counts.retain(|_, row| {
            while row.last() == Some(&0) {
                row.pop();
            }
            !row.is_empty()
        });
        self
    }
}

#[derive(Debug, Default)]
struct Inner {
    now: Counts,
    /// Whether `now` is exact. False from a change no shift describes (a record dropped
    /// unread, a data directory without persisted counts) until the next rebuild.
    known: bool,
    /// The shifts of applied records a checkpoint does not cover yet, by record sequence.
    pending: BTreeMap<u64, Vec<Shift>>,
    /// Records whose mark moved at or below a checkpoint's watermark, until a checkpoint
    /// saved their mark ([`Tally::saved`]).
    unsaved: BTreeSet<u64>,
    /// Every mark is to be saved (after a reset), and any other mark saved before dropped.
    unsaved_all: bool,
}

/// What a checkpoint at a watermark persists of the tally.
#[derive(Debug, Clone, PartialEq)]
pub struct AtWatermark {
    /// The rows as of the watermark (no marks: they go to their own tree).
    pub counts: Counts,
    /// The marks that moved since the last saved checkpoint, as of the watermark (`None`:
    /// no longer marked).
    pub marks: BTreeMap<u64, Option<usize>>,
    /// `marks` is every mark: any other saved mark is to be dropped.
    pub all: bool,
    /// The reset count `all` was read at.
    resets: u64,
}

#[derive(Debug, Default)]
pub struct Tally {
    inner: Mutex<Inner>,
    resets: AtomicU64,
}

impl Tally {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies journal record `seq`'s shifts; `recount` says it made a change no shift
    /// describes, so the counts are unknown until a rebuild.
    pub fn apply(&self, seq: u64, shifts: &[Shift], recount: bool) {
        let mut g = self.lock();
        for s in shifts {
            g.now.apply(s);
        }
        if !shifts.is_empty() {
            g.pending
                .entry(seq)
                .or_default()
                .extend(shifts.iter().cloned());
        }
        if recount {
            g.known = false;
        }
    }

    /// The counts as of journal record `watermark`, for a checkpoint at it to persist (`None`
    /// while they are unknown), with the marks to save. The shifts at or below it are let go:
    /// they are covered (their records' marks stay due until [`Tally::saved`]).
    pub fn at(&self, watermark: u64) -> Option<AtWatermark> {
        let mut g = self.lock();
        let past = g.pending.split_off(&watermark.saturating_add(1));
        let covered = std::mem::replace(&mut g.pending, past);
        let moved: Vec<u64> = covered
            .values()
            .flatten()
            .filter(|s| !matches!(s.mark(), Mark::Keep))
            .map(|s| s.id)
            .collect();
        g.unsaved.extend(moved);
        if !g.known {
            return None;
        }
        let mut rows = Counts {
            counts: g.now.counts.clone(),
            marks: BTreeMap::new(),
        };
        let all = g.unsaved_all;
        let mut marks: BTreeMap<u64, Option<usize>> = if all {
            g.now.marks.iter().map(|(id, c)| (*id, Some(*c))).collect()
        } else {
            g.unsaved
                .iter()
                .map(|id| (*id, g.now.marks.get(id).copied()))
                .collect()
        };
        for s in g.pending.values().rev().flat_map(|v| v.iter().rev()) {
            let s = s.undone();
            rows.apply_row(&s);
            match (s.mark(), marks.get_mut(&s.id)) {
                (Mark::Set(class), Some(m)) => *m = Some(class),
                (Mark::Set(class), None) if all => {
                    marks.insert(s.id, Some(class));
                }
                (Mark::Clear, Some(m)) => *m = None,
                _ => {}
            }
        }
        if all {
            marks.retain(|_, m| m.is_some());
        }
        Some(AtWatermark {
            counts: rows.normalized(),
            marks,
            all,
            resets: self.resets.load(Ordering::Acquire),
        })
    }

    /// A checkpoint saved `at`'s marks: they are no longer due (unless they moved again).
    pub fn saved(&self, at: &AtWatermark) {
        let mut g = self.lock();
        if at.all && self.resets.load(Ordering::Acquire) == at.resets {
            g.unsaved_all = false;
        }
        for id in at.marks.keys() {
            g.unsaved.remove(id);
        }
    }

    /// Per-class totals over the groups `keep` accepts, `classes` wide.
    pub fn totals(&self, classes: usize, keep: &dyn Fn(&str) -> bool) -> Vec<u64> {
        let g = self.lock();
        let mut out = vec![0; classes];
        for row in g.now.counts.iter().filter(|(k, _)| keep(k)).map(|(_, r)| r) {
            for (total, n) in out.iter_mut().zip(row) {
                *total += n;
            }
        }
        out
    }

    /// The ids after `after`, in order, of the marked records in one of `classes`.
    pub fn marked(&self, classes: &[usize], after: u64) -> Vec<u64> {
        let g = self.lock();
        g.now
            .marks
            .range(after.saturating_add(1)..)
            .filter(|(_, c)| classes.contains(c))
            .map(|(id, _)| *id)
            .collect()
    }

    /// Replaces every count and mark: a rebuild from a full scan, or counts a layout-3
    /// checkpoint persisted with its marks. Either way they are exact, and every mark is
    /// due at the next checkpoint.
    pub fn reset(&self, counts: Counts) {
        self.replace(counts, true);
    }

    fn replace(&self, counts: Counts, marks_due: bool) {
        let mut g = self.lock();
        g.now = counts;
        g.known = true;
        g.unsaved_all = marks_due;
        self.resets.fetch_add(1, Ordering::AcqRel);
        drop(g);
    }

    /// Like [`Tally::reset`], with counts whose marks a checkpoint saved already (read back
    /// at open): the next checkpoint writes only the marks that move, not all of them.
    pub fn restore(&self, counts: Counts) {
        self.replace(counts, false);
    }

    /// Whether the counts are exact (else a rebuild is due).
    pub fn known(&self) -> bool {
        self.lock().known
    }

    /// Every count and mark, as they stand.
    pub fn snapshot(&self) -> Counts {
        self.lock().now.clone()
    }

    /// How many times the counts were replaced: a rebuild follows a change no shift could
    /// describe (a record dropped unread), which readers of derived state may need to see.
    pub fn resets(&self) -> u64 {
        self.resets.load(Ordering::Acquire)
    }
}

#[cfg(test)]
#[path = "tally_tests.rs"]
pub(crate) mod tests;
