//! Replaying part entries through OFSC's inventory custom actions, exactly once.
//!
//! OFSC's inventory actions carry no idempotency key and a bulk install creates a new item,
//! so "did it land?" is answered by counting: before the first send the replayer records,
//! durably, how much of the type the activity holds in the action's target status (the
//! baseline). After an ambiguous failure it counts again; baseline + quantity means applied.

use super::Replayer;
use crate::domain::parts::{OfscPartAction, PlannedPart};
use crate::ofsc::wire::{Inventory, InventoryAction};
use crate::ofsc::OfscError;
use crate::write::outbox::{self, Op, OpKind};

const EPS: f64 = 1e-9;

fn list_of(action: OfscPartAction) -> &'static str {
    match action.target_status() {
        "installed" => "installedInventories",
        "deinstalled" => "deinstalledInventories",
        _ => "customerInventories",
    }
}

fn matches(i: &Inventory, part: &PlannedPart) -> bool {
    i.inventory_type == part.inventory_type
        && (part.serial_number.is_none() || i.serial_number == part.serial_number)
}

fn store_err(e: impl std::fmt::Display) -> OfscError {
    OfscError::Local(e.to_string())
}

impl Replayer {
    fn part_of(op: &Op) -> Result<&PlannedPart, OfscError> {
        match &op.kind {
            OpKind::Part { part } => Ok(part),
            _ => Err(OfscError::Config("not a part op".into())),
        }
    }

    /// OFSC's id of the op's activity; a job created on the device must exist in OFSC first.
    fn ofsc_activity(&self, op: &Op) -> Result<i64, OfscError> {
        let id = op
            .activity_id
            .ok_or_else(|| OfscError::Config("part op without activity".into()))?;
        let id = outbox::resolve_activity(self.store.as_ref(), id).map_err(store_err)?;
        if id < 0 {
            return Err(OfscError::Config(
                "the activity this op is for was never created in OFSC".into(),
            ));
        }
        Ok(id)
    }

    /// How much of the part's type the activity holds in the action's target status.
    async fn held(
        &self,
        activity: i64,
        part: &PlannedPart,
    ) -> Result<(f64, Vec<Inventory>), OfscError> {
        let items = self
            .ofsc
            .activity_inventories(activity, list_of(part.ofsc))
            .await?;
        let total = items
            .iter()
            .filter(|i| matches(i, part))
            .map(|i| i.quantity.unwrap_or(1.0))
            .sum();
        Ok((total, items))
    }

    /// Records the baseline of an op OFSC cannot de-duplicate (a part, a reopen) and makes it
    /// durable before the first send.
    pub(super) async fn ensure_baseline(&self, op: &mut Op) -> Result<(), OfscError> {
        if op.baseline.is_some() {
            return Ok(());
        }
        let now = match &op.kind {
            OpKind::Part { part } => self.held(self.ofsc_activity(op)?, part).await?.0,
            OpKind::Reopen => self.reopened_copies(op).await?,
            _ => return Ok(()),
        };
        op.baseline = Some(now);
        outbox::put_op(self.store.as_ref(), "op.baseline", op).map_err(store_err)?;
        self.commit.flush().await.map_err(store_err)?;
        Ok(())
    }

    /// After an ambiguous failure: `Some(item id)` when OFSC already shows the action.
    pub(super) async fn part_applied(&self, op: &Op) -> Result<Option<Option<i64>>, OfscError> {
        // Without a durable baseline the op was never sent.
        let Some(baseline) = op.baseline else {
            return Ok(None);
        };
        let part = Self::part_of(op)?;
        let (held, items) = self.held(self.ofsc_activity(op)?, part).await?;
        if held + EPS < baseline + part.quantity {
            return Ok(None);
        }
        Ok(Some(Self::moved_item(&items, part)))
    }

