//! The device's view of a route (read-your-writes): the cached OFSC state with the device's
//! accepted writes applied, so a device never sees its own change undone. Also the memory of
//! recent views ([`Views`]), so a write does not rebuild its route from sled.

use crate::domain::lifecycle::{self, RouteView, StopView};
use crate::ofsc::wire::Activity;
use crate::read::cache::{Cache, CachedRoute};
use crate::store::{Storage, StoreError};
use crate::write::outbox::{self, Op, OpKind};
use std::collections::HashMap;
use std::sync::Mutex;

/// OFSC's separate record of a suspended visit; no device move applies to it.
pub const SUSPENDED_RECORD: &str = "suspended-record";

/// A route's state as one device sees it: small enough to keep in memory per route. The
/// activities themselves stay in the sled cache ([`device_route`] returns them).
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceRoute {
    pub view: RouteView,
    /// Writes not yet applied in OFSC, per activity.
    pub pending: HashMap<i64, usize>,
    /// Writes not yet applied in OFSC on the whole route (including its activation).
    pub lane_pending: usize,
    /// What the view was built from, for [`Views::advance`].
    pub tag: ViewTag,
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

/// Builds the view of a cached route and its activities (with queued creates): its queued
/// ops first, then the cache.
///
/// The order matters. The replayer updates the cache before it takes an applied op out of
/// its lane, so reading the lane first and the cache second never misses a write: either
/// the op is still in the lane, or the cache already shows it.
pub fn device_route(
    store: &dyn Storage,
    cache: &Cache,
    resource: &str,
    date: &str,
) -> Result<Option<(DeviceRoute, Vec<Activity>)>, StoreError> {
    let lane = outbox::lane_ops(store, resource, date)?;
    let Some((route, mut activities)) = cache.cached_route(resource, date)? else {
        return Ok(None);
    };
    let mut dev = base(store, &route, &activities)?;
    for op in &lane {
        fold(store, &mut dev, op, Some(&mut activities))?;
    }
    Ok(Some((dev, activities)))
}

/// The view of the cache alone, before any queued op.
fn base(
    store: &dyn Storage,
    route: &CachedRoute,
    activities: &[Activity],
) -> Result<DeviceRoute, StoreError> {
    let mut stops = Vec::with_capacity(activities.len());
    for a in activities {
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
    Ok(DeviceRoute {
        view: RouteView {
            activated: route.route_start_time.is_some(),
            stops,
            last_time: outbox::route_clock(store, &route.resource_id, &route.date)?,
        },
        pending: HashMap::new(),
        lane_pending: 0,
        tag: ViewTag::default(),
    })
}

/// Applies one queued op to a view. A queued create adds its activity to `created` when
/// the caller keeps the activities.
pub fn fold(
    store: &dyn Storage,
    dev: &mut DeviceRoute,
    op: &Op,
    created: Option<&mut Vec<Activity>>,
) -> Result<(), StoreError> {
    dev.lane_pending += 1;
    // An op on a provisional id applies to the real activity once its create landed.
    let id = match op.activity_id {
        Some(id) => Some(outbox::resolve_activity(store, id)?),
        None => None,
    };
    match &op.kind {
        OpKind::ActivateRoute => dev.view.activated = true,
        OpKind::CreateActivity { activity } => {
            if let Some(id) = id.filter(|id| dev.view.stop(*id).is_none()) {
                let position = dev
                    .view
                    .stops
                    .iter()
                    .filter_map(|s| s.position)
                    .max()
                    .unwrap_or(0)
                    + 1;
                dev.view.stops.push(StopView {
                    id,
                    status: "pending".into(),
                    position: Some(position),
                    arrived: false,
                });
                if let Some(created) = created {
                    let mut a = (**activity).clone();
                    a.activity_id = Some(id);
                    a.position_in_route = Some(position);
                    a.status = Some("pending".into());
                    created.push(a);
                }
                *dev.pending.entry(id).or_insert(0) += 1;
            }
        }
        OpKind::Status { status, .. } => {
            if let Some(id) = id {
                lifecycle::apply(&mut dev.view, id, *status, op.time);
                *dev.pending.entry(id).or_insert(0) += 1;
            }
        }
        OpKind::Part { .. }
        | OpKind::SetProperties { .. }
        | OpKind::Reopen
        | OpKind::Attachment { .. }
        | OpKind::Location { .. } => {
            if let Some(id) = id {
                *dev.pending.entry(id).or_insert(0) += 1;
            }
        }
    }
    if op.kind.keeps_route_clock() {
        dev.view.last_time = dev.view.last_time.max(Some(op.time));
    }
    Ok(())
}

/// What a kept view was built from: the route's render version (bumped after every write
/// that changes what the route shows) and how often the op counts were rebuilt (a
/// quarantine drops an op unread, without a route write, and rebuilds them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ViewTag {
    pub version: u64,
    pub recounts: u64,
}

/// At most this many views are kept; past it the map is cleared (writes rebuild). A view is
/// a few bytes per stop, so this bounds memory to a few MiB.
const CAPACITY: usize = 4096;

/// Recent device views, each valid while its route's tag is unchanged. A write keeps the
/// view it produced ([`Views::advance`]), so the next write on the route starts from memory
/// instead of decoding the route's activities and queued ops again.
#[derive(Debug, Default)]
pub struct Views {
    kept: Mutex<HashMap<(String, String), DeviceRoute>>,
}

impl Views {
    /// The tag a view built now would carry: read it before reading the store.
    pub fn tag(&self, store: &dyn Storage, cache: &Cache, resource: &str, date: &str) -> ViewTag {
        ViewTag {
            version: cache.renders.version(resource, date),
            recounts: store.tally().resets(),
        }
    }

    pub fn get(&self, resource: &str, date: &str, tag: ViewTag) -> Option<DeviceRoute> {
        let kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        kept.get(&(resource.to_string(), date.to_string()))
            .filter(|d| d.tag == tag)
            .cloned()
    }

    pub fn put(&self, resource: &str, date: &str, dev: DeviceRoute) {
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        if kept.len() >= CAPACITY {
            kept.clear();
        }
        kept.insert((resource.to_string(), date.to_string()), dev);
    }

    /// Drops the view kept of an evicted route.
    pub fn forget(&self, resource: &str, date: &str) {
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        kept.remove(&(resource.to_string(), date.to_string()));
    }

    /// After a sync batch's staged ops on a route were committed (or lost): the route's
    /// version moves on, since a body rendered while they were staged lacks them. The kept
    /// view shows them already; if nothing else moved the route since it was kept, it stays
    /// valid under the new version (a lost commit drops it).
    pub fn settle(&self, cache: &Cache, resource: &str, date: &str, committed: bool) {
        let seen = cache.renders.version(resource, date);
        let Some(now) = cache.renders.touch_from(resource, date, seen) else {
            return;
        };
        if !committed {
            return;
        }
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(dev) = kept.get_mut(&(resource.to_string(), date.to_string())) {
            if dev.tag.version == seen {
                dev.tag.version = now;
            }
        }
    }

    /// After a write on the route (under its lane lock) queued `ops` on top of `before`:
    /// announces the change (bumps the route's version) and keeps the resulting view, unless
    /// something else changed the route since `before` was read.
    pub fn advance(
        &self,
        store: &dyn Storage,
        cache: &Cache,
        resource: &str,
        date: &str,
        before: &DeviceRoute,
        ops: &[Op],
    ) -> Result<(), StoreError> {
        let Some(version) = cache.renders.touch_from(resource, date, before.tag.version) else {
            return Ok(());
        };
        if store.tally().resets() != before.tag.recounts {
            return Ok(());
        }
        let mut after = before.clone();
        for op in ops {
            fold(store, &mut after, op, None)?;
        }
        after.tag = ViewTag {
            version,
            recounts: before.tag.recounts,
        };
        self.put(resource, date, after);
        Ok(())
    }
}

#[cfg(test)]
#[path = "view_tests.rs"]
mod tests;
