//! Outbound webhooks: events are recorded in the same journal record as what they announce,
//! fanned out into one delivery per subscribed endpoint, and delivered from a durable sled
//! queue with HMAC signatures and backoff. At least once; receivers de-duplicate by event id.
//! A slow or failing receiver never holds back replay: this runs on its own task.

use crate::config::{WebhookEndpoint, WebhookSettings};
use crate::store::journal::Publish;
use crate::store::keys::{KeyBuf, KeyReader};
use crate::store::{GroupCommit, Storage, StorageExt, StoreError, Tree, Tx, TxExt};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

mod signing;
pub use signing::{signature, verify};

/// Events not yet fanned out, by id.
pub const EVENTS: Tree = Tree("webhook_events");
/// Every delivery, by id.
pub const DELIVERIES: Tree = Tree("webhook_deliveries");
/// Pending deliveries by (due time in ms, id): what to send next.
pub const DUE: Tree = Tree("webhook_due");

pub const EVENT_TYPES: &[&str] = &[
    "op.applied",
    "op.rejected",
    "op.dead",
    "approval.requested",
    "approval.decided",
    "upload.completed",
];

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WebhookEvent {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub created_at: DateTime<Utc>,
    pub data: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    Pending,
    Delivered,
    Failed,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub id: String,
    pub seq: u64,
    pub event_id: String,
    pub event_type: String,
    pub url: String,
    /// The exact bytes sent (and signed).
    pub body: String,
    pub state: DeliveryState,
    pub attempts: u32,
    pub next_at: DateTime<Utc>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

fn seq_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

fn due_key(at: DateTime<Utc>, seq: u64) -> Vec<u8> {
    KeyBuf::new()
        .u64(at.timestamp_millis().max(0) as u64)
        .u64(seq)
        .finish()
}

pub fn delivery_id(seq: u64) -> String {
    crate::ids::format("dlv_", seq)
}

pub fn delivery_seq(id: &str) -> Option<u64> {
    crate::ids::parse("dlv_", id)
}

/// Records an event in the caller's journal record; `seq` comes from `Storage::next_id`
/// taken before it.
pub fn emit_in(tx: &dyn Tx, seq: u64, event_type: &str, data: Value) -> Result<(), StoreError> {
    let event = WebhookEvent {
        id: format!("evt_{seq:016x}"),
        event_type: event_type.to_string(),
        created_at: Utc::now(),
        data,
    };
    tx.put(EVENTS, &seq_key(seq), &event)
}

fn subscribed(e: &WebhookEndpoint, event_type: &str) -> bool {
    e.events.iter().any(|x| x == "*" || x == event_type)
}

pub struct Webhooks {
    store: Arc<dyn Storage>,
    commit: GroupCommit,
    cfg: WebhookSettings,
    http: reqwest::Client,
    wake: Notify,
}

impl Webhooks {
    pub fn new(
        store: Arc<dyn Storage>,
        commit: GroupCommit,
        cfg: WebhookSettings,
    ) -> Result<Arc<Webhooks>, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(cfg.timeout_ms.max(100)))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Arc::new(Webhooks {
            store,
            commit,
            cfg,
            http,
            wake: Notify::new(),
        }))
    }

    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub fn start(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move { this.run().await })
    }

    async fn run(self: Arc<Self>) {
        let mut last_prune = std::time::Instant::now();
        loop {
            if last_prune.elapsed() > Duration::from_secs(600) {
                last_prune = std::time::Instant::now();
                let week_ago = Utc::now() - chrono::Duration::days(7);
                match prune_delivered(self.store.as_ref(), week_ago) {
                    Ok(n) if n > 0 => {
                        tracing::info!(pruned = n, "old webhook deliveries forgotten")
                    }
                    Err(e) => tracing::error!(error = %e, "pruning webhook deliveries failed"),
                    _ => {}
                }
            }
            if let Err(e) = self.fan_out().await {
                tracing::error!(error = %e, "webhook fan-out failed");
            }
            let next = match self.deliver_due().await {
                Ok(next) => next,
                Err(e) => {
                    tracing::error!(error = %e, "webhook delivery pass failed");
                    Duration::from_secs(1)
                }
            };
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(next.min(Duration::from_millis(250))) => {}
            }
        }
    }

    /// Turns recorded events into deliveries (or drops them when nobody listens).
    async fn fan_out(&self) -> Result<(), StoreError> {
        let batch = self.store.scan_raw(EVENTS, b"", None, 256)?;
        if batch.is_empty() {
            return Ok(());
        }
        for (k, v) in batch {
            let event: WebhookEvent = match crate::store::record::open(EVENTS, &k, &v) {
                Ok(e) => e,
                Err(e) if e.is_corrupt() => {
                    self.store.quarantine(EVENTS, &k, &e.to_string())?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let body = serde_json::to_string(&json!({
                "id": event.id, "type": event.event_type, "createdAt": event.created_at, "data": event.data,
            }))
            .map_err(|e| StoreError::Aborted(e.to_string()))?;
            let mut deliveries = Vec::new();
            for e in self
                .cfg
                .endpoints
                .iter()
                .filter(|e| subscribed(e, &event.event_type))
            {
                let seq = self.store.next_id()?;
                let now = Utc::now();
                deliveries.push(Delivery {
                    id: delivery_id(seq),
                    seq,
                    event_id: event.id.clone(),
                    event_type: event.event_type.clone(),
                    url: e.url.clone(),
                    body: body.clone(),
                    state: DeliveryState::Pending,
                    attempts: 0,
                    next_at: now,
                    last_status: None,
                    last_error: None,
                    created_at: now,
                    delivered_at: None,
                });
            }
            // Deliveries first, then the event goes (a journal record, as it came): a crash
            // in between fans the event out again, one more delivery (at least once).
            for d in &deliveries {
                self.store.put(DELIVERIES, &seq_key(d.seq), d)?;
                self.store.put(DUE, &due_key(d.next_at, d.seq), &d.seq)?;
            }
            self.store
                .append("webhook.fanout", Publish::default(), &|tx| {
                    tx.remove(EVENTS, &k)
                })?;
        }
        self.commit
            .flush()
            .await
            .map_err(|e| StoreError::Aborted(e.to_string()))
    }

    /// Sends what is due, in parallel; returns how long until the next one is.
    async fn deliver_due(&self) -> Result<Duration, StoreError> {
        let now = Utc::now();
        let mut due = Vec::new();
        let mut next = Duration::from_secs(5);
        for (k, _) in self.store.scan_raw(DUE, b"", None, 32)? {
            let mut r = KeyReader::new(&k);
            let (Ok(at), Ok(seq)) = (r.u64(), r.u64()) else {
                continue;
            };
            let at_ms = at as i64;
            if at_ms > now.timestamp_millis() {
                next = Duration::from_millis((at_ms - now.timestamp_millis()) as u64);
                break;
            }
            match self.store.get::<Delivery>(DELIVERIES, &seq_key(seq))? {
                // Only the entry the delivery itself points at (see `reschedule`).
                Some(d)
                    if d.state == DeliveryState::Pending
                        && due_key(d.next_at, d.seq) == k.as_slice() =>
                {
                    due.push((k, d))
                }
                _ => self.store.remove(DUE, &k)?,
            }
        }
        if due.is_empty() {
            return Ok(next);
        }
        let endpoints = &self.cfg.endpoints;
        let sends = due.into_iter().map(|(k, d)| async move {
            let secret = endpoints
                .iter()
                .find(|e| e.url == d.url)
                .map(|e| e.secret.expose().to_string());
            let outcome = match secret {
                Some(secret) => self.send(&d, &secret).await,
                None => Err((None, "the endpoint is no longer configured".to_string())),
            };
            (k, d, outcome)
        });
        for (k, mut d, outcome) in futures_util::future::join_all(sends).await {
            d.attempts += 1;
            match outcome {
                Ok(status) => {
                    d.state = DeliveryState::Delivered;
                    d.last_status = Some(status);
                    d.last_error = None;
                    d.delivered_at = Some(Utc::now());
                }
                Err((status, error)) => {
                    d.last_status = status;
                    d.last_error = Some(error);
                    if d.attempts >= self.cfg.max_attempts {
                        d.state = DeliveryState::Failed;
                    } else {
                        let exp = self
                            .cfg
                            .base_backoff_ms
                            .saturating_mul(1u64 << d.attempts.min(20).saturating_sub(1))
                            .min(self.cfg.max_backoff_ms);
                        d.next_at = Utc::now() + chrono::Duration::milliseconds(exp as i64);
                    }
                }
            }
            metrics::counter!("fieldsync_webhook_attempts_total", "outcome" => if d.state == DeliveryState::Delivered { "delivered" } else { "failed" }).increment(1);
            reschedule(self.store.as_ref(), &k, &d)?;
        }
        // Outcomes are durable once a pass ends; one lost in a crash only means one more
        // delivery of the same event (at least once).
        self.commit
            .flush()
            .await
            .map_err(|e| StoreError::Aborted(e.to_string()))?;
        Ok(Duration::ZERO)
    }

    async fn send(&self, d: &Delivery, secret: &str) -> Result<u16, (Option<u16>, String)> {
        let t = Utc::now().timestamp();
        let signed = signature(secret, t, d.body.as_bytes())
            .ok_or_else(|| (None, "cannot sign with this secret".to_string()))?;
        let resp = self
            .http
            .post(&d.url)
            .header("content-type", "application/json")
            .header("fieldsync-signature", signed)
            .header("fieldsync-event-id", &d.event_id)
            .header("fieldsync-delivery-id", &d.id)
            .body(d.body.clone())
            .send()
            .await
            .map_err(|e| (None, format!("sending: {e}")))?;
        let status = resp.status().as_u16();
        if resp.status().is_success() {
            Ok(status)
        } else {
            Err((Some(status), format!("the receiver answered {status}")))
        }
    }
}

/// Deliveries, newest first, optionally only one state; `before` is a delivery seq cursor.
pub fn list(
    store: &dyn Storage,
    state: Option<DeliveryState>,
    before: Option<u64>,
    limit: usize,
) -> Result<(Vec<Delivery>, bool), StoreError> {
    const PAGE: usize = 256;
    let mut out = Vec::new();
    // Newest first, a page at a time, from just below the cursor.
    let mut below: Option<Vec<u8>> = before.map(|b| seq_key(b).to_vec());
    loop {
        let page = store.scan_raw_rev(DELIVERIES, below.as_deref(), PAGE)?;
        for (k, v) in &page {
            let Some(d) = store.open_or_quarantine::<Delivery>(DELIVERIES, k, v)? else {
                continue;
            };
            if state.is_some_and(|s| d.state != s) {
                continue;
            }
            if out.len() == limit {
                return Ok((out, true));
            }
            out.push(d);
        }
        match page.last() {
            Some((k, _)) if page.len() == PAGE => below = Some(k.clone()),
            _ => return Ok((out, false)),
        }
    }
}

/// Forgets deliveries that succeeded before `before` (failed ones stay for operators).
pub fn prune_delivered(store: &dyn Storage, before: DateTime<Utc>) -> Result<usize, StoreError> {
    let mut gone = 0;
    crate::store::scan_pages(store, DELIVERIES, b"", 1024, &mut |k, v| {
        if let Ok(d) = crate::store::record::open::<Delivery>(DELIVERIES, k, v) {
            if d.state == DeliveryState::Delivered && d.delivered_at.is_some_and(|t| t < before) {
                store.remove(DELIVERIES, k)?;
                gone += 1;
            }
        }
        Ok(true)
    })?;
    Ok(gone)
}

/// Puts a delivery back in the queue, due now.
pub fn redeliver(store: &dyn Storage, seq: u64) -> Result<Option<Delivery>, StoreError> {
    let Some(mut d) = store.get::<Delivery>(DELIVERIES, &seq_key(seq))? else {
        return Ok(None);
    };
    let old_due = due_key(d.next_at, d.seq);
    d.state = DeliveryState::Pending;
    d.attempts = 0;
    d.next_at = Utc::now();
    reschedule(store, &old_due, &d)?;
    Ok(Some(d))
}

/// Stores a delivery's new state and moves its place in the due-queue. The record goes
/// first: a due entry whose delivery says otherwise is dropped when it comes up, and one
/// left behind by a crash only means one more attempt (at least once).
fn reschedule(store: &dyn Storage, old_due: &[u8], d: &Delivery) -> Result<(), StoreError> {
    store.put(DELIVERIES, &seq_key(d.seq), d)?;
    if d.state == DeliveryState::Pending {
        store.put(DUE, &due_key(d.next_at, d.seq), &d.seq)?;
    }
    let new_due = due_key(d.next_at, d.seq);
    if old_due != new_due.as_slice() || d.state != DeliveryState::Pending {
        store.remove(DUE, old_due)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
