//! The replayer: drains the outbox into OFSC, one FIFO lane per route, lanes in parallel with
//! a bound, exactly once through retries, ambiguous failures and restarts.

mod attachments;
mod decisions;
mod fixes;
mod parts;

use crate::ofsc::{time as ofsc_time, Disposition, OfscClient, OfscError};
use crate::read::cache::Cache;
use crate::read::directory::Directory;
use crate::store::{GroupCommit, Storage};
use crate::write::outbox::{self, Op, OpKind, OpState};
use chrono::Utc;
use rand::Rng;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};

#[derive(Debug, Clone)]
pub struct ReplayConfig {
    /// Lanes sent to OFSC at once.
    pub max_lanes: usize,
    /// After this many attempts an op is `dead`.
    pub max_attempts: u32,
    /// An op older than this is `dead` at its next failure.
    pub max_age: Duration,
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// Record op outcomes as webhook events (some endpoint listens to `op.*`).
    pub announce_ops: bool,
}

impl ReplayConfig {
    /// The replayer's settings as configured (`[replay]`).
    pub fn from_settings(s: &crate::config::ReplaySettings) -> ReplayConfig {
        ReplayConfig {
            max_lanes: s.max_lanes,
            max_attempts: s.max_attempts,
            max_age: Duration::from_secs(s.max_age_hours * 3600),
            base_backoff: Duration::from_millis(s.base_backoff_ms),
            max_backoff: Duration::from_millis(s.max_backoff_ms),
            announce_ops: true,
        }
    }
}

impl Default for ReplayConfig {
    fn default() -> Self {
        ReplayConfig {
            max_lanes: 16,
            max_attempts: 25,
            max_age: Duration::from_secs(72 * 3600),
            base_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
            announce_ops: true,
        }
    }
}

/// What the replayer works with.
pub struct ReplayDeps {
    pub store: Arc<dyn Storage>,
    pub commit: GroupCommit,
    pub ofsc: Arc<OfscClient>,
    pub cache: Arc<Cache>,
    pub directory: Arc<Directory>,
    pub stock: Arc<crate::features::stock::Stock>,
    /// Where uploaded originals live (absent: attachment ops cannot be sent).
    pub files: Option<Arc<crate::features::uploads::Files>>,
}

pub struct Replayer {
    store: Arc<dyn Storage>,
    commit: GroupCommit,
    ofsc: Arc<OfscClient>,
    cache: Arc<Cache>,
    directory: Arc<Directory>,
    stock: Arc<crate::features::stock::Stock>,
    files: Option<Arc<crate::features::uploads::Files>>,
    cfg: ReplayConfig,
    running: Mutex<HashSet<(String, String)>>,
    /// Ops whose last send may have been applied: read OFSC back before resending.
    read_back: Mutex<HashSet<u64>>,
    wake: Notify,
    slots: Arc<Semaphore>,
}

enum Step {
    /// The op left the lane (applied, rejected, dead...).
    Done,
    /// Try again after this long.
    Wait(Duration),
}

impl Replayer {
    pub fn new(deps: ReplayDeps, cfg: ReplayConfig) -> Arc<Replayer> {
        let slots = Arc::new(Semaphore::new(cfg.max_lanes.max(1)));
        let ReplayDeps {
            store,
            commit,
            ofsc,
            cache,
            directory,
            stock,
            files,
        } = deps;
        Arc::new(Replayer {
            store,
            commit,
            ofsc,
            cache,
            directory,
            stock,
            files,
            cfg,
            running: Mutex::new(HashSet::new()),
            read_back: Mutex::new(HashSet::new()),
            wake: Notify::new(),
            slots,
        })
    }

