//! The sled cache of OFSC routes and activities: what devices read, fresh when OFSC answers,
//! still there when it does not.

use crate::config::CacheSettings;
use crate::ofsc::wire::Activity;
use crate::ofsc::{OfscClient, OfscError};
use crate::read::fetch_budget::FetchBudget;
use crate::store::keys::KeyBuf;
use crate::store::{Storage, StorageExt, StoreError, Tree};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
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

/// A route's fetch gate, holding the last failed fetch and when it ended.
type Gate = Arc<tokio::sync::Mutex<Option<(DateTime<Utc>, OfscError)>>>;

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
    retention_days: u32,
    refreshing: Mutex<HashSet<Vec<u8>>>,
    /// One gate per route being fetched: a second fetch of the same route waits for the
    /// first and takes its result (the route it stored, or the error it met).
    fetching: Mutex<HashMap<Vec<u8>, Gate>>,
    /// What each user's cache misses may cost OFSC.
    budget: FetchBudget,
    /// Rendered route bodies; every cache write below touches the route it changes.
    pub renders: crate::read::renders::Renders,
    /// Device views of recently written routes, valid while their route's version holds.
    pub views: crate::read::view::Views,
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
    /// The caller's budget of OFSC reads is spent; it is back in this many seconds.
    #[error("the budget of OFSC reads is spent for {0} s")]
    BudgetSpent(u64),
}

impl Cache {
    pub fn new(store: Arc<dyn Storage>, ofsc: Arc<OfscClient>, settings: &CacheSettings) -> Self {
        Cache {
            store,
            ofsc,
            max_age: Duration::from_secs(settings.route_max_age_secs),
            retention_days: settings.route_retention_days,
            refreshing: Mutex::new(HashSet::new()),
            fetching: Mutex::new(HashMap::new()),
            budget: FetchBudget::new(settings.fetches_per_minute, settings.fetch_burst),
            renders: Default::default(),
            views: Default::default(),
        }
    }

    pub fn activity(&self, id: i64) -> Result<Option<CachedActivity>, StoreError> {
        self.kept(ACTIVITIES, &activity_key(id))
    }

    /// A cached record, or `None` when there is none or it fails verification. A failing one
    /// is quarantined: it is a copy of OFSC's, so the next read fetches it again, where an
    /// error would fail every read of its route (and stop eviction) until an operator came.
    fn kept<T: serde::de::DeserializeOwned>(
        &self,
        tree: Tree,
        key: &[u8],
    ) -> Result<Option<T>, StoreError> {
        match self.store.get::<T>(tree, key) {
            Err(e) if e.is_corrupt() => {
                self.drop_corrupt(tree, key, &e)?;
                Ok(None)
            }
            other => other,
        }
    }

    fn drop_corrupt(&self, tree: Tree, key: &[u8], e: &StoreError) -> Result<(), StoreError> {
        tracing::error!(error = %e, "a cached record fails verification: quarantined, fetched again when read");
        self.store.quarantine(tree, key, &e.to_string())
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
        let Some(route) = self.kept::<CachedRoute>(ROUTES, &route_key(resource, date))? else {
            return Ok(None);
        };
        let mut activities = Vec::with_capacity(route.activity_ids.len());
        let mut lost = false;
        for id in &route.activity_ids {
            let key = activity_key(*id);
            match self.store.get::<CachedActivity>(ACTIVITIES, &key) {
                Ok(Some(a)) => activities.push(a.activity),
                Ok(None) => {}
                Err(e) if e.is_corrupt() => {
                    self.drop_corrupt(ACTIVITIES, &key, &e)?;
                    lost = true;
                }
                Err(e) => return Err(e),
            }
        }
        if lost {
            // Shown without the lost activity until then: the next read refreshes the route.
            self.store
                .update::<CachedRoute>(ROUTES, &route_key(resource, date), &mut |r| {
                    Ok(r.map(|r| CachedRoute {
                        fetched_at: DateTime::<Utc>::UNIX_EPOCH,
                        ..r
                    }))
                })?;
        }
        Ok(Some((route, activities)))
    }

    /// Takes one OFSC read from `user`'s budget (`None`: the service's own work).
    pub fn charge(&self, user: Option<&str>) -> Result<(), CacheError> {
        match user {
            Some(u) => self.budget.charge(u).map_err(CacheError::BudgetSpent),
            None => Ok(()),
        }
    }

