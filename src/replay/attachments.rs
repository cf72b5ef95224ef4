//! Replaying completed uploads to OFSC file properties (`PUT /activities/{id}/{label}`).
//! OFSC caps a file property at 5 MB: a larger photo is sent downscaled (deterministically,
//! so a resend is the same bytes) and the original stays here. A PUT replaces the property,
//! so a read-back compares the stored bytes' hash.

use super::Replayer;
use crate::features::uploads::decoder::DecoderError;
use crate::features::uploads::{self, image_check};
use crate::ofsc::OfscError;
use crate::write::outbox::{self, Op, OpKind};

/// OFSC's limit for one file property.
pub const OFSC_FILE_LIMIT: usize = 5 * 1000 * 1000;

/// What will fail the same way on every try (the op is rejected, with the reason).
fn config(e: impl std::fmt::Display) -> OfscError {
    OfscError::Config(e.to_string())
}

/// fieldsync's own storage failing on the way: retried, never a rejection of the op.
fn store_err(e: impl std::fmt::Display) -> OfscError {
    OfscError::Local(e.to_string())
}

/// Reading the stored photo: a file that is gone stays gone; any other I/O error (a full
/// table of open files, a disk hiccup) may pass, so it is retried.
fn file_err(e: std::io::Error) -> OfscError {
    match e.kind() {
        std::io::ErrorKind::NotFound => config(format!("the stored upload is gone: {e}")),
        _ => store_err(format!("reading the stored upload: {e}")),
    }
}

/// The downscale's decoder: stopped (the service is shutting down) is retried; a decode
/// that panicked or ran over would do so again.
fn decode_err(e: DecoderError) -> OfscError {
    match e {
        DecoderError::Stopped => store_err(e),
        DecoderError::Panicked | DecoderError::OverTime => config(e),
    }
}

/// What is sent: the bytes, their media type and the file name.
struct Payload {
    bytes: bytes::Bytes,
    content_type: String,
    file_name: Option<String>,
}

impl Replayer {
    async fn attachment_payload(&self, op: &Op) -> Result<(i64, String, Payload), OfscError> {
        let OpKind::Attachment {
            attachment_id,
            label,
        } = &op.kind
        else {
            return Err(config("not an attachment op"));
        };
        let files = self
            .files
            .clone()
            .ok_or_else(|| config("uploads are not configured"))?;
        let a = uploads::get(self.store.as_ref(), attachment_id)
            .map_err(store_err)?
            .ok_or_else(|| config(format!("{attachment_id} is gone")))?;
        let activity =
            outbox::resolve_activity(self.store.as_ref(), a.activity_id).map_err(store_err)?;
        if activity < 0 {
            return Err(config(
                "the activity this op is for was never created in OFSC",
            ));
        }
        let path = files.blob(a.content_sha());
        let rules = *a.kind.rules();
        let content_type = a.content_type.clone();
        let size = tokio::fs::metadata(&path).await.map_err(file_err)?.len() as usize;
        let (bytes, content_type) = if size <= OFSC_FILE_LIMIT {
            (
                tokio::fs::read(&path).await.map_err(file_err)?,
                content_type,
            )
        } else {
            // A downscale decodes the image: it runs on the uploads' decode threads.
            let fitted = files
                .decoder
                .run(move || image_check::fit(&path, &rules, OFSC_FILE_LIMIT))
                .await
                .map_err(decode_err)?
                .map_err(config)?;
            (fitted, "image/jpeg".to_string())
        };
        Ok((
            activity,
            label.clone(),
            Payload {
                bytes: bytes.into(),
                content_type,
                file_name: a.file_name.clone(),
            },
        ))
    }

    pub(super) async fn send_attachment(&self, op: &Op) -> Result<(), OfscError> {
        let (activity, label, p) = self.attachment_payload(op).await?;
        self.ofsc
            .put_file(
                activity,
                &label,
                p.bytes,
                &p.content_type,
                p.file_name.as_deref(),
            )
            .await
    }

    pub(super) async fn attachment_applied(&self, op: &Op) -> Result<bool, OfscError> {
        let (activity, label, p) = self.attachment_payload(op).await?;
        match self.ofsc.get_file(activity, &label).await {
            Ok(stored) => {
                Ok(crate::store::record::sha256(&stored) == crate::store::record::sha256(&p.bytes))
            }
            Err(e) if e.status() == Some(404) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ofsc::Disposition;

    #[test]
    fn what_may_pass_is_retried_and_what_cannot_rejects() {
        let retried = Disposition::Retry { after: None };
        let io = |kind| std::io::Error::new(kind, "x");
        assert_eq!(
            file_err(io(std::io::ErrorKind::NotFound)).disposition(),
            Disposition::Reject
        );
        for kind in [
            std::io::ErrorKind::Interrupted,
            std::io::ErrorKind::OutOfMemory,
            std::io::ErrorKind::Other,
        ] {
            assert_eq!(file_err(io(kind)).disposition(), retried, "{kind:?}");
        }
        assert_eq!(decode_err(DecoderError::Stopped).disposition(), retried);
        assert_eq!(
            decode_err(DecoderError::Panicked).disposition(),
            Disposition::Reject
        );
        let sled = crate::store::StoreError::Flush("disk".into());
        assert_eq!(store_err(sled).disposition(), retried);
    }
}
