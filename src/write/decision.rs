//! The decision command: a supervisor approves or rejects completed work (from the API or
//! the console). The verdict goes to OFSC as activity properties (and a reopen, when asked);
//! the technician hears of it through the change log.

use super::context;
use super::outbox::{self, change_key, Change, Enqueued, NewOp, OpKind, Submitter, CHANGES};
use super::WriteError;
use crate::auth::policy;
use crate::auth::Principal;
use crate::features::approvals::{self, Approval, ApprovalStatus, Decision};
use crate::read::query;
use crate::state::AppState;
use crate::store::{Storage, TxExt};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map};

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DecisionBody {
    pub decision: String,
    pub comment: String,
    #[serde(default)]
    pub reopen: bool,
}

fn validate(body: &DecisionBody) -> Result<bool, WriteError> {
    let approve = match body.decision.as_str() {
        "approve" => true,
        "reject" => false,
        other => {
            return Err(WriteError::invalid(
                "invalid-decision",
                format!("decision must be approve or reject, not {other:?}"),
            ))
        }
    };
    if body.comment.chars().count() > 4000 {
        return Err(WriteError::invalid(
            "invalid-body",
            "comment is longer than 4000 characters",
        ));
    }
    if approve && body.reopen {
        return Err(WriteError::invalid(
            "invalid-body",
            "only a rejection can reopen the work",
        ));
    }
    Ok(approve)
}

/// The one decision path: the API's handler and the console's form both come here, with
/// the same checks (oversight, the 4-eyes rule), audit entry and ops. Not yet flushed.
pub async fn decide_as(
    state: &AppState,
    who: &Principal,
    a: &Approval,
    body: DecisionBody,
    idempotency_key: String,
) -> Result<Enqueued, WriteError> {
    policy::may_decide(who, &a.resource_id, state.directory.as_ref())?;
    if a.technician_user_id == who.user_id {
        return Err(WriteError::Forbidden("deciding on one's own work".into()));
    }
    let approve = validate(&body)?;
    let request = json!({"approvalId": a.id, "body": body});
    let submitter = context::submitter(who, "approval.decide", idempotency_key, &request)?;
    submit_decision(state, who, a, &body, approve, submitter).await
}

async fn submit_decision(
    state: &AppState,
    who: &Principal,
    a: &Approval,
    body: &DecisionBody,
    approve: bool,
    submitter: Submitter,
) -> Result<Enqueued, WriteError> {
    let lane_lock = state.lanes.lock(&a.resource_id, &a.date);
    let _guard = lane_lock.lock().await;
    if let Some(answer) = outbox::idempotent_answer(state.store.as_ref(), &submitter)? {
        return Ok(answer);
    }
    // Re-read under the lock: a decision is final.
    let current = approvals::get(state.store.as_ref(), &a.id)?
        .ok_or(WriteError::Denied(policy::Denied::NotFound))?;
    if let Some(d) = &current.decision {
        return Err(WriteError::Refused {
            code: "already-decided",
            detail: format!("{} was already decided ({}) by {}", a.id, d.decision, d.by),
            extra: json!({"decision": d}),
        });
    }
    let cfg = &state.approvals;
    let mut properties = Map::new();
    let verdict = if approve { "approved" } else { "rejected" };
    properties.insert(cfg.status_label.clone(), json!(verdict));
    properties.insert(cfg.approved_by_label.clone(), json!(who.name));
    properties.insert(cfg.comment_label.clone(), json!(body.comment));
    let (zone, tz) = query::resource_zone(state, &a.resource_id, None);
    let now = chrono::Utc::now().with_timezone(&tz).fixed_offset();
    let op = |kind| NewOp {
        resource_id: a.resource_id.clone(),
        date: a.date.clone(),
        activity_id: Some(a.activity_id),
        kind,
        time: now,
        zone: zone.clone(),
        captured_at: None,
    };
    let mut ops = vec![op(OpKind::SetProperties { properties })];
    if !approve && body.reopen {
        ops.push(op(OpKind::Reopen));
    }
    let store = state.store.as_ref();
    let (event_seq, ticket) = (store.next_id()?, store.ticket()?);
    let cseq = ticket.id;
    let decided_at = chrono::Utc::now();
    let decided = |ops: &[outbox::Op]| {
        let mut d = current.clone();
        d.status = if approve {
            ApprovalStatus::Approved
        } else {
            ApprovalStatus::Rejected
        };
        d.decision = Some(Decision {
            decision: body.decision.clone(),
            comment: body.comment.clone(),
            reopen: body.reopen,
            by: who.username.clone(),
            by_name: who.name.clone(),
            at: decided_at,
            op_ids: ops.iter().map(|o| o.id.clone()).collect(),
        });
        d
    };
    let write = |tx: &dyn crate::store::Tx, ops: &[outbox::Op]| {
        let d = decided(ops);
        approvals::put_in(tx, &d, event_seq)?;
        // The technician hears about it through sync pull, with the comment.
        let change = Change {
            seq: cseq,
            resource_id: d.resource_id.clone(),
            kind: "approval".into(),
            device_id: None,
            activity_id: Some(d.activity_id),
            data: approvals::summary(&d),
            at: chrono::Utc::now(),
        };
        tx.put(CHANGES, &change_key(&d.resource_id, cseq), &change)
    };
    let result = outbox::enqueue_with(
        store,
        &submitter,
        ops,
        |ops| {
            json!({
                "approval": approvals::summary(&decided(ops)),
                "opId": ops.last().map(|o| o.id.clone()),
                "opIds": ops.iter().map(|o| o.id.clone()).collect::<Vec<_>>(),
                "state": "queued",
            })
        },
        Some(outbox::Extra {
            write: &write,
            tickets: vec![ticket],
        }),
    )?;
    if let Enqueued::Accepted { .. } = &result {
        state.cache.renders.touch(&a.resource_id, &a.date);
    }
    Ok(result)
}
