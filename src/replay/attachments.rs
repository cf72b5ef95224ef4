//! Replaying completed uploads to OFSC file properties (`PUT /activities/{id}/{label}`).
//! OFSC caps a file property at 5 MB: a larger photo is sent downscaled (deterministically,
//! so a resend is the same bytes) and the original stays here. A PUT replaces the property,
//! so a read-back compares the stored bytes' hash.

use super::Replayer;
use crate::features::uploads::{self, image_check};
use crate::ofsc::OfscError;
use crate::write::outbox::{self, Op, OpKind};

/// OFSC's limit for one file property.
pub const OFSC_FILE_LIMIT: usize = 5 * 1000 * 1000;

fn config(e: impl std::fmt::Display) -> OfscError {
    OfscError::Config(e.to_string())
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
            .map_err(config)?
            .ok_or_else(|| config(format!("{attachment_id} is gone")))?;
        let activity =
            outbox::resolve_activity(self.store.as_ref(), a.activity_id).map_err(config)?;
        if activity < 0 {
            return Err(config(
                "the activity this op is for was never created in OFSC",
            ));
        }
        let path = files.blob(a.content_sha());
        let rules = *a.kind.rules();
        let content_type = a.content_type.clone();
        let size = tokio::fs::metadata(&path).await.map_err(config)?.len() as usize;
        let (bytes, content_type) = if size <= OFSC_FILE_LIMIT {
            (tokio::fs::read(&path).await.map_err(config)?, content_type)
        } else {
            // A downscale decodes the image: it runs on the uploads' decode threads.
            let fitted = files
                .decoder
                .run(move || image_check::fit(&path, &rules, OFSC_FILE_LIMIT))
                .await
                .map_err(config)?
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
