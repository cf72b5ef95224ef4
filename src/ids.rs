//! The public form of sequence ids and cursors (`op_…`, `apr_…`, `dlv_…`, `aud_…`): a
//! prefix and exactly 16 lowercase hex digits, so the API spec can state the form and any
//! string of that form is a position.

pub fn format(prefix: &str, seq: u64) -> String {
    format!("{prefix}{seq:016x}")
}

pub fn parse(prefix: &str, s: &str) -> Option<u64> {
    let hex = s.strip_prefix(prefix)?;
    let exact = hex.len() == 16 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    exact.then(|| u64::from_str_radix(hex, 16).ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_form_parses() {
        assert_eq!(parse("op_", &format("op_", 42)), Some(42));
        assert_eq!(parse("op_", &format("op_", u64::MAX)), Some(u64::MAX));
        for bad in [
            "op_2a",
            "op_000000000000002A",
            "op_+00000000000002a",
            "apr_000000000000002a",
            "op_0000000000000002a",
        ] {
            assert_eq!(parse("op_", bad), None, "{bad}");
        }
    }
}

/// An OFSC resource's external id as a client may name it: 1-32 characters (OFSC's limit),
/// none of them control characters. Checked before it can reach an OFSC URL.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ResourceId(String);

impl std::ops::Deref for ResourceId {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

pub fn resource_id_ok(s: &str) -> bool {
    let n = s.chars().count();
    (1..=32).contains(&n) && !s.chars().any(char::is_control)
}

impl TryFrom<String> for ResourceId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match resource_id_ok(&s) {
            true => Ok(ResourceId(s)),
            false => Err("a resourceId is 1-32 characters, none of them control characters".into()),
        }
    }
}

impl From<ResourceId> for String {
    fn from(r: ResourceId) -> String {
        r.0
    }
}

#[cfg(test)]
mod resource_id_tests {
    use super::*;

    #[test]
    fn resource_ids_are_ofscs_length_without_control_characters() {
        assert!(resource_id_ok("tech1"));
        assert!(resource_id_ok(&"é".repeat(32)));
        assert!(!resource_id_ok(&"a".repeat(33)));
        assert!(!resource_id_ok(""));
        assert!(!resource_id_ok("a\nb"));
        let parsed: Result<ResourceId, _> = serde_json::from_str("\"x\\u0000\"");
        assert!(parsed.is_err());
    }
}
