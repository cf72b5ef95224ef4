//! After an upload's last byte. On the request path, only what is cheap: the whole-file hash
//! against the grant and the inspection (magic bytes, end marker, header dimensions), which
//! already refuses every bomb; then the upload is `processing`, durably, and the device is
//! answered. In the background, on the niced decode threads and under a CPU-time limit: the
//! full decode and the thumbnail, then the original kept content-addressed and the op that
//! sends it to OFSC queued with the record in one journal record (or the upload refused, and
//! the device told).

use super::tus::err;
use super::ApiError;
use crate::api::middleware::RequestId;
use crate::features::uploads::decoder::DecoderError;
use crate::features::uploads::image_check::{self, ImageRejection};
use crate::features::uploads::{self, Attachment, Kind, UploadState};
use crate::state::AppState;
use crate::store::{Storage, TxExt};
use crate::write::outbox::{self, change_key, Change, Enqueued, NewOp, OpKind, Submitter, CHANGES};
use actix_web::{web, HttpMessage, HttpRequest};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn file_sha256(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(e.to_string())
}

/// Refuses the upload: the bytes go, the record says why, and the device hears it through
/// sync pull (it may have been answered before the decode failed).
async fn refuse(state: &AppState, mut a: Attachment, e: &ApiError) -> Result<(), ApiError> {
    let _ = tokio::fs::remove_file(state.files.partial(&a.id)).await;
    a.state = UploadState::Rejected;
    a.error = Some(e.to_string());
    a.error_code = Some(e.code().to_string());
    let store = state.store.as_ref();
    let ticket = store.ticket()?;
    let change = Change {
        seq: ticket.id,
        resource_id: a.resource_id.clone(),
        kind: "attachment".into(),
        device_id: Some(a.device_id.clone()),
        activity_id: Some(a.activity_id),
        data: json!({"attachmentId": a.id, "state": a.state, "error": a.error, "errorCode": a.error_code}),
        at: chrono::Utc::now(),
    };
    let cseq = ticket.id;
    let publish = crate::store::journal::Publish {
        tickets: vec![ticket],
        ops: Vec::new(),
    };
    store.append("upload.refused", publish, &|tx| {
        tx.put(uploads::ATTACHMENTS, &uploads::key(a.seq), &a)?;
        tx.put(CHANGES, &change_key(&a.resource_id, cseq), &change)
    })?;
    state.commit.flush().await?;
    Ok(())
}

async fn reject(state: &AppState, a: Attachment, e: ApiError) -> Result<Attachment, ApiError> {
    refuse(state, a, &e).await?;
    Err(e)
}

fn rejection(e: ImageRejection) -> ApiError {
    match e {
        ImageRejection::Unsupported(_) => err(415, "unsupported-image", e.to_string()),
        ImageRejection::TooLarge { .. } => err(422, "image-too-large", e.to_string()),
        ImageRejection::Invalid(_) => err(422, "invalid-image", e.to_string()),
        ImageRejection::Io(e) => ApiError::Internal(e),
    }
}

/// Checks the last byte's upload and hands it to the background. `whole_sha256` is the hash
/// taken while streaming, when one request carried the whole file; otherwise the file is
/// read back.
pub async fn finish(
    state: &AppState,
    req: &HttpRequest,
    mut a: Attachment,
    whole_sha256: Option<String>,
) -> Result<Attachment, ApiError> {
    let partial = state.files.partial(&a.id);
    let sha = match whole_sha256 {
        Some(sha) => sha,
        None => {
            let p = partial.clone();
            tokio::task::spawn_blocking(move || file_sha256(&p))
                .await
                .map_err(internal)?
                .map_err(internal)?
        }
    };
    if sha != a.sha256 {
        let e = err(
            422,
            "file-checksum-mismatch",
            "the file's SHA-256 is not the one granted",
        );
        return reject(state, a, e).await;
    }
    let rules = *a.kind.rules();
    let p = partial.clone();
    let inspected = match tokio::task::spawn_blocking(move || image_check::inspect(&p, &rules))
        .await
        .map_err(internal)?
    {
        Ok(i) => i,
        Err(e) => return reject(state, a, rejection(e)).await,
    };
    if image_check::mime_of(inspected.format) != a.content_type {
        let e = err(
            415,
            "content-type-mismatch",
            format!(
                "the bytes are {}, the grant says {}",
                image_check::mime_of(inspected.format),
                a.content_type
            ),
        );
        return reject(state, a, e).await;
    }
    a.width = Some(inspected.width);
    a.height = Some(inspected.height);
    a.state = UploadState::Processing;
    a.request_id = req.extensions().get::<RequestId>().map(|r| r.0.clone());
    uploads::put(state.store.as_ref(), &a)?;
    state.commit.flush().await?;
    // A send fails only while the process stops; the start-up scan picks the upload up.
    let _ = state.processing.send(a.id.clone());
    Ok(a)
}

