//! What every handler shares (`AppState`): the store, the OFSC connector, caches, keys and
//! settings, the per-route locks that serialize validate-then-write, and OFSC's health as
//! readiness sees it. Built by `startup`, read by `api`.

use crate::auth::throttle::LoginThrottle;
use crate::auth::tokens::TokenKeys;
use crate::features::stock::Stock;
use crate::ofsc::OfscClient;
use crate::read::cache::Cache;
use crate::read::directory::Directory;
use crate::replay::Replayer;
use crate::store::{GroupCommit, SledStore, Storage};
use chrono::{DateTime, Utc};
use std::sync::{Arc, Mutex};

/// What readiness knows about OFSC.
#[derive(Debug, Default, Clone)]
pub struct OfscHealthSnapshot {
    pub ok: bool,
    pub reached: bool,
    pub last_ok_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

#[derive(Debug, Default)]
pub struct OfscHealth(Mutex<OfscHealthSnapshot>);

impl OfscHealth {
    pub fn snapshot(&self) -> OfscHealthSnapshot {
        self.0.lock().map(|s| s.clone()).unwrap_or_default()
    }
    pub(crate) fn record(&self, result: Result<(), String>) {
        if let Ok(mut s) = self.0.lock() {
            match result {
                Ok(()) => {
                    s.ok = true;
                    s.reached = true;
                    s.last_ok_at = Some(Utc::now());
                    s.last_error = None;
                }
                Err(e) => {
                    s.ok = false;
                    s.last_error = Some(e);
                }
            }
        }
    }
}

/// Shared by every handler.
pub struct AppState {
    pub store: Arc<SledStore>,
    pub commit: GroupCommit,
    pub ofsc: Arc<OfscClient>,
    pub ofsc_health: Arc<OfscHealth>,
    pub keys: TokenKeys,
    pub throttle: LoginThrottle,
    pub refresh_ttl_days: i64,
    pub directory: Arc<Directory>,
    pub cache: Arc<Cache>,
    pub stock: Arc<Stock>,
    pub replayer: Arc<Replayer>,
    pub lanes: LaneLocks,
    pub approvals: crate::config::ApprovalSettings,
    /// `GET /metrics` needs this bearer token when set (`server.metrics_token`).
    pub metrics_token: Option<crate::config::Secret>,
    /// The window device times must fall in (`server.max_future_secs`, `max_past_hours`).
    pub time_window: crate::domain::times::TimeWindow,
    /// How slowly request bodies may arrive (`api::pacing`).
    pub pace: crate::api::pacing::Pace,
    /// The route dates callers may read (`cache.read_days_back`, `read_days_ahead`).
    pub read_window: crate::domain::times::DateWindow,
    pub webhooks: Arc<crate::features::webhooks::Webhooks>,
    pub uploads: crate::config::UploadSettings,
    /// The tenant's property labels fieldsync writes.
    pub properties: crate::config::PropertySettings,
    pub files: Arc<crate::features::uploads::Files>,
    pub upload_keys: Vec<crate::features::uploads::grant::SigningKey>,
    /// Uploads whose last byte arrived, for the background decode (`api::upload_finish`).
    pub processing: tokio::sync::mpsc::UnboundedSender<String>,
    /// Where listings of pending approvals start.
    pub pending_approvals: crate::features::approvals::PendingFloor,
    /// When each user's device last synced (this process's memory: the console's "last
    /// sync" and stale marker; after a restart it fills again as devices sync).
    pub last_sync: LastSync,
    /// Where clients reach the service (`server.public_url`, `trusted_proxies`).
    pub origin: crate::api::origin::OriginConfig,
    /// The console's recent pending-approval counts.
    pub console_counts: crate::console::Counts,
    /// The console's SSO sign-ins in flight.
    pub sso_flows: crate::console::sso::Flows,
    /// Single sign-on's ID-token checks; `None` when `[oidc]` is not configured.
    pub oidc: Option<Arc<crate::auth::oidc::Verifier>>,
}

/// When each user last called `/sync/push` or `/sync/pull`.
#[derive(Default)]
pub struct LastSync(Mutex<std::collections::HashMap<String, chrono::DateTime<chrono::Utc>>>);

impl LastSync {
    pub fn saw(&self, username: &str) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(username.to_string(), chrono::Utc::now());
    }

    pub fn of(&self, username: &str) -> Option<chrono::DateTime<chrono::Utc>> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(username).copied()
    }
}

/// Serializes validate-then-write per route, so two writes cannot both pass the lifecycle
/// check against the same view.
#[derive(Default)]
pub struct LaneLocks(Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl LaneLocks {
    /// Above this many entries, the locks nobody holds are forgotten (routes of past days,
    /// finished uploads).
    const PRUNE_ABOVE: usize = 4096;

    pub fn lock(&self, resource: &str, date: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > Self::PRUNE_ABOVE {
            map.retain(|_, m| Arc::strong_count(m) > 1);
        }
        map.entry(format!("{resource}\u{0}{date}"))
            .or_default()
            .clone()
    }
}

impl AppState {
    pub fn store_check(&self) -> Result<(), String> {
        self.store.check().map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::LaneLocks;

    #[test]
    fn lane_locks_forget_the_ones_nobody_holds() {
        let locks = LaneLocks::default();
        let held = locks.lock("tech1", "2026-11-28");
        for n in 0..=LaneLocks::PRUNE_ABOVE {
            drop(locks.lock("upload", &n.to_string()));
        }
        let again = locks.lock("tech1", "2026-11-28");
        assert!(std::sync::Arc::ptr_eq(&held, &again), "a held lock is kept");
        let size = locks.0.lock().unwrap().len();
        assert!(size <= 3, "{size} entries left");
    }
}
