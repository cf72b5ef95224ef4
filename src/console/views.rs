//! The console's HTML: one layout and a function per page, in maud (checked at compile
//! time, every interpolation escaped).

use super::assets;
use crate::auth::{Principal, Role};
use crate::features::approvals::Approval;
use maud::{html, Markup, DOCTYPE};
use serde_json::Value;

/// What the header shows: who is signed in, the pending count, the form token for logout.
pub struct Chrome<'a> {
    pub who: &'a Principal,
    pub csrf: &'a str,
    pub pending: usize,
    pub current: &'static str,
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · fieldsync console" }
            link rel="stylesheet" href=(assets::css_url());
            script src=(assets::js_url()) defer {}
        }
    }
}

pub fn layout(title: &str, chrome: Option<&Chrome>, body: Markup) -> Markup {
    let link = |href: &str, name: &str, key: &str| {
        let current = chrome.is_some_and(|c| c.current == key);
        html! { a href=(href) aria-current=[current.then_some("page")] { (name) } }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a.skip href="#main" { "Skip to content" }
                header {
                    nav aria-label="Console" {
                        span.brand { "fieldsync" }
                        @if let Some(c) = chrome {
                            a href="/console/approvals" aria-current=[(c.current == "approvals").then_some("page")] {
                                "Approvals"
                                span.badge #pending-count aria-label="pending approvals" { (c.pending) }
                            }
                            (link("/console/team", "Team today", "team"))
                            @if c.who.role == Role::Admin {
                                (link("/console/queue", "Queue health", "queue"))
                            }
                            span.muted { (c.who.name) }
                            form method="post" action="/console/logout" {
                                input type="hidden" name="csrf" value=(c.csrf);
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main #main tabindex="-1" { (body) }
            }
        }
    }
}

pub fn error_page(title: &str, detail: &str) -> Markup {
    layout(
        title,
        None,
        html! {
            h1 { (title) }
            p { (detail) }
            p { a href="/console/approvals" { "Back to the console" } }
        },
    )
}

/// After an SSO sign-in: our own page moves on to the inbox, so the browser sends the new
/// SameSite=Strict cookie (it would not on a redirect chain that began at the provider).
pub fn signed_in() -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta http-equiv="refresh" content="0;url=/console/approvals";
                title { "Signed in · fieldsync console" }
                link rel="stylesheet" href=(assets::css_url());
            }
            body { main #main { p { "Signed in. " a href="/console/approvals" { "Continue to the console" } } } }
        }
    }
}

pub fn login(error: Option<&str>, need_totp: bool, username: &str, sso: bool) -> Markup {
    layout(
        "Sign in",
        None,
        html! {
            div.login {
                h1 { "Sign in to the console" }
                @if let Some(e) = error {
                    p.notice.bad role="alert" { (e) }
                }
                form method="post" action="/console/login" {
                    label for="username" { "Username" }
                    input #username name="username" autocomplete="username" required value=(username);
                    label for="password" { "Password" }
                    input #password name="password" type="password" autocomplete="current-password" required;
                    @if need_totp {
                        label for="totp" { "Authenticator code" }
                        input #totp name="totp" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}";
                    }
                    p { button.primary type="submit" { "Sign in" } }
                }
                @if sso {
                    p { a.button #sso href="/console/sso/start" { "Sign in with SSO" } }
                }
            }
        },
    )
}

/// The inbox's filters, as given (kept in every link and in the refresh address).
#[derive(Debug, Default, Clone, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct InboxFilter {
    pub technician: String,
    pub date: String,
    #[serde(rename = "type")]
    pub activity_type: String,
    pub after: String,
}

impl InboxFilter {
    pub fn query(&self, after: Option<&str>) -> String {
        let mut f = self.clone();
        f.after = after.unwrap_or("").to_string();
        serde_urlencoded::to_string(&f).unwrap_or_default()
    }
}

fn age(at: chrono::DateTime<chrono::Utc>) -> String {
    let mins = (chrono::Utc::now() - at).num_minutes().max(0);
    match mins {
        0 => "just now".into(),
        m if m < 60 => format!("{m} min ago"),
        m if m < 48 * 60 => format!("{} h ago", m / 60),
        m => format!("{} days ago", m / 1440),
    }
}

