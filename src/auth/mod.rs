//! Sessions and access: users, passwords, TOTP, access JWTs, refresh-token families, login
//! throttling, single sign-on through an OpenID provider, and the one policy that decides
//! who may touch what.

pub mod oidc;
pub mod password;
pub mod policy;
pub mod refresh;
pub mod sso;
pub mod throttle;
pub mod tokens;
pub mod totp;
pub mod users;

pub use policy::{Function, Principal, Role};

/// Errors of the auth layer; `api/problem.rs` maps them to HTTP.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{detail}")]
    Unauthorized { code: &'static str, detail: String },
    #[error("too many failed attempts; retry in {retry_after_secs} s")]
    Throttled { retry_after_secs: u64 },
    #[error("{0}")]
    Forbidden(String),
    /// Who the caller is, not their role, is refused (403 with this code).
    #[error("{detail}")]
    Refused { code: &'static str, detail: String },
    /// The identity provider could not be asked (discovery or keys).
    #[error("identity provider: {0}")]
    ProviderUnavailable(String),
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Invalid(String),
    #[error("storage: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("internal: {0}")]
    Internal(String),
}

impl AuthError {
    pub fn unauthorized(code: &'static str, detail: impl Into<String>) -> Self {
        AuthError::Unauthorized {
            code,
            detail: detail.into(),
        }
    }
}
