//! Why a command refused a write, in the write model's terms; `api::problem` maps each to
//! its HTTP answer once.

use crate::auth::policy::Denied;
use crate::domain::times::TimeRejection;
use crate::read::cache::CacheError;
use crate::read::query::ReadError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The request's own content is wrong (400): `code` is stable.
    #[error("{detail}")]
    Invalid { code: &'static str, detail: String },
    /// The lifecycle forbids the move from where the device's view of the route stands.
    #[error("{detail}")]
    Transition {
        detail: String,
        allowed: Vec<String>,
    },
    /// A domain refusal other than a lifecycle move (409); `extra` adds fields to the answer.
    #[error("{detail}")]
    Refused {
        code: &'static str,
        detail: String,
        extra: serde_json::Value,
    },
    /// An upload of a type the kind does not take.
    #[error("{0}")]
    UnsupportedType(String),
    /// An upload larger than the kind takes.
    #[error("{0}")]
    TooLarge(String),
    /// The caller may not make this write at all (their role or their account).
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error(transparent)]
    Time(#[from] TimeRejection),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// OFSC was needed to judge the write (van stock) and could not be asked.
    #[error("OFSC: {0}")]
    OfscUnavailable(String),
    #[error("{0}")]
    Internal(String),
}

impl WriteError {
    pub fn invalid(code: &'static str, detail: impl Into<String>) -> Self {
        WriteError::Invalid {
            code,
            detail: detail.into(),
        }
    }
}
