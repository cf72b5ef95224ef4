//! The device simulator (`fieldsync device-sim`): a command-line technician app and the
//! project's reference client. It signs in, pulls the route, works the day offline, then
//! pushes in batches over a lossy link (dropped answers, resent batches) and follows the
//! outcomes through sync pull.
//!
//! It talks to fieldsync's own API, so it is the one place besides `ofsc/` that uses reqwest.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use sha2::Digest;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct DeviceSimConfig {
    pub url: String,
    pub users: Vec<String>,
    pub password: String,
    /// How long the devices were "offline" (their actions are spread over this window).
    pub offline: Duration,
    /// Ops per push.
    pub batch: usize,
    /// Probability that an answer is lost (the batch is then resent).
    pub loss: f64,
    /// Probability that a delivered batch is resent anyway (duplicate delivery).
    pub duplicate: f64,
    pub seed: u64,
    /// Give up waiting for outcomes after this long.
    pub settle: Duration,
    /// As a load generator: at most this many ops per second over all devices.
    pub rate: Option<f64>,
}

/// What happened to one op.
#[derive(Debug, Clone, PartialEq)]
pub struct OpOutcome {
    pub user: String,
    pub client_op_id: String,
    pub activity_id: i64,
    pub status: String,
    /// The push result: accepted, duplicate, rejected or conflict.
    pub result: String,
    pub op_id: Option<String>,
    /// The op's final state (applied, rejected, ...) when known.
    pub state: Option<String>,
    pub detail: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DeviceSimError {
    #[error("HTTP: {0}")]
    Http(#[from] reqwest::Error),
    #[error("{0}")]
    Protocol(String),
}

struct Device {
    http: reqwest::Client,
    url: String,
    device: String,
    token: String,
}

fn sha256_jcs(v: &Value) -> Result<String, DeviceSimError> {
    let bytes =
        serde_json_canonicalizer::to_vec(v).map_err(|e| DeviceSimError::Protocol(e.to_string()))?;
    Ok(hex::encode(sha2::Sha256::digest(bytes)))
}

impl Device {
    async fn sign_in(
        cfg: &DeviceSimConfig,
        user: &str,
        n: usize,
    ) -> Result<Device, DeviceSimError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()?;
        let device = format!("sim-{user}-{n}");
        let body: Value = http
            .post(format!("{}/sessions", cfg.url))
            .json(&json!({"username": user, "password": cfg.password, "deviceId": device}))
            .send()
            .await?
            .json()
            .await?;
        let token = body["accessToken"]
            .as_str()
            .ok_or_else(|| DeviceSimError::Protocol(format!("sign-in of {user} failed: {body}")))?
            .to_string();
        Ok(Device {
            http,
            url: cfg.url.clone(),
            device,
            token,
        })
    }

    async fn pull(&self, cursor: Option<&str>) -> Result<Value, DeviceSimError> {
        let mut req = self
            .http
            .get(format!("{}/sync/pull", self.url))
            .bearer_auth(&self.token);
        if let Some(c) = cursor {
            req = req.query(&[("cursor", c), ("limit", "500")]);
        }
        Ok(req.send().await?.json().await?)
    }

    /// Uploads a photo through its signed tus URL, resuming from the server's offset after
    /// a failed attempt.
    async fn upload(&self, url: &str, bytes: &[u8]) -> Result<(), DeviceSimError> {
        for _ in 0..10 {
            let head = self
                .http
                .head(url)
                .header("Tus-Resumable", "1.0.0")
                .send()
                .await?;
            if !head.status().is_success() {
                return Err(DeviceSimError::Protocol(format!(
                    "upload answered {}",
                    head.status()
                )));
            }
            let offset: usize = head
                .headers()
                .get("upload-offset")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if offset >= bytes.len() {
                return Ok(());
            }
            let sent = self
                .http
                .patch(url)
                .header("Tus-Resumable", "1.0.0")
                .header("Upload-Offset", offset.to_string())
                .header("Content-Type", "application/offset+octet-stream")
                .body(bytes[offset..].to_vec())
                .send()
                .await;
            match sent {
                Ok(r) if r.status().as_u16() == 204 => return Ok(()),
                Ok(r) if r.status().is_client_error() && r.status().as_u16() != 409 => {
                    return Err(DeviceSimError::Protocol(format!(
                        "upload refused: {}",
                        r.status()
                    )))
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        Err(DeviceSimError::Protocol("upload never finished".into()))
    }

    /// The op that sends an uploaded attachment to OFSC, once the server's background
    /// decode passed (the upload's last 204 comes before it).
    async fn attachment_op(
        &self,
        activity: i64,
        attachment: &str,
    ) -> Result<Option<String>, DeviceSimError> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let list: Value = self
                .http
                .get(format!("{}/activities/{activity}/attachments", self.url))
                .bearer_auth(&self.token)
                .send()
                .await?
                .json()
                .await?;
            let item = list["items"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|a| a["attachmentId"] == attachment);
            let processing = item.is_some_and(|a| a["state"] == "processing");
            if !processing || Instant::now() > deadline {
                return Ok(item.and_then(|a| a["opId"].as_str()).map(str::to_string));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn push(&self, ops: &[Value]) -> Result<Value, DeviceSimError> {
        let body = json!({"deviceId": self.device, "deviceTime": chrono::Utc::now().to_rfc3339(), "ops": ops});
        let resp = self
            .http
            .post(format!("{}/sync/push", self.url))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await?;
        if !resp.status().is_success() {
            return Err(DeviceSimError::Protocol(format!(
                "push answered {}",
                resp.status()
            )));
        }
        Ok(resp.json().await?)
    }
}

/// The day a technician works offline: for every stop, en route, arrived, started, cable
/// used (a `parts` entry), a photo of the work (an `attachment`, uploaded once back online),
/// completed.
fn plan_day(
    stops: &[Value],
    offline: Duration,
    rng: &mut StdRng,
) -> Vec<(i64, &'static str, chrono::DateTime<chrono::Utc>)> {
    let moves = [
        "enroute",
        "arrived",
        "started",
        "parts",
        "photo",
        "completed",
    ];
    let total = (stops.len() * moves.len()).max(1) as f64;
    let start = chrono::Utc::now() - chrono::Duration::from_std(offline).unwrap_or_default();
    let step = offline.as_secs_f64() / total;
    let mut out = Vec::new();
    let mut k = 0.0;
    for stop in stops {
        let Some(id) = stop["activityId"].as_i64() else {
            continue;
        };
        if stop["status"] != "pending" {
            continue;
        }
        for m in moves {
            let jitter = rng.gen_range(0.0..step.max(0.001) * 0.5);
            let at = start + chrono::Duration::milliseconds(((k * step + jitter) * 1000.0) as i64);
            out.push((id, m, at));
            k += 1.0;
        }
    }
    out
}

async fn run_device(
    cfg: DeviceSimConfig,
    user: String,
    n: usize,
) -> Result<Vec<OpOutcome>, DeviceSimError> {
    let mut rng = StdRng::seed_from_u64(cfg.seed.wrapping_add(n as u64));
    let dev = Device::sign_in(&cfg, &user, n).await?;
    // The first pull (a snapshot of today's route) may meet an OFSC hiccup: try again.
    let mut first = Value::Null;
    for _ in 0..50 {
        match dev.pull(None).await {
            Ok(v) if v["reset"] == true => {
                first = v;
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    if first.is_null() {
        return Err(DeviceSimError::Protocol("could not pull the route".into()));
    }
    let mut cursor = first["nextCursor"].as_str().unwrap_or_default().to_string();
    let stops = first["snapshot"]["stops"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let day = plan_day(&stops, cfg.offline, &mut rng);
    let mut ops = Vec::new();
    let mut outcomes = Vec::new();
    let mut photos = std::collections::HashMap::new();
    for (seq, (id, status, at)) in day.iter().enumerate() {
        let (kind, payload) = match *status {
            "parts" => (
                "parts",
                json!({"items": [{"action": "consume", "inventoryType": "CAT6_M", "quantity": rng.gen_range(1..5)}]}),
            ),
            "photo" => {
                let bytes = crate::features::uploads::samples::photo(320, 240, rng.gen(), Some(6));
                let payload = json!({"kind": "photo", "contentType": "image/jpeg", "size": bytes.len(),
                    "sha256": hex::encode(sha2::Sha256::digest(&bytes)), "fileName": format!("stop-{id}.jpg"),
                    "capturedAt": at.to_rfc3339()});
                photos.insert(format!("{}-{}", dev.device, seq + 1), bytes);
                ("attachment", payload)
            }
            _ => ("status", json!({ "status": status })),
        };
        let client_op_id = format!("{}-{}", dev.device, seq + 1);
        ops.push(json!({"clientOpId": client_op_id, "seq": seq + 1, "kind": kind, "activityId": id,
                        "payload": payload, "capturedAt": at.to_rfc3339(), "sha256": sha256_jcs(&payload)?}));
        outcomes.push(OpOutcome {
            user: user.clone(),
            client_op_id,
            activity_id: *id,
            status: status.to_string(),
            result: String::new(),
            op_id: None,
            state: None,
            detail: None,
        });
    }
    // Back online, on a bad link: some answers are lost (the batch is resent), some batches
    // arrive twice. The server must answer duplicates, never apply twice.
    let per_device = cfg
        .rate
        .map(|r| r / cfg.users.len().max(1) as f64)
        .filter(|r| *r > 0.0);
    let mut uploads: std::collections::HashMap<String, (String, String)> = Default::default();
    for (b, chunk) in ops.chunks(cfg.batch.max(1)).enumerate() {
        if let Some(r) = per_device {
            tokio::time::sleep(Duration::from_secs_f64(chunk.len() as f64 / r)).await;
        }
        let mut answer = None;
        let mut wait = Duration::from_millis(50);
        for _attempt in 0..20 {
            let result = dev.push(chunk).await;
            if rng.gen_bool(cfg.loss.clamp(0.0, 1.0)) {
                continue;
            }
            if let Ok(a) = result {
                answer = Some(a);
                break;
            }
            // The server could not take the batch now (e.g. 503 while OFSC is unreachable).
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(2));
        }
        if rng.gen_bool(cfg.duplicate.clamp(0.0, 1.0)) {
            let _ = dev.push(chunk).await;
        }
        let answer = answer
            .ok_or_else(|| DeviceSimError::Protocol(format!("batch {b} never got through")))?;
        for r in answer["results"].as_array().into_iter().flatten() {
            if let Some(o) = outcomes
                .iter_mut()
                .find(|o| r["clientOpId"] == o.client_op_id.as_str())
            {
                o.result = r["result"].as_str().unwrap_or_default().to_string();
                o.op_id = r["opId"]
                    .as_str()
                    .map(str::to_string)
                    .or(r["original"]["opId"].as_str().map(str::to_string));
                o.detail = r["detail"].as_str().map(str::to_string);
                let grant = if r["upload"].is_object() {
                    r
                } else {
                    &r["original"]
                };
                if let (Some(url), Some(att)) = (
                    grant["upload"]["url"].as_str(),
                    grant["attachmentId"].as_str(),
                ) {
                    uploads.insert(o.client_op_id.clone(), (url.to_string(), att.to_string()));
                }
            }
        }
    }
    // Photos go up once the grants are in; each then has an op that sends it to OFSC.
    for o in outcomes.iter_mut().filter(|o| o.status == "photo") {
        let (Some((url, att)), Some(bytes)) =
            (uploads.get(&o.client_op_id), photos.get(&o.client_op_id))
        else {
            continue;
        };
        match dev.upload(url, bytes).await {
            Ok(()) => o.op_id = dev.attachment_op(o.activity_id, att).await?,
            Err(e) => o.detail = Some(e.to_string()),
        }
    }
    // Follow the outcomes through sync pull until every queued op has a final state.
    let deadline = Instant::now() + cfg.settle;
    loop {
        let page = dev.pull(Some(&cursor)).await?;
        for item in page["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|i| i["kind"] == "op")
        {
            let (op, state) = (
                item["data"]["opId"].as_str(),
                item["data"]["state"].as_str(),
            );
            if let (Some(op), Some(state)) = (op, state) {
                for o in outcomes
                    .iter_mut()
                    .filter(|o| o.op_id.as_deref() == Some(op))
                {
                    o.state = Some(state.to_string());
                    if let Some(d) = item["data"]["ofscDetail"].as_str() {
                        o.detail = Some(d.to_string());
                    }
                }
            }
        }
        cursor = page["nextCursor"].as_str().unwrap_or(&cursor).to_string();
        let open = outcomes.iter().any(|o| {
            o.op_id.is_some()
                && !matches!(o.state.as_deref(), Some(s) if s != "queued" && s != "sending")
        });
        if !open || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(outcomes)
}

/// Plays a day for every user (one device each), concurrently.
pub async fn run(cfg: DeviceSimConfig) -> Result<Vec<OpOutcome>, DeviceSimError> {
    let tasks: Vec<_> = cfg
        .users
        .iter()
        .enumerate()
        .map(|(n, u)| tokio::spawn(run_device(cfg.clone(), u.clone(), n)))
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(
            t.await
                .map_err(|e| DeviceSimError::Protocol(e.to_string()))??,
        );
    }
    Ok(all)
}

/// One line per op, then a tally.
pub fn summary(outcomes: &[OpOutcome]) -> String {
    let mut out = String::new();
    for o in outcomes {
        out.push_str(&format!(
            "{:<8} {:<28} activity={:<9} {:<10} push={:<9} state={:<9} {}\n",
            o.user,
            o.client_op_id,
            o.activity_id,
            o.status,
            o.result,
            o.state.as_deref().unwrap_or("-"),
            o.detail.as_deref().unwrap_or("")
        ));
    }
    let count = |s: &str| {
        outcomes
            .iter()
            .filter(|o| o.state.as_deref() == Some(s))
            .count()
    };
    out.push_str(&format!(
        "total={} applied={} rejected={} blocked={} dead={} unresolved={}\n",
        outcomes.len(),
        count("applied"),
        count("rejected"),
        count("blocked"),
        count("dead"),
        outcomes.iter().filter(|o| o.state.is_none()).count()
    ));
    out
}
