//! The upload endpoint, a tus 1.0.0 subset at the signed grant URL: creation,
//! creation-with-upload, HEAD for the offset, PATCH to resume (with the `sha256` checksum
//! extension), expiration and termination. Bodies stream to disk; one request per upload at
//! a time. After the last byte, `finish.rs` checks and keeps the file.

use super::ApiError;
use crate::features::uploads::sink::{self, Held, Sink};
use crate::features::uploads::{self, grant, Attachment, UploadState};
use crate::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine;
use chrono::Utc;
use futures_util::StreamExt;
use std::io::{Seek, SeekFrom};

pub const OFFSET_OCTET_STREAM: &str = "application/offset+octet-stream";

pub fn err(status: u16, code: &'static str, detail: impl Into<String>) -> ApiError {
    ApiError::Upload {
        status,
        code,
        detail: detail.into(),
    }
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Checks the protocol version, the grant in the URL and the upload's life; returns the
/// upload. Every failure is a problem body; nothing about the grant is logged.
fn admit(state: &AppState, req: &HttpRequest, id: &str) -> Result<Attachment, ApiError> {
    if header(req, "tus-resumable") != Some("1.0.0") {
        return Err(err(412, "tus-version", "Tus-Resumable: 1.0.0 is required"));
    }
    let a = uploads::get(state.store.as_ref(), id)?.ok_or(ApiError::NotFound)?;
    let query = grant::parse_query(req.query_string())
        .ok_or_else(|| err(403, "grant-invalid", "the upload URL is malformed"))?;
    let f = grant::verify(&state.upload_keys, id, &query)
        .map_err(|e| err(403, "grant-invalid", e.to_string()))?;
    let matches = f.method == "PATCH"
        && f.user_id == a.user_id
        && f.device_id == a.device_id
        && f.size == a.size
        && f.content_type == a.content_type
        && f.sha256 == a.sha256
        && f.expires == a.grant_expires_at.timestamp();
    if !matches {
        return Err(err(
            403,
            "grant-invalid",
            "the upload URL does not match its grant",
        ));
    }
    // A grant acts for its session: logged out, revoked or disabled, the upload stops.
    if !uploads::grant_owner_live(state.store.as_ref(), &a)? {
        return Err(err(
            403,
            "grant-revoked",
            "the session that asked for this upload was signed out or revoked",
        ));
    }
    let now = Utc::now();
    if a.state == UploadState::Granted && f.expires + state.uploads.skew_secs < now.timestamp() {
        return Err(err(
            403,
            "grant-expired",
            "the upload grant expired before the upload began",
        ));
    }
    if uploads::is_expired(&a, now) || a.state == UploadState::Expired {
        purge(state, a)?;
        return Err(err(
            410,
            "upload-expired",
            "the upload expired; ask for a new grant",
        ));
    }
    match a.state {
        UploadState::Terminated | UploadState::Rejected => Err(ApiError::NotFound),
        _ => Ok(a),
    }
}

/// Takes the upload for this request (one writer at a time: a second one gets 409) and
/// re-reads it under the lock; an upload that has all its bytes is not written again.
fn claim(
    state: &AppState,
    id: &str,
) -> Result<(tokio::sync::OwnedMutexGuard<()>, Attachment), ApiError> {
    let Ok(guard) = state.lanes.lock("upload", id).try_lock_owned() else {
        return Err(err(
            409,
            "upload-locked",
            "another request is writing this upload",
        ));
    };
    let a = uploads::get(state.store.as_ref(), id)?.ok_or(ApiError::NotFound)?;
    if matches!(a.state, UploadState::Complete | UploadState::Processing) {
        return Err(err(
            403,
            "grant-used",
            "this upload is complete; the grant was used",
        ));
    }
    Ok((guard, a))
}

fn purge(state: &AppState, mut a: Attachment) -> Result<(), ApiError> {
    let _ = std::fs::remove_file(state.files.partial(&a.id));
    if a.state != UploadState::Expired {
        a.state = UploadState::Expired;
        uploads::put(state.store.as_ref(), &a)?;
    }
    Ok(())
}

fn tus_headers(b: &mut actix_web::HttpResponseBuilder, a: &Attachment) {
    b.insert_header(("Tus-Resumable", "1.0.0"))
        .insert_header(("Upload-Offset", a.offset.to_string()))
        .insert_header(("Upload-Length", a.size.to_string()))
        .insert_header(("Cache-Control", "no-store"));
    if let Some(e) = a.upload_expires_at {
        b.insert_header(("Upload-Expires", e.to_rfc2822()));
    }
}

/// `HEAD /uploads/{id}`: how far it got (the full length once complete).
pub async fn head(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let a = admit(&state, &req, &path)?;
    let mut b = HttpResponse::Ok();
    tus_headers(&mut b, &a);
    Ok(b.finish())
}

/// `POST /uploads/{id}`: creation (with `Upload-Length`), optionally with the first bytes.
pub async fn create(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let a = admit(&state, &req, &path)?;
    let length: u64 = header(&req, "upload-length")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| err(400, "upload-length-required", "Upload-Length is required"))?;
    if length > a.size {
        return Err(err(
            413,
            "upload-too-large",
            format!("the grant is for {} bytes", a.size),
        ));
    }
    if length != a.size {
        return Err(err(
            400,
            "upload-length-mismatch",
            format!("the grant is for {} bytes", a.size),
        ));
    }
    let (guard, mut a) = claim(&state, &a.id)?;
    if a.state == UploadState::Granted {
        start(&state, &mut a).await?;
    }
    let with_body = header(&req, "content-type") == Some(OFFSET_OCTET_STREAM);
    if with_body && a.offset == 0 && a.state == UploadState::Uploading {
        a = append(&state, &req, a, payload, guard).await?;
    }
    let mut b = HttpResponse::Created();
    tus_headers(&mut b, &a);
    b.insert_header((
        "Location",
        format!("/uploads/{}?{}", a.id, req.query_string()),
    ));
    Ok(b.finish())
}

