//! "Team today": each overseen technician's route for their own today, stop by stop, with
//! the state of what is queued for OFSC and when their device last synced.

use super::guard::ConsoleUser;
use super::pages::{chrome, overseen};
use super::views::layout;
use super::ConsoleError;
use crate::api::ApiError;
use crate::auth::policy::{self, Function};
use crate::read::{present, query};
use crate::state::AppState;
use crate::write::outbox;
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use maud::{html, Markup};
use serde_json::Value;

/// A device that has not synced for this long is marked stale.
const STALE_AFTER: chrono::Duration = chrono::Duration::minutes(30);

struct Stop {
    activity_id: i64,
    position: String,
    status: String,
    pending: u64,
    /// The latest op's OFSC state and, when it failed, why.
    op_state: Option<(String, Option<String>)>,
}

struct Row {
    name: String,
    resource: String,
    date: String,
    stops: Result<Vec<Stop>, String>,
    last_sync: Option<DateTime<Utc>>,
}

fn stop_of(state: &AppState, v: &Value) -> Result<Stop, ApiError> {
    let id = v["activityId"].as_i64().unwrap_or_default();
    let last = outbox::activity_ops(state.store.as_ref(), id)?.pop();
    Ok(Stop {
        activity_id: id,
        position: v["position"].as_i64().map_or("—".into(), |p| p.to_string()),
        status: v["status"].as_str().unwrap_or("").to_string(),
        pending: v["pendingOps"].as_u64().unwrap_or(0),
        op_state: last.map(|o| {
            let why = o.ofsc_detail.or(o.last_error);
            (o.state.name().to_string(), why)
        }),
    })
}

async fn row(state: &AppState, resource: String, name: String, username: &str) -> Row {
    let (_, tz) = query::resource_zone(state, &resource, None);
    let date = Utc::now().with_timezone(&tz).date_naive().to_string();
    // Today's routes of the supervisor's own team only: bounded, so not charged.
    let stops = match query::device_route_with_activities(state, &resource, &date, None).await {
        Ok((dev, acts)) => present::stops(&dev, &acts)
            .iter()
            .map(|v| stop_of(state, v))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    Row {
        name,
        last_sync: state.last_sync.of(username),
        resource,
        date,
        stops,
    }
}

fn view(rows: &[Row]) -> Markup {
    html! {
        h1 { "Team today" }
        @if rows.is_empty() { p { "You oversee no technicians." } }
        @for r in rows {
            section.card aria-labelledby=(format!("t-{}", r.resource)) {
                h2 id=(format!("t-{}", r.resource)) { (r.name) " " span.muted { "(" (r.resource) ", " (r.date) ")" } }
                p {
                    "Last sync: "
                    @match r.last_sync {
                        Some(t) => {
                            time datetime=(t.to_rfc3339()) { (t.format("%H:%M UTC")) }
                            @if Utc::now() - t > STALE_AFTER { " " span.stale { "stale" } }
                        }
                        None => span.stale { "not since the server started" },
                    }
                }
                @match &r.stops {
                    Err(e) => p.notice.bad { "The route cannot be read: " (e) },
                    Ok(stops) if stops.is_empty() => p.muted { "No stops today." },
                    Ok(stops) => ol.stops aria-label=(format!("{}'s stops", r.name)) {
                        @for s in stops {
                            li.stop {
                                a href=(format!("/console/team/activities/{}", s.activity_id)) { "#" (s.position) " · job " (s.activity_id) }
                                br;
                                (s.status)
                                @if s.pending > 0 { " · " (s.pending) " pending" }
                                @if let Some((st, why)) = &s.op_state {
                                    br;
                                    span class=(format!("state-{st}")) { (st) }
                                    @if let Some(w) = why { " " span.muted { (w) } }
                                }
                            }
                        }
                    },
                }
            }
        }
    }
}

pub async fn team(
    state: web::Data<AppState>,
    user: ConsoleUser,
) -> Result<HttpResponse, ConsoleError> {
    policy::may_use(&user.who, Function::Operate).map_err(ApiError::from)?;
    let names = crate::auth::users::list(state.store.as_ref())?;
    let mut rows = Vec::new();
    for (resource, name) in overseen(&state, &user)? {
        let username = names
            .iter()
            .find(|u| u.resource_id.as_deref() == Some(resource.as_str()))
            .map(|u| u.username.clone())
            .unwrap_or_default();
        rows.push(row(&state, resource, name, &username).await);
    }
    let chrome = chrome(&state, &user, "team")?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .body(layout("Team today", Some(&chrome), view(&rows)).into_string()))
}

/// What an op does, as its wire name says (`status: completed`, `part`, `setProperties`).
fn kind_name(kind: &outbox::OpKind) -> String {
    let v = serde_json::to_value(kind).unwrap_or_default();
    let t = v["type"].as_str().unwrap_or("op").to_string();
    match v["status"].as_str() {
        Some(st) => format!("{t}: {st}"),
        None => t,
    }
}

/// One stop's timeline: every op on the activity, with device time and OFSC outcome.
pub async fn stop(
    state: web::Data<AppState>,
    user: ConsoleUser,
    path: web::Path<i64>,
) -> Result<HttpResponse, ConsoleError> {
    policy::may_use(&user.who, Function::Operate).map_err(ApiError::from)?;
    let a = query::find_activity(&state, *path, Some(&user.who.username)).await?;
    policy::may_see(
        &user.who,
        a.resource_id.as_deref().unwrap_or(""),
        state.directory.as_ref(),
    )
    .map_err(ApiError::from)?;
    let ops = outbox::activity_ops(state.store.as_ref(), *path)?;
    let body = html! {
        p { a href="/console/team" { "← Team today" } }
        h1 { "Job " (path) " · " (a.customer_name.as_deref().unwrap_or("")) }
        table {
            thead { tr { th { "What" } th { "Device time" } th { "OFSC" } th { "Applied" } th { "Why" } } }
            tbody {
                @for o in &ops {
                    tr {
                        td { (kind_name(&o.kind)) }
                        td { (o.time.to_rfc3339()) }
                        td class=(format!("state-{}", o.state.name())) { (o.state.name()) }
                        td { (o.applied_at.map(|t| t.to_rfc3339()).unwrap_or_default()) }
                        td { (o.ofsc_detail.clone().or(o.last_error.clone()).unwrap_or_default()) }
                    }
                }
            }
        }
    };
    let chrome = chrome(&state, &user, "team")?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .body(layout("Timeline", Some(&chrome), body).into_string()))
}
