//! OFSC wire models (ofscCore v1), shared by the connector and the simulator.
//!
//! Field names and shapes follow Oracle's OpenAPI document; empty fields are omitted, as
//! OFSC omits them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// An activity. Times are resource-local `YYYY-MM-DD HH:MM:SS`; windows are `HH:MM:SS`.
/// Every field of [`Activity`] fieldsync reads, as OFSC names them: route reads ask for
/// exactly these (`activityFields`), since OFSC's default answer holds only times and zones.
pub const ACTIVITY_FIELDS: &[&str] = &[
    "activityId",
    "resourceId",
    "date",
    "activityType",
    "status",
    "recordType",
    "apptNumber",
    "timeZone",
    "timeZoneIANA",
    "resourceTimeZone",
    "resourceTimeZoneIANA",
    "timeSlot",
    "serviceWindowStart",
    "serviceWindowEnd",
    "startTime",
    "endTime",
    "duration",
    "travelTime",
    "positionInRoute",
    "customerName",
    "customerNumber",
    "customerPhone",
    "customerEmail",
    "streetAddress",
    "city",
    "stateProvince",
    "postalCode",
    "latitude",
    "longitude",
];

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Activity {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activity_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activity_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub appt_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    #[serde(rename = "timeZoneIANA", skip_serializing_if = "Option::is_none")]
    pub time_zone_iana: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_time_zone: Option<String>,
    #[serde(
        rename = "resourceTimeZoneIANA",
        skip_serializing_if = "Option::is_none"
    )]
    pub resource_time_zone_iana: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_slot: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_window_start: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_window_end: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub travel_time: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position_in_route: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_phone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub street_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_province: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latitude: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub longitude: Option<f64>,
    /// Custom properties (e.g. `XA_APPROVAL_STATUS`) and anything else OFSC sends.
    #[serde(flatten)]
    pub properties: Map<String, Value>,
}

/// The standard fields of Oracle's `createActivitySchema` that an [`Activity`] can carry.
const CREATE_FIELDS: &[&str] = &[
    "activityType",
    "apptNumber",
    "city",
    "customerCell",
    "customerEmail",
    "customerName",
    "customerNumber",
    "customerPhone",
    "date",
    "duration",
    "latitude",
    "longitude",
    "postalCode",
    "resourceId",
    "serviceWindowEnd",
    "serviceWindowStart",
    "setPositionInRoute",
    "slaWindowEnd",
    "slaWindowStart",
    "stateProvince",
    "streetAddress",
    "timeSlot",
    "timeZone",
];

impl Activity {
    /// The body of `POST /activities`: the create schema's standard fields and the custom
    /// properties, nothing OFSC sets itself (status, ids, computed times, resource zones).
    pub fn create_body(&self) -> Result<Map<String, Value>, serde_json::Error> {
        let Value::Object(all) = serde_json::to_value(self)? else {
            return Ok(Map::new());
        };
        Ok(all
            .into_iter()
            .filter(|(k, _)| CREATE_FIELDS.contains(&k.as_str()) || self.properties.contains_key(k))
            .collect())
    }
}

/// A resource (technician, bucket, organization unit).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Resource {
    pub resource_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_internal_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_resource_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    #[serde(rename = "timeZoneIANA", skip_serializing_if = "Option::is_none")]
    pub time_zone_iana: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_zone_diff: Option<i64>,
}

/// `GET /resources/{id}/routes/{date}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    pub resource_id: String,
    pub date: String,
    /// Set once the route is activated (resource-local).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route_start_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route_end_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route_reactivation_time: Option<String>,
    pub total_results: i64,
    pub offset: i64,
    pub limit: i64,
    pub items: Vec<Activity>,
}

/// An inventory item: in a van (`resource`), at a site (`customer`), `installed` or `deinstalled`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Inventory {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inventory_id: Option<i64>,
    pub status: String,
    pub inventory_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantity: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activity_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exchanged_inventory_id: Option<i64>,
}

