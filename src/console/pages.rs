//! The console's sign-in, approvals inbox and approval pages: each reads through the same
//! functions as the API and decides through `write::decision::decide_as`.

use super::guard::{over_tls, ConsoleUser};
use super::session::{self, COOKIE};
use super::views::{self, ApprovalView, Chrome, Inbox, InboxFilter};
use super::ConsoleError;
use crate::api::approvals::visible;
use crate::api::{sessions, ApiError};
use crate::auth::policy;
use crate::auth::users;
use crate::auth::Role;
use crate::features::approvals::{self, Approval, ApprovalStatus};
use crate::read::{present, query};
use crate::state::AppState;
use crate::write::decision::{decide_as, DecisionBody};
use crate::write::outbox::Enqueued;
use crate::write::WriteError;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

const PAGE: usize = 25;

fn html(markup: maud::Markup) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .body(markup.into_string())
}

fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header(("Location", to))
        .finish()
}

/// Pending approvals the user may decide or watch, matching `extra`, oldest first.
fn pending(
    state: &AppState,
    user: &ConsoleUser,
    after: u64,
    limit: usize,
    extra: &dyn Fn(&Approval) -> bool,
) -> Result<(Vec<Approval>, bool), ConsoleError> {
    let dir = state.directory.as_ref();
    let keep = |a: &Approval| {
        a.status == ApprovalStatus::Pending
            && policy::oversees(&user.who, &a.resource_id, dir)
            && extra(a)
    };
    Ok(approvals::list(
        state.store.as_ref(),
        after,
        limit,
        &keep,
        Some(&state.pending_approvals),
    )?)
}

/// How long a user's pending count is reused: every page and every inbox refresh shows it,
/// and counting decodes each pending approval (about 3 ms for 1,000).
const COUNT_FRESH: std::time::Duration = std::time::Duration::from_secs(2);

/// Recent pending counts by user id. A decision made here drops the decider's entry.
#[derive(Default)]
pub struct Counts(std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, usize)>>);

impl Counts {
    pub fn forget(&self, user_id: &str) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(user_id);
    }
}

/// How many approvals wait for this user (the header's count), at most two seconds old.
pub fn pending_count(state: &AppState, user: &ConsoleUser) -> Result<usize, ConsoleError> {
    let counts = &state.console_counts;
    {
        let mut map = counts.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 10_000 {
            map.clear();
        }
        if let Some((at, n)) = map.get(&user.who.user_id) {
            if at.elapsed() < COUNT_FRESH {
                return Ok(*n);
            }
        }
    }
    let n = pending(state, user, 0, usize::MAX, &|_| true)?.0.len();
    let mut map = counts.0.lock().unwrap_or_else(|p| p.into_inner());
    map.insert(user.who.user_id.clone(), (std::time::Instant::now(), n));
    Ok(n)
}

pub fn chrome<'a>(
    state: &AppState,
    user: &'a ConsoleUser,
    current: &'static str,
) -> Result<Chrome<'a>, ConsoleError> {
    Ok(Chrome {
        who: &user.who,
        csrf: &user.session.csrf,
        pending: pending_count(state, user)?,
        current,
    })
}

pub async fn home() -> HttpResponse {
    see_other("/console/approvals")
}

pub async fn login_form(state: web::Data<AppState>) -> HttpResponse {
    html(views::login(None, false, "", state.oidc.is_some()))
}

#[derive(Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
    #[serde(default)]
    totp: Option<String>,
}

/// Signs in with the API's password check (same throttle, same TOTP rule); technicians are
/// refused.
pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse, ConsoleError> {
    let form = form.into_inner();
    let addr = req
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    let totp = form.totp.as_deref().filter(|t| !t.is_empty());
    let user = match sessions::password_login(&state, &addr, &form.username, &form.password, totp)
        .await
    {
        Ok(u) => u,
        Err(e) => {
            let (status, message, need_totp) = match &e {
                ApiError::Unauthorized {
                    code: "mfa-required",
                    ..
                } => (401, "Enter the code from your authenticator app.", true),
                ApiError::Unauthorized { code, .. } if code.contains("totp") => {
                    (401, "That authenticator code is not right.", true)
                }
                ApiError::Unauthorized { .. } => (401, "The username or password is wrong.", false),
                ApiError::TooManyRequests { .. } => (
                    429,
                    "Too many failed attempts. Wait a while and try again.",
                    false,
                ),
                _ => return Err(e.into()),
            };
            let page = views::login(
                Some(message),
                need_totp,
                &form.username,
                state.oidc.is_some(),
            );
            return Ok(HttpResponse::build(
                actix_web::http::StatusCode::from_u16(status)
                    .unwrap_or(actix_web::http::StatusCode::UNAUTHORIZED),
            )
            .content_type("text/html; charset=utf-8")
            .body(page.into_string()));
        }
    };
    if user.role == Role::Technician {
        return Err(ConsoleError::Forbidden(
            "the console is for supervisors and administrators".into(),
        ));
    }
    let (token, _) = session::start(state.store.as_ref(), &user)?;
    state.commit.flush().await.map_err(ApiError::from)?;
    tracing::info!(user = %user.username, "console session started");
    Ok(HttpResponse::SeeOther()
        .cookie(session::cookie(token, over_tls(&req, &state)))
        .insert_header(("Location", "/console/approvals"))
        .finish())
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: Option<String>,
}

