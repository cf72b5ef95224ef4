//! Unit tests for `tally`.

use super::*;

pub(crate) const QUEUED: Class = Class {
    index: 0,
    listed: false,
};
const APPLIED: Class = Class {
    index: 2,
    listed: false,
};
pub(crate) const DEAD: Class = Class {
    index: 3,
    listed: true,
};

fn shift(group: &str, id: u64, from: Option<Class>, to: Option<Class>) -> Shift {
    Shift {
        group: group.into(),
        id,
        from,
        to,
    }
}

/// A checkpoint's view as one `Counts` (only whole while every mark is due, as after a reset).
fn whole(at: Option<AtWatermark>) -> Option<Counts> {
    at.map(|a| {
        assert!(a.all, "every mark is listed");
        Counts {
            counts: a.counts.counts,
            marks: a
                .marks
                .into_iter()
                .filter_map(|(id, m)| Some((id, m?)))
                .collect(),
        }
    })
}

fn known() -> Tally {
    let t = Tally::default();
    t.reset(Counts::default());
    t
}

#[test]
fn shifts_move_one_record_between_classes_per_group() {
    let t = known();
    t.apply(1, &[shift("a", 1, None, Some(QUEUED))], false);
    t.apply(2, &[shift("a", 2, None, Some(QUEUED))], false);
    t.apply(3, &[shift("b", 3, None, Some(QUEUED))], false);
    t.apply(4, &[shift("a", 1, Some(QUEUED), Some(APPLIED))], false);
    t.apply(5, &[shift("a", 1, Some(APPLIED), Some(APPLIED))], false);
    assert_eq!(t.totals(3, &|_| true), vec![2, 0, 1]);
    assert_eq!(t.totals(3, &|g| g == "a"), vec![1, 0, 1]);
    t.apply(6, &[shift("b", 3, Some(QUEUED), None)], false);
    assert_eq!(t.totals(3, &|g| g == "b"), vec![0, 0, 0]);
    let resets = t.resets();
    t.reset(Counts {
        counts: HashMap::from([("c".to_string(), vec![0, 4])]),
        marks: BTreeMap::new(),
    });
    assert_eq!(t.totals(3, &|_| true), vec![0, 4, 0]);
    assert_eq!(t.resets(), resets + 1);
}

#[test]
fn listed_classes_are_kept_by_id_and_listed_in_id_order() {
    let t = known();
    for (seq, id) in [(1, 9), (2, 3), (3, 5)] {
        t.apply(seq, &[shift("a", id, Some(QUEUED), Some(DEAD))], false);
    }
    assert_eq!(t.marked(&[3], 0), vec![3, 5, 9]);
    assert_eq!(t.marked(&[3], 5), vec![9]);
    t.apply(4, &[shift("a", 5, Some(DEAD), Some(QUEUED))], false);
    t.apply(5, &[shift("a", 9, Some(DEAD), None)], false);
    assert_eq!(t.marked(&[3], 0), vec![3]);
    assert_eq!(t.marked(&[0, 1, 2], 0), Vec::<u64>::new());
}

#[test]
fn counts_at_a_watermark_leave_out_the_records_past_it() {
    let t = known();
    t.apply(1, &[shift("a", 1, None, Some(QUEUED))], false);
    t.apply(2, &[shift("a", 2, None, Some(QUEUED))], false);
    let at_two = t.snapshot().normalized();
    // Past the watermark: a new op, and an op moving twice (undone newest first).
    t.apply(3, &[shift("a", 3, None, Some(QUEUED))], false);
    t.apply(4, &[shift("a", 1, Some(QUEUED), Some(DEAD))], false);
    t.apply(5, &[shift("a", 1, Some(DEAD), Some(APPLIED))], false);
    let live = t.snapshot().normalized();
    assert_eq!(whole(t.at(2)), Some(at_two.clone()));
    // What a checkpoint covered is let go, the rest still counts as past it.
    assert_eq!(whole(t.at(2)), Some(at_two));
    assert_eq!(whole(t.at(5)), Some(live.clone()));
    assert_eq!(t.snapshot().normalized(), live);
}

