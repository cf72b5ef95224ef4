//! Attachments: upload grants (`POST /activities/{id}/attachments`), the list of an
//! activity's attachments, and serving the original and thumbnail to who may see them.

use super::activities::{self, Located};
use super::ApiError;
use crate::auth::policy::{self, Function};
use crate::auth::Principal;
use crate::outbox::{self, Enqueued, IdemRecord, Submitter, IDEMPOTENCY};
use crate::state::AppState;
use crate::store::{Storage, TxExt};
use crate::uploads::{self, grant, Attachment, Kind, UploadState};
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

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

fn bad(code: &'static str, detail: impl Into<String>) -> ApiError {
    ApiError::BadRequest {
        code,
        detail: detail.into(),
    }
}

fn upload_error(status: u16, code: &'static str, detail: impl Into<String>) -> ApiError {
    ApiError::Upload {
        status,
        code,
        detail: detail.into(),
    }
}

fn validate(b: &GrantBody) -> Result<(), ApiError> {
    let rules = b.kind.rules();
    let allowed: Vec<&str> = rules
        .formats
        .iter()
        .map(|f| uploads::image_check::mime_of(*f))
        .collect();
    if !allowed.contains(&b.content_type.as_str()) {
        return Err(upload_error(
            415,
            "unsupported-image-type",
            format!("a {:?} must be one of {allowed:?}", b.kind),
        ));
    }
    if b.size == 0 || b.size > rules.max_bytes {
        return Err(upload_error(
            413,
            "upload-too-large",
            format!("size must be 1 to {} bytes", rules.max_bytes),
        ));
    }
    let hex_ok = b.sha256.len() == 64
        && b.sha256
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
    if !hex_ok {
        return Err(bad(
            "invalid-sha256",
            "sha256 is the file's SHA-256 in lowercase hex",
        ));
    }
    if let Some(name) = &b.file_name {
        if !uploads::names::acceptable(name) {
            return Err(bad(
                "invalid-file-name",
                "fileName is 1-255 characters without control or bidirectional-override \
                 characters, slashes or quotes",
            ));
        }
    }
    Ok(())
}

/// The absolute URL of an upload, signed.
fn upload_url(req: &HttpRequest, state: &AppState, a: &Attachment) -> Result<String, ApiError> {
    let key = state
        .upload_keys
        .first()
        .ok_or_else(|| ApiError::Internal("no upload signing key".into()))?;
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
        grant::sign(key, &fields).ok_or_else(|| ApiError::Internal("cannot sign".into()))?;
    let origin = super::origin::of(req, &state.origin);
    Ok(format!("{}/uploads/{}?{query}", origin.base, a.id))
}

/// `POST /activities/{activityId}/attachments`: a signed, single-use upload grant.
pub async fn create(
    state: web::Data<AppState>,
    who: Principal,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<GrantBody>,
) -> Result<HttpResponse, ApiError> {
    policy::may_use(&who, Function::FieldWrite)?;
    let raw = activities::activity_id(&path)?;
    let key = activities::idempotency_key(&req)?;
    let body = body.into_inner();
    let submitter = activities::submitter(
        &who,
        "attachment",
        key,
        &json!({"activityId": raw, "body": body}),
    )?;
    let result = submit_grant(&state, &who, &req, raw, body, submitter).await?;
    if let Enqueued::Accepted { .. } = &result {
        state.commit.flush().await?;
    }
    match result {
        Enqueued::Accepted { response, .. } => Ok(HttpResponse::Created().json(response)),
        other => activities::answer_of(other),
    }
}

