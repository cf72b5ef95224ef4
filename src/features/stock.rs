//! Van stock and site equipment: OFSC's inventories cached in sled, and the device's net view
//! of them (the cache with the part entries still in the lanes applied).
//!
//! The view reads the lanes first and the cache second, as `view.rs` does for routes. The
//! replayer refreshes the cache after OFSC applied an entry and before the entry leaves its
//! lane, so an entry is never missed, and the refreshed copy names the entry it already
//! shows so it is not taken twice. (An events-driven refresh racing an entry in flight can
//! briefly count it twice: that under-states the stock, never over-states it.)

use crate::domain::parts::{Item, PartsView, Recorded};
use crate::ofsc::wire::Inventory;
use crate::ofsc::OfscClient;
use crate::read::cache::CacheError;
use crate::store::keys::KeyBuf;
use crate::store::{Storage, StorageExt, StoreError, Tree};
use crate::write::outbox::{self, Op, OpKind, OpState};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A resource's van stock (OFSC inventories with status `resource`).
pub const VAN: Tree = Tree("cache_van");
/// An activity's customer equipment (OFSC `customerInventories`).
pub const SITE: Tree = Tree("cache_site");

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CachedItems {
    pub items: Vec<Inventory>,
    pub fetched_at: Option<DateTime<Utc>>,
    /// An entry landed in OFSC but the refresh after it failed: refresh at the next read.
    #[serde(default)]
    pub stale: bool,
    /// Ops (seqs) this copy already shows although they may still be in their lane: the
    /// replayer refreshes after OFSC applied an op and before the op leaves its lane.
    #[serde(default)]
    pub reflects: Vec<u64>,
}

fn van_key(resource: &str) -> Vec<u8> {
    KeyBuf::new().str(resource).finish()
}

/// How many recently applied ops a cached copy remembers showing.
const REFLECTS: usize = 16;

pub struct Stock {
    store: Arc<dyn Storage>,
    ofsc: Arc<OfscClient>,
}

impl Stock {
    pub fn new(store: Arc<dyn Storage>, ofsc: Arc<OfscClient>) -> Self {
        Stock { store, ofsc }
    }

    /// Replaces a cached list with OFSC's; `applied` is the op that OFSC just applied.
    fn keep(
        &self,
        tree: Tree,
        key: &[u8],
        items: Vec<Inventory>,
        applied: Option<u64>,
    ) -> Result<CachedItems, StoreError> {
        let mut reflects = self
            .store
            .get::<CachedItems>(tree, key)?
            .map(|c| c.reflects)
            .unwrap_or_default();
        reflects.extend(applied);
        let skip = reflects.len().saturating_sub(REFLECTS);
        reflects.drain(..skip);
        let c = CachedItems {
            items,
            fetched_at: Some(Utc::now()),
            stale: false,
            reflects,
        };
        self.store.put(tree, key, &c)?;
        Ok(c)
    }

    pub async fn refresh_van(
        &self,
        resource: &str,
        applied: Option<u64>,
    ) -> Result<CachedItems, CacheError> {
        let items = with_retries(|| self.ofsc.resource_inventories(resource)).await?;
        Ok(self.keep(VAN, &van_key(resource), items, applied)?)
    }

    pub async fn refresh_site(
        &self,
        activity: i64,
        applied: Option<u64>,
    ) -> Result<CachedItems, CacheError> {
        let items = with_retries(|| {
            self.ofsc
                .activity_inventories(activity, "customerInventories")
        })
        .await?;
        Ok(self.keep(SITE, &outbox::memo_key(activity), items, applied)?)
    }

    pub async fn refresh_van_if_kept(&self, resource: &str) -> Result<(), CacheError> {
        if self.store.get_raw(VAN, &van_key(resource))?.is_some() {
            self.refresh_van(resource, None).await?;
        }
        Ok(())
    }

    pub async fn refresh_site_if_kept(&self, activity: i64) -> Result<(), CacheError> {
        if self
            .store
            .get_raw(SITE, &outbox::memo_key(activity))?
            .is_some()
        {
            self.refresh_site(activity, None).await?;
        }
        Ok(())
    }

    /// The cached van, fetched when absent or stale (a stale copy is served when OFSC is
    /// down).
    pub async fn van(&self, resource: &str) -> Result<CachedItems, CacheError> {
        match self.store.get::<CachedItems>(VAN, &van_key(resource))? {
            Some(c) if c.stale => Ok(self.refresh_van(resource, None).await.unwrap_or(c)),
            Some(c) => Ok(c),
            None => self.refresh_van(resource, None).await,
        }
    }

    /// The cached site equipment, fetched when absent or stale; `None` when OFSC cannot say.
    pub async fn site(&self, activity: i64) -> Result<Option<CachedItems>, StoreError> {
        if activity < 0 {
            // A job created on the device has no customer equipment in OFSC yet.
            return Ok(Some(CachedItems::default()));
        }
        let cached = self
            .store
            .get::<CachedItems>(SITE, &outbox::memo_key(activity))?;
        if let Some(c) = cached.as_ref().filter(|c| !c.stale) {
            return Ok(Some(c.clone()));
        }
        match self.refresh_site(activity, None).await {
            Ok(c) => Ok(Some(c)),
            Err(CacheError::Store(e)) => Err(e),
            Err(e) => {
                if cached.is_none() {
                    tracing::warn!(activity, error = %e, "site equipment unknown: OFSC did not answer");
                }
                Ok(cached)
            }
        }
    }

