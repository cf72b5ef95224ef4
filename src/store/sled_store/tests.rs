//! Unit tests for `sled_store`.

use super::Faults;
use super::*;
use crate::store::StorageExt;

#[test]
fn corrupted_value_is_reported_and_quarantined_never_skipped() {
    let store = SledStore::temporary().unwrap();
    let tree = Tree("ops-test");
    store
        .put(tree, b"op-1", &serde_json::json!({"status": "queued"}))
        .unwrap();
    let mut raw = store.get_raw(tree, b"op-1").unwrap().unwrap();
    let last = raw.len() - 2;
    raw[last] ^= 0x01;
    store.insert_raw(tree, b"op-1", raw.clone()).unwrap();

    let err = store.get::<serde_json::Value>(tree, b"op-1").unwrap_err();
    assert!(err.is_corrupt(), "{err}");

    store.quarantine(tree, b"op-1", &err.to_string()).unwrap();
    assert!(store.get_raw(tree, b"op-1").unwrap().is_none());
    let q = store.quarantined(10).unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].tree, "ops-test");
    assert_eq!(q[0].key_hex, hex::encode(b"op-1"));
    assert_eq!(q[0].raw_hex.as_deref(), Some(hex::encode(&raw).as_str()));
    assert!(q[0].reason.contains("checksum"));
}

#[test]
fn compare_and_swap_replaces_only_the_expected_value() {
    let store = SledStore::temporary().unwrap();
    let t = Tree("cas");
    assert!(store
        .compare_and_swap_raw(t, b"k", None, Some(b"1".to_vec()))
        .unwrap());
    assert!(!store
        .compare_and_swap_raw(t, b"k", None, Some(b"2".to_vec()))
        .unwrap());
    assert!(store
        .compare_and_swap_raw(t, b"k", Some(b"1"), Some(b"3".to_vec()))
        .unwrap());
    assert_eq!(store.get_raw(t, b"k").unwrap(), Some(b"3".to_vec()));
    let stored = store
        .update::<u32>(t, b"n", &mut |cur| Ok(Some(cur.unwrap_or(0) + 1)))
        .unwrap();
    assert_eq!(stored, Some(1));
    let left = store.update::<u32>(t, b"n", &mut |_| Ok(None)).unwrap();
    assert_eq!(left, Some(1), "None leaves the value and answers it");
}

#[test]
fn scan_respects_prefix_start_and_limit() {
    let store = SledStore::temporary().unwrap();
    let t = Tree("scan");
    for i in 0..5u64 {
        let k = crate::store::keys::KeyBuf::new().str("r1").u64(i).finish();
        store.put(t, &k, &i).unwrap();
    }
    store
        .put(
            t,
            &crate::store::keys::KeyBuf::new().str("r2").u64(0).finish(),
            &9u64,
        )
        .unwrap();
    let prefix = crate::store::keys::KeyBuf::new().str("r1").finish();
    assert_eq!(store.scan_raw(t, &prefix, None, 100).unwrap().len(), 5);
    let start = crate::store::keys::KeyBuf::new().str("r1").u64(3).finish();
    assert_eq!(
        store.scan_raw(t, &prefix, Some(&start), 100).unwrap().len(),
        2
    );
    assert_eq!(store.scan_raw(t, &prefix, None, 2).unwrap().len(), 2);
}

#[test]
fn data_survives_reopen_after_flush() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SledStore::reopen(dir.path()).unwrap();
        store.put(Tree::META, b"k", &"v").unwrap();
        store.flush_blocking().unwrap();
    }
    let store = SledStore::reopen(dir.path()).unwrap();
    assert_eq!(
        store.get::<String>(Tree::META, b"k").unwrap().as_deref(),
        Some("v")
    );
}

#[test]
fn scan_pages_visits_every_record_once_in_order_and_stops_when_asked() {
    let store = SledStore::temporary().unwrap();
    let t = Tree("page-scan");
    // Keys where one is a prefix of the next: the page boundary must not skip or repeat.
    let keys: Vec<Vec<u8>> = vec![
        b"a".to_vec(),
        b"a\0".to_vec(),
        b"a\0\0".to_vec(),
        b"b".to_vec(),
        b"c".to_vec(),
    ];
    for k in &keys {
        store.put(t, k, &1u8).unwrap();
    }
    let mut seen = Vec::new();
    crate::store::scan_pages(&store, t, b"", 2, &mut |k, _| {
        seen.push(k.to_vec());
        Ok(true)
    })
    .unwrap();
    assert_eq!(seen, keys);
    let mut first_three = Vec::new();
    crate::store::scan_pages(&store, t, b"a\0", 1, &mut |k, _| {
        first_three.push(k.to_vec());
        Ok(first_three.len() < 3)
    })
    .unwrap();
    assert_eq!(first_three, keys[1..4].to_vec());
}

