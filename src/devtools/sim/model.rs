//! The simulated tenant's state and the operations on it, independent of HTTP.

use super::events::EventLog;
use super::rules::{self, Action, RouteFacts};
use super::seed::Expanded;
use crate::ofsc::time::{self, LOCAL_FORMAT};
use crate::ofsc::wire::{Activity, Event, Inventory, Position, Resource};
use chrono::{Duration, NaiveDate, NaiveDateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};

/// An OFSC-style refusal: becomes the error body with a string `status`.
#[derive(Debug, Clone, PartialEq)]
pub struct SimError {
    pub status: u16,
    pub detail: String,
}

impl SimError {
    pub fn bad_request(detail: impl Into<String>) -> Self {
        SimError {
            status: 400,
            detail: detail.into(),
        }
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        SimError {
            status: 404,
            detail: detail.into(),
        }
    }
}

pub type SimResult<T> = Result<T, SimError>;

/// Who made a state change and through which call; recorded in the ledger.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub source: &'static str,
}

/// One applied state-changing call, in order.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LedgerEntry {
    pub seq: u64,
    pub method: String,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activity_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inventory_id: Option<i64>,
    pub source: &'static str,
}

#[derive(Debug, Clone, Default)]
pub struct RouteState {
    pub activated_at: Option<NaiveDateTime>,
    pub deactivated_at: Option<NaiveDateTime>,
    pub last_action: Option<NaiveDateTime>,
}

#[derive(Debug, Clone)]
pub struct StoredFile {
    pub name: String,
    pub media_type: String,
    pub data: bytes::Bytes,
}

/// The whole simulated tenant.
#[derive(Debug, Default)]
pub struct Tenant {
    pub resources: BTreeMap<String, Resource>,
    pub activities: super::activities::Activities,
    next_activity_id: i64,
    pub routes: HashMap<(String, String), RouteState>,
    pub inventories: BTreeMap<i64, Inventory>,
    next_inventory_id: i64,
    pub files: HashMap<(i64, String), StoredFile>,
    pub events: EventLog,
    pub ledger: Vec<LedgerEntry>,
    pub positions: Vec<Position>,
    /// Custom property label → type (`file` for file properties).
    pub properties: BTreeMap<String, String>,
}

/// `activityDetails` of an event: the fields Oracle's schema gives it (absent ones left out,
/// as OFSC leaves out `date` for undated work).
pub fn activity_details(id: i64, a: &Activity) -> Value {
    without_nulls(json!({
        "activityId": id,
        "resourceId": a.resource_id,
        "date": a.date,
        "apptNumber": a.appt_number,
    }))
}

/// An object without its null members: OFSC omits a field rather than sending null.
pub fn without_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.into_iter().filter(|(_, v)| !v.is_null()).collect()),
        other => other,
    }
}

impl Tenant {
    pub fn from_seed(seed: &Expanded) -> Tenant {
        let mut t = Tenant {
            next_activity_id: 4_200_001,
            next_inventory_id: 21_000_001,
            properties: seed.properties.clone(),
            ..Default::default()
        };
        for r in &seed.resources {
            t.resources.insert(r.resource_id.clone(), r.clone());
        }
        for (activity, customer) in &seed.activities {
            let id = t.alloc_activity_id();
            let mut a = activity.clone();
            a.activity_id = Some(id);
            t.activities.insert(id, a);
            for inv in customer {
                let mut inv = inv.clone();
                inv.activity_id = Some(id);
                t.insert_inventory(inv);
            }
        }
        for inv in &seed.van_stock {
            t.insert_inventory(inv.clone());
        }
        t
    }

    fn alloc_activity_id(&mut self) -> i64 {
        let id = self.next_activity_id;
        self.next_activity_id += 1;
        id
    }

    pub fn insert_inventory(&mut self, mut inv: Inventory) -> i64 {
        let id = self.next_inventory_id;
        self.next_inventory_id += 1;
        inv.inventory_id = Some(id);
        self.inventories.insert(id, inv);
        id
    }

    pub fn log(
        &mut self,
        call: &Call,
        activity_id: Option<i64>,
        action: Option<&str>,
        time: Option<String>,
    ) {
        let resource_id = activity_id
            .and_then(|id| self.activities.get(&id))
            .and_then(|a| a.resource_id.clone());
        self.log_full(call, activity_id, action, time, resource_id, None);
    }

