//! The OFSC events poller: follows OFSC's Events API so dispatcher changes reach the cache
//! and the change log that devices pull, and recovers from an expired subscription.

use crate::ofsc::wire::Event;
use crate::ofsc::{OfscClient, OfscError};
use crate::read::cache::Cache;
use crate::store::{GroupCommit, Storage, StorageExt, Tree};
use crate::write::outbox::{change_key, Change, CHANGES};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

const SUBSCRIPTION_KEY: &[u8] = b"events_subscription";

/// What OFSC tells us about.
pub const EVENT_TYPES: &[&str] = &[
    "activityCreated",
    "activityUpdated",
    "activityStarted",
    "activityTravelStarted",
    "activityTravelStopped",
    "activitySuspended",
    "activityCompleted",
    "activityNotDone",
    "activityCanceled",
    "activityDeleted",
    "activityDelayed",
    "activityReopened",
    "activityMoved",
    "routeActivated",
    "routeDeactivated",
    "routeReactivated",
    "inventoryInstalled",
    "inventoryDeinstalled",
    "inventoryUndoInstall",
    "inventoryUndoDeinstall",
    "resourceInventoryCreated",
    "resourceInventoryUpdated",
    "resourceInventoryDeleted",
    "customerInventoryCreated",
    "resourceCreated",
    "resourceUpdated",
];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Cursor {
    subscription_id: String,
    next_page: String,
}

pub struct EventsPoller {
    store: Arc<dyn Storage>,
    commit: GroupCommit,
    ofsc: Arc<OfscClient>,
    cache: Arc<Cache>,
    stock: Arc<crate::features::stock::Stock>,
    /// Kept current from resource events between its slow full re-reads.
    directory: Arc<crate::read::directory::Directory>,
    interval: Duration,
}

/// The routes an event touches, as (resource, date): the activity's (for a move, where it
/// was), where its changes put it (for a move, where it went), and the route's own.
fn routes_of(e: &Event) -> Vec<(String, String)> {
    let field =
        |v: Option<&Value>, k: &str| -> Option<String> { Some(v?.get(k)?.as_str()?.to_string()) };
    let details = e.activity_details.as_ref();
    let changes = e.activity_changes.as_ref();
    let pair = |v: Option<&Value>| Some((field(v, "resourceId")?, field(v, "date")?));
    let changed_to = match (field(changes, "resourceId"), field(changes, "date")) {
        (None, None) => None,
        (r, d) => r
            .or_else(|| field(details, "resourceId"))
            .zip(d.or_else(|| field(details, "date"))),
    };
    let mut out: Vec<(String, String)> =
        [pair(details), changed_to, pair(e.route_details.as_ref())]
            .into_iter()
            .flatten()
            .collect();
    out.dedup();
    out
}

/// Where an inventory event's item is (its resource, its activity), from the fields
/// Oracle puts beside `inventoryDetails`: `inventoryChanges` and `activityDetails`.
fn inventory_place(e: &Event) -> (Option<String>, Option<i64>) {
    let changes = e.inventory_changes.as_ref();
    let activity = e.activity_details.as_ref();
    let resource = [changes, activity]
        .into_iter()
        .flatten()
        .find_map(|v| v.get("resourceId").and_then(Value::as_str))
        .map(str::to_string);
    let activity_id = [activity, changes]
        .into_iter()
        .flatten()
        .find_map(|v| v.get("activityId").and_then(Value::as_i64));
    (resource, activity_id)
}

/// The resources whose devices should hear about an event.
fn resources_of(e: &Event) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = routes_of(e).into_iter().map(|(r, _)| r).collect();
    if e.inventory_details.is_some() {
        if let (Some(r), _) = inventory_place(e) {
            out.insert(r);
        }
    }
    out
}

impl EventsPoller {
    pub fn new(
        store: Arc<dyn Storage>,
        commit: GroupCommit,
        ofsc: Arc<OfscClient>,
        cache: Arc<Cache>,
        stock: Arc<crate::features::stock::Stock>,
        directory: Arc<crate::read::directory::Directory>,
        interval: Duration,
    ) -> Self {
        EventsPoller {
            store,
            commit,
            ofsc,
            cache,
            stock,
            directory,
            interval,
        }
    }

