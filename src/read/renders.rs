//! Rendered route bodies, versioned per route: a repeated read of an unchanged route is a
//! map lookup instead of a view computation. Every write that can change what a route shows
//! (cache updates, queued and finished ops) bumps that route's version.
//!
//! Versions come from one counter for all routes, so a route forgotten (evicted) and seen
//! again never repeats a version a kept body or view was made at.

use bytes::Bytes;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// At most this many bodies are kept; past it the map is cleared (reads re-render).
const CAPACITY: usize = 256;

#[derive(Debug)]
pub struct Rendered {
    pub version: u64,
    pub stale: bool,
    pub etag: String,
    pub body: Bytes,
}

#[derive(Debug, Default)]
struct Versions {
    /// The last version handed out, to any route.
    last: u64,
    of: HashMap<(String, String), u64>,
}

impl Versions {
    fn bump(&mut self, resource: &str, date: &str) -> (u64, u64) {
        self.last += 1;
        let fresh = self.last;
        let old = self.of.insert(key(resource, date), fresh).unwrap_or(0);
        (old, fresh)
    }
}

#[derive(Debug, Default)]
pub struct Renders {
    versions: Mutex<Versions>,
    bodies: Mutex<HashMap<(String, String), Arc<Rendered>>>,
}

fn key(resource: &str, date: &str) -> (String, String) {
    (resource.to_string(), date.to_string())
}

impl Renders {
    /// Something the route shows changed.
    pub fn touch(&self, resource: &str, date: &str) {
        let mut v = self.versions.lock().unwrap_or_else(|p| p.into_inner());
        v.bump(resource, date);
    }

    /// Like [`Renders::touch`], for a writer that read the route at version `seen`: the new
    /// version when nothing else changed the route since, else `None`.
    pub fn touch_from(&self, resource: &str, date: &str, seen: u64) -> Option<u64> {
        let mut v = self.versions.lock().unwrap_or_else(|p| p.into_inner());
        let (old, fresh) = v.bump(resource, date);
        (old == seen).then_some(fresh)
    }

    /// The route's current version; read it before rendering.
    pub fn version(&self, resource: &str, date: &str) -> u64 {
        let v = self.versions.lock().unwrap_or_else(|p| p.into_inner());
        v.of.get(&key(resource, date)).copied().unwrap_or(0)
    }

    /// Drops what is kept of an evicted route.
    pub fn forget(&self, resource: &str, date: &str) {
        let k = key(resource, date);
        self.versions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .of
            .remove(&k);
        self.bodies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&k);
    }

    /// The body rendered at `version` with the same staleness, if any.
    pub fn get(
        &self,
        resource: &str,
        date: &str,
        version: u64,
        stale: bool,
    ) -> Option<Arc<Rendered>> {
        let b = self.bodies.lock().unwrap_or_else(|p| p.into_inner());
        b.get(&key(resource, date))
            .filter(|r| r.version == version && r.stale == stale)
            .cloned()
    }

    pub fn put(&self, resource: &str, date: &str, rendered: Rendered) -> Arc<Rendered> {
        let rendered = Arc::new(rendered);
        let mut b = self.bodies.lock().unwrap_or_else(|p| p.into_inner());
        if b.len() >= CAPACITY {
            b.clear();
        }
        b.insert(key(resource, date), rendered.clone());
        rendered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_touch_invalidates_the_body() {
        let r = Renders::default();
        let v = r.version("t1", "d");
        r.put(
            "t1",
            "d",
            Rendered {
                version: v,
                stale: false,
                etag: "\"a\"".into(),
                body: Bytes::from_static(b"{}"),
            },
        );
        assert!(r.get("t1", "d", v, false).is_some());
        assert!(
            r.get("t1", "d", v, true).is_none(),
            "staleness is part of the body"
        );
        r.touch("t1", "d");
        assert!(r.get("t1", "d", r.version("t1", "d"), false).is_none());
        let v1 = r.version("t1", "d");
        r.touch("t2", "d");
        assert_eq!(r.version("t1", "d"), v1, "another route's touch");
        let v2 = r.touch_from("t1", "d", v1).expect("nothing moved it");
        assert!(v2 > v1);
        assert_eq!(
            r.touch_from("t1", "d", v1),
            None,
            "someone else moved the route since"
        );
        assert!(r.version("t1", "d") > v2, "a touch_from always touches");
    }

    #[test]
    fn a_forgotten_route_never_repeats_a_version() {
        let r = Renders::default();
        r.touch("t1", "d");
        r.touch("t1", "d");
        let before = r.version("t1", "d");
        r.forget("t1", "d");
        assert_eq!(r.version("t1", "d"), 0);
        r.touch("t1", "d");
        assert!(r.version("t1", "d") > before);
    }
}
