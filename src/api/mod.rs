//! The device- and supervisor-facing HTTP API: one file per resource, one error mapping.

pub(crate) mod activities;
mod activity_list;
mod admin;
pub(crate) mod approvals;
pub(crate) mod attachments;
mod audit;
mod auth;
mod health;
mod locations;
mod me;
mod metrics;
pub mod middleware;
mod ops;
pub mod origin;
pub mod pacing;
mod parts;
pub mod problem;
pub(crate) mod queue;
mod routes;
pub(crate) mod sessions;
mod sync;
mod tus;
pub mod upload_finish;
pub(crate) mod webhooks;

pub use problem::ApiError;

use actix_web::web;

/// Declares every route once: the registration and the [`ROUTES`] table that the OpenAPI and
/// authorization-matrix tests read come from the same list, so they cannot drift apart.
macro_rules! api_routes {
    ($($method:ident $path:literal => $handler:path),* $(,)?) => {
        /// Registers every route of the API, then, per path, a 405 with `Allow` for the
        /// methods it does not have.
        pub fn routes(cfg: &mut web::ServiceConfig) {
            $( cfg.route($path, web::$method().to($handler)); )*
            method_not_allowed(cfg);
        }

        /// Every (method, path) the API serves, in OpenAPI path syntax.
        pub const ROUTES: &[(&str, &str)] = &[$((stringify!($method), $path)),*];
    };
}

api_routes! {
    get "/healthz" => health::healthz,
    get "/readyz" => health::readyz,
    get "/metrics" => metrics::metrics,
    post "/sessions" => sessions::create,
    post "/sessions/refresh" => sessions::refresh,
    delete "/sessions" => sessions::delete,
    get "/me" => me::me,
    get "/resources/{resourceId}" => me::resource,
    get "/admin/users" => admin::list_users,
    get "/routes/{date}" => routes::get,
    get "/activities" => activity_list::list,
    post "/activities" => activity_list::create,
    get "/activities/{activityId}" => activities::get_one,
    patch "/activities/{activityId}/status" => activities::set_status,
    get "/activities/{activityId}/parts" => parts::list,
    post "/activities/{activityId}/parts" => parts::record,
    get "/inventory" => parts::van,
    post "/locations" => locations::record,
    post "/activities/{activityId}/attachments" => attachments::create,
    get "/activities/{activityId}/attachments" => attachments::list,
    get "/attachments/{attachmentId}/thumbnail" => attachments::thumbnail,
    get "/attachments/{attachmentId}/content" => attachments::content,
    post "/uploads/{attachmentId}" => tus::create,
    head "/uploads/{attachmentId}" => tus::head,
    patch "/uploads/{attachmentId}" => tus::patch,
    delete "/uploads/{attachmentId}" => tus::terminate,
    get "/ops/{opId}" => ops::get,
    post "/sync/push" => sync::push,
    get "/sync/pull" => sync::pull,
    get "/admin/queue" => queue::summary,
    get "/admin/ops" => queue::list,
    post "/admin/ops/{opId}/retry" => queue::retry,
    post "/admin/ops/{opId}/discard" => queue::discard,
    get "/admin/quarantine" => queue::quarantine,
    get "/approvals" => approvals::list,
    get "/approvals/{approvalId}" => approvals::get_one,
    post "/approvals/{approvalId}/decision" => approvals::decide,
    get "/admin/webhooks/deliveries" => webhooks::deliveries,
    post "/admin/webhooks/deliveries/{deliveryId}/redeliver" => webhooks::redeliver,
    get "/audit" => audit::list,
}

/// A listing's `limit`: `default` when absent; outside 1..=`max` (the spec's bounds) a 400,
/// never a silently clamped answer.
pub(crate) fn page_limit(
    asked: Option<usize>,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    match asked {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::BadRequest {
            code: "invalid-query",
            detail: format!("limit must be 1 to {max}, not {n}"),
        }),
    }
}

/// After a path's own routes: any other method gets 405 with the path's `Allow`.
fn method_not_allowed(cfg: &mut web::ServiceConfig) {
    let mut paths: Vec<&str> = ROUTES.iter().map(|(_, p)| *p).collect();
    paths.sort_unstable();
    paths.dedup();
    for path in paths {
        let allow = ROUTES
            .iter()
            .filter(|(_, p)| *p == path)
            .map(|(m, _)| m.to_ascii_uppercase())
            .collect::<Vec<_>>()
            .join(", ");
        cfg.route(
            path,
            web::route().to(move || {
                let allow = allow.clone();
                async move { Err::<actix_web::HttpResponse, _>(ApiError::MethodNotAllowed { allow }) }
            }),
        );
    }
}

/// Routes that need no access token; every other route must have authorization-matrix rows.
pub const PUBLIC: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("post", "/sessions"),
    ("post", "/sessions/refresh"),
    // Authorized by the signed grant in the URL, not a bearer token.
    ("post", "/uploads/{attachmentId}"),
    ("head", "/uploads/{attachmentId}"),
    ("patch", "/uploads/{attachmentId}"),
    ("delete", "/uploads/{attachmentId}"),
];

/// Extractor configuration so malformed JSON, queries and paths get the problem envelope.
pub fn extractor_config(cfg: &mut web::ServiceConfig, max_body: usize) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(max_body)
            .error_handler(|e, _| problem::from_json_error(e).into()),
    )
    .app_data(web::QueryConfig::default().error_handler(|e, _| {
        ApiError::BadRequest {
            code: "invalid-query",
            detail: e.to_string(),
        }
        .into()
    }))
    .app_data(web::PathConfig::default().error_handler(|_, _| ApiError::NotFound.into()));
}