#[test]
fn counts_are_unknown_from_an_unshifted_change_until_a_rebuild() {
    let t = known();
    t.apply(1, &[shift("a", 1, None, Some(DEAD))], false);
    t.apply(2, &[], true);
    assert!(!t.known());
    assert_eq!(t.at(2), None);
    // The rebuild counts what the records so far left; a later record moves on from it.
    t.reset(Counts {
        counts: HashMap::from([("a".to_string(), vec![0, 0, 0, 1])]),
        marks: BTreeMap::from([(1, 3)]),
    });
    t.apply(3, &[shift("a", 1, Some(DEAD), Some(QUEUED))], false);
    assert_eq!(
        whole(t.at(2)),
        Some(Counts {
            counts: HashMap::from([("a".to_string(), vec![0, 0, 0, 1])]),
            marks: BTreeMap::from([(1, 3)]),
        })
    );
    assert_eq!(t.totals(4, &|_| true), vec![1, 0, 0, 0]);
}

#[test]
fn a_fresh_tally_is_unknown_and_normalizing_drops_zero_rows() {
    assert!(!Tally::default().known());
    let counts = Counts {
        counts: HashMap::from([
            ("a".to_string(), vec![0, 2, 0, 0]),
            ("b".to_string(), vec![0, 0]),
        ]),
        marks: BTreeMap::new(),
    };
    assert_eq!(
        counts.normalized().counts,
        HashMap::from([("a".to_string(), vec![0, 2])])
    );
}

#[test]
fn a_checkpoint_saves_only_the_marks_that_moved_as_of_its_watermark() {
    let t = known();
    for id in 1..=3 {
        t.apply(id, &[shift("a", id, Some(QUEUED), Some(DEAD))], false);
    }
    let first = t.at(3).unwrap();
    assert!(first.all, "after a reset every mark is saved");
    assert_eq!(
        first.marks,
        BTreeMap::from([(1, Some(3)), (2, Some(3)), (3, Some(3))])
    );
    t.saved(&first);
    let nothing = t.at(3).unwrap();
    assert!(!nothing.all);
    assert!(nothing.marks.is_empty(), "nothing moved since");

    t.apply(4, &[shift("a", 2, Some(DEAD), Some(QUEUED))], false);
    t.apply(5, &[shift("a", 7, None, Some(DEAD))], false);
    // Past the watermark: op 1 leaves, op 7 moves on.
    t.apply(
        6,
        &[
            shift("a", 1, Some(DEAD), None),
            shift("a", 7, Some(DEAD), Some(QUEUED)),
        ],
        false,
    );
    let at5 = t.at(5).unwrap();
    assert!(!at5.all);
    assert_eq!(at5.marks, BTreeMap::from([(2, None), (7, Some(3))]));
    assert_eq!(at5.counts.counts["a"], vec![1, 0, 0, 3], "rows as of 5 too");
    // That checkpoint failed (never saved): the next one still carries its marks.
    let at6 = t.at(6).unwrap();
    assert_eq!(at6.marks, BTreeMap::from([(1, None), (2, None), (7, None)]));
    t.saved(&at6);
    assert!(t.at(6).unwrap().marks.is_empty());
    assert_eq!(t.marked(&[3], 0), vec![3]);

    // A reset while a checkpoint is under way leaves every mark due for the next one.
    t.reset(t.snapshot());
    let during = t.at(6).unwrap();
    assert!(during.all);
    t.reset(t.snapshot());
    t.saved(&during);
    assert!(t.at(6).unwrap().all);
}

#[test]
fn counts_restored_at_open_leave_no_mark_due_and_a_reset_leaves_all() {
    let saved = Counts {
        counts: HashMap::from([("a".to_string(), vec![0, 0, 0, 2])]),
        marks: BTreeMap::from([(1, 3), (2, 3)]),
    };
    let t = Tally::default();
    t.restore(saved.clone());
    assert!(t.known());
    let at = t.at(0).unwrap();
    assert!(
        !at.all && at.marks.is_empty(),
        "already in their tree: {at:?}"
    );
    assert_eq!(t.marked(&[3], 0), vec![1, 2]);
    t.reset(saved);
    assert!(t.at(0).unwrap().all, "a rebuild's marks are all written");
}
