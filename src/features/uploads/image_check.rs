//! Image validation after the last byte, and the derived images: the type from magic bytes,
//! header dimensions checked before any decoding, decoding under explicit `image::Limits`,
//! a 320 px thumbnail with EXIF orientation applied (and no EXIF), and the downscaled copy
//! that fits OFSC's 5 MB file properties. Blocking code: callers run it off the async workers.

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};
use std::io::{BufReader, Read};
use std::path::Path;

/// What a kind of attachment may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    pub formats: &'static [ImageFormat],
    pub max_bytes: u64,
    pub max_width: u32,
    pub max_height: u32,
    pub max_pixels: u64,
}

pub const PHOTO: Rules = Rules {
    formats: &[ImageFormat::Jpeg, ImageFormat::Png, ImageFormat::WebP],
    max_bytes: 20 * 1024 * 1024,
    max_width: 8192,
    max_height: 8192,
    max_pixels: 50_000_000,
};

pub const SIGNATURE: Rules = Rules {
    formats: &[ImageFormat::Png],
    max_bytes: 512 * 1024,
    max_width: 2000,
    max_height: 1000,
    max_pixels: 2_000_000,
};

/// Longest side of a thumbnail.
pub const THUMBNAIL_SIDE: u32 = 320;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageRejection {
    #[error("the file is not an image of an accepted type ({0})")]
    Unsupported(String),
    #[error("the image is {width}x{height}; at most {max_width}x{max_height} and {max_pixels} pixels are accepted")]
    TooLarge {
        width: u32,
        height: u32,
        max_width: u32,
        max_height: u32,
        max_pixels: u64,
    },
    #[error("the image cannot be decoded: {0}")]
    Invalid(String),
    #[error("reading the upload: {0}")]
    Io(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    pub format: ImageFormat,
    pub width: u32,
    pub height: u32,
    /// JPEG bytes of the thumbnail.
    pub thumbnail: Vec<u8>,
}

pub fn mime_of(f: ImageFormat) -> &'static str {
    f.to_mime_type()
}

fn io(e: std::io::Error) -> ImageRejection {
    ImageRejection::Io(e.to_string())
}

/// The format the first bytes say, if it is one `rules` accepts.
pub fn sniff(path: &Path, rules: &Rules) -> Result<ImageFormat, ImageRejection> {
    let mut head = [0u8; 64];
    let mut f = std::fs::File::open(path).map_err(io)?;
    let n = f.read(&mut head).map_err(io)?;
    let format = image::guess_format(&head[..n])
        .map_err(|_| ImageRejection::Unsupported("unknown signature".into()))?;
    if !rules.formats.contains(&format) {
        return Err(ImageRejection::Unsupported(mime_of(format).into()));
    }
    Ok(format)
}

fn limits(rules: &Rules) -> Limits {
    let mut l = Limits::default();
    l.max_image_width = Some(rules.max_width);
    l.max_image_height = Some(rules.max_height);
    // RGBA8 of the largest accepted image, plus decoder scratch.
    l.max_alloc = Some(rules.max_pixels * 4 + 64 * 1024 * 1024);
    l
}

fn reader(
    path: &Path,
    format: ImageFormat,
) -> Result<ImageReader<BufReader<std::fs::File>>, ImageRejection> {
    let f = std::fs::File::open(path).map_err(io)?;
    Ok(ImageReader::with_format(BufReader::new(f), format))
}

/// Whether the file ends as its format requires. Some decoders pad a truncated image with
/// grey instead of failing: a JPEG must carry its end-of-image marker (phones may append
/// data after it, so the tail is searched), a PNG its `IEND` chunk.
fn ends_well(path: &Path, format: ImageFormat) -> Result<bool, ImageRejection> {
    use std::io::{Seek, SeekFrom};
    let mut f = std::fs::File::open(path).map_err(io)?;
    let len = f.metadata().map_err(io)?.len();
    let tail_len = len.min(64 * 1024);
    f.seek(SeekFrom::Start(len - tail_len)).map_err(io)?;
    let mut tail = Vec::with_capacity(tail_len as usize);
    f.take(tail_len).read_to_end(&mut tail).map_err(io)?;
    Ok(match format {
        ImageFormat::Jpeg => tail.windows(2).any(|w| w == [0xFF, 0xD9]),
        ImageFormat::Png => tail.windows(4).any(|w| w == b"IEND"),
        _ => true,
    })
}

