//! `fieldsync load`: writes a backlog of queued ops straight into a stopped service's store,
//! through the same enqueue path as a sync push (one journal record per batch). It stands for
//! a long OFSC outage, so start-up, memory and `fieldsync check` can be measured against a
//! journal of a million ops (bench/README.md). With `--applied` it writes history instead
//! (every op applied, as after a replay), for measuring history retention.

use crate::auth::Role;
use crate::domain::lifecycle::DeviceStatus;
use crate::store::{Storage, StoreError};
use crate::write::outbox::{self, Enqueued, NewOp, OpKind, OpState, Submitter};
use chrono::Utc;

/// What to write.
#[derive(Debug, Clone)]
pub struct Backlog {
    pub ops: u64,
    /// Ops per journal record (a sync batch).
    pub batch: u64,
    /// Routes the ops spread over, round robin (`load-0000`...), on `date`.
    pub routes: u64,
    pub date: String,
    /// Each op is left applied (one more record per op, as the replayer writes): history
    /// rather than a backlog, for measuring retention.
    pub applied: bool,
    /// With `applied`: the ops were made and applied this many days ago (history already
    /// past a retention).
    pub age_days: u32,
}

/// What was written.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Loaded {
    pub ops: u64,
    pub records: u64,
}

/// Writes the backlog: en route / stop travel toggles on one activity per route, each batch
/// one journal record, flushed and checkpointed as it goes.
pub fn load(store: &dyn Storage, b: &Backlog) -> Result<Loaded, StoreError> {
    let batch = b.batch.max(1);
    let routes = b.routes.max(1);
    let mut done = Loaded { ops: 0, records: 0 };
    while done.ops < b.ops {
        let n = batch.min(b.ops - done.ops);
        let now = Utc::now().fixed_offset();
        let ops = (done.ops..done.ops + n)
            .map(|i| {
                let route = i % routes;
                let status = if (i / routes).is_multiple_of(2) {
                    DeviceStatus::Enroute
                } else {
                    DeviceStatus::Pending
                };
                NewOp {
                    resource_id: format!("load-{route:04}"),
                    date: b.date.clone(),
                    activity_id: Some(1_000_000 + route as i64),
                    kind: OpKind::Status {
                        status,
                        ofsc_action: Some(
                            if status == DeviceStatus::Enroute {
                                "enroute"
                            } else {
                                "stop_travel"
                            }
                            .into(),
                        ),
                        location: None,
                        notes: None,
                        reason: None,
                    },
                    time: now,
                    zone: Some("America/New_York".into()),
                    captured_at: None,
                }
            })
            .collect();
        let who = Submitter {
            user_id: "load".into(),
            username: "load".into(),
            role: Role::Technician,
            device_id: "load".into(),
            request_id: format!("load-{}", done.records),
            client_request_id: None,
            action: "sync.push",
            idempotency_key: format!("load-{}-{}", b.date, done.records),
            request_sha256: String::new(),
            device_seq: Some(done.records + 1),
            stage: None,
        };
        match outbox::enqueue(
            store,
            &who,
            ops,
            |ops| serde_json::json!({"accepted": ops.len()}),
        )? {
            Enqueued::Accepted { ops, .. } if b.applied => {
                let then = Utc::now() - chrono::Duration::days(i64::from(b.age_days));
                for mut op in ops {
                    op.state = OpState::Applied;
                    op.applied_at = Some(then);
                    if b.age_days > 0 {
                        (op.created_at, op.updated_at) = (then, then);
                    }
                    outbox::save_op(store, &op, true)?;
                }
            }
            Enqueued::Accepted { .. } => {}
            // Loaded before under the same keys: the ops are there already.
            Enqueued::Replayed { .. } | Enqueued::KeyReused => {}
        }
        done.ops += n;
        done.records += 1;
        // As the service's checkpoint thread would: a crash leaves the same bounded tail.
        if store.unchecked() >= crate::store::checkpointer::DUE_KEYS {
            store.checkpoint()?;
        }
    }
    store.checkpoint()?;
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SledStore;

    #[test]
    fn a_backlog_is_queued_ops_in_one_record_per_batch_and_checks_clean() {
        let store = SledStore::temporary().unwrap();
        let backlog = Backlog {
            ops: 250,
            batch: 100,
            routes: 7,
            date: "2026-12-02".into(),
            applied: false,
            age_days: 0,
        };
        let done = load(&store, &backlog).unwrap();
        assert_eq!(
            done,
            Loaded {
                ops: 250,
                records: 3
            }
        );
        assert_eq!(store.journal().last_seq(), 3);
        let queued = outbox::counts_by_state(&store, &|_| true)
            .into_iter()
            .find(|(s, _)| *s == OpState::Queued)
            .map(|(_, n)| n);
        assert_eq!(queued, Some(250));
        assert_eq!(store.unchecked(), 0, "checkpointed");
        assert!(outbox::check(&store).unwrap().is_clean());
        // Loading again under the same keys adds nothing.
        load(&store, &backlog).unwrap();
        assert_eq!(store.journal().last_seq(), 3);
    }
}
