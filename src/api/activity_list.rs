//! `GET /activities` (filtered, paginated) and `POST /activities` (a queued create with a
//! provisional id).

use super::activities::idempotency_key;
use super::ApiError;
use crate::auth::policy::{self, Function};
use crate::auth::{Principal, Role};
use crate::ofsc::time as ofsc_time;
use crate::read::{present, query};
use crate::state::AppState;
use crate::write::{self, create, Command};
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::NaiveDate;
use serde::Deserialize;
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
                query::device_route_with_activities(&state, &resource, &date, Some(&who.username))
                    .await?;
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

pub async fn create(
    state: web::Data<AppState>,
    who: Principal,
    req: HttpRequest,
    body: web::Json<create::NewActivity>,
) -> Result<HttpResponse, ApiError> {
    policy::may_use(&who, Function::FieldWrite)?;
    let key = idempotency_key(&req)?;
    let body = body.into_inner();
    let submitter = write::submitter(&who, "createActivity", key, &body)?;
    let result = write::submit(&state, &who, Command::Create(body, submitter)).await?;
    super::activities::acknowledge(&state, result).await
}
