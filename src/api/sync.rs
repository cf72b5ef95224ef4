//! The offline sync protocol: `POST /sync/push` (a batch of device writes, one result each)
//! and `GET /sync/pull` (what the device should learn since its cursor).

use super::ApiError;
use crate::auth::policy::{self, Function};
use crate::auth::Principal;
use crate::domain::times;
use crate::read::{present, query};
use crate::state::AppState;
use crate::store::keys::{KeyBuf, KeyReader};
use crate::store::{Storage, StorageExt};
use crate::write::create::NewActivity;
use crate::write::fixes::FixBody;
use crate::write::grant::GrantBody;
use crate::write::outbox::{Change, Enqueued, Submitter, CHANGES};
use crate::write::parts::{PartsBody, PartsCommand};
use crate::write::push::Batch;
use crate::write::status::{StatusBody, StatusCommand};
use crate::write::{Command, SyncTime};
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, FixedOffset, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

/// At most this many ops per batch (the byte limit is the JSON body limit, 5 MiB).
pub const MAX_OPS: usize = 500;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PushBody {
    device_id: String,
    device_time: DateTime<FixedOffset>,
    ops: Vec<PushOp>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PushOp {
    client_op_id: String,
    seq: u64,
    kind: String,
    #[serde(default)]
    activity_id: Option<i64>,
    payload: Value,
    captured_at: DateTime<FixedOffset>,
    sha256: String,
}

/// Lowercase hex SHA-256 of the payload's RFC 8785 (JCS) canonical bytes.
pub fn payload_sha256(payload: &Value) -> Result<String, ApiError> {
    let canonical =
        serde_json_canonicalizer::to_vec(payload).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(hex::encode(crate::store::record::sha256(&canonical)))
}

fn duplicate(op: &PushOp, response: Value) -> Value {
    json!({"clientOpId": op.client_op_id, "seq": op.seq, "result": "duplicate", "opId": response["opId"], "original": response})
}

fn rejected(op: &PushOp, code: &str, detail: &str) -> Value {
    json!({"clientOpId": op.client_op_id, "seq": op.seq, "result": "rejected", "code": code, "detail": detail})
}

/// One op of a batch: its form checked, its idempotency and time settled, handed to the
/// write path of its kind (the one the single-write endpoints use), and answered. `Err`
/// only for what fails the whole batch.
async fn apply_op(
    state: &AppState,
    who: &Principal,
    req: &HttpRequest,
    op: &PushOp,
    offset: chrono::Duration,
    batch: &Batch<'_>,
) -> Result<Value, ApiError> {
    if let Some(refusal) = malformed(op)? {
        return Ok(refusal);
    }
    let submitter = batch.enlist(submitter_for(who, op))?;
    let checked = times::corrected(op.captured_at, offset)
        .and_then(|t| times::check(t, Utc::now(), &state.time_window).map(|()| t));
    let corrected = match checked {
        Ok(t) => t,
        // Every kind's time is bounded the same way, after the duplicate check (an op
        // accepted earlier keeps its first answer).
        Err(e) => {
            return Ok(match batch.earlier_answer(&submitter)? {
                Some(Enqueued::Replayed { response, .. }) => duplicate(op, response),
                _ => rejected(op, "time-out-of-range", &e.to_string()),
            });
        }
    };
    let from_sync = Some(SyncTime {
        captured_at: op.captured_at,
        corrected,
    });
    match command_of(state, req, op, submitter, from_sync) {
        Ok(command) => {
            let outcome = batch.submit(command).await;
            answer(state, op, batch, outcome.map_err(ApiError::from)).await
        }
        Err(refusal) => Ok(refusal),
    }
}

/// A refusal of the op's own form (its id, its checksum), before anything is read.
fn malformed(op: &PushOp) -> Result<Option<Value>, ApiError> {
    let valid_id = !op.client_op_id.is_empty()
        && op.client_op_id.len() <= 128
        && op.client_op_id.chars().all(|c| c.is_ascii_graphic());
    if !valid_id {
        return Ok(Some(rejected(
            op,
            "invalid-client-op-id",
            "clientOpId must be 1-128 visible ASCII characters",
        )));
    }
    if payload_sha256(&op.payload)? != op.sha256 {
        return Ok(Some(rejected(
            op,
            "checksum-mismatch",
            "sha256 is not the SHA-256 of the payload's RFC 8785 canonical bytes",
        )));
    }
    Ok(None)
}

/// The op's idempotency: its device and clientOpId, fingerprinted by what it carries.
fn submitter_for(who: &Principal, op: &PushOp) -> Submitter {
    let fingerprint = format!(
        "{}|{:?}|{}|{}",
        op.kind,
        op.activity_id,
        op.sha256,
        op.captured_at.to_rfc3339()
    );
    let action = match op.kind.as_str() {
        "status" => "status",
        "createActivity" => "createActivity",
        "parts" => "parts",
        "location" => "location",
        _ => "sync",
    };
    Submitter::of(
        who,
        action,
        format!("sync:{}:{}", who.device_id, op.client_op_id),
        hex::encode(crate::store::record::sha256(fingerprint.as_bytes())),
        Some(op.seq),
    )
}

/// The op's payload as its kind's body, or the op's refusal.
fn payload<T: serde::de::DeserializeOwned>(op: &PushOp) -> Result<T, Value> {
    serde_json::from_value(op.payload.clone())
        .map_err(|e| rejected(op, "invalid-payload", &e.to_string()))
}

/// The activity an op of this kind is about, or the op's refusal.
fn activity_of(op: &PushOp) -> Result<i64, Value> {
    op.activity_id.ok_or_else(|| {
        rejected(
            op,
            "invalid-payload",
            &format!("an op of kind {} needs activityId", op.kind),
        )
    })
}

/// The op as its kind's command, or the op's own refusal.
fn command_of(
    state: &AppState,
    req: &HttpRequest,
    op: &PushOp,
    submitter: Submitter,
    from_sync: Option<SyncTime>,
) -> Result<Command, Value> {
    Ok(match op.kind.as_str() {
        "status" => {
            let activity = activity_of(op)?;
            let body: StatusBody = payload(op)?;
            if body.time.is_some() {
                return Err(rejected(
                    op,
                    "invalid-payload",
                    "a synced op carries its time in capturedAt",
                ));
            }
            Command::Status(StatusCommand {
                activity,
                body,
                submitter,
                from_sync,
            })
        }
        "createActivity" => Command::Create(payload::<NewActivity>(op)?, submitter),
        "parts" => Command::Parts(PartsCommand {
            activity: activity_of(op)?,
            body: payload::<PartsBody>(op)?,
            submitter,
            from_sync,
        }),
        "attachment" => Command::Grant {
            activity: activity_of(op)?,
            body: payload::<GrantBody>(op)?,
            base: super::origin::of(req, &state.origin).base,
            submitter,
        },
        "location" => Command::Fixes {
            items: vec![payload::<FixBody>(op)?],
            from_sync,
            submitter,
        },
        other => {
            return Err(rejected(
                op,
                "unknown-kind",
                &format!("unknown kind {other:?}"),
            ))
        }
    })
}

/// The op's result from its write's outcome. What is not the op's fault and not final (OFSC
/// unreachable, the caller's budget of OFSC reads spent) fails the batch instead, and the
/// device resends it: what was accepted before comes back as duplicates.
async fn answer(
    state: &AppState,
    op: &PushOp,
    batch: &Batch<'_>,
    outcome: Result<Enqueued, ApiError>,
) -> Result<Value, ApiError> {
    Ok(match outcome {
        Ok(Enqueued::Accepted { response, .. }) => {
            let mut r = json!({"clientOpId": op.client_op_id, "seq": op.seq, "result": "accepted", "opId": response["opId"], "activity": response["activity"]});
            // An attachment op answers with its upload grant.
            if let Some(upload) = response.get("upload") {
                r["attachmentId"] = response["attachmentId"].clone();
                r["upload"] = upload.clone();
            }
            r
        }
        Ok(Enqueued::Replayed { response, .. }) => duplicate(op, response),
        Ok(Enqueued::KeyReused) => rejected(
            op,
            "idempotency-key-reused",
            "this clientOpId was used with another payload",
        ),
        Err(ApiError::InvalidTransition { detail, allowed }) => {
            // The current activity is read from sled: the batch's earlier ops first.
            batch.commit()?;
            let current = match op.activity_id {
                Some(id) => current_activity(state, id).await,
                None => Value::Null,
            };
            json!({"clientOpId": op.client_op_id, "seq": op.seq, "result": "conflict", "code": "invalid-transition",
                   "detail": detail, "allowed": allowed, "activity": current})
        }
        Err(
            e @ (ApiError::Internal(_)
            | ApiError::OfscUnavailable(_)
            | ApiError::UpstreamBudgetSpent { .. }),
        ) => return Err(e),
        Err(e) => rejected(op, e.code(), &e.to_string()),
    })
}

/// The server's current view of an activity, for a conflict result.
async fn current_activity(state: &AppState, id: i64) -> Value {
    // Found already by the op that conflicted: cached, no OFSC read to charge.
    let Ok(a) = query::find_activity(state, id, None).await else {
        return Value::Null;
    };
    let route = match (a.resource_id.as_deref(), a.date.as_deref()) {
        (Some(r), Some(d)) => query::device_route_of(state, r, d).await.ok(),
        _ => None,
    };
    present::activity(&a, route.as_ref())
}

pub async fn push(
    state: web::Data<AppState>,
    who: Principal,
    req: HttpRequest,
    body: web::Json<PushBody>,
) -> Result<HttpResponse, ApiError> {
    policy::may_use(&who, Function::FieldWrite)?;
    state.last_sync.saw(&who.username);
    let mut body = body.into_inner();
    if body.device_id != who.device_id {
        return Err(ApiError::BadRequest {
            code: "device-mismatch",
            detail: "deviceId is not the device this session belongs to".into(),
        });
    }
    if body.ops.len() > MAX_OPS {
        return Err(ApiError::TooManyOps {
            count: body.ops.len(),
            limit: MAX_OPS,
        });
    }
    let server_now = Utc::now();
    let offset = times::offset(server_now, body.device_time);
    body.ops.sort_by_key(|o| o.seq);
    let batch = Batch::new(&state, &who);
    // Saturating: a device may send any u64, the last one included.
    let mut expected = batch.high_water()?.saturating_add(1);
    let mut gaps = Vec::new();
    let mut results = Vec::with_capacity(body.ops.len());
    let applied = async {
        for op in &body.ops {
            if op.seq > expected {
                gaps.push(json!({"from": expected, "to": op.seq - 1}));
                tracing::warn!(device = %who.device_id, from = expected, to = op.seq - 1, "sync seq gap");
            }
            expected = expected.max(op.seq.saturating_add(1));
            let result = apply_op(&state, &who, &req, op, offset, &batch).await?;
            // A grant is not an op: its seq is noted here, like a refused op's.
            if (result["result"] != "accepted" && result["result"] != "duplicate")
                || op.kind == "attachment"
            {
                batch.note_seq(op.seq)?;
            }
            results.push(result);
        }
        Ok::<_, ApiError>(())
    }
    .await;
    let high_water = batch.finish(applied).await?;
    Ok(HttpResponse::Ok().json(json!({
        "results": results,
        "gaps": gaps,
        "highWater": high_water,
        "serverTime": server_now.to_rfc3339(),
        "clockOffsetMs": offset.num_milliseconds(),
    })))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PullQuery {
    cursor: Option<String>,
    limit: Option<usize>,
}

fn encode_cursor(seq: u64) -> String {
    crate::ids::format("chg_", seq)
}

fn decode_cursor(c: &str) -> Option<u64> {
    crate::ids::parse("chg_", c)
}

pub async fn pull(
    state: web::Data<AppState>,
    who: Principal,
    q: web::Query<PullQuery>,
) -> Result<HttpResponse, ApiError> {
    policy::may_use(&who, Function::FieldWrite)?;
    state.last_sync.saw(&who.username);
    let resource = who.resource_id.clone().ok_or(ApiError::NotFound)?;
    let store = state.store.as_ref();
    let watermark = store.watermark();
    let limit = super::page_limit(q.limit, 100, 500)?;
    // Entries up to `pruned` may have left the change log (history retention).
    let pruned = crate::write::outbox::history::changes_pruned_through(store)?;
    let after = q
        .cursor
        .as_deref()
        .and_then(decode_cursor)
        .filter(|c| *c <= watermark && *c >= pruned);
    let Some(after) = after else {
        // No cursor, one this server never issued, or one older than the change log
        // retains: start over from a snapshot.
        let zone = state
            .directory
            .get(&resource)
            .and_then(|r| r.time_zone_iana)
            .and_then(|z| crate::ofsc::time::zone(&z).ok())
            .unwrap_or(chrono_tz::UTC);
        let date = crate::ofsc::time::today_in(zone).to_string();
        let read = state
            .cache
            .read_route(
                &resource,
                &date,
                state.ofsc_health.snapshot().ok,
                Some(&who.username),
            )
            .await?;
        let snapshot: Value =
            serde_json::from_slice(&super::routes::render(&state, &resource, &date, &read)?)
                .map_err(|e| ApiError::Internal(e.to_string()))?;
        return Ok(HttpResponse::Ok().json(json!({
            "reset": true, "snapshot": snapshot, "items": [], "nextCursor": encode_cursor(watermark), "hasMore": false,
        })));
    };
    let prefix = KeyBuf::new().str(&resource).finish();
    let mut items = Vec::new();
    let mut last = after;
    let mut has_more = false;
    'scan: loop {
        let batch = store.scan_raw(
            CHANGES,
            &prefix,
            Some(
                &KeyBuf::new()
                    .str(&resource)
                    .u64(last.saturating_add(1))
                    .finish(),
            ),
            256,
        )?;
        if batch.is_empty() {
            break;
        }
        for (k, v) in batch {
            // A corrupt entry is quarantined, not an error every pull from here would hit:
            // the device would never sync again.
            let Some(change) = store.open_or_quarantine::<Change>(CHANGES, &k, &v)? else {
                let mut key = KeyReader::new(&k);
                match key.str().and_then(|_| key.u64()) {
                    Ok(seq) if seq <= watermark => {
                        last = seq;
                        continue;
                    }
                    _ => break 'scan,
                }
            };
            if change.seq > watermark {
                break 'scan;
            }
            if items.len() >= limit {
                has_more = true;
                break 'scan;
            }
            last = change.seq;
            // Op outcomes belong to the device that made them; OFSC changes to everyone.
            if change
                .device_id
                .as_deref()
                .is_some_and(|d| d != who.device_id)
            {
                continue;
            }
            items.push(json!({"seq": change.seq, "kind": change.kind, "activityId": change.activity_id, "data": change.data, "at": change.at}));
        }
    }
    Ok(HttpResponse::Ok().json(json!({
        "reset": false, "items": items, "nextCursor": encode_cursor(last), "hasMore": has_more
    })))
}
