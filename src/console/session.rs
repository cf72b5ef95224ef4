//! Console sign-in state: server-side sessions behind an `HttpOnly`, `SameSite=Strict`
//! cookie, with idle and absolute expiry, and the CSRF token every form carries.

use crate::auth::users::{self, User};
use crate::auth::AuthError;
use crate::store::{record, Storage, StorageExt, Tree};
use actix_web::cookie::{Cookie, SameSite};
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

pub const COOKIE: &str = "fs_console";
/// Sessions by the SHA-256 of their cookie value: the store never holds a usable token.
pub const SESSIONS: Tree = Tree("console_sessions");
/// Signed out after this long without a request.
pub const IDLE: Duration = Duration::minutes(30);
/// Signed out this long after signing in, however busy.
pub const ABSOLUTE: Duration = Duration::hours(12);
/// `last_seen` is written at most this often, so reading pages costs no write each.
const TOUCH_EVERY: Duration = Duration::seconds(60);

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConsoleSession {
    pub username: String,
    /// The user's epoch at sign-in: disabling or a new password ends the session.
    pub epoch: u32,
    pub csrf: String,
    pub created_at: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

fn random_token() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

fn key(token: &str) -> Vec<u8> {
    hex::encode(record::sha256(token.as_bytes())).into_bytes()
}

/// Whether a session is past its idle or absolute limit at `now`. Pure.
pub fn expired(s: &ConsoleSession, now: DateTime<Utc>) -> bool {
    now - s.last_seen > IDLE || now - s.created_at > ABSOLUTE
}

/// Starts a session for `user`; answers the cookie value (shown once, never stored).
pub fn start(store: &dyn Storage, user: &User) -> Result<(String, ConsoleSession), AuthError> {
    let token = random_token();
    let now = Utc::now();
    let s = ConsoleSession {
        username: user.username.clone(),
        epoch: user.epoch,
        csrf: random_token(),
        created_at: now,
        last_seen: now,
    };
    store.put(SESSIONS, &key(&token), &s)?;
    Ok((token, s))
}

/// The live session behind a cookie value and its user, or `None` (unknown, expired,
/// user disabled or re-keyed). An expired one is deleted.
pub fn find(store: &dyn Storage, token: &str) -> Result<Option<(ConsoleSession, User)>, AuthError> {
    let k = key(token);
    let Some(mut s) = store.get::<ConsoleSession>(SESSIONS, &k)? else {
        return Ok(None);
    };
    let now = Utc::now();
    if expired(&s, now) {
        store.remove(SESSIONS, &k)?;
        return Ok(None);
    }
    let user = match users::get(store, &s.username)? {
        Some(u) if !u.disabled && u.epoch == s.epoch => u,
        _ => return Ok(None),
    };
    if now - s.last_seen > TOUCH_EVERY {
        s.last_seen = now;
        store.put(SESSIONS, &k, &s)?;
    }
    Ok(Some((s, user)))
}

/// Signs out: the record goes, so the cookie is worthless even if kept.
pub fn end(store: &dyn Storage, token: &str) -> Result<(), AuthError> {
    store.remove(SESSIONS, &key(token))?;
    Ok(())
}

/// Whether a form's CSRF token is the session's, compared in constant time.
pub fn csrf_ok(s: &ConsoleSession, given: &str) -> bool {
    subtle::ConstantTimeEq::ct_eq(s.csrf.as_bytes(), given.as_bytes()).into()
}

/// The session cookie: `Secure` whenever the request came over TLS.
pub fn cookie(token: String, secure: bool) -> Cookie<'static> {
    Cookie::build(COOKIE, token)
        .path("/console")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .finish()
}

/// A cookie that replaces the session cookie with an expired, empty one.
pub fn cleared(secure: bool) -> Cookie<'static> {
    let mut c = cookie(String::new(), secure);
    c.make_removal();
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(created_mins_ago: i64, seen_mins_ago: i64) -> ConsoleSession {
        let now = Utc::now();
        ConsoleSession {
            username: "super1".into(),
            epoch: 0,
            csrf: "c".repeat(43),
            created_at: now - Duration::minutes(created_mins_ago),
            last_seen: now - Duration::minutes(seen_mins_ago),
        }
    }

    #[test]
    fn idle_and_absolute_limits() {
        let now = Utc::now();
        assert!(!expired(&session(10, 1), now));
        assert!(expired(&session(40, 31), now), "idle");
        assert!(expired(&session(12 * 60 + 1, 0), now), "absolute");
    }

    #[test]
    fn csrf_must_match_exactly() {
        let s = session(0, 0);
        assert!(csrf_ok(&s, &s.csrf));
        assert!(!csrf_ok(&s, ""));
        assert!(!csrf_ok(&s, &"d".repeat(43)));
    }

    #[test]
    fn the_store_holds_a_hash_and_a_disabled_user_has_no_session() -> Result<(), AuthError> {
        let store = crate::store::SledStore::temporary()?;
        users::seed_demo(&store, "demo")?;
        let user = users::get(&store, "super1")?.ok_or(AuthError::NotFound)?;
        let (token, _) = start(&store, &user)?;
        assert!(store.get_raw(SESSIONS, token.as_bytes())?.is_none());
        assert!(find(&store, &token)?.is_some());
        assert!(find(&store, "forged")?.is_none());
        users::disable(&store, "super1")?;
        assert!(find(&store, &token)?.is_none());
        end(&store, &token)?;
        Ok(())
    }
}
