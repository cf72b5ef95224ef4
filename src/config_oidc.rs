//! The `[oidc]` section: single sign-on through the company's OpenID provider.

use super::{ConfigError, Secret};
use crate::auth::Role;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The signature algorithms an ID token may use. Symmetric ones are never accepted: the
/// key would be the client secret, which the device does not hold and must not.
pub const ASYMMETRIC: [&str; 8] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384",
];

/// Most clock leeway allowed: beyond it an expired token lives on noticeably.
pub const MAX_LEEWAY_SECS: u64 = 300;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OidcSettings {
    /// The provider's issuer URL, exactly as its discovery document and tokens name it.
    pub issuer: String,
    /// The client id ID tokens must be issued to (their `aud`).
    pub client_id: String,
    /// Used only by the console's server-side flow; devices are public clients.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<Secret>,
    /// The console's own client id, when the provider registers it apart from the app's
    /// (a confidential web client beside a public native one); absent: `client_id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub console_client_id: Option<String>,
    pub scopes: Vec<String>,
    /// The claim that names the fieldsync user: `sub`, `email` or `preferred_username`.
    pub user_claim: String,
    /// The claim that lists the user's groups (a string or an array of strings).
    pub role_claim: String,
    /// Group name to role; the most privileged mapped group wins.
    pub role_map: BTreeMap<String, Role>,
    /// The claim holding the OFSC resource id; absent: the user record's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_claim: Option<String>,
    /// Create unknown users at first sign-in (just-in-time provisioning).
    pub provision: bool,
    pub algorithms: Vec<String>,
    pub leeway_secs: u64,
    /// Least time between two fetches of the provider's keys, however many unknown `kid`s
    /// arrive: a flood of forged tokens cannot turn into a flood of requests to the provider.
    pub jwks_min_refresh_secs: u64,
    /// Timeout of a request to the provider.
    pub timeout_secs: u64,
    /// When above 0: a session begun with an ID token is refreshed only if, at most this
    /// often, the device shows a current access token from the provider and the provider's
    /// userinfo endpoint still answers for the same `sub` (access removed at the provider
    /// then ends the session within this interval).
    pub recheck_secs: u64,
}

impl Default for OidcSettings {
    fn default() -> Self {
        OidcSettings {
            issuer: String::new(),
            client_id: String::new(),
            client_secret: None,
            console_client_id: None,
            scopes: vec!["openid".into(), "profile".into(), "email".into()],
            user_claim: "preferred_username".into(),
            role_claim: "groups".into(),
            role_map: BTreeMap::new(),
            resource_claim: None,
            provision: false,
            algorithms: vec!["RS256".into()],
            leeway_secs: 60,
            jwks_min_refresh_secs: 30,
            timeout_secs: 5,
            recheck_secs: 0,
        }
    }
}

impl OidcSettings {
    /// The client the console's sign-in runs as.
    pub fn console_client(&self) -> &str {
        self.console_client_id.as_deref().unwrap_or(&self.client_id)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut wrong = Vec::new();
        if !(self.issuer.starts_with("https://") || self.issuer.starts_with("http://")) {
            wrong.push("oidc.issuer must be an http(s) URL".to_string());
        }
        if self.client_id.is_empty() {
            wrong.push("oidc.client_id is required".into());
        }
        if !["sub", "email", "preferred_username"].contains(&self.user_claim.as_str()) {
            wrong.push("oidc.user_claim must be sub, email or preferred_username".into());
        }
        if self.algorithms.is_empty() {
            wrong.push("oidc.algorithms must name at least one algorithm".into());
        }
        for a in &self.algorithms {
            if !ASYMMETRIC.contains(&a.as_str()) {
                wrong.push(format!(
                    "oidc.algorithms: {a} is not accepted (one of {})",
                    ASYMMETRIC.join(", ")
                ));
            }
        }
        if self.leeway_secs > MAX_LEEWAY_SECS {
            wrong.push(format!("oidc.leeway_secs is at most {MAX_LEEWAY_SECS}"));
        }
        if self.role_map.is_empty() {
            wrong.push("oidc.role_map must map at least one group to a role".into());
        }
        match wrong.is_empty() {
            true => Ok(()),
            false => Err(ConfigError(wrong.join("; "))),
        }
    }
}
