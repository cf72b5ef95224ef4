//! The grant command: a signed, single-use upload grant for a photo or a signature (from
//! `POST …/attachments` or a sync `attachment` op), recorded with its idempotency answer and
//! audit entry in one journal record. The upload itself is `uploads`' work.

use super::context::{self, Located};
use super::outbox::{self, Enqueued, IdemRecord, Submitter, IDEMPOTENCY};
use super::WriteError;
use crate::auth::Principal;
use crate::features::uploads::{self, grant, Attachment, Kind, UploadState};
use crate::state::AppState;
use crate::store::{Storage, TxExt};
use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrantBody {
    pub kind: Kind,
    pub content_type: String,
    pub size: u64,
    pub sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    pub captured_at: DateTime<FixedOffset>,
}

fn validate(b: &GrantBody) -> Result<(), WriteError> {
    let rules = b.kind.rules();
    let allowed: Vec<&str> = rules
        .formats
        .iter()
        .map(|f| uploads::image_check::mime_of(*f))
        .collect();
    if !allowed.contains(&b.content_type.as_str()) {
        return Err(WriteError::UnsupportedType(format!(
            "a {:?} must be one of {allowed:?}",
            b.kind
        )));
    }
    if b.size == 0 || b.size > rules.max_bytes {
        return Err(WriteError::TooLarge(format!(
            "size must be 1 to {} bytes",
            rules.max_bytes
        )));
    }
    let hex_ok = b.sha256.len() == 64
        && b.sha256
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
    if !hex_ok {
        return Err(WriteError::invalid(
            "invalid-sha256",
            "sha256 is the file's SHA-256 in lowercase hex",
        ));
    }
    if let Some(name) = &b.file_name {
        if !uploads::names::acceptable(name) {
            return Err(WriteError::invalid(
                "invalid-file-name",
                "fileName is 1-255 characters without control or bidirectional-override \
                 characters, slashes or quotes",
            ));
        }
    }
    Ok(())
}

/// The absolute URL of an upload, signed.
fn upload_url(base: &str, state: &AppState, a: &Attachment) -> Result<String, WriteError> {
    let key = state
        .upload_keys
        .first()
        .ok_or_else(|| WriteError::Internal("no upload signing key".into()))?;
    let fields = grant::GrantFields {
        method: "PATCH".into(),
        attachment_id: a.id.clone(),
        user_id: a.user_id.clone(),
        device_id: a.device_id.clone(),
        expires: a.grant_expires_at.timestamp(),
        size: a.size,
        content_type: a.content_type.clone(),
        sha256: a.sha256.clone(),
    };
    let query =
        grant::sign(key, &fields).ok_or_else(|| WriteError::Internal("cannot sign".into()))?;
    Ok(format!("{base}/uploads/{}?{query}", a.id))
}

/// Validates and records a grant (from the endpoint or a sync `attachment` op); the caller
/// flushes. `base` is where the device reaches this service (`api::origin`).
pub async fn submit_grant(
    state: &AppState,
    who: &Principal,
    base: &str,
    raw: i64,
    body: GrantBody,
    submitter: Submitter,
) -> Result<Enqueued, WriteError> {
    validate(&body)?;
    let Located {
        id,
        resource,
        date,
        zone,
        ..
    } = context::locate(state, who, raw).await?;
    // Under the route's lane lock, like every write on the route: two grants racing for
    // the last photo property are judged one after the other, so at most one gets it.
    let lane_lock = state.lanes.lock(&resource, &date);
    let _lane = lane_lock.lock().await;
    let store = state.store.as_ref();
    if let Some(answer) = outbox::idempotent_answer(store, &submitter)? {
        return Ok(answer);
    }
    let now = Utc::now();
    if body.kind == Kind::Photo {
        photo_slot_free(state, id, now)?;
    }
    let seq = store.next_id()?;
    let a = Attachment {
        id: uploads::attachment_id(seq),
        seq,
        activity_id: id,
        resource_id: resource,
        date,
        zone,
        kind: body.kind,
        content_type: body.content_type,
        size: body.size,
        sha256: body.sha256,
        file_name: body.file_name,
        captured_at: body.captured_at,
        user_id: who.user_id.clone(),
        username: who.username.clone(),
        device_id: who.device_id.clone(),
        state: UploadState::Granted,
        offset: 0,
        grant_expires_at: now + chrono::Duration::seconds(state.uploads.grant_ttl_secs.max(1)),
        upload_expires_at: None,
        created_at: now,
        completed_at: None,
        width: None,
        height: None,
        error: None,
        error_code: None,
        op_id: None,
        label: None,
        request_id: None,
        session: Some(who.family.clone()),
        stored_sha256: None,
    };
    let response = json!({
        "attachmentId": a.id,
        "upload": {"url": upload_url(base, state, &a)?, "method": "PATCH", "protocol": "tus/1.0.0",
                   "expiresAt": a.grant_expires_at},
    });
    if let Some(earlier) = record(store, who, &submitter, &a, response.clone(), now)? {
        return Ok(earlier);
    }
    Ok(Enqueued::Accepted {
        ops: vec![],
        response,
    })
}