/// The background half: every upload left `processing` at start, then each new one.
pub async fn process_uploads(
    state: web::Data<AppState>,
    mut next: tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    let waiting = match processing(state.store.as_ref()) {
        Ok(ids) => ids,
        Err(e) => {
            tracing::error!(error = %e, "listing uploads left processing");
            vec![]
        }
    };
    for id in waiting {
        tokio::spawn(process_logged(state.clone(), id));
    }
    while let Some(id) = next.recv().await {
        tokio::spawn(process_logged(state.clone(), id));
    }
}

fn processing(store: &dyn Storage) -> Result<Vec<String>, crate::store::StoreError> {
    let mut ids = Vec::new();
    crate::store::scan_pages(store, uploads::ATTACHMENTS, b"", 1024, &mut |k, v| {
        if let Ok(a) = crate::store::record::open::<Attachment>(uploads::ATTACHMENTS, k, v) {
            if a.state == UploadState::Processing {
                ids.push(a.id);
            }
        }
        Ok(true)
    })?;
    Ok(ids)
}

async fn process_logged(state: web::Data<AppState>, id: String) {
    // A failure here is ours (disk, store), not the image's: try again a few times, then
    // leave it `processing` for the next start.
    let mut wait = Duration::from_secs(1);
    for attempt in 1..=5 {
        match process(&state, &id).await {
            Ok(()) => return,
            Err(e) => {
                tracing::error!(attachment = %id, attempt, error = %e, "processing an upload failed");
            }
        }
        tokio::time::sleep(wait).await;
        wait *= 4;
    }
}

/// Where the original is: still at its partial path, or already at its content address
/// when a crash came between the move and the op.
fn source_of(state: &AppState, a: &Attachment) -> PathBuf {
    let partial = state.files.partial(&a.id);
    if partial.exists() {
        partial
    } else {
        state.files.blob(a.content_sha())
    }
}

async fn process(state: &AppState, id: &str) -> Result<(), ApiError> {
    let Some(a) = uploads::get(state.store.as_ref(), id)? else {
        return Ok(());
    };
    if a.state != UploadState::Processing {
        return Ok(());
    }
    // Revoked between the last byte and now: nothing goes to OFSC in its name.
    if !uploads::grant_owner_live(state.store.as_ref(), &a)? {
        let e = err(
            403,
            "grant-revoked",
            "the session that asked for this upload was signed out or revoked",
        );
        return refuse(state, a, &e).await;
    }
    let rules = *a.kind.rules();
    // `finish` inspected the bytes and matched their type to the grant's before recording
    // the upload `processing`: the granted type names the format.
    let format = image::ImageFormat::from_mime_type(&a.content_type)
        .ok_or_else(|| internal(format!("no image format for {}", a.content_type)))?;
    let a = cut_trailer(state, a, format).await?;
    let source = source_of(state, &a);
    let cpu = Duration::from_millis(state.uploads.decode_timeout_ms.max(1));
    let decoded = state
        .files
        .decoder
        .run_limited(move || image_check::thumbnail(&source, format, &rules), cpu)
        .await;
    let thumbnail = match decoded {
        Err(DecoderError::OverTime) => {
            let e = err(422, "decode-timeout", "the image took too long to decode");
            return refuse(state, a, &e).await;
        }
        Err(e) => return Err(internal(e)),
        Ok(Ok(t)) => t,
        Ok(Err(ImageRejection::Io(e))) => return Err(ApiError::Internal(e)),
        Ok(Err(e)) => return refuse(state, a, &rejection(e)).await,
    };
    keep(state, &a, thumbnail).await?;
    queue(state, a).await
}

/// Cuts off anything after the image's end marker, before the original is kept. While the
/// bytes are still at their partial path and no kept hash is recorded, the file is
/// truncated to the image (durably) and hashed; a hash other than the one sent is recorded
/// (flushed) before the move, so a crash in between finds the truncated file and records
/// the same hash again.
async fn cut_trailer(
    state: &AppState,
    mut a: Attachment,
    format: image::ImageFormat,
) -> Result<Attachment, ApiError> {
    let partial = state.files.partial(&a.id);
    if a.stored_sha256.is_some() || !partial.exists() {
        return Ok(a);
    }
    let p = partial.clone();
    let kept = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
        let bytes = std::fs::read(&p)?;
        let end = uploads::trailer::image_end(&bytes, format).unwrap_or(bytes.len());
        if end < bytes.len() {
            let f = std::fs::OpenOptions::new().write(true).open(&p)?;
            f.set_len(end as u64)?;
            f.sync_all()?;
        }
        Ok(hex::encode(crate::store::record::sha256(&bytes[..end])))
    })
    .await
    .map_err(internal)?
    .map_err(internal)?;
    if kept != a.sha256 {
        tracing::info!(attachment = %a.id, "cut trailing data after the image's end");
        a.stored_sha256 = Some(kept);
        uploads::put(state.store.as_ref(), &a)?;
        state.commit.flush().await?;
    }
    Ok(a)
}