    pub fn start(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move { self.run().await })
    }

    async fn subscribe(&self) -> Result<Cursor, OfscError> {
        let sub = self.ofsc.subscribe(EVENT_TYPES, "fieldsync").await?;
        let cursor = Cursor {
            subscription_id: sub.subscription_id,
            next_page: sub.next_page,
        };
        self.save(&cursor);
        Ok(cursor)
    }

    fn save(&self, c: &Cursor) {
        if let Err(e) = self.store.put(Tree::META, SUBSCRIPTION_KEY, c) {
            tracing::error!(error = %e, "cannot store the events cursor");
        }
    }

    async fn run(self) {
        let mut cursor: Option<Cursor> =
            self.store.get(Tree::META, SUBSCRIPTION_KEY).ok().flatten();
        loop {
            let c = match cursor.take() {
                Some(c) => c,
                None => match self.subscribe().await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot subscribe to OFSC events");
                        tokio::time::sleep(self.interval).await;
                        continue;
                    }
                },
            };
            match self
                .ofsc
                .events(&c.subscription_id, Some(&c.next_page), 1000)
                .await
            {
                Ok(page) => {
                    let drained = page.items.is_empty();
                    self.apply(&page.items).await;
                    let next = Cursor {
                        subscription_id: c.subscription_id,
                        next_page: page.next_page,
                    };
                    if next.next_page != c.next_page {
                        self.save(&next);
                    }
                    cursor = Some(next);
                    if drained {
                        tokio::time::sleep(self.interval).await;
                    }
                }
                Err(e) if e.is_not_found() => {
                    // Expired (36 h unread): subscribe again and re-read what devices rely on.
                    tracing::warn!("OFSC events subscription expired; subscribing again");
                    cursor = None;
                    self.refresh_cached_routes().await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reading OFSC events failed");
                    cursor = Some(c);
                    tokio::time::sleep(self.interval).await;
                }
            }
        }
    }

    async fn refresh_cached_routes(&self) {
        let today = Utc::now().date_naive();
        let mut recent = Vec::new();
        let scanned = crate::store::scan_pages(
            self.store.as_ref(),
            crate::read::cache::ROUTES,
            b"",
            1024,
            &mut |k, _| {
                let mut r = crate::store::keys::KeyReader::new(k);
                if let (Ok(resource), Ok(date)) = (r.str(), r.str()) {
                    if worth_refreshing(&date, today) {
                        recent.push((resource, date));
                    }
                }
                Ok(true)
            },
        );
        if let Err(e) = scanned {
            tracing::warn!(error = %e, "listing cached routes to refresh failed");
        }
        for (resource, date) in recent {
            if let Err(e) = self.cache.fetch_route(&resource, &date).await {
                tracing::warn!(%resource, %date, error = %e, "route refresh after resubscribe failed");
            }
        }
    }

    /// Refreshes each touched route once, then records the changes for devices to pull.
    /// Inventory events (a dispatcher restocking a van, equipment added at a site) refresh
    /// the van and site caches that are kept.
    async fn refresh_stock(&self, events: &[Event]) {
        let mut vans = BTreeSet::new();
        let mut sites = BTreeSet::new();
        for e in events.iter().filter(|e| e.inventory_details.is_some()) {
            let (resource, activity) = inventory_place(e);
            vans.extend(resource);
            sites.extend(activity);
        }
        for r in vans {
            if let Err(e) = self.stock.refresh_van_if_kept(&r).await {
                tracing::warn!(resource = %r, error = %e, "van refresh after an event failed");
            }
        }
        for a in sites {
            if let Err(e) = self.stock.refresh_site_if_kept(a).await {
                tracing::warn!(activity = a, error = %e, "site refresh after an event failed");
            }
        }
    }

    /// A resource created or changed in OFSC (a new technician, a move to another team) is
    /// read again and kept in the directory.
    async fn refresh_resources(&self, events: &[Event]) {
        let ids: BTreeSet<&str> = events
            .iter()
            .filter_map(|e| e.resource_details.as_ref()?.get("resourceId")?.as_str())
            .collect();
        for id in ids {
            match self.ofsc.get_resource(id).await {
                Ok(r) => self.directory.upsert(r),
                Err(e) => {
                    tracing::warn!(resource = %id, error = %e, "resource refresh after an event failed")
                }
            }
        }
    }

    async fn apply(&self, events: &[Event]) {
        if events.is_empty() {
            return;
        }
        self.refresh_resources(events).await;
        let routes: BTreeSet<(String, String)> = events.iter().flat_map(routes_of).collect();
        for (resource, date) in &routes {
            if let Err(e) = self.cache.fetch_route(resource, date).await {
                tracing::warn!(%resource, %date, error = %e, "route refresh after an event failed");
            }
        }
        self.refresh_stock(events).await;
        for e in events {
            for resource in resources_of(e) {
                let Ok(ticket) = self.store.ticket() else {
                    continue;
                };
                let seq = ticket.id;
                let activity_id = e
                    .activity_details
                    .as_ref()
                    .and_then(|d| d.get("activityId"))
                    .and_then(Value::as_i64);
                let kind = if e.event_type.starts_with("route") {
                    "route"
                } else if e.event_type.contains("nventory") {
                    "inventory"
                } else {
                    "activity"
                };
                let change = Change {
                    seq,
                    resource_id: resource.clone(),
                    kind: kind.into(),
                    device_id: None,
                    activity_id,
                    data: json!({
                        "eventType": e.event_type,
                        "time": e.time,
                        "details": e.activity_details.clone().or(e.route_details.clone()).or(e.inventory_details.clone()),
                        "changes": e.activity_changes.clone().or(e.route_changes.clone()).or(e.inventory_changes.clone()),
                        "move": e.move_details,
                    }),
                    at: Utc::now(),
                };
                if let Err(err) = self
                    .store
                    .put(CHANGES, &change_key(&resource, seq), &change)
                {
                    tracing::error!(error = %err, "cannot record an OFSC change");
                }
            }
        }
        if let Err(e) = self.commit.flush().await {
            tracing::error!(error = %e, "flush after events failed");
        }
    }
}