pub fn inbox_rows(items: &[Approval]) -> Markup {
    html! {
        @if items.is_empty() {
            tr { td colspan="5" { "Nothing is waiting for a decision." } }
        }
        @for a in items {
            tr {
                td { a href=(format!("/console/approvals/{}", a.id)) { "Job " (a.activity_id) } }
                td { (a.technician) }
                td.wide { (a.activity_type.as_deref().unwrap_or("—")) }
                td { (a.date) }
                td { time datetime=(a.requested_at.to_rfc3339()) { (age(a.requested_at)) } }
            }
        }
    }
}

pub struct Inbox<'a> {
    pub filter: &'a InboxFilter,
    pub technicians: &'a [(String, String)],
    pub items: &'a [Approval],
    pub next: Option<String>,
}

pub fn inbox(chrome: &Chrome, v: &Inbox) -> Markup {
    let f = v.filter;
    let body = html! {
        h1 { "Approvals waiting for you" }
        form.filters method="get" action="/console/approvals" aria-label="Filters" {
            div {
                label for="technician" { "Technician" }
                select #technician name="technician" {
                    option value="" { "All" }
                    @for (id, name) in v.technicians {
                        option value=(id) selected[f.technician == *id] { (name) }
                    }
                }
            }
            div {
                label for="date" { "Date" }
                input #date name="date" type="date" value=(f.date);
            }
            div {
                label for="type" { "Activity type" }
                input #type name="type" value=(f.activity_type);
            }
            div { button type="submit" { "Filter" } }
        }
        table {
            caption.muted { "Oldest first. This list refreshes itself." }
            thead { tr { th { "Job" } th { "Technician" } th.wide { "Type" } th { "Date" } th { "Requested" } } }
            tbody #inbox-rows data-refresh=(format!("/console/approvals/rows?{}", f.query(Some(&f.after)))) {
                (inbox_rows(v.items))
            }
        }
        nav.pager aria-label="Pages" {
            @if !f.after.is_empty() {
                a href=(format!("/console/approvals?{}", f.query(None))) { "First page" }
            }
            @if let Some(n) = &v.next {
                a href=(format!("/console/approvals?{}", f.query(Some(n)))) { "Next page" }
            }
        }
    };
    layout("Approvals", Some(chrome), body)
}

/// An instant as the technician's local date and time ("2026-12-02 08:10"), or the raw
/// value when it is not RFC 3339.
fn when(v: &Value) -> String {
    match v.as_str().map(chrono::DateTime::parse_from_rfc3339) {
        Some(Ok(t)) => t.format("%Y-%m-%d %H:%M").to_string(),
        _ => text(v),
    }
}

