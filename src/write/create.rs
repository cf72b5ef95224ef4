//! The create command: a follow-up job a technician adds to a route (from `POST /activities`
//! or a sync `createActivity` op), queued under a provisional id until OFSC assigns its own.

use super::outbox::{self, NewOp, OpKind, Submitter};
use super::WriteError;
use crate::auth::policy;
use crate::auth::Principal;
use crate::ofsc::time as ofsc_time;
use crate::ofsc::wire::Activity;
use crate::read::{present, query};
use crate::state::AppState;
use crate::store::Storage;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewActivity {
    activity_type: String,
    date: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resource_id: Option<crate::ids::ResourceId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    customer_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    customer_phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    street_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    city: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    state_province: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    postal_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    latitude: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    longitude: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    duration: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    time_slot: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    notes: Option<String>,
}

fn validate(n: &NewActivity) -> Result<NaiveDate, WriteError> {
    let text_ok = |s: &Option<String>, max: usize| {
        s.as_ref()
            .is_none_or(|v| v.chars().count() <= max && !v.chars().any(char::is_control))
    };
    if n.activity_type.is_empty() || !text_ok(&Some(n.activity_type.clone()), 40) {
        return Err(WriteError::invalid(
            "invalid-body",
            "activityType: 1-40 characters",
        ));
    }
    let date = present::parse_date(&n.date)
        .ok_or_else(|| WriteError::invalid("invalid-date", "date must be YYYY-MM-DD"))?;
    for (name, v, max) in [
        ("customerName", &n.customer_name, 420),
        ("customerPhone", &n.customer_phone, 40),
        ("streetAddress", &n.street_address, 240),
        ("city", &n.city, 60),
        ("stateProvince", &n.state_province, 60),
        ("postalCode", &n.postal_code, 60),
        ("timeSlot", &n.time_slot, 40),
        ("notes", &n.notes, 4000),
    ] {
        if !text_ok(v, max) {
            return Err(WriteError::invalid(
                "invalid-body",
                format!("{name}: at most {max} characters, no control characters"),
            ));
        }
    }
    if n.latitude.is_some_and(|l| !(-90.0..=90.0).contains(&l))
        || n.longitude.is_some_and(|l| !(-180.0..=180.0).contains(&l))
    {
        return Err(WriteError::invalid(
            "invalid-location",
            "latitude within ±90, longitude within ±180",
        ));
    }
    if n.duration.is_some_and(|d| !(1..=1440).contains(&d)) {
        return Err(WriteError::invalid(
            "invalid-body",
            "duration: 1-1440 minutes",
        ));
    }
    Ok(date)
}

/// Validates and queues a create (from `POST /activities` or a sync batch); the caller flushes.
pub async fn submit_create(
    state: &AppState,
    who: &Principal,
    body: NewActivity,
    submitter: Submitter,
) -> Result<outbox::Enqueued, WriteError> {
    let date = validate(&body)?;
    let resource = body
        .resource_id
        .clone()
        .map(String::from)
        .or(who.resource_id.clone())
        .ok_or(WriteError::Denied(policy::Denied::NotFound))?;
    policy::may_see(who, &resource, state.directory.as_ref())?;
    let (zone_name, zone) = query::resource_zone(state, &resource, None);
    if date < ofsc_time::today_in(zone) {
        return Err(WriteError::invalid(
            "invalid-date",
            "a new activity cannot be in the past",
        ));
    }
    let date_s = date.to_string();
    let lock = state.lanes.lock(&resource, &date_s);
    let guard = lock.lock().await;
    if let Some(answer) = outbox::idempotent_answer(state.store.as_ref(), &submitter)? {
        return Ok(answer);
    }
    let provisional = -(state.store.next_id()? as i64);
    let mut properties = serde_json::Map::new();
    if let Some(n) = &body.notes {
        properties.insert(state.properties.notes.clone(), json!(n));
    }
    let activity = Activity {
        activity_id: Some(provisional),
        resource_id: Some(resource.clone()),
        date: Some(date_s.clone()),
        activity_type: Some(body.activity_type.clone()),
        status: Some("pending".into()),
        // The unique key the replayer finds the created activity by after an ambiguous failure.
        appt_number: Some(format!("FS{}", -provisional)),
        time_zone: zone_name.clone(),
        resource_time_zone_iana: zone_name.clone(),
        time_slot: body.time_slot.clone(),
        duration: body.duration,
        customer_name: body.customer_name.clone(),
        customer_phone: body.customer_phone.clone(),
        street_address: body.street_address.clone(),
        city: body.city.clone(),
        state_province: body.state_province.clone(),
        postal_code: body.postal_code.clone(),
        latitude: body.latitude,
        longitude: body.longitude,
        properties,
        ..Default::default()
    };
    let now = chrono::Utc::now().with_timezone(&zone).fixed_offset();
    let op = NewOp {
        resource_id: resource.clone(),
        date: date_s.clone(),
        activity_id: Some(provisional),
        kind: OpKind::CreateActivity {
            activity: Box::new(activity.clone()),
        },
        time: now,
        zone: zone_name,
        captured_at: None,
    };
    let shown = present::activity(&activity, None);
    let result = outbox::enqueue(
        state.store.as_ref(),
        &submitter,
        vec![op],
        |ops| json!({"opId": ops.first().map(|o| o.id.clone()), "state": "queued", "activity": shown}),
    )?;
    if let outbox::Enqueued::Accepted { .. } = &result {
        state.cache.renders.touch(&resource, &date_s);
    }
    drop(guard);
    Ok(result)
}
