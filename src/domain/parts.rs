//! Parts consumption rules (docs/ofsc.md, "Inventory"): which part entries are legal on
//! the device's view of the van and the site, and which OFSC inventory action each becomes.
//! Pure functions; the handler supplies the views, the replayer sends the plan.

use serde::{Deserialize, Serialize};

/// What the technician says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PartAction {
    /// A part from the van goes in (serialized or bulk).
    Install,
    /// Customer equipment comes out.
    Deinstall,
    /// Bulk material from the van is used up.
    Consume,
    /// A correction: takes back an earlier install or deinstall on the same activity.
    Undo,
}

/// The OFSC inventory custom action a part entry becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OfscPartAction {
    /// `POST /resources/{rid}/inventories/{iid}/custom-actions/install`.
    InstallFromVan,
    /// `POST /inventories/{iid}/custom-actions/deinstall`.
    Deinstall,
    UndoInstall,
    UndoDeinstall,
}

impl OfscPartAction {
    /// The name in OFSC's custom-action path.
    pub fn path_name(self) -> &'static str {
        match self {
            OfscPartAction::InstallFromVan => "install",
            OfscPartAction::Deinstall => "deinstall",
            OfscPartAction::UndoInstall => "undoInstall",
            OfscPartAction::UndoDeinstall => "undoDeinstall",
        }
    }

    /// The inventory status an item has once the action is applied.
    pub fn target_status(self) -> &'static str {
        match self {
            OfscPartAction::InstallFromVan => "installed",
            OfscPartAction::Deinstall => "deinstalled",
            OfscPartAction::UndoInstall | OfscPartAction::UndoDeinstall => "customer",
        }
    }
}

/// One item of a parts request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PartRequest {
    pub action: PartAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<f64>,
    /// For an exchange: the customer item the installed part replaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchanged_inventory_id: Option<i64>,
    /// For an undo: the `partId` of the entry it takes back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undoes: Option<String>,
}

/// An inventory item as the device sees it: a van item, or equipment at the site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Item {
    pub inventory_id: i64,
    pub inventory_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
    pub quantity: f64,
}

/// A part entry already recorded on the activity (queued or applied).
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub part_id: String,
    pub plan: PlannedPart,
    /// Still going to OFSC or already there (not rejected, blocked, dead or discarded).
    pub live: bool,
}

/// What to send to OFSC for one accepted item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedPart {
    pub action: PartAction,
    pub ofsc: OfscPartAction,
    pub inventory_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
    pub quantity: f64,
    /// The van or site item acted on; absent for an undo (the undone entry's result is used)
    /// and for a deinstall when the site's equipment was not known at acceptance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inventory_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exchanged_inventory_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub undoes: Option<String>,
}

/// Why an item is refused; `status` is the HTTP status it maps to.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub code: &'static str,
    pub status: u16,
    pub detail: String,
    /// For `insufficient-stock`: what is left.
    pub available: Option<f64>,
}

fn refuse(code: &'static str, status: u16, detail: impl Into<String>) -> Refusal {
    Refusal {
        code,
        status,
        detail: detail.into(),
        available: None,
    }
}

/// The device's view while planning: van stock and site equipment net of every entry so far.
#[derive(Debug, Clone, Default)]
pub struct PartsView {
    pub van: Vec<Item>,
    /// Customer equipment at the activity's site; `None` when OFSC could not be asked.
    pub site: Option<Vec<Item>>,
    pub recorded: Vec<Recorded>,
}

const EPS: f64 = 1e-9;

fn bulk_total(items: &[Item], kind: &str) -> f64 {
    items
        .iter()
        .filter(|i| i.inventory_type == kind && i.serial_number.is_none())
        .map(|i| i.quantity)
        .sum()
}

fn positive_quantity(q: Option<f64>) -> Result<f64, Refusal> {
    match q {
        Some(q) if q.is_finite() && q > 0.0 && q <= 1e9 => Ok(q),
        Some(_) => Err(refuse("invalid-quantity", 400, "quantity must be positive")),
        None => Err(refuse(
            "quantity-required",
            400,
            "a bulk part needs a quantity",
        )),
    }
}

fn required_type(req: &PartRequest) -> Result<String, Refusal> {
    match req.inventory_type.as_deref() {
        Some(t) if !t.trim().is_empty() && t.chars().count() <= 100 => Ok(t.to_string()),
        _ => Err(refuse(
            "invalid-body",
            400,
            "inventoryType is required (1-100 characters)",
        )),
    }
}

