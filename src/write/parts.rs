//! The parts command: one or more part entries for an activity (from `POST …/parts` or a
//! sync `parts` op), each checked against the device's view of the van and the site, all
//! queued in one record or none.

use super::context::{self, Located, SyncTime};
use super::outbox::{self, Enqueued, NewOp, OpKind, Submitter};
use super::WriteError;
use crate::auth::Principal;
use crate::domain::parts::{self, PartRequest, Refusal};
use crate::features::stock;
use crate::read::{present, query};
use crate::state::AppState;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// At most this many items per request.
pub const MAX_ITEMS: usize = 50;

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PartsBody {
    pub items: Vec<PartRequest>,
}

/// One parts request, from `POST …/parts` or from a sync batch: one code path.
pub struct PartsCommand {
    pub activity: i64,
    pub body: PartsBody,
    pub submitter: Submitter,
    pub from_sync: Option<SyncTime>,
}

fn refused(r: Refusal) -> WriteError {
    if r.status == 409 {
        WriteError::Refused {
            code: r.code,
            detail: r.detail,
            extra: r
                .available
                .map_or(Value::Null, |a| json!({ "available": a })),
        }
    } else {
        WriteError::Invalid {
            code: r.code,
            detail: r.detail,
        }
    }
}

/// Checks every item against the device's view of the van and the site (each item seeing
/// the ones before it) and queues them all, or none.
pub async fn submit_parts(
    state: &AppState,
    who: &Principal,
    w: PartsCommand,
) -> Result<Enqueued, WriteError> {
    if w.body.items.is_empty() || w.body.items.len() > MAX_ITEMS {
        return Err(WriteError::invalid(
            "invalid-body",
            format!("items must hold 1 to {MAX_ITEMS} entries"),
        ));
    }
    let Located {
        id,
        activity: a,
        resource,
        date,
        zone,
        now,
    } = context::locate(state, who, w.activity).await?;
    let lane_lock = state.lanes.lock(&resource, &date);
    let guard = lane_lock.lock().await;
    if let Some(answer) = outbox::idempotent_answer(state.store.as_ref(), &w.submitter)? {
        return Ok(answer);
    }
    let dev = query::device_route_of(state, &resource, &date).await?;
    let started = dev.stop(id).is_some_and(|s| s.status == "started");
    let queued = stock::queued_parts(state.store.as_ref(), &resource)?;
    let van = state.stock.van(&resource).await?;
    let site = state.stock.site(id).await?;
    let recorded = stock::recorded(state.store.as_ref(), id)?
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    let mut view = stock::parts_view(&queued, &van, site.as_ref(), id, recorded);
    let time = context::write_time(w.from_sync, None, now, dev.view.last_time);
    let mut ops = Vec::with_capacity(w.body.items.len());
    for (n, item) in w.body.items.iter().enumerate() {
        let planned = parts::plan(&view, started, item).map_err(|r| {
            let mut e = r;
            if w.body.items.len() > 1 {
                e.detail = format!("item {n}: {}", e.detail);
            }
            refused(e)
        })?;
        parts::apply(&mut view, &format!("item-{n}"), &planned);
        ops.push(NewOp {
            resource_id: resource.clone(),
            date: date.clone(),
            activity_id: Some(id),
            kind: OpKind::Part { part: planned },
            time,
            zone: zone.clone(),
            captured_at: w.from_sync.map(|t| t.captured_at),
        });
    }
    let mut after = dev.clone();
    *after.pending.entry(id).or_insert(0) += ops.len();
    let shown = present::activity(&a, Some(&after));
    let result = outbox::enqueue(state.store.as_ref(), &w.submitter, ops, |ops| {
        json!({
            "opId": ops.last().map(|o| o.id.clone()),
            "opIds": ops.iter().map(|o| o.id.clone()).collect::<Vec<_>>(),
            "state": "queued",
            "parts": ops.iter().map(|o| present::part_entry(o, false)).collect::<Vec<_>>(),
            "activity": shown,
        })
    })?;
    context::advance_view(state, &resource, &date, &dev, &result);
    drop(guard);
    Ok(result)
}
