//! "Queue health" for admins: op counts by state, the oldest open op's age, the ops that
//! need a person (dead, rejected, blocked) with retry and discard, and failed webhook
//! deliveries with redeliver. Every button goes through the admin API's own functions.

use super::guard::ConsoleUser;
use super::pages::chrome;
use super::views::layout;
use super::ConsoleError;
use crate::api::{queue, webhooks as webhook_api, ApiError};
use crate::auth::policy::{self, Function};
use crate::features::webhooks::{self, DeliveryState};
use crate::state::AppState;
use crate::write::outbox::{self, OpState};
use actix_web::{web, HttpResponse};
use maud::html;
use serde::Deserialize;

const SHOWN: usize = 100;

pub async fn queue(
    state: web::Data<AppState>,
    user: ConsoleUser,
) -> Result<HttpResponse, ConsoleError> {
    policy::may_use(&user.who, Function::Administer).map_err(ApiError::from)?;
    let (by_state, oldest) = queue::health(&state, &user.who)?;
    let attention = queue::needing_attention(&state, &user.who, &outbox::ATTENTION, 0, SHOWN)?;
    let (failed, _) = webhooks::list(
        state.store.as_ref(),
        Some(DeliveryState::Failed),
        None,
        SHOWN,
    )?;
    let csrf = &user.session.csrf;
    let body = html! {
        h1 { "Queue health" }
        section aria-labelledby="counts-h" {
            h2 #counts-h { "Ops by state" }
            dl #counts {
                @for s in OpState::ALL {
                    dt { (s.name()) }
                    dd { (by_state.get(s.name()).copied().unwrap_or(0)) }
                }
                dt { "Oldest open op" }
                dd { (format!("{oldest:.0}")) " s" }
            }
        }
        section aria-labelledby="attention-h" {
            h2 #attention-h { "Needing a person" }
            @if attention.is_empty() { p { "Nothing is dead, rejected or blocked." } }
            @else {
                table {
                    thead { tr { th { "Op" } th { "Technician" } th { "State" } th { "Why" } th { "Act" } } }
                    tbody {
                        @for o in &attention {
                            tr {
                                td { (o.id) br; span.muted { "job " (o.activity_id.unwrap_or_default()) } }
                                td { (o.resource_id) }
                                td class=(format!("state-{}", o.state.name())) { (o.state.name()) }
                                td { (o.ofsc_detail.clone().or(o.last_error.clone()).unwrap_or_default()) }
                                td {
                                    form method="post" action=(format!("/console/queue/ops/{}", o.id)) {
                                        input type="hidden" name="csrf" value=(csrf);
                                        button type="submit" name="action" value="retry" { "Retry" }
                                        " "
                                        button.danger type="submit" name="action" value="discard" { "Discard" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="hooks-h" {
            h2 #hooks-h { "Failed webhook deliveries" }
            @if failed.is_empty() { p { "None." } }
            @else {
                table {
                    thead { tr { th { "Event" } th { "Receiver" } th { "Attempts" } th { "Last error" } th { "Act" } } }
                    tbody {
                        @for d in &failed {
                            tr {
                                td { (d.event_type) }
                                td { (d.url) }
                                td { (d.attempts) }
                                td { (d.last_error.clone().unwrap_or_default()) }
                                td {
                                    form method="post" action=(format!("/console/queue/deliveries/{}", d.id)) {
                                        input type="hidden" name="csrf" value=(csrf);
                                        button type="submit" { "Redeliver" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    let chrome = chrome(&state, &user, "queue")?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .body(layout("Queue health", Some(&chrome), body).into_string()))
}

#[derive(Deserialize)]
pub struct ActForm {
    #[serde(default)]
    csrf: Option<String>,
    action: String,
}

pub async fn act(
    state: web::Data<AppState>,
    user: ConsoleUser,
    path: web::Path<String>,
    form: web::Form<ActForm>,
) -> Result<HttpResponse, ConsoleError> {
    user.check_csrf(form.csrf.as_deref())?;
    policy::may_use(&user.who, Function::Administer).map_err(ApiError::from)?;
    let retry = match form.action.as_str() {
        "retry" => true,
        "discard" => false,
        other => {
            return Err(ConsoleError::BadRequest(format!(
                "unknown action {other:?}"
            )))
        }
    };
    queue::act_as(&state, &user.who, &path, retry).await?;
    Ok(HttpResponse::SeeOther()
        .insert_header(("Location", "/console/queue"))
        .finish())
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    csrf: Option<String>,
}

pub async fn redeliver(
    state: web::Data<AppState>,
    user: ConsoleUser,
    path: web::Path<String>,
    form: web::Form<CsrfOnly>,
) -> Result<HttpResponse, ConsoleError> {
    user.check_csrf(form.csrf.as_deref())?;
    webhook_api::redeliver_as(&state, &user.who, &path).await?;
    Ok(HttpResponse::SeeOther()
        .insert_header(("Location", "/console/queue"))
        .finish())
}
