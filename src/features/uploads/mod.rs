//! Photos and signatures: attachment records in sled, their files on disk (partial uploads,
//! content-addressed originals, thumbnails), signing keys, and the purge of abandoned uploads.

pub mod decoder;
pub mod grant;
pub mod image_check;
pub mod names;
pub mod purge;
pub mod samples;
pub mod sink;
pub mod trailer;

use crate::store::keys::{KeyBuf, KeyReader};
use crate::store::{Storage, StorageExt, StoreError, Tree};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const ATTACHMENTS: Tree = Tree("attachments");
/// (activity, seq) → seq: an activity's attachments in order.
pub const BY_ACTIVITY: Tree = Tree("attachments_by_activity");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Photo,
    Signature,
}

impl Kind {
    pub fn rules(self) -> &'static image_check::Rules {
        match self {
            Kind::Photo => &image_check::PHOTO,
            Kind::Signature => &image_check::SIGNATURE,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UploadState {
    /// Granted, no byte yet.
    Granted,
    Uploading,
    /// Every byte, durable, hashed and inspected (type, end, header dimensions): the device
    /// was answered. The full decode and the thumbnail run in the background; the op is
    /// queued once they pass.
    Processing,
    /// Every byte, checked: the original is kept and its op queued.
    Complete,
    /// Failed validation; the bytes are deleted.
    Rejected,
    /// Abandoned past its expiry; the bytes are deleted.
    Expired,
    /// Terminated by the device (tus termination).
    Terminated,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    pub id: String,
    pub seq: u64,
    pub activity_id: i64,
    pub resource_id: String,
    pub date: String,
    pub zone: Option<String>,
    pub kind: Kind,
    pub content_type: String,
    pub size: u64,
    pub sha256: String,
    pub file_name: Option<String>,
    pub captured_at: DateTime<chrono::FixedOffset>,
    pub user_id: String,
    pub username: String,
    pub device_id: String,
    pub state: UploadState,
    pub offset: u64,
    pub grant_expires_at: DateTime<Utc>,
    pub upload_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub error: Option<String>,
    /// The problem code of `error` (`invalid-image`, `decode-timeout`...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// The op that sends it to OFSC, once complete.
    pub op_id: Option<String>,
    pub label: Option<String>,
    /// The request that delivered the last byte, for the audit entry of the queued op.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The session (refresh family) that asked for the grant: the upload proceeds, and
    /// replays, only while it can still act.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// The SHA-256 of the bytes kept, when they are not the bytes sent: trailing data after
    /// the image's end was cut off (`trailer`). `sha256` stays what the device sent (the
    /// grant signs it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_sha256: Option<String>,
}

impl Attachment {
    /// The content address of the kept original and its thumbnail.
    pub fn content_sha(&self) -> &str {
        self.stored_sha256.as_deref().unwrap_or(&self.sha256)
    }
}

/// Whether whoever asked for the upload's grant can still act: its session is live (not
/// logged out or revoked, the user enabled, no password change since), and is that user's.
/// An upload granted before sessions were recorded needs its user enabled.
pub fn grant_owner_live(
    store: &dyn crate::store::Storage,
    a: &Attachment,
) -> Result<bool, crate::auth::AuthError> {
    match &a.session {
        Some(family) => Ok(crate::auth::refresh::live(store, family)?
            .is_some_and(|(_, user)| user.id == a.user_id)),
        None => Ok(crate::auth::users::get(store, &a.username)?
            .is_some_and(|u| !u.disabled && u.id == a.user_id)),
    }
}

pub fn attachment_id(seq: u64) -> String {
    format!("att_{seq:016x}")
}

pub fn attachment_seq(id: &str) -> Option<u64> {
    u64::from_str_radix(id.strip_prefix("att_")?, 16).ok()
}

pub fn key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

pub fn by_activity_key(activity: i64, seq: u64) -> Vec<u8> {
    KeyBuf::new().u64(activity as u64).u64(seq).finish()
}

pub fn get(store: &dyn Storage, id: &str) -> Result<Option<Attachment>, StoreError> {
    match attachment_seq(id) {
        Some(seq) => store.get(ATTACHMENTS, &key(seq)),
        None => Ok(None),
    }
}

pub fn put(store: &dyn Storage, a: &Attachment) -> Result<(), StoreError> {
    store.put(ATTACHMENTS, &key(a.seq), a)
}

/// An activity's attachments, oldest first.
pub fn of_activity(store: &dyn Storage, activity: i64) -> Result<Vec<Attachment>, StoreError> {
    let prefix = KeyBuf::new().u64(activity as u64).finish();
    let mut out = Vec::new();
    for (k, _) in store.scan_raw(BY_ACTIVITY, &prefix, None, usize::MAX)? {
        let mut r = KeyReader::new(&k);
        let (Ok(_), Ok(seq)) = (r.u64(), r.u64()) else {
            continue;
        };
        if let Some(a) = store.get::<Attachment>(ATTACHMENTS, &key(seq))? {
            out.push(a);
        }
    }
    Ok(out)
}

/// Where the bytes live under the data directory.
#[derive(Debug, Clone)]
pub struct Files {
    root: PathBuf,
    /// Image decodes, for uploads and replay alike: a few at once (each may take a few
    /// hundred MB), at a lowered priority.
    pub decoder: std::sync::Arc<decoder::Decoder>,
}

impl Files {
    pub fn new(data_dir: &Path, max_decodes: usize, decode_nice: i32) -> std::io::Result<Files> {
        let root = data_dir.join("files");
        for sub in ["partial", "blobs", "thumbs"] {
            std::fs::create_dir_all(root.join(sub))?;
        }
        Ok(Files {
            root,
            decoder: std::sync::Arc::new(decoder::Decoder::start(max_decodes, decode_nice)?),
        })
    }

    pub fn partial(&self, id: &str) -> PathBuf {
        self.root.join("partial").join(id)
    }

    /// Originals are content-addressed: the same bytes are stored once.
    pub fn blob(&self, sha256: &str) -> PathBuf {
        self.root.join("blobs").join(sha256)
    }

    pub fn thumbnail(&self, sha256: &str) -> PathBuf {
        self.root.join("thumbs").join(format!("{sha256}.jpg"))
    }

    pub fn blob_dir(&self) -> PathBuf {
        self.root.join("blobs")
    }
}

/// Granted and never started past the grant's expiry, or started and not finished past the
/// upload's.
pub fn is_expired(a: &Attachment, now: DateTime<Utc>) -> bool {
    match a.state {
        UploadState::Granted => a.grant_expires_at < now,
        UploadState::Uploading => a.upload_expires_at.is_some_and(|e| e < now),
        _ => false,
    }
}

/// The signing keys: configured (the first signs), or one made at first start and kept.
pub fn signing_keys(
    store: &dyn Storage,
    configured: &[crate::config::UploadKey],
) -> Result<Vec<grant::SigningKey>, StoreError> {
    if !configured.is_empty() {
        return Ok(configured
            .iter()
            .map(|k| grant::SigningKey {
                kid: k.kid.clone(),
                secret: k.secret.expose().as_bytes().to_vec(),
            })
            .collect());
    }
    let secret = match store.get::<String>(Tree::META, b"upload_key")? {
        Some(hex_key) => hex::decode(hex_key).unwrap_or_default(),
        None => Vec::new(),
    };
    let secret = if secret.len() == 32 {
        secret
    } else {
        let k: [u8; 32] = rand::random();
        store.put(Tree::META, b"upload_key", &hex::encode(k))?;
        store.flush_blocking()?;
        k.to_vec()
    };
    Ok(vec![grant::SigningKey {
        kid: "k1".into(),
        secret,
    }])
}
