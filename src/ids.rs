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
