//! Users in the store: roles, resources, password hashes, TOTP secrets, disabling.

use super::policy::Role;
use super::{password, totp, AuthError};
use crate::store::{Storage, StorageExt, Tree};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub const USERS: Tree = Tree("users");

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: String,
    pub username: String,
    pub name: String,
    pub role: Role,
    /// A technician's one OFSC resource (a supervisor may also have one: their own work).
    pub resource_id: Option<String>,
    /// Resources a supervisor oversees directly.
    #[serde(default)]
    pub oversees: Vec<String>,
    /// A parent resource whose descendants a supervisor oversees.
    #[serde(default)]
    pub oversees_parent: Option<String>,
    pub password_hash: String,
    #[serde(default)]
    pub disabled: bool,
    /// Bumped on disable: sessions of an older epoch are dead.
    #[serde(default)]
    pub epoch: u32,
    #[serde(default)]
    pub totp_secret: Option<String>,
    #[serde(default)]
    pub totp_last_step: u64,
    pub created_at: DateTime<Utc>,
}

/// What `users add` takes.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub name: String,
    pub role: Role,
    pub resource_id: Option<String>,
    pub oversees: Vec<String>,
    pub oversees_parent: Option<String>,
    pub password: String,
}

fn key(username: &str) -> Vec<u8> {
    username.to_lowercase().into_bytes()
}

/// 1-64 characters of a-z, 0-9, `. _ - @`.
pub fn valid_username(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c))
}

/// Validates the role's resource rules.
pub fn validate(u: &NewUser) -> Result<(), AuthError> {
    if !valid_username(&u.username) {
        return Err(AuthError::Invalid(
            "username: 1-64 characters of a-z, 0-9, . _ - @".into(),
        ));
    }
    if u.password.len() < 4 {
        return Err(AuthError::Invalid("password: at least 4 characters".into()));
    }
    match u.role {
        Role::Technician if u.resource_id.is_none() => Err(AuthError::Invalid(
            "a technician needs exactly one resource id".into(),
        )),
        Role::Technician if !u.oversees.is_empty() || u.oversees_parent.is_some() => {
            Err(AuthError::Invalid("a technician oversees nobody".into()))
        }
        Role::Supervisor if u.oversees.is_empty() && u.oversees_parent.is_none() => {
            Err(AuthError::Invalid(
                "a supervisor needs resources to oversee or a parent resource".into(),
            ))
        }
        _ => Ok(()),
    }
}

pub fn get(store: &dyn Storage, username: &str) -> Result<Option<User>, AuthError> {
    Ok(store.get(USERS, &key(username))?)
}

pub fn list(store: &dyn Storage) -> Result<Vec<User>, AuthError> {
    store
        .scan_raw(USERS, b"", None, usize::MAX)?
        .into_iter()
        .map(|(k, v)| crate::store::record::open(USERS, &k, &v).map_err(AuthError::from))
        .collect()
}

pub fn put(store: &dyn Storage, user: &User) -> Result<(), AuthError> {
    Ok(store.put(USERS, &key(&user.username), user)?)
}

pub fn add(store: &dyn Storage, new: NewUser) -> Result<User, AuthError> {
    validate(&new)?;
    if get(store, &new.username)?.is_some() {
        return Err(AuthError::Invalid(format!(
            "user {} already exists",
            new.username
        )));
    }
    let user = User {
        id: uuid::Uuid::now_v7().to_string(),
        username: new.username,
        name: new.name,
        role: new.role,
        resource_id: new.resource_id,
        oversees: new.oversees,
        oversees_parent: new.oversees_parent,
        password_hash: password::hash(&new.password)?,
        disabled: false,
        epoch: 0,
        totp_secret: None,
        totp_last_step: 0,
        created_at: Utc::now(),
    };
    put(store, &user)?;
    Ok(user)
}

