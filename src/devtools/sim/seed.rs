//! Tenant seed files (the demo tenant in `assets/`): resources, routes as templates, van stock.
//!
//! Route dates are not stored: each route is laid on *today* in its resource's zone when the
//! simulator starts (or on the file's fixed `date`, which DST tests use).

use crate::ofsc::time::{self, LOCAL_FORMAT};
use crate::ofsc::wire::{Activity, Inventory, Resource};
use chrono::{Duration, NaiveDate, NaiveTime};
use serde::Deserialize;
use serde_json::Map;

/// The demo tenant, embedded so `cargo run` needs no files beside the binary.
pub const DEMO_TENANT: &str = include_str!("../../../assets/demo-tenant.json");

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedFile {
    /// Lays every route on this date instead of today.
    #[serde(default)]
    pub date: Option<NaiveDate>,
    pub resources: Vec<SeedResource>,
    /// The tenant's custom properties; only these labels are accepted, as in OFSC. Absent:
    /// the ones fieldsync's defaults use.
    #[serde(default = "default_properties")]
    pub properties: Vec<SeedProperty>,
}

/// A custom property of the tenant.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedProperty {
    pub label: String,
    /// `string`, `enum`, `int` or `file`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// The properties fieldsync's default configuration writes.
pub fn default_properties() -> Vec<SeedProperty> {
    let p = crate::config::PropertySettings::default();
    let a = crate::config::ApprovalSettings::default();
    let text = [
        p.notes,
        a.status_label,
        a.approved_by_label,
        a.comment_label,
    ];
    let files = p.photos.into_iter().chain(std::iter::once(p.signature));
    text.into_iter()
        .map(|label| SeedProperty {
            label,
            kind: "string".into(),
        })
        .chain(files.map(|label| SeedProperty {
            label,
            kind: "file".into(),
        }))
        .collect()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedResource {
    pub resource_id: String,
    #[serde(default)]
    pub parent_resource_id: Option<String>,
    pub name: String,
    pub resource_type: String,
    pub time_zone: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub route: Option<SeedRoute>,
    #[serde(default)]
    pub van_stock: Vec<SeedInventory>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedRoute {
    /// Wall-clock start of the working day, `HH:MM`.
    pub day_start: String,
    pub stops: Vec<SeedStop>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedStop {
    pub appt_number: String,
    pub activity_type: String,
    pub time_slot: String,
    pub service_window_start: String,
    pub service_window_end: String,
    pub duration: i64,
    pub travel_time: i64,
    pub customer_name: String,
    pub customer_phone: String,
    pub street_address: String,
    pub city: String,
    pub state_province: String,
    pub postal_code: String,
    pub latitude: f64,
    pub longitude: f64,
    #[serde(default)]
    pub customer_inventory: Vec<SeedInventory>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedInventory {
    pub inventory_type: String,
    #[serde(default)]
    pub serial_number: Option<String>,
    #[serde(default)]
    pub quantity: Option<f64>,
}

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("seed file is not valid: {0}")]
    Parse(#[from] serde_json::Error),
    #[error("resource {0}: {1}")]
    Resource(String, String),
}

/// What a seed expands to, ready to load into a tenant.
#[derive(Debug, Default)]
pub struct Expanded {
    pub resources: Vec<Resource>,
    /// Activities without ids; the tenant numbers them.
    pub activities: Vec<(Activity, Vec<Inventory>)>,
    pub van_stock: Vec<Inventory>,
    /// Custom property labels and their types.
    pub properties: std::collections::BTreeMap<String, String>,
}

pub fn parse(text: &str) -> Result<SeedFile, SeedError> {
    Ok(serde_json::from_str(text)?)
}

fn hm(s: &str, who: &str) -> Result<NaiveTime, SeedError> {
    NaiveTime::parse_from_str(s, "%H:%M")
        .or_else(|_| NaiveTime::parse_from_str(s, "%H:%M:%S"))
        .map_err(|_| SeedError::Resource(who.to_string(), format!("bad time {s:?}")))
}

fn inventory(s: &SeedInventory, status: &str, resource: Option<&str>) -> Inventory {
    Inventory {
        status: status.to_string(),
        inventory_type: s.inventory_type.clone(),
        serial_number: s.serial_number.clone(),
        quantity: Some(s.quantity.unwrap_or(1.0)),
        resource_id: resource.map(str::to_string),
        ..Default::default()
    }
}

/// Expands the seed: resources, today's routes with planned times, and inventories.
pub fn expand(seed: &SeedFile) -> Result<Expanded, SeedError> {
    let mut out = Expanded {
        properties: seed
            .properties
            .iter()
            .map(|p| (p.label.clone(), p.kind.clone()))
            .collect(),
        ..Default::default()
    };
    for (idx, r) in seed.resources.iter().enumerate() {
        let tz = time::zone(&r.time_zone)
            .map_err(|e| SeedError::Resource(r.resource_id.clone(), e.to_string()))?;
        out.resources.push(Resource {
            resource_id: r.resource_id.clone(),
            resource_internal_id: Some(5000 + idx as i64),
            parent_resource_id: r.parent_resource_id.clone(),
            resource_type: Some(r.resource_type.clone()),
            name: Some(r.name.clone()),
            status: Some("active".into()),
            email: r.email.clone(),
            phone: r.phone.clone(),
            language: Some("en".into()),
            time_zone: Some(r.time_zone.clone()),
            time_zone_iana: Some(r.time_zone.clone()),
            time_zone_diff: None,
        });
        for item in &r.van_stock {
            out.van_stock
                .push(inventory(item, "resource", Some(&r.resource_id)));
        }
        let Some(route) = &r.route else { continue };
        let date = seed.date.unwrap_or_else(|| time::today_in(tz));
        let mut cursor = date.and_time(hm(&route.day_start, &r.resource_id)?);
        for (pos, stop) in route.stops.iter().enumerate() {
            let window_start = date.and_time(hm(&stop.service_window_start, &r.resource_id)?);
            let window_end = hm(&stop.service_window_end, &r.resource_id)?;
            cursor += Duration::minutes(stop.travel_time);
            let start = cursor.max(window_start);
            let end = start + Duration::minutes(stop.duration);
            cursor = end;
            let activity = Activity {
                resource_id: Some(r.resource_id.clone()),
                date: Some(date.format("%Y-%m-%d").to_string()),
                activity_type: Some(stop.activity_type.clone()),
                status: Some("pending".into()),
                record_type: Some("regular".into()),
                appt_number: Some(stop.appt_number.clone()),
                time_zone: Some(r.time_zone.clone()),
                time_zone_iana: Some(r.time_zone.clone()),
                resource_time_zone: Some(r.time_zone.clone()),
                resource_time_zone_iana: Some(r.time_zone.clone()),
                time_slot: Some(stop.time_slot.clone()),
                service_window_start: Some(window_start.time().format("%H:%M:%S").to_string()),
                service_window_end: Some(window_end.format("%H:%M:%S").to_string()),
                start_time: Some(start.format(LOCAL_FORMAT).to_string()),
                end_time: Some(end.format(LOCAL_FORMAT).to_string()),
                duration: Some(stop.duration),
                travel_time: Some(stop.travel_time),
                position_in_route: Some(pos as i64 + 1),
                customer_name: Some(stop.customer_name.clone()),
                customer_phone: Some(stop.customer_phone.clone()),
                street_address: Some(stop.street_address.clone()),
                city: Some(stop.city.clone()),
                state_province: Some(stop.state_province.clone()),
                postal_code: Some(stop.postal_code.clone()),
                latitude: Some(stop.latitude),
                longitude: Some(stop.longitude),
                properties: Map::new(),
                ..Default::default()
            };
            let customer = stop
                .customer_inventory
                .iter()
                .map(|i| inventory(i, "customer", None))
                .collect();
            out.activities.push((activity, customer));
        }
    }
    Ok(out)
}

#[cfg(test)]
#[path = "seed_tests.rs"]
mod tests;
