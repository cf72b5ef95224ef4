//! Tests of the journal: one record per append, recovery, quarantine, compaction, check.

use super::*;
use crate::store::tally::tests::{DEAD, QUEUED};
use crate::store::Faults;
use crate::store::{Class, Counts, Shift, SledStore, StorageExt, TxExt};

const A: Tree = Tree("test_a");
const B: Tree = Tree("test_b");

fn put_two(store: &dyn Storage, n: u64) -> Option<u64> {
    store
        .append("test.put", Publish::default(), &|tx| {
            tx.put(A, &n.to_be_bytes(), &n)?;
            tx.put(B, &n.to_be_bytes(), &format!("b{n}"))
        })
        .unwrap()
}

fn open(dir: &std::path::Path) -> SledStore {
    SledStore::reopen(dir).unwrap()
}

/// Records 1 and 2, a checkpoint between them; record 2 is durable in the journal, its index
/// changes only in memory: the process dies before the next checkpoint. Answers how many
/// index keys were waiting for it.
fn crash_past_a_checkpoint(dir: &std::path::Path) -> usize {
    let store = open(dir);
    put_two(&store, 1);
    store.checkpoint().unwrap();
    put_two(&store, 2);
    store.flush_blocking().unwrap();
    store.unchecked()
}

/// sled itself on a directory a store of this process just let go of (see
/// [`SledStore::reopen`] for why it retries).
fn raw_open(dir: &std::path::Path) -> sled::Db {
    for _ in 0..100 {
        match sled::open(dir) {
            Ok(db) => return db,
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    }
    sled::open(dir).unwrap()
}

#[test]
fn one_append_is_one_record_whose_effects_land_in_the_indexes() {
    let store = SledStore::temporary().unwrap();
    let seq = put_two(&store, 7).unwrap();
    let records = read_range(&store, 0, 10).unwrap();
    assert_eq!(records.len(), 1);
    let entry = records[0].1.as_ref().unwrap();
    assert_eq!((entry.seq, entry.what.as_str()), (seq, "test.put"));
    assert_eq!(entry.effects.len(), 2);
    assert_eq!(store.get::<u64>(A, &7u64.to_be_bytes()).unwrap(), Some(7));
    assert_eq!(
        store.get::<String>(B, &7u64.to_be_bytes()).unwrap(),
        Some("b7".into())
    );
}

#[test]
fn a_closure_that_writes_nothing_or_fails_appends_nothing() {
    let store = SledStore::temporary().unwrap();
    let none = store
        .append("test.none", Publish::default(), &|_| Ok(()))
        .unwrap();
    assert_eq!(none, None);
    let failed = store.append("test.fail", Publish::default(), &|tx| {
        tx.put(A, b"k", &1u64)?;
        Err(StoreError::Aborted("refused".into()))
    });
    assert!(failed.is_err());
    assert!(read_range(&store, 0, 10).unwrap().is_empty());
    assert_eq!(store.get::<u64>(A, b"k").unwrap(), None);
}

#[test]
fn reads_inside_a_record_see_its_own_earlier_writes() {
    let store = SledStore::temporary().unwrap();
    store.put(A, b"k", &1u64).unwrap();
    store
        .append("test.rw", Publish::default(), &|tx| {
            assert_eq!(tx.get::<u64>(A, b"k")?, Some(1));
            tx.put(A, b"k", &2u64)?;
            assert_eq!(tx.get::<u64>(A, b"k")?, Some(2));
            tx.remove(A, b"k")?;
            assert_eq!(tx.get::<u64>(A, b"k")?, None);
            tx.put(A, b"k", &3u64)
        })
        .unwrap();
    assert_eq!(store.get::<u64>(A, b"k").unwrap(), Some(3));
}

#[test]
fn raises_keep_the_highest_value_whatever_their_order() {
    let store = SledStore::temporary().unwrap();
    for n in [5u64, 3, 9, 1] {
        store
            .append("test.raise", Publish::default(), &|tx| {
                tx.raise(A, b"seq", &n)
            })
            .unwrap();
    }
    assert_eq!(store.get::<u64>(A, b"seq").unwrap(), Some(9));
    let eight_utc = chrono::DateTime::parse_from_rfc3339("2026-12-02T10:00:00+02:00").unwrap();
    let half_past_eight =
        chrono::DateTime::parse_from_rfc3339("2026-12-02T08:30:00+00:00").unwrap();
    for t in [half_past_eight, eight_utc] {
        store
            .append("test.raise", Publish::default(), &|tx| {
                tx.raise(A, b"t", &t)
            })
            .unwrap();
    }
    // 08:30Z is after 10:00+02 (08:00Z), though its text sorts first: instants compare.
    let kept: chrono::DateTime<chrono::FixedOffset> = store.get(A, b"t").unwrap().unwrap();
    assert_eq!(kept, half_past_eight);
}

#[test]
fn a_crash_between_the_append_and_its_indexes_is_repaired_on_open() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(crash_past_a_checkpoint(dir.path()), 2);
    let store = open(dir.path());
    assert_eq!(store.recovery().reapplied, 1);
    assert_eq!(store.get::<u64>(A, &2u64.to_be_bytes()).unwrap(), Some(2));
    assert_eq!(store.journal().last_seq(), 2);
    assert_eq!(store.unchecked(), 0, "opening checkpoints what it applied");
    assert_eq!(
        put_two(&store, 3),
        Some(3),
        "sequence goes on after the last record"
    );
    assert!(check(&store, &[A, B]).unwrap().is_clean());
}