#[test]
fn reverse_scan_reads_down_from_below_the_cursor() {
    let store = SledStore::temporary().unwrap();
    let t = Tree("rev-scan");
    for k in [b"a", b"b", b"c", b"d"] {
        store.put(t, k, &1u8).unwrap();
    }
    let keys =
        |pairs: crate::store::RawPairs| pairs.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
    assert_eq!(
        keys(store.scan_raw_rev(t, None, 3).unwrap()),
        [b"d".to_vec(), b"c".to_vec(), b"b".to_vec()]
    );
    assert_eq!(
        keys(store.scan_raw_rev(t, Some(b"c"), 10).unwrap()),
        [b"b".to_vec(), b"a".to_vec()]
    );
    assert!(store.scan_raw_rev(t, Some(b"a"), 10).unwrap().is_empty());
}

/// Every way a reader sees a tree, as text: gets, a prefix scan, a bounded scan, a reverse
/// scan.
fn views(store: &SledStore, tree: Tree) -> Vec<String> {
    let show = |pairs: crate::store::RawPairs| -> String {
        pairs
            .iter()
            .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
            .collect::<Vec<_>>()
            .join(",")
    };
    let gets = ["k1", "k2", "k3", "k4", "x1"]
        .iter()
        .map(|k| format!("{k}={:?}", store.get::<u64>(tree, k.as_bytes()).unwrap()))
        .collect::<Vec<_>>()
        .join(" ");
    vec![
        gets,
        show(store.scan_raw(tree, b"k", None, 100).unwrap()),
        show(store.scan_raw(tree, b"k", Some(b"k2"), 2).unwrap()),
        show(store.scan_raw_rev(tree, Some(b"x"), 2).unwrap()),
        show(store.scan_raw_rev(tree, None, 100).unwrap()),
    ]
}

#[test]
fn readers_see_the_same_before_and_after_a_checkpoint() {
    use crate::store::journal::Publish;
    use crate::store::TxExt;
    let store = SledStore::temporary().unwrap();
    let tree = Tree("overlay-test");
    // In the tree already: k1, k2, x1. Then one record replaces k2, removes k1, adds k3, k4.
    for (k, n) in [("k1", 1u64), ("k2", 2), ("x1", 9)] {
        store.put(tree, k.as_bytes(), &n).unwrap();
    }
    store
        .append("test", Publish::default(), &|tx| {
            tx.put(tree, b"k2", &20u64)?;
            tx.remove(tree, b"k1")?;
            tx.put(tree, b"k3", &3u64)?;
            tx.put(tree, b"k4", &4u64)
        })
        .unwrap();
    assert_eq!(store.unchecked(), 4);
    let before = views(&store, tree);
    assert_eq!(
        before,
        [
            "k1=None k2=Some(20) k3=Some(3) k4=Some(4) x1=Some(9)",
            "k2,k3,k4",
            "k2,k3",
            "k4,k3",
            "x1,k4,k3,k2",
        ]
    );
    assert_eq!(store.checkpoint().unwrap(), 4);
    assert_eq!(store.unchecked(), 0);
    assert_eq!(views(&store, tree), before);
    // A plain write over a key the overlay holds wins, and leaves the overlay.
    store
        .append("test", Publish::default(), &|tx| {
            tx.put(tree, b"k3", &30u64)
        })
        .unwrap();
    store.put(tree, b"k3", &31u64).unwrap();
    assert_eq!(store.unchecked(), 0);
    assert_eq!(store.get::<u64>(tree, b"k3").unwrap(), Some(31));
}