/// Each photo goes to a file property of its own; past the last one OFSC has nowhere to keep
/// it, so it is refused before the device spends its data on it.
fn photo_slot_free(
    state: &AppState,
    activity: i64,
    now: chrono::DateTime<Utc>,
) -> Result<(), WriteError> {
    let taken = uploads::of_activity(state.store.as_ref(), activity)?
        .iter()
        .filter(|x| {
            x.kind == Kind::Photo
                && match x.state {
                    UploadState::Complete | UploadState::Processing | UploadState::Uploading => {
                        true
                    }
                    UploadState::Granted => x.grant_expires_at > now,
                    _ => false,
                }
        })
        .count();
    let slots = state.properties.photos.len();
    if taken >= slots {
        return Err(WriteError::Refused {
            code: "no-photo-property",
            detail: format!(
                "this activity already has {taken} photos, one per photo property of the tenant ({slots})"
            ),
            extra: serde_json::Value::Null,
        });
    }
    Ok(())
}

/// The grant, its idempotency answer and its audit entry as one journal record, under a claim
/// on the idempotency key (a request racing this one under the same key: its answer stands).
fn record(
    store: &dyn Storage,
    who: &Principal,
    submitter: &Submitter,
    a: &Attachment,
    response: serde_json::Value,
    now: chrono::DateTime<Utc>,
) -> Result<Option<Enqueued>, WriteError> {
    let audit_seq = store.next_id()?;
    let ikey = outbox::idem_key(&submitter.user_id, &submitter.idempotency_key);
    let _claim = store
        .journal()
        .claims()
        .claim(vec![ikey.clone()], std::time::Duration::from_secs(2))?;
    // A request that raced this one under the same key: its answer stands.
    if let Some(earlier) = outbox::idempotent_answer(store, submitter)? {
        return Ok(Some(earlier));
    }
    store.append(
        "write.attachment.grant",
        crate::store::journal::Publish::default(),
        &|tx| {
            tx.put(uploads::ATTACHMENTS, &uploads::key(a.seq), a)?;
            tx.put(
                uploads::BY_ACTIVITY,
                &uploads::by_activity_key(a.activity_id, a.seq),
                &a.seq,
            )?;
            tx.put(
                IDEMPOTENCY,
                &ikey,
                &IdemRecord {
                    request_sha256: submitter.request_sha256.clone(),
                    status: 201,
                    response: response.clone(),
                    created_at: now,
                },
            )?;
            crate::features::audit::put_in(
                tx,
                &crate::features::audit::AuditEntry {
                    seq: audit_seq,
                    at: now,
                    user: who.username.clone(),
                    role: who.role,
                    device: who.device_id.clone(),
                    action: "attachment.grant".into(),
                    object: a.id.clone(),
                    resource_id: Some(a.resource_id.clone()),
                    activity_id: Some(a.activity_id),
                    request_id: who.request_id.clone(),
                    client_request_id: who.client_request_id.clone(),
                    detail: json!({"kind": a.kind, "size": a.size, "contentType": a.content_type}),
                },
            )
        },
    )?;
    Ok(None)
}
