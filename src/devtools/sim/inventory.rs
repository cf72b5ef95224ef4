//! Simulated inventories: van stock, customer equipment, and the install/deinstall/undo actions.

use super::model::{Call, SimError, SimResult, Tenant};
use crate::ofsc::wire::{Inventory, InventoryAction};
use serde_json::json;

impl Tenant {
    pub fn inventory(&self, id: i64) -> SimResult<&Inventory> {
        self.inventories
            .get(&id)
            .ok_or_else(|| SimError::not_found(format!("Inventory {id} not found")))
    }

    pub fn resource_inventories<'a>(
        &'a self,
        resource_id: &'a str,
    ) -> SimResult<impl Iterator<Item = &'a Inventory>> {
        self.resource(resource_id)?;
        Ok(self.inventories.values().filter(move |i| {
            i.status == "resource" && i.resource_id.as_deref() == Some(resource_id)
        }))
    }

    /// `customerInventories`, `installedInventories`, `deinstalledInventories`.
    pub fn activity_inventories<'a>(
        &'a self,
        activity_id: i64,
        status: &'a str,
    ) -> SimResult<impl Iterator<Item = &'a Inventory>> {
        self.activity(activity_id)?;
        Ok(self
            .inventories
            .values()
            .filter(move |i| i.status == status && i.activity_id == Some(activity_id)))
    }

    pub fn create_inventory(&mut self, call: &Call, mut inv: Inventory) -> SimResult<Inventory> {
        if inv.inventory_type.is_empty() {
            return Err(SimError::bad_request("inventoryType is required"));
        }
        if inv.quantity.is_some_and(|q| q <= 0.0) {
            return Err(SimError::bad_request("quantity must be positive"));
        }
        inv.quantity.get_or_insert(1.0);
        let id = self.insert_inventory(inv.clone());
        let event = if inv.status == "resource" {
            "resourceInventoryCreated"
        } else {
            "customerInventoryCreated"
        };
        self.emit_inventory(event, id);
        self.log_full(
            call,
            inv.activity_id,
            Some("createInventory"),
            None,
            inv.resource_id.clone(),
            Some(id),
        );
        self.inventory(id).cloned()
    }

    fn emit_inventory(&mut self, event_type: &str, id: i64) {
        let Some(inv) = self.inventories.get(&id).cloned() else {
            return;
        };
        // Oracle's `inventoryEvent`: the item in `inventoryDetails` (id, type, serial,
        // status only), where it is now in `inventoryChanges`, and the activity it is on
        // in `activityDetails`.
        let activity = inv.activity_id.and_then(|a| {
            self.activities
                .get(&a)
                .map(|act| super::model::activity_details(a, act))
        });
        self.events.emit(crate::ofsc::wire::Event {
            event_type: event_type.to_string(),
            time: crate::ofsc::time::to_utc_string(&chrono::Utc::now()),
            user: Some("fieldsync-demo".into()),
            inventory_details: Some(super::model::without_nulls(json!({
                "inventoryId": id, "inventoryType": inv.inventory_type,
                "serialNumber": inv.serial_number, "status": inv.status,
            }))),
            inventory_changes: Some(super::model::without_nulls(json!({
                "status": inv.status, "resourceId": inv.resource_id,
                "activityId": inv.activity_id, "quantity": inv.quantity,
            }))),
            activity_details: activity,
            ..Default::default()
        });
    }

    fn started_activity(&self, body: &InventoryAction) -> SimResult<i64> {
        let id = body
            .activity_id
            .ok_or_else(|| SimError::bad_request("activityId is required"))?;
        let a = self.activity(id)?;
        if a.status.as_deref() != Some("started") {
            return Err(SimError::bad_request(format!(
                "Activity {id} is not started"
            )));
        }
        Ok(id)
    }

    /// Takes `quantity` out of item `id` (all of it for serialized items), leaving the rest in
    /// place; returns the id of the item that moves.
    fn split(&mut self, id: i64, quantity: Option<f64>) -> SimResult<i64> {
        let item = self.inventory(id)?.clone();
        if item.serial_number.is_some() {
            return Ok(id);
        }
        let have = item.quantity.unwrap_or(1.0);
        let want = quantity.ok_or_else(|| {
            SimError::bad_request("quantity is required for a non-serialized item")
        })?;
        if want <= 0.0 || want > have {
            return Err(SimError::bad_request(format!(
                "Invalid quantity {want}: {have} available"
            )));
        }
        if (want - have).abs() < f64::EPSILON {
            return Ok(id);
        }
        if let Some(i) = self.inventories.get_mut(&id) {
            i.quantity = Some(have - want);
        }
        let mut part = item;
        part.quantity = Some(want);
        Ok(self.insert_inventory(part))
    }

    /// `POST /resources/{rid}/inventories/{iid}/custom-actions/install`.
    pub fn install_from_van(
        &mut self,
        call: &Call,
        resource_id: &str,
        id: i64,
        body: &InventoryAction,
    ) -> SimResult<Inventory> {
        let item = self.inventory(id)?.clone();
        if item.status != "resource" || item.resource_id.as_deref() != Some(resource_id) {
            return Err(SimError::not_found(format!(
                "Inventory {id} is not in the stock of {resource_id}"
            )));
        }
        let activity_id = self.started_activity(body)?;
        let moved = self.split(id, body.quantity)?;
        if let Some(i) = self.inventories.get_mut(&moved) {
            i.status = "installed".into();
            i.activity_id = Some(activity_id);
            i.exchanged_inventory_id = body.exchanged_inventory_id;
        }
        self.emit_inventory("inventoryInstalled", moved);
        self.log_full(
            call,
            Some(activity_id),
            Some("install"),
            None,
            Some(resource_id.to_string()),
            Some(moved),
        );
        self.inventory(moved).cloned()
    }

    /// `POST /inventories/{iid}/custom-actions/{install|deinstall|undoInstall|undoDeinstall}`.
    pub fn inventory_action(
        &mut self,
        call: &Call,
        id: i64,
        action: &str,
        body: &InventoryAction,
    ) -> SimResult<Inventory> {
        let item = self.inventory(id)?.clone();
        let (from, to, event) = match action {
            "install" => ("customer", "installed", "inventoryInstalled"),
            "deinstall" => ("customer", "deinstalled", "inventoryDeinstalled"),
            "undoInstall" => ("installed", "customer", "inventoryUndoInstall"),
            "undoDeinstall" => ("deinstalled", "customer", "inventoryUndoDeinstall"),
            other => {
                return Err(SimError::not_found(format!(
                    "Unknown inventory action '{other}'"
                )))
            }
        };
        if item.status != from {
            return Err(SimError::bad_request(format!(
                "Cannot {action} inventory {id} with status '{}'",
                item.status
            )));
        }
        let activity_id = self.started_activity(body)?;
        if item.activity_id.is_some_and(|a| a != activity_id) {
            return Err(SimError::bad_request(format!(
                "Inventory {id} belongs to another activity"
            )));
        }
        // Deinstall and both undo actions take a non-serialized item's quantity (OFSC
        // refuses them without one); the rest of the item stays where it was.
        let moved = if action == "deinstall" || action.starts_with("undo") {
            self.split(id, body.quantity)?
        } else {
            id
        };
        if let Some(i) = self.inventories.get_mut(&moved) {
            i.status = to.into();
            i.activity_id = Some(activity_id);
            if action == "deinstall" || action == "install" {
                i.exchanged_inventory_id = body.exchanged_inventory_id.or(i.exchanged_inventory_id);
            }
        }
        self.emit_inventory(event, moved);
        self.log_full(
            call,
            Some(activity_id),
            Some(action),
            None,
            None,
            Some(moved),
        );
        self.inventory(moved).cloned()
    }
}
