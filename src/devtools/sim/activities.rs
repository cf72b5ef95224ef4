//! The simulated tenant's activities, indexed by id and by route (resource, date): every
//! activity action checks its route's other activities, and a scan of the whole tenant per
//! action made the simulator the bottleneck of a replay drain.

use crate::ofsc::wire::Activity;
use std::collections::{BTreeMap, BTreeSet, HashMap};

type RouteKey = (String, String);

#[derive(Debug, Default)]
pub struct Activities {
    by_id: BTreeMap<i64, Activity>,
    by_route: HashMap<RouteKey, BTreeSet<i64>>,
}

/// An activity's route; one without a date is on the resource's `nonScheduled` route.
fn route_of(a: &Activity) -> Option<RouteKey> {
    let date = a
        .date
        .clone()
        .unwrap_or_else(|| super::routes::NON_SCHEDULED.to_string());
    Some((a.resource_id.clone()?, date))
}

impl Activities {
    pub fn get(&self, id: &i64) -> Option<&Activity> {
        self.by_id.get(id)
    }

    /// Stores `a` under `id`, moving it between routes if its resource or date changed.
    pub fn insert(&mut self, id: i64, a: Activity) -> Option<Activity> {
        if let Some(route) = route_of(&a) {
            self.by_route.entry(route).or_default().insert(id);
        }
        let old = self.by_id.insert(id, a);
        self.unindex_moved(id, old.as_ref());
        old
    }

    pub fn remove(&mut self, id: &i64) -> Option<Activity> {
        let old = self.by_id.remove(id);
        if let Some(route) = old.as_ref().and_then(route_of) {
            self.drop_from(&route, *id);
        }
        old
    }

    pub fn values(&self) -> impl Iterator<Item = &Activity> {
        self.by_id.values()
    }

    /// The activities of one route, in id order.
    pub fn on_route(&self, resource_id: &str, date: &str) -> Vec<&Activity> {
        self.by_route
            .get(&(resource_id.to_string(), date.to_string()))
            .map(|ids| ids.iter().filter_map(|id| self.by_id.get(id)).collect())
            .unwrap_or_default()
    }

    /// After an insert replaced `old`: its old route no longer holds it, unless unchanged.
    fn unindex_moved(&mut self, id: i64, old: Option<&Activity>) {
        let Some(old_route) = old.and_then(route_of) else {
            return;
        };
        let now = self.by_id.get(&id).and_then(route_of);
        if now.as_ref() != Some(&old_route) {
            self.drop_from(&old_route, id);
        }
    }

    fn drop_from(&mut self, route: &RouteKey, id: i64) {
        if let Some(ids) = self.by_route.get_mut(route) {
            ids.remove(&id);
            if ids.is_empty() {
                self.by_route.remove(route);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on(resource: &str, date: &str) -> Activity {
        Activity {
            resource_id: Some(resource.into()),
            date: Some(date.into()),
            ..Default::default()
        }
    }

    fn ids(v: Vec<&Activity>) -> usize {
        v.len()
    }

    #[test]
    fn the_route_index_follows_inserts_moves_and_removals() {
        let mut a = Activities::default();
        a.insert(1, on("r1", "d"));
        a.insert(2, on("r1", "d"));
        a.insert(3, on("r2", "d"));
        assert_eq!(ids(a.on_route("r1", "d")), 2);
        // Moved to another route.
        a.insert(2, on("r2", "d"));
        assert_eq!(ids(a.on_route("r1", "d")), 1);
        assert_eq!(ids(a.on_route("r2", "d")), 2);
        // Unscheduled: on no route.
        a.insert(3, Activity::default());
        assert_eq!(ids(a.on_route("r2", "d")), 1);
        a.remove(&1);
        assert!(a.on_route("r1", "d").is_empty());
        assert_eq!(a.values().count(), 2);
    }
}
