//! Photos and signatures: grants, the tus 1.0.0 subset with every status code, tampering,
//! resume after a cut, racing PATCHes, image bombs, the downscale path and replay to OFSC.

use crate::helpers::{Session, Stack};
use base64::Engine;
use fieldsync::features::uploads::samples;
use serde_json::{json, Value};
use sha2::Digest;
use std::io::{Read, Write};
use std::time::Duration;

pub fn sha_hex(b: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(b))
}

fn b64_sha(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(b))
}

pub async fn first_stop(stack: &Stack, s: &Session, resource: &str) -> i64 {
    let date = stack.sim.today_route(resource).await.0;
    stack.route(s, &date).await["stops"][0]["activityId"]
        .as_i64()
        .unwrap()
}

pub async fn grant(
    stack: &Stack,
    s: &Session,
    activity: i64,
    kind: &str,
    content_type: &str,
    bytes: &[u8],
    key: &str,
) -> (u16, Value) {
    let resp = stack
        .app
        .http
        .post(
            stack
                .app
                .url(&format!("/activities/{activity}/attachments")),
        )
        .bearer_auth(&s.access)
        .header("Idempotency-Key", key)
        .json(
            &json!({"kind": kind, "contentType": content_type, "size": bytes.len(),
                      "sha256": sha_hex(bytes), "fileName": "door.jpg",
                      "capturedAt": "2026-11-28T08:00:00Z"}),
        )
        .send()
        .await
        .unwrap();
    let code = resp.status().as_u16();
    (code, resp.json().await.unwrap_or(Value::Null))
}