pub async fn logout(
    state: web::Data<AppState>,
    req: HttpRequest,
    user: ConsoleUser,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, ConsoleError> {
    user.check_csrf(form.csrf.as_deref())?;
    if let Some(c) = req.cookie(COOKIE) {
        session::end(state.store.as_ref(), c.value())?;
    }
    Ok(HttpResponse::SeeOther()
        .cookie(session::cleared(over_tls(&req, &state)))
        .insert_header(("Location", "/console/login"))
        .finish())
}

/// The technicians the user oversees: (resource id, name), for the filter.
pub fn overseen(
    state: &AppState,
    user: &ConsoleUser,
) -> Result<Vec<(String, String)>, ConsoleError> {
    let dir = state.directory.as_ref();
    Ok(users::list(state.store.as_ref())?
        .into_iter()
        .filter(|u| u.role == Role::Technician && !u.disabled)
        .filter_map(|u| u.resource_id.map(|r| (r, u.name)))
        .filter(|(r, _)| policy::oversees(&user.who, r, dir))
        .collect())
}

fn inbox_page(
    state: &AppState,
    user: &ConsoleUser,
    f: &InboxFilter,
) -> Result<(Vec<Approval>, Option<String>), ConsoleError> {
    let after = match f.after.as_str() {
        "" => 0,
        c => approvals::approval_seq(c)
            .ok_or_else(|| ConsoleError::BadRequest("that page does not exist".into()))?,
    };
    let matches = |a: &Approval| {
        (f.technician.is_empty() || a.resource_id == f.technician)
            && (f.date.is_empty() || a.date == f.date)
            && (f.activity_type.is_empty()
                || a.activity_type.as_deref() == Some(f.activity_type.as_str()))
    };
    let (items, more) = pending(state, user, after, PAGE, &matches)?;
    let next = more.then(|| items.last().map(|a| a.id.clone())).flatten();
    Ok((items, next))
}

pub async fn inbox(
    state: web::Data<AppState>,
    user: ConsoleUser,
    q: web::Query<InboxFilter>,
) -> Result<HttpResponse, ConsoleError> {
    policy::may_use(&user.who, policy::Function::Decide).map_err(ApiError::from)?;
    let f = q.into_inner();
    let (items, next) = inbox_page(&state, &user, &f)?;
    let technicians = overseen(&state, &user)?;
    let chrome = chrome(&state, &user, "approvals")?;
    Ok(html(views::inbox(
        &chrome,
        &Inbox {
            filter: &f,
            technicians: &technicians,
            items: &items,
            next,
        },
    )))
}

/// The inbox's rows alone, for the page's self-refresh; the count rides in a header.
pub async fn inbox_rows(
    state: web::Data<AppState>,
    user: ConsoleUser,
    q: web::Query<InboxFilter>,
) -> Result<HttpResponse, ConsoleError> {
    policy::may_use(&user.who, policy::Function::Decide).map_err(ApiError::from)?;
    let (items, _) = inbox_page(&state, &user, &q)?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("X-Pending-Count", pending_count(&state, &user)?.to_string()))
        .body(views::inbox_rows(&items).into_string()))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ApprovalQuery {
    decided: Option<String>,
}