/// Only the local time of day ("08:10").
fn clock(v: &Value) -> String {
    match v.as_str().map(chrono::DateTime::parse_from_rfc3339) {
        Some(Ok(t)) => t.format("%H:%M").to_string(),
        _ => text(v),
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "—".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Everything a decision needs, gathered by the page handler.
pub struct ApprovalView<'a> {
    pub approval: &'a Approval,
    pub job: Option<Value>,
    pub evidence: &'a Value,
    pub distance_m: Option<f64>,
    /// Why this caller cannot decide it (own work), if so.
    pub cannot_decide: Option<&'a str>,
    pub notice: Option<(&'a str, &'a str)>,
    pub idempotency_key: &'a str,
}

pub fn approval(chrome: &Chrome, v: &ApprovalView) -> Markup {
    let a = v.approval;
    let ev = v.evidence;
    let body = html! {
        p { a href="/console/approvals" { "← Approvals" } }
        h1 { "Job " (a.activity_id) " · " (a.technician) }
        @if let Some((kind, msg)) = v.notice {
            p class=(format!("notice {kind}")) role="status" { (msg) }
        }
        div.grid {
            section.card aria-labelledby="job-h" {
                h2 #job-h { "The job" }
                @if let Some(j) = &v.job {
                    dl {
                        dt { "Customer" } dd { (text(&j["customer"]["name"])) }
                        dt { "Address" } dd {
                            (text(&j["address"]["street"])) ", " (text(&j["address"]["city"]))
                            " " (text(&j["address"]["postalCode"]))
                        }
                        dt { "Service window" } dd {
                            (when(&j["serviceWindow"]["start"])) "–" (clock(&j["serviceWindow"]["end"]))
                        }
                        dt { "Type" } dd { (text(&j["type"])) }
                        dt { "Status" } dd { (text(&j["status"])) }
                    }
                } @else {
                    p.muted { "The job's details cannot be read from OFSC right now." }
                }
            }
            section.card aria-labelledby="where-h" {
                h2 #where-h { "Where it was completed" }
                @match v.distance_m {
                    Some(d) => p #distance { (format!("{d:.0}")) " m from the job's location" },
                    None => p #distance.muted { "No location was recorded at completion, or the job has none." },
                }
            }
        }
        section aria-labelledby="timeline-h" {
            h2 #timeline-h { "Timeline" }
            div.scroll { table {
                thead { tr { th { "Status" } th { "Device time" } th { "OFSC recorded" } th { "Sent to OFSC" } } }
                tbody {
                    @for t in ev["timeline"].as_array().into_iter().flatten() {
                        @let recorded = match (t["status"].as_str(), &v.job) {
                            (Some("started"), Some(j)) => when(&j["plannedStart"]),
                            (Some("completed"), Some(j)) => when(&j["plannedEnd"]),
                            _ => "—".to_string(),
                        };
                        tr {
                            td { (text(&t["status"])) }
                            td { (when(&t["time"])) }
                            td { (recorded) }
                            td class=(format!("state-{}", text(&t["state"]))) { (text(&t["state"])) }
                        }
                    }
                }
            } }
        }
        section aria-labelledby="parts-h" {
            h2 #parts-h { "Parts used" }
            @let parts = ev["parts"].as_array().cloned().unwrap_or_default();
            @if parts.is_empty() { p.muted { "None recorded." } }
            @else {
                table {
                    thead { tr { th { "Action" } th { "Type" } th { "Serial" } th { "Quantity" } } }
                    tbody {
                        @for p in &parts {
                            tr { td { (text(&p["action"])) } td { (text(&p["inventoryType"])) }
                                 td { (text(&p["serialNumber"])) } td { (text(&p["quantity"])) } }
                        }
                    }
                }
            }
        }
        section aria-labelledby="notes-h" {
            h2 #notes-h { "Notes" }
            @let notes = ev["notes"].as_array().cloned().unwrap_or_default();
            @if notes.is_empty() { p.muted { "None." } }
            ul { @for n in &notes { li { strong { (text(&n["status"])) ": " } (text(&n["text"])) } } }
        }
        section aria-labelledby="files-h" {
            h2 #files-h { "Photos and signature" }
            @let files = ev["attachments"].as_array().cloned().unwrap_or_default();
            @if files.is_empty() { p.muted { "None uploaded." } }
            ul.thumbs {
                @for f in &files {
                    @let id = text(&f["attachmentId"]);
                    li {
                        a href=(format!("/console/attachments/{id}/content")) {
                            img src=(format!("/console/attachments/{id}/thumbnail"))
                                alt=(format!("{} taken {}", text(&f["kind"]), text(&f["capturedAt"])));
                        }
                    }
                }
            }
        }
        section aria-labelledby="decide-h" {
            h2 #decide-h { "Decision" }
            @if let Some(d) = &a.decision {
                p #decided.notice.ok {
                    (if d.decision == "approve" { "Approved" } else { "Rejected" })
                    " by " (d.by_name) " (" (d.by) ") at " (d.at.to_rfc3339())
                    @if !d.comment.is_empty() { ": “" (d.comment) "”" }
                    @if d.reopen { " The job was reopened." }
                }
            } @else if let Some(why) = v.cannot_decide {
                p.notice { (why) }
            } @else {
                div.grid {
                    form.card method="post" action=(format!("/console/approvals/{}", a.id)) {
                        input type="hidden" name="csrf" value=(chrome.csrf);
                        input type="hidden" name="ikey" value=(format!("{}-approve", v.idempotency_key));
                        input type="hidden" name="decision" value="approve";
                        label for="approve-comment" { "Comment (optional)" }
                        textarea #approve-comment name="comment" maxlength="4000" {}
                        p { button #approve.primary type="submit" { "Approve" } }
                    }
                    form.card method="post" action=(format!("/console/approvals/{}", a.id)) {
                        input type="hidden" name="csrf" value=(chrome.csrf);
                        input type="hidden" name="ikey" value=(format!("{}-reject", v.idempotency_key));
                        input type="hidden" name="decision" value="reject";
                        label for="reject-comment" { "Reason (required)" }
                        textarea #reject-comment name="comment" required maxlength="4000" {}
                        label { input type="checkbox" name="reopen" value="true" checked; " Reopen the job for the technician" }
                        p { button #reject.danger type="submit" { "Reject" } }
                    }
                }
            }
        }
    };
    layout("Approval", Some(chrome), body)
}