    /// Fetches the route from OFSC and replaces the cached copy. Concurrent fetches of one
    /// route are one OFSC read: a fetch that finds another under way waits for it and
    /// answers with what it stored.
    pub async fn fetch_route(
        &self,
        resource: &str,
        date: &str,
    ) -> Result<(CachedRoute, Vec<Activity>), CacheError> {
        let key = route_key(resource, date);
        let asked = Utc::now();
        let gate = {
            let mut fetching = self.fetching.lock().unwrap_or_else(|p| p.into_inner());
            fetching.entry(key.clone()).or_default().clone()
        };
        let result = {
            let mut last_failure = gate.lock().await;
            match (self.cached_route(resource, date), &*last_failure) {
                (Err(e), _) => Err(e.into()),
                (Ok(Some((route, activities))), _) if route.fetched_at >= asked => {
                    Ok((route, activities))
                }
                // The fetch we waited for failed after we asked: OFSC's answer is ours too,
                // rather than each waiter trying again in turn.
                (_, Some((at, e))) if *at >= asked => Err(CacheError::Ofsc(e.clone())),
                _ => {
                    let fetched = self.fetch_route_now(resource, date).await;
                    if let Err(CacheError::Ofsc(e)) = &fetched {
                        *last_failure = Some((Utc::now(), e.clone()));
                    }
                    fetched
                }
            }
        };
        let mut fetching = self.fetching.lock().unwrap_or_else(|p| p.into_inner());
        // The map's copy and ours: nobody else is waiting at this gate.
        if Arc::strong_count(&gate) == 2 {
            fetching.remove(&key);
        }
        result
    }

    /// One OFSC read of the route, replacing the cached copy.
    ///
    /// An activity cached after this fetch began (the replayer storing OFSC's answer to an
    /// action) is newer than what the fetch saw and is kept, so a refresh never undoes a
    /// write the device already sees.
    async fn fetch_route_now(
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
    /// absent (charged to `user`'s budget) and refreshing it in the background when older
    /// than the configured age. With OFSC down an old copy is marked stale.
    pub async fn read_route(
        self: &Arc<Self>,
        resource: &str,
        date: &str,
        ofsc_ok: bool,
        user: Option<&str>,
    ) -> Result<RouteRead, CacheError> {
        match self.kept::<CachedRoute>(ROUTES, &route_key(resource, date))? {
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
                self.charge(user)?;
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

impl Cache {
    /// Evicts cached routes dated more than `route.retention_days` before `today`, with
    /// their activities, unless writes are still queued on them; and activities read on
    /// their own (not through a cached route) that are as old. A record that fails
    /// verification goes to quarantine on the way. Returns how many records went.
    pub fn evict(&self, today: NaiveDate) -> Result<usize, StoreError> {
        let cutoff = today - chrono::Duration::days(i64::from(self.retention_days));
        let old = |date: &str| present_date(date).is_some_and(|d| d < cutoff);
        let mut evicted = 0;
        let mut start: Option<Vec<u8>> = None;
        loop {
            let batch = self.store.scan_raw(ROUTES, &[], start.as_deref(), 512)?;
            let Some((last, _)) = batch.last() else { break };
            start = Some([last.as_slice(), &[0]].concat());
            for (key, value) in &batch {
                let Some(route) = self
                    .store
                    .open_or_quarantine::<CachedRoute>(ROUTES, key, value)?
                else {
                    evicted += 1;
                    continue;
                };
                if !old(&route.date)
                    || !crate::write::outbox::lane_is_empty(
                        self.store.as_ref(),
                        &route.resource_id,
                        &route.date,
                    )?
                {
                    continue;
                }
                // The route first: a store error part-way leaves activities without their
                // route (the pass below evicts those), never a route missing some stops.
                self.store.remove(ROUTES, key)?;
                self.renders.forget(&route.resource_id, &route.date);
                self.views.forget(&route.resource_id, &route.date);
                evicted += 1;
                for id in &route.activity_ids {
                    let kept = self.activity(*id)?;
                    // A moved activity belongs to its new route now.
                    if kept.is_some_and(|a| a.activity.date.as_deref() == Some(route.date.as_str()))
                    {
                        self.store.remove(ACTIVITIES, &activity_key(*id))?;
                        evicted += 1;
                    }
                }
            }
        }
        let mut start: Option<Vec<u8>> = None;
        loop {
            let batch = self
                .store
                .scan_raw(ACTIVITIES, &[], start.as_deref(), 512)?;
            let Some((last, _)) = batch.last() else { break };
            start = Some([last.as_slice(), &[0]].concat());
            for (key, value) in &batch {
                let Some(cached) = self
                    .store
                    .open_or_quarantine::<CachedActivity>(ACTIVITIES, key, value)?
                else {
                    evicted += 1;
                    continue;
                };
                let a = &cached.activity;
                let (Some(r), Some(d)) = (a.resource_id.as_deref(), a.date.as_deref()) else {
                    continue;
                };
                if old(d)
                    && !self.has_route(r, d)?
                    && crate::write::outbox::lane_is_empty(self.store.as_ref(), r, d)?
                {
                    self.store.remove(ACTIVITIES, key)?;
                    evicted += 1;
                }
            }
        }
        Ok(evicted)
    }

    /// Evicts old routes once an hour, for as long as the service runs.
    pub async fn evict_forever(self: Arc<Self>) {
        loop {
            let this = self.clone();
            let today = Utc::now().date_naive();
            match tokio::task::spawn_blocking(move || this.evict(today)).await {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => tracing::info!(records = n, "old cached routes evicted"),
                Ok(Err(e)) => tracing::error!(error = %e, "route eviction failed"),
                Err(e) => tracing::error!(error = %e, "route eviction stopped"),
            }
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
    }
}

fn present_date(date: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()
}

#[cfg(test)]
#[path = "cache_tests.rs"]
pub(crate) mod tests;
