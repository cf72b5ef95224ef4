//! Deleting abandoned uploads (granted or partial past their expiry), from a watermark:
//! attachments only ever leave the open states, and new ones get higher ids, so each pass
//! reads from the oldest one that may still be open instead of every photo ever taken.

use super::{is_expired, key, put, Attachment, Files, UploadState, ATTACHMENTS};
use crate::store::{Storage, StoreError};
use chrono::{DateTime, Duration, Utc};

const PAGE: usize = 1024;

/// An attachment id is taken just before its record is written: records this young may
/// still have an older neighbour on its way, so the watermark stays at or below them.
const SETTLING: Duration = Duration::minutes(5);

/// What a pass did: how many uploads it purged, and where the next pass starts.
#[derive(Debug, PartialEq, Eq)]
pub struct Pass {
    pub purged: usize,
    pub next_from: u64,
}

fn still_open(a: &Attachment) -> bool {
    matches!(a.state, UploadState::Granted | UploadState::Uploading)
}

/// Expires the abandoned uploads among the attachments from id `from` on.
pub fn purge_expired(
    store: &dyn Storage,
    files: &Files,
    now: DateTime<Utc>,
    from: u64,
) -> Result<Pass, StoreError> {
    let mut purged = 0;
    // The lowest id a later pass must still read; `None` while every record so far is done.
    let mut keep_from: Option<u64> = None;
    let mut last_seen: Option<u64> = None;
    crate::store::scan_pages(store, ATTACHMENTS, &key(from), PAGE, &mut |k, v| {
        let Ok(mut a) = crate::store::record::open::<Attachment>(ATTACHMENTS, k, v) else {
            return Ok(true);
        };
        last_seen = Some(a.seq);
        if is_expired(&a, now) {
            let _ = std::fs::remove_file(files.partial(&a.id));
            a.state = UploadState::Expired;
            put(store, &a)?;
            purged += 1;
        }
        if still_open(&a) || a.created_at > now - SETTLING {
            keep_from.get_or_insert(a.seq);
        }
        Ok(true)
    })?;
    let next_from = keep_from.unwrap_or_else(|| last_seen.map_or(from, |s| s + 1));
    Ok(Pass { purged, next_from })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SledStore;

    fn attachment(seq: u64, state: UploadState, created: DateTime<Utc>) -> Attachment {
        Attachment {
            id: super::super::attachment_id(seq),
            seq,
            activity_id: 1,
            resource_id: "tech1".into(),
            date: "2026-11-28".into(),
            zone: None,
            kind: super::super::Kind::Photo,
            content_type: "image/jpeg".into(),
            size: 10,
            sha256: "00".repeat(32),
            file_name: None,
            captured_at: created.fixed_offset(),
            user_id: "u1".into(),
            username: "tech1".into(),
            device_id: "d1".into(),
            state,
            offset: 0,
            grant_expires_at: created + Duration::minutes(15),
            upload_expires_at: (state == UploadState::Uploading)
                .then(|| created + Duration::hours(24)),
            created_at: created,
            completed_at: None,
            width: None,
            height: None,
            error: None,
            error_code: None,
            op_id: None,
            label: None,
            request_id: None,
            session: None,
            stored_sha256: None,
        }
    }

    #[test]
    fn a_pass_expires_the_abandoned_and_starts_the_next_at_the_oldest_still_open(
    ) -> Result<(), StoreError> {
        let store = SledStore::temporary()?;
        let dir = tempfile::tempdir().map_err(|e| StoreError::Aborted(e.to_string()))?;
        let files = Files::new(dir.path(), 1, 0).map_err(|e| StoreError::Aborted(e.to_string()))?;
        let now = Utc::now();
        let old = now - Duration::days(2);
        for (seq, state, created) in [
            (1, UploadState::Complete, old),
            (2, UploadState::Granted, old), // grant long expired
            (3, UploadState::Uploading, now - Duration::hours(1)), // still within its life
            (4, UploadState::Complete, old),
        ] {
            put(&store, &attachment(seq, state, created))?;
        }
        let pass = purge_expired(&store, &files, now, 0)?;
        assert_eq!(
            pass,
            Pass {
                purged: 1,
                next_from: 3
            }
        );
        let two = super::super::get(&store, &super::super::attachment_id(2))?;
        assert_eq!(two.map(|a| a.state), Some(UploadState::Expired));

        // Once the open one is done, the watermark moves past everything seen.
        put(&store, &attachment(3, UploadState::Complete, old))?;
        assert_eq!(
            purge_expired(&store, &files, now, 3)?,
            Pass {
                purged: 0,
                next_from: 5
            }
        );
        // A young record holds the watermark even when done: an older id may still land.
        put(&store, &attachment(6, UploadState::Complete, now))?;
        assert_eq!(purge_expired(&store, &files, now, 5)?.next_from, 6);
        // Nothing new: the watermark stays.
        assert_eq!(purge_expired(&store, &files, now, 7)?.next_from, 7);
        Ok(())
    }
}