#[test]
fn a_checkpoint_that_dies_part_way_is_made_whole_by_the_next_start_counts_included() {
    use crate::store::journal::Publish;
    use crate::store::{Class, Shift, TxExt};
    let dir = tempfile::tempdir().unwrap();
    let tree = Tree("partial-test");
    let class = |index: u8| Class {
        index,
        listed: index == 3,
    };
    let write = |store: &SledStore, key: &'static [u8], n: u64, from, to| {
        store
            .append("test", Publish::default(), &|tx| {
                tx.put(tree, key, &n)?;
                tx.count(Shift {
                    group: "r1".into(),
                    id: u64::from(key[1]),
                    from,
                    to,
                });
                Ok(())
            })
            .unwrap();
    };
    let (values, counts) = {
        let store = SledStore::reopen(dir.path()).unwrap();
        write(&store, b"k1", 1, None, Some(class(0)));
        store.checkpoint().unwrap();
        // Past the watermark: op 1 moves on, op 2 arrives.
        write(&store, b"k1", 2, Some(class(0)), Some(class(3)));
        write(&store, b"k2", 1, None, Some(class(0)));
        store.flush_blocking().unwrap();
        // A checkpoint writes the newest values into the tree, then the process dies before
        // it persists its watermark: the tree holds values of records past the watermark.
        for (t, shard, keys) in store.overlay.listing() {
            let sled_tree = store.tree(t).unwrap();
            for k in keys {
                match overlay::read(&shard).get(&k).cloned().flatten() {
                    Some(v) => sled_tree.insert(k, v).unwrap(),
                    None => sled_tree.remove(k).unwrap(),
                };
            }
        }
        store.db.flush().unwrap();
        let values: Vec<Option<u64>> = [b"k1", b"k2"]
            .iter()
            .map(|k| store.get::<u64>(tree, *k).unwrap())
            .collect();
        (values, store.tally().snapshot())
    };
    assert_eq!(values, [Some(2), Some(1)]);
    assert_eq!(counts.counts["r1"], vec![1, 0, 0, 1]);
    let store = SledStore::reopen(dir.path()).unwrap();
    assert_eq!(store.recovery().reapplied, 2);
    let after: Vec<Option<u64>> = [b"k1", b"k2"]
        .iter()
        .map(|k| store.get::<u64>(tree, *k).unwrap())
        .collect();
    assert_eq!(after, values);
    assert!(store.tally().known());
    assert_eq!(store.tally().snapshot().normalized(), counts.normalized());
    let report = crate::store::journal::check(&store, &[tree]).unwrap();
    assert!(report.is_clean(), "{report:?}");
}

#[test]
fn a_failed_checkpoint_loses_nothing_and_the_next_one_finishes_it() {
    use crate::store::journal::Publish;
    use crate::store::{Class, Shift, TxExt};
    let dir = tempfile::tempdir().unwrap();
    let tree = Tree("failing-test");
    let queued = Class {
        index: 0,
        listed: false,
    };
    let store = SledStore::reopen(dir.path()).unwrap();
    // Three chunks' worth of keys, over three records, each record counting one op.
    for r in 0..3u64 {
        store
            .append("test", Publish::default(), &|tx| {
                for i in 0..CHECKPOINT_CHUNK as u64 {
                    let n = r * 1000 + i;
                    tx.put(tree, &n.to_be_bytes(), &n)?;
                }
                tx.count(Shift {
                    group: "r1".into(),
                    id: r,
                    from: None,
                    to: Some(queued),
                });
                Ok(())
            })
            .unwrap();
    }
    store.flush_blocking().unwrap();
    let keys = 3 * CHECKPOINT_CHUNK;
    let before = store.scan_raw(tree, b"", None, usize::MAX).unwrap();
    assert_eq!(before.len(), keys);

    Faults::fail_after(&store.faults.checkpoint, 1);
    assert!(store.checkpoint().is_err());
    // One chunk is in the tree, the rest waits in memory; readers see all of it, and the
    // watermark did not move.
    assert_eq!(store.unchecked(), keys - CHECKPOINT_CHUNK);
    assert_eq!(store.scan_raw(tree, b"", None, usize::MAX).unwrap(), before);
    assert_eq!(store.journal().checkpointed_watermark(), 0);
    assert_eq!(store.tally().totals(1, &|_| true), vec![3]);

    Faults::fail_after(&store.faults.checkpoint, usize::MAX);
    assert_eq!(store.checkpoint().unwrap(), keys - CHECKPOINT_CHUNK);
    assert_eq!(store.unchecked(), 0);
    assert_eq!(store.journal().checkpointed_watermark(), 3);
    drop(store);
    let store = SledStore::reopen(dir.path()).unwrap();
    assert_eq!(
        store.recovery().reapplied,
        0,
        "the second checkpoint covered all"
    );
    assert_eq!(store.scan_raw(tree, b"", None, usize::MAX).unwrap(), before);
    assert_eq!(store.tally().totals(1, &|_| true), vec![3]);
}