#[test]
fn a_corrupt_or_torn_tail_is_quarantined_and_the_store_still_opens() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        put_two(&store, 1);
        store.checkpoint().unwrap();
        put_two(&store, 2);
        put_two(&store, 3);
        // Record 2 flipped, record 3 cut short.
        let mut two = store.get_raw(JOURNAL, &part_key(2, 0)).unwrap().unwrap();
        let last = two.len() - 1;
        two[last] ^= 0xff;
        store.insert_raw(JOURNAL, &part_key(2, 0), two).unwrap();
        let three = store.get_raw(JOURNAL, &part_key(3, 0)).unwrap().unwrap();
        store
            .insert_raw(JOURNAL, &part_key(3, 0), three[..10].to_vec())
            .unwrap();
        store.flush_without_watermark();
    }
    let store = open(dir.path());
    assert_eq!(store.recovery().quarantined, 2);
    let q = store.quarantined(10).unwrap();
    assert_eq!(q.len(), 2);
    assert!(q.iter().all(|q| q.tree == "journal" && q.raw_hex.is_some()));
    assert_eq!(store.get::<u64>(A, &2u64.to_be_bytes()).unwrap(), None);
    assert_eq!(store.get::<u64>(A, &1u64.to_be_bytes()).unwrap(), Some(1));
    // Nothing corrupt is left in the journal, and new records do not reuse the sequence.
    assert!(check(&store, &[A, B]).unwrap().corrupt.is_empty());
    assert_eq!(put_two(&store, 4), Some(4));
}

#[test]
fn check_finds_an_index_that_disagrees_with_the_journal() {
    let store = SledStore::temporary().unwrap();
    put_two(&store, 1);
    put_two(&store, 2);
    store
        .append("test.remove", Publish::default(), &|tx| {
            tx.remove(A, &1u64.to_be_bytes())
        })
        .unwrap();
    // A large value is compared by its seal, a small one whole.
    let long = "x".repeat(500);
    store
        .append("test.long", Publish::default(), &|tx| {
            tx.put(B, b"long", &long)
        })
        .unwrap();
    let clean = check(&store, &[A, B]).unwrap();
    assert!(clean.is_clean(), "{clean:?}");
    assert_eq!(clean.records, 4);
    store.put(B, b"long", &"y".repeat(500)).unwrap();
    let report = check(&store, &[A, B]).unwrap();
    assert_eq!(report.differences.len(), 1, "{report:?}");
    store.put(B, b"long", &long).unwrap();
    store.put(A, &2u64.to_be_bytes(), &99u64).unwrap();
    store.put(A, &1u64.to_be_bytes(), &1u64).unwrap();
    store.remove(B, &2u64.to_be_bytes()).unwrap();
    let report = check(&store, &[A, B]).unwrap();
    let found: Vec<&str> = report.differences.iter().map(|d| d.2.as_str()).collect();
    assert_eq!(found.len(), 3, "{report:?}");
    assert!(found.contains(&"value differs from the journal's"));
    assert!(found.contains(&"missing from the index"));
    assert!(found.contains(&"in the index, but the journal removed it"));
    // Past the tree's last stored key too.
    store.remove(B, b"long").unwrap();
    let report = check(&store, &[A, B]).unwrap();
    assert_eq!(report.differences.len(), 4, "{report:?}");
    assert_eq!(report.keys_checked, 5);
}

