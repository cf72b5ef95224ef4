//! How activities and routes look on the wire: RFC 3339 instants with offsets, IANA zones,
//! and the device's view of status.

use crate::ofsc::time as ofsc_time;
use crate::ofsc::wire::Activity;
use crate::read::view::DeviceRoute;
use crate::write::outbox::{Op, OpKind};
use chrono::NaiveDate;
use serde_json::{json, Value};

fn instant(local: Option<&str>, tz: Option<chrono_tz::Tz>) -> Value {
    match (local, tz) {
        (Some(s), Some(tz)) => ofsc_time::from_local(s, tz)
            .map(|t| json!(t.to_rfc3339()))
            .unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

fn window(date: Option<&str>, hms: Option<&str>, tz: Option<chrono_tz::Tz>) -> Value {
    let (Some(d), Some(t)) = (date, hms) else {
        return Value::Null;
    };
    instant(Some(&format!("{d} {t}")), tz)
}

/// One activity (a stop) as the device sees it.
pub fn activity(a: &Activity, route: Option<&DeviceRoute>) -> Value {
    let zone_name = a
        .resource_time_zone_iana
        .clone()
        .or(a.time_zone_iana.clone())
        .or(a.time_zone.clone());
    let tz = zone_name.as_deref().and_then(|z| ofsc_time::zone(z).ok());
    let id = a.activity_id.unwrap_or_default();
    let status = route
        .and_then(|r| r.shown_status(id))
        .or(a.status.clone())
        .unwrap_or_default();
    let position = route
        .and_then(|r| r.stop(id))
        .map(|s| s.position)
        .unwrap_or(a.position_in_route);
    json!({
        "activityId": id,
        "resourceId": a.resource_id,
        "date": a.date,
        "type": a.activity_type,
        "apptNumber": a.appt_number,
        "status": status,
        "ofscStatus": a.status,
        "position": position,
        "plannedStart": instant(a.start_time.as_deref(), tz),
        "plannedEnd": instant(a.end_time.as_deref(), tz),
        "serviceWindow": {
            "start": window(a.date.as_deref(), a.service_window_start.as_deref(), tz),
            "end": window(a.date.as_deref(), a.service_window_end.as_deref(), tz),
        },
        "travelMinutes": a.travel_time,
        "durationMinutes": a.duration,
        "customer": {"name": a.customer_name, "phone": a.customer_phone},
        "address": {"street": a.street_address, "city": a.city, "state": a.state_province, "postalCode": a.postal_code},
        "location": {"lat": a.latitude, "lng": a.longitude},
        "timeZone": zone_name,
        "pendingOps": route.and_then(|r| r.pending.get(&id).copied()).unwrap_or(0),
    })
}

/// Every stop of a device route, in route order (position, then id).
pub fn stops(dev: &DeviceRoute, activities: &[Activity]) -> Vec<Value> {
    let mut stops: Vec<Value> = activities.iter().map(|a| activity(a, Some(dev))).collect();
    stops.sort_by_key(|s| {
        (
            s["position"].as_i64().unwrap_or(i64::MAX),
            s["activityId"].as_i64().unwrap_or(0),
        )
    });
    stops
}

/// A validated `YYYY-MM-DD`.
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .filter(|_| s.len() == 10)
}

/// One recorded part entry as devices see it.
pub fn part_entry(op: &Op, undone: bool) -> Value {
    let OpKind::Part { part } = &op.kind else {
        return Value::Null;
    };
    json!({
        "partId": op.id,
        "action": part.action,
        "ofscAction": part.ofsc.path_name(),
        "inventoryType": part.inventory_type,
        "serialNumber": part.serial_number,
        "quantity": part.quantity,
        "exchangedInventoryId": part.exchanged_inventory_id,
        "undoes": part.undoes,
        "undone": undone,
        "state": op.state,
        "lastError": op.last_error,
        "ofscDetail": op.ofsc_detail,
        "recordedAt": op.time,
    })
}