    pub fn log_full(
        &mut self,
        call: &Call,
        activity_id: Option<i64>,
        action: Option<&str>,
        time: Option<String>,
        resource_id: Option<String>,
        inventory_id: Option<i64>,
    ) {
        let seq = self.ledger.len() as u64 + 1;
        self.ledger.push(LedgerEntry {
            seq,
            method: call.method.clone(),
            path: call.path.clone(),
            activity_id,
            action: action.map(str::to_string),
            time,
            resource_id,
            inventory_id,
            source: call.source,
        });
    }

    pub fn resource(&self, id: &str) -> SimResult<&Resource> {
        self.resources
            .get(id)
            .ok_or_else(|| SimError::not_found(format!("Resource '{id}' not found")))
    }

    pub fn zone_of(&self, resource_id: &str) -> Tz {
        self.resources
            .get(resource_id)
            .and_then(|r| r.time_zone_iana.as_deref())
            .and_then(|z| time::zone(z).ok())
            .unwrap_or(chrono_tz::UTC)
    }

    pub fn activity(&self, id: i64) -> SimResult<&Activity> {
        self.activities
            .get(&id)
            .ok_or_else(|| SimError::not_found(format!("Activity {id} not found")))
    }

    pub(super) fn now_local(&self, resource_id: &str) -> NaiveDateTime {
        Utc::now()
            .with_timezone(&self.zone_of(resource_id))
            .naive_local()
    }

    /// Activities of one route, ordered ones first by position, then the rest by id.
    pub fn route_items(&self, resource_id: &str, date: &str) -> Vec<&Activity> {
        let mut items = self.activities.on_route(resource_id, date);
        items.sort_by_key(|a| (a.position_in_route.unwrap_or(i64::MAX), a.activity_id));
        items
    }

    fn route_facts(&self, a: &Activity) -> RouteFacts {
        let (rid, date) = (
            a.resource_id.clone().unwrap_or_default(),
            a.date.clone().unwrap_or_default(),
        );
        let others: Vec<&Activity> = self
            .route_items(&rid, &date)
            .into_iter()
            .filter(|o| o.activity_id != a.activity_id)
            .collect();
        let today = time::today_in(self.zone_of(&rid));
        let date_past = NaiveDate::parse_from_str(&date, "%Y-%m-%d")
            .map(|d| d < today)
            .unwrap_or(false);
        let status = |o: &Activity, s: &str| o.status.as_deref() == Some(s);
        RouteFacts {
            route_activated: self
                .routes
                .get(&(rid.clone(), date.clone()))
                .is_some_and(|r| r.activated_at.is_some()),
            other_started: others.iter().any(|o| status(o, "started")),
            other_enroute: others.iter().any(|o| status(o, "enroute")),
            earlier_pending: match a.position_in_route {
                Some(pos) => others
                    .iter()
                    .any(|o| status(o, "pending") && o.position_in_route.is_some_and(|p| p < pos)),
                None => false,
            },
            date_past,
            ordered: a.position_in_route.is_some(),
        }
    }

    /// Resolves the action `time` (resource-local; default now) and enforces that it never goes
    /// backwards within the route.
    fn action_time(&self, a: &Activity, body: &Value, action: Action) -> SimResult<NaiveDateTime> {
        let rid = a.resource_id.clone().unwrap_or_default();
        let time = match body.get("time").and_then(Value::as_str) {
            Some(s) => time::parse_naive(s).map_err(|e| SimError::bad_request(e.to_string()))?,
            None => self.now_local(&rid),
        };
        let key = (rid, a.date.clone().unwrap_or_default());
        if let Some(route) = self.routes.get(&key) {
            if let Some(last) = route.last_action {
                if time < last {
                    return Err(SimError::bad_request(format!(
                        "Time {} is earlier than the previous action in the route ({})",
                        time.format(LOCAL_FORMAT),
                        last.format(LOCAL_FORMAT)
                    )));
                }
            }
            if action == Action::Start {
                if let Some(act) = route.activated_at {
                    if time < act {
                        return Err(SimError::bad_request(
                            "Start time is before the route activation",
                        ));
                    }
                }
            }
        }
        if matches!(action, Action::Complete | Action::NotDone | Action::Suspend)
            && a.status.as_deref() == Some("started")
        {
            if let Some(start) = a
                .start_time
                .as_deref()
                .and_then(|s| time::parse_naive(s).ok())
            {
                if time < start {
                    return Err(SimError::bad_request("Time is before the activity start"));
                }
            }
        }
        Ok(time)
    }