#[test]
fn ids_issued_before_a_restart_are_under_the_watermark_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let issued = {
        let store = SledStore::reopen(dir.path()).unwrap();
        let ticket = store.ticket().unwrap();
        let id = ticket.id;
        drop(ticket);
        store.flush_blocking().unwrap();
        id
    };
    let store = SledStore::reopen(dir.path()).unwrap();
    // Every id issued before is committed or abandoned: a pull from a cursor at it is a
    // page, not a reset (a reset skips the op outcomes the device has not pulled yet).
    assert!(
        store.watermark() >= issued,
        "{} < {issued}",
        store.watermark()
    );
    let next = store.ticket().unwrap();
    assert!(next.id > store.watermark().min(issued));
}

#[test]
fn a_rewrite_copies_every_tree_and_ids_go_on_past_the_old_ones() {
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join("copy");
    let tree = Tree("rewrite-test");
    // sled moves its id generator a block ahead at every start: an old store's ids are
    // ahead of a fresh copy's for as many starts as it had.
    for _ in 0..4 {
        drop(SledStore::reopen(&dir.path().join("data")).unwrap());
    }
    let last = {
        let store = SledStore::reopen(&dir.path().join("data")).unwrap();
        for i in 0..50u64 {
            store
                .put(tree, &i.to_be_bytes(), &format!("value {i}"))
                .unwrap();
        }
        for i in 0..20u64 {
            store.remove(tree, &i.to_be_bytes()).unwrap();
        }
        let last = (0..5).map(|_| store.ticket().unwrap().id).max().unwrap();
        store.rewrite_into(&to).unwrap();
        assert!(
            store.rewrite_into(&to).is_err(),
            "never into a directory that exists"
        );
        last
    };
    let copy = SledStore::reopen(&to).unwrap();
    let kept: Vec<String> = copy
        .scan_raw(tree, b"", None, 100)
        .unwrap()
        .iter()
        .map(|(k, _)| copy.get::<String>(tree, k).unwrap().unwrap())
        .collect();
    assert_eq!(kept.len(), 30);
    assert_eq!(kept[0], "value 20");
    assert!(copy.ticket().unwrap().id > last, "ids never repeat");
    assert!(copy.next_id().unwrap() > last);
    drop(copy);
    // The offset holds at every later start too.
    let copy = SledStore::reopen(&to).unwrap();
    assert!(copy.ticket().unwrap().id > last);
}

#[test]
fn a_rewrite_that_fails_half_way_leaves_no_copy_and_the_store_whole() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let to = dir.path().join("copy");
    let tree = Tree("rewrite-test");
    let store = SledStore::reopen(&data).unwrap();
    for i in 0..200u64 {
        store.put(tree, &i.to_be_bytes(), &i).unwrap();
    }
    let before = store.scan_raw(tree, b"", None, usize::MAX).unwrap();
    // What a rewrite killed half-way would have left beside the target.
    let partial = dir.path().join(".copy.partial");
    std::fs::create_dir(&partial).unwrap();
    std::fs::write(partial.join("conf"), b"torn").unwrap();

    Faults::fail_after(&store.faults.copy, 100);
    let err = store.rewrite_into(&to).unwrap_err();
    assert!(
        err.to_string().contains("injected rewrite failure"),
        "{err}"
    );
    assert!(!to.exists(), "no copy that could be taken for a whole one");
    assert!(!partial.exists(), "the half-made copy is removed");
    assert_eq!(store.scan_raw(tree, b"", None, usize::MAX).unwrap(), before);

    Faults::fail_after(&store.faults.copy, usize::MAX);
    store.rewrite_into(&to).unwrap();
    assert!(!partial.exists());
    drop(store);
    let copy = SledStore::reopen(&to).unwrap();
    assert_eq!(copy.scan_raw(tree, b"", None, usize::MAX).unwrap(), before);
    assert!(crate::store::journal::check(&copy, &[tree])
        .unwrap()
        .is_clean());
}