    /// New work arrived.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Resumes after a crash (every lane head may have been in flight), then runs forever.
    pub fn start(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        match outbox::active_lanes(self.store.as_ref()) {
            Ok(lanes) => {
                for (r, d) in lanes {
                    if let Ok(Some(head)) = outbox::lane_head(self.store.as_ref(), &r, &d) {
                        self.mark_read_back(head.seq);
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot list lanes at start"),
        }
        let this = self.clone();
        tokio::spawn(async move { this.run().await })
    }

    fn mark_read_back(&self, seq: u64) {
        self.read_back
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(seq);
    }

    async fn run(self: Arc<Self>) {
        loop {
            match outbox::active_lanes(self.store.as_ref()) {
                Ok(lanes) => {
                    for lane in lanes {
                        let fresh = self
                            .running
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(lane.clone());
                        if fresh {
                            let this = self.clone();
                            tokio::spawn(async move { this.drive_lane(lane).await });
                        }
                    }
                }
                Err(e) => tracing::error!(error = %e, "cannot list lanes"),
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }

    async fn drive_lane(self: Arc<Self>, lane: (String, String)) {
        let permit = self.slots.clone().acquire_owned().await;
        loop {
            let head = match outbox::lane_head(self.store.as_ref(), &lane.0, &lane.1) {
                Ok(Some(op)) => op,
                Ok(None) => break,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read lane head");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            // Never ahead of the disk: an op whose journal record a flush has not yet
            // covered could be lost by a crash after OFSC applied it (its device, never
            // answered, would send it again).
            if !self.store.journal().op_published(head.seq) {
                tokio::time::sleep(Duration::from_millis(2)).await;
                continue;
            }
            match self.step(head).await {
                Step::Done => {}
                Step::Wait(d) => tokio::time::sleep(d).await,
            }
        }
        drop(permit);
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&lane);
        // Work may have arrived between the last read and the removal.
        self.wake();
    }

    fn backoff(&self, attempts: u32) -> Duration {
        let exp = self
            .cfg
            .base_backoff
            .saturating_mul(1u32 << attempts.min(16).saturating_sub(1));
        let capped = exp.min(self.cfg.max_backoff);
        capped.mul_f64(rand::thread_rng().gen_range(0.5..1.5))
    }

    async fn finish(&self, op: &mut Op, state: OpState) -> Step {
        op.state = state;
        op.updated_at = Utc::now();
        if state == OpState::Applied {
            op.applied_at = Some(op.updated_at);
        }
        metrics::counter!("fieldsync_ops_finished_total", "state" => state.name()).increment(1);
        if state == OpState::Applied {
            let lag = (Utc::now() - op.created_at).num_milliseconds().max(0) as f64 / 1000.0;
            metrics::histogram!("fieldsync_replay_lag_seconds").record(lag);
        }
        if let Err(e) = outbox::save_op(self.store.as_ref(), op, self.cfg.announce_ops) {
            tracing::error!(op = %op.id, error = %e, "cannot record op outcome");
            return Step::Wait(Duration::from_secs(1));
        }
        if matches!(state, OpState::Rejected | OpState::Dead) {
            self.block_followers(op);
        }
        self.cache.renders.touch(&op.resource_id, &op.date);
        // The outcome is durable before the lane moves on, so after a crash only the head
        // of a lane can be in doubt.
        if let Err(e) = self.commit.flush().await {
            tracing::error!(error = %e, "flush after op outcome failed");
        }
        self.read_back
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&op.seq);
        tracing::info!(op = %op.id, state = state.name(), activity = ?op.activity_id, detail = ?op.ofsc_detail, attempts = op.attempts, "op finished");
        Step::Done
    }

    /// Later ops that depend on one that failed for good cannot succeed: after a status
    /// move, every later op on the activity; after a part entry, only its undo (a refused
    /// part must not hold back the job's completion).
    fn block_followers(&self, failed: &Op) {
        let Some(activity) = failed.activity_id else {
            return;
        };
        let Ok(lane) = outbox::lane_ops(self.store.as_ref(), &failed.resource_id, &failed.date)
        else {
            return;
        };
        let depends = |o: &Op| match &failed.kind {
            OpKind::Part { .. } => {
                matches!(&o.kind, OpKind::Part { part } if part.undoes.as_deref() == Some(failed.id.as_str()))
            }
            _ => true,
        };
        for mut op in lane
            .into_iter()
            .filter(|o| o.seq > failed.seq && o.activity_id == Some(activity) && depends(o))
        {
            op.state = OpState::Blocked;
            op.last_error = Some(format!(
                "depends on {} which ended {}",
                failed.id,
                failed.state.name()
            ));
            op.updated_at = Utc::now();
            if let Err(e) = outbox::save_op(self.store.as_ref(), &op, self.cfg.announce_ops) {
                tracing::error!(op = %op.id, error = %e, "cannot block op");
            }
        }
    }

    /// Stores OFSC's copy of an activity before its op leaves the lane: the device view reads
    /// the lane first, then the cache, so a failed store must not let the lane move on (the
    /// view would lose the op's effect). Retried like any local failure.
    pub(crate) fn cache_activity(&self, a: &crate::ofsc::wire::Activity) -> Result<(), OfscError> {
        self.cache
            .put_activity(a)
            .map_err(|e| OfscError::Local(e.to_string()))
    }

    /// The resource's zone: recorded with the op, else the directory, else asked of OFSC.
    /// Never guessed: a wrong zone would shift every action time.
    async fn zone(&self, op: &Op) -> Result<chrono_tz::Tz, OfscError> {
        let known = op.zone.clone().or_else(|| {
            self.directory
                .get(&op.resource_id)
                .and_then(|r| r.time_zone_iana.or(r.time_zone))
        });
        let name = match known {
            Some(z) => z,
            None => {
                let r = self.ofsc.get_resource(&op.resource_id).await?;
                r.time_zone_iana.or(r.time_zone).unwrap_or_default()
            }
        };
        ofsc_time::zone(&name).map_err(|e| OfscError::Config(e.to_string()))
    }

    /// Whether OFSC already shows the op's effect; for a create, the id it got.
    async fn already_applied(&self, op: &Op) -> Result<Option<Option<i64>>, OfscError> {
        match &op.kind {
            OpKind::ActivateRoute => {
                let route = self.ofsc.get_route(&op.resource_id, &op.date).await?;
                Ok(route.route_start_time.is_some().then_some(None))
            }
            OpKind::CreateActivity { activity } => {
                // OFSC has no idempotency key: the create carries a unique apptNumber, and
                // the route (read consistently, unlike filtered lists) shows whether it exists.
                let route = self.ofsc.get_route(&op.resource_id, &op.date).await?;
                let found = route
                    .items
                    .iter()
                    .find(|a| a.appt_number.is_some() && a.appt_number == activity.appt_number);
                match found {
                    Some(a) => {
                        self.cache_activity(a)?;
                        Ok(Some(a.activity_id))
                    }
                    None => Ok(None),
                }
            }
            OpKind::Status { .. } => {
                let (Some(id), Some(target)) = (op.activity_id, op.target_status()) else {
                    return Ok(None);
                };
                let id = outbox::resolve_activity(self.store.as_ref(), id)
                    .map_err(|e| OfscError::Local(e.to_string()))?;
                let a = self.ofsc.get_activity(id).await?;
                let done = a.status.as_deref() == Some(target);
                if done {
                    self.cache_activity(&a)?;
                }
                Ok(done.then_some(None))
            }
            OpKind::Part { .. } => self.part_applied(op).await,
            OpKind::SetProperties { .. } => Ok(self.properties_applied(op).await?.then_some(None)),
            OpKind::Attachment { .. } => Ok(self.attachment_applied(op).await?.then_some(None)),
            // A GPS fix cannot be read back; sent twice it is the same point twice, harmless.
            OpKind::Location { .. } => Ok(None),
            OpKind::Reopen => {
                // Without a durable baseline the op was never sent.
                let Some(before) = op.baseline else {
                    return Ok(None);
                };
                Ok((self.reopened_copies(op).await? >= before + 1.0).then_some(None))
            }
        }
    }

    /// Sends the op; for a create, returns the new activity's id.
    async fn send(&self, op: &Op) -> Result<Option<i64>, OfscError> {
        let local = ofsc_time::to_local(&op.time, self.zone(op).await?);
        match &op.kind {
            OpKind::ActivateRoute => {
                self.ofsc
                    .route_action(&op.resource_id, &op.date, "activate", Some(&local))
                    .await?;
                let _ = self
                    .cache
                    .mark_route_activated(&op.resource_id, &op.date, &local);
                Ok(None)
            }
            OpKind::CreateActivity { activity } => {
                let mut body = (**activity).clone();
                body.activity_id = None;
                let created = self.ofsc.create_activity(&body).await?;
                self.cache_activity(&created)?;
                if let Some(id) = created.activity_id {
                    let _ = self.cache.add_to_route(&op.resource_id, &op.date, id);
                }
                Ok(created.activity_id)
            }
            OpKind::Status {
                ofsc_action: Some(action),
                ..
            } => {
                let id = op
                    .activity_id
                    .ok_or_else(|| OfscError::Config("status op without activity".into()))?;
                let id = outbox::resolve_activity(self.store.as_ref(), id)
                    .map_err(|e| OfscError::Local(e.to_string()))?;
                if id < 0 {
                    return Err(OfscError::Config(
                        "the activity this op is for was never created in OFSC".into(),
                    ));
                }
                let a = self.ofsc.status_action(id, action, &local).await?;
                self.cache_activity(&a)?;
                Ok(None)
            }
            OpKind::Status {
                ofsc_action: None, ..
            } => Ok(None),
            OpKind::Part { .. } => self.send_part(op).await,
            OpKind::SetProperties { .. } => self.send_properties(op).await.map(|_| None),
            OpKind::Reopen => self.send_reopen(op).await,
            OpKind::Attachment { .. } => self.send_attachment(op).await.map(|_| None),
            OpKind::Location { fixes } => self.send_fixes(op, fixes).await.map(|_| None),
        }
    }

    /// Records what an applied op produced: a created activity's id, or the moved item.
    async fn applied(&self, op: &mut Op, produced: Option<i64>) -> Step {
        if matches!(op.kind, OpKind::Part { .. }) {
            op.result_inventory_id = produced.or(op.result_inventory_id);
            self.refresh_stock(op).await;
        } else {
            op.created_activity_id = produced.or(op.created_activity_id);
        }
        self.finish(op, OpState::Applied).await
    }

    async fn step(&self, mut op: Op) -> Step {
        if op.state.is_final() {
            // A final op still in its lane (crash between writes): just drop the entry.
            return self.finish(&mut op.clone(), op.state).await;
        }
        if matches!(
            op.kind,
            OpKind::Status {
                ofsc_action: None,
                ..
            }
        ) {
            return self.finish(&mut op, OpState::Applied).await;
        }
        // Stored as sending: an attempt may have reached OFSC without its outcome being
        // recorded (recording it failed), so it is read back, never simply sent again.
        let in_doubt = op.state == OpState::Sending
            || self
                .read_back
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(&op.seq);
        if in_doubt {
            match self.already_applied(&op).await {
                Ok(Some(produced)) => return self.applied(&mut op, produced).await,
                Ok(None) => {
                    self.read_back
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&op.seq);
                }
                Err(e) => {
                    // A failed read-back is an attempt too, so an op cannot wait forever.
                    op.attempts += 1;
                    op.last_error = Some(format!("reading back: {e}"));
                    let wait = self.backoff(op.attempts);
                    return self.retry_or_die(op, wait).await;
                }
            }
        }
        let from = op.state;
        op.state = OpState::Sending;
        op.attempts += 1;
        op.updated_at = Utc::now();
        if let Err(e) = outbox::mark_sending(self.store.as_ref(), &op, from) {
            tracing::error!(op = %op.id, error = %e, "cannot mark op sending");
            return Step::Wait(Duration::from_secs(1));
        }
        let result = match op.kind {
            OpKind::Part { .. } | OpKind::Reopen => match self.ensure_baseline(&mut op).await {
                Ok(()) => self.send(&op).await,
                Err(e) => Err(e),
            },
            _ => self.send(&op).await,
        };
        let err = match result {
            Ok(produced) => return self.applied(&mut op, produced).await,
            Err(e) => e,
        };
        if err.needs_read_back() {
            self.mark_read_back(op.seq);
        }
        op.last_error = Some(err.to_string());
        let wait = match err.disposition() {
            Disposition::Reject => {
                if let OfscError::Rejected { detail, .. } = &err {
                    op.ofsc_detail = Some(detail.clone());
                }
                return self.finish(&mut op, OpState::Rejected).await;
            }
            Disposition::RefreshAuth => {
                self.ofsc.invalidate_token().await;
                self.backoff(op.attempts)
            }
            Disposition::Retry { after } => after.unwrap_or_else(|| self.backoff(op.attempts)),
        };
        self.retry_or_die(op, wait).await
    }

    /// Dead after too many attempts or too long; otherwise back in the queue for `wait`.
    async fn retry_or_die(&self, mut op: Op, wait: Duration) -> Step {
        let age = (Utc::now() - op.created_at).to_std().unwrap_or_default();
        if op.attempts >= self.cfg.max_attempts || age > self.cfg.max_age {
            return self.finish(&mut op, OpState::Dead).await;
        }
        op.state = OpState::Queued;
        if let Err(e) = outbox::save_op(self.store.as_ref(), &op, self.cfg.announce_ops) {
            tracing::error!(op = %op.id, error = %e, "cannot record retry");
        }
        tracing::debug!(op = %op.id, error = ?op.last_error, ?wait, "op will be retried");
        Step::Wait(wait)
    }
}

#[cfg(test)]
mod tests;
