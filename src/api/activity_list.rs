//! `GET /activities` (filtered, paginated) and `POST /activities` (a queued create with a
//! provisional id).

use super::activities::{device_route_with_activities, idempotency_key};
use super::{present, ApiError};
use crate::auth::policy::{self, Function};
use crate::auth::{Principal, Role};
use crate::ofsc::time as ofsc_time;
use crate::ofsc::wire::Activity;
use crate::outbox::{self, NewOp, OpKind, Submitter};
use crate::state::AppState;
use crate::store::Storage;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::json;

const MAX_DAYS: i64 = 31;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListQuery {
    date_from: Option<String>,
    date_to: Option<String>,
    status: Option<String>,
    resource_id: Option<crate::ids::ResourceId>,
    limit: Option<usize>,
    cursor: Option<String>,
}

fn bad(code: &'static str, detail: impl Into<String>) -> ApiError {
    ApiError::BadRequest {
        code,
        detail: detail.into(),
    }
}

fn encode_cursor(offset: usize) -> String {
    crate::ids::format("act_", offset as u64)
}

/// Any cursor of the documented form is a position, so it decodes (past the end: an empty
/// page).
fn decode_cursor(c: &str) -> Option<usize> {
    usize::try_from(crate::ids::parse("act_", c)?).ok()
}

/// The resources a listing covers: the one asked for (if visible), else the caller's own or
/// everything they oversee.
fn resources(
    state: &AppState,
    who: &Principal,
    asked: Option<&str>,
) -> Result<Vec<String>, ApiError> {
    if let Some(r) = asked {
        policy::may_see(who, r, state.directory.as_ref())?;
        return Ok(vec![r.to_string()]);
    }
    let mut out: Vec<String> = who.resource_id.iter().cloned().collect();
    if who.role != Role::Technician {
        for r in state.directory.all() {
            let field = r.resource_type.as_deref() == Some("PR");
            if field
                && !out.contains(&r.resource_id)
                && policy::oversees(who, &r.resource_id, state.directory.as_ref())
            {
                out.push(r.resource_id);
            }
        }
    }
    out.sort();
    Ok(out)
}

pub async fn list(
    state: web::Data<AppState>,
    who: Principal,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    policy::may_use(&who, Function::ReadField)?;
    let zone = who
        .resource_id
        .as_deref()
        .and_then(|r| state.directory.get(r))
        .and_then(|r| r.time_zone_iana)
        .and_then(|z| ofsc_time::zone(&z).ok())
        .unwrap_or(chrono_tz::UTC);
    let today = ofsc_time::today_in(zone);
    let parse = |s: &Option<String>, default: NaiveDate| match s {
        Some(s) => present::parse_date(s)
            .ok_or_else(|| bad("invalid-date", format!("{s:?} is not YYYY-MM-DD"))),
        None => Ok(default),
    };
    let from = parse(&q.date_from, today)?;
    let to = parse(&q.date_to, from)?;
    if to < from || (to - from).num_days() + 1 > MAX_DAYS {
        return Err(bad(
            "invalid-date-range",
            "dateTo must be on or after dateFrom, at most 31 days",
        ));
    }
    super::activities::readable(&state, today, from, to)?;
    let limit = super::page_limit(q.limit, 50, 200)?;
    let offset = match &q.cursor {
        Some(c) => decode_cursor(c).ok_or_else(|| bad("invalid-cursor", "unknown cursor"))?,
        None => 0,
    };
    let mut items = Vec::new();
    for resource in resources(&state, &who, q.resource_id.as_deref())? {
        for n in 0..=(to - from).num_days() {
            let date = (from + chrono::Duration::days(n)).to_string();
            let (dev, activities) =
                device_route_with_activities(&state, &resource, &date, Some(&who.username)).await?;
            let stops = present::stops(&dev, &activities);
            items.extend(
                stops
                    .into_iter()
                    .filter(|s| q.status.as_deref().is_none_or(|st| s["status"] == st)),
            );
        }
    }
    let total = items.len();
    let page: Vec<_> = items.into_iter().skip(offset).take(limit).collect();
    let has_more = offset + page.len() < total;
    Ok(HttpResponse::Ok().json(json!({
        "items": page,
        "nextCursor": if has_more { Some(encode_cursor(offset + limit)) } else { None },
        "hasMore": has_more,
    })))
}

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

fn validate(n: &NewActivity) -> Result<NaiveDate, ApiError> {
    let text_ok = |s: &Option<String>, max: usize| {
        s.as_ref()
            .is_none_or(|v| v.chars().count() <= max && !v.chars().any(char::is_control))
    };
    if n.activity_type.is_empty() || !text_ok(&Some(n.activity_type.clone()), 40) {
        return Err(bad("invalid-body", "activityType: 1-40 characters"));
    }
    let date = present::parse_date(&n.date)
        .ok_or_else(|| bad("invalid-date", "date must be YYYY-MM-DD"))?;
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
            return Err(bad(
                "invalid-body",
                format!("{name}: at most {max} characters, no control characters"),
            ));
        }
    }
    if n.latitude.is_some_and(|l| !(-90.0..=90.0).contains(&l))
        || n.longitude.is_some_and(|l| !(-180.0..=180.0).contains(&l))
    {
        return Err(bad(
            "invalid-location",
            "latitude within ±90, longitude within ±180",
        ));
    }
    if n.duration.is_some_and(|d| !(1..=1440).contains(&d)) {
        return Err(bad("invalid-body", "duration: 1-1440 minutes"));
    }
    Ok(date)
}

pub async fn create(
    state: web::Data<AppState>,
    who: Principal,
    req: HttpRequest,
    body: web::Json<NewActivity>,
) -> Result<HttpResponse, ApiError> {
    policy::may_use(&who, Function::FieldWrite)?;
    let key = idempotency_key(&req)?;
    let body = body.into_inner();
    let submitter = super::activities::submitter(&who, "createActivity", key, &body)?;
    let result = submit_create(&state, &who, body, submitter).await?;
    super::activities::acknowledge(&state, result).await
}

/// Validates and queues a create (from `POST /activities` or a sync batch); the caller flushes.
pub async fn submit_create(
    state: &AppState,
    who: &Principal,
    body: NewActivity,
    submitter: Submitter,
) -> Result<outbox::Enqueued, ApiError> {
    let date = validate(&body)?;
    let resource = body
        .resource_id
        .clone()
        .map(String::from)
        .or(who.resource_id.clone())
        .ok_or(ApiError::NotFound)?;
    policy::may_see(who, &resource, state.directory.as_ref())?;
    let (zone_name, zone) = super::activities::resource_zone(state, &resource, None);
    if date < ofsc_time::today_in(zone) {
        return Err(bad("invalid-date", "a new activity cannot be in the past"));
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
