//! Replaying supervisors' decisions: the approval properties (`PATCH /activities/{id}`) and
//! OFSC's `reopen` action.
//!
//! A property write is idempotent, so its read-back compares values. A reopen makes a new
//! record each time it is sent, so, like a part, it carries a durable baseline: how many
//! reopened copies of the activity the route held before the first send.

use super::Replayer;
use crate::ofsc::wire::Activity;
use crate::ofsc::OfscError;
use crate::write::outbox::{self, Op, OpKind};
use serde_json::{json, Value};

fn store_err(e: impl std::fmt::Display) -> OfscError {
    OfscError::Local(e.to_string())
}

/// Whether `copy` is a reopened record of `original`.
fn is_copy(copy: &Activity, original: &Activity) -> bool {
    copy.record_type.as_deref() == Some("reopened")
        && copy.activity_id != original.activity_id
        && copy.appt_number == original.appt_number
        && copy.activity_type == original.activity_type
        && copy.customer_name == original.customer_name
}

impl Replayer {
    pub(super) fn decided_activity(&self, op: &Op) -> Result<i64, OfscError> {
        let id = op
            .activity_id
            .ok_or_else(|| OfscError::Config("decision op without activity".into()))?;
        let id = outbox::resolve_activity(self.store.as_ref(), id).map_err(store_err)?;
        if id < 0 {
            return Err(OfscError::Config(
                "the activity this op is for was never created in OFSC".into(),
            ));
        }
        Ok(id)
    }

    /// How many reopened copies of the op's activity its route holds.
    pub(super) async fn reopened_copies(&self, op: &Op) -> Result<f64, OfscError> {
        let original = self.ofsc.get_activity(self.decided_activity(op)?).await?;
        let route = self.ofsc.get_route(&op.resource_id, &op.date).await?;
        Ok(route.items.iter().filter(|a| is_copy(a, &original)).count() as f64)
    }

    pub(super) async fn properties_applied(&self, op: &Op) -> Result<bool, OfscError> {
        let OpKind::SetProperties { properties } = &op.kind else {
            return Ok(false);
        };
        let a = self.ofsc.get_activity(self.decided_activity(op)?).await?;
        Ok(properties
            .iter()
            .all(|(k, v)| a.properties.get(k) == Some(v)))
    }

    pub(super) async fn send_properties(&self, op: &Op) -> Result<(), OfscError> {
        let OpKind::SetProperties { properties } = &op.kind else {
            return Ok(());
        };
        let a = self
            .ofsc
            .update_activity(
                self.decided_activity(op)?,
                Value::Object(properties.clone()),
            )
            .await?;
        self.cache_activity(&a)?;
        Ok(())
    }

    /// Sends `reopen`; returns the new activity's id.
    pub(super) async fn send_reopen(&self, op: &Op) -> Result<Option<i64>, OfscError> {
        let created = self
            .ofsc
            .activity_action(
                self.decided_activity(op)?,
                "reopen",
                json!({"setPositionInRoute": {"position": "last"}}),
            )
            .await?;
        self.cache_activity(&created)?;
        if let Some(id) = created.activity_id {
            let _ = self.cache.add_to_route(&op.resource_id, &op.date, id);
        }
        Ok(created.activity_id)
    }
}
