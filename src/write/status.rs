//! The status command: a lifecycle move of one activity (from `PATCH …/status` or a sync
//! `status` op), judged against the device's view of its route, with the route's activation
//! in front when OFSC needs it and the approval a completion opens in the same record.

use super::context::{self, Located, SyncTime};
use super::outbox::{self, Enqueued, Location, NewOp, OpKind, Submitter};
use super::WriteError;
use crate::auth::Principal;
use crate::domain::lifecycle::{self, DeviceStatus};
use crate::domain::times;
use crate::features::approvals;
use crate::read::{present, query};
use crate::state::AppState;
use crate::store::Storage;
use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatusBody {
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<DateTime<FixedOffset>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One status write, from `PATCH …/status` or from a sync batch: one code path.
pub struct StatusCommand {
    pub activity: i64,
    pub body: StatusBody,
    pub submitter: Submitter,
    /// Set for synced ops: the corrected time is kept monotonic per route and never in the future.
    pub from_sync: Option<SyncTime>,
}

fn validate(body: &StatusBody) -> Result<DeviceStatus, WriteError> {
    let status = DeviceStatus::parse(&body.status).ok_or_else(|| {
        WriteError::invalid(
            "invalid-status",
            format!("unknown status {:?}", body.status),
        )
    })?;
    if let Some(l) = &body.location {
        let ok = (-90.0..=90.0).contains(&l.lat)
            && (-180.0..=180.0).contains(&l.lng)
            && l.accuracy.is_none_or(|a| a >= 0.0);
        if !ok {
            return Err(WriteError::invalid(
                "invalid-location",
                "lat must be within ±90, lng within ±180, accuracy ≥ 0",
            ));
        }
    }
    for (name, text) in [("notes", &body.notes), ("reason", &body.reason)] {
        if text.as_ref().is_some_and(|t| t.chars().count() > 4000) {
            return Err(WriteError::invalid(
                "invalid-body",
                format!("{name} is longer than 4000 characters"),
            ));
        }
    }
    Ok(status)
}

/// Validates against the device's view and queues the write (not yet flushed: the caller
/// flushes once, before answering).
pub async fn submit_status(
    state: &AppState,
    who: &Principal,
    w: StatusCommand,
) -> Result<Enqueued, WriteError> {
    let StatusCommand {
        activity,
        body,
        submitter,
        from_sync,
    } = w;
    let status = validate(&body)?;
    let Located {
        id,
        activity: a,
        resource,
        date,
        zone: zone_name,
        now,
    } = context::locate(state, who, activity).await?;

    let guard = context::lane_guard(state, &submitter, &resource, &date).await?;
    if let Some(answer) = outbox::idempotent_answer(state.store.as_ref(), &submitter)? {
        return Ok(answer);
    }
    // A device time outside the window is refused before it can reach OFSC and block the
    // route (a synced op's corrected time was checked by the batch).
    if let (None, Some(t)) = (from_sync, body.time) {
        times::check(t, chrono::Utc::now(), &state.time_window)?;
    }
    let dev = match &submitter.stage {
        Some(stage) => context::staged_route_of(state, stage, &resource, &date).await?,
        None => query::device_route_of(state, &resource, &date).await?,
    };
    let time = context::write_time(from_sync, body.time, now, dev.view.last_time);
    let plan =
        lifecycle::plan(&dev.view, id, status, time).map_err(|r| WriteError::Transition {
            detail: r.detail,
            allowed: r.allowed.iter().map(|s| s.name().to_string()).collect(),
        })?;
    let route_op = |activity_id, kind| NewOp {
        resource_id: resource.clone(),
        date: date.clone(),
        activity_id,
        kind,
        time,
        zone: zone_name.clone(),
        captured_at: from_sync.map(|t| t.captured_at),
    };
    let ops = planned_ops(&plan, id, status, &body, route_op);
    let mut after = dev.clone();
    lifecycle::apply(&mut after.view, id, status, time);
    *after.pending.entry(id).or_insert(0) += 1;
    let shown = present::activity(&a, Some(&after));
    // A completion that needs a supervisor's sign-off opens its approval with it: it still
    // replays to OFSC at once (holding it would stall the route).
    let needs_approval =
        status == DeviceStatus::Completed && state.approvals.needed_for(a.activity_type.as_deref());
    let (approval_seq, event_seq) = if needs_approval {
        (state.store.next_id()?, state.store.next_id()?)
    } else {
        (0, 0)
    };
    let open = |tx: &dyn crate::store::Tx, ops: &[outbox::Op]| match ops.last() {
        Some(done) => {
            let approval = approvals::Approval {
                id: approvals::approval_id(approval_seq),
                seq: approval_seq,
                activity_id: id,
                resource_id: resource.clone(),
                date: date.clone(),
                activity_type: a.activity_type.clone(),
                technician: submitter.username.clone(),
                technician_user_id: submitter.user_id.clone(),
                completion_op_id: done.id.clone(),
                status: approvals::ApprovalStatus::Pending,
                requested_at: chrono::Utc::now(),
                decision: None,
            };
            approvals::put_in(tx, &approval, event_seq)
        }
        None => Ok(()),
    };
    let extra = needs_approval.then_some(outbox::Extra {
        write: &open,
        tickets: Vec::new(),
    });
    let result = outbox::enqueue_with(
        state.store.as_ref(),
        &submitter,
        ops,
        |ops| {
            let op = ops.last();
            json!({"opId": op.map(|o| o.id.clone()), "state": "queued", "activity": shown})
        },
        extra,
    )?;
    context::advance_view(state, &resource, &date, &dev, &result);
    match &submitter.stage {
        // Staged ops of this route are not in sled yet: nobody else may queue behind them.
        Some(stage) if !stage.is_empty() => stage.hold(&resource, &date, guard),
        _ => drop(guard),
    }
    Ok(result)
}

/// The ops a planned move queues: the route's activation first when OFSC needs it, then the
/// move itself.
fn planned_ops(
    plan: &lifecycle::Plan,
    id: i64,
    status: DeviceStatus,
    body: &StatusBody,
    on_route: impl Fn(Option<i64>, OpKind) -> NewOp,
) -> Vec<NewOp> {
    let mut ops = Vec::with_capacity(2);
    if plan.activate_first {
        ops.push(on_route(None, OpKind::ActivateRoute));
    }
    ops.push(on_route(
        Some(id),
        OpKind::Status {
            status,
            ofsc_action: plan.ofsc_action.map(str::to_string),
            location: body.location,
            notes: body.notes.clone(),
            reason: body.reason.clone(),
        },
    ));
    ops
}
