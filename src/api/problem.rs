//! The one mapping from errors to RFC 9457 `application/problem+json` answers.

use actix_web::error::JsonPayloadError;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

/// Every error the API can answer with. `code` is stable: clients branch on it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{detail}")]
    BadRequest { code: &'static str, detail: String },
    #[error("the request body exceeds {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// The body did not arrive in time (`api::pacing`).
    #[error("{0}")]
    BodyTimeout(String),
    #[error("{detail}")]
    Unauthorized { code: &'static str, detail: String },
    #[error("this role may not use {0}")]
    Forbidden(String),
    /// A refusal of who the caller is rather than of their role (an SSO user fieldsync does
    /// not know, or knows as disabled).
    #[error("{detail}")]
    Refused { code: &'static str, detail: String },
    #[error("too many failed attempts; retry in {retry_after_secs} s")]
    TooManyRequests { retry_after_secs: u64 },
    /// The caller's budget of OFSC reads (cache misses) is spent.
    #[error("too many reads of what is not cached; retry in {retry_after_secs} s")]
    UpstreamBudgetSpent { retry_after_secs: u64 },
    #[error("the batch has {count} ops; at most {limit} are accepted")]
    TooManyOps { count: usize, limit: usize },
    #[error("not found")]
    NotFound,
    /// The path exists, the method does not: `allow` lists the ones it has.
    #[error("this path answers {allow} only")]
    MethodNotAllowed { allow: String },
    #[error("{detail}")]
    InvalidTransition {
        detail: String,
        allowed: Vec<String>,
    },
    /// A domain refusal other than a lifecycle move; `extra` adds fields to the problem body
    /// (for `insufficient-stock`, what is left).
    #[error("{detail}")]
    Conflict {
        code: &'static str,
        detail: String,
        extra: serde_json::Value,
    },
    /// An upload-protocol answer (tus 1.0.0) with its exact status: 403, 409, 410, 412, 413,
    /// 415, 422, 460.
    #[error("{detail}")]
    Upload {
        status: u16,
        code: &'static str,
        detail: String,
    },
    #[error("this Idempotency-Key was used with a different request")]
    IdempotencyKeyReused,
    /// A device time outside the accepted window (`domain::times`).
    #[error("{0}")]
    TimeOutOfRange(String),
    /// The cause (upstream URLs, error text) is logged, never answered.
    #[error("OFSC is unreachable and nothing is cached; the logs hold the cause under this answer's X-Request-Id")]
    OfscUnavailable(String),
    #[error("the service is not ready: {0}")]
    Unavailable(String),
    /// The identity provider could not be asked; the cause is logged, never answered.
    #[error("the identity provider is unreachable; the logs hold the cause under this answer's X-Request-Id")]
    IdpUnavailable(String),
    /// Anything unexpected. The cause is logged, never sent.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. } => code,
            ApiError::PayloadTooLarge { .. } => "payload-too-large",
            ApiError::BodyTimeout(_) => "body-timeout",
            ApiError::Unauthorized { code, .. } => code,
            ApiError::Forbidden(_) => "forbidden",
            ApiError::Refused { code, .. } => code,
            ApiError::TooManyRequests { .. } => "too-many-attempts",
            ApiError::UpstreamBudgetSpent { .. } => "upstream-budget-spent",
            ApiError::TooManyOps { .. } => "batch-too-large",
            ApiError::NotFound => "not-found",
            ApiError::MethodNotAllowed { .. } => "method-not-allowed",
            ApiError::InvalidTransition { .. } => "invalid-transition",
            ApiError::Conflict { code, .. } => code,
            ApiError::Upload { code, .. } => code,
            ApiError::IdempotencyKeyReused => "idempotency-key-reused",
            ApiError::TimeOutOfRange(_) => "time-out-of-range",
            ApiError::OfscUnavailable(_) => "ofsc-unavailable",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::IdpUnavailable(_) => "idp-unavailable",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl From<crate::domain::times::TimeRejection> for ApiError {
    fn from(e: crate::domain::times::TimeRejection) -> Self {
        ApiError::TimeOutOfRange(e.to_string())
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            // Another request under the same idempotency key is being written: resending
            // shortly gets its answer.
            crate::store::StoreError::Busy => ApiError::Conflict {
                code: "request-in-progress",
                detail: "a request with this idempotency key is being processed; retry shortly"
                    .into(),
                extra: serde_json::Value::Null,
            },
            e => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<crate::read::cache::CacheError> for ApiError {
    fn from(e: crate::read::cache::CacheError) -> Self {
        use crate::read::cache::CacheError as C;
        match e {
            C::BudgetSpent(retry_after_secs) => ApiError::UpstreamBudgetSpent { retry_after_secs },
            C::Store(e) => e.into(),
            C::Ofsc(e) => ApiError::OfscUnavailable(e.to_string()),
        }
    }
}

impl From<crate::auth::AuthError> for ApiError {
    fn from(e: crate::auth::AuthError) -> Self {
        use crate::auth::AuthError as A;
        match e {
            A::Unauthorized { code, detail } => ApiError::Unauthorized { code, detail },
            A::Throttled { retry_after_secs } => ApiError::TooManyRequests { retry_after_secs },
            A::Forbidden(what) => ApiError::Forbidden(what),
            A::Refused { code, detail } => ApiError::Refused { code, detail },
            A::ProviderUnavailable(cause) => ApiError::IdpUnavailable(cause),
            A::NotFound => ApiError::NotFound,
            A::Invalid(detail) => ApiError::BadRequest {
                code: "invalid-body",
                detail,
            },
            A::Store(e) => ApiError::Internal(e.to_string()),
            A::Internal(e) => ApiError::Internal(e),
        }
    }
}

impl From<crate::auth::policy::Denied> for ApiError {
    fn from(d: crate::auth::policy::Denied) -> Self {
        match d {
            crate::auth::policy::Denied::NotFound => ApiError::NotFound,
            crate::auth::policy::Denied::Forbidden(what) => ApiError::Forbidden(what.to_string()),
        }
    }
}

impl From<crate::read::query::ReadError> for ApiError {
    fn from(e: crate::read::query::ReadError) -> Self {
        use crate::read::query::ReadError as R;
        match e {
            R::NotFound => ApiError::NotFound,
            R::Cache(e) => e.into(),
            R::Store(e) => e.into(),
            R::Ofsc(e) => ApiError::OfscUnavailable(e.to_string()),
            e @ R::RouteNotCached { .. } => ApiError::OfscUnavailable(e.to_string()),
        }
    }
}

impl From<crate::write::WriteError> for ApiError {
    fn from(e: crate::write::WriteError) -> Self {
        use crate::write::WriteError as W;
        match e {
            W::Invalid { code, detail } => ApiError::BadRequest { code, detail },
            W::Transition { detail, allowed } => ApiError::InvalidTransition { detail, allowed },
            W::Refused {
                code,
                detail,
                extra,
            } => ApiError::Conflict {
                code,
                detail,
                extra,
            },
            W::UnsupportedType(detail) => ApiError::Upload {
                status: 415,
                code: "unsupported-image-type",
                detail,
            },
            W::TooLarge(detail) => ApiError::Upload {
                status: 413,
                code: "upload-too-large",
                detail,
            },
            W::Forbidden(what) => ApiError::Forbidden(what),
            W::Denied(d) => d.into(),
            W::Time(t) => t.into(),
            W::Read(e) => e.into(),
            W::Cache(e) => e.into(),
            W::Store(e) => e.into(),
            W::OfscUnavailable(cause) => ApiError::OfscUnavailable(cause),
            W::Internal(cause) => ApiError::Internal(cause),
        }
    }
}

pub fn from_json_error(e: JsonPayloadError) -> ApiError {
    match e {
        JsonPayloadError::Overflow { limit }
        | JsonPayloadError::OverflowKnownLength { limit, .. } => {
            ApiError::PayloadTooLarge { limit }
        }
        JsonPayloadError::Payload(e) if super::pacing::timed_out(&e) => {
            ApiError::BodyTimeout(e.to_string())
        }
        JsonPayloadError::ContentType => ApiError::BadRequest {
            code: "unsupported-media-type",
            detail: "expected Content-Type: application/json".into(),
        },
        JsonPayloadError::Deserialize(e) if e.is_data() => ApiError::BadRequest {
            code: "invalid-body",
            detail: e.to_string(),
        },
        other => ApiError::BadRequest {
            code: "malformed-json",
            detail: other.to_string(),
        },
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest {
                code: "unsupported-media-type",
                ..
            } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) | ApiError::Refused { .. } => StatusCode::FORBIDDEN,
            ApiError::TooManyRequests { .. } | ApiError::UpstreamBudgetSpent { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::TooManyOps { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::InvalidTransition { .. } | ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Upload { status, .. } => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_REQUEST)
            }
            ApiError::IdempotencyKeyReused | ApiError::TimeOutOfRange(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::OfscUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Unavailable(_) | ApiError::IdpUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        // 460 (tus "Checksum Mismatch") has no canonical reason phrase.
        let title = match status.as_u16() {
            460 => "Checksum Mismatch",
            _ => status.canonical_reason().unwrap_or("Error"),
        };
        match self {
            ApiError::Internal(cause) => tracing::error!(%cause, "internal error"),
            ApiError::OfscUnavailable(cause) => tracing::warn!(%cause, "OFSC unavailable"),
            ApiError::IdpUnavailable(cause) => {
                tracing::warn!(%cause, "identity provider unavailable")
            }
            _ => {}
        }
        let mut builder = HttpResponse::build(status);
        match self {
            ApiError::TooManyRequests { retry_after_secs }
            | ApiError::UpstreamBudgetSpent { retry_after_secs } => {
                builder.insert_header(("Retry-After", retry_after_secs.to_string()));
            }
            ApiError::Unauthorized { .. } => {
                builder.insert_header(("WWW-Authenticate", "Bearer"));
            }
            ApiError::MethodNotAllowed { allow } => {
                builder.insert_header(("Allow", allow.as_str()));
            }
            ApiError::Upload { status, .. } => {
                builder.insert_header(("Tus-Resumable", "1.0.0"));
                if *status == 412 {
                    builder.insert_header(("Tus-Version", "1.0.0"));
                }
            }
            _ => {}
        }
        let mut body = json!({
            "type": format!("https://fieldsync.dev/problems/{}", self.code()),
            "title": title,
            "status": status.as_u16(),
            "detail": self.to_string(),
            "code": self.code(),
        });
        if let ApiError::InvalidTransition { allowed, .. } = self {
            body["allowed"] = json!(allowed);
        }
        if let ApiError::Conflict {
            extra: serde_json::Value::Object(extra),
            ..
        } = self
        {
            for (k, v) in extra {
                body[k] = v.clone();
            }
        }
        builder.content_type("application/problem+json").json(body)
    }
}

/// Answers unknown paths with the problem envelope instead of an empty 404.
pub async fn not_found() -> HttpResponse {
    ApiError::NotFound.error_response()
}
