//! Who is using the console: the cookie's live session, turned into the same `Principal` the
//! API's handlers take; technicians are refused, forms are checked for the session's CSRF
//! token.

use super::session::{self, ConsoleSession, COOKIE};
use super::ConsoleError;
use crate::auth::{Principal, Role};
use crate::state::AppState;
use actix_web::{dev::Payload, web, FromRequest, HttpMessage, HttpRequest};
use std::future::{ready, Ready};

/// A signed-in supervisor or admin.
pub struct ConsoleUser {
    pub who: Principal,
    pub session: ConsoleSession,
}

impl ConsoleUser {
    /// Refuses a form whose CSRF token is missing or not this session's.
    pub fn check_csrf(&self, given: Option<&str>) -> Result<(), ConsoleError> {
        match given {
            Some(t) if session::csrf_ok(&self.session, t) => Ok(()),
            _ => Err(ConsoleError::Forbidden(
                "this form is stale or did not come from the console; reload the page and try again"
                    .into(),
            )),
        }
    }

    pub fn is_admin(&self) -> bool {
        self.who.role == Role::Admin
    }
}

/// Whether the request reached us over TLS (directly, or through a trusted proxy that says
/// so, or the configured public URL is https).
pub fn over_tls(req: &HttpRequest, state: &AppState) -> bool {
    crate::api::origin::of(req, &state.origin).tls
}

fn identify(req: &HttpRequest) -> Result<ConsoleUser, ConsoleError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ConsoleError::Internal("application state missing".into()))?;
    let token = req.cookie(COOKIE).ok_or(ConsoleError::SignIn)?;
    let (s, user) =
        session::find(state.store.as_ref(), token.value())?.ok_or(ConsoleError::SignIn)?;
    if user.role == Role::Technician {
        return Err(ConsoleError::Forbidden(
            "the console is for supervisors and administrators".into(),
        ));
    }
    let request_id = req
        .extensions()
        .get::<crate::api::middleware::RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    Ok(ConsoleUser {
        who: Principal {
            user_id: user.id,
            username: user.username,
            name: user.name,
            role: user.role,
            resource_id: user.resource_id,
            oversees: user.oversees,
            oversees_parent: user.oversees_parent,
            device_id: "console".into(),
            family: format!(
                "console:{}",
                &hex::encode(crate::store::record::sha256(s.csrf.as_bytes()))[..12]
            ),
            request_id,
            client_request_id: None,
        },
        session: s,
    })
}

impl FromRequest for ConsoleUser {
    type Error = ConsoleError;
    type Future = Ready<Result<ConsoleUser, ConsoleError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(identify(req))
    }
}