    /// A status custom action on an activity.
    pub fn activity_action(
        &mut self,
        call: &Call,
        id: i64,
        action: Action,
        body: &Value,
    ) -> SimResult<Activity> {
        let a = self.activity(id)?.clone();
        let status = a.status.clone().unwrap_or_default();
        rules::check(action, &status, &self.route_facts(&a)).map_err(SimError::bad_request)?;
        // A dispatcher's change is not the technician's work on the route: it neither checks
        // nor moves the route's action clock.
        let time = if !action.is_timed() {
            None
        } else if call.source == "dispatcher" {
            Some(self.now_local(a.resource_id.as_deref().unwrap_or_default()))
        } else {
            Some(self.action_time(&a, body, action)?)
        };
        let time_s = time.map(|t| t.format(LOCAL_FORMAT).to_string());
        let key = (
            a.resource_id.clone().unwrap_or_default(),
            a.date.clone().unwrap_or_default(),
        );
        let mut updated = a.clone();
        updated.status = Some(rules::status_after(action, &status));
        let mut result_id = id;
        match action {
            Action::Start => updated.start_time = time_s.clone(),
            Action::Enroute => {
                if let Some(t) = time {
                    let eta = t + Duration::minutes(a.travel_time.unwrap_or(0));
                    updated.start_time = Some(eta.format(LOCAL_FORMAT).to_string());
                }
            }
            Action::Complete | Action::NotDone => updated.end_time = time_s.clone(),
            Action::Suspend => {
                updated.position_in_route = None;
                if status == "started" {
                    let copy_id = self.alloc_activity_id();
                    let mut copy = a.clone();
                    copy.activity_id = Some(copy_id);
                    copy.status = Some("suspended".into());
                    copy.position_in_route = None;
                    copy.end_time = time_s.clone();
                    self.activities.insert(copy_id, copy);
                }
                updated.start_time = None;
            }
            Action::Delay => {
                let minutes = match (
                    body.get("delayMinutes").and_then(Value::as_i64),
                    body.get("delayUntilTime").and_then(Value::as_str),
                ) {
                    (Some(m), None) if m > 0 => m,
                    (None, Some(until)) => {
                        let until = time::parse_naive(until)
                            .map_err(|e| SimError::bad_request(e.to_string()))?;
                        updated.end_time = Some(until.format(LOCAL_FORMAT).to_string());
                        0
                    }
                    _ => {
                        return Err(SimError::bad_request(
                            "Exactly one of delayMinutes or delayUntilTime is required",
                        ))
                    }
                };
                if minutes > 0 {
                    let base = a
                        .end_time
                        .as_deref()
                        .and_then(|s| time::parse_naive(s).ok())
                        .unwrap_or_else(|| self.now_local(&key.0));
                    updated.end_time = Some(
                        (base + Duration::minutes(minutes))
                            .format(LOCAL_FORMAT)
                            .to_string(),
                    );
                }
            }
            Action::Reopen => {
                let position = body
                    .get("setPositionInRoute")
                    .ok_or_else(|| SimError::bad_request("setPositionInRoute is required"))?;
                let new_id = self.alloc_activity_id();
                let mut reopened = a.clone();
                reopened.activity_id = Some(new_id);
                reopened.status = Some("pending".into());
                reopened.record_type = Some("reopened".into());
                reopened.start_time = None;
                reopened.end_time = None;
                reopened.position_in_route = self.position_for(&key.0, &key.1, position);
                self.activities.insert(new_id, reopened);
                updated = a.clone();
                result_id = new_id;
            }
            Action::StopTravel | Action::Cancel | Action::Delete => {}
        }
        self.activities.insert(id, updated);
        if let (Some(t), "api") = (time, call.source) {
            self.routes.entry(key).or_default().last_action = Some(t);
        }
        self.log(call, Some(id), Some(action.name()), time_s);
        let event = match action {
            Action::Start => "activityStarted",
            Action::Enroute => "activityTravelStarted",
            Action::StopTravel => "activityTravelStopped",
            Action::Suspend => "activitySuspended",
            Action::Complete => "activityCompleted",
            Action::NotDone => "activityNotDone",
            Action::Cancel => "activityCanceled",
            Action::Delay => "activityDelayed",
            Action::Reopen => "activityReopened",
            Action::Delete => "activityDeleted",
        };
        self.emit_activity(
            event,
            result_id,
            json!({"status": self.activities.get(&result_id).and_then(|x| x.status.clone())}),
        );
        self.activity(result_id).cloned()
    }

