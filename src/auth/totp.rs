//! RFC 6238 TOTP (SHA-1, 6 digits, 30 s, ±1 step) with replay refusal by time step.

use totp_rs::{Algorithm, Secret, TOTP};

const STEP: u64 = 30;

#[derive(Debug, PartialEq, Eq)]
pub enum TotpCheck {
    /// Valid; the matched time step must be stored so it is never accepted again.
    Valid(u64),
    Invalid,
    Replayed,
}

fn totp(secret_b32: &str, account: &str) -> Option<TOTP> {
    let bytes = Secret::Encoded(secret_b32.to_string()).to_bytes().ok()?;
    TOTP::new(
        Algorithm::SHA1,
        6,
        1,
        STEP,
        bytes,
        Some("fieldsync".into()),
        account.to_string(),
    )
    .ok()
}

/// A new secret (base32) and its `otpauth://` URI for an authenticator app.
pub fn enroll(account: &str) -> Option<(String, String)> {
    let secret = Secret::generate_secret().to_encoded().to_string();
    let uri = totp(&secret, account)?.get_url();
    Some((secret, uri))
}

/// Checks `code` at `now` (unix seconds); `last_step` is the last step accepted for this user.
pub fn check(secret_b32: &str, code: &str, last_step: u64, now: u64) -> TotpCheck {
    let Some(t) = totp(secret_b32, "user") else {
        return TotpCheck::Invalid;
    };
    let current = now / STEP;
    for step in [current.saturating_sub(1), current, current + 1] {
        let expected = t.generate(step * STEP);
        if subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), code.trim().as_bytes()).into() {
            return if step <= last_step {
                TotpCheck::Replayed
            } else {
                TotpCheck::Valid(step)
            };
        }
    }
    TotpCheck::Invalid
}

/// The code for `now`; used by tests and the CLI's self-check.
pub fn code_at(secret_b32: &str, now: u64) -> Option<String> {
    Some(totp(secret_b32, "user")?.generate(now))
}

#[cfg(test)]
#[path = "totp_tests.rs"]
mod tests;