#[test]
fn compaction_removes_settled_records_from_the_front_and_stops_at_the_first_open_one() {
    let store = SledStore::temporary().unwrap();
    for n in 1..=5 {
        put_two(&store, n);
    }
    store.checkpoint().unwrap();
    // Record 3 is still needed.
    let settled = |e: &Entry| Ok(e.seq != 3);
    let removed = compact(&store, store.journal(), &settled, 100).unwrap();
    assert_eq!(removed, 2);
    let left: Vec<u64> = read_range(&store, 0, 10)
        .unwrap()
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(left, vec![3, 4, 5]);
    assert!(check(&store, &[A, B]).unwrap().is_clean());
    // Nothing past what a flush published is compacted, nor past the last checkpoint:
    // until then, the record is how its index changes survive a crash.
    let left = |store: &SledStore| -> Vec<u64> {
        read_range(store, 0, 10)
            .unwrap()
            .into_iter()
            .map(|(s, _)| s)
            .collect()
    };
    let all = |_: &Entry| Ok(true);
    put_two(&store, 6);
    compact(&store, store.journal(), &all, 100).unwrap();
    assert_eq!(left(&store), vec![6], "not yet flushed");
    store.flush_blocking().unwrap();
    compact(&store, store.journal(), &all, 100).unwrap();
    assert_eq!(left(&store), vec![6], "flushed, not yet checkpointed");
    store.checkpoint().unwrap();
    compact(&store, store.journal(), &all, 100).unwrap();
    assert!(left(&store).is_empty());
}

#[test]
fn what_a_record_uses_is_published_only_after_a_flush_covers_it() {
    let store = SledStore::temporary().unwrap();
    let ticket = store.ticket().unwrap();
    let id = ticket.id;
    store
        .append(
            "test.op",
            Publish {
                tickets: vec![ticket],
                ops: vec![42],
            },
            &|tx| tx.put(A, b"op", &42u64),
        )
        .unwrap();
    assert!(store.watermark() < id, "change id visible before the flush");
    assert!(!store.journal().op_published(42));
    assert!(store.journal().has_unpublished());
    store.flush_blocking().unwrap();
    assert!(store.watermark() >= id);
    assert!(store.journal().op_published(42));
    assert!(!store.journal().has_unpublished());
}

#[test]
fn a_claimed_key_waits_for_its_holder_and_then_is_free() {
    let claims = Claims::default();
    let held = claims
        .claim(vec![b"k".to_vec()], std::time::Duration::ZERO)
        .unwrap();
    let busy = claims.claim(
        vec![b"x".to_vec(), b"k".to_vec()],
        std::time::Duration::from_millis(5),
    );
    assert!(matches!(busy, Err(StoreError::Busy)));
    // All or nothing: "x" was not left claimed by the failed attempt.
    assert!(claims
        .claim(vec![b"x".to_vec()], std::time::Duration::ZERO)
        .is_ok());
    drop(held);
    assert!(claims
        .claim(vec![b"k".to_vec()], std::time::Duration::ZERO)
        .is_ok());
}

#[test]
fn a_data_directory_from_before_the_journal_is_converted_and_one_from_the_future_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        // The old layout: index trees and META, no journal, no layout marker.
        let db = sled::open(dir.path()).unwrap();
        let meta = db.open_tree("meta").unwrap();
        meta.insert("schema", crate::store::record::seal(&1u64).unwrap())
            .unwrap();
        db.open_tree("test_a")
            .unwrap()
            .insert(b"old", crate::store::record::seal(&5u64).unwrap())
            .unwrap();
        db.flush().unwrap();
    }
    {
        let store = open(dir.path());
        assert_eq!(store.recovery().converted, Some(Converted::PreJournal));
        assert!(!store.tally().known(), "its ops were never counted");
        assert_eq!(store.get::<u64>(A, b"old").unwrap(), Some(5));
        assert_eq!(put_two(&store, 1), Some(1));
        store.put(Tree::META, LAYOUT_KEY, &(LAYOUT + 1)).unwrap();
        store.flush_blocking().unwrap();
    }
    match SledStore::reopen(dir.path()) {
        Err(StoreError::Layout(msg)) => assert!(msg.contains("layout"), "{msg}"),
        other => panic!("expected a layout refusal, got {other:?}"),
    }
}

