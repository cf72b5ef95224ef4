//! Unit tests of image validation: bombs, lies about the type, truncation, orientation.

use super::*;
use crate::features::uploads::samples;

fn file(bytes: &[u8]) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), bytes).unwrap();
    f
}

fn asset(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("assets/images")
        .join(name)
}

#[test]
fn bombs_are_refused_from_their_headers() {
    for name in ["bomb-claims-100000.png", "bomb-zeros-20000.png"] {
        let r = check(&asset(name), &PHOTO);
        assert!(
            matches!(r, Err(ImageRejection::TooLarge { .. })),
            "{name}: {r:?}"
        );
    }
}

#[test]
fn the_type_comes_from_the_bytes() {
    let r = check(&asset("not-an-image.jpg"), &PHOTO);
    assert!(matches!(r, Err(ImageRejection::Unsupported(_))), "{r:?}");
    let jpeg = file(&samples::photo(64, 48, 1, None));
    let r = check(jpeg.path(), &SIGNATURE);
    assert!(
        matches!(r, Err(ImageRejection::Unsupported(_))),
        "a JPEG signature: {r:?}"
    );
}

#[test]
fn a_truncated_jpeg_is_invalid() {
    let full = samples::photo(256, 256, 2, None);
    let cut = file(&full[..full.len() / 2]);
    let r = check(cut.path(), &PHOTO);
    assert!(matches!(r, Err(ImageRejection::Invalid(_))), "{r:?}");
}

#[test]
fn thumbnails_apply_exif_orientation_and_carry_no_exif() {
    let rotated = file(&samples::photo(640, 320, 3, Some(6)));
    let c = check(rotated.path(), &PHOTO).unwrap();
    assert_eq!((c.format, c.width, c.height), (ImageFormat::Jpeg, 640, 320));
    let thumb = image::load_from_memory(&c.thumbnail).unwrap();
    assert_eq!(
        (thumb.width(), thumb.height()),
        (160, 320),
        "turned upright"
    );
    assert!(!c.thumbnail.windows(4).any(|w| w == b"Exif"));
    let sig = file(&samples::signature(600, 200));
    let c = check(sig.path(), &SIGNATURE).unwrap();
    assert_eq!(c.format, ImageFormat::Png);
}

#[test]
fn fit_makes_a_jpeg_under_the_limit() {
    let big = file(&samples::photo(1600, 1200, 4, Some(6)));
    let size = std::fs::metadata(big.path()).unwrap().len() as usize;
    let limit = size / 4;
    let small = fit(big.path(), &PHOTO, limit).unwrap();
    assert!(small.len() <= limit, "{} > {limit}", small.len());
    let img = image::load_from_memory(&small).unwrap();
    assert!(img.height() > img.width(), "orientation applied");
    assert_eq!(
        fit(big.path(), &PHOTO, limit).unwrap(),
        small,
        "deterministic"
    );
}
