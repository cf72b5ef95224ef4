//! File names a device gives its uploads: which ones are accepted, and the name an original
//! is served under.

/// Characters that reorder how text is shown (bidi embeddings, overrides, isolates and
/// marks): in a file name they make `gpj.exe` look like `exe.jpg`.
fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

/// Whether a device's file name is acceptable: 1–255 characters, no control or bidi
/// characters, no path separators or quotes.
pub fn acceptable(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= 255
        && !name
            .chars()
            .any(|c| c.is_control() || is_bidi_control(c) || c == '/' || c == '\\' || c == '"')
}

/// The extension that goes with an image type we keep.
fn extension_of(content_type: &str) -> Option<&'static str> {
    match content_type {
        "image/jpeg" => Some("jpg"),
        "image/png" => Some("png"),
        "image/webp" => Some("webp"),
        _ => None,
    }
}

/// The name an original is served under: the device's name, its extension made to match
/// the type the bytes were checked to be (`invoice.pdf` holding a JPEG is served as
/// `invoice.jpg`), so a download never opens as something else.
pub fn served(name: &str, content_type: &str) -> String {
    let Some(ext) = extension_of(content_type) else {
        return name.to_string();
    };
    let stem = match name.rsplit_once('.') {
        Some((stem, current)) if !stem.is_empty() => {
            let same = current.eq_ignore_ascii_case(ext)
                || (ext == "jpg" && current.eq_ignore_ascii_case("jpeg"));
            if same {
                return name.to_string();
            }
            stem
        }
        _ => name,
    };
    format!("{stem}.{ext}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bidi_controls_and_separators_are_refused() {
        assert!(acceptable("door photo (1).jpg"));
        assert!(acceptable("façade.jpg"));
        assert!(!acceptable("photo\u{202E}gpj.exe"));
        assert!(!acceptable("a\u{2066}b.jpg"));
        assert!(!acceptable("a\u{200F}.jpg"));
        assert!(!acceptable("../etc/passwd"));
        assert!(!acceptable("a\"b.jpg"));
        assert!(!acceptable(""));
        assert!(!acceptable(&"x".repeat(256)));
    }

    #[test]
    fn the_served_name_carries_the_checked_types_extension() {
        assert_eq!(served("door.jpg", "image/jpeg"), "door.jpg");
        assert_eq!(served("door.JPEG", "image/jpeg"), "door.JPEG");
        assert_eq!(served("invoice.pdf", "image/jpeg"), "invoice.jpg");
        assert_eq!(served("run.exe", "image/png"), "run.png");
        assert_eq!(served("noext", "image/webp"), "noext.webp");
        assert_eq!(served(".hidden", "image/png"), ".hidden.png");
        assert_eq!(served("a.tar.gz", "image/png"), "a.tar.png");
    }
}
