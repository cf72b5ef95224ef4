//! Links the service hands out (upload URLs) and its HSTS header: built on the configured
//! public URL, else the request's own Host; forwarded headers only from trusted proxies.

use crate::helpers::Stack;

async fn upload_url(stack: &Stack, headers: &[(&str, &str)]) -> (String, Option<String>) {
    let tech = stack.app.login("tech1").await;
    let id = crate::uploads::first_stop(stack, &tech, "tech1").await;
    let photo = fieldsync::features::uploads::samples::photo(64, 48, 9, None);
    let mut req = stack
        .app
        .http
        .post(stack.app.url(&format!("/activities/{id}/attachments")))
        .bearer_auth(&tech.access)
        .header("Idempotency-Key", uuid::Uuid::now_v7().to_string())
        .json(
            &serde_json::json!({"kind": "photo", "contentType": "image/jpeg",
            "size": photo.len(), "sha256": crate::uploads::sha_hex(&photo),
            "fileName": "door.jpg", "capturedAt": "2026-11-28T08:00:00Z"}),
        );
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let hsts = resp
        .headers()
        .get("strict-transport-security")
        .map(|v| v.to_str().unwrap().to_string());
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(status, 201, "{body}");
    (body["upload"]["url"].as_str().unwrap().to_string(), hsts)
}

const FORGED: [(&str, &str); 3] = [
    ("X-Forwarded-Host", "evil.example"),
    ("X-Forwarded-Proto", "https"),
    ("Forwarded", "host=evil.example;proto=https"),
];

#[tokio::test]
async fn forwarded_headers_from_strangers_do_not_move_the_links() {
    let stack = Stack::start().await;
    let (url, hsts) = upload_url(&stack, &FORGED).await;
    assert!(
        url.starts_with(&format!("http://127.0.0.1:{}/uploads/", stack.app.port)),
        "{url}"
    );
    assert_eq!(hsts, None, "plain HTTP gets no HSTS");
}

#[tokio::test]
async fn a_trusted_proxy_is_believed() {
    let stack =
        Stack::start_with(|s| s.server.trusted_proxies = vec!["127.0.0.1".parse().unwrap()]).await;
    let (url, hsts) = upload_url(&stack, &FORGED[..2]).await;
    assert!(url.starts_with("https://evil.example/uploads/"), "{url}");
    assert_eq!(hsts.as_deref(), Some("max-age=31536000"));
}

#[tokio::test]
async fn the_configured_public_url_wins() {
    let stack =
        Stack::start_with(|s| s.server.public_url = Some("https://fieldsync.example.com".into()))
            .await;
    let (url, hsts) = upload_url(&stack, &FORGED).await;
    assert!(
        url.starts_with("https://fieldsync.example.com/uploads/"),
        "{url}"
    );
    assert_eq!(hsts.as_deref(), Some("max-age=31536000"));
}