    /// The item the action left in its target status: the newest that fits.
    fn moved_item(items: &[Inventory], part: &PlannedPart) -> Option<i64> {
        items
            .iter()
            .filter(|i| matches(i, part) && (i.quantity.unwrap_or(1.0) - part.quantity).abs() < EPS)
            .filter_map(|i| i.inventory_id)
            .max()
    }

    /// The item to act on: recorded at acceptance, the undone entry's result, or found by
    /// type and serial.
    async fn subject(&self, op: &Op, activity: i64, part: &PlannedPart) -> Result<i64, OfscError> {
        if let Some(id) = part.inventory_id.filter(|id| *id > 0) {
            return Ok(id);
        }
        if let Some(undone) = part.undoes.as_deref().and_then(Op::seq_of) {
            let earlier = outbox::get_op(self.store.as_ref(), undone).map_err(store_err)?;
            if let Some(id) = earlier.and_then(|o| o.result_inventory_id) {
                return Ok(id);
            }
        }
        let from = match part.ofsc {
            OfscPartAction::Deinstall => "customerInventories",
            OfscPartAction::UndoInstall => "installedInventories",
            OfscPartAction::UndoDeinstall => "deinstalledInventories",
            OfscPartAction::InstallFromVan => {
                return Err(OfscError::Config(format!("{} names no van item", op.id)))
            }
        };
        let items = self.ofsc.activity_inventories(activity, from).await?;
        items
            .iter()
            .filter(|i| matches(i, part) && i.quantity.unwrap_or(1.0) + EPS >= part.quantity)
            .find_map(|i| i.inventory_id)
            .ok_or_else(|| OfscError::Rejected {
                status: 404,
                title: "Not Found".into(),
                detail: format!(
                    "no {} {} on activity {activity} to {}",
                    part.inventory_type,
                    part.serial_number.as_deref().unwrap_or(""),
                    part.ofsc.path_name()
                ),
            })
    }

    /// Sends the part's action; returns the item it moved.
    pub(super) async fn send_part(&self, op: &Op) -> Result<Option<i64>, OfscError> {
        let part = Self::part_of(op)?;
        let activity = self.ofsc_activity(op)?;
        let subject = self.subject(op, activity, part).await?;
        let body = InventoryAction {
            activity_id: Some(activity),
            quantity: part.serial_number.is_none().then_some(part.quantity),
            exchanged_inventory_id: part.exchanged_inventory_id,
        };
        let answer = match part.ofsc {
            OfscPartAction::InstallFromVan => {
                self.ofsc
                    .install_from_van(&op.resource_id, subject, &body)
                    .await?
            }
            // OFSC requires the quantity of a non-serialized item for deinstall and for both
            // undo actions (how much of it moves back); a serialized one moves whole.
            other => {
                self.ofsc
                    .inventory_action(subject, other.path_name(), &body)
                    .await?
            }
        };
        // OFSC answers "with no schema": use the id when it says, else look.
        let moved = match answer.get("inventoryId").and_then(|v| v.as_i64()) {
            Some(id) => Some(id),
            None if part.serial_number.is_some() => Some(subject),
            None => {
                let (_, items) = self.held(activity, part).await?;
                Self::moved_item(&items, part)
            }
        };
        Ok(moved)
    }

    /// Brings the van and site caches up to OFSC after an entry landed, before it leaves its
    /// lane (see `stock.rs`).
    pub(super) async fn refresh_stock(&self, op: &Op) {
        let Ok(part) = Self::part_of(op) else { return };
        if part.ofsc == OfscPartAction::InstallFromVan {
            if let Err(e) = self.stock.refresh_van(&op.resource_id, Some(op.seq)).await {
                tracing::warn!(resource = %op.resource_id, error = %e, "van refresh after a part failed");
                let _ = self.stock.van_is_stale(&op.resource_id);
            }
        }
        if let Ok(activity) = self.ofsc_activity(op) {
            if let Err(e) = self.stock.refresh_site(activity, Some(op.seq)).await {
                tracing::warn!(activity, error = %e, "site refresh after a part failed");
                let _ = self.stock.site_is_stale(activity);
            }
        }
    }
}