/// What the cheap checks learn: enough to answer the upload before any pixel is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inspected {
    pub format: ImageFormat,
    pub width: u32,
    pub height: u32,
}

/// The checks that read only the head and the tail of the file: magic bytes, the end
/// marker, and the header's dimensions. Every bomb is refused here, before decoding.
pub fn inspect(path: &Path, rules: &Rules) -> Result<Inspected, ImageRejection> {
    let format = sniff(path, rules)?;
    if !ends_well(path, format)? {
        return Err(ImageRejection::Invalid("the image is truncated".into()));
    }
    let (width, height) = reader(path, format)?
        .into_dimensions()
        .map_err(|e| ImageRejection::Invalid(e.to_string()))?;
    if width > rules.max_width
        || height > rules.max_height
        || u64::from(width) * u64::from(height) > rules.max_pixels
    {
        return Err(ImageRejection::TooLarge {
            width,
            height,
            max_width: rules.max_width,
            max_height: rules.max_height,
            max_pixels: rules.max_pixels,
        });
    }
    Ok(Inspected {
        format,
        width,
        height,
    })
}

/// Decodes a file that passed [`inspect`] in full (under `image::Limits`): a corrupt image
/// fails here. Returns its thumbnail's JPEG bytes, EXIF orientation applied.
pub fn thumbnail(
    path: &Path,
    format: ImageFormat,
    rules: &Rules,
) -> Result<Vec<u8>, ImageRejection> {
    let mut r = reader(path, format)?;
    r.limits(limits(rules));
    let mut decoder = r
        .into_decoder()
        .map_err(|e| ImageRejection::Invalid(e.to_string()))?;
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img =
        DynamicImage::from_decoder(decoder).map_err(|e| ImageRejection::Invalid(e.to_string()))?;
    img.apply_orientation(orientation);
    let thumb = img.thumbnail(THUMBNAIL_SIDE, THUMBNAIL_SIDE);
    drop(img);
    jpeg(&thumb, 80)
}

/// Both steps: validates the file and makes its thumbnail.
pub fn check(path: &Path, rules: &Rules) -> Result<Checked, ImageRejection> {
    let Inspected {
        format,
        width,
        height,
    } = inspect(path, rules)?;
    Ok(Checked {
        format,
        width,
        height,
        thumbnail: thumbnail(path, format, rules)?,
    })
}

/// JPEG bytes of an image (the encoder writes no EXIF).
pub fn jpeg(img: &DynamicImage, quality: u8) -> Result<Vec<u8>, ImageRejection> {
    let mut out = Vec::new();
    let rgb = img.to_rgb8();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(&rgb)
        .map_err(|e| ImageRejection::Invalid(e.to_string()))?;
    Ok(out)
}

/// A JPEG no larger than `limit` bytes: the original orientation applied, scaled down until
/// it fits. Deterministic, so a resend produces the same bytes.
pub fn fit(path: &Path, rules: &Rules, limit: usize) -> Result<Vec<u8>, ImageRejection> {
    let format = sniff(path, rules)?;
    let mut r = reader(path, format)?;
    r.limits(limits(rules));
    let mut decoder = r
        .into_decoder()
        .map_err(|e| ImageRejection::Invalid(e.to_string()))?;
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img =
        DynamicImage::from_decoder(decoder).map_err(|e| ImageRejection::Invalid(e.to_string()))?;
    img.apply_orientation(orientation);
    let full = img.width().max(img.height());
    // Bytes scale roughly with area: start from the side the file size suggests.
    let size = std::fs::metadata(path).map_err(io)?.len() as f64;
    let mut side = ((f64::from(full) * (limit as f64 / size).sqrt() * 0.95) as u32).clamp(16, full);
    for _ in 0..12 {
        let scaled = if side >= img.width().max(img.height()) {
            img.clone()
        } else {
            img.resize(side, side, image::imageops::FilterType::Triangle)
        };
        let bytes = jpeg(&scaled, 85)?;
        if bytes.len() <= limit {
            return Ok(bytes);
        }
        // Bytes scale roughly with area: shrink the side by the square root, with margin.
        let ratio = (limit as f64 / bytes.len() as f64).sqrt() * 0.9;
        side = ((f64::from(side) * ratio) as u32).max(16);
    }
    Err(ImageRejection::Invalid(
        "cannot be made small enough for OFSC".into(),
    ))
}

#[cfg(test)]
#[path = "image_check_tests.rs"]
mod tests;
