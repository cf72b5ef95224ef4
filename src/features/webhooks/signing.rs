//! `Fieldsync-Signature`: HMAC-SHA256 over the timestamp and body, and its check in
//! constant time with a bound on clock skew.

use hmac::{Hmac, Mac};
use sha2::Sha256;

fn mac_of(secret: &str, t: i64, body: &[u8]) -> Option<Hmac<Sha256>> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).ok()?;
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(mac)
}

/// `Fieldsync-Signature`: `t=<unix>,v1=<hex hmac-sha256 of "t.body">`. (HMAC takes keys of
/// any length, so `None` does not happen in practice.)
pub fn signature(secret: &str, t: i64, body: &[u8]) -> Option<String> {
    let mac = mac_of(secret, t, body)?;
    Some(format!(
        "t={t},v1={}",
        hex::encode(mac.finalize().into_bytes())
    ))
}

/// Checks a signature header (for receivers and tests), in constant time.
pub fn verify(secret: &str, header: &str, body: &[u8], now: i64, tolerance_secs: i64) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", x)) => t = x.parse::<i64>().ok(),
            Some(("v1", x)) => v1 = hex::decode(x).ok(),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    // Checked: a crafted `t` (i64::MIN) must not overflow the subtraction.
    if now
        .checked_sub(t)
        .and_then(i64::checked_abs)
        .is_none_or(|skew| skew > tolerance_secs)
    {
        return false;
    }
    mac_of(secret, t, body).is_some_and(|mac| mac.verify_slice(&v1).is_ok())
}
