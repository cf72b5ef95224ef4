//! Where an image really ends. Bytes after a JPEG's end-of-image marker or a PNG's `IEND`
//! chunk are not part of the picture: phones append vendor data there, and anything can be
//! hidden there. They are cut off before the original is kept, served or sent to OFSC.

use image::ImageFormat;

/// The length of the image proper: the offset just past its end marker. `None` when the
/// structure cannot be walked (not this format, or cut short), in which case nothing is cut.
pub fn image_end(bytes: &[u8], format: ImageFormat) -> Option<usize> {
    match format {
        ImageFormat::Jpeg => jpeg_end(bytes),
        ImageFormat::Png => png_end(bytes),
        _ => None,
    }
}

/// Walks the JPEG's marker segments by their lengths (so an EXIF thumbnail's own end marker
/// inside APP1 is skipped), and each scan's entropy-coded data up to the next real marker
/// (`FF 00` is a stuffed byte, `FF D0`–`FF D7` restart markers), until `FF D9`.
fn jpeg_end(b: &[u8]) -> Option<usize> {
    if b.get(..2)? != [0xFF, 0xD8] {
        return None;
    }
    let mut i = 2;
    loop {
        if *b.get(i)? != 0xFF {
            return None;
        }
        let marker = *b.get(i + 1)?;
        match marker {
            // A fill byte before a marker.
            0xFF => i += 1,
            0xD9 => return Some(i + 2),
            // Markers without a length.
            0x01 | 0xD0..=0xD7 => i += 2,
            _ => {
                let len = usize::from(u16::from_be_bytes([*b.get(i + 2)?, *b.get(i + 3)?]));
                if len < 2 {
                    return None;
                }
                i += 2 + len;
                if marker == 0xDA {
                    i = entropy_end(b, i)?;
                }
            }
        }
    }
}

/// The offset of the first marker after entropy-coded data starting at `i`.
fn entropy_end(b: &[u8], mut i: usize) -> Option<usize> {
    loop {
        if *b.get(i)? == 0xFF {
            match *b.get(i + 1)? {
                0x00 | 0xD0..=0xD7 => i += 2,
                _ => return Some(i),
            }
        } else {
            i += 1;
        }
    }
}

/// Walks the PNG's chunks (length, type, data, CRC) until `IEND`.
fn png_end(b: &[u8]) -> Option<usize> {
    const SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    if b.get(..8)? != SIGNATURE {
        return None;
    }
    let mut i = 8;
    loop {
        let len = u32::from_be_bytes(b.get(i..i + 4)?.try_into().ok()?) as usize;
        let kind = b.get(i + 4..i + 8)?;
        let next = i.checked_add(12)?.checked_add(len)?;
        if next > b.len() {
            return None;
        }
        if kind == b"IEND" {
            return Some(next);
        }
        i = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::uploads::samples;

    #[test]
    fn a_jpeg_ends_at_its_end_of_image_marker() {
        let photo = samples::photo(320, 240, 3, Some(6));
        assert_eq!(jpeg_end(&photo), Some(photo.len()));
        let mut trailed = photo.clone();
        // A vendor trailer that itself holds an end-of-image marker and stuffing.
        trailed.extend_from_slice(b"SEFH\xFF\xD9\xFF\x00hidden payload\xFF\xD9");
        assert_eq!(image_end(&trailed, ImageFormat::Jpeg), Some(photo.len()));
        assert_eq!(jpeg_end(&photo[..photo.len() - 2]), None, "cut short");
        assert_eq!(jpeg_end(b"\xFF\xD8\xFF"), None);
        assert_eq!(jpeg_end(b"not a jpeg"), None);
    }

    #[test]
    fn a_png_ends_after_its_iend_chunk() {
        let sig = samples::signature(200, 80);
        assert_eq!(png_end(&sig), Some(sig.len()));
        let mut trailed = sig.clone();
        trailed.extend_from_slice(b"\x00\x00\x00\x00IEND trailing");
        assert_eq!(image_end(&trailed, ImageFormat::Png), Some(sig.len()));
        assert_eq!(png_end(&sig[..sig.len() - 4]), None, "cut short");
        // A chunk length that points past the end is not walked.
        let mut bogus = sig[..8].to_vec();
        bogus.extend_from_slice(&u32::MAX.to_be_bytes());
        bogus.extend_from_slice(b"IHDR");
        assert_eq!(png_end(&bogus), None);
    }
}