/// Whether a cached route is re-read after events were lost: devices work today's and the
/// coming days' routes; past days (UTC today less two, so every time zone's yesterday stays
/// in) are history, and re-reading months of them would flood OFSC.
fn worth_refreshing(date: &str, today_utc: chrono::NaiveDate) -> bool {
    chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d")
        .is_ok_and(|d| d >= today_utc - chrono::Days::new(2))
}

#[cfg(test)]
mod refresh_tests {
    use super::worth_refreshing;
    use chrono::NaiveDate;

    #[test]
    fn only_recent_and_coming_routes_are_refreshed() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 28).unwrap_or_default();
        for (date, want) in [
            ("2026-11-28", true),
            ("2026-11-26", true),
            ("2026-12-03", true),
            ("2026-11-25", false),
            ("2025-11-28", false),
            ("not-a-date", false),
        ] {
            assert_eq!(worth_refreshing(date, today), want, "{date}");
        }
    }
}

#[cfg(test)]
mod shape_tests {
    use super::*;

    fn event(v: Value) -> Event {
        serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_move_touches_the_route_it_left_and_the_route_it_joined() {
        let e = event(json!({
            "eventType": "activityMoved", "time": "2026-12-02 10:00:00",
            "activityDetails": {"activityId": 7, "resourceId": "tech1", "date": "2026-12-02"},
            "activityChanges": {"resourceId": "tech2", "date": "2026-12-03"},
            "moveDetails": {"moveCondition": "resourceToResource"},
        }));
        assert_eq!(
            routes_of(&e),
            [
                ("tech1".to_string(), "2026-12-02".to_string()),
                ("tech2".to_string(), "2026-12-03".to_string())
            ]
        );
        assert_eq!(resources_of(&e).len(), 2);
        // A move to another day of the same technician: the date alone changes.
        let e = event(json!({
            "eventType": "activityMoved", "time": "2026-12-02 10:00:00",
            "activityDetails": {"activityId": 7, "resourceId": "tech1", "date": "2026-12-02"},
            "activityChanges": {"date": "2026-12-04"},
        }));
        assert_eq!(routes_of(&e)[1], ("tech1".into(), "2026-12-04".into()));
    }

    #[test]
    fn an_inventory_event_names_its_van_and_site_beside_its_details() {
        let e = event(json!({
            "eventType": "resourceInventoryUpdated", "time": "2026-12-02 10:00:00",
            "inventoryDetails": {"inventoryId": 5, "inventoryType": "CABLE", "status": "resource"},
            "inventoryChanges": {"resourceId": "tech3", "quantity": 40},
        }));
        assert_eq!(inventory_place(&e), (Some("tech3".into()), None));
        assert!(resources_of(&e).contains("tech3"));
        let e = event(json!({
            "eventType": "inventoryInstalled", "time": "2026-12-02 10:00:00",
            "inventoryDetails": {"inventoryId": 5, "inventoryType": "MODEM", "status": "installed"},
            "activityDetails": {"activityId": 9, "resourceId": "tech1", "date": "2026-12-02"},
        }));
        assert_eq!(inventory_place(&e), (Some("tech1".into()), Some(9)));
    }
}