/// Body of the inventory custom actions.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InventoryAction {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activity_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantity: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exchanged_inventory_id: Option<i64>,
}

/// An inventory list page: OFSC answers `items` (at most `limit`, 100); `hasMore`, when
/// present, says whether more follow.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InventoryPage {
    pub items: Vec<Inventory>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_more: Option<bool>,
}

/// `GET /activities` envelope. `hasMore` is present only on a truncated page.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ActivityPage {
    pub items: Vec<Activity>,
    pub offset: i64,
    pub limit: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_more: Option<bool>,
}

/// `{items, totalResults, offset, limit}` envelope of resource lists.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Paged<T> {
    pub items: Vec<T>,
    pub total_results: i64,
    pub offset: i64,
    pub limit: i64,
}

/// OFSC's error body. `status` is a string.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ErrorBody {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub detail: String,
}

/// Token endpoint answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: i64,
}

/// `POST /events/subscriptions` answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    pub subscription_id: String,
    #[serde(default)]
    pub next_page: String,
}

/// One event; the detail objects depend on the event type.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub event_type: String,
    /// UTC, `YYYY-MM-DD HH:MM:SS`.
    pub time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activity_details: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activity_changes: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub move_details: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route_details: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route_changes: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inventory_details: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inventory_changes: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_details: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_changes: Option<Value>,
}

/// `GET /events` answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EventsPage {
    pub found: bool,
    pub next_page: String,
    pub items: Vec<Event>,
}

/// Metadata of a file property (GET without `Accept`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FileMeta {
    pub name: String,
    pub size: u64,
    pub media_type: String,
}

/// One GPS fix for `setPositions`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Position {
    pub resource_id: String,
    /// ISO-8601 with an offset (OFSC also takes a unix time in seconds).
    pub time: String,
    pub lat: f64,
    pub lng: f64,
    /// Accuracy in whole metres: Oracle's schema has it as an integer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acc: Option<i64>,
}

/// `setPositions` answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PositionsResult {
    pub items_processed: i64,
    pub items_failed: i64,
    #[serde(default)]
    pub errors: Vec<Value>,
}

#[cfg(test)]
mod create_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_fields_a_route_read_asks_for_are_the_activitys_own() {
        let mut all = serde_json::Map::new();
        for f in ACTIVITY_FIELDS {
            let v = match *f {
                "activityId" | "duration" | "travelTime" | "positionInRoute" => json!(1),
                "latitude" | "longitude" => json!(1.5),
                _ => json!("x"),
            };
            all.insert((*f).to_string(), v);
        }
        let a: Activity = serde_json::from_value(serde_json::Value::Object(all)).unwrap();
        assert!(
            a.properties.is_empty(),
            "not fields of Activity: {:?}",
            a.properties
        );
        let back = serde_json::to_value(&a).unwrap();
        let mut keys: Vec<&str> = back
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut want = ACTIVITY_FIELDS.to_vec();
        keys.sort_unstable();
        want.sort_unstable();
        assert_eq!(keys, want, "every field asked for is read back");
    }

    #[test]
    fn a_create_body_holds_the_schemas_fields_and_custom_properties_only() {
        let mut a = Activity {
            activity_id: Some(-3),
            resource_id: Some("tech1".into()),
            date: Some("2026-12-02".into()),
            activity_type: Some("REPAIR".into()),
            status: Some("pending".into()),
            resource_time_zone_iana: Some("America/New_York".into()),
            customer_name: Some("Ada".into()),
            position_in_route: Some(4),
            ..Default::default()
        };
        a.properties
            .insert("XA_NOTES".into(), json!("gate code 1234"));
        let body = a.create_body().unwrap_or_default();
        let mut keys: Vec<&str> = body.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "XA_NOTES",
                "activityType",
                "customerName",
                "date",
                "resourceId"
            ]
        );
    }
}
