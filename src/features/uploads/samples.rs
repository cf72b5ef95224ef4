//! Sample images for the reference client, the benchmarks and the tests: a noisy JPEG photo
//! (optionally with an EXIF orientation, as phone cameras write it) and a PNG signature.

use image::{ImageBuffer, Luma, Rgb};
use rand::{Rng, SeedableRng};

/// A `width`×`height` JPEG with noise, so it compresses like a photo. With `orientation`,
/// an EXIF APP1 segment carrying that orientation tag follows SOI.
pub fn photo(width: u32, height: u32, seed: u64, orientation: Option<u16>) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let img = ImageBuffer::from_fn(width, height, |x, y| {
        let n: u8 = rng.gen_range(0..64);
        Rgb([
            ((x * 255) / width.max(1)) as u8 ^ n,
            ((y * 255) / height.max(1)) as u8 ^ n,
            n.wrapping_mul(3),
        ])
    });
    let mut out = Vec::new();
    let encoded =
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 92).encode_image(&img);
    if encoded.is_err() {
        return Vec::new();
    }
    match orientation {
        Some(o) if out.len() > 2 => {
            let mut with = out[..2].to_vec();
            with.extend(exif_orientation(o));
            with.extend_from_slice(&out[2..]);
            with
        }
        _ => out,
    }
}

/// An APP1 Exif segment with one IFD0 entry: Orientation (0x0112) = `o`.
fn exif_orientation(o: u16) -> Vec<u8> {
    let mut tiff = b"MM\x00\x2a\x00\x00\x00\x08".to_vec();
    tiff.extend(1u16.to_be_bytes());
    tiff.extend(0x0112u16.to_be_bytes());
    tiff.extend(3u16.to_be_bytes());
    tiff.extend(1u32.to_be_bytes());
    tiff.extend(o.to_be_bytes());
    tiff.extend([0, 0]);
    tiff.extend(0u32.to_be_bytes());
    let mut body = b"Exif\x00\x00".to_vec();
    body.extend(tiff);
    let mut seg = vec![0xFF, 0xE1];
    seg.extend(((body.len() + 2) as u16).to_be_bytes());
    seg.extend(body);
    seg
}

/// A small PNG signature: a dark stroke on white.
pub fn signature(width: u32, height: u32) -> Vec<u8> {
    let img = ImageBuffer::from_fn(width, height, |x, y| {
        let wave = (height / 2) as f64 + (x as f64 / 15.0).sin() * (height / 4) as f64;
        if (y as f64 - wave).abs() < 3.0 {
            Luma([20u8])
        } else {
            Luma([255u8])
        }
    });
    let mut out = std::io::Cursor::new(Vec::new());
    match img.write_to(&mut out, image::ImageFormat::Png) {
        Ok(()) => out.into_inner(),
        Err(_) => Vec::new(),
    }
}