    pub(super) fn position_for(&self, resource_id: &str, date: &str, spec: &Value) -> Option<i64> {
        let max = self
            .route_items(resource_id, date)
            .iter()
            .filter_map(|a| a.position_in_route)
            .max()
            .unwrap_or(0);
        match spec.get("position").and_then(Value::as_str) {
            Some("notOrdered") => None,
            _ => Some(max + 1),
        }
    }

    pub fn emit_activity(&mut self, event_type: &str, id: i64, changes: Value) {
        let Some(a) = self.activities.get(&id) else {
            return;
        };
        let details = activity_details(id, a);
        self.emit_activity_event(event_type, details, changes, None);
    }

    /// An activity event as Oracle's `activityEvent` schema has it: `activityDetails` (the
    /// activity as the event found it: for a move, where it was), `activityChanges` (what
    /// changed, new values), `moveDetails` for moves.
    pub fn emit_activity_event(
        &mut self,
        event_type: &str,
        details: Value,
        changes: Value,
        move_details: Option<Value>,
    ) {
        self.events.emit(Event {
            event_type: event_type.to_string(),
            time: time::to_utc_string(&Utc::now()),
            user: Some("fieldsync-demo".into()),
            activity_details: Some(details),
            activity_changes: Some(changes),
            move_details,
            ..Default::default()
        });
    }

    pub fn emit_route(&mut self, event_type: &str, resource_id: &str, date: &str, changes: Value) {
        self.events.emit(Event {
            event_type: event_type.to_string(),
            time: time::to_utc_string(&Utc::now()),
            user: Some("fieldsync-demo".into()),
            route_details: Some(json!({"resourceId": resource_id, "date": date})),
            route_changes: Some(changes),
            ..Default::default()
        });
    }

    /// `PATCH /resources/{id}`.
    pub fn update_resource(
        &mut self,
        call: &Call,
        id: &str,
        patch: Map<String, Value>,
    ) -> SimResult<crate::ofsc::wire::Resource> {
        let current = self.resource(id)?.clone();
        if patch.contains_key("resourceId") || patch.contains_key("resourceInternalId") {
            return Err(SimError::bad_request(
                "Field 'resourceId' cannot be updated",
            ));
        }
        if let Some(parent) = patch.get("parentResourceId").and_then(Value::as_str) {
            self.resource(parent)?;
        }
        let mut merged =
            serde_json::to_value(&current).map_err(|e| SimError::bad_request(e.to_string()))?;
        if let Value::Object(m) = &mut merged {
            for (k, v) in patch.clone() {
                m.insert(k, v);
            }
        }
        let updated: crate::ofsc::wire::Resource = serde_json::from_value(merged)
            .map_err(|e| SimError::bad_request(format!("Invalid resource: {e}")))?;
        self.resources.insert(id.to_string(), updated.clone());
        self.log(call, None, Some("updateResource"), None);
        self.events.emit(Event {
            event_type: "resourceUpdated".into(),
            time: time::to_utc_string(&Utc::now()),
            user: Some("fieldsync-demo".into()),
            resource_details: Some(json!({
                "resourceId": id,
                "name": updated.name,
                "resourceType": updated.resource_type,
            })),
            resource_changes: Some(Value::Object(patch)),
            ..Default::default()
        });
        Ok(updated)
    }

