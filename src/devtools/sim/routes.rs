//! Simulated routes: reading a resource's day, activating and deactivating it, moving
//! activities between routes, and technician positions.

use super::model::{Call, SimError, SimResult, Tenant};
use crate::ofsc::time::{self, LOCAL_FORMAT};
use crate::ofsc::wire::{Position, Route};
use chrono::{NaiveDate, NaiveDateTime};
use serde_json::{json, Value};

/// The route "date" of a resource's activities that have no date.
pub const NON_SCHEDULED: &str = "nonScheduled";

impl Tenant {
    pub fn route(
        &self,
        resource_id: &str,
        date: &str,
        offset: usize,
        limit: usize,
    ) -> SimResult<Route> {
        self.resource(resource_id)?;
        if date != NON_SCHEDULED {
            NaiveDate::parse_from_str(date, "%Y-%m-%d")
                .map_err(|_| SimError::bad_request(format!("Invalid date '{date}'")))?;
        }
        let items = self.route_items(resource_id, date);
        let state = self
            .routes
            .get(&(resource_id.to_string(), date.to_string()));
        let fmt = |t: Option<NaiveDateTime>| t.map(|t| t.format(LOCAL_FORMAT).to_string());
        Ok(Route {
            resource_id: resource_id.to_string(),
            date: date.to_string(),
            route_start_time: fmt(state.and_then(|s| s.activated_at)),
            route_end_time: fmt(state.and_then(|s| s.deactivated_at)),
            route_reactivation_time: None,
            total_results: items.len() as i64,
            offset: offset as i64,
            limit: limit as i64,
            items: items
                .into_iter()
                .skip(offset)
                .take(limit)
                .cloned()
                .collect(),
        })
    }

    /// `activate` / `deactivate` a route.
    pub fn route_action(
        &mut self,
        call: &Call,
        resource_id: &str,
        date: &str,
        action: &str,
        body: &Value,
    ) -> SimResult<()> {
        self.resource(resource_id)?;
        let day = NaiveDate::parse_from_str(date, "%Y-%m-%d")
            .map_err(|_| SimError::bad_request(format!("Invalid date '{date}'")))?;
        let time = match body.get("time").and_then(Value::as_str) {
            Some(s) => time::parse_naive(s).map_err(|e| SimError::bad_request(e.to_string()))?,
            None => self.now_local(resource_id),
        };
        let today = time::today_in(self.zone_of(resource_id));
        let key = (resource_id.to_string(), date.to_string());
        let state = self.routes.get(&key).cloned().unwrap_or_default();
        if let Some(last) = state.last_action {
            if time < last {
                return Err(SimError::bad_request(
                    "Time is earlier than the previous action in the route",
                ));
            }
        }
        match action {
            "activate" => {
                if day < today {
                    return Err(SimError::bad_request("Cannot activate a route in the past"));
                }
                if state.activated_at.is_some() && state.deactivated_at.is_none() {
                    return Err(SimError::bad_request("Route is already activated"));
                }
                let st = self.routes.entry(key).or_default();
                st.activated_at = Some(time);
                st.deactivated_at = None;
                st.last_action = Some(time);
            }
            "deactivate" => {
                if day != today {
                    return Err(SimError::bad_request(
                        "Only the route of the current date can be deactivated",
                    ));
                }
                if state.activated_at.is_none() || state.deactivated_at.is_some() {
                    return Err(SimError::bad_request("Route is not activated"));
                }
                if self
                    .route_items(resource_id, date)
                    .iter()
                    .any(|a| matches!(a.status.as_deref(), Some("started" | "enroute")))
                {
                    return Err(SimError::bad_request("Route has a started activity"));
                }
                let st = self.routes.entry(key).or_default();
                st.deactivated_at = Some(time);
                st.last_action = Some(time);
            }
            other => {
                return Err(SimError::not_found(format!(
                    "Unknown route action '{other}'"
                )))
            }
        }
        let ts = time.format(LOCAL_FORMAT).to_string();
        self.log_full(
            call,
            None,
            Some(action),
            Some(ts.clone()),
            Some(resource_id.to_string()),
            None,
        );
        // Oracle's `routeChanges` carries the times, not flags.
        let (event, change) = if action == "activate" {
            ("routeActivated", json!({"activated": ts}))
        } else {
            ("routeDeactivated", json!({"deactivated": ts}))
        };
        self.emit_route(event, resource_id, date, change);
        Ok(())
    }