#[test]
fn records_survive_encoding_byte_for_byte() {
    let entry = Entry {
        seq: 9,
        what: "write.status".into(),
        at_ms: 1_700_000_000_000,
        ops: vec![1, 2],
        effects: vec![
            Effect::Put {
                tree: A,
                key: vec![0, 1],
                value: vec![2, 3],
            },
            Effect::Remove {
                tree: B,
                key: vec![4],
            },
            Effect::Raise {
                tree: A,
                key: vec![5],
                value: vec![6],
            },
        ],
    };
    let parts: Vec<(Vec<u8>, Vec<u8>)> = encode(&entry)
        .unwrap()
        .into_iter()
        .enumerate()
        .map(|(i, v)| (part_key(9, i as u16).to_vec(), v))
        .collect();
    assert_eq!(parts.len(), 1);
    assert_eq!(decode(9, &parts).unwrap(), entry);
    let mut bad = parts.clone();
    bad[0].1[40] ^= 1;
    assert!(decode(9, &bad).unwrap_err().is_corrupt());
}

/// A record bigger than a part (a sync batch) is stored in parts, read back whole, and a
/// record whose last parts a crash cut off reads as torn: quarantined, never half-applied.
#[test]
fn a_large_record_is_stored_in_parts_and_a_torn_one_is_never_half_applied() {
    let dir = tempfile::tempdir().unwrap();
    let big = |tx: &dyn Tx, tag: u64| -> Result<(), StoreError> {
        for n in 0..200u64 {
            tx.put(A, &(tag * 1000 + n).to_be_bytes(), &"x".repeat(300))?;
        }
        Ok(())
    };
    {
        let store = open(dir.path());
        store
            .append("test.big", Publish::default(), &|tx| big(tx, 1))
            .unwrap();
        let parts = store
            .scan_raw(JOURNAL, &1u64.to_be_bytes(), None, 1000)
            .unwrap();
        assert!(parts.len() > 10, "{} parts", parts.len());
        assert!(parts.iter().all(|(_, v)| v.len() < 8 * 1024));
        let read = read_range(&store, 0, 10).unwrap();
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].1.as_ref().unwrap().effects.len(), 200);
        store.checkpoint().unwrap();
        store
            .append("test.big", Publish::default(), &|tx| big(tx, 2))
            .unwrap();
        // As if the process died while the second record's parts were going in: its last
        // part never made it, and none of its effects were applied.
        let parts = store
            .scan_raw(JOURNAL, &2u64.to_be_bytes(), None, 1000)
            .unwrap();
        store.remove(JOURNAL, &parts.last().unwrap().0).unwrap();
        store.flush_without_watermark();
    }
    let store = open(dir.path());
    assert_eq!(store.recovery().quarantined, 1);
    assert!(store
        .quarantined(1000)
        .unwrap()
        .iter()
        .all(|q| q.tree == "journal"));
    assert!(store
        .scan_raw(JOURNAL, &2u64.to_be_bytes(), None, 10)
        .unwrap()
        .is_empty());
    assert_eq!(
        store.get::<String>(A, &2000u64.to_be_bytes()).unwrap(),
        None
    );
    assert!(store
        .get::<String>(A, &1199u64.to_be_bytes())
        .unwrap()
        .is_some());
    assert!(check(&store, &[A]).unwrap().is_clean());
}

/// One record writing op `id` and moving it between the counts' classes.
fn move_op(store: &dyn Storage, id: u64, from: Option<Class>, to: Option<Class>) {
    store
        .append("test.move", Publish::default(), &|tx| {
            tx.put(A, &id.to_be_bytes(), &id)?;
            tx.count(Shift {
                group: "r1".into(),
                id,
                from,
                to,
            });
            Ok(())
        })
        .unwrap();
}

