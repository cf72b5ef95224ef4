//! The console's stylesheet and script, compiled into the binary and served under names
//! that carry their content hash, so browsers may keep them for a year.

use actix_web::{web, HttpRequest, HttpResponse};
use std::sync::OnceLock;

struct Asset {
    name: String,
    etag: String,
    body: &'static str,
    media: &'static str,
}

const SOURCES: [(&str, &str, &str, &str); 2] = [
    (
        "console",
        "css",
        include_str!("../../assets/console/console.css"),
        "text/css; charset=utf-8",
    ),
    (
        "console",
        "js",
        include_str!("../../assets/console/console.js"),
        "text/javascript; charset=utf-8",
    ),
];

fn all() -> &'static [Asset] {
    static ASSETS: OnceLock<Vec<Asset>> = OnceLock::new();
    ASSETS.get_or_init(|| {
        SOURCES
            .iter()
            .map(|(stem, ext, body, media)| {
                let hash = hex::encode(crate::store::record::sha256(body.as_bytes()));
                Asset {
                    name: format!("{stem}.{}.{ext}", &hash[..12]),
                    etag: format!("\"{}\"", &hash[..32]),
                    body,
                    media,
                }
            })
            .collect()
    })
}

fn url_of(ext: &str) -> String {
    all()
        .iter()
        .find(|a| a.name.ends_with(ext))
        .map(|a| format!("/console/assets/{}", a.name))
        .unwrap_or_default()
}

pub fn css_url() -> String {
    url_of(".css")
}

pub fn js_url() -> String {
    url_of(".js")
}

pub async fn serve(req: HttpRequest, name: web::Path<String>) -> HttpResponse {
    let Some(a) = all().iter().find(|a| a.name == *name) else {
        return HttpResponse::NotFound().finish();
    };
    let cached = req
        .headers()
        .get("if-none-match")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == a.etag);
    let mut resp = if cached {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    resp.insert_header(("ETag", a.etag.as_str()))
        .insert_header(("Cache-Control", "public, max-age=31536000, immutable"));
    if cached {
        return resp.finish();
    }
    resp.content_type(a.media).body(a.body)
}
