//! Who a verified ID token names: the claims mapped to a fieldsync user (key, role,
//! resource), and the user record that sign-in admits, provisioning it when allowed.

use super::oidc::Claims;
use super::users::{self, User};
use super::{AuthError, Role};
use crate::config::OidcSettings;
use crate::store::Storage;
use serde_json::Value;

/// What the provider says about the person signing in.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub username: String,
    pub name: String,
    pub role: Role,
    pub resource_id: Option<String>,
}

fn refused(code: &'static str, detail: impl Into<String>) -> AuthError {
    AuthError::Refused {
        code,
        detail: detail.into(),
    }
}

/// Privilege order: with several mapped groups, the most privileged role wins.
fn rank(r: Role) -> u8 {
    match r {
        Role::Technician => 0,
        Role::Supervisor => 1,
        Role::Admin => 2,
    }
}

/// The groups a claim lists: an array of strings or one string.
fn groups(claim: Option<&Value>) -> Vec<&str> {
    match claim {
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        Some(Value::String(s)) => vec![s.as_str()],
        _ => vec![],
    }
}

/// Maps verified claims to an identity, as `[oidc]` configures. Pure: no store, no clock.
pub fn identity(settings: &OidcSettings, claims: &Claims) -> Result<Identity, AuthError> {
    let username = claims
        .get(&settings.user_claim)
        .and_then(Value::as_str)
        .map(str::to_lowercase)
        .ok_or_else(|| {
            refused(
                "sso-user-invalid",
                format!("the ID token has no {} claim", settings.user_claim),
            )
        })?;
    if !users::valid_username(&username) {
        return Err(refused(
            "sso-user-invalid",
            format!(
                "the {} claim is not a usable user name (1-64 of a-z 0-9 . _ - @)",
                settings.user_claim
            ),
        ));
    }
    if settings.user_claim == "email" && claims.get("email_verified") == Some(&Value::Bool(false)) {
        return Err(refused(
            "sso-user-invalid",
            "the provider has not verified this email address",
        ));
    }
    let role = groups(claims.get(&settings.role_claim))
        .into_iter()
        .filter_map(|g| settings.role_map.get(g).copied())
        .max_by_key(|r| rank(*r))
        .ok_or_else(|| {
            refused(
                "sso-no-role",
                "none of this user's groups is mapped to a fieldsync role",
            )
        })?;
    let resource_id = settings
        .resource_claim
        .as_ref()
        .and_then(|c| claims.get(c))
        .and_then(Value::as_str)
        .map(str::to_string);
    let name = claims
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or(&username)
        .to_string();
    Ok(Identity {
        username,
        name,
        role,
        resource_id,
    })
}

/// Applies the provider's word to a known user: its role, and its resource when the claim
/// carries one. The provider is the source of truth for both.
pub fn refreshed(mut user: User, id: &Identity) -> Result<User, AuthError> {
    user.role = id.role;
    if id.resource_id.is_some() {
        user.resource_id = id.resource_id.clone();
    }
    if user.role == Role::Technician && user.resource_id.is_none() {
        return Err(refused(
            "sso-no-resource",
            "a technician needs an OFSC resource id, and neither the ID token nor the user record has one",
        ));
    }
    Ok(user)
}

/// The user this identity signs in as: known (and enabled), or provisioned now when
/// `[oidc] provision` allows it.
pub fn admit(
    store: &dyn Storage,
    settings: &OidcSettings,
    id: &Identity,
) -> Result<User, AuthError> {
    match users::get(store, &id.username)? {
        Some(u) if u.disabled => Err(refused("user-disabled", "this user is disabled")),
        Some(u) => {
            let updated = refreshed(u.clone(), id)?;
            if updated != u {
                users::put(store, &updated)?;
            }
            Ok(updated)
        }
        None if settings.provision => users::provision(store, id),
        None => Err(refused(
            "sso-user-unknown",
            "this user is not known to fieldsync and provisioning is off",
        )),
    }
}

#[cfg(test)]
#[path = "sso_tests.rs"]
mod tests;