#[test]
fn counts_come_back_from_the_checkpoint_and_the_records_past_it_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let live = {
        let store = open(dir.path());
        assert!(
            store.tally().known(),
            "a new directory has nothing to count"
        );
        move_op(&store, 1, None, Some(QUEUED));
        move_op(&store, 2, None, Some(QUEUED));
        store.checkpoint().unwrap();
        move_op(&store, 1, Some(QUEUED), Some(DEAD));
        move_op(&store, 3, None, Some(QUEUED));
        // Durable in the journal, past the checkpoint: the process dies here.
        store.flush_blocking().unwrap();
        store.tally().snapshot()
    };
    assert_eq!(live.counts["r1"], vec![2, 0, 0, 1]);
    let store = open(dir.path());
    assert_eq!(store.recovery().reapplied, 2);
    assert!(store.tally().known());
    assert_eq!(store.tally().snapshot(), live);

    // A record that drops an op unread leaves them unknown, across a crash too, until a
    // rebuild, which the next checkpoint persists.
    store
        .append("test.drop", Publish::default(), &|tx| {
            tx.remove(A, &2u64.to_be_bytes())?;
            tx.recount();
            Ok(())
        })
        .unwrap();
    assert!(!store.tally().known());
    store.flush_blocking().unwrap();
    drop(store);
    let store = open(dir.path());
    assert!(!store.tally().known());
    store.tally().reset(Counts::default());
    store.checkpoint().unwrap();
    drop(store);
    assert!(open(dir.path()).tally().known());
}

#[test]
fn a_layout_2_directory_keeps_its_watermark_and_has_its_counts_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    crash_past_a_checkpoint(dir.path());
    {
        // Back to how layout 2 kept it: the watermark alone (record 1), no counts.
        let db = raw_open(dir.path());
        let meta = db.open_tree("meta").unwrap();
        let seal = |n: u64| crate::store::record::seal(&n).unwrap();
        meta.insert(LAYOUT_KEY, seal(2)).unwrap();
        meta.insert(APPLIED_KEY, seal(1)).unwrap();
        meta.remove(CHECKPOINT_KEY).unwrap();
        db.flush().unwrap();
    }
    let store = open(dir.path());
    assert_eq!(store.recovery().converted, Some(Converted::Layout2));
    assert_eq!(store.recovery().reapplied, 1, "from its watermark on");
    assert!(!store.tally().known());
    assert_eq!(
        store.get::<u64>(Tree::META, LAYOUT_KEY).unwrap(),
        Some(LAYOUT)
    );
    assert!(store.get_raw(Tree::META, APPLIED_KEY).unwrap().is_none());
    assert!(check(&store, &[A, B]).unwrap().is_clean());
}

#[test]
fn an_unreadable_checkpoint_means_the_journal_applied_again_and_the_counts_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        move_op(&store, 1, None, Some(QUEUED));
        store.checkpoint().unwrap();
        put_two(&store, 2);
        store
            .insert_raw(Tree::META, CHECKPOINT_KEY, b"not a sealed record".to_vec())
            .unwrap();
        store.flush_blocking().unwrap();
    }
    let store = open(dir.path());
    assert_eq!(store.recovery().reapplied, 2, "from the compaction point");
    assert!(!store.tally().known());
    assert_eq!(store.quarantined(10).unwrap().len(), 1);
    assert!(check(&store, &[A, B]).unwrap().is_clean());
}

#[test]
fn the_checkpoint_value_does_not_grow_with_the_marked_ops() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    // An outage's worth of dead ops, in one record.
    store
        .append("test.dead", Publish::default(), &|tx| {
            for id in 1..=3000u64 {
                tx.count(Shift {
                    group: "r1".into(),
                    id,
                    from: None,
                    to: Some(DEAD),
                });
            }
            Ok(())
        })
        .unwrap();
    store.checkpoint().unwrap();
    move_op(&store, 5000, None, Some(QUEUED));
    store.checkpoint().unwrap();
    let value = store.get_raw(Tree::META, CHECKPOINT_KEY).unwrap().unwrap();
    assert!(
        value.len() < 512,
        "{} bytes: the marks are not rewritten at every checkpoint",
        value.len()
    );
    assert_eq!(
        store
            .scan_raw(Tree::MARKS, b"", None, usize::MAX)
            .unwrap()
            .len(),
        3000
    );
    drop(store);
    let store = open(dir.path());
    assert!(store.tally().known());
    assert_eq!(store.tally().marked(&[3], 0).len(), 3000);
    assert_eq!(store.tally().totals(4, &|_| true), vec![1, 0, 0, 3000]);
}

