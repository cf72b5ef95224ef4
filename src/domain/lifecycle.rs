//! The device-facing lifecycle: which status moves are legal on the device's view of a route,
//! and which OFSC calls they become. Pure functions.
//!
//! The rules mirror OFSC's (docs/ofsc.md, "Activities and their lifecycle") so that nothing
//! accepted here is refused by OFSC for a lifecycle reason: the property test checks this
//! against the simulator.

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

/// What a device may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceStatus {
    Enroute,
    Pending,
    Started,
    Arrived,
    Suspended,
    Completed,
    Notdone,
    Cancelled,
}

impl DeviceStatus {
    pub const ALL: [DeviceStatus; 8] = [
        DeviceStatus::Enroute,
        DeviceStatus::Pending,
        DeviceStatus::Started,
        DeviceStatus::Arrived,
        DeviceStatus::Suspended,
        DeviceStatus::Completed,
        DeviceStatus::Notdone,
        DeviceStatus::Cancelled,
    ];

    /// Parses a device status; `en_route` is an alias of `enroute`.
    pub fn parse(s: &str) -> Option<DeviceStatus> {
        match s {
            "enroute" | "en_route" => Some(DeviceStatus::Enroute),
            "pending" => Some(DeviceStatus::Pending),
            "started" => Some(DeviceStatus::Started),
            "arrived" => Some(DeviceStatus::Arrived),
            "suspended" => Some(DeviceStatus::Suspended),
            "completed" => Some(DeviceStatus::Completed),
            "notdone" => Some(DeviceStatus::Notdone),
            "cancelled" => Some(DeviceStatus::Cancelled),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DeviceStatus::Enroute => "enroute",
            DeviceStatus::Pending => "pending",
            DeviceStatus::Started => "started",
            DeviceStatus::Arrived => "arrived",
            DeviceStatus::Suspended => "suspended",
            DeviceStatus::Completed => "completed",
            DeviceStatus::Notdone => "notdone",
            DeviceStatus::Cancelled => "cancelled",
        }
    }

    /// The OFSC custom action; `arrived` has none (it is kept in the timeline only).
    pub fn ofsc_action(self) -> Option<&'static str> {
        match self {
            DeviceStatus::Enroute => Some("enroute"),
            DeviceStatus::Pending => Some("stopTravel"),
            DeviceStatus::Started => Some("start"),
            DeviceStatus::Arrived => None,
            DeviceStatus::Suspended => Some("suspend"),
            DeviceStatus::Completed => Some("complete"),
            DeviceStatus::Notdone => Some("notDone"),
            DeviceStatus::Cancelled => Some("cancel"),
        }
    }

    /// Whether OFSC requires an activated route for this action.
    fn needs_active_route(self) -> bool {
        matches!(
            self,
            DeviceStatus::Enroute | DeviceStatus::Started | DeviceStatus::Suspended
        )
    }
}

/// One stop as the device sees it. `status` is OFSC's status, except that an activity this
/// device suspended shows `suspended` (OFSC keeps the record as a not-ordered `pending`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StopView {
    pub id: i64,
    pub status: String,
    pub position: Option<i64>,
    pub arrived: bool,
}

/// The device's view of one route: the cache with the device's queued writes applied.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RouteView {
    pub activated: bool,
    pub stops: Vec<StopView>,
    pub last_time: Option<DateTime<FixedOffset>>,
}

/// What an accepted move turns into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Queue the route activation before the action.
    pub activate_first: bool,
    pub ofsc_action: Option<&'static str>,
}

/// Why a move was refused, and what is allowed instead.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub detail: String,
    pub allowed: Vec<DeviceStatus>,
}

impl RouteView {
    pub fn stop(&self, id: i64) -> Option<&StopView> {
        self.stops.iter().find(|s| s.id == id)
    }

    fn others(&self, id: i64) -> impl Iterator<Item = &StopView> {
        self.stops.iter().filter(move |s| s.id != id)
    }
}

/// The reason `to` is illegal for stop `id` now, ignoring time.
fn why_not(view: &RouteView, id: i64, to: DeviceStatus) -> Option<String> {
    let Some(stop) = view.stop(id) else {
        return Some("the activity is not on this route".into());
    };
    let s = stop.status.as_str();
    let other_started = view.others(id).any(|o| o.status == "started");
    let other_enroute = view.others(id).any(|o| o.status == "enroute");
    let wrong = || Some(format!("cannot go from {s} to {}", to.name()));
    match to {
        DeviceStatus::Enroute => {
            if s != "pending" {
                return wrong();
            }
            if stop.position.is_none() {
                return Some("the activity is not ordered in the route".into());
            }
            if other_started || other_enroute {
                return Some("another activity of the route is en route or started".into());
            }
            let pos = stop.position.unwrap_or(i64::MAX);
            if view
                .others(id)
                .any(|o| o.status == "pending" && o.position.is_some_and(|p| p < pos))
            {
                return Some("an earlier stop of the route is still pending".into());
            }
            None
        }
        DeviceStatus::Pending => (s != "enroute").then(wrong).flatten(),
        DeviceStatus::Started => {
            if !matches!(s, "pending" | "enroute" | "suspended") {
                return wrong();
            }
            other_started.then(|| "another activity of the route is started".to_string())
        }
        DeviceStatus::Arrived => {
            if s != "enroute" {
                return Some("arrived is only possible while en route".into());
            }
            stop.arrived.then(|| "already arrived".to_string())
        }
        DeviceStatus::Suspended | DeviceStatus::Completed | DeviceStatus::Notdone => {
            (s != "started").then(wrong).flatten()
        }
        DeviceStatus::Cancelled => (!matches!(s, "pending" | "enroute")).then(wrong).flatten(),
    }
}

/// The moves legal for stop `id` now.
pub fn allowed(view: &RouteView, id: i64) -> Vec<DeviceStatus> {
    DeviceStatus::ALL
        .into_iter()
        .filter(|to| why_not(view, id, *to).is_none())
        .collect()
}

/// Checks a move; on success says what to queue.
pub fn plan(
    view: &RouteView,
    id: i64,
    to: DeviceStatus,
    time: DateTime<FixedOffset>,
) -> Result<Plan, Refusal> {
    if let Some(detail) = why_not(view, id, to) {
        return Err(Refusal {
            detail,
            allowed: allowed(view, id),
        });
    }
    if let Some(last) = view.last_time {
        if time < last {
            return Err(Refusal {
                detail: format!(
                    "time {} is before the route's previous action at {}",
                    time.to_rfc3339(),
                    last.to_rfc3339()
                ),
                allowed: allowed(view, id),
            });
        }
    }
    Ok(Plan {
        activate_first: to.needs_active_route() && !view.activated,
        ofsc_action: to.ofsc_action(),
    })
}

/// Applies an accepted move to the view.
pub fn apply(view: &mut RouteView, id: i64, to: DeviceStatus, time: DateTime<FixedOffset>) {
    if to.needs_active_route() {
        view.activated = true;
    }
    view.last_time = Some(view.last_time.map_or(time, |t| t.max(time)));
    let Some(stop) = view.stops.iter_mut().find(|s| s.id == id) else {
        return;
    };
    match to {
        DeviceStatus::Arrived => stop.arrived = true,
        DeviceStatus::Suspended => {
            stop.status = "suspended".into();
            stop.position = None;
        }
        other => {
            stop.status = other.name().into();
            if other != DeviceStatus::Enroute {
                stop.arrived = false;
            }
        }
    }
}

#[cfg(test)]
#[path = "lifecycle_tests.rs"]
mod tests;