/// Validates and records a grant (from the endpoint or a sync `attachment` op); the caller
/// flushes.
pub async fn submit_grant(
    state: &AppState,
    who: &Principal,
    req: &HttpRequest,
    raw: i64,
    body: GrantBody,
    submitter: Submitter,
) -> Result<Enqueued, ApiError> {
    validate(&body)?;
    let Located {
        id,
        resource,
        date,
        zone,
        ..
    } = activities::locate(state, who, raw).await?;
    let store = state.store.as_ref();
    if let Some(answer) = outbox::idempotent_answer(store, &submitter)? {
        return Ok(answer);
    }
    let now = Utc::now();
    if body.kind == Kind::Photo {
        // Each photo goes to a file property of its own; past the last one OFSC has nowhere
        // to keep it, so it is refused before the device spends its data on it.
        let taken = uploads::of_activity(store, id)?
            .iter()
            .filter(|x| {
                x.kind == Kind::Photo
                    && match x.state {
                        UploadState::Complete
                        | UploadState::Processing
                        | UploadState::Uploading => true,
                        UploadState::Granted => x.grant_expires_at > now,
                        _ => false,
                    }
            })
            .count();
        let slots = state.properties.photos.len();
        if taken >= slots {
            return Err(ApiError::Conflict {
                code: "no-photo-property",
                detail: format!(
                    "this activity already has {taken} photos, one per photo property of the tenant ({slots})"
                ),
                extra: serde_json::Value::Null,
            });
        }
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
        "upload": {"url": upload_url(req, state, &a)?, "method": "PATCH", "protocol": "tus/1.0.0",
                   "expiresAt": a.grant_expires_at},
    });
    let audit_seq = store.next_id()?;
    let ikey = outbox::idem_key(&submitter.user_id, &submitter.idempotency_key);
    let _claim = store
        .journal()
        .claims()
        .claim(vec![ikey.clone()], std::time::Duration::from_secs(2))?;
    // A request that raced this one under the same key: its answer stands.
    if let Some(earlier) = outbox::idempotent_answer(store, &submitter)? {
        return Ok(earlier);
    }
    store.append(
        "write.attachment.grant",
        crate::store::journal::Publish::default(),
        &|tx| {
            tx.put(uploads::ATTACHMENTS, &uploads::key(a.seq), &a)?;
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
            crate::audit::put_in(
                tx,
                &crate::audit::AuditEntry {
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
    Ok(Enqueued::Accepted {
        ops: vec![],
        response,
    })
}

/// An attachment as clients see it (never its grant).
pub fn attachment_json(a: &Attachment) -> Value {
    let done = a.state == UploadState::Complete;
    json!({
        "attachmentId": a.id, "activityId": a.activity_id, "kind": a.kind,
        "contentType": a.content_type, "size": a.size, "sha256": a.sha256, "fileName": a.file_name,
        "capturedAt": a.captured_at, "state": a.state, "offset": a.offset, "width": a.width,
        "height": a.height, "error": a.error, "errorCode": a.error_code, "opId": a.op_id, "label": a.label,
        "thumbnailUrl": done.then(|| format!("/attachments/{}/thumbnail", a.id)),
        "contentUrl": done.then(|| format!("/attachments/{}/content", a.id)),
    })
}

/// `GET /activities/{activityId}/attachments`.
pub async fn list(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    policy::may_use(&who, Function::ReadField)?;
    let raw = activities::activity_id(&path)?;
    let Located { id, .. } = activities::locate(&state, &who, raw).await?;
    let items: Vec<Value> = uploads::of_activity(state.store.as_ref(), id)?
        .iter()
        .map(attachment_json)
        .collect();
    Ok(HttpResponse::Ok().json(json!({"activityId": id, "items": items})))
}

/// How a served image is to be shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Saved as a file (the API: a device stores it).
    Attachment,
    /// Shown by the browser (the console's "open the full image"); the sniffed type and
    /// `nosniff` keep it an image.
    Inline,
}

pub(crate) async fn serve(
    state: &AppState,
    who: &Principal,
    id: &str,
    thumbnail: bool,
    disposition: Disposition,
) -> Result<HttpResponse, ApiError> {
    policy::may_use(who, Function::ReadField)?;
    let a = uploads::get(state.store.as_ref(), id)?.ok_or(ApiError::NotFound)?;
    policy::may_see(who, &a.resource_id, state.directory.as_ref())?;
    if a.state != UploadState::Complete {
        return Err(ApiError::NotFound);
    }
    let (path, media, name) = if thumbnail {
        (
            state.files.thumbnail(a.content_sha()),
            "image/jpeg".to_string(),
            format!("{}-thumbnail.jpg", a.id),
        )
    } else {
        let name = a.file_name.clone().unwrap_or_else(|| a.id.clone());
        let name = uploads::names::served(&name, &a.content_type);
        (
            state.files.blob(a.content_sha()),
            a.content_type.clone(),
            name,
        )
    };
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|_| ApiError::NotFound)?;
    Ok(HttpResponse::Ok()
        .content_type(media)
        .insert_header((
            "Content-Disposition",
            match disposition {
                Disposition::Attachment => format!("attachment; filename=\"{name}\""),
                Disposition::Inline => format!("inline; filename=\"{name}\""),
            },
        ))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("Cache-Control", "private, max-age=3600"))
        .body(bytes))
}

pub async fn thumbnail(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    serve(&state, &who, &path, true, Disposition::Attachment).await
}

pub async fn content(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    serve(&state, &who, &path, false, Disposition::Attachment).await
}
