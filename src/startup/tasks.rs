//! The service's background tasks beside the replayer: the OFSC probe that keeps readiness
//! and the directory current, and the upkeep of the store and caches (abandoned uploads
//! purged, the journal compacted, history past its retention pruned, old routes evicted,
//! metrics refreshed).

use crate::ofsc::OfscClient;
use crate::read::cache::Cache;
use crate::read::directory::Directory;
use crate::state::OfscHealth;
use crate::store::Storage;
use std::sync::Arc;
use std::time::Duration;

/// The store's and caches' upkeep: expired uploads purged, the journal compacted, history
/// pruned, old routes evicted, metrics refreshed.
pub(super) fn upkeep(
    store: Arc<dyn Storage>,
    files: &Arc<crate::features::uploads::Files>,
    cache: &Arc<Cache>,
    history: &crate::config::HistorySettings,
) -> Vec<tokio::task::JoinHandle<()>> {
    vec![
        tokio::spawn(purge_uploads(store.clone(), files.clone())),
        tokio::spawn(compact_journal(store.clone())),
        tokio::spawn(prune_history(store, history.clone())),
        tokio::spawn(cache.clone().evict_forever()),
        crate::telemetry::start_metrics_upkeep(),
    ]
}

/// Deletes abandoned uploads once a minute, each pass from where the last one left open.
async fn purge_uploads(store: Arc<dyn Storage>, files: Arc<crate::features::uploads::Files>) {
    let mut from = 0;
    loop {
        tokio::time::sleep(Duration::from_secs(60)).await;
        let (s, f) = (store.clone(), files.clone());
        let pass = tokio::task::spawn_blocking(move || {
            crate::features::uploads::purge::purge_expired(s.as_ref(), &f, chrono::Utc::now(), from)
        })
        .await;
        match pass {
            Ok(Ok(pass)) => {
                if pass.purged > 0 {
                    tracing::info!(purged = pass.purged, "abandoned uploads purged");
                }
                from = pass.next_from;
            }
            Ok(Err(e)) => tracing::error!(error = %e, "purging uploads failed"),
            Err(e) => tracing::error!(error = %e, "the upload purge stopped"),
        }
    }
}

/// Removes settled records from the front of the journal every few seconds (see
/// [`crate::store::journal::compact`]), so start-up and disk stay bounded as history grows.
async fn compact_journal(store: Arc<dyn Storage>) {
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let s = store.clone();
        let pass = tokio::task::spawn_blocking(move || {
            crate::store::journal::compact(
                s.as_ref(),
                s.journal(),
                &|e| crate::write::outbox::settled(s.as_ref(), e),
                50_000,
            )
        })
        .await;
        match pass {
            Ok(Ok(n)) if n > 0 => tracing::debug!(removed = n, "journal compacted"),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "journal compaction failed"),
            Err(e) => tracing::error!(error = %e, "journal compaction stopped"),
        }
    }
}

/// Every `prune_every_secs` (ten minutes by default), removes the history older than
/// `retention_days` and the audit entries older than `audit_retention_days` (0: never), in
/// passes of [`crate::write::outbox::history::PASS`] records, at the pace of
/// [`crate::write::outbox::history::Pace::service`].
async fn prune_history(store: Arc<dyn Storage>, settings: crate::config::HistorySettings) {
    use crate::write::outbox::history;
    let cutoff = || {
        history::Cutoff::days_before(
            chrono::Utc::now(),
            settings.retention_days,
            settings.audit_retention_days,
        )
    };
    if cutoff().is_none() {
        return;
    }
    let every = Duration::from_secs(settings.prune_every_secs.max(1));
    // Moves past decided approvals, so each pass reads only the pending ones onwards.
    let floor = Arc::new(crate::features::approvals::PendingFloor::default());
    let pace = Arc::new(history::Pace::service());
    loop {
        tokio::time::sleep(every).await;
        let Some(before) = cutoff() else { return };
        let (s, f, w) = (store.clone(), floor.clone(), pace.clone());
        let run = tokio::task::spawn_blocking(move || {
            history::prune_all(s.as_ref(), before, &f, &w, history::PASS, &mut |p| {
                tracing::info!(
                    ops = p.ops,
                    changes = p.changes,
                    idempotency = p.idempotency,
                    audit = p.audit,
                    "history pruned"
                );
                Ok(())
            })
        })
        .await;
        match run {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "pruning history failed"),
            Err(e) => tracing::error!(error = %e, "pruning history stopped"),
        }
    }
}

/// Keeps readiness informed about OFSC reachability with one small read per probe, and
/// re-reads the whole resource directory only at start and every `full` (resource events
/// keep it current in between): at 5,000 resources a full read is 50 calls.
pub(super) async fn probe_ofsc(
    client: Arc<OfscClient>,
    health: Arc<OfscHealth>,
    directory: Arc<Directory>,
    every: Duration,
    full: Duration,
) {
    let mut last_full: Option<tokio::time::Instant> = None;
    loop {
        let due = last_full.is_none_or(|t| t.elapsed() >= full);
        let result = if due {
            let read = directory.refresh(&client).await.map(|_| ());
            if read.is_ok() {
                last_full = Some(tokio::time::Instant::now());
            }
            read
        } else {
            client.list_resources(0, 1).await.map(|_| ())
        };
        let result = result.map_err(|e| e.to_string());
        if let Err(e) = &result {
            tracing::warn!(error = %e, "OFSC probe failed");
        }
        health.record(result);
        tokio::time::sleep(every).await;
    }
}
