//! Unit tests for webhooks: signatures, fan-out, delivery bookkeeping.

use super::*;

#[test]
fn extreme_timestamps_are_refused_without_overflow() {
    let body = b"{}";
    let now = 1_700_000_000;
    for (t, now) in [
        (i64::MIN, now),
        (i64::MAX, now),
        (i64::MIN, i64::MAX),
        (i64::MAX, i64::MIN),
        (i64::MIN + 1, 0),
    ] {
        let h = signature("s3cret", t, body).unwrap();
        assert!(!verify("s3cret", &h, body, now, 300), "t={t} now={now}");
    }
}

#[test]
fn signatures_verify_and_any_change_breaks_them() {
    let h = signature("s3cret", 1_700_000_000, b"{\"a\":1}").unwrap();
    assert!(h.starts_with("t=1700000000,v1="));
    assert!(verify("s3cret", &h, b"{\"a\":1}", 1_700_000_010, 300));
    assert!(!verify("s3cret", &h, b"{\"a\":2}", 1_700_000_010, 300));
    assert!(!verify("other", &h, b"{\"a\":1}", 1_700_000_010, 300));
    assert!(!verify("s3cret", &h, b"{\"a\":1}", 1_700_009_999, 300));
    let forged = h.replace("t=1700000000", "t=1700000001");
    assert!(!verify("s3cret", &forged, b"{\"a\":1}", 1_700_000_010, 300));
    assert!(!verify("s3cret", "garbage", b"", 0, 300));
}

#[test]
fn only_old_delivered_deliveries_are_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::store::SledStore::open(dir.path()).unwrap();
    let now = Utc::now();
    for (seq, state, at) in [
        (1, DeliveryState::Delivered, now - chrono::Duration::days(8)),
        (2, DeliveryState::Delivered, now),
        (3, DeliveryState::Failed, now - chrono::Duration::days(8)),
    ] {
        let d = Delivery {
            id: delivery_id(seq),
            seq,
            event_id: "evt".into(),
            event_type: "op.applied".into(),
            url: "http://x".into(),
            body: "{}".into(),
            state,
            attempts: 1,
            next_at: at,
            last_status: Some(200),
            last_error: None,
            created_at: at,
            delivered_at: (state == DeliveryState::Delivered).then_some(at),
        };
        store.put(DELIVERIES, &seq_key(seq), &d).unwrap();
    }
    let gone = prune_delivered(&store, now - chrono::Duration::days(7)).unwrap();
    assert_eq!(gone, 1);
    let (left, _) = list(&store, None, None, 10).unwrap();
    let ids: Vec<u64> = left.iter().map(|d| d.seq).collect();
    assert_eq!(ids, [3, 2]);
    // A corrupt one is quarantined and the listing goes on past it.
    crate::store::corrupt(&store, DELIVERIES, &seq_key(3));
    let (left, _) = list(&store, None, None, 10).unwrap();
    assert_eq!(left.iter().map(|d| d.seq).collect::<Vec<_>>(), [2]);
    assert_eq!(store.quarantined(10).unwrap().len(), 1);
}

#[test]
fn delivery_ids_round_trip() {
    assert_eq!(delivery_seq(&delivery_id(77)), Some(77));
    assert_eq!(delivery_seq("dlv_zz"), None);
}

#[test]
fn deliveries_list_newest_first_across_pages_from_the_cursor() -> Result<(), StoreError> {
    let store = crate::store::SledStore::temporary()?;
    let now = Utc::now();
    // More than a page, every third one failed.
    for seq in 1..=600u64 {
        let state = if seq % 3 == 0 {
            DeliveryState::Failed
        } else {
            DeliveryState::Delivered
        };
        let d = Delivery {
            id: format!("d{seq}"),
            seq,
            event_id: format!("e{seq}"),
            event_type: "op.applied".into(),
            url: "http://receiver.test/hook".into(),
            body: "{}".into(),
            state,
            attempts: 1,
            next_at: now,
            last_status: None,
            last_error: None,
            created_at: now,
            delivered_at: None,
        };
        store.put(DELIVERIES, &seq_key(seq), &d)?;
    }
    let seqs = |l: &(Vec<Delivery>, bool)| l.0.iter().map(|d| d.seq).collect::<Vec<_>>();
    let newest = list(&store, None, None, 3)?;
    assert_eq!((seqs(&newest), newest.1), (vec![600, 599, 598], true));
    let failed = list(&store, Some(DeliveryState::Failed), Some(10), 5)?;
    assert_eq!((seqs(&failed), failed.1), (vec![9, 6, 3], false));
    // Past a page boundary of the reverse scan (256 records).
    let deep = list(&store, Some(DeliveryState::Failed), None, 150)?;
    assert_eq!(deep.0.len(), 150);
    assert_eq!(deep.0.last().map(|d| d.seq), Some(153));
    assert!(deep.1);
    Ok(())
}
