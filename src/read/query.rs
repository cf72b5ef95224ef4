//! The read model's queries that writes share with reads: an activity (cached, else read
//! through from OFSC), a route made present in the cache, the device's view of a route, and a
//! resource's clock.

use super::cache::CacheError;
use super::view::{self, DeviceRoute, ViewTag};
use crate::ofsc::time as ofsc_time;
use crate::ofsc::wire::Activity;
use crate::ofsc::OfscError;
use crate::state::AppState;
use crate::store::StoreError;
use crate::write::outbox;

/// Why a read failed. `api` maps it to HTTP once (`api::problem`).
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// No such object, or (for activities) OFSC does not know it.
    #[error("not found")]
    NotFound,
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// OFSC could not be asked, or did not answer, and nothing is cached.
    #[error("OFSC: {0}")]
    Ofsc(#[from] OfscError),
    /// A route that should have been fetched is still not cached.
    #[error("the route {resource} {date} is not cached")]
    RouteNotCached { resource: String, date: String },
}

/// The activity from the cache, or read through from OFSC. A provisional id (a create not
/// yet applied) resolves to OFSC's id once it is, and to the queued create before. The OFSC
/// read is charged to `user`'s budget.
pub async fn find_activity(
    state: &AppState,
    id: i64,
    user: Option<&str>,
) -> Result<Activity, ReadError> {
    let id = outbox::resolve_activity(state.store.as_ref(), id)?;
    if id < 0 {
        return outbox::provisional_activity(state.store.as_ref(), id)?
            .map(|(_, a)| a)
            .ok_or(ReadError::NotFound);
    }
    if let Some(c) = state.cache.activity(id)? {
        return Ok(c.activity);
    }
    state.cache.charge(user)?;
    match state.ofsc.get_activity(id).await {
        Ok(a) => {
            state.cache.put_activity(&a)?;
            Ok(a)
        }
        Err(e) if e.status().is_some_and(|s| s == 404 || s == 400) => Err(ReadError::NotFound),
        Err(e) => Err(ReadError::Ofsc(e)),
    }
}

/// Makes sure the route is cached, fetching it once when absent (charged to `user`'s
/// budget; `None` for the checks a write makes).
pub async fn ensure_route(
    state: &AppState,
    resource: &str,
    date: &str,
    user: Option<&str>,
) -> Result<(), ReadError> {
    if state.cache.has_route(resource, date)? {
        return Ok(());
    }
    state.cache.charge(user)?;
    state.cache.fetch_route(resource, date).await?;
    Ok(())
}

/// The device's view of a route and its activities, fetching the route first when it is
/// not cached.
pub async fn device_route_with_activities(
    state: &AppState,
    resource: &str,
    date: &str,
    user: Option<&str>,
) -> Result<(DeviceRoute, Vec<Activity>), ReadError> {
    ensure_route(state, resource, date, user).await?;
    view::device_route(state.store.as_ref(), &state.cache, resource, date)?.ok_or_else(|| {
        ReadError::RouteNotCached {
            resource: resource.to_string(),
            date: date.to_string(),
        }
    })
}

/// The view of a route kept in memory, when the route has not moved since it was kept; else
/// the tag a view built now must carry.
pub fn kept_view(state: &AppState, resource: &str, date: &str) -> Result<DeviceRoute, ViewTag> {
    let views = &state.cache.views;
    let tag = views.tag(state.store.as_ref(), &state.cache, resource, date);
    views.get(resource, date, tag).ok_or(tag)
}

/// The device's view of a route: the one kept in memory while the route is unchanged, else
/// built (and kept).
pub async fn device_route_of(
    state: &AppState,
    resource: &str,
    date: &str,
) -> Result<DeviceRoute, ReadError> {
    let tag = match kept_view(state, resource, date) {
        Ok(dev) => return Ok(dev),
        Err(tag) => tag,
    };
    let (mut dev, _) = device_route_with_activities(state, resource, date, None).await?;
    dev.tag = tag;
    state.cache.views.put(resource, date, dev.clone());
    Ok(dev)
}

/// A resource's IANA zone name (the one already known, else the directory's) and the zone
/// itself, UTC when unknown.
pub fn resource_zone(
    state: &AppState,
    resource: &str,
    known: Option<String>,
) -> (Option<String>, chrono_tz::Tz) {
    let name = known.or_else(|| state.directory.get(resource).and_then(|r| r.time_zone_iana));
    let tz = name
        .as_deref()
        .and_then(|z| ofsc_time::zone(z).ok())
        .unwrap_or(chrono_tz::UTC);
    (name, tz)
}