#[test]
fn marks_saved_past_the_watermark_before_a_crash_come_back_right() {
    let dir = tempfile::tempdir().unwrap();
    let live = {
        let store = open(dir.path());
        move_op(&store, 1, None, Some(DEAD));
        move_op(&store, 2, None, Some(DEAD));
        store.checkpoint().unwrap();
        move_op(&store, 1, Some(DEAD), Some(QUEUED));
        move_op(&store, 3, None, Some(DEAD));
        store.flush_blocking().unwrap();
        // A checkpoint saved the marks as of record 4, then died before its value: the
        // watermark stays at 2.
        let at = store.tally().at(4).unwrap();
        store.save_marks(&at).unwrap();
        store.flush_blocking().unwrap();
        store.tally().snapshot()
    };
    let store = open(dir.path());
    assert_eq!(store.recovery().reapplied, 2);
    assert_eq!(store.tally().snapshot(), live);
    assert_eq!(store.tally().marked(&[3], 0), vec![2, 3]);
}

#[test]
fn a_layout_3_directory_moves_its_marks_to_their_tree() {
    let dir = tempfile::tempdir().unwrap();
    let live = {
        let store = open(dir.path());
        move_op(&store, 1, None, Some(DEAD));
        move_op(&store, 2, None, Some(QUEUED));
        store.checkpoint().unwrap();
        store.tally().snapshot()
    };
    {
        // Back to how layout 3 kept them: in the checkpoint's value, no tree.
        let db = raw_open(dir.path());
        let meta = db.open_tree("meta").unwrap();
        meta.insert(LAYOUT_KEY, crate::store::record::seal(&3u64).unwrap())
            .unwrap();
        let value = Checkpointed {
            watermark: 2,
            counts: Some(live.clone()),
        };
        meta.insert(CHECKPOINT_KEY, crate::store::record::seal(&value).unwrap())
            .unwrap();
        db.drop_tree("marks").unwrap();
        db.flush().unwrap();
    }
    let store = open(dir.path());
    assert_eq!(
        store.get::<u64>(Tree::META, LAYOUT_KEY).unwrap(),
        Some(LAYOUT)
    );
    assert_eq!(store.tally().snapshot(), live);
    let saved: Checkpointed = store.get(Tree::META, CHECKPOINT_KEY).unwrap().unwrap();
    assert!(
        saved.counts.unwrap().marks.is_empty(),
        "moved out of the value"
    );
    drop(store);
    let store = open(dir.path());
    assert_eq!(store.tally().snapshot(), live, "from the tree now");
}

/// A mark that cannot be read (a bad value, or a key that is no op id) is quarantined, and
/// the counts are left for a rebuild, never half-read.
fn a_bad_mark_is_quarantined(key: &[u8], value: Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        move_op(&store, 1, None, Some(DEAD));
        store.checkpoint().unwrap();
    }
    {
        let db = raw_open(dir.path());
        let marks = db.open_tree("marks").unwrap();
        marks.insert(key, value).unwrap();
        db.flush().unwrap();
    }
    let store = open(dir.path());
    assert!(
        !store.tally().known(),
        "left for a rebuild, never half-read"
    );
    let quarantined = store.quarantined(10).unwrap();
    assert!(
        quarantined
            .iter()
            .any(|q| q.tree == "marks" && q.key_hex == hex::encode(key)),
        "{quarantined:?}"
    );
    assert!(store.get_raw(Tree::MARKS, key).unwrap().is_none());
}

#[test]
fn an_unreadable_mark_is_quarantined_and_the_counts_rebuilt() {
    a_bad_mark_is_quarantined(&1u64.to_be_bytes(), b"\x01garbage".to_vec());
}

#[test]
fn a_mark_whose_key_is_no_op_id_is_quarantined_and_the_counts_rebuilt() {
    let sealed = crate::store::record::seal(&DEAD).unwrap();
    a_bad_mark_is_quarantined(b"r1/7", sealed);
}