    /// Marks a cached list stale after a failed refresh.
    fn mark_stale(&self, tree: Tree, key: &[u8]) -> Result<(), StoreError> {
        if let Some(mut c) = self.store.get::<CachedItems>(tree, key)? {
            c.stale = true;
            self.store.put(tree, key, &c)?;
        }
        Ok(())
    }

    pub fn van_is_stale(&self, resource: &str) -> Result<(), StoreError> {
        self.mark_stale(VAN, &van_key(resource))
    }

    pub fn site_is_stale(&self, activity: i64) -> Result<(), StoreError> {
        self.mark_stale(SITE, &outbox::memo_key(activity))
    }
}

/// A read that a device waits for: a passing OFSC hiccup (throttling, a 5xx, a reset) is
/// retried a few times, honouring a short `Retry-After`, before it is reported.
async fn with_retries<T, F, Fut>(read: F) -> Result<T, crate::ofsc::OfscError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, crate::ofsc::OfscError>>,
{
    use crate::ofsc::Disposition;
    let mut wait = std::time::Duration::from_millis(100);
    for _ in 0..4 {
        match read().await {
            Err(e) if !matches!(e.disposition(), Disposition::Reject) => {
                let asked = match e.disposition() {
                    Disposition::Retry { after: Some(a) } => {
                        a.min(std::time::Duration::from_secs(2))
                    }
                    _ => std::time::Duration::ZERO,
                };
                tokio::time::sleep(wait.max(asked)).await;
                wait *= 2;
            }
            other => return other,
        }
    }
    read().await
}

/// OFSC items as the domain sees them.
pub fn items(inv: &[Inventory]) -> Vec<Item> {
    inv.iter()
        .filter_map(|i| {
            Some(Item {
                inventory_id: i.inventory_id?,
                inventory_type: i.inventory_type.clone(),
                serial_number: i.serial_number.clone(),
                quantity: i.quantity.unwrap_or(1.0),
            })
        })
        .collect()
}

/// The part entries still in any lane of the resource, oldest first.
pub fn queued_parts(store: &dyn Storage, resource: &str) -> Result<Vec<Op>, StoreError> {
    let prefix = KeyBuf::new().str(resource).finish();
    let mut out = Vec::new();
    for (k, _) in store.scan_raw(outbox::LANES, &prefix, None, usize::MAX)? {
        let Some((_, _, seq)) = outbox::parse_lane_key(&k) else {
            continue;
        };
        match outbox::get_op(store, seq) {
            Ok(Some(op)) if matches!(op.kind, OpKind::Part { .. }) => out.push(op),
            Ok(_) => {}
            // The replayer quarantines it when it reaches the head; until then it is no entry.
            Err(e) if e.is_corrupt() => {}
            Err(e) => return Err(e),
        }
    }
    out.sort_by_key(|o| o.seq);
    Ok(out)
}

/// Every part entry recorded on an activity, with whether it still counts.
pub fn recorded(store: &dyn Storage, activity: i64) -> Result<Vec<(Op, Recorded)>, StoreError> {
    let mut out = Vec::new();
    for op in outbox::activity_ops(store, activity)? {
        if let OpKind::Part { part } = &op.kind {
            let live = matches!(
                op.state,
                OpState::Queued | OpState::Sending | OpState::Applied
            );
            let rec = Recorded {
                part_id: op.id.clone(),
                plan: part.clone(),
                live,
            };
            out.push((op, rec));
        }
    }
    Ok(out)
}

/// Applies the part entries a cached copy does not show yet to the list `pick` names (the
/// van, or the site), optionally only those of one activity.
fn net(
    queued: &[Op],
    cached: &CachedItems,
    pick: fn(&mut PartsView) -> &mut Vec<Item>,
    activity: Option<i64>,
) -> Vec<Item> {
    let mut view = PartsView {
        site: Some(vec![]),
        ..PartsView::default()
    };
    *pick(&mut view) = items(&cached.items);
    for op in queued
        .iter()
        .filter(|o| !cached.reflects.contains(&o.seq))
        .filter(|o| activity.is_none() || o.activity_id == activity)
    {
        if let OpKind::Part { part } = &op.kind {
            crate::domain::parts::apply(&mut view, &op.id, part);
        }
    }
    std::mem::take(pick(&mut view))
}

fn van_of(v: &mut PartsView) -> &mut Vec<Item> {
    &mut v.van
}

fn site_of(v: &mut PartsView) -> &mut Vec<Item> {
    v.site.get_or_insert_with(Vec::new)
}

/// The van as the device sees it: the cached stock less the entries not yet applied.
pub fn net_van(queued: &[Op], van: &CachedItems) -> Vec<Item> {
    net(queued, van, van_of, None)
}

/// The full planning view for one activity.
pub fn parts_view(
    queued: &[Op],
    van: &CachedItems,
    site: Option<&CachedItems>,
    activity: i64,
    recorded: Vec<Recorded>,
) -> PartsView {
    PartsView {
        van: net_van(queued, van),
        site: site.map(|c| net(queued, c, site_of, Some(activity))),
        recorded,
    }
}
