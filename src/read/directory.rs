//! The cached OFSC resource tree (names, zones, parents), kept in sled so access decisions
//! and time zones work while OFSC is unreachable.

use crate::auth::policy::Hierarchy;
use crate::ofsc::wire::Resource;
use crate::ofsc::{OfscClient, OfscError};
use crate::store::{Storage, StorageExt, StoreError, Tree};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

pub const RESOURCES: Tree = Tree("resources");

pub struct Directory {
    store: Arc<dyn Storage>,
    map: RwLock<HashMap<String, Resource>>,
}

impl Directory {
    /// Loads what the store has; corrupt entries are quarantined and skipped with an error log.
    pub fn load(store: Arc<dyn Storage>) -> Result<Directory, StoreError> {
        let mut map = HashMap::new();
        for (k, v) in store.scan_raw(RESOURCES, b"", None, usize::MAX)? {
            match crate::store::record::open::<Resource>(RESOURCES, &k, &v) {
                Ok(r) => {
                    map.insert(r.resource_id.clone(), r);
                }
                Err(e) => {
                    tracing::error!(error = %e, "quarantining a corrupt cached resource");
                    store.quarantine(RESOURCES, &k, &e.to_string())?;
                }
            }
        }
        Ok(Directory {
            store,
            map: RwLock::new(map),
        })
    }

    pub fn get(&self, id: &str) -> Option<Resource> {
        self.map.read().ok()?.get(id).cloned()
    }

    /// Every cached resource.
    pub fn all(&self) -> Vec<Resource> {
        self.map
            .read()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.map.read().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keeps one resource as OFSC now has it (after a resource event).
    pub fn upsert(&self, r: Resource) {
        if let Err(e) = self.store.put(RESOURCES, r.resource_id.as_bytes(), &r) {
            tracing::error!(error = %e, "cannot cache resource");
        }
        if let Ok(mut map) = self.map.write() {
            map.insert(r.resource_id.clone(), r);
        }
    }

    /// Reads every resource from OFSC (paged by 100) and replaces the cache.
    pub async fn refresh(&self, client: &OfscClient) -> Result<usize, OfscError> {
        let mut all = Vec::new();
        loop {
            let page = client.list_resources(all.len() as i64, 100).await?;
            let n = page.items.len();
            all.extend(page.items);
            if n == 0 || all.len() as i64 >= page.total_results {
                break;
            }
        }
        for r in &all {
            if let Err(e) = self.store.put(RESOURCES, r.resource_id.as_bytes(), r) {
                tracing::error!(error = %e, "cannot cache resource");
            }
        }
        let count = all.len();
        if let Ok(mut map) = self.map.write() {
            *map = all
                .into_iter()
                .map(|r| (r.resource_id.clone(), r))
                .collect();
        }
        Ok(count)
    }
}

impl Hierarchy for Directory {
    fn parent_of(&self, resource_id: &str) -> Option<String> {
        self.get(resource_id)?.parent_resource_id
    }
}
