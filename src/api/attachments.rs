//! Attachments: upload grants (`POST /activities/{id}/attachments`), the list of an
//! activity's attachments, and serving the original and thumbnail to who may see them.

use super::activities;
use super::ApiError;
use crate::auth::policy::{self, Function};
use crate::auth::Principal;
use crate::features::uploads::{self, Attachment, UploadState};
use crate::state::AppState;
use crate::write::grant::GrantBody;
use crate::write::outbox::Enqueued;
use crate::write::{self, Command};
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

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
    let submitter = write::submitter(
        &who,
        "attachment",
        key,
        &json!({"activityId": raw, "body": body}),
    )?;
    let grant = Command::Grant {
        activity: raw,
        body,
        base: super::origin::of(&req, &state.origin).base,
        submitter,
    };
    let result = write::submit(&state, &who, grant).await?;
    if let Enqueued::Accepted { .. } = &result {
        state.commit.flush().await?;
    }
    match result {
        Enqueued::Accepted { response, .. } => Ok(HttpResponse::Created().json(response)),
        other => activities::answer_of(other),
    }
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
    let write::Located { id, .. } = write::locate(&state, &who, raw).await?;
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
