//! The device's view of a route (read-your-writes): the cached OFSC state with the device's
//! accepted writes applied, so a device never sees its own change undone.

use crate::cache::{Cache, CachedRoute};
use crate::domain::lifecycle::{self, RouteView, StopView};
use crate::ofsc::wire::Activity;
use crate::outbox::{self, OpKind};
use crate::store::{Storage, StoreError};
use std::collections::HashMap;

/// OFSC's separate record of a suspended visit; no device move applies to it.
pub const SUSPENDED_RECORD: &str = "suspended-record";

/// A route as one device sees it.
#[derive(Debug, Clone)]
pub struct DeviceRoute {
    pub view: RouteView,
    pub activities: Vec<Activity>,
    /// Writes not yet applied in OFSC, per activity.
    pub pending: HashMap<i64, usize>,
    /// Writes not yet applied in OFSC on the whole route (including its activation).
    pub lane_pending: usize,
}

impl DeviceRoute {
    pub fn stop(&self, id: i64) -> Option<&StopView> {
        self.view.stop(id)
    }

    /// The status to show: OFSC's, with `arrived` and this device's suspensions.
    pub fn shown_status(&self, id: i64) -> Option<String> {
        let s = self.stop(id)?;
        Some(match s.status.as_str() {
            SUSPENDED_RECORD => "suspended".into(),
            "enroute" if s.arrived => "arrived".into(),
            other => other.into(),
        })
    }
}

/// Builds the view of a cached route: its queued ops first, then the cache.
///
/// The order matters. The replayer updates the cache before it takes an applied op out of
/// its lane, so reading the lane first and the cache second never misses a write: either
/// the op is still in the lane, or the cache already shows it.
pub fn device_route(
    store: &dyn Storage,
    cache: &Cache,
    resource: &str,
    date: &str,
) -> Result<Option<DeviceRoute>, StoreError> {
    let lane = outbox::lane_ops(store, resource, date)?;
    let Some((route, activities)) = cache.cached_route(resource, date)? else {
        return Ok(None);
    };
    build(store, &route, activities, lane).map(Some)
}

fn build(
    store: &dyn Storage,
    route: &CachedRoute,
    activities: Vec<Activity>,
    lane: Vec<outbox::Op>,
) -> Result<DeviceRoute, StoreError> {
    let mut stops = Vec::with_capacity(activities.len());
    for a in &activities {
        let Some(id) = a.activity_id else { continue };
        let ofsc_status = a.status.clone().unwrap_or_default();
        let mut stop = StopView {
            id,
            status: if ofsc_status == "suspended" {
                SUSPENDED_RECORD.into()
            } else {
                ofsc_status.clone()
            },
            position: a.position_in_route,
            arrived: false,
        };
        // OFSC has no `arrived`, and shows a suspension as a not-ordered pending record.
        // The memo only matters to an en route or pending stop: skip the read otherwise.
        let memo = if matches!(ofsc_status.as_str(), "enroute" | "pending") {
            outbox::device_memo(store, id)?
        } else {
            outbox::DeviceMemo::default()
        };
        stop.arrived = memo.arrived && ofsc_status == "enroute";
        if memo.suspended && ofsc_status == "pending" && a.position_in_route.is_none() {
            stop.status = "suspended".into();
        }
        if stop.status == "suspended" && ofsc_status != "pending" {
            stop.status = ofsc_status.clone();
        }
        stops.push(stop);
    }
    let mut view = RouteView {
        activated: route.route_start_time.is_some(),
        stops,
        last_time: outbox::route_clock(store, &route.resource_id, &route.date)?,
    };
    let mut pending = HashMap::new();
    let mut activities = activities;
    for op in &lane {
        // An op on a provisional id applies to the real activity once its create landed.
        let id = match op.activity_id {
            Some(id) => Some(outbox::resolve_activity(store, id)?),
            None => None,
        };
        match &op.kind {
            OpKind::ActivateRoute => view.activated = true,
            OpKind::CreateActivity { activity } => {
                if let Some(id) = id.filter(|id| view.stop(*id).is_none()) {
                    let position = view
                        .stops
                        .iter()
                        .filter_map(|s| s.position)
                        .max()
                        .unwrap_or(0)
                        + 1;
                    view.stops.push(StopView {
                        id,
                        status: "pending".into(),
                        position: Some(position),
                        arrived: false,
                    });
                    let mut a = (**activity).clone();
                    a.activity_id = Some(id);
                    a.position_in_route = Some(position);
                    a.status = Some("pending".into());
                    activities.push(a);
                    *pending.entry(id).or_insert(0) += 1;
                }
            }
            OpKind::Status { status, .. } => {
                if let Some(id) = id {
                    lifecycle::apply(&mut view, id, *status, op.time);
                    *pending.entry(id).or_insert(0) += 1;
                }
            }
            OpKind::Part { .. }
            | OpKind::SetProperties { .. }
            | OpKind::Reopen
            | OpKind::Attachment { .. }
            | OpKind::Location { .. } => {
                if let Some(id) = id {
                    *pending.entry(id).or_insert(0) += 1;
                }
            }
        }
    }
    view.last_time = view.last_time.max(
        lane.iter()
            .filter(|o| o.kind.keeps_route_clock())
            .map(|o| o.time)
            .max(),
    );
    Ok(DeviceRoute {
        view,
        activities,
        pending,
        lane_pending: lane.len(),
    })
}