#[test]
fn marks_a_failed_checkpoint_left_half_saved_are_saved_by_the_next_or_rebuilt_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let live = {
        let store = open(dir.path());
        for id in 1..=10 {
            move_op(&store, id, None, Some(DEAD));
        }
        store.flush_blocking().unwrap();
        Faults::fail_after(&store.faults.marks, 4);
        assert!(store.checkpoint().is_err());
        assert_eq!(
            store
                .scan_raw(Tree::MARKS, b"", None, usize::MAX)
                .unwrap()
                .len(),
            4,
            "four saved, then the failure"
        );
        assert_eq!(
            store.journal().checkpointed_watermark(),
            0,
            "the watermark did not move"
        );
        store.tally().snapshot()
    };
    // A crash before any checkpoint succeeds: the records past the watermark bring the rest.
    let store = open(dir.path());
    assert_eq!(store.recovery().reapplied, 10);
    assert_eq!(store.tally().snapshot(), live);
    assert_eq!(store.tally().marked(&[3], 0), (1..=10).collect::<Vec<_>>());
    drop(store);
    let store = open(dir.path());
    move_op(&store, 11, None, Some(DEAD));
    Faults::fail_after(&store.faults.marks, 0);
    assert!(store.checkpoint().is_err());
    // The next checkpoint saves what the failed one did not.
    Faults::fail_after(&store.faults.marks, usize::MAX);
    store.checkpoint().unwrap();
    let saved = store
        .scan_raw(Tree::MARKS, b"", None, usize::MAX)
        .unwrap()
        .len();
    assert_eq!(saved, 11);
    drop(store);
    let store = open(dir.path());
    assert_eq!(store.recovery().reapplied, 0, "the checkpoint covered all");
    assert_eq!(store.tally().marked(&[3], 0), (1..=11).collect::<Vec<_>>());
    assert!(check(&store, &[A]).unwrap().is_clean());
}

#[test]
fn a_record_that_fails_part_way_leaves_no_part_to_the_next_record() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let big = |tx: &dyn Tx| {
        for n in 0..40u64 {
            tx.put(A, &n.to_be_bytes(), &"x".repeat(400))?;
        }
        Ok(())
    };
    // Two parts are written, the third fails; the next record has one part only.
    store.faults.fail_insert_into(JOURNAL, 2);
    assert!(store.append("test.big", Publish::default(), &big).is_err());
    let seq = put_two(&store, 1).unwrap();
    let slots = read_range(&store, 0, 10).unwrap();
    assert_eq!(slots.len(), 1, "{slots:?}");
    assert_eq!(slots[0].0, seq);
    assert!(slots[0].1.is_ok(), "{:?}", slots[0].1);
    store.flush_blocking().unwrap();
    drop(store);
    let store = open(dir.path());
    assert_eq!(store.recovery().quarantined, 0);
    assert!(check(&store, &[A, B]).unwrap().is_clean());
}

#[test]
fn a_failed_record_whose_parts_cannot_be_removed_gives_up_its_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let big = |tx: &dyn Tx| {
        for n in 0..40u64 {
            tx.put(A, &n.to_be_bytes(), &"x".repeat(400))?;
        }
        Ok(())
    };
    store.faults.fail_insert_into(JOURNAL, 2);
    Faults::fail_after(&store.faults.remove, 0);
    assert!(store.append("test.big", Publish::default(), &big).is_err());
    Faults::fail_after(&store.faults.remove, usize::MAX);
    let seq = put_two(&store, 1).unwrap();
    assert_eq!(seq, 2, "the torn record's sequence is not reused");
    let slots = read_range(&store, 0, 10).unwrap();
    assert_eq!(slots.len(), 2, "{slots:?}");
    assert!(
        slots[0].1.is_err(),
        "the leftover reads as torn, never as data"
    );
    assert!(slots[1].1.is_ok(), "{:?}", slots[1].1);
    store.flush_blocking().unwrap();
    drop(store);
    // Past the watermark, the torn record is quarantined at the next start; the answered
    // record after it is whole.
    let store = open(dir.path());
    assert_eq!(store.recovery().quarantined, 1);
    assert_eq!(store.get::<u64>(A, &1u64.to_be_bytes()).unwrap(), Some(1));
}