/// `GET /activities/{id}/attachments`.
async fn attachments(stack: &Stack, s: &Session, id: i64) -> Value {
    let resp = stack
        .app
        .call(
            "get",
            &format!("/activities/{id}/attachments"),
            Some(&s.access),
        )
        .await;
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

/// One attachment's entry in its activity's listing.
pub async fn listed(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    activity: i64,
    attachment: &str,
) -> Value {
    let list: Value = http
        .get(format!("{base}/activities/{activity}/attachments"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["attachmentId"] == attachment)
        .cloned()
        .unwrap_or_else(|| panic!("{attachment} is not listed: {list}"))
}

/// Waits for an upload's background decode to end (the final 204 answers before it) and
/// returns its listing entry, `complete` or `rejected`.
pub async fn processed(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    activity: i64,
    attachment: &str,
) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let item = listed(http, base, token, activity, attachment).await;
        if item["state"] != "processing" {
            return item;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{attachment} still processing"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// [`processed`] on a test stack.
pub async fn settled(stack: &Stack, s: &Session, activity: i64, attachment: &str) -> Value {
    processed(
        &stack.app.http,
        &stack.app.url(""),
        &s.access,
        activity,
        attachment,
    )
    .await
}

pub fn url_of(g: &Value) -> String {
    g["upload"]["url"].as_str().unwrap().to_string()
}

/// A photo's upload created at its granted URL (tus `POST` with `Upload-Length`), ready for
/// its bytes; returns the URL.
pub async fn created_upload(http: &reqwest::Client, g: &Value, bytes: &[u8]) -> String {
    let url = url_of(g);
    let created = tus(
        http,
        "POST",
        &url,
        None,
        None,
        &[("Upload-Length", bytes.len().to_string())],
    )
    .await;
    assert_eq!(created.status(), 201);
    assert!(created.headers().contains_key("location"));
    url
}

/// A tus request; `offset` adds `Upload-Offset` and the octet-stream content type.
pub async fn tus(
    http: &reqwest::Client,
    method: &str,
    url: &str,
    offset: Option<u64>,
    body: Option<&[u8]>,
    extra: &[(&str, String)],
) -> reqwest::Response {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut r = http.request(m, url).header("Tus-Resumable", "1.0.0");
    if let Some(o) = offset {
        r = r
            .header("Upload-Offset", o.to_string())
            .header("Content-Type", "application/offset+octet-stream");
    }
    for (k, v) in extra {
        r = r.header(*k, v);
    }
    if let Some(b) = body {
        r = r.body(b.to_vec());
    }
    r.send().await.unwrap()
}

pub async fn offset_of(http: &reqwest::Client, url: &str) -> u64 {
    let r = tus(http, "HEAD", url, None, None, &[]).await;
    assert_eq!(r.status(), 200);
    r.headers()["upload-offset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

async fn problem(r: reqwest::Response) -> (u16, String) {
    let code = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(ct, "application/problem+json", "{code} {body}");
    (code, body["code"].as_str().unwrap_or_default().to_string())
}

/// Uploads `bytes` whole through creation-with-upload; returns the answer.
pub async fn upload_all(http: &reqwest::Client, url: &str, bytes: &[u8]) -> reqwest::Response {
    tus(
        http,
        "POST",
        url,
        None,
        Some(bytes),
        &[
            ("Upload-Length", bytes.len().to_string()),
            ("Content-Type", "application/offset+octet-stream".into()),
        ],
    )
    .await
}

#[tokio::test]
async fn a_photo_resumes_is_checked_kept_and_replayed_to_ofsc() {
    let stack = Stack::start().await;
    let s = stack.app.login("tech1").await;
    let id = first_stop(&stack, &s, "tech1").await;
    let photo = samples::photo(1200, 900, 1, Some(6));
    let (code, g) = grant(&stack, &s, id, "photo", "image/jpeg", &photo, "g1").await;
    assert_eq!(code, 201, "{g}");
    let (code, again) = grant(&stack, &s, id, "photo", "image/jpeg", &photo, "g1").await;
    assert_eq!((code, &again), (201, &g), "idempotent grant");
    let http = &stack.app.http;
    let url = created_upload(http, &g, &photo).await;
    let cut = photo.len() * 6 / 10;
    let r = tus(
        http,
        "PATCH",
        &url,
        Some(0),
        Some(&photo[..cut]),
        &[(
            "Upload-Checksum",
            format!("sha256 {}", b64_sha(&photo[..cut])),
        )],
    )
    .await;
    assert_eq!(r.status(), 204);
    assert_eq!(offset_of(http, &url).await, cut as u64);
    let r = tus(
        http,
        "PATCH",
        &url,
        Some(cut as u64),
        Some(&photo[cut..]),
        &[],
    )
    .await;
    assert_eq!(r.status(), 204, "{:?}", r.text().await);
    assert_eq!(
        offset_of(http, &url).await,
        photo.len() as u64,
        "HEAD after completion"
    );
    // Single use: nothing more through this grant.
    let (code, c) = problem(
        tus(
            http,
            "PATCH",
            &url,
            Some(photo.len() as u64),
            Some(b"x"),
            &[],
        )
        .await,
    )
    .await;
    assert_eq!((code, c.as_str()), (403, "grant-used"));

    let done = settled(&stack, &s, id, g["attachmentId"].as_str().unwrap()).await;
    let list: Value = attachments(&stack, &s, id).await;
    let item = &list["items"][0];
    assert_eq!(item, &done);
    assert_eq!(item["state"], "complete");
    assert_eq!(
        (item["width"].as_u64(), item["height"].as_u64()),
        (Some(1200), Some(900))
    );
    let att = item["attachmentId"].as_str().unwrap();
    let thumb = stack
        .app
        .call(
            "get",
            &format!("/attachments/{att}/thumbnail"),
            Some(&s.access),
        )
        .await;
    assert_eq!(thumb.status(), 200);
    assert_eq!(thumb.headers()["x-content-type-options"], "nosniff");
    assert!(thumb.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment"));
    let t = image::load_from_memory(&thumb.bytes().await.unwrap()).unwrap();
    assert_eq!(
        (t.width(), t.height()),
        (240, 320),
        "upright, longest side 320"
    );
    let original = stack
        .app
        .call(
            "get",
            &format!("/attachments/{att}/content"),
            Some(&s.access),
        )
        .await;
    assert_eq!(
        original.bytes().await.unwrap().as_ref(),
        photo.as_slice(),
        "kept byte-exact"
    );
    // Another technician cannot see it.
    let other = stack.app.login("tech2").await;
    assert_eq!(
        stack
            .app
            .call(
                "get",
                &format!("/attachments/{att}/content"),
                Some(&other.access)
            )
            .await
            .status(),
        404
    );

    let op = item["opId"].as_str().unwrap().to_string();
    let done = stack.settle(&s, &[op], Duration::from_secs(20)).await;
    assert_eq!(done[0]["state"], "applied", "{done:?}");
    let stored = stack.sim.client.get_file(id, "XA_PHOTO").await.unwrap();
    assert_eq!(stored.as_ref(), photo.as_slice());
}

#[tokio::test]
async fn every_status_code_of_the_protocol() {
    let stack = Stack::start_with(|s| {
        s.uploads.upload_ttl_secs = 2;
    })
    .await;
    let s = stack.app.login("tech1").await;
    let id = first_stop(&stack, &s, "tech1").await;
    let http = &stack.app.http;
    let photo = samples::photo(300, 200, 2, None);
    let (_, g) = grant(&stack, &s, id, "photo", "image/jpeg", &photo, "a").await;
    let url = url_of(&g);

    let r = http.head(&url).send().await.unwrap();
    assert_eq!(r.status(), 412, "no Tus-Resumable");
    assert_eq!(r.headers()["tus-version"], "1.0.0");
    let (code, _) = problem(
        http.patch(&url)
            .header("Tus-Resumable", "0.2.2")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, 412);
    let (code, c) = problem(
        tus(
            http,
            "POST",
            &url,
            None,
            None,
            &[("Upload-Length", (photo.len() + 1).to_string())],
        )
        .await,
    )
    .await;
    assert_eq!((code, c.as_str()), (413, "upload-too-large"));
    let (code, _) = problem(
        tus(
            http,
            "PATCH",
            &url,
            None,
            Some(&photo),
            &[
                ("Upload-Offset", "0".into()),
                ("Content-Type", "image/jpeg".into()),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(code, 415);
    let (code, c) = problem(tus(http, "PATCH", &url, Some(5), Some(&photo), &[]).await).await;
    assert_eq!((code, c.as_str()), (409, "offset-mismatch"));
    let (code, c) = problem(
        tus(
            http,
            "PATCH",
            &url,
            Some(0),
            Some(&photo[..100]),
            &[("Upload-Checksum", format!("sha256 {}", b64_sha(b"other")))],
        )
        .await,
    )
    .await;
    assert_eq!((code, c.as_str()), (460, "checksum-mismatch"));
    assert_eq!(
        offset_of(http, &url).await,
        0,
        "a bad chunk does not move the offset"
    );
    let mut long = photo.clone();
    long.extend_from_slice(b"more");
    let (code, _) = problem(tus(http, "PATCH", &url, Some(0), Some(&long), &[]).await).await;
    assert_eq!(code, 413);
    assert_eq!(offset_of(http, &url).await, 0);
    // Termination.
    let r = tus(http, "PATCH", &url, Some(0), Some(&photo[..50]), &[]).await;
    assert_eq!(r.status(), 204);
    assert_eq!(
        tus(http, "DELETE", &url, None, None, &[]).await.status(),
        204
    );
    assert_eq!(tus(http, "HEAD", &url, None, None, &[]).await.status(), 404);
    // Expiration: a started upload left alone past its life is gone.
    let (_, g) = grant(&stack, &s, id, "photo", "image/jpeg", &photo, "b").await;
    let url = url_of(&g);
    assert_eq!(
        tus(http, "PATCH", &url, Some(0), Some(&photo[..50]), &[])
            .await
            .status(),
        204
    );
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let (code, c) =
        problem(tus(http, "PATCH", &url, Some(50), Some(&photo[50..]), &[]).await).await;
    assert_eq!((code, c.as_str()), (410, "upload-expired"));
    let att = g["attachmentId"].as_str().unwrap();
    assert!(!stack.app.state.files.partial(att).exists(), "purged");
    // Grant-time checks.
    let (code, _) = grant(&stack, &s, id, "signature", "image/jpeg", &photo, "c").await;
    assert_eq!(code, 415, "a signature is a PNG");
    let big = vec![0u8; 600 * 1024];
    let (code, _) = grant(&stack, &s, id, "signature", "image/png", &big, "d").await;
    assert_eq!(code, 413);
}

#[tokio::test]
async fn tampered_and_expired_grants_are_403() {
    let stack = Stack::start_with(|s| {
        s.uploads.grant_ttl_secs = 1;
        s.uploads.skew_secs = 0;
    })
    .await;
    let s = stack.app.login("tech1").await;
    let id = first_stop(&stack, &s, "tech1").await;
    let http = &stack.app.http;
    let photo = samples::photo(64, 64, 3, None);
    let (_, g) = grant(&stack, &s, id, "photo", "image/jpeg", &photo, "t").await;
    let url = url_of(&g);
    let (base, query) = url.split_once('?').unwrap();
    for field in ["m", "uid", "did", "exp", "len", "typ", "sha", "kid", "sig"] {
        let changed: Vec<String> = query
            .split('&')
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap();
                if k == field {
                    // Change the last character.
                    let stem = &v[..v.len() - 1];
                    let last = if v.ends_with('0') { '1' } else { '0' };
                    format!("{k}={stem}{last}")
                } else {
                    p.to_string()
                }
            })
            .collect();
        let tampered = format!("{base}?{}", changed.join("&"));
        let (code, c) = problem(tus(http, "HEAD", &tampered, None, None, &[]).await).await;
        assert_eq!(code, 403, "{field}: {c}");
    }
    let other_att = base.replace(g["attachmentId"].as_str().unwrap(), "att_00000000000000ff");
    assert_eq!(
        tus(
            http,
            "HEAD",
            &format!("{other_att}?{query}"),
            None,
            None,
            &[]
        )
        .await
        .status(),
        404
    );
    let (code, _) = problem(tus(http, "HEAD", base, None, None, &[]).await).await;
    assert_eq!(code, 403, "no signature");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (code, c) = problem(tus(http, "PATCH", &url, Some(0), Some(&photo), &[]).await).await;
    assert_eq!((code, c.as_str()), (403, "grant-expired"));
}

/// Sends a PATCH over a raw socket: headers, `send` bytes of `body`, then waits `hold` and
/// either sends the rest or drops the connection.
pub fn raw_patch(
    port: u16,
    url: &str,
    offset: u64,
    body: &[u8],
    send: usize,
    hold: Duration,
    finish: bool,
) -> Option<String> {
    let path = url.split_once(&format!("127.0.0.1:{port}")).unwrap().1;
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let head = format!(
        "PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: {offset}\r\nContent-Type: application/offset+octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    sock.write_all(head.as_bytes()).unwrap();
    sock.write_all(&body[..send]).unwrap();
    sock.flush().unwrap();
    std::thread::sleep(hold);
    if !finish {
        return None;
    }
    sock.write_all(&body[send..]).unwrap();
    let mut answer = String::new();
    let _ = sock.read_to_string(&mut answer);
    Some(answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_resumes_where_it_stopped_and_racing_patches_get_one_409() {
    let stack = Stack::start().await;
    let s = stack.app.login("tech1").await;
    let id = first_stop(&stack, &s, "tech1").await;
    let http = &stack.app.http;
    let photo = samples::photo(800, 600, 4, None);
    let (_, g) = grant(&stack, &s, id, "photo", "image/jpeg", &photo, "cut").await;
    let url = created_upload(http, &g, &photo).await;
    // The connection drops at 60 %.
    let sixty = photo.len() * 6 / 10;
    let (port, u, p) = (stack.app.port, url.clone(), photo.clone());
    tokio::task::spawn_blocking(move || {
        raw_patch(port, &u, 0, &p, sixty, Duration::from_millis(300), false)
    })
    .await
    .unwrap();
    let mut resumed_at = 0;
    for _ in 0..50 {
        resumed_at = offset_of(http, &url).await;
        if resumed_at == sixty as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(resumed_at, sixty as u64, "resumes from 60 %");

    // Two PATCHes race at one offset: the slow one holds the upload, the other gets 409.
    let (u, p) = (url.clone(), photo[sixty..].to_vec());
    let slow = tokio::task::spawn_blocking(move || {
        raw_patch(
            port,
            &u,
            sixty as u64,
            &p,
            1000,
            Duration::from_millis(800),
            true,
        )
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (code, c) = problem(
        tus(
            http,
            "PATCH",
            &url,
            Some(sixty as u64),
            Some(&photo[sixty..]),
            &[],
        )
        .await,
    )
    .await;
    assert_eq!((code, c.as_str()), (409, "upload-locked"));
    let answer = slow.await.unwrap().unwrap();
    assert!(answer.starts_with("HTTP/1.1 204"), "{answer}");
    settled(&stack, &s, id, g["attachmentId"].as_str().unwrap()).await;
    let list: Value = attachments(&stack, &s, id).await;
    assert_eq!(list["items"][0]["state"], "complete");
    let att = list["items"][0]["attachmentId"].as_str().unwrap();
    let original = stack
        .app
        .call(
            "get",
            &format!("/attachments/{att}/content"),
            Some(&s.access),
        )
        .await;
    assert_eq!(
        original.bytes().await.unwrap().as_ref(),
        photo.as_slice(),
        "no interleaved bytes"
    );
}

#[tokio::test]
async fn bombs_and_lies_are_refused_and_deleted() {
    let stack = Stack::start().await;
    let s = stack.app.login("tech1").await;
    let id = first_stop(&stack, &s, "tech1").await;
    let http = &stack.app.http;
    let assets = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/images");
    let jpeg = samples::photo(400, 300, 5, None);
    let cases: Vec<(&str, &str, Vec<u8>, u16, &str)> = vec![
        (
            "claims 100000x100000",
            "image/png",
            std::fs::read(assets.join("bomb-claims-100000.png")).unwrap(),
            422,
            "image-too-large",
        ),
        (
            "20000x20000 zeros",
            "image/png",
            std::fs::read(assets.join("bomb-zeros-20000.png")).unwrap(),
            422,
            "image-too-large",
        ),
        (
            "truncated JPEG",
            "image/jpeg",
            jpeg[..jpeg.len() / 2].to_vec(),
            422,
            "invalid-image",
        ),
        (
            "HTML named .jpg",
            "image/jpeg",
            std::fs::read(assets.join("not-an-image.jpg")).unwrap(),
            415,
            "unsupported-image",
        ),
        (
            "a PNG said to be a JPEG",
            "image/jpeg",
            samples::signature(300, 100),
            415,
            "content-type-mismatch",
        ),
    ];
    for (n, (what, ct, bytes, want, code_want)) in cases.into_iter().enumerate() {
        let (code, g) = grant(&stack, &s, id, "photo", ct, &bytes, &format!("bomb{n}")).await;
        assert_eq!(code, 201, "{what}: {g}");
        let (code, c) = problem(upload_all(http, &url_of(&g), &bytes).await).await;
        assert_eq!((code, c.as_str()), (want, code_want), "{what}");
        let att = g["attachmentId"].as_str().unwrap();
        assert!(
            !stack.app.state.files.partial(att).exists(),
            "{what}: deleted"
        );
    }
    // A body that is not the granted one.
    let (_, g) = grant(&stack, &s, id, "photo", "image/jpeg", &jpeg, "swap").await;
    let mut other = jpeg.clone();
    other[100] ^= 0xff;
    let (code, c) = problem(upload_all(http, &url_of(&g), &other).await).await;
    assert_eq!((code, c.as_str()), (422, "file-checksum-mismatch"));
    let list: Value = attachments(&stack, &s, id).await;
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["state"] == "rejected"),
        "{list}"
    );
}

#[tokio::test]
async fn a_photo_over_5_mb_is_downscaled_for_ofsc_and_kept_whole_here() {
    let stack = Stack::start().await;
    let s = stack.app.login("tech1").await;
    let id = first_stop(&stack, &s, "tech1").await;
    let mut side = 2600;
    let photo = loop {
        let p = samples::photo(side, side * 3 / 4, 6, None);
        if p.len() > 5_200_000 {
            break p;
        }
        side += 600;
    };
    let (_, g) = grant(&stack, &s, id, "photo", "image/jpeg", &photo, "big").await;
    let r = upload_all(&stack.app.http, &url_of(&g), &photo).await;
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    settled(&stack, &s, id, g["attachmentId"].as_str().unwrap()).await;
    let list: Value = attachments(&stack, &s, id).await;
    let op = list["items"][0]["opId"].as_str().unwrap().to_string();
    let done = stack.settle(&s, &[op], Duration::from_secs(60)).await;
    assert_eq!(done[0]["state"], "applied", "{done:?}");
    let stored = stack.sim.client.get_file(id, "XA_PHOTO").await.unwrap();
    assert!(
        stored.len() <= 5_000_000 && stored.len() < photo.len(),
        "{} bytes in OFSC",
        stored.len()
    );
    let img = image::load_from_memory(&stored).unwrap();
    assert!(img.width() < side);
    let att = list["items"][0]["attachmentId"].as_str().unwrap();
    let original = stack
        .app
        .call(
            "get",
            &format!("/attachments/{att}/content"),
            Some(&s.access),
        )
        .await;
    assert_eq!(original.bytes().await.unwrap().len(), photo.len());
}

#[tokio::test]
async fn grants_signed_with_a_rotated_out_key_still_verify() {
    use fieldsync::config::{Secret, UploadKey};
    use fieldsync::features::uploads::grant::{self, GrantFields, SigningKey};
    let stack = Stack::start_with(|s| {
        s.uploads.keys = vec![
            UploadKey {
                kid: "k2".into(),
                secret: Secret::new("new-key"),
            },
            UploadKey {
                kid: "k1".into(),
                secret: Secret::new("old-key"),
            },
        ];
    })
    .await;
    let s = stack.app.login("tech1").await;
    let id = first_stop(&stack, &s, "tech1").await;
    let photo = samples::photo(64, 64, 8, None);
    let (_, g) = grant(&stack, &s, id, "photo", "image/jpeg", &photo, "rot").await;
    let url = url_of(&g);
    let (base, query) = url.split_once('?').unwrap();
    let q = grant::parse_query(query).unwrap();
    assert_eq!(q["kid"], "k2", "the newest key signs");
    let fields = GrantFields {
        method: q["m"].clone(),
        attachment_id: g["attachmentId"].as_str().unwrap().into(),
        user_id: q["uid"].clone(),
        device_id: q["did"].clone(),
        expires: q["exp"].parse().unwrap(),
        size: q["len"].parse().unwrap(),
        content_type: q["typ"].clone(),
        sha256: q["sha"].clone(),
    };
    let sign = |kid: &str, secret: &str| {
        let key = SigningKey {
            kid: kid.into(),
            secret: secret.as_bytes().to_vec(),
        };
        format!("{base}?{}", grant::sign(&key, &fields).unwrap())
    };
    let http = &stack.app.http;
    assert_eq!(
        tus(http, "HEAD", &sign("k1", "old-key"), None, None, &[])
            .await
            .status(),
        200,
        "issued before the rotation"
    );
    assert_eq!(
        tus(http, "HEAD", &sign("k9", "old-key"), None, None, &[])
            .await
            .status(),
        403
    );
    assert_eq!(
        tus(http, "HEAD", &sign("k1", "guess"), None, None, &[])
            .await
            .status(),
        403
    );
}

/// The caller's sync pull from `cursor` (none: a reset, and the cursor to start from).
async fn pull(stack: &Stack, s: &Session, cursor: Option<&str>) -> Value {
    let path = match cursor {
        Some(c) => format!("/sync/pull?cursor={c}"),
        None => "/sync/pull".into(),
    };
    let resp = stack.app.call("get", &path, Some(&s.access)).await;
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

#[tokio::test]
async fn an_image_that_fails_its_background_decode_is_rejected_and_the_device_told() {
    let stack = Stack::start().await;
    let s = stack.app.login("tech1").await;
    let id = first_stop(&stack, &s, "tech1").await;
    let start = pull(&stack, &s, None).await;
    let cursor = start["nextCursor"].as_str().unwrap();
    // Right signature, header, size and end: only a full decode finds the broken data.
    let mut png = samples::signature(300, 100);
    let idat = png.windows(4).position(|w| w == b"IDAT").unwrap();
    png[idat + 8] ^= 0x5a;
    let (code, g) = grant(&stack, &s, id, "photo", "image/png", &png, "bad-data").await;
    assert_eq!(code, 201, "{g}");
    let r = upload_all(&stack.app.http, &url_of(&g), &png).await;
    assert_eq!(
        r.status(),
        201,
        "inspection passes: answered before the decode"
    );
    let att = g["attachmentId"].as_str().unwrap();
    let item = settled(&stack, &s, id, att).await;
    assert_eq!(item["state"], "rejected", "{item}");
    assert!(item["errorCode"] == "invalid-image", "{item}");
    assert!(item["opId"].is_null(), "nothing goes to OFSC");
    assert!(
        !stack.app.state.files.partial(att).exists(),
        "bytes deleted"
    );
    // The change reaches pulls once the group commit that covers it is on disk, which can
    // be a moment after the listing shows the rejection.
    let mut told: Vec<Value> = Vec::new();
    for _ in 0..50 {
        let page = pull(&stack, &s, Some(cursor)).await;
        told = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["kind"] == "attachment")
            .cloned()
            .collect();
        if !told.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0]["data"]["attachmentId"], att);
    assert_eq!(told[0]["data"]["state"], "rejected");
    assert_eq!(told[0]["data"]["errorCode"], "invalid-image");
    assert_eq!(told[0]["activityId"], id);
}

#[tokio::test]
async fn a_decode_past_its_time_limit_is_rejected() {
    let stack = Stack::start_with(|c| c.uploads.decode_timeout_ms = 1).await;
    let s = stack.app.login("tech1").await;
    let id = first_stop(&stack, &s, "tech1").await;
    let photo = samples::photo(2400, 1800, 3, None);
    let (_, g) = grant(&stack, &s, id, "photo", "image/jpeg", &photo, "slow").await;
    let r = upload_all(&stack.app.http, &url_of(&g), &photo).await;
    assert_eq!(r.status(), 201);
    let item = settled(&stack, &s, id, g["attachmentId"].as_str().unwrap()).await;
    assert_eq!(item["state"], "rejected", "{item}");
    assert!(item["errorCode"] == "decode-timeout", "{item}");
}

#[tokio::test]
async fn a_processing_failure_of_our_own_is_retried_until_it_succeeds() {
    let stack = Stack::start().await;
    let s = stack.app.login("tech1").await;
    let id = first_stop(&stack, &s, "tech1").await;
    let png = samples::signature(300, 100);
    let (_, g) = grant(&stack, &s, id, "photo", "image/png", &png, "disk-fault").await;
    let att = g["attachmentId"].as_str().unwrap();
    let sha = sha_hex(&png);
    // A disk fault: the thumbnail directory is a file, so keeping the thumbnail fails.
    let thumbs = stack.app.state.files.thumbnail(&sha);
    let thumbs = thumbs.parent().unwrap().to_path_buf();
    std::fs::remove_dir_all(&thumbs).unwrap();
    std::fs::write(&thumbs, b"not a directory").unwrap();
    let r = upload_all(&stack.app.http, &url_of(&g), &png).await;
    assert_eq!(r.status(), 201);
    // The first attempt moved the original to its content address, then failed.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !stack.app.state.files.blob(&sha).exists() {
        assert!(std::time::Instant::now() < deadline, "never processed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let item = listed(&stack.app.http, &stack.app.url(""), &s.access, id, att).await;
    assert_eq!(
        item["state"], "processing",
        "a fault of ours refuses nothing: {item}"
    );
    // The disk is back: a retry (after 1 s) completes the upload from its kept original.
    std::fs::remove_file(&thumbs).unwrap();
    std::fs::create_dir(&thumbs).unwrap();
    let item = settled(&stack, &s, id, att).await;
    assert_eq!(item["state"], "complete", "{item}");
    assert!(item["opId"].is_string(), "queued for OFSC: {item}");
    let thumb = stack
        .app
        .call(
            "get",
            &format!("/attachments/{att}/thumbnail"),
            Some(&s.access),
        )
        .await;
    assert_eq!(thumb.status(), 200);
}

#[tokio::test]
async fn a_grant_dies_with_its_session_and_its_user() {
    let stack = Stack::start().await;
    let http = &stack.app.http;
    let photo = samples::photo(64, 64, 3, None);
    // Signed out between the grant and the upload.
    let s = stack.app.login("tech1").await;
    let id = first_stop(&stack, &s, "tech1").await;
    let (code, g) = grant(&stack, &s, id, "photo", "image/jpeg", &photo, "g1").await;
    assert_eq!(code, 201, "{g}");
    let signed_out = stack.app.call("delete", "/sessions", Some(&s.access)).await;
    assert_eq!(signed_out.status(), 204);
    let r = upload_all(http, &url_of(&g), &photo).await;
    assert_eq!(problem(r).await, (403, "grant-revoked".to_string()));
    // The user disabled between the grant and the upload.
    let s = stack.app.login("tech1").await;
    let (code, g) = grant(&stack, &s, id, "photo", "image/jpeg", &photo, "g2").await;
    assert_eq!(code, 201, "{g}");
    fieldsync::auth::users::disable(stack.app.state.store.as_ref(), "tech1").unwrap();
    let r = upload_all(http, &url_of(&g), &photo).await;
    assert_eq!(problem(r).await, (403, "grant-revoked".to_string()));
    // Nothing went to OFSC.
    let ledger = stack.sim.ledger().await;
    assert!(!ledger
        .iter()
        .any(|e| e["source"] == "api" && e["method"] == "PUT"));
}

#[tokio::test]
async fn a_file_name_with_bidi_overrides_is_refused() {
    let stack = Stack::start().await;
    let s = stack.app.login("tech1").await;
    let id = first_stop(&stack, &s, "tech1").await;
    let photo = samples::photo(64, 64, 3, None);
    let resp = stack
        .app
        .http
        .post(stack.app.url(&format!("/activities/{id}/attachments")))
        .bearer_auth(&s.access)
        .header("Idempotency-Key", "bidi")
        .json(
            &json!({"kind": "photo", "contentType": "image/jpeg", "size": photo.len(),
                      "sha256": sha_hex(&photo), "fileName": "photo\u{202E}gpj.exe",
                      "capturedAt": "2026-11-28T08:00:00Z"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(problem(resp).await, (400, "invalid-file-name".to_string()));
}

/// Bytes after the image's end marker (a phone's trailer, or something hidden) are cut off:
/// the upload completes, and the original served and sent to OFSC is the image alone.
#[tokio::test]
async fn trailing_data_after_the_image_is_cut_off() {
    let stack = Stack::start().await;
    let s = stack.app.login("tech1").await;
    let id = first_stop(&stack, &s, "tech1").await;
    let photo = samples::photo(320, 240, 11, None);
    let mut sent = photo.clone();
    sent.extend_from_slice(b"SEFH\xFF\xD9 vendor trailer or a hidden payload \xFF\xD9");
    let (code, g) = grant(&stack, &s, id, "photo", "image/jpeg", &sent, "trailer").await;
    assert_eq!(code, 201, "{g}");
    let done = upload_all(&stack.app.http, &url_of(&g), &sent).await;
    assert_eq!(done.status(), 201);
    let att = g["attachmentId"].as_str().unwrap();
    let item = settled(&stack, &s, id, att).await;
    assert_eq!(item["state"], "complete", "{item}");
    let original = stack
        .app
        .call(
            "get",
            &format!("/attachments/{att}/content"),
            Some(&s.access),
        )
        .await;
    assert_eq!(original.bytes().await.unwrap().as_ref(), photo.as_slice());
    let op = item["opId"].as_str().unwrap().to_string();
    let applied = stack.settle(&s, &[op], Duration::from_secs(20)).await;
    assert_eq!(applied[0]["state"], "applied", "{applied:?}");
    let stored = stack.sim.client.get_file(id, "XA_PHOTO").await.unwrap();
    assert_eq!(
        stored.as_ref(),
        photo.as_slice(),
        "OFSC gets the image alone"
    );
}

/// Grants racing for an activity's last photo property: exactly one gets it, the others are
/// refused at grant time (the check and the record are one step under the route's lane
/// lock), so no device uploads a photo that would be turned away when it finishes.
#[tokio::test]
async fn concurrent_grants_for_the_last_photo_property_admit_one() {
    let stack = Stack::start_with(|s| s.properties.photos = vec!["XA_PHOTO_1".into()]).await;
    let s = stack.app.login("tech1").await;
    let id = first_stop(&stack, &s, "tech1").await;
    let photos: Vec<Vec<u8>> = (0..8u64)
        .map(|n| samples::photo(64, 48, 40 + n, None))
        .collect();
    let grants = photos.iter().enumerate().map(|(n, photo)| {
        let (stack, s) = (&stack, &s);
        async move {
            let key = format!("race{n}");
            grant(stack, s, id, "photo", "image/jpeg", photo, &key).await
        }
    });
    let answers = futures_util::future::join_all(grants).await;
    let admitted = answers.iter().filter(|(code, _)| *code == 201).count();
    let refused = answers
        .iter()
        .filter(|(code, b)| *code == 409 && b["code"] == "no-photo-property")
        .count();
    assert_eq!((admitted, refused), (1, 7), "{answers:?}");
}

/// Photos go to the configured file properties in order, and past the last one a grant is
/// refused before any byte is sent: OFSC would have nowhere to keep the photo.
#[tokio::test]
async fn photos_fill_the_configured_properties_and_no_more() {
    let stack = Stack::start_with(|s| {
        s.properties.photos = vec!["XA_PHOTO_3".into(), "XA_PHOTO_5".into()];
    })
    .await;
    let s = stack.app.login("tech1").await;
    let id = first_stop(&stack, &s, "tech1").await;
    let mut ops = Vec::new();
    let mut photos = Vec::new();
    for n in 0..2u64 {
        let photo = samples::photo(200, 150, 20 + n, None);
        let key = format!("slot{n}");
        let (code, g) = grant(&stack, &s, id, "photo", "image/jpeg", &photo, &key).await;
        assert_eq!(code, 201, "{g}");
        assert_eq!(
            upload_all(&stack.app.http, &url_of(&g), &photo)
                .await
                .status(),
            201
        );
        let item = settled(&stack, &s, id, g["attachmentId"].as_str().unwrap()).await;
        assert_eq!(item["state"], "complete", "{item}");
        ops.push(item["opId"].as_str().unwrap().to_string());
        photos.push(photo);
    }
    let third = samples::photo(200, 150, 30, None);
    let (code, body) = grant(&stack, &s, id, "photo", "image/jpeg", &third, "slot2").await;
    assert_eq!(
        (code, body["code"].as_str()),
        (409, Some("no-photo-property")),
        "{body}"
    );
    let applied = stack.settle(&s, &ops, Duration::from_secs(20)).await;
    assert!(
        applied.iter().all(|o| o["state"] == "applied"),
        "{applied:?}"
    );
    for (label, photo) in ["XA_PHOTO_3", "XA_PHOTO_5"].iter().zip(&photos) {
        let stored = stack.sim.client.get_file(id, label).await.unwrap();
        assert_eq!(stored.as_ref(), photo.as_slice(), "{label}");
    }
    assert!(stack.sim.client.get_file(id, "XA_PHOTO").await.is_err());
}