async fn start(state: &AppState, a: &mut Attachment) -> Result<(), ApiError> {
    tokio::fs::File::create(state.files.partial(&a.id))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    a.state = UploadState::Uploading;
    a.upload_expires_at =
        Some(Utc::now() + chrono::Duration::seconds(state.uploads.upload_ttl_secs.max(1)));
    uploads::put(state.store.as_ref(), a)?;
    state.commit.flush().await?;
    Ok(())
}

/// `PATCH /uploads/{id}`: appends at `Upload-Offset`.
pub async fn patch(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let a = admit(&state, &req, &path)?;
    if header(&req, "content-type") != Some(OFFSET_OCTET_STREAM) {
        return Err(err(
            415,
            "unsupported-media-type",
            format!("Content-Type must be {OFFSET_OCTET_STREAM}"),
        ));
    }
    let offset: u64 = header(&req, "upload-offset")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| err(400, "upload-offset-required", "Upload-Offset is required"))?;
    let (guard, mut a) = claim(&state, &a.id)?;
    if offset != a.offset {
        return Err(err(
            409,
            "offset-mismatch",
            format!("the upload is at offset {}", a.offset),
        ));
    }
    if a.state == UploadState::Granted {
        start(&state, &mut a).await?;
    }
    let a = append(&state, &req, a, payload, guard).await?;
    let mut b = HttpResponse::NoContent();
    tus_headers(&mut b, &a);
    Ok(b.finish())
}

/// `DELETE /uploads/{id}`: termination; the bytes go.
pub async fn terminate(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let a = admit(&state, &req, &path)?;
    let (_guard, mut a) = claim(&state, &a.id)?;
    let _ = tokio::fs::remove_file(state.files.partial(&a.id)).await;
    a.state = UploadState::Terminated;
    uploads::put(state.store.as_ref(), &a)?;
    state.commit.flush().await?;
    Ok(HttpResponse::NoContent()
        .insert_header(("Tus-Resumable", "1.0.0"))
        .finish())
}