    /// Dispatcher: moves a pending activity to another resource and/or date.
    pub fn move_activity(
        &mut self,
        call: &Call,
        id: i64,
        resource_id: &str,
        date: &str,
    ) -> SimResult<()> {
        let a = self.activity(id)?.clone();
        self.resource(resource_id)?;
        NaiveDate::parse_from_str(date, "%Y-%m-%d")
            .map_err(|_| SimError::bad_request(format!("Invalid date '{date}'")))?;
        if a.status.as_deref() != Some("pending") {
            return Err(SimError::bad_request(
                "Only a pending activity can be moved",
            ));
        }
        let today = time::today_in(self.zone_of(resource_id));
        if NaiveDate::parse_from_str(date, "%Y-%m-%d").is_ok_and(|d| d < today) {
            return Err(SimError::bad_request(format!(
                "An activity cannot be moved to a past date ({date})"
            )));
        }
        let position = self.position_for(resource_id, date, &Value::Null);
        let tz = self
            .resources
            .get(resource_id)
            .and_then(|r| r.time_zone_iana.clone());
        let mut moved = a.clone();
        moved.resource_id = Some(resource_id.to_string());
        moved.date = Some(date.to_string());
        moved.position_in_route = position;
        moved.resource_time_zone = tz.clone();
        moved.resource_time_zone_iana = tz;
        self.activities.insert(id, moved);
        self.log_full(
            call,
            Some(id),
            Some("move"),
            None,
            Some(resource_id.to_string()),
            None,
        );
        // Oracle's shape: where it was in `activityDetails`, where it went in
        // `activityChanges`; `moveDetails` holds only the move's reason and checks.
        let from = super::model::activity_details(id, &a);
        self.emit_activity_event(
            "activityMoved",
            from,
            json!({"resourceId": resource_id, "date": date}),
            Some(json!({
                "moveCondition": "resourceToResource",
                "workZoneMismatch": false,
                "workSkillMismatch": false,
            })),
        );
        Ok(())
    }

    /// `setPositions`: each item on its own. A bad item is reported as
    /// `{itemIndex, message}` and the good ones are stored, as OFSC does.
    pub fn set_positions(&mut self, call: &Call, items: Vec<Value>) -> SimResult<Value> {
        if items.len() > 300 {
            return Err(SimError::bad_request("At most 300 positions per request"));
        }
        let mut errors = Vec::new();
        let mut processed = 0;
        for (index, raw) in items.iter().enumerate() {
            match position_of(raw) {
                Ok(p) if self.resources.contains_key(&p.resource_id) => {
                    processed += 1;
                    self.positions.push(p);
                }
                Ok(p) => errors.push(json!({"itemIndex": index,
                    "message": format!("Resource {} not found", p.resource_id)})),
                Err(message) => errors.push(json!({"itemIndex": index, "message": message})),
            }
        }
        self.log_full(call, None, Some("setPositions"), None, None, None);
        Ok(json!({"itemsProcessed": processed, "itemsFailed": errors.len(), "errors": errors}))
    }
}

/// One `setPositions` item as Oracle's schema has it: `time` ISO-8601 or a unix time in
/// seconds, `acc` (and `alt`, `dir`, `spd`) integers.
pub fn position_of(raw: &Value) -> Result<Position, String> {
    let resource_id = raw["resourceId"]
        .as_str()
        .ok_or("resourceId is required")?
        .to_string();
    let time = match &raw["time"] {
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map_err(|_| format!("time {s:?} is not ISO-8601"))?
            .to_rfc3339(),
        Value::Number(n) => {
            let secs = n.as_i64().ok_or("time must be whole seconds")?;
            chrono::DateTime::from_timestamp(secs, 0)
                .ok_or("time is out of range")?
                .to_rfc3339()
        }
        _ => return Err("time is required".into()),
    };
    let coord = |k: &str, max: f64| -> Result<f64, String> {
        raw[k]
            .as_f64()
            .filter(|v| v.abs() <= max)
            .ok_or(format!("{k} must be a number within ±{max}"))
    };
    for k in ["acc", "alt", "dir", "spd"] {
        if !raw[k].is_null() && !raw[k].is_i64() {
            return Err(format!("{k} must be an integer"));
        }
    }
    Ok(Position {
        resource_id,
        time,
        lat: coord("lat", 90.0)?,
        lng: coord("lng", 180.0)?,
        acc: raw["acc"].as_i64(),
    })
}