/// Plans one item against the view. `started` says whether the activity is started on the
/// device's view: parts are legal only then.
pub fn plan(view: &PartsView, started: bool, req: &PartRequest) -> Result<PlannedPart, Refusal> {
    if !started {
        return Err(refuse(
            "activity-not-started",
            409,
            "parts can be recorded only while the activity is started",
        ));
    }
    match req.action {
        PartAction::Install | PartAction::Consume => plan_from_van(view, req),
        PartAction::Deinstall => plan_deinstall(view, req),
        PartAction::Undo => plan_undo(view, req),
    }
}

/// Whether `id` names customer equipment of this activity's site: still there, or taken
/// out by a live deinstall entry of this activity (the usual half of an exchange).
fn at_this_site(view: &PartsView, id: i64) -> bool {
    let on_site = view
        .site
        .as_ref()
        .is_some_and(|site| site.iter().any(|i| i.inventory_id == id));
    on_site
        || view.recorded.iter().any(|r| {
            r.live && r.plan.ofsc == OfscPartAction::Deinstall && r.plan.inventory_id == Some(id)
        })
}

fn plan_from_van(view: &PartsView, req: &PartRequest) -> Result<PlannedPart, Refusal> {
    let kind = required_type(req)?;
    // An exchange may only name equipment of this site: OFSC links whatever id it is given,
    // so anyone's equipment could otherwise be marked exchanged.
    if let Some(x) = req.exchanged_inventory_id {
        if !at_this_site(view, x) {
            return Err(refuse(
                "equipment-not-at-site",
                409,
                format!("exchangedInventoryId {x} is not customer equipment at this site"),
            ));
        }
    }
    let base = PlannedPart {
        action: req.action,
        ofsc: OfscPartAction::InstallFromVan,
        inventory_type: kind.clone(),
        serial_number: None,
        quantity: 1.0,
        inventory_id: None,
        exchanged_inventory_id: req.exchanged_inventory_id,
        undoes: None,
    };
    if let Some(serial) = &req.serial_number {
        if req.action == PartAction::Consume {
            return Err(refuse(
                "invalid-body",
                400,
                "consume is for bulk parts; a serialized part is installed",
            ));
        }
        if req.quantity.is_some_and(|q| (q - 1.0).abs() > EPS) {
            return Err(refuse(
                "invalid-quantity",
                400,
                "a serialized part has quantity 1",
            ));
        }
        let installed_here = view.recorded.iter().any(|r| {
            r.live
                && r.plan.ofsc == OfscPartAction::InstallFromVan
                && r.plan.serial_number.as_deref() == Some(serial)
                && !undone(view, &r.part_id)
        });
        if installed_here {
            return Err(refuse(
                "already-installed",
                409,
                format!("serial {serial} is already installed on this activity"),
            ));
        }
        let item = view
            .van
            .iter()
            .find(|i| i.inventory_type == kind && i.serial_number.as_deref() == Some(serial))
            .ok_or_else(|| {
                refuse(
                    "serial-not-in-van",
                    409,
                    format!("no {kind} with serial {serial} is in the van"),
                )
            })?;
        return Ok(PlannedPart {
            serial_number: Some(serial.clone()),
            inventory_id: Some(item.inventory_id),
            ..base
        });
    }
    let serialized_only = bulk_total(&view.van, &kind) <= EPS
        && view
            .van
            .iter()
            .any(|i| i.inventory_type == kind && i.serial_number.is_some());
    // Which of the two a part needs depends on what the van holds, not on the request's
    // shape: a conflict with the van (409), not a malformed request.
    if serialized_only {
        return Err(refuse(
            "serial-required",
            409,
            format!("{kind} is serialized: name the serial number"),
        ));
    }
    if req.quantity.is_none() {
        return Err(refuse(
            "quantity-required",
            409,
            format!("{kind} is a bulk part: name the quantity"),
        ));
    }
    let quantity = positive_quantity(req.quantity)?;
    let available = bulk_total(&view.van, &kind);
    // OFSC takes a bulk quantity out of one van item: the largest one decides.
    let item = view
        .van
        .iter()
        .filter(|i| i.inventory_type == kind && i.serial_number.is_none())
        .max_by(|a, b| a.quantity.total_cmp(&b.quantity));
    match item {
        Some(i) if i.quantity + EPS >= quantity => Ok(PlannedPart {
            quantity,
            inventory_id: Some(i.inventory_id),
            ..base
        }),
        _ => Err(Refusal {
            available: Some(available),
            ..refuse(
                "insufficient-stock",
                409,
                format!("{quantity} {kind} asked, {available} left in the van"),
            )
        }),
    }
}