/// `Upload-Checksum: sha256 <base64>`.
fn expected_checksum(req: &HttpRequest) -> Result<Option<Vec<u8>>, ApiError> {
    let Some(v) = header(req, "upload-checksum") else {
        return Ok(None);
    };
    let (algo, b64) = v.split_once(' ').ok_or_else(|| {
        err(
            400,
            "invalid-checksum",
            "Upload-Checksum is `sha256 <base64>`",
        )
    })?;
    if algo != "sha256" {
        return Err(err(
            400,
            "checksum-algorithm-unsupported",
            "only sha256 is supported",
        ));
    }
    base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map(Some)
        .map_err(|_| err(400, "invalid-checksum", "the checksum is not base64"))
}

/// Streams the body to the end of the partial file. The bytes received before a cut are
/// kept (the device resumes from there) unless a chunk checksum was given; a checksum
/// mismatch or an overrun leaves the offset where it was. The offset is durable (data
/// synced, record flushed) before the answer; the last byte hands over to `finish`.
async fn append(
    state: &AppState,
    req: &HttpRequest,
    mut a: Attachment,
    mut payload: web::Payload,
    lock: tokio::sync::OwnedMutexGuard<()>,
) -> Result<Attachment, ApiError> {
    let checksum = expected_checksum(req)?;
    let path = state.files.partial(&a.id);
    let io = |e: std::io::Error| ApiError::Internal(format!("writing an upload: {e}"));
    let offset = a.offset;
    // The upload's lock goes with the file into every blocking step (see `sink::Held`).
    let held = tokio::task::spawn_blocking(move || -> std::io::Result<Held> {
        let mut file = std::fs::OpenOptions::new().write(true).open(&path)?;
        // Bytes past the recorded offset are from a request that died before it was recorded.
        file.set_len(offset)?;
        file.seek(SeekFrom::Start(offset))?;
        Ok(Held::new(file, lock))
    })
    .await
    .map_err(|e| ApiError::Internal(format!("opening an upload: {e}")))?
    .map_err(io)?;
    let back_to_offset = move |f: &std::fs::File| {
        f.set_len(offset)?;
        f.sync_data()
    };
    // From offset 0, the chunk's hash is also the whole file's: no second read at the end.
    let from_start = a.offset == 0;
    let mut sink = Sink::new(held);
    let mut cut = false;
    let mut too_slow = false;
    while let Some(chunk) = payload.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) => {
                cut = true;
                too_slow = super::pacing::timed_out(&e);
                break;
            }
        };
        if a.offset + sink.received() + chunk.len() as u64 > a.size {
            let held = sink.abandon().await.map_err(io)?;
            sink::with_file(held, back_to_offset).await.map_err(io)?;
            return Err(err(
                413,
                "upload-too-large",
                format!("the upload is {} bytes", a.size),
            ));
        }
        sink.push(chunk).await.map_err(io)?;
    }
    let written = sink.received();
    let (held, digest) = sink.finish().await.map_err(io)?;
    if let Some(want) = checksum {
        if cut || digest.as_slice() != want.as_slice() {
            sink::with_file(held, back_to_offset).await.map_err(io)?;
            return Err(err(
                460,
                "checksum-mismatch",
                "the chunk's sha256 does not match Upload-Checksum",
            ));
        }
    }
    // Held to the end: the record and the checks after the last byte are under the lock too.
    let _held = sink::with_file(held, |f| f.sync_data()).await.map_err(io)?;
    a.offset += written;
    uploads::put(state.store.as_ref(), &a)?;
    state.commit.flush().await?;
    if too_slow {
        return Err(err(
            408,
            "upload-too-slow",
            format!(
                "the body arrived slower than the server's minimum rate; {} bytes are kept, resume from there",
                a.offset
            ),
        ));
    }
    if cut {
        return Err(err(
            400,
            "upload-interrupted",
            format!("the body was cut at offset {}", a.offset),
        ));
    }
    if a.offset == a.size {
        let whole = from_start.then(|| hex::encode(digest));
        return super::upload_finish::finish(state, req, a, whole).await;
    }
    Ok(a)
}
