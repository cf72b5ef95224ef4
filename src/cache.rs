//! The sled cache of OFSC routes and activities: what devices read, fresh when OFSC answers,
//! still there when it does not.

use crate::ofsc::wire::Activity;
use crate::ofsc::{OfscClient, OfscError};
use crate::store::keys::KeyBuf;
use crate::store::{Storage, StorageExt, StoreError, Tree};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const ACTIVITIES: Tree = Tree("cache_activities");
pub const ROUTES: Tree = Tree("cache_routes");

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CachedRoute {
    pub resource_id: String,
    pub date: String,
    /// Resource-local activation time when OFSC reports the route activated.
    pub route_start_time: Option<String>,
    pub activity_ids: Vec<i64>,
    pub fetched_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CachedActivity {
    pub activity: Activity,
    pub fetched_at: DateTime<Utc>,
}

pub fn route_key(resource: &str, date: &str) -> Vec<u8> {
    KeyBuf::new().str(resource).str(date).finish()
}

pub fn activity_key(id: i64) -> [u8; 8] {
    (id as u64).to_be_bytes()
}

/// Reads through to OFSC and keeps what it got.
pub struct Cache {
    store: Arc<dyn Storage>,
    ofsc: Arc<OfscClient>,
    max_age: Duration,
    refreshing: Mutex<HashSet<Vec<u8>>>,
    /// Rendered route bodies; every cache write below touches the route it changes.
    pub renders: crate::renders::Renders,
    /// Device views of recently written routes, valid while their route's version holds.
    pub views: crate::view::Views,
}

/// A route as served: from the cache, with how fresh it is.
#[derive(Debug, Clone)]
pub struct RouteRead {
    pub route: CachedRoute,
    /// The last attempt to refresh from OFSC failed.
    pub stale: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("OFSC: {0}")]
    Ofsc(#[from] OfscError),
}

impl Cache {
    pub fn new(store: Arc<dyn Storage>, ofsc: Arc<OfscClient>, max_age: Duration) -> Self {
        Cache {
            store,
            ofsc,
            max_age,
            refreshing: Mutex::new(HashSet::new()),
            renders: Default::default(),
            views: Default::default(),
        }
    }

    pub fn activity(&self, id: i64) -> Result<Option<CachedActivity>, StoreError> {
        self.store.get(ACTIVITIES, &activity_key(id))
    }

    pub fn has_route(&self, resource: &str, date: &str) -> Result<bool, StoreError> {
        Ok(self
            .store
            .get_raw(ROUTES, &route_key(resource, date))?
            .is_some())
    }

    pub fn cached_route(
        &self,
        resource: &str,
        date: &str,
    ) -> Result<Option<(CachedRoute, Vec<Activity>)>, StoreError> {
        let Some(route) = self
            .store
            .get::<CachedRoute>(ROUTES, &route_key(resource, date))?
        else {
            return Ok(None);
        };
        let mut activities = Vec::with_capacity(route.activity_ids.len());
        for id in &route.activity_ids {
            if let Some(a) = self.activity(*id)? {
                activities.push(a.activity);
            }
        }
        Ok(Some((route, activities)))
    }

    /// Fetches the route from OFSC and replaces the cached copy.
    ///
    /// An activity cached after this fetch began (the replayer storing OFSC's answer to an
    /// action) is newer than what the fetch saw and is kept, so a refresh never undoes a
    /// write the device already sees.
    pub async fn fetch_route(
        &self,
        resource: &str,
        date: &str,
    ) -> Result<(CachedRoute, Vec<Activity>), CacheError> {
        let started = Utc::now();
        let route = self.ofsc.get_route(resource, date).await?;
        let now = Utc::now();
        let cached = CachedRoute {
            resource_id: resource.to_string(),
            date: date.to_string(),
            route_start_time: route.route_start_time.clone(),
            activity_ids: route.items.iter().filter_map(|a| a.activity_id).collect(),
            fetched_at: now,
        };
        let key = route_key(resource, date);
        // Activities first, the route that lists them last: a reader that finds the new
        // route finds its activities. Each is a compare-and-swap, so an activity the
        // replayer stores meanwhile is never overwritten with the older copy.
        for a in &route.items {
            let Some(id) = a.activity_id else { continue };
            self.store
                .update::<CachedActivity>(ACTIVITIES, &activity_key(id), &mut |current| {
                    Ok(match current {
                        Some(c) if c.fetched_at > started => None,
                        _ => Some(CachedActivity {
                            activity: a.clone(),
                            fetched_at: now,
                        }),
                    })
                })?;
        }
        self.store
            .update::<CachedRoute>(ROUTES, &key, &mut |previous| {
                let mut fresh = cached.clone();
                if fresh.route_start_time.is_none() {
                    fresh.route_start_time = previous
                        .and_then(|p| p.route_start_time.filter(|_| p.fetched_at > started));
                }
                Ok(Some(fresh))
            })?;
        self.renders.touch(resource, date);
        let activities = self
            .cached_route(resource, date)?
            .map(|(_, a)| a)
            .unwrap_or(route.items);
        Ok((cached, activities))
    }

    /// Stores one activity as OFSC returned it (after a replayed action or an event).
    pub fn put_activity(&self, activity: &Activity) -> Result<(), StoreError> {
        let Some(id) = activity.activity_id else {
            return Ok(());
        };
        self.store.put(
            ACTIVITIES,
            &activity_key(id),
            &CachedActivity {
                activity: activity.clone(),
                fetched_at: Utc::now(),
            },
        )?;
        // After the write: a reader that saw the old version re-renders.
        if let (Some(r), Some(d)) = (activity.resource_id.as_deref(), activity.date.as_deref()) {
            self.renders.touch(r, d);
        }
        Ok(())
    }

    /// Records that the route was activated (after the activation op applied), so the
    /// device's view stops asking for another activation before the next refresh.
    pub fn mark_route_activated(
        &self,
        resource: &str,
        date: &str,
        local_time: &str,
    ) -> Result<(), StoreError> {
        let key = route_key(resource, date);
        self.store
            .update::<CachedRoute>(ROUTES, &key, &mut |current| {
                Ok(current
                    .filter(|r| r.route_start_time.is_none())
                    .map(|mut r| {
                        r.route_start_time = Some(local_time.to_string());
                        r
                    }))
            })?;
        self.renders.touch(resource, date);
        Ok(())
    }

    /// Adds a newly created activity to its cached route.
    pub fn add_to_route(&self, resource: &str, date: &str, id: i64) -> Result<(), StoreError> {
        let key = route_key(resource, date);
        self.store
            .update::<CachedRoute>(ROUTES, &key, &mut |current| {
                Ok(current
                    .filter(|r| !r.activity_ids.contains(&id))
                    .map(|mut r| {
                        r.activity_ids.push(id);
                        r
                    }))
            })?;
        self.renders.touch(resource, date);
        Ok(())
    }

    /// The cached route record (ids and activation, not the activities), fetching it when
    /// absent and refreshing it in the background when older than the configured age. With
    /// OFSC down an old copy is marked stale.
    pub async fn read_route(
        self: &Arc<Self>,
        resource: &str,
        date: &str,
        ofsc_ok: bool,
    ) -> Result<RouteRead, CacheError> {
        match self
            .store
            .get::<CachedRoute>(ROUTES, &route_key(resource, date))?
        {
            Some(route) => {
                let age = Utc::now() - route.fetched_at;
                let old = age.to_std().map(|a| a > self.max_age).unwrap_or(false);
                if old {
                    self.refresh_in_background(resource, date);
                }
                Ok(RouteRead {
                    stale: old && !ofsc_ok,
                    route,
                })
            }
            None => {
                let (route, _) = self.fetch_route(resource, date).await?;
                Ok(RouteRead {
                    route,
                    stale: false,
                })
            }
        }
    }

    fn refresh_in_background(self: &Arc<Self>, resource: &str, date: &str) {
        let key = route_key(resource, date);
        {
            let mut busy = self.refreshing.lock().unwrap_or_else(|p| p.into_inner());
            if !busy.insert(key.clone()) {
                return;
            }
        }
        let (this, resource, date) = (self.clone(), resource.to_string(), date.to_string());
        tokio::spawn(async move {
            if let Err(e) = this.fetch_route(&resource, &date).await {
                tracing::warn!(%resource, %date, error = %e, "background route refresh failed");
            }
            this.refreshing
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&key);
        });
    }
}