async fn render_approval(
    state: &AppState,
    user: &ConsoleUser,
    a: &Approval,
    notice: Option<(&str, &str)>,
) -> Result<maud::Markup, ConsoleError> {
    let evidence = approvals::evidence(state.store.as_ref(), a)?;
    // The job's details come from the cached route (or OFSC); without them the evidence
    // still shows and the decision can still be made.
    let job = match query::find_activity(state, a.activity_id, Some(&user.who.username)).await {
        Ok(act) => Some(present::activity(&act, None)),
        Err(e) => match ApiError::from(e) {
            ApiError::Internal(e) => return Err(ConsoleError::Internal(e)),
            _ => None,
        },
    };
    let at = &evidence["locationAtCompletion"];
    let distance_m = job.as_ref().and_then(|j| {
        let job_at = (
            j["location"]["lat"].as_f64()?,
            j["location"]["lng"].as_f64()?,
        );
        crate::domain::geo::distance_m((at["lat"].as_f64()?, at["lng"].as_f64()?), job_at)
    });
    let own = a.technician_user_id == user.who.user_id;
    let may = policy::may_decide(&user.who, &a.resource_id, state.directory.as_ref()).is_ok();
    let cannot_decide = match (own, may) {
        (true, _) => Some("This is your own work: another supervisor decides it."),
        (false, false) => Some("Your role may not decide approvals."),
        _ => None,
    };
    let ikey = format!("console-{}", uuid::Uuid::now_v7());
    let chrome = chrome(state, user, "approvals")?;
    Ok(views::approval(
        &chrome,
        &ApprovalView {
            approval: a,
            job,
            evidence: &evidence,
            distance_m,
            cannot_decide,
            notice,
            idempotency_key: &ikey,
        },
    ))
}

pub async fn approval(
    state: web::Data<AppState>,
    user: ConsoleUser,
    path: web::Path<String>,
    q: web::Query<ApprovalQuery>,
) -> Result<HttpResponse, ConsoleError> {
    policy::may_use(&user.who, policy::Function::Decide).map_err(ApiError::from)?;
    let a = visible(&state, &user.who, &path)?;
    let notice = q
        .decided
        .as_ref()
        .map(|_| ("ok", "Your decision is saved and on its way to OFSC."));
    Ok(html(render_approval(&state, &user, &a, notice).await?))
}

#[derive(Deserialize)]
pub struct DecisionForm {
    #[serde(default)]
    csrf: Option<String>,
    ikey: String,
    decision: String,
    #[serde(default)]
    comment: String,
    #[serde(default)]
    reopen: Option<String>,
}

/// A decision from the page's form: the same call as `POST /approvals/{id}/decision`.
pub async fn decide(
    state: web::Data<AppState>,
    user: ConsoleUser,
    path: web::Path<String>,
    form: web::Form<DecisionForm>,
) -> Result<HttpResponse, ConsoleError> {
    user.check_csrf(form.csrf.as_deref())?;
    policy::may_use(&user.who, policy::Function::Decide).map_err(ApiError::from)?;
    let a = visible(&state, &user.who, &path)?;
    let form = form.into_inner();
    if form.decision == "reject" && form.comment.trim().is_empty() {
        let page = render_approval(
            &state,
            &user,
            &a,
            Some(("bad", "A rejection needs a reason.")),
        )
        .await?;
        return Ok(HttpResponse::UnprocessableEntity()
            .content_type("text/html; charset=utf-8")
            .body(page.into_string()));
    }
    let body = DecisionBody {
        decision: form.decision,
        comment: form.comment,
        reopen: form.reopen.is_some(),
    };
    let key = format!("{}:{}", user.who.username, form.ikey);
    match decide_as(&state, &user.who, &a, body, key).await {
        Ok(result) => {
            crate::write::settle(&state, &result).await?;
            state.console_counts.forget(&user.who.user_id);
            if let Enqueued::KeyReused = result {
                return Err(ConsoleError::BadRequest(
                    "this form was already used for another decision".into(),
                ));
            }
            Ok(see_other(&format!("/console/approvals/{}?decided=1", a.id)))
        }
        // Someone else decided first: show what happened.
        Err(WriteError::Refused {
            code: "already-decided",
            ..
        }) => {
            let now = visible(&state, &user.who, &a.id)?;
            let page = render_approval(
                &state,
                &user,
                &now,
                Some((
                    "bad",
                    "Another supervisor decided this approval first; their decision stands.",
                )),
            )
            .await?;
            Ok(HttpResponse::Conflict()
                .content_type("text/html; charset=utf-8")
                .body(page.into_string()))
        }
        Err(e) => Err(e.into()),
    }
}

/// A photo or signature of an approval's job, for the signed-in supervisor: the API's own
/// serving code, with the same visibility rule.
pub async fn attachment(
    state: web::Data<AppState>,
    user: ConsoleUser,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ConsoleError> {
    let (id, variant) = path.into_inner();
    let thumbnail = match variant.as_str() {
        "thumbnail" => true,
        "content" => false,
        _ => return Err(ConsoleError::NotFound),
    };
    use crate::api::attachments::{serve, Disposition};
    Ok(serve(&state, &user.who, &id, thumbnail, Disposition::Inline).await?)
}
