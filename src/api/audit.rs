//! `GET /audit`: the append-only trail of accepted writes and supervisor or admin actions,
//! for supervisors (the resources they oversee) and admins.

use super::ApiError;
use crate::auth::policy::{self, Function};
use crate::auth::Principal;
use crate::features::audit::{self, AuditEntry};
use crate::state::AppState;
use actix_web::{web, HttpResponse};
use chrono::{DateTime, FixedOffset};
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditQuery {
    activity_id: Option<i64>,
    resource_id: Option<crate::ids::ResourceId>,
    since: Option<DateTime<FixedOffset>>,
    cursor: Option<String>,
    limit: Option<usize>,
}

fn cursor_of(e: &AuditEntry) -> String {
    crate::ids::format("aud_", e.seq)
}

pub async fn list(
    state: web::Data<AppState>,
    who: Principal,
    q: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    policy::may_use(&who, Function::Operate)?;
    let bad_cursor = || ApiError::BadRequest {
        code: "invalid-cursor",
        detail: "unknown cursor".into(),
    };
    let mut after = match q.cursor.as_deref() {
        Some(c) => crate::ids::parse("aud_", c).ok_or_else(bad_cursor)?,
        None => 0,
    };
    let limit = super::page_limit(q.limit, 100, 1000)?;
    let dir = state.directory.as_ref();
    let mut items = Vec::new();
    let mut more = false;
    // Entries of resources the caller does not oversee (and entries about no resource, for
    // supervisors) are skipped, never shown.
    'scan: loop {
        let page = audit::list(state.store.as_ref(), after, 1000)?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for e in page {
            let visible = match &e.resource_id {
                Some(r) => policy::oversees(&who, r, dir),
                None => who.role == crate::auth::Role::Admin,
            };
            let wanted = visible
                && q.activity_id.is_none_or(|a| e.activity_id == Some(a))
                && q.resource_id
                    .as_deref()
                    .is_none_or(|r| e.resource_id.as_deref() == Some(r))
                && q.since.is_none_or(|s| e.at >= s);
            if !wanted {
                continue;
            }
            if items.len() == limit {
                more = true;
                break 'scan;
            }
            items.push(e);
        }
    }
    let next = if more {
        items.last().map(cursor_of)
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(json!({"items": items, "nextCursor": next, "hasMore": more})))
}