fn plan_deinstall(view: &PartsView, req: &PartRequest) -> Result<PlannedPart, Refusal> {
    let kind = required_type(req)?;
    let quantity = match &req.serial_number {
        Some(_) => 1.0,
        None => positive_quantity(req.quantity)?,
    };
    let mut planned = PlannedPart {
        action: PartAction::Deinstall,
        ofsc: OfscPartAction::Deinstall,
        inventory_type: kind.clone(),
        serial_number: req.serial_number.clone(),
        quantity,
        inventory_id: None,
        exchanged_inventory_id: None,
        undoes: None,
    };
    // Without OFSC's list the entry is still taken: the replayer finds the item by type and
    // serial, and OFSC refuses it (a rejected op) if it is not there.
    let Some(site) = &view.site else {
        return Ok(planned);
    };
    let found = site.iter().find(|i| {
        i.inventory_type == kind
            && i.serial_number == req.serial_number
            && i.quantity + EPS >= quantity
    });
    match found {
        Some(i) => {
            planned.inventory_id = Some(i.inventory_id);
            Ok(planned)
        }
        None => Err(refuse(
            "equipment-not-at-site",
            409,
            match &req.serial_number {
                Some(s) => format!("no customer {kind} with serial {s} is at this site"),
                None => format!("not enough customer {kind} at this site"),
            },
        )),
    }
}

fn undone(view: &PartsView, part_id: &str) -> bool {
    view.recorded
        .iter()
        .any(|r| r.live && r.plan.undoes.as_deref() == Some(part_id))
}

fn plan_undo(view: &PartsView, req: &PartRequest) -> Result<PlannedPart, Refusal> {
    let target = req.undoes.as_deref().ok_or_else(|| {
        refuse(
            "invalid-body",
            400,
            "an undo names the partId it takes back in `undoes`",
        )
    })?;
    let entry = view
        .recorded
        .iter()
        .find(|r| r.part_id == target && r.plan.action != PartAction::Undo)
        .ok_or_else(|| {
            refuse(
                "invalid-undo",
                409,
                format!("{target} is not a part entry of this activity"),
            )
        })?;
    if !entry.live || undone(view, target) {
        return Err(refuse(
            "invalid-undo",
            409,
            format!("{target} was already undone or never reached OFSC"),
        ));
    }
    let ofsc = match entry.plan.ofsc {
        OfscPartAction::InstallFromVan => OfscPartAction::UndoInstall,
        OfscPartAction::Deinstall => OfscPartAction::UndoDeinstall,
        _ => return Err(refuse("invalid-undo", 409, "an undo cannot be undone")),
    };
    Ok(PlannedPart {
        action: PartAction::Undo,
        ofsc,
        inventory_type: entry.plan.inventory_type.clone(),
        serial_number: entry.plan.serial_number.clone(),
        quantity: entry.plan.quantity,
        inventory_id: None,
        exchanged_inventory_id: None,
        undoes: Some(target.to_string()),
    })
}

/// Applies an accepted entry to the view, so the next item (or request) sees it.
pub fn apply(view: &mut PartsView, part_id: &str, planned: &PlannedPart) {
    match planned.ofsc {
        OfscPartAction::InstallFromVan => take(&mut view.van, planned),
        OfscPartAction::Deinstall => {
            if let Some(site) = view.site.as_mut() {
                take(site, planned);
            }
        }
        // An undone part goes back to the site as customer equipment, not to the van.
        OfscPartAction::UndoInstall | OfscPartAction::UndoDeinstall => {
            if let Some(site) = view.site.as_mut() {
                site.push(Item {
                    inventory_id: 0,
                    inventory_type: planned.inventory_type.clone(),
                    serial_number: planned.serial_number.clone(),
                    quantity: planned.quantity,
                });
            }
        }
    }
    view.recorded.push(Recorded {
        part_id: part_id.to_string(),
        plan: planned.clone(),
        live: true,
    });
}

/// Takes a planned quantity out of the item it names (or the matching one).
fn take(items: &mut Vec<Item>, planned: &PlannedPart) {
    let pos = items.iter().position(|i| match planned.inventory_id {
        Some(id) if id != 0 => i.inventory_id == id,
        _ => i.inventory_type == planned.inventory_type && i.serial_number == planned.serial_number,
    });
    let Some(pos) = pos else { return };
    items[pos].quantity -= planned.quantity;
    if items[pos].serial_number.is_some() || items[pos].quantity <= EPS {
        items.remove(pos);
    }
}

#[cfg(test)]
#[path = "parts_tests.rs"]
mod tests;