    /// `POST /activities`.
    pub fn create_activity(
        &mut self,
        call: &Call,
        body: Map<String, Value>,
    ) -> SimResult<Activity> {
        let position = body.get("setPositionInRoute").cloned();
        let mut body = body;
        body.remove("setPositionInRoute");
        for ro in ["activityId", "status", "positionInRoute", "travelTime"] {
            body.remove(ro);
        }
        let mut a: Activity = serde_json::from_value(Value::Object(body))
            .map_err(|e| SimError::bad_request(format!("Invalid activity: {e}")))?;
        let (Some(_), Some(rid)) = (a.activity_type.clone(), a.resource_id.clone()) else {
            return Err(SimError::bad_request(
                "activityType and resourceId are required",
            ));
        };
        let tz = self.resource(&rid)?.time_zone_iana.clone();
        if let Some(d) = &a.date {
            NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .map_err(|_| SimError::bad_request(format!("Invalid date '{d}'")))?;
        }
        self.known_properties(&a)?;
        let id = self.alloc_activity_id();
        a.activity_id = Some(id);
        a.status = Some("pending".into());
        a.record_type = Some("regular".into());
        a.resource_time_zone = tz.clone();
        a.resource_time_zone_iana = tz.clone();
        if a.time_zone.is_none() {
            a.time_zone = tz.clone();
            a.time_zone_iana = tz;
        }
        if let Some(date) = a.date.clone() {
            a.position_in_route = self.position_for(&rid, &date, &position.unwrap_or(Value::Null));
        }
        self.activities.insert(id, a);
        self.log(call, Some(id), None, None);
        self.emit_activity("activityCreated", id, json!({}));
        self.activity(id).cloned()
    }

    /// `PATCH /activities/{id}`: never status, date, resource or position.
    pub fn update_activity(
        &mut self,
        call: &Call,
        id: i64,
        patch: Map<String, Value>,
    ) -> SimResult<Activity> {
        let current = self.activity(id)?.clone();
        for forbidden in [
            "status",
            "date",
            "resourceId",
            "activityId",
            "positionInRoute",
        ] {
            if patch.contains_key(forbidden) {
                return Err(SimError::bad_request(format!(
                    "Field '{forbidden}' cannot be updated"
                )));
            }
        }
        let mut merged =
            serde_json::to_value(&current).map_err(|e| SimError::bad_request(e.to_string()))?;
        if let Value::Object(m) = &mut merged {
            for (k, v) in patch.clone() {
                m.insert(k, v);
            }
        }
        let updated: Activity = serde_json::from_value(merged)
            .map_err(|e| SimError::bad_request(format!("Invalid activity: {e}")))?;
        self.known_properties(&updated)?;
        self.activities.insert(id, updated);
        self.log(call, Some(id), None, None);
        self.emit_activity("activityUpdated", id, Value::Object(patch));
        self.activity(id).cloned()
    }

    /// Refuses a custom property the tenant does not have, or a file property set as a value
    /// (files go through `PUT /activities/{id}/{label}`).
    fn known_properties(&self, a: &Activity) -> SimResult<()> {
        for label in a.properties.keys() {
            match self.properties.get(label).map(String::as_str) {
                Some("file") => {
                    return Err(SimError::bad_request(format!(
                        "Property '{label}' is a file property"
                    )))
                }
                Some(_) => {}
                None => {
                    return Err(SimError::bad_request(format!(
                        "Property '{label}' does not exist"
                    )))
                }
            }
        }
        Ok(())
    }

    /// A file property of the tenant, else OFSC's 404.
    pub fn file_property(&self, label: &str) -> SimResult<()> {
        match self.properties.get(label).map(String::as_str) {
            Some("file") => Ok(()),
            _ => Err(SimError::not_found(format!(
                "File property '{label}' is not found"
            ))),
        }
    }

    /// `DELETE /activities/{id}`.
    pub fn delete_activity(&mut self, call: &Call, id: i64) -> SimResult<()> {
        let a = self.activity(id)?.clone();
        rules::check(
            Action::Delete,
            a.status.as_deref().unwrap_or(""),
            &self.route_facts(&a),
        )
        .map_err(SimError::bad_request)?;
        self.emit_activity("activityDeleted", id, json!({}));
        self.activities.remove(&id);
        self.log_full(
            call,
            Some(id),
            Some("delete"),
            None,
            a.resource_id.clone(),
            None,
        );
        Ok(())
    }
}
