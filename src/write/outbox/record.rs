//! The op record: one queued device write and its fate.

use crate::domain::lifecycle::DeviceStatus;
use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpState {
    Queued,
    Sending,
    Applied,
    Rejected,
    Blocked,
    Dead,
    Discarded,
}

impl OpState {
    pub const ALL: [OpState; 7] = [
        OpState::Queued,
        OpState::Sending,
        OpState::Applied,
        OpState::Rejected,
        OpState::Blocked,
        OpState::Dead,
        OpState::Discarded,
    ];

    /// Final states leave the lane. `dead` stays final until an operator retries it.
    pub fn is_final(self) -> bool {
        !matches!(self, OpState::Queued | OpState::Sending)
    }

    pub fn name(self) -> &'static str {
        match self {
            OpState::Queued => "queued",
            OpState::Sending => "sending",
            OpState::Applied => "applied",
            OpState::Rejected => "rejected",
            OpState::Blocked => "blocked",
            OpState::Dead => "dead",
            OpState::Discarded => "discarded",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Location {
    pub lat: f64,
    pub lng: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
}

/// One GPS fix from a device.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fix {
    pub lat: f64,
    pub lng: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    pub time: DateTime<FixedOffset>,
}

/// What the op does in OFSC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum OpKind {
    /// `POST /resources/{id}/routes/{date}/custom-actions/activate`.
    ActivateRoute,
    /// `POST /activities`; the op's `activity_id` is the provisional (negative) id.
    CreateActivity {
        activity: Box<crate::ofsc::wire::Activity>,
    },
    /// A status move; `ofsc_action` is absent for `arrived` (timeline only).
    #[serde(rename_all = "camelCase")]
    Status {
        status: DeviceStatus,
        ofsc_action: Option<String>,
        #[serde(default)]
        location: Option<Location>,
        #[serde(default)]
        notes: Option<String>,
        #[serde(default)]
        reason: Option<String>,
    },
    /// A part entry: an OFSC inventory custom action on the op's activity.
    Part {
        part: crate::domain::parts::PlannedPart,
    },
    /// `PATCH /activities/{id}` with custom properties (a supervisor's decision).
    SetProperties {
        properties: serde_json::Map<String, serde_json::Value>,
    },
    /// OFSC's `reopen` action: the work comes back as a new pending activity.
    Reopen,
    /// `POST /resources/custom-actions/setPositions`: the technician's GPS fixes.
    Location { fixes: Vec<Fix> },
    /// `PUT /activities/{id}/{label}`: a completed upload sent to an OFSC file property.
    #[serde(rename_all = "camelCase")]
    Attachment {
        attachment_id: String,
        label: String,
    },
}

impl OpKind {
    /// Whether the op's time is an OFSC action time on the route, which must never go
    /// backwards (parts, decisions and files carry no such time).
    pub fn keeps_route_clock(&self) -> bool {
        matches!(
            self,
            OpKind::ActivateRoute | OpKind::CreateActivity { .. } | OpKind::Status { .. }
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Op {
    pub id: String,
    pub seq: u64,
    pub resource_id: String,
    pub date: String,
    pub activity_id: Option<i64>,
    pub kind: OpKind,
    /// When it happened on the device.
    pub time: DateTime<FixedOffset>,
    /// The resource's IANA zone when the op was accepted: OFSC wants resource-local times.
    #[serde(default)]
    pub zone: Option<String>,
    /// For synced ops: the device's raw clock reading (`time` is corrected for its skew).
    #[serde(default)]
    pub captured_at: Option<DateTime<FixedOffset>>,
    pub state: OpState,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub ofsc_detail: Option<String>,
    pub user_id: String,
    pub device_id: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub applied_at: Option<DateTime<Utc>>,
    /// For a create: the id OFSC gave the new activity.
    #[serde(default)]
    pub created_activity_id: Option<i64>,
    /// For a part or a reopen (OFSC has no idempotency key for either): how much of the
    /// effect OFSC showed before the first send (the item type held in the target status, the
    /// reopened copies), durable before it, so a read-back can tell whether the send landed.
    #[serde(default)]
    pub baseline: Option<f64>,
    /// For a part: the OFSC inventory item the action moved (an undo acts on it).
    #[serde(default)]
    pub result_inventory_id: Option<i64>,
}

impl Op {
    pub fn id_of(seq: u64) -> String {
        crate::ids::format("op_", seq)
    }

    pub fn seq_of(id: &str) -> Option<u64> {
        crate::ids::parse("op_", id)
    }

    /// The OFSC status the activity has once this op is applied, for read-back after an
    /// ambiguous failure.
    pub fn target_status(&self) -> Option<&'static str> {
        match &self.kind {
            OpKind::Status {
                ofsc_action: Some(a),
                ..
            } => match a.as_str() {
                "enroute" => Some("enroute"),
                "stopTravel" | "suspend" => Some("pending"),
                "start" => Some("started"),
                "complete" => Some("completed"),
                "notDone" => Some("notdone"),
                "cancel" => Some("cancelled"),
                _ => None,
            },
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_ids_round_trip_and_sort_like_seqs() {
        assert_eq!(Op::seq_of(&Op::id_of(42)), Some(42));
        assert!(Op::id_of(9) < Op::id_of(10));
        assert_eq!(Op::seq_of("op_zz"), None);
        assert_eq!(Op::seq_of("42"), None);
    }
}
