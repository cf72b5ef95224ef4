//! Upload grants: URLs signed with HMAC-SHA256 over everything the upload may be (method,
//! attachment, principal, device, expiry, exact size, content type, body hash) and a key id,
//! verified in constant time. Keys rotate: every configured key verifies, the first signs.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::BTreeMap;

/// The fields a grant fixes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantFields {
    pub method: String,
    pub attachment_id: String,
    pub user_id: String,
    pub device_id: String,
    /// Unix seconds.
    pub expires: i64,
    pub size: u64,
    pub content_type: String,
    pub sha256: String,
}

/// One HMAC key, named by its id.
#[derive(Debug, Clone)]
pub struct SigningKey {
    pub kid: String,
    pub secret: Vec<u8>,
}

/// Why a grant does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    #[error("the upload URL is missing {0}")]
    Missing(&'static str),
    #[error("the upload URL names an unknown signing key")]
    UnknownKey,
    #[error("the upload URL's signature does not match")]
    BadSignature,
}

impl GrantFields {
    fn canonical(&self) -> String {
        format!(
            "fieldsync-upload-v1\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}",
            self.method,
            self.attachment_id,
            self.user_id,
            self.device_id,
            self.expires,
            self.size,
            self.content_type,
            self.sha256
        )
    }
}

fn mac(secret: &[u8], text: &str) -> Option<Hmac<Sha256>> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret).ok()?;
    m.update(text.as_bytes());
    Some(m)
}

/// The query string of a signed upload URL (without the leading `?`).
pub fn sign(key: &SigningKey, f: &GrantFields) -> Option<String> {
    let sig = hex::encode(mac(&key.secret, &f.canonical())?.finalize().into_bytes());
    let pairs = [
        ("m", f.method.as_str()),
        ("uid", f.user_id.as_str()),
        ("did", f.device_id.as_str()),
        ("exp", &f.expires.to_string()),
        ("len", &f.size.to_string()),
        ("typ", f.content_type.as_str()),
        ("sha", f.sha256.as_str()),
        ("kid", key.kid.as_str()),
        ("sig", sig.as_str()),
    ]
    .iter()
    .map(|(k, v)| format!("{k}={}", urlencoding::encode(v)))
    .collect::<Vec<_>>()
    .join("&");
    Some(pairs)
}

/// Verifies a URL's query against the keys; returns the fields it grants.
pub fn verify(
    keys: &[SigningKey],
    attachment_id: &str,
    query: &BTreeMap<String, String>,
) -> Result<GrantFields, GrantError> {
    let field = |k: &'static str| query.get(k).cloned().ok_or(GrantError::Missing(k));
    let f = GrantFields {
        method: field("m")?,
        attachment_id: attachment_id.to_string(),
        user_id: field("uid")?,
        device_id: field("did")?,
        expires: field("exp")?
            .parse()
            .map_err(|_| GrantError::BadSignature)?,
        size: field("len")?
            .parse()
            .map_err(|_| GrantError::BadSignature)?,
        content_type: field("typ")?,
        sha256: field("sha")?,
    };
    let kid = field("kid")?;
    let sig = hex::decode(field("sig")?).map_err(|_| GrantError::BadSignature)?;
    let key = keys
        .iter()
        .find(|k| k.kid == kid)
        .ok_or(GrantError::UnknownKey)?;
    let m = mac(&key.secret, &f.canonical()).ok_or(GrantError::BadSignature)?;
    // `verify_slice` compares in constant time.
    m.verify_slice(&sig).map_err(|_| GrantError::BadSignature)?;
    Ok(f)
}

/// Parses a query string into its (decoded) pairs; a repeated key makes it invalid.
pub fn parse_query(q: &str) -> Option<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = urlencoding::decode(k).ok()?.into_owned();
        let v = urlencoding::decode(&v.replace('+', " ")).ok()?.into_owned();
        if out.insert(k, v).is_some() {
            return None;
        }
    }
    Some(out)
}

#[cfg(test)]
#[path = "grant_tests.rs"]
mod tests;