/// Moves the original to its content address (durably) and writes the thumbnail.
async fn keep(state: &AppState, a: &Attachment, thumbnail: Vec<u8>) -> Result<(), ApiError> {
    let partial = state.files.partial(&a.id);
    let blob = state.files.blob(a.content_sha());
    let dir = state.files.blob_dir();
    let thumb = state.files.thumbnail(a.content_sha());
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        if blob.exists() {
            match std::fs::remove_file(&partial) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        } else {
            std::fs::rename(&partial, &blob)?;
            std::fs::File::open(&dir)?.sync_all()?;
        }
        std::fs::write(&thumb, thumbnail)
    })
    .await
    .map_err(internal)?
    .map_err(internal)
}

/// The OFSC file property for the attachment: the signature's, or the next free photo
/// property (the grant made sure there is one).
fn label_for(state: &AppState, a: &Attachment) -> Result<String, ApiError> {
    let p = &state.properties;
    Ok(match a.kind {
        Kind::Signature => p.signature.clone(),
        Kind::Photo => {
            let earlier = uploads::of_activity(state.store.as_ref(), a.activity_id)?
                .iter()
                .filter(|x| x.kind == Kind::Photo && x.state == UploadState::Complete)
                .count();
            p.photos
                .get(earlier)
                .cloned()
                .ok_or_else(|| ApiError::Conflict {
                    code: "no-photo-property",
                    detail: format!(
                        "this activity already has {earlier} photos, one per photo property of the tenant"
                    ),
                    extra: serde_json::Value::Null,
                })?
        }
    })
}

async fn queue(state: &AppState, mut a: Attachment) -> Result<(), ApiError> {
    let store = state.store.as_ref();
    let role = crate::auth::users::get(store, &a.username)?
        .map(|u| u.role)
        .unwrap_or(crate::auth::Role::Technician);
    let submitter = Submitter {
        user_id: a.user_id.clone(),
        username: a.username.clone(),
        role,
        device_id: a.device_id.clone(),
        request_id: a.request_id.clone().unwrap_or_default(),
        client_request_id: None,
        action: "upload",
        idempotency_key: format!("upload:{}", a.id),
        request_sha256: a.sha256.clone(),
        device_seq: None,
        stage: None,
    };
    // Photos are numbered in the order they complete: one at a time per route.
    let lane_lock = state.lanes.lock(&a.resource_id, &a.date);
    let guard = lane_lock.lock().await;
    let label = label_for(state, &a)?;
    a.label = Some(label.clone());
    a.state = UploadState::Complete;
    a.completed_at = Some(chrono::Utc::now());
    // The upload's own moment, not the device's capture time: a file property carries no
    // time in OFSC, and a device clock must not move the route's clock.
    let time = chrono::Utc::now().fixed_offset();
    let op = NewOp {
        resource_id: a.resource_id.clone(),
        date: a.date.clone(),
        activity_id: Some(a.activity_id),
        kind: OpKind::Attachment {
            attachment_id: a.id.clone(),
            label,
        },
        time,
        zone: a.zone.clone(),
        captured_at: Some(a.captured_at),
    };
    let event_seq = store.next_id()?;
    let write = |tx: &dyn crate::store::Tx, ops: &[outbox::Op]| {
        let mut done = a.clone();
        done.op_id = ops.last().map(|o| o.id.clone());
        tx.put(uploads::ATTACHMENTS, &uploads::key(done.seq), &done)?;
        crate::features::webhooks::emit_in(
            tx,
            event_seq,
            "upload.completed",
            json!({"attachmentId": done.id, "activityId": done.activity_id, "resourceId": done.resource_id,
                   "kind": done.kind, "size": done.size, "sha256": done.sha256, "opId": done.op_id}),
        )
    };
    let result = outbox::enqueue_with(
        store,
        &submitter,
        vec![op],
        |ops| json!({"opId": ops.last().map(|o| o.id.clone())}),
        Some(outbox::Extra {
            write: &write,
            tickets: Vec::new(),
        }),
    )?;
    // Under the lane lock: the next write on the route must not start from a kept view
    // that lacks this op.
    if let Enqueued::Accepted { .. } = result {
        state.cache.renders.touch(&a.resource_id, &a.date);
    }
    drop(guard);
    state.commit.flush().await?;
    state.replayer.wake();
    Ok(())
}
