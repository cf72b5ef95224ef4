//! After an upload's last byte: the whole-file hash against the grant, the image checks
//! (off the async workers, bounded and timed), then the original kept content-addressed, its
//! thumbnail, and the op that sends it to OFSC queued with the record, in one transaction.

use super::tus::err;
use super::ApiError;
use crate::outbox::{self, Enqueued, NewOp, OpKind, Submitter};
use crate::startup::{AppState, RequestId};
use crate::store::{Storage, TxExt};
use crate::uploads::image_check::{self, ImageRejection};
use crate::uploads::{self, Attachment, Kind, UploadState};
use actix_web::{HttpMessage, HttpRequest};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;
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

/// Refuses the upload: the bytes go, the record says why.
async fn reject(state: &AppState, mut a: Attachment, e: ApiError) -> Result<Attachment, ApiError> {
    let _ = tokio::fs::remove_file(state.files.partial(&a.id)).await;
    a.state = UploadState::Rejected;
    a.error = Some(e.to_string());
    uploads::put(state.store.as_ref(), &a)?;
    state.commit.flush().await?;
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

pub async fn finish(
    state: &AppState,
    req: &HttpRequest,
    a: Attachment,
) -> Result<Attachment, ApiError> {
    let partial = state.files.partial(&a.id);
    let p = partial.clone();
    let sha = tokio::task::spawn_blocking(move || file_sha256(&p))
        .await
        .map_err(internal)?
        .map_err(internal)?;
    if sha != a.sha256 {
        let e = err(
            422,
            "file-checksum-mismatch",
            "the file's SHA-256 is not the one granted",
        );
        return reject(state, a, e).await;
    }
    let permit = state
        .files
        .decodes
        .clone()
        .acquire_owned()
        .await
        .map_err(internal)?;
    let rules = *a.kind.rules();
    let p = partial.clone();
    let checking = tokio::task::spawn_blocking(move || {
        let r = image_check::check(&p, &rules);
        drop(permit);
        r
    });
    let timeout = Duration::from_secs(state.uploads.decode_timeout_secs.max(1));
    let checked = match tokio::time::timeout(timeout, checking).await {
        Err(_) => {
            let e = err(422, "decode-timeout", "the image took too long to decode");
            return reject(state, a, e).await;
        }
        Ok(joined) => match joined.map_err(internal)? {
            Ok(c) => c,
            Err(e) => return reject(state, a, rejection(e)).await,
        },
    };
    if image_check::mime_of(checked.format) != a.content_type {
        let e = err(
            415,
            "content-type-mismatch",
            format!(
                "the bytes are {}, the grant says {}",
                image_check::mime_of(checked.format),
                a.content_type
            ),
        );
        return reject(state, a, e).await;
    }
    keep(state, &a, checked.thumbnail).await?;
    let mut done = a;
    done.width = Some(checked.width);
    done.height = Some(checked.height);
    queue(state, req, done).await
}

/// Moves the original to its content address (durably) and writes the thumbnail.
async fn keep(state: &AppState, a: &Attachment, thumbnail: Vec<u8>) -> Result<(), ApiError> {
    let partial = state.files.partial(&a.id);
    let blob = state.files.blob(&a.sha256);
    let dir = state.files.blob_dir();
    let thumb = state.files.thumbnail(&a.sha256);
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        if blob.exists() {
            std::fs::remove_file(&partial)?;
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

/// The OFSC file property for the attachment: signatures one label, photos numbered.
fn label_for(state: &AppState, a: &Attachment) -> Result<String, ApiError> {
    Ok(match a.kind {
        Kind::Signature => state.uploads.signature_label.clone(),
        Kind::Photo => {
            let earlier = uploads::of_activity(state.store.as_ref(), a.activity_id)?
                .iter()
                .filter(|x| x.kind == Kind::Photo && x.state == UploadState::Complete)
                .count();
            match earlier {
                0 => state.uploads.photo_label.clone(),
                n => format!("{}_{}", state.uploads.photo_label, n + 1),
            }
        }
    })
}

async fn queue(
    state: &AppState,
    req: &HttpRequest,
    mut a: Attachment,
) -> Result<Attachment, ApiError> {
    let store = state.store.as_ref();
    let role = crate::auth::users::get(store, &a.username)?
        .map(|u| u.role)
        .unwrap_or(crate::auth::Role::Technician);
    let submitter = Submitter {
        user_id: a.user_id.clone(),
        username: a.username.clone(),
        role,
        device_id: a.device_id.clone(),
        request_id: req
            .extensions()
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default(),
        action: "upload",
        idempotency_key: format!("upload:{}", a.id),
        request_sha256: a.sha256.clone(),
        device_seq: None,
    };
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
        crate::webhooks::emit_in(
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
            trees: &[uploads::ATTACHMENTS, crate::webhooks::EVENTS],
            write: &write,
        }),
    )?;
    if let Enqueued::Accepted { ops, .. } = &result {
        a.op_id = ops.last().map(|o| o.id.clone());
    }
    state.commit.flush().await?;
    state.replayer.wake();
    state.cache.renders.touch(&a.resource_id, &a.date);
    Ok(a)
}
