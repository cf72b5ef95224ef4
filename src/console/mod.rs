//! The supervisors' console at `/console`: server-rendered pages (maud) over the same store
//! and through the same code as the API, with a cookie session, CSRF tokens on every form
//! and a strict Content-Security-Policy.

mod assets;
mod guard;
mod pages;
mod queue_page;
pub mod session;
pub mod sso;
mod team;
mod views;

pub use guard::ConsoleUser;
pub use pages::Counts;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse, ResponseError};

/// Scripts and styles only from the console's own files; nothing framed, nothing posted
/// elsewhere.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/console")
            .wrap(
                actix_web::middleware::DefaultHeaders::new()
                    .add(("Content-Security-Policy", CSP))
                    .add(("X-Content-Type-Options", "nosniff"))
                    .add(("Referrer-Policy", "same-origin"))
                    .add(("X-Frame-Options", "DENY")),
            )
            .app_data(
                web::FormConfig::default()
                    .limit(16 * 1024)
                    .error_handler(|e, _| {
                        ConsoleError::BadRequest(format!("the form could not be read: {e}")).into()
                    }),
            )
            .app_data(web::QueryConfig::default().error_handler(|e, _| {
                ConsoleError::BadRequest(format!("the address could not be read: {e}")).into()
            }))
            .route("", web::get().to(pages::home))
            .route("/", web::get().to(pages::home))
            .route("/login", web::get().to(pages::login_form))
            .route("/login", web::post().to(pages::login))
            .route("/logout", web::post().to(pages::logout))
            .route("/sso/start", web::get().to(sso::start))
            .route("/sso/callback", web::get().to(sso::callback))
            .route("/approvals", web::get().to(pages::inbox))
            .route("/approvals/rows", web::get().to(pages::inbox_rows))
            .route("/approvals/{id}", web::get().to(pages::approval))
            .route("/approvals/{id}", web::post().to(pages::decide))
            .route(
                "/attachments/{id}/{variant}",
                web::get().to(pages::attachment),
            )
            .route("/team", web::get().to(team::team))
            .route("/team/activities/{id}", web::get().to(team::stop))
            .route("/queue", web::get().to(queue_page::queue))
            .route("/queue/ops/{id}", web::post().to(queue_page::act))
            .route(
                "/queue/deliveries/{id}",
                web::post().to(queue_page::redeliver),
            )
            .route("/assets/{name}", web::get().to(assets::serve))
            .default_service(web::to(|| async {
                ConsoleError::NotFound.error_response()
            })),
    );
}

/// What a console page can fail with; each is an HTML page (or a redirect to sign in).
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("sign in first")]
    SignIn,
    #[error("{0}")]
    Forbidden(String),
    #[error("this page does not exist, or it is not yours to see")]
    NotFound,
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unavailable(String),
    /// Logged, never shown.
    #[error("something went wrong; the logs hold the cause")]
    Internal(String),
}

impl From<crate::api::ApiError> for ConsoleError {
    fn from(e: crate::api::ApiError) -> Self {
        use crate::api::ApiError as A;
        match e {
            A::NotFound => ConsoleError::NotFound,
            A::Forbidden(_) | A::Refused { .. } => ConsoleError::Forbidden(e.to_string()),
            A::Unauthorized { .. } => ConsoleError::SignIn,
            A::OfscUnavailable(_)
            | A::IdpUnavailable(_)
            | A::Unavailable(_)
            | A::UpstreamBudgetSpent { .. } => ConsoleError::Unavailable(e.to_string()),
            A::Internal(cause) => ConsoleError::Internal(cause),
            other => ConsoleError::BadRequest(other.to_string()),
        }
    }
}

impl From<crate::auth::AuthError> for ConsoleError {
    fn from(e: crate::auth::AuthError) -> Self {
        crate::api::ApiError::from(e).into()
    }
}

impl From<crate::read::query::ReadError> for ConsoleError {
    fn from(e: crate::read::query::ReadError) -> Self {
        crate::api::ApiError::from(e).into()
    }
}

impl From<crate::write::WriteError> for ConsoleError {
    fn from(e: crate::write::WriteError) -> Self {
        crate::api::ApiError::from(e).into()
    }
}

impl From<crate::store::StoreError> for ConsoleError {
    fn from(e: crate::store::StoreError) -> Self {
        ConsoleError::Internal(e.to_string())
    }
}

impl ResponseError for ConsoleError {
    fn status_code(&self) -> StatusCode {
        match self {
            ConsoleError::SignIn => StatusCode::SEE_OTHER,
            ConsoleError::Forbidden(_) => StatusCode::FORBIDDEN,
            ConsoleError::NotFound => StatusCode::NOT_FOUND,
            ConsoleError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ConsoleError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ConsoleError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ConsoleError::Internal(cause) = self {
            tracing::error!(%cause, "console: internal error");
        }
        if let ConsoleError::SignIn = self {
            return HttpResponse::SeeOther()
                .insert_header(("Location", "/console/login"))
                .finish();
        }
        let title = self
            .status_code()
            .canonical_reason()
            .unwrap_or("Error")
            .to_string();
        HttpResponse::build(self.status_code())
            .content_type("text/html; charset=utf-8")
            .insert_header(("Cache-Control", "no-store"))
            .body(views::error_page(&title, &self.to_string()).into_string())
    }
}
