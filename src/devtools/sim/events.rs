//! The simulated Events API: subscriptions, ordered event pages and expiry.

use super::model::{SimError, SimResult};
use crate::ofsc::wire::{Event, EventsPage};
use chrono::{DateTime, Duration, Utc};
use std::collections::HashMap;

/// Subscriptions not read for this long expire (reading them is then a 404).
const EXPIRY: i64 = 36 * 3600;
const MAX_SUBSCRIPTIONS: usize = 100;

/// The event types Oracle documents; a subscription to anything else is refused.
pub const KNOWN_EVENTS: &[&str] = &[
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
    "activityPreworkCreated",
    "activityMoved",
    "activityLinkCreated",
    "activityLinkDeleted",
    "routeActivated",
    "routeDeactivated",
    "routeReactivated",
    "routeCreated",
    "routeUpdated",
    "inventoryInstalled",
    "inventoryDeinstalled",
    "inventoryUndoInstall",
    "inventoryUndoDeinstall",
    "customerInventoryCreated",
    "customerInventoryUpdated",
    "customerInventoryDeleted",
    "resourceInventoryCreated",
    "resourceInventoryUpdated",
    "resourceInventoryDeleted",
    "requiredInventoryCreated",
    "requiredInventoryUpdated",
    "requiredInventoryDeleted",
    "userCreated",
    "userUpdated",
    "userDeleted",
    "resourceCreated",
    "resourceUpdated",
    "formSubmitted",
    "routingRun",
    "transactionUpdated",
];

#[derive(Debug, Clone)]
struct Subscription {
    events: Vec<String>,
    last_read: DateTime<Utc>,
    last_requested: u64,
    expired: bool,
}

/// Every event since start, with a sequence used as the page cursor.
#[derive(Debug, Default)]
pub struct EventLog {
    items: Vec<(u64, Event)>,
    subscriptions: HashMap<String, Subscription>,
    next_subscription: u64,
}

impl EventLog {
    pub fn emit(&mut self, event: Event) {
        let seq = self.items.len() as u64 + 1;
        self.items.push((seq, event));
    }

    pub fn last_mut(&mut self) -> Option<&mut Event> {
        self.items.last_mut().map(|(_, e)| e)
    }

    fn head(&self) -> u64 {
        self.items.len() as u64
    }

    /// Subscribes to `events`; an identical subscription is returned instead of a new one.
    pub fn subscribe(&mut self, mut events: Vec<String>) -> SimResult<(String, String)> {
        if events.is_empty() {
            return Err(SimError::bad_request("At least one event type is required"));
        }
        if let Some(unknown) = events.iter().find(|e| !KNOWN_EVENTS.contains(&e.as_str())) {
            return Err(SimError::bad_request(format!(
                "Unknown event type '{unknown}'"
            )));
        }
        events.sort();
        events.dedup();
        if let Some((id, _)) = self
            .subscriptions
            .iter()
            .find(|(_, s)| !s.expired && s.events == events)
        {
            return Ok((id.clone(), self.head().to_string()));
        }
        let live = self.subscriptions.values().filter(|s| !s.expired).count();
        if live >= MAX_SUBSCRIPTIONS {
            return Err(SimError {
                status: 503,
                detail: format!("Too many subscriptions registered. Found {live}."),
            });
        }
        self.next_subscription += 1;
        let id = format!(
            "sub{:08x}",
            self.next_subscription * 2654435761 % 0xffff_ffff
        );
        let head = self.head();
        self.subscriptions.insert(
            id.clone(),
            Subscription {
                events,
                last_read: Utc::now(),
                last_requested: head,
                expired: false,
            },
        );
        Ok((id, head.to_string()))
    }

    pub fn unsubscribe(&mut self, id: &str) -> SimResult<()> {
        self.subscriptions
            .remove(id)
            .map(|_| ())
            .ok_or_else(|| SimError::not_found(format!("Subscription '{id}' not found")))
    }

    pub fn describe(&self, id: &str) -> SimResult<serde_json::Value> {
        let s = self.live(id)?;
        Ok(serde_json::json!({
            "subscriptionId": id,
            "events": s.events,
            "expirationTime": crate::ofsc::time::to_utc_string(&(s.last_read + Duration::seconds(EXPIRY))),
            "applicationId": "fieldsync-demo",
        }))
    }

    fn live(&self, id: &str) -> SimResult<&Subscription> {
        match self.subscriptions.get(id) {
            Some(s) if !s.expired && Utc::now() - s.last_read < Duration::seconds(EXPIRY) => Ok(s),
            _ => Err(SimError::not_found(format!(
                "Subscription '{id}' not found or expired"
            ))),
        }
    }

    /// Test control: every subscription expires now.
    pub fn expire_all(&mut self) {
        for s in self.subscriptions.values_mut() {
            s.expired = true;
        }
    }

    /// `GET /events?since=`: no events, only the page just before the first event at or
    /// after `since` (UTC `YYYY-MM-DD HH:MM:SS`), for a reader recovering its place.
    pub fn since(&mut self, id: &str, since: &str) -> SimResult<EventsPage> {
        self.live(id)?;
        chrono::NaiveDateTime::parse_from_str(since, "%Y-%m-%d %H:%M:%S")
            .map_err(|_| SimError::bad_request(format!("Invalid since '{since}'")))?;
        // Event times are in that same format, so they order as strings.
        let before = self
            .items
            .iter()
            .take_while(|(_, e)| e.time.as_str() < since)
            .last()
            .map_or(0, |(seq, _)| *seq);
        if let Some(s) = self.subscriptions.get_mut(id) {
            s.last_read = Utc::now();
        }
        Ok(EventsPage {
            found: false,
            next_page: before.to_string(),
            items: Vec::new(),
        })
    }

    /// `GET /events`: events after `page` (oldest available when absent), at most `limit`.
    pub fn read(&mut self, id: &str, page: Option<&str>, limit: usize) -> SimResult<EventsPage> {
        let sub = self.live(id)?.clone();
        let after = match page {
            None => 0,
            Some("lastRequested") => sub.last_requested,
            Some(p) => p
                .parse::<u64>()
                .map_err(|_| SimError::bad_request(format!("Invalid page '{p}'")))?,
        };
        let limit = limit.clamp(1, 1000);
        let mut items = Vec::new();
        let mut next = after;
        for (seq, e) in self.items.iter().skip(after as usize) {
            if items.len() >= limit {
                break;
            }
            next = *seq;
            if sub.events.contains(&e.event_type) {
                items.push(e.clone());
            }
        }
        if let Some(s) = self.subscriptions.get_mut(id) {
            s.last_read = Utc::now();
            s.last_requested = after;
        }
        Ok(EventsPage {
            found: !items.is_empty(),
            next_page: next.to_string(),
            items,
        })
    }
}

#[cfg(test)]
#[path = "events_tests.rs"]
mod tests;