/// Creates a user at first single sign-on. It has no password (only the provider signs it
/// in); a supervisor oversees the resources under its own.
pub fn provision(store: &dyn Storage, id: &super::sso::Identity) -> Result<User, AuthError> {
    let needs_resource = matches!(id.role, Role::Technician | Role::Supervisor);
    if needs_resource && id.resource_id.is_none() {
        return Err(AuthError::Refused {
            code: "sso-no-resource",
            detail: "provisioning a technician or supervisor needs an OFSC resource id claim"
                .into(),
        });
    }
    let user = User {
        id: uuid::Uuid::now_v7().to_string(),
        username: id.username.clone(),
        name: id.name.clone(),
        role: id.role,
        resource_id: id.resource_id.clone(),
        oversees: vec![],
        oversees_parent: match id.role {
            Role::Supervisor => id.resource_id.clone(),
            _ => None,
        },
        password_hash: String::new(),
        disabled: false,
        epoch: 0,
        totp_secret: None,
        totp_last_step: 0,
        created_at: Utc::now(),
    };
    // Two first sign-ins at once: the first record stays and both sign in as it.
    let mut existing = None;
    store.update::<User>(USERS, &key(&user.username), &mut |current| match current {
        Some(u) => {
            existing = Some(u);
            Ok(None)
        }
        None => Ok(Some(user.clone())),
    })?;
    Ok(existing.unwrap_or(user))
}

fn update(
    store: &dyn Storage,
    username: &str,
    f: impl FnOnce(&mut User) -> Result<(), AuthError>,
) -> Result<User, AuthError> {
    let mut user = get(store, username)?.ok_or(AuthError::NotFound)?;
    f(&mut user)?;
    put(store, &user)?;
    Ok(user)
}

/// Disables a user and kills every session they have.
pub fn disable(store: &dyn Storage, username: &str) -> Result<User, AuthError> {
    update(store, username, |u| {
        u.disabled = true;
        u.epoch += 1;
        Ok(())
    })
}

pub fn set_password(
    store: &dyn Storage,
    username: &str,
    password: &str,
) -> Result<User, AuthError> {
    if password.len() < 4 {
        return Err(AuthError::Invalid("password: at least 4 characters".into()));
    }
    let hash = password::hash(password)?;
    update(store, username, |u| {
        u.password_hash = hash;
        u.epoch += 1;
        Ok(())
    })
}

/// Enrolls TOTP and returns the `otpauth://` URI to show once.
pub fn enroll_totp(store: &dyn Storage, username: &str) -> Result<String, AuthError> {
    let (secret, uri) = totp::enroll(username)
        .ok_or_else(|| AuthError::Internal("cannot create a TOTP secret".into()))?;
    update(store, username, |u| {
        u.totp_secret = Some(secret);
        u.totp_last_step = 0;
        Ok(())
    })?;
    Ok(uri)
}

/// Stores the TOTP step just accepted; a concurrent use of the same code loses.
pub fn record_totp_step(store: &dyn Storage, username: &str, step: u64) -> Result<(), AuthError> {
    let mut replayed = false;
    store.update::<User>(USERS, &key(username), &mut |current| {
        let Some(mut u) = current else {
            return Ok(None);
        };
        replayed = step <= u.totp_last_step;
        if replayed {
            return Ok(None);
        }
        u.totp_last_step = step;
        Ok(Some(u))
    })?;
    if replayed {
        return Err(AuthError::unauthorized(
            "totp-replayed",
            "this TOTP code was already used",
        ));
    }
    Ok(())
}

/// The demo tenant's logins, created at first start only (existing users are left alone).
pub fn seed_demo(store: &dyn Storage, password: &str) -> Result<Vec<String>, AuthError> {
    let tech = |n: &str, name: &str| NewUser {
        username: n.into(),
        name: name.into(),
        role: Role::Technician,
        resource_id: Some(n.into()),
        oversees: vec![],
        oversees_parent: None,
        password: password.into(),
    };
    let wanted = [
        tech("tech1", "Ana Torres"),
        tech("tech2", "Ben Okafor"),
        tech("tech3", "Chloe Martin"),
        NewUser {
            username: "super1".into(),
            name: "Sam Supervisor".into(),
            role: Role::Supervisor,
            resource_id: Some("super1".into()),
            oversees: vec!["tech1".into(), "tech2".into(), "tech3".into()],
            oversees_parent: None,
            password: password.into(),
        },
        NewUser {
            username: "admin".into(),
            name: "Administrator".into(),
            role: Role::Admin,
            resource_id: None,
            oversees: vec![],
            oversees_parent: None,
            password: password.into(),
        },
    ];
    let mut created = Vec::new();
    for u in wanted {
        if get(store, &u.username)?.is_none() {
            created.push(u.username.clone());
            add(store, u)?;
        }
    }
    Ok(created)
}

#[cfg(test)]
#[path = "users_tests.rs"]
mod tests;
